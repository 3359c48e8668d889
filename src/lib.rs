//! lza: a streaming, tar-like archiver that codes text by context mixing
//! with a language model, and everything else with zstd.
//!
//! Layers, bottom up; each uses only the layers below it:
//!
//! - below all: `mem` (memory hints), [`pipeline`] (the pool of `-T`,
//!   ordered parallel coding), [`progress`], [`names`], [`cleanup`];
//! - format: [`format`](mod@format) (bytes on disk, no file-system policy), [`error`],
//!   [`member`] (concatenated members, the trailing index's bytes and the
//!   checks a stream reader makes of it);
//! - container: [`reader`] (strict sequential parsing), [`index`] (an
//!   indexed file: seeking, ranges, sealing);
//! - codecs: [`codec`] (frames, stored, zstd), [`cm`] (context mixing),
//!   [`lm`] (the language model as a probability source behind
//!   [`lm::StepBackend`]), [`cmlm`] (context mixing with the model),
//!   [`models`] (where models come from);
//! - coding plan: [`plan`] (method, presets, pieces, trials, solid
//!   blocks: format-spec 8.6), above the codecs it chooses between;
//! - archive I/O: [`create`], [`extract`], [`select`], [`symlinks`].
//!
//! The `lza` binary (`src/cli/`: arguments, messages, `lza bench`) is a
//! thin layer on top and not part of the library.
#![deny(missing_docs)]
// `unsafe` is allowed only where it must be: the model's SIMD kernels
// (`lm::cpu::kernels`), the mixer's (`cm::mixer`), memory hints (`mem`) and
// the signal-time file removal of `cleanup`; each with its reasons.
#![deny(unsafe_code)]

pub mod cleanup;
pub mod cm;
pub mod cmlm;
pub mod codec;
pub mod create;
pub mod error;
pub mod extract;
pub mod format;
pub mod index;
pub mod lm;
#[allow(unsafe_code)]
pub(crate) mod mem;
pub mod member;
pub mod models;
pub mod names;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod reader;
pub mod select;
pub mod symlinks;
#[cfg(feature = "testutil")]
pub mod testutil;

pub use error::{CorruptKind, Error, Result};
