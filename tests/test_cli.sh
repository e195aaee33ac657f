#!/bin/sh
# test_cli.sh - bad input at 2 ranks: each case must print ONE clear message naming the file or
# key and what was expected, make mpirun exit non-zero (every rank exits 1), finish within
# seconds (no rank left in a collective), and leave no core dump or MPI_ABORT noise.
# Also: --help, --version, and that the resolved configuration printed at start is a valid
# config file that reproduces the run bitwise.
# usage: sh tests/test_cli.sh [NP]
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_cli
. tests/lib.sh

# A data folder whose test split is damaged in one way; the train split links to the real files.
mkdata() { # name
    d="$TMP/$1"
    mkdir -p "$d/mnist"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte; do ln -s "$PWD/data/mnist/$f" "$d/mnist/$f"; done
    cp data/mnist/t10k-images-idx3-ubyte data/mnist/t10k-labels-idx1-ubyte "$d/mnist/"
    echo "$d"
}
# poke FILE OFFSET OCTAL-BYTES: overwrite bytes in place
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# expect_error NAME PATTERN ARGS...: `dtrain train ARGS` fails cleanly (expect_dtrain_error)
expect_error() {
    name=$1 pat=$2
    shift 2
    expect_dtrain_error "$name" "$pat" train --set train.progress=never "$@"
}

[ -x "$DT" ] || { echo "test_cli: $DT missing (make)" >&2; exit 1; }
[ -f data/mnist/train-images-idx3-ubyte ] || { echo "test_cli: data/mnist missing (make data)" >&2; exit 1; }

printf '[optim]\nlr = 0.1\nbogus = 3\n' > "$TMP/bad_key.ini"

# the bad-input cases run 4 at a time (each mostly waits on MPI start-up): lib.sh's par_begin
par_begin
# --- data files ---
expect_error "missing data file" "$TMP/nowhere/mnist/train-images-idx3-ubyte: cannot open: No such file" \
    --data-dir "$TMP/nowhere"

d=$(mkdata magic); poke "$d/mnist/t10k-images-idx3-ubyte" 0 '\000\000\010\004'
expect_error "wrong IDX magic" "$d/mnist/t10k-images-idx3-ubyte: not an IDX image file: expected magic 0x00000803" \
    --data-dir "$d"

d=$(mkdata lmagic); poke "$d/mnist/t10k-labels-idx1-ubyte" 3 '\003'
expect_error "wrong label magic" "t10k-labels-idx1-ubyte: not an IDX label file: expected magic 0x00000801" \
    --data-dir "$d"

d=$(mkdata trunc); head -c 1000000 data/mnist/t10k-images-idx3-ubyte > "$d/mnist/t10k-images-idx3-ubyte"
expect_error "truncated images" "t10k-images-idx3-ubyte: size 1000000 bytes, expected 7840016 .*truncated" \
    --data-dir "$d"

d=$(mkdata ltrunc); head -c 5000 data/mnist/t10k-labels-idx1-ubyte > "$d/mnist/t10k-labels-idx1-ubyte"
expect_error "truncated labels" "t10k-labels-idx1-ubyte: size 5000 bytes, expected 10008 .*truncated" \
    --data-dir "$d"

d=$(mkdata range); poke "$d/mnist/t10k-labels-idx1-ubyte" 13 '\012'
expect_error "label out of range" "t10k-labels-idx1-ubyte: label 10 of sample 5 is out of range: expected 0..9" \
    --data-dir "$d"

d=$(mkdata count); head -c 108 data/mnist/t10k-labels-idx1-ubyte > "$d/mnist/t10k-labels-idx1-ubyte"
poke "$d/mnist/t10k-labels-idx1-ubyte" 4 '\000\000\000\144'
expect_error "image/label count mismatch" "has 100 labels but .*t10k-images-idx3-ubyte has 10000 images: expected the same count" \
    --data-dir "$d"

