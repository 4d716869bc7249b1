/* What every data kind shares: the validation split (runtime/data/split.c), augmentation (augment.c, against a
 * padding-then-slicing reference written here), per-channel statistics and normalisation (dataset.c), batches
 * through a subset of the items, and the idx kind (4-dimensional files, the class count from the labels) and its
 * presets. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data/augment.h"
#include "runtime/data/split.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "datacommon"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_common, .init = make_dir, .fini = remove_dir, .timeout = 60);

Test(data_common, validation_counts)
{
    cr_expect_eq(split_count(0.1, 1000), 100);
    cr_expect_eq(split_count(0.15, 10), 2, "1.5 items round to 2");
    cr_expect_eq(split_count(0.14, 10), 1);
    cr_expect_eq(split_count(5000, 60000), 5000, "a count is a count");
    cr_expect_eq(split_count(0.001, 100), 0);
}

Test(data_common, the_split_is_the_seeds_and_uniform)
{
    int *tr, *va, *tr2, *va2;
    cr_assert_eq(split_items(50, 10, 7, &tr, &va), 0);
    cr_assert_eq(split_items(50, 10, 7, &tr2, &va2), 0);
    cr_expect_arr_eq(va, va2, 10 * sizeof *va, "the same seed holds out the same items");
    int seen[50] = {0};
    for (int i = 0; i < 40; i++) {
        seen[tr[i]]++;
        cr_expect(i == 0 || tr[i] > tr[i - 1], "training items ascending");
    }
    for (int i = 0; i < 10; i++) {
        seen[va[i]] += 2;
        cr_expect(i == 0 || va[i] > va[i - 1], "validation items ascending");
    }
    for (int i = 0; i < 50; i++)
        cr_expect(seen[i] == 1 || seen[i] == 2, "item %d is in exactly one list", i);
    free(tr2), free(va2);
    cr_assert_eq(split_items(50, 10, 8, &tr2, &va2), 0);
    cr_expect(memcmp(va, va2, 10 * sizeof *va) != 0, "another seed, another split");
    free(tr), free(va), free(tr2), free(va2);
    /* Every item is held out with probability 10/50 over seeds: 2000 draws, 400 +- 5 sigma (sigma ~ 18). */
    int held[50] = {0};
    for (uint64_t seed = 0; seed < 2000; seed++) {
        cr_assert_eq(split_items(50, 10, seed, &tr, &va), 0);
        for (int i = 0; i < 10; i++)
            held[va[i]]++;
        free(tr), free(va);
    }
    for (int i = 0; i < 50; i++)
        cr_expect(abs(held[i] - 400) < 90, "item %d held out %d times of 2000", i, held[i]);
}

/* The reference: pad C x H x W with p zeros on every side, take the H x W window at (dy, dx), flip it. */
static void reference(const uint8_t *src, int C, int H, int W, int p, int flip, int dx, int dy, uint8_t *out)
{
    int PH = H + 2 * p, PW = W + 2 * p;
    uint8_t *pad = calloc((size_t)C * PH * PW, 1);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            memcpy(pad + ((size_t)c * PH + y + p) * PW + p, src + ((size_t)c * H + y) * W, (size_t)W);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t v = pad[((size_t)c * PH + y + dy) * PW + x + dx];
                out[((size_t)c * H + y) * W + (flip ? W - 1 - x : x)] = v;
            }
    free(pad);
}

Test(data_common, augmentation_is_a_padded_crop_then_a_flip)
{
    enum { C = 2, H = 5, W = 7, CROP = 3 };
    uint8_t src[C * H * W], want[C * H * W];
    for (int i = 0; i < C * H * W; i++)
        src[i] = (uint8_t)(1 + i * 3); /* no zero inside the image: the padding is recognisable */
    Normalizer nz;
    norm_init(&nz, 0.0, 1.0);
    Augment a = {1, CROP, 42, 3};
    int flips = 0, dxs[2 * CROP + 1] = {0};
    float got[C * H * W];
    for (int item = 0; item < 400; item++) {
        int flip, dx, dy, f2, dx2, dy2;
        augment_draw(&a, item, &flip, &dx, &dy);
        augment_draw(&a, item, &f2, &dx2, &dy2);
        cr_assert(flip == f2 && dx == dx2 && dy == dy2, "a draw depends only on seed, epoch and item");
        cr_assert(dx >= 0 && dx <= 2 * CROP && dy >= 0 && dy <= 2 * CROP);
        flips += flip, dxs[dx]++;
        augment_item(&a, item, (Shape){3, C, H, W}, &nz, DT_U8, src, got);
        reference(src, C, H, W, CROP, flip, dx, dy, want);
        for (int k = 0; k < C * H * W; k++)
            cr_assert_eq(got[k], nz.lut[want[k]], "item %d (flip %d, dx %d, dy %d) value %d", item, flip, dx, dy, k);
    }
    cr_expect(flips > 150 && flips < 250, "%d flips in 400", flips);
    for (int k = 0; k <= 2 * CROP; k++)
        cr_expect(dxs[k] > 20, "offset %d drawn %d times in 400", k, dxs[k]);
    int same = 0;
    for (int item = 0; item < 100; item++) {
        Augment b = a;
        b.epoch = 4;
        int f1, x1, y1, f2, x2, y2;
        augment_draw(&a, item, &f1, &x1, &y1), augment_draw(&b, item, &f2, &x2, &y2);
        same += f1 == f2 && x1 == x2 && y1 == y2;
    }
    cr_expect(same < 20, "another epoch draws anew (%d of 100 equal)", same);
}

