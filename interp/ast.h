/* The syntax tree of a .bnn file, as the parser builds it: statements, calls, arguments and values,
 * each with the SrcLoc where it was written. Nothing is checked here; check.c and expand.c do that.
 * Statements form singly linked lists (next); a tree owns everything it points to (free with ast_free). */
#ifndef BNNI_AST_H
#define BNNI_AST_H

#include "../runtime/spec.h"

/* AV_CALL: a call written as a value, such as augment(flip=true) in a data statement. */
typedef enum AstValueKind { AV_INT, AV_FLOAT, AV_STRING, AV_BOOL, AV_IDENT, AV_SHAPE, AV_CALL } AstValueKind;

struct AstCall;

#define AST_SHAPE_MAX 4

typedef struct AstValue {
    AstValueKind kind;
    SrcLoc loc;
    int bad;         /* the lexer already reported an error for it (overflow, bad escape, ...) */
    long long i;     /* AV_INT; AV_BOOL: 0 or 1 */
    double f;        /* AV_FLOAT; AV_INT too, converted */
    char *s;         /* AV_STRING: the contents, escapes resolved; AV_IDENT: the name; owned */
    int ndims;       /* AV_SHAPE: how many dimensions were written (dims holds the first AST_SHAPE_MAX) */
    long long dims[AST_SHAPE_MAX];
    char *text;      /* numbers, strings, shapes: the spelling as written, for messages; owned, may be NULL */
    struct AstCall *call; /* AV_CALL; owned */
    const char *origin; /* a value from the command line: its "--set KEY=VALUE" (borrowed), which messages about
                         * it name instead of a line; NULL for values of the file */
} AstValue;

typedef struct AstArg {
    char *key;       /* NULL for a positional argument; owned */
    SrcLoc key_loc;
    AstValue val;
    struct AstArg *next;
} AstArg;

typedef struct AstArgList {
    AstArg *head, *tail;
    int n;
} AstArgList;

/* `name`, `name()` or `name(positional..., key=value...)`. */
typedef struct AstCall {
    char *name;      /* owned */
    SrcLoc loc;
    int parens;      /* 1 when written with parentheses */
    AstArg *args;    /* owned list */
    int nargs;
} AstCall;

typedef enum AstStmtKind {
    /* top level */
    AS_MODEL, AS_DATA, AS_OPTIMIZER, AS_SCHEDULE, AS_LOSS, AS_EPOCHS, AS_SEED, AS_CHECKPOINT,
    AS_NETWORK, AS_BLOCK,
    /* inside `network` and `block` */
    AS_CALL, AS_INPUT, AS_REPEAT, AS_RESIDUAL,
    /* top level again: `set KEY = VALUE` (interp/override.h), which may appear any number of times */
    AS_SET
} AstStmtKind;

enum { REF_NONE, REF_LAYER, REF_BLOCK };

typedef struct AstStmt {
    AstStmtKind kind;
    SrcLoc loc;            /* the keyword, or the called name for AS_CALL */
    char *label;           /* `label: ...`; owned, NULL when none */
    SrcLoc label_loc;
    AstCall *call;         /* data, optimizer, schedule, loss, AS_CALL; owned */
    AstValue val;          /* model, epochs, seed, checkpoint, input, repeat, set (has_val) */
    int has_val;
    char *name;            /* block: its name; set: the dotted key; owned */
    SrcLoc name_loc;
    AstArg *params;        /* block: `c` or `k=3` entries; owned list */
    int nparams;
    struct AstStmt *body;  /* network, block, repeat, residual; owned list */
    SrcLoc body_loc;       /* the body's '{' */
    int ref;               /* AS_CALL, set by the checker (resolve.c): what the name refers to */
    int ref_index;         /* REF_LAYER: the LayerKind; REF_BLOCK: index of the block */
    struct AstStmt *next;
} AstStmt;

typedef struct AstStmtList {
    AstStmt *head, *tail;
} AstStmtList;

/* Constructors take ownership of their pointer arguments, and free them when they return NULL (out of memory). */
AstArg *ast_arg_new(char *key, SrcLoc key_loc, AstValue val);
AstCall *ast_call_new(char *name, SrcLoc loc, int parens, AstArgList args);
AstStmt *ast_stmt_call(AstStmtKind kind, SrcLoc loc, AstCall *call);
AstStmt *ast_stmt_value(AstStmtKind kind, SrcLoc loc, AstValue val);
AstStmt *ast_stmt_body(AstStmtKind kind, SrcLoc loc, AstValue *val, AstStmtList body, SrcLoc body_loc);
AstStmt *ast_stmt_block(SrcLoc loc, char *name, SrcLoc name_loc, AstArgList params, AstStmtList body,
                        SrcLoc body_loc);
/* `set KEY = VALUE`: key (the dotted name) at key_loc. */
AstStmt *ast_stmt_set(SrcLoc loc, char *key, SrcLoc key_loc, AstValue val);
AstValue ast_value_ident(char *name, SrcLoc loc);
/* A call as a value (takes c); its text is "name(...)". On out of memory the text is NULL and c is freed. */
AstValue ast_value_call(struct AstCall *c);
/* A deep copy of v into *out (strings duplicated). Returns 0, or -1 when out of memory (*out then empty). */
int ast_value_copy(const AstValue *v, AstValue *out);

void ast_args_push(AstArgList *l, AstArg *a);
void ast_stmts_push(AstStmtList *l, AstStmt *s);

void ast_value_clear(AstValue *v);
void ast_args_free(AstArg *a);
void ast_call_free(AstCall *c);
/* Frees a whole statement list, bodies included. */
void ast_free(AstStmt *list);

/* "integer 5", "string \"x\"", "identifier 'c'", ... for messages. Returns buf. */
const char *ast_value_describe(const AstValue *v, char *buf, size_t len);

#endif
