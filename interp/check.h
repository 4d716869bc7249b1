/* The checker's shared state, between check.c (top-level statements, totals, cross-checks), resolve.c
 * (what every name in the network and in block bodies refers to; block definitions) and expand.c
 * (block calls, repeat, residual, layer naming and shape inference). Internal to the front end. */
#ifndef BNNI_CHECK_H
#define BNNI_CHECK_H

#include "args.h"
#include "frontend.h"

#define CHECK_MAX_DEPTH 64            /* nested repeat / residual / block-call levels while expanding */
#define CHECK_MAX_REPEAT 100000       /* the largest repeat count */
#define CHECK_MAX_BLOCKS 1000         /* block definitions in one file */
#define CHECK_MAX_PARAMS 64           /* parameters of one block */
#define CHECK_DEFAULT_MAX_LAYERS 100000
#define CHECK_STEPS_PER_LAYER 8       /* expansion work allowed per layer of the layer limit */

typedef struct Block {
    AstStmt *def;
    const char **names;               /* parameter names in order; the array is owned, the strings borrowed */
    const AstValue **defaults;        /* per parameter; NULL when every call must give it */
    int nparams;
    int bad;                          /* the definition has errors: calls to it are skipped silently */
    int calls;                        /* expansions so far: numbers the `<block>_<k>.` name prefixes */
} Block;

typedef struct OverrideState OverrideState; /* override.c */

typedef struct Checker {
    Diag *d;
    CheckOptions opts;
    ModelSpec *m;
    Block *blocks;                    /* sorted by name, no duplicates */
    int nblocks;
    int have_data;                    /* m->data is valid: the input shape and class count are known */
    SrcLoc data_loc;                  /* the data statement's call */
    SrcLoc batch_loc;                 /* where the batch size was written; line 0: default or command line */
    int batch_cli;                    /* the batch size came from CheckOptions.batch_override */
    int have_opt;                     /* m->opt is valid */
    long long nbatchnorm;             /* batchnorm layers after expansion */
    int expanded;                     /* the whole network was expanded (no limit or error cut it short) */
    OverrideState *ov;                /* the overrides being applied (override.c); NULL when there are none */
} Checker;

/* check_data.c: the data statement, once its call matched the kind's schema (v: the matched values). */
void check_data_call(Checker *c, const CallSpec *cs, const AstStmt *s, const ArgVal *v);

/* resolve.c: collects and checks the block definitions of the file (errors reported). */
void resolve_blocks(Checker *c, AstStmt *file);
/* resolve.c: marks every call in the network and in every block body with what it refers to (AstStmt.ref),
 * reporting unknown names, malformed block calls and unknown parameter references once per place. */
void resolve_calls(Checker *c, AstStmt *file, AstStmt *network);
void resolve_free(Checker *c);
/* resolve.c: index of parameter `name` of b, or -1. */
int block_param(const Block *b, const char *name);

/* expand.c: expands the network into c->m->layers with names, shapes and parameter counts. */
void expand_network(Checker *c, const AstStmt *network);

/* override.c: collects the file's `set` statements and CheckOptions.overrides, reports keys that name nothing,
 * and writes the settings of statements (epochs, data.batch, ...) into the tree, appending a statement the file
 * lacks. Before the statements are checked. */
void override_begin(Checker *c, AstStmt **file);
/* override.c, for expand.c: whether layers of kind k are switched off (`KIND=off`): they are left out. */
int override_layer_off(const Checker *c, LayerKind k);
/* override.c, for expand.c: sets the arguments v of layer l (its kind and name known; cs its call) that
 * overrides name, by kind first and then by the layer's own name, checking each value against the schema. */
void override_layer_args(Checker *c, const LayerSpec *l, const CallSpec *cs, ArgVal v[ARGS_MAX]);
/* override.c: after expansion, reports layer names no layer has and kinds the network lacks; frees c->ov. */
void override_end(Checker *c);

#endif
