//! The `lza` command line: a thin layer over the library.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use lza::codec::TextCoder;
use lza::create::{self, CreateOptions, Method};
use lza::extract::{self, DestWriter, Discard, ReadOptions};
use lza::format::{Entry, EntryKind};
use lza::reader::Limits;

#[derive(Parser)]
#[command(
    name = "lza",
    version,
    about = "A tar-like archiver that compresses text with a language model and everything else with zstd"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an archive from files and directories.
    #[command(visible_alias = "c")]
    Create(CreateArgs),
    /// Extract an archive.
    #[command(visible_alias = "x")]
    Extract(ExtractArgs),
    /// List an archive's entries.
    #[command(visible_alias = "t")]
    List(ListArgs),
    /// Check an archive completely (every checksum) without writing anything.
    Verify(VerifyArgs),
    /// Compare lza with xz, zstd and bzip2 on files (writes bench.md and bench.svg).
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Write bench.md and bench.svg into DIR.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    #[command(flatten)]
    threads: ThreadsArg,
    /// Also benchmark all PATHs together as one archive.
    #[arg(long = "whole-tree")]
    whole_tree: bool,
    /// Tools to compare: lza, xz, zstd, bzip2, gzip.
    #[arg(
        long = "tools",
        value_delimiter = ',',
        default_value = "lza,xz,zstd,bzip2"
    )]
    tools: Vec<String>,
    /// Files and directories to benchmark.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Extra arguments for `lza c`, after `--` (e.g. `-- -l 9`).
    #[arg(last = true, allow_hyphen_values = true)]
    lza_args: Vec<String>,
}

#[derive(Args)]
struct ArchiveArg {
    /// Archive file, or - for standard input/output.
    #[arg(short = 'f', long = "file", default_value = "-")]
    file: String,
}

#[derive(Args)]
struct ThreadsArg {
    /// Worker threads (default: all cores).
    #[arg(short = 'T', long = "threads")]
    threads: Option<usize>,
}

