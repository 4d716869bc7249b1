# bnni — build, test and run. `make train` and `make test` are the README's two commands:
# each installs the Debian packages it needs (apt-get, via sudo when not root), builds, then runs.

ifeq ($(origin CC),default)
  CC     = gcc
endif
MARCH    ?= -march=native
OPT      ?= -O3
SANITIZE ?= 0
BUILD    ?= build

PKGS      = gcc make flex bison pkg-config libhdf5-dev hdf5-tools libopenblas-pthread-dev zlib1g-dev \
            libcriterion-dev dataset-fashion-mnist time libcsv-dev libpng-dev libjpeg-dev libstb-dev \
            python3-h5py python3-numpy gnuplot-nox \
            protobuf-c-compiler libprotobuf-c-dev libonnx-dev python3-onnx nodejs mandoc man-db
# bnni export writes ONNX through the official schema: Debian's libonnx-dev ships onnx.proto, protoc-c compiles it
# to C at build time and libprotobuf-c serialises it. The tests check exports in onnxruntime-node (npm, installed
# into tests/ort/ by `make deps` with the CPU binaries inside the package) and with python3-onnx's checker;
# bnni plot draws with gnuplot (gnuplot-nox: no X11). examples/classify.c reads PNG with libpng; mandoc lints the man pages and man-db renders them.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
ORT_VERSION = 1.30.0
ORT_DIR     = tests/ort
# OpenBLAS's pthread build, linked by path with an rpath so that Debian's libopenblas.so.0 alternative cannot swap
# in another at run time: bnni calls sgemm from several OpenMP threads at once, which the pthread build allows
# (its serial build does not: it shares buffers between calls, and results changed from run to run). Its own
# worker threads are shut down by rt_set_threads (runtime/threads.c).
BLAS_PC    = PKG_CONFIG_PATH=/usr/lib/$(shell gcc -print-multiarch 2>/dev/null)/openblas-pthread/pkgconfig
BLAS_DIR  := $(shell $(BLAS_PC) pkg-config --variable=libdir openblas 2>/dev/null)
PKG_CFLAGS := $(shell $(BLAS_PC) pkg-config --cflags hdf5 openblas libprotobuf-c 2>/dev/null)
PKG_LIBS   := $(shell $(BLAS_PC) pkg-config --libs hdf5 openblas 2>/dev/null) -Wl,-rpath,$(BLAS_DIR)
PROTOBUF_LIBS := $(shell pkg-config --libs libprotobuf-c 2>/dev/null)

WARN     = -Wall -Wextra -Werror -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(MARCH) -g $(WARN) -MMD -MP \
           -I. -I$(BUILD)/gen $(PKG_CFLAGS)
# The data kinds: libcsv (csv), libpng and libjpeg (images), stb's resizer (images; pkg-config stb).
PKG_CFLAGS += $(shell pkg-config --cflags libpng stb 2>/dev/null)
DATA_LIBS = $(shell pkg-config --libs libpng stb 2>/dev/null) -lcsv -ljpeg
LDLIBS  += $(PKG_LIBS) $(DATA_LIBS) -lz -lm
# Every object is position-independent, so the same objects make the static tools and libbnni.so, and hidden
# unless marked (lib/bnni.c's BNNI_API), so the library exports only its API and hidden calls stay direct.
CFLAGS  += -fPIC -fvisibility=hidden
# The layers split each batch across OpenMP threads (runtime/threads.h).
CFLAGS  += -fopenmp
# No code of bnni reads errno after a math function; with it, sqrtf stays a scalar call with a library fallback,
# which kept Adam's loop from vectorising (cnn_relu: 1.5 -> 0.2 ms a step). Results are the same: IEEE's
# correctly rounded square root either way.
CFLAGS  += -fno-math-errno
LDFLAGS += -fopenmp

ifeq ($(SANITIZE),1)
  BUILD   = build-san
  OPT     = -O1
  MARCH   =
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

# AVX2=1: the kernels' 8-lane build (AVX2 + FMA, runtime/layers/simd.h), for CPUs without AVX-512, in build-avx2/;
# `make test` runs the suite there too, so that every kernel path is tested on an AVX-512 machine.
ifeq ($(AVX2),1)
  BUILD   = build-avx2
  MARCH   = -march=x86-64-v3
endif

