//! A member's bounds (format-spec sections 12 and 13, version 2): the
//! trailing index's bytes (constants, [`Footer`], [`index_bytes`]), what
//! may follow a member's end record and how it is checked as a stream
//! ([`after_end`], against the rows a [`Tracker`] accumulated), and the
//! rules between the members of one archive ([`member_rules`]).
//!
//! This is what the sequential [`crate::container::reader`] needs to read a member to
//! its end; finding members and entries through their indexes, sealing and
//! concatenating are [`crate::container::index`]'s, one layer up.

use std::io::{self, Read};

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::format::error::{CorruptKind, Error, Result, corrupt};
use crate::format::{END_LEN, HEADER_LEN, Header, MAGIC, u32_at, u64_at};

/// Record tag of an index (only directly after a version 2 end record).
pub const TAG_INDEX: u8 = 0xFE;
/// Last 8 bytes of an index: its footer's magic.
pub const INDEX_MAGIC: [u8; 8] = [0x89, b'L', b'Z', b'I', 0x0D, 0x0A, 0x1A, 0x0A];
/// The first format version whose members may be followed by an index or
/// another member.
pub const CONCAT_VERSION: u16 = 2;
/// Bytes of an index before its rows: tag and 7 reserved bytes.
pub const INDEX_PREFIX_LEN: usize = 8;
/// Bytes of one entry row (offset, first chunk).
pub const ENTRY_ROW_LEN: usize = 16;
/// Bytes of one chunk row (offset).
pub const CHUNK_ROW_LEN: usize = 8;
/// Bytes of an index footer.
pub const FOOTER_LEN: usize = 48;

/// Length of a whole index record of `entries` and `chunks` rows.
pub fn index_len(entries: u64, chunks: u64) -> Option<u64> {
    entries
        .checked_mul(ENTRY_ROW_LEN as u64)?
        .checked_add(chunks.checked_mul(CHUNK_ROW_LEN as u64)?)?
        .checked_add((INDEX_PREFIX_LEN + FOOTER_LEN) as u64)
}

/// The version field of header bytes (format-spec 3).
pub fn header_version(b: &[u8; HEADER_LEN]) -> u16 {
    u16::from_le_bytes([b[8], b[9]])
}

