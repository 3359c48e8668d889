//! An archive writer written from `format-spec.md` alone (no lza
//! serializers): every field is laid out by hand so that tests can break
//! any rule on purpose.

use xxhash_rust::xxh3::xxh3_64;

pub const MAGIC: [u8; 8] = [0x89, b'L', b'Z', b'A', 0x0D, 0x0A, 0x1A, 0x0A];

pub const KIND_FILE: u8 = 0;
pub const KIND_DIR: u8 = 1;
pub const KIND_SYMLINK: u8 = 2;
pub const KIND_HARDLINK: u8 = 3;

pub const CODEC_STORED: u8 = 0;
pub const CODEC_ZSTD: u8 = 1;
pub const CODEC_LM: u8 = 2;
pub const CODEC_CM: u8 = 3;

/// Header fields, all settable.
#[derive(Clone, Copy)]
pub struct HeaderSpec {
    pub magic: [u8; 8],
    pub version: u16,
    pub flags: u16,
    pub max_chunk: u32,
    pub reserved: u32,
    pub model_hash: [u8; 16],
}

impl Default for HeaderSpec {
    fn default() -> Self {
        HeaderSpec {
            magic: MAGIC,
            version: 1,
            flags: 0,
            max_chunk: 1024,
            reserved: 0,
            model_hash: [0; 16],
        }
    }
}

impl HeaderSpec {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(&self.magic);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&self.max_chunk.to_le_bytes());
        b.extend_from_slice(&self.reserved.to_le_bytes());
        b.extend_from_slice(&self.model_hash);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(b.len(), 40);
        b
    }
}

/// Entry record fields, all settable.
#[derive(Clone)]
pub struct EntrySpec {
    pub kind: u8,
    pub reserved: u16,
    pub mode: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    /// Overrides `path.len()` when set.
    pub path_len: Option<u16>,
}

impl EntrySpec {
    pub fn new(kind: u8, path: &str) -> EntrySpec {
        EntrySpec {
            kind,
            reserved: 0,
            mode: if kind == KIND_DIR { 0o755 } else { 0o644 },
            mtime_ns: 1_700_000_000_000_000_000,
            size: 0,
            path: path.as_bytes().to_vec(),
            link: Vec::new(),
            path_len: None,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0x01, self.kind];
        b.extend_from_slice(&self.reserved.to_le_bytes());
        b.extend_from_slice(&self.mode.to_le_bytes());
        b.extend_from_slice(&self.mtime_ns.to_le_bytes());
        b.extend_from_slice(&self.size.to_le_bytes());
        let path_len = self.path_len.unwrap_or(self.path.len() as u16);
        b.extend_from_slice(&path_len.to_le_bytes());
        b.extend_from_slice(&(self.link.len() as u16).to_le_bytes());
        b.extend_from_slice(&self.path);
        b.extend_from_slice(&self.link);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }
}

/// Chunk frame fields, all settable.
#[derive(Clone)]
pub struct FrameSpec {
    pub codec: u8,
    pub reserved: u16,
    pub raw_len: u32,
    pub stored_len: u32,
    pub raw_xxh3: u64,
    pub payload: Vec<u8>,
}

impl FrameSpec {
    /// A correct stored frame for `data`.
    pub fn stored(data: &[u8]) -> FrameSpec {
        FrameSpec {
            codec: CODEC_STORED,
            reserved: 0,
            raw_len: data.len() as u32,
            stored_len: data.len() as u32,
            raw_xxh3: xxh3_64(data),
            payload: data.to_vec(),
        }
    }

