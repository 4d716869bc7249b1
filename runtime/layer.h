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

/* Eval-mode fusion (net.c): what the layers after a conv2d or dense compute in eval mode, applied by that layer
 * to each image's output while it is still in cache, instead of by the layers themselves in passes over the
 * whole chunk. A batchnorm contributes y = gamma*((x - mean)*rstd) + beta per channel (layer_post_norm, the
 * exact float operations of its own eval forward, so fused and unfused results are the same bit for bit); an
 * activation contributes its elementwise function. */
typedef struct LayerPost {
    const float *mean, *rstd, *gamma, *beta; /* [C] each, borrowed from the batchnorm; NULL: no normalisation */
    void (*act)(float *y, size_t n);         /* in place; NULL: none */
} LayerPost;

static inline float layer_post_norm(float x, float mean, float rstd, float gamma, float beta)
{
    return gamma * ((x - mean) * rstd) + beta;
}

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
    /* Optional, for eval-mode fusion (LayerPost); NULL in layers without them. takes_post: forward(train = 0)
     * applies l->post to its output. eval_norm: fills post's normalisation with this layer's eval statistics
     * (valid until its next forward). eval_act: this layer's eval forward is that elementwise function. */
    int takes_post;
    void (*eval_norm)(Layer *l, LayerPost *post);
    void (*eval_act)(float *y, size_t n);
} LayerOps;

struct Layer {
    const LayerOps *ops;
    const LayerSpec *spec; /* borrowed from the ModelSpec, which must outlive the layer */
    Rng *rng;              /* the network's stream for dropout masks; borrowed */
    int batch;             /* the batch size the buffers are allocated for; 0 before resize */
    Tensor y;              /* output activation, owned */
    Tensor dy;             /* gradient w.r.t. y, owned; filled by the next layer's backward */
    void *state;           /* the layer kind's private struct, owned */
    LayerPost post;        /* set by the net around an eval forward of a takes_post layer; zero otherwise */
};

/* The table of every layer kind, indexed by LayerKind. */
extern const LayerOps *const layer_ops[LK_COUNT];

/* Applies the shape rule of s->kind (residual bodies are the checker's business). */
int layer_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                    char *err, size_t errlen);

/* Formats a shape as "6x24x24" or "120". Returns buf. */
const char *shape_str(Shape s, char *buf, size_t len);

#endif
