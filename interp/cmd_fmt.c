/* placeholder */
#include <stdio.h>
#include "cmd.h"
const char cmd_fmt_usage[] = "usage: bnni fmt\n";
int cmd_fmt(int argc, char **argv) { (void)argc, (void)argv; return 2; }
