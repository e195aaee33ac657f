#!/usr/bin/env bash
# experiments/s1_lr.sh - the lecture's section 1 (the learning rate): the LR range test
# (`dtrain lr-find`) and a grid over the lr, 3 seeds, constant schedule, so the lr is the only thing
# that changes: too small trains slowly, too large diverges. The cnn on Fashion-MNIST, SGD with
# momentum 0.9, 20,000 training samples, 3 epochs (QUICK: 2,000 samples, 1 epoch, 3 lrs).
# Writes $RESULTS/s1_lr.md, s1_lr.png (accuracy per epoch, one panel per lr, and the final
# accuracy against the lr), s1_lr_find.png (the range test), s1/lr.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s1
mkdir -p "$RUNS"
LIMIT=$(q 20000 2000)
EPOCHS=$(q 3 1)
LRS=$(q 0.001,0.004,0.016,0.063,0.25,1,4 0.004,0.063,4)
BASE=(--model cnn "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd
      --momentum 0.9 --sched constant --batch-size 64)

echo "section 1: lr-find and an lr grid ($LRS), $EPOCHS epochs x $LIMIT samples, seeds $SEEDS"
rm -rf "$RUNS/lr_find"
CMDS+=("mpirun -np 1 ./dtrain lr-find ${BASE[*]} --seed 0 --out lr_find")
# shellcheck disable=SC2086
mpirun -np 1 $DT_MPIRUN_FLAGS "$DT_BIN" lr-find "${BASE[@]}" --seed 0 --out "$RUNS/lr_find" \
    >"$RUNS/lr_find.log" 2>&1 || { echo "lr-find failed:" >&2; tail -5 "$RUNS/lr_find.log" >&2; exit 1; }
cp "$RUNS/lr_find/lr_find.png" "$RESULTS/s1_lr_find.png"
mkdir -p "$RESULTS/s1"
cp "$RUNS/lr_find/lr_find.csv" "$RESULTS/s1/lr_find.csv"
xsweep lr 2 "${BASE[@]}" --grid optim.lr="$LRS" --seeds "$SEEDS"

# ---- figure: final accuracy against the lr, then one panel per lr: test accuracy per epoch ----
IFS=, read -r -a lrs <<<"$LRS"
n=${#lrs[@]}
: >"$RUNS/final.dat"
for lr in "${lrs[@]}"; do
    mapfile -t dirs < <(trial_dirs lr optim.lr="$lr")
    if [ ${#dirs[@]} -gt 0 ]; then
        epoch_mean "$RUNS/acc_$lr.dat" test_acc "${dirs[@]}"
        tail -1 "$RUNS/acc_$lr.dat" | awk -v lr="$lr" '{ print lr, $2, $3 }' >>"$RUNS/final.dat"
    else
        echo "1 NaN 0" >"$RUNS/acc_$lr.dat"
    fi
done
{
    gp_png "$RESULTS/s1_lr.png" 1200 $((260 * ((n + 1 + 3) / 4)))
    echo "set multiplot layout $(((n + 1 + 3) / 4)),4 title 'Section 1: cnn on Fashion-MNIST, SGD momentum 0.9, constant lr ($EPOCHS epochs x $LIMIT samples, mean and std over seeds $SEEDS)'"
    echo "set grid; set key off"
    echo "set logscale x; set xrange [${lrs[0]} / 2 : ${lrs[n - 1]} * 2]; set yrange [0:100]"
    echo "set title 'final test accuracy vs lr (missing: diverged)'; set xlabel 'lr'; set ylabel 'test acc (%)'"
    echo "plot '$RUNS/final.dat' u 1:2:3 w yerrorlines pt 7 lc rgb '#1f77b4'"
    yr=$(cat "$RUNS"/acc_*.dat | awk '$2 != "NaN" { if (lo == "" || $2 - $3 < lo) lo = $2 - $3; if ($2 + $3 > hi) hi = $2 + $3 }
        END { printf "%d:%d", lo - 2, (hi + 2 > 100 ? 100 : hi + 2) }')
    echo "unset logscale x; set xrange [0.5:$EPOCHS.5]; set xtics 1; set yrange [$yr]; set xlabel 'epoch'"
    for lr in "${lrs[@]}"; do
        if [ -s "$RUNS/acc_$lr.dat" ] && ! grep -q NaN "$RUNS/acc_$lr.dat"; then
            echo "set title 'lr $lr'; plot '$RUNS/acc_$lr.dat' u 1:2:3 w yerrorlines pt 7 lc rgb '#d62728'"
        else
            echo "set title 'lr $lr: diverged'; set yrange [0:1]; set label 1 'diverged' at graph 0.4, graph 0.5"
            echo "plot 2 notitle; unset label 1; set yrange [$yr]"
        fi
    done
    echo "unset multiplot"
} >"$RUNS/s1_lr.gp"
gnuplot "$RUNS/s1_lr.gp"

# ---- table ----
sugg=$(grep -iE 'valley|steep|slide|minimum' "$RUNS/lr_find.log" | sed 's/^/    /')
{
    echo "### Section 1: the learning rate (cnn, Fashion-MNIST)"
    echo
    echo "SGD with momentum 0.9, batch 64, constant lr, $EPOCHS epochs on the first $LIMIT training" \
         "samples, tested on $([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples;" \
         "seeds $SEEDS; mean ± std over the seeds (std with n - 1, numpy ddof=1)."
    echo
    echo "LR range test (\`dtrain lr-find\`, seed 0, ![](s1_lr_find.png)):"
    echo
    echo '```'
    echo "$sugg"
    echo '```'
    echo
    echo "| optim.lr | status | test_acc (%) | test_top5 (%) | train_loss | test acc after epoch 1 | from |"
    echo "|---:|---|---:|---:|---:|---:|---|"
    for lr in "${lrs[@]}"; do
        # status counts; "at chance" when an ok run ended at 10 % (the loss stuck at ln 10: dead units)
        st=$(awk -F, -v lr="$lr" 'NR > 1 && $2 == lr { s[$4]++; if ($4 == "ok" && $7 + 0 <= 10.5) ch++ }
            END { for (k in s) printf "%s%d %s", (o++ ? ", " : ""), s[k], k; if (ch) printf " (%d at chance)", ch }' "$RUNS/lr/results.csv")
        e1=$(awk 'NR == 1 { printf "%.2f", $2 }' "$RUNS/acc_$lr.dat")
        [ "$e1" = "nan" ] || [ -z "$e1" ] && e1=-
        echo "| $lr | $st | $(cell s1/lr.csv test_acc 2 optim.lr="$lr") | $(cell s1/lr.csv test_top5 2 optim.lr="$lr") |" \
             "$(cell s1/lr.csv train_loss 3 optim.lr="$lr") | $e1 | $(from s1/lr.csv optim.lr="$lr") |"
    done
    echo
    echo "![test accuracy per lr](s1_lr.png)"
    provenance
} >"$RESULTS/s1_lr.md"
echo "section 1: $RESULTS/s1_lr.md"
