/* Plots (runtime/plot/, bnni plot): every kind rendered to PNG, SVG and PDF and the files checked, the PNGs decoded
 * here (zlib and PNG's five row filters, written from the PNG specification for this test) so that "not blank"
 * means: the expected size, a white background, and the pixels of each run's palette colour; the CSV reader on
 * quoted, CRLF and malformed files; and bnni plot's refusals, which write nothing. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runtime/plot/gnuplot.h"
#include "runtime/plot/plot.h"
#include "tests/support.h"

static char dir[64];
static void make_dir(void) { support_make_tmpdir(dir, sizeof dir, "plot"); }
static void remove_dir(void) { support_remove_tree(dir); }
TestSuite(plot, .init = make_dir, .fini = remove_dir, .timeout = 300);

/* ---- a PNG reader for the checks ---- */

typedef struct Image {
    int w, h;
    unsigned char *rgb; /* w * h * 3 */
} Image;

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what gnuplot's pngcairo writes), checking every chunk's CRC.
 * Fails the test on anything else. */
static Image read_png(const char *path)
{
    size_t len;
    unsigned char *f = (unsigned char *)support_slurp(path, &len), *idat = NULL;
    size_t nidat = 0, pos = 8;
    int depth = 0, type = 0, interlace = 0;
    Image im = {0};
    cr_assert(len > 8 && memcmp(f, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG", path);
    while (pos + 12 <= len) {
        uint32_t n = be32(f + pos);
        const unsigned char *tag = f + pos + 4, *data = f + pos + 8;
        cr_assert(pos + 12 + n <= len, "%s: truncated chunk", path);
        cr_assert_eq(crc32(crc32(0, tag, 4), data, n), be32(data + n), "%s: bad CRC in %.4s", path, tag);
        if (!memcmp(tag, "IHDR", 4))
            im.w = (int)be32(data), im.h = (int)be32(data + 4), depth = data[8], type = data[9], interlace = data[12];
        if (!memcmp(tag, "IDAT", 4)) {
            idat = realloc(idat, nidat + n);
            memcpy(idat + nidat, data, n), nidat += n;
        }
        pos += 12 + n;
        if (!memcmp(tag, "IEND", 4))
            break;
    }
    cr_assert(depth == 8 && (type == 2 || type == 6) && !interlace, "%s: depth %d type %d", path, depth, type);
    int bpp = type == 6 ? 4 : 3;
    size_t stride = (size_t)im.w * bpp, raw_len = (stride + 1) * im.h;
    unsigned char *raw = malloc(raw_len), *px = calloc(stride * im.h, 1);
    uLongf got = raw_len;
    cr_assert_eq(uncompress(raw, &got, idat, nidat), Z_OK, "%s: bad zlib data", path);
    cr_assert_eq(got, raw_len);
    for (int y = 0; y < im.h; y++) {
        const unsigned char *r = raw + y * (stride + 1) + 1;
        unsigned char *o = px + y * stride, *up = y ? o - stride : NULL;
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)bpp ? o[x - bpp] : 0, b = up ? up[x] : 0, c = up && x >= (size_t)bpp ? up[x - bpp] : 0;
            int v = r[-1] == 0 ? 0 : r[-1] == 1 ? a : r[-1] == 2 ? b : r[-1] == 3 ? (a + b) / 2 : paeth(a, b, c);
            cr_assert(r[-1] <= 4, "%s: filter %d", path, r[-1]);
            o[x] = (unsigned char)(r[x] + v);
        }
    }
    im.rgb = malloc((size_t)im.w * im.h * 3);
    for (size_t i = 0; i < (size_t)im.w * im.h; i++) /* onto white, as a viewer shows it */
        for (int k = 0; k < 3; k++) {
            int alpha = bpp == 4 ? px[i * 4 + 3] : 255;
            im.rgb[i * 3 + k] = (unsigned char)((px[i * bpp + k] * alpha + 255 * (255 - alpha)) / 255);
        }
    free(f), free(idat), free(raw), free(px);
    return im;
}

/* Pixels within 40 (per channel) of colour "#rrggbb". */
static long count_color(const Image *im, const char *hex)
{
    unsigned r, g, b;
    long n = 0;
    sscanf(hex + 1, "%2x%2x%2x", &r, &g, &b);
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) {
        const unsigned char *p = im->rgb + i * 3;
        n += abs(p[0] - (int)r) < 40 && abs(p[1] - (int)g) < 40 && abs(p[2] - (int)b) < 40;
    }
    return n;
}

/* The PNG at path is w x h, mostly white (a background), has dark text and axes, and `ncolors` palette colours
 * each on at least `min` pixels (its lines and points; the bands are blended with white and do not count). */
