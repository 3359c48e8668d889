//! The `lza` command line: a thin layer over the library.

#![deny(unsafe_code)]

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use lza::archive::create::{self, CreateOptions, Method};
use lza::archive::extract::{self, DestWriter, ReadOptions, Sink};
use lza::archive::select::{LinkRules, Members, Select, ToWriter};
use lza::codecs::TextCoder;
use lza::container::reader::{ArchiveReader, Event, Limits};
use lza::format::{CodecId, Entry, EntryKind, ModelHash};
use lza::runtime::names::{escape, escape_line};

mod bench;

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
    /// Extract an archive, or the members named.
    #[command(visible_alias = "x")]
    Extract(ExtractArgs),
    /// List an archive's entries.
    #[command(visible_alias = "t")]
    List(ListArgs),
    /// Check an archive completely (every checksum, and the links extraction
    /// would refuse) without writing anything.
    Verify(VerifyArgs),
    /// Compare lza with xz, zstd and bzip2 on files (writes bench.md and bench.svg).
    Bench(BenchArgs),
    /// Print a shell completion script (e.g. `lza completions bash >
    /// /etc/bash_completion.d/lza`).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into DIR.
    Man(ManArgs),
}

#[derive(Args)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args)]
struct ManArgs {
    /// Write lza.1 and a page per command (lza-create.1, ...) into DIR.
    #[arg(long = "out-dir", value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Write bench.md and bench.svg into DIR.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Replace bench.md and bench.svg if they exist.
    #[arg(long = "overwrite")]
    overwrite: bool,
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
    /// Archive file, or - for standard output.
    #[arg(short = 'f', long = "file", value_name = "FILE", default_value = "-")]
    file: String,
}

#[derive(Args)]
struct ArchiveIn {
    /// Archive file, or - for standard input (the default); without -f, the
    /// first ARCHIVE argument names it.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
}

impl ArchiveIn {
    /// The archive and the member names: without `-f`, the first
    /// positional argument is the archive.
    fn split(&self, mut positional: Vec<String>) -> (String, Vec<String>) {
        match &self.file {
            Some(f) => (f.clone(), positional),
            None if positional.is_empty() => ("-".into(), positional),
            None => {
                let archive = positional.remove(0);
                (archive, positional)
            }
        }
    }
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
    #[arg(long = "batch", value_name = "B", default_value_t = lza::codecs::models::DEFAULT_BATCH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch: usize,
    /// Where the language model runs: cpu, cuda (GPU 0; an error where none
    /// is usable) or auto (the GPU where one is usable, else the CPU). The
    /// archive is the same on every device.
    #[arg(long = "device", value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
    Auto,
}

