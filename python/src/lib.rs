//! Python bindings of lza: `import lza` (the Python package re-exports this
//! module's functions). Every call releases the GIL while it codes, so
//! Python threads and distributed workers run side by side; every lza
//! error becomes an exception of the hierarchy below.

// pyo3 0.22's exception macros test a `gil-refs` feature this crate does not declare.
#![allow(unexpected_cfgs)]
// pyo3 0.22's #[pyfunction] expansion converts PyErr into itself.
#![allow(clippy::useless_conversion)]

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lza::codecs::TextCoder;
use lza::archive::create::{self as lzcreate, CreateOptions, Method, Warnings};
use lza::archive::extract::{self as lzextract, DestWriter, ReadOptions, Sink};
use lza::format::{Entry, EntryKind, Header, HEADER_LEN};
use lza::container::index::{self, ArchiveIndex};
use lza::container::reader::Limits;
use lza::{CorruptKind, Error};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

create_exception!(_lza, LzaError, PyException, "Any lza failure.");
create_exception!(
    _lza,
    CorruptArchiveError,
    LzaError,
    "The archive breaks the format: corrupt, truncated, hostile, or a bad index."
);
create_exception!(
    _lza,
    UnsafeEntryError,
    LzaError,
    "An entry that extraction refuses to write (it would leave the destination, or replace an existing file)."
);
create_exception!(
    _lza,
    ModelError,
    LzaError,
    "The language model the archive needs is missing or invalid."
);
create_exception!(
    _lza,
    LimitError,
    LzaError,
    "A size or entry limit was exceeded."
);
create_exception!(
    _lza,
    LzaIOError,
    LzaError,
    "Reading or writing a file or the archive failed."
);

fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Corrupt { .. } => CorruptArchiveError::new_err(msg),
        Error::UnsafeEntry { .. } | Error::Exists { .. } => UnsafeEntryError::new_err(msg),
        Error::UnknownModel { .. } | Error::BadModel { .. } => ModelError::new_err(msg),
        Error::Limit(_) => LimitError::new_err(msg),
        Error::Io { .. } | Error::ArchiveIo { .. } => LzaIOError::new_err(msg),
        Error::BadInput { .. } => PyValueError::new_err(msg),
        _ => LzaError::new_err(msg),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> PyErr {
    to_py(Error::io(path, e))
}

fn threads_or_all(threads: usize) -> usize {
    if threads > 0 {
        threads
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

fn method_of(name: &str) -> PyResult<Method> {
    Ok(match name {
        "default" => Method::Default,
        "max" => Method::Max,
        "cm" => Method::Cm,
        "fast" => Method::Fast,
        "zstd" => Method::Zstd,
        "lm" => Method::Lm,
        _ => {
            return Err(PyValueError::new_err(format!(
                "unknown method {name:?} (max, default, cm, fast, zstd, lm)"
            )));
        }
    })
}

fn embedded_coder(threads: usize) -> lza::Result<Arc<dyn TextCoder>> {
    lza::codecs::models::open_coder(
        &lza::codecs::models::ModelFile::embedded(),
        threads,
        lza::codecs::models::DEFAULT_BATCH,
    )
}

/// The coder for the model a header names (none for a zero hash).
fn coder_for(header: &Header, threads: usize) -> lza::Result<Option<Arc<dyn TextCoder>>> {
    if header.model_hash.is_none() {
        return Ok(None);
    }
    let file = lza::codecs::models::find(header.model_hash, None)?;
    lza::codecs::models::open_coder(&file, threads, lza::codecs::models::DEFAULT_BATCH).map(Some)
}

fn read_header(f: &File, path: &Path) -> PyResult<Header> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; HEADER_LEN];
    f.read_exact_at(&mut b, 0).map_err(|e| io_err(path, e))?;
    Header::parse(&b).map_err(|kind| {
        to_py(Error::Corrupt {
            offset: 0,
            entry: None,
            chunk: None,
            kind,
        })
    })
}