static void expect_png(const char *path, int w, int h, int ncolors, long min)
{
    Image im = read_png(path);
    cr_expect(im.w == w && im.h == h, "%s: %dx%d, want %dx%d", path, im.w, im.h, w, h);
    long white = count_color(&im, "#ffffff"), dark = count_color(&im, "#000000");
    long all = (long)im.w * im.h;
    cr_expect(white > all / 2 && white < all - all / 50, "%s: %ld of %ld pixels white", path, white, all);
    cr_expect(dark > all / 500, "%s: %ld dark pixels: no text or axes", path, dark);
    for (int k = 0; k < ncolors; k++)
        cr_expect(count_color(&im, gp_color(k)) >= min, "%s: colour %d (%s) on %ld pixels, want %ld", path, k,
                  gp_color(k), count_color(&im, gp_color(k)), min);
    free(im.rgb);
}

/* An SVG of size w x h whose drawing has at least `paths` path elements and holds every string in need. */
static void expect_svg(const char *path, int w, int h, int paths, const char *const *need, int nneed)
{
    char *s = support_slurp(path, NULL), size[64];
    cr_assert(strstr(s, "<svg") && strstr(s, "</svg>"), "%s: not an SVG", path);
    snprintf(size, sizeof size, "width=\"%d\" height=\"%d\"", w, h);
    cr_expect(strstr(s, size) != NULL, "%s: no %s", path, size);
    int n = 0;
    for (const char *p = s; (p = strstr(p, "<path")); p++)
        n++;
    cr_expect(n >= paths, "%s: %d paths, want at least %d", path, n, paths);
    for (int i = 0; i < nneed; i++)
        cr_expect(strstr(s, need[i]) != NULL, "%s: no '%s'", path, need[i]);
    free(s);
}

static void expect_pdf(const char *path)
{
    size_t len;
    char *s = support_slurp(path, &len);
    cr_expect(len > 3000 && !memcmp(s, "%PDF-", 5), "%s: not a PDF (%zu bytes)", path, len);
    cr_expect(len > 6 && strstr(s + len - 8, "%%EOF") != NULL, "%s: no %%%%EOF at the end", path);
    free(s);
}

