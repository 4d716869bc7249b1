/* Readers for the image formats bnni takes: IDX files (LeCun's MNIST format, gzipped or not; Fashion-MNIST
 * ships gzipped) with strict validation, and 28x28 PGM images (P5 binary, P2 text) for `bnni predict`. */
#ifndef BNNI_IDX_H
#define BNNI_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_MAGIC_IMAGES 0x00000803u /* unsigned bytes, 3 dimensions: count x rows x cols */
#define IDX_MAGIC_IMAGES4 0x00000804u /* unsigned bytes, 4 dimensions: count x rows x cols x channels */
#define IDX_MAGIC_LABELS 0x00000801u /* unsigned bytes, 1 dimension: count */

typedef enum IdxKind { IDX_IMAGES, IDX_LABELS } IdxKind;

typedef struct IdxFile {
    uint8_t *data;  /* the first `count` items, rows*cols*chans bytes each (one byte for labels); owned */
    int count;      /* items kept */
    int total;      /* items in the file */
    int rows, cols; /* images; 1 x 1 for labels */
    int chans;      /* 1, or the last dimension of a 4-dimensional file (whose items are rows x cols x chans) */
} IdxFile;

/* Reads an IDX file of `kind` (images: 3 dimensions, or 4 with the channels last), gzipped or not, keeping its first
 * `limit` items (0: all). The whole file is
 * read and checked even when only a few items are kept: magic number, sane dimensions, and a size that
 * matches the header exactly. Returns 0, or -1 with a one-line reason in err (without the file name:
 * the caller adds it). Free with idx_free. */
int idx_read(const char *path, IdxKind kind, long long limit, IdxFile *out, char *err, size_t errlen);
/* Reads only the header of an IDX file of `kind`: item count and image size (data stays NULL, count 0). */
int idx_read_header(const char *path, IdxKind kind, IdxFile *out, char *err, size_t errlen);
void idx_free(IdxFile *f);

/* Where the items of an uncompressed IDX file of `kind` start (its header's length), with its header in *out,
 * when the file's size matches the header exactly -- what reading items at their offsets needs; else -1 (gzipped,
 * unreadable or damaged: idx_read then says why). */
long long idx_raw_offset(const char *path, IdxKind kind, IdxFile *out);

/* Reads an image file for prediction: IDX images (gzipped or not) or one PGM image (told apart by the
 * "P5"/"P2" signature), each of which must be rows x cols. Returns 0 and *out (free with idx_free), or -1 with err. */
int idx_read_any_images(const char *path, int rows, int cols, IdxFile *out, char *err, size_t errlen);

/* Reads a PGM image (P5 or P2, maxval <= 255, `#` comments allowed) that must be rows x cols; pixels are
 * rescaled to 0..255 when maxval is smaller. Returns 0, or -1 with err. */
int pgm_read(const char *path, int rows, int cols, uint8_t *pixels, char *err, size_t errlen);

#endif
