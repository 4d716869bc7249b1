/* The fuzz targets (targets.h): each turns fuzz bytes into one input of a reader bnni exposes to users and
 * checks that it is accepted or refused cleanly (the data readers also that streaming reads what memory holds). The checkpoint target is structure-aware: its bytes are a
 * recipe of mutations of a valid checkpoint, so HDF5's own parser is not all the fuzzer ever sees. */
#include "targets.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../../interp/frontend.h"
#include "../../runtime/ckpt.h"
#include "../../runtime/data/idx.h"
#include "../../runtime/h5guard.h"
#include "../../runtime/data/kind.h"
#include "../../runtime/data/stream.h"
#include "../../runtime/net.h"
#include "../../runtime/optim.h"

/* ---------------------------------------------------------------- shared helpers */

static FILE *devnull(void)
{
    static FILE *f;
    if (!f)
        f = fopen("/dev/null", "w");
    return f;
}

/* Removes the scratch files of processes that died on an input before removing their own (crashes). */
static void sweep(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end, path[512];
        if (strncmp(e->d_name, "bnni-fuzz-", 10) != 0)
            continue;
        long pid = strtol(e->d_name + 10, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
}

/* One scratch file per process, on tmpfs when there is one. HDF5 resolves the real path of what it opens, so
 * a memfd will not do; each target removes the file after each input (unlink_scratch). */
static const char *scratch(void)
{
    static char path[64];
    if (!path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        sweep(dir);
        snprintf(path, sizeof path, "%s/bnni-fuzz-%ld", dir, (long)getpid());
    }
    return path;
}

static void unlink_scratch(void) { unlink(scratch()); }

static const char *write_scratch(const uint8_t *data, size_t size)
{
    const char *path = scratch();
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    return path;
}

/* BNNI_FUZZ_VERBOSE=1 prints why each input was refused, for writing seeds that get past a given check. */
static void verbose(const char *what, const char *err)
{
    if (getenv("BNNI_FUZZ_VERBOSE"))
        fprintf(stderr, "%s: %s\n", what, err[0] ? err : "ok");
}

/* An input broke an invariant: says which on stderr and aborts (a crash for libFuzzer, a failed test for the
 * replay in tests/test_fuzz_corpus.c). */
static _Noreturn void broken(const char *target, const char *what)
{
    fprintf(stderr, "fuzz_%s: invariant broken: %s\n", target, what);
    abort();
}

/* Limits that keep one input's work bounded and independent of the machine's memory; and the data's facts given, so
 * that a fuzzed data statement never makes the checker open a file (a path such as "/dev/zero" or "/"). */
static CheckOptions fuzz_options(void)
{
    static const DataSpec record = {.shape = {3, 1, 28, 28}, .classes = 10, .dtype = DT_U8, .ntrain = -1,
                                    .ntest = -1, .has_test = 1};
    return (CheckOptions){.diag = devnull(), .mem_cap_bytes = 1ull << 30, .data_record = &record};
}

/* ---------------------------------------------------------------- .bnn */

/* The front end on `size` bytes named fuzz.bnn: its diagnostics, and the summary when it accepts them, in *text
 * (caller frees). Returns 1 when accepted (*m set, caller frees with spec_free), else 0. */
static int check_source(const char *src, size_t size, char **text, ModelSpec **m)
{
    size_t len = 0;
    FILE *out = open_memstream(text, &len);
    if (!out)
        abort();
    CheckOptions o = fuzz_options();
    o.diag = out;
    *m = NULL;
    int ok = bnn_load_source("fuzz.bnn", src, size, &o, m) == 0;
    if (ok)
        bnn_print_summary(*m, out);
    fclose(out);
    return ok;
}

/* Equal shapes (a flat shape's h and w do not count). */
static int same_shape(Shape a, Shape b)
{
    return a.rank == b.rank && a.c == b.c && (a.rank == 1 || (a.h == b.h && a.w == b.w));
}

/* Number of layers, trainable values and buffer values of a layer list, residual bodies included (a residual
 * layer's own counts are its body's, so only the others are summed). Checks the shape chain on the way: each
 * layer takes its predecessor's output, and a residual's body maps its input shape back to itself. Returns the
 * list's output shape. */
static Shape walk(const LayerSpec *v, int n, Shape in, long long tot[3])
{
    for (int i = 0; i < n; i++) {
        const LayerSpec *l = &v[i];
        if (!same_shape(l->in, in))
            broken("bnn", "a layer's input is not its predecessor's output");
        tot[0]++;
        if (l->kind == LK_RESIDUAL) {
            long long body[3] = {0, 0, 0};
            Shape out = walk(l->body, l->nbody, l->in, body);
            if (!same_shape(l->out, l->in) || !same_shape(out, l->in))
                broken("bnn", "a residual layer or its body changes the shape");
            tot[0] += body[0], tot[1] += body[1], tot[2] += body[2];
        } else {
            tot[1] += l->nparams, tot[2] += l->nbuffers;
        }
        in = l->out;
    }
    return in;
}

/* "44,878" -> 44878. */
static long long ungroup(const char *s)
{
    long long v = 0;
    for (; *s && *s != ' ' && *s != '\n'; s++)
        if (*s >= '0' && *s <= '9')
            v = v * 10 + (*s - '0');
        else if (*s != ',')
            return -1;
    return v;
}

/* The summary's table against its totals line: as many rows as layers, and the rows' trainable and buffer values
 * (a residual row shows none) summing to the totals; the totals the model's own. */
static void check_summary(const char *text, const ModelSpec *m)
{
    long long rows = 0, params = 0, buffers = 0, tp = -1, tb = -1, tl = -1;
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line;
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            continue;
        const char *nl = strchr(p, '\n'), *t = strstr(p, " trainable parameters, ");
        if (t && (!nl || t < nl)) {
            const char *b = t + 23, *l = strstr(b, " buffer values, ");
            tp = ungroup(p), tb = ungroup(b), tl = l ? ungroup(l + 16) : -1;
            continue;
        }
        char one[2048], tok[6][256]; /* the line alone: %s would read on past its end */
        snprintf(one, sizeof one, "%.*s", nl ? (int)(nl - p) : (int)strlen(p), p);
        int k = sscanf(one, "%255s %255s %255s %255s %255s %255s", tok[0], tok[1], tok[2], tok[3], tok[4], tok[5]);
        rows++;
        if (k == 6)
            params += ungroup(tok[4]), buffers += ungroup(tok[5]);
        else if (k != 4 || strcmp(tok[2], "residual") != 0)
            broken("bnn", "a summary row that is neither a layer with counts nor a residual");
    }
    if (tp != m->nparams || tb != m->nbuffers || tl != m->nlayers_total)
        broken("bnn", "the summary's totals line is not the model's totals");
    if (rows != tl || params != tp || buffers != tb)
        broken("bnn", "the summary's rows do not add up to its totals");
}

