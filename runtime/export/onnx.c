/* The ONNX exporter (export.h): the plan's network in eval mode as an ONNX model of opset 13, built as the
 * official schema's messages (onnx/onnx.proto from Debian's libonnx-dev, compiled to C by protoc-c at build time)
 * and serialised by protobuf-c. The graph takes pixel values scaled to [0, 1], applies the checkpoint's input
 * normalisation (Sub, Div), then one node per layer (a residual: its body, then Add), and outputs the logits.
 * Mapping layer kinds to ONNX operators is this file's own business, so it is the one place that names kinds. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnx/onnx.pb-c.h>

#include "../layer.h"
#include "../netdesc.h"
#include "../version.h"
#include "export.h"

#define ONNX_OPSET 13
#define ONNX_IR_VERSION 7 /* the IR of opset 13 */

/* Every message, string and array of one export, freed together. */
typedef struct Arena {
    void **blocks;
    size_t n, cap;
    int failed;
} Arena;

static void *ar_new(Arena *a, size_t size)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        void **p = realloc(a->blocks, cap * sizeof *p);
        if (!p)
            return a->failed = 1, NULL;
        a->blocks = p, a->cap = cap;
    }
    void *m = calloc(1, size ? size : 1);
    if (!m)
        return a->failed = 1, NULL;
    return a->blocks[a->n++] = m;
}

static char *ar_printf(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : ar_new(a, (size_t)n + 1);
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return s;
}

static void ar_free(Arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->blocks[i]);
    free(a->blocks);
}

/* The graph under construction: nodes and initializers in order (capacities counted beforehand). */
typedef struct Graph {
    Arena ar;
    Onnx__NodeProto **nodes;
    Onnx__TensorProto **inits;
    size_t nnodes, ninits, cap;
    char *err;
    size_t errlen;
} Graph;

static Onnx__TensorProto *add_init(Graph *g, const char *name, int rank, const int *dims, const float *data,
                                   size_t size)
{
    Onnx__TensorProto *t = ar_new(&g->ar, sizeof *t);
    int64_t *d = ar_new(&g->ar, (size_t)(rank + 1) * sizeof *d);
    if (!t || !d || g->ninits == g->cap)
        return g->ar.failed = 1, NULL;
    onnx__tensor_proto__init(t);
    for (int i = 0; i < rank; i++)
        d[i] = dims[i];
    t->n_dims = (size_t)rank, t->dims = d;
    t->has_data_type = 1, t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = size, t->float_data = (float *)data; /* borrowed: packing only reads it */
    t->name = ar_printf(&g->ar, "%s", name);
    return g->inits[g->ninits++] = t;
}

/* A node of op with inputs in[0..nin) and one output named `out`, itself named `name`. */
static Onnx__NodeProto *add_node(Graph *g, const char *op, const char *name, const char *const *in, size_t nin,
                                 const char *out)
{
    Onnx__NodeProto *n = ar_new(&g->ar, sizeof *n);
    char **ins = ar_new(&g->ar, (nin + 1) * sizeof *ins), **outs = ar_new(&g->ar, sizeof *outs);
    if (!n || !ins || !outs || g->nnodes == g->cap)
        return g->ar.failed = 1, NULL;
    onnx__node_proto__init(n);
    for (size_t i = 0; i < nin; i++)
        ins[i] = ar_printf(&g->ar, "%s", in[i]);
    outs[0] = ar_printf(&g->ar, "%s", out);
    n->n_input = nin, n->input = ins, n->n_output = 1, n->output = outs;
    n->op_type = ar_printf(&g->ar, "%s", op), n->name = ar_printf(&g->ar, "%s", name);
    return g->nodes[g->nnodes++] = n;
}

static Onnx__AttributeProto *add_attr(Graph *g, Onnx__NodeProto *n, const char *name)
{
    Onnx__AttributeProto *a = ar_new(&g->ar, sizeof *a), **v;
    if (!n || !a || !(v = ar_new(&g->ar, (n->n_attribute + 1) * sizeof *v)))
        return g->ar.failed = 1, NULL;
    onnx__attribute_proto__init(a);
    a->name = ar_printf(&g->ar, "%s", name);
    if (n->n_attribute)
        memcpy(v, n->attribute, n->n_attribute * sizeof *v); /* the old array stays in the arena */
    v[n->n_attribute] = a;
    n->attribute = v, n->n_attribute++;
    return a;
}

static void attr_int(Graph *g, Onnx__NodeProto *n, const char *name, long long x)
{
    Onnx__AttributeProto *a = add_attr(g, n, name);
    if (a)
        a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i = 1, a->i = x;
}

