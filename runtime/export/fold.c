/* The export plan (fold.h): the network's layers in order, each batchnorm that follows a conv2d or dense folded
 * into it through the layers' own eval_affine and fold_affine (layer.h), so this file knows no layer kind. */
#include "fold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Folds the batchnorm bn into the step of layer l. Returns 0 or -1 (out of memory). */
static int fold_pair(FoldStep *st, Layer *l, Layer *bn)
{
    int C = bn->spec->in.c;
    double *scale = malloc((size_t)C * sizeof *scale), *shift = malloc((size_t)C * sizeof *shift);
    int n = -1;
    if (scale && shift) {
        bn->ops->eval_affine(bn, scale, shift);
        n = l->ops->fold_affine(l, scale, shift, &st->spec, st->params);
    }
    free(scale), free(shift);
    if (n < 0)
        return -1;
    st->nparams = n, st->owned = 1, st->absorbed = bn->spec;
    return 0;
}

static int plan_seq(Net *net, int keep_bn, FoldStep **out, int *nout, int *folded)
{
    FoldStep *v = calloc((size_t)net->n + 1, sizeof *v);
    int n = 0;
    if (!(*out = v))
        return -1;
    for (int i = 0; i < net->n; i++) {
        Layer *l = &net->layers[i], *next = i + 1 < net->n ? &net->layers[i + 1] : NULL;
        FoldStep *st = &v[n++];
        *nout = n;
        st->layer = l, st->spec = *l->spec, st->spec.body = NULL, st->spec.nbody = 0;
        if (!keep_bn && l->ops->fold_affine && next && next->ops->eval_affine) {
            if (fold_pair(st, l, next) < 0)
                return -1;
            (*folded)++, i++;
            continue;
        }
        st->nparams = l->ops->params ? l->ops->params(l, st->params) : 0;
        if (l->ops->body && plan_seq(l->ops->body(l), keep_bn, &st->body, &st->nbody, folded) < 0)
            return -1;
    }
    return 0;
}

static void free_seq(FoldStep *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        for (int k = 0; v[i].owned && k < v[i].nparams; k++)
            free(v[i].params[k].value);
        free_seq(v[i].body, v[i].nbody);
    }
    free(v);
}

void fold_free(FoldPlan *p)
{
    free_seq(p->steps, p->n);
    memset(p, 0, sizeof *p);
}

static int check_finite(const FoldStep *v, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < v[i].nparams; k++)
            for (size_t j = 0; j < v[i].params[k].size; j++)
                if (!isfinite(v[i].params[k].value[j])) {
                    snprintf(err, errlen, "non-finite value in %s/%s[%zu]%s%s", v[i].spec.name, v[i].params[k].name,
                             j, v[i].absorbed ? " after folding " : "", v[i].absorbed ? v[i].absorbed->name : "");
                    return -1;
                }
        if (check_finite(v[i].body, v[i].nbody, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int fold_plan(Net *net, int keep_bn, FoldPlan *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    /* The values folding reads must be finite first, so that a bad checkpoint is named by its own tensor. */
    if (net_check_finite(net, err, errlen) < 0)
        return -1;
    if (plan_seq(net, keep_bn, &out->steps, &out->n, &out->folded) < 0) {
        snprintf(err, errlen, "out of memory folding the batch norms");
        return -1;
    }
    return check_finite(out->steps, out->n, err, errlen);
}

LayerSpec *fold_specs(const FoldStep *steps, int n)
{
    LayerSpec *v = calloc((size_t)n + 1, sizeof *v);
    for (int i = 0; v && i < n; i++) {
        v[i] = steps[i].spec;
        v[i].body = NULL, v[i].nbody = 0;
        if (steps[i].nbody) {
            if (!(v[i].body = fold_specs(steps[i].body, steps[i].nbody))) {
                spec_layers_free(v, i);
                return NULL;
            }
            v[i].nbody = steps[i].nbody;
        }
    }
    return v;
}
