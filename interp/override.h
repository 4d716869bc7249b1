/* Settings changed without editing the model: `--set KEY=VALUE` on the command line and `set KEY = VALUE` in a
 * file (docs/language.md, "Overrides"). KEY is `epochs`, `seed`, `checkpoint`, `data.ARG`, `optimizer.ARG`,
 * `schedule.ARG`, `LAYERNAME.ARG`, `KIND.ARG` (every layer of a kind) or `KIND` with the value on/off (off removes
 * those layers). The checker applies them (check.h); a run records the command line's as `set` statements appended
 * to the model text, so a checkpoint's model_source rebuilds the network that was run. */
#ifndef BNNI_OVERRIDE_H
#define BNNI_OVERRIDE_H

#include <stddef.h>

#include "ast.h"

/* One override from the command line. */
typedef struct Override {
    char *key;    /* "optimizer.lr", "batchnorm_2.momentum", "batchnorm"; owned */
    AstValue val; /* its value; val.origin is origin */
    char *origin; /* "--set optimizer.lr=0.3", named by messages about it; owned */
} Override;

/* How override_parse failed. */
enum { OVERRIDE_OK = 0, OVERRIDE_USAGE = -1, OVERRIDE_BAD_VALUE = -2 };

/* Parses "KEY=VALUE" as --set gives it. The value is read as the language reads one (true/false, an integer, a
 * number, a "quoted string"); anything else is a string, so --set dense.init=xavier needs no shell quoting.
 * Returns OVERRIDE_OK and fills *o (free with override_clear); OVERRIDE_USAGE when it is not KEY=VALUE with KEY
 * dotted names; OVERRIDE_BAD_VALUE for a value the language refuses (an integer beyond 64 bits, 1e999). err gets
 * one line without the "--set ...: " prefix either way. */
int override_parse(const char *arg, Override *o, char *err, size_t errlen);
void override_clear(Override *o);
/* override_parse of arg appended to the array *v of *n (grown here). Returns override_parse's status. */
int override_push(Override **v, int *n, const char *arg, char *err, size_t errlen);
/* Frees an array of n overrides. */
void override_free_all(Override *v, int n);

/* The `set` statement that reads back as o: `set optimizer.lr = 0.3`, strings quoted. Returns buf. */
const char *override_render(const Override *o, char *buf, size_t len);

/* src followed by a comment line and one `set` statement per override: the model as run. Returns the text
 * (NUL-terminated, caller frees) and its length in *outlen, or NULL when out of memory. */
char *override_source(const char *src, size_t len, const Override *ov, int n, size_t *outlen);

/* Splits the value of a sweep's "KEY=V1,V2,..." at commas outside quotes and parentheses. Returns the count and
 * *out (each "KEY=Vi", caller frees every string and the array), or -1 with err for an empty list or value (2 for
 * usage: not KEY=VALUE). */
int override_split_list(const char *arg, char ***out, char *err, size_t errlen);

#endif
