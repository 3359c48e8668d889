"""Corpus loading, the train/validation split, chunk sampling and augmentation.

Needs only the standard library and numpy (no torch), so the numpy reference
evaluator (lza_ref.py) can use the same split on a machine without PyTorch.

Every document of the corpus is treated like a file given to `lza create`: it
is cut into chunks of 16 KiB on a grid that starts at the document's first
byte (the last chunk of a document is shorter), and each chunk is predicted
from the zero state with the start symbol 256 first (format-spec 7.2, 7.6).
"""
import json, lzma, os, re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

CHUNK = 16384
START = 256
FILES = ["books-1", "books-2", "techdocs", "structured", "code", "reference"]


def load_corpus(corpus_dir, files=FILES):
    """-> list of dict(name, text: bytes, starts: np.int64[docs])."""
    def one(name):
        with open(os.path.join(corpus_dir, name + ".docs.json")) as f:
            meta = json.load(f)
        with lzma.open(os.path.join(corpus_dir, name + ".txt.xz")) as f:
            text = f.read()
        assert len(text) == meta["bytes"], name
        return dict(name=name, text=text, starts=np.asarray(meta["starts"], np.int64))
    with ThreadPoolExecutor(len(files)) as ex:
        return list(ex.map(one, files))


def split_corpus(corpus, val_bytes):
    """Hold out the last `val_bytes` of every file (cut at that byte; the piece
    of the document it falls in becomes a document of its own).

    -> train: dict(text: np.uint8[N], starts, ends: np.int64[docs]) with all
       files' training parts concatenated;
       val: list of (file name, np.uint8 chunk) cut on each document's 16 KiB grid.
    """
    parts, starts, ends, val, base = [], [], [], [], 0
    for f in corpus:
        text, st = f["text"], f["starts"]
        cut = len(text) - val_bytes
        bounds = np.append(st, len(text))
        tr_st = st[st < cut]
        tr_en = np.minimum(bounds[1:len(tr_st) + 1], cut)
        keep = tr_en > tr_st
        starts.append(tr_st[keep] + base)
        ends.append(tr_en[keep] + base)
        parts.append(np.frombuffer(text, np.uint8, count=cut))
        base += cut
        vst = np.concatenate([[cut], st[st > cut]])
        ven = np.append(vst[1:], len(text))
        for s, e in zip(vst, ven):
            for c in range(s, e, CHUNK):
                val.append((f["name"], np.frombuffer(text, np.uint8, count=min(CHUNK, e - c), offset=c)))
    sizes = np.array([len(x) for x in parts], np.int64)
    train = dict(text=np.concatenate(parts), starts=np.concatenate(starts), ends=np.concatenate(ends),
                 files=[f["name"] for f in corpus], file_base=np.concatenate([[0], np.cumsum(sizes)]))
    return train, val


_QUOTES = [("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'"), ("\u2014", "--")]
QUOTES = [(a.encode(), b.encode()) for a, b in _QUOTES]
LEAD_SPACES = re.compile(rb"(?m)^(?:    )+")
LEAD_TABS = re.compile(rb"(?m)^\t+")


