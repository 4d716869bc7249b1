/* Convolution kernels of conv2d: one image at a time over an unfolded input whose every kernel tap is one
 * contiguous row over the output positions, so that forward, weight gradient and input gradient are small
 * register-blocked products (AVX-512 or AVX2 when the build has it, plain loops otherwise) with no sgemm call.
 * Why not im2col + OpenBLAS: LeNet's products (6 or 16 filters, k = 25..150) run at a fraction of sgemm's peak
 * and OpenBLAS cannot share a batch across threads for them (bench/RESULTS.md). */
#ifndef BNNI_CONV_KERNELS_H
#define BNNI_CONV_KERNELS_H

#include <stddef.h>

/* The geometry of one conv2d layer. Input (C, H, W), weight (O, C, K, K), output (O, OH, OW), NP = OH*OW
 * positions, CKK = C*K*K taps. The unfolded image u is
 *   stride 1: u[c][kj][ihp][ow] = xpad[c][ihp][ow + kj] (Hp = H + 2P rows of OW), USIZE = C*K*Hp*OW:
 *             tap (c, ki, kj) is the row at u + (c*K + kj)*Hp*OW + ki*OW, K times smaller than im2col;
 *   stride > 1: im2col, u[(c*K + ki)*K + kj][p], USIZE = CKK*NP. */
typedef struct ConvGeom {
    int C, H, W, O, K, S, P, OH, OW;
    int Hp, NP, CKK;
    size_t usize;
} ConvGeom;

/* Fills the derived fields (Hp, NP, CKK, usize) of g from the others. */
void convk_geom(ConvGeom *g);
/* off[CKK]: where each tap's row starts in u. */
void convk_offsets(const ConvGeom *g, int *off);
/* Floats read past the end of the last unfolded image (whole-vector loads of a row's tail): allocate u with
 * usize * n + CONVK_SLACK floats, the slack zeroed. */
#define CONVK_SLACK 16

/* dst (cols, rows) with row stride ldd = src (rows, cols) with row stride lds, transposed. */
void convk_transpose(float *dst, int ldd, const float *src, int lds, int rows, int cols);

/* u (usize) from one image x (C, H, W); zero where a tap reads padding. */
void convk_unfold(const ConvGeom *g, float *u, const float *x);
/* dx (C, H, W) = the adjoint of convk_unfold applied to du (usize): every du value added back onto the input
 * position it was read from. dx is overwritten. */
void convk_fold(const ConvGeom *g, float *dx, const float *du);

/* y (O, NP) = w (O, CKK) . u + b (b may be NULL): one image's output. */
void convk_forward(const ConvGeom *g, float *y, const float *u, const int *off, const float *w, const float *b);
/* Over G images, dy (G, O, NP) and their unfolded inputs at u + i*ustride:
 * dw (O, CKK) += sum_i dy_i . u_i^T; db (O) += row sums of dy (when db is not NULL).
 * scratch: convk_wgrad_scratch(g) floats of the caller's (contents not kept). */
void convk_weight_grad(const ConvGeom *g, float *dw, float *db, const float *dy, const float *u, size_t ustride,
                       const int *off, int G, float *scratch);
/* The scratch convk_weight_grad needs, in floats (at least 1). */
size_t convk_wgrad_scratch(const ConvGeom *g);
/* du (usize) += w^T . dy, each tap's row added at its place in the unfolded layout; dy (O, NP) is one image's. */
void convk_input_grad(const ConvGeom *g, float *du, const float *dy, const int *off, const float *w);

#endif
