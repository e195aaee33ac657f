#!/usr/bin/env bash
# experiments/s7_tricks.sh - the lecture's section 7 (low precision, Bag of Tricks): time per
# epoch, top-1 and top-5 for the fp32 baseline, bf16 (native vdpbf16ps kernels where the CPU has
# AVX512_BF16; on such a CPU also bf16 through the bit-exact emulation, kernels.isa=avx512), fp16
# (always emulated: rounding passes) and the recipe with all the tricks (bf16, no weight decay on
# biases and BN, label smoothing 0.1, cosine with one epoch of linear warmup) against the baseline,
# in the lecture's table format. The cnn on Fashion-MNIST, SGD momentum 0.9, lr 0.05, weight decay
# 5e-4, cosine, batch 64, 10,000 training samples, 3 epochs, 3 seeds (QUICK: 2,000, 1 epoch). The
# emulated bf16 row: one epoch of seed 0, for its time (its weights are bitwise the native ones).
# Time per epoch: the mean of the epochs' training time (metrics_epoch.csv time_s, evaluation
# excluded) of one rank on one thread, while the sweep's other group trains another trial on the
# other core; the load average before and after is in the provenance.
# Writes $RESULTS/s7_tricks.md, s7_tricks.png, s7/prec.csv, s7/recipe.csv (s7/bf16emu.csv).
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s7
mkdir -p "$RUNS"
LIMIT=$(q 10000 2000)
EPOCHS=$(q 3 1)
SPE=$(((LIMIT + 63) / 64))
WARMUP=$(q "$SPE" $((SPE / 4)))     # one epoch (QUICK: a quarter of its only epoch)
BASE=(--model cnn "${COMMON[@]}" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd
      --momentum 0.9 --lr 0.05 --weight-decay 5e-4 --sched cosine --batch-size 64)
NATIVE=0
grep -qw avx512_bf16 /proc/cpuinfo && NATIVE=1

echo "section 7: fp32 / bf16 / fp16 / the recipe, $EPOCHS epochs x $LIMIT samples, seeds $SEEDS"
xsweep prec 2 "${BASE[@]}" --grid train.precision=fp32,bf16,fp16 --seeds "$SEEDS"
xsweep recipe 2 "${BASE[@]}" --set optim.no_decay_bias_bn=true --set train.label_smoothing=0.1 \
    --set sched.warmup_steps="$WARMUP" --grid train.precision=bf16 --seeds "$SEEDS"
if [ "$NATIVE" = 1 ]; then
    # the emulation is bit-exact (the same weights as native) and ~10x slower: its time per epoch
    # only, from one epoch of seed 0 (the other core idle meanwhile)
    xsweep bf16emu 2 "${BASE[@]}" --epochs 1 --set train.precision=bf16 --grid kernels.isa=avx512 --seeds 0
fi
# the kernels each run used (train's header line "# kernels: ...")
kern() { grep -m1 '^# kernels:' "$(trial_dirs "$1" "$2" | head -1)/../out.txt" | sed 's/^# kernels: //'; }
K_FP32=$(kern prec train.precision=fp32)
K_BF16=$(kern prec train.precision=bf16)
[ "$NATIVE" = 1 ] && K_EMU=$(kern bf16emu kernels.isa=avx512)
BF16_HOW=$([ "$NATIVE" = 1 ] && echo "native (vdpbf16ps, AVX512_BF16)" || echo "emulated (no AVX512_BF16 on this CPU)")

# ---- figure: time per epoch, top-1, top-5 (one panel each), one bar per configuration ----
rows=("fp32 baseline|s7/prec.csv|train.precision=fp32" "bf16 $([ "$NATIVE" = 1 ] && echo native || echo emulated)|s7/prec.csv|train.precision=bf16")
[ "$NATIVE" = 1 ] && rows+=("bf16 emulated|s7/bf16emu.csv|kernels.isa=avx512")
rows+=("fp16 emulated|s7/prec.csv|train.precision=fp16" "recipe (bf16 + tricks)|s7/recipe.csv|train.precision=bf16")
: >"$RUNS/bars.dat"
i=0
for r in "${rows[@]}"; do
    IFS='|' read -r lab csv sel <<<"$r"
    i=$((i + 1))
    sd() { cell "$csv" "$1" 4 "$sel" | awk '{ print ($3 == "" ? 0 : $3) }'; }
    if [ "$lab" = "bf16 emulated" ]; then
        echo "$i \"$lab\" $(mean "$csv" epoch_s "$sel") 0 NaN 0 NaN 0" >>"$RUNS/bars.dat"
        continue
    fi
    echo "$i \"$lab\" $(mean "$csv" epoch_s "$sel") $(sd epoch_s) $(mean "$csv" test_acc "$sel") $(sd test_acc) $(mean "$csv" test_top5 "$sel") $(sd test_top5)" >>"$RUNS/bars.dat"
