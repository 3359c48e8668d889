//! Solid blocks (format-spec 4a): small files coded together, each still
//! its own entry; listing without decoding; selection that decodes only
//! the blocks it needs; the must-reject rules for bad block records.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use lza::CorruptKind;
use lza::archive::create::{CreateOptions, Method, Solid};
use lza::archive::extract::{ReadOptions, Sink};
use lza::archive::select::{Members, Select};
use lza::format::{
    BLOCK_FIXED_LEN, BlockFile, BlockRecord, EndRecord, FRAME_HEADER_LEN, HEADER_LEN, TAG_BLOCK,
    TAG_CHUNK, TAG_END, TAG_ENTRY,
};

/// A tree of small text and binary files, empty files, one file too large
/// for a block, a symbolic link and a hard link to a small file.
fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    for i in 0..30 {
        let text = common::text(500 + 97 * i, i as u64);
        common::write_file(&t.join(format!("src/m{i}.rs")), &text, 0o644);
    }
    for i in 0..6 {
        let bin = common::Rng::new(100 + i).bytes(3000);
        common::write_file(&t.join(format!("bin/b{i}.dat")), &bin, 0o600);
    }
    common::write_file(&t.join("empty1"), b"", 0o644);
    common::write_file(&t.join("src/empty2"), b"", 0o644);
    common::write_file(&t.join("big.txt"), &common::text(40_000, 7), 0o644);
    std::os::unix::fs::symlink("src/m1.rs", t.join("link")).unwrap();
    fs::hard_link(t.join("src/m2.rs"), t.join("hard.rs")).unwrap();
    common::fix_mtimes(&t, 1_700_000_000_123_456_789);
    tmp
}