/* Invariants: an accepted source is the model's own text, its layers chain shape to shape and add up to the
 * model's totals, the summary agrees with both, and checking it again gives the same summary byte for byte (no
 * state survives a call); a refused one has at least one error and is refused again with the same diagnostics. */
int fuzz_bnn(const uint8_t *data, size_t size)
{
    char *text = NULL, *again = NULL;
    ModelSpec *m = NULL, *m2 = NULL;
    int ok = check_source((const char *)data, size, &text, &m);
    if (ok) {
        long long tot[3] = {0, 0, 0};
        if (m->source_len != size || memcmp(m->source, data, size) != 0 || m->source[size] != '\0')
            broken("bnn", "the model's source is not the text it was read from");
        if (m->nlayers > 0 && !same_shape(m->layers[0].in, m->input))
            broken("bnn", "the first layer's input is not the network's");
        walk(m->layers, m->nlayers, m->input, tot);
        if (tot[0] != m->nlayers_total || tot[1] != m->nparams || tot[2] != m->nbuffers)
            broken("bnn", "the layers do not add up to the model's totals");
        check_summary(text, m);
        if (!check_source(m->source, m->source_len, &again, &m2) || strcmp(text, again) != 0)
            broken("bnn", "the model's source checked again gives another summary");
    } else {
        if (!strstr(text, "error: "))
            broken("bnn", "a refusal without an error");
        if (check_source((const char *)data, size, &again, &m2) || strcmp(text, again) != 0)
            broken("bnn", "checking the source again gives other diagnostics");
    }
    free(text), free(again);
    spec_free(m), spec_free(m2);
    return ok ? FUZZ_ACCEPTED : FUZZ_REFUSED;
}

/* ---------------------------------------------------------------- IDX */

/* Gzips src into a new buffer (caller frees). */
static uint8_t *gzip_bytes(const uint8_t *src, size_t n, size_t *out_len)
{
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *dst = malloc(cap);
    if (!dst)
        abort();
    z.next_in = (Bytef *)src, z.avail_in = (uInt)n;
    z.next_out = dst, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_len = z.total_out;
    deflateEnd(&z);
    return dst;
}

int fuzz_idx(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const long long limits[4] = {0, 1, 3, 1000};
    unsigned mode = data[0];
    const uint8_t *body = data + 1;
    size_t n = size - 1, gz_len = 0;
    uint8_t *gz = (mode & 1) ? gzip_bytes(body, n, &gz_len) : NULL;
    const char *path = gz ? write_scratch(gz, gz_len) : write_scratch(body, n);
    free(gz);
    IdxFile f;
    char err[512];
    int rc;
    if (mode & 16)
        rc = idx_read_any_images(path, 28, 28, &f, err, sizeof err);
    else
        rc = idx_read(path, (mode & 2) ? IDX_LABELS : IDX_IMAGES, limits[(mode >> 2) & 3], &f, err, sizeof err);
    verbose("idx", rc == 0 ? "" : err);
    if (rc == 0) {
        /* Touch every kept byte, so a short buffer shows up under ASan. */
        size_t bytes = (size_t)f.count * (size_t)f.rows * (size_t)f.cols;
        unsigned sum = 0;
        for (size_t i = 0; i < bytes; i++)
            sum += f.data[i];
        if (f.count < 1 || f.count > f.total || f.rows < 1 || f.cols < 1 || sum == 0xffffffffu)
            abort();
    } else if (!err[0] || !memchr(err, '\0', sizeof err)) {
        abort(); /* a refusal must say why */
    }
    idx_free(&f);
    unlink_scratch();
    return rc == 0 ? FUZZ_ACCEPTED : FUZZ_REFUSED;
}

/* ---------------------------------------------------------------- checkpoints */

/* The model every recipe starts from; its checkpoint has the layers below. */
static const char fuzz_model[] = "model fz\n"
                                 "data fashion_mnist(batch=4)\n"
                                 "optimizer sgd(lr=0.1, momentum=0.9)\n"
                                 "loss cross_entropy\n"
                                 "epochs 2\n"
                                 "network {\n"
                                 "    conv2d(2, kernel=5)\n"
                                 "    batchnorm\n"
                                 "    relu\n"
                                 "    avgpool(4, stride=4)\n"
                                 "    flatten\n"
                                 "    dense(10)\n"
                                 "}\n";