#[allow(clippy::too_many_arguments)]
fn create_impl(
    archive: &Path,
    paths: &[PathBuf],
    root: &Path,
    method: Method,
    level: u32,
    threads: usize,
    index: bool,
    only: Option<&[String]>,
    keep_model_hash: bool,
    block_size: usize,
) -> lza::Result<(u64, u64, Vec<String>)> {
    let mut warnings = Warnings::default();
    let mut sources =
        lzcreate::collect_sources(root, paths, &lzcreate::exclude_set(&[])?, &mut warnings)?;
    if let Some(only) = only {
        // Only these archive paths of what the walk found (a distributed
        // driver gives each worker its own files, and the directories to
        // one of them).
        let wanted: std::collections::HashSet<&str> = only.iter().map(String::as_str).collect();
        sources.retain(|s| wanted.contains(s.entry.path.as_str()));
    }
    let lm = if method.uses_lm() {
        Some(embedded_coder(threads)?)
    } else {
        None
    };
    let chunk_size = CreateOptions::default().chunk_size;
    let opts = CreateOptions {
        threads,
        level,
        method,
        lm,
        solid: lza::plan::Solid {
            block_size: block_size.min(chunk_size as usize),
            sort: false,
        },
        ..CreateOptions::default()
    };
    // Read and write: sealing reads the archive back.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(archive)
        .map_err(|e| Error::io(archive, e))?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut entries = 0u64;
    let w = if keep_model_hash {
        lzcreate::write_archive(
            out,
            &sources,
            &opts,
            &mut |_| entries += 1,
            &mut |_| {},
            &mut warnings,
        )?
    } else {
        lzcreate::write_archive_seekable(
            out,
            &sources,
            &opts,
            &mut |_| entries += 1,
            &mut |_| {},
            &mut warnings,
        )?
    };
    let mut file = w.into_inner().map_err(|e| Error::ArchiveIo {
        action: "write",
        offset: 0,
        source: e.into_error(),
    })?;
    if index {
        index::seal(&mut file)?;
    }
    file.sync_all().map_err(|e| Error::io(archive, e))?;
    let len = file.metadata().map_err(|e| Error::io(archive, e))?.len();
    Ok((entries, len, warnings.messages))
}

/// create(archive, paths, *, root=".", method="default", level=6,
/// threads=0, index=True, only=None, keep_model_hash=False,
/// block_size=1048576) -> dict
///
/// Archive `paths` (relative to `root`, directories with their contents)
/// into the file `archive`. With `index`, the archive is version 2 with a
/// trailing index (it can be concatenated with others and read by ranges).
/// `only`: keep just these archive paths of what the walk finds.
/// `keep_model_hash`: the header names the model even when no chunk used
/// it (shards to be concatenated must agree, format-spec 12.2).
/// `block_size`: largest solid block of small files (format-spec 4a), as
/// `lza create --block-size`; 0 archives every file on its own. Returns
/// {"entries", "bytes", "warnings"}.
#[pyfunction]
#[pyo3(signature = (archive, paths, *, root=".".into(), method="default", level=6, threads=0, index=true, only=None, keep_model_hash=false, block_size=lza::plan::DEFAULT_BLOCK_SIZE))]
#[allow(clippy::too_many_arguments)]
fn create(
    py: Python<'_>,
    archive: PathBuf,
    paths: Vec<PathBuf>,
    root: PathBuf,
    method: &str,
    level: u32,
    threads: usize,
    index: bool,
    only: Option<Vec<String>>,
    keep_model_hash: bool,
    block_size: usize,
) -> PyResult<Py<PyDict>> {
    let method = method_of(method)?;
    if !(1..=9).contains(&level) {
        return Err(PyValueError::new_err("level must be 1..=9"));
    }
    let threads = threads_or_all(threads);
    let (entries, len, warnings) = py
        .allow_threads(|| {
            create_impl(
                &archive,
                &paths,
                &root,
                method,
                level,
                threads,
                index,
                only.as_deref(),
                keep_model_hash,
                block_size,
            )
        })
        .map_err(to_py)?;
    let d = PyDict::new_bound(py);
    d.set_item("entries", entries)?;
    d.set_item("bytes", len)?;
    d.set_item("warnings", warnings)?;
    Ok(d.unbind())
}

