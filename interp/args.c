/* The table of calls and their arguments (the single source of truth for types, defaults and ranges;
 * docs/language.md lists the same), and the matching of written calls against it. */
#include "args.h"

#include <stdio.h>
#include <string.h>

#define INT_ARG(k, req, l, h, d) {.key = k, .type = AT_INT, .required = req, .lo = l, .hi = h, .def = d}
#define NUM_ARG(k, req, l, lopen, h, hopen, d) \
    {.key = k, .type = AT_NUM, .required = req, .lo = l, .hi = h, .lo_open = lopen, .hi_open = hopen, .def = d}
#define BOOL_ARG(k, d) {.key = k, .type = AT_BOOL, .def = d}
#define STR_ARG(k, d, ch) {.key = k, .type = AT_STR, .sdef = d, .choices = ch}

static const char *const norm_choices[] = {"unit", "standard", NULL};

#define DATA_ARGS(path)                                                                              \
    {STR_ARG("path", path, NULL), INT_ARG("batch", 0, 1, 1 << 20, 128), BOOL_ARG("shuffle", 1),      \
     INT_ARG("limit", 0, 0, ARG_NOMAX, 0), STR_ARG("normalize", "unit", norm_choices)}
#define POOL_ARGS                                                                                    \
    {INT_ARG("kernel", 1, 1, 1024, 0), {.key = "stride", .type = AT_INT, .lo = 1, .hi = 1024, .defdoc = "kernel"}, \
     INT_ARG("padding", 0, 0, 1024, 0)}

const CallSpec call_specs[] = {
    {"conv2d", CC_LAYER, LK_CONV2D, 5,
     {INT_ARG("out", 1, 1, 65536, 0), INT_ARG("kernel", 1, 1, 1024, 0), INT_ARG("stride", 0, 1, 1024, 1),
      INT_ARG("padding", 0, 0, 1024, 0), BOOL_ARG("bias", 1)}},
    {"dense", CC_LAYER, LK_DENSE, 2, {INT_ARG("out", 1, 1, 65536, 0), BOOL_ARG("bias", 1)}},
    {"batchnorm", CC_LAYER, LK_BATCHNORM, 2,
     {NUM_ARG("momentum", 0, 0, 0, 1, 0, 0.9), NUM_ARG("eps", 0, 0, 1, 1, 0, 1e-5)}},
    {"sigmoid", CC_LAYER, LK_SIGMOID, 0, {{0}}},
    {"relu", CC_LAYER, LK_RELU, 0, {{0}}},
    {"tanh", CC_LAYER, LK_TANH, 0, {{0}}},
    {"avgpool", CC_LAYER, LK_AVGPOOL, 3, POOL_ARGS},
    {"maxpool", CC_LAYER, LK_MAXPOOL, 3, POOL_ARGS},
    {"flatten", CC_LAYER, LK_FLATTEN, 0, {{0}}},
    {"dropout", CC_LAYER, LK_DROPOUT, 1, {NUM_ARG("p", 1, 0, 0, 1, 1, 0)}},
    {"fashion_mnist", CC_DATA, 0, 5, DATA_ARGS("/usr/share/datasets/fashion-mnist")},
    {"mnist", CC_DATA, 1, 5, DATA_ARGS("/usr/share/datasets/mnist")},
    {"sgd", CC_OPTIMIZER, OPT_SGD, 4,
     {NUM_ARG("lr", 1, 0, 1, ARG_NOMAX, 0, 0), NUM_ARG("momentum", 0, 0, 0, 1, 1, 0),
      NUM_ARG("weight_decay", 0, 0, 0, ARG_NOMAX, 0, 0), BOOL_ARG("nesterov", 0)}},
    {"adam", CC_OPTIMIZER, OPT_ADAM, 5,
     {NUM_ARG("lr", 0, 0, 1, ARG_NOMAX, 0, 0.001), NUM_ARG("beta1", 0, 0, 0, 1, 1, 0.9),
      NUM_ARG("beta2", 0, 0, 0, 1, 1, 0.999), NUM_ARG("eps", 0, 0, 0, ARG_NOMAX, 0, 1e-8),
      NUM_ARG("weight_decay", 0, 0, 0, ARG_NOMAX, 0, 0)}},
    {"constant", CC_SCHEDULE, SCHED_CONSTANT, 0, {{0}}},
    {"step", CC_SCHEDULE, SCHED_STEP, 2, {INT_ARG("every", 1, 1, 1000000, 0), NUM_ARG("factor", 1, 0, 1, 1, 0, 0)}},
    {"cosine", CC_SCHEDULE, SCHED_COSINE, 1, {NUM_ARG("min_lr", 0, 0, 0, ARG_NOMAX, 0, 0)}},
    {"cross_entropy", CC_LOSS, 0, 0, {{0}}},
};
const int ncall_specs = (int)(sizeof call_specs / sizeof call_specs[0]);

const CallSpec *call_find(CallClass cls, const char *name)
{
    for (int i = 0; i < ncall_specs; i++)
        if (call_specs[i].cls == cls && strcmp(call_specs[i].name, name) == 0)
            return &call_specs[i];
    return NULL;
}

int call_names(CallClass cls, const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < ncall_specs && n < max; i++)
        if (call_specs[i].cls == cls)
            out[n++] = call_specs[i].name;
    return n;
}

static const char *default_text(const ArgSpec *a, char *buf, size_t len)
{
    if (a->defdoc)
        snprintf(buf, len, "%s", a->defdoc);
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
    size_t n = (size_t)snprintf(buf, len, "%s(", cs->name);
    for (int k = 0; k < cs->nargs && n < len; k++) {
        char def[64];
        if (cs->args[k].required)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? ", " : "", cs->args[k].key);
        else
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", k ? ", " : "", cs->args[k].key,
                                  default_text(&cs->args[k], def, sizeof def));
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

