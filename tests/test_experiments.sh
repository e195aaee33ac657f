#!/bin/bash
# test_experiments.sh - `make experiments` (experiments/all.sh, docs/experiments.md) in its QUICK=1
# smoke mode (2,000 training samples, 1-3 epochs, seeds 0,1, tiny grids) into a temporary folder:
#  - every section writes its table and figures; the tables have the expected rows (the lr grid with
#    its diverged lr, 6 schedules, 3 optimizers, 4 SWA rows, 3 ridges, 4 mixup alphas, the Bag of
#    Tricks rows, 6 scaling rows);
#  - every "mean ± std" cell equals what awk recomputes from the CSV rows its line names (the sweep's
#    results.csv with its extra columns), std with n - 1;
#  - the figures' data: the schedules' last-epoch means, the optimizers' finals, the ridges' best lr
#    per row recomputed from the CSV; the SWA average's accuracy evaluated again from the saved file
#    equals the final line's swa_test_acc; emulated bf16 ends with the native run's params_crc;
#  - the provenance: commit (this checkout's HEAD), the exact commands, the CPU, the date;
#  - every PNG is a PNG (signature and IHDR with a non-zero size); every figure a table links exists;
#  - bad section numbers: one message, exit 2.
# usage: bash tests/test_experiments.sh   (about 3 minutes on 2 quiet cores)
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_experiments
. tests/lib.sh
[ -x "$DT" ] || { echo "$T: $DT missing (make)" >&2; exit 1; }
[ -f data/fashion-mnist/train-images-idx3-ubyte ] || { echo "$T: data/fashion-mnist missing (make data)" >&2; exit 1; }
command -v gnuplot >/dev/null || skip_all "gnuplot missing"
R=$TMP/results
head=$(git rev-parse HEAD) # the commit the tables must name (taken before they are made)
export QUICK=1 RESULTS=$R RUNS_ROOT=$TMP/runs
if ! timeout -k 5 1500 bash experiments/all.sh >"$TMP/all.log" 2>&1; then
    tail -20 "$TMP/all.log"
    die "QUICK=1 experiments/all.sh failed"
fi
pass "QUICK=1 experiments/all.sh: $(grep -c '^== section [0-9]: [0-9]* s$' "$TMP/all.log") sections"

MDS=(s1_lr s2_schedules s3_optimizers s4_swa s5_heatmaps s6_mixup s7_tricks s8_scaling)
for m in "${MDS[@]}"; do
    [ -s "$R/$m.md" ] || die "$m.md missing"
done
pass "8 tables written"

# rows MD PATTERN: table lines of MD matching PATTERN
rows() { grep -cE "$2" "$R/$1.md"; }
check_rows() { # MD PATTERN N WHAT
    local n
    n=$(rows "$1" "$2")
    if [ "$n" -eq "$3" ]; then pass "$1: $4 ($n rows)"; else fail "$1: $4: $n rows, expected $3"; fi
}
check_rows s1_lr '^\| (0.004|0.063|4) \|' 3 "one row per lr"
check_rows s1_lr '^\| 4 \| 2 diverged \| diverged \|' 1 "lr 4 diverged on both seeds"
check_rows s2_schedules '^\| (step|exponential|cyclic|cosine|cosine_restarts|onecycle) \|' 6 "six schedules"
check_rows s3_optimizers '^\| (sgd|momentum|adam) \| [^|]* \| [0-9.e-]+ \| [0-9.]+ ± ' 3 "tuned optimizers"
check_rows s3_optimizers '^\| (sgd|momentum|adam) \| [^|]*: ' 3 "tuning rows"
check_rows s4_swa '^\| (cosine, same budget|SWA run: |SWA average saved )' 3 "SWA rows"
check_rows s5_heatmaps '^\| lr x (batch size|momentum|weight decay) \|' 3 "three ridges"
check_rows s6_mixup '^\| (0|0.2|0.4|1.0) \|' 4 "four alphas"
check_rows s7_tricks '^\| cnn \(1 epochs\) \|' 1 "the lecture's format"
nat=4
grep -qw avx512_bf16 /proc/cpuinfo && nat=5
check_rows s7_tricks '^\| (fp32 baseline|bf16 native|bf16 emulated|fp16 emulated|recipe) ' "$nat" "precision rows"
check_rows s8_scaling '^\| (dtrain|PyTorch DDP) \| [12]x[12] \|' 6 "dtrain and PyTorch at 1x1, 1x2, 2x1"

