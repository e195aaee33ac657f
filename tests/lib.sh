# lib.sh - shared set-up of the shell test suites, sourced from the repository root after
# setting T (the suite's name): `T=test_cli; . tests/lib.sh`. POSIX sh (sourced by sh and bash).
# Gives:
#   - the MPI environment (scripts/mpi-env.sh: DT_MPIRUN_FLAGS, root permission, 1 BLAS thread);
#   - NP (first argument, default 2), DT (./dtrain), TMP (a temporary folder removed at exit; a
#     suite that sets its own EXIT trap removes it there);
#   - pass [MSG] / fail MSG: the counters ("  ok: MSG" / "FAIL $T: MSG" on stderr);
#   - summary: the line "$T: N passed, N failed" that tests/run.sh adds up; its status is the
#     suite's (0 when nothing failed), so a suite ends with `summary`;
#   - skip_all REASON: "SKIP: $T: REASON", the summary line, exit 0 (nothing counted);
#   - die MSG: one failure, the summary line, exit 1 (a check the rest cannot do without);
#   - run_dtrain SECONDS NP ARGS...: `dtrain ARGS` on NP ranks under a hard time limit;
#   - expect_dtrain_error.
. scripts/mpi-env.sh
NP=${1:-2}
DT=./dtrain
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-$T.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
pass() {
    passed=$((passed + 1))
    if [ $# -gt 0 ]; then echo "  ok: $*"; fi
}
fail() { failed=$((failed + 1)); echo "FAIL $T: $*" >&2; }
summary() {
    echo "$T: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
skip_all() {
    echo "SKIP: $T: $*"
    summary
    exit 0
}
die() {
    fail "$@"
    summary
    exit 1
}

# run_dtrain SECONDS NP ARGS...: mpirun -np NP ./dtrain ARGS, killed after SECONDS (a rank stuck
# in a collective must not hang the suite); its status is dtrain's (124/137 on time-out).
run_dtrain() {
    _rd_secs=$1 _rd_np=$2
    shift 2
    timeout -k 5 "$_rd_secs" mpirun -np "$_rd_np" $DT_MPIRUN_FLAGS $DT "$@"
}

# expect_dtrain_error NAME PATTERN ARGS...: `dtrain ARGS` on NP ranks exits non-zero (no hang)
# within 30 s, with exactly one "dtrain: error" line, matching PATTERN, and no crash noise.
expect_dtrain_error() {
    name=$1 pat=$2
    shift 2
    start=$(date +%s)
    run_dtrain 60 "$NP" "$@" > "$TMP/out" 2> "$TMP/err"
    rc=$?
    secs=$(($(date +%s) - start))
    n=$(grep -c 'dtrain: error' "$TMP/err")
    if [ $rc -eq 0 ]; then
        fail "$name: exit status 0, expected non-zero"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail "$name: timed out (a rank hung)"
    elif [ "$n" -ne 1 ]; then
        fail "$name: $n 'dtrain: error' lines, expected exactly 1:"; cat "$TMP/err" >&2
    elif ! grep 'dtrain: error' "$TMP/err" | grep -q -- "$pat"; then
        fail "$name: message does not match '$pat':"; cat "$TMP/err" >&2
    elif grep -q -i -E 'core dumped|MPI_ABORT|Segmentation' "$TMP/err"; then
        fail "$name: crash noise:"; cat "$TMP/err" >&2
    elif [ $secs -gt 30 ]; then
        fail "$name: took ${secs}s"
    else
        pass
    fi
}

# rank_pid PID RANK: the pid of the dtrain process of MPI rank RANK started below PID (PID itself
# or a child of it: dtrain-run / timeout -> mpirun -> dtrain); nothing when there is none (yet).
rank_pid() {
    local m p
    [ -n "$1" ] || return 0
    for m in $(pgrep -P "$1") "$1"; do
        for p in $(pgrep -P "$m" dtrain); do
            if grep -qz "^OMPI_COMM_WORLD_RANK=$2\$" "/proc/$p/environ" 2>/dev/null; then
                echo "$p"
                return
            fi
        done
    done
}

# csv_col FILE NAME: the named column, one value per line
csv_col() {
    awk -F, -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; if (!k) exit 1; next } { print $k }' "$1"
}
