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
            libcriterion-dev dataset-fashion-mnist time
# OpenBLAS's pthread build, linked by path with an rpath so that Debian's libopenblas.so.0 alternative cannot swap
# in another at run time: bnni calls sgemm from several OpenMP threads at once, which the pthread build allows
# (its serial build does not: it shares buffers between calls, and results changed from run to run). Its own
# worker threads are shut down by rt_set_threads (runtime/threads.c).
BLAS_PC    = PKG_CONFIG_PATH=/usr/lib/$(shell gcc -print-multiarch 2>/dev/null)/openblas-pthread/pkgconfig
BLAS_DIR  := $(shell $(BLAS_PC) pkg-config --variable=libdir openblas 2>/dev/null)
PKG_CFLAGS := $(shell $(BLAS_PC) pkg-config --cflags hdf5 openblas 2>/dev/null)
PKG_LIBS   := $(shell $(BLAS_PC) pkg-config --libs hdf5 openblas 2>/dev/null) -Wl,-rpath,$(BLAS_DIR)

WARN     = -Wall -Wextra -Werror -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(MARCH) -g $(WARN) -MMD -MP \
           -I. -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lz -lm
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
FUZZ_TARGETS ?= bnn idx ckpt
FUZZ_SECONDS ?= 60
FUZZ_MAXLEN_bnn  = 16384
FUZZ_MAXLEN_idx  = 8192
FUZZ_MAXLEN_ckpt = 4096
FUZZ_FLAGS_bnn   = -dict=tests/fuzz/bnn.dict
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

