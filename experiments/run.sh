#!/usr/bin/env bash
# experiments/run.sh N [N...]: the lecture's section N (1..8), one command each
# (docs/experiments.md): experiments/sN_*.sh. `make experiments SECTION=N` runs the same.
# The scripts run from a copy taken at the start, so editing them meanwhile changes nothing.
# Environment: QUICK=1 (smoke mode), RESULTS, RUNS_ROOT, KEEP_RUNS, DTRAIN (experiments/lib.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: experiments/run.sh N [N...]  (N = 1..8, the lecture's sections)" >&2; exit 2; }
for n in "$@"; do
    case $n in
    [1-8]) ;;
    *) echo "experiments/run.sh: section '$n': expected 1 to 8" >&2; exit 2 ;;
    esac
done
snap=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-experiments.XXXXXX")
trap 'rm -rf "$snap"' EXIT
cp "$here"/*.sh "$here"/*.py "$snap"/ 2>/dev/null || cp "$here"/*.sh "$snap"/
export DT_ROOT=${DT_ROOT:-$(dirname "$here")}
for n in "$@"; do
    script=$(ls "$snap"/s"$n"_*.sh)
    t0=$(date +%s)
    echo "== section $n: $(basename "$script") ($(date -u '+%H:%M:%S UTC'))"
    SECTION=$n bash "$script"
    echo "== section $n: $(($(date +%s) - t0)) s"
done
