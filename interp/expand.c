/* Network expansion: block calls (parameters substituted), repeat and residual, into the ModelSpec's
 * layer list, naming every layer and inferring every shape on the way with runtime/layer.h's shape rules.
 * Names (docs/language.md, "Layer names"): a layer's label, else `<type>_<k>` counted per type in network
 * order (pre-order: a residual before its body). Labels inside a block expansion get the call's prefix,
 * `<call label>.` or `<block>_<k>.`, and labels inside a repeat get the iteration, `_<i>`. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/layer.h"
#include "check.h"

#define RSUF_MAX 512 /* "_i" per enclosing repeat: at most CHECK_MAX_DEPTH of them */

typedef struct Frame {
    const struct Frame *parent;
    const Block *block;            /* NULL: the network itself */
    SrcLoc call_loc;
    const Env *env;
    char prefix[SPEC_NAME_MAX];    /* prepended to labels: "conv_bn_1." */
    int long_prefix;               /* the prefix did not fit: every label inside makes a name too long */
} Frame;

typedef struct Seq {
    LayerSpec *v;
    int n, cap;
} Seq;

/* The shape flowing through the sequence; unknown after a shape error (no cascade of errors). */
typedef struct Cursor {
    Shape s;
    int known;
} Cursor;

typedef struct Expander {
    Checker *c;
    Diag *d;
    long long nlayers, steps, max_layers, max_steps;
    int depth;
    int stop;                      /* a limit was hit or memory ran out: unwind */
    int counts[LK_COUNT];
    SrcLoc top_loc;                /* the network statement being expanded, for limit errors */
    const Seq *top;
    SrcLoc *labels;                /* per layer in network order: where its label is (line 0: none) */
    long long labels_cap;
} Expander;

static void expand_list(Expander *x, const Frame *f, const char *rsuf, const AstStmt *list, Seq *out, Cursor *cur);
static void expand_item(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur);

static void frame_notes(Diag *d, const void *arg)
{
    for (const Frame *f = arg; f && f->block; f = f->parent)
        diag_note(d, f->call_loc, "in block '%s' called here", f->block->def->name);
}

static int shape_eq(Shape a, Shape b)
{
    return a.rank == b.rank && a.c == b.c && (a.rank == 1 || (a.h == b.h && a.w == b.w));
}

static void out_of_memory(Expander *x)
{
    diag_error(x->d, (SrcLoc){0, 0}, "out of memory while expanding the network");
    x->stop = 1;
}

/* Takes l (and its residual body); on failure frees the body. */
static void seq_push(Expander *x, Seq *s, LayerSpec *l)
{
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 16;
        LayerSpec *nv = realloc(s->v, (size_t)nc * sizeof *nv);
        if (!nv) {
            spec_layers_free(l->body, l->nbody);
            out_of_memory(x);
            return;
        }
        s->v = nv, s->cap = nc;
    }
    s->v[s->n++] = *l;
}

/* Limits concern the whole network, so their errors point at the network statement without expansion notes. */
static int limit_error(Expander *x, const char *what, long long n)
{
    DiagContextFn saved = x->d->context;
    x->d->context = NULL;
    diag_error(x->d, x->top_loc, what, n);
    x->d->context = saved;
    return x->stop = 1;
}

/* One unit of expansion work; returns 1 when expansion must stop. */
static int tick(Expander *x)
{
    if (x->stop || x->d->stopped)
        return x->stop = 1;
    if (++x->steps > x->max_steps) {
        return limit_error(x, "the network is too large to expand (more than %lld steps)", x->max_steps);
    }
    return 0;
}

/* Counts a layer about to be added (label: its AstStmt's label location, line 0 for none); returns 1 (after
 * reporting) past the layer limit. */