# `make fuzz` (tests/fuzz/README.md) builds the library again with clang, libFuzzer's coverage and ASan+UBSan
# (FUZZ=1, in build-fuzz/), then runs each of FUZZ_TARGETS for FUZZ_SECONDS.
FUZZ_TARGETS ?= bnn idx ckpt h5data csv cifar
FUZZ_SECONDS ?= 60
FUZZ_MAXLEN_bnn  = 16384
FUZZ_MAXLEN_idx  = 8192
FUZZ_MAXLEN_ckpt = 4096
FUZZ_MAXLEN_h5data = 8192
FUZZ_MAXLEN_csv  = 4096
FUZZ_MAXLEN_cifar = 8192
FUZZ_FLAGS_bnn   = -dict=tests/fuzz/bnn.dict
# Targets that read HDF5 unwind every allocation in full, so that the suppressions of libhdf5's own leaks on damaged
# files (tests/fuzz/lsan.supp) see the frames they name.
FUZZ_ENV_h5data  = ASAN_OPTIONS=fast_unwind_on_malloc=0
FUZZ_ENV_ckpt    = ASAN_OPTIONS=fast_unwind_on_malloc=0
ifeq ($(FUZZ),1)
  BUILD   = build-fuzz
  CC      = clang
  OPT     = -O1
  MARCH   =
  CFLAGS += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

# MPI=1: the data-parallel binary ./bnni-mpi (docs/distributed.md), which links runtime/dist_mpi.c, the one file
# that calls MPI, over the system's MPI (Debian's mpi-c: Open MPI), in build-mpi/ (build-san-mpi/ ... with the
# switches above); `make MPI=1 deps` installs Open MPI. A plain build links runtime/dist_serial.c instead: one
# rank, and no MPI dependency at all. MPI's headers are system headers here: our warnings are not for them.
ifeq ($(MPI),1)
  BUILD   := $(BUILD)-mpi
  PKGS    += libopenmpi-dev openmpi-bin
  CFLAGS  += $(patsubst -I%,-isystem %,$(shell pkg-config --cflags mpi-c 2>/dev/null))
  LDLIBS  += $(shell pkg-config --libs mpi-c 2>/dev/null)
  DIST_SRC = runtime/dist_mpi.c
else
  DIST_SRC = runtime/dist_serial.c
endif