GEN_SRC  = $(BUILD)/gen/lexer.c $(BUILD)/gen/parser.c
LIB_SRC  = $(filter-out interp/main.c runtime/dist_mpi.c runtime/dist_serial.c,$(wildcard interp/*.c)) \
           $(filter-out runtime/dist_mpi.c runtime/dist_serial.c,$(wildcard runtime/*.c)) $(DIST_SRC) \
           $(wildcard runtime/layers/*.c runtime/data/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_SRC:.c=.o)
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

.PHONY: all deps train test run-tests run-dist-tests sanitize clean bench fuzz build-race
all: $(BIN)

# Installs whatever of $(PKGS) dpkg does not list as installed.
deps:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# One run of bison makes both files, one of flex both of its: grouped targets (&:), or a parallel make would run
# each tool once per file, two at a time, and write a corrupt parser.c (tests/build_race.sh checks it).
$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h &: grammar/parser.y
	@mkdir -p $(@D)
	bison -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h &: grammar/lexer.l $(BUILD)/gen/parser.h
	@mkdir -p $(@D)
	flex --header-file=$(BUILD)/gen/lexer.h -o $(BUILD)/gen/lexer.c $<

# Generated code is not ours to keep -Wextra-clean.
$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -Wno-error -Wno-unused-function -Wno-sign-compare -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/%.o: %.c | $(BUILD)/gen/parser.h $(BUILD)/gen/lexer.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libbnni.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/interp/main.o $(BUILD)/libbnni.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libbnni.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# Per-layer timing of LeNet-BN at batch 128, 1 and 2 threads (bench/README.md).
$(BUILD)/layer_bench: $(BUILD)/bench/layer_bench.o $(BUILD)/libbnni.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Kept, so a second `make fuzz` does not relink.
.PRECIOUS: $(BUILD)/tests/fuzz/main_%.o
$(BUILD)/fuzz_%: $(BUILD)/tests/fuzz/main_%.o $(BUILD)/tests/fuzz/targets.o $(BUILD)/libbnni.a
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

# New finds go to build-fuzz/corpus/<target>/ and crashes to build-fuzz/crash/; the committed seed corpus
# (tests/fuzz/corpus/<target>/) only grows by hand, minimised (tests/fuzz/README.md). Each target runs its
# whole FUZZ_SECONDS even after a crash (fork mode), and `make fuzz` fails at the end if any run found one.
fuzz:
	@$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@mkdir -p $(FUZZ_TARGETS:%=build-fuzz/corpus/%) build-fuzz/crash && touch build-fuzz/crash/.start
	$(foreach t,$(FUZZ_TARGETS),nice -n 10 ./build-fuzz/fuzz_$(t) -fork=1 -ignore_crashes=1 -ignore_ooms=1 \
	  -ignore_timeouts=1 -max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAXLEN_$(t)) $(FUZZ_FLAGS_$(t)) \
	  -timeout=10 -artifact_prefix=build-fuzz/crash/$(t)- build-fuzz/corpus/$(t) tests/fuzz/corpus/$(t) &&) true
	@new=$$(find build-fuzz/crash -type f -newer build-fuzz/crash/.start); \
	if [ -n "$$new" ]; then echo "fuzz: inputs that crash, leak, hang or run out of memory:"; echo "$$new"; exit 1; fi

# The README's main command.
train: deps
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN) train models/lenet_bn.bnn

# The README's test command: the whole suite, then again under ASan+UBSan.
# One run of the suite in $(BUILD); the end-to-end tests run the binary $(BIN). OpenMP threads spin
# while they wait, which costs 10x when the suite's parallel jobs share two cores, so tests wait passively
# (results do not depend on it). Leaks inside Criterion's own runner are not ours (tests/lsan.supp).
run-tests:
	@$(MAKE) --no-print-directory $(BIN) $(BUILD)/run_tests
	BNNI=./$(BIN) OMP_WAIT_POLICY=passive LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ./$(BUILD)/run_tests -j2

# The data-parallel tests (tests/test_dist.c, the suite's dist/* tests): ./bnni-mpi under mpirun with 2 and 3 ranks,
# against the plain ./bnni as the single-process reference. Installs Open MPI first (make MPI=1 deps). One test at
# a time: each runs up to three ranks on this machine's cores.
run-dist-tests:
	@$(MAKE) --no-print-directory MPI=1 deps
	@$(MAKE) --no-print-directory MPI=1 bnni-mpi
	@$(MAKE) --no-print-directory MPI=0 bnni build/run_tests
	BNNI=./bnni BNNI_MPI_BIN=./bnni-mpi OMP_WAIT_POLICY=passive ./build/run_tests -j1 --filter 'dist/*'

# The README's test command: three clean parallel builds (build-race); the whole suite; the data-parallel tests
# with the MPI build (run-dist-tests); again built for AVX2 (AVX2=1) where the CPU has it; and again under
# ASan+UBSan+LSan (SANITIZE=1 builds without -march=native). So the kernels' AVX-512 path (on such a CPU), their
# AVX2 path and their plain C are each tested.
test: deps
	@$(MAKE) --no-print-directory build-race
	@$(MAKE) --no-print-directory run-tests
	@$(MAKE) --no-print-directory run-dist-tests
	@if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then \
	  $(MAKE) --no-print-directory AVX2=1 run-tests; \
	else echo "make test: no AVX2+FMA on this CPU, the AVX2 build's suite is skipped"; fi
	@$(MAKE) --no-print-directory SANITIZE=1 run-tests

# A clean `make -j8` three times, in a scratch copy: bison and flex must run once each (tests/build_race.sh).
build-race:
	bash tests/build_race.sh 3 8

sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 run-tests

# The performance benchmark (bench/README.md): PyTorch reference, sgemm probe and bnni side by side, and the MPI
# build's 2 ranks against 2 threads (Open MPI installed first).
bench: deps
	@$(MAKE) --no-print-directory $(BIN)
	@$(MAKE) --no-print-directory MPI=1 deps
	@$(MAKE) --no-print-directory MPI=1 $(MPI_BIN)
	BUILD=$(BUILD) BNNI=./$(BIN) BNNI_MPI_BIN=./$(MPI_BIN) bash bench/run.sh

clean:
	rm -rf build build-san build-avx2 build-fuzz build-mpi build-san-mpi build-avx2-mpi bnni bnni-mpi

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/interp/main.d $(BUILD)/bench/layer_bench.d
