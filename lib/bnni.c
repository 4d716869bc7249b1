/* libbnni's public API (bnni.h): a checkpoint loaded through the same code as `bnni eval` (its embedded model
 * through the front end, its tensors into a network) and predictions through net_infer, the path `bnni eval`
 * and `predict` take, so the library's logits are theirs. Only the bnni_* functions are exported (bnni.map). */
#include "bnni.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../interp/frontend.h"
#include "../runtime/ckpt.h"
#include "../runtime/data/classes.h"
#include "../runtime/threads.h"
#include "../runtime/version.h"

static size_t shape_size(Shape s) { return (size_t)s.c * s.h * s.w; }

#define BNNI_API __attribute__((visibility("default")))
#define CHUNK 32 /* images per net_infer, as in an evaluation (EVAL_CHUNK) */

struct BnniModel {
    pthread_mutex_t lock; /* one prediction at a time: the network's buffers are the handle's */
    ModelSpec *spec;
    Net *net;
    int nch;              /* input = (x - mean[c]) / std[c] (ckpt_input_norm), c the channel or feature: */
    size_t plane;         /* consecutive values of an image that share c */
    double *mean, *std;   /* [nch], owned */
    char **class_names;   /* spec->data.classes, owned */
    Tensor x;             /* CHUNK images */
};

/* HDF5 (Debian's build is not thread-safe) and the first setting of the thread count. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int threads_set;

static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

/* The checkpoint's model through the front end, its diagnostics kept from stderr: the first one goes to err. */
static int load_spec(const char *path, const Ckpt *c, ModelSpec **out, char *err, size_t errlen)
{
    char *diag = NULL, name[4200];
    size_t len = 0;
    FILE *f = open_memstream(&diag, &len);
    if (!f)
        return BNNI_ENOMEM;
    snprintf(name, sizeof name, "%s:model_source", path);
    DataSpec rec; /* what the data is, from the checkpoint: the library never opens data files */
    ckpt_data_record(c, &rec);
    CheckOptions co = {.diag = f, .inference = 1, .data_record = c->has_data ? &rec : NULL};
    int rc = bnn_load_source(name, c->model_source, strlen(c->model_source), &co, out);
    fclose(f);
    if (rc != 0) {
        char *nl = diag ? strchr(diag, '\n') : NULL;
        if (nl)
            *nl = '\0';
        set_err(err, errlen, "%s: the embedded model does not check: %s", path, diag ? diag : "?");
    }
    free(diag);
    return rc ? BNNI_EFILE : BNNI_OK;
}

static int fill(BnniModel *m, const char *path, Ckpt *c, char *err, size_t errlen)
{
    char why[8192], buf[32];
    int rc = load_spec(path, c, &m->spec, err, errlen);
    if (rc != BNNI_OK)
        return rc;
    if (ckpt_to_net(c, m->spec, &m->net, why, sizeof why) < 0 || net_check_finite(m->net, why, sizeof why) < 0) {
        set_err(err, errlen, "%s: %s", path, why);
        return BNNI_EFILE;
    }
    if ((m->nch = ckpt_input_norm(c, &m->mean, &m->std)) < 0)
        return BNNI_ENOMEM;
    m->plane = shape_size(m->spec->input) / (size_t)m->nch;
    int K = m->spec->data.classes;
    if (!(m->class_names = calloc((size_t)K, sizeof *m->class_names)))
        return BNNI_ENOMEM;
    for (int k = 0; k < K; k++)
        if (!(m->class_names[k] = strdup(data_class_name(&m->spec->data, k, buf, sizeof buf))))
            return BNNI_ENOMEM;
    Shape in = m->spec->input;
    if (tensor_alloc(&m->x, CHUNK, in.c, in.h, in.w) < 0 || net_resize(m->net, CHUNK, why, sizeof why) < 0)
        return BNNI_ENOMEM;
    return BNNI_OK;
}