enum { T_F32, T_F64, T_I32, T_I64, T_U64, T_STR, T_FSTR, T_U8, T_NTYPES };
enum { K_GROUP = 'g', K_ATTR = 'a', K_DATA = 'd', K_SOFT = 's', K_HARD = 'h' };

#define MAX_ENTS 96
#define NAME_LEN 96
#define STR_LEN 512

/* One object of the file: a group, a dataset, an attribute ("group@name") or a link to `target`. */
typedef struct Ent {
    char kind;
    char path[NAME_LEN], target[NAME_LEN];
    int type, rank;
    hsize_t dims[5];
    double num, step; /* numbers: value i is num + step * i */
    char str[STR_LEN];
} Ent;

typedef struct Recipe {
    Ent e[MAX_ENTS];
    int n;
    int crt_order; /* track link creation order (bnni's files do) */
} Recipe;

static Ent *add(Recipe *r, char kind, const char *path, int type, double num)
{
    if (r->n == MAX_ENTS)
        return NULL;
    Ent *e = &r->e[r->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind, e->type = type, e->num = num;
    snprintf(e->path, sizeof e->path, "%s", path);
    return e;
}

static void add_str(Recipe *r, const char *path, const char *s)
{
    Ent *e = add(r, K_ATTR, path, T_STR, 0);
    snprintf(e->str, sizeof e->str, "%s", s);
}

static void add_data(Recipe *r, const char *path, int type, double num, double step, int rank, const int *dims)
{
    Ent *e = add(r, K_DATA, path, type, num);
    e->step = step, e->rank = rank;
    for (int i = 0; i < rank; i++)
        e->dims[i] = (hsize_t)dims[i];
}

static void add_param(Recipe *r, const char *layer, const char *name, int rank, const int *dims, double v)
{
    char p[NAME_LEN];
    snprintf(p, sizeof p, "layers/%s/%s", layer, name);
    add_data(r, p, T_F32, v, 0.01, rank, dims);
    snprintf(p, sizeof p, "optimizer/%s/%s/momentum_buffer", layer, name);
    add_data(r, p, T_F32, 0, 0.001, rank, dims);
}

static void base_recipe(Recipe *r)
{
    static const int w1[4] = {2, 1, 5, 5}, c2[1] = {2}, w2[2] = {10, 72}, c10[1] = {10}, four[1] = {4},
                     eight[1] = {8}, two[1] = {2};
    memset(r, 0, sizeof *r);
    r->crt_order = 1;
    add_str(r, "@format", CKPT_FORMAT);
    add(r, K_ATTR, "@format_version", T_I64, CKPT_FORMAT_VERSION);
    add_str(r, "@model_source", fuzz_model);
    add_str(r, "@model_name", "fz");
    add(r, K_ATTR, "@epoch", T_I64, 2);
    add(r, K_ATTR, "@seed", T_U64, 1);
    add_str(r, "@bnni_version", "0.1.0");
    add_str(r, "@created", "2024-11-25T09:30:12Z");
    add_str(r, "@normalize", "unit");
    add(r, K_ATTR, "@data_mean", T_F64, 0);
    add(r, K_ATTR, "@data_std", T_F64, 1);
    add(r, K_GROUP, "layers", 0, 0);
    add(r, K_GROUP, "optimizer", 0, 0);
    static const char *const layers[3] = {"conv2d_1", "batchnorm_1", "dense_1"};
    for (int i = 0; i < 3; i++) {
        char p[NAME_LEN];
        snprintf(p, sizeof p, "layers/%s", layers[i]);
        add(r, K_GROUP, p, 0, 0);
        snprintf(p, sizeof p, "layers/%s@type", layers[i]);
        add_str(r, p, i == 0 ? "conv2d" : i == 1 ? "batchnorm" : "dense");
    }
    add(r, K_ATTR, "layers/batchnorm_1@momentum", T_F64, 0.9);
    add(r, K_ATTR, "layers/batchnorm_1@eps", T_F64, 1e-5);
    add_param(r, "conv2d_1", "weight", 4, w1, -0.1);
    add_param(r, "conv2d_1", "bias", 1, c2, 0);
    add_param(r, "batchnorm_1", "gamma", 1, c2, 1);
    add_param(r, "batchnorm_1", "beta", 1, c2, 0);
    add_data(r, "layers/batchnorm_1/moving_mean", T_F32, 0, 0.1, 1, c2);
    add_data(r, "layers/batchnorm_1/moving_var", T_F32, 1, 0.1, 1, c2);
    add_param(r, "dense_1", "weight", 2, w2, -0.05);
    add_param(r, "dense_1", "bias", 1, c10, 0);
    add_str(r, "optimizer@kind", "sgd");
    add(r, K_ATTR, "optimizer@lr", T_F64, 0.1);
    add(r, K_ATTR, "optimizer@weight_decay", T_F64, 0);
    add(r, K_ATTR, "optimizer@step", T_I64, 4);
    add(r, K_ATTR, "optimizer@momentum", T_F64, 0.9);
    add(r, K_ATTR, "optimizer@nesterov", T_I64, 0);
    add(r, K_GROUP, "train_state", 0, 0);
    static const char *const ts_names[8] = {"epoch", "position", "images_per_epoch", "batch",
                                            "correct", "loss_sum", "seconds", "lr"};
    static const double ts_vals[8] = {2, 0, 8, 4, 5, 9.5, 0.25, 0.1};
    for (int i = 0; i < 8; i++) {
        char p[NAME_LEN];
        snprintf(p, sizeof p, "train_state@%s", ts_names[i]);
        add(r, K_ATTR, p, i < 5 ? T_I64 : T_F64, ts_vals[i]);
    }
    add_data(r, "train_state/order", T_I32, 0, 1, 1, eight);
    add_data(r, "train_state/shuffle_rng", T_U64, 1, 7, 1, four);
    add_data(r, "train_state/net_rng", T_U64, 3, 5, 1, four);
    add(r, K_GROUP, "metrics", 0, 0);
    add_data(r, "metrics/epoch", T_I64, 1, 1, 1, two);
    static const char *const cols[6] = {"train_loss", "train_acc", "test_loss",
                                        "test_acc",   "seconds",   "images_per_second"};
    for (int i = 0; i < 6; i++) {
        char p[NAME_LEN];
        snprintf(p, sizeof p, "metrics/%s", cols[i]);
        add_data(r, p, T_F64, 0.5, 0.1, 1, two);
    }
}

/* The root attributes of the data a run trained on (docs/checkpoint.md), for recipes whose byte 0 has bit 1 set. */
static void add_data_attrs(Recipe *r)
{
    add_str(r, "@data_kind", "fashion_mnist");
    add_str(r, "@data_dtype", "uint8");
    Ent *e = add(r, K_ATTR, "@input_shape", T_I64, 1);
    if (e)
        e->rank = 1, e->dims[0] = 3, e->step = 27; /* 1, 28, 55 */
    add(r, K_ATTR, "@classes", T_I64, 10);
    if ((e = add(r, K_ATTR, "@class_names", T_STR, 0))) {
        snprintf(e->str, sizeof e->str, "shoe");
        e->rank = 1, e->dims[0] = 10;
    }
    add(r, K_ATTR, "@data_limit", T_I64, 0);
    add(r, K_ATTR, "@validation", T_I64, 0);
}

/* ---- mutations: each op is four bytes (what, which entry, two arguments) */

static const hsize_t odd_dims[8] = {0, 1, 3, 8, 72, 1u << 20, 1ull << 31, 1ull << 40};
static const double odd_nums[12] = {0, 1, -1, 2, 0.5, 1e300, -1e300, 2147483648.0, 9.3e18, -9.3e18, 1e-320, 1073741824.0};
static const char *const odd_strs[12] = {"", CKPT_FORMAT, "adam", "sgd", "batchnorm", "conv2d", "dense",
                                         "standard", "unit", "layers", "x", "\xff\xfe"};

static void mutate(Recipe *r, const uint8_t **p, const uint8_t *end)
{
    const uint8_t *d = *p;
    *p += 4;
    Ent *e = &r->e[d[1] % r->n];
    unsigned a = d[2], b = d[3];
    switch (d[0] % 13) {
    case 0: /* drop */
        *e = r->e[--r->n];
        break;
    case 1: /* another type */
        e->type = (int)(a % T_NTYPES);
        break;
    case 2: /* another rank: 0 is a scalar, 5 is beyond the format's maximum */
        e->rank = (int)(a % 6);
        for (int i = 0; i < e->rank; i++)
            if (!e->dims[i])
                e->dims[i] = 1 + b % 4;
        break;
    case 3: /* an absurd dimension */
        e->dims[a % 5] = odd_dims[b % 8];
        if (e->rank <= (int)(a % 5))
            e->rank = (int)(a % 5) + 1;
        break;
    case 4:
        e->num = odd_nums[a % 12] + (a >= 12 ? b : 0), e->step = b & 1 ? -1 : e->step;
        break;
    case 5: /* a string: from the table, or the next a bytes of the input */
        if (b == 0xff) {
            size_t n = (size_t)(end - *p) < a ? (size_t)(end - *p) : a;
            memcpy(e->str, *p, n);
            e->str[n] = '\0';
            *p += n;
        } else {
            snprintf(e->str, sizeof e->str, "%s", odd_strs[b % 12]);
        }
        break;
    case 6: /* a copy elsewhere: an extra layer, tensor or attribute */
        if (r->n < MAX_ENTS) {
            Ent *c = &r->e[r->n++];
            *c = *e;
            size_t len = strlen(c->path);
            snprintf(c->path + len, sizeof c->path - len, "%s", (a & 1) ? "_x" : "/y");
        }
        break;
    case 7: /* a link: a loop back to an ancestor, or dangling */
        if (r->n < MAX_ENTS && !strchr(e->path, '@')) {
            char from[NAME_LEN];
            memcpy(from, e->path, sizeof from);
            Ent *c = &r->e[r->n++];
            memset(c, 0, sizeof *c);
            c->kind = (a & 1) ? K_HARD : K_SOFT;
            snprintf(c->path, sizeof c->path, "%.80s/loop%u", from, b % 4);
            snprintf(c->target, sizeof c->target, "%s", (b & 4) ? "/nowhere" : (b & 8) ? "/" : "/layers");
        }
        break;
    case 8: /* a group becomes a dataset and back */
        if (e->kind == K_GROUP || e->kind == K_DATA)
            e->kind = e->kind == K_GROUP ? K_DATA : K_GROUP, e->rank = 1, e->dims[0] = 2;
        break;
    case 9: /* an attribute holding an array */
        e->rank = 1 + (int)(a % 2), e->dims[0] = 2 + b % 3, e->dims[1] = 2;
        break;
    case 10:
        r->crt_order = !r->crt_order;
        break;
    case 11: /* swap two entries: another creation order */
    {
        Ent t = *e;
        Ent *o = &r->e[a % r->n];
        *e = *o, *o = t;
        break;
    }
    default: /* renamed */
        snprintf(e->path + strlen(e->path) - (strlen(e->path) > 2), 3, "%c", 'a' + (int)(a % 26));
        break;
    }
}

/* ---- writing a recipe with the HDF5 API */

static hid_t file_type(int t, size_t len)
{
    static const hid_t *const types[T_NTYPES] = {&H5T_IEEE_F32LE_g, &H5T_IEEE_F64LE_g, &H5T_STD_I32LE_g,
                                                 &H5T_STD_I64LE_g,  &H5T_STD_U64LE_g,  NULL,
                                                 NULL,              &H5T_STD_U8LE_g};
    if (t != T_STR && t != T_FSTR)
        return H5Tcopy(*types[t]);
    hid_t s = H5Tcopy(H5T_C_S1);
    H5Tset_size(s, t == T_STR ? H5T_VARIABLE : (len ? len : 1));
    H5Tset_cset(s, H5T_CSET_UTF8);
    return s;
}

static hsize_t npoints(const Ent *e)
{
    hsize_t n = 1;
    for (int i = 0; i < e->rank; i++) {
        if (e->dims[i] && n > (1ull << 62) / e->dims[i])
            return 1ull << 62;
        n *= e->dims[i];
    }
    return n;
}

/* Writes the entry's values through space/type; skips the data of huge objects (HDF5 then reads fill values). */
static void put_values(const Ent *e, hid_t obj, int is_attr, hid_t ft)
{
    hsize_t n = npoints(e);
    if (n > 4096)
        return;
    if (e->type == T_STR || e->type == T_FSTR) {
        const char **v = malloc((n ? n : 1) * sizeof *v);
        char *fixed = malloc((n ? n : 1) * (strlen(e->str) + 1));
        hid_t mt = H5Tcopy(ft);
        for (hsize_t i = 0; i < n; i++) {
            v[i] = e->str;
            memcpy(fixed + i * (strlen(e->str) + 1), e->str, strlen(e->str) + 1);
        }
        const void *buf = e->type == T_STR ? (const void *)v : (const void *)fixed;
        if (e->type == T_FSTR)
            H5Tset_size(mt, strlen(e->str) + 1), H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (is_attr)
            H5Awrite(obj, e->type == T_STR ? ft : mt, buf);
        else
            H5Dwrite(obj, e->type == T_STR ? ft : mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Tclose(mt);
        free(v), free(fixed);
        return;
    }
    double *v = malloc((n ? n : 1) * sizeof *v);
    for (hsize_t i = 0; i < n; i++)
        v[i] = e->num + e->step * (double)i;
    if (is_attr)
        H5Awrite(obj, H5T_NATIVE_DOUBLE, v);
    else
        H5Dwrite(obj, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    free(v);
}

static hid_t make_space(const Ent *e)
{
    return e->rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(e->rank, e->dims, NULL);
}

static void put_ent(hid_t f, const Ent *e, hid_t lcpl, hid_t gcpl)
{
    if (e->kind == K_GROUP) {
        hid_t g = H5Gcreate2(f, e->path, lcpl, gcpl, H5P_DEFAULT);
        if (g >= 0)
            H5Gclose(g);
        return;
    }
    if (e->kind == K_SOFT || e->kind == K_HARD) {
        if (e->kind == K_SOFT)
            H5Lcreate_soft(e->target, f, e->path, lcpl, H5P_DEFAULT);
        else
            H5Lcreate_hard(f, e->target, f, e->path, lcpl, H5P_DEFAULT);
        return;
    }
    hid_t ft = file_type(e->type, strlen(e->str) + 1), sp = make_space(e);
    if (e->kind == K_DATA) {
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
        hid_t d = sp < 0 ? -1 : H5Dcreate2(f, e->path, ft, sp, lcpl, dcpl, H5P_DEFAULT);
        if (d >= 0)
            put_values(e, d, 0, ft), H5Dclose(d);
        H5Pclose(dcpl);
    } else {
        char obj[NAME_LEN];
        const char *at = strchr(e->path, '@');
        snprintf(obj, sizeof obj, "%.*s", at ? (int)(at - e->path) : 0, e->path);
        hid_t a = sp < 0 || !at ? -1 : H5Acreate_by_name(f, obj[0] ? obj : ".", at + 1, ft, sp, H5P_DEFAULT,
                                                         H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0)
            put_values(e, a, 1, ft), H5Aclose(a);
    }
    if (sp >= 0)
        H5Sclose(sp);
    H5Tclose(ft);
}

/* Builds the file in memory (HDF5's core driver) and copies its image to the scratch file. Returns its path. */
static const char *write_recipe(const Recipe *r)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE);
    unsigned order = r->crt_order ? H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED : 0;
    H5Pset_link_creation_order(fcpl, order);
    H5Pset_link_creation_order(gcpl, order);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 16, 0);
    hid_t f = H5Fcreate("fuzz.h5", H5F_ACC_TRUNC, fcpl, fapl);
    if (f < 0)
        abort();
    for (int i = 0; i < r->n; i++)
        put_ent(f, &r->e[i], lcpl, gcpl);
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t len = H5Fget_file_image(f, NULL, 0);
    void *img = len > 0 ? malloc((size_t)len) : NULL;
    if (!img || H5Fget_file_image(f, img, (size_t)len) != len)
        abort();
    H5Fclose(f);
    H5Pclose(fapl), H5Pclose(lcpl), H5Pclose(gcpl), H5Pclose(fcpl);
    const char *path = write_scratch(img, (size_t)len);
    free(img);
    return path;
}

