/* Parser tests: the syntax tree of every construct (top-level statements, call forms, labels, repeat,
 * residual, input, blocks with defaults, negative values), syntax errors with their exact text and
 * line:column, error recovery (several errors in one run), and robustness on mangled input. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "interp/parse.h"

typedef struct Parsed {
    AstStmt *ast;
    int rc;
    Diag d;
    char *msgs;
    size_t msglen;
    FILE *f;
} Parsed;

static void parse(Parsed *p, const char *src)
{
    memset(p, 0, sizeof *p);
    p->f = open_memstream(&p->msgs, &p->msglen);
    cr_assert_not_null(p->f);
    diag_init(&p->d, p->f, "t.bnn", src, strlen(src));
    p->rc = parse_source(&p->d, src, strlen(src), &p->ast);
    fflush(p->f);
}

static void done(Parsed *p)
{
    ast_free(p->ast);
    fclose(p->f);
    free(p->msgs);
}

static const AstStmt *nth(const AstStmt *s, int n)
{
    while (s && n-- > 0)
        s = s->next;
    cr_assert_not_null(s);
    return s;
}

static int length(const AstStmt *s)
{
    int n = 0;
    for (; s; s = s->next)
        n++;
    return n;
}

static const char seed[] = "# LeNet with batch normalization (Ioffe & Szegedy, 2015)\n"
                           "model lenet_bn\n"
                           "\n"
                           "data      fashion_mnist(batch=128)\n"
                           "optimizer sgd(lr=1.0)\n"
                           "loss      cross_entropy\n"
                           "epochs    10\n"
                           "\n"
                           "network {\n"
                           "    conv2d(6, kernel=5)\n"
                           "    batchnorm\n"
                           "    sigmoid\n"
                           "    avgpool(2, stride=2)\n"
                           "    conv2d(16, kernel=5)\n"
                           "    batchnorm\n"
                           "    sigmoid\n"
                           "    avgpool(2, stride=2)\n"
                           "    flatten\n"
                           "    dense(120)\n"
                           "    batchnorm\n"
                           "    sigmoid\n"
                           "    dense(84)\n"
                           "    batchnorm\n"
                           "    sigmoid\n"
                           "    dense(10)\n"
                           "}\n";

Test(parser, seed_model_tree)
{
    Parsed p;
    parse(&p, seed);
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    cr_assert_eq(length(p.ast), 6);
    AstStmtKind kinds[] = {AS_MODEL, AS_DATA, AS_OPTIMIZER, AS_LOSS, AS_EPOCHS, AS_NETWORK};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(nth(p.ast, i)->kind, kinds[i]);
    cr_assert_str_eq(nth(p.ast, 0)->val.s, "lenet_bn");
    const AstStmt *data = nth(p.ast, 1);
    cr_assert_str_eq(data->call->name, "fashion_mnist");
    cr_assert_eq(data->call->nargs, 1);
    cr_assert_str_eq(data->call->args->key, "batch");
    cr_assert_eq(data->call->args->val.i, 128);
    cr_assert_eq(data->loc.line, 4);
    cr_assert_eq(data->call->loc.col, 11);
    cr_assert_float_eq(nth(p.ast, 2)->call->args->val.f, 1.0, 0);
    cr_assert_eq(nth(p.ast, 4)->val.i, 10);
    const AstStmt *net = nth(p.ast, 5);
    cr_assert_eq(length(net->body), 16);
    const AstStmt *conv = nth(net->body, 0);
    cr_assert_eq(conv->kind, AS_CALL);
    cr_assert_str_eq(conv->call->name, "conv2d");
    cr_assert_eq(conv->loc.line, 10);
    cr_assert_eq(conv->loc.col, 5);
    cr_assert_null(conv->call->args->key);
    cr_assert_eq(conv->call->args->val.i, 6);
    cr_assert_str_eq(conv->call->args->next->key, "kernel");
    cr_assert_eq(nth(net->body, 1)->call->parens, 0);
    cr_assert_str_eq(nth(net->body, 15)->call->name, "dense");
    done(&p);
}

Test(parser, call_forms)
{
    Parsed p;
    parse(&p, "network { relu; relu(); dense(10, bias=false,); conv2d(\n  4,\n  kernel=3\n) }");
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    const AstStmt *b = p.ast->body;
    cr_assert_eq(length(b), 4);
    cr_assert_eq(nth(b, 0)->call->parens, 0);
    cr_assert_eq(nth(b, 1)->call->parens, 1);
    cr_assert_eq(nth(b, 1)->call->nargs, 0);
    cr_assert_eq(nth(b, 2)->call->nargs, 2);
    cr_assert_eq(nth(b, 2)->call->args->next->val.kind, AV_BOOL);
    cr_assert_eq(nth(b, 2)->call->args->next->val.i, 0);
    cr_assert_eq(nth(b, 3)->call->nargs, 2);
    cr_assert_eq(nth(b, 3)->call->args->next->key_loc.line, 3);
    done(&p);
}

Test(parser, labels_repeat_residual_input)
{
    Parsed p;
    parse(&p, "network {\n"
              "  input 1x28x28\n"
              "  bn1: batchnorm(momentum=0.9)\n"
              "  repeat 3 { relu }\n"
              "  skip: residual {\n    conv2d(1, kernel=3, padding=1)\n  }\n"
              "}\n");
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    const AstStmt *b = p.ast->body;
    cr_assert_eq(length(b), 4);
    cr_assert_eq(nth(b, 0)->kind, AS_INPUT);
    cr_assert_eq(nth(b, 0)->val.kind, AV_SHAPE);
    const AstStmt *bn = nth(b, 1);
    cr_assert_str_eq(bn->label, "bn1");
    cr_assert_eq(bn->label_loc.col, 3);
    cr_assert_eq(bn->loc.col, 8);
    cr_assert_str_eq(bn->call->args->key, "momentum");
    const AstStmt *rep = nth(b, 2);
    cr_assert_eq(rep->kind, AS_REPEAT);
    cr_assert_eq(rep->val.i, 3);
    cr_assert_eq(length(rep->body), 1);
    const AstStmt *res = nth(b, 3);
    cr_assert_eq(res->kind, AS_RESIDUAL);
    cr_assert_str_eq(res->label, "skip");
    cr_assert_eq(length(res->body), 1);
    cr_assert_eq(res->body_loc.line, 5);
    done(&p);
}

Test(parser, blocks_with_parameters_and_defaults)
{
    Parsed p;
    parse(&p, "block conv_bn(c, k=3) { conv2d(c, kernel=k); batchnorm; relu }\n"
              "block plain { relu }\n"
              "network { conv_bn(32, 3); conv_bn(c=32, k=3) }\n");
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    const AstStmt *b = p.ast;
    cr_assert_eq(b->kind, AS_BLOCK);
    cr_assert_str_eq(b->name, "conv_bn");
    cr_assert_eq(b->nparams, 2);
    cr_assert_null(b->params->key);
    cr_assert_str_eq(b->params->val.s, "c");
    cr_assert_str_eq(b->params->next->key, "k");
    cr_assert_eq(b->params->next->val.i, 3);
    cr_assert_eq(length(b->body), 3);
    cr_assert_eq(nth(p.ast, 1)->nparams, 0);
    const AstStmt *call = nth(nth(p.ast, 2)->body, 1);
    cr_assert_str_eq(call->call->args->key, "c");
    done(&p);
}

Test(parser, negative_values_keep_their_sign_and_spelling)
{
    Parsed p;
    parse(&p, "seed -5\nepochs -2.5\n");
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    cr_assert_eq(p.ast->val.i, -5);
    cr_assert_str_eq(p.ast->val.text, "-5");
    cr_assert_eq(p.ast->val.loc.col, 6);
    cr_assert_float_eq(p.ast->next->val.f, -2.5, 0);
    done(&p);
}

Test(parser, several_statements_on_a_line_and_none)
{
    Parsed p;
    parse(&p, "epochs 3; seed 4;;\n;\n");
    cr_assert_eq(p.rc, 0, "%s", p.msgs);
    cr_assert_eq(length(p.ast), 2);
    done(&p);
    parse(&p, "");
    cr_assert_eq(p.rc, 0);
    cr_assert_null(p.ast);
    done(&p);
}

/* ---- errors ---- */

