/* A generic finite-difference gradient checker for one layer or a whole network (tests only).
 * It draws an input x and a random projection r, defines loss = sum(y * r) (so dy = r), runs backward once,
 * and compares the input gradient and every trainable parameter's gradient with central differences
 * (loss evaluated in double from the float outputs). */
#ifndef BNNI_GRADCHECK_H
#define BNNI_GRADCHECK_H

#include <stdint.h>

#include "runtime/layer.h"
#include "runtime/net.h"

/* Relative error of one value: |analytic - numeric| / max(|analytic|, |numeric|, floor). Each tensor has its own
 * floor: GRADCHECK_FLOOR_REL times its largest gradient (analytic or numeric, over the values checked), or, when
 * larger, GRADCHECK_NOISE times its noise divided by the tolerance, the noise being the median gap between the
 * two one-sided differences of its values (float32 rounding in the forward, curvature within the step). So each
 * tensor is checked against its own magnitude -- a zeroed, halved or misplaced gradient fails wherever it rises
 * above the noise, also in an early layer or the input, whose gradients can be 1e-4 -- while rounding noise,
 * which a batchnorm in training mode makes ten times larger than eval mode does, does not fail a right one.
 * GRADCHECK_TOL is the tolerance when tol <= 0 is passed: float32 forwards give errors around 1e-4..1e-3, while a
 * wrong gradient (missing term, wrong index, factor) gives errors of 1e-1 or more. */
#define GRADCHECK_FLOOR_REL 1e-1
#define GRADCHECK_NOISE 8.0
#define GRADCHECK_TOL 1e-2
/* Step for parameters; the input step is min(GRADCHECK_STEP, gap / 3) where gap is the input's value spacing.
 * A value that fails at its step is measured again at a tenth of it and the better difference is kept: the large
 * step keeps float32 noise low, the small one the curvature error (batchnorm over a small variance). */
#define GRADCHECK_STEP 1e-2
/* At most this many values of each tensor are checked (an evenly spread random sample when larger). */
#define GRADCHECK_MAX_CHECKS 400

typedef struct GradCheckResult {
    double max_rel_err_input, max_rel_err_param;
    /* Backward run twice after one forward: parameter gradients must double (they accumulate) and dx must not
     * change (it is overwritten). The largest relative deviation from that. */
    double max_accum_err;
    int nchecked;
    /* Values where the central difference disagreed but the one-sided differences disagree with each other too
     * (a relu or max kink within the step) and the analytic gradient matched one of them: not counted as errors. */
    int nkinks;
    char worst[128]; /* the worst value, e.g. "weight[17]: analytic 0.41 numeric 0.52", or the failure */
} GradCheckResult;

/* Checks a created layer (resized to `batch` here when needed). The input is gradcheck_fill_distinct(seed);
 * train selects the forward mode; a dropout mask is reused by rewinding *l->rng (or a private stream when
 * l->rng is NULL) before every forward. Returns 0 when every error is within tol (<= 0: GRADCHECK_TOL). */
int gradcheck_layer(Layer *l, int batch, int train, uint64_t seed, double tol, GradCheckResult *res);
/* The same for a whole network (net_resize'd to batch here), rewinding net->rng. */
int gradcheck_net(Net *net, int batch, int train, uint64_t seed, double tol, GradCheckResult *res);

/* Fills x with a shuffled evenly spaced grid over [-2, 2]: all values distinct and none at 0, so that relu and
 * max kinks stay more than a step away. Returns the spacing between neighbouring values. */
double gradcheck_fill_distinct(Tensor *x, uint64_t seed);

/* Fills in s[i].in, .out, .nparams, .nbuffers from `in` through the shape rules, residual bodies included;
 * *out gets the final shape. Returns 0 or -1 with err. */
int gradcheck_shapes(LayerSpec *s, int n, Shape in, Shape *out, char *err, size_t errlen);
/* Sets up a standalone layer for s (shapes filled from `in`): create with an init stream seeded from seed, then
 * resize to batch. stream is the dropout stream (may be NULL). Returns 0 or -1 with err; destroy with
 * l->ops->destroy (also after a failed create). */
int gradcheck_setup(Layer *l, LayerSpec *s, Shape in, int batch, Rng *stream, uint64_t seed, char *err, size_t errlen);

#endif