/* Items of 2 channels of 2 bytes: channel 0 holds 0 and 255, channel 1 holds 51 and 102, then 3 items more. */
Test(data_common, standard_statistics_and_tables_are_per_channel)
{
    Dataset d = {.dtype = DT_U8, .count = 2, .shape = {3, 2, 1, 2}, .classes = 1};
    uint8_t px[8] = {0, 255, 51, 102, 255, 255, 0, 0};
    d.pixels = px;
    double *mean, *std;
    int nch;
    char err[128];
    cr_assert_eq(dataset_stats(&d, NULL, 2, &mean, &std, &nch, err, sizeof err), 0, "%s", err);
    cr_assert_eq(nch, 2);
    /* channel 0: 0, 1, 1, 1 -> mean .75, var .1875; channel 1: .2, .4, 0, 0 -> mean .15, var .0275 */
    cr_expect(fabs(mean[0] - 0.75) < 1e-12 && fabs(std[0] - sqrt(0.1875)) < 1e-12);
    cr_expect(fabs(mean[1] - 0.15) < 1e-12 && fabs(std[1] - sqrt(0.0275)) < 1e-12);
    int rows[1] = {1};
    free(mean), free(std);
    cr_assert_eq(dataset_stats(&d, rows, 1, &mean, &std, &nch, err, sizeof err), 0, "%s", err);
    cr_expect(mean[0] == 1.0 && std[0] == 0.0 && mean[1] == 0.0, "over item 1 alone");
    Normalizer nz;
    double m2[2] = {0.75, 0.15}, s2[2] = {0.5, 0.25};
    cr_assert_eq(norm_setup(&nz, NORM_STANDARD, DT_U8, d.shape, 2, m2, s2, err, sizeof err), 0, "%s", err);
    Tensor x;
    cr_assert_eq(tensor_alloc(&x, 1, 2, 1, 2), 0);
    cr_assert_eq(dataset_fill(&d, rows, NULL, 0, 1, &nz, NULL, &x, NULL, 0, NULL, err, sizeof err), 0);
    cr_expect_float_eq(x.data[0], (float)((1.0 - 0.75) / 0.5), 1e-7);
    cr_expect_float_eq(x.data[2], (float)((0.0 - 0.15) / 0.25), 1e-7);
    norm_free(&nz);
    cr_assert_eq(norm_setup(&nz, NORM_NONE, DT_U8, d.shape, 1, (double[]){0}, (double[]){1}, err, sizeof err), 0);
    cr_expect(nz.lut[200] == 200.0f, "none: the stored value");
    norm_free(&nz);
    tensor_free(&x);
    free(mean), free(std);
    /* floats: per feature, in double */
    float v[6] = {1, 10, 3, 20, 5, 60};
    Dataset f = {.dtype = DT_F32, .values = v, .count = 3, .shape = {1, 2, 1, 1}, .classes = 1};
    cr_assert_eq(dataset_stats(&f, NULL, 3, &mean, &std, &nch, err, sizeof err), 0, "%s", err);
    cr_expect(nch == 2 && mean[0] == 3.0 && mean[1] == 30.0);
    cr_expect(fabs(std[0] - sqrt(8.0 / 3)) < 1e-12 && fabs(std[1] - sqrt(1400.0 / 3)) < 1e-9);
    free(mean), free(std);
}

static void be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