static void expect_error(const char *src, const char *first_line)
{
    Parsed p;
    parse(&p, src);
    cr_assert_eq(p.rc, 1);
    cr_assert_null(p.ast);
    char *nl = strchr(p.msgs, '\n');
    cr_assert_not_null(nl, "no message for %s", src);
    *nl = '\0';
    cr_assert_str_eq(p.msgs, first_line);
    done(&p);
}

Test(parser, missing_brace_names_the_open_one)
{
    expect_error("data fashion_mnist\n\nnetwork {\n    relu\n    dense(10)\n",
                 "t.bnn:5:14: error: expected '}' (to close '{' at line 3), found end of file");
}

Test(parser, missing_paren_is_reported_on_its_line)
{
    expect_error("network {\n    conv2d(6, kernel=5\n    batchnorm\n}\n",
                 "t.bnn:2:23: error: expected ',' or ')', found end of line");
    expect_error("network {\n    dense(10,\n", "t.bnn:2:14: error: expected a value or ')', found end of file");
}

Test(parser, missing_paren_on_another_line)
{
    expect_error("data fashion_mnist(batch=128,\n  shuffle=true\noptimizer sgd(lr=1)\n",
                 "t.bnn:2:15: error: expected ',' or ')' (to close '(' at line 1), found end of line");
}

