//! An arbitrary small tree (files, directories, symbolic links that stay
//! inside, hard links; arbitrary contents, modes and mtimes) is materialized,
//! archived with `collect_sources` + `write_archive` (tiny chunks, 1..=3
//! threads, solid blocks of several sizes or none), extracted, and must come back the same: names, kinds, contents,
//! modes masked with 0o755, mtimes, symlink targets and hard-link groups.
#![no_main]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lza::archive::create::{self, CreateOptions};
use lza::archive::extract::{self, DestWriter, ReadOptions};

const MAX_NODES: usize = 24;
const MAX_DEPTH: usize = 4;
const MAX_FILE: usize = 4096;

#[derive(Arbitrary, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    /// A link to the `n`-th created node (or a missing leaf), relative.
    Symlink {
        target: u8,
        dangling: bool,
    },
    /// A hard link to the `n`-th regular file.
    Hardlink(u8),
}

#[derive(Arbitrary, Debug)]
struct Node {
    /// Which directory (index into those created so far, 0 = root).
    parent: u8,
    name: Vec<u8>,
    kind: Kind,
    mode: u16,
    mtime: Option<(u32, u32)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    chunk_size: u8,
    threads: u8,
    level: u8,
    extract_threads: u8,
    block: u8,
}

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-";

fn name_of(raw: &[u8]) -> String {
    let mut s: String = raw
        .iter()
        .take(8)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        s.insert(0, 'n');
    }
    s
}

fn set_mtime(path: &Path, mtime: Option<(u32, u32)>) {
    if let Some((s, ns)) = mtime {
        let t = UNIX_EPOCH + Duration::new(s as u64, ns % 1_000_000_000);
        let f = std::fs::File::open(path).expect("open for mtime");
        f.set_modified(t).expect("set mtime");
    }
}

/// Create the tree under `root`; return nothing, the file system is the truth.
fn materialize(root: &Path, input: &Input) {
    // (archive-relative path, depth) of directories; "" is the root.
    let mut dirs: Vec<(String, usize)> = vec![(String::new(), 0)];
    let mut created: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut dir_meta: Vec<(String, u32, Option<(u32, u32)>)> = Vec::new();
    let mut file_meta: Vec<(String, Option<(u32, u32)>)> = Vec::new();
    for node in input.nodes.iter().take(MAX_NODES) {
        let (parent, depth) = dirs[node.parent as usize % dirs.len()].clone();
        let name = name_of(&node.name);
        let rel = if parent.is_empty() {
            name
        } else {
            format!("{parent}/{name}")
        };
        let path = root.join(&rel);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match &node.kind {
            Kind::File(data) => {
                let data = &data[..data.len().min(MAX_FILE)];
                std::fs::write(&path, data).expect("write file");
                // Readable by the archiver whatever the mode.
                let mode = (node.mode as u32 & 0o755) | 0o400;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
                files.push(rel.clone());
                file_meta.push((rel.clone(), node.mtime));
            }
            Kind::Dir => {
                if depth >= MAX_DEPTH {
                    continue;
                }
                std::fs::create_dir(&path).expect("mkdir");
                dirs.push((rel.clone(), depth + 1));
                // Owner rwx so that the tree can be built and read.
                dir_meta.push((rel.clone(), (node.mode as u32 & 0o755) | 0o700, node.mtime));
            }
            Kind::Symlink { target, dangling } => {
                let mut to = if created.is_empty() || *dangling {
                    "missing".to_string()
                } else {
                    created[*target as usize % created.len()].clone()
                };
                if *dangling && !created.is_empty() {
                    to = format!("{}/missing", created[*target as usize % created.len()]);
                }
                let ups = "../".repeat(depth);
                std::os::unix::fs::symlink(format!("{ups}{to}"), &path).expect("symlink");
            }
            Kind::Hardlink(i) => {
                if files.is_empty() {
                    continue;
                }
                let src = root.join(&files[*i as usize % files.len()]);
                std::fs::hard_link(&src, &path).expect("hard link");
            }
        }
        created.push(rel);
    }
    for (rel, mtime) in &file_meta {
        set_mtime(&root.join(rel), *mtime);
    }
    // Deepest first: a directory's mtime is set after its contents changed.
    dir_meta.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.matches('/').count()));
    for (rel, mode, mtime) in &dir_meta {
        let p = root.join(rel);
        set_mtime(&p, *mtime);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    File {
        data: Vec<u8>,
        mode: u32,
        link_group: usize,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

/// Everything under `root` except the root itself, with mtimes, hard-link
/// groups numbered by first appearance.
fn snapshot(root: &Path) -> BTreeMap<String, (Seen, i64)> {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for e in walk_sorted(root) {
        let rel = e.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
        let md = std::fs::symlink_metadata(&e).unwrap();
        let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        let ft = md.file_type();
        let seen = if ft.is_symlink() {
            Seen::Symlink {
                target: std::fs::read_link(&e).unwrap(),
            }
        } else if ft.is_dir() {
            Seen::Dir {
                mode: md.mode() & 0o755,
            }
        } else {
            let n = groups.len();
            let link_group = *groups.entry((md.dev(), md.ino())).or_insert(n);
            Seen::File {
                data: std::fs::read(&e).unwrap(),
                mode: md.mode() & 0o755,
                link_group,
            }
        };
        out.insert(rel, (seen, mtime));
    }
    out
}

fn walk_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let is_dir = std::fs::symlink_metadata(&p).unwrap().file_type().is_dir();
        out.push(p.clone());
        if is_dir {
            out.extend(walk_sorted(&p));
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let src = tempfile::tempdir().unwrap();
    materialize(src.path(), &input);
    let before = snapshot(src.path());

    let mut warnings = lza::archive::create::Warnings::default();
    let sources = create::collect_sources(
        src.path(),
        &[PathBuf::from(".")],
        &create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .expect("collect_sources");
    assert!(
        warnings.messages.is_empty(),
        "warnings: {:?}",
        warnings.messages
    );
    let opts = CreateOptions {
        threads: 1 + input.threads as usize % 3,
        level: 1 + input.level as u32 % 9,
        chunk_size: 1 + input.chunk_size as u32 % 128,
        method: [
            create::Method::Zstd,
            create::Method::Fast,
            create::Method::Cm,
        ][input.level as usize % 3],
        lm: None,
        // solid blocks (format-spec 4a) of several sizes, or none
        solid: create::Solid {
            block_size: [0, 64, 1000, 1 << 16][input.block as usize % 4],
            sort: input.block >= 128,
        },
    };
    let archive = create::write_archive(
        Vec::new(),
        &sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut Default::default(),
    )
    .expect("write_archive");

    let dst = tempfile::tempdir().unwrap();
    let ropts = ReadOptions {
        threads: 1 + input.extract_threads as usize % 3,
        ..ReadOptions::default()
    };
    let mut w = DestWriter::new(dst.path(), false);
    extract::read_archive(&archive[..], &ropts, &mut w, &mut |_| {}, &mut |_| {})
        .expect("extracting what we archived");
    drop(w);
    let after = snapshot(dst.path());
    if before != after {
        let keys: Vec<_> = before.keys().chain(after.keys()).collect();
        for k in keys {
            if before.get(k) != after.get(k) {
                eprintln!(
                    "{k}: before {:?}\n{k}: after  {:?}",
                    before.get(k),
                    after.get(k)
                );
            }
        }
        panic!("round trip changed the tree");
    }
});
