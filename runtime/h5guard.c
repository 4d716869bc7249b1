/* The forked trial read of h5guard.h. The child reports through a pipe (a fixed header, then its message) and
 * ends with _exit(CHILD_EXIT); the parent trusts that report only when the child also exited with that code, so a
 * sanitizer that turns a SIGSEGV into a report and exit status 1 counts as a crash, as the signal itself does. */
#include "h5guard.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define REPORT_MAGIC 0x64673568u /* "h5gd" */
#define CHILD_EXIT 90            /* any other exit status is not ours: a sanitizer's, or exit() deep inside */

typedef struct Report {
    uint32_t magic;
    int32_t status; /* fn's return value */
    uint32_t len;   /* bytes of message that follow */
} Report;

static int run_inline;

void h5guard_set_inline(int on) { run_inline = on; }

H5GuardLimits h5guard_limits(long long file_bytes)
{
    unsigned long long n = file_bytes > 0 ? (unsigned long long)file_bytes : 0;
    return (H5GuardLimits){2.0 + (double)n / (16.0 * 1024 * 1024), (1ull << 30) + 4 * n};
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---------------------------------------------------------------- the child */

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w, n -= (size_t)w;
    }
}

/* Caps the growth of this process's address space at `bytes` more than it has now. Linux only (the size is read
 * from /proc); elsewhere the time limit alone bounds the trial. */
static void limit_memory(unsigned long long bytes)
{
    unsigned long long pages = 0;
    FILE *f = bytes ? fopen("/proc/self/statm", "r") : NULL;
    if (f && fscanf(f, "%llu", &pages) == 1) {
        rlim_t cap = (rlim_t)(pages * (unsigned long long)sysconf(_SC_PAGESIZE) + bytes);
        struct rlimit as = {cap, cap};
        setrlimit(RLIMIT_AS, &as);
    }
    if (f)
        fclose(f);
}

/* Makes the child quiet, bounded, and mortal even if its parent dies without killing it. */
static void child_setup(pid_t parent, const H5GuardLimits *lim)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent died before prctl took effect */
        _exit(CHILD_EXIT + 1);
#else
    (void)parent;
#endif
    rlim_t secs = (rlim_t)lim->seconds + 2; /* SIGXCPU ends a loop that outlives its parent without prctl */
    struct rlimit core = {0, 0}, cpu = {secs, secs + 1};
    setrlimit(RLIMIT_CORE, &core);
    setrlimit(RLIMIT_CPU, &cpu);
    limit_memory(lim->bytes);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
#if defined(__SANITIZE_ADDRESS__)
    /* The trial exists to let libhdf5 crash here: a sanitizer's report of that crash (which a log_path would put in
     * a file that fails `make test`) goes to the silenced stderr; the status still says it crashed. */
    __sanitizer_set_report_fd((void *)(intptr_t)STDERR_FILENO);
#endif
}

static _Noreturn void child(int fd, pid_t parent, const H5GuardLimits *lim, H5GuardFn fn, void *ctx)
{
    char msg[H5GUARD_MSG_MAX];
    msg[0] = '\0'; /* not the whole buffer: each page written is a copy-on-write fault */
    child_setup(parent, lim);
    int rc = fn(ctx, msg, sizeof msg);
    Report r = {REPORT_MAGIC, rc, (uint32_t)strnlen(msg, sizeof msg - 1)};
    write_all(fd, (const char *)&r, sizeof r);
    write_all(fd, msg, r.len);
    _exit(CHILD_EXIT);
}

/* ---------------------------------------------------------------- the parent */

/* Reads the child's report into buf (at most cap bytes; the rest is drained) until end of file. Returns 0, or
 * -1 when the deadline passed first. */
static int read_report(int fd, char *buf, size_t cap, size_t *got, double deadline)
{
    char sink[512];
    *got = 0;
    for (;;) {
        double left = deadline - now();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0)
            continue; /* EINTR, or the rounding of the last millisecond */
        ssize_t r = *got < cap ? read(fd, buf + *got, cap - *got) : read(fd, sink, sizeof sink);
        if (r < 0 && errno != EINTR)
            return 0; /* a broken pipe is judged by the child's exit, like an empty one */
        if (r == 0)
            return 0;
        if (r > 0 && *got < cap)
            *got += (size_t)r;
    }
}

/* Waits for the child until the deadline, then kills it. Returns its wait status; *killed says whether it was
 * killed here. */
static int reap(pid_t pid, double deadline, int *killed)
{
    int st = 0;
    long nap_ns = 20000;
    *killed = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return st;
        if (now() >= deadline) {
            kill(pid, SIGKILL);
            *killed = 1;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return st;
        }
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        nap_ns = nap_ns < 2000000 ? nap_ns * 2 : nap_ns; /* the child usually exits within microseconds */
    }
}

/* Turns what came back from the child into the result. */
static int judge(int st, int killed, const char *buf, size_t got, double seconds, char *err, size_t errlen)
{
    Report r;
    if (killed) {
        snprintf(err, errlen, "did not finish within %.1f s", seconds);
        return H5GUARD_CRASHED;
    }
    if (WIFSIGNALED(st)) {
        snprintf(err, errlen, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
        return H5GUARD_CRASHED;
    }
    if (got >= sizeof r)
        memcpy(&r, buf, sizeof r);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != CHILD_EXIT || got < sizeof r || r.magic != REPORT_MAGIC ||
        r.len != got - sizeof r) {
        snprintf(err, errlen, "exited with status %d without its report", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return H5GUARD_CRASHED;
    }
    if (r.status == 0)
        return H5GUARD_OK;
    snprintf(err, errlen, "%.*s", (int)r.len, buf + sizeof r);
    return H5GUARD_FAILED;
}

int h5guard_run(H5GuardFn fn, void *ctx, const H5GuardLimits *lim, char *err, size_t errlen)
{
    char buf[sizeof(Report) + H5GUARD_MSG_MAX];
    int fds[2];
    if (run_inline)
        return fn(ctx, err, errlen) == 0 ? H5GUARD_OK : H5GUARD_FAILED;
    if (pipe(fds) < 0) {
        snprintf(err, errlen, "cannot create a pipe: %s", strerror(errno));
        return H5GUARD_NOT_RUN;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC); /* nothing the child may exec (a symbolizer) holds the pipe open */
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    double deadline = now() + lim->seconds;
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(fds[1], parent, lim, fn, ctx);
    }
    int saved = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        snprintf(err, errlen, "cannot start a process: %s", strerror(saved));
        return H5GUARD_NOT_RUN;
    }
    size_t got = 0;
    int late = read_report(fds[0], buf, sizeof buf, &got, deadline) < 0, killed;
    close(fds[0]);
    int st = reap(pid, late ? 0 : deadline, &killed);
    return judge(st, killed, buf, got, lim->seconds, err, errlen);
}

/* ---------------------------------------------------------------- the file read twice */

int h5guard_identify(int fd, H5GuardFile *id)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    *id = (H5GuardFile){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return 0;
}

int h5guard_same_file(hid_t f, const H5GuardFile *id)
{
    int *fd = NULL;
    H5GuardFile now_id;
    if (H5Fget_vfd_handle(f, H5P_DEFAULT, (void **)&fd) < 0 || !fd || h5guard_identify(*fd, &now_id) < 0)
        return 0;
    return now_id.dev == id->dev && now_id.ino == id->ino && now_id.size == id->size &&
           now_id.mtime.tv_sec == id->mtime.tv_sec && now_id.mtime.tv_nsec == id->mtime.tv_nsec;
}
