#!/bin/sh
# bench/run.sh - dtrain training throughput per model next to PyTorch, achieved GFLOP/s against the
# sgemm rate, MLP 1-rank/2-rank scaling and peak memory (bench/README.md).
#   make bench                  (deps + data + build, then this script)
#   sh bench/run.sh             (from anywhere; needs ./dtrain, build/tests/tool_mkdata, data/mnist/)
# Knobs (environment): BENCH_REPEAT (3: each number is the median over that many rounds),
# BENCH_EPOCHS (1: MNIST epochs of the mlp runs), BENCH_STEPS_LENET5 (200), BENCH_STEPS_CNN (30),
# BENCH_STEPS_RESNET20 (4), BENCH_LR (0.05, dtrain's default), BENCH_PYTHON (/usr/bin/python3),
# BENCH_MODELS (mlp lenet5 cnn resnet20), BENCH_WAIT (0: seconds to wait for a 1-minute load average below
# BENCH_MAX_LOAD, default 1, before starting), BENCH_PROFILE (1: instead of the benchmark, run
# each model's dtrain workload once under perf record and print where the time goes).
# Output: the tables on stdout, the same as markdown in bench/out/results.md, run logs in
# bench/out/logs/.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUTDIR=bench/out
LOGDIR=$OUTDIR/logs
MD=$OUTDIR/results.md
EPOCHS=${BENCH_EPOCHS:-1}
REPEAT=${BENCH_REPEAT:-3}
LR=${BENCH_LR:-0.05}
PY=${BENCH_PYTHON:-/usr/bin/python3}
MODELS=${BENCH_MODELS:-mlp lenet5 cnn resnet20}
STEPS_LENET5=${BENCH_STEPS_LENET5:-200}
STEPS_CNN=${BENCH_STEPS_CNN:-30}
STEPS_RESNET20=${BENCH_STEPS_RESNET20:-4}
WAIT=${BENCH_WAIT:-0}
PROFILE=${BENCH_PROFILE:-0}
MAX_LOAD=${BENCH_MAX_LOAD:-1}
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
posint BENCH_STEPS_LENET5 "$STEPS_LENET5"
posint BENCH_STEPS_CNN "$STEPS_CNN"
posint BENCH_STEPS_RESNET20 "$STEPS_RESNET20"
case $WAIT in '' | *[!0-9]*) die "BENCH_WAIT must be a number of seconds, not '$WAIT'" ;; esac
for m in $MODELS; do
    case $m in mlp | lenet5 | cnn | resnet20) ;; *) die "BENCH_MODELS: unknown model '$m' (mlp lenet5 cnn resnet20)" ;; esac
done
[ -x ./dtrain ] || die "$ROOT/dtrain is missing (or not executable): build it with 'make all', or run 'make bench'"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "data/mnist/$f" ] || die "data/mnist/$f is missing: fetch MNIST with 'make data'"
done
command -v mpirun >/dev/null 2>&1 || die "mpirun not found: install Open MPI with 'make deps'"
case " $MODELS " in *" resnet20 "*)
    [ -x "$MKDATA" ] || die "$MKDATA is missing (it writes the CIFAR-format data for resnet20): build it with 'make all'" ;;
esac

# before the exports below: GNU nproc honours OMP_NUM_THREADS
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || OMP_NUM_THREADS='' nproc 2>/dev/null || echo '?')

# One BLAS / OpenMP / MKL thread everywhere (forced, whatever the caller's environment says).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# shellcheck source=scripts/mpi-env.sh
. scripts/mpi-env.sh
MPIRUN_ENV="-x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS -x MKL_NUM_THREADS"
[ -n "${OPENBLAS_CORETYPE:-}" ] && MPIRUN_ENV="$MPIRUN_ENV -x OPENBLAS_CORETYPE"

mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
rm -f "$LOGDIR"/*.log "$LOGDIR"/*.dat

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
blas_lib=$(ldd ./dtrain 2>/dev/null | awk '/libopenblas/ { print $3; exit }')
[ -n "$blas_lib" ] && blas_lib=$(readlink -f "$blas_lib")
# OpenBLAS (DYNAMIC_ARCH builds) prints "Core: <name>" at load time with OPENBLAS_VERBOSE=2.
blas_core=$(OPENBLAS_VERBOSE=2 ./dtrain --version 2>&1 | sed -n 's/^Core:[[:space:]]*//p' | head -n 1)
blas_config=
coretype_note="not set"
[ -n "${OPENBLAS_CORETYPE:-}" ] && coretype_note="set to '$OPENBLAS_CORETYPE' in the environment (not changed by the benchmark)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain 2>/dev/null)" ] && commit="$commit (working tree modified)"

