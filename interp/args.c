/* The table of calls and their arguments (the single source of truth for types, defaults and ranges;
 * docs/language.md lists the same), and the matching of written calls against it. */
#include "args.h"

#include <stdio.h>
#include <string.h>

/* Every call but the layers and the data kinds. */
static const CallSpec calls[] = {
    {"sgd", CC_OPTIMIZER, OPT_SGD, 4,
     (const ArgSpec[]){ARG_NUM("lr", 1, 0, 1, ARG_NOMAX, 0, 0), ARG_NUM("momentum", 0, 0, 0, 1, 1, 0),
                       ARG_NUM("weight_decay", 0, 0, 0, ARG_NOMAX, 0, 0), ARG_BOOL("nesterov", 0)}, NULL, NULL},
    {"adam", CC_OPTIMIZER, OPT_ADAM, 5,
     (const ArgSpec[]){ARG_NUM("lr", 0, 0, 1, ARG_NOMAX, 0, 0.001), ARG_NUM("beta1", 0, 0, 0, 1, 1, 0.9),
                       ARG_NUM("beta2", 0, 0, 0, 1, 1, 0.999), ARG_NUM("eps", 0, 0, 0, ARG_NOMAX, 0, 1e-8),
                       ARG_NUM("weight_decay", 0, 0, 0, ARG_NOMAX, 0, 0)}, NULL, NULL},
    {"constant", CC_SCHEDULE, SCHED_CONSTANT, 0, NULL, NULL, NULL},
    {"step", CC_SCHEDULE, SCHED_STEP, 2,
     (const ArgSpec[]){ARG_INT("every", 1, 1, 1000000, 0), ARG_NUM("factor", 1, 0, 1, 1, 0, 0)}, NULL, NULL},
    {"cosine", CC_SCHEDULE, SCHED_COSINE, 1, (const ArgSpec[]){ARG_NUM("min_lr", 0, 0, 0, ARG_NOMAX, 0, 0)}, NULL, NULL},
    {"cross_entropy", CC_LOSS, 0, 0, NULL, NULL, NULL},
};
#define NCALLS ((int)(sizeof calls / sizeof calls[0]))

/* The layers, from their own files' schemas (layers/registry.h lists them). */
#define LAYER_EXTERN(NAME, name) extern const LayerOps name##_ops;
LAYER_KINDS(LAYER_EXTERN)
#undef LAYER_EXTERN
#define LAYER_CALL(NAME, name) [LK_##NAME] = {#name, CC_LAYER, LK_##NAME, 0, NULL, &name##_ops, NULL},
static const CallSpec layer_calls[LK_COUNT] = {LAYER_KINDS(LAYER_CALL)};
#undef LAYER_CALL

/* The data kinds, from their own files' schemas (data/registry.h lists them). */
#define DATA_EXTERN(NAME, name) extern const DataKindOps name##_data;
DATA_KINDS(DATA_EXTERN)
#undef DATA_EXTERN
#define DATA_CALL(NAME, name) [DK_##NAME] = {#name, CC_DATA, DK_##NAME, 0, NULL, NULL, &name##_data},
static const CallSpec data_calls[DK_COUNT] = {DATA_KINDS(DATA_CALL)};
#undef DATA_CALL

/* A layer kind that runs a sub-network is written with its own syntax (`residual { ... }`), not called. */
static int callable(const CallSpec *cs) { return !cs->layer || !cs->layer->body; }

const CallSpec *call_layer(LayerKind k) { return &layer_calls[k]; }

const CallSpec *call_find(CallClass cls, const char *name)
{
    for (int i = 0; cls == CC_LAYER && i < LK_COUNT; i++)
        if (callable(&layer_calls[i]) && strcmp(layer_calls[i].name, name) == 0)
            return &layer_calls[i];
    for (int i = 0; cls == CC_DATA && i < DK_COUNT; i++)
        if (strcmp(data_calls[i].name, name) == 0)
            return &data_calls[i];
    for (int i = 0; i < NCALLS; i++)
        if (calls[i].cls == cls && strcmp(calls[i].name, name) == 0)
            return &calls[i];
    return NULL;
}

int call_names(CallClass cls, const char **out, int max)
{
    int n = 0;
    for (int i = 0; cls == CC_LAYER && i < LK_COUNT && n < max; i++)
        if (callable(&layer_calls[i]))
            out[n++] = layer_calls[i].name;
    for (int i = 0; cls == CC_DATA && i < DK_COUNT && n < max; i++)
        out[n++] = data_calls[i].name;
    for (int i = 0; i < NCALLS && n < max; i++)
        if (calls[i].cls == cls)
            out[n++] = calls[i].name;
    return n;
}