/* ---- loading, as `bnni eval` and `train --resume` do */

/* Whether the checkpoint fits the model of its model_source: returns 1 when its parameters and its optimizer
 * state were applied, else 0. */
static int fit_to_model(const Ckpt *c)
{
    CheckOptions o = fuzz_options();
    ModelSpec *m = NULL;
    Net *net = NULL;
    NetParam *ps = NULL;
    Optim *opt = NULL;
    char err[4096] = "";
    int np = -1, fitted = 0;
    if (!c->model_source || bnn_load_source("ckpt:model_source", c->model_source, strlen(c->model_source), &o, &m))
        goto done;
    if (m->nparams > (1 << 20) || net_create(m->layers, m->nlayers, m->input, m->seed, &net, err, sizeof err) < 0 ||
        (np = net_params(net, &ps)) < 0)
        goto done;
    err[0] = '\0';
    if (ckpt_apply_params(c, ps, np, err, sizeof err) < 0 || !c->has_optimizer || c->opt.kind != m->opt.kind)
        goto done;
    if (optim_create(&m->opt, ps, np, &opt, err, sizeof err) == 0 &&
        ckpt_apply_optim(c, &m->opt, opt, ps, np, err, sizeof err) == 0)
        snprintf(err, sizeof err, "parameters and optimizer state applied"), fitted = 1;
done:
    verbose("fit", m ? err : "the model does not check");
    optim_free(opt);
    free(ps);
    net_free(net);
    spec_free(m);
    return fitted;
}

