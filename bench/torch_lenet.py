#!/usr/bin/python3
# PyTorch reference of models/lenet_bn.bnn for `make bench`: the same LeNet-BN, data and optimizer, timed the way
# bnni times itself (training phase of an epoch, then eval mode over the 10,000 test images). A benchmark reference
# only: bnni never depends on it. Run with /usr/bin/python3 (Debian's python3-torch); prints `key value` lines.
import argparse
import copy
import gzip
import os
import resource
import struct
import sys
import time

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch reference of LeNet-BN on Fashion-MNIST (bnni benchmark)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--epochs", type=int, default=1, help="epochs to train (default 1)")
    p.add_argument("--train-images", type=int, default=0, help="use only the first N training images (0: all)")
    p.add_argument("--batch", type=int, default=128, help="training batch size (default 128)")
    p.add_argument("--eval-batch", type=int, default=0, help="eval batch size (default: the training batch)")
    p.add_argument("--lr", type=float, default=1.0, help="SGD learning rate (default 1.0)")
    p.add_argument("--warmup-batches", type=int, default=10,
                   help="untimed training+eval batches on a throw-away copy of the model before timing (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=DATA_DIR, help="directory of the four gzipped IDX files")
    a = p.parse_args()
    if a.threads < 1 or a.epochs < 1 or a.batch < 1 or a.train_images < 0 or a.eval_batch < 0 or a.warmup_batches < 0:
        p.error("--threads, --epochs and --batch must be >= 1; --train-images, --eval-batch, --warmup-batches >= 0")
    return a


def read_idx(path):
    """The array in a gzipped IDX file of unsigned bytes, kept as uint8."""
    with gzip.open(path, "rb") as f:
        raw = bytearray(f.read())  # writable, so torch.from_numpy may view batches of it
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()})")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes of data, header says {dims}")
    return data.reshape(dims)


def load(data_dir, split):
    x = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{data_dir}: {split} has {x.shape[0]} images but {y.shape[0]} labels")
    return x, y.astype(np.int64)


def lenet_bn(nn):
    # models/lenet_bn.bnn. bnni's batchnorm momentum 0.9 is torch's momentum=0.1 (weight of the batch statistic).
    # One difference that does not change the work done: torch's running variance uses the unbiased estimate.
    def bn2(c):
        return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)

    def bn1(c):
        return nn.BatchNorm1d(c, eps=1e-5, momentum=0.1)

    return nn.Sequential(
        nn.Conv2d(1, 6, 5), bn2(6), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), bn2(16), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(256, 120), bn1(120), nn.Sigmoid(),
        nn.Linear(120, 84), bn1(84), nn.Sigmoid(),
        nn.Linear(84, 10))


def to_batch(torch, x_u8):
    # Data stays bytes; each batch is converted on the fly, as bnni does.
    return torch.from_numpy(x_u8).unsqueeze(1).float().mul_(1.0 / 255.0)


def train_epoch(torch, F, model, opt, x, y, order, batch, max_batches=None):
    """Trains over x[order] in batches; returns (mean loss, images seen)."""
    model.train()
    total, seen = 0.0, 0
    for b, start in enumerate(range(0, len(order), batch)):
        if max_batches is not None and b >= max_batches:
            break
        idx = order[start:start + batch]
        xb, yb = to_batch(torch, x[idx]), torch.from_numpy(y[idx])
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        seen += len(idx)
    return total / max(seen, 1), seen


def evaluate(torch, model, x, y, batch, max_batches=None):
    """Eval-mode accuracy over x; returns (correct, images seen)."""
    model.eval()
    correct, seen = 0, 0
    with torch.no_grad():
        for b, start in enumerate(range(0, len(x), batch)):
            if max_batches is not None and b >= max_batches:
                break
            logits = model(to_batch(torch, x[start:start + batch]))
            correct += int((logits.argmax(1) == torch.from_numpy(y[start:start + batch])).sum())
            seen += min(batch, len(x) - start)
    return correct, seen


def warm_up(torch, F, model, x, y, xt, yt, a):
    # Allocator, thread pool and kernel selection settle here, on a copy, so the timed run trains the same model.
    if a.warmup_batches == 0:
        return
    m = copy.deepcopy(model)
    o = torch.optim.SGD(m.parameters(), lr=a.lr)
    train_epoch(torch, F, m, o, x, y, np.arange(len(x)), a.batch, a.warmup_batches)
    evaluate(torch, m, xt, yt, a.eval_batch, a.warmup_batches)


def median(v):
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def main():
    a = parse_args()
    a.eval_batch = a.eval_batch or a.batch
    # Before the import, so OpenMP's pool is sized once and no extra threads spin.
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import torch
    import torch.nn.functional as F
    from torch import nn
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    try:
        x, y = load(a.data, "train")
        xt, yt = load(a.data, "t10k")
    except (OSError, ValueError) as e:
        print(f"torch_lenet.py: error: {e}", file=sys.stderr)
        return 1
    if a.train_images:
        x, y = x[:a.train_images], y[:a.train_images]

    model = lenet_bn(nn)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    print(f"torch_version {torch.__version__}")
    print(f"threads {torch.get_num_threads()}")
    print(f"train_images {len(x)}")
    print(f"test_images {len(xt)}")
    print(f"warmup_batches {a.warmup_batches}")
    warm_up(torch, F, model, x, y, xt, yt, a)

    rng = np.random.default_rng(a.seed)
    train_ips, eval_ips, acc = [], [], 0.0
    for epoch in range(1, a.epochs + 1):
        order = rng.permutation(len(x))
        t0 = time.perf_counter()
        loss, seen = train_epoch(torch, F, model, opt, x, y, order, a.batch)
        t1 = time.perf_counter()
        correct, tseen = evaluate(torch, model, xt, yt, a.eval_batch)
        t2 = time.perf_counter()
        if not np.isfinite(loss):
            print(f"torch_lenet.py: error: training diverged in epoch {epoch} (loss {loss})", file=sys.stderr)
            return 3
        train_ips.append(seen / (t1 - t0))
        eval_ips.append(tseen / (t2 - t1))
        acc = correct / tseen
        print(f"epoch {epoch} train_loss {loss:.4f} train_seconds {t1 - t0:.3f} "
              f"train_images_per_second {train_ips[-1]:.1f} eval_images_per_second {eval_ips[-1]:.1f} "
              f"test_accuracy {acc:.4f}", flush=True)

    print(f"train_images_per_second {median(train_ips):.1f}")
    print(f"eval_images_per_second {median(eval_ips):.1f}")
    print(f"test_accuracy {acc:.4f}")
    # Linux reports ru_maxrss in KiB.
    print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
