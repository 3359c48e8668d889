//! The real `lza` binary: create, extract, list and verify round trips, by
//! file and by pipe, and the CLI's error behaviour.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Rng, assert_same_tree, set_mode, write_file};

const LZA: &str = env!("CARGO_BIN_EXE_lza");

fn lza(args: &[&str]) -> Output {
    Command::new(LZA)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lza")
}

fn ok(args: &[&str]) -> Output {
    let out = lza(args);
    assert!(
        out.status.success(),
        "lza {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Fixture {
    tmp: tempfile::TempDir,
    /// `src/tree` is the tree; archives go next to `src`.
    src: PathBuf,
}

impl Fixture {
    fn tree(&self) -> PathBuf {
        self.src.join("tree")
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    /// Archive `src/tree` into `name` with extra arguments.
    fn create(&self, name: &str, extra: &[&str]) -> PathBuf {
        let a = self.path(name);
        let mut args = vec!["c", "-f", p(&a), "-C", p(&self.src), "--chunk-size", "4096"];
        args.extend_from_slice(extra);
        args.push("tree");
        ok(&args);
        a
    }
}

/// Nested and empty directories, empty files, Unicode names, multi-chunk
/// text and binary files, relative symlinks inside the tree, hard links,
/// assorted modes and nanosecond mtimes.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let t = src.join("tree");
    let mut rng = Rng::new(2024);
    fs::create_dir_all(t.join("empty-dir")).unwrap();
    fs::create_dir_all(t.join("nested/a/b/c/empty")).unwrap();
    write_file(&t.join("empty.txt"), b"", 0o644);
    write_file(&t.join("nested/a/b/c/deep.txt"), b"deep\n", 0o644);
    write_file(&t.join("text.txt"), &common::text(40_000, 1), 0o644); // ~10 chunks, zstd
    write_file(&t.join("random.bin"), &rng.bytes(30_001), 0o600); // 8 chunks, stored
    let mut mixed = common::text(5000, 2);
    mixed.extend_from_slice(&rng.bytes(5000));
    write_file(&t.join("nested/mixed.dat"), &mixed, 0o640);
    write_file(
        &t.join("файл ü 日本 🦀.txt"),
        "unicode names\n".as_bytes(),
        0o644,
    );
    write_file(&t.join("nested/é/ß.txt"), b"more", 0o664);
    write_file(&t.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write_file(&t.join("setuid"), b"suid", 0o4755);
    write_file(&t.join("obj.o"), b"\x7fELF object", 0o644);
    write_file(&t.join("nested/a/x.o"), b"\x7fELF object", 0o644);
    write_file(&t.join("with space"), b" ", 0o644);
    write_file(&t.join(".hidden"), b"h", 0o644);
    std::os::unix::fs::symlink("nested/a/b/c/deep.txt", t.join("link-to-deep")).unwrap();
    std::os::unix::fs::symlink("../../text.txt", t.join("nested/a/up")).unwrap();
    std::os::unix::fs::symlink("nested", t.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("dirlink/a/b/c/deep.txt", t.join("via-dirlink")).unwrap();
    fs::hard_link(t.join("text.txt"), t.join("nested/hard-text")).unwrap();
    fs::hard_link(t.join("run.sh"), t.join("nested/a/hard-run")).unwrap();
    fs::hard_link(t.join("empty.txt"), t.join("hard-empty")).unwrap();
    set_mode(&t.join("nested/a/b"), 0o700);
    set_mode(&t.join("empty-dir"), 0o555);
    common::fix_mtimes(&t, 1_234_567_890_000_000_000);
    Fixture { tmp, src }
}

/// Archive paths of everything under the tree, as `lza list` prints them.
fn archive_paths(f: &Fixture) -> BTreeSet<String> {
    let mut all = Vec::new();
    common::walk(&f.tree(), &mut all);
    all.iter()
        .map(|x| {
            x.strip_prefix(&f.src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn roundtrip_by_file() {
    let f = fixture();
    let a = f.create("a.lza", &[]);
    let out = f.path("out");
    ok(&["x", "-f", p(&a), "-C", p(&out)]);
    assert_same_tree(&f.tree(), &out.join("tree"));
    assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
    ok(&["verify", "-f", p(&a)]);
}

#[test]
fn roundtrip_by_pipe_matches_file() {
    let f = fixture();
    let a = f.create("a.lza", &["-T", "3", "--index"]);
    let out = f.path("out");
    let mut c = Command::new(LZA)
        .args([
            "c",
            "-f",
            "-",
            "-C",
            p(&f.src),
            "--chunk-size",
            "4096",
            "tree",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let x = Command::new(LZA)
        .args(["x", "-f", "-", "-C", p(&out)])
        .stdin(Stdio::from(c.stdout.take().unwrap()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let c = c.wait_with_output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert_same_tree(&f.tree(), &out.join("tree"));

    // The bytes on the pipe are the bytes of the file.
    let piped = Command::new(LZA)
        .args([
            "c",
            "-f",
            "-",
            "-C",
            p(&f.src),
            "--chunk-size",
            "4096",
            "tree",
        ])
        .output()
        .unwrap();
    assert!(piped.status.success());
    // A file gets a trailing index (format-spec 13) with --index, a pipe
    // none; with --no-index the file holds the pipe's bytes.
    let no_index = f.create("n.lza", &["-T", "3", "--no-index"]);
    assert!(
        piped.stdout == fs::read(&no_index).unwrap(),
        "pipe and file archives differ"
    );
    let filed = fs::read(&a).unwrap();
    let idx = lza::container::index::ArchiveIndex::open(&filed[..])
        .unwrap()
        .expect("an archive file made with --index has an index");
    assert_eq!(idx.members.len(), 1);
    let end = idx.members[0].end_offset as usize + lza::format::END_LEN;
    // The version field (8..10) and the header CRC (36..40) aside.
    assert_eq!(filed[10..36], piped.stdout[10..36]);
    assert_eq!(filed[40..end], piped.stdout[40..]);
    // list through the index equals list front to back (from the pipe).
    let by_index = ok(&["t", p(&a)]).stdout;
    let mut child = Command::new(LZA)
        .args(["t", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let bytes = filed.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
    let streamed = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(streamed.status.success());
    assert_eq!(by_index, streamed.stdout);

    // Reading from a pipe: list and verify take stdin.
    for cmd in ["t", "verify"] {
        let mut child = Command::new(LZA)
            .args([cmd, "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = fs::read(&a).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(o.status.success(), "{cmd} from stdin");
    }
}

/// By default a file archive gets its index only where the index costs at
/// most 1% of it: not on a tree of tiny files (16 bytes per file against
/// their solid block's few), but on a file of a few chunks; `--index`
/// writes it whatever it costs, and the archive otherwise holds the same
/// bytes as with `--no-index`.
#[test]
fn index_by_default_only_where_it_costs_little() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("tiny")).unwrap();
    for i in 0..300 {
        fs::write(src.join(format!("tiny/f{i:03}")), format!("file {i}\n")).unwrap();
    }
    fs::write(src.join("noise"), Rng::new(5).bytes(200_000)).unwrap();
    let make = |name: &str, input: &str, extra: &[&str]| {
        let a = tmp.path().join(name);
        let mut args = vec!["c", "-m", "zstd", "-f", p(&a), "-C", p(&src)];
        args.extend_from_slice(extra);
        args.push(input);
        ok(&args);
        fs::read(a).unwrap()
    };
    let index = |b: &[u8]| lza::container::index::ArchiveIndex::open(b).unwrap();
    for (input, kept) in [("tiny", false), ("noise", true)] {
        let plain = make(&format!("{input}-n.lza"), input, &["--no-index"]);
        let forced = make(&format!("{input}-i.lza"), input, &["--index"]);
        let default = make(&format!("{input}.lza"), input, &[]);
        assert!(index(&plain).is_none() && index(&forced).is_some());
        let cost = forced.len() - plain.len();
        assert_eq!(
            cost * 100 <= plain.len(),
            kept,
            "{input}: index {cost} B of {}",
            plain.len()
        );
        assert_eq!(index(&default).is_some(), kept, "{input}");
        assert!(default == if kept { forced } else { plain }, "{input}");
    }
}

#[test]
fn thread_count_does_not_change_the_archive() {
    let f = fixture();
    let a1 = f.create("t1.lza", &["-T", "1"]);
    let a7 = f.create("t7.lza", &["-T", "7"]);
    let (b1, b7) = (fs::read(a1).unwrap(), fs::read(a7).unwrap());
    assert!(b1.len() > 40_000, "{} bytes", b1.len());
    assert!(b1 == b7, "-T 1 and -T 7 archives differ");
    // Extraction with many threads gives the same tree.
    let out = f.path("out");
    ok(&["x", "-T", "7", "-f", p(&f.path("t7.lza")), "-C", p(&out)]);
    assert_same_tree(&f.tree(), &out.join("tree"));
}

#[test]
fn list_names_every_entry() {
    let f = fixture();
    let a = f.create("a.lza", &[]);
    let want = archive_paths(&f);
    let plain = ok(&["t", "-f", p(&a)]);
    let lines: Vec<&str> = std::str::from_utf8(&plain.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), want.len());
    assert_eq!(
        lines.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        want
    );
    // Parents come before children (a sorted walk).
    assert_eq!(lines[0], "tree");

    // (in UTC: times are local, as tar prints them)
    let long = Command::new(LZA)
        .args(["list", "-v", "-f", p(&a)])
        .env("TZ", "UTC0")
        .output()
        .unwrap();
    assert!(long.status.success());
    let text = String::from_utf8(long.stdout).unwrap();
    let mut named = BTreeSet::new();
    let mut lines = text.lines().collect::<Vec<_>>();
    // Then the totals and the model.
    assert!(lines.pop().unwrap().starts_with("model: "), "{text}");
    assert!(lines.pop().unwrap().starts_with("total: "), "{text}");
    for line in lines {
        // "drwxr-xr-x  0  -  -  -  2009-02-13 23:31 tree": mode, size,
        // compressed size, ratio, codec, date, time, name
        let (mode, mut rest) = line.split_at(10);
        let mut next = || {
            let (tok, r) = rest.trim_start().split_once(' ').unwrap();
            rest = r;
            tok
        };
        let size: u64 = next().parse().unwrap();
        let (csize, ratio, codec) = (next(), next(), next());
        let (date, time) = (next(), next());
        let name = rest;
        if mode.starts_with('-') && codec.starts_with("solid:") {
            // a file of a solid block: its data is coded with the block's
            assert_eq!((csize, ratio), ("-", "-"), "{line}");
        } else if mode.starts_with('-') && size > 0 {
            let c: u64 = csize.parse().unwrap();
            assert!(c > 0 && ratio.ends_with('%'), "{line}");
            assert!(
                ["stored", "zstd", "cm", "cm+lm", "lm"]
                    .iter()
                    .any(|k| codec.contains(k)),
                "{line}"
            );
        } else {
            assert_eq!((csize, ratio, codec), ("-", "-", "-"), "{line}");
        }
        let (path, kind) = if let Some((p, target)) = name.split_once(" -> ") {
            let on_disk = fs::read_link(f.src.join(p)).unwrap();
            assert_eq!(Path::new(target), on_disk, "{line}");
            (p, 'l')
        } else if let Some((p, _)) = name.split_once(" link to ") {
            (p, 'h')
        } else {
            let md = fs::symlink_metadata(f.src.join(name)).unwrap();
            assert_eq!(size, if md.is_dir() { 0 } else { md.len() }, "{line}");
            (name, if md.is_dir() { 'd' } else { '-' })
        };
        assert_eq!(mode.chars().next(), Some(kind), "{line}");
        let md = fs::symlink_metadata(f.src.join(path)).unwrap();
        if kind != 'l' {
            let bits = md.mode() & 0o777;
            let want: String = (0..9)
                .map(|i| {
                    if bits & (0o400 >> i) != 0 {
                        "rwx".as_bytes()[i % 3] as char
                    } else {
                        '-'
                    }
                })
                .collect();
            assert_eq!(&mode[1..], want, "{line}");
        }
        assert_eq!(format!("{date} {time}"), utc_minute(md.mtime()), "{line}");
        named.insert(path.to_string());
    }
    assert_eq!(named, want);
    assert!(
        text.contains("-rw------- "),
        "mode of random.bin missing:\n{text}"
    );
}

/// `YYYY-MM-DD HH:MM` in UTC, from date(1), an implementation independent
/// of lza's.
fn utc_minute(secs: i64) -> String {
    let o = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%d %H:%M"])
        .output()
        .expect("date(1)");
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn verify_accepts_good_and_rejects_bad() {
    let f = fixture();
    let a = f.create("a.lza", &[]);
    let out = ok(&["verify", "-v", "-f", p(&a)]);
    let names: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(names, archive_paths(&f));
    let mut bytes = fs::read(&a).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let bad = f.path("bad.lza");
    fs::write(&bad, &bytes).unwrap();
    let o = lza(&["verify", "-f", p(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("lza: "));
}

#[test]
fn exclude_leaves_out_matches() {
    let f = fixture();
    let a = f.create("a.lza", &["--exclude", "*.o"]);
    let listed = String::from_utf8(ok(&["t", "-f", p(&a)]).stdout).unwrap();
    let want: BTreeSet<String> = archive_paths(&f)
        .into_iter()
        .filter(|x| !x.ends_with(".o"))
        .collect();
    assert_eq!(
        listed.lines().map(String::from).collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(want.len(), archive_paths(&f).len() - 2);
    let out = f.path("out");
    ok(&["x", "-f", p(&a), "-C", p(&out)]);
    assert!(!out.join("tree/obj.o").exists());
    assert!(!out.join("tree/nested/a/x.o").exists());
    assert!(out.join("tree/nested/a/b/c/deep.txt").exists());
}

#[test]
fn extract_does_not_overwrite_without_flag() {
    let f = fixture();
    let a = f.create("a.lza", &[]);
    let out = f.path("out");
    ok(&["x", "-f", p(&a), "-C", p(&out)]);
    let victim = out.join("tree/text.txt");
    fs::write(&victim, b"local changes").unwrap();
    common::set_mtime(&victim, 42);
    let o = lza(&["x", "-f", p(&a), "-C", p(&out)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("lza: ") && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(fs::read(&victim).unwrap(), b"local changes");
    assert_eq!(common::mtime_ns(&fs::metadata(&victim).unwrap()), 42);
    assert!(common::tmp_leftovers(&out).is_empty());

    ok(&["x", "--overwrite", "-f", p(&a), "-C", p(&out)]);
    assert_same_tree(&f.tree(), &out.join("tree"));
    assert!(common::tmp_leftovers(&out).is_empty());
}

#[test]
fn extract_one_file_over_existing_leaves_it_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(&tmp.path().join("src/f"), b"archived", 0o644);
    let a = tmp.path().join("a.lza");
    ok(&["c", "-f", p(&a), "-C", p(&tmp.path().join("src")), "f"]);
    let out = tmp.path().join("out");
    write_file(&out.join("f"), b"precious", 0o600);
    let o = lza(&["x", "-f", p(&a), "-C", p(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read(out.join("f")).unwrap(), b"precious");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        1,
        "a temporary file was left"
    );
    ok(&["x", "--overwrite", "-f", p(&a), "-C", p(&out)]);
    assert_eq!(fs::read(out.join("f")).unwrap(), b"archived");
}

#[test]
fn create_does_not_overwrite_archive_without_flag() {
    let f = fixture();
    let a = f.path("a.lza");
    fs::write(&a, b"keep me").unwrap();
    let o = lza(&["c", "-f", p(&a), "-C", p(&f.src), "tree"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(fs::read(&a).unwrap(), b"keep me");
    // No temporary archive left next to it.
    let names: Vec<_> = fs::read_dir(f.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    ok(&["c", "--overwrite", "-f", p(&a), "-C", p(&f.src), "tree"]);
    ok(&["verify", "-f", p(&a)]);
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.lza");
    for args in [
        &[][..],
        &["bogus"],
        &["c", "-f", p(&a)],
        &["c", "-f", p(&a), "-l", "0", "."],
        &["c", "-f", p(&a), "-l", "10", "."],
        &["x", "--no-such-flag"],
        &["t", "-T", "2"],
        &["verify", "-T", "many"],
    ] {
        let o = lza(args);
        assert_eq!(
            o.status.code(),
            Some(2),
            "lza {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!o.stderr.is_empty());
    }
    assert!(!a.exists());
    // Runtime errors are 1.
    let o = lza(&[
        "x",
        "-f",
        p(&tmp.path().join("missing.lza")),
        "-C",
        p(tmp.path()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("lza: "));
}

#[test]
fn closed_stdout_exits_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let long = "n".repeat(150);
    for i in 0..2500 {
        write_file(&src.join(format!("d{}/{long}-{i:05}", i % 10)), b"", 0o644);
    }
    let a = tmp.path().join("big.lza");
    ok(&["c", "-f", p(&a), "-C", p(&src), "."]);
    for args in [
        vec!["t", "-f", p(&a)],
        vec!["t", "-v", "-f", p(&a)],
        vec!["verify", "-v", "-f", p(&a)],
    ] {
        let mut child = Command::new(LZA)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // like `| head -c0`
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            !err.contains("lza:") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        assert!(status.success(), "{args:?}: {status}");
    }
    // Creating into a closed pipe.
    let mut child = Command::new(LZA)
        .args(["c", "-f", "-", "-C", p(&src), "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("lza:") && !err.contains("panicked"), "{err}");
    assert!(o.status.success(), "{}", o.status);
}

#[test]
fn unknown_model_is_refused_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = common::spec::Builder::with_header(common::spec::HeaderSpec {
        model_hash: [0x5A; 16],
        ..Default::default()
    });
    b.file("f.txt", b"text");
    let a = tmp.path().join("lm.lza");
    fs::write(&a, b.finish()).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let o = lza(&["x", "-f", p(&a), "-C", p(&out)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&"5a".repeat(16)), "{err}");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    // list needs no model.
    let listed = ok(&["t", "-f", p(&a)]);
    assert_eq!(listed.stdout, b"f.txt\n");
}

#[test]
fn refused_archive_does_not_create_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = common::spec::Builder::with_header(common::spec::HeaderSpec {
        model_hash: [0x5A; 16],
        ..Default::default()
    });
    b.file("f.txt", b"text");
    let a = tmp.path().join("lm.lza");
    fs::write(&a, b.finish()).unwrap();
    let out = tmp.path().join("new-dir");
    let o = lza(&["x", "-f", p(&a), "-C", p(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !out.exists(),
        "the destination was created for an archive that is refused"
    );
}

#[test]
fn inputs_with_dotdot_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_file(&tmp.path().join("src/f"), b"x", 0o644);
    fs::create_dir(tmp.path().join("work")).unwrap();
    let a = tmp.path().join("a.lza");
    let o = lza(&[
        "c",
        "-f",
        p(&a),
        "-C",
        p(&tmp.path().join("work")),
        "../src/f",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(".."));
    assert!(!a.exists());
}
