/* Decoding and resizing images (image.h). libpng and libjpeg report errors by longjmp out of their callbacks: each
 * decoder keeps everything it must free in a struct that outlives the jump. */
#include "image.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jpeglib.h>
#include <png.h>
#include <stb_image_resize.h> /* the declarations; the implementation is libstb's */

void image_free(Image *im)
{
    free(im->px);
    memset(im, 0, sizeof *im);
}

static int size_ok(long w, long h, char *err, size_t errlen)
{
    if (w < 1 || h < 1 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS) {
        snprintf(err, errlen, "image of %ldx%ld pixels is %s (bnni reads up to %d per side, %d in all)", w, h,
                 w < 1 || h < 1 ? "empty" : "too large", IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
        return 0;
    }
    return 1;
}

/* src (n pixels of sc channels: 1, 3 or, with alpha, 2 or 4) into dst of dc channels (1 or 3). */
static void convert(const uint8_t *src, int sc, uint8_t *dst, int dc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = src + i * (size_t)sc;
        int gray = sc < 3;
        if (dc == 1)
            dst[i] = gray ? s[0] : (uint8_t)((77 * s[0] + 150 * s[1] + 29 * s[2] + 128) >> 8);
        else
            for (int k = 0; k < 3; k++)
                dst[i * 3 + k] = gray ? s[0] : s[k];
    }
}

/* ---------------------------------------------------------------- PNG */

typedef struct PngRead {
    const uint8_t *data;
    size_t len, at;
    char *err;
    size_t errlen;
} PngRead;

