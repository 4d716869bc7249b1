/* Convolution kernels of conv2d (see conv_kernels.h): the unfolded layout, and the three products over it.
 *
 * What the layout buys: at stride 1 a tap's row over the output positions is a plain slice of u, so the
 * unfolded image is K times smaller than im2col (13 KB for LeNet's conv1) and stays in L1 while it is used.
 * What the vector blocks buy: every product keeps its accumulators in registers across its whole reduction (up to
 * 24 vectors of 16 floats with AVX-512, 12 of 8 with AVX2: simd.h, one source for both), with the weights
 * broadcast from memory, so conv1 (6 filters) uses every lane and FMA slot where OpenBLAS ran it at half its peak.
 * The blocks are instantiated for every tail size (macros at the end), so any O, CKK and NP work; the plain-C
 * versions below are the reference the vector ones must match (and 4 to 10 times slower: an AVX2-only CPU trained
 * LeNet-BN at 15k images/s on them, 76k on the AVX2 blocks).
 * The weight gradient with 12 to 64 filters runs transposed, filters in the lanes (weight_grad_t):
 * summing over positions in the lanes left 24 horizontal sums per block and spilled registers, at 2.5 times the
 * forward's time for the same products; with the filters in the lanes there is no horizontal sum at all. */
#include "conv_kernels.h"

#include <string.h>

#include "window.h"

#include "simd.h"

#if defined(__SSE__)
#include <xmmintrin.h> /* _MM_TRANSPOSE4_PS */
#endif

#define VW SIMD_WIDTH
#if VW == 16
/* Block limits: AVX-512 has 32 registers, room for 6 x 4 accumulators, the loaded vectors and a broadcast. */
#define CONVK_PV 4    /* vectors of positions per block of the forward and input gradient */
#define CONVK_DW_OB 6 /* filters x taps per block of the weight gradient (positions in lanes) */
#define CONVK_DW_KB 4
#else
/* AVX2 has 16: 6 x 2 accumulators in the forward and input gradient, 3 x 3 in the weight gradient. */
#define CONVK_PV 2
#define CONVK_DW_OB 3
#define CONVK_DW_KB 3
#endif

void convk_geom(ConvGeom *g)
{
    g->Hp = g->H + 2 * g->P;
    g->NP = g->OH * g->OW;
    g->CKK = g->C * g->K * g->K;
    g->usize = g->S == 1 ? (size_t)g->C * g->K * g->Hp * g->OW : (size_t)g->CKK * g->NP;
}

void convk_offsets(const ConvGeom *g, int *off)
{
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->K; ki++)
            for (int kj = 0; kj < g->K; kj++) {
                int k = (c * g->K + ki) * g->K + kj;
                off[k] = g->S == 1 ? ((c * g->K + kj) * g->Hp + ki) * g->OW : k * g->NP;
            }
}

/* Columns of src per pass over its rows: a pass over 4 rows writes a line of dst per column, and all 784 columns of
 * an MLP's input are 49 KB of lines, more than L1 holds, so each line came back from L2 for every 4 rows. 64
 * columns are 4 KB: 128 rows x 784 went from 17.6 to 9.6 us (16 to 128 columns: 9.1-9.7). */
#define CONVK_TRANSPOSE_TILE 64

/* 4x4 blocks through registers (8 shuffles per 16 values) where the element loop's strided stores took 4 times as
 * long (dense's transposed blocks, the weight gradient's dy with AVX2), a tile of columns at a time. */
