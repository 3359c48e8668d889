//! Language-model coding of text chunks (format-spec section 7).
//!
//! A byte-level GRU (`model.rs`, int8 weights) predicts each byte; a range
//! coder (`rangecoder.rs`) codes it with the predicted frequencies. The
//! probabilities are bit-identical on every CPU, kernel path, thread count
//! and batch size: integer sums are exact and every float operation is done
//! per element in the order fixed by the spec (format-spec.md, section 7).
//!
//! [`LmCodec`] runs many chunks side by side: `batch` slots are in flight, each
//! step advances every live slot by one symbol in one batched model step, and
//! a slot whose chunk is finished takes the next chunk at once.
//!
//! ```ignore
//! let model = Arc::new(Model::from_file("model.safetensors")?);   // validates, packs
//! let codec = LmCodec::new(model, KernelPath::detect()?, threads, 256)?; // make once, reuse
//! let payloads = codec.encode_chunks(&[&chunk_a, &chunk_b]);        // <= 16 KiB each
//! let chunks = codec.decode_chunks(&[(&payloads[0], chunk_a.len()), (&payloads[1], chunk_b.len())]);
//! ```
//!
//! `LmCodec::new` with `threads > 1` starts its own thread pool, so create one
//! codec and reuse it. Results never depend on `threads`, `batch`, the kernel
//! path or on how chunks are grouped into calls.

mod cpu;
pub mod math;
pub mod model;
pub mod rangecoder;

use cpu::{engine, handoff, pair};
pub use cpu::kernels;

pub use kernels::KernelPath;
pub use model::{Model, ModelHash};

use rangecoder::{RangeDecoder, RangeEncoder, TOTAL};
use std::sync::Arc;

/// Largest chunk an encoder cuts for the language model (format-spec 7.6).
pub const MAX_LM_CHUNK: usize = 16 * 1024;

/// Most slots one thread advances through the whole model at a time (a
/// thread with more live slots does several sub-steps). Speed only.
const SUB_BATCH: usize = 64;

/// Errors of the language-model module.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// The model file is not a valid `gru-v1` model (the message names the
    /// key or tensor at fault).
    #[error("invalid model file: {0}")]
    Model(String),
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// `LZA_KERNEL` (or a requested path name) is not a known kernel path.
    #[error("unknown kernel path {0:?} (LZA_KERNEL must be portable, avx2 or avx512)")]
    BadKernelName(String),
    /// The requested kernel path needs instructions this CPU lacks.
    #[error("kernel path {0} is not available on this CPU")]
    KernelUnavailable(&'static str),
    /// The worker threads could not be started.
    #[error("cannot start {threads} language-model threads: {msg}")]
    ThreadPool {
        /// Threads requested.
        threads: usize,
        /// The reason.
        msg: String,
    },
    /// Zero threads or zero slots were requested.
    #[error("invalid language-model settings: {0}")]
    Settings(String),
    /// A payload's first byte is not 0.
    #[error("corrupt language-model payload: first byte is {0:#04x}, must be 0")]
    PayloadFirstByte(u8),
    /// The payload ended before all `raw_len` symbols were decoded.
    #[error(
        "corrupt language-model payload: it ends after {decoded} symbols, before the chunk is complete"
    )]
    PayloadTruncated {
        /// Symbols decoded before the end.
        decoded: usize,
    },
    /// A decoded cumulative frequency is not below `TOTAL`.
    #[error("corrupt language-model payload: symbol {symbol} decodes outside the frequency table")]
    PayloadCorrupt {
        /// Index of the symbol in the chunk.
        symbol: usize,
    },
    /// Bytes remain after the last symbol.
    #[error("corrupt language-model payload: {extra} bytes left after the last symbol")]
    PayloadTrailing {
        /// How many.
        extra: usize,
    },
    /// A context-mixing payload that uses the model is corrupt.
    #[error(transparent)]
    Cm(#[from] crate::cm::CmError),
    /// A fault inside lza (a thread that stopped or panicked, a broken
    /// invariant): the payload was not found corrupt.
    #[error("{0}")]
    Internal(String),
}

impl LmError {
    /// Whether this is a fault inside lza rather than a property of the
    /// payload or the model file.
    pub fn is_internal(&self) -> bool {
        matches!(self, LmError::Internal(_) | LmError::ThreadPool { .. })
    }
}

/// Memory the context-mixing chunks of one call may hold at a time: as
/// many chunks are coded side by side as their predictors fit in this
/// (at least one). 1 MiB chunks take about 24 MiB each.
pub const CM_MEMORY: usize = 200 << 20;

/// Chunks of at most this length are what a group of context-mixing
/// chunks is sized for (the encoder's default piece).
pub const CM_SLOTS: usize = 8;

