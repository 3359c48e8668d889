//! What `create` does with inputs that change under it or that the format
//! cannot hold: files swapped for symbolic links, FIFOs or other files
//! after the walk, files that grow or shrink as they are read, names that
//! cannot be archived; and the temporary files that signals and the
//! file-size limit must not leave behind.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Collect, decode, tmp_leftovers};
use lza::archive::create::{self, CreateOptions, Method, Source, Warnings};

const LZA: &str = env!("CARGO_BIN_EXE_lza");

fn list(base: &Path, inputs: &[&str]) -> (Vec<Source>, Warnings) {
    let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
    let mut warnings = Warnings::default();
    let sources = create::collect_sources(
        base,
        &inputs,
        &create::exclude_set(&[]).unwrap(),
        &mut warnings,
    )
    .unwrap();
    (sources, warnings)
}

fn write(sources: &[Source], warnings: &mut Warnings) -> Collect {
    let opts = CreateOptions {
        chunk_size: 4096,
        method: Method::Zstd,
        ..CreateOptions::default()
    };
    let bytes = create::write_archive(
        Vec::new(),
        sources,
        &opts,
        &mut |_| {},
        &mut |_| {},
        warnings,
    )
    .unwrap();
    decode(&bytes).unwrap()
}

fn paths(c: &Collect) -> Vec<&str> {
    c.items.iter().map(|(e, _)| e.path.as_str()).collect()
}

fn data<'a>(c: &'a Collect, path: &str) -> &'a [u8] {
    &c.items.iter().find(|(e, _)| e.path == path).unwrap().1
}

/// A tree `t/` with `a` (large, written first) and `b`, and `secret`
/// outside it.
fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("t")).unwrap();
    fs::write(tmp.path().join("t/a"), vec![b'a'; 20_000]).unwrap();
    fs::write(tmp.path().join("t/b"), b"b's own bytes").unwrap();
    fs::write(tmp.path().join("secret"), b"SECRET contents").unwrap();
    tmp
}

#[test]
fn file_swapped_for_symlink_after_walk_is_not_followed() {
    let tmp = tree();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    assert!(w.messages.is_empty());
    let b = tmp.path().join("t/b");
    fs::remove_file(&b).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), &b).unwrap();
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/a"]);
    assert_eq!(w.skipped, 1, "{:?}", w.messages);
    assert!(w.messages[0].contains("symbolic link"), "{:?}", w.messages);
    assert!(c.items.iter().all(|(_, d)| !d.starts_with(b"SECRET")));
}

#[test]
fn directory_swapped_for_symlink_after_walk_is_not_followed() {
    let tmp = tree();
    fs::create_dir(tmp.path().join("t/d")).unwrap();
    fs::write(tmp.path().join("t/d/f"), b"f").unwrap();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    // t/d becomes a link to a directory holding the very same file (same
    // inode): only O_NOFOLLOW on the directory tells them apart
    fs::rename(tmp.path().join("t/d"), tmp.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("moved"), tmp.path().join("t/d")).unwrap();
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/a", "t/b", "t/d"]);
    assert_eq!(w.skipped, 1, "{:?}", w.messages);
}

#[test]
fn file_swapped_for_fifo_is_skipped_without_blocking() {
    let tmp = tree();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    let b = tmp.path().join("t/b");
    fs::remove_file(&b).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &b,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // (before O_NONBLOCK, this open never returned)
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/a"]);
    assert_eq!(w.skipped, 1);
    assert!(
        w.messages[0].contains("no longer a regular file"),
        "{:?}",
        w.messages
    );
}

#[test]
fn file_replaced_by_another_file_after_walk_is_skipped() {
    let tmp = tree();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    fs::write(tmp.path().join("new"), b"other").unwrap();
    fs::rename(tmp.path().join("new"), tmp.path().join("t/b")).unwrap();
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/a"]);
    assert!(
        w.messages[0].contains("replaced by another file"),
        "{:?}",
        w.messages
    );
}

