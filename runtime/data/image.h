/* Image files for the images data kind and `bnni predict`: PNG (libpng), JPEG (libjpeg-turbo) and PGM/PPM (P2, P3,
 * P5, P6; read here), told apart by their first bytes, decoded to 8-bit pixels with 1 (gray) or 3 (RGB) channels,
 * and resized with stb_image_resize (libstb). docs/language.md says why these libraries. */
#ifndef BNNI_DATA_IMAGE_H
#define BNNI_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_SIDE 16384
#define IMAGE_MAX_PIXELS (1 << 26)   /* 64 M pixels: an 8192 x 8192 photo */
#define IMAGE_MAX_FILE (256u << 20)  /* bytes of one image file */

typedef struct Image {
    int w, h, c;  /* c: 1 or 3 */
    uint8_t *px;  /* h rows of w pixels of c bytes (interleaved); owned */
} Image;

/* Decodes an image file's bytes into `channels` channels (1 or 3): gray becomes RGB by copying, RGB becomes gray as
 * (77 R + 150 G + 29 B + 128) / 256 (ITU-R BT.601's weights in 8 bits), an alpha channel is dropped, 16-bit
 * samples keep their high byte. A damaged or truncated file is refused (libjpeg's warnings included: a truncated
 * JPEG would otherwise decode to gray). Returns 0, or -1 with a reason (without the file name) in err. */
int image_decode(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t errlen);
/* The same from a file (at most IMAGE_MAX_FILE bytes); the reason in err names no file either. */
int image_read(const char *path, int channels, Image *out, char *err, size_t errlen);
/* Only the header: the image's width and height. Returns 0, or -1 with a reason in err. */
int image_size(const char *path, int *w, int *h, char *err, size_t errlen);
void image_free(Image *im);

/* im resized to w x h (unchanged when it has that size already), channels first, into dst (c x h x w bytes).
 * Returns 0, or -1 with err (out of memory). */
int image_to_chw(const Image *im, int w, int h, uint8_t *dst, char *err, size_t errlen);

/* Whether a file name ends in .png, .jpg, .jpeg, .pgm, .ppm or .pnm (any case): what a directory listing takes. */
int image_name_ok(const char *name);

#endif
