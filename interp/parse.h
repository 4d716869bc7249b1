/* The parser's entry points and the state the reentrant lexer and parser share (grammar/lexer.l,
 * grammar/parser.y). parse_source and lex_tokens are defined in grammar/lexer.l. */
#ifndef BNNI_PARSE_H
#define BNNI_PARSE_H

#include <setjmp.h>
#include <stddef.h>

#include "ast.h"
#include "diag.h"

#define PARSE_MAX_DEPTH 64                 /* nested '{' in one file */
#define PARSE_MAX_BYTES (16u << 20)        /* the largest source accepted */

typedef struct ParseState {
    Diag *diag;
    AstStmt *result;        /* the parsed statements; owned until parse_source hands them over */
    int fatal;              /* nesting too deep or out of memory: no more tokens, no more messages */
    jmp_buf *bail;          /* where flex's fatal errors (out of memory) jump to */
    /* lexer position */
    int line, col;
    SrcLoc last_end;        /* just after the last token: where "end of file" is reported */
    int last_tok;           /* the last token returned */
    int last_was_sep;       /* it ended a statement (newline, ';', or nothing yet) */
    int at_eof;             /* the newline just returned was made up at the end of the file */
    char last_text[48];     /* its spelling, for "found 'x'" */
    /* brackets */
    int paren_depth;
    SrcLoc paren_loc, prev_paren_loc;
    int nl_pending;         /* a line break inside parentheses, kept or dropped at the next token */
    SrcLoc nl_loc;
    SrcLoc braces[PARSE_MAX_DEPTH];
    int brace_depth;
} ParseState;

/* Parses src[0..len) (UTF-8, optional BOM, LF or CRLF). Returns 0 and the statements in *out (caller frees
 * with ast_free), or 1 after reporting every syntax error it could find to d (*out = NULL). */
int parse_source(Diag *d, const char *src, size_t len, AstStmt **out);

/* One token, for tests and tools: kind is parser.h's token number (0 ends the input). */
typedef struct LexToken {
    int kind;
    SrcLoc loc;
    char text[48];
    AstValue val;           /* literals: the value the parser would see (val.s and val.text owned) */
} LexToken;

/* Scans src[0..len) into tokens, the last one of kind 0. Returns the count, or -1 when out of memory.
 * Lexical errors go to d. Caller frees *out with lex_tokens_free. */
int lex_tokens(Diag *d, const char *src, size_t len, LexToken **out);
void lex_tokens_free(LexToken *t, int n);

#endif