static int same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* The first field in which two checkpoints differ (values by their bytes), or NULL. */
static const char *ckpt_difference(const Ckpt *a, const Ckpt *b)
{
    if (a->format_version != b->format_version || !same_str(a->model_source, b->model_source) ||
        !same_str(a->model_name, b->model_name) || !same_str(a->bnni_version, b->bnni_version) ||
        !same_str(a->created, b->created) || a->epoch != b->epoch || a->seed != b->seed ||
        strcmp(a->normalize, b->normalize) != 0 || memcmp(&a->data_mean, &b->data_mean, sizeof(double)) != 0 ||
        memcmp(&a->data_std, &b->data_std, sizeof(double)) != 0)
        return "the root attributes";
    if (a->nlayers != b->nlayers)
        return "the layer groups";
    for (int i = 0; i < a->nlayers; i++)
        if (!ckpt_layer_same(&a->layers[i], &b->layers[i]))
            return "a layer group's attributes";
    if (a->ntensors != b->ntensors)
        return "the tensor count";
    /* By path: a dataset right under /layers (not in a layer group) is read as a tensor, and written back after
     * the layer groups, so the order of such a file's tensors may change; a valid file's does not. */
    for (int i = 0; i < a->ntensors; i++) {
        const CkptTensor *x = &a->tensors[i], *y = ckpt_find(b, x->path);
        if (!y || x->rank != y->rank || x->size != y->size ||
            memcmp(x->dims, y->dims, (size_t)x->rank * sizeof *x->dims) != 0 ||
            (x->size && memcmp(x->data, y->data, x->size * sizeof(float)) != 0))
            return "a tensor";
    }
    if (a->has_optimizer != b->has_optimizer || a->opt_steps != b->opt_steps ||
        (a->has_optimizer && (a->opt.kind != b->opt.kind || memcmp(&a->opt.lr, &b->opt.lr, sizeof(double)) != 0 ||
                              memcmp(&a->opt.weight_decay, &b->opt.weight_decay, sizeof(double)) != 0)))
        return "the optimizer";
    if (a->has_train_state != b->has_train_state)
        return "the train state's presence";
    if (a->has_train_state) {
        const TrainState *x = &a->ts, *y = &b->ts;
        if (x->epoch != y->epoch || x->position != y->position || x->norder != y->norder || x->batch != y->batch ||
            x->correct != y->correct || memcmp(&x->loss_sum, &y->loss_sum, sizeof(double)) != 0 ||
            memcmp(&x->seconds, &y->seconds, sizeof(double)) != 0 || memcmp(&x->lr, &y->lr, sizeof(double)) != 0 ||
            memcmp(x->order, y->order, (size_t)x->norder * sizeof *x->order) != 0 ||
            memcmp(&x->shuffle_rng, &y->shuffle_rng, sizeof x->shuffle_rng) != 0 ||
            memcmp(&x->net_rng, &y->net_rng, sizeof x->net_rng) != 0)
            return "the train state";
    }
    const CkptMetrics *x = &a->metrics, *y = &b->metrics;
    size_t n = (size_t)x->n * sizeof(double);
    if (x->n != y->n ||
        (n && (memcmp(x->train_loss, y->train_loss, n) || memcmp(x->train_acc, y->train_acc, n) ||
               memcmp(x->test_loss, y->test_loss, n) || memcmp(x->test_acc, y->test_acc, n) ||
               memcmp(x->seconds, y->seconds, n) || memcmp(x->images_per_second, y->images_per_second, n))))
        return "the metrics";
    return NULL;
}

