//! Hostile and malformed archives, written byte by byte from the spec
//! (tests/common/spec.rs), each refused with its own error and without
//! anything appearing outside the destination directory.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::spec::*;
use common::{snapshot, tmp_leftovers};
use lza::{CorruptKind, Error};

/// A temporary root holding `parent/dest` (the destination) and `outside/`
/// (a directory hostile archives try to reach).
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    outside: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dest = root.join("parent/dest");
        let outside = root.join("outside");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(root.join("parent/canary"), b"canary").unwrap();
        Sandbox {
            _tmp: tmp,
            root,
            dest,
            outside,
        }
    }

    /// Everything under the root that is not inside the destination.
    fn outside_view(&self) -> Vec<String> {
        snapshot(&self.root)
            .into_iter()
            .filter(|l| !l[2..].starts_with("parent/dest/"))
            .collect()
    }

    /// Extract `bytes` into the destination; check that nothing changed
    /// outside it and that no temporary file is left.
    fn extract(&self, bytes: &[u8], overwrite: bool) -> lza::Result<()> {
        let before = self.outside_view();
        let r = common::extract_to(bytes, &self.dest, overwrite);
        assert_eq!(
            before,
            self.outside_view(),
            "something changed outside the destination"
        );
        assert_eq!(
            fs::read(self.root.join("parent/canary")).unwrap(),
            b"canary"
        );
        assert!(
            tmp_leftovers(&self.dest).is_empty(),
            "{:?}",
            tmp_leftovers(&self.dest)
        );
        r
    }

    /// Extract and expect an error.
    fn reject(&self, bytes: &[u8]) -> Error {
        match self.extract(bytes, false) {
            Ok(()) => panic!(
                "hostile archive extracted without error: {:?}",
                snapshot(&self.dest)
            ),
            Err(e) => e,
        }
    }

    fn symlinks_in_dest(&self) -> Vec<String> {
        snapshot(&self.dest)
            .into_iter()
            .filter(|l| l.starts_with("l "))
            .collect()
    }
}

/// Run `bytes` in a fresh sandbox; return the `Corrupt` offset and kind.
fn corrupt(bytes: &[u8]) -> (u64, CorruptKind) {
    let sb = Sandbox::new();
    let e = sb.reject(bytes);
    // The same archive is rejected the same way without a destination.
    let plain = common::decode(bytes).map(|_| ());
    assert_eq!(
        format!("{:?}", plain.as_ref().err()),
        format!("{:?}", Some(&e))
    );
    match e {
        Error::Corrupt { offset, kind, .. } => (offset, kind),
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

fn bad_path(path: &str) -> (u64, String, &'static str) {
    let mut b = Builder::new();
    b.file("ok", b"fine");
    let at = b.pos();
    b.file(path, b"evil");
    match corrupt(&b.finish()) {
        (off, CorruptKind::BadPath { path, reason }) => {
            assert_eq!(off, at, "offset of the bad entry record");
            (off, path, reason)
        }
        other => panic!("{path:?}: expected BadPath, got {other:?}"),
    }
}

// ---- path rules --------------------------------------------------------

#[test]
fn rejects_dotdot_path() {
    let (_, p, reason) = bad_path("../x");
    assert_eq!(p, "../x");
    assert!(reason.contains(".."), "{reason}");
}

#[test]
fn rejects_absolute_path() {
    let sb = Sandbox::new();
    let target = format!("{}/abs", sb.outside.display());
    let mut b = Builder::new();
    b.file(&target, b"evil");
    match sb.reject(&b.finish()) {
        Error::Corrupt {
            kind: CorruptKind::BadPath { path, reason },
            ..
        } => {
            assert_eq!(path, target);
            assert!(reason.contains("absolute"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    assert!(!Path::new(&target).exists());
    assert!(snapshot(&sb.dest).is_empty());
}

#[test]
fn rejects_inner_dotdot_path() {
    let (_, p, reason) = bad_path("a/../../x");
    assert_eq!(p, "a/../../x");
    assert!(reason.contains(".."), "{reason}");
}

#[test]
fn rejects_backslash_path() {
    let (_, _, reason) = bad_path("..\\x");
    assert!(reason.contains("backslash"), "{reason}");
}

#[test]
fn rejects_empty_component_and_other_bad_syntax() {
    for (p, word) in [
        ("a//b", "empty"),
        ("a/", "empty"),
        ("./a", "'.'"),
        ("a/./b", "'.'"),
        ("a/..", ".."),
        ("C:x", "drive"),
        ("d/c:", "drive"),
        ("a\0b", "NUL"),
    ] {
        let (_, got, reason) = bad_path(p);
        assert_eq!(got, p);
        assert!(reason.contains(word), "{p:?}: {reason}");
    }
}

#[test]
fn rejects_non_utf8_path_and_bad_lengths() {
    let mut e = EntrySpec::new(KIND_DIR, "x");
    e.path = vec![b'a', 0xFF, b'b'];
    let mut b = Builder::new();
    b.entry(&e);
    assert_eq!(corrupt(&b.finish()).1, CorruptKind::NotUtf8("path"));

    let mut e = EntrySpec::new(KIND_DIR, "");
    e.path = Vec::new();
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "path_len",
            value: 0
        }
    ));

    let mut e = EntrySpec::new(KIND_DIR, "");
    e.path = vec![b'a'; 4097];
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "path_len",
            value: 4097
        }
    ));

    // A link on a directory, no link on a symlink, a size on a directory.
    let mut e = EntrySpec::new(KIND_DIR, "d");
    e.link = b"x".to_vec();
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "link_len",
            ..
        }
    ));
    let e = EntrySpec::new(KIND_SYMLINK, "l");
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "link_len",
            value: 0
        }
    ));
    let mut e = EntrySpec::new(KIND_DIR, "d");
    e.size = 5;
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength { value: 5, .. }
    ));
}

