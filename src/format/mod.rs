//! The bytes on disk: header, entry records, chunk frames and the end record
//! of `format-spec.md`, with their serializers and strict parsers.
//!
//! This layer knows nothing about files or codecs' contents; it checks every
//! field a structure carries on its own (reserved bits, lengths, checksums,
//! path syntax). Cross-record rules (a chunk belongs to a file, sizes add up,
//! totals in the end record) live in [`crate::container::reader`].
//!
//! The format layer: this module's structures, the errors of every layer
//! ([`error`]) and concatenated members with the trailing index's bytes
//! ([`member`]).

pub mod error;
pub mod member;

/// The 8 magic bytes that start every archive (`\x89LZA\r\n\x1a\n`).
pub const MAGIC: [u8; 8] = [0x89, b'L', b'Z', b'A', 0x0D, 0x0A, 0x1A, 0x0A];
/// The newest format version this code reads and writes (version 2 adds
/// solid blocks, concatenated members and the trailing index, format-spec
/// 4a, 12 and 13).
pub const VERSION: u16 = 2;
/// The newest format version this code reads.
pub const MAX_READ_VERSION: u16 = VERSION;
/// The oldest format version this code reads (and writes for an archive
/// without solid blocks, which is a valid version 1 archive).
pub const VERSION_1: u16 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 40;
/// Largest `max_chunk` a decoder accepts (64 MiB): bounds every allocation.
pub const MAX_CHUNK_LIMIT: u32 = 64 << 20;
/// Largest `raw_len` of a language-model chunk (64 KiB).
pub const MAX_LM_CHUNK: u32 = 64 << 10;
/// The language model's state restarts from zero every this many bytes of
/// each stream of a context-mixing chunk that uses the model (format-spec
/// 8.4): normative, so a decoder makes the same resets.
pub const LM_RESET: usize = 16 << 10;

/// Bit 7 of a context-mixing payload's first byte: the chunk is coded with
/// the language model (format-spec 8.5).
pub const CM_FLAG_LM: u8 = 0x80;

/// Bit 6 of a context-mixing payload's first byte: the x86 filter
/// (format-spec 8.7).
pub const CM_FLAG_X86: u8 = 0x40;

/// The highest context-mixing preset id a version 1 archive may use:
/// preset 9 came with version 2 (format-spec 8.5), and a version 1 reader
/// refuses it.
pub const MAX_V1_CM_PRESET: u8 = 8;

/// The preset id of a context-mixing payload whose first byte is `first`.
pub fn cm_preset_id(first: u8) -> u8 {
    first & !(CM_FLAG_LM | CM_FLAG_X86)
}
/// Longest path or link target, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Length of a chunk frame header (tag to frame_crc).
pub const FRAME_HEADER_LEN: usize = 24;
/// Length of the end record.
pub const END_LEN: usize = 45;
/// Fixed part of an entry record before the path (tag to link_len).
pub const ENTRY_FIXED_LEN: usize = 28;

/// Record tags.
pub const TAG_ENTRY: u8 = 0x01;
/// Tag of a chunk frame.
pub const TAG_CHUNK: u8 = 0x02;
/// Tag of the end record.
pub const TAG_END: u8 = 0xFF;
/// Tag of a solid block record (version 2).
pub const TAG_BLOCK: u8 = 0x03;

/// The identity of a model file: xxh3-128 of its bytes, little-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModelHash(pub [u8; 16]);

impl ModelHash {
    /// The all-zero hash, meaning "no model".
    pub const NONE: ModelHash = ModelHash([0; 16]);

    /// Hash of a model file's bytes.
    pub fn of_bytes(bytes: &[u8]) -> ModelHash {
        ModelHash(xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes())
    }

    /// True for the all-zero hash.
    pub fn is_none(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Parse 32 hex digits.
    pub fn from_hex(s: &str) -> Option<ModelHash> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ModelHash(out))
    }
}

impl std::fmt::Display for ModelHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ModelHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelHash({self})")
    }
}

