/* Finite-difference gradient checking for layers and networks (see gradcheck.h): the one checker every
 * layer's test calls, so each backward is compared with the numbers its own forward produces. */
#include "gradcheck.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Backward twice must double parameter gradients and leave dx unchanged, up to sgemm's summation order: relative
 * error GRADCHECK_ACCUM_TOL, with a floor of GRADCHECK_ACCUM_FLOOR (absolute 1e-5). */
#define GRADCHECK_ACCUM_TOL 1e-4
#define GRADCHECK_ACCUM_FLOOR 1e-1

/* What is being checked: one layer or one network, with its mask stream rewound before every forward. */
typedef struct Target {
    Layer *l;
    Net *net;
    Rng *rng, start;
    Tensor r;            /* the projection, i.e. dy */
    Param *p;            /* trainable parameters */
    const char **pname;  /* their names for messages */
    const char **player; /* and their layers' */
    int np;
    NetParam *netp;      /* owned list when checking a network */
    int train;
    double worst_err;
} Target;

static const Tensor *run_forward(Target *t, const Tensor *x)
{
    *t->rng = t->start;
    if (t->l) {
        t->l->ops->forward(t->l, x, t->train);
        return &t->l->y;
    }
    return net_forward(t->net, x, t->train);
}

static void run_backward(Target *t, const Tensor *x, Tensor *dx)
{
    if (t->l) {
        memcpy(t->l->dy.data, t->r.data, tensor_size(&t->r) * sizeof(float));
        t->l->ops->backward(t->l, x, dx);
    } else {
        net_backward(t->net, x, &t->r, dx);
    }
}

/* loss = sum(y * r) in double; NaN when the forward failed. */
static double loss(Target *t, const Tensor *x)
{
    const Tensor *y = run_forward(t, x);
    double s = 0;
    if (!y || tensor_size(y) != tensor_size(&t->r))
        return NAN;
    for (size_t i = 0; i < tensor_size(&t->r); i++)
        s += (double)y->data[i] * t->r.data[i];
    return s;
}

/* Relative error of one value: |a - b| / max(|a|, |b|, floor). */
static double rel_err_floor(double a, double b, double floor)
{
    return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), floor);
}

/* The same with a fixed floor, for the accumulation check (gradients twice, against themselves). */
static double rel_err(double a, double b) { return rel_err_floor(a, b, GRADCHECK_ACCUM_FLOOR); }

static int fail(GradCheckResult *res, const char *msg)
{
    size_t n = strlen(msg) < sizeof res->worst ? strlen(msg) : sizeof res->worst - 1;
    memcpy(res->worst, msg, n);
    res->worst[n] = '\0';
    return -1;
}

