/* The front end's entry points: .bnn text -> checked ModelSpec, with diagnostics printed as
 * `FILE:LINE:COL: error: message`, the source line and a caret (clang's format). */
#ifndef BNNI_FRONTEND_H
#define BNNI_FRONTEND_H

#include <stdio.h>

#include "../runtime/spec.h"

struct Override;

typedef struct CheckOptions {
    FILE *diag;               /* where diagnostics go (stderr in the CLI, a memstream in tests) */
    long long max_layers;     /* expansion limit; 0 means the default, 100000 */
    unsigned long long mem_cap_bytes; /* refuse models needing more (training estimate); 0: physical memory */
    int inference;            /* loaded for bnni eval or predict: no training estimate (they hold 32 images) */
    int batch_override;       /* > 0: use instead of the file's data batch (CLI flags) */
    long long limit_override; /* > 0: the training items --limit keeps (for the validation check) */
    const char *data_where;   /* not NULL: replaces where the data is (--data, or a checkpoint's data_path) */
    const DataSpec *data_record; /* not NULL: the data's shape, classes and names as a checkpoint recorded them;
                                  * the data's headers are then not read */
    int hide_warnings;        /* report errors only (train, eval, predict, sweep: warnings are bnni check's) */
    /* --set KEY=VALUE (interp/override.h), applied after the file's own `set` statements; borrowed. A model that
     * checks gets them appended to its source as `set` statements, so the text it records rebuilds it. */
    const struct Override *overrides;
    int noverrides;
} CheckOptions;

/* Reads, parses, expands and checks a model file. Returns 0 and sets *out (caller frees with spec_free);
 * 1 when the file has errors (all printed to opts->diag); the same for an unreadable file. */
int bnn_load_file(const char *path, const CheckOptions *opts, ModelSpec **out);
/* The same on text in memory; `filename` is used in diagnostics. */
int bnn_load_source(const char *filename, const char *src, size_t len, const CheckOptions *opts, ModelSpec **out);
/* Prints `bnni check`'s summary table. */
void bnn_print_summary(const ModelSpec *m, FILE *out);

#endif
