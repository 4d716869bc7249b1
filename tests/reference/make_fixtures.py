#!/usr/bin/python3
"""PyTorch reference fixtures for bnni's runtime tests (tests/test_{batchnorm,loss,optim,reference}.c and
tests/test_reference_nets.c).

Run from the repository root with Debian's python (torch 1.13, h5py, numpy):
    /usr/bin/python3 tests/reference/make_fixtures.py
It rewrites tests/reference/{layers,batchnorm,loss,optim,lenet,nets,training}.h5. Everything is float32 and seeded,
on one CPU thread, without HDF5 timestamps, so a rerun on the same machine writes the same bytes. The C tests compare against these files; torch is never
needed to build or test bnni.

Batch-norm moving statistics: bnni follows the seed program, moving = momentum*moving + (1-momentum)*batch with
the BIASED batch variance, whereas torch.nn.BatchNorm uses momentum' = 1-momentum and the UNBIASED variance.
The moving statistics stored here are computed with the seed's formula in torch ops (seed_bn_update), and every
update is cross-checked against nn.BatchNorm's own running statistics after correcting torch's variance by
(m-1)/m, m being the number of values per channel (see check_against_torch_running_stats).
"""
import gzip
import math
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = "/usr/share/datasets/fashion-mnist"


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def create(path):
    """A new HDF5 file (latest format) whose root group, like every object here, carries no timestamps."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def group(parent, path):
    """The group at `path` under parent, created (with its parents) without timestamps when missing."""
    for part in path.strip("/").split("/"):
        if part not in parent:
            gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
            gcpl.set_obj_track_times(False)
            h5py.h5g.create(parent.id, part.encode(), gcpl=gcpl)
        parent = parent[part]
    return parent


def put(g, name, value):
    """Stores value as dataset `name` (intermediate groups created), without timestamps, so that a rerun writes
    identical bytes."""
    if "/" in name:
        g, name = group(g, name.rsplit("/", 1)[0]), name.rsplit("/", 1)[1]
    a = np.asarray(value)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    if a.size >= 4096:  # chunking costs kilobytes of metadata: only worth it for big arrays
        g.create_dataset(name, data=a, compression="gzip", compression_opts=9, shuffle=True, track_times=False)
    else:
        g.create_dataset(name, data=a, track_times=False)


def randn(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape) * scale + shift).float()


# ---------------------------------------------------------------------------------------------------------------
# batch norm with the seed's moving-average convention


def seed_bn_update(moving_mean, moving_var, x, momentum):
    """moving = momentum*moving + (1-momentum)*batch, biased batch variance (the seed's convention), in place."""
    dims = [0] if x.dim() == 2 else [0, 2, 3]
    with torch.no_grad():
        mean = x.mean(dim=dims)
        var = x.var(dim=dims, unbiased=False)
        moving_mean.copy_(momentum * moving_mean + (1 - momentum) * mean)
        moving_var.copy_(momentum * moving_var + (1 - momentum) * var)


def check_against_torch_running_stats(x, momentum, eps):
    """Cross-check seed_bn_update against nn.BatchNorm: torch's running_var uses the unbiased variance,
    so seed = torch - (1-momentum)*(var_unbiased - var_biased) with var_biased = var_unbiased*(m-1)/m."""
    C = x.shape[1]
    bn = (torch.nn.BatchNorm1d if x.dim() == 2 else torch.nn.BatchNorm2d)(C, eps=eps, momentum=1 - momentum)
    mm, mv = torch.zeros(C), torch.ones(C)
    with torch.no_grad():
        bn.running_mean.copy_(torch.linspace(-0.5, 0.5, C))
        bn.running_var.copy_(torch.linspace(0.5, 2.0, C))
        mm.copy_(bn.running_mean), mv.copy_(bn.running_var)
        bn.train()
        bn(x)
    seed_bn_update(mm, mv, x, momentum)
    m = x.numel() // C
    dims = [0] if x.dim() == 2 else [0, 2, 3]
    var_u = x.var(dim=dims, unbiased=True)
    corrected = bn.running_var - (1 - momentum) * (var_u - var_u * (m - 1) / m)
    assert torch.allclose(bn.running_mean, mm, rtol=1e-5, atol=1e-6)
    assert torch.allclose(corrected, mv, rtol=1e-5, atol=1e-6)


class SeedBatchNorm(torch.nn.Module):
    """Batch norm with bnni's conventions: bnni momentum, biased variance in the moving average."""

    def __init__(self, C, momentum=0.9, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(C))
        self.bias = torch.nn.Parameter(torch.zeros(C))
        self.register_buffer("moving_mean", torch.zeros(C))
        self.register_buffer("moving_var", torch.ones(C))
        self.momentum, self.eps = momentum, eps

    def forward(self, x):
        if self.training:
            seed_bn_update(self.moving_mean, self.moving_var, x, self.momentum)
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.batch_norm(x, self.moving_mean, self.moving_var, self.weight, self.bias, False, 0.0, self.eps)


def write_batchnorm(path):
    """Groups bn2d (N x C, momentum 0.9, eps 1e-5) and bn4d (NCHW, momentum 0.7, eps 1e-3: not the defaults, so the
    test shows both come from the spec). Each: x, dy, gamma, beta; train y/dx/dgamma/dbeta; moving statistics after
    three training forwards on xs[0..2]; eval y/dx/dgamma/dbeta with non-trivial moving statistics."""
    torch.manual_seed(1)
    cases = [("bn2d", (16, 5), 0.9, 1e-5), ("bn4d", (4, 3, 5, 5), 0.7, 1e-3)]
    with create(path) as f:
        for name, shape, momentum, eps in cases:
            g = group(f, name)
            C = shape[1]
            g.attrs["momentum"], g.attrs["eps"] = np.float32(momentum), np.float32(eps)
            g.attrs["in"] = np.array([len(shape) - 1, C, *(shape[2:] if len(shape) == 4 else (1, 1))], np.int32)
            x = randn(*shape, scale=2.0, shift=0.5)
            dy = randn(*shape)
            gamma, beta = randn(C, scale=0.5, shift=1.0), randn(C, scale=0.5)
            for k, v in [("x", x), ("dy", dy), ("gamma", gamma), ("beta", beta)]:
                put(g, k, f32(v))
            for train in (1, 0):
                mm, mv = torch.linspace(-0.5, 0.5, C), torch.linspace(0.5, 2.0, C)
                xr = x.clone().requires_grad_()
                gr, br = gamma.clone().requires_grad_(), beta.clone().requires_grad_()
                y = F.batch_norm(xr, None if train else mm, None if train else mv, gr, br, bool(train), 0.0, eps)
                (y * dy).sum().backward()
                tag = "train" if train else "eval"
                if not train:
                    put(g, "eval/moving_mean", f32(mm)), put(g, "eval/moving_var", f32(mv))
                for k, v in [("y", y), ("dx", xr.grad), ("dgamma", gr.grad), ("dbeta", br.grad)]:
                    put(g, f"{tag}/{k}", f32(v))
            xs = torch.stack([randn(*shape, scale=1.5, shift=-0.3) for _ in range(3)])
            mm, mv = torch.zeros(C), torch.ones(C)
            for s in range(3):
                check_against_torch_running_stats(xs[s], momentum, eps)
                seed_bn_update(mm, mv, xs[s], momentum)
            put(g, "steps/xs", f32(xs))
            put(g, "steps/moving_mean", f32(mm)), put(g, "steps/moving_var", f32(mv))


# ---------------------------------------------------------------------------------------------------------------
# the other layers, one group per case


def layer_case(f, name, kind, in_shape, batch, fn, params=(), attrs=None, x=None):
    """Runs y = fn(x, *params) in float32, backpropagates a random dy, stores inputs, outputs and gradients."""
    g = group(f, name)
    g.attrs["kind"] = np.bytes_(kind)
    g.attrs["in"] = np.array([len(in_shape), *in_shape, *([1, 1] if len(in_shape) == 1 else [])], np.int32)
    for k, v in (attrs or {}).items():
        g.attrs[k] = v
    if x is None:
        x = randn(batch, *in_shape)
    xr = x.clone().requires_grad_()
    ps = [(pn, pv.clone().requires_grad_()) for pn, pv in params]
    y = fn(xr, *[p for _, p in ps])
    dy = randn(*y.shape)
    (y * dy).sum().backward()
    put(g, "x", f32(x)), put(g, "dy", f32(dy)), put(g, "y", f32(y)), put(g, "dx", f32(xr.grad))
    for pn, pv in ps:
        put(g, f"param/{pn}", f32(pv))
        put(g, f"grad/{pn}", f32(pv.grad))


def conv_case(f, name, cin, h, w, units, k, stride, pad, bias):
    wt = randn(units, cin, k, k, scale=1.0 / math.sqrt(cin * k * k))
    params = [("weight", wt)] + ([("bias", randn(units, scale=0.1))] if bias else [])
    fn = lambda x, wt, b=None: F.conv2d(x, wt, b, stride=stride, padding=pad)
    layer_case(f, name, "conv2d", (cin, h, w), 3, fn, params,
               dict(units=units, kernel=k, stride=stride, padding=pad, bias=int(bias)))


def dense_case(f, name, fin, units, bias):
    params = [("weight", randn(units, fin, scale=1.0 / math.sqrt(fin)))] + \
             ([("bias", randn(units, scale=0.1))] if bias else [])
    layer_case(f, name, "dense", (fin,), 5, lambda x, wt, b=None: F.linear(x, wt, b), params,
               dict(units=units, bias=int(bias)))


def write_layers(path):
    torch.manual_seed(2)
    with create(path) as f:
        conv_case(f, "conv2d_k3_s1_p0_bias", 2, 7, 6, 4, 3, 1, 0, True)
        conv_case(f, "conv2d_k3_s2_p1_nobias", 3, 7, 7, 5, 3, 2, 1, False)
        conv_case(f, "conv2d_k5_s1_p2_bias", 1, 8, 8, 3, 5, 1, 2, True)
        conv_case(f, "conv2d_k2_s3_p1_bias", 2, 9, 8, 2, 2, 3, 1, True)
        dense_case(f, "dense_bias", 12, 7, True)
        dense_case(f, "dense_nobias", 9, 4, False)
        layer_case(f, "sigmoid_4d", "sigmoid", (3, 4, 5), 2, torch.sigmoid)
        layer_case(f, "sigmoid_2d", "sigmoid", (11,), 4, torch.sigmoid)
        layer_case(f, "relu_4d", "relu", (3, 4, 5), 2, F.relu)
        layer_case(f, "tanh_2d", "tanh", (11,), 4, torch.tanh)
        for k, s, p, (c, h, w) in [(2, 2, 0, (3, 8, 8)), (3, 2, 0, (2, 9, 7)), (3, 1, 1, (2, 5, 6))]:
            attrs = dict(kernel=k, stride=s, padding=p)
            # torch's default count_include_pad=True: padded zeros count in the average
            layer_case(f, f"avgpool_k{k}_s{s}_p{p}", "avgpool", (c, h, w), 2,
                       lambda x: F.avg_pool2d(x, k, s, p), attrs=attrs)
            layer_case(f, f"maxpool_k{k}_s{s}_p{p}", "maxpool", (c, h, w), 2,
                       lambda x: F.max_pool2d(x, k, s, p), attrs=attrs)
        layer_case(f, "flatten", "flatten", (3, 4, 5), 2, lambda x: x.reshape(x.shape[0], -1))
        layer_case(f, "dropout_eval", "dropout", (3, 4, 5), 2, lambda x: F.dropout(x, 0.5, training=False),
                   attrs=dict(p=np.float32(0.5)))


# ---------------------------------------------------------------------------------------------------------------
# loss and optimizers


def write_loss(path):
    """Cross-entropy on ordinary logits and on huge ones (|z| up to ~1e3: exp overflows without log-sum-exp)."""
    torch.manual_seed(3)
    with create(path) as f:
        for name, scale in [("small", 1.0), ("large", 400.0)]:
            g = group(f, name)
            z = randn(13, 10, scale=scale)
            labels = torch.randint(0, 10, (13,))
            zr = z.clone().requires_grad_()
            loss = F.cross_entropy(zr, labels)
            loss.backward()
            put(g, "logits", f32(z)), put(g, "labels", labels.numpy().astype(np.int32))
            put(g, "loss", np.float32(loss.item())), put(g, "dlogits", f32(zr.grad))
            put(g, "ncorrect", np.int32((z.argmax(1) == labels).sum().item()))


OPTIMS = [
    ("sgd_plain", "sgd", dict(lr=0.1)),
    ("sgd_wd", "sgd", dict(lr=0.05, weight_decay=0.01)),
    ("sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9)),
    ("sgd_nesterov_wd", "sgd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    ("adam", "adam", dict(lr=1e-3)),
    ("adam_wd_betas", "adam", dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.05)),
]


def opt_attrs(g, kind, kw):
    g.attrs["kind"] = np.bytes_(kind)
    g.attrs["lr"] = kw["lr"]
    g.attrs["momentum"] = kw.get("momentum", 0.0)
    g.attrs["weight_decay"] = kw.get("weight_decay", 0.0)
    g.attrs["nesterov"] = int(kw.get("nesterov", False))
    b1, b2 = kw.get("betas", (0.9, 0.999))
    g.attrs["beta1"], g.attrs["beta2"], g.attrs["eps"] = b1, b2, kw.get("eps", 1e-8)


def make_opt(kind, params, kw):
    return (torch.optim.SGD if kind == "sgd" else torch.optim.Adam)(params, **kw)


def write_optim(path):
    """Two tensors of parameters, ten given gradients each; parameters after every step and the final state."""
    torch.manual_seed(4)
    p0 = [randn(4, 3), randn(5)]
    grads = [[randn(4, 3, scale=0.5) for _ in range(10)], [randn(5, scale=0.5) for _ in range(10)]]
    with create(path) as f:
        for j in range(2):
            put(f, f"p{j}/init", f32(p0[j]))
            put(f, f"p{j}/grads", f32(torch.stack(grads[j])))
        for name, kind, kw in OPTIMS:
            g = group(f, name)
            opt_attrs(g, kind, kw)
            ps = [torch.nn.Parameter(p.clone()) for p in p0]
            opt = make_opt(kind, ps, kw)
            traj = [[], []]
            for s in range(10):
                for j in range(2):
                    ps[j].grad = grads[j][s].clone()
                opt.step()
                for j in range(2):
                    traj[j].append(f32(ps[j]))
            for j in range(2):
                put(g, f"p{j}/traj", np.stack(traj[j]))
                for k, v in opt.state[ps[j]].items():
                    if k != "step" and v is not None:
                        put(g, f"p{j}/state/{k}", f32(v))
        sched = group(f, "sched")
        for name, mk in [("step_3_0.5", lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
                         ("cosine_12_0.01", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, 0.01)),
                         ("cosine_7_0", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, 0.0))]:
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4)
            sch, lrs = mk(opt), []
            for _ in range(12):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sch.step()
            sched.create_dataset(name, data=np.array(lrs, np.float64), track_times=False)  # float64: put() narrows


