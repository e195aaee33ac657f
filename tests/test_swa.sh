#!/bin/bash
# test_swa.sh - SWA and EMA through the CLI (`mpirun -np 2 ./dtrain train --set swa.*`) on a slice
# of MNIST:
#  - swa.mode=swa, interval step: the final line carries swa_test_acc and swa_n, and swa_n is
#    torchcontrib's count (steps c with c > swa.start and c % swa.freq == 0); swa-final.h5 holds
#    the same count; interval epoch: swa_n counts epochs; swa.eval_every_epoch prints
#    swa_test_acc on the epoch lines;
#  - swa.mode=ema: swa_n = steps - swa.start; swa.lr with ema is refused;
#  - checkpoint + resume: stopped (train.stop_at_step) before and after swa.start, mid-anneal,
#    then --resume auto: the same params_crc, swa_test_acc and swa_n as the uninterrupted run and
#    a byte-identical swa-final.h5 (the average, BN refreshed), on a model with BatchNorm (written to a temporary folder) so the refresh is exercised.
# usage: bash tests/test_swa.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_swa.sh
. tests/lib.sh

BASE=(--set data.limit_train=2000 --set data.limit_test=400 --set train.progress=never)
run() { # NP ARGS... -> output in $TMP/out, status in $rc
    local np=$1
    shift
    run_dtrain 120 "$np" train "${BASE[@]}" "$@" > "$TMP/out" 2>&1
    rc=$?
}
final() { grep '^final:' "$TMP/out" | tail -n 1; }
field() { final | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; } # field NAME: value in the final line
# count START FREQ STEPS: torchcontrib's number of averaged snapshots
count() { awk -v s="$1" -v f="$2" -v t="$3" 'BEGIN { n = 0; for (c = 1; c <= t; c++) if (c > s && c % f == 0) n++; print n }'; }

# --- swa, interval step ---
run 2 --epochs 2 --ckpt-dir "$TMP/ck1" --set swa.mode=swa --set swa.interval=step --set swa.start=5 \
    --set swa.freq=3 --set swa.lr=0.02
steps=$(field steps)
want=$(count 5 3 "${steps:-0}")
acc=$(field swa_test_acc)
if [ $rc -eq 0 ] && [ -n "$steps" ] && [ "$(field swa_n)" = "$want" ] && [ "$want" -gt 0 ] &&
    awk -v a="$acc" 'BEGIN { exit !(a + 0 > 50 && a + 0 <= 100) }'; then
    pass; echo "  swa step: $(final | sed 's/.*\(steps=[0-9]*\).*\(swa_test_acc=.*\)/\1 \2/')"
else
    fail "swa step: rc $rc, expected swa_n=$want and a sane swa_test_acc: '$(final)'"; cat "$TMP/out" >&2
fi
# the averaged model is saved with its count
if [ -f "$TMP/ck1/swa-final.h5" ] &&
    [ "$(h5dump -d /swa/n "$TMP/ck1/swa-final.h5" 2>/dev/null | sed -n 's/^ *(0): //p' | head -n 1)" = "$want" ]; then
    pass
else
    fail "swa-final.h5 missing or its swa/n is not $want"; ls -la "$TMP/ck1" >&2
fi

# --- swa, interval epoch, evaluated every epoch ---
run 2 --epochs 4 --set swa.mode=swa --set swa.interval=epoch --set swa.start=1 --set swa.freq=1 \
    --set swa.eval_every_epoch=true
n_epoch_lines=$(grep -c '^epoch .* swa_test_acc ' "$TMP/out")
if [ $rc -eq 0 ] && [ "$(field swa_n)" = "$(count 1 1 4)" ] && [ "$n_epoch_lines" = 3 ]; then
    pass
else
    fail "swa epoch: rc $rc, swa_n '$(field swa_n)' (want $(count 1 1 4)), $n_epoch_lines epoch lines with swa_test_acc (want 3)"
    cat "$TMP/out" >&2
fi

