/* HDF5 checkpoints (docs/checkpoint.md). The file is composed in memory with HDF5's core driver and written
 * with plain write/fsync/rename, so every disk error is ours to see and the target is never half-written.
 * HDF5's own error printing is switched off: failures come back as one line in err. */
#include "ckpt.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "data/kind.h"
#include "h5format.h"
#include "h5guard.h"
#include "layer.h"
#include "netdesc.h"
#include "trace_h5.h"
#include "version.h"

#define MAX_TENSOR_VALUES (1ull << 31)

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---------------------------------------------------------------- metrics */

int metrics_append(CkptMetrics *m, const double v[6], const double *val)
{
    double **cols[8] = {&m->train_loss, &m->train_acc, &m->test_loss,        &m->test_acc,
                        &m->seconds,    &m->images_per_second, &m->val_loss, &m->val_acc};
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        for (int k = 0; k < 8; k++) {
            double *p = realloc(*cols[k], (size_t)cap * sizeof **cols[k]);
            if (!p)
                return -1;
            *cols[k] = p;
        }
        m->cap = cap;
    }
    for (int k = 0; k < 6; k++)
        (*cols[k])[m->n] = v[k];
    m->val_loss[m->n] = val ? val[0] : NAN;
    m->val_acc[m->n] = val ? val[1] : NAN;
    m->has_val |= val != NULL;
    m->n++;
    return 0;
}

void metrics_free(CkptMetrics *m)
{
    free(m->train_loss), free(m->train_acc), free(m->test_loss);
    free(m->test_acc), free(m->seconds), free(m->images_per_second);
    free(m->val_loss), free(m->val_acc);
    memset(m, 0, sizeof *m);
}

const char *ckpt_dims_str(int rank, const int *dims, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? ", " : "", dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
    return buf;
}

const CkptTensor *ckpt_find(const Ckpt *c, const char *path)
{
    for (int i = 0; i < c->ntensors; i++)
        if (strcmp(c->tensors[i].path, path) == 0)
            return &c->tensors[i];
    return NULL;
}

void ckpt_data_record(const Ckpt *c, DataSpec *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->shape = c->input_shape, rec->classes = c->classes, rec->class_names = c->class_names;
    rec->dtype = c->dtype, rec->ntrain = rec->ntest = -1, rec->has_test = 1;
}

int ckpt_input_norm(const Ckpt *c, double **mean, double **std)
{
    int nch = c->has_data && c->nnorm > 1 ? c->nnorm : 1;
    /* A byte under normalize "none" enters as the byte itself, 255 times what the caller hands in. */
    double scale = (!c->has_data || c->dtype == DT_U8) && strcmp(c->normalize, "none") == 0 ? 255.0 : 1.0;
    *mean = malloc((size_t)nch * sizeof **mean), *std = malloc((size_t)nch * sizeof **std);
    if (!*mean || !*std) {
        free(*mean), free(*std);
        *mean = *std = NULL;
        return -1;
    }
    for (int k = 0; k < nch; k++) {
        double m = nch > 1 ? c->data_means[k] : c->data_mean, d = nch > 1 ? c->data_stds[k] : c->data_std;
        (*mean)[k] = m / scale, (*std)[k] = (d > 0 ? d : 1.0) / scale; /* (x*s - m) / d = (x - m/s) / (d/s) */
    }
    return nch;
}

int ckpt_layer_same(const CkptLayer *a, const CkptLayer *b)
{
    if (strcmp(a->name, b->name) != 0 || strcmp(a->type, b->type) != 0 || a->nargs != b->nargs)
        return 0;
    for (int k = 0; k < a->nargs; k++) {
        const CkptArg *x = &a->args[k], *y = &b->args[k];
        if (strcmp(x->key, y->key) != 0 || x->type != y->type || memcmp(&x->num, &y->num, sizeof x->num) != 0 ||
            strcmp(x->str, y->str) != 0)
            return 0;
    }
    return 1;
}

