//! Helpers shared by the integration tests: a seeded RNG, tree building and
//! byte-for-byte tree comparison, directory snapshots, and (in [`spec`]) an
//! archive writer built from `format-spec.md` alone.
#![allow(dead_code)]

pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lza::archive::extract::Sink;
use lza::format::Entry;

/// xorshift64*: tiny, seeded, good enough for test data.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 32) as u8).collect()
    }
}

/// Deterministic text of about `n` bytes (compressible, valid UTF-8).
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "archive", "stream", "chunk", "entry", "zstd", "model", "byte", "frame", "über", "naïve",
        "日本", "the", "of", "and", "a", "to", "in", "is", "\n",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(WORDS[rng.range(0, WORDS.len() - 1)].as_bytes());
        out.push(b' ');
    }
    out
}

/// Set the mtime (and atime) of `path` without following a final symlink.
pub fn set_mtime(path: &Path, mtime_ns: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

pub fn write_file(path: &Path, data: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    set_mode(path, mode);
}

pub fn mtime_ns(md: &fs::Metadata) -> i64 {
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

/// Give every object under `root` (root included) a distinct, fixed mtime
/// with a non-zero nanosecond part, children before their directories.
pub fn fix_mtimes(root: &Path, base_ns: i64) {
    let mut all = Vec::new();
    walk(root, &mut all);
    // Deepest first so that setting a directory's time is its last change.
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, base_ns + i as i64 * 1_000_000_007 + 123_456_789);
    }
}

/// Every path under `root` (root included), sorted, not following symlinks.
pub fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    out.push(root.to_path_buf());
    let md = fs::symlink_metadata(root).unwrap();
    if md.is_dir() {
        let mut names: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            walk(&root.join(n), out);
        }
    }
}

/// Relative paths (with a type letter) of everything under `root`, root
/// excluded: for "nothing appeared outside" checks.
pub fn snapshot(root: &Path) -> Vec<String> {
    let mut all = Vec::new();
    walk(root, &mut all);
    all.iter()
        .skip(1)
        .map(|p| {
            let md = fs::symlink_metadata(p).unwrap();
            let t = if md.is_dir() {
                'd'
            } else if md.file_type().is_symlink() {
                'l'
            } else {
                'f'
            };
            format!("{t} {}", p.strip_prefix(root).unwrap().display())
        })
        .collect()
}

/// Compare two trees byte for byte: names, types, contents, symlink
/// targets, permission modes (`a`'s masked with 0o755), mtimes to the
/// nanosecond (files, directories and symlinks), and hard-link structure.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut la = Vec::new();
    let mut lb = Vec::new();
    walk(a, &mut la);
    walk(b, &mut lb);
    let ra: Vec<_> = la.iter().map(|p| p.strip_prefix(a).unwrap()).collect();
    let rb: Vec<_> = lb.iter().map(|p| p.strip_prefix(b).unwrap()).collect();
    assert_eq!(
        ra,
        rb,
        "the trees {} and {} hold different names",
        a.display(),
        b.display()
    );
    let mut groups_a: HashMap<(u64, u64), Vec<&Path>> = HashMap::new();
    let mut inode_b: BTreeMap<&Path, (u64, u64)> = BTreeMap::new();
    for ((pa, pb), rel) in la.iter().zip(&lb).zip(&ra) {
        let ma = fs::symlink_metadata(pa).unwrap();
        let mb = fs::symlink_metadata(pb).unwrap();
        let ft = |m: &fs::Metadata| {
            let t = m.file_type();
            (t.is_file(), t.is_dir(), t.is_symlink())
        };
        assert_eq!(ft(&ma), ft(&mb), "{}: type differs", rel.display());
        if ma.is_file() {
            let (da, db) = (fs::read(pa).unwrap(), fs::read(pb).unwrap());
            assert!(
                da == db,
                "{}: contents differ ({} vs {} bytes)",
                rel.display(),
                da.len(),
                db.len()
            );
            groups_a.entry((ma.dev(), ma.ino())).or_default().push(rel);
            inode_b.insert(rel, (mb.dev(), mb.ino()));
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(pa).unwrap(),
                fs::read_link(pb).unwrap(),
                "{}: symlink target differs",
                rel.display()
            );
        } else {
            assert_eq!(
                format!("{:o}", ma.mode() & 0o755),
                format!("{:o}", mb.mode() & 0o7777),
                "{}: mode differs",
                rel.display()
            );
        }
        assert_eq!(
            mtime_ns(&ma),
            mtime_ns(&mb),
            "{}: mtime differs",
            rel.display()
        );
    }
    // Hard links: files sharing an inode in `a` share one in `b`, and files
    // that do not, do not.
    let mut seen_b = HashMap::new();
    for (key, paths) in &groups_a {
        let ib = inode_b[paths[0]];
        for p in paths {
            assert_eq!(
                inode_b[p],
                ib,
                "{}: hard link to {} lost",
                p.display(),
                paths[0].display()
            );
        }
        if let Some(other) = seen_b.insert(ib, key) {
            panic!(
                "{}: shares an inode it should not ({other:?})",
                paths[0].display()
            );
        }
    }
}

