//! Decoding one chunk that uses the model on two threads.
//!
//! The chunk's coder (context mixing, `crate::codecs::cmlm`) is a [`ChainCoder`]:
//! given the frequencies of the next byte, it decodes that byte. A chunk is
//! a chain: the model's step for byte `i + 1` needs byte `i`, and
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
//!   frequencies, and decodes the next byte with the chunk's coder; it
//!   hands the byte over as soon as its last bit is known,
//!   before its own table updates, which then overlap the helper's work.
//!
//! Every value is computed by the same element-wise operations and exact
//! integer sums as in `engine::step` (a product's sums over a block of
//! columns add up exactly to the sums over all of them), so the frequencies,
//! and the decoded bytes, are the same bits as a one-thread run.
//!
//! The threads exchange values through `handoff`, whose module docs say
//! why the protocol is correct. A waiter spins for at most 50 µs (a round
//! trip costs about 130 ns on the development machine; a futex wake-up
//! would cost microseconds, per byte) and then parks until the other side
//! publishes. The scheme is fast only while both threads have a processor:
//! with one other busy process on two cores, book1 took 17.5 s instead of
//! 5.7 (one thread alone: about 10 s). So a wait that had to park counts as
//! a stall; after 32 stalls within 4096 bytes the helper hands its state
//! back and the coder goes on alone (the one-thread step, same bits) for
//! 64 KiB before trying two threads again. Loaded that way, book1 took
//! 10.5-11.4 s. Mailbox words are atomics, so the exchange needs no
//! `unsafe`.
//!
//! A chunk of two streams (format-spec 8.4) has two independent chains: the
//! helper then runs both, a step of one while the coder decodes the other's
//! byte, so neither thread waits on the other's whole chain (and the
//! helper's recurrent products are computed for both chains at once).
//!
//! Measured on calgary/book1 as one chunk (2-core development VM): 92 KB/s
//! on one thread, 139-144 KB/s with this split (`examples/cm_lm_probe`);
//! `lza x -T 2` of a `--method max` archive, quiet machine: 143-152 KB/s. A version that also split
//! layer 1 and the head by rows between the threads was slower (137 KB/s):
//! the coder's vector work runs at about half speed right after its
//! predictor's table work, so it is better left on the helper.

use super::engine;
use super::handoff::{ChaosSpec, Exchange, Next};
use super::kernels::{self, KernelPath, PackedI8};
use crate::codecs::lm::LmError;
use crate::codecs::lm::model::Model;

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

/// Stalled waits (ones that had to park, see `sync::STALL`) in one window of [`WINDOW`] bytes after
/// which the coder goes on alone for [`SOLO_RUN`] bytes: the two threads do
/// not both have a processor (another busy process, or more threads than
/// cores), and taking turns would be slower than one thread doing all.
const STALLS: u32 = 32;
/// Bytes per window of stall counting.
const WINDOW: usize = 4096;
/// Bytes at the start of a paired run whose stalls are not counted: the
/// helper thread starting and the other processor waking up (the VM's
/// idle vCPU) stalled the first 62 bytes 32 times in two of five runs of
/// a 70 KB file, which then went alone for 64 KiB (0.70 s instead of 0.45).
const WARM_UP: usize = 1024;
/// Bytes the coder decodes alone before it tries two threads again.
pub(crate) const SOLO_RUN: usize = 64 << 10;

/// A panic's message, as far as it is text.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".into(),
    }
}

/// The coder's side of a chunk decoded byte by byte, in coding order (with
/// two chains, byte `j` belongs to chain `j % 2`).
pub(crate) trait ChainCoder {
    /// Why a chunk does not decode; a fault of the model's side (a helper
    /// thread that stopped) comes as an [`LmError`].
    type Error: From<LmError>;
    /// Decodes the next byte given the model's frequency table `f` of it,
    /// handing it to `early` as soon as it is known (before the coder's
    /// own updates, so that the model's next step can start).
    fn next_byte(&mut self, f: &[u32; 256], early: impl FnOnce(u8)) -> Result<u8, Self::Error>;
}

/// Where a paired run's second processor comes from.
pub(crate) trait Helpers: Sync {
    /// One processor for a helper thread, if one is free now.
    fn take(&self) -> bool;
    /// The processor taken by [`Helpers::take`], back.
    fn give(&self);
}

/// Gives back the processor taken from a [`Helpers`] when dropped.
struct GiveBack<'a>(&'a dyn Helpers);