impl DeviceArg {
    fn device(self) -> lza::codecs::lm::Device {
        match self {
            DeviceArg::Cpu => lza::codecs::lm::Device::Cpu,
            DeviceArg::Cuda => lza::codecs::lm::Device::Cuda,
            DeviceArg::Auto => lza::codecs::lm::Device::Auto,
        }
    }
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

/// How `-l` maps to zstd's levels, for help and errors.
const LEVELS: &str = "lza's levels are 1 (fast) to 9 (small), as -1 ... -9 or -l N; \
     they pick zstd levels 1, 3, 5, 7, 9, 12, 15, 17, 19 (zstd -19 is lza -9)";

fn parse_level(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n @ 1..=9) => Ok(n),
        _ => Err(LEVELS.into()),
    }
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    archive: ArchiveArg,
    /// Change to DIR before reading the inputs.
    #[arg(short = 'C', long = "directory", value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Leave out paths matching GLOB, unanchored as GNU tar: GLOB is matched
    /// against the archive path and each tail of it after a '/' ('docs/*',
    /// '*.o', 'build'); '*' matches '/' too.
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    #[command(flatten)]
    threads: ThreadsArg,
    /// List entries as they are archived, and print a summary.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Level, 1 (fast) to 9 (small), also as -1 ... -9: the zstd level for
    /// --method zstd and for the zstd frames the other methods keep where
    /// they are smaller (1, 3, 5, 7, 9, 12, 15, 17, 19).
    #[arg(short = 'l', long = "level", value_name = "N", default_value_t = 6, value_parser = parse_level)]
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
    /// Solid blocks: files smaller than half of SIZE bytes (K and M
    /// suffixes) are coded together, up to SIZE bytes per block, so that
    /// each learns from the others; 0: every file on its own.
    #[arg(long = "block-size", value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    block_size: usize,
    /// Order the files of solid blocks by extension, then name (7-Zip's
    /// solid order) instead of walk order.
    #[arg(long = "solid-sort", hide = true)]
    solid_sort: bool,
    /// Write no trailing index (format-spec 13). By default an archive
    /// written to a file gets one where it costs at most 1% of the
    /// archive, which makes it version 2 and lets `lza list` and ranges
    /// read it without reading the data; an archive written to standard
    /// output never has one.
    #[arg(long = "no-index")]
    no_index: bool,
    /// Write a trailing index whatever it costs (16 bytes per file, 8 per
    /// chunk).
    #[arg(long = "index", conflicts_with = "no_index")]
    index: bool,
    /// Files and directories to archive.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct ExtractArgs {
    #[command(flatten)]
    archive: ArchiveIn,
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
    /// Replace existing files (a directory is never replaced; with this
    /// flag an existing one takes the archive's mode and time).
    #[arg(long = "overwrite", conflicts_with_all = ["keep_old_files", "skip_old_files"])]
    overwrite: bool,
    /// Leave existing files alone, report each, extract the rest and exit 1
    /// (the default without --overwrite).
    #[arg(short = 'k', long = "keep-old-files")]
    keep_old_files: bool,
    /// Leave existing files alone silently.
    #[arg(long = "skip-old-files", conflicts_with = "keep_old_files")]
    skip_old_files: bool,
    /// Write the files' data to standard output, one after another, and
    /// create nothing.
    #[arg(short = 'O', long = "to-stdout")]
    to_stdout: bool,
    /// Remove N leading components from each name (entries with no more
    /// are skipped).
    #[arg(long = "strip-components", value_name = "N", default_value_t = 0)]
    strip_components: usize,
    /// MEMBERs are globs ('*', '?', '[...]' match '/' too), anchored at the
    /// start of the name; each selects what it matches and everything below.
    #[arg(long = "wildcards")]
    wildcards: bool,
    /// Create symbolic links with an absolute target too (as tar does). Such
    /// a link points out of the destination: lza never writes through one,
    /// but whatever later follows it (a program, a second extraction by
    /// another tool) reaches the file it names, e.g. in /etc.
    #[arg(long = "absolute-links")]
    absolute_links: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The archive (when -f is not given), then the members to extract: a
    /// name selects that entry and everything below it.
    #[arg(value_name = "ARCHIVE|MEMBER")]
    positional: Vec<String>,
}

#[derive(Args)]
struct LimitArgs {
    /// Refuse archives holding more than BYTES of data (checked at each
    /// chunk before it is decoded: bounds the output and the decoding work).
    #[arg(long = "max-size", value_name = "BYTES")]
    max_size: Option<u64>,
    /// Memory for context-mixing decoders' tables, in MiB, shared by all
    /// threads (decoders wait for it; one chunk that needs more runs alone).
    /// Default: 192 MiB per thread, at least 1024, at most a quarter of
    /// physical memory (unless that is less than 1024).
    #[arg(long = "max-memory", value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_memory: Option<u64>,
}

impl LimitArgs {
    /// The reader's limits; sets the decoders' memory budget (its default
    /// for `threads` threads).
    fn apply(&self, threads: usize) -> Limits {
        use lza::codecs::cm::budget;
        budget::DECODE.set_total(match self.max_memory {
            Some(mib) => (mib as usize).saturating_mul(1 << 20),
            None => budget::default_decode_memory(threads),
        });
        let mut limits = Limits::default();
        if let Some(m) = self.max_size {
            limits.max_size = m;
        }
        limits
    }
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct ListArgs {
    #[command(flatten)]
    archive: ArchiveIn,
    /// Show type, mode, size, compressed size, ratio, codec and local time,
    /// then totals and the model the archive needs.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Sizes as 1.2K, 34M (the default when standard output is a terminal).
    #[arg(short = 'h', long = "human-readable")]
    human: bool,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// The archive (when -f is not given), then the members to list.
    #[arg(value_name = "ARCHIVE|MEMBER")]
    positional: Vec<String>,
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    archive: ArchiveIn,
    #[command(flatten)]
    threads: ThreadsArg,
    /// List entries as they are checked.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Accept symbolic links with an absolute target (as `lza x
    /// --absolute-links` would create them).
    #[arg(long = "absolute-links")]
    absolute_links: bool,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The archive, when -f is not given.
    #[arg(value_name = "ARCHIVE")]
    archive_pos: Option<String>,
}

/// Options of `create` that take a value in the next argument: what
/// follows them is never a level flag.
const CREATE_VALUE_OPTIONS: &[&str] = &[
    "-f",
    "--file",
    "-C",
    "--directory",
    "--exclude",
    "-T",
    "--threads",
    "-l",
    "--level",
    "--model",
    "--batch",
    "--device",
    "-m",
    "--method",
    "--chunk-size",
    "--block-size",
];

/// A size in bytes, with an optional K or M suffix (powers of 1024).
fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, unit) = match s.strip_suffix(['K', 'k']) {
        Some(d) => (d, 1 << 10),
        None => match s.strip_suffix(['M', 'm']) {
            Some(d) => (d, 1 << 20),
            None => (s, 1),
        },
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|&n| n <= 64 << 20)
        .ok_or_else(|| format!("{s:?} is not a size of at most 64M"))
}

