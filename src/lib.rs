//! lza: a streaming, tar-like archiver that codes text with a language model
//! and a range coder, and everything else with zstd.
//!
//! Layers, bottom up: [`format`] (bytes on disk, no file-system policy),
//! [`codec`] (chunk codecs), [`reader`] (strict sequential parsing),
//! [`pipeline`] (ordered parallel coding), [`create`] and [`extract`]
//! (archives from and to directories). The binary in `main.rs` is a thin CLI.
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
#[allow(missing_docs)]
pub mod lm;
#[allow(unsafe_code)]
pub(crate) mod mem;
pub mod models;
pub mod names;
pub mod pipeline;
pub mod progress;
pub mod reader;
pub mod select;
pub mod symlinks;
#[cfg(feature = "testutil")]
pub mod testutil;

pub use error::{CorruptKind, Error, Result};