# ---- sgemm rate: bench/sgemm_rate.c with the Makefile's compiler and flags -----------------
# The Makefile's CC, WARN and OPT (OPT honours NATIVE=1 from the environment), read by make itself.
# shellcheck disable=SC2016
cflags=$(printf 'bench-print-flags:\n\t@echo $(CC) $(WARN) $(OPT)\n' |
    make -s --no-print-directory -f Makefile -f - bench-print-flags 2>/dev/null)
[ -n "$cflags" ] || cflags="gcc -std=c11 -O3 -g -fno-math-errno"
SGEMM_BIN=$OUTDIR/sgemm_rate
sgemm_ok=0 sgemm_peak='' sgemm_lines='' sgemm_why=''
# shellcheck disable=SC2046,SC2086
if $cflags -D_GNU_SOURCE $(pkg-config --cflags openblas 2>/dev/null) -o "$SGEMM_BIN" bench/sgemm_rate.c \
    $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) >"$LOGDIR/sgemm-build.log" 2>&1; then
    # a tiny shape: the library's core type and configuration
    if "$SGEMM_BIN" 8x8x8 >"$LOGDIR/sgemm-core.log" 2>&1; then
        sgemm_ok=1
        [ -n "$blas_core" ] || blas_core=$(sed -n 's/^openblas core=\([^ ]*\).*/\1/p' "$LOGDIR/sgemm-core.log")
        blas_config=$(sed -n 's/^openblas core=[^ ]* config=//p' "$LOGDIR/sgemm-core.log")
    else
        sgemm_why="bench/out/sgemm_rate failed (see $LOGDIR/sgemm-core.log)"
    fi
else
    sgemm_why="bench/sgemm_rate.c did not build (see $LOGDIR/sgemm-build.log)"
fi

# run_sgemm REP: the default shapes once (about 1.5 s), into $LOGDIR/sgemm-REP.log
run_sgemm() {
    [ $sgemm_ok = 1 ] || return 0
    "$SGEMM_BIN" >"$LOGDIR/sgemm-$1.log" 2>&1 || { echo "bench: sgemm_rate failed: $(tail -n 3 "$LOGDIR/sgemm-$1.log")" >&2; return 0; }
    printf '  sgemm    rates   run %d: %s GFLOP/s\n' "$1" "$(awk '/^sgemm / { l = $5; sub(/label=/, "", l); m = $6; sub(/.*=/, "", m); printf "%s%s %s", sep, l, m; sep = ", " }' "$LOGDIR/sgemm-$1.log")"
}

# summarize_sgemm: sgemm_lines (per shape: the median over the rounds of each round's median, the
# best over all trials) and sgemm_peak (the largest of those medians)
summarize_sgemm() {
    [ $sgemm_ok = 1 ] || return 0
    sgemm_lines=$(cat "$LOGDIR"/sgemm-[0-9]*.log 2>/dev/null | awk '/^sgemm / {
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
        }')
    sgemm_peak=$(printf '%s\n' "$sgemm_lines" | awk '{ sub(/.*median_gflops=/, ""); if ($1 + 0 > m) m = $1 + 0 } END { if (m > 0) print m }')
}
[ -n "$blas_core" ] || blas_core=unknown

echo "== dtrain benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit)"
echo "load average at start (1/5/15 min): $load_start"
echo "CPU: $cpu${cpu_fms:+ ($cpu_fms)}, $ncpu logical CPUs"
echo "OpenBLAS: core $blas_core, ${blas_lib:-library not found by ldd}${blas_config:+ ($blas_config)}"
echo "OPENBLAS_CORETYPE: $coretype_note"
echo "threads: OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OMP_NUM_THREADS=$OMP_NUM_THREADS MKL_NUM_THREADS=$MKL_NUM_THREADS, dtrain --threads 1, torch.set_num_threads(1)"
if [ $sgemm_ok = 1 ]; then
    echo "sgemm rate: bench/sgemm_rate.c built with the Makefile's flags: $cflags"