/// Archive `inputs` under `base` with `solid` and `method`.
fn archive(base: &Path, solid: Solid, method: Method, threads: usize) -> Vec<u8> {
    let mut warnings = lza::archive::create::Warnings::default();
    let sources = lza::archive::create::collect_sources(
        base,
        &[PathBuf::from("t")],
        &lza::archive::create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    let opts = CreateOptions {
        threads,
        method,
        chunk_size: 1 << 20,
        solid,
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

/// Small blocks, so that the tree makes several.
const SMALL_BLOCKS: Solid = Solid {
    block_size: 16 << 10,
    sort: true,
};

/// Where each record of an archive starts: (offset, tag).
fn records(b: &[u8]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    loop {
        let tag = b[at];
        out.push((at, tag));
        let len = match tag {
            TAG_ENTRY => {
                let path = u16::from_le_bytes([b[at + 24], b[at + 25]]) as usize;
                let link = u16::from_le_bytes([b[at + 26], b[at + 27]]) as usize;
                28 + path + link + 4
            }
            TAG_CHUNK => {
                FRAME_HEADER_LEN
                    + u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize
            }
            TAG_BLOCK => {
                let stored = u32::from_le_bytes(b[at + 16..at + 20].try_into().unwrap()) as usize;
                BLOCK_FIXED_LEN + stored + 4
            }
            TAG_END => return out,
            t => panic!("tag {t:#x} at {at}"),
        };
        at += len;
    }
}

/// Rewrite the end record so that its stream checksum covers the bytes as
/// they are now (so that a test reaches the rule it is about).
fn reseal(b: &mut Vec<u8>) {
    let end_at = records(b).last().unwrap().0;
    b.truncate(end_at);
    // counts from the records as they are
    let (mut entries, mut chunks, mut raw) = (0u64, 0u64, 0u64);
    for (at, tag) in records(&[b.as_slice(), &[TAG_END]].concat()) {
        let u32_at = |i: usize| u32::from_le_bytes(b[at + i..at + i + 4].try_into().unwrap());
        match tag {
            TAG_ENTRY => entries += 1,
            TAG_BLOCK => entries += u32_at(4) as u64,
            TAG_CHUNK => {
                chunks += 1;
                raw += u32_at(4) as u64;
            }
            _ => {}
        }
    }
    let end = EndRecord {
        entries,
        chunks,
        raw_bytes: raw,
        stream_len: b.len() as u64,
        stream_xxh3: xxhash_rust::xxh3::xxh3_64(&b[HEADER_LEN..]),
    };
    b.extend_from_slice(&end.to_bytes());
}

#[test]
fn solid_archive_round_trips_and_lists_every_file() {
    let tmp = tree();
    let bytes = archive(tmp.path(), SMALL_BLOCKS, Method::Zstd, 1);
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 2, "version 2");
    let recs = records(&bytes);
    let blocks = recs.iter().filter(|r| r.1 == TAG_BLOCK).count();
    assert!(blocks >= 3, "{blocks} blocks");
    let out = tmp.path().join("out");
    common::extract_to(&bytes, &out, false).unwrap();
    common::assert_same_tree(&tmp.path().join("t"), &out.join("t"));
    // every file is listed, without decoding, once
    let mut listed = Vec::new();
    lza::archive::extract::list_archive(bytes.as_slice(), Default::default(), &mut |e| {
        listed.push(e.path.clone())
    })
    .unwrap();
    let mut want = common::snapshot(&tmp.path().join("t")).len();
    want += 1; // "t" itself
    assert_eq!(listed.len(), want, "{listed:?}");
    assert!(listed.iter().any(|p| p == "t/src/m17.rs"));
    // the same bytes with any thread count
    for threads in [2, 4] {
        let again = archive(tmp.path(), SMALL_BLOCKS, Method::Zstd, threads);
        assert!(again == bytes, "{threads} threads gave other bytes");
    }
}

#[test]
fn solid_off_writes_version_1_and_blocks_shrink_records() {
    let tmp = tree();
    let off = archive(tmp.path(), Solid::OFF, Method::Zstd, 1);
    assert_eq!(u16::from_le_bytes([off[8], off[9]]), 1);
    assert!(!records(&off).iter().any(|r| r.1 == TAG_BLOCK));
    let on = archive(tmp.path(), Solid::DEFAULT, Method::Zstd, 1);
    assert!(on.len() < off.len(), "{} vs {}", on.len(), off.len());
    let out = tmp.path().join("out");
    common::extract_to(&on, &out, false).unwrap();
    common::assert_same_tree(&tmp.path().join("t"), &out.join("t"));
}

/// The context-mixing coder codes a block's files as one history: a text
/// file repeated in a block costs far less than on its own.
#[test]
fn files_of_a_block_learn_from_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    let text = common::text(6000, 3);
    for name in ["a.txt", "b.txt"] {
        common::write_file(&t.join(name), &text, 0o644);
    }
    let off = archive(tmp.path(), Solid::OFF, Method::Cm, 2);
    let on = archive(tmp.path(), Solid::DEFAULT, Method::Cm, 2);
    assert!(
        on.len() * 10 < off.len() * 6,
        "{} vs {}",
        on.len(),
        off.len()
    );
    let c = common::decode(&on).unwrap();
    let files: Vec<_> = c.items.iter().filter(|i| i.0.size > 0).collect();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.1 == text));
}

/// Two versions of a project, each too large to share a block with the
/// other in walk order: the files of one name and a similar size go side
/// by side (`plan::solid_sequence`), so the second version costs little,
/// and the archive lists them in that order.
#[test]
fn versions_of_a_file_share_a_block() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    for i in 0..10u64 {
        let mut text = common::text(3000, 40 + i);
        common::write_file(&t.join(format!("v1/f{i}.txt")), &text, 0o644);
        text.extend_from_slice(format!("// changed in v2: {i}\n").as_bytes());
        common::write_file(&t.join(format!("v2/f{i}.txt")), &text, 0o644);
    }
    let blocks = Solid {
        block_size: 32 << 10,
        ..Solid::DEFAULT
    };
    let both = archive(tmp.path(), blocks, Method::Cm, 2);
    let c = common::decode(&both).unwrap();
    let files: Vec<&str> = c
        .items
        .iter()
        .filter(|i| i.0.size > 0)
        .map(|i| i.0.path.as_str())
        .collect();
    let want: Vec<String> = (0..10)
        .flat_map(|i| [format!("t/v1/f{i}.txt"), format!("t/v2/f{i}.txt")])
        .collect();
    assert_eq!(files, want);
    // each version alone
    fs::rename(t.join("v2"), tmp.path().join("v2")).unwrap();
    let v1 = archive(tmp.path(), blocks, Method::Cm, 2);
    assert!(
        both.len() * 10 < v1.len() * 13,
        "{} vs {}",
        both.len(),
        v1.len()
    );
}

