/*
 * fixture.h - reading the line-oriented reference fixtures (tests/fixtures/torch_*_ref.txt):
 * next_line() splits the next non-empty, non-comment line into whitespace-separated tokens,
 * next_tok() hands out the rest, read_doubles()/read_floats() the rest of the line as numbers.
 *
 * next_kv() the rest as key=value pairs; fixture_open() and check_default() count their
 * failures in check.h's counters.
 *
 * Each tests/test_*.c is linked alone, so this is a header of static functions: include it in
 * one test.
 */
#ifndef DT_FIXTURE_H
#define DT_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { FIXTURE_LINE = 1 << 16 };

static char fixture_line[FIXTURE_LINE];
static char *fixture_tok_save;

/* Next non-empty, non-comment line, split: returns its first token (NULL at end of file). */
static inline char *next_line(FILE *f)
{
    while (fgets(fixture_line, sizeof fixture_line, f)) {
        char *hash = strchr(fixture_line, '#');
        if (hash)
            *hash = '\0';
        char *t = strtok_r(fixture_line, " \t\r\n", &fixture_tok_save);
        if (t)
            return t;
    }
    return NULL;
}

static inline char *next_tok(void) { return strtok_r(NULL, " \t\r\n", &fixture_tok_save); }

/* fopen(path, "r"); NULL after counting a failure "FAIL <test>: cannot open <path>". */
static inline FILE *fixture_open(const char *path, const char *test)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "FAIL %s: cannot open %s\n", test, path);
        check_failed++;
    }
    return f;
}

/* The next "key=value" token of the line, split at its '=' (tokens without one are skipped);
 * 0 at the end of the line. */
static inline int next_kv(char **key, char **val)
{
    char *t;
    while ((t = next_tok())) {
        char *eq = strchr(t, '=');
        if (!eq)
            continue;
        *eq = '\0';
        *key = t;
        *val = eq + 1;
        return 1;
    }
    return 0;
}

/* The rest of the line as up to max doubles; returns how many were read. With dash_is_none, a
 * line whose first value is "-" (nothing recorded) returns -1. */
static inline int read_doubles_or_none(double *v, int max, int dash_is_none)
{
    int n = 0;
    char *t;
    while ((t = next_tok()) && n < max) {
        if (dash_is_none && n == 0 && strcmp(t, "-") == 0)
            return -1;
        v[n++] = strtod(t, NULL);
    }
    return n;
}

static inline int read_doubles(double *v, int max) { return read_doubles_or_none(v, max, 0); }

static inline int read_floats(float *v, int max)
{
    int n = 0;
    char *t;
    while ((t = next_tok()) && n < max)
        v[n++] = strtof(t, NULL);
    return n;
}

/* The element of arr (n elements of size bytes, each a struct whose first member is its
 * const char *name) named name, or NULL. */
static inline const void *find_named(const void *arr, size_t n, size_t size, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const char *elem = (const char *)arr + i * size;
        if (strcmp(*(const char *const *)elem, name) == 0)
            return elem;
    }
    return NULL;
}

/* A "defaults" line's key: dtrain's default got against torch's want, for what (the kind). */
static inline void check_default(const char *what, const char *key, double got, double want)
{
    if (got == want) {
        check_passed++;
    } else {
        check_failed++;
        fprintf(stderr, "FAIL defaults %s: %s = %g, torch's default is %g\n", what, key, got, want);
    }
}

#endif
