//! `lza bench`: compare lza with xz, zstd and bzip2 on the same inputs.
//!
//! Every tool runs as a subprocess. For each input file (a directory stands for
//! each regular file inside it, in sorted order) and, optionally, for the whole
//! set of inputs as one archive, each tool compresses and decompresses once;
//! both steps are timed with [`Instant`], their peak RSS is read from
//! `/usr/bin/time -f %M` where that works, and the round trip is checked byte
//! for byte (size and xxh3-128 of every regular file). Results go to stdout as
//! a Markdown table, row by row, and to `bench.md` and `bench.svg` in
//! [`BenchOptions::out_dir`].
//!
//! For a pipeline (`tar | xz`), the time covers the whole pipeline and the
//! peak RSS is that of its largest process.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use xxhash_rust::xxh3::Xxh3;

/// Tools benchmarked when [`BenchOptions::tools`] is empty.
pub const DEFAULT_TOOLS: &[&str] = &["lza", "xz", "zstd", "bzip2"];
/// Every tool name [`run`] knows.
pub const KNOWN_TOOLS: &[&str] = &["lza", "xz", "zstd", "bzip2", "gzip"];

/// What [`run`] benchmarks, and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Files and directories; a directory stands for every regular file inside it.
    pub paths: Vec<PathBuf>,
    /// The lza executable to benchmark (usually `std::env::current_exe()`).
    pub lza_exe: PathBuf,
    /// Extra arguments for `lza c`, e.g. `["-l", "9"]`.
    pub lza_args: Vec<String>,
    /// Threads for lza, and for xz/zstd on the whole tree; 0 means all cores.
    pub threads: usize,
    /// Where `bench.md` and `bench.svg` go (created if missing).
    pub out_dir: PathBuf,
    /// Also benchmark all of `paths` as one archive.
    pub whole_tree: bool,
    /// Tools to run, from [`KNOWN_TOOLS`]; empty means [`DEFAULT_TOOLS`].
    pub tools: Vec<String>,
    /// Replace `bench.md` and `bench.svg` if they exist (otherwise the run
    /// is refused before anything is measured).
    pub overwrite: bool,
}

/// Runs the benchmark; see the module documentation.
///
/// Fails on bad options or I/O trouble, and, after writing the reports, when
/// any tool failed or a round trip did not reproduce its input.
pub fn run(opts: &BenchOptions) -> Result<()> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let names: Vec<String> = if opts.tools.is_empty() {
        DEFAULT_TOOLS.iter().map(|s| s.to_string()).collect()
    } else {
        opts.tools.clone()
    };
    let mut tools = Vec::new();
    for n in &names {
        let t = Tool::parse(n)
            .with_context(|| format!("unknown tool {n:?} (known: {})", KNOWN_TOOLS.join(", ")))?;
        if !tools.contains(&t) {
            tools.push(t);
        }
    }
    if opts.paths.is_empty() {
        bail!("no paths to benchmark");
    }
    let md_path = opts.out_dir.join("bench.md");
    let svg_path = opts.out_dir.join("bench.svg");
    if !opts.overwrite {
        for p in [&md_path, &svg_path] {
            if p.symlink_metadata().is_ok() {
                bail!(
                    "{}: already exists (use --overwrite to replace it)",
                    p.display()
                );
            }
        }
    }

    let mut notes = Vec::new();
    let lza_exe = find_lza(&opts.lza_exe);
    let tar = find_in_path("tar");
    let mut available = Vec::new();
    for &t in &tools {
        let exe = match t {
            Tool::Lza => lza_exe.clone(),
            _ => find_in_path(t.name()),
        };
        match exe {
            Some(exe) => available.push((t, exe)),
            None => note(&mut notes, format!("{} skipped: not found", t.name())),
        }
    }

    let jobs = collect_jobs(&opts.paths, opts.whole_tree)?;
    if jobs.is_empty() {
        bail!("no regular files to benchmark under the given paths");
    }
    for j in &jobs {
        if j.skip_empty {
            note(&mut notes, format!("{} skipped: empty file", j.label));
        }
    }

    let tmp = tempfile::Builder::new()
        .prefix("lza-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let time = probe_time(tmp.path());
    if time.is_none() {
        note(
            &mut notes,
            "/usr/bin/time -f %M unavailable: peak RSS is n/a".to_string(),
        );
    }
    let ctx = Ctx {
        threads,
        lza_args: opts.lza_args.iter().map(OsString::from).collect(),
        tar: tar.clone(),
    };

    let header = machine_line(threads, &opts.lza_args);
    let mut out = io::stdout().lock();
    writeln!(out, "{header}\n\n{}", table_header())?;
    out.flush()?;

    let mut rows = Vec::new();
    for job in jobs.iter().filter(|j| !j.skip_empty) {
        let hashes = hash_sources(job).with_context(|| format!("reading {}", job.label))?;
        for (tool, exe) in &available {
            if job.tree && *tool != Tool::Lza && tar.is_none() {
                note(
                    &mut notes,
                    format!("{} on the whole tree skipped: tar not found", tool.name()),
                );
                continue;
            }
            let row = bench_one(&ctx, *tool, exe, job, &hashes, tmp.path(), time.as_deref())?;
            writeln!(out, "{}", table_row(&row))?;
            out.flush()?;
            rows.push(row);
        }
    }
    drop(out);

    let mut md = format!("# lza benchmark\n\n{header}\n\n{}\n", table_header());
    for r in &rows {
        md.push_str(&table_row(r));
        md.push('\n');
    }
    md.push_str("\nbits/byte = 8 × output / input; MB/s = input bytes / wall seconds / 10^6.\n");
    md.push_str("\n## Tools\n\n");
    for (tool, exe) in &available {
        let version = tool_version(exe).unwrap_or_else(|| "version unknown".into());
        let plan_c = render_plan(&compress_plan(
            &ctx,
            *tool,
            exe,
            &Job::placeholder(false),
            Path::new("ARCHIVE"),
        ));
        let plan_x = render_plan(&extract_plan(
            &ctx,
            *tool,
            exe,
            &Job::placeholder(false),
            Path::new("ARCHIVE"),
            Path::new("OUT"),
        ));
        let _ = write!(
            md,
            "- {} ({}): `{}` / `{}`",
            tool.name(),
            md_escape(&version),
            plan_c,
            plan_x
        );
        if opts.whole_tree && (*tool == Tool::Lza || tar.is_some()) {
            let plan_c = render_plan(&compress_plan(
                &ctx,
                *tool,
                exe,
                &Job::placeholder(true),
                Path::new("ARCHIVE"),
            ));
            let plan_x = render_plan(&extract_plan(
                &ctx,
                *tool,
                exe,
                &Job::placeholder(true),
                Path::new("ARCHIVE"),
                Path::new("OUT"),
            ));
            let _ = write!(md, "; whole tree: `{plan_c}` / `{plan_x}`");
        }
        md.push('\n');
    }
    if !notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for n in &notes {
            let _ = writeln!(md, "- {}", md_escape(n));
        }
    }
    fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating {}", opts.out_dir.display()))?;
    fs::write(&md_path, md).with_context(|| format!("writing {}", md_path.display()))?;
    fs::write(&svg_path, render_svg(&rows))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), svg_path.display());

    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {} runs failed (see bench.md)", rows.len());
    }
    Ok(())
}

