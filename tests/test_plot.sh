#!/bin/sh
# test_plot.sh - `dtrain plot` (launch/cmd_plot.c) on real runs' metrics logs (2 ranks, a slice
# of MNIST, two learning rates):
#   - two runs overlaid: exit 0, a PNG and an SVG; the data files handed to gnuplot (--data DIR)
#     hold exactly the values of the CSVs and of metrics.h5 (h5dump), step rows at x = step and
#     step / steps_per_epoch; the legend names the key that differs (optim.lr=...), the title the
#     shared ones; every panel has a title and axis labels with units;
#   - one run: RUN/curves.png by default, --x epoch, --metrics lr,momentum;
#   - seven runs: small multiples, one column of panels per group of six runs;
#   - errors: no run folder, a missing folder, a folder without metrics, an unknown metric, a bad
#     --x, a metric that no run has, a malformed CSV row, an unknown option: one "dtrain: error"
#     line naming the folder, file or option, and exit 1 on every rank.
# usage: sh tests/test_plot.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_plot
. tests/lib.sh
[ -x "$DT" ] || die "$DT missing (make)"
command -v gnuplot > /dev/null 2>&1 || skip_all "gnuplot not installed"
command -v h5dump > /dev/null 2>&1 || die "h5dump not found (hdf5-tools; run make deps)"

BASE="--set data.limit_train=1500 --set data.limit_test=300 --set train.progress=never --epochs 2 --set log.every_steps=4"
for lr in 0.02 0.1; do
    run_dtrain 120 2 train $BASE --lr $lr --set log.dir="$TMP/lr$lr" > "$TMP/train$lr.out" 2>&1 ||
        die "training at lr $lr failed: $(tail -n 3 "$TMP/train$lr.out")"
done

