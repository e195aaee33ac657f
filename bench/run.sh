#!/bin/sh
# bench/run.sh - dtrain training throughput per model in fp32 and bf16 next to PyTorch fp32 and
# PyTorch CPU autocast bf16, with the ISA of dtrain's kernels, achieved GFLOP/s against the measured
# FMA peak of that ISA, MLP 1-rank/2-rank scaling and peak memory (bench/README.md).
#   make bench                  (deps + data + build, then this script)
#   sh bench/run.sh             (from anywhere; needs ./dtrain, build/tests/tool_mkdata, data/mnist/)
#   BENCH_QUICK=1 sh bench/run.sh   (smoke run: 1 round of few steps, no scaling rows)
# Knobs (environment): BENCH_QUICK (0), BENCH_REPEAT (3, quick 1: each number is the median over
# that many rounds), BENCH_EPOCHS (1: MNIST epochs of the mlp runs), BENCH_STEPS_MLP (0 = whole
# epochs, quick 100), BENCH_STEPS_LENET5 (200, quick 40), BENCH_STEPS_CNN (30, quick 6),
# BENCH_STEPS_RESNET20 (10, quick 2), BENCH_STEPS_RESNET9 (10, quick 2), BENCH_CONFIGS (dtrain dtrain-avx2 dtrain-bf16 torch
# torch-bf16), BENCH_SCALING (1, quick 0: the mlp 2-rank rows), BENCH_FMA_MS (200, quick 50: ms
# per FMA peak measurement), BENCH_LR (0.05, dtrain's default), BENCH_PYTHON (/usr/bin/python3),
# BENCH_MODELS (mlp lenet5 cnn resnet20 resnet9), BENCH_WAIT (0: seconds to wait for a 1-minute load
# average below BENCH_MAX_LOAD, default 1, before starting), BENCH_PROFILE (1: instead of the
# benchmark, run each model's dtrain workload once under perf record and print where the time
# goes); BENCH_THREADS (1: the threads rows of issue 13: per model of mlp lenet5 cnn resnet20,
# dtrain fp32 at 1 rank x 2 threads and 2 ranks x 1 thread with half the batch each, against
# 1 rank x 1 thread, and the ratios against the issue's goals); DTRAIN_KERNELS_ISA (auto: the ISA
# of the dtrain and dtrain-bf16 configurations).
# Output: the tables on stdout, the same as markdown in bench/out/results.md, run logs in
# bench/out/logs/.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUTDIR=bench/out
LOGDIR=$OUTDIR/logs
MD=$OUTDIR/results.md
QUICK=${BENCH_QUICK:-0}
case $QUICK in 0 | 1) ;; *) echo "bench: BENCH_QUICK must be 0 or 1, not '$QUICK'" >&2 && exit 1 ;; esac
# q FULL QUICK: the default of a knob in a full and in a quick run
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
EPOCHS=${BENCH_EPOCHS:-1}
REPEAT=${BENCH_REPEAT:-$(q 3 1)}
LR=${BENCH_LR:-0.05}
PY=${BENCH_PYTHON:-/usr/bin/python3}
MODELS=${BENCH_MODELS:-mlp lenet5 cnn resnet20 resnet9}
CONFIGS=${BENCH_CONFIGS:-dtrain dtrain-avx2 dtrain-bf16 torch torch-bf16}
STEPS_MLP=${BENCH_STEPS_MLP:-$(q 0 100)}
STEPS_LENET5=${BENCH_STEPS_LENET5:-$(q 200 40)}
STEPS_CNN=${BENCH_STEPS_CNN:-$(q 30 6)}
STEPS_RESNET20=${BENCH_STEPS_RESNET20:-$(q 10 2)}
STEPS_RESNET9=${BENCH_STEPS_RESNET9:-$(q 10 2)}
SCALING=${BENCH_SCALING:-$(q 1 0)}
THREADS_ROWS=${BENCH_THREADS:-1}
FMA_MS=${BENCH_FMA_MS:-$(q 200 50)}
WAIT=${BENCH_WAIT:-0}
PROFILE=${BENCH_PROFILE:-0}
MAX_LOAD=${BENCH_MAX_LOAD:-1}
ISA_MAIN=${DTRAIN_KERNELS_ISA:-auto}
BATCH=128
MKDATA=build/tests/tool_mkdata
CIFAR_DIR=$OUTDIR/data          # generated CIFAR-format data: $CIFAR_DIR/cifar10/*.bin
CIFAR_PER_BATCH=256             # 5 x 256 = 1280 training images, 3x32x32
CIFAR_TEST=128

die() {
    echo "bench: $*" >&2
    exit 1
}
posint() {
    case $2 in '' | *[!0-9]* | 0) die "$1 must be a positive integer, not '$2'" ;; esac
}

posint BENCH_EPOCHS "$EPOCHS"
posint BENCH_REPEAT "$REPEAT"
case $STEPS_MLP in '' | *[!0-9]*) die "BENCH_STEPS_MLP must be a number of steps (0: whole epochs), not '$STEPS_MLP'" ;; esac
posint BENCH_STEPS_LENET5 "$STEPS_LENET5"
posint BENCH_STEPS_CNN "$STEPS_CNN"
posint BENCH_STEPS_RESNET20 "$STEPS_RESNET20"
posint BENCH_STEPS_RESNET9 "$STEPS_RESNET9"
posint BENCH_FMA_MS "$FMA_MS"
case $SCALING in 0 | 1) ;; *) die "BENCH_SCALING must be 0 or 1, not '$SCALING'" ;; esac
case $THREADS_ROWS in 0 | 1) ;; *) die "BENCH_THREADS must be 0 or 1, not '$THREADS_ROWS'" ;; esac
case $WAIT in '' | *[!0-9]*) die "BENCH_WAIT must be a number of seconds, not '$WAIT'" ;; esac
for m in $MODELS; do
    case $m in mlp | lenet5 | cnn | resnet20 | resnet9) ;; *) die "BENCH_MODELS: unknown model '$m' (mlp lenet5 cnn resnet20 resnet9)" ;; esac
done
case $ISA_MAIN in
auto | generic | avx2 | avx2w16 | avx512 | avx512bf16) ;;
*) die "DTRAIN_KERNELS_ISA: unknown ISA '$ISA_MAIN' (auto generic avx2 avx2w16 avx512 avx512bf16)" ;;
esac
[ -x ./dtrain ] || die "$ROOT/dtrain is missing (or not executable): build it with 'make all', or run 'make bench'"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "data/mnist/$f" ] || die "data/mnist/$f is missing: fetch MNIST with 'make data'"
done
command -v mpirun >/dev/null 2>&1 || die "mpirun not found: install Open MPI with 'make deps'"
case " $MODELS " in *" resnet20 "* | *" resnet9 "*)
    [ -x "$MKDATA" ] || die "$MKDATA is missing (it writes the CIFAR-format data for resnet20 and resnet9): build it with 'make all'" ;;
esac

# before the exports below: GNU nproc honours OMP_NUM_THREADS
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || OMP_NUM_THREADS='' nproc 2>/dev/null || echo '?')

# One BLAS / OpenMP / MKL thread everywhere (forced, whatever the caller's environment says).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# shellcheck source=scripts/mpi-env.sh
. scripts/mpi-env.sh
MPIRUN_ENV="-x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS -x MKL_NUM_THREADS -x DTRAIN_KERNELS_ISA"
[ -n "${OPENBLAS_CORETYPE:-}" ] && MPIRUN_ENV="$MPIRUN_ENV -x OPENBLAS_CORETYPE"
[ -n "${OPENBLAS_L2_SIZE:-}" ] && MPIRUN_ENV="$MPIRUN_ENV -x OPENBLAS_L2_SIZE"
# an OpenBLAS pin in the environment (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE): dtrain and its sgemm
# rate keep it; the PyTorch side runs without it (OpenBLAS choosing its own kernel, as a user of
# PyTorch gets it), in its own command only (unpinned below)
PINNED=0
[ -n "${OPENBLAS_CORETYPE:-}${OPENBLAS_L2_SIZE:-}" ] && PINNED=1
unpinned() { (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE && "$@"); }

mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
rm -f "$LOGDIR"/*.log "$LOGDIR"/*.dat "$LOGDIR"/isa-* "$LOGDIR"/flops-* "$LOGDIR"/torch-info

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown; }

# ---- wait for a quiet machine (optional) ---------------------------------------------------
if [ "$WAIT" -gt 0 ]; then
    waited=0
    while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
        [ $waited -ge "$WAIT" ] && { echo "bench: load average still $(loadavg) after ${WAIT}s; running anyway"; break; }
        [ $waited = 0 ] && echo "bench: load average $(loadavg) >= $MAX_LOAD: waiting up to ${WAIT}s"
        sleep 10
        waited=$((waited + 10))
    done
fi
load_start=$(loadavg)

# ---- machine -------------------------------------------------------------------------------
cpu=$(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=unknown
cpu_fms=$(awk -F': *' '/^cpu family/ { f = $2 } /^model[[:space:]]*:/ { m = $2 } /^stepping/ { s = $2 }
    END { if (f != "") printf "family %s model %s stepping %s", f, m, s }' /proc/cpuinfo 2>/dev/null)
# CPU flags that decide dtrain's kernels (runtime/kernels/isa.c asks the CPU the same through
# __builtin_cpu_supports); the best ISA it can run, as dtrain's kernels.isa = auto picks it
cpu_flags=" $(sed -n 's/^flags[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1) "
has() { case $cpu_flags in *" $1 "*) return 0 ;; esac; return 1; }
flags_have='' flags_lack=''
for f in sse4_2 avx fma f16c avx2 avx512f avx512bw avx512vl avx512dq avx512_bf16 avx512_fp16 amx_bf16; do
    if has "$f"; then flags_have="$flags_have $f"; else flags_lack="$flags_lack $f"; fi
done
best_isa=generic
if [ "$(uname -m)" = x86_64 ] && has avx2 && has fma && has f16c; then
    best_isa=avx2
    if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
        best_isa=avx512
        has avx512_bf16 && best_isa=avx512bf16
    fi
fi
# Does this dtrain know the kernels.isa config key? Then the ISA goes both ways (the key and the
# environment variable); else only DTRAIN_KERNELS_ISA, which builds without the key ignore.
ISA_KEY=0
grep -q -a 'kernels\.isa' ./dtrain 2>/dev/null && ISA_KEY=1

blas_lib=$(ldd ./dtrain 2>/dev/null | awk '/libopenblas/ { print $3; exit }')
[ -n "$blas_lib" ] && blas_lib=$(readlink -f "$blas_lib")
# OpenBLAS (DYNAMIC_ARCH builds) prints "Core: <name>" at load time with OPENBLAS_VERBOSE=2.
blas_core=$(OPENBLAS_VERBOSE=2 ./dtrain --version 2>&1 | sed -n 's/^Core:[[:space:]]*//p' | head -n 1)
blas_core_free=$(unpinned env OPENBLAS_VERBOSE=2 ./dtrain --version 2>&1 | sed -n 's/^Core:[[:space:]]*//p' | head -n 1)
blas_config=
coretype_note="not set"
[ $PINNED = 1 ] && coretype_note="OPENBLAS_CORETYPE='${OPENBLAS_CORETYPE:-}' OPENBLAS_L2_SIZE='${OPENBLAS_L2_SIZE:-}' in the environment: kept for dtrain, unset for PyTorch's command only"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain 2>/dev/null)" ] && commit="$commit (working tree modified)"

# ---- helper programs: bench/sgemm_rate.c, bench/fma_peak.c with the Makefile's compiler and flags
# The Makefile's CC, WARN and OPT (OPT honours NATIVE=1 from the environment), read by make itself.
# shellcheck disable=SC2016
cflags=$(printf 'bench-print-flags:\n\t@echo $(CC) $(WARN) $(OPT)\n' |
    make -s --no-print-directory -f Makefile -f - bench-print-flags 2>/dev/null)
[ -n "$cflags" ] || cflags="gcc -std=c11 -O3 -g -fno-math-errno"
SGEMM_BIN=$OUTDIR/sgemm_rate
sgemm_ok=0 sgemm_peak='' sgemm_lines='' sgemm_free_lines='' sgemm_why=''
# shellcheck disable=SC2046,SC2086
if $cflags -D_GNU_SOURCE $(pkg-config --cflags openblas 2>/dev/null) -o "$SGEMM_BIN" bench/sgemm_rate.c \
    $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) >"$LOGDIR/sgemm-build.log" 2>&1; then
    # a tiny shape: the library's core type and configuration
    if "$SGEMM_BIN" 8x8x8 >"$LOGDIR/sgemm-core.log" 2>&1; then
        sgemm_ok=1
        [ -n "$blas_core" ] || blas_core=$(sed -n 's/^openblas core=\([^ ]*\).*/\1/p' "$LOGDIR/sgemm-core.log")
        blas_config=$(sed -n 's/^openblas core=[^ ]* config=//p' "$LOGDIR/sgemm-core.log")
        if [ $PINNED = 1 ] && [ -z "$blas_core_free" ]; then
            unpinned "$SGEMM_BIN" 8x8x8 >"$LOGDIR/sgemm-core-free.log" 2>&1
            blas_core_free=$(sed -n 's/^openblas core=\([^ ]*\).*/\1/p' "$LOGDIR/sgemm-core-free.log")
        fi
    else
        sgemm_why="bench/out/sgemm_rate failed (see $LOGDIR/sgemm-core.log)"
    fi
else
    sgemm_why="bench/sgemm_rate.c did not build (see $LOGDIR/sgemm-build.log)"
fi
[ -n "$blas_core" ] || blas_core=unknown
[ -n "$blas_core_free" ] || blas_core_free=$blas_core
# bench/core2core.c: what the machine's first two CPUs share, once per round (before its threads
# rows): a VM's vCPUs can move between cores that share an L3 and cores that do not
C2C_BIN=$OUTDIR/core2core
c2c_ok=0
# shellcheck disable=SC2086
$cflags -D_GNU_SOURCE -pthread -o "$C2C_BIN" bench/core2core.c >"$LOGDIR/c2c-build.log" 2>&1 && c2c_ok=1
FMA_BIN=$OUTDIR/fma_peak
fma_ok=0 fma_why=''
# shellcheck disable=SC2086
if $cflags -D_GNU_SOURCE -o "$FMA_BIN" bench/fma_peak.c >"$LOGDIR/fma-build.log" 2>&1; then
    fma_ok=1
else
    fma_why="bench/fma_peak.c did not build (see $LOGDIR/fma-build.log)"
fi

# run_sgemm REP: the default shapes once (about 1.5 s), into $LOGDIR/sgemm-REP.log; with an
# OpenBLAS pin in the environment, once more without it (as PyTorch gets it) into sgemm-free-REP.log
sgemm_summary() { awk '/^sgemm / { l = $5; sub(/label=/, "", l); m = $6; sub(/.*=/, "", m); printf "%s%s %s", sep, l, m; sep = ", " }' "$1"; }
run_sgemm() {
    [ $sgemm_ok = 1 ] || return 0
    "$SGEMM_BIN" >"$LOGDIR/sgemm-$1.log" 2>&1 || { echo "bench: sgemm_rate failed: $(tail -n 3 "$LOGDIR/sgemm-$1.log")" >&2; return 0; }
    printf '  sgemm    rates   run %d: %s GFLOP/s (OpenBLAS core %s)\n' "$1" "$(sgemm_summary "$LOGDIR/sgemm-$1.log")" "$blas_core"
    [ $PINNED = 1 ] || return 0
    unpinned "$SGEMM_BIN" >"$LOGDIR/sgemm-free-$1.log" 2>&1 || { echo "bench: sgemm_rate (unpinned) failed: $(tail -n 3 "$LOGDIR/sgemm-free-$1.log")" >&2; return 0; }
    printf '  sgemm    rates   run %d: %s GFLOP/s (OpenBLAS core %s, pin unset)\n' "$1" "$(sgemm_summary "$LOGDIR/sgemm-free-$1.log")" "$blas_core_free"
}

