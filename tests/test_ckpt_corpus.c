/* The corrupt-checkpoint corpus of issue #17 (tests/ckpt_corrupt/README.md), replayed through the binary ($BNNI)
 * as a user runs it: the four files that crashed or hung libhdf5, and every finding of the on-disk fuzzer
 * (tests/fuzz/ondisk.py, kept as a patch of a base file), must make `bnni inspect` and `bnni eval` exit 1 with
 * one line naming the file, within a few seconds; the base files themselves must load. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/support.h"

#define CORPUS "tests/ckpt_corrupt"
#define MAX_PATCHES 512
/* A hang is cut at the trial's 2 s; the rest is start-up, slower under the sanitizers. */
#define MAX_SECONDS 5.0
#define HUNG_SECONDS 20.0

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "ckptcorpus"); }

static void remove_dir(void) { support_remove_tree(dir); }

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Runs bnni with args (NULL-terminated); a run past HUNG_SECONDS is killed and fails the test. Returns the
 * status as the shell reports it, with stdout and stderr in dir/out.txt and dir/err.txt (support_run's files). */
static int run_bnni(const char *const args[], double *took)
{
    SupportSpawn how = {.out_path = support_path(dir, "out.txt"), .err_path = support_path(dir, "err.txt")};
    double t0 = now();
    pid_t pid = support_spawn(args, &how, NULL);
    int ws = 0;
    while (waitpid(pid, &ws, WNOHANG) == 0) {
        if (now() - t0 > HUNG_SECONDS) {
            kill(pid, SIGKILL); /* its trial child follows it (PR_SET_PDEATHSIG) */
            waitpid(pid, &ws, 0);
            cr_assert_fail("bnni %s %s hung: killed after %.0f s", args[0], args[1], HUNG_SECONDS);
        }
        usleep(2000);
    }
    *took = now() - t0;
    return support_status(ws);
}

/* Runs inspect and eval on path; each must fail in one line naming path (and `needle` when set), in time. */
static void expect_refused(const char *path, const char *needle)
{
    const char *const inspect[] = {"inspect", path, NULL};
    const char *const eval[] = {"eval", path, "--limit", "8", "--threads", "1", NULL};
    const char *const *cmds[2] = {inspect, eval};
    char named[600];
    snprintf(named, sizeof named, "%s: ", path);
    for (int i = 0; i < 2; i++) {
        double took;
        int st = run_bnni(cmds[i], &took);
        cr_expect_lt(took, MAX_SECONDS, "bnni %s %s took %.1f s", cmds[i][0], path, took);
        support_expect_one_line_error(dir, st, named, needle);
    }
}

static void repro(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, CORPUS "/%s", name);
    expect_refused(p, "corrupt checkpoint (the HDF5 library could not read it)");
}

