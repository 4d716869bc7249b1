/* Diagnostics: formatting, quoting the source line with a caret, counting, dropping repeats,
 * edit-distance suggestions and the UTF-8 helpers (columns count characters, not bytes). */
#include "diag.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { D_ERROR, D_WARNING, D_NOTE };
static const char *const kind_name[] = {"error", "warning", "note"};

void diag_init(Diag *d, FILE *out, const char *file, const char *src, size_t len)
{
    memset(d, 0, sizeof *d);
    d->out = out;
    d->file = file ? file : "<input>";
    if (src && len >= 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0)
        src += 3, len -= 3;
    d->src = src;
    d->len = src ? len : 0;
}

/* ---- UTF-8 ---- */

size_t diag_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte (no overlongs, surrogates, > U+10FFFF) */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

size_t diag_utf8_check(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = diag_utf8_len(u + i, n - i);
        if (k == 0)
            return i;
        i += k;
    }
    return n;
}

SrcLoc diag_loc_of(const char *src, size_t off)
{
    SrcLoc l = {1, 1};
    for (size_t i = 0; i < off; i++) {
        if (src[i] == '\n')
            l.line++, l.col = 1;
        else if (((unsigned char)src[i] & 0xC0) != 0x80)
            l.col++;
    }
    return l;
}

/* ---- printing ---- */

/* Start of line `line` (1-based) in d->src and its length without the line break; -1 when there is no such line. */
static long find_line(const Diag *d, int line, size_t *len)
{
    size_t i = 0;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(d->src + i, '\n', d->len - i);
        if (!nl)
            return -1;
        i = (size_t)(nl - d->src) + 1;
    }
    const char *nl = memchr(d->src + i, '\n', d->len - i);
    size_t end = nl ? (size_t)(nl - d->src) : d->len;
    if (end > i && d->src[end - 1] == '\r')
        end--;
    *len = end - i;
    return (long)i;
}

/* The source line, with control characters and broken UTF-8 shown as '?', then the caret line,
 * which repeats the line's tabs so the caret lands under the column in any tab width. */
static void quote_line(const Diag *d, SrcLoc loc)
{
    size_t len;
    long start = d->src ? find_line(d, loc.line, &len) : -1;
    if (start < 0 || len == 0)
        return; /* nothing to point at */
    const unsigned char *s = (const unsigned char *)d->src + start;
    for (size_t i = 0; i < len;) {
        size_t k = diag_utf8_len(s + i, len - i);
        if (k == 0 || (k == 1 && ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F))) {
            fputc('?', d->out);
            i += k ? k : 1;
        } else {
            fwrite(s + i, 1, k, d->out);
            i += k;
        }
    }
    fputc('\n', d->out);
    int col = 1;
    for (size_t i = 0; i < len && col < loc.col; col++) {
        size_t k = diag_utf8_len(s + i, len - i);
        fputc(s[i] == '\t' ? '\t' : ' ', d->out);
        i += k ? k : 1;
    }
    for (; col < loc.col; col++)
        fputc(' ', d->out);
    fputs("^\n", d->out);
}