# sgemm_lines FILES...: per shape, the median over the rounds of each round's median and the best
# over all trials
sgemm_lines() {
    cat "$@" 2>/dev/null | awk '/^sgemm / {
            key = $2 " " $3 " " $4 " " $5
            if (!(key in n)) order[++k] = key
            m = $6; sub(/.*=/, "", m); b = $7; sub(/.*=/, "", b)
            v[key, ++n[key]] = m + 0
            if (b + 0 > best[key]) best[key] = b + 0
        }
        END {
            for (i = 1; i <= k; i++) {
                key = order[i]; c = n[key]
                for (a = 1; a <= c; a++) for (z = a + 1; z <= c; z++)
                    if (v[key, z] < v[key, a]) { t = v[key, a]; v[key, a] = v[key, z]; v[key, z] = t }
                med = (c % 2) ? v[key, (c + 1) / 2] : (v[key, c / 2] + v[key, c / 2 + 1]) / 2
                printf "sgemm %s median_gflops=%.1f best_gflops=%.1f rounds=%d\n", key, med, best[key], c
            }
        }'
}
summarize_sgemm() {
    [ $sgemm_ok = 1 ] || return 0
    sgemm_lines=$(sgemm_lines "$LOGDIR"/sgemm-[0-9]*.log)
    [ $PINNED = 1 ] && sgemm_free_lines=$(sgemm_lines "$LOGDIR"/sgemm-free-[0-9]*.log)
    sgemm_peak=$(printf '%s\n' "$sgemm_lines" | awk '{ sub(/.*median_gflops=/, ""); if ($1 + 0 > m) m = $1 + 0 } END { if (m > 0) print m }')
}

# run_fma REP: bench/fma_peak.c once (3 kernels x best of 3 x BENCH_FMA_MS), into fma-REP.log
fma_val() { awk -v k="$2" -v f="$3" '$1 == "fma" && $2 == k { for (i = 3; i <= NF; i++) if (index($i, f "=") == 1) { sub(/^[^=]*=/, "", $i); print $i } }' "$1"; }
run_fma() {
    [ $fma_ok = 1 ] || return 0
    "$FMA_BIN" "$FMA_MS" >"$LOGDIR/fma-$1.log" 2>&1 || { echo "bench: fma_peak failed: $(tail -n 3 "$LOGDIR/fma-$1.log")" >&2; return 0; }
    l=$LOGDIR/fma-$1.log
    printf '  fma peak        run %d: ymm %s, zmm %s, vdpbf16ps %s GFLOP/s per core (wall clock: %s, %s, %s)\n' "$1" \
        "$(fma_val "$l" ymm gflops)" "$(fma_val "$l" zmm gflops)" "$(fma_val "$l" bf16 gflops)" \
        "$(fma_val "$l" ymm gflops_wall)" "$(fma_val "$l" zmm gflops_wall)" "$(fma_val "$l" bf16 gflops_wall)"
}
# run_c2c REP: bench/core2core.c once (about half a second), into c2c-REP.log
c2c_val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1" | head -n 1; }
run_c2c() {
    [ $c2c_ok = 1 ] || return 0
    l=$LOGDIR/c2c-$1.log
    "$C2C_BIN" >"$l" 2>&1 || { echo "bench: core2core failed: $(tail -n 3 "$l")" >&2; return 0; }
    [ -n "$(c2c_val "$l" round_trip_ns)" ] || return 0
    printf '  core to core    run %d: round trip %s ns, reading what the other core wrote %s GB/s (%sx its own)\n' \
        "$1" "$(c2c_val "$l" round_trip_ns)" "$(c2c_val "$l" remote_gbs)" "$(c2c_val "$l" remote_over_local)"
}
# c2c_summary: the per-round figures, for the header
c2c_summary() {
    if [ $c2c_ok = 0 ]; then
        echo "core to core: not measured (bench/core2core.c did not build: $LOGDIR/c2c-build.log)"
        return
    fi
    rt='' bw='' ra='' r=1
    while [ $r -le "$REPEAT" ]; do
        l=$LOGDIR/c2c-$r.log
        if [ -f "$l" ] && [ -n "$(c2c_val "$l" round_trip_ns)" ]; then
            rt="$rt${rt:+ / }$(c2c_val "$l" round_trip_ns)"
            bw="$bw${bw:+ / }$(c2c_val "$l" remote_gbs)"
            ra="$ra${ra:+ / }$(c2c_val "$l" remote_over_local)"
        fi
        r=$((r + 1))
    done
    if [ -z "$rt" ]; then
        echo "core to core: $(head -n 1 "$LOGDIR/c2c-1.log" 2>/dev/null)"
        return
    fi
    echo "core to core (bench/core2core.c, first two CPUs, per round): a cache line's round trip $rt ns; reading 1 MB the other core wrote $bw GB/s, $ra x reading it from its own caches (cores sharing an L3: round trip of tens to ~150 ns, ratio near 1)"
}
# peak KIND (ymm, zmm, bf16): the median over the rounds, empty when not measured
peak() {
    for l in "$LOGDIR"/fma-[0-9]*.log; do [ -f "$l" ] && fma_val "$l" "$1" gflops; done | awk '$1 != "n/a" && $1 + 0 > 0' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.1f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# peak_kind ISA PRECISION: the FMA peak that bounds dtrain's kernels of that ISA and precision
peak_kind() {
    case $1 in
    avx512bf16) if [ "$2" = bf16 ]; then echo bf16; else echo zmm; fi ;;
    avx512) echo zmm ;;
    *) echo ymm ;; # avx2, avx2w16 (16 lanes as two ymm halves), generic (bounded by the ymm rate)
    esac
}

# ---- torch available? ----------------------------------------------------------------------
have_torch=0
torch_why=
if [ -x "$PY" ] || command -v "$PY" >/dev/null 2>&1; then
    if "$PY" -c 'import torch, numpy' >/dev/null 2>&1; then
        have_torch=1
    else
        torch_why="$PY cannot import torch and numpy"
    fi
else
    torch_why="$PY not found"
fi

# ---- configurations ------------------------------------------------------------------------
# tags: dt (dtrain fp32, ISA $ISA_MAIN), dtavx2 (dtrain fp32, ISA avx2: on AVX-512 CPUs, the
# numbers of the AVX2 kernels), dtbf16 (dtrain train.precision = bf16, ISA $ISA_MAIN), pt (PyTorch
# fp32), ptbf16 (PyTorch CPU autocast bf16)
CFGS='' cfg_notes=''
for c in $CONFIGS; do
    case $c in
    dtrain) CFGS="$CFGS dt" ;;
    dtrain-avx2)
        if [ "$ISA_MAIN" = avx2 ]; then
            cfg_notes="$cfg_notes dtrain-avx2 left out: DTRAIN_KERNELS_ISA=avx2 already;"
        elif ! has avx512f; then
            cfg_notes="$cfg_notes dtrain-avx2 left out: no AVX-512 on this CPU, so auto is avx2 or less;"
        else
            CFGS="$CFGS dtavx2"
        fi ;;
    dtrain-bf16) CFGS="$CFGS dtbf16" ;;
    torch | torch-bf16)
        if [ $have_torch = 1 ]; then
            if [ "$c" = torch ]; then CFGS="$CFGS pt"; else CFGS="$CFGS ptbf16"; fi
        else
            cfg_notes="$cfg_notes $c left out: PyTorch not available ($torch_why);"
        fi ;;
    *) die "BENCH_CONFIGS: unknown configuration '$c' (dtrain dtrain-avx2 dtrain-bf16 torch torch-bf16)" ;;
    esac
