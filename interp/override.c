/* Overrides (override.h): reading --set KEY=VALUE, writing them back as `set` statements, and applying both kinds to
 * a model while it is checked. Settings of statements (epochs, data.batch, optimizer.lr...) are spliced into the
 * syntax tree before the statements are checked, so every rule of the language applies to them; layer arguments
 * and kinds switched off are applied by expand.c as each layer is made (override_layer_args, override_layer_off),
 * because a layer's name is only known there. When a key is set twice the later wins: a file's `set` statements
 * come before the command line's. */
#include "override.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ---------------------------------------------------------------- the command line */

/* A dotted name: [A-Za-z_][A-Za-z0-9_]* parts joined by single dots. */
static int valid_key(const char *k, size_t n)
{
    int start = 1;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        int digit = ch >= '0' && ch <= '9';
        if (ch == '.' && !start)
            start = 1;
        else if (alpha || (digit && !start))
            start = 0;
        else
            return 0;
    }
    return n > 0 && !start;
}

/* The language's integer and number forms (docs/language.md, "Lexical structure"), with an optional minus. */
static int is_int(const char *s)
{
    s += *s == '-';
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int is_number(const char *s)
{
    int digits = 0, frac = 0, exp = 0;
    s += *s == '-';
    for (; *s >= '0' && *s <= '9'; s++)
        digits++;
    if (*s == '.') {
        frac = 1;
        for (s++; *s >= '0' && *s <= '9'; s++)
            digits++;
    }
    if (digits && (*s == 'e' || *s == 'E')) {
        s++;
        s += *s == '+' || *s == '-';
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
        exp = 1;
    }
    return digits && !*s && (frac || exp);
}

/* "..." with the language's escapes into a new string; NULL (err set) for another escape or no closing quote. */
static char *unquote(const char *t, char *err, size_t errlen)
{
    size_t n = strlen(t);
    char *s = malloc(n + 1), *o = s;
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 1; i + 1 < n; i++) {
        if (t[i] != '\\') {
            *o++ = t[i];
            continue;
        }
        const char *e = strchr("\\\\\"\"n\nt\tr\r", t[++i]);
        if (i + 1 >= n || !e || (e - "\\\\\"\"n\nt\tr\r") % 2) {
            snprintf(err, errlen, "unknown escape in string %s (use \\\\, \\\", \\n, \\t or \\r)", t);
            free(s);
            return NULL;
        }
        *o++ = e[1];
    }
    *o = '\0';
    return s;
}

/* v->text of a string: the value as the language writes it, quoted and escaped. */
static char *quote(const char *s)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += strchr("\\\"\n\t\r", *p) ? 2 : 1;
    char *q = malloc(n + 1), *o = q;
    if (!q)
        return NULL;
    *o++ = '"';
    for (const char *p = s; *p; p++) {
        const char *e = strchr("\\\\\"\"\nn\tt\rr", *p);
        if (e && (e - "\\\\\"\"\nn\tt\rr") % 2 == 0)
            *o++ = '\\', *o++ = e[1];
        else
            *o++ = *p;
    }
    *o++ = '"';
    *o = '\0';
    return q;
}

/* The value text of --set as an AstValue (override_parse's rules). Returns an OVERRIDE_ status. */
static int parse_value(const char *t, AstValue *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0) {
        v->kind = AV_BOOL, v->i = t[0] == 't', v->f = (double)v->i;
    } else if (is_int(t)) {
        errno = 0;
        v->kind = AV_INT, v->i = strtoll(t, NULL, 10), v->f = (double)v->i;
        if (errno == ERANGE) {
            snprintf(err, errlen, "integer %s is too large (the largest is 9223372036854775807)", t);
            return OVERRIDE_BAD_VALUE;
        }
    } else if (is_number(t)) {
        v->kind = AV_FLOAT, v->f = strtod(t, NULL);
        if (!isfinite(v->f) || (v->f == 0 && strpbrk(t, "123456789"))) {
            snprintf(err, errlen, "number %s is out of range", t);
            return OVERRIDE_BAD_VALUE;
        }
    } else {
        v->kind = AV_STRING;
        v->s = t[0] == '"' && strlen(t) >= 2 && t[strlen(t) - 1] == '"' ? unquote(t, err, errlen) : strdup(t);
        if (!v->s)
            return OVERRIDE_BAD_VALUE;
        v->text = quote(v->s);
        return v->text ? OVERRIDE_OK : OVERRIDE_BAD_VALUE;
    }
    return (v->text = strdup(t)) ? OVERRIDE_OK : OVERRIDE_BAD_VALUE;
}

