//! The byte targets' harnesses and oracles, shared word for word with
//! `tests/fuzz_regressions.rs` (which includes this file with `#[path]`), so
//! a saved input is checked the same way by `cargo test` as by the fuzzer.
//! Depends on std, lza and tempfile only.
//!
//! The extract oracle looks only at the file system: it walks what the
//! extractor wrote, collects the symbolic links that actually exist, and
//! resolves each one with kernel semantics (a link is replaced by its target
//! relative to the link's directory, `..` then goes to the parent of where
//! that led) — not with lza's resolver. Each link is resolved once and
//! remembered, over a trie of the links' paths, so the cost stays linear
//! even for hostile chains of deep links.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use lza::archive::extract::{self, DestWriter, Discard, ReadOptions, Sink};
use lza::container::reader::Limits;
use lza::format::{Entry, EntryKind};

/// Limits the byte-oriented targets read with: tighter than the defaults so
/// that the work per input stays small (format-spec section 10 lets a caller
/// set both). The largest single allocation stays one chunk payload
/// (`stored_len` <= 72 MiB + 1 KiB) and `max_size` caps the raw bytes of
/// all chunks at 64 MiB.
pub fn fuzz_limits() -> Limits {
    Limits {
        max_entries: 10_000,
        max_size: 64 << 20,
    }
}

/// Raw bytes of context-mixing chunks one input may make the decoder work
/// through. Decoding them costs about 1 µs a byte in a release build and
/// 25-30 µs under ASan (a 4 MiB chunk of a 2 KB archive: 4 s and 115 s),
/// and format-spec section 10 leaves bounding that work to the caller's
/// `max_size`; 64 KiB keeps an input within seconds under ASan, well inside
/// the 20 s timeout. The context-mixing decoder itself is fuzzed by the
/// `cm_chunk` target with chunks of up to 64 KiB too.
pub const CM_FUZZ_BUDGET: u64 = 64 << 10;

/// The limits `data` is read with: [`fuzz_limits`], with `max_size`
/// lowered to [`CM_FUZZ_BUDGET`] when the archive's context-mixing chunks
/// (as far as a reader that decodes nothing gets) declare more than that.
pub fn limits_for(data: &[u8]) -> Limits {
    let mut limits = fuzz_limits();
    let mut cm = 0u64;
    if let Ok(mut r) = lza::container::reader::ArchiveReader::new(data, limits) {
        while let Ok(Some(event)) = r.next_event() {
            match event {
                lza::container::reader::Event::Chunk(c)
                    if c.header.codec == lza::format::CodecId::ContextMixing =>
                {
                    cm += c.header.raw_len as u64
                }
                _ => {}
            }
        }
    }
    if cm > CM_FUZZ_BUDGET {
        limits.max_size = CM_FUZZ_BUDGET;
    }
    limits
}

/// A sink that checks what the reader promises its sinks: data only inside a
/// file, never more than the declared size, each file complete before the
/// next entry and at the end.
#[derive(Default)]
struct Checking {
    entries: Vec<Entry>,
    left: u64,
    data_bytes: u64,
}