done
CFGS=${CFGS# }
[ -n "$CFGS" ] || die "BENCH_CONFIGS: nothing to run"
has_cfg() { case " $CFGS " in *" $1 "*) return 0 ;; esac; return 1; }
[ "$SCALING" = 1 ] && { case " $MODELS " in *" mlp "*) ;; *) SCALING=0 ;; esac; }
[ "$SCALING" = 1 ] && ! has_cfg dt && SCALING=0
has_cfg dt || THREADS_ROWS=0
# the models of the threads rows (issue 13's goals name these)
THREAD_MODELS=
for m in $MODELS; do case $m in mlp | lenet5 | cnn | resnet20) THREAD_MODELS="$THREAD_MODELS $m" ;; esac; done
[ -n "$THREAD_MODELS" ] || THREADS_ROWS=0
# cfg_run CFG: RUN_ISA (dtrain configurations) and RUN_PREC
cfg_run() {
    case $1 in
    dt) RUN_ISA=$ISA_MAIN RUN_PREC=fp32 ;;
    dtavx2) RUN_ISA=avx2 RUN_PREC=fp32 ;;
    dtbf16) RUN_ISA=$ISA_MAIN RUN_PREC=bf16 ;;
    pt) RUN_ISA=- RUN_PREC=fp32 ;;
    ptbf16) RUN_ISA=- RUN_PREC=bf16 ;;
    esac
}
cfg_short() {
    case $1 in dt) echo "dt fp32" ;; dtavx2) echo "dt avx2" ;; dtbf16) echo "dt bf16" ;; pt) echo "pt fp32" ;; ptbf16) echo "pt bf16" ;; esac
}
cfg_long() {
    case $1 in
    dt) echo "dtrain fp32, kernels.isa $ISA_MAIN" ;;
    dtavx2) echo "dtrain fp32, kernels.isa avx2" ;;
    dtbf16) echo "dtrain bf16 (train.precision=bf16), kernels.isa $ISA_MAIN" ;;
    pt) echo "PyTorch fp32" ;;
    ptbf16) echo "PyTorch CPU autocast bf16" ;;
    esac
}

# ---- per-model workloads -------------------------------------------------------------------
# model_args MODEL: sets DT_ARGS (dtrain), PT_ARGS (torch_models.py), DESC, EXCL
model_args() {
    case $1 in
    mlp)
        DT_ARGS="--data mnist --data-dir data --epochs $EPOCHS"
        PT_ARGS="--data mnist --data-dir data --epochs $EPOCHS"
        EXCL=20
        DESC="MNIST 60000, $EPOCHS epoch(s)"
        if [ "$STEPS_MLP" -gt 0 ]; then
            DT_ARGS="$DT_ARGS --set train.max_steps=$STEPS_MLP --set data.limit_test=1000"
            PT_ARGS="$PT_ARGS --max-steps $STEPS_MLP --limit-test 1000"
            EXCL=$((STEPS_MLP / 10 + 1))
            DESC="MNIST, $STEPS_MLP steps"
        fi ;;
    lenet5 | cnn)
        if [ "$1" = lenet5 ]; then s=$STEPS_LENET5; else s=$STEPS_CNN; fi
        DT_ARGS="--data mnist --data-dir data --epochs 1000 --set train.max_steps=$s --set data.limit_test=1000"
        PT_ARGS="--data mnist --data-dir data --epochs 1000 --max-steps $s --limit-test 1000"
        EXCL=$((s / 10 + 1))
        DESC="MNIST, $s steps" ;;
    resnet20 | resnet9)
        if [ "$1" = resnet20 ]; then s=$STEPS_RESNET20; else s=$STEPS_RESNET9; fi
        DT_ARGS="--data cifar10 --data-dir $CIFAR_DIR --epochs 1000 --set train.max_steps=$s"
        PT_ARGS="--data cifar10 --data-dir $CIFAR_DIR --epochs 1000 --max-steps $s"
        EXCL=1
        DESC="generated CIFAR 3x32x32 ($((5 * CIFAR_PER_BATCH)) images), $s steps" ;;
    esac
}

# field NAME LINE: the value of NAME=... in a "final:" / "torch:" line
field() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# model_flops LOG: "params MACs FLOPs" per sample, from the model dtrain prints (rank 0):
# MACs of a conv / linear layer = weight numel x output H x W; FLOPs = 6 x sum(MACs) - 2 x MACs of
# the first conv/linear layer (forward 2 MACs, weight gradient 2 MACs, input gradient 2 MACs except
# for the first layer, whose input is the data).
model_flops() {
    awk '/^model [^ ]+ \(.*parameters$/ { p = $(NF - 1) }
        ($2 == "conv" || $2 == "linear") && $1 ~ /^[0-9]+$/ {
            shp = ""; w = ""
            for (i = 1; i <= NF; i++) { if ($i == "->") shp = $(i + 1); if ($i ~ /\.weight\(/) w = $i }
            split(shp, s, "x"); sub(/.*\.weight\(/, "", w); sub(/\)$/, "", w)
            n = split(w, d, ","); numel = 1; for (j = 1; j <= n; j++) numel *= d[j]
            mac = numel * s[2] * s[3]; if (first == "") first = mac; tot += mac
        }
        END { if (tot > 0) printf "%s %.0f %.0f\n", p, tot, 6 * tot - 2 * first }' "$1"
}

# run_isa CFG MODEL LOG: the ISA dtrain ran, into $LOGDIR/isa-CFG-MODEL (first run only): line 1
# the ISA's name (for its peak), line 2 how it is shown. From the run header's "kernels: ISA (...)"
# line when dtrain prints one; else the ISA asked for (auto: the best this CPU runs, from
# /proc/cpuinfo, marked as not confirmed by dtrain).
run_isa() {
    f=$LOGDIR/isa-$1-$2
    cfg_run "$1"
    k=$(grep -m 1 -E '(^|[[:space:]#:])kernels: ' "$3" | sed 's/.*kernels:[[:space:]]*//; s/;.*//')
    isa=${k%% *}
    isa=${isa%[,;:]}
    case $isa in generic | avx2 | avx2w16 | avx512 | avx512bf16) ;; *) k='' ;; esac
    if [ -n "$k" ]; then
        printf '%s\n%s\n' "$isa" "$k" >"$f"
        if [ "$RUN_ISA" != auto ] && [ "$isa" != "$RUN_ISA" ]; then
            echo "bench: warning: $2 $(cfg_long "$1"): asked for ISA $RUN_ISA, dtrain's run header says '$k'" >&2
        fi
    elif [ "$RUN_ISA" = auto ]; then
        printf '%s\n%s\n' "$best_isa" "auto (best: $best_isa; no 'kernels:' line from dtrain)" >"$f"
    else
        printf '%s\n%s\n' "$RUN_ISA" "$RUN_ISA (DTRAIN_KERNELS_ISA; no 'kernels:' line from dtrain)" >"$f"
    fi
}
isa_name() { sed -n 1p "$LOGDIR/isa-$1-$2" 2>/dev/null; }
isa_label() { sed -n 2p "$LOGDIR/isa-$1-$2" 2>/dev/null; }