/// Slots for context-mixing chunks of at most `max_len` bytes.
fn cm_slots(batch: usize, preset: crate::cm::Preset, max_len: usize) -> usize {
    let per = crate::cm::Predictor::memory(preset, max_len, true);
    batch.min(CM_MEMORY / per).max(1)
}

/// Batches the model runs in when it codes a lone context-mixing chunk,
/// so that the coder can start on the first while it runs the rest
/// (`LmCodec::encode_cm_pipelined`).
const PIPELINE_GROUPS: usize = 4;

/// The model's chains of a context-mixing chunk: the chunk, or its two
/// streams (format-spec 8.4).
fn streams(c: &[u8], two: bool) -> [&[u8]; 2] {
    match two {
        true => c.split_at(c.len().div_ceil(2)).into(),
        false => [c, &[]],
    }
}

/// A coding call in progress ([`LmCodec::enter`]); `alone` if no other was.
struct Active<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    alone: bool,
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Encoder and decoder of language-model chunks for one model.
pub struct LmCodec {
    model: Arc<Model>,
    path: KernelPath,
    threads: usize,
    batch: usize,
    /// The threads of `-T` (none for one thread): the archive layer runs its
    /// own jobs on the same pool ([`LmCodec::pool`]), so that `-T N` means N
    /// threads in all.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Context-mixing calls in progress: a lone chunk is split over two
    /// threads (decoding: `pair`; encoding: the coder on a thread of its
    /// own) only when its call is the only one: other calls keep the pool
    /// busy, and the second thread would be one beyond `-T`.
    active: std::sync::atomic::AtomicUsize,
    /// The head's weights split for two-thread decoding of one chunk, made
    /// when first needed.
    pair: std::sync::OnceLock<pair::PairWeights>,
    /// Test delays and faults in two-thread decoding, from
    /// [`TEST_CHAOS_VAR`].
    chaos: Option<handoff::ChaosSpec>,
}

/// Environment variable for tests and stress runs only: `SEED` delays the
/// two threads that decode a lone chunk at pseudo-random points of their
/// exchange (as a loaded machine does; the bytes must not change), and
/// `SEED:N` also makes the model's helper thread panic at its N-th point
/// (the run must end with an internal error). Unset in normal use.
pub const TEST_CHAOS_VAR: &str = "LZA_TEST_CHAOS";

fn chaos_from_env() -> Result<Option<handoff::ChaosSpec>, LmError> {
    let Ok(v) = std::env::var(TEST_CHAOS_VAR) else {
        return Ok(None);
    };
    let bad = || LmError::Settings(format!("{TEST_CHAOS_VAR}={v:?}: expected SEED or SEED:N"));
    let (seed, at) = match v.split_once(':') {
        Some((s, n)) => (s, Some(n.parse().map_err(|_| bad())?)),
        None => (v.as_str(), None),
    };
    Ok(Some(handoff::ChaosSpec {
        seed: seed.parse().map_err(|_| bad())?,
        helper_panics_at: at,
    }))
}

impl std::fmt::Debug for LmCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmCodec")
            .field("model", &self.model.hash())
            .field("path", &self.path)
            .field("threads", &self.threads)
            .field("batch", &self.batch)
            .finish()
    }
}

/// What a slot is doing.
enum Job<'a> {
    Encode {
        data: &'a [u8],
        pos: usize,
        enc: RangeEncoder,
    },
    Decode {
        dec: RangeDecoder<'a>,
        out: Vec<u8>,
        raw_len: usize,
    },
    Bits {
        data: &'a [u8],
        pos: usize,
        bits: f64,
    },
    CmEncode {
        data: &'a [u8],
        pos: usize,
        pred: Box<crate::cm::Predictor>,
        enc: crate::cm::coder::Encoder,
        head: u8,
    },
    CmDecode {
        dec: crate::cm::coder::Decoder<'a>,
        pred: Box<crate::cm::Predictor>,
        raw_len: usize,
    },
    /// The model's bit probabilities of each byte (for the encoder).
    Probs {
        data: &'a [u8],
        pos: usize,
        out: Vec<[u16; 8]>,
    },
}

enum Done {
    Probs(Vec<[u16; 8]>),
    Encoded(Vec<u8>),
    Decoded(Result<Vec<u8>, LmError>),
    Bits(f64),
}

impl Done {
    /// The payload of an encoding job.
    fn encoded(self) -> Vec<u8> {
        match self {
            Done::Encoded(v) => v,
            _ => unreachable!("not an encoding job"),
        }
    }
}