impl Sink for Checking {
    fn entry(&mut self, entry: &Entry) -> lza::Result<()> {
        assert_eq!(self.left, 0, "entry before the previous file was complete");
        if entry.kind == EntryKind::File {
            self.left = entry.size;
        }
        self.entries.push(entry.clone());
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> lza::Result<()> {
        assert!(!bytes.is_empty(), "empty data piece");
        assert!(
            bytes.len() as u64 <= self.left,
            "data beyond the declared size"
        );
        self.left -= bytes.len() as u64;
        self.data_bytes += bytes.len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> lza::Result<()> {
        assert_eq!(self.left, 0, "archive ended inside a file");
        Ok(())
    }
}

/// The decode target: list and decode `data` (1 or 2 decoder threads, from
/// its length); no panic, and the two agree.
pub fn decode_checked(data: &[u8]) {
    let limits = limits_for(data);
    let mut listed = Vec::new();
    let list = extract::list_archive(data, limits, &mut |e| listed.push(e.clone()));

    let opts = ReadOptions {
        // Two decoder threads for odd lengths: results must come out in order.
        threads: 1 + data.len() % 2,
        limits,
        lm: None,
    };
    let read = extract::read_archive(data, &opts, &mut Discard, &mut |_| {}, &mut |_| {});
    if read.is_ok() {
        assert!(
            list.is_ok(),
            "read_archive accepts what list_archive rejects: {list:?}"
        );
        let mut sink = Checking::default();
        let mut seen = Vec::new();
        extract::read_archive(
            data,
            &opts,
            &mut sink,
            &mut |e| seen.push(e.clone()),
            &mut |_| {},
        )
        .expect("second read of an accepted archive");
        assert_eq!(sink.entries, listed, "sink and list disagree");
        assert_eq!(seen, listed, "on_entry and list disagree");
        let declared: u64 = listed.iter().map(|e| e.size).sum();
        assert_eq!(
            sink.data_bytes, declared,
            "data does not add up to the sizes"
        );
        indexed_agrees(data, limits, &listed);
    } else if let (Ok(()), Err(e)) = (&list, read) {
        // Listing skips decoding, so it may accept what decoding rejects, but
        // only for a chunk's data, a limit or the model, never the structure.
        assert!(
            matches!(
                &e,
                lza::Error::Corrupt { chunk: Some(_), .. }
                    | lza::Error::Limit(_)
                    | lza::Error::UnknownModel { .. }
            ),
            "list accepts, read rejects with a non-chunk error: {e}"
        );
    }
}

/// An archive the streaming reader accepted, read through its indexes
/// (format-spec 13), if every member has one: the index side accepts it
/// too and lists the same entries (it checks less, never more).
fn indexed_agrees(data: &[u8], limits: Limits, listed: &[Entry]) {
    let idx = lza::container::index::ArchiveIndex::open(data)
        .unwrap_or_else(|e| panic!("stream accepted, index rejected: {e}"));
    if let Some(idx) = idx {
        let entries = idx
            .entries(data, limits)
            .unwrap_or_else(|e| panic!("stream accepted, index entries rejected: {e}"));
        let by_index: Vec<&Entry> = entries.iter().map(|e| &e.entry).collect();
        let by_stream: Vec<&Entry> = listed.iter().collect();
        assert_eq!(
            by_index, by_stream,
            "index and stream list different entries"
        );
        ranges_agree(data, limits, &idx, &entries);
    }
}

/// Ranges of an indexed archive read as the stream reads the whole: the
/// planner's two parts (never cut inside a solid block) pass every entry
/// but directories, in order; a single file of a solid block, read through
/// [`lza::archive::select::RangeFilter`], passes that file alone with all its data.
fn ranges_agree(
    data: &[u8],
    limits: Limits,
    idx: &lza::container::index::ArchiveIndex,
    entries: &[lza::container::index::IndexedEntry],
) {
    let opts = ReadOptions {
        threads: 1,
        limits,
        lm: None,
    };
    let mut passed = Vec::new();
    for r in lza::container::index::ArchiveIndex::plan(entries, 2) {
        let rr = idx.range_reader(data, entries, r, None);
        assert!(rr.wanted().is_none(), "the planner cut inside a block");
        let mut sink = Checking::default();
        extract::read_archive(rr, &opts, &mut sink, &mut |_| {}, &mut |_| {})
            .unwrap_or_else(|e| panic!("whole archive accepted, planned range rejected: {e}"));
        passed.extend(sink.entries);
    }
    let want: Vec<&Entry> = entries
        .iter()
        .map(|e| &e.entry)
        .filter(|e| e.kind != EntryKind::Directory)
        .collect();
    assert_eq!(
        passed.iter().collect::<Vec<_>>(),
        want,
        "ranges and stream differ"
    );
    if let Some(i) = entries
        .iter()
        .position(|e| e.block.is_some_and(|b| b.file > 0))
    {
        let rr = idx.range_reader(data, entries, i..i + 1, None);
        let wanted = rr.wanted().expect("a range inside a block needs a filter");
        let mut sink = Checking::default();
        let mut filter = lza::archive::select::RangeFilter::new(&mut sink, wanted);
        extract::read_archive(rr, &opts, &mut filter, &mut |_| {}, &mut |_| {})
            .unwrap_or_else(|e| panic!("whole archive accepted, its block rejected: {e}"));
        assert_eq!(filter.passed(), 1);
        assert_eq!(sink.entries, [entries[i].entry.clone()]);
        assert_eq!(sink.data_bytes, entries[i].entry.size);
    }
}

/// Planted links: names the seeds and the dictionary use as first components.
const PLANTED: [(&str, &str); 4] = [
    ("a", "../victim"),
    ("d", "../victim"),
    ("hello.txt", "../victim/hello.txt"),
    ("sym", "../victim"),
];

/// The extract target: extract `data` with `DestWriter` into `outer/dest`
/// and check with [`check_confined`]. From the length: the destination
/// exists or not, `overwrite` is on or off, and for one input in four the
/// destination already holds symbolic links out of it, to `outer/victim/`
/// (as an attacker who planted them would leave): nothing may be written
/// through them.
pub fn extract_checked(data: &[u8]) {
    let existing = data.len().is_multiple_of(2);
    extract_with(
        data,
        existing,
        existing && data.len().is_multiple_of(4),
        data.len().is_multiple_of(3),
    );
}

/// [`extract_checked`] with the choices given.
pub fn extract_with(data: &[u8], existing: bool, planted: bool, overwrite: bool) {
    let outer = tempfile::tempdir().expect("outer tempdir");
    let dest = outer.path().join("dest");
    let victim = outer.path().join("victim");
    // (ino, ctime) of each planted link, to tell it from a later one.
    let mut ours = HashSet::new();
    if existing {
        std::fs::create_dir(&dest).expect("dest dir");
    }
    if planted {
        std::fs::create_dir(&victim).expect("victim dir");
        for (name, target) in PLANTED {
            let p = dest.join(name);
            std::os::unix::fs::symlink(target, &p).expect("plant link");
            let md = std::fs::symlink_metadata(&p).unwrap();
            ours.insert((md.ino(), md.ctime(), md.ctime_nsec()));
        }
    }
    let opts = ReadOptions {
        threads: 1,
        limits: limits_for(data),
        lm: None,
    };
    let mut paths = HashSet::new();
    {
        let mut w = DestWriter::new(&dest, overwrite);
        let _ = extract::read_archive(
            data,
            &opts,
            &mut w,
            &mut |e| {
                paths.insert(e.path.clone());
            },
            &mut |_| {},
        );
        // Dropping the writer removes a pending temporary file.
    }
    if planted {
        let inside: Vec<_> = std::fs::read_dir(&victim)
            .expect("victim still a directory")
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            inside.is_empty(),
            "written through a planted link: {inside:?}"
        );
        std::fs::remove_dir(&victim).unwrap();
        for (name, _) in PLANTED {
            let p = dest.join(name);
            // A guarded match, not a let chain: the fuzz crate is edition
            // 2021 and the tests that include this file are 2024.
            match std::fs::symlink_metadata(&p) {
                Ok(md)
                    if md.file_type().is_symlink()
                        && ours.contains(&(md.ino(), md.ctime(), md.ctime_nsec())) =>
                {
                    std::fs::remove_file(&p).unwrap()
                }
                _ => {}
            }
        }
    }
    check_confined(outer.path(), &dest, &paths);
    make_removable(outer.path());
}

/// Make every directory under `root` writable and searchable again (an
/// archive may set 0o000), without following symbolic links, so that the
/// temporary directories can be removed by a non-root user.
pub fn make_removable(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let p = e.path();
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            make_removable(&p);
        }
    }
}

