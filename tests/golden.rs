//! Golden archives in `testdata/golden/` pin format version 1.
//!
//! Regenerate (only when the format changes on purpose, with a version bump
//! per format-spec.md) with
//!
//!     LZA_REGEN_GOLDEN=1 cargo test --test golden -- --ignored --nocapture
//!
//! and paste the printed listing into `BASIC` below. Without the variable
//! the ignored test checks that the files on disk are what the generator
//! makes. The tree is built here, deterministically, from nothing but this
//! file (no shared helpers, so that editing them cannot move the goldens).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lza::format::{Entry, EntryKind};
use lza::{CorruptKind, Error};
use xxhash_rust::xxh3::xxh3_64;

const CHUNK: u32 = 1024;

const BASIC_LZA: &[u8] = include_bytes!("../testdata/golden/basic.lza");
const EMPTY_LZA: &[u8] = include_bytes!("../testdata/golden/empty.lza");

/// One expected entry of `basic.lza`: path, type, mode as archived, size,
/// xxh3 of the contents, mtime (ns), link target.
type Row = (&'static str, char, u32, u64, u64, i64, &'static str);

// Printed by the generator.
const BASIC: &[Row] = &[
    (
        "basic",
        'd',
        0o755,
        0,
        0x0000000000000000,
        1700000012000000012,
        "",
    ),
    (
        "basic/empty-dir",
        'd',
        0o700,
        0,
        0x0000000000000000,
        1700000011000000011,
        "",
    ),
    (
        "basic/empty.txt",
        '-',
        0o644,
        0,
        0x2d06800538d394c2,
        1700000000000000001,
        "",
    ),
    (
        "basic/hello.txt",
        '-',
        0o644,
        11,
        0x091ac0e440b47ef0,
        1700000001123456789,
        "",
    ),
    (
        "basic/lorem.txt",
        '-',
        0o644,
        8307,
        0x968d040bb250aa10,
        1700000002999999999,
        "",
    ),
    (
        "basic/old.txt",
        '-',
        0o444,
        12,
        0xb9dd082f07eadd63,
        -86400123456789,
        "",
    ),
    (
        "basic/random.bin",
        '-',
        0o600,
        700,
        0xcfb0712a6e1da973,
        1700000003000000000,
        "",
    ),
    (
        "basic/run.sh",
        '-',
        0o755,
        18,
        0x9caf24a8e1e87115,
        1600000000500000000,
        "",
    ),
    (
        "basic/setuid",
        '-',
        0o4755,
        5,
        0x9ca1a5470b8fc492,
        1700000005000000005,
        "",
    ),
    (
        "basic/shared.txt",
        '-',
        0o664,
        15,
        0x6b1cdb4ce957c2fc,
        1700000006000000006,
        "",
    ),
    (
        "basic/sub",
        'd',
        0o750,
        0,
        0x0000000000000000,
        1700000010000000010,
        "",
    ),
    (
        "basic/sub/hard-hello",
        'h',
        0o644,
        0,
        0x0000000000000000,
        1700000001123456789,
        "basic/hello.txt",
    ),
    (
        "basic/sub/link",
        'l',
        0o777,
        0,
        0x0000000000000000,
        1700000009000000009,
        "../hello.txt",
    ),
    (
        "basic/sub/ünï 日本.txt",
        '-',
        0o644,
        13,
        0x267da04f8e1c30fd,
        1700000008000000008,
        "",
    ),
];

// ---- the deterministic tree ---------------------------------------------------

fn golden_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x0123_4567_89AB_CDEF;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn golden_text() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..120 {
        s.push_str(&format!(
            "line {i:03}: the quick brown fox jumps over the lazy dog; ünïcödé {}\n",
            i * 7 % 13
        ));
    }
    s.into_bytes()
}