#[test]
fn rejects_unknown_entry_kind() {
    let mut b = Builder::new();
    b.entry(&EntrySpec::new(4, "dev"));
    assert_eq!(corrupt(&b.finish()), (40, CorruptKind::UnknownEntryKind(4)));
}

// ---- symbolic links -------------------------------------------------------

#[test]
fn rejects_file_written_through_escaping_symlink() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.symlink("l", "../../outside");
    b.file("l/passwd", b"root::0:0::/:/bin/sh\n");
    match sb.reject(&b.finish()) {
        Error::Corrupt {
            kind: CorruptKind::PathConflict { path, .. },
            ..
        } => assert_eq!(path, "l/passwd"),
        e => panic!("{e:?}"),
    }
    assert!(sb.symlinks_in_dest().is_empty());
    assert!(snapshot(&sb.outside).is_empty());
}

#[test]
fn rejects_escaping_symlink_alone() {
    for target in [
        "../../etc",
        "..",
        "a/../..",
        "/etc",
        "../dest/../../outside",
    ] {
        let sb = Sandbox::new();
        let mut b = Builder::new();
        b.file("f", b"data");
        b.symlink("l", target);
        match sb.reject(&b.finish()) {
            Error::UnsafeEntry { path, reason } => {
                assert_eq!(path, "l", "{target}");
                assert!(reason.contains(target), "{target}: {reason}");
            }
            e => panic!("{target}: {e:?}"),
        }
        assert!(sb.symlinks_in_dest().is_empty(), "{target}");
    }
}

#[test]
fn rejects_symlink_chain_escape() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.dir("a");
    b.symlink("a/s", "..");
    b.symlink("a/l", "s/../x");
    match sb.reject(&b.finish()) {
        Error::UnsafeEntry { path, .. } => assert_eq!(path, "a/l"),
        e => panic!("{e:?}"),
    }
    // Links are checked all together before any is made.
    assert!(sb.symlinks_in_dest().is_empty());

    // A loop is refused too.
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.symlink("x", "y");
    b.symlink("y", "x");
    assert!(matches!(sb.reject(&b.finish()), Error::UnsafeEntry { .. }));
    assert!(sb.symlinks_in_dest().is_empty());
}

#[test]
fn rejects_entry_below_an_inside_symlink() {
    let mut b = Builder::new();
    b.dir("a");
    b.symlink("a/s", "..");
    b.file("a/s/x", b"x");
    match corrupt(&b.finish()).1 {
        CorruptKind::PathConflict { path, .. } => assert_eq!(path, "a/s/x"),
        k => panic!("{k:?}"),
    }
}

#[test]
fn inside_symlinks_are_made() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.dir("a");
    b.file("a/f", b"data");
    b.symlink("a/s", "..");
    b.symlink("a/l", "s/a/f");
    b.symlink("top", "a/./f");
    sb.extract(&b.finish(), false).unwrap();
    assert_eq!(fs::read(sb.dest.join("a/l")).unwrap(), b"data");
    assert_eq!(fs::read(sb.dest.join("top")).unwrap(), b"data");
    assert_eq!(fs::read_link(sb.dest.join("a/s")).unwrap(), Path::new(".."));
}

#[test]
fn rejects_nul_in_symlink_target() {
    let mut b = Builder::new();
    b.symlink("l", "a\0b");
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadPath { .. }
    ));
}

// ---- hard links -----------------------------------------------------------

