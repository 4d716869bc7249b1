/* `bnni check`: parse, expand and shape-check a model file, then print its layer table.
 * Diagnostics go to stderr as FILE:LINE:COL; the table goes to stdout. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "frontend.h"

const char cmd_check_usage[] =
    "usage: bnni check MODEL.bnn... [--quiet] [--mem-cap SIZE]\n"
    "\n"
    "Parses each model, expands blocks and repeats, infers every layer's shape and prints a table:\n"
    "index, name, type, output shape, trainable parameters and buffers, with totals.\n"
    "\n"
    "  --quiet          print diagnostics only, no table\n"
    "  --mem-cap SIZE   refuse models whose training would need more memory, in bytes or with a suffix\n"
    "                   K, M, G or T (binary: 512M); default: the machine's physical memory\n"
    "\n"
    "exit status: 0 all models are valid, 1 a model has errors, 2 usage error\n"
    "example: bnni check models/lenet_bn.bnn --mem-cap 2G\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni check: error: %s%s%s\nusage: bnni check MODEL.bnn... [options]   (bnni help check)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

int cmd_parse_bytes(const char *s, unsigned long long *v)
{
    static const char units[] = "KMGT";
    char *end;
    if (!s || !(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (errno || n == 0 || (*end && (!u || end[1])))
        return -1;
    for (int shift = u ? 10 * (int)(u - units + 1) : 0; shift > 0; shift -= 10) {
        if (n > (~0ull >> 10))
            return -1;
        n <<= 10;
    }
    *v = n;
    return 0;
}

int cmd_check(int argc, char **argv)
{
    CheckOptions opts = {.diag = stderr};
    int quiet = 0, nfiles = 0, status = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--mem-cap") == 0) {
            if (++i == argc)
                return usage_error("this option needs a value", "--mem-cap");
            if (cmd_parse_bytes(argv[i], &opts.mem_cap_bytes) < 0)
                return usage_error("--mem-cap needs a size in bytes, such as 1500000000, 512M or 2G", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("unknown option", argv[i]);
        }
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--mem-cap") == 0) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            continue;
        nfiles++;
        ModelSpec *m = NULL;
        if (bnn_load_file(argv[i], &opts, &m) != 0) {
            status = 1;
            continue;
        }
        if (!quiet)
            bnn_print_summary(m, stdout);
        spec_free(m);
    }
    if (nfiles == 0)
        return usage_error("no model file given", NULL);
    return status;
}
