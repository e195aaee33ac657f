#!/bin/sh
# bench/run.sh - dtrain MLP training throughput and peak memory, next to PyTorch (bench/README.md).
#   make bench                  (deps + data + build, then this script)
#   sh bench/run.sh             (from anywhere; needs ./dtrain and data/mnist/)
# Knobs (environment): BENCH_EPOCHS (default 2), BENCH_REPEAT (default 3: each number is the
# median over that many runs), BENCH_LR (default 0.1, given to both dtrain and PyTorch),
# BENCH_PYTHON (default /usr/bin/python3).
# Output: a table on stdout, the same as markdown in bench/out/mlp.md, run logs in bench/out/logs/.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUTDIR=bench/out
LOGDIR=$OUTDIR/logs
MD=$OUTDIR/mlp.md
EPOCHS=${BENCH_EPOCHS:-2}
REPEAT=${BENCH_REPEAT:-3}
LR=${BENCH_LR:-0.1}
PY=${BENCH_PYTHON:-/usr/bin/python3}
DATA_DIR=data/mnist

die() {
    echo "bench: $*" >&2
    exit 1
}

case $EPOCHS in '' | *[!0-9]* | 0) die "BENCH_EPOCHS must be a positive integer, not '$EPOCHS'" ;; esac
case $REPEAT in '' | *[!0-9]* | 0) die "BENCH_REPEAT must be a positive integer, not '$REPEAT'" ;; esac
[ -x ./dtrain ] || die "$ROOT/dtrain is missing (or not executable): build it with 'make all', or run 'make bench'"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$DATA_DIR/$f" ] || die "$DATA_DIR/$f is missing: fetch MNIST with 'make data'"
done
command -v mpirun >/dev/null 2>&1 || die "mpirun not found: install Open MPI with 'make deps'"

# before the exports below: GNU nproc honours OMP_NUM_THREADS
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || OMP_NUM_THREADS= nproc 2>/dev/null || echo '?')

# One BLAS / OpenMP / MKL thread everywhere (forced, whatever the caller's environment says).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. scripts/mpi-env.sh
MPIRUN_ENV="-x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS -x MKL_NUM_THREADS"
[ -n "${OPENBLAS_CORETYPE:-}" ] && MPIRUN_ENV="$MPIRUN_ENV -x OPENBLAS_CORETYPE"

mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
rm -f "$LOGDIR"/*.log "$LOGDIR"/*.dat

# ---- machine -------------------------------------------------------------------------------
cpu=$(LC_ALL=C lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
[ -n "$cpu" ] || cpu=unknown
blas_lib=$(ldd ./dtrain 2>/dev/null | awk '/libopenblas/ { print $3; exit }')
[ -n "$blas_lib" ] && blas_lib=$(readlink -f "$blas_lib")
# OpenBLAS (DYNAMIC_ARCH builds) prints "Core: <name>" at load time with OPENBLAS_VERBOSE=2.
blas_core=$(OPENBLAS_VERBOSE=2 ./dtrain --version 2>&1 | sed -n 's/^Core:[[:space:]]*//p' | head -n 1)
blas_config=
if [ -n "$blas_lib" ] && command -v python3 >/dev/null 2>&1; then
    blas_config=$(python3 - "$blas_lib" 2>/dev/null <<'EOF'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_config.restype = ctypes.c_char_p
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode() + "|" + lib.openblas_get_config().decode())
EOF
)
    if [ -n "$blas_config" ]; then
        [ -n "$blas_core" ] || blas_core=${blas_config%%|*}
        blas_config=${blas_config#*|}
    fi
fi
[ -n "$blas_core" ] || blas_core=unknown
coretype_note="not set"
[ -n "${OPENBLAS_CORETYPE:-}" ] && coretype_note="set to '$OPENBLAS_CORETYPE' in the environment (not changed by the benchmark)"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain 2>/dev/null)" ] && commit="$commit (working tree modified)"

echo "== dtrain MLP benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit)"
echo "CPU: $cpu ($ncpu logical CPUs)"
echo "OpenBLAS: core $blas_core, ${blas_lib:-library not found by ldd}${blas_config:+ ($blas_config)}"
echo "OPENBLAS_CORETYPE: $coretype_note"
echo "threads: OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS OMP_NUM_THREADS=$OMP_NUM_THREADS MKL_NUM_THREADS=$MKL_NUM_THREADS"
echo "workload: MNIST train (60000), $EPOCHS epoch(s), model mlp (784-512-256-10), SGD momentum 0.9, cosine LR $LR -> 0; median of $REPEAT run(s)"

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

