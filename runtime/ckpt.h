/* HDF5 checkpoints; docs/checkpoint.md is the contract. A Ckpt is the whole file in memory: ckpt_read fills one
 * from disk (checking format and version), ckpt_build assembles one from a training run for ckpt_write, which
 * saves atomically (temporary file in the same directory, fsync, rename). Tensor names are HDF5 paths without
 * the leading slash: "layers/conv1/weight", "optimizer/conv1/weight/momentum_buffer". */
#ifndef BNNI_CKPT_H
#define BNNI_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "optim.h"
#include "rng.h"
#include "spec.h"
#include "trace.h"

#define CKPT_FORMAT "bnni-checkpoint"
#define CKPT_FORMAT_VERSION 1
#define CKPT_MAX_RANK 4

typedef struct CkptTensor {
    char *path; /* owned */
    int rank;
    int dims[CKPT_MAX_RANK];
    size_t size;
    float *data; /* owned unless the Ckpt is `borrowed` */
} CkptTensor;

/* One argument of a layer, kept as an attribute of its group: AT_INT and AT_BOOL as int64, AT_NUM as float64 (the
 * value as written in the model), AT_STR as a string. */
typedef struct CkptArg {
    const char *key; /* borrowed from the layer kind's schema (layer.h) */
    ArgType type;
    double num;
    char str[ARG_STR_MAX];
} CkptArg;

/* One group under /layers: a layer with parameters, and those of its kind's arguments the file holds (a file
 * of an older bnni may hold fewer), in the schema's order. */
typedef struct CkptLayer {
    char *name, *type; /* owned */
    int nargs;
    CkptArg args[LAYER_MAX_ARGS];
} CkptLayer;

/* The per-epoch history, one value per completed epoch in each array (owned unless borrowed). test_loss and
 * test_acc are NaN for data without a test set; val_loss and val_acc exist when the run held out a validation set. */
typedef struct CkptMetrics {
    int n, cap;
    double *train_loss, *train_acc, *test_loss, *test_acc, *seconds, *images_per_second;
    int has_val;
    double *val_loss, *val_acc;
} CkptMetrics;

/* What an exact resume needs beside the tensors. A run stopped mid-epoch has 0 < position < norder. */
typedef struct TrainState {
    int epoch;          /* completed epochs */
    int position;       /* images of the current epoch already trained on (0: at an epoch boundary) */
    int *order;         /* the current epoch's shuffle order, norder entries (owned unless borrowed) */
    int norder;         /* training images per epoch */
    int batch;
    Rng shuffle_rng;    /* draws the next epoch's order */
    Rng net_rng;        /* the network's dropout stream */
    double loss_sum;    /* over the epoch so far: sum of batch mean loss x batch size */
    long long correct;  /* ... correctly classified training images */
    double seconds;     /* ... training time */
    double lr;          /* learning rate of the current epoch */
} TrainState;

typedef struct Ckpt {
    int format_version;
    char *model_source, *model_name, *bnni_version, *created; /* owned */
    char *data_path;            /* the data directory the run trained on; owned; NULL in files of older bnni */
    int epoch;
    uint64_t seed;
    char normalize[16];         /* "unit" or "standard" */
    double data_mean, data_std; /* input = (pixel/255 - data_mean) / data_std; channel 0's when nnorm > 1 */
    /* What the run trained on (root attributes, docs/checkpoint.md). Files of bnni before the data kinds hold
     * none of it: has_data 0, and their model's data statement says it all. */
    int has_data;
    char data_kind[32];
    DataType dtype;             /* data_dtype: "uint8" or "float32" */
    Shape input_shape;          /* input_shape: one item */
    int classes;
    char **class_names;         /* [classes], owned; NULL when the file names none */
    long long data_limit;       /* training items considered (the limit; 0: all) */
    long long validation;       /* of those, held out for validation */
    int nnorm;                  /* normalisation statistics: 1 (data_mean, data_std) or one per channel/feature */
    double *data_means, *data_stds; /* [nnorm] when nnorm > 1; owned */
    CkptLayer *layers;
    int nlayers;
    CkptTensor *tensors; /* every dataset under /layers, then under /optimizer */
    int ntensors;
    int has_optimizer;
    OptSpec opt;
    long long opt_steps;
    int has_train_state;
    TrainState ts;
    CkptMetrics metrics;
    /* /trace (runtime/trace.h), or NULL: set by the trainer after ckpt_build (borrowed), read by ckpt_read (owned) */
    const TraceLog *trace;
    int borrowed; /* built by ckpt_build: tensor data, ts.order, metrics and trace point into the run */
    char *network; /* owned: the network description (netdesc.h), written as the root attribute `network` by
                    * ckpt_build's checkpoints; NULL after ckpt_read, which does not need it */
} Ckpt;

/* Appends one epoch's figures (train_loss, train_acc, test_loss, test_acc, seconds, images_per_second) and, when
 * val is not NULL, its validation loss and accuracy. Returns 0 or -1 when out of memory. */