#[test]
fn rejects_hardlink_outside() {
    let mut b = Builder::new();
    b.file("f", b"data");
    b.hardlink("h", "../outside/f");
    match corrupt(&b.finish()).1 {
        CorruptKind::BadPath { path, .. } => assert_eq!(path, "../outside/f"),
        k => panic!("{k:?}"),
    }
    let sb = Sandbox::new();
    fs::write(sb.outside.join("secret"), b"secret").unwrap();
    let target = format!("{}/secret", sb.outside.display());
    let mut b = Builder::new();
    b.hardlink("h", &target);
    match sb.reject(&b.finish()) {
        Error::Corrupt {
            kind: CorruptKind::BadPath { path, .. },
            ..
        } => assert_eq!(path, target),
        e => panic!("{e:?}"),
    }
    assert_eq!(fs::metadata(sb.outside.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn rejects_hardlink_to_missing_later_or_non_file() {
    // Non-existent.
    let mut b = Builder::new();
    b.hardlink("h", "nope");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("nope".into())
    );
    // A later entry.
    let mut b = Builder::new();
    b.hardlink("h", "f");
    b.file("f", b"data");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("f".into())
    );
    // A directory, a symlink, another hard link.
    let mut b = Builder::new();
    b.dir("d");
    b.hardlink("h", "d");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("d".into())
    );
    let mut b = Builder::new();
    b.symlink("s", "x");
    b.hardlink("h", "s");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("s".into())
    );
    let mut b = Builder::new();
    b.file("f", b"x");
    b.hardlink("h1", "f");
    b.hardlink("h2", "h1");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("h1".into())
    );
    // Itself.
    let mut b = Builder::new();
    b.hardlink("h", "h");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::HardlinkTarget("h".into())
    );
}

#[test]
fn rejects_hardlink_to_file_already_in_destination() {
    let sb = Sandbox::new();
    fs::write(sb.dest.join("f"), b"not from the archive").unwrap();
    let mut b = Builder::new();
    b.hardlink("h", "f");
    assert!(matches!(
        sb.reject(&b.finish()),
        Error::Corrupt {
            kind: CorruptKind::HardlinkTarget(_),
            ..
        }
    ));
    assert!(!sb.dest.join("h").exists());
}

#[test]
fn hardlink_to_earlier_file_shares_inode() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.file("d/f", b"data");
    b.hardlink("h", "d/f");
    sb.extract(&b.finish(), false).unwrap();
    let a = fs::metadata(sb.dest.join("d/f")).unwrap();
    let h = fs::metadata(sb.dest.join("h")).unwrap();
    assert_eq!(a.ino(), h.ino());
    assert_eq!(fs::read(sb.dest.join("h")).unwrap(), b"data");
}

// ---- tree conflicts ---------------------------------------------------------

#[test]
fn rejects_duplicate_paths() {
    let mut b = Builder::new();
    b.file("f", b"one");
    let at = b.pos();
    b.file("f", b"two");
    assert_eq!(
        corrupt(&b.finish()),
        (at, CorruptKind::DuplicatePath("f".into()))
    );
    let mut b = Builder::new();
    b.dir("d");
    b.file("d", b"two");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::DuplicatePath("d".into())
    );
    let mut b = Builder::new();
    b.dir("d");
    b.dir("d");
    assert_eq!(
        corrupt(&b.finish()).1,
        CorruptKind::DuplicatePath("d".into())
    );
}

#[test]
fn rejects_file_below_file() {
    let mut b = Builder::new();
    b.file("f", b"one");
    b.file("f/g", b"two");
    match corrupt(&b.finish()).1 {
        CorruptKind::PathConflict { path, .. } => assert_eq!(path, "f/g"),
        k => panic!("{k:?}"),
    }
    // And the other way round: a file at an ancestor of an earlier entry.
    for kind in [KIND_FILE, KIND_SYMLINK, KIND_HARDLINK] {
        let mut b = Builder::new();
        b.file("d/g", b"one");
        let mut e = EntrySpec::new(kind, "d");
        if kind != KIND_FILE {
            e.link = b"d/g".to_vec();
        }
        b.entry(&e);
        match corrupt(&b.finish()).1 {
            CorruptKind::PathConflict { path, .. } => assert_eq!(path, "d"),
            k => panic!("kind {kind}: {k:?}"),
        }
    }
}

// ---- sizes and chunks ---------------------------------------------------------

#[test]
fn rejects_declared_size_beyond_data() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "big");
    e.size = 1 << 40;
    b.entry(&e);
    b.frame(&FrameSpec::stored(b"0123456789"));
    match sb.reject(&b.finish()) {
        Error::Corrupt {
            kind: CorruptKind::FileTooShort { declared, got },
            entry,
            ..
        } => {
            assert_eq!((declared, got), (1 << 40, 10));
            assert_eq!(entry.as_deref(), Some("big"));
        }
        e => panic!("{e:?}"),
    }
    assert!(!sb.dest.join("big").exists());

    // Followed by another entry instead of the end record.
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 11;
    b.entry(&e);
    b.frame(&FrameSpec::stored(b"0123456789"));
    b.dir("d");
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::FileTooShort {
            declared: 11,
            got: 10
        }
    ));
}

