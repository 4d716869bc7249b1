/* CSV files through libcsv (csvread.h). The file is fed to the parser a line at a time (long lines in pieces), so
 * that a row the parser completes is known to end on the current line; a row's cells are gathered, then checked together (its width
 * first), and a cell's column is its position in the row. Cells, rows and the whole table are bounded, so no input
 * makes the reader allocate without limit. */
#include "csvread.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_FIELD (1 << 20)      /* bytes of one cell */
#define CSV_MAX_ROW_BYTES (64 << 20) /* bytes of one row's cells */
#define CSV_MAX_COLS (1 << 20)
#define CSV_MAX_ROWS (1 << 30)
#define CSV_MAX_VALUES (1ll << 31)   /* features of the whole table */

/* libcsv grows its field buffer through this: refusing a size beyond a cell's limit makes it fail (CSV_ENOMEM). */
static void *bounded_realloc(void *p, size_t n) { return n > CSV_MAX_FIELD + 64 ? NULL : realloc(p, n); }

typedef struct Reader {
    const char *path, *label;
    int header, keep;
    long long limit;
    long long line;      /* the physical line being fed */
    char *cells;         /* the current row's cells, NUL-terminated one after another */
    size_t used, cap;
    size_t *offs;        /* [ncells] where each starts */
    int ncells, capcells;
    int started;         /* the first row (header or not) was seen */
    long long rows_cap, values_cap;
    CsvSet *out;
    int failed, done;
    char *err;
    size_t errlen;
} Reader;

/* Sets err once: "FILE:LINE:COL: msg" (col > 0) or "FILE:LINE: msg". Returns -1. */
static int fail(Reader *r, int col, const char *fmt, const char *what)
{
    if (!r->failed) {
        char msg[256];
        snprintf(msg, sizeof msg, fmt, what);
        if (col > 0)
            snprintf(r->err, r->errlen, "%s:%lld:%d: %s", r->path, r->line, col, msg);
        else
            snprintf(r->err, r->errlen, "%s:%lld: %s", r->path, r->line, msg);
    }
    r->failed = 1;
    return -1;
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    n = n < need ? need : n;
    void *p = realloc(*v, n * size);
    if (!p)
        return -1;
    *v = p, *cap = n;
    return 0;
}

static void on_field(void *data, size_t len, void *ctx)
{
    Reader *r = ctx;
    size_t capcells = (size_t)r->capcells;
    if (r->failed || r->done)
        return;
    if (len && memchr(data, '\0', len)) {
        fail(r, r->ncells + 1, "%s", "a NUL byte in a cell (is this a text file?)");
        return;
    }
    if (r->ncells >= CSV_MAX_COLS || r->used + len + 1 > CSV_MAX_ROW_BYTES) {
        fail(r, 0, "%s", "the row is too long (more than 1048576 fields or 64 MiB)");
        return;
    }
    if (grow((void **)&r->cells, &r->cap, r->used + len + 1, 1) < 0 ||
        grow((void **)&r->offs, &capcells, (size_t)r->ncells + 1, sizeof *r->offs) < 0) {
        fail(r, 0, "%s", "out of memory");
        return;
    }
    r->capcells = (int)capcells;
    if (len)
        memcpy(r->cells + r->used, data, len);
    r->cells[r->used + len] = '\0';
    r->offs[r->ncells++] = r->used;
    r->used += len + 1;
}

static const char *cell(const Reader *r, int k) { return r->cells + r->offs[k]; }

/* The label column: the number written in `label`, else the header's column of that name. */
static int find_label(Reader *r)
{
    CsvSet *s = r->out;
    char *end;
    long k = strtol(r->label, &end, 10);
    if (*r->label && !*end) {
        if (k < 1 || k > s->ncols)
            return fail(r, 0, "label column %s does not exist", r->label);
        return s->label_col = (int)k - 1;
    }
    if (!r->header)
        return fail(r, 0, "without a header row, label must be a column number such as \"1\", not \"%s\"", r->label);
    for (int c = 0; c < s->ncols; c++)
        if (strcmp(s->header[c], r->label) == 0)
            return s->label_col = c;
    return fail(r, 0, "the header has no column '%s' (label= names the label column)", r->label);
}

/* The first row: the header's names, or (without one) only the width; then the label column. */
static int first_row(Reader *r)
{
    CsvSet *s = r->out;
    s->ncols = r->ncells;
    if (s->ncols < 2)
        return fail(r, 0, "%s", "a row needs a label and at least one feature (2 columns or more)");
    if (r->header) {
        if (!(s->header = calloc((size_t)s->ncols, sizeof *s->header)))
            return fail(r, 0, "%s", "out of memory");
        for (int c = 0; c < s->ncols; c++)
            if (!(s->header[c] = strdup(cell(r, c))))
                return fail(r, 0, "%s", "out of memory");
    }
    return find_label(r);
}

/* A feature cell: a finite number (as float32), surrounding blanks allowed. */
static int feature(Reader *r, int col, float *dst)
{
    const char *s = cell(r, col);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (!*s)
        return fail(r, col + 1, "%s", "empty cell (every feature needs a number)");
    if (*end || end == s)
        return fail(r, col + 1, "'%.40s' is not a number", s);
    if (!isfinite(v) || !isfinite((float)v))
        return fail(r, col + 1, "'%.40s' is not a finite float32 number (features must be finite)", s);
    *dst = (float)v;
    return 0;
}

