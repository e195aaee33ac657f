"""Where a dtrain training step spends its time, from `perf script` output with call chains.

  perf record --call-graph dwarf -o X.data ./dtrain train ...
  perf script -i X.data -F ip,sym,dso | python3 bench/perf_layers.py [--title T]

Keeps the samples taken inside dt_trainer_step (the timed training step: evaluation, start-up and
data set loading are left out) and prints two tables, in percent of those samples:
  - by layer: the innermost layer-level function on the stack (conv_forward, bn_backward,
    linear_forward, ..., loss, optimizer step, batch gather, allreduce);
  - by kernel: what the sampled instruction was doing (the sgemm micro-kernel; OpenBLAS packing and
    beta scaling; im2col/col2im and the NCHW <-> (C, N*HW) layout copies of conv.c, with the
    copy_floats/memset they call; other libc memset/memcpy; the OS kernel (page faults); other
    code, named by function).
Frame-pointer call chains (perf record -g) are not enough: dtrain and OpenBLAS are built without
frame pointers, so use --call-graph dwarf. bench/run.sh runs this with BENCH_PROFILE=1.
"""

import argparse
import collections
import re
import sys

LAYER_FUNCS = {
    "conv_forward": "conv forward", "conv_backward": "conv backward",
    "linear_forward": "linear forward", "linear_backward": "linear backward",
    "bn_forward": "batchnorm forward", "bn_backward": "batchnorm backward",
    "relu_forward": "relu forward", "relu_backward": "relu backward",
    "maxpool_forward": "maxpool forward", "maxpool_backward": "maxpool backward",
    "avgpool_forward": "avgpool forward", "avgpool_backward": "avgpool backward",
    "gap_forward": "global avg pool forward", "gap_backward": "global avg pool backward",
    "add_forward": "residual add forward", "add_backward": "residual add backward",
    "dropout_forward": "dropout forward", "dropout_backward": "dropout backward",
    "scale_forward": "scale forward", "scale_backward": "scale backward",
    "dt_relu_forward": "relu forward", "dt_relu_backward": "relu backward",
}
# name patterns (checked on every frame, innermost first) for the work outside the layers
STEP_PARTS = [
    (re.compile(r"xent|softmax|cross_entropy"), "loss (softmax cross-entropy)"),
    (re.compile(r"^sgd_|optim_step|^dt_optim"), "optimizer step"),
    (re.compile(r"dataset_gather|^dt_batch|augment"), "batch gather + normalize"),
    (re.compile(r"^MPI_|^ompi_|^mca_|^opal_|^dt_dist"), "MPI (allreduce, control)"),
]


def kernel_category(names, dsos):
    """What the sampled instruction was doing; names/dsos: the whole stack, innermost first."""
    helper = None  # a generic copy / memset: charged to the conv.c routine that called it, if any
    for n, dso in zip(names, dsos):
        n = re.sub(r"\.(avx2|fma|avx512f|default)$", "", n)
        if n.startswith("sgemm_kernel"):
            return "sgemm micro-kernel"
        if re.match(r"sgemm_(i|o)[nt]copy|sgemm_beta", n):
            return "OpenBLAS packing + beta"
        if "libopenblas" in dso:
            return "OpenBLAS other"
        if "kernel.kallsyms" in dso:
            return "OS kernel (page faults, syscalls)"
        if n in ("im2col", "col2im", "make_col"):
            return "im2col / col2im"
        if n in ("scatter_planes", "gather_planes"):
            return "layout copies (scatter/gather_planes)"
        if n == "copy_floats" or n.startswith("__mem") or n in ("memset", "memcpy", "memmove"):
            helper = helper or ("copy_floats" if n == "copy_floats" else "libc memset/memcpy")
            continue
        if helper is None:
            return n + " (" + dso.split("/")[-1] + ")"
        if n in LAYER_FUNCS or n.startswith("dt_net_") or n == "dt_trainer_step":
            break
    return helper or "other"


def parse(stream):
    frame_re = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$")
    cur = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                yield cur
                cur = []
            continue
        m = frame_re.match(line)
        if not m:
            continue
        sym, dso = m.group(1), m.group(2)
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        cur.append((sym, dso))
    if cur:
        yield cur


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--title", default="")
    ap.add_argument("--limit", type=float, default=0.5, help="hide rows below this percent")
    args = ap.parse_args()

    by_layer, by_kernel, by_pair = collections.Counter(), collections.Counter(), collections.Counter()
    total = step = 0
    for stack in parse(sys.stdin):
        total += 1
        names = [re.sub(r"\.(avx2|fma|avx512f|default)$", "", re.sub(r" \(inlined\)$", "", s))
                 for s, _ in stack]
        if "dt_trainer_step" not in names:
            continue
        step += 1
        kc = kernel_category(names, [d for _, d in stack])
        layer = None
        for n in names:
            if n in LAYER_FUNCS:
                layer = LAYER_FUNCS[n]
                break
            for rx, label in STEP_PARTS:
                if rx.search(n):
                    layer = label
                    break
            if layer:
                break
        layer = layer or "other (in dt_trainer_step)"
        by_layer[layer] += 1
        by_kernel[kc] += 1
        by_pair[(layer, kc)] += 1
    if step == 0:
        sys.exit("perf_layers: no sample inside dt_trainer_step (recorded with --call-graph dwarf?)")
    title = f" {args.title}" if args.title else ""
    print(f"=={title}: {step} of {total} samples in dt_trainer_step (the timed training step)")
    print("  by layer                                   %   (top kernels inside)")
    for layer, c in by_layer.most_common():
        pct = 100.0 * c / step
        if pct < args.limit:
            continue
        inner = [(kc, n) for (l, kc), n in by_pair.items() if l == layer]
        inner.sort(key=lambda x: -x[1])
        detail = ", ".join(f"{kc} {100.0 * n / step:.1f}" for kc, n in inner[:3]
                           if 100.0 * n / step >= args.limit)
        print(f"  {layer:<38} {pct:5.1f}   ({detail})")
    print("  by kernel                                  %")
    for kc, c in by_kernel.most_common():
        pct = 100.0 * c / step
        if pct >= args.limit:
            print(f"  {kc:<38} {pct:5.1f}")


if __name__ == "__main__":
    main()
