//! Concatenated members and the trailing index (format-spec 12 and 13):
//! archives that `cat` joins, the goldens that pin them, and the must-reject
//! rules for bad concatenations and bad indexes, read both front to back
//! and through the index.
//!
//! Regenerate the goldens (only when the format changes on purpose) with
//!
//!     LZA_REGEN_GOLDEN=1 cargo test --release --test concat -- --ignored

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use lza::container::index::{self, ArchiveIndex};
use lza::container::reader::Limits;
use lza::format::member::{self, FOOTER_LEN};
use lza::format::{END_LEN, EntryKind, HEADER_LEN};
use lza::{CorruptKind, Error};

use common::{assert_same_tree, corrupt_kind, decode, extract_to, write_file};

/// A small tree under `base/name`: files of a few chunks, a directory, a
/// symbolic link and a hard link, mtimes fixed.
fn tree(base: &Path, name: &str, seed: u64) {
    let root = base.join(name);
    write_file(&root.join("a.txt"), &common::text(3000, seed), 0o644);
    write_file(
        &root.join("sub/b.bin"),
        &common::Rng::new(seed).bytes(700),
        0o600,
    );
    write_file(&root.join("sub/empty"), b"", 0o644);
    fs::create_dir_all(root.join("emptydir")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    fs::hard_link(root.join("a.txt"), root.join("sub/hard")).unwrap();
    common::fix_mtimes(&root, 1_700_000_000_000_000_000 + seed as i64);
}

/// A sealed (version 2, indexed) archive of `base/name`.
fn sealed(base: &Path, name: &str) -> Vec<u8> {
    let bytes = common::archive_tree(base, &[name], 1024, 2);
    seal_bytes(&bytes)
}

fn seal_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    index::seal(&mut f).unwrap();
    fs::read(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&f)
    ))
    .unwrap()
}

fn two_trees() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), "one", 1);
    tree(dir.path(), "two", 2);
    let a = sealed(dir.path(), "one");
    let b = sealed(dir.path(), "two");
    (dir, a, b)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn paths(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    lza::archive::extract::list_archive(bytes, Limits::default(), &mut |e| {
        out.push(e.path.clone())
    })
    .unwrap();
    out
}

/// Read every record (no decoding, no model needed).
fn scan(bytes: &[u8]) -> lza::Result<u64> {
    let mut r = lza::container::reader::ArchiveReader::new(bytes, Limits::default())?;
    let mut n = 0;
    while r.next_event()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn files(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    decode(bytes)
        .unwrap()
        .items
        .into_iter()
        .map(|(e, d)| (e.path, d))
        .collect()
}

fn indexed_paths(bytes: &[u8]) -> lza::Result<Vec<String>> {
    let idx = ArchiveIndex::open(bytes)?.expect("an index");
    Ok(idx
        .entries(bytes, Limits::default())?
        .into_iter()
        .map(|e| e.entry.path)
        .collect())
}

fn index_kind(bytes: &[u8]) -> (u64, CorruptKind) {
    let r = ArchiveIndex::open(bytes).and_then(|i| {
        i.expect("an index").entries(bytes, Limits::default())?;
        Ok(())
    });
    corrupt_kind(r)
}

/// Set the header's model hash (20..36) and refresh its CRC.
fn with_model(mut b: Vec<u8>, at: usize, hash: [u8; 16]) -> Vec<u8> {
    b[at + 20..at + 36].copy_from_slice(&hash);
    let crc = crc32fast::hash(&b[at..at + 36]);
    b[at + 36..at + 40].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Refresh a member's index footer (rows checksum and CRC) after its rows
/// were edited: the index is then self-consistent and only the records it
/// points to can show it wrong.
fn refresh_footer(b: &mut [u8]) {
    let n = b.len();
    let foot = n - FOOTER_LEN;
    let entries = u64::from_le_bytes(b[foot..foot + 8].try_into().unwrap());
    let chunks = u64::from_le_bytes(b[foot + 8..foot + 16].try_into().unwrap());
    let start = n - member::index_len(entries, chunks).unwrap() as usize;
    let sum = xxhash_rust::xxh3::xxh3_64(&b[start..foot]);
    b[foot + 24..foot + 32].copy_from_slice(&sum.to_le_bytes());
    let crc = crc32fast::hash(&b[foot..foot + 36]);
    b[foot + 36..foot + 40].copy_from_slice(&crc.to_le_bytes());
}

/// Offset of the index record of a single-member sealed archive.
fn index_start(b: &[u8]) -> usize {
    let foot = b.len() - FOOTER_LEN;
    let entries = u64::from_le_bytes(b[foot..foot + 8].try_into().unwrap());
    let chunks = u64::from_le_bytes(b[foot + 8..foot + 16].try_into().unwrap());
    b.len() - member::index_len(entries, chunks).unwrap() as usize
}

// ---- valid concatenations -------------------------------------------------------

#[test]
fn sealed_archive_reads_as_before_and_through_its_index() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), "one", 1);
    let plain = common::archive_tree(dir.path(), &["one"], 1024, 2);
    let sealed = seal_bytes(&plain);
    assert_eq!(
        member::header_version(sealed[..HEADER_LEN].try_into().unwrap()),
        2
    );
    assert_eq!(sealed[HEADER_LEN..plain.len()], plain[HEADER_LEN..]);
    assert_eq!(paths(&sealed), paths(&plain));
    assert_eq!(indexed_paths(&sealed).unwrap(), paths(&plain));
    assert_eq!(files(&sealed), files(&plain));
    // No index on the unsealed one: the seeking side says so.
    assert!(ArchiveIndex::open(&plain[..]).unwrap().is_none());
}

