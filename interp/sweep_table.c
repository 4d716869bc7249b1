/* A sweep's summary (sweep.h): per configuration, the spread over seeds of the final and the best test accuracy
 * and how many epochs each seed took to reach the target, printed as a table and written as summary.csv, which
 * `bnni plot DIR` draws. Diverged runs are counted, not averaged: their accuracy is that of a broken network. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sweep.h"

const char *sweep_value(const Sweep *s, int c, int k)
{
    int stride = 1;
    for (int j = k + 1; j < s->nkeys; j++)
        stride *= s->keys[j].nvalues;
    const char *v = s->keys[k].values[(c / stride) % s->keys[k].nvalues];
    return strchr(v, '=') + 1;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, min and max of v[0..n) (sorted here); NaN when n is 0. The median of an even count is the mean of the
 * middle two. */
static void spread(double *v, int n, double out[3])
{
    if (n == 0) {
        out[0] = out[1] = out[2] = NAN;
        return;
    }
    qsort(v, (size_t)n, sizeof *v, by_value);
    out[0] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    out[1] = v[0], out[2] = v[n - 1];
}

/* One configuration's figures. */
typedef struct Row {
    int runs, diverged, reached;
    double final[3], best[3], epochs; /* median, min, max; epochs: the median over the seeds that reached it */
} Row;

static Row row_of(const Sweep *s, int c)
{
    Row r = {.runs = s->nseeds};
    double *fin = malloc(3 * ((size_t)s->nseeds + 1) * sizeof *fin), dummy[3];
    double *best = fin + s->nseeds + 1, *ep = best + s->nseeds + 1;
    int n = 0;
    if (!fin) { /* out of memory: the row says nothing rather than something wrong */
        r.final[0] = r.final[1] = r.final[2] = r.best[0] = r.best[1] = r.best[2] = r.epochs = NAN;
        return r;
    }
    for (int i = 0; i < s->nseeds; i++) {
        const SweepResult *x = &s->results[c * s->nseeds + i];
        r.diverged += x->diverged;
        if (x->target_epoch > 0)
            ep[r.reached++] = x->target_epoch;
        if (!x->diverged && x->epochs > 0)
            fin[n] = x->final_acc, best[n++] = x->best_acc;
    }
    spread(fin, n, r.final);
    spread(best, n, r.best);
    spread(ep, r.reached, dummy);
    r.epochs = dummy[0];
    free(fin);
    return r;
}

/* A CSV field: quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) { isfinite(v) ? fprintf(f, ",%.6f", v) : fprintf(f, ","); }

static int write_csv(const Sweep *s, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "%s: cannot write: %s", tmp, strerror(errno));
        return -1;
    }
    for (int k = 0; k < s->nkeys; k++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(s->keys[k].arg, "="), s->keys[k].arg);
        csv_field(f, key);
        fputc(',', f);
    }
    fprintf(f, "runs,diverged,final_median,final_min,final_max,best_median,best_min,best_max,target,reached,"
               "epochs_to_target\n");
    for (int c = 0; c < s->nconfigs; c++) {
        Row r = row_of(s, c);
        for (int k = 0; k < s->nkeys; k++)
            csv_field(f, sweep_value(s, c, k)), fputc(',', f);
        fprintf(f, "%d,%d", r.runs, r.diverged);
        for (int i = 0; i < 3; i++)
            csv_num(f, r.final[i]);
        for (int i = 0; i < 3; i++)
            csv_num(f, r.best[i]);
        csv_num(f, s->target);
        fprintf(f, ",%d", r.reached);
        csv_num(f, r.epochs);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* "0.8612 [0.8501, 0.8703]", or "-" without a value. */
static const char *triple(const double v[3], char *buf, size_t len)
{
    if (!isfinite(v[0]))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.4f [%.4f, %.4f]", v[0], v[1], v[2]);
    return buf;
}

static void print_table(const Sweep *s, FILE *out)
{
    int w[SWEEP_MAX_KEYS];
    for (int k = 0; k < s->nkeys; k++) {
        w[k] = (int)strcspn(s->keys[k].arg, "=");
        for (int c = 0; c < s->nconfigs; c++)
            w[k] = (int)strlen(sweep_value(s, c, k)) > w[k] ? (int)strlen(sweep_value(s, c, k)) : w[k];
    }
    for (int k = 0; k < s->nkeys; k++)
        fprintf(out, "%-*.*s  ", w[k], (int)strcspn(s->keys[k].arg, "="), s->keys[k].arg);
    fprintf(out, "runs  diverged  final test acc: median [min, max]  best test acc: median [min, max]");
    if (isfinite(s->target))
        fprintf(out, "  epochs to %.4g", s->target);
    fprintf(out, "\n");
    for (int c = 0; c < s->nconfigs; c++) {
        Row r = row_of(s, c);
        char a[64], b[64];
        for (int k = 0; k < s->nkeys; k++)
            fprintf(out, "%-*s  ", w[k], sweep_value(s, c, k));
        fprintf(out, "%4d  %8d  %-33s  %-32s", r.runs, r.diverged, triple(r.final, a, sizeof a),
                triple(r.best, b, sizeof b));
        if (isfinite(s->target) && r.reached)
            fprintf(out, "  %g (%d of %d)", r.epochs, r.reached, r.runs);
        else if (isfinite(s->target))
            fprintf(out, "  never (0 of %d)", r.runs);
        fprintf(out, "\n");
    }
}

int sweep_summary(const Sweep *s, FILE *out, const char *csv_path, char *err, size_t errlen)
{
    if (out)
        print_table(s, out);
    return write_csv(s, csv_path, err, errlen);
}