int override_parse(const char *arg, Override *o, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    memset(o, 0, sizeof *o);
    if (!eq || !valid_key(arg, (size_t)(eq - arg))) {
        snprintf(err, errlen, "--set needs KEY=VALUE, KEY a setting such as optimizer.lr or batchnorm_1.momentum: %s",
                 arg);
        return OVERRIDE_USAGE;
    }
    if (!eq[1]) {
        snprintf(err, errlen, "--set needs a value after '=': %s", arg);
        return OVERRIDE_USAGE;
    }
    size_t n = strlen(arg);
    o->key = strndup(arg, (size_t)(eq - arg));
    o->origin = malloc(n + 7);
    if (!o->key || !o->origin) {
        snprintf(err, errlen, "out of memory");
        override_clear(o);
        return OVERRIDE_BAD_VALUE;
    }
    snprintf(o->origin, n + 7, "--set %s", arg);
    int rc = parse_value(eq + 1, &o->val, err, errlen);
    if (rc != OVERRIDE_OK) {
        override_clear(o);
        return rc;
    }
    o->val.origin = o->origin;
    return OVERRIDE_OK;
}

void override_clear(Override *o)
{
    free(o->key);
    free(o->origin);
    ast_value_clear(&o->val);
    memset(o, 0, sizeof *o);
}

int override_push(Override **v, int *n, const char *arg, char *err, size_t errlen)
{
    Override o, *nv;
    int rc = override_parse(arg, &o, err, errlen);
    if (rc != OVERRIDE_OK)
        return rc;
    if (!(nv = realloc(*v, ((size_t)*n + 1) * sizeof *nv))) {
        override_clear(&o);
        snprintf(err, errlen, "out of memory");
        return OVERRIDE_BAD_VALUE;
    }
    nv[(*n)++] = o;
    *v = nv;
    return OVERRIDE_OK;
}

void override_free_all(Override *v, int n)
{
    for (int i = 0; i < n; i++)
        override_clear(&v[i]);
    free(v);
}

const char *override_render(const Override *o, char *buf, size_t len)
{
    const AstValue *v = &o->val;
    snprintf(buf, len, "set %s = %s", o->key, v->kind == AV_BOOL ? (v->i ? "true" : "false") : v->text);
    return buf;
}

char *override_source(const char *src, size_t len, const Override *ov, int n, size_t *outlen)
{
    static const char head[] = "# overrides from the command line (bnni --set)\n";
    size_t cap = len + sizeof head + 2;
    for (int i = 0; i < n; i++)
        cap += strlen(ov[i].key) + strlen(ov[i].val.text ? ov[i].val.text : "false") + 16;
    char *t = malloc(cap), line[4096];
    if (!t)
        return NULL;
    size_t k = len;
    memcpy(t, src, len);
    if (k > 0 && t[k - 1] != '\n')
        t[k++] = '\n';
    k += (size_t)snprintf(t + k, cap - k, "%s", head);
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(t + k, cap - k, "%s\n", override_render(&ov[i], line, sizeof line));
    *outlen = k;
    return t;
}

