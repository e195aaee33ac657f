# dtrain - build, test, bench, demo, deps and data targets.
#   make            build ./dtrain (build/dtrain)
#   make deps       install missing Debian packages (quiet and idempotent)
#   make data       MNIST + Fashion-MNIST into data/, SHA-256 checked
#   make test       deps + data + build (warnings are errors) + the whole test suite, with
#                   45 s of fuzzing (FUZZ_BUDGET) under the sanitizer build (build-san/)
#   make fuzz       the fuzz suite at full length (FUZZ_CASES=1000) under the sanitizer build
#   make demo       deps + data + build + a 2-rank MNIST training run
#   make bench      throughput / memory benchmarks (bench/README.md)
#   make format     clang-format -i every C file (.clang-format; Debian's clang-format 14)
#   make format-check   the files clang-format would change (non-zero exit when any)
#   make lint       cppcheck + scripts/check-structure.sh (circles, long files and functions)
#   SAN=address,undefined make ...   sanitized build under build-san/
#   NATIVE=1 make   -march=native (only for a build host equal to the compute nodes)

CC := gcc
PKGS := ompi-c openblas hdf5
SAN ?=
NATIVE ?= 0
NP ?= 2
# 1 (default): make test also runs make format-check.
FORMAT_CHECK ?= 1
# make test runs make lint first (cppcheck, the structure limits: a few seconds); LINT=0 skips it.
# (GNU make predefines LINT = lint, which ?= would keep)
ifeq ($(origin LINT),default)
LINT := 1
endif
# 1 (default): make lint fails on module circles and files over 1,200 lines too; 0 only warns.
LINT_STRICT ?= 1

ifeq ($(SAN),)
BUILD := build
SANFLAGS :=
else
BUILD := build-san
SANFLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer
# Debug-info variable tracking cost the sanitized kernels (isa/lanes.c) 40% of their compile time
# for no change to the code; reports keep their file:line.
SAN_CFLAGS := -fno-var-tracking-assignments
endif

WARN := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wvla -Wformat=2
# CI sets CI=true: there every warning is an error.
ifneq ($(CI),)
WARN += -Werror
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif
# -fno-math-errno lets sqrtf loops vectorize; it changes no result (only errno on sqrt(-1)).
OPT := -O3 -g -fno-math-errno
ifeq ($(NATIVE),1)
OPT += -march=native
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS = $(WARN) $(OPT) $(SANFLAGS) $(SAN_CFLAGS) -D_GNU_SOURCE -iquote runtime $(PKG_CFLAGS) -MMD -MP
# oneDNN (kernels/conv_dnnl.h): Debian's libdnnl-dev has no pkg-config file; -lgomp for the
# omp_set_num_threads that holds it to one thread per call.
LDLIBS = $(PKG_LIBS) -ldnnl -lgomp -lm
LDFLAGS = $(SANFLAGS)

