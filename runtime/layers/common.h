/* What every layer kind shares: its output and output-gradient buffers sized for one batch,
 * the checked allocation of per-batch scratch, and PyTorch's default uniform initialisation. */
#ifndef BNNI_LAYERS_COMMON_H
#define BNNI_LAYERS_COMMON_H

#include <stddef.h>

#include "../layer.h"

/* Frees l->y and l->dy and allocates them as batch x spec->out (zeroed); sets l->batch on success.
 * Returns 0, or -1 with err (batch < 1, or out of memory). */
int layer_alloc_io(Layer *l, int batch, char *err, size_t errlen);
void layer_free_io(Layer *l);
/* The resize of a layer that needs only y and dy: a no-op when already sized for batch. */
int layer_resize_io(Layer *l, int batch, char *err, size_t errlen);
/* The create of a layer without parameters or state. */
int layer_create_none(Layer *l, Rng *init, char *err, size_t errlen);
/* Forward runs on x->n <= l->batch images: records that count in y and dy. */
static inline void layer_set_count(Layer *l, int n) { l->y.n = l->dy.n = n; }

/* Training fusion (layer.h), forward: where l's forward writes its output, the activation's y when the activation
 * after it is fused (then activated there), else l->y. */
static inline float *layer_out(const Layer *l) { return l->post.into ? l->post.into->data : l->y.data; }

/* Training fusion, backward: with the activation after l fused (l->post.grad), l's dy for images [n0, n1) from the
 * activation's y and dy (its act_grad), just before l reads them; else nothing (l->dy holds them already). */
void layer_fused_grad(Layer *l, int n0, int n1);

/* A zeroed, 64-byte aligned array of n floats for buffers whose size comes from the model, or NULL with err
 * naming `what`. Caller frees with tensor_zfree(). */
float *layer_alloc_floats(size_t n, const char *what, char *err, size_t errlen);

/* w[0..n) ~ U(-bound, bound), drawn in index order: torch.nn.init.uniform_ as kaiming_uniform_(a=sqrt(5)) uses it. */
void layer_init_uniform(float *w, size_t n, float bound, Rng *r);

/* The `init` argument of conv2d and dense (docs/language.md): how the weights are drawn. "default" is PyTorch's
 * (weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))); the others draw the weight and zero the bias:
 * "xavier" U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) (torch.nn.init.xavier_uniform_), "kaiming"
 * N(0, 2 / fan_in) (kaiming_normal_, mode fan_in, relu gain), "normal(STD)" N(0, STD^2), "uniform(BOUND)"
 * U(-BOUND, BOUND). */
typedef enum LayerInitKind { INIT_DEFAULT, INIT_XAVIER, INIT_KAIMING, INIT_NORMAL, INIT_UNIFORM } LayerInitKind;

typedef struct LayerInit {
    LayerInitKind kind;
    double scale; /* normal: STD; uniform: BOUND */
} LayerInit;

/* The argument's text as a LayerInit. Returns 0, or -1 with "must be ... got ..." naming the accepted forms. */
int layer_init_parse(const char *text, LayerInit *out, char *err, size_t errlen);
/* The configure rule of a layer whose argument k is `init`: its text must parse. Returns 0, or -1 with *bad = k. */
int layer_init_configure(const LayerSpec *s, int k, int *bad, char *err, size_t errlen);
/* Draws w[0..nw) and b[0..nb) (b may be NULL) from r as `init` says, in index order, weight first; fan_in and
 * fan_out as torch computes them (conv2d: in*K*K and out*K*K). */
void layer_init_params(const LayerInit *init, float *w, size_t nw, float *b, size_t nb, int fan_in, int fan_out,
                       Rng *r);

/* y = post's normalisation of x (layer_post_norm per channel) over n images of C channels of HW values (HW = 1:
 * n rows of C features); y may be x. post->mean must be set. Batchnorm's own eval and training forwards use it
 * too, so fused and unfused normalisation are one loop. */
void layer_post_normalise(const LayerPost *post, float *y, const float *x, int n, int C, int HW);
/* Eval-mode fusion: applies post (LayerPost) in place to n images of y, laid out as above: its normalisation,
 * then its activation. A no-op when post is empty. */
void layer_post_apply(const LayerPost *post, float *y, int n, int C, int HW);

/* fold_affine (layer.h) of a layer whose weight w holds `rows` output channels of `len` values each and whose bias b
 * (NULL: none) one per channel: W' = W*scale, b' = b*scale + shift, in double. Fills out[0] (weight, named and
 * shaped like wp) and out[1] (bias [rows]) with new values. Returns 2, or -1 when out of memory. */
int layer_fold_rows(const Param *wp, const float *b, const double *scale, const double *shift, Param *out);

/* One forward or backward call of a layer, for its threads' tasks (rt_run's ctx). */
typedef struct LayerCall {
    Layer *l;
    const Tensor *x;
    Tensor *dx; /* backward: where the input gradient goes, or NULL */
    int train;  /* forward: training mode */
} LayerCall;

/* An elementwise pass over n images of `per` values each: fn(ctx, lo, hi) on value ranges [lo, hi). From `min`
 * values on (RT_MIN_PARALLEL, or less for costly functions) the runtime's threads take whole images each, cut as
 * conv2d, dense, batchnorm and the pooling layers cut a batch (rt_split over the images), so each thread mostly
 * reads what it wrote itself in the layer before, still in its own core's cache; below, the calling thread does
 * all of it. */
typedef void (*LayerRange)(void *ctx, size_t lo, size_t hi);
void layer_for_images(int n, size_t per, size_t min, LayerRange fn, void *ctx);

/* out = op(a, b), value by value, over n images of `per` values each, split as layer_for_images splits them from
 * `min` values on (op gets matching ranges of the three arrays; b may be NULL for an op that ignores it). */
typedef void (*LayerMap2)(float *out, const float *a, const float *b, size_t n);
void layer_map_images(int n, size_t per, size_t min, LayerMap2 op, float *out, const float *a, const float *b);
/* The same, then act(out) in place on each range while it is in cache (act NULL: nothing): an elementwise layer's
 * output with the activation after it fused (training fusion, layer.h). */
void layer_map_images_act(int n, size_t per, size_t min, LayerMap2 op, float *out, const float *a, const float *b,
                          void (*act)(float *y, size_t n));

/* An activation's passes, each through layer_for_images: forward y = f(x) from `min` values on (RT_MIN_PARALLEL,
 * or less for costly functions), and backward dx = g(y, dy) from its own output (LayerOps.grad_from_output) from
 * RT_MIN_PARALLEL on; dx NULL: nothing to do. */
typedef void (*LayerActFn)(float *y, const float *x, size_t n);
typedef void (*LayerActGrad)(float *dx, const float *y, const float *dy, size_t n);
void layer_act_forward(Layer *l, const Tensor *x, LayerActFn f, size_t min);
void layer_act_backward(Layer *l, const Tensor *x, Tensor *dx, LayerActGrad g);

/* Values per sample of a shape (c*h*w). */
static inline size_t shape_size(Shape s) { return (size_t)s.c * s.h * s.w; }

#endif
