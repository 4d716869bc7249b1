/* The few vector operations the layer kernels use (conv_kernels.c, dense_kernels.c), over AVX-512's 16 lanes or
 * AVX2 + FMA's 8, so that each kernel is written once for both. SIMD_WIDTH is 0 where the build has neither: the
 * kernels' plain C runs there. A SimdMask selects a vector's first lanes, for rows that end mid-vector; masked-out
 * lanes are neither read (no fault past an allocation) nor written. */
#ifndef BNNI_SIMD_H
#define BNNI_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>
#define SIMD_WIDTH 16
typedef __m512 SimdF;
typedef __mmask16 SimdMask;
/* The first n lanes (all of them when n >= 16); n >= 1. */
static inline SimdMask simd_first(int n) { return n >= 16 ? (SimdMask)0xFFFF : (SimdMask)((1u << n) - 1u); }
static inline SimdF simd_load(const float *p) { return _mm512_loadu_ps(p); }
static inline SimdF simd_loadm(SimdMask m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }
static inline void simd_store(float *p, SimdF v) { _mm512_storeu_ps(p, v); }
static inline void simd_storem(float *p, SimdMask m, SimdF v) { _mm512_mask_storeu_ps(p, m, v); }
static inline SimdF simd_set1(float x) { return _mm512_set1_ps(x); }
static inline SimdF simd_zero(void) { return _mm512_setzero_ps(); }
static inline SimdF simd_add(SimdF a, SimdF b) { return _mm512_add_ps(a, b); }
/* a * b + c, rounded once. */
static inline SimdF simd_fma(SimdF a, SimdF b, SimdF c) { return _mm512_fmadd_ps(a, b, c); }
/* The sum of the lanes, in one fixed order. */
static inline float simd_sum(SimdF v) { return _mm512_reduce_add_ps(v); }

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SIMD_WIDTH 8
typedef __m256 SimdF;
typedef __m256i SimdMask;
static inline SimdMask simd_first(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline SimdF simd_load(const float *p) { return _mm256_loadu_ps(p); }
static inline SimdF simd_loadm(SimdMask m, const float *p) { return _mm256_maskload_ps(p, m); }
static inline void simd_store(float *p, SimdF v) { _mm256_storeu_ps(p, v); }
static inline void simd_storem(float *p, SimdMask m, SimdF v) { _mm256_maskstore_ps(p, m, v); }
static inline SimdF simd_set1(float x) { return _mm256_set1_ps(x); }
static inline SimdF simd_zero(void) { return _mm256_setzero_ps(); }
static inline SimdF simd_add(SimdF a, SimdF b) { return _mm256_add_ps(a, b); }
static inline SimdF simd_fma(SimdF a, SimdF b, SimdF c) { return _mm256_fmadd_ps(a, b, c); }
static inline float simd_sum(SimdF v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

#else
#define SIMD_WIDTH 0
#endif

#endif
