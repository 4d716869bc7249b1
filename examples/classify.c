/* classify: the C library (bnni.h) in someone else's program. Loads a checkpoint, reads each image (binary or ASCII
 * PGM, or PNG through libpng: grayscale, the model's size), and prints its class, name and probability.
 *
 *     cc classify.c $(pkg-config --cflags --libs bnni libpng) -o classify
 *     ./classify lenet_bn.h5 shoe.png shirt.pgm
 */
#include <bnni.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads a w x h 8-bit grayscale PNG (any PNG libpng reads: colour is converted to gray) into pix. 0 or -1. */
static int read_png(FILE *f, int w, int h, unsigned char *pix, char *err, size_t errlen)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_stdio(&img, f)) {
        snprintf(err, errlen, "not a readable PNG: %s", img.message);
        return -1;
    }
    if ((int)img.width != w || (int)img.height != h) {
        snprintf(err, errlen, "image is %ux%u, the model expects %dx%d", img.width, img.height, w, h);
        png_image_free(&img);
        return -1;
    }
    img.format = PNG_FORMAT_GRAY;
    if (!png_image_finish_read(&img, NULL, pix, 0, NULL)) {
        snprintf(err, errlen, "cannot decode the PNG: %s", img.message);
        return -1;
    }
    return 0;
}

/* Reads a P5 (binary) or P2 (ASCII) PGM of w x h pixels with maxval <= 255, scaled to 0..255. 0 or -1. */
static int read_pgm(FILE *f, int w, int h, unsigned char *pix, char *err, size_t errlen)
{
    char magic[3] = {0};
    int iw, ih, maxval, c;
    if (fscanf(f, "%2s", magic) != 1 || (strcmp(magic, "P5") && strcmp(magic, "P2"))) {
        snprintf(err, errlen, "neither PNG nor PGM");
        return -1;
    }
    int got = 0, v[3];
    while (got < 3) { /* width, height, maxval, with # comments between */
        while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r')
            ;
        if (c == '#') {
            while ((c = fgetc(f)) != '\n' && c != EOF)
                ;
            continue;
        }
        ungetc(c, f);
        if (fscanf(f, "%d", &v[got++]) != 1) {
            snprintf(err, errlen, "bad PGM header");
            return -1;
        }
    }
    iw = v[0], ih = v[1], maxval = v[2];
    if (iw != w || ih != h || maxval < 1 || maxval > 255) {
        snprintf(err, errlen, "PGM is %dx%d with maxval %d; the model expects %dx%d, maxval <= 255", iw, ih, maxval,
                 w, h);
        return -1;
    }
    fgetc(f); /* the one blank after maxval */
    for (int i = 0; i < w * h; i++) {
        int p = magic[1] == '5' ? fgetc(f) : (fscanf(f, "%d", &p) == 1 ? p : EOF);
        if (p == EOF || p > maxval) {
            snprintf(err, errlen, "PGM pixel %d is missing or above maxval", i);
            return -1;
        }
        pix[i] = (unsigned char)(p * 255 / maxval);
    }
    return 0;
}

static int read_image(const char *path, int w, int h, unsigned char *pix, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open");
        return -1;
    }
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, 8, f);
    rewind(f);
    int rc = n == 8 && png_sig_cmp(sig, 0, 8) == 0 ? read_png(f, w, h, pix, err, errlen)
                                                  : read_pgm(f, w, h, pix, err, errlen);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    char err[1024];
    BnniModel *m;
    int c, h, w;
    if (argc < 3) {
        fprintf(stderr, "usage: %s CKPT.h5 IMAGE...   (IMAGE: PGM or PNG, grayscale, the model's size)\n", argv[0]);
        return 2;
    }
    if (bnni_load(argv[1], &m, err, sizeof err) != BNNI_OK) {
        fprintf(stderr, "classify: %s\n", err);
        return 1;
    }
    bnni_input_shape(m, &c, &h, &w);
    int K = bnni_num_classes(m), rc = 0;
    unsigned char *pix = malloc((size_t)h * w);
    float *x = malloc((size_t)c * h * w * sizeof *x), *p = malloc((size_t)K * sizeof *p);
    for (int i = 2; pix && x && p && c == 1 && i < argc; i++) {
        if (read_image(argv[i], w, h, pix, err, sizeof err) < 0) {
            fprintf(stderr, "classify: %s: %s\n", argv[i], err);
            rc = 1;
            continue;
        }
        for (int k = 0; k < h * w; k++)
            x[k] = pix[k] / 255.0f; /* the library takes pixels scaled to [0, 1] */
        if (bnni_predict(m, x, 1, p, BNNI_PROBS, err, sizeof err) != BNNI_OK) {
            fprintf(stderr, "classify: %s\n", err);
            rc = 1;
            break;
        }
        int best = 0;
        for (int k = 1; k < K; k++)
            best = p[k] > p[best] ? k : best;
        printf("%s,%d,%s,%.6f\n", argv[i], best, bnni_class_name(m, best), p[best]);
    }
    if (c != 1) {
        fprintf(stderr, "classify: %s takes %d channels; this example reads grayscale images only\n", argv[1], c);
        rc = 1;
    }
    free(pix), free(x), free(p);
    bnni_free(m);
    return rc;
}