int override_split_list(const char *arg, char ***out, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    if (!eq || !valid_key(arg, (size_t)(eq - arg))) {
        snprintf(err, errlen, "--set needs KEY=VALUE[,VALUE...]: %s", arg);
        return -2;
    }
    size_t klen = (size_t)(eq - arg) + 1;
    int n = 0, cap = 8, depth = 0, quoted = 0;
    char **v = malloc((size_t)cap * sizeof *v);
    const char *p = eq + 1, *start = p;
    for (;; p++) {
        if (*p == '"' && (p == start || p[-1] != '\\'))
            quoted = !quoted;
        else if (!quoted && *p == '(')
            depth++;
        else if (!quoted && *p == ')' && depth > 0)
            depth--;
        if (*p && (*p != ',' || quoted || depth))
            continue;
        if (p == start) {
            snprintf(err, errlen, "--set %s: %s", arg, n == 0 && !*p ? "the list of values is empty"
                                                                     : "a value in the list is empty");
            goto fail;
        }
        if (n == cap)
            v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        char *item = v ? malloc(klen + (size_t)(p - start) + 1) : NULL;
        if (!item) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        snprintf(item, klen + (size_t)(p - start) + 1, "%.*s%.*s", (int)klen, arg, (int)(p - start), start);
        v[n++] = item;
        if (!*p)
            break;
        start = p + 1;
    }
    *out = v;
    return n;
fail:
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
    return -1;
}

/* ---------------------------------------------------------------- applying them (the checker) */

/* What a key sets. */
typedef enum Target { T_VALUE, T_CALL, T_OFF, T_KIND, T_NAME } Target;

typedef struct Entry {
    const char *key;
    const AstValue *val;
    SrcLoc loc;         /* the key in the file; line 0 from the command line */
    const char *origin; /* the command line's "--set ..."; NULL in the file */
    Target target;
    AstStmtKind stmt;   /* T_VALUE, T_CALL */
    LayerKind kind;     /* T_OFF, T_KIND */
    char head[SPEC_NAME_MAX]; /* T_NAME: the layer's name */
    const char *arg;    /* T_CALL, T_KIND, T_NAME: the argument's name (in key) */
    int off;            /* T_OFF: the value is off */
    int matched;        /* T_KIND, T_NAME: layers it applied to */
    int ok;             /* passed its checks and is not replaced by a later entry */
} Entry;

struct OverrideState {
    Entry *e;
    int n;
};

/* An error about entry e: at its place in the file, or naming its --set when it came from the command line. */
static void entry_error(Checker *c, const Entry *e, const char *fmt, ...) DIAG_PRINTF(3, 4);
static void entry_error(Checker *c, const Entry *e, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    DiagContextFn saved = c->d->context;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->d->context = NULL; /* no "in block ... called here": an override is not written in a block */
    if (e->origin)
        diag_error(c->d, (SrcLoc){0, 0}, "%s: %s", e->origin, msg);
    else
        diag_error(c->d, e->loc, "%s", msg);
    c->d->context = saved;
}

static const struct {
    const char *name;
    AstStmtKind stmt;
    CallClass cls; /* T_CALL */
} statements[] = {
    {"epochs", AS_EPOCHS, 0}, {"seed", AS_SEED, 0}, {"checkpoint", AS_CHECKPOINT, 0},
    {"data", AS_DATA, CC_DATA}, {"optimizer", AS_OPTIMIZER, CC_OPTIMIZER}, {"schedule", AS_SCHEDULE, CC_SCHEDULE},
    {"loss", AS_LOSS, CC_LOSS},
};
#define NSTATEMENTS ((int)(sizeof statements / sizeof statements[0]))
#define NVALUES 3 /* the first NSTATEMENTS entries that take a value, not a call */

/* "did you mean" for an unknown head (the part before the argument) among the statements and layer kinds; NULL
 * when none is close. */
static const char *suggest_head(const char *head)
{
    const char *cands[NSTATEMENTS + LK_COUNT + 1];
    int n = 0;
    for (int i = 0; i < NSTATEMENTS; i++)
        cands[n++] = statements[i].name;
    n += call_names(CC_LAYER, cands + n, LK_COUNT);
    return diag_suggest(head, cands, n);
}

/* Sorts out what e's key names; reports keys that name nothing before the network is known. Returns 0 when e
 * can apply. */