GEN_SRC  = $(BUILD)/gen/lexer.c $(BUILD)/gen/parser.c $(BUILD)/gen/onnx/onnx.pb-c.c
GEN_HDR  = $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h $(BUILD)/gen/onnx/onnx.pb-c.h
LIB_SRC  = $(filter-out interp/main.c,$(wildcard interp/*.c)) \
           $(filter-out runtime/dist_mpi.c runtime/dist_serial.c,$(wildcard runtime/*.c)) $(DIST_SRC) \
           $(wildcard runtime/layers/*.c runtime/data/*.c runtime/export/*.c lib/*.c runtime/plot/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_SRC:.c=.o)
# The public library (lib/bnni.h): inference only, so without the commands, the exporters (and protobuf-c) and
# the plots.
PUB_OBJ  = $(filter-out $(BUILD)/interp/cmd_% $(BUILD)/runtime/export/% $(BUILD)/runtime/plot/% $(BUILD)/gen/onnx/%,\
             $(LIB_OBJ))
VERSION  = $(shell sed -n 's/^\#define BNNI_VERSION "\(.*\)"/\1/p' runtime/version.h)
SONAME   = libbnni.so.$(firstword $(subst ., ,$(VERSION)))
TEST_SRC = $(wildcard tests/test_*.c)
# Test support code shared by several test files (tests/gradcheck.c), linked into run_tests.
TEST_LIB_SRC = $(filter-out tests/test_%.c,$(wildcard tests/*.c))
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o) $(TEST_LIB_SRC:%.c=$(BUILD)/%.o)
BIN      = bnni
ifneq ($(filter 1,$(SANITIZE) $(AVX2)),)
  BIN    = $(BUILD)/bnni
else ifeq ($(MPI),1)
  BIN    = bnni-mpi
endif

# The MPI build of the same switches, which `make bench` runs beside $(BIN) (bench/dist.sh).
ifneq ($(filter 1,$(SANITIZE) $(AVX2)),)
  MPI_BIN = $(patsubst %-mpi,%,$(BUILD))-mpi/bnni
else
  MPI_BIN = bnni-mpi
endif

.PHONY: all deps train test run-tests run-dist-tests sanitize clean bench fuzz fuzz-ondisk build-race mutate lib \
        install uninstall install-check
all: $(BIN) lib
lib: $(BUILD)/libbnni.so.$(VERSION) $(BUILD)/libbnni.a

# Installs whatever of $(PKGS) dpkg does not list as installed.
deps:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi
	@command -v npm >/dev/null || { SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q npm; }
	@[ -d $(ORT_DIR)/node_modules/onnxruntime-node ] || { echo "installing onnxruntime-node $(ORT_VERSION) into $(ORT_DIR)"; \
	  npm install --prefix $(ORT_DIR) --ignore-scripts --no-save --no-package-lock --no-audit --no-fund \
	    onnxruntime-node@$(ORT_VERSION); }

# One run of bison makes both files, one of flex both of its: grouped targets (&:), or a parallel make would run
# each tool once per file, two at a time, and write a corrupt parser.c (tests/build_race.sh checks it).
$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h &: grammar/parser.y
	@mkdir -p $(@D)
	bison -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h &: grammar/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(@D)
	flex --header-file=$(BUILD)/gen/lexer.h -o $(BUILD)/gen/lexer.c $<

# The ONNX schema's C code, from the onnx.proto Debian ships (one run makes both files).
$(BUILD)/gen/onnx/onnx.pb-c.c $(BUILD)/gen/onnx/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(patsubst %/onnx/onnx.proto,%,$(ONNX_PROTO)) --c_out=$(BUILD)/gen onnx/onnx.proto

# Generated code is not ours to keep -Wextra-clean.
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -Wno-error -Wno-unused-function -Wno-sign-compare -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/%.o: %.c | $(GEN_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Everything but main, for bnni itself, the tests and the benchmarks (internal symbols included). The public
# static library below owns the name libbnni.a.
$(BUILD)/libbnni_core.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/interp/main.o $(BUILD)/libbnni_core.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PROTOBUF_LIBS)

# Every Test() enters its body through tests/leakcheck.c, which checks for leaks before the test ends (SANITIZE=1).
$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libbnni_core.a
	$(CC) $(LDFLAGS) -Wl,--wrap=criterion_internal_test_main -o $@ $^ $(LDLIBS) $(PROTOBUF_LIBS) -lcriterion

# libbnni.so: only bnni_* in its dynamic symbol table (lib/bnni.map); a soname of the major version.
$(BUILD)/libbnni.so.$(VERSION): $(PUB_OBJ) lib/bnni.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/bnni.map -Wl,--no-undefined \
	  -o $@ $(PUB_OBJ) $(LDLIBS)

# libbnni.a: the same objects linked into one, whose hidden symbols are made local, so a program that links it
# statically sees only bnni_* too (and cannot clash with the runtime's names).
$(BUILD)/libbnni.a: $(PUB_OBJ)
	$(LD) -r -o $(BUILD)/libbnni-all.o $(PUB_OBJ)
	objcopy --localize-hidden $(BUILD)/libbnni-all.o
	@rm -f $@
	ar rcs $@ $(BUILD)/libbnni-all.o

# Per-layer timing of LeNet-BN at batch 128, 1 and 2 threads (bench/README.md).
$(BUILD)/layer_bench: $(BUILD)/bench/layer_bench.o $(BUILD)/libbnni_core.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PROTOBUF_LIBS)

# What a checkpoint costs to save and load (bench/README.md).
$(BUILD)/ckpt_bench: $(BUILD)/bench/ckpt_bench.o $(BUILD)/libbnni_core.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(PROTOBUF_LIBS)

# Kept, so a second `make fuzz` does not relink.
.PRECIOUS: $(BUILD)/tests/fuzz/main_%.o
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/main_%.o $(BUILD)/tests/fuzz/targets.o $(BUILD)/libbnni_core.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) $(PROTOBUF_LIBS)

# New finds go to build-fuzz/corpus/<target>/ and crashes to build-fuzz/crash/; the committed seed corpus
# (tests/fuzz/corpus/<target>/) only grows by hand, minimised (tests/fuzz/README.md). Each target runs its
# whole FUZZ_SECONDS even after a crash (fork mode), and `make fuzz` fails at the end if any run found one.
fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@mkdir -p $(FUZZ_TARGETS:%=build-fuzz/corpus/%) build-fuzz/crash && touch build-fuzz/crash/.start
	$(foreach t,$(FUZZ_TARGETS),LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp $(FUZZ_ENV_$(t)) \
	  nice -n 10 ./build-fuzz/fuzz_$(t) -fork=1 -ignore_crashes=1 -ignore_ooms=1 \
	  -ignore_timeouts=1 -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAXLEN_$(t)) $(FUZZ_FLAGS_$(t)) \
	  -timeout=10 -artifact_prefix=build-fuzz/crash/$(t)- build-fuzz/corpus/$(t) tests/fuzz/corpus/$(t) &&) true
	@new=$$(find build-fuzz/crash -type f -newer build-fuzz/crash/.start); \
	if [ -n "$$new" ]; then echo "fuzz: inputs that crash, leak, hang or run out of memory:"; echo "$$new"; exit 1; fi

# tests/fuzz/ondisk.py (tests/fuzz/README.md): damaged copies of real checkpoints through `bnni inspect` and
# `bnni eval`, as a user runs them, for ONDISK_MINUTES; findings go to build-fuzz/ondisk/findings/.
# `make SANITIZE=1 fuzz-ondisk` runs the ASan+UBSan binary.
ONDISK_MINUTES ?= 30
fuzz-ondisk:
	@$(MAKE) --no-print-directory $(BIN)
	nice -n 10 /usr/bin/python3 tests/fuzz/ondisk.py --bnni ./$(BIN) --minutes $(ONDISK_MINUTES)

# The README's main command.
train: deps
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN) train models/lenet_bn.bnn

# One run of the suite in $(BUILD); the end-to-end tests run the binary $(BIN). Waiting threads spin (the
# runtime's team, and OpenMP's in the image loader), which costs 10x when the suite's parallel jobs share two
# cores, so tests wait passively: OMP_WAIT_POLICY=passive, which the team honours too (results do not depend on
# it). Sanitizer reports of every process (the runner, each test's worker, every bnni it starts) go to
# $(BUILD)/sanitizer/report.PID; any such file fails the run after printing it, also when every test passed (a leak
# found at a process's exit, which Criterion does not judge: tests/leakcheck.c).
# tests/lsan.supp and tests/leakcheck.c say what is suppressed (only BoxFort's leak in the runner); the list of
# suppressions used is not printed, since it would be a report file of its own.
run-tests:
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN) $(BUILD)/run_tests
	@rm -rf $(BUILD)/sanitizer && mkdir -p $(BUILD)/sanitizer
	BNNI=./$(BIN) OMP_WAIT_POLICY=passive \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0:log_path=$(CURDIR)/$(BUILD)/sanitizer/report \
	  ./$(BUILD)/run_tests -j2; rc=$$?; \
	if ls $(BUILD)/sanitizer/report.* >/dev/null 2>&1; then \
	  cat $(BUILD)/sanitizer/report.*; echo "run-tests: sanitizer reports in $(BUILD)/sanitizer/ (above)"; rc=1; \
	fi; exit $$rc

# The data-parallel tests (tests/test_dist.c, the suite's dist/* tests): ./bnni-mpi under mpirun with 2 and 3 ranks,
# against the plain ./bnni as the single-process reference. Installs Open MPI first (make MPI=1 deps). One test at
# a time: each runs up to three ranks on this machine's cores.
run-dist-tests:
	@$(MAKE) --no-print-directory MPI=1 deps
	@$(MAKE) --no-print-directory -j$(JOBS) MPI=1 bnni-mpi
	@$(MAKE) --no-print-directory -j$(JOBS) MPI=0 bnni build/run_tests
	BNNI=./bnni BNNI_MPI_BIN=./bnni-mpi OMP_WAIT_POLICY=passive ./build/run_tests -j1 --filter 'dist/*'

# The README's test command: three clean parallel builds (build-race); the whole suite; again built for AVX2
# (AVX2=1) where the CPU has it; and again under ASan+UBSan+LSan (SANITIZE=1 builds without -march=native). So the
# kernels' AVX-512 path (on such a CPU), their AVX2 path and their plain C are each tested. Between them, the
# data-parallel tests with the MPI build (run-dist-tests) and the install check. The last line says which
# suites ran: a CPU without AVX2+FMA cannot run the AVX2 build, and the summary says SKIPPED rather than passing
# quietly.
HAS_AVX2 = grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo
# The suites' builds run in parallel, one job per core (make build-race shows parallel builds are safe).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	@$(MAKE) --no-print-directory build-race
	@$(MAKE) --no-print-directory run-tests
	@$(MAKE) --no-print-directory run-dist-tests
	@$(MAKE) --no-print-directory install-check
	@if $(HAS_AVX2); then $(MAKE) --no-print-directory AVX2=1 run-tests; \
	else echo "make test: no AVX2+FMA on this CPU: the AVX2 build's suite is SKIPPED"; fi
	@$(MAKE) --no-print-directory SANITIZE=1 run-tests
	@if $(HAS_AVX2); then echo "make test: passed: the native, AVX2 and sanitizer suites"; \
	else echo "make test: passed: the native and sanitizer suites; SKIPPED: the AVX2 suite (no AVX2+FMA here)"; fi

# A clean `make -j8` three times, in a scratch copy: bison and flex must run once each (tests/build_race.sh).
build-race:
	bash tests/build_race.sh 3 8

sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 run-tests

# The mutation check (tests/mutate.sh): each deliberate bug of tests/mutants.txt applied to a scratch copy of the
# tree, built and run against the suite until its first failure; fails unless every one is caught. Not part of
# `make test`: it takes 40 to 60 minutes. MUTANT=REGEX runs only the mutants whose description matches REGEX.
mutate: deps
	bash tests/mutate.sh

# The performance benchmark (bench/README.md): PyTorch reference, sgemm probe and bnni side by side, and the MPI
# build's 2 ranks against 2 threads (Open MPI installed first).
bench: deps
	@$(MAKE) --no-print-directory $(BIN) $(BUILD)/layer_bench
	@$(MAKE) --no-print-directory MPI=1 deps
	@$(MAKE) --no-print-directory MPI=1 $(MPI_BIN)
	BUILD=$(BUILD) BNNI=./$(BIN) BNNI_MPI_BIN=./$(MPI_BIN) bash bench/run.sh

clean:
	rm -rf build build-san build-avx2 build-fuzz build-mpi build-san-mpi build-avx2-mpi bnni bnni-mpi

# Installing the Debian way (docs/library.md): PREFIX=/usr/local by default, DESTDIR honoured (a staging tree).
PREFIX     ?= /usr/local
bindir      = $(PREFIX)/bin
libdir      = $(PREFIX)/lib
includedir  = $(PREFIX)/include
mandir      = $(PREFIX)/share/man
bashcompdir = $(PREFIX)/share/bash-completion/completions
vimdir      = $(PREFIX)/share/vim/vimfiles
INSTALLED   = $(bindir)/bnni $(includedir)/bnni.h $(libdir)/libbnni.so.$(VERSION) $(libdir)/$(SONAME) \
              $(libdir)/libbnni.so $(libdir)/libbnni.a $(libdir)/pkgconfig/bnni.pc $(mandir)/man1/bnni.1 \
              $(mandir)/man5/bnn.5 $(bashcompdir)/bnni $(vimdir)/syntax/bnn.vim $(vimdir)/ftdetect/bnn.vim

# bnni.pc is made here, so that it names the PREFIX of this install.
install: $(BIN) lib
	install -d $(DESTDIR)$(bindir) $(DESTDIR)$(includedir) $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(mandir)/man1 \
	  $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(bashcompdir) $(DESTDIR)$(vimdir)/syntax $(DESTDIR)$(vimdir)/ftdetect
	install -m 755 $(BIN) $(DESTDIR)$(bindir)/bnni
	install -m 644 lib/bnni.h $(DESTDIR)$(includedir)/bnni.h
	install -m 644 $(BUILD)/libbnni.so.$(VERSION) $(BUILD)/libbnni.a $(DESTDIR)$(libdir)/
	ln -sf libbnni.so.$(VERSION) $(DESTDIR)$(libdir)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libbnni.so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@VERSION@|$(VERSION)|; s|@LIBS_PRIVATE@|$(strip $(PKG_LIBS) $(DATA_LIBS) -lz -lm -fopenmp)|' \
	  lib/bnni.pc.in >$(DESTDIR)$(libdir)/pkgconfig/bnni.pc
	chmod 644 $(DESTDIR)$(libdir)/pkgconfig/bnni.pc
	install -m 644 man/bnni.1 $(DESTDIR)$(mandir)/man1/bnni.1
	install -m 644 man/bnn.5 $(DESTDIR)$(mandir)/man5/bnn.5
	install -m 644 completions/bnni $(DESTDIR)$(bashcompdir)/bnni
	install -m 644 editors/vim/syntax/bnn.vim $(DESTDIR)$(vimdir)/syntax/bnn.vim
	install -m 644 editors/vim/ftdetect/bnn.vim $(DESTDIR)$(vimdir)/ftdetect/bnn.vim
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

# make install into a staging tree, examples/classify.c built there through pkg-config, and the rest of what a
# user gets (tests/install.sh); make test runs it once.
install-check: $(BIN) lib
	bash tests/install.sh

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/interp/main.d $(BUILD)/bench/layer_bench.d \
           $(BUILD)/bench/ckpt_bench.d
