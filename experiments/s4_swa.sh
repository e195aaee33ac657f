#!/usr/bin/env bash
# experiments/s4_swa.sh - the lecture's section 4 (stochastic weight averaging): one sweep over
# swa.mode = off, swa with the same budget. off: the cosine schedule over the whole run. swa: the
# same cosine until swa.start, then the constant swa.lr, and the weights averaged after each later
# epoch. dtrain reports for an SWA run the last iterate (test_acc: the weights trained last, with
# their own BatchNorm running statistics) and the average (swa_test_acc: after the BN refresh, one
# pass over the training data). The average is also saved (swa-final.h5) and evaluated again with
# `dtrain eval` (top-1 must match swa_test_acc; it gives top-5). The model is cnn_bn
# (experiments/cnn_bn.cfg: the cnn with BatchNorm) so that the refresh matters. Fashion-MNIST,
# SGD momentum 0.9, lr 0.05, 10,000 training samples, 8 epochs, SWA from epoch 4 at lr 0.01
# (QUICK: 2,000 samples, 3 epochs, from epoch 1).
# Writes $RESULTS/s4_swa.md, s4_swa.png, s4/modes.csv, s4/swa_eval.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s4
mkdir -p "$RUNS"
LIMIT=$(q 10000 2000)
EPOCHS=$(q 8 3)
START=$(q 4 1)
SWALR=0.01
MODEL=experiments/cnn_bn.cfg
BASE=(--model "$MODEL" "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd
      --momentum 0.9 --lr 0.05 --sched cosine --batch-size 64 --set swa.interval=epoch
      --set swa.start="$START" --set swa.lr="$SWALR" --set swa.eval_every_epoch=true)

echo "section 4: SWA vs cosine, $EPOCHS epochs x $LIMIT samples, SWA from epoch $START at lr $SWALR, seeds $SEEDS"
xsweep modes 2 "${BASE[@]}" --grid swa.mode=off,swa --seeds "$SEEDS"

# the saved averages, evaluated again by dtrain eval
echo "trial,seed,status,test_acc,test_top5,test_loss" >"$RESULTS/s4/swa_eval.csv"
while IFS=, read -r seed dir; do
    ck=$RUNS/modes/$dir/ckpt/swa-final.h5
    CMDS+=("mpirun -np 1 ./dtrain eval modes/$dir/ckpt/swa-final.h5 --model $MODEL --set data.limit_test=$LIMIT_TEST --threads 1")
    # shellcheck disable=SC2086
    mpirun -np 1 $DT_MPIRUN_FLAGS "$DT_BIN" eval "$ck" --model "$MODEL" --set data.limit_test="$LIMIT_TEST" --threads 1 </dev/null \
        >"$RUNS/eval_$seed.log" 2>&1 || { echo "eval $ck failed:" >&2; tail -3 "$RUNS/eval_$seed.log" >&2; exit 1; }
    line=$(grep '^eval: ' "$RUNS/eval_$seed.log" | tail -1)
    acc=$(sed -n 's/.* acc=\([0-9.]*\).*/\1/p' <<<"$line")
    top5=$(sed -n 's/.* top5=\([0-9.]*\).*/\1/p' <<<"$line")
    loss=$(sed -n 's/.* loss=\([0-9.]*\).*/\1/p' <<<"$line")
    echo "$dir,$seed,ok,$acc,$top5,$loss" >>"$RESULTS/s4/swa_eval.csv"