def augment(raw, rng, p_ascii, p_crlf, p_tabs):
    """Variants seen in real input but normalised away in the corpus: ASCII
    quotes and '--' for Unicode ones, CRLF line ends, tab vs space indentation."""
    if b"\xe2\x80" in raw and rng.random() < p_ascii:
        for u, a in QUOTES:
            raw = raw.replace(u, a)
    if rng.random() < p_tabs:
        if b"\n    " in raw and rng.random() < 0.5:
            raw = LEAD_SPACES.sub(lambda m: b"\t" * (len(m.group()) // 4), raw)
        elif b"\n\t" in raw:
            raw = LEAD_TABS.sub(lambda m: b"    " * len(m.group()), raw)
    if rng.random() < p_crlf:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw


class ChunkSampler:
    """Picks a training chunk the way the encoder would make one: a uniformly
    random byte of the training text, then the 16 KiB grid cell of its
    document that holds it (so longer documents give proportionally more)."""

    def __init__(self, train, rng, p_ascii=0.3, p_crlf=0.1, p_tabs=0.1, weights=None):
        """weights: optional {file name: sampling weight} (default 1): a file's
        chunks are drawn weight times as often as its size alone would give."""
        self.t, self.rng = train, rng
        self.total = len(train["text"])
        self.aug = (p_ascii, p_crlf, p_tabs)
        self.cum = None
        if weights and any(w != 1 for w in weights.values()):
            unknown = set(weights) - set(train["files"])
            assert not unknown, f"unknown corpus files in weights: {sorted(unknown)}"
            base = train["file_base"]
            mass = np.array([weights.get(f, 1.0) * (base[i + 1] - base[i]) for i, f in enumerate(train["files"])])
            self.cum = np.cumsum(mass) / mass.sum()

    def sample(self):
        t, rng = self.t, self.rng
        if self.cum is None:  # uniform over bytes (the original stream, draw for draw)
            p = int(rng.integers(self.total))
        else:  # a file by weight x size, then a uniform byte of it
            f = min(int(np.searchsorted(self.cum, rng.random(), "right")), len(self.cum) - 1)
            lo, hi = int(t["file_base"][f]), int(t["file_base"][f + 1])
            p = lo + int(rng.integers(hi - lo))
        i = int(np.searchsorted(t["starts"], p, "right")) - 1
        s0, e = int(t["starts"][i]), int(t["ends"][i])
        if not (s0 <= p < e):  # p fell in a gap (cannot happen with contiguous docs)
            p, s0, e = s0, s0, e
        s = s0 + (p - s0) // CHUNK * CHUNK
        raw = t["text"][s:min(e, s + CHUNK + CHUNK // 4)].tobytes()
        raw = augment(raw, rng, *self.aug)
        return np.frombuffer(raw[:CHUNK], np.uint8)


class Streams:
    """B rows, each reading one chunk after another in windows of T bytes.

    A row's chunk is padded to a multiple of T (padding masked out of the loss),
    so state resets and start symbols only happen at window starts: `keep[b]`
    is 0 for a row whose window begins a new chunk.
    """

    def __init__(self, B, T, sampler, rng):
        self.B, self.T, self.s, self.rng = B, T, sampler, rng
        width = -(-CHUNK // T) * T
        self.inp = np.zeros((B, width), np.int16)
        self.tgt = np.zeros((B, width), np.int16)
        self.n = np.zeros(B, np.int64)
        self.k = np.zeros(B, np.int64)
        self.nwin = np.zeros(B, np.int64)
        self.cols = np.arange(T)
        # to resume without storing the chunks: the RNG state each row's current
        # chunk was drawn from, and whether it was a row's first (cut) chunk
        self.row_rng = [None] * B
        self.row_first = np.zeros(B, bool)
        for b in range(B):
            self._load(b, first=True)

    def _load(self, b, first=False):
        self.row_rng[b] = self.rng.bit_generator.state
        self.row_first[b] = first
        c = self.s.sample()
        if first and len(c) > 1:  # de-synchronise the rows' chunk boundaries
            c = c[int(self.rng.integers(len(c) - 1)):]
        n = len(c)
        self.inp[b, 0] = START
        self.inp[b, 1:n] = c[:-1]
        self.tgt[b, :n] = c
        self.n[b], self.k[b], self.nwin[b] = n, 0, -(-n // self.T)

    def next(self):
        """-> inp (T,B) int64, tgt (T,B) int64, mask (T,B) f32, keep (B,) f32 (time-major)."""
        pos = self.k[:, None] * self.T + self.cols
        rows = np.arange(self.B)[:, None]
        inp = self.inp[rows, pos].T.astype(np.int64)
        tgt = self.tgt[rows, pos].T.astype(np.int64)
        mask = (pos < self.n[:, None]).T.astype(np.float32)
        keep = (self.k != 0).astype(np.float32)
        self.k += 1
        for b in np.nonzero(self.k >= self.nwin)[0]:
            self._load(int(b))
        return inp, tgt, mask, keep


    def get_state(self):
        """Everything needed to continue the stream exactly (small: no chunk bytes)."""
        return {"rng": self.rng.bit_generator.state, "row_rng": list(self.row_rng),
                "row_first": self.row_first.copy(), "k": self.k.copy()}

    def set_state(self, st):
        """Redraw every row's current chunk from its saved RNG state, then restore
        each row's window position and the RNG. The sampler and this object share
        one Generator, so both are pointed at a replaying one meanwhile."""
        assert len(st["row_rng"]) == self.B
        main = self.rng
        replay = np.random.Generator(type(main.bit_generator)())
        self.rng = self.s.rng = replay
        try:
            for b in range(self.B):
                replay.bit_generator.state = st["row_rng"][b]
                self._load(b, first=bool(st["row_first"][b]))
        finally:
            self.rng = self.s.rng = main
        self.row_rng = list(st["row_rng"])
        self.k[:] = st["k"]
        assert (self.k < self.nwin).all()
        main.bit_generator.state = st["rng"]


def val_batch(val):
    """Val chunks as padded time-major arrays: inp, tgt (Tmax,Bv) int64, mask f32."""
    Tm, Bv = max(len(c) for _, c in val), len(val)
    inp = np.zeros((Tm, Bv), np.int64)
    tgt = np.zeros((Tm, Bv), np.int64)
    mask = np.zeros((Tm, Bv), np.float32)
    for b, (_, c) in enumerate(val):
        n = len(c)
        inp[0, b] = START
        inp[1:n, b] = c[:-1]
        tgt[:n, b] = c
        mask[:n, b] = 1
    return inp, tgt, mask
