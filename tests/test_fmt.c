/* bnni fmt (interp/fmt.c): a hand-written golden case; over every model file of the repository (models/, examples/,
 * the fuzz corpus and tests/bad/) that parses, formatting twice equals formatting once, and the formatted text
 * checks exactly as the original does (the same summary table and exit status, the same diagnostics apart from line
 * and column numbers); models/ is formatted already; and the command's --check, -w and errors. */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "interp/fmt.h"
#include "interp/frontend.h"
#include "tests/support.h"

static char *fmt(const char *src)
{
    char *out = fmt_source(src, strlen(src));
    cr_assert(out);
    return out;
}

Test(fmt, golden)
{
    static const char messy[] =
        "\xEF\xBB\xBF# top\r\n\n\nmodel   m   # name\ndata fashion_mnist( batch = 128 ,\n   limit=10)   # data\n"
        "optimizer sgd(lr=1.0e-1, momentum = 0.5)\nseed -0\nblock b(c, k=3) {conv2d(c, kernel=k, padding=1); relu}\n"
        "network {   # net\n\n  b(4)\n\tr: residual { conv2d(4,kernel=3,padding=1); relu }\n\n\n"
        "  flatten ; dense(10,  # ten\n    bias=false)\n\n}\n\n\n";
    static const char want[] = "# top\n"
                               "\n"
                               "model m  # name\n"
                               "data      fashion_mnist(batch=128, limit=10)  # data\n"
                               "optimizer sgd(lr=1.0e-1, momentum=0.5)\n"
                               "seed      -0\n"
                               "block b(c, k=3) {\n"
                               "    conv2d(c, kernel=k, padding=1)\n"
                               "    relu\n"
                               "}\n"
                               "network {  # net\n"
                               "    b(4)\n"
                               "    r: residual {\n"
                               "        conv2d(4, kernel=3, padding=1)\n"
                               "        relu\n"
                               "    }\n"
                               "\n"
                               "    flatten\n"
                               "    dense(10, bias=false)  # ten\n"
                               "}\n";
    char *out = fmt(messy);
    cr_expect_str_eq(out, want);
    free(out);
}

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* What `bnni check` prints for text: the summary (stdout) and the diagnostics with every line and column number
 * masked, source and caret lines left out, sorted: check reports in line order, and formatting puts what shared
 * a line (a block's body, a repeat's) on lines of their own, which may reorder the report but not change it.
 * Returns the exit status. */
static int check_text(const char *name, const char *src, char **summary, char **diags)
{
    char *d = NULL, *s = NULL;
    size_t dl = 0, sl = 0;
    FILE *df = open_memstream(&d, &dl), *sf = open_memstream(&s, &sl);
    CheckOptions co = {.diag = df, .mem_cap_bytes = 1ull << 40};
    ModelSpec *m = NULL;
    int rc = bnn_load_source(name, src, strlen(src), &co, &m);
    if (rc == 0)
        bnn_print_summary(m, sf);
    spec_free(m);
    fclose(df), fclose(sf);
    /* Keep "name:L:C: error: msg" lines as "error: msg", digits after "line " masked. */
    char *out = calloc(dl + 1, 1), *o = out;
    size_t nlen = strlen(name);
    for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        char *msg = strstr(line, ": error: ") ? strstr(line, ": error: ") : strstr(line, ": warning: ");
        msg = msg ? msg : strstr(line, ": note: ");
        for (const char *p = msg ? msg : line; *p; p++) {
            *o++ = *p;
            if (strncmp(p, "line ", 5) == 0) {
                memcpy(o, "ine N", 5), o += 5, p += 5;
                while (p[0] >= '0' && p[0] <= '9')
                    p++;
                p--;
            }
        }
        *o++ = '\n';
    }
    free(d);
    char *lines[4096], *sorted = calloc((size_t)(o - out) + 1, 1), *q = sorted;
    int n = 0;
    for (char *line = strtok(out, "\n"); line && n < 4096; line = strtok(NULL, "\n"))
        lines[n++] = line;
    qsort(lines, (size_t)n, sizeof *lines, by_text);
    for (int i = 0; i < n; i++)
        q += sprintf(q, "%s\n", lines[i]);
    free(out);
    *summary = s, *diags = sorted;
    return rc;
}

