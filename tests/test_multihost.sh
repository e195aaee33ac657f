#!/bin/bash
# test_multihost.sh - one dtrain job across two "hosts" over real TCP: two network namespaces, each
# with its own hostname and a veth pair to a private bridge on 10.99.0.0/24 (nothing else is
# routed: no other address can be reached from inside), mpirun in host 1 starting the remote
# daemon in host 2 through an ssh-like agent (tests/cluster/netns-agent). Checks 2 ranks (one per
# host, btl tcp,self) and 4 ranks (two per host, tcp between hosts and shared memory within)
# against the same job on one host: train_loss, test_loss and test_acc must be equal (the runs
# are deterministic; params_crc too when dtrain prints it). At 2 ranks on two hosts
# train.allreduce = auto keeps MPI and shm is an error naming the key. Every mpirun is under `timeout -k`
# (a cut link makes mpirun hang); everything created is torn down on exit.
# Needs root with CAP_SYS_ADMIN/CAP_NET_ADMIN (ip netns, unshare --uts); otherwise SKIP.
# usage: bash tests/test_multihost.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_multihost
. tests/lib.sh
REPO=$(pwd)
TINY=(--epochs 1 --set data.limit_train=2000 --set data.limit_test=500 --set train.progress=never)
SUBNET=10.99.0.0/24

[ -x ./dtrain ] || die "./dtrain is not built (make)"
[ -s data/mnist/train-images-idx3-ubyte ] || die "no MNIST in data/mnist (make data)"
for c in ip unshare mpirun timeout; do
    command -v "$c" >/dev/null 2>&1 || skip_all "'$c' is not installed"
done
[ "$(id -u)" = 0 ] || skip_all "needs root (ip netns, unshare --uts)"

# Names unique to this run (interface names: at most 15 characters).
tag=$$
H1=dt${tag}h1
H2=dt${tag}h2
BR=dtbr$tag
CREATED_NS=()
CREATED_LINKS=()

