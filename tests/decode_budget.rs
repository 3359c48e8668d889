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
