#!/bin/sh
# test_bf16_train.sh - train.precision = bf16 end to end (the linear layers on the bf16 GEMM,
# kernels/bf16.h): the mlp in bf16 reaches fp32's test accuracy within 0.5 points, and its
# params_crc is the same on every ISA: native vdpbf16ps (avx512bf16, where the CPU has it) and
# the bit-exact emulation (avx512, avx2w16, avx2) give the same bits.
# usage: sh tests/test_bf16_train.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_bf16_train
. tests/lib.sh

# train ISA PRECISION LIMIT: the final line of a 1-rank, 1-epoch mlp run in $TMP/out
train() {
    DTRAIN_KERNELS_ISA=$1 run_dtrain 300 1 train --model mlp --data mnist --epochs 1 \
        --set train.progress=never --set train.precision="$2" --set data.limit_train="$3" \
        > "$TMP/out" 2> "$TMP/err"
    rc=$?
    last=$(tail -n 1 "$TMP/out")
    [ $rc -eq 0 ] || { fail "$1 $2: exit $rc, last line '$last'"; cat "$TMP/err" >&2; }
}
field() { echo "$last" | sed -n "s/^final: .* $1=\([0-9a-f.]*\).*/\1/p"; }

# accuracy: bf16 within 0.5 points of fp32 (same data order and initialization)
train auto fp32 20000
a32=$(field test_acc)
train auto bf16 20000
a16=$(field test_acc)
if [ -n "$a32" ] && [ -n "$a16" ] &&
    awk -v a="$a16" -v b="$a32" 'BEGIN { d = a - b; exit !(d <= 0.5 && d >= -0.5) }'; then
    pass "mlp test_acc bf16 $a16, fp32 $a32"
else
    fail "mlp test_acc bf16 '$a16' vs fp32 '$a32': more than 0.5 points apart"
fi

# the same bits on every ISA this CPU runs (its flags in /proc/cpuinfo)
has() { grep -q "^flags.* $1\( \|\$\)" /proc/cpuinfo 2> /dev/null; }
runs() {
    case $1 in
    avx512bf16) runs avx512 && has avx512_bf16 ;;
    avx512) runs avx2 && has avx512f && has avx512bw && has avx512vl && has avx512dq ;;
    *) has avx2 && has fma && has f16c ;;
    esac
}
ref=
for isa in avx512bf16 avx512 avx2w16 avx2; do
    if ! runs $isa; then
        echo "  skipped $isa: this CPU cannot run it"
        continue
    fi
    train $isa bf16 3200
    crc=$(field params_crc)
    if [ -z "$ref" ]; then
        ref=$crc first=$isa
        echo "  $isa: params_crc $crc"
    elif [ "$crc" = "$ref" ]; then
        pass "$isa params_crc $crc = $first's"
    else
        fail "$isa params_crc '$crc' != $first's '$ref'"
    fi
done
summary
