/* /trace in a checkpoint (docs/checkpoint.md): the HDF5 side of runtime/trace.h, for ckpt.c. */
#ifndef BNNI_TRACE_H5_H
#define BNNI_TRACE_H5_H

#include <hdf5.h>

#include "trace.h"

/* Writes log as the group /trace of file f, its groups created with gcpl (creation order). Returns 0 or -1. */
int trace_write_h5(hid_t f, const TraceLog *log, hid_t gcpl);
/* Reads /trace of f: 0 with *out NULL when there is none, 0 and *out (trace_log_free) for a valid one, or -1
 * with err naming what is wrong (a missing dataset, lengths that disagree, too many layers). */
int trace_read_h5(hid_t f, TraceLog **out, char *err, size_t errlen);

#endif
