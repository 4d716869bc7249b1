/* Running gnuplot (gnuplot.h). The script is composed in memory first, so a plot kind never leaves half a figure:
 * gnuplot then reads it on a pipe and writes into a temporary file in the output's directory, which is renamed
 * over the output once gnuplot has exited with status 0. gnuplot's messages are kept in a temporary file and the
 * first error line becomes ours. SIGPIPE is ignored while the script is written (gnuplot may exit early). */
#include "gnuplot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Okabe & Ito's palette (distinguishable with colour blindness), then four more. */
static const char *const palette[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00",
                                      "#56b4e9", "#000000", "#f0e442", "#7f7f7f", "#8c564b"};

const char *gp_color(int k) { return palette[(k % 10 + 10) % 10]; }

int gp_format(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot || strchr(dot, '/'))
        return -1;
    return strcasecmp(dot, ".png") == 0 ? GP_PNG : strcasecmp(dot, ".svg") == 0 ? GP_SVG
                                                    : strcasecmp(dot, ".pdf") == 0 ? GP_PDF : -1;
}

const char *gp_num(double v, char *buf, size_t len)
{
    snprintf(buf, len, isfinite(v) ? "%.10g" : "NaN", v);
    return buf;
}

const char *gp_quote(const char *s, char *buf, size_t len)
{
    size_t k = 0;
    for (; *s && k + 3 < len; s++) {
        if (*s == '\'')
            buf[k++] = '\'';
        buf[k++] = *s == '\n' ? ' ' : *s;
    }
    buf[k] = '\0';
    return buf;
}

/* The temporary file beside out: ".NAME.PID.XXXXXX" (its name in tmp). Returns 0 or -1 with err. */
static int temp_beside(const char *out, char *tmp, size_t len, char *err, size_t errlen)
{
    const char *slash = strrchr(out, '/');
    int dl = slash ? (int)(slash - out) + 1 : 0;
    snprintf(tmp, len, "%.*s.%s.%ld.XXXXXX", dl, out, slash ? slash + 1 : out, (long)getpid());
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a file beside it: %s", out, strerror(errno));
        tmp[0] = '\0';
        return -1;
    }
    mode_t mask = umask(0); /* mkstemp's 0600 would stay with the renamed plot */
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    close(fd);
    return 0;
}

int gp_open(Gp *g, const char *out_path, int width, int height, char *err, size_t errlen)
{
    char q[8192];
    memset(g, 0, sizeof *g);
    int f = gp_format(out_path);
    if (f < 0) {
        snprintf(err, errlen, "%s: the plot's name must end in .png, .svg or .pdf", out_path);
        return -1;
    }
    g->format = (GpFormat)f;
    if (!(g->out = strdup(out_path)) || !(g->s = open_memstream(&g->text, &g->len))) {
        snprintf(err, errlen, "out of memory");
        gp_free(g);
        return -1;
    }
    if (temp_beside(out_path, g->tmp, sizeof g->tmp, err, errlen) < 0) {
        gp_free(g);
        return -1;
    }
    if (f == GP_PNG)
        fprintf(g->s, "set terminal pngcairo size %d,%d noenhanced font 'DejaVu Sans,10' linewidth 1.2\n", width,
                height);
    else if (f == GP_SVG)
        fprintf(g->s, "set terminal svg size %d,%d noenhanced font 'DejaVu Sans,10' linewidth 1.2 "
                "background '#ffffff'\n", width, height);
    else
        fprintf(g->s, "set terminal pdfcairo size %.2fin,%.2fin noenhanced font 'DejaVu Sans,8' linewidth 1.2\n",
                width / 96.0, height / 96.0);
    fprintf(g->s, "set output '%s'\n", gp_quote(g->tmp, q, sizeof q));
    fprintf(g->s, "set encoding utf8\nset grid lc rgb '#dddddd'\nset border lc rgb '#444444'\n");
    return 0;
}

int gp_data_begin(Gp *g)
{
    fprintf(g->s, "$d%d << EOD\n", g->ndata);
    return g->ndata++;
}

void gp_data_end(Gp *g) { fprintf(g->s, "EOD\n"); }

void gp_free(Gp *g)
{
    if (g->s)
        fclose(g->s);
    if (g->tmp[0])
        unlink(g->tmp);
    free(g->text);
    free(g->out);
    memset(g, 0, sizeof *g);
}

/* The first line of gnuplot's messages that reports an error (else the last one), trimmed, into err. */
static void gnuplot_error(FILE *msgs, char *err, size_t errlen)
{
    char line[1024], last[1024] = "";
    rewind(msgs);
    while (fgets(line, sizeof line, msgs)) {
        char *p = line + strspn(line, " \t^");
        p[strcspn(p, "\n")] = '\0';
        if (!*p)
            continue;
        snprintf(last, sizeof last, "%s", p);
        if (strstr(p, "error") || strncmp(p, "line ", 5) == 0)
            break;
    }
    snprintf(err, errlen, "gnuplot failed: %s", last[0] ? last : "no message");
}

/* Runs gnuplot with the script on its stdin and its messages into msgs; returns its wait status, or -1 (err). */
static int run_gnuplot(const char *script, size_t len, FILE *msgs, char *err, size_t errlen)
{
    int p[2];
    if (pipe(p) < 0) {
        snprintf(err, errlen, "cannot start gnuplot: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[0], 0), dup2(fileno(msgs), 1), dup2(fileno(msgs), 2);
        close(p[0]), close(p[1]);
        execlp("gnuplot", "gnuplot", (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    if (pid < 0) {
        close(p[1]);
        snprintf(err, errlen, "cannot start gnuplot: %s", strerror(errno));
        return -1;
    }
    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    for (size_t done = 0; done < len;) {
        ssize_t w = write(p[1], script + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* gnuplot exited: its status says why */
        done += (size_t)w;
    }
    close(p[1]);
    sigaction(SIGPIPE, &old, NULL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

int gp_render(Gp *g, char *err, size_t errlen)
{
    int rc = -1;
    FILE *msgs = tmpfile();
    if (!msgs) {
        snprintf(err, errlen, "cannot create a temporary file: %s", strerror(errno));
        gp_free(g);
        return -1;
    }
    fprintf(g->s, "unset multiplot\nset output\n");
    fflush(g->s);
    int st = run_gnuplot(g->text, g->len, msgs, err, errlen);
    if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 127)
        snprintf(err, errlen, "cannot run gnuplot, which draws bnni's plots (Debian: apt-get install gnuplot-nox)");
    else if (st >= 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        gnuplot_error(msgs, err, errlen);
    else if (st >= 0 && rename(g->tmp, g->out) < 0)
        snprintf(err, errlen, "%s: cannot write: %s", g->out, strerror(errno));
    else if (st >= 0)
        rc = 0, g->tmp[0] = '\0';
    fclose(msgs);
    gp_free(g);
    return rc;
}
