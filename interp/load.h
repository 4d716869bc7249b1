/* Loading models for the commands: a .bnn file or a checkpoint's embedded source through the front end, and a
 * checkpoint with the network it describes, ready to evaluate. The runtime only ever receives the ModelSpec. */
#ifndef BNNI_LOAD_H
#define BNNI_LOAD_H

#include "../runtime/ckpt.h"
#include "../runtime/net.h"
#include "../runtime/spec.h"
#include "frontend.h"

/* Loads the model of `file` (or, when source is not NULL, that text, named `file` in messages) for train, eval
 * and predict. For training (inference 0) it refuses one whose training would need more than mem_cap bytes (0:
 * physical memory); for eval and predict (inference 1) that estimate is not made.
 * Diagnostics reach stderr only when the model has errors: its warnings are `bnni check`'s business.
 * Returns 0 and *out (caller frees with spec_free) or 1. */
int load_model(const char *file, const char *source, unsigned long long mem_cap, int inference, ModelSpec **out);
/* The same with every option of the checker (frontend.h: the data's place and record, --set overrides...);
 * co->diag is ignored (diagnostics go to stderr). */
int load_model_with(const char *file, const char *source, const CheckOptions *co, ModelSpec **out);

/* For eval and predict: reads the checkpoint at ckpt_path, loads its model (from model_path when not NULL, else
 * the source embedded in the checkpoint; diagnostics to stderr) with the data facts the checkpoint recorded (shape,
 * classes, names: the data itself need not be there), its data where data_where says (NULL: where the run trained),
 * builds the network and loads the checkpoint's tensors into it. On success the caller frees *c (ckpt_free), *m
 * (spec_free) and *net (net_free). Returns 0 or -1 with "FILE: reason" in err. */
int load_checkpoint(const char *ckpt_path, const char *model_path, const char *data_where, Ckpt *c, ModelSpec **m,
                    Net **net, char *err, size_t errlen);

#endif
