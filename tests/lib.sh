# lib.sh - shared set-up of the shell test suites, sourced from the repository root after
# setting T (the suite's name): `T=test_cli; . tests/lib.sh`.
# Gives: the MPI environment (scripts/mpi-env.sh), NP (first argument, default 2), DT (./dtrain),
# TMP (a temporary folder removed at exit), pass / fail counters for the summary line
# "$T: N passed, N failed", and expect_dtrain_error.
. scripts/mpi-env.sh
NP=${1:-2}
DT=./dtrain
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-$T.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $T: $*" >&2; }

# expect_dtrain_error NAME PATTERN ARGS...: `dtrain ARGS` on NP ranks exits non-zero (no hang)
# within 30 s, with exactly one "dtrain: error" line, matching PATTERN, and no crash noise.
expect_dtrain_error() {
    name=$1 pat=$2
    shift 2
    start=$(date +%s)
    timeout -k 5 60 mpirun -np "$NP" $DT_MPIRUN_FLAGS $DT "$@" > "$TMP/out" 2> "$TMP/err"
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
