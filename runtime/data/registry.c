/* The table of data kinds (kind.h), built from DATA_KINDS (registry.h), and what every kind shares: the common
 * arguments' choices, argument lookup, and copying a DataSpec. */
#include "kind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_EXTERN(NAME, name) extern const DataKindOps name##_data;
DATA_KINDS(DATA_EXTERN)
#undef DATA_EXTERN

#define DATA_ENTRY(NAME, name) [DK_##NAME] = &name##_data,
const DataKindOps *const data_kinds[DK_COUNT] = {DATA_KINDS(DATA_ENTRY)};
#undef DATA_ENTRY

const char *const data_norm_choices[] = {"unit", "standard", "none", NULL};

const ArgSpec data_augment_args[2] = {ARG_BOOL("flip", 0), ARG_INT("crop", 0, 0, 1024, 0)};

int data_kind_find(const char *name)
{
    for (int i = 0; i < DK_COUNT; i++)
        if (strcmp(data_kinds[i]->name, name) == 0)
            return i;
    return -1;
}

int data_arg_index(const DataSpec *ds, const char *key)
{
    const DataKindOps *ops = data_kinds[ds->id];
    for (int k = 0; k < ops->nargs; k++)
        if (strcmp(ops->args[k].key, key) == 0)
            return k;
    return -1;
}

const char *data_str(const DataSpec *ds, const char *key)
{
    int k = data_arg_index(ds, key);
    return k >= 0 && ds->arg[k].str ? ds->arg[k].str : "";
}

const char *data_where(const DataSpec *ds)
{
    const char *s = ds->arg[data_kinds[ds->id]->where].str;
    return s ? s : "";
}

int data_probe(DataSpec *ds, char *err, size_t errlen) { return data_kinds[ds->id]->probe(ds, err, errlen); }

static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

const char *data_join(const char *dir, const char *name, char *buf, size_t len)
{
    if (!dir || !dir[0] || name[0] == '/')
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return buf;
}

int data_number_names(DataSpec *ds)
{
    if (!(ds->class_names = calloc((size_t)ds->classes, sizeof *ds->class_names)))
        return -1;
    for (int k = 0; k < ds->classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        if (!(ds->class_names[k] = dup(num)))
            return -1;
    }
    return 0;
}
