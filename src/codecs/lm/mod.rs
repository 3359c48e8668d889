//! The language model: a byte-level GRU (format-spec section 7) as a
//! probability source, and the language-model codec that codes text chunks
//! with it and a range coder.
//!
//! - `model`: the model file (validation, identity; the architecture it
//!   names picks the parser);
//! - `backend`: [`StepBackend`], the model as a pure probability source
//!   over batches of chains, whose frequencies are bit-identical on every
//!   backend, CPU, kernel path, thread count and batch size; `cpu` is its
//!   implementation on the CPU (kernels, engine, the two-thread split),
//!   `cuda` the same step on an NVIDIA GPU, and `device` the choice
//!   between them (`--device`);
//! - `scheduler`: many chains side by side, generic over the job each runs;
//! - `rangecoder`, `math`: the range coder and the element-wise functions
//!   of the spec.
//!
//! [`LmCodec`] runs many chunks side by side: `batch` chains are in flight,
//! each step advances every live one by one symbol in one batched model
//! step, and a chain whose chunk is finished takes the next chunk at once.
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

mod backend;
mod cpu;
mod cuda;
mod device;
pub(crate) mod math;
pub(crate) mod model;
pub(crate) mod rangecoder;
pub(crate) mod scheduler;

pub use backend::StepBackend;
pub(crate) use cpu::kernels;
pub(crate) use cpu::pair::{Always, ChainCoder, Helpers};
pub use cpu::{CpuBackend, CpuChains, CpuPart};
use cpu::{handoff, pair};
pub use cuda::{CudaBackend, CudaError, compile as compile_cuda_kernels};
pub use device::{Backend, Device};
use scheduler::{Advance, ChainJob, Scheduler};

pub use kernels::KernelPath;
pub use model::{Architecture, Model, ModelHash};

use rangecoder::{RangeDecoder, RangeEncoder, TOTAL};
use std::sync::Arc;

/// Bytes the model reads from its zero state in training, the length it
/// predicts best at: the encoder's language-model chunks (format-spec 7.6)
/// are this long, and [`LmCodec::cross_entropy_bits`] measures in such
/// pieces. (The reset interval of context mixing with the model is the
/// format's own constant, `crate::format::LM_RESET`, equal to it.)
pub const TRAINED_CONTEXT: usize = 16 * 1024;

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
    /// The device asked for (`--device cuda`) cannot run the model.
    #[error("{0}")]
    Device(String),
    /// `LZA_KERNEL` (or a requested path name) is not a known kernel path.
    #[error("unknown kernel path {0:?} (LZA_KERNEL must be one of {names})", names = KernelPath::names())]
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

/// A coding call in progress ([`LmCodec::enter`]).
pub(crate) struct Active<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    alone: bool,
}

impl Active<'_> {
    /// No other call was in progress when this one began.
    pub(crate) fn alone(&self) -> bool {
        self.alone
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.count
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Encoder and decoder of language-model chunks for one model, and the
/// scheduler that context-mixing chunks with the model (`crate::codecs::cmlm`)
/// run on.
pub struct LmCodec {
    /// The model on its device (the CPU or a GPU), its threads: the
    /// threads of `-T` (no pool for one thread). The archive layer runs its own jobs on the same pool
    /// ([`LmCodec::pool`]), so that `-T N` means N threads in all.
    sched: Scheduler<Backend>,
    batch: usize,
    /// Context-mixing calls in progress: a lone chunk is split over two
    /// threads (decoding: `pair`; encoding: the coder on a thread of its
    /// own) only when its call is the only one: other calls keep the pool
    /// busy, and the second thread would be one beyond `-T`.
    active: std::sync::atomic::AtomicUsize,
    /// The head's weights split for two-thread decoding of one chain, made
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
            .field("model", &self.model().hash())
            .field("device", &self.sched.backend.describe())
            .field("threads", &self.sched.threads)
            .field("batch", &self.batch)
            .finish()
    }
}

/// A language-model chunk's work (format-spec 7): code it, decode it, or
/// measure its code length.
enum LmJob<'a> {
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
}

enum LmDone {
    Encoded(Vec<u8>),
    Decoded(Result<Vec<u8>, LmError>),
    Bits(f64),
}