/* What ckpt_read guarantees of a checkpoint it accepts (docs/checkpoint.md), and that ckpt_write saves it and
 * ckpt_read reads that back unchanged. */
static void check_accepted(const Ckpt *c)
{
    static char path[80], err[8192];
    if (c->format_version != CKPT_FORMAT_VERSION || !c->model_source || !c->model_name || !c->bnni_version ||
        !c->created || c->epoch < 0)
        broken("ckpt", "an accepted checkpoint without its root attributes");
    for (int i = 0; i < c->ntensors; i++) {
        const CkptTensor *t = &c->tensors[i];
        size_t n = 1;
        for (int k = 0; k < t->rank; k++)
            n *= (size_t)t->dims[k];
        if (t->rank < 0 || t->rank > CKPT_MAX_RANK || n != t->size || (t->size && !t->data) ||
            (strncmp(t->path, "layers/", 7) != 0 && strncmp(t->path, "optimizer/", 10) != 0))
            broken("ckpt", "an accepted tensor whose path, rank, size or data does not hold");
    }
    const TrainState *ts = &c->ts;
    if (c->has_train_state) {
        if (ts->norder < 1 || ts->position < 0 || ts->position > ts->norder || ts->batch < 1 || !ts->order)
            broken("ckpt", "an accepted train state out of range");
        for (int i = 0; i < ts->norder; i++)
            if (ts->order[i] < 0 || ts->order[i] >= ts->norder)
                broken("ckpt", "an accepted order with an index out of range");
    }
    if (c->metrics.n < 0 || (c->metrics.n > 0 && !c->metrics.test_acc))
        broken("ckpt", "accepted metrics without their values");
    snprintf(path, sizeof path, "%s.rt", scratch());
    Ckpt back;
    if (ckpt_write(path, c, err, sizeof err) < 0)
        broken("ckpt", "an accepted checkpoint that ckpt_write cannot save");
    if (ckpt_read(path, &back, err, sizeof err) < 0)
        broken("ckpt", "ckpt_read refuses what ckpt_write saved of an accepted checkpoint");
    const char *diff = ckpt_difference(c, &back);
    if (diff) {
        fprintf(stderr, "fuzz_ckpt: written and read back, %s differs\n", diff);
        broken("ckpt", "an accepted checkpoint does not survive ckpt_write and ckpt_read");
    }
    ckpt_free(&back);
    unlink(path);
}

