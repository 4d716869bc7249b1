/* The .bnn grammar (docs/language.md has it as EBNF): a reentrant LALR(1) parser with locations that
 * builds the syntax tree of interp/ast.h. Syntax errors are worded in the language's terms ("expected '}'
 * (to close '{' at line 3), found end of file") and the parser resumes at the next newline, ';' or '}'. */

%code requires {
#include "interp/ast.h"
#include "interp/parse.h"
#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif
}

%code {
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/args.h"

int yylex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg);
static SrcLoc L(YYLTYPE l) { return (SrcLoc){l.first_line, l.first_column}; }
static int negate(AstValue *v, SrcLoc minus);
static char *join_key(char *a, char *b);
}

%define api.pure full
%define api.token.prefix {TOK_}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {ParseState *ps}

%union {
    char *str;
    AstValue val;
    AstArg *arg;
    AstArgList args;
    AstCall *call;
    AstStmt *stmt;
    AstStmtList stmts;
}

%token END 0 "end of file"
%token NEWLINE "end of line"
%token <str> IDENT "name"
%token <val> INT "integer"
%token <val> FLOAT "number"
%token <val> STRING "string"
%token <val> SHAPE "shape"
%token TRUE "true"
%token FALSE "false"
%token MODEL "model"
%token DATA "data"
%token OPTIMIZER "optimizer"
%token SCHEDULE "schedule"
%token LOSS "loss"
%token EPOCHS "epochs"
%token SEED "seed"
%token CHECKPOINT "checkpoint"
%token NETWORK "network"
%token BLOCK "block"
%token REPEAT "repeat"
%token RESIDUAL "residual"
%token INPUT "input"
%token SET "set"
%token DOT "."
%token SEMI ";"
%token EQUALS "="
%token COMMA ","
%token COLON ":"
%token RPAREN ")"
%token RBRACE "}"
%token LPAREN "("
%token LBRACE "{"
%token MINUS "-"

%type <stmts> top_items items body
%type <stmt> top_stmt item core
%type <call> call
%type <args> args opt_args
%type <arg> arg
%type <val> value
%type <str> key key_part

%destructor { free($$); } <str>
%destructor { ast_value_clear(&$$); } <val>
%destructor { ast_args_free($$); } <arg>
%destructor { ast_args_free($$.head); } <args>
%destructor { ast_call_free($$); } <call>
%destructor { ast_free($$); } <stmt>
%destructor { ast_free($$.head); } <stmts>

%%

file
    : top_items                         { ps->result = $1.head; }
    ;

top_items
    : %empty                            { $$ = (AstStmtList){0}; }
    | top_items sep                     { $$ = $1; }
    | top_items top_stmt sep            { $$ = $1; ast_stmts_push(&$$, $2); }
    | top_items error sep               { $$ = $1; yyerrok; }
    | top_items error body sep          { $$ = $1; ast_free($3.head); yyerrok; }
    ;

sep
    : NEWLINE
    | ";"
    ;

top_stmt
    : "model" value                     { if (!($$ = ast_stmt_value(AS_MODEL, L(@1), $2))) YYNOMEM; }
    | "data" call                       { if (!($$ = ast_stmt_call(AS_DATA, L(@1), $2))) YYNOMEM; }
    | "optimizer" call                  { if (!($$ = ast_stmt_call(AS_OPTIMIZER, L(@1), $2))) YYNOMEM; }
    | "schedule" call                   { if (!($$ = ast_stmt_call(AS_SCHEDULE, L(@1), $2))) YYNOMEM; }
    | "loss" call                       { if (!($$ = ast_stmt_call(AS_LOSS, L(@1), $2))) YYNOMEM; }
    | "epochs" value                    { if (!($$ = ast_stmt_value(AS_EPOCHS, L(@1), $2))) YYNOMEM; }
    | "seed" value                      { if (!($$ = ast_stmt_value(AS_SEED, L(@1), $2))) YYNOMEM; }
    | "checkpoint" value                { if (!($$ = ast_stmt_value(AS_CHECKPOINT, L(@1), $2))) YYNOMEM; }
    | "checkpoint" value "," args       { if (!($$ = ast_stmt_value(AS_CHECKPOINT, L(@1), $2))) {
                                              ast_args_free($4.head);
                                              YYNOMEM;
                                          }
                                          $$->params = $4.head;
                                          $$->nparams = $4.n; }
    | "network" body                    { if (!($$ = ast_stmt_body(AS_NETWORK, L(@1), NULL, $2, L(@2)))) YYNOMEM; }
    | "set" key "=" value               { if (!($$ = ast_stmt_set(L(@1), $2, L(@2), $4))) YYNOMEM; }
    | "block" IDENT body                { if (!($$ = ast_stmt_block(L(@1), $2, L(@2), (AstArgList){0}, $3, L(@3))))
                                              YYNOMEM; }
    | "block" IDENT "(" opt_args ")" body
                                        { if (!($$ = ast_stmt_block(L(@1), $2, L(@2), $4, $6, L(@6))))
                                              YYNOMEM; }
    ;