void convk_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols)
{
    for (int c0 = 0; c0 < cols; c0 += CONVK_TRANSPOSE_TILE) {
        int c1 = cols - c0 < CONVK_TRANSPOSE_TILE ? cols : c0 + CONVK_TRANSPOSE_TILE, r = 0;
#if defined(__SSE__)
        for (; r + 4 <= rows; r += 4) {
            const float *s = src + (size_t)r * lds;
            int c = c0;
            for (; c + 4 <= c1; c += 4) {
                __m128 a = _mm_loadu_ps(s + c), b = _mm_loadu_ps(s + lds + c);
                __m128 e = _mm_loadu_ps(s + 2 * lds + c), f = _mm_loadu_ps(s + 3 * lds + c);
                _MM_TRANSPOSE4_PS(a, b, e, f);
                _mm_storeu_ps(dst + (size_t)c * ldd + r, a), _mm_storeu_ps(dst + (size_t)(c + 1) * ldd + r, b);
                _mm_storeu_ps(dst + (size_t)(c + 2) * ldd + r, e), _mm_storeu_ps(dst + (size_t)(c + 3) * ldd + r, f);
            }
            for (; c < c1; c++)
                for (int i = 0; i < 4; i++)
                    dst[(size_t)c * ldd + r + i] = s[(size_t)i * lds + c];
        }
#endif
        for (; r < rows; r++)
            for (int c = c0; c < c1; c++)
                dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
    }
}

/* im2col for stride > 1: row (c*K + ki)*K + kj of u gets, over the NP positions, the input under that tap. */
static void im2col(const ConvGeom *g, float *u, const float *x)
{
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < g->K; ki++)
            for (int kj = 0; kj < g->K; kj++) {
                float *row = u + (size_t)((c * g->K + ki) * g->K + kj) * g->NP;
                int lo, hi;
                window_range(kj, g->S, g->P, g->W, g->OW, &lo, &hi);
                for (int oh = 0; oh < g->OH; oh++) {
                    int ih = oh * g->S - g->P + ki;
                    float *dst = row + (size_t)oh * g->OW;
                    const float *src = x + ((size_t)c * g->H + ih) * g->W;
                    if (ih < 0 || ih >= g->H) {
                        memset(dst, 0, (size_t)g->OW * sizeof(float));
                        continue;
                    }
                    for (int ow = 0; ow < g->OW; ow++)
                        dst[ow] = ow >= lo && ow < hi ? src[ow * g->S - g->P + kj] : 0.0f;
                }
            }
}

/* dst[0..n) = src[0..n). A row of u is short (24 or 8 floats in LeNet), where the set-up of the compiler's
 * vectorised loop costs more than the copy: whole vectors and one masked tail instead. */
static inline void copy_row(float *dst, const float *src, int n)
{
#if VW
    int p = 0;
    for (; p + VW <= n; p += VW)
        simd_store(dst + p, simd_load(src + p));
    if (p < n) {
        SimdMask m = simd_first(n - p);
        simd_storem(dst + p, m, simd_loadm(m, src + p));
    }
#else
    memcpy(dst, src, (size_t)n * sizeof(float));
#endif
}

#if VW
/* Rows of u up to this many vectors go through unfold_rows (a mask per vector on the stack); longer ones through
 * the plain loops below. */
#define UNFOLD_MAXV 64

/* convk_unfold at stride 1 with whole vectors: in each plane (c, kj) the lanes of a row that read the input,
 * [lo, hi), are the same in every row, so each vector's load mask is worked out once per plane and a row is one
 * load and one store per vector (the last store masked to the row), padding rows stores of zeros. Row by row
 * through copy_row and the compiler's loops, with their set-up and tail in every row of 8 or 24 floats, it took
 * 9 % of a 1-thread LeNet-BN step and 12 % of resnet_small's; this is 1.7 to 2.5 times faster. Without padding
 * every row is whole, and a loop of its own for that case is twice as fast again on LeNet's rows as the general
 * one, whose branches per row and per vector cost as much as the copy. */
