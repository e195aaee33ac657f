"""PyTorch DistributedDataParallel (gloo) peer of `mpirun -np W dtrain train --model M` (bench/scaling.sh).

The models, data loading and normalization are bench/torch_models.py's (the PyTorch modules of
models/*.cfg); the training is dtrain's at W ranks: each rank takes the shard rank, rank + W, ...
of the epoch's permutation (DistributedSampler without shuffling its own), a per-rank batch of
--batch-size, DDP averaging the gradients in buckets of --bucket-mb MiB (bucket_cap_mb) over gloo,
SGD with momentum 0.9 and a per-step cosine lr. W = 1 runs the same loop without DDP.

Timing as dtrain's samples_per_s: every training step from step 0 (gather + normalize, forward,
loss, backward with its allreduce, optimizer step), the slowest rank's time, all ranks' samples.

Last line (machine readable):
  ddp: model=M world=W batch=B steps=S train_loss=... samples_per_s=... train_s=...
       openblas_core=... threads=T
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import MODELS, NORM, blas_report, load  # noqa: E402


def worker(rank, args, port):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    W = args.world
    if W > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=W)
    torch.manual_seed(args.seed)
    xtr, ytr = load(args.data, args.data_dir, True, args.limit_train)
    C = xtr.shape[1]
    mean = torch.tensor(NORM[args.data][0], dtype=torch.float32).view(1, C, 1, 1)
    std = torch.tensor(NORM[args.data][1], dtype=torch.float32).view(1, C, 1, 1)

    model = MODELS[args.model]()
    if W > 1:
        model = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    crit = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    n, B = len(xtr), args.batch_size
    shard_len = (n + W - 1) // W
    steps_per_epoch = (shard_len + B - 1) // B
    total = args.epochs * steps_per_epoch
    if 0 < args.max_steps < total:
        total = args.max_steps
    step, samples, train_s, loss_sum = 0, 0, 0.0, 0.0
    model.train()
    for epoch in range(args.epochs):
        if step >= total:
            break
        g = torch.Generator()
        g.manual_seed(args.seed + epoch)
        perm = torch.randperm(n, generator=g)
        perm = torch.cat([perm, perm[:shard_len * W - n]])[rank::W]  # DistributedSampler pads
        t0 = time.perf_counter()
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[b * B:(b + 1) * B]
            x = xtr[idx].to(torch.float32).div_(255.0).sub_(mean).div_(std)
            lr = 0.5 * args.lr * (1.0 + math.cos(math.pi * step / total))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss = crit(model(x), ytr[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            samples += len(idx)
            step += 1
        train_s += time.perf_counter() - t0
    v = torch.tensor([train_s, float(samples), loss_sum / max(step, 1)], dtype=torch.float64)
    if W > 1:
        t = v[:1].clone()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        s = v[1:].clone()
        dist.all_reduce(s)
        v = torch.cat([t, s])
        v[2] /= W
    if rank == 0:
        _, core = blas_report()
        print(f"ddp: model={args.model} world={W} batch={B} steps={step} "
              f"train_loss={v[2].item():.4f} samples_per_s={v[1].item() / v[0].item():.0f} "
              f"train_s={v[0].item():.2f} openblas_core={core or 'n/a'} threads={args.threads}",
              flush=True)
    if W > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mlp", choices=sorted(MODELS))
    ap.add_argument("--data", default="mnist", choices=sorted(NORM))
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64, help="per rank")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket_cap_mb")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="per rank")
    args = ap.parse_args()
    if args.world == 1:
        worker(0, args, 0)
        return
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.world, join=True)


if __name__ == "__main__":
    main()
