/* Diagnostics in clang's format: `FILE:LINE:COL: error: message`, then the source line and a caret under
 * the column (columns count UTF-8 characters). Errors and warnings are counted, exact repeats (the same
 * message at the same place, as block expansions produce) are shown once, and printing stops after
 * DIAG_MAX_ERRORS errors. A checker that finds problems out of source order (the checks run statement kind by
 * statement kind) keeps them (diag_keep) and prints them sorted by place (diag_flush). Also the "did you mean"
 * suggestions and the UTF-8 helpers the lexer shares. */
#ifndef BNNI_DIAG_H
#define BNNI_DIAG_H

#include <stddef.h>
#include <stdio.h>

#include "../runtime/spec.h"

#define DIAG_MAX_ERRORS 20
#define DIAG_MAX_WARNINGS 20

#if defined(__GNUC__)
#define DIAG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DIAG_PRINTF(f, a)
#endif

typedef struct Diag Diag;

/* One kept diagnostic, its notes included, as it will print. */
typedef struct DiagEntry {
    SrcLoc loc;  /* line 0: no place; printed after those with one */
    long seq;    /* reporting order, among equal places */
    int at_end;  /* placed after the last non-blank character of the source ("missing ... statement"): last on its line */
    char *text;  /* owned */
    size_t len;
} DiagEntry;

/* Called after every shown error or warning, to add notes such as "in block 'x' called here". */
typedef void (*DiagContextFn)(Diag *d, const void *arg);

struct Diag {
    FILE *out;                 /* NULL: count only */
    const char *file;          /* the name used in messages */
    const char *src;           /* the text, to quote lines from (BOM skipped); may be NULL */
    size_t len;
    int errors, warnings;      /* distinct diagnostics, shown or not */
    long long reports;         /* every error reported, repeats included: "did anything fail since" */
    int stopped;               /* too many errors were reported: callers should wind down */
    int last_shown;            /* whether the last error or warning was printed (its notes follow it) */
    int warnings_capped;
    int hide_warnings;         /* warnings are counted but not shown (they are `bnni check`'s business) */
    DiagContextFn context;
    const void *context_arg;
    unsigned long long seen[DIAG_MAX_ERRORS + DIAG_MAX_WARNINGS + 2]; /* hashes of shown diagnostics */
    int nseen;
    int keep;                  /* diag_keep: entries are kept until diag_flush instead of printed */
    DiagEntry *entries;        /* owned */
    int nentries, cap;
};

/* src may be NULL (nothing quoted) and is borrowed: it must outlive d. Nothing to free. */
void diag_init(Diag *d, FILE *out, const char *file, const char *src, size_t len);

/* From now on keep what would be printed, until diag_flush prints it sorted by line (those without a place last;
 * within a line in reporting order). */
void diag_keep(Diag *d);
/* Prints and frees the kept diagnostics; a no-op without diag_keep. */
void diag_flush(Diag *d);

/* loc.line == 0 prints `FILE: error: message` with no source line. */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) DIAG_PRINTF(3, 4);
void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...) DIAG_PRINTF(3, 4);
/* A note belongs to the error or warning before it and is dropped with it. */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) DIAG_PRINTF(3, 4);

/* Optimal-string-alignment distance (an adjacent swap costs 1), ignoring ASCII case; large for long words. */
int diag_edit_distance(const char *a, const char *b);
/* The candidate closest to word when it is close enough to be a likely misspelling, else NULL. */
const char *diag_suggest(const char *word, const char *const *cands, int n);

/* Length of the well-formed UTF-8 sequence at s[0..n) (1 for ASCII), 0 when the bytes there are not UTF-8. */
size_t diag_utf8_len(const unsigned char *s, size_t n);
/* Offset of the first byte of s[0..n) that is not well-formed UTF-8, n when all of it is. */
size_t diag_utf8_check(const char *s, size_t n);
/* Line and column (in characters) of byte offset off in src. */
SrcLoc diag_loc_of(const char *src, size_t off);

#endif