impl ChainJob for LmJob<'_> {
    type Output = LmDone;

    fn finish_empty(self) -> Result<LmDone, Self> {
        match self {
            LmJob::Encode { data: [], enc, .. } => Ok(LmDone::Encoded(enc.finish())),
            LmJob::Decode {
                dec,
                out,
                raw_len: 0,
            } => Ok(LmDone::Decoded(dec.finish().map(|_| out))),
            LmJob::Bits { data: [], .. } => Ok(LmDone::Bits(0.0)),
            j => Err(j),
        }
    }

    fn advance(&mut self, f: &[u32; 256]) -> Advance<LmDone> {
        match self {
            LmJob::Encode { data, pos, enc } => {
                let x = data[*pos];
                enc.encode_symbol(f, x);
                *pos += 1;
                if *pos == data.len() {
                    return Advance::Done(LmDone::Encoded(std::mem::take(enc).finish()));
                }
                Advance::Symbol(x)
            }
            LmJob::Decode { dec, out, raw_len } => match dec.decode_symbol(f) {
                Ok(x) => {
                    out.push(x);
                    if out.len() == *raw_len {
                        let r = dec.finish().map(|_| std::mem::take(out));
                        return Advance::Done(LmDone::Decoded(r));
                    }
                    Advance::Symbol(x)
                }
                Err(e) => Advance::Done(LmDone::Decoded(Err(e))),
            },
            LmJob::Bits { data, pos, bits } => {
                let x = data[*pos];
                *bits += (TOTAL as f64 / f[x as usize] as f64).log2();
                *pos += 1;
                if *pos == data.len() {
                    return Advance::Done(LmDone::Bits(*bits));
                }
                Advance::Symbol(x)
            }
        }
    }
}

/// Results in input order: the chunks that failed before taking a lane
/// (`Some` in `early`) and, in order, the decoding results of the others.
fn merge_decoded(
    early: Vec<Option<LmError>>,
    results: Vec<LmDone>,
) -> Vec<Result<Vec<u8>, LmError>> {
    let mut results = results.into_iter();
    early
        .into_iter()
        .map(|e| match e {
            Some(e) => Err(e),
            None => match results.next() {
                Some(LmDone::Decoded(r)) => r,
                _ => unreachable!("one decoding result per live chunk"),
            },
        })
        .collect()
}

impl LmCodec {
    /// A codec running `model` on kernel `path` with `threads` worker threads
    /// (1 = on the calling thread) and `batch` chains in flight.
    pub fn new(
        model: Arc<Model>,
        path: KernelPath,
        threads: usize,
        batch: usize,
    ) -> Result<LmCodec, LmError> {
        LmCodec::on_device(model, path, Device::Cpu, threads, batch)
    }

    /// A codec as [`LmCodec::new`] makes it, with the model on `device`
    /// (`path` is the kernel path of the CPU, used where the model runs on
    /// it). The payloads are the same on every device.
    pub fn on_device(
        model: Arc<Model>,
        path: KernelPath,
        device: Device,
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
        // the one pool of `-T` (`crate::runtime::pipeline::try_thread_pool` says who
        // else uses it)
        let pool = if threads > 1 {
            Some(
                crate::runtime::pipeline::try_thread_pool(threads).map_err(|e| {
                    LmError::ThreadPool {
                        threads,
                        msg: e.to_string(),
                    }
                })?,
            )
        } else {
            None
        };
        let backend = Backend::open(device, CpuBackend::new(model, path))
            .map_err(|e| LmError::Device(e.to_string()))?;
        Ok(LmCodec {
            sched: Scheduler {
                backend,
                threads,
                pool,
            },
            batch,
            active: std::sync::atomic::AtomicUsize::new(0),
            pair: std::sync::OnceLock::new(),
            chaos: chaos_from_env()?,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        self.sched.backend.model()
    }

    /// The thread pool the codec runs on (`None` with one thread), for the
    /// caller's other work to share.
    pub fn pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        self.sched.pool.clone()
    }

    /// Chains in flight.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Threads, the pool's (1 without a pool).
    pub(crate) fn threads(&self) -> usize {
        self.sched.threads
    }

    /// The scheduler over the model's backend.
    pub(crate) fn scheduler(&self) -> &Scheduler<Backend> {
        &self.sched
    }

    /// Where the model runs, in words.
    pub fn device(&self) -> String {
        self.sched.backend.describe()
    }

    /// Whether the model runs on the CPU (where a lone chunk's decoding can
    /// be split over two threads, [`LmCodec::decode_lent`]).
    pub(crate) fn on_cpu(&self) -> bool {
        self.sched.backend.cpu().is_some()
    }

    fn cpu_backend(&self) -> &CpuBackend {
        self.sched
            .backend
            .cpu()
            .expect("the two-thread split runs the model on the CPU")
    }

    /// Counts a coding call in progress until the guard drops.
    pub(crate) fn enter(&self) -> Active<'_> {
        let before = self
            .active
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Active {
            count: &self.active,
            alone: before == 0,
        }
    }