void ckpt_free(Ckpt *c)
{
    free(c->model_source), free(c->model_name), free(c->bnni_version), free(c->created), free(c->data_path);
    free(c->network);
    for (int k = 0; c->class_names && k < c->classes; k++)
        free(c->class_names[k]);
    free(c->class_names), free(c->data_means), free(c->data_stds);
    for (int i = 0; i < c->nlayers; i++)
        free(c->layers[i].name), free(c->layers[i].type);
    free(c->layers);
    for (int i = 0; i < c->ntensors; i++) {
        free(c->tensors[i].path);
        if (!c->borrowed)
            free(c->tensors[i].data);
    }
    free(c->tensors);
    if (!c->borrowed) {
        free(c->ts.order);
        metrics_free(&c->metrics);
        trace_log_free((TraceLog *)c->trace); /* read by ckpt_read: owned */
    }
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- building from a run */

static char *dupstr(const char *s)
{
    s = s ? s : "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int add_tensor(Ckpt *c, const Param *p, const char *fmt, const char *a, const char *b, const char *d)
{
    char path[3 * SPEC_NAME_MAX + 64];
    snprintf(path, sizeof path, fmt, a, b, d);
    CkptTensor *t = &c->tensors[c->ntensors];
    if (!(t->path = dupstr(path)))
        return -1;
    t->rank = p->rank;
    memcpy(t->dims, p->dims, sizeof t->dims);
    t->size = p->size;
    t->data = p->value;
    c->ntensors++;
    return 0;
}

static int build_layers(Ckpt *c, NetParam *ps, int np)
{
    for (int i = 0; i < np; i++) {
        const LayerSpec *s = ps[i].layer;
        if (i == 0 || ps[i - 1].layer != s) {
            CkptLayer *l = &c->layers[c->nlayers++];
            l->name = dupstr(s->name);
            l->type = dupstr(layer_ops[s->kind]->type);
            if (!l->name || !l->type)
                return -1;
            const LayerOps *ops = layer_ops[s->kind];
            for (int k = 0; k < ops->nargs; k++) {
                CkptArg *a = &l->args[l->nargs++];
                a->key = ops->args[k].key, a->type = ops->args[k].type, a->num = s->arg[k].num;
                memcpy(a->str, s->arg[k].str, sizeof a->str);
            }
        }
        if (add_tensor(c, &ps[i].p, "layers/%s/%s%s", s->name, ps[i].p.name, "") < 0)
            return -1;
    }
    return 0;
}

static int build_optimizer(Ckpt *c, const OptSpec *spec, Optim *opt, NetParam *ps, int np)
{
    c->has_optimizer = 1;
    c->opt = *spec;
    c->opt_steps = optim_step_count(opt);
    for (int i = 0; i < np; i++) {
        Param st[LAYER_MAX_PARAMS];
        int k = optim_state(opt, i, st);
        for (int j = 0; j < k; j++)
            if (add_tensor(c, &st[j], "optimizer/%s/%s/%s", ps[i].layer->name, ps[i].p.name, st[j].name) < 0)
                return -1;
    }
    return 0;
}

int ckpt_build(Ckpt *c, const ModelSpec *m, NetParam *params, int nparams, Optim *opt, const TrainState *ts,
               const CkptMetrics *metrics, double mean, double std, int epoch, char *err, size_t errlen)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    memset(c, 0, sizeof *c);
    c->borrowed = 1;
    c->format_version = CKPT_FORMAT_VERSION;
    c->model_source = dupstr(m->source), c->model_name = dupstr(m->name);
    c->bnni_version = dupstr(BNNI_VERSION), c->created = dupstr(when);
    const char *where = m->data.kind[0] ? data_where(&m->data) : "";
    char *abs = realpath(where[0] ? where : ".", NULL); /* so eval finds it from anywhere */
    c->data_path = dupstr(abs ? abs : where);
    free(abs);
    c->network = netdesc_json(m);
    c->epoch = epoch, c->seed = m->seed;
    snprintf(c->normalize, sizeof c->normalize, "%s",
             m->data.normalize == NORM_STANDARD ? "standard" : m->data.normalize == NORM_NONE ? "none" : "unit");
    c->data_mean = mean, c->data_std = std;
    c->layers = calloc((size_t)nparams + 1, sizeof *c->layers);
    c->tensors = calloc((size_t)nparams * (1 + LAYER_MAX_PARAMS) + 1, sizeof *c->tensors);
    if (!c->model_source || !c->model_name || !c->bnni_version || !c->created || !c->data_path || !c->network ||
        !c->layers || !c->tensors ||
        build_layers(c, params, nparams) < 0 || (opt && build_optimizer(c, &m->opt, opt, params, nparams) < 0)) {
        snprintf(err, errlen, "out of memory building the checkpoint");
        ckpt_free(c);
        return -1;
    }
    if (ts)
        c->has_train_state = 1, c->ts = *ts;
    if (metrics)
        c->metrics = *metrics;
    return 0;
}

int ckpt_add_data(Ckpt *c, const DataSpec *ds, long long limit, long long nval, int nnorm, const double *mean,
                  const double *std, char *err, size_t errlen)
{
    c->has_data = 1;
    snprintf(c->data_kind, sizeof c->data_kind, "%s", ds->kind);
    c->dtype = ds->dtype, c->input_shape = ds->shape, c->classes = ds->classes;
    c->data_limit = limit, c->validation = nval;
    c->nnorm = nnorm;
    c->data_mean = mean[0], c->data_std = std[0];
    int ok = 1;
    if (ds->class_names && (c->class_names = calloc((size_t)ds->classes, sizeof *c->class_names)))
        for (int k = 0; k < ds->classes; k++)
            ok &= (c->class_names[k] = dupstr(ds->class_names[k])) != NULL;
    else if (ds->class_names)
        ok = 0;
    if (nnorm > 1 && ok) {
        c->data_means = malloc((size_t)nnorm * sizeof *c->data_means);
        c->data_stds = malloc((size_t)nnorm * sizeof *c->data_stds);
        ok = c->data_means && c->data_stds;
        for (int k = 0; ok && k < nnorm; k++)
            c->data_means[k] = mean[k], c->data_stds[k] = std[k];
    }
    if (!ok)
        snprintf(err, errlen, "out of memory building the checkpoint");
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- writing HDF5 */

static int put_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

/* Fixed length: the text lives in the checksummed object header, not in the global heap, whose corruption
 * libhdf5 1.10 does not detect (issue #17). */
static int attr_str(hid_t loc, const char *name, const char *s)
{
    hid_t t = h5format_str_type(s);
    if (t < 0)
        return -1;
    int rc = put_attr(loc, name, t, t, s ? s : "");
    H5Tclose(t);
    return rc;
}

static int attr_i64(hid_t loc, const char *name, long long v)
{
    return put_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

static int attr_f64(hid_t loc, const char *name, double v)
{
    return put_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int put_data(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data)
{
    hsize_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= dims[i];
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = h5format_dcpl(rank, dims, H5Tget_size(ftype)); /* chunked, Fletcher32 checksum */
    hid_t d = sp < 0 || dcpl < 0 ? -1 : H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : n == 0 ? 0 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (d >= 0)
        H5Dclose(d);
    if (dcpl >= 0 && dcpl != H5P_DEFAULT)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

/* Groups keep their links in creation order, so /layers lists the network in order (h5py, h5ls, inspect). */
static hid_t open_group(hid_t loc, const char *name, hid_t gcpl)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0)
        return H5Gopen2(loc, name, H5P_DEFAULT);
    return H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
}

/* Creates the groups of path's directories and writes its last component as a float32 dataset. */
static int put_tensor(hid_t f, const CkptTensor *t, hid_t gcpl)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", t->path);
    hid_t g = H5Gopen2(f, "/", H5P_DEFAULT);
    char *name = buf, *slash;
    while (g >= 0 && (slash = strchr(name, '/'))) {
        *slash = '\0';
        hid_t next = open_group(g, name, gcpl);
        H5Gclose(g);
        g = next, name = slash + 1;
    }
    if (g < 0)
        return -1;
    hsize_t dims[CKPT_MAX_RANK];
    for (int i = 0; i < t->rank; i++)
        dims[i] = (hsize_t)t->dims[i];
    int rc = put_data(g, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->rank, dims, t->data);
    H5Gclose(g);
    return rc;
}

/* A 1-D attribute of n values. */
static int put_attr_vec(hid_t loc, const char *name, hid_t ftype, hid_t mtype, hsize_t n, const void *v)
{
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, v);
    if (a >= 0)
        H5Aclose(a);
    if (sp >= 0)
        H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

/* A 1-D attribute of n strings (variable-length UTF-8, as attr_str writes one). */
static int attr_str_vec(hid_t loc, const char *name, char *const *v, int n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = put_attr_vec(loc, name, t, t, (hsize_t)n, v);
    H5Tclose(t);
    return rc;
}

/* What the run trained on (Ckpt.has_data): the data kind, item shape, classes and names, dtype, limit and
 * validation; the normalisation statistics are written by write_root. */
static int write_data(hid_t f, const Ckpt *c)
{
    long long dims[3] = {c->input_shape.c, c->input_shape.h, c->input_shape.w};
    int rc = attr_str(f, "data_kind", c->data_kind);
    rc |= attr_str(f, "data_dtype", c->dtype == DT_U8 ? "uint8" : "float32");
    rc |= put_attr_vec(f, "input_shape", H5T_STD_I64LE, H5T_NATIVE_LLONG, c->input_shape.rank == 3 ? 3 : 1, dims);
    rc |= attr_i64(f, "classes", c->classes);
    if (c->class_names)
        rc |= attr_str_vec(f, "class_names", c->class_names, c->classes);
    rc |= attr_i64(f, "data_limit", c->data_limit);
    rc |= attr_i64(f, "validation", c->validation);
    return rc;
}

static int write_root(hid_t f, const Ckpt *c)
{
    int rc = attr_str(f, "format", CKPT_FORMAT);
    rc |= attr_i64(f, "format_version", c->format_version);
    rc |= attr_str(f, "model_source", c->model_source);
    rc |= attr_str(f, "model_name", c->model_name);
    rc |= attr_i64(f, "epoch", c->epoch);
    rc |= put_attr(f, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &c->seed);
    rc |= attr_str(f, "bnni_version", c->bnni_version);
    rc |= attr_str(f, "created", c->created);
    rc |= attr_str(f, "normalize", c->normalize);
    if (c->has_data && c->nnorm > 1) { /* one per channel or feature */
        rc |= put_attr_vec(f, "data_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (hsize_t)c->nnorm, c->data_means);
        rc |= put_attr_vec(f, "data_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, (hsize_t)c->nnorm, c->data_stds);
    } else {
        rc |= attr_f64(f, "data_mean", c->data_mean);
        rc |= attr_f64(f, "data_std", c->data_std);
    }
    if (c->data_path)
        rc |= attr_str(f, "data_path", c->data_path);
    if (c->has_data)
        rc |= write_data(f, c);
    return rc;
}

static int write_layers(hid_t f, const Ckpt *c, hid_t gcpl)
{
    hid_t top = open_group(f, "layers", gcpl);
    int rc = top < 0 ? -1 : 0;
    for (int i = 0; rc == 0 && i < c->nlayers; i++) {
        hid_t g = open_group(top, c->layers[i].name, gcpl);
        rc = g < 0 ? -1 : attr_str(g, "type", c->layers[i].type);
        for (int k = 0; rc == 0 && k < c->layers[i].nargs; k++) {
            const CkptArg *a = &c->layers[i].args[k];
            rc = a->type == AT_STR   ? attr_str(g, a->key, a->str)
                 : a->type == AT_NUM ? attr_f64(g, a->key, a->num)
                                     : attr_i64(g, a->key, (long long)a->num);
        }
        if (g >= 0)
            H5Gclose(g);
    }
    if (top >= 0)
        H5Gclose(top);
    return rc;
}

static int write_optimizer(hid_t f, const Ckpt *c, hid_t gcpl)
{
    hid_t g = open_group(f, "optimizer", gcpl);
    if (g < 0)
        return -1;
    const OptSpec *o = &c->opt;
    int rc = attr_str(g, "kind", o->kind == OPT_ADAM ? "adam" : "sgd");
    rc |= attr_f64(g, "lr", o->lr) | attr_f64(g, "weight_decay", o->weight_decay);
    if (o->kind == OPT_ADAM)
        rc |= attr_f64(g, "beta1", o->beta1) | attr_f64(g, "beta2", o->beta2) | attr_f64(g, "eps", o->eps);
    else
        rc |= attr_f64(g, "momentum", o->momentum) | attr_i64(g, "nesterov", o->nesterov);
    rc |= attr_i64(g, "step", c->opt_steps);
    H5Gclose(g);
    return rc;
}

static int write_train_state(hid_t f, const TrainState *ts, hid_t gcpl)
{
    hid_t g = open_group(f, "train_state", gcpl);
    if (g < 0)
        return -1;
    hsize_t n = (hsize_t)ts->norder, four = 4;
    int rc = attr_i64(g, "epoch", ts->epoch) | attr_i64(g, "position", ts->position);
    rc |= attr_i64(g, "images_per_epoch", ts->norder) | attr_i64(g, "batch", ts->batch);
    rc |= attr_f64(g, "loss_sum", ts->loss_sum) | attr_i64(g, "correct", ts->correct);
    rc |= attr_f64(g, "seconds", ts->seconds) | attr_f64(g, "lr", ts->lr);
    rc |= put_data(g, "order", H5T_STD_I32LE, H5T_NATIVE_INT, 1, &n, ts->order);
    rc |= put_data(g, "shuffle_rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &four, ts->shuffle_rng.s);
    rc |= put_data(g, "net_rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &four, ts->net_rng.s);
    H5Gclose(g);
    return rc;
}

static int write_metrics(hid_t f, const CkptMetrics *m, hid_t gcpl)
{
    hid_t g = open_group(f, "metrics", gcpl);
    if (g < 0)
        return -1;
    hsize_t n = (hsize_t)m->n;
    long long *ep = malloc(((size_t)m->n + 1) * sizeof *ep);
    int rc = ep ? 0 : -1;
    for (int i = 0; ep && i < m->n; i++)
        ep[i] = i + 1;
    const char *names[8] = {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_second",
                            "val_loss", "val_acc"};
    const double *cols[8] = {m->train_loss, m->train_acc, m->test_loss, m->test_acc, m->seconds,
                             m->images_per_second, m->val_loss, m->val_acc};
    if (ep)
        rc |= put_data(g, "epoch", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &n, ep);
    for (int k = 0; k < (m->has_val ? 8 : 6); k++)
        rc |= put_data(g, names[k], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &n, cols[k]);
    free(ep);
    H5Gclose(g);
    return rc;
}

/* The network description (netdesc.h), when the checkpoint was built from a run. */
static int write_network(hid_t f, const Ckpt *c)
{
    return c->network ? attr_str(f, "network", c->network) : 0;
}

static int write_all(hid_t f, const Ckpt *c, hid_t gcpl)
{
    int rc = write_root(f, c) | write_network(f, c) | write_layers(f, c, gcpl);
    if (rc == 0 && c->has_optimizer)
        rc = write_optimizer(f, c, gcpl);
    for (int i = 0; rc == 0 && i < c->ntensors; i++)
        rc = put_tensor(f, &c->tensors[i], gcpl);
    if (rc == 0 && c->has_train_state)
        rc = write_train_state(f, &c->ts, gcpl);
    if (rc == 0)
        rc = write_metrics(f, &c->metrics, gcpl);
    if (rc == 0 && c->trace)
        rc = trace_write_h5(f, c->trace, gcpl);
    return rc;
}

/* Composes the file in memory (core driver, no backing store); *img is malloc'ed, caller frees. */
static int build_image(const Ckpt *c, void **img, size_t *len)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), fcpl = H5Pcreate(H5P_FILE_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE);
    hid_t f = -1;
    int rc = -1;
    unsigned order = H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED;
    *img = NULL;
    if (fapl < 0 || fcpl < 0 || gcpl < 0 || H5Pset_fapl_core(fapl, 1 << 20, 0) < 0 || h5format_set_bounds(fapl) < 0 ||
        H5Pset_link_creation_order(fcpl, order) < 0 || H5Pset_link_creation_order(gcpl, order) < 0)
        goto done;
    f = H5Fcreate("bnni-checkpoint-image", H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0 || write_all(f, c, gcpl) < 0 || H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        goto done;
    ssize_t n = H5Fget_file_image(f, NULL, 0);
    if (n <= 0 || !(*img = malloc((size_t)n)) || H5Fget_file_image(f, *img, (size_t)n) != n ||
        h5format_seal_image(*img, (size_t)n) < 0)
        goto done;
    *len = (size_t)n;
    rc = 0;
done:
    if (rc < 0) {
        free(*img);
        *img = NULL;
    }
    if (f >= 0)
        H5Fclose(f);
    H5Pclose(fapl), H5Pclose(fcpl), H5Pclose(gcpl);
    return rc;
}

int ckpt_check_writable(const char *path, char *err, size_t errlen)
{
    char tmp[4096], dir[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "is a directory; the checkpoint path must name a file");
        return -1;
    }
    if (stat(path, &st) == 0) {
        Ckpt old;
        char why[512];
        if (ckpt_read(path, &old, why, sizeof why) < 0) {
            snprintf(err, errlen, "a file is there that is not a readable bnni checkpoint (%s); bnni replaces only "
                     "its own checkpoints: remove it or choose another path", why);
            return -1;
        }
        ckpt_free(&old);
    }
    int fd = atomic_open_temp(path, tmp, sizeof tmp, dir, sizeof dir, err, errlen);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(tmp);
    return 0;
}


int ckpt_write(const char *path, const Ckpt *c, char *err, size_t errlen)
{
    void *img;
    size_t len;
    quiet_hdf5();
    if (build_image(c, &img, &len) < 0) {
        snprintf(err, errlen, "cannot compose the checkpoint in memory (HDF5 error or out of memory)");
        return -1;
    }
    int rc = atomic_write(path, img, len, "save the checkpoint", "the previous file is unchanged", err, errlen);
    free(img);
    return rc;
}

/* ---------------------------------------------------------------- reading HDF5 */

/* Opens attribute `name` of loc, which must hold exactly one value of `cls`. Returns its id or -1 with err. */
static hid_t open_attr(hid_t loc, const char *where, const char *name, H5T_class_t cls, char *err, size_t errlen)
{
    htri_t exists = H5Aexists(loc, name);
    if (exists <= 0) {
        if (exists < 0) /* a header whose checksum fails, or one libhdf5 cannot parse */
            snprintf(err, errlen, "cannot read the attributes of %s (corrupt file?)", where);
        else
            snprintf(err, errlen, "%s has no attribute '%s'", where, name);
        return -1;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a), sp = a < 0 ? -1 : H5Aget_space(a);
    H5T_class_t got = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
             (got == cls || (cls == H5T_FLOAT && got == H5T_INTEGER));
    if (t >= 0)
        H5Tclose(t);
    if (sp >= 0)
        H5Sclose(sp);
    if (!ok) {
        snprintf(err, errlen, "attribute '%s' of %s is not a single %s", name, where,
                 cls == H5T_STRING ? "string" : "number");
        if (a >= 0)
            H5Aclose(a);
        return -1;
    }
    return a;
}

static int get_num(hid_t loc, const char *where, const char *name, hid_t mtype, void *v, char *err, size_t errlen)
{
    hid_t a = open_attr(loc, where, name, mtype == H5T_NATIVE_DOUBLE ? H5T_FLOAT : H5T_INTEGER, err, errlen);
    if (a < 0)
        return -1;
    herr_t rc = H5Aread(a, mtype, v);
    H5Aclose(a);
    if (rc < 0)
        snprintf(err, errlen, "cannot read attribute '%s' of %s", name, where);
    return rc < 0 ? -1 : 0;
}

static int get_i64(hid_t loc, const char *where, const char *name, long long *v, char *err, size_t errlen)
{
    return get_num(loc, where, name, H5T_NATIVE_LLONG, v, err, errlen);
}

static int get_f64(hid_t loc, const char *where, const char *name, double *v, char *err, size_t errlen)
{
    return get_num(loc, where, name, H5T_NATIVE_DOUBLE, v, err, errlen);
}

/* Reads a string attribute, variable-length or fixed (as h5py may write either). Caller frees *out. */
static int get_str(hid_t loc, const char *where, const char *name, char **out, char *err, size_t errlen)
{
    hid_t a = open_attr(loc, where, name, H5T_STRING, err, errlen);
    if (a < 0)
        return -1;
    hid_t ft = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    int rc = -1;
    if (ft >= 0 && mt >= 0)
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 converts no character sets: read UTF-8 as UTF-8 */
    if (ft >= 0 && mt >= 0 && H5Tis_variable_str(ft) > 0) {
        char *p = NULL;
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a, mt, &p) >= 0 && p) {
            *out = dupstr(p);
            rc = *out ? 0 : -1;
        }
        H5free_memory(p);
    } else if (ft >= 0 && mt >= 0) {
        size_t n = H5Tget_size(ft);
        *out = n < (64u << 20) ? calloc(n + 1, 1) : NULL;
        if (*out && H5Tset_size(mt, n) >= 0 && H5Aread(a, mt, *out) >= 0)
            rc = 0;
    }
    if (ft >= 0)
        H5Tclose(ft);
    if (mt >= 0)
        H5Tclose(mt);
    H5Aclose(a);
    if (rc < 0)
        snprintf(err, errlen, "cannot read attribute '%s' of %s", name, where);
    return rc;
}

/* The number of values attribute `name` of loc holds (1 for a scalar), or -1 when it is missing or unreadable. */
static long long attr_points(hid_t loc, const char *name)
{
    hid_t a = H5Aexists(loc, name) > 0 ? H5Aopen(loc, name, H5P_DEFAULT) : -1;
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    long long n = sp < 0 || H5Sget_simple_extent_ndims(sp) > 1 ? -1 : (long long)H5Sget_simple_extent_npoints(sp);
    if (sp >= 0)
        H5Sclose(sp);
    if (a >= 0)
        H5Aclose(a);
    return n;
}

/* Reads an attribute of 1 to max numbers (a scalar or a 1-D array) into a new array (caller frees). */
static int get_vec(hid_t loc, const char *name, hid_t mtype, long long max, long long *n, void **v, char *err,
                   size_t errlen)
{
    hid_t a = -1, t = -1;
    *v = NULL;
    *n = attr_points(loc, name);
    if (*n >= 1 && *n <= max) {
        a = H5Aopen(loc, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
        H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
        if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && (*v = malloc((size_t)*n * H5Tget_size(mtype))) &&
            H5Aread(a, mtype, *v) < 0)
            free(*v), *v = NULL;
    }
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    if (!*v)
        snprintf(err, errlen, "attribute '%s' of the file is missing, not numbers, or not 1 to %lld values", name,
                 max);
    return *v ? 0 : -1;
}

#define CKPT_MAX_CLASSES (1 << 20)
#define CKPT_MAX_NORM (1 << 24)

/* data_mean and data_std: one pair, or one per channel or feature (nnorm > 1). */
static int read_norm(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    long long n1, n2;
    double *m = NULL, *sd = NULL;
    if (get_vec(f, "data_mean", H5T_NATIVE_DOUBLE, CKPT_MAX_NORM, &n1, (void **)&m, err, errlen) < 0 ||
        get_vec(f, "data_std", H5T_NATIVE_DOUBLE, CKPT_MAX_NORM, &n2, (void **)&sd, err, errlen) < 0 || n1 != n2) {
        if (m && sd)
            snprintf(err, errlen, "data_mean holds %lld values, data_std %lld", n1, n2);
        free(m), free(sd);
        return -1;
    }
    c->nnorm = (int)n1, c->data_mean = m[0], c->data_std = sd[0];
    for (long long k = 0; k < n1; k++)
        if (!(sd[k] > 0.0) || !isfinite(m[k]) || !isfinite(sd[k])) {
            snprintf(err, errlen, "implausible normalisation statistics (data_mean %g, data_std %g)", m[k], sd[k]);
            free(m), free(sd);
            return -1;
        }
    if (n1 > 1)
        c->data_means = m, c->data_stds = sd;
    else
        free(m), free(sd);
    return 0;
}

/* class_names: exactly `classes` strings. */
static int read_names(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    hid_t a = H5Aopen(f, "class_names", H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a);
    hid_t mt = H5Tcopy(H5T_C_S1);
    int ok = t >= 0 && mt >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0 &&
             attr_points(f, "class_names") == c->classes;
    char **v = ok ? calloc((size_t)c->classes, sizeof *v) : NULL;
    if (ok && v) {
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        ok = H5Aread(a, mt, v) >= 0;
        if (ok && (c->class_names = calloc((size_t)c->classes, sizeof *c->class_names)))
            for (int k = 0; k < c->classes; k++)
                ok &= (c->class_names[k] = dupstr(v[k] ? v[k] : "")) != NULL;
        for (int k = 0; v && k < c->classes; k++)
            H5free_memory(v[k]);
    }
    free(v);
    if (mt >= 0)
        H5Tclose(mt);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    if (!ok || !c->class_names)
        snprintf(err, errlen, "attribute 'class_names' of the file is not %d variable-length strings", c->classes);
    return ok && c->class_names ? 0 : -1;
}

/* What the run trained on (write_data). */
static int read_data(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    char *kind = NULL, *dtype = NULL;
    long long classes, n, *dims = NULL;
    int rc = get_str(f, "the file", "data_kind", &kind, err, errlen) |
             get_str(f, "the file", "data_dtype", &dtype, err, errlen) |
             get_i64(f, "the file", "classes", &classes, err, errlen) |
             get_i64(f, "the file", "data_limit", &c->data_limit, err, errlen) |
             get_i64(f, "the file", "validation", &c->validation, err, errlen);
    if (rc == 0)
        rc = get_vec(f, "input_shape", H5T_NATIVE_LLONG, 3, &n, (void **)&dims, err, errlen);
    if (rc == 0 && (classes < 1 || classes > CKPT_MAX_CLASSES || (n != 1 && n != 3) || c->data_limit < 0 ||
                    c->validation < 0 || (strcmp(dtype, "uint8") != 0 && strcmp(dtype, "float32") != 0))) {
        snprintf(err, errlen, "implausible data attributes (classes %lld, %lld input dimensions, data_dtype '%.20s')",
                 classes, n, dtype);
        rc = -1;
    }
    for (long long k = 0; rc == 0 && k < n; k++)
        if (dims[k] < 1 || dims[k] > 65536)
            rc = -1, snprintf(err, errlen, "implausible input_shape dimension %lld", dims[k]);
    if (rc == 0) {
        c->has_data = 1;
        snprintf(c->data_kind, sizeof c->data_kind, "%s", kind);
        c->dtype = strcmp(dtype, "uint8") == 0 ? DT_U8 : DT_F32;
        c->classes = (int)classes;
        c->input_shape = n == 3 ? (Shape){3, (int)dims[0], (int)dims[1], (int)dims[2]} : (Shape){1, (int)dims[0], 1, 1};
        if (H5Aexists(f, "class_names") > 0)
            rc = read_names(f, c, err, errlen);
    }
    free(kind), free(dtype), free(dims);
    return rc;
}

static int read_root(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    char *format = NULL;
    long long v, epoch;
    if (get_str(f, "the file", "format", &format, err, errlen) < 0) {
        snprintf(err, errlen, "not a bnni checkpoint (no 'format' attribute)");
        return -1;
    }
    int bad = strcmp(format, CKPT_FORMAT) != 0;
    if (bad)
        snprintf(err, errlen, "not a bnni checkpoint (its format attribute is '%.100s')", format);
    free(format);
    if (bad || get_i64(f, "the file", "format_version", &v, err, errlen) < 0)
        return -1;
    if (v != CKPT_FORMAT_VERSION) {
        snprintf(err, errlen, "checkpoint format_version %lld is not supported (bnni %s reads format_version %d)", v,
                 BNNI_VERSION, CKPT_FORMAT_VERSION);
        return -1;
    }
    c->format_version = (int)v;
    char *norm = NULL;
    if (get_str(f, "the file", "model_source", &c->model_source, err, errlen) < 0 ||
        get_str(f, "the file", "model_name", &c->model_name, err, errlen) < 0 ||
        get_str(f, "the file", "bnni_version", &c->bnni_version, err, errlen) < 0 ||
        get_str(f, "the file", "created", &c->created, err, errlen) < 0 ||
        get_i64(f, "the file", "epoch", &epoch, err, errlen) < 0 ||
        get_num(f, "the file", "seed", H5T_NATIVE_UINT64, &c->seed, err, errlen) < 0 ||
        get_str(f, "the file", "normalize", &norm, err, errlen) < 0 || read_norm(f, c, err, errlen) < 0) {
        free(norm);
        return -1;
    }
    snprintf(c->normalize, sizeof c->normalize, "%s", norm);
    free(norm);
    if (H5Aexists(f, "data_path") > 0 && get_str(f, "the file", "data_path", &c->data_path, err, errlen) < 0)
        return -1;
    c->epoch = (int)epoch;
    if (epoch < 0 || epoch > 1000000000 || !(c->data_std > 0.0)) {
        snprintf(err, errlen, "implausible root attributes (epoch %lld, data_std %g)", epoch, c->data_std);
        return -1;
    }
    return H5Aexists(f, "classes") > 0 ? read_data(f, c, err, errlen) : 0;
}

typedef struct Walk {
    Ckpt *c;
    char prefix[1024];
    int depth; /* 0: children of /layers or /optimizer */
    int cap, lcap;
    char *err;
    size_t errlen;
} Walk;

/* Whether dataset d stores at least `bytes` (unfiltered) or anything at all (filtered): a declared
 * shape alone would make HDF5 fill gigabytes with fill values from a file of a few KB. */
static int holds_data(hid_t d, unsigned long long bytes)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int nfilters = dcpl < 0 ? 0 : H5Pget_nfilters(dcpl);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    hsize_t stored = H5Dget_storage_size(d);
    return bytes == 0 || (nfilters > 0 ? stored > 0 : stored >= bytes);
}

static int read_tensor(hid_t d, const char *path, CkptTensor *t, char *err, size_t errlen)
{
    hid_t ty = H5Dget_type(d), sp = H5Dget_space(d);
    int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp), rc = -1;
    hsize_t dims[CKPT_MAX_RANK];
    memset(t, 0, sizeof *t);
    if (ty < 0 || H5Tget_class(ty) != H5T_FLOAT || rank < 1 || rank > CKPT_MAX_RANK) {
        snprintf(err, errlen, "tensor %s is not a float array of rank 1 to %d", path, CKPT_MAX_RANK);
        goto done;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    unsigned long long n = 1;
    for (int i = 0; i < rank; i++) {
        n *= dims[i];
        if (dims[i] > MAX_TENSOR_VALUES || n > MAX_TENSOR_VALUES) {
            snprintf(err, errlen, "tensor %s has an implausible shape", path);
            goto done;
        }
        t->dims[i] = (int)dims[i];
    }
    t->rank = rank, t->size = (size_t)n;
    if (!holds_data(d, n * sizeof(float))) {
        snprintf(err, errlen, "tensor %s declares %llu values but its file holds no data for them", path, n);
        goto done;
    }
    t->path = dupstr(path);
    t->data = malloc(n ? n * sizeof(float) : 1);
    if (!t->path || !t->data) {
        snprintf(err, errlen, "out of memory reading tensor %s", path);
        goto done;
    }
    if (n && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
        snprintf(err, errlen, "cannot read tensor %s (corrupt file?)", path);
        goto done;
    }
    rc = 0;
done:
    if (ty >= 0)
        H5Tclose(ty);
    if (sp >= 0)
        H5Sclose(sp);
    if (rc < 0)
        free(t->path), free(t->data), memset(t, 0, sizeof *t);
    return rc;
}

static int add_layer(Walk *w, hid_t g, const char *name, const char *path)
{
    Ckpt *c = w->c;
    if (c->nlayers == w->lcap) {
        int cap = w->lcap ? w->lcap * 2 : 16;
        CkptLayer *p = realloc(c->layers, (size_t)cap * sizeof *p);
        if (!p)
            return snprintf(w->err, w->errlen, "out of memory"), -1;
        c->layers = p, w->lcap = cap;
    }
    CkptLayer *l = &c->layers[c->nlayers];
    memset(l, 0, sizeof *l);
    if (!(l->name = dupstr(name)) || get_str(g, path, "type", &l->type, w->err, w->errlen) < 0) {
        free(l->name);
        return -1;
    }
    c->nlayers++;
    int kind = layer_kind(l->type);
    const LayerOps *ops = kind < 0 ? NULL : layer_ops[kind];
    for (int k = 0; ops && k < ops->nargs; k++) {
        const ArgSpec *s = &ops->args[k];
        CkptArg *a = &l->args[l->nargs];
        char *str = NULL;
        if (H5Aexists(g, s->key) <= 0)
            continue;
        a->key = s->key, a->type = s->type;
        if (s->type == AT_STR ? get_str(g, path, s->key, &str, w->err, w->errlen)
                              : get_f64(g, path, s->key, &a->num, w->err, w->errlen))
            return -1;
        if (str)
            snprintf(a->str, sizeof a->str, "%s", str);
        free(str);
        l->nargs++;
    }
    return 0;
}

static int walk_group(hid_t g, Walk *w);

static int visit_dataset(hid_t o, Walk *w, const char *path)
{
    Ckpt *c = w->c;
    if (c->ntensors == w->cap) {
        int cap = w->cap ? w->cap * 2 : 64;
        CkptTensor *p = realloc(c->tensors, (size_t)cap * sizeof *p);
        if (!p)
            return snprintf(w->err, w->errlen, "out of memory"), -1;
        c->tensors = p, w->cap = cap;
    }
    if (read_tensor(o, path, &c->tensors[c->ntensors], w->err, w->errlen) < 0)
        return -1;
    c->ntensors++;
    return 0;
}

/* Whether s holds a control character (a newline...): never in a name bnni writes, and one would break a message
 * naming the object into several lines. */
static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static herr_t walk_cb(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)info;
    Walk *w = op;
    char path[1024], saved[1024];
    if (has_control(name)) {
        snprintf(w->err, w->errlen, "an object name in /%.200s holds control characters (corrupt file?)", w->prefix);
        return -1;
    }
    if (snprintf(path, sizeof path, "%s/%s", w->prefix, name) >= (int)sizeof path) {
        snprintf(w->err, w->errlen, "object name too long in %.200s", w->prefix);
        return -1;
    }
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        snprintf(w->err, w->errlen, "cannot open %s (corrupt file?)", path);
        return -1;
    }
    int rc = 0;
    H5I_type_t type = H5Iget_type(o);
    if (type == H5I_GROUP) {
        if (w->depth == 0 && strcmp(w->prefix, "layers") == 0)
            rc = add_layer(w, o, name, path);
        memcpy(saved, w->prefix, sizeof saved);
        snprintf(w->prefix, sizeof w->prefix, "%s", path);
        w->depth++;
        if (rc == 0)
            rc = walk_group(o, w);
        w->depth--;
        memcpy(w->prefix, saved, sizeof saved);
    } else if (type == H5I_DATASET) {
        rc = visit_dataset(o, w, path);
    }
    H5Oclose(o);
    return rc < 0 ? -1 : 0;
}

