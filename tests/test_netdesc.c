/* The network description checkpoints carry (runtime/netdesc.c, docs/checkpoint.md): a model with a label, a block,
 * a residual and every argument kind, described as written by hand below; and a checkpoint written by
 * `bnni train` holds it as the root attribute `network`. */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp/frontend.h"
#include "runtime/netdesc.h"
#include "tests/support.h"

static const char model[] = "model d\n"
                            "data mnist(batch=16)\n"
                            "optimizer sgd(lr=0.1)\n"
                            "network {\n"
                            "    conv2d(2, kernel=3, padding=1, bias=false)\n"
                            "    bn: batchnorm(eps=0.001)\n"
                            "    residual { relu; dropout(0.25) }\n"
                            "    maxpool(2)\n"
                            "    flatten\n"
                            "    dense(10)\n"
                            "}\n";

static const char want[] =
    "{\"format\": \"bnni-network\", \"version\": 1, \"data\": \"mnist\", \"input\": [1, 28, 28], \"classes\": 10, "
    "\"class_names\": [\"0\", \"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\"], \"layers\": ["
    "{\"name\": \"conv2d_1\", \"type\": \"conv2d\", \"args\": {\"out\": 2, \"kernel\": 3, \"stride\": 1, "
    "\"padding\": 1, \"bias\": false, \"init\": \"default\"}, \"in\": [1, 28, 28], \"out\": [2, 28, 28]}, "
    "{\"name\": \"bn\", \"type\": \"batchnorm\", \"args\": {\"momentum\": 0.90000000000000002, "
    "\"eps\": 0.001, \"affine\": true, \"sync\": true}, \"in\": [2, 28, 28], \"out\": [2, 28, 28]}, "
    "{\"name\": \"residual_1\", \"type\": \"residual\", \"args\": {}, \"in\": [2, 28, 28], \"out\": [2, 28, 28], "
    "\"body\": [{\"name\": \"relu_1\", \"type\": \"relu\", \"args\": {}, \"in\": [2, 28, 28], \"out\": [2, 28, 28]}, "
    "{\"name\": \"dropout_1\", \"type\": \"dropout\", \"args\": {\"p\": 0.25}, \"in\": [2, 28, 28], "
    "\"out\": [2, 28, 28]}]}, "
    "{\"name\": \"maxpool_1\", \"type\": \"maxpool\", \"args\": {\"kernel\": 2, \"stride\": 2, \"padding\": 0}, "
    "\"in\": [2, 28, 28], \"out\": [2, 14, 14]}, "
    "{\"name\": \"flatten_1\", \"type\": \"flatten\", \"args\": {}, \"in\": [2, 14, 14], \"out\": [392]}, "
    "{\"name\": \"dense_1\", \"type\": \"dense\", \"args\": {\"out\": 10, \"bias\": true, \"init\": \"default\"}, "
    "\"in\": [392], "
    "\"out\": [10]}]}";

Test(netdesc, describes_every_layer_in_order)
{
    CheckOptions co = {.diag = stderr, .inference = 1};
    ModelSpec *m;
    cr_assert_eq(bnn_load_source("d.bnn", model, strlen(model), &co, &m), 0);
    char *json = netdesc_json(m);
    cr_assert_str_eq(json, want);
    free(json);
    spec_free(m);
}

Test(netdesc, string_escapes)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    netdesc_put_string(f, "a\"b\\c\nd\te\x01\xc3\xa9");
    fclose(f);
    cr_expect_str_eq(buf, "\"a\\\"b\\\\c\\nd\\te\\u0001\xc3\xa9\"");
    free(buf);
}

Test(netdesc, checkpoints_hold_it, .timeout = 120)
{
    char dir[64];
    support_make_tmpdir(dir, sizeof dir, "netdesc");
    support_write_text(support_path(dir, "d.bnn"), model);
    cr_assert_eq(support_run(dir, "train %s --epochs 1 --limit 64 --test-limit 16 --threads 1 --quiet --data %s --out "
                                  "%s", support_path(dir, "d.bnn"), "/usr/share/datasets/fashion-mnist",
                             support_path(dir, "d.h5")),
                 0);
    /* Read as the reader does (runtime/ckpt.c get_str): a variable-length string, or a fixed-length one. */
    hid_t f = H5Fopen(support_path(dir, "d.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = f < 0 ? -1 : H5Aopen(f, "network", H5P_DEFAULT);
    cr_assert(a >= 0, "no root attribute 'network'");
    hid_t ft = H5Aget_type(a), t = H5Tcopy(H5T_C_S1);
    H5Tset_cset(t, H5Tget_cset(ft)); /* HDF5 converts no character sets */
    char *s = NULL;
    if (H5Tis_variable_str(ft) > 0) {
        H5Tset_size(t, H5T_VARIABLE);
        cr_assert(H5Aread(a, t, &s) >= 0);
        cr_expect_str_eq(s, want);
        H5free_memory(s);
    } else {
        size_t n = H5Tget_size(ft);
        s = calloc(n + 1, 1);
        H5Tset_size(t, n);
        cr_assert(s && H5Aread(a, t, s) >= 0);
        cr_expect_str_eq(s, want);
        free(s);
    }
    H5Tclose(t), H5Tclose(ft), H5Aclose(a), H5Fclose(f);
    support_remove_tree(dir);
}
