//! Decoding one context-mixing chunk that uses the model on two threads.
//!
//! A chunk is a chain: the model's step for byte `i + 1` needs byte `i`, and
//! the coder needs that step's frequencies before it can decode byte `i +
//! 1`. Two chunks run side by side on two threads, but a lone chunk (a file
//! of one piece, or the odd one out) would leave a thread idle, so its work
//! is split instead:
//!
//! - the *helper* thread runs the model's layers: while the coder decodes
//!   byte `i`, it computes the products of the state with every layer's
//!   `W_hh` (they do not depend on the byte); once the byte is known, the
//!   cells of each layer, handing over each layer's new `q` at once;
//! - the *coder* thread computes the head's sums one layer's columns at a
//!   time as they arrive (layer 0's while the helper works on layer 1), the
//!   frequencies, and decodes the next byte with the context-mixing
//!   predictor; it hands the byte over as soon as its last bit is known,
//!   before its own table updates, which then overlap the helper's work.
//!
//! Every value is computed by the same element-wise operations and exact
//! integer sums as in `engine::step` (a product's sums over a block of
//! columns add up exactly to the sums over all of them), so the frequencies,
//! and the decoded bytes, are the same bits as a one-thread run.
//!
//! The threads wait for each other by spinning on atomics (a round trip
//! costs about 130 ns on the development machine; a futex wake-up would
//! cost microseconds, per byte). The scheme needs both threads on a
//! processor at once: with one other busy process on two cores, book1 took
//! 17.5 s instead of 5.7 (one thread alone: about 10 s). So a wait that
//! lasts over 50 µs counts as a stall and yields; after 32 stalls within
//! 4096 bytes the helper hands its state back and the coder goes on alone
//! (the one-thread step, same bits) for 64 KiB before trying two threads
//! again. Loaded that way, book1 took 10.5-11.4 s. Mailbox words are
//! atomics, so the exchange needs no `unsafe`.
//!
//! Measured on calgary/book1 as one chunk (2-core development VM): 92 KB/s
//! on one thread, 139-144 KB/s with this split (`examples/cm_lm_probe`);
//! `lza x -T 2` of a `--method max` archive, quiet machine: 143-152 KB/s. A version that also split
//! layer 1 and the head by rows between the threads was slower (137 KB/s):
//! the coder's vector work runs at about half speed right after its
//! predictor's table work, so it is better left on the helper.

use super::LmError;
use super::engine;
use super::kernels::{self, KernelPath, PackedI8};
use super::model::Model;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The head's weights cut by columns, one block per layer, for the coder
/// thread to take each layer's state as soon as it is ready.
#[derive(Debug)]
pub(crate) struct PairWeights {
    /// `W_o[:, l*d .. (l+1)*d]` for each layer `l` (256 x d).
    head: Vec<PackedI8>,
}

impl PairWeights {
    /// The split of `model`'s head.
    pub(crate) fn new(model: &Model) -> PairWeights {
        let (d, w) = (model.dim(), &model.head().w);
        let head = (0..model.layers())
            .map(|l| {
                let cols: Vec<i8> = (0..256)
                    .flat_map(|j| (l * d..(l + 1) * d).map(move |k| w.get(j, k)))
                    .collect();
                PackedI8::new(256, d, &cols)
            })
            .collect();
        PairWeights { head }
    }
}

/// One-writer, one-reader buffer of words, valid for the step in `seq`.
struct Mail {
    seq: AtomicU64,
    words: Vec<AtomicU64>,
}

