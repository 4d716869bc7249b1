/* The machine-readable description of a checked network, stored in every checkpoint as the root attribute
 * `network` (docs/checkpoint.md) so that other programs can rebuild the network without parsing .bnn text
 * (examples/load_in_pytorch.py): each layer's name, kind, every argument and shapes, in order, residual bodies
 * nested. Written from the layer kinds' own argument schemas, so a new kind needs nothing here. */
#ifndef BNNI_NETDESC_H
#define BNNI_NETDESC_H

#include <stdio.h>

#include "spec.h"

#define NETDESC_VERSION 1

/* The description of m as one line of JSON. Returns it (caller frees), or NULL when out of memory. */
char *netdesc_json(const ModelSpec *m);

/* Writes s as a JSON string literal, quotes included. */
void netdesc_put_string(FILE *f, const char *s);
/* Writes the names of m's classes as a JSON array of strings. */
void netdesc_put_class_names(FILE *f, const ModelSpec *m);

#endif