# ---------------------------------------------------------------------------------------------------------------
# the seed LeNet-BN on one batch of Fashion-MNIST

LENET = [("conv1", "conv2d", dict(units=6, kernel=5)), ("bn1", "batchnorm", {}), ("sig1", "sigmoid", {}),
         ("pool1", "avgpool", dict(kernel=2, stride=2)), ("conv2", "conv2d", dict(units=16, kernel=5)),
         ("bn2", "batchnorm", {}), ("sig2", "sigmoid", {}), ("pool2", "avgpool", dict(kernel=2, stride=2)),
         ("flat", "flatten", {}), ("fc1", "dense", dict(units=120)), ("bn3", "batchnorm", {}),
         ("sig3", "sigmoid", {}), ("fc2", "dense", dict(units=84)), ("bn4", "batchnorm", {}),
         ("sig4", "sigmoid", {}), ("fc3", "dense", dict(units=10))]


def lenet():
    m = torch.nn.ModuleDict()
    m["conv1"], m["bn1"] = torch.nn.Conv2d(1, 6, 5), SeedBatchNorm(6)
    m["conv2"], m["bn2"] = torch.nn.Conv2d(6, 16, 5), SeedBatchNorm(16)
    m["fc1"], m["bn3"] = torch.nn.Linear(256, 120), SeedBatchNorm(120)
    m["fc2"], m["bn4"] = torch.nn.Linear(120, 84), SeedBatchNorm(84)
    m["fc3"] = torch.nn.Linear(84, 10)
    return m


