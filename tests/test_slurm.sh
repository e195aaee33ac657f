#!/bin/bash
# test_slurm.sh - the cluster examples against a real Slurm: brings up munge + slurmctld + two
# emulated nodes c[1-2] on this machine (scripts/slurm-local.sh, all state in a temp dir), submits
# every example in cluster-examples/ with tiny settings and checks that each job ends COMPLETED with
# exit code 0:0 and a `final:` line with a sane test accuracy; plus launch/dtrain-run's command
# lines inside and outside an allocation, and the pre-emption round trip (signal -> checkpoint ->
# requeue -> resume -> same result as an uninterrupted run).
# Installs the Debian packages when missing (root); when that is impossible it prints SKIP and
# counts nothing as passed. Stops only the daemons it started, whatever happens.
# usage: bash tests/test_slurm.sh        (KEEP=1: keep the temp dir and print where it is)
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_slurm
. tests/lib.sh
REPO=$(pwd)
MIN_ACC=60
TINY=(--epochs 1 --set data.limit_train=4000 --set data.limit_test=1000 --set train.progress=never)


# --- launcher command lines outside Slurm (no daemons needed) ------------------------------------
[ "$(id -u)" = 0 ] || skip_all "needs root (installs packages, starts munged/slurmctld/slurmd)"
[ -x ./dtrain ] || die "./dtrain is not built (make)"
[ -s data/mnist/train-images-idx3-ubyte ] || die "no MNIST in data/mnist (make data)"

# --- packages -------------------------------------------------------------------------------------
if ! reason=$(bash scripts/slurm-local.sh deps 2>&1); then
    skip_all "Slurm is not available and could not be installed: $reason"
fi

chmod 0755 "$TMP"
cleanup() {
    bash "$REPO/scripts/slurm-local.sh" down "$TMP/cluster"
    [ -d "$TMP/nobind" ] && bash "$REPO/scripts/slurm-local.sh" down "$TMP/nobind"
    if [ "${KEEP:-0}" = 1 ]; then echo "test_slurm: kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT   # replaces lib.sh's
trap 'fail "interrupted"; summary; exit 130' INT TERM

# dry-run checks outside an allocation: mpirun with binding, threads passed through
line=$(env -u SLURM_JOB_ID launch/dtrain-run --dry-run -np 2 --threads 1 train --epochs 1)
case $line in
*"OPENBLAS_NUM_THREADS=1"*"mpirun -np 2 "*"--bind-to "*"dtrain train --threads 1 --epochs 1") pass "dtrain-run outside Slurm: $line" ;;
*) fail "dtrain-run outside Slurm: unexpected command '$line'" ;;
esac
line=$(env -u SLURM_JOB_ID launch/dtrain-run --dry-run -np 64 --threads 4 train)
case $line in
*"OPENBLAS_NUM_THREADS=4"*"mpirun -np 64 --oversubscribe --bind-to none "*"train --threads 4") pass "dtrain-run oversubscribed: --bind-to none" ;;
*) fail "dtrain-run oversubscribed: unexpected command '$line'" ;;
esac

