/* The checked, expanded model: the contract between the front end (interp/) and the runtime. The front end
 * produces a ModelSpec from a .bnn file; every layer in it has its unique name, its arguments resolved against
 * its kind's schema (LayerOps.args, owned by the layer's own file), input and output shapes and parameter
 * counts. The runtime never sees the syntax tree; code that builds layers without the language (tests,
 * benchmarks) fills a LayerSpec with layer_spec_make (layer.h). */
#ifndef BNNI_SPEC_H
#define BNNI_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "layers/registry.h"

typedef struct SrcLoc {
    int line, col; /* 1-based; 0 when unknown */
} SrcLoc;

/* Per-sample shape, batch excluded. rank 3: C x H x W; rank 1: c features (h = w = 1). */
typedef struct Shape {
    int rank;
    int c, h, w;
} Shape;

/* LK_CONV2D, LK_DENSE, ...: one per line of LAYER_KINDS (layers/registry.h), in that order. */
#define LAYER_KIND_ENUM(NAME, name) LK_##NAME,
typedef enum LayerKind { LAYER_KINDS(LAYER_KIND_ENUM) LK_COUNT } LayerKind;
#undef LAYER_KIND_ENUM

/* ---- argument schemas: what a call may be given (name, type, default, range) ---- */

/* AT_SHAPE: a shape written as 32x32 (kept as its text); AT_CALL: a nested call such as augment(flip=true), whose
 * own arguments are ArgSpec.sub (data statements only). */
typedef enum ArgType { AT_INT, AT_NUM, AT_BOOL, AT_STR, AT_SHAPE, AT_CALL } ArgType;

#define ARG_NOMAX 1e300  /* hi of a range with no upper bound */
#define ARG_STR_MAX 48   /* longest string argument of a layer, NUL included */
#define LAYER_MAX_ARGS 8 /* arguments of one layer kind */

typedef struct ArgSpec {
    const char *key;
    ArgType type;
    int required;
    double lo, hi;              /* AT_INT, AT_NUM: the allowed range */
    int lo_open, hi_open;       /* 1: the bound itself is excluded */
    double def;                 /* default of AT_INT, AT_NUM, AT_BOOL */
    const char *sdef;           /* default of AT_STR */
    const char *const *choices; /* AT_STR: the allowed values, NULL-terminated; NULL: any non-empty string */
    const char *defdoc;         /* the default as written in docs and messages when it is not a constant */
    const struct ArgSpec *sub;  /* AT_CALL: the nested call's arguments, nsub of them */
    int nsub;
} ArgSpec;

/* Shorthands for schema tables. */
#define ARG_INT(k, req, l, h, d) {.key = k, .type = AT_INT, .required = req, .lo = l, .hi = h, .def = d}
#define ARG_NUM(k, req, l, lopen, h, hopen, d) \
    {.key = k, .type = AT_NUM, .required = req, .lo = l, .hi = h, .lo_open = lopen, .hi_open = hopen, .def = d}
#define ARG_BOOL(k, d) {.key = k, .type = AT_BOOL, .def = d}
#define ARG_STR(k, d, ch) {.key = k, .type = AT_STR, .sdef = d, .choices = ch}
#define ARG_SHAPE(k, doc) {.key = k, .type = AT_SHAPE, .sdef = "", .defdoc = doc}
#define ARG_CALL(k, s, n) {.key = k, .type = AT_CALL, .sub = s, .nsub = n}

/* One resolved argument of a layer. */
typedef struct ArgValue {
    double num;            /* AT_INT, AT_NUM; AT_BOOL: 0 or 1 */
    char str[ARG_STR_MAX]; /* AT_STR */
} ArgValue;

/* Whether x lies in a's range; range text for messages ("between 1 and 1024", "in (0, 1]"). */
int arg_in_range(const ArgSpec *a, double x);
const char *arg_range_text(const ArgSpec *a, char *buf, size_t len);

/* ---- the model ---- */

#define SPEC_NAME_MAX 128

typedef struct LayerSpec {
    LayerKind kind;
    char name[SPEC_NAME_MAX]; /* unique in the model; the checkpoint group name */
    SrcLoc loc;               /* where the layer call was written */
    ArgValue arg[LAYER_MAX_ARGS]; /* in the order of layer_ops[kind]->args, defaults filled in */
    unsigned given;           /* bit k: argument k was written (not defaulted) */
    Shape in, out;
    long long nparams;        /* trainable values */
    long long nbuffers;       /* non-trainable values (batchnorm moving statistics) */
    struct LayerSpec *body;   /* a layer that runs a sub-network (residual): its layers, owned by this spec */
    int nbody;
} LayerSpec;