/// A sink that counts the data it is given.
#[derive(Default)]
struct Count(u64);

impl Sink for Count {
    fn entry(&mut self, _: &lza::format::Entry) -> lza::Result<()> {
        Ok(())
    }
    fn data(&mut self, b: &[u8]) -> lza::Result<()> {
        self.0 += b.len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> lza::Result<()> {
        Ok(())
    }
}

fn select(bytes: &[u8], names: &[&str]) -> lza::Result<u64> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut count = Count::default();
    let mut s = Select::new(
        &mut count,
        Some(Members::new(&names, false).unwrap()),
        0,
        |_| {},
        |_| {},
    );
    lza::archive::extract::read_archive(
        bytes,
        &ReadOptions::default(),
        &mut s,
        &mut |_| {},
        &mut |_| {},
    )?;
    drop(s);
    Ok(count.0)
}

/// Extracting one member decodes only its block: a corrupt chunk in
/// another block does not stop it, and does stop extracting everything.
#[test]
fn selecting_a_member_decodes_only_its_block() {
    let tmp = tree();
    let mut bytes = archive(tmp.path(), SMALL_BLOCKS, Method::Zstd, 1);
    let recs = records(&bytes);
    // the first block's first chunk: flip a payload byte, keep the stream
    // checksum right
    let block_at = recs.iter().position(|r| r.1 == TAG_BLOCK).unwrap();
    let (chunk_at, tag) = recs[block_at + 1];
    assert_eq!(tag, TAG_CHUNK);
    let table = {
        let at = recs[block_at].0;
        let fixed: [u8; BLOCK_FIXED_LEN] = bytes[at..at + BLOCK_FIXED_LEN].try_into().unwrap();
        let f = lza::format::BlockFixed::parse(&fixed, 1 << 20).unwrap();
        f.finish(&bytes[at + BLOCK_FIXED_LEN..at + BLOCK_FIXED_LEN + f.rest_len()])
            .unwrap()
    };
    let last = bytes.len() - lza::format::END_LEN;
    assert!(chunk_at + FRAME_HEADER_LEN + 4 < last);
    bytes[chunk_at + FRAME_HEADER_LEN + 4] ^= 0x40;
    reseal(&mut bytes);
    let victim = table[0].path.clone();
    // a file in no corrupt block: fine, and only its data came out
    let big = select(&bytes, &["t/big.txt"]).unwrap();
    assert_eq!(
        big,
        fs::metadata(tmp.path().join("t/big.txt")).unwrap().len()
    );
    // the corrupt block's file: refused
    let e = select(&bytes, &[&victim]).expect_err("corrupt block decoded");
    assert!(matches!(e, lza::Error::Corrupt { .. }), "{e:?}");
    assert!(common::decode(&bytes).is_err());
}

/// A block with one file: its record's bytes, with the given chunk count
/// and data length, then its frames, in a version 2 archive.
fn one_block_archive(files: &[BlockFile], data: &[u8], fix: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let header = lza::format::Header {
        version: lza::format::VERSION,
        max_chunk: 1 << 16,
        model_hash: Default::default(),
    };
    let mut b = header.to_bytes().to_vec();
    let mut frames = Vec::new();
    if !data.is_empty() {
        lza::codecs::Frame::stored(data).write_to(&mut frames);
    }
    let mut rec = BlockRecord {
        files,
        chunks: u32::from(!data.is_empty()),
        data_len: frames.len() as u64,
    }
    .to_bytes();
    fix(&mut rec);
    b.extend_from_slice(&rec);
    b.extend_from_slice(&frames);
    b.push(TAG_END);
    reseal(&mut b);
    b
}

fn file(path: &str, size: u64) -> BlockFile {
    BlockFile {
        path: path.into(),
        mode: 0o644,
        mtime_ns: 5,
        size,
    }
}

