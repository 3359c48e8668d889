//! Indexed archive files (format-spec sections 12 and 13, version 2): the
//! seeking side of the trailing index, and writing it.
//!
//! - Seeking: [`ArchiveIndex::open`] walks the members back from the end
//!   of the file through their indexes, [`ArchiveIndex::entries`] lists
//!   every entry by reading only its record and its chunks' frame headers
//!   (each checked: CRCs, tags, and that the records tile the member
//!   exactly), [`ArchiveIndex::plan`] splits the entries into contiguous
//!   ranges of about equal bytes, and [`ArchiveIndex::range_reader`] turns
//!   a range back into a complete archive stream, which
//!   [`crate::archive::extract::read_archive`] then reads with every check of the
//!   streaming reader. An index is only a map: every record it points to is
//!   parsed and checked before anything is written.
//! - Writing: [`seal`] turns a finished single-member archive file into a
//!   version 2 member with an index (rewriting the header's version field,
//!   which the stream checksum does not cover, and appending the index), and
//!   [`concatenate`] joins sealed members into one archive.
//!
//! The index's bytes and the checks a stream reader makes of it are
//! [`crate::format::member`]'s, below the [`crate::container::reader`] this module uses.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::container::reader::{ArchiveReader, Event, Limits};
use crate::format::error::{CorruptKind, Error, Result, corrupt};
use crate::format::member::{
    CHUNK_ROW_LEN, CONCAT_VERSION, ENTRY_ROW_LEN, FOOTER_LEN, Footer, INDEX_MAGIC,
    INDEX_PREFIX_LEN, TAG_INDEX, header_version, index_bytes, index_len, member_rules,
    with_version,
};
use crate::format::{
    BLOCK_FIXED_LEN, BlockFixed, END_LEN, ENTRY_FIXED_LEN, EndRecord, Entry, EntryFixed, EntryKind,
    FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, TAG_BLOCK, TAG_CHUNK, TAG_END, TAG_ENTRY,
    u64_at,
};

// ---- writing -----------------------------------------------------------------

/// What [`seal`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct Sealed {
    /// Entries indexed.
    pub entries: u64,
    /// Chunk frames indexed.
    pub chunks: u64,
    /// Bytes of the member with its index.
    pub len: u64,
}

/// Make the archive in `file` (one member, version 1 or 2, no index) a
/// version 2 member with a trailing index: read it through the streaming
/// reader (so nothing unchecked is indexed), set the header's version to 2
/// (the header is outside the stream checksum, format-spec 3) and append
/// the index. The file's position afterwards is its end.
pub fn seal(file: &mut File) -> Result<Sealed> {
    let sealed = seal_if(file, |_, _| true)?;
    sealed.ok_or_else(|| Error::internal("an index to be kept was not written"))
}

/// Whether an index of `index_len` bytes is worth adding to a member of
/// `member_len` bytes by default: where it is at most 1% of it. An index
/// costs 16 bytes per entry (a file of a solid block included) and 8 per
/// chunk, so on a tree of small files it costs more than their solid
/// block's records (about 3.4 bytes a file): on /usr/include's
/// x86_64-linux-gnu (415 headers) it was 6,952 bytes beside a 172,163-byte
/// archive (4.0%), while on the 126 files of the benchmark tree it is
/// about 3 KB beside 18 MB. Without one, `lza list` reads the archive
/// front to back, which for such sizes takes a moment.
pub fn worth_indexing(index_len: u64, member_len: u64) -> bool {
    index_len.saturating_mul(100) <= member_len
}