def lenet_forward(m, x):
    for name, kind, _ in LENET:
        if kind in ("conv2d", "dense", "batchnorm"):
            x = m[name](x)
        elif kind == "sigmoid":
            x = torch.sigmoid(x)
        elif kind == "avgpool":
            x = F.avg_pool2d(x, 2, 2)
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
    return x


def bnni_params(m):
    """(layer, param name, tensor) in bnni's names: batchnorm weight/bias are gamma/beta."""
    out = []
    for name, kind, _ in LENET:
        if kind in ("conv2d", "dense"):
            out += [(name, "weight", m[name].weight), (name, "bias", m[name].bias)]
        elif kind == "batchnorm":
            out += [(name, "gamma", m[name].weight), (name, "beta", m[name].bias),
                    (name, "moving_mean", m[name].moving_mean), (name, "moving_var", m[name].moving_var)]
    return out


def put_params(g, m, trainable_only=False, grads=False):
    for layer, pn, t in bnni_params(m):
        if isinstance(t, torch.nn.Parameter) or not trainable_only:
            put(g, f"{layer}/{pn}", f32(t.grad if grads else t))


def fashion_batch(n):
    with gzip.open(os.path.join(FASHION, "train-images-idx3-ubyte.gz")) as fh:
        img = np.frombuffer(fh.read(), np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    with gzip.open(os.path.join(FASHION, "train-labels-idx1-ubyte.gz")) as fh:
        lab = np.frombuffer(fh.read(), np.uint8, offset=8)[:n]
    return img.copy(), lab.astype(np.int64)


def train_run(f, name, m0, x, labels, kind, kw, steps, snap_moving_at=None):
    m = lenet()
    m.load_state_dict(m0.state_dict())
    m.train()
    opt = make_opt(kind, m.parameters(), kw)
    g = group(f, name)
    opt_attrs(g, kind, kw)
    g.attrs["steps"] = steps
    losses = []
    for s in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(lenet_forward(m, x), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if snap_moving_at == s + 1:
            for layer, pn, t in bnni_params(m):
                if pn.startswith("moving"):
                    put(g, f"moving_after_{s + 1}/{layer}/{pn}", f32(t))
    put(g, "losses", np.array(losses, np.float32))
    put_params(group(g, "params"), m, trainable_only=True)


def write_lenet(path):
    torch.manual_seed(5)
    img, lab = fashion_batch(128)
    x = torch.from_numpy(img).float() / 255.0  # bnni scales the same way: (float)byte / 255.0f
    labels = torch.from_numpy(lab)
    m0 = lenet()
    with create(path) as f:
        put(f, "images_u8", img), put(f, "labels", lab.astype(np.int32))
        put_params(group(f, "init"), m0)
        # one training step's forward and gradients
        m = lenet()
        m.load_state_dict(m0.state_dict())
        m.train()
        xr = x.clone().requires_grad_()
        out = lenet_forward(m, xr)
        loss = F.cross_entropy(out, labels)
        loss.backward()
        put(f, "train/out", f32(out)), put(f, "train/loss", np.float32(loss.item()))
        put(f, "train/dx", f32(xr.grad))
        put_params(group(f, "train/grad"), m, trainable_only=True, grads=True)
        for layer, pn, t in bnni_params(m):
            if pn.startswith("moving"):
                put(f, f"train/moving/{layer}/{pn}", f32(t))
        # eval mode with non-trivial moving statistics
        m = lenet()
        m.load_state_dict(m0.state_dict())
        with torch.no_grad():
            for name, kind, _ in LENET:
                if kind == "batchnorm":
                    C = m[name].moving_mean.numel()
                    m[name].moving_mean.copy_(randn(C, scale=0.3))
                    m[name].moving_var.copy_(torch.rand(C) * 1.5 + 0.25)
                    put(f, f"eval/moving/{name}/moving_mean", f32(m[name].moving_mean))
                    put(f, f"eval/moving/{name}/moving_var", f32(m[name].moving_var))
        m.eval()
        put(f, "eval/out", f32(lenet_forward(m, x)))
        # trajectories
        train_run(f, "sgd", m0, x, labels, "sgd", dict(lr=0.1, momentum=0.9), 10, snap_moving_at=3)
        train_run(f, "sgd_nesterov_wd", m0, x, labels, "sgd",
                  dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), 10)
        train_run(f, "adam", m0, x, labels, "adam", dict(lr=1e-3), 10)
        # weight decay gives the biases that feed a batchnorm a real gradient (0.1 * bias; their loss gradient is
        # rounding noise), so Adam moves them the same way on both sides
        train_run(f, "adam_wd", m0, x, labels, "adam", dict(lr=1e-3, weight_decay=0.1), 10)



# ---------------------------------------------------------------------------------------------------------------
# bnni's random stream, reimplemented: dropout masks that both sides apply


class BnniRng:
    """xoshiro256** seeded through splitmix64 (Blackman & Vigna; runtime/rng.c), in Python integers. The C test seeds
    the network's dropout stream with rng_seed(&net->rng, seed) and bnni draws its masks from it; the fixture draws
    the same masks here, so torch multiplies by exactly the mask bnni applies (an injected mask, not a shared
    implementation: this code is written from the published algorithms)."""

    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s = []
        x = seed & self.M
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & self.M
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & BnniRng.M

    def next(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & self.M, 7) * 9) & self.M
        t = (s[1] << 17) & self.M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def dropout_mask(self, shape, p):
        """Inverted dropout's mask for a tensor of `shape`: one uniform draw (24 bits) per value in memory order,
        kept (1/(1-p), in float32) when the draw is >= p (float32), else 0."""
        n = int(np.prod(shape))
        u = np.array([(self.next() >> 40) for _ in range(n)], np.float64) / 16777216.0
        p32 = np.float32(p)
        scale = np.float32(1.0) / (np.float32(1.0) - p32)
        mask = np.where(u >= np.float64(p32), scale, np.float32(0.0)).astype(np.float32)
        return torch.from_numpy(mask.reshape(shape))