/// The archive header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version: [`VERSION_1`] or [`VERSION`].
    pub version: u16,
    /// Largest uncompressed chunk length in the archive.
    pub max_chunk: u32,
    /// Model used by language-model chunks, or [`ModelHash::NONE`].
    pub model_hash: ModelHash,
}

impl Header {
    /// Serialize to the 40 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        // flags (10..12) and reserved (16..20) stay zero.
        b[12..16].copy_from_slice(&self.max_chunk.to_le_bytes());
        b[20..36].copy_from_slice(&self.model_hash.0);
        let crc = crc32fast::hash(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and validate the 40 header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Header, CorruptKind> {
        if b[0..8] != MAGIC {
            return Err(CorruptKind::BadMagic);
        }
        let version = u16_at(b, 8);
        if version == 0 || version > MAX_READ_VERSION {
            return Err(CorruptKind::UnsupportedVersion(version));
        }
        if crc32fast::hash(&b[0..36]) != u32_at(b, 36) {
            return Err(CorruptKind::ChecksumMismatch("header"));
        }
        let flags = u16_at(b, 10);
        if flags != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "header flags",
                value: flags as u64,
            });
        }
        let reserved = u32_at(b, 16);
        if reserved != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "header reserved",
                value: reserved as u64,
            });
        }
        let max_chunk = u32_at(b, 12);
        if max_chunk == 0 || max_chunk > MAX_CHUNK_LIMIT {
            return Err(CorruptKind::MaxChunkOutOfRange(max_chunk));
        }
        let mut h = [0u8; 16];
        h.copy_from_slice(&b[20..36]);
        Ok(Header {
            version,
            max_chunk,
            model_hash: ModelHash(h),
        })
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file, followed by chunk frames.
    File,
    /// A directory.
    Directory,
    /// A symbolic link; `link` is its target.
    Symlink,
    /// A hard link; `link` is the path of an earlier file entry.
    Hardlink,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Directory => 1,
            EntryKind::Symlink => 2,
            EntryKind::Hardlink => 3,
        }
    }

    fn from_code(c: u8) -> Option<EntryKind> {
        Some(match c {
            0 => EntryKind::File,
            1 => EntryKind::Directory,
            2 => EntryKind::Symlink,
            3 => EntryKind::Hardlink,
            _ => return None,
        })
    }

    /// The `ls -l` type character.
    pub fn type_char(self) -> char {
        match self {
            EntryKind::File => '-',
            EntryKind::Directory => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Hardlink => 'h',
        }
    }
}

/// One entry record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated UTF-8 path.
    pub path: String,
    /// Type of the entry.
    pub kind: EntryKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Uncompressed size (files only).
    pub size: u64,
    /// Symlink target or hard-link source path; empty otherwise.
    pub link: String,
}

impl Entry {
    /// Serialize the whole record, CRC included. Panics in debug builds if
    /// the entry breaks the rules `parse` enforces; the writer validates
    /// paths before building entries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ENTRY_FIXED_LEN + self.path.len() + self.link.len() + 4);
        b.push(TAG_ENTRY);
        b.push(self.kind.code());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.mode.to_le_bytes());
        b.extend_from_slice(&self.mtime_ns.to_le_bytes());
        b.extend_from_slice(&self.size.to_le_bytes());
        b.extend_from_slice(&(self.path.len() as u16).to_le_bytes());
        b.extend_from_slice(&(self.link.len() as u16).to_le_bytes());
        b.extend_from_slice(self.path.as_bytes());
        b.extend_from_slice(self.link.as_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }
}

/// The fixed part of an entry record, parsed before the variable part is read.
#[derive(Debug, Clone, Copy)]
pub struct EntryFixed {
    kind: EntryKind,
    mode: u32,
    mtime_ns: i64,
    size: u64,
    /// Length of the path that follows.
    pub path_len: usize,
    /// Length of the link that follows.
    pub link_len: usize,
}

