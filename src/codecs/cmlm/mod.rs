//! Context mixing with the language model (format-spec 8 with bit 7 of the
//! preset byte set): the loop that runs the model's chains
//! ([`crate::codecs::lm`]) next to the context-mixing predictor ([`crate::codecs::cm`]),
//! for many chunks side by side. It uses both; neither imports it.
//!
//! Encoding knows every byte, so the model runs first, batched over the
//! chunks' stretches of [`LM_RESET`] bytes (its state restarts at each, so
//! they are independent chains), and leaves 8 bit probabilities per byte;
//! the chunks are then coded side by side. Decoding cannot run ahead of
//! the bytes it has decoded: each chunk advances byte by byte, a model
//! step then a mixing step, many chunks in one batched model step, and a
//! chunk with no other beside it is split over two threads (the model's
//! layers on one, the mixing on the other). Every way gives the payload of
//! the byte-by-byte run (`encode_chunks_stepwise`, for tests).

use crate::codecs::cm::{self, CmError, Predictor, Preset};
use crate::codecs::lm::scheduler::{Advance, ChainJob};
use crate::codecs::lm::{Always, ChainCoder, Helpers, LmCodec, LmError, StepBackend};
use crate::format::LM_RESET;
use lend::Lender;

mod lend;
mod sync;

/// Memory the context-mixing chunks of one call may hold at a time: as
/// many chunks are coded side by side as their predictors fit in this
/// (at least one). 1 MiB chunks take about 24 MiB each.
pub const CM_MEMORY: usize = 200 << 20;

/// Chunks of at most this length are what a group of context-mixing
/// chunks is sized for (the encoder's default piece).
pub const CM_SLOTS: usize = 8;

/// Batches the model runs in when it codes a lone chunk, so that the coder
/// can start on the first while it runs the rest ([`encode_pipelined`]).
const PIPELINE_GROUPS: usize = 4;

/// Why a chunk coded with the model does not decode.
#[derive(Debug, thiserror::Error)]
pub enum CmLmError {
    /// The context-mixing payload is corrupt.
    #[error(transparent)]
    Payload(#[from] CmError),
    /// The model's side failed (a fault inside lza: a thread that stopped
    /// or panicked).
    #[error(transparent)]
    Model(#[from] LmError),
}

impl CmLmError {
    /// Whether this is a fault inside lza rather than a property of the
    /// payload.
    pub fn is_internal(&self) -> bool {
        matches!(self, CmLmError::Model(e) if e.is_internal())
    }
}

/// Slots for context-mixing chunks of at most `max_len` bytes.
#[cfg_attr(not(any(test, feature = "testutil")), allow(dead_code))]
fn cm_slots(batch: usize, preset: Preset, max_len: usize) -> usize {
    let per = Predictor::memory(preset, max_len, true);
    batch.min(CM_MEMORY / per).max(1)
}

/// The model's chains of a context-mixing chunk: the chunk, or its two
/// streams (format-spec 8.4).
fn streams(c: &[u8], two: bool) -> [&[u8]; 2] {
    match two {
        true => c.split_at(c.len().div_ceil(2)).into(),
        false => [c, &[]],
    }
}

/// A chunk's work in the batched scheduler: one chain each (chunks of one
/// stream, or a stretch of one).
enum CmJob<'a> {
    /// Code a chunk of one stream byte by byte, model and coder in step.
    #[cfg_attr(not(any(test, feature = "testutil")), allow(dead_code))]
    Encode {
        data: &'a [u8],
        pos: usize,
        pred: Box<Predictor>,
        enc: cm::coder::Encoder,
        head: u8,
    },
    /// Decode a chunk of one stream.
    Decode {
        dec: cm::coder::Decoder<'a>,
        pred: Box<Predictor>,
        raw_len: usize,
    },
    /// The model's bit probabilities of each byte of a stretch (for the
    /// encoder).
    Probs {
        data: &'a [u8],
        pos: usize,
        out: Vec<[u16; 8]>,
    },
}

enum CmDone {
    #[cfg_attr(not(any(test, feature = "testutil")), allow(dead_code))]
    Encoded(Vec<u8>),
    Decoded(Result<Vec<u8>, CmLmError>),
    Probs(Vec<[u16; 8]>),
}

impl ChainJob for CmJob<'_> {
    type Output = CmDone;

