/* `bnni plot`: figures of runs (checkpoints, --metrics CSVs), of traces (checkpoints with /trace, --trace) and of
 * sweeps (a bnni sweep folder or its summary.csv), drawn by runtime/plot/ through gnuplot. The inputs decide the
 * kind; inputs that do not belong in one figure are refused before anything is drawn. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../runtime/plot/gnuplot.h"
#include "../runtime/plot/plot.h"
#include "cmd.h"

const char cmd_plot_usage[] =
    "usage: bnni plot INPUT... -o OUT.png|.svg|.pdf [--label NAME]... [--trace] [--title TEXT]\n"
    "\n"
    "Draws a figure with gnuplot from:\n"
    "  runs      checkpoints (.h5) or bnni train --metrics CSVs: loss and accuracy per epoch, train and test\n"
    "            (and validation where present), one colour per run; all inputs must hold the same metrics\n"
    "  --trace   checkpoints trained with --trace: test accuracy and each traced layer's 15th/50th/85th\n"
    "            percentiles against steps, runs side by side (the batch-norm paper's Figure 1)\n"
    "  a sweep   a bnni sweep folder (or its summary.csv): final test accuracy against the swept setting, one\n"
    "            line per other setting, the spread over seeds as a band\n"
    "\n"
    "  -o, --out FILE   the figure; its extension picks PNG, SVG or PDF (replaced only when drawing succeeded)\n"
    "  --label NAME     the legend's name of each input in turn (default: the file's name without extension)\n"
    "  --title TEXT     a title over the figure\n"
    "\n"
    "exit status: 0 drawn, 1 bad input (unreadable, different metrics, no trace) or gnuplot failed, 2 usage error\n"
    "example: bnni plot lenet.h5 lenet_bn.h5 -o curves.png\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni plot: error: %s%s%s\nusage: bnni plot INPUT... -o OUT.png [options]   (bnni help plot)\n",
            msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct PlotArgs {
    const char **inputs, **labels;
    int ninputs, nlabels, trace;
    const char *out, *title;
} PlotArgs;

static int parse_args(PlotArgs *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->inputs = calloc((size_t)argc + 1, sizeof *a->inputs);
    a->labels = calloc((size_t)argc + 1, sizeof *a->labels);
    if (!a->inputs || !a->labels)
        return usage_error("out of memory", NULL);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        int valued = !strcmp(s, "-o") || !strcmp(s, "--out") || !strcmp(s, "--label") || !strcmp(s, "--title");
        if (valued && i + 1 == argc)
            return usage_error("this option needs a value", s);
        if (!strcmp(s, "-o") || !strcmp(s, "--out"))
            a->out = argv[++i];
        else if (!strcmp(s, "--label"))
            a->labels[a->nlabels++] = argv[++i];
        else if (!strcmp(s, "--title"))
            a->title = argv[++i];
        else if (!strcmp(s, "--trace"))
            a->trace = 1;
        else if (s[0] == '-' && s[1])
            return usage_error("unknown option", s);
        else
            a->inputs[a->ninputs++] = s;
    }
    if (a->ninputs == 0)
        return usage_error("no input given (checkpoints, metrics CSVs or a sweep folder)", NULL);
    if (!a->out)
        return usage_error("no output given (-o FILE.png, .svg or .pdf)", NULL);
    if (gp_format(a->out) < 0)
        return usage_error("the output must end in .png, .svg or .pdf", a->out);
    if (a->nlabels && a->nlabels != a->ninputs)
        return usage_error("give one --label per input, or none", NULL);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* "runs/lenet_bn.h5" -> "lenet_bn"; a folder keeps its last name. Caller frees. */
static char *stem(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    const char *b = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
    char *s = strdup(b), *dot = s ? strrchr(s, '.') : NULL;
    if (dot && dot != s)
        *dot = '\0';
    return s;
}

/* The column names of a that b lacks, as "x, y" into buf; 0 when there is none. */
static int missing_columns(const PlotTable *a, const PlotTable *b, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < a->ncols && n < len; k++)
        if (plot_table_col(b, a->names[k]) < 0)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", a->names[k]);
    return n > 0;
}

/* Every run's table must hold the same metrics: one line naming the first pair that differs. */
static int same_metrics(const PlotTable *t, const char **paths, int n, char *err, size_t errlen)
{
    char miss[1024];
    for (int i = 1; i < n; i++) {
        int lacks = missing_columns(&t[0], &t[i], miss, sizeof miss);
        if (lacks || missing_columns(&t[i], &t[0], miss, sizeof miss)) {
            snprintf(err, errlen, "%s and %s hold different metrics: %s has no %s", paths[0], paths[i],
                     lacks ? paths[i] : paths[0], miss);
            return -1;
        }
    }
    return 0;
}

