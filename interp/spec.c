/* Freeing the checked model: a ModelSpec owns its strings, its layer array and, through each residual
 * layer, that layer's body. */
#include <stdlib.h>

#include "check.h"

/* Residual bodies nest at most CHECK_MAX_DEPTH deep, which bounds the recursion. */
void spec_layers_free(LayerSpec *v, int n)
{
    for (int i = 0; i < n; i++)
        spec_layers_free(v[i].body, v[i].nbody);
    free(v);
}

void spec_free(ModelSpec *m)
{
    if (!m)
        return;
    spec_layers_free(m->layers, m->nlayers);
    free(m->name);
    free(m->file);
    free(m->source);
    free(m->checkpoint);
    free(m->data.path);
    free(m);
}