# --- the cluster ----------------------------------------------------------------------------------
t_up=$(date +%s.%N)
if ! bash scripts/slurm-local.sh up "$TMP/cluster" 2; then
    fail "the local Slurm did not come up"
    tail -n 20 "$TMP"/cluster/log/*.log 2>/dev/null >&2
    summary
    exit 1
fi
. "$TMP/cluster/env"
echo "  local Slurm up in $(awk -v a="$t_up" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s: $(sinfo -h -N -o '%N/%T' | tr '\n' ' ')"
mkdir -p "$TMP/out" "$TMP/sweep" "$TMP/ckpt"
cd "$TMP/out" || exit 1   # jobs start in the submit directory: nothing lands in the repository

# submit NAME SBATCH_ARGS... : sets JID to the job id, records NAME, adds the job to ALL
declare -A JOBNAME
ALL=()
submit() {
    local name=$1 id
    shift
    JID=
    if ! id=$(sbatch --parsable "$@" 2>"$TMP/sbatch.err"); then
        fail "$name: sbatch $*: $(cat "$TMP/sbatch.err")"
        return 1
    fi
    JID=${id%%;*}
    JOBNAME[$JID]=$name
    ALL+=("$JID")
}

# job_field JOB KEY: KEY=value of the job's record (the first record for an array)
job_field() { scontrol show job "$1" -o 2>/dev/null | head -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }

# check_done NAME JOB OUT [MIN_ACC]: COMPLETED, ExitCode 0:0, a final line with test_acc >= MIN_ACC
check_done() {
    local name=$1 job=$2 out=$3 min=${4:-$MIN_ACC} state code last acc
    state=$(job_field "$job" JobState)
    code=$(job_field "$job" ExitCode)
    last=$(grep '^final: ' "$out" 2>/dev/null | tail -n 1)
    acc=$(echo "$last" | sed -n 's/.* test_acc=\([0-9.]*\).*/\1/p')
    if [ "$state" != COMPLETED ] || [ "$code" != 0:0 ]; then
        fail "$name (job $job): JobState=$state ExitCode=$code"
        tail -n 15 "$out" >&2 2>/dev/null
        return 1
    elif [ -z "$acc" ]; then
        fail "$name (job $job): no final line in $out"
        tail -n 15 "$out" >&2
        return 1
    elif ! awk -v a="$acc" -v m="$min" 'BEGIN { exit !(a >= m) }'; then
        fail "$name (job $job): test_acc $acc < $min"
        return 1
    fi
    return 0
}

# --- uninterrupted references for the pre-emption cases (same ranks, same settings) -------------
# The real one needs dtrain's --resume; the fake one (tests/cluster/fake-dtrain: only the
# checkpoint/resume interface) checks the batch script's signal -> checkpoint -> requeue -> resume
# wiring on its own, and runs always.
PRE_ARGS=(--epochs 10 --set data.limit_train=8000 --set data.limit_test=1000 --set train.progress=never)
FAKE=$REPO/tests/cluster/fake-dtrain
fake_ref=$("$FAKE" train --epochs 8 --set ckpt.dir="$TMP/ckpt-fake-ref" | grep '^final: ')
have_resume=0
if "$REPO/dtrain" --help 2>&1 | grep -q resume; then
    have_resume=1
    ref_line=$(env -u SLURM_JOB_ID "$REPO/launch/dtrain-run" -np 2 train --data-dir "$REPO/data" \
        --model mlp --data mnist "${PRE_ARGS[@]}" --set ckpt.dir="$TMP/ckpt-ref" 2>"$TMP/ref.err" |
        grep '^final: ' | tail -n 1)
    [ -n "$ref_line" ] || { fail "pre-emption: the uninterrupted reference run failed"; cat "$TMP/ref.err" >&2; }
fi

# --- submit everything at once; Slurm packs it onto c1/c2 ----------------------------------------
t0=$(date +%s)
submit "dtrain-run in an allocation" -n 1 -c 2 -o "$TMP/out/probe-%j.out" \
    --wrap "$REPO/launch/dtrain-run --dry-run train --epochs 1"; j_probe=$JID
submit single-node -o "$TMP/out/single-%j.out" "$REPO/cluster-examples/single-node.sbatch" "${TINY[@]}"
j_one=$JID
submit "single-node -n1 -c2" -n 1 -c 2 -o "$TMP/out/threads-%j.out" \
    "$REPO/cluster-examples/single-node.sbatch" "${TINY[@]}"; j_thr=$JID
submit multi-node -o "$TMP/out/multi-%j.out" "$REPO/cluster-examples/multi-node.sbatch" "${TINY[@]}"
j_two=$JID
SWEEP_LRS="0.05 0.1" SWEEP_BATCHES="32 64" SWEEP_DIR="$TMP/sweep" \
    submit sweep --array=0-3 -o "$TMP/out/sweep-%A_%a.out" "$REPO/cluster-examples/sweep.sbatch" "${TINY[@]}"
j_sweep=$JID
SWEEP_DIR="$TMP/sweep1" submit "sweep in one allocation" -o "$TMP/out/sweep1-%j.out" \
    "$REPO/cluster-examples/sweep-alloc.sbatch" "${TINY[@]}" --grid optim.lr=0.05,0.1 --grid train.batch_size=32,64