static void png_error_fn(png_structp png, png_const_charp msg)
{
    PngRead *r = png_get_error_ptr(png);
    snprintf(r->err, r->errlen, "not a readable PNG image (%s)", msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void png_read_fn(png_structp png, png_bytep out, size_t n)
{
    PngRead *r = png_get_io_ptr(png);
    if (n > r->len - r->at)
        png_error(png, "truncated");
    memcpy(out, r->data + r->at, n);
    r->at += n;
}

/* The state a longjmp must not lose. */
typedef struct PngState {
    png_structp png;
    png_infop info;
    uint8_t *raw;
    png_bytep *rows;
} PngState;

static int png_decode(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t errlen)
{
    PngRead r = {data, len, 0, err, errlen};
    PngState st = {0};
    st.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_error_fn, png_warn_fn);
    if (!st.png || !(st.info = png_create_info_struct(st.png))) {
        png_destroy_read_struct(&st.png, NULL, NULL);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    PngState *volatile s = &st; /* what setjmp's return path reads */
    if (setjmp(png_jmpbuf(st.png))) {
        free(s->raw), free(s->rows);
        png_destroy_read_struct(&s->png, &s->info, NULL);
        image_free(out);
        return -1;
    }
    png_set_user_limits(st.png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(st.png, 8u << 20);
    png_set_read_fn(st.png, &r, png_read_fn);
    png_read_info(st.png, st.info);
    png_uint_32 w = png_get_image_width(st.png, st.info), h = png_get_image_height(st.png, st.info);
    if (!size_ok((long)w, (long)h, err, errlen))
        png_longjmp(st.png, 1);
    png_set_expand(st.png);   /* palettes to RGB, gray below 8 bits to 8, tRNS to alpha */
    png_set_strip_16(st.png);
    png_set_interlace_handling(st.png);
    png_read_update_info(st.png, st.info);
    int sc = png_get_channels(st.png, st.info);
    size_t stride = png_get_rowbytes(st.png, st.info);
    if (sc < 1 || sc > 4 || stride != (size_t)w * sc) {
        snprintf(err, errlen, "not a readable PNG image (unexpected layout)");
        png_longjmp(st.png, 1);
    }
    st.raw = malloc(stride * h), st.rows = malloc(h * sizeof *st.rows);
    out->px = malloc((size_t)w * h * channels);
    if (!st.raw || !st.rows || !out->px) {
        snprintf(err, errlen, "out of memory for a %ux%u image", w, h);
        png_longjmp(st.png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++)
        st.rows[y] = st.raw + y * stride;
    png_read_image(st.png, st.rows);
    png_read_end(st.png, NULL);
    convert(st.raw, sc, out->px, channels, (size_t)w * h);
    out->w = (int)w, out->h = (int)h, out->c = channels;
    free(st.raw), free(st.rows);
    png_destroy_read_struct(&st.png, &st.info, NULL);
    return 0;
}

/* ---------------------------------------------------------------- JPEG */

typedef struct JpegErr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char *err;
    size_t errlen;
} JpegErr;

static void jpeg_fail(j_common_ptr cinfo)
{
    JpegErr *e = (JpegErr *)cinfo->err;
    char msg[JMSG_LENGTH_MAX];
    e->mgr.format_message(cinfo, msg);
    snprintf(e->err, e->errlen, "not a readable JPEG image (%s)", msg);
    longjmp(e->jump, 1);
}

/* Warnings (level -1) are failures: libjpeg decodes a truncated file to gray after warning once. */
static void jpeg_message(j_common_ptr cinfo, int level)
{
    if (level < 0)
        jpeg_fail(cinfo);
}

typedef struct JpegState {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    uint8_t *row;
} JpegState;

static int jpeg_decode(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t errlen)
{
    JpegState *st = calloc(1, sizeof *st);
    if (!st)
        return snprintf(err, errlen, "out of memory"), -1;
    st->cinfo.err = jpeg_std_error(&st->jerr.mgr);
    st->jerr.mgr.error_exit = jpeg_fail, st->jerr.mgr.emit_message = jpeg_message;
    st->jerr.err = err, st->jerr.errlen = errlen;
    if (setjmp(st->jerr.jump)) {
        jpeg_destroy_decompress(&st->cinfo);
        free(st->row), free(st);
        image_free(out);
        return -1;
    }
    jpeg_create_decompress(&st->cinfo);
    jpeg_mem_src(&st->cinfo, data, (unsigned long)len);
    jpeg_read_header(&st->cinfo, TRUE);
    if (st->cinfo.num_components != 1 && st->cinfo.num_components != 3) {
        snprintf(err, errlen, "JPEG with %d color components (CMYK?) is not supported", st->cinfo.num_components);
        longjmp(st->jerr.jump, 1);
    }
    st->cinfo.out_color_space = st->cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    if (!size_ok((long)st->cinfo.image_width, (long)st->cinfo.image_height, err, errlen))
        longjmp(st->jerr.jump, 1);
    jpeg_start_decompress(&st->cinfo);
    int w = (int)st->cinfo.output_width, h = (int)st->cinfo.output_height, sc = st->cinfo.output_components;
    st->row = malloc((size_t)w * sc), out->px = malloc((size_t)w * h * channels);
    if (!st->row || !out->px) {
        snprintf(err, errlen, "out of memory for a %dx%d image", w, h);
        longjmp(st->jerr.jump, 1);
    }
    while (st->cinfo.output_scanline < st->cinfo.output_height) {
        int y = (int)st->cinfo.output_scanline;
        JSAMPROW rows[1] = {st->row};
        jpeg_read_scanlines(&st->cinfo, rows, 1);
        convert(st->row, sc, out->px + (size_t)y * w * channels, channels, (size_t)w);
    }
    jpeg_finish_decompress(&st->cinfo);
    jpeg_destroy_decompress(&st->cinfo);
    out->w = w, out->h = h, out->c = channels;
    free(st->row), free(st);
    return 0;
}

/* ---------------------------------------------------------------- PGM / PPM */

/* Skips whitespace and `#` comments (to the end of their line). */
static size_t skip_blanks(const uint8_t *s, size_t i, size_t n)
{
    while (i < n) {
        if (s[i] == '#')
            while (i < n && s[i] != '\n')
                i++;
        else if (isspace(s[i]))
            i++;
        else
            break;
    }
    return i;
}

/* A decimal number at s[*i], at most 65535; -1 when there is none. */
static long pnm_number(const uint8_t *s, size_t *i, size_t n)
{
    long v = 0;
    size_t start = *i;
    while (*i < n && isdigit(s[*i])) {
        v = v * 10 + (s[*i] - '0');
        if (v > 65535)
            return -1;
        (*i)++;
    }
    return *i == start ? -1 : v;
}

/* P2/P5 (gray) and P3/P6 (RGB), maxval up to 255 (rescaled to 255). */
static int pnm_decode(const uint8_t *s, size_t n, int channels, Image *out, char *err, size_t errlen)
{
    int plain = s[1] == '2' || s[1] == '3', sc = s[1] == '3' || s[1] == '6' ? 3 : 1;
    size_t i = 2;
    long v[3];
    for (int k = 0; k < 3; k++) {
        i = skip_blanks(s, i, n);
        if ((v[k] = pnm_number(s, &i, n)) <= 0) {
            static const char *const what[3] = {"width", "height", "maxval"};
            return snprintf(err, errlen, "bad PGM/PPM header: expected the %s as a positive number", what[k]), -1;
        }
    }
    if (v[2] > 255)
        return snprintf(err, errlen, "PGM/PPM maxval %ld is not supported (at most 255)", v[2]), -1;
    if (!size_ok(v[0], v[1], err, errlen))
        return -1;
    size_t npx = (size_t)v[0] * v[1], nval = npx * sc;
    uint8_t *raw = malloc(nval);
    if (!raw || !(out->px = malloc(npx * channels))) {
        free(raw);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    int rc = 0;
    if (!plain) {
        if (i >= n || !isspace(s[i]) || n - i - 1 != nval)
            rc = -1, snprintf(err, errlen, "the raster must hold exactly %zu bytes after the header, found %zu", nval,
                              i < n ? n - i - 1 : 0);
        else
            memcpy(raw, s + i + 1, nval);
    }
    for (size_t k = 0; plain && rc == 0 && k < nval; k++) {
        i = skip_blanks(s, i, n);
        long p = pnm_number(s, &i, n);
        if (p < 0 || p > v[2])
            rc = -1, snprintf(err, errlen, "value %zu: %s", k, p < 0 ? "missing or not a number" : "exceeds maxval");
        else
            raw[k] = (uint8_t)p;
    }
    if (rc == 0 && plain && skip_blanks(s, i, n) != n)
        rc = -1, snprintf(err, errlen, "trailing data after the %zu values of the image", nval);
    for (size_t k = 0; rc == 0 && v[2] != 255 && k < nval; k++)
        raw[k] = (uint8_t)((raw[k] * 255 + v[2] / 2) / v[2]);
    if (rc == 0) {
        convert(raw, sc, out->px, channels, npx);
        out->w = (int)v[0], out->h = (int)v[1], out->c = channels;
    } else {
        image_free(out);
    }
    free(raw);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

static int is_png(const uint8_t *d, size_t n) { return n >= 8 && memcmp(d, "\211PNG\r\n\032\n", 8) == 0; }
static int is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff; }
static int is_pnm(const uint8_t *d, size_t n) { return n >= 2 && d[0] == 'P' && d[1] >= '2' && d[1] <= '6' && d[1] != '4'; }

int image_decode(const uint8_t *data, size_t len, int channels, Image *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (is_png(data, len))
        return png_decode(data, len, channels, out, err, errlen);
    if (is_jpeg(data, len))
        return jpeg_decode(data, len, channels, out, err, errlen);
    if (is_pnm(data, len))
        return pnm_decode(data, len, channels, out, err, errlen);
    snprintf(err, errlen, "not an image bnni reads (PNG, JPEG, PGM or PPM)");
    return -1;
}

/* The whole file (at most IMAGE_MAX_FILE bytes); caller frees. NULL with err. */
static uint8_t *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(err, errlen, "cannot open: %s", strerror(errno)), NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap || cap > IMAGE_MAX_FILE)
            break;
        uint8_t *p = realloc(buf, cap * 2);
        if (!p)
            free(buf);
        buf = p, cap *= 2;
    }
    int bad = !buf || ferror(f) || n > IMAGE_MAX_FILE;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s", !buf ? "out of memory" : n > IMAGE_MAX_FILE ? "larger than 256 MiB" : "read error");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int image_read(const char *path, int channels, Image *out, char *err, size_t errlen)
{
    size_t n;
    memset(out, 0, sizeof *out);
    uint8_t *buf = slurp(path, &n, err, errlen);
    if (!buf)
        return -1;
    int rc = image_decode(buf, n, channels, out, err, errlen);
    free(buf);
    return rc;
}

static long be(const uint8_t *p, int bytes)
{
    long v = 0;
    for (int k = 0; k < bytes; k++)
        v = v << 8 | p[k];
    return v;
}

/* A JPEG's size from its first start-of-frame marker. */
static int jpeg_size(const uint8_t *d, size_t n, int *w, int *h)
{
    for (size_t i = 2; i + 9 < n;) {
        if (d[i] != 0xff)
            return -1;
        int m = d[i + 1];
        long seg = be(d + i + 2, 2);
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            *h = (int)be(d + i + 5, 2), *w = (int)be(d + i + 7, 2);
            return 0;
        }
        i += 2 + (size_t)seg;
    }
    return -1;
}

int image_size(const char *path, int *w, int *h, char *err, size_t errlen)
{
    Image im;
    uint8_t head[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(err, errlen, "cannot open: %s", strerror(errno)), -1;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (is_png(head, n) && n >= 24 && memcmp(head + 12, "IHDR", 4) == 0) {
        *w = (int)be(head + 16, 4), *h = (int)be(head + 20, 4);
        return size_ok(*w, *h, err, errlen) ? 0 : -1;
    }
    if (is_jpeg(head, n) && jpeg_size(head, n, w, h) == 0)
        return size_ok(*w, *h, err, errlen) ? 0 : -1;
    if (image_read(path, 1, &im, err, errlen) < 0) /* PGM/PPM, or a header beyond 64 KiB: decode it */
        return -1;
    *w = im.w, *h = im.h;
    image_free(&im);
    return 0;
}

int image_to_chw(const Image *im, int w, int h, uint8_t *dst, char *err, size_t errlen)
{
    const uint8_t *src = im->px;
    uint8_t *resized = NULL;
    if (im->w != w || im->h != h) {
        if (!(resized = malloc((size_t)w * h * im->c)))
            return snprintf(err, errlen, "out of memory resizing an image"), -1;
        /* Mitchell when shrinking, Catmull-Rom when enlarging (stb's defaults), edges clamped, on the bytes as they
         * are (no sRGB linearisation: the network sees the values the file holds). */
        if (!stbir_resize_uint8_generic(im->px, im->w, im->h, 0, resized, w, h, 0, im->c, STBIR_ALPHA_CHANNEL_NONE, 0,
                                        STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_LINEAR, NULL)) {
            free(resized);
            return snprintf(err, errlen, "out of memory resizing an image"), -1;
        }
        src = resized;
    }
    size_t plane = (size_t)w * h;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < im->c; c++)
            dst[(size_t)c * plane + p] = src[p * im->c + c];
    free(resized);
    return 0;
}

int image_name_ok(const char *name)
{
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm"};
    size_t n = strlen(name);
    for (size_t k = 0; k < sizeof ext / sizeof *ext; k++) {
        size_t e = strlen(ext[k]);
        if (n > e && strcasecmp(name + n - e, ext[k]) == 0)
            return 1;
    }
    return 0;
}