/* Visits the children of g in creation order when the file tracks it (bnni's do), else by name. */
static int walk_group(hid_t g, Walk *w)
{
    unsigned flags = 0;
    hid_t gcpl = H5Gget_create_plist(g);
    if (gcpl >= 0) {
        H5Pget_link_creation_order(gcpl, &flags);
        H5Pclose(gcpl);
    }
    H5_index_t idx = (flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
    hsize_t at = 0;
    w->err[0] = '\0';
    if (H5Literate(g, idx, H5_ITER_INC, &at, walk_cb, w) < 0) {
        if (!w->err[0])
            snprintf(w->err, w->errlen, "cannot list group %s (corrupt file?)", w->prefix);
        return -1;
    }
    return 0;
}

static int read_tensors(hid_t f, Ckpt *c, const char *top, int required, Walk *w)
{
    if (H5Lexists(f, top, H5P_DEFAULT) <= 0) {
        if (required)
            snprintf(w->err, w->errlen, "no /%s group", top);
        return required ? -1 : 0;
    }
    hid_t g = H5Gopen2(f, top, H5P_DEFAULT);
    if (g < 0) {
        snprintf(w->err, w->errlen, "cannot open /%s", top);
        return -1;
    }
    snprintf(w->prefix, sizeof w->prefix, "%s", top);
    w->depth = 0;
    w->c = c;
    int rc = walk_group(g, w);
    H5Gclose(g);
    return rc;
}

static int read_optimizer(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    if (H5Lexists(f, "optimizer", H5P_DEFAULT) <= 0)
        return 0;
    hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    char *kind = NULL;
    long long steps = 0, nesterov = 0;
    OptSpec *o = &c->opt;
    if (g < 0)
        snprintf(err, errlen, "/optimizer is not a group");
    int rc = g < 0 || get_str(g, "/optimizer", "kind", &kind, err, errlen) < 0 ? -1 : 0;
    if (rc == 0 && strcmp(kind, "sgd") != 0 && strcmp(kind, "adam") != 0)
        rc = -1, snprintf(err, errlen, "unknown optimizer kind '%.40s' in /optimizer", kind);
    if (rc == 0) {
        o->kind = strcmp(kind, "adam") == 0 ? OPT_ADAM : OPT_SGD;
        rc = get_f64(g, "/optimizer", "lr", &o->lr, err, errlen) |
             get_f64(g, "/optimizer", "weight_decay", &o->weight_decay, err, errlen) |
             get_i64(g, "/optimizer", "step", &steps, err, errlen);
    }
    if (rc == 0 && o->kind == OPT_ADAM)
        rc = get_f64(g, "/optimizer", "beta1", &o->beta1, err, errlen) |
             get_f64(g, "/optimizer", "beta2", &o->beta2, err, errlen) |
             get_f64(g, "/optimizer", "eps", &o->eps, err, errlen);
    else if (rc == 0)
        rc = get_f64(g, "/optimizer", "momentum", &o->momentum, err, errlen) |
             get_i64(g, "/optimizer", "nesterov", &nesterov, err, errlen);
    o->nesterov = (int)nesterov;
    c->opt_steps = steps;
    c->has_optimizer = rc == 0;
    free(kind);
    if (g >= 0)
        H5Gclose(g);
    return rc ? -1 : 0;
}

/* Reads a 1-D dataset of exactly n values of mtype into buf. */
/* The length of 1-D dataset `name` in g, or -1 when it is missing or not 1-D. */
static long long vec_len(hid_t g, const char *name)
{
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[1] = {0};
    long long n = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1
                      ? (long long)dims[0]
                      : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    return n;
}

static int read_vec(hid_t g, const char *name, hid_t mtype, hsize_t n, void *buf, char *err, size_t errlen)
{
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[1] = {0};
    int ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_dims(sp, dims, NULL) == 1 &&
             dims[0] == n && (n == 0 || H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (!ok)
        snprintf(err, errlen, "dataset %s is missing, unreadable or not %llu values long", name,
                 (unsigned long long)n);
    return ok ? 0 : -1;
}

static int read_train_state(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    if (H5Lexists(f, "train_state", H5P_DEFAULT) <= 0)
        return 0;
    hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    TrainState *ts = &c->ts;
    long long v[5];
    const char *w = "/train_state";
    int rc = g < 0 ? -1 : 0;
    if (g < 0)
        snprintf(err, errlen, "/train_state is not a group");
    if (rc == 0)
        rc = get_i64(g, w, "epoch", &v[0], err, errlen) | get_i64(g, w, "position", &v[1], err, errlen) |
             get_i64(g, w, "images_per_epoch", &v[2], err, errlen) | get_i64(g, w, "batch", &v[3], err, errlen) |
             get_i64(g, w, "correct", &v[4], err, errlen) | get_f64(g, w, "loss_sum", &ts->loss_sum, err, errlen) |
             get_f64(g, w, "seconds", &ts->seconds, err, errlen) | get_f64(g, w, "lr", &ts->lr, err, errlen);
    if (rc == 0 && (v[0] < 0 || v[2] < 1 || v[2] > (1 << 30) || v[1] < 0 || v[1] > v[2] || v[3] < 1)) {
        snprintf(err, errlen, "/train_state holds implausible values");
        rc = -1;
    }
    if (rc == 0) {
        ts->epoch = (int)v[0], ts->position = (int)v[1], ts->norder = (int)v[2], ts->batch = (int)v[3];
        ts->correct = v[4];
        /* The header's count is only a claim: check the dataset really holds it before allocating. */
        if (vec_len(g, "order") != ts->norder)
            rc = -1, snprintf(err, errlen, "dataset /train_state/order is missing or not %d values long", ts->norder);
        else if (!(ts->order = malloc((size_t)ts->norder * sizeof *ts->order)))
            rc = -1, snprintf(err, errlen, "out of memory reading /train_state/order");
        rc = rc ? -1
                        : read_vec(g, "order", H5T_NATIVE_INT, (hsize_t)ts->norder, ts->order, err, errlen) |
                              read_vec(g, "shuffle_rng", H5T_NATIVE_UINT64, 4, ts->shuffle_rng.s, err, errlen) |
                              read_vec(g, "net_rng", H5T_NATIVE_UINT64, 4, ts->net_rng.s, err, errlen);
    }
    for (int i = 0; rc == 0 && i < ts->norder; i++)
        if (ts->order[i] < 0 || ts->order[i] >= ts->norder)
            rc = -1, snprintf(err, errlen, "/train_state/order holds an index out of range");
    c->has_train_state = rc == 0;
    if (g >= 0)
        H5Gclose(g);
    return rc ? -1 : 0;
}

static int read_metrics(hid_t f, Ckpt *c, char *err, size_t errlen)
{
    if (H5Lexists(f, "metrics", H5P_DEFAULT) <= 0)
        return 0;
    hid_t g = H5Gopen2(f, "metrics", H5P_DEFAULT);
    hid_t d = g < 0 ? -1 : H5Dopen2(g, "train_loss", H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int rc = n < 0 || n > 1000000 ? -1 : 0;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    if (rc < 0)
        snprintf(err, errlen, "/metrics/train_loss is missing or unreadable");
    CkptMetrics *m = &c->metrics;
    double **cols[8] = {&m->train_loss, &m->train_acc, &m->test_loss,        &m->test_acc,
                        &m->seconds,    &m->images_per_second, &m->val_loss, &m->val_acc};
    const char *names[8] = {"train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_second",
                            "val_loss", "val_acc"};
    m->has_val = g >= 0 && H5Lexists(g, "val_acc", H5P_DEFAULT) > 0;
    for (int k = 0; rc == 0 && k < 8; k++) {
        *cols[k] = malloc(((size_t)n + 1) * sizeof(double));
        for (long long i = 0; *cols[k] && i < n; i++)
            (*cols[k])[i] = NAN;
        rc = !*cols[k] ? -1
             : k < 6 || m->has_val ? read_vec(g, names[k], H5T_NATIVE_DOUBLE, (hsize_t)n, *cols[k], err, errlen)
                                   : 0;
    }
    if (rc == 0)
        m->n = m->cap = (int)n;
    if (g >= 0)
        H5Gclose(g);
    return rc;
}

static herr_t attr_seen(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)loc, (void)name, (void)info, (void)op;
    return 0;
}

/* The file ckpt_read reads twice: first in h5guard's child, then in this process. */
typedef struct Source {
    const char *path;
    int has_sig; /* starts with HDF5's signature */
    H5GuardFile id;
} Source;

/* Opens src read-only. Returns the file, or -1 with err. */
static hid_t open_source(const Source *src, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG); /* closes whatever an error path left open */
#if H5_VERSION_GE(1, 10, 7)
    /* Files are only ever replaced whole (rename), so HDF5's flock is not needed, and it fails on some NFS mounts. */
    H5Pset_file_locking(fapl, 0, 1);
#endif
    hid_t f = H5Fopen(src->path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f >= 0 && !h5guard_same_file(f, &src->id)) {
        H5Fclose(f);
        snprintf(err, errlen, "the file changed while it was being read; try again");
        return -1;
    }
    /* Decodes every root attribute (through its checksums, in a file bnni wrote): a file whose root attributes
     * are damaged is corrupt, not "not a bnni checkpoint". */
    if (f >= 0 && H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_NATIVE, NULL, attr_seen, NULL) < 0) {
        H5Fclose(f);
        f = -1;
    }
    if (f < 0)
        snprintf(err, errlen, "%s",
                 src->has_sig ? "not a readable HDF5 file (truncated or corrupt)" : "not an HDF5 file");
    return f;
}