static void attr_float(Graph *g, Onnx__NodeProto *n, const char *name, double x)
{
    Onnx__AttributeProto *a = add_attr(g, n, name);
    if (a)
        a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f = 1, a->f = (float)x;
}

/* An INTS attribute of `count` copies of x: kernel_shape [k, k], strides [s, s], pads [p, p, p, p]. */
static void attr_ints(Graph *g, Onnx__NodeProto *n, const char *name, long long x, int count)
{
    Onnx__AttributeProto *a = add_attr(g, n, name);
    int64_t *v = ar_new(&g->ar, (size_t)count * sizeof *v);
    if (!a || !v)
        return;
    for (int i = 0; i < count; i++)
        v[i] = x;
    a->has_type = 1, a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints = (size_t)count, a->ints = v;
}

/* The window attributes of Conv, AveragePool and MaxPool from the layer's own arguments. */
static void window_attrs(Graph *g, Onnx__NodeProto *n, const LayerSpec *s)
{
    attr_ints(g, n, "kernel_shape", (long long)layer_arg(s, "kernel"), 2);
    attr_ints(g, n, "strides", (long long)layer_arg(s, "stride"), 2);
    attr_ints(g, n, "pads", (long long)layer_arg(s, "padding"), 4);
}

static const char *emit_seq(Graph *g, const FoldStep *v, int n, const char *x);

/* batchnorm(affine=false) has only its moving statistics; ONNX's BatchNormalization takes a scale and a shift
 * too: ones and zeros, inserted before them in in[1..4]. Returns 0 with g->ar.failed when out of memory. */
static int batchnorm_unit_affine(Graph *g, const FoldStep *st, const char **in)
{
    const Param *mean = &st->params[0];
    float *one = ar_new(&g->ar, mean->size * sizeof *one), *zero = ar_new(&g->ar, mean->size * sizeof *zero);
    if (!one || !zero)
        return g->ar.failed = 1, 0;
    for (size_t c = 0; c < mean->size; c++)
        one[c] = 1.0f, zero[c] = 0.0f;
    Onnx__TensorProto *gm = add_init(g, ar_printf(&g->ar, "layers/%s/unit_gamma", st->spec.name), mean->rank,
                                     mean->dims, one, mean->size);
    Onnx__TensorProto *bt = add_init(g, ar_printf(&g->ar, "layers/%s/zero_beta", st->spec.name), mean->rank,
                                     mean->dims, zero, mean->size);
    if (!gm || !bt)
        return 0;
    in[3] = in[1], in[4] = in[2], in[1] = gm->name, in[2] = bt->name;
    return 1;
}

/* One step: its parameters become initializers named like the checkpoint's tensors, its node takes x and them. */
static const char *emit_step(Graph *g, const FoldStep *st, const char *x)
{
    const LayerSpec *s = &st->spec;
    const char *in[1 + LAYER_MAX_PARAMS] = {x}, *op;
    for (int k = 0; k < st->nparams; k++) {
        const Param *p = &st->params[k];
        Onnx__TensorProto *t = add_init(g, ar_printf(&g->ar, "layers/%s/%s", s->name, p->name), p->rank, p->dims,
                                        p->value, p->size);
        in[1 + k] = t ? t->name : "";
    }
    size_t nin = 1 + (size_t)st->nparams;
    if (s->kind == LK_BATCHNORM && st->nparams == 2 && !batchnorm_unit_affine(g, st, in))
        return NULL;
    if (s->kind == LK_BATCHNORM)
        nin = 5;
    char *y = ar_printf(&g->ar, "%s", s->name);
    Onnx__NodeProto *n;
    switch (s->kind) {
    case LK_CONV2D: op = "Conv"; break;
    case LK_DENSE: op = "Gemm"; break;
    case LK_BATCHNORM: op = "BatchNormalization"; break;
    case LK_SIGMOID: op = "Sigmoid"; break;
    case LK_RELU: op = "Relu"; break;
    case LK_TANH: op = "Tanh"; break;
    case LK_AVGPOOL: op = "AveragePool"; break;
    case LK_MAXPOOL: op = "MaxPool"; break;
    case LK_FLATTEN: op = "Flatten"; break;
    case LK_DROPOUT: op = "Identity"; break; /* eval mode */
    case LK_RESIDUAL: {
        const char *b = emit_seq(g, st->body, st->nbody, x), *sum[2] = {b, x};
        add_node(g, "Add", s->name, sum, 2, y);
        return b ? y : NULL;
    }
    default:
        snprintf(g->err, g->errlen, "layer %s: '%s' is a layer kind ONNX cannot express", s->name,
                 (unsigned)s->kind < LK_COUNT ? layer_ops[s->kind]->type : "?");
        return NULL;
    }
    if (!(n = add_node(g, op, s->name, in, nin, y)))
        return NULL;
    if (s->kind == LK_CONV2D || s->kind == LK_AVGPOOL || s->kind == LK_MAXPOOL)
        window_attrs(g, n, s);
    if (s->kind == LK_DENSE)
        attr_int(g, n, "transB", 1); /* y = x W^T + b, W being [out, in] */
    if (s->kind == LK_BATCHNORM)
        attr_float(g, n, "epsilon", layer_arg(s, "eps"));
    if (s->kind == LK_AVGPOOL)
        attr_int(g, n, "count_include_pad", 1); /* bnni's avgpool divides by the whole window */
    if (s->kind == LK_FLATTEN)
        attr_int(g, n, "axis", 1);
    return y;
}