impl Drop for GiveBack<'_> {
    fn drop(&mut self) {
        self.0.give();
    }
}

/// A second processor whenever asked: the chunk has two to itself.
pub(crate) struct Always;

impl Helpers for Always {
    fn take(&self) -> bool {
        true
    }
    fn give(&self) {}
}

/// The model's state between steps: `h` and `q` of every layer, for each
/// chain (one, or two for a chunk of two streams, chain after chain).
struct State {
    h: Vec<f32>,
    q: Vec<i8>,
}

/// How [`decode`] switches between two threads and one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Knobs {
    /// Bytes decoded alone after a stalled or refused paired run.
    pub(crate) solo_run: usize,
    /// For tests: every byte from this one on is decoded alone
    /// (`usize::MAX`: none).
    pub(crate) alone_from: usize,
    /// For tests: the exchange delayed at random points, and the helper
    /// failing.
    pub(crate) chaos: Option<ChaosSpec>,
}

impl Knobs {
    /// The decoder's own: runs of [`SOLO_RUN`] bytes alone, and `chaos`.
    pub(crate) fn with_chaos(chaos: Option<ChaosSpec>) -> Knobs {
        Knobs {
            solo_run: SOLO_RUN,
            alone_from: usize::MAX,
            chaos,
        }
    }
}

/// Decodes `raw_len` bytes of `chains` interleaved chains (1, or 2 for a
/// chunk of two streams, format-spec 8.4) with `coder`, on two threads
/// (this one and a helper), or on this one alone for `knobs.solo_run`
/// bytes where the two keep stalling (and, for tests, as the other
/// [`Knobs`] say).
///
/// With two chains, byte `j` (in coding order) belongs to chain `j % 2`:
/// the helper's step for byte `j + 1` then overlaps the coder's work on
/// byte `j`, so neither waits for the other as long as each keeps up.
///
/// The helper's processor comes from `helpers`: before each paired run the
/// coder asks it for one, and decodes the next `knobs.solo_run` bytes alone
/// where none is free; the run gives it back when it ends.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode<C: ChainCoder>(
    model: &Model,
    pw: &PairWeights,
    path: KernelPath,
    coder: &mut C,
    raw_len: usize,
    chains: usize,
    knobs: Knobs,
    helpers: &dyn Helpers,
) -> Result<(), C::Error> {
    let Knobs {
        solo_run,
        alone_from,
        chaos,
    } = knobs;
    let ld = chains * model.layers() * model.dim();
    let mut state = State {
        h: vec![0.0; ld],
        q: vec![0; ld],
    };
    let mut c = Coder {
        model,
        path,
        coder,
        raw_len,
        chains,
        chaos,
    };
    let mut last = [256u16; 2];
    let mut j = 0;
    while j < raw_len {
        let mut ahead = None;
        if helpers.take() {
            // given back however the run ends, unwinding included
            let _back = GiveBack(helpers);
            (j, ahead) = c.paired(pw, j, &mut last, &mut state, alone_from)?;
        }
        if j < raw_len {
            let end = raw_len.min(j.saturating_add(solo_run.max(1)));
            c.alone(j, end, &mut last, &mut state, ahead)?;
            j = end;
        }
    }
    Ok(())
}

/// The coder's side: the chunk's coder and the chains' shape.
struct Coder<'m, 'c, C: ChainCoder> {
    model: &'m Model,
    path: KernelPath,
    coder: &'c mut C,
    raw_len: usize,
    /// Model chains: 1, or 2 for two streams.
    chains: usize,
    /// Test delays and faults in the exchange.
    chaos: Option<ChaosSpec>,
}

/// Why the coder's side of a paired run stopped early.
enum Stop<E> {
    /// The helper thread stopped (or panicked).
    Gone,
    /// The coder failed.
    Coder(E),
}

/// Model reset before byte `i` of a chain (format-spec 8.4).
fn reset(i: usize) -> bool {
    i.is_multiple_of(crate::format::LM_RESET)
}

