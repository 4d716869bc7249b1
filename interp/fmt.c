/* The formatter (fmt.h). It rescans the text itself rather than through the lexer, whose tokens drop comments and
 * spelling; the text has parsed first, so every token here is a well-formed one. Statement ends follow the lexer's
 * rules: a line break or ';' outside parentheses ends a statement, a line break inside them does not. */
#include "fmt.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "parse.h"

typedef enum Tok { T_END, T_NL, T_SEMI, T_LBRACE, T_RBRACE, T_LPAREN, T_RPAREN, T_COMMA, T_EQ, T_COLON, T_MINUS,
                   T_COMMENT, T_STRING, T_WORD } Tok;

typedef struct Scan {
    const char *s, *end;
    const char *text; /* the current token's spelling */
    size_t len;
} Scan;

static int word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           (unsigned char)c >= 0x80;
}

/* The next token; blanks (spaces, tabs, CR, form feeds, vertical tabs) are skipped. */
static Tok next(Scan *sc)
{
    while (sc->s < sc->end && strchr(" \t\r\f\v", *sc->s) && *sc->s)
        sc->s++;
    const char *p = sc->s;
    sc->text = p;
    if (p == sc->end)
        return sc->len = 0, T_END;
    static const char punct[] = "\n;{}(),=:-";
    const char *k = strchr(punct, *p);
    if (k && *p) {
        sc->s++, sc->len = 1;
        return (Tok)(T_NL + (k - punct));
    }
    if (*p == '#') {
        while (sc->s < sc->end && *sc->s != '\n')
            sc->s++;
        while (sc->s > p && strchr(" \t\r\f\v", sc->s[-1]))
            sc->s--; /* trailing blanks are not part of the comment */
        sc->len = (size_t)(sc->s - p);
        return T_COMMENT;
    }
    if (*p == '"') {
        for (sc->s++; sc->s < sc->end && *sc->s != '"'; sc->s++)
            if (*sc->s == '\\')
                sc->s++;
        sc->s++;
        sc->len = (size_t)(sc->s - p);
        return T_STRING;
    }
    int number = (*p >= '0' && *p <= '9') || *p == '.';
    for (sc->s++; sc->s < sc->end; sc->s++) {
        char c = *sc->s, prev = sc->s[-1];
        if (!word_char(c) && !(number && (c == '+' || c == '-') && (prev == 'e' || prev == 'E')))
            break;
    }
    sc->len = (size_t)(sc->s - p);
    return T_WORD;
}

/* A growing string. */
typedef struct Str {
    char *s;
    size_t n, cap;
    int failed;
} Str;

static void str_add(Str *b, const char *text, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->n, text, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void str_pad(Str *b, int n)
{
    for (int i = 0; i < n; i++)
        str_add(b, " ", 1);
}

/* The output and the line being built. */
typedef struct Out {
    Str out, line, trail; /* the text so far; the current line's code and its trailing comments */
    int depth, paren;
    int open_pending;     /* the line ends with '{': the body starts on the next line, one level deeper */
    int blank;            /* a blank line was seen since the last line written */
    int written, after_open;
    Tok last;             /* the last token put on the line (T_END: none) */
} Out;

static void flush_line(Out *o)
{
    if (!o->line.n && !o->trail.n)
        return;
    if (o->blank && o->written && !o->after_open)
        str_add(&o->out, "\n", 1);
    str_pad(&o->out, 4 * o->depth);
    str_add(&o->out, o->line.s ? o->line.s : "", o->line.n);
    if (o->line.n && o->trail.n)
        str_add(&o->out, "  ", 2);
    str_add(&o->out, o->trail.s ? o->trail.s : "", o->trail.n);
    str_add(&o->out, "\n", 1);
    o->written = 1, o->blank = 0;
    o->after_open = o->open_pending;
    if (o->open_pending)
        o->depth++, o->open_pending = 0;
    o->line.n = o->trail.n = 0;
    o->last = T_END;
}

/* Whether a space goes between the last token on the line and t. */
static int space_before(const Out *o, Tok t)
{
    Tok p = o->last;
    if (p == T_END || p == T_LPAREN || p == T_MINUS || p == T_EQ)
        return 0;
    return !(t == T_RPAREN || t == T_COMMA || t == T_COLON || t == T_EQ || t == T_LPAREN);
}

/* The top-level statements whose values line up, at column 11. */
static const char *const aligned[] = {"data", "optimizer", "schedule", "loss", "epochs", "seed", "checkpoint", NULL};

static void put_token(Out *o, Tok t, const char *text, size_t len)
{
    if (o->open_pending)
        flush_line(o);
    int first = o->last == T_END;
    if (space_before(o, t))
        str_add(&o->line, " ", 1);
    str_add(&o->line, text, len);
    if (first && o->depth == 0 && t == T_WORD)
        for (int i = 0; aligned[i]; i++)
            if (strlen(aligned[i]) == len && strncmp(aligned[i], text, len) == 0)
                str_pad(&o->line, len < 9 ? 9 - (int)len : 0);
    o->last = t;
}

static void put_comment(Out *o, const char *text, size_t len)
{
    if (!o->line.n && !o->open_pending && o->paren == 0) { /* a comment line of its own */
        str_add(&o->line, text, len);
        flush_line(o);
        return;
    }
    if (o->trail.n)
        str_add(&o->trail, "  ", 2);
    str_add(&o->trail, text, len);
}

static void step(Out *o, Tok t, const Scan *sc, int *line_used)
{
    if (t == T_NL) {
        if (o->paren > 0)
            return;
        if (!*line_used)
            o->blank = 1;
        flush_line(o);
        *line_used = 0;
        return;
    }
    *line_used = 1;
    if (t == T_COMMENT) {
        put_comment(o, sc->text, sc->len);
    } else if (t == T_SEMI && o->paren == 0) {
        flush_line(o);
    } else if (t == T_LBRACE) {
        put_token(o, t, "{", 1);
        o->open_pending = 1;
    } else if (t == T_RBRACE) {
        flush_line(o);
        o->depth -= o->depth > 0;
        o->blank = 0; /* no blank line before a closing brace */
        put_token(o, t, "}", 1);
        o->after_open = 0;
    } else {
        o->paren += t == T_LPAREN ? 1 : t == T_RPAREN && o->paren > 0 ? -1 : 0;
        put_token(o, t, sc->text, sc->len);
    }
}

char *fmt_source(const char *src, size_t len)
{
    Out o = {.last = T_END};
    Scan sc = {.s = src, .end = src + len};
    if (len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        sc.s += 3; /* the byte-order mark goes */
    int line_used = 0;
    str_add(&o.out, "", 0);
    for (Tok t; (t = next(&sc)) != T_END;)
        step(&o, t, &sc, &line_used);
    flush_line(&o);
    free(o.line.s), free(o.trail.s);
    if (o.out.failed || o.line.failed || o.trail.failed) {
        free(o.out.s);
        return NULL;
    }
    return o.out.s;
}

int fmt_check_syntax(const char *file, const char *src, size_t len, FILE *diag)
{
    Diag d;
    AstStmt *ast = NULL;
    diag_init(&d, diag, file, src, len);
    int rc = parse_source(&d, src, len, &ast);
    ast_free(ast);
    return rc;
}