/// zstd's habit: `lza c -9 ...` is `-l 9`. Numbers past 9 (`-19`) get an
/// error that says what lza's levels are.
fn level_flags(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let is_create = args.get(1).is_some_and(|a| a == "create" || a == "c");
    if !is_create {
        return Ok(args);
    }
    let mut out = Vec::with_capacity(args.len());
    let mut takes_value = false;
    let mut rest = false;
    for a in args {
        let s = a.to_str().unwrap_or("");
        if rest || takes_value {
            takes_value = false;
            out.push(a);
            continue;
        }
        if s == "--" {
            rest = true;
        } else if let Some(digits) = s.strip_prefix('-')
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            match digits.parse::<u32>() {
                Ok(n @ 1..=9) => {
                    out.push(format!("--level={n}").into());
                    continue;
                }
                _ => return Err(format!("{s}: no such level; {LEVELS}")),
            }
        }
        takes_value = CREATE_VALUE_OPTIONS.contains(&s);
        out.push(a);
    }
    Ok(out)
}

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
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let Ok(mut signals) = signal_hook::iterator::Signals::new(STOP_SIGNALS) else {
        return;
    };
    std::thread::Builder::new()
        .name("lza-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                lza::runtime::cleanup::remove_all();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        })
        .ok();
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

fn main() -> ExitCode {
    let args = match level_flags(std::env::args_os().collect()) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("lza: {msg}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    handle_signals();
    let result = match cli.command {
        Command::Create(a) => run_create(a),
        Command::Extract(a) => run_extract(a),
        Command::List(a) => run_list(a),
        Command::Verify(a) => run_verify(a),
        Command::Completions(a) => {
            clap_complete::generate(a.shell, &mut Cli::command(), "lza", &mut io::stdout());
            Ok(())
        }
        Command::Man(a) => run_man(a),
        Command::Bench(a) => bench::run(&bench::BenchOptions {
            paths: a.paths,
            lza_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lza")),
            lza_args: a.lza_args,
            threads: a.threads.get(),
            out_dir: a.out_dir,
            whole_tree: a.whole_tree,
            tools: a.tools,
            overwrite: a.overwrite,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lza: {}", error_text(&e));
            match is_internal(&e) {
                true => ExitCode::from(EXIT_INTERNAL),
                false => ExitCode::FAILURE,
            }
        }
    }
}

/// The error and its causes, each once: a message that already ends with
/// its cause's text (lza's own errors name the OS error) does not repeat
/// it; control and bidirectional characters escaped.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || text.ends_with(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    escape_line(&text).into_owned()
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("lza: {}", escape_line(&msg.to_string()));
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<lza::Error>()
            .is_some_and(lza::Error::is_broken_pipe)
            || c.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run_man(a: ManArgs) -> anyhow::Result<()> {
    let cmd = Cli::command();
    match a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir).with_context(|| format!("{}", dir.display()))?;
        }
        None => {
            let mut out = io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// A progress display on stderr (when it is a terminal) that follows the
/// bytes actually coded or decoded ([`lza::runtime::progress`]), redrawn five times
/// a second whether or not a chunk just finished.
struct Progress {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// A bar of `total` bytes (a spinner if unknown) on stderr, or none when
    /// stderr is not a terminal or `names_shown` (with `-v` each entry's
    /// name is printed, as tar does, and a bar redrawn under them would
    /// garble the list).
    fn start(total: Option<u64>, names_shown: bool) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if names_shown || !io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
                stop,
                ticker: None,
            };
        }
        let bar = match total {
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
        };
        let base = lza::runtime::progress::done();
        let (b, s) = (bar.clone(), stop.clone());
        let ticker = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let done = lza::runtime::progress::done() - base;
                b.set_position(total.map_or(done, |t| done.min(t)));
                b.tick();
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Progress {
            bar,
            stop,
            ticker: Some(ticker),
        }
    }

    /// What `-v` prints for each entry: its name, escaped, on a line of
    /// its own around the bar; on stdout, or on stderr when `stdout_taken`
    /// (the archive or the files' data go there, as GNU tar does). Without
    /// `verbose`, nothing.
    fn name_printer(&self, verbose: bool, stdout_taken: bool) -> impl FnMut(&Entry) + use<> {
        let bar = self.bar.clone();
        let mut out: Box<dyn Write> = if stdout_taken {
            Box::new(io::stderr())
        } else {
            Box::new(io::stdout())
        };
        move |e: &Entry| {
            if verbose {
                bar.suspend(|| {
                    let _ = writeln!(out, "{}", escape(&e.path));
                });
            }
        }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.bar.finish_and_clear();
    }
}

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Counting<BufWriter<W>> {
    /// The archive's output: `inner` behind a 1 MiB buffer, counted.
    fn buffered(inner: W) -> Self {
        Counting {
            inner: BufWriter::with_capacity(1 << 20, inner),
            n: 0,
        }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Seek> Seek for Counting<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// An OS error without the temporary file name tempfile adds to it.
fn plain_io(e: io::Error) -> io::Error {
    if let Some(code) = e.raw_os_error() {
        return io::Error::from_raw_os_error(code);
    }
    let inner = e
        .get_ref()
        .and_then(|i| i.source())
        .and_then(|s| s.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error);
    match inner {
        Some(code) => io::Error::from_raw_os_error(code),
        // tempfile's "... at path \"dir/.lza-XXXX\"": the OS's words only.
        None => {
            let text = e.to_string();
            let text = text.split(" at path ").next().unwrap_or_default();
            io::Error::new(e.kind(), text.to_owned())
        }
    }
}

fn run_create(a: CreateArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    // (an empty base: paths in messages as the user gave them)
    let base = a.directory.clone().unwrap_or_default();
    let excludes = create::exclude_set(&a.exclude)?;
    let mut warnings = create::Warnings::default();
    let sources = create::collect_sources(&base, &a.paths, &excludes, &mut warnings)?;
    for w in &warnings.messages {
        warn(w);
    }
    let listed = warnings.messages.len();
    let links: Vec<(&str, &str)> = sources
        .iter()
        .filter(|s| s.entry.kind == EntryKind::Symlink)
        .map(|s| (s.entry.path.as_str(), s.entry.link.as_str()))
        .collect();
    for (path, reason) in lza::archive::symlinks::refused(&links, false)? {
        warn(format_args!(
            "{path}: {reason}; lza x will skip this link{}",
            if reason.ends_with("is absolute") {
                " (unless --absolute-links)"
            } else {
                ""
            }
        ));
    }
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
            Some(path) => lza::codecs::models::ModelFile::read(path)?,
            None => lza::codecs::models::ModelFile::embedded(),
        };
        Some(lza::codecs::models::open_coder_on(
            &file,
            a.model.device.device(),
            threads,
            a.model.batch,
        )?)
    };
    let opts = CreateOptions {
        threads,
        level: a.level,
        chunk_size: a.chunk_size,
        method,
        lm,
        solid: create::Solid {
            block_size: a.block_size.min(a.chunk_size as usize),
            sort: a.solid_sort,
        },
    };
    let total: u64 = sources.iter().map(|s| s.entry.size).sum();
    let to_stdout = a.archive.file == "-";
    let path = Path::new(&a.archive.file);
    let mut tmp = None;
    if to_stdout {
        if io::stdout().is_terminal() {
            bail!("refusing to write an archive to a terminal (use -f FILE or redirect)");
        }
    } else {
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
        // A missing directory is named as such (not by the temporary name).
        std::fs::metadata(dir).with_context(|| {
            format!(
                "{}: cannot create the archive: {}",
                path.display(),
                dir.display()
            )
        })?;
        // Written under a temporary name, renamed when complete.
        tmp = Some(
            tempfile::Builder::new()
                .prefix(".lza-")
                // The usual 0o666 less umask, not tempfile's private 0o600.
                .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                .tempfile_in(dir)
                .map_err(plain_io)
                .with_context(|| {
                    format!(
                        "{}: cannot create the archive in {}",
                        path.display(),
                        dir.display()
                    )
                })?,
        );
    }
    let pb = Progress::start(Some(total), a.verbose);
    let mut on_entry = pb.name_printer(a.verbose, to_stdout);
    let mut on_progress = |_: u64| {};
    let written = match tmp {
        None => {
            let out = create::write_archive(
                Counting::buffered(io::stdout().lock()),
                &sources,
                &opts,
                &mut on_entry,
                &mut on_progress,
                &mut warnings,
            )?;
            out.n
        }
        Some(tmp) => {
            let _registered = lza::runtime::cleanup::register_path(tmp.path());
            let out = create::write_archive_seekable(
                Counting::buffered(tmp),
                &sources,
                &opts,
                &mut on_entry,
                &mut on_progress,
                &mut warnings,
            )?;
            let mut n = out.n;
            let mut tmp = out.inner.into_inner().map_err(|e| e.into_error())?;
            if !a.no_index {
                // Read back through the streaming reader and indexed
                // (format-spec 13), as `lza::container::index::seal` does for any
                // finished archive, unless the index would cost more than it
                // is worth.
                let keep = |index_len, member_len| {
                    a.index || lza::container::index::worth_indexing(index_len, member_len)
                };
                if let Some(sealed) = lza::container::index::seal_if(tmp.as_file_mut(), keep)? {
                    n = sealed.len;
                }
            }
            tmp.as_file()
                .sync_all()
                .with_context(|| format!("{}: sync", path.display()))?;
            let persisted = if a.overwrite {
                tmp.persist(path).map_err(|e| e.error)
            } else {
                tmp.persist_noclobber(path).map_err(|e| e.error)
            };
            persisted.with_context(|| format!("{}: cannot write", path.display()))?;
            n
        }
    };
    pb.finish();
    if a.verbose || io::stderr().is_terminal() {
        let files = sources
            .iter()
            .filter(|s| s.entry.kind == EntryKind::File)
            .count();
        eprintln!(
            "{}",
            summary(files, total, written, started.elapsed().as_secs_f64())
        );
    }
    for w in &warnings.messages[listed..] {
        warn(w);
    }
    if !warnings.any() {
        return Ok(());
    }
    // As GNU tar: the archive is written, the exit code says that it does
    // not hold every input as it was (README, exit codes).
    let mut counts = Vec::new();
    if warnings.skipped > 0 {
        counts.push(format!("{} not archived", warnings.skipped));
    }
    if warnings.changed > 0 {
        counts.push(format!("{} changed as they were read", warnings.changed));
    }
    bail!(
        "archive written, but inputs were left out or changed: {} (see above)",
        counts.join(", ")
    )
}

