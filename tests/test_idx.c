/* The IDX reader (gzipped and plain, strict header and size checks) and the PGM reader, on files written
 * byte by byte here, plus the real Fashion-MNIST test labels against their published first values. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime/data/idx.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "idx"); }

static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(idx, .init = make_dir, .fini = remove_dir);

/* Writes bytes to dir/name, through gzip when gz; returns the path (one of support_path's rotating buffers). */
static const char *put(const char *name, const void *bytes, size_t len, int gz)
{
    const char *p = support_path(dir, name);
    support_write_bytes(p, bytes, len, gz);
    return p;
}

static void be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

/* 3 images of 2 rows x 4 cols, pixel value = 10*image + position. */
static size_t images3(uint8_t *b)
{
    be32(b, 0x803), be32(b + 4, 3), be32(b + 8, 2), be32(b + 12, 4);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 8; k++)
            b[16 + i * 8 + k] = (uint8_t)(10 * i + k);
    return 16 + 24;
}

static void check_images(const char *path, long long limit, int want)
{
    IdxFile f;
    char err[256];
    cr_assert_eq(idx_read(path, IDX_IMAGES, limit, &f, err, sizeof err), 0, "%s", err);
    cr_expect_eq(f.count, want);
    cr_expect_eq(f.total, 3);
    cr_expect_eq(f.rows, 2);
    cr_expect_eq(f.cols, 4);
    for (int i = 0; i < want; i++)
        for (int k = 0; k < 8; k++)
            cr_expect_eq(f.data[i * 8 + k], 10 * i + k);
    idx_free(&f);
}

Test(idx, reads_plain_and_gzipped_images_with_limit)
{
    uint8_t b[64];
    size_t n = images3(b);
    check_images(put("a", b, n, 0), 0, 3);
    check_images(put("a.gz", b, n, 1), 0, 3);
    check_images(put("b.gz", b, n, 1), 2, 2);
    check_images(put("c", b, n, 0), 5, 3);
}

Test(idx, reads_labels)
{
    uint8_t b[12] = {0};
    be32(b, 0x801), be32(b + 4, 4);
    b[8] = 7, b[9] = 0, b[10] = 9, b[11] = 3;
    IdxFile f;
    char err[256];
    cr_assert_eq(idx_read(put("l.gz", b, 12, 1), IDX_LABELS, 0, &f, err, sizeof err), 0, "%s", err);
    cr_expect_eq(f.count, 4);
    cr_expect(f.data[0] == 7 && f.data[1] == 0 && f.data[2] == 9 && f.data[3] == 3);
    idx_free(&f);
}

