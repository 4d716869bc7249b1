/* Replays every file of tests/fuzz/corpus/<target>/ through the fuzz target of that name (tests/fuzz/targets.h),
 * so each input that once crashed, leaked or hung stays fixed in the normal suite (and under SANITIZE=1), and every
 * input meets the target's invariants (a broken one aborts: a crashed test). The seeds named after what they are
 * must also be accepted or refused as their names say (`expected` below), and each corpus must hold inputs of
 * every outcome, so that a target that refuses (or accepts) everything cannot pass. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The targets are compiled into this test, not into the shared test support code, so only a build that
 * includes this test links what they call (the HDF5 and IDX readers, the network). */
#include "fuzz/targets.c"

typedef int (*FuzzFn)(const uint8_t *data, size_t size);

/* What a named seed must come to: files whose name starts with `prefix` (whole name when exact). */
typedef struct Expect {
    const char *prefix;
    int exact;
    int outcome;
} Expect;

/* Reads a whole corpus file; caller frees. */
static uint8_t *read_corpus_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n >= 0 && n <= (1 << 20), "%s: implausible size %ld for a corpus file", path, n);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read on %s", path);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *const outcome_names[3] = {"refused", "accepted", "fitted to its model"};

/* Runs every file of the target's corpus, counting each outcome in count[FUZZ_REFUSED..FUZZ_FITTED]; a file that
 * `expected` names must come to its outcome. Returns how many files there were. BNNI_FUZZ_LIST=1 prints each
 * named file's outcome. */
static int replay(const char *target, FuzzFn fn, const Expect *expected, int nexpected, int count[3])
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot list %s (run the tests from the repository root)", dir);
    int n = 0, *seen = calloc((size_t)nexpected + 1, sizeof *seen);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *data = read_corpus_file(path, &len);
        int got = fn(data, len);
        free(data);
        cr_assert(got >= FUZZ_REFUSED && got <= FUZZ_FITTED, "%s: outcome %d", path, got);
        count[got]++;
        n++;
        if (getenv("BNNI_FUZZ_LIST") && strncmp(e->d_name, "cov-", 4) != 0)
            fprintf(stderr, "%s: %s\n", path, outcome_names[got]);
        for (int k = 0; k < nexpected; k++) {
            const Expect *x = &expected[k];
            if (x->exact ? strcmp(e->d_name, x->prefix) == 0 : strncmp(e->d_name, x->prefix, strlen(x->prefix)) == 0) {
                seen[k]++;
                cr_expect_eq(got, x->outcome, "%s: %s, but its name says %s", path, outcome_names[got],
                             outcome_names[x->outcome]);
                break;
            }
        }
    }
    closedir(d);
    for (int k = 0; k < nexpected; k++)
        cr_expect(seen[k] > 0, "%s/%s%s: no such seed", dir, expected[k].prefix, expected[k].exact ? "" : "*");
    free(seen);
    return n;
}

/* The models/ seeds check, and so do 60 nested residuals; the tests/bad/ seeds (bad_*) do not, nor do the other
 * edge cases (numbers out of range, expansions over the limits, a label too long, a parameter named twice). */
static const Expect bnn_expected[] = {
    {"bad_", 0, FUZZ_REFUSED},          {"edge_deep_residual.bnn", 1, FUZZ_ACCEPTED},
    {"edge_", 0, FUZZ_REFUSED},         {"cnn_relu.bnn", 1, FUZZ_ACCEPTED},
    {"lenet.bnn", 1, FUZZ_ACCEPTED},    {"lenet_bn.bnn", 1, FUZZ_ACCEPTED},
    {"mlp_bn.bnn", 1, FUZZ_ACCEPTED},   {"resnet_small.bnn", 1, FUZZ_ACCEPTED},
};

Test(fuzz_corpus, bnn)
{
    int count[3] = {0, 0, 0};
    /* The seed corpora alone hold this many files; fewer means the corpus went missing. */
    cr_expect_geq(replay("bnn", fuzz_bnn, bnn_expected, sizeof bnn_expected / sizeof *bnn_expected, count), 90);
    cr_expect(count[FUZZ_ACCEPTED] >= 6 && count[FUZZ_REFUSED] >= 100, "%d accepted, %d refused",
              count[FUZZ_ACCEPTED], count[FUZZ_REFUSED]);
}

static const Expect idx_expected[] = {
    {"images_gzip", 1, FUZZ_ACCEPTED},   {"images_raw", 1, FUZZ_ACCEPTED},    {"images_limit1", 1, FUZZ_ACCEPTED},
    {"labels_gzip", 1, FUZZ_ACCEPTED},   {"labels_raw", 1, FUZZ_ACCEPTED},    {"labels_limit3", 1, FUZZ_ACCEPTED},
    {"pgm_p5", 1, FUZZ_ACCEPTED},        {"pgm_p2", 1, FUZZ_ACCEPTED},        {"bad_magic", 1, FUZZ_REFUSED},
    {"pgm_bad", 1, FUZZ_REFUSED},        {"images_truncated", 1, FUZZ_REFUSED}, {"labels_as_images", 1, FUZZ_REFUSED},
    {"zero_count", 1, FUZZ_REFUSED},     {"huge_dims", 1, FUZZ_REFUSED},      {"count_times_size_", 0, FUZZ_REFUSED},
};

