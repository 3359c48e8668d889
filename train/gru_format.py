"""The gru-v1 model file (format-spec 7.1): safetensors written and read with
struct/json/numpy only, and the int8 row quantization in exact f32 arithmetic."""
import json, struct

import numpy as np

DTYPES = {"I8": np.int8, "F32": np.float32}
NAMES = {np.dtype(np.int8): "I8", np.dtype(np.float32): "F32"}


def round_half_away(x):
    """Round half away from zero, exactly (x is f32; ties detected on the exact fraction)."""
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    f = np.floor(a)
    r = f + (a - f >= np.float32(0.5)).astype(np.float32)  # a - f is exact for f32
    return np.copysign(r, x).astype(np.float32)


def quantize_rows(w):
    """Per output row symmetric int8: s = max|row| / 127, q = round(w / s) in -127..=127.
    -> (q int8 [rows, cols], s f32 [rows]). An all-zero row gets s = 1/127."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=1)
    s = np.where(amax > 0, amax / np.float32(127.0), np.float32(1.0 / 127.0)).astype(np.float32)
    q = np.clip(round_half_away(w / s[:, None]), -127, 127).astype(np.int8)
    return q, s


def tensor_names(layers):
    names = ["embed"]
    for l in range(layers):
        names += [f"l{l}.w_hh", f"l{l}.s_hh", f"l{l}.b_hh"]
        if l >= 1:
            names += [f"l{l}.w_ih", f"l{l}.s_ih", f"l{l}.b_ih"]
    return names + ["head.w", "head.s", "head.b"]


def to_file_tensors(p, d, L):
    """Float parameters (numpy f32: embed, w_hh[l], b_hh[l], w_ih[l], b_ih[l],
    head_w, head_b) -> the file's tensors, quantized."""
    t = {"embed": np.asarray(p["embed"], np.float32)}
    for l in range(L):
        t[f"l{l}.w_hh"], t[f"l{l}.s_hh"] = quantize_rows(p["w_hh"][l])
        t[f"l{l}.b_hh"] = np.asarray(p["b_hh"][l], np.float32)
        if l >= 1:
            t[f"l{l}.w_ih"], t[f"l{l}.s_ih"] = quantize_rows(p["w_ih"][l])
            t[f"l{l}.b_ih"] = np.asarray(p["b_ih"][l], np.float32)
    t["head.w"], t["head.s"] = quantize_rows(p["head_w"])
    t["head.b"] = np.asarray(p["head_b"], np.float32)
    check(t, d, L)
    return t


def check(t, d, L):
    d3 = 3 * d
    want = {"embed": ("F32", (257, d3)), "head.w": ("I8", (256, L * d)),
            "head.s": ("F32", (256,)), "head.b": ("F32", (256,))}
    for l in range(L):
        want.update({f"l{l}.w_hh": ("I8", (d3, d)), f"l{l}.s_hh": ("F32", (d3,)),
                     f"l{l}.b_hh": ("F32", (d3,))})
        if l >= 1:
            want.update({f"l{l}.w_ih": ("I8", (d3, d)), f"l{l}.s_ih": ("F32", (d3,)),
                         f"l{l}.b_ih": ("F32", (d3,))})
    assert set(t) == set(want), sorted(set(t) ^ set(want))
    for k, (dt, shape) in want.items():
        a = t[k]
        assert NAMES[a.dtype] == dt and a.shape == shape, (k, a.dtype, a.shape)
        if dt == "I8":
            assert a.min() >= -127, k
        else:
            assert np.isfinite(a).all(), k
    assert d % 32 == 0 and 32 <= d <= 1024 and 1 <= L <= 8


def write(path, t, d, L, extra_meta=None):
    check(t, d, L)
    meta = {"lza.arch": "gru-v1", "lza.dim": str(d), "lza.layers": str(L), "lza.vocab": "256"}
    meta.update(extra_meta or {})
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in tensor_names(L):
        a = np.ascontiguousarray(t[name]).astype(t[name].dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read(path):
    """-> (tensors dict of numpy arrays, metadata dict, d, L); checks the layout."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    assert meta.get("lza.arch") == "gru-v1" and meta.get("lza.vocab") == "256", meta
    d, L = int(meta["lza.dim"]), int(meta["lza.layers"])
    data, t, covered = buf[8 + n:], {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = info["data_offsets"]
        assert a == covered, "safetensors data must be contiguous"
        covered = b
        dt = np.dtype(DTYPES[info["dtype"]]).newbyteorder("<")
        t[name] = np.frombuffer(data[a:b], dt).reshape(info["shape"]).astype(DTYPES[info["dtype"]])
    assert covered == len(data)
    check(t, d, L)
    return t, meta, d, L
