/* The register-blocked product of dense's backward: c (+)= a . b with a read through strides, so that dx = dy . w
 * and dw += dy^T . x run on the layer's own buffers, with no transpose and no packing (AVX-512 or AVX2 builds,
 * simd.h; dense.c calls sgemm otherwise). */
#ifndef BNNI_DENSE_KERNELS_H
#define BNNI_DENSE_KERNELS_H

#include "simd.h"

#define DENSEK_AVAILABLE (SIMD_WIDTH > 0)

/* c[i][j] = (accumulate ? c[i][j] : 0) + sum over k < K of a(i, k) * b[k][j], for i < M, j < N, added in k order,
 * where a(i, k) = a[i * ai + k * ak] and b is K x N with row stride ldb, c is M x N with row stride ldc.
 * Only with DENSEK_AVAILABLE. */
void densek_gemm(float *c, int ldc, const float *a, int ai, int ak, const float *b, int ldb, int M, int N, int K,
                 int accumulate);

#endif