#[test]
fn cat_of_two_members_extracts_as_the_union() {
    let (dir, a, b) = two_trees();
    let c = cat(&[&a, &b]);
    let mut want = paths(&a);
    want.extend(paths(&b));
    assert_eq!(paths(&c), want);
    assert_eq!(indexed_paths(&c).unwrap(), want);
    let out = dir.path().join("out");
    extract_to(&c, &out, false).unwrap();
    assert_same_tree(&dir.path().join("one"), &out.join("one"));
    assert_same_tree(&dir.path().join("two"), &out.join("two"));
    // The end event sums the members.
    let mut r = lza::container::reader::ArchiveReader::new(&c[..], Limits::default()).unwrap();
    let mut end = None;
    while let Some(ev) = r.next_event().unwrap() {
        if let lza::container::reader::Event::End(e) = ev {
            end = Some(e);
        }
    }
    let end = end.unwrap();
    assert_eq!(end.entries, want.len() as u64);
    assert_eq!(
        end.raw_bytes,
        files(&c).values().map(|d| d.len() as u64).sum::<u64>()
    );
}

#[test]
fn members_without_index_and_empty_members_concatenate() {
    let (dir, a, b) = two_trees();
    let bare_b = {
        // `b` without its index: version 2, nothing after the end record.
        let n = index_start(&b);
        b[..n].to_vec()
    };
    let empty = seal_bytes(&common::archive_tree(dir.path(), &[], 1024, 1));
    let c = cat(&[&a, &empty, &empty, &bare_b]);
    let mut want = paths(&a);
    want.extend(paths(&b));
    assert_eq!(paths(&c), want);
    // The last member has no index: the seeking side falls back.
    assert!(ArchiveIndex::open(&c[..]).unwrap().is_none());
    // A member without an index before an indexed one: no usable index,
    // the file reads front to back.
    let c = cat(&[&bare_b, &a]);
    assert!(ArchiveIndex::open(&c[..]).unwrap().is_none());
    assert_eq!(paths(&c).len(), want.len());
}

#[test]
fn version_1_member_may_only_come_last() {
    let (dir, a, _) = two_trees();
    let v1 = common::archive_tree(dir.path(), &["two"], 1024, 1);
    let ok = cat(&[&a, &v1]);
    assert_eq!(paths(&ok).len(), paths(&a).len() + paths(&v1).len());
    let bad = cat(&[&v1, &a]);
    assert_eq!(
        corrupt_kind(decode(&bad)),
        ((v1.len() - END_LEN) as u64, CorruptKind::TrailingData)
    );
}

