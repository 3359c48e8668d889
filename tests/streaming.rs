//! The reader is a pure stream reader: short reads, one-byte reads and
//! interrupted reads give the same events and data as one slice.

mod common;

use std::io::{self, Read};
use std::path::Path;

use common::{Collect, Rng};
use lza::archive::extract::{Discard, ReadOptions, read_archive};
use lza::container::reader::{ArchiveReader, Event, Limits};

/// Hands out the data in random-sized pieces (1..=max bytes), sometimes
/// failing with `Interrupted` first.
struct ShortReader<'a> {
    data: &'a [u8],
    pos: usize,
    rng: Rng,
    max: usize,
    interrupts: bool,
    reads: usize,
}

impl<'a> ShortReader<'a> {
    fn new(data: &'a [u8], seed: u64, max: usize, interrupts: bool) -> Self {
        ShortReader {
            data,
            pos: 0,
            rng: Rng::new(seed),
            max,
            interrupts,
            reads: 0,
        }
    }
}

impl Read for ShortReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.interrupts && self.rng.next_u64().is_multiple_of(5) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        self.reads += 1;
        let left = self.data.len() - self.pos;
        if buf.is_empty() || left == 0 {
            return Ok(0);
        }
        let n = self.rng.range(1, self.max).min(left).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Fails with a hard error once `fail_at` bytes have been handed out.
struct FailingReader<'a> {
    data: &'a [u8],
    pos: usize,
    fail_at: usize,
}

impl Read for FailingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.fail_at {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "link down"));
        }
        let n = buf.len().min(self.fail_at - self.pos).min(7);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A tree with text (zstd chunks), noise (stored chunks), an empty file, a
/// directory, a symlink and a hard link; archived with 1000-byte chunks.
fn sample_archive() -> (Vec<u8>, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("t");
    let mut rng = Rng::new(42);
    common::write_file(&root.join("text.txt"), &common::text(12_345, 7), 0o644);
    common::write_file(&root.join("noise.bin"), &rng.bytes(5_432), 0o600);
    common::write_file(&root.join("sub/empty"), b"", 0o644);
    common::write_file(&root.join("sub/small"), b"small", 0o755);
    std::fs::create_dir(root.join("emptydir")).unwrap();
    std::os::unix::fs::symlink("sub/small", root.join("link")).unwrap();
    std::fs::hard_link(root.join("text.txt"), root.join("sub/hard.txt")).unwrap();
    common::fix_mtimes(&root, 1_650_000_000_000_000_000);
    let bytes = common::archive_tree(tmp.path(), &["t"], 1000, 2);
    (bytes, tmp)
}

/// Every event as text (events are not `PartialEq`; their `Debug` is exact).
fn events<R: Read>(input: R) -> Vec<String> {
    let mut r = ArchiveReader::new(input, Limits::default()).unwrap();
    let mut out = vec![format!("{:?}", r.header())];
    while let Some(ev) = r.next_event().unwrap() {
        out.push(format!("{ev:?}"));
        if let Event::End(_) = ev {
            assert!(r.next_event().unwrap().is_none(), "events after the end");
        }
    }
    out.push(format!("offset {}", r.offset()));
    out
}

fn collect<R: Read>(input: R, threads: usize) -> Collect {
    let mut c = Collect::default();
    let opts = ReadOptions {
        threads,
        ..Default::default()
    };
    let mut progress = 0;
    read_archive(input, &opts, &mut c, &mut |_| {}, &mut |off| {
        assert!(off >= progress, "progress went backwards");
        progress = off;
    })
    .unwrap();
    assert!(c.finished);
    c
}

#[test]
fn sample_archive_has_both_codecs_and_many_chunks() {
    let (bytes, _tmp) = sample_archive();
    let ev = events(&bytes[..]);
    let zstd = ev.iter().filter(|e| e.contains("codec: Zstd")).count();
    let stored = ev.iter().filter(|e| e.contains("codec: Stored")).count();
    assert!(zstd >= 10 && stored >= 5, "zstd {zstd}, stored {stored}");
    assert!(ev.iter().any(|e| e.contains("kind: Hardlink")));
    assert!(ev.iter().any(|e| e.contains("kind: Symlink")));
}

#[test]
fn short_reads_give_the_same_events() {
    let (bytes, _tmp) = sample_archive();
    let plain = events(&bytes[..]);
    for seed in 1..=20u64 {
        let max = [1, 2, 3, 7, 64, 1000, 4096][seed as usize % 7];
        let mut r = ShortReader::new(&bytes, seed, max, seed % 2 == 0);
        assert_eq!(events(&mut r), plain, "seed {seed}, max {max}");
        assert!(
            r.reads > bytes.len() / max / 2,
            "the reader was not used in short reads"
        );
    }
}

