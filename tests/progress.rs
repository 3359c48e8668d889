//! Progress follows the bytes actually coded and decoded: each input byte is
//! counted once, whatever codec or trial coded it (its own test binary: the
//! count is process-wide).

mod common;

use lza::archive::create::{CreateOptions, Method, Source, Warnings};

fn sources(dir: &std::path::Path, files: &[(&str, Vec<u8>)]) -> Vec<Source> {
    for (name, data) in files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let names: Vec<std::path::PathBuf> = files.iter().map(|f| f.0.into()).collect();
    let mut warnings = Warnings::default();
    let excludes = lza::archive::create::exclude_set(&[]).unwrap();
    let src = lza::archive::create::collect_sources(dir, &names, &excludes, &mut warnings).unwrap();
    assert!(!warnings.any());
    src
}

#[test]
fn each_byte_is_counted_once() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = common::Rng::new(3);
    let files = [
        ("text", common::text(300_000, 5)),
        ("random", rng.bytes(100_000)),
    ];
    let total: u64 = files.iter().map(|f| f.1.len() as u64).sum();
    let src = sources(d.path(), &files);
    let threads = 2;
    // Each thread may hold back less than one batch.
    let slack = (threads as u64 + 1) * lza::runtime::progress::BATCH as u64;
    for method in [Method::Zstd, Method::Fast, Method::Cm] {
        let opts = CreateOptions {
            threads,
            chunk_size: 64 << 10,
            method,
            ..Default::default()
        };
        let before = lza::runtime::progress::done();
        let archive = lza::archive::create::write_archive(
            Vec::new(),
            &src,
            &opts,
            &mut |_| {},
            &mut |_| {},
            &mut Warnings::default(),
        )
        .unwrap();
        let coded = lza::runtime::progress::done() - before;
        assert!(
            coded <= total && coded + slack >= total,
            "{method:?}: {coded} of {total} bytes counted coding"
        );
        if method == Method::Zstd {
            assert_eq!(coded, total);
        }
        let before = lza::runtime::progress::done();
        let opts = lza::archive::extract::ReadOptions {
            threads,
            ..Default::default()
        };
        let mut sink = common::Collect::default();
        lza::archive::extract::read_archive(
            &archive[..],
            &opts,
            &mut sink,
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
        let decoded = lza::runtime::progress::done() - before;
        assert!(
            decoded <= total && decoded + slack >= total,
            "{method:?}: {decoded} of {total} bytes counted decoding"
        );
    }
}