#[test]
fn ranges_through_the_index_rebuild_the_tree() {
    let (dir, a, b) = two_trees();
    let c = cat(&[&a, &b]);
    let idx = ArchiveIndex::open(&c[..]).unwrap().unwrap();
    assert_eq!(idx.members.len(), 2);
    let entries = idx.entries(&c[..], Limits::default()).unwrap();
    for parts in [1, 2, 3, 7, 100] {
        let plan = ArchiveIndex::plan(&entries, parts);
        assert!(plan.len() <= parts && !plan.is_empty());
        assert_eq!(plan.first().unwrap().start, 0);
        assert_eq!(plan.last().unwrap().end, entries.len());
        assert!(plan.windows(2).all(|w| w[0].end == w[1].start));
        // A hard link is in the range of its target.
        for r in &plan {
            for e in &entries[r.clone()] {
                if e.entry.kind == EntryKind::Hardlink {
                    assert!(
                        entries[r.clone()]
                            .iter()
                            .any(|t| t.entry.path == e.entry.link)
                    );
                }
            }
        }
        let out = dir.path().join(format!("out{parts}"));
        let opts = lza::archive::extract::ReadOptions::default();
        for r in plan.iter().rev() {
            let mut w = lza::archive::extract::DestWriter::new(&out, false);
            let rr = idx.range_reader(&c[..], &entries, r.clone(), None);
            lza::archive::extract::read_archive(rr, &opts, &mut w, &mut |_| {}, &mut |_| {})
                .unwrap();
        }
        let mut w = lza::archive::extract::DestWriter::new(&out, true);
        let rr = idx.range_reader(
            &c[..],
            &entries,
            0..entries.len(),
            Some(EntryKind::Directory),
        );
        lza::archive::extract::read_archive(rr, &opts, &mut w, &mut |_| {}, &mut |_| {}).unwrap();
        assert_same_tree(&dir.path().join("one"), &out.join("one"));
        assert_same_tree(&dir.path().join("two"), &out.join("two"));
    }
}

// ---- bad concatenations ---------------------------------------------------------

#[test]
fn garbage_after_a_member_is_rejected() {
    let (_dir, a, b) = two_trees();
    for tail in [
        &[0u8][..],
        b"\x89LZA",
        b"\x89LZB\r\n\x1a\n",
        &[0xFE],
        &[0xFF; 60],
    ] {
        let c = cat(&[&a, tail]);
        let (off, kind) = corrupt_kind(decode(&c));
        assert!(
            matches!(kind, CorruptKind::TrailingData | CorruptKind::Truncated(_)),
            "{tail:?}: {kind:?}"
        );
        assert!(off >= a.len() as u64 - 1, "{tail:?}: {off}");
    }
    // A header cut short.
    let c = cat(&[&a, &b[..20]]);
    assert_eq!(
        corrupt_kind(decode(&c)).1,
        CorruptKind::Truncated("a member header")
    );
    // A second index after the first.
    let i = index_start(&a);
    let c = cat(&[&a, &a[i..]]);
    assert_eq!(
        corrupt_kind(decode(&c)),
        (a.len() as u64, CorruptKind::TrailingData)
    );
}

#[test]
fn duplicate_path_across_members_is_rejected() {
    let (_dir, a, _) = two_trees();
    let c = cat(&[&a, &a]);
    let (off, kind) = corrupt_kind(decode(&c));
    assert_eq!(kind, CorruptKind::DuplicatePath("one".into()));
    assert_eq!(off, (a.len() + HEADER_LEN) as u64);
    assert_eq!(index_kind(&c).1, CorruptKind::DuplicatePath("one".into()));
}

