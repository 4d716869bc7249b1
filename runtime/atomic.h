/* Atomic file writes for checkpoints and exports: the target is either untouched or whole. */
#ifndef BNNI_ATOMIC_H
#define BNNI_ATOMIC_H

#include <stddef.h>

/* Creates path's temporary file ".NAME.PID.XXXXXX" in path's directory (its name into tmp, the directory into dir),
 * first removing such files left by writers that were killed mid-write (their PID is gone). Returns its
 * descriptor, or -1 with err ("cannot create a temporary file in DIR: ..."). */
int atomic_open_temp(const char *path, char *tmp, size_t tlen, char *dir, size_t dlen, char *err, size_t errlen);

/* Writes len bytes of buf to path through such a temporary file: write, fsync, rename, fsync of the directory.
 * On failure the temporary file is removed, path is untouched, and err says "cannot WHAT_FOR (STEP failed:
 * REASON); AFTER". Returns 0 or -1. */
int atomic_write(const char *path, const void *buf, size_t len, const char *what_for, const char *after, char *err,
                 size_t errlen);

#endif
