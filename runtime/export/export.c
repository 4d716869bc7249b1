/* The table of exporters (export.h) and the atomic write they share (runtime/atomic.c). */
#include "export.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../atomic.h"

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

int export_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    struct stat st;
    if (!*base || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        snprintf(err, errlen, "is a directory; the output must name a file");
        return -1;
    }
    return atomic_write(path, buf, len, "write it", "nothing was written", err, errlen);
}