Test(fuzz_corpus, idx)
{
    int count[3] = {0, 0, 0};
    cr_expect_geq(replay("idx", fuzz_idx, idx_expected, sizeof idx_expected / sizeof *idx_expected, count), 15);
    cr_expect(count[FUZZ_ACCEPTED] >= 5 && count[FUZZ_REFUSED] >= 5, "%d accepted, %d refused",
              count[FUZZ_ACCEPTED], count[FUZZ_REFUSED]);
}

/* "valid" is the recipe unchanged; model_source_other is another model's text, which the tensors do not fit. */
static const Expect ckpt_expected[] = {
    {"valid", 1, FUZZ_FITTED},              {"model_source_fixed", 1, FUZZ_FITTED},
    {"model_source_other", 1, FUZZ_ACCEPTED}, {"format_version_2", 1, FUZZ_REFUSED},
    {"order_out_of_range", 1, FUZZ_REFUSED},  {"weight_int32", 1, FUZZ_REFUSED},
    {"weight_rank5", 1, FUZZ_REFUSED},        {"weight_absurd_dim", 1, FUZZ_REFUSED},
    {"raw_text", 1, FUZZ_REFUSED},            {"tensor_2g_values_8gib_malloc", 1, FUZZ_REFUSED},
    {"train_state_", 0, FUZZ_REFUSED},
};

Test(fuzz_corpus, ckpt, .timeout = 60)
{
    int count[3] = {0, 0, 0};
    cr_expect_geq(replay("ckpt", fuzz_ckpt, ckpt_expected, sizeof ckpt_expected / sizeof *ckpt_expected, count), 15);
    cr_expect(count[FUZZ_FITTED] >= 3 && count[FUZZ_ACCEPTED] >= 3 && count[FUZZ_REFUSED] >= 3,
              "%d fitted, %d accepted, %d refused", count[FUZZ_FITTED], count[FUZZ_ACCEPTED], count[FUZZ_REFUSED]);
}

/* The data readers' seeds: the valid files load (ACCEPTED), the broken ones are refused with a reason. */
static const Expect h5data_expected[] = {
    {"u8_nchw", 1, FUZZ_ACCEPTED},     {"gray_nhw", 1, FUZZ_ACCEPTED},    {"f32_features", 1, FUZZ_ACCEPTED},
    {"f64_nhwc", 1, FUZZ_ACCEPTED},    {"chunked_gzip", 1, FUZZ_ACCEPTED}, {"recipe_base", 1, FUZZ_ACCEPTED},
    {"nan_feature", 1, FUZZ_REFUSED},  {"recipe_drop_test_y", 1, FUZZ_REFUSED},
};

Test(fuzz_corpus, h5data, .timeout = 60)
{
    int count[3] = {0, 0, 0};
    cr_expect_geq(replay("h5data", fuzz_h5data, h5data_expected, sizeof h5data_expected / sizeof *h5data_expected,
                         count), 12);
}

static const Expect csv_expected[] = {
    {"header_ints_crlf", 1, FUZZ_ACCEPTED}, {"header_names", 1, FUZZ_ACCEPTED}, {"quoted", 1, FUZZ_ACCEPTED},
    {"no_header_col1", 1, FUZZ_ACCEPTED},   {"no_header_last", 1, FUZZ_ACCEPTED}, {"bad_", 0, FUZZ_REFUSED},
    {"nan", 1, FUZZ_REFUSED},               {"negative_label", 1, FUZZ_REFUSED}, {"ragged", 1, FUZZ_REFUSED},
};

Test(fuzz_corpus, csv)
{
    int count[3] = {0, 0, 0};
    cr_expect_geq(replay("csv", fuzz_csv, csv_expected, sizeof csv_expected / sizeof *csv_expected, count), 11);
}

static const Expect cifar_expected[] = {
    {"meta_ok", 1, FUZZ_ACCEPTED},          {"batch_two_records", 1, FUZZ_ACCEPTED},
    {"batch_bad_length", 1, FUZZ_REFUSED},  {"test_bad_label", 1, FUZZ_REFUSED},
};

Test(fuzz_corpus, cifar)
{
    int count[3] = {0, 0, 0};
    cr_expect_geq(replay("cifar", fuzz_cifar, cifar_expected, sizeof cifar_expected / sizeof *cifar_expected, count),
                  6);
}