#[test]
fn later_member_with_another_model_or_larger_chunks_is_rejected() {
    let (_dir, a, b) = two_trees();
    // First member names no model, the second one does.
    let b2 = with_model(b.clone(), 0, [7; 16]);
    let c = cat(&[&a, &b2]);
    let (off, kind) = corrupt_kind(scan(&c));
    assert_eq!(off, a.len() as u64);
    assert!(matches!(kind, CorruptKind::BadMember(_)), "{kind:?}");
    assert!(matches!(index_kind(&c).1, CorruptKind::BadMember(_)));
    // Both name a model, different ones.
    let a2 = with_model(a.clone(), 0, [8; 16]);
    assert!(matches!(
        corrupt_kind(scan(&cat(&[&a2, &b2]))).1,
        CorruptKind::BadMember(_)
    ));
    // The same model in both, or none in the later one: accepted as far as
    // the structure goes (the model itself is found or not by the caller).
    scan(&cat(&[&a2, &b])).unwrap();
    scan(&cat(&[&a2, &with_model(b.clone(), 0, [8; 16])])).unwrap();
    // A larger max_chunk later.
    let mut big = b.clone();
    big[12..16].copy_from_slice(&4096u32.to_le_bytes());
    let crc = crc32fast::hash(&big[..36]);
    big[36..40].copy_from_slice(&crc.to_le_bytes());
    let (off, kind) = corrupt_kind(decode(&cat(&[&a, &big])));
    assert_eq!(off, a.len() as u64);
    assert!(matches!(kind, CorruptKind::BadMember(_)), "{kind:?}");
}

// ---- bad indexes ----------------------------------------------------------------

#[test]
fn index_rows_that_disagree_are_rejected_both_ways() {
    let (_dir, a, _) = two_trees();
    let i = index_start(&a);
    // Second entry row's offset moved by one, footer refreshed: the index
    // is self-consistent but wrong.
    let mut b = a.clone();
    b[i + 8 + 16] ^= 1;
    refresh_footer(&mut b);
    let (off, kind) = corrupt_kind(decode(&b));
    assert_eq!(off, i as u64);
    assert!(matches!(kind, CorruptKind::BadIndex(_)), "{kind:?}");
    assert!(matches!(
        index_kind(&b).1,
        CorruptKind::BadIndex(_) | CorruptKind::ChecksumMismatch(_)
    ));
    // A chunk row moved.
    let mut b = a.clone();
    let foot = b.len() - FOOTER_LEN;
    b[foot - 8] ^= 2;
    refresh_footer(&mut b);
    assert!(matches!(
        corrupt_kind(decode(&b)).1,
        CorruptKind::BadIndex(_)
    ));
    assert!(matches!(index_kind(&b).1, CorruptKind::BadIndex(_)));
    // The same change without the footer refreshed: the rows checksum.
    let mut b = a.clone();
    b[foot - 8] ^= 2;
    assert!(matches!(
        corrupt_kind(decode(&b)).1,
        CorruptKind::BadIndex(_)
    ));
    assert_eq!(
        corrupt_kind(ArchiveIndex::open(&b[..])),
        (foot as u64, CorruptKind::ChecksumMismatch("index rows"))
    );
}

/// A named change to an archive's bytes.
type Edit<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

