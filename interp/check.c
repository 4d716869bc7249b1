/* The front end's entry points (frontend.h): read the file, parse it (grammar/), check the top-level
 * statements (each at most once; data, optimizer and network required), resolve blocks and names
 * (resolve.c), expand the network (expand.c), then the checks that need the whole model: batch size
 * against batchnorm, unused blocks, and the training-memory estimate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "override.h"
#include "parse.h"

static const char *const stmt_name[] = {
    [AS_MODEL] = "model", [AS_DATA] = "data",     [AS_OPTIMIZER] = "optimizer",   [AS_SCHEDULE] = "schedule",
    [AS_LOSS] = "loss",   [AS_EPOCHS] = "epochs", [AS_SEED] = "seed", [AS_CHECKPOINT] = "checkpoint",
    [AS_NETWORK] = "network",
};

static char *dup_or_fail(Checker *c, const char *s)
{
    char *d = strdup(s);
    if (!d)
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
    return d;
}

/* ---- top-level statements ---- */

static void unknown_kind(Checker *c, CallClass cls, const char *noun, const AstCall *call)
{
    const char *names[8];
    int n = call_names(cls, names, 8);
    const char *sug = diag_suggest(call->name, names, n);
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i == 0 ? "" : i == n - 1 ? " or " : ", ", names[i]);
    }
    if (sug)
        diag_error(c->d, call->loc, "unknown %s '%s' (did you mean '%s'?)", noun, call->name, sug);
    else
        diag_error(c->d, call->loc, "unknown %s '%s' (expected %s)", noun, call->name, list);
}

/* The CallSpec a data/optimizer/schedule/loss statement names, its arguments matched into v; NULL after errors. */
static const CallSpec *statement_call(Checker *c, const AstStmt *s, CallClass cls, const char *noun, ArgVal *v)
{
    const CallSpec *cs = call_find(cls, s->call->name);
    if (!cs) {
        unknown_kind(c, cls, noun, s->call);
        return NULL;
    }
    return args_resolve(c->d, cs, s->call, NULL, v) ? NULL : cs;
}

/* The data statement: its kind's schema (runtime/data/), then check_data.c. */
static void check_data(Checker *c, const AstStmt *s)
{
    ArgVal v[ARGS_MAX];
    const CallSpec *cs = statement_call(c, s, CC_DATA, "dataset", v);
    if (cs)
        check_data_call(c, cs, s, v);
}

static void check_optimizer(Checker *c, const AstStmt *s)
{
    ArgVal v[ARGS_MAX];
    const CallSpec *cs = statement_call(c, s, CC_OPTIMIZER, "optimizer", v);
    if (!cs)
        return;
    OptSpec *o = &c->m->opt;
    o->kind = (OptKind)cs->kind;
    o->lr = v[0].f;
    if (o->kind == OPT_SGD) {
        o->momentum = v[1].f, o->weight_decay = v[2].f, o->nesterov = (int)v[3].i;
        if (o->nesterov && o->momentum == 0) {
            diag_error(c->d, v[3].loc, "nesterov needs a momentum greater than 0");
            return;
        }
    } else {
        o->beta1 = v[1].f, o->beta2 = v[2].f, o->eps = v[3].f, o->weight_decay = v[4].f;
    }
    c->have_opt = 1;
}

static void check_schedule(Checker *c, const AstStmt *s)
{
    ArgVal v[ARGS_MAX];
    const CallSpec *cs = statement_call(c, s, CC_SCHEDULE, "schedule", v);
    if (!cs)
        return;
    SchedSpec *sc = &c->m->sched;
    sc->kind = (SchedKind)cs->kind;
    if (sc->kind == SCHED_STEP)
        sc->every = (int)v[0].i, sc->factor = v[1].f;
    if (sc->kind == SCHED_COSINE) {
        sc->min_lr = v[0].f;
        if (c->have_opt && sc->min_lr > c->m->opt.lr)
            diag_error(c->d, v[0].loc, "min_lr %g is above the optimizer's lr %g", sc->min_lr, c->m->opt.lr);
    }
}

static void check_loss(Checker *c, const AstStmt *s)
{
    ArgVal v[ARGS_MAX];
    statement_call(c, s, CC_LOSS, "loss", v);
}

