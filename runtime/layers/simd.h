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
/* Lanes lo <= j < hi (none when hi <= lo; any ints). */
static inline SimdMask simd_lanes(int lo, int hi)
{
    unsigned a = lo <= 0 ? 0u : lo >= 16 ? 0xFFFFu : (1u << lo) - 1u;
    unsigned b = hi <= 0 ? 0u : hi >= 16 ? 0xFFFFu : (1u << hi) - 1u;
    return (SimdMask)(b & ~a);
}
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
/* Elementwise math for the activations (sigmoid.c). */
typedef __mmask16 SimdCmp;
static inline SimdF simd_sub(SimdF a, SimdF b) { return _mm512_sub_ps(a, b); }
static inline SimdF simd_mul(SimdF a, SimdF b) { return _mm512_mul_ps(a, b); }
static inline SimdF simd_div(SimdF a, SimdF b) { return _mm512_div_ps(a, b); }
/* max(a, b), b when either is NaN. */
static inline SimdF simd_max(SimdF a, SimdF b) { return _mm512_max_ps(a, b); }
static inline SimdF simd_or(SimdF a, SimdF b) { return _mm512_or_ps(a, b); }
static inline SimdCmp simd_isnan(SimdF a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
/* a >= b, false with a NaN. */
static inline SimdCmp simd_ge(SimdF a, SimdF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
/* m ? t : f, lane by lane. */
static inline SimdF simd_blend(SimdF f, SimdF t, SimdCmp m) { return _mm512_mask_mov_ps(f, m, t); }
/* p * 2^n for whole n in [-150, 0], rounded once as act_expf's two factors round it (vscalefps). */
static inline SimdF simd_scale2(SimdF p, SimdF n) { return _mm512_scalef_ps(p, n); }

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SIMD_WIDTH 8
typedef __m256 SimdF;
typedef __m256i SimdMask;
static inline SimdMask simd_first(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline SimdMask simd_lanes(int lo, int hi)
{
    __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), j),
                               _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), j));
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
typedef __m256 SimdCmp;
static inline SimdF simd_sub(SimdF a, SimdF b) { return _mm256_sub_ps(a, b); }
static inline SimdF simd_mul(SimdF a, SimdF b) { return _mm256_mul_ps(a, b); }
static inline SimdF simd_div(SimdF a, SimdF b) { return _mm256_div_ps(a, b); }
static inline SimdF simd_max(SimdF a, SimdF b) { return _mm256_max_ps(a, b); }
static inline SimdF simd_or(SimdF a, SimdF b) { return _mm256_or_ps(a, b); }
static inline SimdCmp simd_isnan(SimdF a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
static inline SimdCmp simd_ge(SimdF a, SimdF b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
static inline SimdF simd_blend(SimdF f, SimdF t, SimdCmp m) { return _mm256_blendv_ps(f, t, m); }
/* act_expf's two factors 2^(k/2) and 2^(k - k/2), each built from exponent bits, multiplied in its order. */
static inline SimdF simd_scale2(SimdF p, SimdF n)
{
    const __m256i bias = _mm256_set1_epi32(127);
    __m256i k = _mm256_cvttps_epi32(n), k1 = _mm256_srai_epi32(k, 1);
    __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(k, k1), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

#else
#define SIMD_WIDTH 0
#endif

#endif