impl EntryFixed {
    /// Parse the first [`ENTRY_FIXED_LEN`] bytes of an entry record (tag
    /// included) and check what can be checked before reading the rest.
    pub fn parse(b: &[u8; ENTRY_FIXED_LEN]) -> Result<EntryFixed, CorruptKind> {
        debug_assert_eq!(b[0], TAG_ENTRY);
        let kind = EntryKind::from_code(b[1]).ok_or(CorruptKind::UnknownEntryKind(b[1]))?;
        let reserved = u16_at(b, 2);
        if reserved != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "entry reserved",
                value: reserved as u64,
            });
        }
        let mode = u32_at(b, 4);
        if mode & !0o7777 != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "entry mode",
                value: mode as u64,
            });
        }
        let mtime_ns = u64_at(b, 8) as i64;
        let size = u64_at(b, 16);
        let path_len = u16_at(b, 24) as usize;
        let link_len = u16_at(b, 26) as usize;
        if path_len == 0 || path_len > MAX_PATH_LEN {
            return Err(CorruptKind::BadLength {
                field: "path_len",
                value: path_len as u64,
            });
        }
        let has_link = matches!(kind, EntryKind::Symlink | EntryKind::Hardlink);
        if has_link && (link_len == 0 || link_len > MAX_PATH_LEN) || !has_link && link_len != 0 {
            return Err(CorruptKind::BadLength {
                field: "link_len",
                value: link_len as u64,
            });
        }
        if kind != EntryKind::File && size != 0 {
            return Err(CorruptKind::BadLength {
                field: "size of a non-file entry",
                value: size,
            });
        }
        Ok(EntryFixed {
            kind,
            mode,
            mtime_ns,
            size,
            path_len,
            link_len,
        })
    }

    /// Number of bytes of the record after the fixed part (path, link, CRC).
    pub fn rest_len(&self) -> usize {
        self.path_len + self.link_len + 4
    }

    /// Finish parsing with the rest of the record; `fixed_bytes` are the
    /// bytes given to [`EntryFixed::parse`].
    pub fn finish(
        &self,
        fixed_bytes: &[u8; ENTRY_FIXED_LEN],
        rest: &[u8],
    ) -> Result<Entry, CorruptKind> {
        debug_assert_eq!(rest.len(), self.rest_len());
        let body_end = self.path_len + self.link_len;
        let mut crc = crc32fast::Hasher::new();
        crc.update(fixed_bytes);
        crc.update(&rest[..body_end]);
        if crc.finalize() != u32_at(rest, body_end) {
            return Err(CorruptKind::ChecksumMismatch("entry record"));
        }
        let path = std::str::from_utf8(&rest[..self.path_len])
            .map_err(|_| CorruptKind::NotUtf8("path"))?
            .to_owned();
        check_archive_path(&path).map_err(|reason| CorruptKind::BadPath {
            path: path.clone(),
            reason,
        })?;
        let link = std::str::from_utf8(&rest[self.path_len..body_end])
            .map_err(|_| CorruptKind::NotUtf8("link target"))?
            .to_owned();
        match self.kind {
            EntryKind::Hardlink => {
                check_archive_path(&link).map_err(|reason| CorruptKind::BadPath {
                    path: link.clone(),
                    reason,
                })?
            }
            EntryKind::Symlink if link.contains('\0') => {
                return Err(CorruptKind::BadPath {
                    path: link,
                    reason: "symlink target contains NUL",
                });
            }
            _ => {}
        }
        Ok(Entry {
            path,
            kind: self.kind,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            size: self.size,
            link,
        })
    }
}

/// Why a path is not acceptable inside an archive, or `Ok`.
pub fn check_archive_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("path longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.contains('\0') {
        return Err("path contains NUL");
    }
    if path.contains('\\') {
        return Err("path contains a backslash");
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err("empty path component"),
            "." => return Err("'.' path component"),
            ".." => return Err("'..' path component"),
            _ => {}
        }
        let b = comp.as_bytes();
        if b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic() {
            return Err("drive prefix in path component");
        }
    }
    Ok(())
}

/// Codec of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecId {
    /// The bytes as they are.
    Stored,
    /// One zstd frame.
    Zstd,
    /// Range-coded with the archive's language model.
    LanguageModel,
    /// Context mixing (format-spec 8), with or without the language model.
    ContextMixing,
}

