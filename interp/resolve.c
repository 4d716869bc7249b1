/* Name resolution, before any expansion: block definitions (names, parameters, defaults), and for every
 * call in the network and in block bodies whether it names a layer or a block (or nothing: reported here,
 * once, with a suggestion), whether a block call's arguments fit its parameters, and whether the names used
 * as values inside a block body are its parameters. Expansion then never reports these again. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

int block_param(const Block *b, const char *name)
{
    for (int i = 0; i < b->nparams; i++)
        if (strcmp(b->names[i], name) == 0)
            return i;
    return -1;
}

static int find_block(const Checker *c, const char *name)
{
    int lo = 0, hi = c->nblocks - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, r = strcmp(name, c->blocks[mid].def->name);
        if (r == 0)
            return mid;
        if (r < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

/* ---- block definitions ---- */

static int add_param(Checker *c, Block *b, const char *name, SrcLoc loc, const AstValue *dflt)
{
    const char *bname = b->def->name;
    if (block_param(b, name) >= 0) {
        diag_error(c->d, loc, "block '%s' has two parameters named '%s'", bname, name);
        return -1;
    }
    if (b->nparams == CHECK_MAX_PARAMS) {
        diag_error(c->d, loc, "block '%s' has more than %d parameters", bname, CHECK_MAX_PARAMS);
        return -1;
    }
    if (!dflt && b->nparams > 0 && b->defaults[b->nparams - 1]) {
        diag_error(c->d, loc, "parameter '%s' of block '%s' has no default but follows one that has", name, bname);
        return -1;
    }
    if (dflt && dflt->kind == AV_IDENT) {
        diag_error(c->d, dflt->loc, "the default of parameter '%s' must be a value, got name '%s'", name, dflt->s);
        return -1;
    }
    b->names[b->nparams] = name;
    b->defaults[b->nparams++] = dflt;
    return 0;
}

static void define_block(Checker *c, Block *b, AstStmt *def)
{
    memset(b, 0, sizeof *b);
    b->def = def;
    if (call_find(CC_LAYER, def->name)) {
        diag_error(c->d, def->name_loc, "block '%s' has the name of a layer; choose another name", def->name);
        b->bad = 1;
    }
    if (!def->body) {
        diag_error(c->d, def->body_loc, "block '%s' is empty", def->name);
        b->bad = 1;
    }
    int n = def->nparams < CHECK_MAX_PARAMS ? def->nparams : CHECK_MAX_PARAMS;
    b->names = calloc((size_t)n + 1, sizeof *b->names);
    b->defaults = calloc((size_t)n + 1, sizeof *b->defaults);
    if (!b->names || !b->defaults) {
        diag_error(c->d, def->loc, "out of memory");
        b->bad = 1;
        return;
    }
    for (AstArg *a = def->params; a; a = a->next) {
        int rc;
        if (a->key)
            rc = add_param(c, b, a->key, a->key_loc, &a->val);
        else if (a->val.kind == AV_IDENT)
            rc = add_param(c, b, a->val.s, a->val.loc, NULL);
        else {
            char desc[160];
            diag_error(c->d, a->val.loc, "a block parameter must be a name, got %s",
                       ast_value_describe(&a->val, desc, sizeof desc));
            rc = -1;
        }
        if (rc) {
            b->bad = 1;
            break;
        }
    }
}

static int by_name(const void *pa, const void *pb)
{
    const Block *a = pa, *b = pb;
    int r = strcmp(a->def->name, b->def->name);
    if (r)
        return r;
    if (a->def->loc.line != b->def->loc.line)
        return a->def->loc.line - b->def->loc.line;
    return a->def->loc.col - b->def->loc.col;
}

void resolve_blocks(Checker *c, AstStmt *file)
{
    int n = 0;
    for (AstStmt *s = file; s; s = s->next)
        n += s->kind == AS_BLOCK;
    if (n == 0)
        return;
    c->blocks = calloc((size_t)(n < CHECK_MAX_BLOCKS ? n : CHECK_MAX_BLOCKS), sizeof *c->blocks);
    if (!c->blocks) {
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return;
    }
    for (AstStmt *s = file; s; s = s->next) {
        if (s->kind != AS_BLOCK)
            continue;
        if (c->nblocks == CHECK_MAX_BLOCKS) {
            diag_error(c->d, s->loc, "more than %d blocks are defined", CHECK_MAX_BLOCKS);
            break;
        }
        define_block(c, &c->blocks[c->nblocks++], s);
    }
    qsort(c->blocks, (size_t)c->nblocks, sizeof *c->blocks, by_name);
    int k = 0;
    for (int i = 0; i < c->nblocks; i++) {
        if (k > 0 && strcmp(c->blocks[k - 1].def->name, c->blocks[i].def->name) == 0) {
            diag_error(c->d, c->blocks[i].def->name_loc, "block '%s' is defined twice (first at line %d)",
                       c->blocks[i].def->name, c->blocks[k - 1].def->loc.line);
            free(c->blocks[i].names);
            free(c->blocks[i].defaults);
            continue;
        }
        c->blocks[k++] = c->blocks[i];
    }
    c->nblocks = k;
}

void resolve_free(Checker *c)
{
    for (int i = 0; i < c->nblocks; i++) {
        free(c->blocks[i].names);
        free(c->blocks[i].defaults);
    }
    free(c->blocks);
    c->blocks = NULL;
    c->nblocks = 0;
}

/* ---- uses ---- */

