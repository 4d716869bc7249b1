/* Elementwise math shared by activation kernels: an expf written so that GCC vectorises the loops that call it
 * (glibc's expf is a scalar call without -ffast-math). Cephes' single-precision polynomial: within 2 ulp of
 * exp on the whole float range, denormal results included. */
#ifndef BNNI_LAYERS_ACT_H
#define BNNI_LAYERS_ACT_H

#include <math.h>
#include <stdint.h>

/* 2^n for n in [-126, 127], built from its exponent bits (type punning through a union is defined in C11). */
static inline float act_pow2i(int n)
{
    union {
        uint32_t u;
        float f;
    } b = {.u = (uint32_t)(n + 127) << 23};
    return b.f;
}

/* a*b + c: one fused instruction where the target has FMA (half the instructions of the polynomial below, and
 * never less accurate), a multiply and an add otherwise (fmaf would be a library call there). */
static inline float act_fma(float a, float b, float c)
{
#if defined(__FMA__)
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

/* exp(v); 0 below -104 (under the smallest denormal), +inf above 88.72; NaN stays NaN. Comparisons and selects
 * only (no fminf, no branches), so loops calling it vectorise. */
static inline float act_expf(float v)
{
    float x = v > -104.0f ? v : -104.0f, n, r, p, e; /* NaN compares false: computed as -104, restored below */
    int k, k1;
    x = x < 88.8f ? x : 88.8f;
    /* n = round(x / ln 2) by adding and removing 1.5 * 2^23 (floorf does not vectorise without -fno-trapping-math) */
    n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    r = x - n * 0.693359375f; /* ln 2 split in two so that n * ln 2 is exact in float */
    r = r - n * -2.12194440e-4f;
    p = 1.9875691500e-4f;
    p = act_fma(p, r, 1.3981999507e-3f);
    p = act_fma(p, r, 8.3334519073e-3f);
    p = act_fma(p, r, 4.1665795894e-2f);
    p = act_fma(p, r, 1.6666665459e-1f);
    p = act_fma(p, r, 5.0000001201e-1f);
    p = act_fma(p, r * r, r) + 1.0f;
    /* 2^k in two factors, each a normal float, so that results down to the denormals come out right. */
    k = (int)n;
    k1 = k >> 1;
    e = p * act_pow2i(k1) * act_pow2i(k - k1);
    return v == v ? e : v;
}

#endif
