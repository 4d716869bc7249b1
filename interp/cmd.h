/* The subcommands of bnni. Each takes the arguments after its name and returns the process exit status:
 * 0 ok, 1 bad input, 2 usage, 3 diverged, 130/143 interrupted (docs/errors.md). */
#ifndef BNNI_CMD_H
#define BNNI_CMD_H

int cmd_check(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_fmt(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
/* Prints the help text of one command (NULL: the overview) to stdout; returns 0, or 2 for an unknown command. */
int cmd_help(const char *command);

/* Parses a memory size for --mem-cap: a positive whole number of bytes, optionally followed by K, M, G or T
 * (binary multiples: 512M is 512 x 2^20). Returns 0 and *v, or -1. */
int cmd_parse_bytes(const char *s, unsigned long long *v);

/* Each command's help text (its usage line, options and an example), printed by `bnni help COMMAND`. */
extern const char cmd_check_usage[];
extern const char cmd_train_usage[];
extern const char cmd_eval_usage[];
extern const char cmd_inspect_usage[];
extern const char cmd_predict_usage[];
extern const char cmd_export_usage[];
extern const char cmd_fmt_usage[];
extern const char cmd_plot_usage[];
extern const char cmd_sweep_usage[];

#include "../runtime/version.h"

#endif