    fn finish_empty(self) -> Result<CmDone, Self> {
        match self {
            CmJob::Probs { data: [], out, .. } => Ok(CmDone::Probs(out)),
            CmJob::Encode {
                data: [],
                enc,
                head,
                ..
            } => {
                let mut out = vec![head];
                out.extend_from_slice(&enc.finish());
                Ok(CmDone::Encoded(out))
            }
            CmJob::Decode {
                dec, raw_len: 0, ..
            } => Ok(CmDone::Decoded(
                cm::finish(&dec).map(|_| Vec::new()).map_err(Into::into),
            )),
            j => Err(j),
        }
    }

    fn advance(&mut self, f: &[u32; 256]) -> Advance<CmDone> {
        match self {
            CmJob::Encode {
                data,
                pos,
                pred,
                enc,
                head,
            } => {
                let x = data[*pos];
                pred.set_lm(f);
                pred.encode_byte(enc, x);
                *pos += 1;
                if *pos == data.len() {
                    let enc = std::mem::replace(enc, cm::coder::Encoder::with_capacity(0));
                    let mut out = vec![*head];
                    out.extend_from_slice(&enc.finish());
                    Advance::Done(CmDone::Encoded(out))
                } else if pos.is_multiple_of(LM_RESET) {
                    Advance::Reset
                } else {
                    Advance::Symbol(x)
                }
            }
            CmJob::Probs { data, pos, out } => {
                let x = data[*pos];
                out.push(cm::lm_byte_bits(f, x));
                *pos += 1;
                if *pos == data.len() {
                    return Advance::Done(CmDone::Probs(std::mem::take(out)));
                }
                Advance::Symbol(x)
            }
            CmJob::Decode { dec, pred, raw_len } => {
                pred.set_lm(f);
                let x = pred.decode_byte(dec);
                let n = pred.coded();
                if dec.overrun() {
                    Advance::Done(CmDone::Decoded(Err(CmError::Truncated.into())))
                } else if n == *raw_len {
                    let r = cm::finish(dec)
                        .map(|_| pred.take_history())
                        .map_err(Into::into);
                    Advance::Done(CmDone::Decoded(r))
                } else if n.is_multiple_of(LM_RESET) {
                    Advance::Reset
                } else {
                    Advance::Symbol(x)
                }
            }
        }
    }
}

/// The coder's side of a chunk decoded by the model's two-thread split:
/// the predictor and the arithmetic decoder.
struct MixingDecoder<'d, 'p> {
    dec: &'d mut cm::coder::Decoder<'p>,
    pred: &'d mut Predictor,
}

impl ChainCoder for MixingDecoder<'_, '_> {
    type Error = CmLmError;

    fn next_byte(&mut self, f: &[u32; 256], early: impl FnOnce(u8)) -> Result<u8, CmLmError> {
        self.pred.set_lm(f);
        let b = self.pred.decode_byte_early(self.dec, early);
        if self.dec.overrun() {
            return Err(CmError::Truncated.into());
        }
        Ok(b)
    }
}

/// A chunk's arithmetic decoder, predictor and model chains (2 with two
/// streams).
fn start(
    payload: &[u8],
    raw_len: usize,
    preset: Preset,
) -> (cm::coder::Decoder<'_>, Predictor, usize) {
    let dec = cm::coder::Decoder::new(&payload[1..]); // LM payloads: 1-byte header
    let chains = if preset.two_streams { 2 } else { 1 };
    (dec, Predictor::new(preset, raw_len, true), chains)
}

/// Decodes a context-mixing `payload` (header byte included) of `raw_len`
/// bytes with `preset` and the model, split over two threads (the model's
/// layers on a helper, see the CPU backend's `pair`).
fn decode_paired(
    codec: &LmCodec,
    payload: &[u8],
    raw_len: usize,
    preset: Preset,
) -> Result<Vec<u8>, CmLmError> {
    if !codec.on_cpu() {
        // the split is the CPU's; a GPU steps the chunk's chains itself
        return decode_alone(&codec.scheduler().backend, payload, raw_len, preset);
    }
    decode_lent(codec, payload, raw_len, preset, &Always)
}

/// Decodes a context-mixing `payload` as [`decode_paired`] does on the
/// CPU, with the helper's processor lent by `helpers` whenever one is free
/// (see [`Lender`]), and this thread alone otherwise.
fn decode_lent(
    codec: &LmCodec,
    payload: &[u8],
    raw_len: usize,
    preset: Preset,
    helpers: &dyn Helpers,
) -> Result<Vec<u8>, CmLmError> {
    let (mut dec, mut pred, chains) = start(payload, raw_len, preset);
    let mut coder = MixingDecoder {
        dec: &mut dec,
        pred: &mut pred,
    };
    codec.decode_lent(&mut coder, raw_len, chains, helpers)?;
    cm::finish(&dec)?;
    Ok(pred.take_history())
}

