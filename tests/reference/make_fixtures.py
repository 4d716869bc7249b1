#!/usr/bin/python3
"""PyTorch reference fixtures for bnni's runtime tests (tests/test_{batchnorm,loss,optim,reference}.c).

Run from the repository root with Debian's python (torch 1.13, h5py, numpy):
    /usr/bin/python3 tests/reference/make_fixtures.py
It rewrites tests/reference/{layers,batchnorm,loss,optim,lenet}.h5. Everything is float32 and seeded, on one
CPU thread, without HDF5 timestamps, so a rerun on the same machine writes the same bytes. The C tests compare against these files; torch is never
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
    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in os.listdir(HERE) if n.endswith(".h5"))
    print(f"fixtures written to {HERE}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