/// [`seal`] if `keep(index length, member length)` says so; otherwise the
/// file is left as it was (its position at its end) and `None` returned.
pub fn seal_if(file: &mut File, keep: impl FnOnce(u64, u64) -> bool) -> Result<Option<Sealed>> {
    let wio = |offset, source| Error::ArchiveIo {
        action: "write",
        offset,
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(|e| wio(0, e))?;
    let mut head = [0u8; HEADER_LEN];
    file.read_exact(&mut head)
        .map_err(|source| Error::ArchiveIo {
            action: "read",
            offset: 0,
            source,
        })?;
    if header_version(&head) >= CONCAT_VERSION {
        // A version 2 member may already carry an index or a next member:
        // sealing is for what `create` just wrote.
        let idx = ArchiveIndex::open(&*file)?;
        if idx.is_some() {
            return Err(corrupt(
                0,
                CorruptKind::BadIndex("already has an index".into()),
            ));
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| wio(0, e))?;
    let mut entry_rows = Vec::new();
    let mut chunk_rows = Vec::new();
    let mut reader = ArchiveReader::new(io::BufReader::new(&mut *file), Limits::default())?;
    let end = loop {
        match reader.next_event()? {
            Some(Event::Entry { offset, .. }) => {
                entry_rows.push((offset, chunk_rows.len() as u64));
            }
            Some(Event::Chunk(c)) => chunk_rows.push(c.offset),
            Some(Event::Block { offset, files }) => {
                // A row per file, all pointing at the block record
                // (format-spec 13.1).
                let before = chunk_rows.len() as u64;
                entry_rows.extend(files.iter().map(|_| (offset, before)));
            }
            Some(Event::End(end)) => break end,
            None => return Err(Error::internal("reader ended without an end record")),
        }
    };
    drop(reader);
    let member_len = end.stream_len + END_LEN as u64;
    if member_len != file.metadata().map_err(|e| wio(0, e))?.len()
        || end.entries != entry_rows.len() as u64
    {
        return Err(corrupt(
            0,
            CorruptKind::BadIndex("only a single-member archive can be sealed".into()),
        ));
    }
    let bytes = index_bytes(&entry_rows, &chunk_rows, member_len);
    if !keep(bytes.len() as u64, member_len) {
        file.seek(SeekFrom::End(0))
            .map_err(|e| wio(member_len, e))?;
        return Ok(None);
    }
    file.write_all_at(&with_version(head, CONCAT_VERSION), 0)
        .map_err(|e| wio(0, e))?;
    file.seek(SeekFrom::End(0))
        .map_err(|e| wio(member_len, e))?;
    file.write_all(&bytes).map_err(|e| wio(member_len, e))?;
    file.flush().map_err(|e| wio(member_len, e))?;
    Ok(Some(Sealed {
        entries: end.entries,
        chunks: end.chunks,
        len: member_len + bytes.len() as u64,
    }))
}

/// Write the archive files `parts`, in order, one after another to `out`
/// (what `cat` does), after checking that each is a version 2 archive whose
/// members carry indexes. Returns the bytes written.
pub fn concatenate(out: &mut dyn Write, parts: &[&Path]) -> Result<u64> {
    let mut total = 0u64;
    for p in parts {
        let mut f = File::open(p).map_err(|e| Error::io(*p, e))?;
        if ArchiveIndex::open(&f)?.is_none() {
            return Err(Error::BadInput {
                path: p.to_path_buf(),
                reason: "not an indexed version 2 archive (seal it first)".into(),
            });
        }
        total += io::copy(&mut f, out).map_err(|source| Error::ArchiveIo {
            action: "write",
            offset: total,
            source,
        })?;
    }
    Ok(total)
}

// ---- seeking ------------------------------------------------------------------

/// One member found through its index; offsets are absolute in the file.
#[derive(Debug, Clone)]
pub struct MemberIndex {
    /// Offset of the member's header.
    pub start: u64,
    /// The member's header bytes.
    pub header_bytes: [u8; HEADER_LEN],
    /// The parsed header.
    pub header: Header,
    /// Offset of the end record.
    pub end_offset: u64,
    /// The end record.
    pub end: EndRecord,
    /// Per entry: its record's offset and its first chunk's row.
    pub entry_rows: Vec<(u64, u64)>,
    /// Per chunk: its frame's offset.
    pub chunk_rows: Vec<u64>,
}

/// An entry found through an index, its record checked.
#[derive(Debug, Clone)]
pub struct IndexedEntry {
    /// The entry.
    pub entry: Entry,
    /// Which member holds it.
    pub member: usize,
    /// Offset of its record (for a file of a solid block: the block's).
    pub offset: u64,
    /// Offset of the next record (the next entry or the end record): the
    /// entry's chunks (or its block's) lie before it.
    pub next: u64,
    /// Its chunk frames (of a block's file: the block's).
    pub chunks: u64,
    /// Where it lies in a solid block, if it is a block's file.
    pub block: Option<InBlock>,
}

/// A file's place in its solid block (format-spec 4a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InBlock {
    /// Its position in the block's file table.
    pub file: u32,
    /// The block's files.
    pub files: u32,
    /// The block's `raw_len`.
    pub raw_len: u64,
}

impl IndexedEntry {
    /// Archive bytes this entry stands for: its record and frames; a
    /// block's bytes count once, on its first file.
    pub fn bytes(&self) -> u64 {
        match self.block {
            Some(b) if b.file > 0 => 0,
            _ => self.next - self.offset,
        }
    }
}

/// Every member of an indexed archive file, first to last.
#[derive(Debug, Clone)]
pub struct ArchiveIndex {
    /// The members.
    pub members: Vec<MemberIndex>,
}

/// Random access to an archive: a file, or bytes in memory.
pub trait ReadAt {
    /// Read up to `buf.len()` bytes at `offset` (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether it holds no byte.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
}

fn pread<F: ReadAt + ?Sized>(f: &F, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match f.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => {
                return Err(corrupt(offset, CorruptKind::Truncated("an indexed record")));
            }
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
    Ok(())
}

impl ArchiveIndex {
    /// Find the members of the archive file `f` through their indexes,
    /// from the last back to the first, checking each index's footer,
    /// checksum, row order and bounds, and the header and end record it
    /// leads to. `None` when a member has no index (then only a read front
    /// to back works, and checks everything); an error when an index is
    /// there but wrong.
    pub fn open<F: ReadAt + ?Sized>(f: &F) -> Result<Option<ArchiveIndex>> {
        let len = f.len().map_err(|source| Error::ArchiveIo {
            action: "read",
            offset: 0,
            source,
        })?;
        let mut members = Vec::new();
        let mut pos = len;
        while pos > 0 {
            if pos < (HEADER_LEN + END_LEN + INDEX_PREFIX_LEN + FOOTER_LEN) as u64 {
                // Too short for a member with an index (an archive of an
                // empty tree without one is 85 bytes): no index, and the
                // stream is read front to back, which checks everything.
                return Ok(None);
            }
            let foot_at = pos - FOOTER_LEN as u64;
            let mut fb = [0u8; FOOTER_LEN];
            pread(f, &mut fb, foot_at)?;
            if fb[40..48] != INDEX_MAGIC {
                // This member has no index (a member written to a pipe, or
                // a version 1 one): the stream is read front to back.
                return Ok(None);
            }
            let footer = Footer::parse(&fb).map_err(|k| corrupt(foot_at, k))?;
            // The rows are read into memory: 16 bytes per entry and 8 per
            // chunk, and never more entries than a reader accepts.
            let max_entries = Limits::default().max_entries;
            if footer.entries > max_entries {
                return Err(corrupt(foot_at, CorruptKind::TooManyEntries(max_entries)));
            }
            if footer.member_len > pos {
                return Err(corrupt(
                    foot_at,
                    CorruptKind::BadIndex("member length reaches before the file".into()),
                ));
            }
            let m = Self::member(f, pos - footer.member_len, &footer, foot_at)?;
            pos = m.start;
            members.push(m);
        }
        members.reverse();
        check_members(&members)?;
        Ok(Some(ArchiveIndex { members }))
    }

    fn member<F: ReadAt + ?Sized>(
        f: &F,
        start: u64,
        footer: &Footer,
        foot_at: u64,
    ) -> Result<MemberIndex> {
        let bad = |at: u64, what: &str| corrupt(at, CorruptKind::BadIndex(what.to_string()));
        let ilen = index_len(footer.entries, footer.chunks).expect("checked by Footer::parse");
        let index_at = start + footer.member_len - ilen;
        let end_offset = index_at - END_LEN as u64;
        let mut hb = [0u8; HEADER_LEN];
        pread(f, &mut hb, start)?;
        let header = Header::parse(&hb).map_err(|k| corrupt(start, k))?;
        if header_version(&hb) < CONCAT_VERSION {
            return Err(bad(start, "indexed member is not version 2"));
        }
        let mut eb = [0u8; END_LEN];
        pread(f, &mut eb, end_offset)?;
        if eb[0] != TAG_END {
            return Err(bad(end_offset, "no end record before the index"));
        }
        let end = EndRecord::parse(&eb).map_err(|k| corrupt(end_offset, k))?;
        if end.entries != footer.entries
            || end.chunks != footer.chunks
            || end.stream_len != end_offset - start
        {
            return Err(bad(end_offset, "end record disagrees with the index"));
        }
        let mut rows = vec![0u8; ilen as usize - FOOTER_LEN];
        pread(f, &mut rows, index_at)?;
        if rows[0] != TAG_INDEX || rows[1..INDEX_PREFIX_LEN] != [0; INDEX_PREFIX_LEN - 1] {
            return Err(bad(index_at, "bad index tag or reserved bytes"));
        }
        if xxh3_64(&rows) != footer.rows_xxh3 {
            return Err(corrupt(
                foot_at,
                CorruptKind::ChecksumMismatch("index rows"),
            ));
        }
        let e_end = INDEX_PREFIX_LEN + ENTRY_ROW_LEN * footer.entries as usize;
        let entry_rows: Vec<(u64, u64)> = rows[INDEX_PREFIX_LEN..e_end]
            .chunks_exact(ENTRY_ROW_LEN)
            .map(|r| (start + u64_at(r, 0), u64_at(r, 8)))
            .collect();
        let chunk_rows: Vec<u64> = rows[e_end..]
            .chunks_exact(CHUNK_ROW_LEN)
            .map(|r| start + u64_at(r, 0))
            .collect();
        // Offsets from the member's start were added: a row beyond the
        // member overflowed or is caught by the bounds below.
        let first = start + HEADER_LEN as u64;
        // Offsets never decrease; equal ones are the files of one block
        // and share their first chunk too (the block's frames are checked
        // against the block record in `entries`).
        let mut prev_off = None;
        let mut prev_first = 0u64;
        for (i, &(off, fc)) in entry_rows.iter().enumerate() {
            let ok = off < end_offset
                && prev_off.is_none_or(|p| off > p || (off == p && fc == prev_first))
                && fc >= prev_first
                && fc <= footer.chunks
                && (i > 0 || (off == first && fc == 0));
            if !ok {
                return Err(bad(
                    index_at,
                    &format!("entry row {i} out of order or bounds"),
                ));
            }
            prev_off = Some(off);
            prev_first = fc;
        }
        if entry_rows.is_empty() && (footer.chunks > 0 || end_offset != first) {
            return Err(bad(index_at, "records but no entry rows"));
        }
        let mut prev = first;
        for (j, &off) in chunk_rows.iter().enumerate() {
            if off <= prev || off >= end_offset {
                return Err(bad(
                    index_at,
                    &format!("chunk row {j} out of order or bounds"),
                ));
            }
            prev = off;
        }
        Ok(MemberIndex {
            start,
            header_bytes: hb,
            header,
            end_offset,
            end,
            entry_rows,
            chunk_rows,
        })
    }

    /// Entries of all members.
    pub fn entry_count(&self) -> u64 {
        self.members.iter().map(|m| m.entry_rows.len() as u64).sum()
    }

    /// Data bytes of all members (from their end records).
    pub fn raw_bytes(&self) -> u64 {
        self.members.iter().map(|m| m.end.raw_bytes).sum()
    }

    /// Every entry, read through the index: each entry record, each solid
    /// block record and each chunk frame header is read and checked (tag,
    /// CRC, reserved bits, lengths), the records must tile each member
    /// exactly from its header to its end record, a file's chunks must add
    /// up to its size (a block's to its `raw_len` and `data_len`), the rows
    /// of a block's files must be consecutive and as many as its files, and
    /// the paths must obey the rules across the whole archive (format-spec
    /// 4). Payloads are not read: their checksums are checked on
    /// extraction.
    pub fn entries<F: ReadAt + ?Sized>(&self, f: &F, limits: Limits) -> Result<Vec<IndexedEntry>> {
        let mut out = Vec::with_capacity(self.entry_count().min(1 << 20) as usize);
        let mut paths = PathRules::default();
        let mut raw_total = 0u64;
        for (mi, m) in self.members.iter().enumerate() {
            let rows = &m.entry_rows;
            let mut i = 0;
            while i < rows.len() {
                let (off, fc) = rows[i];
                let rec = read_record_at(f, off, m.header.max_chunk)?;
                let n = rec.files.len();
                let name = rec.files[0].path.clone();
                let loc = |kind| Error::Corrupt {
                    offset: off,
                    entry: Some(name.clone()),
                    chunk: None,
                    kind,
                };
                if let Some(b) = &rec.block {
                    if rows.len() - i < n || rows[i..i + n].iter().any(|&r| r != (off, fc)) {
                        return Err(loc(CorruptKind::BadIndex(format!(
                            "entry row {i}: fewer consecutive rows at the block record than its {n} files"
                        ))));
                    }
                    if rows.get(i + n).is_some_and(|&(o, _)| o == off) {
                        return Err(loc(CorruptKind::BadIndex(format!(
                            "entry row {i}: more rows at the block record than its {n} files"
                        ))));
                    }
                    if b.chunks as u64 > m.chunk_rows.len() as u64 - fc {
                        return Err(loc(CorruptKind::BadIndex(
                            "block has more chunks than the index has rows".into(),
                        )));
                    }
                } else if rows.get(i + 1).is_some_and(|&(o, _)| o == off) {
                    return Err(loc(CorruptKind::BadIndex(format!(
                        "entry row {}: same offset as an entry record",
                        i + 1
                    ))));
                }
                let (next, next_fc) = match rows.get(i + n) {
                    Some(&(o, nfc)) => (o, nfc),
                    None => (m.end_offset, m.chunk_rows.len() as u64),
                };
                if out.len() as u64 + n as u64 > limits.max_entries {
                    return Err(loc(CorruptKind::TooManyEntries(limits.max_entries)));
                }
                let data_at = off + rec.len;
                let mut at = data_at;
                let mut got = 0u64;
                for (j, &c) in m.chunk_rows[fc as usize..next_fc as usize]
                    .iter()
                    .enumerate()
                {
                    let chunk_at = |kind| Error::Corrupt {
                        offset: c,
                        entry: Some(name.clone()),
                        chunk: Some(j as u64),
                        kind,
                    };
                    if c != at || (rec.block.is_none() && rec.files[0].kind != EntryKind::File) {
                        return Err(chunk_at(CorruptKind::BadIndex(
                            "chunk row does not follow the previous record".into(),
                        )));
                    }
                    let mut b = [0u8; FRAME_HEADER_LEN];
                    pread(f, &mut b, c)?;
                    if b[0] != TAG_CHUNK {
                        return Err(chunk_at(CorruptKind::BadIndex(
                            "chunk row does not point at a chunk frame".into(),
                        )));
                    }
                    let h = FrameHeader::parse(&b, m.header.max_chunk).map_err(chunk_at)?;
                    got += h.raw_len as u64;
                    at = c + FRAME_HEADER_LEN as u64 + h.stored_len as u64;
                }
                if at != next {
                    return Err(loc(CorruptKind::BadIndex(
                        "records do not reach the next indexed record".into(),
                    )));
                }
                let size = match &rec.block {
                    Some(b) => {
                        if next_fc - fc != b.chunks as u64 || at - data_at != b.data_len {
                            return Err(loc(CorruptKind::BadIndex(
                                "block's chunk rows differ from its chunks and data_len".into(),
                            )));
                        }
                        b.raw_len
                    }
                    None => rec.files[0].size,
                };
                if got != size {
                    return Err(loc(CorruptKind::FileTooShort {
                        declared: size,
                        got,
                    }));
                }
                raw_total += got;
                if raw_total > limits.max_size {
                    return Err(Error::Limit(format!(
                        "archive holds more than {} bytes of data (see --max-size)",
                        limits.max_size
                    )));
                }
                for (k, entry) in rec.files.into_iter().enumerate() {
                    paths.add(&entry).map_err(|kind| Error::Corrupt {
                        offset: off,
                        entry: Some(entry.path.clone()),
                        chunk: None,
                        kind,
                    })?;
                    out.push(IndexedEntry {
                        entry,
                        member: mi,
                        offset: off,
                        next,
                        chunks: next_fc - fc,
                        block: rec.block.as_ref().map(|b| InBlock {
                            file: k as u32,
                            files: n as u32,
                            raw_len: b.raw_len,
                        }),
                    });
                }
                i += n;
            }
        }
        Ok(out)
    }

    /// Split `entries` (from [`ArchiveIndex::entries`]) into at most
    /// `parts` contiguous ranges of about equal archive bytes. A hard link
    /// stays in the range of its target, which must be extracted before it,
    /// and a solid block's files stay in one range: a cut inside a block
    /// would make two ranges decode the whole block.
    pub fn plan(entries: &[IndexedEntry], parts: usize) -> Vec<Range<usize>> {
        let n = entries.len();
        if n == 0 {
            return Vec::new();
        }
        // blocked[i]: no cut just before entry i.
        let mut depth = vec![0i64; n + 1];
        let mut first_file: HashMap<&str, usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            if e.block.is_some_and(|b| b.file > 0) {
                depth[i] += 1;
                depth[i + 1] -= 1;
            }
            match e.entry.kind {
                EntryKind::File => {
                    first_file.entry(e.entry.path.as_str()).or_insert(i);
                }
                EntryKind::Hardlink => {
                    if let Some(&t) = first_file.get(e.entry.link.as_str()) {
                        depth[t + 1] += 1;
                        depth[i + 1] -= 1;
                    }
                }
                _ => {}
            }
        }
        let total: u64 = entries.iter().map(IndexedEntry::bytes).sum();
        let target = total.div_ceil(parts.max(1) as u64).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        let mut acc = 0u64;
        let mut blocked = 0i64;
        for i in 0..n {
            blocked += depth[i];
            if i > start && acc >= target && blocked == 0 && out.len() + 1 < parts {
                out.push(start..i);
                start = i;
                acc = 0;
            }
            acc += entries[i].bytes();
        }
        out.push(start..n);
        out
    }

    /// The entries `range` of `entries` as a complete archive stream: the
    /// first member's header, each selected entry's record and chunk
    /// frames as they are in `f`, and an end record computed over them.
    /// With `only` set, only entries of that kind are passed; without it,
    /// every entry but directories (the way a distributed extraction runs:
    /// the files in parallel, then the directories once, so that their
    /// times are set last). Reading it with
    /// [`crate::archive::extract::read_archive`] checks every record again.
    ///
    /// A solid block is passed whole when any of its files is selected:
    /// where `range` starts or ends inside a block, the stream holds files
    /// outside the range too, and [`RangeReader::wanted`] names the ones
    /// selected, for a [`crate::archive::select::RangeFilter`] in front of the sink
    /// (the block is decoded once, only the selected files are written).
    pub fn range_reader<'a, F: ReadAt + ?Sized>(
        &'a self,
        f: &'a F,
        entries: &'a [IndexedEntry],
        range: Range<usize>,
        only: Option<EntryKind>,
    ) -> RangeReader<'a, F> {
        let pick = entries[range]
            .iter()
            .filter(|e| match only {
                Some(k) => e.entry.kind == k,
                None => e.entry.kind != EntryKind::Directory,
            })
            .collect::<Vec<_>>();
        // One piece per record: a block's files share theirs.
        let mut pieces: Vec<(u64, u64, u64)> = Vec::new();
        let (mut chunks, mut raw_bytes) = (0, 0);
        let mut partial = false;
        let mut in_block = 0u32;
        for (k, e) in pick.iter().enumerate() {
            let same = k > 0 && pick[k - 1].offset == e.offset && e.block.is_some();
            if let Some(b) = e.block {
                in_block = if same { in_block + 1 } else { 1 };
                let last = pick.get(k + 1).is_none_or(|n| n.offset != e.offset);
                partial |= last && in_block != b.files;
            }
            if same {
                continue;
            }
            let (n, raw) = match e.block {
                Some(b) => (b.files as u64, b.raw_len),
                None => (1, e.entry.size),
            };
            pieces.push((e.offset, e.next, n));
            chunks += e.chunks;
            raw_bytes += raw;
        }
        let wanted = partial.then(|| pick.iter().map(|e| e.entry.path.clone()).collect());
        let first = &self.members[0];
        RangeReader {
            f,
            head: first.header_bytes.to_vec(),
            head_at: 0,
            pick: pieces,
            wanted,
            at: 0,
            pos: None,
            hasher: Xxh3::new(),
            stream_len: HEADER_LEN as u64,
            tail: None,
            entries: 0,
            chunks,
            raw_bytes,
        }
    }
}

