/* Reading CSV data files (the csv data kind, kind_csv.c) with libcsv (Debian's libcsv-dev), which handles quoted
 * fields, CRLF and a missing final newline: a header row (or none), then one item per row -- numeric feature
 * columns and one label column. Every problem names the file, line and column: `data.csv:7:3: 'x' is not a
 * number`. */
#ifndef BNNI_DATA_CSVREAD_H
#define BNNI_DATA_CSVREAD_H

#include <stddef.h>

/* One CSV file's items. */
typedef struct CsvSet {
    int nrows;        /* items (the header not counted) */
    int ncols;        /* fields per row, the label's included */
    int label_col;    /* 0-based column of the label */
    char **header;    /* [ncols] column names, owned; NULL without a header row */
    float *features;  /* nrows x (ncols - 1), in column order without the label; owned; NULL unless asked for */
    char **labels;    /* [nrows] the label cells as written, owned */
    int *lines;       /* [nrows] the line each row ends on (for messages), owned */
} CsvSet;

/* Reads path: with `header`, the first row names the columns and `label` names the label column; without, `label`
 * is a column number ("1" is the first). Keeps the first `limit` rows (0: all), their features only when
 * keep_features (else each cell is still checked to be a finite number). Returns 0, or -1 with
 * "FILE:LINE:COL: reason" (or "FILE: reason") in err. Free with csv_set_free. */
int csv_read_set(const char *path, int header, const char *label, int keep_features, long long limit, CsvSet *out,
                 char *err, size_t errlen);
void csv_set_free(CsvSet *s);

#endif
