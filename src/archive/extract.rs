//! Reading archives: parallel chunk decoding in input order, and the safe
//! writer that puts entries under a destination directory.
//!
//! # Security
//!
//! What [`DestWriter`] guarantees for any archive, however hostile (the
//! format layer has already rejected absolute paths, `..`, empty or `.`
//! components, NUL, backslashes, drive prefixes, duplicate and conflicting
//! paths, and hard links to anything but earlier files):
//!
//! - Every path is opened component by component relative to the
//!   destination's directory handle with `O_NOFOLLOW`: a symbolic link in any
//!   component (one from the archive, or one already in the destination)
//!   stops extraction instead of being followed (tar-rs RUSTSEC-2018-0002,
//!   GNU tar CVE-2025-45582).
//! - Symbolic links are created after every other entry, and only when their
//!   target, resolved from the link's directory through the archive's own
//!   links, stays inside the destination (zip2 CVE-2025-29787). Links that
//!   already existed in the destination are not followed by this check. A
//!   link with an absolute target is created only with
//!   [`DestWriter::allow_absolute_links`] (the extraction itself never
//!   writes through it, but other programs may follow it out of the
//!   destination).
//! - Hard links are made only to files this archive already wrote
//!   (libarchive CVE-2021-31566).
//! - No device nodes, FIFOs or sockets can be expressed in the format.
//! - Modes are masked with 0o755: no setuid, setgid or sticky bit.
//! - File data goes to a temporary file in the target directory (created
//!   with `O_EXCL`), which gets its final name only after every chunk's
//!   checksum passed; on any error it is removed. An existing file is
//!   replaced only with `overwrite`, and a directory never; an existing
//!   directory keeps its mode and times unless `overwrite` (GNU tar's
//!   `--no-overwrite-dir`), and lza never changes an owner.
//!
//! With [`DestWriter::keep_going`], an entry that breaks these rules (or
//! cannot be written) is reported and skipped, the others are extracted, and
//! [`DestWriter::failures`] counts the skipped ones; without it the first
//! one ends the extraction. Either way the directories' modes and times are
//! set at the end ([`DestWriter::restore_dirs`] after an error).
//!
//! Not guarded: a concurrent process changing the destination while lza
//! runs can still make a component a symlink between checks of *different*
//! entries, but never redirect an open handle.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RenameFlags, Timestamps};
use rustix::io::Errno;

use crate::archive::symlinks::{SymlinkChecker, split_leaf};
use crate::codecs::{self, DecodeError, TextCoder};
use crate::container::reader::{ArchiveReader, ChunkEvent, Event, Limits};
use crate::format::error::{Error, Result};
use crate::format::{CodecId, Entry, EntryKind};
use crate::runtime::pipeline::{self, Job, Pipeline};

/// What receives the entries and data of an archive, in order.
pub trait Sink {
    /// The archive's header checked out (and its model was found); called
    /// before anything else, so a refused archive leaves no trace.
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    /// Whether the data of `entry` (a regular file) is needed: a file, or
    /// a solid block of which no file is wanted, is read and its stream
    /// checksum checked, but not decoded, and gets no [`Sink::data`] call.
    /// Called before [`Sink::entry`] for the same entry.
    fn wants(&mut self, _entry: &Entry) -> bool {
        true
    }
    /// A new entry begins. A file's data follows in [`Sink::data`] calls.
    fn entry(&mut self, entry: &Entry) -> Result<()>;
    /// The next verified piece of the current file's data.
    fn data(&mut self, bytes: &[u8]) -> Result<()>;
    /// The archive ended and checked out.
    fn finish(&mut self) -> Result<()>;
}

/// A sink that keeps nothing (for `verify`).
pub struct Discard;

impl Sink for Discard {
    fn entry(&mut self, _: &Entry) -> Result<()> {
        Ok(())
    }
    fn data(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How to read an archive.
#[derive(Clone)]
pub struct ReadOptions {
    /// Decoder threads.
    pub threads: usize,
    /// Limits beyond the format's.
    pub limits: Limits,
    /// The model the archive's header names, if it names one.
    pub lm: Option<Arc<dyn TextCoder>>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            threads: 1,
            limits: Limits::default(),
            lm: None,
        }
    }
}

