/* `bnni check`'s summary: the model's settings, then one row per layer in network order (index, name, type,
 * output shape, trainable parameters, buffers), residual bodies indented under their residual, then totals. */
#include <stdio.h>
#include <string.h>

#include "../runtime/data/kind.h"
#include "../runtime/layer.h"
#include "frontend.h"
#include <stdarg.h>

/* 44878 -> "44,878". Returns buf. */
static const char *grouped(long long v, char *buf, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", v < 0 ? -v : v), k = 0;
    if (v < 0 && (size_t)k + 1 < len)
        buf[k++] = '-';
    for (int i = 0; i < n && (size_t)k + 2 < len; i++) {
        buf[k++] = digits[i];
        if ((n - i - 1) % 3 == 0 && i != n - 1)
            buf[k++] = ',';
    }
    buf[k] = '\0';
    return buf;
}

/* Prints one table row without trailing blanks. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void row(FILE *out, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ')
        n--;
    fprintf(out, "%.*s\n", (int)n, line);
}

typedef struct Widths {
    int index, name, type, shape;
} Widths;

static void measure(const LayerSpec *v, int n, int depth, long long *count, Widths *w)
{
    char buf[64];
    for (int i = 0; i < n; i++) {
        int nl = 2 * depth + (int)strlen(v[i].name), sl = (int)strlen(shape_str(v[i].out, buf, sizeof buf));
        int tl = (int)strlen(layer_ops[v[i].kind]->type);
        if (nl > w->name)
            w->name = nl;
        if (sl > w->shape)
            w->shape = sl;
        if (tl > w->type)
            w->type = tl;
        ++*count;
        measure(v[i].body, v[i].nbody, depth + 1, count, w);
    }
}

static void rows(const LayerSpec *v, int n, int depth, long long *index, const Widths *w, FILE *out)
{
    char shape[64], p[32], b[32];
    for (int i = 0; i < n; i++) {
        const LayerSpec *l = &v[i];
        int res = l->nbody > 0; /* a sub-network's counts are its layers' */
        row(out, "%*lld  %*s%-*s  %-*s  %-*s  %12s  %9s", w->index, ++*index, 2 * depth, "",
                w->name - 2 * depth, l->name, w->type, layer_ops[l->kind]->type, w->shape,
                shape_str(l->out, shape, sizeof shape), res ? "" : grouped(l->nparams, p, sizeof p),
                res ? "" : grouped(l->nbuffers, b, sizeof b));
        rows(l->body, l->nbody, depth + 1, index, w, out);
    }
}

static void settings(const ModelSpec *m, FILE *out)
{
    char shape[64];
    static const char *const sched[] = {"constant", "step", "cosine"};
    fprintf(out, "model %s (%s)\n", m->name, m->file);
    const DataSpec *d = &m->data;
    if (d->shape.rank == 3)
        fprintf(out, "data %s: %s images, %d classes, batch %d, from %s", d->kind, shape_str(d->shape, shape,
                sizeof shape), d->classes, d->batch, data_where(d)[0] ? data_where(d) : ".");
    else
        fprintf(out, "data %s: %d features, %d classes, batch %d, from %s", d->kind, d->shape.c, d->classes, d->batch,
                data_where(d)[0] ? data_where(d) : ".");
    if (d->validation > 0)
        fprintf(out, ", validation %g", d->validation);
    if (d->flip || d->crop)
        fprintf(out, ", augment(flip=%s, crop=%d)", d->flip ? "true" : "false", d->crop);
    fputc('\n', out);
    if (m->opt.kind == OPT_SGD)
        fprintf(out, "optimizer sgd(lr=%g, momentum=%g, weight_decay=%g%s)", m->opt.lr, m->opt.momentum,
                m->opt.weight_decay, m->opt.nesterov ? ", nesterov=true" : "");
    else
        fprintf(out, "optimizer adam(lr=%g, beta1=%g, beta2=%g, eps=%g, weight_decay=%g)", m->opt.lr, m->opt.beta1,
                m->opt.beta2, m->opt.eps, m->opt.weight_decay);
    fprintf(out, ", schedule %s, %d epoch%s, seed %llu\n", sched[m->sched.kind], m->epochs, m->epochs == 1 ? "" : "s",
            (unsigned long long)m->seed);
    fprintf(out, "checkpoint %s", m->checkpoint);
    if (m->keep == KEEP_BEST)
        fprintf(out, ", keep best");
    if (m->every > 0)
        fprintf(out, ", every %d epoch%s", m->every, m->every == 1 ? "" : "s");
    fprintf(out, "\n\n");
}

void bnn_print_summary(const ModelSpec *m, FILE *out)
{
    Widths w = {1, 4, 4, 6};
    long long count = 0, index = 0;
    char buf[32], b2[32];
    settings(m, out);
    measure(m->layers, m->nlayers, 0, &count, &w);
    w.index = snprintf(buf, sizeof buf, "%lld", count);
    if (w.index < 1)
        w.index = 1;
    row(out, "%*s  %-*s  %-*s  %-*s  %12s  %9s", w.index, "#", w.name, "name", w.type, "type", w.shape, "output",
            "params", "buffers");
    row(out, "%*s  %-*s  %-*s  %-*s  %12s  %9s", w.index, "", w.name, "", w.type, "input", w.shape,
            shape_str(m->input, b2, sizeof b2), "", "");
    rows(m->layers, m->nlayers, 0, &index, &w, out);
    fprintf(out, "\n%s trainable parameters, ", grouped(m->nparams, buf, sizeof buf));
    fprintf(out, "%s buffer values, %lld layers\n", grouped(m->nbuffers, b2, sizeof b2), m->nlayers_total);
}
