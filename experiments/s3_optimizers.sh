#!/usr/bin/env bash
# experiments/s3_optimizers.sh - the lecture's section 3 (optimizers): SGD, SGD with momentum,
# Nesterov, Adagrad, RMSprop, Adam and AdamW. Each is tuned over 3 lrs around its usual one
# (usual x 0.3, 1, 3) on seed 0, then trained with seeds 0,1,2 at the best of them: the final
# table compares every optimizer at its own tuned lr. The cnn on Fashion-MNIST, batch 64, cosine
# schedule, 10,000 training samples, 3 epochs (QUICK: 2,000 samples, 1 epoch, 2 lrs, 3 optimizers).
# Writes $RESULTS/s3_optimizers.md, s3_optimizers.png (one panel per optimizer: seed 0's test
# accuracy against the lr, the tuned lr's mean ± std over the seeds; last panel: the finals),
# s3/tune_NAME.csv and s3/final_NAME.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s3
mkdir -p "$RUNS"
LIMIT=$(q 10000 2000)
EPOCHS=$(q 3 1)
FACTORS=$(q "0.3 1 3" "1 3")
BASE=(--model cnn "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --sched cosine
      --batch-size 64)

# name | usual lr | dtrain options | label
OPTS=(
    "sgd|0.1|--optim sgd --momentum 0|SGD"
    "momentum|0.05|--optim sgd --momentum 0.9|SGD, momentum 0.9"
    "nesterov|0.05|--optim sgd --momentum 0.9 --set optim.nesterov=true|SGD, Nesterov momentum 0.9"
    "adagrad|0.01|--optim adagrad|Adagrad"
    "rmsprop|0.001|--optim rmsprop|RMSprop, alpha 0.99"
    "adam|0.001|--optim adam|Adam, betas (0.9, 0.999)"
    "adamw|0.001|--optim adamw --weight-decay 0.01|AdamW, decoupled weight decay 0.01"
)
# QUICK: three of them (sgd, momentum, adam), to stay within the smoke test's minutes
[ "$QUICK" = 1 ] && OPTS=("${OPTS[0]}" "${OPTS[1]}" "${OPTS[5]}")

echo "section 3: ${#OPTS[@]} optimizers, lr x ($FACTORS) on seed 0, then seeds $SEEDS; $EPOCHS epochs x $LIMIT samples"
declare -A BEST
for o in "${OPTS[@]}"; do
    IFS='|' read -r name usual args label <<<"$o"
    lrs=$(for f in $FACTORS; do awk -v u="$usual" -v f="$f" 'BEGIN { printf "%.3g\n", u * f }'; done | paste -sd,)
    # shellcheck disable=SC2086 # args holds several options
    xsweep "tune_$name" 2 "${BASE[@]}" $args --grid optim.lr="$lrs" --seeds 0
    BEST[$name]=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["status"] == "ok" && (b == "" || $c["test_acc"] + 0 > best) { best = $c["test_acc"] + 0; b = $c["optim.lr"] }
        END { print b }' "$RESULTS/s3/tune_$name.csv")
    [ -n "${BEST[$name]}" ] || { echo "section 3: $name diverged at every lr ($lrs)" >&2; exit 1; }
    # shellcheck disable=SC2086
    xsweep "final_$name" 2 "${BASE[@]}" $args --grid optim.lr="${BEST[$name]}" --seeds "$SEEDS"
done

# ---- figure ----
: >"$RUNS/finals.dat"
i=0
for o in "${OPTS[@]}"; do
    IFS='|' read -r name usual args label <<<"$o"
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { print $c["optim.lr"], ($c["status"] == "ok" ? $c["test_acc"] : "NaN") }' "$RESULTS/s3/tune_$name.csv" >"$RUNS/tune_$name.dat"
    i=$((i + 1))
    echo "$i $name ${BEST[$name]} $(mean "s3/final_$name.csv" test_acc optim.lr="${BEST[$name]}")" \
        "$(cell "s3/final_$name.csv" test_acc 4 optim.lr="${BEST[$name]}" | awk '{ print ($3 == "" ? 0 : $3) }')" >>"$RUNS/finals.dat"