static void check_counts(Checker *c, const AstStmt *epochs, const AstStmt *seed)
{
    static const ArgSpec e = {.key = "epochs", .type = AT_INT, .lo = 1, .hi = 1000000};
    static const ArgSpec r = {.key = "seed", .type = AT_INT, .lo = 0, .hi = ARG_NOMAX};
    ArgVal v;
    if (epochs && args_check_value(c->d, &e, &epochs->val, NULL, "epochs", &v) == 0)
        c->m->epochs = (int)v.i;
    if (seed && args_check_value(c->d, &r, &seed->val, NULL, "seed", &v) == 0)
        c->m->seed = (uint64_t)v.i;
}

/* `model NAME`, else the file name without its directory and extension. */
static void model_name(Checker *c, const AstStmt *s)
{
    char desc[160], stem[256];
    const char *name = NULL;
    if (s && s->val.kind == AV_IDENT)
        name = s->val.s;
    else if (s && !s->val.bad)
        diag_error(c->d, s->val.loc, "the model name must be a name such as lenet_bn, got %s",
                   ast_value_describe(&s->val, desc, sizeof desc));
    if (!name) {
        const char *base = strrchr(c->m->file, '/');
        base = base ? base + 1 : c->m->file;
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem)
            *dot = '\0';
        name = stem[0] ? stem : "model";
    }
    c->m->name = dup_or_fail(c, name);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* `checkpoint "run.h5", keep="last"|"best", every=N`: the options after the path. */
static void checkpoint_options(Checker *c, const AstStmt *s)
{
    static const char *const keeps[] = {"last", "best", NULL};
    static const ArgSpec opts[] = {ARG_STR("keep", "last", keeps), ARG_INT("every", 0, 0, 1000000, 0)};
    static const CallSpec cs = {"checkpoint", CC_DATA, 0, 2, opts, NULL, NULL};
    AstCall call = {.name = "checkpoint", .loc = s->loc, .parens = 1, .args = s->params, .nargs = s->nparams};
    ArgVal v[ARGS_MAX];
    if (!s->params || args_resolve(c->d, &cs, &call, NULL, v))
        return;
    c->m->keep = strcmp(v[0].s, "best") == 0 ? KEEP_BEST : KEEP_LAST;
    c->m->every = (int)v[1].i;
    if (c->m->keep == KEEP_BEST && c->have_data && c->m->data.validation == 0)
        diag_error(c->d, v[0].loc, "keep=\"best\" chooses the epoch by its validation accuracy, and the data has no "
                   "validation set (choosing on the test set would leak it): add validation=0.1 to the data statement");
}

static void check_checkpoint(Checker *c, const AstStmt *s)
{
    static const ArgSpec a = {.key = "checkpoint", .type = AT_STR};
    ArgVal v;
    char buf[512];
    if (!s) {
        if (c->m->name) {
            snprintf(buf, sizeof buf, "%s.h5", c->m->name);
            c->m->checkpoint = dup_or_fail(c, buf);
        }
        return;
    }
    checkpoint_options(c, s);
    if (args_check_value(c->d, &a, &s->val, NULL, "the checkpoint path", &v))
        return;
    if (!ends_with(v.s, ".h5") && !ends_with(v.s, ".hdf5")) {
        diag_error(c->d, v.loc, "the checkpoint path must end in .h5 (the file is HDF5), got %s", s->val.text);
        return;
    }
    c->m->checkpoint = dup_or_fail(c, v.s);
}

/* ---- whole-model checks ---- */

static void totals(const LayerSpec *v, int n, long long *np, long long *nb)
{
    for (int i = 0; i < n; i++) {
        *np += v[i].nparams;
        *nb += v[i].nbuffers;
        totals(v[i].body, v[i].nbody, np, nb);
    }
}

static const char *human(double bytes, char *buf, size_t len)
{
    const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5)
        bytes /= 1024, u++;
    snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

/* Values, gradients and two optimizer states per parameter; about three tensors per activation (output,
 * its gradient, what the backward keeps) for every image of a batch. */
static void check_memory(Checker *c, SrcLoc at)
{
    const ModelSpec *m = c->m;
    double acts = spec_activations(m), need = spec_train_bytes(m);
    double cap = (double)c->opts.mem_cap_bytes;
    if (cap == 0) {
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
        cap = pages > 0 && size > 0 ? (double)pages * (double)size : 0;
    }
    if (cap <= 0 || need <= cap)
        return;
    char a[32], b[32];
    diag_error(c->d, at, "training this model needs about %s of memory (%lld parameters, %.0f activation values "
               "per image at batch %d), more than %s %s", human(need, a, sizeof a), m->nparams, acts, m->data.batch,
               human(cap, b, sizeof b), c->opts.mem_cap_bytes ? "(the memory cap)" : "of physical memory");
}

