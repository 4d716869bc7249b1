/* Tables of named numeric columns for the plots (plot.h): read from CSV files (a header, then rows; fields may be
 * quoted as RFC 4180 says) or from a checkpoint's metrics. A CSV must be rectangular, with a unique non-empty name
 * per column and at least one row; its size is bounded so that no input can exhaust memory. */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_MAX_BYTES (64u << 20)
#define TABLE_MAX_COLS 256

int plot_table_col(const PlotTable *t, const char *name)
{
    for (int k = 0; k < t->ncols; k++)
        if (strcmp(t->names[k], name) == 0)
            return k;
    return -1;
}

void plot_table_free(PlotTable *t)
{
    for (int k = 0; t->names && k < t->ncols; k++)
        free(t->names[k]);
    for (size_t i = 0; t->text && i < (size_t)t->nrows * t->ncols; i++)
        free(t->text[i]);
    free(t->names), free(t->text), free(t->v), free(t->label);
    memset(t, 0, sizeof *t);
}

/* One field from *p (after it: the ',' or line end consumed); NULL on a quote left open or out of memory. *eol
 * is set when the field ended its line. */
static char *field(const char **p, int *eol)
{
    const char *s = *p, *e;
    char *out;
    if (*s == '"') { /* "...", with "" for a quote; may span lines */
        for (e = s + 1; *e && !(*e == '"' && e[1] != '"'); e += *e == '"' ? 2 : 1)
            ;
        if (!*e || !(out = malloc((size_t)(e - s))))
            return NULL;
        char *o = out;
        for (const char *c = s + 1; c < e; c++) {
            *o++ = *c;
            c += *c == '"'; /* the second of a doubled quote */
        }
        *o = '\0';
        s = e + 1;
    } else {
        size_t n = strcspn(s, ",\n\r");
        if (!(out = strndup(s, n)))
            return NULL;
        s += n;
    }
    if (*s == '\r')
        s++;
    *eol = *s != ',';
    *p = *s ? s + 1 : s;
    return out;
}

/* Whether s is a whole number ("nan" and "inf" included, as bnni writes them). */
static double number(const char *s)
{
    char *end;
    errno = 0;
    double v = *s ? strtod(s, &end) : NAN;
    return *s && !*end && errno != ERANGE ? v : NAN;
}

/* Stores cell `col` (its text taken) of the row being read; grows the arrays. Returns 0 or -1. */
static int push_cell(PlotTable *t, size_t *cap, size_t col, char *text)
{
    size_t n = (size_t)t->nrows * t->ncols + col;
    if (n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        char **tx = realloc(t->text, nc * sizeof *tx);
        double *v = tx ? realloc(t->v, nc * sizeof *v) : NULL;
        if (tx)
            t->text = tx;
        if (!v)
            return -1;
        t->v = v, *cap = nc;
    }
    t->text[n] = text;
    t->v[n] = number(text);
    return 0;
}

/* Parses the text of a CSV into t. Returns 0 or -1 with err (no file name). */
static int parse_csv(const char *s, PlotTable *t, char *err, size_t errlen)
{
    int eol = 0;
    size_t cap = 0, col = 0;
    while (!eol) { /* the header */
        char *name = field(&s, &eol);
        if (!name || !name[0] || t->ncols == TABLE_MAX_COLS || plot_table_col(t, name) >= 0) {
            snprintf(err, errlen, "the header needs 1 to %d distinct column names, got %s%s%s", TABLE_MAX_COLS,
                     name ? "'" : "an unreadable field", name ? name : "", name ? "'" : "");
            free(name);
            return -1;
        }
        char **nn = realloc(t->names, ((size_t)t->ncols + 1) * sizeof *nn);
        if (!nn) {
            free(name);
            return -1;
        }
        t->names = nn, t->names[t->ncols++] = name;
    }
    while (*s) {
        if (col == 0 && (*s == '\n' || (*s == '\r' && s[1] == '\n'))) { /* blank line */
            s += *s == '\r' ? 2 : 1;
            continue;
        }
        char *cell = field(&s, &eol);
        if (!cell || push_cell(t, &cap, col, cell) < 0) {
            free(cell);
            snprintf(err, errlen, "row %d: unreadable (a quote left open?)", t->nrows + 2);
            return -1;
        }
        col++;
        if (eol != (col == (size_t)t->ncols)) {
            snprintf(err, errlen, "row %d has %s fields than the header's %d", t->nrows + 2,
                     eol ? "fewer" : "more", t->ncols);
            for (size_t k = 0; k < col; k++) /* the row's cells so far: plot_table_free sees only whole rows */
                free(t->text[(size_t)t->nrows * t->ncols + k]);
            return -1;
        }
        if (eol)
            t->nrows++, col = 0;
    }
    if (t->nrows == 0) {
        snprintf(err, errlen, "it has a header but no rows");
        return -1;
    }
    return 0;
}

int plot_table_csv(const char *path, PlotTable *t, char *err, size_t errlen)
{
    char why[512];
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(TABLE_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, TABLE_MAX_BYTES + 1, f) : 0;
    int bad = !text || ferror(f) || n > TABLE_MAX_BYTES || memchr(text, '\0', n);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: not a CSV file (unreadable, binary, or larger than %u MiB)", path,
                 TABLE_MAX_BYTES >> 20);
        free(text);
        return -1;
    }
    text[n] = '\0';
    int rc = parse_csv(text, t, why, sizeof why);
    free(text);
    if (rc < 0) {
        snprintf(err, errlen, "%s: not a table bnni can plot: %s", path, why);
        plot_table_free(t);
    }
    return rc;
}

int plot_table_metrics(const CkptMetrics *m, PlotTable *t, char *err, size_t errlen)
{
    static const char *const names[] = {"epoch",   "train_loss", "train_acc",        "test_loss",
                                        "test_acc", "seconds",   "images_per_second"};
    const double *cols[7] = {NULL, m->train_loss, m->train_acc, m->test_loss, m->test_acc, m->seconds,
                             m->images_per_second};
    size_t cells = (size_t)m->n * 7;
    memset(t, 0, sizeof *t);
    t->names = calloc(7, sizeof *t->names);
    t->v = malloc((cells + 1) * sizeof *t->v);
    t->text = calloc(cells + 1, sizeof *t->text);
    if (!t->names || !t->v || !t->text)
        goto oom;
    for (t->ncols = 0; t->ncols < 7; t->ncols++)
        if (!(t->names[t->ncols] = strdup(names[t->ncols])))
            goto oom;
    for (t->nrows = 0; t->nrows < m->n; t->nrows++)
        for (int k = 0; k < 7; k++) {
            char buf[32];
            double v = k == 0 ? t->nrows + 1 : cols[k][t->nrows];
            size_t i = (size_t)t->nrows * 7 + k;
            snprintf(buf, sizeof buf, "%.10g", v);
            t->v[i] = v;
            if (!(t->text[i] = strdup(buf))) {
                t->nrows++;
                goto oom;
            }
        }
    return 0;
oom:
    plot_table_free(t);
    snprintf(err, errlen, "out of memory");
    return -1;
}
