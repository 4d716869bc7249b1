/* The canonical layout of .bnn text (`bnni fmt`): one statement per line, four spaces per level of braces,
 * `name(a, b=c)` spacing, the top-level statements' values lined up, at most one blank line in a row, and every
 * comment kept (a comment written inside a call's parentheses moves to the end of its line). Only the layout
 * changes: the tokens, their order and so the model are the same, and formatting formatted text changes nothing. */
#ifndef BNNI_FMT_H
#define BNNI_FMT_H

#include <stdio.h>

/* Formats src[0..len), which must parse (fmt_check_syntax). Returns the text (caller frees), or NULL when out
 * of memory. */
char *fmt_source(const char *src, size_t len);

/* Parses src, printing its syntax errors to diag as `bnni check` would, under the name file. Returns 0 when it
 * parses. */
int fmt_check_syntax(const char *file, const char *src, size_t len, FILE *diag);

#endif
