/* Freeing the checked model (a ModelSpec owns its strings, its layer array and, through each residual layer,
 * that layer's body), and the range rule of argument schemas, which the front end and layer_spec_make share. */
#include "spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bodies nest at most as deep as the front end allows (64 levels), which bounds the recursion. */
void spec_layers_free(LayerSpec *v, int n)
{
    for (int i = 0; i < n; i++)
        spec_layers_free(v[i].body, v[i].nbody);
    free(v);
}

static double activations(const LayerSpec *v, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double)v[i].out.c * v[i].out.h * v[i].out.w + activations(v[i].body, v[i].nbody);
    return sum;
}

double spec_activations(const ModelSpec *m)
{
    return (double)m->input.c * m->input.h * m->input.w + activations(m->layers, m->nlayers);
}

double spec_train_bytes(const ModelSpec *m)
{
    return (double)m->nparams * 16 + (double)m->nbuffers * 4 + spec_activations(m) * m->data.batch * 4 * 3;
}

void spec_free(ModelSpec *m)
{
    if (!m)
        return;
    spec_layers_free(m->layers, m->nlayers);
    free(m->name);
    free(m->file);
    free(m->source);
    free(m->checkpoint);
    data_spec_clear(&m->data);
    free(m);
}

void data_spec_clear(DataSpec *d)
{
    for (int k = 0; k < DATA_MAX_ARGS; k++)
        free(d->arg[k].str);
    for (int k = 0; d->class_names && k < d->classes; k++)
        free(d->class_names[k]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

int arg_in_range(const ArgSpec *a, double x)
{
    if (a->lo_open ? x <= a->lo : x < a->lo)
        return 0;
    if (a->hi < ARG_NOMAX && (a->hi_open ? x >= a->hi : x > a->hi))
        return 0;
    return 1;
}

const char *arg_range_text(const ArgSpec *a, char *buf, size_t len)
{
    if (a->type == AT_INT) {
        if (a->hi >= ARG_NOMAX)
            snprintf(buf, len, "at least %.0f", a->lo);
        else
            snprintf(buf, len, "between %.0f and %.0f", a->lo, a->hi);
    } else if (a->hi >= ARG_NOMAX) {
        snprintf(buf, len, "%s %g", a->lo_open ? "greater than" : "at least", a->lo);
    } else {
        snprintf(buf, len, "in %c%g, %g%c", a->lo_open ? '(' : '[', a->lo, a->hi, a->hi_open ? ')' : ']');
    }
    return buf;
}
