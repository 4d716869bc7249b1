/* The csv data kind (runtime/data/csvread.c, kind_csv.c) on files written here: quoted fields, CRLF, no final
 * newline, blank lines, a header or none, the label column by name or number, integer labels and class names,
 * and every bad file: one line, FILE:LINE:COLUMN for a bad cell. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data/csvread.h"
#include "tests/datagen.h"
#include "tests/support.h"

static char dir[64];

static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "csv"); }
static void remove_dir(void) { support_remove_tree(dir); }

TestSuite(data_csv, .init = make_dir, .fini = remove_dir, .timeout = 30);

static void spec(DataSpec *ds, const char *train, const char *test, const char *label, int header)
{
    datagen_spec(ds, DK_CSV);
    datagen_set(ds, "dir", dir, 0);
    datagen_set(ds, "train", train, 0);
    if (test)
        datagen_set(ds, "test", test, 0);
    if (label)
        datagen_set(ds, "label", label, 0);
    datagen_set(ds, "header", NULL, header);
}

Test(data_csv, quoting_crlf_and_class_names)
{
    /* A quoted header with a comma, a quoted cell with a doubled quote in the label, CRLF, blanks around numbers,
     * a blank line, and no newline at the end. */
    support_write_text(support_path(dir, "train.csv"), "\"w, h\",label,\"x\"\r\n"
                                                       " 1.5 ,\"b \"\"q\"\"\",-2\r\n"
                                                       "\r\n"
                                                       "3,a,4e-1\r\n"
                                                       "\"5\",\"b \"\"q\"\"\",6");
    support_write_text(support_path(dir, "test.csv"), "\"w, h\",label,x\n7,c,8\n");
    DataSpec ds;
    Dataset d;
    spec(&ds, "train.csv", "test.csv", NULL, 1);
    datagen_load(&ds, DATA_TRAIN, 0, 0, &d);
    cr_expect(ds.shape.rank == 1 && ds.shape.c == 2 && ds.dtype == DT_F32);
    cr_assert_eq(ds.classes, 3, "names from both files: a, b \"q\", c");
    cr_expect_str_eq(ds.class_names[0], "a");
    cr_expect_str_eq(ds.class_names[1], "b \"q\"");
    cr_expect_str_eq(ds.class_names[2], "c");
    cr_assert_eq(d.count, 3);
    float want[6] = {1.5f, -2.0f, 3.0f, 0.4f, 5.0f, 6.0f};
    for (int k = 0; k < 6; k++)
        cr_expect_eq(d.values[k], want[k], "value %d: %g", k, d.values[k]);
    cr_expect(d.labels[0] == 1 && d.labels[1] == 0 && d.labels[2] == 1);
    cr_expect_eq(ds.normalize, 0, "normalize is the front end's; csv's default is documented as standard");
    dataset_free(&d);
    datagen_load(&ds, DATA_TEST, 0, 0, &d);
    cr_expect(d.count == 1 && d.labels[0] == 2 && d.values[0] == 7.0f && d.values[1] == 8.0f);
    dataset_free(&d);
    data_spec_clear(&ds);
}

Test(data_csv, integer_labels_without_a_header_by_column_number)
{
    support_write_text(support_path(dir, "t.csv"), "0.5,4,1\n1.5,0,2\n2.5,7,3\n");
    DataSpec ds;
    Dataset d;
    spec(&ds, "t.csv", NULL, "2", 0);
    datagen_load(&ds, DATA_TRAIN, 2, 0, &d);
    cr_expect_eq(ds.classes, 8, "K is the largest label + 1");
    cr_expect_str_eq(ds.class_names[7], "7");
    cr_expect_eq(ds.has_test, 0);
    cr_assert_eq(d.count, 2, "limit 2");
    cr_expect(d.labels[0] == 4 && d.labels[1] == 0);
    cr_expect(d.values[0] == 0.5f && d.values[1] == 1.0f && d.values[2] == 1.5f && d.values[3] == 2.0f);
    dataset_free(&d);
    data_spec_clear(&ds);
}

static void expect_bad(const char *text, const char *test_text, const char *label, int header, const char *needle)
{
    support_write_text(support_path(dir, "bad.csv"), text);
    if (test_text)
        support_write_text(support_path(dir, "badtest.csv"), test_text);
    DataSpec ds;
    spec(&ds, "bad.csv", test_text ? "badtest.csv" : NULL, label, header);
    const char *err = datagen_error(&ds, 0);
    cr_expect(strstr(err, needle) && strchr(err, '\n') == NULL, "'%s' lacks '%s'", err, needle);
    data_spec_clear(&ds);
}

