#!/usr/bin/env bash
# experiments/s5_heatmaps.sh - the lecture's section 5 (hyperparameter heatmaps): three
# `dtrain sweep` grids, lr x batch size, lr x momentum and lr x weight decay, each drawn by the sweep
# as a heatmap (log axes where the values are log-spaced). The ridge (the best lr of each row) is
# measured from results.csv and its log-log slope compared with the lecture's flat directions:
# eta/N constant (slope +1 against the batch size N), eta/(1 - rho) constant (slope +1 against
# 1 - rho), eta x alpha constant (slope -1 against the weight decay alpha). Seeds 0, 1, 2 (each cell
# the mean over them; the ridge is taken from the means); to fit the budget the first 5,000 training
# samples, 2 epochs, cosine schedule, 5,000 test samples. lr x batch and
# lr x momentum use the cnn; lr x weight decay uses cnn_bn (experiments/cnn_bn.cfg), since the
# eta x alpha argument rests on BatchNorm's scale invariance. (QUICK: 2,000 samples, 1 epoch,
# 2 x 2 grids, seeds 0, 1.)
# Writes $RESULTS/s5_heatmaps.md, s5_lr_batch.png, s5_lr_momentum.png, s5_lr_wd.png (the
# sweep's heatmaps), s5_ridges.png (best lr per row against the lecture's variable, log-log),
# s5/lr_batch.csv, s5/lr_momentum.csv, s5/lr_wd.csv.
. "$(dirname "$0")/lib.sh"
RUNS=$RUNS_ROOT/s5
mkdir -p "$RUNS"
LIMIT=$(q 5000 2000)
EPOCHS=$(q 2 1)
LRS=$(q 0.002:0.6:6log 0.01,0.1)
BATCHES=$(q 32,64,128 32,64)
MOMS=$(q 0,0.9,0.99 0,0.9)
WDS=$(q 0.0001,0.001,0.01 0.0001,0.01)
BASE=("${COMMON[@]}" --set data.limit_test="$(q 5000 1000)" --set data.limit_train="$LIMIT" --epochs "$EPOCHS" --optim sgd --sched cosine \
    --seeds "$(q 0,1,2 0,1)")

echo "section 5: three heatmaps, $EPOCHS epochs x $LIMIT samples, seeds $(q 0,1,2 0,1)"
xsweep lr_batch 2 --model cnn "${BASE[@]}" --momentum 0.9 --grid optim.lr="$LRS" --grid train.batch_size="$BATCHES"
xsweep lr_momentum 2 --model cnn "${BASE[@]}" --batch-size 64 --grid optim.lr="$LRS" --grid optim.momentum="$MOMS"
xsweep lr_wd 2 --model experiments/cnn_bn.cfg "${BASE[@]}" --batch-size 64 --momentum 0.9 --grid optim.lr="$LRS" \
    --grid optim.weight_decay="$WDS"
for g in lr_batch lr_momentum lr_wd; do
    if [ -f "$RUNS/$g/heatmap.png" ]; then cp "$RUNS/$g/heatmap.png" "$RESULTS/s5_$g.png"; fi
done

# ridge GRID KEY TRANSFORM: "y f(y) best_lr mean_acc std_acc" per value y of KEY (f: the lecture's
# variable): the lr whose mean test_acc over the seeds (trials with status ok) is the highest, in
# $RUNS/ridge_GRID.dat (std with n - 1; 0 for one seed)
ridge() {
    awk -F, -v k="$2" -v tr="$3" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["status"] == "ok" {
            y = $c[k]; l = $c["optim.lr"]; a = $c["test_acc"] + 0
            key = y SUBSEP l; n[key]++; s[key] += a; q[key] += a * a; ys[y] = 1
        }
        END {
            for (key in n) {
                split(key, p, SUBSEP); m = s[key] / n[key]
                if (!(p[1] in best) || m > best[p[1]]) {
                    best[p[1]] = m; lr[p[1]] = p[2]
                    v = n[key] > 1 ? (q[key] - n[key] * m * m) / (n[key] - 1) : 0
                    sd[p[1]] = v > 0 ? sqrt(v) : 0
                }
            }
            for (y in best) printf "%s %.6g %s %.2f %.2f\n", y, (tr == "1-y" ? 1 - y : y), lr[y], best[y], sd[y]
        }' "$RESULTS/s5/$1.csv" | sort -g -k2 >"$RUNS/ridge_$1.dat"
}
# slope GRID: least-squares slope of log lr* against log f(y)
slope() {
    awk '$2 > 0 { x = log($2); y = log($3); n++; sx += x; sy += y; sxx += x * x; sxy += x * y }
        END { d = n * sxx - sx * sx; if (n >= 2 && d > 0) printf "%.2f", (n * sxy - sx * sy) / d; else print "n/a" }' "$RUNS/ridge_$1.dat"
}
ridge lr_batch train.batch_size y
ridge lr_momentum optim.momentum 1-y
ridge lr_wd optim.weight_decay y
S_B=$(slope lr_batch)
S_M=$(slope lr_momentum)
S_W=$(slope lr_wd)

