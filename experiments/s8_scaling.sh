#!/usr/bin/env bash
# experiments/s8_scaling.sh - the lecture's section 8 (distributed training): time per epoch and
# accuracy against ranks x threads per rank, 1x1, 1x2 and 2x1 on this 2-core machine, dtrain
# (`mpirun -np R ./dtrain train --threads T`) against PyTorch DistributedDataParallel over gloo on
# the same machine (experiments/torch_cnn.py, /usr/bin/python3; skipped, and the table says so,
# without torch). The global batch is 64 in every configuration (2 ranks: 32 each), so the
# optimization is the same and only the time may differ. The cnn on the first 15,000
# Fashion-MNIST training samples (PyTorch trains this cnn at ~725 samples/s on one core, README
# Performance: a full epoch would take 3 x 9 runs of 1-1.5 minutes), 1 epoch, SGD momentum 0.9,
# lr 0.05, cosine, seeds 0,1,2 (QUICK: 2,000 samples, seed 0). These are not sweeps (the ranks change): one run at a time, nothing else of the
# section's running; the load average before each run is in s8/runs.csv.
# Writes $RESULTS/s8_scaling.md, s8_scaling.png, s8/runs.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s8
[ "$KEEP_RUNS" = 1 ] || rm -rf "$RUNS"
mkdir -p "$RUNS" "$RESULTS/s8"
LIMIT=$(q 15000 2000)
EPOCHS=1
S8_SEEDS=$(q "0 1 2" "0")
PY=${PYTHON:-/usr/bin/python3}
TORCH=0
"$PY" -c 'import torch' >/dev/null 2>&1 && TORCH=1
TORCH_V=$([ "$TORCH" = 1 ] && "$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)
CONFIGS=("1 1 64" "1 2 64" "2 1 32")     # ranks threads batch-per-rank
CSV=$RESULTS/s8/runs.csv
echo "impl,ranks,threads,batch,seed,status,epoch_s,test_acc,test_top5,train_loss,load1_before" >"$CSV"

echo "section 8: ranks x threads (1x1, 1x2, 2x1), dtrain and PyTorch DDP$([ "$TORCH" = 1 ] || echo ' (skipped: no torch)'), seeds $S8_SEEDS"
for c in "${CONFIGS[@]}"; do
    read -r np th b <<<"$c"
    for seed in $S8_SEEDS; do
        name=dtrain-${np}x$th-seed$seed
        args=(--model cnn "${COMMON[@]}" --threads "$th" --set data.limit_train="$LIMIT" --epochs "$EPOCHS"
              --optim sgd --momentum 0.9 --lr 0.05 --sched cosine --batch-size "$b" --seed "$seed")
        CMDS+=("mpirun -np $np ./dtrain train ${args[*]} --set log.dir=$name")
        l1=$(cut -d' ' -f1 /proc/loadavg)
        # shellcheck disable=SC2086
        if mpirun -np "$np" $DT_MPIRUN_FLAGS "$DT_BIN" train "${args[@]}" --set log.dir="$RUNS/$name" \
            </dev/null >"$RUNS/$name.log" 2>&1; then
            fin=$(grep '^final:' "$RUNS/$name.log")
            es=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "time_s") k = i; next } { s += $k; n++ } END { printf "%.3f", s / n }' "$RUNS/$name/metrics_epoch.csv")
            f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$fin"; }
            echo "dtrain,$np,$th,$b,$seed,ok,$es,$(f test_acc),$(f test_top5),$(f train_loss),$l1" >>"$CSV"
        else
            echo "dtrain,$np,$th,$b,$seed,failed,,,,,$l1" >>"$CSV"
            echo "  $name failed: $(tail -2 "$RUNS/$name.log")" >&2
        fi
        echo "  $name: $(tail -1 "$CSV")"
        [ "$TORCH" = 1 ] || continue
        name=torch-${np}x$th-seed$seed
        targs=(--world "$np" --threads "$th" --batch-size "$b" --epochs "$EPOCHS" --limit-train "$LIMIT"
               --limit-test "$LIMIT_TEST" --lr 0.05 --seed "$seed")
        CMDS+=("python3 experiments/torch_cnn.py ${targs[*]}")
        l1=$(cut -d' ' -f1 /proc/loadavg)
        # OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are dtrain's test settings: not for PyTorch's BLAS
        if env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH="$ROOT/bench" "$PY" "$EXP_DIR/torch_cnn.py" "${targs[@]}" \
            </dev/null >"$RUNS/$name.log" 2>&1; then
            fin=$(grep '^torch:' "$RUNS/$name.log")
            f() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$fin"; }
            echo "torch,$np,$th,$b,$seed,ok,$(f epoch_s),$(f test_acc),$(f test_top5),$(f train_loss),$l1" >>"$CSV"
        else
            echo "torch,$np,$th,$b,$seed,failed,,,,,$l1" >>"$CSV"
            echo "  $name failed: $(tail -2 "$RUNS/$name.log")" >&2
        fi
        echo "  $name: $(tail -1 "$CSV")"
    done
done

