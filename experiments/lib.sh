# shellcheck shell=bash disable=SC2034 # variables used by the scripts that source this file
# experiments/lib.sh - shared by the section scripts experiments/sN_*.sh (sourced, bash).
#
# A section trains through `dtrain sweep` (`xsweep`) or, where the ranks vary (section 8), through
# `dtrain train` itself, and then writes, from the sweeps' results.csv only:
#   $RESULTS/sN_NAME.md     its table(s): mean ± std over seeds (std with n - 1, numpy ddof=1),
#                           each row naming the CSV rows it came from, and the provenance (commit,
#                           exact commands, CPU, date, wall time);
#   $RESULTS/sN_NAME*.png   its figures (gnuplot, small multiples);
#   $RESULTS/sN/*.csv       the sweeps' results.csv, plus the columns the tables need that the
#                           sweep does not write (epoch_s, swa_test_acc: `extend`).
# Raw trials (checkpoints, metrics) stay in $RUNS_ROOT/sN/ (git-ignored).
#
# Environment (all optional):
#   QUICK=1          the smoke mode of tests/test_experiments.sh: 2000 training / 1000 test
#                    samples, 1-2 epochs, seeds 0,1, tiny grids (numbers meaningless, files real)
#   RESULTS          tables and figures (default experiments/results)
#   RUNS_ROOT        raw sweeps (default experiments/runs)
#   KEEP_RUNS=1      keep a sweep's folder: its rerun skips finished trials (dtrain sweep resumes)
#   DTRAIN           the binary (default ./dtrain, built if missing); a private copy is run, so a
#                    rebuild during the experiments does not change them

set -eu

EXP_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# DT_ROOT: the repository, when the scripts run from a copy (run.sh SNAPSHOT=1)
ROOT=${DT_ROOT:-$(dirname "$EXP_DIR")}
QUICK=${QUICK:-0}
RESULTS=${RESULTS:-$ROOT/experiments/results}
RUNS_ROOT=${RUNS_ROOT:-$ROOT/experiments/runs}
KEEP_RUNS=${KEEP_RUNS:-0}
DTRAIN=${DTRAIN:-$ROOT/dtrain}
mkdir -p "$RESULTS" "$RUNS_ROOT"
RESULTS=$(cd "$RESULTS" && pwd)
RUNS_ROOT=$(cd "$RUNS_ROOT" && pwd)

cd "$ROOT"
set +u
# shellcheck source=/dev/null
. "$ROOT/scripts/mpi-env.sh"
set -u

[ -x "$DTRAIN" ] || make -s dtrain
command -v gnuplot >/dev/null || { echo "experiments: gnuplot is needed (apt-get install gnuplot-nox)" >&2; exit 1; }
DT_BIN=$RUNS_ROOT/.dtrain.$$
cp "$DTRAIN" "$DT_BIN"
trap 'rm -f "$DT_BIN"' EXIT

# q FULL QUICK: the value for this mode.
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }

SEEDS=$(q 0,1,2 0,1)
LIMIT_TEST=$(q 0 1000)
# Every run: Fashion-MNIST, the whole test set (QUICK: 1000), no progress bar, 1 thread per rank
# (2 one-rank trials side by side fill the 2 cores best).
COMMON=(--data fashion-mnist --set data.limit_test="$LIMIT_TEST" --set train.progress=never --threads 1)

SECTION_T0=$(date +%s)
# the source the binary and scripts came from, taken at the start (edits during a run do not count)
GIT_DESCRIBE=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
GIT_HEAD=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=clean
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && GIT_DIRTY="dirty: uncommitted changes"
SECTION_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CMDS=()

# xsweep NAME NP ARGS...: `mpirun -np NP ./dtrain sweep ARGS --out $RUNS/NAME` (groups of 1 rank
# unless ARGS say otherwise); its stdout in $RUNS/NAME.log; the command (as a user types it) kept
# for the provenance. A trial that failed (not diverged) stops the section.
xsweep() {
    local name=$1 np=$2 out
    shift 2
    out=$RUNS/$name
    [ "$KEEP_RUNS" = 1 ] || rm -rf "$out"
    mkdir -p "$RUNS"
    CMDS+=("mpirun -np $np ./dtrain sweep $* --out $name")
    echo "  $name: dtrain sweep $*"
    # shellcheck disable=SC2086 # DT_MPIRUN_FLAGS holds several flags
    if ! mpirun -np "$np" $DT_MPIRUN_FLAGS "$DT_BIN" sweep "$@" --out "$out" >"$out.log" 2>&1; then
        echo "experiments: sweep $name failed (see $out.log):" >&2
        tail -5 "$out.log" >&2
        exit 1
    fi
    grep -E '^sweep: [0-9]+ ok' "$out.log" | sed 's/^/    /'
    extend "$out"
}

# extend DIR: DIR/results.csv plus epoch_s (mean time_s of the trial's epochs, metrics_epoch.csv)
# and swa_test_acc (the final line's, in the trial's `done` marker; empty without SWA) into
# $RESULTS/sN/<NAME>.csv, the file every table of the section is computed from.
extend() {
    local dir=$1 name rel dst
    name=$(basename "$dir")
    rel=$(basename "$RUNS")/$name.csv
    dst=$RESULTS/$rel
    mkdir -p "$(dirname "$dst")"
    awk -F, -v OFS=, -v base="$dir" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; print $0, "epoch_s", "swa_test_acc"; next }
        {
            es = ""; sw = ""
            if ($c["status"] == "ok") {
                f = base "/" $c["dir"] "/log/metrics_epoch.csv"; s = 0; n = 0; k = 0
                while ((getline line < f) > 0) {
                    split(line, a, ",")
                    if (!k) { for (j = 1; j in a; j++) if (a[j] == "time_s") k = j; continue }
                    s += a[k]; n++
                }
                close(f)
                if (n) es = sprintf("%.3f", s / n)
                f = base "/" $c["dir"] "/done"
                if ((getline line < f) > 0 && match(line, /swa_test_acc=[^ ]*/))
                    sw = substr(line, RSTART + 13, RLENGTH - 13)
                close(f)
            }
            print $0, es, sw
        }' "$dir/results.csv" >"$dst"
}