fn put(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// Build `base/basic`.
fn build_basic(base: &Path) {
    let r = base.join("basic");
    fs::create_dir_all(r.join("empty-dir")).unwrap();
    fs::create_dir_all(r.join("sub")).unwrap();
    put(&r, "empty.txt", b"", 0o644);
    put(&r, "hello.txt", b"hello, lza\n", 0o644);
    put(&r, "lorem.txt", &golden_text(), 0o644);
    put(&r, "random.bin", &golden_random(700), 0o600);
    put(&r, "run.sh", b"#!/bin/sh\necho hi\n", 0o755);
    put(&r, "setuid", b"suid\n", 0o4755);
    put(&r, "shared.txt", b"group writable\n", 0o664);
    put(&r, "old.txt", b"before 1970\n", 0o444);
    put(&r, "sub/ünï 日本.txt", "unicode name\n".as_bytes(), 0o644);
    fs::hard_link(r.join("hello.txt"), r.join("sub/hard-hello")).unwrap();
    std::os::unix::fs::symlink("../hello.txt", r.join("sub/link")).unwrap();
    fs::set_permissions(r.join("empty-dir"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(r.join("sub"), fs::Permissions::from_mode(0o750)).unwrap();
    // Fixed mtimes, children before parents.
    let times: &[(&str, i64)] = &[
        ("empty.txt", 1_700_000_000_000_000_001),
        ("hello.txt", 1_700_000_001_123_456_789),
        ("lorem.txt", 1_700_000_002_999_999_999),
        ("random.bin", 1_700_000_003_000_000_000),
        ("run.sh", 1_600_000_000_500_000_000),
        ("setuid", 1_700_000_005_000_000_005),
        ("shared.txt", 1_700_000_006_000_000_006),
        ("old.txt", -86_400_123_456_789),
        ("sub/ünï 日本.txt", 1_700_000_008_000_000_008),
        ("sub/link", 1_700_000_009_000_000_009),
        ("sub", 1_700_000_010_000_000_010),
        ("empty-dir", 1_700_000_011_000_000_011),
        ("", 1_700_000_012_000_000_012),
    ];
    for (rel, ns) in times {
        common::set_mtime(
            &if rel.is_empty() {
                r.clone()
            } else {
                r.join(rel)
            },
            *ns,
        );
    }
}

fn make_basic(threads: usize) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    build_basic(tmp.path());
    common::archive_tree(tmp.path(), &["basic"], CHUNK, threads)
}

/// `basic` in solid blocks (format-spec 4a, version 2): blocks of at most
/// `CHUNK` bytes, so that the small files make several, with `method`.
fn make_solid(threads: usize, method: lza::archive::create::Method) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    build_basic(tmp.path());
    let mut warnings = lza::archive::create::Warnings::default();
    let sources = lza::archive::create::collect_sources(
        tmp.path(),
        &[PathBuf::from("basic")],
        &lza::archive::create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    let opts = lza::archive::create::CreateOptions {
        threads,
        chunk_size: 4 * CHUNK,
        method,
        solid: lza::archive::create::Solid {
            block_size: 4 * CHUNK as usize,
            sort: false,
        },
        ..Default::default()
    };
    lza::archive::create::write_archive(
        Vec::new(),
        &sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut warnings,
    )
    .unwrap()
}

/// The solid goldens: with zstd, and with context mixing (whose payloads
/// `train/cm_ref.py` reproduces).
fn solid_goldens(threads: usize) -> [(&'static str, Vec<u8>); 2] {
    [
        (
            "solid.lza",
            make_solid(threads, lza::archive::create::Method::Zstd),
        ),
        (
            "solid-cm.lza",
            make_solid(threads, lza::archive::create::Method::Cm),
        ),
    ]
}

fn make_empty() -> Vec<u8> {
    let opts = lza::archive::create::CreateOptions {
        threads: 1,
        level: 6,
        chunk_size: CHUNK,
        method: lza::archive::create::Method::Zstd,
        lm: None,
        ..Default::default()
    };
    lza::archive::create::write_archive(
        Vec::new(),
        &[],
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut Default::default(),
    )
    .unwrap()
}

/// Offsets of the records of a valid archive: (offset, entry path, codec).
fn records(bytes: &[u8]) -> Vec<(u64, String, Option<lza::format::CodecId>)> {
    let mut r = lza::container::reader::ArchiveReader::new(bytes, Default::default()).unwrap();
    let mut out = Vec::new();
    while let Some(ev) = r.next_event().unwrap() {
        match ev {
            lza::container::reader::Event::Entry { entry, offset } => {
                out.push((offset, entry.path, None))
            }
            lza::container::reader::Event::Chunk(c) => {
                out.push((c.offset, c.entry, Some(c.header.codec)))
            }
            lza::container::reader::Event::Block { files, offset } => {
                out.extend(files.into_iter().map(|f| (offset, f.path, None)))
            }
            lza::container::reader::Event::End(_) => {}
        }
    }
    out
}

fn refresh_end_crc(b: &mut [u8]) {
    let end = b.len() - lza::format::END_LEN;
    let crc = crc32fast::hash(&b[end..end + 41]);
    b[end + 41..end + 45].copy_from_slice(&crc.to_le_bytes());
}

/// The invalid goldens, each derived from `basic` by one change.
fn make_invalid(basic: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let recs = records(basic);
    let stored = recs
        .iter()
        .find(|r| r.1 == "basic/random.bin" && r.2 == Some(lza::format::CodecId::Stored))
        .expect("random.bin is one stored chunk")
        .0 as usize;
    let n = basic.len();
    let mut out = Vec::new();

    let mut b = basic.to_vec();
    b[1] = b'X';
    out.push(("bad-magic.lza", b));

    let mut b = basic.to_vec();
    b[8] = 3;
    let crc = crc32fast::hash(&b[..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    out.push(("bad-version.lza", b));

    out.push(("truncated.lza", basic[..n - lza::format::END_LEN].to_vec()));
    out.push(("truncated-header.lza", basic[..20].to_vec()));

    let mut b = basic.to_vec();
    let first_entry_end = recs[1].0 as usize;
    b[first_entry_end - 1] ^= 0x01; // last byte of the first record_crc
    out.push(("flipped-crc.lza", b));

    // The payload byte flipped and the end record's stream checksum made to
    // match, so that the chunk's own checksum is the only thing wrong.
    let mut b = basic.to_vec();
    b[stored + 24 + 100] ^= 0x20;
    let end = n - lza::format::END_LEN;
    let sum = xxh3_64(&b[..end]);
    b[end + 33..end + 41].copy_from_slice(&sum.to_le_bytes());
    refresh_end_crc(&mut b);
    out.push(("flipped-data.lza", b));

    let mut b = basic.to_vec();
    b.push(0);
    out.push(("trailing.lza", b));

    let mut b = basic.to_vec();
    let end = n - lza::format::END_LEN;
    b[end + 1] += 1; // entries
    refresh_end_crc(&mut b);
    out.push(("bad-end-count.lza", b));

    let mut b = basic.to_vec();
    b[stored + 1] = 2; // codec: language model
    let crc = crc32fast::hash(&b[stored..stored + 20]);
    b[stored + 20..stored + 24].copy_from_slice(&crc.to_le_bytes());
    out.push(("lm-without-model.lza", b));
    out
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

/// The listing of `basic` as `BASIC` rows of Rust source.
fn print_listing(basic: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    build_basic(tmp.path());
    let mut entries = Vec::new();
    lza::archive::extract::list_archive(basic, Default::default(), &mut |e: &Entry| {
        entries.push(e.clone())
    })
    .unwrap();
    println!("const BASIC: &[Row] = &[");
    for e in entries {
        let (size, hash) = match e.kind {
            EntryKind::File => {
                let data = fs::read(tmp.path().join(&e.path)).unwrap();
                (data.len() as u64, xxh3_64(&data))
            }
            _ => (0, 0),
        };
        println!(
            "    ({:?}, '{}', 0o{:o}, {}, 0x{:016x}, {}, {:?}),",
            e.path,
            e.kind.type_char(),
            e.mode,
            size,
            hash,
            e.mtime_ns,
            e.link
        );
    }
    println!("];");
}

#[test]
#[ignore = "generator: LZA_REGEN_GOLDEN=1 cargo test --test golden -- --ignored --nocapture"]
fn regenerate_golden() {
    let basic = make_basic(1);
    let mut files = vec![("basic.lza", basic.clone()), ("empty.lza", make_empty())];
    files.extend(make_invalid(&basic));
    files.extend(solid_goldens(1));
    let dir = golden_dir();
    if std::env::var("LZA_REGEN_GOLDEN").as_deref() == Ok("1") {
        fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &files {
            fs::write(dir.join(name), bytes).unwrap();
            println!("wrote {} ({} bytes)", dir.join(name).display(), bytes.len());
        }
        print_listing(&basic);
    } else {
        for (name, bytes) in &files {
            let on_disk = fs::read(dir.join(name)).unwrap();
            assert!(
                on_disk == *bytes,
                "{name} is stale: regenerate with LZA_REGEN_GOLDEN=1"
            );
        }
    }
}

// ---- the valid goldens -----------------------------------------------------------

#[test]
fn basic_is_byte_stable() {
    assert!(
        make_basic(1) == BASIC_LZA,
        "re-creating basic.lza gave different bytes"
    );
    assert!(
        make_basic(4) == BASIC_LZA,
        "re-creating basic.lza with 4 threads gave different bytes"
    );
    assert!(
        make_empty() == EMPTY_LZA,
        "re-creating empty.lza gave different bytes"
    );
}

/// The solid goldens (format version 2) re-create byte for byte with any
/// thread count, list the same entries as `basic.lza` and extract to the
/// same files.
#[test]
fn solid_goldens_are_stable_and_extract() {
    let again = solid_goldens(3);
    for (name, bytes) in solid_goldens(1) {
        let golden = golden(name);
        assert!(golden == bytes, "re-creating {name} gave different bytes");
        let threaded = &again.iter().find(|g| g.0 == name).unwrap().1;
        assert!(golden == *threaded, "{name} with 3 threads differs");
        assert_eq!(u16::from_le_bytes([golden[8], golden[9]]), 2);
        let mut got = Vec::new();
        lza::archive::extract::list_archive(
            golden.as_slice(),
            Default::default(),
            &mut |e: &Entry| got.push(e.clone()),
        )
        .unwrap();
        let mut paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        paths.sort();
        let mut want: Vec<&str> = BASIC.iter().map(|r| r.0).collect();
        want.sort();
        assert_eq!(paths, want, "{name}");
        assert!(golden.contains(&lza::format::TAG_BLOCK), "{name}");
        let tmp = tempfile::tempdir().unwrap();
        common::extract_to(&golden, tmp.path(), false).unwrap();
        for &(path, kind, _, size, hash, mtime, _) in BASIC {
            let md = fs::symlink_metadata(tmp.path().join(path)).unwrap();
            assert_eq!(common::mtime_ns(&md), mtime, "{name}: {path}");
            if kind == '-' {
                let data = fs::read(tmp.path().join(path)).unwrap();
                assert_eq!((data.len() as u64, xxh3_64(&data)), (size, hash), "{path}");
            }
        }
    }
}

#[test]
fn basic_lists_as_expected() {
    assert!(!BASIC.is_empty());
    let mut got = Vec::new();
    lza::archive::extract::list_archive(BASIC_LZA, Default::default(), &mut |e: &Entry| {
        got.push(e.clone())
    })
    .unwrap();
    assert_eq!(got.len(), BASIC.len());
    for (e, &(path, kind, mode, size, _, mtime, link)) in got.iter().zip(BASIC) {
        assert_eq!(e.path, path);
        assert_eq!(e.kind.type_char(), kind, "{path}");
        assert_eq!(e.mode, mode, "{path}");
        assert_eq!(e.size, size, "{path}");
        assert_eq!(e.mtime_ns, mtime, "{path}");
        assert_eq!(e.link, link, "{path}");
    }
    // Both codecs and a multi-chunk file are in it.
    let recs = records(BASIC_LZA);
    let chunks = |c| recs.iter().filter(|r| r.2 == Some(c)).count();
    assert!(chunks(lza::format::CodecId::Zstd) >= 2);
    assert!(chunks(lza::format::CodecId::Stored) >= 1);
    assert!(
        recs.iter()
            .filter(|r| r.1 == "basic/lorem.txt" && r.2.is_some())
            .count()
            >= 3
    );
}

#[test]
fn basic_extracts_to_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    common::extract_to(BASIC_LZA, tmp.path(), false).unwrap();
    let mut all = Vec::new();
    common::walk(&tmp.path().join("basic"), &mut all);
    let mut on_disk: Vec<String> = all
        .iter()
        .map(|p| {
            p.strip_prefix(tmp.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    on_disk.sort();
    let mut want: Vec<&str> = BASIC.iter().map(|r| r.0).collect();
    want.sort();
    assert_eq!(on_disk, want);
    let mut inodes = BTreeMap::new();
    for &(path, kind, mode, size, hash, mtime, link) in BASIC {
        let p = tmp.path().join(path);
        let md = fs::symlink_metadata(&p).unwrap();
        assert_eq!(common::mtime_ns(&md), mtime, "{path}");
        match kind {
            '-' => {
                let data = fs::read(&p).unwrap();
                assert_eq!((data.len() as u64, xxh3_64(&data)), (size, hash), "{path}");
                assert_eq!(md.mode() & 0o7777, mode & 0o755, "{path}");
                inodes.insert(path, md.ino());
            }
            'd' => {
                assert!(md.is_dir(), "{path}");
                assert_eq!(md.mode() & 0o7777, mode & 0o755, "{path}");
            }
            'l' => assert_eq!(fs::read_link(&p).unwrap(), Path::new(link), "{path}"),
            'h' => assert_eq!(
                Some(&md.ino()),
                inodes.get(link),
                "{path} is not a hard link to {link}"
            ),
            _ => unreachable!(),
        }
    }
    // The setuid file came out without setuid.
    let suid = fs::metadata(tmp.path().join("basic/setuid")).unwrap();
    assert_eq!(suid.mode() & 0o7777, 0o755);
}

#[test]
fn empty_golden_has_no_entries() {
    let c = common::decode(EMPTY_LZA).unwrap();
    assert!(c.items.is_empty() && c.finished);
    assert_eq!(
        EMPTY_LZA.len(),
        lza::format::HEADER_LEN + lza::format::END_LEN
    );
}

// ---- the invalid goldens ---------------------------------------------------------

fn golden(name: &str) -> Vec<u8> {
    fs::read(golden_dir().join(name)).unwrap()
}

#[test]
fn invalid_goldens_are_derived_from_basic() {
    // They are on disk as generated (so each differs from basic.lza by the
    // one change its name says).
    for (name, bytes) in make_invalid(BASIC_LZA) {
        assert!(golden(name) == bytes, "{name} is stale");
    }
}

fn rejected(name: &str) -> Error {
    let bytes = golden(name);
    let e = common::decode(&bytes).map(|_| ()).expect_err(name);
    // Extraction refuses it the same way and leaves no temporary file.
    let tmp = tempfile::tempdir().unwrap();
    let e2 = common::extract_to(&bytes, tmp.path(), false).expect_err(name);
    assert_eq!(format!("{e:?}"), format!("{e2:?}"), "{name}");
    assert!(common::tmp_leftovers(tmp.path()).is_empty());
    e
}

fn kind(name: &str) -> (u64, CorruptKind) {
    match rejected(name) {
        Error::Corrupt { offset, kind, .. } => (offset, kind),
        e => panic!("{name}: {e:?}"),
    }
}

#[test]
fn bad_magic() {
    assert_eq!(kind("bad-magic.lza"), (0, CorruptKind::BadMagic));
}

#[test]
fn bad_version() {
    assert_eq!(
        kind("bad-version.lza"),
        (0, CorruptKind::UnsupportedVersion(3))
    );
}

#[test]
fn truncated() {
    let n = BASIC_LZA.len() - lza::format::END_LEN;
    assert_eq!(
        kind("truncated.lza"),
        (
            n as u64,
            CorruptKind::Truncated("a record tag (end record missing)")
        )
    );
    assert_eq!(
        kind("truncated-header.lza"),
        (20, CorruptKind::Truncated("the header"))
    );
}

#[test]
fn flipped_crc() {
    assert_eq!(
        kind("flipped-crc.lza"),
        (40, CorruptKind::ChecksumMismatch("entry record"))
    );
}

#[test]
fn flipped_data() {
    match rejected("flipped-data.lza") {
        Error::Corrupt {
            kind, entry, chunk, ..
        } => {
            assert_eq!(kind, CorruptKind::ChecksumMismatch("chunk data"));
            assert_eq!(entry.as_deref(), Some("basic/random.bin"));
            assert_eq!(chunk, Some(0));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn first_error_in_stream_order_is_reported() {
    let stored = records(BASIC_LZA)
        .into_iter()
        .find(|r| r.1 == "basic/random.bin")
        .unwrap()
        .0;
    // The file's first chunk frame follows its entry record (28 fixed
    // bytes, the path, the CRC).
    let frame = stored + 28 + "basic/random.bin".len() as u64 + 4;
    let mut b = BASIC_LZA.to_vec();
    b[frame as usize + 24 + 100] ^= 0x20;
    match common::decode(&b).map(|_| ()) {
        Err(Error::Corrupt {
            offset,
            kind,
            entry,
            chunk,
        }) => {
            assert_eq!(
                (offset, kind, entry.as_deref(), chunk),
                (
                    frame,
                    CorruptKind::ChecksumMismatch("chunk data"),
                    Some("basic/random.bin"),
                    Some(0)
                )
            )
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn trailing() {
    let end = BASIC_LZA.len() - lza::format::END_LEN;
    assert_eq!(
        kind("trailing.lza"),
        (end as u64, CorruptKind::TrailingData)
    );
}

#[test]
fn bad_end_count() {
    let end = BASIC_LZA.len() - lza::format::END_LEN;
    assert_eq!(
        kind("bad-end-count.lza"),
        (end as u64, CorruptKind::EndMismatch("entry count"))
    );
}

#[test]
fn lm_without_model() {
    let (_, k) = kind("lm-without-model.lza");
    assert_eq!(k, CorruptKind::NoModel);
}