else
    echo "sgemm rate: not measured ($sgemm_why)"
fi

# ---- data ----------------------------------------------------------------------------------
case " $MODELS " in *" resnet20 "*)
    if [ ! -f "$CIFAR_DIR/cifar10/test_batch.bin" ] ||
        [ "$(wc -c <"$CIFAR_DIR/cifar10/data_batch_1.bin")" -ne $((CIFAR_PER_BATCH * 3073)) ]; then
        rm -rf "$CIFAR_DIR/cifar10"
        "$MKDATA" cifar "$CIFAR_DIR" $CIFAR_PER_BATCH $CIFAR_TEST >"$LOGDIR/mkdata.log" 2>&1 ||
            die "$MKDATA cifar $CIFAR_DIR failed: $(cat "$LOGDIR/mkdata.log")"
    fi ;;
esac

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
[ $have_torch = 1 ] || echo "PyTorch: not available ($torch_why): dtrain numbers only"

# ---- per-model workloads -------------------------------------------------------------------
# model_args MODEL: sets DT_ARGS (dtrain), PT_ARGS (torch_models.py), DESC, EXCL
model_args() {
    case $1 in
    mlp)
        DT_ARGS="--data mnist --data-dir data --epochs $EPOCHS"
        PT_ARGS="--data mnist --data-dir data --epochs $EPOCHS"
        EXCL=20
        DESC="MNIST 60000, $EPOCHS epoch(s)" ;;
    lenet5 | cnn)
        if [ "$1" = lenet5 ]; then s=$STEPS_LENET5; else s=$STEPS_CNN; fi
        DT_ARGS="--data mnist --data-dir data --epochs 1000 --set train.max_steps=$s --set data.limit_test=1000"
        PT_ARGS="--data mnist --data-dir data --epochs 1000 --max-steps $s --limit-test 1000"
        EXCL=$((s / 10 + 1))
        DESC="MNIST, $s steps" ;;
    resnet20)
        s=$STEPS_RESNET20
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

