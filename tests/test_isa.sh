#!/bin/sh
# test_isa.sh - the kernel instruction set (kernels.isa, issue 12) from the command line:
#   - every ISA this CPU runs trains 20 steps and names itself in the run header; avx2w16 (the
#     16-lane kernels lowered to AVX2), avx512 and avx512bf16 end with the same params_crc at
#     fp32 (same lanes, same order: avx512bf16's fp32 kernels are avx512's);
#   - a bad kernels.isa value, a bad DTRAIN_KERNELS_ISA, and an ISA the CPU lacks (made so with
#     the test hook DTRAIN_CPU_MASK, which hides features from runtime/kernels/isa.c): one message
#     naming the key, the allowed values or the missing features, every rank exits non-zero;
#     with auto, a masked CPU falls back to the best ISA it still runs;
#   - 2 ranks asking for different ISAs (DTRAIN_KERNELS_ISA per rank) agree on the lower one and
#     end bitwise where 2 ranks at that ISA end;
#   - checkpoints record kernels_isa, dtrain inspect shows it, a resume on another ISA says so;
#     likewise kernels_conv (which convolutions ran on oneDNN) and a resume with another set.
# usage: sh tests/test_isa.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_isa
. tests/lib.sh

[ -x "$DT" ] || { echo "test_isa: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || skip_all "data/mnist missing (make data)"

BASE="--set train.progress=never --epochs 1 --set train.max_steps=20 --set data.limit_test=500"
crc() { grep '^final:' "$1" | grep -o 'params_crc=[0-9a-f]*'; }
# runs ISA: 0 when this CPU runs it (a 1-rank check, DTRAIN_CPU_MASK as set)
runs() { $DT train $BASE --set train.max_steps=1 --set kernels.isa="$1" > /dev/null 2>&1; }

# --- every ISA this CPU runs: 20 steps, the header names it ---
for isa in generic avx2 avx2w16 avx512 avx512bf16; do
    if ! runs "$isa"; then
        echo "  skipped $isa: this CPU cannot run it"
        eval "crc_$isa="
        continue
    fi
    run_dtrain 120 "$NP" train $BASE --set kernels.isa=$isa > "$TMP/$isa.out" 2>&1
    c=$(crc "$TMP/$isa.out")
    eval "crc_$isa=\$c"
    if [ -n "$c" ] && grep -q "^# kernels: $isa ([0-9]* lanes" "$TMP/$isa.out" &&
        grep -q 'steps=20 ' "$TMP/$isa.out"; then
        pass "$isa: 20 steps, $c"
    else
        fail "$isa: no 20-step run with '# kernels: $isa' in its header:"; cat "$TMP/$isa.out" >&2
    fi
done
# shellcheck disable=SC2154
if [ -n "$crc_avx2w16" ] && [ -n "$crc_avx512" ]; then
    [ "$crc_avx2w16" = "$crc_avx512" ] && pass "avx2w16 == avx512 bitwise" ||
        fail "avx2w16 $crc_avx2w16 vs avx512 $crc_avx512"
fi
if [ -n "$crc_avx512" ] && [ -n "$crc_avx512bf16" ]; then
    [ "$crc_avx512" = "$crc_avx512bf16" ] && pass "avx512 == avx512bf16 at fp32" ||
        fail "avx512 $crc_avx512 vs avx512bf16 $crc_avx512bf16 at fp32"
fi

# --- errors ---
expect_dtrain_error "bad kernels.isa" \
    "kernels.isa = 'bogus': expected one of auto|generic|avx2|avx2w16|avx512|avx512bf16" \
    train $BASE --set kernels.isa=bogus
export DTRAIN_KERNELS_ISA=avx3
expect_dtrain_error "bad DTRAIN_KERNELS_ISA" "DTRAIN_KERNELS_ISA = 'avx3': expected one of auto|" \
    train $BASE
unset DTRAIN_KERNELS_ISA
export DTRAIN_CPU_MASK=avx512f,avx512_bf16
expect_dtrain_error "ISA the CPU lacks" "kernels.isa = avx512bf16: this CPU lacks avx512f.*avx512_bf16" \
    train $BASE --set kernels.isa=avx512bf16
if runs avx2; then
    run_dtrain 120 "$NP" train $BASE > "$TMP/masked.out" 2>&1
    grep -q '^# kernels: avx2 (8 lanes' "$TMP/masked.out" && pass "auto on a CPU without avx512f: avx2" ||
        { fail "auto with DTRAIN_CPU_MASK=avx512f: not avx2:"; cat "$TMP/masked.out" >&2; }
fi
export DTRAIN_CPU_MASK=sse9
expect_dtrain_error "bad DTRAIN_CPU_MASK" "DTRAIN_CPU_MASK: unknown feature 'sse9'" train $BASE
unset DTRAIN_CPU_MASK

# --- ranks that ask for different ISAs agree on the lower one ---
hi=avx512
runs avx512 || hi=avx2w16
if runs avx2 && runs "$hi"; then
    timeout_dump 120 mpirun -np 1 $DT_MPIRUN_FLAGS -x DTRAIN_KERNELS_ISA=avx2 $DT train $BASE : \
        -np 1 $DT_MPIRUN_FLAGS -x DTRAIN_KERNELS_ISA=$hi $DT train $BASE > "$TMP/mixed.out" 2>&1
    timeout_dump 120 mpirun -np 2 $DT_MPIRUN_FLAGS -x DTRAIN_KERNELS_ISA=avx2 $DT train $BASE \
        > "$TMP/both.out" 2>&1
    m=$(crc "$TMP/mixed.out") b=$(crc "$TMP/both.out")
    if [ -n "$m" ] && [ "$m" = "$b" ] && grep -q '^# kernels: avx2 (' "$TMP/mixed.out" &&
        grep -q "^kernels: the ranks chose from avx2 to $hi.*all use the lowest common one, avx2" "$TMP/mixed.out"; then
        pass "avx2 + $hi ranks: avx2, $m as 2 ranks at avx2"
    else
        fail "mixed ranks: '$m' vs '$b':"; cat "$TMP/mixed.out" >&2
    fi
else
    echo "  skipped the mixed-rank check: this CPU lacks avx2"
fi

# --- checkpoints: the attribute, inspect, a resume on another ISA ---
isa=avx2
runs avx2 || isa=generic
other=generic
[ "$isa" = generic ] && other=avx2w16
run_dtrain 120 "$NP" train $BASE --set kernels.isa=$isa --ckpt-dir "$TMP/ck" \
    --set train.stop_at_step=10 > "$TMP/ck1.out" 2>&1
ck=$(ls "$TMP"/ck/*.h5 2>/dev/null | tail -n 1)
if [ -n "$ck" ] && $DT inspect "$ck" > "$TMP/inspect.out" 2>&1 &&
    grep -q "^  kernels_isa  *$isa\$" "$TMP/inspect.out"; then
    pass "checkpoint attribute kernels_isa = $isa, shown by inspect"
else
    fail "no kernels_isa = $isa in dtrain inspect:"; cat "$TMP/ck1.out" "$TMP/inspect.out" >&2
fi
if runs "$other"; then
    run_dtrain 120 "$NP" train $BASE --set kernels.isa=$other --ckpt-dir "$TMP/ck" --resume auto \
        > "$TMP/ck2.out" 2>&1
    if [ "$(grep -c "written with kernels $isa, this run uses $other" "$TMP/ck2.out")" -eq 1 ] &&
        grep -q '^final:' "$TMP/ck2.out"; then
        pass "resume on $other notes the checkpoint's $isa once"
    else
        fail "resume on another ISA: no single note:"; cat "$TMP/ck2.out" >&2
    fi
fi
# kernels.conv: which convolutions ran on oneDNN changes the bits as the ISA does (resnet20, where
# auto keeps every layer on dtrain's kernels and onednn moves all of them)
RB="$BASE --model resnet20 --set train.batch_size=16 --set train.max_steps=4 --set data.limit_test=64"
run_dtrain 120 "$NP" train $RB --set kernels.conv=onednn --ckpt-dir "$TMP/ckc" \
    --set train.stop_at_step=2 > "$TMP/ckc1.out" 2>&1
ck=$(ls "$TMP"/ckc/*.h5 2>/dev/null | tail -n 1)
$DT inspect "$ck" > "$TMP/inspect.out" 2>&1
on=$(sed -n 's/^  kernels_conv  *onednn: \([0-9]*\) of 21 convolutions on oneDNN.*/\1/p' "$TMP/inspect.out")
if [ -z "$on" ]; then
    fail "no kernels_conv = onednn: N of 21 in dtrain inspect:"; cat "$TMP/ckc1.out" "$TMP/inspect.out" >&2
elif [ "$on" = 0 ]; then
    pass "checkpoint attribute kernels_conv (oneDNN runs none of resnet20's convolutions here)"
else
    cp -r "$TMP/ckc" "$TMP/ckc2"
    run_dtrain 120 "$NP" train $RB --set kernels.conv=dtrain --ckpt-dir "$TMP/ckc" --resume auto \
        > "$TMP/ckc2.out" 2>&1
    run_dtrain 120 "$NP" train $RB --set kernels.conv=onednn --ckpt-dir "$TMP/ckc2" --resume auto \
        > "$TMP/ckc3.out" 2>&1
    if [ "$(grep -c "written with $on of 21 convolutions on oneDNN [0-9.]* (kernels.conv = onednn), this run has 0 of 21 convolutions on oneDNN (kernels.conv = dtrain)" "$TMP/ckc2.out")" -eq 1 ] &&
        grep -q '^final:' "$TMP/ckc2.out" && grep -q '^final:' "$TMP/ckc3.out" &&
        ! grep -q '^note: .*convolutions' "$TMP/ckc3.out"; then
        pass "kernels_conv = onednn: $on of 21 in inspect; a resume with kernels.conv = dtrain notes it once, with onednn not"
    else
        fail "resume with another kernels.conv:"; cat "$TMP/ckc2.out" "$TMP/ckc3.out" >&2
    fi
fi
# eval agrees too (an explicit ISA on top of the checkpoint's configuration)
if [ -n "$ck" ] && run_dtrain 120 "$NP" eval "$ck" --set kernels.isa=generic > "$TMP/eval.out" 2>&1 &&
    grep -q '^eval: ' "$TMP/eval.out"; then
    pass "eval with kernels.isa = generic"
else
    fail "eval with kernels.isa = generic:"; cat "$TMP/eval.out" >&2
fi
expect_dtrain_error "eval with a bad kernels.isa" "kernels.isa = 'x'" eval "${ck:-none}" --set kernels.isa=x

summary
