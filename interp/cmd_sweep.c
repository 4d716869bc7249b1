/* `bnni sweep`: trains a grid of settings (the cartesian product of --set lists) times seeds, one run after another,
 * each into its own folder under --out (run.h5, metrics.csv, train.log). The folder's sweep.txt records the model
 * and the grid; run again with the same ones, a sweep skips its finished runs, resumes the interrupted one exactly
 * (its checkpoint) and goes on; a run that diverges is recorded as such (a `diverged` file) and the sweep goes on.
 * At the end: a table (stdout and summary.csv, sweep_table.c) and a plot (summary.png). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/plot/plot.h"
#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"
#include "sweep.h"

const char cmd_sweep_usage[] =
    "usage: bnni sweep MODEL.bnn --set KEY=V1,V2,... [--set ...]... --out DIR [--seeds A-B|A,B,...]\n"
    "                  [--target ACC] [--epochs N] [--limit N] [--test-limit N] [--data DIR] [--threads N]\n"
    "                  [--quiet]\n"
    "\n"
    "Trains every combination of the --set values (keys as for bnni train --set; a single value is a setting of\n"
    "every run) with each seed, one run after another, each into DIR/NAME/ (run.h5, metrics.csv, train.log);\n"
    "NAME spells the run's values. Prints a line per run, then a table per combination: final and best test\n"
    "accuracy (median [min, max] over the seeds that did not diverge), diverged runs and, with --target, the\n"
    "epochs each seed took to reach that accuracy; writes it to DIR/summary.csv and draws DIR/summary.png.\n"
    "Run the same command again to finish an interrupted sweep: finished runs are skipped and the interrupted one\n"
    "resumes exactly. A run that diverges is recorded, and the sweep goes on.\n"
    "\n"
    "  --set KEY=V1,V2  a swept setting (commas inside quotes or parentheses do not split: init=normal(0.1))\n"
    "  --out DIR        the sweep's folder (created; one holding another sweep is refused)\n"
    "  --seeds LIST     seeds, as A-B or A,B,C (default: the model's seed)\n"
    "  --target ACC     report the epochs each run took to reach this test accuracy\n"
    "  --epochs, --limit, --data   as bnni train (recorded as overrides); --test-limit, --threads as bnni train\n"
    "  --quiet          no line per run, only the table\n"
    "\n"
    "exit status: 0 done (diverged runs included), 1 bad input, 2 usage error, 130/143 interrupted (run it again)\n"
    "example: bnni sweep models/lenet.bnn --set optimizer.lr=0.03,0.1,0.3,1 --set batchnorm=on,off --seeds 1-3\n"
    "         --out sweep/ --epochs 3 --target 0.85\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni sweep: error: %s%s%s\nusage: bnni sweep MODEL.bnn --set KEY=V1,V2 --out DIR [options]   "
            "(bnni help sweep)\n", msg, arg ? ": " : "", arg ? arg : "");
    return 2;
}

typedef struct SweepArgs {
    const char *model, *out, *data;
    long long epochs, limit, test_limit, threads; /* -1: not given */
    int quiet;
    Sweep s;
} SweepArgs;

/* ---------------------------------------------------------------- the command line */

/* "1-3" or "1,2,5" into s->seeds. Returns 0 or -1. */
static int parse_seeds(const char *t, Sweep *s)
{
    unsigned long long a, b;
    char *end;
    s->seeds = calloc(1001, sizeof *s->seeds);
    if (!s->seeds || !*t)
        return -1;
    if (strchr(t, '-')) {
        errno = 0;
        a = strtoull(t, &end, 10);
        if (end == t || *end != '-' || t[0] == '-')
            return -1;
        const char *u = end + 1;
        b = strtoull(u, &end, 10);
        if (end == u || *end || errno || b < a || b - a >= 1000 || b > INT64_MAX)
            return -1;
        for (unsigned long long v = a; v <= b; v++)
            s->seeds[s->nseeds++] = (long long)v;
        return 0;
    }
    for (const char *p = t; *p; p = *end ? end + 1 : end) {
        errno = 0;
        a = strtoull(p, &end, 10);
        if (end == p || (*end && *end != ',') || errno || a > INT64_MAX || s->nseeds == 1000 || *p == '-')
            return -1;
        s->seeds[s->nseeds++] = (long long)a;
    }
    return 0;
}

