/* h5guard: a trial function's success, its message, its crash (a signal, or an exit without the report, as a
 * sanitizer does it), its hang (killed at the limit), its output (not the caller's), what it leaves behind (no
 * child, no descriptor), a child whose caller was killed (it dies too), and the file identity checks. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/h5guard.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void)
{
    support_make_tmpdir(dir, sizeof dir, "h5guard");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(h5guard, .init = make_dir, .fini = remove_dir);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n;
}

/* Runs fn through the guard and checks what must hold whatever fn did: no child left, zombie or not, and no
 * descriptor more than before. */
static int run(int (*fn)(void *, char *, size_t), void *ctx, double seconds, char *err, size_t errlen)
{
    H5GuardLimits lim = {seconds, 0};
    int fds = open_fds();
    int rc = h5guard_run(fn, ctx, &lim, err, errlen);
    cr_expect_eq(open_fds(), fds, "a descriptor was left open");
    errno = 0;
    cr_expect(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD, "a child was left behind");
    return rc;
}

/* Writes this process's pid to the file named by ctx. */
static void note_pid(void *path)
{
    char s[32];
    snprintf(s, sizeof s, "%ld\n", (long)getpid());
    support_write_text(path, s);
}

static long noted_pid(const char *path)
{
    char *s = support_try_slurp(path, NULL);
    long pid = s ? atol(s) : 0;
    free(s);
    return pid;
}

static int touched;

static int succeed(void *path, char *err, size_t errlen)
{
    touched = 1;
    note_pid(path);
    snprintf(err, errlen, "ignored");
    return 0;
}

Test(h5guard, success_runs_in_another_process)
{
    char err[256] = "";
    const char *p = support_path(dir, "pid");
    cr_expect_eq(run(succeed, (void *)p, 5, err, sizeof err), H5GUARD_OK);
    cr_expect_eq(touched, 0, "the child's memory is its own");
    long pid = noted_pid(p);
    cr_expect(pid > 0 && pid != (long)getpid(), "ran in pid %ld, the test is %ld", pid, (long)getpid());
}

static int refuse(void *ctx, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", (const char *)ctx);
    return -1;
}

Test(h5guard, a_refusal_comes_back_with_its_message)
{
    char err[H5GUARD_MSG_MAX + 64] = "", long_msg[6000];
    cr_expect_eq(run(refuse, "tensor x is missing", 5, err, sizeof err), H5GUARD_FAILED);
    cr_expect_str_eq(err, "tensor x is missing");
    memset(long_msg, 'a', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    cr_expect_eq(run(refuse, long_msg, 5, err, sizeof err), H5GUARD_FAILED);
    cr_expect_str_eq(err, long_msg, "a message of 6 kB arrives whole");
    char small[16];
    cr_expect_eq(run(refuse, long_msg, 5, small, sizeof small), H5GUARD_FAILED);
    cr_expect_eq(strlen(small), sizeof small - 1, "cut to the caller's buffer");
}

static int segv(void *ctx, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    volatile int *p = NULL;
    *p = 1;
    return 0;
}

static int abort_(void *ctx, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    abort();
}

/* A sanitizer ends a crashing process with its report and exit status 1, not the signal. */
static int exit_1(void *ctx, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    _exit(1);
}

/* Even our own exit status, without the report, is no success. */
static int exit_90(void *ctx, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    _exit(90);
}

Test(h5guard, crashes_are_crashes)
{
    char err[256];
    int (*fns[4])(void *, char *, size_t) = {segv, abort_, exit_1, exit_90};
    for (int i = 0; i < 4; i++) {
        err[0] = '\0';
        cr_expect_eq(run(fns[i], NULL, 5, err, sizeof err), H5GUARD_CRASHED, "case %d: %s", i, err);
        cr_expect(err[0] && !strchr(err, '\n'), "case %d says how, in one line: '%s'", i, err);
    }
}

static int spin(void *path, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    note_pid(path);
    for (volatile unsigned long i = 0;; i++)
        ;
    return 0;
}

/* Whether process pid has ended: no longer listed, or a zombie. */
static int gone(long pid)
{
    char p[64], s[512] = "";
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r"); /* /proc files report size 0: read them as a stream */
    if (!f)
        return 1;
    if (!fgets(s, sizeof s, f))
        s[0] = '\0';
    fclose(f);
    const char *state = strrchr(s, ')'); /* "pid (comm) S ..." */
    return !state || state[2] == 'Z' || state[2] == 'X';
}

Test(h5guard, a_hang_is_killed_at_the_limit)
{
    char err[256] = "";
    const char *p = support_path(dir, "pid");
    double t0 = now();
    cr_expect_eq(run(spin, (void *)p, 0.3, err, sizeof err), H5GUARD_CRASHED);
    double took = now() - t0;
    cr_expect(took >= 0.3 && took < 2.0, "took %.2f s for a limit of 0.3 s", took);
    cr_expect(strstr(err, "did not finish within 0.3 s"), "%s", err);
    long pid = noted_pid(p);
    cr_expect(pid > 0 && gone(pid), "the child %ld still runs", pid);
}

static int noisy(void *ctx, char *err, size_t errlen)
{
    (void)ctx, (void)err, (void)errlen;
    fprintf(stderr, "HDF5-DIAG: noise on stderr\n");
    fflush(stderr);
    printf("noise on stdout\n");
    fflush(stdout);
    write(2, "raw\n", 4);
    return 0;
}

Test(h5guard, the_child_prints_nothing)
{
    char err[256];
    const char *out = support_path(dir, "out.txt"), *errf = support_path(dir, "err.txt");
    fflush(stdout), fflush(stderr);
    int o = dup(1), e = dup(2);
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), fe = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fo, 1), dup2(fe, 2);
    close(fo), close(fe);
    H5GuardLimits lim = {5, 0};
    int rc = h5guard_run(noisy, NULL, &lim, err, sizeof err);
    dup2(o, 1), dup2(e, 2);
    close(o), close(e);
    cr_expect_eq(rc, H5GUARD_OK);
    size_t n1, n2;
    free(support_slurp(out, &n1));
    free(support_slurp(errf, &n2));
    cr_expect(n1 == 0 && n2 == 0, "%zu bytes reached stdout, %zu stderr", n1, n2);
}