static unsigned long long hash(int kind, SrcLoc loc, const char *msg)
{
    unsigned long long h = 1469598103934665603ULL;
    h = (h ^ (unsigned)kind) * 1099511628211ULL;
    h = (h ^ (unsigned)loc.line) * 1099511628211ULL;
    h = (h ^ (unsigned)loc.col) * 1099511628211ULL;
    for (const char *p = msg; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

/* Returns 1 when this diagnostic was shown before; remembers it otherwise. */
static int repeated(Diag *d, int kind, SrcLoc loc, const char *msg)
{
    unsigned long long h = hash(kind, loc, msg);
    for (int i = 0; i < d->nseen; i++)
        if (d->seen[i] == h)
            return 1;
    if (d->nseen < (int)(sizeof d->seen / sizeof d->seen[0]))
        d->seen[d->nseen++] = h;
    return 0;
}

/* ---- keeping and sorting ---- */

void diag_keep(Diag *d) { d->keep = 1; }

/* A new kept entry at loc (a note, loc.line < 0: appended to the last one); returns the stream to print into
 * until keep_end, or NULL when out of memory (the diagnostic is then printed at once). */
static FILE *keep_begin(Diag *d, SrcLoc loc, char **buf, size_t *len)
{
    if (loc.line >= 0 && d->nentries == d->cap) {
        int cap = d->cap ? d->cap * 2 : 16;
        DiagEntry *e = realloc(d->entries, (size_t)cap * sizeof *e);
        if (!e)
            return NULL;
        d->entries = e, d->cap = cap;
    }
    if (loc.line < 0 && d->nentries == 0)
        return NULL;
    return open_memstream(buf, len);
}

/* Closes f, whose buffer is *pbuf (*plen bytes) once closed, and files it. */
static void keep_end(Diag *d, SrcLoc loc, FILE *f, char **pbuf, size_t *plen)
{
    fclose(f);
    char *buf = *pbuf;
    size_t len = *plen;
    if (loc.line >= 0) {
        size_t n = 0;
        long at = d->src && loc.line > 0 ? find_line(d, loc.line, &n) : -1;
        int at_end = at >= 0 && loc.col > (int)n;
        for (size_t i = at >= 0 ? (size_t)at + n : 0; at_end && i < d->len; i++)
            at_end = d->src[i] == ' ' || d->src[i] == '\t' || d->src[i] == '\r' || d->src[i] == '\n';
        d->entries[d->nentries] = (DiagEntry){loc, d->nentries, at_end, buf, len};
        d->nentries++;
        return;
    }
    DiagEntry *e = &d->entries[d->nentries - 1];
    char *t = realloc(e->text, e->len + len + 1);
    if (t) {
        memcpy(t + e->len, buf, len + 1);
        e->text = t, e->len += len;
    }
    free(buf);
}

static int by_place(const void *pa, const void *pb)
{
    const DiagEntry *a = pa, *b = pb;
    int la = a->loc.line > 0 ? a->loc.line : INT_MAX, lb = b->loc.line > 0 ? b->loc.line : INT_MAX;
    if (la != lb)
        return la < lb ? -1 : 1;
    /* within a line, reporting order (a call's own argument errors come before what follows from them), but what
     * is missing at the end of the file comes after the rest, as it does once the text is formatted */
    if (a->at_end != b->at_end)
        return a->at_end - b->at_end;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

void diag_flush(Diag *d)
{
    if (d->nentries)
        qsort(d->entries, (size_t)d->nentries, sizeof *d->entries, by_place);
    for (int i = 0; i < d->nentries; i++) {
        if (d->out)
            fwrite(d->entries[i].text, 1, d->entries[i].len, d->out);
        free(d->entries[i].text);
    }
    free(d->entries);
    d->entries = NULL;
    d->nentries = d->cap = 0;
}

/* ---- printing ---- */

static void print_now(Diag *d, int kind, SrcLoc loc, const char *msg)
{
    if (loc.line > 0)
        fprintf(d->out, "%s:%d:%d: %s: %s\n", d->file, loc.line, loc.col, kind_name[kind], msg);
    else
        fprintf(d->out, "%s: %s: %s\n", d->file, kind_name[kind], msg);
    if (loc.line > 0)
        quote_line(d, loc);
}

/* Prints, or keeps (diag_keep) under loc; a note goes with the diagnostic before it. */
static void print(Diag *d, int kind, SrcLoc loc, const char *msg)
{
    char *buf;
    size_t len;
    FILE *f, *out = d->out;
    SrcLoc at = kind == D_NOTE ? (SrcLoc){-1, 0} : loc;
    if (!out)
        return;
    if (!d->keep || !(f = keep_begin(d, at, &buf, &len))) {
        print_now(d, kind, loc, msg);
        return;
    }
    d->out = f;
    print_now(d, kind, loc, msg);
    d->out = out;
    keep_end(d, at, f, &buf, &len);
}

/* A line of its own about the whole file ("too many errors"), kept or printed like a diagnostic without a place. */
static void file_line(Diag *d, const char *kind, const char *msg)
{
    char *buf;
    size_t len;
    FILE *f, *out = d->out;
    if (!out)
        return;
    if (!d->keep || !(f = keep_begin(d, (SrcLoc){0, 0}, &buf, &len))) {
        fprintf(out, "%s: %s: %s\n", d->file, kind, msg);
        return;
    }
    fprintf(f, "%s: %s: %s\n", d->file, kind, msg);
    keep_end(d, (SrcLoc){0, 0}, f, &buf, &len);
}

static void report(Diag *d, int kind, SrcLoc loc, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (kind == D_NOTE) {
        if (d->last_shown)
            print(d, kind, loc, msg);
        return;
    }
    d->last_shown = 0;
    if (kind == D_ERROR)
        d->reports++;
    if (d->stopped || repeated(d, kind, loc, msg))
        return;
    if (kind == D_ERROR && ++d->errors > DIAG_MAX_ERRORS) {
        d->stopped = 1;
        file_line(d, "error", "too many errors, stopping now");
        return;
    }
    if (kind == D_WARNING && d->hide_warnings) {
        d->warnings++;
        return;
    }
    if (kind == D_WARNING && ++d->warnings > DIAG_MAX_WARNINGS) {
        if (!d->warnings_capped)
            file_line(d, "note", "more warnings are not shown");
        d->warnings_capped = 1;
        return;
    }
    print(d, kind, loc, msg);
    d->last_shown = 1;
    if (d->context)
        d->context(d, d->context_arg);
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, D_ERROR, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, D_WARNING, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(d, D_NOTE, loc, fmt, ap);
    va_end(ap);
}

/* ---- suggestions ---- */

#define EDIT_MAX 64

int diag_edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= EDIT_MAX || m >= EDIT_MAX)
        return EDIT_MAX;
    int dp[EDIT_MAX + 1][EDIT_MAX + 1];
    for (size_t i = 0; i <= n; i++)
        dp[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        dp[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = dp[i - 1][j] + 1;
            if (dp[i][j - 1] + 1 < v)
                v = dp[i][j - 1] + 1;
            if (dp[i - 1][j - 1] + cost < v)
                v = dp[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) && dp[i - 2][j - 2] + 1 < v)
                v = dp[i - 2][j - 2] + 1;
            dp[i][j] = v;
        }
    }
    return dp[n][m];
}

const char *diag_suggest(const char *word, const char *const *cands, int n)
{
    int len = (int)strlen(word);
    int limit = len <= 3 ? 1 : (len + 2) / 3;
    const char *best = NULL;
    int bestd = limit + 1;
    for (int i = 0; i < n; i++) {
        int e = diag_edit_distance(word, cands[i]);
        if (e < bestd && e < len)
            best = cands[i], bestd = e;
    }
    return best;
}
