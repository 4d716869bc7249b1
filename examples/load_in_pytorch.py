#!/usr/bin/python3
"""Loads any bnni checkpoint into PyTorch with h5py: builds the matching torch.nn network from the checkpoint's
network description (the root attribute `network`, docs/checkpoint.md), copies the tensors in, and evaluates it on
the test set in eval mode. It prints the same `test loss L accuracy A (N images)` line as `bnni eval CKPT.h5`.

    /usr/bin/python3 examples/load_in_pytorch.py CKPT.h5 [DATA_DIR] [--limit N]

Needs Debian's python3-torch, python3-h5py and python3-numpy (use /usr/bin/python3, not a pyenv python).
"""
import gzip
import json
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """bnni's residual: y = body(x) + x."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x) + x


def text(value):
    """A string attribute as str: bnni writes fixed-length strings (h5py gives bytes), older bnni variable-length
    ones (h5py gives str)."""
    return value.decode() if isinstance(value, bytes) else str(value)



def build(layers, params):
    """nn.Sequential of the described layers; params collects (module, checkpoint layer name, kind) to load."""
    modules = []
    for d in layers:
        kind, a, name = d["type"], d["args"], d["name"]
        if kind == "conv2d":
            m = nn.Conv2d(d["in"][0], a["out"], a["kernel"], stride=a["stride"], padding=a["padding"], bias=a["bias"])
        elif kind == "dense":
            m = nn.Linear(d["in"][0], a["out"], bias=a["bias"])
        elif kind == "batchnorm":
            bn = nn.BatchNorm2d if len(d["in"]) == 3 else nn.BatchNorm1d
            # torch's momentum is bnni's 1 - momentum; affine=false: no gamma and beta (fixed at 1 and 0)
            m = bn(d["in"][0], eps=a["eps"], momentum=1.0 - a["momentum"], affine=a.get("affine", True))
        elif kind in ("sigmoid", "relu", "tanh"):
            m = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh}[kind]()
        elif kind == "avgpool":  # padding counts as zeros: torch's count_include_pad=True
            m = nn.AvgPool2d(a["kernel"], stride=a["stride"], padding=a["padding"], count_include_pad=True)
        elif kind == "maxpool":
            m = nn.MaxPool2d(a["kernel"], stride=a["stride"], padding=a["padding"])
        elif kind == "flatten":
            m = nn.Flatten()
        elif kind == "dropout":
            m = nn.Dropout(a["p"])
        elif kind == "residual":
            m = Residual(build(d["body"], params))
        else:
            sys.exit(f"layer {name}: this script does not know the layer kind '{kind}'")
        if kind in ("conv2d", "dense", "batchnorm"):
            params.append((m, name, kind))
        modules.append(m)
    return nn.Sequential(*modules)


def copy(dst, group, name):
    src = torch.from_numpy(group[name][...])
    if tuple(src.shape) != tuple(dst.shape):
        sys.exit(f"{group.name}/{name} is {list(src.shape)} in the checkpoint, {list(dst.shape)} in the network")
    dst.copy_(src)


def load(f):
    if "network" not in f.attrs:
        sys.exit("the checkpoint has no network description (written before bnni 0.1.0 had one): train it again")
    desc = json.loads(text(f.attrs["network"]))
    params = []
    net = build(desc["layers"], params)
    with torch.no_grad():
        for m, name, kind in params:
            g = f["layers"][name]
            if kind == "batchnorm":
                if m.affine:
                    copy(m.weight, g, "gamma")
                    copy(m.bias, g, "beta")
                copy(m.running_mean, g, "moving_mean")
                copy(m.running_var, g, "moving_var")  # bnni keeps the biased variance; eval mode just uses it
            else:
                copy(m.weight, g, "weight")  # conv [out, in, kh, kw] and dense [out, in]: already torch's order
                if m.bias is not None:
                    copy(m.bias, g, "bias")
    return net, desc


def read_idx(path):
    with gzip.open(path, "rb") as fh:  # gzip.open also fails cleanly on a non-gzipped file: pass .gz files
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    args, limit = sys.argv[1:], None
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i:i + 2]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    data_dir = args[1] if len(args) == 2 else "/usr/share/datasets/fashion-mnist"
    with h5py.File(args[0], "r") as f:
        if text(f.attrs.get("format", b"")) != "bnni-checkpoint" or f.attrs.get("format_version") != 1:
            sys.exit(f"{args[0]}: not a bnni checkpoint of format_version 1")
        net, desc = load(f)
        mean, std = float(f.attrs["data_mean"]), float(f.attrs["data_std"])
        print(f"{args[0]}: model {text(f.attrs['model_name'])}, epoch {f.attrs['epoch']}")
    images = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")[:limit]
    labels = torch.from_numpy(read_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz")[:limit].astype(np.int64))
    x = (torch.from_numpy(images.astype(np.float32)).reshape(-1, *desc["input"]) / 255.0 - mean) / std
    net.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), 128):
            logits = net(x[i:i + 128])
            loss += F.cross_entropy(logits, labels[i:i + 128], reduction="sum").item()
            correct += (logits.argmax(1) == labels[i:i + 128]).sum().item()
    print(f"test loss {loss / len(x):.4f} accuracy {correct / len(x):.4f} ({len(x)} images)")


if __name__ == "__main__":
    main()