static int count_layer(Expander *x, SrcLoc label)
{
    if (x->nlayers == x->max_layers)
        return limit_error(x, "the network expands to more than %lld layers (the limit)", x->max_layers);
    if (x->nlayers == x->labels_cap) {
        long long nc = x->labels_cap ? x->labels_cap * 2 : 256;
        SrcLoc *nv = realloc(x->labels, (size_t)nc * sizeof *nv);
        if (!nv) {
            out_of_memory(x);
            return 1;
        }
        x->labels = nv, x->labels_cap = nc;
    }
    x->labels[x->nlayers++] = label;
    return 0;
}

static int enter(Expander *x, SrcLoc loc)
{
    if (x->depth < CHECK_MAX_DEPTH) {
        x->depth++;
        return 0;
    }
    diag_error(x->d, loc, "nested too deeply (more than %d levels of repeat, residual and block calls)", CHECK_MAX_DEPTH);
    return -1;
}

/* ---- names ---- */

static int make_name(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, const char *type, int k,
                     char out[SPEC_NAME_MAX])
{
    int n;
    if (!st->label)
        n = snprintf(out, SPEC_NAME_MAX, "%s_%d", type, k);
    else if (f->long_prefix)
        n = SPEC_NAME_MAX;
    else
        n = snprintf(out, SPEC_NAME_MAX, "%s%s%s", f->prefix, st->label, rsuf);
    if (n < SPEC_NAME_MAX)
        return 0;
    diag_error(x->d, st->label ? st->label_loc : st->loc, "the name of this layer is longer than %d characters",
               SPEC_NAME_MAX - 1);
    return -1;
}

/* ---- layers ---- */

/* The resolved arguments into l->arg, in the schema's order, then the kind's own rules (LayerOps.configure). */
static int set_args(Expander *x, LayerSpec *l, const CallSpec *cs, const ArgVal *v)
{
    const ArgSpec *args = call_args(cs);
    for (int k = 0; k < call_nargs(cs); k++) {
        if (args[k].type == AT_STR) {
            if (strlen(v[k].s) >= sizeof l->arg[k].str) {
                diag_error(x->d, v[k].loc, "argument '%s' of %s is longer than %d characters", args[k].key, cs->name,
                           (int)sizeof l->arg[k].str - 1);
                return -1;
            }
            snprintf(l->arg[k].str, sizeof l->arg[k].str, "%s", v[k].s);
        } else {
            l->arg[k].num = args[k].type == AT_BOOL ? (double)v[k].i : v[k].f;
        }
        l->given |= (unsigned)v[k].given << k;
    }
    char err[256];
    int bad = 0;
    if (cs->layer->configure && cs->layer->configure(l, &bad, err, sizeof err) < 0) {
        if (v[bad].origin) { /* an override from the command line: no place in the file, no block notes */
            DiagContextFn saved = x->d->context;
            x->d->context = NULL;
            diag_error(x->d, (SrcLoc){0, 0}, "%s: %s", v[bad].origin, err);
            x->d->context = saved;
        } else
            diag_error(x->d, v[bad].loc, "%s", err);
        return -1;
    }
    return 0;
}

static void infer(Expander *x, LayerSpec *l, Cursor *cur)
{
    char err[256], buf[64];
    if (!cur->known)
        return;
    l->in = cur->s;
    if (layer_out_shape(l, cur->s, &l->out, &l->nparams, &l->nbuffers, err, sizeof err)) {
        diag_error(x->d, l->loc, "%s", err);
        cur->known = 0;
        return;
    }
    long long size = (long long)l->out.c * l->out.h * l->out.w;
    if (size <= 0 || l->out.c <= 0 || l->out.h <= 0 || l->out.w <= 0) {
        diag_error(x->d, l->loc, "%s's output would be empty (%s)", l->name, shape_str(l->out, buf, sizeof buf));
        cur->known = 0;
    } else if (size > INT_MAX) {
        diag_error(x->d, l->loc, "%s's output %s would hold %lld values per image (more than %d)", l->name,
                   shape_str(l->out, buf, sizeof buf), size, INT_MAX);
        cur->known = 0;
    } else {
        cur->s = l->out;
    }
}