#[test]
fn hard_link_to_a_skipped_file_is_skipped_too() {
    let tmp = tree();
    fs::hard_link(tmp.path().join("t/b"), tmp.path().join("t/c")).unwrap();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    fs::remove_file(tmp.path().join("t/b")).unwrap();
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/a"]);
    assert_eq!(w.skipped, 2, "{:?}", w.messages);
}

#[test]
fn file_that_grew_before_it_was_opened_is_archived_whole() {
    let tmp = tree();
    let (sources, mut w) = list(tmp.path(), &["t"]);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(tmp.path().join("t/b"))
        .unwrap();
    std::io::Write::write_all(&mut f, b" and more").unwrap();
    drop(f);
    let c = write(&sources, &mut w);
    assert!(w.messages.is_empty(), "{:?}", w.messages);
    assert_eq!(data(&c, "t/b"), b"b's own bytes and more");
}

/// `/proc` files have a size of 0 and bytes to read: the archived size is
/// what `fstat` said when the file was opened, and the bytes that follow
/// are reported as tar reports a file that grows as it is read.
#[test]
fn file_that_grows_as_it_is_read_is_reported() {
    let (sources, mut w) = list(Path::new("/proc/self"), &["status"]);
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["status"]);
    assert_eq!(w.changed, 1, "{:?}", w.messages);
    assert!(w.messages[0].contains("file changed as we read it"));
}

/// `/sys` files claim 4096 bytes and hold fewer: the rest is padded with
/// zeros, and said.
#[test]
fn file_that_shrinks_as_it_is_read_is_padded_and_reported() {
    let Some(f) = ["kernel/mm/transparent_hugepage/enabled", "kernel/profiling"]
        .into_iter()
        .find(|f| {
            let p = Path::new("/sys").join(f);
            fs::metadata(&p).is_ok_and(|m| m.len() == 4096)
                && fs::read(&p).is_ok_and(|d| d.len() < 4096)
        })
    else {
        eprintln!("no /sys file that shrinks on this machine: skipped");
        return;
    };
    let (sources, mut w) = list(Path::new("/sys"), &[f]);
    let c = write(&sources, &mut w);
    let got = data(&c, f);
    assert_eq!(got.len(), 4096);
    let real = fs::read(Path::new("/sys").join(f)).unwrap();
    assert_eq!(&got[..real.len()], real);
    assert!(got[real.len()..].iter().all(|&b| b == 0));
    assert_eq!(w.changed, 1);
    assert!(w.messages[0].contains("shrank"), "{:?}", w.messages);
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(LZA)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn cli_exits_4_with_a_count_when_inputs_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a.lza");
    let a = a.to_str().unwrap();
    let out = run(&["c", "-m", "zstd", "-f", a, "-C", "/proc/self", "status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("file changed as we read it"), "{err}");
    assert!(err.contains("1 changed as they were read"), "{err}");
    // the archive was written and is whole
    let out = run(&["verify", "-f", a]);
    assert!(out.status.success(), "{out:?}");
}

/// Names the format cannot hold (format-spec 4) are left out one by one;
/// the archive holds everything else.
#[test]
fn unarchivable_names_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("t");
    fs::create_dir(&t).unwrap();
    fs::write(t.join("good.txt"), b"good").unwrap();
    fs::write(t.join("dev-disk-by\\x2duuid-1234.swap"), b"unit").unwrap();
    fs::write(t.join("c:notes"), b"notes").unwrap();
    fs::write(t.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1").unwrap();
    fs::create_dir(t.join(OsStr::from_bytes(b"dir\xff"))).unwrap();
    fs::write(t.join(OsStr::from_bytes(b"dir\xff/inner")), b"inner").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"to-\xff"), t.join("badlink")).unwrap();
    fs::create_dir(t.join("sub")).unwrap();
    fs::write(t.join("sub/ok"), b"ok").unwrap();

    let (sources, mut w) = list(tmp.path(), &["t"]);
    let c = write(&sources, &mut w);
    assert_eq!(paths(&c), ["t", "t/good.txt", "t/sub", "t/sub/ok"]);
    assert_eq!(w.skipped, 5, "{:?}", w.messages);

    let a = tmp.path().join("a.lza");
    let a = a.to_str().unwrap();
    let out = run(&["c", "-f", a, "-C", tmp.path().to_str().unwrap(), "t"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("5 not archived"), "{err}");
    assert!(err.contains("nor anything below it"), "{err}");
    let out = run(&["t", "-f", a]);
    assert!(out.status.success());
    // (directories first, then the small files of solid blocks)
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "t\nt/sub\nt/good.txt\nt/sub/ok\n"
    );
}

