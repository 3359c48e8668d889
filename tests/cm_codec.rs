//! The context-mixing codec (codec 3, format-spec section 8) through whole
//! archives: round trips for every method that uses it, the payload's preset
//! byte, determinism across threads, batch sizes and kernel paths, golden
//! archives pinning sections 8.2-8.5, and hostile or corrupt payloads.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::spec::*;
use lza::archive::extract::{DestWriter, ReadOptions, read_archive};
use lza::codecs::TextCoder;
use lza::container::reader::{ArchiveReader, Event, Limits};
use lza::format::{CodecId, ModelHash};
use lza::{CorruptKind, Error};

use common::{lza, ok, repo};

// ---- test data -----------------------------------------------------------

/// splitmix64: the generators below must never change, or the golden
/// archives built from their output must be regenerated.
struct Sm(u64);

impl Sm {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const VOCABULARY: &str = "the of and to a in is it that was he for on are as with his they at be \
    this from have or by one had not but what all were when we there can an your which their said \
    if do will each about how up out them then she many some so these would other into has more \
    her two like him see time could no make than first been its who now people my made over did \
    down only way find use may water long little very after words called just where most know get \
    through back much before go good new write our used me man too any day same right look think \
    also around another came come work three word must because does part even place well such here \
    take why things help put years different away again off went old number great tell men say \
    small every found still between name should home big give air line set own under read last \
    never us left end along while might next sound below saw something thought both few those \
    always looked show large often together asked house don't world going want school important \
    until form food keep children feet land side without boy once animals life enough took \
    sometimes four head above kind began almost live page got earth need far hand high year mother \
    light parts country father let night following picture being study second eyes soon times \
    story boys since white days ever paper hard near sentence better best across during today \
    others however sure means knew it's try told young miles sun ways thing whole hear example \
    heard several change answer room sea against top turned learn point city play toward five \
    using himself usually harbour lighthouse ferry café naïve façade Mira Oslo Tuesday";

/// Deterministic pseudo-English prose of about `n` bytes: sentences of
/// common words (more often the earlier ones), capitals, commas, numbers,
/// lines wrapped at 72 columns and blank lines between paragraphs. zstd -19
/// codes it well above 0.9 bits per byte, so the default method gives it to
/// the language model.
fn prose(n: usize, seed: u64) -> Vec<u8> {
    let words: Vec<&str> = VOCABULARY.split_whitespace().collect();
    let mut r = Sm(seed);
    let mut out = String::with_capacity(n + 200);
    let mut col = 0;
    let mut sentences = 0;
    while out.len() < n {
        let len = 4 + r.below(15);
        for i in 0..len {
            // skewed toward the front of the list
            let a = r.below(words.len());
            let b = r.below(words.len());
            let mut w = words[a.min(b)].to_string();
            if r.below(40) == 0 {
                w = format!("{}", r.below(2000));
            }
            if i == 0 {
                let mut c = w.chars();
                let first = c.next().unwrap();
                w = first.to_uppercase().chain(c).collect();
            }
            if i + 1 == len {
                w.push(match r.below(20) {
                    0 | 1 => '?',
                    2 => '!',
                    _ => '.',
                });
            } else if r.below(9) == 0 {
                w.push(',');
            }
            if col > 0 && col + 1 + w.chars().count() > 72 {
                out.push('\n');
                col = 0;
            } else if col > 0 {
                out.push(' ');
                col += 1;
            }
            col += w.chars().count();
            out.push_str(&w);
        }
        sentences += 1;
        if sentences % (3 + r.below(5)) == 0 {
            out.push_str("\n\n");
            col = 0;
        }
    }
    out.push('\n');
    out.into_bytes()
}

/// A repetitive log of about `n` bytes: zstd -19 codes it below 0.9 bits
/// per byte, so the default method codes it with preset 1, without the
/// model.
fn log_lines(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Sm(seed);
    let mut out = String::new();
    let paths = [
        "/api/v1/items",
        "/api/v1/users",
        "/health",
        "/static/app.js",
    ];
    let mut i = 0;
    while out.len() < n {
        let status = if r.below(20) == 0 { 404 } else { 200 };
        out.push_str(&format!(
            "2026-11-27T12:{:02}:{:02}Z INFO request id={} method=GET path={} status={} took={}ms\n",
            (i / 60) % 60,
            i % 60,
            1000 + i,
            paths[r.below(paths.len())],
            status,
            r.below(12)
        ));
        i += 1;
    }
    out.into_bytes()
}

/// Incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Sm(seed);
    (0..n).map(|_| (r.next() >> 56) as u8).collect()
}

/// A tree with prose of `big` bytes, a smaller prose file, a log, a
/// one-line file, an empty file and incompressible bytes, under `root/t`
/// with fixed mtimes.
fn make_tree(root: &Path, big: usize) {
    let t = root.join("t");
    common::write_file(&t.join("prose.txt"), &prose(big, 1), 0o644);
    common::write_file(&t.join("notes/short.txt"), &prose(3000, 2), 0o600);
    common::write_file(&t.join("notes/tiny.txt"), &prose(1000, 3), 0o644);
    common::write_file(&t.join("server.log"), &log_lines(30_000, 4), 0o644);
    common::write_file(&t.join("one.txt"), b"x", 0o644);
    common::write_file(&t.join("empty.txt"), b"", 0o644);
    common::write_file(&t.join("noise.bin"), &noise(3000, 9), 0o644);
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
}

// ---- reading archives ----------------------------------------------------

/// One chunk frame of an archive.
#[derive(Debug, Clone)]
struct Chunk {
    entry: String,
    offset: u64,
    codec: CodecId,
    raw_len: u32,
    /// The payload's first byte (a context-mixing chunk's preset byte).
    head: Option<u8>,
    /// Where the payload starts in the archive, and its length.
    payload_at: usize,
    payload_len: usize,
}

fn chunks(archive: &[u8]) -> Vec<Chunk> {
    let mut r = ArchiveReader::new(archive, Limits::default()).unwrap();
    let mut out = Vec::new();
    while let Some(ev) = r.next_event().unwrap() {
        if let Event::Chunk(c) = ev {
            out.push(Chunk {
                entry: c.entry.clone(),
                offset: c.offset,
                codec: c.header.codec,
                raw_len: c.header.raw_len,
                head: c.payload.first().copied(),
                payload_at: c.offset as usize + lza::format::FRAME_HEADER_LEN,
                payload_len: c.payload.len(),
            });
        }
    }
    out
}

