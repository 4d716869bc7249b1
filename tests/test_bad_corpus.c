/* The malformed-model corpus: every tests/bad/NAME.bnn must be rejected (status 1, no model), and its first
 * diagnostic — the `FILE:LINE:COL: error: ...` line, the quoted source line and the caret — must be exactly
 * tests/bad/NAME.expected. Run from the repository root, like the rest of the suite. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "tests/support.h"

#define BAD_DIR "tests/bad"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The stems of every NAME.ext in BAD_DIR, sorted; caller frees each and the array. */
static int list(const char *ext, char ***out)
{
    DIR *d = opendir(BAD_DIR);
    cr_assert_not_null(d, "cannot open " BAD_DIR " (run the tests from the repository root)");
    char **v = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), k = strlen(ext);
        if (len <= k || strcmp(e->d_name + len - k, ext) != 0)
            continue;
        v = realloc(v, (size_t)(n + 1) * sizeof *v);
        v[n++] = strndup(e->d_name, len - k);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, by_name);
    *out = v;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void check_one(const char *stem)
{
    char path[512], exp_path[512];
    snprintf(path, sizeof path, BAD_DIR "/%s.bnn", stem);
    snprintf(exp_path, sizeof exp_path, BAD_DIR "/%s.expected", stem);
    char *expected = support_try_slurp(exp_path, NULL);
    cr_assert_not_null(expected, "%s has no %s", path, exp_path);
    cr_assert(strncmp(expected, path, strlen(path)) == 0 && strstr(expected, ": error: "),
              "%s must hold the first error of %s", exp_path, path);
    char *msgs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&msgs, &len);
    CheckOptions o = {.diag = f};
    ModelSpec *m = NULL;
    int rc = bnn_load_file(path, &o, &m);
    fclose(f);
    cr_expect_eq(rc, 1, "%s: status %d", path, rc);
    cr_expect_null(m, "%s: a model was returned", path);
    spec_free(m);
    size_t k = strlen(expected);
    cr_expect(len >= k && strncmp(msgs, expected, k) == 0, "%s: first diagnostic differs\n--- expected\n%s--- got\n%s",
              path, expected, msgs);
    free(msgs);
    free(expected);
}

Test(bad_corpus, every_file_fails_with_its_expected_first_diagnostic)
{
    char **models, **expected;
    int n = list(".bnn", &models), ne = list(".expected", &expected);
    cr_assert_geq(n, 40, "the corpus needs at least 40 files, has %d", n);
    cr_assert_eq(n, ne, "%d .bnn files but %d .expected files", n, ne);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(models[i], expected[i], "unpaired file in " BAD_DIR);
        check_one(models[i]);
    }
    free_list(models, n);
    free_list(expected, ne);
}
