//! lza: a streaming, tar-like archiver that codes text by context mixing
//! with a language model, and everything else with zstd.
//!
//! Each layer is one module (one folder of `src/`); bottom up, each uses
//! only the layers below it:
//!
//! - [`runtime`]: what every layer may use: memory hints, the pool of `-T`
//!   and ordered parallel coding, progress counts, printing names safely,
//!   temporary files removed on signals;
//! - [`format`](mod@format): bytes on disk (no file-system policy), its
//!   errors, concatenated members and the trailing index's bytes;
//! - [`container`]: strict sequential parsing, indexed files (seeking,
//!   ranges, sealing);
//! - [`codecs`]: frames, stored and zstd, context mixing, the language model
//!   as a probability source behind [`codecs::lm::StepBackend`], context
//!   mixing with the model, where models come from;
//! - [`plan`]: the coding plan (method, presets, pieces, trials, solid
//!   blocks: format-spec 8.6), above the codecs it chooses between;
//! - [`archive`]: create, extract, member selection, the safe writer's link
//!   rules.
//!
//! The `lza` binary (`src/cli/`: arguments, messages, `lza bench`) is a
//! thin layer on top and not part of the library.
#![deny(missing_docs)]
// `unsafe` is allowed only where it must be: the model's SIMD kernels
// (`codecs::lm::cpu::kernels`), the mixer's (`codecs::cm::mixer`), memory
// hints (`runtime::mem`) and the signal-time file removal of
// `runtime::cleanup`; each with its reasons.
#![deny(unsafe_code)]

pub mod archive;
pub mod codecs;
pub mod container;
pub mod format;
pub mod plan;
pub mod runtime;

pub use format::error::{CorruptKind, Error, Result};