: > "$TMP/empty"
d=$(mkdata emptyfile); : > "$d/mnist/t10k-images-idx3-ubyte"
expect_error "empty file" "t10k-images-idx3-ubyte: expected a non-empty regular file" --data-dir "$d"

# --- CIFAR-10 binary and HDF5 (small files in the exact formats) ---
MK=${BUILD:-build}/tests/tool_mkdata
"$MK" cifar "$TMP/cif" 20 10 || fail "tool_mkdata cifar"
head -c 30000 "$TMP/cif/cifar10/data_batch_3.bin" > "$TMP/cif/cifar10/x" && mv "$TMP/cif/cifar10/x" "$TMP/cif/cifar10/data_batch_3.bin"
expect_error "CIFAR file size" "data_batch_3.bin: .*3073" --data cifar10 --data-dir "$TMP/cif" --model lenet5
"$MK" cifar "$TMP/cif2" 20 10 || fail "tool_mkdata cifar"
rm "$TMP/cif2/cifar10/test_batch.bin"
expect_error "CIFAR missing file" "test_batch.bin" --data cifar10 --data-dir "$TMP/cif2" --model lenet5
"$MK" hdf5 "$TMP/tr.h5" 50 1 28 28 nchw u8 || fail "tool_mkdata hdf5"
expect_error "HDF5 missing dataset" "tr.h5.*pixels" --data hdf5 --set data.h5_train="$TMP/tr.h5" \
    --set data.h5_test="$TMP/tr.h5" --set data.h5_images=pixels
expect_error "HDF5 not an HDF5 file" "$TMP/bad_key.ini" --data hdf5 --set data.h5_train="$TMP/bad_key.ini" \
    --set data.h5_test="$TMP/tr.h5"
expect_error "HDF5 files not given" "data.name = hdf5 needs data.h5_train and data.h5_test" --data hdf5
expect_error "bad data.mean" "data.mean = '0.5,x': expected auto" --set data.mean=0.5,x

# --- models ---
expect_error "unknown model" "model: unknown model 'resnet1000': expected a built-in (cnn, lenet5, mlp" --model resnet1000
printf '[net]\ninput = 1x28x28\nclasses = 10\n[flatten]\n[conv9d]\n' > "$TMP/bad_kind.cfg"
expect_error "unknown layer kind" "bad_kind.cfg:5: unknown layer kind \[conv9d\]" --model "$TMP/bad_kind.cfg"
printf '[net]\ninput = 1x28x28\nclasses = 10\n[flatten]\n[linear]\nout = 10\nwidth = 3\n' > "$TMP/bad_key.cfg"
expect_error "unknown layer key" "bad_key.cfg:7: \[linear\] unknown key 'width': expected name, input, out, bias" --model "$TMP/bad_key.cfg"
printf '[net]\ninput = 1x28x28\nclasses = 10\n[flatten]\n[linear]\nout = 7\n' > "$TMP/bad_classes.cfg"
expect_error "wrong class count" "the last layer gives 7 values per sample, expected classes = 10" --model "$TMP/bad_classes.cfg"
printf '[net]\ninput = 1x28x28\nclasses = 7\n[flatten]\n[linear]\nout = 7\n' > "$TMP/bad_classes2.cfg"
expect_error "class count mismatch" "model bad_classes2 has 7 classes but dataset mnist has 10" --model "$TMP/bad_classes2.cfg"
printf '[net]\ninput = 1x28x28\nclasses = 10\n[flatten]\n[linear]\nout = 10\ninput = fc9\n' > "$TMP/bad_ref.cfg"
expect_error "unknown input reference" "bad_ref.cfg:5: input = fc9: no earlier layer has that name" --model "$TMP/bad_ref.cfg"
printf 'out = 10\n' | cat - models/mlp.cfg > "$TMP/key_first.cfg"
expect_error "key before the first section" "key_first.cfg:1: key 'out' outside a section" --model "$TMP/key_first.cfg"
expect_error "missing model file" "$TMP/none.cfg: cannot open" --model "$TMP/none.cfg"