Test(parser, unknown_statement_gets_a_suggestion)
{
    expect_error("netwrok { relu }\n", "t.bnn:1:1: error: unknown statement 'netwrok' (did you mean 'network'?)");
    expect_error("conv2d(6, kernel=5)\n",
                 "t.bnn:1:1: error: unknown statement 'conv2d' (layers go inside 'network { ... }')");
}

Test(parser, other_syntax_errors)
{
    expect_error("epochs\n", "t.bnn:1:7: error: expected a value, found end of line");
    expect_error("epochs 10 20\n", "t.bnn:1:11: error: expected end of line or ';', found '20'");
    expect_error("network { relu dense }\n", "t.bnn:1:16: error: expected end of line, ';' or '}', found 'dense'");
    expect_error("network { epochs 3 }\n", "t.bnn:1:11: error: expected a layer or '}', found 'epochs'");
    expect_error("network relu\n", "t.bnn:1:9: error: expected '{', found 'relu'");
    expect_error("data fashion_mnist(batch==1)\n", "t.bnn:1:26: error: expected a value, found '='");
    expect_error("seed - x\n", "t.bnn:1:8: error: expected an integer or a number, found 'x'");
    expect_error("network { relu } }\n", "t.bnn:1:18: error: expected end of line or ';', found '}'");
    expect_error("block b(c { relu }\n", "t.bnn:1:11: error: expected '=', ',' or ')', found '{'");
}

Test(parser, recovery_reports_every_error)
{
    Parsed p;
    parse(&p, "network {\n"
              "    conv2d(6 kernel=5)\n"
              "    relu\n"
              "    dense(10 20)\n"
              "}\n"
              "epochs 10 10\n");
    cr_assert_eq(p.rc, 1);
    cr_assert_eq(p.d.errors, 3, "%s", p.msgs);
    cr_assert(strstr(p.msgs, "t.bnn:2:14: error: expected ',' or ')', found 'kernel'"), "%s", p.msgs);
    cr_assert(strstr(p.msgs, "t.bnn:4:14: error: expected ',' or ')', found '20'"), "%s", p.msgs);
    cr_assert(strstr(p.msgs, "t.bnn:6:11: error: expected end of line or ';', found '10'"), "%s", p.msgs);
    done(&p);
}

Test(parser, error_output_has_source_line_and_caret)
{
    Parsed p;
    parse(&p, "network {\n\tdense(10 20)\n}\n");
    cr_assert_str_eq(p.msgs, "t.bnn:2:11: error: expected ',' or ')', found '20'\n"
                             "\tdense(10 20)\n"
                             "\t         ^\n");
    done(&p);
}

/* ---- robustness ---- */

static int load_quiet(const char *src, size_t len)
{
    FILE *null = fopen("/dev/null", "w");
    CheckOptions o = {.diag = null};
    ModelSpec *m = NULL;
    int rc = bnn_load_source("t.bnn", src, len, &o, &m);
    cr_assert(rc == 0 || rc == 1);
    cr_assert(rc == 1 || (m && m->nlayers > 0 && m->nparams > 0 && m->source_len == len));
    cr_assert(rc == 0 || m == NULL);
    spec_free(m);
    fclose(null);
    return rc;
}

Test(parser, every_truncation_of_the_seed_is_handled)
{
    size_t n = strlen(seed);
    size_t close = (size_t)(strrchr(seed, '}') - seed);
    for (size_t len = 0; len < n; len++) {
        int rc = load_quiet(seed, len);
        /* without its closing '}' the network is unterminated */
        if (len <= close)
            cr_assert_eq(rc, 1, "truncated at %zu", len);
        else
            cr_assert_eq(rc, 0, "truncated at %zu", len);
    }
}

Test(parser, every_one_byte_change_of_the_seed_is_handled)
{
    size_t n = strlen(seed);
    char *buf = malloc(n);
    static const char subst[] = {'\0', '{', '}', '(', ')', '\n', '"', '#', ':', '=', ',', '-', 'x', '9', '\xff'};
    for (size_t i = 0; i < n; i++) {
        memcpy(buf, seed, i);
        memcpy(buf + i, seed + i + 1, n - i - 1);
        load_quiet(buf, n - 1); /* deleted */
        for (size_t k = 0; k < sizeof subst; k++) {
            memcpy(buf, seed, n);
            buf[i] = subst[k];
            load_quiet(buf, n); /* replaced */
        }
    }
    free(buf);
}
