/* Lexer tests: tokens, values and line:column locations (columns in characters), CRLF, BOM, comments,
 * statement ends, line breaks inside parentheses, literal overflow and bad input, and that the lexer never
 * reads past the length it is given. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "interp/parse.h"
#include "parser.h"

typedef struct Lexed {
    LexToken *t;
    int n;
    Diag d;
    char *msgs;
    size_t msglen;
    FILE *f;
} Lexed;

static void lex(Lexed *x, const char *src, size_t len)
{
    memset(x, 0, sizeof *x);
    x->f = open_memstream(&x->msgs, &x->msglen);
    cr_assert_not_null(x->f);
    diag_init(&x->d, x->f, "t.bnn", src, len);
    x->n = lex_tokens(&x->d, src, len, &x->t);
    fflush(x->f);
    cr_assert_gt(x->n, 0);
    cr_assert_eq(x->t[x->n - 1].kind, TOK_END);
}

static void lex_str(Lexed *x, const char *src)
{
    lex(x, src, strlen(src));
}

static void done(Lexed *x)
{
    lex_tokens_free(x->t, x->n);
    fclose(x->f);
    free(x->msgs);
}

static void expect_kinds(const Lexed *x, const int *kinds, int n)
{
    cr_assert_eq(x->n, n, "got %d tokens, expected %d", x->n, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(x->t[i].kind, kinds[i], "token %d: kind %d, expected %d", i, x->t[i].kind, kinds[i]);
}

static void expect_at(const LexToken *t, int line, int col)
{
    cr_assert_eq(t->loc.line, line, "'%s' at line %d, expected %d", t->text, t->loc.line, line);
    cr_assert_eq(t->loc.col, col, "'%s' at column %d, expected %d", t->text, t->loc.col, col);
}

Test(lexer, call_tokens_and_columns)
{
    Lexed x;
    lex_str(&x, "    conv2d(6, kernel=5)\n");
    int k[] = {TOK_IDENT, TOK_LPAREN, TOK_INT, TOK_COMMA, TOK_IDENT, TOK_EQUALS, TOK_INT, TOK_RPAREN, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 10);
    expect_at(&x.t[0], 1, 5);
    expect_at(&x.t[2], 1, 12);
    expect_at(&x.t[4], 1, 15);
    expect_at(&x.t[6], 1, 22);
    expect_at(&x.t[8], 1, 24);
    cr_assert_str_eq(x.t[0].val.s, "conv2d");
    cr_assert_eq(x.t[6].val.i, 5);
    cr_assert_eq(x.msglen, 0);
    done(&x);
}

Test(lexer, keywords_and_booleans)
{
    Lexed x;
    lex_str(&x, "model data optimizer schedule loss epochs seed checkpoint network block repeat residual input true false "
                "models");
    int k[] = {TOK_MODEL,   TOK_DATA,  TOK_OPTIMIZER, TOK_SCHEDULE, TOK_LOSS,     TOK_EPOCHS, TOK_SEED,
               TOK_CHECKPOINT, TOK_NETWORK, TOK_BLOCK, TOK_REPEAT, TOK_RESIDUAL, TOK_INPUT, TOK_TRUE,
               TOK_FALSE, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 18);
    cr_assert_str_eq(x.t[15].val.s, "models");
    done(&x);
}

Test(lexer, numbers)
{
    Lexed x;
    lex_str(&x, "128 1e-5 .5 2. 1.5e3 0 1x28x28 3x32");
    int k[] = {TOK_INT, TOK_FLOAT, TOK_FLOAT, TOK_FLOAT, TOK_FLOAT, TOK_INT, TOK_SHAPE, TOK_SHAPE, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 10);
    cr_assert_eq(x.t[0].val.i, 128);
    cr_assert_float_eq(x.t[1].val.f, 1e-5, 1e-20);
    cr_assert_float_eq(x.t[2].val.f, 0.5, 0);
    cr_assert_float_eq(x.t[3].val.f, 2.0, 0);
    cr_assert_float_eq(x.t[4].val.f, 1500.0, 0);
    cr_assert_eq(x.t[6].val.ndims, 3);
    cr_assert_eq(x.t[6].val.dims[0], 1);
    cr_assert_eq(x.t[6].val.dims[1], 28);
    cr_assert_eq(x.t[6].val.dims[2], 28);
    cr_assert_eq(x.t[7].val.ndims, 2);
    cr_assert_str_eq(x.t[1].val.text, "1e-5");
    done(&x);
}

Test(lexer, strings_and_escapes)
{
    Lexed x;
    lex_str(&x, "\"a\\\"b\\\\c\\n\\t\" \"/usr/share\"");
    cr_assert_eq(x.t[0].kind, TOK_STRING);
    cr_assert_str_eq(x.t[0].val.s, "a\"b\\c\n\t");
    cr_assert_str_eq(x.t[0].val.text, "\"a\\\"b\\\\c\\n\\t\"");
    cr_assert_str_eq(x.t[1].val.s, "/usr/share");
    expect_at(&x.t[1], 1, 15);
    cr_assert_eq(x.msglen, 0);
    done(&x);
}

Test(lexer, comments_and_statement_ends)
{
    Lexed x;
    lex_str(&x, "# a comment\n\n  relu # after a statement\n\n\nsigmoid; tanh;\n");
    int k[] = {TOK_IDENT, TOK_NEWLINE, TOK_IDENT, TOK_SEMI, TOK_IDENT, TOK_SEMI, TOK_END};
    expect_kinds(&x, k, 7);
    expect_at(&x.t[0], 3, 3);
    expect_at(&x.t[1], 3, 27);
    expect_at(&x.t[2], 6, 1);
    done(&x);
}

Test(lexer, last_statement_needs_no_newline)
{
    Lexed x;
    lex_str(&x, "epochs 10");
    int k[] = {TOK_EPOCHS, TOK_INT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 4);
    expect_at(&x.t[2], 1, 10); /* just after the last token */
    expect_at(&x.t[3], 1, 10);
    done(&x);
}

