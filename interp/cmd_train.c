/* `bnni train`: reads the model, applies the command-line flags over the file's settings and runs the
 * training loop (runtime/train.c). Epoch lines go to stdout, the progress bar and errors to stderr. SIGINT and
 * SIGTERM ask the loop to stop (it saves first); this command turns that into exit status 130 or 143.
 * Started by an MPI launcher (the MPI build, docs/distributed.md), every rank runs this command; rank 0 alone
 * prints, and every rank exits with the same status. */
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/dist.h"
#include "../runtime/threads.h"
#include "../runtime/train.h"
#include "cmd.h"
#include "load.h"
#include "override.h"
#include "trace_request.h"

const char cmd_train_usage[] =
    "usage: bnni train MODEL.bnn [--epochs N] [--out CKPT.h5] [--resume CKPT.h5] [--init CKPT.h5]\n"
    "       bnni train --resume CKPT.h5 [options]   (the model the checkpoint records)\n"
    "                  [--metrics FILE.csv] [--data PATH] [--limit N] [--test-limit N] [--seed N] [--threads N]\n"
    "                  [--mem-cap SIZE] [--set KEY=VALUE]... [--trace LAYER[,LAYER...]] [--trace-every K]\n"
    "                  [--trace-probe N] [--trace-test N] [--profile] [--quiet]\n"
    "\n"
    "Trains the model on its data set, printing one line per epoch and saving an HDF5 checkpoint\n"
    "(docs/checkpoint.md) after every epoch (or, with checkpoint ..., keep=\"best\", the epoch of the best\n"
    "validation accuracy). Flags override the model file.\n"
    "\n"
    "  --epochs N          total epochs (with --resume, the total including those already done)\n"
    "  --out CKPT.h5       checkpoint path, ending in .h5 (default: the --resume file, else the model's\n"
    "                      `checkpoint`, else MODEL_NAME.h5); only a bnni checkpoint is ever replaced\n"
    "  --resume CKPT.h5    continue a run exactly where it stopped (also mid-epoch, after Ctrl-C); without\n"
    "                      MODEL.bnn, with the model the checkpoint records (its --set included)\n"
    "  --init CKPT.h5      start from a checkpoint's weights and moving statistics (fine-tuning)\n"
    "  --metrics FILE.csv  write epoch,train_loss,train_acc,[val_loss,val_acc,]test_loss,test_acc,seconds,\n"
    "                      images_per_second (val_ with validation= in the data statement)\n"
    "  --data PATH         where the data is: replaces the data statement's directory or file (path=, dir=)\n"
    "  --limit N           train on the first N training items (0: all of them, as in the file)\n"
    "  --test-limit N      evaluate each epoch on the first N test images (default and 0: all)\n"
    "  --seed N            seed of the initialisation, shuffling and dropout streams\n"
    "  --threads N         worker threads (default: the cores it may run on that other processes leave idle,\n"
    "                      checked every 0.5 s)\n"
    "  --set KEY=VALUE     change a setting of the model without editing it (repeatable): epochs=20, seed=3,\n"
    "                      data.batch=64, optimizer.lr=0.3, batchnorm_2.momentum=0.5 (a layer by name),\n"
    "                      batchnorm.momentum=0.5 (every layer of a kind), batchnorm=off (removes them);\n"
    "                      the checkpoint's model_source records them (docs/language.md, \"Overrides\")\n"
    "  --trace LAYERS      every --trace-every steps (default 50, and before the first), record the 15th, 50th\n"
    "                      and 85th percentiles of each named layer's output on the first --trace-probe test\n"
    "                      images (default 256) and the accuracy on the first --trace-test (default 2000), in\n"
    "                      eval mode, under /trace in the checkpoint; bnni plot CKPT --trace draws them\n"
    "  --mem-cap SIZE      refuse the model if training would need more memory, and stream an HDF5 training\n"
    "                      set that does not fit beside it: bytes, or with a suffix K, M, G or T (binary:\n"
    "                      512M); default: the machine's physical memory\n"
    "  --profile           after training, print on stderr where the time went: per layer the milliseconds\n"
    "                      per batch of its forward, backward and eval forward, per epoch and as a share of\n"
    "                      the step; the step's other phases (data, loss, optimizer...); each epoch's totals\n"
    "  --quiet             no epoch lines and no progress bar\n"
    "\n"
    "SIGINT/SIGTERM finish the current step, save a resumable checkpoint and exit 130/143 (a second one stops\n"
    "at once; the checkpoint on disk is always whole). Warnings about the model are left to `bnni check`.\n"
    "Data-parallel: mpirun -np N bnni-mpi train MODEL.bnn (the MPI build; docs/distributed.md).\n"
    "exit status: 0 done, 1 bad input or a failed save, 2 usage error, 3 training diverged (NaN/Inf),\n"
    "130/143 interrupted (docs/errors.md)\n"
    "example: bnni train models/lenet_bn.bnn --epochs 3 --metrics run.csv\n";

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "bnni train: error: %s%s%s\nusage: bnni train MODEL.bnn [options]   (bnni help train)\n", msg,
            arg ? ": " : "", arg ? arg : "");
    return 2;
}