static const char *default_text(const ArgSpec *a, char *buf, size_t len)
{
    if (a->defdoc)
        snprintf(buf, len, "%s", a->defdoc);
    else if (a->type == AT_CALL)
        snprintf(buf, len, "none");
    else if (a->type == AT_BOOL)
        snprintf(buf, len, "%s", a->def ? "true" : "false");
    else if (a->type == AT_STR)
        snprintf(buf, len, "\"%s\"", a->sdef);
    else
        snprintf(buf, len, "%g", a->def);
    return buf;
}

const char *call_signature(const CallSpec *cs, char *buf, size_t len)
{
    const ArgSpec *args = call_args(cs);
    size_t n = (size_t)snprintf(buf, len, "%s(", cs->name);
    for (int k = 0; k < call_nargs(cs) && n < len; k++) {
        char def[64];
        if (args[k].required)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? ", " : "", args[k].key);
        else
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", k ? ", " : "", args[k].key,
                                  default_text(&args[k], def, sizeof def));
    }
    if (n < len)
        snprintf(buf + n, len - n, ")");
    return buf;
}

const AstValue *env_subst(const Env *env, const AstValue *v)
{
    if (!env || v->kind != AV_IDENT || !v->s)
        return v;
    for (int i = 0; i < env->n; i++)
        if (strcmp(env->names[i], v->s) == 0)
            return env->vals[i];
    return v;
}

/* ---- one value ---- */

static const char *const type_noun[] = {"an integer", "a number", "true or false", "a string",
                                        "a shape such as 32x32", "a call"};

static int type_ok(ArgType t, AstValueKind k)
{
    switch (t) {
    case AT_INT: return k == AV_INT;
    case AT_NUM: return k == AV_INT || k == AV_FLOAT;
    case AT_BOOL: return k == AV_BOOL;
    case AT_STR: return k == AV_STRING;
    case AT_SHAPE: return k == AV_SHAPE;
    case AT_CALL: return k == AV_CALL;
    }
    return 0;
}

static int check_choice(Diag *d, const ArgSpec *a, const AstValue *v, const char *what, const char *via)
{
    if (!a->choices) {
        if (v->s[0])
            return 0;
        diag_error(d, v->loc, "%s must not be empty%s", what, via);
        return -1;
    }
    int n = 0;
    char list[128] = "";
    for (; a->choices[n]; n++) {
        if (strcmp(v->s, a->choices[n]) == 0)
            return 0;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s\"%s\"", n == 0 ? "" : a->choices[n + 1] ? ", " : " or ", a->choices[n]);
    }
    const char *sug = diag_suggest(v->s, a->choices, n);
    char hint[96] = "";
    if (sug)
        snprintf(hint, sizeof hint, " (did you mean \"%s\"?)", sug);
    diag_error(d, v->loc, "%s must be %s, got %s%s%s", what, list, v->text, hint, via);
    return -1;
}

int args_check_value(Diag *d, const ArgSpec *a, const AstValue *v0, const Env *env, const char *what, ArgVal *out)
{
    const AstValue *v = env_subst(env, v0);
    char desc[160], via[160] = "", range[96], named[512];
    if (v->origin) { /* from the command line: no line to point at, so the message names the --set */
        snprintf(named, sizeof named, "%s: %s", v->origin, what);
        what = named;
    }
    out->origin = v->origin;
    if (v != v0)
        snprintf(via, sizeof via, " (through parameter '%s' of block '%s')", v0->s, env->block);
    out->given = 1;
    out->loc = v->loc;
    if (v->bad)
        return -1;
    if (!type_ok(a->type, v->kind)) {
        const char *hint = a->type == AT_STR && v->kind == AV_IDENT ? " (strings are written in double quotes)" : "";
        char noun[64];
        if (a->type == AT_CALL)
            snprintf(noun, sizeof noun, "a call such as %s(...)", a->key);
        diag_error(d, v->loc, "%s must be %s, got %s%s%s", what, a->type == AT_CALL ? noun : type_noun[a->type],
                   ast_value_describe(v, desc, sizeof desc), hint, via);
        return -1;
    }
    if (a->type == AT_CALL && strcmp(v->call->name, a->key) != 0) {
        diag_error(d, v->loc, "%s must be a call of %s(...), got %s(...)%s", what, a->key, v->call->name, via);
        return -1;
    }
    if ((a->type == AT_INT || a->type == AT_NUM) && !arg_in_range(a, v->f)) {
        diag_error(d, v->loc, "%s must be %s, got %s%s", what, arg_range_text(a, range, sizeof range), v->text, via);
        return -1;
    }
    if (a->type == AT_STR && check_choice(d, a, v, what, via))
        return -1;
    out->i = v->i;
    out->f = v->f;
    out->s = v->kind == AV_SHAPE ? v->text : v->s;
    out->call = v->call;
    return 0;
}