/* Emits steps v[0..n) on tensor x; returns the name of the result, or NULL with g->err. */
static const char *emit_seq(Graph *g, const FoldStep *v, int n, const char *x)
{
    for (int i = 0; i < n && x; i++)
        x = emit_step(g, &v[i], x);
    return x;
}

static size_t count_steps(const FoldStep *v, int n)
{
    size_t k = 0;
    for (int i = 0; i < n; i++)
        k += 1 + count_steps(v[i].body, v[i].nbody);
    return k;
}

/* A float tensor's type with a symbolic batch dimension N and the given per-image dimensions. */
static Onnx__ValueInfoProto *value_info(Graph *g, const char *name, Shape s)
{
    int per[3] = {s.c, s.h, s.w}, rank = s.rank == 3 ? 3 : 1;
    Onnx__ValueInfoProto *v = ar_new(&g->ar, sizeof *v);
    Onnx__TypeProto *tp = ar_new(&g->ar, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ar_new(&g->ar, sizeof *tt);
    Onnx__TensorShapeProto *sh = ar_new(&g->ar, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ar_new(&g->ar, 4 * sizeof *dims);
    if (!v || !tp || !tt || !sh || !dims)
        return NULL;
    for (int i = 0; i <= rank; i++) {
        if (!(dims[i] = ar_new(&g->ar, sizeof **dims)))
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[i]);
        if (i == 0)
            dims[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM, dims[i]->dim_param = "N";
        else
            dims[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE, dims[i]->dim_value = per[i - 1];
    }
    onnx__value_info_proto__init(v), onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt), onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)rank + 1, sh->dim = dims;
    tt->has_elem_type = 1, tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    v->name = ar_printf(&g->ar, "%s", name), v->type = tp;
    return v;
}

/* The input normalisation of the checkpoint (ckpt_input_norm), (x - data_mean) / data_std, as two nodes on
 * initializers: scalars when one pair serves every value, else one value per channel ([C, 1, 1], broadcast over
 * the image) or per feature ([F]). */
static const char *emit_normalise(Graph *g, const Ckpt *c, Shape in)
{
    double *dm, *ds;
    int nch = ckpt_input_norm(c, &dm, &ds);
    float *v = nch > 0 ? ar_new(&g->ar, 2 * (size_t)nch * sizeof *v) : NULL;
    if (!v) {
        if (nch > 0)
            free(dm), free(ds);
        return g->ar.failed = 1, NULL;
    }
    for (int k = 0; k < nch; k++)
        v[k] = (float)dm[k], v[nch + k] = (float)ds[k];
    free(dm), free(ds);
    int dims[3] = {nch, 1, 1}, rank = nch == 1 ? 0 : in.rank == 3 ? 3 : 1;
    Onnx__TensorProto *mean = add_init(g, "data_mean", rank, dims, v, (size_t)nch);
    Onnx__TensorProto *std = add_init(g, "data_std", rank, dims, v + nch, (size_t)nch);
    if (!mean || !std)
        return NULL;
    const char *a[2] = {"input", mean->name}, *b[2] = {"input_centred", std->name};
    add_node(g, "Sub", "normalize_sub", a, 2, "input_centred");
    add_node(g, "Div", "normalize_div", b, 2, "input_normalized");
    return "input_normalized";
}

static Onnx__StringStringEntryProto *meta(Graph *g, const char *key, char *value)
{
    Onnx__StringStringEntryProto *e = ar_new(&g->ar, sizeof *e);
    if (!e || !value)
        return g->ar.failed = 1, NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = ar_printf(&g->ar, "%s", key), e->value = value;
    return e;
}

/* metadata_props: what a deployment needs besides the graph: the class names (a JSON array) and the model text. */
static int add_metadata(Graph *g, Onnx__ModelProto *mp, const ExportJob *job)
{
    char *names = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&names, &len);
    if (!f)
        return -1;
    netdesc_put_class_names(f, job->model);
    fclose(f);
    Onnx__StringStringEntryProto **v = ar_new(&g->ar, 8 * sizeof *v);
    if (!v) {
        free(names);
        return -1;
    }
    v[0] = meta(g, "class_names", ar_printf(&g->ar, "%s", names ? names : "[]"));
    free(names);
    v[1] = meta(g, "model_source", ar_printf(&g->ar, "%s", job->ckpt->model_source));
    v[2] = meta(g, "model_name", ar_printf(&g->ar, "%s", job->ckpt->model_name));
    v[3] = meta(g, "epoch", ar_printf(&g->ar, "%d", job->ckpt->epoch));
    v[4] = meta(g, "input", ar_printf(&g->ar, "%s; normalised inside (%s): (x - data_mean) / data_std",
                                      job->ckpt->has_data && job->ckpt->dtype == DT_F32
                                          ? "the values as the data stores them"
                                          : "pixel values scaled to [0, 1] (byte / 255)",
                                      job->ckpt->normalize));
    v[5] = meta(g, "batchnorm", ar_printf(&g->ar, "%d folded into the layer before them", job->plan->folded));
    mp->n_metadata_props = 6, mp->metadata_props = v;
    return g->ar.failed ? -1 : 0;
}