# run_dtrain CFG MODEL NP BATCH REP: one run at DT_THREADS threads per rank (default 1); appends
# "samples_per_s max_rss_mib train_loss test_acc" to $LOGDIR/CFG-MODEL-NPxBATCH[tT][DT_TAGX].dat
run_dtrain() {
    model_args "$2"
    cfg_run "$1"
    thr=${DT_THREADS:-1}
    tag=$1-$2-$3x$4
    [ "$thr" = 1 ] || tag=${tag}t$thr
    tag=$tag${DT_TAGX:-}
    log=$LOGDIR/$tag-$5.log
    isa_set=
    [ $ISA_KEY = 1 ] && isa_set="--set kernels.isa=$RUN_ISA"
    # shellcheck disable=SC2086
    DTRAIN_KERNELS_ISA=$RUN_ISA mpirun -np "$3" $DT_MPIRUN_FLAGS $MPIRUN_ENV ./dtrain train --model "$2" $DT_ARGS \
        --batch-size "$4" --lr "$LR" --momentum 0.9 --sched cosine --seed 0 --threads "$thr" --set train.progress=never \
        --set train.precision="$RUN_PREC" --set log.header=full $isa_set >"$log" 2>&1
    rc=$?
    final=$(grep '^final:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: dtrain --model $2 -np $3 --batch-size $4 ($(cfg_long "$1")) failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sps=$(field samples_per_s "$final")
    echo "$sps $(field max_rss_mib "$final") $(field train_loss "$final") $(field test_acc "$final")" \
        >>"$LOGDIR/$tag.dat"
    [ -f "$LOGDIR/flops-$2" ] || model_flops "$log" >"$LOGDIR/flops-$2"
    if [ "$3" = 1 ] && [ ! -f "$LOGDIR/isa-$1-$2" ]; then
        run_isa "$1" "$2" "$log"
        printf '  %-8s %-7s ISA: %s\n' "$2" "$(cfg_short "$1")" "$(isa_label "$1" "$2")"
    fi
    printf '  %-8s %-7s %dx%-3d%s run %d: %8s samples/s, %5s MiB, train_loss %s\n' "$2" "$(cfg_short "$1")" "$3" "$4" \
        "$([ "$thr" = 1 ] || echo " x${thr}t")${DT_TAGX:+ (paired)}" "$5" \
        "$sps" "$(field max_rss_mib "$final")" "$(field train_loss "$final")"
}

# run_torch CFG MODEL REP: bench/torch_models.py, 1 process, batch $BATCH, without the OpenBLAS pin
run_torch() {
    model_args "$2"
    cfg_run "$1"
    tag=$1-$2-1x$BATCH
    log=$LOGDIR/$tag-$3.log
    # shellcheck disable=SC2086
    unpinned "$PY" bench/torch_models.py --model "$2" $PT_ARGS --batch-size $BATCH --lr "$LR" --momentum 0.9 \
        --seed 0 --threads 1 --precision "$RUN_PREC" --excl "$EXCL" >"$log" 2>&1
    rc=$?
    final=$(grep '^torch:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: bench/torch_models.py --model $2 --precision $RUN_PREC failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sps=$(field samples_per_s "$final")
    echo "$sps $(field max_rss_mib "$final") $(field train_loss "$final") $(field test_acc "$final") $(field samples_per_s_excl "$final") $(field params "$final")" \
        >>"$LOGDIR/$tag.dat"
    [ -f "$LOGDIR/torch-info" ] ||
        echo "OpenBLAS core $(field openblas_core "$final"), oneDNN ISA $(field onednn_isa "$final" | tr _ ' ')" >"$LOGDIR/torch-info"
    printf '  %-8s %-7s 1x%-3d run %d: %8s samples/s, %5s MiB, train_loss %s (%s samples/s after step %s)\n' \
        "$2" "$(cfg_short "$1")" $BATCH "$3" "$sps" "$(field max_rss_mib "$final")" "$(field train_loss "$final")" \
        "$(field samples_per_s_excl "$final")" "$EXCL"
}

# ---- header --------------------------------------------------------------------------------
echo "== dtrain benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit)$([ "$QUICK" = 1 ] && echo ', BENCH_QUICK=1 (smoke run: few steps, 1 round; not for the record)')"
echo "load average at start (1/5/15 min): $load_start"
echo "CPU: $cpu${cpu_fms:+ ($cpu_fms)}, $ncpu logical CPUs"
echo "CPU flags:${flags_have:- none of those below}${flags_lack:+ (lacks:$flags_lack)}"
echo "dtrain kernels: auto picks $best_isa on this CPU (from /proc/cpuinfo); DTRAIN_KERNELS_ISA=${DTRAIN_KERNELS_ISA:-unset} -> the dtrain and dtrain-bf16 configurations run kernels.isa $ISA_MAIN$([ $ISA_KEY = 1 ] && echo ' (config key and environment variable)')"
echo "OpenBLAS: core $blas_core (dtrain), ${blas_lib:-library not found by ldd}${blas_config:+ ($blas_config)}"
echo "OpenBLAS pin: $coretype_note$([ $PINNED = 1 ] && echo "; unpinned core: $blas_core_free")"
echo "threads: OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OMP_NUM_THREADS=$OMP_NUM_THREADS MKL_NUM_THREADS=$MKL_NUM_THREADS, dtrain --threads 1 (2 in the threads rows), torch.set_num_threads(1)"
if [ $fma_ok = 1 ]; then
    echo "FMA peak: bench/fma_peak.c (independent chains; best of 3 x ${FMA_MS} ms, thread CPU time) built with the Makefile's flags: $cflags"
else
    echo "FMA peak: not measured ($fma_why)"
fi
if [ $sgemm_ok = 1 ]; then
    echo "sgemm rate: bench/sgemm_rate.c built with the same flags (a reference: dtrain's own kernels are not OpenBLAS calls)"
else
    echo "sgemm rate: not measured ($sgemm_why)"
fi
[ $have_torch = 1 ] || echo "PyTorch: not available ($torch_why): dtrain numbers only"
[ -n "$cfg_notes" ] && echo "configurations:${cfg_notes%;}"

# ---- data ----------------------------------------------------------------------------------
case " $MODELS " in *" resnet20 "* | *" resnet9 "*)
    if [ ! -f "$CIFAR_DIR/cifar10/test_batch.bin" ] ||
        [ "$(wc -c <"$CIFAR_DIR/cifar10/data_batch_1.bin")" -ne $((CIFAR_PER_BATCH * 3073)) ]; then
        rm -rf "$CIFAR_DIR/cifar10"
        "$MKDATA" cifar "$CIFAR_DIR" $CIFAR_PER_BATCH $CIFAR_TEST >"$LOGDIR/mkdata.log" 2>&1 ||
            die "$MKDATA cifar $CIFAR_DIR failed: $(cat "$LOGDIR/mkdata.log")"
    fi ;;
esac

# ---- profile mode (BENCH_PROFILE=1): each model's dtrain run once under perf record ---------
# perf record --call-graph dwarf (dtrain and OpenBLAS have no frame pointers, so -g alone gives no
# usable call chains), 499 Hz; then the flat self-time profile (perf report --no-children --sort
# symbol) and bench/perf_layers.py's split of the training step by layer and by kernel.
if [ "$PROFILE" = 1 ]; then
    command -v perf >/dev/null 2>&1 || die "BENCH_PROFILE=1 needs perf (linux-perf)"
    PERFDIR=$OUTDIR/perf
    mkdir -p "$PERFDIR" || die "cannot create $PERFDIR"
    echo
    run_sgemm 1
    echo "profiling (perf record --call-graph dwarf -F 499, one dtrain fp32 1x$BATCH run per model, kernels.isa $ISA_MAIN):"
    for m in $MODELS; do
        model_args "$m"
        isa_set=
        [ $ISA_KEY = 1 ] && isa_set="--set kernels.isa=$ISA_MAIN"
        # shellcheck disable=SC2086
        DTRAIN_KERNELS_ISA=$ISA_MAIN mpirun -np 1 $DT_MPIRUN_FLAGS $MPIRUN_ENV perf record --call-graph dwarf,16384 -F 499 \
            -o "$PERFDIR/$m.data" ./dtrain train --model "$m" $DT_ARGS --batch-size $BATCH \
            --lr "$LR" --momentum 0.9 --sched cosine --seed 0 --threads 1 --set train.progress=never \
            $isa_set >"$PERFDIR/$m.log" 2>&1 ||
            die "perf record of $m failed; see $PERFDIR/$m.log"
        perf report -i "$PERFDIR/$m.data" --no-children --sort symbol --stdio -g none \
            --percent-limit 0.3 >"$PERFDIR/$m.txt" 2>/dev/null
        perf report -i "$PERFDIR/$m.data" --no-children --sort dso --stdio -g none \
            --percent-limit 0.3 >"$PERFDIR/$m-dso.txt" 2>/dev/null
        echo
        echo "== $m ($DESC): $(grep '^final:' "$PERFDIR/$m.log" | sed 's/.*\(samples_per_s=[^ ]*\).*/\1/') under perf"
        echo "   whole process, by library: $(awk '/%/ && !/^#/ { printf "%s %s  ", $2, $1 }' "$PERFDIR/$m-dso.txt")"
        echo "   whole process, top symbols (self):"
        awk '/%/ && !/^#/ { n++; if (n <= 12) printf "   %7s  %s\n", $1, $3 }' "$PERFDIR/$m.txt"
        if command -v python3 >/dev/null 2>&1; then
            perf script -i "$PERFDIR/$m.data" -F ip,sym,dso 2>/dev/null |
                python3 bench/perf_layers.py --title "$m training step" >"$PERFDIR/$m-layers.txt" 2>&1
            sed 's/^/ /' "$PERFDIR/$m-layers.txt"
        fi
    done
    # per-layer conv kernel timings (bench/conv_layers.c against build/libdtrain.a)
    # shellcheck disable=SC2016
    ccflags=$(printf 'bench-print-flags:\n\t@echo $(CC) $(CFLAGS) -MF /dev/null\n' |
        make -s --no-print-directory -f Makefile -f - bench-print-flags 2>/dev/null)
    # shellcheck disable=SC2016
    ldlibs=$(printf 'bench-print-libs:\n\t@echo $(LDLIBS)\n' |
        make -s --no-print-directory -f Makefile -f - bench-print-libs 2>/dev/null)
    echo
    # shellcheck disable=SC2086
    if [ -f build/libdtrain.a ] && [ -n "$ccflags" ] &&
        $ccflags -o "$OUTDIR/conv_layers" bench/conv_layers.c build/libdtrain.a $ldlibs \
            >"$PERFDIR/conv_layers-build.log" 2>&1; then
        "$OUTDIR/conv_layers" $BATCH 2>&1 | tee "$PERFDIR/conv_layers.txt"
    else
        echo "conv_layers: not built (needs build/libdtrain.a: make all; see $PERFDIR/conv_layers-build.log)"
    fi
    echo
    echo "reports: $PERFDIR/MODEL.txt (by symbol), MODEL-dso.txt (by library), MODEL-layers.txt"
    echo "(training step by layer and kernel); perf data: $PERFDIR/MODEL.data, e.g."
    echo "  perf report -i $PERFDIR/MODEL.data --no-children --sort symbol; conv_layers.txt (per-layer conv timings)"
    exit 0
fi


echo
echo "workloads (batch $BATCH per rank, SGD momentum 0.9, cosine LR $LR -> 0 per step, seed 0):"
for m in $MODELS; do
    model_args "$m"
    echo "  $m: $DESC"
done
[ "$SCALING" = 1 ] && echo "  mlp scaling: dtrain fp32 also at 2 ranks x 64 and 2 ranks x 128"
[ "$THREADS_ROWS" = 1 ] && echo "  threads:$THREAD_MODELS: dtrain fp32 also at 1 rank x 2 threads (batch $BATCH) and 2 ranks x 1 thread (batch $((BATCH / 2)) each)"
echo "configurations, per model in this order:"
for c in $CFGS; do
    printf '  %-7s = %s\n' "$(cfg_short "$c")" "$(cfg_long "$c")"
done
echo
echo "running ($REPEAT round(s), runs interleaved):"
t_start=$(date +%s)
rep=1
while [ $rep -le "$REPEAT" ]; do
    run_fma $rep
    run_sgemm $rep
    for m in $MODELS; do
        for c in $CFGS; do
            case $c in
            dt*) run_dtrain "$c" "$m" 1 $BATCH $rep ;;
            pt*) run_torch "$c" "$m" $rep ;;
            esac
        done
    done
    if [ "$SCALING" = 1 ]; then
        run_dtrain dt mlp 2 64 $rep
        run_dtrain dt mlp 2 128 $rep
    fi
    run_c2c $rep
    if [ "$THREADS_ROWS" = 1 ]; then
        for m in $THREAD_MODELS; do
            # a 1 x 1 run right before the 1 x 2 one: the ratio pairs runs seconds apart (this
            # VM has slow phases of minutes; the model's main 1 x 1 run is minutes earlier)
            DT_TAGX=p run_dtrain dt "$m" 1 $BATCH $rep
            DT_THREADS=2 run_dtrain dt "$m" 1 $BATCH $rep
            # the scaling rows ran mlp 2 x 64 already
            if ! { [ "$SCALING" = 1 ] && [ "$m" = mlp ] && [ "$BATCH" = 128 ]; }; then
                run_dtrain dt "$m" 2 $((BATCH / 2)) $rep
            fi
        done
    fi
    rep=$((rep + 1))