/* A data row: its width, its features (kept or only checked), its label cell. */
static int data_row(Reader *r)
{
    CsvSet *s = r->out;
    int nf = s->ncols - 1;
    char width[64];
    if (r->ncells != s->ncols) {
        snprintf(width, sizeof width, "the row has %d fields, the %s %d", r->ncells,
                 r->header ? "header has" : "first row has", s->ncols);
        return fail(r, 0, "%s", width);
    }
    if (s->nrows >= CSV_MAX_ROWS || (long long)(s->nrows + 1) * nf > CSV_MAX_VALUES)
        return fail(r, 0, "%s", "too many rows");
    size_t rc = (size_t)r->rows_cap, vc = (size_t)r->values_cap, rc2 = rc;
    if (grow((void **)&s->labels, &rc, (size_t)s->nrows + 1, sizeof *s->labels) < 0 ||
        grow((void **)&s->lines, &rc2, (size_t)s->nrows + 1, sizeof *s->lines) < 0 ||
        (r->keep && grow((void **)&s->features, &vc, (size_t)(s->nrows + 1) * nf, sizeof *s->features) < 0))
        return fail(r, 0, "%s", "out of memory");
    r->rows_cap = (long long)(rc < rc2 ? rc : rc2), r->values_cap = (long long)vc;
    float scratch;
    for (int c = 0, f = 0; c < s->ncols; c++) {
        if (c == s->label_col)
            continue;
        if (feature(r, c, r->keep ? &s->features[(size_t)s->nrows * nf + f] : &scratch) < 0)
            return -1;
        f++;
    }
    if (!(s->labels[s->nrows] = strdup(cell(r, s->label_col))))
        return fail(r, 0, "%s", "out of memory");
    s->lines[s->nrows++] = (int)(r->line < 0x7fffffff ? r->line : 0x7fffffff);
    return 0;
}

static void on_row(int c, void *ctx)
{
    Reader *r = ctx;
    (void)c;
    if (!r->failed && !r->done) {
        int first = !r->started;
        r->started = 1;
        if (first)
            first_row(r);
        if (!r->failed && (!first || !r->header))
            data_row(r);
        if (r->limit > 0 && r->out->nrows >= r->limit)
            r->done = 1;
    }
    r->ncells = 0, r->used = 0;
}

#define CSV_CHUNK 65536 /* bytes read at a time */

/* Feeds the file to the parser in pieces that end at a newline (or at the end of what was read), counting lines as
 * their newlines go through: a row ends on the line being fed when the parser completes it. */
static int feed(Reader *r, FILE *f, struct csv_parser *p)
{
    char *buf = malloc(CSV_CHUNK);
    size_t got;
    if (!buf)
        return fail(r, 0, "%s", "out of memory");
    r->line = 1;
    while (!r->failed && !r->done && (got = fread(buf, 1, CSV_CHUNK, f)) > 0)
        for (size_t at = 0; at < got && !r->failed && !r->done;) {
            const char *nl = memchr(buf + at, '\n', got - at);
            size_t n = nl ? (size_t)(nl - (buf + at)) + 1 : got - at;
            if (csv_parse(p, buf + at, n, on_field, on_row, r) != n && !r->failed) {
                int e = csv_error(p);
                fail(r, 0, e == CSV_ENOMEM ? "a cell is too long (more than 1 MiB)%s" : "malformed CSV: %s",
                     e == CSV_ENOMEM ? "" : csv_strerror(e));
            }
            r->line += nl != NULL;
            at += n;
        }
    free(buf);
    if (ferror(f))
        return fail(r, 0, "read error: %s", strerror(errno));
    if (!r->failed && !r->done && csv_fini(p, on_field, on_row, r) != 0)
        fail(r, 0, "malformed CSV: %s", csv_strerror(csv_error(p)));
    return r->failed ? -1 : 0;
}

int csv_read_set(const char *path, int header, const char *label, int keep_features, long long limit, CsvSet *out,
                 char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    struct csv_parser p;
    Reader r = {.path = path, .label = label, .header = header, .keep = keep_features, .limit = limit, .out = out,
                .err = err, .errlen = errlen};
    int rc = -1;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
    } else {
        csv_set_realloc_func(&p, bounded_realloc);
        csv_set_blk_size(&p, 1 << 16); /* the default grows a cell 128 bytes at a time: quadratic copying */
        rc = feed(&r, f, &p);
        csv_free(&p);
    }
    fclose(f);
    free(r.cells), free(r.offs);
    if (rc == 0 && out->nrows == 0)
        rc = -1, snprintf(err, errlen, "%s: holds no %s", path, r.started ? "data rows" : "rows at all");
    if (rc < 0)
        csv_set_free(out);
    return rc;
}

void csv_set_free(CsvSet *s)
{
    for (int c = 0; s->header && c < s->ncols; c++)
        free(s->header[c]);
    for (int i = 0; s->labels && i < s->nrows; i++)
        free(s->labels[i]);
    free(s->header), free(s->labels), free(s->lines), free(s->features);
    memset(s, 0, sizeof *s);
}
