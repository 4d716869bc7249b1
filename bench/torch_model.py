#!/usr/bin/python3
"""PyTorch's side of the per-model bench (bench/models.sh): the network of any bnni model, built from a bnni
checkpoint's network description (examples/load_in_pytorch.py's builder), trained for one epoch of N images with
the model's batch and optimizer, then evaluated; prints `key value` lines. Also counts the model's FLOPs.

    /usr/bin/python3 bench/torch_model.py MODEL.bnn CKPT.h5 DATA_DIR --threads T [--images N] [--test-images M]
    /usr/bin/python3 bench/torch_model.py MODEL.bnn CKPT.h5 --flops

DATA_DIR holds Fashion-MNIST's four gzipped IDX files, or CIFAR-10's binary batches (data_batch_*.bin,
test_batch.bin). Images stay bytes and each batch becomes floats in [0, 1], as bnni's `unit` normalisation does;
the models' own normalisation (`standard`) would only shift them. Before timing, 10 training and 10 eval batches run
on a throw-away copy of the network (thread pools and allocators warm), as in bench/torch_lenet.py.
"""
import copy
import gzip
import json
import os
import re
import resource
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from load_in_pytorch import build, text  # noqa: E402  (the one builder of torch networks from bnni's description)


def model_settings(path):
    """The model file's batch and optimizer: `data KIND(..., batch=N)` and `optimizer NAME(k=v, ...)`."""
    src = open(path).read()
    batch = re.search(r"^\s*data\s+\w+\((?:[^)]*\bbatch\s*=\s*(\d+))?", src, re.M)
    opt = re.search(r"^\s*optimizer\s+(\w+)\s*(?:\(([^)]*)\))?", src, re.M)
    args = {}
    for kv in (opt.group(2) or "").split(","):
        if "=" in kv:
            k, v = kv.split("=", 1)
            args[k.strip()] = float(v)
    return int(batch.group(1)) if batch and batch.group(1) else 128, opt.group(1), args


def optimizer(name, a, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=a.get("lr", 0.01), momentum=a.get("momentum", 0.0),
                               weight_decay=a.get("weight_decay", 0.0), nesterov=bool(a.get("nesterov", 0)))
    if name == "adam":
        return torch.optim.Adam(params, lr=a.get("lr", 0.001), betas=(a.get("beta1", 0.9), a.get("beta2", 0.999)),
                                eps=a.get("eps", 1e-8), weight_decay=a.get("weight_decay", 0.0))
    sys.exit(f"bench/torch_model.py: no equivalent of the optimizer '{name}'")


def read_idx(path):
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, train, n):
    """The first n items (bytes, N x C x H x W) and labels of a split."""
    if os.path.exists(os.path.join(data_dir, "test_batch.bin")):  # CIFAR-10's binary version
        names = [f"data_batch_{k}.bin" for k in range(1, 6)] if train else ["test_batch.bin"]
        recs = np.concatenate([np.fromfile(os.path.join(data_dir, f), np.uint8).reshape(-1, 3073) for f in names])
        recs = recs[:n]
        return recs[:, 1:].reshape(-1, 3, 32, 32), recs[:, 0].astype(np.int64)
    p = "train" if train else "t10k"
    x = read_idx(os.path.join(data_dir, f"{p}-images-idx3-ubyte.gz"))[:n]
    y = read_idx(os.path.join(data_dir, f"{p}-labels-idx1-ubyte.gz"))[:n]
    return x.reshape(-1, 1, 28, 28), y.astype(np.int64)


def flops(net, shape):
    """Multiply-adds of one image's forward pass through conv2d and dense layers, and those of the first such layer
    (whose input gradient a training step does not need)."""
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            macs.append(out[0].numel() * k)
        elif isinstance(m, nn.Linear):
            macs.append(m.in_features * m.out_features)

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    return sum(macs), macs[0] if macs else 0


def batches(x, y, batch, order):
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        yield torch.from_numpy(x[idx].astype(np.float32) / 255.0), torch.from_numpy(y[idx])


def train_epoch(net, opt, x, y, batch, order):
    net.train()
    for xb, yb in batches(x, y, batch, order):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()
        opt.step()


def evaluate(net, x, y, batch):
    net.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch, np.arange(len(x))):
            correct += (net(xb).argmax(1) == yb).sum().item()
    return correct / len(x)


def main():
    args = sys.argv[1:]
    opts = {"--threads": "1", "--images": "10000", "--test-images": "10000"}
    for k in list(opts):
        if k in args:
            i = args.index(k)
            opts[k] = args[i + 1]
            del args[i:i + 2]
    only_flops = "--flops" in args
    args = [a for a in args if a != "--flops"]
    if len(args) != (2 if only_flops else 3):
        sys.exit(__doc__)
    with h5py.File(args[1], "r") as f:
        desc = json.loads(text(f.attrs["network"]))
    torch.manual_seed(1)
    net = build(desc["layers"], [])
    total, first = flops(net, desc["input"])
    print(f"forward_mflop_per_image {2 * total / 1e6:.4f}")
    print(f"train_mflop_per_image {2 * (3 * total - first) / 1e6:.4f}")
    if only_flops:
        return
    torch.set_num_threads(int(opts["--threads"]))
    batch, name, oargs = model_settings(args[0])
    x, y = load(args[2], True, int(opts["--images"]))
    tx, ty = load(args[2], False, int(opts["--test-images"]))
    order = np.random.default_rng(1).permutation(len(x))
    warm = copy.deepcopy(net)
    train_epoch(warm, optimizer(name, oargs, warm.parameters()), x, y, batch, order[:10 * batch])
    evaluate(warm, tx[:10 * batch], ty[:10 * batch], batch)
    opt = optimizer(name, oargs, net.parameters())
    t0 = time.perf_counter()
    train_epoch(net, opt, x, y, batch, order)
    t1 = time.perf_counter()
    acc = evaluate(net, tx, ty, batch)
    t2 = time.perf_counter()
    print(f"torch_version {torch.__version__}")
    print(f"train_images_per_second {len(x) / (t1 - t0):.1f}")
    print(f"eval_images_per_second {len(tx) / (t2 - t1):.1f}")
    print(f"test_accuracy {acc:.4f}")
    print(f"peak_rss_mb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()
