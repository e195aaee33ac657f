/*
 * fsum.h - a summation helper shared by kernels (conv bias gradients, global average pooling).
 */
#ifndef DT_FSUM_H
#define DT_FSUM_H

#include <stddef.h>

/* Sum of x[0..n) in double, with 8 float lanes over blocks of 256 so it vectorizes without
 * reassociation flags; the error is that of 32-term float sums. static inline so that it is
 * compiled for the instruction set of its caller (isa/lanes_conv.c: once per ISA); the order of
 * the sum is fixed, so every ISA gives the same bits. */
static inline double dt_fsum(const float *x, size_t n)
{
    double total = 0.0;
    size_t i = 0;
    while (i + 8 <= n) {
        float acc[8] = {0};
        size_t end = i + 256 <= n ? i + 256 : n - (n - i) % 8;
        for (; i < end; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += x[i + j];
        for (int j = 0; j < 8; j++)
            total += acc[j];
    }
    for (; i < n; i++)
        total += x[i];
    return total;
}

#endif