TestSuite(ckpt_corpus, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(ckpt_corpus, segv_global_heap) { repro("segv-global-heap.h5"); }
Test(ckpt_corpus, segv_block_read) { repro("segv-block-read.h5"); }
Test(ckpt_corpus, hang_1) { repro("hang-1.h5"); }
Test(ckpt_corpus, hang_2) { repro("hang-2.h5"); }

/* Every command that reads a checkpoint goes through ckpt_read's trial: predict and train --init/--resume too. */
Test(ckpt_corpus, every_reader_is_guarded)
{
    const char *bad = CORPUS "/segv-global-heap.h5";
    char pgm[32 + 784] = "P5\n28 28\n255\n", named[256], one[512], iout[512], rout[512];
    size_t head = strlen(pgm);
    memset(pgm + head, 0, 784);
    support_write_bytes(support_path(dir, "one.pgm"), pgm, head + 784, 0);
    snprintf(named, sizeof named, "%s: ", bad);
    /* support_path's buffers are reused after eight calls: the commands keep their own copies. */
    snprintf(one, sizeof one, "%s", support_path(dir, "one.pgm"));
    snprintf(iout, sizeof iout, "%s", support_path(dir, "i.h5"));
    snprintf(rout, sizeof rout, "%s", support_path(dir, "r.h5"));
    const char *const predict[] = {"predict", bad, one, NULL};
    const char *const init[] = {"train", CORPUS "/model.bnn", "--init", bad, "--limit", "256", "--epochs", "1",
                                "--out", iout, "--quiet", NULL};
    const char *const resume[] = {"train", CORPUS "/model.bnn", "--resume", bad, "--limit", "256", "--epochs", "2",
                                  "--out", rout, "--quiet", NULL};
    const char *const *cmds[3] = {predict, init, resume};
    for (int i = 0; i < 3; i++) {
        double took;
        int st = run_bnni(cmds[i], &took);
        support_expect_one_line_error(dir, st, named, "corrupt checkpoint (the HDF5 library could not read it)");
    }
}

/* Checkpoints written before the change (base.h5), by it, and rewritten by another tool (h5repack) load. */
Test(ckpt_corpus, the_base_files_load)
{
    const char *names[] = {"base.h5", "base-checksummed.h5", "base-h5repack.h5"};
    for (int i = 0; i < 3; i++) {
        int st = support_run(dir, "inspect " CORPUS "/%s", names[i]);
        char *out = support_run_out(dir), *err = support_run_err(dir);
        cr_expect_eq(st, 0, "%s: %s", names[i], err);
        cr_expect(strstr(out, "model           r\n"), "%s", out);
        free(out), free(err);
    }
    int st = support_run(dir, "eval " CORPUS "/base.h5 --limit 100 --threads 1");
    char *out = support_run_out(dir);
    cr_expect_eq(st, 0);
    cr_expect(strstr(out, "(100 images)"), "%s", out);
    free(out);
}

/* ---- the fuzzer's findings: NAME.patch is "base FILE", "size N", then "at OFFSET HEXBYTES" lines */

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The sorted names of the corpus's patches; caller frees each and the array. */
static int patches(char ***out)
{
    DIR *d = opendir(CORPUS);
    cr_assert_not_null(d, "cannot open " CORPUS " (run the tests from the repository root)");
    char **v = calloc(MAX_PATCHES, sizeof *v);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_PATCHES) {
        size_t len = strlen(e->d_name);
        if (len > 6 && strcmp(e->d_name + len - 6, ".patch") == 0)
            v[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, by_name);
    *out = v;
    return n;
}

/* Rebuilds the damaged file of patch `name` as dir/NAME.h5; returns its path. */
static const char *rebuild(const char *name)
{
    char path[512], base[256] = "", line[8192];
    long size = -1;
    snprintf(path, sizeof path, CORPUS "/%s", name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    unsigned char *buf = NULL;
    size_t len = 0;
    while (fgets(line, sizeof line, f)) {
        long at;
        int k;
        if (sscanf(line, "base %255s", base) == 1) {
            snprintf(path, sizeof path, CORPUS "/%s", base);
            buf = (unsigned char *)support_slurp(path, &len);
        } else if (sscanf(line, "size %ld", &size) == 1) {
            cr_assert(buf && size >= 0 && (size_t)size <= len, "%s: size before base, or larger", name);
            len = (size_t)size;
        } else if (sscanf(line, "at %ld %n", &at, &k) == 1) {
            cr_assert(buf && at >= 0, "%s: a change before the base", name);
            for (const char *h = line + k; h[0] && h[1] && h[0] != '\n' && (size_t)at < len; h += 2, at++)
                sscanf(h, "%2hhx", &buf[at]);
        } else {
            cr_assert(line[0] == '#' || line[0] == '\n', "%s: cannot read the line %s", name, line);
        }
    }
    fclose(f);
    cr_assert(buf && size >= 0, "%s names no base or no size", name);
    char stem[256];
    snprintf(stem, sizeof stem, "%.*s.h5", (int)(strlen(name) - 6), name);
    const char *out = support_path(dir, stem);
    support_write_bytes(out, buf, len, 0);
    free(buf);
    return out;
}

ParameterizedTestParameters(ckpt_corpus, fuzz_findings)
{
    static int index[MAX_PATCHES];
    char **names;
    int n = patches(&names);
    for (int i = 0; i < n; i++)
        index[i] = i, free(names[i]);
    free(names);
    return cr_make_param_array(int, index, (size_t)n);
}

ParameterizedTest(int *i, ckpt_corpus, fuzz_findings)
{
    char **names;
    int n = patches(&names);
    cr_assert_lt(*i, n);
    cr_log_info("%s", names[*i]);
    expect_refused(rebuild(names[*i]), NULL);
    for (int k = 0; k < n; k++)
        free(names[k]);
    free(names);
}