fn note(notes: &mut Vec<String>, n: String) {
    eprintln!("lza bench: {n}");
    notes.push(n);
}

// ---------------------------------------------------------------------------
// Tools and command plans

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Lza,
    Xz,
    Zstd,
    Bzip2,
    Gzip,
}

impl Tool {
    fn parse(s: &str) -> Option<Tool> {
        Some(match s {
            "lza" => Tool::Lza,
            "xz" => Tool::Xz,
            "zstd" => Tool::Zstd,
            "bzip2" => Tool::Bzip2,
            "gzip" => Tool::Gzip,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Tool::Lza => "lza",
            Tool::Xz => "xz",
            Tool::Zstd => "zstd",
            Tool::Bzip2 => "bzip2",
            Tool::Gzip => "gzip",
        }
    }

    /// Compression arguments for one file (`single`) or a tar stream.
    fn compress_args(self, single: bool, threads: usize) -> Vec<String> {
        let v: &[&str] = match self {
            Tool::Lza => &[],
            Tool::Xz if single => &["-9e", "-T1", "-c"],
            Tool::Xz => return vec!["-9e".into(), format!("-T{threads}"), "-c".into()],
            Tool::Zstd if single => &["-q", "-19", "--long", "-c"],
            Tool::Zstd => {
                return vec![
                    "-q".into(),
                    "-19".into(),
                    "--long".into(),
                    format!("-T{threads}"),
                    "-c".into(),
                ];
            }
            Tool::Bzip2 => &["-9", "-c"],
            Tool::Gzip => &["-9", "-c"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    fn decompress_args(self) -> &'static [&'static str] {
        match self {
            Tool::Lza => &[],
            Tool::Zstd => &["-q", "-dc", "--long"],
            _ => &["-dc"],
        }
    }
}

/// One process of a pipeline.
#[derive(Debug, Clone)]
struct Stage {
    prog: OsString,
    args: Vec<OsString>,
}

/// A pipeline: `stages[0] < stdin | stages[1] | ... > stdout`.
#[derive(Debug, Clone)]
struct Plan {
    stages: Vec<Stage>,
    stdin: Option<PathBuf>,
    stdout: Option<PathBuf>,
}

struct Ctx {
    threads: usize,
    lza_args: Vec<OsString>,
    tar: Option<PathBuf>,
}

fn stage<I, S>(prog: &Path, args: I) -> Stage
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Stage {
        prog: prog.as_os_str().to_owned(),
        args: args.into_iter().map(Into::into).collect(),
    }
}

fn tar_exe(ctx: &Ctx) -> PathBuf {
    ctx.tar.clone().unwrap_or_else(|| PathBuf::from("tar"))
}

fn compress_plan(ctx: &Ctx, tool: Tool, exe: &Path, job: &Job, archive: &Path) -> Plan {
    if tool == Tool::Lza {
        let mut args: Vec<OsString> = vec!["c".into()];
        args.extend(ctx.lza_args.iter().cloned());
        args.extend([
            "-T".into(),
            ctx.threads.to_string().into(),
            "-f".into(),
            archive.into(),
        ]);
        args.extend(["-C".into(), job.base.clone().into_os_string(), "--".into()]);
        args.extend(job.names.iter().cloned());
        return Plan {
            stages: vec![stage(exe, args)],
            stdin: None,
            stdout: None,
        };
    }
    let targs = tool.compress_args(!job.tree, ctx.threads);
    if job.tree {
        let mut tar_args: Vec<OsString> = vec![
            "-cf".into(),
            "-".into(),
            "-C".into(),
            job.base.clone().into_os_string(),
            "--".into(),
        ];
        tar_args.extend(job.names.iter().cloned());
        Plan {
            stages: vec![stage(&tar_exe(ctx), tar_args), stage(exe, targs)],
            stdin: None,
            stdout: Some(archive.to_owned()),
        }
    } else {
        let mut args: Vec<OsString> = targs.into_iter().map(OsString::from).collect();
        args.push("--".into());
        args.push(job.base.join(&job.names[0]).into_os_string());
        Plan {
            stages: vec![stage(exe, args)],
            stdin: None,
            stdout: Some(archive.to_owned()),
        }
    }
}

fn extract_plan(ctx: &Ctx, tool: Tool, exe: &Path, job: &Job, archive: &Path, out: &Path) -> Plan {
    if tool == Tool::Lza {
        let args: Vec<OsString> = vec![
            "x".into(),
            "-T".into(),
            ctx.threads.to_string().into(),
            "-f".into(),
            archive.into(),
            "-C".into(),
            out.into(),
        ];
        return Plan {
            stages: vec![stage(exe, args)],
            stdin: None,
            stdout: None,
        };
    }
    let mut args: Vec<OsString> = tool.decompress_args().iter().map(OsString::from).collect();
    args.push("--".into());
    args.push(archive.into());
    if job.tree {
        let tar_args: Vec<OsString> = vec!["-xf".into(), "-".into(), "-C".into(), out.into()];
        Plan {
            stages: vec![stage(exe, args), stage(&tar_exe(ctx), tar_args)],
            stdin: None,
            stdout: None,
        }
    } else {
        Plan {
            stages: vec![stage(exe, args)],
            stdin: None,
            stdout: Some(out.join(&job.names[0])),
        }
    }
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The plan as a shell command line, for the report.
fn render_plan(plan: &Plan) -> String {
    let mut parts = Vec::new();
    for st in &plan.stages {
        let prog = Path::new(&st.prog).file_name().unwrap_or(&st.prog);
        let mut s = shell_quote(prog);
        for a in &st.args {
            s.push(' ');
            s.push_str(&shell_quote(a));
        }
        parts.push(s);
    }
    let mut s = parts.join(" | ");
    if let Some(i) = &plan.stdin {
        let _ = write!(s, " < {}", shell_quote(i.as_os_str()));
    }
    if let Some(o) = &plan.stdout {
        let _ = write!(s, " > {}", shell_quote(o.as_os_str()));
    }
    s
}

// ---------------------------------------------------------------------------
// Running

struct Measure {
    secs: f64,
    rss_kib: Option<u64>,
}

/// Whether `/usr/bin/time -f %M -o FILE` works here.
fn probe_time(tmp: &Path) -> Option<PathBuf> {
    let time = Path::new("/usr/bin/time");
    if !time.is_file() {
        return None;
    }
    let o = tmp.join("time-probe");
    let ok = Command::new(time)
        .args(["-f", "%M", "-o"])
        .arg(&o)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let parsed = fs::read_to_string(&o).ok().and_then(|s| parse_rss(&s));
    (ok && parsed.is_some()).then(|| time.to_owned())
}

/// The peak RSS in KiB from a `time -f %M -o` file (the last numeric line:
/// GNU time writes "Command exited with non-zero status N" first on failure).
fn parse_rss(s: &str) -> Option<u64> {
    s.lines().rev().find_map(|l| l.trim().parse().ok())
}

fn run_plan(plan: &Plan, time: Option<&Path>, tmp: &Path) -> Result<Measure> {
    let n = plan.stages.len();
    let rss_path = |i: usize| tmp.join(format!("rss-{i}"));
    let err_path = |i: usize| tmp.join(format!("stderr-{i}"));
    let mut children: Vec<Child> = Vec::new();
    let mut prev: Option<ChildStdout> = None;
    let start = Instant::now();
    for (i, st) in plan.stages.iter().enumerate() {
        let spawned = (|| -> Result<Child> {
            let mut cmd = match time {
                Some(t) => {
                    let _ = fs::remove_file(rss_path(i));
                    let mut c = Command::new(t);
                    c.args(["-f", "%M", "-o"]).arg(rss_path(i)).arg(&st.prog);
                    c
                }
                None => Command::new(&st.prog),
            };
            cmd.args(&st.args);
            cmd.stdin(match (i, &plan.stdin, prev.take()) {
                (_, _, Some(p)) => Stdio::from(p),
                (0, Some(f), None) => {
                    Stdio::from(File::open(f).with_context(|| format!("opening {}", f.display()))?)
                }
                _ => Stdio::null(),
            });
            cmd.stdout(if i + 1 < n {
                Stdio::piped()
            } else if let Some(f) = &plan.stdout {
                Stdio::from(File::create(f).with_context(|| format!("creating {}", f.display()))?)
            } else {
                Stdio::null()
            });
            cmd.stderr(Stdio::from(File::create(err_path(i))?));
            cmd.spawn()
                .with_context(|| format!("starting {}", Path::new(&st.prog).display()))
        })();
        match spawned {
            Ok(mut c) => {
                prev = c.stdout.take();
                children.push(c);
            }
            Err(e) => {
                for c in &mut children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(e);
            }
        }
    }
    drop(prev);
    let statuses: Vec<io::Result<ExitStatus>> = children.iter_mut().map(|c| c.wait()).collect();
    let secs = start.elapsed().as_secs_f64();
    for (i, st) in statuses.into_iter().enumerate() {
        let st = st?;
        if !st.success() {
            let err = fs::read(err_path(i)).unwrap_or_default();
            let err = String::from_utf8_lossy(&err[err.len().saturating_sub(400)..])
                .trim()
                .replace('\n', " / ");
            let prog = Path::new(&plan.stages[i].prog)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            bail!(
                "{prog} failed ({st}){}{err}",
                if err.is_empty() { "" } else { ": " }
            );
        }
    }
    let rss_kib = match time {
        Some(_) => (0..n)
            .map(|i| {
                fs::read_to_string(rss_path(i))
                    .ok()
                    .and_then(|s| parse_rss(&s))
            })
            .collect::<Option<Vec<u64>>>()
            .and_then(|v| v.into_iter().max()),
        None => None,
    };
    Ok(Measure { secs, rss_kib })
}

/// One result row.
#[derive(Debug, Clone)]
struct Row {
    label: String,
    tree: bool,
    tool: String,
    in_bytes: u64,
    out_bytes: Option<u64>,
    c_secs: Option<f64>,
    x_secs: Option<f64>,
    c_rss_kib: Option<u64>,
    x_rss_kib: Option<u64>,
    /// `None` when the round trip succeeded and matched.
    error: Option<String>,
}

impl Row {
    fn bpb(&self) -> Option<f64> {
        let out = self.out_bytes?;
        (self.in_bytes > 0).then(|| 8.0 * out as f64 / self.in_bytes as f64)
    }

    fn c_mbps(&self) -> Option<f64> {
        self.c_secs.map(|s| mbps(self.in_bytes, s))
    }

    fn x_mbps(&self) -> Option<f64> {
        self.x_secs.map(|s| mbps(self.in_bytes, s))
    }
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs.max(1e-9) / 1e6
}

#[allow(clippy::too_many_arguments)]
fn bench_one(
    ctx: &Ctx,
    tool: Tool,
    exe: &Path,
    job: &Job,
    hashes: &[(PathBuf, u64, u128)],
    tmp: &Path,
    time: Option<&Path>,
) -> Result<Row> {
    let mut row = Row {
        label: job.label.clone(),
        tree: job.tree,
        tool: tool.name().to_string(),
        in_bytes: job.bytes,
        out_bytes: None,
        c_secs: None,
        x_secs: None,
        c_rss_kib: None,
        x_rss_kib: None,
        error: None,
    };
    let archive = tmp.join(format!("archive.{}", tool.name()));
    let out = tmp.join("out");
    let _ = fs::remove_file(&archive);
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cleaning {}", out.display()))?;
    }
    fs::create_dir_all(&out)?;
    let result = (|| -> Result<()> {
        let m = run_plan(&compress_plan(ctx, tool, exe, job, &archive), time, tmp)
            .context("compress")?;
        row.c_secs = Some(m.secs);
        row.c_rss_kib = m.rss_kib;
        row.out_bytes = Some(
            fs::metadata(&archive)
                .context("compress: no archive written")?
                .len(),
        );
        let m = run_plan(
            &extract_plan(ctx, tool, exe, job, &archive, &out),
            time,
            tmp,
        )
        .context("extract")?;
        row.x_secs = Some(m.secs);
        row.x_rss_kib = m.rss_kib;
        for (rel, len, hash) in hashes {
            let got = out.join(rel);
            match hash_file(&got) {
                Ok((l, h)) if l == *len && h == *hash => {}
                Ok((l, _)) => bail!(
                    "{} differs after the round trip ({l} bytes, want {len})",
                    rel.display()
                ),
                Err(e) => bail!("{} not extracted: {e}", rel.display()),
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let msg = format!("{e:#}");
        eprintln!("lza bench: {} on {}: {msg}", tool.name(), job.label);
        row.error = Some(msg);
    }
    let _ = fs::remove_file(&archive);
    let _ = fs::remove_dir_all(&out);
    Ok(row)
}

// ---------------------------------------------------------------------------
// Inputs

/// One benchmark target: `names` relative to `base`, as given to tar and lza.
#[derive(Debug, Clone)]
struct Job {
    label: String,
    tree: bool,
    base: PathBuf,
    names: Vec<OsString>,
    /// Regular files to verify, relative to `base`, with their sizes.
    files: Vec<(PathBuf, u64)>,
    bytes: u64,
    skip_empty: bool,
}

impl Job {
    fn placeholder(tree: bool) -> Job {
        Job {
            label: String::new(),
            tree,
            base: PathBuf::from("DIR"),
            names: vec![if tree { "PATH..." } else { "FILE" }.into()],
            files: Vec::new(),
            bytes: 0,
            skip_empty: false,
        }
    }
}

/// `p` made absolute and lexically clean: the canonical parent joined with the
/// last component (which is kept as is, so a symlink stays a symlink).
fn absolute_clean(p: &Path) -> Result<PathBuf> {
    let ctx = || format!("resolving {}", p.display());
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            Ok(fs::canonicalize(parent).with_context(ctx)?.join(name))
        }
        _ => fs::canonicalize(p).with_context(ctx),
    }
}

/// Regular files under `dir`, recursively, sorted, without following symlinks.
fn walk_files(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let md = fs::symlink_metadata(e.path())?;
        if md.is_dir() {
            walk_files(&e.path(), out)?;
        } else if md.is_file() {
            out.push((e.path(), md.len()));
        }
    }
    Ok(())
}

fn common_dir(paths: &[PathBuf]) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for p in paths {
        let parent = p.parent().unwrap_or(Path::new("/"));
        common = Some(match common {
            None => parent.to_owned(),
            Some(c) => c
                .components()
                .zip(parent.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common.unwrap_or_else(|| PathBuf::from("/"))
}

fn collect_jobs(paths: &[PathBuf], whole_tree: bool) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let mut abs = Vec::new();
    let mut tree_files = Vec::new();
    for p in paths {
        let a = absolute_clean(p)?;
        // Labels are relative to the argument (a file given as such is
        // named by its file name), prefixed by the argument's name when
        // there are several.
        let arg_name = a.file_name().map(PathBuf::from).unwrap_or_default();
        let md = fs::symlink_metadata(&a).with_context(|| format!("reading {}", p.display()))?;
        let files = if md.is_dir() {
            let mut v = Vec::new();
            walk_files(&a, &mut v)?;
            v
        } else if md.is_file() {
            vec![(a.clone(), md.len())]
        } else {
            bail!("{}: not a regular file or directory", p.display());
        };
        for (f, len) in &files {
            let rel = match f.strip_prefix(&a) {
                Ok(rel) if !rel.as_os_str().is_empty() => rel.to_owned(),
                _ => arg_name.clone(),
            };
            let label = if paths.len() > 1 && md.is_dir() {
                arg_name.join(rel)
            } else {
                rel
            };
            let name = f.file_name().expect("walked files have names").to_owned();
            jobs.push(Job {
                label: label.display().to_string(),
                tree: false,
                base: f.parent().expect("absolute files have parents").to_owned(),
                names: vec![name.clone()],
                files: vec![(PathBuf::from(name), *len)],
                bytes: *len,
                skip_empty: *len == 0,
            });
        }
        tree_files.extend(files);
        abs.push(a);
    }
    if whole_tree && !tree_files.is_empty() {
        let base = common_dir(&abs);
        let names = abs
            .iter()
            .map(|a| {
                a.strip_prefix(&base)
                    .expect("common prefix")
                    .as_os_str()
                    .to_owned()
            })
            .collect();
        let files: Vec<(PathBuf, u64)> = tree_files
            .iter()
            .map(|(f, len)| {
                (
                    f.strip_prefix(&base).expect("common prefix").to_owned(),
                    *len,
                )
            })
            .collect();
        let bytes = files.iter().map(|f| f.1).sum();
        jobs.push(Job {
            label: format!("whole tree ({} files)", files.len()),
            tree: true,
            base,
            names,
            files,
            bytes,
            skip_empty: false,
        });
    }
    Ok(jobs)
}

fn hash_file(p: &Path) -> io::Result<(u64, u128)> {
    let mut f = File::open(p)?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, h.digest128()))
}

/// Hashes every file of the job (which also warms the page cache).
fn hash_sources(job: &Job) -> Result<Vec<(PathBuf, u64, u128)>> {
    job.files
        .iter()
        .map(|(rel, _)| {
            let (len, h) =
                hash_file(&job.base.join(rel)).with_context(|| rel.display().to_string())?;
            Ok((rel.clone(), len, h))
        })
        .collect()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn find_lza(exe: &Path) -> Option<PathBuf> {
    if exe.components().count() > 1 {
        std::path::absolute(exe).ok().filter(|p| is_executable(p))
    } else {
        find_in_path(&exe.to_string_lossy())
    }
}

fn is_executable(p: &Path) -> bool {
    let Ok(md) = fs::metadata(p) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        md.is_file() && md.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        md.is_file()
    }
}

fn tool_version(exe: &Path) -> Option<String> {
    let o = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = [o.stdout, o.stderr].concat();
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.trim_matches('*').trim().to_string())
}

// ---------------------------------------------------------------------------
// Machine description

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| {
                    l.starts_with("model name")
                        || l.starts_with("Model")
                        || l.starts_with("cpu model")
                })
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        t / 3600,
        t / 60 % 60
    )
}