# --- configuration ---
expect_error "unknown --set key" "--set: unknown key 'optim.lrr'" --set optim.lrr=0.1
expect_error "malformed number" "--lr: optim.lr = 'fast': expected default, auto or a number in \[0, 1e+06\]" --lr fast
expect_error "out-of-range value" "optim.momentum = '1.5': expected auto or a number in \[0, 1)" --momentum 1.5
expect_error "negative lr" "optim.lr = '-0.1': expected default, auto or a number" --lr=-0.1
expect_error "bad integer" "train.epochs = '2.5': expected an integer" --epochs 2.5
expect_error "bad enum" "data.name = 'imagenet': expected one of mnist|fashion-mnist" --data imagenet
expect_error "bad bool" "optim.nesterov = 'maybe': expected true or false" --set optim.nesterov=maybe
expect_error "bad precision" "train.precision = 'fp8': expected one of fp32|bf16|fp16" --set train.precision=fp8
expect_error "bad loss scale" "train.loss_scale = 'big': expected auto, dynamic, off or a number in (0, 1e30\]" --set train.loss_scale=big
expect_error "zero loss scale" "train.loss_scale = '0': expected auto, dynamic, off or a number" --set train.loss_scale=0
expect_error "unknown optimizer" "optim.name = 'adamax': expected one of sgd|adagrad" --optim adamax
expect_error "unknown scheduler" "sched.kind = 'linear': expected one of constant|step" --sched linear
expect_error "beta outside [0,1)" "optim.beta1 = '1': expected a number in \[0, 1)" --optim adam --set optim.beta1=1
expect_error "T_mult < 1" "sched.t_mult = '0': expected an integer in \[1, 1000000\]" \
    --sched cosine_restarts --set sched.t_0=10 --set sched.t_mult=0
# every schedule's error names the schedule
expect_error "onecycle without max_lr" "sched onecycle: max_lr is required: set sched.max_lr" --sched onecycle
expect_error "cyclic without max_lr" "sched cyclic: max_lr is required" --sched cyclic
expect_error "step without step_size" "sched step: step_size = 0: expected an integer >= 1" --sched step
expect_error "cosine_restarts without t_0" "sched cosine_restarts: t_0 = 0" --sched cosine_restarts
expect_error "max_lr = auto off onecycle" "sched.max_lr = auto: the LR range test sets onecycle's peak lr; sched.kind = cyclic" \
    --sched cyclic --set sched.max_lr=auto
expect_error "cyclic momentum on adagrad" "sched.cycle_momentum: optim.name = adagrad has no momentum" \
    --optim adagrad --sched cyclic --set sched.max_lr=0.1
expect_error "resume auto without ckpt.dir" "ckpt.resume = auto needs ckpt.dir" --resume auto
expect_error "nesterov without momentum" "optim.nesterov = true requires optim.momentum > 0" \
    --set optim.nesterov=true --momentum 0
expect_error "unknown option" "unknown option '--learning-rate'" --learning-rate 0.1
expect_error "missing config file" "$TMP/nope.ini: cannot open" -c "$TMP/nope.ini"
expect_error "unknown key in config file" "bad_key.ini:3: unknown key 'optim.bogus'" -c "$TMP/bad_key.ini"
printf '[optim]\nlr 0.1\n' > "$TMP/bad_line.ini"
expect_error "malformed config line" "bad_line.ini:2: expected 'key = value'" -c "$TMP/bad_line.ini"
printf '[train]\nbatch_size = 0\n' > "$TMP/bad_val.ini"
expect_error "out-of-range value in config file" "bad_val.ini:2: train.batch_size = '0': expected an integer in \[1, 65536\]" -c "$TMP/bad_val.ini"

par_end