Test(data_csv, every_bad_file_names_its_line_and_column)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.csv:", dir);
    expect_bad("a,b,label\n1,2,0\n3,x4,1\n", NULL, NULL, 1, "bad.csv:3:2: 'x4' is not a number");
    expect_bad("a,b,label\n1,,0\n", NULL, NULL, 1, "bad.csv:2:2: empty cell");
    expect_bad("a,b,label\n1,nan,0\n", NULL, NULL, 1, "bad.csv:2:2: 'nan' is not a finite float32 number");
    expect_bad("a,b,label\n1,1e39,0\n", NULL, NULL, 1, "bad.csv:2:2: '1e39' is not a finite float32 number");
    expect_bad("a,b,label\n1,2,0\n1,2\n", NULL, NULL, 1, "bad.csv:3: the row has 2 fields, the header has 3");
    expect_bad("a,b,label\n1,2,-1\n", NULL, NULL, 1, "bad.csv:2:3: label -1 is negative");
    /* A class number no dense layer could output (the fuzzer's 1029052 made a million class names first). */
    expect_bad("a,b,label\n1,2,0\n1,2,65536\n", NULL, NULL, 1,
               "bad.csv:3:3: label 65536: bnni takes at most 65536 classes");
    expect_bad("a,b,kind\n1,2,0\n", NULL, NULL, 1, "the header has no column 'label'");
    expect_bad("1,2,0\n", NULL, "label", 0, "without a header row, label must be a column number");
    expect_bad("1,2,0\n", NULL, "9", 0, "label column 9 does not exist");
    expect_bad("a,b,label\n1,\"2,0\n", NULL, NULL, 1, "malformed CSV");
    expect_bad("a,b,label\n", NULL, NULL, 1, "holds no data rows");
    expect_bad("", NULL, NULL, 1, "holds no rows at all");
    expect_bad("label\n1\n", NULL, NULL, 1, "2 columns or more");
    expect_bad("a,b,label\n1,2,0\n", "a,c,label\n1,2,0\n", NULL, 1, "badtest.csv:1:2: column 'c' is 'b' in");
    expect_bad("a,b,label\n1,2,0\n", "label,a,b\n0,1,2\n", NULL, 1, "label in column 1, but");
    /* a NUL byte, and a cell of more than 1 MiB (as from /dev/zero): refused, never read whole */
    support_write_bytes(support_path(dir, "bad.csv"), "a,label\n1\0002,0\n", 14, 0);
    DataSpec nul;
    spec(&nul, "bad.csv", NULL, NULL, 1);
    const char *e = datagen_error(&nul, 0);
    cr_expect(strstr(e, "bad.csv:2:1: a NUL byte in a cell"), "%s", e);
    data_spec_clear(&nul);
    char *big = malloc((2 << 20) + 16);
    memset(big, '7', 2 << 20);
    strcpy(big + (2 << 20), ",0\n");
    support_write_text(support_path(dir, "big.csv"), big);
    free(big);
    spec(&nul, "big.csv", NULL, "2", 0);
    e = datagen_error(&nul, 0);
    cr_expect(strstr(e, "big.csv:1: a cell is too long (more than 1 MiB)"), "%s", e);
    data_spec_clear(&nul);
    /* the test file's labels must be classes of the training data: checked when it loads */
    support_write_text(support_path(dir, "tr.csv"), "a,label\n1,cat\n2,dog\n");
    support_write_text(support_path(dir, "te.csv"), "a,label\n1,cat\n");
    DataSpec ds;
    Dataset d;
    char err[512];
    spec(&ds, "tr.csv", "te.csv", NULL, 1);
    cr_assert_eq(data_probe(&ds, err, sizeof err), 0, "%s", err);
    support_write_text(support_path(dir, "te.csv"), "a,label\n1,cat\n2,cow\n");
    cr_assert_eq(data_kinds[DK_CSV]->load(&ds, DATA_TEST, 0, 0, &d, err, sizeof err), -1);
    cr_expect(strstr(err, "te.csv:3:2: label 'cow' is not one of the 2 classes"), "%s", err);
    data_spec_clear(&ds);
    cr_expect_eq(csv_read_set(support_path(dir, "nothere.csv"), 1, "label", 0, 0, &(CsvSet){0}, err, sizeof err), -1);
    cr_expect(strstr(err, "nothere.csv: cannot open: No such file"), "%s", err);
}