# col FILE NAME: a CSV column, one value per line
col() { awk -F, -v c="$2" '/^#/ { next } !h { for (i = 1; i <= NF; i++) if ($i == c) k = i; h = 1; next } { print $k }' "$1"; }
# dat FILE N: column N of a gnuplot data file
dat() { awk -v k="$2" '!/^#/ { print $k }' "$1"; }
# h5_col FILE DATASET: a 1-D dataset, one value per line
h5_col() {
    h5dump -d "$2" -m %.17g -y -w 0 "$1" 2> /dev/null |
        awk '/DATA \{/ { f = 1; next } f && /^ *\}/ { exit } f { n = split($0, a, /[ ,]+/); for (i = 1; i <= n; i++) if (a[i] != "") print a[i] }'
}
# same A B: two one-number-per-line files hold the same numbers (as doubles; nan = NaN)
same() {
    [ "$(wc -l < "$1")" -eq "$(wc -l < "$2")" ] && [ "$(wc -l < "$1")" -gt 0 ] &&
        paste -d ' ' "$1" "$2" | awk '{ a = tolower($1); b = tolower($2)
            if (a ~ /nan/ || b ~ /nan/) { if (a != b) bad++; next }
            if ($1 + 0 != $2 + 0) bad++ } END { exit bad > 0 }'
}
# is_png FILE: a PNG image of some size
is_png() { [ -s "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '211PNG' ] && [ "$(wc -c < "$1")" -gt 20000 ]; }

# ---- two runs overlaid ----
if $DT plot "$TMP/lr0.02" "$TMP/lr0.1" --out "$TMP/two.png" --svg --data "$TMP/pd" > "$TMP/plot.out" 2>&1 &&
    is_png "$TMP/two.png" && grep -q '<svg' "$TMP/two.svg"; then pass "two runs: PNG and SVG"
else fail "two runs: $(cat "$TMP/plot.out")"; fi
# the step rows: columns 1 (x = step), 2 (x = step / steps per epoch), then the CSV's
hdr=$(head -n 1 "$TMP/lr0.02/metrics_step.csv")
k_loss=$(echo "$hdr" | tr , '\n' | grep -n '^loss$' | cut -d: -f1)
col "$TMP/lr0.02/metrics_step.csv" loss > "$TMP/a"
dat "$TMP/pd/run0_step.dat" $((k_loss + 2)) > "$TMP/b"
h5_col "$TMP/lr0.02/metrics.h5" /step/loss > "$TMP/c"
same "$TMP/a" "$TMP/b" && same "$TMP/c" "$TMP/b" && pass "step loss handed to gnuplot = CSV = metrics.h5 ($(wc -l < "$TMP/a") rows)" ||
    fail "step loss: the data file differs from the CSV / metrics.h5"
ehdr=$(head -n 1 "$TMP/lr0.1/metrics_epoch.csv")
bad=""
for c in test_acc test_top5 test_loss train_acc lr; do
    k=$(echo "$ehdr" | tr , '\n' | grep -n "^$c\$" | cut -d: -f1)
    col "$TMP/lr0.1/metrics_epoch.csv" $c > "$TMP/a"
    dat "$TMP/pd/run1_epoch.dat" $((k + 2)) > "$TMP/b"
    h5_col "$TMP/lr0.1/metrics.h5" /epoch/$c > "$TMP/c"
    same "$TMP/a" "$TMP/b" && same "$TMP/c" "$TMP/b" || bad="$bad $c"
done
[ -z "$bad" ] && pass "epoch columns handed to gnuplot = CSV = metrics.h5" || fail "epoch columns differ:$bad"
# x: step rows at their step and at step / steps_per_epoch; epoch rows at their step and epoch
spe=$(awk -F, 'NR == 2 { print $2 / $1 }' "$TMP/lr0.02/metrics_epoch.csv")
awk -v s="$spe" '!/^#/ { if ($1 != $3 || ($2 - $3 / s) ^ 2 > 1e-24) bad++ } END { exit bad > 0 || NR < 5 }' "$TMP/pd/run0_step.dat" &&
    awk '!/^#/ { if ($1 != $4 || $2 != $3) bad++ } END { exit bad > 0 }' "$TMP/pd/run0_epoch.dat" &&
    pass "x columns (steps per epoch $spe)" || fail "x columns of the data files"
# legend, title, labels
if grep -q "run 1: $TMP/lr0.02 = optim.lr=0.02" "$TMP/plot.out" && grep -q "run 2: $TMP/lr0.1 = optim.lr=0.1" "$TMP/plot.out" &&
    grep -q "'optim.lr=0.02, train'" "$TMP/pd/curves.gp" && grep -q "'optim.lr=0.1, test'" "$TMP/pd/curves.gp" &&
    grep -q "model = mlp, data.name = mnist" "$TMP/pd/curves.gp" &&
    grep -q "set ylabel 'cross-entropy loss (nats)'" "$TMP/pd/curves.gp" && grep -q "set xlabel 'optimizer step'" "$TMP/pd/curves.gp" &&
    [ "$(grep -c '^set title' "$TMP/pd/curves.gp")" -eq 6 ]; then pass "legend from the differing key, titles and labels"
else fail "legend/labels: $(cat "$TMP/plot.out")"; fi

# ---- one run ----
$DT plot "$TMP/lr0.1" --x epoch > "$TMP/one.out" 2>&1 && is_png "$TMP/lr0.1/curves.png" &&
    grep -q 'x = epoch' "$TMP/one.out" && pass "one run: RUN/curves.png, --x epoch" || fail "one run: $(cat "$TMP/one.out")"
$DT plot "$TMP/lr0.1" --metrics lr,momentum --out "$TMP/lm.png" --data "$TMP/pd1" > "$TMP/lm.out" 2>&1 && is_png "$TMP/lm.png" &&
    [ "$(grep -c '^set title' "$TMP/pd1/curves.gp")" -eq 2 ] && grep -q "set xlabel 'optimizer step'" "$TMP/pd1/curves.gp" &&
    pass "--metrics lr,momentum: two panels" || fail "--metrics lr,momentum: $(cat "$TMP/lm.out")"

# ---- seven runs: groups of six, one column of panels each ----
dirs=""
for i in 1 2 3 4 5 6 7; do
    cp -r "$TMP/lr0.02" "$TMP/s$i"
    sed -i "s/^seed = 0$/seed = $i/" "$TMP/s$i/run.ini"
    dirs="$dirs $TMP/s$i"
done
$DT plot $dirs --metrics loss,acc --out "$TMP/seven.png" --data "$TMP/pd7" > "$TMP/seven.out" 2>&1 && is_png "$TMP/seven.png" &&
    grep -q "multiplot layout 2,2 columnsfirst" "$TMP/pd7/curves.gp" && grep -q "loss (runs 1-6)" "$TMP/pd7/curves.gp" &&
    grep -q "loss (runs 7-7)" "$TMP/pd7/curves.gp" && grep -q "run 7: .* = seed=7" "$TMP/seven.out" &&
    pass "seven runs: two groups, legend seed=N" || fail "seven runs: $(cat "$TMP/seven.out")"

# ---- errors ----
mkdir -p "$TMP/empty" "$TMP/bad"
cp "$TMP/lr0.1/metrics_epoch.csv" "$TMP/bad/"
echo "1,2,3" >> "$TMP/bad/metrics_epoch.csv"
mkdir -p "$TMP/old"
cut -d, -f1-6 "$TMP/lr0.1/metrics_epoch.csv" > "$TMP/old/metrics_epoch.csv"
par_begin # the error cases 4 at a time (lib.sh)
expect_dtrain_error "no run" "plot: expected one or more run folders" plot
expect_dtrain_error "missing folder" "$TMP/none: No such file or directory" plot "$TMP/none"
expect_dtrain_error "no metrics" "$TMP/empty: no metrics_step.csv or metrics_epoch.csv" plot "$TMP/empty"
expect_dtrain_error "unknown metric" "plot: --metrics: unknown metric 'acuracy'" plot "$TMP/lr0.1" --metrics loss,acuracy
expect_dtrain_error "bad --x" "plot: --x = 'time': expected step or epoch" plot "$TMP/lr0.1" --x time
expect_dtrain_error "metric absent" "plot: --metrics top5: no run has a train_top5 or test_top5 or swa_test_top5 column" plot "$TMP/old" --metrics top5
expect_dtrain_error "bad row" "$TMP/bad/metrics_epoch.csv:4: 3 values, the header names 16" plot "$TMP/bad"
mkdir -p "$TMP/partial"
cp "$TMP/lr0.1/metrics_step.csv" "$TMP/partial/"
head -n 1 "$TMP/lr0.1/metrics_epoch.csv" > "$TMP/partial/metrics_epoch.csv"
expect_dtrain_error "--x epoch without epoch rows" "plot: --x epoch: $TMP/partial has no epoch row yet" plot "$TMP/partial" --x epoch
$DT plot "$TMP/partial" > "$TMP/partial.out" 2>&1 && is_png "$TMP/partial/curves.png" &&
    grep -q 'panels: loss lr grad_norm samples_per_s$' "$TMP/partial.out" &&
    pass "a run without epoch rows yet: the step panels" || fail "partial run: $(cat "$TMP/partial.out")"
expect_dtrain_error "bad option" "plot: unknown option '--bogus'" plot "$TMP/lr0.1" --bogus
expect_dtrain_error "bad --out" "plot: --out = 'x.jpg': expected a file name ending in .png" plot "$TMP/lr0.1" --out x.jpg
par_end

summary
