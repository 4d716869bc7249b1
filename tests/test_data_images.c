/* Images (runtime/data/image.c) and the images data kind (kind_images.c) on files written here with libpng and
 * libjpeg and by hand (PGM/PPM): exact pixels, BT.601 gray, resizing, the class folders and their item order, and
 * every bad file named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/data/image.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "images"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_images, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* A w x h RGB image whose pixel (x, y) is (x * 40 + y, y * 50 + 3, 255 - x * y). */
static uint8_t *pattern(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 40 + y), p[1] = (uint8_t)(y * 50 + 3), p[2] = (uint8_t)(255 - x * y);
        }
    return px;
}

static int gray(const uint8_t *p) { return (77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8; }

/* The decoded image against the pattern, within tol (JPEG is lossy). */
static void expect_pattern(const char *what, const Image *im, const uint8_t *want, int w, int h, int c, int tol)
{
    cr_assert(im->w == w && im->h == h && im->c == c, "%s: %dx%dx%d", what, im->w, im->h, im->c);
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < c; k++) {
            int expect = c == 1 ? gray(want + i * 3) : want[i * 3 + k], got = im->px[i * c + k];
            cr_assert(abs(got - expect) <= tol, "%s: pixel %d channel %d is %d, want %d", what, i, k, got, expect);
        }
}

static void write_ppm(const char *name, const char *magic, int w, int h, const uint8_t *rgb)
{
    FILE *f = fopen(support_path(dir, name), "wb");
    int plain = magic[1] == '3', graym = magic[1] == '2' || magic[1] == '5';
    fprintf(f, "%s\n# a comment\n%d %d\n255\n", magic, w, h);
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < (graym ? 1 : 3); k++) {
            int v = graym ? gray(rgb + i * 3) : rgb[i * 3 + k];
            if (plain || magic[1] == '2')
                fprintf(f, "%d ", v);
            else
                fputc(v, f);
        }
    fclose(f);
}

Test(data_images, png_jpeg_pgm_ppm_decode_to_the_pixels_written)
{
    int w = 6, h = 5;
    uint8_t *rgb = pattern(w, h), *g = malloc((size_t)w * h), *rgba = malloc((size_t)w * h * 4);
    for (int i = 0; i < w * h; i++) {
        g[i] = (uint8_t)gray(rgb + i * 3);
        memcpy(rgba + i * 4, rgb + i * 3, 3), rgba[i * 4 + 3] = (uint8_t)(i * 9);
    }
    datagen_png(support_path(dir, "rgb.png"), w, h, 3, rgb);
    datagen_png(support_path(dir, "rgba.png"), w, h, 4, rgba);
    datagen_png(support_path(dir, "gray.png"), w, h, 1, g);
    datagen_jpeg(support_path(dir, "rgb.jpg"), w, h, 3, rgb, 100);
    write_ppm("p6.ppm", "P6", w, h, rgb), write_ppm("p3.ppm", "P3", w, h, rgb);
    write_ppm("p5.pgm", "P5", w, h, rgb), write_ppm("p2.pgm", "P2", w, h, rgb);
    static const struct {
        const char *file;
        int gray_file, tol;
    } cases[] = {{"rgb.png", 0, 0}, {"rgba.png", 0, 0}, {"p6.ppm", 0, 0}, {"p3.ppm", 0, 0}, {"rgb.jpg", 0, 8},
                 {"gray.png", 1, 0}, {"p5.pgm", 1, 0}, {"p2.pgm", 1, 0}};
    char err[256];
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        for (int c = 1; c <= 3; c += 2) {
            Image im;
            cr_assert_eq(image_read(support_path(dir, cases[k].file), c, &im, err, sizeof err), 0, "%s: %s",
                         cases[k].file, err);
            if (cases[k].gray_file && c == 3) /* gray to RGB copies the gray value */
                for (int i = 0; i < w * h; i++)
                    cr_assert(im.px[i * 3] == g[i] && im.px[i * 3 + 1] == g[i] && im.px[i * 3 + 2] == g[i]);
            else
                expect_pattern(cases[k].file, &im, rgb, w, h, c, cases[k].tol);
            int iw, ih;
            cr_assert_eq(image_size(support_path(dir, cases[k].file), &iw, &ih, err, sizeof err), 0, "%s", err);
            cr_expect(iw == w && ih == h, "%s: header says %dx%d", cases[k].file, iw, ih);
            image_free(&im);
        }
    free(rgb), free(g), free(rgba);
}