impl CodecId {
    /// Wire value.
    pub fn code(self) -> u8 {
        match self {
            CodecId::Stored => 0,
            CodecId::Zstd => 1,
            CodecId::LanguageModel => 2,
            CodecId::ContextMixing => 3,
        }
    }

    /// From the wire value.
    pub fn from_code(c: u8) -> Option<CodecId> {
        Some(match c {
            0 => CodecId::Stored,
            1 => CodecId::Zstd,
            2 => CodecId::LanguageModel,
            3 => CodecId::ContextMixing,
            _ => return None,
        })
    }

    /// Short name for listings.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::Stored => "stored",
            CodecId::Zstd => "zstd",
            CodecId::LanguageModel => "lm",
            CodecId::ContextMixing => "cm",
        }
    }
}

/// A chunk frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// How the payload is coded.
    pub codec: CodecId,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Payload length.
    pub stored_len: u32,
    /// xxh3-64 of the uncompressed bytes.
    pub raw_xxh3: u64,
}

/// Largest payload a chunk of `raw_len` bytes may have.
pub fn max_stored_len(raw_len: u32) -> u64 {
    raw_len as u64 + raw_len as u64 / 8 + 1024
}

impl FrameHeader {
    /// Whether this chunk needs the language model: a language-model
    /// chunk, or a context-mixing chunk whose payload's first byte has
    /// [`CM_FLAG_LM`]; false for other codecs.
    pub fn uses_model(&self, payload: &[u8]) -> bool {
        match self.codec {
            CodecId::LanguageModel => true,
            CodecId::ContextMixing => payload.first().is_some_and(|b| b & CM_FLAG_LM != 0),
            _ => false,
        }
    }

    /// Serialize the 24 frame header bytes.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0] = TAG_CHUNK;
        b[1] = self.codec.code();
        b[4..8].copy_from_slice(&self.raw_len.to_le_bytes());
        b[8..12].copy_from_slice(&self.stored_len.to_le_bytes());
        b[12..20].copy_from_slice(&self.raw_xxh3.to_le_bytes());
        let crc = crc32fast::hash(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse and validate a frame header against the archive's `max_chunk`.
    pub fn parse(b: &[u8; FRAME_HEADER_LEN], max_chunk: u32) -> Result<FrameHeader, CorruptKind> {
        debug_assert_eq!(b[0], TAG_CHUNK);
        if crc32fast::hash(&b[0..20]) != u32_at(b, 20) {
            return Err(CorruptKind::ChecksumMismatch("chunk frame header"));
        }
        let codec = CodecId::from_code(b[1]).ok_or(CorruptKind::UnknownCodec(b[1]))?;
        let reserved = u16_at(b, 2);
        if reserved != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "chunk reserved",
                value: reserved as u64,
            });
        }
        let raw_len = u32_at(b, 4);
        if raw_len == 0 || raw_len > max_chunk {
            return Err(CorruptKind::ChunkTooLarge { raw_len, max_chunk });
        }
        if codec == CodecId::LanguageModel && raw_len > MAX_LM_CHUNK {
            // Decoding costs one model step per byte: bound it per chunk.
            return Err(CorruptKind::BadLength {
                field: "raw_len of a language-model chunk",
                value: raw_len as u64,
            });
        }
        let stored_len = u32_at(b, 8);
        if stored_len as u64 > max_stored_len(raw_len)
            || codec == CodecId::Stored && stored_len != raw_len
        {
            return Err(CorruptKind::BadLength {
                field: "stored_len",
                value: stored_len as u64,
            });
        }
        Ok(FrameHeader {
            codec,
            raw_len,
            stored_len,
            raw_xxh3: u64_at(b, 12),
        })
    }
}

/// The end record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRecord {
    /// Number of entry records.
    pub entries: u64,
    /// Number of chunk frames.
    pub chunks: u64,
    /// Sum of all chunks' `raw_len`.
    pub raw_bytes: u64,
    /// Archive bytes before the end record.
    pub stream_len: u64,
    /// xxh3-64 of those bytes.
    pub stream_xxh3: u64,
}

