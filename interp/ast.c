/* Syntax tree construction and destruction. Constructors consume their arguments even when they fail,
 * so the parser's actions can simply report "memory exhausted" on NULL. */
#include "ast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ast_value_clear(AstValue *v)
{
    free(v->s);
    free(v->text);
    ast_call_free(v->call);
    v->s = v->text = NULL;
    v->call = NULL;
}

void ast_args_free(AstArg *a)
{
    while (a) {
        AstArg *next = a->next;
        free(a->key);
        ast_value_clear(&a->val);
        free(a);
        a = next;
    }
}

void ast_call_free(AstCall *c)
{
    if (!c)
        return;
    free(c->name);
    ast_args_free(c->args);
    free(c);
}

/* Bodies nest at most PARSE_MAX_DEPTH deep (the lexer stops deeper files), so the recursion is bounded. */
void ast_free(AstStmt *s)
{
    while (s) {
        AstStmt *next = s->next;
        free(s->label);
        ast_call_free(s->call);
        ast_value_clear(&s->val);
        free(s->name);
        ast_args_free(s->params);
        ast_free(s->body);
        free(s);
        s = next;
    }
}

AstArg *ast_arg_new(char *key, SrcLoc key_loc, AstValue val)
{
    AstArg *a = calloc(1, sizeof *a);
    if (!a) {
        free(key);
        ast_value_clear(&val);
        return NULL;
    }
    a->key = key;
    a->key_loc = key_loc;
    a->val = val;
    return a;
}

AstCall *ast_call_new(char *name, SrcLoc loc, int parens, AstArgList args)
{
    AstCall *c = calloc(1, sizeof *c);
    if (!c) {
        free(name);
        ast_args_free(args.head);
        return NULL;
    }
    c->name = name;
    c->loc = loc;
    c->parens = parens;
    c->args = args.head;
    c->nargs = args.n;
    return c;
}

static AstStmt *stmt_new(AstStmtKind kind, SrcLoc loc)
{
    AstStmt *s = calloc(1, sizeof *s);
    if (s)
        s->kind = kind, s->loc = loc;
    return s;
}

AstStmt *ast_stmt_call(AstStmtKind kind, SrcLoc loc, AstCall *call)
{
    AstStmt *s = stmt_new(kind, loc);
    if (!s) {
        ast_call_free(call);
        return NULL;
    }
    s->call = call;
    return s;
}

AstStmt *ast_stmt_value(AstStmtKind kind, SrcLoc loc, AstValue val)
{
    AstStmt *s = stmt_new(kind, loc);
    if (!s) {
        ast_value_clear(&val);
        return NULL;
    }
    s->val = val;
    s->has_val = 1;
    return s;
}

AstStmt *ast_stmt_body(AstStmtKind kind, SrcLoc loc, AstValue *val, AstStmtList body, SrcLoc body_loc)
{
    AstStmt *s = stmt_new(kind, loc);
    if (!s) {
        if (val)
            ast_value_clear(val);
        ast_free(body.head);
        return NULL;
    }
    if (val)
        s->val = *val, s->has_val = 1;
    s->body = body.head;
    s->body_loc = body_loc;
    return s;
}

AstStmt *ast_stmt_block(SrcLoc loc, char *name, SrcLoc name_loc, AstArgList params, AstStmtList body,
                        SrcLoc body_loc)
{
    AstStmt *s = stmt_new(AS_BLOCK, loc);
    if (!s) {
        free(name);
        ast_args_free(params.head);
        ast_free(body.head);
        return NULL;
    }
    s->name = name;
    s->name_loc = name_loc;
    s->params = params.head;
    s->nparams = params.n;
    s->body = body.head;
    s->body_loc = body_loc;
    return s;
}

AstStmt *ast_stmt_set(SrcLoc loc, char *key, SrcLoc key_loc, AstValue val)
{
    AstStmt *s = stmt_new(AS_SET, loc);
    if (!s) {
        free(key);
        ast_value_clear(&val);
        return NULL;
    }
    s->name = key;
    s->name_loc = key_loc;
    s->val = val;
    s->has_val = 1;
    return s;
}

int ast_value_copy(const AstValue *v, AstValue *out)
{
    *out = *v;
    out->s = out->text = NULL;
    if ((v->s && !(out->s = strdup(v->s))) || (v->text && !(out->text = strdup(v->text)))) {
        ast_value_clear(out);
        return -1;
    }
    return 0;
}

AstValue ast_value_ident(char *name, SrcLoc loc)
{
    AstValue v = {.kind = AV_IDENT, .loc = loc, .s = name};
    return v;
}

AstValue ast_value_call(AstCall *c)
{
    AstValue v = {.kind = AV_CALL, .loc = c->loc, .call = c};
    size_t n = strlen(c->name) + 6;
    if ((v.text = malloc(n)))
        snprintf(v.text, n, "%s(...)", c->name);
    else
        ast_call_free(c), v.call = NULL;
    return v;
}

void ast_args_push(AstArgList *l, AstArg *a)
{
    if (l->tail)
        l->tail->next = a;
    else
        l->head = a;
    l->tail = a;
    l->n++;
}

void ast_stmts_push(AstStmtList *l, AstStmt *s)
{
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
}

const char *ast_value_describe(const AstValue *v, char *buf, size_t len)
{
    const char *text = v->text ? v->text : "?";
    switch (v->kind) {
    case AV_INT: snprintf(buf, len, "integer %s", text); break;
    case AV_FLOAT: snprintf(buf, len, "number %s", text); break;
    case AV_STRING: snprintf(buf, len, "string %s", text); break;
    case AV_BOOL: snprintf(buf, len, "%s", v->i ? "true" : "false"); break;
    case AV_IDENT: snprintf(buf, len, "name '%s'", v->s ? v->s : "?"); break;
    case AV_SHAPE: snprintf(buf, len, "shape %s", text); break;
    case AV_CALL: snprintf(buf, len, "call %s", text); break;
    }
    return buf;
}
