//! GPU against CPU: every frequency table, and the archives.
//!
//! ```text
//! cargo run --release --example gpu_check -- TEXT [--lza BIN] [-T N] [--out DIR]
//! ```
//!
//! 1. Cuts `TEXT` into chains of pseudo-random lengths (1 to 16 KiB), steps
//!    them with the default model on the CPU and on GPU 0 with several
//!    batch sizes (the chains finish at different steps, so lanes are reset
//!    and compacted as in the scheduler), and compares every frequency
//!    table of every step.
//!    Then runs every chain of `TEXT` through the known-sequence kernels
//!    (every step on the device, as the encoder uses them) with each tile
//!    size, and compares every frequency table and every byte's 8 bit
//!    probabilities with the CPU's; and times them on `TEXT` cut into
//!    16 KiB stretches, as the encoder cuts it.
//! 2. With `--lza`, creates archives of `TEXT` with `--device cuda` and
//!    `--device cpu -T N` (methods `lm` and `default`), compares their
//!    bytes, extracts each with the other device, and prints the speeds.
//!
//! Where no GPU is usable it says so and exits with success. It exits with
//! failure on any difference.

use lza::codecs::lm::{CpuBackend, CudaBackend, KernelPath, Model, StepBackend};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

fn table_hash(f: &[u32; 256]) -> u64 {
    let mut b = [0u8; 1024];
    for (c, v) in b.chunks_exact_mut(4).zip(f) {
        c.copy_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// Steps `pieces` (each from the zero state) with up to `batch` in flight
/// and returns each one's table hashes, step by step. Lanes are refilled
/// and compacted as the library's scheduler does. With `bits`, also each
/// byte's 8 bit probabilities given its table.
/// Each chain's table hashes and each byte's bit probabilities.
type Reference = (Vec<Vec<u64>>, Vec<Vec<[u16; 8]>>);

fn run_chains<B: StepBackend>(
    b: &B,
    pieces: &[&[u8]],
    batch: usize,
    bits: Option<&mut Vec<Vec<[u16; 8]>>>,
) -> Vec<Vec<u64>> {
    let mut bits = bits;
    if let Some(v) = bits.as_deref_mut() {
        *v = pieces.iter().map(|p| Vec::with_capacity(p.len())).collect();
    }
    let cap = batch.min(pieces.len()).max(1);
    let mut chains = b.new_chains(cap);
    let mut scratch = b.new_scratch(cap);
    let mut out: Vec<Vec<u64>> = pieces.iter().map(|p| Vec::with_capacity(p.len())).collect();
    // lane: (piece, position, input)
    let mut lanes: Vec<(usize, usize, u16)> = Vec::new();
    let mut next = 0;
    while lanes.len() < cap && next < pieces.len() {
        lanes.push((next, 0, 256));
        next += 1;
    }
    while !lanes.is_empty() {
        let inputs: Vec<u16> = lanes.iter().map(|l| l.2).collect();
        let n = lanes.len();
        {
            let mut part = b.part(&mut chains, n);
            let mut start = 0;
            while start < n {
                let k = (n - start).min(b.capacity(&scratch));
                let f = b.step(&mut part, start, &inputs[start..start + k], &mut scratch);
                for (lane, f) in lanes[start..start + k].iter_mut().zip(f) {
                    let (p, pos, input) = lane;
                    out[*p].push(table_hash(f));
                    if let Some(v) = bits.as_deref_mut() {
                        v[*p].push(lza::codecs::cm::lm_byte_bits(f, pieces[*p][*pos]));
                    }
                    *input = pieces[*p][*pos] as u16;
                    *pos += 1;
                }
                start += k;
            }
        }
        let mut i = 0;
        while i < lanes.len() {
            let (p, pos, _) = lanes[i];
            if pos < pieces[p].len() {
                i += 1;
                continue;
            }
            b.reset_chain(&mut chains, i);
            if next < pieces.len() {
                lanes[i] = (next, 0, 256);
                next += 1;
                i += 1;
            } else {
                let last = lanes.len() - 1;
                if i != last {
                    b.move_chain(&mut chains, last, i);
                }
                lanes.swap_remove(i);
            }
        }
    }
    out
}

fn mbs(bytes: usize, secs: f64) -> String {
    format!("{:.3} MB/s", bytes as f64 / secs / 1e6)
}

fn lza(bin: &Path, args: &[&str]) -> (f64, Vec<u8>) {
    let t = Instant::now();
    let out = Command::new(bin).args(args).output().expect("running lza");
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "lza {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1);
    }
    (secs, out.stdout)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut text_path = None;
    let mut bin: Option<PathBuf> = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out_dir = std::env::temp_dir();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--lza" => bin = it.next().map(PathBuf::from),
            "-T" => threads = it.next().and_then(|s| s.parse().ok()).expect("-T N"),
            "--out" => out_dir = it.next().map(PathBuf::from).expect("--out DIR"),
            s => text_path = Some(PathBuf::from(s)),
        }
    }
    let text_path = text_path.expect("usage: gpu_check TEXT [--lza BIN] [-T N] [--out DIR]");
    let text = std::fs::read(&text_path).expect("reading the text");
    let model = Arc::new(
        Model::from_bytes(&lza::codecs::models::ModelFile::embedded().bytes)
            .expect("embedded model"),
    );
    let gpu = match CudaBackend::new(model.clone()) {
        Ok(g) => g,
        Err(e) => {
            println!("SKIP: {e}");
            return;
        }
    };
    println!("GPU: {}", gpu.device_name());
    let path = KernelPath::best_available();
    let cpu = CpuBackend::new(model, path);
    let mut failed = false;

    // 1. every table
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut rest = &text[..];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (1 + (x % 16384) as usize).min(rest.len());
        let (p, r) = rest.split_at(len);
        pieces.push(p);
        rest = r;
    }
    let steps: usize = pieces.iter().map(|p| p.len()).sum();
    println!(
        "{} bytes in {} chains; CPU reference on kernel path {} with {threads} threads",
        text.len(),
        pieces.len(),
        path.name()
    );
    let t = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let groups: Vec<&[&[u8]]> = pieces.chunks(16).collect();
    let (reference, ref_bits): Reference = pool.install(|| {
        use rayon::prelude::*;
        let per: Vec<Reference> = groups
            .par_iter()
            .map(|g| {
                let mut bits = Vec::new();
                (run_chains(&cpu, g, 16, Some(&mut bits)), bits)
            })
            .collect();
        let (mut r, mut b) = (Vec::new(), Vec::new());
        for (x, y) in per {
            r.extend(x);
            b.extend(y);
        }
        (r, b)
    });
    println!("CPU: {steps} tables in {:.2} s", t.elapsed().as_secs_f64());
    // the step-by-step kernel on the first 1 MB (one launch per step)
    let prefix = pieces
        .iter()
        .scan(0usize, |sum, p| {
            *sum += p.len();
            Some(*sum)
        })
        .take_while(|&s| s <= 1 << 20)
        .count()
        .max(1);
    for batch in [1, 5, 64, 256, 1024, prefix] {
        // batch 1 and 5 on a shorter prefix still
        let n = match batch {
            1 => 2.min(pieces.len()),
            5 => 10.min(pieces.len()),
            _ => prefix,
        };
        let t = Instant::now();
        let got = run_chains(&gpu, &pieces[..n], batch, None);
        let secs = t.elapsed().as_secs_f64();
        let tables: usize = pieces[..n].iter().map(|p| p.len()).sum();
        let mut bad = 0usize;
        let mut first = None;
        for (i, (g, r)) in got.iter().zip(&reference[..n]).enumerate() {
            for (pos, (a, b)) in g.iter().zip(r).enumerate() {
                if a != b {
                    bad += 1;
                    first.get_or_insert((i, pos));
                }
            }
            if g.len() != r.len() {
                bad += 1;
                first.get_or_insert((i, g.len().min(r.len())));
            }
        }
        println!(
            "GPU batch {batch:5}: {tables} tables, {bad} differ{}; {:.0} tables/s",
            first.map_or(String::new(), |(i, p)| format!(
                " (first: chain {i}, step {p})"
            )),
            tables as f64 / secs
        );
        failed |= bad > 0;
    }

    // 1b. the known-sequence kernels: every table of every chain (in
    // launches of at most 512 KB, whose tables take 1 KB a byte), with the
    // tile the backend chooses; every byte's bits with each tile
    let mut bad = (0usize, 0usize);
    let mut first = None;
    let t = Instant::now();
    let mut at = 0;
    while at < pieces.len() {
        let mut end = at;
        let mut bytes = 0;
        while end < pieces.len() && (end == at || bytes + pieces[end].len() <= 512 << 10) {
            bytes += pieces[end].len();
            end += 1;
        }
        let (bits, tables) = gpu.known(&pieces[at..end], None, true);
        let mut tables = tables.chunks_exact(256);
        for i in at..end {
            for pos in 0..pieces[i].len() {
                let f: &[u32; 256] = tables.next().expect("a table a byte").try_into().unwrap();
                if table_hash(f) != reference[i][pos] {
                    bad.0 += 1;
                    first.get_or_insert((i, pos));
                }
                if bits[i - at][pos] != ref_bits[i][pos] {
                    bad.1 += 1;
                    first.get_or_insert((i, pos));
                }
            }
        }
        at = end;
    }
    println!(
        "GPU known sequences: {steps} tables, {} differ; {steps} bytes' bits, {} differ{} ({:.2} s)",
        bad.0,
        bad.1,
        first.map_or(String::new(), |(i, p)| format!(
            " (first: chain {i}, step {p})"
        )),
        t.elapsed().as_secs_f64()
    );
    failed |= bad != (0, 0);
    let stretches: Vec<&[u8]> = text.chunks(16 << 10).collect();
    for tile in [None, Some(1), Some(2), Some(4), Some(8), Some(16)] {
        let t = Instant::now();
        let bits = std::panic::catch_unwind(|| gpu.known(&pieces, tile, false).0);
        let Ok(bits) = bits else {
            println!("tile {tile:?}: not available");
            continue;
        };
        let secs = t.elapsed().as_secs_f64();
        let bad = bits
            .iter()
            .zip(&ref_bits)
            .map(|(g, r)| {
                g.iter().zip(r).filter(|(a, b)| a != b).count() + g.len().abs_diff(r.len())
            })
            .sum::<usize>();
        failed |= bad > 0;
        let t = Instant::now();
        let _ = gpu.known(&stretches, tile, false);
        let secs16 = t.elapsed().as_secs_f64();
        println!(
            "tile {tile:?}: bits of {} chains {bad} differ ({}); {} stretches of 16 KiB: {}",
            pieces.len(),
            mbs(steps, secs),
            stretches.len(),
            mbs(text.len(), secs16)
        );
    }

    // 2. archives
    if let Some(bin) = bin {
        let dir = text_path.parent().unwrap_or(Path::new("."));
        let name = text_path.file_name().expect("a file name");
        let (dir, name) = (dir.to_str().unwrap(), name.to_str().unwrap());
        let t = threads.to_string();
        for method in ["lm", "default"] {
            let a_gpu = out_dir.join(format!("gpu-{method}.lza"));
            let a_cpu = out_dir.join(format!("cpu-{method}.lza"));
            let (ag, ac) = (a_gpu.to_str().unwrap(), a_cpu.to_str().unwrap());
            let create = |archive: &str, device: &str| {
                lza(
                    &bin,
                    &[
                        "c",
                        "--overwrite",
                        "-m",
                        method,
                        "--device",
                        device,
                        "-T",
                        &t,
                        "-f",
                        archive,
                        "-C",
                        dir,
                        name,
                    ],
                )
                .0
            };
            let cg = create(ag, "cuda");
            let cc = create(ac, "cpu");
            let (bg, bc) = (
                std::fs::read(&a_gpu).unwrap(),
                std::fs::read(&a_cpu).unwrap(),
            );
            let same = bg == bc;
            let (xg, out_g) = lza(&bin, &["x", "-O", "--device", "cuda", "-T", &t, "-f", ac]);
            let (xc, out_c) = lza(&bin, &["x", "-O", "--device", "cpu", "-T", &t, "-f", ag]);
            let ok_g = out_g == text;
            let ok_c = out_c == text;
            println!(
                "-m {method}: {} bytes; archives {}; create cuda {} ({cg:.2} s), cpu -T {t} {} ({cc:.2} s); \
                 extract cpu archive with cuda {} {} ({xg:.2} s), cuda archive with cpu {} {} ({xc:.2} s)",
                bc.len(),
                if same { "identical" } else { "DIFFER" },
                mbs(text.len(), cg),
                mbs(text.len(), cc),
                if ok_g { "ok" } else { "WRONG" },
                mbs(text.len(), xg),
                if ok_c { "ok" } else { "WRONG" },
                mbs(text.len(), xc),
            );
            failed |= !(same && ok_g && ok_c);
        }
    }
    if failed {
        println!("FAILED");
        std::process::exit(1);
    }
    println!("all equal");
}
