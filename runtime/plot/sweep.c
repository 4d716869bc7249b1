/* The "sweep" plot of a bnni sweep's summary.csv: final test accuracy against the swept setting, one line per
 * combination of the other settings, the median over seeds with the min-max spread as a band, the median of the
 * best epoch dashed. x is the first setting whose values are all numbers and differ (logarithmic when positive and
 * spanning a factor of 20 or more), else the first that differs, by position. Settings whose every seed diverged
 * are drawn as crosses at chance level (0.1) and say so in the key. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"

typedef struct Sweep {
    const PlotTable *t;
    int nkeys;      /* settings columns: those before "runs" */
    int x;          /* the column on the x axis, or -1 (a single configuration) */
    int numeric;    /* x is a number */
    int c_med, c_min, c_max, c_best, c_div, c_runs;
} Sweep;

static const char *cell(const Sweep *s, int row, int col) { return s->t->text[(size_t)row * s->t->ncols + col]; }
static double num(const Sweep *s, int row, int col) { return s->t->v[(size_t)row * s->t->ncols + col]; }

/* Whether column k holds more than one distinct text, and whether every value is a finite number. */
static void column_kind(const Sweep *s, int k, int *varies, int *numeric)
{
    *varies = 0, *numeric = 1;
    for (int i = 0; i < s->t->nrows; i++) {
        *varies |= strcmp(cell(s, i, k), cell(s, 0, k)) != 0;
        *numeric &= isfinite(num(s, i, k));
    }
}

static int setup(Sweep *s, const PlotTable *t, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    s->t = t, s->x = -1;
    s->nkeys = plot_table_col(t, "runs");
    s->c_runs = s->nkeys, s->c_div = plot_table_col(t, "diverged");
    s->c_med = plot_table_col(t, "final_median"), s->c_min = plot_table_col(t, "final_min");
    s->c_max = plot_table_col(t, "final_max"), s->c_best = plot_table_col(t, "best_median");
    if (s->nkeys < 0 || s->c_div < 0 || s->c_med < 0 || s->c_min < 0 || s->c_max < 0 || s->c_best < 0) {
        snprintf(err, errlen, "not a sweep summary (it needs the columns runs, diverged, final_median, final_min, "
                 "final_max and best_median)");
        return -1;
    }
    for (int pass = 0; pass < 2 && s->x < 0; pass++) /* a numeric setting that varies, else any that varies */
        for (int k = 0; k < s->nkeys && s->x < 0; k++) {
            int varies, numeric;
            column_kind(s, k, &varies, &numeric);
            if (varies && (numeric || pass == 1))
                s->x = k, s->numeric = numeric;
        }
    return 0;
}

/* Row i's group: the other settings as "k=v, k=v" (empty with one setting). */
static void group_name(const Sweep *s, int i, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < s->nkeys && n < len; k++)
        if (k != s->x)
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", n ? ", " : "", s->t->names[k], cell(s, i, k));
}

/* The x value of row i: the number, or for text the position of its value among the distinct values in order of
 * first appearance. */
static double xval(const Sweep *s, int i)
{
    if (s->x < 0)
        return 0;
    if (s->numeric)
        return num(s, i, s->x);
    int pos = 0;
    for (int j = 0; j < s->t->nrows; j++) {
        if (strcmp(cell(s, j, s->x), cell(s, i, s->x)) == 0)
            return pos;
        int first = 1;
        for (int k = 0; k < j && first; k++)
            first = strcmp(cell(s, k, s->x), cell(s, j, s->x)) != 0;
        pos += first;
    }
    return pos;
}

