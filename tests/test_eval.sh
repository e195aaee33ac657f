#!/bin/sh
# test_eval.sh - `dtrain eval CHECKPOINT`:
#   - a checkpoint's test loss and accuracy equal the training run's final test_loss / test_acc,
#     evaluated at 1, 2 and 3 ranks: lenet5 (fused conv + ReLU + pool) on MNIST, and resnet20
#     (BatchNorm buffers from the checkpoint) on generated CIFAR-10 files;
#   - options override the checkpoint's configuration (data.limit_test), --split train;
#   - swa-final.h5 (no config attribute: model and data only) reproduces the run's swa_test_acc;
#   - from another directory: the checkpoint's relative data.dir resolves against the directory
#     the run ran in; missing data files: the error names the path tried and says --data-dir;
#     the test split needs only the test files (a folder holding only them);
#   - --per-class: per-class correct counts add up to the accuracy, confusion matrix row sums
#     equal the class counts of the labels file, the diagonal equals the correct counts, and
#     `dtrain plot --confusion` draws the CSV;
#   - errors: no file argument, a missing, a corrupt and a foreign file, a model that does not
#     match the checkpoint, a bad --split: one "dtrain: error" line naming the file or key and
#     a non-zero exit on every rank.
# usage: sh tests/test_eval.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_eval
. tests/lib.sh
MK=${BUILD:-build}/tests/tool_mkdata
[ -x "$DT" ] || { echo "test_eval: $DT missing (make)" >&2; exit 1; }
[ -x "$MK" ] || { echo "test_eval: $MK missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "test_eval: data/mnist missing (make data)" >&2; exit 1; }

run() { timeout_dump 120 mpirun -np "$@"; } # run NP ARGS...
# field NAME FILE: NAME=value of the last final: line of FILE
field() { grep '^final:' "$2" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# eval_line FILE: "loss=.. acc=.. top5=.." of the eval: line of FILE, the loss rounded to the
# final line's 4 decimals (eval prints 9 significant digits)
eval_line() {
    grep '^eval:' "$1" | tail -n 1 | sed 's/.* loss=\([^ ]*\) \(acc=[^ ]*\) \(top5=[^ ]*\)$/\1 \2 \3/' |
        awk 'NF == 3 { printf "loss=%.4f %s %s\n", $1, $2, $3 }'
}

# ---- lenet5 on MNIST, trained at NP ranks, evaluated at 1, 2, 3 ----
run "$NP" $DT_MPIRUN_FLAGS $DT train --model lenet5 --epochs 1 --set data.limit_train=3000 \
    --set data.limit_test=700 --set train.progress=never --ckpt-dir "$TMP/ck" >"$TMP/train.out" 2>&1 ||
    { fail "lenet5 training failed"; tail -n 5 "$TMP/train.out" >&2; }
want="loss=$(field test_loss "$TMP/train.out") acc=$(field test_acc "$TMP/train.out") top5=$(field test_top5 "$TMP/train.out")"
ck=$(ls "$TMP"/ck/ckpt-step*.h5 2>/dev/null | tail -n 1)
for np in 1 2 3; do
    if run $np $DT_MPIRUN_FLAGS $DT eval "$ck" >"$TMP/eval$np.out" 2>&1 &&
        [ "$(eval_line "$TMP/eval$np.out")" = "$want" ] &&
        grep -q '^eval: .* split=test samples=700 ' "$TMP/eval$np.out"; then
        pass
    else
        fail "lenet5 eval at $np rank(s): expected '$want' on 700 samples"; tail -n 3 "$TMP/eval$np.out" >&2
    fi
done
echo "  lenet5: run $want, eval at 1/2/3 ranks: $(eval_line "$TMP/eval1.out")"
# options override the checkpoint's configuration; the training split
run 2 $DT_MPIRUN_FLAGS $DT eval "$ck" --set data.limit_test=300 >"$TMP/lim.out" 2>&1 &&
    grep -q '^eval: .* split=test samples=300 loss=[0-9.e-]* acc=[0-9.]* top5=[0-9.]*$' "$TMP/lim.out" && pass ||
    { fail "eval --set data.limit_test=300"; tail -n 3 "$TMP/lim.out" >&2; }
run 2 $DT_MPIRUN_FLAGS $DT eval "$ck" --split train >"$TMP/tr.out" 2>&1 &&
    grep -q '^eval: .* split=train samples=3000 loss=[0-9.e-]* acc=[0-9.]* top5=[0-9.]*$' "$TMP/tr.out" && pass ||
    { fail "eval --split train"; tail -n 3 "$TMP/tr.out" >&2; }
# the training batches' top-1 and top-5 (metrics_epoch.csv train_acc, train_top5): at lr 0 the
# weights do not move, so they equal the evaluation of the checkpoint on the training split
# (the mlp: no BatchNorm, no dropout; 2000 samples in 32 batches, the last one short)
run 1 $DT train --model mlp --epochs 1 --lr 0 --set data.limit_train=2000 --set data.limit_test=100 \
    --set train.progress=never --set log.dir="$TMP/lr0" --ckpt-dir "$TMP/lr0/ck" >"$TMP/lr0.out" 2>&1 &&
    run 1 $DT eval "$TMP"/lr0/ck/ckpt-*.h5 --split train >"$TMP/lr0e.out" 2>&1 ||
    { fail "lr 0 training + eval --split train"; tail -n 3 "$TMP/lr0.out" "$TMP/lr0e.out" >&2; }
tr_acc=$(csv_col "$TMP/lr0/metrics_epoch.csv" train_acc | awk '{ printf "%.2f", $1 }')
tr_top5=$(csv_col "$TMP/lr0/metrics_epoch.csv" train_top5 | awk '{ printf "%.2f", $1 }')
ev=$(sed -n 's/^eval: .* acc=\([0-9.]*\) top5=\([0-9.]*\)$/\1 \2/p' "$TMP/lr0e.out")
if [ -n "$ev" ] && [ "$ev" = "$tr_acc $tr_top5" ] && grep -q "train_top5 $tr_top5 " "$TMP/lr0.out"; then
    pass; echo "  training batches at lr 0: top-1 $tr_acc top-5 $tr_top5 = eval --split train"
else fail "training top-1/top-5 '$tr_acc $tr_top5' vs eval --split train '$ev'"; fi

# ---- paths: from another directory, missing files, only the test files ----
mkdir -p "$TMP/elsewhere" "$TMP/testonly/mnist"
ROOT=$PWD
(cd "$TMP/elsewhere" && run 2 $DT_MPIRUN_FLAGS "$ROOT/dtrain" eval "$ck" > "$TMP/away.out" 2>&1) &&
    [ "$(eval_line "$TMP/away.out")" = "$want" ] && pass "eval from another directory: data.dir resolved against the run's" ||
    { fail "eval from another directory: expected '$want'"; tail -n 3 "$TMP/away.out" >&2; }
ln -s "$ROOT/data/mnist/t10k-images-idx3-ubyte" "$ROOT/data/mnist/t10k-labels-idx1-ubyte" "$TMP/testonly/mnist/"
run 2 $DT_MPIRUN_FLAGS $DT eval "$ck" --data-dir "$TMP/testonly" > "$TMP/to.out" 2>&1 &&
    [ "$(eval_line "$TMP/to.out")" = "$want" ] && pass "the test split needs only the test files" ||
    { fail "eval with only the test files"; tail -n 3 "$TMP/to.out" >&2; }

# ---- --per-class: per-class accuracy, the confusion matrix, its CSV and heatmap ----
run 2 $DT_MPIRUN_FLAGS $DT eval "$ck" --per-class --confusion "$TMP/cm.csv" > "$TMP/pc.out" 2>&1 ||
    { fail "eval --per-class"; tail -n 3 "$TMP/pc.out" >&2; }
acc=$(sed -n 's/^eval: .* acc=\([0-9.]*\) .*/\1/p' "$TMP/pc.out")
# the per-class table: "  3 ...  samples correct acc" lines between the header and the matrix
awk '/^per-class/ { f = 1; next } /^confusion/ { f = 0 } f && $1 ~ /^[0-9]+$/ { print $1, $(NF-2), $(NF-1) }' "$TMP/pc.out" > "$TMP/pc.txt"
sum=$(awk '{ n += $2; c += $3 } END { printf "%.2f", 100 * c / n }' "$TMP/pc.txt")
total=$(awk '{ n += $2 } END { print n }' "$TMP/pc.txt")
[ "$(wc -l < "$TMP/pc.txt")" -eq 10 ] && [ "$sum" = "$acc" ] && [ "$total" = 700 ] &&
    pass "per-class correct counts add up to acc=$acc over $total samples" ||
    fail "per-class: sum $sum over $total samples, eval acc $acc"
# class counts of the first 700 test labels (the IDX labels start at byte 8)
od -An -tu1 -j8 -N700 -v data/mnist/t10k-labels-idx1-ubyte | tr -s ' ' '\n' | grep . | sort -n | uniq -c |
    awk '{ print $2, $1 }' > "$TMP/counts.txt"
awk -F, '/^#/ || /^true/ { next } { s = 0; for (i = 2; i <= NF; i++) s += $i; print $1, s }' "$TMP/cm.csv" > "$TMP/rows.txt"
awk -F, '/^#/ || /^true/ { next } { print $1, $($1 + 2) }' "$TMP/cm.csv" > "$TMP/diag.txt"
awk '{ print $1, $3 }' "$TMP/pc.txt" > "$TMP/correct.txt"
cmp -s "$TMP/rows.txt" "$TMP/counts.txt" && cmp -s "$TMP/diag.txt" "$TMP/correct.txt" &&
    awk '{ print $1, $2 }' "$TMP/pc.txt" | cmp -s - "$TMP/counts.txt" &&
    pass "confusion matrix: row sums = class counts of the labels, diagonal = correct counts" ||
    { fail "confusion matrix rows/diagonal"; paste "$TMP/rows.txt" "$TMP/counts.txt" "$TMP/diag.txt" "$TMP/correct.txt" >&2; }
if command -v gnuplot > /dev/null 2>&1; then
    $DT plot --confusion "$TMP/cm.csv" > "$TMP/cmp.out" 2>&1 && [ -s "$TMP/cm.png" ] &&
        pass "dtrain plot --confusion" || fail "plot --confusion: $(cat "$TMP/cmp.out")"
fi

# ---- resnet20 (BatchNorm) on generated CIFAR-10 files ----
mkdir -p "$TMP/cifar"
if "$MK" cifar "$TMP/cifar" 32 48 >/dev/null 2>&1; then
    run "$NP" $DT_MPIRUN_FLAGS $DT train --model resnet20 --data cifar10 --data-dir "$TMP/cifar" \
        --epochs 1 --batch-size 16 --set train.progress=never --ckpt-dir "$TMP/ckr" >"$TMP/r.out" 2>&1
    want="loss=$(field test_loss "$TMP/r.out") acc=$(field test_acc "$TMP/r.out") top5=$(field test_top5 "$TMP/r.out")"
    ck2=$(ls "$TMP"/ckr/ckpt-step*.h5 2>/dev/null | tail -n 1)
    run 3 $DT_MPIRUN_FLAGS $DT eval "$ck2" >"$TMP/r3.out" 2>&1 &&
        [ "$(eval_line "$TMP/r3.out")" = "$want" ] && pass ||
        { fail "resnet20 eval at 3 ranks: expected '$want'"; tail -n 3 "$TMP/r3.out" "$TMP/r.out" >&2; }
else
    fail "tool_mkdata cifar"
fi

# ---- swa-final.h5: model and data attributes only ----
run "$NP" $DT_MPIRUN_FLAGS $DT train --epochs 2 --set data.limit_train=2000 --set data.limit_test=400 \
    --set train.progress=never --ckpt-dir "$TMP/cks" --set swa.mode=swa --set swa.interval=step \
    --set swa.start=5 --set swa.freq=3 --set swa.lr=0.02 >"$TMP/s.out" 2>&1
swa=$(field swa_test_acc "$TMP/s.out")
run 2 $DT_MPIRUN_FLAGS $DT eval "$TMP/cks/swa-final.h5" --set data.limit_train=2000 \
    --set data.limit_test=400 >"$TMP/se.out" 2>&1 &&
    [ -n "$swa" ] && [ "$(eval_line "$TMP/se.out" | sed 's/.* acc=\([^ ]*\) .*/\1/')" = "$swa" ] && pass ||
    { fail "swa-final.h5: expected acc=$swa"; tail -n 3 "$TMP/se.out" >&2; }

# ---- errors: one message, non-zero exit on every rank ----
# expect_error NAME MESSAGE ARGS...: `dtrain eval ARGS` fails cleanly (expect_dtrain_error)
expect_error() {
    name=$1 msg=$2
    shift 2
    expect_dtrain_error "$name" "$msg" eval "$@"
}
head -c 5000 "$ck" >"$TMP/trunc.h5"
echo "not a checkpoint" >"$TMP/foreign.h5"
echo "1,2" > "$TMP/badcm.csv"
par_begin # the error cases 4 at a time (lib.sh)
expect_error "no file" "eval: expected a checkpoint file first"
expect_error "missing file" "$TMP/none.h5" "$TMP/none.h5"
expect_error "truncated file" "$TMP/trunc.h5" "$TMP/trunc.h5"
expect_error "foreign file" "$TMP/foreign.h5" "$TMP/foreign.h5"
expect_error "model mismatch" "$(basename "$ck"): checkpoint of model 'lenet5', this evaluation builds 'mlp'" "$ck" --model mlp
expect_error "bad split" "--split = 'val': expected test or train" "$ck" --split val
expect_error "bad option" "unknown option '--bogus'" "$ck" --bogus 1
expect_error "no data" "$TMP/nodata/mnist/t10k-images-idx3-ubyte.*pass --data-dir DIR" "$ck" --data-dir "$TMP/nodata"
expect_error "train files missing" "$TMP/testonly/mnist/train-images-idx3-ubyte.*pass --data-dir DIR" "$ck" --data-dir "$TMP/testonly" --split train
expect_error "--confusion alone" "--confusion x.csv: only with --per-class" "$ck" --confusion x.csv
expect_dtrain_error "bad confusion file" "$TMP/badcm.csv" plot --confusion "$TMP/badcm.csv"
par_end

echo "test_eval: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
