//! Sequential, strict archive reader.
//!
//! Reads an archive front to back from any [`Read`] (a pipe included), checks
//! every rule of `format-spec.md` that spans records (chunks belong to files
//! and add up to their sizes, paths are unique and never below a file or
//! link, hard links name earlier files, the end record matches) and yields
//! [`Event`]s. No single allocation is larger than the header's `max_chunk`
//! bound requires, except the tables of the path trie (`PathTrie`), whose
//! memory is linear in the bytes of the archive's paths. Chunk payloads are
//! returned still coded: decoding is the caller's, so that it can run in
//! parallel.

use std::collections::HashMap;
use std::collections::hash_map::{Entry as MapEntry, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::io::{self, Read};

use xxhash_rust::xxh3::Xxh3;

use crate::format::error::{CorruptKind, Error, Result};
use crate::format::{
    BLOCK_FIXED_LEN, BlockFixed, CodecId, END_LEN, ENTRY_FIXED_LEN, EndRecord, Entry, EntryFixed,
    EntryKind, FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, Header, MAX_V1_CM_PRESET, TAG_BLOCK,
    TAG_CHUNK, TAG_END, TAG_ENTRY, VERSION, cm_preset_id,
};

/// Limits a reader enforces beyond the format's own.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries accepted.
    pub max_entries: u64,
    /// Most uncompressed bytes accepted in total.
    pub max_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1 << 24,
            max_size: u64::MAX,
        }
    }
}

/// One thing read from the archive.
#[derive(Debug)]
pub enum Event {
    /// An entry record.
    Entry {
        /// The entry.
        entry: Entry,
        /// Offset of its record.
        offset: u64,
    },
    /// A solid block record (format-spec 4a): its files, each a regular
    /// file entry, whose data follows, one file after another, in the
    /// chunk frames after it.
    Block {
        /// The block's files, in order.
        files: Vec<Entry>,
        /// Offset of the record.
        offset: u64,
    },
    /// A chunk frame of the current file or block.
    Chunk(ChunkEvent),
    /// The end record, checked; nothing follows. After concatenated
    /// members (format-spec 12) it is the last member's, with `entries`,
    /// `chunks` and `raw_bytes` summed over all members and `stream_len`
    /// the offset of the last end record in the stream.
    End(EndRecord),
}

/// A chunk frame with its still-coded payload and where it was found.
#[derive(Debug)]
pub struct ChunkEvent {
    /// The frame header.
    pub header: FrameHeader,
    /// The coded payload.
    pub payload: Vec<u8>,
    /// Offset of the frame in the archive.
    pub offset: u64,
    /// Path of the file it belongs to (in a solid block: the file its
    /// first byte belongs to).
    pub entry: String,
    /// Index of the chunk within its file or block.
    pub index: u64,
}

impl ChunkEvent {
    /// A corruption error located at this chunk.
    pub fn corrupt(&self, kind: CorruptKind) -> Error {
        Error::Corrupt {
            offset: self.offset,
            entry: Some(self.entry.clone()),
            chunk: Some(self.index),
            kind,
        }
    }