#[test]
fn rejects_chunk_past_declared_size() {
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 5;
    b.entry(&e);
    let at = b.pos();
    b.frame(&FrameSpec::stored(b"0123456789"));
    assert_eq!(
        corrupt(&b.finish()),
        (at, CorruptKind::FileTooLong { declared: 5 })
    );
    // A chunk after a complete (here: empty) file.
    let mut b = Builder::new();
    b.file("empty", b"");
    b.frame(&FrameSpec::stored(b"x"));
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::FileTooLong { declared: 0 } | CorruptKind::ChunkOutsideFile
    ));
}

#[test]
fn rejects_chunk_outside_a_file() {
    let mut b = Builder::new();
    b.frame(&FrameSpec::stored(b"orphan"));
    assert_eq!(corrupt(&b.finish()), (40, CorruptKind::ChunkOutsideFile));
    let mut b = Builder::new();
    b.dir("d");
    b.frame(&FrameSpec::stored(b"orphan"));
    assert_eq!(corrupt(&b.finish()).1, CorruptKind::ChunkOutsideFile);
    let mut b = Builder::new();
    b.symlink("s", "d");
    b.frame(&FrameSpec::stored(b"orphan"));
    assert_eq!(corrupt(&b.finish()).1, CorruptKind::ChunkOutsideFile);
}

#[test]
fn rejects_chunk_bigger_than_max_chunk() {
    let mut b = Builder::with_header(HeaderSpec {
        max_chunk: 16,
        ..Default::default()
    });
    let data = [7u8; 17];
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 17;
    b.entry(&e);
    let at = b.pos();
    b.frame(&FrameSpec::stored(&data));
    assert_eq!(
        corrupt(&b.finish()),
        (
            at,
            CorruptKind::ChunkTooLarge {
                raw_len: 17,
                max_chunk: 16
            }
        )
    );
    // Exactly max_chunk is fine.
    let mut b = Builder::with_header(HeaderSpec {
        max_chunk: 16,
        ..Default::default()
    });
    b.file_chunked("f", 0o644, &data, 16);
    let got = common::decode(&b.finish()).unwrap();
    assert_eq!(got.items[0].1, data);
}

#[test]
fn rejects_empty_chunk() {
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 1;
    b.entry(&e);
    b.frame(&FrameSpec::stored(b""));
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::ChunkTooLarge { raw_len: 0, .. }
    ));
}

#[test]
fn rejects_bad_stored_len() {
    // Stored codec with stored_len != raw_len.
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 4;
    b.entry(&e);
    let mut f = FrameSpec::stored(b"abcd");
    f.stored_len = 5;
    f.payload.push(0);
    b.frame(&f);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "stored_len",
            value: 5
        }
    ));
    // zstd payload above raw_len + raw_len/8 + 1024 is refused before it is read.
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 8;
    b.entry(&e);
    let mut f = FrameSpec::coded(CODEC_ZSTD, b"abcdefgh", vec![0; 8]);
    f.stored_len = 8 + 1 + 1024 + 1;
    f.payload.clear();
    b.frame(&f);
    assert!(matches!(
        corrupt(&b.finish()).1,
        CorruptKind::BadLength {
            field: "stored_len",
            value: 1034
        }
    ));
}

#[test]
fn rejects_chunk_data_mismatch_without_leaving_the_file() {
    let sb = Sandbox::new();
    let data = common::text(3000, 1);
    let mut b = Builder::new();
    b.file("ok", b"fine");
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = data.len() as u64;
    b.entry(&e);
    b.frame(&FrameSpec::stored(&data[..1024]));
    let at = b.pos();
    let mut bad = FrameSpec::stored(&data[1024..2048]);
    bad.payload[100] ^= 1;
    b.frame(&bad);
    b.frame(&FrameSpec::stored(&data[2048..]));
    match sb.reject(&b.finish()) {
        Error::Corrupt {
            offset,
            entry,
            chunk,
            kind,
        } => {
            assert_eq!(kind, CorruptKind::ChecksumMismatch("chunk data"));
            assert_eq!((offset, entry.as_deref(), chunk), (at, Some("f"), Some(1)));
        }
        e => panic!("{e:?}"),
    }
    assert!(
        !sb.dest.join("f").exists(),
        "a file with bad data got its name"
    );
    assert_eq!(fs::read(sb.dest.join("ok")).unwrap(), b"fine");
}