# --- help and version ---
if $DT --help | grep -q 'optim.lr' && $DT --version | grep -q '^dtrain '; then pass; else fail "--help/--version"; fi
$DT frobnicate > /dev/null 2> "$TMP/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "unknown command 'frobnicate': expected train, eval, schedule, lr-find or inspect" "$TMP/err"; then pass; else fail "unknown command"; fi
# each command's own usage and examples, however asked
for c in train eval inspect schedule lr-find; do
    for form in "$c --help" "$c -h" "help $c"; do
        $DT $form > "$TMP/help" 2>&1; rc=$?
        if [ $rc -eq 0 ] && head -n 1 "$TMP/help" | grep -q "^usage: .*dtrain $c" && grep -q '^examples\?:' "$TMP/help"; then
            pass
        else
            fail "'dtrain $form': exit $rc, no own usage line or examples:"; head -n 3 "$TMP/help" >&2
        fi
    done
done
$DT train --help | grep -q -- '--print-config' && ! $DT inspect --help | grep -q 'optim.lr' && pass ||
    fail "train --help lacks --print-config, or inspect --help lists the training keys"
# --help's default and bounds of a key come from the table: what it says is what the parser does
help_of() { $DT --help | grep -A1 "^  $1 " | tail -n 1; }
if help_of sched.t_mult | grep -q 'default 1; an integer in \[1, 1000000\]' &&
    help_of sched.total_iters | grep -q 'default 0; an integer in \[0,' &&
    help_of optim.momentum | grep -q 'default auto; auto or a number in \[0, 1)'; then
    pass
else
    fail "--help: t_mult '$(help_of sched.t_mult)', total_iters '$(help_of sched.total_iters)'"
fi
# every key's printed default is accepted by the parser: --set KEY=DEFAULT for all of them
sets=$($DT --help | awk '/^  [a-z_]+(\.[a-z_0-9]+)? / { k = $1 } /^ +default / { d = $2; sub(/;$/, "", d); print "--set " k "=" d }')
if [ -n "$sets" ] && $DT train $sets --print-config > /dev/null 2> "$TMP/err"; then pass; else fail "a printed default is rejected: $(cat "$TMP/err")"; fi

# --- silent traps ---
run() { timeout_dump 120 mpirun -np "$NP" $DT_MPIRUN_FLAGS $DT train --set train.progress=never "$@"; }
small="--epochs 1 --set data.limit_train=3000 --set data.limit_test=500"
# a key the optimizer / schedule / SWA mode does not read: one warning naming it, on rank 0 only
run $small --optim adamw --momentum 0.9 --set sched.t_0=7 --set swa.ema_decay=0.9 > "$TMP/w.out" 2> "$TMP/w.err"; rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c 'dtrain: warning: optim.momentum = 0.9 is ignored: optim.name = adamw does not read it' "$TMP/w.err")" = 1 ] &&
    grep -q 'dtrain: warning: sched.t_0 = 7 is ignored: sched.kind = cosine' "$TMP/w.err" &&
    grep -q 'dtrain: warning: swa.ema_decay = 0.9 is ignored: swa.mode = off' "$TMP/w.err" &&
    [ "$(grep -c 'warning' "$TMP/w.err")" = 3 ]; then
    pass
else
    fail "ignored-key warnings (exit $rc):"; cat "$TMP/w.err" >&2
fi
# ... and none for keys left at their defaults or read by the choice
run $small --optim sgd --momentum 0.8 > "$TMP/w.out" 2> "$TMP/w.err"
grep -q 'warning' "$TMP/w.err" && fail "warnings for keys that are read: $(cat "$TMP/w.err")" || pass
# polynomial decays over the whole run (PyTorch's total_iters = 5 would end learning at step 5)
$DT schedule --sched polynomial --samples 6400 --epochs 2 > "$TMP/poly" 2>&1
lr50=$(awk '$1 == 100 { print $3 }' "$TMP/poly") lr200=$(awk '$1 == 200 { print $3 }' "$TMP/poly")
if awk -v a="$lr50" -v b="$lr200" 'BEGIN { exit !(a > 0.0245 && a < 0.0255 && b > 0 && b < 0.001) }'; then
    pass "polynomial: lr 0.05 -> $lr50 at step 100 of 200 -> $lr200 at its last step"