Test(lexer, crlf_and_bom)
{
    Lexed x;
    lex_str(&x, "\xEF\xBB\xBFmodel a\r\n\r\nepochs 3\r\n");
    int k[] = {TOK_MODEL, TOK_IDENT, TOK_NEWLINE, TOK_EPOCHS, TOK_INT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 7);
    expect_at(&x.t[0], 1, 1);
    expect_at(&x.t[3], 3, 1);
    expect_at(&x.t[4], 3, 8);
    cr_assert_str_eq(x.t[1].val.s, "a");
    cr_assert_eq(x.msglen, 0);
    done(&x);
}

Test(lexer, columns_count_characters)
{
    Lexed x;
    lex_str(&x, "\"é→\" x");
    expect_at(&x.t[1], 1, 6);
    done(&x);
}

Test(lexer, line_breaks_inside_parentheses)
{
    Lexed x;
    /* after ',' and before ')' the call goes on */
    lex_str(&x, "f(1,\n  2\n)\ng");
    int k[] = {TOK_IDENT, TOK_LPAREN, TOK_INT, TOK_COMMA, TOK_INT, TOK_RPAREN, TOK_NEWLINE, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 10);
    done(&x);
    /* anywhere else the ')' is missing: the line break ends the statement where it is */
    lex_str(&x, "f(1\ng\n");
    int k2[] = {TOK_IDENT, TOK_LPAREN, TOK_INT, TOK_NEWLINE, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k2, 7);
    expect_at(&x.t[3], 1, 4);
    expect_at(&x.t[4], 2, 1);
    done(&x);
}

Test(lexer, integer_overflow_is_an_error)
{
    Lexed x;
    lex_str(&x, "epochs 99999999999999999999");
    cr_assert_eq(x.t[1].kind, TOK_INT);
    cr_assert(x.t[1].val.bad);
    cr_assert_eq(x.d.errors, 1);
    cr_assert(strstr(x.msgs, "t.bnn:1:8: error: integer 99999999999999999999 is too large"), "%s", x.msgs);
    done(&x);
    lex_str(&x, "9223372036854775807 1e999 1e-400");
    cr_assert_eq(x.t[0].val.i, 9223372036854775807LL);
    cr_assert(!x.t[0].val.bad);
    cr_assert(x.t[1].val.bad && x.t[2].val.bad);
    cr_assert_eq(x.d.errors, 2);
    cr_assert(strstr(x.msgs, "t.bnn:1:21: error: number 1e999 is out of range"), "%s", x.msgs);
    done(&x);
}