/// The chunks of one file.
fn of<'a>(all: &'a [Chunk], entry: &str) -> Vec<&'a Chunk> {
    all.iter().filter(|c| c.entry == entry).collect()
}

fn model_hash(archive: &[u8]) -> ModelHash {
    lza::format::Header::parse(archive[..40].try_into().unwrap())
        .unwrap()
        .model_hash
}

fn embedded_hash() -> ModelHash {
    ModelHash::of_bytes(lza::codecs::models::EMBEDDED_MODEL)
}

/// The embedded model as a coder, as `lza x` would open it.
fn embedded_coder() -> Arc<dyn TextCoder> {
    lza::codecs::models::open_coder(&lza::codecs::models::ModelFile::embedded(), 2, 16).unwrap()
}

fn create(
    method: &str,
    base: &Path,
    archive: &Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> Vec<u8> {
    // (every file on its own: these tests pin the per-file coding policy
    // of format-spec 8.6; solid blocks are tests/solid.rs's; no index, so
    // that the bytes compare with goldens and pipes)
    let mut args = vec![
        "c",
        "--block-size",
        "0",
        "--no-index",
        "--method",
        method,
        "-f",
        archive.to_str().unwrap(),
        "--overwrite",
        "-C",
        base.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push("t");
    ok(lza(&args, envs));
    fs::read(archive).unwrap()
}

fn extract_cli(archive: &Path, dest: &Path, extra: &[&str], envs: &[(&str, &str)]) {
    let mut args = vec![
        "x",
        "-f",
        archive.to_str().unwrap(),
        "-C",
        dest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(lza(&args, envs));
}

// ---- round trips ---------------------------------------------------------

#[test]
fn every_method_round_trips_and_uses_context_mixing() {
    let tmp = tempfile::tempdir().unwrap();
    // 100 KB: two pieces with the default method
    make_tree(tmp.path(), 100_000);
    let src = tmp.path().join("t");
    for method in ["default", "max", "cm", "fast"] {
        let a = tmp.path().join(format!("{method}.lza"));
        let bytes = create(method, tmp.path(), &a, &["-T", "2"], &[]);
        let all = chunks(&bytes);
        let what = format!("--method {method}: {all:#?}");
        // Incompressible bytes are stored whatever the method.
        let noise = of(&all, "t/noise.bin");
        assert!(
            noise.len() == 1 && noise[0].codec == CodecId::Stored,
            "{what}"
        );
        let prose = of(&all, "t/prose.txt");
        let log = of(&all, "t/server.log");
        let short = of(&all, "t/notes/short.txt");
        let cm = |c: &&Chunk, head: u8| c.codec == CodecId::ContextMixing && c.head == Some(head);
        match method {
            "default" | "max" => {
                // Prose: preset 2 with the model, in two pieces (default)
                // or at least one (max).
                assert!(prose.iter().all(|c| cm(c, 0x85)), "{what}");
                if method == "default" {
                    assert_eq!(prose.len(), 2, "{what}");
                    let len = fs::metadata(src.join("prose.txt")).unwrap().len();
                    assert_eq!(prose[0].raw_len as u64, len.div_ceil(2), "{what}");
                }
                assert!(short.iter().all(|c| cm(c, 0x85)), "{what}");
                // The log: zstd already codes it well, so preset 3 alone
                // (the cm method's preset 9 is faster but larger).
                assert!(log.len() == 1 && cm(&log[0], 0x03), "{what}");
                assert_eq!(model_hash(&bytes), embedded_hash());
            }
            "cm" => {
                assert!(prose.len() == 1 && cm(&prose[0], 0x09), "{what}");
                assert!(log.len() == 1 && cm(&log[0], 0x09), "{what}");
                assert!(short.len() == 1 && cm(&short[0], 0x09), "{what}");
                assert!(
                    model_hash(&bytes).is_none(),
                    "{method}: model hash not zero"
                );
            }
            "fast" => {
                assert!(prose.len() == 1 && cm(&prose[0], 0x00), "{what}");
                assert!(log.len() == 1 && cm(&log[0], 0x00), "{what}");
                assert!(short.len() == 1 && cm(&short[0], 0x00), "{what}");
                assert!(
                    model_hash(&bytes).is_none(),
                    "{method}: model hash not zero"
                );
            }
            _ => unreachable!(),
        }
        // `lza x` gives back the tree.
        let out = tmp.path().join(format!("out-{method}"));
        extract_cli(&a, &out, &["-T", "1"], &[]);
        common::assert_same_tree(&src, &out.join("t"));
        ok(lza(&["verify", "-f", a.to_str().unwrap()], &[]));
        if method == "cm" || method == "fast" {
            // No model at all is needed: the library, given none, extracts.
            let out2 = tmp.path().join(format!("out2-{method}"));
            common::extract_to(&bytes, &out2, false).unwrap();
            common::assert_same_tree(&src, &out2.join("t"));
            // Written to a pipe, the archive is the same bytes: a method
            // without the model never names one.
            let piped = ok(lza(
                &[
                    "c",
                    "--block-size",
                    "0",
                    "--no-index",
                    "--method",
                    method,
                    "-f",
                    "-",
                    "-T",
                    "1",
                    "-C",
                    tmp.path().to_str().unwrap(),
                    "t",
                ],
                &[],
            ));
            assert!(piped.stdout == bytes, "{method}: piped archive differs");
        } else {
            // The model is needed: the library without it refuses.
            match common::extract_to(&bytes, &tmp.path().join("nomodel"), false) {
                Err(Error::UnknownModel { hash }) => assert_eq!(hash, embedded_hash()),
                other => panic!("{method}: extracted without the model: {other:?}"),
            }
        }
    }
}

#[test]
fn no_model_default_is_the_cm_method() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 20_000);
    let a = create(
        "default",
        tmp.path(),
        &tmp.path().join("a.lza"),
        &["--no-model"],
        &[],
    );
    let b = create("cm", tmp.path(), &tmp.path().join("b.lza"), &[], &[]);
    assert!(a == b, "--no-model differs from --method cm");
    assert!(chunks(&a).iter().any(|c| c.head == Some(0x09)));
}

// ---- determinism ---------------------------------------------------------

fn kernel_paths() -> Vec<&'static str> {
    lza::codecs::lm::KernelPath::available()
        .into_iter()
        .map(|p| p.name())
        .collect()
}