else
    fail "polynomial schedule: step 100 lr '$lr50', step 200 lr '$lr200'"
fi

# --- the header is short; the full configuration is printed with --print-config and in log.dir ---
run $small --set log.dir="$TMP/log" > "$TMP/h.out" 2>&1
n=$(sed '/^epoch /,$d' "$TMP/h.out" | wc -l)
if [ "$n" -le 10 ] && grep -q '^# dtrain .*: [0-9]* ranks\? x [0-9]* threads\?, global batch' "$TMP/h.out" &&
    grep -q '^# kernels: ' "$TMP/h.out" && grep -q '^model mlp (.*parameters$' "$TMP/h.out" &&
    grep -q '^data mnist: 3000 train, 500 test' "$TMP/h.out" && grep -q '^optim sgd: lr 0.05' "$TMP/h.out" &&
    grep -q '^sched cosine' "$TMP/h.out" && grep -q "^run: 1 epoch, precision fp32, logs $TMP/log" "$TMP/h.out" &&
    [ -s "$TMP/log/config.ini" ]; then
    pass "header: $n lines"
else
    fail "header ($n lines before the first epoch):"; cat "$TMP/h.out" >&2
fi

# --- the live bar on a terminal (a pty from script(1)); line-oriented output into a pipe ---
if command -v script > /dev/null; then
    script -qc "timeout -k 5 120 mpirun -np $NP $DT_MPIRUN_FLAGS $DT train $small --set data.limit_train=6400" /dev/null > "$TMP/pty.out" 2>&1
    tr '\r' '\n' < "$TMP/pty.out" | sed 's/\x1b\[K//g' > "$TMP/pty.lines"
    nb=$(( (6400 / NP + 63) / 64 ))
    bar='^epoch 1/1 \[[=> ]*\] [0-9]*/'$nb' [0-9][0-9]:[0-9][0-9]<[0-9][0-9]:[0-9][0-9] loss [0-9]*\.[0-9]\{4\} lr [0-9.e+-]* [0-9]* samples/s$'
    if grep -q "$bar" "$TMP/pty.lines" && grep -q "^epoch 1/1 \[==========\] $nb/$nb " "$TMP/pty.lines" &&
        grep -q '^eval \[==========\] 100% ' "$TMP/pty.lines" && grep -q '^epoch 1/1  train_loss' "$TMP/pty.lines" &&
        grep -q '^final: ' "$TMP/pty.lines"; then
        pass "bar: $(grep "$bar" "$TMP/pty.lines" | tail -n 1)"
    else
        fail "no bar with step n/$nb, elapsed<ETA, loss, lr and samples/s, or no eval bar, on a terminal:"; head -c 2000 "$TMP/pty.lines" >&2
    fi
else
    echo "  skipped: the progress bar on a pty (no script(1))"
fi
run $small --set train.progress=auto 2>&1 | cat > "$TMP/pipe.out"
if [ "$(grep -c '^epoch 1/1  train_loss' "$TMP/pipe.out")" = 1 ] && ! grep -q "$(printf '\r')" "$TMP/pipe.out"; then
    pass
else
    fail "into a pipe: expected one line per epoch and no carriage return"
fi

# --- the printed configuration is a config file that reproduces the run bitwise ---
$DT train $small --lr 0.07 --seed 3 --print-config > "$TMP/resolved.ini" 2>&1
$DT train -c "$TMP/resolved.ini" --print-config > "$TMP/resolved2.ini" 2>&1
cmp -s "$TMP/resolved.ini" "$TMP/resolved2.ini" && pass || fail "--print-config, read back with -c and printed again, differs"
grep -v '^#' "$TMP/log/config.ini" > "$TMP/logcfg.ini"
$DT train --set train.progress=never $small --set log.dir="$TMP/log" --print-config > "$TMP/resolved3.ini"
cmp -s "$TMP/logcfg.ini" "$TMP/resolved3.ini" && pass || fail "log.dir/config.ini differs from --print-config"
run $small --lr 0.07 --seed 3 > "$TMP/a" 2>&1
rca=$?
run -c "$TMP/resolved.ini" > "$TMP/b" 2>&1
rcb=$?
strip() { grep '^final:' "$1" | sed 's/ samples_per_s=.*//'; }
if [ -n "$(strip "$TMP/a")" ] && [ "$(strip "$TMP/a")" = "$(strip "$TMP/b")" ] && grep -q '^lr = 0.07$' "$TMP/resolved.ini"; then
    pass