fn entry_dict<'py>(py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new_bound(py);
    d.set_item("path", &e.path)?;
    d.set_item(
        "type",
        match e.kind {
            EntryKind::File => "file",
            EntryKind::Directory => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hardlink",
        },
    )?;
    d.set_item("size", e.size)?;
    d.set_item("mode", e.mode)?;
    d.set_item("mtime_ns", e.mtime_ns)?;
    d.set_item("link", &e.link)?;
    Ok(d)
}

fn open(archive: &Path) -> PyResult<File> {
    File::open(archive).map_err(|e| io_err(archive, e))
}

/// list(archive, *, use_index=True) -> list of dicts
///
/// Every entry (path, type, size, mode, mtime_ns, link). Through the
/// index when the file has one (reading only the records, each checked),
/// else front to back.
#[pyfunction]
#[pyo3(signature = (archive, *, use_index=true))]
fn list(py: Python<'_>, archive: PathBuf, use_index: bool) -> PyResult<Py<PyList>> {
    let entries: Vec<Entry> = py
        .allow_threads(|| -> lza::Result<Vec<Entry>> {
            let f = File::open(&archive).map_err(|e| Error::io(&archive, e))?;
            let idx = if use_index {
                ArchiveIndex::open(&f)?
            } else {
                None
            };
            if let Some(idx) = idx {
                return Ok(idx
                    .entries(&f, Limits::default())?
                    .into_iter()
                    .map(|e| e.entry)
                    .collect());
            }
            let mut out = Vec::new();
            lzextract::list_archive(BufReader::new(f), Limits::default(), &mut |e| {
                out.push(e.clone())
            })?;
            Ok(out)
        })
        .map_err(to_py)?;
    let l = PyList::empty_bound(py);
    for e in &entries {
        l.append(entry_dict(py, e)?)?;
    }
    Ok(l.unbind())
}

/// info(archive) -> dict
///
/// {"indexed": bool, "members", "entries", "raw_bytes", "model"} from the
/// indexes (members/entries/raw_bytes are None without one).
#[pyfunction]
fn info(py: Python<'_>, archive: PathBuf) -> PyResult<Py<PyDict>> {
    let f = open(&archive)?;
    let header = read_header(&f, &archive)?;
    let idx = py.allow_threads(|| ArchiveIndex::open(&f)).map_err(to_py)?;
    let d = PyDict::new_bound(py);
    d.set_item("indexed", idx.is_some())?;
    d.set_item("members", idx.as_ref().map(|i| i.members.len()))?;
    d.set_item("entries", idx.as_ref().map(|i| i.entry_count()))?;
    d.set_item("raw_bytes", idx.as_ref().map(|i| i.raw_bytes()))?;
    d.set_item(
        "model",
        (!header.model_hash.is_none()).then(|| header.model_hash.to_string()),
    )?;
    Ok(d.unbind())
}

/// plan(archive, parts) -> list of (start, stop, bytes)
///
/// Split the entries of an indexed archive into at most `parts`
/// contiguous ranges of about equal archive bytes (hard links stay with
/// their targets), for `extract(..., part=(start, stop))`.
#[pyfunction]
fn plan(py: Python<'_>, archive: PathBuf, parts: usize) -> PyResult<Vec<(usize, usize, u64)>> {
    py.allow_threads(|| -> lza::Result<_> {
        let f = File::open(&archive).map_err(|e| Error::io(&archive, e))?;
        let idx = ArchiveIndex::open(&f)?.ok_or_else(no_index)?;
        let entries = idx.entries(&f, Limits::default())?;
        Ok(ArchiveIndex::plan(&entries, parts)
            .into_iter()
            .map(|r| {
                let bytes = entries[r.clone()].iter().map(|e| e.bytes()).sum();
                (r.start, r.end, bytes)
            })
            .collect())
    })
    .map_err(to_py)
}

