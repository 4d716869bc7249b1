/* Gathering predict's inputs (inputs.h): a file is told by its first bytes -- HDF5, IDX (gzipped or not), else an
 * image -- a directory by its entries' names (.png, .jpg, .jpeg, .pgm, .ppm, .pnm, sorted). */
#include "inputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5data.h"
#include "idx.h"
#include "image.h"

void inputs_free(InputSet *s)
{
    for (int i = 0; s->names && i < s->d.count; i++)
        free(s->names[i]);
    free(s->names);
    dataset_free(&s->d);
    memset(s, 0, sizeof *s);
}

static size_t item_bytes(const InputSet *s)
{
    return (size_t)s->d.shape.c * s->d.shape.h * s->d.shape.w * (s->d.dtype == DT_U8 ? 1 : sizeof(float));
}

/* Room for n more items; returns where the first goes, or NULL when out of memory. */
static void *room(InputSet *s, int n)
{
    if (s->d.count + n > s->cap) {
        int cap = s->cap ? s->cap : 64;
        while (cap < s->d.count + n)
            cap *= 2;
        void **v = s->d.dtype == DT_U8 ? (void **)&s->d.pixels : (void **)&s->d.values;
        void *p = realloc(*v, (size_t)cap * item_bytes(s));
        char **names = p ? realloc(s->names, (size_t)cap * sizeof *names) : NULL;
        if (p)
            *v = p;
        if (!names)
            return NULL;
        s->names = names, s->cap = cap;
    }
    return (char *)(s->d.dtype == DT_U8 ? (void *)s->d.pixels : (void *)s->d.values) + (size_t)s->d.count * item_bytes(s);
}

/* Takes n items' values from src (or, src NULL, already in place) named name, or name:index when several. */
static int append(InputSet *s, const char *name, const void *src, int n, int several, char *err, size_t errlen)
{
    void *dst = room(s, n);
    if (!dst)
        return snprintf(err, errlen, "%s: out of memory", name), -1;
    if (src)
        memcpy(dst, src, (size_t)n * item_bytes(s));
    for (int i = 0; i < n; i++) {
        size_t len = strlen(name) + 16;
        char *nm = malloc(len);
        if (!nm)
            return snprintf(err, errlen, "%s: out of memory", name), -1;
        if (several)
            snprintf(nm, len, "%s:%d", name, i);
        else
            snprintf(nm, len, "%s", name);
        s->names[s->d.count++] = nm;
    }
    return 0;
}

/* An image (decoded from data) resized to the model's input. */
static int add_image(InputSet *s, const char *name, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    Shape sh = s->d.shape;
    Image im;
    char why[512];
    if (sh.rank != 3 || (sh.c != 1 && sh.c != 3) || s->d.dtype != DT_U8)
        return snprintf(err, errlen, "%s: the model's input is not a gray or RGB image of bytes (it takes HDF5 files "
                        "with x)", name), -1;
    void *dst = room(s, 1);
    if (!dst)
        return snprintf(err, errlen, "%s: out of memory", name), -1;
    int rc = data ? image_decode(data, len, sh.c, &im, why, sizeof why) : image_read(name, sh.c, &im, why, sizeof why);
    if (rc == 0 && (rc = image_to_chw(&im, sh.w, sh.h, dst, why, sizeof why)) == 0)
        rc = append(s, name, NULL, 1, 0, err, errlen);
    else
        snprintf(err, errlen, "%s: %s", name, why);
    image_free(&im);
    return rc;
}

/* One image from standard input. */
static int add_stdin(InputSet *s, char *err, size_t errlen)
{
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap && cap <= IMAGE_MAX_FILE) {
            uint8_t *p = realloc(buf, cap * 2);
            if (!p)
                free(buf);
            buf = p, cap *= 2;
        }
    }
    if (!buf || n > IMAGE_MAX_FILE) {
        free(buf);
        return snprintf(err, errlen, "-: %s", buf ? "more than 256 MiB on standard input" : "out of memory"), -1;
    }
    int rc = add_image(s, "-", buf, n, err, errlen);
    free(buf);
    return rc;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every image file of a directory, by name. */