impl EndRecord {
    /// Serialize the 45 end record bytes.
    pub fn to_bytes(&self) -> [u8; END_LEN] {
        let mut b = [0u8; END_LEN];
        b[0] = TAG_END;
        b[1..9].copy_from_slice(&self.entries.to_le_bytes());
        b[9..17].copy_from_slice(&self.chunks.to_le_bytes());
        b[17..25].copy_from_slice(&self.raw_bytes.to_le_bytes());
        b[25..33].copy_from_slice(&self.stream_len.to_le_bytes());
        b[33..41].copy_from_slice(&self.stream_xxh3.to_le_bytes());
        let crc = crc32fast::hash(&b[0..41]);
        b[41..45].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse the end record; the caller compares its fields with what it read.
    pub fn parse(b: &[u8; END_LEN]) -> Result<EndRecord, CorruptKind> {
        debug_assert_eq!(b[0], TAG_END);
        if crc32fast::hash(&b[0..41]) != u32_at(b, 41) {
            return Err(CorruptKind::ChecksumMismatch("end record"));
        }
        Ok(EndRecord {
            entries: u64_at(b, 1),
            chunks: u64_at(b, 9),
            raw_bytes: u64_at(b, 17),
            stream_len: u64_at(b, 25),
            stream_xxh3: u64_at(b, 33),
        })
    }
}

/// Length of the fixed part of a solid block record (tag to `fixed_crc`).
pub const BLOCK_FIXED_LEN: usize = 40;
/// Most files one solid block may hold.
pub const MAX_BLOCK_FILES: u32 = 1 << 20;
/// Largest uncompressed file table of a solid block (16 MiB): bounds the
/// allocation a reader makes before it checks the table.
pub const MAX_BLOCK_TABLE: u32 = 16 << 20;

/// One file of a solid block: an entry record's fields for a regular file
/// (format-spec 4a).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFile {
    /// Relative, `/`-separated UTF-8 path.
    pub path: String,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Uncompressed size.
    pub size: u64,
}

impl BlockFile {
    /// The regular-file entry this is.
    pub fn to_entry(&self) -> Entry {
        Entry {
            path: self.path.clone(),
            kind: EntryKind::File,
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            size: self.size,
            link: String::new(),
        }
    }
}

/// The fixed part of a solid block record: what follows it and what its
/// chunk frames must add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFixed {
    /// How the file table is coded: 0 stored, 1 zstd.
    pub table_codec: u8,
    /// Number of files in the table, 1..=[`MAX_BLOCK_FILES`].
    pub files: u32,
    /// Number of chunk frames that follow the record.
    pub chunks: u32,
    /// Length of the file table before coding.
    pub table_raw_len: u32,
    /// Length of the file table as stored.
    pub table_stored_len: u32,
    /// Sum of the files' sizes, and of the chunk frames' `raw_len`.
    pub raw_len: u64,
    /// Bytes of the chunk frames that follow (headers and payloads).
    pub data_len: u64,
}

