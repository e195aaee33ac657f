#!/bin/sh
# bench/convs.sh - dtrain's conv kernels against oneDNN's (Debian's libdnnl, what PyTorch's CPU
# convolutions run on) for every conv shape of the built-in models, fp32 and bf16, 1 thread, batch
# 128: which one wins per layer and per model (bench/conv_onednn.c says what each column times).
#   make bench                  (after bench/run.sh and bench/scaling.sh)
#   sh bench/convs.sh           (needs build/libdtrain.a: make all; installs libdnnl-dev if missing)
#   BENCH_QUICK=1 sh bench/convs.sh   (batch 32)
# Output: the table on stdout and in bench/out/convs.md, the build log in bench/out/logs/.
# Without oneDNN (libdnnl-dev not installable here) it says so and exits 0.
set -u
cd "$(dirname "$0")/.." || exit 1
QUICK=${BENCH_QUICK:-0}
case $QUICK in 0 | 1) ;; *) echo "bench: BENCH_QUICK must be 0 or 1, not '$QUICK'" >&2 && exit 1 ;; esac
N=128
[ "$QUICK" = 1 ] && N=32
OUT=bench/out
LOG=$OUT/logs
MD=$OUT/convs.md
mkdir -p "$LOG"
[ -f build/libdtrain.a ] || { echo "bench: convs: build/libdtrain.a missing (make all)" >&2; exit 1; }
if ! sh scripts/deps.sh libdnnl-dev >"$LOG/convs-deps.log" 2>&1; then
    echo "bench: convs: oneDNN (libdnnl-dev) not installed and not installable here: skipped (see $LOG/convs-deps.log)"
    exit 0
fi
# the Makefile's compiler, CFLAGS and LDLIBS, read by make itself (as bench/run.sh's profile mode)
# shellcheck disable=SC2016
ccflags=$(printf 'bench-print-flags:\n\t@echo $(CC) $(CFLAGS) -MF /dev/null\n' |
    make -s --no-print-directory -f Makefile -f - bench-print-flags 2>/dev/null)
# shellcheck disable=SC2016
ldlibs=$(printf 'bench-print-libs:\n\t@echo $(LDLIBS)\n' |
    make -s --no-print-directory -f Makefile -f - bench-print-libs 2>/dev/null)
# shellcheck disable=SC2086
if ! $ccflags -o "$OUT/conv_onednn" bench/conv_onednn.c build/libdtrain.a $ldlibs \
    >"$LOG/convs-build.log" 2>&1; then
    echo "bench: convs: bench/conv_onednn.c did not build (see $LOG/convs-build.log)" >&2
    exit 1
fi
cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa=none
for f in avx2 avx512f avx512_bf16; do
    case " $flags " in *" $f "*) isa=$f ;; esac
done
{
    echo "## Conv kernels: dtrain against oneDNN"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $cpu ($(nproc) CPUs, widest of avx2 / avx512f / avx512_bf16 in its flags: $isa), load average $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    "$OUT/conv_onednn" $N 2>&1 || echo "bench: convs: conv_onednn failed"
    echo
    echo "Each cell: forward + backward ms per call (thread CPU time, median of 5). NCHW: dtrain's layout, the"
    echo "reorders into oneDNN's layouts and back counted; blocked: oneDNN's primitives on its own layouts"
    echo "(the weights' reorder from float32 counted). \"faster\" compares dtrain with oneDNN in NCHW, what"
    echo "dtrain could call today; bf16 n/a for dtrain: its bf16 kernels do not take the shape (training"
    echo "then runs the float32 kernels on bf16-rounded operands). bench/conv_onednn.c, docs/performance.md."
} >"$MD"
cat "$MD"
