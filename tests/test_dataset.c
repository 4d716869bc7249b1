/* Data sets: loading the four IDX files (gzipped or not) with their cross-checks, the normalisation
 * statistics (against hand-computed values and Fashion-MNIST's published mean/std), the Fisher-Yates
 * permutation and batch conversion, including the last partial batch. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data/dataset.h"
#include "runtime/data/stream.h"
#include "tests/support.h"

/* The `standard` statistics of every item of a one-channel set (dataset_stats over all items). */
static void pixel_stats(const Dataset *d, double *mean, double *std)
{
    double *m, *s;
    int nch;
    char err[128];
    cr_assert_eq(dataset_stats(d, NULL, d->count, &m, &s, &nch, err, sizeof err), 0, "%s", err);
    cr_assert_eq(nch, 1, "one channel, one pair of statistics");
    *mean = m[0], *std = s[0];
    free(m), free(s);
}

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "ds"); }

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(dataset, .init = make_dir, .fini = remove_dir);

static void put(const char *name, const void *bytes, size_t len, int gz)
{
    support_write_bytes(support_path(dir, name), bytes, len, gz);
}

static void be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

/* n images of 2x2 whose pixels are 0, 255, 51, 102 (/255: 0, 1, .2, .4) and labels i % 3. */
static void write_set(const char *prefix, int n, int nlabels, int gz)
{
    uint8_t img[16 + 4 * 64], lab[8 + 64];
    char name[128];
    be32(img, 0x803), be32(img + 4, (uint32_t)n), be32(img + 8, 2), be32(img + 12, 2);
    be32(lab, 0x801), be32(lab + 4, (uint32_t)nlabels);
    for (int i = 0; i < n; i++)
        img[16 + 4 * i] = 0, img[17 + 4 * i] = 255, img[18 + 4 * i] = 51, img[19 + 4 * i] = 102;
    for (int i = 0; i < nlabels; i++)
        lab[8 + i] = (uint8_t)(i % 3);
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    put(name, img, 16 + 4 * (size_t)n, gz);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    put(name, lab, 8 + (size_t)nlabels, gz);
}

static const Shape shape2 = {3, 1, 2, 2};

Test(dataset, loads_gzipped_and_plain_with_limit)
{
    write_set("train", 10, 10, 1);
    write_set("t10k", 6, 6, 0);
    Dataset tr, te;
    char err[512];
    cr_assert_eq(dataset_load(dir, 1, 4, shape2, 3, &tr, err, sizeof err), 0, "%s", err);
    cr_assert_eq(dataset_load(dir, 0, 0, shape2, 3, &te, err, sizeof err), 0, "%s", err);
    cr_expect_eq(tr.count, 4);
    cr_expect_eq(te.count, 6);
    cr_expect_eq(tr.labels[3], 0);
    cr_expect_eq(te.labels[5], 2);
    cr_expect_eq(tr.pixels[4 * 3 + 1], 255);
    dataset_free(&tr);
    dataset_free(&te);
}