impl BlockFixed {
    /// Parse the fixed part (tag included) and check what can be checked
    /// before the table is read.
    pub fn parse(b: &[u8; BLOCK_FIXED_LEN], max_chunk: u32) -> Result<BlockFixed, CorruptKind> {
        debug_assert_eq!(b[0], TAG_BLOCK);
        if crc32fast::hash(&b[0..36]) != u32_at(b, 36) {
            return Err(CorruptKind::ChecksumMismatch("solid block record"));
        }
        let reserved = u16_at(b, 2);
        if reserved != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "block reserved",
                value: reserved as u64,
            });
        }
        let bad = |s: &str| Err(CorruptKind::BadBlock(s.into()));
        let fixed = BlockFixed {
            table_codec: b[1],
            files: u32_at(b, 4),
            chunks: u32_at(b, 8),
            table_raw_len: u32_at(b, 12),
            table_stored_len: u32_at(b, 16),
            raw_len: u64_at(b, 20),
            data_len: u64_at(b, 28),
        };
        if fixed.table_codec > 1 {
            return bad("unknown table codec");
        }
        if fixed.files == 0 {
            return bad("a block with no files");
        }
        if fixed.files > MAX_BLOCK_FILES {
            return bad("more than 1,048,576 files");
        }
        if fixed.table_raw_len > MAX_BLOCK_TABLE {
            return bad("file table larger than 16 MiB");
        }
        // every file takes at least 5 table bytes (a one-byte path)
        if (fixed.table_raw_len as u64) < 5 * fixed.files as u64 {
            return bad("file table too short for its file count");
        }
        let stored_ok = match fixed.table_codec {
            0 => fixed.table_stored_len == fixed.table_raw_len,
            _ => fixed.table_stored_len as u64 <= max_stored_len(fixed.table_raw_len),
        };
        if !stored_ok {
            return bad("table_stored_len out of range");
        }
        // chunk counts and sizes that agree: none for no data, and no more
        // data than the chunks can carry or their frames hold
        let chunks = fixed.chunks as u64;
        let fits = (fixed.raw_len == 0) == (chunks == 0)
            && chunks <= fixed.raw_len
            && fixed.raw_len <= chunks * max_chunk as u64
            && fixed.data_len >= chunks * (FRAME_HEADER_LEN as u64 + 1)
            && fixed.data_len
                <= chunks * FRAME_HEADER_LEN as u64
                    + fixed.raw_len
                    + fixed.raw_len / 8
                    + 1024 * chunks;
        if !fits {
            return bad("chunk count, raw_len and data_len disagree");
        }
        Ok(fixed)
    }

    /// Bytes of the record after the fixed part (the table and its CRC).
    pub fn rest_len(&self) -> usize {
        self.table_stored_len as usize + 4
    }

    /// Check the table's CRC, decode it and check every file against the
    /// block (format-spec 4a).
    pub fn finish(&self, rest: &[u8]) -> Result<Vec<BlockFile>, CorruptKind> {
        debug_assert_eq!(rest.len(), self.rest_len());
        let n = self.table_stored_len as usize;
        if crc32fast::hash(&rest[..n]) != u32_at(rest, n) {
            return Err(CorruptKind::ChecksumMismatch("solid block file table"));
        }
        let raw;
        let table: &[u8] = match self.table_codec {
            0 => &rest[..n],
            _ => {
                raw = zstd_table(&rest[..n], self.table_raw_len as usize)?;
                &raw
            }
        };
        let files = decode_table(table, self.files as usize)?;
        let mut sum = 0u64;
        for f in &files {
            sum = sum
                .checked_add(f.size)
                .ok_or_else(|| CorruptKind::BadBlock("file sizes overflow".into()))?;
        }
        if sum != self.raw_len {
            return Err(CorruptKind::BadBlock(format!(
                "file sizes add up to {sum}, the block holds {}",
                self.raw_len
            )));
        }
        Ok(files)
    }
}

/// Decompress a zstd-coded file table of exactly `len` bytes.
fn zstd_table(stored: &[u8], len: usize) -> Result<Vec<u8>, CorruptKind> {
    let bad = |s: &str| CorruptKind::BadBlock(s.into());
    if stored.len() < 4 || stored[0..4] != [0x28, 0xB5, 0x2F, 0xFD] {
        return Err(bad("file table is not one zstd frame"));
    }
    let mut d = zstd::bulk::Decompressor::new().map_err(|_| bad("zstd"))?;
    let out = d
        .decompress(stored, len)
        .map_err(|_| bad("file table does not decode"))?;
    if out.len() != len {
        return Err(bad("file table decodes to a different length"));
    }
    // one frame, nothing left over
    match zstd::zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => Ok(out),
        _ => Err(bad("bytes after the file table's zstd frame")),
    }
}

/// A block record: the fixed part and the file table, with the chunk frames
/// that follow it already coded (the writer knows them before it writes the
/// record).
pub struct BlockRecord<'a> {
    /// The files, in order.
    pub files: &'a [BlockFile],
    /// Number of chunk frames that follow.
    pub chunks: u32,
    /// Bytes of those frames.
    pub data_len: u64,
}