static int count_checked;

static void check_file(const char *path)
{
    size_t len;
    char *src = support_slurp(path, &len);
    FILE *null = fopen("/dev/null", "w");
    int parses = strlen(src) == len && fmt_check_syntax(path, src, len, null) == 0;
    fclose(null);
    if (!parses) {
        free(src);
        return;
    }
    char *once = fmt(src), *twice = fmt(once), *s1, *d1, *s2, *d2;
    cr_expect_str_eq(twice, once, "%s: formatting again changes it", path);
    int r1 = check_text(path, src, &s1, &d1), r2 = check_text(path, once, &s2, &d2);
    cr_expect_eq(r1, r2, "%s: check's status %d, after fmt %d", path, r1, r2);
    cr_expect_str_eq(s2, s1, "%s: check's table changes", path);
    cr_expect_str_eq(d2, d1, "%s: check's diagnostics change", path);
    if (strncmp(path, "models/", 7) == 0)
        cr_expect_str_eq(once, src, "%s is not formatted (bnni fmt -w %s)", path, path);
    count_checked++;
    free(s1), free(d1), free(s2), free(d2), free(once), free(twice), free(src);
}

Test(fmt, every_model_file_keeps_what_check_prints)
{
    const char *patterns[] = {"models/*.bnn", "examples/*.bnn", "tests/fuzz/corpus/bnn/*", "tests/bad/*.bnn"};
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) {
        glob_t g;
        if (glob(patterns[i], 0, NULL, &g) != 0)
            continue;
        for (size_t k = 0; k < g.gl_pathc; k++)
            check_file(g.gl_pathv[k]);
        globfree(&g);
    }
    cr_expect(count_checked > 150, "only %d files parsed", count_checked);
    cr_log_info("%d model files formatted and checked\n", count_checked);
}

static char dir[64];
static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "fmt"); }
static void remove_dir(void) { support_remove_tree(dir); }

Test(fmt, command_check_write_and_errors, .init = make_dir, .fini = remove_dir)
{
    const char *m = support_path(dir, "m.bnn");
    support_write_text(m, "data fashion_mnist\noptimizer sgd(lr=0.1)\nnetwork { flatten;dense(10) }\n");
    cr_expect_eq(support_run(dir, "fmt --check %s", m), 1);
    char *e = support_run_err(dir);
    cr_expect(strstr(e, "m.bnn: not formatted"), "%s", e);
    free(e);
    cr_expect_eq(support_run(dir, "fmt %s", m), 0);
    char *printed = support_run_out(dir);
    cr_expect_eq(support_run(dir, "fmt -w %s", m), 0);
    char *written = support_slurp(m, NULL);
    cr_expect_str_eq(written, printed);
    cr_expect_str_eq(written,
                     "data      fashion_mnist\noptimizer sgd(lr=0.1)\nnetwork {\n    flatten\n    dense(10)\n}\n");
    cr_expect_eq(support_run(dir, "fmt --check %s", m), 0);
    free(printed), free(written);

    const char *bad = support_path(dir, "bad.bnn");
    support_write_text(bad, "network {\n    conv2d(6,\n");
    cr_expect_eq(support_run(dir, "fmt -w %s", bad), 1);
    e = support_run_err(dir);
    cr_expect(strstr(e, "bad.bnn:2:") && strstr(e, "error: expected"), "%s", e);
    free(e);
    char *kept = support_slurp(bad, NULL);
    cr_expect_str_eq(kept, "network {\n    conv2d(6,\n", "a file with errors is left as it is");
    free(kept);
    cr_expect_eq(support_run(dir, "fmt %s/missing.bnn", dir), 1);
    cr_expect_eq(support_run(dir, "fmt"), 2);
    cr_expect_eq(support_run(dir, "fmt %s %s", m, bad), 2, "two files to print");
    cr_expect_eq(support_run(dir, "fmt --check -w %s", m), 2);
    cr_expect_eq(support_run(dir, "fmt --frob %s", m), 2);
}