static int classify(Checker *c, Entry *e)
{
    const char *dot = strrchr(e->key, '.');
    size_t hl = dot ? (size_t)(dot - e->key) : strlen(e->key);
    char sug[SPEC_NAME_MAX + 64] = "";
    snprintf(e->head, sizeof e->head, "%.*s", (int)hl, e->key);
    e->arg = dot ? dot + 1 : NULL;
    for (int i = 0; i < NSTATEMENTS; i++) {
        if (strcmp(e->head, statements[i].name) != 0)
            continue;
        e->stmt = statements[i].stmt;
        e->target = i < NVALUES ? T_VALUE : T_CALL;
        if ((i < NVALUES) == !e->arg)
            return 0;
        entry_error(c, e, i < NVALUES ? "unknown setting '%s': %s takes a value, such as %s=10"
                                      : "unknown setting '%s': name an argument of %s, such as %s.lr",
                    e->key, e->head, e->head);
        return -1;
    }
    const CallSpec *cs = call_find(CC_LAYER, e->head);
    if (cs) {
        e->kind = (LayerKind)cs->kind;
        e->target = e->arg ? T_KIND : T_OFF;
        return 0;
    }
    if (e->arg) { /* a layer's name, looked for as the network is expanded */
        e->target = T_NAME;
        return 0;
    }
    const char *best = suggest_head(e->head);
    if (best)
        snprintf(sug, sizeof sug, " (did you mean '%s'?)", best);
    entry_error(c, e, "unknown setting '%s'%s", e->key, sug);
    return -1;
}

/* "unknown argument 'lrr' for sgd (did you mean 'lr'?)", the language's message for the same slip. */
static void unknown_arg(Checker *c, const Entry *e, const CallSpec *cs)
{
    const char *keys[ARGS_MAX];
    char sig[200];
    for (int k = 0; k < call_nargs(cs); k++)
        keys[k] = call_args(cs)[k].key;
    const char *best = diag_suggest(e->arg, keys, call_nargs(cs));
    if (call_nargs(cs) == 0)
        entry_error(c, e, "%s takes no arguments", cs->name);
    else if (best)
        entry_error(c, e, "unknown argument '%s' for %s (did you mean '%s'?)", e->arg, cs->name, best);
    else
        entry_error(c, e, "unknown argument '%s' for %s; it takes %s", e->arg, cs->name,
                    call_signature(cs, sig, sizeof sig));
}

static AstStmt *first_of(AstStmt *file, AstStmtKind kind)
{
    for (AstStmt *s = file; s; s = s->next)
        if (s->kind == kind)
            return s;
    return NULL;
}

/* Replaces *dst with a copy of e's value. Returns 0, or -1 when out of memory. */
static int put_value(Checker *c, const Entry *e, AstValue *dst)
{
    AstValue v;
    if (ast_value_copy(e->val, &v) < 0) {
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return -1;
    }
    ast_value_clear(dst);
    *dst = v;
    return 0;
}

/* epochs, seed, checkpoint: the statement's value, or a new statement at the end of the file. */
static void set_value(Checker *c, const Entry *e, AstStmt **file)
{
    AstStmt *s = first_of(*file, e->stmt);
    if (s) {
        put_value(c, e, &s->val);
        return;
    }
    AstValue v;
    if (ast_value_copy(e->val, &v) < 0 || !(s = ast_stmt_value(e->stmt, e->loc, v))) {
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return;
    }
    AstStmt **tail = file;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
}

/* data.ARG, optimizer.ARG, schedule.ARG: the call's argument of that name, written by key or by position, or a
 * new keyword argument. A statement the file lacks is reported only for schedule (data and optimizer are
 * required, and their absence is reported anyway). */