/* x axis: log when numeric, positive and wide; tics at the values, or the labels of a text setting. */
static void x_axis(Gp *g, const Sweep *s)
{
    char q[1024];
    double lo = INFINITY, hi = -INFINITY;
    if (s->x < 0) { /* one configuration */
        fprintf(g->s, "set xrange [-1:1]\nunset xtics\n");
        return;
    }
    for (int i = 0; i < s->t->nrows; i++)
        lo = fmin(lo, xval(s, i)), hi = fmax(hi, xval(s, i));
    fprintf(g->s, "set xlabel '%s'\n", gp_quote(s->t->names[s->x], q, sizeof q));
    if (s->numeric && lo > 0 && hi >= 20 * lo)
        fprintf(g->s, "set logscale x\nset xrange [%.9g:%.9g]\n", lo / 1.5, hi * 1.5);
    else
        fprintf(g->s, "set xrange [%.9g:%.9g]\n", lo - (hi - lo + 1) * 0.08, hi + (hi - lo + 1) * 0.08);
    fprintf(g->s, "set xtics (");
    for (int i = 0, first = 1; i < s->t->nrows; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(cell(s, j, s->x), cell(s, i, s->x)) == 0;
        if (!seen)
            fprintf(g->s, "%s'%s' %.9g", first ? "" : ", ", gp_quote(cell(s, i, s->x), q, sizeof q), xval(s, i)),
                first = 0;
    }
    fprintf(g->s, ")\n");
}

int plot_sweep(const PlotInput *in, const char *out, char *err, size_t errlen)
{
    Sweep s;
    Gp g;
    char q[1024], name[1024], other[1024], n1[32], n2[32], n3[32], n4[32];
    if (!in->sweep || setup(&s, in->sweep, err, errlen) < 0)
        return in->sweep ? -1 : (snprintf(err, errlen, "nothing to plot"), -1);
    const PlotTable *t = s.t;
    int *group = calloc((size_t)t->nrows + 1, sizeof *group), ngroups = 0, crosses = 0;
    if (!group || gp_open(&g, out, 900, 560, err, errlen) < 0) {
        if (!group)
            snprintf(err, errlen, "out of memory");
        free(group);
        return -1;
    }
    for (int i = 0; i < t->nrows; i++) { /* groups in order of first appearance */
        group[i] = ngroups;
        group_name(&s, i, name, sizeof name);
        for (int j = 0; j < i; j++)
            if (group_name(&s, j, other, sizeof other), strcmp(name, other) == 0) {
                group[i] = group[j];
                break;
            }
        ngroups += group[i] == ngroups;
    }
    int first = g.ndata;
    for (int gi = 0; gi < ngroups; gi++) { /* x, median, min, max, best, in the table's order */
        gp_data_begin(&g);
        for (int i = 0; i < t->nrows; i++)
            if (group[i] == gi)
                fprintf(g.s, "%.9g %s %s %s %s\n", xval(&s, i), gp_num(num(&s, i, s.c_med), n1, sizeof n1),
                        gp_num(num(&s, i, s.c_min), n2, sizeof n2), gp_num(num(&s, i, s.c_max), n3, sizeof n3),
                        gp_num(num(&s, i, s.c_best), n4, sizeof n4));
        gp_data_end(&g);
    }
    int cross = gp_data_begin(&g);
    for (int i = 0; i < t->nrows; i++)
        if (!isfinite(num(&s, i, s.c_med)) && num(&s, i, s.c_div) > 0)
            fprintf(g.s, "%.9g 0.1\n", xval(&s, i)), crosses++;
    gp_data_end(&g);
    fprintf(g.s, "set title '%s'\nset ylabel 'test accuracy'\nset key outside right top box\n",
            gp_quote(in->title ? in->title : "final test accuracy: median over seeds, band min to max; dashed: best epoch",
                     q, sizeof q));
    x_axis(&g, &s);
    for (int gi = 0; gi < ngroups; gi++) {
        int row = 0;
        while (group[row] != gi)
            row++;
        group_name(&s, row, name, sizeof name);
        const char *c = gp_color(gi);
        fprintf(g.s, "%s$d%d using 1:3:4 with filledcurves fc rgb '%s' fs transparent solid 0.18 noborder notitle, "
                     "\\\n     $d%d using 1:2 with linespoints lc rgb '%s' lw 1.8 pt 7 title '%s', "
                     "\\\n     $d%d using 1:5 with lines lc rgb '%s' dt 2 notitle",
                gi ? ", \\\n     " : "plot ", first + gi, c, first + gi, c,
                gp_quote(name[0] ? name : "median", q, sizeof q), first + gi, c);
    }
    if (crosses)
        fprintf(g.s, ", \\\n     $d%d using 1:2 with points lc rgb '#000000' pt 2 ps 2 title 'every seed diverged "
                     "(drawn at 0.1)'", cross);
    fprintf(g.s, "\n");
    free(group);
    return gp_render(&g, err, errlen);
}
