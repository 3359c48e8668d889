#!/usr/bin/env python3
"""Train lza's byte-level GRU models (format-spec 7, arch gru-v1) and export them.

One process trains the candidates one after another. For each:
  * a hand-written GRU (PyTorch gate order r, z, n) whose layer-0 input gate
    pre-activations come straight from the table `embed` [257, 3d];
  * stateful truncated BPTT: B rows each read one 16 KiB chunk after another
    (chunks cut on each document's 16 KiB grid, as the encoder cuts a file),
    windows of T bytes, state carried (detached) between windows and reset with
    the start symbol 256 at every chunk start;
  * float training, then quantization-aware training for the last `--qat-frac`
    of the steps: weights fake-quantized per row to int8 (s = max|row|/127),
    every activation that enters a matmul fake-quantized as round(h*127)/127,
    straight-through gradients;
  * a whole training step (forward, backward, clipping, Adam) captured as a CUDA
    graph, since a GRU step is a chain of small kernels; the cell is fused with
    torch.compile where that works;
  * export to the exact safetensors layout of format-spec 7.1, read back, and
    evaluated on held-out corpus chunks with the engine's arithmetic (int8
    weights and activations, exact integer sums, 16 KiB chunks from the zero
    state) giving both the model's cross-entropy and the code length after the
    16-bit frequency table of 7.4.

Run from the repository root (see train/README.md):
  python3 train/train.py --candidates 192x2,256x2,384x2 --budgets 150,150,200 --out OUT
One run split over two processes (e.g. two device calls):
  python3 train/train.py --candidates 256x2 --steps N --stop-at K --ckpt CKPT --out OUT1
  python3 train/train.py --candidates 256x2 --steps N --resume CKPT --out OUT2
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import gru_format  # noqa: E402

LN2 = math.log(2.0)
T0 = time.time()


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def free_cuda():
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def log(*a):
    print(f"[{time.time() - T0:7.1f}s]", *a, flush=True)


# ---------------------------------------------------------------- model

def fq_act(h):
    """Activation fake-quant round(h*127)/127 (clamped), straight-through gradient."""
    q = torch.round(h * 127.0).clamp(-127.0, 127.0) / 127.0
    return h + (q - h).detach()


def fq_weight(w):
    """Per-row symmetric int8 fake-quant, s = max|row|/127, straight-through gradient."""
    with torch.no_grad():
        s = w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
        q = torch.round(w / s).clamp(-127.0, 127.0) * s
    return w + (q - w).detach()


def gru_cell(gi, h, w, b, qat: bool):
    """One GRU step: gi [B,3d] input pre-activations, h [B,d], w [3d,d], b [3d]."""
    x = fq_act(h) if qat else h
    gh = F.linear(x, w, b)
    d = h.shape[1]
    rz = torch.sigmoid(gi[:, :2 * d] + gh[:, :2 * d])
    r, z = rz[:, :d], rz[:, d:]
    n = torch.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
    return n + z * (h - n)  # (1 - z) * n + z * h


class GRUv1(nn.Module):
    def __init__(self, d, L):
        super().__init__()
        self.d, self.L = d, L
        k = 1.0 / math.sqrt(d)
        uni = lambda *s: nn.Parameter(torch.empty(*s).uniform_(-k, k))
        self.embed = nn.Parameter(torch.randn(257, 3 * d) * 0.3)
        self.w_hh = nn.ParameterList([uni(3 * d, d) for _ in range(L)])
        self.b_hh = nn.ParameterList([uni(3 * d) for _ in range(L)])
        self.w_ih = nn.ParameterList([uni(3 * d, d) for _ in range(L - 1)])
        self.b_ih = nn.ParameterList([uni(3 * d) for _ in range(L - 1)])
        self.head_w = nn.Parameter(torch.randn(256, L * d) / math.sqrt(L * d))
        self.head_b = nn.Parameter(torch.zeros(256))
        self.register_buffer("symbols", torch.arange(257), persistent=False)

    def forward(self, inp, state, keep, qat, cell):
        """inp [T,B] symbols, state [L,B,d], keep [B] (0 = window starts a chunk)
        -> logits [T,B,256], final h of each layer."""
        onehot = (inp.unsqueeze(-1) == self.symbols).float()
        x = onehot @ self.embed  # a gather, as a matmul (deterministic backward)
        outs, finals = [], []
        for l in range(self.L):
            if l > 0:
                xin, w = outs[-1], self.w_ih[l - 1]
                if qat:
                    xin, w = fq_act(xin), fq_weight(w)
                x = F.linear(xin, w, self.b_ih[l - 1])
            w = fq_weight(self.w_hh[l]) if qat else self.w_hh[l]
            h = state[l] * keep[:, None]
            hs = []
            for gi in x.unbind(0):
                h = cell(gi, h, w, self.b_hh[l], qat)
                hs.append(h)
            outs.append(torch.stack(hs))
            finals.append(h)
        hc = torch.cat([fq_act(o) if qat else o for o in outs], -1)
        w = fq_weight(self.head_w) if qat else self.head_w
        return F.linear(hc, w, self.head_b), finals

    def float_params(self):
        g = lambda p: p.detach().float().cpu().numpy()
        return {"embed": g(self.embed), "w_hh": [g(p) for p in self.w_hh],
                "b_hh": [g(p) for p in self.b_hh],
                "w_ih": [None] + [g(p) for p in self.w_ih], "b_ih": [None] + [g(p) for p in self.b_ih],
                "head_w": g(self.head_w), "head_b": g(self.head_b)}


def macs_per_byte(d, L):
    return 3 * d * d + 6 * d * d * (L - 1) + 256 * L * d


def n_params(d, L):
    return 257 * 3 * d + L * (3 * d * d + 3 * d) + (L - 1) * (3 * d * d + 3 * d) + 256 * L * d + 256


# ---------------------------------------------------------------- evaluation

def q_act(v):
    """format-spec 7.2 q(v): round half away from zero of v*127, clamped (as f32 values)."""
    y = v * 127.0
    return torch.copysign(torch.floor(torch.abs(y) + 0.5), y).clamp_(-127.0, 127.0)


class Evaluator:
    """Runs the model one byte at a time over held-out chunks, each from the zero
    state with the start symbol first, as the engine does.

    quant=True: the file's tensors with the engine's arithmetic (format-spec 7.2):
    integer sums done exactly (f64 GEMM of integer-valued operands), then
    acc * (s/127) + b in f32. Only sigmoid/tanh/exp are PyTorch's, not the
    engine's polynomial, so results can differ from the engine's in the last bits.
    quant=False: the float weights in f32 (TF32 off)."""

    def __init__(self, t, d, L, quant, dev):
        self.d, self.L, self.quant = d, L, quant
        f32 = lambda a: torch.tensor(np.asarray(a, np.float32), device=dev)
        self.embed = f32(t["embed"])
        if quant:
            lin = lambda w, s, b: (torch.tensor(t[w].astype(np.float64), device=dev).t().contiguous(),
                                   f32(t[s]) / 127.0, f32(t[b]))
            self.hh = [lin(f"l{l}.w_hh", f"l{l}.s_hh", f"l{l}.b_hh") for l in range(L)]
            self.ih = [None] + [lin(f"l{l}.w_ih", f"l{l}.s_ih", f"l{l}.b_ih") for l in range(1, L)]
            self.head = lin("head.w", "head.s", "head.b")
        else:
            lin = lambda w, b: (f32(w).t().contiguous(), None, f32(b))
            self.hh = [lin(t["w_hh"][l], t["b_hh"][l]) for l in range(L)]
            self.ih = [None] + [lin(t["w_ih"][l], t["b_ih"][l]) for l in range(1, L)]
            self.head = lin(t["head_w"], t["head_b"])

    def lin(self, x, p):
        wt, m, b = p
        if self.quant:  # x holds integer values; exact sums, then f32 acc*m + b
            return (x.double() @ wt).float() * m + b
        return x @ wt + b

    @torch.no_grad()
    def run(self, inp, tgt, mask, window=512, max_steps=None):
        """inp/tgt [T,B] int64, mask [T,B] f32 (device) -> per-chunk (ce bits, coded bits)."""
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            return self._run(inp, tgt, mask, window, max_steps)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev

    def _run(self, inp, tgt, mask, window, max_steps):
        d, L = self.d, self.L
        T, B = inp.shape
        T = min(T, max_steps or T)
        dev = inp.device
        h = [torch.zeros(B, d, device=dev) for _ in range(L)]
        hq = [torch.zeros(B, d, device=dev) for _ in range(L)]  # q(h) (or h when float)
        buf = torch.zeros(window, B, L * d, device=dev)
        ce = torch.zeros(B, dtype=torch.float64, device=dev)
        coded = torch.zeros(B, dtype=torch.float64, device=dev)
        for w0 in range(0, T, window):
            n = min(window, T - w0)
            gi0 = self.embed[inp[w0:w0 + n]]
            for t in range(n):
                for l in range(L):
                    gi = gi0[t] if l == 0 else self.lin(hq[l - 1], self.ih[l])
                    gh = self.lin(hq[l], self.hh[l])
                    r = torch.sigmoid(gi[:, :d] + gh[:, :d])
                    z = torch.sigmoid(gi[:, d:2 * d] + gh[:, d:2 * d])
                    nn_ = torch.tanh(gi[:, 2 * d:] + r * gh[:, 2 * d:])
                    h[l] = (1.0 - z) * nn_ + z * h[l]
                    hq[l] = q_act(h[l]) if self.quant else h[l]
                    buf[t, :, l * d:(l + 1) * d] = hq[l]
            logits = self.lin(buf[:n], self.head)
            y, m = tgt[w0:w0 + n], mask[w0:w0 + n].double()
            lp = torch.log_softmax(logits.double(), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
            ce += (-lp / LN2 * m).sum(0)
            if self.quant:
                coded += ((16.0 - torch.log2(freq_of(logits, y).double())) * m).sum(0)
        return ce.cpu().numpy(), coded.cpu().numpy()


def freq_of(logits, y):
    """format-spec 7.4 frequencies (TOTAL = 2^16), the one of symbol y. logits [...,256] f32.
    The sum is PyTorch's, not the spec's 16-lane order, and exp is PyTorch's (see lza_ref.py
    for the bit-exact version); the effect on code lengths is far below 0.001 bpb."""
    TOTAL = 1 << 16
    mx = logits.amax(-1, keepdim=True)
    am = (logits == mx).float().argmax(-1, keepdim=True)  # the first maximal v
    e = torch.exp(logits - mx)
    inv = (TOTAL - 256) / e.sum(-1, keepdim=True)
    f = 1 + torch.floor(e * inv).clamp_(max=TOTAL - 256).long()
    f.scatter_add_(-1, am, TOTAL - f.sum(-1, keepdim=True))
    return f.gather(-1, y.unsqueeze(-1)).squeeze(-1)


def evaluate(ev, vb, names, max_steps=None):
    inp, tgt, mask = vb
    ce, coded = ev.run(inp, tgt, mask, max_steps=max_steps)
    nbytes = mask[:max_steps].sum(0).cpu().numpy() if max_steps else mask.sum(0).cpu().numpy()
    res = {"bpb_ce": float(ce.sum() / nbytes.sum())}
    if ev.quant:
        res["bpb_coded"] = float(coded.sum() / nbytes.sum())
    per = {}
    for f in dict.fromkeys(names):
        sel = np.array([n == f for n in names])
        per[f] = round(float((coded if ev.quant else ce)[sel].sum() / nbytes[sel].sum()), 4)
    res["per_file"] = per
    return res


# ---------------------------------------------------------------- training

class Trainer:
    def __init__(self, d, L, a, train, seed, mode, graph):
        self.d, self.L, self.a, self.graph = d, L, a, graph
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        dev = self.dev = torch.device(a.device)
        self.model = GRUv1(d, L).to(dev)
        self.params = list(self.model.parameters())
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.step_t = torch.zeros((), device=dev)
        self.lr = torch.zeros((), device=dev)
        self.loss_acc = torch.zeros((), device=dev)
        B, T = a.batch, a.bptt
        sampler = data.ChunkSampler(train, self.rng, a.p_ascii, a.p_crlf, a.p_tabs, parse_weights(a.weights))
        self.streams = data.Streams(B, T, sampler, self.rng)
        self.s_inp = torch.zeros(T, B, dtype=torch.long, device=dev)
        self.s_tgt = torch.zeros(T, B, dtype=torch.long, device=dev)
        self.s_mask = torch.zeros(T, B, device=dev)
        self.s_keep = torch.zeros(B, device=dev)
        self.state = torch.zeros(L, B, d, device=dev)
        pin = (lambda x: x.pin_memory()) if dev.type == "cuda" else (lambda x: x)
        self.pinned = [[pin(torch.zeros(T, B, dtype=torch.long)), pin(torch.zeros(T, B, dtype=torch.long)),
                        pin(torch.zeros(T, B)), pin(torch.zeros(B))] for _ in range(2)]
        self.events = [None, None]
        self.n_batches = 0
        self.mode = mode  # "compile" | "eager"
        self.cell = torch.compile(gru_cell, dynamic=False, fullgraph=True) if mode == "compile" else gru_cell
        self.graphs = {}

    def load_batch(self):
        i = self.n_batches % 2
        self.n_batches += 1
        if self.events[i] is not None:
            self.events[i].synchronize()
        arrs = self.streams.next()
        for dst, src in zip(self.pinned[i], arrs):
            dst.numpy()[...] = src
        for dst, src in zip((self.s_inp, self.s_tgt, self.s_mask, self.s_keep), self.pinned[i]):
            dst.copy_(src, non_blocking=True)
        if self.dev.type == "cuda":
            ev = torch.cuda.Event()
            ev.record()
            self.events[i] = ev

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def train_step(self, qat):
        a = self.a
        logits, finals = self.model(self.s_inp, self.state, self.s_keep, qat, self.cell)
        ce = F.cross_entropy(logits.reshape(-1, 256), self.s_tgt.reshape(-1), reduction="none")
        loss = (ce * self.s_mask.reshape(-1)).sum() / self.s_mask.sum().clamp_min(1.0) / LN2
        loss.backward()
        with torch.no_grad():
            grads = [p.grad for p in self.params]
            norm = torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt()
            coef = (a.clip / (norm + 1e-6)).clamp(max=1.0)
            b1, b2 = 0.9, 0.99
            self.step_t += 1
            c1 = self.lr / (1 - b1 ** self.step_t)
            c2 = 1 - b2 ** self.step_t
            for p, g, m, v in zip(self.params, grads, self.m, self.v):
                g = g * coef
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(c1 * m / ((v / c2).sqrt() + 1e-8))
            for l in range(self.L):
                self.state[l].copy_(finals[l])
            self.loss_acc += loss.detach()

    def capture(self, qat):
        if self.dev.type != "cuda":
            self.zero_grad()
            self.train_step(qat)
            return None
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                self.zero_grad()
                self.train_step(qat)
        torch.cuda.current_stream().wait_stream(s)
        sync()
        if not self.graph:
            return None
        self.zero_grad()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            self.train_step(qat)
        sync()
        return g

    def prepare(self):
        """Warm up / compile and capture both step variants."""
        self.load_batch()
        for qat in (False, True):
            self.graphs[qat] = self.capture(qat)

    def step(self, qat, lr):
        self.load_batch()
        self.lr.fill_(lr)
        g = self.graphs[qat]
        if g is None:
            self.zero_grad()
            self.train_step(qat)
        else:
            g.replay()

    def get_state(self, moments_dtype=torch.float32):
        """Float training state: weights, Adam moments and step count, the carried
        recurrent state, and the data stream's position (RNG states, no bytes)."""
        sync()
        cpu = lambda x, dt=torch.float32: x.detach().to("cpu", dt).clone()
        return {"params": [cpu(p) for p in self.params], "m": [cpu(x, moments_dtype) for x in self.m],
                "v": [cpu(x, moments_dtype) for x in self.v], "step_t": cpu(self.step_t),
                "state": cpu(self.state), "streams": self.streams.get_state()}

    def set_state(self, ck):
        """Copies a get_state() into the live tensors in place (the CUDA graphs
        keep their addresses), then replays the data stream to its position."""
        sync()
        with torch.no_grad():
            for dst, src in ((self.params, ck["params"]), (self.m, ck["m"]), (self.v, ck["v"])):
                assert len(dst) == len(src)
                for x, y in zip(dst, src):
                    assert x.shape == y.shape, (x.shape, y.shape)
                    x.copy_(y.to(x.device, torch.float32))
            self.step_t.copy_(ck["step_t"].to(self.dev))
            self.state.copy_(ck["state"].to(self.dev))
            self.loss_acc.zero_()
        self.streams.set_state(ck["streams"])
        sync()