enum Out {
    Entry(Entry),
    /// The files of a solid block, whose data follows as `Data`.
    Block(Vec<Entry>),
    Data(Result<Vec<u8>>),
}

/// Hands a solid block's data to a sink file by file: each file's entry,
/// then its bytes, as if it had been archived on its own.
#[derive(Default)]
struct BlockFiles {
    files: std::collections::VecDeque<Entry>,
    /// Bytes of the current file still to come.
    left: u64,
    /// The block's data is not decoded: entries only.
    skip: bool,
}

impl BlockFiles {
    /// Start a block: pass on its leading entries up to the first one with
    /// data.
    fn start(&mut self, files: Vec<Entry>, skip: bool, sink: &mut dyn Sink) -> Result<()> {
        self.files = files.into();
        self.skip = skip;
        self.left = 0;
        self.next_files(sink)
    }

    /// Pass on entries until one with data to come (all of them if the
    /// block is not decoded).
    fn next_files(&mut self, sink: &mut dyn Sink) -> Result<()> {
        while self.left == 0 {
            let Some(e) = self.files.pop_front() else {
                return Ok(());
            };
            sink.entry(&e)?;
            if !self.skip {
                self.left = e.size;
            }
        }
        Ok(())
    }

    /// Whether a block's data is being handed out.
    fn active(&self) -> bool {
        self.left > 0
    }

    /// Hand decoded block bytes to the files they belong to.
    fn data(&mut self, mut bytes: &[u8], sink: &mut dyn Sink) -> Result<()> {
        while !bytes.is_empty() {
            let n = (self.left.min(bytes.len() as u64)) as usize;
            if n == 0 {
                return Err(Error::internal("solid block data beyond its files"));
            }
            sink.data(&bytes[..n])?;
            self.left -= n as u64;
            bytes = &bytes[n..];
            self.next_files(sink)?;
        }
        Ok(())
    }
}

fn decode_chunks(chunks: Vec<ChunkEvent>, lm: Option<&dyn TextCoder>) -> Vec<Out> {
    use rayon::prelude::*;
    let is_lm = |c: &ChunkEvent| c.header.codec == CodecId::LanguageModel;
    let is_cm_lm = |c: &ChunkEvent| {
        c.header.codec == CodecId::ContextMixing && codecs::uses_model(&c.header, &c.payload)
    };
    let inputs = |f: &dyn Fn(&ChunkEvent) -> bool| -> Vec<(&[u8], usize)> {
        chunks
            .iter()
            .filter(|c| f(c))
            .map(|c| (c.payload.as_slice(), c.header.raw_len as usize))
            .collect()
    };
    let (lm_inputs, cm_inputs) = (inputs(&is_lm), inputs(&is_cm_lm));
    let uses_model = |c: &ChunkEvent| is_lm(c) || is_cm_lm(c);
    // The chunks without the model decode side by side with the model's,
    // not after them: a 5 MB chunk of XML took about 8 s that the group
    // used to add to its model chunks' time.
    let (model_results, simple) = rayon::join(
        || {
            let mut lm_out = match lm {
                Some(lm) if !lm_inputs.is_empty() => lm.decode_chunks(&lm_inputs).into_iter(),
                _ => Vec::new().into_iter(),
            };
            let mut cm_out = match lm {
                Some(lm) if !cm_inputs.is_empty() => lm.decode_cm_chunks(&cm_inputs).into_iter(),
                _ => Vec::new().into_iter(),
            };
            chunks
                .iter()
                .map(|c| {
                    if is_lm(c) {
                        lm_out.next()
                    } else if is_cm_lm(c) {
                        cm_out.next()
                    } else {
                        None
                    }
                })
                .collect::<Vec<Option<std::result::Result<Vec<u8>, DecodeError>>>>()
        },
        || {
            chunks
                .par_iter()
                .map(|c| {
                    if uses_model(c) {
                        return None;
                    }
                    let d = codecs::decode_simple(&c.header, &c.payload);
                    // (context mixing counts its bytes as it decodes them)
                    if c.header.codec != CodecId::ContextMixing {
                        crate::runtime::progress::add(c.header.raw_len as u64);
                    }
                    Some(d)
                })
                .collect::<Vec<_>>()
        },
    );
    chunks
        .iter()
        .zip(model_results)
        .zip(simple)
        .map(|((c, model), simple)| {
            let decoded = match simple {
                Some(d) => d,
                None => {
                    if is_lm(c) {
                        crate::runtime::progress::add(c.header.raw_len as u64);
                    }
                    match model {
                        Some(Ok(data)) => codecs::check_decoded(&c.header, data),
                        Some(Err(DecodeError::Corrupt(msg))) => {
                            Err(crate::format::error::CorruptKind::Decode(msg))
                        }
                        Some(Err(DecodeError::Internal(msg))) => {
                            return Out::Data(Err(c.internal(msg)));
                        }
                        None => Err(crate::format::error::CorruptKind::NoModel),
                    }
                }
            };
            Out::Data(decoded.map_err(|kind| c.corrupt(kind)))
        })
        .collect()
}