/* Parses a whole decimal number in [lo, hi]; returns 0 or -1. */
static int parse_ull(const char *s, unsigned long long lo, unsigned long long hi, unsigned long long *v)
{
    char *end;
    errno = 0;
    if (!s || !*s || s[0] == '-')
        return -1;
    *v = strtoull(s, &end, 10);
    return errno || *end || *v < lo || *v > hi ? -1 : 0;
}

typedef struct TrainFlags {
    const char *model, *out, *resume, *init, *metrics, *data, *trace;
    long long epochs, limit, test_limit, threads; /* -1: not given */
    long long trace_every, trace_probe, trace_test; /* -1: not given */
    unsigned long long seed, mem_cap;             /* mem_cap 0: physical memory */
    int has_seed, quiet, profile;
    Override *sets; /* --set, in order; owned */
    int nsets;
    Ckpt resumed;   /* --resume without a model file: the checkpoint read for its model, handed to the trainer */
    int has_resumed;
} TrainFlags;

/* Handles one flag that takes a value (argv[*i] is the flag); returns 0, or 2 after a usage error. */
static int value_flag(TrainFlags *f, int argc, char **argv, int *i)
{
    const char *name = argv[*i], *v = *i + 1 < argc ? argv[++*i] : NULL;
    unsigned long long n;
    const char **str = strcmp(name, "--out") == 0      ? &f->out
                       : strcmp(name, "--resume") == 0 ? &f->resume
                       : strcmp(name, "--init") == 0   ? &f->init
                       : strcmp(name, "--metrics") == 0 ? &f->metrics
                       : strcmp(name, "--data") == 0    ? &f->data
                       : strcmp(name, "--trace") == 0   ? &f->trace
                                                        : NULL;
    if (!v)
        return usage_error("this option needs a value", name);
    if (strcmp(name, "--set") == 0) {
        char err[512];
        int rc = override_push(&f->sets, &f->nsets, v, err, sizeof err);
        if (rc == OVERRIDE_USAGE)
            return usage_error(err, NULL);
        if (rc != OVERRIDE_OK)
            fprintf(stderr, "bnni: error: --set %s: %s\n", v, err);
        return rc == OVERRIDE_OK ? 0 : 1;
    }
    if (str) {
        *str = v;
        return 0;
    }
    if (strcmp(name, "--mem-cap") == 0) {
        if (cmd_parse_bytes(v, &f->mem_cap) < 0)
            return usage_error("--mem-cap needs a size in bytes, such as 1500000000, 512M or 2G", v);
        return 0;
    }
    if (strcmp(name, "--seed") == 0) {
        if (parse_ull(v, 0, UINT64_MAX, &f->seed) < 0)
            return usage_error("--seed needs a non-negative integer", v);
        f->has_seed = 1;
        return 0;
    }
    if (strncmp(name, "--trace-", 8) == 0) {
        long long *t = name[8] == 'e' ? &f->trace_every : name[8] == 'p' ? &f->trace_probe : &f->trace_test;
        if (parse_ull(v, 1, 1000000000, &n) < 0)
            return usage_error("this option needs a whole number from 1 to 1000000000", v);
        *t = (long long)n;
        return 0;
    }
    long long *num = strcmp(name, "--epochs") == 0        ? &f->epochs
                     : strcmp(name, "--limit") == 0      ? &f->limit
                     : strcmp(name, "--test-limit") == 0 ? &f->test_limit
                                                         : &f->threads;
    unsigned long long hi = num == &f->epochs ? 1000000 : num == &f->threads ? 1024 : 1000000000;
    unsigned long long lo = num == &f->epochs || num == &f->threads ? 1 : 0; /* a limit of 0 means all, as in files */
    if (parse_ull(v, lo, hi, &n) < 0)
        return usage_error(num == &f->epochs    ? "--epochs needs a whole number from 1 to 1000000"
                           : num == &f->threads ? "--threads needs a number from 1 to 1024"
                                                : "this option needs a number of images (0: all)",
                           v);
    *num = (long long)n;
    return 0;
}

