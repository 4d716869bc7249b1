/* `bnni check`: parse, expand and shape-check a model file, then print its layer table.
 * Diagnostics go to stderr as FILE:LINE:COL; the table goes to stdout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "frontend.h"

const char cmd_check_usage[] =
    "usage: bnni check MODEL.bnn... [--quiet] [--mem-cap BYTES]\n"
    "\n"
    "Parses each model, expands blocks and repeats, infers every layer's shape and prints a table:\n"
    "index, name, type, output shape, trainable parameters and buffers, with totals.\n"
    "\n"
    "  --quiet          print diagnostics only, no table\n"
    "  --mem-cap BYTES  refuse models whose training would need more memory (default: physical memory)\n"
    "\n"
    "exit status: 0 all models are valid, 1 a model has errors, 2 usage error\n"
    "example: bnni check models/lenet_bn.bnn\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni check: error: %s%s%s\n%s", msg, arg ? ": " : "", arg ? arg : "", "usage: bnni check MODEL.bnn... [--quiet] [--mem-cap BYTES]\n");
    return 2;
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
                return usage_error("--mem-cap needs a value", NULL);
            char *end;
            errno = 0;
            unsigned long long v = strtoull(argv[i], &end, 10);
            if (errno || *end || end == argv[i] || argv[i][0] == '-')
                return usage_error("--mem-cap needs a positive number of bytes", argv[i]);
            opts.mem_cap_bytes = v;
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
