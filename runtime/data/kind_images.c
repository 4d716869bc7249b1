/* The `images` data kind: images(path, size=HxW, channels=3) -- image files (.png, .jpg, .jpeg, .pgm, .ppm) in
 * path/train/<class>/ and path/test/<class>/ (test/ optional), the class names being the folder names, sorted. Every image is decoded
 * and resized once per run, into memory (image.h), on all threads; an epoch never decodes. Without `size`, the
 * images keep their own size, which must then be the same for all. Items interleave the classes (the first image
 * of each class, then the second of each...), so `limit` keeps every class. */
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../threads.h"
#include "classes.h"
#include "image.h"
#include "kind.h"

enum { A_PATH, A_SIZE, A_CHANNELS, A_COMMON };

#define MAX_FILES (1 << 26)

static const ArgSpec args[] = {ARG_STR("path", NULL, NULL), ARG_SHAPE("size", "the images' own size"),
                               ARG_INT("channels", 0, 1, 3, 3), DATA_COMMON_ARGS("unit")};

/* Names in a directory (sorted by strcmp): its subdirectories (dirs) or its image files; hidden ones skipped. */
typedef struct Names {
    char **v;
    int n, cap;
} Names;

static void names_free(Names *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_dir(const char *dir, int dirs, Names *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d)
        return snprintf(err, errlen, "%s: cannot open the directory: %s", dir, strerror(errno)), -1;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        if (e->d_name[0] == '.' || snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode) || !image_name_ok(e->d_name)))
            continue;
        if (out->n == (dirs ? DATA_MAX_CLASSES : MAX_FILES))
            rc = -1, snprintf(err, errlen, "%s: more than %d %s", dir, dirs ? DATA_MAX_CLASSES : MAX_FILES,
                              dirs ? "class folders" : "images");
        else if (out->n == out->cap) {
            int cap = out->cap ? out->cap * 2 : 64;
            char **p = realloc(out->v, (size_t)cap * sizeof *p);
            if (!p)
                rc = -1, snprintf(err, errlen, "out of memory");
            else
                out->v = p, out->cap = cap;
        }
        if (rc == 0 && !(out->v[out->n++] = strdup(e->d_name)))
            rc = -1, out->n--, snprintf(err, errlen, "out of memory");
    }
    closedir(d);
    if (rc < 0)
        names_free(out);
    else if (out->n > 1)
        qsort(out->v, (size_t)out->n, sizeof *out->v, by_str);
    return rc;
}

/* The images of a split in item order, with their labels (the class's index among ds's class names). */
typedef struct Items {
    char **paths; /* owned */
    int32_t *labels;
    int n;
} Items;

static void items_free(Items *it)
{
    for (int i = 0; i < it->n; i++)
        free(it->paths[i]);
    free(it->paths), free(it->labels);
    memset(it, 0, sizeof *it);
}

static const char *split_dir(const DataSpec *ds, DataSplit split, char *buf, size_t len)
{
    return data_join(ds->arg[A_PATH].str, split == DATA_TRAIN ? "train" : "test", buf, len);
}

static int class_of(char *const *names, int K, const char *name)
{
    char *const *hit = bsearch(&name, names, (size_t)K, sizeof *names, by_str);
    return hit ? (int)(hit - names) : -1;
}

/* Lists a split: every class folder (each must be one of `names` when names is not NULL) and its images,
 * interleaved; the first `limit` (0: all). */
static int list_items(const char *dir, char *const *names, int K, long long limit, Items *it, char *err, size_t errlen)
{
    Names classes;
    memset(it, 0, sizeof *it);
    if (list_dir(dir, 1, &classes, err, errlen) < 0)
        return -1;
    Names *files = calloc((size_t)(classes.n ? classes.n : 1), sizeof *files);
    long long total = 0;
    int rc = files ? 0 : -1, *label = calloc((size_t)(classes.n ? classes.n : 1), sizeof *label);
    for (int c = 0; rc == 0 && c < classes.n; c++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, classes.v[c]);
        label[c] = names ? class_of(names, K, classes.v[c]) : c;
        if (label[c] < 0)
            rc = -1, snprintf(err, errlen, "%s: '%s' is not one of the %d classes of the training images", dir,
                              classes.v[c], K);
        else if (list_dir(sub, 0, &files[c], err, errlen) < 0)
            rc = -1;
        else if (files[c].n == 0)
            rc = -1, snprintf(err, errlen, "%s: holds no images (.png, .jpg, .jpeg, .pgm, .ppm)", sub);
        else
            total += files[c].n;
    }
    if (rc == 0 && classes.n == 0)
        rc = -1, snprintf(err, errlen, "%s: holds no class folders (it needs %s/<class>/<image>)", dir, dir);
    total = limit > 0 && limit < total ? limit : total;
    if (rc == 0 && (!(it->paths = calloc((size_t)total, sizeof *it->paths)) ||
                    !(it->labels = malloc((size_t)total * sizeof *it->labels))))
        rc = -1, snprintf(err, errlen, "out of memory");
    for (int round = 0, more = 1; rc == 0 && more && it->n < total; round++) {
        more = 0;
        for (int c = 0; c < classes.n && it->n < total && rc == 0; c++) {
            if (round >= files[c].n)
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s/%s", dir, classes.v[c], files[c].v[round]);
            more = 1;
            if (!(it->paths[it->n] = strdup(path)))
                rc = -1, snprintf(err, errlen, "out of memory");
            else
                it->labels[it->n++] = label[c];
        }
    }
    for (int c = 0; files && c < classes.n; c++)
        names_free(&files[c]);
    free(files), free(label);
    names_free(&classes);
    if (rc < 0)
        items_free(it);
    return rc;
}