static void unfold_rows(const ConvGeom *g, float *u, const float *x)
{
    int OW = g->OW, nv = (OW + VW - 1) / VW, last = nv - 1, H = g->H, W = g->W;
    SimdMask m[UNFOLD_MAXV], end = simd_first(OW - last * VW);
    unsigned char whole[UNFOLD_MAXV]; /* vector v reads the input in all its lanes: a plain load */
    for (int c = 0; c < g->C; c++)
        for (int kj = 0; kj < g->K; kj++) {
            float *dst = u + (size_t)(c * g->K + kj) * g->Hp * OW;
            const float *src = x + (size_t)c * H * W + kj - g->P; /* input row ih at src + ih * W */
            int lo, hi;
            if (g->P == 0) {
                for (int ih = 0; ih < H; ih++, dst += OW, src += W) {
                    for (int p = 0; p < last * VW; p += VW)
                        simd_store(dst + p, simd_load(src + p));
                    simd_storem(dst + last * VW, end, simd_loadm(end, src + last * VW));
                }
                continue;
            }
            window_range(kj, 1, g->P, W, OW, &lo, &hi);
            for (int v = 0; v < nv; v++)
                m[v] = simd_lanes(lo - v * VW, hi - v * VW), whole[v] = v * VW >= lo && (v + 1) * VW <= hi;
            for (int ihp = 0; ihp < g->Hp; ihp++, dst += OW) {
                int ih = ihp - g->P;
                const float *s = src + (size_t)ih * W;
                if (ih < 0 || ih >= H) {
                    for (int v = 0; v < last; v++)
                        simd_store(dst + v * VW, simd_zero());
                    simd_storem(dst + last * VW, end, simd_zero());
                    continue;
                }
                for (int v = 0; v < last; v++)
                    simd_store(dst + v * VW, whole[v] ? simd_load(s + v * VW) : simd_loadm(m[v], s + v * VW));
                simd_storem(dst + last * VW, end, simd_loadm(m[last], s + last * VW));
            }
        }
}
#endif

/* At stride 1 each row of u is a copy of [lo, hi) of an input row with zeros around it: unfold_rows in a build
 * with vectors, else three plain loops, which the compiler vectorises (a per-position test in one loop it did
 * not). */
void convk_unfold(const ConvGeom *g, float *u, const float *x)
{
    if (g->S != 1) {
        im2col(g, u, x);
        return;
    }
#if VW
    if ((g->OW + VW - 1) / VW <= UNFOLD_MAXV) {
        unfold_rows(g, u, x);
        return;
    }
#endif
    if (g->P == 0) { /* every row a plain copy (LeNet): no per-row window bookkeeping; bnni eval 5% faster */
        for (int c = 0; c < g->C; c++)
            for (int kj = 0; kj < g->K; kj++) {
                float *dst = u + (size_t)(c * g->K + kj) * g->Hp * g->OW;
                const float *src = x + (size_t)c * g->H * g->W + kj;
                for (int ih = 0; ih < g->H; ih++)
                    copy_row(dst + (size_t)ih * g->OW, src + (size_t)ih * g->W, g->OW);
            }
        return;
    }
    for (int c = 0; c < g->C; c++)
        for (int kj = 0; kj < g->K; kj++) {
            float *dst = u + (size_t)(c * g->K + kj) * g->Hp * g->OW;
            int lo, hi;
            window_range(kj, 1, g->P, g->W, g->OW, &lo, &hi);
            for (int ihp = 0; ihp < g->Hp; ihp++, dst += g->OW) {
                int ih = ihp - g->P;
                if (ih < 0 || ih >= g->H) {
                    memset(dst, 0, (size_t)g->OW * sizeof(float));
                    continue;
                }
                const float *src = x + ((size_t)c * g->H + ih) * g->W + kj - g->P;
                if (lo == 0 && hi == g->OW) { /* no padding in this row: every row when P = 0 */
                    copy_row(dst, src, g->OW);
                    continue;
                }
                for (int ow = 0; ow < lo; ow++)
                    dst[ow] = 0.0f;
                for (int ow = lo; ow < hi; ow++)
                    dst[ow] = src[ow];
                for (int ow = hi; ow < g->OW; ow++)
                    dst[ow] = 0.0f;
            }
        }
}

#if VW
/* Kernel columns and vectors of an input row for fold_rows's table of masks; larger layers take the loops below. */
#define FOLD_MAXK 16

/* convk_fold at stride 1, an input row at a time: each vector of the row sums what the K planes (c, kj) give its
 * positions in registers, in kj order, and is stored once. The plain loops added plane after plane into the row
 * in memory, and a plane's vector loads met the previous plane's stores to the same row one value over, which the
 * store buffer cannot forward: 2.6 times slower on LeNet's second convolution. Each value gets the same additions
 * in the same order from +0, the masked lanes adding +0 where a plane has nothing for a position; a sum that
 * starts at +0 is never -0, so adding +0 leaves it unchanged: the bits are the plain loops'. */