impl Helpers for Lender {
    fn take(&self) -> bool {
        Lender::take(self)
    }

    fn give(&self) {
        Lender::give(self)
    }
}

/// Decodes a context-mixing `payload` as [`decode_paired`] does, on this
/// thread alone, through the backend's batched step: with two streams both
/// chains go in one step (byte `i` of each stream is known once both were
/// decoded, `A[i]` then `B[i]`, so the steps for `A[i + 1]` and `B[i + 1]`
/// go together: a batch of 2 takes 0.72 of the time of two single steps,
/// `examples/lm_speed`).
fn decode_alone<B: StepBackend>(
    backend: &B,
    payload: &[u8],
    raw_len: usize,
    preset: Preset,
) -> Result<Vec<u8>, CmLmError> {
    let (mut dec, mut pred, chains) = start(payload, raw_len, preset);
    let mut state = backend.new_chains(chains);
    let mut scratch = backend.new_scratch(chains);
    let mut last = [256u16; 2];
    for i in 0..raw_len.div_ceil(chains) {
        let nb = chains.min(raw_len - i * chains);
        if i.is_multiple_of(LM_RESET) {
            for k in 0..chains {
                backend.reset_chain(&mut state, k);
            }
            last = [256; 2];
        }
        let mut part = backend.part(&mut state, nb);
        let freqs = backend.step(&mut part, 0, &last[..nb], &mut scratch);
        for (x, f) in last.iter_mut().zip(freqs) {
            pred.set_lm(f);
            *x = pred.decode_byte(&mut dec) as u16;
            if dec.overrun() {
                return Err(CmError::Truncated.into());
            }
        }
    }
    cm::finish(&dec)?;
    Ok(pred.take_history())
}

/// Codes each chunk with the context-mixing `preset` mixed with `codec`'s
/// model (format-spec 8), in input order. Chunks are at most
/// [`cm::MAX_CM_LM_CHUNK`] bytes.
///
/// The encoder knows every byte, so the model runs first, batched over
/// the chunks' [`LM_RESET`]-byte stretches (on a GPU, all of them in one
/// launch, [`crate::codecs::lm::CudaBackend::known_bits`]), and leaves 8
/// bit probabilities per byte; the chunks are then coded side by side on
/// the threads. The payloads are those a byte-by-byte run would give
/// ([`decode_chunks`] is that run).
pub fn encode_chunks(codec: &LmCodec, chunks: &[&[u8]], preset: Preset) -> Vec<Vec<u8>> {
    use rayon::prelude::*;
    let sched = codec.scheduler();
    let two = preset.two_streams;
    // a lone chunk of 16 stretches or more (on html, 102 KB, the model
    // in batches of 2 stretches was slower than the overlap gained); a GPU
    // runs all the stretches at once instead
    let active = codec.enter();
    if let ([data], Some(_)) = (chunks, codec.pool())
        && data.len() >= 16 * LM_RESET
        && active.alone()
        && codec.on_cpu()
    {
        return vec![encode_pipelined(codec, data, preset)];
    }
    let stretches: Vec<&[u8]> = chunks
        .iter()
        .flat_map(|&c| streams(c, two))
        .flat_map(|s| s.chunks(LM_RESET))
        .collect();
    let mut probs = match sched.backend.cuda() {
        // every step of every stretch on the device, in one launch
        Some(gpu) => gpu.known_bits(&stretches),
        None => {
            let jobs = stretches.iter().map(|&data| CmJob::Probs {
                data,
                pos: 0,
                out: Vec::with_capacity(data.len()),
            });
            sched
                .run(jobs, stretches.len(), codec.batch())
                .into_iter()
                .map(|d| match d {
                    CmDone::Probs(p) => p,
                    _ => unreachable!(),
                })
                .collect()
        }
    }
    .into_iter();
    // each chunk's streams' bit probabilities, byte by byte
    let per_chunk: Vec<[Vec<[u16; 8]>; 2]> = chunks
        .iter()
        .map(|&c| {
            streams(c, two).map(|s| {
                probs
                    .by_ref()
                    .take(s.len().div_ceil(LM_RESET))
                    .flatten()
                    .collect()
            })
        })
        .collect();
    let code = |(data, probs): (&&[u8], &[Vec<[u16; 8]>; 2])| -> Vec<u8> {
        assert!(data.len() <= cm::MAX_CM_LM_CHUNK);
        let mut pred = Predictor::new(preset, data.len(), true);
        let mut enc = cm::coder::Encoder::with_capacity(data.len() / 3 + 16);
        let s = streams(data, two);
        for _ in 0..data.len() {
            let (k, i) = pred.next_in_stream();
            pred.set_lm_bits(&probs[k][i]);
            pred.encode_byte(&mut enc, s[k][i]);
        }
        let mut out = vec![preset.id | cm::FLAG_LM];
        out.extend_from_slice(&enc.finish());
        out
    };
    match &sched.pool {
        Some(pool) => pool.install(|| chunks.par_iter().zip(&per_chunk).map(code).collect()),
        None => chunks.iter().zip(&per_chunk).map(code).collect(),
    }
}

