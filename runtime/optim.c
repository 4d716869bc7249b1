/* SGD and Adam with torch.optim's exact update order (torch 1.13 _single_tensor_sgd / _single_tensor_adam),
 * and the closed forms of torch's StepLR and CosineAnnealingLR. Scalars are double as in Python; tensor
 * arithmetic is float32, one torch operation at a time, with fmaf exactly where torch's CPU kernels fuse a
 * multiply-add (add with alpha, addcmul): on x86-64 this reproduces torch's parameters bit for bit. */
#include "optim.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"

struct Optim {
    OptSpec spec;
    NetParam *params; /* borrowed */
    int n;
    int nstate;       /* state tensors per trainable parameter: 0 (plain sgd), 1 (momentum) or 2 (adam) */
    float **state;    /* n * nstate arrays, NULL for buffers; owned */
    long long steps;  /* completed steps: torch's "state is empty" on the first, Adam's bias-correction t */
    size_t total;     /* values of the trainable parameters */
};

static const char *const state_names[2][2] = {{"momentum_buffer", NULL}, {"exp_avg", "exp_avg_sq"}};

int optim_create(const OptSpec *spec, NetParam *params, int n, Optim **out, char *err, size_t errlen)
{
    Optim *o = calloc(1, sizeof *o);
    *out = NULL;
    if (!o)
        goto oom;
    o->spec = *spec, o->params = params, o->n = n;
    o->nstate = spec->kind == OPT_ADAM ? 2 : spec->momentum != 0.0 ? 1 : 0;
    o->state = calloc((size_t)n * 2 + 1, sizeof *o->state);
    if (!o->state)
        goto oom;
    for (int i = 0; i < n; i++) {
        if (!params[i].p.grad)
            continue;
        o->total += params[i].p.size;
        for (int j = 0; j < o->nstate; j++)
            if (!(o->state[i * 2 + j] = calloc(params[i].p.size ? params[i].p.size : 1, sizeof(float)))) {
                snprintf(err, errlen, "optimizer state for %s/%s: out of memory", params[i].layer->name,
                         params[i].p.name);
                optim_free(o);
                return -1;
            }
    }
    *out = o;
    return 0;
oom:
    snprintf(err, errlen, "optimizer: out of memory");
    optim_free(o);
    return -1;
}

/* torch.optim.SGD, dampening 0: g = grad + wd*p; buf = g on the first step, else buf = momentum*buf + g;
 * g = nesterov ? g + momentum*buf : buf; p -= lr*g. buf.mul_().add_() is two torch ops: two roundings. */
static void sgd_update(float *p, const float *grad, float *buf, size_t n, const OptSpec *s, double lr, int first)
{
    float wd = (float)s->weight_decay, mom = (float)s->momentum, a = (float)-lr;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (s->weight_decay != 0.0)
            g = fmaf(wd, p[i], g);
        if (buf) {
            buf[i] = first ? g : buf[i] * mom + g;
            g = s->nesterov ? fmaf(mom, buf[i], g) : buf[i];
        }
        p[i] = fmaf(a, g, p[i]);
    }
}

/* torch.optim.Adam at step t (1-based): g = grad + wd*p; m = beta1*m + (1-beta1)*g; v = beta2*v + (1-beta2)*g*g;
 * p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps), i.e. lr * m_hat / (sqrt(v_hat) + eps). */
static void adam_update(float *restrict p, const float *restrict grad, float *restrict m, float *restrict v, size_t n,
                        const OptSpec *s, double lr, long long t)
{
    double bc1 = 1.0 - pow(s->beta1, (double)t), bc2 = 1.0 - pow(s->beta2, (double)t);
    float step = (float)-(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)s->eps;
    float wd = (float)s->weight_decay, b1 = (float)s->beta1, b2 = (float)s->beta2;
    float c1 = (float)(1.0 - s->beta1), c2 = (float)(1.0 - s->beta2);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        if (s->weight_decay != 0.0)
            g = fmaf(wd, p[i], g);
        m[i] = fmaf(c1, g, m[i] * b1);
        v[i] = fmaf(c2 * g, g, v[i] * b2); /* addcmul: (value*g)*g fused into the add */
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + step * m[i] / denom; /* addcdiv's order: (value*m)/denom */
    }
}

/* The update of parameter i's values [lo, hi); returns tensor_nonfinite() of the new values. */
static int update(Optim *o, int i, size_t lo, size_t hi, double lr)
{
    Param *p = &o->params[i].p;
    float **st = o->state + i * 2, *s0 = st[0] ? st[0] + lo : NULL, *s1 = st[1] ? st[1] + lo : NULL;
    if (o->spec.kind == OPT_ADAM)
        adam_update(p->value + lo, p->grad + lo, s0, s1, hi - lo, &o->spec, lr, o->steps + 1);
    else
        sgd_update(p->value + lo, p->grad + lo, s0, hi - lo, &o->spec, lr, o->steps == 0);
    return tensor_nonfinite(p->value + lo, hi - lo);
}

/* Every value's update depends on that value alone, so the threads split each tensor (into cache-line multiples)
 * and the bits do not depend on their number. Each thread then updates about the part of a layer's gradient that
 * it computed in the backward pass, still in its own cache: one thread alone took 7x longer over mlp_bn's 234,000
 * values at 2 threads, reading the other core's half. */
typedef struct StepCall {
    Optim *o;
    double lr;
    atomic_int bad;
} StepCall;

static void step_task(void *ctx, int t, int T)
{
    StepCall *c = ctx;
    int bad = 0;
    (void)t, (void)T;
    for (int i = 0; i < c->o->n; i++) {
        size_t lo, hi;
        if (!c->o->params[i].p.grad)
            continue;
        rt_share(c->o->params[i].p.size, 16, &lo, &hi);
        bad |= update(c->o, i, lo, hi, c->lr);
    }
    if (bad)
        atomic_store(&c->bad, 1);
}

int optim_step(Optim *o, double lr)
{
    StepCall c = {o, lr, 0};
    rt_run(o->total >= (size_t)RT_MIN_PARALLEL ? rt_threads() : 1, step_task, &c);
    o->steps++;
    return !atomic_load(&c.bad);
}

long long optim_step_count(const Optim *o) { return o->steps; }

void optim_set_step_count(Optim *o, long long steps) { o->steps = steps; }

int optim_state(Optim *o, int i, Param *out)
{
    const Param *p = &o->params[i].p;
    if (!p->grad)
        return 0;
    int kind = o->spec.kind == OPT_ADAM;
    for (int j = 0; j < o->nstate; j++) {
        out[j] = *p;
        out[j].name = state_names[kind][j];
        out[j].value = o->state[i * 2 + j];
        out[j].grad = NULL;
        out[j].trainable = 0;
    }
    return o->nstate;
}

void optim_free(Optim *o)
{
    if (!o)
        return;
    if (o->state)
        for (int i = 0; i < o->n * 2; i++)
            free(o->state[i]);
    free(o->state);
    free(o);
}

double sched_lr(const SchedSpec *s, double base_lr, int epoch, int epochs)
{
    switch (s->kind) {
    case SCHED_STEP:
        return s->every > 0 ? base_lr * pow(s->factor, (double)(epoch / s->every)) : base_lr;
    case SCHED_COSINE:
        if (epochs <= 0)
            return base_lr;
        return s->min_lr + (base_lr - s->min_lr) * (1.0 + cos(M_PI * epoch / epochs)) / 2.0;
    case SCHED_CONSTANT:
    default:
        return base_lr;
    }
}
