//! Every single-byte corruption and every truncation of a small archive is
//! an error (never Ok, never a panic), and extracting a corrupted archive
//! never leaves a file with wrong contents or a temporary file behind.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use lza::archive::extract::{DestWriter, Discard, ReadOptions, read_archive};

/// What an extracted path may be: file contents or a symlink target.
#[derive(Debug, PartialEq)]
enum Want {
    File(Vec<u8>),
    Link(String),
    Dir,
}

struct Sample {
    bytes: Vec<u8>,
    want: BTreeMap<String, Want>,
    _tmp: tempfile::TempDir,
}

/// A few entries: a multi-chunk text file (zstd chunks), a multi-chunk
/// random file (stored chunks), an empty file, a hard link and a symlink.
fn sample() -> Sample {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    let text = common::text(600, 3);
    let noise = common::Rng::new(5).bytes(300);
    common::write_file(&root.join("a.txt"), &text, 0o644);
    common::write_file(&root.join("d/r.bin"), &noise, 0o600);
    common::write_file(&root.join("e"), b"", 0o644);
    fs::hard_link(root.join("a.txt"), root.join("d/h")).unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("d/l")).unwrap();
    common::fix_mtimes(&root, 1_600_000_000_000_000_000);
    let bytes = common::archive_tree(tmp.path(), &["t"], 256, 1);
    let mut want = BTreeMap::new();
    want.insert("t".into(), Want::Dir);
    want.insert("t/d".into(), Want::Dir);
    want.insert("t/a.txt".into(), Want::File(text.clone()));
    want.insert("t/d/h".into(), Want::File(text));
    want.insert("t/d/r.bin".into(), Want::File(noise));
    want.insert("t/e".into(), Want::File(Vec::new()));
    want.insert("t/d/l".into(), Want::Link("../a.txt".into()));
    Sample {
        bytes,
        want,
        _tmp: tmp,
    }
}

#[test]
fn sample_is_small_and_uses_both_codecs() {
    let s = sample();
    assert!(s.bytes.len() < 2048, "{} bytes", s.bytes.len());
    let mut r =
        lza::container::reader::ArchiveReader::new(&s.bytes[..], Default::default()).unwrap();
    let (mut zstd, mut stored) = (0, 0);
    while let Some(ev) = r.next_event().unwrap() {
        if let lza::container::reader::Event::Chunk(c) = ev {
            match c.header.codec {
                lza::format::CodecId::Zstd => zstd += 1,
                lza::format::CodecId::Stored => stored += 1,
                _ => {}
            }
        }
    }
    assert!(zstd >= 2 && stored >= 2, "zstd {zstd}, stored {stored}");
    // And it extracts to exactly what we expect.
    let dest = tempfile::tempdir().unwrap();
    common::extract_to(&s.bytes, dest.path(), false).unwrap();
    check_extracted(&s.want, dest.path(), true).unwrap();
}

/// Decode with `threads`; an error string for a panic.
fn decode(bytes: &[u8], threads: usize) -> Result<lza::Result<()>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let opts = ReadOptions {
            threads,
            ..Default::default()
        };
        read_archive(bytes, &opts, &mut Discard, &mut |_| {}, &mut |_| {})
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

#[test]
fn every_single_byte_flip_is_an_error() {
    let s = sample();
    let mut accepted = Vec::new();
    let mut panics = Vec::new();
    for off in 0..s.bytes.len() {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut b = s.bytes.clone();
            b[off] ^= x;
            match decode(&b, 1 + off % 2) {
                Ok(Err(_)) => {}
                Ok(Ok(())) => accepted.push((off, x)),
                Err(p) => panics.push((off, x, p)),
            }
        }
    }
    assert!(panics.is_empty(), "panics: {panics:?}");
    assert!(
        accepted.is_empty(),
        "corrupted archives accepted (offset, xor) of {}: {accepted:?}",
        s.bytes.len()
    );
}

#[test]
fn every_truncation_is_an_error() {
    let s = sample();
    let mut bad = Vec::new();
    for len in 0..s.bytes.len() {
        match decode(&s.bytes[..len], 1) {
            Ok(Err(lza::Error::Corrupt {
                kind: lza::CorruptKind::Truncated(_),
                ..
            })) => {}
            other => bad.push((len, format!("{other:?}"))),
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
    assert!(matches!(decode(&s.bytes, 1), Ok(Ok(()))));
}

/// Everything under `dest` is something the archive holds, with the right
/// contents; with `complete`, everything the archive holds is there.
fn check_extracted(
    want: &BTreeMap<String, Want>,
    dest: &Path,
    complete: bool,
) -> Result<(), String> {
    let mut all = Vec::new();
    // A refused archive does not even create the destination.
    if dest.exists() {
        common::walk(dest, &mut all);
    }
    let mut seen = 0;
    for p in all.iter().skip(1) {
        let rel = p.strip_prefix(dest).unwrap().to_str().unwrap().to_string();
        let md = fs::symlink_metadata(p).unwrap();
        let got = if md.is_dir() {
            Want::Dir
        } else if md.file_type().is_symlink() {
            Want::Link(fs::read_link(p).unwrap().to_str().unwrap().into())
        } else {
            Want::File(fs::read(p).unwrap())
        };
        match want.get(&rel) {
            Some(w) if *w == got => seen += 1,
            Some(_) => return Err(format!("{rel}: wrong contents or type")),
            None => return Err(format!("{rel}: not in the archive")),
        }
    }
    if complete && seen != want.len() {
        return Err(format!("only {seen} of {} entries extracted", want.len()));
    }
    Ok(())
}

fn extract_corrupted(bytes: &[u8], dest: &Path, threads: usize) -> Result<lza::Result<()>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut w = DestWriter::new(dest, false);
        let opts = ReadOptions {
            threads,
            ..Default::default()
        };
        let r = read_archive(bytes, &opts, &mut w, &mut |_| {}, &mut |_| {});
        drop(w);
        r
    }))
    .map_err(|_| "panic".to_string())
}

#[test]
fn extracting_corrupted_archives_leaves_only_correct_files() {
    let s = sample();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut run = |what: String, bytes: &[u8], threads: usize| {
        let dest = tmp.path().join("dest");
        let r = extract_corrupted(bytes, &dest, threads);
        let complete = matches!(r, Ok(Ok(())));
        if let Err(p) = &r {
            failures.push(format!("{what}: {p}"));
        }
        if let Err(e) = check_extracted(&s.want, &dest, complete) {
            failures.push(format!("{what}: {e} (extraction said {r:?})"));
        }
        let left = common::tmp_leftovers(&dest);
        if !left.is_empty() {
            failures.push(format!("{what}: temporary files left: {left:?}"));
        }
        let outside = fs::read_dir(tmp.path()).unwrap().count();
        if outside > usize::from(dest.exists()) {
            failures.push(format!("{what}: {outside} names next to the destination"));
        }
        if !dest.exists() {
            return;
        }
        // Directories may be left read-only; make them removable.
        let mut all = Vec::new();
        common::walk(&dest, &mut all);
        for p in &all {
            if fs::symlink_metadata(p).unwrap().is_dir() {
                common::set_mode(p, 0o755);
            }
        }
        fs::remove_dir_all(&dest).unwrap();
    };
    for off in 0..s.bytes.len() {
        let mut b = s.bytes.clone();
        b[off] ^= if off % 2 == 0 { 0x01 } else { 0xFF };
        run(format!("flip at {off}"), &b, 1 + off % 2);
    }
    for len in 0..s.bytes.len() {
        run(format!("cut at {len}"), &s.bytes[..len], 1);
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}
