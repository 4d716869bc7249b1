/* Test support shared by the test files (tests/support.h): temporary directories, whole files, and the built
 * binary run as a child. Failures are Criterion assertions, since these functions only run inside tests. */
#include "tests/support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- directories */

void support_make_tmpdir(char *buf, size_t len, const char *tag)
{
    int n = snprintf(buf, len, "/tmp/bnni-%s-XXXXXX", tag);
    cr_assert(n > 0 && (size_t)n < len, "no room for the temporary directory's name");
    cr_assert(mkdtemp(buf), "cannot create %s", buf);
}

void support_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        /* A test may leave a directory read-only; without write permission its entries could not go. */
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            chmod(p, 0755), support_remove_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

const char *support_path(const char *dir, const char *name)
{
    static char p[8][512];
    static int k;
    char *s = p[k++ % 8];
    snprintf(s, 512, "%s/%s", dir, name);
    return s;
}

/* ---------------------------------------------------------------- whole files */

void support_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

void support_write_bytes(const char *path, const void *bytes, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert(f, "cannot write %s", path);
        cr_assert(gzwrite(f, bytes, (unsigned)len) == (int)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert(f, "cannot write %s", path);
        cr_assert(fwrite(bytes, 1, len, f) == len);
        fclose(f);
    }
}

/* Caller frees. */
char *support_try_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert(s && fread(s, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

/* Caller frees. */
char *support_slurp(const char *path, size_t *len)
{
    char *s = support_try_slurp(path, len);
    cr_assert(s, "cannot read %s", path);
    return s;
}

int support_same_bytes(const char *a, const char *b)
{
    size_t la, lb;
    char *x = support_try_slurp(a, &la), *y = support_try_slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x), free(y);
    return same;
}

void support_copy_file(const char *from, const char *to, long keep)
{
    size_t n;
    char *s = support_slurp(from, &n);
    size_t k = keep >= 0 && (size_t)keep < n ? (size_t)keep : n;
    FILE *f = fopen(to, "wb");
    cr_assert(f, "cannot write %s", to);
    cr_assert(fwrite(s, 1, k, f) == k);
    fclose(f);
    free(s);
}

/* ---------------------------------------------------------------- running bnni */

const char *support_bnni(void)
{
    const char *b = getenv("BNNI");
    return b && *b ? b : "./bnni";
}

int support_status(int wait_status)
{
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

/* OpenMP threads wait passively: the suite runs two tests at a time on two cores, where spinning threads would
 * only slow each other down (results do not depend on it). */
int support_run(const char *dir, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "OMP_WAIT_POLICY=passive %s %s >%s/out.txt 2>%s/err.txt", support_bnni(), args, dir,
             dir);
    int st = system(cmd);
    cr_assert(st != -1);
    return support_status(st);
}

/* Caller frees. */
char *support_run_out(const char *dir) { return support_slurp(support_path(dir, "out.txt"), NULL); }

/* Caller frees. */
char *support_run_err(const char *dir) { return support_slurp(support_path(dir, "err.txt"), NULL); }

void support_expect_one_line_error(const char *dir, int status, const char *n1, const char *n2)
{
    char *e = support_run_err(dir);
    cr_expect_eq(status, 1, "status %d, stderr: %s", status, e);
    cr_expect(strncmp(e, "bnni: error: ", 13) == 0, "stderr: %s", e);
    char *nl = strchr(e, '\n');
    cr_expect(nl && nl[1] == '\0', "not exactly one line: %s", e);
    cr_expect(strstr(e, n1), "'%s' lacks '%s'", e, n1);
    cr_expect(!n2 || strstr(e, n2), "'%s' lacks '%s'", e, n2);
    free(e);
}

/* In the child: fd (1 or 2) into a fresh file at path. */
static void redirect(int fd, const char *path)
{
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(f, fd);
    if (f >= 0 && f != fd)
        close(f);
}

/* Close-on-exec on both ends, so that the child keeps no stray copy and the reader sees EOF at its exit. */
static void make_pipe(int p[2])
{
    cr_assert_eq(pipe(p), 0);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
}

/* In the child: never returns, and asserts nothing (a failed assertion would report from the wrong process). */
static _Noreturn void exec_child(const char *const argv[], const SupportSpawn *how, int pipe_in)
{
    if (how->out_path)
        redirect(1, how->out_path);
    else
        dup2(pipe_in, 1);
    redirect(2, how->err_path);
    setenv("OMP_WAIT_POLICY", "passive", 1); /* as support_run does */
    if (how->prepare)
        how->prepare(how->ctx);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

pid_t support_spawn(const char *const args[], const SupportSpawn *how, int *out_fd)
{
    const char *argv[64] = {support_bnni()};
    int n = 1, p[2] = {-1, -1};
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    cr_assert(!args[n - 1], "too many arguments for bnni");
    if (!how->out_path)
        make_pipe(p);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0)
        exec_child(argv, how, p[1]);
    if (!how->out_path)
        close(p[1]), *out_fd = p[0];
    return pid;
}

int support_reap(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}