/// [`encode_chunks`] for one chunk on a pool, with the coder overlapping
/// the model: the model runs over the stretches in [`PIPELINE_GROUPS`]
/// batches in the order the coder needs them (with two streams, a stretch
/// of each in turn), and the coder (on a thread of its own) starts on the
/// first as soon as it is done. A lone chunk has one coder, so without
/// this the coder's whole run would follow the model's. The same payload.
fn encode_pipelined(codec: &LmCodec, data: &[u8], preset: Preset) -> Vec<u8> {
    assert!(data.len() <= cm::MAX_CM_LM_CHUNK);
    let s = streams(data, preset.two_streams);
    let st: [Vec<&[u8]>; 2] = s.map(|s| s.chunks(LM_RESET).collect());
    // (stream, stretch) in the order the coder needs them
    let order: Vec<(usize, usize)> = (0..st[0].len())
        .flat_map(|i| [(0, i), (1, i)])
        .filter(|&(k, i)| i < st[k].len())
        .collect();
    let per = order.len().div_ceil(PIPELINE_GROUPS);
    type Group = Vec<((usize, usize), Vec<[u16; 8]>)>;
    let (tx, rx) = std::sync::mpsc::channel::<Group>();
    let counts = st.each_ref().map(|v| v.len());
    std::thread::scope(|sc| {
        let coder = sc.spawn(move || {
            let mut probs: [Vec<Vec<[u16; 8]>>; 2] = counts.map(|n| vec![Vec::new(); n]);
            let mut pred = Predictor::new(preset, data.len(), true);
            let mut enc = cm::coder::Encoder::with_capacity(data.len() / 3 + 16);
            for _ in 0..data.len() {
                let (k, i) = pred.next_in_stream();
                let (t, p) = (i / LM_RESET, i % LM_RESET);
                while probs[k][t].is_empty() {
                    let group = rx.recv().expect("the model's results");
                    for ((k, t), v) in group {
                        probs[k][t] = v;
                    }
                }
                pred.set_lm_bits(&probs[k][t][p]);
                pred.encode_byte(&mut enc, s[k][i]);
            }
            let mut out = vec![preset.id | cm::FLAG_LM];
            out.extend_from_slice(&enc.finish());
            out
        });
        for group in order.chunks(per) {
            let jobs = group.iter().map(|&(k, t)| CmJob::Probs {
                data: st[k][t],
                pos: 0,
                out: Vec::with_capacity(st[k][t].len()),
            });
            let done = codec
                .scheduler()
                .run_local(jobs, group.len(), codec.batch());
            let results = group.iter().zip(done).map(|(&kt, d)| match d {
                CmDone::Probs(p) => (kt, p),
                _ => unreachable!(),
            });
            if tx.send(results.collect()).is_err() {
                break; // the coder stopped (a panic, propagated below)
            }
        }
        drop(tx);
        coder.join().expect("the coder thread")
    })
}

