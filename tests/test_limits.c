/* Resource limits, through the built binary ($BNNI, default ./bnni): a model whose training would need more
 * memory than the cap (--mem-cap, default the machine's physical memory) is refused at check time with the
 * amount, before anything is allocated; a save that fails for real (a full file system, a read-only, missing
 * or wrong directory) is one line on stderr, exit status 1, and leaves the previous checkpoint byte for byte. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support.h"

static char dir[64], mnt[128], model[128], out_path[128], err_path[128]; /* model: dir/m.bnn */

static void setup(void)
{
    support_make_tmpdir(dir, sizeof dir, "limits");
    mnt[0] = '\0';
    snprintf(model, sizeof model, "%s/m.bnn", dir);
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
}

static void teardown(void)
{
    if (mnt[0])
        umount2(mnt, MNT_DETACH);
    support_remove_tree(dir);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 400);

static const char *in_dir(const char *name) { return support_path(dir, name); }

typedef struct Limits {
    rlim_t address_space; /* 0: unlimited */
    uid_t uid;            /* run as this user when > 0 (for a read-only directory that binds root too) */
    rlim_t file_size;     /* 0: unlimited; else the largest file the child may write (as `ulimit -f`) */
} Limits;

/* In the child, just before exec: lim's address space, file size and user (support_spawn's prepare). SIGXFSZ
 * keeps its default action (death), as under `ulimit -f`: bnni ignores it itself, to report the failed write. */
static void apply_limits(const void *ctx)
{
    const Limits *lim = ctx;
    struct rlimit rl = {lim->address_space, lim->address_space}, fs = {lim->file_size, lim->file_size};
    if (lim->address_space && setrlimit(RLIMIT_AS, &rl) < 0)
        _exit(125);
    if (lim->file_size && (signal(SIGXFSZ, SIG_DFL) == SIG_ERR || setrlimit(RLIMIT_FSIZE, &fs) < 0))
        _exit(124);
    if (lim->uid && (setgroups(0, NULL) < 0 || setgid(lim->uid) < 0 || setuid(lim->uid) < 0))
        _exit(126);
}

/* Runs `bnni ARGS...` (NULL-terminated) under lim, stdout in dir/out.txt, stderr in dir/err.txt; returns the exit
 * status, or 128 + signal. */
static int run_limited(Limits lim, const char *arg, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a && n < 31; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    SupportSpawn how = {.out_path = out_path, .err_path = err_path, .prepare = apply_limits, .ctx = &lim};
    return support_status(support_reap(support_spawn(args, &how, NULL)));
}

#define run(...) run_limited((Limits){0, 0, 0}, __VA_ARGS__, (const char *)NULL)

/* Caller frees. */
static char *err_text(void) { return support_run_err(dir); }
/* Caller frees. */
static char *out_text(void) { return support_run_out(dir); }

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Exit status 1 and exactly one stderr line "bnni: error: ..." containing each needle. */
static void expect_one_line_error(int status, const char *n1, const char *n2)
{
    support_expect_one_line_error(dir, status, n1, n2);
}

/* LeNet-BN with momentum (so that its checkpoint is about 400 KB). Its training estimate at batch 128,
 * counted by hand from docs/language.md's shapes: 44,878 parameters x 16 bytes (value, gradient, two optimizer
 * states) + 452 batchnorm buffers x 4 + 16,222 activation values per image (input 784, conv 3456 x 3, pool 864,
 * conv 1024 x 3, pool 256, flatten 256, dense 120 x 3 + 84 x 3 + 10) x 128 images x 4 bytes x 3
 * = 25,636,848 bytes, 24.4 MiB. */
static const char lenet[] = "model lenet_bn\n"
                            "data fashion_mnist(batch=128)\n"
                            "optimizer sgd(lr=0.1, momentum=0.9)\n" SUPPORT_LENET_BN_NETWORK;
#define LENET_BYTES 25636848ull

/* ---------------------------------------------------------------- memory */