{
    gp_png "$RESULTS/s5_ridges.png" 1200 380
    echo "set multiplot layout 1,3 title 'Section 5: the ridge (best lr per row, mean over seeds) against the flat direction of the lecture (dashed, through the mean point)'"
    echo "set grid; set logscale xy; set key top left; set ylabel 'best lr'; set offsets graph 0.1, graph 0.1, graph 0.1, graph 0.1"
    for spec in "lr_batch|batch size N|1|$S_B" "lr_momentum|1 - momentum rho|1|$S_M" "lr_wd|weight decay alpha|-1|$S_W"; do
        IFS='|' read -r g lab p s <<<"$spec"
        # the predicted line through the geometric mean of the points
        read -r mx my < <(awk '$2 > 0 { sx += log($2); sy += log($3); n++ } END { printf "%.6g %.6g\n", exp(sx / n), exp(sy / n) }' "$RUNS/ridge_$g.dat")
        echo "set title '$g: measured slope $s, lecture $p'; set xlabel '$lab'"
        echo "plot '$RUNS/ridge_$g.dat' u 2:3 w lp pt 7 lc rgb '#d62728' t 'measured', $my * (x / $mx) ** ($p) w l dt 2 lc rgb '#555555' t 'slope $p'"
    done
    echo "unset multiplot"
} >"$RUNS/s5_ridges.gp"
gnuplot "$RUNS/s5_ridges.gp"

ridge_rows() {
    awk -v k="$2" '{ printf "| %s | %s | %s | %s | %.2f ± %.2f |\n", k, $1, $2, $3, $4, $5 }' "$RUNS/ridge_$1.dat"
}
{
    echo "### Section 5: hyperparameter heatmaps and their ridges (Fashion-MNIST)"
    echo
    echo "Seeds $(q 0,1,2 0,1), the first $LIMIT training samples, $EPOCHS epochs, SGD with a cosine schedule," \
         "tested on the first $(q 5000 1000) test samples: a reduced budget" \
         "(three grids of $(awk -F, 'END { print NR - 1 }' "$RESULTS/s5/lr_batch.csv"), $(awk -F, 'END { print NR - 1 }' "$RESULTS/s5/lr_momentum.csv")" \
         "and $(awk -F, 'END { print NR - 1 }' "$RESULTS/s5/lr_wd.csv") trials). Each heatmap cell is the mean test accuracy over the seeds (std below it);" \
         "the ridge is the best mean per row, with its std over the seeds (n - 1)." \
         "lr x batch size: cnn, momentum 0.9 (batch per rank, 1 rank). lr x momentum: cnn, batch 64." \
         "lr x weight decay: cnn_bn (BatchNorm), batch 64, momentum 0.9."
    echo
    echo "| grid | lecture's flat direction | predicted slope of log lr* | measured slope | from |"
    echo "|---|---|---:|---:|---|"
    echo "| lr x batch size | eta / N constant | +1 against N | $S_B | \`s5/lr_batch.csv\` |"
    echo "| lr x momentum | eta / (1 - rho) constant | +1 against 1 - rho | $S_M | \`s5/lr_momentum.csv\` |"
    echo "| lr x weight decay | eta x alpha constant | -1 against alpha | $S_W | \`s5/lr_wd.csv\` |"
    echo
    echo "The ridge, row by row (the lr of the best mean test_acc for each value; mean ± std over the seeds):"
    echo
    echo "| axis | value | lecture's variable | best optim.lr | test_acc (%) |"
    echo "|---|---:|---:|---:|---:|"
    ridge_rows lr_batch train.batch_size
    ridge_rows lr_momentum "optim.momentum (1 - rho)"
    ridge_rows lr_wd optim.weight_decay
    echo
    echo "![lr x batch size](s5_lr_batch.png)"
    echo "![lr x momentum](s5_lr_momentum.png)"
    echo "![lr x weight decay](s5_lr_wd.png)"
    echo "![ridges](s5_ridges.png)"
    provenance
} >"$RESULTS/s5_heatmaps.md"
echo "section 5: $RESULTS/s5_heatmaps.md"
