/* `bnni fmt`: prints model files in the canonical layout (interp/fmt.h), checks that they are in it (--check), or
 * rewrites them in place (-w), atomically: the new text goes to a temporary file beside the old one, which a
 * rename replaces, so an interrupted run leaves the old file or the new one, never half of either. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../runtime/export/export.h"
#include "cmd.h"
#include "fmt.h"
#include "parse.h"

const char cmd_fmt_usage[] =
    "usage: bnni fmt MODEL.bnn [--check | -w] [MODEL.bnn...]\n"
    "\n"
    "Prints the model in the canonical layout: one statement per line, four spaces per level of braces,\n"
    "`name(a, b=c)` spacing, the values of the top-level statements lined up, at most one blank line in a\n"
    "row, every comment kept (a comment inside a call's parentheses moves to the end of its line). Only the\n"
    "layout changes: what `bnni check` prints stays the same, and formatting twice changes nothing more.\n"
    "A file with syntax errors is not formatted: its errors are printed as `bnni check` prints them.\n"
    "\n"
    "  --check   print nothing; exit 1 and name each file that is not in the canonical layout\n"
    "  -w        rewrite each file that is not in the canonical layout, atomically\n"
    "\n"
    "exit status: 0 ok (with --check: every file is formatted), 1 a file is not formatted (--check), cannot\n"
    "be read or written, or has syntax errors, 2 usage error\n"
    "example: bnni fmt -w models/*.bnn\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni fmt: error: %s%s%s\nusage: bnni fmt MODEL.bnn [--check | -w]   (bnni help fmt)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* The whole file (caller frees) or NULL with errno. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) < 0 || S_ISDIR(st.st_mode) || st.st_size > (off_t)PARSE_MAX_BYTES) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : EFBIG;
        fclose(f);
        errno = e;
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    *len = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    if (buf)
        buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Formats one file as mode says ('p' print, 'c' check, 'w' write). Returns the exit status for it. */
static int fmt_file(const char *path, int mode)
{
    size_t len = 0;
    char *src = read_file(path, &len), err[1024];
    if (!src) {
        fprintf(stderr, "%s: error: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    if (fmt_check_syntax(path, src, len, stderr) != 0) {
        free(src);
        return 1;
    }
    char *out = fmt_source(src, len);
    int rc = 0, same = out && strlen(out) == len && memcmp(out, src, len) == 0;
    if (!out) {
        fprintf(stderr, "bnni: error: %s: out of memory\n", path);
        rc = 1;
    } else if (mode == 'p') {
        fputs(out, stdout);
    } else if (mode == 'c' && !same) {
        fprintf(stderr, "%s: not formatted (bnni fmt -w %s rewrites it)\n", path, path);
        rc = 1;
    } else if (mode == 'w' && !same && export_write_atomic(path, out, strlen(out), err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s: %s\n", path, err);
        rc = 1;
    }
    free(out);
    free(src);
    return rc;
}

int cmd_fmt(int argc, char **argv)
{
    int mode = 'p', nfiles = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0 || strcmp(argv[i], "-w") == 0) {
            int m = argv[i][1] == 'w' ? 'w' : 'c';
            if (mode != 'p' && mode != m)
                return usage_error("--check and -w exclude each other", argv[i]);
            mode = m;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option", argv[i]);
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0)
        return usage_error("no model file given", NULL);
    if (nfiles > 1 && mode == 'p')
        return usage_error("several files need --check or -w", NULL);
    for (int i = 0; i < argc; i++)
        if (argv[i][0] != '-' || !argv[i][1])
            rc |= fmt_file(argv[i], mode);
    return rc;
}
