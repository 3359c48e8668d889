//! What tar, zstd and 7-Zip users expect of the `lza` command line, and
//! the extraction rules for existing directories, escaped names, verify
//! and links: each behaviour with its exact output where it matters.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{set_mode, write_file};

const LZA: &str = env!("CARGO_BIN_EXE_lza");

/// Runs lza in `dir` with `args` (and `TZ`, when given).
fn run_in(dir: &Path, args: &[&str], tz: Option<&str>) -> Output {
    let mut c = Command::new(LZA);
    c.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("LZA_KERNEL")
        .env("LZA_MODEL_PATH", "")
        .env("HOME", "/nonexistent");
    if let Some(tz) = tz {
        c.env("TZ", tz);
    }
    c.output().expect("run lza")
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn ok_in(dir: &Path, args: &[&str]) -> Output {
    let o = run_in(dir, args, None);
    assert!(
        o.status.success(),
        "lza {args:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A work directory with `tree/`: `a.txt`, `sub/b.txt`, `sub/deep/c.txt`,
/// `docs/d.md`, `x/docs/e.md`, mtimes fixed.
fn work() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let t = d.path().join("tree");
    write_file(&t.join("a.txt"), b"alpha\n", 0o644);
    write_file(&t.join("sub/b.txt"), b"bravo\n", 0o644);
    write_file(&t.join("sub/deep/c.txt"), b"charlie\n", 0o600);
    write_file(&t.join("docs/d.md"), b"delta\n", 0o644);
    write_file(&t.join("x/docs/e.md"), b"echo\n", 0o644);
    common::fix_mtimes(&t, 1_700_000_000_000_000_000);
    d
}

fn listing(dir: &Path, archive: &str) -> Vec<String> {
    text(&ok_in(dir, &["t", archive]).stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// [`listing`] in byte order (an archive lists the small files of its
/// solid blocks after the directories).
fn sorted_listing(dir: &Path, archive: &str) -> Vec<String> {
    let mut l = listing(dir, archive);
    l.sort();
    l
}

#[test]
fn archive_as_positional_argument() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "-m", "zstd", "tree"]);
    let by_flag = ok_in(w, &["t", "-f", "a.lza"]).stdout;
    assert_eq!(ok_in(w, &["t", "a.lza"]).stdout, by_flag);
    assert_eq!(ok_in(w, &["list", "a.lza"]).stdout, by_flag);
    ok_in(w, &["verify", "a.lza"]);
    ok_in(w, &["x", "a.lza", "-C", "out"]);
    common::assert_same_tree(&w.join("tree"), &w.join("out/tree"));
    // With -f, every positional argument is a member.
    ok_in(w, &["x", "-f", "a.lza", "-C", "out2", "tree/a.txt"]);
    assert_eq!(
        common::snapshot(&w.join("out2")),
        ["d tree", "f tree/a.txt"]
    );
    // verify takes one archive.
    let o = run_in(w, &["verify", "-f", "a.lza", "b.lza"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: b.lza: unexpected argument (the archive is given with -f)\n"
    );
}

#[test]
fn level_flags_as_zstd_users_type_them() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "l9.lza", "-m", "zstd", "-l", "9", "tree"]);
    ok_in(w, &["c", "-9", "-f", "d9.lza", "-m", "zstd", "tree"]);
    ok_in(w, &["c", "-f", "d1.lza", "-m", "zstd", "-1", "tree"]);
    assert_eq!(
        fs::read(w.join("l9.lza")).unwrap(),
        fs::read(w.join("d9.lza")).unwrap()
    );
    let levels = "lza's levels are 1 (fast) to 9 (small), as -1 ... -9 or -l N; \
                  they pick zstd levels 1, 3, 5, 7, 9, 12, 15, 17, 19 (zstd -19 is lza -9)";
    let o = run_in(w, &["c", "-19", "-f", "x.lza", "tree"], None);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        format!("lza: -19: no such level; {levels}\n")
    );
    let o = run_in(w, &["c", "-l", "19", "-f", "x.lza", "tree"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains(levels), "{}", text(&o.stderr));
    assert!(!w.join("x.lza").exists());
}

