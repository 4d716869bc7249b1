/* A network: the top-level sequence of layers built from a checked ModelSpec.
 * A residual layer holds a sub-network of its body, so nesting costs nothing here. */
#ifndef BNNI_NET_H
#define BNNI_NET_H

#include "layer.h"

/* Wall time of one layer's calls while profiling (net_profile_start), summed over the calls. */
typedef struct LayerTime {
    double fwd, bwd, eval;       /* seconds in training forwards, backwards and eval-mode forwards */
    long long nfwd, nbwd, neval; /* how many of each */
} LayerTime;

typedef struct Net {
    Layer *layers; /* owned */
    int n;
    Shape in, out;
    int batch;     /* current batch size of every buffer; 0 before net_resize */
    int trained;   /* the first layer holding a trainable parameter (n: none); see net_backward */
    Rng rng;       /* dropout masks; saved in checkpoints for an exact resume */
    LayerTime *prof; /* [n], owned; NULL (the default) unless profiling: then net_forward/net_backward time
                      * every layer call, and otherwise they read no clock */
    /* Optional (NULL by default): called by net_backward after each top-level layer i, whose parameter gradients
     * are then final for the step, so that a data-parallel trainer can start summing them across the ranks while
     * the layers before i are still running backward. */
    void (*after_backward)(void *ctx, int i);
    void *after_backward_ctx;
} Net;

/* One row of a profile: a layer (residual bodies follow their residual layer, one depth deeper) and its times.
 * A residual layer's times include its body's. */
typedef struct NetProfileRow {
    const LayerSpec *spec;
    int depth;
    LayerTime t;
} NetProfileRow;

/* One parameter or buffer of the network, with the name of the layer that holds it. */
typedef struct NetParam {
    const LayerSpec *layer; /* layer->name is the checkpoint group */
    Param p;
} NetParam;

/* Builds and initialises the layers of `specs` (borrowed: must outlive the net); the init stream is seeded from seed.
 * Returns 0, or -1 with err. The caller frees *out with net_free. */
int net_create(const LayerSpec *specs, int n, Shape in, uint64_t seed, Net **out, char *err, size_t errlen);
/* Sizes every buffer for `batch` images; a no-op when already that size. Returns 0 or -1 with err. */
int net_resize(Net *net, int batch, char *err, size_t errlen);
/* x is up to net->batch images of the input shape; returns the output (owned by the last layer), or NULL when x
 * does not fit. x may hold no images at all: a rank of a data-parallel run whose share of a last, small batch is
 * empty still runs every layer, since its layers take part in the ranks' collective sums (comm.h). */
const Tensor *net_forward(Net *net, const Tensor *x, int train);
/* An eval-mode forward that no backward may follow: the same output as net_forward(net, x, 0) bit for bit, with
 * each conv2d or dense applying the batchnorm and activation after it (LayerPost), whose outputs stay unwritten.
 * Returns the output (owned by a layer), or NULL when x does not fit. */
const Tensor *net_infer(Net *net, const Tensor *x);
/* dout is the gradient w.r.t. the output; writes the input gradient to dx when not NULL. Without dx, the layers
 * before the first with a trainable parameter do not run (nobody reads their gradients; a flatten's copy, and the
 * input gradient of the dense layer after it, were an eighth of an MLP's step), nor does that layer's input
 * gradient: their dy buffers then hold stale values. after_backward is still called for every layer. */
void net_backward(Net *net, const Tensor *x, const Tensor *dout, Tensor *dx);
void net_zero_grad(Net *net);
/* Whether a team's training step reads the input faster from per-thread copies: the first layer with parameters
 * reads its input whole in every thread (LayerOps.reads_input_whole) through views of it only (views_input). */
int net_wants_input_copies(const Net *net);
/* For the training step that follows, until called again: n copies of the values of the x net_forward will be
 * given, copies[0] being x's own (n <= 1 or copies NULL: none). Borrowed; a no-op when the net wants none. */
void net_set_input_copies(Net *net, float *const *copies, int n);
/* A second network of the same layers (the same specs, borrowed) with its own buffers and a copy of every
 * parameter and buffer value of net, for eval-mode forwards on another thread. Returns 0, or -1 with err; the
 * caller frees *out with net_free. */
int net_clone(Net *net, Net **out, char *err, size_t errlen);
/* Every parameter and buffer in network order (residual bodies flattened). Caller frees *out with free(). Returns count or -1. */
int net_params(Net *net, NetParam **out);
void net_free(Net *net);

/* Hands comm (borrowed; NULL: train alone) to every layer, residual bodies included. */
void net_set_comm(Net *net, Comm *comm);
/* Data-parallel runs: calls every layer's LayerOps.sync (residual bodies included) in network order, so that
 * per-rank state agrees across the ranks. Collective. */
void net_sync(Net *net);

/* Turns on per-layer timing in net and every residual body, with every count at zero (again zero when already
 * on). Returns 0, or -1 when out of memory (profiling then stays off). */
int net_profile_start(Net *net);
/* Every layer's times in network order, residual bodies flattened after their layer. Caller frees *out with
 * free(). Returns the row count, or -1 when out of memory or profiling is off. */
int net_profile_rows(const Net *net, NetProfileRow **out);

/* For a residual layer's body: builds the layers of specs into an existing *net (not heap-allocated by this call),
 * drawing initial values from `init` and using `stream` (borrowed) for dropout masks. Returns 0 or -1 with err;
 * on success or failure the caller releases the contents with net_release. */
int net_init(Net *net, const LayerSpec *specs, int n, Shape in, Rng *init, Rng *stream, char *err, size_t errlen);
/* Frees everything inside *net that net_init and net_resize allocated, but not net itself. */
void net_release(Net *net);
/* Checks that specs chain from `in`: each layer's recorded input is what it receives and its recorded output what
 * its shape rule gives (a residual's rule checks its body the same way). *out gets the final shape. Returns 0, or
 * -1 with err naming the first layer that does not fit. */
int net_check_specs(const LayerSpec *s, int n, Shape in, Shape *out, char *err, size_t errlen);
/* Returns 0 when every parameter and buffer is finite, else -1 with "non-finite value in <layer>/<param>[index]"
 * for the first NaN or Inf in network order (runtime/finite.c). */
int net_check_finite(Net *net, char *err, size_t errlen);

#endif