Test(lexer, bad_characters_are_reported_and_skipped)
{
    Lexed x;
    lex_str(&x, "relu ~ 'x' 5abc “q”");
    cr_assert_eq(x.d.errors, 6);
    cr_assert(strstr(x.msgs, "t.bnn:1:6: error: unexpected character '~'"), "%s", x.msgs);
    cr_assert(strstr(x.msgs, "t.bnn:1:8: error: unexpected character ''' (strings use double quotes)"), "%s", x.msgs);
    cr_assert(strstr(x.msgs, "t.bnn:1:12: error: invalid number '5abc'"), "%s", x.msgs);
    cr_assert(strstr(x.msgs, "t.bnn:1:17: error: unexpected character '“' (U+201C)"), "%s", x.msgs);
    int k[] = {TOK_IDENT, TOK_IDENT, TOK_INT, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 6);
    done(&x);
}

Test(lexer, string_errors)
{
    Lexed x;
    lex_str(&x, "\"abc\\q\" \"open\nx");
    cr_assert_eq(x.d.errors, 2);
    cr_assert(strstr(x.msgs, "t.bnn:1:5: error: unknown escape '\\q' in string"), "%s", x.msgs);
    cr_assert(strstr(x.msgs, "t.bnn:1:9: error: unterminated string (missing the closing '\"')"), "%s", x.msgs);
    cr_assert_eq(x.t[1].kind, TOK_STRING);
    cr_assert(x.t[1].val.bad);
    done(&x);
}

Test(lexer, invalid_utf8_is_refused_with_its_location)
{
    Lexed x;
    lex_str(&x, "relu\nab\xC3(\n");
    cr_assert_eq(x.n, 1);
    cr_assert(strstr(x.msgs, "t.bnn:2:3: error: invalid UTF-8 (byte 0xC3)"), "%s", x.msgs);
    done(&x);
    lex_str(&x, "\xED\xA0\x80"); /* an encoded surrogate is not UTF-8 */
    cr_assert_eq(x.d.errors, 1);
    done(&x);
}

Test(lexer, nul_bytes_are_characters_not_ends)
{
    Lexed x;
    lex(&x, "relu\0tanh", 9);
    cr_assert(strstr(x.msgs, "t.bnn:1:5: error: unexpected control character 0x00"), "%s", x.msgs);
    int k[] = {TOK_IDENT, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 4);
    cr_assert_str_eq(x.t[1].val.s, "tanh");
    done(&x);
}

Test(lexer, never_reads_past_len)
{
    /* an exact-size heap copy without a NUL: the sanitizers and valgrind catch any read past it */
    const char text[] = "network { relu }";
    char *buf = malloc(sizeof text - 1);
    memcpy(buf, text, sizeof text - 1);
    Lexed x;
    lex(&x, buf, 12); /* "network { re" */
    int k[] = {TOK_NETWORK, TOK_LBRACE, TOK_IDENT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 5);
    cr_assert_str_eq(x.t[2].val.s, "re");
    done(&x);
    lex(&x, buf, sizeof text - 1);
    cr_assert_eq(x.n, 6);
    done(&x);
    free(buf);
}

Test(lexer, nesting_is_bounded)
{
    char src[2 * (PARSE_MAX_DEPTH + 1) + 1];
    for (int i = 0; i <= PARSE_MAX_DEPTH; i++)
        src[2 * i] = '{', src[2 * i + 1] = '\n';
    src[sizeof src - 1] = '\0';
    Lexed x;
    lex_str(&x, src);
    cr_assert_eq(x.d.errors, 1);
    cr_assert(strstr(x.msgs, "t.bnn:65:1: error: nested too deeply (more than 64 levels of '{')"), "%s", x.msgs);
    done(&x);
}

/* `set` is a keyword and a lone dot a token (it joins a set key's parts); a dot before a digit still starts a
 * number, and one after digits is part of it. */
Test(lexer, set_keyword_and_dot)
{
    Lexed x;
    lex_str(&x, "set data.batch = .5 unit_1.body.x 2.");
    int k[] = {TOK_SET, TOK_DATA, TOK_DOT, TOK_IDENT, TOK_EQUALS, TOK_FLOAT, TOK_IDENT, TOK_DOT, TOK_IDENT,
               TOK_DOT, TOK_IDENT, TOK_FLOAT, TOK_NEWLINE, TOK_END};
    expect_kinds(&x, k, 14);
    expect_at(&x.t[2], 1, 9);
    cr_expect_eq(x.t[5].val.f, 0.5);
    done(&x);
}
