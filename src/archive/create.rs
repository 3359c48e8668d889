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

use crate::codecs::{self, Frame, TextCoder};
use crate::format::error::{Error, Result};
use crate::format::{
    BlockFile, BlockRecord, EndRecord, Entry, EntryKind, HEADER_LEN, Header, ModelHash, VERSION,
    VERSION_1, check_archive_path,
};
use crate::plan::{self, Coding, Segment, code_segments};
pub use crate::plan::{DEFAULT_CHUNK_SIZE, LM_CHUNK_SIZE, MAX_IN_FLIGHT, Method, Solid};
use crate::runtime::pipeline::{self, Job, Pipeline};

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
    /// Solid blocks for small files ([`Solid::OFF`]: every file on its own;
    /// a version 1 archive unless the method needs version 2).
    pub solid: Solid,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            threads: 1,
            level: 6,
            chunk_size: DEFAULT_CHUNK_SIZE,
            method: Method::Zstd,
            lm: None,
            solid: Solid::OFF,
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
    /// An entry record.
    fn entry(entry: &Entry) -> Emit {
        Emit {
            bytes: entry.to_bytes(),
            entries: 1,
            chunks: 0,
            lm_chunks: 0,
            raw: 0,
        }
    }

    /// The frames of a segment.
    fn frames(frames: &[Frame]) -> Emit {
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
                .filter(|f| codecs::uses_model(&f.header, &f.payload))
                .count() as u64,
            raw: frames.iter().map(|f| f.header.raw_len as u64).sum(),
        }
    }

    /// A solid block record of `files` and the frames of their data.
    fn block(files: &[BlockFile], frames: &[Frame]) -> Emit {
        let data = Emit::frames(frames);
        let mut bytes = BlockRecord {
            files,
            chunks: frames.len() as u32,
            data_len: data.bytes.len() as u64,
        }
        .to_bytes();
        bytes.extend_from_slice(&data.bytes);
        Emit {
            bytes,
            entries: files.len() as u64,
            ..data
        }
    }
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
    // (a block is one segment: at most max_chunk bytes)
    let solid = Solid {
        block_size: opts.solid.block_size.min(opts.chunk_size as usize),
        ..opts.solid
    };
    let header = Header {
        // version 1 where nothing in the archive needs version 2: no solid
        // block and no context-mixing preset 9
        version: if solid.is_on() || opts.method.needs_version_2() {
            VERSION
        } else {
            VERSION_1
        },
        max_chunk: opts.chunk_size,
        model_hash,
    };
    let w = ArchiveWriter::new(out, &header)?;
    let coding = Coding {
        zstd_level: opts.zstd_level(),
        method: opts.method,
        lm: lm.clone(),
    };
    let job: Arc<Job<Work, Emit>> = Arc::new(move |work: Vec<Work>| {
        let (segments, blocks): (Vec<Segment>, Vec<Option<Vec<BlockFile>>>) =
            work.into_iter().map(|w| (w.segment, w.block)).unzip();
        code_segments(segments, &coding)
            .into_iter()
            .zip(blocks)
            .map(|(frames, block)| match block {
                Some(files) => Emit::block(&files, &frames),
                None => Emit::frames(&frames),
            })
            .collect()
    });
    let threads = opts.threads.max(1);
    let chunk = opts.chunk_size as usize;
    // one pool for all: the model's, if it has one (`-T N` means N threads)
    let pool = match lm.as_ref().and_then(|lm| lm.pool()) {
        Some(pool) => pool,
        None => pipeline::thread_pool(threads),
    };
    let pipe = Pipeline::new(pool, job, plan::in_flight_bytes(threads, chunk), 4096);
    let mut run = Run {
        pipe,
        w,
        group_limit: lm
            .as_ref()
            .map(|lm| plan::model_group_bytes(lm.batch(), opts.method)),
        chunk_size: opts.chunk_size as u64,
        on_entry,
        on_progress,
        warnings,
        opener: Opener { dir: None },
        left_out: std::collections::HashSet::new(),
    };

    // Directories, links and files too large for a block go out in walk
    // order; the files for blocks (and hard links to them) follow.
    let mut small = Vec::new();
    let mut in_blocks = std::collections::HashSet::new();
    let mut later_links = Vec::new();
    for src in sources {
        match src.entry.kind {
            EntryKind::File if solid.takes(src.entry.size) => {
                in_blocks.insert(src.entry.path.as_str());
                small.push(src);
            }
            EntryKind::Hardlink if in_blocks.contains(src.entry.link.as_str()) => {
                later_links.push(src)
            }
            _ => run.add(src)?,
        }
    }
    if solid.sort {
        small.sort_by_cached_key(|s| plan::solid_order(&s.entry.path));
    } else {
        let files: Vec<(&str, u64)> = small
            .iter()
            .map(|s| (s.entry.path.as_str(), s.entry.size))
            .collect();
        small = plan::solid_sequence(&files)
            .into_iter()
            .map(|k| small[k])
            .collect();
    }
    let mut pending: [PendingBlock; 3] = Default::default();
    for src in small {
        let Some((mut entry, mut f, opened)) = run.open(src)? else {
            continue;
        };
        if !solid.takes(entry.size) {
            // it grew past what a block takes since the walk
            run.add_opened(src, entry, f, opened)?;
            continue;
        }
        let mut data = vec![0u8; entry.size as usize];
        let got = read_up_to(&mut f, &mut data).map_err(|e| Error::io(&src.fs_path, e))?;
        run.check_read(src, &mut entry, &mut f, &opened, got)?;
        (run.on_entry)(&entry);
        let class = plan::file_class(&data) as usize;
        let p = &mut pending[class];
        if !p.files.is_empty() && !p.fits(&entry, solid.block_size) {
            let full = std::mem::take(p);
            run.push_block(full)?;
        }
        let p = &mut pending[class];
        p.table += entry.path.len() + 24;
        p.files.push(BlockFile {
            path: entry.path,
            mode: entry.mode,
            mtime_ns: entry.mtime_ns,
            size: entry.size,
        });
        p.data.extend_from_slice(&data);
    }
    for p in pending {
        if !p.files.is_empty() {
            run.push_block(p)?;
        }
    }
    for src in later_links {
        run.add(src)?;
    }
    run.drain(true)?;
    let lm_chunks = run.w.lm_chunks;
    Ok((run.w.finish()?, header, lm_chunks))
}

