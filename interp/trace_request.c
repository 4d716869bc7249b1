/* --trace's layer list (trace_request.h): split, each name looked up among the model's layers (residual bodies
 * included), an unknown one reported with the closest name. */
#include "trace_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

/* Every layer name of v[0..n) into names from k on; returns the new count. */
static int collect(const LayerSpec *v, int n, const char **names, int k)
{
    for (int i = 0; i < n; i++) {
        names[k++] = v[i].name;
        k = collect(v[i].body, v[i].nbody, names, k);
    }
    return k;
}

/* Checks one name; returns 0, or -1 with err. */
static int check_name(const char *name, const char **names, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 0;
    const char *best = diag_suggest(name, names, n);
    if (best)
        snprintf(err, errlen, "--trace: the model has no layer named '%s' (did you mean '%s'?)", name, best);
    else
        snprintf(err, errlen, "--trace: the model has no layer named '%s' (bnni check lists the layers)", name);
    return -1;
}

int trace_request(const char *layers, int every, int probe, int subset, const ModelSpec *m, TraceLog *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->every = every, out->probe = probe, out->subset = subset;
    const char **names = malloc(((size_t)m->nlayers_total + 1) * sizeof *names);
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = collect(m->layers, m->nlayers, names, 0), rc = 0;
    for (const char *p = layers; rc == 0;) {
        size_t len = strcspn(p, ",");
        char name[SPEC_NAME_MAX];
        if (len == 0 || len >= SPEC_NAME_MAX) {
            snprintf(err, errlen, "--trace needs layer names separated by commas: %s", layers);
            rc = -1;
        } else if (out->nlayers == TRACE_MAX_LAYERS) {
            snprintf(err, errlen, "--trace takes at most %d layers: %s", TRACE_MAX_LAYERS, layers);
            rc = -1;
        } else {
            snprintf(name, sizeof name, "%.*s", (int)len, p);
            for (int i = 0; i < out->nlayers && rc == 0; i++)
                if (strcmp(out->names[i], name) == 0)
                    rc = -1, snprintf(err, errlen, "--trace names layer '%s' twice", name);
            if (rc == 0 && (rc = check_name(name, names, n, err, errlen)) == 0)
                snprintf(out->names[out->nlayers++], SPEC_NAME_MAX, "%s", name);
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    free(names);
    return rc;
}