/* A --set argument: its values as a swept key. Returns 0, or the exit status after the error. */
static int add_key(Sweep *s, const char *arg)
{
    char err[512];
    if (s->nkeys == SWEEP_MAX_KEYS)
        return usage_error("too many --set options", arg);
    SweepKey *k = &s->keys[s->nkeys];
    int n = override_split_list(arg, &k->values, err, sizeof err);
    if (n == -2)
        return usage_error(err, NULL);
    if (n < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    for (int i = 0; i < s->nkeys; i++)
        if (strncmp(s->keys[i].arg, arg, strcspn(arg, "=") + 1) == 0) {
            for (int j = 0; j < n; j++)
                free(k->values[j]);
            free(k->values);
            return usage_error("a key is swept twice", arg);
        }
    k->nvalues = n, k->arg = strdup(arg);
    s->nkeys++;
    return k->arg ? 0 : 1;
}

static int number_flag(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end || errno || n < lo || n > hi)
        return -1;
    *out = n;
    return 0;
}

/* One flag with a value (argv[*i] names it). Returns 0 or an exit status. */
static int value_flag(SweepArgs *a, int argc, char **argv, int *i)
{
    const char *name = argv[*i], *v = *i + 1 < argc ? argv[++*i] : NULL;
    char *end;
    if (!v)
        return usage_error("this option needs a value", name);
    if (!strcmp(name, "--set"))
        return add_key(&a->s, v);
    if (!strcmp(name, "--out") || !strcmp(name, "--data")) {
        *(!strcmp(name, "--out") ? &a->out : &a->data) = v;
        return 0;
    }
    if (!strcmp(name, "--seeds")) {
        a->s.has_seeds = 1;
        return parse_seeds(v, &a->s) < 0 ? usage_error("--seeds needs A-B or A,B,... (at most 1000 seeds)", v) : 0;
    }
    if (!strcmp(name, "--target")) {
        a->s.target = strtod(v, &end);
        return end == v || *end || !(a->s.target > 0 && a->s.target <= 1)
                   ? usage_error("--target needs an accuracy in (0, 1]", v) : 0;
    }
    long long *n = !strcmp(name, "--epochs") ? &a->epochs : !strcmp(name, "--limit") ? &a->limit
                   : !strcmp(name, "--test-limit") ? &a->test_limit : &a->threads;
    long long lo = n == &a->epochs || n == &a->threads ? 1 : 0, hi = n == &a->threads ? 1024 : 1000000000;
    return number_flag(v, lo, hi, n) < 0 ? usage_error("this option needs a whole number in range", v) : 0;
}

static int parse_args(SweepArgs *a, int argc, char **argv)
{
    static const char *const valued[] = {"--set",   "--out",        "--seeds", "--target", "--epochs",
                                         "--limit", "--test-limit", "--data",  "--threads"};
    memset(a, 0, sizeof *a);
    a->epochs = a->limit = a->test_limit = a->threads = -1;
    a->s.target = NAN;
    for (int i = 0; i < argc; i++) {
        int known = 0, rc;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            known |= !strcmp(argv[i], valued[k]);
        if (known && (rc = value_flag(a, argc, argv, &i)) != 0)
            return rc;
        if (known)
            continue;
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
            a->quiet = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option", argv[i]);
        else if (a->model)
            return usage_error("only one model file, please; extra argument", argv[i]);
        else
            a->model = argv[i];
    }
    if (!a->model)
        return usage_error("no model file given", NULL);
    if (!a->out)
        return usage_error("no --out DIR given (the sweep's folder)", NULL);
    if (a->s.nkeys == 0)
        return usage_error("nothing to sweep: give --set KEY=V1,V2,...", NULL);
    for (int k = 0; k < a->s.nkeys; k++)
        if (a->s.has_seeds && !strncmp(a->s.keys[k].arg, "seed=", 5))
            return usage_error("seeds are swept with --seeds, not --set seed=", NULL);
    return 0;
}

