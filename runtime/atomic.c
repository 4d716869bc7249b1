/* Writing a file so that a reader sees the old one or the new one, never a part (atomic.h): a temporary file
 * next to the target, fsync, rename, fsync of the directory. Checkpoints and exports both write this way. */
#include "atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_fd(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w, len -= (size_t)w;
    }
    return 0;
}

/* The directory and the file name of path ("." for a bare name). */
static int split_path(const char *path, char *dir, size_t dlen, const char **base, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    int n = snprintf(dir, dlen, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (n < 0 || (size_t)n >= dlen || strlen(*base) + 64 >= dlen) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    if (!**base) {
        snprintf(err, errlen, "the path names a directory, not a file");
        return -1;
    }
    return 0;
}

/* The pid in a temporary-file name ".BASE.PID.XXXXXX", or -1 when name is not one of base's. */
static long temp_owner(const char *name, const char *base)
{
    size_t k = strlen(base);
    if (name[0] != '.' || strncmp(name + 1, base, k) != 0 || name[k + 1] != '.' || name[k + 2] < '0' ||
        name[k + 2] > '9')
        return -1;
    char *end;
    errno = 0;
    long pid = strtol(name + k + 2, &end, 10);
    if (errno || end == name + k + 2 || pid <= 0 || *end != '.' || strlen(end + 1) != 6)
        return -1;
    return pid;
}

/* A write killed mid-way (SIGKILL, power loss) leaves its temporary file behind; the next save to the same
 * path removes those whose writer is gone. A live writer's file (another process saving to the same path) is
 * kept; ours is stale too, since a pid namespace (a container) can give each run the same pid. */
static void remove_stale_temps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        long pid = temp_owner(e->d_name, base);
        if (pid > 0 && (pid == (long)getpid() || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
}

int atomic_open_temp(const char *path, char *tmp, size_t tlen, char *dir, size_t dlen, char *err, size_t errlen)
{
    const char *base;
    if (split_path(path, dir, dlen, &base, err, errlen) < 0)
        return -1;
    remove_stale_temps(dir, base);
    if (snprintf(tmp, tlen, "%s/.%s.%ld.XXXXXX", dir, base, (long)getpid()) >= (int)tlen) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0)
        snprintf(err, errlen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
    return fd;
}

int atomic_write(const char *path, const void *buf, size_t len, const char *what_for, const char *after, char *err,
                 size_t errlen)
{
    char tmp[4096], dir[4096];
    int fd = atomic_open_temp(path, tmp, sizeof tmp, dir, sizeof dir, err, errlen);
    if (fd < 0)
        return -1;
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    const char *what = "write";
    int rc = write_fd(fd, buf, len);
    if (rc == 0 && (what = "sync", fsync(fd) < 0))
        rc = -1;
    int saved = errno;
    if (close(fd) < 0 && rc == 0)
        rc = -1, what = "close", saved = errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -1, what = "rename", saved = errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, errlen, "cannot %s (%s failed: %s); %s", what_for, what, strerror(saved), after);
        return -1;
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename itself durable; some file systems refuse, which is harmless */
        close(dfd);
    }
    return 0;
}