#[test]
fn bad_footers_are_rejected() {
    let (_dir, a, _) = two_trees();
    let foot = a.len() - FOOTER_LEN;
    let cases: Vec<(&str, Edit<'_>)> = vec![
        ("crc", Box::new(|b| b[foot + 36] ^= 1)),
        (
            "member_len too large",
            Box::new(|b| {
                b[foot + 16..foot + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
                refresh_footer(b)
            }),
        ),
        (
            "member_len one short",
            Box::new(|b| {
                let m = u64::from_le_bytes(b[foot + 16..foot + 24].try_into().unwrap()) - 1;
                b[foot + 16..foot + 24].copy_from_slice(&m.to_le_bytes());
                refresh_footer(b)
            }),
        ),
        (
            "entry count",
            Box::new(|b| {
                b[foot] += 1;
                refresh_footer(b)
            }),
        ),
        (
            "huge chunk count",
            Box::new(|b| {
                b[foot + 8..foot + 16].copy_from_slice(&u64::MAX.to_le_bytes());
                let crc = crc32fast::hash(&b[foot..foot + 36]);
                b[foot + 36..foot + 40].copy_from_slice(&crc.to_le_bytes());
            }),
        ),
        (
            "reserved",
            Box::new(|b| {
                b[foot + 32] = 1;
                let crc = crc32fast::hash(&b[foot..foot + 36]);
                b[foot + 36..foot + 40].copy_from_slice(&crc.to_le_bytes());
            }),
        ),
        (
            "truncated",
            Box::new(|b| {
                b.pop();
            }),
        ),
    ];
    for (what, edit) in cases {
        let mut b = a.clone();
        edit(&mut b);
        assert!(decode(&b).is_err(), "{what}: accepted front to back");
        let seek = ArchiveIndex::open(&b[..])
            .and_then(|i| i.map(|i| i.entries(&b[..], Limits::default())).transpose());
        match (what, seek) {
            // Without its last byte the magic is gone: no index, and the
            // front-to-back read (above) rejects the file.
            ("truncated", Ok(None)) => {}
            (_, Err(Error::Corrupt { .. })) => {}
            (_, other) => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn index_pointing_into_data_is_rejected_before_use() {
    let (_dir, a, _) = two_trees();
    let i = index_start(&a);
    let idx = ArchiveIndex::open(&a[..]).unwrap().unwrap();
    // Point the last entry row at its first chunk frame, keeping order.
    let entries = idx.members[0].entry_rows.len();
    let chunks = &idx.members[0].chunk_rows;
    let last = idx.members[0].entry_rows[entries - 1];
    let target = chunks.iter().find(|&&c| c > last.0);
    if let Some(&c) = target {
        let mut b = a.clone();
        let row = i + 8 + 16 * (entries - 1);
        b[row..row + 8].copy_from_slice(&c.to_le_bytes());
        refresh_footer(&mut b);
        assert!(matches!(index_kind(&b).1, CorruptKind::BadIndex(_)));
    }
}

// ---- goldens --------------------------------------------------------------------

fn golden_path(name: &str) -> PathBuf {
    common::repo("testdata/golden").join(name)
}

/// `concat.lza`: two sealed members (trees "one" and "two"), then
/// `bad-index.lza`: the first member with an entry row moved, and
/// `solid-index.lza`: a sealed member with solid blocks of 2 KiB.
fn make_goldens() -> Vec<(&'static str, Vec<u8>)> {
    let (dir, a, b) = two_trees();
    let mut bad = a.clone();
    let i = index_start(&bad);
    bad[i + 8 + 16] ^= 1;
    refresh_footer(&mut bad);
    let solid = solid_sealed(dir.path(), "s", 2048);
    vec![
        ("concat.lza", cat(&[&a, &b])),
        ("bad-index.lza", bad),
        ("solid-index.lza", solid),
    ]
}

#[test]
#[ignore]
fn regenerate_concat_goldens() {
    for (name, bytes) in make_goldens() {
        if std::env::var_os("LZA_REGEN_GOLDEN").is_some() {
            fs::write(golden_path(name), &bytes).unwrap();
        } else {
            assert!(
                fs::read(golden_path(name)).unwrap() == bytes,
                "{name} differs"
            );
        }
    }
}

#[test]
fn concat_golden_lists_and_extracts() {
    let c = fs::read(golden_path("concat.lza")).unwrap();
    let listed = paths(&c);
    assert_eq!(
        listed,
        [
            "one",
            "one/a.txt",
            "one/emptydir",
            "one/link",
            "one/sub",
            "one/sub/b.bin",
            "one/sub/empty",
            "one/sub/hard",
            "two",
            "two/a.txt",
            "two/emptydir",
            "two/link",
            "two/sub",
            "two/sub/b.bin",
            "two/sub/empty",
            "two/sub/hard",
        ]
    );
    assert_eq!(indexed_paths(&c).unwrap(), listed);
    let files = files(&c);
    assert_eq!(files["one/a.txt"], common::text(3000, 1));
    assert_eq!(files["two/sub/b.bin"], common::Rng::new(2).bytes(700));
    let dir = tempfile::tempdir().unwrap();
    extract_to(&c, dir.path(), false).unwrap();
    assert_eq!(
        fs::read_link(dir.path().join("two/link")).unwrap(),
        Path::new("a.txt")
    );
}

#[test]
fn bad_index_golden_is_rejected() {
    let b = fs::read(golden_path("bad-index.lza")).unwrap();
    let i = index_start(&b);
    let (off, kind) = corrupt_kind(decode(&b));
    assert_eq!(off, i as u64);
    assert_eq!(
        kind,
        CorruptKind::BadIndex("entry rows differ from the member's entry records".into())
    );
    assert!(matches!(index_kind(&b).1, CorruptKind::BadIndex(_)));
}

// ---- indexes over solid blocks ----------------------------------------------------

/// A tree of small files that go into solid blocks of `block` bytes (at
/// most 4 KiB, the chunk size, with zstd), a directory, a
/// symbolic link, a file too large for a block and a hard link to a file
/// of a block, sealed.
fn solid_sealed(base: &Path, name: &str, block: usize) -> Vec<u8> {
    let root = base.join(name);
    for i in 0..14u64 {
        let data = if i % 3 == 0 {
            common::Rng::new(i).bytes(200 + 50 * i as usize)
        } else {
            common::text(300 + 120 * i as usize, i)
        };
        write_file(&root.join(format!("s/f{i:02}")), &data, 0o644);
    }
    write_file(&root.join("big.txt"), &common::text(9000, 99), 0o600);
    fs::create_dir_all(root.join("emptydir")).unwrap();
    std::os::unix::fs::symlink("s/f01", root.join("link")).unwrap();
    fs::hard_link(root.join("s/f04"), root.join("hard")).unwrap();
    common::fix_mtimes(&root, 1_700_000_000_000_000_000);
    let mut warnings = lza::archive::create::Warnings::default();
    let sources = lza::archive::create::collect_sources(
        base,
        &[PathBuf::from(name)],
        &lza::archive::create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    let opts = lza::archive::create::CreateOptions {
        threads: 2,
        chunk_size: 4096,
        method: lza::archive::create::Method::Zstd,
        solid: lza::archive::create::Solid {
            block_size: block,
            sort: false,
        },
        ..Default::default()
    };
    let bytes = lza::archive::create::write_archive(
        Vec::new(),
        &sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut warnings,
    )
    .unwrap();
    seal_bytes(&bytes)
}

/// Extract `range` of an indexed archive (all but directories) into `dest`,
/// through [`lza::archive::select::RangeFilter`] where the range cuts a block. Returns
/// the entries written and whether a filter was needed.
fn extract_range(
    bytes: &[u8],
    range: std::ops::Range<usize>,
    only: Option<EntryKind>,
    dest: &Path,
) -> (u64, bool) {
    let idx = ArchiveIndex::open(bytes).unwrap().unwrap();
    let entries = idx.entries(bytes, Limits::default()).unwrap();
    let rr = idx.range_reader(bytes, &entries, range, only);
    let wanted = rr.wanted();
    let filtered = wanted.is_some();
    let mut w = lza::archive::extract::DestWriter::new(dest, true);
    let mut n = 0u64;
    let opts = lza::archive::extract::ReadOptions::default();
    match wanted {
        Some(wanted) => {
            let mut f = lza::archive::select::RangeFilter::new(&mut w, wanted);
            lza::archive::extract::read_archive(rr, &opts, &mut f, &mut |_| {}, &mut |_| {})
                .unwrap();
            n = f.passed();
        }
        None => {
            lza::archive::extract::read_archive(rr, &opts, &mut w, &mut |_| n += 1, &mut |_| {})
                .unwrap()
        }
    }
    (n, filtered)
}

/// The first block of at least 3 files: (row of its first file, files).
fn some_block(entries: &[index::IndexedEntry]) -> (usize, usize) {
    let i = entries
        .iter()
        .position(|e| e.block.is_some_and(|b| b.file == 0 && b.files >= 3))
        .expect("a block of 3 files or more");
    (i, entries[i].block.unwrap().files as usize)
}

#[test]
fn index_covers_solid_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let a = solid_sealed(dir.path(), "t", 4096);
    // Front to back, the index is checked against the records.
    scan(&a).unwrap();
    let listed = paths(&a);
    assert_eq!(indexed_paths(&a).unwrap(), listed);
    let idx = ArchiveIndex::open(&a[..]).unwrap().unwrap();
    let entries = idx.entries(&a[..], Limits::default()).unwrap();
    let blocks = entries
        .iter()
        .filter(|e| e.block.is_some_and(|b| b.file == 0))
        .count();
    assert!(blocks >= 2, "{blocks} blocks");
    // Rows of a block's files share the block record's offset; others
    // strictly increase.
    for w in entries.windows(2) {
        let one_block = w[1].block.is_some_and(|b| b.file > 0);
        assert_eq!(w[0].offset == w[1].offset, one_block);
        assert!(w[0].offset <= w[1].offset);
    }
    let want = files(&a);

    // One file from the middle of a block.
    let (b0, n) = some_block(&entries);
    let mid = b0 + 1;
    let out = tempfile::tempdir().unwrap();
    assert_eq!(extract_range(&a, mid..mid + 1, None, out.path()), (1, true));
    let path = &entries[mid].entry.path;
    assert_eq!(&fs::read(out.path().join(path)).unwrap(), &want[path]);
    let mut written = Vec::new();
    common::walk(out.path(), &mut written);
    let written_files: Vec<_> = written.iter().filter(|p| p.is_file()).collect();
    assert_eq!(written_files.len(), 1, "{written:?}");

    // A range split inside a block, extracted in two parts, then the
    // directories: the same tree as a whole extraction.
    let cut = b0 + n / 2;
    let parts = tempfile::tempdir().unwrap();
    let (n1, f1) = extract_range(&a, 0..cut, None, parts.path());
    let (n2, f2) = extract_range(&a, cut..entries.len(), None, parts.path());
    assert!(f1 && f2);
    extract_range(
        &a,
        0..entries.len(),
        Some(EntryKind::Directory),
        parts.path(),
    );
    let dirs = entries
        .iter()
        .filter(|e| e.entry.kind == EntryKind::Directory)
        .count() as u64;
    assert_eq!(n1 + n2 + dirs, entries.len() as u64);
    assert_same_tree(&dir.path().join("t"), &parts.path().join("t"));

    // The planner never cuts inside a block.
    for k in 1..=8 {
        let plan = ArchiveIndex::plan(&entries, k);
        assert_eq!(plan.last().unwrap().end, entries.len());
        for r in &plan {
            assert!(
                entries[r.start].block.is_none_or(|b| b.file == 0),
                "{k} parts: cut at {}",
                r.start
            );
            let rr = idx.range_reader(&a[..], &entries, r.clone(), None);
            assert!(rr.wanted().is_none());
        }
    }
}

/// Rewrite entry row `row` of a single sealed member to `(off, first)`.
fn set_row(b: &mut [u8], row: usize, off: u64, first: u64) {
    let at = index_start(b) + 8 + 16 * row;
    b[at..at + 8].copy_from_slice(&off.to_le_bytes());
    b[at + 8..at + 16].copy_from_slice(&first.to_le_bytes());
    refresh_footer(b);
}

#[test]
fn bad_rows_of_block_files_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let a = solid_sealed(dir.path(), "t", 4096);
    let idx = ArchiveIndex::open(&a[..]).unwrap().unwrap();
    let m = &idx.members[0];
    let entries = idx.entries(&a[..], Limits::default()).unwrap();
    let (b0, n) = some_block(&entries);
    let (boff, bfc) = m.entry_rows[b0];
    let after = m.entry_rows.get(b0 + n).copied();
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // The last row of the block swapped with the row after it: the
    // block's rows are not consecutive (offsets decrease).
    if let Some((o, fc)) = after {
        let mut b = a.clone();
        set_row(&mut b, b0 + n - 1, o, fc);
        set_row(&mut b, b0 + n, boff, bfc);
        cases.push(("not consecutive", b, "out of order"));
        // The row after the block at the block: one row too many.
        let mut b = a.clone();
        set_row(&mut b, b0 + n, boff, bfc);
        cases.push(("more rows", b, "more rows at the block record"));
        // The block's last row moved on to the next record: one too few.
        let mut b = a.clone();
        set_row(&mut b, b0 + n - 1, o, fc);
        cases.push(("fewer rows", b, "fewer consecutive rows"));
    }
    // The block's rows but the first pointing at its first chunk frame:
    // in order, but the block record has one row for its files.
    let frame = m.chunk_rows[bfc as usize];
    let mut b = a.clone();
    for r in b0 + 1..b0 + n {
        set_row(&mut b, r, frame, bfc);
    }
    cases.push(("into the frames", b, "fewer consecutive rows"));
    // Every row of the block at its first frame: the record before no
    // longer reaches the next row.
    let mut b = a.clone();
    for r in b0..b0 + n {
        set_row(&mut b, r, frame, bfc);
    }
    cases.push(("at a frame", b, "do not reach the next indexed record"));
    assert!(cases.len() >= 4);
    for (what, b, says) in cases {
        let (_, kind) = corrupt_kind(decode(&b));
        assert_eq!(
            kind,
            CorruptKind::BadIndex("entry rows differ from the member's entry records".into()),
            "{what}"
        );
        match index_kind(&b).1 {
            CorruptKind::BadIndex(m) => assert!(m.contains(says), "{what}: {m}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn solid_members_concatenate() {
    let dir = tempfile::tempdir().unwrap();
    let a = solid_sealed(dir.path(), "one", 4096);
    let b = solid_sealed(dir.path(), "two", 2048);
    let c = cat(&[&a, &b]);
    let listed = paths(&c);
    assert_eq!(indexed_paths(&c).unwrap(), listed);
    let mut want = files(&a);
    want.extend(files(&b));
    assert_eq!(files(&c), want);
}

#[test]
fn solid_index_golden_lists_and_extracts() {
    let g = fs::read(golden_path("solid-index.lza")).unwrap();
    let listed = paths(&g);
    assert_eq!(indexed_paths(&g).unwrap(), listed);
    let idx = ArchiveIndex::open(&g[..]).unwrap().unwrap();
    let entries = idx.entries(&g[..], Limits::default()).unwrap();
    let m = &idx.members[0];
    // Rows of block files: equal offsets at a block record (tag 0x03).
    let in_blocks = entries.iter().filter(|e| e.block.is_some()).count();
    assert!(in_blocks >= 8, "{in_blocks}");
    for e in entries.iter().filter(|e| e.block.is_some()) {
        assert_eq!(g[e.offset as usize], lza::format::TAG_BLOCK);
    }
    assert_eq!(m.entry_rows.len(), entries.len());
    let files = files(&g);
    assert_eq!(files["s/s/f05"], common::text(300 + 120 * 5, 5));
    assert_eq!(files["s/s/f03"], common::Rng::new(3).bytes(350));
    // "s/hard" comes first in the walk: "s/s/f04" is the link to it, a
    // file of a block.
    let link = entries.iter().find(|e| e.entry.path == "s/s/f04").unwrap();
    assert_eq!(link.entry.kind, EntryKind::Hardlink);
    let target = entries
        .iter()
        .find(|e| e.entry.path == link.entry.link)
        .unwrap();
    assert!(target.block.is_some());
}

/// An archive of an empty directory, written to a file, is too short for
/// the index's search from the end to find a footer: it is still sealed,
/// listed and extracted (the search means "no index", never "corrupt").
#[test]
fn empty_tree_to_a_file_seals_lists_and_extracts() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let a = tmp.path().join("a.lza");
    let (ap, base) = (a.to_str().unwrap(), tmp.path().join("empty"));
    common::ok(common::lza(
        &["c", "-f", ap, "-C", base.to_str().unwrap(), "."],
        &[],
    ));
    common::ok(common::lza(&["t", "-f", ap], &[]));
    let out = tmp.path().join("out");
    common::ok(common::lza(
        &["x", "-f", ap, "-C", out.to_str().unwrap()],
        &[],
    ));
}
