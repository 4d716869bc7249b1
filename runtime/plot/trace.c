/* The "trace" plot, the panels of the batch-norm paper's Figure 1 from runs recorded with bnni train --trace:
 * (a) test accuracy against training steps, every run in one panel; then, per run side by side, each traced
 * layer's 15th, 50th and 85th percentiles against steps (the 15-85 band shaded). Row r holds every run's r-th
 * traced layer on one y scale, so that the runs compare at a glance. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gnuplot.h"
#include "plot.h"

/* Run r's records as data block: step, accuracy, then 15th/50th/85th per layer. */
static void data(Gp *g, const TraceLog *t)
{
    char num[32];
    gp_data_begin(g);
    for (int i = 0; i < t->n; i++) {
        fprintf(g->s, "%lld %s", t->step[i], gp_num(t->test_acc[i], num, sizeof num));
        for (int k = 0; k < t->nlayers * TRACE_NPCT; k++)
            fprintf(g->s, " %s", gp_num(t->pct[(size_t)i * t->nlayers * TRACE_NPCT + k], num, sizeof num));
        fprintf(g->s, "\n");
    }
    gp_data_end(g);
}

/* The y range shared by row `row` (every run's layer of that index), with a margin; 0 when nothing is finite. */
static int row_range(const PlotInput *in, int row, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int r = 0; r < in->ntraces; r++) {
        const TraceLog *t = in->traces[r];
        for (int i = 0; row < t->nlayers && i < t->n; i++)
            for (int q = 0; q < TRACE_NPCT; q++) {
                double v = t->pct[((size_t)i * t->nlayers + row) * TRACE_NPCT + q];
                if (isfinite(v))
                    *lo = v < *lo ? v : *lo, *hi = v > *hi ? v : *hi;
            }
    }
    if (!(*lo <= *hi))
        return 0;
    double m = (*hi - *lo) * 0.05 + 1e-6;
    *lo -= m, *hi += m;
    return 1;
}

/* Panel (a): every run's accuracy against steps. */
static void accuracy_panel(Gp *g, const PlotInput *in, int first)
{
    char q[1024];
    fprintf(g->s, "set title 'test accuracy (fixed subset)'\nset xlabel 'training steps'\nset ylabel 'accuracy'\n"
                  "set key bottom right box opaque\nset autoscale y\n");
    for (int r = 0; r < in->ntraces; r++)
        fprintf(g->s, "%s$d%d using 1:2 with lines lc rgb '%s' lw 1.8 title '%s'", r ? ", \\\n     " : "plot ",
                first + r, gp_color(r), gp_quote(in->trace_labels[r], q, sizeof q));
    fprintf(g->s, "\n");
}

/* Run r's layer `row`: the band, the 15th and 85th thin, the median thick. */
static void layer_panel(Gp *g, const PlotInput *in, int first, int r, int row)
{
    char q[1024], name[1024], range[96] = "set autoscale y";
    const TraceLog *t = in->traces[r];
    double lo, hi;
    if (row_range(in, row, &lo, &hi))
        snprintf(range, sizeof range, "set yrange [%.9g:%.9g]", lo, hi);
    int c = 3 + row * TRACE_NPCT; /* the 15th's column */
    snprintf(name, sizeof name, "%s: %s", in->trace_labels[r], t->names[row]);
    fprintf(g->s, "set title '%s'\nset xlabel 'training steps'\nset ylabel 'output percentiles (probe)'\n%s\n"
                  "set key top right box opaque\n", gp_quote(name, q, sizeof q), range);
    fprintf(g->s, "plot $d%d using 1:%d:%d with filledcurves fc rgb '%s' fs transparent solid 0.15 noborder notitle, "
                  "\\\n     $d%d using 1:%d with lines lc rgb '%s' lw 0.9 title '15th, 85th', "
                  "\\\n     $d%d using 1:%d with lines lc rgb '%s' lw 0.9 notitle, "
                  "\\\n     $d%d using 1:%d with lines lc rgb '%s' lw 2 title '50th'\n",
            first + r, c, c + 2, gp_color(r), first + r, c, gp_color(r), first + r, c + 2, gp_color(r), first + r,
            c + 1, gp_color(r));
}

int plot_trace(const PlotInput *in, const char *out, char *err, size_t errlen)
{
    Gp g;
    char q[1024];
    int rows = 0;
    for (int r = 0; r < in->ntraces; r++)
        rows = in->traces[r]->nlayers > rows ? in->traces[r]->nlayers : rows;
    if (in->ntraces < 1 || rows < 1) {
        snprintf(err, errlen, "nothing to plot: no trace");
        return -1;
    }
    int cols = 1 + in->ntraces;
    if (gp_open(&g, out, 420 * cols, 340 * rows + 40, err, errlen) < 0)
        return -1;
    int first = g.ndata;
    for (int r = 0; r < in->ntraces; r++)
        data(&g, in->traces[r]);
    fprintf(g.s, "set multiplot layout %d,%d title '%s'\n", rows, cols,
            gp_quote(in->title ? in->title : "", q, sizeof q));
    for (int row = 0; row < rows; row++) {
        if (row == 0)
            accuracy_panel(&g, in, first);
        else
            fprintf(g.s, "set multiplot next\n");
        for (int r = 0; r < in->ntraces; r++) {
            if (row < in->traces[r]->nlayers)
                layer_panel(&g, in, first, r, row);
            else
                fprintf(g.s, "set multiplot next\n");
        }
    }
    return gp_render(&g, err, errlen);
}