/// zstd's closing line: "120 files, 125.4 MiB -> 18.3 MiB (14.6%), 6 m 04 s, 345 KiB/s".
fn summary(files: usize, raw: u64, archive: u64, secs: f64) -> String {
    let ratio = if raw == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * archive as f64 / raw as f64)
    };
    format!(
        "{files} file{}, {} -> {} ({ratio}), {}, {}/s",
        if files == 1 { "" } else { "s" },
        size_units(raw),
        size_units(archive),
        duration(secs),
        size_units((raw as f64 / secs.max(1e-3)) as u64)
    )
}

/// "512 B", "1.5 KiB", "125.4 MiB".
fn size_units(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// "0.42 s", "12.3 s", "6 m 04 s", "2 h 05 m".
fn duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.2} s")
    } else if secs < 60.0 {
        format!("{secs:.1} s")
    } else if secs < 3600.0 {
        let s = secs as u64;
        format!("{} m {:02} s", s / 60, s % 60)
    } else {
        let m = secs as u64 / 60;
        format!("{} h {:02} m", m / 60, m % 60)
    }
}

/// The archive input, and for a file the total data size its end record
/// declares (for progress; `None` if it cannot be read).
fn open_input(file: &str) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if file == "-" {
        let stdin = io::stdin();
        if stdin.is_terminal() {
            bail!(
                "refusing to read an archive from a terminal (name it: lza x ARCHIVE, or -f FILE, or redirect)"
            );
        }
        Ok((
            Box::new(BufReader::with_capacity(1 << 20, stdin.lock())),
            None,
        ))
    } else {
        let mut f = File::open(file).with_context(|| format!("{file}: cannot open"))?;
        let total = declared_total(&mut f);
        f.seek(SeekFrom::Start(0))
            .with_context(|| format!("{file}: cannot read"))?;
        Ok((Box::new(BufReader::with_capacity(1 << 20, f)), total))
    }
}

