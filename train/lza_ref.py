#!/usr/bin/env python3
"""Reference evaluator for gru-v1 model files in numpy, following format-spec
7.2, 7.3 (the spec's own exp) and 7.4 (16-lane sum) operation by operation:
f32, each operation rounded, no FMA, integer sums exact. Meant to give the
engine's frequencies bit for bit. For cross-checking exported files and the
PyTorch evaluation; slow (one step at a time), so use it on a few KB.

  python3 train/lza_ref.py MODEL.safetensors FILE [--bytes N]
  python3 train/lza_ref.py MODEL.safetensors --val K [--bytes N]   (first K held-out chunks)
"""
import argparse, math, os, sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gru_format  # noqa: E402

F = np.float32
TOTAL = 1 << 16


def _f(bits):
    return np.array([bits], np.uint32).view(np.float32)[0]


LOG2E, LN2_HI, LN2_LO, M = _f(0x3FB8AA3B), _f(0x3F318000), _f(0xB95E8083), F(1.5 * 2 ** 23)
P = [_f(b) for b in (0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA, 0x3F000000)]


def exp(x):
    """format-spec 7.3 exp, elementwise on an f32 array."""
    x = np.asarray(x, F)
    zero = ~(x >= F(-87.0))
    x = np.where(zero, F(0.0), np.minimum(x, F(88.0))).astype(F)
    t = x * LOG2E
    n = (t + M) - M
    r = (x - n * LN2_HI) - n * LN2_LO
    p = P[0]
    for c in P[1:]:
        p = p * r + c
    p = p * (r * r) + r + F(1.0)
    two_n = ((n.astype(np.int32) + 127) << 23).astype(np.uint32).view(F)
    return np.where(zero, F(0.0), p * two_n).astype(F)


def sigmoid(x):
    return F(1.0) / (F(1.0) + exp(-x))


def tanh(x):
    return F(2.0) * sigmoid(F(2.0) * x) - F(1.0)


def q(v):
    return np.clip(gru_format.round_half_away(v * F(127.0)), -127, 127).astype(np.int32)


class Model:
    def __init__(self, path):
        t, meta, self.d, self.L = gru_format.read(path)
        self.embed = t["embed"]
        lin = lambda w, s, b: (t[w].astype(np.int32), t[s] / F(127.0), t[b])
        self.hh = [lin(f"l{l}.w_hh", f"l{l}.s_hh", f"l{l}.b_hh") for l in range(self.L)]
        self.ih = [None] + [lin(f"l{l}.w_ih", f"l{l}.s_ih", f"l{l}.b_ih") for l in range(1, self.L)]
        self.head = lin("head.w", "head.s", "head.b")

    @staticmethod
    def apply(lin, x):
        w, m, b = lin
        acc = x @ w.T  # exact i32 sums
        return acc.astype(F) * m + b

    def step(self, h, u):
        """h: list of L arrays [B, d] f32; u: [B] input symbols -> (new h, logits [B, 256])."""
        d, new = self.d, []
        for l in range(self.L):
            gi = self.embed[u] if l == 0 else self.apply(self.ih[l], q(new[l - 1]))
            gh = self.apply(self.hh[l], q(h[l]))
            r = sigmoid(gi[:, :d] + gh[:, :d])
            z = sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
            n = tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
            new.append((F(1.0) - z) * n + z * h[l])
        logits = self.apply(self.head, np.concatenate([q(x) for x in new], axis=1))
        return new, logits


def freqs(logits):
    """format-spec 7.4 for a batch: logits [B, 256] f32 -> frequencies [B, 256] summing to 2^16."""
    B = logits.shape[0]
    mx = logits.max(axis=1, keepdims=True)
    am = np.argmax(logits == mx, axis=1)  # the first index holding the largest logit
    e = exp(logits - mx)
    lanes = e.reshape(B, 16, 16)  # lanes[:, j, i] = e[16j + i]
    s = lanes[:, 0, :].copy()
    for j in range(1, 16):
        s = s + lanes[:, j, :]
    for w in (8, 4, 2, 1):
        s = s[:, :w] + s[:, w:2 * w]  # s[i] = s[i] + s[i+w] for i < w
    inv = F(TOTAL - 256) / s[:, 0]
    f = 1 + np.minimum(np.floor(e * inv[:, None]), F(TOTAL - 256)).astype(np.int64)
    f[np.arange(B), am] += TOTAL - f.sum(axis=1)
    return f


def code_bits(model, chunks):
    """chunks: list of byte arrays, each from the zero state -> (coded bits, CE bits, bytes)."""
    B, n = len(chunks), max(len(c) for c in chunks)
    h = [np.zeros((B, model.d), F) for _ in range(model.L)]
    coded = ce = 0.0
    u = np.full(B, 256, np.int64)
    for t in range(n):
        h, logits = model.step(h, u)
        f = freqs(logits)
        for b, c in enumerate(chunks):
            if t < len(c):
                x = int(c[t])
                coded += 16 - math.log2(f[b, x])
                lg = logits[b].astype(np.float64)
                ce += (np.log(np.exp(lg - lg.max()).sum()) + lg.max() - lg[x]) / math.log(2)
        u = np.array([int(c[t]) if t < len(c) else 0 for c in chunks])
    return coded, ce, sum(len(c) for c in chunks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("file", nargs="?")
    ap.add_argument("--val", type=int, default=0, help="use the first K held-out chunks")
    ap.add_argument("--val-bytes", type=int, default=384 * 1024)
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".corpus"))
    ap.add_argument("--bytes", type=int, default=2048, help="bytes of each chunk to code")
    a = ap.parse_args()
    m = Model(a.model)
    if a.val:
        import data
        _, val = data.split_corpus(data.load_corpus(a.corpus), a.val_bytes)
        chunks = [c[:a.bytes] for _, c in val[:a.val]]
    else:
        raw = np.frombuffer(open(a.file, "rb").read(), np.uint8)[:a.bytes]
        chunks = [raw[i:i + 16384] for i in range(0, len(raw), 16384)]
    coded, ce, n = code_bits(m, chunks)
    print(f"{a.model}: d={m.d} L={m.L} bytes={n} coded_bits={coded:.3f} coded_bpb={coded / n:.5f} ce_bpb={ce / n:.5f}")


if __name__ == "__main__":
    main()