static void fold_rows(const ConvGeom *g, float *dx, const float *du)
{
    int W = g->W, nv = (W + VW - 1) / VW, last = nv - 1;
    SimdMask m[FOLD_MAXK][UNFOLD_MAXV], end = simd_first(W - last * VW);
    for (int kj = 0; kj < g->K; kj++) { /* position w takes plane kj's value ow = w + P - kj when in its window */
        int lo, hi;
        window_range(kj, 1, g->P, W, g->OW, &lo, &hi);
        for (int v = 0; v < nv; v++)
            m[kj][v] = simd_lanes(lo + kj - g->P - v * VW, hi + kj - g->P - v * VW);
    }
    for (int c = 0; c < g->C; c++)
        for (int ih = 0; ih < g->H; ih++) {
            float *dst = dx + ((size_t)c * g->H + ih) * W;
            const float *src = du + ((size_t)c * g->K * g->Hp + ih + g->P) * g->OW + g->P; /* plane 0's row */
            for (int v = 0; v < nv; v++) {
                SimdF acc = simd_zero();
                for (int kj = 0; kj < g->K; kj++)
                    acc = simd_add(acc, simd_loadm(m[kj][v], src + (size_t)kj * g->Hp * g->OW - kj + v * VW));
                if (v < last)
                    simd_store(dst + v * VW, acc);
                else
                    simd_storem(dst + v * VW, end, acc);
            }
        }
}
#endif

void convk_fold(const ConvGeom *g, float *dx, const float *du)
{
#if VW
    if (g->S == 1 && g->K <= FOLD_MAXK && (g->W + VW - 1) / VW <= UNFOLD_MAXV) {
        fold_rows(g, dx, du);
        return;
    }
#endif
    memset(dx, 0, (size_t)g->C * g->H * g->W * sizeof(float));
    for (int c = 0; c < g->C; c++)
        for (int ki = 0; ki < (g->S == 1 ? 1 : g->K); ki++)
            for (int kj = 0; kj < g->K; kj++) {
                int lo, hi;
                window_range(kj, g->S, g->P, g->W, g->OW, &lo, &hi);
                if (g->S == 1) { /* the rows of (c, kj) over the padded input rows */
                    const float *src = du + ((size_t)(c * g->K + kj) * g->Hp + g->P) * g->OW;
                    for (int ih = 0; ih < g->H; ih++, src += g->OW) {
                        float *dst = dx + ((size_t)c * g->H + ih) * g->W + kj - g->P;
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] += src[ow];
                    }
                    continue;
                }
                const float *row = du + (size_t)((c * g->K + ki) * g->K + kj) * g->NP;
                for (int oh = 0; oh < g->OH; oh++) {
                    int ih = oh * g->S - g->P + ki;
                    float *dst = dx + ((size_t)c * g->H + ih) * g->W;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    for (int ow = lo; ow < hi; ow++)
                        dst[ow * g->S - g->P + kj] += row[(size_t)oh * g->OW + ow];
                }
            }
}

#if !VW

void convk_forward(const ConvGeom *g, float *y, const float *u, const int *off, const float *w, const float *b)
{
    for (int o = 0; o < g->O; o++) {
        float *yo = y + (size_t)o * g->NP;
        for (int p = 0; p < g->NP; p++)
            yo[p] = b ? b[o] : 0.0f;
        for (int k = 0; k < g->CKK; k++) {
            const float *ur = u + off[k];
            float wk = w[(size_t)o * g->CKK + k];
            for (int p = 0; p < g->NP; p++)
                yo[p] += wk * ur[p];
        }
    }
}

size_t convk_wgrad_scratch(const ConvGeom *g)
{
    (void)g;
    return 1;
}

void convk_weight_grad(const ConvGeom *g, float *dw, float *db, const float *dy, const float *u, size_t ustride,
                       const int *off, int G, float *scratch)
{
    (void)scratch;
    for (int i = 0; i < G; i++, dy += (size_t)g->O * g->NP, u += ustride)
        for (int o = 0; o < g->O; o++) {
            const float *d = dy + (size_t)o * g->NP;
            for (int k = 0; k < g->CKK; k++) {
                const float *ur = u + off[k];
                float s = 0.0f;
                for (int p = 0; p < g->NP; p++)
                    s += d[p] * ur[p];
                dw[(size_t)o * g->CKK + k] += s;
            }
            if (db) {
                float s = 0.0f;
                for (int p = 0; p < g->NP; p++)
                    s += d[p];
                db[o] += s;
            }
        }
}

