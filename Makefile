# bnni — build, test and run. `make train` and `make test` are the README's two commands:
# each installs the Debian packages it needs (apt-get, via sudo when not root), builds, then runs.

ifeq ($(origin CC),default)
  CC     = gcc
endif
MARCH    ?= -march=native
OPT      ?= -O3
SANITIZE ?= 0
BUILD    ?= build

PKGS      = gcc make flex bison pkg-config libhdf5-dev hdf5-tools libopenblas-dev zlib1g-dev libcriterion-dev dataset-fashion-mnist time
PKG_CFLAGS := $(shell pkg-config --cflags hdf5 openblas 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs hdf5 openblas 2>/dev/null)

WARN     = -Wall -Wextra -Werror -Wshadow -Wundef -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(MARCH) -g $(WARN) -MMD -MP \
           -I. -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lz -lm
# The layers split each batch across OpenMP threads (runtime/threads.h).
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp

ifeq ($(SANITIZE),1)
  BUILD   = build-san
  OPT     = -O1
  MARCH   =
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif

GEN_SRC  = $(BUILD)/gen/lexer.c $(BUILD)/gen/parser.c
LIB_SRC  = $(filter-out interp/main.c,$(wildcard interp/*.c)) $(wildcard runtime/*.c runtime/layers/*.c runtime/data/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_SRC:.c=.o)
TEST_SRC = $(wildcard tests/test_*.c)
# Test support code shared by several test files (tests/gradcheck.c), linked into run_tests.
TEST_LIB_SRC = $(filter-out tests/test_%.c,$(wildcard tests/*.c))
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o) $(TEST_LIB_SRC:%.c=$(BUILD)/%.o)
BIN      = bnni
ifeq ($(SANITIZE),1)
  BIN    = $(BUILD)/bnni
endif

.PHONY: all deps train check-seed test sanitize clean bench
all: $(BIN)

# Installs whatever of $(PKGS) dpkg does not list as installed.
deps:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h: grammar/parser.y
	@mkdir -p $(@D)
	bison -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/gen/lexer.c $(BUILD)/gen/lexer.h: grammar/lexer.l $(BUILD)/gen/parser.h
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

# The README's main command.
train: deps
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN) train models/lenet_bn.bnn

# The README's test command: the whole suite, then again under ASan+UBSan.
test: deps
	@$(MAKE) --no-print-directory $(BIN) $(BUILD)/run_tests
	BNNI=./$(BIN) ./$(BUILD)/run_tests -j2

sanitize: deps
	@$(MAKE) --no-print-directory SANITIZE=1 test

# The performance benchmark (bench/README.md): PyTorch reference, sgemm probe and bnni side by side.
bench: deps
	@$(MAKE) --no-print-directory $(BIN)
	BUILD=$(BUILD) BNNI=./$(BIN) bash bench/run.sh

clean:
	rm -rf build build-san bnni

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/interp/main.d $(BUILD)/bench/layer_bench.d