int fuzz_ckpt(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path;
    if (data[0] & 1) {
        path = write_scratch(data + 1, size - 1);
    } else {
        static Recipe r; /* too large for the stack of libFuzzer's worker */
        base_recipe(&r);
        if (data[0] & 2)
            add_data_attrs(&r);
        const uint8_t *p = data + 1, *end = data + size;
        while (end - p >= 4 && r.n > 0)
            mutate(&r, &p, end);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        path = write_recipe(&r);
    }
    Ckpt c;
    char err[8192];
    err[0] = '\0';
    /* In this process, not in h5guard's child: libFuzzer needs the reader's coverage and the crash where it
     * happens. The guard itself is fuzzed through the binary (ondisk.py). */
    h5guard_set_inline(1);
    int rc = ckpt_read(path, &c, err, sizeof err), outcome = FUZZ_REFUSED;
    verbose("ckpt_read", err);
    if (rc == 0) {
        check_accepted(&c);
        outcome = fit_to_model(&c) ? FUZZ_FITTED : FUZZ_ACCEPTED;
        ckpt_free(&c);
    } else if (!err[0]) {
        abort(); /* a refusal must say why */
    }
    unlink_scratch();
    return outcome;
}

/* ---------------------------------------------------------------- data files: HDF5, CSV, CIFAR-10 */

/* A DataSpec of kind `kind` with every argument at its default; strings duplicated (data_spec_clear frees them). */
static void data_defaults(DataSpec *ds, int kind)
{
    const DataKindOps *ops = data_kinds[kind];
    memset(ds, 0, sizeof *ds);
    ds->id = kind;
    snprintf(ds->kind, sizeof ds->kind, "%s", ops->name);
    for (int k = 0; k < ops->nargs; k++) {
        const ArgSpec *a = &ops->args[k];
        if (a->type == AT_STR || a->type == AT_SHAPE)
            ds->arg[k].str = strdup(a->sdef ? a->sdef : "");
        else
            ds->arg[k].num = a->def;
    }
}

static void data_set(DataSpec *ds, const char *key, const char *str, double num)
{
    int k = data_arg_index(ds, key);
    if (k < 0)
        abort();
    if (str) {
        free(ds->arg[k].str);
        ds->arg[k].str = strdup(str);
    } else {
        ds->arg[k].num = num;
    }
    ds->given |= 1u << k;
}

/* Touches every value of d (ASan sees a short buffer) and checks its labels. */
static void touch(const Dataset *d)
{
    size_t n = (size_t)d->count * dataset_item_size(d);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += d->dtype == DT_U8 ? d->pixels[i] : (unsigned)(d->values[i] != d->values[i]);
    for (int i = 0; d->labels && i < d->count; i++)
        if (d->labels[i] < 0 || d->labels[i] >= d->classes)
            abort();
    if (sum == 0xffffffffu)
        abort();
}

/* The probe, then each split loaded as training loads it: in memory and, for a kind that can, streamed; a streamed
 * set must read back exactly the items in memory (the promise of identical runs). Returns ACCEPTED when the probe
 * and every split succeeded, else REFUSED. */