static int add_dir(InputSet *s, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return snprintf(err, errlen, "%s: cannot open the directory: %s", dir, strerror(errno)), -1;
    char **v = NULL;
    int n = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !image_name_ok(e->d_name))
            continue;
        if (n == cap) {
            char **p = realloc(v, (size_t)(cap ? cap * 2 : 64) * sizeof *p);
            if (!p) {
                rc = -1;
                break;
            }
            v = p, cap = cap ? cap * 2 : 64;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if ((v[n] = malloc(len)))
            snprintf(v[n++], len, "%s/%s", dir, e->d_name);
        else
            rc = -1;
    }
    closedir(d);
    if (rc < 0)
        snprintf(err, errlen, "%s: out of memory", dir);
    if (rc == 0 && n == 0)
        rc = -1, snprintf(err, errlen, "%s: holds no image files (.png, .jpg, .jpeg, .pgm, .ppm)", dir);
    if (v)
        qsort(v, (size_t)n, sizeof *v, by_name);
    for (int i = 0; i < n; i++) {
        if (rc == 0)
            rc = add_image(s, v[i], NULL, 0, err, errlen);
        free(v[i]);
    }
    free(v);
    return rc;
}

/* IDX images: the model's shape exactly (channels last in a 4-dimensional file are turned). */
static int add_idx(InputSet *s, const char *path, char *err, size_t errlen)
{
    IdxFile f;
    char why[512];
    Shape sh = s->d.shape;
    if (idx_read(path, IDX_IMAGES, 0, &f, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", path, why), -1;
    int rc = 0;
    if (sh.rank != 3 || s->d.dtype != DT_U8 || f.chans != sh.c || f.rows != sh.h || f.cols != sh.w)
        rc = -1, snprintf(err, errlen, "%s: images are %dx%dx%d, the model expects %dx%dx%d", path, f.chans, f.rows,
                          f.cols, sh.c, sh.h, sh.w);
    size_t size = (size_t)f.rows * f.cols * f.chans;
    uint8_t *chw = rc == 0 ? malloc(size * (size_t)f.count) : NULL;
    if (rc == 0 && !chw)
        rc = -1, snprintf(err, errlen, "%s: out of memory", path);
    for (int i = 0; rc == 0 && i < f.count; i++)
        if (f.chans > 1)
            for (size_t p = 0; p < (size_t)f.rows * f.cols; p++)
                for (int c = 0; c < f.chans; c++)
                    chw[i * size + (size_t)c * f.rows * f.cols + p] = f.data[i * size + p * f.chans + c];
        else
            memcpy(chw + i * size, f.data + i * size, size);
    if (rc == 0)
        rc = append(s, path, chw, f.count, 1, err, errlen);
    free(chw);
    idx_free(&f);
    return rc;
}

static int add_hdf5(InputSet *s, const char *path, int nhwc, char *err, size_t errlen)
{
    Dataset x;
    if (h5data_read_items(path, "x", nhwc, s->d.shape, s->d.dtype, &x, err, errlen) < 0)
        return -1;
    int rc = append(s, path, x.dtype == DT_U8 ? (const void *)x.pixels : (const void *)x.values, x.count, 1, err,
                    errlen);
    dataset_free(&x);
    return rc;
}

int inputs_add(InputSet *s, const char *arg, Shape shape, DataType dt, int nhwc, char *err, size_t errlen)
{
    struct stat st;
    uint8_t sig[8] = {0};
    s->d.shape = shape, s->d.dtype = dt;
    if (strcmp(arg, "-") == 0)
        return add_stdin(s, err, errlen);
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode))
        return add_dir(s, arg, err, errlen);
    FILE *f = fopen(arg, "rb");
    if (!f)
        return snprintf(err, errlen, "%s: cannot open: %s", arg, strerror(errno)), -1;
    size_t n = fread(sig, 1, sizeof sig, f);
    fclose(f);
    if (n == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0)
        return add_hdf5(s, arg, nhwc, err, errlen);
    if (n >= 4 && ((sig[0] == 0x1f && sig[1] == 0x8b) || (sig[0] == 0 && sig[1] == 0 && sig[2] == 8)))
        return add_idx(s, arg, err, errlen);
    return add_image(s, arg, NULL, 0, err, errlen);
}