/// `b` with its version field set to `version` and its CRC refreshed.
pub fn with_version(mut b: [u8; HEADER_LEN], version: u16) -> [u8; HEADER_LEN] {
    b[8..10].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&b[..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The index footer (format-spec 13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Entry rows (the member's entry records).
    pub entries: u64,
    /// Chunk rows (the member's chunk frames).
    pub chunks: u64,
    /// Bytes of the member, from its header to the end of this footer.
    pub member_len: u64,
    /// `xxh3_64` of the index from its tag to its last row.
    pub rows_xxh3: u64,
}

impl Footer {
    /// Serialize the 48 footer bytes.
    pub fn to_bytes(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&self.entries.to_le_bytes());
        b[8..16].copy_from_slice(&self.chunks.to_le_bytes());
        b[16..24].copy_from_slice(&self.member_len.to_le_bytes());
        b[24..32].copy_from_slice(&self.rows_xxh3.to_le_bytes());
        // 32..36 reserved, zero
        let crc = crc32fast::hash(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b[40..48].copy_from_slice(&INDEX_MAGIC);
        b
    }

    /// Parse and check the footer on its own: magic, CRC, reserved bytes,
    /// and that `member_len` can hold a header, an end record and this
    /// index.
    pub fn parse(b: &[u8; FOOTER_LEN]) -> Result<Footer, CorruptKind> {
        let bad = |what: &str| CorruptKind::BadIndex(what.to_string());
        if b[40..48] != INDEX_MAGIC {
            return Err(bad("footer magic missing"));
        }
        if crc32fast::hash(&b[0..36]) != u32_at(b, 36) {
            return Err(CorruptKind::ChecksumMismatch("index footer"));
        }
        if u32_at(b, 32) != 0 {
            return Err(CorruptKind::ReservedBits {
                field: "index footer reserved",
                value: u32_at(b, 32) as u64,
            });
        }
        let f = Footer {
            entries: u64_at(b, 0),
            chunks: u64_at(b, 8),
            member_len: u64_at(b, 16),
            rows_xxh3: u64_at(b, 24),
        };
        let min = index_len(f.entries, f.chunks)
            .and_then(|n| n.checked_add((HEADER_LEN + END_LEN) as u64))
            .ok_or_else(|| bad("row counts overflow"))?;
        if f.member_len < min {
            return Err(bad("member length too small for its rows"));
        }
        // A chunk frame takes at least 25 bytes: rows the member cannot
        // hold are refused before any is allocated. Entry rows are bounded
        // by `member_len` above (16 bytes each): the files of a solid block
        // may take less than a byte each in its coded file table.
        if f.chunks > f.member_len / 25 {
            return Err(bad("more rows than the member can hold"));
        }
        Ok(f)
    }
}

/// What a member's index must say, accumulated by the streaming reader as
/// it reads the member's records (offsets relative to the member's first
/// header byte). Memory is constant: the rows are hashed, not kept.
pub struct Tracker {
    entries: u64,
    chunks: u64,
    entry_rows: Xxh3,
    chunk_rows: Xxh3,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            entries: 0,
            chunks: 0,
            entry_rows: Xxh3::new(),
            chunk_rows: Xxh3::new(),
        }
    }
}

impl Tracker {
    /// An entry record at `offset` in the member, or one file of a solid
    /// block record at `offset` (a row per file, format-spec 13.1).
    pub fn entry(&mut self, offset: u64) {
        self.entry_rows.update(&offset.to_le_bytes());
        self.entry_rows.update(&self.chunks.to_le_bytes());
        self.entries += 1;
    }

    /// A chunk frame at `offset` in the member.
    pub fn chunk(&mut self, offset: u64) {
        self.chunk_rows.update(&offset.to_le_bytes());
        self.chunks += 1;
    }
}

/// What follows a version 2 member's end record.
pub enum After {
    /// The end of the stream.
    Eof,
    /// The header bytes of the next member (its magic checked, nothing else).
    Member([u8; HEADER_LEN]),
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::ArchiveIo {
                    action: "read",
                    offset: offset + filled as u64,
                    source,
                });
            }
        }
    }
    Ok(filled)
}

/// Read what follows a version 2 member's end record: nothing, or an index
/// (checked against `tracker`) followed by nothing or by the next member's
/// header, or the next member's header directly. `pos` is the stream offset
/// after the end record and `member_start` the member's first byte. Returns
/// what follows and the stream offset after what was consumed.
pub fn after_end<R: Read>(
    inner: &mut R,
    tracker: Tracker,
    member_start: u64,
    mut pos: u64,
) -> Result<(After, u64)> {
    let mut first = [0u8; 1];
    if read_some(inner, &mut first, pos)? == 0 {
        return Ok((After::Eof, pos));
    }
    if first[0] == TAG_INDEX {
        pos = read_index(inner, tracker, member_start, pos)?;
        if read_some(inner, &mut first, pos)? == 0 {
            return Ok((After::Eof, pos));
        }
    }
    // Anything but a header's magic here is trailing data: a valid archive
    // followed by garbage stays rejected.
    let mut b = [0u8; HEADER_LEN];
    b[0] = first[0];
    let got = 1 + read_some(inner, &mut b[1..], pos + 1)?;
    if got < MAGIC.len() || b[..MAGIC.len()] != MAGIC {
        return Err(corrupt(pos, CorruptKind::TrailingData));
    }
    if got < HEADER_LEN {
        return Err(corrupt(
            pos + got as u64,
            CorruptKind::Truncated("a member header"),
        ));
    }
    Ok((After::Member(b), pos))
}

