#!/bin/sh
# test_comm.sh - the gradient communication's scheduling changes the timing, never the training
# (docs/internals.md, "Buckets, panels and the update"):
#   - params_crc is the same with one blocking allreduce (train.bucket_mb = 25, every built-in
#     model fits), with buckets of 0.25 MiB (the optimizer run bucket by bucket as each
#     completes), the same with train.grad_panels (the mlp's fc1 weight gradient in row panels,
#     each its own bucket), with 0.05 MiB buckets in panels at 2 threads, with Open MPI's own choice of nonblocking allreduce (binomial: dtrain
#     picks the ring at 2 ranks), with adamw, and with clipping (the update after every
#     bucket): at 2 ranks and at 3 ranks (at 3 ranks Open MPI 4.1 adds rank 0's, 1's then 2's
#     values whatever the bucket boundaries: this is what keeps 3-rank crcs from before the
#     panels), and at 1 rank (no communication, the update in one part);
#   - the mlp at 2 ranks with 0.25 MiB buckets in panels: at least 5 buckets a step (fc2 + fc3, then fc1's
#     panels), all but the last started before backward ends, the last one the smallest of fc1's;
#     each bucket's update recorded inside the allreduce wait.
#   - train.allreduce = shm (the buckets summed through shared memory, dist_shm.h) gives the
#     params_crc of train.allreduce = mpi, for mlp and cnn, one bucket and 0.25 MiB buckets in
#     panels, at 2 ranks (a + b == b + a) and at 3 (shm sums in rank order, as Open MPI 4.1's
#     allreduce does at 3 ranks); the header names the path auto takes (shm at 2 ranks, mpi at
#     3); a bad train.allreduce value is one error naming the key.
# usage: sh tests/test_comm.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_comm
. tests/lib.sh
[ -x "$DT" ] || die "$DT missing (make)"
[ -f data/mnist/train-images-idx3-ubyte ] || skip_all "data/mnist missing (make data)"

BASE="--model mlp --epochs 1 --set train.max_steps=12 --batch-size 48 --set data.limit_train=1200
      --set data.limit_test=200 --set train.progress=never"
# crc NP ARGS...: the run's params_crc (empty when it failed)
crc() {
    np=$1
    shift
    run_dtrain 120 "$np" train $BASE "$@" > "$TMP/out" 2> "$TMP/err" || cat "$TMP/err" >&2
    grep '^final:' "$TMP/out" | grep -o 'params_crc=[0-9a-f]*'
}
# same NAME NP ARGS_A -- ARGS_B: both runs end with the same, non-empty params_crc
same() {
    name=$1 np=$2
    shift 2
    a_args=""
    while [ "$1" != "--" ]; do a_args="$a_args $1" && shift; done
    shift
    a=$(crc "$np" $a_args)
    b=$(crc "$np" "$@")
    [ -n "$a" ] && [ "$a" = "$b" ] && pass "$name, $np ranks: $a" ||
        fail "$name, $np ranks: '$a' vs '$b'"
}

P="--set train.grad_panels=true"
for np in 1 2 3; do
    same "one allreduce vs 0.25 MiB buckets" $np --set train.bucket_mb=25 -- --set train.bucket_mb=0.25
    same "one allreduce vs 0.25 MiB buckets in panels" $np --set train.bucket_mb=25 -- \
        --set train.bucket_mb=0.25 $P
    same "one allreduce vs 0.05 MiB buckets in panels, 2 threads" $np --set train.bucket_mb=25 -- \
        --set train.bucket_mb=0.05 $P --threads 2
    same "adamw: one allreduce vs buckets in panels" $np --set train.bucket_mb=25 \
        --set optim.name=adamw -- --set train.bucket_mb=0.25 --set optim.name=adamw $P
    same "clipping: one allreduce vs buckets in panels" $np --set train.bucket_mb=25 \
        --set optim.clip_grad_norm=0.5 -- --set train.bucket_mb=0.25 --set optim.clip_grad_norm=0.5 $P
done
# the shared-memory allreduce: the MPI path's bits
for np in 2 3; do
    for m in mlp cnn; do
        same "$m: mpi vs shm allreduce, one bucket" $np --model $m --set train.allreduce=mpi -- \
            --model $m --set train.allreduce=shm
        same "$m: mpi vs shm allreduce, 0.25 MiB buckets in panels" $np --model $m \
            --set train.allreduce=mpi --set train.bucket_mb=0.25 $P -- --model $m \
            --set train.allreduce=shm --set train.bucket_mb=0.25 $P
    done
