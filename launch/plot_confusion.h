/*
 * plot_confusion.h - the confusion matrix file of `dtrain eval --per-class` and its heatmap
 * (`dtrain plot --confusion FILE.csv`).
 *
 * The file (CSV; '#' lines are comments):
 *   # dtrain eval --per-class: CHECKPOINT, split S, N samples; rows: true class, columns:
 *   #   predicted class (top-1); class names of the data set
 *   true\predicted,NAME_0,...,NAME_{K-1}
 *   NAME_0,c_00,...,c_0{K-1}          c_ij: samples of class i predicted as j
 *   ...
 * Row sums are the class counts; the diagonal over the total is the top-1 accuracy.
 */
#ifndef DT_PLOT_CONFUSION_H
#define DT_PLOT_CONFUSION_H

#include <stdint.h>
#include <stdio.h>

/* Writes the file above to f: K classes named names[0..K) (NULL: "0", "1", ...), counts cm
 * (K x K, row-major), comment the first comment line's text. Write errors show in ferror(f). */
void dt_confusion_write(FILE *f, const char *comment, int K, const char *const *names,
                        const int64_t *cm);

/* Draws the file csv as a heatmap into png (NULL: csv with .png for .csv), and with svg also
 * the .svg beside it: cells coloured by the row's percentage (per-class recall), labelled with
 * their counts. Not collective. Returns 0, or DT_ERR naming the file ("FILE:LINE: ...") or
 * gnuplot's failure. */
int dt_plot_confusion(const char *csv, const char *png, int svg);

#endif
