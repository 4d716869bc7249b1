/* The table of layer kinds (built from layers/registry.h), lookups by name, the helpers every shape rule
 * shares, and layer_spec_make for code that builds layers without the language. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../layer.h"

#define LAYER_EXTERN(NAME, name) extern const LayerOps name##_ops;
LAYER_KINDS(LAYER_EXTERN)
#undef LAYER_EXTERN

#define LAYER_ENTRY(NAME, name) [LK_##NAME] = &name##_ops,
const LayerOps *const layer_ops[LK_COUNT] = {LAYER_KINDS(LAYER_ENTRY)};
#undef LAYER_ENTRY

int layer_kind(const char *name)
{
    for (int k = 0; k < LK_COUNT; k++)
        if (strcmp(layer_ops[k]->type, name) == 0)
            return k;
    return -1;
}

int layer_arg_index(LayerKind kind, const char *key)
{
    const LayerOps *ops = layer_ops[kind];
    for (int k = 0; k < ops->nargs; k++)
        if (strcmp(ops->args[k].key, key) == 0)
            return k;
    return -1;
}

double layer_arg(const LayerSpec *s, const char *key)
{
    int k = layer_arg_index(s->kind, key);
    return k < 0 || layer_ops[s->kind]->args[k].type == AT_STR ? NAN : s->arg[k].num;
}

int layer_out_shape(const LayerSpec *s, Shape in, Shape *out, long long *nparams, long long *nbuffers,
                    char *err, size_t errlen)
{
    *nparams = *nbuffers = 0;
    return layer_ops[s->kind]->out_shape(s, in, out, nparams, nbuffers, err, errlen);
}

const char *shape_str(Shape s, char *buf, size_t len)
{
    if (s.rank == 3)
        snprintf(buf, len, "%dx%dx%d", s.c, s.h, s.w);
    else
        snprintf(buf, len, "%d", s.c);
    return buf;
}

/* ---- layer_spec_make ---- */

static void set_default(const ArgSpec *a, ArgValue *v)
{
    v->num = a->def;
    snprintf(v->str, sizeof v->str, "%s", a->sdef ? a->sdef : "");
}

/* Parses one "key=value" of kind into s. Returns 0 or -1 with err. */
static int set_pair(LayerSpec *s, const char *pair, size_t n, char *err, size_t errlen)
{
    const LayerOps *ops = layer_ops[s->kind];
    const char *eq = memchr(pair, '=', n);
    int klen = eq ? (int)(eq - pair) : (int)n, k = -1;
    for (int i = 0; i < ops->nargs && k < 0; i++)
        if ((int)strlen(ops->args[i].key) == klen && strncmp(ops->args[i].key, pair, (size_t)klen) == 0)
            k = i;
    if (!eq || k < 0) {
        snprintf(err, errlen, "%s: '%.*s' is not key=value of one of its arguments", ops->type, (int)n, pair);
        return -1;
    }
    const ArgSpec *a = &ops->args[k];
    char text[ARG_STR_MAX], *end, range[96];
    snprintf(text, sizeof text, "%.*s", (int)(n - (size_t)klen - 1), eq + 1);
    if (a->type == AT_STR) {
        snprintf(s->arg[k].str, sizeof s->arg[k].str, "%s", text);
    } else if (a->type == AT_BOOL) {
        int t = strcmp(text, "true") == 0 || strcmp(text, "1") == 0;
        if (!t && strcmp(text, "false") != 0 && strcmp(text, "0") != 0) {
            snprintf(err, errlen, "%s: argument '%s' must be true or false, got %s", ops->type, a->key, text);
            return -1;
        }
        s->arg[k].num = t;
    } else {
        double x = strtod(text, &end);
        if (end == text || *end || (a->type == AT_INT && x != (long long)x) || !arg_in_range(a, x)) {
            snprintf(err, errlen, "%s: argument '%s' must be %s, got %s", ops->type, a->key,
                     arg_range_text(a, range, sizeof range), text);
            return -1;
        }
        s->arg[k].num = x;
    }
    s->given |= 1u << k;
    return 0;
}

int layer_spec_make(LayerSpec *s, LayerKind kind, const char *name, const char *args, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if ((unsigned)kind >= LK_COUNT) {
        snprintf(err, errlen, "unknown layer kind %d", (int)kind);
        return -1;
    }
    const LayerOps *ops = layer_ops[kind];
    s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", name ? name : ops->type);
    for (int k = 0; k < ops->nargs; k++)
        set_default(&ops->args[k], &s->arg[k]);
    for (const char *p = args ? args : ""; *p;) {
        size_t n = strcspn(p, " ,");
        if (n && set_pair(s, p, n, err, errlen) < 0)
            return -1;
        p += n + (p[n] != '\0');
    }
    for (int k = 0; k < ops->nargs; k++)
        if (ops->args[k].required && !(s->given & (1u << k))) {
            snprintf(err, errlen, "%s needs its '%s' argument", ops->type, ops->args[k].key);
            return -1;
        }
    int bad;
    return ops->configure ? ops->configure(s, &bad, err, errlen) : 0;
}