/* Diagnostic "FILE:4:1: error: training this model needs about AMOUNT ..." with the source line and a caret. */
static void expect_memory_diagnostic(const char *file, const char *amount, const char *cap)
{
    char *e = err_text(), want[512];
    cr_assert(e);
    snprintf(want, sizeof want, "%s:4:1: error: training this model needs about %s of memory", file, amount);
    cr_expect(strstr(e, want), "stderr lacks '%s':\n%s", want, e);
    cr_expect(strstr(e, cap), "stderr lacks '%s':\n%s", cap, e);
    cr_expect(strstr(e, "\nnetwork {\n^\n"), "no source line and caret:\n%s", e);
    free(e);
}

/* 100 dense layers of 65,536 units: 425 billion parameters, 6.2 TiB to train, more than any machine this runs
 * on. Refused by default, at once, by check and by train, in an address space of 1 GiB (nothing is allocated). */
Test(limits, a_model_larger_than_physical_memory_is_refused_without_allocating)
{
    support_write_text(in_dir("huge.bnn"), "model huge\ndata fashion_mnist(batch=128)\noptimizer sgd(lr=0.1)\n"
                                   "network {\n  flatten\n  repeat 100 { dense(65536) }\n  dense(10)\n}\n");
    /* ASan reserves terabytes of shadow memory, so the address-space limit only applies to a plain build. */
#if defined(__SANITIZE_ADDRESS__)
    Limits lim = {0, 0, 0};
#else
    Limits lim = {1ull << 30, 0, 0};
#endif
    int st = run_limited(lim, "check", in_dir("huge.bnn"), (const char *)NULL);
    cr_expect_eq(st, 1, "bnni check: status %d", st);
    expect_memory_diagnostic(in_dir("huge.bnn"), "6.2 TiB", "of physical memory");
    char *e = err_text();
    cr_expect(strstr(e, "(425260351498 parameters, "), "the parameter count: %s", e);
    free(e);
    st = run_limited(lim, "train", in_dir("huge.bnn"), "--out", in_dir("huge.h5"), (const char *)NULL);
    cr_expect_eq(st, 1, "bnni train: status %d", st);
    expect_memory_diagnostic(in_dir("huge.bnn"), "6.2 TiB", "of physical memory");
    cr_expect(access(in_dir("huge.h5"), F_OK) != 0, "a checkpoint was written");
}

Test(limits, mem_cap_refuses_a_model_that_needs_more)
{
    const char *m = model;
    support_write_text(m, lenet);
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "24M"), 1);
    expect_memory_diagnostic(m, "24.4 MiB", "more than 24.0 MiB (the memory cap)");
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "25M"), 0);
    /* The cap is compared with the estimate to the byte; K, M, G, T are binary and either case. */
    char exact[32], below[32];
    snprintf(exact, sizeof exact, "%llu", LENET_BYTES);
    snprintf(below, sizeof below, "%llu", LENET_BYTES - 1);
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", exact), 0);
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", below), 1);
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "25036k"), 0, "25,636,864 bytes: 16 to spare");
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "25035K"), 1, "25,635,840 bytes: 1,008 short");
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "1g"), 0);
    cr_expect_eq(run("check", m, "--quiet", "--mem-cap", "1T"), 0);
    /* train refuses before loading any data or writing anything. */
    int st = run("train", m, "--mem-cap", "1M", "--epochs", "1", "--limit", "500", "--out", in_dir("m.h5"));
    cr_expect_eq(st, 1);
    expect_memory_diagnostic(m, "24.4 MiB", "more than 1.0 MiB (the memory cap)");
    char *out = out_text();
    cr_expect_eq(out[0], '\0', "no epoch line: %s", out);
    free(out);
    cr_expect(access(in_dir("m.h5"), F_OK) != 0, "a checkpoint was written");
}

/* The estimate is for training: bnni eval and predict hold chunks of 32 images, so a checkpoint whose model's batch
 * would need more memory to train than this machine has (here 2^20 images of 12,984 values, about 152 GiB) still
 * evaluates, while check still refuses that model. */