/// The total data size in the end record of the archive file `f` (in the
/// end records its indexes lead to, for an indexed archive).
fn declared_total(f: &mut File) -> Option<u64> {
    let len = f.metadata().ok()?.len();
    let end_len = lza::format::END_LEN as u64;
    if !f.metadata().ok()?.is_file() || len < end_len {
        return None;
    }
    if let Ok(Some(idx)) = lza::container::index::ArchiveIndex::open(&*f) {
        return Some(idx.raw_bytes());
    }
    f.seek(SeekFrom::Start(len - end_len)).ok()?;
    let mut b = [0u8; lza::format::END_LEN];
    f.read_exact(&mut b).ok()?;
    if b[0] != lza::format::TAG_END {
        return None;
    }
    lza::format::EndRecord::parse(&b).ok().map(|e| e.raw_bytes)
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
            let file = lza::codecs::models::find(h.model_hash, model.model.as_deref())?;
            Some(lza::codecs::models::open_coder_on(
                &file,
                model.device.device(),
                threads,
                model.batch,
            )?)
        }
        // No model needed, or a bad header that the reader will report.
        _ => None,
    };
    Ok((Box::new(io::Cursor::new(head).chain(input)), coder))
}

/// What `extract` and `verify` start with: the archive opened (a file or
/// standard input), the model its header names found, the options to read
/// it with, and the progress display (over the total a file declares).
fn open_archive(
    archive: &str,
    threads: &ThreadsArg,
    model: &ModelArgs,
    limits: &LimitArgs,
    verbose: bool,
) -> anyhow::Result<(Box<dyn Read>, ReadOptions, Progress)> {
    let (input, total) = open_input(archive)?;
    let threads = threads.get();
    let (input, lm) = model_for(input, model, threads)?;
    let opts = ReadOptions {
        threads,
        limits: limits.apply(threads),
        lm,
    };
    Ok((input, opts, Progress::start(total, verbose)))
}

