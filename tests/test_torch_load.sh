#!/bin/sh
# test_torch_load.sh - dtrain checkpoints load into the PyTorch equivalents of the models (the
# README snippet, tests/fixtures/load_dtrain_checkpoint.py) with load_state_dict(strict=True), and
# give the same outputs: after one short epoch (2 ranks, --ckpt-dir, --set log.dir), torch's mean
# cross entropy and accuracy on the first N test samples (normalized as dtrain does) equal the
# epoch's test_loss / test_acc in metrics_epoch.csv (dtrain's evaluation of the same weights on
# the same samples) to 1e-4 relative. Models: mlp and lenet5 on MNIST, resnet20 (BatchNorm in eval
# mode with the checkpoint's running statistics) on CIFAR-10 batches made by tool_mkdata; for
# resnet20 also swa-final.h5 (averaged weights, refreshed BN) against the run's swa_test_acc.
# Needs /usr/bin/python3 with torch and h5py; without them (CI) it prints SKIP and counts nothing.
# usage: sh tests/test_torch_load.sh   (BUILD=build-san for another build tree)
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_torch_load
. tests/lib.sh
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import torch, h5py, numpy' > /dev/null 2>&1; then
    skip_all "$PY cannot import torch, h5py and numpy (CI has no PyTorch)"
fi
LOADER=tests/fixtures/load_dtrain_checkpoint.py

# csv_col FILE COLUMN: the column's value in the last row
csv_col() {
    awk -F, -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next } { v = $k } END { print v }' "$1"
}
# close A B RTOL: |A - B| <= RTOL * |B|
close() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(a != "" && b != "" && d <= r * m) }'; }

# case NAME MODEL DATA DATA_DIR NTEST ARGS...: train one epoch, compare torch with dtrain
case_() {
    name=$1 model=$2 data=$3 dir=$4 ntest=$5
    shift 5
    rm -rf "$TMP/ck" "$TMP/log"
    run_dtrain 120 2 train --model "$model" --data "$data" \
        --data-dir "$dir" --epochs 1 --set data.limit_test="$ntest" --set train.progress=never \
        --ckpt-dir "$TMP/ck" --set log.dir="$TMP/log" "$@" > "$TMP/out" 2>&1
    rc=$?
    ck=$(ls "$TMP"/ck/ckpt-step*.h5 2> /dev/null | tail -n 1)
    if [ $rc -ne 0 ] || [ -z "$ck" ]; then
        fail "$name: training failed (rc $rc)"
        cat "$TMP/out" >&2
        return
    fi
    want_loss=$(csv_col "$TMP/log/metrics_epoch.csv" test_loss)
    want_acc=$(csv_col "$TMP/log/metrics_epoch.csv" test_acc)
    if ! "$PY" "$LOADER" "$ck" "$model" --data "$data" --data-dir "$dir" --limit "$ntest" \
        > "$TMP/torch" 2>&1; then
        fail "$name: the loader failed on $ck"
        cat "$TMP/torch" >&2
        return
    fi
    line=$(grep '^n=' "$TMP/torch")
    n=$(echo "$line" | sed -n 's/^n=\([0-9]*\) .*/\1/p')
    loss=$(echo "$line" | sed -n 's/.* loss=\([^ ]*\) .*/\1/p')
    acc=$(echo "$line" | sed -n 's/.* acc=\([^ ]*\)$/\1/p')
    if [ "$n" = "$ntest" ] && close "$loss" "$want_loss" 1e-4 && close "$acc" "$want_acc" 1e-9; then
        pass
        echo "  $name: $n test samples, torch loss $loss acc $acc; dtrain test_loss $want_loss test_acc $want_acc"
    else
        fail "$name: torch n=$n loss=$loss acc=$acc vs dtrain test_loss=$want_loss test_acc=$want_acc (N $ntest)"
        cat "$TMP/torch" >&2
    fi
}

case_ "mlp mnist" mlp mnist data 300 --set data.limit_train=2000
# the default path of the loader (no data: logits of a random batch; model from the attribute)
ck=$(ls "$TMP"/ck/ckpt-step*.h5 2> /dev/null | tail -n 1)
if [ -n "$ck" ] && "$PY" "$LOADER" "$ck" > "$TMP/torch" 2>&1 && grep -q tensor "$TMP/torch"; then pass
else fail "loader without --data on '$ck'"; cat "$TMP/torch" >&2; fi
case_ "lenet5 mnist" lenet5 mnist data 200 --set data.limit_train=1000

MK=${BUILD:-build}/tests/tool_mkdata
if "$MK" cifar "$TMP/cifar" 64 64 > /dev/null; then
    case_ "resnet20 cifar10" resnet20 cifar10 "$TMP/cifar" 64 --batch-size 16 \
        --set swa.mode=swa --set swa.interval=step --set swa.start=3
    # swa-final.h5: the averaged weights with refreshed BN statistics give swa_test_acc
    swa_acc=$(sed -n 's/^final: .* swa_test_acc=\([0-9.]*\).*/\1/p' "$TMP/out")
    if [ -f "$TMP/ck/swa-final.h5" ] && "$PY" "$LOADER" "$TMP/ck/swa-final.h5" resnet20 --data cifar10 \
        --data-dir "$TMP/cifar" --limit 64 > "$TMP/torch" 2>&1; then
        acc=$(sed -n 's/^n=.* acc=\([^ ]*\)$/\1/p' "$TMP/torch")
        if [ -n "$swa_acc" ] && awk -v a="$acc" -v b="$swa_acc" 'BEGIN { d = a - b; exit !(d <= 0.0051 && d >= -0.0051) }'; then
            pass; echo "  resnet20 swa-final.h5: torch acc $acc, dtrain swa_test_acc $swa_acc"
        else
            fail "resnet20 swa-final.h5: torch acc '$acc' vs swa_test_acc '$swa_acc'"
        fi
    else
        fail "resnet20: swa-final.h5 missing or not loadable"
        cat "$TMP/torch" >&2
    fi
else
    fail "tool_mkdata cifar"
fi

summary
