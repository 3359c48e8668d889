#!/usr/bin/env python3
"""Reference coder for lza's context-mixing chunks (format-spec.md section 8).

Written from the spec text alone (sections 8.1-8.5, 8.7 and 8.8), presets 0-7 and 9, without the
language model (preset byte bit 7 clear).  The preset byte is: bits 0-5 preset id, bit 6
the x86 filter (8.7; decode undoes it), bit 7 the model.  Preset 5 (with-model-classes) is
preset 4 plus the line-column context and the class weight set d; its class APM A6, like A3, is
used only with the model and so is not implemented.  Plain Python integers; slow
(~tens of microseconds per bit), so keep inputs to a few KB.

Usage:
  python3 train/cm_ref.py encode PRESET FILE [OUT]      payload (preset byte + coded bytes)
  python3 train/cm_ref.py encode-x86 PRESET FILE [OUT]  the same after the x86 filter (8.7), bit 6 set
  python3 train/cm_ref.py encode-image 6 FILE OUT WIDTH FIRST
                                                        preset 6 (16-bit image, 8.8) with its header
  python3 train/cm_ref.py decode PAYLOAD RAW_LEN [OUT]   raw bytes
  python3 train/cm_ref.py probs PRESET FILE [N]         per-bit probabilities, one line a bit:
                                                        "byte bitpos p" for the first N bytes
  python3 train/cm_ref.py archive ARCHIVE.lza           lists codec-3 chunks of an archive and
                                                        checks that each decodes (raw_xxh3 not
                                                        checked: no xxh3 here) and re-encodes to
                                                        the same payload (with the filter where bit 6
                                                        is set); chunks that use the model (bit 7) are
                                                        listed and skipped
  python3 train/cm_ref.py check FILE...                 for every preset (0-5, 7), plain and x86-filtered,
                                                        and preset 6 with each (width, first) of
                                                        CHECK_IMAGES: encodes FILE here and with
                                                        target/release/examples/cm_vectors encode /
                                                        encode-x86 / encode-image (build it first), compares the payloads
                                                        byte for byte and decodes Rust's payload; exit
                                                        status 1 on a mismatch
  python3 train/cm_ref.py check-image FILE...           the same for preset 6 only
  python3 train/cm_ref.py sample OUT                    writes the ~12 KB XML-like test input used in
                                                        train/README.md (lines with columns, long matches)
  python3 train/cm_ref.py selftest                      STRETCH against its definition, round trips and
                                                        end checks on small synthetic inputs (presets 0-5);
                                                        the x86 filter on hand-worked cases and ~390 round
                                                        trips, bit 6 through the coder, bad preset ids;
                                                        preset 6's header checks

Two points an earlier spec text left open are now spelled out in 8.4 and done as it
says: a context sharing a bucket learns from the state byte as earlier contexts left
it (SEQUENTIAL_STATES), and lq = min(16 + ((len - 16) >> 3), 31).

Preset 5 was added from the 8.4/8.5 text alone and gave byte-identical payloads with
lza on the first try (train/README.md lists the inputs).  Without the model q = bitpos,
so set d's index is 2368 + 64 class(c1) + 9 bitpos here: a swap of "8 bitpos" and "q"
in an implementation would not show without the model.

Preset 9 (text-fast: preset 3's table with fewer contexts and the falling mixer rate of 8.4,
"Mixer rate") was added from the 8.4/8.5 text alone; its payloads, plain and x86-filtered, were
byte-identical with lza's on the first try (the sample above, README.txt, 3 KB of alice29.txt).

The x86 filter (8.7) was added from the spec text alone, and its payloads
(encode-x86) were byte-identical with lza's encode_x86 on the first try for 54
file/preset pairs (9 files x presets 0-5; train/README.md lists them).  A near offset
becomes the target's position - 5 (i is the E8's position, the offset counts from
i + 5), as the pseudo-code says (an earlier prose sentence said "the target's
position").
"""
import math
import sys

M64 = (1 << 64) - 1
SEQUENTIAL_STATES = True  # see Predictor.update
M32 = (1 << 32) - 1

# ---------------------------------------------------------------- 8.2

K = [22, 36, 60, 98, 162, 267, 439, 720, 1179, 1921, 3108, 4971,
     7812, 11955, 17625, 24743, 32768, 40793, 47911, 53581, 57724,
     60565, 62428, 63615, 64357, 64816, 65097, 65269, 65374, 65438,
     65476, 65500, 65514]
assert len(K) == 33
assert all(K[i] == int(math.floor(65536 / (1 + math.exp(-(i - 16) / 2)) + 0.5)) for i in range(33))


def squash(x):
    if x < -2047:
        x = -2047
    elif x > 2047:
        x = 2047
    w = x & 127
    i = (x >> 7) + 16
    return (K[i] * (128 - w) + K[i + 1] * w + 64) >> 7


def _make_stretch_slow():
    # the definition word for word (quadratic; used by selftest)
    t = [2047] * 4096
    sq = [squash(x) >> 4 for x in range(-2047, 2048)]
    for p in range(4096):
        # smallest x with squash(x) >> 4 >= p (squash is monotone, but search plainly)
        for k, v in enumerate(sq):
            if v >= p:
                t[p] = k - 2047
                break
    return t


def _make_stretch_fast():
    # same as _make_stretch_slow, linear time (squash is non-decreasing)
    t = [2047] * 4096
    sq = [squash(x) >> 4 for x in range(-2047, 2048)]
    assert all(sq[i] <= sq[i + 1] for i in range(len(sq) - 1))
    k = 0
    for p in range(4096):
        while k < len(sq) and sq[k] < p:
            k += 1
        t[p] = k - 2047 if k < len(sq) else 2047
    return t


STRETCH = _make_stretch_fast()


def stretch(p16):
    return STRETCH[p16 >> 4]