/// Create `t` under `base` once per setting (kernel, threads, batch) and
/// check that every archive is the same bytes; extract each with the next
/// setting. Returns the archive.
fn same_archive_for_every_setting(
    base: &Path,
    method: &str,
    extra: &[&str],
    settings: &[(&str, &str, &str)],
) -> Vec<u8> {
    let mut reference: Option<(Vec<u8>, String)> = None;
    for (i, &(kernel, threads, batch)) in settings.iter().enumerate() {
        let a = base.join(format!("{method}-{i}.lza"));
        let mut args = vec!["-T", threads, "--batch", batch];
        args.extend_from_slice(extra);
        let bytes = create(method, base, &a, &args, &[("LZA_KERNEL", kernel)]);
        let what =
            format!("--method {method} {extra:?} with {kernel} -T {threads} --batch {batch}");
        match &reference {
            None => reference = Some((bytes, what)),
            Some((r, rwhat)) => assert!(*r == bytes, "archive with {what} differs from {rwhat}"),
        }
        // Extracted with another setting than the one that made it.
        let (xk, xt, xb) = settings[(i + 1) % settings.len()];
        let out = base.join(format!("out-{method}-{i}"));
        extract_cli(&a, &out, &["-T", xt, "--batch", xb], &[("LZA_KERNEL", xk)]);
        common::assert_same_tree(&base.join("t"), &out.join("t"));
        fs::remove_dir_all(&out).unwrap();
    }
    reference.unwrap().0
}

#[test]
fn default_method_is_identical_across_threads_batches_and_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    // 100 KB of prose: two pieces with the model, coded side by side
    // (one after the other with --batch 1).
    common::write_file(&t.join("prose.txt"), &prose(100_000, 11), 0o644);
    common::write_file(&t.join("more.txt"), &prose(9000, 12), 0o644);
    common::write_file(&t.join("server.log"), &log_lines(20_000, 13), 0o644);
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
    // The portable path is ~20x slower: see the test below. Each fast
    // path with several thread counts and batch sizes, every thread count
    // and batch size at least once.
    let fast: Vec<_> = kernel_paths()
        .into_iter()
        .filter(|&k| k != "portable")
        .collect();
    let mut settings = Vec::new();
    for (i, (threads, batch)) in [
        ("1", "256"),
        ("2", "1"),
        ("3", "4"),
        ("1", "4"),
        ("2", "256"),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(&k) = fast.get(i % fast.len().max(1)) {
            settings.push((k, threads, batch));
        }
    }
    if settings.is_empty() {
        eprintln!("no SIMD kernel path on this CPU; the portable test covers it");
        return;
    }
    let bytes = same_archive_for_every_setting(tmp.path(), "default", &[], &settings);
    let all = chunks(&bytes);
    let lm = all.iter().filter(|c| c.head == Some(0x85)).count();
    assert!(lm >= 3, "{all:#?}");
    assert_eq!(of(&all, "t/prose.txt").len(), 2, "{all:#?}");
}

#[test]
fn default_method_on_the_portable_kernel_is_identical() {
    let kernels = kernel_paths();
    let best = *kernels.last().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    // Small: the portable path codes about 5 KB/s.
    common::write_file(&t.join("prose.txt"), &prose(8000, 14), 0o644);
    common::write_file(&t.join("server.log"), &log_lines(5000, 15), 0o644);
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
    let settings = [("portable", "2", "1"), (best, "1", "256")];
    let bytes = same_archive_for_every_setting(tmp.path(), "default", &[], &settings);
    assert!(chunks(&bytes).iter().any(|c| c.head == Some(0x85)));
}

#[test]
fn cm_and_fast_methods_are_identical_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 200_000);
    // No model: the kernel path and batch size play no part.
    let best = *kernel_paths().last().unwrap();
    let settings: Vec<_> = ["1", "2", "3"].iter().map(|&t| (best, t, "4")).collect();
    // 64 KiB segments: many chunks, coded in parallel.
    let bytes =
        same_archive_for_every_setting(tmp.path(), "cm", &["--chunk-size", "65536"], &settings);
    let n = of(&chunks(&bytes), "t/prose.txt").len();
    assert_eq!(n, 4);
    assert!(chunks(&bytes).iter().all(|c| c.head != Some(0x85)));
    // The fast method cuts a segment of 1 MiB or more into two pieces.
    let t = tmp.path().join("t");
    common::write_file(&t.join("prose.txt"), &prose(1_100_000, 16), 0o644);
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
    let bytes = same_archive_for_every_setting(tmp.path(), "fast", &[], &settings);
    let all = chunks(&bytes);
    let prose = of(&all, "t/prose.txt");
    assert!(
        prose.len() == 2 && prose.iter().all(|c| c.head == Some(0x00)),
        "{all:#?}"
    );
}

// ---- golden archives -----------------------------------------------------

/// Golden archives with context-mixing chunks: they pin format-spec
/// section 8 (the predictor exactly, the coder, the presets) and, for
/// `cm-default.lza`, the embedded model's part in it. The payloads of
/// `cm-normal.lza` and `cm-fast.lza` were checked against the spec's
/// reference coder (`python3 train/cm_ref.py archive FILE`: each decodes
/// and re-encodes to the same bytes). Regenerate them
/// (`regenerate_cm_goldens`) only for a deliberate format change or a new
/// default model; old archives then no longer decode.
const CM_GOLDENS: [(&str, &str); 3] = [
    ("testdata/golden/cm-default.lza", "default"),
    ("testdata/golden/cm-normal.lza", "cm"),
    ("testdata/golden/cm-fast.lza", "fast"),
];