done
t_total=$(($(date +%s) - t_start))
load_end=$(loadavg)
summarize_sgemm
peak_ymm=$(peak ymm) peak_zmm=$(peak zmm) peak_bf16=$(peak bf16)
peak_of() {
    case $1 in ymm) echo "$peak_ymm" ;; zmm) echo "$peak_zmm" ;; bf16) echo "$peak_bf16" ;; esac
}
kind_name() { case $1 in bf16) echo vdpbf16ps ;; *) echo "$1" ;; esac; }

# median FILE COL: the median of column COL of FILE ("-" when that column is empty)
median() {
    [ -f "$1" ] || { echo -; return; }
    awk -v c="$2" '$c != "" && $c != "nan" { print $c }' "$1" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR == 0) print "-"; else printf "%.0f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
colmax() { [ -f "$1" ] && awk -v c="$2" '$c > m { m = $c } END { print m + 0 }' "$1"; }
first_of() { [ -f "$1" ] && awk -v c="$2" 'NR == 1 { print $c }' "$1"; }
div() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf f, a / b }'; }
dat() { echo "$LOGDIR/$1-$2-1x$BATCH.dat"; }
sps_of() { median "$(dat "$1" "$2")" 1; }
flops_of() { awk '{ print $3 }' "$LOGDIR/flops-$1" 2>/dev/null; }
gf_of() { awk -v s="$(sps_of "$1" "$2")" -v f="$(flops_of "$2")" 'BEGIN { if (s == "-" || f == "") print "n/a"; else printf "%.1f", s * f / 1e9 }'; }
# kind_of CFG MODEL: the peak a configuration's GFLOP/s is set against: dtrain's by the ISA it ran
# and its precision; PyTorch's by the best ISA of this CPU (what oneDNN and OpenBLAS pick)
kind_of() {
    case $1 in
    dt | dtavx2) peak_kind "$(isa_name "$1" "$2")" fp32 ;;
    dtbf16) peak_kind "$(isa_name "$1" "$2")" bf16 ;;
    pt) peak_kind "$best_isa" fp32 ;;
    ptbf16) peak_kind "$best_isa" bf16 ;;
    esac
}
pct_of() {
    k=$(kind_of "$1" "$2")
    div "$(gf_of "$1" "$2")" "$(peak_of "$k")" '%.3f' | awk -v k="$(kind_name "$k")" '$1 != "n/a" { printf "%.0f%% %s", $1 * 100, k; next } { print "n/a" }'
}
ratio() { div "$(sps_of "$1" "$3")" "$(sps_of "$2" "$3")" '%.2f'; }

# table MODE: '|'-separated lines on stdin, the first the header, as markdown (md) or as aligned
# text (txt: first column left-aligned, the others right-aligned)
table() {
    awk -F'|' -v mode="$1" '
        { n = NR; nf[n] = NF; for (i = 1; i <= NF; i++) { c[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) } }
        END {
            for (r = 1; r <= n; r++) {
                line = ""
                for (i = 1; i <= nf[r]; i++) {
                    if (mode == "md") line = line "| " c[r, i] " "
                    else if (i == 1) line = sprintf("%-" w[i] "s", c[r, i])
                    else line = line sprintf("  %" w[i] "s", c[r, i])
                }
                print line (mode == "md" ? "|" : "")
                if (mode == "md" && r == 1) {
                    line = "|"
                    for (i = 1; i <= nf[r]; i++) line = line (i == 1 ? "---|" : "--:|")
                    print line
                }
            }
        }'
}

# ---- tables --------------------------------------------------------------------------------
first_model=${MODELS%% *}
# legend: each configuration with the ISA it ran (per model when the models differ)
legend=''
for c in $CFGS; do
    case $c in
    dt*)
        l=$(isa_label "$c" "$first_model") same=1
        for m in $MODELS; do [ "$(isa_label "$c" "$m")" = "$l" ] || same=0; done
        if [ $same = 0 ]; then
            l=''
            for m in $MODELS; do l="$l${l:+; }$m: $(isa_label "$c" "$m")"; done
        fi
        legend="$legend$(cfg_short "$c") = $(cfg_long "$c"): ISA $l
" ;;
    pt*)
        legend="$legend$(cfg_short "$c") = $(cfg_long "$c"): $(cat "$LOGDIR/torch-info" 2>/dev/null), OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
" ;;
    esac
done

t_sps="model|MFLOP/sample"
t_gf="model"
for c in $CFGS; do
    t_sps="$t_sps|$(cfg_short "$c")"
    t_gf="$t_gf|$(cfg_short "$c")"
