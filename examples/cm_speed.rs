//! Speed of the context-mixing codec without the language model, for
//! comparing builds on a busy machine: codes each file `REPS` times (default
//! 3) each way and prints the fastest run of each, with the payload's CRC-32
//! (equal CRCs: the same payload).
//! `cargo run --release --example cm_speed -- [fast|normal|normal2|binary|text-fast] FILE...`
use std::time::Instant;
fn main() {
    let mut args = std::env::args().skip(1);
    let preset = match args.next().as_deref() {
        Some("fast") => lza::codecs::cm::FAST,
        Some("normal") => lza::codecs::cm::NORMAL,
        Some("binary") => lza::codecs::cm::BINARY,
        Some("text-fast") => lza::codecs::cm::TEXT_FAST,
        _ => lza::codecs::cm::TEXT,
    };
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for f in args {
        let data = std::fs::read(&f).unwrap();
        let (mut te, mut td) = (f64::MAX, f64::MAX);
        let mut payload = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            payload = lza::codecs::cm::encode(&data, preset);
            te = te.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let back = lza::codecs::cm::decode(&payload, data.len()).unwrap();
            td = td.min(t.elapsed().as_secs_f64());
            assert_eq!(back, data);
        }
        println!(
            "{f}: {} -> {} bpb {:.4} crc {:08x} enc {:.3} MB/s dec {:.3} MB/s",
            data.len(),
            payload.len(),
            8.0 * payload.len() as f64 / data.len() as f64,
            crc32fast::hash(&payload),
            data.len() as f64 / te / 1e6,
            data.len() as f64 / td / 1e6
        );
    }
}