Test(data_images, resizing_keeps_a_constant_image_constant)
{
    uint8_t px[7 * 5 * 3], out[3 * 4 * 2];
    for (int i = 0; i < 7 * 5 * 3; i++)
        px[i] = (uint8_t)(i % 3 == 0 ? 200 : i % 3 == 1 ? 17 : 99);
    Image im = {7, 5, 3, px};
    char err[128];
    cr_assert_eq(image_to_chw(&im, 4, 2, out, err, sizeof err), 0, "%s", err);
    for (int p = 0; p < 8; p++)
        cr_expect(out[p] == 200 && out[8 + p] == 17 && out[16 + p] == 99, "pixel %d: %d %d %d", p, out[p], out[8 + p],
                  out[16 + p]);
    uint8_t same[7 * 5 * 3];
    cr_assert_eq(image_to_chw(&im, 7, 5, same, err, sizeof err), 0, "%s", err);
    for (int p = 0; p < 35; p++) /* the same size: the pixels, channels first */
        cr_expect(same[p] == px[p * 3] && same[35 + p] == px[p * 3 + 1] && same[70 + p] == px[p * 3 + 2]);
}

/* dir/split/cls/name: a w x h gray PNG of the single value v. */
static void put_image(const char *split, const char *cls, const char *name, int w, int h, int v)
{
    char path[512];
    uint8_t *px = malloc((size_t)w * h);
    memset(px, v, (size_t)w * h);
    snprintf(path, sizeof path, "%s/%s", dir, split);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, split, cls);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s/%s", dir, split, cls, name);
    datagen_png(path, w, h, 1, px);
    free(px);
}

static void spec(DataSpec *ds, const char *size, int channels)
{
    datagen_spec(ds, DK_IMAGES);
    datagen_set(ds, "path", dir, 0);
    if (size)
        datagen_set(ds, "size", size, 0);
    datagen_set(ds, "channels", NULL, channels);
}

Test(data_images, class_folders_interleave_in_name_order)
{
    /* classes b, a, c written in that order; a has 3 images, b 1, c 2; each image's value says which it is */
    put_image("train", "b", "only.png", 4, 3, 100);
    put_image("train", "a", "2.png", 4, 3, 12), put_image("train", "a", "0.png", 4, 3, 10);
    put_image("train", "a", "1.png", 4, 3, 11);
    put_image("train", "c", "x.png", 4, 3, 200), put_image("train", "c", "y.png", 4, 3, 201);
    support_write_text(support_path(dir, "train/a/notes.txt"), "not an image: skipped");
    put_image("test", "c", "t.png", 4, 3, 250);
    DataSpec ds;
    Dataset d;
    spec(&ds, NULL, 1);
    datagen_load(&ds, DATA_TRAIN, 0, 0, &d);
    cr_assert_eq(ds.classes, 3);
    cr_expect(strcmp(ds.class_names[0], "a") == 0 && strcmp(ds.class_names[1], "b") == 0 &&
              strcmp(ds.class_names[2], "c") == 0);
    cr_expect(ds.shape.c == 1 && ds.shape.h == 3 && ds.shape.w == 4, "the images' own size");
    cr_expect(ds.ntrain == 6 && ds.has_test && ds.ntest == 1);
    static const int values[6] = {10, 100, 200, 11, 201, 12}, labels[6] = {0, 1, 2, 0, 2, 0};
    cr_assert_eq(d.count, 6);
    for (int i = 0; i < 6; i++)
        cr_expect(d.pixels[i * 12 + 5] == values[i] && d.labels[i] == labels[i], "item %d: %d, label %d", i,
                  d.pixels[i * 12 + 5], d.labels[i]);
    dataset_free(&d);
    datagen_load(&ds, DATA_TRAIN, 4, 0, &d);
    cr_expect(d.count == 4 && d.labels[3] == 0, "limit 4: the first of every class, then a's second");
    dataset_free(&d);
    datagen_load(&ds, DATA_TEST, 0, 0, &d);
    cr_expect(d.count == 1 && d.labels[0] == 2 && d.pixels[0] == 250, "test/c is class 2 of train");
    dataset_free(&d);
    data_spec_clear(&ds);
    /* size= resizes every image and channels=3 copies the gray */
    put_image("train", "c", "big.png", 9, 7, 90);
    spec(&ds, "2x3", 3);
    datagen_load(&ds, DATA_TRAIN, 0, 0, &d);
    cr_expect(ds.shape.c == 3 && ds.shape.h == 2 && ds.shape.w == 3 && d.count == 7);
    for (int k = 0; k < 18; k++)
        cr_expect_eq(d.pixels[18 * 2 + k], 90, "the resized 9x7 image (c/big.png sorts first: item 2), value %d", k);
    dataset_free(&d);
    data_spec_clear(&ds);
}