# ---------------------------------------------------------------------------------------------------------------
# small networks written as .bnn text (tests/test_reference_nets.c builds them through the front end)


def bnni_named_params(m):
    """(layer, bnni param name, tensor) for every module of a ModuleDict keyed by bnni's layer names."""
    out = []
    for name, mod in m.items():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            out.append((name, "weight", mod.weight))
            if mod.bias is not None:
                out.append((name, "bias", mod.bias))
        elif isinstance(mod, SeedBatchNorm):
            out += [(name, "gamma", mod.weight), (name, "beta", mod.bias), (name, "moving_mean", mod.moving_mean),
                    (name, "moving_var", mod.moving_var)]
    return out


def put_named(g, m, what="value", trainable_only=False):
    for layer, pn, t in bnni_named_params(m):
        if trainable_only and not isinstance(t, torch.nn.Parameter):
            continue
        put(g, f"{layer}/{pn}", f32(t.grad if what == "grad" else t))


def put_opt_state(g, m, opt):
    """torch.optim's state tensors under bnni's names: <layer>/<param>/momentum_buffer | exp_avg | exp_avg_sq."""
    for layer, pn, t in bnni_named_params(m):
        if isinstance(t, torch.nn.Parameter):
            for k, v in opt.state[t].items():
                if k != "step" and v is not None:
                    put(g, f"{layer}/{pn}/{k}", f32(v))