Test(limits, eval_makes_no_training_estimate)
{
    const char *net = "network {\n  flatten\n  dense(4096)\n  batchnorm\n  sigmoid\n  dense(10)\n}\n";
    char small[512], big[512];
    snprintf(small, sizeof small, "model wide\ndata fashion_mnist(batch=64)\noptimizer sgd(lr=0.1)\n%s", net);
    snprintf(big, sizeof big, "model wide\ndata fashion_mnist(batch=1048576)\noptimizer sgd(lr=0.1)\n%s", net);
    support_write_text(in_dir("small.bnn"), small);
    support_write_text(in_dir("big.bnn"), big);
    int st = run("train", in_dir("small.bnn"), "--epochs", "1", "--limit", "256", "--test-limit", "64", "--quiet",
                 "--out", in_dir("w.h5"));
    cr_assert_eq(st, 0, "train: status %d", st);
    st = run("check", in_dir("big.bnn"), "--quiet", "--mem-cap", "100G");
    cr_expect_eq(st, 1, "check of the 2^20-image batch: status %d", st);
    st = run("eval", in_dir("w.h5"), "--model", in_dir("big.bnn"), "--limit", "100");
    cr_expect_eq(st, 0, "eval with the 2^20-image batch: status %d", st);
    char *out = out_text();
    cr_expect(strstr(out, "(100 images)"), "eval output: %s", out);
    free(out);
}

/* A bad size is a usage error: exit status 2, the message and the usage line. */
Test(limits, mem_cap_usage_errors)
{
    const char *m = model;
    support_write_text(m, lenet);
    const char *bad[] = {"0", "-5", "12X", "1KB", "", "K", "99999999999999999999", "17179869184G", "1.5G"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *cmds[] = {"check", "train"};
        for (int c = 0; c < 2; c++) {
            int st = run(cmds[c], m, "--mem-cap", bad[i]);
            char *e = err_text(), want[128];
            cr_expect_eq(st, 2, "bnni %s --mem-cap '%s': status %d", cmds[c], bad[i], st);
            snprintf(want, sizeof want, "bnni %s: error: --mem-cap needs a size in bytes, such as 1500000000, 512M "
                     "or 2G: %s\nusage: bnni %s ", cmds[c], bad[i], cmds[c]);
            cr_expect(strncmp(e, want, strlen(want)) == 0 && count_lines(e) == 2, "got:\n%s", e);
            free(e);
        }
    }
    cr_expect_eq(run("check", m, "--mem-cap"), 2);
}

/* ---------------------------------------------------------------- saving */

/* A 1-epoch checkpoint of LeNet at path, and a copy at dir/orig.h5. */
static void first_checkpoint(const char *file, const char *path)
{
    int st = run("train", file, "--epochs", "1", "--limit", "500", "--test-limit", "500", "--threads", "1", "--quiet",
                 "--out", path);
    char *e = err_text();
    cr_assert_eq(st, 0, "training failed: %s", e);
    free(e);
    support_copy_file(path, in_dir("orig.h5"), -1);
}

