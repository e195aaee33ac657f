# lib.sh - shared set-up of the shell test suites, sourced from the repository root after
# setting T (the suite's name): `T=test_cli; . tests/lib.sh`.
# Gives: the MPI environment (scripts/mpi-env.sh), NP (first argument, default 2), DT (./dtrain),
# TMP (a temporary folder removed at exit), and pass / fail counters for the summary line
# "$T: N passed, N failed".
. scripts/mpi-env.sh
NP=${1:-2}
DT=./dtrain
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-$T.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL $T: $*" >&2; }