#[test]
fn short_reads_give_the_same_data() {
    let (bytes, tmp) = sample_archive();
    let plain = collect(&bytes[..], 1);
    // The data matches the files on disk.
    let mut files = 0;
    for (entry, data) in &plain.items {
        if entry.kind == lza::format::EntryKind::File {
            let on_disk = std::fs::read(tmp.path().join(&entry.path)).unwrap();
            assert!(on_disk == *data, "{}: data differs", entry.path);
            assert_eq!(entry.size, data.len() as u64);
            files += 1;
        } else {
            assert!(data.is_empty());
        }
    }
    assert_eq!(files, 4);
    for seed in 1..=12u64 {
        let max = [1, 5, 333, 65536][seed as usize % 4];
        let threads = 1 + seed as usize % 3;
        let got = collect(ShortReader::new(&bytes, seed, max, seed % 3 == 0), threads);
        assert!(got == plain, "seed {seed}, max {max}, threads {threads}");
    }
}

#[test]
fn one_byte_reads_through_a_bufreader() {
    let (bytes, _tmp) = sample_archive();
    let plain = collect(&bytes[..], 1);
    let r = io::BufReader::with_capacity(3, ShortReader::new(&bytes, 9, 1, true));
    assert!(collect(r, 2) == plain);
}

#[test]
fn short_reads_detect_trailing_data_and_truncation() {
    let (mut bytes, _tmp) = sample_archive();
    let n = bytes.len();
    for cut in [n - 1, n - 49, n / 2, 41, 40, 39, 1, 0] {
        let r = ShortReader::new(&bytes[..cut], cut as u64, 3, true);
        let e = read_archive(
            r,
            &ReadOptions::default(),
            &mut Discard,
            &mut |_| {},
            &mut |_| {},
        );
        assert!(
            matches!(
                e,
                Err(lza::Error::Corrupt {
                    kind: lza::CorruptKind::Truncated(_),
                    ..
                })
            ),
            "cut at {cut}: {e:?}"
        );
    }
    bytes.push(b'\n');
    let r = ShortReader::new(&bytes, 5, 2, true);
    let e = read_archive(
        r,
        &ReadOptions::default(),
        &mut Discard,
        &mut |_| {},
        &mut |_| {},
    );
    assert!(
        matches!(
            e,
            Err(lza::Error::Corrupt {
                kind: lza::CorruptKind::TrailingData,
                ..
            })
        ),
        "{e:?}"
    );
}

fn check_read_error_offsets(bytes: &[u8], fail_ats: &[usize]) {
    for &fail_at in fail_ats {
        let r = FailingReader {
            data: bytes,
            pos: 0,
            fail_at,
        };
        match read_archive(
            r,
            &ReadOptions::default(),
            &mut Discard,
            &mut |_| {},
            &mut |_| {},
        ) {
            Err(lza::Error::ArchiveIo {
                action,
                offset,
                source,
            }) => {
                assert_eq!(action, "read");
                assert_eq!(offset, fail_at as u64, "fail at {fail_at}");
                assert_eq!(source.kind(), io::ErrorKind::ConnectionReset);
            }
            r => panic!("fail at {fail_at}: {r:?}"),
        }
    }
}

#[test]
fn read_errors_name_the_offset() {
    let (bytes, _tmp) = sample_archive();
    let n = bytes.len();
    // Inside the end record (the last 45 bytes): see the next test.
    check_read_error_offsets(
        &bytes,
        &[0, 10, 40, 41, 1000, n / 2, n - 50, n - 46, n - 45, n],
    );
}

#[test]
fn errors_inside_the_end_record_name_the_offset() {
    let (bytes, _tmp) = sample_archive();
    let n = bytes.len();
    let truncated = common::decode(&bytes[..n - 1]).map(|_| ());
    assert!(
        matches!(
            truncated,
            Err(lza::Error::Corrupt { offset, kind: lza::CorruptKind::Truncated(_), .. }) if offset == n as u64 - 1
        ),
        "truncated at {}: {truncated:?}",
        n - 1
    );
    check_read_error_offsets(&bytes, &[n - 44, n - 20, n - 1]);
}

#[test]
fn written_archive_streams_through_a_pipe() {
    // write_archive into one end of an OS pipe while read_archive reads the
    // other: nothing needs seeking or the whole archive in memory.
    let (bytes, tmp) = sample_archive();
    let (rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
    let base = tmp.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        let mut warnings = lza::archive::create::Warnings::default();
        let sources = lza::archive::create::collect_sources(
            &base,
            &[Path::new("t").to_path_buf()],
            &lza::archive::create::exclude_set(&[]).unwrap(),
            &mut warnings,
        )
        .unwrap();
        let opts = lza::archive::create::CreateOptions {
            threads: 3,
            level: 6,
            chunk_size: 1000,
            method: lza::archive::create::Method::Zstd,
            lm: None,
            ..Default::default()
        };
        lza::archive::create::write_archive(
            tx,
            &sources,
            &opts,
            &mut |_| {},
            &mut |_| {},
            &mut Default::default(),
        )
        .unwrap();
    });
    let got = collect(rx, 2);
    writer.join().unwrap();
    assert!(got == collect(&bytes[..], 1));
}