/* Names in d that start with prefix. */
static int count_prefixed(const char *d, const char *prefix)
{
    DIR *dd = opendir(d);
    struct dirent *e;
    int n = 0;
    while (dd && (e = readdir(dd)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (dd)
        closedir(dd);
    return n;
}

/* A real full file system: a 600 KiB tmpfs holds one LeNet checkpoint (about 400 KB) but not a second one
 * beside it, so the next save runs out of space in the middle of its write. Mounting needs CAP_SYS_ADMIN; where
 * it fails (most containers), or when BNNI_FULL_DISK=fsize asks for it, the save fails instead through a file-size
 * limit smaller than a checkpoint (RLIMIT_FSIZE, as `ulimit -f`): EFBIG where a full disk gives ENOSPC, with the
 * same guarantees to check. Either way the test runs, and says on stderr when it took the fallback. */
Test(limits, a_full_disk_keeps_the_previous_checkpoint)
{
    const char *m = model, *force = getenv("BNNI_FULL_DISK");
    support_write_text(m, lenet);
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    Limits lim = {0, 0, 0};
    const char *why = "write failed: No space left on device";
    if (force && strcmp(force, "fsize") == 0) {
        fprintf(stderr, "limits/a_full_disk_keeps_the_previous_checkpoint: BNNI_FULL_DISK=fsize: a file-size limit "
                        "instead of a full tmpfs\n");
        lim.file_size = 16384, why = "write failed: File too large";
    } else if (mount("tmpfs", mnt, "tmpfs", 0, "size=600k") < 0) {
        fprintf(stderr, "limits/a_full_disk_keeps_the_previous_checkpoint: cannot mount a tmpfs (%s): a file-size "
                        "limit instead\n", strerror(errno));
        lim.file_size = 16384, why = "write failed: File too large";
    }
    if (lim.file_size)
        mnt[0] = '\0'; /* nothing to unmount: the directory stays an ordinary one */
    char keep[256];
    snprintf(keep, sizeof keep, "%s/small/keep.h5", dir);
    first_checkpoint(m, keep);
    struct stat st_keep;
    cr_assert(stat(keep, &st_keep) == 0 && (rlim_t)st_keep.st_size > 4 * (lim.file_size ? lim.file_size : 16384),
              "the checkpoint must be far larger than the file-size limit");
    int st = run_limited(lim, "train", m, "--epochs", "1", "--limit", "500", "--test-limit", "500", "--threads", "1",
                         "--out", keep, (const char *)NULL);
    char want[512];
    snprintf(want, sizeof want, "bnni: error: %s: cannot save the checkpoint (%s); the previous file is unchanged\n",
             keep, why);
    char *e = err_text();
    cr_expect_str_eq(e, want);
    free(e);
    cr_expect_eq(st, 1);
    cr_expect(support_same_bytes(keep, in_dir("orig.h5")), "the previous checkpoint changed");
    char small[256];
    snprintf(small, sizeof small, "%s/small", dir);
    cr_expect_eq(count_prefixed(small, ".keep.h5."), 0, "the temporary file was left behind");
    if (mnt[0]) {
        cr_expect_eq(umount2(mnt, 0), 0);
        mnt[0] = '\0';
    }
}

/* A directory the process cannot write to (for root: run as nobody) fails at once, before any training. */
Test(limits, a_read_only_directory_fails_before_training)
{
    cr_assert_eq(chmod(dir, 0755), 0); /* nobody must reach the model */
    const char *m = model;
    char ro[256], keep[256];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    snprintf(keep, sizeof keep, "%s/ro/keep.h5", dir);
    support_write_text(m, lenet);
    chmod(m, 0644);
    cr_assert_eq(mkdir(ro, 0755), 0);
    first_checkpoint(m, keep);
    cr_assert_eq(chmod(ro, 0555), 0);
    Limits lim = {0, geteuid() == 0 ? 65534 : 0, 0};
    int st = run_limited(lim, "train", m, "--epochs", "1", "--limit", "500", "--threads", "1", "--out", keep,
                         (const char *)NULL);
    char want[1024];
    snprintf(want, sizeof want, "%s: cannot create a temporary file in %s: Permission denied", keep, ro);
    expect_one_line_error(st, want, NULL);
    char *out = out_text();
    cr_expect_eq(out[0], '\0', "it trained first: %s", out);
    free(out);
    cr_expect(support_same_bytes(keep, in_dir("orig.h5")), "the previous checkpoint changed");
    cr_expect_eq(count_prefixed(ro, "."), 2, "only . and .. beside keep.h5");
}

Test(limits, a_missing_or_wrong_directory_fails_before_training)
{
    const char *m = model;
    support_write_text(m, lenet);
    int st = run("train", m, "--epochs", "1", "--limit", "500", "--out", in_dir("no/such/c.h5"));
    char want[512];
    snprintf(want, sizeof want, "%s: cannot create a temporary file in %s: No such file or directory",
             in_dir("no/such/c.h5"), in_dir("no/such"));
    expect_one_line_error(st, want, NULL);
    support_write_text(in_dir("file"), "a file, not a directory\n");
    st = run("train", m, "--epochs", "1", "--limit", "500", "--out", in_dir("file/c.h5"));
    expect_one_line_error(st, "file/c.h5: cannot create a temporary file in ", "Not a directory");
    st = run("train", m, "--epochs", "1", "--limit", "500", "--out", dir);
    expect_one_line_error(st, "is a directory; the checkpoint path must name a file", NULL);
    char *out = out_text();
    cr_expect_eq(out[0], '\0', "it trained first: %s", out);
    free(out);
}