j_sweep1=$JID
declare -A PRE_REF PRE_SIG
PRE=()
CKPT_DIR="$TMP/ckpt-fake" DTRAIN="$FAKE" submit "pre-emption flow (fake dtrain)" \
    -o "$TMP/out/preempt-%j.out" "$REPO/cluster-examples/preemptible.sbatch" --epochs 8 &&
    { PRE+=("$JID"); PRE_REF[$JID]=$fake_ref; }
if [ $have_resume = 1 ] && [ -n "${ref_line:-}" ]; then
    CKPT_DIR="$TMP/ckpt" submit pre-emption -o "$TMP/out/preempt-%j.out" \
        "$REPO/cluster-examples/preemptible.sbatch" "${PRE_ARGS[@]}" &&
        { PRE+=("$JID"); PRE_REF[$JID]=$ref_line; }
fi

# Poll (squeue every 0.5 s: faster than sbatch --wait); send the pre-emption warning by hand once
# the job is training: `scancel --batch -s USR1` signals the batch shell only, as --signal=B:USR1
# does (whose timing is too coarse for a test: the controller checks limits every ~30 s).
deadline=$((t0 + 150))
ids=$(IFS=,; echo "${ALL[*]}")
while [ -n "$ids" ] && [ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]; do
    for j in "${PRE[@]}"; do
        if [ -z "${PRE_SIG[$j]:-}" ] && grep -q '^epoch 2/' "$TMP/out/preempt-$j.out" 2>/dev/null; then
            if scancel --batch -s USR1 "$j"; then
                PRE_SIG[$j]=$(( $(date +%s) - t0 ))
                echo "  sent SIGUSR1 to the batch shell of job $j (${JOBNAME[$j]}) after ${PRE_SIG[$j]} s"
            fi
        fi
    done
    if [ "$(date +%s)" -ge $deadline ]; then
        fail "jobs still queued or running after $((deadline - t0)) s:"
        squeue -j "$ids" >&2
        break
    fi
    sleep 0.5
done
echo "  all jobs left the queue after $(( $(date +%s) - t0 )) s"

# --- checks -----------------------------------------------------------------------------------------
if [ -n "${j_probe:-}" ]; then
    line=$(grep 'srun' "$TMP/out/probe-$j_probe.out" | tail -n 1)
    case $line in
    *"OPENBLAS_NUM_THREADS=2"*"srun --mpi=pmix --export=ALL -n 1 -c 2 --cpu-bind=cores "*"dtrain train --threads 2 --epochs 1")
        pass "dtrain-run in sbatch -n1 -c2: $line" ;;
    *) fail "dtrain-run in sbatch -n1 -c2: unexpected '$line'"; cat "$TMP/out/probe-$j_probe.out" >&2 ;;
    esac
fi

if [ -n "${j_one:-}" ] && check_done single-node "$j_one" "$TMP/out/single-$j_one.out"; then
    if grep -q ' 2 ranks ' "$TMP/out/single-$j_one.out"; then
        pass "single-node (job $j_one, $(job_field "$j_one" NodeList)): $(grep '^final: ' "$TMP/out/single-$j_one.out")"
    else
        fail "single-node (job $j_one): not 2 ranks: $(grep '^# dtrain' "$TMP/out/single-$j_one.out")"
    fi
fi

if [ -n "${j_thr:-}" ] && check_done "single-node -n1 -c2" "$j_thr" "$TMP/out/threads-$j_thr.out"; then
    if grep -Eq '1 rank x 2 threads' "$TMP/out/threads-$j_thr.out"; then
        pass "single-node -n1 -c2 (job $j_thr): 1 rank x 2 threads from SLURM_CPUS_PER_TASK"
    else
        fail "single-node -n1 -c2 (job $j_thr): threads not taken from -c: $(grep '^# dtrain' "$TMP/out/threads-$j_thr.out")"
    fi
fi

if [ -n "${j_two:-}" ] && check_done multi-node "$j_two" "$TMP/out/multi-$j_two.out"; then
    nodes=$(job_field "$j_two" NodeList)
    if [ "$nodes" = "c[1-2]" ] && grep -q ' 4 ranks ' "$TMP/out/multi-$j_two.out"; then
        pass "multi-node (job $j_two, $nodes, 4 ranks): $(grep '^final: ' "$TMP/out/multi-$j_two.out")"
    else
        fail "multi-node (job $j_two): NodeList=$nodes, $(grep '^# dtrain' "$TMP/out/multi-$j_two.out")"
    fi
