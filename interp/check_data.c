/* The `data` statement after its call matched the kind's schema (check.c): the values into the ModelSpec's DataSpec,
 * the arguments every kind shares (batch, normalize, validation, augment(...)), then what the data says -- read
 * from its headers through the kind (data_probe), or taken from a checkpoint's record -- and the checks that need
 * both: the validation count against the training items, augmentation of image data only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/data/split.h"
#include "check.h"

/* The nested augment(...) call: its arguments into ds. Returns 0, or -1 after reporting. */
static int augment_args(Checker *c, const ArgVal *v, DataSpec *ds)
{
    static const CallSpec aug = {"augment", CC_DATA, 0, 2, data_augment_args, NULL, NULL};
    ArgVal sub[ARGS_MAX];
    if (!v->call)
        return 0;
    if (args_resolve(c->d, &aug, v->call, NULL, sub))
        return -1;
    ds->flip = (int)sub[0].i;
    ds->crop = (int)sub[1].i;
    return 0;
}

/* The matched values into ds->arg, in the schema's order. Returns 0, or -1 (reported). */
static int store_args(Checker *c, const CallSpec *cs, const ArgVal *v, DataSpec *ds)
{
    const ArgSpec *args = call_args(cs);
    int ok = 1;
    for (int k = 0; k < call_nargs(cs); k++) {
        if (args[k].type == AT_STR || args[k].type == AT_SHAPE) {
            if (!(ds->arg[k].str = strdup(v[k].s ? v[k].s : ""))) {
                diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
                return -1;
            }
        } else if (args[k].type == AT_CALL) {
            ok &= augment_args(c, &v[k], ds) == 0;
        } else {
            ds->arg[k].num = args[k].type == AT_BOOL ? (double)v[k].i : v[k].f;
        }
        ds->given |= (unsigned)v[k].given << k;
    }
    return ok ? 0 : -1;
}

/* --data, or the directory a checkpoint was trained on: replaces the kind's `where` argument. */
static int override_where(Checker *c, DataSpec *ds)
{
    char **where = &ds->arg[data_kinds[ds->id]->where].str, *p;
    if (!c->opts.data_where)
        return 0;
    if (!(p = strdup(c->opts.data_where))) {
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return -1;
    }
    free(*where);
    *where = p;
    return 0;
}

/* batch, shuffle, limit, normalize, validation. Returns 0, or -1 (reported). */
static int common_args(Checker *c, const ArgVal *v, DataSpec *ds)
{
    ds->batch = (int)ds->arg[data_arg_index(ds, "batch")].num;
    ds->shuffle = ds->arg[data_arg_index(ds, "shuffle")].num != 0;
    ds->limit = (long long)ds->arg[data_arg_index(ds, "limit")].num;
    const char *norm = data_str(ds, "normalize");
    ds->normalize = strcmp(norm, "standard") == 0 ? NORM_STANDARD : strcmp(norm, "none") == 0 ? NORM_NONE : NORM_UNIT;
    int kv = data_arg_index(ds, "validation");
    ds->validation = ds->arg[kv].num;
    if (ds->validation >= 1 && (ds->validation != floor(ds->validation) || ds->validation > 1e9)) {
        diag_error(c->d, v[kv].loc, "validation must be a fraction below 1 or a whole number of items, got %g",
                   ds->validation);
        return -1;
    }
    c->batch_loc = v[data_arg_index(ds, "batch")].given ? v[data_arg_index(ds, "batch")].loc : (SrcLoc){0, 0};
    if (c->opts.batch_override > 0) {
        if (c->opts.batch_override > (1 << 20)) {
            diag_error(c->d, (SrcLoc){0, 0}, "batch size %d (from the command line) is larger than %d",
                       c->opts.batch_override, 1 << 20);
            return -1;
        }
        ds->batch = c->opts.batch_override;
        c->batch_loc = (SrcLoc){0, 0};
        c->batch_cli = 1;
    }
    return 0;
}

/* What the data says: from a checkpoint's record, else from its headers. Returns 0, or -1 (reported). */
static int data_facts(Checker *c, const AstCall *call, DataSpec *ds)
{
    char err[4096];
    const DataSpec *rec = c->opts.data_record;
    if (rec) {
        ds->shape = rec->shape, ds->classes = rec->classes, ds->dtype = rec->dtype;
        ds->ntrain = rec->ntrain, ds->ntest = rec->ntest, ds->has_test = rec->has_test;
        if (rec->class_names && (ds->class_names = calloc((size_t)rec->classes, sizeof *ds->class_names)))
            for (int k = 0; k < rec->classes; k++)
                if (!(ds->class_names[k] = strdup(rec->class_names[k] ? rec->class_names[k] : "")))
                    rec = NULL;
        if (rec && (!rec->class_names || ds->class_names))
            return 0;
        diag_error(c->d, (SrcLoc){0, 0}, "out of memory");
        return -1;
    }
    if (data_probe(ds, err, sizeof err) == 0)
        return 0;
    (void)call; /* a bad data set is one line naming its file, not a place in the model: "m.bnn: error: FILE..." */
    diag_error(c->d, (SrcLoc){0, 0}, "%s", err);
    return -1;
}

/* The checks that need the data's facts. */
static void check_against_data(Checker *c, const ArgVal *v, DataSpec *ds)
{
    int kv = data_arg_index(ds, "validation"), ka = data_arg_index(ds, "augment");
    long long limit = c->opts.limit_override > 0 ? c->opts.limit_override : ds->limit;
    long long n = ds->ntrain < 0 ? -1 : limit > 0 && limit < ds->ntrain ? limit : ds->ntrain;
    long long nval = n < 0 ? -1 : split_count(ds->validation, n);
    if (ds->validation > 0 && n >= 0 && nval >= n)
        diag_error(c->d, v[kv].loc, "validation %g would hold out all %lld training items", ds->validation, n);
    else if (ds->validation > 0 && nval == 0)
        diag_error(c->d, v[kv].loc, "validation %g of %lld training items holds out none", ds->validation, n);
    if ((ds->flip || ds->crop) && ds->shape.rank != 3) {
        char shape[64];
        diag_error(c->d, v[ka].loc, "augment flips and crops images, but the %s items are %s features", ds->kind,
                   shape_str(ds->shape, shape, sizeof shape));
    }
}

void check_data_call(Checker *c, const CallSpec *cs, const AstStmt *s, const ArgVal *v)
{
    DataSpec *ds = &c->m->data;
    ds->id = cs->kind;
    snprintf(ds->kind, sizeof ds->kind, "%s", cs->name);
    if (store_args(c, cs, v, ds) < 0 || override_where(c, ds) < 0 || common_args(c, v, ds) < 0 ||
        data_facts(c, s->call, ds) < 0)
        return;
    check_against_data(c, v, ds);
    c->have_data = 1;
    c->data_loc = s->call->loc;
}
