//! Structured errors: every failure says what is wrong and where (the path on
//! disk, or the entry, chunk and byte offset in the archive).

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use crate::format::CorruptKind;
use crate::format::ModelHash;

/// Result with lza's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in lza.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file on disk failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading or writing the archive stream itself failed.
    #[error("archive {action} failed at byte {offset}: {source}")]
    ArchiveIo {
        /// "read" or "write".
        action: &'static str,
        /// Offset in the archive.
        offset: u64,
        /// What the OS said.
        source: io::Error,
    },
    /// The archive breaks the format: corrupt, truncated or hostile.
    #[error("corrupt archive at byte {offset}{}: {kind}", Location(entry, chunk))]
    Corrupt {
        /// Offset of the structure that is wrong.
        offset: u64,
        /// The entry it belongs to, if any.
        entry: Option<String>,
        /// The chunk index within that entry, if any.
        chunk: Option<u64>,
        /// What is wrong.
        kind: CorruptKind,
    },
    /// An entry that would write outside the destination or otherwise break
    /// the extraction rules.
    #[error("unsafe entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path.
        path: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The destination already has this path and `--overwrite` was not given.
    #[error("{}: already exists (use --overwrite to replace it)", path.display())]
    Exists {
        /// The existing path.
        path: PathBuf,
    },
    /// The archive names a model lza cannot find.
    #[error(
        "archive needs language model {hash}, which is neither embedded nor found; \
         pass it with --model FILE or put it in $LZA_MODEL_PATH or ~/.local/share/lza/models"
    )]
    UnknownModel {
        /// The model hash from the archive header.
        hash: ModelHash,
    },
    /// A model file is invalid or does not match its expected hash.
    #[error("model {origin}: {reason}")]
    BadModel {
        /// Where the model came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// Input that cannot be archived (a non-UTF-8 name, a path with `..`).
    #[error("{}: {reason}", path.display())]
    BadInput {
        /// The input path.
        path: PathBuf,
        /// Why it cannot be archived.
        reason: String,
    },
    /// The device asked for cannot run the model (`--device cuda` where
    /// no GPU is usable).
    #[error("--device: {0}")]
    Device(String),
    /// A limit set by the user or the format was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// A fault inside lza (a worker thread that stopped or panicked, a
    /// broken invariant): not a property of the archive or the input, which
    /// were not found corrupt. The CLI exits with its own code for it.
    #[error(
        "internal error{}: {msg}; this is a fault in lza, the archive was not found corrupt",
        Location(entry, chunk)
    )]
    Internal {
        /// The entry being coded, if known.
        entry: Option<String>,
        /// The chunk index within that entry, if known.
        chunk: Option<u64>,
        /// What failed.
        msg: String,
    },
}

struct Location<'a>(&'a Option<String>, &'a Option<u64>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(e), Some(c)) => write!(f, " (entry {e:?}, chunk {c})"),
            (Some(e), None) => write!(f, " (entry {e:?})"),
            (None, Some(c)) => write!(f, " (chunk {c})"),
            (None, None) => Ok(()),
        }
    }
}

/// Corrupt data at stream `offset`, outside any entry or chunk.
pub(crate) fn corrupt(offset: u64, kind: CorruptKind) -> Error {
    Error::Corrupt {
        offset,
        entry: None,
        chunk: None,
        kind,
    }
}

impl Error {
    /// An internal error with no location.
    pub fn internal(msg: impl Into<String>) -> Error {
        Error::Internal {
            entry: None,
            chunk: None,
            msg: msg.into(),
        }
    }

    /// True for a fault inside lza ([`Error::Internal`]).
    pub fn is_internal(&self) -> bool {
        matches!(self, Error::Internal { .. })
    }

    /// A disk I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error is a broken pipe on the output (which the CLI
    /// ends quietly on, as other Unix tools do).
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::ArchiveIo { source, .. } | Error::Io { source, .. } => {
                source.kind() == io::ErrorKind::BrokenPipe
            }
            _ => false,
        }
    }
}