static int read_source(const Source *src, Ckpt *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    hid_t f = open_source(src, err, errlen);
    if (f < 0)
        return -1;
    Walk w = {.err = err, .errlen = errlen};
    int rc = read_root(f, c, err, errlen);
    if (rc == 0)
        rc = read_tensors(f, c, "layers", 1, &w);
    if (rc == 0)
        rc = read_tensors(f, c, "optimizer", 0, &w);
    if (rc == 0)
        rc = read_optimizer(f, c, err, errlen);
    if (rc == 0)
        rc = read_train_state(f, c, err, errlen);
    if (rc == 0)
        rc = read_metrics(f, c, err, errlen);
    TraceLog *trace = NULL;
    if (rc == 0)
        rc = trace_read_h5(f, &trace, err, errlen);
    c->trace = trace;
    H5Fclose(f);
    if (rc < 0) {
        ckpt_free(c);
        return -1;
    }
    return 0;
}

/* h5guard's trial: the whole read, thrown away. */
static int trial_read(void *src, char *err, size_t errlen)
{
    Ckpt c;
    int rc = read_source(src, &c, err, errlen);
    if (rc == 0)
        ckpt_free(&c);
    return rc;
}

int ckpt_read(const char *path, Ckpt *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    quiet_hdf5();
    Source src = {.path = path};
    FILE *fp = fopen(path, "rb");
    if (!fp || h5guard_identify(fileno(fp), &src.id) < 0) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        if (fp)
            fclose(fp);
        return -1;
    }
    char sig[8] = {0};
    src.has_sig = fread(sig, 1, 8, fp) == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
    fclose(fp);
    /* libhdf5 1.10 crashes or loops on some damaged files, and files from elsewhere carry no checksums: the first
     * read is a trial in a child process; only one that finished there is repeated here (issue #17). */
    char why[H5GUARD_MSG_MAX];
    H5GuardLimits lim = h5guard_limits((long long)src.id.size);
    int rc = h5guard_run(trial_read, &src, &lim, why, sizeof why);
    if (rc == H5GUARD_CRASHED)
        snprintf(err, errlen, "corrupt checkpoint (the HDF5 library could not read it)");
    else if (rc == H5GUARD_NOT_RUN)
        snprintf(err, errlen, "cannot read it safely: %s", why);
    else if (rc == H5GUARD_FAILED)
        snprintf(err, errlen, "%s", why);
    if (rc == H5GUARD_OK)
        rc = read_source(&src, c, err, errlen);
    for (char *p = err; rc != 0 && *p; p++) /* text quoted from a damaged file stays on the message's one line */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- fitting a checkpoint to a model */