/// Read a whole archive from `input`, decode and check every chunk (in
/// parallel) and feed the results to `sink` in order. `on_entry` sees each
/// entry; `on_progress` the archive offset reached.
pub fn read_archive<R: Read>(
    input: R,
    opts: &ReadOptions,
    sink: &mut dyn Sink,
    on_entry: &mut dyn FnMut(&Entry),
    on_progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut reader = ArchiveReader::new(input, opts.limits)?;
    let hash = reader.header().model_hash;
    if !hash.is_none() && opts.lm.as_ref().map(|lm| lm.model_hash()) != Some(hash) {
        return Err(Error::UnknownModel { hash });
    }
    sink.start()?;
    let threads = opts.threads.max(1);
    let lm = opts.lm.clone();
    let job: Arc<Job<ChunkEvent, Out>> = Arc::new(move |c| decode_chunks(c, lm.as_deref()));
    let max_chunk = reader.header().max_chunk as usize;
    // one pool for all: the model's, if it has one (`-T N` means N threads)
    let pool = match opts.lm.as_ref().and_then(|lm| lm.pool()) {
        Some(pool) => pool,
        None => pipeline::thread_pool(threads),
    };
    let mut pipe = Pipeline::new(
        pool,
        job,
        crate::plan::in_flight_bytes(threads, max_chunk),
        4096,
    );
    let group_weight = opts
        .lm
        .as_ref()
        .map_or(1, |lm| crate::plan::decode_group_bytes(lm.batch()));

    let mut block = BlockFiles::default();
    let drain = |pipe: &mut Pipeline<ChunkEvent, Out>,
                 sink: &mut dyn Sink,
                 block: &mut BlockFiles,
                 all: bool|
     -> Result<()> {
        while all && !pipe.is_empty() || pipe.is_full() {
            match pipe
                .pop()
                .expect("not empty")
                .map_err(crate::archive::worker_error)?
            {
                Out::Entry(e) => sink.entry(&e)?,
                Out::Block(files) => block.start(files, false, sink)?,
                Out::Data(d) if block.active() => block.data(&d?, sink)?,
                Out::Data(d) => sink.data(&d?)?,
            }
        }
        Ok(())
    };
    // Whether the chunks being read are decoded (not when the sink wants
    // none of the files they belong to).
    let mut decoding = true;
    loop {
        let event = match reader.next_event() {
            Ok(event) => event,
            Err(e) => {
                // Chunks still decoding come earlier in the stream: their
                // errors are the ones to report.
                drain(&mut pipe, sink, &mut block, true)?;
                return Err(e);
            }
        };
        match event {
            Some(Event::Entry { entry, .. }) => {
                on_entry(&entry);
                decoding = entry.kind != EntryKind::File || sink.wants(&entry);
                if decoding {
                    pipe.push_ready(Out::Entry(entry));
                } else {
                    // (in order: earlier data goes out first)
                    drain(&mut pipe, sink, &mut block, true)?;
                    sink.entry(&entry)?;
                }
            }
            Some(Event::Block { files, .. }) => {
                for f in &files {
                    on_entry(f);
                }
                decoding = files.iter().any(|f| sink.wants(f));
                if decoding {
                    pipe.push_ready(Out::Block(files));
                } else {
                    drain(&mut pipe, sink, &mut block, true)?;
                    block.start(files, true, sink)?;
                }
            }
            Some(Event::Chunk(_)) if !decoding => {}
            Some(Event::Chunk(c)) => {
                let weight = c.header.raw_len as usize;
                if codecs::uses_model(&c.header, &c.payload) {
                    pipe.push_grouped(c, weight, group_weight);
                } else {
                    pipe.push_single(c, weight);
                }
            }
            Some(Event::End(_)) | None => break,
        }
        on_progress(reader.offset());
        drain(&mut pipe, sink, &mut block, false)?;
    }
    drain(&mut pipe, sink, &mut block, true)?;
    sink.finish()
}