static void expect_bad(const char *size, int channels, const char *needle)
{
    DataSpec ds;
    spec(&ds, size, channels);
    const char *err = datagen_error(&ds, 0);
    cr_expect(strstr(err, needle) && !strchr(err, '\n'), "'%s' lacks '%s'", err, needle);
    data_spec_clear(&ds);
}

Test(data_images, every_bad_image_is_named)
{
    expect_bad(NULL, 3, "train: cannot open the directory");
    put_image("train", "a", "0.png", 4, 3, 10), put_image("train", "b", "0.png", 4, 3, 20);
    put_image("train", "b", "1.png", 5, 3, 21);
    expect_bad(NULL, 3, "train/b/1.png: image is 5x3 (width x height), the others are 4x3");
    expect_bad(NULL, 2, "channels=2; it must be 1 (gray) or 3 (RGB)");
    expect_bad("0x3", 3, "size=0x3 must be HEIGHTxWIDTH");
    char png[512], jpg[512];
    snprintf(png, sizeof png, "%s/train/b/1.png", dir);
    support_copy_file(support_path(dir, "train/a/0.png"), png, 40);
    expect_bad("3x4", 3, "train/b/1.png: not a readable PNG image");
    /* a JPEG cut in its scan data: libjpeg only warns, and would decode the rest as gray */
    uint8_t *noise = malloc(64 * 64 * 3);
    for (int i = 0; i < 64 * 64 * 3; i++)
        noise[i] = (uint8_t)(i * 2654435761u >> 24);
    snprintf(jpg, sizeof jpg, "%s/train/b/1.jpg", dir);
    datagen_jpeg(jpg, 64, 64, 3, noise, 90);
    free(noise);
    remove(png);
    size_t jlen;
    free(support_slurp(jpg, &jlen));
    support_copy_file(jpg, support_path(dir, "train/b/2.jpg"), (long)(jlen * 2 / 3));
    expect_bad("3x4", 3, "train/b/2.jpg: not a readable JPEG image (Premature end of JPEG file)");
    support_write_text(support_path(dir, "train/b/2.jpg"), "hello");
    expect_bad("3x4", 3, "train/b/2.jpg: not an image bnni reads");
    remove(support_path(dir, "train/b/2.jpg"));
    mkdir(support_path(dir, "train/empty"), 0755);
    expect_bad("3x4", 3, "train/empty: holds no images");
    rmdir(support_path(dir, "train/empty"));
    put_image("test", "zebra", "0.png", 4, 3, 1);
    expect_bad("3x4", 3, "'zebra' is not one of the 2 classes of the training images");
}