/// Names under `dir` (recursively) that are extraction temporaries.
pub fn tmp_leftovers(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut all = Vec::new();
    walk(dir, &mut all);
    all.iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".lza-tmp-"))
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// A sink that keeps every entry with its data.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Collect {
    pub items: Vec<(Entry, Vec<u8>)>,
    pub finished: bool,
}

impl Sink for Collect {
    fn entry(&mut self, entry: &Entry) -> lza::Result<()> {
        assert!(!self.finished);
        self.items.push((entry.clone(), Vec::new()));
        Ok(())
    }
    fn data(&mut self, bytes: &[u8]) -> lza::Result<()> {
        assert!(!bytes.is_empty(), "empty data call");
        self.items
            .last_mut()
            .expect("data before any entry")
            .1
            .extend_from_slice(bytes);
        Ok(())
    }
    fn finish(&mut self) -> lza::Result<()> {
        self.finished = true;
        Ok(())
    }
}

/// Archive `inputs` (relative to `base`) with the library, in memory.
pub fn archive_tree(base: &Path, inputs: &[&str], chunk_size: u32, threads: usize) -> Vec<u8> {
    let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
    let mut warnings = lza::archive::create::Warnings::default();
    let sources = lza::archive::create::collect_sources(
        base,
        &inputs,
        &lza::archive::create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    assert!(warnings.messages.is_empty(), "{:?}", warnings.messages);
    let opts = lza::archive::create::CreateOptions {
        threads,
        level: 6,
        chunk_size,
        method: lza::archive::create::Method::Zstd,
        lm: None,
        ..Default::default()
    };
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

/// Decode a whole archive from a slice into a [`Collect`].
pub fn decode(bytes: &[u8]) -> lza::Result<Collect> {
    let mut c = Collect::default();
    lza::archive::extract::read_archive(
        bytes,
        &lza::archive::extract::ReadOptions::default(),
        &mut c,
        &mut |_| {},
        &mut |_| {},
    )?;
    Ok(c)
}

/// Extract `bytes` under `dest` with the library's safe writer.
pub fn extract_to(bytes: &[u8], dest: &Path, overwrite: bool) -> lza::Result<()> {
    let mut w = lza::archive::extract::DestWriter::new(dest, overwrite);
    lza::archive::extract::read_archive(
        bytes,
        &lza::archive::extract::ReadOptions::default(),
        &mut w,
        &mut |_| {},
        &mut |_| {},
    )
}

/// The `CorruptKind` of a `Corrupt` error, or a panic naming what it was.
pub fn corrupt_kind(r: lza::Result<impl std::fmt::Debug>) -> (u64, lza::CorruptKind) {
    match r {
        Err(lza::Error::Corrupt { offset, kind, .. }) => (offset, kind),
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

/// A path inside the repository.
pub fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Runs the lza binary with `args` and extra environment `envs`, isolated
/// from the caller's kernel choice and model directories.
pub fn lza(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_lza"));
    c.args(args)
        .env_remove("LZA_KERNEL")
        .env("LZA_MODEL_PATH", "")
        .env("HOME", "/nonexistent");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `out`, after asserting that lza succeeded.
pub fn ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "lza failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