fi

if [ -n "${j_sweep:-}" ]; then
    states=$(scontrol show job "$j_sweep" -o 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | sort | uniq -c | tr -s ' ' | tr '\n' ',')
    ntxt=$(ls "$TMP"/sweep/trial-*.txt 2>/dev/null | wc -l)
    table=$(bash "$REPO/cluster-examples/gather-sweep.sh" "$TMP/sweep" 2>"$TMP/gather.err")
    rows=$(echo "$table" | grep -c '^| [0-9]')
    ok=1
    for k in 0 1 2 3; do
        f=$(grep -l "^final: " "$TMP/out/sweep-${j_sweep}_$k.out" 2>/dev/null) || { ok=0; continue; }
        check_done "sweep task $k" "${j_sweep}_$k" "$f" || ok=0
    done
    if [ $ok = 1 ] && [ "$states" = " 4 COMPLETED," ] && [ "$ntxt" = 4 ] && [ "$rows" = 4 ] &&
        [ "$(wc -l <"$TMP/sweep/results.csv")" = 5 ] &&
        grep -q '^trial,lr,batch_size,job,epochs,' "$TMP/sweep/results.csv" &&
        [ "$(cat "$TMP/sweep/sweep.axes")" = "lr batch_size" ] &&
        [ "$(grep -c '^[0-9]' "$TMP/sweep/heatmap.dat")" = 4 ] &&
        ! grep -q NaN "$TMP/sweep/heatmap.dat" &&
        [ "$(od -An -tx1 -N8 "$TMP/sweep/heatmap.png" | tr -d ' \n')" = 89504e470d0a1a0a ]; then
        pass "sweep (array job $j_sweep, 4 tasks COMPLETED, gathered table, heatmap.png):"
        echo "$table" | sed 's/^/      /'
    else
        fail "sweep (array job $j_sweep): states '$states', $ntxt result files, $rows table rows"
        echo "$table" >&2
        cat "$TMP/gather.err" >&2
    fi
fi

# sweep-alloc.sbatch: one job step, 4 trials, results.csv with 4 ok rows, a heatmap
if [ -n "${j_sweep1:-}" ]; then
    if [ "$(job_field "$j_sweep1" JobState)" = COMPLETED ] && [ "$(job_field "$j_sweep1" ExitCode)" = 0:0 ] &&
        [ "$(grep -c ',ok,' "$TMP/sweep1/results.csv" 2>/dev/null)" = 4 ] && [ -s "$TMP/sweep1/heatmap.dat" ]; then
        pass "sweep in one allocation (job $j_sweep1): $(grep '^sweep: [0-9]' "$TMP/out/sweep1-$j_sweep1.out")"
    else
        fail "sweep in one allocation (job $j_sweep1): $(job_field "$j_sweep1" JobState)"; tail -n 15 "$TMP/out/sweep1-$j_sweep1.out" >&2
    fi
fi

