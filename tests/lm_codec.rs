//! The language-model codec through whole archives: determinism across
//! kernel paths, thread counts and batch sizes, model lookup and its errors,
//! and a golden archive with language-model chunks.

mod common;

use std::fs;
use std::path::Path;

use lza::container::reader::{ArchiveReader, Event, Limits};
use lza::format::CodecId;

use common::{lza, ok, repo};

/// Prose the default model codes far better than zstd, plus the awkward
/// cases: several 16 KiB chunks, empty and one-byte files, invalid UTF-8,
/// binary that looks like text, and real binary.
fn make_tree(root: &Path) {
    let prose = fs::read(repo("testdata/example/notes/harbour.txt")).unwrap();
    // This repository's own prose: more than one 16 KiB chunk of English
    // the model codes better than zstd.
    let mut long = fs::read(repo("format-spec.md")).unwrap();
    // Three 16 KiB chunks are enough; more only costs test time (the
    // portable path codes about 10 KB/s).
    long.truncate(40 * 1024);
    assert!(long.len() > 2 * 16 * 1024);
    let mut rng = common::Rng::new(5);
    let mut latin1 = b"Caf\xe9 cr\xe8me, na\xefve fa\xe7ade: the old spelling of ".repeat(50);
    latin1.push(0xFF);
    let mut binary_text = b"key=value\x01\x02 and more text\n".repeat(40);
    binary_text.extend_from_slice(&rng.bytes(300));
    common::write_file(&root.join("t/long.txt"), &long, 0o644);
    common::write_file(&root.join("t/harbour.txt"), &prose, 0o600);
    common::write_file(&root.join("t/empty.txt"), b"", 0o644);
    common::write_file(&root.join("t/one.txt"), b"x", 0o644);
    common::write_file(&root.join("t/latin1.txt"), &latin1, 0o644);
    common::write_file(&root.join("t/binary-text.dat"), &binary_text, 0o644);
    common::write_file(&root.join("t/noise.bin"), &rng.bytes(5000), 0o644);
    common::fix_mtimes(&root.join("t"), 1_700_000_000_000_000_000);
}

fn codecs(archive: &[u8]) -> Vec<CodecId> {
    let mut r = ArchiveReader::new(archive, Limits::default()).unwrap();
    let mut out = Vec::new();
    while let Some(ev) = r.next_event().unwrap() {
        if let Event::Chunk(c) = ev {
            out.push(c.header.codec);
        }
    }
    out
}

fn kernel_paths() -> Vec<&'static str> {
    lza::codecs::lm::KernelPath::available()
        .into_iter()
        .map(|p| p.name())
        .collect()
}

#[test]
fn archives_are_identical_across_kernels_threads_and_batches() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path());
    let base = tmp.path().to_str().unwrap();
    let mut reference: Option<(Vec<u8>, String)> = None;
    let mut settings = Vec::new();
    for kernel in kernel_paths() {
        for threads in ["1", "2", "7"] {
            for batch in ["1", "3", "64"] {
                settings.push((kernel, threads, batch));
            }
        }
    }
    // Fewer runs than the full product, but every value of each setting,
    // and each fast path with several thread counts and batch sizes. The
    // portable path, ten times slower than the others, runs twice: one
    // thread at batch 1 and seven at batch 64.
    let settings: Vec<_> = settings
        .into_iter()
        .enumerate()
        .filter(|&(i, (kernel, threads, batch))| {
            if kernel == "portable" {
                matches!((threads, batch), ("1", "1") | ("7", "64"))
            } else {
                i % 2 == 0
            }
        })
        .map(|(_, s)| s)
        .collect();
    for (i, &(kernel, threads, batch)) in settings.iter().enumerate() {
        let a = tmp.path().join(format!("a{i}.lza"));
        ok(lza(
            &[
                "c",
                "--block-size",
                "0",
                "--no-index",
                "-m",
                "lm",
                "-f",
                a.to_str().unwrap(),
                "-C",
                base,
                "-T",
                threads,
                "--batch",
                batch,
                "t",
            ],
            &[("LZA_KERNEL", kernel)],
        ));
        let bytes = fs::read(&a).unwrap();
        let what = format!("{kernel} -T {threads} --batch {batch}");
        match &reference {
            None => {
                let c = codecs(&bytes);
                assert!(
                    c.contains(&CodecId::LanguageModel),
                    "no language-model chunk in {c:?}"
                );
                assert!(
                    c.iter().filter(|&&c| c == CodecId::LanguageModel).count() >= 2,
                    "{c:?}"
                );
                reference = Some((bytes, what));
            }
            Some((r, rwhat)) => assert!(r == &bytes, "archive with {what} differs from {rwhat}"),
        }
        // Extract with a different setting than the one that created it.
        let (xk, xt, xb) = settings[(i + 1) % settings.len()];
        let out = tmp.path().join(format!("out{i}"));
        ok(lza(
            &[
                "x",
                "-f",
                a.to_str().unwrap(),
                "-C",
                out.to_str().unwrap(),
                "-T",
                xt,
                "--batch",
                xb,
            ],
            &[("LZA_KERNEL", xk)],
        ));
        common::assert_same_tree(&tmp.path().join("t"), &out.join("t"));
        fs::remove_dir_all(&out).unwrap();
    }
}

#[test]
fn unknown_kernel_path_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path());
    let a = tmp.path().join("a.lza");
    let out = lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-f",
            a.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "t",
        ],
        &[("LZA_KERNEL", "sse9")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sse9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!a.exists());
}

