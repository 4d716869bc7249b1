/* What a checkpoint costs to save and to load: reads CKPT.h5 (ckpt_read) and writes it back (ckpt_write)
 * --reps times each, printing the median milliseconds of both and the size of the file written. Saving to
 * /dev/shm (tmpfs, where fsync does nothing) shows the HDF5 work alone; to a disk directory, with the fsync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ckpt.h"

#define MAX_REPS 1000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ms(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return 1e3 * (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]));
}

int main(int argc, char **argv)
{
    const char *in = NULL, *dir = "/dev/shm";
    int reps = 50;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (!in && argv[i][0] != '-')
            in = argv[i];
        else
            in = NULL, i = argc;
    }
    if (!in || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: ckpt_bench CKPT.h5 [--reps N (1..%d, default 50)] [--dir DIR (default /dev/shm)]\n",
                MAX_REPS);
        return 2;
    }
    static double t[MAX_REPS];
    char err[8192], out[4096];
    Ckpt c;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (ckpt_read(in, &c, err, sizeof err) < 0) {
            fprintf(stderr, "ckpt_bench: %s: %s\n", in, err);
            return 1;
        }
        t[r] = now() - t0;
        if (r + 1 < reps)
            ckpt_free(&c);
    }
    double read_ms = median_ms(t, reps);
    snprintf(out, sizeof out, "%s/ckpt_bench.%ld.h5", dir, (long)getpid());
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (ckpt_write(out, &c, err, sizeof err) < 0) {
            fprintf(stderr, "ckpt_bench: %s: %s\n", out, err);
            return 1;
        }
        t[r] = now() - t0;
    }
    struct stat st;
    long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    printf("%s: read %.3f ms, write to %s %.3f ms (median of %d), %lld bytes written\n", in, read_ms, dir,
           median_ms(t, reps), reps, size);
    remove(out);
    ckpt_free(&c);
    return 0;
}
