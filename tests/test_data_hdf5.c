/* The hdf5 data kind (runtime/data/h5data.c, kind_hdf5.c) on files written here by h5py with known content: every
 * layout ([N, C, H, W], [N, H, W, C], [N, H, W], [N, F]) and dtype (uint8, float32, float64), the class count from
 * the labels or the `classes` attribute, streaming (pread and libhdf5 paths) against memory, and every bad file:
 * one line naming the file. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data/stream.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "h5data"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_hdf5, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* x[i, c, h, w] of the files below: distinct bytes, and floats exact in float32. */
#define PY_FORMULAS                                                                                           \
    "def u8(n, c, h, w):\n"                                                                                  \
    "    i, cc, hh, ww = np.meshgrid(np.arange(n), np.arange(c), np.arange(h), np.arange(w), indexing='ij')\n" \
    "    return ((i * 7 + cc * 3 + hh * 5 + ww) % 256).astype(np.uint8)\n"                                  \
    "def fl(n, c, h, w):\n"                                                                                  \
    "    i, cc, hh, ww = np.meshgrid(np.arange(n), np.arange(c), np.arange(h), np.arange(w), indexing='ij')\n" \
    "    return (i + cc * 0.5 + hh * 0.25 + ww * 0.125)\n"

static int u8_at(int i, int c, int h, int w) { return (i * 7 + c * 3 + h * 5 + w) % 256; }
static float fl_at(int i, int c, int h, int w) { return (float)(i + c * 0.5 + h * 0.25 + w * 0.125); }

static void load_file(const char *name, const char *layout, DataSplit split, int stream, DataSpec *ds, Dataset *d)
{
    datagen_spec(ds, DK_HDF5);
    datagen_set(ds, "path", support_path(dir, name), 0);
    datagen_set(ds, "layout", layout, 0);
    datagen_load(ds, split, 0, stream, d);
}

/* Every value of d against the formula (items in C x H x W), and the labels i % 3. */
static void expect_values(const char *file, const Dataset *d, int n, int C, int H, int W, int floats)
{
    cr_assert_eq(d->count, n);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(d->labels[i], i % 3, "label of item %d", i);
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    size_t at = (((size_t)i * C + c) * H + h) * W + w;
                    if (floats)
                        cr_assert_eq(d->values[at], fl_at(i, c, h, w), "%s: item %d (%d,%d,%d) is %g", file, i, c,
                                     h, w, d->values[at]);
                    else
                        cr_assert_eq(d->pixels[at], u8_at(i, c, h, w), "%s: item %d (%d,%d,%d) is %d", file, i, c,
                                     h, w, d->pixels[at]);
                }
    }
}

