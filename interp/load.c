/* Loading models for the commands (load.h): the front end turns text into a ModelSpec, and the runtime builds
 * the network a checkpoint holds from it. */
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"

int load_model(const char *file, const char *source, unsigned long long mem_cap, int inference, ModelSpec **out)
{
    CheckOptions co = {.mem_cap_bytes = mem_cap, .inference = inference};
    return load_model_with(file, source, &co, out);
}

int load_model_with(const char *file, const char *source, const CheckOptions *opts, ModelSpec **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *diag = open_memstream(&buf, &len);
    CheckOptions co = *opts;
    co.diag = diag ? diag : stderr;
    co.hide_warnings = 1;
    int rc = source ? bnn_load_source(file, source, strlen(source), &co, out) : bnn_load_file(file, &co, out);
    if (diag) {
        fclose(diag);
        if (rc != 0 && buf)
            fputs(buf, stderr);
        free(buf);
    }
    return rc;
}

int load_checkpoint(const char *ckpt_path, const char *model_path, const char *data_where, Ckpt *c, ModelSpec **m,
                    Net **net, char *err, size_t errlen)
{
    char why[8192], name[4200];
    *m = NULL, *net = NULL;
    if (ckpt_read(ckpt_path, c, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", ckpt_path, why);
        return -1;
    }
    if (ckpt_check_finite(c, "layers/", why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", ckpt_path, why);
        ckpt_free(c);
        return -1;
    }
    snprintf(name, sizeof name, "%s:model_source", ckpt_path);
    /* An evaluation holds chunks of at most EVAL_CHUNK images: a model trained on a larger machine, at a
     * batch whose training estimate exceeds this one's memory, still evaluates here. The data is where the run
     * trained (unless --data says otherwise), and what it is the checkpoint says, so predict needs no data. Files
     * of older bnni record no data facts: their data statement (fashion_mnist, mnist) knows them. */
    DataSpec rec;
    ckpt_data_record(c, &rec);
    CheckOptions co = {.inference = 1, .data_where = data_where ? data_where : c->data_path,
                       .data_record = c->has_data ? &rec : NULL};
    if (load_model_with(model_path ? model_path : name, model_path ? NULL : c->model_source, &co, m) != 0) {
        snprintf(err, errlen, "%s: the model does not check (see the diagnostics above)", model_path ? model_path : name);
        goto fail;
    }
    if (ckpt_to_net(c, *m, net, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", ckpt_path, why);
        goto fail;
    }
    return 0;
fail:
    spec_free(*m);
    ckpt_free(c);
    *m = NULL;
    return -1;
}
