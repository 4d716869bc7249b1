#!/usr/bin/python3
"""Writes the small data sets of the examples (examples/*.bnn) into examples/data/, one per data kind, each a toy
problem a small network learns in a few epochs: shapes or bands of colour with noise, or three clusters of
features. Usage, from the repository root: /usr/bin/python3 examples/make_data.py [KIND...] (default: all of them:
hdf5 idx csv images cifar10). Needs numpy, and h5py for hdf5 (Debian: python3-numpy, python3-h5py)."""
import gzip
import os
import struct
import sys
import zlib

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
rng = np.random.default_rng(12)


def shapes(n, size, channels):
    """n images (n, channels, size, size) uint8 of 4 classes -- a horizontal bar, a vertical bar, a diagonal, a
    ring -- at random places and colours over noise, and their labels."""
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 170, (n, channels, size, size)).astype(np.int32)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        c = rng.integers(100, 256, channels)[:, None, None]
        o, w = rng.integers(2, size - 6), 1 + size // 16
        if y[i] == 0:
            mask = (yy >= o) & (yy < o + w)
        elif y[i] == 1:
            mask = (xx >= o) & (xx < o + w)
        elif y[i] == 2:
            mask = abs(yy - xx - (o - size // 2)) < w
        else:
            r = np.hypot(yy - size / 2, xx - size / 2)
            mask = abs(r - size / 3) < w / 1.5
        x[i] = np.where(mask, c, x[i])
    return x.astype(np.uint8), y


SHAPE_NAMES = ["horizontal", "vertical", "diagonal", "ring"]


def write_hdf5():
    import h5py
    with h5py.File(os.path.join(OUT, "shapes.h5"), "w") as f:
        f["train/x"], f["train/y"] = shapes(2000, 16, 1)
        f["test/x"], f["test/y"] = shapes(400, 16, 1)
        f.attrs["classes"] = np.array(SHAPE_NAMES, dtype=h5py.string_dtype())


def write_idx():
    def idx(path, magic, arr):
        with gzip.open(path, "wb") as f:
            f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes())
    for split, n in (("train", 1500), ("test", 300)):
        x, y = shapes(n, 12, 3)
        idx(os.path.join(OUT, "%s-images.idx.gz" % split), 0x804, x.transpose(0, 2, 3, 1).copy())  # channels last
        idx(os.path.join(OUT, "%s-labels.idx.gz" % split), 0x801, y.astype(np.uint8))


def write_csv():
    names = ["alpine", "desert", "tundra"]
    centers = np.array([[4.0, 1.0, 30.0, 0.2], [6.5, 3.0, 10.0, 0.9], [5.0, 5.5, 22.0, 0.5]])
    for split, n in (("train", 600), ("test", 150)):
        y = rng.integers(0, 3, n)
        x = centers[y] + rng.normal(size=(n, 4)) * [0.9, 1.0, 6.0, 0.2]
        with open(os.path.join(OUT, "climate-%s.csv" % split), "w", newline="") as f:
            f.write('height_km,rain_dm,"temp, C",wind,biome\r\n')
            for xi, yi in zip(x, y):
                f.write("%.3f,%.3f,%.2f,%.3f,%s\r\n" % (*xi, names[yi]))


def png(path, img):
    """An 8-bit RGB PNG (img: h x w x 3 uint8), written with zlib alone."""
    h, w = img.shape[:2]
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_images():
    for split, n in (("train", 240), ("test", 60)):
        for k, name in enumerate(SHAPE_NAMES[:3]):
            os.makedirs(os.path.join(OUT, "pictures", split, name), exist_ok=True)
        done = [0, 0, 0]
        while min(done) < n // 3:
            size = int(rng.integers(20, 40))  # images of many sizes: the model resizes them (size=24x24)
            x, y = shapes(1, size, 3)
            k = int(y[0])
            if k == 3 or done[k] >= n // 3:
                continue
            png(os.path.join(OUT, "pictures", split, SHAPE_NAMES[k], "%03d.png" % done[k]), x[0].transpose(1, 2, 0))
            done[k] += 1


def write_cifar10():
    """CIFAR-10's binary format on a toy task: class k is a colour band at row 3k (10 classes)."""
    d = os.path.join(OUT, "cifar10")
    os.makedirs(d, exist_ok=True)

    def batch(path, n):
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 200, (n, 3, 32, 32)).astype(np.uint8)
        for i in range(n):
            x[i, :, 3 * y[i]:3 * y[i] + 2, rng.integers(0, 16):] = rng.integers(120, 256, (3, 1, 1))
        with open(path, "wb") as f:
            f.write(np.concatenate([y.astype(np.uint8)[:, None], x.reshape(n, -1)], 1).tobytes())
    for k in range(1, 6):
        batch(os.path.join(d, "data_batch_%d.bin" % k), 200)
    batch(os.path.join(d, "test_batch.bin"), 200)
    with open(os.path.join(d, "batches.meta.txt"), "w") as f:
        f.write("\n".join("band%d" % k for k in range(10)) + "\n\n")


KINDS = {"hdf5": write_hdf5, "idx": write_idx, "csv": write_csv, "images": write_images, "cifar10": write_cifar10}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for kind in sys.argv[1:] or list(KINDS):
        if kind not in KINDS:
            sys.exit("make_data.py: unknown kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        # each kind its own stream, so that its data are the same whichever kinds are written with it
        rng = np.random.default_rng([12, list(KINDS).index(kind)])
        KINDS[kind]()
        print("examples/data: %s written" % kind)
