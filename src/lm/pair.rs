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
//! cost microseconds, per byte), and yield once a wait gets long, as on an
//! overloaded machine. Mailbox words are atomics, so the exchange needs no
//! `unsafe`.
//!
//! Measured on calgary/book1 as one chunk (2-core development VM): 92 KB/s
//! on one thread, 139-144 KB/s with this split. A version that also split
//! layer 1 and the head by rows between the threads was slower (137 KB/s):
//! the coder's vector work runs at about half speed right after its
//! predictor's table work, so it is better left on the helper.

use super::LmError;
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

    fn put_i8(&self, seq: u64, v: &[i8]) {
        for (w, c) in self.words.iter().zip(v.chunks(8)) {
            let mut b = [0u8; 8];
            for (b, &x) in b.iter_mut().zip(c) {
                *b = x as u8;
            }
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.seq.store(seq, Ordering::Release);
    }

    fn get_i8(&self, v: &mut [i8]) {
        for (w, c) in self.words.iter().zip(v.chunks_mut(8)) {
            let b = w.load(Ordering::Relaxed).to_le_bytes();
            for (x, &b) in c.iter_mut().zip(&b) {
                *x = b as i8;
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

/// Waits until `seq` holds `want`; false if the other thread left first.
fn wait(seq: &AtomicU64, want: u64, stop: &AtomicBool) -> bool {
    let mut spins = 0u32;
    loop {
        if seq.load(Ordering::Acquire) == want {
            return true;
        }
        if stop.load(Ordering::Acquire) {
            return seq.load(Ordering::Acquire) == want;
        }
        spins += 1;
        if spins < 1 << 14 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// Decodes a context-mixing `payload` (header byte included) of `raw_len`
/// bytes with `preset` and the model on two threads (this one and a helper).
pub(crate) fn decode_cm(
    model: &Model,
    pw: &PairWeights,
    path: KernelPath,
    payload: &[u8],
    raw_len: usize,
    preset: crate::cm::Preset,
) -> Result<Vec<u8>, LmError> {
    let d = model.dim();
    let nl = model.layers();
    let ld = nl * d;
    // helper -> coder: each layer's new q; step `i` (the frequencies of
    // byte `i`) is sequence `i + 1`
    let m_q: Vec<Mail> = (0..nl).map(|_| Mail::new(d.div_ceil(8))).collect();
    // coder -> helper: byte i as (i + 1) << 8 | byte
    let m_byte = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let reset = |i: usize| i.is_multiple_of(crate::cm::LM_RESET);

    std::thread::scope(|sc| {
        sc.spawn(|| {
            let _leave = Leave(&stop);
            let layers = model.layer_weights();
            let mut h = vec![0.0f32; ld];
            let mut q = vec![0i8; ld];
            let mut acc_h = vec![0i32; nl * 3 * d];
            let mut acc_i = vec![0i32; 3 * d];
            for i in 0..raw_len {
                let seq = i as u64 + 1;
                if reset(i) {
                    h.fill(0.0);
                    q.fill(0);
                }
                for (l, layer) in layers.iter().enumerate() {
                    let acc = &mut acc_h[l * 3 * d..(l + 1) * 3 * d];
                    kernels::matmul_i8(path, &layer.w_hh.w, &q[l * d..], ld, 1, acc, 3 * d);
                }
                // byte i - 1 (awaited at a reset too: it says the coder has
                // read the mailboxes of step i - 1)
                if i > 0 && !wait_byte(&m_byte, i as u64, &stop) {
                    return;
                }
                let input = if reset(i) {
                    256
                } else {
                    (m_byte.load(Ordering::Acquire) & 0xFF) as u16
                };
                for (l, layer) in layers.iter().enumerate() {
                    let acc = &acc_h[l * 3 * d..(l + 1) * 3 * d];
                    let (prev, rest) = q.split_at_mut(l * d);
                    let hl = &mut h[l * d..(l + 1) * d];
                    let ql = &mut rest[..d];
                    match &layer.w_ih {
                        None => kernels::gru_layer0(
                            path,
                            d,
                            1,
                            &[input],
                            model.embed(),
                            acc,
                            &layer.w_hh.m,
                            &layer.w_hh.b,
                            hl,
                            ql,
                            d,
                        ),
                        Some(w_ih) => {
                            let x = &prev[(l - 1) * d..];
                            kernels::matmul_i8(path, &w_ih.w, x, d, 1, &mut acc_i, 3 * d);
                            kernels::gru_layer(
                                path,
                                d,
                                1,
                                &acc_i,
                                &w_ih.m,
                                &w_ih.b,
                                acc,
                                &layer.w_hh.m,
                                &layer.w_hh.b,
                                hl,
                                ql,
                                d,
                            );
                        }
                    }
                    m_q[l].put_i8(seq, ql);
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
        let mut dec = crate::cm::coder::Decoder::new(&payload[1..]);
        let mut pred = crate::cm::Predictor::new(preset, raw_len, true);
        for i in 0..raw_len {
            let seq = i as u64 + 1;
            // the head's sums, layer by layer as the helper finishes each
            // (exact integer sums: the same as one product over all columns)
            for (l, w) in pw.head.iter().enumerate() {
                if !wait(&m_q[l].seq, seq, &stop) {
                    return Err(gone());
                }
                m_q[l].get_i8(&mut q);
                let out = if l == 0 { &mut acc_o } else { &mut part };
                kernels::matmul_i8(path, w, &q, d, 1, out, 256);
                if l > 0 {
                    for (a, p) in acc_o.iter_mut().zip(&part) {
                        *a += p;
                    }
                }
            }
            kernels::head_freqs(path, 1, &acc_o, &head.m, &head.b, &mut freqs);
            pred.set_lm(&freqs[0]);
            pred.decode_byte_early(&mut dec, |x| {
                m_byte.store(seq << 8 | x as u64, Ordering::Release)
            });
            if dec.overrun() {
                return Err(crate::cm::CmError::Truncated.into());
            }
        }
        crate::cm::finish(&dec)?;
        Ok(pred.take_history())
    })
}

/// Waits until `byte` holds byte `i - 1`'s word (sequence `i` in its high bits).
fn wait_byte(byte: &AtomicU64, seq: u64, stop: &AtomicBool) -> bool {
    let mut spins = 0u32;
    loop {
        if byte.load(Ordering::Acquire) >> 8 == seq {
            return true;
        }
        if stop.load(Ordering::Acquire) {
            return byte.load(Ordering::Acquire) >> 8 == seq;
        }
        spins += 1;
        if spins < 1 << 14 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