/* The process that called h5guard_run is killed (as a timeout of its own would kill bnni): its child must not
 * spin on as an orphan. */
Test(h5guard, the_child_dies_with_its_caller)
{
    const char *p = support_path(dir, "pid");
    pid_t caller = fork();
    cr_assert(caller >= 0);
    if (caller == 0) {
        char err[64];
        H5GuardLimits lim = {60, 0};
        h5guard_run(spin, (void *)p, &lim, err, sizeof err);
        _exit(0);
    }
    long child = 0;
    for (int i = 0; i < 500 && !(child = noted_pid(p)); i++)
        usleep(10000);
    cr_assert(child > 0, "the trial never started");
    kill(caller, SIGKILL);
    waitpid(caller, NULL, 0);
    int dead = 0;
    for (int i = 0; i < 200 && !(dead = gone(child)); i++)
        usleep(10000);
    if (!dead)
        kill((pid_t)child, SIGKILL);
    cr_expect(dead, "the orphaned child %ld still ran 2 s after its caller died", child);
}

Test(h5guard, inline_mode_runs_in_this_process)
{
    char err[64];
    H5GuardLimits lim = {5, 0};
    h5guard_set_inline(1);
    int rc = h5guard_run(succeed, (void *)support_path(dir, "pid"), &lim, err, sizeof err);
    h5guard_set_inline(0);
    cr_expect_eq(rc, H5GUARD_OK);
    cr_expect_eq(touched, 1);
    cr_expect_eq(noted_pid(support_path(dir, "pid")), (long)getpid());
}

Test(h5guard, the_limits_grow_with_the_file)
{
    H5GuardLimits a = h5guard_limits(0), b = h5guard_limits(16 << 20), c = h5guard_limits(1600ll << 20);
    cr_expect(a.seconds == 2.0 && a.bytes == 1ull << 30);
    cr_expect(b.seconds == 3.0 && b.bytes == (1ull << 30) + (64ull << 20));
    cr_expect(c.seconds == 102.0 && c.bytes == (1ull << 30) + (6400ull << 20));
}

/* Allocates and touches the number of MiB ctx points to. */
static int grab(void *mib, char *err, size_t errlen)
{
    size_t n = (size_t)*(const int *)mib << 20;
    char *p = malloc(n);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(p, 1, n);
    int sum = p[n / 2];
    free(p);
    return sum == 1 ? 0 : -1;
}

/* A damaged size field can make libhdf5 allocate whatever it says: the trial's memory is capped, so the
 * allocation fails at once rather than taking the machine's memory (or the time limit). */
Test(h5guard, memory_is_capped)
{
    char err[256] = "";
    int small = 16, big = 1024;
    H5GuardLimits lim = {60, 128ull << 20};
    cr_expect_eq(h5guard_run(grab, &small, &lim, err, sizeof err), H5GUARD_OK, "%s", err);
    int rc = h5guard_run(grab, &big, &lim, err, sizeof err);
    /* malloc fails (FAILED); under ASan+UBSan the allocator dies instead (CRASHED). */
    cr_expect(rc == H5GUARD_FAILED || rc == H5GUARD_CRASHED, "1 GiB within a cap of 128 MiB: %d %s", rc, err);
    cr_expect(rc != H5GUARD_FAILED || strcmp(err, "out of memory") == 0, "%s", err);
    cr_expect(!strstr(err, "did not finish"), "%s", err);
}

static void make_h5(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    H5Fclose(f);
}

static int same(const char *path, const H5GuardFile *id)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    int r = h5guard_same_file(f, id);
    H5Fclose(f);
    return r;
}

Test(h5guard, a_file_replaced_or_changed_is_not_the_same)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s", support_path(dir, "a.h5"));
    snprintf(b, sizeof b, "%s", support_path(dir, "b.h5"));
    make_h5(a);
    make_h5(b);
    struct stat st;
    stat(a, &st);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(AT_FDCWD, b, times, 0); /* the same size and time: only the inode tells them apart */
    H5GuardFile id;
    int fd = open(a, O_RDONLY);
    cr_assert_eq(h5guard_identify(fd, &id), 0);
    close(fd);
    cr_expect_eq(same(a, &id), 1);
    cr_assert_eq(rename(b, a), 0);
    cr_expect_eq(same(a, &id), 0, "another file renamed over it");
    fd = open(a, O_RDONLY);
    h5guard_identify(fd, &id);
    close(fd);
    FILE *f = fopen(a, "ab");
    fputs("appended", f);
    fclose(f);
    cr_expect_eq(same(a, &id), 0, "the same file, grown");
}