#[test]
fn zstd_chunks_decode_and_are_bounded() {
    let data = common::text(900, 2);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = data.len() as u64;
    b.entry(&e);
    b.frame(&FrameSpec::coded(CODEC_ZSTD, &data, z.clone()));
    assert_eq!(common::decode(&b.finish()).unwrap().items[0].1, data);

    // A zstd payload that inflates past raw_len.
    let mut b = Builder::new();
    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.size = 100;
    b.entry(&e);
    let mut f = FrameSpec::coded(CODEC_ZSTD, &data[..100], z.clone());
    f.raw_len = 100;
    b.frame(&f);
    assert!(matches!(corrupt(&b.finish()).1, CorruptKind::Decode(_)));

    // Garbage after the zstd frame.
    let mut p = z.clone();
    p.extend_from_slice(b"garbage!");
    let mut b = Builder::new();
    b.entry(&e_file("f", data.len()));
    b.frame(&FrameSpec::coded(CODEC_ZSTD, &data, p));
    assert!(matches!(corrupt(&b.finish()).1, CorruptKind::Decode(_)));
}

/// A frame of zstd's v0.7 format (magic 0xFD2FB527), which libzstd built
/// with its legacy decoders turns into `raw`; format-spec 5 allows only
/// RFC 8878 frames.
fn zstd_v07_frame(raw: &[u8]) -> Vec<u8> {
    let mut p = vec![0x27, 0xB5, 0x2F, 0xFD, 0x20, raw.len() as u8];
    p.extend_from_slice(&[0x40, 0, raw.len() as u8]);
    p.extend_from_slice(raw);
    p.extend_from_slice(&[0xC0, 0, 0]);
    p
}

#[test]
fn rejects_legacy_zstd_frame() {
    let raw = b"legacy frame!";
    let mut b = Builder::new();
    b.entry(&e_file("f", raw.len()));
    b.frame(&FrameSpec::coded(CODEC_ZSTD, raw, zstd_v07_frame(raw)));
    let bytes = b.finish();
    match corrupt(&bytes).1 {
        CorruptKind::Decode(m) => assert!(m.contains("RFC 8878"), "{m}"),
        other => panic!("{other:?}"),
    }
    // the fuzz targets replay it (tests/fuzz_regressions.rs)
    let saved = common::repo("tests/fuzz_regressions/decode-zstd-legacy-frame.bin");
    assert_eq!(fs::read(saved).unwrap(), bytes);
}

fn e_file(path: &str, size: usize) -> EntrySpec {
    let mut e = EntrySpec::new(KIND_FILE, path);
    e.size = size as u64;
    e
}

#[test]
fn rejects_zstd_payload_with_extra_frames() {
    let data = common::text(900, 3);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    // One zstd frame followed by an (empty) skippable frame.
    let mut p = z.clone();
    p.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    let mut b = Builder::new();
    b.entry(&e_file("f", data.len()));
    b.frame(&FrameSpec::coded(CODEC_ZSTD, &data, p));
    let skippable = common::decode(&b.finish()).map(|_| ());

    // Two zstd frames, each half the data.
    let mut p = zstd::bulk::compress(&data[..450], 3).unwrap();
    p.extend_from_slice(&zstd::bulk::compress(&data[450..], 3).unwrap());
    let mut b = Builder::new();
    b.entry(&e_file("f", data.len()));
    b.frame(&FrameSpec::coded(CODEC_ZSTD, &data, p));
    let two = common::decode(&b.finish()).map(|_| ());
    assert!(
        skippable.is_err() && two.is_err(),
        "zstd frame + skippable frame: {skippable:?}; two zstd frames: {two:?}"
    );
}

// ---- header -----------------------------------------------------------------

fn header_only(h: HeaderSpec) -> Vec<u8> {
    Builder::with_header(h).finish()
}

#[test]
fn rejects_max_chunk_out_of_range() {
    for m in [0, (64 << 20) + 1, u32::MAX] {
        let bytes = header_only(HeaderSpec {
            max_chunk: m,
            ..Default::default()
        });
        assert_eq!(corrupt(&bytes), (0, CorruptKind::MaxChunkOutOfRange(m)));
    }
    for m in [1, 64 << 20] {
        let bytes = header_only(HeaderSpec {
            max_chunk: m,
            ..Default::default()
        });
        common::decode(&bytes).unwrap();
    }
}