impl ThreadsArg {
    fn get(&self) -> usize {
        self.threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[derive(Args)]
struct ModelArgs {
    /// Language model file (default: the embedded model).
    #[arg(long = "model", value_name = "FILE")]
    model: Option<PathBuf>,
    /// Chunks the language model codes side by side.
    #[arg(long = "batch", value_name = "B", default_value_t = lza::models::DEFAULT_BATCH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MethodArg {
    Default,
    Max,
    Cm,
    Fast,
    Zstd,
    /// The language model alone (codec 2), for comparisons and tests.
    #[value(hide = true)]
    Lm,
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    archive: ArchiveArg,
    /// Change to DIR before reading the inputs.
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Leave out paths matching GLOB (matched against the archive path and each name).
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    #[command(flatten)]
    threads: ThreadsArg,
    /// List entries as they are archived.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// zstd level, 1 (fast) to 9 (small): for --method zstd, and for the zstd
    /// frames the other methods keep where they are smaller.
    #[arg(short = 'l', long = "level", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    level: u32,
    /// Replace the archive file if it exists.
    #[arg(long = "overwrite")]
    overwrite: bool,
    #[command(flatten)]
    model: ModelArgs,
    /// How to code file data: default (context mixing with the language
    /// model on text), max (the same in larger chunks: smaller, slower), cm
    /// (context mixing, no model), fast (lighter context mixing, no model),
    /// zstd (zstd at --level for everything).
    #[arg(short = 'm', long = "method", value_enum, default_value_t = MethodArg::Default)]
    method: MethodArg,
    /// Use no language model (with the default or max method: context
    /// mixing without it, as --method cm).
    #[arg(long = "no-model", conflicts_with = "model")]
    no_model: bool,
    /// Segment size in bytes (the archive's largest chunk).
    #[arg(long = "chunk-size", default_value_t = create::DEFAULT_CHUNK_SIZE, hide = true)]
    chunk_size: u32,
    /// Files and directories to archive.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct ExtractArgs {
    #[command(flatten)]
    archive: ArchiveArg,
    /// Extract into DIR (created if missing).
    #[arg(
        short = 'C',
        long = "directory",
        value_name = "DIR",
        default_value = "."
    )]
    directory: PathBuf,
    #[command(flatten)]
    threads: ThreadsArg,
    /// List entries as they are extracted.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Replace existing files (never directories).
    #[arg(long = "overwrite")]
    overwrite: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct LimitArgs {
    /// Refuse archives holding more than BYTES of data (checked at each
    /// chunk before it is decoded: bounds the output and the decoding work).
    #[arg(long = "max-size", value_name = "BYTES")]
    max_size: Option<u64>,
    /// Memory for context-mixing decoders' tables, in MiB, shared by all
    /// threads (decoders wait for it; one chunk that needs more runs alone).
    #[arg(long = "max-memory", value_name = "MIB", default_value_t = (lza::cm::budget::DEFAULT_DECODE_MEMORY >> 20) as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: u64,
}

impl LimitArgs {
    /// The reader's limits; sets the decoders' memory budget.
    fn apply(&self) -> Limits {
        lza::cm::budget::DECODE.set_total((self.max_memory as usize).saturating_mul(1 << 20));
        let mut limits = Limits::default();
        if let Some(m) = self.max_size {
            limits.max_size = m;
        }
        limits
    }
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    archive: ArchiveArg,
    /// Show type, mode, size and time, as `ls -l` does.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    archive: ArchiveArg,
    #[command(flatten)]
    threads: ThreadsArg,
    /// List entries as they are checked.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    model: ModelArgs,
}

/// Exit code of a `create` that wrote its archive but left inputs out or
/// archived files that changed as they were read (the count is on stderr).
const EXIT_WARNINGS: u8 = 4;

/// Signals that end lza: the signal thread removes the temporary files
/// first, then ends the process as the signal would have.
const STOP_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

fn handle_signals() {
    // SIGXFSZ (a write past the file-size limit) would end the process
    // without a word; handled, the write fails with EFBIG and lza reports
    // it like any other write error, removing what it wrote.
    let _ = signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let Ok(mut signals) = signal_hook::iterator::Signals::new(STOP_SIGNALS) else {
        return;
    };
    std::thread::Builder::new()
        .name("lza-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                lza::cleanup::remove_all();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        })
        .ok();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    handle_signals();
    let result = match cli.command {
        Command::Create(a) => run_create(a),
        Command::Extract(a) => run_extract(a).map(|_| ExitCode::SUCCESS),
        Command::List(a) => run_list(a).map(|_| ExitCode::SUCCESS),
        Command::Verify(a) => run_verify(a).map(|_| ExitCode::SUCCESS),
        Command::Bench(a) => lza::bench::run(&lza::bench::BenchOptions {
            paths: a.paths,
            lza_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lza")),
            lza_args: a.lza_args,
            threads: a.threads.get(),
            out_dir: a.out_dir,
            whole_tree: a.whole_tree,
            tools: a.tools,
        })
        .map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lza: {e:#}");
            match is_internal(&e) {
                true => ExitCode::from(EXIT_INTERNAL),
                false => ExitCode::FAILURE,
            }
        }
    }
}

/// Exit code for a fault inside lza (README, "Exit codes"): a script can
/// tell it from a corrupt archive (1) and retry or report it.
const EXIT_INTERNAL: u8 = 3;

fn is_internal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<lza::Error>()
            .is_some_and(lza::Error::is_internal)
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<lza::Error>()
            .is_some_and(lza::Error::is_broken_pipe)
            || c.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn progress_bar(total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                .expect("valid template"),
        ),
    }
}