impl BlockRecord<'_> {
    /// Serialize the record (fixed part, table, table CRC); the table is
    /// zstd-coded when that is smaller.
    pub fn to_bytes(&self) -> Vec<u8> {
        let raw = encode_table(self.files);
        let zst = zstd::bulk::compress(&raw, 19)
            .ok()
            .filter(|z| z.len() < raw.len());
        let (codec, table) = match &zst {
            Some(z) => (1u8, z.as_slice()),
            None => (0u8, raw.as_slice()),
        };
        // (a reader rejects sizes that overflow; tests write them)
        let raw_len = self.files.iter().fold(0u64, |a, f| a.wrapping_add(f.size));
        let mut b = Vec::with_capacity(BLOCK_FIXED_LEN + table.len() + 4);
        b.push(TAG_BLOCK);
        b.push(codec);
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.chunks.to_le_bytes());
        b.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        b.extend_from_slice(&(table.len() as u32).to_le_bytes());
        b.extend_from_slice(&raw_len.to_le_bytes());
        b.extend_from_slice(&self.data_len.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.extend_from_slice(table);
        b.extend_from_slice(&crc32fast::hash(table).to_le_bytes());
        b
    }
}

/// Uncompressed table bytes that `files` take (format-spec 4a), for a
/// writer that bounds its tables.
pub fn table_len(files: &[BlockFile]) -> usize {
    encode_table(files).len()
}

/// The file table (format-spec 4a): column by column, paths front-coded
/// against the previous path, times as differences from the previous time.
pub fn encode_table(files: &[BlockFile]) -> Vec<u8> {
    let mut b = Vec::new();
    let mut prev: &str = "";
    for f in files {
        let shared = prev
            .bytes()
            .zip(f.path.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut b, shared as u64);
        put_varint(&mut b, (f.path.len() - shared) as u64);
        b.extend_from_slice(&f.path.as_bytes()[shared..]);
        prev = &f.path;
    }
    for f in files {
        put_varint(&mut b, f.size);
    }
    for f in files {
        put_varint(&mut b, f.mode as u64);
    }
    let mut t = 0i64;
    for f in files {
        let d = f.mtime_ns.wrapping_sub(t);
        put_varint(&mut b, ((d << 1) ^ (d >> 63)) as u64);
        t = f.mtime_ns;
    }
    b
}

/// Decode a file table of `n` files; every byte must be used.
pub fn decode_table(b: &[u8], n: usize) -> Result<Vec<BlockFile>, CorruptKind> {
    let bad = |s: String| CorruptKind::BadBlock(s);
    let mut at = 0usize;
    let mut files: Vec<BlockFile> = Vec::with_capacity(n.min(b.len() / 5));
    let mut prev = String::new();
    for i in 0..n {
        let shared = get_varint(b, &mut at)?;
        let len = get_varint(b, &mut at)?;
        if shared > prev.len() as u64 {
            return Err(bad(format!("file {i}: shares more than the previous path")));
        }
        let total = shared.saturating_add(len);
        if total == 0 || total > MAX_PATH_LEN as u64 {
            return Err(CorruptKind::BadLength {
                field: "path length in a block",
                value: total,
            });
        }
        let len = len as usize;
        if b.len() - at < len {
            return Err(bad("file table ends inside a path".into()));
        }
        let mut path = prev.as_bytes()[..shared as usize].to_vec();
        path.extend_from_slice(&b[at..at + len]);
        at += len;
        let path = String::from_utf8(path).map_err(|_| CorruptKind::NotUtf8("path"))?;
        check_archive_path(&path).map_err(|reason| CorruptKind::BadPath {
            path: path.clone(),
            reason,
        })?;
        prev.clone_from(&path);
        files.push(BlockFile {
            path,
            mode: 0,
            mtime_ns: 0,
            size: 0,
        });
    }
    for f in files.iter_mut() {
        f.size = get_varint(b, &mut at)?;
    }
    for f in files.iter_mut() {
        let mode = get_varint(b, &mut at)?;
        if mode & !0o7777 != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "entry mode",
                value: mode,
            });
        }
        f.mode = mode as u32;
    }
    let mut t = 0i64;
    for f in files.iter_mut() {
        let z = get_varint(b, &mut at)?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        t = t.wrapping_add(d);
        f.mtime_ns = t;
    }
    if at != b.len() {
        return Err(bad(format!(
            "{} bytes left over in the file table",
            b.len() - at
        )));
    }
    Ok(files)
}