# cell CSV METRIC DEC KEY=VAL...: "mean ± std" of METRIC over the ok rows of CSV (a path under
# $RESULTS) matching every KEY=VAL, DEC decimals; std with n - 1; "diverged" when every matching
# row diverged; "k/n div." appended when some did.
cell() {
    local csv=$1 metric=$2 dec=$3
    shift 3
    awk -F, -v m="$metric" -v d="$dec" -v sel="$*" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; nk = split(sel, kv, " "); next }
        {
            for (j = 1; j <= nk; j++) { split(kv[j], p, "="); if ($c[p[1]] != p[2]) next }
            tot++
            if ($c["status"] == "diverged") { dv++; next }
            if ($c["status"] != "ok" || $c[m] == "") next
            x[++n] = $c[m]; s += $c[m]
        }
        END {
            if (n == 0) { print (dv ? "diverged" : "-"); exit }
            mu = s / n
            for (i = 1; i <= n; i++) v += (x[i] - mu) ^ 2
            out = sprintf("%." d "f", mu)
            if (n > 1) out = out sprintf(" ± %." d "f", sqrt(v / (n - 1)))
            if (dv) out = out sprintf(" (%d/%d div.)", dv, tot)
            print out
        }' "$RESULTS/$csv"
}

# mean CSV METRIC KEY=VAL...: the plain mean (full precision) of METRIC over the matching ok rows.
mean() {
    local csv=$1 metric=$2
    shift 2
    awk -F, -v m="$metric" -v sel="$*" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; nk = split(sel, kv, " "); next }
        {
            for (j = 1; j <= nk; j++) { split(kv[j], p, "="); if ($c[p[1]] != p[2]) next }
            if ($c["status"] == "ok" && $c[m] != "") { s += $c[m]; n++ }
        }
        END { if (n) printf "%.6g\n", s / n; else print "nan" }' "$RESULTS/$csv"
}

# from CSV KEY=VAL...: the table's last column, naming the rows a line was computed from.
from() {
    local csv=$1
    shift
    echo "\`$csv\` $*"
}

# trial_dirs NAME KEY=VAL...: the log folders of the ok trials of sweep NAME matching KEY=VAL.
trial_dirs() {
    local name=$1
    shift
    awk -F, -v sel="$*" -v base="$RUNS/$name" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; nk = split(sel, kv, " "); next }
        {
            for (j = 1; j <= nk; j++) { split(kv[j], p, "="); if ($c[p[1]] != p[2]) next }
            if ($c["status"] == "ok") print base "/" $c["dir"] "/log"
        }' "$RUNS/$name/results.csv"
}

# epoch_mean OUT COLUMN DIR...: per epoch, the mean and sample std of COLUMN of DIR/metrics_epoch.csv
# over the DIRs (seeds), as "epoch mean std" lines in OUT.
epoch_mean() {
    local out=$1 col=$2
    shift 2
    awk -F, -v k="$col" '
        FNR == 1 { for (i = 1; i <= NF; i++) if ($i == k) c = i; next }
        { e = $1; s[e] += $c; ss[e] += $c * $c; n[e]++; if (e > me) me = e }
        END {
            for (e = 1; e <= me; e++) {
                if (!n[e]) continue
                mu = s[e] / n[e]; v = n[e] > 1 ? (ss[e] - n[e] * mu * mu) / (n[e] - 1) : 0
                printf "%d %.4f %.4f\n", e, mu, (v > 0 ? sqrt(v) : 0)
            }
        }' "${@/%//metrics_epoch.csv}" >"$out"
}

# cpu_line: the CPU and the instruction-set extensions the low-precision kernels care about.
cpu_line() {
    local model f b
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    f=no
    b=no
    grep -qw avx512f /proc/cpuinfo && f=yes
    grep -qw avx512_bf16 /proc/cpuinfo && b=yes
    echo "$(nproc) CPUs, $model; avx512f: $f, avx512_bf16: $b"
}

# provenance: the block every results file ends with.
provenance() {
    local t1
    t1=$(date +%s)
    echo
    echo "Provenance:"
    echo
    echo "- commit: \`$GIT_DESCRIBE\` (\`$GIT_HEAD\`, $GIT_DIRTY, at the start)," \
        "binary sha256 \`$(sha256sum "$DT_BIN" | cut -c1-16)\`"
    echo "- command: \`$( [ "$QUICK" = 1 ] && printf 'QUICK=1 ')experiments/run.sh $SECTION\`, which ran:"
    echo
    echo '```'
    printf '%s\n' "${CMDS[@]}"
    echo '```'
    echo
    echo "- CPU: $(cpu_line)"
    echo "- date: $SECTION_DATE; wall time of the section: $((t1 - SECTION_T0)) s;" \
        "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    [ "$QUICK" = 1 ] && echo "- QUICK=1: a smoke run (2000 training samples, 1000 test samples, seeds 0,1); the numbers mean nothing"
    return 0
}

# gp_png FILE WIDTH HEIGHT: the gnuplot terminal lines for a PNG.
gp_png() {
    if gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1; then
        echo "set terminal pngcairo noenhanced size $2,$3 font 'DejaVu Sans,9'"
    else
        echo "set terminal png noenhanced size $2,$3"
    fi
    echo "set output '$1'"
}