fn run_extract(a: ExtractArgs) -> anyhow::Result<()> {
    let (archive, members) = a.archive.split(a.positional.clone());
    let members = if members.is_empty() {
        None
    } else {
        Some(Members::new(&members, a.wildcards)?)
    };
    let (input, opts, pb) = open_archive(&archive, &a.threads, &a.model, &a.limits, a.verbose)?;
    let mut dest = DestWriter::new(&a.directory, a.overwrite).keep_going(|e| warn(e));
    if a.skip_old_files {
        dest = dest.skip_old_files();
    }
    if a.absolute_links {
        dest = dest.allow_absolute_links();
    }
    let mut to_stdout = ToWriter::new(BufWriter::with_capacity(1 << 20, io::stdout().lock()));
    let inner: &mut dyn Sink = if a.to_stdout {
        &mut to_stdout
    } else {
        &mut dest
    };
    let mut select = Select::new(
        inner,
        members,
        a.strip_components,
        pb.name_printer(a.verbose, a.to_stdout),
        |e| warn(e),
    );
    let result = extract::read_archive(input, &opts, &mut select, &mut |_| {}, &mut |_| {});
    let skipped = select.failures();
    let unmatched: Vec<String> = select.unmatched().iter().map(|s| s.to_string()).collect();
    drop(select);
    pb.finish();
    if let Err(e) = result {
        dest.restore_dirs();
        return Err(e.into());
    }
    for m in &unmatched {
        warn(format_args!("{m}: not found in archive"));
    }
    let failed = skipped + dest.failures();
    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!(
            "{failed} entr{} not extracted",
            if failed == 1 { "y" } else { "ies" }
        ));
    }
    if !unmatched.is_empty() {
        problems.push(format!(
            "{} member name{} not found",
            unmatched.len(),
            if unmatched.len() == 1 { "" } else { "s" }
        ));
    }
    if !problems.is_empty() {
        bail!("{} (see above)", problems.join(", "));
    }
    Ok(())
}