/* Inside a block, a name used as a value must be one of its parameters; marked bad (reported) otherwise. */
static void check_name(Checker *c, AstValue *v, const Block *b)
{
    if (v->kind != AV_IDENT || v->bad || !b || block_param(b, v->s) >= 0)
        return;
    const char *sug = diag_suggest(v->s, b->names, b->nparams);
    if (sug)
        diag_error(c->d, v->loc, "'%s' is not a parameter of block '%s' (did you mean '%s'?)", v->s, b->def->name, sug);
    else if (b->nparams == 0)
        diag_error(c->d, v->loc, "'%s' is not a parameter of block '%s', which has none", v->s, b->def->name);
    else
        diag_error(c->d, v->loc, "'%s' is not a parameter of block '%s'", v->s, b->def->name);
    v->bad = 1;
}

/* Whether the arguments of a call fit block b's parameters; reports what does not. */
static int block_call_ok(Checker *c, const Block *b, const AstCall *call)
{
    const char *name = b->def->name;
    char given[CHECK_MAX_PARAMS] = {0};
    int ok = 1, pos = 0, keyed = 0, extra = 0;
    for (const AstArg *a = call->args; a; a = a->next) {
        int k;
        if (a->key) {
            keyed = 1;
            if ((k = block_param(b, a->key)) < 0) {
                const char *sug = diag_suggest(a->key, b->names, b->nparams);
                diag_error(c->d, a->key_loc, "block '%s' has no parameter '%s'%s%s%s", name, a->key,
                           sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
                ok = 0;
                continue;
            }
        } else if (keyed) {
            diag_error(c->d, a->val.loc, "positional argument after keyword arguments in a call of block '%s'", name);
            ok = 0;
            continue;
        } else if (pos >= b->nparams) {
            if (!extra++ && b->nparams == 0)
                diag_error(c->d, a->val.loc, "block '%s' takes no arguments", name);
            else if (extra == 1)
                diag_error(c->d, a->val.loc, "block '%s' takes %d argument%s, got %d", name, b->nparams,
                           b->nparams == 1 ? "" : "s", call->nargs);
            ok = 0;
            continue;
        } else {
            k = pos++;
        }
        if (given[k]++) {
            diag_error(c->d, a->key ? a->key_loc : a->val.loc, "parameter '%s' of block '%s' is given twice",
                       b->names[k], name);
            ok = 0;
        }
    }
    for (int k = 0; k < b->nparams; k++) {
        if (!given[k] && !b->defaults[k]) {
            diag_error(c->d, call->loc, "block '%s' needs a value for its parameter '%s'", name, b->names[k]);
            ok = 0;
        }
    }
    return ok;
}

static void unknown_call(Checker *c, const AstStmt *st)
{
    const char *name = st->call->name;
    const char *cands[CHECK_MAX_BLOCKS + LK_COUNT];
    int nl = call_names(CC_LAYER, cands, LK_COUNT), n = nl;
    for (int i = 0; i < c->nblocks; i++)
        cands[n++] = c->blocks[i].def->name;
    const char *sug = c->d->stopped ? NULL : diag_suggest(name, cands, n);
    char list[512];
    size_t len = 0;
    for (int i = 0; i < nl && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i == 0 ? "" : i == nl - 1 ? " and " : ", ",
                                cands[i]);
    if (sug)
        diag_error(c->d, st->loc, "unknown layer '%s' (did you mean '%s'?)", name, sug);
    else
        diag_error(c->d, st->loc, "unknown layer '%s' (the layers are %s, and blocks you define)", name, list);
}

static void resolve_call(Checker *c, AstStmt *st, const Block *in)
{
    AstCall *call = st->call;
    for (AstArg *a = call->args; a; a = a->next)
        check_name(c, &a->val, in);
    const CallSpec *cs = call_find(CC_LAYER, call->name);
    int bi = cs ? -1 : find_block(c, call->name);
    st->ref = REF_NONE;
    if (cs) {
        st->ref = REF_LAYER;
        st->ref_index = cs->kind;
    } else if (bi >= 0) {
        if (!c->blocks[bi].bad && block_call_ok(c, &c->blocks[bi], call))
            st->ref = REF_BLOCK, st->ref_index = bi;
    } else {
        unknown_call(c, st);
    }
}

/* Bodies nest at most PARSE_MAX_DEPTH deep, which bounds the recursion. */
static void walk(Checker *c, AstStmt *list, const Block *in)
{
    for (AstStmt *st = list; st && !c->d->stopped; st = st->next) {
        if (st->label && (st->kind == AS_INPUT || st->kind == AS_REPEAT))
            diag_error(c->d, st->label_loc, "a label names a layer, a residual or a block call, not '%s'",
                       st->kind == AS_INPUT ? "input" : "repeat");
        switch (st->kind) {
        case AS_CALL: resolve_call(c, st, in); break;
        case AS_INPUT: check_name(c, &st->val, in); break;
        case AS_REPEAT:
            check_name(c, &st->val, in);
            walk(c, st->body, in);
            break;
        case AS_RESIDUAL: walk(c, st->body, in); break;
        default: break;
        }
    }
}

/* In file order, so that messages come in the order of the text. */
void resolve_calls(Checker *c, AstStmt *file, AstStmt *network)
{
    for (AstStmt *s = file; s; s = s->next) {
        if (s == network) {
            walk(c, network->body, NULL);
        } else if (s->kind == AS_BLOCK) {
            int bi = find_block(c, s->name);
            if (bi >= 0 && c->blocks[bi].def == s && !c->blocks[bi].bad)
                walk(c, s->body, &c->blocks[bi]);
        }
    }
}