static void set_call_arg(Checker *c, Entry *e, AstStmt *file, CallClass cls)
{
    AstStmt *s = first_of(file, e->stmt);
    const CallSpec *cs = s ? call_find(cls, s->call->name) : NULL;
    if (!s) {
        if (e->stmt == AS_SCHEDULE)
            entry_error(c, e, "the model has no 'schedule' statement whose '%s' to set", e->arg);
        return;
    }
    if (!cs) /* an unknown optimizer (etc.): the file's own error */
        return;
    int k = -1, pos = 0;
    for (int i = 0; i < call_nargs(cs) && k < 0; i++)
        if (strcmp(call_args(cs)[i].key, e->arg) == 0)
            k = i;
    if (k < 0) {
        unknown_arg(c, e, cs);
        return;
    }
    for (AstArg *a = s->call->args; a; a = a->next) {
        if ((a->key && strcmp(a->key, e->arg) == 0) || (!a->key && pos++ == k)) {
            put_value(c, e, &a->val);
            return;
        }
    }
    AstValue v;
    char *key = strdup(e->arg);
    AstArg *a = key && ast_value_copy(e->val, &v) == 0 ? ast_arg_new(key, e->loc, v) : (free(key), NULL);
    if (!a) {
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return;
    }
    AstArg **tail = &s->call->args;
    while (*tail)
        tail = &(*tail)->next;
    *tail = a;
    s->call->nargs++;
    s->call->parens = 1;
}

/* KIND=on|off: a name or a string. */
static int on_off(Checker *c, Entry *e)
{
    const AstValue *v = e->val;
    char desc[160];
    if ((v->kind == AV_IDENT || v->kind == AV_STRING) && v->s && (!strcmp(v->s, "on") || !strcmp(v->s, "off"))) {
        e->off = strcmp(v->s, "off") == 0;
        return 0;
    }
    entry_error(c, e, "%s must be on or off, got %s", e->key, ast_value_describe(v, desc, sizeof desc));
    return -1;
}

/* The entries in order (the file's, then the command line's), each checked; an entry replaced by a later one
 * with the same key is dropped. Returns the count, or -1 when out of memory. */
static int collect(Checker *c, AstStmt *file, Entry **out)
{
    int n = c->opts.noverrides;
    for (AstStmt *s = file; s; s = s->next)
        n += s->kind == AS_SET;
    Entry *e = calloc((size_t)n + 1, sizeof *e);
    if (!e)
        return -1;
    int k = 0;
    for (AstStmt *s = file; s; s = s->next)
        if (s->kind == AS_SET)
            e[k++] = (Entry){.key = s->name, .val = &s->val, .loc = s->name_loc};
    for (int i = 0; i < c->opts.noverrides; i++) {
        const Override *o = &c->opts.overrides[i];
        e[k++] = (Entry){.key = o->key, .val = &o->val, .origin = o->origin};
    }
    for (int i = 0; i < n; i++) {
        e[i].ok = !e[i].val->bad && classify(c, &e[i]) == 0;
        if (e[i].ok && e[i].target == T_OFF)
            e[i].ok = on_off(c, &e[i]) == 0;
        for (int j = 0; j < i && e[i].ok; j++)
            if (strcmp(e[j].key, e[i].key) == 0)
                e[j].ok = 0; /* the later wins */
    }
    *out = e;
    return n;
}

void override_begin(Checker *c, AstStmt **file)
{
    OverrideState *st = calloc(1, sizeof *st);
    if (!st || (st->n = collect(c, *file, &st->e)) < 0) {
        free(st);
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return;
    }
    c->ov = st;
    for (int i = 0; i < st->n; i++) {
        Entry *e = &st->e[i];
        if (!e->ok)
            continue;
        if (e->target == T_VALUE)
            set_value(c, e, file);
        for (int k = NVALUES; e->target == T_CALL && k < NSTATEMENTS; k++)
            if (statements[k].stmt == e->stmt)
                set_call_arg(c, e, *file, statements[k].cls);
        if (e->target == T_KIND && layer_arg_index(e->kind, e->arg) < 0) {
            unknown_arg(c, e, call_layer(e->kind));
            e->ok = 0;
        }
    }
}

int override_layer_off(const Checker *c, LayerKind k)
{
    for (int i = 0; c->ov && i < c->ov->n; i++)
        if (c->ov->e[i].ok && c->ov->e[i].target == T_OFF && c->ov->e[i].kind == k)
            return c->ov->e[i].off;
    return 0;
}