# run_dtrain MODEL NP BATCH REP: one run; appends "samples_per_s max_rss_mib train_loss test_acc"
# to $LOGDIR/dtrain-MODEL-NPxBATCH.dat
run_dtrain() {
    model_args "$1"
    tag=$1-$2x$3
    log=$LOGDIR/dtrain-$tag-$4.log
    # shellcheck disable=SC2086
    mpirun -np "$2" $DT_MPIRUN_FLAGS $MPIRUN_ENV ./dtrain train --model "$1" $DT_ARGS \
        --batch-size "$3" --lr "$LR" --momentum 0.9 --sched cosine --seed 0 --threads 1 --set train.progress=never >"$log" 2>&1
    rc=$?
    final=$(grep '^final:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: dtrain --model $1 -np $2 --batch-size $3 failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sps=$(field samples_per_s "$final")
    echo "$sps $(field max_rss_mib "$final") $(field train_loss "$final") $(field test_acc "$final")" \
        >>"$LOGDIR/dtrain-$tag.dat"
    [ -f "$LOGDIR/flops-$1" ] || model_flops "$log" >"$LOGDIR/flops-$1"
    printf '  %-8s dtrain %dx%-3d run %d: %8s samples/s, %5s MiB, train_loss %s\n' "$1" "$2" "$3" "$4" \
        "$sps" "$(field max_rss_mib "$final")" "$(field train_loss "$final")"
}

# run_torch MODEL REP: bench/torch_models.py, 1 process, batch $BATCH
run_torch() {
    model_args "$1"
    log=$LOGDIR/torch-$1-$2.log
    # shellcheck disable=SC2086
    "$PY" bench/torch_models.py --model "$1" $PT_ARGS --batch-size $BATCH --lr "$LR" --momentum 0.9 \
        --seed 0 --threads 1 \
        --excl "$EXCL" >"$log" 2>&1
    rc=$?
    final=$(grep '^torch:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: bench/torch_models.py --model $1 failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    sps=$(field samples_per_s "$final")
    echo "$sps $(field max_rss_mib "$final") $(field train_loss "$final") $(field test_acc "$final") $(field samples_per_s_excl "$final") $(field params "$final")" \
        >>"$LOGDIR/torch-$1.dat"
    printf '  %-8s torch  1x%-3d run %d: %8s samples/s, %5s MiB, train_loss %s (%s samples/s after step %s)\n' \
        "$1" $BATCH "$2" "$sps" "$(field max_rss_mib "$final")" "$(field train_loss "$final")" \
        "$(field samples_per_s_excl "$final")" "$EXCL"
}

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
    echo "profiling (perf record --call-graph dwarf -F 499, one dtrain 1x$BATCH run per model):"
    for m in $MODELS; do
        model_args "$m"
        # shellcheck disable=SC2086
        mpirun -np 1 $DT_MPIRUN_FLAGS $MPIRUN_ENV perf record --call-graph dwarf,16384 -F 499 \
            -o "$PERFDIR/$m.data" ./dtrain train --model "$m" $DT_ARGS --batch-size $BATCH \
            --lr "$LR" --momentum 0.9 --sched cosine --seed 0 --threads 1 --set train.progress=never >"$PERFDIR/$m.log" 2>&1 ||
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

SCALING=0
case " $MODELS " in *" mlp "*) SCALING=1 ;; esac
echo
echo "workloads (batch $BATCH per rank, SGD momentum 0.9, cosine LR $LR -> 0 per step, seed 0):"
for m in $MODELS; do
    model_args "$m"
    echo "  $m: $DESC"
done
[ $SCALING = 1 ] && echo "  mlp scaling: also 2 ranks x 64 and 2 ranks x 128, $EPOCHS epoch(s)"
echo
echo "running ($REPEAT round(s), runs interleaved):"
t_start=$(date +%s)
rep=1
while [ $rep -le "$REPEAT" ]; do
    run_sgemm $rep
    for m in $MODELS; do
        run_dtrain "$m" 1 $BATCH $rep
        [ $have_torch = 1 ] && run_torch "$m" $rep
    done
    if [ $SCALING = 1 ]; then
        run_dtrain mlp 2 64 $rep
        run_dtrain mlp 2 128 $rep
    fi
    rep=$((rep + 1))
done
t_total=$(($(date +%s) - t_start))
load_end=$(loadavg)
summarize_sgemm

# median FILE COL: the median of column COL of FILE ("-" when that column is empty)
median() {
    [ -f "$1" ] || { echo -; return; }
    awk -v c="$2" '$c != "" && $c != "nan" { print $c }' "$1" | sort -g | awk '
        { v[NR] = $1 }
        END { if (NR == 0) print "-"; else printf "%.0f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
colmax() { awk -v c="$2" '$c > m { m = $c } END { print m + 0 }' "$1"; }
first_of() { awk -v c="$2" 'NR == 1 { print $c }' "$1"; }
div() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) print "n/a"; else printf f, a / b }'; }

goal_of() {
    case $1 in mlp) echo 1.25 ;; lenet5) echo 3 ;; cnn) echo 1.3 ;; *) echo - ;; esac
}

# ---- tables --------------------------------------------------------------------------------
rows='' checks='' excl_notes='' pair_notes=''
for m in $MODELS; do
    model_args "$m"
    dt_dat=$LOGDIR/dtrain-$m-1x$BATCH.dat
    # shellcheck disable=SC2046
    set -- $(cat "$LOGDIR/flops-$m" 2>/dev/null) - - -
    params=$1 flops=$3
    dsps=$(median "$dt_dat" 1)
    psps=- ratio=n/a pgf=n/a goal=$(goal_of "$m") verdict=
    if [ $have_torch = 1 ]; then
        psps=$(median "$LOGDIR/torch-$m.dat" 1)
        ratio=$(div "$dsps" "$psps" '%.2f')
        pgf=$(awk -v s="$psps" -v f="$flops" 'BEGIN { printf "%.1f", s * f / 1e9 }')
        tparams=$(first_of "$LOGDIR/torch-$m.dat" 6)
        [ "$tparams" = "$params" ] || params="$params (torch: $tparams)"
        if [ "$goal" != - ]; then
            verdict=$(awk -v r="$ratio" -v g="$goal" 'BEGIN { print (r + 0 >= g + 0) ? "met" : "not met" }')
        fi
        checks="$checks$m|$(first_of "$dt_dat" 3) / $(first_of "$LOGDIR/torch-$m.dat" 3)|$(first_of "$dt_dat" 4) / $(first_of "$LOGDIR/torch-$m.dat" 4)|$(colmax "$dt_dat" 2) / $(colmax "$LOGDIR/torch-$m.dat" 2)
