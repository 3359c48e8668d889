#!/usr/bin/env python3
"""Writes the small gru-v1 test model testdata/models/test-gru.safetensors.

Seeded and dependency-free (standard library only), so the output is the same
bytes on every machine and Python 3 version: every random draw is an integer
from `random.Random(seed).randint` (Mersenne Twister, stable across versions),
and every float is an integer divided by a power of two, exactly representable
in f32. No math-library function is used.

The weights are random but scaled so that gate pre-activations and logits are
of order 1: the model predicts non-trivial, varied distributions (not uniform,
not one-hot), which is what the codec tests need. It has not been trained.

    python3 train/make_test_model.py [--dim 32] [--layers 2] [--seed 20261127] [--out PATH]

The smallest valid model (d = 32) is about 100 KB because of the
[257, 3d] f32 embedding; d = 32, L = 2 gives 129,648 bytes.
"""

import argparse
import json
import os
import random
import struct

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(dim, layers, seed):
    rng = random.Random(seed)
    d3 = 3 * dim
    tensors = {}  # name -> (dtype, shape, bytes)

    def f32(name, shape, ints, denom):
        vals = [i / denom for i in ints]  # exact: |i| < 2^24, denom a power of two
        tensors[name] = ("F32", shape, struct.pack("<%df" % len(vals), *vals))

    def i8(name, shape, vals):
        tensors[name] = ("I8", shape, struct.pack("<%db" % len(vals), *vals))

    def qmat(prefix, wname, sname, bname, rows, cols, s_lo, s_hi):
        i8(prefix + wname, [rows, cols], [rng.randint(-127, 127) for _ in range(rows * cols)])
        f32(prefix + sname, [rows], [rng.randint(s_lo, s_hi) for _ in range(rows)], 65536)
        f32(prefix + bname, [rows], [rng.randint(-1024, 1024) for _ in range(rows)], 2048)

    # embed in [-1.5, 1.5]
    f32("embed", [257, d3], [rng.randint(-3072, 3072) for _ in range(257 * d3)], 2048)
    # scale s ~ target * 127 / (73 * 50 * sqrt(cols)) for |W| ~ U(-127, 127),
    # |q(h)| ~ 50: recurrent/input pre-activations ~1.5, logits ~3 (d = 32);
    # as integers over 65536
    def isqrt(n):
        x, y = n, (n + 1) // 2
        while y < x:
            x, y = y, (y + n // y) // 2
        return x

    def scale_range(target_milli, cols):
        # base = target * 127 / (3650 * sqrt(cols)) in units of 1/65536,
        # drawn per row from [base/2, 3*base/2]
        base = target_milli * 127 * 65536 // (3650 * isqrt(cols * 1000000))
        return base // 2, base * 3 // 2

    lo, hi = scale_range(1500, dim)
    for layer in range(layers):
        p = "l%d." % layer
        qmat(p, "w_hh", "s_hh", "b_hh", d3, dim, lo, hi)
        if layer > 0:
            qmat(p, "w_ih", "s_ih", "b_ih", d3, dim, lo, hi)
    hlo, hhi = scale_range(3000, layers * dim)
    qmat("head.", "w", "s", "b", 256, layers * dim, hlo, hhi)

    meta = {"lza.arch": "gru-v1", "lza.dim": str(dim), "lza.layers": str(layers), "lza.vocab": "256"}
    return meta, tensors


def serialize(meta, tensors):
    parts = ['"__metadata__":' + json.dumps(meta, sort_keys=True, separators=(",", ":"))]
    data = bytearray()
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        desc = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        parts.append(json.dumps(name) + ":" + json.dumps(desc, separators=(",", ":")))
        data += raw
    header = "{" + ",".join(parts) + "}"
    header += " " * (-len(header) % 8)
    hb = header.encode("ascii")
    return struct.pack("<Q", len(hb)) + hb + bytes(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--out", default=os.path.join(REPO, "testdata", "models", "test-gru.safetensors"))
    a = ap.parse_args()
    if a.dim % 32 or not 32 <= a.dim <= 1024 or not 1 <= a.layers <= 8:
        ap.error("need dim a multiple of 32 in 32..=1024 and layers in 1..=8")
    blob = serialize(*build(a.dim, a.layers, a.seed))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "wb") as f:
        f.write(blob)
    print("wrote %s (%d bytes)" % (a.out, len(blob)))


if __name__ == "__main__":
    main()