/* "32x32" (height x width) from size=; 0 when not given. */
static int parse_size(const DataSpec *ds, int *h, int *w, char *err, size_t errlen)
{
    const char *s = ds->arg[A_SIZE].str;
    char *end;
    *h = *w = 0;
    if (!s || !s[0])
        return 0;
    long a = strtol(s, &end, 10), b = *end == 'x' ? strtol(end + 1, &end, 10) : 0;
    if (*end || a < 1 || b < 1 || a > 4096 || b > 4096)
        return snprintf(err, errlen, "images: size=%s must be HEIGHTxWIDTH, each from 1 to 4096, such as 32x32", s),
               -1;
    *h = (int)a, *w = (int)b;
    return 0;
}

static int probe(DataSpec *ds, char *err, size_t errlen)
{
    char dir[4096], tdir[4096];
    int h, w, c = (int)ds->arg[A_CHANNELS].num;
    Items it, test;
    struct stat st;
    if (c == 2)
        return snprintf(err, errlen, "images: channels=2; it must be 1 (gray) or 3 (RGB)"), -1;
    if (parse_size(ds, &h, &w, err, errlen) < 0 || list_items(split_dir(ds, DATA_TRAIN, dir, sizeof dir), NULL, 0, 0,
                                                              &it, err, errlen) < 0)
        return -1;
    Names classes;
    int rc = list_dir(dir, 1, &classes, err, errlen);
    char why[512];
    if (rc == 0 && !h && image_size(it.paths[0], &w, &h, why, sizeof why) < 0)
        rc = -1, snprintf(err, errlen, "%s: %s", it.paths[0], why);
    if (rc == 0) {
        ds->shape = (Shape){3, c, h, w}, ds->dtype = DT_U8, ds->classes = classes.n, ds->ntrain = it.n;
        ds->class_names = classes.v, classes.v = NULL, classes.n = 0;
        ds->has_test = stat(split_dir(ds, DATA_TEST, tdir, sizeof tdir), &st) == 0;
        ds->ntest = 0;
        if (ds->has_test && (rc = list_items(tdir, ds->class_names, ds->classes, 0, &test, err, errlen)) == 0) {
            ds->ntest = test.n;
            items_free(&test);
        }
    }
    names_free(&classes);
    items_free(&it);
    return rc;
}

/* Decodes item i into d: the file at its size (checked) or resized. Returns 0, or -1 with "FILE: reason". */
static int decode(const DataSpec *ds, const Items *it, int i, int resize, Dataset *d, char *err, size_t errlen)
{
    Image im;
    char why[512];
    Shape s = ds->shape;
    if (image_read(it->paths[i], s.c, &im, why, sizeof why) < 0)
        return snprintf(err, errlen, "%s: %s", it->paths[i], why), -1;
    int rc = 0;
    if (!resize && (im.w != s.w || im.h != s.h))
        rc = -1, snprintf(err, errlen, "%s: image is %dx%d (width x height), the others are %dx%d (give size=HxW to "
                          "resize them all)", it->paths[i], im.w, im.h, s.w, s.h);
    else if (image_to_chw(&im, s.w, s.h, d->pixels + (size_t)i * s.c * s.h * s.w, why, sizeof why) < 0)
        rc = -1, snprintf(err, errlen, "%s: %s", it->paths[i], why);
    image_free(&im);
    return rc;
}

/* Every item decoded on the runtime's threads; the error reported is that of the first bad file in item order. */
static int decode_all(const DataSpec *ds, const Items *it, Dataset *d, char *err, size_t errlen)
{
    int first_bad = it->n, resize = ds->arg[A_SIZE].str && ds->arg[A_SIZE].str[0];
#pragma omp parallel num_threads(rt_threads())
    {
        char why[1024];
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < it->n; i++) {
            int skip;
#pragma omp atomic read
            skip = first_bad;
            if (i > skip || decode(ds, it, i, resize, d, why, sizeof why) == 0)
                continue;
#pragma omp critical(images_error)
            if (i < first_bad) {
                first_bad = i;
                snprintf(err, errlen, "%s", why);
            }
        }
    }
    return first_bad < it->n ? -1 : 0;
}

static int load(const DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d, char *err,
                size_t errlen)
{
    (void)stream;
    char dir[4096];
    Items it;
    size_t size = (size_t)ds->shape.c * ds->shape.h * ds->shape.w;
    memset(d, 0, sizeof *d);
    if (list_items(split_dir(ds, split, dir, sizeof dir), ds->class_names, ds->classes, limit, &it, err, errlen) < 0)
        return -1;
    d->dtype = DT_U8, d->shape = ds->shape, d->classes = ds->classes, d->count = it.n;
    d->labels = it.labels, it.labels = NULL;
    int rc = (d->pixels = dataset_alloc_items(size * (size_t)it.n)) ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s: out of memory for %d images of %zu bytes", dir, it.n, size);
    if (rc == 0)
        rc = decode_all(ds, &it, d, err, errlen);
    items_free(&it);
    if (rc < 0)
        dataset_free(d);
    return rc;
}

const DataKindOps images_data = {
    .name = "images",
    .args = args,
    .nargs = A_COMMON + DATA_NCOMMON,
    .where = A_PATH,
    .probe = probe,
    .load = load,
};