/// [`encode_chunks`] done byte by byte, the model and the coder in step
/// as the decoder runs them: the same payloads, more slowly. Chunks of one
/// stream only. For tests.
#[cfg(any(test, feature = "testutil"))]
pub fn encode_chunks_stepwise(codec: &LmCodec, chunks: &[&[u8]], preset: Preset) -> Vec<Vec<u8>> {
    let jobs = chunks.iter().map(|&data| CmJob::Encode {
        data,
        pos: 0,
        pred: Box::new(Predictor::new(preset, data.len(), true)),
        enc: cm::coder::Encoder::with_capacity(data.len() / 3 + 16),
        head: preset.id | cm::FLAG_LM,
    });
    let max_len = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    codec
        .scheduler()
        .run_split(jobs, chunks.len(), cm_slots(codec.batch(), preset, max_len))
        .into_iter()
        .map(|d| match d {
            CmDone::Encoded(v) => v,
            _ => unreachable!("not an encoding job"),
        })
        .collect()
}

/// Decodes context-mixing `(payload, raw_len)` pairs whose payloads use
/// the model, in input order. A bad payload fails only its own chunk; no
/// chunk yields more than `raw_len` bytes. Each decoder's tables are leased
/// from [`cm::budget::DECODE`] before it starts.
pub fn decode_chunks(
    codec: &LmCodec,
    chunks: &[(&[u8], usize)],
) -> Vec<Result<Vec<u8>, CmLmError>> {
    decode_chunks_in(codec, chunks, &cm::budget::DECODE)
}

