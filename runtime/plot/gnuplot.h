/* Drawing through gnuplot (Debian's gnuplot-nox): a plot kind writes a gnuplot script with its data inline, and
 * gp_render runs `gnuplot` on it once, into a temporary file beside the output that replaces the output only when
 * gnuplot succeeded. bnni draws no axis, tick or legend itself and encodes no image format: gnuplot's cairo
 * terminals make the PNG and PDF, its svg terminal the SVG. */
#ifndef BNNI_PLOT_GNUPLOT_H
#define BNNI_PLOT_GNUPLOT_H

#include <stddef.h>
#include <stdio.h>

/* The output formats, from the output's extension. */
typedef enum GpFormat { GP_PNG, GP_SVG, GP_PDF } GpFormat;

typedef struct Gp {
    FILE *s;          /* the script being written (a memstream) */
    char *text;       /* its buffer */
    size_t len;
    GpFormat format;
    char *out;        /* the output path; owned */
    char tmp[4096];   /* the temporary file gnuplot writes, beside out; removed by gp_free unless renamed */
    int ndata;        /* inline data blocks so far: $d0, $d1, ... */
} Gp;

/* The format of path (.png, .svg or .pdf, any case), or -1. */
int gp_format(const char *path);
/* Starts a script drawing a width x height (pixels; PDF at 96 per inch) figure into out_path: terminal, fonts,
 * plain (not enhanced) text, and the temporary file beside out_path that gnuplot writes. Returns 0, or -1 with err
 * (an unknown extension, a directory that takes no file, memory). */
int gp_open(Gp *g, const char *out_path, int width, int height, char *err, size_t errlen);
/* Begins inline data block $dN (N returned); write rows with fprintf(g->s, ...) and end it with gp_data_end. */
int gp_data_begin(Gp *g);
void gp_data_end(Gp *g);
/* A number as gnuplot reads it: NaN (a gap) for NaN and infinities. Returns buf. */
const char *gp_num(double v, char *buf, size_t len);
/* s as a gnuplot string between single quotes (quotes doubled) into buf. Returns buf. */
const char *gp_quote(const char *s, char *buf, size_t len);
/* Colour k of the palette, "#rrggbb". */
const char *gp_color(int k);
/* Runs gnuplot on the script: on success the output is replaced whole; on any failure (gnuplot missing, an error in
 * the script, a directory that cannot be written) nothing is written and err holds one line. Frees g either way.
 * Returns 0 or -1. */
int gp_render(Gp *g, char *err, size_t errlen);
void gp_free(Gp *g);

#endif
