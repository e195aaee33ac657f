/*
 * plot_confusion.c - see plot_confusion.h.
 */
#include "plot_confusion.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "tools.h"

enum { MAX_CLASSES = 1000, NAME_LEN = 64, LINE_LEN = 1 << 16, PATH_LEN = 4200 };

void dt_confusion_write(FILE *f, const char *comment, int K, const char *const *names,
                        const int64_t *cm)
{
    fprintf(f, "# %s\n# rows: true class, columns: predicted class (top-1)\ntrue\\predicted",
            comment);
    for (int j = 0; j < K; j++)
        names ? fprintf(f, ",%s", names[j]) : fprintf(f, ",%d", j);
    fputc('\n', f);
    for (int i = 0; i < K; i++) {
        names ? fprintf(f, "%s", names[i]) : fprintf(f, "%d", i);
        for (int j = 0; j < K; j++)
            fprintf(f, ",%lld", (long long)cm[(size_t)i * K + j]);
        fputc('\n', f);
    }
}

/* The matrix read back: K, names (K x NAME_LEN), counts (K x K). */
typedef struct cmat {
    int K;
    char (*names)[NAME_LEN];
    int64_t *c;
} cmat;

/* The header line: the class names after the first cell. */
static int read_names(cmat *m, char *line, const char *path, long ln)
{
    char *save = NULL, *t = strtok_r(line, ",", &save);
    m->names = dt_xcalloc(MAX_CLASSES, sizeof *m->names);
    while ((t = strtok_r(NULL, ",", &save))) {
        if (m->K == MAX_CLASSES)
            return dt_err("%s:%ld: more than %d classes", path, ln, MAX_CLASSES);
        snprintf(m->names[m->K++], NAME_LEN, "%s", t);
    }
    if (m->K < 1)
        return dt_err("%s:%ld: expected a header 'true\\predicted,NAME,...'", path, ln);
    m->c = dt_xcalloc((size_t)m->K * m->K, sizeof *m->c);
    return DT_OK;
}

/* Data line ln, row i: a name and K counts. */
static int read_counts(cmat *m, char *line, int i, const char *path, long ln)
{
    if (i >= m->K)
        return dt_err("%s:%ld: more rows than the %d classes of the header", path, ln, m->K);
    char *p = strchr(line, ',');
    for (int j = 0; j < m->K; j++) {
        char *end;
        long long v = p ? strtoll(p + 1, &end, 10) : -1;
        if (!p || end == p + 1 || v < 0 || (*end != ',' && *end != '\0'))
            return dt_err("%s:%ld: expected a class name and %d counts (integers >= 0)", path, ln,
                          m->K);
        m->c[(size_t)i * m->K + j] = v;
        p = *end ? end : NULL;
    }
    if (p)
        return dt_err("%s:%ld: more than %d counts", path, ln, m->K);
    return DT_OK;
}

static int read_matrix(cmat *m, const char *path)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "r");
    if (!f)
        return dt_err("%s: cannot open: %s (expected the confusion matrix CSV of dtrain eval "
                      "--per-class)",
                      path, strerror(errno));
    char *line = dt_xmalloc(LINE_LEN, 1);
    long ln = 0;
    int rows = 0, rc = DT_OK;
    while (rc == DT_OK && fgets(line, LINE_LEN, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        rc = m->names ? read_counts(m, line, rows++, path, ln) : read_names(m, line, path, ln);
    }
    if (rc == DT_OK && (!m->names || rows != m->K))
        rc = dt_err("%s: %d rows of counts, expected one per class (%d)", path, rows, m->K);
    free(line);
    fclose(f);
    return rc;
}

/* cells "x y count percent-of-row" for gnuplot */
static int write_cells(const char *path, const cmat *m)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return dt_err("%s: cannot create: %s", path, strerror(errno));
    for (int i = 0; i < m->K; i++) {
        int64_t row = 0;
        for (int j = 0; j < m->K; j++)
            row += m->c[(size_t)i * m->K + j];
        for (int j = 0; j < m->K; j++) {
            int64_t c = m->c[(size_t)i * m->K + j];
            fprintf(f, "%d %d %lld %.17g\n", j, i, (long long)c, row ? 100.0 * c / row : 0.0);
        }
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return dt_err("%s: write failed", path);
    return DT_OK;
}