/// Set a field of the fixed part and recompute its CRC.
fn set(rec: &mut [u8], at: usize, v: &[u8]) {
    rec[at..at + v.len()].copy_from_slice(v);
    let crc = crc32fast::hash(&rec[..36]);
    rec[36..40].copy_from_slice(&crc.to_le_bytes());
}

fn rejected(b: &[u8]) -> CorruptKind {
    let tmp = tempfile::tempdir().unwrap();
    let e = common::extract_to(b, tmp.path(), false).map(|_| ());
    assert!(common::tmp_leftovers(tmp.path()).is_empty());
    let (_, kind) = common::corrupt_kind(e);
    // listing refuses it too
    assert!(lza::archive::extract::list_archive(b, Default::default(), &mut |_| {}).is_err());
    kind
}

#[test]
fn good_block_archive_decodes() {
    let files = [file("a", 3), file("b", 0), file("c/d", 2)];
    let b = one_block_archive(&files, b"xyzuv", |_| {});
    let c = common::decode(&b).unwrap();
    let got: Vec<(&str, &[u8])> = c
        .items
        .iter()
        .map(|(e, d)| (e.path.as_str(), d.as_slice()))
        .collect();
    assert_eq!(got, [("a", &b"xyz"[..]), ("b", b""), ("c/d", b"uv")]);
    // only empty files: no chunk at all
    let b = one_block_archive(&[file("e", 0)], b"", |_| {});
    assert_eq!(common::decode(&b).unwrap().items.len(), 1);
}

#[test]
fn bad_block_records_are_rejected() {
    let bad_block = |k: CorruptKind| matches!(k, CorruptKind::BadBlock(_));
    // a file claiming bytes beyond its block
    let b = one_block_archive(&[file("a", 3), file("b", 9)], b"xyzuv", |r| {
        set(r, 20, &5u64.to_le_bytes())
    });
    assert!(bad_block(rejected(&b)));
    // a block whose chunks end before its files do
    let b = one_block_archive(&[file("a", 3), file("b", 9)], b"xyzuv", |_| {});
    assert!(matches!(rejected(&b), CorruptKind::FileTooShort { .. }));
    // a block with no files
    let b = one_block_archive(&[file("a", 5)], b"xyzuv", |r| {
        set(r, 4, &0u32.to_le_bytes())
    });
    assert!(bad_block(rejected(&b)));
    // counts that disagree: more chunks declared than follow
    let b = one_block_archive(&[file("a", 5)], b"xyzuv", |r| {
        set(r, 8, &2u32.to_le_bytes())
    });
    assert!(bad_block(rejected(&b)));
    // data_len that disagrees with the frames
    let b = one_block_archive(&[file("a", 5)], b"xyzuv", |r| {
        set(r, 28, &(FRAME_HEADER_LEN as u64 + 6).to_le_bytes())
    });
    assert!(bad_block(rejected(&b)));
    // file count other than the table's rows
    let b = one_block_archive(&[file("a", 2), file("b", 3)], b"xyzuv", |r| {
        set(r, 4, &1u32.to_le_bytes())
    });
    assert!(bad_block(rejected(&b)));
    // sizes that overflow
    let b = one_block_archive(&[file("a", u64::MAX), file("b", 6)], b"xyzuv", |_| {});
    assert!(bad_block(rejected(&b)));
    // a table with a bad path
    let b = one_block_archive(&[file("a/../b", 5)], b"xyzuv", |_| {});
    assert!(matches!(rejected(&b), CorruptKind::BadPath { .. }));
    // the same path twice
    let b = one_block_archive(&[file("a", 2), file("a", 3)], b"xyzuv", |_| {});
    assert!(matches!(rejected(&b), CorruptKind::DuplicatePath(_)));
    // a flipped table byte
    let b = one_block_archive(&[file("a", 5)], b"xyzuv", |r| r[BLOCK_FIXED_LEN] ^= 1);
    assert!(matches!(rejected(&b), CorruptKind::ChecksumMismatch(_)));
    // reserved bits
    let b = one_block_archive(&[file("a", 5)], b"xyzuv", |r| set(r, 2, &[1, 0]));
    assert!(matches!(rejected(&b), CorruptKind::ReservedBits { .. }));
    // a block record in a version 1 archive is an unknown record
    let mut b = one_block_archive(&[file("a", 5)], b"xyzuv", |_| {});
    b[8] = 1;
    let crc = crc32fast::hash(&b[..36]);
    b[36..40].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(rejected(&b), CorruptKind::UnknownTag(TAG_BLOCK)));
}

