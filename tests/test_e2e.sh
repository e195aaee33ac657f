#!/bin/sh
# test_e2e.sh - end to end: `mpirun -np N ./dtrain train` at 1, 2 and 3 ranks on a slice of real
# MNIST (and Fashion-MNIST at 2 ranks; lenet5 in float32, emulated fp16 and bf16) reaching a sane
# accuracy, with the summary line last.
# usage: sh tests/test_e2e.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_e2e
. tests/lib.sh

# e2e NP DATA MIN_ACC ARGS...
e2e() {
    np=$1 data=$2 min=$3
    shift 3
    run_dtrain 300 "$np" train --data "$data" --set train.progress=never "$@" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    last=$(tail -n 1 "$TMP/out")
    acc=$(echo "$last" | sed -n 's/^final: .* test_acc=\([0-9.]*\) .*/\1/p')
    if [ $rc -ne 0 ] || [ -z "$acc" ]; then
        fail "$np ranks $data: exit $rc, last line '$last'"
        cat "$TMP/err" >&2
    elif ! awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'; then
        fail "$np ranks $data: test_acc $acc < $min"
    elif [ "$(grep -c '^epoch ' "$TMP/out")" -ne "$(echo "$last" | sed 's/.*epochs=\([0-9]*\).*/\1/')" ]; then
        fail "$np ranks $data: epoch lines do not match the summary"
    else
        pass
        echo "  $np rank(s) $data: $last"
    fi
}

for np in 1 2 3; do
    e2e $np mnist 90 --epochs 3 --set data.limit_train=12000 --set data.limit_test=2000
done
e2e 2 fashion-mnist 75 --epochs 1 --set data.limit_train=12000 --set data.limit_test=2000
e2e 2 mnist 85 --model lenet5 --epochs 2 --set data.limit_train=12000 --set data.limit_test=1000
# low precision (emulated fp16 with the dynamic loss scale, bf16): lenet5 still learns
e2e 2 mnist 85 --model lenet5 --epochs 2 --set data.limit_train=12000 --set data.limit_test=1000 --set train.precision=fp16
e2e 2 mnist 85 --model lenet5 --epochs 2 --set data.limit_train=12000 --set data.limit_test=1000 --set train.precision=bf16

# generated data in the real formats: CIFAR-10 binary batches and HDF5 (NHWC uint8)
MK=${BUILD:-build}/tests/tool_mkdata
"$MK" cifar "$TMP" 64 64 && "$MK" hdf5 "$TMP/tr.h5" 1200 3 16 16 nhwc u8 &&
    "$MK" hdf5 "$TMP/te.h5" 300 3 16 16 nhwc u8 || fail "tool_mkdata"
e2e 2 hdf5 40 --model lenet5 --epochs 2 --set data.h5_train="$TMP/tr.h5" --set data.h5_test="$TMP/te.h5" \
    --set data.h5_layout=nhwc --batch-size 32
# resnet20 (BatchNorm, residual adds, projections) with crop + flip: the loss must fall
e2e 2 cifar10 0 --model resnet20 --data-dir "$TMP" --epochs 2 --batch-size 16 --set data.crop_pad=4 \
    --set data.flip=true --lr 0.05
l1=$(sed -n 's/^epoch 1\/2  train_loss \([0-9.]*\).*/\1/p' "$TMP/out")
l2=$(sed -n 's/^epoch 2\/2  train_loss \([0-9.]*\).*/\1/p' "$TMP/out")
if [ -n "$l1" ] && [ -n "$l2" ] && awk -v a="$l1" -v b="$l2" 'BEGIN { exit !(b < a && a < 2.5) }'; then
    pass; echo "  resnet20 train loss $l1 -> $l2"
else
    fail "resnet20 loss did not fall: '$l1' -> '$l2'"
fi
summary
