#!/usr/bin/env bash
# experiments/s2_schedules.sh - the lecture's section 2 (learning-rate schedules): step,
# exponential, cyclic, cosine, cosine with warm restarts and one-cycle, 3 seeds each. The cnn on
# Fashion-MNIST, SGD momentum 0.9, lr 0.05 (the peak of the others: max_lr 0.1), 20,000 training
# samples, 7 epochs (QUICK: 2,000 samples, 2 epochs). Step decays per epoch (PyTorch's StepLR
# habit), the others per optimizer step; step needs sched.gamma 0.1 where exponential needs its own
# per-step gamma, so step is a sweep of its own (`step`) and the five others one sweep (`kinds`).
# Writes $RESULTS/s2_schedules.md, s2_schedules.png (one column per schedule: the lr of seed 0
# per step above the test accuracy per epoch, mean ± std over the seeds), s2/step.csv, s2/kinds.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s2
mkdir -p "$RUNS"
LIMIT=$(q 20000 2000)
EPOCHS=$(q 7 2)
LR=0.05
MAXLR=0.1
SPE=$(((LIMIT + 63) / 64))          # optimizer steps per epoch (1 rank, batch 64, last batch kept)
TOTAL=$((SPE * EPOCHS))
# exponential: lr / 100 at the end of the run
GAMMA=$(awk -v t="$TOTAL" 'BEGIN { printf "%.6g", exp(log(0.01) / t) }')
BASE=(--model cnn "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd
      --momentum 0.9 --lr "$LR" --batch-size 64)

echo "section 2: 6 schedules, $EPOCHS epochs x $LIMIT samples ($TOTAL steps), seeds $SEEDS"
xsweep step 2 "${BASE[@]}" --set sched.interval=epoch --set sched.step_size=3 --set sched.gamma=0.1 \
    --grid sched.kind=step --seeds "$SEEDS"
xsweep kinds 2 "${BASE[@]}" --set sched.interval=step --set sched.gamma="$GAMMA" \
    --set sched.max_lr="$MAXLR" --set sched.step_size_up=$((SPE / 2)) --set sched.t_0="$SPE" \
    --set sched.t_mult=2 --grid sched.kind=exponential,cyclic,cosine,cosine_restarts,onecycle \
    --seeds "$SEEDS"

KINDS=(step exponential cyclic cosine cosine_restarts onecycle)
declare -A HOW=(
    [step]="x0.1 every 3 epochs (epoch clock)"
    [exponential]="x$GAMMA per step (lr/100 at the end)"
    [cyclic]="triangular between 0.05 and 0.1, one cycle per epoch (half up, half down; each epoch ends at 0.05); momentum cycled 0.9-0.8"
    [cosine]="0.05 to 0 over the run"
    [cosine_restarts]="T_0 = 1 epoch, T_mult 2 (restarts after epochs 1 and 3)"
    [onecycle]="0.004 up to 0.1 (30 %), then down to 4e-7; momentum 0.95-0.85"
)
sweep_of() { if [ "$1" = step ]; then echo step; else echo kinds; fi; }

# ---- figure ----
for k in "${KINDS[@]}"; do
    sw=$(sweep_of "$k")
    mapfile -t dirs < <(trial_dirs "$sw" sched.kind="$k")
    epoch_mean "$RUNS/acc_$k.dat" test_acc "${dirs[@]}"
    awk -F, -v e="$SPE" 'NR > 1 && ($1 % 4 == 1 || $1 % e == 0) { print $1 / e, $4 }' "${dirs[0]}/metrics_step.csv" >"$RUNS/lr_$k.dat"
done
yr=$(cat "$RUNS"/acc_*.dat | awk '{ if (lo == "" || $2 - $3 < lo) lo = $2 - $3; if ($2 + $3 > hi) hi = $2 + $3 }
    END { printf "%d:%d", lo - 1, (hi + 1 > 100 ? 100 : hi + 1) }')
{
    gp_png "$RESULTS/s2_schedules.png" 1800 560
    echo "set multiplot layout 2,6 title 'Section 2: schedules, cnn on Fashion-MNIST, SGD momentum 0.9 ($EPOCHS epochs x $LIMIT samples; top: lr of seed 0 per step; bottom: test accuracy per epoch, mean and std over seeds $SEEDS)'"
    echo "set grid; set key off; set xrange [0:$EPOCHS]; set xtics 1"
    echo "set yrange [0:$MAXLR * 1.05]; set xlabel 'epoch'"
    first=1
    for k in "${KINDS[@]}"; do
        [ $first = 1 ] && echo "set ylabel 'lr'" || echo "unset ylabel"
        first=0
        echo "set title '$k'; plot '$RUNS/lr_$k.dat' u 1:2 w l lw 1.5 lc rgb '#1f77b4'"
    done
    echo "set yrange [$yr]; set xrange [0.5:$EPOCHS.5]"
    first=1
    for k in "${KINDS[@]}"; do
        [ $first = 1 ] && echo "set ylabel 'test acc (%)'" || echo "unset ylabel"
        first=0
        echo "set title '$k: final $(awk 'END { printf "%.2f", $2 }' "$RUNS/acc_$k.dat") %'"
        echo "plot '$RUNS/acc_$k.dat' u 1:2:3 w yerrorlines pt 7 ps 0.7 lc rgb '#d62728'"
    done
    echo "unset multiplot"
} >"$RUNS/s2_schedules.gp"
gnuplot "$RUNS/s2_schedules.gp"

# ---- table ----
{
    echo "### Section 2: learning-rate schedules (cnn, Fashion-MNIST)"
    echo
    echo "SGD with momentum 0.9, batch 64, base lr $LR, $EPOCHS epochs ($TOTAL steps) on the first" \
         "$LIMIT training samples, tested on $([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples;" \
         "seeds $SEEDS; mean ± std over the seeds (std with n - 1, numpy ddof=1)."
    echo
    echo "| sched.kind | schedule | test_acc (%) | test_top5 (%) | train_loss | test acc per epoch (mean) | from |"
    echo "|---|---|---:|---:|---:|---|---|"
    for k in "${KINDS[@]}"; do
        sw=$(sweep_of "$k")
        echo "| $k | ${HOW[$k]} | $(cell "s2/$sw.csv" test_acc 2 sched.kind="$k") |" \
             "$(cell "s2/$sw.csv" test_top5 2 sched.kind="$k") | $(cell "s2/$sw.csv" train_loss 3 sched.kind="$k") |" \
             "$(awk '{ printf "%s%.1f", (NR > 1 ? ", " : ""), $2 }' "$RUNS/acc_$k.dat") | $(from "s2/$sw.csv" sched.kind="$k") |"
    done
    echo
    echo "![schedules](s2_schedules.png)"
    provenance
} >"$RESULTS/s2_schedules.md"
echo "section 2: $RESULTS/s2_schedules.md"
