//! Creating archives: walk the inputs, cut files into chunks, code the chunks
//! in parallel and write records in input order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use xxhash_rust::xxh3::Xxh3;

use crate::codec::{self, Frame, TextCoder};
use crate::error::{Error, Result};
use crate::format::{
    CodecId, EndRecord, Entry, EntryKind, HEADER_LEN, Header, ModelHash, check_archive_path,
};
use crate::pipeline::{self, Job, Pipeline};

/// Default segment size: files are read and coded in pieces of this many
/// bytes (the header's `max_chunk`). Large, because a segment that zstd
/// codes is coded on its own: 32 MiB keeps zstd -19 within a few tenths of a
/// percent of whole-file zstd -19 on the silesia files.
pub const DEFAULT_CHUNK_SIZE: u32 = 32 << 20;

/// Most input bytes in flight (read, being coded or waiting to be written),
/// unless two segments are more.
pub const MAX_IN_FLIGHT: usize = 256 << 20;

/// Default length of a language-model chunk (format-spec 7.6).
pub const LM_CHUNK_SIZE: usize = crate::lm::TRAINED_CONTEXT;

/// How to create an archive.
#[derive(Clone)]
pub struct CreateOptions {
    /// Worker threads.
    pub threads: usize,
    /// Compression level 1..=9 (selects the zstd level).
    pub level: u32,
    /// Segment size, the archive's `max_chunk`.
    pub chunk_size: u32,
    /// How data is coded.
    pub method: Method,
    /// The language-model codec for text, if any (used by the methods that
    /// use a model).
    pub lm: Option<Arc<dyn TextCoder>>,
}

/// How file data is coded (the CLI's `--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// zstd at the chosen level for everything.
    Zstd,
    /// Context mixing with the fast preset, no language model.
    Fast,
    /// Context mixing with the normal preset, no language model.
    Cm,
    /// Context mixing with the language model on text (1 MiB chunks), the
    /// normal preset elsewhere.
    Default,
    /// As `Default` with chunks of up to 4 MiB: smaller, less parallel.
    Max,
    /// The language model alone on text, in 16 KiB chunks (codec 2,
    /// format-spec 7.6); zstd elsewhere.
    Lm,
}

impl Method {
    /// Whether the method uses a language model.
    pub fn uses_lm(self) -> bool {
        matches!(self, Method::Default | Method::Max | Method::Lm)
    }

    /// The context-mixing preset.
    pub fn preset(self) -> crate::cm::Preset {
        match self {
            Method::Fast => crate::cm::FAST,
            _ => crate::cm::NORMAL2,
        }
    }

    /// Largest chunk that uses the language model.
    pub fn lm_piece(self) -> usize {
        crate::cm::MAX_CM_LM_CHUNK
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            threads: 1,
            level: 6,
            chunk_size: DEFAULT_CHUNK_SIZE,
            method: Method::Zstd,
            lm: None,
        }
    }
}

impl CreateOptions {
    /// The zstd level used for `level`.
    pub fn zstd_level(&self) -> i32 {
        const MAP: [i32; 9] = [1, 3, 5, 7, 9, 12, 15, 17, 19];
        MAP[(self.level.clamp(1, 9) - 1) as usize]
    }
}

/// A file-system object to archive: where it is and the entry it becomes.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where to read it.
    pub fs_path: PathBuf,
    /// The entry record it becomes.
    pub entry: Entry,
    /// The input path the walk started from (followed if it is a symbolic
    /// link: the user named it) and the path below it, which is opened one
    /// component at a time without following symbolic links.
    root: PathBuf,
    rel: PathBuf,
    /// Device and inode of a regular file as the walk saw it: the file
    /// opened later must be the same one.
    id: (u64, u64),
}

/// What creating an archive had to say about its inputs: tar's warnings.
/// `skipped` and `changed` make `lza create` exit with a non-zero code once
/// the archive is written.
#[derive(Debug, Default)]
pub struct Warnings {
    /// One line per event, in order.
    pub messages: Vec<String>,
    /// Inputs that are not in the archive: names the format cannot hold,
    /// files that vanished, became unreadable or were replaced (by a
    /// symbolic link, a FIFO, another file) between the walk and the read.
    /// Special files (sockets, FIFOs, devices found by the walk) are only
    /// noted, as tar does: the format cannot express them by design.
    pub skipped: u64,
    /// Files archived while they changed: what is archived is their size
    /// when opened, cut or padded with zeros (tar's "file changed as we read
    /// it", "file shrank").
    pub changed: u64,
}

impl Warnings {
    /// A note that needs no action (a leading `/` removed, a special file).
    pub fn note(&mut self, message: String) {
        self.messages.push(message);
    }

    fn skip(&mut self, message: String) {
        self.skipped += 1;
        self.messages.push(message);
    }

    fn change(&mut self, message: String) {
        self.changed += 1;
        self.messages.push(message);
    }

    /// Whether anything was skipped or changed.
    pub fn any(&self) -> bool {
        self.skipped + self.changed > 0
    }
}

