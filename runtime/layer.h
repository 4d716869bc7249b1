/* The layer interface: every layer kind is one file under runtime/layers/ that fills one LayerOps.
 * The network and the trainer only ever call through this table, so they know nothing of layer types.
 * Conventions: forward writes l->y; backward reads l->dy, overwrites dx (when dx is not NULL) and
 * accumulates (+=) into its parameter gradients, which net_zero_grad clears before each step. */
#ifndef BNNI_LAYER_H
#define BNNI_LAYER_H

#include <stddef.h>

#include "../interp/spec.h"
#include "rng.h"
#include "tensor.h"

/* One named tensor of a layer: a trainable parameter (grad != NULL) or a buffer (grad == NULL).
 * Shapes are in PyTorch's order: conv2d weight [out, in, kh, kw], dense weight [out, in], vectors [C]. */
typedef struct Param {
    const char *name; /* "weight", "bias", "gamma", "beta", "moving_mean", "moving_var" */
    float *value;
    float *grad;
    int rank;
    int dims[4];
    size_t size;
    int trainable;
} Param;

#define LAYER_MAX_PARAMS 4

typedef struct Layer Layer;

typedef struct LayerOps {
    const char *type;
    /* Shape rule: the output shape for input `in`, and the trainable and buffer value counts;
     * returns 0, or -1 with a one-line reason in err (no location: the caller adds it). */
    int (*out_shape)(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                     char *err, size_t errlen);
    /* Allocates and initialises parameters (l->spec is set); returns 0 or -1 with err. */
    int (*create)(Layer *l, Rng *init, char *err, size_t errlen);
    /* (Re)allocates every per-batch buffer the forward and backward touch, l->y and l->dy included. */
    int (*resize)(Layer *l, int batch, char *err, size_t errlen);
    void (*forward)(Layer *l, const Tensor *x, int train);
    void (*backward)(Layer *l, const Tensor *x, Tensor *dx);
    /* Fills out[0..LAYER_MAX_PARAMS) and returns the count (0 for parameterless layers). */
    int (*params)(Layer *l, Param *out);
    /* Frees what create and resize allocated (l->y, l->dy, l->state); safe on a half-created layer. */
    void (*destroy)(Layer *l);
} LayerOps;

struct Layer {
    const LayerOps *ops;
    const LayerSpec *spec; /* borrowed from the ModelSpec, which must outlive the layer */
    Rng *rng;              /* the network's stream for dropout masks; borrowed */
    int batch;             /* the batch size the buffers are allocated for; 0 before resize */
    Tensor y;              /* output activation, owned */
    Tensor dy;             /* gradient w.r.t. y, owned; filled by the next layer's backward */
    void *state;           /* the layer kind's private struct, owned */
};

/* The table of every layer kind, indexed by LayerKind. */
extern const LayerOps *const layer_ops[LK_COUNT];

/* Applies the shape rule of s->kind (residual bodies are the checker's business). */
int layer_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                    char *err, size_t errlen);

/* Formats a shape as "6x24x24" or "120". Returns buf. */
const char *shape_str(Shape s, char *buf, size_t len);

#endif