# ---- every mean ± std cell against the CSV rows its line names ----
# stat CSV METRIC DEC SEL...: mean ± std (n - 1) of METRIC over the ok rows matching SEL
stat() {
    local csv=$1 m=$2 d=$3
    shift 3
    awk -F, -v m="$m" -v d="$d" -v sel="$*" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; n = split(sel, kv, " "); next }
        {
            ok = 1
            for (j = 1; j <= n; j++) { eq = index(kv[j], "="); if ($col[substr(kv[j], 1, eq - 1)] != substr(kv[j], eq + 1)) ok = 0 }
            if (ok && $col["status"] == "ok" && $col[m] != "") v[++k] = $col[m] + 0
        }
        END {
            for (i = 1; i <= k; i++) s += v[i]
            mu = s / k
            for (i = 1; i <= k; i++) q += (v[i] - mu) * (v[i] - mu)
            printf "%." d "f ± %." d "f\n", mu, sqrt(q / (k - 1))
        }' "$R/$csv"
}
checked=0
bad=0
for m in "${MDS[@]}"; do
    header=""
    while IFS= read -r line; do
        case $line in
        "| "*"| from |") header=$line; continue ;;
        "|---"*) continue ;;
        "| "*) ;;
        *) header=""; continue ;;
        esac
        [ -n "$header" ] || continue
        src=$(sed -n 's/.*| `\([^`]*\.csv\)` *\([^|]*\)|$/\1|\2/p' <<<"$line")
        [ -n "$src" ] || continue
        csv=${src%%|*}
        sel=${src#*|}
        IFS='|' read -r -a hs <<<"$header"
        IFS='|' read -r -a cs <<<"$line"
        for i in "${!hs[@]}"; do
            h=$(awk '{ print $1 }' <<<"${hs[$i]}")
            c=$(sed 's/^ *//; s/ *$//' <<<"${cs[$i]:-}")
            [[ $c =~ ^(-?[0-9]+\.?([0-9]*))\ ±\ ([0-9.]+) ]] || continue
            dec=${#BASH_REMATCH[2]}
            head -1 "$R/$csv" | tr , '\n' | grep -qx "$h" || continue
            # shellcheck disable=SC2086 # sel holds several KEY=VALUE words
            want=$(stat "$csv" "$h" "$dec" $sel)
            checked=$((checked + 1))
            if [ "${c%% (*}" != "$want" ]; then
                bad=$((bad + 1))
                fail "$m: $h = '$c' for $csv $sel; awk recomputes '$want'"
            fi
        done
    done <"$R/$m.md"
done
[ "$checked" -ge 60 ] && [ "$bad" -eq 0 ] && pass "$checked mean ± std cells equal awk's recomputation from the CSVs"
[ "$checked" -ge 60 ] || fail "only $checked mean ± std cells found"

# ---- the data behind the figures ----
for k in step cosine onecycle; do
    csv=s2/kinds.csv
    [ "$k" = step ] && csv=s2/step.csv
    a=$(awk 'END { printf "%.2f", $2 }' "$TMP/runs/s2/acc_$k.dat")
    b=$(stat "$csv" test_acc 2 sched.kind="$k" | cut -d' ' -f1)
    [ "$a" = "$b" ] && pass "s2 figure: $k's last epoch $a = mean final test_acc" || fail "s2 figure: $k's last epoch $a, CSV mean $b"
done
while read -r _ name lr mu _; do
    b=$(stat "s3/final_$name.csv" test_acc 4 optim.lr="$lr" | cut -d' ' -f1)
    a=$(awk -v x="$mu" 'BEGIN { printf "%.4f", x }')
    [ "$a" = "$b" ] && pass "s3 figure: $name at lr $lr, mean $a" || fail "s3 figure: $name $a, CSV $b"
    best=$(awk -F, 'NR > 1 && $4 == "ok" && $7 + 0 > b { b = $7 + 0; l = $2 } END { print l }' "$R/s3/tune_$name.csv")
    [ "$best" = "$lr" ] || fail "s3: $name tuned lr $lr, but seed 0's best in tune_$name.csv is $best"
done <"$TMP/runs/s3/finals.dat"
for g in lr_batch:train.batch_size lr_momentum:optim.momentum lr_wd:optim.weight_decay; do
    csv=s5/${g%%:*}.csv
    key=${g#*:}
    want=$(awk -F, -v k="$key" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["status"] == "ok" { t = $c[k] "," $c["optim.lr"]; n[t]++; s[t] += $c["test_acc"] }
        END { for (t in n) { split(t, p, ","); m = s[t] / n[t]; if (!(p[1] in b) || m > b[p[1]]) { b[p[1]] = m; l[p[1]] = p[2] } }
              for (y in l) print y, l[y] }' "$R/$csv" | sort)
    got=$(awk '{ print $1, $3 }' "$TMP/runs/s5/ridge_${g%%:*}.dat" | sort)
    [ "$want" = "$got" ] && pass "s5: ridge of ${g%%:*} (best mean lr per row over the seeds) from the CSV" || fail "s5: ridge ${g%%:*}: '$got', CSV '$want'"
done
while IFS=, read -r trial seed _ acc _; do
    [ "$trial" = trial ] && continue
    sw=$(awk -F, -v s="$seed" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next } $c["swa.mode"] == "swa" && $c["seed"] == s { print $c["swa_test_acc"] }' "$R/s4/modes.csv")
    [ "$sw" = "$acc" ] && pass "s4: seed $seed: dtrain eval of swa-final.h5 $acc = swa_test_acc" || fail "s4: seed $seed: eval $acc, swa_test_acc $sw"
done <"$R/s4/swa_eval.csv"
if [ -f "$R/s7/bf16emu.csv" ]; then
    a=$(awk -F, 'NR > 1 && $2 == "bf16" && $3 == 0 { print $11 }' "$R/s7/prec.csv")
    b=$(awk -F, 'NR > 1 && $3 == 0 { print $11 }' "$R/s7/bf16emu.csv")
    [ -n "$a" ] && [ "$a" = "$b" ] && pass "s7: emulated bf16 ends with the native params_crc $a" || fail "s7: native $a, emulated $b"
fi

# ---- provenance ----
# shellcheck disable=SC2154 # failed: tests/lib.sh's counter
f0=$failed
for m in "${MDS[@]}"; do
    n=${m%%_*}
    n=${n#s}
    grep -q "^- commit: \`.*\` (\`$head\`, " "$R/$m.md" || fail "$m: no commit $head"
    grep -q "^- command: \`QUICK=1 experiments/run.sh $n\`" "$R/$m.md" || fail "$m: no command line"
    grep -qE '^(mpirun -np [0-9]+ ./dtrain (sweep|train|lr-find|eval) |python3 experiments/)' "$R/$m.md" || fail "$m: no dtrain command"
    grep -qE '^- CPU: .*avx512f: (yes|no), avx512_bf16: (yes|no)' "$R/$m.md" || fail "$m: no CPU line"
    grep -qE '^- date: [0-9]{4}-[0-9]{2}-[0-9]{2} .*wall time of the section: [0-9]+ s; load average before' "$R/$m.md" || fail "$m: no date, wall time or load"
done
[ "$failed" -eq "$f0" ] && pass "provenance in every table (commit $head, command, CPU, date, wall time, load)"

# ---- figures ----
npng=0
for f in "$R"/*.png; do
    npng=$((npng + 1))
    sig=$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')
    ihdr=$(dd if="$f" bs=1 skip=12 count=4 2>/dev/null)
    wh=$(dd if="$f" bs=1 skip=16 count=8 2>/dev/null | od -An -tu1 | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4, $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }')
    if [ "$sig" != 89504e470d0a1a0a ] || [ "$ihdr" != IHDR ] || [ "${wh%% *}" -lt 100 ] || [ "${wh##* }" -lt 100 ]; then
        fail "$(basename "$f"): not a PNG ($sig $ihdr $wh)"
    fi
done
# s1 (2), s2, s3, s4, s5 (3 heatmaps + ridges), s6, s7, s8
[ "$npng" -eq 12 ] && pass "$npng PNGs, each a PNG of at least 100 x 100" || fail "$npng PNGs, expected 12"
for m in "${MDS[@]}"; do
    for f in $(grep -o '](s[0-9][^)]*\.png)' "$R/$m.md" | sed 's/^](//; s/)$//'); do
        [ -s "$R/$f" ] || fail "$m links $f, which is missing"
    done
done

# ---- bad input ----
out=$(bash experiments/run.sh 9 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$(grep -c . <<<"$out")" -eq 1 ] && grep -q "section '9': expected 1 to 8" <<<"$out" &&
    pass "run.sh 9: one message, exit 2" || fail "run.sh 9: exit $rc, '$out'"
summary