/// List the entries of an archive without decoding data (the stream and
/// record checksums are still checked).
pub fn list_archive<R: Read>(
    input: R,
    limits: Limits,
    on_entry: &mut dyn FnMut(&Entry),
) -> Result<()> {
    let mut reader = ArchiveReader::new(input, limits)?;
    while let Some(ev) = reader.next_event()? {
        match ev {
            Event::Entry { entry, .. } => on_entry(&entry),
            Event::Block { files, .. } => files.iter().for_each(&mut *on_entry),
            _ => {}
        }
    }
    Ok(())
}

/// Mode bits extraction may set.
pub const MODE_MASK: u32 = 0o755;

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from(e)
}

/// A file being written under a temporary name.
struct PendingFile {
    /// Removes the file if a signal ends lza first. The first field, so
    /// that it is dropped before `dir` is closed.
    _registered: crate::runtime::cleanup::Registration,
    dir: OwnedFd,
    tmp_name: String,
    leaf: String,
    file: File,
    entry: Entry,
    left: u64,
    done: bool,
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.dir, self.tmp_name.as_str(), AtFlags::empty());
        }
    }
}

/// Where [`DestWriter::keep_going`] reports an entry it skips.
type Report = Box<dyn FnMut(&Error)>;

/// Writes entries under a destination directory, safely; see the module docs.
pub struct DestWriter {
    root: Option<OwnedFd>,
    root_path: PathBuf,
    overwrite: bool,
    /// Leave existing files alone without counting them as failures.
    skip_old: bool,
    allow_absolute: bool,
    /// Where entry failures go when extraction keeps going after them.
    report: Option<Report>,
    failures: u64,
    current: Option<PendingFile>,
    dirs: Vec<(String, u32, i64)>,
    symlinks: Vec<Entry>,
    tmp_counter: u64,
}