/// The progress display of extract and verify: the archive offset read,
/// and the bytes decoded so far, redrawn every 200 ms so that a long
/// decode shows (the offset runs ahead of the decoders by up to the
/// pipeline's bound, then stands still while they work).
fn decode_progress(total: Option<u64>, quiet: bool) -> ProgressBar {
    let pb = progress_bar(total, quiet);
    if pb.is_hidden() {
        return pb;
    }
    let template = match total {
        Some(_) => "{bytes}/{total_bytes} {wide_bar} {msg} decoded, {elapsed}",
        None => "{spinner} {bytes} {msg} decoded, {elapsed}",
    };
    pb.set_style(ProgressStyle::with_template(template).expect("valid template"));
    let shown = pb.clone();
    std::thread::Builder::new()
        .name("lza-progress".into())
        .spawn(move || {
            while !shown.is_finished() {
                shown.set_message(indicatif::HumanBytes(lza::progress::decoded()).to_string());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
        .ok();
    pb
}

fn run_create(a: CreateArgs) -> anyhow::Result<ExitCode> {
    let base = a.directory.clone().unwrap_or_else(|| PathBuf::from("."));
    let excludes = create::exclude_set(&a.exclude)?;
    let mut warnings = create::Warnings::default();
    let sources = create::collect_sources(&base, &a.paths, &excludes, &mut warnings)?;
    for w in &warnings.messages {
        eprintln!("lza: {w}");
    }
    let listed = warnings.messages.len();
    if a.chunk_size == 0 || a.chunk_size > lza::format::MAX_CHUNK_LIMIT {
        bail!(
            "--chunk-size must be between 1 and {}",
            lza::format::MAX_CHUNK_LIMIT
        );
    }
    let threads = a.threads.get();
    let method = match (a.method, a.no_model) {
        (MethodArg::Default | MethodArg::Max, true) | (MethodArg::Cm, _) => Method::Cm,
        (MethodArg::Default, false) => Method::Default,
        (MethodArg::Max, false) => Method::Max,
        (MethodArg::Fast, _) => Method::Fast,
        (MethodArg::Zstd, _) => Method::Zstd,
        (MethodArg::Lm, true) => Method::Zstd,
        (MethodArg::Lm, false) => Method::Lm,
    };
    let lm = if !method.uses_lm() {
        None
    } else {
        let file = match &a.model.model {
            Some(path) => lza::models::ModelFile::read(path)?,
            None => lza::models::ModelFile::embedded(),
        };
        Some(lza::models::open_coder(&file, threads, a.model.batch)?)
    };
    let opts = CreateOptions {
        threads,
        level: a.level,
        chunk_size: a.chunk_size,
        method,
        lm,
    };
    let total: u64 = sources.iter().map(|s| s.entry.size).sum();
    let to_stdout = a.archive.file == "-";
    let pb = progress_bar(Some(total), a.verbose);
    // Verbose names go to stdout unless the archive does (as GNU tar does).
    let mut names: Box<dyn Write> = if to_stdout {
        Box::new(io::stderr())
    } else {
        Box::new(io::stdout())
    };
    let mut on_entry = |e: &Entry| {
        if a.verbose {
            let _ = writeln!(names, "{}", e.path);
        }
    };
    let mut on_progress = |n: u64| pb.inc(n);
    if to_stdout {
        let stdout = io::stdout();
        if stdout.is_terminal() {
            bail!("refusing to write an archive to a terminal (use -f FILE or redirect)");
        }
        let out = BufWriter::with_capacity(1 << 20, stdout.lock());
        create::write_archive(
            out,
            &sources,
            &opts,
            &mut on_entry,
            &mut on_progress,
            &mut warnings,
        )?;
    } else {
        let path = Path::new(&a.archive.file);
        if !a.overwrite && path.symlink_metadata().is_ok() {
            bail!(
                "{}: already exists (use --overwrite to replace it)",
                path.display()
            );
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Written under a temporary name, renamed when complete.
        let tmp = tempfile::Builder::new()
            .prefix(".lza-")
            // The usual 0o666 less umask, not tempfile's private 0o600.
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let _registered = lza::cleanup::register_path(tmp.path());
        let out = BufWriter::with_capacity(1 << 20, tmp);
        let out = create::write_archive_seekable(
            out,
            &sources,
            &opts,
            &mut on_entry,
            &mut on_progress,
            &mut warnings,
        )?;
        let tmp = out.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("{}: sync", path.display()))?;
        if a.overwrite {
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        } else {
            tmp.persist_noclobber(path)
                .map_err(|e| e.error)
                .with_context(|| format!("{}: cannot write", path.display()))?;
        }
    }
    pb.finish_and_clear();
    for w in &warnings.messages[listed..] {
        eprintln!("lza: {w}");
    }
    if !warnings.any() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut counts = Vec::new();
    if warnings.skipped > 0 {
        counts.push(format!("{} not archived", warnings.skipped));
    }
    if warnings.changed > 0 {
        counts.push(format!("{} changed as they were read", warnings.changed));
    }
    eprintln!(
        "lza: archive written, but inputs were left out or changed: {} (see above)",
        counts.join(", ")
    );
    Ok(ExitCode::from(EXIT_WARNINGS))
}

/// The archive input and its size when known.
fn open_input(file: &str) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if file == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            bail!("refusing to read an archive from a terminal (use -f FILE or redirect)");
        }
        Ok((
            Box::new(BufReader::with_capacity(1 << 20, stdin.lock())),
            None,
        ))
    } else {
        let f = File::open(file).with_context(|| format!("{file}: cannot open"))?;
        let len = f.metadata().ok().map(|m| m.len());
        Ok((Box::new(BufReader::with_capacity(1 << 20, f)), len))
    }
}

