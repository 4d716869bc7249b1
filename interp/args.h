/* Every call of the language (layers, datasets, optimizers, schedules, losses) and its arguments in one
 * table: name, type, default, allowed range. args_resolve matches a written call against it: unknown keys
 * (with a suggestion), wrong types, missing required arguments, duplicates and out-of-range values. */
#ifndef BNNI_ARGS_H
#define BNNI_ARGS_H

#include "ast.h"
#include "diag.h"

typedef enum CallClass { CC_LAYER, CC_DATA, CC_OPTIMIZER, CC_SCHEDULE, CC_LOSS } CallClass;
typedef enum ArgType { AT_INT, AT_NUM, AT_BOOL, AT_STR } ArgType;

#define ARG_NOMAX 1e300 /* hi of a range with no upper bound */
#define ARGS_MAX 6

typedef struct ArgSpec {
    const char *key;
    ArgType type;
    int required;
    double lo, hi;              /* AT_INT, AT_NUM: the allowed range */
    int lo_open, hi_open;       /* 1: the bound itself is excluded */
    double def;                 /* default of AT_INT, AT_NUM, AT_BOOL */
    const char *sdef;           /* default of AT_STR */
    const char *const *choices; /* AT_STR: the allowed values, NULL-terminated; NULL: any non-empty string */
    const char *defdoc;         /* the default as written in docs and messages when it is not a constant */
} ArgSpec;

typedef struct CallSpec {
    const char *name;
    CallClass cls;
    int kind;                   /* LayerKind, OptKind or SchedKind; for datasets the index in check.c's table */
    int nargs;
    ArgSpec args[ARGS_MAX];     /* in positional order */
} CallSpec;

extern const CallSpec call_specs[];
extern const int ncall_specs;

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
    const char *s;  /* AT_STR; borrowed */
} ArgVal;

const CallSpec *call_find(CallClass cls, const char *name);
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
