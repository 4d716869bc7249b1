/* The "curves" plot: loss and accuracy per epoch, side by side, of one or more runs. Every column named
 * SPLIT_loss goes to the loss panel and SPLIT_acc to the accuracy panel (train, test, and val or whatever split a
 * table has); a run keeps one colour, a split one dash pattern (test solid, train dashed, validation dotted). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"

/* The dash pattern of a split: test 1 (solid), train 2, val/validation 3, anything else 4. */
static int dash(const char *col)
{
    if (strncmp(col, "test_", 5) == 0)
        return 1;
    if (strncmp(col, "train_", 6) == 0)
        return 2;
    return strncmp(col, "val", 3) == 0 ? 3 : 4;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Whether the loss panel should be logarithmic: every loss positive and spanning more than a factor of 50 (a run
 * that nearly diverged would otherwise flatten all the others). */
static int log_loss(const PlotInput *in)
{
    double lo = INFINITY, hi = 0;
    for (int r = 0; r < in->nruns; r++) {
        const PlotTable *t = &in->runs[r];
        for (int k = 0; k < t->ncols; k++)
            for (int i = 0; ends_with(t->names[k], "_loss") && i < t->nrows; i++) {
                double v = t->v[(size_t)i * t->ncols + k];
                if (!isfinite(v))
                    continue;
                if (v <= 0)
                    return 0;
                lo = v < lo ? v : lo, hi = v > hi ? v : hi;
            }
    }
    return hi > 50 * lo;
}

/* One panel: every run's columns ending in `suffix`; a key of the runs (their colour, solid) and of the dash
 * patterns used (in grey). */
static void panel(Gp *g, const PlotInput *in, int first_block, const char *suffix)
{
    static const char *const split[5] = {"", "test", "train", "validation", "other"};
    char q[1024], used[5] = {0};
    const char *sep = "plot ";
    for (int r = 0; r < in->nruns; r++) {
        const PlotTable *t = &in->runs[r];
        int ex = plot_table_col(t, "epoch");
        for (int k = 0; k < t->ncols; k++) {
            if (!ends_with(t->names[k], suffix))
                continue;
            int d = dash(t->names[k]);
            used[d] = 1;
            fprintf(g->s, "%s$d%d using %d:%d with linespoints lc rgb '%s' dt %d lw %s pt 7 ps 0.4 notitle", sep,
                    first_block + r, ex >= 0 ? ex + 1 : 0, k + 1, gp_color(r), d, d == 1 ? "1.6" : "1.0");
            sep = ", \\\n     ";
        }
        fprintf(g->s, "%sNaN with lines lc rgb '%s' lw 1.6 title '%s'", sep, gp_color(r),
                gp_quote(t->label, q, sizeof q));
    }
    for (int d = 1; d <= 4; d++)
        if (used[d])
            fprintf(g->s, "%sNaN with lines lc rgb '#777777' dt %d title '%s'", sep, d, split[d]);
    fprintf(g->s, "\n");
}

int plot_curves(const PlotInput *in, const char *out, char *err, size_t errlen)
{
    Gp g;
    char q[1024], num[32];
    if (in->nruns < 1) {
        snprintf(err, errlen, "nothing to plot");
        return -1;
    }
    if (gp_open(&g, out, 1200, 480, err, errlen) < 0)
        return -1;
    int first = g.ndata;
    for (int r = 0; r < in->nruns; r++) {
        const PlotTable *t = &in->runs[r];
        gp_data_begin(&g);
        for (int i = 0; i < t->nrows; i++)
            for (int k = 0; k < t->ncols; k++)
                fprintf(g.s, "%s%s", gp_num(t->v[(size_t)i * t->ncols + k], num, sizeof num),
                        k + 1 < t->ncols ? " " : "\n");
        gp_data_end(&g);
    }
    fprintf(g.s, "set multiplot layout 1,2 title '%s'\n", gp_quote(in->title ? in->title : "", q, sizeof q));
    int epochs = 0;
    for (int r = 0; r < in->nruns; r++)
        epochs = in->runs[r].nrows > epochs ? in->runs[r].nrows : epochs;
    fprintf(g.s, "set xlabel 'epoch'\nset key top right box opaque\n%s\n", epochs <= 20 ? "set xtics 1" : "");
    fprintf(g.s, "set title 'loss'\nset ylabel 'cross-entropy loss'\n%s\n",
            log_loss(in) ? "set logscale y" : "unset logscale y");
    panel(&g, in, first, "_loss");
    fprintf(g.s, "unset logscale y\nset title 'accuracy'\nset ylabel 'accuracy'\nset key bottom right\n");
    panel(&g, in, first, "_acc");
    return gp_render(&g, err, errlen);
}