# check_preempt JOB: signalled mid-training, a checkpoint-on-signal line, requeued (Restarts >= 1),
# a resume line, COMPLETED, and the same final result as the uninterrupted run
check_preempt() {
    local j=$1 name=${JOBNAME[$1]} out=$TMP/out/preempt-$1.out ref=${PRE_REF[$1]} restarts ck rs last fields k a b same=1
    restarts=$(job_field "$j" Restarts)
    # the program's own lines only (the script's "preemptible:" lines do not count)
    ck=$(grep -v '^preemptible:' "$out" | grep -i checkpoint | grep -i signal | head -n 1)
    rs=$(grep -v '^preemptible:' "$out" | grep -i '^resumed from' | head -n 1) # the requeued run's
    last=$(grep '^final: ' "$out" | tail -n 1)
    # equal results: params_crc when printed, else the losses and the accuracy, exactly
    fields="params_crc"
    echo "$ref" | grep -q 'params_crc=' || fields="train_loss test_loss test_acc"
    for k in $fields; do
        a=$(echo "$ref" | sed -n "s/.* $k=\([^ ]*\).*/\1/p")
        b=$(echo "$last" | sed -n "s/.* $k=\([^ ]*\).*/\1/p")
        [ -n "$a" ] && [ "$a" = "$b" ] || same=0
    done
    if [ -z "${PRE_SIG[$j]:-}" ]; then
        fail "$name (job $j): training never reached epoch 2, no signal sent"
        tail -n 20 "$out" >&2
    elif check_done "$name" "$j" "$out" && [ "${restarts:-0}" -ge 1 ] && [ -n "$ck" ] && [ -n "$rs" ] && [ $same = 1 ]; then
        pass "$name (job $j, Restarts=$restarts): '$ck' / '$rs' / same $fields as uninterrupted: $last"
    else
        fail "$name (job $j): Restarts=$restarts checkpoint-line='$ck' resume-line='$rs' same-$fields=$same"
        echo "  uninterrupted: $ref" >&2
        echo "  pre-empted:    $last" >&2
        tail -n 30 "$out" >&2
    fi
}
for j in "${PRE[@]}"; do
    check_preempt "$j"
done
[ $have_resume = 1 ] || echo "SKIP: pre-emption (dtrain lacks --resume)"

# jobcomp: every finished job (and each requeue) is logged there; none may have failed
if grep -Eq 'JobState=(FAILED|NODE_FAIL|TIMEOUT|OUT_OF_MEMORY)' "$TMP/cluster/log/jobcomp.txt" 2>/dev/null; then
    fail "jobcomp log records failed jobs:"
    grep -E 'JobState=(FAILED|NODE_FAIL|TIMEOUT|OUT_OF_MEMORY)' "$TMP/cluster/log/jobcomp.txt" >&2
fi

echo "  ($(( $(date +%s) - t0 )) s of jobs)"

# --- a cluster that cannot bind (TaskPlugin=task/none): dtrain-run asks srun for no binding (srun
# would print "cluster configuration lacks support for cpu binding" on every step) and says why once
bash "$REPO/scripts/slurm-local.sh" down "$TMP/cluster"
if SLURM_TASK_PLUGIN=task/none bash "$REPO/scripts/slurm-local.sh" up "$TMP/nobind" 1; then
    . "$TMP/nobind/env"
    submit "task/none probe" -n 1 -c 2 -o "$TMP/out/nobind-probe-%j.out" \
        --wrap "$REPO/launch/dtrain-run --dry-run train --epochs 1"; j_nb_probe=$JID
    submit "task/none training" -n 1 -c 2 -o "$TMP/out/nobind-%j.out" \
        "$REPO/cluster-examples/single-node.sbatch" "${TINY[@]}"; j_nb=$JID
    for _ in $(seq 240); do
        [ -z "$(squeue -h -j "$j_nb_probe,$j_nb" 2>/dev/null)" ] && break
        sleep 0.5
    done
    why="dtrain-run: not binding ranks to cores: this cluster's TaskPlugin is 'task/none'"
    out=$TMP/out/nobind-probe-$j_nb_probe.out
    line=$(grep 'srun' "$out" | tail -n 1)
    case $line in
    *"srun --mpi=pmix --export=ALL -n 1 -c 2 "*"dtrain train --threads 2 --epochs 1")
        if [ "$(grep -c "$why" "$out")" = 1 ]; then pass "task/none: $line, and one line why"
        else fail "task/none: $(grep -c "$why" "$out") lines saying why no binding, expected 1:"; cat "$out" >&2; fi ;;
    *) fail "task/none probe: unexpected '$line'"; cat "$out" >&2 ;;
    esac
    out=$TMP/out/nobind-$j_nb.out
    if check_done "task/none training" "$j_nb" "$out"; then
        if grep -q 'lacks support for cpu binding' "$out" || [ "$(grep -c "$why" "$out")" != 1 ]; then
            fail "task/none training: srun's binding complaint, or not exactly one line why:"; cat "$out" >&2
        else
            pass "task/none training (job $j_nb): no binding asked, one line why: $(grep '^final: ' "$out")"
        fi
    fi
else
    fail "the local Slurm with TaskPlugin=task/none did not come up"
fi
summary