/* Central difference of the loss in vals[i] with step h; also the one-sided slopes around l0. */
static double central(Target *t, const Tensor *x, float *vals, size_t i, double h, double l0, double *fwd,
                      double *bwd)
{
    float orig = vals[i], xp, xm;
    double lp, lm;
    vals[i] = (float)(orig + h), xp = vals[i];
    lp = loss(t, x);
    vals[i] = (float)(orig - h), xm = vals[i];
    lm = loss(t, x);
    vals[i] = orig;
    *fwd = (lp - l0) / ((double)xp - orig);
    *bwd = (l0 - lm) / ((double)orig - xm);
    return (lp - lm) / ((double)xp - xm); /* the steps actually taken, after rounding to float */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Compares analytic[i] with central differences of the loss in vals[i] for a sample of i; records the worst.
 * First every sampled value's differences at step h. They give the tensor's scale (its largest gradient, analytic
 * or numeric) and its noise (the median gap between the two one-sided differences: float32 rounding and
 * curvature within the step), and so its floor: GRADCHECK_FLOOR_REL of the scale, or GRADCHECK_NOISE times the
 * noise over tol when that is larger. Then each value's error against that floor; a value that fails is measured
 * again at h/10 (curvature, e.g. batchnorm over a small variance), then tested for a kink within the step
 * (one-sided slopes that disagree, one of them matching). GRADCHECK_VERBOSE=1 prints each tensor's figures. */
static void check_values(Target *t, const Tensor *x, float *vals, const float *analytic, size_t n, double h,
                         const char *layer, const char *name, double tol, double *max_err, GradCheckResult *res,
                         Rng *pick)
{
    size_t count = n < GRADCHECK_MAX_CHECKS ? n : GRADCHECK_MAX_CHECKS, at[GRADCHECK_MAX_CHECKS];
    double l0 = loss(t, x), num[GRADCHECK_MAX_CHECKS], fwd[GRADCHECK_MAX_CHECKS], bwd[GRADCHECK_MAX_CHECKS];
    double gap[GRADCHECK_MAX_CHECKS], scale = 0.0, worst = 0.0;
    for (size_t k = 0; k < count; k++) {
        size_t lo = k * n / count, hi = (k + 1) * n / count;
        at[k] = lo + (size_t)rng_below(pick, hi - lo);
        num[k] = central(t, x, vals, at[k], h, l0, &fwd[k], &bwd[k]);
        scale = fmax(scale, fmax(fabs(analytic[at[k]]), fabs(num[k])));
        gap[k] = fabs(fwd[k] - bwd[k]);
    }
    qsort(gap, count, sizeof *gap, cmp_double);
    double noise = count ? gap[count / 2] : 0.0;
    double floor = fmax(GRADCHECK_FLOOR_REL * scale, GRADCHECK_NOISE * noise / tol);
    floor = floor > 0 ? floor : DBL_MIN; /* a tensor with no gradient and no noise: any difference fails */
    for (size_t k = 0; k < count; k++) {
        size_t i = at[k];
        double f2, b2, a = analytic[i], nk = num[k], err = rel_err_floor(a, nk, floor);
        res->nchecked++;
        if (!(err <= tol)) {
            double num2 = central(t, x, vals, i, h / 10, l0, &f2, &b2), err2 = rel_err_floor(a, num2, floor);
            if (err2 < err || isnan(err))
                err = err2, nk = num2;
        }
        if (!(err <= tol) && rel_err_floor(fwd[k], bwd[k], floor) > tol &&
            (rel_err_floor(a, fwd[k], floor) <= tol || rel_err_floor(a, bwd[k], floor) <= tol)) {
            res->nkinks++;
            continue;
        }
        if (isnan(err))
            err = INFINITY;
        worst = fmax(worst, err);
        *max_err = fmax(*max_err, err);
        if (err > t->worst_err || !res->worst[0]) {
            t->worst_err = err;
            snprintf(res->worst, sizeof res->worst, "%s%s%s[%zu]: analytic %.6g numeric %.6g (rel err %.3g)",
                     layer ? layer : "", layer ? "." : "", name, i, a, nk, err);
        }
    }
    if (getenv("GRADCHECK_VERBOSE"))
        fprintf(stderr, "gradcheck %s%s%s: %zu values, step %.2g, scale %.3g, noise %.3g, floor %.3g, worst %.3g\n",
                layer ? layer : "", layer ? "." : "", name, count, h, scale, noise, floor, worst);
}

double gradcheck_fill_distinct(Tensor *x, uint64_t seed)
{
    size_t n = tensor_size(x);
    double gap = 4.0 / (double)n;
    Rng r;
    rng_seed(&r, seed);
    /* (i - floor(n/2) + 0.5) * gap: symmetric about 0 within half a gap, never closer than gap/2 to it. */
    for (size_t i = 0; i < n; i++)
        x->data[i] = (float)(((double)i - (double)(n / 2) + 0.5) * gap);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(&r, i);
        float tmp = x->data[i - 1];
        x->data[i - 1] = x->data[j], x->data[j] = tmp;
    }
    return gap;
}

static void fill_uniform(Tensor *t, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < tensor_size(t); i++)
        t->data[i] = 2.0f * rng_uniform(&r) - 1.0f;
}

static void zero_grads(Target *t)
{
    for (int j = 0; j < t->np; j++)
        memset(t->p[j].grad, 0, t->p[j].size * sizeof(float));
}