static void args_free(SweepArgs *a)
{
    for (int k = 0; k < a->s.nkeys; k++) {
        for (int j = 0; j < a->s.keys[k].nvalues; j++)
            free(a->s.keys[k].values[j]);
        free(a->s.keys[k].values);
        free(a->s.keys[k].arg);
    }
    free(a->s.seeds);
    free(a->s.results);
}

/* ---------------------------------------------------------------- runs */

/* The overrides of run r: its value of every key, its seed, then --epochs, --limit and --data. Returns the count
 * and *out (override_free_all), or -1 after printing the error. */
static int run_overrides(const SweepArgs *a, int r, Override **out)
{
    const Sweep *s = &a->s;
    char arg[4096], err[512];
    int c = r / s->nseeds, n = 0, rc = OVERRIDE_OK;
    *out = NULL;
    for (int k = 0; k < s->nkeys && rc == OVERRIDE_OK; k++) {
        snprintf(arg, sizeof arg, "%.*s=%s", (int)strcspn(s->keys[k].arg, "="), s->keys[k].arg, sweep_value(s, c, k));
        rc = override_push(out, &n, arg, err, sizeof err);
    }
    const struct {
        const char *fmt;
        long long v;
        int given;
    } extra[] = {{"seed=%lld", s->has_seeds ? s->seeds[r % s->nseeds] : 0, s->has_seeds},
                 {"epochs=%lld", a->epochs, a->epochs > 0}, {"data.limit=%lld", a->limit, a->limit >= 0}};
    for (size_t i = 0; i < sizeof extra / sizeof *extra && rc == OVERRIDE_OK; i++)
        if (extra[i].given)
            snprintf(arg, sizeof arg, extra[i].fmt, extra[i].v), rc = override_push(out, &n, arg, err, sizeof err);
    if (rc == OVERRIDE_OK && a->data)
        snprintf(arg, sizeof arg, "data.path=\"%s\"", a->data), rc = override_push(out, &n, arg, err, sizeof err);
    if (rc != OVERRIDE_OK) {
        fprintf(stderr, "bnni: error: --set %s: %s\n", arg, err);
        override_free_all(*out, n);
        return -1;
    }
    return n;
}

/* Run r's folder name: its swept values and seed, "optimizer.lr=0.1_batchnorm=off_seed=2", with anything but
 * letters, digits and ._=+- made '_'. */
static void run_name(const Sweep *s, int r, char *buf, size_t len)
{
    size_t n = 0;
    int c = r / s->nseeds, varies = 0;
    for (int k = 0; k < s->nkeys; k++)
        varies |= s->keys[k].nvalues > 1;
    for (int k = 0; k < s->nkeys && n < len; k++)
        if (s->keys[k].nvalues > 1 || !varies) /* a grid of one configuration is named by all its values */
            n += (size_t)snprintf(buf + n, len - n, "%s%.*s=%s", n ? "_" : "", (int)strcspn(s->keys[k].arg, "="),
                                  s->keys[k].arg, sweep_value(s, c, k));
    if (s->has_seeds && n < len)
        snprintf(buf + n, len - n, "%sseed=%lld", n ? "_" : "", s->seeds[r % s->nseeds]);
    for (char *p = buf; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=+-", *p))
            *p = '_';
}

/* Loads run r's model (printing its errors). Returns 0 and *m, or 1. */
static int load_run(const SweepArgs *a, int r, ModelSpec **m)
{
    Override *ov;
    int n = run_overrides(a, r, &ov);
    if (n < 0)
        return 1;
    CheckOptions co = {.overrides = ov, .noverrides = n};
    int rc = load_model_with(a->model, NULL, &co, m);
    override_free_all(ov, n);
    return rc;
}

/* Every configuration must check (with the first seed) before anything is written; names must differ. */
static int check_grid(const SweepArgs *a)
{
    char x[1024], y[1024];
    for (int c = 0; c < a->s.nconfigs; c++) {
        ModelSpec *m = NULL;
        if (load_run(a, c * a->s.nseeds, &m) != 0)
            return 1;
        spec_free(m);
    }
    for (int r = 0; r < a->s.nruns; r++)
        for (int q = r + 1; q < a->s.nruns && q < r + 64; q++)
            if (run_name(&a->s, r, x, sizeof x), run_name(&a->s, q, y, sizeof y), !strcmp(x, y)) {
                fprintf(stderr, "bnni: error: two runs of the sweep would share the folder %s (values that differ "
                        "only in characters a file name cannot hold)\n", x);
                return 1;
            }
    return 0;
}

/* ---------------------------------------------------------------- the folder */

/* FNV-1a of the model file's bytes, so that a folder knows the model it was swept with. */
static int model_hash(const char *path, uint64_t *h)
{
    FILE *f = fopen(path, "rb");
    int ch;
    if (!f)
        return -1;
    *h = 0xcbf29ce484222325ull;
    while ((ch = getc(f)) != EOF)
        *h = (*h ^ (unsigned char)ch) * 0x100000001b3ull;
    fclose(f);
    return 0;
}

/* sweep.txt: what makes two sweeps the same one (the model's text, the grid, seeds and what changes results). */
static char *manifest(const SweepArgs *a, uint64_t hash)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "bnni sweep (do not edit: running the sweep again compares these lines)\nmodel %016llx\n",
            (unsigned long long)hash);
    for (int k = 0; k < a->s.nkeys; k++)
        fprintf(f, "set %s\n", a->s.keys[k].arg);
    fprintf(f, "seeds");
    for (int i = 0; i < a->s.nseeds && a->s.has_seeds; i++)
        fprintf(f, "%s%lld", i ? "," : " ", a->s.seeds[i]);
    fprintf(f, "%s\nepochs %lld\nlimit %lld\ntest_limit %lld\ndata %s\n", a->s.has_seeds ? "" : " (the model's)",
            a->epochs, a->limit, a->test_limit, a->data ? a->data : "(the model's)");
    fclose(f);
    return text;
}