def fashion_test_batch(n):
    with gzip.open(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")) as fh:
        img = np.frombuffer(fh.read(), np.uint8, offset=16)[: n * 784].reshape(n, 1, 28, 28)
    with gzip.open(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz")) as fh:
        lab = np.frombuffer(fh.read(), np.uint8, offset=8)[:n]
    return img.copy(), lab.astype(np.int64)


RESIDUAL_SRC = """model ref_residual
data fashion_mnist(batch=16)
optimizer sgd(lr=0.05, momentum=0.9, weight_decay=0.01)
network {
    conv2d(4, kernel=3, padding=1, bias=false)
    batchnorm
    relu
    unit: residual {
        conv2d(4, kernel=3, padding=1, bias=false)
        batchnorm
        tanh
        conv2d(4, kernel=3, padding=1)
    }
    relu
    maxpool(2)
    avgpool(2, stride=2)
    flatten
    dense(24)
    tanh
    skip: residual {
        dense(24)
        sigmoid
    }
    dense(10)
}
"""


def residual_model():
    m = torch.nn.ModuleDict()
    m["conv2d_1"], m["batchnorm_1"] = torch.nn.Conv2d(1, 4, 3, padding=1, bias=False), SeedBatchNorm(4)
    m["conv2d_2"], m["batchnorm_2"] = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), SeedBatchNorm(4)
    m["conv2d_3"] = torch.nn.Conv2d(4, 4, 3, padding=1)
    m["dense_1"], m["dense_2"], m["dense_3"] = torch.nn.Linear(196, 24), torch.nn.Linear(24, 24), torch.nn.Linear(24, 10)
    return m


def residual_forward(m, x, rng):
    x = F.relu(m["batchnorm_1"](m["conv2d_1"](x)))
    x = x + m["conv2d_3"](torch.tanh(m["batchnorm_2"](m["conv2d_2"](x))))  # unit: the body added to its input
    x = F.avg_pool2d(F.max_pool2d(F.relu(x), 2), 2, 2).reshape(x.shape[0], -1)
    x = torch.tanh(m["dense_1"](x))
    x = x + torch.sigmoid(m["dense_2"](x))  # skip
    return m["dense_3"](x)


DROPOUT_SRC = """model ref_dropout
data fashion_mnist(batch=16)
optimizer sgd(lr=0.1)
network {
    flatten
    dense(16)
    tanh
    dropout(0.3)
    dense(16)
    relu
    dropout(0.5)
    dense(10)
}
"""


def dropout_model():
    m = torch.nn.ModuleDict()
    m["dense_1"], m["dense_2"], m["dense_3"] = torch.nn.Linear(784, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 10)
    return m


def dropout_forward(m, x, rng):
    x = torch.tanh(m["dense_1"](x.reshape(x.shape[0], -1)))
    x = x * rng.dropout_mask(x.shape, 0.3)
    x = F.relu(m["dense_2"](x))
    x = x * rng.dropout_mask(x.shape, 0.5)
    return m["dense_3"](x)


CNN_SRC = """model ref_cnn
data fashion_mnist(batch=16)
optimizer adam(lr=0.002)
network {
    conv2d(6, kernel=3, padding=1)
    relu
    maxpool(2)
    conv2d(8, kernel=3)
    relu
    maxpool(2)
    flatten
    dropout(0.25)
    dense(24)
    relu
    dropout(0.5)
    dense(10)
}
"""


def cnn_model():
    m = torch.nn.ModuleDict()
    m["conv2d_1"], m["conv2d_2"] = torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.Conv2d(6, 8, 3)
    m["dense_1"], m["dense_2"] = torch.nn.Linear(288, 24), torch.nn.Linear(24, 10)
    return m


def cnn_forward(m, x, rng):
    x = F.max_pool2d(F.relu(m["conv2d_1"](x)), 2)
    x = F.max_pool2d(F.relu(m["conv2d_2"](x)), 2).reshape(x.shape[0], -1)
    x = x * rng.dropout_mask(x.shape, 0.25)
    x = F.relu(m["dense_1"](x))
    x = x * rng.dropout_mask(x.shape, 0.5)
    return m["dense_2"](x)


# name, model source, torch model, forward, optimizer, steps, dropout seed
NETS = [
    ("residual", RESIDUAL_SRC, residual_model, residual_forward,
     ("sgd", dict(lr=0.05, momentum=0.9, weight_decay=0.01)), 5, 0),
    ("dropout", DROPOUT_SRC, dropout_model, dropout_forward, ("sgd", dict(lr=0.1)), 3, 7),
    ("cnn_adam", CNN_SRC, cnn_model, cnn_forward, ("adam", dict(lr=0.002)), 6, 11),
]


def write_nets(path):
    """Per network: the model text, the initial parameters, one training step's output, loss, input and parameter
    gradients, then the losses of `steps` steps on the same batch, the parameters (and moving statistics) after
    them and the optimizer's state. Dropout masks come from BnniRng(dropout_seed), drawn in forward order, step
    after step, as bnni draws them from its network stream."""
    torch.manual_seed(6)
    img, lab = fashion_batch(16)
    x = torch.from_numpy(img).float() / 255.0
    labels = torch.from_numpy(lab)
    with create(path) as f:
        put(f, "images_u8", img), put(f, "labels", lab.astype(np.int32))
        for name, src, make, forward, (kind, kw), steps, seed in NETS:
            g = group(f, name)
            g.attrs["model_source"] = np.bytes_(src)
            g.attrs["steps"], g.attrs["dropout_seed"] = steps, seed
            m0 = make()
            put_named(group(g, "init"), m0)
            m = make()
            m.load_state_dict(m0.state_dict())
            m.train()
            opt = make_opt(kind, m.parameters(), kw)
            rng = BnniRng(seed)
            losses = []
            for s in range(steps):
                opt.zero_grad()
                xr = x.clone().requires_grad_()
                out = forward(m, xr, rng)
                loss = F.cross_entropy(out, labels)
                loss.backward()
                if s == 0:
                    put(g, "step1/out", f32(out)), put(g, "step1/loss", np.float32(loss.item()))
                    put(g, "step1/dx", f32(xr.grad))
                    put_named(group(g, "step1/grad"), m, "grad", trainable_only=True)
                opt.step()
                losses.append(loss.item())
            put(g, "losses", np.array(losses, np.float32))
            put_named(group(g, "final"), m)
            put_opt_state(group(g, "state"), m, opt)


# ---------------------------------------------------------------------------------------------------------------
# whole training runs of `bnni train`: schedules over several epochs, metrics, the trainer's loop

TRAIN_STEP_SRC = """model ref_train_step
data fashion_mnist(batch=32, shuffle=false)
optimizer sgd(lr=0.2, momentum=0.9, weight_decay=0.001)
schedule step(every=1, factor=0.5)
loss cross_entropy
network {
    flatten
    dense(16, bias=false)
    batchnorm
    relu
    dense(10)
}
"""

TRAIN_COSINE_SRC = """model ref_train_cosine
data fashion_mnist(batch=32, shuffle=false)
optimizer adam(lr=0.01, weight_decay=0.001)
schedule cosine(min_lr=0.001)
loss cross_entropy
network {
    flatten
    dense(16, bias=false)
    batchnorm
    relu
    dense(10)
}
"""


def mlp_bn_model():
    m = torch.nn.ModuleDict()
    m["dense_1"], m["batchnorm_1"], m["dense_2"] = torch.nn.Linear(784, 16, bias=False), SeedBatchNorm(16), \
        torch.nn.Linear(16, 10)
    return m


def mlp_bn_forward(m, x):
    return m["dense_2"](F.relu(m["batchnorm_1"](m["dense_1"](x.reshape(x.shape[0], -1)))))


# name, model source, optimizer, schedule, epochs, training images, test images
TRAININGS = [
    ("step_sgd", TRAIN_STEP_SRC, ("sgd", dict(lr=0.2, momentum=0.9, weight_decay=0.001)),
     lambda o: torch.optim.lr_scheduler.StepLR(o, 1, 0.5), 4, 96, 64),
    ("cosine_adam", TRAIN_COSINE_SRC, ("adam", dict(lr=0.01, weight_decay=0.001)),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 4, 0.001), 4, 96, 64),
]