/// The rules of format-spec 12.2 that span members: a later member's
/// model hash is zero or the first member's, and its `max_chunk` is at
/// most the first member's.
fn check_members(members: &[MemberIndex]) -> Result<()> {
    let Some(first) = members.first() else {
        return Ok(());
    };
    for m in &members[1..] {
        member_rules(&first.header, &m.header).map_err(|k| corrupt(m.start, k))?;
    }
    Ok(())
}

fn record_len(e: &Entry) -> u64 {
    (ENTRY_FIXED_LEN + e.path.len() + e.link.len() + 4) as u64
}

/// The record an entry row points at: an entry record, or a solid block
/// record with its files.
struct Record {
    /// One entry, or the block's files in table order.
    files: Vec<Entry>,
    /// The block record's fixed part, for a block.
    block: Option<BlockFixed>,
    /// Bytes of the record (before its chunk frames).
    len: u64,
}

fn read_record_at<F: ReadAt + ?Sized>(f: &F, off: u64, max_chunk: u32) -> Result<Record> {
    let mut tag = [0u8; 1];
    pread(f, &mut tag, off)?;
    match tag[0] {
        TAG_ENTRY => {
            let mut fixed = [0u8; ENTRY_FIXED_LEN];
            pread(f, &mut fixed, off)?;
            let parsed = EntryFixed::parse(&fixed).map_err(|k| corrupt(off, k))?;
            let mut rest = vec![0u8; parsed.rest_len()];
            pread(f, &mut rest, off + ENTRY_FIXED_LEN as u64)?;
            let e = parsed.finish(&fixed, &rest).map_err(|k| corrupt(off, k))?;
            Ok(Record {
                len: record_len(&e),
                files: vec![e],
                block: None,
            })
        }
        TAG_BLOCK => {
            let mut fixed = [0u8; BLOCK_FIXED_LEN];
            pread(f, &mut fixed, off)?;
            let parsed = BlockFixed::parse(&fixed, max_chunk).map_err(|k| corrupt(off, k))?;
            // The table is at most 16 MiB (checked by `parse`).
            let mut rest = vec![0u8; parsed.rest_len()];
            pread(f, &mut rest, off + BLOCK_FIXED_LEN as u64)?;
            let files = parsed.finish(&rest).map_err(|k| corrupt(off, k))?;
            Ok(Record {
                files: files.iter().map(|b| b.to_entry()).collect(),
                len: (BLOCK_FIXED_LEN + rest.len()) as u64,
                block: Some(parsed),
            })
        }
        _ => Err(corrupt(
            off,
            CorruptKind::BadIndex(
                "entry row does not point at an entry or solid block record".into(),
            ),
        )),
    }
}