Test(data_common, idx_kind_reads_channels_last_files_and_counts_classes)
{
    /* 4 RGB images of 2x3, stored channels last: value (i, y, x, c) = i*50 + y*10 + x*3 + c */
    uint8_t img[20 + 4 * 18], lab[8 + 4], tlab[8 + 2], timg[20 + 2 * 18];
    be32(img, 0x804), be32(img + 4, 4), be32(img + 8, 2), be32(img + 12, 3), be32(img + 16, 3);
    for (int i = 0; i < 4 * 18; i++) {
        int n = i / 18, y = i % 18 / 9, x = i % 9 / 3, c = i % 3;
        img[20 + i] = (uint8_t)(n * 50 + y * 10 + x * 3 + c);
    }
    memcpy(timg, img, 20 + 2 * 18), be32(timg + 4, 2);
    be32(lab, 0x801), be32(lab + 4, 4), lab[8] = 0, lab[9] = 2, lab[10] = 1, lab[11] = 2;
    be32(tlab, 0x801), be32(tlab + 4, 2), tlab[8] = 4, tlab[9] = 0;
    support_write_bytes(support_path(dir, "tr-img.gz"), img, sizeof img, 1);
    support_write_bytes(support_path(dir, "tr-lab"), lab, sizeof lab, 0);
    support_write_bytes(support_path(dir, "te-img"), timg, sizeof timg, 0);
    support_write_bytes(support_path(dir, "te-lab"), tlab, sizeof tlab, 0);
    DataSpec ds;
    Dataset d;
    datagen_spec(&ds, DK_IDX);
    datagen_set(&ds, "dir", dir, 0);
    datagen_set(&ds, "train_images", "tr-img", 0); /* found as tr-img.gz */
    datagen_set(&ds, "train_labels", "tr-lab", 0);
    datagen_set(&ds, "test_images", "te-img", 0);
    datagen_set(&ds, "test_labels", "te-lab", 0);
    datagen_load(&ds, DATA_TRAIN, 0, 0, &d);
    cr_expect(ds.shape.c == 3 && ds.shape.h == 2 && ds.shape.w == 3);
    cr_expect_eq(ds.classes, 5, "the largest label of either file, + 1");
    cr_expect(ds.ntrain == 4 && ds.ntest == 2 && ds.has_test);
    for (int n = 0; n < 4; n++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 3; x++)
                    cr_assert_eq(d.pixels[n * 18 + c * 6 + y * 3 + x], n * 50 + y * 10 + x * 3 + c);
    cr_expect(d.labels[1] == 2 && d.labels[3] == 2);
    dataset_free(&d);
    data_spec_clear(&ds);
    /* the presets know their shape, classes and names without a file */
    datagen_spec(&ds, DK_FASHION_MNIST);
    datagen_set(&ds, "path", "/nonexistent", 0);
    char err[128];
    cr_assert_eq(data_probe(&ds, err, sizeof err), 0, "%s", err);
    cr_expect(ds.classes == 10 && ds.shape.c == 1 && ds.shape.h == 28 && strcmp(ds.class_names[9], "Ankle boot") == 0);
    data_spec_clear(&ds);
    datagen_spec(&ds, DK_MNIST);
    cr_assert_eq(data_probe(&ds, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(ds.class_names[7], "7");
    data_spec_clear(&ds);
}

/* unit and none convert bytes by a vectorised division instead of the table: it must give the table's floats, the
 * seed's (float)(byte / 255.0), for every byte. */
Test(data_common, every_byte_converts_as_the_table_says)
{
    uint8_t px[256];
    for (int v = 0; v < 256; v++)
        px[v] = (uint8_t)v;
    Dataset d = {.dtype = DT_U8, .pixels = px, .count = 1, .shape = {3, 1, 16, 16}, .classes = 1};
    Tensor x;
    char err[128];
    cr_assert_eq(tensor_alloc(&x, 1, 1, 16, 16), 0);
    static const DataNorm kinds[2] = {NORM_UNIT, NORM_NONE};
    for (int k = 0; k < 2; k++) {
        Normalizer nz;
        cr_assert_eq(norm_setup(&nz, kinds[k], DT_U8, d.shape, 1, (double[]){0}, (double[]){1}, err, sizeof err), 0);
        cr_expect(nz.div != 0.0f, "the division path is taken");
        cr_assert_eq(dataset_fill(&d, NULL, NULL, 0, 1, &nz, NULL, &x, NULL, 0, NULL, err, sizeof err), 0);
        for (int v = 0; v < 256; v++)
            cr_assert_eq(x.data[v], kinds[k] == NORM_UNIT ? (float)(v / 255.0) : (float)v, "byte %d", v);
        norm_free(&nz);
    }
    tensor_free(&x);
}