#[test]
fn rejects_reserved_bits() {
    for flags in [1u16, 0x8000] {
        let bytes = header_only(HeaderSpec {
            flags,
            ..Default::default()
        });
        match corrupt(&bytes) {
            (0, CorruptKind::ReservedBits { field, value }) => {
                assert!(field.contains("header"), "{field}");
                assert_eq!(value, flags as u64);
            }
            k => panic!("{k:?}"),
        }
    }
    let bytes = header_only(HeaderSpec {
        reserved: 0x100,
        ..Default::default()
    });
    assert!(matches!(
        corrupt(&bytes),
        (0, CorruptKind::ReservedBits { value: 0x100, .. })
    ));

    let mut e = EntrySpec::new(KIND_DIR, "d");
    e.reserved = 0x0200;
    let mut b = Builder::new();
    b.entry(&e);
    match corrupt(&b.finish()) {
        (
            40,
            CorruptKind::ReservedBits {
                field,
                value: 0x200,
            },
        ) => {
            assert!(field.contains("entry"), "{field}")
        }
        k => panic!("{k:?}"),
    }

    let mut e = EntrySpec::new(KIND_FILE, "f");
    e.mode = 0o10644;
    let mut b = Builder::new();
    b.entry(&e);
    assert!(matches!(
        corrupt(&b.finish()),
        (40, CorruptKind::ReservedBits { value: 0o10644, .. })
    ));

    let mut b = Builder::new();
    b.entry(&e_file("f", 4));
    let at = b.pos();
    let mut f = FrameSpec::stored(b"abcd");
    f.reserved = 0x0001;
    b.frame(&f);
    match corrupt(&b.finish()) {
        (off, CorruptKind::ReservedBits { field, value: 1 }) => {
            assert_eq!(off, at);
            assert!(field.contains("chunk"), "{field}");
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn rejects_bad_magic_version_and_header_crc() {
    let mut h = HeaderSpec::default();
    h.magic[1] = b'X';
    assert_eq!(corrupt(&header_only(h)), (0, CorruptKind::BadMagic));
    // (versions 1 and 2 are read)
    let h = HeaderSpec {
        version: 3,
        ..Default::default()
    };
    assert_eq!(
        corrupt(&header_only(h)),
        (0, CorruptKind::UnsupportedVersion(3))
    );
    let mut bytes = header_only(HeaderSpec::default());
    bytes[36] ^= 0x80;
    assert_eq!(
        corrupt(&bytes),
        (0, CorruptKind::ChecksumMismatch("header"))
    );
    // A zip file is not an lza archive.
    let mut zip = b"PK\x03\x04".to_vec();
    zip.resize(200, 0);
    assert_eq!(corrupt(&zip).1, CorruptKind::BadMagic);
}

#[test]
fn rejects_record_checksum_mismatches() {
    let mut b = Builder::new();
    b.dir("d");
    let mut bytes = b.finish();
    bytes[40 + 28] ^= 1; // the path byte
    assert_eq!(
        corrupt(&bytes),
        (40, CorruptKind::ChecksumMismatch("entry record"))
    );

    let mut b = Builder::new();
    b.file("f", b"abc");
    let frame_at = b.offsets[1] as usize;
    let mut bytes = b.finish();
    bytes[frame_at + 20] ^= 1; // frame_crc
    assert_eq!(
        corrupt(&bytes),
        (
            frame_at as u64,
            CorruptKind::ChecksumMismatch("chunk frame header")
        )
    );

    let mut bytes = Builder::new().finish();
    let n = bytes.len();
    bytes[n - 5] ^= 1; // end_crc (bytes 41..45 of the 49-byte record)
    assert_eq!(
        corrupt(&bytes),
        (40, CorruptKind::ChecksumMismatch("end record"))
    );
}

// ---- codecs and tags -----------------------------------------------------------

#[test]
fn rejects_unknown_codec() {
    for codec in [4u8, 0x7F, 0xFF] {
        let mut b = Builder::new();
        b.entry(&e_file("f", 4));
        let at = b.pos();
        let mut f = FrameSpec::stored(b"abcd");
        f.codec = codec;
        b.frame(&f);
        assert_eq!(corrupt(&b.finish()), (at, CorruptKind::UnknownCodec(codec)));
    }
}

#[test]
fn rejects_unknown_tag() {
    for tag in [0x00u8, 0x03, 0x7F, 0xFE] {
        let mut b = Builder::new();
        b.dir("d");
        let at = b.pos();
        b.raw(&[tag; 60]);
        assert_eq!(corrupt(&b.finish()), (at, CorruptKind::UnknownTag(tag)));
    }
}

#[test]
fn rejects_language_model_chunk_without_model() {
    let data = b"some text for the model";
    let mut b = Builder::new();
    b.entry(&e_file("t.txt", data.len()));
    let at = b.pos();
    b.frame(&FrameSpec::coded(CODEC_LM, data, vec![0; 12]));
    assert_eq!(corrupt(&b.finish()), (at, CorruptKind::NoModel));
}

#[test]
fn refuses_unknown_model_before_writing_anything() {
    let sb = Sandbox::new();
    let mut b = Builder::with_header(HeaderSpec {
        model_hash: [0xAB; 16],
        ..Default::default()
    });
    b.dir("d");
    b.file("d/f", b"plain");
    match sb.reject(&b.finish()) {
        Error::UnknownModel { hash } => assert_eq!(hash.0, [0xAB; 16]),
        e => panic!("{e:?}"),
    }
    assert!(snapshot(&sb.dest).is_empty());
}

// ---- end record --------------------------------------------------------------

#[test]
fn rejects_trailing_bytes() {
    let mut b = Builder::new();
    b.file("f", b"data");
    let end_at = b.pos();
    let mut bytes = b.finish();
    bytes.push(0);
    assert_eq!(corrupt(&bytes), (end_at, CorruptKind::TrailingData));
    // A second archive appended.
    let mut bytes = b.finish();
    bytes.extend_from_slice(&b.finish());
    assert_eq!(corrupt(&bytes).1, CorruptKind::TrailingData);
}

#[test]
fn rejects_wrong_end_totals() {
    let mut b = Builder::new();
    b.dir("d");
    b.file_chunked("d/f", 0o644, &common::text(2500, 4), 1000);
    b.symlink("d/l", "f");
    let end_at = b.pos();
    type Edit = fn(&mut EndSpec);
    let cases: [(Edit, &str); 8] = [
        (|e| e.entries += 1, "entry count"),
        (|e| e.entries -= 1, "entry count"),
        (|e| e.chunks += 1, "chunk count"),
        (|e| e.raw_bytes -= 1, "total data size"),
        (|e| e.raw_bytes += 1 << 32, "total data size"),
        (|e| e.stream_len += 1, "stream length"),
        (|e| e.stream_len -= 40, "stream length"),
        (|e| e.stream_xxh3 ^= 1, "stream checksum"),
    ];
    for (edit, what) in cases {
        let sb = Sandbox::new();
        match sb.reject(&b.finish_with(edit)) {
            Error::Corrupt { offset, kind, .. } => {
                assert_eq!((offset, kind), (end_at, CorruptKind::EndMismatch(what)))
            }
            e => panic!("{what}: {e:?}"),
        }
        // The end record is checked before symlinks are made.
        assert!(sb.symlinks_in_dest().is_empty(), "{what}");
    }
    common::decode(&b.finish()).unwrap();
}

#[test]
fn rejects_missing_end_record() {
    let mut b = Builder::new();
    b.file("f", b"data");
    let n = b.pos();
    assert!(matches!(
        corrupt(&b.buf),
        (off, CorruptKind::Truncated(_)) if off == n
    ));
}

// ---- limits -------------------------------------------------------------------

#[test]
fn enforces_entry_and_size_limits() {
    let mut b = Builder::new();
    for i in 0..5 {
        b.file(&format!("f{i}"), b"0123456789");
    }
    let bytes = b.finish();
    let read = |limits: lza::container::reader::Limits| {
        let opts = lza::archive::extract::ReadOptions {
            limits,
            ..Default::default()
        };
        lza::archive::extract::read_archive(
            &bytes[..],
            &opts,
            &mut lza::archive::extract::Discard,
            &mut |_| {},
            &mut |_| {},
        )
    };
    let max_entries = lza::container::reader::Limits {
        max_entries: 4,
        max_size: u64::MAX,
    };
    assert!(matches!(
        read(max_entries),
        Err(Error::Corrupt {
            kind: CorruptKind::TooManyEntries(4),
            ..
        })
    ));
    let max_size = lza::container::reader::Limits {
        max_entries: 100,
        max_size: 49,
    };
    assert!(matches!(read(max_size), Err(Error::Limit(_))));
    let exact = lza::container::reader::Limits {
        max_entries: 5,
        max_size: 50,
    };
    read(exact).unwrap();
}

// ---- the destination ----------------------------------------------------------

#[test]
fn refuses_to_write_through_existing_symlink_in_destination() {
    for overwrite in [false, true] {
        for link in ["abs", "rel"] {
            let sb = Sandbox::new();
            let target = if link == "abs" {
                sb.outside.clone()
            } else {
                PathBuf::from("../../outside")
            };
            std::os::unix::fs::symlink(&target, sb.dest.join("evil")).unwrap();
            for archive in [
                {
                    let mut b = Builder::new();
                    b.file("evil/x", b"pwned");
                    b.finish()
                },
                {
                    let mut b = Builder::new();
                    b.file("evil/sub/x", b"pwned");
                    b.finish()
                },
                {
                    let mut b = Builder::new();
                    b.dir("evil/d");
                    b.finish()
                },
                {
                    let mut b = Builder::new();
                    b.file("f", b"pwned");
                    b.hardlink("evil/h", "f");
                    b.finish()
                },
                {
                    let mut b = Builder::new();
                    b.symlink("evil/l", "x");
                    b.finish()
                },
            ] {
                match sb.extract(&archive, overwrite) {
                    Err(Error::UnsafeEntry { path, reason }) => {
                        assert!(path.starts_with("evil/"), "{path}");
                        assert!(reason.contains("symbolic link"), "{reason}");
                    }
                    r => panic!("overwrite={overwrite} {link}: {r:?}"),
                }
                assert!(
                    snapshot(&sb.outside).is_empty(),
                    "wrote outside: {:?}",
                    snapshot(&sb.outside)
                );
                assert_eq!(fs::read_link(sb.dest.join("evil")).unwrap(), target);
            }
            // A directory entry at the symlink's own path is refused too.
            let mut b = Builder::new();
            b.dir("evil");
            b.file("evil/x", b"pwned");
            assert!(sb.extract(&b.finish(), overwrite).is_err());
            assert!(snapshot(&sb.outside).is_empty());
        }
    }
}

#[test]
fn does_not_replace_existing_files_without_overwrite() {
    let sb = Sandbox::new();
    fs::write(sb.dest.join("f"), b"original").unwrap();
    let mut b = Builder::new();
    b.file("f", b"replacement");
    match sb.extract(&b.finish(), false) {
        Err(Error::Exists { path }) => assert_eq!(path, sb.dest.join("f")),
        r => panic!("{r:?}"),
    }
    assert_eq!(fs::read(sb.dest.join("f")).unwrap(), b"original");
    sb.extract(&b.finish(), true).unwrap();
    assert_eq!(fs::read(sb.dest.join("f")).unwrap(), b"replacement");
    // Never a directory, even with overwrite.
    fs::create_dir(sb.dest.join("d")).unwrap();
    let mut b = Builder::new();
    b.file("d", b"x");
    assert!(matches!(
        sb.extract(&b.finish(), true),
        Err(Error::Exists { .. })
    ));
    assert!(sb.dest.join("d").is_dir());
}

#[test]
fn masks_modes() {
    let sb = Sandbox::new();
    let mut b = Builder::new();
    let mut d = EntrySpec::new(KIND_DIR, "d");
    d.mode = 0o7777;
    b.entry(&d);
    for (name, mode) in [
        ("d/suid", 0o4777),
        ("d/sgid", 0o2755),
        ("d/sticky", 0o1644),
        ("d/gw", 0o666),
    ] {
        b.file_chunked(name, mode, b"x", 1024);
    }
    sb.extract(&b.finish(), false).unwrap();
    let mode = |p: &str| {
        fs::symlink_metadata(sb.dest.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(format!("{:o}", mode("d")), "755");
    assert_eq!(format!("{:o}", mode("d/suid")), "755");
    assert_eq!(format!("{:o}", mode("d/sgid")), "755");
    assert_eq!(format!("{:o}", mode("d/sticky")), "644");
    assert_eq!(format!("{:o}", mode("d/gw")), "644");
}

#[test]
fn valid_spec_archive_extracts() {
    // The builder itself produces what lza accepts, so the rejections above
    // are about the one broken field.
    let sb = Sandbox::new();
    let mut b = Builder::new();
    b.dir("d");
    b.file("d/a", b"alpha");
    b.file_chunked("d/multi", 0o600, &common::text(5000, 9), 1000);
    b.file("empty", b"");
    b.symlink("d/l", "a");
    b.hardlink("h", "d/a");
    let mut e = EntrySpec::new(KIND_DIR, "late/dir");
    e.mtime_ns = -1_500_000_000; // before the epoch
    b.entry(&e);
    sb.extract(&b.finish(), false).unwrap();
    assert_eq!(
        fs::read(sb.dest.join("d/multi")).unwrap(),
        common::text(5000, 9)
    );
    assert_eq!(fs::read(sb.dest.join("d/l")).unwrap(), b"alpha");
    assert_eq!(fs::read(sb.dest.join("empty")).unwrap(), b"");
    let md = fs::metadata(sb.dest.join("late/dir")).unwrap();
    assert_eq!(common::mtime_ns(&md), -1_500_000_000);
}

// Regression: the end record was once written as 49 bytes, 4 of them
// covered by no checksum; now any byte after the 45-byte record is rejected.
#[test]
fn rejects_bytes_after_the_end_record() {
    let mut b = Builder::new();
    b.file("f", b"data");
    for pad in [&[0u8][..], &[1], &[0, 0, 0, 0]] {
        let bytes = b.finish_with(|e| e.pad = pad);
        assert!(
            common::decode(&bytes).is_err(),
            "{} bytes after the end record accepted",
            pad.len()
        );
    }
}