/* Before batchnorm bn: a layer with a `bias` argument set. */
static void redundant_bias(Expander *x, const Seq *out, const LayerSpec *bn)
{
    if (out->n == 0)
        return;
    const LayerSpec *prev = &out->v[out->n - 1];
    int k = layer_arg_index(prev->kind, "bias");
    if (k >= 0 && spec_int(prev, k))
        diag_warning(x->d, prev->loc, "the bias of this %s is redundant: the batchnorm after it subtracts the mean%s "
                     "(write bias=false)", layer_ops[prev->kind]->type,
                     layer_arg(bn, "affine") == 0 ? "" : " and adds its own beta");
}

static void emit_layer(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur)
{
    const CallSpec *cs = call_layer((LayerKind)st->ref_index);
    LayerSpec l;
    memset(&l, 0, sizeof l);
    l.kind = (LayerKind)cs->kind;
    l.loc = st->loc;
    if (override_layer_off(x->c, l.kind)) /* --set KIND=off: as if the call were not written */
        return;
    int k = ++x->counts[l.kind];
    ArgVal v[ARGS_MAX];
    if (make_name(x, f, rsuf, st, cs->name, k, l.name) || args_resolve(x->d, cs, st->call, f->env, v)) {
        cur->known = 0;
        return;
    }
    override_layer_args(x->c, &l, cs, v);
    if (set_args(x, &l, cs, v)) {
        cur->known = 0;
        return;
    }
    if (count_layer(x, st->label ? st->label_loc : (SrcLoc){0, 0}))
        return;
    if (l.kind == LK_BATCHNORM) {
        x->c->nbatchnorm++;
        redundant_bias(x, out, &l);
    }
    infer(x, &l, cur);
    seq_push(x, out, &l);
}

/* ---- input ---- */

static int value_shape(Expander *x, const AstValue *v, Shape *s)
{
    char desc[160];
    if (v->bad)
        return -1;
    if (v->kind == AV_INT && v->i >= 1 && v->i <= (1 << 30)) {
        *s = (Shape){1, (int)v->i, 1, 1};
        return 0;
    }
    if (v->kind == AV_SHAPE && v->ndims == 3) {
        for (int i = 0; i < 3; i++) {
            if (v->dims[i] < 1 || v->dims[i] > 65536) {
                diag_error(x->d, v->loc, "the dimensions of input %s must be between 1 and 65536", v->text);
                return -1;
            }
        }
        *s = (Shape){3, (int)v->dims[0], (int)v->dims[1], (int)v->dims[2]};
        return 0;
    }
    if (v->kind == AV_SHAPE)
        diag_error(x->d, v->loc, "input %s has %d dimension%s; write CxHxW, such as 1x28x28", v->text, v->ndims,
                   v->ndims == 1 ? "" : "s");
    else
        diag_error(x->d, v->loc, "input must be a CxHxW shape such as 1x28x28, or a feature count from 1 to %d, got %s",
                   1 << 30, ast_value_describe(v, desc, sizeof desc));
    return -1;
}

static void check_input(Expander *x, const Frame *f, const AstStmt *st, const Seq *out, Cursor *cur)
{
    const AstValue *v = env_subst(f->env, &st->val);
    Shape s;
    char a[64], b[64];
    if (value_shape(x, v, &s))
        return;
    if (!cur->known) {
        /* no data statement, or an earlier error: the declared shape lets checking go on */
        cur->s = s;
        cur->known = 1;
    } else if (shape_eq(s, cur->s)) {
        return;
    } else if (out == x->top && out->n == 0 && x->c->have_data && cur->s.rank == 3) {
        diag_error(x->d, v->loc, "input %s does not match the %s images, which are %s", shape_str(s, a, sizeof a),
                   x->c->m->data.kind, shape_str(cur->s, b, sizeof b));
    } else if (out == x->top && out->n == 0 && x->c->have_data) {
        diag_error(x->d, v->loc, "input %s does not match the %s data, which has %d features",
                   shape_str(s, a, sizeof a), x->c->m->data.kind, cur->s.c);
    } else {
        diag_error(x->d, v->loc, "input %s does not match the shape here, %s", shape_str(s, a, sizeof a),
                   shape_str(cur->s, b, sizeof b));
    }
}