void convk_input_grad(const ConvGeom *g, float *du, const float *dy, const int *off, const float *w)
{
    for (int k = 0; k < g->CKK; k++) {
        float *dr = du + off[k];
        for (int o = 0; o < g->O; o++) {
            const float *d = dy + (size_t)o * g->NP;
            float wk = w[(size_t)o * g->CKK + k];
            for (int p = 0; p < g->NP; p++)
                dr[p] += wk * d[p];
        }
    }
}

#else /* VW */

#define AI static inline __attribute__((always_inline))

/* Lanes of the vector at position p that are real positions (< NP). */
AI SimdMask lanes(int p, int NP) { return simd_first(NP - p); }

/* OB filters x PV vectors of 16 positions from p0, the last vector masked by m; accumulated over every tap.
 * Whole-vector loads past a row's end read the next row or CONVK_SLACK; those lanes are never stored. */
AI void fwd_block(const ConvGeom *g, float *y, const float *u, const int *off, const float *w, const float *b,
                  int p0, SimdMask m, const int OB, const int PV)
{
    SimdF acc[6][4];
    for (int o = 0; o < OB; o++)
        for (int v = 0; v < PV; v++)
            acc[o][v] = simd_set1(b ? b[o] : 0.0f);
    for (int k = 0; k < g->CKK; k++) {
        const float *ur = u + off[k] + p0;
        SimdF xv[4];
        for (int v = 0; v < PV; v++)
            xv[v] = simd_load(ur + VW * v);
        for (int o = 0; o < OB; o++) {
            SimdF wb = simd_set1(w[(size_t)o * g->CKK + k]);
            for (int v = 0; v < PV; v++)
                acc[o][v] = simd_fma(wb, xv[v], acc[o][v]);
        }
    }
    for (int o = 0; o < OB; o++) {
        float *yo = y + (size_t)o * g->NP + p0;
        for (int v = 0; v < PV - 1; v++)
            simd_store(yo + VW * v, acc[o][v]);
        simd_storem(yo + VW * (PV - 1), m, acc[o][PV - 1]);
    }
}

/* For OB filters x KB taps from k0, one image's positions added in VW lanes onto the lane sums in keep (vector
 * (o, k) at keep + (o * CKK + k) * VW from the block's first; zero when first). One image at a time, every block
 * of it, keeps that image's dy and u in L1 (37 KB for conv1), where all images per block re-read the chunk's 600 KB
 * from L2 once per block; the lane sums go through memory unchanged, so the result is the same bit for bit. The
 * tail vector is loaded masked on both sides: the lanes past NP hold another row's values, which must not reach
 * the sum (0 * inf would). */
AI void dw_block(const ConvGeom *g, float *keep, const float *d, const float *ui, const int *off, int k0, int first,
                 const int OB, const int KB)
{
    SimdF acc[6][4];
    int NP = g->NP, nfull = NP / VW * VW;
    SimdMask m = lanes(nfull, NP);
    for (int o = 0; o < OB; o++)
        for (int j = 0; j < KB; j++)
            acc[o][j] = first ? simd_zero() : simd_load(keep + ((size_t)o * g->CKK + j) * VW);
    for (int p = 0; p < NP; p += VW) {
        SimdF xv[4];
        for (int j = 0; j < KB; j++)
            xv[j] = p < nfull ? simd_load(ui + off[k0 + j] + p) : simd_loadm(m, ui + off[k0 + j] + p);
        for (int o = 0; o < OB; o++) {
            SimdF dv = p < nfull ? simd_load(d + (size_t)o * NP + p) : simd_loadm(m, d + (size_t)o * NP + p);
            for (int j = 0; j < KB; j++)
                acc[o][j] = simd_fma(dv, xv[j], acc[o][j]);
        }
    }
    for (int o = 0; o < OB; o++)
        for (int j = 0; j < KB; j++)
            simd_store(keep + ((size_t)o * g->CKK + j) * VW, acc[o][j]);
}

