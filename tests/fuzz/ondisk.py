#!/usr/bin/python3
"""On-disk corruption fuzzing of bnni's checkpoint reading (issue #17).

Copies real checkpoints, damages the copies as a bad disk, an interrupted copy or a truncated download would
(bytes changed, runs zeroed or overwritten, blocks duplicated, address-sized fields rewritten, the file cut
short), and runs `bnni inspect FILE` and `bnni eval FILE --limit 16` on each, as a user would, each under a
time limit. A finding is any run that

  - was killed by a signal, or did not end within --timeout seconds (a hang);
  - printed a sanitizer report (ASan, UBSan, LSan: use a SANITIZE=1 build);
  - ended with a status other than 0 or 1;
  - ended with status 1 but not with exactly one line `bnni: error: FILE: MESSAGE` (the embedded model's
    diagnostics followed by `... the model does not check ...` are the documented exception);
  - ended with status 0 but printed anything on stderr.

Each finding is shrunk (changes that do not matter are dropped, as long as the run still fails the same way)
and saved as OUT/findings/NAME.patch, the form tests/ckpt_corrupt/ keeps (tests/test_ckpt_corpus.c replays
it through the binary), with the damaged file beside it. Every damaged file is different (a seeded stream),
and the changes go mostly (85 %) to HDF5's metadata rather than to tensor values: h5py, when it can be
imported, says where the datasets' values lie.

    /usr/bin/python3 tests/fuzz/ondisk.py [--bnni ./bnni] [--minutes 30] [--seed N] [--timeout 10]
        [--out build-fuzz/ondisk] [--data DIR] [BASE.h5 ...]       (default: tests/ckpt_corrupt/base*.h5)

Run it alone on a shared machine (nice): each bnni run is short but they follow each other without pause.
"""
import argparse
import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

COMMANDS = {
    "inspect": ["inspect", "{file}"],
    "eval": ["eval", "{file}", "--limit", "16", "--threads", "1"],
}
SANITIZER = re.compile(rb"(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                       rb"ERROR: [A-Za-z]+Sanitizer)")


def data_ranges(path):
    """(offset, length) of every dataset's stored values, or [] when h5py is missing or cannot read the file."""
    try:
        import h5py
    except ImportError:
        return []
    ranges = []

    def visit(_, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        d = obj.id
        if obj.chunks:
            for i in range(d.get_num_chunks()):
                c = d.get_chunk_info(i)
                ranges.append((c.byte_offset, c.size))
        elif d.get_offset() is not None:
            ranges.append((d.get_offset(), d.get_storage_size()))

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except Exception:  # noqa: BLE001 -- any failure only costs the bias towards metadata
        return []
    return sorted(ranges)


class Base:
    """A checkpoint to damage: its bytes, and the offsets of its metadata (everything but dataset values)."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)
        with open(path, "rb") as f:
            self.data = f.read()
        values = bytearray(len(self.data))
        for off, n in data_ranges(path):
            values[off:off + n] = b"\1" * len(values[off:off + n])
        self.meta = [i for i, v in enumerate(values) if not v] or list(range(len(self.data)))


def pick_offset(rng, base):
    return rng.choice(base.meta) if rng.random() < 0.85 else rng.randrange(len(base.data))


def mutate(rng, base):
    """A list of changes (offset, bytes) and the damaged file's size."""
    changes, size = [], len(base.data)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "flip", "bytes", "zero", "copy", "address", "truncate"))
        at = pick_offset(rng, base)
        if kind == "flip":  # scattered single bytes, as the files have them
            for _ in range(int(2 ** rng.uniform(0, 7))):
                o = pick_offset(rng, base)
                changes.append((o, bytes([base.data[o] ^ (1 << rng.randrange(8))])))
        elif kind == "bytes":
            changes.append((at, bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))))
        elif kind == "zero":
            changes.append((at, bytes(rng.randint(1, 512))))
        elif kind == "copy":  # a well-formed structure in the wrong place
            src, n = pick_offset(rng, base), rng.randint(8, 256)
            changes.append((at, base.data[src:src + n]))
        elif kind == "address":  # an 8-byte little-endian address or length, plausible or not
            v = rng.choice((rng.randrange(len(base.data) + 4096), rng.randrange(2 ** 64), 2 ** 64 - 1, 0))
            changes.append((at, v.to_bytes(8, "little")))
        else:
            size = min(size, rng.choice((pick_offset(rng, base), rng.randrange(len(base.data)))))
    return [(o, b) for o, b in changes if o < len(base.data)], size


def apply(base, changes, size):
    buf = bytearray(base.data)
    for off, b in changes:
        buf[off:off + len(b)] = b
    return bytes(buf[:min(size, len(base.data))])


def run(bnni, command, path, timeout, env):
    """Runs one bnni command on path: (status or None for a hang, stdout, stderr, seconds)."""
    argv = [bnni] + [a.format(file=path) for a in COMMANDS[command]]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        status = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # bnni and its trial child, which share the new session
        out, err = p.communicate()
        status = None
    return status, out, err, time.monotonic() - t0


def judge(status, err, path):
    """None when the run is acceptable, else what is wrong (a short name for the file)."""
    if status is None:
        return "hang"
    if status < 0:
        return "signal-%d" % -status
    if SANITIZER.search(err):
        return "sanitizer"
    if status not in (0, 1):
        return "status-%d" % status
    lines = err.decode("utf-8", "replace").splitlines()
    if status == 0:
        return "stderr-on-success" if lines else None
    head = "bnni: error: %s: " % path
    if len(lines) == 1 and lines[0].startswith(head) and lines[0][len(head):].strip():
        return None
    model = "bnni: error: %s:model_source: the model does not check" % path
    if len(lines) > 1 and lines[-1].startswith(model) and all(l.startswith(path + ":model_source:") or
                                                              not l.startswith("bnni") for l in lines[:-1]):
        return None  # docs/errors.md: the embedded model's diagnostics, then one error line
    return "message" if lines else "empty-message"