/* ---- repeat, residual, block calls ---- */

static void expand_repeat(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur)
{
    static const ArgSpec count = {.key = "count", .type = AT_INT, .lo = 1, .hi = CHECK_MAX_REPEAT};
    ArgVal n;
    if (args_check_value(x->d, &count, &st->val, f->env, "the repeat count", &n) || enter(x, st->loc)) {
        cur->known = 0;
        return;
    }
    for (long long i = 1; i <= n.i && !x->stop; i++) {
        char suf[RSUF_MAX];
        snprintf(suf, sizeof suf, "%s_%lld", rsuf, i);
        long long n0 = x->nlayers;
        long long e0 = x->d->reports;
        expand_list(x, f, suf, st->body, out, cur);
        if (i == 1 && x->d->reports > e0)
            break; /* the same errors would come again */
        if (i == 1 && x->nlayers == n0 && !x->stop) {
            diag_error(x->d, st->loc, "this repeat has no layers in its body");
            break;
        }
    }
    x->depth--;
}

static void expand_residual(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur)
{
    LayerSpec r;
    memset(&r, 0, sizeof r);
    r.kind = LK_RESIDUAL;
    r.loc = st->loc;
    int k = ++x->counts[LK_RESIDUAL];
    if (make_name(x, f, rsuf, st, "residual", k, r.name) || enter(x, st->loc)) {
        cur->known = 0;
        return;
    }
    if (count_layer(x, st->label ? st->label_loc : (SrcLoc){0, 0})) {
        x->depth--;
        return;
    }
    Seq body = {0};
    Cursor in = *cur;
    long long e0 = x->d->reports;
    expand_list(x, f, rsuf, st->body, &body, &in);
    x->depth--;
    char a[64], b[64];
    if (body.n == 0 && x->d->reports == e0 && !x->stop)
        diag_error(x->d, st->loc, "this residual has no layers in its body");
    else if (cur->known && in.known && !shape_eq(in.s, cur->s))
        diag_error(x->d, st->loc, "the residual's body changes the shape from %s to %s, so its input cannot be added "
                   "to its output", shape_str(cur->s, a, sizeof a), shape_str(in.s, b, sizeof b));
    if (cur->known)
        r.in = r.out = cur->s;
    r.body = body.v;
    r.nbody = body.n;
    seq_push(x, out, &r);
}

/* "block 'a' calls itself: a -> b -> a" */
static void cycle_error(Expander *x, const Frame *f, const Block *b, const AstStmt *st)
{
    const Frame *chain[CHECK_MAX_DEPTH + 1];
    int n = 0;
    for (const Frame *g = f; g && g->block && n <= CHECK_MAX_DEPTH; g = g->parent) {
        chain[n++] = g;
        if (g->block == b)
            break;
    }
    char text[512];
    size_t len = (size_t)snprintf(text, sizeof text, "%s", b->def->name);
    for (int i = n - 2; i >= 0 && len < sizeof text; i--)
        len += (size_t)snprintf(text + len, sizeof text - len, " -> %s", chain[i]->block->def->name);
    if (len < sizeof text)
        snprintf(text + len, sizeof text - len, " -> %s", b->def->name);
    diag_error(x->d, st->loc, "block '%s' calls itself: %s", b->def->name, text);
}

/* Binds the call's arguments (already matched by resolve.c) to b's parameters. Caller frees env->vals. */
static int bind(Expander *x, const Block *b, const AstCall *call, const Env *caller, Env *env)
{
    const AstValue **vals = calloc((size_t)b->nparams + 1, sizeof *vals);
    if (!vals) {
        out_of_memory(x);
        return -1;
    }
    int pos = 0;
    for (const AstArg *a = call->args; a; a = a->next) {
        int k = a->key ? block_param(b, a->key) : pos++;
        if (k >= 0 && k < b->nparams)
            vals[k] = env_subst(caller, &a->val);
    }
    for (int k = 0; k < b->nparams; k++)
        if (!vals[k])
            vals[k] = b->defaults[k];
    *env = (Env){.block = b->def->name, .names = b->names, .vals = vals, .n = b->nparams};
    return 0;
}