done
t_ratio="model"
has_cfg dt && has_cfg pt && t_ratio="$t_ratio|dt/pt fp32"
has_cfg dtbf16 && has_cfg ptbf16 && t_ratio="$t_ratio|dt/pt bf16"
has_cfg dt && has_cfg dtbf16 && t_ratio="$t_ratio|dt bf16/fp32"
has_cfg pt && has_cfg ptbf16 && t_ratio="$t_ratio|pt bf16/fp32"
has_cfg dt && has_cfg dtavx2 && t_ratio="$t_ratio|dt fp32/avx2"
t_check="model|config|train loss|test acc|peak RSS MiB"
for m in $MODELS; do
    mflop=$(awk -v f="$(flops_of "$m")" 'BEGIN { if (f == "") print "n/a"; else printf "%.1f", f / 1e6 }')
    r="$m|$mflop" g="$m"
    for c in $CFGS; do
        r="$r|$(sps_of "$c" "$m")"
        g="$g|$(gf_of "$c" "$m") ($(pct_of "$c" "$m"))"
        t_check="$t_check
$m|$(cfg_short "$c")|$(first_of "$(dat "$c" "$m")" 3)|$(first_of "$(dat "$c" "$m")" 4)|$(colmax "$(dat "$c" "$m")" 2)"
    done
    t_sps="$t_sps
$r"
    t_gf="$t_gf
$g"
    r="$m"
    has_cfg dt && has_cfg pt && r="$r|$(ratio dt pt "$m")"
    has_cfg dtbf16 && has_cfg ptbf16 && r="$r|$(ratio dtbf16 ptbf16 "$m")"
    has_cfg dt && has_cfg dtbf16 && r="$r|$(ratio dtbf16 dt "$m")"
    has_cfg pt && has_cfg ptbf16 && r="$r|$(ratio ptbf16 pt "$m")"
    has_cfg dt && has_cfg dtavx2 && r="$r|$(ratio dt dtavx2 "$m")"
    t_ratio="$t_ratio
$r"
done

# goals: issue 12's for this CPU's class (AVX-512, AVX512_BF16), issue 3's on AVX2 CPUs
t_goal="goal|model|measured|verdict"
ngoal=0
goal() { # goal TEXT MODEL VALUE OP LIMIT
    v=$3
    verdict=$(awk -v v="$v" -v o="$4" -v l="$5" 'BEGIN { if (v == "n/a" || v == "" || v == "-") print "n/a"; else if ((o == ">=" && v + 0 >= l + 0) || (o == "<=" && v + 0 <= l + 0)) print "met"; else print "NOT met" }')
    t_goal="$t_goal
$1|$2|$v|$verdict"
    ngoal=$((ngoal + 1))
}
in_models() { case " $MODELS " in *" $1 "*) return 0 ;; esac; return 1; }
goal_src="issue 12"
case $best_isa in
avx512 | avx512bf16)
    if has_cfg dt && has_cfg pt; then
        for m in $MODELS; do goal "dt fp32 >= 1.5x pt fp32" "$m" "$(ratio dt pt "$m")" ">=" 1.5; done
    fi
    if has_cfg dt; then
        for m in mlp cnn; do
            in_models $m || continue
            p=$(div "$(gf_of dt $m)" "$peak_zmm" '%.3f' | awk '$1 != "n/a" { printf "%.0f", $1 * 100; next } { print }')
            goal "dt fp32 >= 60% of zmm peak" $m "$p" ">=" 60
        done
    fi
    if [ $best_isa = avx512bf16 ]; then
        if has_cfg dt && has_cfg dtbf16; then
            for m in mlp cnn resnet20; do
                in_models $m || continue
                if [ $m = mlp ]; then l=1.3; else l=1.6; fi
                goal "dt bf16 >= ${l}x dt fp32" $m "$(ratio dtbf16 dt $m)" ">=" $l
            done
            if in_models resnet20; then
                goal "dt bf16 peak RSS <= 0.7x fp32" resnet20 \
                    "$(div "$(colmax "$(dat dtbf16 resnet20)" 2)" "$(colmax "$(dat dt resnet20)" 2)" '%.2f')" "<=" 0.7
            fi
        fi
        if has_cfg dtbf16 && has_cfg ptbf16; then
            for m in $MODELS; do goal "dt bf16 >= 1.5x pt bf16" "$m" "$(ratio dtbf16 ptbf16 "$m")" ">=" 1.5; done
        fi
    fi ;;
*)
    goal_src="issue 3; this CPU has no AVX-512, and issue 12 asks AVX2 CPUs for no model slower than at e6cab2d, which one run cannot check"
    if has_cfg dt && has_cfg pt; then
        for m in $MODELS; do
            case $m in mlp) l=1.25 ;; lenet5) l=3 ;; cnn) l=1.3 ;; *) continue ;; esac
            goal "dt fp32 >= ${l}x pt fp32" "$m" "$(ratio dt pt "$m")" ">=" "$l"
        done
    fi ;;
esac