typedef struct Want {
    char path[3 * SPEC_NAME_MAX + 64];
    int rank;
    int dims[CKPT_MAX_RANK];
    float *dst;
    size_t size;
} Want;

static int same_shape(const CkptTensor *t, const Want *w)
{
    if (t->rank != w->rank)
        return 0;
    for (int i = 0; i < t->rank; i++)
        if (t->dims[i] != w->dims[i])
            return 0;
    return 1;
}

/* Appends "; "-separated text to list (len bytes), marking a truncation with "...". */
static void list_add(char *list, size_t len, const char *text)
{
    size_t o = strlen(list);
    if (o + 8 >= len)
        return;
    int n = snprintf(list + o, len - o, "%s%s", o ? "; " : "", text);
    if (n < 0 || (size_t)n >= len - o)
        snprintf(list + (len > 5 ? len - 5 : 0), len > 5 ? 5 : len, "...");
}

/* Checks every wanted tensor and every checkpoint tensor under `prefix`; copies only when all fit. */
static int fit(const Ckpt *c, const char *prefix, const Want *w, int nw, char *err, size_t errlen)
{
    char *list = calloc(errlen + 1, 1), a[96], b[96], line[1024];
    int bad = 0;
    size_t plen = strlen(prefix);
    if (!list)
        return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < nw; i++) {
        const CkptTensor *t = ckpt_find(c, w[i].path);
        if (!t)
            snprintf(line, sizeof line, "missing %s %s", w[i].path, ckpt_dims_str(w[i].rank, w[i].dims, a, sizeof a));
        else if (!same_shape(t, &w[i]))
            snprintf(line, sizeof line, "%s is %s in the checkpoint, %s in the model", w[i].path,
                     ckpt_dims_str(t->rank, t->dims, a, sizeof a), ckpt_dims_str(w[i].rank, w[i].dims, b, sizeof b));
        else
            continue;
        bad++;
        list_add(list, errlen, line);
    }
    for (int i = 0; i < c->ntensors; i++) {
        const CkptTensor *t = &c->tensors[i];
        int found = 0;
        for (int j = 0; j < nw && !found; j++)
            found = strcmp(t->path, w[j].path) == 0;
        if (found || strncmp(t->path, prefix, plen) != 0)
            continue;
        snprintf(line, sizeof line, "extra %s %s", t->path, ckpt_dims_str(t->rank, t->dims, a, sizeof a));
        bad++;
        list_add(list, errlen, line);
    }
    if (bad)
        snprintf(err, errlen, "%d tensor%s do%s not fit the model: %s", bad, bad == 1 ? "" : "s", bad == 1 ? "es" : "",
                 list);
    else
        for (int i = 0; i < nw; i++)
            memcpy(w[i].dst, ckpt_find(c, w[i].path)->data, w[i].size * sizeof(float));
    free(list);
    return bad ? -1 : 0;
}

