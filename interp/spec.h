/* The checked, expanded model: the contract between the front end and the runtime.
 * check_model() produces a ModelSpec from the AST; every layer in it has its unique name,
 * resolved arguments, input and output shapes and parameter counts. The runtime never sees the AST. */
#ifndef BNNI_SPEC_H
#define BNNI_SPEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct SrcLoc {
    int line, col; /* 1-based; 0 when unknown */
} SrcLoc;

/* Per-sample shape, batch excluded. rank 3: C x H x W; rank 1: c features (h = w = 1). */
typedef struct Shape {
    int rank;
    int c, h, w;
} Shape;

typedef enum LayerKind {
    LK_CONV2D,
    LK_DENSE,
    LK_BATCHNORM,
    LK_SIGMOID,
    LK_RELU,
    LK_TANH,
    LK_AVGPOOL,
    LK_MAXPOOL,
    LK_FLATTEN,
    LK_DROPOUT,
    LK_RESIDUAL,
    LK_COUNT
} LayerKind;

#define SPEC_NAME_MAX 128

typedef struct LayerSpec {
    LayerKind kind;
    char name[SPEC_NAME_MAX]; /* unique in the model; the checkpoint group name */
    SrcLoc loc;               /* where the layer call was written */
    int units;                /* conv2d: output channels; dense: output features */
    int kernel, stride, padding; /* conv2d, avgpool, maxpool */
    int bias;                 /* conv2d, dense: 1 = has a bias */
    float momentum, eps;      /* batchnorm: moving = momentum*moving + (1-momentum)*batch */
    float p;                  /* dropout probability */
    Shape in, out;
    long long nparams;        /* trainable values */
    long long nbuffers;       /* non-trainable values (batchnorm moving statistics) */
    struct LayerSpec *body;   /* residual: the layers inside, owned by this spec */
    int nbody;
} LayerSpec;

typedef enum DataNorm { NORM_UNIT, NORM_STANDARD } DataNorm;

typedef struct DataSpec {
    char kind[32];      /* "fashion_mnist" or "mnist" */
    char *path;         /* directory holding the four IDX files; owned */
    int batch;
    int shuffle;
    long long limit;    /* 0: all training images */
    DataNorm normalize;
    Shape shape;        /* per-image shape: 1x28x28 */
    int classes;        /* 10 */
} DataSpec;

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
    Shape input;       /* the network's input shape */
    LayerSpec *layers; /* top-level sequence; owned */
    int nlayers;
    long long nparams, nbuffers; /* totals over every layer, residual bodies included */
    long long nlayers_total;     /* every layer after expansion, residual bodies included */
} ModelSpec;

/* Frees a ModelSpec and everything it owns; NULL is fine. */
void spec_free(ModelSpec *m);

#endif
