/* Exporters: each output format bnni writes a trained network in is one file under runtime/export/ that fills one
 * Exporter, listed in exporters[] (export.c), the way layer kinds fill LayerOps. `bnni export` (interp/cmd_export.c)
 * picks one by the output file's suffix and hands it the checkpoint, its model and the fold plan (fold.h). */
#ifndef BNNI_EXPORT_H
#define BNNI_EXPORT_H

#include <stddef.h>

#include "../ckpt.h"
#include "fold.h"

typedef struct ExportJob {
    const char *path;               /* the file to write */
    const char *source;             /* the checkpoint's path, for messages and metadata */
    const Ckpt *ckpt;               /* the checkpoint exported */
    const ModelSpec *model;         /* its model */
    const FoldPlan *plan;           /* the network to write, batch norm folded or not */
    const ModelSpec *folded_model;  /* the plan's network as a checked model, when the exporter needs_model */
} ExportJob;

typedef struct Exporter {
    const char *name;        /* "onnx" */
    const char *suffixes[3]; /* output names it is chosen for: ".onnx"; NULL-terminated */
    const char *what;        /* for help texts: "an ONNX model (opset 13)" */
    int needs_model;         /* the command must build job->folded_model (a bnni checkpoint is a model) */
    /* Writes job->path atomically (never a partial file). Returns 0, or -1 with one line in err. */
    int (*write)(const ExportJob *job, char *err, size_t errlen);
} Exporter;

/* Every exporter; NULL-terminated. */
extern const Exporter *const exporters[];

/* The exporter whose suffix ends path, or NULL. */
const Exporter *export_for_path(const char *path);

/* Writes buf to path through a temporary file ".NAME.PID.XXXXXX" in the same directory, fsync and rename, as
 * checkpoints are written: the target is either untouched or complete. Returns 0 or -1 with err. */
int export_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen);

#endif