/// A solid block being filled.
#[derive(Default)]
struct PendingBlock {
    files: Vec<BlockFile>,
    data: Vec<u8>,
    /// A bound on the file table's length.
    table: usize,
}

impl PendingBlock {
    /// Whether `entry` fits into this block of at most `block_size` bytes
    /// (and the format's bounds on a block's files and table).
    fn fits(&self, entry: &Entry, block_size: usize) -> bool {
        self.data.len() + entry.size as usize <= block_size
            && self.files.len() < crate::format::MAX_BLOCK_FILES as usize
            && self.table + entry.path.len() + 24 <= crate::format::MAX_BLOCK_TABLE as usize / 2
    }
}

/// One unit of coding work: a segment of a file, or a solid block's data
/// with its files.
struct Work {
    segment: Segment,
    block: Option<Vec<BlockFile>>,
}

/// The state of one archive being written.
struct Run<'a, W: Write> {
    pipe: Pipeline<Work, Emit>,
    w: ArchiveWriter<W>,
    group_limit: Option<usize>,
    chunk_size: u64,
    on_entry: &'a mut dyn FnMut(&Entry),
    on_progress: &'a mut dyn FnMut(u64),
    warnings: &'a mut Warnings,
    opener: Opener,
    /// Files not archived, so that their hard links are left out too.
    left_out: std::collections::HashSet<String>,
}

