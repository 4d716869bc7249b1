/* Building LayerSpecs in tests without the language: layer_spec_make, failing the test on an error. */
#ifndef BNNI_TEST_SPECS_H
#define BNNI_TEST_SPECS_H

#include "runtime/layer.h"

/* A layer of `kind` named `name` with arguments `args` ("out=6 kernel=5", layer_spec_make's form); shapes left
 * zero. Aborts the test with the reason when the arguments do not fit the kind's schema. */
LayerSpec test_spec(LayerKind kind, const char *name, const char *args);

/* A layer of `kind` from the geometry tests vary, each set where the kind has that argument: out = units,
 * kernel = k, stride = s, padding = p; and bias true, momentum 0.9, eps 1e-5, dropout p 0.2. No range checks:
 * for tests of the runtime's own guards too. */
LayerSpec test_layer(LayerKind kind, const char *name, int units, int k, int s, int p);

#endif
