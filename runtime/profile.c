/* The tables of `bnni train --profile` (see profile.h). Every figure is a mean over the calls this process made,
 * in milliseconds of wall time; a layer's share is of the mean whole step, so the layers and the phases outside
 * them add up to 100 % (a residual layer's row includes its body's rows, which are listed again under it). */
#include "profile.h"

#include "train.h"

#include <stdlib.h>
#include <string.h>

int prof_add_epoch(TrainProfile *p, int epoch, double train, double test, double save)
{
    if (p->nepochs == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        int *e = realloc(p->epoch, (size_t)cap * sizeof *e);
        if (e)
            p->epoch = e;
        double *t = e ? realloc(p->train, (size_t)cap * sizeof *t) : NULL;
        if (t)
            p->train = t;
        double *v = t ? realloc(p->test, (size_t)cap * sizeof *v) : NULL;
        if (v)
            p->test = v;
        double *s = v ? realloc(p->save, (size_t)cap * sizeof *s) : NULL;
        if (!s)
            return -1;
        p->save = s, p->cap = cap;
    }
    p->epoch[p->nepochs] = epoch;
    p->train[p->nepochs] = train, p->test[p->nepochs] = test, p->save[p->nepochs] = save;
    p->nepochs++;
    return 0;
}

void prof_free(TrainProfile *p)
{
    free(p->epoch), free(p->train), free(p->test), free(p->save);
    memset(p, 0, sizeof *p);
}

static double per_call_ms(double seconds, long long calls) { return calls > 0 ? 1e3 * seconds / calls : 0.0; }

static double pct(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

/* The layer table; adds the top-level layers' ms per training step to *fwd and *bwd. (Their eval ms, per chunk on
 * one thread, do not add up to the wall time of an evaluation batch, so they are not summed.) */
static void layer_table(FILE *f, const NetProfileRow *rows, int n, double step_ms, int batches, double *fwd,
                        double *bwd)
{
    int w = 5;
    for (int i = 0; i < n; i++) {
        int len = 2 * rows[i].depth + (int)strlen(rows[i].spec->name);
        w = len > w ? len : w;
    }
    fprintf(f, "%-*s  %-10s %9s %9s %11s %10s %9s\n", w, "layer", "type", "fwd ms", "bwd ms", "ms/epoch",
            "% of step", "eval ms");
    for (int i = 0; i < n; i++) {
        const NetProfileRow *r = &rows[i];
        double fm = per_call_ms(r->t.fwd, r->t.nfwd), bm = per_call_ms(r->t.bwd, r->t.nbwd);
        double em = per_call_ms(r->t.eval, r->t.neval);
        fprintf(f, "%*s%-*s  %-10s %9.4f %9.4f %11.2f %9.1f%% %9.4f\n", 2 * r->depth, "", w - 2 * r->depth,
                r->spec->name, layer_ops[r->spec->kind]->type, fm, bm, (fm + bm) * batches, pct(fm + bm, step_ms),
                em);
        if (r->depth == 0)
            *fwd += fm, *bwd += bm;
    }
}

static void phase_row(FILE *f, const char *name, double ms, double step_ms, int batches)
{
    fprintf(f, "%-16s %9.4f %11.2f %9.1f%%\n", name, ms, ms * batches, pct(ms, step_ms));
}

/* Data-parallel runs: what the step spends on communication, both kinds together. */
static void comm_lines(FILE *f, const TrainProfile *p, double step_ms)
{
    double grads = per_call_ms(p->phase[PROF_COMM], p->steps), layers = per_call_ms(p->layer_comm, p->steps);
    fprintf(f, "communication (rank 0 of %d, %s): %.4f ms/step, %.1f%% of the step: %.4f waiting for the sums of "
               "%zu bytes of gradients in %d bucket%s after the backward pass (the rest overlapped it), %.4f in %.1f "
               "sums per step inside the layers (batchnorm statistics, counted in their rows above)\n",
            p->ranks, p->library ? p->library : "MPI", grads + layers, pct(grads + layers, step_ms), grads,
            p->grad_bytes, p->buckets, p->buckets == 1 ? "" : "s", layers,
            p->steps > 0 ? (double)p->layer_comm_calls / p->steps : 0.0);
}

void prof_print(FILE *f, const TrainProfile *p, const Net *net, int batch, int batches_per_epoch)
{
    static const char *const names[PROF_NPHASES] = {"data",      "loss",         "zero_grad",
                                                    "optimizer", "finite check", "gradient sums"};
    NetProfileRow *rows = NULL;
    int n = net_profile_rows(net, &rows);
    double step_ms = per_call_ms(p->step, p->steps), fwd = 0.0, bwd = 0.0, rest = step_ms;
    fprintf(f, "\nprofile: milliseconds of wall time per batch of %d, mean of %lld training steps and %lld "
               "evaluation batches; %d batches per epoch; an activation after a batchnorm, conv2d, dense or "
               "residual is counted in that layer's row\n",
            batch, p->steps, p->eval_batches, batches_per_epoch);
    if (n < 0) {
        fprintf(f, "(no per-layer times: out of memory)\n");
        n = 0;
    }
    layer_table(f, rows, n, step_ms, batches_per_epoch, &fwd, &bwd);
    free(rows);
    fprintf(f, "\n%-16s %9s %11s %10s\n", "phase", "ms/step", "ms/epoch", "% of step");
    phase_row(f, "forward", fwd, step_ms, batches_per_epoch);
    phase_row(f, "backward", bwd, step_ms, batches_per_epoch);
    rest -= fwd + bwd;
    for (int k = 0; k < PROF_NPHASES; k++) {
        if (k == PROF_COMM && p->ranks < 2)
            continue;
        double ms = per_call_ms(p->phase[k], p->steps);
        phase_row(f, names[k], ms, step_ms, batches_per_epoch);
        rest -= ms;
    }
    phase_row(f, "other", rest, step_ms, batches_per_epoch);
    phase_row(f, "step", step_ms, step_ms, batches_per_epoch);
    if (p->ranks > 1)
        comm_lines(f, p, step_ms);
    if (p->streamed && p->nepochs > 0)
        fprintf(f, "data: read from the files per batch; %s read %lld training items, %.2f of the %lld in each of %d "
                   "epoch%s, and %lld test items, %.2f of the %lld in each of %d evaluation%s\n",
                p->ranks > 1 ? "rank 0" : "this process", p->read_train,
                p->ntrain ? (double)p->read_train / ((double)p->ntrain * p->nepochs) : 0.0, p->ntrain, p->nepochs,
                p->nepochs == 1 ? "" : "s", p->read_test,
                p->ntest ? (double)p->read_test / ((double)p->ntest * p->nepochs) : 0.0, p->ntest, p->nepochs,
                p->nepochs == 1 ? "" : "s");
    double eval_ms = per_call_ms(p->eval, p->eval_batches);
    fprintf(f, "evaluation: %.4f ms of wall time per batch of %d, %.0f images/s; its layers' \"eval ms\" above are "
               "per chunk of up to %d images on one thread, a batchnorm and activation after a conv2d or dense "
               "counted in that layer\n",
            eval_ms, batch, p->eval > 0 ? p->eval_images / p->eval : 0.0, EVAL_CHUNK);
    fprintf(f, "\n%-6s %10s %10s %12s\n", "epoch", "train s", "eval s", "checkpoint s");
    for (int i = 0; i < p->nepochs; i++)
        fprintf(f, "%-6d %10.3f %10.3f %12.3f\n", p->epoch[i], p->train[i], p->test[i], p->save[i]);
}