static int load_kind(DataSpec *ds)
{
    int outcome = FUZZ_ACCEPTED;
    char err[4096] = "";
    int rc = data_probe(ds, err, sizeof err);
    verbose("probe", err);
    if (rc < 0 && !err[0])
        abort(); /* a refusal must say why */
    for (int split = 0; rc == 0 && split < 1 + ds->has_test; split++) {
        Dataset mem, str;
        err[0] = '\0';
        if (data_kinds[ds->id]->load(ds, split, split ? 0 : 50, 0, &mem, err, sizeof err) < 0) {
            verbose("load", err);
            if (!err[0])
                abort();
            outcome = FUZZ_REFUSED;
            continue;
        }
        touch(&mem);
        if (data_kinds[ds->id]->can_stream && data_kinds[ds->id]->load(ds, split, split ? 0 : 50, 1, &str, err,
                                                                         sizeof err) == 0) {
            size_t bytes = dataset_item_size(&mem) * (mem.dtype == DT_U8 ? 1 : sizeof(float));
            int *ids = malloc((size_t)str.count * sizeof *ids);
            char *buf = malloc((size_t)str.count * bytes + 1);
            for (int i = 0; i < str.count; i++)
                ids[i] = str.count - 1 - i; /* backwards: any order reads the same items */
            if (str.count != mem.count || stream_read(str.stream, ids, str.count, buf, err, sizeof err) < 0)
                abort();
            for (int i = 0; i < str.count; i++)
                if (memcmp(buf + (size_t)i * bytes,
                           (mem.dtype == DT_U8 ? (char *)mem.pixels : (char *)mem.values) + (size_t)ids[i] * bytes,
                           bytes) != 0 ||
                    str.labels[i] != mem.labels[i])
                    abort();
            free(ids), free(buf);
            dataset_free(&str);
        }
        dataset_free(&mem);
    }
    return rc == 0 ? outcome : FUZZ_REFUSED;
}

/* The data file every hdf5 recipe starts from: 6 training and 3 test items of 1x4x4 bytes, labels 0-2, names. */
static void base_data_recipe(Recipe *r)
{
    static const int x6[4] = {6, 1, 4, 4}, x3[4] = {3, 1, 4, 4}, n6[1] = {6}, n3[1] = {3};
    memset(r, 0, sizeof *r);
    r->crt_order = 1;
    Ent *c = add(r, K_ATTR, "@classes", T_STR, 0);
    snprintf(c->str, sizeof c->str, "cat");
    c->rank = 1, c->dims[0] = 3;
    add(r, K_GROUP, "train", 0, 0);
    add(r, K_GROUP, "test", 0, 0);
    add_data(r, "train/x", T_U8, 3, 7, 4, x6);
    add_data(r, "train/y", T_I64, 0, 0.4, 1, n6);
    add_data(r, "test/x", T_U8, 5, 11, 4, x3);
    add_data(r, "test/y", T_I32, 2, -1, 1, n3);
}

int fuzz_h5data(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path;
    if (data[0] & 1) {
        path = write_scratch(data + 1, size - 1);
    } else {
        static Recipe r;
        base_data_recipe(&r);
        const uint8_t *p = data + 1, *end = data + size;
        while (end - p >= 4 && r.n > 0)
            mutate(&r, &p, end);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        path = write_recipe(&r);
    }
    DataSpec ds;
    data_defaults(&ds, DK_HDF5);
    data_set(&ds, "path", path, 0);
    data_set(&ds, "layout", data[0] & 2 ? "nhwc" : "nchw", 0);
    int outcome = load_kind(&ds);
    data_spec_clear(&ds);
    unlink_scratch();
    return outcome;
}

/* byte 0: bit 0 a header row, bit 1 the label by column number, bits 2-3 the column (1, 2, last, or "label"). */
int fuzz_csv(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = write_scratch(data + 1, size - 1);
    DataSpec ds;
    static const char *const labels[4] = {"1", "2", "3", "label"};
    data_defaults(&ds, DK_CSV);
    data_set(&ds, "train", path, 0);
    data_set(&ds, "header", NULL, data[0] & 1);
    data_set(&ds, "label", data[0] & 2 ? labels[(data[0] >> 2) & 3] : "label", 0);
    int outcome = load_kind(&ds);
    data_spec_clear(&ds);
    unlink_scratch();
    return outcome;
}

/* A CIFAR-10 directory of small valid files, one of which (byte 0: data_batch_3.bin, test_batch.bin or
 * batches.meta.txt) is the rest of the input. */
int fuzz_cifar(const uint8_t *data, size_t size)
{
    static char dir[80];
    static const char *const files[3] = {"data_batch_3.bin", "test_batch.bin", "batches.meta.txt"};
    if (size < 1)
        return 0;
    if (!dir[0])
        snprintf(dir, sizeof dir, "%s.d", scratch());
    mkdir(dir, 0700); /* removed after each input, as the other targets' scratch files are */
    char path[160];
    uint8_t rec[3073];
    memset(rec, 7, sizeof rec);
    for (int k = 1; k <= 5; k++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, k);
        rec[0] = (uint8_t)k;
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(rec, 1, sizeof rec, f) != sizeof rec || fclose(f) != 0)
            abort();
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(rec, 1, sizeof rec, f) != sizeof rec || fclose(f) != 0)
        abort();
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, files[data[0] % 3]);
    if (!(f = fopen(path, "wb")) || (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) || fclose(f) != 0)
        abort();
    DataSpec ds;
    data_defaults(&ds, DK_CIFAR10);
    data_set(&ds, "path", dir, 0);
    int outcome = load_kind(&ds);
    data_spec_clear(&ds);
    for (int k = 1; k <= 6; k++) {
        snprintf(path, sizeof path, k <= 5 ? "%s/data_batch_%d.bin" : "%s/test_batch.bin", dir, k);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/batches.meta.txt", dir);
    unlink(path);
    rmdir(dir);
    return outcome;
}