done
{
    gp_png "$RESULTS/s7_tricks.png" 1400 400
    echo "set multiplot layout 1,3 title 'Section 7: low precision and the Bag of Tricks recipe, cnn on Fashion-MNIST ($EPOCHS epochs x $LIMIT samples; mean and std over seeds $SEEDS)'"
    echo "set grid ytics; set key off; set style fill solid 0.6; set boxwidth 0.6; set xrange [0.4:$i.6]; set xtics rotate by 25 right"
    echo "set title 'training time per epoch (s, 1 rank x 1 thread)'; set yrange [0:*]"
    echo "plot '$RUNS/bars.dat' u 1:3:xticlabels(2) w boxes lc rgb '#1f77b4', '' u 1:3:4 w yerrorbars pt 0 lw 1.5 lc rgb 'black'"
    echo "set title 'top-1 test accuracy (%)'; set autoscale y"
    echo "plot '$RUNS/bars.dat' u 1:5:6:xticlabels(2) w yerrorbars pt 7 ps 1.2 lc rgb '#d62728'"
    echo "set title 'top-5 test accuracy (%)'"
    echo "plot '$RUNS/bars.dat' u 1:7:8:xticlabels(2) w yerrorbars pt 7 ps 1.2 lc rgb '#2ca02c'"
    echo "unset multiplot"
} >"$RUNS/s7_tricks.gp"
gnuplot "$RUNS/s7_tricks.gp"

{
    echo "### Section 7: low precision and the Bag of Tricks (cnn, Fashion-MNIST)"
    echo
    echo "Baseline: float32, SGD momentum 0.9, lr 0.05, weight decay 5e-4 on every parameter, cosine," \
         "batch 64, $EPOCHS epochs on the first $LIMIT training samples, tested on" \
         "$([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples; seeds $SEEDS;" \
         "mean ± std over the seeds (std with n - 1, numpy ddof=1). Time/epoch: mean training seconds per" \
         "epoch (evaluation excluded) of 1 rank x 1 thread, with another trial on the other core."
    echo "Efficient (the recipe): bf16, no weight decay on biases and BatchNorm (\`optim.no_decay_bias_bn\`)," \
         "label smoothing 0.1, cosine after $WARMUP steps of linear warmup. bf16 here: $BF16_HOW."
    echo
    echo "In the lecture's format:"
    echo
    echo "| Model | Efficient Time/epoch (s) | Top-1 | Top-5 | Baseline Time/epoch (s) | Top-1 | Top-5 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    echo "| cnn ($EPOCHS epochs) | $(cell s7/recipe.csv epoch_s 2 train.precision=bf16) | $(cell s7/recipe.csv test_acc 2 train.precision=bf16) |" \
         "$(cell s7/recipe.csv test_top5 2 train.precision=bf16) | $(cell s7/prec.csv epoch_s 2 train.precision=fp32) |" \
         "$(cell s7/prec.csv test_acc 2 train.precision=fp32) | $(cell s7/prec.csv test_top5 2 train.precision=fp32) |"
    echo
    echo "Each configuration:"
    echo
    echo "| configuration | kernels (train's header) | epoch_s (s) | test_acc (%) | test_top5 (%) | test_loss | from |"
    echo "|---|---|---:|---:|---:|---:|---|"
    for r in "${rows[@]}"; do
        IFS='|' read -r lab csv sel <<<"$r"
        case $lab in
        fp32*) k=$K_FP32 ;;
        "bf16 emulated") k=${K_EMU:-$K_BF16} ;;
        fp16*) k="fp16 rounding emulated; products on $K_FP32" ;;
        *) k=$K_BF16 ;;
        esac
        if [ "$lab" = "bf16 emulated" ]; then
            echo "| $lab | $k | $(cell "$csv" epoch_s 2 "$sel") (1 epoch, seed 0) | bitwise as native | | | $(from "$csv" "$sel") |"
            continue
        fi
        echo "| $lab | $k | $(cell "$csv" epoch_s 2 "$sel") | $(cell "$csv" test_acc 2 "$sel") | $(cell "$csv" test_top5 2 "$sel") |" \
             "$(cell "$csv" test_loss 3 "$sel") | $(from "$csv" "$sel") |"
    done
    echo
    echo "![tricks](s7_tricks.png)"
    provenance
} >"$RESULTS/s7_tricks.md"
echo "section 7: $RESULTS/s7_tricks.md"