# ---- runs ----------------------------------------------------------------------------------
# field NAME LINE: the value of NAME=... in a "final:" / "torch:" line
field() {
    printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

# run_dtrain NP BATCH REP: one run, appends "samples_per_s max_rss_mib train_loss" to a data file
run_dtrain() {
    log=$LOGDIR/dtrain-$1x$2-$3.log
    # shellcheck disable=SC2086
    mpirun -np "$1" $DT_MPIRUN_FLAGS $MPIRUN_ENV ./dtrain train --model mlp --data mnist \
        --data-dir data --epochs "$EPOCHS" --batch-size "$2" --lr "$LR" --threads 1 \
        --set train.progress=never >"$log" 2>&1
    rc=$?
    final=$(grep '^final:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: dtrain -np $1 --batch-size $2 failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    echo "$(field samples_per_s "$final") $(field max_rss_mib "$final") $(field train_loss "$final")" \
        >>"$LOGDIR/dtrain-$1x$2.dat"
    printf '  dtrain %dx%-3d run %d: %s samples/s, %s MiB\n' "$1" "$2" "$3" \
        "$(field samples_per_s "$final")" "$(field max_rss_mib "$final")"
}

run_torch() {
    log=$LOGDIR/torch-1x128-$1.log
    "$PY" bench/torch_mlp.py --data-dir "$DATA_DIR" --epochs "$EPOCHS" --batch-size 128 \
        --lr "$LR" --threads 1 >"$log" 2>&1
    rc=$?
    final=$(grep '^torch:' "$log" | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$final" ]; then
        echo "bench: bench/torch_mlp.py failed (exit $rc); last lines of $log:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    echo "$(field samples_per_s "$final") $(field max_rss_mib "$final") $(field train_loss "$final") $(field samples_per_s_excl20 "$final")" \
        >>"$LOGDIR/torch-1x128.dat"
    printf '  torch  1x128 run %d: %s samples/s (%s excluding the first 20 steps), %s MiB\n' "$1" \
        "$(field samples_per_s "$final")" "$(field samples_per_s_excl20 "$final")" \
        "$(field max_rss_mib "$final")"
}

CONFIGS="1x128 2x64 2x128"
echo
echo "running ($REPEAT round(s), configurations interleaved):"
t_start=$(date +%s)
rep=1
while [ $rep -le "$REPEAT" ]; do
    for c in $CONFIGS; do
        run_dtrain "${c%x*}" "${c#*x}" $rep
    done
    [ $have_torch = 1 ] && run_torch $rep
    rep=$((rep + 1))
done
t_total=$(($(date +%s) - t_start))

# median FILE COL: the median of column COL of FILE ("-" when that column is empty)
median() {
    awk -v c="$2" '$c != "" { print $c }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END { if (NR == 0) print "-"; else printf "%.0f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# summarize FILE: "median samples/s, max RSS, train loss of run 1, median column 4"
summarize() {
    echo "$(median "$1" 1) $(awk '$2 > m { m = $2 } END { print m + 0 }' "$1") $(awk 'NR == 1 { print $3 }' "$1") $(median "$1" 4)"
}

torch_sps=
if [ $have_torch = 1 ]; then
    set -- $(summarize "$LOGDIR/torch-1x128.dat")
    torch_sps=$1 torch_rss=$2 torch_loss=$3 torch_excl=$4
fi

# ---- table ---------------------------------------------------------------------------------
ratio() {
    if [ -n "$torch_sps" ]; then awk -v a="$1" -v b="$torch_sps" 'BEGIN { printf "%.2f", a / b }'; else echo "n/a"; fi
}
rows=
for c in $CONFIGS; do
    set -- $(summarize "$LOGDIR/dtrain-$c.dat")
    np=${c%x*} b=${c#*x}
    ranks=ranks
    [ "$np" = 1 ] && ranks=rank
    rows="$rows$(printf 'dtrain %s %s x %s (global %s)|%s|%s|%s|%s' "$np" $ranks "$b" $((np * b)) "$1" "$2" "$(ratio "$1")" "$3")
"
    eval "sps_$np$b=$1"
done
if [ $have_torch = 1 ]; then
    rows="${rows}PyTorch 1 process x 128 (global 128)|$torch_sps|$torch_rss|1.00|$torch_loss
"
fi

if [ $have_torch = 1 ]; then
    torch_ver=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
    torch_blas=$(grep '^torch ' "$LOGDIR/torch-1x128-1.log" | sed 's/^torch [^,]*, //')
    notes="PyTorch $torch_ver ($PY): torch.set_num_threads(1), 1 process, $torch_blas.
Ratios compare each dtrain row with that PyTorch process at batch 128 (for 2x128 the global batch is 256).
PyTorch excluding its first 20 steps (steady state, for reference only): $torch_excl samples/s."
else
    notes="PyTorch: not measured ($torch_why)."
fi
notes="$notes
Scaling of dtrain, 2 ranks vs 1 rank on $ncpu logical CPUs: same global batch (2x64) \
$(awk -v a="$sps_264" -v b="$sps_1128" 'BEGIN { printf "%.2f", a / b }')x, same batch per rank (2x128) \
$(awk -v a="$sps_2128" -v b="$sps_1128" 'BEGIN { printf "%.2f", a / b }')x."

{
    echo "# dtrain MLP training throughput"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
    echo "- CPU: $cpu ($ncpu logical CPUs)"
    echo "- OpenBLAS: core $blas_core, \`${blas_lib:-?}\`${blas_config:+ ($blas_config)}; OPENBLAS_CORETYPE $coretype_note"
    echo "- OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 (1 BLAS thread per rank / process)"
    echo "- workload: MNIST train set (60000 samples), $EPOCHS epoch(s), mlp 784-512-256-10, SGD momentum 0.9, cosine LR $LR -> 0 per step"
    echo "- samples/s: global training samples per second over whole epochs (no warm-up), evaluation excluded; median of $REPEAT run(s)"
    echo "- peak RSS: per rank / process (max over ranks and runs)"
    echo
    echo "| config | samples/s | peak RSS MiB | dtrain/PyTorch | train loss (last epoch) |"
    echo "|---|--:|--:|--:|--:|"
    printf '%s' "$rows" | awk -F'|' '{ printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }'
    echo
    printf '%s\n' "$notes" | sed 's/$/  /'
} >"$MD"

echo
printf '%-40s %10s %8s %15s %10s\n' config samples/s "RSS MiB" dtrain/PyTorch train_loss
printf '%s' "$rows" | awk -F'|' '{ printf "%-40s %10s %8s %15s %10s\n", $1, $2, $3, $4, $5 }'
echo
printf '%s\n' "$notes"
echo "markdown: $OUTDIR/mlp.md, logs: $LOGDIR/ (runs took ${t_total}s)"
exit 0
