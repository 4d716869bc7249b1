/* `bnni train --trace LAYER[,LAYER...]`: the request for runtime/trace.h, its layer names checked against the
 * model with the language's suggestions. */
#ifndef BNNI_TRACE_REQUEST_H
#define BNNI_TRACE_REQUEST_H

#include <stddef.h>

#include "../runtime/spec.h"
#include "../runtime/trace.h"

/* Fills *out (no records) from the comma-separated layer names of m, every, probe and subset. Returns 0, or -1 with
 * one line in err: an empty name, more than TRACE_MAX_LAYERS, a name given twice, a name no layer of m has
 * ("the model has no layer named 'dense_9' (did you mean 'dense_3'?)"). */
int trace_request(const char *layers, int every, int probe, int subset, const ModelSpec *m, TraceLog *out, char *err,
                  size_t errlen);

#endif