/// The path rules of format-spec 4 over a whole listing: unique paths, no
/// entry below a file or link, no file or link above an earlier entry, hard
/// links to earlier files. Memory: each path and each ancestor once.
#[derive(Default)]
struct PathRules {
    /// Path -> whether it is a directory (explicit or implied).
    seen: HashMap<String, Seen>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    ImplicitDir,
    Dir,
    File,
    Other,
}

impl PathRules {
    fn add(&mut self, e: &Entry) -> std::result::Result<(), CorruptKind> {
        let conflict = |reason| CorruptKind::PathConflict {
            path: e.path.clone(),
            reason,
        };
        for (i, _) in e.path.match_indices('/') {
            let anc = &e.path[..i];
            match self.seen.get(anc) {
                Some(Seen::File | Seen::Other) => {
                    return Err(conflict("an ancestor is a file or link entry"));
                }
                Some(_) => {}
                None => {
                    self.seen.insert(anc.to_string(), Seen::ImplicitDir);
                }
            }
        }
        if e.kind == EntryKind::Hardlink && self.seen.get(e.link.as_str()) != Some(&Seen::File) {
            return Err(CorruptKind::HardlinkTarget(e.link.clone()));
        }
        let kind = match e.kind {
            EntryKind::Directory => Seen::Dir,
            EntryKind::File => Seen::File,
            _ => Seen::Other,
        };
        match self.seen.get_mut(e.path.as_str()) {
            None => {
                self.seen.insert(e.path.clone(), kind);
                Ok(())
            }
            Some(s @ Seen::ImplicitDir) if kind == Seen::Dir => {
                *s = Seen::Dir;
                Ok(())
            }
            Some(Seen::ImplicitDir) => Err(conflict("earlier entries lie below it")),
            Some(_) => Err(CorruptKind::DuplicatePath(e.path.clone())),
        }
    }
}