fn no_index() -> Error {
    Error::Corrupt {
        offset: 0,
        entry: None,
        chunk: None,
        kind: CorruptKind::BadIndex("the archive has no index (extract it whole)".into()),
    }
}

fn read_into(
    input: impl Read,
    header: &Header,
    threads: usize,
    max_size: Option<u64>,
    sink: &mut dyn Sink,
) -> lza::Result<u64> {
    let lm = coder_for(header, threads)?;
    let opts = ReadOptions {
        threads,
        limits: Limits {
            max_size: max_size.unwrap_or(u64::MAX),
            ..Limits::default()
        },
        lm,
    };
    let mut n = 0u64;
    lzextract::read_archive(input, &opts, sink, &mut |_| n += 1, &mut |_| {})?;
    Ok(n)
}

/// extract(archive, dest, *, threads=0, overwrite=False, part=None,
/// directories=False, max_size=None) -> int
///
/// Extract into `dest`; returns the entries extracted. With `part=(start,
/// stop)` (an indexed archive), only those entries but directories; with
/// `directories=True`, only the directory entries (run last, with
/// `overwrite=True`, to set their modes and times after the parts).
#[pyfunction]
#[pyo3(signature = (archive, dest, *, threads=0, overwrite=false, part=None, directories=false, max_size=None))]
#[allow(clippy::too_many_arguments)]
fn extract(
    py: Python<'_>,
    archive: PathBuf,
    dest: PathBuf,
    threads: usize,
    overwrite: bool,
    part: Option<(usize, usize)>,
    directories: bool,
    max_size: Option<u64>,
) -> PyResult<u64> {
    let threads = threads_or_all(threads);
    let f = open(&archive)?;
    let header = read_header(&f, &archive)?;
    py.allow_threads(|| -> lza::Result<u64> {
        let mut sink = DestWriter::new(&dest, overwrite);
        if part.is_none() && !directories {
            return read_into(
                BufReader::with_capacity(1 << 20, &f),
                &header,
                threads,
                max_size,
                &mut sink,
            );
        }
        let idx = ArchiveIndex::open(&f)?.ok_or_else(no_index)?;
        let entries = idx.entries(&f, Limits::default())?;
        let (start, stop) = part.unwrap_or((0, entries.len()));
        if start > stop || stop > entries.len() {
            return Err(Error::Limit(format!(
                "part {start}..{stop} outside the archive's {} entries",
                entries.len()
            )));
        }
        let only = directories.then_some(EntryKind::Directory);
        let r = idx.range_reader(&f, &entries, start..stop, only);
        let header = &idx.members[0].header;
        match r.wanted() {
            // The part starts or ends inside a solid block: the block is
            // decoded whole, only the part's files are written.
            Some(wanted) => {
                let mut filter = lza::archive::select::RangeFilter::new(&mut sink, wanted);
                read_into(
                    BufReader::with_capacity(1 << 20, r),
                    header,
                    threads,
                    max_size,
                    &mut filter,
                )?;
                Ok(filter.passed())
            }
            None => read_into(
                BufReader::with_capacity(1 << 20, r),
                header,
                threads,
                max_size,
                &mut sink,
            ),
        }
    })
    .map_err(to_py)
}

/// concatenate(output, parts) -> int
///
/// Write the indexed archives `parts` one after another into `output` (as
/// `cat` does; each is checked to be an indexed version 2 archive first).
#[pyfunction]
fn concatenate(py: Python<'_>, output: PathBuf, parts: Vec<PathBuf>) -> PyResult<u64> {
    py.allow_threads(|| -> lza::Result<u64> {
        let out = File::create(&output).map_err(|e| Error::io(&output, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
        let refs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
        let n = index::concatenate(&mut w, &refs)?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&output, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&output, e))?;
        Ok(n)
    })
    .map_err(to_py)
}

