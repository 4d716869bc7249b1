/* What an export writes, layer by layer: the network in eval mode with each batchnorm folded into the conv2d or
 * dense before it where it can be (FoldStep), and every other layer as it is. The exporters (export.h) walk this
 * plan instead of the network, so folding is done once, in double precision, for every output format. */
#ifndef BNNI_EXPORT_FOLD_H
#define BNNI_EXPORT_FOLD_H

#include "../net.h"

typedef struct FoldStep {
    LayerSpec spec;     /* the layer as exported: a folded conv2d or dense has its bias on; spec.body is unused */
    Layer *layer;       /* the network's layer (borrowed) */
    Param params[LAYER_MAX_PARAMS]; /* the values to export: the layer's own, or the folded ones */
    int nparams;
    int owned;          /* params' values were allocated by the fold: fold_free frees them */
    const LayerSpec *absorbed; /* the batchnorm folded into this layer, or NULL */
    struct FoldStep *body; /* a residual's body (owned), nbody steps */
    int nbody;
} FoldStep;

typedef struct FoldPlan {
    FoldStep *steps; /* owned */
    int n;
    int folded;      /* batchnorms folded away */
} FoldPlan;

/* Plans the export of net (which must outlive the plan): a batchnorm right after a layer with fold_affine, in
 * the same sequence, is folded into it unless keep_bn; any other batchnorm (after an activation, a pooling, at
 * the start of the network or of a residual body) stays a step of its own. Then checks that every value to
 * export is finite. Returns 0, or -1 with err ("out of memory", "non-finite value in conv2d_1/weight[3] after
 * folding batchnorm_1"). Free with fold_free, also after a failure. */
int fold_plan(Net *net, int keep_bn, FoldPlan *out, char *err, size_t errlen);
void fold_free(FoldPlan *p);

/* The exported network as a tree of LayerSpecs (each step's spec, residual bodies attached), for writing it out as
 * a model. Returns NULL when out of memory; free with spec_layers_free(v, p->n). */
LayerSpec *fold_specs(const FoldStep *steps, int n);

#endif
