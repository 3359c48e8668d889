//! The context-mixing decoders share one memory budget whatever `-T`, and
//! count what they decode as they go. Its own test binary: the budget and
//! the count are process-wide.

mod common;

use std::path::PathBuf;

use lza::archive::create::{self, CreateOptions, Method};
use lza::archive::extract::ReadOptions;
use lza::codecs::cm::Predictor;
use lza::codecs::cm::budget::DECODE;

#[test]
fn decoders_share_one_budget_and_count_what_they_decode() {
    // 12 files of 64 KiB of text: 12 context-mixing chunks (preset 3)
    let tmp = tempfile::tempdir().unwrap();
    let mut want = Vec::new();
    for i in 0..12 {
        let data = common::text(64 << 10, i)[..64 << 10].to_vec();
        std::fs::write(tmp.path().join(format!("f{i:02}")), &data).unwrap();
        want.push(data);
    }
    let mut w = create::Warnings::default();
    let sources = create::collect_sources(
        tmp.path(),
        &[PathBuf::from(".")],
        &create::exclude_set(&[]).unwrap(),
        &mut w,
    )
    .unwrap();
    let opts = CreateOptions {
        threads: 2,
        method: Method::Cm,
        ..CreateOptions::default()
    };
    let archive = create::write_archive(
        Vec::new(),
        &sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut w,
    )
    .unwrap();

    // room for two predictors at a time, with 8 threads
    let one = Predictor::memory(lza::codecs::cm::TEXT, 64 << 10, false);
    DECODE.set_total(2 * one + one / 2);
    let before = lza::runtime::progress::done();
    let mut c = common::Collect::default();
    lza::archive::extract::read_archive(
        archive.as_slice(),
        &ReadOptions {
            threads: 8,
            ..ReadOptions::default()
        },
        &mut c,
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap();
    let got: Vec<Vec<u8>> = c
        .items
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(got, want);
    assert!(DECODE.peak() >= one, "the decoders leased their tables");
    assert!(
        DECODE.peak() <= 2 * one + one / 2,
        "{} > budget",
        DECODE.peak()
    );
    // every decoded byte counted (other tests of this binary may add theirs)
    assert!(lza::runtime::progress::done() - before >= 12 * (64 << 10));
}

#[test]
fn verify_takes_max_size_and_max_memory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), &common::text(10_000, 1)[..10_000]).unwrap();
    let a = tmp.path().join("a.lza");
    let a = a.to_str().unwrap();
    let dir = tmp.path().to_str().unwrap();
    common::ok(common::lza(
        &["c", "-m", "cm", "-f", a, "-C", dir, "f"],
        &[],
    ));
    let out = common::lza(&["verify", "--max-size", "1000", "-f", a], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-size"),
        "{out:?}"
    );
    common::ok(common::lza(
        &[
            "verify",
            "--max-size",
            "10001",
            "--max-memory",
            "1",
            "-f",
            a,
        ],
        &[],
    ));
    let dest = tmp.path().join("x");
    common::ok(common::lza(
        &[
            "x",
            "--max-memory",
            "1",
            "-f",
            a,
            "-C",
            dest.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(
        std::fs::read(dest.join("f")).unwrap(),
        std::fs::read(tmp.path().join("f")).unwrap()
    );
}

/// Chunks of two streams decoded on fewer lanes than the threads, as
/// the budget allows (about 35 MiB of tables per 260 KiB chunk, 40 MiB of
/// budget: one at a time on three threads, paired with a spare thread):
/// every file comes back exactly.
#[test]
fn two_stream_chunks_decode_on_the_lanes_the_budget_allows() {
    let tmp = tempfile::tempdir().unwrap();
    // the spec, the README and the sources: text the model codes
    let mut files = vec![common::repo("format-spec.md"), common::repo("README.md")];
    common::walk(&common::repo("src"), &mut files);
    let mut prose = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md" || e == "rs"))
    {
        prose.extend(std::fs::read(f).unwrap());
    }
    let src = tmp.path().join("in");
    std::fs::create_dir(&src).unwrap();
    for (i, piece) in prose.chunks(260 << 10).take(2).enumerate() {
        assert_eq!(piece.len(), 260 << 10, "enough text for two chunks");
        std::fs::write(src.join(format!("t{i}")), piece).unwrap();
    }
    let a = tmp.path().join("a.lza");
    let a = a.to_str().unwrap();
    let dir = src.to_str().unwrap();
    common::ok(common::lza(
        &["c", "--block-size", "0", "-T", "2", "-f", a, "-C", dir, "."],
        &[],
    ));
    // each file one chunk of context mixing with the model
    let list = common::ok(common::lza(&["t", "-v", "-f", a], &[]));
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.matches(" cm+lm ").count(), 2, "{list}");
    let dest = tmp.path().join("x");
    let dest = dest.to_str().unwrap();
    common::ok(common::lza(
        &["x", "-T", "3", "--max-memory", "40", "-f", a, "-C", dest],
        &[],
    ));
    for i in 0..2 {
        let name = format!("t{i}");
        assert_eq!(
            std::fs::read(src.join(&name)).unwrap(),
            std::fs::read(tmp.path().join("x").join(&name)).unwrap()
        );
    }
}