    /// Decodes one chain, or two interleaved (`chains`), of `raw_len` bytes
    /// in coding order, byte by byte with `coder`, on two threads (this one
    /// and a helper running the model's layers), or on this one alone
    /// where the two keep stalling (`pair` says how). The helper's
    /// processor is taken from `helpers` for each paired run: where none
    /// is free, the chunk goes on alone (both chains in one step) and asks
    /// again after [`pair::SOLO_RUN`] bytes.
    pub(crate) fn decode_lent<C: ChainCoder>(
        &self,
        coder: &mut C,
        raw_len: usize,
        chains: usize,
        helpers: &dyn Helpers,
    ) -> Result<(), C::Error> {
        self.pair_decode(
            coder,
            raw_len,
            chains,
            pair::Knobs::with_chaos(self.chaos),
            helpers,
        )
    }

    /// The two-thread decoding of [`LmCodec::decode_lent`], with its
    /// knobs.
    fn pair_decode<C: ChainCoder>(
        &self,
        coder: &mut C,
        raw_len: usize,
        chains: usize,
        knobs: pair::Knobs,
        helpers: &dyn Helpers,
    ) -> Result<(), C::Error> {
        let pw = self
            .pair
            .get_or_init(|| pair::PairWeights::new(self.model()));
        let b = self.cpu_backend();
        pair::decode(
            b.model(),
            pw,
            b.path(),
            coder,
            raw_len,
            chains,
            knobs,
            helpers,
        )
    }

    /// [`LmCodec::decode_lent`] with the coder going alone from byte
    /// `alone_from` on for `solo_run` bytes at a time, and the exchange
    /// delayed (`chaos`: a seed) and the helper panicking at a point of
    /// it, as a loaded machine or a fault would have it.
    #[cfg(test)]
    pub(crate) fn decode_split_with<C: ChainCoder>(
        &self,
        coder: &mut C,
        raw_len: usize,
        chains: usize,
        alone_from: usize,
        solo_run: usize,
        chaos: Option<(u64, Option<u64>)>,
    ) -> Result<(), C::Error> {
        let chaos = chaos.map(|(seed, helper_panics_at)| handoff::ChaosSpec {
            seed,
            helper_panics_at,
        });
        let knobs = pair::Knobs {
            solo_run,
            alone_from,
            chaos,
        };
        self.pair_decode(coder, raw_len, chains, knobs, &pair::Always)
    }

    /// Codes each chunk (any length, 0 included) into a range-coder payload,
    /// in input order. The bytes depend only on the model and the chunk.
    pub fn encode_chunks(&self, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let jobs = chunks.iter().map(|&data| LmJob::Encode {
            data,
            pos: 0,
            enc: RangeEncoder::with_capacity(data.len() / 3 + 16),
        });
        self.sched
            .run(jobs, chunks.len(), self.batch)
            .into_iter()
            .map(|d| match d {
                LmDone::Encoded(v) => v,
                _ => unreachable!("not an encoding job"),
            })
            .collect()
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
        // chunks whose payload fails at once take no lane
        let live: Vec<usize> = (0..chunks.len()).filter(|&i| decs[i].is_some()).collect();
        let jobs = live.iter().map(|&i| LmJob::Decode {
            dec: decs[i].take().unwrap(),
            out: Vec::with_capacity(chunks[i].1.min(1 << 20)),
            raw_len: chunks[i].1,
        });
        merge_decoded(early, self.sched.run(jobs, live.len(), self.batch))
    }

    /// Ideal code length in bits (`sum -log2(f[x] / TOTAL)`, without range
    /// coder overhead) of `data` cut into [`TRAINED_CONTEXT`]-byte chunks.
    pub fn cross_entropy_bits(&self, data: &[u8]) -> f64 {
        let chunks: Vec<&[u8]> = data.chunks(TRAINED_CONTEXT).collect();
        let jobs = chunks.iter().map(|&data| LmJob::Bits {
            data,
            pos: 0,
            bits: 0.0,
        });
        self.sched
            .run(jobs, chunks.len(), self.batch)
            .into_iter()
            .map(|d| match d {
                LmDone::Bits(b) => b,
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
}

#[cfg(test)]
pub(crate) mod tests;
