/* Replays every file of tests/fuzz/corpus/<target>/ through the fuzz target of that name (tests/fuzz/targets.h),
 * so each input that once crashed, leaked or hung stays fixed in the normal suite (and under SANITIZE=1). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The targets are compiled into this test, not into the shared test support code, so only a build that
 * includes this test links what they call (the HDF5 and IDX readers, the network). */
#include "fuzz/targets.c"

typedef int (*FuzzFn)(const uint8_t *data, size_t size);

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

/* Runs every file of the target's corpus and returns how many there were. */
static int replay(const char *target, FuzzFn fn)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot list %s (run the tests from the repository root)", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *data = read_corpus_file(path, &len);
        cr_expect_eq(fn(data, len), 0, "%s", path);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

/* The seed corpora alone hold this many files; fewer means the corpus went missing. */
Test(fuzz_corpus, bnn) { cr_expect_geq(replay("bnn", fuzz_bnn), 90); }

Test(fuzz_corpus, idx) { cr_expect_geq(replay("idx", fuzz_idx), 15); }

Test(fuzz_corpus, ckpt, .timeout = 60) { cr_expect_geq(replay("ckpt", fuzz_ckpt), 15); }

Test(fuzz_corpus, h5data, .timeout = 60) { cr_expect_geq(replay("h5data", fuzz_h5data), 12); }

Test(fuzz_corpus, csv) { cr_expect_geq(replay("csv", fuzz_csv), 11); }

Test(fuzz_corpus, cifar) { cr_expect_geq(replay("cifar", fuzz_cifar), 6); }
