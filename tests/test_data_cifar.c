/* The cifar10 data kind (runtime/data/kind_cifar10.c) on files written here in the CIFAR-10 binary format: a label
 * byte, then the red, green and blue 32x32 planes; five training batches, a test batch, the names file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/data/stream.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "cifar"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_cifar, .init = make_dir, .fini = remove_dir, .timeout = 30);

/* Record r of batch b: label (b + r) % 10, pixel p of plane c = (b * 31 + r * 7 + c * 11 + p) % 256. */
static void write_batch(const char *name, int b, int n)
{
    uint8_t *buf = malloc((size_t)n * 3073);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * 3073;
        rec[0] = (uint8_t)((b + r) % 10);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++)
                rec[1 + c * 1024 + p] = (uint8_t)((b * 31 + r * 7 + c * 11 + p) % 256);
    }
    support_write_bytes(support_path(dir, name), buf, (size_t)n * 3073, 0);
    free(buf);
}

static void write_set(void)
{
    char name[32];
    for (int b = 1; b <= 5; b++) {
        snprintf(name, sizeof name, "data_batch_%d.bin", b);
        write_batch(name, b, 3);
    }
    write_batch("test_batch.bin", 9, 2);
}

static void spec(DataSpec *ds)
{
    datagen_spec(ds, DK_CIFAR10);
    datagen_set(ds, "path", dir, 0);
}

Test(data_cifar, records_become_items_in_file_order)
{
    write_set();
    support_write_text(support_path(dir, "batches.meta.txt"), "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n");
    DataSpec ds;
    Dataset d;
    spec(&ds);
    datagen_load(&ds, DATA_TRAIN, 0, 0, &d);
    cr_expect(ds.shape.c == 3 && ds.shape.h == 32 && ds.shape.w == 32 && ds.classes == 10);
    cr_expect(ds.ntrain == 15 && ds.has_test && ds.ntest == 2);
    cr_expect_str_eq(ds.class_names[9], "a9");
    cr_assert_eq(d.count, 15);
    for (int i = 0; i < 15; i++) {
        int b = 1 + i / 3, r = i % 3;
        cr_expect_eq(d.labels[i], (b + r) % 10, "label of item %d", i);
        for (int c = 0; c < 3; c++)
            cr_assert_eq(d.pixels[(size_t)i * 3072 + c * 1024 + 517], (b * 31 + r * 7 + c * 11 + 517) % 256,
                         "item %d plane %d", i, c);
    }
    dataset_free(&d);
    datagen_load(&ds, DATA_TRAIN, 4, 0, &d);
    cr_expect(d.count == 4 && d.labels[3] == (2 + 0) % 10, "limit 4 reaches into the second batch");
    dataset_free(&d);
    datagen_load(&ds, DATA_TEST, 0, 0, &d);
    cr_expect(d.count == 2 && d.labels[1] == 0);
    dataset_free(&d);
    data_spec_clear(&ds);
}

Test(data_cifar, streamed_records_are_read_from_every_batch_file)
{
    write_set();
    DataSpec ds;
    Dataset d;
    char err[512];
    spec(&ds);
    datagen_load(&ds, DATA_TRAIN, 7, 1, &d); /* two whole batch files and one record of the third */
    cr_assert(d.stream && !d.pixels && d.count == 7, "streamed: the pixels stay in the files");
    int ids[4] = {6, 0, 4, 2};
    uint8_t *px = malloc(4 * 3072);
    cr_assert_eq(stream_read(d.stream, ids, 4, px, err, sizeof err), 0, "%s", err);
    for (int k = 0; k < 4; k++) {
        int b = 1 + ids[k] / 3, r = ids[k] % 3;
        cr_expect_eq(d.labels[ids[k]], (b + r) % 10, "label of item %d", ids[k]);
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p += 341)
                cr_expect_eq(px[(size_t)k * 3072 + c * 1024 + p], (b * 31 + r * 7 + c * 11 + p) % 256,
                             "item %d plane %d pixel %d", ids[k], c, p);
    }
    ids[0] = 7;
    cr_expect_eq(stream_read(d.stream, ids, 1, px, err, sizeof err), -1, "item 7 of 7 was read");
    /* A file cut short under a running training: the message names that file, not the first one. */
    cr_assert_eq(truncate(support_path(dir, "data_batch_2.bin"), 3073), 0);
    ids[0] = 4;
    cr_expect_eq(stream_read(d.stream, ids, 1, px, err, sizeof err), -1, "item 4 was read from a cut file");
    cr_expect(strstr(err, "data_batch_2.bin: cannot read item 4"), "%s", err);
    free(px);
    dataset_free(&d);
    /* A bad label is found while the labels are read, as in memory. */
    uint8_t bad[3073] = {12};
    support_write_bytes(support_path(dir, "data_batch_2.bin"), bad, sizeof bad, 0);
    data_spec_clear(&ds); /* datagen_error probes a spec of its own */
    spec(&ds);
    const char *e = datagen_error(&ds, 1);
    cr_expect(strstr(e, "data_batch_2.bin: record 0 has the label 12"), "%s", e);
    data_spec_clear(&ds);
}

Test(data_cifar, names_default_to_cifar10s)
{
    write_set();
    DataSpec ds;
    char err[512];
    spec(&ds);
    cr_assert_eq(data_probe(&ds, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(ds.class_names[0], "airplane");
    cr_expect_str_eq(ds.class_names[9], "truck");
    data_spec_clear(&ds);
}

static void expect_bad(const char *needle)
{
    DataSpec ds;
    spec(&ds);
    const char *err = datagen_error(&ds, 0);
    cr_expect(strstr(err, needle) && !strchr(err, '\n'), "'%s' lacks '%s'", err, needle);
    data_spec_clear(&ds);
}

Test(data_cifar, every_bad_file_is_named)
{
    write_set();
    char name[128];
    snprintf(name, sizeof name, "%s/data_batch_4.bin", dir);
    support_copy_file(support_path(dir, "data_batch_1.bin"), name, 3073 * 2 + 100);
    expect_bad("data_batch_4.bin: 6246 bytes is not a whole number of 3073-byte records");
    write_set();
    unlink(support_path(dir, "data_batch_5.bin"));
    expect_bad("data_batch_5.bin: cannot open: No such file");
    write_set();
    uint8_t rec[3073] = {10};
    support_write_bytes(support_path(dir, "data_batch_2.bin"), rec, sizeof rec, 0);
    expect_bad("data_batch_2.bin: record 0 has the label 10, outside [0, 10)");
    write_set();
    support_write_text(support_path(dir, "batches.meta.txt"), "a\nb\nc\n");
    expect_bad("batches.meta.txt: holds 3 class names, CIFAR-10 has 10");
    support_write_text(support_path(dir, "batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n");
    expect_bad("batches.meta.txt: holds more than the 10 class names");
}
