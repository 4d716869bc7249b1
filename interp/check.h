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

#endif