static void check_batch(Checker *c)
{
    int batch = c->m->data.batch;
    const char *from = c->batch_cli ? " (from the command line)" : "";
    if (!c->have_data || c->nbatchnorm == 0)
        return;
    if (batch == 1)
        diag_error(c->d, c->batch_loc, "batch size 1%s with batchnorm: the batch variance is zero, so batchnorm "
                   "cannot normalize (use a batch of at least 8)", from);
    else if (batch < 8)
        diag_warning(c->d, c->batch_loc, "batch size %d%s is small for batchnorm: statistics over fewer than 8 "
                     "images are mostly noise", batch, from);
}

static void unused_blocks(Checker *c, const AstStmt *file)
{
    for (const AstStmt *s = file; s; s = s->next)
        for (int i = 0; s->kind == AS_BLOCK && i < c->nblocks; i++)
            if (c->blocks[i].def == s && !c->blocks[i].bad && c->blocks[i].calls == 0)
                diag_warning(c->d, s->name_loc, "block '%s' is never used", s->name);
}

/* Just after the last character of the last line (a final line break not counted), where the caret points. */
static SrcLoc end_of_text(const char *src, size_t len)
{
    if (!src)
        return (SrcLoc){0, 0};
    if (len > 0 && src[len - 1] == '\n')
        len--;
    if (len > 0 && src[len - 1] == '\r')
        len--;
    return diag_loc_of(src, len);
}

static void check_model(Checker *c, AstStmt **file)
{
    const AstStmt *first[AS_BLOCK] = {0};
    override_begin(c, file);
    AstStmt *ast = *file;
    for (AstStmt *s = ast; s; s = s->next) {
        if (s->kind >= AS_BLOCK)
            continue;
        if (first[s->kind])
            diag_error(c->d, s->loc, "duplicate '%s' statement (the first is at line %d)", stmt_name[s->kind],
                       first[s->kind]->loc.line);
        else
            first[s->kind] = s;
    }
    resolve_blocks(c, ast);
    model_name(c, first[AS_MODEL]);
    if (first[AS_DATA])
        check_data(c, first[AS_DATA]);
    if (first[AS_OPTIMIZER])
        check_optimizer(c, first[AS_OPTIMIZER]);
    if (first[AS_SCHEDULE])
        check_schedule(c, first[AS_SCHEDULE]);
    if (first[AS_LOSS])
        check_loss(c, first[AS_LOSS]);
    check_counts(c, first[AS_EPOCHS], first[AS_SEED]);
    check_checkpoint(c, first[AS_CHECKPOINT]);
    /* A missing statement is noticed only once the whole file was read: reported at its end, after the errors
     * inside it. */
    SrcLoc top = end_of_text(c->d->src, c->d->len);
    if (!first[AS_DATA])
        diag_error(c->d, top, "missing 'data' statement, such as: data fashion_mnist(batch=128)");
    if (!first[AS_OPTIMIZER])
        diag_error(c->d, top, "missing 'optimizer' statement, such as: optimizer sgd(lr=0.1)");
    if (!first[AS_NETWORK])
        diag_error(c->d, top, "missing 'network { ... }' statement");
    if (c->have_data)
        c->m->input = c->m->data.shape;
    AstStmt *net = (AstStmt *)first[AS_NETWORK];
    resolve_calls(c, ast, net);
    if (net && !c->d->stopped)
        expand_network(c, net);
    override_end(c);
    totals(c->m->layers, c->m->nlayers, &c->m->nparams, &c->m->nbuffers);
    check_batch(c);
    if (c->expanded && c->d->errors == 0) /* with errors, expansion may have stopped short of a call */
        unused_blocks(c, ast);
    if (c->d->errors == 0 && net && !c->opts.inference)
        check_memory(c, net->loc);
    resolve_free(c);
}

/* ---- entry points ---- */

/* The model as run: its text followed by the command line's overrides as `set` statements (override.h), so that a
 * checkpoint's model_source rebuilds it. Returns 0, or -1 (reported) when out of memory. */
