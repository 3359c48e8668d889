//! Probe: bits per byte and speed of context mixing with the embedded
//! language model. `cargo run --release --example cm_lm_probe -- FILE...`
//! (env: CHUNK bytes per chunk, THREADS, MODEL file, PRESET
//! fast|normal|lm|lm2|lm3|normal2, SKIP_DECODE to only encode).
use lza::codecs::lm::{KernelPath, LmCodec, Model};
use std::sync::Arc;
use std::time::Instant;
fn main() {
    let chunk: usize = std::env::var("CHUNK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512 << 10);
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let preset = match std::env::var("PRESET").as_deref() {
        Ok("fast") => lza::codecs::cm::FAST,
        Ok("lm") => lza::codecs::cm::WITH_LM,
        Ok("lm2") => lza::codecs::cm::WITH_LM_TOKENS,
        Ok("lm3") => lza::codecs::cm::WITH_LM_CLASSES,
        Ok("lm32") => lza::codecs::cm::WITH_LM_TWO_STREAMS,
        Ok("normal2") => lza::codecs::cm::TEXT,
        _ => lza::codecs::cm::NORMAL,
    };
    let bytes = match std::env::var("MODEL") {
        Ok(p) => std::fs::read(p).unwrap(),
        Err(_) => lza::codecs::models::EMBEDDED_MODEL.to_vec(),
    };
    let model = Arc::new(Model::from_bytes(&bytes).unwrap());
    let codec = LmCodec::new(model, KernelPath::detect().unwrap(), threads, 256).unwrap();
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).unwrap();
        let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
        let t = Instant::now();
        let parts = lza::codecs::cmlm::encode_chunks(&codec, &chunks, preset);
        let te = t.elapsed().as_secs_f64();
        let n: usize = parts.iter().map(|p| p.len()).sum();
        let dec = if std::env::var("SKIP_DECODE").is_ok() {
            String::new()
        } else {
            let t = Instant::now();
            let inputs: Vec<(&[u8], usize)> = parts
                .iter()
                .zip(&chunks)
                .map(|(p, c)| (p.as_slice(), c.len()))
                .collect();
            let out = lza::codecs::cmlm::decode_chunks(&codec, &inputs);
            let td = t.elapsed().as_secs_f64();
            for (o, c) in out.iter().zip(&chunks) {
                assert_eq!(o.as_ref().unwrap().as_slice(), *c);
            }
            format!(" dec {:.0} KB/s", data.len() as f64 / td / 1e3)
        };
        println!(
            "{f}: {} -> {} bpb {:.4} enc {:.0} KB/s{dec}",
            data.len(),
            n,
            8.0 * n as f64 / data.len() as f64,
            data.len() as f64 / te / 1e3
        );
    }
}