    /// A frame of `codec` whose payload is `payload`, for raw bytes `raw`.
    pub fn coded(codec: u8, raw: &[u8], payload: Vec<u8>) -> FrameSpec {
        FrameSpec {
            codec,
            reserved: 0,
            raw_len: raw.len() as u32,
            stored_len: payload.len() as u32,
            raw_xxh3: xxh3_64(raw),
            payload,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0x02, self.codec];
        b.extend_from_slice(&self.reserved.to_le_bytes());
        b.extend_from_slice(&self.raw_len.to_le_bytes());
        b.extend_from_slice(&self.stored_len.to_le_bytes());
        b.extend_from_slice(&self.raw_xxh3.to_le_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(b.len(), 24);
        b.extend_from_slice(&self.payload);
        b
    }
}

/// End record fields.
///
/// format-spec.md section 6: 45 bytes (tag 1 + 5 * 8 + end_crc 4). `pad`
/// is appended after the record (empty in a valid archive).
#[derive(Clone, Copy, Debug)]
pub struct EndSpec {
    pub entries: u64,
    pub chunks: u64,
    pub raw_bytes: u64,
    pub stream_len: u64,
    pub stream_xxh3: u64,
    pub pad: &'static [u8],
}

impl EndSpec {
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0xFF];
        for v in [
            self.entries,
            self.chunks,
            self.raw_bytes,
            self.stream_len,
            self.stream_xxh3,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(b.len(), 41);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(b.len(), 45);
        b.extend_from_slice(self.pad);
        b
    }
}

/// Builds an archive record by record, keeping the end record's totals.
pub struct Builder {
    pub buf: Vec<u8>,
    pub entries: u64,
    pub chunks: u64,
    pub raw_bytes: u64,
    /// Offset of each record appended, in order.
    pub offsets: Vec<u64>,
}

impl Builder {
    /// An archive with a default header (max_chunk 1024, no model).
    pub fn new() -> Builder {
        Builder::with_header(HeaderSpec::default())
    }

    pub fn with_header(h: HeaderSpec) -> Builder {
        Builder {
            buf: h.bytes(),
            entries: 0,
            chunks: 0,
            raw_bytes: 0,
            offsets: Vec::new(),
        }
    }

    /// Offset the next record will start at.
    pub fn pos(&self) -> u64 {
        self.buf.len() as u64
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.offsets.push(self.pos());
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn entry(&mut self, e: &EntrySpec) -> &mut Self {
        self.entries += 1;
        self.raw(&e.bytes())
    }

    pub fn frame(&mut self, f: &FrameSpec) -> &mut Self {
        self.chunks += 1;
        self.raw_bytes += f.raw_len as u64;
        self.raw(&f.bytes())
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(&EntrySpec::new(KIND_DIR, path))
    }

    /// A file entry with its data in stored chunks of at most `chunk` bytes.
    pub fn file_chunked(&mut self, path: &str, mode: u32, data: &[u8], chunk: usize) -> &mut Self {
        let mut e = EntrySpec::new(KIND_FILE, path);
        e.mode = mode;
        e.size = data.len() as u64;
        self.entry(&e);
        for c in data.chunks(chunk) {
            self.frame(&FrameSpec::stored(c));
        }
        self
    }

    pub fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.file_chunked(path, 0o644, data, 1024)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut e = EntrySpec::new(KIND_SYMLINK, path);
        e.mode = 0o777;
        e.link = target.as_bytes().to_vec();
        self.entry(&e)
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut e = EntrySpec::new(KIND_HARDLINK, path);
        e.link = target.as_bytes().to_vec();
        self.entry(&e)
    }

    /// The correct end record for what has been written so far.
    pub fn end_spec(&self) -> EndSpec {
        EndSpec {
            entries: self.entries,
            chunks: self.chunks,
            raw_bytes: self.raw_bytes,
            stream_len: self.buf.len() as u64,
            stream_xxh3: xxh3_64(&self.buf[40..]),
            pad: &[],
        }
    }

    /// The archive with a correct end record.
    pub fn finish(&self) -> Vec<u8> {
        self.finish_with(|_| {})
    }

    /// The archive with an end record changed by `f`.
    pub fn finish_with(&self, f: impl FnOnce(&mut EndSpec)) -> Vec<u8> {
        let mut end = self.end_spec();
        f(&mut end);
        let mut out = self.buf.clone();
        out.extend_from_slice(&end.bytes());
        out
    }
}