else
    fail "resolved config round trip: '$(strip "$TMP/a")' (exit $rca) vs '$(strip "$TMP/b")' (exit $rcb); the second run's last lines:"
    tail -n 150 "$TMP/b" >&2
fi
# a file that lists every key warns of none the choice does not read; one changed in it, and one
# typed on the command line, are named
grep -q 'warning' "$TMP/b" && fail "warnings for the printed configuration read back: $(grep warning "$TMP/b")" || pass
sed 's/^rho = .*/rho = 0.8/' "$TMP/resolved.ini" > "$TMP/edited.ini"
$DT train -c "$TMP/edited.ini" --set sched.t_0=3 --set train.max_steps=1 > "$TMP/e.out" 2> "$TMP/e.err"
if [ "$(grep -c warning "$TMP/e.err")" = 2 ] &&
    grep -q '^dtrain: warning: optim.rho = 0.8 is ignored: optim.name = sgd does not read it' "$TMP/e.err" &&
    grep -q '^dtrain: warning: sched.t_0 = 3 is ignored: sched.kind = cosine' "$TMP/e.err"; then
    pass
else
    fail "a config file's changed key and a typed one, both ignored: expected 2 warnings:"
    cat "$TMP/e.err" >&2
fi

# --- runs started without mpirun (Open MPI singletons) each have their own session directory ---
# (Open MPI names every isolated singleton [[0,1],0]: in one shared directory, the first to finish
# removed it under the others' MPI_Init, 2 starts in about 1,600 with 4 at a time)
mkdir -p "$TMP/tmpdir"
one="--set train.progress=never --set data.limit_train=256 --set data.limit_test=64 --epochs 1"
env -u OMPI_MCA_orte_tmpdir_base TMPDIR="$TMP/tmpdir" $DT train $one --epochs 300 > "$TMP/s.out" 2>&1 &
spid=$!
sdir="$TMP/tmpdir/ompi.$(hostname).$(id -u).dtrain-$spid"
i=0
while [ ! -d "$sdir" ] && [ $i -lt 100 ] && kill -0 $spid 2> /dev/null; do
    sleep 0.1
    i=$((i + 1))
done
[ -d "$sdir" ] && seen=1 || seen=0
wait $spid
src=$?
if [ $seen = 1 ] && [ $src = 0 ] && [ -z "$(ls -A "$TMP/tmpdir")" ]; then
    pass "a singleton's session directory: TMPDIR/ompi.HOST.UID.dtrain-PID, removed at the end"
else
    fail "singleton session directory $sdir: seen $seen, exit $src, left in TMPDIR: $(ls -A "$TMP/tmpdir")"
fi
bad=0
for round in 1 2 3 4 5 6 7 8; do
    for k in 1 2 3 4; do env -u OMPI_MCA_orte_tmpdir_base TMPDIR="$TMP/tmpdir" $DT train $one > "$TMP/s$k.out" 2>&1 & done
    wait
    for k in 1 2 3 4; do grep -q '^final: ' "$TMP/s$k.out" || { bad=$((bad + 1)); tail -n 5 "$TMP/s$k.out" >&2; }; done
done
[ $bad = 0 ] && [ -z "$(ls -A "$TMP/tmpdir")" ] && pass "32 singletons, 4 at a time: all trained, no session directory left" ||
    fail "singletons 4 at a time: $bad of 32 did not finish; left in TMPDIR: $(ls -A "$TMP/tmpdir")"

echo "test_cli ($NP ranks): $passed passed, $failed failed"
[ $failed -eq 0 ]
