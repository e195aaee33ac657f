#!/bin/sh
# test_bench_build.sh - the benchmark's C programs (bench/*.c, which `make bench` compiles with the
# Makefile's compiler and flags, not `make all`) still compile, warning-free, against the
# runtime's headers: a kernel entry point whose signature changed breaks them long before the
# next `make bench` (bench/conv_bench.h once called dt_bf16conv_backward with its old
# arguments). Each program is compiled with -fsyntax-only -Werror; bench/conv_onednn.c only where
# oneDNN's header is installed (libdnnl-dev, as bench/convs.sh installs it).
# usage: sh tests/test_bench_build.sh
set -u
cd "$(dirname "$0")/.." || exit 1
T=test_bench_build
. tests/lib.sh

# the Makefile's compiler and CFLAGS, read by make itself (as bench/convs.sh)
# shellcheck disable=SC2016
ccflags=$(printf 'bench-print-flags:\n\t@echo $(CC) $(CFLAGS) -MF /dev/null\n' |
    make -s --no-print-directory -f Makefile -f - bench-print-flags 2>/dev/null)
[ -n "$ccflags" ] || die "could not read the Makefile's CFLAGS"

for src in bench/*.c; do
    case $src in
    bench/conv_onednn.c)
        if ! [ -f /usr/include/oneapi/dnnl/dnnl.h ] && ! [ -f /usr/include/dnnl.h ]; then
            echo "  skipped $src: oneDNN's header is not installed (libdnnl-dev)"
            continue
        fi ;;
    esac
    # sgemm_rate.c includes cblas.h, found as bench/run.sh finds it
    # shellcheck disable=SC2086
    if $ccflags -Werror -fsyntax-only $(pkg-config --cflags openblas 2>/dev/null) "$src" \
        > "$TMP/cc.log" 2>&1; then
        pass "$src compiles"
    else
        fail "$src does not compile with the Makefile's flags and -Werror:"
        head -n 20 "$TMP/cc.log" >&2
    fi
done
summary