fn machine_line(threads: usize, lza_args: &[String]) -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let args = if lza_args.is_empty() {
        "none".to_string()
    } else {
        format!("`{}`", lza_args.join(" "))
    };
    let kernel = match lza::codecs::lm::KernelPath::detect() {
        Ok(k) => k.name().to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    format!(
        "Machine: {}, {cpus} logical CPUs; language-model kernel path: {kernel}; {}; threads: {threads}; extra lza args: {args}",
        md_escape(&cpu_model()),
        utc_now()
    )
}

// ---------------------------------------------------------------------------
// Markdown

fn md_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '<' | '>' | '[' | ']' => {
                o.push('\\');
                o.push(c);
            }
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn table_header() -> String {
    "| file | tool | input B | output B | bits/byte | compress MB/s | extract MB/s \
     | compress RSS MiB | extract RSS MiB | round trip |\n\
     |---|---|--:|--:|--:|--:|--:|--:|--:|---|"
        .to_string()
}

/// Three significant digits, without scientific notation.
fn sig3(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let decimals = if a == 0.0 {
        0
    } else {
        (2 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.decimals$}")
}

fn table_row(r: &Row) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
    let rss = |k: Option<u64>| opt(k.map(|k| format!("{:.1}", k as f64 / 1024.0)));
    let ok = match &r.error {
        None => "ok".to_string(),
        Some(e) => format!("FAILED: {}", md_escape(e)),
    };
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        md_escape(&r.label),
        r.tool,
        r.in_bytes,
        opt(r.out_bytes.map(|b| b.to_string())),
        opt(r.bpb().map(|b| format!("{b:.3}"))),
        opt(r.c_mbps().map(sig3)),
        opt(r.x_mbps().map(sig3)),
        rss(r.c_rss_kib),
        rss(r.x_rss_kib),
        ok
    )
}