RATE = [131072 // (2 * n + 3) for n in range(1024)]
COUNTER_INIT = 1 << 31
LIMIT = 1023


def counter_update(c, bit):
    p = c >> 10
    n = c & 1023
    t = (1 << 22) - 1 if bit else 0
    p = p + (((t - p) * RATE[n]) >> 16)
    if n < LIMIT:
        n += 1
    return (p << 10) | n


class APM:
    def __init__(self, contexts):
        row = [squash((j - 16) * 128) for j in range(33)]
        self.t = row * contexts
        self.idx = 0

    def refine(self, p16, c):
        s = stretch(p16) + 2048
        lo = s >> 7
        w = s & 127
        base = c * 33 + lo
        t = self.t
        self.idx = base + (w >> 6)
        return (t[base] * (128 - w) + t[base + 1] * w) >> 7

    def update(self, bit):
        v = self.t[self.idx]
        self.t[self.idx] = v + (((65535 if bit else 0) - v) >> 6)


# ---------------------------------------------------------------- 8.3

class Encoder:
    def __init__(self):
        self.x1 = 0
        self.x2 = M32
        self.out = bytearray()

    def code(self, bit, p):
        assert 1 <= p <= 65535
        xmid = self.x1 + (((self.x2 - self.x1) * p) >> 16)
        if bit:
            self.x2 = xmid
        else:
            self.x1 = xmid + 1
        while (self.x1 >> 24) == (self.x2 >> 24):
            self.out.append(self.x2 >> 24)
            self.x1 = (self.x1 << 8) & M32
            self.x2 = ((self.x2 << 8) + 255) & M32

    def finish(self):
        self.out += self.x1.to_bytes(4, "big")
        return bytes(self.out)


class DecodeError(Exception):
    pass


class Decoder:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.x1 = 0
        self.x2 = M32
        self.x = 0
        for _ in range(4):
            self.x = (self.x << 8) | self._next()

    def _next(self):
        if self.pos >= len(self.data):
            raise DecodeError("coded bytes end when a byte is needed")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def decode(self, p):
        assert 1 <= p <= 65535
        xmid = self.x1 + (((self.x2 - self.x1) * p) >> 16)
        bit = 1 if self.x <= xmid else 0
        if bit:
            self.x2 = xmid
        else:
            self.x1 = xmid + 1
        while (self.x1 >> 24) == (self.x2 >> 24):
            self.x1 = (self.x1 << 8) & M32
            self.x2 = ((self.x2 << 8) + 255) & M32
            self.x = ((self.x << 8) + self._next()) & M32
        return bit

    def finish(self):
        if self.pos != len(self.data):
            raise DecodeError("%d coded bytes left over" % (len(self.data) - self.pos))


# ---------------------------------------------------------------- 8.4

def rotl64(v, r):
    return ((v << r) | (v >> (64 - r))) & M64


def hash2(a, b):
    h = (((a ^ rotl64(b, 23)) + b) * 0x9E3779B97F4A7C15) & M64
    return h ^ (h >> 29)


# 8.5
# S: table bytes per input byte (log2); R: mixer rate; m: shortest match;
# apm2: order-2 APM A4; apm_match: match APM A5 (A1 is used with three sets, A2 always);
# line_column: the line-column context; class_set: the fourth weight set d.  The class APM A6
# (preset 5) is used only with the model, which is not implemented here, so it has no key.
_OLD = dict(tokens=False, line_prefix=False, records=False, line_column=False, S=4, R=3, m=6,
            apm2=False, apm_match=False, class_set=False)
PRESETS = {
    0: dict(_OLD, name="fast", orders=[2, 3, 4, 6], words=False, columns=False, max_table_log=24, sets=1),
    1: dict(_OLD, name="normal", orders=[2, 3, 4, 5, 6, 8], words=True, columns=True, max_table_log=26, sets=3),
    2: dict(_OLD, name="with-model", orders=[2, 3, 4, 6], words=True, columns=True, max_table_log=26, sets=3),
    3: dict(name="text", orders=[2, 3, 4, 5, 6, 8], words=True, tokens=True, line_prefix=True, records=True,
            line_column=False, columns=True, max_table_log=27, S=7, R=2, m=5, sets=3, apm2=True, apm_match=True,
            class_set=False),
    4: dict(name="with-model-tokens", orders=[2, 3, 4, 6], words=True, tokens=True, line_prefix=False, records=False,
            line_column=False, columns=True, max_table_log=26, S=6, R=2, m=6, sets=3, apm2=True, apm_match=False,
            class_set=False),
}
# preset 5 = preset 4 + line column + class set (+ class APM A6, with the model only)
PRESETS[5] = dict(PRESETS[4], name="with-model-classes", line_column=True, class_set=True, sets=4)
# preset 6 = preset 3 with orders 2, 3 only, no text or record contexts, R = 1, and the 14 image
# contexts of 8.8 (its width and first byte come after the preset byte)
PRESETS[6] = dict(PRESETS[3], name="image-16", orders=[2, 3], words=False, tokens=False, line_prefix=False,
                  records=False, columns=False, R=1, image=True)
IMAGE = 6
# preset 7 = preset 3 plus 5 sparse contexts after the orders (8.4)
PRESETS[7] = dict(PRESETS[3], name="binary", sparse=True)
# preset 9 = preset 3 with orders 2, 3, 4, 6, no line prefix, records or match APM, S = 6 and
# the falling mixer rate
PRESETS[9] = dict(PRESETS[3], name="text-fast", orders=[2, 3, 4, 6], line_prefix=False, records=False,
                  apm_match=False, S=6, decay=True)


def char_class(v):
    """class(v) of 8.4: space, a-z, A-Z, 0-9, line feed, .,;:!?, quote, other."""
    if v == 32:
        return 0
    if 97 <= v <= 122:
        return 1
    if 65 <= v <= 90:
        return 2
    if 48 <= v <= 57:
        return 3
    if v == 10:
        return 4
    if v in b".,;:!?":
        return 5
    if v in b"\"'":
        return 6
    return 7


def _next_state(s, bit):
    n0, n1 = s >> 4, s & 15
    if bit:
        n1 = min(n1 + 1, 15)
        if n0 > 2:
            n0 = n0 // 2 + 1
    else:
        n0 = min(n0 + 1, 15)
        if n1 > 2:
            n1 = n1 // 2 + 1
    return (n0 << 4) | n1


NEXT_STATE = [[_next_state(s, b) for b in (0, 1)] for s in range(256)]
SM_INIT = []
for _s in range(256):
    _n0, _n1 = _s >> 4, _s & 15
    _p = ((2 * _n1 + 1) << 22) // (2 * (_n0 + _n1) + 2)
    SM_INIT.append(min(_p, (1 << 22) - 1) << 10)


def ceil_log2(n):
    n = max(n, 1)
    return (n - 1).bit_length()


def clamp(v, lo, hi):
    return lo if v < lo else hi if v > hi else v


class Predictor:
    def __init__(self, preset, raw_len, image=None):
        if preset & 0x80:
            raise NotImplementedError("bit 7 (language model) is not implemented here")
        cfg = PRESETS[preset]
        assert (preset == IMAGE) == (image is not None)
        self.image = image  # (width, first) with preset 6
        self.sel = self.ap2 = self.ap4 = 0
        self.cfg = cfg
        self.orders = cfg["orders"]
        self.sparse = cfg.get("sparse", False)
        self.words = cfg["words"]
        self.tokens = cfg["tokens"]
        self.line_prefix = cfg["line_prefix"]
        self.records = cfg["records"]
        self.columns = cfg["columns"]
        self.three = cfg["sets"] >= 3  # sets a, b, c (and A1)
        self.class_set = cfg["class_set"]  # set d
        self.line_column = cfg["line_column"]
        self.R = cfg["R"]
        # the mixers' rate in sixteenths: 16 R, or falling from 48 (8.4, "Mixer rate")
        self.decay = cfg.get("decay", False)
        self.r16 = 48 if self.decay else 16 * self.R
        self.m = cfg["m"]
        L = ceil_log2(raw_len)
        self.B = clamp(L + cfg["S"], 16, cfg["max_table_log"])
        self.M = clamp(max(L - 1, 0), 10, 22)
        self.nctx = (len(self.orders) + (2 if self.words else 0) + (2 if self.words and self.tokens else 0)
                     + (1 if self.line_prefix else 0) + (3 if self.records else 0) + (2 if self.columns else 0)
                     + (1 if self.line_column else 0) + (14 if image else 0) + (5 if self.sparse else 0))
        self.N = 1 + 2 + self.nctx + 2
        # state
        self.hist = bytearray()
        self.c0 = 1
        self.bitpos = 0
        self.nib = 1
        self.c8 = 0
        self.word = 0
        self.word_prev = 0
        self.word_prev2 = 0
        self.token = 0
        self.token_sep = 0
        self.line_hash = 0
        self.line = 0
        self.line_prev = 0
        # records
        self.rec_len = 0
        self.rec_cand = [0, 0]
        self.rec_cnt = [0, 0]
        self.rec_P = [[0, 0, 0, 0] for _ in range(256)]
        # tables
        self.T0 = [COUNTER_INIT] * 256
        self.T1 = [COUNTER_INIT] * 65536
        self.hashed = bytearray(1 << self.B)
        self.lines = (1 << self.B) // 64
        self.SM = [list(SM_INIT) for _ in range(self.nctx)]
        self.mtable = [0] * (1 << self.M)
        self.MM = [COUNTER_INIT] * 64
        self.W = [[0] + [1 << 14] * (self.N - 1) for _ in range(2880 if self.class_set else 2368)]
        self.A1 = APM(256)
        self.A2 = APM(65536)
        self.A4 = APM(65536) if cfg["apm2"] else None
        self.A5 = APM(16384) if cfg["apm_match"] else None
        # match model
        self.mlen = 0
        self.ptr = 0
        self.miss = False
        # contexts and buckets
        self.ctx = []
        self.bucket = [0] * self.nctx  # byte offset of each context's bucket in self.hashed
        self._contexts()
        self._find_buckets(0)

    # -- contexts at a byte boundary
    def _contexts(self):
        c8 = self.c8
        c1 = c8 & 255
        ctx = []
        for o in self.orders:
            mask = M64 if o >= 8 else (1 << (8 * o)) - 1
            ctx.append(hash2(c8 & mask, o + 1))
        if self.sparse:
            ctx += [hash2(c8 & 0xFF00FF, 0x7001), hash2(c8 & 0xFFFF0000, 0x7002),
                    hash2(c8 & 0xFF000000FF, 0x7003), hash2(c8 & 0xFF00, 0x7004),
                    hash2(c8 & 0xFFFF, 0x7010 + (len(self.hist) & 3))]
        if self.words:
            ctx.append(hash2(self.word, 256 + (c1 if self.word == 0 else 0)))
            ctx.append(hash2(self.word, (self.word_prev + 512) & M64))
            if self.tokens:
                ctx.append(hash2(self.token, (self.token_sep + 0x500) & M64))
                ctx.append(hash2(hash2(self.word, self.word_prev), (self.word_prev2 + 0x600) & M64))
        if self.line_prefix:
            ctx.append(hash2(self.line_hash, 0x800))
        if self.records:
            r = self.rec_len
            hist = self.hist
            pos = len(hist)

            def at(d):
                return hist[pos - d] if r > 0 and pos >= d else 256
            a1 = at(r)
            a2 = at(2 * r)
            t = r << 12
            col = min(pos % r, 1023) if r > 0 else 0
            ctx.append(hash2((a1 << 9) | a2, t + 0xB00))
            ctx.append(hash2((a1 << 9) | c1, t + 0xC00))
            ctx.append(hash2((col << 9) | a1, t + 0xD00))
        if self.columns:
            col = len(self.hist) - self.line
            i = self.line_prev + col
            above = self.hist[i] if i < self.line else 256
            ctx.append(hash2((min(col, 255) << 9) | above, 768 + c1))
            ctx.append(hash2((c8 >> 8) & 65535, 1024))
        if self.line_column:
            ctx.append(hash2(min(len(self.hist) - self.line, 255), 0xF00))
        if self.image:
            ctx += self._image_contexts()
        self.ctx = ctx

    # -- 8.8
    def _S(self, j):
        if j < 0:
            return 0
        at = self.image[1] + 2 * j
        return self.hist[at] | self.hist[at + 1] << 8

    def _med(self, j):
        w = self.image[0]
        a, b, c = self._S(j - 1), self._S(j - w), self._S(j - w - 1)
        if c >= max(a, b):
            return min(a, b)
        if c <= min(a, b):
            return max(a, b)
        return a + b - c

    def _image_contexts(self):
        width, first = self.image
        pos = len(self.hist)
        if pos < first:
            self.sel = self.ap2 = self.ap4 = 0
            return [hash2(pos, 0x1000 + j) for j in range(14)]
        half = (pos - first) & 1
        i = (pos - first) >> 1
        w = width
        S = self._S
        W, N, NW, NE, WW, NN = S(i - 1), S(i - w), S(i - w - 1), S(i - w + 1), S(i - 2), S(i - 2 * w)
        grad = clamp(W + N - NW, 0, 65535)
        med = self._med(i)
        av = (W + NE + 1) >> 1
        g2 = clamp(W + NE - N, 0, 65535)
        nv = clamp(2 * N - NN, 0, 65535)
        w2 = clamp(2 * W - WW, 0, 65535)
        mean4 = (W + N + NE + NW + 2) >> 2
        ew = W - self._med(i - 1)
        en = N - self._med(i - w)

        def div2(e):  # "/" truncates toward zero
            return -((-e) // 2) if e < 0 else e // 2
        wc = clamp(med + div2(ew), 0, 65535)
        nc = clamp(med + div2(en), 0, 65535)
        wn = (W + N) >> 1

        def eq(e):
            return 2 * abs(e).bit_length() + (1 if e < 0 else 0)
        tq = (abs(W - NW) + abs(N - NW) + abs(N - NE)).bit_length()
        self.sel = 16 * half + min(tq, 15)
        if half == 0:
            self.ap2 = med & 255
            self.ap4 = wc & 255
            pairs = [(med, 0), (grad, 0), ((W >> 2) << 16 | N >> 2, 0), (av, 0),
                     (g2, tq), (med >> 2, tq), ((nv >> 1) << 16 | w2 >> 1, 0),
                     (mean4, 0), (wc, 0), (med, eq(ew)), ((N >> 1) << 16 | NE >> 1, 0),
                     ((W >> 1) << 16 | NW >> 1, 0), (nc, 0), (wn, eq(en))]
        else:
            l = self.hist[pos - 1]
            lq = l >> 4

            def E(p):
                return clamp((p - l + 128) >> 8, 0, 255)
            self.ap2 = E(med)
            self.ap4 = E(wc)
            pairs = [(E(med) << 8 | lq, 0), (E(grad) << 8 | lq, 0), (E(W) << 8 | E(N), 0),
                     (E(av) << 8 | l, 0), (E(g2), tq), (E(med), tq),
                     (E(nv) << 8 | E(w2), 0), (E(mean4) << 8 | lq, 0), (E(wc) << 8 | lq, 0),
                     (E(med) << 8 | l, eq(ew)), (E(N) << 8 | E(NE), lq),
                     (E(W) << 8 | E(NW), lq), (E(nc) << 8 | lq, 0), (E(wn) << 8 | l, eq(en))]
        return [hash2((a | b << 40) & M64, 0x2000 + 32 * half + j) for j, (a, b) in enumerate(pairs)]

    def _find_buckets(self, salt):
        T = self.hashed
        for i, cx in enumerate(self.ctx):
            h = hash2(cx, salt | i)
            line = (h >> 20) % self.lines
            chk = h & 255
            base = line * 64
            found = -1
            for b in range(4):
                if T[base + 16 * b] == chk:
                    found = base + 16 * b
                    break
            if found < 0:
                # buckets earlier contexts took in this lookup are not
                # replaced; the line's first if all four were taken
                taken = self.bucket[:i]
                best = base
                bestn = None
                for b in range(4):
                    if base + 16 * b in taken:
                        continue
                    s = T[base + 16 * b + 1]
                    n = (s >> 4) + (s & 15)
                    if bestn is None or n < bestn:
                        bestn = n
                        best = base + 16 * b
                found = best
                for k in range(16):
                    T[found + k] = 0
                T[found] = chk
            self.bucket[i] = found

    # -- one bit
    def p(self):
        c0 = self.c0
        c1 = self.c8 & 255
        x = [256, STRETCH[self.T0[c0] >> 20], STRETCH[self.T1[c1 * 256 + c0] >> 20]]
        self._states = []
        for i in range(self.nctx):
            s = self.hashed[self.bucket[i] + self.nib]
            self._states.append(s)
            x.append(STRETCH[self.SM[i][s] >> 20])
        self._mm = -1
        g = 0
        ms = 0
        if self.mlen > 0 and not self.miss:
            ln = self.mlen
            e = (self.hist[self.ptr] >> (7 - self.bitpos)) & 1
            lq = ln if ln < 16 else min(16 + ((ln - 16) >> 3), 31)
            self._mm = g = 2 * lq + e
            self._e = e
            x.append(STRETCH[self.MM[self._mm] >> 20])
            x.append(32 * lq if e else -32 * lq)
            ms = 1 if ln < 16 else 2 if ln < 32 else 3
        else:
            x += [0, 0]
        self.x = x
        if self.three:
            sets = [c0, 256 + 8 * ms + self.bitpos,
                    320 + 8 * (self.sel if self.image else c1) + self.bitpos]
            if self.class_set:
                # q = bitpos without the model
                sets.append(2368 + 64 * char_class(c1) + 8 * self.bitpos + self.bitpos)
        else:
            sets = [c0]
        self.sets = sets
        dots = []
        for S in sets:
            w = self.W[S]
            d = sum(wj * xj for wj, xj in zip(w, x)) >> 16
            dots.append(clamp(d, -2047, 2047))
        self.dots = dots
        if self.three:
            # "/ 3" (three sets) or "/ 4" (with the class set d); section 8's "/" truncates toward zero
            tot = sum(dots)
            q = abs(tot) // len(dots)
            P = squash(q if tot >= 0 else -q)
            a2 = self.ap2 if self.image else c1
            p = (self.A1.refine(P, c0) + 3 * self.A2.refine(P, c0 + 256 * a2) + 2) >> 2
            if self.A4 is not None:
                h = self.ap4 if self.image else (((self.c8 & 65535) * 0x9E3779B9) >> 8) & 255
                p = (p + self.A4.refine(P, c0 + 256 * h) + 1) >> 1
            if self.A5 is not None:
                p = (p + 3 * self.A5.refine(p, c0 + 256 * g) + 2) >> 2
        else:
            P = squash(dots[0])
            p = (P + 3 * self.A2.refine(P, c0 + 256 * c1) + 2) >> 2
        self.P = P
        return clamp(p, 1, 65535)

    def update(self, y):
        c0 = self.c0
        c1 = self.c8 & 255
        self.T0[c0] = counter_update(self.T0[c0], y)
        k = c1 * 256 + c0
        self.T1[k] = counter_update(self.T1[k], y)
        for i in range(self.nctx):
            # Two contexts can hold the same bucket (a later one's miss may evict and take
            # the bucket an earlier one just took).  The spec text does not say which state
            # the later one learns from; lza reads the byte again here, after the earlier
            # contexts' updates (SEQUENTIAL_STATES = True).  False: the state seen by p().
            s = self.hashed[self.bucket[i] + self.nib] if SEQUENTIAL_STATES else self._states[i]
            self.SM[i][s] = counter_update(self.SM[i][s], y)
            self.hashed[self.bucket[i] + self.nib] = NEXT_STATE[s][y]
        if self._mm >= 0:
            self.MM[self._mm] = counter_update(self.MM[self._mm], y)
        x = self.x
        for S, d in zip(self.sets, self.dots):
            err = (((4095 if y else 0) - (squash(d) >> 4)) * self.r16) >> 4
            w = self.W[S]
            for j in range(self.N):
                v = w[j] + ((x[j] * err + 2048) >> 12)
                w[j] = clamp(v, -(1 << 22), 1 << 22)
        if self.three:
            self.A1.update(y)
        self.A2.update(y)
        if self.A4 is not None:
            self.A4.update(y)
        if self.A5 is not None:
            self.A5.update(y)
        # match miss
        if self.mlen > 0 and not self.miss:
            if y != self._e:
                self.miss = True
        self.c0 = 2 * c0 + y
        self.nib = 2 * self.nib + y
        self.bitpos += 1
        if self.bitpos == 4:
            self.nib = 1
            self._find_buckets((self.c0 << 56) & M64)
        elif self.bitpos == 8:
            self._end_byte(self.c0 & 255)

    def _end_byte(self, byte):
        self.hist.append(byte)
        if self.decay:
            self.r16 = max(10, 48 - (len(self.hist) >> 12))
        self.c8 = ((self.c8 << 8) | byte) & M64
        if byte == 10:
            self.line_prev = self.line
            self.line = len(self.hist)
        l = byte + 32 if 65 <= byte <= 90 else byte
        if 97 <= l <= 122 or byte >= 128:
            self.word = ((self.word + l + 1) * 0x2F0F3D8B5A1C6E27) & M64
        elif self.word != 0:
            self.word_prev2 = self.word_prev
            self.word_prev = self.word
            self.word = 0
        if 48 <= byte <= 57 or 65 <= byte <= 90 or 97 <= byte <= 122 or byte >= 128:
            self.token = ((self.token + byte + 1) * 0x2F0F3D8B5A1C6E27) & M64
        else:
            self.token_sep = ((self.token_sep << 8) | byte) & 65535
            self.token = 0
        self.line_hash = 0 if byte == 10 else ((self.line_hash + byte + 1) * 0x2F0F3D8B5A1C6E27) & M64
        if self.records:
            self._record_step(byte)
        self._match_step(byte)
        self._contexts()
        self._find_buckets(0)
        self.c0 = 1
        self.nib = 1
        self.bitpos = 0

    def _record_step(self, v):
        pos = len(self.hist)
        P = self.rec_P[v]
        cand, cnt = self.rec_cand, self.rec_cnt
        r = (pos - P[0]) & M32
        if P[3] != 0 and r > 1 and r == (P[0] - P[1]) & M32 == (P[1] - P[2]) & M32 == (P[2] - P[3]) & M32:
            if r == cand[0]:
                cnt[0] += 1
            elif r == cand[1]:
                cnt[1] += 1
            elif cnt[0] > cnt[1]:
                cand[1] = r
                cnt[1] = 1
            else:
                cand[0] = r
                cnt[0] = 1
        self.rec_P[v] = [pos, P[0], P[1], P[2]]
        for i in (0, 1):
            if cnt[i] > 15 and self.rec_len != cand[i]:
                self.rec_len = cand[i]
                cnt[0] = cnt[1] = 0

    def _match_step(self, byte):
        hist = self.hist
        pos = len(hist)
        if self.mlen > 0:
            if byte == hist[self.ptr]:
                self.mlen = min(self.mlen + 1, 65535)
                self.ptr += 1
            else:
                self.mlen = 0
        m = self.m
        if pos >= m:
            k = (hash2(self.c8 & ((1 << (8 * m)) - 1), 0x51) >> 30) % (1 << self.M)
            cand = self.mtable[k]
            if self.mlen == 0 and cand > 0:
                l = 0
                while l < 32 and l < cand and hist[cand - 1 - l] == hist[pos - 1 - l]:
                    l += 1
                if l >= m:
                    self.mlen = l
                    self.ptr = cand
            self.mtable[k] = pos
        self.miss = False


# ---------------------------------------------------------------- 8.7

X86_FLAG = 0x40   # preset byte bit 6: the coded bytes are the chunk after the x86 filter
MODEL_FLAG = 0x80  # preset byte bit 7: the language model takes part (not implemented here)


def x86_filter(data, inverse=False):
    """Section 8.7 over bytes b[0..n): the filter, or with inverse=True its inverse."""
    b = bytearray(data)
    n = len(b)
    i = 0
    while i + 4 < n:
        if b[i] == 0xE8 or b[i] == 0xE9:
            if b[i + 4] == 0x00 or b[i + 4] == 0xFF:
                v = b[i + 1] | b[i + 2] << 8 | b[i + 3] << 16
                v = ((v - i) if inverse else (v + i)) % (1 << 24)
                b[i + 1] = v & 255
                b[i + 2] = (v >> 8) & 255
                b[i + 3] = v >> 16
            i = i + 5
        else:
            i = i + 1
    return bytes(b)


def x86_unfilter(data):
    return x86_filter(data, inverse=True)


# ---------------------------------------------------------------- 8.1 / whole chunks

def encode_x86(data, preset, trace=None):
    """Payload with bit 6 set: the x86 filter (8.7), then the coder (8.3, 8.4)."""
    return encode(data, preset, trace, x86=True)


def encode(data, preset, trace=None, x86=False, image=None):
    """Payload of `data` (8.1); with preset 6, `image` is (width, first)."""
    if preset not in PRESETS:
        raise ValueError("unknown preset id %d" % preset)
    if (preset == IMAGE) != (image is not None) or (image and x86):
        raise ValueError("preset 6 takes image parameters and no flag; others none")
    if x86:
        data = x86_filter(data)
    pr = Predictor(preset, len(data), image)
    enc = Encoder()
    for bi, byte in enumerate(data):
        for k in range(7, -1, -1):
            bit = (byte >> k) & 1
            p = pr.p()
            if trace is not None:
                trace(bi, 7 - k, p, pr)
            enc.code(bit, p)
            pr.update(bit)
    head = bytes([preset | (X86_FLAG if x86 else 0)])
    if image:
        head += image[0].to_bytes(2, "little") + bytes([image[1]])
    return head + enc.finish()


def decode(payload, raw_len):
    if len(payload) == 0:
        raise DecodeError("empty payload")
    preset = payload[0] & 0x3F
    if payload[0] & MODEL_FLAG:
        raise NotImplementedError("bit 7 (language model) is not implemented here")
    if preset not in PRESETS:
        raise DecodeError("unknown preset id %d" % preset)
    image = None
    body = payload[1:]
    if preset == IMAGE:
        if payload[0] != IMAGE:
            raise DecodeError("preset byte %#x sets a flag that preset 6 does not take" % payload[0])
        if len(payload) < 4:
            raise DecodeError("payload ends before the chunk is complete")
        image = (payload[1] | payload[2] << 8, payload[3])
        if image[0] < 2 or image[1] > 1:
            raise DecodeError("bad image parameters %r" % (image,))
        body = payload[4:]
    pr = Predictor(preset, raw_len, image)
    dec = Decoder(body)
    out = bytearray()
    for _ in range(raw_len):
        c = 0
        for _k in range(8):
            bit = dec.decode(pr.p())
            pr.update(bit)
            c = 2 * c + bit
        out.append(c)
    dec.finish()
    if payload[0] & X86_FLAG:
        return x86_unfilter(out)
    return bytes(out)


# preset 6 parameters that `check` compares with lza's payloads
CHECK_IMAGES = [(2, 0), (37, 1), (300, 0), (512, 1)]


def cm_chunks(archive):
    """Yields (offset, raw_len, payload) for every codec-3 chunk (sections 2-6;
    a solid block's chunks, section 4a, are ordinary chunks over its files'
    bytes one after another)."""
    a = archive
    assert a[:8] == b"\x89LZA\r\n\x1a\n", "not an lza archive"
    pos = 40
    while True:
        tag = a[pos]
        if tag == 0x01:
            path_len = int.from_bytes(a[pos + 24:pos + 26], "little")
            link_len = int.from_bytes(a[pos + 26:pos + 28], "little")
            pos += 28 + path_len + link_len + 4
        elif tag == 0x03:
            table_stored_len = int.from_bytes(a[pos + 16:pos + 20], "little")
            pos += 40 + table_stored_len + 4
        elif tag == 0x02:
            codec = a[pos + 1]
            raw_len = int.from_bytes(a[pos + 4:pos + 8], "little")
            stored_len = int.from_bytes(a[pos + 8:pos + 12], "little")
            payload = a[pos + 24:pos + 24 + stored_len]
            if codec == 3:
                yield pos, raw_len, payload
            pos += 24 + stored_len
        elif tag == 0xFF:
            assert pos + 45 == len(a), "end record not at the end"
            return
        else:
            raise ValueError("bad tag %#x at %d" % (tag, pos))


def _selftest_x86(rnd):
    """8.7: the filter on hand-worked cases, filter/inverse round trips, bit 6 through the coder."""
    f, u = x86_filter, x86_unfilter
    # hand-worked: E8 at i=1, top byte 0x00 -> v = 0x000010 + 1
    assert f(b"\x90\xe8\x10\x00\x00\x00") == b"\x90\xe8\x11\x00\x00\x00"
    # top byte 0xFF: v = 0xFFFFFE + 3 wraps to 0x000001; the top byte itself is never changed
    assert f(b"\x00\x00\x00\xe9\xfe\xff\xff\xff") == b"\x00\x00\x00\xe9\x01\x00\x00\xff"
    # top byte neither 0x00 nor 0xFF: nothing changes, but the 4 bytes after E8 are still skipped,
    # so the E8 at 2 is not tested (it would be: b[6] = 0)
    assert f(b"\xe8\x01\xe8\x05\x07\x08\x00\x00") == b"\xe8\x01\xe8\x05\x07\x08\x00\x00"
    # the inverse subtracts i mod 2^24
    assert u(b"\x00\xe8\x00\x00\x00\x00") == b"\x00\xe8\xff\xff\xff\x00"
    # E8 at n-5 is tested, E8 in the last 4 bytes is not (i + 4 < n)
    assert f(b"\x00\xe8\x00\x00\x00\x00") == b"\x00\xe8\x01\x00\x00\x00"
    for k in range(1, 5):
        t = b"\x00" * 10 + b"\xe8" + b"\x00" * (k - 1)
        assert len(t) - 1 - 10 < 4 and f(t) == t and u(t) == t
        t = b"\x00" * 10 + b"\xe9" + b"\xff" * (k - 1)
        assert f(t) == t and u(t) == t
    # i counts from the chunk's start, not from the last match
    t = b"\x41" * 300 + b"\xe8\x00\x00\x00\x00"
    assert f(t)[301:304] == bytes([300 & 255, 300 >> 8, 0])
    # short inputs: no byte is tested
    for n in range(5):
        for t in (b"\xe8" * n, b"\xe9\x00\x00\x00"[:n], b"\x00" * n):
            assert f(t) == t and u(t) == t
    cases = []
    # runs of E8/E9, with runs of 00/FF after them: the 5-byte steps decide which bytes change
    for k in range(1, 12):
        for tail in (b"", b"\x00", b"\xff" * 3, b"\x00" * 9, b"\x12\x34"):
            cases.append(b"\x90" * (k % 3) + b"\xe8" * k + tail)
            cases.append(b"\xe9" * k + b"\x00" * k + b"\xe8" * k + b"\xff" * k + tail)
    # every top byte: 0x00 and 0xFF change the three bytes before, others leave them
    for top in range(256):
        t = bytes([0x55, 0xe8, 0xab, 0xcd, 0xef, top])
        ft = f(t)
        assert ft == (bytes([0x55, 0xe8, 0xac, 0xcd, 0xef, top]) if top in (0, 255) else t), top
        cases.append(t)
    # random bytes, and random bytes over the alphabet the filter cares about
    for n in (0, 1, 4, 5, 6, 9, 100, 1000, 5000):
        cases.append(bytes(rnd.randrange(256) for _ in range(n)))
        cases.append(bytes(rnd.choice(b"\xe8\xe9\x00\xff\x01\x80") for _ in range(n)))
    # x86-like: calls to a few targets with near offsets, forward and backward, wrapping mod 2^24
    x = bytearray(rnd.randrange(256) for _ in range(20000))
    for _ in range(800):
        i = rnd.randrange(len(x) - 5)
        rel = rnd.choice([100, 7000, 19000, 1 << 24]) - (i + 5)
        x[i] = rnd.choice((0xe8, 0xe9))
        x[i + 1:i + 5] = (rel % (1 << 32)).to_bytes(4, "little")
    cases.append(bytes(x))
    changed = 0
    for t in cases:
        assert u(f(t)) == t and f(u(t)) == t and len(f(t)) == len(t)
        changed += f(t) != t
    assert changed >= 50, changed  # 59 of the 385 cases change (most of the top-byte ones do not)
    # bit 6 through the coder: payload byte, decode applies the inverse, unknown ids are rejected
    xs = bytes(x[:700])
    for preset in (p for p in PRESETS if p != IMAGE):
        for t in (b"", b"\xe8\x00\x00\x00\x00", xs):
            pl = encode_x86(t, preset)
            assert pl[0] == preset | X86_FLAG
            assert pl[1:] == encode(f(t), preset)[1:]
            assert decode(pl, len(t)) == t
    for bad_id in (8, 63, 6 | X86_FLAG, 8 | X86_FLAG, 63 | X86_FLAG):
        try:
            decode(bytes([bad_id]) + b"\0\0\0\0", 0)
        except DecodeError:
            pass
        else:
            raise AssertionError("accepted preset byte %#x" % bad_id)


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd = argv[0]
    if cmd in ("encode", "encode-x86"):
        preset = int(argv[1])
        data = open(argv[2], "rb").read()
        out = encode(data, preset, x86=cmd == "encode-x86")
        if len(argv) > 3:
            open(argv[3], "wb").write(out)
        else:
            sys.stdout.write(out.hex() + "\n")
    elif cmd == "encode-image":
        # encode-image 6 FILE OUT WIDTH FIRST, the argument order of cm_vectors
        assert int(argv[1]) == IMAGE, "encode-image takes preset 6"
        data = open(argv[2], "rb").read()
        open(argv[3], "wb").write(encode(data, IMAGE, image=(int(argv[4]), int(argv[5]))))
    elif cmd == "decode":
        payload = open(argv[1], "rb").read()
        out = decode(payload, int(argv[2]))
        if len(argv) > 3:
            open(argv[3], "wb").write(out)
        else:
            sys.stdout.buffer.write(out)
    elif cmd == "probs":
        preset = int(argv[1])
        data = open(argv[2], "rb").read()
        n = int(argv[3]) if len(argv) > 3 else len(data)
        lines = []
        encode(data[:n], preset, trace=lambda bi, bp, p, pr: lines.append("%d %d %d" % (bi, bp, p)))
        # NB: tables are sized from the n-byte prefix's length; pass the whole file (n omitted) to
        # compare with a run over the whole file.
        sys.stdout.write("\n".join(lines) + "\n")
    elif cmd == "archive":
        a = open(argv[1], "rb").read()
        bad = 0
        for off, raw_len, payload in cm_chunks(a):
            x86 = bool(payload and payload[0] & X86_FLAG)
            what = "preset %d%s" % (payload[0] & 0x3F if payload else -1, " x86" if x86 else "")
            if payload and payload[0] & MODEL_FLAG:
                # lza's default method writes preset 5 with the model (bit 7): not covered here
                print("chunk at %d: %s with the model, raw_len %d stored_len %d: skipped"
                      % (off, what, raw_len, len(payload)))
                continue
            raw = decode(payload, raw_len)
            image = (payload[1] | payload[2] << 8, payload[3]) if payload[0] == IMAGE else None
            again = encode(raw, payload[0] & 0x3F, x86=x86, image=image)
            ok = again == payload
            bad += not ok
            print("chunk at %d: %s raw_len %d stored_len %d decoded; re-encode %s"
                  % (off, what, raw_len, len(payload), "identical" if ok else "DIFFERS"))
        return 1 if bad else 0
    elif cmd in ("check", "check-image"):
        import os
        import subprocess
        import tempfile
        exe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "examples", "cm_vectors")
        bad = pairs = ident = 0
        with tempfile.TemporaryDirectory() as td:
            for f in argv[1:]:
                data = open(f, "rb").read()
                filtered = x86_filter(data)
                changed = sum(a != b for a, b in zip(data, filtered))
                print("%s: %d bytes, the x86 filter changes %d of them" % (f, len(data), changed))
                runs = [(preset, mode, None) for preset in PRESETS if preset != IMAGE
                        for mode in ("encode", "encode-x86") if cmd == "check"]
                # preset 6 with a few (width, first): cm_vectors encode-image 6 FILE OUT WIDTH FIRST
                runs += [(IMAGE, "encode-image", im) for im in CHECK_IMAGES]
                for preset, mode, im in runs:
                    # plain payload (bit 6 clear), then the x86-filtered one (bit 6 set)
                    if True:
                        out = os.path.join(td, "p")
                        extra = [str(im[0]), str(im[1])] if im else []
                        subprocess.run([exe, mode, str(preset), f, out] + extra, check=True)
                        rust = open(out, "rb").read()
                        mine = encode(data, preset, x86=mode == "encode-x86", image=im)
                        same = rust == mine
                        try:
                            dec_ok = decode(rust, len(data)) == data
                        except DecodeError:
                            dec_ok = False
                        if not same:
                            k = next((i for i in range(min(len(rust), len(mine))) if rust[i] != mine[i]),
                                     min(len(rust), len(mine)))
                            why = "payloads differ from byte %d (rust %d bytes, here %d)" % (k, len(rust), len(mine))
                        else:
                            why = "payload identical"
                        print("%s %s preset %d%s: %d -> %d bytes, %s, rust payload %s"
                              % (f, mode, preset, " %r" % (im,) if im else "", len(data), len(rust), why,
                                 "decodes" if dec_ok else "DOES NOT DECODE"))
                        bad += (not same) + (not dec_ok)
                        pairs += 1
                        ident += same and dec_ok
        print("%d of %d file/preset/mode payloads identical and decoded" % (ident, pairs))
        return 1 if bad else 0
    elif cmd == "sample":
        import random
        r = random.Random(7)
        lines = ['<?xml version="1.0"?>', '<stations>']
        for i in range(120):
            lines.append('  <station id="%d" name="%s" lat="%.3f" lon="%.3f">' % (
                i, r.choice(['Oslo', 'Bergen', 'Tromso', 'Bodo']), r.uniform(50, 70), r.uniform(0, 30)))
            lines.append('    <temp unit="C">%.1f</temp>' % r.uniform(-20, 30))
            lines.append('  </station>')
        lines.append('</stations>')
        open(argv[1], "w").write("\n".join(lines) + "\n")
    elif cmd == "selftest":
        assert _make_stretch_slow() == STRETCH
        import random
        rnd = random.Random(1)
        samples = [b"a", b"\n", bytes(range(256)),
                   b"<item id=\"1\">x</item>\n" * 40,
                   bytes(rnd.randrange(256) for _ in range(500))]
        for preset in PRESETS:
            for s in samples:
                im = (3, 1) if preset == IMAGE else None
                pl = encode(s, preset, image=im)
                assert decode(pl, len(s)) == s
                for bad in (pl[:-1], pl + b"\0"):
                    try:
                        decode(bad, len(s))
                    except DecodeError:
                        pass
                    else:
                        raise AssertionError("accepted a bad payload")
        _selftest_x86(rnd)
        # preset 6's header: parameters and flags are checked
        good = encode(b"\x01\x02\x03\x04\x05", IMAGE, image=(2, 1))
        assert good[:4] == b"\x06\x02\x00\x01" and decode(good, 5) == b"\x01\x02\x03\x04\x05"
        for bad in (b"\x06", b"\x06\x02\x00", b"\x06\x01\x00\x00" + good[4:], b"\x06\x02\x00\x02" + good[4:],
                    b"\x46" + good[1:]):
            try:
                decode(bad, 5)
            except DecodeError:
                pass
            else:
                raise AssertionError("accepted %r" % bad[:4])
        print("selftest ok")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