# --- ema ---
run 2 --epochs 2 --set swa.mode=ema --set swa.interval=step --set swa.start=4 --set swa.ema_decay=0.9
steps=$(field steps)
acc=$(field swa_test_acc)
if [ $rc -eq 0 ] && [ -n "$steps" ] && [ "$(field swa_n)" = "$((steps - 4))" ] &&
    awk -v a="$acc" 'BEGIN { exit !(a + 0 > 50 && a + 0 <= 100) }'; then
    pass; echo "  ema: swa_n=$(field swa_n) swa_test_acc=$acc"
else
    fail "ema: rc $rc: '$(final)'"; cat "$TMP/out" >&2
fi
run 1 --epochs 1 --set swa.mode=ema --set swa.lr=0.01
if [ $rc -ne 0 ] && grep -q "swa.lr is for swa.mode = swa" "$TMP/out"; then pass
else fail "ema with swa.lr was not refused (rc $rc)"; fi

# --- checkpoint + resume give the uninterrupted result ---
cat > "$TMP/bnmlp.cfg" <<'EOF'
# an MLP with BatchNorm1d, so SWA's BN refresh and the BN buffers take part in the resume
[net]
input = 1x28x28
classes = 10

[flatten]

[linear]
name = fc1
out = 64

[batchnorm]
name = bn1

[relu]

[linear]
name = fc2
out = 10
EOF
# resume_case NAME STOP1 STOP2 ARGS...: uninterrupted vs stopped at STOP1 and STOP2, resumed
resume_case() {
    local name=$1 s1=$2 s2=$3
    shift 3
    rm -rf "$TMP/ck0" "$TMP/ck"
    run 2 --epochs 3 "$@" --ckpt-dir "$TMP/ck0"
    local want_crc want_acc want_n
    want_crc=$(field params_crc) want_acc=$(field swa_test_acc) want_n=$(field swa_n)
    [ -n "$want_crc" ] && [ -n "$want_acc" ] || { fail "$name: uninterrupted run: '$(final)'"; cat "$TMP/out" >&2; return; }
    run 2 --epochs 3 "$@" --ckpt-dir "$TMP/ck" --set train.stop_at_step="$s1"
    grep -q "stopped at step $s1 .*checkpoint written" "$TMP/out" || { fail "$name: stop at $s1 (rc $rc)"; cat "$TMP/out" >&2; }
    run 2 --epochs 3 "$@" --ckpt-dir "$TMP/ck" --set train.stop_at_step="$s2" --resume auto
    grep -q "resumed from .*ckpt-step0*$s1.h5" "$TMP/out" || { fail "$name: did not resume from step $s1"; cat "$TMP/out" >&2; }
    run 2 --epochs 3 "$@" --ckpt-dir "$TMP/ck" --resume auto
    if [ $rc -eq 0 ] && [ "$(field params_crc)" = "$want_crc" ] && [ "$(field swa_test_acc)" = "$want_acc" ] &&
        [ "$(field swa_n)" = "$want_n" ] && cmp -s "$TMP/ck0/swa-final.h5" "$TMP/ck/swa-final.h5"; then
        pass; echo "  $name: resumed twice, params_crc=$want_crc swa_test_acc=$want_acc swa_n=$want_n"
    else
        fail "$name: resumed '$(final)' vs uninterrupted params_crc=$want_crc swa_test_acc=$want_acc swa_n=$want_n (or swa-final.h5 differs)"
        cat "$TMP/out" >&2
    fi
}
resume_case "swa step, anneal" 6 21 --model "$TMP/bnmlp.cfg" --set swa.mode=swa --set swa.interval=step \
    --set swa.start=10 --set swa.freq=2 --set swa.lr=0.01 --set swa.anneal=8
resume_case "swa epoch" 9 20 --model "$TMP/bnmlp.cfg" --set swa.mode=swa --set swa.interval=epoch \
    --set swa.start=1 --set swa.lr=0.02
resume_case "ema" 7 17 --model "$TMP/bnmlp.cfg" --set swa.mode=ema --set swa.interval=step \
    --set swa.start=3 --set swa.ema_decay=0.95

summary
