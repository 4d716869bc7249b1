/* Every call of the language and its arguments (name, type, default, allowed range): the layers' and data kinds'
 * schemas come from their own files (LayerOps.args, runtime/layer.h; DataKindOps.args, runtime/data/kind.h), the
 * optimizers', schedules' and losses' from args.c's table. args_resolve matches a written call against one: unknown keys (with a suggestion), wrong
 * types, missing required arguments, duplicates and out-of-range values. */
#ifndef BNNI_ARGS_H
#define BNNI_ARGS_H

#include "../runtime/data/kind.h"
#include "../runtime/layer.h"
#include "ast.h"
#include "diag.h"

typedef enum CallClass { CC_LAYER, CC_DATA, CC_OPTIMIZER, CC_SCHEDULE, CC_LOSS } CallClass;

#define ARGS_MAX DATA_MAX_ARGS /* arguments of any call (layers take at most LAYER_MAX_ARGS) */

typedef struct CallSpec {
    const char *name;
    CallClass cls;
    int kind;                   /* LayerKind, DataKind, OptKind or SchedKind */
    int nargs;
    const ArgSpec *args;        /* in positional order; for a layer, layer->args; for data, data->args */
    const LayerOps *layer;      /* a layer: its kind's operations, which own its schema; else NULL */
    const DataKindOps *data;    /* a data kind: its operations, which own its schema; else NULL */
} CallSpec;

/* The arguments of cs, in positional order, and their count. */
static inline const ArgSpec *call_args(const CallSpec *cs)
{
    return cs->layer ? cs->layer->args : cs->data ? cs->data->args : cs->args;
}
static inline int call_nargs(const CallSpec *cs)
{
    return cs->layer ? cs->layer->nargs : cs->data ? cs->data->nargs : cs->nargs;
}

/* A block's parameters bound to the values of one call (borrowed from the syntax tree). */
typedef struct Env {
    const char *block;
    const char *const *names;
    const AstValue *const *vals;
    int n;
} Env;

/* An argument after matching: given (or defaulted), where it was written, and its value. */
typedef struct ArgVal {
    int given;
    SrcLoc loc;
    long long i;    /* AT_INT, AT_BOOL */
    double f;       /* AT_NUM, AT_INT */
    const char *s;  /* AT_STR; AT_SHAPE: its text ("32x32"); borrowed */
    const AstCall *call; /* AT_CALL: the call written, its own arguments not yet matched; borrowed */
    const char *origin; /* the value came from the command line: its --set (AstValue.origin) */
} ArgVal;

/* The call of class cls named name, or NULL. */
const CallSpec *call_find(CallClass cls, const char *name);
/* The call of layer kind k. */
const CallSpec *call_layer(LayerKind k);
/* The names of every call of class cls into out[0..max); returns the count. */
int call_names(CallClass cls, const char **out, int max);
/* "conv2d(out, kernel, stride=1, padding=0, bias=true)". Returns buf. */
const char *call_signature(const CallSpec *cs, char *buf, size_t len);

/* What v stands for: the value bound to the block parameter v names, else v itself. */
const AstValue *env_subst(const Env *env, const AstValue *v);

/* Checks one written value against a; `what` names it in messages ("argument 'kernel' of conv2d").
 * Returns 0 and fills *out, or -1 after reporting (or silently when the lexer already reported the value). */
int args_check_value(Diag *d, const ArgSpec *a, const AstValue *v, const Env *env, const char *what, ArgVal *out);
/* Matches call's arguments to cs->args (vals[k] for cs->args[k], defaults filled in). Reports every
 * problem; returns 0 when all arguments are valid, -1 otherwise. */
int args_resolve(Diag *d, const CallSpec *cs, const AstCall *call, const Env *env, ArgVal vals[ARGS_MAX]);

#endif