"
        excl_notes="$excl_notes $m $(median "$LOGDIR/torch-$m.dat" 5) (after step $EXCL);"
        # the ratio of each round's dtrain run to the PyTorch run right after it
        pair_notes="$pair_notes $m $(awk 'NR == FNR { d[FNR] = $1; next } FNR in d && $1 > 0 { printf "%s%.2f", sep, d[FNR] / $1; sep = " " }' "$dt_dat" "$LOGDIR/torch-$m.dat");"
    fi
    dgf=$(awk -v s="$dsps" -v f="$flops" 'BEGIN { printf "%.1f", s * f / 1e9 }')
    pct=$(div "$dgf" "$sgemm_peak" '%.3f' | awk '$1 != "n/a" { printf "%.0f %%", $1 * 100; next } { print }')
    goal_txt=-
    [ "$goal" != - ] && goal_txt=">= ${goal}x${verdict:+ ($verdict)}"
    mflop=$(awk -v f="$flops" 'BEGIN { printf "%.1f", f / 1e6 }')
    rows="$rows$m|$params|$mflop|$dsps|$psps|$ratio|$goal_txt|$dgf|$pgf|$pct
"
done

scal_rows=
if [ $SCALING = 1 ]; then
    base=$(median "$LOGDIR/dtrain-mlp-1x$BATCH.dat" 1)
    tsps=-
    [ $have_torch = 1 ] && tsps=$(median "$LOGDIR/torch-mlp.dat" 1)
    for c in 1x128 2x64 2x128; do
        f=$LOGDIR/dtrain-mlp-$c.dat
        np=${c%x*} b=${c#*x}
        ranks=ranks
        [ "$np" = 1 ] && ranks=rank
        s=$(median "$f" 1)
        scal_rows="$scal_rows$(printf 'dtrain %s %s x %s (global %s)' "$np" $ranks "$b" $((np * b)))|$s|$(colmax "$f" 2)|$(div "$s" "$base" '%.2f')|$(div "$s" "$tsps" '%.2f')|$(first_of "$f" 3)
"
    done
    if [ $have_torch = 1 ]; then
        f=$LOGDIR/torch-mlp.dat
        scal_rows="${scal_rows}PyTorch 1 process x 128 (global 128)|$tsps|$(colmax "$f" 2)|$(div "$tsps" "$base" '%.2f')|1.00|$(first_of "$f" 3)
"
    fi
fi

notes="Load average (1/5/15 min) at start: $load_start; at end: $load_end (the benchmark itself keeps about 1 core busy, 2 during the 2-rank runs)."
notes="$notes
samples/s: median of $REPEAT run(s), training samples per second from step 0 (no warm-up), evaluation excluded; dtrain through mpirun -np 1 (1 BLAS thread), PyTorch 1 process."
notes="$notes
FLOPs per sample (analytic, MFLOP column): MACs of a conv = OC x OH x OW x C x KH x KW, of a linear = in x out; \
FLOPs = 2 MACs forward + 2 MACs weight gradient + 2 MACs input gradient for every conv/linear layer but the first \
(its input is the data) = 6 x sum(MACs) - 2 x MACs(first layer); bias, ReLU, pooling, BatchNorm, add, loss and optimizer are not counted. \
GFLOP/s = samples/s x FLOPs per sample; % of sgemm peak = dtrain GFLOP/s / the sgemm rate at 1 thread measured in this run (${sgemm_peak:-not measured} GFLOP/s: bench/sgemm_rate.c once per round, the median over the rounds, the largest over the shapes)."
if [ $have_torch = 1 ]; then
    torch_ver=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    first_model=${MODELS%% *}
    torch_blas=$(grep '^torch ' "$LOGDIR/torch-$first_model-1.log" | sed 's/^torch [^,]*, //')
    notes="$notes
PyTorch $torch_ver ($PY): torch.set_num_threads(1), 1 process, $torch_blas (with mkldnn on, PyTorch runs its convolutions through oneDNN, its linear layers through this BLAS).
dtrain/PyTorch per round (each dtrain run over the PyTorch run right after it; the table's ratio is that of the medians):${pair_notes%;}.
PyTorch steady state, leaving out the first steps (for reference only, not used for the ratio):${excl_notes%;}."
else
    notes="$notes
PyTorch: not measured ($torch_why)."
fi
if [ $SCALING = 1 ]; then
    notes="$notes
mlp scaling on $ncpu logical CPUs: 2x64 is the same training as 1x128 (global batch 128, strong scaling); 2x128 is the same work per rank and step (global batch 256, half the steps); with 2 ranks on 2 cores mpirun and Open MPI's progress engine share the cores."
fi

gen_md() {
    echo "# dtrain training throughput"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo "- load average at start (1/5/15 min): $load_start"
    echo "- CPU: $cpu${cpu_fms:+ ($cpu_fms)}, $ncpu logical CPUs"
    echo "- OpenBLAS: core $blas_core, \`${blas_lib:-?}\`${blas_config:+ ($blas_config)}; OPENBLAS_CORETYPE $coretype_note"
    echo "- OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; dtrain --threads 1; torch.set_num_threads(1)"
    if [ -n "$sgemm_lines" ]; then
        echo "- sgemm at 1 thread (bench/sgemm_rate.c, \`$cflags\`; per shape the median over the rounds of each round's median of 5 trials, and the best trial):"
        printf '%s\n' "$sgemm_lines" | awk '{ printf "  `%s`\n", $0 }'
    fi
    echo "- workloads (batch $BATCH, 1 rank, SGD momentum 0.9, cosine LR $LR -> 0, seed 0):"
    for m in $MODELS; do
        model_args "$m"
        echo "  $m: $DESC"
    done
    echo
    echo "| model | params | MFLOP/sample | dtrain samples/s | PyTorch samples/s | dtrain/PyTorch | goal | dtrain GFLOP/s | PyTorch GFLOP/s | dtrain % of sgemm peak |"
    echo "|---|--:|--:|--:|--:|--:|---|--:|--:|--:|"
    printf '%s' "$rows" | awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
    if [ -n "$checks" ]; then
        echo
        echo "Same work check (run 1): train loss, test accuracy (%) and peak RSS MiB (max over runs), dtrain / PyTorch"
        echo
        echo "| model | train loss | test acc | peak RSS MiB |"
        echo "|---|--:|--:|--:|"
        printf '%s' "$checks" | awk -F'|' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
    fi
    if [ -n "$scal_rows" ]; then
        echo
        echo "MLP scaling and memory (MNIST, $EPOCHS epoch(s))"
        echo
        echo "| config | samples/s | peak RSS MiB | vs dtrain 1x128 | dtrain/PyTorch | train loss (last epoch) |"
        echo "|---|--:|--:|--:|--:|--:|"
        printf '%s' "$scal_rows" | awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }'
    fi
    echo
    printf '%s\n' "$notes" | sed 's/$/  /'
}
gen_md >"$MD"

echo
printf '%-9s %-8s %12s %10s %10s %7s %-20s %8s %8s %7s\n' model params MFLOP/sample "dtrain/s" "torch/s" ratio goal "dt GF/s" "pt GF/s" "% sgemm"
printf '%s' "$rows" | awk -F'|' '{ printf "%-9s %-8s %12s %10s %10s %7s %-20s %8s %8s %7s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 }'
if [ -n "$checks" ]; then
    echo
    printf '%-9s %-22s %-16s %s\n' model "train loss dt / pt" "test acc dt / pt" "peak RSS MiB dt / pt"
    printf '%s' "$checks" | awk -F'|' '{ printf "%-9s %-22s %-16s %s\n", $1, $2, $3, $4 }'
fi
if [ -n "$scal_rows" ]; then
    echo
    printf '%-40s %10s %8s %9s %15s %10s\n' "mlp config" samples/s "RSS MiB" "vs 1x128" dtrain/PyTorch train_loss
    printf '%s' "$scal_rows" | awk -F'|' '{ printf "%-40s %10s %8s %9s %15s %10s\n", $1, $2, $3, $4, $5, $6 }'
fi
if [ -n "$sgemm_lines" ]; then
    echo
    echo "sgemm at 1 thread (median over the rounds of each round's median of 5 trials; best trial):"
    printf '%s\n' "$sgemm_lines" | awk '{ printf "  %s\n", $0 }'
fi
echo
printf '%s\n' "$notes"
echo "markdown: $OUTDIR/results.md, logs: $LOGDIR/ (runs took ${t_total}s)"
exit 0