/* Runs backward twice after one forward: fills dx1 and g1 (the first gradients) and measures accumulation. */
static int first_gradients(Target *t, const Tensor *x, Tensor *dx, Tensor *dx1, float **g1, GradCheckResult *res)
{
    size_t nx = tensor_size(x);
    if (isnan(loss(t, x)))
        return fail(res, "forward failed or gave an output of the wrong size");
    zero_grads(t);
    for (size_t i = 0; i < nx; i++)
        dx->data[i] = NAN; /* every element must be written */
    run_backward(t, x, dx);
    memcpy(dx1->data, dx->data, nx * sizeof(float));
    for (int j = 0; j < t->np; j++)
        memcpy(g1[j], t->p[j].grad, t->p[j].size * sizeof(float));
    for (size_t i = 0; i < nx; i++)
        dx->data[i] = 1e3f; /* an accumulating backward would keep this */
    run_backward(t, x, dx);
    for (size_t i = 0; i < nx; i++) {
        double e = rel_err(dx->data[i], dx1->data[i]);
        res->max_accum_err = fmax(res->max_accum_err, isnan(e) ? INFINITY : e);
    }
    for (int j = 0; j < t->np; j++)
        for (size_t i = 0; i < t->p[j].size; i++) {
            double e = rel_err(t->p[j].grad[i], 2.0 * g1[j][i]);
            res->max_accum_err = fmax(res->max_accum_err, isnan(e) ? INFINITY : e);
        }
    if (res->max_accum_err > GRADCHECK_ACCUM_TOL) {
        snprintf(res->worst, sizeof res->worst,
                 "backward twice: dx must be overwritten and gradients accumulated (rel err %.3g)", res->max_accum_err);
        return -1;
    }
    return 0;
}

static int alloc_like(Tensor *t, int batch, Shape s)
{
    return tensor_alloc(t, batch, s.c, s.rank == 1 ? 1 : s.h, s.rank == 1 ? 1 : s.w);
}

static int run_check(Target *t, Shape in, int batch, uint64_t seed, double tol, GradCheckResult *res)
{
    Tensor x = {0}, dx = {0}, dx1 = {0};
    float **g1 = calloc((size_t)t->np + 1, sizeof *g1);
    Rng pick;
    double gap, hx;
    int rc = -1;
    rng_seed(&pick, seed ^ 0xC0FFEEull);
    if (!g1 || alloc_like(&x, batch, in) || alloc_like(&dx, batch, in) || alloc_like(&dx1, batch, in)) {
        fail(res, "out of memory");
        goto done;
    }
    for (int j = 0; j < t->np; j++)
        if (!(g1[j] = malloc(t->p[j].size * sizeof(float) + 1))) {
            fail(res, "out of memory");
            goto done;
        }
    gap = gradcheck_fill_distinct(&x, seed);
    fill_uniform(&t->r, seed + 1);
    if (first_gradients(t, &x, &dx, &dx1, g1, res))
        goto done;
    hx = fmin(GRADCHECK_STEP, gap / 3);
    check_values(t, &x, x.data, dx1.data, tensor_size(&x), hx, NULL, "input", tol, &res->max_rel_err_input, res, &pick);
    for (int j = 0; j < t->np; j++)
        check_values(t, &x, t->p[j].value, g1[j], t->p[j].size, GRADCHECK_STEP, t->player[j], t->pname[j], tol,
                     &res->max_rel_err_param, res, &pick);
    rc = res->max_rel_err_input <= tol && res->max_rel_err_param <= tol ? 0 : -1;
done:
    for (int j = 0; g1 && j < t->np; j++)
        free(g1[j]);
    free(g1);
    tensor_free(&x), tensor_free(&dx), tensor_free(&dx1);
    return rc;
}

static void reset(GradCheckResult *res)
{
    memset(res, 0, sizeof *res);
}

