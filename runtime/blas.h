/*
 * blas.h - OpenBLAS's cblas.h, made includable on its own: Debian's header names cpu_set_t
 * (openblas_setaffinity) without including <sched.h>, which defines it under _GNU_SOURCE.
 */
#ifndef DT_BLAS_H
#define DT_BLAS_H

#include <sched.h>

#include <cblas.h>

#endif
