/* dense_kernels: see dense_kernels.h.
 * What the blocks buy: up to 6 rows x NV_MAX vectors of columns of c stay in registers over the whole reduction
 * (24 of AVX-512's 32, 12 of AVX2's 16), each step one load of b per vector and one broadcast of a per row.
 * OpenBLAS ran dense's backward products (32 to 128 rows of a few hundred) at 60-130 GFLOP/s with its AVX2 kernels;
 * these reach 150-200 on AVX-512. Columns go in the outer loop so that a K-row slice of b stays in L1 while every
 * block of rows uses it. */
#include "dense_kernels.h"

#if DENSEK_AVAILABLE
#define AI static inline __attribute__((always_inline))
#define VW SIMD_WIDTH
#define NV_MAX (VW == 16 ? 4 : 2)

/* MR rows x NV vectors of c from (i0 = 0, j0 = 0) of the pointers given; the last vector's lanes masked by m
 * (columns past N): loaded masked from b too, so no read passes the end of a row of b or c. */
AI void gemm_block(float *c, int ldc, const float *a, int ai, int ak, const float *b, int ldb, int K, int accumulate,
                   SimdMask m, const int MR, const int NV)
{
    SimdF acc[6][4];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = !accumulate       ? simd_zero()
                        : v < NV - 1      ? simd_load(c + (size_t)i * ldc + VW * v)
                                          : simd_loadm(m, c + (size_t)i * ldc + VW * v);
    for (int k = 0; k < K; k++) {
        const float *bk = b + (size_t)k * ldb;
        SimdF bv[4];
        for (int v = 0; v < NV - 1; v++)
            bv[v] = simd_load(bk + VW * v);
        bv[NV - 1] = simd_loadm(m, bk + VW * (NV - 1));
        for (int i = 0; i < MR; i++) {
            SimdF ab = simd_set1(a[(size_t)i * ai + (size_t)k * ak]);
            for (int v = 0; v < NV; v++)
                acc[i][v] = simd_fma(ab, bv[v], acc[i][v]);
        }
    }
    for (int i = 0; i < MR; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int v = 0; v < NV - 1; v++)
            simd_store(ci + VW * v, acc[i][v]);
        simd_storem(ci + VW * (NV - 1), m, acc[i][NV - 1]);
    }
}

/* Every (rows, vectors) block shape, rows 1..6 and vectors 1..4, as `case rows * 8 + vectors:`. */
#define DENSEK_CASES4(M, r) M(r, 1) M(r, 2) M(r, 3) M(r, 4)
#define DENSEK_CASES(M)                                                                                          \
    DENSEK_CASES4(M, 1) DENSEK_CASES4(M, 2) DENSEK_CASES4(M, 3) DENSEK_CASES4(M, 4) DENSEK_CASES4(M, 5)         \
    DENSEK_CASES4(M, 6)

void densek_gemm(float *c, int ldc, const float *a, int ai, int ak, const float *b, int ldb, int M, int N, int K,
                 int accumulate)
{
    for (int j0 = 0; j0 < N; j0 += NV_MAX * VW) {
        int nv = (N - j0 < NV_MAX * VW ? N - j0 + VW - 1 : NV_MAX * VW + VW - 1) / VW;
        SimdMask m = simd_first(N - (j0 + VW * (nv - 1)));
        for (int i0 = 0; i0 < M; i0 += 6) {
            int mr = M - i0 < 6 ? M - i0 : 6;
            float *cb = c + (size_t)i0 * ldc + j0;
            const float *ab = a + (size_t)i0 * ai, *bb = b + j0;
            switch (mr * 8 + nv) {
#define M_(r, v)                                                                                                 \
    case r * 8 + v:                                                                                              \
        gemm_block(cb, ldc, ab, ai, ak, bb, ldb, K, accumulate, m, r, v);                                       \
        break;
                DENSEK_CASES(M_)
#undef M_
            }
        }
    }
}
#endif
