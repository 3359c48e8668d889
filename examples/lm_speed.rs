//! Symbols per second of the LM codec on a random in-memory model.
//!
//!     cargo run --release --example lm_speed -- [dim] [layers] [paths] [threads] [batches] [chunk_len] [reps]
//!     e.g. lm_speed 256 2 portable,avx2,avxvnni,avx512 1,2 1,16,64,256 1024
//!
//! Paths default to every one this CPU can run (`KernelPath::available`).

use lza::codecs::lm::{KernelPath, LmCodec, Model};
use lza::codecs::testutil::synthetic_model_bytes;
use std::sync::Arc;
use std::time::Instant;

fn list<T: std::str::FromStr>(s: Option<String>, default: &str) -> Vec<T> {
    s.unwrap_or_else(|| default.to_string())
        .split(',')
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// CPU seconds (user + system) of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0; // USER_HZ
    let u: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    (u + st) / tick
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dim: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let layers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let paths: Vec<KernelPath> = match args.next() {
        Some(list) if list != "all" => list
            .split(',')
            .map(|p| KernelPath::from_name(p).expect("kernel path"))
            .collect(),
        _ => KernelPath::available(),
    };
    let threads: Vec<usize> = list(args.next(), "1,2");
    let batches: Vec<usize> = list(args.next(), "1,16,64,256");
    let chunk_len: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1024);
    let reps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);

    let bytes = synthetic_model_bytes(dim, layers, 42);
    let model = Arc::new(Model::from_bytes(&bytes).unwrap());
    println!(
        "model d={dim} L={layers}: {} params, {} int8 MACs/symbol, hash {}",
        model.param_count(),
        model.macs_per_symbol(),
        model.hash()
    );
    let text: Vec<u8> = b"It was the best of times, it was the worst of times, it was the age of wisdom, \
        it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. "
        .iter()
        .copied()
        .cycle()
        .take(chunk_len * 300)
        .collect();
    println!(
        "{:>9} {:>7} {:>5} {:>10} {:>9} {:>12}",
        "path", "threads", "batch", "sym/s", "GOP/s", "sym/cpu-s"
    );
    for &path in &paths {
        for &t in &threads {
            for &b in &batches {
                let codec = LmCodec::new(model.clone(), path, t, b).unwrap();
                // enough chunks for two full rounds of slots, at least ~24k symbols
                let n = (2 * b).max(60_000 / chunk_len).max(1);
                let chunks: Vec<&[u8]> = (0..n)
                    .map(|i| &text[(i * 37) % (chunk_len * 200)..][..chunk_len])
                    .collect();
                // warm-up
                codec.encode_chunks(&chunks[..1.min(n)]);
                // best of `reps` runs (the machine is shared)
                let (mut dt, mut dc) = (f64::MAX, f64::MAX);
                for _ in 0..reps {
                    let c0 = cpu_seconds();
                    let t0 = Instant::now();
                    let out = codec.encode_chunks(&chunks);
                    dt = dt.min(t0.elapsed().as_secs_f64());
                    dc = dc.min(cpu_seconds() - c0);
                    std::hint::black_box(out);
                }
                let syms = (n * chunk_len) as f64;
                println!(
                    "{:>9} {:>7} {:>5} {:>10.0} {:>9.1} {:>12.0}",
                    path.name(),
                    t,
                    b,
                    syms / dt,
                    syms * model.macs_per_symbol() as f64 * 2.0 / dt / 1e9,
                    syms / dc
                );
            }
        }
    }
}
