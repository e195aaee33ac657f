# experiments/lib.sh - shared by the experiment scripts (sourced, bash).
#
# Every run goes through `run NAME [dtrain train args...]`: it trains with
# log.dir=$RUNS/NAME (metrics_step.csv, metrics_epoch.csv, metrics.h5), keeps rank 0's stdout in
# $RUNS/NAME/out.txt and the `final:` line in $RUNS/NAME/final.txt. Raw runs live under
# experiments/runs/ (git-ignored); the tables and plots go to experiments/results/.
#
# Environment overrides (all optional):
#   NP=2             MPI ranks
#   DTRAIN=./dtrain  the binary (built with `make all` if missing)
#   KEEP_RUNS=1      reuse a run whose final.txt already exists (re-plot without retraining)
#   GP_TERM          gnuplot terminal line (default: pngcairo, falling back to png)
#   RESULTS, RUNS_ROOT  where tables/plots and raw runs go (default experiments/results, experiments/runs)

set -eu

EXP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$EXP_DIR")
RESULTS=${RESULTS:-$EXP_DIR/results}
RUNS_ROOT=${RUNS_ROOT:-$EXP_DIR/runs}
NP=${NP:-2}
DTRAIN=${DTRAIN:-$ROOT/dtrain}
KEEP_RUNS=${KEEP_RUNS:-0}
mkdir -p "$RESULTS"

cd "$ROOT"
# root needs Open MPI's permission; one BLAS thread per rank; DT_MPIRUN_FLAGS
set +u
# shellcheck source=/dev/null
. "$ROOT/scripts/mpi-env.sh"
set -u

if [ ! -x "$DTRAIN" ]; then
    make -s all
fi
# Run a private copy: other people may rebuild ./dtrain while the experiments run.
mkdir -p "$RUNS_ROOT"
DT_BIN=$RUNS_ROOT/.dtrain.$$
cp "$DTRAIN" "$DT_BIN"
trap 'rm -f "$DT_BIN"' EXIT
DT_SHA=$(sha256sum "$DT_BIN" | cut -c1-16)
command -v gnuplot >/dev/null || { echo "gnuplot is needed (apt-get install gnuplot-nox)" >&2; exit 1; }

if [ -z "${GP_TERM:-}" ]; then
    if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
        GP_TERM="pngcairo noenhanced font 'DejaVu Sans,10'"
        GP_CAIRO=1
    else
        GP_TERM="png noenhanced font 'DejaVuSans,9'"
        GP_CAIRO=0
    fi
fi
GP_CAIRO=${GP_CAIRO:-0}

# 13 distinguishable line styles: colour, then dash pattern beyond 10.
COLORS=("#1f77b4" "#ff7f0e" "#2ca02c" "#d62728" "#9467bd" "#8c564b" "#e377c2" "#7f7f7f" "#bcbd22" "#17becf"
        "#000000" "#1f77b4" "#d62728" "#2ca02c")
# linestyle definitions for gnuplot: ls 1..14
gp_styles() {
    local i dt
    for i in "${!COLORS[@]}"; do
        dt=1
        [ "$i" -ge 10 ] && dt=2
        echo "set style line $((i + 1)) lc rgb '${COLORS[$i]}' lw 1.6 dt $dt pt $((i % 7 + 5)) ps 0.8"
    done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# run NAME ARGS...: one training run, see the header.
run() {
    local name=$1 dir
    shift
    dir=$RUNS/$name
    if [ "$KEEP_RUNS" = 1 ] && [ -s "$dir/final.txt" ]; then
        echo "  $name: kept ($(cut -c1-100 "$dir/final.txt")...)"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    printf '%s\n' "$*" >"$dir/args.txt"
    echo "$DT_SHA $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" >"$dir/dtrain_sha.txt"
    local t0 t1
    t0=$(now)
    # shellcheck disable=SC2086 # DT_MPIRUN_FLAGS holds several flags
    if ! mpirun -np "$NP" $DT_MPIRUN_FLAGS "$DT_BIN" train --set train.progress=never \
        --set log.dir="$dir" "$@" >"$dir/out.txt" 2>&1; then
        echo "run $name failed: mpirun -np $NP $DTRAIN train $*" >&2
        tail -20 "$dir/out.txt" >&2
        return 1
    fi
    t1=$(now)
    grep '^final:' "$dir/out.txt" >"$dir/final.txt"
    elapsed "$t0" "$t1" >"$dir/mpirun_s.txt"
    echo "  $name: $(elapsed "$t0" "$t1") s  $(cut -d' ' -f2-6 "$dir/final.txt")"
}

# final NAME KEY: a value of the run's `final:` line (test_acc, test_loss, wall_s, ...).
final() {
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$RUNS/$1/final.txt"
}

# mpirun_s NAME: wall time of the whole mpirun (MPI start-up, data load, training, evaluation).
mpirun_s() { cat "$RUNS/$1/mpirun_s.txt"; }

# epoch_col NAME COLUMN: the values of a metrics_epoch.csv column, comma-separated.
epoch_col() {
    awk -F, -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
        { printf "%s%.2f", (NR > 2 ? "," : ""), $k }' "$RUNS/$1/metrics_epoch.csv"
}

# smooth_steps NAME WINDOW: metrics_step.csv's loss averaged over blocks of WINDOW steps,
# written to $RUNS/NAME/loss_smooth.dat as "mid_step mean_loss".
smooth_steps() {
    awk -F, -v w="$2" 'NR > 1 { s += $3; n++; if (n == w) { print $1 - (w - 1) / 2, s / n; s = 0; n = 0 } }
        END { if (n > 0) print $1 - (n - 1) / 2, s / n }' "$RUNS/$1/metrics_step.csv" \
        >"$RUNS/$1/loss_smooth.dat"
}

# steps_per_epoch N: optimizer steps per epoch for N training samples at NP ranks x BATCH
# (DistributedSampler without drop_last pads each shard to ceil(N / NP)).
steps_per_epoch() {
    awk -v n="$1" -v p="$NP" -v b="$BATCH" 'BEGIN { s = int((n + p - 1) / p); print int((s + b - 1) / b) }'
}

# cpu_note: a line describing the machine, for the results files.
cpu_note() {
    local model
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    echo "$(nproc) cores ($model), shared with other jobs"
}

# total_s: the summed mpirun wall times of this script's runs (stays right when KEEP_RUNS=1
# re-plots without training).
total_s() {
    awk '{ s += $1 } END { printf "%.0f", s }' "$RUNS"/*/mpirun_s.txt
}