static int parse_flags(TrainFlags *f, int argc, char **argv)
{
    static const char *const valued[] = {"--epochs", "--out",        "--resume", "--init",    "--metrics",
                                         "--data",   "--limit",      "--seed",   "--threads", "--test-limit",
                                         "--mem-cap", "--set", "--trace", "--trace-every", "--trace-probe",
                                         "--trace-test"};
    memset(f, 0, sizeof *f);
    f->epochs = f->limit = f->test_limit = f->threads = -1;
    f->trace_every = f->trace_probe = f->trace_test = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int known = 0, rc;
        for (size_t k = 0; k < sizeof valued / sizeof *valued; k++)
            known |= strcmp(a, valued[k]) == 0;
        if (known) {
            if ((rc = value_flag(f, argc, argv, &i)) != 0)
                return rc;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            f->quiet = 1;
        } else if (strcmp(a, "--profile") == 0) {
            f->profile = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option", a);
        } else if (f->model) {
            return usage_error("only one model file, please; extra argument", a);
        } else {
            f->model = a;
        }
    }
    if (!f->model && !f->resume)
        return usage_error("no model file given", NULL);
    if (f->resume && f->init)
        return usage_error("--resume and --init exclude each other", NULL);
    if (!f->trace && (f->trace_every > 0 || f->trace_probe > 0 || f->trace_test > 0))
        return usage_error("--trace-every, --trace-probe and --trace-test need --trace", NULL);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* --out names an HDF5 checkpoint, as `checkpoint "..."` in a model file must: a slip such as --out m.bnn would
 * otherwise write HDF5 over the model. Returns 0, or 1 after the error. */
