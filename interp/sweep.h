/* `bnni sweep` (cmd_sweep.c runs the grid, sweep_table.c summarises it): the grid of settings, its runs, and what
 * each run ended with. Internal to the front end. */
#ifndef BNNI_SWEEP_H
#define BNNI_SWEEP_H

#include <stddef.h>
#include <stdio.h>

#include "override.h"

#define SWEEP_MAX_KEYS 16
#define SWEEP_MAX_RUNS 100000

/* One swept setting: --set KEY=V1,V2,... */
typedef struct SweepKey {
    char *arg;       /* the --set argument as given; owned */
    char **values;   /* "KEY=Vi", as override_parse takes them; owned */
    int nvalues;
} SweepKey;

/* What one run ended with. */
typedef struct SweepResult {
    int epochs;          /* epochs with metrics (those before a divergence included) */
    double final_acc;    /* the last epoch's test accuracy (NaN without epochs) */
    double best_acc;     /* the best epoch's */
    int target_epoch;    /* the first epoch whose test accuracy reached the target, 0 when none did */
    int diverged;
} SweepResult;

/* The grid: keys[0] varies slowest, seeds fastest. Run r is configuration r / nseeds, seed index r % nseeds;
 * configuration c picks value (c / stride_k) % nvalues_k of key k. */
typedef struct Sweep {
    SweepKey keys[SWEEP_MAX_KEYS];
    int nkeys;
    long long *seeds;
    int nseeds, has_seeds;
    int nconfigs, nruns;
    double target;       /* --target, or NaN */
    SweepResult *results; /* [nruns] */
} Sweep;

/* The value text of key k in configuration c (after "KEY="). */
const char *sweep_value(const Sweep *s, int c, int k);

/* Prints the table (per configuration: runs, diverged, final and best accuracy median [min, max] over the seeds
 * that did not diverge, epochs to the target) to out, and writes it as CSV to csv_path (summary.csv's columns:
 * the swept keys, runs, diverged, final_median, final_min, final_max, best_median, best_min, best_max, target,
 * reached, epochs_to_target). Returns 0, or -1 with err when the CSV cannot be written. */
int sweep_summary(const Sweep *s, FILE *out, const char *csv_path, char *err, size_t errlen);

#endif