static void want_from(Want *w, const Param *p, const char *fmt, const char *a, const char *b, const char *d)
{
    snprintf(w->path, sizeof w->path, fmt, a, b, d);
    w->rank = p->rank;
    memcpy(w->dims, p->dims, sizeof w->dims);
    w->dst = p->value;
    w->size = p->size;
}

int ckpt_apply_params(const Ckpt *c, NetParam *ps, int np, char *err, size_t errlen)
{
    Want *w = calloc((size_t)np + 1, sizeof *w);
    if (!w)
        return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < np; i++)
        want_from(&w[i], &ps[i].p, "layers/%s/%s%s", ps[i].layer->name, ps[i].p.name, "");
    int rc = fit(c, "layers/", w, np, err, errlen);
    free(w);
    return rc;
}

int ckpt_apply_optim(const Ckpt *c, const OptSpec *spec, Optim *opt, NetParam *ps, int np, char *err,
                     size_t errlen)
{
    static const char *const kinds[] = {"sgd", "adam"};
    if (!c->has_optimizer) {
        snprintf(err, errlen, "the checkpoint holds no optimizer state to resume from");
        return -1;
    }
    if (c->opt.kind != spec->kind) {
        snprintf(err, errlen, "the checkpoint's optimizer is %s, the model's is %s", kinds[c->opt.kind],
                 kinds[spec->kind]);
        return -1;
    }
    Want *w = calloc((size_t)np * LAYER_MAX_PARAMS + 1, sizeof *w);
    int nw = 0;
    if (!w)
        return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < np; i++) {
        Param st[LAYER_MAX_PARAMS];
        int k = optim_state(opt, i, st);
        for (int j = 0; j < k; j++)
            want_from(&w[nw++], &st[j], "optimizer/%s/%s/%s", ps[i].layer->name, ps[i].p.name, st[j].name);
    }
    int rc = fit(c, "optimizer/", w, nw, err, errlen);
    free(w);
    if (rc == 0)
        optim_set_step_count(opt, c->opt_steps);
    return rc;
}

