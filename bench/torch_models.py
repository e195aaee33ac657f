"""PyTorch reference for `dtrain train --model M` on one rank (bench/run.sh runs it; bench/README.md).

Models: the PyTorch module given in the header comment of models/M.cfg, for mlp, lenet5, cnn
(MNIST, 1x28x28), resnet20 and resnet9 (CIFAR-10 binary files, 3x32x32). The training is dtrain's on one
rank: default module init after torch.manual_seed(seed) (dtrain reproduces it), SGD (momentum 0.9,
dampening 0, no weight decay), CrossEntropyLoss (batch mean), per-step cosine LR from --lr to 0 over
the run (min(epochs * steps_per_epoch, max_steps) steps), a fresh permutation every epoch from a
torch.Generator seeded with seed + epoch, the last partial batch kept, the first --limit-train /
--limit-test samples when given (dtrain's data.limit_train / data.limit_test). Images are held as
one uint8 tensor and normalized per batch ((x / 255 - mean) / std per channel), as dtrain does.

--precision bf16 runs PyTorch's CPU automatic mixed precision as a user gets it: forward and loss
under torch.autocast("cpu", dtype=torch.bfloat16) (conv and linear in bf16, fp32 accumulation),
backward outside it, fp32 master weights and gradients, the same SGD; evaluation under autocast too.
dtrain's train.precision = bf16 has the same semantics. fp32 (default) uses no autocast.

Timing covers what dtrain's samples_per_s covers: every training step (per-batch gather +
normalize, forward, loss, backward, optimizer step, LR update, loss.item()), from step 0, no
warm-up, evaluation excluded. samples_per_s_excl additionally leaves out the first --excl steps
(a steady-state figure, for reference only; nan when the run is not longer than that).

The last line of output is machine readable:
  torch: model=M precision=P epochs=E steps=S train_loss=... test_loss=... test_acc=...
         samples_per_s=... samples_per_s_excl=... train_s=... max_rss_mib=... params=...
         openblas_core=... onednn_isa=...  (one line; onednn_isa: the ISA oneDNN dispatches
         to, from its verbose output on one small convolution, n/a when it printed none)
"""

