#!/usr/bin/env bash
# experiments/s6_mixup.sh - the lecture's section 6 (mixup): train.mixup_alpha = 0 (off), 0.2, 0.4,
# 1.0, 3 seeds each, with longer training than the other sections (mixup is known to need it):
# the cnn on Fashion-MNIST, SGD momentum 0.9, lr 0.05, weight decay 5e-4, cosine, 10,000
# training samples, 6 epochs (twice section 3's) (QUICK: 2,000 samples, 2 epochs).
# Writes $RESULTS/s6_mixup.md, s6_mixup.png (one panel per alpha: test accuracy per epoch, mean ±
# std over the seeds; last panel: the final accuracy against alpha), s6/alpha.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s6
mkdir -p "$RUNS"
LIMIT=$(q 10000 2000)
EPOCHS=$(q 6 2)
ALPHAS=(0 0.2 0.4 1.0)
BASE=(--model cnn "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd
      --momentum 0.9 --lr 0.05 --weight-decay 5e-4 --sched cosine --batch-size 64)

echo "section 6: mixup alpha ${ALPHAS[*]}, $EPOCHS epochs x $LIMIT samples, seeds $SEEDS"
xsweep alpha 2 "${BASE[@]}" --grid train.mixup_alpha="$(IFS=,; echo "${ALPHAS[*]}")" --seeds "$SEEDS"

: >"$RUNS/final.dat"
for a in "${ALPHAS[@]}"; do
    mapfile -t dirs < <(trial_dirs alpha train.mixup_alpha="$a")
    epoch_mean "$RUNS/acc_$a.dat" test_acc "${dirs[@]}"
    echo "$a $(mean s6/alpha.csv test_acc train.mixup_alpha="$a")" \
        "$(cell s6/alpha.csv test_acc 4 train.mixup_alpha="$a" | awk '{ print ($3 == "" ? 0 : $3) }')" >>"$RUNS/final.dat"
done
yr=$(cat "$RUNS"/acc_*.dat | awk '$1 > 1 { if (lo == "" || $2 - $3 < lo) lo = $2 - $3; if ($2 + $3 > hi) hi = $2 + $3 }
    END { if (lo == "") { lo = 0; hi = 100 } printf "%d:%d", lo - 1, (hi + 1 > 100 ? 100 : hi + 1) }')
{
    gp_png "$RESULTS/s6_mixup.png" 1500 360
    echo "set multiplot layout 1,5 title 'Section 6: mixup, cnn on Fashion-MNIST ($EPOCHS epochs x $LIMIT samples; test accuracy, mean and std over seeds $SEEDS)'"
    echo "set grid; set key off; set yrange [$yr]; set ylabel 'test acc (%)'; set xlabel 'epoch'; set xrange [1.5:$EPOCHS.5]"
    for a in "${ALPHAS[@]}"; do
        echo "set title 'alpha $a$([ "$a" = 0 ] && echo ' (no mixup)'): final $(awk 'END { printf "%.2f", $2 }' "$RUNS/acc_$a.dat") %'"
        echo "plot '$RUNS/acc_$a.dat' u 1:2:3 w yerrorlines pt 7 ps 0.6 lc rgb '#d62728'"
    done
    echo "set title 'final test accuracy vs alpha'; set xlabel 'mixup alpha'; set xrange [-0.1:1.1]; set autoscale y"
    echo "plot '$RUNS/final.dat' u 1:2:3 w yerrorlines pt 5 lc rgb '#1f77b4'"
    echo "unset multiplot"
} >"$RUNS/s6_mixup.gp"
gnuplot "$RUNS/s6_mixup.gp"

{
    echo "### Section 6: mixup (cnn, Fashion-MNIST)"
    echo
    echo "SGD with momentum 0.9, lr 0.05, weight decay 5e-4, cosine, batch 64, $EPOCHS epochs on the first" \
         "$LIMIT training samples, tested on $([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST")" \
         "test samples; seeds $SEEDS; mean ± std over the seeds (std with n - 1, numpy ddof=1)." \
         "train_loss is the loss on the mixed batches (not comparable across alphas)."
    echo
    echo "| train.mixup_alpha | test_acc (%) | test_top5 (%) | test_loss | train_loss (mixed) | test acc per epoch (mean) | from |"
    echo "|---:|---:|---:|---:|---:|---|---|"
    for a in "${ALPHAS[@]}"; do
        echo "| $a | $(cell s6/alpha.csv test_acc 2 train.mixup_alpha="$a") | $(cell s6/alpha.csv test_top5 2 train.mixup_alpha="$a") |" \
             "$(cell s6/alpha.csv test_loss 3 train.mixup_alpha="$a") | $(cell s6/alpha.csv train_loss 3 train.mixup_alpha="$a") |" \
             "$(awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), $2 }' "$RUNS/acc_$a.dat") | $(from s6/alpha.csv train.mixup_alpha="$a") |"
    done
    echo
    echo "![mixup](s6_mixup.png)"
    provenance
} >"$RESULTS/s6_mixup.md"
echo "section 6: $RESULTS/s6_mixup.md"