static void expand_block(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur)
{
    Block *b = &x->c->blocks[st->ref_index];
    for (const Frame *g = f; g && g->block; g = g->parent) {
        if (g->block == b) {
            cycle_error(x, f, b, st);
            cur->known = 0;
            return;
        }
    }
    Env env;
    if (enter(x, st->loc)) {
        cur->known = 0;
        return;
    }
    if (bind(x, b, st->call, f->env, &env)) {
        x->depth--;
        return;
    }
    Frame nf = {.parent = f, .block = b, .call_loc = st->loc, .env = &env};
    int k = ++b->calls, n;
    if (st->label)
        n = snprintf(nf.prefix, sizeof nf.prefix, "%s%s%s.", f->prefix, st->label, rsuf);
    else
        n = snprintf(nf.prefix, sizeof nf.prefix, "%s%s_%d.", f->prefix, b->def->name, k);
    nf.long_prefix = f->long_prefix || n >= (int)sizeof nf.prefix;
    long long n0 = x->nlayers;
    long long e0 = x->d->reports;
    const void *saved = x->d->context_arg;
    x->d->context_arg = &nf;
    expand_list(x, &nf, "", b->def->body, out, cur);
    x->d->context_arg = saved;
    x->depth--;
    if (x->nlayers == n0 && x->d->reports == e0 && !x->stop)
        diag_error(x->d, st->loc, "block '%s' expands to no layers", b->def->name);
    free((void *)env.vals); /* allocated by bind */
}

static void expand_item(Expander *x, const Frame *f, const char *rsuf, const AstStmt *st, Seq *out, Cursor *cur)
{
    switch (st->kind) {
    case AS_CALL:
        if (st->ref == REF_LAYER)
            emit_layer(x, f, rsuf, st, out, cur);
        else if (st->ref == REF_BLOCK)
            expand_block(x, f, rsuf, st, out, cur);
        else
            cur->known = 0; /* reported by resolve.c */
        break;
    case AS_INPUT: check_input(x, f, st, out, cur); break;
    case AS_REPEAT: expand_repeat(x, f, rsuf, st, out, cur); break;
    case AS_RESIDUAL: expand_residual(x, f, rsuf, st, out, cur); break;
    default: break;
    }
}

static void expand_list(Expander *x, const Frame *f, const char *rsuf, const AstStmt *list, Seq *out, Cursor *cur)
{
    for (const AstStmt *st = list; st && !tick(x); st = st->next)
        expand_item(x, f, rsuf, st, out, cur);
}

/* ---- whole-network checks ---- */

typedef struct NameRef {
    const LayerSpec *l;
    long long order;
} NameRef;

static void collect(const LayerSpec *v, int n, NameRef *refs, long long *k)
{
    for (int i = 0; i < n; i++) {
        refs[*k] = (NameRef){&v[i], *k};
        (*k)++;
        collect(v[i].body, v[i].nbody, refs, k);
    }
}

static int by_name(const void *pa, const void *pb)
{
    const NameRef *a = pa, *b = pb;
    int r = strcmp(a->l->name, b->l->name);
    return r ? r : (a->order > b->order) - (a->order < b->order);
}

typedef struct Clash {
    const NameRef *first, *dup;
} Clash;

static int by_dup_order(const void *pa, const void *pb)
{
    const Clash *a = pa, *b = pb;
    return (a->dup->order > b->dup->order) - (a->dup->order < b->dup->order);
}

