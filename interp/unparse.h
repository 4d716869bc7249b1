/* Writing a checked model back out as .bnn text: the data, optimizer and schedule as the model has them, and a
 * given sequence of layers with every argument spelled out, residual bodies nested. `bnni export` uses it for the
 * model of a folded checkpoint; reading the text back gives the same model (names are the automatic ones). */
#ifndef BNNI_UNPARSE_H
#define BNNI_UNPARSE_H

#include "../runtime/spec.h"

/* The text of m with `layers` (n of them) as its network, a `#` comment line first (NULL: none). Returns it
 * (caller frees), or NULL when out of memory. */
char *unparse_model(const ModelSpec *m, const LayerSpec *layers, int n, const char *comment);

#endif