// ---------------------------------------------------------------------------
// SVG

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn tool_color(tool: &str, index: usize) -> &'static str {
    const EXTRA: &[&str] = &["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    match tool {
        "lza" => "#d62728",
        "xz" => "#1f77b4",
        "zstd" => "#2ca02c",
        "bzip2" => "#ff7f0e",
        "gzip" => "#9467bd",
        _ => EXTRA[index % EXTRA.len()],
    }
}

/// A step of 1, 2, 2.5 or 5 × 10^k no smaller than `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

fn decade_label(k: i32) -> String {
    if k >= 0 {
        format!("{}", 10f64.powi(k))
    } else {
        format!("{:.*}", (-k) as usize, 10f64.powi(k))
    }
}

/// The scatter plot: bits per byte against speed (log scale), one filled
/// marker per successful row at its compression speed (circle: a file,
/// square: the whole tree) and a hollow one at its extraction speed, joined
/// by a line and labelled with the file's name, colored by tool. Every
/// compression marker has `class="pt"`, every extraction marker
/// `class="ptx"`, every label `class="label"`, every tool's legend entry
/// `class="legend"`.
fn render_svg(rows: &[Row]) -> String {
    const W: f64 = 820.0;
    const H: f64 = 500.0;
    const L: f64 = 70.0;
    const R: f64 = 180.0;
    const T: f64 = 40.0;
    const B: f64 = 60.0;
    let (pw, ph) = (W - L - R, H - T - B);

    let pts: Vec<(&Row, f64, f64)> = rows
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| Some((r, r.c_mbps()?, r.bpb()?)))
        .filter(|&(_, x, y)| x > 0.0 && x.is_finite() && y.is_finite())
        .collect();
    let mut tools: Vec<&str> = Vec::new();
    for r in rows {
        if !tools.contains(&r.tool.as_str()) {
            tools.push(&r.tool);
        }
    }
    let color = |t: &str| tool_color(t, tools.iter().position(|x| *x == t).unwrap_or(0));

    // Extraction speed of each point, where it was measured.
    let xspeed = |r: &Row| r.x_mbps().filter(|x| *x > 0.0 && x.is_finite());
    let (mut lo, mut hi) = pts
        .iter()
        .flat_map(|p| std::iter::once(p.1).chain(xspeed(p.0)))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v.log10()), hi.max(v.log10()))
        });
    if pts.is_empty() {
        (lo, hi) = (0.0, 2.0);
    }
    let (klo, mut khi) = (lo.floor() as i32, hi.ceil() as i32);
    if khi <= klo {
        khi = klo + 1;
    }
    let ymax_raw = pts.iter().map(|p| p.2).fold(0.0f64, f64::max).max(0.5) * 1.05;
    let ystep = nice_step(ymax_raw / 6.0);
    let ymax = (ymax_raw / ystep).ceil() * ystep;
    let sx = |v: f64| L + (v.log10() - f64::from(klo)) / f64::from(khi - klo) * pw;
    let sy = |v: f64| T + ph - v / ymax * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{:.1}" y="22" text-anchor="middle" font-size="15">Bits per byte vs speed (lower right is better)</text>"#,
        L + pw / 2.0
    );
    // Grid and axes.
    s.push_str("<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for k in klo..khi {
        for m in 2..10 {
            let x = sx(f64::from(m) * 10f64.powi(k));
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
                T + ph
            );
        }
    }
    for k in klo..=khi {
        let x = sx(10f64.powi(k));
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{:.1}"/>"#,
            T + ph
        );
    }
    let nticks = (ymax / ystep).round() as i64;
    for i in 0..=nticks {
        let y = sy(i as f64 * ystep);
        let _ = writeln!(
            s,
            r#"<line x1="{L}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            L + pw
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        r#"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    for k in klo..=khi {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            sx(10f64.powi(k)),
            T + ph + 16.0,
            decade_label(k)
        );
    }
    for i in 0..=nticks {
        let v = i as f64 * ystep;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            L - 6.0,
            sy(v) + 4.0,
            if ystep.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            }
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">MB/s (log scale): filled = compress, hollow = extract</text>
<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">bits per byte</text>"#,
        L + pw / 2.0,
        H - 18.0,
        T + ph / 2.0,
        T + ph / 2.0
    );
    // Markers: compression filled, extraction hollow on the same row,
    // joined by a line; each pair labelled with the file's name.
    for (r, x, y) in &pts {
        let (cx, cy) = (sx(*x), sy(*y));
        let fill = color(&r.tool);
        if let Some(xs) = xspeed(r) {
            let ex = sx(xs);
            let title = format!("{} / {}: extract {} MB/s", r.label, r.tool, sig3(xs));
            let _ = writeln!(
                s,
                r#"<line x1="{cx:.1}" y1="{cy:.1}" x2="{ex:.1}" y2="{cy:.1}" stroke="{fill}" stroke-opacity="0.5"/>"#
            );
            let _ = writeln!(
                s,
                r#"<circle class="ptx" cx="{ex:.1}" cy="{cy:.1}" r="4" fill="white" stroke="{fill}" stroke-width="1.5"><title>{}</title></circle>"#,
                xml_escape(&title)
            );
        }
        let short = if r.tree {
            "whole tree"
        } else {
            r.label.rsplit('/').next().unwrap_or(&r.label)
        };
        let _ = writeln!(
            s,
            r##"<text class="label" x="{:.1}" y="{:.1}" font-size="9" fill="#333">{}</text>"##,
            cx + 7.0,
            cy - 6.0,
            xml_escape(short)
        );
        let title = format!(
            "{} / {}: {:.3} bits/byte, {} MB/s",
            r.label,
            r.tool,
            y,
            sig3(*x)
        );
        if r.tree {
            let _ = writeln!(
                s,
                r#"<rect class="pt" x="{:.1}" y="{:.1}" width="11" height="11" fill="{fill}" fill-opacity="0.85" stroke="black" stroke-width="0.6"><title>{}</title></rect>"#,
                cx - 5.5,
                cy - 5.5,
                xml_escape(&title)
            );
        } else {
            let _ = writeln!(
                s,
                r#"<circle class="pt" cx="{cx:.1}" cy="{cy:.1}" r="5" fill="{fill}" fill-opacity="0.75" stroke="black" stroke-width="0.5"><title>{}</title></circle>"#,
                xml_escape(&title)
            );
        }
    }
    // Legend.
    let lx = L + pw + 20.0;
    let mut ly = T + 10.0;
    for t in &tools {
        let _ = writeln!(
            s,
            r#"<g class="legend"><circle cx="{lx:.1}" cy="{ly:.1}" r="5" fill="{}" stroke="black" stroke-width="0.5"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
            color(t),
            lx + 12.0,
            ly + 4.0,
            xml_escape(t)
        );
        ly += 20.0;
    }
    ly += 10.0;
    let _ = writeln!(
        s,
        r#"<circle cx="{lx:.1}" cy="{ly:.1}" r="5" fill="black"/><text x="{:.1}" y="{:.1}">compress</text>"#,
        lx + 12.0,
        ly + 4.0
    );
    ly += 20.0;
    let _ = writeln!(
        s,
        r#"<circle cx="{lx:.1}" cy="{ly:.1}" r="4" fill="white" stroke="black" stroke-width="1.5"/><text x="{:.1}" y="{:.1}">extract</text>"#,
        lx + 12.0,
        ly + 4.0
    );
    if pts.iter().any(|p| p.0.tree) {
        ly += 20.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="11" height="11" fill="none" stroke="black"/><text x="{:.1}" y="{:.1}">whole tree</text>"#,
            lx - 5.5,
            ly - 5.5,
            lx + 12.0,
            ly + 4.0
        );
    }
    if pts.is_empty() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no successful runs</text>"#,
            L + pw / 2.0,
            T + ph / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, tool: &str, inb: u64, outb: u64, c: f64, x: f64) -> Row {
        Row {
            label: label.into(),
            tree: false,
            tool: tool.into(),
            in_bytes: inb,
            out_bytes: Some(outb),
            c_secs: Some(c),
            x_secs: Some(x),
            c_rss_kib: Some(2048),
            x_rss_kib: None,
            error: None,
        }
    }

    /// A small well-formedness check: balanced tags, quoted attributes,
    /// entities only from the predefined set, no stray `<` or `&`.
    fn check_xml(s: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = s.trim_start();
        let check_text = |t: &str| -> Result<(), String> {
            let mut parts = t.split('&');
            parts.next();
            for p in parts {
                let ent = p.split(';').next().unwrap_or("");
                if !["amp", "lt", "gt", "quot", "apos"].contains(&ent) || !p.contains(';') {
                    return Err(format!("bad entity near &{}", &p[..p.len().min(10)]));
                }
            }
            if t.contains('>') {
                return Err("stray >".into());
            }
            Ok(())
        };
        let mut roots = 0;
        while !rest.is_empty() {
            let Some(open) = rest.find('<') else {
                check_text(rest)?;
                break;
            };
            check_text(&rest[..open])?;
            if stack.is_empty() && !rest[..open].trim().is_empty() {
                return Err("text outside the root".into());
            }
            let close = rest[open..].find('>').ok_or("unterminated tag")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or("close without open")?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
                continue;
            }
            let self_closing = tag.ends_with('/');
            let body = tag.trim_end_matches('/');
            let name = body.split_whitespace().next().ok_or("empty tag")?;
            if body.contains('<') || body.matches('"').count() & 1 != 0 {
                return Err(format!("bad attributes in <{body}>"));
            }
            check_text(&body.replace('>', ""))?;
            if stack.is_empty() {
                roots += 1;
            }
            if !self_closing {
                stack.push(name.to_string());
            }
        }
        if !stack.is_empty() {
            return Err(format!("unclosed {stack:?}"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(())
    }

    #[test]
    fn xml_checker_catches_errors() {
        assert!(check_xml("<a><b/></a>").is_ok());
        assert!(check_xml("<a><b></a>").is_err());
        assert!(check_xml("<a>x & y</a>").is_err());
        assert!(check_xml("<a>x &amp; y</a><c/>").is_err());
    }

    #[test]
    fn svg_is_well_formed_with_one_marker_per_ok_row() {
        let mut rows = vec![
            row("a & <b>.txt", "lza", 1000, 200, 0.5, 0.1),
            row("a & <b>.txt", "xz", 1000, 300, 0.01, 0.001),
            row("c\"'.txt", "zstd", 5_000_000, 1_000_000, 0.02, 0.001),
            row("c\"'.txt", "bzip2", 5_000_000, 900_000, 0.3, 0.1),
            row("c\"'.txt", "weird<tool>", 5_000_000, 900_000, 0.3, 0.1),
        ];
        let mut tree = row(
            "whole tree (2 files)",
            "lza",
            5_001_000,
            1_000_000,
            3.0,
            1.0,
        );
        tree.tree = true;
        rows.push(tree);
        let mut failed = row("d", "xz", 10, 10, 1.0, 1.0);
        failed.error = Some("boom".into());
        rows.push(failed);
        let svg = render_svg(&rows);
        check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert_eq!(svg.matches("class=\"pt\"").count(), 6);
        assert_eq!(svg.matches("<rect class=\"pt\"").count(), 1);
        assert_eq!(svg.matches("class=\"legend\"").count(), 5);
        // Every successful row also has its extraction point and a label.
        assert_eq!(svg.matches("class=\"ptx\"").count(), 6);
        assert_eq!(svg.matches("class=\"label\"").count(), 6);
        assert!(svg.contains(">whole tree</text>") && svg.contains(">c&quot;&apos;.txt</text>"));
        assert!(
            svg.contains("a &amp; &lt;b&gt;.txt / lza: 1.600 bits/byte, 0.00200 MB/s"),
            "{svg}"
        );
        // The x axis spans the decades of the data: 0.002 .. 250 MB/s.
        assert!(
            svg.contains(">0.001</text>") && svg.contains(">1000</text>"),
            "{svg}"
        );
        // Markers lie inside the plot area.
        for c in svg.split("<circle class=\"pt\" cx=\"").skip(1) {
            let cx: f64 = c.split('"').next().unwrap().parse().unwrap();
            assert!((70.0..=710.0).contains(&cx), "{cx}");
        }
    }

    #[test]
    fn svg_without_points_is_well_formed() {
        let svg = render_svg(&[]);
        check_xml(&svg).unwrap();
        assert_eq!(svg.matches("class=\"pt\"").count(), 0);
        assert!(svg.contains("no successful runs"));
    }

    #[test]
    fn markdown_rows() {
        let h = table_header();
        let cols = h.lines().next().unwrap().matches('|').count();
        assert_eq!(h.lines().nth(1).unwrap().matches('|').count(), cols);
        let r = row("dir/a|b.txt", "xz", 4_000_000, 1_000_000, 2.0, 0.04);
        let line = table_row(&r);
        assert_eq!(
            line.matches('|').count() - line.matches("\\|").count(),
            cols
        );
        assert_eq!(
            line,
            "| dir/a\\|b.txt | xz | 4000000 | 1000000 | 2.000 | 2.00 | 100 | 2.0 | n/a | ok |"
        );
        let mut bad = row("x", "lza", 0, 0, 1.0, 1.0);
        bad.out_bytes = None;
        bad.x_secs = None;
        bad.error = Some("extract: lza failed (exit status: 1)".into());
        let line = table_row(&bad);
        assert!(line.ends_with("| 0 | n/a | n/a | 0 | n/a | 2.0 | n/a | FAILED: extract: lza failed (exit status: 1) |"), "{line}");
    }

    #[test]
    fn helpers() {
        assert_eq!(
            parse_rss("Command exited with non-zero status 1\n1234\n"),
            Some(1234)
        );
        assert_eq!(parse_rss("oops"), None);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(sig3(1234.5), "1234");
        assert_eq!(sig3(0.012345), "0.0123");
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(0.21), 0.25);
        assert_eq!(shell_quote(OsStr::new("a b'c")), "'a b'\\''c'");
        assert_eq!(
            common_dir(&[PathBuf::from("/a/b/c"), PathBuf::from("/a/d")]),
            PathBuf::from("/a")
        );
        assert_eq!(Tool::parse("zstd"), Some(Tool::Zstd));
        assert_eq!(Tool::parse("lz4"), None);
    }

    #[test]
    fn plans_follow_the_brief() {
        let ctx = Ctx {
            threads: 3,
            lza_args: vec!["-l".into(), "9".into()],
            tar: Some("/usr/bin/tar".into()),
        };
        let one = Job::placeholder(false);
        let tree = Job::placeholder(true);
        let a = Path::new("A");
        let o = Path::new("O");
        let r = |t: Tool, j: &Job| {
            let exe = PathBuf::from(format!("/bin/{}", t.name()));
            (
                render_plan(&compress_plan(&ctx, t, &exe, j, a)),
                render_plan(&extract_plan(&ctx, t, &exe, j, a, o)),
            )
        };
        assert_eq!(
            r(Tool::Lza, &one),
            (
                "lza c -l 9 -T 3 -f A -C DIR -- FILE".into(),
                "lza x -T 3 -f A -C O".into()
            )
        );
        assert_eq!(
            r(Tool::Xz, &one),
            (
                "xz -9e -T1 -c -- DIR/FILE > A".into(),
                "xz -dc -- A > O/FILE".into()
            )
        );
        assert_eq!(
            r(Tool::Zstd, &tree),
            (
                "tar -cf - -C DIR -- PATH... | zstd -q -19 --long -T3 -c > A".into(),
                "zstd -q -dc --long -- A | tar -xf - -C O".into()
            )
        );
        assert_eq!(
            r(Tool::Xz, &tree).0,
            "tar -cf - -C DIR -- PATH... | xz -9e -T3 -c > A"
        );
        assert_eq!(r(Tool::Bzip2, &one).0, "bzip2 -9 -c -- DIR/FILE > A");
    }

    #[test]
    fn jobs_from_paths() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::write(root.join("b.txt"), "bb").unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::write(root.join("sub/deeper/c.txt"), "ccc").unwrap();
        fs::write(root.join("empty"), "").unwrap();
        fs::write(d.path().join("single.bin"), "1234").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
        let jobs = collect_jobs(&[root.clone(), d.path().join("single.bin")], true).unwrap();
        let labels: Vec<_> = jobs.iter().map(|j| j.label.clone()).collect();
        // Relative to the arguments, each prefixed by its argument's name
        // when there are several (a file argument is its name).
        assert_eq!(
            labels,
            vec![
                "root/a.txt",
                "root/b.txt",
                "root/empty",
                "root/sub/deeper/c.txt",
                "single.bin",
                "whole tree (5 files)"
            ]
        );
        let one = collect_jobs(std::slice::from_ref(&root), false).unwrap();
        assert_eq!(one[3].label, "sub/deeper/c.txt");
        assert!(jobs[2].skip_empty && !jobs[0].skip_empty);
        assert_eq!(jobs[3].names, vec![OsString::from("c.txt")]);
        let t = &jobs[5];
        assert!(t.tree);
        assert_eq!(t.bytes, 10);
        assert_eq!(
            t.names,
            vec![OsString::from("root"), OsString::from("single.bin")]
        );
        assert_eq!(t.files[3].0, PathBuf::from("root/sub/deeper/c.txt"));
        assert_eq!(
            fs::canonicalize(&t.base).unwrap(),
            fs::canonicalize(d.path()).unwrap()
        );
        let h = hash_sources(t).unwrap();
        assert_eq!(h[4].1, 4);
        assert_eq!(h[4].2, xxhash_rust::xxh3::xxh3_128(b"1234"));
    }

    /// End to end with gzip and a fake `lza` (a shell script over tar), so it
    /// runs without lza being built. Skips when sh, tar or gzip is missing.
    #[cfg(unix)]
    #[test]
    fn end_to_end_with_fake_lza() {
        use std::os::unix::fs::PermissionsExt;
        if ["sh", "tar", "gzip"]
            .iter()
            .any(|t| find_in_path(t).is_none())
        {
            eprintln!("skipping: sh, tar or gzip missing");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data dir");
        fs::create_dir_all(data.join("sub")).unwrap();
        let text: String = (0..2000)
            .map(|i| format!("line {i} of some text\n"))
            .collect();
        fs::write(data.join("t.txt"), &text).unwrap();
        fs::write(data.join("sub/u.txt"), text.repeat(2)).unwrap();
        // Fake lza: `c [opts] -T N -f A -C DIR -- NAMES`, `x -T N -f A -C OUT`.
        // CORRUPT=1 (set in a copy of the script) damages the first extracted file.
        let script = r#"#!/bin/sh
[ "$1" = --version ] && { echo "fake-lza 0.0"; exit 0; }
cmd=$1; shift
while [ $# -gt 0 ]; do
  case $1 in
    -f) a=$2; shift 2;; -C) dir=$2; shift 2;; -T|-l) shift 2;; --) shift; break;; *) shift;;
  esac