fn ts(mtime_ns: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl DestWriter {
    /// Extract under `dest`, which is created (if missing) only once the
    /// archive's header has been checked.
    pub fn new(dest: &Path, overwrite: bool) -> DestWriter {
        DestWriter {
            root: None,
            root_path: dest.into(),
            overwrite,
            skip_old: false,
            allow_absolute: false,
            report: None,
            failures: 0,
            current: None,
            dirs: Vec::new(),
            symlinks: Vec::new(),
            tmp_counter: 0,
        }
    }

    /// Report an entry that cannot be extracted to `report` and go on with
    /// the others (GNU tar's behaviour), instead of stopping.
    pub fn keep_going(mut self, report: impl FnMut(&Error) + 'static) -> DestWriter {
        self.report = Some(Box::new(report));
        self
    }

    /// Skip files (and links) that already exist without reporting them
    /// (tar's `--skip-old-files`); without `overwrite` they are otherwise
    /// an error.
    pub fn skip_old_files(mut self) -> DestWriter {
        self.skip_old = true;
        self
    }

    /// Create symbolic links whose target is absolute (refused by default).
    pub fn allow_absolute_links(mut self) -> DestWriter {
        self.allow_absolute = true;
        self
    }

    /// Entries that were reported and skipped (with [`Self::keep_going`]).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// An entry's result: with [`Self::keep_going`], an entry's failure is
    /// reported and counted, and extraction goes on.
    fn soft(&mut self, r: Result<()>) -> Result<()> {
        match r {
            Err(Error::Exists { .. }) if self.skip_old => Ok(()),
            Err(e @ (Error::Exists { .. } | Error::UnsafeEntry { .. } | Error::Io { .. }))
                if self.report.is_some() =>
            {
                self.failures += 1;
                if let Some(report) = self.report.as_mut() {
                    report(&e);
                }
                Ok(())
            }
            r => r,
        }
    }

    fn root(&self) -> &OwnedFd {
        self.root
            .as_ref()
            .expect("Sink::start opens the destination")
    }

    fn disk_path(&self, path: &str) -> PathBuf {
        self.root_path.join(path)
    }

    fn unsafe_entry(path: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Open the directory `dir` (archive-relative, "" for the root) without
    /// following symlinks, creating missing components if `create`.
    fn open_dir(&self, entry_path: &str, dir: &str, create: bool) -> Result<OwnedFd> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut fd = rustix::fs::openat(self.root(), ".", flags, Mode::empty())
            .map_err(|e| Error::io(&self.root_path, errno_io(e)))?;
        if dir.is_empty() {
            return Ok(fd);
        }
        for comp in dir.split('/') {
            let next = match rustix::fs::openat(&fd, comp, flags, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(Error::io(self.disk_path(dir), errno_io(e))),
                    }
                    rustix::fs::openat(&fd, comp, flags, Mode::empty())
                        .map_err(|e| self.component_error(entry_path, &fd, comp, e))?
                }
                Err(e) => return Err(self.component_error(entry_path, &fd, comp, e)),
            };
            fd = next;
        }
        Ok(fd)
    }

    fn component_error(&self, entry_path: &str, parent: &OwnedFd, comp: &str, e: Errno) -> Error {
        let kind = rustix::fs::statat(parent, comp, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode));
        match (e, kind) {
            (_, Ok(FileType::Symlink)) => Self::unsafe_entry(
                entry_path,
                format!("path component {comp:?} is a symbolic link; lza never writes through one"),
            ),
            (Errno::NOTDIR | Errno::LOOP, _) => Self::unsafe_entry(
                entry_path,
                format!("path component {comp:?} is not a directory"),
            ),
            _ => Error::io(self.disk_path(entry_path), errno_io(e)),
        }
    }

    fn existing_kind(dir: &OwnedFd, leaf: &str) -> Option<FileType> {
        rustix::fs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode))
    }

    /// Refuse early if `leaf` exists and may not be replaced.
    fn check_replaceable(&self, dir: &OwnedFd, leaf: &str, path: &str) -> Result<()> {
        match Self::existing_kind(dir, leaf) {
            None => Ok(()),
            Some(FileType::Directory) => Err(Error::Exists {
                path: self.disk_path(path),
            }),
            Some(_) if self.overwrite => Ok(()),
            Some(_) => Err(Error::Exists {
                path: self.disk_path(path),
            }),
        }
    }

    fn begin_file(&mut self, entry: &Entry) -> Result<()> {
        let (dir, leaf) = split_leaf(&entry.path);
        let dirfd = self.open_dir(&entry.path, dir, true)?;
        self.check_replaceable(&dirfd, leaf, &entry.path)?;
        let (file, tmp_name) = loop {
            self.tmp_counter += 1;
            let name = format!(".lza-tmp-{}-{}", std::process::id(), self.tmp_counter);
            match rustix::fs::openat(
                &dirfd,
                name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => break (File::from(fd), name),
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(Error::io(self.disk_path(&entry.path), errno_io(e))),
            }
        };
        let registered =
            crate::runtime::cleanup::register_at(std::os::fd::AsFd::as_fd(&dirfd), &tmp_name);
        self.current = Some(PendingFile {
            _registered: registered,
            dir: dirfd,
            tmp_name,
            leaf: leaf.into(),
            file,
            entry: entry.clone(),
            left: entry.size,
            done: false,
        });
        if entry.size == 0 {
            self.finish_file()?;
        }
        Ok(())
    }

    fn finish_file(&mut self) -> Result<()> {
        let mut p = self.current.take().expect("a file is open");
        let path = self.disk_path(&p.entry.path);
        p.file.flush().map_err(|e| Error::io(&path, e))?;
        rustix::fs::fchmod(&p.file, Mode::from_raw_mode(p.entry.mode & MODE_MASK))
            .map_err(|e| Error::io(&path, errno_io(e)))?;
        rustix::fs::futimens(&p.file, &ts(p.entry.mtime_ns))
            .map_err(|e| Error::io(&path, errno_io(e)))?;
        let renamed = if self.overwrite {
            self.check_replaceable(&p.dir, &p.leaf, &p.entry.path)?;
            rustix::fs::renameat(&p.dir, p.tmp_name.as_str(), &p.dir, p.leaf.as_str())
        } else {
            rustix::fs::renameat_with(
                &p.dir,
                p.tmp_name.as_str(),
                &p.dir,
                p.leaf.as_str(),
                RenameFlags::NOREPLACE,
            )
        };
        match renamed {
            Ok(()) => {
                p.done = true;
                Ok(())
            }
            Err(Errno::EXIST) => Err(Error::Exists { path }),
            Err(e) => Err(Error::io(path, errno_io(e))),
        }
    }

    fn make_dir(&mut self, entry: &Entry) -> Result<()> {
        let (dir, leaf) = split_leaf(&entry.path);
        let dirfd = self.open_dir(&entry.path, dir, true)?;
        match rustix::fs::mkdirat(&dirfd, leaf, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            // An existing directory keeps its mode and times (it may be
            // private, or shared and sticky) unless overwriting.
            Err(Errno::EXIST) if Self::existing_kind(&dirfd, leaf) == Some(FileType::Directory) => {
                if !self.overwrite {
                    return Ok(());
                }
            }
            Err(Errno::EXIST) => {
                return Err(Error::Exists {
                    path: self.disk_path(&entry.path),
                });
            }
            Err(e) => return Err(Error::io(self.disk_path(&entry.path), errno_io(e))),
        }
        self.dirs
            .push((entry.path.clone(), entry.mode & MODE_MASK, entry.mtime_ns));
        Ok(())
    }

    /// Remove a non-directory at `leaf` if overwriting; else refuse.
    fn make_room(&self, dirfd: &OwnedFd, leaf: &str, path: &str) -> Result<()> {
        self.check_replaceable(dirfd, leaf, path)?;
        if Self::existing_kind(dirfd, leaf).is_some() {
            rustix::fs::unlinkat(dirfd, leaf, AtFlags::empty())
                .map_err(|e| Error::io(self.disk_path(path), errno_io(e)))?;
        }
        Ok(())
    }

    fn make_hardlink(&mut self, entry: &Entry) -> Result<()> {
        let (dir, leaf) = split_leaf(&entry.path);
        let dirfd = self.open_dir(&entry.path, dir, true)?;
        let (src_dir, src_leaf) = split_leaf(&entry.link);
        let src_fd = self.open_dir(&entry.path, src_dir, false)?;
        self.make_room(&dirfd, leaf, &entry.path)?;
        rustix::fs::linkat(&src_fd, src_leaf, &dirfd, leaf, AtFlags::empty())
            .map_err(|e| Error::io(self.disk_path(&entry.path), errno_io(e)))
    }

    fn make_symlinks(&mut self) -> Result<()> {
        let symlinks = std::mem::take(&mut self.symlinks);
        let links: Vec<(&str, &str)> = symlinks
            .iter()
            .map(|e| (e.path.as_str(), e.link.as_str()))
            .collect();
        // Every link is checked before any is created: a link made first
        // must not change what a later one resolves to on disk.
        let refused = crate::archive::symlinks::refused(&links, self.allow_absolute)?;
        if self.report.is_none()
            && let Some((path, reason)) = refused.first()
        {
            // Stopping at the first refusal: no link at all is created.
            return Err(Self::unsafe_entry(path, reason.clone()));
        }
        let mut refused = refused.into_iter().peekable();
        let mut create = Vec::with_capacity(symlinks.len());
        for entry in &symlinks {
            match refused.peek() {
                Some((path, _)) if *path == entry.path => {
                    let (_, reason) = refused.next().expect("peeked");
                    create.push((entry, Some(reason)));
                }
                _ => create.push((entry, None)),
            }
        }
        for (entry, refusal) in create {
            let r = match refusal {
                Some(reason) => Err(Self::unsafe_entry(&entry.path, reason)),
                None => self.make_symlink(entry),
            };
            self.soft(r)?;
        }
        Ok(())
    }

    fn make_symlink(&self, entry: &Entry) -> Result<()> {
        let (dir, leaf) = split_leaf(&entry.path);
        let dirfd = self.open_dir(&entry.path, dir, true)?;
        self.make_room(&dirfd, leaf, &entry.path)?;
        rustix::fs::symlinkat(entry.link.as_str(), &dirfd, leaf)
            .map_err(|e| Error::io(self.disk_path(&entry.path), errno_io(e)))?;
        rustix::fs::utimensat(&dirfd, leaf, &ts(entry.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(self.disk_path(&entry.path), errno_io(e)))
    }

    fn apply_dir_metadata(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last change to it.
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.matches('/').count()));
        for (path, mode, mtime) in &dirs {
            let r = self.open_dir(path, path, false).and_then(|fd| {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(*mode))
                    .map_err(|e| Error::io(self.disk_path(path), errno_io(e)))?;
                rustix::fs::futimens(&fd, &ts(*mtime))
                    .map_err(|e| Error::io(self.disk_path(path), errno_io(e)))
            });
            self.soft(r)?;
        }
        Ok(())
    }

    /// Give the directories extracted so far their modes and times (they
    /// are created private and set at the end), after an error that ended
    /// the extraction early. Problems here are ignored: the error that
    /// stopped the extraction is the one to report.
    pub fn restore_dirs(&mut self) {
        self.current = None;
        let report = self.report.take();
        self.report = Some(Box::new(|_: &Error| {}));
        let _ = self.apply_dir_metadata();
        self.report = report;
    }
}