#[test]
fn exclude_is_unanchored_as_gnu_tar() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "--exclude", "docs/*", "tree"]);
    assert_eq!(
        sorted_listing(w, "a.lza"),
        [
            "tree",
            "tree/a.txt",
            "tree/docs",
            "tree/sub",
            "tree/sub/b.txt",
            "tree/sub/deep",
            "tree/sub/deep/c.txt",
            "tree/x",
            "tree/x/docs"
        ]
    );
    // A name excludes that entry wherever it is, with what is below it.
    ok_in(
        w,
        &[
            "c",
            "-f",
            "b.lza",
            "--exclude",
            "docs",
            "--exclude",
            "*.txt",
            "tree",
        ],
    );
    assert_eq!(
        sorted_listing(w, "b.lza"),
        ["tree", "tree/sub", "tree/sub/deep", "tree/x"]
    );
    // Anchored patterns still work.
    ok_in(w, &["c", "-f", "c.lza", "--exclude", "tree/sub", "tree"]);
    assert!(!sorted_listing(w, "c.lza").iter().any(|l| l.contains("sub")));
}

#[test]
fn dotdot_inputs_suggest_dash_c() {
    let d = work();
    let w = d.path().join("tree/sub");
    let o = run_in(&w, &["c", "-f", "../../a.lza", "../docs"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: ../docs: paths with '..' cannot be archived; archive it from the directory above with -C: -C .. docs\n"
    );
    let o = run_in(&w, &["c", "-f", "../../a.lza", "deep/../b.txt"], None);
    assert_eq!(
        text(&o.stderr),
        "lza: deep/../b.txt: paths with '..' cannot be archived; use -C DIR to start from a directory that holds it\n"
    );
    assert!(!d.path().join("a.lza").exists());
}

#[test]
fn io_errors_are_printed_once_and_without_temporary_names() {
    let d = work();
    let w = d.path();
    let o = run_in(w, &["c", "-f", "a.lza", "missing"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: missing: No such file or directory (os error 2)\n"
    );
    let o = run_in(w, &["c", "-f", "nodir/a.lza", "tree"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: nodir/a.lza: cannot create the archive: nodir: No such file or directory (os error 2)\n"
    );
    let o = run_in(w, &["x", "missing.lza"], None);
    assert_eq!(
        text(&o.stderr),
        "lza: missing.lza: cannot open: No such file or directory (os error 2)\n"
    );
}

/// `lt/` with an absolute link, an escaping link, a good relative link, a
/// private directory and a file.
fn link_tree(w: &Path) {
    let t = w.join("lt");
    write_file(&t.join("sub/f"), b"file\n", 0o644);
    std::os::unix::fs::symlink("/etc/hostname", t.join("abs")).unwrap();
    std::os::unix::fs::symlink("sub/f", t.join("rel")).unwrap();
    std::os::unix::fs::symlink("../../../x", t.join("sub/esc")).unwrap();
    set_mode(&t.join("sub"), 0o750);
}

#[test]
fn links_that_leave_the_destination_are_skipped_not_fatal() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    link_tree(w);
    let o = ok_in(w, &["c", "-f", "l.lza", "lt"]);
    assert_eq!(
        text(&o.stderr),
        "lza: lt/abs: symlink target \"/etc/hostname\" is absolute; lza x will skip this link (unless --absolute-links)\n\
         lza: lt/sub/esc: symlink target \"../../../x\" points outside the destination; lza x will skip this link\n"
    );
    // verify names what extraction would refuse.
    let o = run_in(w, &["verify", "l.lza"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: lt/abs: symlink target \"/etc/hostname\" is absolute; lza x would skip this link\n\
         lza: lt/sub/esc: symlink target \"../../../x\" points outside the destination; lza x would skip this link\n\
         lza: the data checks out, but extraction would skip 2 links (see above)\n"
    );
    // Extraction: everything else, directory modes set, exit 1 with a count.
    let o = run_in(w, &["x", "l.lza", "-C", "out"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: unsafe entry \"lt/abs\": symlink target \"/etc/hostname\" is absolute\n\
         lza: unsafe entry \"lt/sub/esc\": symlink target \"../../../x\" points outside the destination\n\
         lza: 2 entries not extracted (see above)\n"
    );
    assert_eq!(
        common::snapshot(&w.join("out")),
        ["d lt", "l lt/rel", "d lt/sub", "f lt/sub/f"]
    );
    assert_eq!(
        fs::read_link(w.join("out/lt/rel")).unwrap(),
        Path::new("sub/f")
    );
    let mode = |p: &str| fs::symlink_metadata(w.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("out/lt/sub"), 0o750);
    // --absolute-links: the absolute one too (never the escaping one).
    let o = run_in(w, &["x", "l.lza", "-C", "out2", "--absolute-links"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: unsafe entry \"lt/sub/esc\": symlink target \"../../../x\" points outside the destination\n\
         lza: 1 entry not extracted (see above)\n"
    );
    assert_eq!(
        fs::read_link(w.join("out2/lt/abs")).unwrap(),
        Path::new("/etc/hostname")
    );
    let o = run_in(w, &["verify", "--absolute-links", "l.lza"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(!text(&o.stderr).contains("lt/abs"));
}

#[test]
fn directory_modes_are_restored_when_extraction_stops_on_corruption() {
    let d = work();
    let w = d.path();
    set_mode(&w.join("tree/sub"), 0o750);
    ok_in(w, &["c", "-f", "a.lza", "-m", "zstd", "tree"]);
    let mut bytes = fs::read(w.join("a.lza")).unwrap();
    // Corrupt the last file's data (x/docs/e.md, stored): the stream
    // checksum fails at the end, after every directory was made.
    let n = bytes.len();
    bytes[n - 60] ^= 1;
    fs::write(w.join("bad.lza"), &bytes).unwrap();
    let o = run_in(w, &["x", "bad.lza", "-C", "out"], None);
    assert_eq!(o.status.code(), Some(1));
    let mode = fs::metadata(w.join("out/tree/sub")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o750, "{}", text(&o.stderr));
}

#[test]
fn existing_directories_keep_their_mode_unless_overwriting() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "tree"]);
    let out = w.join("out");
    fs::create_dir_all(out.join("tree/sub")).unwrap();
    set_mode(&out.join("tree"), 0o700);
    set_mode(&out.join("tree/sub"), 0o1777);
    ok_in(w, &["x", "a.lza", "-C", "out"]);
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("tree"), 0o700);
    assert_eq!(mode("tree/sub"), 0o1777);
    // New directories get the archive's.
    assert_eq!(mode("tree/docs"), 0o755);
    ok_in(w, &["x", "a.lza", "-C", "out", "--overwrite"]);
    assert_eq!(mode("tree"), 0o755);
    assert_eq!(mode("tree/sub"), 0o755);
}

#[test]
fn names_are_printed_escaped_one_line_each() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let t = w.join("n");
    for name in ["a\nb", "\u{1b}[31mred\u{7}", "x\u{202E}txt.exe"] {
        write_file(&t.join(name), b"x", 0o644);
    }
    std::os::unix::fs::symlink("t\na\u{9b}rget", t.join("link")).unwrap();
    ok_in(w, &["c", "-f", "n.lza", "n"]);
    let want = [
        "n",
        "n/\\e[31mred\\a",
        "n/a\\nb",
        "n/link",
        "n/x\\u{202E}txt.exe",
    ];
    assert_eq!(sorted_listing(w, "n.lza"), want);
    let long = text(&ok_in(w, &["t", "-v", "n.lza"]).stdout);
    // One line per entry, then the totals and the model.
    assert_eq!(long.lines().count(), want.len() + 2, "{long}");
    assert!(long.contains("n/link -> t\\na\\x9Brget\n"), "{long}");
    assert!(!long.contains(['\u{1b}', '\u{7}', '\u{202E}', '\u{9b}']));
    let sorted = |o: std::process::Output| {
        let mut l: Vec<String> = text(&o.stdout).lines().map(String::from).collect();
        l.sort();
        l
    };
    assert_eq!(sorted(ok_in(w, &["x", "-v", "n.lza", "-C", "out"])), want);
    assert_eq!(sorted(ok_in(w, &["verify", "-v", "n.lza"])), want);
    // Errors name them escaped too.
    let o = run_in(w, &["x", "n.lza", "-C", "out"], None);
    assert!(
        text(&o.stderr).contains("out/n/a\\nb: already exists"),
        "{}",
        text(&o.stderr)
    );
    assert!(!o.stderr.contains(&0x1b));
}

#[test]
fn member_selection_and_wildcards() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "tree"]);
    ok_in(w, &["x", "a.lza", "-C", "o1", "tree/sub", "./tree/a.txt"]);
    assert_eq!(
        common::snapshot(&w.join("o1")),
        [
            "d tree",
            "f tree/a.txt",
            "d tree/sub",
            "f tree/sub/b.txt",
            "d tree/sub/deep",
            "f tree/sub/deep/c.txt"
        ]
    );
    assert_eq!(
        fs::read(w.join("o1/tree/sub/deep/c.txt")).unwrap(),
        b"charlie\n"
    );
    ok_in(w, &["x", "a.lza", "-C", "o2", "--wildcards", "tree/*.md"]);
    assert_eq!(
        common::snapshot(&w.join("o2")),
        [
            "d tree",
            "d tree/docs",
            "f tree/docs/d.md",
            "d tree/x",
            "d tree/x/docs",
            "f tree/x/docs/e.md"
        ]
    );
    // Names that select nothing: the rest is extracted, exit 1.
    let o = run_in(
        w,
        &["x", "a.lza", "-C", "o3", "tree/a.txt", "tree/nope"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: tree/nope: not found in archive\nlza: 1 member name not found (see above)\n"
    );
    assert!(w.join("o3/tree/a.txt").exists());
    // Listing takes members too.
    let o = ok_in(w, &["t", "a.lza", "tree/x"]);
    assert_eq!(text(&o.stdout), "tree/x\ntree/x/docs\ntree/x/docs/e.md\n");
}

