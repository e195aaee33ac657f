"""PyTorch peer of section 8 (experiments/s8_scaling.sh): the cnn on Fashion-MNIST, W ranks x T threads.

The training is dtrain's at W ranks, as bench/torch_ddp.py does it (same model modules from
bench/torch_models.py, DistributedSampler shards rank, rank + W, ... of each epoch's permutation, a
per-rank batch, SGD momentum 0.9 with a per-step cosine lr, DistributedDataParallel over gloo; W = 1:
no DDP), plus what section 8 needs and torch_ddp.py does not measure: the test set's top-1 and top-5
accuracy after training. Time per epoch: the slowest rank's training seconds per epoch (evaluation
excluded), as dtrain's metrics_epoch.csv time_s.

Last line (machine readable):
  torch: world=W threads=T epochs=E epoch_s=... train_loss=... test_acc=... test_top5=...
"""

import argparse
import math
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_models import MODELS, load_idx  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # dtrain's Fashion-MNIST normalization (README, Data)


def fashion(data_dir, prefix, limit):
    d = os.path.join(data_dir, "fashion-mnist")
    x = load_idx(os.path.join(d, f"{prefix}-images-idx3-ubyte"))
    y = load_idx(os.path.join(d, f"{prefix}-labels-idx1-ubyte"))
    if limit > 0:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy(x.reshape(len(x), 1, 28, 28).copy())
    return x, torch.from_numpy(y.astype("int64"))


def norm(x):
    return x.to(torch.float32).div_(255.0).sub_(MEAN).div_(STD)


def worker(rank, args, port):
    torch.set_num_threads(args.threads)
    W = args.world
    if W > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=W)
    torch.manual_seed(args.seed)
    xtr, ytr = fashion(args.data_dir, "train", args.limit_train)
    model = MODELS["cnn"]()
    net = nn.parallel.DistributedDataParallel(model) if W > 1 else model
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9)
    n, B = len(xtr), args.batch_size
    shard_len = (n + W - 1) // W
    spe = (shard_len + B - 1) // B
    total = args.epochs * spe
    step, train_s, loss_sum = 0, 0.0, 0.0
    net.train()
    for epoch in range(args.epochs):
        g = torch.Generator()
        g.manual_seed(args.seed + epoch)
        perm = torch.randperm(n, generator=g)
        perm = torch.cat([perm, perm[:shard_len * W - n]])[rank::W]
        t0 = time.perf_counter()
        for b in range(spe):
            idx = perm[b * B:(b + 1) * B]
            lr = 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = crit(net(norm(xtr[idx])), ytr[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
        train_s += time.perf_counter() - t0
    t = torch.tensor([train_s, loss_sum / max(step, 1)], dtype=torch.float64)
    if W > 1:
        mx = t[:1].clone()
        dist.all_reduce(mx, op=dist.ReduceOp.MAX)
        ls = t[1:].clone()
        dist.all_reduce(ls)
        t = torch.cat([mx, ls / W])
    if rank == 0:
        xte, yte = fashion(args.data_dir, "t10k", args.limit_test)
        model.eval()
        top1 = top5 = 0
        with torch.no_grad():
            for i in range(0, len(xte), 500):
                out = model(norm(xte[i:i + 500]))
                k5 = out.topk(5, dim=1).indices
                y = yte[i:i + 500]
                top1 += (k5[:, 0] == y).sum().item()
                top5 += (k5 == y[:, None]).any(dim=1).sum().item()
        print(f"torch: world={W} threads={args.threads} epochs={args.epochs} "
              f"epoch_s={t[0].item() / args.epochs:.3f} train_loss={t[1].item():.4f} "
              f"test_acc={100.0 * top1 / len(xte):.2f} test_top5={100.0 * top5 / len(xte):.2f} "
              f"torch={torch.__version__}", flush=True)
    if W > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="per rank")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64, help="per rank")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.world < 1 or args.threads < 1 or args.epochs < 1 or args.batch_size < 1:
        sys.exit("torch_cnn.py: --world, --threads, --epochs and --batch-size must be >= 1")
    if args.world == 1:
        worker(0, args, 0)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