static int write_script(const char *path, const char *cells, const cmat *m, const char *csv,
                        const char *out, int svg)
{
    FILE *g = fopen(path, "w");
    if (!g)
        return dt_err("%s: cannot create: %s", path, strerror(errno));
    int64_t total = 0, diag = 0;
    for (int i = 0; i < m->K; i++)
        for (int j = 0; j < m->K; j++) {
            total += m->c[(size_t)i * m->K + j];
            diag += i == j ? m->c[(size_t)i * m->K + j] : 0;
        }
    const int side = 160 + 56 * m->K;
    fprintf(g, svg ? "set terminal svg size %d,%d dynamic\n" : "set terminal pngcairo size %d,%d\n",
            side + 120, side);
    fprintf(g, "set output ");
    dt_tool_gp_quote(g, out);
    char title[PATH_LEN + 100];
    snprintf(title, sizeof title, "confusion matrix: %s\\n%lld samples, top-1 accuracy %.2f %%",
             csv, (long long)total, total ? 100.0 * diag / total : 0.0);
    fprintf(g, "\nset title \"%s\" noenhanced\n", title);
    fprintf(g,
            "set xlabel 'predicted class'\nset ylabel 'true class'\nset cblabel "
            "'%% of the true class (recall on the diagonal)'\nset cbrange [0:100]\n"
            "set palette defined (0 '#ffffff', 50 '#9ecae1', 100 '#2171b5')\n"
            "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset xtics rotate by 45 right "
            "noenhanced\nset ytics noenhanced\nset tics scale 0\nset size ratio -1\n",
            m->K - 1, m->K - 1);
    fprintf(g, "set xtics (");
    for (int j = 0; j < m->K; j++)
        fprintf(g, "%s'%s' %d", j ? ", " : "", m->names[j], j);
    fprintf(g, ")\nset ytics (");
    for (int j = 0; j < m->K; j++)
        fprintf(g, "%s'%s' %d", j ? ", " : "", m->names[j], j);
    fprintf(g, ")\nplot ");
    dt_tool_gp_quote(g, cells);
    fprintf(g,
            " using 1:2:4 with image notitle, '' using 1:2:(sprintf('%%d', $3)) with labels "
            "font ',%d' notitle\nunset output\n",
            m->K > 20 ? 6 : 9);
    int bad = ferror(g);
    if (fclose(g) != 0 || bad)
        return dt_err("%s: write failed", path);
    return DT_OK;
}

/* One image (png or svg) of m. */
static int draw(const cmat *m, const char *csv, const char *out, int svg)
{
    char cells[PATH_LEN], script[PATH_LEN];
    FILE *f = dt_tool_temp_file(cells, sizeof cells, "confusion");
    if (!f)
        return DT_ERR;
    fclose(f);
    f = dt_tool_temp_file(script, sizeof script, "confusion-gp");
    if (!f) {
        unlink(cells);
        return DT_ERR;
    }
    fclose(f);
    int rc = write_cells(cells, m);
    if (rc == 0)
        rc = write_script(script, cells, m, csv, out, svg);
    if (rc == 0)
        rc = dt_tool_gnuplot(script, out);
    if (rc == DT_TOOL_NO_GNUPLOT)
        rc = dt_err("gnuplot not found (install gnuplot, e.g. apt-get install gnuplot-nox, or "
                    "set DT_GNUPLOT to its path)");
    unlink(cells);
    unlink(script);
    return rc;
}

int dt_plot_confusion(const char *csv, const char *png, int svg)
{
    cmat m;
    int rc = read_matrix(&m, csv);
    char out[PATH_LEN], svgp[PATH_LEN];
    size_t n = strlen(csv);
    if (png)
        snprintf(out, sizeof out, "%s", png);
    else
        snprintf(out, sizeof out, "%.*s.png",
                 (int)(n > 4 && strcmp(csv + n - 4, ".csv") == 0 ? n - 4 : n), csv);
    if (rc == 0)
        rc = draw(&m, csv, out, 0);
    if (rc == 0 && svg) {
        snprintf(svgp, sizeof svgp, "%.*s.svg", (int)strlen(out) - 4, out);
        rc = draw(&m, csv, svgp, 1);
    }
    if (rc == 0)
        printf("plot: %s%s%s: confusion matrix of %d classes\n", out, svg ? " and " : "",
               svg ? svgp : "", m.K);
    free(m.names);
    free(m.c);
    return rc;
}