/* The first line where two manifests differ, into buf. */
static void first_difference(const char *x, const char *y, char *buf, size_t len)
{
    while (*x && *y && strcspn(x, "\n") == strcspn(y, "\n") && !strncmp(x, y, strcspn(x, "\n"))) {
        x += strcspn(x, "\n") + (x[strcspn(x, "\n")] != 0);
        y += strcspn(y, "\n") + (y[strcspn(y, "\n")] != 0);
    }
    snprintf(buf, len, "'%.*s' there, '%.*s' here", (int)strcspn(x, "\n"), x, (int)strcspn(y, "\n"), y);
}

static int is_empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = d != NULL;
    while (d && (e = readdir(d)))
        empty &= !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return empty;
}

/* Writes text to path; returns 0 or -1 (errno set). */
static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = fputs(text, f) < 0;
    return fclose(f) != 0 || bad ? -1 : 0;
}

/* Creates the folder with its sweep.txt, or checks that an existing one holds this sweep. Returns 0 or 1. */
static int prepare_dir(const SweepArgs *a, uint64_t hash)
{
    char path[4096], why[2048];
    char *want = manifest(a, hash);
    snprintf(path, sizeof path, "%s/sweep.txt", a->out);
    size_t n;
    FILE *f;
    char *have = NULL;
    int rc = 1;
    struct stat st;
    if (!want) {
        fprintf(stderr, "bnni: error: out of memory\n");
        return 1;
    }
    if ((f = fopen(path, "rb"))) {
        have = calloc(1, 65537);
        n = have ? fread(have, 1, 65536, f) : 0;
        fclose(f);
        if (have && !strcmp(have, want))
            rc = 0;
        else if (have && (n = strcspn(have, "\n") + 1, strncmp(have, want, n) == 0) &&
                 strncmp(have + n, want + n, strcspn(want + n, "\n")) != 0)
            fprintf(stderr, "bnni: error: %s: holds a sweep of another model (sweep.txt was written for other model "
                    "text than %s's); choose another --out\n", a->out, a->model);
        else if (have)
            first_difference(have, want, why, sizeof why),
                fprintf(stderr, "bnni: error: %s: holds another sweep (sweep.txt: %s); choose another --out\n", a->out,
                        why);
    } else if (stat(a->out, &st) == 0 && (!S_ISDIR(st.st_mode) || !is_empty_dir(a->out))) {
        fprintf(stderr, "bnni: error: %s: %s; choose another --out\n", a->out,
                S_ISDIR(st.st_mode) ? "a folder is there that holds no sweep (no sweep.txt)" : "not a folder");
    } else if (stat(a->out, &st) != 0 && mkdir(a->out, 0777) < 0) {
        fprintf(stderr, "bnni: error: %s: cannot create: %s\n", a->out, strerror(errno));
    } else if (write_text(path, want) < 0) {
        fprintf(stderr, "bnni: error: %s: cannot write: %s\n", path, strerror(errno));
    } else {
        rc = 0;
    }
    free(have), free(want);
    return rc;
}