static int check_out(const char *out)
{
    struct stat st;
    if (!out || ends_with(out, ".h5") || ends_with(out, ".hdf5") || (stat(out, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0; /* a directory: the trainer says that it needs a file */
    fprintf(stderr, "bnni: error: --out %s: a checkpoint path must end in .h5 (the file is HDF5)\n", out);
    return 1;
}

/* Flags win over the file. Returns 0, or 1 when out of memory. */
static int apply_flags(ModelSpec *m, const TrainFlags *f)
{
    if (f->epochs > 0)
        m->epochs = (int)f->epochs;
    if (f->limit >= 0)
        m->data.limit = f->limit;
    if (f->has_seed)
        m->seed = f->seed;
    return 0; /* --data is the checker's: it reads the data's headers there (load_model_with) */
}

/* `bnni train --resume CKPT` without a model file: the model the checkpoint records (its model_source, --set
 * overrides included), so the resumed run trains the network that was trained, on its data where it was trained
 * unless --data says otherwise (co->data_where). Returns 0 and *m, the checkpoint in *c for the trainer (read once:
 * each read runs libhdf5's trial in a child process), or 1. */
static int load_resumed_model(const char *ckpt, const CheckOptions *co, ModelSpec **m, Ckpt *c)
{
    char why[8192], name[4200];
    if (ckpt_read(ckpt, c, why, sizeof why) < 0) {
        fprintf(stderr, "bnni: error: %s: %s\n", ckpt, why);
        return 1;
    }
    snprintf(name, sizeof name, "%s:model_source", ckpt);
    CheckOptions here = *co;
    if (!here.data_where)
        here.data_where = c->data_path;
    int rc = load_model_with(name, c->model_source, &here, m);
    if (rc != 0)
        ckpt_free(c);
    return rc;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

/* Exit statuses (docs/errors.md): a run stopped by a signal exits 128 + the signal's number, as a shell reports
 * a process killed by it; every rank of a data-parallel run with the signal they agreed to stop for. */
static int exit_status(TrainStatus st, int stopped_by)
{
    switch (st) {
    case TRAIN_OK: return 0;
    case TRAIN_DIVERGED: return 3;
    case TRAIN_STOPPED: return 128 + (stopped_by ? stopped_by : stop_signal ? (int)stop_signal : SIGTERM);
    case TRAIN_FAILED: break;
    }
    return 1;
}

/* Runs the training with SIGINT/SIGTERM asking it to stop, and SIGXFSZ ignored: over a file-size limit
 * (ulimit -f) a save then fails with EFBIG and says so. The previous handlers come back afterwards. */
static TrainStatus run_with_signals(ModelSpec *m, TrainOptions *o, char *err, size_t errlen)
{
    struct sigaction sa = {0}, ign = {0}, old_int, old_term, old_xfsz;
    stop_signal = 0;
    o->stop = &stop_signal;
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal kills at once; the checkpoint on disk stays whole */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ign, &old_xfsz);
    TrainStatus st = train_run(m, o, err, errlen);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGXFSZ, &old_xfsz, NULL);
    return st;
}

/* ---------------------------------------------------------------- ranks of a data-parallel run */

/* Ranks other than 0 keep what the front end prints (a usage error, a model's diagnostics) in a temporary file
 * instead of printing it: rank 0 prints the first failing rank's, and only when it did not fail itself. */
typedef struct Capture {
    int saved; /* the real stderr, or -1: not capturing */
    FILE *tmp;
} Capture;

static void capture_start(Capture *c, const Dist *d)
{
    c->saved = -1, c->tmp = NULL;
    if (dist_rank(d) == 0 || !(c->tmp = tmpfile()))
        return;
    fflush(stderr);
    if ((c->saved = dup(STDERR_FILENO)) >= 0)
        dup2(fileno(c->tmp), STDERR_FILENO);
}

/* Ends the capture; text gets what was printed, without "bnni: error: " and the last newline. */
static void capture_end(Capture *c, char *text, size_t len)
{
    size_t n = 0;
    text[0] = '\0';
    fflush(stderr);
    if (c->saved >= 0) {
        dup2(c->saved, STDERR_FILENO);
        close(c->saved);
        rewind(c->tmp);
        n = fread(text, 1, len - 1, c->tmp);
    }
    if (c->tmp)
        fclose(c->tmp);
    text[n] = '\0';
    while (n > 0 && text[n - 1] == '\n')
        text[--n] = '\0';
    if (strncmp(text, "bnni: error: ", 13) == 0)
        memmove(text, text + 13, n - 13 + 1);
}

/* Alone, the default team follows the cores other processes leave idle (rt_adapt); ranks that share this machine
 * unbound (their launcher confined none of them to a part of it) share its cores. */
static int default_threads(const Dist *d)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = rt_usable_cores(), local = dist_local_size(d);
    if (local < 2 || cores < online)
        return 0;
    return cores / local > 1 ? cores / local : 1;
}

/* The command's work before training: flags, the model (from the file, or the --resume checkpoint's), the flags
 * applied, the trace asked for. Returns 0, or the exit status after printing why. */
static int prepare(TrainFlags *f, ModelSpec **m, TraceLog *trace, int argc, char **argv)
{
    char err[4096];
    int rc = parse_flags(f, argc, argv);
    if (rc == 0 && check_out(f->out))
        rc = 1;
    CheckOptions co = {.mem_cap_bytes = f->mem_cap, .data_where = f->data,
                       .limit_override = f->limit > 0 ? f->limit : 0, .overrides = f->sets, .noverrides = f->nsets};
    if (rc == 0 && f->model && load_model_with(f->model, NULL, &co, m) != 0)
        rc = 1;
    if (rc == 0 && !f->model && load_resumed_model(f->resume, &co, m, &f->resumed) != 0)
        rc = 1;
    f->has_resumed = rc == 0 && !f->model;
    override_free_all(f->sets, f->nsets);
    if (rc != 0)
        return rc;
    if (apply_flags(*m, f) != 0) {
        fprintf(stderr, "bnni: error: out of memory\n");
        return 1;
    }
    if (f->trace && trace_request(f->trace, f->trace_every > 0 ? (int)f->trace_every : TRACE_DEFAULT_EVERY,
                                  f->trace_probe > 0 ? (int)f->trace_probe : TRACE_DEFAULT_PROBE,
                                  f->trace_test > 0 ? (int)f->trace_test : TRACE_DEFAULT_SUBSET, *m, trace, err,
                                  sizeof err) < 0) {
        fprintf(stderr, "bnni: error: %s\n", err);
        return 1;
    }
    return 0;
}

static int train_command(Dist *d, int argc, char **argv)
{
    TrainFlags f;
    ModelSpec *m = NULL;
    TraceLog trace;
    Capture cap;
    char err[16384];
    int root = dist_rank(d) == 0, stopped_by = 0, saved = 0;
    capture_start(&cap, d);
    int rc = prepare(&f, &m, &trace, argc, argv);
    capture_end(&cap, err, sizeof err);
    if (dist_agree(d, rc, err, sizeof err) != 0) { /* every rank stops; rank 0 says why if another failed */
        if (root && rc == 0)
            fprintf(stderr, "bnni: error: %s\n", err);
        if (f.has_resumed)
            ckpt_free(&f.resumed);
        spec_free(m);
        return rc ? rc : 1;
    }
    rt_set_threads(f.threads > 0 ? (int)f.threads : default_threads(d));
    TrainOptions o = {
        .out = f.out ? f.out : f.resume ? f.resume : m->checkpoint, /* a resumed run goes on in its own file */
        .resume = f.resume,
        .resumed = f.has_resumed ? &f.resumed : NULL, /* the trainer takes it */
        .init = f.init,
        .metrics = f.metrics,
        .test_limit = f.test_limit > 0 ? f.test_limit : 0, /* 0: all */
        .quiet = f.quiet || !root,
        .progress = root && isatty(STDERR_FILENO),
        .log = stdout,
        .profile = f.profile,
        .profile_out = stderr,
        .mem_cap = f.mem_cap,
        .trace = f.trace ? &trace : NULL,
        .saved_epoch = &saved,
        .dist = d,
        .stopped_by = &stopped_by,
    };
    TrainStatus st = run_with_signals(m, &o, err, sizeof err);
    if (st == TRAIN_OK && !f.quiet && root)
        printf("saved %s (epoch %d%s)\n", o.out, saved, m->keep == KEEP_BEST ? ", the best validation accuracy" : "");
    else if (st == TRAIN_STOPPED && root)
        fprintf(stderr, "bnni: %s\n", err);
    else if (st != TRAIN_OK && root)
        fprintf(stderr, "bnni: error: %s\n", err);
    spec_free(m);
    return exit_status(st, stopped_by);
}

int cmd_train(int argc, char **argv)
{
    Dist *d;
    char err[4096];
    int rc;
    if (dist_open(&d, err, sizeof err) < 0) {
        if (!d || dist_rank(d) == 0)
            fprintf(stderr, "bnni: error: %s\n", err);
        rc = 1;
    } else {
        rc = train_command(d, argc, argv);
    }
    dist_close(d);
    return rc;
}