def outcome(status, err, path):
    """An acceptable run's outcome for the summary: "exit 0", or the error with numbers as N."""
    if status == 0:
        return "exit 0"
    line = err.decode("utf-8", "replace").splitlines()[-1]
    for prefix in ("bnni: error: ", path, ":model_source", ": "):
        line = line[len(prefix):] if line.startswith(prefix) else line
    return re.sub(r"(?<![A-Za-z])\d+", "N", line)[:72]


def shrink(base, changes, size, still_fails):
    """Drops changes (and the truncation) that the failure does not need: ddmin's chunk removal."""
    if size < len(base.data) and still_fails(changes, len(base.data)):
        size = len(base.data)
    n = 2
    while len(changes) >= 2:
        chunk = max(1, len(changes) // n)
        for i in range(0, len(changes), chunk):
            rest = changes[:i] + changes[i + chunk:]
            if rest and still_fails(rest, size):
                changes, n = rest, max(n - 1, 2)
                break
        else:
            if chunk == 1:
                break
            n = min(n * 2, len(changes))
    return changes, size


def save(out_dir, name, base, changes, size, note):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name + ".patch"), "w") as f:
        f.write("# %s\n" % note)
        f.write("base %s\nsize %d\n" % (base.name, size))
        for off, b in changes:
            f.write("at %d %s\n" % (off, b.hex()))
    with open(os.path.join(out_dir, name + ".h5"), "wb") as f:
        f.write(apply(base, changes, size))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = os.path.join(here, "..", "ckpt_corrupt")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bases", nargs="*")
    ap.add_argument("--bnni", default="./bnni")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--out", default="build-fuzz/ondisk")
    ap.add_argument("--data", help="the IDX directory for eval (default: the model's)")
    ap.add_argument("--no-shrink", action="store_true")
    o = ap.parse_args()
    if o.data:
        COMMANDS["eval"] += ["--data", o.data]
    paths = o.bases or sorted(os.path.join(corpus, n) for n in os.listdir(corpus) if re.match(r"base.*\.h5$", n))
    bases = [Base(p) for p in paths]
    rng = random.Random(o.seed)
    scratch = os.path.join(o.out, "scratch")
    os.makedirs(scratch, exist_ok=True)
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    stats, outcomes, findings = {"files": 0, "runs": 0}, {}, []
    end = time.monotonic() + 60 * o.minutes
    print("ondisk: %s on %s, seed %d, %g minutes" % (o.bnni, ", ".join(b.name for b in bases), o.seed,
                                                        o.minutes), flush=True)
    last = time.monotonic()
    while time.monotonic() < end:
        base = rng.choice(bases)
        changes, size = mutate(rng, base)
        path = os.path.join(scratch, "damaged.h5")
        with open(path, "wb") as f:
            f.write(apply(base, changes, size))
        stats["files"] += 1
        failed = []
        for command in COMMANDS:
            status, _, err, secs = run(o.bnni, command, path, o.timeout, env)
            stats["runs"] += 1
            bad = judge(status, err, path)
            key = (base.name, command, bad or outcome(status, err, path))
            outcomes[key] = outcomes.get(key, 0) + 1
            if bad:
                failed.append((command, bad, secs))
        if time.monotonic() - last > 60:
            last = time.monotonic()
            print("ondisk: %d files, %d runs, %d findings" % (stats["files"], stats["runs"], len(findings)),
                  flush=True)
        if not failed:
            continue
        command, bad, secs = failed[0]  # one file, saved once, shrunk for the first command it fails

        def still_fails(ch, sz, command=command, bad=bad):
            p = os.path.join(scratch, "shrink.h5")
            with open(p, "wb") as f:
                f.write(apply(base, ch, sz))
            st, _, e, _ = run(o.bnni, command, p, o.timeout, env)
            return judge(st, e, p) == bad

        ch, sz = (changes, size) if o.no_shrink else shrink(base, changes, size, still_fails)
        digest = hashlib.sha1(repr((base.name, ch, sz)).encode()).hexdigest()[:10]
        name = "%s-%s-%s-%s" % (bad, command, os.path.splitext(base.name)[0], digest)
        note = "found by tests/fuzz/ondisk.py (seed %d): %s; %d of %d changes kept%s" % (
            o.seed, ", ".join("bnni %s: %s" % (c, b) for c, b, _ in failed), len(ch), len(changes),
            ", not cut short" if sz == len(base.data) and size < sz else "")
        save(os.path.join(o.out, "findings"), name, base, ch, sz, note)
        findings.append(name)
        print("ondisk: FINDING %s (%.1f s)" % (name, secs), flush=True)
    report = ["ondisk: %s, seed %d, %.1f minutes: %d files, %d runs, %d findings" % (
        o.bnni, o.seed, o.minutes, stats["files"], stats["runs"], len(findings))]
    for (name, command, key), n in sorted(outcomes.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[1])):
        report.append("  %-20s %-8s %6d  %s" % (name, command, n, key))
    report += ["  finding: " + f for f in findings]
    print("\n".join(report), flush=True)
    with open(os.path.join(o.out, "summary-%d.txt" % o.seed), "w") as f:
        f.write("\n".join(report) + "\n")
    shutil.rmtree(scratch, ignore_errors=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