def write_training(path):
    """What `bnni train MODEL --init INIT --epochs E --limit N --test-limit T` must end with, INIT holding "init":
    each epoch trains on the first N images in order (shuffle=false) in batches of 32, the last one partial, at the
    schedule's rate for that epoch (torch's StepLR / CosineAnnealingLR stepped once per epoch), then evaluates the
    first T test images in eval mode, in chunks of 32 images as bnni does. Stored: the per-epoch rate, the four
    metrics of every epoch, the final parameters, moving statistics and optimizer state."""
    torch.manual_seed(7)
    for name, src, (kind, kw), sched, epochs, n, t in TRAININGS:
        assert f"batch=32" in src and "shuffle=false" in src
    with create(path) as f:
        for name, src, (kind, kw), sched, epochs, n, t in TRAININGS:
            img, lab = fashion_batch(n)
            timg, tlab = fashion_test_batch(t)
            x, labels = torch.from_numpy(img).float() / 255.0, torch.from_numpy(lab)
            tx, tlabels = torch.from_numpy(timg).float() / 255.0, torch.from_numpy(tlab)
            g = group(f, name)
            g.attrs["model_source"] = np.bytes_(src)
            g.attrs["epochs"], g.attrs["limit"], g.attrs["test_limit"] = epochs, n, t
            m = mlp_bn_model()
            put_named(group(g, "init"), m)
            opt = make_opt(kind, m.parameters(), kw)
            sch = sched(opt)
            cols = {k: [] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
            for e in range(epochs):
                g.attrs[f"lr_{e + 1}"] = opt.param_groups[0]["lr"]
                m.train()
                loss_sum, correct = 0.0, 0
                for b in range(0, n, 32):
                    xb, yb = x[b:b + 32], labels[b:b + 32]
                    opt.zero_grad()
                    out = mlp_bn_forward(m, xb)
                    loss = F.cross_entropy(out, yb)
                    loss.backward()
                    opt.step()
                    loss_sum += loss.item() * len(yb)
                    correct += int((out.argmax(1) == yb).sum())
                m.eval()
                tloss, tcorrect = 0.0, 0
                with torch.no_grad():
                    for b in range(0, t, 32):
                        out = mlp_bn_forward(m, tx[b:b + 32])
                        tloss += F.cross_entropy(out, tlabels[b:b + 32]).item() * len(out)
                        tcorrect += int((out.argmax(1) == tlabels[b:b + 32]).sum())
                cols["train_loss"].append(loss_sum / n), cols["train_acc"].append(correct / n)
                cols["test_loss"].append(tloss / t), cols["test_acc"].append(tcorrect / t)
                sch.step()
            mg = group(g, "metrics")
            for k, v in cols.items():
                mg.create_dataset(k, data=np.array(v, np.float64), track_times=False)  # float64: put() narrows
            put_named(group(g, "final"), m)
            put_opt_state(group(g, "state"), m, opt)


# ---------------------------------------------------------------------------------------------------------------
# the batch-norm lab's layer arguments: init= of conv2d/dense, batchnorm(affine=false)

INIT_QUANTILES = np.linspace(0.05, 0.95, 19)


def init_case(f, name, kind, shape, init, fn):
    """torch's initialisation of a weight of `shape` (fn draws it in place): the distribution bnni's init= must
    reproduce, as 19 quantiles, its standard deviation and largest magnitude (a sample is 100 KB, its quantiles
    are enough to tell a wrong fan or gain). Bias quantiles only for "default" (nn.Conv2d / nn.Linear)."""
    g = group(f, name)
    g.attrs["kind"], g.attrs["init"] = np.bytes_(kind), np.bytes_(init)
    g.attrs["shape"] = np.array(shape, np.int32)
    w = torch.empty(*shape)
    b = fn(w)
    v = w.flatten().double().numpy()
    put(g, "quantiles", np.quantile(v, INIT_QUANTILES).astype(np.float32))
    put(g, "std", np.float32(v.std())), put(g, "maxabs", np.float32(np.abs(v).max()))
    if b is not None:
        put(g, "bias_maxabs", np.float32(b.abs().max().item()))
        put(g, "bias_bound", np.float32(1.0 / math.sqrt(shape[1] * (shape[2] * shape[3] if len(shape) == 4 else 1))))


def default_init(shape):
    """nn.Conv2d's or nn.Linear's own reset_parameters on a module of this shape."""
    def fn(w):
        m = torch.nn.Conv2d(shape[1], shape[0], shape[2]) if len(shape) == 4 else torch.nn.Linear(shape[1], shape[0])
        with torch.no_grad():
            w.copy_(m.weight)
        return m.bias.detach()
    return fn


def write_lab(path):
    """lab.h5: init cases per layer kind (conv2d [64, 32, 3, 3]: fan_in 288, fan_out 576; dense [200, 120]: fan_in
    120, fan_out 200, so a swapped or missing fan shows), and nn.BatchNorm1d/2d(affine=False) in train and eval mode:
    x, dy, y, dx, no parameters (checked here), moving statistics for eval."""
    torch.manual_seed(3)
    with create(path) as f:
        for kind, shape in [("conv2d", (64, 32, 3, 3)), ("dense", (200, 120))]:
            inits = [("default", default_init(shape)),
                     ("xavier", lambda w: (torch.nn.init.xavier_uniform_(w), None)[1]),
                     ("kaiming", lambda w: (torch.nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),
                                            None)[1]),
                     ("normal(0.05)", lambda w: (torch.nn.init.normal_(w, 0.0, 0.05), None)[1]),
                     ("uniform(0.2)", lambda w: (torch.nn.init.uniform_(w, -0.2, 0.2), None)[1])]
            for init, fn in inits:
                tag = init.split("(")[0]
                init_case(f, f"init/{kind}_{tag}", kind, shape, init, fn)
        for name, shape, momentum, eps in [("bn_noaffine_2d", (16, 5), 0.9, 1e-5),
                                           ("bn_noaffine_4d", (4, 3, 5, 5), 0.7, 1e-3)]:
            g = group(f, name)
            C = shape[1]
            g.attrs["momentum"], g.attrs["eps"] = np.float32(momentum), np.float32(eps)
            g.attrs["in"] = np.array([len(shape) - 1, C, *(shape[2:] if len(shape) == 4 else (1, 1))], np.int32)
            bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(C, eps=eps, momentum=1 - momentum,
                                                                                     affine=False)
            assert len(list(bn.parameters())) == 0
            x, dy = randn(*shape, scale=2.0, shift=0.5), randn(*shape)
            put(g, "x", f32(x)), put(g, "dy", f32(dy))
            mm, mv = torch.linspace(-0.5, 0.5, C), torch.linspace(0.5, 2.0, C)
            put(g, "eval/moving_mean", f32(mm)), put(g, "eval/moving_var", f32(mv))
            for train in (1, 0):
                with torch.no_grad():
                    bn.running_mean.copy_(mm), bn.running_var.copy_(mv)
                bn.train(bool(train))
                xr = x.clone().requires_grad_()
                y = bn(xr)
                (y * dy).sum().backward()
                tag = "train" if train else "eval"
                put(g, f"{tag}/y", f32(y)), put(g, f"{tag}/dx", f32(xr.grad))


def main():
    write_lab(os.path.join(HERE, "lab.h5"))
    write_batchnorm(os.path.join(HERE, "batchnorm.h5"))
    write_layers(os.path.join(HERE, "layers.h5"))
    write_loss(os.path.join(HERE, "loss.h5"))
    write_optim(os.path.join(HERE, "optim.h5"))
    write_lenet(os.path.join(HERE, "lenet.h5"))
    write_nets(os.path.join(HERE, "nets.h5"))
    write_training(os.path.join(HERE, "training.h5"))
    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in os.listdir(HERE) if n.endswith(".h5"))
    print(f"fixtures written to {HERE}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