/// The goldens' tree, `g/` (generated: the generators above must not change).
fn golden_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let g = tmp.path().join("g");
    // 70 KB: two pieces with the default method.
    common::write_file(&g.join("prose.txt"), &prose(70_000, 21), 0o644);
    common::write_file(&g.join("server.log"), &log_lines(6000, 22), 0o644);
    common::write_file(&g.join("notes/small.txt"), &prose(2000, 23), 0o600);
    common::write_file(&g.join("notes/empty.txt"), b"", 0o644);
    common::write_file(&g.join("noise.bin"), &noise(300, 24), 0o644);
    common::fix_mtimes(&g, 1_600_000_000_000_000_000);
    tmp
}

fn create_golden(method: &str, base: &Path, path: &Path) {
    create_golden_from(method, base, "g", path)
}

fn create_golden_from(method: &str, base: &Path, tree: &str, path: &Path) {
    ok(lza(
        &[
            "c",
            "--block-size",
            "0",
            "--no-index",
            "--method",
            method,
            "-T",
            "2",
            "-f",
            path.to_str().unwrap(),
            "--overwrite",
            "-C",
            base.to_str().unwrap(),
            tree,
        ],
        &[],
    ));
}

#[test]
fn golden_archives_with_context_mixing_chunks() {
    let tmp = golden_tree();
    let src = tmp.path().join("g");
    let mut total = 0;
    for (file, method) in CM_GOLDENS {
        let golden = fs::read(repo(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        total += golden.len();
        let all = chunks(&golden);
        let heads = |entry: &str| -> Vec<Option<u8>> {
            of(&all, entry)
                .iter()
                .map(|c| (c.codec == CodecId::ContextMixing).then(|| c.head.unwrap()))
                .collect()
        };
        let (text, log) = match method {
            "default" => (Some(0x85), Some(0x03)),
            "cm" => (Some(0x09), Some(0x09)),
            _ => (Some(0x00), Some(0x00)),
        };
        let n = if method == "default" { 2 } else { 1 };
        assert_eq!(heads("g/prose.txt"), vec![text; n], "{file}: {all:#?}");
        assert_eq!(heads("g/server.log"), vec![log], "{file}: {all:#?}");
        assert_eq!(heads("g/notes/small.txt"), vec![text], "{file}: {all:#?}");
        assert_eq!(heads("g/noise.bin"), vec![None], "{file}: {all:#?}");
        assert_eq!(
            model_hash(&golden),
            if method == "default" {
                embedded_hash()
            } else {
                ModelHash::NONE
            },
            "{file}"
        );
        // Decodes to the original files...
        let out = tmp.path().join(format!("out-{method}"));
        extract_cli(&repo(file), &out, &[], &[]);
        common::assert_same_tree(&src, &out.join("g"));
        if method != "default" {
            let out = tmp.path().join(format!("lib-{method}"));
            common::extract_to(&golden, &out, false).unwrap();
            common::assert_same_tree(&src, &out.join("g"));
        }
        // ...and the encoder still produces exactly these bytes.
        let again = tmp.path().join(format!("again-{method}.lza"));
        create_golden(method, tmp.path(), &again);
        assert!(
            fs::read(&again).unwrap() == golden,
            "re-created {file} differs: the context-mixing coder or the \
             encoder's policy changed (see regenerate_cm_goldens)"
        );
    }
    assert!(total < 100_000, "golden archives take {total} bytes");
}

/// Archives lza wrote before (the same tree): with presets 1 and 2, before
/// presets 3 and 4 existed (made by `regenerate_cm_goldens` at commit
/// 0385131), and with preset 4, before preset 5 existed (commit a433954).
/// The encoder no longer writes these presets, but they stay valid
/// (format-spec 8.5), so these must keep decoding; with preset 3, which
/// the cm method wrote for text before preset 9 existed; and the default
/// method's preset 9 for text without the model, before it went back to
/// preset 3 there.
const LEGACY_GOLDENS: [(&str, u8, u8); 5] = [
    ("testdata/golden/cm-default-presets-1-2.lza", 0x82, 0x01),
    ("testdata/golden/cm-normal-preset-1.lza", 0x01, 0x01),
    ("testdata/golden/cm-default-preset-4.lza", 0x84, 0x03),
    ("testdata/golden/cm-normal-preset-3.lza", 0x03, 0x03),
    ("testdata/golden/cm-default-preset-9.lza", 0x85, 0x09),
];

#[test]
fn legacy_golden_archives_still_decode() {
    let tmp = golden_tree();
    let src = tmp.path().join("g");
    for (file, text, log) in LEGACY_GOLDENS {
        let golden = fs::read(repo(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let all = chunks(&golden);
        let head = |entry: &str| of(&all, entry)[0].head;
        assert_eq!(head("g/prose.txt"), Some(text), "{file}: {all:#?}");
        assert_eq!(head("g/server.log"), Some(log), "{file}: {all:#?}");
        let out = tmp.path().join("out");
        let _ = fs::remove_dir_all(&out);
        extract_cli(&repo(file), &out, &[], &[]);
        common::assert_same_tree(&src, &out.join("g"));
    }
}

/// x86-like machine code of `n` bytes: short instructions of random
/// operands between calls and jumps (`E8`/`E9` and a 32-bit offset
/// relative to the next instruction) to 50 function starts.
fn x86_code(n: usize, seed: u64) -> Vec<u8> {
    let mut r = Sm(seed);
    let funcs: Vec<u32> = (0..50).map(|_| r.below(n) as u32).collect();
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        if r.below(4) == 0 {
            let next = v.len() as u32 + 5;
            v.push(if r.below(3) == 0 { 0xE9 } else { 0xE8 });
            v.extend_from_slice(&funcs[r.below(50)].wrapping_sub(next).to_le_bytes());
        } else {
            for _ in 0..1 + r.below(5) {
                v.push([0x8B, 0x89, 0x55, 0x5D, 0xC3, 0x83, 0x45, 0x0F][r.below(8)]);
                v.push(r.next() as u8);
            }
        }
    }
    v.truncate(n);
    v
}

/// The x86 filter's golden (format-spec 8.7): `x/prog.bin`, 24,000 bytes
/// of x86-like code, archived with `--method cm`.
const X86_GOLDEN: &str = "testdata/golden/cm-x86.lza";

/// Before preset 7: the same code with preset 3 and the filter (0x43).
const X86_GOLDEN_PRESET_3: &str = "testdata/golden/cm-x86-preset-3.lza";

/// Binary records: a counter, a slowly changing field and flags, as u32
/// little-endian.
fn records(n: usize) -> Vec<u8> {
    let mut r = Sm(9);
    let mut v = Vec::new();
    for i in 0..n as u32 {
        for f in [
            i,
            1_000_000 + i / 16 * 3,
            r.below(4) as u32,
            0x8000_0000 | (i % 7),
        ] {
            v.extend_from_slice(&f.to_le_bytes());
        }
    }
    v
}

fn x86_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x");
    common::write_file(&x.join("prog.bin"), &x86_code(24_000, 31), 0o755);
    common::fix_mtimes(&x, 1_600_000_000_000_000_000);
    tmp
}

fn binary_tree() -> tempfile::TempDir {
    let tmp = x86_tree();
    let x = tmp.path().join("x");
    common::write_file(&x.join("table.bin"), &records(600), 0o644);
    common::fix_mtimes(&x, 1_600_000_000_000_000_000);
    tmp
}

/// The golden at `golden` extracts to `tmp/tree` and re-creates byte for
/// byte with `--method cm`; each `(method, head)` codes `entry`'s first
/// chunk with that preset byte, and extracts.
fn golden_and_methods_hold(
    tmp: &Path,
    tree: &str,
    golden: &str,
    entry: &str,
    methods: [(&str, u8); 2],
) {
    let bytes = fs::read(repo(golden)).unwrap();
    let out = tmp.join("out");
    extract_cli(&repo(golden), &out, &[], &[]);
    common::assert_same_tree(&tmp.join(tree), &out.join(tree));
    let again = tmp.join("again.lza");
    create_golden_from("cm", tmp, tree, &again);
    assert!(
        fs::read(&again).unwrap() == bytes,
        "re-created {golden} differs (see regenerate_cm_goldens)"
    );
    for (method, head) in methods {
        let a = tmp.join(format!("{method}.lza"));
        create_golden_from(method, tmp, tree, &a);
        let bytes = fs::read(&a).unwrap();
        assert_eq!(of(&chunks(&bytes), entry)[0].head, Some(head), "{method}");
        let out = tmp.join(format!("out-{method}"));
        extract_cli(&a, &out, &[], &[]);
        common::assert_same_tree(&tmp.join(tree), &out.join(tree));
    }
}

/// Code that looks like x86 goes through the x86 filter (the preset byte
/// has bit 6), smaller than without it, with every method that codes it
/// without the model, with preset 7 but for the fast method; binary
/// records get preset 7 too. The golden pins the filter and preset 7, and
/// extracts; the golden made before preset 7 still extracts.
#[test]
fn x86_code_is_filtered_and_golden_holds() {
    let tmp = binary_tree();
    let code = x86_code(24_000, 31);
    // the archive before preset 7 still extracts (prog.bin only)
    let old = x86_tree();
    let out = old.path().join("out");
    let legacy = chunks(&fs::read(repo(X86_GOLDEN_PRESET_3)).unwrap());
    assert_eq!(of(&legacy, "x/prog.bin")[0].head, Some(0x43), "{legacy:#?}");
    extract_cli(&repo(X86_GOLDEN_PRESET_3), &out, &[], &[]);
    common::assert_same_tree(&old.path().join("x"), &out.join("x"));
    let golden = fs::read(repo(X86_GOLDEN)).unwrap();
    let all = chunks(&golden);
    assert_eq!(of(&all, "x/prog.bin")[0].head, Some(0x47), "{all:#?}");
    assert_eq!(of(&all, "x/table.bin")[0].head, Some(7), "{all:#?}");
    golden_and_methods_hold(
        tmp.path(),
        "x",
        X86_GOLDEN,
        "x/prog.bin",
        [("default", 0x47), ("fast", 0x40)],
    );
    let plain = lza::codecs::cm::encode(&code, lza::codecs::cm::TEXT).len();
    let filtered = lza::codecs::cm::encode_x86(&code, lza::codecs::cm::TEXT).len();
    assert!(filtered * 100 < plain * 95, "{filtered} vs {plain}");
    // preset 7's sparse contexts pay on code; binary records round-trip
    // with it (on these regular records preset 3 does as well)
    let binary = lza::codecs::cm::encode_x86(&code, lza::codecs::cm::BINARY).len();
    assert!(binary < filtered, "{binary} vs {filtered}");
    let table = records(600);
    let p7 = lza::codecs::cm::encode(&table, lza::codecs::cm::BINARY);
    assert_eq!(lza::codecs::cm::decode(&p7, table.len()).unwrap(), table);
}

/// A 16-bit little-endian scan `width` samples wide after a 1-byte
/// header: smooth shading in 12 bits and 2 bits of noise.
fn scan(width: usize, rows: usize, seed: u64) -> Vec<u8> {
    let mut r = Sm(seed);
    let mut v = vec![0x5A];
    for y in 0..rows as i64 {
        for x in 0..width as i64 {
            let d = ((x - 120).pow(2) + (y - 70).pow(2)) / 30;
            let val = (1500 + 4 * x - 3 * y - d + r.below(4) as i64).clamp(0, 4095);
            v.extend_from_slice(&(val as u16).to_le_bytes());
        }
    }
    v
}

const IMAGE_GOLDEN: &str = "testdata/golden/cm-image.lza";

fn image_tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("img");
    common::write_file(&x.join("scan.raw"), &scan(200, 170, 77), 0o644);
    common::fix_mtimes(&x, 1_600_000_000_000_000_000);
    tmp
}

/// A 16-bit image is guessed (width 200, samples from byte 1) and coded
/// with preset 6 by the methods that code it without the model, smaller
/// than with preset 3; the golden pins preset 6, and extracts.
#[test]
fn image_is_guessed_and_golden_holds() {
    let tmp = image_tree();
    let data = scan(200, 170, 77);
    let golden = fs::read(repo(IMAGE_GOLDEN)).unwrap();
    let all = chunks(&golden);
    assert_eq!(of(&all, "img/scan.raw")[0].head, Some(6), "{all:#?}");
    golden_and_methods_hold(
        tmp.path(),
        "img",
        IMAGE_GOLDEN,
        "img/scan.raw",
        [("default", 6), ("fast", 0)],
    );
    let image = lza::codecs::cm::guess_image(&data);
    assert_eq!(
        image,
        Some(lza::codecs::cm::Image {
            width: 200,
            first: 1
        })
    );
    let plain = lza::codecs::cm::encode(&data, lza::codecs::cm::TEXT).len();
    let img = lza::codecs::cm::encode_image(&data, image.unwrap());
    assert_eq!(img[..4], [6, 200, 0, 1]);
    assert!(img.len() * 100 < plain * 90, "{} vs {plain}", img.len());
}

/// Preset 6 with a flag, or with a width under 2 or a first byte over 1,
/// is a corrupt chunk named as such.
#[test]
fn bad_image_parameters_are_errors_naming_them() {
    let raw = b"hello, hello";
    for (payload, want) in [
        (
            vec![6u8, 0, 0, 0, 0, 0, 0, 0],
            "bad image parameters (width 0, first byte 0",
        ),
        (
            vec![6, 1, 0, 0, 0, 0, 0, 0],
            "bad image parameters (width 1, first byte 0",
        ),
        (
            vec![6, 9, 0, 7, 0, 0, 0, 0],
            "bad image parameters (width 9, first byte 7",
        ),
        (
            vec![0x46, 9, 0, 0, 0, 0, 0, 0],
            "preset byte 0x46 sets a flag",
        ),
        (vec![6, 9], "ends before the chunk is complete"),
    ] {
        let (bytes, at) = one_chunk(header(1024, false), raw, raw.len() as u32, payload);
        let msg = decode_error(&bytes, false, at);
        assert!(msg.contains(want), "{msg}");
    }
    let (bytes, at) = one_chunk(
        header(1024, true),
        raw,
        raw.len() as u32,
        vec![0x86, 9, 0, 0, 0, 0, 0, 0],
    );
    let msg = decode_error(&bytes, true, at);
    assert!(msg.contains("preset byte 0x86 sets a flag"), "{msg}");
}

#[test]
#[ignore = "generator: cargo test --release --test cm_codec -- --ignored regenerate_cm_goldens"]
fn regenerate_cm_goldens() {
    let tmp = golden_tree();
    for (file, method) in CM_GOLDENS {
        create_golden(method, tmp.path(), &repo(file));
    }
    let tmp = binary_tree();
    create_golden_from("cm", tmp.path(), "x", &repo(X86_GOLDEN));
    let tmp = image_tree();
    create_golden_from("cm", tmp.path(), "img", &repo(IMAGE_GOLDEN));
}

// ---- hostile payloads, written byte by byte --------------------------------

/// An archive holding one file `f.txt` of `raw_len` bytes in one
/// context-mixing frame with `payload` (checksum of `raw`); the frame's
/// offset.
fn one_chunk(header: HeaderSpec, raw: &[u8], raw_len: u32, payload: Vec<u8>) -> (Vec<u8>, u64) {
    let mut b = Builder::with_header(header);
    let mut e = EntrySpec::new(KIND_FILE, "f.txt");
    e.size = raw_len as u64;
    b.entry(&e);
    let at = b.pos();
    let mut f = FrameSpec::coded(CODEC_CM, raw, payload);
    f.raw_len = raw_len;
    b.frame(&f);
    (b.finish(), at)
}

/// A version 2 header (every preset id of format-spec 8.5 is valid in it).
fn header(max_chunk: u32, model: bool) -> HeaderSpec {
    HeaderSpec {
        version: 2,
        max_chunk,
        model_hash: if model { embedded_hash().0 } else { [0; 16] },
        ..HeaderSpec::default()
    }
}

/// Extract `bytes` into a fresh directory with the embedded model (when
/// `model`) or none; the result, after checking that no file and no
/// temporary was left (the archive's only file is corrupt).
fn extract_lib(bytes: &[u8], model: bool) -> lza::Result<Vec<u8>> {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let mut w = DestWriter::new(&dest, false);
    let opts = ReadOptions {
        threads: 2,
        lm: model.then(embedded_coder),
        ..ReadOptions::default()
    };
    let r = read_archive(bytes, &opts, &mut w, &mut |_| {}, &mut |_| {});
    drop(w);
    assert!(common::tmp_leftovers(&dest).is_empty());
    match r {
        Ok(()) => Ok(fs::read(dest.join("f.txt")).unwrap()),
        Err(e) => {
            assert!(
                !dest.join("f.txt").exists(),
                "a corrupt file was written ({e})"
            );
            Err(e)
        }
    }
}

/// The `Decode` message of a corrupt chunk at `at`; a panic for any
/// other outcome.
fn decode_error(bytes: &[u8], model: bool, at: u64) -> String {
    match extract_lib(bytes, model) {
        Err(Error::Corrupt {
            offset,
            kind: CorruptKind::Decode(msg),
            entry,
            chunk,
        }) => {
            assert_eq!(offset, at, "{msg}");
            assert_eq!(entry.as_deref(), Some("f.txt"));
            assert_eq!(chunk, Some(0));
            msg
        }
        other => panic!("expected a Decode error at {at}, got {other:?}"),
    }
}

#[test]
fn unknown_preset_id_is_an_error_naming_it() {
    let raw = b"hello, hello";
    for id in [10u8, 0x4A, 0x7F] {
        let (bytes, at) = one_chunk(
            header(1024, false),
            raw,
            raw.len() as u32,
            vec![id, 0, 0, 0, 0],
        );
        let msg = decode_error(&bytes, false, at);
        assert!(
            msg.contains(&format!("unknown preset byte {id:#04x}")),
            "{msg}"
        );
    }
    // With the model flag and the model at hand: the id is still checked.
    for id in [0x8Au8, 0xFF] {
        let (bytes, at) = one_chunk(
            header(1024, true),
            raw,
            raw.len() as u32,
            vec![id, 0, 0, 0, 0],
        );
        let msg = decode_error(&bytes, true, at);
        assert!(
            msg.contains(&format!("unknown preset byte {id:#04x}")),
            "{msg}"
        );
    }
    // Through the CLI: exit code 1, the message, and no file.
    let tmp = tempfile::tempdir().unwrap();
    let (bytes, _) = one_chunk(
        header(1024, false),
        raw,
        raw.len() as u32,
        vec![10, 1, 2, 3, 4],
    );
    let a = tmp.path().join("a.lza");
    fs::write(&a, &bytes).unwrap();
    let dest = tmp.path().join("dest");
    let out = lza(
        &["x", "-f", a.to_str().unwrap(), "-C", dest.to_str().unwrap()],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown preset byte 0x0a") && err.contains("f.txt"),
        "{err}"
    );
    assert!(!dest.join("f.txt").exists());
}

#[test]
fn model_flag_without_model_hash_is_no_model() {
    let raw = prose(3000, 41);
    // A real payload coded with the model...
    let real = embedded_coder()
        .encode_cm_chunks(&[&raw], lza::codecs::cm::WITH_LM)
        .pop()
        .unwrap();
    assert_eq!(real[0], 0x82);
    let (bytes, _) = one_chunk(header(4096, true), &raw, raw.len() as u32, real.clone());
    assert_eq!(extract_lib(&bytes, true).unwrap(), raw);
    // ...in an archive whose header names no model, and other flagged bytes.
    for payload in [
        real,
        vec![0x80, 0, 0, 0, 0],
        vec![0x81, 1, 2, 3, 4],
        vec![0x82],
    ] {
        let (bytes, at) = one_chunk(header(4096, false), &raw, raw.len() as u32, payload);
        match extract_lib(&bytes, false) {
            Err(Error::Corrupt {
                offset,
                kind: CorruptKind::NoModel,
                ..
            }) => assert_eq!(offset, at),
            other => panic!("expected NoModel, got {other:?}"),
        }
    }
}

#[test]
fn model_flag_above_4_mib_is_an_error() {
    const LIMIT: u32 = 4 << 20;
    let big = header(8 << 20, true);
    let raw = b"not the data";
    let (bytes, at) = one_chunk(big, raw, LIMIT + 1, vec![0x82, 0, 0, 0, 0]);
    let msg = decode_error(&bytes, true, at);
    assert!(msg.contains("4194305") && msg.contains("4194304"), "{msg}");
    for id in [0x80, 0x81] {
        let (bytes, at) = one_chunk(big, raw, 6 << 20, vec![id, 0, 0, 0, 0]);
        let msg = decode_error(&bytes, true, at);
        assert!(msg.contains("may not use the language model"), "{msg}");
    }
    // At the limit, or without the flag, the length is fine: these fail
    // only because the payload ends too soon.
    let (bytes, at) = one_chunk(big, raw, LIMIT, vec![0x82, 0, 0, 0, 0]);
    let msg = decode_error(&bytes, true, at);
    assert!(msg.contains("ends before the chunk is complete"), "{msg}");
    let (bytes, at) = one_chunk(big, raw, LIMIT + 1, vec![0x01, 0, 0, 0, 0]);
    let msg = decode_error(&bytes, true, at);
    assert!(msg.contains("ends before the chunk is complete"), "{msg}");
}

#[test]
fn truncated_and_trailing_payloads_are_errors() {
    let raw = prose(5000, 42);
    let coder = embedded_coder();
    let mut cases = Vec::new();
    for preset in [
        lza::codecs::cm::FAST,
        lza::codecs::cm::NORMAL,
        lza::codecs::cm::WITH_LM,
    ] {
        cases.push((
            format!("preset {}", preset.id),
            lza::codecs::cm::encode(&raw, preset),
            false,
        ));
    }
    let with_lm = coder
        .encode_cm_chunks(&[&raw], lza::codecs::cm::WITH_LM)
        .pop()
        .unwrap();
    cases.push(("preset 2 with the model".into(), with_lm, true));
    for (what, payload, model) in cases {
        let run = |payload: Vec<u8>| {
            let (bytes, at) = one_chunk(header(8192, model), &raw, raw.len() as u32, payload);
            (bytes, at)
        };
        let (bytes, _) = run(payload.clone());
        assert_eq!(extract_lib(&bytes, model).unwrap(), raw, "{what}");
        let n = payload.len();
        for cut in [n - 1, n - 2, n / 2, 5, 2, 1] {
            let (bytes, at) = run(payload[..cut].to_vec());
            let msg = decode_error(&bytes, model, at);
            assert!(
                msg.contains("ends before the chunk is complete"),
                "{what}, cut to {cut}: {msg}"
            );
        }
        let (bytes, at) = run(Vec::new());
        assert!(decode_error(&bytes, model, at).contains("empty"), "{what}");
        for extra in [&[0u8][..], &[0xFF], &[1, 2, 3]] {
            let mut p = payload.clone();
            p.extend_from_slice(extra);
            let (bytes, at) = run(p);
            let msg = decode_error(&bytes, model, at);
            assert!(
                msg.contains(&format!("{} bytes left after the last bit", extra.len())),
                "{what}, {extra:?} appended: {msg}"
            );
        }
    }
}

// ---- every single-byte flip of context-mixing payloads -----------------

/// `base/f` archived with the library, `method`, segments of `chunk` bytes.
fn lib_archive(base: &Path, method: lza::archive::create::Method, chunk: u32) -> Vec<u8> {
    let mut warnings = lza::archive::create::Warnings::default();
    let sources = lza::archive::create::collect_sources(
        base,
        &[PathBuf::from("f")],
        &lza::archive::create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    let opts = lza::archive::create::CreateOptions {
        threads: 2,
        level: 6,
        chunk_size: chunk,
        method,
        lm: method.uses_lm().then(embedded_coder),
        ..Default::default()
    };
    lza::archive::create::write_archive(
        Vec::new(),
        &sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        &mut Default::default(),
    )
    .unwrap()
}

/// Flip every byte of every context-mixing payload of a small archive made
/// with `method` (each offset with one of three masks) and extract: each
/// must fail, at that chunk, and leave no file with wrong contents and no
/// temporary. The one exception: the coder's last four bytes (its flush)
/// may change without changing a decoded bit, so the chunk decodes and its
/// file is right; the end record's stream checksum then fails instead.
fn every_payload_flip_fails(
    method: lza::archive::create::Method,
    prose_len: usize,
    want_heads: &[u8],
) {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    let files = [
        ("a.txt", prose(prose_len, 51)),
        ("b.log", log_lines(900, 52)),
        ("n.bin", noise(100, 53)),
    ];
    for (name, data) in &files {
        common::write_file(&f.join(name), data, 0o644);
    }
    let bytes = lib_archive(tmp.path(), method, 1024);
    let all = chunks(&bytes);
    let cm: Vec<&Chunk> = all
        .iter()
        .filter(|c| c.codec == CodecId::ContextMixing)
        .collect();
    for h in want_heads {
        assert!(
            cm.iter().any(|c| c.head == Some(*h)),
            "{method:?}: no chunk with preset byte {h:#04x}: {all:#?}"
        );
    }
    let lm = method.uses_lm().then(embedded_coder);
    let mut failures = Vec::new();
    let mut flush_only = 0;
    let mut tried = 0;
    for c in &cm {
        for off in c.payload_at..c.payload_at + c.payload_len {
            let mut b = bytes.clone();
            b[off] ^= [0x01, 0x80, 0xFF][off % 3];
            tried += 1;
            let dest = tmp.path().join("dest");
            let mut w = DestWriter::new(&dest, false);
            let opts = ReadOptions {
                threads: 1 + off % 2,
                lm: lm.clone(),
                ..ReadOptions::default()
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                read_archive(&b[..], &opts, &mut w, &mut |_| {}, &mut |_| {})
            }));
            drop(w);
            let what = format!("flip at {off} (chunk at {} of {})", c.offset, c.entry);
            // What is on disk must be right, whatever happened.
            for (name, data) in &files {
                let p = dest.join("f").join(name);
                if p.exists() && fs::read(&p).unwrap() != *data {
                    failures.push(format!("{what}: {name} written with wrong contents"));
                }
            }
            let left = common::tmp_leftovers(&dest);
            if !left.is_empty() {
                failures.push(format!("{what}: temporaries left: {left:?}"));
            }
            let in_flush = off >= c.payload_at + c.payload_len - 4;
            match r {
                Err(_) => failures.push(format!("{what}: panic")),
                Ok(Ok(())) => failures.push(format!("{what}: accepted")),
                Ok(Err(Error::Corrupt { offset, kind, .. })) => match kind {
                    // (NoModel: bit 7 of the preset byte set without a
                    // model; PresetNotInVersion: a flip to preset 9 in a
                    // version 1 archive)
                    CorruptKind::Decode(_)
                    | CorruptKind::ChecksumMismatch("chunk data")
                    | CorruptKind::NoModel
                    | CorruptKind::PresetNotInVersion(_)
                        if offset == c.offset => {}
                    CorruptKind::EndMismatch("stream checksum") if in_flush => {
                        let p = dest.join("f").join(c.entry.strip_prefix("f/").unwrap());
                        if !p.exists() {
                            failures.push(format!(
                                "{what}: stream checksum failed but the chunk was not written"
                            ));
                        }
                        flush_only += 1;
                    }
                    other => failures.push(format!("{what}: {other:?} at {offset}")),
                },
                Ok(Err(e)) => failures.push(format!("{what}: {e}")),
            }
            if dest.exists() {
                fs::remove_dir_all(&dest).unwrap();
            }
        }
    }
    eprintln!(
        "{method:?}: {tried} flips in {} payloads, {flush_only} caught only by the stream checksum",
        cm.len()
    );
    assert!(tried > 200, "{tried}");
    assert!(
        failures.is_empty(),
        "{method:?}: {} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}

#[test]
fn every_payload_flip_of_a_cm_archive_fails() {
    every_payload_flip_fails(lza::archive::create::Method::Cm, 1000, &[0x09]);
}

#[test]
fn every_payload_flip_of_a_fast_archive_fails() {
    every_payload_flip_fails(lza::archive::create::Method::Fast, 1000, &[0x00]);
}

#[test]
fn every_payload_flip_of_a_default_archive_fails() {
    // Smaller: every flip runs the model over the text again.
    every_payload_flip_fails(lza::archive::create::Method::Default, 500, &[0x85]);
}

/// Preset 9 came with format version 2: `-m cm` writes a version 2 archive
/// even without solid blocks, and the same chunk under a version 1 header
/// is refused by name, where a version 1 reader would not know the preset.
#[test]
fn preset_9_needs_version_2() {
    let tmp = tempfile::tempdir().unwrap();
    let text = common::text(20_000, 9);
    fs::create_dir(tmp.path().join("in")).unwrap();
    fs::write(tmp.path().join("in/t.txt"), &text).unwrap();
    let arch = tmp.path().join("a.lza");
    let base = tmp.path().to_str().unwrap();
    for (method, version) in [("cm", 2u16), ("fast", 1), ("zstd", 1), ("cm", 2)] {
        let _ = fs::remove_file(&arch);
        ok(lza(
            &[
                "c",
                "-m",
                method,
                "--block-size",
                "0",
                // (an index would make every file archive version 2)
                "--no-index",
                "-f",
                arch.to_str().unwrap(),
                "-C",
                base,
                "in",
            ],
            &[],
        ));
        let bytes = fs::read(&arch).unwrap();
        assert_eq!(
            u16::from_le_bytes([bytes[8], bytes[9]]),
            version,
            "-m {method}"
        );
    }
    let mut bytes = fs::read(&arch).unwrap();
    let heads: Vec<u8> = {
        let mut r = ArchiveReader::new(&bytes[..], Limits::default()).unwrap();
        let mut v = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            if let Event::Chunk(c) = ev {
                assert_eq!(c.header.codec, CodecId::ContextMixing);
                v.push(c.payload[0]);
            }
        }
        v
    };
    assert_eq!(heads, vec![9], "one chunk of preset 9");
    common::decode(&bytes).unwrap();
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..36]);
    bytes[36..40].copy_from_slice(&crc.to_le_bytes());
    let (_, kind) = common::corrupt_kind(common::decode(&bytes));
    assert!(
        matches!(kind, CorruptKind::PresetNotInVersion(9)),
        "{kind:?}"
    );
}
