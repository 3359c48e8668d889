//! The bytes on disk: header, entry records, chunk frames and the end record
//! of `format-spec.md`, with their serializers and strict parsers.
//!
//! This layer knows nothing about files or codecs' contents; it checks every
//! field a structure carries on its own (reserved bits, lengths, checksums,
//! path syntax). Cross-record rules (a chunk belongs to a file, sizes add up,
//! totals in the end record) live in [`crate::reader`].

use crate::error::CorruptKind;

/// The 8 magic bytes that start every archive (`\x89LZA\r\n\x1a\n`).
pub const MAGIC: [u8; 8] = [0x89, b'L', b'Z', b'A', 0x0D, 0x0A, 0x1A, 0x0A];
/// The format version this code reads and writes.
pub const VERSION: u16 = 1;
/// The newest format version this code reads (version 2 adds concatenated
/// members and the trailing index, format-spec 12 and 13).
pub const MAX_READ_VERSION: u16 = 2;
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
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
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

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_reserved_bits() {
        let h = Header {
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