fn run_verify(a: VerifyArgs) -> anyhow::Result<()> {
    let (archive, extra) = a.archive.split(a.archive_pos.iter().cloned().collect());
    if let Some(extra) = extra.first() {
        bail!(
            "{}: unexpected argument (the archive is given with -f)",
            escape(extra)
        );
    }
    let (input, opts, pb) = open_archive(&archive, &a.threads, &a.model, &a.limits, a.verbose)?;
    let mut rules = LinkRules::new();
    let mut on_entry = pb.name_printer(a.verbose, false);
    extract::read_archive(input, &opts, &mut rules, &mut on_entry, &mut |_| {})?;
    pb.finish();
    let refused = rules.refused(a.absolute_links)?;
    for (path, reason) in &refused {
        warn(format_args!("{path}: {reason}; lza x would skip this link"));
    }
    if !refused.is_empty() {
        bail!(
            "the data checks out, but extraction would skip {} link{} (see above)",
            refused.len(),
            if refused.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// What `lza t -v` knows of a file once its chunks are read.
#[derive(Default)]
struct Coded {
    /// Bytes of its frames in the archive (headers included).
    stored: u64,
    codecs: Vec<&'static str>,
    /// In a solid block: its data is coded with the block's other files.
    solid: bool,
}

/// A codec's name in listings.
fn codec_name(codec: CodecId, uses_model: bool) -> &'static str {
    match (codec, uses_model) {
        (CodecId::ContextMixing, true) => "cm+lm",
        (c, _) => c.name(),
    }
}

fn run_list(a: ListArgs) -> anyhow::Result<()> {
    let (archive, members) = a.archive.split(a.positional.clone());
    let mut members = if members.is_empty() {
        None
    } else {
        Some(Members::new(&members, false)?)
    };
    if !a.verbose && archive != "-" {
        let f = File::open(&archive).with_context(|| format!("{archive}: cannot open"))?;
        if f.metadata().is_ok_and(|m| m.is_file())
            && let Some(idx) = lza::container::index::ArchiveIndex::open(&f)?
        {
            return list_indexed(&f, &idx, members);
        }
    }
    let (input, _) = open_input(&archive)?;
    let human = a.human || io::stdout().is_terminal();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut reader = ArchiveReader::new(input, Limits::default())?;
    let hash = reader.header().model_hash;
    // The entries whose lines wait for their chunks (with -v).
    let mut pending: Option<(Vec<Entry>, Coded)> = None;
    let mut files = 0u64;
    let mut end = None;
    let mut write_err: io::Result<()> = Ok(());
    let mut emit = |line: String, write_err: &mut io::Result<()>| {
        if write_err.is_ok() {
            *write_err = writeln!(out, "{line}");
        }
    };
    loop {
        let ev = reader.next_event()?;
        let flush = !matches!(ev, Some(Event::Chunk(_)));
        if flush && let Some((entries, coded)) = pending.take() {
            for e in &entries {
                emit(long_line(e, &coded, human), &mut write_err);
            }
        }
        match ev {
            Some(Event::Entry { entry, .. }) => {
                files += u64::from(entry.kind == EntryKind::File);
                if let Some(m) = members.as_mut()
                    && !m.selects(&entry.path)
                {
                    continue;
                }
                if a.verbose {
                    pending = Some((vec![entry], Coded::default()));
                } else {
                    emit(escape(&entry.path).into_owned(), &mut write_err);
                }
            }
            Some(Event::Block { files: all, .. }) => {
                files += all.len() as u64;
                let chosen: Vec<Entry> = all
                    .into_iter()
                    .filter(|e| members.as_mut().is_none_or(|m| m.selects(&e.path)))
                    .collect();
                if a.verbose {
                    let coded = Coded {
                        solid: true,
                        ..Coded::default()
                    };
                    pending = Some((chosen, coded));
                } else {
                    for e in &chosen {
                        emit(escape(&e.path).into_owned(), &mut write_err);
                    }
                }
            }
            Some(Event::Chunk(c)) => {
                if let Some((_, coded)) = pending.as_mut() {
                    coded.stored += (lza::format::FRAME_HEADER_LEN + c.payload.len()) as u64;
                    let name = codec_name(
                        c.header.codec,
                        lza::codecs::uses_model(&c.header, &c.payload),
                    );
                    if !coded.codecs.contains(&name) {
                        coded.codecs.push(name);
                    }
                }
            }
            Some(Event::End(e)) => end = Some(e),
            None => break,
        }
        if end.is_some() {
            break;
        }
    }
    if a.verbose
        && let Some(end) = end
    {
        // A file's length counts its indexes too; from a pipe, the bytes
        // up to the last end record.
        let archive_len = std::fs::metadata(&archive)
            .ok()
            .filter(|m| archive != "-" && m.is_file())
            .map_or(end.stream_len + lza::format::END_LEN as u64, |m| m.len());
        let size = |n| if human { human_size(n) } else { n.to_string() };
        let ratio = if end.raw_bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * archive_len as f64 / end.raw_bytes as f64)
        };
        emit(
            format!(
                "total: {} entr{}, {files} file{}, {} -> {} ({ratio})",
                end.entries,
                if end.entries == 1 { "y" } else { "ies" },
                if files == 1 { "" } else { "s" },
                size(end.raw_bytes),
                size(archive_len),
            ),
            &mut write_err,
        );
        emit(model_line(hash), &mut write_err);
    }
    if let Some(m) = &members {
        for name in m.unmatched() {
            warn(format_args!("{name}: not found in archive"));
        }
        if !m.unmatched().is_empty() {
            write_err.and_then(|_| out.flush())?;
            bail!("{} member name(s) not found", m.unmatched().len());
        }
    }
    write_err.and_then(|_| out.flush())?;
    Ok(())
}

