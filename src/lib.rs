//! lza: a streaming, tar-like archiver that codes text with a language model
//! and a range coder, and everything else with zstd.
//!
//! Layers, bottom up: [`format`] (bytes on disk, no file-system policy),
//! [`codec`] (chunk codecs), [`reader`] (strict sequential parsing),
//! [`pipeline`] (ordered parallel coding), [`create`] and [`extract`]
//! (archives from and to directories). The binary in `main.rs` is a thin CLI.
#![deny(missing_docs)]

pub mod bench;
pub mod cleanup;
pub mod cm;
pub mod codec;
pub mod create;
pub mod error;
pub mod extract;
pub mod format;
pub mod index;
#[allow(missing_docs)]
pub mod lm;
pub mod models;
pub mod names;
pub mod pipeline;
pub mod progress;
pub mod reader;
pub mod select;
pub mod symlinks;

pub use error::{CorruptKind, Error, Result};