/* KB taps from k0 x PV vectors from p0 of w^T . dy, summed over the O filters, then added onto the taps' rows
 * of du, tap after tap (rows of one (c, kj) overlap in the stride-1 layout). The last vector is masked by m:
 * past NP a tap's row is another position's. */
AI void dx_block(const ConvGeom *g, float *du, const float *dy, const int *off, const float *w, int k0, int p0,
                 SimdMask m, const int KB, const int PV)
{
    SimdF acc[6][4];
    for (int j = 0; j < KB; j++)
        for (int v = 0; v < PV; v++)
            acc[j][v] = simd_zero();
    for (int o = 0; o < g->O; o++) {
        const float *d = dy + (size_t)o * g->NP + p0;
        SimdF dv[4];
        for (int v = 0; v < PV - 1; v++)
            dv[v] = simd_load(d + VW * v);
        dv[PV - 1] = simd_loadm(m, d + VW * (PV - 1));
        for (int j = 0; j < KB; j++) {
            SimdF wb = simd_set1(w[(size_t)o * g->CKK + k0 + j]);
            for (int v = 0; v < PV; v++)
                acc[j][v] = simd_fma(wb, dv[v], acc[j][v]);
        }
    }
    for (int j = 0; j < KB; j++) {
        float *dr = du + off[k0 + j] + p0;
        for (int v = 0; v < PV - 1; v++)
            simd_store(dr + VW * v, simd_add(simd_load(dr + VW * v), acc[j][v]));
        simd_storem(dr + VW * (PV - 1), m,
                              simd_add(simd_loadm(m, dr + VW * (PV - 1)), acc[j][PV - 1]));
    }
}

/* Every (a, b) block shape with a in 1..6, b in 1..4, as `case a * 8 + b:` labels calling M(a, b). */
#define CONVK_CASES4(M, a) M(a, 1) M(a, 2) M(a, 3) M(a, 4)
#define CONVK_CASES(M)                                                                                           \
    CONVK_CASES4(M, 1) CONVK_CASES4(M, 2) CONVK_CASES4(M, 3) CONVK_CASES4(M, 4) CONVK_CASES4(M, 5)             \
    CONVK_CASES4(M, 6)

void convk_forward(const ConvGeom *g, float *y, const float *u, const int *off, const float *w, const float *b)
{
    int nvec = (g->NP + VW - 1) / VW;
    for (int o0 = 0; o0 < g->O; o0 += 6) {
        int ob = g->O - o0 < 6 ? g->O - o0 : 6;
        float *yo = y + (size_t)o0 * g->NP;
        const float *wo = w + (size_t)o0 * g->CKK, *bo = b ? b + o0 : NULL;
        for (int v0 = 0; v0 < nvec; v0 += CONVK_PV) {
            int pv = nvec - v0 < CONVK_PV ? nvec - v0 : CONVK_PV, p0 = VW * v0;
            SimdMask m = lanes(p0 + VW * (pv - 1), g->NP);
            switch (ob * 8 + pv) {
#define M(a, b_)                                                                                                 \
    case a * 8 + b_:                                                                                             \
        fwd_block(g, yo, u, off, wo, bo, p0, m, a, b_);                                                          \
        break;
                CONVK_CASES(M)
#undef M
            }
        }
    }
}

/* With 12 or more filters the weight gradient runs transposed, filters in the lanes (see convk_weight_grad). */
static int filters_in_lanes(const ConvGeom *g) { return g->O >= 12 && g->O <= 64; }

/* Filters rounded up to whole vectors: the row length of the transposed dy and dw. */
static int padded_filters(const ConvGeom *g) { return (g->O + VW - 1) / VW * VW; }

size_t convk_wgrad_scratch(const ConvGeom *g)
{
    size_t OP = (size_t)padded_filters(g);
    return filters_in_lanes(g) ? OP * ((size_t)g->NP + g->CKK + 1) : (size_t)g->O * g->CKK * VW;
}