# ---- figure: time per epoch and accuracy per configuration, dtrain and PyTorch side by side ----
: >"$RUNS/bars.dat"
i=0
for c in "${CONFIGS[@]}"; do
    read -r np th b <<<"$c"
    i=$((i + 1))
    row="$i \"${np}x$th\""
    for impl in dtrain torch; do
        sel="impl=$impl ranks=$np threads=$th"
        for m in epoch_s test_acc; do
            mu=$(mean s8/runs.csv "$m" $sel)
            sd=$(cell s8/runs.csv "$m" 4 $sel | awk '{ print ($3 == "" ? 0 : $3) }')
            row="$row ${mu/nan/NaN} $sd"
        done
    done
    echo "$row" >>"$RUNS/bars.dat"
done
{
    gp_png "$RESULTS/s8_scaling.png" 1100 380
    echo "set multiplot layout 1,2 title 'Section 8: ranks x threads per rank, cnn on Fashion-MNIST, global batch 64 ($EPOCHS epoch x $([ "$LIMIT" = 0 ] && echo 60000 || echo "$LIMIT") samples; mean and std over seeds)'"
    echo "set grid ytics; set key top right; set style fill solid 0.6; set boxwidth 0.35; set xrange [0.4:3.6]; set xlabel 'ranks x threads per rank'"
    echo "set title 'training time per epoch (s)'; set yrange [0:*]"
    echo "plot '$RUNS/bars.dat' u (\$1 - 0.18):3:xticlabels(2) w boxes lc rgb '#1f77b4' t 'dtrain', '' u (\$1 - 0.18):3:4 w yerrorbars pt 0 lc rgb 'black' notitle,"\
         "'' u (\$1 + 0.18):7 w boxes lc rgb '#ff7f0e' t 'PyTorch DDP (gloo)', '' u (\$1 + 0.18):7:8 w yerrorbars pt 0 lc rgb 'black' notitle"
    echo "set title 'test accuracy (%)'; set autoscale y; set key bottom right"
    echo "plot '$RUNS/bars.dat' u (\$1 - 0.1):5:6:xticlabels(2) w yerrorbars pt 7 ps 1.2 lc rgb '#1f77b4' t 'dtrain',"\
         "'' u (\$1 + 0.1):9:10 w yerrorbars pt 5 ps 1.2 lc rgb '#ff7f0e' t 'PyTorch DDP (gloo)'"
    echo "unset multiplot"
} >"$RUNS/s8_scaling.gp"
gnuplot "$RUNS/s8_scaling.gp"

{
    echo "### Section 8: ranks x threads per rank, dtrain and PyTorch DDP (cnn, Fashion-MNIST)"
    echo
    echo "$EPOCHS epoch on $([ "$LIMIT" = 0 ] && echo 'all 60,000' || echo "the first $LIMIT") training samples, global batch 64" \
         "(1 rank x 64, 2 ranks x 32), SGD momentum 0.9, lr 0.05, cosine per step; tested on" \
         "$([ "$LIMIT_TEST" = 0 ] && echo 'all 10,000' || echo "$LIMIT_TEST") test samples; seeds $(echo "$S8_SEEDS" | tr ' ' ,);" \
         "mean ± std over the seeds (std with n - 1, numpy ddof=1). epoch_s: the training seconds of the" \
         "epoch (slowest rank, evaluation excluded), one run at a time. PyTorch:" \
         "$([ "$TORCH" = 1 ] && echo "torch $TORCH_V, \`experiments/torch_cnn.py\` (DistributedDataParallel over gloo; 1 rank: no DDP), its own initialization" || echo "**skipped**: no torch for $PY (\`apt-get install -y python3-torch\`)")."
    echo
    echo "| implementation | ranks x threads | batch per rank | epoch_s (s) | speedup vs 1x1 | test_acc (%) | test_top5 (%) | from |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    for impl in dtrain torch; do
        base=$(mean s8/runs.csv epoch_s impl="$impl" ranks=1 threads=1)
        for c in "${CONFIGS[@]}"; do
            read -r np th b <<<"$c"
            sel="impl=$impl ranks=$np threads=$th"
            if [ "$impl" = torch ] && [ "$TORCH" = 0 ]; then
                echo "| PyTorch DDP | ${np}x$th | $b | skipped (no torch) | | | | |"
                continue
            fi
            sp=$(awk -v a="$base" -v b="$(mean s8/runs.csv epoch_s $sel)" 'BEGIN { if (a != "nan" && b != "nan" && b > 0) printf "%.2fx", a / b; else print "-" }')
            # shellcheck disable=SC2086
            echo "| $([ "$impl" = dtrain ] && echo dtrain || echo 'PyTorch DDP') | ${np}x$th | $b | $(cell s8/runs.csv epoch_s 2 $sel) | $sp |" \
                 "$(cell s8/runs.csv test_acc 2 $sel) | $(cell s8/runs.csv test_top5 2 $sel) | $(from s8/runs.csv $sel) |"
        done
    done
    echo
    echo "![scaling](s8_scaling.png)"
    provenance
} >"$RESULTS/s8_scaling.md"
echo "section 8: $RESULTS/s8_scaling.md"