/// Panics if extraction into `dest` (a path inside the fresh directory
/// `outer`, which held nothing else) wrote anything beside `dest`, left a
/// symbolic link in `dest` that resolves outside it, an absolute link, a
/// special file, a mode with bits outside 0o755, or a temporary file
/// (`.lza-tmp-*`) that the archive did not name (`entry_paths`), or a file
/// with a hard link outside `dest`. `dest` may
/// be missing: the extractor creates it only after the header checks.
pub fn check_confined(outer: &Path, dest: &Path, entry_paths: &HashSet<String>) {
    let names: Vec<OsString> = std::fs::read_dir(outer)
        .expect("read outer dir")
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    if names.is_empty() {
        return;
    }
    assert_eq!(
        names,
        vec![dest.file_name().unwrap().to_owned()],
        "something was written outside the destination"
    );
    let md = std::fs::symlink_metadata(dest).expect("dest exists");
    assert!(
        md.file_type().is_dir(),
        "destination replaced by a non-directory"
    );
    let mut links = Links::default();
    let mut inodes = HashMap::new();
    walk(dest, &mut Vec::new(), entry_paths, &mut links, &mut inodes);
    links.check_all();
    // Every name of a hard-linked file lies inside the destination.
    for ((_, ino), (seen, nlink)) in inodes {
        assert_eq!(
            seen, nlink,
            "inode {ino} has {nlink} links, {seen} inside the destination"
        );
    }
}

