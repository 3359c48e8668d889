//! Structured errors: every failure says what is wrong and where (the path on
//! disk, or the entry, chunk and byte offset in the archive).

use std::fmt;
use std::io;
use std::path::PathBuf;

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

/// What exactly is wrong with a corrupt archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptKind {
    /// The stream does not start with lza's magic.
    #[error("not an lza archive (bad magic)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u16),
    /// A structure's CRC or a data checksum does not match.
    #[error("{0} checksum mismatch")]
    ChecksumMismatch(&'static str),
    /// A reserved field is not zero.
    #[error("reserved bits set in {field} ({value:#x})")]
    ReservedBits {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// `max_chunk` is zero or above the format's limit.
    #[error("max_chunk {0} out of range (1..=64 MiB)")]
    MaxChunkOutOfRange(u32),
    /// An entry kind code this version does not define.
    #[error("unknown entry kind {0}")]
    UnknownEntryKind(u8),
    /// A length field is out of range.
    #[error("{field} {value} out of range")]
    BadLength {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A string field is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A path breaks the path rules.
    #[error("bad path {path:?}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// The rule.
        reason: &'static str,
    },
    /// A codec id this version does not define.
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    /// A chunk larger than the header's `max_chunk`, or empty.
    #[error("chunk of {raw_len} bytes outside 1..={max_chunk} declared in the header")]
    ChunkTooLarge {
        /// The chunk's raw length.
        raw_len: u32,
        /// The header's limit.
        max_chunk: u32,
    },
    /// A record tag this version does not define.
    #[error("unknown record tag {0:#04x}")]
    UnknownTag(u8),
    /// The stream ended inside a structure.
    #[error("truncated archive: stream ends inside {0}")]
    Truncated(&'static str),
    /// Bytes follow the end record.
    #[error("data after the end record")]
    TrailingData,
    /// A chunk frame outside a file's data.
    #[error("chunk frame does not belong to a file entry")]
    ChunkOutsideFile,
    /// A file's chunks go past its declared size.
    #[error("chunks exceed the file's declared size of {declared} bytes")]
    FileTooLong {
        /// Declared size.
        declared: u64,
    },
    /// A file's chunks end before its declared size.
    #[error("file data ends after {got} of {declared} declared bytes")]
    FileTooShort {
        /// Declared size.
        declared: u64,
        /// Bytes present.
        got: u64,
    },
    /// A path appears twice.
    #[error("duplicate path {0:?}")]
    DuplicatePath(String),
    /// A path conflicts with an earlier entry (e.g. below a file or symlink).
    #[error("path {path:?} conflicts with an earlier entry: {reason}")]
    PathConflict {
        /// The path.
        path: String,
        /// How.
        reason: &'static str,
    },
    /// A hard link whose target is not an earlier file of the archive.
    #[error("hard link target {0:?} is not an earlier file in the archive")]
    HardlinkTarget(String),
    /// A chunk's payload does not decode.
    #[error("chunk payload does not decode: {0}")]
    Decode(String),
    /// The end record disagrees with what was read.
    #[error("end record mismatch: {0}")]
    EndMismatch(&'static str),
    /// A language-model chunk in an archive whose header names no model.
    #[error("language-model chunk but the header names no model")]
    NoModel,
    /// A context-mixing preset that the archive's format version lacks
    /// (preset 9 in a version 1 archive, format-spec 8.5).
    #[error("context-mixing preset {0} in a version 1 archive")]
    PresetNotInVersion(u8),
    /// More entries than the limit allows.
    #[error("more than {0} entries")]
    TooManyEntries(u64),
    /// A trailing index that is malformed or disagrees with the records
    /// it describes (format-spec 13).
    #[error("bad index: {0}")]
    BadIndex(String),
    /// A concatenated member that may not follow the ones before it
    /// (format-spec 12).
    #[error("concatenated member {0}")]
    BadMember(&'static str),
    /// A solid block record breaks a rule of format-spec 4a.
    #[error("bad solid block: {0}")]
    BadBlock(String),
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
