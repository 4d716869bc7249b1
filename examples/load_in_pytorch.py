#!/usr/bin/python3
"""Loads a bnni checkpoint of models/lenet_bn.bnn into the seed's PyTorch LeNet-BN with h5py, and evaluates it
on the Fashion-MNIST test set in eval mode: it prints the same `test loss L accuracy A (N images)` line as
`bnni eval CKPT.h5`.

    /usr/bin/python3 examples/load_in_pytorch.py lenet_bn.h5 [DATA_DIR]

Needs Debian's python3-torch, python3-h5py and python3-numpy (use /usr/bin/python3, not a pyenv python).
Everything it reads is documented in docs/checkpoint.md.
"""
import gzip
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def lenet_bn():
    """The seed's network: batch norm after every conv/dense layer but the last, sigmoid, average pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))


def text(value):
    """A string attribute as str: bnni writes fixed-length strings (h5py gives bytes), older bnni variable-length
    ones (h5py gives str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def layer_names(f):
    """The /layers groups in network order: bnni tracks link creation order; h5py's own iteration is by name."""
    names, group = [], f["layers"]  # keep the group open while its links are visited
    group.id.links.iterate(lambda name: names.append(name.decode()), idx_type=h5py.h5.INDEX_CRT_ORDER)
    return names


def copy(dst, group, name):
    src = torch.from_numpy(group[name][...])
    if tuple(src.shape) != tuple(dst.shape):
        sys.exit(f"{group.name}/{name} is {list(src.shape)} in the checkpoint, {list(dst.shape)} in the network")
    dst.copy_(src)


def load(net, f):
    modules = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d))]
    names = layer_names(f)
    if len(names) != len(modules):
        sys.exit(f"the checkpoint has {len(names)} layers with parameters, the seed network {len(modules)}")
    with torch.no_grad():
        for m, name in zip(modules, names):
            g = f["layers"][name]
            if text(g.attrs["type"]) == "batchnorm":
                copy(m.weight, g, "gamma")
                copy(m.bias, g, "beta")
                copy(m.running_mean, g, "moving_mean")
                copy(m.running_var, g, "moving_var")  # bnni keeps the biased variance; eval mode just uses it
                m.eps = float(g.attrs["eps"])
                m.momentum = 1.0 - float(g.attrs["momentum"])  # torch's momentum is bnni's 1 - momentum
            else:
                copy(m.weight, g, "weight")  # conv [out, in, kh, kw] and dense [out, in]: already torch's order
                copy(m.bias, g, "bias")


def read_idx(path):
    with gzip.open(path, "rb") as fh:  # gzip.open also fails cleanly on a non-gzipped file: pass .gz files
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    data_dir = sys.argv[2] if len(sys.argv) == 3 else "/usr/share/datasets/fashion-mnist"
    net = lenet_bn()
    with h5py.File(sys.argv[1], "r") as f:
        if text(f.attrs.get("format", b"")) != "bnni-checkpoint" or f.attrs.get("format_version") != 1:
            sys.exit(f"{sys.argv[1]}: not a bnni checkpoint of format_version 1")
        load(net, f)
        mean, std = float(f.attrs["data_mean"]), float(f.attrs["data_std"])
        print(f"{sys.argv[1]}: model {text(f.attrs['model_name'])}, epoch {f.attrs['epoch']}")
    images = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    labels = torch.from_numpy(read_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    x = (torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 255.0 - mean) / std
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