/* No file of dir starts with '.', the temporary files of a failed or finished plot. */
static void expect_no_temp_files(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_expect(e->d_name[0] != '.' || !strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."), "left: %s", e->d_name);
    closedir(d);
}

/* ---- synthetic inputs ---- */

static PlotTable run_table(const char *label, double shift, int val)
{
    char path[128], text[2048];
    PlotTable t;
    char err[256];
    size_t n = (size_t)snprintf(text, sizeof text, "epoch,train_loss,train_acc,test_loss,test_acc%s\n",
                                val ? ",val_loss,val_acc" : "");
    for (int e = 1; e <= 6; e++) {
        double l = 2.0 / e + shift, a = 0.9 - 0.4 / e - shift / 10;
        n += (size_t)snprintf(text + n, sizeof text - n, "%d,%g,%g,%g,%g", e, l * 0.9, a + 0.02, l, a);
        n += (size_t)snprintf(text + n, sizeof text - n, val ? ",%g,%g\n" : "\n", l * 1.05, a - 0.01);
    }
    snprintf(path, sizeof path, "%s/%s.csv", dir, label);
    support_write_text(path, text);
    cr_assert_eq(plot_table_csv(path, &t, err, sizeof err), 0, "%s", err);
    t.label = strdup(label);
    return t;
}

static TraceLog trace_log_of(int nlayers, double drift)
{
    TraceLog t = {.every = 50, .probe = 256, .subset = 2000, .nlayers = nlayers};
    for (int i = 0; i < nlayers; i++)
        snprintf(t.names[i], SPEC_NAME_MAX, "layer_%d", i + 1);
    for (int s = 0; s <= 40; s++) {
        double p[TRACE_MAX_LAYERS * TRACE_NPCT];
        for (int i = 0; i < nlayers; i++) {
            double m = drift * s / 40.0 * (i + 1);
            p[i * 3] = m - 1 - 0.02 * s, p[i * 3 + 1] = m, p[i * 3 + 2] = m + 1 + 0.03 * s;
        }
        cr_assert_eq(trace_log_append(&t, 50LL * s, 0.1 + 0.8 * (1 - exp(-s / 8.0)) - drift / 20, p), 0);
    }
    return t;
}

static const char *out_path(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

Test(plot, curves_in_every_format)
{
    PlotTable t[3] = {run_table("run_a", 0, 1), run_table("run_b", 0.3, 1), run_table("run_c", 0.6, 1)};
    PlotInput in = {.runs = t, .nruns = 3, .title = "three runs"};
    char err[1024];
    cr_assert_eq(plot_curves(&in, out_path("c.png"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_curves(&in, out_path("c.svg"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_curves(&in, out_path("c.pdf"), err, sizeof err), 0, "%s", err);
    expect_png(out_path("c.png"), 1200, 480, 3, 300);
    static const char *const need[] = {"run_a", "run_b", "run_c", "validation", "train", "test", "epoch", "three runs"};
    expect_svg(out_path("c.svg"), 1200, 480, 20, need, 8);
    expect_pdf(out_path("c.pdf"));
    expect_no_temp_files();
    for (int i = 0; i < 3; i++)
        plot_table_free(&t[i]);
}

Test(plot, trace_panels_in_every_format)
{
    TraceLog a = trace_log_of(2, 0), b = trace_log_of(1, 2);
    const TraceLog *tr[2] = {&a, &b};
    const char *labels[2] = {"with BN", "without BN"};
    PlotInput in = {.traces = tr, .trace_labels = labels, .ntraces = 2};
    char err[1024];
    cr_assert_eq(plot_trace(&in, out_path("t.png"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_trace(&in, out_path("t.svg"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_trace(&in, out_path("t.pdf"), err, sizeof err), 0, "%s", err);
    expect_png(out_path("t.png"), 3 * 420, 2 * 340 + 40, 2, 800);
    static const char *const need[] = {"with BN: layer_1", "with BN: layer_2", "without BN: layer_1", "50th",
                                       "training steps"};
    expect_svg(out_path("t.svg"), 3 * 420, 2 * 340 + 40, 10, need, 5);
    expect_pdf(out_path("t.pdf"));
    free(a.step), free(a.test_acc), free(a.pct), free(b.step), free(b.test_acc), free(b.pct);
}

Test(plot, sweep_in_every_format)
{
    support_write_text(out_path("summary.csv"),
                       "optimizer.lr,batchnorm,runs,diverged,final_median,final_min,final_max,best_median,best_min,"
                       "best_max,target,reached,epochs_to_target\n"
                       "0.01,on,3,0,0.70,0.68,0.72,0.71,0.69,0.73,0.8,0,\n0.01,off,3,0,0.40,0.35,0.45,0.41,0.36,0.46,0.8,0,\n"
                       "0.1,on,3,0,0.82,0.80,0.84,0.83,0.81,0.85,0.8,3,2\n0.1,off,3,0,0.60,0.50,0.70,0.61,0.51,0.71,0.8,0,\n"
                       "1,on,3,0,0.86,0.85,0.87,0.87,0.86,0.88,0.8,3,1\n1,off,3,3,,,,,,,0.8,0,\n");
    PlotTable t;
    char err[1024];
    cr_assert_eq(plot_table_csv(out_path("summary.csv"), &t, err, sizeof err), 0, "%s", err);
    PlotInput in = {.sweep = &t};
    cr_assert_eq(plot_sweep(&in, out_path("s.png"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_sweep(&in, out_path("s.svg"), err, sizeof err), 0, "%s", err);
    cr_assert_eq(plot_sweep(&in, out_path("s.pdf"), err, sizeof err), 0, "%s", err);
    expect_png(out_path("s.png"), 900, 560, 2, 300);
    static const char *const need[] = {"batchnorm=on", "batchnorm=off", "every seed diverged", "optimizer.lr"};
    expect_svg(out_path("s.svg"), 900, 560, 8, need, 4);
    expect_pdf(out_path("s.pdf"));
    plot_table_free(&t);
}

/* The CSV reader: quotes (with commas, doubled quotes and line breaks inside), CRLF, blank lines; then refusals. */
Test(plot, csv_tables)
{
    PlotTable t;
    char err[512];
    support_write_text(out_path("q.csv"), "a,\"b,c\",d\r\n1,\"x \"\"y\"\"\",2.5\r\n\r\n3,\"two\nlines\",nan\r\n");
    cr_assert_eq(plot_table_csv(out_path("q.csv"), &t, err, sizeof err), 0, "%s", err);
    cr_expect(t.ncols == 3 && t.nrows == 2);
    cr_expect_str_eq(t.names[1], "b,c");
    cr_expect_str_eq(t.text[1], "x \"y\"");
    cr_expect_str_eq(t.text[4], "two\nlines");
    cr_expect(t.v[0] == 1 && t.v[2] == 2.5 && isnan(t.v[1]) && isnan(t.v[5]));
    cr_expect_eq(plot_table_col(&t, "d"), 2);
    plot_table_free(&t);
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"a,b\n1,2,3\n", "row 2 has more fields than the header's 2"},
        {"a,b\n1,2\n3\n", "row 3 has fewer fields than the header's 2"},
        {"a,a\n1,2\n", "distinct column names, got 'a'"},
        {"a,b\n", "it has a header but no rows"},
        {"a,b\n\"1,2\n", "row 2: unreadable"},
        {"a,,b\n1,2,3\n", "distinct column names, got ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        support_write_text(out_path("bad.csv"), bad[i].text);
        cr_expect_eq(plot_table_csv(out_path("bad.csv"), &t, err, sizeof err), -1, "case %zu accepted", i);
        cr_expect(strstr(err, bad[i].why) != NULL, "case %zu: %s", i, err);
    }
    support_write_bytes(out_path("bin.csv"), "a,b\n\0\1", 6, 0);
    cr_expect_eq(plot_table_csv(out_path("bin.csv"), &t, err, sizeof err), -1);
    cr_expect(strstr(err, "not a CSV file") != NULL, "%s", err);
}

/* ---- bnni plot ---- */

#define run(...) support_run(dir, __VA_ARGS__)

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Two tiny runs (one traced) and their metrics CSV. */
static void two_runs(void)
{
    support_write_text(out_path("m.bnn"), "data fashion_mnist(batch=64)\noptimizer sgd(lr=0.5)\nepochs 2\n"
                                          "network {\n    flatten\n    dense(16)\n    batchnorm\n    sigmoid\n"
                                          "    dense(10)\n}\n");
    const char *o = "--limit 256 --test-limit 200 --threads 1 --quiet";
    cr_assert_eq(run("train %s %s --out %s --metrics %s --trace dense_1 --trace-every 2", out_path("m.bnn"), o,
                     out_path("a.h5"), out_path("a.csv")), 0);
    cr_assert_eq(run("train %s %s --set batchnorm=off --out %s", out_path("m.bnn"), o, out_path("b.h5")), 0);
}

Test(plot, command_draws_runs_traces_and_sweeps)
{
    two_runs();
    cr_assert_eq(run("plot %s %s %s -o %s --label x --label y --label z", out_path("a.h5"), out_path("b.h5"),
                     out_path("a.csv"), out_path("r.png")), 0);
    expect_png(out_path("r.png"), 1200, 480, 3, 40);
    cr_assert_eq(run("plot %s --trace -o %s", out_path("a.h5"), out_path("tr.svg")), 0);
    static const char *const need[] = {"a: dense_1"};
    expect_svg(out_path("tr.svg"), 2 * 420, 340 + 40, 4, need, 1);
    expect_no_temp_files();
}

/* Bad inputs: one line, status 1 (2 for usage), the output never written, an existing output kept. */
Test(plot, refusals_write_nothing)
{
    two_runs();
    support_write_text(out_path("val.csv"), "epoch,train_loss,train_acc,test_loss,test_acc,val_loss,val_acc,seconds,"
                                            "images_per_second\n1,1,0.5,1,0.5,1,0.5,1,100\n");
    support_write_text(out_path("keep.png"), "not replaced");
    char a[256], b[256], o[256]; /* out_path's buffers rotate */
    snprintf(a, sizeof a, "%s", out_path("a.h5"));
    snprintf(b, sizeof b, "%s", out_path("b.h5"));
    snprintf(o, sizeof o, "%s", out_path("keep.png"));
    char args[5][1024];
    snprintf(args[0], sizeof args[0], "%s %s -o %s", a, out_path("val.csv"), o);
    snprintf(args[1], sizeof args[1], "%s %s --trace -o %s", a, b, o);
    snprintf(args[2], sizeof args[2], "%s %s/nosuch.h5 -o %s", a, dir, o);
    snprintf(args[3], sizeof args[3], "%s/nosuch.csv -o %s", dir, o);
    snprintf(args[4], sizeof args[4], "%s -o %s", dir, o);
    static const char *const n1[5] = {"hold different metrics", "b.h5: holds no trace", "nosuch.h5: cannot open",
                                      "nosuch.csv: cannot open", "summary.csv: cannot open"};
    for (int i = 0; i < 5; i++) {
        int st = run("plot %s", args[i]);
        support_expect_one_line_error(dir, st, n1[i], i == 0 ? "has no val_loss, val_acc" : NULL);
        char *kept = support_slurp(o, NULL);
        cr_expect_str_eq(kept, "not replaced", "case %d replaced the output", i);
        free(kept);
    }
    cr_expect_eq(run("plot %s -o %s", a, out_path("x.gif")), 2);
    cr_expect_eq(run("plot %s", a), 2);
    cr_expect_eq(run("plot -o %s", out_path("x.png")), 2);
    cr_expect_eq(run("plot %s %s -o %s --label one", a, b, out_path("x.png")), 2);
    cr_expect(!exists(out_path("x.png")) && !exists(out_path("x.gif")));
    /* without gnuplot on the PATH: one line that says what to install, nothing written */
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", "/nonexistent", 1);
    int st = run("plot %s -o %s", a, out_path("x.png"));
    setenv("PATH", path, 1);
    free(path);
    support_expect_one_line_error(dir, st, "cannot run gnuplot", "gnuplot-nox");
    cr_expect(!exists(out_path("x.png")));
    expect_no_temp_files();
}
