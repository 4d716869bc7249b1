/* The table of plot kinds (plot.h). Adding one is its file under runtime/plot/ and a line here. */
#include "plot.h"

#include <string.h>

const PlotKind plot_kinds[] = {
    {"curves", "loss and accuracy per epoch of one or more runs (checkpoints or --metrics CSVs)", plot_curves},
    {"trace", "Figure 1: test accuracy and traced layers' percentiles against steps (bnni train --trace)", plot_trace},
    {"sweep", "final test accuracy against the swept setting, seeds as a band (bnni sweep)", plot_sweep},
    {NULL, NULL, NULL},
};

const PlotKind *plot_kind(const char *name)
{
    for (const PlotKind *k = plot_kinds; k->name; k++)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}