#[test]
fn to_stdout_and_strip_components() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "tree"]);
    let o = ok_in(w, &["x", "-O", "a.lza", "tree/sub", "tree/a.txt"]);
    assert_eq!(text(&o.stdout), "alpha\nbravo\ncharlie\n");
    // -v names go to stderr when the data goes to stdout.
    let o = ok_in(w, &["x", "-Ov", "a.lza", "tree/a.txt"]);
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        ("alpha\n".into(), "tree/a.txt\n".into())
    );
    ok_in(
        w,
        &[
            "x",
            "a.lza",
            "-C",
            "s",
            "--strip-components",
            "2",
            "tree/sub",
        ],
    );
    assert_eq!(
        common::snapshot(&w.join("s")),
        ["f b.txt", "d deep", "f deep/c.txt"]
    );
}

#[test]
fn hard_links_to_unselected_files_are_reported() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    write_file(&w.join("h/a/f"), b"data", 0o644);
    fs::create_dir(w.join("h/b")).unwrap();
    fs::hard_link(w.join("h/a/f"), w.join("h/b/g")).unwrap();
    ok_in(w, &["c", "-f", "h.lza", "h"]);
    let o = run_in(w, &["x", "h.lza", "-C", "out", "h/b"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: unsafe entry \"h/b/g\": hard link target \"h/a/f\" is not extracted (select it too)\n\
         lza: 1 entry not extracted (see above)\n"
    );
    ok_in(w, &["x", "h.lza", "-C", "out2", "--strip-components", "1"]);
    let (f, g) = (
        fs::metadata(w.join("out2/a/f")).unwrap(),
        fs::metadata(w.join("out2/b/g")).unwrap(),
    );
    assert_eq!(f.ino(), g.ino());
}