    /// An internal error while decoding this chunk.
    pub fn internal(&self, msg: String) -> Error {
        Error::Internal {
            entry: Some(self.entry.clone()),
            chunk: Some(self.index),
            msg,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    ImplicitDir,
    Dir,
    File,
    Other,
}

/// The file (or solid block) whose chunk frames are being read.
struct OpenFile {
    path: String,
    size: u64,
    got: u64,
    chunks: u64,
    block: Option<OpenBlock>,
}

/// What a solid block's frames must still match.
struct OpenBlock {
    /// Start offset (within the block's data) and path of each file with
    /// data, in order.
    starts: Vec<(u64, String)>,
    chunks: u64,
    data_len: u64,
    data_got: u64,
    offset: u64,
}

impl OpenFile {
    /// The path of the file that holds byte `at` of the data.
    fn path_at(&self, at: u64) -> &str {
        match &self.block {
            Some(b) => {
                let i = b.starts.partition_point(|(s, _)| *s <= at);
                b.starts
                    .get(i.wrapping_sub(1))
                    .map_or(&self.path, |(_, p)| p)
            }
            None => &self.path,
        }
    }
}

/// The streaming reader; see the module docs.
pub struct ArchiveReader<R: Read> {
    inner: R,
    header: Header,
    offset: u64,
    hasher: Xxh3,
    limits: Limits,
    file: Option<OpenFile>,
    /// Every path seen and every ancestor of one.
    tree: PathTrie,
    /// What each node of `tree` is (by node id).
    kinds: Vec<Node>,
    entries: u64,
    chunks: u64,
    raw_bytes: u64,
    done: bool,
    /// Concatenated members and the index (format-spec 12, 13).
    member: Member,
}

/// Where the current member starts and what it has read.
struct Member {
    /// Its header's version: 1 ends the stream, 2 may be followed by an
    /// index and another member.
    version: u16,
    /// Offset of its header.
    start: u64,
    /// The first member's header, which later ones must agree with.
    first: Header,
    /// Entries, chunks and data bytes of the members before it.
    before: (u64, u64, u64),
    /// The index its records imply.
    tracker: crate::format::member::Tracker,
}

impl<R: Read> ArchiveReader<R> {
    /// Read and check the header.
    pub fn new(inner: R, limits: Limits) -> Result<Self> {
        let mut r = ArchiveReader {
            inner,
            header: Header {
                version: VERSION,
                max_chunk: 1,
                model_hash: Default::default(),
            },
            offset: 0,
            hasher: Xxh3::new(),
            limits,
            file: None,
            tree: PathTrie::new(),
            kinds: vec![Node::ImplicitDir],
            entries: 0,
            chunks: 0,
            raw_bytes: 0,
            done: false,
            member: Member {
                version: 1,
                start: 0,
                first: Header {
                    version: VERSION,
                    max_chunk: 1,
                    model_hash: Default::default(),
                },
                before: (0, 0, 0),
                tracker: Default::default(),
            },
        };
        let mut b = [0u8; HEADER_LEN];
        // The header has its own CRC; the stream checksum starts after it.
        r.read_raw(&mut b, "the header")?;
        r.offset = HEADER_LEN as u64;
        r.header = Header::parse(&b).map_err(|kind| Error::Corrupt {
            offset: 0,
            entry: None,
            chunk: None,
            kind,
        })?;
        r.member.version = crate::format::member::header_version(&b);
        r.member.first = r.header;
        Ok(r)
    }

    /// The archive's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn read_raw(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(Error::Corrupt {
                        offset: self.offset + filled as u64,
                        entry: self.file.as_ref().map(|f| f.path.clone()),
                        chunk: None,
                        kind: CorruptKind::Truncated(what),
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::ArchiveIo {
                        action: "read",
                        offset: self.offset + filled as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    fn read_hashed(&mut self, buf: &mut [u8], what: &'static str) -> Result<()> {
        self.read_raw(buf, what)?;
        self.hasher.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn corrupt(&self, offset: u64, kind: CorruptKind) -> Error {
        Error::Corrupt {
            offset,
            entry: self.file.as_ref().map(|f| f.path_at(f.got).to_owned()),
            chunk: None,
            kind,
        }
    }

    /// The next event, or `None` after the end record.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        // A record read without an event is an end record that another
        // member follows.
        while !self.done {
            if let Some(ev) = self.next_record()? {
                return Ok(Some(ev));
            }
        }
        Ok(None)
    }

    fn next_record(&mut self) -> Result<Option<Event>> {
        if self.done {
            return Ok(None);
        }
        let record_offset = self.offset;
        let mut tag = [0u8; 1];
        self.read_raw(&mut tag, "a record tag (end record missing)")?;
        if let Some(f) = &self.file
            && tag[0] != TAG_CHUNK
        {
            if f.got < f.size {
                return Err(self.corrupt(
                    record_offset,
                    CorruptKind::FileTooShort {
                        declared: f.size,
                        got: f.got,
                    },
                ));
            }
            if let Some(b) = &f.block
                && (b.chunks != f.chunks || b.data_len != b.data_got)
            {
                let offset = b.offset;
                return Err(self.corrupt(
                    offset,
                    CorruptKind::BadBlock(format!(
                        "{} chunks in {} bytes declared, {} chunks in {} bytes follow",
                        b.chunks, b.data_len, f.chunks, b.data_got
                    )),
                ));
            }
        }
        match tag[0] {
            TAG_BLOCK if self.header.version >= VERSION => {
                self.hasher.update(&tag);
                self.offset += 1;
                self.file = None;
                self.read_block(record_offset).map(Some)
            }
            TAG_ENTRY => {
                self.hasher.update(&tag);
                self.offset += 1;
                self.file = None;
                self.read_entry(record_offset).map(Some)
            }
            TAG_CHUNK => {
                self.hasher.update(&tag);
                self.offset += 1;
                self.read_chunk(record_offset).map(Some)
            }
            TAG_END => {
                self.file = None;
                self.read_end(record_offset)
            }
            t => Err(self.corrupt(record_offset, CorruptKind::UnknownTag(t))),
        }
    }

    fn read_entry(&mut self, offset: u64) -> Result<Event> {
        let mut fixed = [0u8; ENTRY_FIXED_LEN];
        fixed[0] = TAG_ENTRY;
        self.read_hashed(&mut fixed[1..], "an entry record")?;
        let at = |kind| Error::Corrupt {
            offset,
            entry: None,
            chunk: None,
            kind,
        };
        let parsed = EntryFixed::parse(&fixed).map_err(at)?;
        let mut rest = vec![0u8; parsed.rest_len()];
        self.read_hashed(&mut rest, "an entry record")?;
        let entry = parsed.finish(&fixed, &rest).map_err(at)?;
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(at(CorruptKind::TooManyEntries(self.limits.max_entries)));
        }
        self.add_to_tree(&entry, offset)?;
        self.member.tracker.entry(offset - self.member.start);
        if entry.kind == EntryKind::File {
            self.file = Some(OpenFile {
                path: entry.path.clone(),
                size: entry.size,
                got: 0,
                chunks: 0,
                block: None,
            });
        }
        Ok(Event::Entry { entry, offset })
    }

    fn read_block(&mut self, offset: u64) -> Result<Event> {
        let mut fixed = [0u8; BLOCK_FIXED_LEN];
        fixed[0] = TAG_BLOCK;
        self.read_hashed(&mut fixed[1..], "a solid block record")?;
        let at = |kind| Error::Corrupt {
            offset,
            entry: None,
            chunk: None,
            kind,
        };
        let parsed = BlockFixed::parse(&fixed, self.header.max_chunk).map_err(at)?;
        let mut rest = vec![0u8; parsed.rest_len()];
        self.read_hashed(&mut rest, "a solid block record")?;
        let files = parsed.finish(&rest).map_err(at)?;
        drop(rest);
        self.entries += files.len() as u64;
        if self.entries > self.limits.max_entries {
            return Err(at(CorruptKind::TooManyEntries(self.limits.max_entries)));
        }
        let mut starts = Vec::new();
        let mut start = 0u64;
        let files: Vec<Entry> = files.iter().map(|f| f.to_entry()).collect();
        for entry in &files {
            self.add_to_tree(entry, offset)?;
            // A row per file of the block, at the block record (format-spec 13.1).
            self.member.tracker.entry(offset - self.member.start);
            if entry.size > 0 {
                starts.push((start, entry.path.clone()));
            }
            start += entry.size;
        }
        self.file = Some(OpenFile {
            path: files[0].path.clone(),
            size: parsed.raw_len,
            got: 0,
            chunks: 0,
            block: Some(OpenBlock {
                starts,
                chunks: parsed.chunks as u64,
                data_len: parsed.data_len,
                data_got: 0,
                offset,
            }),
        });
        Ok(Event::Block { files, offset })
    }

    /// Check `entry`'s path against the earlier ones and record it. Costs
    /// O(path length) time and at most one trie node per new component.
    fn add_to_tree(&mut self, entry: &Entry, offset: u64) -> Result<()> {
        let corrupt = |kind| Error::Corrupt {
            offset,
            entry: Some(entry.path.clone()),
            chunk: None,
            kind,
        };
        let full = || {
            Error::Limit(format!(
                "more than {} distinct paths and path components",
                PathTrie::MAX_NODES - 1
            ))
        };
        let mut components = entry.path.split('/');
        let leaf = components
            .next_back()
            .expect("split yields at least one piece");
        let mut node = PathTrie::ROOT;
        for name in components {
            let (child, added) = self.tree.child_or_add(node, name).ok_or_else(full)?;
            if added {
                self.kinds.push(Node::ImplicitDir);
            } else if !matches!(self.kinds[child as usize], Node::Dir | Node::ImplicitDir) {
                return Err(corrupt(CorruptKind::PathConflict {
                    path: entry.path.clone(),
                    reason: "an ancestor is a file or link entry",
                }));
            }
            node = child;
        }
        let kind = match entry.kind {
            EntryKind::Directory => Node::Dir,
            EntryKind::File => Node::File,
            EntryKind::Symlink | EntryKind::Hardlink => Node::Other,
        };
        if entry.kind == EntryKind::Hardlink
            && self.tree.find(&entry.link).map(|n| self.kinds[n as usize]) != Some(Node::File)
        {
            return Err(corrupt(CorruptKind::HardlinkTarget(entry.link.clone())));
        }
        let (child, added) = self.tree.child_or_add(node, leaf).ok_or_else(full)?;
        if added {
            self.kinds.push(kind);
            return Ok(());
        }
        match self.kinds[child as usize] {
            Node::ImplicitDir if kind == Node::Dir => {
                self.kinds[child as usize] = Node::Dir;
                Ok(())
            }
            Node::ImplicitDir => Err(corrupt(CorruptKind::PathConflict {
                path: entry.path.clone(),
                reason: "earlier entries lie below it",
            })),
            _ => Err(corrupt(CorruptKind::DuplicatePath(entry.path.clone()))),
        }
    }

    fn read_chunk(&mut self, offset: u64) -> Result<Event> {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0] = TAG_CHUNK;
        self.read_hashed(&mut b[1..], "a chunk frame header")?;
        let header = FrameHeader::parse(&b, self.header.max_chunk)
            .map_err(|kind| self.corrupt(offset, kind))?;
        let Some(file) = &self.file else {
            return Err(self.corrupt(offset, CorruptKind::ChunkOutsideFile));
        };
        if let Some(b) = &file.block
            && (file.chunks >= b.chunks
                || b.data_got + (FRAME_HEADER_LEN + header.stored_len as usize) as u64 > b.data_len)
        {
            let got = (file.chunks, b.data_got);
            return Err(self.corrupt(
                offset,
                CorruptKind::BadBlock(format!(
                    "chunk frames beyond the {} chunks and {} bytes declared (after {} chunks, {} bytes)",
                    b.chunks, b.data_len, got.0, got.1
                )),
            ));
        }
        if file.got + header.raw_len as u64 > file.size {
            return Err(self.corrupt(
                offset,
                CorruptKind::FileTooLong {
                    declared: file.size,
                },
            ));
        }
        if header.codec == CodecId::LanguageModel && self.header.model_hash.is_none() {
            return Err(self.corrupt(offset, CorruptKind::NoModel));
        }
        self.raw_bytes += header.raw_len as u64;
        if self.raw_bytes > self.limits.max_size {
            return Err(Error::Limit(format!(
                "archive holds more than {} bytes of data (see --max-size)",
                self.limits.max_size
            )));
        }
        let mut payload = vec![0u8; header.stored_len as usize];
        self.read_hashed(&mut payload, "a chunk payload")?;
        if header.uses_model(&payload) && self.header.model_hash.is_none() {
            return Err(self.corrupt(offset, CorruptKind::NoModel));
        }
        if header.codec == CodecId::ContextMixing && self.member.version < VERSION {
            let id = payload.first().map_or(0, |&b| cm_preset_id(b));
            if id > MAX_V1_CM_PRESET {
                return Err(self.corrupt(offset, CorruptKind::PresetNotInVersion(id)));
            }
        }
        self.chunks += 1;
        self.member.tracker.chunk(offset - self.member.start);
        let file = self.file.as_mut().expect("checked above");
        let entry = file.path_at(file.got).to_owned();
        file.got += header.raw_len as u64;
        if let Some(b) = file.block.as_mut() {
            b.data_got += (FRAME_HEADER_LEN + payload.len()) as u64;
        }
        let index = file.chunks;
        file.chunks += 1;
        Ok(Event::Chunk(ChunkEvent {
            header,
            payload,
            offset,
            entry,
            index,
        }))
    }

    fn read_end(&mut self, offset: u64) -> Result<Option<Event>> {
        let mut b = [0u8; END_LEN];
        b[0] = TAG_END;
        // The stream checksum covers everything before the end record.
        let stream_xxh3 = self.hasher.digest();
        self.offset += 1; // the tag, not hashed
        self.read_raw(&mut b[1..], "the end record")?;
        self.offset += END_LEN as u64 - 1;
        let at = |kind| Error::Corrupt {
            offset,
            entry: None,
            chunk: None,
            kind,
        };
        let end = EndRecord::parse(&b).map_err(at)?;
        let (entries, chunks, raw_bytes) = self.member.before;
        let checks = [
            (end.entries == self.entries - entries, "entry count"),
            (end.chunks == self.chunks - chunks, "chunk count"),
            (
                end.raw_bytes == self.raw_bytes - raw_bytes,
                "total data size",
            ),
            (
                end.stream_len == offset - self.member.start,
                "stream length",
            ),
            (end.stream_xxh3 == stream_xxh3, "stream checksum"),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(at(CorruptKind::EndMismatch(what)));
            }
        }
        if self.member.version >= crate::format::member::CONCAT_VERSION {
            return self.after_member(end, offset);
        }
        let mut extra = [0u8; 1];
        loop {
            match self.inner.read(&mut extra) {
                Ok(0) => break,
                Ok(_) => return Err(at(CorruptKind::TrailingData)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::ArchiveIo {
                        action: "read",
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
        self.done = true;
        Ok(Some(Event::End(EndRecord {
            entries: self.entries,
            chunks: self.chunks,
            raw_bytes: self.raw_bytes,
            stream_len: offset,
            ..end
        })))
    }

    /// After a version 2 member's checked end record at `end_offset`: an
    /// optional index, then the end of the stream (the end event, with
    /// totals) or the next member (no event; its header is read here).
    fn after_member(&mut self, end: EndRecord, end_offset: u64) -> Result<Option<Event>> {
        use crate::format::member::{After, after_end, header_version, member_rules};
        let tracker = std::mem::take(&mut self.member.tracker);
        let (after, pos) = after_end(&mut self.inner, tracker, self.member.start, self.offset)?;
        let b = match after {
            After::Eof => {
                self.offset = pos;
                self.done = true;
                return Ok(Some(Event::End(EndRecord {
                    entries: self.entries,
                    chunks: self.chunks,
                    raw_bytes: self.raw_bytes,
                    stream_len: end_offset,
                    ..end
                })));
            }
            After::Member(b) => b,
        };
        let at = |kind| Error::Corrupt {
            offset: pos,
            entry: None,
            chunk: None,
            kind,
        };
        let header = Header::parse(&b).map_err(at)?;
        member_rules(&self.member.first, &header).map_err(at)?;
        self.header = header;
        self.member.version = header_version(&b);
        self.member.start = pos;
        self.member.before = (self.entries, self.chunks, self.raw_bytes);
        self.offset = pos + HEADER_LEN as u64;
        self.hasher = Xxh3::new();
        Ok(None)
    }
}

/// A set of `/`-separated paths stored as a trie of their components: each
/// node is one path (the root is the empty one), and a child is its parent's
/// path plus one component. A path of `n` bytes costs O(n) time to insert or
/// look up, and memory is linear in the bytes of the components added: per
/// node, its component's bytes, a 16-byte node and a 16-byte index slot (35
/// to 60 bytes with the growing tables' slack), never a copy of the whole
/// path per ancestor.
///
/// Node ids are dense (`0..len()`), so callers keep per-node data in a
/// `Vec` indexed by id.
pub(crate) struct PathTrie {
    /// Node `i` for `i > 0`; `nodes[0]` is the root.
    nodes: Vec<TrieNode>,
    /// Every node's component, concatenated in node order: node `i`'s is
    /// `names[nodes[i - 1].end..nodes[i].end]`.
    names: String,
    /// Keyed hash of (parent, component) -> the newest node with that hash;
    /// older nodes with the same hash follow through `TrieNode::next`.
    index: HashMap<u64, u32, BuildHasherDefault<PreHashed>>,
    /// SipHash keys, random per trie, so crafted paths cannot collide on
    /// purpose.
    keys: RandomState,
}

#[derive(Clone, Copy)]
struct TrieNode {
    /// End of this node's component in `names`.
    end: u64,
    /// The parent node (0 for the root itself).
    parent: u32,
    /// The next older node whose (parent, component) has the same hash, or 0
    /// (the root is never in the index).
    next: u32,
}

/// Hasher for keys that already are a keyed hash.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl PathTrie {
    /// The root: the empty path.
    pub(crate) const ROOT: u32 = 0;
    /// Most nodes a trie holds, the root included.
    pub(crate) const MAX_NODES: usize = u32::MAX as usize;

    /// A trie holding only the root.
    pub(crate) fn new() -> PathTrie {
        PathTrie {
            nodes: vec![TrieNode {
                end: 0,
                parent: 0,
                next: 0,
            }],
            names: String::new(),
            index: HashMap::default(),
            keys: RandomState::new(),
        }
    }

    /// Number of nodes, the root included.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The parent of `node`, `None` for the root.
    pub(crate) fn parent(&self, node: u32) -> Option<u32> {
        (node != Self::ROOT).then(|| self.nodes[node as usize].parent)
    }

    /// The last component of `node`'s path ("" for the root).
    pub(crate) fn name(&self, node: u32) -> &str {
        let i = node as usize;
        let start = if i == 0 { 0 } else { self.nodes[i - 1].end };
        &self.names[start as usize..self.nodes[i].end as usize]
    }

    fn hash(&self, parent: u32, name: &str) -> u64 {
        self.keys.hash_one((parent, name))
    }

    fn find_hashed(&self, hash: u64, parent: u32, name: &str) -> Option<u32> {
        let mut node = *self.index.get(&hash)?;
        loop {
            if self.nodes[node as usize].parent == parent && self.name(node) == name {
                return Some(node);
            }
            node = self.nodes[node as usize].next;
            if node == 0 {
                return None;
            }
        }
    }

    /// The child of `parent` named `name`, if present.
    pub(crate) fn child(&self, parent: u32, name: &str) -> Option<u32> {
        self.find_hashed(self.hash(parent, name), parent, name)
    }

    /// The child of `parent` named `name` and whether it was just added;
    /// `None` only when the trie already holds [`Self::MAX_NODES`] nodes.
    pub(crate) fn child_or_add(&mut self, parent: u32, name: &str) -> Option<(u32, bool)> {
        let hash = self.hash(parent, name);
        if let Some(node) = self.find_hashed(hash, parent, name) {
            return Some((node, false));
        }
        if self.nodes.len() >= Self::MAX_NODES {
            return None;
        }
        let node = self.nodes.len() as u32;
        self.names.push_str(name);
        let next = match self.index.entry(hash) {
            MapEntry::Occupied(mut o) => std::mem::replace(o.get_mut(), node),
            MapEntry::Vacant(v) => {
                v.insert(node);
                0
            }
        };
        self.nodes.push(TrieNode {
            end: self.names.len() as u64,
            parent,
            next,
        });
        Some((node, true))
    }

    /// The node of `path` (split on every `/`), if present.
    pub(crate) fn find(&self, path: &str) -> Option<u32> {
        path.split('/')
            .try_fold(Self::ROOT, |node, name| self.child(node, name))
    }

    /// The path of `node`, its components joined with `/`.
    pub(crate) fn path(&self, node: u32) -> String {
        let mut names = Vec::new();
        let mut n = node;
        while let Some(parent) = self.parent(n) {
            names.push(self.name(n));
            n = parent;
        }
        names.reverse();
        names.join("/")
    }
}
