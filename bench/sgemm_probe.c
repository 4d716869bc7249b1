/* The sgemm roofline probe of `make bench`: OpenBLAS cblas_sgemm GFLOP/s on a large square product (the machine's
 * peak, which the roofline uses) and on the products one LeNet-BN training step at batch 128 needs with im2col
 * convolutions, at 1 and 2 threads. Prints `key value` lines; shape lines are for people, not parsers. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 128

/* C[m,n] = op(A)[m,k] * op(B)[k,n], row-major; ta/tb say whether A/B are stored transposed. */
typedef struct Gemm {
    const char *name;
    int ta, tb;
    int m, n, k;
} Gemm;

/* One training step of models/lenet_bn.bnn (batch 128). Convolutions as im2col products over the whole batch:
 * conv1 is 6 filters of 1x5x5 over 24x24 outputs, conv2 16 filters of 6x5x5 over 8x8; the first layer needs no
 * input gradient. Dense layers store W as [out,in]. */
static const Gemm step[] = {
    {"conv1_fwd", 0, 0, 6, BATCH * 576, 25},   /* Y[6,B*576] = W[6,25] Xcol[25,B*576] */
    {"conv2_fwd", 0, 0, 16, BATCH * 64, 150},  /* Y[16,B*64] = W[16,150] Xcol[150,B*64] */
    {"dense1_fwd", 0, 1, BATCH, 120, 256},     /* Y[B,120] = X[B,256] W^T */
    {"dense2_fwd", 0, 1, BATCH, 84, 120},
    {"dense3_fwd", 0, 1, BATCH, 10, 84},
    {"dense3_dx", 0, 0, BATCH, 84, 10},        /* dX[B,84] = dY[B,10] W[10,84] */
    {"dense3_dw", 1, 0, 10, 84, BATCH},        /* dW[10,84] = dY^T X */
    {"dense2_dx", 0, 0, BATCH, 120, 84},
    {"dense2_dw", 1, 0, 84, 120, BATCH},
    {"dense1_dx", 0, 0, BATCH, 256, 120},
    {"dense1_dw", 1, 0, 120, 256, BATCH},
    {"conv2_dx", 1, 0, 150, BATCH * 64, 16},   /* dXcol[150,B*64] = W^T dY */
    {"conv2_dw", 0, 1, 16, 150, BATCH * 64},   /* dW[16,150] = dY Xcol^T */
    {"conv1_dw", 0, 1, 6, 25, BATCH * 576},
};
#define NSTEP ((int)(sizeof step / sizeof step[0]))

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double flops(const Gemm *g)
{
    return 2.0 * g->m * g->n * g->k;
}

static void run(const Gemm *g, const float *a, const float *b, float *c)
{
    int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                g->m, g->n, g->k, 1.0f, a, lda, b, ldb, 0.0f, c, g->n);
}

/* Seconds per call of the gemms in g[0..n): the best of 3 blocks of at least min_s each, so one stall
 * (another process, a page fault) does not count against the library. */
static double time_gemms(const Gemm *g, int n, const float *a, const float *b, float *c, double min_s)
{
    double best = 1e30;
    for (int i = 0; i < n; i++) /* first touch and thread start-up stay out of the timing */
        run(&g[i], a, b, c);
    for (int rep = 0; rep < 3; rep++) {
        long calls = 0;
        double t0 = now(), t;
        do {
            for (int i = 0; i < n; i++)
                run(&g[i], a, b, c);
            calls++;
            t = now() - t0;
        } while (t < min_s);
        if (t / (double)calls < best)
            best = t / (double)calls;
    }
    return best;
}

static size_t max_elems(const Gemm *g, int n, char which)
{
    size_t m = 0;
    for (int i = 0; i < n; i++) {
        size_t e = which == 'a' ? (size_t)g[i].m * g[i].k : which == 'b' ? (size_t)g[i].k * g[i].n
                                                                          : (size_t)g[i].m * g[i].n;
        if (e > m)
            m = e;
    }
    return m;
}

/* Small values in [-0.5, 0.5): no denormals, no overflow, and not all zero (no shortcut for the library). */
static void fill(float *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: sgemm_probe [--square N] [--min-seconds S]\n"
                    "  --square N        size of the square peak product (default 2048)\n"
                    "  --min-seconds S   minimum length of one timing block (default 0.2)\n");
    return 2;
}

static void report(int threads, const Gemm *square, const float *a, const float *b, float *c, double min_s)
{
    double total = 0.0, t;
    openblas_set_num_threads(threads);
    t = time_gemms(square, 1, a, b, c, min_s);
    printf("sgemm_gflops_%dt %.1f\n", threads, flops(square) / t * 1e-9);
    for (int i = 0; i < NSTEP; i++) {
        t = time_gemms(&step[i], 1, a, b, c, min_s / 4);
        printf("shape %-10s %s%s m=%-6d n=%-6d k=%-6d threads=%d gflops=%.1f\n", step[i].name,
               step[i].ta ? "T" : "N", step[i].tb ? "T" : "N", step[i].m, step[i].n, step[i].k, threads,
               flops(&step[i]) / t * 1e-9);
    }
    for (int i = 0; i < NSTEP; i++)
        total += flops(&step[i]);
    t = time_gemms(step, NSTEP, a, b, c, min_s);
    printf("step_gflops_%dt %.1f\n", threads, total / t * 1e-9);
    printf("step_gemm_images_per_second_%dt %.0f\n", threads, BATCH / t);
}

int main(int argc, char **argv)
{
    int square_n = 2048;
    double min_s = 0.2, total = 0.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--square") && i + 1 < argc)
            square_n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-seconds") && i + 1 < argc)
            min_s = atof(argv[++i]);
        else
            return usage();
    }
    if (square_n < 64 || square_n > 8192 || !(min_s > 0.0 && min_s < 60.0))
        return usage();

    Gemm square = {"square", 0, 0, square_n, square_n, square_n};
    size_t na = max_elems(step, NSTEP, 'a'), nb = max_elems(step, NSTEP, 'b'), nc = max_elems(step, NSTEP, 'c');
    size_t nsq = (size_t)square_n * (size_t)square_n;
    na = na > nsq ? na : nsq;
    nb = nb > nsq ? nb : nsq;
    nc = nc > nsq ? nc : nsq;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_probe: error: out of memory for %zu + %zu + %zu floats\n", na, nb, nc);
        free(a), free(b), free(c);
        return 1;
    }
    fill(a, na, 1), fill(b, nb, 2), memset(c, 0, nc * sizeof *c);

    for (int i = 0; i < NSTEP; i++)
        total += flops(&step[i]);
    printf("openblas_config %s\n", openblas_get_config());
    printf("openblas_core %s\n", openblas_get_corename());
    printf("openblas_procs %d\n", openblas_get_num_procs());
    printf("square_n %d\n", square_n);
    printf("step_batch %d\n", BATCH);
    printf("step_mflop_per_image %.3f\n", total / BATCH * 1e-6);
    report(1, &square, a, b, c, min_s);
    report(2, &square, a, b, c, min_s);
    free(a), free(b), free(c);
    return 0;
}
