#!/bin/sh
# test_eval.sh - `dtrain eval CHECKPOINT`:
#   - a checkpoint's test loss and accuracy equal the training run's final test_loss / test_acc,
#     evaluated at 1, 2 and 3 ranks: lenet5 (fused conv + ReLU + pool) on MNIST, and resnet20
#     (BatchNorm buffers from the checkpoint) on generated CIFAR-10 files;
#   - options override the checkpoint's configuration (data.limit_test), --split train;
#   - swa-final.h5 (no config attribute: model and data only) reproduces the run's swa_test_acc;
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

run() { timeout -k 5 120 mpirun -np "$@"; } # run NP ARGS...
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
expect_error "no file" "eval: expected a checkpoint file first"
expect_error "missing file" "$TMP/none.h5" "$TMP/none.h5"
expect_error "truncated file" "$TMP/trunc.h5" "$TMP/trunc.h5"
expect_error "foreign file" "$TMP/foreign.h5" "$TMP/foreign.h5"
expect_error "model mismatch" "$(basename "$ck"): checkpoint of model 'lenet5', this evaluation builds 'mlp'" "$ck" --model mlp
expect_error "bad split" "--split = 'val': expected test or train" "$ck" --split val
expect_error "bad option" "unknown option '--bogus'" "$ck" --bogus 1

echo "test_eval: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