/* A setting's dotted name (interp/override.h): statement keywords may start it (data.batch, epochs). */
key
    : key_part                          { $$ = $1; }
    | key "." key_part                  { if (!($$ = join_key($1, $3))) YYNOMEM; }
    ;

key_part
    : IDENT                             { $$ = $1; }
    | "model"                           { if (!($$ = strdup("model"))) YYNOMEM; }
    | "data"                            { if (!($$ = strdup("data"))) YYNOMEM; }
    | "optimizer"                       { if (!($$ = strdup("optimizer"))) YYNOMEM; }
    | "schedule"                        { if (!($$ = strdup("schedule"))) YYNOMEM; }
    | "loss"                            { if (!($$ = strdup("loss"))) YYNOMEM; }
    | "epochs"                          { if (!($$ = strdup("epochs"))) YYNOMEM; }
    | "seed"                            { if (!($$ = strdup("seed"))) YYNOMEM; }
    | "checkpoint"                      { if (!($$ = strdup("checkpoint"))) YYNOMEM; }
    ;

body
    : "{" items "}"                     { $$ = $2; }
    | "{" items item "}"                { $$ = $2; ast_stmts_push(&$$, $3); }
    | "{" items error "}"               { $$ = $2; yyerrok; }
    ;

items
    : %empty                            { $$ = (AstStmtList){0}; }
    | items sep                         { $$ = $1; }
    | items item sep                    { $$ = $1; ast_stmts_push(&$$, $2); }
    | items error sep                   { $$ = $1; yyerrok; }
    ;

item
    : core                              { $$ = $1; }
    | IDENT ":" core                    { $$ = $3; $$->label = $1; $$->label_loc = L(@1); }
    ;

core
    : call                              { SrcLoc l = $1->loc; if (!($$ = ast_stmt_call(AS_CALL, l, $1))) YYNOMEM; }
    | "input" value                     { if (!($$ = ast_stmt_value(AS_INPUT, L(@1), $2))) YYNOMEM; }
    | "repeat" value body               { if (!($$ = ast_stmt_body(AS_REPEAT, L(@1), &$2, $3, L(@3)))) YYNOMEM; }
    | "residual" body                   { if (!($$ = ast_stmt_body(AS_RESIDUAL, L(@1), NULL, $2, L(@2)))) YYNOMEM; }
    ;

call
    : IDENT                             { if (!($$ = ast_call_new($1, L(@1), 0, (AstArgList){0}))) YYNOMEM; }
    | IDENT "(" opt_args ")"            { if (!($$ = ast_call_new($1, L(@1), 1, $3))) YYNOMEM; }
    ;

opt_args
    : %empty                            { $$ = (AstArgList){0}; }
    | args                              { $$ = $1; }
    | args ","                          { $$ = $1; }
    ;

args
    : arg                               { $$ = (AstArgList){0}; ast_args_push(&$$, $1); }
    | args "," arg                      { $$ = $1; ast_args_push(&$$, $3); }
    ;

arg
    : value                             { SrcLoc l = $1.loc; if (!($$ = ast_arg_new(NULL, l, $1))) YYNOMEM; }
    | IDENT "=" value                   { if (!($$ = ast_arg_new($1, L(@1), $3))) YYNOMEM; }
    ;

value
    : INT                               { $$ = $1; }
    | FLOAT                             { $$ = $1; }
    | STRING                            { $$ = $1; }
    | SHAPE                             { $$ = $1; }
    | "true"                            { $$ = (AstValue){.kind = AV_BOOL, .loc = L(@1), .i = 1, .f = 1}; }
    | "false"                           { $$ = (AstValue){.kind = AV_BOOL, .loc = L(@1)}; }
    | IDENT                             { $$ = ast_value_ident($1, L(@1)); }
    | IDENT "(" opt_args ")"            { AstCall *c = ast_call_new($1, L(@1), 1, $3);
                                          if (!c || !($$ = ast_value_call(c)).text) YYNOMEM; }
    | "-" INT                           { $$ = $2; if (negate(&$$, L(@1))) YYNOMEM; }
    | "-" FLOAT                         { $$ = $2; if (negate(&$$, L(@1))) YYNOMEM; }
    ;