/// Read an index whose tag (at `pos`) was consumed, checking it against
/// what the member held. Returns the offset after it.
fn read_index<R: Read>(
    inner: &mut R,
    tracker: Tracker,
    member_start: u64,
    pos: u64,
) -> Result<u64> {
    let at = |kind| corrupt(pos, kind);
    let bad = |what: &str| at(CorruptKind::BadIndex(what.to_string()));
    let len = index_len(tracker.entries, tracker.chunks).ok_or_else(|| bad("too many rows"))?;
    let mut whole = Xxh3::new();
    whole.update(&[TAG_INDEX]);
    let mut reserved = [0u8; INDEX_PREFIX_LEN - 1];
    if read_some(inner, &mut reserved, pos + 1)? < reserved.len() {
        return Err(at(CorruptKind::Truncated("an index")));
    }
    if reserved != [0; INDEX_PREFIX_LEN - 1] {
        return Err(at(CorruptKind::ReservedBits {
            field: "index reserved",
            value: 0,
        }));
    }
    whole.update(&reserved);
    let mut off = pos + INDEX_PREFIX_LEN as u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut hash_section = |n: u64, off: &mut u64, whole: &mut Xxh3| -> Result<u64> {
        let mut h = Xxh3::new();
        let mut left = n;
        while left > 0 {
            let take = left.min(buf.len() as u64) as usize;
            if read_some(inner, &mut buf[..take], *off)? < take {
                // The member said how many rows there are: fewer is a
                // short (or absent) index.
                return Err(corrupt(*off, CorruptKind::Truncated("an index")));
            }
            h.update(&buf[..take]);
            whole.update(&buf[..take]);
            *off += take as u64;
            left -= take as u64;
        }
        Ok(h.digest())
    };
    let entry_rows = hash_section(tracker.entries * ENTRY_ROW_LEN as u64, &mut off, &mut whole)?;
    if entry_rows != tracker.entry_rows.digest() {
        return Err(bad("entry rows differ from the member's entry records"));
    }
    let chunk_rows = hash_section(tracker.chunks * CHUNK_ROW_LEN as u64, &mut off, &mut whole)?;
    if chunk_rows != tracker.chunk_rows.digest() {
        return Err(bad("chunk rows differ from the member's chunk frames"));
    }
    let mut fb = [0u8; FOOTER_LEN];
    if read_some(inner, &mut fb, off)? < FOOTER_LEN {
        return Err(corrupt(off, CorruptKind::Truncated("an index footer")));
    }
    let footer = Footer::parse(&fb).map_err(|k| corrupt(off, k))?;
    let end = pos + len;
    let checks = [
        (footer.entries == tracker.entries, "footer entry count"),
        (footer.chunks == tracker.chunks, "footer chunk count"),
        (
            footer.member_len == end - member_start,
            "footer member length",
        ),
        (footer.rows_xxh3 == whole.digest(), "rows checksum"),
    ];
    for (ok, what) in checks {
        if !ok {
            return Err(corrupt(
                off,
                CorruptKind::BadIndex(format!("{what} mismatch")),
            ));
        }
    }
    Ok(end)
}

/// The index of a member `member_len` bytes long (before its index) with
/// entry rows `(offset, first_chunk)` and chunk rows `offset`, offsets from
/// the member's first byte.
pub fn index_bytes(entry_rows: &[(u64, u64)], chunk_rows: &[u64], member_len: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(
        INDEX_PREFIX_LEN
            + ENTRY_ROW_LEN * entry_rows.len()
            + CHUNK_ROW_LEN * chunk_rows.len()
            + FOOTER_LEN,
    );
    b.push(TAG_INDEX);
    b.extend_from_slice(&[0; INDEX_PREFIX_LEN - 1]);
    for &(off, first) in entry_rows {
        b.extend_from_slice(&off.to_le_bytes());
        b.extend_from_slice(&first.to_le_bytes());
    }
    for &off in chunk_rows {
        b.extend_from_slice(&off.to_le_bytes());
    }
    let footer = Footer {
        entries: entry_rows.len() as u64,
        chunks: chunk_rows.len() as u64,
        member_len: member_len + (b.len() + FOOTER_LEN) as u64,
        rows_xxh3: xxh3_64(&b),
    };
    b.extend_from_slice(&footer.to_bytes());
    b
}

/// Whether `next` may follow a member of an archive whose first member has
/// header `first` (format-spec 12.2).
pub fn member_rules(first: &Header, next: &Header) -> std::result::Result<(), CorruptKind> {
    if !next.model_hash.is_none() && next.model_hash != first.model_hash {
        return Err(CorruptKind::BadMember(
            "names a model the first member does not (put a member that names it first)",
        ));
    }
    if next.max_chunk > first.max_chunk {
        return Err(CorruptKind::BadMember(
            "max_chunk larger than the first member's",
        ));
    }
    Ok(())
}