/* ---- a whole call ---- */

static int find_key(const CallSpec *cs, const char *key)
{
    for (int k = 0; k < call_nargs(cs); k++)
        if (strcmp(call_args(cs)[k].key, key) == 0)
            return k;
    return -1;
}

static void unknown_key(Diag *d, const CallSpec *cs, const AstArg *a)
{
    char sig[160];
    if (call_nargs(cs) == 0) {
        diag_error(d, a->key_loc, "%s takes no arguments", cs->name);
        return;
    }
    const char *keys[ARGS_MAX];
    for (int k = 0; k < call_nargs(cs); k++)
        keys[k] = call_args(cs)[k].key;
    const char *sug = diag_suggest(a->key, keys, call_nargs(cs));
    if (sug)
        diag_error(d, a->key_loc, "unknown argument '%s' for %s (did you mean '%s'?)", a->key, cs->name, sug);
    else
        diag_error(d, a->key_loc, "unknown argument '%s' for %s; it takes %s", a->key, cs->name,
                   call_signature(cs, sig, sizeof sig));
}

static void too_many(Diag *d, const CallSpec *cs, const AstArg *a, int npos)
{
    char sig[160];
    if (call_nargs(cs) == 0)
        diag_error(d, a->val.loc, "%s takes no arguments", cs->name);
    else
        diag_error(d, a->val.loc, "%s takes at most %d argument%s, got %d: %s", cs->name, call_nargs(cs),
                   call_nargs(cs) == 1 ? "" : "s", npos, call_signature(cs, sig, sizeof sig));
}

/* A positional value that is a call named after a call-valued parameter (augment(...)) sets that parameter, as
 * augment=augment(...) would: its index, else -1. */
static int named_call(const CallSpec *cs, const AstArg *a)
{
    if (a->key || a->val.kind != AV_CALL)
        return -1;
    int k = find_key(cs, a->val.call->name);
    return k >= 0 && call_args(cs)[k].type == AT_CALL ? k : -1;
}

/* Which of cs->args the written argument a sets (pos counts the positional ones); -1 after reporting. */
static int match(Diag *d, const CallSpec *cs, const AstCall *call, const AstArg *a, int *pos, int *keyed)
{
    int named = named_call(cs, a);
    if (named >= 0)
        return named;
    if (a->key) {
        *keyed = 1;
        int k = find_key(cs, a->key);
        if (k < 0)
            unknown_key(d, cs, a);
        return k;
    }
    if (*keyed) {
        diag_error(d, a->val.loc, "positional argument after keyword arguments in %s", cs->name);
        return -1;
    }
    if (*pos == call_nargs(cs)) {
        int npos = 0;
        for (const AstArg *b = call->args; b; b = b->next)
            npos += !b->key;
        too_many(d, cs, a, npos);
        *pos = call_nargs(cs) + 1; /* reported once */
        return -1;
    }
    return *pos < call_nargs(cs) ? (*pos)++ : -1;
}

static void fill_default(const ArgSpec *a, ArgVal *v)
{
    v->i = (long long)a->def;
    v->f = a->def;
    v->s = a->sdef;
}

int args_resolve(Diag *d, const CallSpec *cs, const AstCall *call, const Env *env, ArgVal vals[ARGS_MAX])
{
    int ok = 1, pos = 0, keyed = 0;
    memset(vals, 0, ARGS_MAX * sizeof *vals);
    for (const AstArg *a = call->args; a; a = a->next) {
        int k = match(d, cs, call, a, &pos, &keyed);
        if (k < 0) {
            ok = 0;
            continue;
        }
        if (vals[k].given) {
            diag_error(d, a->key ? a->key_loc : a->val.loc, "argument '%s' of %s is given twice", call_args(cs)[k].key,
                       cs->name);
            ok = 0;
            continue;
        }
        char what[96];
        snprintf(what, sizeof what, "argument '%s' of %s", call_args(cs)[k].key, cs->name);
        if (args_check_value(d, &call_args(cs)[k], &a->val, env, what, &vals[k]))
            ok = 0;
    }
    for (int k = 0; k < call_nargs(cs); k++) {
        if (vals[k].given)
            continue;
        if (call_args(cs)[k].required) {
            char sig[160];
            diag_error(d, call->loc, "%s needs its '%s' argument: %s", cs->name, call_args(cs)[k].key,
                       call_signature(cs, sig, sizeof sig));
            ok = 0;
        } else {
            fill_default(&call_args(cs)[k], &vals[k]);
            vals[k].loc = call->loc;
        }
    }
    return ok ? 0 : -1;
}