int metrics_append(CkptMetrics *m, const double v[6], const double *val);
void metrics_free(CkptMetrics *m);

/* Assembles a checkpoint of a run without copying: tensors point at the network's and optimizer's memory.
 * opt, ts may be NULL. mean/std are the input normalisation. Returns 0 or -1 (out of memory) with err.
 * Free with ckpt_free, which then frees only what ckpt_build allocated. */
int ckpt_build(Ckpt *c, const ModelSpec *m, NetParam *params, int nparams, Optim *opt, const TrainState *ts,
               const CkptMetrics *metrics, double mean, double std, int epoch, char *err, size_t errlen);

/* Records what the run trained on in c (copies): the data kind, item shape, classes and their names, dtype, the
 * training items considered (limit) and held out (nval), and the normalisation statistics (nnorm pairs: 1, or one
 * per channel or feature). Returns 0 or -1 (out of memory) with err. */
int ckpt_add_data(Ckpt *c, const DataSpec *ds, long long limit, long long nval, int nnorm, const double *mean,
                  const double *std, char *err, size_t errlen);

/* Writes c to path atomically, through the temporary file ".NAME.PID.XXXXXX" next to it; first removes such
 * files left by writers that were killed mid-save (their PID is gone). On any failure (disk full,
 * permissions...) the target is untouched, the temporary file removed, and err holds one line. Returns 0 or -1. */
int ckpt_write(const char *path, const Ckpt *c, char *err, size_t errlen);
/* Whether ckpt_write could save to path: creates and removes a temporary file in its directory, so that a
 * missing or read-only directory is reported before hours of training, and refuses a path where a file stands
 * that is not a readable bnni checkpoint (bnni replaces only its own files). Returns 0 or -1 with err. */
int ckpt_check_writable(const char *path, char *err, size_t errlen);

/* Reads a whole checkpoint. Fails with one line in err (no file name: the caller adds it) when the file is
 * missing, not HDF5, truncated or corrupt, not a bnni checkpoint, or of another format_version. The file is read
 * first in a child process (h5guard.h): one that crashes or hangs libhdf5 there is "corrupt checkpoint (the HDF5
 * library could not read it)". Returns 0 or -1; free with ckpt_free. */
int ckpt_read(const char *path, Ckpt *c, char *err, size_t errlen);
void ckpt_free(Ckpt *c);

/* Refuses a checkpoint with a NaN or Inf in any tensor whose path starts with prefix (NULL: every tensor):
 * -1 with "tensor PATH holds N non-finite values (NaN or Inf), the first at index I" for the first such tensor in
 * file order, else 0. */
int ckpt_check_finite(const Ckpt *c, const char *prefix, char *err, size_t errlen);

/* The tensor at `path`, or NULL. */
const CkptTensor *ckpt_find(const Ckpt *c, const char *path);
/* The data facts c recorded (shape, classes, class names borrowed from c, dtype), as the checker takes them
 * (CheckOptions.data_record) so that evaluating needs no data files. Meaningful when c->has_data. */
void ckpt_data_record(const Ckpt *c, DataSpec *rec);
/* The input normalisation as an affine map of what a program outside bnni hands in -- a byte as byte / 255, a
 * float as stored -- : the network sees (x - mean[c]) / std[c], c the value's channel (C x H x W items) or feature
 * (nch 1: one pair for every value). Applies the checkpoint's normalize, data_dtype and statistics (a std of 0
 * counts as 1, as in training). For the exporters and the C library. *mean and *std get nch values (caller frees
 * both). Returns nch, or -1 when out of memory. */
int ckpt_input_norm(const Ckpt *c, double **mean, double **std);
/* 1 if two layer groups have the same name, type and arguments (numbers compared by their bytes). */
int ckpt_layer_same(const CkptLayer *a, const CkptLayer *b);

/* Copies the checkpoint's layer tensors (parameters and moving statistics) into the network's. Checks first
 * that they fit: every missing, extra and mis-shaped tensor is listed in err (both shapes), and nothing is
 * copied. Returns 0 or -1. */
int ckpt_apply_params(const Ckpt *c, NetParam *params, int nparams, char *err, size_t errlen);
/* The same for the optimizer's state and step count; its kind must be spec->kind. */
int ckpt_apply_optim(const Ckpt *c, const OptSpec *spec, Optim *opt, NetParam *params, int nparams, char *err,
                     size_t errlen);

/* Builds m's network (m must outlive it) and loads c's layer tensors into it, for evaluation. Returns 0 and *net
 * (caller frees with net_free), or -1 with err. */
int ckpt_to_net(const Ckpt *c, const ModelSpec *m, Net **net, char *err, size_t errlen);

/* Formats dims as "[6, 1, 5, 5]". Returns buf. */
const char *ckpt_dims_str(int rank, const int *dims, char *buf, size_t len);

#endif