/* Sets v[k] from e for layer l of call cs. */
static void apply_arg(Checker *c, Entry *e, const LayerSpec *l, const CallSpec *cs, ArgVal v[ARGS_MAX])
{
    int k = layer_arg_index(l->kind, e->arg);
    e->matched++;
    if (k < 0) {
        unknown_arg(c, e, cs);
        return;
    }
    char what[SPEC_NAME_MAX + 96];
    DiagContextFn saved = c->d->context;
    snprintf(what, sizeof what, "argument '%s' of %s", e->arg, cs->name);
    c->d->context = NULL; /* the override is wrong, not the block calls around this layer */
    args_check_value(c->d, &call_args(cs)[k], e->val, NULL, what, &v[k]);
    c->d->context = saved;
}

void override_layer_args(Checker *c, const LayerSpec *l, const CallSpec *cs, ArgVal v[ARGS_MAX])
{
    for (int pass = 0; c->ov && pass < 2; pass++) /* by kind, then by name: a layer's own name wins */
        for (int i = 0; i < c->ov->n; i++) {
            Entry *e = &c->ov->e[i];
            if (e->ok && pass == 0 && e->target == T_KIND && e->kind == l->kind)
                apply_arg(c, e, l, cs, v);
            if (e->ok && pass == 1 && e->target == T_NAME && strcmp(e->head, l->name) == 0)
                apply_arg(c, e, l, cs, v);
        }
}

/* Every layer name of the expanded network into names[k..), in network order; returns the new count. */
static int layer_names(const LayerSpec *v, int n, const char **names, int k)
{
    for (int i = 0; i < n; i++) {
        names[k++] = v[i].name;
        k = layer_names(v[i].body, v[i].nbody, names, k);
    }
    return k;
}

/* A layer-name key that named no layer: "did you mean" the key with the closest statement, kind or layer name in
 * its place. */
static void unknown_name(Checker *c, const Entry *e)
{
    const char **names = malloc(((size_t)c->m->nlayers_total + NSTATEMENTS + LK_COUNT + 1) * sizeof *names);
    int n = 0;
    for (int i = 0; names && i < NSTATEMENTS; i++)
        names[n++] = statements[i].name;
    if (names) {
        n += call_names(CC_LAYER, names + n, LK_COUNT);
        n = layer_names(c->m->layers, c->m->nlayers, names, n);
    }
    const char *best = diag_suggest(e->head, names, n), *off = NULL;
    for (int i = 0; i < c->ov->n; i++)
        if (c->ov->e[i].ok && c->ov->e[i].target == T_OFF && c->ov->e[i].off)
            off = c->ov->e[i].key;
    char hint[SPEC_NAME_MAX + 64] = "";
    if (off) /* a layer removed by KIND=off has no name: the likely reason, in a sweep over on,off */
        snprintf(hint, sizeof hint, "; %s=off left its layers out (set them by kind: %s.%s)", off, off, e->arg);
    if (best)
        entry_error(c, e, "unknown setting '%s' (did you mean '%s.%s'?)%s", e->key, best, e->arg, hint);
    else
        entry_error(c, e, "unknown setting '%s': '%s' is not data, optimizer, schedule, a layer kind or the name of "
                    "a layer%s", e->key, e->head, hint);
    free(names);
}

void override_end(Checker *c)
{
    OverrideState *st = c->ov;
    for (int i = 0; st && c->expanded && i < st->n; i++) {
        Entry *e = &st->e[i];
        if (!e->ok || e->matched || (e->target != T_NAME && e->target != T_KIND))
            continue;
        if (e->target == T_KIND) {
            if (!override_layer_off(c, e->kind))
                entry_error(c, e, "the model has no %s layer whose '%s' to set", call_layer(e->kind)->name, e->arg);
            continue;
        }
        unknown_name(c, e);
    }
    if (st)
        free(st->e);
    free(st);
    c->ov = NULL;
}
