/* The network description in JSON (netdesc.h). Numbers are printed with 17 significant digits, so a reader gets
 * the double the model holds. */
#include "netdesc.h"

#include <stdlib.h>

#include "data/classes.h"
#include "layer.h"

void netdesc_put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f); /* UTF-8 passes as it is */
    }
    fputc('"', f);
}

void netdesc_put_class_names(FILE *f, const ModelSpec *m)
{
    char buf[32];
    fputc('[', f);
    for (int k = 0; k < m->data.classes; k++) {
        fputs(k ? ", " : "", f);
        netdesc_put_string(f, data_class_name(&m->data, k, buf, sizeof buf));
    }
    fputc(']', f);
}

static void put_shape(FILE *f, Shape s)
{
    if (s.rank == 3)
        fprintf(f, "[%d, %d, %d]", s.c, s.h, s.w);
    else
        fprintf(f, "[%d]", s.c);
}

static void put_args(FILE *f, const LayerSpec *s)
{
    const LayerOps *ops = layer_ops[s->kind];
    fputc('{', f);
    for (int k = 0; k < ops->nargs; k++) {
        const ArgSpec *a = &ops->args[k];
        fputs(k ? ", " : "", f);
        netdesc_put_string(f, a->key);
        fputs(": ", f);
        if (a->type == AT_STR)
            netdesc_put_string(f, s->arg[k].str);
        else if (a->type == AT_BOOL)
            fputs(s->arg[k].num != 0 ? "true" : "false", f);
        else if (a->type == AT_INT)
            fprintf(f, "%.0f", s->arg[k].num);
        else
            fprintf(f, "%.17g", s->arg[k].num);
    }
    fputc('}', f);
}

static void put_layers(FILE *f, const LayerSpec *v, int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        fputs(i ? ", " : "", f);
        fputs("{\"name\": ", f);
        netdesc_put_string(f, v[i].name);
        fputs(", \"type\": ", f);
        netdesc_put_string(f, layer_ops[v[i].kind]->type);
        fputs(", \"args\": ", f);
        put_args(f, &v[i]);
        fputs(", \"in\": ", f);
        put_shape(f, v[i].in);
        fputs(", \"out\": ", f);
        put_shape(f, v[i].out);
        if (v[i].body) {
            fputs(", \"body\": ", f);
            put_layers(f, v[i].body, v[i].nbody);
        }
        fputc('}', f);
    }
    fputc(']', f);
}

char *netdesc_json(const ModelSpec *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "{\"format\": \"bnni-network\", \"version\": %d, \"data\": ", NETDESC_VERSION);
    netdesc_put_string(f, m->data.kind);
    fputs(", \"input\": ", f);
    put_shape(f, m->input);
    fprintf(f, ", \"classes\": %d, \"class_names\": ", m->data.classes);
    netdesc_put_class_names(f, m);
    fputs(", \"layers\": ", f);
    put_layers(f, m->layers, m->nlayers);
    fputs("}", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