/* A layer labelled with a name that is also another layer's automatic name is reported at the label. */
static void report_clash(Expander *x, const Clash *k)
{
    SrcLoc la = x->labels[k->first->order], lb = x->labels[k->dup->order];
    const LayerSpec *a = k->first->l, *b = k->dup->l;
    if (la.line && !lb.line)
        diag_error(x->d, la, "label '%s' is also the automatic name of the %s layer at line %d; choose another label",
                   a->name, layer_ops[b->kind]->type, b->loc.line);
    else if (lb.line && !la.line)
        diag_error(x->d, lb, "label '%s' is also the automatic name of the %s layer at line %d; choose another label",
                   b->name, layer_ops[a->kind]->type, a->loc.line);
    else
        diag_error(x->d, lb.line ? lb : b->loc, "duplicate layer name '%s' (first used at line %d)", b->name,
                   (la.line ? la : a->loc).line);
}

/* Every name must be unique: they are the checkpoint's group names. Clashes are reported in network order. */
static void check_names(Expander *x, const Seq *top)
{
    size_t cap = (size_t)(x->nlayers ? x->nlayers : 1);
    NameRef *refs = malloc(cap * sizeof *refs);
    Clash *clashes = malloc(cap * sizeof *clashes);
    if (!refs || !clashes) {
        free(refs), free(clashes);
        out_of_memory(x);
        return;
    }
    long long n = 0, nc = 0;
    collect(top->v, top->n, refs, &n);
    qsort(refs, (size_t)n, sizeof *refs, by_name);
    for (long long i = 1, first = 0; i < n; i++) {
        if (strcmp(refs[i].l->name, refs[first].l->name) != 0)
            first = i;
        else
            clashes[nc++] = (Clash){&refs[first], &refs[i]};
    }
    qsort(clashes, (size_t)nc, sizeof *clashes, by_dup_order);
    for (long long i = 0; i < nc && !x->d->stopped; i++)
        report_clash(x, &clashes[i]);
    free(clashes);
    free(refs);
}

static void check_output(Expander *x, const LayerSpec *last, const Cursor *cur)
{
    const DataSpec *ds = &x->c->m->data;
    char buf[64];
    if (!cur->known || !x->c->have_data)
        return;
    if (cur->s.rank != 1)
        diag_error(x->d, last->loc, "the network's output is %s, but it must be %d class scores: end with flatten "
                   "and dense(%d)", shape_str(cur->s, buf, sizeof buf), ds->classes, ds->classes);
    else if (cur->s.c != ds->classes)
        diag_error(x->d, last->loc, "%s has %d outputs but the data has %d classes", last->name, cur->s.c,
                   ds->classes);
}

void expand_network(Checker *c, const AstStmt *network)
{
    Expander x = {.c = c, .d = c->d, .max_layers = c->opts.max_layers};
    x.max_steps = x.max_layers * CHECK_STEPS_PER_LAYER;
    Frame top;
    memset(&top, 0, sizeof top);
    Seq seq = {0};
    Cursor cur = {c->m->data.shape, c->have_data};
    x.top = &seq;
    long long e0 = c->d->reports;
    c->d->context = frame_notes;
    c->d->context_arg = &top;
    for (const AstStmt *st = network->body; st && !tick(&x); st = st->next) {
        x.top_loc = st->loc;
        expand_item(&x, &top, "", st, &seq, &cur);
    }
    c->d->context = NULL;
    c->d->context_arg = NULL;
    c->m->layers = seq.v;
    c->m->nlayers = seq.n;
    c->m->nlayers_total = x.nlayers;
    if (!x.stop) {
        if (seq.n == 0 && c->d->reports == e0)
            diag_error(c->d, network->loc, "the network has no layers");
        if (seq.n > 0) {
            const LayerSpec *last = &seq.v[seq.n - 1];
            check_output(&x, last, &cur);
            if (last->kind == LK_BATCHNORM)
                diag_warning(c->d, last->loc, "the network ends with batchnorm: it normalizes the class scores, "
                             "which is rarely intended");
        }
        check_names(&x, &seq);
        c->expanded = !x.stop;
    }
    free(x.labels);
}