/// Build a matcher for `--exclude` patterns, unanchored as GNU tar's: a
/// pattern excludes an archive path when it matches the whole path or any
/// tail of it that starts after a `/` (`docs/*` excludes `tree/docs/a`,
/// `*.o` every `.o` file, `b` every entry named `b`), `*` and `?` also match
/// `/`, and an excluded directory is left out with everything below it.
pub fn exclude_set(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::BadInput {
            path: p.into(),
            reason: format!("bad --exclude pattern: {e}"),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::BadInput {
        path: PathBuf::new(),
        reason: format!("bad --exclude patterns: {e}"),
    })
}

/// Whether `archive_path` is excluded by `set` (see [`exclude_set`]).
pub fn excluded(set: &GlobSet, archive_path: &str) -> bool {
    !set.is_empty()
        && (set.is_match(archive_path)
            || archive_path
                .match_indices('/')
                .any(|(i, _)| set.is_match(&archive_path[i + 1..])))
}

/// Turn an input path as given on the command line into its archive form:
/// `/`-separated, relative, without `.` components. A leading `/` is dropped
/// (as tar does); `..` is refused.
pub fn archive_path_of(input: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in input.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(Error::BadInput {
                    path: input.into(),
                    reason: format!("paths with '..' cannot be archived{}", dotdot_hint(input)),
                });
            }
            Component::Normal(s) => parts.push(s.to_str().ok_or_else(|| Error::BadInput {
                path: input.into(),
                reason: "file name is not UTF-8".into(),
            })?),
        }
    }
    Ok(parts.join("/"))
}

/// How to archive a path that climbs with `..`: `-C` to the directory it
/// climbs to, and the rest of the path (for `../dir`: "-C .. dir").
fn dotdot_hint(input: &Path) -> String {
    let comps: Vec<Component> = input.components().collect();
    let ups = comps
        .iter()
        .take_while(|c| matches!(c, Component::ParentDir | Component::CurDir))
        .count();
    let rest: PathBuf = comps[ups..].iter().collect();
    let climbs = comps[..ups].contains(&Component::ParentDir);
    let rest_is_plain = comps[ups..]
        .iter()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if climbs && rest_is_plain && !rest.as_os_str().is_empty() {
        let dir: PathBuf = comps[..ups].iter().collect();
        format!(
            "; archive it from the directory above with -C: -C {} {}",
            dir.display(),
            rest.display()
        )
    } else {
        "; use -C DIR to start from a directory that holds it".into()
    }
}

fn mtime_ns(md: &std::fs::Metadata) -> i64 {
    md.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(md.mtime_nsec())
}