static int record_overrides(ModelSpec *m, const CheckOptions *o)
{
    size_t len;
    if (o->noverrides == 0)
        return 0;
    char *text = override_source(m->source, m->source_len, o->overrides, o->noverrides, &len);
    if (!text) {
        fprintf(o->diag, "%s: error: out of memory\n", m->file);
        return -1;
    }
    free(m->source);
    m->source = text, m->source_len = len;
    return 0;
}

/* Takes text (len bytes plus a NUL) into the ModelSpec whatever happens. */
static int load_owned(const char *filename, char *text, size_t len, const CheckOptions *opts, ModelSpec **out)
{
    Checker c;
    memset(&c, 0, sizeof c);
    if (opts)
        c.opts = *opts;
    if (!c.opts.diag)
        c.opts.diag = stderr;
    if (c.opts.max_layers <= 0)
        c.opts.max_layers = CHECK_DEFAULT_MAX_LAYERS;
    Diag d;
    diag_init(&d, c.opts.diag, filename, text, len);
    diag_keep(&d); /* the checks run statement kind by statement kind: print what they find in source order */
    d.hide_warnings = c.opts.hide_warnings;
    c.d = &d;
    ModelSpec *m = calloc(1, sizeof *m);
    char *file = strdup(filename);
    if (!m || !file) {
        diag_error(&d, (SrcLoc){0, 0}, "out of memory");
        diag_flush(&d);
        free(m), free(file), free(text);
        return 1;
    }
    m->source = text;
    m->source_len = len;
    m->file = file;
    m->epochs = 10;
    m->seed = 1;
    m->sched.kind = SCHED_CONSTANT;
    c.m = m;
    AstStmt *ast = NULL;
    if (parse_source(&d, text, len, &ast) == 0)
        check_model(&c, &ast);
    ast_free(ast);
    diag_flush(&d);
    if (d.errors || record_overrides(m, &c.opts) < 0) {
        spec_free(m);
        return 1;
    }
    *out = m;
    return 0;
}

int bnn_load_source(const char *filename, const char *src, size_t len, const CheckOptions *opts, ModelSpec **out)
{
    *out = NULL;
    if (!filename)
        filename = "<input>";
    char *text = malloc(len + 1);
    if (!text) {
        fprintf(opts && opts->diag ? opts->diag : stderr, "%s: error: out of memory\n", filename);
        return 1;
    }
    if (len)
        memcpy(text, src, len);
    text[len] = '\0';
    return load_owned(filename, text, len, opts, out);
}

/* Reads the whole file (at most PARSE_MAX_BYTES + 1 bytes, so an oversized file is still recognised).
 * Returns the text (caller frees) or NULL with errno set (EFBIG when too large). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 == cap) {
            if (cap > PARSE_MAX_BYTES) {
                errno = EFBIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb, cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f))
                break;
            fclose(f);
            buf[n] = '\0';
            *len = n;
            return buf;
        }
    }
    int e = errno ? errno : ENOMEM;
    free(buf);
    fclose(f);
    errno = e;
    return NULL;
}

/* A file that is no model text at all gets one line instead of quoted binary: a checkpoint given where the model
 * belongs is the likely mistake. Returns 1 after reporting, else 0. */
static int not_text(const char *path, const char *text, size_t len, FILE *diag)
{
    static const char hdf5[8] = "\211HDF\r\n\032\n";
    if (len >= 8 && memcmp(text, hdf5, 8) == 0)
        fprintf(diag, "%s: error: this is an HDF5 file, not a model file (to continue training: bnni train "
                "MODEL.bnn --resume %s)\n", path, path);
    else if (memchr(text, '\0', len))
        fprintf(diag, "%s: error: not a text file (it holds binary data; a model file is .bnn text)\n", path);
    else
        return 0;
    return 1;
}

int bnn_load_file(const char *path, const CheckOptions *opts, ModelSpec **out)
{
    *out = NULL;
    size_t len = 0;
    errno = 0;
    char *text = read_all(path, &len);
    FILE *diag = opts && opts->diag ? opts->diag : stderr;
    if (text && not_text(path, text, len, diag)) {
        free(text);
        return 1;
    }
    if (!text) {
        if (errno == EFBIG)
            fprintf(diag, "%s: error: cannot read: the file is larger than %u MiB\n", path, PARSE_MAX_BYTES >> 20);
        else
            fprintf(diag, "%s: error: cannot read: %s\n", path, strerror(errno));
        return 1;
    }
    return load_owned(path, text, len, opts, out);
}