/// `lza list` of a file with indexes (format-spec 13): the paths from the
/// entry and block records the indexes point to, each checked, without
/// reading the data (`lza verify` reads everything).
fn list_indexed(
    f: &File,
    idx: &lza::container::index::ArchiveIndex,
    mut members: Option<Members>,
) -> anyhow::Result<()> {
    let entries = idx.entries(f, Limits::default())?;
    let mut out = BufWriter::new(io::stdout().lock());
    for e in &entries {
        if members.as_mut().is_none_or(|m| m.selects(&e.entry.path)) {
            writeln!(out, "{}", escape(&e.entry.path))?;
        }
    }
    out.flush()?;
    if let Some(m) = &members {
        for name in m.unmatched() {
            warn(format_args!("{name}: not found in archive"));
        }
        if !m.unmatched().is_empty() {
            bail!("{} member name(s) not found", m.unmatched().len());
        }
    }
    Ok(())
}

/// Which model the archive needs, and whether this build has it.
fn model_line(hash: ModelHash) -> String {
    if hash.is_none() {
        return "model: none needed".into();
    }
    if hash == lza::codecs::models::ModelFile::embedded().hash {
        return format!("model: {hash} (embedded in this build)");
    }
    match lza::codecs::models::find(hash, None) {
        Ok(m) => format!(
            "model: {hash} (not embedded in this build; found: {})",
            m.origin
        ),
        Err(_) => format!(
            "model: {hash} (not embedded in this build and not found: extracting needs --model FILE)"
        ),
    }
}

/// One `tar -tv` style line: type and mode, size, compressed size, ratio,
/// codecs, local time, name.
fn long_line(e: &Entry, coded: &Coded, human: bool) -> String {
    let mut mode = String::with_capacity(10);
    mode.push(e.kind.type_char());
    for shift in [6, 3, 0] {
        let bits = (e.mode >> shift) & 7;
        mode.push(if bits & 4 != 0 { 'r' } else { '-' });
        mode.push(if bits & 2 != 0 { 'w' } else { '-' });
        mode.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let link = match e.kind {
        EntryKind::Symlink => format!(" -> {}", escape(&e.link)),
        EntryKind::Hardlink => format!(" link to {}", escape(&e.link)),
        _ => String::new(),
    };
    let size = |n: u64| if human { human_size(n) } else { n.to_string() };
    let (csize, ratio, codec) = if coded.solid {
        // (a block's files share their chunks)
        (
            "-".into(),
            "-".into(),
            format!("solid:{}", coded.codecs.join(",")),
        )
    } else if e.kind == EntryKind::File && e.size > 0 {
        (
            size(coded.stored),
            format!("{:.1}%", 100.0 * coded.stored as f64 / e.size as f64),
            coded.codecs.join(","),
        )
    } else {
        ("-".into(), "-".into(), "-".into())
    };
    format!(
        "{mode} {:>12} {:>12} {ratio:>6} {codec:<10} {} {}{link}",
        size(e.size),
        csize,
        local_time(e.mtime_ns),
        escape(&e.path)
    )
}

/// `ls -h` style: "512", "1.5K", "40K", "125M" (powers of 1024; one decimal
/// below 10).
fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

/// `YYYY-MM-DD HH:MM` in the local time zone (TZ), as tar prints it.
#[allow(unsafe_code)] // libc's localtime_r: the time zone rules are the C library's
fn local_time(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only to `tm`, which lives on this stack
    // frame; a zeroed libc::tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return format!("@{secs}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year as i64 + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}