teardown() {
    local ns p
    for ns in "${CREATED_NS[@]}"; do
        # whatever still runs in our namespaces (a hung orted or rank) is ours
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    for ns in "${CREATED_NS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    for l in "${CREATED_LINKS[@]}"; do
        ip link show "$l" >/dev/null 2>&1 && ip link del "$l" 2>/dev/null
    done
    rm -rf "$TMP"   # lib.sh's folder: this trap replaces lib.sh's
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- may we? ------------------------------------------------------------------------------------
if ! err=$(ip netns add "$H1" 2>&1); then
    skip_all "ip netns is not permitted here (needs CAP_SYS_ADMIN): $err"
fi
CREATED_NS+=("$H1")
if ! err=$(unshare --uts true 2>&1); then
    skip_all "unshare --uts is not permitted here (needs CAP_SYS_ADMIN): $err"
fi

# --- two hosts on a private bridge ----------------------------------------------------------------
setup() {
    ip link add "$BR" type bridge || return 1
    CREATED_LINKS+=("$BR")
    ip link set "$BR" up || return 1
    ip netns add "$H2" || return 1
    CREATED_NS+=("$H2")
    local k=1 h v
    for h in "$H1" "$H2"; do
        v=dtv${tag}h$k
        ip link add "$v" type veth peer name eth0 netns "$h" || return 1
        CREATED_LINKS+=("$v")
        ip link set "$v" master "$BR" up || return 1
        ip -n "$h" addr add "10.99.0.$k/24" dev eth0 || return 1
        ip -n "$h" link set eth0 up || return 1
        ip -n "$h" link set lo up || return 1
        k=$((k + 1))
    done
}
t0=$(date +%s.%N)
if ! setup 2>"$TMP/setup.err"; then
    # a kernel without veth/bridge support is an environment limit, not a dtrain failure
    skip_all "could not build the namespaces: $(tr '\n' ' ' <"$TMP/setup.err")"
fi
echo "  hosts $H1 (10.99.0.1) and $H2 (10.99.0.2) on bridge $BR in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }') s"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export DTRAIN_NETNS_HOSTS="$H1 $H2"   # the agent refuses any other host
AGENT=$REPO/tests/cluster/netns-agent

# on_host1 CMD...: run CMD in host 1 with its hostname, under a hard time limit
on_host1() {
    timeout -k 5 120 ip netns exec "$H1" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$H1" "$@"
}

# mh_run HOSTS BTL NP: mpirun in host 1 over both hosts; prints rank 0's output
mh_run() {
    on_host1 mpirun -np "$3" --host "$1" --oversubscribe --bind-to none \
        --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1 \
        --mca pml ob1 --mca btl "$2" \
        --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET" \
        "${@:4}"
}

# field LINE KEY
field() { echo "$1" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }

# compare NAME NP HOSTS BTL: the job over two hosts equals the job on one host
compare() {
    local name=$1 np=$2 hosts=$3 btl=$4 ref got keys k a b same=1 t bytes0 mb
    ref=$(timeout -k 5 120 mpirun -np "$np" --oversubscribe --bind-to none --mca pml ob1 \
        --mca btl self,vader,tcp "$REPO/dtrain" train "${TINY[@]}" 2>"$TMP/ref.err" | grep '^final: ')
    if [ -z "$ref" ]; then
        fail "$name: the one-host reference run failed"
        cat "$TMP/ref.err" >&2
        return
    fi
    t=$(date +%s.%N)
    bytes0=$(cat "/sys/class/net/dtv${tag}h2/statistics/tx_bytes" 2>/dev/null || echo 0)
    got=$(mh_run "$hosts" "$btl" "$np" "$REPO/dtrain" train "${TINY[@]}" 2>"$TMP/mh.err" | grep '^final: ')
    t=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    # bytes the bridge sent into host 2: the gradients really went over the link
    mb=$(( ($(cat "/sys/class/net/dtv${tag}h2/statistics/tx_bytes" 2>/dev/null || echo 0) - bytes0) / 1000000 ))
    if [ -z "$got" ]; then
        fail "$name: the two-host run failed (--host $hosts, btl $btl)"
        tail -n 20 "$TMP/mh.err" >&2
        return
    fi
    keys="train_loss test_loss test_acc"
    echo "$ref" | grep -q 'params_crc=' && keys="$keys params_crc"
    for k in $keys; do
        a=$(field "$ref" "$k")
        b=$(field "$got" "$k")
        [ -n "$a" ] && [ "$a" = "$b" ] || same=0
    done
    if [ "$mb" -lt 1 ]; then
        fail "$name: only $mb MB crossed the link into host 2: the job did not run across hosts"
    elif [ $same = 1 ]; then
        pass "$name (--host $hosts, btl $btl, $t s, $mb MB into host 2): equal to one host: $got"
    else
        fail "$name: results differ from one host"
        echo "  one host:  $ref" >&2
        echo "  two hosts: $got" >&2
    fi
}

# placement: 4 ranks really run 2 + 2 on hosts with distinct names
names=$(mh_run "$H1:2,$H2:2" tcp,self 4 hostname 2>"$TMP/mh.err" | sort | uniq -c | awk '{ print $2 ":" $1 }' | tr '\n' ' ')
if [ "$names" = "$H1:2 $H2:2 " ]; then
    pass "placement: 4 ranks as $names"
else
    fail "placement: expected $H1:2 $H2:2, got '$names'"
    tail -n 20 "$TMP/mh.err" >&2
fi
compare "2 ranks, 1 per host" 2 "$H1:1,$H2:1" tcp,self
compare "4 ranks, 2 per host" 4 "$H1:2,$H2:2" tcp,vader,self

# the gradient allreduce across hosts: auto keeps MPI (and says why in the header); shm asked for
# is one error naming the key, exit 1 on every rank
out=$(mh_run "$H1:1,$H2:1" tcp,self 2 "$REPO/dtrain" train "${TINY[@]}" 2>&1)
echo "$out" | grep -q '^# allreduce: mpi (shm: the 2 ranks are on 2 nodes' &&
    pass "auto across hosts: $(echo "$out" | grep '^# allreduce')" ||
    fail "auto across hosts: no '# allreduce: mpi (shm: ... 2 nodes' line: $(echo "$out" | grep allreduce)"
out=$(mh_run "$H1:1,$H2:1" tcp,self 2 "$REPO/dtrain" train "${TINY[@]}" --set train.allreduce=shm 2>&1)
rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$out" | grep -c 'dtrain: error')" = 1 ] &&
    echo "$out" | grep -q 'dtrain: error: .*train.allreduce = shm: the 2 ranks are on 2 nodes'; then
    pass "shm across hosts: exit $rc, $(echo "$out" | grep 'dtrain: error')"
else
    fail "shm across hosts: exit $rc, expected one error naming train.allreduce:"
    echo "$out" | tail -n 20 >&2
fi

summary
