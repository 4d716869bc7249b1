/* bnni's entry point: dispatches to the subcommands and owns the process exit status.
 * Only this file and the cmd_* functions it calls decide what the user sees last. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "diag.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} Command;


static const Command commands[] = {
    {"check", cmd_check, "parse and check a model, print its layers and parameter counts", cmd_check_usage},
    {"train", cmd_train, "train a model, writing HDF5 checkpoints", cmd_train_usage},
    {"eval", cmd_eval, "evaluate a checkpoint on the test set", cmd_eval_usage},
    {"inspect", cmd_inspect, "show what a checkpoint holds", cmd_inspect_usage},
    {"predict", cmd_predict, "classify images (IDX or PGM) with a checkpoint", cmd_predict_usage},
    {"export", cmd_export, "write a checkpoint as ONNX or an inference-only checkpoint", cmd_export_usage},
    {"fmt", cmd_fmt, "print a model file in the canonical layout (--check, -w)", cmd_fmt_usage},
    {"sweep", cmd_sweep, "train a grid of settings x seeds, resumable; table, CSV and plot", cmd_sweep_usage},
    {"plot", cmd_plot, "draw runs, traces or a sweep with gnuplot (PNG, SVG, PDF)", cmd_plot_usage},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char help_usage[] =
    "usage: bnni help [COMMAND]\n"
    "\n"
    "Without a command, lists the commands; with one, prints its usage, every option and an example\n"
    "(the same as bnni COMMAND --help).\n"
    "\n"
    "exit status: 0 ok, 2 unknown command\n"
    "example: bnni help train\n";

static const Command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* "unknown command 'trian' (did you mean 'train'?)", on stderr; returns the usage status 2. */
static int unknown_command(const char *name)
{
    const char *names[NCOMMANDS + 2];
    for (size_t i = 0; i < NCOMMANDS; i++)
        names[i] = commands[i].name;
    names[NCOMMANDS] = "help", names[NCOMMANDS + 1] = "version";
    const char *sug = diag_suggest(name, names, (int)NCOMMANDS + 2);
    if (sug)
        fprintf(stderr, "bnni: error: unknown command '%s' (did you mean '%s'?)\n", name, sug);
    else
        fprintf(stderr, "bnni: error: unknown command '%s' (see 'bnni --help')\n", name);
    return 2;
}

int cmd_help(const char *command)
{
    if (command && strcmp(command, "help") == 0) {
        fputs(help_usage, stdout);
        return 0;
    }
    if (command) {
        const Command *c = find(command);
        if (!c)
            return unknown_command(command);
        fputs(c->usage, stdout);
        return 0;
    }
    printf("bnni %s - train neural networks described in .bnn files\n\n"
           "usage: bnni COMMAND [ARGS...]\n\ncommands:\n",
           BNNI_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %-8s %s\n", commands[i].name, commands[i].summary);
    printf("  %-8s %s\n\n", "help", "show the help of a command: bnni help COMMAND");
    printf("exit status: 0 ok, 1 bad input, 2 usage error, 3 training diverged, 130/143 interrupted\n"
           "documentation: docs/language.md, docs/checkpoint.md, docs/errors.md\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "bnni: error: no command given\nusage: bnni COMMAND [ARGS...]   (bnni --help lists the commands)\n");
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cmd_help(NULL);
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("bnni %s\n", BNNI_VERSION);
        return 0;
    }
    if (strcmp(name, "help") == 0)
        return cmd_help(argc > 2 ? argv[2] : NULL);
    const Command *c = find(name);
    if (!c)
        return unknown_command(name);
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return cmd_help(name);
    return c->run(argc - 2, argv + 2);
}