%%

static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *ps, const char *msg)
{
    (void)scanner;
    if (!ps->fatal)
        diag_error(ps->diag, L(*loc), "%s", msg);
}

/* "a.b" from "a" and "b", which it frees; NULL when out of memory. */
static char *join_key(char *a, char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *k = malloc(na + nb + 2);
    if (k) {
        memcpy(k, a, na);
        k[na] = '.';
        memcpy(k + na + 1, b, nb + 1);
    }
    free(a), free(b);
    return k;
}

/* "-5" from "5": the value, its spelling and its location (the minus sign). Frees v when out of memory. */
static int negate(AstValue *v, SrcLoc minus)
{
    size_t n = v->text ? strlen(v->text) : 0;
    char *t = malloc(n + 2);
    if (!t) {
        ast_value_clear(v);
        return -1;
    }
    t[0] = '-';
    memcpy(t + 1, v->text ? v->text : "", n + 1);
    free(v->text);
    v->text = t;
    v->i = -v->i;
    v->f = -v->f;
    v->loc = minus;
    return 0;
}

/* ---- syntax error messages ---- */

static int has(const yysymbol_kind_t *v, int n, yysymbol_kind_t k)
{
    for (int i = 0; i < n; i++)
        if (v[i] == k)
            return 1;
    return 0;
}

static int is_statement_keyword(yysymbol_kind_t k)
{
    return k == YYSYMBOL_MODEL || k == YYSYMBOL_DATA || k == YYSYMBOL_OPTIMIZER || k == YYSYMBOL_SCHEDULE ||
           k == YYSYMBOL_LOSS || k == YYSYMBOL_EPOCHS || k == YYSYMBOL_SEED || k == YYSYMBOL_CHECKPOINT ||
           k == YYSYMBOL_NETWORK || k == YYSYMBOL_BLOCK || k == YYSYMBOL_SET;
}

static int is_value_start(yysymbol_kind_t k)
{
    return k == YYSYMBOL_INT || k == YYSYMBOL_FLOAT || k == YYSYMBOL_STRING || k == YYSYMBOL_SHAPE ||
           k == YYSYMBOL_TRUE || k == YYSYMBOL_FALSE || k == YYSYMBOL_IDENT || k == YYSYMBOL_MINUS;
}

/* How an expected token reads in a message: 'model', '(', an integer, end of line. */
static const char *token_words(yysymbol_kind_t k, char *buf, size_t len)
{
    switch (k) {
    case YYSYMBOL_IDENT: return "a name";
    case YYSYMBOL_INT: return "an integer";
    case YYSYMBOL_FLOAT: return "a number";
    case YYSYMBOL_STRING: return "a string";
    case YYSYMBOL_SHAPE: return "a shape";
    case YYSYMBOL_NEWLINE: return "end of line";
    case YYSYMBOL_YYEOF: return "end of file";
    default: break;
    }
    snprintf(buf, len, "'%s'", yysymbol_name(k)); /* keywords and punctuation, by their aliases */
    return buf;
}