done < <(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $c["swa.mode"] == "swa" && $c["status"] == "ok" { print $c["seed"] "," $c["dir"] }' "$RUNS/modes/results.csv")

# ---- figure: lr, cosine run, SWA run's last iterate, SWA average ----
mapfile -t off < <(trial_dirs modes swa.mode=off)
mapfile -t swa < <(trial_dirs modes swa.mode=swa)
epoch_mean "$RUNS/off.dat" test_acc "${off[@]}"
epoch_mean "$RUNS/last.dat" test_acc "${swa[@]}"
epoch_mean "$RUNS/avg.dat" swa_test_acc "${swa[@]}"
epoch_mean "$RUNS/lr_off.dat" lr "${off[@]}"
epoch_mean "$RUNS/lr_swa.dat" lr "${swa[@]}"
awk '$2 != "nan" && $2 != "-nan"' "$RUNS/avg.dat" >"$RUNS/avg2.dat"
yr=$(cat "$RUNS/off.dat" "$RUNS/last.dat" "$RUNS/avg2.dat" | awk -v s="$START" '$1 > s - 2 { if (lo == "" || $2 - $3 < lo) lo = $2 - $3; if ($2 + $3 > hi) hi = $2 + $3 }
    END { printf "%d:%d", lo - 1, (hi + 1 > 100 ? 100 : hi + 1) }')
{
    gp_png "$RESULTS/s4_swa.png" 1400 360
    echo "set multiplot layout 1,4 title 'Section 4: SWA, cnn_bn on Fashion-MNIST ($EPOCHS epochs x $LIMIT samples, SWA from epoch $START at lr $SWALR; mean and std over seeds $SEEDS)'"
    echo "set grid; set key top right; set xrange [0.5:$EPOCHS.5]; set xtics 1; set xlabel 'epoch'"
    echo "set title 'lr at the end of each epoch'; set ylabel 'lr'; set yrange [0:*]"
    echo "plot '$RUNS/lr_off.dat' u 1:2 w lp pt 7 ps 0.6 lc rgb '#1f77b4' t 'cosine', '$RUNS/lr_swa.dat' u 1:2 w lp pt 5 ps 0.6 lc rgb '#d62728' t 'SWA run'"
    echo "set key off; set ylabel 'test acc (%)'; set yrange [$yr]; set xrange [$((START - 1)).5:$EPOCHS.5]"
    echo "set title 'cosine, same budget'; plot '$RUNS/off.dat' u 1:2:3 w yerrorlines pt 7 lc rgb '#1f77b4'"
    echo "set title 'SWA run: last iterate'; plot '$RUNS/last.dat' u 1:2:3 w yerrorlines pt 7 lc rgb '#ff7f0e'"
    echo "set title 'SWA run: average (BN refreshed)'; plot '$RUNS/avg2.dat' u 1:2:3 w yerrorlines pt 7 lc rgb '#d62728'"
    echo "unset multiplot"
} >"$RUNS/s4_swa.gp"
gnuplot "$RUNS/s4_swa.gp"

# ---- table ----
{
    echo "### Section 4: stochastic weight averaging (cnn_bn, Fashion-MNIST)"
    echo
    echo "cnn_bn ([experiments/cnn_bn.cfg](../cnn_bn.cfg): the cnn with a BatchNorm after each convolution)," \
         "SGD momentum 0.9, batch 64, lr 0.05, $EPOCHS epochs on the first $LIMIT training samples, tested on" \
         "$([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples; seeds $SEEDS;" \
         "mean ± std over the seeds (std with n - 1, numpy ddof=1). The cosine run anneals 0.05 to 0 over all" \
         "$EPOCHS epochs; the SWA run follows the same cosine until epoch $START, then lr $SWALR, averaging" \
         "the weights after epochs $((START + 1))..$EPOCHS ($((EPOCHS - START)) snapshots); both see the same" \
         "data for the same number of steps (the average adds one BN-refresh pass over the training data)."
    echo
    echo "| run | test_acc (%) | test_top5 (%) | swa_test_acc (%) | from |"
    echo "|---|---:|---:|---:|---|"
    echo "| cosine, same budget (swa.mode off) | $(cell s4/modes.csv test_acc 2 swa.mode=off) | $(cell s4/modes.csv test_top5 2 swa.mode=off) | - | $(from s4/modes.csv swa.mode=off) |"
    echo "| SWA run: test_acc and top5 of its last iterate, swa_test_acc of its average after the BN refresh | $(cell s4/modes.csv test_acc 2 swa.mode=swa) |" \
         "$(cell s4/modes.csv test_top5 2 swa.mode=swa) | $(cell s4/modes.csv swa_test_acc 2 swa.mode=swa) | $(from s4/modes.csv swa.mode=swa) |"
    echo "| SWA average saved (swa-final.h5), evaluated again by \`dtrain eval\` | $(cell s4/swa_eval.csv test_acc 2) | $(cell s4/swa_eval.csv test_top5 2) | - | $(from s4/swa_eval.csv) |"
    echo
    echo "![SWA](s4_swa.png)"
    provenance
} >"$RESULTS/s4_swa.md"
echo "section 4: $RESULTS/s4_swa.md"