/* ---------------------------------------------------------------- training */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

/* SIGINT and SIGTERM stop the current run (it saves first; a second signal kills at once, as in bnni train);
 * SIGXFSZ is ignored so that a file-size limit fails a save instead of killing. */
static void catch_signals(int on)
{
    static struct sigaction old_int, old_term, old_xfsz;
    if (!on) {
        sigaction(SIGINT, &old_int, NULL), sigaction(SIGTERM, &old_term, NULL), sigaction(SIGXFSZ, &old_xfsz, NULL);
        return;
    }
    struct sigaction sa = {0}, ign = {0};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGINT, &sa, &old_int), sigaction(SIGTERM, &sa, &old_term), sigaction(SIGXFSZ, &ign, &old_xfsz);
}

/* dir/name/file into buf. */
static const char *run_path(const SweepArgs *a, const char *name, const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s/%s", a->out, name, file);
    return buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* What run `name` ended with so far, from its checkpoint and its diverged mark. */
static void read_result(const SweepArgs *a, const char *name, SweepResult *x)
{
    char path[4096], why[512];
    Ckpt c;
    memset(x, 0, sizeof *x);
    x->final_acc = x->best_acc = NAN;
    x->diverged = exists(run_path(a, name, "diverged", path, sizeof path));
    if (ckpt_read(run_path(a, name, "run.h5", path, sizeof path), &c, why, sizeof why) < 0)
        return;
    x->epochs = c.metrics.n;
    for (int e = 0; e < c.metrics.n; e++) {
        double acc = c.metrics.test_acc[e];
        x->final_acc = acc;
        x->best_acc = e == 0 || acc > x->best_acc ? acc : x->best_acc;
        if (!x->target_epoch && isfinite(a->s.target) && acc >= a->s.target)
            x->target_epoch = e + 1;
    }
    ckpt_free(&c);
}

/* Whether run `name` is finished: diverged, or its checkpoint holds every epoch (a run stopped in its last epoch
 * has one fewer). Sets *resume when there is a checkpoint to continue from. */
static int finished(const SweepArgs *a, const char *name, int epochs, int *resume)
{
    char path[4096], why[512];
    Ckpt c;
    *resume = 0;
    if (exists(run_path(a, name, "diverged", path, sizeof path)))
        return 1;
    if (ckpt_read(run_path(a, name, "run.h5", path, sizeof path), &c, why, sizeof why) < 0)
        return 0;
    int done = c.epoch >= epochs;
    ckpt_free(&c);
    *resume = !done;
    return done;
}

/* Trains run r (or skips it). Returns 0 to go on, or the exit status to stop with. */
static int train_one(SweepArgs *a, int r)
{
    char name[1024], ck[4096], csv[4096], logp[4096], err[16384];
    ModelSpec *m = NULL;
    int resume, rc = 0;
    run_name(&a->s, r, name, sizeof name);
    if (load_run(a, r, &m) != 0)
        return 1;
    run_path(a, name, "", ck, sizeof ck);
    if (!finished(a, name, m->epochs, &resume)) {
        FILE *log = (mkdir(ck, 0777) == 0 || errno == EEXIST) ? fopen(run_path(a, name, "train.log", logp, sizeof logp), "a")
                                                              : NULL;
        if (!log) {
            fprintf(stderr, "bnni: error: %s: cannot write: %s\n", logp, strerror(errno));
            spec_free(m);
            return 1;
        }
        run_path(a, name, "run.h5", ck, sizeof ck);
        TrainOptions o = {.out = ck, .resume = resume ? ck : NULL, .log = log,
                          .metrics = run_path(a, name, "metrics.csv", csv, sizeof csv),
                          .test_limit = a->test_limit > 0 ? a->test_limit : 0,
                          .progress = !a->quiet && isatty(STDERR_FILENO), .stop = &stop_signal};
        if (!a->quiet)
            printf("[%d/%d] %s: %s\n", r + 1, a->s.nruns, name, resume ? "resuming" : "training"), fflush(stdout);
        TrainStatus st = train_run(m, &o, err, sizeof err);
        fclose(log);
        if (st == TRAIN_DIVERGED && write_text(run_path(a, name, "diverged", logp, sizeof logp), err) < 0)
            st = TRAIN_FAILED, snprintf(err, sizeof err, "%s: cannot write: %s", logp, strerror(errno));
        if (st == TRAIN_STOPPED)
            fprintf(stderr, "bnni: %s; run the same bnni sweep again to go on\n", err), rc = 128 + (int)stop_signal;
        else if (st == TRAIN_FAILED)
            fprintf(stderr, "bnni: error: %s\n", err), rc = 1;
    }
    spec_free(m);
    SweepResult *x = &a->s.results[r];
    read_result(a, name, x);
    if (rc == 0 && !a->quiet && x->diverged)
        printf("[%d/%d] %s: diverged (after %d epoch%s)\n", r + 1, a->s.nruns, name, x->epochs,
               x->epochs == 1 ? "" : "s");
    else if (rc == 0 && !a->quiet)
        printf("[%d/%d] %s: final test acc %.4f, best %.4f\n", r + 1, a->s.nruns, name, x->final_acc, x->best_acc);
    fflush(stdout);
    return rc;
}

/* The grid's size; refuses one that is too large. */
static int size_grid(Sweep *s)
{
    long long n = 1;
    for (int k = 0; k < s->nkeys; k++)
        n *= s->keys[k].nvalues, n = n > SWEEP_MAX_RUNS ? SWEEP_MAX_RUNS + 1 : n;
    if (!s->has_seeds)
        s->nseeds = 1;
    if (n * s->nseeds > SWEEP_MAX_RUNS) {
        fprintf(stderr, "bnni: error: the sweep has more than %d runs\n", SWEEP_MAX_RUNS);
        return 1;
    }
    s->nconfigs = (int)n, s->nruns = (int)n * s->nseeds;
    s->results = calloc((size_t)s->nruns, sizeof *s->results);
    return s->results ? 0 : 1;
}

/* The table, summary.csv and summary.png. */
static int finish(const SweepArgs *a)
{
    char csv[4096], png[4096], err[4096];
    PlotTable t;
    snprintf(csv, sizeof csv, "%s/summary.csv", a->out);
    snprintf(png, sizeof png, "%s/summary.png", a->out);
    if (!a->quiet)
        printf("\n");
    if (sweep_summary(&a->s, stdout, csv, err, sizeof err) < 0 || plot_table_csv(csv, &t, err, sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    PlotInput in = {.sweep = &t};
    int rc = plot_sweep(&in, png, err, sizeof err);
    plot_table_free(&t);
    if (rc < 0) {
        fprintf(stderr, "bnni: error: %s: %s\n", png, err);
        return 1;
    }
    if (!a->quiet)
        printf("wrote %s and %s\n", csv, png);
    return 0;
}

int cmd_sweep(int argc, char **argv)
{
    SweepArgs a;
    uint64_t hash;
    int rc = parse_args(&a, argc, argv);
    if (rc == 0)
        rc = size_grid(&a.s);
    if (rc == 0)
        rc = check_grid(&a);
    if (rc == 0 && model_hash(a.model, &hash) < 0)
        rc = 1, fprintf(stderr, "bnni: error: %s: cannot read: %s\n", a.model, strerror(errno));
    if (rc == 0)
        rc = prepare_dir(&a, hash);
    if (rc == 0) {
        rt_set_threads((int)a.threads);
        catch_signals(1);
        for (int r = 0; r < a.s.nruns && rc == 0; r++)
            rc = train_one(&a, r);
        catch_signals(0);
    }
    if (rc == 0)
        rc = finish(&a);
    args_free(&a);
    return rc;
}