done
for np in 2 3; do
    want="# allreduce: shm (2 ranks on one node)"
    [ $np = 3 ] && want="# allreduce: mpi"
    run_dtrain 120 $np train $BASE > "$TMP/out" 2> "$TMP/err" || cat "$TMP/err" >&2
    grep -qx "$want" "$TMP/out" && pass "auto at $np ranks: $want" ||
        fail "auto at $np ranks: no line '$want' in: $(grep allreduce "$TMP/out")"
done
expect_dtrain_error "train.allreduce = foo" "train.allreduce = 'foo': expected one of auto|mpi|shm" \
    train $BASE --set train.allreduce=foo

# Open MPI's own algorithm (an MCA variable the user set wins over dtrain's choice)
a=$(crc 2 --set train.bucket_mb=0.25)
b=$(export OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 && crc 2 --set train.bucket_mb=0.25)
[ -n "$a" ] && [ "$a" = "$b" ] && pass "ring vs binomial nonblocking allreduce, 2 ranks: $a" ||
    fail "ring vs binomial nonblocking allreduce, 2 ranks: '$a' vs '$b'"

# the buckets of a step on the timeline: one event a line, as test_timeline.sh reads them
run_dtrain 120 2 train $BASE --set train.bucket_mb=0.25 $P --set log.timeline="$TMP/tl.json" \
    --set log.timeline_steps=4 > "$TMP/out" 2> "$TMP/err" ||
    { cat "$TMP/err" >&2; die "the timeline run failed"; }
awk '/"ph":"X"/ {
    f["pid"] = ""; f["tid"] = ""; f["cat"] = ""; f["step"] = -1; f["ts"] = ""; f["dur"] = ""; f["floats"] = -1
    for (k in f)
        if (match($0, "\"" k "\":\"[^\"]*\"")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:"/, "", v); sub(/"$/, "", v); f[k] = v }
        else if (match($0, "\"" k "\":[-0-9.]+")) { v = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", v); f[k] = v }
    gsub(/ /, "_", f["cat"])
    printf "%s %s %s %s %.3f %.3f %s\n", f["pid"], f["tid"], f["cat"], f["step"], f["ts"], f["ts"] + f["dur"], f["floats"]
}' "$TMP/tl.json" > "$TMP/ev"
# per rank and step: buckets, those started before backward ended, the last one's floats and the
# smallest of the others, updates inside the allreduce wait
bad=$(awk '$2 == 1 && $3 == "backward" { b1[$1 " " $4] = $6 }
    $2 == 1 && $3 == "allreduce_wait" { w0[$1 " " $4] = $5; w1[$1 " " $4] = $6 }
    { ev[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) {
            split(ev[i], e, " "); k = e[1] " " e[4]
            if (e[2] >= 100 && e[3] == "allreduce") {
                nb[k]++; t = e[2] - 100
                if (t > last[k] || !(k in last)) { last[k] = t; lastf[k] = e[7]; lastts[k] = e[5] }
                if (e[5] < b1[k]) early[k]++
            }
            if (e[2] == 1 && e[3] == "update") { nu[k]++; if (e[5] < w0[k] - 0.01 || e[6] > w1[k] + 0.01) uout[k]++ }
        }
        for (k in b1) {
            if (nb[k] < 5) print k ": " nb[k] + 0 " buckets"
            if (early[k] != nb[k] - 1) print k ": " early[k] + 0 " of " nb[k] " buckets started during backward"
            if (lastf[k] > 65536) print k ": the last bucket holds " lastf[k] " floats"
            if (nu[k] != nb[k]) print k ": " nu[k] + 0 " updates for " nb[k] " buckets"
            if (uout[k]) print k ": an update outside the allreduce wait"
        }
    }' "$TMP/ev" | sort | head -n 5)
nb=$(awk '$1 == 0 && $4 == 0 && $2 >= 100' "$TMP/ev" | wc -l)
[ -z "$bad" ] && pass "fc1 in panels: $nb buckets a step, all but the last during backward, each updated as it completes" ||
    fail "buckets: $bad"

summary