/* Argument k of s as a number (AT_INT, AT_BOOL and AT_NUM arguments). */
static inline int spec_int(const LayerSpec *s, int k) { return (int)s->arg[k].num; }
static inline double spec_num(const LayerSpec *s, int k) { return s->arg[k].num; }

/* How input values are scaled (docs/language.md, "normalize"): unit: uint8 / 255 (float data as it is); standard:
 * minus the training items' mean and divided by their standard deviation, per channel (images) or per feature;
 * none: as stored. */
typedef enum DataNorm { NORM_UNIT, NORM_STANDARD, NORM_NONE } DataNorm;

/* How a data set stores its values: bytes (images), or float32 (float64 is converted on reading). */
typedef enum DataType { DT_U8, DT_F32 } DataType;

#define DATA_MAX_ARGS 16

/* One resolved argument of a data statement: numbers in num, strings and shapes (their text) in str. */
typedef struct DataArg {
    double num;
    char *str; /* owned; NULL for numbers */
} DataArg;

/* The `data` statement, resolved against its kind (runtime/data/kind.h, one file per kind), and what the data
 * says about itself: the runtime loads it from here. */
typedef struct DataSpec {
    char kind[32];              /* the kind's name: "fashion_mnist", "hdf5", "csv", ... */
    int id;                     /* DataKind (data/registry.h) */
    DataArg arg[DATA_MAX_ARGS]; /* in the order of the kind's schema, defaults filled in */
    unsigned given;             /* bit k: argument k was written */
    /* the arguments every kind has */
    int batch;
    int shuffle;
    long long limit;            /* 0: all training items */
    DataNorm normalize;
    double validation;          /* held out of the training items: 0 none, (0, 1) a fraction, >= 1 a count */
    int flip, crop;             /* augment(flip, crop): random horizontal flips, random crops after zero padding */
    /* what the data says (its headers when checked, a checkpoint's record when evaluated) */
    Shape shape;                /* one item: C x H x W, or F features */
    int classes;                /* K: labels are 0 .. K-1 */
    char **class_names;         /* [classes] names, owned; NULL when the data names none */
    DataType dtype;
    long long ntrain, ntest;    /* items in the files (before limit); -1 when unknown */
    int has_test;               /* the data has a test set (else no test metrics) */
} DataSpec;

/* Frees what a DataSpec owns (strings, class names) and zeroes it. */
void data_spec_clear(DataSpec *d);

/* When to keep a checkpoint (`checkpoint "run.h5", keep="last"|"best", every=N`). */
typedef enum CkptKeep { KEEP_LAST, KEEP_BEST } CkptKeep;

typedef enum OptKind { OPT_SGD, OPT_ADAM } OptKind;

typedef struct OptSpec {
    OptKind kind;
    double lr;
    double momentum, weight_decay; /* sgd: momentum; both: weight_decay */
    int nesterov;
    double beta1, beta2, eps;      /* adam */
} OptSpec;

typedef enum SchedKind { SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE } SchedKind;

typedef struct SchedSpec {
    SchedKind kind;
    int every;      /* step: every N epochs ... */
    double factor;  /* ... multiply the lr by factor */
    double min_lr;  /* cosine */
} SchedSpec;

typedef struct ModelSpec {
    char *name;        /* `model NAME`, else the file's stem; owned */
    char *file;        /* the path it was read from; owned */
    char *source;      /* the full .bnn text (embedded in checkpoints); owned, NUL-terminated */
    size_t source_len;
    DataSpec data;
    OptSpec opt;
    SchedSpec sched;
    int epochs;        /* default 10 */
    uint64_t seed;     /* default 1 */
    char *checkpoint;  /* `checkpoint "path"`, else "<name>.h5"; owned */
    CkptKeep keep;     /* keep="last" (default): every epoch; "best": the epoch of the best validation accuracy */
    int every;         /* > 0: every N epochs also keep <checkpoint without .h5>.epochN.h5 */
    Shape input;       /* the network's input shape */
    LayerSpec *layers; /* top-level sequence; owned */
    int nlayers;
    long long nparams, nbuffers; /* totals over every layer, residual bodies included */
    long long nlayers_total;     /* every layer after expansion, residual bodies included */
} ModelSpec;

/* What training m needs in memory, roughly: 16 bytes per trainable parameter (value, gradient, two optimizer
 * states), 4 per buffer value, and three floats per activation value (output, gradient, what the backward keeps)
 * for every item of a batch. The data set itself is not counted. */
double spec_train_bytes(const ModelSpec *m);
/* Activation values per item: the input and every layer's output, residual bodies included. */
double spec_activations(const ModelSpec *m);

/* Frees a ModelSpec and everything it owns; NULL is fine. */
void spec_free(ModelSpec *m);
/* Frees an array of n layers and, recursively, their bodies. */
void spec_layers_free(LayerSpec *v, int n);

#endif