/// [`decode_chunks`] with the decoders' tables leased from `budget`.
fn decode_chunks_in(
    codec: &LmCodec,
    chunks: &[(&[u8], usize)],
    budget: &cm::budget::Budget,
) -> Vec<Result<Vec<u8>, CmLmError>> {
    let sched = codec.scheduler();
    let threads = codec.threads();
    let headers: Vec<Result<cm::PayloadHeader, CmLmError>> = chunks
        .iter()
        .map(
            |&(payload, raw_len)| match cm::parse_header(payload, raw_len) {
                Ok(h) if h.lm => Ok(h),
                Ok(_) => Err(CmError::BadPreset(payload[0]).into()),
                Err(e) => Err(e.into()),
            },
        )
        .collect();
    let active = codec.enter();
    let alone_in_codec = active.alone();
    let live: Vec<(usize, Preset)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().ok().map(|h| (i, h.preset)))
        .collect();
    // Chunks of two streams run two model chains each: they are decoded
    // one per thread, on as many lanes as there are threads (and as the
    // decoders' budget allows), and threads left over are lent to them as
    // helpers (`decode_lent`: the model's layers on one thread, the coder
    // on the other). One thread each left most of a 16-core machine idle:
    // a 9.9 MB tree of five files extracted in 18.3 s with -T 16, most of
    // it spent on its 2 MB chunk of prose. Chunks of one stream share
    // batched model steps on the threads (`run_split`), unless they are
    // fewer than twice the threads: then they join the lanes, since a
    // batch of one or two per thread gains little and `run_split` ran only
    // after the lanes. On 2 threads of the development VM, the 9.9 MB
    // tree's alice29.txt (a block of two 76 KB chunks of one stream) took
    // the last second on both threads; in the lanes, beside urls.10K,
    // extraction went from 22.2-22.7 s to 21.2-21.5 s.
    let (two, one): (Vec<_>, Vec<_>) = live.into_iter().partition(|(_, p)| p.two_streams);
    let (waved, one) = match alone_in_codec && threads > 1 && one.len() < 2 * threads {
        true => ([two, one].concat(), Vec::new()),
        false => (two, one),
    };
    let mut out: Vec<Option<Result<Vec<u8>, CmLmError>>> =
        (0..chunks.len()).map(|_| None).collect();
    // a decoder's tables (`Predictor::memory`), leased from `budget`
    let per = |i: usize, preset: Preset| Predictor::memory(preset, chunks[i].1, true);
    let paired = |(i, preset): (usize, Preset)| {
        let (payload, raw_len) = chunks[i];
        (i, decode_paired(codec, payload, raw_len, preset))
    };
    if !waved.is_empty() {
        use rayon::prelude::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Lanes (as many as the threads allow, and as many decoders as the
        // budget's total holds) take the chunks longest first, each the
        // next one as soon as it is done; threads left over, and those of
        // lanes that ran dry, are lent to the chunks still decoding as
        // their model helpers ([`Lender`]).
        // Waves with a barrier between them would wait for each wave's
        // longest chunk: on 2 threads of the Zen 4 development VM, with
        // book1 (6.4 s alone) and the first 2 MB of dickens (16.8 s) in one
        // wave and urls.10K (6.0 s) after it, a 9.9 MB tree extracted in
        // 31-32 s; with lanes, in 24 s.
        //
        // Each lane leases its chunk's tables for that chunk alone, on its
        // own thread, and decodes it there without waiting for any other
        // work of the pool (`decode_alone`, or `decode_lent` whose helpers
        // are threads of their own). So a thread that waits for the budget
        // holds none of it, every holder finishes, and the budget's room
        // passes from chunk to chunk across the groups being decoded.
        // Leasing for all lanes at the start instead held the room of
        // lanes that had run dry until the group's last chunk ended, and
        // left the next group's job waiting on a pool thread: with -T 16
        // on the 16-core Xeon, the 10,091-file crate tree (about 50
        // one-MiB blocks) extracted in 171 s (57 s with the budget raised
        // to 4 GiB); leasing per chunk, in 66-74 s.
        let most = waved.iter().map(|&(i, p)| per(i, p)).max().unwrap_or(1);
        let mut queue = waved.clone();
        queue.sort_by_key(|&(i, _)| std::cmp::Reverse(chunks[i].1));
        let fit = (budget.total() / most).max(1);
        let lanes = threads.max(1).min(queue.len()).min(fit);
        let lend = alone_in_codec && threads > 1 && codec.on_cpu();
        // (without lending, lanes decode alone and never ask for a helper)
        let lender = Lender::new(lend, threads.saturating_sub(lanes));
        let next = AtomicUsize::new(0);
        let lane = |_| {
            let mut done = Vec::new();
            let lane = lender.enter();
            while let Some(&(i, preset)) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                let _lease = budget.lease(per(i, preset));
                let (payload, raw_len) = chunks[i];
                let r = match lend {
                    true => decode_lent(codec, payload, raw_len, preset, &lender),
                    false => decode_alone(&sched.backend, payload, raw_len, preset),
                };
                done.push((i, r));
            }
            lane.leave();
            done
        };
        let done: Vec<Vec<_>> = match &sched.pool {
            Some(pool) if lanes > 1 => pool.install(|| {
                (0..lanes)
                    .into_par_iter()
                    .with_max_len(1)
                    .map(lane)
                    .collect()
            }),
            _ => vec![lane(0)],
        };
        for (i, r) in done.into_iter().flatten() {
            out[i] = Some(r);
        }
    }
    // With chunks left over once every thread has one (an odd number on
    // two threads), the last of them is decoded on two threads (the
    // model on one, the coder on the other), after the others.
    let lone = match threads > 1 && one.len() % threads == 1 && alone_in_codec {
        true => one.last().copied(),
        false => None,
    };
    let shared = &one[..one.len() - lone.is_some() as usize];
    // Predictors are built lazily as lanes free up: the iterator is
    // consumed only when a lane takes its job.
    let jobs = shared.iter().map(|&(i, preset)| {
        let (payload, raw_len) = chunks[i];
        CmJob::Decode {
            dec: cm::coder::Decoder::new(&payload[1..]), // LM payloads: 1-byte header
            pred: Box::new(Predictor::new(preset, raw_len, true)),
            raw_len,
        }
    });
    let most = shared.iter().map(|&(i, p)| per(i, p)).max().unwrap_or(1);
    let slots = codec
        .batch()
        .min(CM_MEMORY / most)
        .min(budget.total() / most)
        .max(1)
        .min(shared.len().max(1));
    // each thread leases the tables of its own lanes (as the lanes above)
    let results = sched.run_split_with(jobs, shared.len(), slots, |lanes| {
        budget.lease(lanes * most)
    });
    for (&(i, _), r) in shared.iter().zip(results) {
        match r {
            CmDone::Decoded(r) => out[i] = Some(r),
            _ => unreachable!("one decoding result per live chunk"),
        }
    }
    if let Some((i, preset)) = lone {
        let _lease = budget.lease(per(i, preset));
        let (i, r) = paired((i, preset));
        out[i] = Some(r);
    }
    let x86: Vec<bool> = headers
        .iter()
        .map(|h| h.as_ref().is_ok_and(|h| h.x86))
        .collect();
    let mut out: Vec<Result<Vec<u8>, CmLmError>> = headers
        .into_iter()
        .zip(out)
        .map(|(h, r)| match (h, r) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(r)) => r,
            (Ok(_), None) => unreachable!("every live chunk is decoded"),
        })
        .collect();
    for (r, x86) in out.iter_mut().zip(x86) {
        if let (Ok(data), true) = (r, x86) {
            cm::x86_filter(data, true);
        }
    }
    out
}

#[cfg(test)]
mod tests;