/// Walk `inputs` (relative to `base`) and list what to archive, in a stable
/// order. Objects that cannot be archived are left out with a warning:
/// special files (sockets, devices, FIFOs) as a note, names that the format
/// cannot hold (not UTF-8, a backslash, a drive-like first component;
/// format-spec 4) and symbolic links whose target it cannot hold as skipped
/// inputs. An input with `..` is an error.
pub fn collect_sources(
    base: &Path,
    inputs: &[PathBuf],
    excludes: &GlobSet,
    warnings: &mut Warnings,
) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    let mut seen_inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut seen_paths = std::collections::HashSet::new();
    for input in inputs {
        if input.has_root() {
            warnings.note(format!(
                "removing leading '/' from member names in {}",
                input.display()
            ));
        }
        let root_archive_path = match archive_path_of(input) {
            Ok(p) => p,
            Err(Error::BadInput { reason, .. }) if !reason.contains("..") => {
                warnings.skip(format!("{input:?}: {reason}; not archived"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let root_fs = base.join(input);
        let walker = walkdir::WalkDir::new(&root_fs)
            .follow_links(false)
            .sort_by_file_name();
        let mut it = walker.into_iter();
        while let Some(item) = it.next() {
            let item = item.map_err(|e| {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root_fs.clone());
                Error::io(
                    path,
                    e.into_io_error()
                        .unwrap_or_else(|| io::Error::other("file system loop")),
                )
            })?;
            let rel = item
                .path()
                .strip_prefix(&root_fs)
                .expect("walkdir yields paths under its root")
                .to_path_buf();
            let is_dir = item.file_type().is_dir();
            // A name the format cannot hold: this object (and what is below
            // it) is left out, the rest of the archive goes on.
            let mut cannot = |reason: &str, it: &mut walkdir::IntoIter| {
                let below = if is_dir {
                    " (nor anything below it)"
                } else {
                    ""
                };
                warnings.skip(format!("{:?}: {reason}; not archived{below}", item.path()));
                if is_dir {
                    it.skip_current_dir();
                }
            };
            let rel_archive = match archive_path_of(&rel) {
                Ok(p) => p,
                Err(Error::BadInput { reason, .. }) => {
                    cannot(&reason, &mut it);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let archive_path = match (root_archive_path.is_empty(), rel_archive.is_empty()) {
                (true, true) => continue, // the input "." itself
                (true, false) => rel_archive,
                (false, true) => root_archive_path.clone(),
                (false, false) => format!("{root_archive_path}/{rel_archive}"),
            };
            if excluded(excludes, &archive_path) {
                if is_dir {
                    it.skip_current_dir();
                }
                continue;
            }
            if let Err(reason) = check_archive_path(&archive_path) {
                cannot(&format!("name cannot be archived ({reason})"), &mut it);
                continue;
            }
            if !seen_paths.insert(archive_path.clone()) {
                warnings.note(format!("{archive_path}: given twice, archived once"));
                if is_dir {
                    it.skip_current_dir();
                }
                continue;
            }
            let md = item.metadata().map_err(|e| {
                Error::io(
                    item.path(),
                    e.into_io_error()
                        .unwrap_or_else(|| io::Error::other("metadata")),
                )
            })?;
            let ft = md.file_type();
            let mut entry = Entry {
                path: archive_path,
                kind: EntryKind::File,
                mode: md.permissions().mode() & 0o7777,
                mtime_ns: mtime_ns(&md),
                size: 0,
                link: String::new(),
            };
            let mut id = (0, 0);
            if ft.is_dir() {
                entry.kind = EntryKind::Directory;
            } else if ft.is_symlink() {
                let target =
                    std::fs::read_link(item.path()).map_err(|e| Error::io(item.path(), e))?;
                entry.kind = EntryKind::Symlink;
                let Some(target) = target.to_str() else {
                    cannot("symbolic link target is not UTF-8", &mut it);
                    continue;
                };
                if target.is_empty() || target.len() > crate::format::MAX_PATH_LEN {
                    cannot("symbolic link target length out of range", &mut it);
                    continue;
                }
                entry.link = target.to_owned();
            } else if ft.is_file() {
                let key = (md.dev(), md.ino());
                if md.nlink() > 1 {
                    if let Some(first) = seen_inodes.get(&key) {
                        entry.kind = EntryKind::Hardlink;
                        entry.link = first.clone();
                        out.push(Source {
                            fs_path: item.path().into(),
                            entry,
                            root: root_fs.clone(),
                            rel,
                            id: key,
                        });
                        continue;
                    }
                    seen_inodes.insert(key, entry.path.clone());
                }
                entry.size = md.len();
                id = key;
            } else {
                warnings.note(format!("{:?}: special file not archived", item.path()));
                continue;
            }
            out.push(Source {
                fs_path: item.path().into(),
                entry,
                root: root_fs.clone(),
                rel,
                id,
            });
        }
    }
    Ok(out)
}

/// Opens the regular files of a walk: each one relative to its directory's
/// handle, reached from the walk's root one component at a time with
/// `O_NOFOLLOW` (so a directory swapped for a symbolic link is not
/// followed), itself with `O_NOFOLLOW` (a file swapped for a symbolic link
/// is not followed) and `O_NONBLOCK` (a file swapped for a FIFO does not
/// block the open), then checks with `fstat` that the descriptor is a
/// regular file with the device and inode that the walk saw. Whatever was
/// swapped in, what is read is the file the walk listed, or nothing.
struct Opener {
    /// The last directory opened: (root, path below it, handle).
    dir: Option<(PathBuf, PathBuf, std::os::fd::OwnedFd)>,
}

impl Opener {
    fn dir_of(&mut self, root: &Path, rel_dir: &Path) -> rustix::io::Result<&std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let hit = matches!(&self.dir, Some((r, d, _)) if r == root && d == rel_dir);
        if !hit {
            self.dir = None;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let mut fd = rustix::fs::open(root, flags, Mode::empty())?;
            for c in rel_dir.components() {
                fd = rustix::fs::openat(
                    &fd,
                    c.as_os_str(),
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?;
            }
            self.dir = Some((root.into(), rel_dir.into(), fd));
        }
        Ok(&self.dir.as_ref().expect("just opened").2)
    }

    /// The open file and its status, or why it is not archived.
    fn open(&mut self, src: &Source) -> std::result::Result<(File, rustix::fs::Stat), String> {
        use rustix::fs::{FileType, Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let said = |e: rustix::io::Errno| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => {
                "replaced by a symbolic link after it was listed".to_string()
            }
            rustix::io::Errno::NOENT => "removed after it was listed".to_string(),
            e => io::Error::from(e).to_string(),
        };
        let fd = match (src.rel.parent(), src.rel.file_name()) {
            (Some(dir), Some(name)) => {
                let dir = self.dir_of(&src.root, dir).map_err(said)?;
                rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW, Mode::empty())
            }
            // the input itself: opened as named
            _ => rustix::fs::open(&src.root, flags, Mode::empty()),
        }
        .map_err(said)?;
        let st = rustix::fs::fstat(&fd).map_err(said)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err("no longer a regular file".into());
        }
        if (st.st_dev, st.st_ino) != src.id {
            return Err("replaced by another file after it was listed".into());
        }
        Ok((File::from(fd), st))
    }
}

fn stat_mtime_ns(st: &rustix::fs::Stat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec as i64)
}

/// Writes the archive's bytes, keeping the totals and the stream checksum
/// that the end record needs.
struct ArchiveWriter<W: Write> {
    inner: W,
    hasher: Xxh3,
    end: EndRecord,
    lm_chunks: u64,
}

impl<W: Write> ArchiveWriter<W> {
    fn new(mut inner: W, header: &Header) -> Result<Self> {
        // The header has its own CRC; the stream checksum starts after it.
        inner
            .write_all(&header.to_bytes())
            .map_err(|source| Error::ArchiveIo {
                action: "write",
                offset: 0,
                source,
            })?;
        let w = ArchiveWriter {
            inner,
            hasher: Xxh3::new(),
            end: EndRecord {
                entries: 0,
                chunks: 0,
                raw_bytes: 0,
                stream_len: HEADER_LEN as u64,
                stream_xxh3: 0,
            },
            lm_chunks: 0,
        };
        Ok(w)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .map_err(|source| Error::ArchiveIo {
                action: "write",
                offset: self.end.stream_len,
                source,
            })?;
        self.hasher.update(bytes);
        self.end.stream_len += bytes.len() as u64;
        Ok(())
    }

    fn emit(&mut self, e: &Emit) -> Result<()> {
        self.write(&e.bytes)?;
        self.end.entries += e.entries;
        self.end.chunks += e.chunks;
        self.end.raw_bytes += e.raw;
        self.lm_chunks += e.lm_chunks;
        Ok(())
    }

    fn finish(mut self) -> Result<W> {
        self.end.stream_xxh3 = self.hasher.digest();
        let bytes = self.end.to_bytes();
        let offset = self.end.stream_len;
        self.inner
            .write_all(&bytes)
            .and_then(|_| self.inner.flush())
            .map_err(|source| Error::ArchiveIo {
                action: "write",
                offset,
                source,
            })?;
        Ok(self.inner)
    }
}

/// Bytes ready to be written, with what they count for in the end record.
struct Emit {
    bytes: Vec<u8>,
    entries: u64,
    chunks: u64,
    /// How many of `chunks` use the language model.
    lm_chunks: u64,
    raw: u64,
}

impl Emit {
    /// The frames of a segment of `raw` bytes.
    fn frames(frames: &[Frame], raw: usize) -> Emit {
        let mut bytes = Vec::with_capacity(frames.iter().map(Frame::encoded_len).sum());
        for f in frames {
            f.write_to(&mut bytes);
        }
        Emit {
            bytes,
            entries: 0,
            chunks: frames.len() as u64,
            lm_chunks: frames
                .iter()
                .filter(|f| codec::uses_model(&f.header, &f.payload))
                .count() as u64,
            raw: raw as u64,
        }
    }
}

/// `a` if its payload is smaller than `b`'s, else `b` (ties go to `b`, the
/// simpler codec at every call site).
fn smaller(a: Frame, b: Frame) -> Frame {
    if a.payload.len() < b.payload.len() {
        a
    } else {
        b
    }
}

/// A piece of a file to code.
struct Segment {
    data: Vec<u8>,
}

/// Below this many bits per byte from zstd -19, a text segment is not
/// offered to the language model: it is repetitive enough (logs, XML,
/// tables) that the online models, which learn the whole segment, win, and
/// the model would only cost time. Measured on `../shared/bench`: the model
/// never won a chunk of silesia/xml (zstd 0.68 bpb) or silesia/nci (0.39),
/// and wins on prose near 2 bpb.
const LM_WORTH_TRYING_BPB: f64 = 0.9;

/// At or below this many bits per byte from zstd -1, a segment is runs or
/// zeros: its zstd -1 frame is kept as it is, decided in milliseconds. 32 MiB
/// of zeros is 1,152 bytes with zstd -1 (0.0003 bits per byte) and took 132 s
/// with the context-mixing trial, which saved a few hundred bytes; the most
/// repetitive 32 MiB segment of the benchmark set (snappy html_x_4) is 0.30
/// with zstd -1, fifteen times above this line.
const DEGENERATE_BPB: f64 = 0.02;

/// The zstd -1 frame of a segment that zstd codes to almost nothing (see
/// [`DEGENERATE_BPB`]), or `None`.
fn degenerate(data: &[u8]) -> Option<Frame> {
    let f = codec::encode_zstd(data, 1);
    let bpb = 8.0 * f.payload.len() as f64 / data.len().max(1) as f64;
    (f.header.codec == CodecId::Zstd && bpb <= DEGENERATE_BPB).then_some(f)
}

/// A segment that zstd shrinks by less than this fraction is not worth
/// context mixing (compressed or random data): zstd's frame is kept.
const CM_MIN_GAIN: f64 = 0.02;

/// The piece length that cuts a segment's text into context-mixing chunks
/// that use the language model (format-spec 8.6): as few pieces of at most
/// `method.lm_piece()` bytes as can be; with the default method, an even
/// number of them above that size, so that two threads share the file.
/// The cut depends only on the segment's length.
pub fn lm_pieces(len: usize, method: Method) -> usize {
    match method {
        Method::Default if !lm_preset(len, method).two_streams && len >= 64 << 10 => {
            let n = len.div_ceil(method.lm_piece());
            len.div_ceil(n + n % 2)
        }
        _ => split_len(len, method.lm_piece(), usize::MAX),
    }
}

/// Segments of at least this many bytes, in one piece, are coded as two
/// streams by the default method, so that two threads share even a single
/// file: on calgary/book1 (768,771 bytes) one chunk of one stream gave
/// 172,525 bytes, two pieces 174,888, one chunk of two streams 172,663.
/// A chunk of two streams has one coder, which the encoder overlaps with
/// the model only from 16 of its 16 KiB stretches on: below, two pieces
/// are coded side by side (snappy html, 102 KB, two streams: 9,431 bytes
/// at 138 KB/s compressing; two pieces: the preset-3 chunk was smaller).
const TWO_STREAMS_FROM: usize = 256 << 10;

/// The context-mixing preset of the pieces of a segment of `len` bytes that
/// use the language model (format-spec 8.6). Above 4 MiB the default
/// method keeps one stream in an even number of pieces: two streams share
/// their statistics, which costs where the halves differ (silesia/dickens
/// is novels one after another: its first 3.4 MB as two streams, 671,180
/// bytes; one stream, 665,343; in two pieces, 671,895).
pub fn lm_preset(len: usize, method: Method) -> crate::cm::Preset {
    if method == Method::Default && (TWO_STREAMS_FROM..=method.lm_piece()).contains(&len) {
        crate::cm::WITH_LM3_2
    } else {
        crate::cm::WITH_LM3
    }
}

/// Largest chunk of the fast method (format-spec 8.6).
const FAST_PIECE: usize = 8 << 20;

/// The piece length that cuts `len` bytes into pieces of at most `max`
/// bytes, and into at least two from `two_from` bytes on.
fn split_len(len: usize, max: usize, two_from: usize) -> usize {
    let n = len.div_ceil(max).max(if len >= two_from { 2 } else { 1 });
    len.div_ceil(n.max(1)).max(1)
}

/// Method `Lm` (format-spec 7.6): for a text segment, language-model chunks
/// where the model wins (each 16 KiB piece keeps the smaller of the model's
/// and zstd's code), unless one zstd frame for the whole segment is smaller;
/// zstd (or stored) otherwise.
fn code_segments_lm(
    segments: Vec<Segment>,
    zstd_level: i32,
    lm: Option<&dyn TextCoder>,
) -> Vec<Emit> {
    // Next to the model's cost, zstd's best level is cheap: a text segment
    // is never larger than `zstd -19` would make it.
    let whole: Vec<(bool, Frame)> = segments
        .iter()
        .map(|s| {
            if let Some(f) = degenerate(&s.data) {
                return (false, f);
            }
            let text = lm.is_some() && codec::looks_like_text(&s.data);
            let level = if text { zstd_level.max(19) } else { zstd_level };
            let frame = codec::encode_zstd(&s.data, level);
            let bpb = 8.0 * frame.payload.len() as f64 / s.data.len() as f64;
            (text && bpb >= LM_ONLY_WORTH_TRYING_BPB, frame)
        })
        .collect();
    // Every candidate segment's pieces go to the model in one batched call,
    // so that they share model steps.
    let mut lm_chunks: Vec<&[u8]> = Vec::new();
    for (s, (try_lm, _)) in segments.iter().zip(&whole) {
        if *try_lm {
            lm_chunks.extend(s.data.chunks(LM_CHUNK_SIZE));
        }
    }
    let mut lm_coded = match (lm, lm_chunks.is_empty()) {
        (Some(lm), false) => lm.encode_chunks(&lm_chunks).into_iter(),
        _ => Vec::new().into_iter(),
    };
    segments
        .iter()
        .zip(whole)
        .map(|(s, (try_lm, whole))| {
            let mut frames = vec![whole];
            if try_lm {
                let mut lm_frames = Vec::new();
                for piece in s.data.chunks(LM_CHUNK_SIZE) {
                    let coded = lm_coded.next().expect("one result per chunk");
                    let zstd_piece = codec::encode_zstd(piece, zstd_level.max(19));
                    let lm_frame = Frame::new(CodecId::LanguageModel, piece, coded);
                    lm_frames.push(smaller(lm_frame, zstd_piece));
                }
                let lm_total: usize = lm_frames.iter().map(Frame::encoded_len).sum();
                if lm_total < frames[0].encoded_len() {
                    frames = lm_frames;
                }
            }
            crate::progress::add(s.data.len() as u64);
            Emit::frames(&frames, s.data.len())
        })
        .collect()
}

/// Text that zstd -19 codes at this many bits per byte or more is prose,
/// where the model wins by far and the trial without it (preset 3, one
/// chunk) is not run: it cost the second thread about 2 s of calgary/book1
/// (zstd 2.75 bpb), whose model chunk came to 1.80 bpb and the trial to
/// 2.09. The trial wins on tables, URL lists and reference works, which zstd
/// codes below 2 (snappy urls.10K: 1.8).
const TRIAL_BELOW_BPB: f64 = 2.2;

/// The `Lm` method's threshold (format-spec 7.6).
const LM_ONLY_WORTH_TRYING_BPB: f64 = 1.2;

/// How segments are coded.
struct Coding {
    zstd_level: i32,
    method: Method,
    lm: Option<Arc<dyn TextCoder>>,
}

/// What a segment becomes before the model runs.
enum Plan {
    /// Final frames.
    Done(Vec<Frame>),
    /// Pieces for the language model: the whole-segment zstd frame to beat,
    /// each piece's zstd frame, and whether to try the segment as one
    /// chunk without the model too.
    Lm(Frame, Vec<Frame>, bool),
}

/// Code segments into frames (format-spec 8.6 for the policy).
fn code_segments(segments: Vec<Segment>, c: &Coding) -> Vec<Emit> {
    use rayon::prelude::*;
    let lm = c.lm.as_deref().filter(|_| c.method.uses_lm());
    if c.method == Method::Lm {
        return code_segments_lm(segments, c.zstd_level, lm);
    }
    let plans: Vec<Plan> = segments
        .par_iter()
        .map(|s| {
            if c.method != Method::Zstd
                && let Some(f) = degenerate(&s.data)
            {
                return Plan::Done(vec![f]);
            }
            let text = c.method != Method::Zstd && codec::looks_like_text(&s.data);
            // Next to the models' cost, zstd's best level is cheap: text is
            // never larger than `zstd -19` would make it.
            let level = if text && c.method != Method::Fast {
                c.zstd_level.max(19)
            } else {
                c.zstd_level
            };
            let whole = codec::encode_zstd(&s.data, level);
            let bpb = 8.0 * whole.payload.len() as f64 / s.data.len() as f64;
            if c.method == Method::Zstd || bpb >= 8.0 * (1.0 - CM_MIN_GAIN) {
                crate::progress::add(s.data.len() as u64);
                return Plan::Done(vec![whole]);
            }
            if lm.is_some() && text && bpb >= LM_WORTH_TRYING_BPB {
                let n = lm_pieces(s.data.len(), c.method);
                // (one piece: its frame is the whole segment's)
                let pieces = match n >= s.data.len() {
                    true => vec![whole.clone()],
                    false => s
                        .data
                        .chunks(n)
                        .map(|p| codec::encode_zstd(p, level))
                        .collect(),
                };
                return Plan::Lm(whole, pieces, bpb < TRIAL_BELOW_BPB);
            }
            if c.method == Method::Fast {
                // pieces, so that two threads share even one file
                let n = split_len(s.data.len(), FAST_PIECE, 128 << 10);
                let frames = s
                    .data
                    .par_chunks(n)
                    .map(|piece| {
                        smaller(
                            codec::encode_cm(piece, c.method.preset()),
                            codec::encode_zstd(piece, level),
                        )
                    })
                    .collect();
                return Plan::Done(frames);
            }
            Plan::Done(vec![smaller(
                codec::encode_cm(&s.data, c.method.preset()),
                whole,
            )])
        })
        .collect();
    // Every language-model piece of the group goes to the model in one
    // call, so that the pieces share batched model steps.
    let mut pieces: Vec<(&[u8], bool)> = Vec::new();
    for (s, plan) in segments.iter().zip(&plans) {
        if let Plan::Lm(..) = plan {
            let two = lm_preset(s.data.len(), c.method).two_streams;
            pieces.extend(
                s.data
                    .chunks(lm_pieces(s.data.len(), c.method))
                    .map(|p| (p, two)),
            );
        }
    }
    // Side by side with the model: each such segment as one chunk without
    // it, which wins where the segment's own repetitions matter more than
    // language (tables, lists of URLs, reference works).
    let (coded, trials) = rayon::join(
        || match lm {
            Some(lm) if !pieces.is_empty() => {
                // one call per preset, results back in piece order
                let of = |two: bool| -> Vec<&[u8]> {
                    pieces.iter().filter(|p| p.1 == two).map(|p| p.0).collect()
                };
                let code = |two: bool, preset| match of(two) {
                    v if v.is_empty() => Vec::new(),
                    v => lm.encode_cm_chunks(&v, preset),
                };
                let mut a = code(true, crate::cm::WITH_LM3_2).into_iter();
                let mut b = code(false, crate::cm::WITH_LM3).into_iter();
                let mut next = |two| if two { a.next() } else { b.next() };
                pieces
                    .iter()
                    .map(|p| next(p.1).expect("one result per piece"))
                    .collect()
            }
            _ => Vec::new(),
        },
        || {
            segments
                .par_iter()
                .zip(&plans)
                .map(|(s, plan)| match plan {
                    // (the model's coding counts these bytes for progress)
                    Plan::Lm(_, _, true) => Some(crate::progress::uncounted(|| {
                        codec::encode_cm(&s.data, crate::cm::NORMAL2)
                    })),
                    Plan::Lm(..) | Plan::Done(_) => None,
                })
                .collect::<Vec<_>>()
        },
    );
    let mut coded = coded.into_iter();
    segments
        .iter()
        .zip(plans)
        .zip(trials)
        .map(|((s, plan), trial)| {
            let frames = match plan {
                Plan::Done(frames) => frames,
                Plan::Lm(whole, zstd_pieces, _) => {
                    let mut frames = Vec::new();
                    let n = lm_pieces(s.data.len(), c.method);
                    for (piece, zstd_piece) in s.data.chunks(n).zip(zstd_pieces) {
                        let payload = coded.next().expect("one result per piece");
                        let cm = Frame::new(CodecId::ContextMixing, piece, payload);
                        frames.push(smaller(cm, zstd_piece));
                    }
                    let total: usize = frames.iter().map(Frame::encoded_len).sum();
                    let single = match trial {
                        Some(cm) => smaller(cm, whole),
                        None => whole,
                    };
                    if total < single.encoded_len() {
                        frames
                    } else {
                        vec![single]
                    }
                }
            };
            Emit::frames(&frames, s.data.len())
        })
        .collect()
}

/// Write an archive of `sources` to `out`. `on_progress` is called with the
/// number of input bytes done each time a chunk is written; `on_entry` with
/// each entry as it is written. Files that cannot be opened as the regular
/// file the walk listed are left out, and files that change as they are
/// read are archived as they were when opened; both go to `warnings`.
pub fn write_archive<W: Write>(
    out: W,
    sources: &[Source],
    opts: &CreateOptions,
    on_entry: &mut dyn FnMut(&Entry),
    on_progress: &mut dyn FnMut(u64),
    warnings: &mut Warnings,
) -> Result<W> {
    write_archive_counted(out, sources, opts, on_entry, on_progress, warnings).map(|(w, _, _)| w)
}

/// [`write_archive`] to a seekable output (a file): when no chunk ended up
/// coded by the language model, the header's model hash is rewritten to
/// zero (format-spec 3), so that extracting needs no model.
pub fn write_archive_seekable<W: Write + Seek>(
    out: W,
    sources: &[Source],
    opts: &CreateOptions,
    on_entry: &mut dyn FnMut(&Entry),
    on_progress: &mut dyn FnMut(u64),
    warnings: &mut Warnings,
) -> Result<W> {
    let (mut w, header, lm_chunks) =
        write_archive_counted(out, sources, opts, on_entry, on_progress, warnings)?;
    if lm_chunks == 0 && !header.model_hash.is_none() {
        let header = Header {
            model_hash: ModelHash::NONE,
            ..header
        };
        w.seek(SeekFrom::Start(0))
            .and_then(|_| w.write_all(&header.to_bytes()))
            .and_then(|_| w.seek(SeekFrom::End(0)))
            .and_then(|_| w.flush())
            .map_err(|source| Error::ArchiveIo {
                action: "write",
                offset: 0,
                source,
            })?;
    }
    Ok(w)
}

fn write_archive_counted<W: Write>(
    out: W,
    sources: &[Source],
    opts: &CreateOptions,
    on_entry: &mut dyn FnMut(&Entry),
    on_progress: &mut dyn FnMut(u64),
    warnings: &mut Warnings,
) -> Result<(W, Header, u64)> {
    let lm = opts.lm.clone().filter(|_| opts.method.uses_lm());
    let model_hash = lm
        .as_ref()
        .map(|lm| lm.model_hash())
        .unwrap_or(ModelHash::NONE);
    let header = Header {
        max_chunk: opts.chunk_size,
        model_hash,
    };
    let mut w = ArchiveWriter::new(out, &header)?;
    let coding = Coding {
        zstd_level: opts.zstd_level(),
        method: opts.method,
        lm: lm.clone(),
    };
    let job: Arc<Job<Segment, Emit>> = Arc::new(move |segs| code_segments(segs, &coding));
    let threads = opts.threads.max(1);
    // Bound: 2 segments per thread plus 2 in flight (each at most
    // chunk_size bytes), but no more than MAX_IN_FLIGHT bytes unless a
    // single pair of segments is more.
    let chunk = opts.chunk_size as usize;
    let max_bytes = ((2 * threads + 2) * chunk)
        .min(MAX_IN_FLIGHT)
        .max(2 * chunk);
    // one pool for all: the model's, if it has one (`-T N` means N threads)
    let pool = match lm.as_ref().and_then(|lm| lm.pool()) {
        Some(pool) => pool,
        None => pipeline::thread_pool(threads),
    };
    let mut pipe = Pipeline::new(pool, job, max_bytes, 4096);
    // With a model, segments are grouped so that one job gives it about
    // as many chunks as it codes side by side.
    let group_limit = lm.as_ref().map(|lm| match opts.method {
        Method::Lm => lm.batch() * LM_CHUNK_SIZE,
        m => lm.batch().min(crate::cmlm::CM_SLOTS) * m.lm_piece(),
    });

    let drain = |pipe: &mut Pipeline<Segment, Emit>,
                 w: &mut ArchiveWriter<W>,
                 progress: &mut dyn FnMut(u64),
                 all: bool|
     -> Result<()> {
        while all && !pipe.is_empty() || pipe.is_full() {
            let e = pipe
                .pop()
                .expect("not empty")
                .map_err(|p| Error::internal(p.0))?;
            w.emit(&e)?;
            if e.raw > 0 {
                progress(e.raw);
            }
        }
        Ok(())
    };

    let mut opener = Opener { dir: None };
    // Files not archived, so that their hard links are left out too.
    let mut left_out = std::collections::HashSet::new();
    for src in sources {
        let mut entry = src.entry.clone();
        let mut file = None;
        match entry.kind {
            EntryKind::File => match opener.open(src) {
                Ok((f, st)) => {
                    // The entry says what was opened: size, time and mode as
                    // the descriptor has them now.
                    entry.size = st.st_size as u64;
                    entry.mtime_ns = stat_mtime_ns(&st);
                    entry.mode = st.st_mode & 0o7777;
                    file = Some((f, st));
                }
                Err(why) => {
                    warnings.skip(format!("{:?}: {why}; not archived", src.fs_path));
                    left_out.insert(entry.path.clone());
                    on_progress(src.entry.size);
                    continue;
                }
            },
            EntryKind::Hardlink if left_out.contains(&entry.link) => {
                warnings.skip(format!(
                    "{:?}: hard link to {:?}, which is not archived; not archived",
                    src.fs_path, entry.link
                ));
                continue;
            }
            _ => {}
        }
        on_entry(&entry);
        pipe.push_ready(Emit {
            bytes: entry.to_bytes(),
            entries: 1,
            chunks: 0,
            lm_chunks: 0,
            raw: 0,
        });
        let Some((mut f, opened)) = file else {
            continue;
        };
        let mut left = entry.size;
        let mut shrank = 0;
        while left > 0 {
            let n = left.min(opts.chunk_size as u64) as usize;
            let mut data = vec![0u8; n];
            let got = read_up_to(&mut f, &mut data).map_err(|e| Error::io(&src.fs_path, e))?;
            if got < n {
                // the rest of the file stays zeros, as tar pads it
                shrank = left - got as u64;
            }
            left -= n as u64;
            let weight = data.len();
            match group_limit {
                Some(limit) => pipe.push_grouped(Segment { data }, weight, limit),
                None => pipe.push_single(Segment { data }, weight),
            }
            drain(&mut pipe, &mut w, on_progress, false)?;
            if shrank > 0 {
                // zeros for the rest, without reading on
                while left > 0 {
                    let n = left.min(opts.chunk_size as u64) as usize;
                    left -= n as u64;
                    match group_limit {
                        Some(limit) => pipe.push_grouped(Segment { data: vec![0; n] }, n, limit),
                        None => pipe.push_single(Segment { data: vec![0; n] }, n),
                    }
                    drain(&mut pipe, &mut w, on_progress, false)?;
                }
            }
        }
        if shrank > 0 {
            warnings.change(format!(
                "{:?}: file shrank by {shrank} bytes as it was read; padded with zeros",
                src.fs_path
            ));
        } else if changed_while_read(&mut f, &opened).map_err(|e| Error::io(&src.fs_path, e))? {
            warnings.change(format!(
                "{:?}: file changed as we read it; archived its first {} bytes",
                src.fs_path, entry.size
            ));
        }
        drain(&mut pipe, &mut w, on_progress, false)?;
    }
    drain(&mut pipe, &mut w, on_progress, true)?;
    let lm_chunks = w.lm_chunks;
    Ok((w.finish()?, header, lm_chunks))
}

/// Read into `buf` until it is full or the file ends; the bytes read.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether a file whose `size` bytes (as opened) were all read has changed
/// since it was opened: more bytes follow, or its size, modification or
/// status-change time moved (GNU tar's test, which also catches a rewrite
/// in place).
fn changed_while_read(f: &mut File, opened: &rustix::fs::Stat) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    let more = loop {
        match f.read(&mut probe) {
            Ok(n) => break n > 0,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let now = rustix::fs::fstat(&*f).map_err(io::Error::from)?;
    Ok(more
        || now.st_size != opened.st_size
        || (now.st_mtime, now.st_mtime_nsec) != (opened.st_mtime, opened.st_mtime_nsec)
        || (now.st_ctime, now.st_ctime_nsec) != (opened.st_ctime, opened.st_ctime_nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs and zeros stay one zstd -1 frame whatever the method (a
    /// context-mixing trial of 32 MiB of zeros took 132 s); text and
    /// ordinary data do not take this way out.
    #[test]
    fn degenerate_segments_are_decided_by_zstd() {
        let mut text = Vec::new();
        let mut x = 1u32;
        while text.len() < 100_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let words = ["the ", "archive ", "of ", "small ", "files ", "and\n"];
            text.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
        }
        assert!(degenerate(&text).is_none());
        assert!(degenerate(b"x").is_none());
        for method in [Method::Cm, Method::Fast, Method::Default] {
            let coding = Coding {
                zstd_level: 12,
                method,
                lm: None,
            };
            for data in [vec![0u8; 4 << 20], b"abcdefgh".repeat(512 << 10)] {
                let out = code_segments(vec![Segment { data: data.clone() }], &coding);
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].chunks, 1, "{method:?}");
                // frame tag, then the codec byte
                assert_eq!(out[0].bytes[..2], [0x02, CodecId::Zstd as u8], "{method:?}");
                let payload = &out[0].bytes[crate::format::FRAME_HEADER_LEN..];
                assert_eq!(zstd::bulk::decompress(payload, data.len()).unwrap(), data);
            }
        }
    }

    /// Pieces of the default and max methods: as few as can be of at most
    /// 4 MiB (default: an even number from 64 KiB on, except from 256 KiB
    /// to 4 MiB: one chunk of two streams).
    #[test]
    fn language_model_pieces() {
        const M: usize = 1 << 20;
        let count = |len: usize, m| len.div_ceil(lm_pieces(len, m));
        // (length, pieces and two streams with default, pieces with max)
        for (len, default, two, max) in [
            (1, 1, false, 1),
            ((64 << 10) - 1, 1, false, 1),
            (64 << 10, 2, false, 1),
            (152_089, 2, false, 1),
            ((256 << 10) - 1, 2, false, 1),
            (256 << 10, 1, true, 1),
            (768_771, 1, true, 1),
            (4 * M, 1, true, 1),
            (4 * M + 1, 2, false, 2),
            (8 * M + 1, 4, false, 3),
            (10_192_446, 4, false, 3),
            (32 * M, 8, false, 8),
        ] {
            assert_eq!(count(len, Method::Default), default, "default, {len} bytes");
            assert_eq!(count(len, Method::Max), max, "max, {len} bytes");
            assert_eq!(
                lm_preset(len, Method::Default).two_streams,
                two,
                "{len} bytes"
            );
            assert!(!lm_preset(len, Method::Max).two_streams, "{len} bytes");
            for m in [Method::Default, Method::Max] {
                assert!(lm_pieces(len, m) <= crate::cm::MAX_CM_LM_CHUNK);
            }
        }
    }
}