RUNTIME_SRC := $(wildcard runtime/*.c) $(wildcard runtime/layers/*.c) $(wildcard runtime/kernels/*.c)

# Kernel families compiled once per instruction set (runtime/kernels/isa/*.c; isa/vec.h, issue 12):
# the same source over W float lanes, one object per ISA, its symbols suffixed by the ISA's name
# (DT_KFN). bf16_*.c files also get an avx512bf16 object (native vdpbf16ps); the fp32 families
# are the same code there as in avx512, so they are not built twice. avx2w16 is the 16-lane
# instantiation lowered to AVX2 (the compiler splits each 512-bit vector in two): it runs the
# AVX-512 kernels' blocking, tails and indexing on every x86-64 machine, for the tests.
# No -march=native here: each object gets exactly its ISA's flags (NATIVE=1 only tunes the rest).
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
ISAS := generic avx2 avx2w16 avx512
ISA_FLAGS_generic := -DDT_W=4
ISA_FLAGS_avx2 := -mavx2 -mfma -mf16c -DDT_W=8
ISA_FLAGS_avx2w16 := -mavx2 -mfma -mf16c -DDT_W=16 -Wno-psabi
ISA_FLAGS_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -DDT_W=16
ISA_FLAGS_avx512bf16 := $(ISA_FLAGS_avx512) -mavx512bf16 -DDT_BF16_NATIVE=1
else
ISAS := generic
ISA_FLAGS_generic := -DDT_W=4
endif
ISA_SRC := $(wildcard runtime/kernels/isa/*.c)
ISA_BF16_SRC := $(wildcard runtime/kernels/isa/bf16_*.c)
ISA_OBJ := $(foreach i,$(ISAS),$(ISA_SRC:%.c=$(BUILD)/%.$(i).o))
ifeq ($(ARCH),x86_64)
ISA_OBJ += $(ISA_BF16_SRC:%.c=$(BUILD)/%.avx512bf16.o)
endif
ISA_CFLAGS = $(filter-out -march=native,$(CFLAGS))
define isa_rule
$$(BUILD)/runtime/kernels/isa/%.$(1).o: runtime/kernels/isa/%.c | check-toolchain
	@mkdir -p $$(@D)
	$$(CC) $$(ISA_CFLAGS) $$(ISA_FLAGS_$(1)) -DDT_KSUF=_$(1) -c -o $$@ $$<
endef
$(foreach i,$(ISAS) $(if $(filter x86_64,$(ARCH)),avx512bf16),$(eval $(call isa_rule,$(i))))

RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/%.o) $(ISA_OBJ) $(BUILD)/models_builtin.o $(BUILD)/version.o
MODELS := $(wildcard models/*.cfg)
TEST_SRC := $(wildcard tests/test_*.c) $(wildcard tests/tool_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all deps data test fuzz san-tools demo bench experiments clean check-toolchain format format-check lint FORCE
all: dtrain $(TEST_BIN)

dtrain: $(BUILD)/dtrain
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/libdtrain.a: $(RUNTIME_OBJ)
	@mkdir -p $(@D)
	@rm -f $@ # rebuilt whole: ar r keeps members of deleted sources (layers_cnn.o) otherwise
	ar rcs $@ $^

LAUNCH_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard launch/*.c))
$(BUILD)/dtrain: $(LAUNCH_OBJ) $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libdtrain.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c | check-toolchain
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Built-in models: models/NAME.cfg compiled into the binary, so ./dtrain works from any directory.
$(BUILD)/models_builtin.c: $(MODELS) scripts/embed-models.sh
	@mkdir -p $(@D)
	sh scripts/embed-models.sh $(MODELS) > $@.tmp && mv $@.tmp $@

$(BUILD)/models_builtin.o: $(BUILD)/models_builtin.c
	$(CC) $(CFLAGS) -c -o $@ $<

# The commit a binary was built from (checkpoints record it); rewritten only when it changes.
$(BUILD)/version.c: FORCE
	@mkdir -p $(@D)
	@v=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	 echo "const char *const dt_commit = \"$$v\";" > $@.tmp; \
	 cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@

$(BUILD)/version.o: $(BUILD)/version.c
	$(CC) $(CFLAGS) -c -o $@ $<

FORCE:

check-toolchain:
	@pkg-config --exists $(PKGS) || { echo "dtrain: missing build dependencies ($(PKGS)): run 'make deps'" >&2; exit 1; }
	@test -f /usr/include/oneapi/dnnl/dnnl.h || { echo "dtrain: missing build dependency oneDNN (libdnnl-dev): run 'make deps'" >&2; exit 1; }

deps:
	@sh scripts/deps.sh

data: deps
	@sh scripts/fetch-data.sh data

# make test and san-tools compile on every core when make was given no -j (CI runs a plain
# `make test`: the two builds took a third of its time on one core); under make -jN the jobserver
# decides.
BUILD_J = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc 2>/dev/null || echo 1))

# The fuzz suite runs the sanitized dtrain (build-san/dtrain, not copied to ./dtrain).
SAN_TOOLS := build-san/dtrain build-san/tests/tool_fuzzgen build-san/tests/tool_mkdata
san-tools:
	@$(MAKE) --no-print-directory $(BUILD_J) SAN=address,undefined WERROR=1 $(SAN_TOOLS)

test: deps data san-tools
	@if [ "$(FORMAT_CHECK)" = 1 ]; then $(MAKE) --no-print-directory format-check; fi
	@if [ "$(LINT)" = 1 ]; then $(MAKE) --no-print-directory lint; fi
	@$(MAKE) --no-print-directory $(BUILD_J) WERROR=1 all
	@bash tests/run.sh $(BUILD)

FUZZ_CASES ?= 1000
fuzz: deps data san-tools
	@sh tests/fuzz.sh build-san 0 $(FUZZ_CASES)

demo: deps data
	@$(MAKE) --no-print-directory all
	@. scripts/mpi-env.sh && mpirun -np $(NP) $$DT_MPIRUN_FLAGS ./dtrain train --model mlp --data mnist --epochs 3

bench: deps data
	@$(MAKE) --no-print-directory all
	@sh bench/run.sh
	@sh bench/scaling.sh
	@sh bench/convs.sh

# The lecture's sections as experiments (docs/experiments.md): all 8 (its expected time printed
# first), or SECTION=N alone; QUICK=1 is the smoke mode of tests/test_experiments.sh.
experiments: deps data
	@$(MAKE) --no-print-directory dtrain
	@if [ -n "$(SECTION)" ]; then QUICK=$(QUICK) bash experiments/run.sh $(SECTION); \
	else QUICK=$(QUICK) bash experiments/all.sh; fi

clean:
	rm -rf build build-san dtrain

# Every C source and header, subfolders included (runtime/layers/ and the like).
C_FILES = $(shell find runtime launch tests bench -name '*.[ch]' | LC_ALL=C sort) $(wildcard *.c *.h)

format:
	@sh scripts/deps.sh clang-format
	clang-format -i $(C_FILES)

# clang-format per file, so the files that differ are listed by name.
format-check:
	@sh scripts/deps.sh clang-format
	@bad=0; for f in $(C_FILES); do \
	    clang-format --dry-run --Werror "$$f" > /dev/null 2>&1 || { echo "$$f"; bad=$$((bad + 1)); }; \
	done; \
	if [ $$bad -gt 0 ]; then echo "make format-check: $$bad file(s) above differ from .clang-format: run make format" >&2; exit 1; fi

# cppcheck: the noreturn DT_ASSERT failure path (scripts/cppcheck.cfg), the reasoned exceptions
# (scripts/cppcheck-suppressions.xml), and gcc's predefined byte-order macros ckpt.c and
# ckpt_write.c test; the per-ISA files (runtime/kernels/isa/) as their avx2 build.
CPPCHECK_FLAGS := --quiet --std=c11 --enable=warning,portability --error-exitcode=1 \
    -D_GNU_SOURCE -D__BYTE_ORDER__=1234 -D__ORDER_LITTLE_ENDIAN__=1234 -DDT_W=8 -DDT_KSUF=_avx2 \
    -Iruntime \
    --library=scripts/cppcheck.cfg --suppress-xml=scripts/cppcheck-suppressions.xml
lint:
	@sh scripts/deps.sh cppcheck
	cppcheck $(CPPCHECK_FLAGS) -j $(shell nproc 2>/dev/null || echo 1) $(C_FILES)
	LINT_STRICT=$(LINT_STRICT) sh scripts/check-structure.sh

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