Test(data_hdf5, every_layout_and_dtype)
{
    datagen_python(dir, PY_FORMULAS
                   "y = np.arange(5) % 3\n"
                   "def put(name, x, ylab=y):\n"
                   "    with h5py.File(name, 'w') as f:\n"
                   "        f['train/x'] = x; f['train/y'] = ylab\n"
                   "put('nchw.h5', u8(5, 2, 3, 4))\n"
                   "put('nhwc.h5', u8(5, 2, 3, 4).transpose(0, 2, 3, 1))\n"
                   "put('nhw.h5', u8(5, 1, 3, 4)[:, 0])\n"
                   "put('f32.h5', fl(5, 6, 1, 1)[:, :, 0, 0].astype(np.float32), y.astype(np.uint8))\n"
                   "put('f64.h5', fl(5, 2, 3, 4), y.astype(np.int16))\n");
    static const struct {
        const char *file, *layout;
        Shape s;
        int floats;
    } cases[] = {
        {"nchw.h5", "nchw", {3, 2, 3, 4}, 0}, {"nhwc.h5", "nhwc", {3, 2, 3, 4}, 0}, {"nhw.h5", "nchw", {3, 1, 3, 4}, 0},
        {"f32.h5", "nchw", {1, 6, 1, 1}, 1},  {"f64.h5", "nchw", {3, 2, 3, 4}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        DataSpec ds;
        Dataset d;
        load_file(cases[k].file, cases[k].layout, DATA_TRAIN, 0, &ds, &d);
        cr_expect(ds.shape.rank == cases[k].s.rank && ds.shape.c == cases[k].s.c && ds.shape.h == cases[k].s.h &&
                      ds.shape.w == cases[k].s.w, "%s: shape %dx%dx%d", cases[k].file, ds.shape.c, ds.shape.h,
                  ds.shape.w);
        cr_expect_eq(ds.dtype, cases[k].floats ? DT_F32 : DT_U8, "%s", cases[k].file);
        cr_expect_eq(ds.classes, 3, "%s: K is the largest label + 1", cases[k].file);
        cr_expect_str_eq(ds.class_names[2], "2");
        cr_expect_eq(ds.ntrain, 5);
        cr_expect_eq(ds.has_test, 0, "no test group: no test set");
        expect_values(cases[k].file, &d, 5, cases[k].s.c, cases[k].s.h, cases[k].s.w, cases[k].floats);
        dataset_free(&d);
        data_spec_clear(&ds);
    }
}

Test(data_hdf5, classes_attribute_names_the_classes)
{
    datagen_python(dir, PY_FORMULAS
                   "for name, dt in (('vlen.h5', h5py.string_dtype()), ('fixed.h5', 'S5')):\n"
                   "    with h5py.File(name, 'w') as f:\n"
                   "        f['train/x'] = u8(6, 1, 2, 2); f['train/y'] = np.arange(6) % 3\n"
                   "        f['test/x'] = u8(2, 1, 2, 2); f['test/y'] = [3, 0]\n"
                   "        f.attrs['classes'] = np.array(['ant', 'bee', 'cat', 'dog'], dtype=dt)\n");
    const char *files[2] = {"vlen.h5", "fixed.h5"};
    for (int k = 0; k < 2; k++) {
        DataSpec ds;
        Dataset d;
        load_file(files[k], "nchw", DATA_TEST, 0, &ds, &d);
        cr_expect_eq(ds.classes, 4, "%s: K from the attribute, not the labels", files[k]);
        cr_expect_str_eq(ds.class_names[0], "ant");
        cr_expect_str_eq(ds.class_names[3], "dog");
        cr_expect(ds.has_test && ds.ntest == 2);
        cr_expect(d.count == 2 && d.labels[0] == 3 && d.labels[1] == 0);
        dataset_free(&d);
        data_spec_clear(&ds);
    }
}

/* A streamed set reads, in any order, the items the in-memory set holds. */
static void expect_stream_equals_memory(const char *file, const char *layout)
{
    DataSpec ds;
    Dataset mem, str;
    char err[512];
    load_file(file, layout, DATA_TRAIN, 0, &ds, &mem);
    datagen_load(&ds, DATA_TRAIN, 0, 1, &str);
    cr_assert_not_null(str.stream, "%s: not streamed", file);
    cr_assert(str.pixels == NULL && str.values == NULL, "a streamed set holds no items in memory");
    size_t bytes = dataset_item_size(&mem) * (mem.dtype == DT_U8 ? 1 : 4);
    int n = mem.count, ids[64];
    char *buf = malloc((size_t)n * bytes);
    for (int i = 0; i < n; i++)
        ids[i] = (i * 7 + 3) % n;
    cr_assert_eq(stream_read(str.stream, ids, n, buf, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < n; i++)
        cr_expect_eq(memcmp(buf + (size_t)i * bytes, (mem.dtype == DT_U8 ? (char *)mem.pixels : (char *)mem.values) +
                                                          (size_t)ids[i] * bytes, bytes),
                     0, "%s: item %d", file, ids[i]);
    cr_expect_arr_eq(str.labels, mem.labels, (size_t)n * sizeof *mem.labels);
    free(buf);
    dataset_free(&mem), dataset_free(&str);
    data_spec_clear(&ds);
}

Test(data_hdf5, streamed_items_equal_the_items_in_memory)
{
    datagen_python(dir, PY_FORMULAS
                   "y = np.arange(11) % 3\n"
                   "with h5py.File('plain.h5', 'w') as f:\n"
                   "    f['train/x'] = u8(11, 2, 3, 4); f['train/y'] = y\n"
                   "with h5py.File('nhwc.h5', 'w') as f:\n"
                   "    f['train/x'] = u8(11, 3, 3, 4).transpose(0, 2, 3, 1); f['train/y'] = y\n"
                   "with h5py.File('gzip.h5', 'w') as f:\n"
                   "    f.create_dataset('train/x', data=fl(11, 2, 3, 4).astype(np.float32), chunks=(3, 2, 3, 4),\n"
                   "                     compression='gzip')\n"
                   "    f['train/y'] = y\n"
                   "with h5py.File('f64.h5', 'w') as f:\n"
                   "    f['train/x'] = fl(11, 1, 1, 5)[:, 0, 0]; f['train/y'] = y\n");
    expect_stream_equals_memory("plain.h5", "nchw"); /* contiguous bytes: pread */
    expect_stream_equals_memory("nhwc.h5", "nhwc");  /* pread, then channels first */
    expect_stream_equals_memory("gzip.h5", "nchw");  /* chunked and compressed: libhdf5 */
    expect_stream_equals_memory("f64.h5", "nchw");   /* converted: libhdf5 */
}

/* The probe, then the training set's load, fail with one line naming the file and containing needle. */
static void expect_bad(const char *file, const char *layout, const char *test, const char *needle)
{
    DataSpec ds;
    datagen_spec(&ds, DK_HDF5);
    datagen_set(&ds, "path", support_path(dir, file), 0);
    datagen_set(&ds, "layout", layout, 0);
    if (test)
        datagen_set(&ds, "test", test, 0);
    for (int stream = 0; stream < 2; stream++) {
        const char *err = datagen_error(&ds, stream);
        cr_expect(strstr(err, needle), "%s (stream %d): '%s' lacks '%s'", file, stream, err, needle);
        cr_expect(strncmp(err, support_path(dir, file), strlen(support_path(dir, file))) == 0 && !strchr(err, '\n'),
                  "%s: '%s' is not one line naming the file", file, err);
        data_spec_clear(&ds);
        datagen_spec(&ds, DK_HDF5);
        datagen_set(&ds, "path", support_path(dir, file), 0);
        datagen_set(&ds, "layout", layout, 0);
        if (test)
            datagen_set(&ds, "test", test, 0);
    }
    data_spec_clear(&ds);
}

Test(data_hdf5, every_bad_file_is_one_line)
{
    datagen_python(dir, PY_FORMULAS
                   "def put(name, **kv):\n"
                   "    with h5py.File(name, 'w') as f:\n"
                   "        for k, v in kv.items(): f[k.replace('_', '/')] = v\n"
                   "x = u8(5, 1, 4, 4); y = np.arange(5) % 3\n"
                   "put('nogroup.h5', other_x=x, other_y=y)\n"
                   "put('noy.h5', train_x=x)\n"
                   "put('short_y.h5', train_x=x, train_y=y[:4])\n"
                   "put('negative.h5', train_x=x, train_y=[0, 1, -1, 0, 1])\n"
                   "bad = fl(5, 1, 1, 3)[:, 0, 0].astype(np.float32); bad[3, 1] = np.nan\n"
                   "put('nan.h5', train_x=bad, train_y=y)\n"
                   "put('int16.h5', train_x=x.astype(np.int16), train_y=y)\n"
                   "put('rank5.h5', train_x=x[:, :, :, :, None], train_y=y)\n"
                   "put('yfloat.h5', train_x=x, train_y=y.astype(np.float32))\n"
                   "put('testshape.h5', train_x=x, train_y=y, test_x=u8(2, 1, 5, 5), test_y=[0, 1])\n"
                   "with h5py.File('range.h5', 'w') as f:\n"
                   "    f['train/x'] = x; f['train/y'] = [0, 1, 2, 0, 1]; f.attrs['classes'] = [b'a', b'b']\n"
                   "with h5py.File('classnum.h5', 'w') as f:\n"
                   "    f['train/x'] = x; f['train/y'] = y; f.attrs['classes'] = [1, 2, 3]\n"
                   "with h5py.File('nodata.h5', 'w') as f:\n"
                   "    f.create_dataset('train/x', shape=(20, 1, 28, 28), dtype=np.uint8); f['train/y'] = np.arange(20) % 3\n"
                   "open('text.h5', 'w').write('not hdf5 at all')\n"
                   "put('whole.h5', train_x=x, train_y=y)\n"
                   "b = open('whole.h5', 'rb').read(); open('cut.h5', 'wb').write(b[:len(b) // 3])\n");
    expect_bad("missing.h5", "nchw", NULL, "cannot open: No such file");
    expect_bad("text.h5", "nchw", NULL, "not an HDF5 file");
    expect_bad("cut.h5", "nchw", NULL, "(truncated or corrupt)");
    expect_bad("nogroup.h5", "nchw", NULL, "no group 'train'");
    expect_bad("noy.h5", "nchw", NULL, "group 'train' has no dataset 'y'");
    expect_bad("short_y.h5", "nchw", NULL, "train/x holds 5 items but train/y holds 4 labels");
    expect_bad("negative.h5", "nchw", NULL, "label -1 of item 2 is negative");
    expect_bad("range.h5", "nchw", NULL, "label 2 of item 2 is outside [0, 2)");
    expect_bad("nan.h5", "nchw", NULL, "item 3 holds NaN at value 1");
    expect_bad("int16.h5", "nchw", NULL, "2-byte integers; bnni reads uint8, float32 or float64");
    expect_bad("rank5.h5", "nchw", NULL, "train/x has 5 dimensions");
    expect_bad("yfloat.h5", "nchw", NULL, "train/y does not hold integers");
    expect_bad("testshape.h5", "nchw", NULL, "test/x items are 1x5x5 uint8, but train/x items are 1x4x4 uint8");
    expect_bad("whole.h5", "nchw", "valid", "no group 'valid'");
    expect_bad("classnum.h5", "nchw", NULL, "the attribute 'classes' must be a list of");
    expect_bad("nodata.h5", "nchw", NULL, "declares 20 items but the file holds no data for them");
}