static const char *range_text(const ArgSpec *a, char *buf, size_t len)
{
    if (a->type == AT_INT) {
        if (a->hi >= ARG_NOMAX)
            snprintf(buf, len, "at least %.0f", a->lo);
        else
            snprintf(buf, len, "between %.0f and %.0f", a->lo, a->hi);
    } else if (a->hi >= ARG_NOMAX) {
        snprintf(buf, len, "%s %g", a->lo_open ? "greater than" : "at least", a->lo);
    } else {
        snprintf(buf, len, "in %c%g, %g%c", a->lo_open ? '(' : '[', a->lo, a->hi, a->hi_open ? ')' : ']');
    }
    return buf;
}

static int in_range(const ArgSpec *a, double x)
{
    if (a->lo_open ? x <= a->lo : x < a->lo)
        return 0;
    if (a->hi < ARG_NOMAX && (a->hi_open ? x >= a->hi : x > a->hi))
        return 0;
    return 1;
}

static const char *const type_noun[] = {"an integer", "a number", "true or false", "a string"};

static int type_ok(ArgType t, AstValueKind k)
{
    switch (t) {
    case AT_INT: return k == AV_INT;
    case AT_NUM: return k == AV_INT || k == AV_FLOAT;
    case AT_BOOL: return k == AV_BOOL;
    case AT_STR: return k == AV_STRING;
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
    char desc[160], via[160] = "", range[96];
    if (v != v0)
        snprintf(via, sizeof via, " (through parameter '%s' of block '%s')", v0->s, env->block);
    out->given = 1;
    out->loc = v->loc;
    if (v->bad)
        return -1;
    if (!type_ok(a->type, v->kind)) {
        const char *hint = a->type == AT_STR && v->kind == AV_IDENT ? " (strings are written in double quotes)" : "";
        diag_error(d, v->loc, "%s must be %s, got %s%s%s", what, type_noun[a->type],
                   ast_value_describe(v, desc, sizeof desc), hint, via);
        return -1;
    }
    if ((a->type == AT_INT || a->type == AT_NUM) && !in_range(a, v->f)) {
        diag_error(d, v->loc, "%s must be %s, got %s%s", what, range_text(a, range, sizeof range), v->text, via);
        return -1;
    }
    if (a->type == AT_STR && check_choice(d, a, v, what, via))
        return -1;
    out->i = v->i;
    out->f = v->f;
    out->s = v->s;
    return 0;
}

/* ---- a whole call ---- */

static int find_key(const CallSpec *cs, const char *key)
{
    for (int k = 0; k < cs->nargs; k++)
        if (strcmp(cs->args[k].key, key) == 0)
            return k;
    return -1;
}

static void unknown_key(Diag *d, const CallSpec *cs, const AstArg *a)
{
    char sig[160];
    if (cs->nargs == 0) {
        diag_error(d, a->key_loc, "%s takes no arguments", cs->name);
        return;
    }
    const char *keys[ARGS_MAX];
    for (int k = 0; k < cs->nargs; k++)
        keys[k] = cs->args[k].key;
    const char *sug = diag_suggest(a->key, keys, cs->nargs);
    if (sug)
        diag_error(d, a->key_loc, "unknown argument '%s' for %s (did you mean '%s'?)", a->key, cs->name, sug);
    else
        diag_error(d, a->key_loc, "unknown argument '%s' for %s; it takes %s", a->key, cs->name,
                   call_signature(cs, sig, sizeof sig));
}

static void too_many(Diag *d, const CallSpec *cs, const AstArg *a, int npos)
{
    char sig[160];
    if (cs->nargs == 0)
        diag_error(d, a->val.loc, "%s takes no arguments", cs->name);
    else
        diag_error(d, a->val.loc, "%s takes at most %d argument%s, got %d: %s", cs->name, cs->nargs,
                   cs->nargs == 1 ? "" : "s", npos, call_signature(cs, sig, sizeof sig));
}

/* Which of cs->args the written argument a sets (pos counts the positional ones); -1 after reporting. */
static int match(Diag *d, const CallSpec *cs, const AstCall *call, const AstArg *a, int *pos, int *keyed)
{
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
    if (*pos == cs->nargs) {
        int npos = 0;
        for (const AstArg *b = call->args; b; b = b->next)
            npos += !b->key;
        too_many(d, cs, a, npos);
        *pos = cs->nargs + 1; /* reported once */
        return -1;
    }
    return *pos < cs->nargs ? (*pos)++ : -1;
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
            diag_error(d, a->key ? a->key_loc : a->val.loc, "argument '%s' of %s is given twice", cs->args[k].key,
                       cs->name);
            ok = 0;
            continue;
        }
        char what[96];
        snprintf(what, sizeof what, "argument '%s' of %s", cs->args[k].key, cs->name);
        if (args_check_value(d, &cs->args[k], &a->val, env, what, &vals[k]))
            ok = 0;
    }
    for (int k = 0; k < cs->nargs; k++) {
        if (vals[k].given)
            continue;
        if (cs->args[k].required) {
            char sig[160];
            diag_error(d, call->loc, "%s needs its '%s' argument: %s", cs->name, cs->args[k].key,
                       call_signature(cs, sig, sizeof sig));
            ok = 0;
        } else {
            fill_default(&cs->args[k], &vals[k]);
            vals[k].loc = call->loc;
        }
    }
    return ok ? 0 : -1;
}