BNNI_API int bnni_load(const char *path, BnniModel **out, char *err, size_t errlen)
{
    char why[8192];
    Ckpt c;
    if (!out || !path) {
        set_err(err, errlen, "%s%s", "bnni_load: path and out must not be NULL", "");
        return BNNI_EINVAL;
    }
    *out = NULL;
    BnniModel *m = calloc(1, sizeof *m);
    if (!m) {
        set_err(err, errlen, "%s: %s", path, "out of memory");
        return BNNI_ENOMEM;
    }
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_lock(&load_lock);
    if (!threads_set)
        rt_set_threads_unpinned(0), threads_set = 1;
    int rc = ckpt_read(path, &c, why, sizeof why) < 0 ? BNNI_EFILE : BNNI_OK;
    pthread_mutex_unlock(&load_lock);
    if (rc != BNNI_OK) {
        set_err(err, errlen, "%s: %s", path, why);
        bnni_free(m);
        return rc;
    }
    rc = fill(m, path, &c, err, errlen);
    if (rc == BNNI_ENOMEM)
        set_err(err, errlen, "%s: %s", path, "out of memory");
    ckpt_free(&c);
    if (rc != BNNI_OK) {
        bnni_free(m);
        return rc;
    }
    *out = m;
    return BNNI_OK;
}

BNNI_API void bnni_free(BnniModel *m)
{
    if (!m)
        return;
    for (int k = 0; m->class_names && k < m->spec->data.classes; k++)
        free(m->class_names[k]);
    free(m->class_names);
    free(m->mean), free(m->std);
    tensor_free(&m->x);
    net_free(m->net);
    spec_free(m->spec);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

BNNI_API int bnni_input_shape(const BnniModel *m, int *c, int *h, int *w)
{
    if (!m)
        return BNNI_EINVAL;
    Shape s = m->spec->input;
    if (c)
        *c = s.c;
    if (h)
        *h = s.h;
    if (w)
        *w = s.w;
    return BNNI_OK;
}

BNNI_API int bnni_num_classes(const BnniModel *m) { return m ? m->spec->data.classes : 0; }

BNNI_API const char *bnni_class_name(const BnniModel *m, int k)
{
    return m && k >= 0 && k < m->spec->data.classes ? m->class_names[k] : NULL;
}

BNNI_API const char *bnni_model_name(const BnniModel *m) { return m ? m->spec->name : NULL; }

/* Softmax of each row of K logits, in double by log-sum-exp. */
static void softmax_rows(float *z, int n, int K)
{
    for (int i = 0; i < n; i++, z += K) {
        float top = z[0];
        for (int k = 1; k < K; k++)
            top = z[k] > top ? z[k] : top;
        double s = 0.0;
        for (int k = 0; k < K; k++)
            s += exp((double)z[k] - top);
        for (int k = 0; k < K; k++)
            z[k] = (float)(exp((double)z[k] - top) / s);
    }
}

/* One chunk of n <= CHUNK images through the network: normalised as the checkpoint says, logits into out. */
static void run_chunk(BnniModel *m, const float *x, int n, float *out)
{
    size_t per = shape_size(m->spec->input), K = (size_t)m->spec->data.classes;
    for (size_t i = 0; i < (size_t)n * per; i++) {
        size_t c = m->nch > 1 ? i % per / m->plane : 0;
        m->x.data[i] = (float)(((double)x[i] - m->mean[c]) / m->std[c]);
    }
    m->x.n = n;
    const Tensor *y = net_infer(m->net, &m->x);
    memcpy(out, y->data, (size_t)n * K * sizeof *out);
}

BNNI_API int bnni_predict(BnniModel *m, const float *x, int n, float *out, BnniOutput what, char *err, size_t errlen)
{
    if (!m || n < 0 || (n > 0 && (!x || !out)) || (what != BNNI_LOGITS && what != BNNI_PROBS)) {
        set_err(err, errlen, "%s%s", "bnni_predict: bad argument (NULL model or buffer, n < 0, or unknown output)", "");
        return BNNI_EINVAL;
    }
    size_t per = shape_size(m->spec->input), K = (size_t)m->spec->data.classes;
    pthread_mutex_lock(&m->lock);
    for (int start = 0; start < n; start += CHUNK) {
        int k = n - start < CHUNK ? n - start : CHUNK;
        run_chunk(m, x + (size_t)start * per, k, out + (size_t)start * K);
    }
    pthread_mutex_unlock(&m->lock);
    if (what == BNNI_PROBS)
        softmax_rows(out, n, (int)K);
    return BNNI_OK;
}

BNNI_API void bnni_set_threads(int n)
{
    pthread_mutex_lock(&load_lock);
    rt_set_threads_unpinned(n);
    threads_set = 1;
    pthread_mutex_unlock(&load_lock);
}

BNNI_API const char *bnni_version(void) { return BNNI_VERSION; }
