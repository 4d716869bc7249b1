/* .bnn text from a checked model (unparse.h). Numbers are written with 17 significant digits so they read back as
 * the same doubles; strings are escaped as the lexer reads them. */
#include "unparse.h"

#include <stdio.h>
#include <stdlib.h>

#include "../runtime/data/kind.h"
#include "../runtime/layer.h"

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One value of argument a, as the lexer reads it back. */
static void put_value(FILE *f, const ArgSpec *a, double num, const char *str)
{
    if (a->type == AT_STR)
        put_string(f, str ? str : "");
    else if (a->type == AT_SHAPE)
        fputs(str ? str : "", f);
    else if (a->type == AT_BOOL)
        fputs(num != 0 ? "true" : "false", f);
    else if (a->type == AT_INT)
        fprintf(f, "%.0f", num);
    else
        fprintf(f, "%.17g", num);
}

static void put_layers(FILE *f, const LayerSpec *v, int n, int depth)
{
    for (int i = 0; i < n; i++) {
        const LayerOps *ops = layer_ops[v[i].kind];
        fprintf(f, "%*s%s", 4 * depth, "", ops->type);
        if (v[i].body) {
            fputs(" {\n", f);
            put_layers(f, v[i].body, v[i].nbody, depth + 1);
            fprintf(f, "%*s}\n", 4 * depth, "");
            continue;
        }
        for (int k = 0; k < ops->nargs; k++) {
            const ArgSpec *a = &ops->args[k];
            fprintf(f, "%s%s=", k ? ", " : "(", a->key);
            put_value(f, a, v[i].arg[k].num, v[i].arg[k].str);
        }
        fputs(ops->nargs ? ")\n" : "\n", f);
    }
}

static void put_head(FILE *f, const ModelSpec *m)
{
    const DataSpec *d = &m->data;
    const OptSpec *o = &m->opt;
    int ident = (m->name[0] < '0' || m->name[0] > '9') && m->name[0];
    for (const char *p = m->name; *p; p++)
        ident &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (ident) /* a name from a file's stem may not be one the language accepts: then the text goes without */
        fprintf(f, "model %s\n\n", m->name);
    /* Every argument of the data kind's schema, as resolved (DataSpec.arg), augment as its nested call. */
    const DataKindOps *dk = data_kinds[d->id];
    fprintf(f, "data      %s(", d->kind);
    for (int k = 0, first = 1; k < dk->nargs; k++) {
        const ArgSpec *a = &dk->args[k];
        if (a->type == AT_CALL)
            continue;
        fprintf(f, "%s%s=", first ? "" : ", ", a->key);
        put_value(f, a, d->arg[k].num, d->arg[k].str);
        first = 0;
    }
    if (d->flip || d->crop)
        fprintf(f, ", augment(flip=%s, crop=%d)", d->flip ? "true" : "false", d->crop);
    fputs(")\n", f);
    if (o->kind == OPT_SGD)
        fprintf(f, "optimizer sgd(lr=%.17g, momentum=%.17g, weight_decay=%.17g, nesterov=%s)\n", o->lr, o->momentum,
                o->weight_decay, o->nesterov ? "true" : "false");
    else
        fprintf(f, "optimizer adam(lr=%.17g, beta1=%.17g, beta2=%.17g, eps=%.17g, weight_decay=%.17g)\n", o->lr,
                o->beta1, o->beta2, o->eps, o->weight_decay);
    if (m->sched.kind == SCHED_STEP)
        fprintf(f, "schedule  step(every=%d, factor=%.17g)\n", m->sched.every, m->sched.factor);
    else if (m->sched.kind == SCHED_COSINE)
        fprintf(f, "schedule  cosine(min_lr=%.17g)\n", m->sched.min_lr);
    fprintf(f, "loss      cross_entropy\nepochs    %d\nseed      %llu\n", m->epochs, (unsigned long long)m->seed);
}

char *unparse_model(const ModelSpec *m, const LayerSpec *layers, int n, const char *comment)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (comment)
        fprintf(f, "# %s\n", comment);
    put_head(f, m);
    fputs("\nnetwork {\n", f);
    put_layers(f, layers, n, 1);
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
