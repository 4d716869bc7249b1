/* The layer interface: every layer kind is one file under runtime/layers/ that fills one LayerOps, its
 * argument schema included, and is listed once in layers/registry.h. The network, the trainer and the
 * checkpoint code only ever call through this table, so they know nothing of layer kinds.
 * Conventions: forward writes l->y; backward reads l->dy, overwrites dx (when dx is not NULL) and
 * accumulates (+=) into its parameter gradients, which net_zero_grad clears before each step. */
#ifndef BNNI_LAYER_H
#define BNNI_LAYER_H

#include <stddef.h>

#include "comm.h"
#include "rng.h"
#include "spec.h"
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
struct Net;

/* Eval-mode fusion (net.c): what the layers after a conv2d or dense compute in eval mode, applied by that layer
 * to each image's output while it is still in cache, instead of by the layers themselves in passes over the
 * whole chunk. A batchnorm contributes y = gamma*((x - mean)*rstd) + beta per channel (layer_post_norm, the
 * exact float operations of its own eval forward, so fused and unfused results are the same bit for bit); an
 * activation contributes its elementwise function. */
typedef struct LayerPost {
    const float *mean, *rstd, *gamma, *beta; /* [C] each, borrowed from the batchnorm; NULL: no normalisation */
    void (*act)(float *y, size_t n);         /* in place; NULL: none */
    Tensor *into; /* training fusion (takes_train_post): write act(output) here, the activation's y, not l->y */
    /* training fusion, backward: the activation's act_grad, and its dy. The layer computes its own dy from them
     * (dy = grad(into's y, act_dy)) rather than read it; NULL: it reads l->dy. */
    void (*grad)(float *dx, const float *y, const float *dy, size_t n);
    const Tensor *act_dy;
} LayerPost;

static inline float layer_post_norm(float x, float mean, float rstd, float gamma, float beta)
{
    return gamma * ((x - mean) * rstd) + beta;
}

typedef struct LayerOps {
    const char *type; /* the name the language calls it by */
    /* The arguments it takes, in positional order (the language, checkpoints and docs read them from here), and
     * how many. LayerSpec.arg holds their values in the same order. */
    const ArgSpec *args;
    int nargs;
    /* Optional: what the schema cannot say (one argument's default taken from another, a bound that depends on
     * another), applied once the arguments are resolved. Returns 0, or -1 with a one-line reason in err and in
     * *bad the index of the argument to blame. */
    int (*configure)(LayerSpec *s, int *bad, char *err, size_t errlen);
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
    /* Training fusion (net.c): an activation whose backward reads only its own y and dy, never x (grad_from_output),
     * need not run its forward when the layer before writes the activated values straight into its y: a layer that
     * can (takes_train_post) does so in forward(train = 1) when l->post.act and l->post.into are set, and leaves
     * its own y unwritten. One pass over the values instead of two, the same bits. In the backward that follows,
     * such a layer is given the activation's act_grad (dx = f'(y) dy, from y) in l->post.grad with the
     * activation's y and dy, and computes its own dy from them where it reads it, while they are in cache; the
     * activation's backward does not run. */
    int takes_train_post;
    int grad_from_output;
    void (*act_grad)(float *dx, const float *y, const float *dy, size_t n);
    /* Per-thread copies of the net's input (net_set_input_copies). views_input: the layer's output is its input's
     * values, unchanged (flatten), so copies of one are copies of the other. reads_input_whole: as the net's first
     * layer with parameters, its training forward with a team has every thread read all of its input (dense splits
     * it by output units); given copies, thread t reads copy t, which it converted itself, instead of values the
     * other threads wrote, which would have to cross between cores every step. */
    int views_input;
    int reads_input_whole;
    /* Optional: a layer that runs a sub-network (residual) returns it, so that the net's walks over every
     * parameter, gradient and timing descend into it; NULL in other layers. */
    struct Net *(*body)(Layer *l);
    /* Optional, for exports that fold a batchnorm into the layer before it (runtime/export/fold.c), in double
     * precision. eval_affine: this layer's eval forward is y = scale[c]*x + shift[c] per channel; fills both
     * (spec->in.c values each) from its parameters and arguments. fold_affine: the same map applied to this
     * layer's output, absorbed: fills *folded with its spec as the folded layer needs it (a bias turned on) and
     * out[] with the folded layer's parameters in params' order, each value newly allocated (the caller frees
     * them); returns their count, or -1 when out of memory. */
    void (*eval_affine)(Layer *l, double *scale, double *shift);
    int (*fold_affine)(Layer *l, const double *scale, const double *shift, LayerSpec *folded, Param *out);
    /* Optional, for data-parallel training (comm.h): makes state that each rank updates on its own the same on
     * every rank (batchnorm(sync=false) averages its moving statistics). Collective over l->comm; the trainer
     * calls it through net_sync before every evaluation and save. NULL in layers without such state. */
    void (*sync)(Layer *l);
} LayerOps;

struct Layer {
    const LayerOps *ops;
    const LayerSpec *spec; /* borrowed from the ModelSpec, which must outlive the layer */
    Rng *rng;              /* the network's stream for dropout masks; borrowed */
    Comm *comm;            /* the ranks it trains with (net_set_comm); borrowed; NULL: alone */
    int batch;             /* the batch size the buffers are allocated for; 0 before resize */
    Tensor y;              /* output activation, owned */
    Tensor dy;             /* gradient w.r.t. y, owned; filled by the next layer's backward */
    void *state;           /* the layer kind's private struct, owned */
    LayerPost post;        /* set by the net around a forward it fuses (takes_post, takes_train_post); else zero */
    int fused;             /* the last training forward wrote its output into the next layer's y, not into y */
    int inferring;         /* set by net_infer around an eval forward that no backward follows (residual bodies) */
    int first_trained;     /* set by the net: the first layer with parameters, whose training backward gets no dx
                            * (net_backward); a layer may split its work to suit (a hint: dx is right either way) */
    /* Set by the net (net_set_input_copies) on a reads_input_whole first layer for one training step: ncopies
     * copies of its input's values, copy 0 being the input itself, for thread t < ncopies to read; borrowed. */
    float *const *in_copies;
    int in_ncopies;
};

/* The table of every layer kind, indexed by LayerKind. */
extern const LayerOps *const layer_ops[LK_COUNT];

/* The kind called `name`, or -1. */
int layer_kind(const char *name);

/* Index of argument `key` in the schema of kind, or -1. */
int layer_arg_index(LayerKind kind, const char *key);

/* The value of s's numeric (AT_INT, AT_NUM, AT_BOOL) argument `key`, or NAN when its kind has none. */
double layer_arg(const LayerSpec *s, const char *key);

/* Fills s as a layer of `kind` named `name`: the schema's defaults, overridden by `args`, "key=value" pairs
 * separated by blanks or commas ("out=6 kernel=5 bias=false"), checked against the schema's types and ranges,
 * then the kind's configure rule. For code that builds layers without the language: tests, benchmarks.
 * Shapes and counts are left zero. Returns 0, or -1 with err. */
int layer_spec_make(LayerSpec *s, LayerKind kind, const char *name, const char *args, char *err, size_t errlen);

/* Applies the shape rule of s->kind (residual bodies are the checker's business). */
int layer_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                    char *err, size_t errlen);

/* Formats a shape as "6x24x24" or "120". Returns buf. */
const char *shape_str(Shape s, char *buf, size_t len);

#endif