/* Positions per step of dwt_block: with AVX-512's registers even and odd positions go to two sets of accumulators
 * (more sums in flight per tap pointer), added at the end; AVX2 has room for one set. */
#define CONVK_T_H (VW == 16 ? 2 : 1)

/* dwt[k][v] (CKK, OP) += sum over p of u[off[k] + p] * dyt[p][v], for KB taps from k0 and VB vectors of filters
 * from v0: every accumulator a whole vector of filters, so no horizontal sum; u is broadcast from memory. */
AI void dwt_block(float *dwt, const float *dyt, const float *u, const int *off, int NP, int OP, int k0, int v0,
                  const int KB, const int VB)
{
    const int H = CONVK_T_H;
    SimdF acc[8][4];
    const float *ur[8];
    int p = 0;
    for (int j = 0; j < KB; j++) {
        ur[j] = u + off[k0 + j];
        for (int v = 0; v < H * VB; v++)
            acc[j][v] = simd_zero();
    }
    for (; p + H <= NP; p += H) {
        SimdF d[4];
        for (int h = 0; h < H; h++)
            for (int v = 0; v < VB; v++)
                d[h * VB + v] = simd_load(dyt + (size_t)(p + h) * OP + VW * (v0 + v));
        for (int j = 0; j < KB; j++)
            for (int h = 0; h < H; h++) {
                SimdF ub = simd_set1(ur[j][p + h]);
                for (int v = 0; v < VB; v++)
                    acc[j][h * VB + v] = simd_fma(ub, d[h * VB + v], acc[j][h * VB + v]);
            }
    }
    for (; p < NP; p++)
        for (int j = 0; j < KB; j++)
            for (int v = 0; v < VB; v++)
                acc[j][v] = simd_fma(simd_set1(ur[j][p]), simd_load(dyt + (size_t)p * OP + VW * (v0 + v)), acc[j][v]);
    for (int j = 0; j < KB; j++)
        for (int v = 0; v < VB; v++) {
            float *dst = dwt + (size_t)(k0 + j) * OP + VW * (v0 + v);
            SimdF a = H == 2 ? simd_add(acc[j][v], acc[j][VB + v]) : acc[j][v];
            simd_store(dst, simd_add(simd_load(dst), a));
        }
}

/* Every (a, b) with a in 1..8, b in 1..2, as `case a * 4 + b:` labels calling M(a, b). */
#define CONVK_CASES_T(M)                                                                                         \
    M(1, 1) M(1, 2) M(2, 1) M(2, 2) M(3, 1) M(3, 2) M(4, 1) M(4, 2) M(5, 1) M(5, 2) M(6, 1) M(6, 2) M(7, 1)     \
        M(7, 2) M(8, 1) M(8, 2)

/* The transposed weight gradient: per image, dy (O, NP) transposed into dyt (NP, OP) (zero past O) with its
 * position sums added to dbt (OP); then dwt (CKK, OP) += u^T . dyt; at the end dw and db get dwt and dbt. */
static void weight_grad_t(const ConvGeom *g, float *dw, float *db, const float *dy, const float *u, size_t ustride,
                          const int *off, int G, float *scratch)
{
    int NP = g->NP, OP = padded_filters(g), nv = OP / VW;
    float *dyt = scratch, *dwt = dyt + (size_t)NP * OP, *dbt = dwt + (size_t)g->CKK * OP;
    memset(dwt, 0, ((size_t)g->CKK + 1) * OP * sizeof(float));
    memset(dyt, 0, (size_t)NP * OP * sizeof(float));
    for (int i = 0; i < G; i++, dy += (size_t)g->O * NP, u += ustride) {
        /* dyt (NP, OP) = dy (O, NP) transposed, its columns past O left zero, in 4x4 blocks: AVX-512 gathers of one
         * position of 16 filters took this AMD CPU 0.24 ms a step for cnn_relu_bn's conv2d_1 backward at 2
         * threads, the blocks 0.16 (conv2d_2 0.96 -> 0.87). */
        convk_transpose(dyt, OP, dy, NP, g->O, NP);
        for (int v = 0; v < nv; v++) {
            SimdF s = simd_load(dbt + VW * v);
            for (int p = 0; p < NP; p++)
                s = simd_add(s, simd_load(dyt + (size_t)p * OP + VW * v));
            simd_store(dbt + VW * v, s);
        }
        for (int v0 = 0; v0 < nv; v0 += 2) {
            int vb = nv - v0 < 2 ? 1 : 2, kmax = vb == 1 ? 8 : 6;
            for (int k0 = 0; k0 < g->CKK; k0 += kmax) {
                int kb = g->CKK - k0 < kmax ? g->CKK - k0 : kmax;
                switch (kb * 4 + vb) {
#define M(a, b_)                                                                                                 \
    case a * 4 + b_:                                                                                             \
        dwt_block(dwt, dyt, u, off, NP, OP, k0, v0, a, b_);                                                      \
        break;
                    CONVK_CASES_T(M)
#undef M
                }
            }
        }
    }
    for (int o = 0; o < g->O; o++) {
        for (int k = 0; k < g->CKK; k++)
            dw[(size_t)o * g->CKK + k] += dwt[(size_t)k * OP + o];
        if (db)
            db[o] += dbt[o];
    }
}