static void expect_error(const char *path, IdxKind kind, const char *needle, const char *needle2)
{
    IdxFile f;
    char err[512] = "";
    cr_assert_eq(idx_read(path, kind, 0, &f, err, sizeof err), -1, "%s was accepted", path);
    cr_expect(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
    if (needle2)
        cr_expect(strstr(err, needle2), "error '%s' lacks '%s'", err, needle2);
    cr_expect_null(f.data);
}

Test(idx, truncated_files_name_expected_and_found_bytes)
{
    uint8_t b[64];
    size_t n = images3(b);
    /* 40 bytes expected; 35 present, plain and gzipped, and a gzip stream cut short. */
    expect_error(put("t", b, n - 5, 0), IDX_IMAGES, "expected 40 bytes, found 35", "truncated");
    expect_error(put("t.gz", b, n - 5, 1), IDX_IMAGES, "expected 40 bytes, found 35", "truncated");
    uint8_t z[256];
    uLongf zl = sizeof z;
    /* A raw zlib stream is not gzip; build a gzip file and cut its last 12 bytes (data end + trailer). */
    const char *full = put("full.gz", b, n, 1);
    FILE *f = fopen(full, "rb");
    zl = fread(z, 1, sizeof z, f);
    fclose(f);
    expect_error(put("cut.gz", z, zl - 12, 0), IDX_IMAGES, "truncated", "expected 40 bytes");
}

Test(idx, trailing_data_is_rejected)
{
    uint8_t b[64];
    size_t n = images3(b);
    b[n] = 1;
    expect_error(put("x", b, n + 1, 0), IDX_IMAGES, "found 41", "trailing");
}

Test(idx, wrong_magic_and_swapped_kinds)
{
    uint8_t b[64];
    size_t n = images3(b);
    be32(b, 0x805); /* 0x804 is a 4-dimensional image file, read since the idx data kind */
    expect_error(put("m", b, n, 0), IDX_IMAGES, "bad magic number 0x00000805", NULL);
    be32(b, 0x803);
    expect_error(put("m2", b, n, 0), IDX_LABELS, "is an IDX image file", "0x00000801");
    uint8_t l[10] = {0};
    be32(l, 0x801), be32(l + 4, 2);
    expect_error(put("m3", l, 10, 0), IDX_IMAGES, "is an IDX label file", NULL);
    expect_error(put("m4", "hello", 3, 0), IDX_IMAGES, "not an IDX file", NULL);
}

Test(idx, insane_dimensions)
{
    uint8_t b[64];
    size_t n = images3(b);
    be32(b + 8, 0);
    expect_error(put("d0", b, n, 0), IDX_IMAGES, "implausible image size 0x4", NULL);
    be32(b + 8, 2), be32(b + 4, 0);
    expect_error(put("d1", b, n, 0), IDX_IMAGES, "implausible image count 0", NULL);
    be32(b + 4, 0xffffffffu);
    expect_error(put("d2", b, n, 0), IDX_IMAGES, "implausible", NULL);
    be32(b + 4, 1000000);
    expect_error(put("d3", b, n, 0), IDX_IMAGES, "expected 8000016 bytes, found 40", NULL);
}

Test(idx, missing_and_corrupt_gzip)
{
    char p[512];
    snprintf(p, sizeof p, "%s/nope.gz", dir);
    expect_error(p, IDX_IMAGES, "cannot open", "No such file");
    uint8_t b[64], z[256];
    size_t n = images3(b);
    FILE *f = fopen(put("ok.gz", b, n, 1), "rb");
    size_t zl = fread(z, 1, sizeof z, f);
    fclose(f);
    z[zl - 6] ^= 0xff; /* inside the CRC-32 trailer */
    IdxFile r;
    char err[256];
    cr_expect_eq(idx_read(put("bad.gz", z, zl, 0), IDX_IMAGES, 0, &r, err, sizeof err), -1);
}

Test(idx, real_fashion_mnist_test_labels)
{
    IdxFile f;
    char err[256];
    int rc = idx_read("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", IDX_LABELS, 0, &f, err,
                      sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    /* Published: ankle boot, pullover, trouser, trouser, shirt, trouser, coat, shirt, sandal, sneaker. */
    static const int first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    cr_expect_eq(f.total, 10000);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(f.data[i], first[i], "label %d", i);
    idx_free(&f);
}

Test(idx, pgm_p5_p2_and_rescaling)
{
    uint8_t px[6];
    char err[256], p5[64];
    int h = snprintf(p5, sizeof p5, "P5\n# a comment\n3 2\n255\n");
    memcpy(p5 + h, "\x00\x10\x20\x30\x40\xff", 6);
    cr_assert_eq(pgm_read(put("a.pgm", p5, (size_t)h + 6, 0), 2, 3, px, err, sizeof err), 0, "%s", err);
    cr_expect(px[0] == 0 && px[1] == 0x10 && px[5] == 0xff);
    const char *p2 = "P2 3 2 15\n0 1 2\n# c\n3 14 15\n";
    cr_assert_eq(pgm_read(put("b.pgm", p2, strlen(p2), 0), 2, 3, px, err, sizeof err), 0, "%s", err);
    /* v * 255 / 15 rounded: 0, 17, 34, 51, 238, 255 */
    cr_expect(px[0] == 0 && px[1] == 17 && px[2] == 34 && px[3] == 51 && px[4] == 238 && px[5] == 255);
}

Test(idx, pgm_errors)
{
    uint8_t px[6];
    char err[256];
    const char *big = "P2 3 2 300\n0 1 2 3 4 5\n";
    cr_expect_eq(pgm_read(put("c.pgm", big, strlen(big), 0), 2, 3, px, err, sizeof err), -1);
    cr_expect(strstr(err, "maxval 300"), "%s", err);
    const char *size = "P2 4 2 255\n0 1 2 3 4 5 6 7\n";
    cr_expect_eq(pgm_read(put("d.pgm", size, strlen(size), 0), 2, 3, px, err, sizeof err), -1);
    cr_expect(strstr(err, "4x2"), "%s", err);
    const char *shortp5 = "P5 3 2 255\n\x01\x02";
    cr_expect_eq(pgm_read(put("e.pgm", shortp5, strlen(shortp5), 0), 2, 3, px, err, sizeof err), -1);
    cr_expect(strstr(err, "exactly 6 bytes"), "%s", err);
    const char *bad = "P2 3 2 255\n0 1 x 3 4 5\n";
    cr_expect_eq(pgm_read(put("f.pgm", bad, strlen(bad), 0), 2, 3, px, err, sizeof err), -1);
    cr_expect(strstr(err, "pixel 2"), "%s", err);
}

Test(idx, any_images_tells_pgm_from_idx)
{
    IdxFile f;
    char err[256];
    const char *p2 = "P2 4 2 255\n0 1 2 3 4 5 6 7\n";
    cr_assert_eq(idx_read_any_images(put("g.pgm", p2, strlen(p2), 0), 2, 4, &f, err, sizeof err), 0, "%s", err);
    cr_expect(f.count == 1 && f.data[7] == 7);
    idx_free(&f);
    uint8_t b[64];
    size_t n = images3(b);
    cr_assert_eq(idx_read_any_images(put("h.gz", b, n, 1), 2, 4, &f, err, sizeof err), 0, "%s", err);
    cr_expect(f.count == 3 && f.data[16] == 20);
    idx_free(&f);
    cr_expect_eq(idx_read_any_images(put("i.gz", b, n, 1), 28, 28, &f, err, sizeof err), -1);
    cr_expect(strstr(err, "the model expects 28x28"), "%s", err);
}