/// (dev, ino) -> (names seen inside, st_nlink)
type Inodes = HashMap<(u64, u64), (u64, u64)>;

fn walk(
    dest: &Path,
    rel: &mut Vec<OsString>,
    entry_paths: &HashSet<String>,
    links: &mut Links,
    inodes: &mut Inodes,
) {
    let dir = dest.join(rel.iter().collect::<PathBuf>());
    let rd = std::fs::read_dir(&dir).expect("read dir");
    for e in rd {
        let e = e.expect("dir entry");
        let name = e.file_name();
        rel.push(name.clone());
        let rel_str = || {
            rel.iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        let md = std::fs::symlink_metadata(e.path()).expect("lstat");
        let ft = md.file_type();
        assert!(
            !(ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket()),
            "special file created: {}",
            rel_str()
        );
        if name.to_string_lossy().starts_with(".lza-tmp-") {
            assert!(
                entry_paths.contains(&rel_str()),
                "temporary file left behind: {}",
                rel_str()
            );
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(e.path()).expect("readlink");
            assert!(
                !target.has_root(),
                "absolute symlink {} -> {target:?}",
                rel_str()
            );
            links.add(rel, target);
        } else {
            let mode = md.mode() & 0o7777;
            assert_eq!(
                mode & !0o755,
                0,
                "{}: mode {mode:o} not masked with 0o755",
                rel_str()
            );
            if ft.is_dir() {
                walk(dest, rel, entry_paths, links, inodes);
            } else {
                inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert((0, md.nlink()))
                    .0 += 1;
            }
        }
        rel.pop();
    }
}

/// Where a resolution ended up, as trie nodes (`None`: a component off the
/// trie, which no link lies below).
type Stack = Vec<Option<usize>>;

#[derive(Clone)]
enum Resolved {
    Inside(Stack),
    Escapes,
    /// The kernel answers ELOOP: nothing is reached, so nothing escapes.
    Loops,
}

#[derive(Default)]
struct Links {
    /// (parent node, component) -> node; node 0 is the destination.
    trie: HashMap<(usize, OsString), usize>,
    nodes: usize,
    /// node -> (components of the link's path, its target)
    link: HashMap<usize, (Vec<OsString>, PathBuf)>,
    memo: HashMap<usize, Resolved>,
    visiting: HashSet<usize>,
}

impl Links {
    fn child(&self, parent: Option<usize>, comp: &OsString) -> Option<usize> {
        self.trie.get(&(parent?, comp.clone())).copied()
    }

    fn add(&mut self, path: &[OsString], target: PathBuf) {
        let mut node = 0;
        for c in path {
            let next = self.nodes + 1;
            node = *self.trie.entry((node, c.clone())).or_insert(next);
            self.nodes = self.nodes.max(node);
        }
        self.link.insert(node, (path.to_vec(), target));
    }

    fn check_all(&mut self) {
        let mut all: Vec<usize> = self.link.keys().copied().collect();
        all.sort();
        for n in all {
            if let Resolved::Escapes = self.resolve(n) {
                let (path, target) = &self.link[&n];
                panic!("symlink {path:?} -> {target:?} resolves outside the destination");
            }
        }
    }

    fn resolve(&mut self, n: usize) -> Resolved {
        if let Some(r) = self.memo.get(&n) {
            return r.clone();
        }
        if !self.visiting.insert(n) {
            return Resolved::Loops;
        }
        let (path, target) = self.link[&n].clone();
        // Start in the link's directory.
        let mut stack: Stack = Vec::new();
        let mut node = Some(0);
        for c in &path[..path.len() - 1] {
            node = self.child(node, c);
            stack.push(node);
        }
        let mut result = None;
        for c in target.components() {
            match c {
                Component::CurDir => {}
                Component::ParentDir => {
                    if stack.pop().is_none() {
                        result = Some(Resolved::Escapes);
                        break;
                    }
                }
                Component::Normal(name) => {
                    let top = stack.last().copied().unwrap_or(Some(0));
                    let next = self.child(top, &name.to_owned());
                    stack.push(next);
                    if let Some(m) = next.filter(|m| self.link.contains_key(m)) {
                        match self.resolve(m) {
                            Resolved::Inside(s) => stack = s,
                            other => {
                                result = Some(other);
                                break;
                            }
                        }
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    result = Some(Resolved::Escapes);
                    break;
                }
            }
        }
        let result = result.unwrap_or(Resolved::Inside(stack));
        self.visiting.remove(&n);
        self.memo.insert(n, result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(links: &[(&str, &str)]) -> bool {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        for (path, target) in links {
            let p = dest.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, &p).unwrap();
        }
        std::panic::catch_unwind(|| check_confined(d.path(), &dest, &HashSet::new())).is_ok()
    }

    #[test]
    fn oracle_sees_escapes() {
        assert!(check(&[("a/up", "..")]));
        assert!(check(&[("a/up", ".."), ("a/in", "up/a/x")]));
        assert!(!check(&[("a/up", ".."), ("a/out", "up/..")]));
        assert!(!check(&[("l", "../x")]));
        assert!(!check(&[("a/s", ".."), ("a/l", "s/../x")]));
        assert!(check(&[("a/s", "."), ("a/l", "s/x")]));
        assert!(check(&[("x", "y"), ("y", "x")]));
        // Through a chain: b -> a/c -> .. (from a) = root, then ../z escapes.
        assert!(!check(&[("a/c", ".."), ("b", "a/c/../z")]));
        assert!(check(&[("a/c", ".."), ("b", "a/c/z")]));
    }

    /// An archive of `files` (path, contents), made with lza itself.
    fn archive_of(files: &[(&str, &str)]) -> Vec<u8> {
        let src = tempfile::tempdir().unwrap();
        for (path, data) in files {
            let p = src.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let sources = lza::archive::create::collect_sources(
            src.path(),
            &[PathBuf::from(".")],
            &lza::archive::create::exclude_set(&[]).unwrap(),
            &mut Default::default(),
        )
        .unwrap();
        let opts = lza::archive::create::CreateOptions::default();
        lza::archive::create::write_archive(
            Vec::new(),
            &sources,
            &opts,
            &mut |_| {},
            &mut |_| {},
            &mut Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn planted_links_are_not_written_through() {
        let data = archive_of(&[("a/x", "through a"), ("hello.txt", "hi"), ("d/e/f", "deep")]);
        for overwrite in [false, true] {
            extract_with(&data, true, true, overwrite);
        }
        extract_checked(&data);
    }

    #[test]
    fn oracle_sees_outside_hard_links() {
        let elsewhere = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("f"), b"x").unwrap();
        std::fs::hard_link(dest.join("f"), dest.join("g")).unwrap();
        check_confined(d.path(), &dest, &HashSet::new());
        std::fs::hard_link(dest.join("f"), elsewhere.path().join("h")).unwrap();
        let r = std::panic::catch_unwind(|| check_confined(d.path(), &dest, &HashSet::new()));
        assert!(r.is_err());
    }
}