done
yr=$(cat "$RUNS"/tune_*.dat "$RUNS/finals.dat" | awk '{ v = (NF == 2 ? $2 : $4) } v != "NaN" { if (lo == "" || v < lo) lo = v; if (v > hi) hi = v }
    END { printf "%d:%d", lo - 2, (hi + 2 > 100 ? 100 : hi + 2) }')
{
    gp_png "$RESULTS/s3_optimizers.png" 1400 620
    echo "set multiplot layout 2,4 title 'Section 3: optimizers, cnn on Fashion-MNIST, cosine schedule ($EPOCHS epochs x $LIMIT samples). Line: seed 0 over the lr grid (diverged: missing); red: mean and std over seeds $SEEDS at the tuned lr'"
    echo "set grid; set key off; set logscale x; set yrange [$yr]; set xlabel 'lr'; set ylabel 'test acc (%)'"
    for o in "${OPTS[@]}"; do
        IFS='|' read -r name usual args label <<<"$o"
        echo "set title '$label' noenhanced"
        echo "plot '$RUNS/tune_$name.dat' u 1:2 w lp pt 7 lc rgb '#1f77b4', '$RUNS/finals.dat' u (strcol(2) eq '$name' ? \$3 : NaN):4:5 w yerrorbars pt 5 ps 1.2 lc rgb '#d62728'"
    done
    echo "unset logscale x; set xrange [0.5:${#OPTS[@]}.5]; set xlabel ''; set xtics rotate by 30 right"
    echo "set title 'tuned: mean and std over seeds'"
    echo "plot '$RUNS/finals.dat' u 1:4:5:xticlabels(2) w yerrorbars pt 5 ps 1.2 lc rgb '#d62728'"
    echo "unset multiplot"
} >"$RUNS/s3_optimizers.gp"
gnuplot "$RUNS/s3_optimizers.gp"

# ---- tables ----
{
    echo "### Section 3: optimizers (cnn, Fashion-MNIST)"
    echo
    echo "Batch 64, cosine schedule, $EPOCHS epochs on the first $LIMIT training samples, tested on" \
         "$([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples. Each optimizer's lr is" \
         "tuned on seed 0 over its usual lr x ($FACTORS) (second table), then trained with seeds $SEEDS at" \
         "the best one: mean ± std over the seeds (std with n - 1, numpy ddof=1)."
    echo
    echo "| optimizer | settings | tuned optim.lr | test_acc (%) | test_top5 (%) | train_loss | from |"
    echo "|---|---|---:|---:|---:|---:|---|"
    for o in "${OPTS[@]}"; do
        IFS='|' read -r name usual args label <<<"$o"
        b=${BEST[$name]}
        echo "| $name | $label | $b | $(cell "s3/final_$name.csv" test_acc 2 optim.lr="$b") |" \
             "$(cell "s3/final_$name.csv" test_top5 2 optim.lr="$b") | $(cell "s3/final_$name.csv" train_loss 3 optim.lr="$b") |" \
             "$(from "s3/final_$name.csv" optim.lr="$b") |"
    done
    echo
    echo "Tuning, seed 0: test accuracy (%) at each lr (usual lr in bold):"
    echo
    echo "| optimizer | lr: test_acc, ... | from |"
    echo "|---|---|---|"
    for o in "${OPTS[@]}"; do
        IFS='|' read -r name usual args label <<<"$o"
        row=$(awk -F, -v u="$usual" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
            { lr = $c["optim.lr"]; if (lr + 0 == u + 0) lr = "**" lr "**"
              printf "%s%s: %s", (NR > 2 ? "; " : ""), lr, ($c["status"] == "ok" ? $c["test_acc"] : $c["status"]) }' \
            "$RESULTS/s3/tune_$name.csv")
        echo "| $name | $row | \`s3/tune_$name.csv\` |"
    done
    echo
    echo "![optimizers](s3_optimizers.png)"
    provenance
} >"$RESULTS/s3_optimizers.md"
echo "section 3: $RESULTS/s3_optimizers.md"
