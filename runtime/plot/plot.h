/* bnni's figures (bnni plot, bnni sweep): each plot kind is one file of runtime/plot/ listed in plot_kinds[]
 * (plot.c), drawn through gnuplot (gnuplot.h) from tables of numbers (table.c). */
#ifndef BNNI_PLOT_H
#define BNNI_PLOT_H

#include <stddef.h>

#include "../ckpt.h"
#include "../trace.h"

/* Named numeric columns: a run's per-epoch metrics (a checkpoint's /metrics, a --metrics CSV) or a sweep's
 * summary.csv. Every cell is kept as written too, for the text of a sweep's settings. */
typedef struct PlotTable {
    char *label;          /* the legend's name; owned */
    int ncols, nrows;
    char **names;         /* [ncols]; owned */
    double *v;            /* [nrows * ncols] the cells as numbers (NaN where not one); owned */
    char **text;          /* [nrows * ncols] as written; owned */
} PlotTable;

/* Reads a CSV with a header line (fields may be "quoted", RFC 4180). Returns 0, or -1 with err ("FILE: ..."). */
int plot_table_csv(const char *path, PlotTable *t, char *err, size_t errlen);
/* A checkpoint's per-epoch metrics, the columns of bnni train --metrics. Returns 0 or -1 (memory). */
int plot_table_metrics(const CkptMetrics *m, PlotTable *t, char *err, size_t errlen);
/* The index of column `name`, or -1. */
int plot_table_col(const PlotTable *t, const char *name);
void plot_table_free(PlotTable *t);

/* What a figure is drawn from; each kind reads its own part. */
typedef struct PlotInput {
    const PlotTable *runs;   /* curves: one table of per-epoch metrics per run, label set */
    int nruns;
    const TraceLog *const *traces; /* trace: one per run */
    const char *const *trace_labels;
    int ntraces;
    const PlotTable *sweep;  /* sweep: a summary.csv (settings columns, then runs, diverged, final_*, best_*...) */
    const char *title;       /* optional, over the figure */
} PlotInput;

typedef struct PlotKind {
    const char *name;
    const char *what; /* for help texts */
    /* Draws in into `out` (.png, .svg or .pdf). Returns 0, or -1 with err; nothing is written then. */
    int (*draw)(const PlotInput *in, const char *out, char *err, size_t errlen);
} PlotKind;

extern const PlotKind plot_kinds[];
/* The kind called name, or NULL. */
const PlotKind *plot_kind(const char *name);

/* The kinds' own files. */
int plot_curves(const PlotInput *in, const char *out, char *err, size_t errlen);
int plot_trace(const PlotInput *in, const char *out, char *err, size_t errlen);
int plot_sweep(const PlotInput *in, const char *out, char *err, size_t errlen);

#endif