/// The file table's own rules (format-spec 4a), on hand-made tables.
#[test]
fn file_table_rules() {
    use lza::format::{decode_table, encode_table};
    let files = vec![
        file("dir/a.rs", 10),
        file("dir/b.rs", 0),
        file("x", 1 << 40),
    ];
    let t = encode_table(&files);
    assert_eq!(decode_table(&t, 3).unwrap(), files);
    // rows missing, bytes left over
    assert!(decode_table(&t, 4).is_err());
    assert!(decode_table(&[t.as_slice(), &[0]].concat(), 3).is_err());
    // a varint not in its shortest form (0x80 0x00 for 0)
    assert!(decode_table(&[0x80, 0x00, 0x01, b'a', 0, 0, 0], 1).is_err());
    // a varint of 11 bytes
    let mut long = vec![0u8, 1, b'a'];
    long.extend_from_slice(&[0xFF; 10]);
    long.push(0x01);
    long.extend_from_slice(&[0, 0]);
    assert!(decode_table(&long, 1).is_err());
    // sharing more than the previous path has
    assert!(decode_table(&[0, 1, b'a', 2, 1, b'b', 0, 0, 0, 0, 0, 0], 2).is_err());
    // a mode outside 0o7777
    assert!(decode_table(&[0, 1, b'a', 0, 0x80, 0x80, 0x01, 0], 1).is_err());
}

#[test]
fn cli_lists_block_files_and_extracts_one() {
    let tmp = tree();
    let a = tmp.path().join("a.lza");
    let a = a.to_str().unwrap();
    let base = tmp.path().to_str().unwrap();
    common::ok(common::lza(
        &[
            "c",
            "-m",
            "zstd",
            "--block-size",
            "16K",
            "-f",
            a,
            "-C",
            base,
            "t",
        ],
        &[],
    ));
    let list = common::ok(common::lza(&["t", "-v", a], &[]));
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("solid:") && l.ends_with("t/src/m3.rs")),
        "{list}"
    );
    let out = tmp.path().join("out");
    common::ok(common::lza(
        &["x", "-C", out.to_str().unwrap(), a, "t/src/m3.rs"],
        &[],
    ));
    assert_eq!(
        fs::read(out.join("t/src/m3.rs")).unwrap(),
        fs::read(tmp.path().join("t/src/m3.rs")).unwrap()
    );
    assert!(!out.join("t/src/m4.rs").exists());
}

/// The records of small files (format-spec 4a): 1,000 files of 0 to 19
/// bytes in 10 directories cost a few bytes each in blocks, where entry
/// records cost 32 bytes plus the path (60 a file on this tree).
#[test]
fn records_of_tiny_files_cost_a_few_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    for i in 0..1000 {
        let body = format!("{}", i * 7919).repeat(i % 4);
        common::write_file(
            &t.join(format!("d{}/file-{i:04}.txt", i % 10)),
            body.as_bytes(),
            0o644,
        );
    }
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
    let off = archive(tmp.path(), Solid::OFF, Method::Zstd, 1);
    let on = archive(tmp.path(), Solid::DEFAULT, Method::Zstd, 1);
    // whole archives, data included, per file
    let per_file = |a: &[u8]| a.len() as f64 / 1000.0;
    assert!(per_file(&off) > 40.0, "{} without blocks", per_file(&off));
    assert!(
        per_file(&on) < 8.0,
        "{} bytes a file in blocks",
        per_file(&on)
    );
    let out = tmp.path().join("out");
    common::extract_to(&on, &out, false).unwrap();
    common::assert_same_tree(&t, &out.join("t"));
}