/// Text that the default method codes slowly enough to be caught mid-way.
fn slow_input(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("big.txt"), common::text(3 << 20, 5)).unwrap();
}

fn dot_lza_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".lza-"))
        .collect()
}

/// Start `lza args`, wait until `ready` is true, send `signal`, and
/// return how it ended.
fn interrupt(args: &[&str], ready: &dyn Fn() -> bool, signal: &str) -> std::process::ExitStatus {
    let mut child = Command::new(LZA)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while !ready() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "lza ended before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap()
}

#[test]
fn signals_remove_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    slow_input(&src);
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let a = out_dir.join("a.lza");
    let args = [
        "c",
        "-m",
        "cm",
        "-T",
        "1",
        "-f",
        a.to_str().unwrap(),
        "-C",
        src.to_str().unwrap(),
        "big.txt",
    ];
    for (signal, number) in [("-INT", 2), ("-TERM", 15)] {
        let status = interrupt(&args, &|| !dot_lza_files(&out_dir).is_empty(), signal);
        assert_eq!(status.signal(), Some(number), "{status:?}");
        assert!(
            dot_lza_files(&out_dir).is_empty(),
            "{:?}",
            dot_lza_files(&out_dir)
        );
        assert!(!a.exists());
    }

    // extraction: the file being written is a temporary in the destination
    let out = run(&[
        "c",
        "-m",
        "cm",
        "-f",
        a.to_str().unwrap(),
        "-C",
        src.to_str().unwrap(),
        "big.txt",
    ]);
    assert!(out.status.success(), "{out:?}");
    let dest = tmp.path().join("dest");
    let args = [
        "x",
        "-T",
        "1",
        "-f",
        a.to_str().unwrap(),
        "-C",
        dest.to_str().unwrap(),
    ];
    let status = interrupt(&args, &|| !tmp_leftovers(&dest).is_empty(), "-INT");
    assert_eq!(status.signal(), Some(2), "{status:?}");
    assert!(
        tmp_leftovers(&dest).is_empty(),
        "{:?}",
        tmp_leftovers(&dest)
    );
    assert!(!dest.join("big.txt").exists());
}

/// Past the file-size limit (`ulimit -f`), writes fail with EFBIG instead of
/// SIGXFSZ ending lza: an error, and nothing left behind.
#[test]
fn file_size_limit_is_an_error_not_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(src.join("noise"), &noise).unwrap();
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let a = out_dir.join("a.lza");
    let limited = |cmd: String| {
        Command::new("sh")
            .args(["-c", &format!("ulimit -f 200 && exec {cmd}")])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = limited(format!(
        "{LZA} c -m zstd -f {} -C {} noise",
        a.display(),
        src.display()
    ));
    assert_eq!(out.status.signal(), None, "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File too large"),
        "{out:?}"
    );
    assert!(dot_lza_files(&out_dir).is_empty());
    assert!(!a.exists());

    // the same archive made without the limit, extracted with it
    assert!(
        run(&[
            "c",
            "-m",
            "zstd",
            "-f",
            a.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            "noise"
        ])
        .status
        .success()
    );
    let dest = tmp.path().join("dest");
    let out = limited(format!("{LZA} x -f {} -C {}", a.display(), dest.display()));
    assert_eq!(out.status.signal(), None, "{out:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File too large"),
        "{out:?}"
    );
    assert!(tmp_leftovers(&dest).is_empty());
    assert!(!dest.join("noise").exists());
}
