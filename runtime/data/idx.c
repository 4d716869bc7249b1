/* IDX and PGM readers. zlib's gzread reads gzipped and plain files alike, so one code path serves both;
 * the header is checked before any size in it is trusted, and the byte count must match it exactly. */
#include "idx.h"

#include "../tensor.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAX_COUNT 100000000u /* items: far above any real data set, far below overflow */
#define IDX_MAX_DIM 4096u
#define IDX_MAX_CHANS 64u
#define PGM_MAX_BYTES (16u << 20)

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads up to n bytes; returns how many, or -1 on corrupt gzip data (err set). A truncated gzip stream is
 * not an error here: it reads short, and the size check reports it with the byte counts. */
static long long read_full(gzFile gz, void *buf, size_t n, char *err, size_t errlen)
{
    size_t got = 0;
    while (got < n) {
        unsigned chunk = n - got > (1u << 30) ? 1u << 30 : (unsigned)(n - got);
        int r = gzread(gz, (char *)buf + got, chunk);
        if (r < 0) {
            int code;
            snprintf(err, errlen, "corrupt gzip data: %s", gzerror(gz, &code));
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* Reads up to `want` bytes into *buf (caller frees), growing it as data arrives: a header that
 * promises gigabytes costs nothing until the bytes are really there (a 41-byte file once asked for
 * 17 GB up front). Returns the byte count, -1 on corrupt data (err set), -2 when out of memory. */
static long long read_body(gzFile gz, size_t want, uint8_t **buf, char *err, size_t errlen)
{
    size_t len = 0, cap = 0;
    *buf = NULL;
    for (;;) {
        if (len == cap) {
            if (cap == want)
                break;
            size_t grown = cap ? cap * 2 : (size_t)1 << 20;
            cap = grown < want ? grown : want;
            uint8_t *p = realloc(*buf, cap ? cap : 1);
            if (!p)
                return -2;
            *buf = p;
            tensor_hint_huge_pages(p + len, cap - len); /* the images are read at random, batch by batch */
        }
        long long r = read_full(gz, *buf + len, cap - len, err, errlen);
        if (r < 0)
            return -1;
        len += (size_t)r;
        if (len < cap)
            break; /* end of data: check_size reports the truncation */
    }
    return (long long)len;
}

/* Reads and discards the rest of the stream; returns the byte count, or -1 on corrupt data. */
static long long skip_rest(gzFile gz, char *err, size_t errlen)
{
    char scratch[1 << 16];
    long long total = 0, r;
    while ((r = read_full(gz, scratch, sizeof scratch, err, errlen)) > 0)
        total += r;
    return r < 0 ? -1 : total;
}

static const char *kind_name(IdxKind k) { return k == IDX_IMAGES ? "image" : "label"; }

/* The header's length for a file starting with magic (images: 16, or 20 with channels; labels: 8). */
static size_t header_len(IdxKind kind, uint32_t magic)
{
    return kind == IDX_LABELS ? 8 : magic == IDX_MAGIC_IMAGES4 ? 20 : 16;
}

static int check_header(const uint8_t *h, long long got, IdxKind kind, size_t *hlen, char *err, size_t errlen)
{
    uint32_t want = kind == IDX_IMAGES ? IDX_MAGIC_IMAGES : IDX_MAGIC_LABELS;
    uint32_t other = kind == IDX_IMAGES ? IDX_MAGIC_LABELS : IDX_MAGIC_IMAGES;
    if (got < 4) {
        snprintf(err, errlen, "not an IDX file: only %lld bytes", got);
        return -1;
    }
    uint32_t magic = be32(h);
    if (magic == other || (kind == IDX_LABELS && magic == IDX_MAGIC_IMAGES4)) {
        snprintf(err, errlen, "is an IDX %s file (magic 0x%08x), expected an IDX %s file (magic 0x%08x)",
                 kind_name(kind == IDX_IMAGES ? IDX_LABELS : IDX_IMAGES), magic, kind_name(kind), want);
        return -1;
    }
    if (magic != want && !(kind == IDX_IMAGES && magic == IDX_MAGIC_IMAGES4)) {
        snprintf(err, errlen, "bad magic number 0x%08x: an IDX %s file starts with 0x%08x", magic, kind_name(kind),
                 want);
        return -1;
    }
    *hlen = header_len(kind, magic);
    if ((size_t)got < *hlen) {
        snprintf(err, errlen, "truncated: expected at least %zu header bytes, found %lld", *hlen, got);
        return -1;
    }
    uint32_t count = be32(h + 4);
    if (count == 0 || count > IDX_MAX_COUNT) {
        snprintf(err, errlen, "implausible %s count %u in the header", kind_name(kind), count);
        return -1;
    }
    if (kind == IDX_IMAGES) {
        uint32_t rows = be32(h + 8), cols = be32(h + 12), chans = *hlen == 20 ? be32(h + 16) : 1;
        if (rows == 0 || cols == 0 || rows > IDX_MAX_DIM || cols > IDX_MAX_DIM) {
            snprintf(err, errlen, "implausible image size %ux%u in the header", rows, cols);
            return -1;
        }
        if (chans == 0 || chans > IDX_MAX_CHANS) {
            snprintf(err, errlen, "implausible channel count %u in the header", chans);
            return -1;
        }
    }
    return 0;
}

/* The exact-size check, after the kept items were read: reads the rest and compares with the header. */
static int check_size(gzFile gz, unsigned long long expected, unsigned long long found, char *err, size_t errlen)
{
    long long rest = skip_rest(gz, err, errlen);
    if (rest < 0)
        return -1;
    found += (unsigned long long)rest;
    int code = Z_OK;
    gzerror(gz, &code);
    if (found == expected && code == Z_BUF_ERROR) {
        snprintf(err, errlen, "truncated: all %llu bytes are there but the gzip stream ends early", expected);
        return -1;
    }
    if (found == expected)
        return 0;
    const char *how = gzdirect(gz) ? "" : " after decompression";
    if (found < expected)
        snprintf(err, errlen, "truncated: expected %llu bytes, found %llu%s%s", expected, found, how,
                 code == Z_BUF_ERROR ? " (the gzip stream ends early)" : "");
    else
        snprintf(err, errlen, "size mismatch: the header promises %llu bytes, found %llu%s (trailing data)", expected,
                 found, how);
    return -1;
}

/* Opens path and reads and checks its header; returns the stream (caller closes) or NULL with err. */
static gzFile open_checked(const char *path, IdxKind kind, IdxFile *out, size_t *hlen, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        snprintf(err, errlen, "cannot open: %s", errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(gz, 1 << 17);
    uint8_t h[20];
    /* The shorter header first: a 3-dimensional file may hold only its 16 header bytes and one image of 4. */
    long long got = read_full(gz, h, kind == IDX_IMAGES ? 16 : 8, err, errlen), more = 0;
    if (got == 16 && be32(h) == IDX_MAGIC_IMAGES4 && (more = read_full(gz, h + 16, 4, err, errlen)) > 0)
        got += more;
    if (got < 0 || more < 0 || check_header(h, got, kind, hlen, err, errlen) < 0) {
        gzclose(gz);
        return NULL;
    }
    out->total = (int)be32(h + 4);
    out->rows = kind == IDX_IMAGES ? (int)be32(h + 8) : 1;
    out->cols = kind == IDX_IMAGES ? (int)be32(h + 12) : 1;
    out->chans = *hlen == 20 ? (int)be32(h + 16) : 1;
    return gz;
}

int idx_read_header(const char *path, IdxKind kind, IdxFile *out, char *err, size_t errlen)
{
    size_t hlen;
    gzFile gz = open_checked(path, kind, out, &hlen, err, errlen);
    if (!gz)
        return -1;
    gzclose(gz);
    return 0;
}

long long idx_raw_offset(const char *path, IdxKind kind, IdxFile *out)
{
    size_t hlen;
    char why[512];
    struct stat st;
    gzFile gz = open_checked(path, kind, out, &hlen, why, sizeof why);
    if (!gz)
        return -1;
    int plain = gzdirect(gz);
    gzclose(gz);
    size_t item = (size_t)out->rows * out->cols * out->chans;
    unsigned long long size = hlen + (unsigned long long)out->total * item;
    if (!plain || stat(path, &st) != 0 || (unsigned long long)st.st_size != size)
        return -1;
    return (long long)hlen;
}

int idx_read(const char *path, IdxKind kind, long long limit, IdxFile *out, char *err, size_t errlen)
{
    size_t hlen;
    gzFile gz = open_checked(path, kind, out, &hlen, err, errlen);
    if (!gz)
        return -1;
    size_t item = (size_t)out->rows * out->cols * out->chans;
    out->count = limit > 0 && limit < out->total ? (int)limit : out->total;
    long long body = read_body(gz, (size_t)out->count * item, &out->data, err, errlen);
    if (body == -2)
        snprintf(err, errlen, "out of memory for %d %ss of %zu bytes", out->count, kind_name(kind), item);
    if (body < 0)
        goto fail;
    unsigned long long expected = hlen + (unsigned long long)out->total * item;
    if (check_size(gz, expected, hlen + (unsigned long long)body, err, errlen) < 0)
        goto fail;
    gzclose(gz);
    return 0;
fail:
    gzclose(gz);
    idx_free(out);
    return -1;
}

void idx_free(IdxFile *f)
{
    free(f->data);
    memset(f, 0, sizeof *f);
}

/* ---- PGM ---- */

/* Skips whitespace and `#` comments (to the end of their line). */
static size_t skip_space(const char *s, size_t i, size_t n)
{
    while (i < n) {
        if (s[i] == '#')
            while (i < n && s[i] != '\n')
                i++;
        else if (isspace((unsigned char)s[i]))
            i++;
        else
            break;
    }
    return i;
}

/* Parses a decimal number at s[*i]; returns it, or -1 when there is none or it exceeds 65535. */
static long number(const char *s, size_t *i, size_t n)
{
    long v = 0;
    size_t start = *i;
    while (*i < n && isdigit((unsigned char)s[*i])) {
        v = v * 10 + (s[*i] - '0');
        if (v > 65535)
            return -1;
        (*i)++;
    }
    return *i == start ? -1 : v;
}

/* The whole file, at most PGM_MAX_BYTES; caller frees. NULL with err on failure. */
static char *slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(PGM_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, PGM_MAX_BYTES + 1, f) : 0;
    int bad = !buf || ferror(f) || n > PGM_MAX_BYTES;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s",
                 !buf ? "out of memory" : n > PGM_MAX_BYTES ? "too large for a PGM image" : "read error");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int pgm_parse(const char *s, size_t n, int rows, int cols, uint8_t *px, char *err, size_t errlen)
{
    if (n < 2 || s[0] != 'P' || (s[1] != '5' && s[1] != '2')) {
        snprintf(err, errlen, "not a PGM image (it must start with P5 or P2)");
        return -1;
    }
    int plain = s[1] == '2';
    size_t i = 2;
    long v[3];
    for (int k = 0; k < 3; k++) {
        i = skip_space(s, i, n);
        if ((v[k] = number(s, &i, n)) <= 0) {
            static const char *const what[3] = {"width", "height", "maxval"};
            snprintf(err, errlen, "bad PGM header: expected the %s as a positive number", what[k]);
            return -1;
        }
    }
    if (v[2] > 255) {
        snprintf(err, errlen, "PGM maxval %ld is not supported (at most 255)", v[2]);
        return -1;
    }
    if (v[0] != cols || v[1] != rows) {
        snprintf(err, errlen, "image is %ldx%ld, the model expects %dx%d", v[0], v[1], cols, rows);
        return -1;
    }
    size_t npx = (size_t)rows * cols;
    if (!plain) {
        if (i >= n || !isspace((unsigned char)s[i]) || n - i - 1 != npx) {
            snprintf(err, errlen, "P5 raster must hold exactly %zu bytes after the header, found %zu", npx,
                     i < n ? n - i - 1 : 0);
            return -1;
        }
        memcpy(px, s + i + 1, npx);
    } else {
        for (size_t k = 0; k < npx; k++) {
            i = skip_space(s, i, n);
            long p = number(s, &i, n);
            if (p < 0 || p > v[2]) {
                snprintf(err, errlen, "P2 pixel %zu: %s", k, p < 0 ? "missing or not a number" : "exceeds maxval");
                return -1;
            }
            px[k] = (uint8_t)p;
        }
        if (skip_space(s, i, n) != n) {
            snprintf(err, errlen, "trailing data after the %zu pixels of the P2 image", npx);
            return -1;
        }
    }
    if (v[2] != 255)
        for (size_t k = 0; k < npx; k++)
            px[k] = (uint8_t)((px[k] * 255 + v[2] / 2) / v[2]);
    return 0;
}

int pgm_read(const char *path, int rows, int cols, uint8_t *pixels, char *err, size_t errlen)
{
    size_t n;
    char *s = slurp(path, &n, err, errlen);
    if (!s)
        return -1;
    int rc = pgm_parse(s, n, rows, cols, pixels, err, errlen);
    free(s);
    return rc;
}

int idx_read_any_images(const char *path, int rows, int cols, IdxFile *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char sig[2] = {0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t n = fread(sig, 1, 2, f);
    fclose(f);
    if (n == 2 && sig[0] == 'P' && (sig[1] == '5' || sig[1] == '2')) {
        out->data = malloc((size_t)rows * cols);
        if (!out->data) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        out->count = out->total = 1, out->rows = rows, out->cols = cols, out->chans = 1;
        if (pgm_read(path, rows, cols, out->data, err, errlen) < 0) {
            idx_free(out);
            return -1;
        }
        return 0;
    }
    if (idx_read(path, IDX_IMAGES, 0, out, err, errlen) < 0)
        return -1;
    if (out->rows != rows || out->cols != cols) {
        snprintf(err, errlen, "images are %dx%d, the model expects %dx%d", out->rows, out->cols, rows, cols);
        idx_free(out);
        return -1;
    }
    return 0;
}
