/* Test support shared by the test files: temporary directories, whole-file reads and writes, and running the
 * built binary ($BNNI, default ./bnni) as a child with its output in files or on a pipe (tests only). */
#ifndef BNNI_SUPPORT_H
#define BNNI_SUPPORT_H

#include <stddef.h>
#include <sys/types.h>

/* Creates a fresh directory /tmp/bnni-TAG-XXXXXX, its name into buf; fails the test when it cannot. */
void support_make_tmpdir(char *buf, size_t len, const char *tag);
/* Removes path and everything below it, directories a test made read-only included. */
void support_remove_tree(const char *path);
/* dir/name in one of 8 rotating buffers, so that one call can take several of them. */
const char *support_path(const char *dir, const char *name);

/* Writes text to path; fails the test when it cannot. */
void support_write_text(const char *path, const char *text);
/* Writes len bytes to path, through gzip when gz; fails the test when it cannot. */
void support_write_bytes(const char *path, const void *bytes, size_t len, int gz);
/* The whole file, NUL-terminated, its length in *len (when len is set), or NULL when it cannot be opened.
 * Caller frees. */
char *support_try_slurp(const char *path, size_t *len);
/* As support_try_slurp, but fails the test when the file cannot be opened. Caller frees. */
char *support_slurp(const char *path, size_t *len);
/* 1 when both files can be read and hold the same bytes. */
int support_same_bytes(const char *a, const char *b);
/* Copies the first `keep` bytes of from to to (all of it when keep < 0 or the file is shorter). */
void support_copy_file(const char *from, const char *to, long keep);

/* The network block of the seed's LeNet-BN (models/lenet_bn.bnn), for the model texts the tests write themselves
 * (so that they depend on no file but the data set). */
#define SUPPORT_LENET_BN_NETWORK \
    "network {\n" \
    "    conv2d(6, kernel=5)\n    batchnorm\n    sigmoid\n    avgpool(2, stride=2)\n" \
    "    conv2d(16, kernel=5)\n    batchnorm\n    sigmoid\n    avgpool(2, stride=2)\n" \
    "    flatten\n" \
    "    dense(120)\n    batchnorm\n    sigmoid\n" \
    "    dense(84)\n    batchnorm\n    sigmoid\n" \
    "    dense(10)\n" \
    "}\n"

/* The binary under test: $BNNI, or ./bnni when it is unset or empty. */
const char *support_bnni(void);
/* Runs `bnni ARGS` through the shell (ARGS formatted like printf) with stdout in dir/out.txt and stderr in
 * dir/err.txt; returns the exit status, or 128 + signal. */
int support_run(const char *dir, const char *fmt, ...);
/* What the last support_run in dir printed on stdout / stderr. Caller frees. */
char *support_run_out(const char *dir);
char *support_run_err(const char *dir);
/* The last support_run in dir failed with exit status 1 and exactly one stderr line "bnni: error: ..." that
 * contains n1 and, when set, n2. */
void support_expect_one_line_error(const char *dir, int status, const char *n1, const char *n2);

/* How support_spawn sets up its child. */
typedef struct SupportSpawn {
    const char *out_path;             /* stdout into this file; NULL: into a pipe whose read end is returned */
    const char *err_path;             /* stderr into this file */
    void (*prepare)(const void *ctx); /* when set, runs in the child just before exec (limits, another user) */
    const void *ctx;
} SupportSpawn;

/* Starts bnni with args (NULL-terminated, after argv[0]) as how says; *out_fd gets the pipe's read end when
 * how->out_path is NULL. Returns the child's pid. */
pid_t support_spawn(const char *const args[], const SupportSpawn *how, int *out_fd);
/* Waits for the child; returns its wait status. */
int support_reap(pid_t pid);
/* A wait status as the shell reports it: the exit status, or 128 + signal. */
int support_status(int wait_status);

#endif