/* Items 2..4 of a streamed set, read from the file: each 0, 255, 51, 102. */
static void expect_streamed_items(Dataset *d)
{
    int ids[3] = {4, 2, 3};
    uint8_t px[12];
    char err[512];
    cr_assert_eq(stream_read(d->stream, ids, 3, px, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 3; k++)
        cr_expect(px[4 * k] == 0 && px[4 * k + 1] == 255 && px[4 * k + 2] == 51 && px[4 * k + 3] == 102,
                  "item %d: %d %d %d %d", ids[k], px[4 * k], px[4 * k + 1], px[4 * k + 2], px[4 * k + 3]);
    ids[0] = 5; /* past the limit */
    cr_expect_eq(stream_read(d->stream, ids, 1, px, err, sizeof err), -1, "item 5 of 5 was read");
    cr_expect(strstr(err, "cannot read item 5"), "%s", err);
}

Test(dataset, plain_files_stream_and_gzipped_ones_load_whole)
{
    write_set("train", 10, 10, 0);
    write_set("t10k", 6, 6, 1);
    Dataset tr, te;
    char err[512];
    cr_assert_eq(dataset_open(dir, 1, 5, 1, shape2, 3, &tr, err, sizeof err), 0, "%s", err);
    cr_assert(tr.stream && !tr.pixels, "a plain file asked to stream is read per batch");
    cr_expect(tr.count == 5 && tr.labels[4] == 1, "the labels are in memory, limited");
    expect_streamed_items(&tr);
    dataset_free(&tr);
    cr_assert_eq(dataset_open(dir, 0, 0, 1, shape2, 3, &te, err, sizeof err), 0, "%s", err);
    cr_expect(!te.stream && te.pixels && te.count == 6, "a gzipped file cannot be read at offsets: loaded whole");
    dataset_free(&te);
    /* A plain file of the wrong size is not streamed: the whole read names the damage. */
    write_set("train", 10, 10, 0);
    support_copy_file(support_path(dir, "train-images-idx3-ubyte"), support_path(dir, "cut"), 16 + 4 * 9);
    rename(support_path(dir, "cut"), support_path(dir, "train-images-idx3-ubyte"));
    cr_assert_eq(dataset_open(dir, 1, 0, 1, shape2, 3, &tr, err, sizeof err), -1, "a cut file was accepted");
    cr_expect(strstr(err, "train-images-idx3-ubyte: truncated"), "%s", err);
}

static void expect_load_error(int train, Shape s, int classes, const char *needle, const char *needle2)
{
    Dataset d;
    char err[512] = "";
    cr_assert_eq(dataset_load(dir, train, 0, s, classes, &d, err, sizeof err), -1, "accepted");
    cr_expect(strstr(err, needle), "'%s' lacks '%s'", err, needle);
    if (needle2)
        cr_expect(strstr(err, needle2), "'%s' lacks '%s'", err, needle2);
}

Test(dataset, cross_checks)
{
    write_set("train", 5, 4, 1);
    expect_load_error(1, shape2, 3, "train-labels-idx1-ubyte.gz: holds 4 labels", "holds 5 images");
    write_set("train", 5, 5, 1);
    expect_load_error(1, shape2, 2, "label 2 of image 2 is outside [0, 2)", NULL);
    expect_load_error(1, (Shape){3, 1, 28, 28}, 3, "images are 1x2x2, the model's input is 1x28x28", NULL);
    expect_load_error(0, shape2, 3, "t10k-images-idx3-ubyte.gz: cannot open", "No such file");
}

Test(dataset, pixel_stats_by_hand)
{
    write_set("train", 3, 3, 0);
    Dataset d;
    char err[512];
    cr_assert_eq(dataset_load(dir, 1, 0, shape2, 3, &d, err, sizeof err), 0, "%s", err);
    double mean, std;
    pixel_stats(&d, &mean, &std);
    /* values 0, 1, .2, .4: mean .4, variance (.16 + .36 + .04 + 0) / 4 = .14 */
    cr_expect_float_eq(mean, 0.4, 1e-12);
    cr_expect_float_eq(std, sqrt(0.14), 1e-12);
    Normalizer nz;
    norm_init(&nz, mean, std);
    cr_expect_float_eq(nz.lut[255], (float)(0.6 / sqrt(0.14)), 1e-6);
    dataset_free(&d);
}

Test(dataset, fashion_mnist_published_statistics, .timeout = 30)
{
    Dataset d;
    char err[512];
    Shape s = {3, 1, 28, 28};
    cr_assert_eq(dataset_load(NULL, 1, 0, s, 10, &d, err, sizeof err), 0, "%s", err);
    cr_expect_eq(d.count, 60000);
    double mean, std;
    pixel_stats(&d, &mean, &std);
    /* The values everyone normalises Fashion-MNIST with (numpy over the 47,040,000 pixels). */
    cr_expect_float_eq(mean, 0.2860405969887955, 1e-9);
    cr_expect_float_eq(std, 0.35302424451492237, 1e-9);
    dataset_free(&d);
    cr_assert_eq(dataset_load(NULL, 1, 2000, s, 10, &d, err, sizeof err), 0, "%s", err);
    pixel_stats(&d, &mean, &std);
    cr_expect_float_eq(mean, 0.28393829281712685, 1e-9);
    cr_expect_float_eq(std, 0.3535018563091379, 1e-9);
    dataset_free(&d);
}

Test(dataset, permutation_is_uniform_and_seeded)
{
    int order[5], again[5], counts[5][5] = {{0}};
    Rng r, r2;
    rng_seed(&r, 7);
    rng_seed(&r2, 7);
    dataset_permutation(order, 5, &r);
    dataset_permutation(again, 5, &r2);
    cr_expect_arr_eq(order, again, sizeof order);
    int trials = 50000;
    for (int t = 0; t < trials; t++) {
        dataset_permutation(order, 5, &r);
        int seen = 0;
        for (int i = 0; i < 5; i++)
            counts[i][order[i]]++, seen |= 1 << order[i];
        cr_assert_eq(seen, 31, "not a permutation");
    }
    /* Every value lands in every slot with probability 1/5: 10,000 +- 5 sigma (sigma ~ 89). */
    for (int i = 0; i < 5; i++)
        for (int v = 0; v < 5; v++)
            cr_expect(abs(counts[i][v] - trials / 5) < 450, "slot %d value %d: %d", i, v, counts[i][v]);
}

Test(dataset, batches_follow_the_order_and_the_last_is_partial)
{
    write_set("train", 5, 5, 0);
    Dataset d;
    char err[512];
    cr_assert_eq(dataset_load(dir, 1, 0, shape2, 3, &d, err, sizeof err), 0, "%s", err);
    d.pixels[4 * 4] = 200; /* mark image 4 */
    Normalizer nz;
    norm_init(&nz, 0.5, 0.25);
    Tensor x;
    int labels[3], order[5] = {4, 3, 2, 1, 0};
    cr_assert_eq(tensor_alloc(&x, 3, 1, 2, 2), 0);
    dataset_batch(&d, order, 3, 2, &nz, &x, labels);
    cr_expect_eq(x.n, 2);
    cr_expect_eq(labels[0], 1);
    cr_expect_eq(labels[1], 0);
    cr_expect_float_eq(x.data[1], (float)((1.0 - 0.5) / 0.25), 1e-6);
    dataset_batch(&d, order, 0, 3, &nz, &x, labels);
    cr_expect_eq(x.n, 3);
    cr_expect_float_eq(x.data[0], (float)((200 / 255.0 - 0.5) / 0.25), 1e-6);
    cr_expect_eq(labels[0], 4 % 3);
    tensor_free(&x);
    dataset_free(&d);
}