/// Results in input order: the chunks that failed before taking a slot
/// (`Some` in `early`) and, in order, the decoding results of the others.
fn merge_decoded(early: Vec<Option<LmError>>, results: Vec<Done>) -> Vec<Result<Vec<u8>, LmError>> {
    let mut results = results.into_iter();
    early
        .into_iter()
        .map(|e| match e {
            Some(e) => Err(e),
            None => match results.next() {
                Some(Done::Decoded(r)) => r,
                _ => unreachable!("one decoding result per live chunk"),
            },
        })
        .collect()
}

struct Slot<'a> {
    index: usize,
    input: u16,
    job: Job<'a>,
    done: Option<Done>,
    /// The model state is to be reset before the next step (context-mixing
    /// chunks reset it every [`crate::cm::LM_RESET`] bytes).
    reset: bool,
}

impl<'a> Job<'a> {
    /// The result if the job has no symbol at all.
    fn finished_empty(self) -> Result<Done, Job<'a>> {
        match self {
            Job::Encode { data: [], enc, .. } => Ok(Done::Encoded(enc.finish())),
            Job::Decode {
                dec,
                out,
                raw_len: 0,
            } => Ok(Done::Decoded(dec.finish().map(|_| out))),
            Job::Bits { data: [], .. } => Ok(Done::Bits(0.0)),
            Job::Probs { data: [], out, .. } => Ok(Done::Probs(out)),
            Job::CmEncode {
                data: [],
                enc,
                head,
                ..
            } => {
                let mut out = vec![head];
                out.extend_from_slice(&enc.finish());
                Ok(Done::Encoded(out))
            }
            Job::CmDecode {
                dec, raw_len: 0, ..
            } => Ok(Done::Decoded(
                crate::cm::finish(&dec)
                    .map(|_| Vec::new())
                    .map_err(LmError::from),
            )),
            j => Err(j),
        }
    }
}

impl Slot<'_> {
    /// Codes this slot's next symbol with `f`; sets `done` when the job ends.
    fn advance(&mut self, f: &[u32; 256]) {
        match &mut self.job {
            Job::Encode { data, pos, enc } => {
                let x = data[*pos];
                enc.encode_symbol(f, x);
                *pos += 1;
                self.input = x as u16;
                if *pos == data.len() {
                    let enc = std::mem::take(enc);
                    self.done = Some(Done::Encoded(enc.finish()));
                }
            }
            Job::Decode { dec, out, raw_len } => match dec.decode_symbol(f) {
                Ok(x) => {
                    out.push(x);
                    self.input = x as u16;
                    if out.len() == *raw_len {
                        let r = dec.finish().map(|_| std::mem::take(out));
                        self.done = Some(Done::Decoded(r));
                    }
                }
                Err(e) => self.done = Some(Done::Decoded(Err(e))),
            },
            Job::Bits { data, pos, bits } => {
                let x = data[*pos];
                *bits += (TOTAL as f64 / f[x as usize] as f64).log2();
                *pos += 1;
                self.input = x as u16;
                if *pos == data.len() {
                    self.done = Some(Done::Bits(*bits));
                }
            }
            Job::CmEncode {
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
                self.input = x as u16;
                if *pos == data.len() {
                    let enc = std::mem::replace(enc, crate::cm::coder::Encoder::with_capacity(0));
                    let mut out = vec![*head];
                    out.extend_from_slice(&enc.finish());
                    self.done = Some(Done::Encoded(out));
                } else if *pos % crate::cm::LM_RESET == 0 {
                    self.reset = true;
                }
            }
            Job::Probs { data, pos, out } => {
                let x = data[*pos];
                out.push(crate::cm::lm_byte_bits(f, x));
                *pos += 1;
                self.input = x as u16;
                if *pos == data.len() {
                    self.done = Some(Done::Probs(std::mem::take(out)));
                }
            }
            Job::CmDecode { dec, pred, raw_len } => {
                pred.set_lm(f);
                let x = pred.decode_byte(dec);
                self.input = x as u16;
                let n = pred.coded();
                if dec.overrun() {
                    self.done = Some(Done::Decoded(Err(crate::cm::CmError::Truncated.into())));
                } else if n == *raw_len {
                    let r = crate::cm::finish(dec)
                        .map(|_| pred.take_history())
                        .map_err(LmError::from);
                    self.done = Some(Done::Decoded(r));
                } else if n % crate::cm::LM_RESET == 0 {
                    self.reset = true;
                }
            }
        }
    }
}

