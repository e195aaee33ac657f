"""PyTorch reference for `dtrain train --model mlp` (bench/run.sh runs it; see bench/README.md).

Trains the same 784-512-256-10 ReLU MLP (models/mlp.cfg) the same way dtrain does on one rank:
nn.Linear default init after torch.manual_seed(seed), SGD (momentum 0.9, dampening 0, no weight
decay), CrossEntropyLoss (batch mean), per-step cosine LR from --lr to 0 over the whole run, a fresh
permutation every epoch from a torch.Generator seeded with seed + epoch, the last partial batch
kept. MNIST is read from the IDX files with numpy, held as one uint8 tensor and normalized per batch
((x / 255 - 0.1307) / 0.3081), as dtrain does.

Timing covers exactly what dtrain's samples_per_s covers: every training step of every epoch
(per-batch gather + normalize, forward, loss, backward, optimizer step, LR update, loss.item()),
nothing of the evaluation. It starts at step 0 with no warm-up, since dtrain has none either;
samples_per_s_excl20 additionally leaves out the first 20 steps of the first epoch (a steady-state
figure, for reference only).

The last line of output is machine readable:
  torch: epochs=E steps=S train_loss=... test_loss=... test_acc=... samples_per_s=...
         samples_per_s_excl20=... train_s=... max_rss_mib=...   (one line)
"""

import argparse
import ctypes
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.1307, 0.3081
WARMUP_EXCL = 20


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 512)
        self.fc2 = nn.Linear(512, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def load_idx(path):
    """An IDX file (big-endian header, unsigned-byte payload) as a numpy uint8 array."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"torch_mlp: {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    if len(raw) - off != int(np.prod(dims)):
        sys.exit(f"torch_mlp: {path}: size does not match its header {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load_split(data_dir, prefix):
    images = load_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = load_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.reshape(len(images), -1).copy())  # uint8, N x 784
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def normalize(xb):
    return xb.to(torch.float32).div_(255.0).sub_(MEAN).div_(STD)


def blas_report():
    """The BLAS libraries mapped into this process and, for OpenBLAS, its core type."""
    libs = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and "blas" in os.path.basename(parts[5]).lower():
                if parts[5] not in libs:
                    libs.append(parts[5])
    core = None
    for lib in libs:
        try:
            h = ctypes.CDLL(lib)
            fn = h.openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        core = fn().decode()
        break
    return libs, core


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="data/mnist")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)

    xtr, ytr = load_split(args.data_dir, "train")
    xte, yte = load_split(args.data_dir, "t10k")
    model = MLP()
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

    n, B = len(xtr), args.batch_size
    steps_per_epoch = (n + B - 1) // B
    total_steps = args.epochs * steps_per_epoch
    step, samples, epoch_s = 0, 0, []
    t_excl_start, samples_excl_start, excl_s = None, 0, 0.0
    train_loss = float("nan")
    model.train()
    for epoch in range(args.epochs):
        g = torch.Generator()
        g.manual_seed(args.seed + epoch)
        perm = torch.randperm(n, generator=g)
        loss_sum, seen = 0.0, 0
        t0 = time.perf_counter()
        for b in range(steps_per_epoch):
            idx = perm[b * B:(b + 1) * B]
            x = normalize(xtr[idx])
            y = ytr[idx]
            lr = 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total_steps))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x), y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            step += 1
            if step == WARMUP_EXCL:
                t_excl_start, samples_excl_start = time.perf_counter(), samples + seen
        t1 = time.perf_counter()
        epoch_s.append(t1 - t0)
        if t_excl_start is not None:
            excl_s += t1 - max(t0, t_excl_start)
        samples += seen
        train_loss = loss_sum / seen
        print(f"epoch {epoch + 1}/{args.epochs}  train_loss {train_loss:.4f}  "
              f"samples/s {seen / (t1 - t0):.0f}  time {t1 - t0:.1f}s", flush=True)
    train_s = sum(epoch_s)
    excl_rate = (samples - samples_excl_start) / excl_s if excl_s > 0 else float("nan")

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for lo in range(0, len(xte), 1000):
            out = model(normalize(xte[lo:lo + 1000]))
            yb = yte[lo:lo + 1000]
            loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    test_loss, test_acc = loss_sum / len(xte), 100.0 * correct / len(xte)

    libs, core = blas_report()
    print(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
          f"BLAS {' '.join(libs) or 'none mapped'}, OpenBLAS core {core or 'n/a'}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(f"torch: epochs={args.epochs} steps={step} train_loss={train_loss:.4f} "
          f"test_loss={test_loss:.4f} test_acc={test_acc:.2f} samples_per_s={samples / train_s:.0f} "
          f"samples_per_s_excl20={excl_rate:.0f} train_s={train_s:.2f} max_rss_mib={rss:.0f} "
          f"openblas_core={core or 'n/a'}", flush=True)


if __name__ == "__main__":
    main()