/// compress(data, *, method="default", level=6, threads=0) -> bytes
///
/// An lza archive (with no index) holding `data` as one file entry named
/// "data"; `decompress` gives the bytes back.
#[pyfunction]
#[pyo3(signature = (data, *, method="default", level=6, threads=0))]
fn compress(
    py: Python<'_>,
    data: &[u8],
    method: &str,
    level: u32,
    threads: usize,
) -> PyResult<Py<PyBytes>> {
    let method = method_of(method)?;
    if !(1..=9).contains(&level) {
        return Err(PyValueError::new_err("level must be 1..=9"));
    }
    let threads = threads_or_all(threads);
    let out = py
        .allow_threads(|| -> lza::Result<Vec<u8>> {
            let dir = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let p = dir.path().join("data");
            std::fs::write(&p, data).map_err(|e| Error::io(&p, e))?;
            let archive = dir.path().join("a.lza");
            create_impl(
                &archive,
                &[PathBuf::from("data")],
                dir.path(),
                method,
                level,
                threads,
                false,
                None,
                false,
                // One file: no block (the blob stays a version 1 archive).
                0,
            )?;
            std::fs::read(&archive).map_err(|e| Error::io(&archive, e))
        })
        .map_err(to_py)?;
    Ok(PyBytes::new_bound(py, &out).unbind())
}

/// Collects the data of an archive that holds exactly one file entry.
#[derive(Default)]
struct OneFile {
    files: u64,
    others: u64,
    data: Vec<u8>,
}

impl Sink for OneFile {
    fn entry(&mut self, e: &Entry) -> lza::Result<()> {
        match e.kind {
            EntryKind::File => self.files += 1,
            _ => self.others += 1,
        }
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> lza::Result<()> {
        self.data.extend_from_slice(bytes);
        Ok(())
    }
    fn finish(&mut self) -> lza::Result<()> {
        Ok(())
    }
}

/// decompress(blob, *, threads=0, max_size=None) -> bytes
///
/// The data of an archive made by `compress` (exactly one file entry).
#[pyfunction]
#[pyo3(signature = (blob, *, threads=0, max_size=None))]
fn decompress(
    py: Python<'_>,
    blob: &[u8],
    threads: usize,
    max_size: Option<u64>,
) -> PyResult<Py<PyBytes>> {
    let threads = threads_or_all(threads);
    let data = py
        .allow_threads(|| -> lza::Result<Vec<u8>> {
            let header = blob
                .get(..HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .map(Header::parse);
            let header = match header {
                Some(Ok(h)) => h,
                Some(Err(kind)) => {
                    return Err(Error::Corrupt {
                        offset: 0,
                        entry: None,
                        chunk: None,
                        kind,
                    });
                }
                None => {
                    return Err(Error::Corrupt {
                        offset: blob.len() as u64,
                        entry: None,
                        chunk: None,
                        kind: CorruptKind::Truncated("the header"),
                    });
                }
            };
            let mut sink = OneFile::default();
            read_into(Cursor::new(blob), &header, threads, max_size, &mut sink)?;
            if sink.files != 1 || sink.others != 0 {
                return Err(Error::BadInput {
                    path: PathBuf::from("<bytes>"),
                    reason: format!(
                        "not a compress() result: {} files and {} other entries",
                        sink.files, sink.others
                    ),
                });
            }
            Ok(sink.data)
        })
        .map_err(to_py)?;
    Ok(PyBytes::new_bound(py, &data).unbind())
}

/// The native part of the `lza` package.
#[pymodule]
fn _lza(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("LzaError", py.get_type_bound::<LzaError>())?;
    m.add(
        "CorruptArchiveError",
        py.get_type_bound::<CorruptArchiveError>(),
    )?;
    m.add("UnsafeEntryError", py.get_type_bound::<UnsafeEntryError>())?;
    m.add("ModelError", py.get_type_bound::<ModelError>())?;
    m.add("LimitError", py.get_type_bound::<LimitError>())?;
    m.add("LzaIOError", py.get_type_bound::<LzaIOError>())?;
    m.add_function(wrap_pyfunction!(create, m)?)?;
    m.add_function(wrap_pyfunction!(list, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(concatenate, m)?)?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(decompress, m)?)?;
    Ok(())
}
