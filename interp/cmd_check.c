/* `bnni check`: parse, expand and shape-check a model file, then print its layer table.
 * Diagnostics go to stderr as FILE:LINE:COL; the table goes to stdout. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "frontend.h"
#include "override.h"

const char cmd_check_usage[] =
    "usage: bnni check MODEL.bnn... [--quiet] [--mem-cap SIZE] [--set KEY=VALUE]...\n"
    "\n"
    "Parses each model, expands blocks and repeats, infers every layer's shape and prints a table:\n"
    "index, name, type, output shape, trainable parameters and buffers, with totals.\n"
    "\n"
    "  --quiet          print diagnostics only, no table\n"
    "  --mem-cap SIZE   refuse models whose training would need more memory, in bytes or with a suffix\n"
    "                   K, M, G or T (binary: 512M); default: the machine's physical memory\n"
    "  --set KEY=VALUE  check the model with a setting changed, as bnni train --set would train it\n"
    "                   (repeatable; docs/language.md, \"Overrides\")\n"
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

/* --set's value appended to sets; returns 0, or the exit status after the error. */
static int add_set(Override **sets, int *n, const char *arg)
{
    char err[512];
    int rc = override_push(sets, n, arg, err, sizeof err);
    if (rc == OVERRIDE_USAGE)
        return usage_error(err, NULL);
    if (rc != OVERRIDE_OK)
        fprintf(stderr, "bnni: error: --set %s: %s\n", arg, err);
    return rc == OVERRIDE_OK ? 0 : 1;
}

/* Checks each file (not an option or an option's value) of argv; returns 1 when one has errors. */
static int check_files(int argc, char **argv, const CheckOptions *opts, int quiet, int *nfiles)
{
    int status = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--mem-cap") == 0 || strcmp(argv[i], "--set") == 0) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            continue;
        ++*nfiles;
        ModelSpec *m = NULL;
        if (bnn_load_file(argv[i], opts, &m) != 0) {
            status = 1;
            continue;
        }
        if (!quiet)
            bnn_print_summary(m, stdout);
        spec_free(m);
    }
    return status;
}

int cmd_check(int argc, char **argv)
{
    CheckOptions opts = {.diag = stderr};
    Override *sets = NULL;
    int quiet = 0, nfiles = 0, nsets = 0, status = 0;
    for (int i = 0; i < argc && status == 0; i++) {
        if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--set") == 0) {
            status = ++i == argc ? usage_error("this option needs a value", "--set") : add_set(&sets, &nsets, argv[i]);
        } else if (strcmp(argv[i], "--mem-cap") == 0) {
            if (++i == argc)
                status = usage_error("this option needs a value", "--mem-cap");
            else if (cmd_parse_bytes(argv[i], &opts.mem_cap_bytes) < 0)
                status = usage_error("--mem-cap needs a size in bytes, such as 1500000000, 512M or 2G", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            status = usage_error("unknown option", argv[i]);
        }
    }
    opts.overrides = sets, opts.noverrides = nsets;
    if (status == 0) {
        status = check_files(argc, argv, &opts, quiet, &nfiles);
        if (nfiles == 0)
            status = usage_error("no model file given", NULL);
    }
    override_free_all(sets, nsets);
    return status;
}