static int build_model(Graph *g, const ExportJob *job, Onnx__ModelProto *mp, Onnx__GraphProto *gp)
{
    const ModelSpec *m = job->model;
    Onnx__OperatorSetIdProto *ops = ar_new(&g->ar, sizeof *ops), **opv = ar_new(&g->ar, sizeof *opv);
    Onnx__ValueInfoProto **in = ar_new(&g->ar, sizeof *in), **out = ar_new(&g->ar, sizeof *out);
    if (!ops || !opv || !in || !out)
        return -1;
    const char *x = emit_normalise(g, job->ckpt, m->input);
    if (x && !emit_seq(g, job->plan->steps, job->plan->n, x))
        return -1;
    if (g->ar.failed || !x)
        return -1;
    g->nodes[g->nnodes - 1]->output[0] = "logits"; /* the last node computes the network's output */
    Shape logits = {1, m->data.classes, 1, 1};
    in[0] = value_info(g, "input", m->input), out[0] = value_info(g, "logits", logits);
    onnx__graph_proto__init(gp);
    gp->name = ar_printf(&g->ar, "%s", m->name);
    gp->n_node = g->nnodes, gp->node = g->nodes, gp->n_initializer = g->ninits, gp->initializer = g->inits;
    gp->n_input = 1, gp->input = in, gp->n_output = 1, gp->output = out;
    onnx__operator_set_id_proto__init(ops);
    ops->domain = "", ops->has_version = 1, ops->version = ONNX_OPSET, opv[0] = ops;
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1, mp->ir_version = ONNX_IR_VERSION, mp->n_opset_import = 1, mp->opset_import = opv;
    mp->producer_name = "bnni", mp->producer_version = BNNI_VERSION, mp->graph = gp;
    mp->doc_string = ar_printf(&g->ar, "%s, epoch %d, exported from %s", m->name, job->ckpt->epoch, job->source);
    return add_metadata(g, mp, job) < 0 || g->ar.failed || !in[0] || !out[0] ? -1 : 0;
}

static int onnx_write(const ExportJob *job, char *err, size_t errlen)
{
    Graph g = {.err = err, .errlen = errlen};
    size_t steps = count_steps(job->plan->steps, job->plan->n);
    Onnx__ModelProto mp;
    Onnx__GraphProto gp;
    uint8_t *buf = NULL;
    int rc = -1;
    err[0] = '\0';
    g.cap = steps * (1 + LAYER_MAX_PARAMS) + 4;
    g.nodes = ar_new(&g.ar, g.cap * sizeof *g.nodes), g.inits = ar_new(&g.ar, g.cap * sizeof *g.inits);
    if (g.nodes && g.inits && build_model(&g, job, &mp, &gp) == 0) {
        size_t len = onnx__model_proto__get_packed_size(&mp);
        if ((buf = malloc(len ? len : 1)) && onnx__model_proto__pack(&mp, buf) == len)
            rc = export_write_atomic(job->path, buf, len, err, errlen);
    }
    if (rc < 0 && !err[0])
        snprintf(err, errlen, "out of memory building the ONNX model");
    free(buf);
    ar_free(&g.ar);
    return rc;
}

const Exporter onnx_exporter = {
    .name = "onnx",
    .suffixes = {".onnx", NULL},
    .what = "an ONNX model (opset 13) of the network in eval mode",
    .write = onnx_write,
};
