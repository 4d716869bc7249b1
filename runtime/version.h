/* bnni's version, one place for the command line (bnni --version) and the checkpoints (bnni_version). */
#ifndef BNNI_VERSION_H
#define BNNI_VERSION_H

#define BNNI_VERSION "0.1.0"

#endif