/// Resolve symlink `path`'s target through the archive's symlinks (`links`)
/// and check that it never leaves the destination.
///
/// Builds a [`SymlinkChecker`] for this one call (time linear in the links'
/// bytes); to check many links of one archive, build one and reuse it.
pub fn symlink_stays_inside(
    links: &HashMap<&str, &str>,
    path: &str,
) -> std::result::Result<(), String> {
    SymlinkChecker::new(links.iter().map(|(&p, &t)| (p, t)))
        .map_err(|e| e.to_string())?
        .check(path)
}

impl Sink for DestWriter {
    fn start(&mut self) -> Result<()> {
        let dest = &self.root_path;
        std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        let root = rustix::fs::openat(
            CWD,
            dest,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(dest, errno_io(e)))?;
        self.root = Some(root);
        Ok(())
    }

    fn entry(&mut self, entry: &Entry) -> Result<()> {
        debug_assert!(
            self.current.is_none(),
            "the reader checks that files are complete"
        );
        let r = match entry.kind {
            EntryKind::File => self.begin_file(entry),
            EntryKind::Directory => self.make_dir(entry),
            EntryKind::Hardlink => self.make_hardlink(entry),
            EntryKind::Symlink => {
                self.symlinks.push(entry.clone());
                Ok(())
            }
        };
        if r.is_err() {
            // (a skipped file's data is dropped as it comes)
            self.current = None;
        }
        self.soft(r)
    }

