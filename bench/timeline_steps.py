"""Median step, forward and backward of dtrain timelines (log.timeline), per layer kind.

  python3 bench/timeline_steps.py [--skip K] A.json [B.json ...]

For each timeline (rank 0's spans), from step K on (default 3: the first steps pay page faults
and warm-up): the median over steps of the step's wall time (first span's start to last span's
end), of the forward and of the backward span, and of each layer kind's summed backward spans
(the kind: a layer's name without its block prefix, numeric parts and trailing digits, so
layer2.1.bn1 and bn1 count as bn, layer2.0.shortcut.0 as shortcut). One line per file, for interleaved A/B runs (bench/timeline_ab.sh).
"""

import argparse
import collections
import json
import re
import statistics


def kind_of(name):
    parts = [p for p in name.split(".") if not p.isdigit()]  # layer2.0.shortcut.0 -> shortcut
    k = re.sub(r"[0-9]+$", "", parts[-1]) if parts else ""
    return k or "(numbered)"


def summarize(path, skip):
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    lo = collections.defaultdict(lambda: float("inf"))
    hi = collections.defaultdict(float)
    per = collections.defaultdict(lambda: collections.defaultdict(float))
    for e in events:
        if e.get("ph") != "X" or e.get("pid") != 0:
            continue
        step = e.get("args", {}).get("step", -1)
        if step < skip:
            continue
        lo[step] = min(lo[step], e["ts"])
        hi[step] = max(hi[step], e["ts"] + e["dur"])
        cat, name = e.get("cat"), e["name"]
        if cat in ("forward", "backward") and name == cat:
            per[step][cat] += e["dur"]
        elif cat == "backward":
            per[step]["bwd:" + kind_of(name)] += e["dur"]
    steps = sorted(lo)
    if not steps:
        return "%s: no steps from %d on" % (path, skip)

    def med(values):
        return statistics.median(values) / 1000.0

    cols = ["step %.1f ms" % med([hi[s] - lo[s] for s in steps])]
    keys = sorted({k for s in steps for k in per[s]})
    for k in ["forward", "backward"] + [k for k in keys if k.startswith("bwd:")]:
        if k in keys:
            cols.append("%s %.2f" % (k, med([per[s][k] for s in steps])))
    return "%s (%d steps): %s" % (path, len(steps), ", ".join(cols))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip", type=int, default=3, help="steps left out at the start")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    for path in args.files:
        print(summarize(path, args.skip))


if __name__ == "__main__":
    main()
