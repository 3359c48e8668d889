//! Probe: bits per byte and speed of the context-mixing codec without the
//! language model. `cargo run --release --example cm_probe -- [fast|normal] FILE...`
use std::time::Instant;
fn main() {
    let mut args = std::env::args().skip(1);
    let preset = match args.next().as_deref() {
        Some("fast") => lza::codecs::cm::FAST,
        Some("text") => lza::codecs::cm::TEXT,
        _ => lza::codecs::cm::NORMAL,
    };
    let chunk: usize = std::env::var("CHUNK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32 << 20);
    for f in args {
        let data = std::fs::read(&f).unwrap();
        let t = Instant::now();
        let parts: Vec<Vec<u8>> = data
            .chunks(chunk)
            .map(|c| lza::codecs::cm::encode(c, preset))
            .collect();
        let te = t.elapsed().as_secs_f64();
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let t = Instant::now();
        for (p, c) in parts.iter().zip(data.chunks(chunk)) {
            assert_eq!(lza::codecs::cm::decode(p, c.len()).unwrap(), c);
        }
        let td = t.elapsed().as_secs_f64();
        println!(
            "{f}: {} -> {} bpb {:.4} enc {:.2} MB/s dec {:.2} MB/s",
            data.len(),
            n,
            8.0 * n as f64 / data.len() as f64,
            data.len() as f64 / te / 1e6,
            data.len() as f64 / td / 1e6
        );
    }
}