impl Mail {
    fn new(words: usize) -> Mail {
        Mail {
            seq: AtomicU64::new(0),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Stores `a` (two values a word) then `b` (eight a word), then `seq`.
    fn put(&self, seq: u64, a: &[i32], b: &[i8]) {
        let (wa, wb) = self.words.split_at(a.len().div_ceil(2));
        for (w, c) in wa.iter().zip(a.chunks(2)) {
            let hi = c.get(1).map_or(0, |&x| x as u32 as u64);
            w.store(c[0] as u32 as u64 | hi << 32, Ordering::Relaxed);
        }
        for (w, c) in wb.iter().zip(b.chunks(8)) {
            let mut v = [0u8; 8];
            for (v, &x) in v.iter_mut().zip(c) {
                *v = x as u8;
            }
            w.store(u64::from_le_bytes(v), Ordering::Relaxed);
        }
        self.seq.store(seq, Ordering::Release);
    }

    /// What [`Mail::put`] stored.
    fn get(&self, a: &mut [i32], b: &mut [i8]) {
        let (wa, wb) = self.words.split_at(a.len().div_ceil(2));
        for (w, c) in wa.iter().zip(a.chunks_mut(2)) {
            let x = w.load(Ordering::Relaxed);
            c[0] = x as u32 as i32;
            if let Some(h) = c.get_mut(1) {
                *h = (x >> 32) as u32 as i32;
            }
        }
        for (w, c) in wb.iter().zip(b.chunks_mut(8)) {
            let v = w.load(Ordering::Relaxed).to_le_bytes();
            for (x, &v) in c.iter_mut().zip(&v) {
                *x = v as i8;
            }
        }
    }
}

/// Sets `stop` when its thread leaves, normally or by a panic, so the other
/// never waits for it in vain.
struct Leave<'a>(&'a AtomicBool);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A wait longer than this means the other thread lost its processor (no
/// step of the exchange takes more than a few microseconds).
const STALL: std::time::Duration = std::time::Duration::from_micros(50);

/// Spins until `ready()` or `stop`; `Some(stalled)` with whether it took
/// longer than [`STALL`] (from then on it yields between looks), `None` if
/// the other thread left first.
fn wait(ready: &dyn Fn() -> bool, stop: &AtomicBool) -> Option<bool> {
    let mut spins = 0u32;
    let mut start = None;
    let mut stalled = false;
    loop {
        if ready() {
            return Some(stalled);
        }
        if stop.load(Ordering::Acquire) {
            return ready().then_some(stalled);
        }
        spins += 1;
        if stalled {
            std::thread::yield_now();
        } else if spins.is_multiple_of(64) {
            let t = *start.get_or_insert_with(std::time::Instant::now);
            stalled = t.elapsed() > STALL;
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Stalled waits (see [`STALL`]) in one window of [`WINDOW`] bytes after
/// which the coder goes on alone for [`SOLO_RUN`] bytes: the two threads do
/// not both have a processor (another busy process, or more threads than
/// cores), and taking turns would be slower than one thread doing all.
const STALLS: u32 = 32;
/// Bytes per window of stall counting.
const WINDOW: usize = 4096;
/// Bytes the coder decodes alone before it tries two threads again.
pub(crate) const SOLO_RUN: usize = 64 << 10;

/// The model's state between steps: `h` and `q` of every layer.
struct State {
    h: Vec<f32>,
    q: Vec<i8>,
}

/// Decodes a context-mixing `payload` (header byte included) of `raw_len`
/// bytes with `preset` and the model, on two threads (this one and a
/// helper), or on this one alone for `solo_run` bytes where the two keep
/// stalling (and, for tests, from every byte `alone_from` on).
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_cm(
    model: &Model,
    pw: &PairWeights,
    path: KernelPath,
    payload: &[u8],
    raw_len: usize,
    preset: crate::cm::Preset,
    alone_from: usize,
    solo_run: usize,
) -> Result<Vec<u8>, LmError> {
    let ld = model.layers() * model.dim();
    let mut dec = crate::cm::coder::Decoder::new(&payload[1..]);
    let mut pred = crate::cm::Predictor::new(preset, raw_len, true);
    let mut state = State {
        h: vec![0.0; ld],
        q: vec![0; ld],
    };
    let mut c = Coder {
        model,
        path,
        dec: &mut dec,
        pred: &mut pred,
        raw_len,
    };
    let (mut i, mut last) = (0, 256u16);
    while i < raw_len {
        (i, last) = c.paired(pw, i, last, &mut state, alone_from)?;
        if i < raw_len {
            let end = raw_len.min(i.saturating_add(solo_run.max(1)));
            last = c.alone(i, end, last, &mut state)?;
            i = end;
        }
    }
    crate::cm::finish(&dec)?;
    Ok(pred.take_history())
}

/// The coder's side: the predictor and the arithmetic decoder of a chunk.
struct Coder<'m, 'p, 'd> {
    model: &'m Model,
    path: KernelPath,
    dec: &'d mut crate::cm::coder::Decoder<'p>,
    pred: &'d mut crate::cm::Predictor,
    raw_len: usize,
}

/// Model reset before byte `i` (format-spec 8.4).
fn reset(i: usize) -> bool {
    i.is_multiple_of(crate::cm::LM_RESET)
}

impl Coder<'_, '_, '_> {
    /// Decodes bytes `start..end` on this thread alone, from the model state
    /// after step `start - 1` and byte `start - 1` (`last`); returns byte
    /// `end - 1`.
    fn alone(
        &mut self,
        start: usize,
        end: usize,
        last: u16,
        st: &mut State,
    ) -> Result<u16, LmError> {
        let mut scratch = engine::Scratch::new(self.model, 1);
        let mut input = last;
        for i in start..end {
            if reset(i) {
                st.h.fill(0.0);
                st.q.fill(0);
                input = 256;
            }
            engine::step(
                self.model,
                self.path,
                &[input],
                &mut st.h,
                &mut st.q,
                &mut scratch,
            );
            self.pred.set_lm(&scratch.freqs[0]);
            input = self.pred.decode_byte(self.dec) as u16;
            if self.dec.overrun() {
                return Err(crate::cm::CmError::Truncated.into());
            }
        }
        Ok(input)
    }

    /// Decodes from byte `start` (state and `last` as for [`Coder::alone`])
    /// on two threads until the end of the chunk, or until the threads
    /// stall and the helper hands its state back; returns the next byte's
    /// index and the last byte decoded.
    fn paired(
        &mut self,
        pw: &PairWeights,
        start: usize,
        last: u16,
        st: &mut State,
        alone_from: usize,
    ) -> Result<(usize, u16), LmError> {
        let model = self.model;
        let path = self.path;
        let raw_len = self.raw_len;
        let d = model.dim();
        let nl = model.layers();
        let ld = nl * d;
        // helper -> coder: each layer's new q; step `i` (the frequencies of
        // byte `i`) is sequence `i + 1`
        let m_q: Vec<Mail> = (0..nl).map(|_| Mail::new(d.div_ceil(8))).collect();
        // coder -> helper: byte i as (i + 1) << 8 | byte
        let m_byte = AtomicU64::new(0);
        // coder -> helper: stop, hand the state back
        let solo = AtomicBool::new(false);
        // helper -> coder: its state (h as f32 bits, q)
        let m_state = Mail::new(ld.div_ceil(2) + ld.div_ceil(8));
        let stop = AtomicBool::new(false);
        let mut h = st.h.clone();
        let mut q = st.q.clone();

        std::thread::scope(|sc| {
            sc.spawn(|| {
                let _leave = Leave(&stop);
                let layers = model.layer_weights();
                let mut acc_h = vec![0i32; nl * 3 * d];
                let mut acc_i = vec![0i32; 3 * d];
                for i in start..raw_len {
                    let seq = i as u64 + 1;
                    if reset(i) {
                        h.fill(0.0);
                        q.fill(0);
                    }
                    for (l, layer) in layers.iter().enumerate() {
                        let acc = &mut acc_h[l * 3 * d..(l + 1) * 3 * d];
                        kernels::matmul_i8(path, &layer.w_hh.w, &q[l * d..], ld, 1, acc, 3 * d);
                    }
                    let mut input = last;
                    if i > start {
                        // byte i - 1 (awaited at a reset too: it says the
                        // coder has read the mailboxes of step i - 1)
                        let ready = || {
                            m_byte.load(Ordering::Acquire) >> 8 == i as u64
                                || solo.load(Ordering::Acquire)
                        };
                        if wait(&ready, &stop).is_none() {
                            return;
                        }
                        if solo.load(Ordering::Acquire) {
                            // the state after step i - 1 (or zero at a reset)
                            let bits: Vec<i32> = h.iter().map(|v| v.to_bits() as i32).collect();
                            m_state.put(seq, &bits, &q);
                            return;
                        }
                        input = (m_byte.load(Ordering::Acquire) & 0xFF) as u16;
                    }
                    if reset(i) {
                        input = 256;
                    }
                    for l in 0..nl {
                        let acc = &acc_h[l * 3 * d..(l + 1) * 3 * d];
                        let x = &[input];
                        engine::layer_cells(model, path, l, x, acc, &mut acc_i, &mut h, &mut q, ld);
                        m_q[l].put(seq, &[], &q[l * d..(l + 1) * d]);
                    }
                }
            });

            let _leave = Leave(&stop);
            let gone = || -> LmError { LmError::Model("the model's helper thread stopped".into()) };
            let head = model.head();
            let mut q = vec![0i8; d];
            let mut acc_o = [0i32; 256];
            let mut part = [0i32; 256];
            let mut freqs = [[0u32; 256]];
            let mut stalls = 0;
            let mut x = last;
            for i in start..raw_len {
                if (i - start).is_multiple_of(WINDOW) {
                    stalls = 0;
                }
                let seq = i as u64 + 1;
                // the head's sums, layer by layer as the helper finishes
                // each (exact integer sums: the same as one product over
                // all columns)
                for (l, w) in pw.head.iter().enumerate() {
                    let ready = || m_q[l].seq.load(Ordering::Acquire) == seq;
                    stalls += wait(&ready, &stop).ok_or_else(gone)? as u32;
                    m_q[l].get(&mut [], &mut q);
                    let out = if l == 0 { &mut acc_o } else { &mut part };
                    kernels::matmul_i8(path, w, &q, d, 1, out, 256);
                    if l > 0 {
                        for (a, p) in acc_o.iter_mut().zip(&part) {
                            *a += p;
                        }
                    }
                }
                kernels::head_freqs(path, 1, &acc_o, &head.m, &head.b, &mut freqs);
                self.pred.set_lm(&freqs[0]);
                let alone = (stalls >= STALLS || i + 1 >= alone_from) && i + 1 < raw_len;
                x = self.pred.decode_byte_early(self.dec, |x| {
                    if !alone {
                        m_byte.store(seq << 8 | x as u64, Ordering::Release)
                    }
                }) as u16;
                if self.dec.overrun() {
                    return Err(crate::cm::CmError::Truncated.into());
                }
                if alone {
                    solo.store(true, Ordering::Release);
                    let ready = || m_state.seq.load(Ordering::Acquire) == seq + 1;
                    wait(&ready, &stop).ok_or_else(gone)?;
                    let mut bits = vec![0i32; ld];
                    m_state.get(&mut bits, &mut st.q);
                    for (h, b) in st.h.iter_mut().zip(&bits) {
                        *h = f32::from_bits(*b as u32);
                    }
                    return Ok((i + 1, x));
                }
            }
            Ok((raw_len, x))
        })
    }
}