import argparse
import contextlib
import ctypes
import math
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- the models: the PyTorch equivalents from the headers of models/*.cfg ----------------------
# defined once in tests/fixtures/dtrain_torch_models.py (shared with load_dtrain_checkpoint.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "fixtures"))
from dtrain_torch_models import CNN, MLP, LeNet5, ResNet9, ResNet20  # noqa: E402

MODELS = {"mlp": MLP, "lenet5": LeNet5, "cnn": CNN, "resnet20": ResNet20, "resnet9": ResNet9}

# dtrain's built-in normalizations (README "Data"), per channel
NORM = {"mnist": ((0.1307,), (0.3081,)),
        "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


# ---- data ----------------------------------------------------------------------------------------
def load_idx(path):
    """An IDX file (big-endian header, unsigned-byte payload) as a numpy uint8 array."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"torch_models: {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    if len(raw) - off != int(np.prod(dims)):
        sys.exit(f"torch_models: {path}: size does not match its header {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load_mnist(data_dir, prefix):
    d = os.path.join(data_dir, "mnist")
    images = load_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte"))
    labels = load_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte"))
    return images.reshape(len(images), 1, 28, 28), labels


def load_cifar(data_dir, names):
    for sub in ("cifar10", "cifar-10-batches-bin"):
        d = os.path.join(data_dir, sub)
        if os.path.isdir(d):
            break
    else:
        sys.exit(f"torch_models: no {data_dir}/cifar10/ or {data_dir}/cifar-10-batches-bin/")
    recs = []
    for n in names:
        raw = np.fromfile(os.path.join(d, n), dtype=np.uint8)
        if raw.size % 3073:
            sys.exit(f"torch_models: {d}/{n}: size {raw.size} is not a multiple of 3073")
        recs.append(raw.reshape(-1, 3073))
    r = np.concatenate(recs)
    return r[:, 1:].reshape(-1, 3, 32, 32), r[:, 0]


def load(data, data_dir, train, limit):
    if data == "mnist":
        x, y = load_mnist(data_dir, "train" if train else "t10k")
    else:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
        x, y = load_cifar(data_dir, names)
    if limit > 0:
        x, y = x[:limit], y[:limit]
    return torch.from_numpy(np.array(x)), torch.from_numpy(y.astype(np.int64))


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


def onednn_isa():
    """The ISA oneDNN (PyTorch's convolutions) dispatches to on this CPU: its verbose mode prints an
    'info,cpu,isa:...' line, on the C-level stdout, so fd 1 goes to a file while one small
    convolution runs. None when nothing was printed (oneDNN off or another version's format)."""
    if not torch.backends.mkldnn.is_available():
        return None
    sys.stdout.flush()
    saved = os.dup(1)
    text = ""
    try:
        with tempfile.TemporaryFile(mode="w+b") as tmp:
            os.dup2(tmp.fileno(), 1)
            try:
                with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                    with torch.no_grad():
                        F.conv2d(torch.ones(16, 3, 8, 8), torch.ones(4, 3, 3, 3))
            finally:
                os.dup2(saved, 1)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
    except (AttributeError, OSError, RuntimeError):
        return None
    finally:
        os.close(saved)
    for line in text.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mlp", choices=sorted(MODELS))
    ap.add_argument("--data", default="mnist", choices=sorted(NORM))
    ap.add_argument("--data-dir", default="data", help="folder holding mnist/ or cifar10/")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps (0: no limit)")
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--eval-batch-size", type=int, default=0, help="0: --batch-size")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--excl", type=int, default=20, help="steps left out of samples_per_s_excl")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="bf16: CPU autocast (torch.autocast('cpu', dtype=torch.bfloat16))")
    args = ap.parse_args()

    def amp():
        """The forward + loss context: CPU autocast to bf16, or nothing for fp32."""
        if args.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    torch.manual_seed(args.seed)

    xtr, ytr = load(args.data, args.data_dir, True, args.limit_train)
    xte, yte = load(args.data, args.data_dir, False, args.limit_test)
    C = xtr.shape[1]
    mean = torch.tensor(NORM[args.data][0], dtype=torch.float32).view(1, C, 1, 1)
    std = torch.tensor(NORM[args.data][1], dtype=torch.float32).view(1, C, 1, 1)

    def normalize(xb):
        return xb.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    model = MODELS[args.model]()
    nparams = sum(p.numel() for p in model.parameters())
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)

    n, B = len(xtr), args.batch_size
    steps_per_epoch = (n + B - 1) // B
    total_steps = args.epochs * steps_per_epoch
    if 0 < args.max_steps < total_steps:
        total_steps = args.max_steps
    step, samples, train_s = 0, 0, 0.0
    t_excl, samples_excl, excl_s = None, 0, 0.0
    train_loss = float("nan")
    epochs_run = 0
    model.train()
    for epoch in range(args.epochs):
        if step >= total_steps:
            break
        g = torch.Generator()
        g.manual_seed(args.seed + epoch)
        perm = torch.randperm(n, generator=g)
        loss_sum, seen = 0.0, 0
        model.train()
        t0 = time.perf_counter()
        for b in range(steps_per_epoch):
            if step >= total_steps:
                break
            idx = perm[b * B:(b + 1) * B]
            x = normalize(xtr[idx])
            y = ytr[idx]
            lr = 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total_steps))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            with amp():
                loss = crit(model(x), y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            step += 1
            if step == args.excl:
                t_excl, samples_excl = time.perf_counter(), samples + seen
        t1 = time.perf_counter()
        train_s += t1 - t0
        samples += seen
        epochs_run += 1
        train_loss = loss_sum / seen
        print(f"epoch {epoch + 1}/{args.epochs}  train_loss {train_loss:.4f}  steps {step}  "
              f"samples/s {seen / (t1 - t0):.0f}  time {t1 - t0:.1f}s", flush=True)
        if t_excl is not None:
            excl_s += t1 - max(t0, t_excl)
    excl_rate = float("nan")
    if samples > samples_excl and excl_s > 0:
        excl_rate = (samples - samples_excl) / excl_s

    model.eval()
    eb = args.eval_batch_size or B
    loss_sum, correct = 0.0, 0
    with torch.no_grad(), amp():
        for lo in range(0, len(xte), eb):
            out = model(normalize(xte[lo:lo + eb])).float()
            yb = yte[lo:lo + eb]
            loss_sum += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    test_loss, test_acc = loss_sum / len(xte), 100.0 * correct / len(xte)

    libs, core = blas_report()
    isa = onednn_isa()
    print(f"torch {torch.__version__}, intra-op threads {torch.get_num_threads()}, "
          f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
          f"BLAS {' '.join(libs) or 'none mapped'}, OpenBLAS core {core or 'n/a'}, "
          f"oneDNN ISA {isa or 'n/a'}, precision {args.precision}"
          f"{' (CPU autocast bf16)' if args.precision == 'bf16' else ''}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    print(f"torch: model={args.model} precision={args.precision} epochs={epochs_run} "
          f"steps={step} train_loss={train_loss:.4f} "
          f"test_loss={test_loss:.4f} test_acc={test_acc:.2f} "
          f"samples_per_s={samples / train_s:.0f} samples_per_s_excl={excl_rate:.0f} "
          f"train_s={train_s:.2f} max_rss_mib={rss:.0f} "
          f"params={nparams} openblas_core={core or 'n/a'} "
          f"onednn_isa={(isa or 'n/a').replace(' ', '_')}", flush=True)


if __name__ == "__main__":
    main()