fn put_varint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

/// An unsigned LEB128 number of at most 10 bytes, in its shortest form.
fn get_varint(b: &[u8], at: &mut usize) -> Result<u64, CorruptKind> {
    let bad = |s: &str| Err(CorruptKind::BadBlock(s.into()));
    let mut v = 0u64;
    for i in 0..10 {
        let Some(&byte) = b.get(*at) else {
            return bad("file table ends inside a number");
        };
        *at += 1;
        if i == 9 && byte > 1 {
            return bad("number in the file table overflows 64 bits");
        }
        v |= ((byte & 0x7F) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return bad("number in the file table not in its shortest form");
            }
            return Ok(v);
        }
    }
    bad("number in the file table longer than 10 bytes")
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The little-endian `u32` at `b[at..at + 4]`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The little-endian `u64` at `b[at..at + 8]`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// What exactly is wrong with a corrupt archive: the rules of this module
/// and of the readers above it (re-exported as `error::CorruptKind`).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_reserved_bits() {
        let h = Header {
            version: VERSION,
            max_chunk: 1 << 20,
            model_hash: ModelHash([7; 16]),
        };
        let b = h.to_bytes();
        assert_eq!(Header::parse(&b).unwrap(), h);
        let mut bad = b;
        bad[10] = 1;
        let crc = crc32fast::hash(&bad[0..36]);
        bad[36..40].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Header::parse(&bad),
            Err(CorruptKind::ReservedBits { .. })
        ));
    }

    #[test]
    fn entry_end_frame_round_trip() {
        let e = Entry {
            path: "dir/файл.txt".into(),
            kind: EntryKind::Symlink,
            mode: 0o755,
            mtime_ns: -5,
            size: 0,
            link: "../x".into(),
        };
        let b = e.to_bytes();
        let fixed: [u8; ENTRY_FIXED_LEN] = b[..ENTRY_FIXED_LEN].try_into().unwrap();
        let f = EntryFixed::parse(&fixed).unwrap();
        assert_eq!(f.finish(&fixed, &b[ENTRY_FIXED_LEN..]).unwrap(), e);

        let fh = FrameHeader {
            codec: CodecId::Zstd,
            raw_len: 100,
            stored_len: 50,
            raw_xxh3: 42,
        };
        assert_eq!(FrameHeader::parse(&fh.to_bytes(), 100).unwrap(), fh);
        assert!(matches!(
            FrameHeader::parse(&fh.to_bytes(), 99),
            Err(CorruptKind::ChunkTooLarge { .. })
        ));
        let lm = |raw_len| FrameHeader {
            codec: CodecId::LanguageModel,
            raw_len,
            stored_len: 5,
            raw_xxh3: 0,
        };
        assert!(FrameHeader::parse(&lm(MAX_LM_CHUNK).to_bytes(), 1 << 20).is_ok());
        assert!(matches!(
            FrameHeader::parse(&lm(MAX_LM_CHUNK + 1).to_bytes(), 1 << 20),
            Err(CorruptKind::BadLength { .. })
        ));
        let end = EndRecord {
            entries: 1,
            chunks: 2,
            raw_bytes: 3,
            stream_len: 4,
            stream_xxh3: 5,
        };
        assert_eq!(EndRecord::parse(&end.to_bytes()).unwrap(), end);
    }

    #[test]
    fn path_rules() {
        for ok in ["a", "a/b", "a b/ü", ".hidden", "a..b"] {
            assert!(check_archive_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a//b", "a/", "./a", "a/..", "..", "a\\b", "c:x", "a/\0",
        ] {
            assert!(check_archive_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn model_hash_hex() {
        let h = ModelHash::of_bytes(b"model");
        assert_eq!(ModelHash::from_hex(&h.to_string()), Some(h));
        assert_eq!(ModelHash::from_hex("zz"), None);
    }
}