/// A range of an indexed archive as a complete archive stream; see
/// [`ArchiveIndex::range_reader`].
pub struct RangeReader<'a, F: ReadAt + ?Sized> {
    f: &'a F,
    head: Vec<u8>,
    head_at: usize,
    /// Per record passed: its offset, the next record's, its entries.
    pick: Vec<(u64, u64, u64)>,
    wanted: Option<HashSet<String>>,
    at: usize,
    /// Position inside `pick[at]`.
    pos: Option<u64>,
    hasher: Xxh3,
    stream_len: u64,
    tail: Option<([u8; END_LEN], usize)>,
    entries: u64,
    chunks: u64,
    raw_bytes: u64,
}

impl<F: ReadAt + ?Sized> RangeReader<'_, F> {
    /// The paths of the selected entries when the stream holds others too
    /// (a range that starts or ends inside a solid block); `None` when it
    /// holds exactly the selected entries.
    pub fn wanted(&self) -> Option<HashSet<String>> {
        self.wanted.clone()
    }
}
impl<F: ReadAt + ?Sized> Read for RangeReader<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.head_at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.head_at);
            buf[..n].copy_from_slice(&self.head[self.head_at..self.head_at + n]);
            self.head_at += n;
            return Ok(n);
        }
        while self.at < self.pick.len() {
            let (start, end, n) = self.pick[self.at];
            let pos = *self.pos.get_or_insert(start);
            if pos >= end {
                self.at += 1;
                self.pos = None;
                self.entries += n;
                continue;
            }
            let n = (buf.len() as u64).min(end - pos) as usize;
            let got = self.f.read_at(&mut buf[..n], pos)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "archive file shorter than its index",
                ));
            }
            self.hasher.update(&buf[..got]);
            self.pos = Some(pos + got as u64);
            self.stream_len += got as u64;
            return Ok(got);
        }
        // The end record: the counts the reader will find if the records
        // are what the index says (it checks them), and the checksum of the
        // bytes passed (the records' own CRCs and the chunks' checksums are
        // what vouch for them).
        let (tail, done) = self.tail.get_or_insert_with(|| {
            (
                EndRecord {
                    entries: self.entries,
                    chunks: self.chunks,
                    raw_bytes: self.raw_bytes,
                    stream_len: self.stream_len,
                    stream_xxh3: self.hasher.digest(),
                }
                .to_bytes(),
                0,
            )
        });
        let n = buf.len().min(END_LEN - *done);
        buf[..n].copy_from_slice(&tail[*done..*done + n]);
        *done += n;
        Ok(n)
    }
}