impl LmCodec {
    /// A codec running `model` on kernel `path` with `threads` worker threads
    /// (1 = on the calling thread) and `batch` slots in flight.
    pub fn new(
        model: Arc<Model>,
        path: KernelPath,
        threads: usize,
        batch: usize,
    ) -> Result<LmCodec, LmError> {
        if threads == 0 || batch == 0 {
            return Err(LmError::Settings(format!(
                "threads ({threads}) and batch ({batch}) must be at least 1"
            )));
        }
        if !path.is_available() {
            return Err(LmError::KernelUnavailable(path.name()));
        }
        let pool = if threads > 1 {
            Some(Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("lza-worker-{i}"))
                    .build()
                    .map_err(|e| LmError::ThreadPool {
                        threads,
                        msg: e.to_string(),
                    })?,
            ))
        } else {
            None
        };
        Ok(LmCodec {
            model,
            path,
            threads,
            batch,
            pool,
            active: std::sync::atomic::AtomicUsize::new(0),
            pair: std::sync::OnceLock::new(),
            chaos: chaos_from_env()?,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The kernel path in use.
    pub fn kernel_path(&self) -> KernelPath {
        self.path
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Counts a coding call in progress until the guard drops.
    fn enter(&self) -> Active<'_> {
        let before = self
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Active {
            count: &self.active,
            alone: before == 0,
        }
    }

    /// The thread pool the codec runs on (`None` with one thread), for the
    /// caller's other work to share.
    pub fn pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        self.pool.clone()
    }

    /// Slots in flight.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Codes each chunk (any length, 0 included) into a range-coder payload,
    /// in input order. The bytes depend only on the model and the chunk.
    pub fn encode_chunks(&self, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let jobs = chunks.iter().map(|&data| Job::Encode {
            data,
            pos: 0,
            enc: RangeEncoder::with_capacity(data.len() / 3 + 16),
        });
        self.run(jobs, chunks.len(), self.batch)
            .into_iter()
            .map(Done::encoded)
            .collect()
    }

    /// Codes each chunk with the context-mixing `preset` mixed with this
    /// model (format-spec 8), in input order. Chunks are at most
    /// [`crate::cm::MAX_CM_LM_CHUNK`] bytes.
    ///
    /// The encoder knows every byte, so the model runs first, batched over
    /// the chunks' 16 KiB stretches (its state is reset at each, so they are
    /// independent), and leaves 8 bit probabilities per byte; the chunks are
    /// then coded side by side on the threads. The payloads are those a
    /// byte-by-byte run would give (`decode_cm_chunks` is that run).
    pub fn encode_cm_chunks(&self, chunks: &[&[u8]], preset: crate::cm::Preset) -> Vec<Vec<u8>> {
        use rayon::prelude::*;
        let two = preset.two_streams;
        // a lone chunk of 16 stretches or more (on html, 102 KB, the model
        // in batches of 2 stretches was slower than the overlap gained)
        let _active = self.enter();
        if let ([data], Some(_)) = (chunks, &self.pool)
            && data.len() >= 16 * crate::cm::LM_RESET
            && _active.alone
        {
            return vec![self.encode_cm_pipelined(data, preset)];
        }
        let stretches: Vec<&[u8]> = chunks
            .iter()
            .flat_map(|&c| streams(c, two))
            .flat_map(|s| s.chunks(crate::cm::LM_RESET))
            .collect();
        let jobs = stretches.iter().map(|&data| Job::Probs {
            data,
            pos: 0,
            out: Vec::with_capacity(data.len()),
        });
        let mut probs = self
            .run(jobs, stretches.len(), self.batch)
            .into_iter()
            .map(|d| match d {
                Done::Probs(p) => p,
                _ => unreachable!(),
            });
        // each chunk's streams' bit probabilities, byte by byte
        let per_chunk: Vec<[Vec<[u16; 8]>; 2]> = chunks
            .iter()
            .map(|&c| {
                streams(c, two).map(|s| {
                    probs
                        .by_ref()
                        .take(s.len().div_ceil(crate::cm::LM_RESET))
                        .flatten()
                        .collect()
                })
            })
            .collect();
        let code = |(data, probs): (&&[u8], &[Vec<[u16; 8]>; 2])| -> Vec<u8> {
            assert!(data.len() <= crate::cm::MAX_CM_LM_CHUNK);
            let mut pred = crate::cm::Predictor::new(preset, data.len(), true);
            let mut enc = crate::cm::coder::Encoder::with_capacity(data.len() / 3 + 16);
            let s = streams(data, two);
            for _ in 0..data.len() {
                let (k, i) = pred.next_in_stream();
                pred.set_lm_bits(&probs[k][i]);
                pred.encode_byte(&mut enc, s[k][i]);
            }
            let mut out = vec![preset.id | crate::cm::FLAG_LM];
            out.extend_from_slice(&enc.finish());
            out
        };
        match &self.pool {
            Some(pool) => pool.install(|| chunks.par_iter().zip(&per_chunk).map(code).collect()),
            None => chunks.iter().zip(&per_chunk).map(code).collect(),
        }
    }

    /// [`LmCodec::encode_cm_chunks`] for one chunk on a pool, with the
    /// coder overlapping the model: the model runs over the stretches in
    /// [`PIPELINE_GROUPS`] batches in the order the coder needs them (with
    /// two streams, a stretch of each in turn), and the coder (on a thread
    /// of its own) starts on the first as soon as it is done. A lone chunk
    /// has one coder, so without this the coder's whole run would follow
    /// the model's. The same payload.
    fn encode_cm_pipelined(&self, data: &[u8], preset: crate::cm::Preset) -> Vec<u8> {
        assert!(data.len() <= crate::cm::MAX_CM_LM_CHUNK);
        let s = streams(data, preset.two_streams);
        let st: [Vec<&[u8]>; 2] = s.map(|s| s.chunks(crate::cm::LM_RESET).collect());
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
                let mut pred = crate::cm::Predictor::new(preset, data.len(), true);
                let mut enc = crate::cm::coder::Encoder::with_capacity(data.len() / 3 + 16);
                for _ in 0..data.len() {
                    let (k, i) = pred.next_in_stream();
                    let (t, p) = (i / crate::cm::LM_RESET, i % crate::cm::LM_RESET);
                    while probs[k][t].is_empty() {
                        let group = rx.recv().expect("the model's results");
                        for ((k, t), v) in group {
                            probs[k][t] = v;
                        }
                    }
                    pred.set_lm_bits(&probs[k][t][p]);
                    pred.encode_byte(&mut enc, s[k][i]);
                }
                let mut out = vec![preset.id | crate::cm::FLAG_LM];
                out.extend_from_slice(&enc.finish());
                out
            });
            for group in order.chunks(per) {
                let jobs = group.iter().map(|&(k, t)| Job::Probs {
                    data: st[k][t],
                    pos: 0,
                    out: Vec::with_capacity(st[k][t].len()),
                });
                let done = self.run_local(jobs, group.len(), self.batch);
                let results = group.iter().zip(done).map(|(&kt, d)| match d {
                    Done::Probs(p) => (kt, p),
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

    /// [`LmCodec::encode_cm_chunks`] done byte by byte, the model and the
    /// coder in step as the decoder runs them: the same payloads, more
    /// slowly. For tests.
    #[doc(hidden)]
    pub fn encode_cm_chunks_stepwise(
        &self,
        chunks: &[&[u8]],
        preset: crate::cm::Preset,
    ) -> Vec<Vec<u8>> {
        let jobs = chunks.iter().map(|&data| Job::CmEncode {
            data,
            pos: 0,
            pred: Box::new(crate::cm::Predictor::new(preset, data.len(), true)),
            enc: crate::cm::coder::Encoder::with_capacity(data.len() / 3 + 16),
            head: preset.id | crate::cm::FLAG_LM,
        });
        let max_len = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        self.run_split(jobs, chunks.len(), cm_slots(self.batch, preset, max_len))
            .into_iter()
            .map(Done::encoded)
            .collect()
    }

    /// Decodes context-mixing `(payload, raw_len)` pairs whose payloads use
    /// the model, in input order; as [`LmCodec::decode_chunks`].
    pub fn decode_cm_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, LmError>> {
        let headers: Vec<Result<crate::cm::Header, LmError>> = chunks
            .iter()
            .map(
                |&(payload, raw_len)| match crate::cm::parse_header(payload, raw_len) {
                    Ok(h) if h.lm => Ok(h),
                    Ok(_) => Err(crate::cm::CmError::BadPreset(payload[0]).into()),
                    Err(e) => Err(e.into()),
                },
            )
            .collect();
        let active = self.enter();
        let alone_in_codec = active.alone;
        let live: Vec<(usize, crate::cm::Preset)> = headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().ok().map(|h| (i, h.preset)))
            .collect();
        // Chunks of two streams run two model chains each: they are decoded
        // one per thread, and the odd one out on two (`pair`).
        let (two, one): (Vec<_>, Vec<_>) = live.into_iter().partition(|(_, p)| p.two_streams);
        let mut out: Vec<Option<Result<Vec<u8>, LmError>>> =
            (0..chunks.len()).map(|_| None).collect();
        let pw = || {
            self.pair
                .get_or_init(|| pair::PairWeights::new(&self.model))
        };
        let paired = |(i, preset): (usize, crate::cm::Preset)| {
            let (payload, raw_len) = chunks[i];
            let r = pair::decode_cm(
                &self.model,
                pw(),
                self.path,
                payload,
                raw_len,
                preset,
                usize::MAX,
                pair::SOLO_RUN,
                self.chaos,
            );
            (i, r)
        };
        if !two.is_empty() {
            use rayon::prelude::*;
            let lone = self.threads > 1 && two.len() % self.threads == 1 && alone_in_codec;
            let rest = &two[..two.len() - lone as usize];
            let alone = |&(i, preset): &(usize, crate::cm::Preset)| {
                let (payload, raw_len) = chunks[i];
                (
                    i,
                    pair::decode_cm_alone(&self.model, self.path, payload, raw_len, preset),
                )
            };
            // as many side by side as the decoders' budget allows now (a
            // lease is taken here, on the calling thread, never on the pool)
            let per = rest
                .iter()
                .map(|&(i, preset)| crate::cm::Predictor::memory(preset, chunks[i].1, true))
                .max()
                .unwrap_or(1);
            let wide = self.threads.max(1).min(rest.len()).max(1);
            for wave in rest.chunks(wide) {
                let (_lease, k) = crate::cm::budget::DECODE.lease_up_to(wave.len(), per);
                for part in wave.chunks(k) {
                    let done: Vec<_> = match &self.pool {
                        Some(pool) => {
                            pool.install(|| part.par_iter().with_max_len(1).map(alone).collect())
                        }
                        None => part.iter().map(alone).collect(),
                    };
                    for (i, r) in done {
                        out[i] = Some(r);
                    }
                }
            }
            if lone {
                let (i, preset) = *two.last().expect("lone chunk");
                let _lease = crate::cm::budget::DECODE.lease(crate::cm::Predictor::memory(
                    preset,
                    chunks[i].1,
                    true,
                ));
                let (i, r) = paired((i, preset));
                out[i] = Some(r);
            }
        }
        // With chunks left over once every thread has one (an odd number on
        // two threads), the last of them is decoded on two threads (the
        // model on one, the coder on the other: `pair`), after the others.
        let lone = match self.threads > 1 && one.len() % self.threads == 1 && alone_in_codec {
            true => one.last().copied(),
            false => None,
        };
        let shared = &one[..one.len() - lone.is_some() as usize];
        // Predictors are built lazily as slots free up: the iterator is
        // consumed only when a slot takes its job.
        let jobs = shared.iter().map(|&(i, preset)| {
            let (payload, raw_len) = chunks[i];
            Job::CmDecode {
                dec: crate::cm::coder::Decoder::new(&payload[1..]), // LM payloads: 1-byte header
                pred: Box::new(crate::cm::Predictor::new(preset, raw_len, true)),
                raw_len,
            }
        });
        let per = shared
            .iter()
            .map(|&(i, preset)| crate::cm::Predictor::memory(preset, chunks[i].1, true))
            .max()
            .unwrap_or(1);
        let slots = self
            .batch
            .min(CM_MEMORY / per)
            .max(1)
            .min(shared.len().max(1));
        let (lease, slots) = crate::cm::budget::DECODE.lease_up_to(slots, per);
        let results = self.run_split(jobs, shared.len(), slots);
        drop(lease);
        for (&(i, _), r) in shared.iter().zip(results) {
            match r {
                Done::Decoded(r) => out[i] = Some(r),
                _ => unreachable!("one decoding result per live chunk"),
            }
        }
        if let Some((i, preset)) = lone {
            let _lease = crate::cm::budget::DECODE.lease(crate::cm::Predictor::memory(
                preset,
                chunks[i].1,
                true,
            ));
            let (i, r) = paired((i, preset));
            out[i] = Some(r);
        }
        let x86: Vec<bool> = headers
            .iter()
            .map(|h| h.as_ref().is_ok_and(|h| h.x86))
            .collect();
        let mut out: Vec<Result<Vec<u8>, LmError>> = headers
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
                crate::cm::x86_filter(data, true);
            }
        }
        out
    }

    /// Decodes `(payload, raw_len)` pairs, in input order. A bad payload fails
    /// only its own chunk; no chunk yields more than `raw_len` bytes, and a
    /// success has consumed the whole payload.
    pub fn decode_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, LmError>> {
        let mut early: Vec<Option<LmError>> = Vec::with_capacity(chunks.len());
        let mut decs: Vec<Option<RangeDecoder<'_>>> = Vec::with_capacity(chunks.len());
        for &(payload, _) in chunks {
            match RangeDecoder::new(payload) {
                Ok(d) => {
                    decs.push(Some(d));
                    early.push(None);
                }
                Err(e) => {
                    decs.push(None);
                    early.push(Some(e));
                }
            }
        }
        // chunks whose payload fails at once take no slot
        let live: Vec<usize> = (0..chunks.len()).filter(|&i| decs[i].is_some()).collect();
        let jobs = live.iter().map(|&i| Job::Decode {
            dec: decs[i].take().unwrap(),
            out: Vec::with_capacity(chunks[i].1.min(1 << 20)),
            raw_len: chunks[i].1,
        });
        merge_decoded(early, self.run(jobs, live.len(), self.batch))
    }

    /// Ideal code length in bits (`sum -log2(f[x] / TOTAL)`, without range
    /// coder overhead) of `data` cut into [`MAX_LM_CHUNK`]-byte chunks.
    pub fn cross_entropy_bits(&self, data: &[u8]) -> f64 {
        let chunks: Vec<&[u8]> = data.chunks(MAX_LM_CHUNK).collect();
        let jobs = chunks.iter().map(|&data| Job::Bits {
            data,
            pos: 0,
            bits: 0.0,
        });
        self.run(jobs, chunks.len(), self.batch)
            .into_iter()
            .map(|d| match d {
                Done::Bits(b) => b,
                _ => unreachable!(),
            })
            .sum()
    }

    /// Bits per byte of `data` (see [`LmCodec::cross_entropy_bits`]); 0 for empty data.
    pub fn bits_per_byte(&self, data: &[u8]) -> f64 {
        if data.is_empty() {
            0.0
        } else {
            self.cross_entropy_bits(data) / data.len() as f64
        }
    }

    /// The scheduler: runs `n` jobs with up to `batch` slots in flight and
    /// returns their results in job order.
    fn run<'a>(
        &self,
        jobs: impl Iterator<Item = Job<'a>> + Send,
        n: usize,
        batch: usize,
    ) -> Vec<Done> {
        let Some(pool) = &self.pool else {
            return self.run_local(jobs, n, batch);
        };
        let mut results: Vec<Option<Done>> = (0..n).map(|_| None).collect();
        let mut jobs = jobs.enumerate();
        let cap = batch.min(n.max(1));
        // the scheduler itself runs on a pool thread, so that each step
        // hands work to the other threads without a round trip through the
        // calling thread
        pool.install(|| {
            self.run_inner(
                &mut || jobs.next(),
                &mut |i, d| results[i] = Some(d),
                cap,
                false,
            )
        });
        results
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// [`LmCodec::run`] on the calling thread alone, whatever the pool: for
    /// the model next to a coder thread (a batched step split over the
    /// pool's threads waits for its slowest part, and with the coder and
    /// other work running there are more busy threads than processors).
    fn run_local<'a>(
        &self,
        jobs: impl Iterator<Item = Job<'a>>,
        n: usize,
        batch: usize,
    ) -> Vec<Done> {
        let mut results: Vec<Option<Done>> = (0..n).map(|_| None).collect();
        let mut jobs = jobs.enumerate();
        let cap = batch.min(n.max(1));
        self.run_inner(
            &mut || jobs.next(),
            &mut |i, d| results[i] = Some(d),
            cap,
            true,
        );
        results
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// Like [`LmCodec::run`], but each thread runs its own scheduler over
    /// its share of the slots, taking jobs from a common queue: no
    /// synchronisation per step. For context-mixing jobs, whose coding step
    /// is as costly as the model step and whose slots are few.
    fn run_split<'a>(
        &self,
        jobs: impl Iterator<Item = Job<'a>> + Send,
        n: usize,
        batch: usize,
    ) -> Vec<Done> {
        let cap = batch.min(n.max(1));
        let pool = match &self.pool {
            Some(pool) if cap > 1 => pool,
            _ => return self.run(jobs, n, batch),
        };
        let workers = self.threads.min(cap);
        let per = cap.div_ceil(workers);
        let queue = std::sync::Mutex::new(jobs.enumerate());
        let results: std::sync::Mutex<Vec<Option<Done>>> =
            std::sync::Mutex::new((0..n).map(|_| None).collect());
        pool.scope(|sc| {
            for _ in 0..workers {
                sc.spawn(|_| {
                    self.run_inner(
                        &mut || queue.lock().expect("job queue").next(),
                        &mut |i, d| results.lock().expect("results")[i] = Some(d),
                        per,
                        true,
                    )
                });
            }
        });
        results
            .into_inner()
            .expect("results")
            .into_iter()
            .map(|r| r.expect("every job finishes"))
            .collect()
    }

    /// Runs jobs from `next` with up to `cap` slots, handing each result to
    /// `put`; `local` keeps every step on the calling thread.
    fn run_inner<'a>(
        &self,
        next: &mut dyn FnMut() -> Option<(usize, Job<'a>)>,
        put: &mut dyn FnMut(usize, Done),
        cap: usize,
        local: bool,
    ) {
        let model = &*self.model;
        let ld = model.layers() * model.dim();
        let mut slots: Vec<Slot<'a>> = Vec::with_capacity(cap);
        let mut h = vec![0.0f32; cap * ld];
        let mut q = vec![0i8; cap * ld];
        let nthreads = if local { 1 } else { self.threads.min(cap) };
        let per = cap.div_ceil(nthreads).min(SUB_BATCH);
        let mut scratch: Vec<engine::Scratch> = (0..nthreads)
            .map(|_| engine::Scratch::new(model, per))
            .collect();

        // next job that has at least one symbol; empty ones finish here
        let mut next_job = |put: &mut dyn FnMut(usize, Done)| -> Option<(usize, Job<'a>)> {
            while let Some((i, job)) = next() {
                match job.finished_empty() {
                    Ok(done) => put(i, done),
                    Err(job) => return Some((i, job)),
                }
            }
            None
        };

        while slots.len() < cap {
            let Some((index, job)) = next_job(put) else {
                break;
            };
            slots.push(Slot {
                index,
                input: 256,
                job,
                done: None,
                reset: false,
            });
        }
        while !slots.is_empty() {
            let live = slots.len();
            self.step_all(
                &mut slots,
                &mut h[..live * ld],
                &mut q[..live * ld],
                &mut scratch,
            );
            // retire finished slots; refill or compact
            let mut i = 0;
            while i < slots.len() {
                if let Some(done) = slots[i].done.take() {
                    put(slots[i].index, done);
                    h[i * ld..(i + 1) * ld].fill(0.0);
                    q[i * ld..(i + 1) * ld].fill(0);
                    if let Some((index, job)) = next_job(put) {
                        slots[i] = Slot {
                            index,
                            input: 256,
                            job,
                            done: None,
                            reset: false,
                        };
                        i += 1;
                    } else {
                        let last = slots.len() - 1;
                        if i != last {
                            h.copy_within(last * ld..(last + 1) * ld, i * ld);
                            q.copy_within(last * ld..(last + 1) * ld, i * ld);
                        }
                        slots.swap_remove(i);
                    }
                } else {
                    if slots[i].reset {
                        // a fresh model state, as at the start of a chunk
                        slots[i].reset = false;
                        slots[i].input = 256;
                        h[i * ld..(i + 1) * ld].fill(0.0);
                        q[i * ld..(i + 1) * ld].fill(0);
                    }
                    i += 1;
                }
            }
        }
    }

    /// One model step for every live slot, split over the threads in fixed
    /// contiguous slices, followed by each slot's coding step.
    fn step_all(
        &self,
        slots: &mut [Slot<'_>],
        h: &mut [f32],
        q: &mut [i8],
        scratch: &mut [engine::Scratch],
    ) {
        let model = &*self.model;
        let path = self.path;
        let ld = model.layers() * model.dim();
        let live = slots.len();
        let work =
            |slots: &mut [Slot<'_>], h: &mut [f32], q: &mut [i8], s: &mut engine::Scratch| {
                let mut inputs = [0u16; SUB_BATCH];
                // sub-batches bounded by the scratch capacity and the input buffer
                let mut start = 0;
                while start < slots.len() {
                    let nb = (slots.len() - start).min(s.capacity()).min(inputs.len());
                    for (k, slot) in slots[start..start + nb].iter().enumerate() {
                        inputs[k] = slot.input;
                    }
                    engine::step(
                        model,
                        path,
                        &inputs[..nb],
                        &mut h[start * ld..],
                        &mut q[start * ld..],
                        s,
                    );
                    for (k, slot) in slots[start..start + nb].iter_mut().enumerate() {
                        slot.advance(&s.freqs[k]);
                    }
                    start += nb;
                }
            };
        match &self.pool {
            Some(pool) if live > 1 && scratch.len() > 1 => {
                let parts = scratch.len().min(live);
                pool.scope(|sc| {
                    let (mut slots, mut h, mut q) = (slots, h, q);
                    let mut rest_scratch = &mut scratch[..parts];
                    for t in 0..parts {
                        let n = (t + 1) * live / parts - t * live / parts;
                        let (s0, s1) = std::mem::take(&mut slots).split_at_mut(n);
                        let (h0, h1) = std::mem::take(&mut h).split_at_mut(n * ld);
                        let (q0, q1) = std::mem::take(&mut q).split_at_mut(n * ld);
                        let (sc0, sc1) =
                            std::mem::take(&mut rest_scratch).split_first_mut().unwrap();
                        (slots, h, q, rest_scratch) = (s1, h1, q1, sc1);
                        if t + 1 == parts {
                            work(s0, h0, q0, sc0);
                        } else {
                            sc.spawn(move |_| work(s0, h0, q0, sc0));
                        }
                    }
                });
            }
            _ => work(slots, h, q, &mut scratch[0]),
        }
    }
}

#[cfg(test)]
mod tests;