/* The expected tokens, summarised: "a statement", "a layer", "a value" stand for the tokens that start one. */
static void expected_words(const yysymbol_kind_t *exp, int n, yysymbol_kind_t found, char *out, size_t len)
{
    int stmt = has(exp, n, YYSYMBOL_MODEL), layer = has(exp, n, YYSYMBOL_REPEAT);
    int value = has(exp, n, YYSYMBOL_STRING) && has(exp, n, YYSYMBOL_INT);
    int eol = !stmt && !layer && has(exp, n, YYSYMBOL_NEWLINE);
    int at_end = found == YYSYMBOL_YYEOF && has(exp, n, YYSYMBOL_RBRACE);
    char words[16][32];
    const char *items[YYNTOKENS + 4];
    int k = 0;
    if (at_end) {
        items[k++] = "'}'";
    } else {
        if (stmt)
            items[k++] = "a statement";
        if (layer)
            items[k++] = "a layer";
        if (value)
            items[k++] = "a value";
        if (eol)
            items[k++] = "end of line", items[k++] = "';'";
        for (int i = 0; i < n && k < 16; i++) {
            yysymbol_kind_t t = exp[i];
            int sep = t == YYSYMBOL_NEWLINE || t == YYSYMBOL_SEMI;
            /* after a name among arguments, '(' would open a call as a value (augment(...)): an option too
             * rare to offer where '=' is what was likely missing */
            if (t == YYSYMBOL_LPAREN && has(exp, n, YYSYMBOL_EQUALS))
                continue;
            if ((stmt && (is_statement_keyword(t) || sep || t == YYSYMBOL_YYEOF)) ||
                (layer && (t == YYSYMBOL_IDENT || t == YYSYMBOL_INPUT || t == YYSYMBOL_REPEAT ||
                           t == YYSYMBOL_RESIDUAL || sep)) ||
                (value && is_value_start(t)) || (eol && (sep || t == YYSYMBOL_LPAREN || t == YYSYMBOL_COLON)))
                continue;
            items[k] = token_words(t, words[k], sizeof words[k]);
            k++;
        }
    }
    out[0] = '\0';
    for (int i = 0; i < k; i++) {
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s", i == 0 ? "" : i == k - 1 ? " or " : ", ", items[i]);
    }
}

static void found_words(const ParseState *ps, yysymbol_kind_t found, char *out, size_t len)
{
    if (found == YYSYMBOL_YYEOF || (found == YYSYMBOL_NEWLINE && ps->at_eof))
        snprintf(out, len, "end of file");
    else if (found == YYSYMBOL_NEWLINE)
        snprintf(out, len, "end of line");
    else if (found == YYSYMBOL_STRING)
        snprintf(out, len, "%s", ps->last_text);
    else
        snprintf(out, len, "'%s'", ps->last_text);
}

/* "(to close '{' at line 3)" when the missing bracket was opened on another line. */
static void bracket_hint(const ParseState *ps, const yysymbol_kind_t *exp, int n, yysymbol_kind_t found,
                         SrcLoc at, char *out, size_t len)
{
    out[0] = '\0';
    if (has(exp, n, YYSYMBOL_RPAREN)) {
        SrcLoc open = found == YYSYMBOL_LPAREN ? ps->prev_paren_loc : ps->paren_loc;
        if (open.line && open.line != at.line)
            snprintf(out, len, " (to close '(' at line %d)", open.line);
        return;
    }
    int eof = found == YYSYMBOL_YYEOF || (found == YYSYMBOL_NEWLINE && ps->at_eof);
    if (has(exp, n, YYSYMBOL_RBRACE) && (eof || is_statement_keyword(found))) {
        int i = ps->brace_depth - 1 - (found == YYSYMBOL_LBRACE);
        if (i >= 0 && ps->braces[i].line != at.line)
            snprintf(out, len, " (to close '{' at line %d)", ps->braces[i].line);
    }
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps)
{
    (void)scanner;
    if (ps->fatal)
        return 0;
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0)
        return n;
    yysymbol_kind_t found = yypcontext_token(ctx);
    SrcLoc at = L(*yypcontext_location(ctx));
    char want[256], got[64], hint[64];
    found_words(ps, found, got, sizeof got);
    if (has(exp, n, YYSYMBOL_MODEL) && found == YYSYMBOL_IDENT) {
        static const char *const stmts[] = {"model", "data", "optimizer", "schedule", "loss",
                                            "epochs", "seed", "checkpoint", "network", "block", "set"};
        const char *sug = diag_suggest(ps->last_text, stmts, (int)(sizeof stmts / sizeof stmts[0]));
        if (sug)
            diag_error(ps->diag, at, "unknown statement %s (did you mean '%s'?)", got, sug);
        else if (call_find(CC_LAYER, ps->last_text))
            diag_error(ps->diag, at, "unknown statement %s (layers go inside 'network { ... }')", got);
        else
            diag_error(ps->diag, at, "unknown statement %s; the statements are model, data, optimizer, schedule, "
                       "loss, epochs, seed, checkpoint, network, block and set", got);
        return 0;
    }
    expected_words(exp, n, found, want, sizeof want);
    bracket_hint(ps, exp, n, found, at, hint, sizeof hint);
    if (want[0])
        diag_error(ps->diag, at, "expected %s%s, found %s", want, hint, got);
    else
        diag_error(ps->diag, at, "unexpected %s", got);
    return 0;
}