t_scal=
if [ "$SCALING" = 1 ]; then
    base=$(sps_of dt mlp)
    tsps=-
    has_cfg pt && tsps=$(sps_of pt mlp)
    t_scal="config|samples/s|peak RSS MiB|vs 1x128|dtrain/PyTorch|train loss"
    for cc in 1x128 2x64 2x128; do
        f=$LOGDIR/dt-mlp-$cc.dat
        np=${cc%x*} b=${cc#*x}
        ranks=ranks
        [ "$np" = 1 ] && ranks=rank
        s=$(median "$f" 1)
        t_scal="$t_scal
$(printf 'dtrain fp32 %s %s x %s (global %s)' "$np" $ranks "$b" $((np * b)))|$s|$(colmax "$f" 2)|$(div "$s" "$base" '%.2f')|$(div "$s" "$tsps" '%.2f')|$(first_of "$f" 3)"
    done
    if has_cfg pt; then
        f=$(dat pt mlp)
        t_scal="$t_scal
PyTorch fp32 1 process x 128 (global 128)|$tsps|$(colmax "$f" 2)|$(div "$tsps" "$base" '%.2f')|1.00|$(first_of "$f" 3)"
    fi
fi

# paired_ratio A B: the median over rounds of A's run over B's run of the same round (column 1)
paired_ratio() {
    awk 'NR == FNR { a[FNR] = $1; next } FNR in a && $1 > 0 { print a[FNR] / $1 }' "$1" "$2" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%.2f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# threads rows (issue 13): 1 rank x 2 threads against 1 rank x 1 thread and 2 ranks x 1 thread
t_thr=
if [ "$THREADS_ROWS" = 1 ]; then
    thr_h=$((BATCH / 2))
    t_thr="model|1x1 samples/s|1x2 threads|2 ranks x 1|1x2 / 1x1|goal|1x2 / 2x1|goal|met"
    for m in $THREAD_MODELS; do
        thr_a=$(median "$LOGDIR/dt-$m-1x${BATCH}p.dat" 1)
        thr_b=$(median "$LOGDIR/dt-$m-1x${BATCH}t2.dat" 1)
        thr_c=$(median "$LOGDIR/dt-$m-2x$thr_h.dat" 1)
        thr_g=1.8
        [ "$m" = mlp ] && thr_g=1.6
        # 1x2 / 1x1: the median of each round's ratio of the paired runs
        thr_r1=$(paired_ratio "$LOGDIR/dt-$m-1x${BATCH}t2.dat" "$LOGDIR/dt-$m-1x${BATCH}p.dat")
        thr_r2=$(div "$thr_b" "$thr_c" '%.2f')
        thr_met=$(awk -v a="$thr_r1" -v b="$thr_r2" -v g="$thr_g" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else print (a + 0 >= g && b + 0 >= 0.95) ? "yes" : "no" }')
        t_thr="$t_thr
$m|$thr_a|$thr_b|$thr_c|$thr_r1|>= $thr_g|$thr_r2|>= 0.95|$thr_met"
    done
fi

# per-round ratios: each round's dtrain run over the PyTorch run of the same precision after it
pair_notes='' excl_notes=''
for m in $MODELS; do
    for pr in "dt pt" "dtbf16 ptbf16"; do
        # shellcheck disable=SC2086
        set -- $pr
        if ! has_cfg "$1" || ! has_cfg "$2"; then continue; fi
        pair_notes="$pair_notes $m $(cfg_short "$1" | sed 's/^dt //') $(awk 'NR == FNR { d[FNR] = $1; next } FNR in d && $1 > 0 { printf "%s%.2f", sep, d[FNR] / $1; sep = " " }' "$(dat "$1" "$m")" "$(dat "$2" "$m")");"
    done
    for c in pt ptbf16; do
        has_cfg $c || continue
        model_args "$m"
        excl_notes="$excl_notes $m $(cfg_short $c) $(median "$(dat $c "$m")" 5) (after step $EXCL);"
    done
done

peaks_line="FMA peak per core (bench/fma_peak.c, median of $REPEAT round(s) of the best of 3 x ${FMA_MS} ms, thread CPU time): ymm ${peak_ymm:-n/a}, zmm ${peak_zmm:-n/a}, vdpbf16ps ${peak_bf16:-n/a} GFLOP/s (FLOPs per instruction: ymm FMA 16, zmm FMA 32, vdpbf16ps 64 = 16 lanes x 2 bf16 products x 2)"
notes="Load average (1/5/15 min) at start: $load_start; at end: $load_end (the benchmark itself keeps about 1 core busy, 2 during the 2-rank runs)."
notes="$notes
samples/s: median of $REPEAT run(s), training samples per second from step 0 (no warm-up), evaluation excluded; dtrain through mpirun -np 1 (1 BLAS thread), PyTorch 1 process."
notes="$notes
FLOPs per sample (analytic, MFLOP column): MACs of a conv = OC x OH x OW x C x KH x KW, of a linear = in x out; \
FLOPs = 2 MACs forward + 2 MACs weight gradient + 2 MACs input gradient for every conv/linear layer but the first \
(its input is the data) = 6 x sum(MACs) - 2 x MACs(first layer); bias, ReLU, pooling, BatchNorm, add, loss and optimizer are not counted. \
GFLOP/s = samples/s x FLOPs per sample, the same count for fp32 and bf16."
notes="$notes
% of peak: GFLOP/s over the measured FMA peak of one core for the ISA in use: ymm for avx2 (and avx2w16, generic), zmm for avx512 and for fp32 on avx512bf16, vdpbf16ps for bf16 on avx512bf16. dtrain: the ISA its run header names (else the one asked for); PyTorch: the best ISA of this CPU ($best_isa: oneDNN and OpenBLAS pick their kernels by CPU)."
if [ -n "$sgemm_peak" ]; then
    notes="$notes
sgemm at 1 thread (a reference, not a ceiling; median over the rounds of each round's median of 5 trials, and the best trial): OpenBLAS core $blas_core: $(printf '%s\n' "$sgemm_lines" | awk '{ l = $5; sub(/label=/, "", l); m = $6; sub(/.*=/, "", m); printf "%s%s %s", sep, l, m; sep = ", " }') GFLOP/s$([ -n "$sgemm_free_lines" ] && printf '; unpinned (core %s, as PyTorch gets it): %s GFLOP/s' "$blas_core_free" "$(printf '%s\n' "$sgemm_free_lines" | awk '{ l = $5; sub(/label=/, "", l); m = $6; sub(/.*=/, "", m); printf "%s%s %s", sep, l, m; sep = ", " }')")."
fi
if [ $have_torch = 1 ]; then
    torch_ver=$(cat "$LOGDIR"/pt*-1.log 2>/dev/null | sed -n 's/^torch \([^,]*\), intra-op.*/\1/p' | head -n 1)
    notes="$notes
PyTorch $torch_ver ($PY): torch.set_num_threads(1), 1 process; convolutions through oneDNN, linear layers through OpenBLAS (fp32) or oneDNN (bf16 autocast); pt bf16 = forward and loss under torch.autocast(\"cpu\", dtype=torch.bfloat16), fp32 master weights, the same SGD."
    [ -n "$pair_notes" ] && notes="$notes
dtrain/PyTorch per round (each dtrain run over the PyTorch run of the same precision in the same round; the tables' ratios are those of the medians):${pair_notes%;}."
    [ -n "$excl_notes" ] && notes="$notes
PyTorch steady state, leaving out the first steps (for reference only, not used for the ratios):${excl_notes%;}."
fi
if [ "$SCALING" = 1 ]; then
    notes="$notes
mlp scaling on $ncpu logical CPUs: 2x64 is the same training as 1x128 (global batch 128, strong scaling); 2x128 is the same work per rank and step (global batch 256, half the steps); with 2 ranks on 2 cores mpirun and Open MPI's progress engine share the cores."
fi
[ "$QUICK" = 1 ] && notes="$notes
BENCH_QUICK=1: a smoke run (1 round of few steps, start-up weighs more): check the machinery with it, quote a full run."

gen_md() {
    echo "# dtrain training throughput"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$([ "$QUICK" = 1 ] && echo ', BENCH_QUICK=1 (smoke run)')"
    echo "- load average at start (1/5/15 min): $load_start"
    echo "- CPU: $cpu${cpu_fms:+ ($cpu_fms)}, $ncpu logical CPUs; flags:${flags_have:- none}${flags_lack:+ (lacks:$flags_lack)}; dtrain's auto ISA here: $best_isa"
    echo "- $peaks_line"
    echo "- $(c2c_summary)"
    echo "- OpenBLAS: core $blas_core (dtrain), \`${blas_lib:-?}\`${blas_config:+ ($blas_config)}; pin: $coretype_note$([ $PINNED = 1 ] && echo "; unpinned core (PyTorch): $blas_core_free")"
    echo "- OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; dtrain --threads 1; torch.set_num_threads(1)"
    echo "- workloads (batch $BATCH, 1 rank, SGD momentum 0.9, cosine LR $LR -> 0, seed 0):"
    for m in $MODELS; do
        model_args "$m"
        echo "  $m: $DESC"
    done
    echo "- configurations:"
    printf '%s' "$legend" | sed 's/^/  - /'
    echo
    echo "samples/s (median of $REPEAT round(s))"
    echo
    printf '%s\n' "$t_sps" | table md
    if [ "$t_ratio" != model ]; then
        echo
        echo "ratios of the medians"
        echo
        printf '%s\n' "$t_ratio" | table md
    fi
    echo
    echo "GFLOP/s (% of the measured peak of the ISA in use)"
    echo
    printf '%s\n' "$t_gf" | table md
    if [ $ngoal -gt 0 ]; then
        echo
        echo "goals ($goal_src)"
        echo
        printf '%s\n' "$t_goal" | table md
    fi
    echo
    echo "Same work check (run 1): train loss, test accuracy (%), peak RSS MiB (max over runs)"
    echo
    printf '%s\n' "$t_check" | table md
    if [ -n "$t_scal" ]; then
        echo
        echo "MLP scaling and memory"
        echo
        printf '%s\n' "$t_scal" | table md
    fi
    if [ -n "$t_thr" ]; then
        echo
        echo "Threads per rank (issue 13; dtrain fp32, global batch $BATCH, medians)"
        echo
        printf '%s\n' "$t_thr" | table md
    fi
    echo
    printf '%s\n' "$notes" | sed 's/$/  /'
}
gen_md >"$MD"

echo
echo "$peaks_line"
c2c_summary
echo "configurations:"
printf '%s' "$legend" | sed 's/^/  /'
echo
echo "samples/s (median of $REPEAT round(s)):"
printf '%s\n' "$t_sps" | table txt
if [ "$t_ratio" != model ]; then
    echo
    echo "ratios of the medians:"
    printf '%s\n' "$t_ratio" | table txt
fi
echo
echo "GFLOP/s (% of the measured peak of the ISA in use):"
printf '%s\n' "$t_gf" | table txt
if [ $ngoal -gt 0 ]; then
    echo
    echo "goals ($goal_src):"
    printf '%s\n' "$t_goal" | table txt
fi
echo
echo "same work check (run 1; peak RSS: max over runs):"
printf '%s\n' "$t_check" | table txt
if [ -n "$t_scal" ]; then
    echo
    echo "mlp scaling and memory:"
    printf '%s\n' "$t_scal" | table txt
fi
if [ -n "$t_thr" ]; then
    echo
    echo "threads per rank (issue 13; dtrain fp32, global batch $BATCH, medians; a shared or 1-core machine cannot meet them):"
    printf '%s\n' "$t_thr" | table txt
fi
echo
printf '%s\n' "$notes"
echo "markdown: $OUTDIR/results.md, logs: $LOGDIR/ (runs took ${t_total}s)"
exit 0
