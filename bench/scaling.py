#!/usr/bin/env python3
"""The scaling model of docs/distributed.md: per training step, a node's compute against the time of summing the
gradients over N nodes (ring all-reduce) and the synchronized batchnorm sums, on 10 and 100 Gbit/s links.

usage: bench/scaling.py [--bnni ./bnni] [--batch 128] [--speedup K] MODEL:MS[:EXTRA_PARAMS:COMPUTE_SCALE] ...

MS is the measured milliseconds of one training step of the model's global batch (128) on one node: per image,
MS / 128, and a node with a share of B/N images computes (B/N) * MS / 128 (linear in the images; small shares
are slower than that, see the doc). The trainable parameters and the batchnorm layers come from `bnni check
MODEL`; EXTRA_PARAMS and COMPUTE_SCALE adjust a stand-in model (bench/resnet20.bnn at 1x28x28 for CIFAR's
3x32x32: 288 more parameters, (32/28)^2 the compute). --speedup K models nodes that compute K times faster than
the one MS was measured on (more cores, one rank per node with threads inside): the compute divided by K.

Model (every input printed with the tables):
  gradients  G = 4 * trainable parameters bytes, one fused buffer (shard.c), ring all-reduce:
             T_grad = 2 (N-1)/N * G / bandwidth + 2 (N-1) * alpha
  batchnorm  one blocking sum of 2C+1 doubles in the forward and one of 2C in the backward per layer, latency-
             bound (recursive doubling): T_bn = 2 * L * ceil(log2 N) * alpha
  efficiency compute / (compute + T_grad + T_bn): nothing overlapped (the upper bound of the cost; shard.c sends
             the gradient buckets during the backward pass, which can hide up to the backward's time of T_grad)
  alpha      per-message latency, an assumption, not measured here: 20 us for 10 Gbit/s Ethernet with MPI over
             TCP, 2 us for 100 Gbit/s InfiniBand or RoCE (RDMA); pass --alpha10 / --alpha100 to change them.
"""
import argparse
import math
import re
import subprocess
import sys

LINKS = ((10, 10e9 / 8), (100, 100e9 / 8))  # Gbit/s, bytes/s
NODES = (1, 2, 4, 8, 16, 32, 64)


def model_counts(bnni, path):
    """(trainable parameters, batchnorm layers) from `bnni check`."""
    out = subprocess.run([bnni, "check", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([\d,]+) trainable parameters", out, re.M)
    if not m:
        sys.exit(f"scaling.py: no parameter count in `bnni check {path}`")
    bn = len(re.findall(r"^\s*\d+\s+\S+\s+batchnorm\s", out, re.M))
    return int(m.group(1).replace(",", "")), bn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bnni", default="./bnni")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--alpha10", type=float, default=20e-6)
    ap.add_argument("--alpha100", type=float, default=2e-6)
    ap.add_argument("--speedup", type=float, default=1.0, help="node compute rate over the measured one")
    ap.add_argument("--target", type=float, default=0.8, help="efficiency for the smallest sufficient batch")
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    alpha = {10: a.alpha10, 100: a.alpha100}
    for spec in a.models:
        parts = spec.split(":")
        path, ms = parts[0], float(parts[1])
        extra = int(parts[2]) if len(parts) > 2 else 0
        scale = float(parts[3]) if len(parts) > 3 else 1.0
        params, bn = model_counts(a.bnni, path)
        params += extra
        g = 4 * params
        t_img = ms / 1e3 / a.batch * scale / a.speedup
        print(f"\n{path}: {params:,} trainable parameters = {g:,} bytes of gradients, {bn} batchnorm layers "
              f"({2 * bn} sums per step); compute {t_img * 1e3 * a.batch:.1f} ms per step of {a.batch} "
              f"on one node ({t_img * 1e6:.1f} us per image; measured {ms} ms, x{scale:g} / {a.speedup:g}); "
              f"alpha {a.alpha10 * 1e6:g} us at 10 Gbit/s, {a.alpha100 * 1e6:g} us at 100")
        print(f"| N | images per node | compute ms | grads ms 10G | BN ms 10G | eff. 10G | grads ms 100G | BN ms 100G "
              f"| eff. 100G | batch for {a.target:.0%} at 10G | at 100G |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for n in NODES:
            per = a.batch / n
            tc = per * t_img
            row = [f"{n}", f"{per:g}", f"{tc * 1e3:.3f}"]
            need = []
            for gbit, bw in LINKS:
                tg = 2 * (n - 1) / n * g / bw + 2 * (n - 1) * alpha[gbit] if n > 1 else 0.0
                tb = 2 * bn * math.ceil(math.log2(n)) * alpha[gbit] if n > 1 else 0.0
                row += [f"{tg * 1e3:.3f}", f"{tb * 1e3:.3f}", f"{tc / (tc + tg + tb):.2f}"]
                # the smallest global batch (whole images on each of the N nodes) whose compute, b/N images per
                # node, is target/(1-target) times the communication: the efficiency is then the target
                per_node = math.ceil((tg + tb) * a.target / (1 - a.target) / t_img) if n > 1 else 0
                need.append(f"{n * per_node:,}" if n > 1 else "-")
            print("| " + " | ".join(row + need) + " |")


if __name__ == "__main__":
    main()