void convk_weight_grad(const ConvGeom *g, float *dw, float *db, const float *dy, const float *u, size_t ustride,
                       const int *off, int G, float *scratch)
{
    if (filters_in_lanes(g)) {
        weight_grad_t(g, dw, db, dy, u, ustride, off, G, scratch);
        return;
    }
    float *keep = scratch; /* (O, CKK) vectors of lane sums */
    if (G < 1)
        return;
    for (int i = 0; i < G; i++) {
        const float *di = dy + (size_t)i * g->O * g->NP, *ui = u + i * ustride;
        for (int o0 = 0; o0 < g->O; o0 += CONVK_DW_OB) {
            int ob = g->O - o0 < CONVK_DW_OB ? g->O - o0 : CONVK_DW_OB;
            for (int k0 = 0; k0 < g->CKK; k0 += CONVK_DW_KB) {
                int kb = g->CKK - k0 < CONVK_DW_KB ? g->CKK - k0 : CONVK_DW_KB;
                float *kp = keep + ((size_t)o0 * g->CKK + k0) * VW;
                const float *dio = di + (size_t)o0 * g->NP;
                switch (ob * 8 + kb) {
#define M(a, b_)                                                                                                 \
    case a * 8 + b_:                                                                                             \
        dw_block(g, kp, dio, ui, off, k0, i == 0, a, b_);                                                        \
        break;
                    CONVK_CASES(M)
#undef M
                }
            }
        }
    }
    for (int o = 0; o < g->O; o++)
        for (int k = 0; k < g->CKK; k++)
            dw[(size_t)o * g->CKK + k] += simd_sum(simd_load(keep + ((size_t)o * g->CKK + k) * VW));
    if (!db)
        return;
    for (int o = 0; o < g->O; o++) {
        SimdF s = simd_zero();
        for (int i = 0; i < G; i++) {
            const float *d = dy + ((size_t)i * g->O + o) * g->NP;
            for (int p = 0; p < g->NP; p += VW)
                s = simd_add(s, simd_loadm(lanes(p, g->NP), d + p));
        }
        db[o] += simd_sum(s);
    }
}

void convk_input_grad(const ConvGeom *g, float *du, const float *dy, const int *off, const float *w)
{
    int nvec = (g->NP + VW - 1) / VW;
    for (int k0 = 0; k0 < g->CKK; k0 += 6) {
        int kb = g->CKK - k0 < 6 ? g->CKK - k0 : 6;
        for (int v0 = 0; v0 < nvec; v0 += CONVK_PV) {
            int pv = nvec - v0 < CONVK_PV ? nvec - v0 : CONVK_PV, p0 = VW * v0;
            SimdMask m = lanes(p0 + VW * (pv - 1), g->NP);
            switch (kb * 8 + pv) {
#define M(a, b_)                                                                                                 \
    case a * 8 + b_:                                                                                             \
        dx_block(g, du, dy, off, w, k0, p0, m, a, b_);                                                           \
        break;
                CONVK_CASES(M)
#undef M
            }
        }
    }
}

#endif /* VW */