int ckpt_check_finite(const Ckpt *c, const char *prefix, char *err, size_t errlen)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < c->ntensors; i++) {
        const CkptTensor *t = &c->tensors[i];
        size_t bad = 0, first = 0;
        if (prefix && strncmp(t->path, prefix, plen) != 0)
            continue;
        for (size_t j = t->size; j-- > 0;)
            if (!isfinite(t->data[j]))
                bad++, first = j;
        if (bad) {
            snprintf(err, errlen, "tensor %s holds %zu non-finite value%s (NaN or Inf), the first at index %zu",
                     t->path, bad, bad == 1 ? "" : "s", first);
            return -1;
        }
    }
    return 0;
}

int ckpt_to_net(const Ckpt *c, const ModelSpec *m, Net **net, char *err, size_t errlen)
{
    NetParam *ps = NULL;
    int np = 0;
    if (net_create(m->layers, m->nlayers, m->input, m->seed, net, err, errlen) < 0)
        return -1;
    if ((np = net_params(*net, &ps)) < 0)
        snprintf(err, errlen, "out of memory listing the parameters");
    int rc = np < 0 ? -1 : ckpt_apply_params(c, ps, np, err, errlen);
    free(ps);
    if (rc < 0) {
        net_free(*net);
        *net = NULL;
    }
    return rc;
}