#[test]
fn existing_files_are_kept_and_the_rest_extracted() {
    let d = work();
    let w = d.path();
    ok_in(w, &["c", "-f", "a.lza", "tree"]);
    write_file(&w.join("out/tree/sub/b.txt"), b"mine", 0o600);
    let o = run_in(w, &["x", "a.lza", "-C", "out"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "lza: out/tree/sub/b.txt: already exists (use --overwrite to replace it)\n\
         lza: 1 entry not extracted (see above)\n"
    );
    assert_eq!(fs::read(w.join("out/tree/sub/b.txt")).unwrap(), b"mine");
    assert_eq!(fs::read(w.join("out/tree/x/docs/e.md")).unwrap(), b"echo\n");
    // Now every file is there: -k reports each, and exits 1.
    let o = run_in(w, &["x", "-k", "a.lza", "-C", "out"], None);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 6, "{err}");
    assert!(
        err.ends_with("lza: 5 entries not extracted (see above)\n"),
        "{err}"
    );
    let o = ok_in(w, &["x", "--skip-old-files", "a.lza", "-C", "out"]);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
    assert_eq!(fs::read(w.join("out/tree/sub/b.txt")).unwrap(), b"mine");
    let o = run_in(w, &["x", "-k", "--overwrite", "a.lza", "-C", "out"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn long_listing_in_local_time_with_sizes_ratio_and_codec() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let t = w.join("t");
    let mut rng = common::Rng::new(7);
    write_file(&t.join("r.bin"), &rng.bytes(3000), 0o640);
    write_file(&t.join("empty"), b"", 0o644);
    std::os::unix::fs::symlink("r.bin", t.join("l")).unwrap();
    fs::hard_link(t.join("r.bin"), t.join("z")).unwrap();
    // 2023-11-14 22:13:20 UTC
    for p in ["t/r.bin", "t/z", "t/empty", "t/l", "t"] {
        common::set_mtime(&w.join(p), 1_700_000_000_000_000_000);
    }
    // (every file on its own: its own compressed size and codec)
    ok_in(
        w,
        &["c", "-f", "t.lza", "-m", "zstd", "--block-size", "0", "t"],
    );
    let len = fs::metadata(w.join("t.lza")).unwrap().len();
    let o = run_in(w, &["t", "-v", "t.lza"], Some("<+0530>-5:30"));
    assert!(o.status.success());
    let csize = (3000 + lza::format::FRAME_HEADER_LEN).to_string();
    // mode, size, compressed size, ratio, codec, time (+05:30), name
    let line = |m: &str, size: &str, c: &str, r: &str, codec: &str, name: &str| {
        format!("{m} {size:>12} {c:>12} {r:>6} {codec:<10} 2023-11-15 03:43 {name}\n")
    };
    let want = [
        line("drwxr-xr-x", "0", "-", "-", "-", "t"),
        line("-rw-r--r--", "0", "-", "-", "-", "t/empty"),
        line("lrwxrwxrwx", "0", "-", "-", "-", "t/l -> r.bin"),
        line("-rw-r-----", "3000", &csize, "100.8%", "stored", "t/r.bin"),
        line("hrw-r-----", "0", "-", "-", "-", "t/z link to t/r.bin"),
        format!(
            "total: 5 entries, 2 files, 3000 -> {len} ({:.1}%)\n",
            100.0 * len as f64 / 3000.0
        ),
        "model: none needed\n".into(),
    ]
    .concat();
    assert_eq!(text(&o.stdout), want);
    // Human sizes.
    let o = run_in(w, &["t", "-vh", "t.lza"], Some("UTC0"));
    let out = text(&o.stdout);
    assert!(
        out.contains(&format!(
            "-rw-r----- {:>12} {:>12} 100.8% stored     2023-11-14 22:13 t/r.bin\n",
            "2.9K", "3.0K"
        )),
        "{out}"
    );
    assert!(out.contains("total: 5 entries, 2 files, 2.9K -> "), "{out}");
    // `--help` still works (-h is the sizes).
    assert!(ok_in(w, &["t", "--help"]).stdout.starts_with(b"List"));
}

#[test]
fn listing_names_the_model_an_archive_needs() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    let embedded = lza::codecs::models::ModelFile::embedded().hash;
    for (hash, tail) in [
        (embedded.0, " (embedded in this build)".to_string()),
        (
            [0x5A; 16],
            " (not embedded in this build and not found: extracting needs --model FILE)".into(),
        ),
    ] {
        let mut b = common::spec::Builder::with_header(common::spec::HeaderSpec {
            model_hash: hash,
            ..Default::default()
        });
        b.file("f.txt", b"text");
        fs::write(w.join("m.lza"), b.finish()).unwrap();
        let out = text(&ok_in(w, &["t", "-v", "m.lza"]).stdout);
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert!(out.ends_with(&format!("model: {hex}{tail}\n")), "{out}");
    }
}

#[test]
fn summary_after_create_with_verbose() {
    let d = work();
    let w = d.path();
    let o = ok_in(w, &["c", "-v", "-f", "a.lza", "-m", "zstd", "tree/sub"]);
    // directories in walk order, then the small files of solid blocks
    assert_eq!(
        text(&o.stdout),
        "tree/sub\ntree/sub/deep\ntree/sub/b.txt\ntree/sub/deep/c.txt\n"
    );
    let err = text(&o.stderr);
    let len = fs::metadata(w.join("a.lza")).unwrap().len();
    let head = format!(
        "2 files, 14 B -> {len} B ({:.1}%), ",
        100.0 * len as f64 / 14.0
    );
    assert!(err.starts_with(&head) && err.ends_with("/s\n"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // Without -v, and not on a terminal: nothing.
    let o = ok_in(w, &["c", "-f", "b.lza", "-m", "zstd", "tree/sub"]);
    assert!(o.stderr.is_empty() && o.stdout.is_empty());
}

#[test]
fn completions_and_manual_page() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path();
    for (shell, mark) in [
        ("bash", "complete -F _lza"),
        ("zsh", "#compdef lza"),
        ("fish", "complete -c lza"),
    ] {
        let out = text(&ok_in(w, &["completions", shell]).stdout);
        assert!(out.contains(mark), "{shell}: {out}");
        assert!(out.contains("strip-components"), "{shell}");
    }
    let man = text(&ok_in(w, &["man"]).stdout);
    assert!(man.contains(".TH lza 1"), "{man}");
    ok_in(w, &["man", "--out-dir", "man"]);
    for page in [
        "lza.1",
        "lza-create.1",
        "lza-extract.1",
        "lza-list.1",
        "lza-verify.1",
    ] {
        assert!(w.join("man").join(page).is_file(), "{page}");
    }
}

/// The options `lza CMD --help` lists (but help and version), each as
/// (short, long).
fn help_options(cmd: &str) -> Vec<(Option<String>, String)> {
    let out = text(&ok_in(Path::new("."), &[cmd, "--help"]).stdout);
    let mut v = Vec::new();
    for line in out
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let mut short = None;
        let mut rest = line;
        if let Some((s, r)) = line.split_once(", ")
            && !s.starts_with("--")
        {
            short = Some(s.to_string());
            rest = r;
        }
        let long = rest.split_whitespace().next().unwrap().to_string();
        if long != "--help" && long != "--version" {
            v.push((short, long));
        }
    }
    v
}

/// The options a README usage line names: `-x` and `--long` tokens (not
/// `-`, `--` or the level flags `-1`..`-9`).
fn usage_options(line: &str) -> Vec<String> {
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with('-') && !w.trim_start_matches('-').is_empty())
        .filter(|w| !w[1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(String::from)
        .collect()
}

#[test]
fn readme_usage_matches_help() {
    let readme =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let usage: Vec<&str> = readme
        .lines()
        .skip_while(|l| *l != "## Usage")
        .take_while(|l| !l.starts_with("## How"))
        .filter(|l| l.starts_with("    lza "))
        .collect();
    assert_eq!(usage.len(), 7, "{usage:?}");
    for cmd in [
        "create",
        "extract",
        "list",
        "verify",
        "bench",
        "completions",
        "man",
    ] {
        let line = usage
            .iter()
            .find(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|w| w.split('|').next() == Some(cmd))
            })
            .unwrap_or_else(|| panic!("README usage has no line for {cmd}"));
        let named = usage_options(line);
        let help = help_options(cmd);
        // Every option of --help is in the README (as its short or long
        // form), and the README names no other.
        for (short, long) in &help {
            assert!(
                named.contains(long) || short.as_ref().is_some_and(|s| named.contains(s)),
                "README usage of {cmd} lacks {long}: {line}"
            );
        }
        for n in &named {
            assert!(
                help.iter()
                    .any(|(s, l)| l == n || s.as_deref() == Some(n.as_str())),
                "README usage of {cmd} names {n}, which --help does not: {line}"
            );
        }
    }
}

#[test]
fn level_map_in_help() {
    let out = text(&ok_in(Path::new("."), &["c", "--help"]).stdout);
    assert!(out.contains("also as -1 ... -9"), "{out}");
}
