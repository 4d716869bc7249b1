/* bnni.h: inference with bnni checkpoints from C (libbnni, docs/library.md).
 *
 * Load a checkpoint written by `bnni train` (or `bnni export -o x.h5`), ask it for its input shape and classes,
 * classify batches of images. Link with `pkg-config --cflags --libs bnni`.
 *
 * Errors: every function that can fail returns BNNI_OK (0) or a negative BnniStatus, and, where it takes one,
 * writes a one-line reason into err (errlen bytes, always NUL-terminated; err may be NULL). The library never
 * prints and never exits.
 *
 * Threads: separate BnniModel handles may be used from separate threads at the same time. Calls on one handle
 * are serialised by a lock of that handle. Reading a checkpoint (bnni_load) is serialised across the whole process,
 * because Debian's HDF5 library is not thread-safe: do not call HDF5 yourself from another thread while bnni_load
 * runs. How many threads one prediction uses is process-wide (bnni_set_threads); a prediction made while another
 * thread's is using them runs on its caller's thread alone, with the same results. */
#ifndef BNNI_H
#define BNNI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNNI_VERSION_MAJOR 0
#define BNNI_VERSION_MINOR 1

typedef enum BnniStatus {
    BNNI_OK = 0,
    BNNI_EINVAL = -1, /* a bad argument: NULL where a pointer is needed, n < 0, an unknown output kind */
    BNNI_EFILE = -2,  /* the checkpoint cannot be read or used: missing, not a checkpoint, corrupt, non-finite */
    BNNI_ENOMEM = -3, /* out of memory */
} BnniStatus;

/* What bnni_predict writes per image. */
typedef enum BnniOutput {
    BNNI_LOGITS = 0, /* the network's class scores */
    BNNI_PROBS = 1,  /* their softmax, computed in double: each row sums to 1 */
} BnniOutput;

/* A loaded model: the network of one checkpoint, in eval mode. Opaque. */
typedef struct BnniModel BnniModel;

/* Loads the checkpoint at path. On success *out is a new handle, owned by the caller, who releases it with
 * bnni_free. On failure *out is NULL and err says why, naming the file. Does not keep the file open. */
int bnni_load(const char *path, BnniModel **out, char *err, size_t errlen);

/* Releases m and everything it owns; NULL is fine. m must not be in use by another thread. */
void bnni_free(BnniModel *m);

/* The shape of one input image: channels, height and width (1, 28, 28 for the shipped models). Values per image
 * are c*h*w. Any of the pointers may be NULL. Returns BNNI_OK, or BNNI_EINVAL when m is NULL. */
int bnni_input_shape(const BnniModel *m, int *c, int *h, int *w);

/* The number of classes (values per image that bnni_predict writes); 0 when m is NULL. */
int bnni_num_classes(const BnniModel *m);

/* The name of class k ("T-shirt/top" for Fashion-MNIST's class 0; the number for data sets without names), or
 * NULL when k is out of range. The string is owned by m and lives as long as it. */
const char *bnni_class_name(const BnniModel *m, int k);

/* The model's name (the `model` statement of its .bnn), owned by m. */
const char *bnni_model_name(const BnniModel *m);

/* Classifies n images (or feature vectors). x holds n * c*h*w floats, image after image in C x H x W order,
 * each value a pixel scaled to [0, 1] (byte / 255.0f) -- or, for a model trained on float data (CSV, HDF5
 * float32), the value as the data stores it; the checkpoint's input normalisation is applied inside. Writes
 * n * bnni_num_classes(m) floats to out (caller-owned), logits or probabilities as `what` says. x and out belong
 * to the caller and are not kept. The results are those of `bnni eval` and `bnni predict`. Returns BNNI_OK or a
 * negative status with err. */
int bnni_predict(BnniModel *m, const float *x, int n, float *out, BnniOutput what, char *err, size_t errlen);

/* Sets how many threads every prediction of the process splits its work across (n <= 0: every core the
 * process may run on, the default). Process-wide: call it before predicting, not while another thread predicts. */
void bnni_set_threads(int n);

/* The library's version, "0.1.0"; a static string. */
const char *bnni_version(void);

#ifdef __cplusplus
}
#endif

#endif
