/* Reading untrusted HDF5 files without trusting libhdf5 (issue #17): libhdf5 1.10 crashes or loops forever on
 * some damaged files, and a file from elsewhere has no checksums to stop it. h5guard_run does the read first in
 * a forked child under a time limit; a crash, a hang or any exit but the agreed one there is "the library could
 * not read it", and only a read that finished in the child is repeated in the caller's process. */
#ifndef BNNI_H5GUARD_H
#define BNNI_H5GUARD_H

#include <hdf5.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

/* The read to try: 0 on success, or -1 with one line in err. Runs in the child, whose memory and open files are
 * a copy of the caller's: nothing it allocates or changes reaches the caller, only its status and message. */
typedef int (*H5GuardFn)(void *ctx, char *err, size_t errlen);

enum {
    H5GUARD_OK = 0,       /* fn returned 0 in the child */
    H5GUARD_FAILED = -1,  /* fn returned -1; err holds its message */
    H5GUARD_CRASHED = -2, /* the child died, ran past the limit or exited without its report; err says how */
    H5GUARD_NOT_RUN = -3, /* no child could be started (pipe or fork failed); err says why */
};

/* The longest message a child reports; longer ones are cut. */
#define H5GUARD_MSG_MAX 8192

/* What a trial may take. */
typedef struct H5GuardLimits {
    double seconds;           /* of wall time, after which the child is killed */
    unsigned long long bytes; /* by which the child's address space may grow (RLIMIT_AS); 0: no limit */
} H5GuardLimits;

/* The limits for reading a file of `file_bytes`: 2 s plus 1 s per 16 MiB (a slow disk, a sanitizer build), and
 * 1 GiB plus 4 times the file, so that a damaged size field cannot make the trial take the machine's memory. */
H5GuardLimits h5guard_limits(long long file_bytes);

/* Runs fn(ctx, ...) in a child process with stdout and stderr on /dev/null (a sanitizer's report too), no core
 * dump, and lim's time and memory, past which it is killed (SIGKILL) or its allocations fail. The child is
 * always reaped and no descriptor is left open. Returns one of the H5GUARD_ values, err set for all but
 * H5GUARD_OK. */
int h5guard_run(H5GuardFn fn, void *ctx, const H5GuardLimits *lim, char *err, size_t errlen);

/* For fuzz targets, which must see a crash where it happens: with 1, h5guard_run calls fn in this process. */
void h5guard_set_inline(int on);

/* What a file was when it was first opened, so that the read in the caller's process can check that it opened
 * the file the child read (not one renamed over it since). */
typedef struct H5GuardFile {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} H5GuardFile;

/* Fills id from the open descriptor fd. Returns 0 or -1 (errno set). */
int h5guard_identify(int fd, H5GuardFile *id);
/* 1 when HDF5 file f (sec2 driver, the default) is the file id describes, unchanged; else 0. */
int h5guard_same_file(hid_t f, const H5GuardFile *id);

#endif