def parse_weights(spec):
    """'code=2,books-1=0.5' -> {'code': 2.0, 'books-1': 0.5}; '' -> {}."""
    out = {}
    for item in filter(None, (spec or "").split(",")):
        k, v = item.split("=")
        out[k.strip()] = float(v)
    return out


# arguments that must be the same in a resumed run as in the one that saved the checkpoint
RESUME_KEYS = ["steps", "batch", "bptt", "lr", "min_lr", "warmup", "clip", "qat_frac", "seed", "val_bytes",
               "p_ascii", "p_crlf", "p_tabs", "weights"]
CKPT_LIMIT = 15 * 2**20  # files that come back from the device must stay under 16 MiB


def save_checkpoint(path, tr, meta):
    n = sum(p.numel() for p in tr.params)
    # params + 2 moments in fp32, plus the recurrent state; moments in bf16 if that is too much
    fp32_bytes = 4 * (3 * n + tr.state.numel())
    dt = torch.float32 if fp32_bytes < CKPT_LIMIT else torch.bfloat16
    ck = dict(meta, version=1, moments_dtype=str(dt), **tr.get_state(dt))
    tmp = path + ".tmp"
    torch.save(ck, tmp)
    os.replace(tmp, path)
    log(f"checkpoint at step {meta['step']} -> {path} ({os.path.getsize(path)} bytes, moments {dt})")
    return os.path.getsize(path)


