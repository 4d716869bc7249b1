/* test_spec (specs.h): layer_spec_make for tests. */
#include "tests/specs.h"

#include <criterion/criterion.h>
#include <stdio.h>

LayerSpec test_spec(LayerKind kind, const char *name, const char *args)
{
    LayerSpec s;
    char err[256];
    cr_assert(layer_spec_make(&s, kind, name, args, err, sizeof err) == 0, "test_spec(%s): %s", args, err);
    return s;
}

LayerSpec test_layer(LayerKind kind, const char *name, int units, int k, int s, int p)
{
    const struct {
        const char *key;
        double v;
    } set[] = {{"out", units}, {"kernel", k}, {"stride", s}, {"padding", p}, {"bias", 1},
               {"momentum", 0.9}, {"eps", 1e-5}, {"p", 0.2}};
    char args[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (layer_arg_index(kind, set[i].key) >= 0)
            n += (size_t)snprintf(args + n, sizeof args - n, "%s=%.17g ", set[i].key, set[i].v);
    return test_spec(kind, name, args);
}