impl<C: ChainCoder> Coder<'_, '_, C> {
    /// Decodes bytes `start..end` (coding order) on this thread alone, from
    /// each chain's state after its last step and its last byte in `last`;
    /// where `ahead` is `Some(start)`, the step for byte `start` is already
    /// in the state.
    fn alone(
        &mut self,
        start: usize,
        end: usize,
        last: &mut [u16; 2],
        st: &mut State,
        ahead: Option<usize>,
    ) -> Result<(), C::Error> {
        let model = self.model;
        let ld = model.layers() * model.dim();
        let mut scratch = engine::Scratch::new(model, self.chains);
        let mut j = start;
        while j < end {
            let (k, i) = (j % self.chains, j / self.chains);
            if self.chains == 2 && k == 0 && j + 1 < end && ahead != Some(j) {
                // Byte i of both chains: one step of both (chain 1's step
                // needs only its own last byte), a batch of 2 taking 0.72
                // of the time of two single steps (`examples/lm_speed`).
                let mut inputs = [last[0], last[1]];
                if reset(i) {
                    st.h.fill(0.0);
                    st.q.fill(0);
                    inputs = [256; 2];
                }
                engine::step(
                    model,
                    self.path,
                    &inputs,
                    &mut st.h,
                    &mut st.q,
                    &mut scratch,
                );
                for (x, f) in last.iter_mut().zip(&scratch.freqs) {
                    *x = self.coder.next_byte(f, |_| {})? as u16;
                }
                j += 2;
                continue;
            }
            let (h, q) = (
                &mut st.h[k * ld..(k + 1) * ld],
                &mut st.q[k * ld..(k + 1) * ld],
            );
            if ahead == Some(j) {
                engine::head(model, self.path, q, 1, &mut scratch);
            } else {
                let mut input = last[k];
                if reset(i) {
                    h.fill(0.0);
                    q.fill(0);
                    input = 256;
                }
                engine::step(model, self.path, &[input], h, q, &mut scratch);
            }
            last[k] = self.coder.next_byte(&scratch.freqs[0], |_| {})? as u16;
            j += 1;
        }
        Ok(())
    }