#[test]
fn missing_or_wrong_model_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path());
    let test_model = repo("testdata/models/test-gru.safetensors");
    let a = tmp.path().join("a.lza");
    // Through a pipe, so the header keeps the model's hash although the test
    // model wins no chunk (a file would get a zero hash, see below).
    let piped = ok(lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-f",
            "-",
            "--model",
            test_model.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "t",
        ],
        &[],
    ));
    fs::write(&a, &piped.stdout).unwrap();
    let a = a.to_str().unwrap();
    let hash = lza::format::ModelHash::of_bytes(&fs::read(&test_model).unwrap()).to_string();

    // Not embedded, not in any model directory.
    let dest = tmp.path().join("dest");
    let out = lza(&["x", "-f", a, "-C", dest.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&hash) && err.contains("--model"), "{err}");
    assert!(
        !dest.exists(),
        "destination created for an archive whose model is missing"
    );

    // A model file that is not the one the archive names.
    let out = lza(
        &[
            "x",
            "-f",
            a,
            "-C",
            dest.to_str().unwrap(),
            "--model",
            repo("models/default.safetensors").to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&hash) && err.contains("its hash is"), "{err}");
    assert!(!dest.exists());

    // Found in $LZA_MODEL_PATH, or given explicitly.
    ok(lza(
        &["x", "-f", a, "-C", dest.to_str().unwrap()],
        &[("LZA_MODEL_PATH", repo("testdata/models").to_str().unwrap())],
    ));
    common::assert_same_tree(&tmp.path().join("t"), &dest.join("t"));
    ok(lza(
        &["verify", "-f", a, "--model", test_model.to_str().unwrap()],
        &[],
    ));
}

#[test]
fn invalid_model_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path());
    let bad = tmp.path().join("bad.safetensors");
    let mut bytes = fs::read(repo("testdata/models/test-gru.safetensors")).unwrap();
    bytes.truncate(bytes.len() / 2);
    fs::write(&bad, &bytes).unwrap();
    let a = tmp.path().join("a.lza");
    let out = lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-f",
            a.to_str().unwrap(),
            "--model",
            bad.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "t",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.safetensors"));
    assert!(!a.exists());
}

/// `testdata/golden/lm-default.lza` holds language-model chunks coded with
/// the embedded default model: it pins the container and, through the
/// model, the arithmetic of format-spec section 7. It must be regenerated
/// (see `regenerate_lm_golden`) only when the default model changes; old
/// archives then need the old model file.
const LM_GOLDEN: &str = "testdata/golden/lm-default.lza";

fn golden_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = repo("testdata/example/notes/harbour.txt");
    common::write_file(
        &tmp.path().join("g/harbour.txt"),
        &fs::read(src).unwrap(),
        0o644,
    );
    common::write_file(
        &tmp.path().join("g/readme.txt"),
        &fs::read(repo("testdata/example/README.txt")).unwrap(),
        0o644,
    );
    common::fix_mtimes(&tmp.path().join("g"), 1_600_000_000_000_000_000);
    tmp
}

#[test]
fn golden_archive_with_language_model_chunks() {
    let golden = fs::read(repo(LM_GOLDEN)).unwrap();
    let c = codecs(&golden);
    assert!(
        c.iter().all(|&c| c == CodecId::LanguageModel) && !c.is_empty(),
        "{c:?}"
    );
    let tmp = golden_tree();
    // Decodes to the original files...
    let out = tmp.path().join("out");
    ok(lza(
        &[
            "x",
            "-f",
            repo(LM_GOLDEN).to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
        ],
        &[],
    ));
    common::assert_same_tree(&tmp.path().join("g"), &out.join("g"));
    // ...and the encoder still produces exactly these bytes.
    let again = tmp.path().join("again.lza");
    ok(lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-m",
            "lm",
            "-f",
            again.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "g",
        ],
        &[],
    ));
    assert!(
        fs::read(&again).unwrap() == golden,
        "re-created golden archive differs"
    );
}

#[test]
#[ignore = "generator: cargo test --release --test lm_codec -- --ignored"]
fn regenerate_lm_golden() {
    let tmp = golden_tree();
    let path = repo(LM_GOLDEN);
    let _ = fs::remove_file(&path);
    ok(lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-m",
            "lm",
            "-f",
            path.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "g",
        ],
        &[],
    ));
}

#[test]
fn file_archive_without_model_chunks_names_no_model() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path());
    let test_model = repo("testdata/models/test-gru.safetensors");
    let a = tmp.path().join("a.lza");
    ok(lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "-m",
            "lm",
            "-f",
            a.to_str().unwrap(),
            "--model",
            test_model.to_str().unwrap(),
            "-C",
            tmp.path().to_str().unwrap(),
            "t",
        ],
        &[],
    ));
    let bytes = fs::read(&a).unwrap();
    // The random test model never beats zstd, so no chunk names it...
    assert!(!codecs(&bytes).contains(&CodecId::LanguageModel));
    let header = lza::format::Header::parse(bytes[..40].try_into().unwrap()).unwrap();
    assert!(header.model_hash.is_none(), "{:?}", header.model_hash);
    // ...and the archive extracts without it.
    let out = tmp.path().join("out");
    ok(lza(
        &["x", "-f", a.to_str().unwrap(), "-C", out.to_str().unwrap()],
        &[],
    ));
    common::assert_same_tree(&tmp.path().join("t"), &out.join("t"));
}