def load_checkpoint(path, a, d, L):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    assert ck.get("version") == 1, "not a train.py checkpoint"
    bad = {k: (ck["args"].get(k), getattr(a, k)) for k in RESUME_KEYS if ck["args"].get(k) != getattr(a, k)}
    if (ck["d"], ck["L"]) != (d, L):
        bad["candidate"] = (f"{ck['d']}x{ck['L']}", f"{d}x{L}")
    if bad:
        raise SystemExit(f"--resume {path}: arguments differ from the saved run (saved, given): {bad}")
    return ck


def lr_at(step, n, a):
    warm = min(1.0, (step + 1) / max(1, min(a.warmup, n // 10)))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, n))))
    return a.lr * warm * (a.min_lr + (1 - a.min_lr) * cos)


def run_candidate(d, L, budget, a, train, vb, vnames, out, mode):
    name = f"lza-gru-d{d}l{L}"
    t_start = time.time()
    res = {"name": name, "d": d, "layers": L, "params": n_params(d, L), "macs_per_byte": macs_per_byte(d, L),
           "batch": a.batch, "bptt": a.bptt, "lr": a.lr, "qat_frac": a.qat_frac, "seed": a.seed, "budget_s": budget,
           "weights": parse_weights(a.weights)}
    tries = [(mode, a.graph)] + [m for m in (("eager", True), ("eager", False)) if m != (mode, a.graph)]
    for i, (mode, graph) in enumerate(tries):
        tr = None
        try:
            tr = Trainer(d, L, a, train, a.seed, mode, graph)
            tr.prepare()
            break
        except Exception as e:  # compile or capture trouble: fall back to something plainer
            log(f"{name}: mode={mode} graph={graph} failed ({type(e).__name__}: {str(e)[:500]})")
            del tr
            free_cuda()
            if i + 1 == len(tries):
                raise
    res["mode"], res["cuda_graph"] = mode, graph
    res["setup_s"] = round(time.time() - t_start, 1)
    log(f"{name}: setup (compile/capture) {res['setup_s']}s, mode={mode} graph={graph}")
    # time both variants (lr = 0: these steps only move Adam's moments)
    tm = {}
    for qat in (False, True):
        tr.step(qat, 0.0)
        sync()
        t = time.time()
        for _ in range(a.calib):
            tr.step(qat, 0.0)
        sync()
        tm[qat] = (time.time() - t) / a.calib
    tr.loss_acc.zero_()
    pos = a.batch * a.bptt
    res["ms_per_step"] = {"float": round(tm[False] * 1e3, 2), "qat": round(tm[True] * 1e3, 2)}
    res["positions_per_s"] = {"float": round(pos / tm[False]), "qat": round(pos / tm[True])}
    train_end = t_start + budget - a.eval_reserve
    if a.steps:
        n = a.steps
    else:
        left = train_end - time.time()
        n = max(10, int(left / ((1 - a.qat_frac) * tm[False] + a.qat_frac * tm[True])))
    n_float = int(round(n * (1 - a.qat_frac)))
    log(f"{name}: {tm[False]*1e3:.1f} ms/step float, {tm[True]*1e3:.1f} ms/step qat "
        f"({pos/tm[False]/1e6:.2f}M / {pos/tm[True]/1e6:.2f}M positions/s); plan {n} steps, QAT from {n_float}")
    hist, start, calls = [], 0, []
    if a.resume:
        # the calibration steps above moved Adam's moments, the state and the data:
        # all of that is overwritten here with the saved run's
        ck = load_checkpoint(a.resume, a, d, L)
        t = time.time()
        tr.set_state(ck)
        start, hist, calls = ck["step"], ck["hist"], ck["calls"]
        for k in ("val_at_switch_float", "val_at_switch_ptq"):
            if k in ck:
                res[k] = ck[k]
        res["resumed_from"] = {"file": os.path.basename(a.resume), "step": start}
        log(f"{name}: resumed at step {start}/{n} from {a.resume} ({time.time() - t:.1f}s to restore)")
    stop = min(a.stop_at, n) if a.stop_at else n
    if not start < stop:
        raise SystemExit(f"nothing to do: resume step {start}, stop at {stop}")
    t_train, done, last_log, why = time.time(), start, start, None
    t_float_end = None
    for step in range(start, stop):
        qat = step >= n_float
        if step == n_float:
            t_float_end = time.time()
            if a.eval_switch:
                fp = tr.model.float_params()
                res["val_at_switch_float"] = evaluate(Evaluator(fp, d, L, False, a.device), vb, vnames, a.eval_steps)
                res["val_at_switch_ptq"] = evaluate(
                    Evaluator(gru_format.to_file_tensors(fp, d, L), d, L, True, a.device), vb, vnames, a.eval_steps)
                log(f"{name}: end of float phase: val float {res['val_at_switch_float']['bpb_ce']:.4f}, "
                    f"int8 (no QAT) {res['val_at_switch_ptq']['bpb_ce']:.4f} bpb")
                train_end += time.time() - t_float_end  # the eval does not eat training time
        tr.step(qat, lr_at(step, n, a))
        done = step + 1
        late = a.deadline and time.time() - T0 > a.deadline
        if done % a.log_every == 0 or done == stop or late:
            bpb = tr.loss_acc.item() / (done - last_log)
            tr.loss_acc.zero_()
            last_log = done
            hist.append([done, round(bpb, 4), int(qat)])
            log(f"{name}: step {done}/{n} {'qat' if qat else 'flt'} lr {lr_at(step, n, a):.2e} train bpb {bpb:.4f}")
            if not math.isfinite(bpb):
                raise RuntimeError("loss is not finite")
        if time.time() > train_end and not a.steps:
            log(f"{name}: stopping at step {done} of {n}: time budget")
            break
        if late and done < stop:
            why = f"deadline ({a.deadline}s after start)"
            log(f"{name}: stopping at step {done} of {n}: {why}")
            break
    sync()
    res["train_s"] = round(time.time() - t_train, 1)
    calls.append({"steps": [start, done], "train_s": res["train_s"], "ms_per_step": res["ms_per_step"],
                  "gpu": torch.cuda.get_device_name(0) if tr.dev.type == "cuda" else "cpu"})
    res["calls"] = calls
    res["steps"], res["steps_planned"], res["steps_float"] = done, n, min(done, n_float)
    res["positions_seen"] = done * pos
    res["train_bpb_hist"] = hist
    res["train_bpb_final"] = hist[-1][1] if hist else None
    if why or a.stop_at:
        # checkpoint, so that another process can go on from here
        path = a.ckpt or os.path.join(out, name + ".ckpt.pt")
        meta = {"name": name, "d": d, "L": L, "step": done, "n": n, "n_float": n_float, "hist": hist,
                "calls": calls, "args": {k: getattr(a, k) for k in RESUME_KEYS}}
        meta.update({k: res[k] for k in ("val_at_switch_float", "val_at_switch_ptq") if k in res})
        res["ckpt"], res["ckpt_bytes"] = os.path.basename(path), save_checkpoint(path, tr, meta)
        if why:
            res["stopped_early"] = why
        if a.stop_at:  # the first part of a split run: no export
            res["total_s"] = round(time.time() - t_start, 1)
            log(f"{name}: stopped at step {done} of {n}; resume with --resume {path}")
            del tr
            free_cuda()
            return res, None
        log(f"{name}: WARNING: exporting a model whose schedule is unfinished ({done} of {n} steps)")
    # export, read back, evaluate the file
    fp = tr.model.float_params()
    res["val_float"] = evaluate(Evaluator(fp, d, L, False, a.device), vb, vnames, a.eval_steps)
    path = os.path.join(out, name + ".safetensors")
    gru_format.write(path, gru_format.to_file_tensors(fp, d, L), d, L)
    t, meta, d2, L2 = gru_format.read(path)
    res["file"], res["file_bytes"] = os.path.basename(path), os.path.getsize(path)
    res["val_int8"] = evaluate(Evaluator(t, d2, L2, True, a.device), vb, vnames, a.eval_steps)
    res["total_s"] = round(time.time() - t_start, 1)
    log(f"{name}: val float {res['val_float']['bpb_ce']:.4f}, int8 ce {res['val_int8']['bpb_ce']:.4f}, "
        f"int8 coded {res['val_int8']['bpb_coded']:.4f} bpb; per file {res['val_int8']['per_file']}; "
        f"{res['total_s']}s in all")
    del tr
    free_cuda()
    return res, fp


def selfcheck(a, vb, dev):
    """Training forward vs the evaluator, float and QAT, on the first bytes of val chunks."""
    d, L, n = 64, 2, 200
    torch.manual_seed(0)
    model = GRUv1(d, L).to(dev)
    inp, tgt, mask = (x[:n] for x in vb)
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    with torch.no_grad():
        B = inp.shape[1]
        st, keep = torch.zeros(L, B, d, device=dev), torch.zeros(B, device=dev)
        for qat in (False, True):
            logits, _ = model(inp, st, keep, qat, gru_cell)
            ce = F.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1), reduction="none")
            out["train_fwd_" + ("qat" if qat else "float")] = float((ce * mask.reshape(-1)).sum() / mask.sum() / LN2)
    fp = model.float_params()
    out["eval_float"] = Evaluator(fp, d, L, False, dev).run(inp, tgt, mask)[0].sum() / float(mask.sum())
    ev = Evaluator(gru_format.to_file_tensors(fp, d, L), d, L, True, dev)
    ce, coded = ev.run(inp, tgt, mask)
    out["eval_int8"], out["eval_int8_coded"] = ce.sum() / float(mask.sum()), coded.sum() / float(mask.sum())
    torch.backends.cuda.matmul.allow_tf32 = True
    out = {k: round(float(v), 6) for k, v in out.items()}
    log("selfcheck (random d=64 model, 200 bytes of each val chunk):", out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".corpus")
    ap.add_argument("--out", default="train/out")
    ap.add_argument("--candidates", default="192x2,256x2,384x2", help="dxL,...")
    ap.add_argument("--budgets", default="150,150,200", help="seconds per candidate, training + eval")
    ap.add_argument("--steps", type=int, default=0, help="fixed step count (reproduction); ignores budgets")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="with --steps N: stop after step K of the N-step schedule and write a checkpoint")
    ap.add_argument("--resume", default="", help="continue from a checkpoint (same --steps and schedule flags)")
    ap.add_argument("--ckpt", default="", help="checkpoint path (default OUT/<name>.ckpt.pt)")
    ap.add_argument("--deadline", type=float, default=0,
                    help="seconds after start: stop training then, write a checkpoint, and (unless --stop-at) "
                         "still export and evaluate; keep room for the evaluation")
    ap.add_argument("--weights", default="", help="sampling weights per corpus file, e.g. code=2 (default 1)")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--bptt", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr", type=float, default=0.05, help="final lr as a fraction of --lr")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--qat-frac", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--val-bytes", type=int, default=384 * 1024, help="held out from the end of each file")
    ap.add_argument("--eval-steps", type=int, default=0, help="evaluate only the first N bytes of each chunk")
    ap.add_argument("--eval-reserve", type=float, default=25.0, help="seconds of each budget kept for eval/export")
    ap.add_argument("--no-eval-switch", dest="eval_switch", action="store_false")
    ap.add_argument("--p-ascii", type=float, default=0.3)
    ap.add_argument("--p-crlf", type=float, default=0.1)
    ap.add_argument("--p-tabs", type=float, default=0.1)
    ap.add_argument("--mode", choices=["compile", "eager"], default="compile")
    ap.add_argument("--no-graph", dest="graph", action="store_false")
    ap.add_argument("--calib", type=int, default=5)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--selfcheck", action="store_true")
    ap.add_argument("--device", default="cuda", help="cpu only for a smoke test")
    ap.add_argument("--bench", action="store_true", help="only time compile/eager x graph for the candidates")
    a = ap.parse_args()
    a.eval_steps = a.eval_steps or None
    if (a.stop_at or a.resume) and not a.steps:
        ap.error("--stop-at and --resume need a fixed schedule: pass --steps")
    if (a.stop_at or a.resume or a.ckpt) and "," in a.candidates:
        ap.error("--stop-at/--resume/--ckpt take one candidate")
    if a.stop_at and not 0 < a.stop_at < a.steps:
        ap.error("--stop-at K needs 0 < K < --steps")

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    os.makedirs(a.out, exist_ok=True)
    dev = torch.device(a.device)
    env = {"torch": torch.__version__, "argv": sys.argv[1:],
           "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"}
    log(env)

    corpus = data.load_corpus(a.corpus)
    train, val = data.split_corpus(corpus, a.val_bytes)
    vnames = [n for n, _ in val]
    vb = tuple(torch.from_numpy(x).to(dev) for x in data.val_batch(val))
    log(f"data: train {len(train['text'])} bytes in {len(train['starts'])} docs; "
        f"val {int(vb[2].sum())} bytes in {len(val)} chunks")
    results = {"env": env, "train_bytes": len(train["text"]), "val_bytes": int(vb[2].sum()),
               "val_chunks": len(val), "candidates": []}
    if a.selfcheck:
        results["selfcheck"] = selfcheck(a, vb, dev)

    cands = [tuple(int(x) for x in c.split("x")) for c in a.candidates.split(",")]
    budgets = [float(b) for b in a.budgets.split(",")]
    if a.bench:
        for d, L in cands:
            for mode, graph in (("compile", True), ("eager", True)):
                t = time.time()
                try:
                    tr = Trainer(d, L, a, train, a.seed, mode, graph)
                    tr.prepare()
                    setup = time.time() - t
                    r = {}
                    for qat in (False, True):
                        tr.step(qat, 0.0)
                        sync()
                        t1 = time.time()
                        for _ in range(a.calib):
                            tr.step(qat, 0.0)
                        sync()
                        r["qat" if qat else "float"] = round((time.time() - t1) / a.calib * 1e3, 2)
                    mem = torch.cuda.max_memory_allocated() / 2**30
                    log(f"bench d={d} L={L} B={a.batch} T={a.bptt} {mode} graph={graph}: setup {setup:.1f}s "
                        f"ms/step {r}, peak mem {mem:.1f} GiB")
                    results.setdefault("bench", []).append(dict(d=d, L=L, mode=mode, graph=graph, setup_s=setup,
                                                                ms_per_step=r, peak_gib=mem))
                    del tr
                except Exception as e:
                    log(f"bench d={d} L={L} {mode} graph={graph} FAILED: {type(e).__name__}: {e}")
                torch._dynamo.reset()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
        with open(os.path.join(a.out, "bench.json"), "w") as f:
            json.dump(results, f, indent=1)
        return

    for (d, L), budget in zip(cands, budgets):
        try:
            res, fp = run_candidate(d, L, budget, a, train, vb, vnames, a.out, a.mode)
            # float weights, to fine-tune or re-quantize later (one file per candidate: each
            # file that comes back from the device must stay under 16 MiB)
            if fp is not None:
                torch.save({k: ([None if x is None else torch.from_numpy(x) for x in v] if isinstance(v, list)
                                else torch.from_numpy(v)) for k, v in fp.items()},
                           os.path.join(a.out, res["name"] + ".float.pt"))
        except Exception as e:
            import traceback
            traceback.print_exc()
            res = {"name": f"lza-gru-d{d}l{L}", "error": f"{type(e).__name__}: {e}"}
            torch._dynamo.reset()
            torch.cuda.empty_cache()
        results["candidates"].append(res)
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    log("done")


if __name__ == "__main__":
    main()