    fn data(&mut self, bytes: &[u8]) -> Result<()> {
        // No file open: this one is being skipped.
        let Some(p) = self.current.as_mut() else {
            return Ok(());
        };
        let written = p
            .file
            .write_all(bytes)
            .map_err(|e| Error::io(self.root_path.join(&p.entry.path), e));
        p.left -= bytes.len() as u64;
        let r = match written {
            Ok(()) if p.left == 0 => self.finish_file(),
            r => r,
        };
        if r.is_err() {
            self.current = None;
        }
        self.soft(r)
    }

    fn finish(&mut self) -> Result<()> {
        let links = self.make_symlinks();
        let dirs = self.apply_dir_metadata();
        links.and(dirs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_resolution() {
        let check = |links: &[(&str, &str)], path: &str| {
            let m: HashMap<&str, &str> = links.iter().copied().collect();
            symlink_stays_inside(&m, path).is_ok()
        };
        assert!(check(&[("a/l", "../b")], "a/l"));
        assert!(!check(&[("l", "../b")], "l"));
        assert!(!check(&[("l", "/etc")], "l"));
        // `s` points to the root, so "s/../x" escapes although it looks inside.
        assert!(!check(&[("a/s", ".."), ("a/l", "s/../x")], "a/l"));
        assert!(check(&[("a/s", "."), ("a/l", "s/x")], "a/l"));
        assert!(!check(&[("x", "y"), ("y", "x")], "x"));
    }
}
