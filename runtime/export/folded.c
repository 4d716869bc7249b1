/* The folded-checkpoint exporter (export.h): an inference-only bnni checkpoint of the plan's network, batch norm
 * folded, with no optimizer or training state. Its model_source is the plan's network written out as a model
 * (job->folded_model, built by the command through the front end), so `bnni eval` and `predict` read it like any
 * checkpoint; the tensors go under that model's layer names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"

/* Copies the plan's values, in network order, into the folded network's parameters (ps[0..np)); each must have
 * the same shape. Returns the count copied, or -1 with err. */
static int copy_steps(const FoldStep *v, int n, const NetParam *ps, int np, int at, char *err, size_t errlen)
{
    for (int i = 0; i < n && at >= 0; i++) {
        for (int k = 0; k < v[i].nparams; k++, at++) {
            const Param *src = &v[i].params[k];
            if (at >= np || ps[at].p.size != src->size) {
                snprintf(err, errlen, "the folded model does not fit the values of %s/%s", v[i].spec.name, src->name);
                return -1;
            }
            memcpy(ps[at].p.value, src->value, src->size * sizeof(float));
        }
        at = copy_steps(v[i].body, v[i].nbody, ps, np, at, err, errlen);
    }
    return at;
}

static int folded_write(const ExportJob *job, char *err, size_t errlen)
{
    const ModelSpec *fm = job->folded_model;
    const Ckpt *c = job->ckpt;
    Net *net = NULL;
    NetParam *ps = NULL;
    Ckpt out;
    int np = -1, rc = -1;
    err[0] = '\0';
    if (net_create(fm->layers, fm->nlayers, fm->input, fm->seed, &net, err, errlen) < 0)
        return -1;
    if ((np = net_params(net, &ps)) < 0)
        snprintf(err, errlen, "out of memory listing the parameters");
    else if (copy_steps(job->plan->steps, job->plan->n, ps, np, 0, err, errlen) == np &&
             ckpt_build(&out, fm, ps, np, NULL, NULL, &c->metrics, c->data_mean, c->data_std, c->epoch, err,
                        errlen) == 0) {
        /* what the original recorded of its data (shape, classes, names, per-channel statistics) goes along */
        if (!c->has_data || ckpt_add_data(&out, &fm->data, c->data_limit, c->validation, c->nnorm > 1 ? c->nnorm : 1,
                                          c->nnorm > 1 ? c->data_means : &c->data_mean,
                                          c->nnorm > 1 ? c->data_stds : &c->data_std, err, errlen) == 0)
            rc = ckpt_write(job->path, &out, err, errlen);
        ckpt_free(&out);
    } else if (np >= 0 && !err[0]) {
        snprintf(err, errlen, "the folded model has more parameters than the plan");
    }
    free(ps);
    net_free(net);
    return rc;
}

const Exporter folded_exporter = {
    .name = "h5",
    .suffixes = {".h5", ".hdf5", NULL},
    .what = "an inference-only bnni checkpoint (no optimizer or training state)",
    .needs_model = 1,
    .write = folded_write,
};