/* Input i as a run's table: a checkpoint's metrics or a CSV. */
static int load_run(const char *path, PlotTable *t, char *err, size_t errlen)
{
    char why[1024];
    if (ends_with(path, ".csv"))
        return plot_table_csv(path, t, err, errlen);
    Ckpt c;
    if (ckpt_read(path, &c, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    int rc = c.metrics.n > 0 ? plot_table_metrics(&c.metrics, t, err, errlen) : -1;
    if (c.metrics.n == 0)
        snprintf(err, errlen, "%s: no epoch finished, so there is nothing to plot", path);
    ckpt_free(&c);
    return rc;
}

static int draw_runs(const PlotArgs *a, char *err, size_t errlen)
{
    PlotTable *t = calloc((size_t)a->ninputs, sizeof *t);
    int rc = t ? 0 : -1, n = 0;
    for (; rc == 0 && n < a->ninputs; n++) {
        if (is_dir(a->inputs[n]) || (rc = load_run(a->inputs[n], &t[n], err, errlen)) < 0) {
            if (rc == 0)
                snprintf(err, errlen, "%s: a sweep folder is plotted alone, not with runs", a->inputs[n]);
            rc = -1;
            break;
        }
        if (plot_table_col(&t[n], "final_median") >= 0) {
            snprintf(err, errlen, "%s: a sweep summary is plotted alone, not with runs", a->inputs[n]);
            rc = -1, n++;
            break;
        }
        t[n].label = a->nlabels ? strdup(a->labels[n]) : stem(a->inputs[n]);
    }
    if (rc == 0)
        rc = same_metrics(t, a->inputs, a->ninputs, err, errlen);
    if (rc == 0) {
        PlotInput in = {.runs = t, .nruns = a->ninputs, .title = a->title};
        rc = plot_curves(&in, a->out, err, errlen);
    }
    for (int i = 0; t && i < n; i++)
        plot_table_free(&t[i]);
    free(t);
    return rc;
}

static int draw_traces(const PlotArgs *a, char *err, size_t errlen)
{
    Ckpt *c = calloc((size_t)a->ninputs, sizeof *c);
    const TraceLog **tr = calloc((size_t)a->ninputs, sizeof *tr);
    char **labels = calloc((size_t)a->ninputs, sizeof *labels), why[1024];
    int rc = c && tr && labels ? 0 : -1, n = 0;
    for (; rc == 0 && n < a->ninputs; n++) {
        if (ckpt_read(a->inputs[n], &c[n], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: %s", a->inputs[n], why);
            rc = -1;
            break;
        }
        if (!(tr[n] = c[n].trace) || tr[n]->n == 0) {
            snprintf(err, errlen, "%s: holds no trace (train with --trace LAYER to record one)", a->inputs[n]);
            rc = -1, n++;
            break;
        }
        labels[n] = a->nlabels ? strdup(a->labels[n]) : stem(a->inputs[n]);
    }
    if (rc == 0) {
        PlotInput in = {.traces = tr, .trace_labels = (const char *const *)labels, .ntraces = a->ninputs,
                        .title = a->title};
        rc = plot_trace(&in, a->out, err, errlen);
    }
    for (int i = 0; c && i < n; i++)
        ckpt_free(&c[i]), free(labels[i]);
    free(c), free(tr), free(labels);
    return rc;
}

static int draw_sweep(const PlotArgs *a, char *err, size_t errlen)
{
    char path[4096];
    PlotTable t;
    if (a->ninputs > 1) {
        snprintf(err, errlen, "%s: a sweep is plotted alone, not with other inputs", a->inputs[0]);
        return -1;
    }
    snprintf(path, sizeof path, is_dir(a->inputs[0]) ? "%s/summary.csv" : "%s", a->inputs[0]);
    if (plot_table_csv(path, &t, err, errlen) < 0)
        return -1;
    PlotInput in = {.sweep = &t, .title = a->title};
    char why[1024];
    int rc = plot_sweep(&in, a->out, why, sizeof why);
    if (rc < 0)
        snprintf(err, errlen, "%.2000s: %.1000s", path, why);
    plot_table_free(&t);
    return rc;
}

/* Whether the first input is a sweep: a folder, or a CSV whose header has final_median. */
static int first_is_sweep(const PlotArgs *a)
{
    if (is_dir(a->inputs[0]))
        return 1;
    if (!ends_with(a->inputs[0], ".csv"))
        return 0;
    FILE *f = fopen(a->inputs[0], "r");
    char line[4096] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    return strstr(line, "final_median") != NULL;
}

int cmd_plot(int argc, char **argv)
{
    PlotArgs a;
    char err[4096];
    int rc = parse_args(&a, argc, argv);
    if (rc == 0) {
        if (a.trace)
            rc = draw_traces(&a, err, sizeof err);
        else if (first_is_sweep(&a))
            rc = draw_sweep(&a, err, sizeof err);
        else
            rc = draw_runs(&a, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "bnni: error: %s\n", err);
        rc = rc < 0 ? 1 : 0;
    }
    free(a.inputs), free(a.labels);
    return rc;
}
