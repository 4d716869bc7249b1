/* The table of exporters (export.h) and the atomic write they share. */
#include "export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const Exporter onnx_exporter, folded_exporter;

const Exporter *const exporters[] = {&onnx_exporter, &folded_exporter, NULL};

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

const Exporter *export_for_path(const char *path)
{
    for (int i = 0; exporters[i]; i++)
        for (int k = 0; exporters[i]->suffixes[k]; k++)
            if (ends_with(path, exporters[i]->suffixes[k]))
                return exporters[i];
    return NULL;
}

static int write_all(int fd, const char *buf, size_t len)
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

int export_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char dir[4096], tmp[4200];
    struct stat st;
    if (!*base || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        snprintf(err, errlen, "is a directory; the output must name a file");
        return -1;
    }
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    if (snprintf(tmp, sizeof tmp, "%s/.%s.%ld.XXXXXX", dir, base, (long)getpid()) >= (int)sizeof tmp) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a temporary file in %s: %s", dir, strerror(errno));
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    const char *what = "write";
    int rc = write_all(fd, buf, len);
    if (rc == 0 && (what = "sync", fsync(fd) < 0))
        rc = -1;
    int saved = errno;
    if (close(fd) < 0 && rc == 0)
        rc = -1, what = "close", saved = errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -1, what = "rename", saved = errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, errlen, "cannot write it (%s failed: %s); nothing was written", what, strerror(saved));
        return -1;
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd); /* makes the rename durable; some file systems refuse, which is harmless */
        close(dfd);
    }
    return 0;
}