done
case $cmd in
  c) exec tar -cf "$a" -C "$dir" -- "$@";;
  x) tar -xf "$a" -C "$dir" || exit 1
     if [ -n "$CORRUPT" ]; then f=$(find "$dir" -type f | head -n 1); echo junk >> "$f"; fi;;
esac
"#;
        let exe = d.path().join("fake-lza");
        fs::write(&exe, script).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let out_dir = d.path().join("report");
        let opts = BenchOptions {
            paths: vec![data.clone()],
            lza_exe: exe.clone(),
            lza_args: vec!["-l".into(), "9".into()],
            threads: 2,
            out_dir: out_dir.clone(),
            whole_tree: true,
            tools: vec!["lza".into(), "gzip".into()],
            overwrite: true,
        };
        run(&opts).unwrap();
        let md = fs::read_to_string(out_dir.join("bench.md")).unwrap();
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| file"))
            .collect();
        assert_eq!(rows.len(), 6, "{md}"); // (2 files + whole tree) × 2 tools
        assert!(rows.iter().all(|r| r.ends_with("| ok |")), "{md}");
        let gz: Vec<&str> = rows
            .iter()
            .find(|r| r.contains("t.txt | gzip"))
            .unwrap()
            .split(" | ")
            .collect();
        assert_eq!(gz[2], text.len().to_string());
        let bpb: f64 = gz[4].parse().unwrap();
        assert!(bpb > 0.0 && bpb < 2.0, "gzip on repetitive text: {bpb}");
        assert!(md.contains("whole tree (2 files) | lza | 134670 |"), "{md}");
        assert!(md.contains("fake-lza 0.0"), "{md}");
        assert!(md.contains("; language-model kernel path: "), "{md}");
        // Labels are relative to the argument.
        assert!(md.contains("\n| sub/u.txt | gzip | "), "{md}");
        // The reports are not replaced without --overwrite.
        let err = run(&BenchOptions {
            overwrite: false,
            ..opts.clone()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("bench.md: already exists (use --overwrite to replace it)"),
            "{err}"
        );
        let svg = fs::read_to_string(out_dir.join("bench.svg")).unwrap();
        check_xml(&svg).unwrap();
        assert_eq!(svg.matches("class=\"pt\"").count(), 6);

        // A corrupting extractor is caught, reported, and fails the run.
        let bad = d.path().join("bad-lza");
        fs::write(&bad, script.replacen("\n", "\nCORRUPT=1\n", 1)).unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o755)).unwrap();
        let err = run(&BenchOptions {
            lza_exe: bad,
            tools: vec!["lza".into()],
            whole_tree: false,
            ..opts.clone()
        });
        assert!(format!("{:#}", err.unwrap_err()).contains("2 of 2 runs failed"));
        let md = fs::read_to_string(out_dir.join("bench.md")).unwrap();
        assert_eq!(
            md.matches("differs after the round trip").count(),
            2,
            "{md}"
        );

        // Unknown tools are refused before anything runs.
        let err = run(&BenchOptions {
            tools: vec!["lz4".into()],
            ..opts.clone()
        })
        .unwrap_err();
        assert!(err.to_string().contains("unknown tool"));
        // A missing tool is skipped with a note.
        let err = run(&BenchOptions {
            lza_exe: d.path().join("nope"),
            tools: vec!["lza".into()],
            ..opts
        });
        assert!(err.is_ok());
        let md = fs::read_to_string(out_dir.join("bench.md")).unwrap();
        assert!(md.contains("lza skipped: not found"), "{md}");
    }
}