/* Fills t->p with the trainable parameters of a list (t->netp owned), naming each by its layer. */
static int take_params(Target *t, NetParam *list, int n)
{
    t->netp = list;
    t->p = calloc((size_t)n + 1, sizeof *t->p);
    t->pname = calloc((size_t)n + 1, sizeof *t->pname);
    t->player = calloc((size_t)n + 1, sizeof *t->player);
    if (!t->p || !t->pname || !t->player)
        return -1;
    for (int j = 0; j < n; j++)
        if (list[j].p.trainable && list[j].p.grad)
            t->pname[t->np] = list[j].p.name, t->player[t->np] = list[j].layer->name, t->p[t->np++] = list[j].p;
    return 0;
}

/* A layer's parameters; a residual layer's are those of its body (its state is the body's Net). */
static int layer_params(Layer *l, NetParam **out)
{
    Param p[LAYER_MAX_PARAMS];
    int n;
    if (l->spec->kind == LK_RESIDUAL)
        return net_params((Net *)l->state, out);
    n = l->ops->params ? l->ops->params(l, p) : 0;
    if (!(*out = calloc((size_t)n + 1, sizeof **out)))
        return -1;
    for (int j = 0; j < n; j++)
        (*out)[j] = (NetParam){l->spec, p[j]};
    return n;
}

int gradcheck_layer(Layer *l, int batch, int train, uint64_t seed, double tol, GradCheckResult *res)
{
    char err[256];
    NetParam *list = NULL;
    Rng own;
    Target t = {.l = l, .train = train};
    int n, rc = -1;
    reset(res);
    if (tol <= 0)
        tol = GRADCHECK_TOL;
    if (l->batch != batch && l->ops->resize(l, batch, err, sizeof err))
        return fail(res, err);
    rng_seed(&own, seed ^ 0xD00Dull);
    if (!l->rng)
        l->rng = &own;
    t.rng = l->rng;
    t.start = *t.rng;
    if ((n = layer_params(l, &list)) < 0 || take_params(&t, list, n) || alloc_like(&t.r, batch, l->spec->out)) {
        fail(res, "out of memory");
        goto done;
    }
    rc = run_check(&t, l->spec->in, batch, seed, tol, res);
done:
    if (l->rng == &own)
        l->rng = NULL;
    free(t.netp), free(t.p), free(t.pname), free(t.player);
    tensor_free(&t.r);
    return rc;
}

int gradcheck_net(Net *net, int batch, int train, uint64_t seed, double tol, GradCheckResult *res)
{
    char err[256];
    NetParam *list = NULL;
    Target t = {.net = net, .rng = &net->rng, .start = net->rng, .train = train};
    int n, rc = -1;
    reset(res);
    if (tol <= 0)
        tol = GRADCHECK_TOL;
    if (net_resize(net, batch, err, sizeof err))
        return fail(res, err);
    if ((n = net_params(net, &list)) < 0 || take_params(&t, list, n) || alloc_like(&t.r, batch, net->out)) {
        fail(res, "out of memory");
        goto done;
    }
    rc = run_check(&t, net->in, batch, seed, tol, res);
done:
    free(t.netp), free(t.p), free(t.pname), free(t.player);
    tensor_free(&t.r);
    return rc;
}

int gradcheck_shapes(LayerSpec *s, int n, Shape in, Shape *out, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        Shape body_out;
        s[i].in = in;
        /* a body first: a residual's shape rule checks its body's recorded shapes */
        if (s[i].nbody > 0 && gradcheck_shapes(s[i].body, s[i].nbody, in, &body_out, err, errlen))
            return -1;
        if (layer_out_shape(&s[i], in, &s[i].out, &s[i].nparams, &s[i].nbuffers, err, errlen))
            return -1;
        in = s[i].out;
    }
    *out = in;
    return 0;
}

int gradcheck_setup(Layer *l, LayerSpec *s, Shape in, int batch, Rng *stream, uint64_t seed, char *err, size_t errlen)
{
    Shape out;
    Rng init;
    memset(l, 0, sizeof *l);
    if (gradcheck_shapes(s, 1, in, &out, err, errlen))
        return -1;
    l->ops = layer_ops[s->kind];
    l->spec = s;
    l->rng = stream;
    rng_seed(&init, seed);
    if (l->ops->create(l, &init, err, errlen))
        return -1;
    return l->ops->resize(l, batch, err, errlen);
}