    /// Decodes from byte `start` (state and `last` as for [`Coder::alone`],
    /// nothing ahead) on two threads until the end of the chunk, or until
    /// the threads stall and the helper hands its state back; returns the
    /// next byte's index and, if the helper's state holds the step for that
    /// byte already (two chains), that index.
    fn paired(
        &mut self,
        pw: &PairWeights,
        start: usize,
        last: &mut [u16; 2],
        st: &mut State,
        alone_from: usize,
    ) -> Result<(usize, Option<usize>), C::Error> {
        let model = self.model;
        let path = self.path;
        let raw_len = self.raw_len;
        let chains = self.chains;
        let d = model.dim();
        let nl = model.layers();
        let ld = nl * d;
        let x = Exchange::new(chains, nl, d, chains * ld, chains * ld, self.chaos);
        let panicked = std::sync::Mutex::new(None::<String>);
        let first = *last;
        let (mut h, mut q) = (st.h.clone(), st.q.clone());
        let mut helper = move |x: &Exchange| {
            let layers = model.layer_weights();
            // the recurrent products of each layer for the steps of two
            // slots (step j in slot (j - start) % 2)
            let mut acc_h = vec![0i32; nl * 2 * 3 * d];
            let mut acc_i = vec![0i32; 3 * d];
            for j in start..raw_len {
                let (k, i) = (j % chains, j / chains);
                let slot = (j - start) % 2;
                // The products of the state before step j (a reset zeroes
                // it below, after a possible hand-back). With two chains,
                // those of steps j and j + 1 at once, one per chain (the
                // state of step j + 1's chain is known: step j - 1 was its
                // last): the weights are read once for both. Whole steps in
                // batches of 2 take 0.72 of the time of single ones
                // (`examples/lm_speed`); book1 decoded at 161-168 KB/s this
                // way, 142-150 with single products.
                let both = chains == 2 && j + 1 < raw_len;
                if slot == 0 || !both {
                    let nb = if both { 2 } else { 1 };
                    for (l, layer) in layers.iter().enumerate() {
                        let acc = &mut acc_h[l * 6 * d..][..nb * 3 * d];
                        // both: chain 0 then chain 1, slots by chain
                        let (xq, nb) = match both {
                            true => (&q[l * d..], 2),
                            false => (&q[k * ld + l * d..], 1),
                        };
                        kernels::matmul_i8(path, &layer.w_hh.w, xq, ld, nb, acc, 3 * d);
                        if both && k == 1 {
                            // step j is chain 1's: put it in slot 0
                            let (a, b) = acc.split_at_mut(3 * d);
                            a.swap_with_slice(b);
                        }
                    }
                }
                // (alone, the products were just computed into slot 0)
                let slot = if both { slot } else { 0 };
                for l in 0..nl {
                    if reset(i) {
                        acc_h[l * 6 * d + slot * 3 * d..][..3 * d].fill(0);
                    }
                }
                let mut input = first[k];
                if j >= start + chains {
                    // byte j - chains (awaited at a reset too: it says the
                    // coder has read the mailboxes of that step)
                    match x.await_byte(j) {
                        None => return,
                        Some(Next::Byte(b)) => input = b as u16,
                        Some(Next::HandBack) => {
                            // every chain's state after its last step (those
                            // before j)
                            let bits: Vec<i32> = h.iter().map(|v| v.to_bits() as i32).collect();
                            x.hand_back(j, &bits, &q);
                            return;
                        }
                    }
                }
                let (hk, qk) = (&mut h[k * ld..(k + 1) * ld], &mut q[k * ld..(k + 1) * ld]);
                if reset(i) {
                    hk.fill(0.0);
                    qk.fill(0);
                    input = 256;
                }
                for l in 0..nl {
                    let acc = &acc_h[l * 6 * d + slot * 3 * d..][..3 * d];
                    engine::layer_cells(model, path, l, &[input], acc, &mut acc_i, hk, qk, ld);
                    x.put_q(j, l, &qk[l * d..(l + 1) * d]);
                }
            }
        };

        let r = std::thread::scope(|sc| {
            sc.spawn(|| {
                // A panic here is caught so that the scope does not re-raise
                // it; the coder then finds `stop` and reports the message.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _leave = x.leave_guard(false);
                    helper(&x);
                }));
                if let Err(p) = r {
                    *panicked.lock().unwrap_or_else(|e| e.into_inner()) = Some(panic_text(&*p));
                }
            });
            let _leave = x.leave_guard(true);
            // (the panic's message, if any, is added once the scope has
            // joined the helper)
            let gone = || Stop::Gone;
            let head = model.head();
            let mut qv = vec![0i8; d];
            let mut acc_o = [0i32; 256];
            let mut part = [0i32; 256];
            let mut freqs = [[0u32; 256]];
            let mut stalls = 0;
            for j in start..raw_len {
                if (j - start).is_multiple_of(WINDOW) {
                    stalls = 0;
                }
                let k = j % chains;
                // the head's sums, layer by layer as the helper finishes
                // each (exact integer sums: the same as one product over
                // all columns)
                for (l, w) in pw.head.iter().enumerate() {
                    // `gone` is called at most once: it returns
                    let stalled = x.await_q(j, l, &mut qv).ok_or_else(gone)?;
                    stalls += (stalled && j - start >= WARM_UP) as u32;
                    let out = if l == 0 { &mut acc_o } else { &mut part };
                    kernels::matmul_i8(path, w, &qv, d, 1, out, 256);
                    if l > 0 {
                        for (a, p) in acc_o.iter_mut().zip(&part) {
                            *a += p;
                        }
                    }
                }
                kernels::head_freqs(path, 1, &acc_o, &head.m, &head.b, &mut freqs);
                // going alone needs the helper to be waiting for this byte,
                // so a step for it must remain
                let alone = (stalls >= STALLS || j + 1 >= alone_from) && j + chains < raw_len;
                let b = self
                    .coder
                    .next_byte(&freqs[0], |b| {
                        if !alone {
                            x.put_byte(j, b)
                        }
                    })
                    .map_err(Stop::Coder)?;
                last[k] = b as u16;
                if alone {
                    let mut bits = vec![0i32; chains * ld];
                    x.take_back(j, &mut bits, &mut st.q).ok_or_else(gone)?;
                    for (h, b) in st.h.iter_mut().zip(&bits) {
                        *h = f32::from_bits(*b as u32);
                    }
                    // with two chains, step j + 1 is done
                    return Ok((j + 1, (chains > 1).then_some(j + 1)));
                }
            }
            Ok((raw_len, None))
        });
        match (r, panicked.into_inner().unwrap_or_else(|e| e.into_inner())) {
            (Ok(r), _) => Ok(r),
            (Err(Stop::Coder(e)), _) => Err(e),
            (Err(Stop::Gone), Some(p)) => {
                Err(LmError::Internal(format!("the model's helper thread panicked: {p}")).into())
            }
            (Err(Stop::Gone), None) => {
                Err(LmError::Internal("the model's helper thread stopped".into()).into())
            }
        }
    }
}
