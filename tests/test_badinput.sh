#!/bin/sh
# test_badinput.sh - hostile model files and non-regular files (issue 16): each case must print
# ONE "dtrain: error: FILE:LINE: ..." naming what was expected, exit non-zero on every rank,
# never crash, abort or block.
# usage: sh tests/test_badinput.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_badinput
. tests/lib.sh

[ -x "$DT" ] || { echo "$T: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "$T: data/mnist missing (make data)" >&2; exit 1; }

expect_error() {
    name=$1 pat=$2
    shift 2
    expect_dtrain_error "$name" "$pat" train --set train.progress=never --epochs 1 \
        --set data.limit_train=64 --set data.limit_test=64 "$@"
}
NET='[net]\ninput = 1x28x28\nclasses = 10\n'
# model NAME TEXT: writes $TMP/NAME.cfg from printf-style TEXT
model() { printf "$2" > "$TMP/$1.cfg"; }

# the cases run 4 at a time (each mostly waits on MPI start-up): lib.sh's par_begin
par_begin
# --- model files ---
model key_first 'out = 10\n[net]\ninput = 1x28x28\nclasses = 10\n[flatten]\n[linear]\nout = 10\n'
expect_error "key before any section" "key_first.cfg:1: key 'out' outside a section" --model "$TMP/key_first.cfg"
model empty ''
expect_error "empty model file" "empty.cfg:1: empty model description: expected a \[net\] section" --model "$TMP/empty.cfg"
model nolayers "$NET"
expect_error "no layers" "nolayers.cfg:3: end of file: the model has no layers" --model "$TMP/nolayers.cfg"
model dupkey "$NET[flatten]\n[linear]\nout = 10\nout = 10\n"
expect_error "duplicate key" "dupkey.cfg:7: \[linear\] key 'out' given twice (first at line 6)" --model "$TMP/dupkey.cfg"
model dupnet "$NET[net]\n"
expect_error "second [net]" "dupnet.cfg:4: \[net\] must come once" --model "$TMP/dupnet.cfg"
model dupname "$NET[flatten]\nname = a\n[linear]\nname = a\nout = 10\n"
expect_error "duplicate layer name" "dupname.cfg:7: duplicate layer name 'a'" --model "$TMP/dupname.cfg"
model later "$NET[flatten]\n[linear]\nout = 10\ninput = fc\n[linear]\nname = fc\nout = 10\n"
expect_error "reference to a later layer" "later.cfg:5: input = fc: no earlier layer has that name" --model "$TMP/later.cfg"
model self "$NET[flatten]\n[linear]\nname = fc\nout = 10\ninput = fc\n"
expect_error "reference to itself (a cycle)" "self.cfg:5: input = fc: no earlier layer" --model "$TMP/self.cfg"
model back "$NET[add]\nfrom = -1\n[flatten]\n[linear]\nout = 10\n"
expect_error "from = -1 on the first layer" "back.cfg:4: from = -1: the first layer has no earlier layer" --model "$TMP/back.cfg"
model zero "$NET[flatten]\n[linear]\nout = 0\n"
expect_error "zero size" "zero.cfg:6: \[linear\] out = '0': expected an integer in \[1, 16777216\]" --model "$TMP/zero.cfg"
model neg "$NET[conv]\nout = -4\n[flatten]\n[linear]\nout = 10\n"
expect_error "negative size" "neg.cfg:5: \[conv\] out = '-4': expected an integer in \[1, 1048576\]" --model "$TMP/neg.cfg"
model stride0 "$NET[conv]\nout = 4\nstride = 0\n[flatten]\n[linear]\nout = 10\n"
expect_error "stride 0" "stride0.cfg:6: \[conv\] stride = '0': expected an integer in \[1, 64\]" --model "$TMP/stride0.cfg"
model bigk "$NET[conv]\nout = 4\nkernel = 40\npad = 5\n[flatten]\n[linear]\nout = 10\n"
expect_error "kernel larger than the padded input" "bigk.cfg:4: \[conv\] kernel 40 with pad 5 does not fit the 28x28 input" --model "$TMP/bigk.cfg"
model huge "$NET[flatten]\n[linear]\nout = 16777216\n"
expect_error "parameter count beyond the limit" "huge.cfg:5: \[linear\] brings the parameter count to 13170114560: expected at most 268435456" --model "$TMP/huge.cfg"
model u64 "$NET[flatten]\n[linear]\nout = 18446744073709551616\n"
expect_error "2^64" "u64.cfg:6: \[linear\] out = '18446744073709551616': expected an integer in \[1, 16777216\]" --model "$TMP/u64.cfg"
model wide "$NET[conv]\nout = 1048576\n[flatten]\n[linear]\nout = 10\n"
expect_error "activation beyond the limit" "wide.cfg:4: \[conv\] output 1048576x26x26 at batch 64 is too large: expected fewer than 2147483648" --model "$TMP/wide.cfg"
printf '[net]\ninput = 1x28x28\n\001\002\003garbage\n' > "$TMP/binary.cfg"
expect_error "binary garbage" "binary.cfg:3: control byte 0x01 in column 1: expected a text file" --model "$TMP/binary.cfg"
head -c 3000 build/libdtrain.a > "$TMP/nul.cfg" 2>/dev/null || head -c 3000 "$DT" > "$TMP/nul.cfg"
expect_error "NUL bytes" "nul.cfg: expected a text file, found NUL bytes" --model "$TMP/nul.cfg"

# --- non-regular files: refused by name, without blocking ---
mkfifo "$TMP/fifo.cfg"
expect_error "FIFO as the model file" "fifo.cfg: is a FIFO: expected a regular file" --model "$TMP/fifo.cfg"
expect_error "FIFO as the config file" "fifo.cfg: is a FIFO: expected a regular file" -c "$TMP/fifo.cfg"
mkdir "$TMP/dir.cfg"
expect_error "directory as the model file" "dir.cfg: is a directory: expected a regular file" --model "$TMP/dir.cfg"
expect_error "device as the config file" "/dev/null: is a character device: expected a regular file" -c /dev/null
d="$TMP/fifodata"
mkdir -p "$d/mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-labels-idx1-ubyte; do ln -s "$PWD/data/mnist/$f" "$d/mnist/$f"; done
mkfifo "$d/mnist/t10k-images-idx3-ubyte"
expect_error "FIFO as an IDX file" "t10k-images-idx3-ubyte: is a FIFO: expected a regular file (an IDX file)" --data-dir "$d"
MK=${BUILD:-build}/tests/tool_mkdata
"$MK" cifar "$TMP/cif" 20 10 > /dev/null || fail "tool_mkdata cifar"
rm "$TMP/cif/cifar10/test_batch.bin" && mkfifo "$TMP/cif/cifar10/test_batch.bin"
expect_error "FIFO as a CIFAR file" "test_batch.bin: is a FIFO: expected a regular file (a CIFAR-10" --data cifar10 --data-dir "$TMP/cif" --model lenet5
"$MK" hdf5 "$TMP/tr.h5" 50 1 28 28 nchw u8 > /dev/null || fail "tool_mkdata hdf5"
mkfifo "$TMP/te.h5"
expect_error "FIFO as an HDF5 file" "te.h5: is a FIFO: expected a regular file (an HDF5 file)" --data hdf5 \
    --set data.h5_train="$TMP/tr.h5" --set data.h5_test="$TMP/te.h5"

par_end
echo "$T ($NP ranks): $passed passed, $failed failed"
[ $failed -eq 0 ]