impl<W: Write> Run<'_, W> {
    fn drain(&mut self, all: bool) -> Result<()> {
        while all && !self.pipe.is_empty() || self.pipe.is_full() {
            let e = self
                .pipe
                .pop()
                .expect("not empty")
                .map_err(crate::archive::worker_error)?;
            self.w.emit(&e)?;
            if e.raw > 0 {
                (self.on_progress)(e.raw);
            }
        }
        Ok(())
    }

    fn push(&mut self, work: Work) -> Result<()> {
        let weight = work.segment.data.len();
        match self.group_limit {
            Some(limit) => self.pipe.push_grouped(work, weight, limit),
            None => self.pipe.push_single(work, weight),
        }
        self.drain(false)
    }

    fn push_block(&mut self, block: PendingBlock) -> Result<()> {
        if block.data.is_empty() {
            // empty files only: nothing to code
            self.pipe.push_ready(Emit::block(&block.files, &[]));
            return self.drain(false);
        }
        self.push(Work {
            segment: Segment { data: block.data },
            block: Some(block.files),
        })
    }

    /// Open a regular file as the walk listed it; its entry as opened, or
    /// `None` (with a warning) when it cannot be archived.
    fn open(&mut self, src: &Source) -> Result<Option<(Entry, File, rustix::fs::Stat)>> {
        let mut entry = src.entry.clone();
        match self.opener.open(src) {
            Ok((f, st)) => {
                // The entry says what was opened: size, time and mode as
                // the descriptor has them now.
                entry.size = st.st_size as u64;
                entry.mtime_ns = stat_mtime_ns(&st);
                entry.mode = st.st_mode & 0o7777;
                Ok(Some((entry, f, st)))
            }
            Err(why) => {
                self.warnings
                    .skip(format!("{:?}: {why}; not archived", src.fs_path));
                self.left_out.insert(entry.path.clone());
                (self.on_progress)(src.entry.size);
                Ok(None)
            }
        }
    }

    /// After reading a whole file of `entry.size` bytes into a buffer (of
    /// which `got` were read): warn if it shrank (the rest stays zeros) or
    /// changed.
    fn check_read(
        &mut self,
        src: &Source,
        entry: &mut Entry,
        f: &mut File,
        opened: &rustix::fs::Stat,
        got: usize,
    ) -> Result<()> {
        let shrank = entry.size - got as u64;
        if shrank > 0 {
            self.warnings.change(format!(
                "{:?}: file shrank by {shrank} bytes as it was read; padded with zeros",
                src.fs_path
            ));
        } else if changed_while_read(f, opened).map_err(|e| Error::io(&src.fs_path, e))? {
            self.warnings.change(format!(
                "{:?}: file changed as we read it; archived its first {} bytes",
                src.fs_path, entry.size
            ));
        }
        Ok(())
    }

    /// Archive `src` as an entry record of its own (a file with its chunk
    /// frames after it).
    fn add(&mut self, src: &Source) -> Result<()> {
        match src.entry.kind {
            EntryKind::File => match self.open(src)? {
                Some((entry, f, opened)) => self.add_opened(src, entry, f, opened),
                None => Ok(()),
            },
            EntryKind::Hardlink if self.left_out.contains(&src.entry.link) => {
                self.warnings.skip(format!(
                    "{:?}: hard link to {:?}, which is not archived; not archived",
                    src.fs_path, src.entry.link
                ));
                Ok(())
            }
            _ => {
                (self.on_entry)(&src.entry);
                self.pipe.push_ready(Emit::entry(&src.entry));
                self.drain(false)
            }
        }
    }

    /// Archive an opened regular file as an entry record and its chunks.
    fn add_opened(
        &mut self,
        src: &Source,
        entry: Entry,
        mut f: File,
        opened: rustix::fs::Stat,
    ) -> Result<()> {
        (self.on_entry)(&entry);
        self.pipe.push_ready(Emit::entry(&entry));
        let mut left = entry.size;
        let mut shrank = 0;
        while left > 0 {
            let n = left.min(self.chunk_size) as usize;
            let mut data = vec![0u8; n];
            if shrank == 0 {
                let got = read_up_to(&mut f, &mut data).map_err(|e| Error::io(&src.fs_path, e))?;
                if got < n {
                    // the rest of the file stays zeros, as tar pads it
                    shrank = left - got as u64;
                }
            }
            left -= n as u64;
            self.push(Work {
                segment: Segment { data },
                block: None,
            })?;
        }
        if shrank > 0 {
            self.warnings.change(format!(
                "{:?}: file shrank by {shrank} bytes as it was read; padded with zeros",
                src.fs_path
            ));
        } else if changed_while_read(&mut f, &opened).map_err(|e| Error::io(&src.fs_path, e))? {
            self.warnings.change(format!(
                "{:?}: file changed as we read it; archived its first {} bytes",
                src.fs_path, entry.size
            ));
        }
        self.drain(false)
    }
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