/// The language-model coder an archive needs.
type ModelCoder = Arc<dyn TextCoder>;

/// Read the archive's header to learn which model it needs, and find it
/// before anything is written. Returns the input with the header put back.
fn model_for(
    mut input: Box<dyn Read>,
    model: &ModelArgs,
    threads: usize,
) -> anyhow::Result<(Box<dyn Read>, Option<ModelCoder>)> {
    let mut head = Vec::with_capacity(lza::format::HEADER_LEN);
    input
        .by_ref()
        .take(lza::format::HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    let header = head
        .as_slice()
        .try_into()
        .ok()
        .and_then(|h| lza::format::Header::parse(h).ok());
    let coder = match header {
        Some(h) if !h.model_hash.is_none() => {
            let file = lza::models::find(h.model_hash, model.model.as_deref())?;
            Some(lza::models::open_coder(&file, threads, model.batch)?)
        }
        // No model needed, or a bad header that the reader will report.
        _ => None,
    };
    Ok((Box::new(io::Cursor::new(head).chain(input)), coder))
}

fn run_extract(a: ExtractArgs) -> anyhow::Result<()> {
    let (input, len) = open_input(&a.archive.file)?;
    let threads = a.threads.get();
    let (input, lm) = model_for(input, &a.model, threads)?;
    let opts = ReadOptions {
        threads,
        limits: a.limits.apply(),
        lm,
    };
    let mut dest = DestWriter::new(&a.directory, a.overwrite);
    let pb = decode_progress(len, a.verbose);
    let mut out = io::stdout().lock();
    extract::read_archive(
        input,
        &opts,
        &mut dest,
        &mut |e| {
            if a.verbose {
                let _ = writeln!(out, "{}", e.path);
            }
        },
        &mut |off| pb.set_position(off),
    )?;
    pb.finish_and_clear();
    Ok(())
}

fn run_verify(a: VerifyArgs) -> anyhow::Result<()> {
    let (input, len) = open_input(&a.archive.file)?;
    let threads = a.threads.get();
    let (input, lm) = model_for(input, &a.model, threads)?;
    let opts = ReadOptions {
        threads,
        limits: a.limits.apply(),
        lm,
    };
    let pb = decode_progress(len, a.verbose);
    let mut out = io::stdout().lock();
    extract::read_archive(
        input,
        &opts,
        &mut Discard,
        &mut |e| {
            if a.verbose {
                let _ = writeln!(out, "{}", e.path);
            }
        },
        &mut |off| pb.set_position(off),
    )?;
    pb.finish_and_clear();
    Ok(())
}

fn run_list(a: ListArgs) -> anyhow::Result<()> {
    let (input, _) = open_input(&a.archive.file)?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut result = Ok(());
    extract::list_archive(input, Limits::default(), &mut |e| {
        if result.is_ok() {
            result = writeln!(
                out,
                "{}",
                if a.verbose {
                    long_line(e)
                } else {
                    e.path.clone()
                }
            );
        }
    })?;
    result.and_then(|_| out.flush())?;
    Ok(())
}

/// One `tar -tv` style line.
fn long_line(e: &Entry) -> String {
    let mut mode = String::with_capacity(10);
    mode.push(e.kind.type_char());
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let link = match e.kind {
        EntryKind::Symlink => format!(" -> {}", e.link),
        EntryKind::Hardlink => format!(" link to {}", e.link),
        _ => String::new(),
    };
    format!(
        "{mode} {:>12} {} {}{link}",
        e.size,
        utc_time(e.mtime_ns),
        e.path
    )
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, H. Hinnant's algorithm).
fn utc_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60
    )
}
