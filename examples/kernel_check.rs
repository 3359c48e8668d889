//! Checks every kernel path this CPU can run against a plain `i32` reference
//! and against each other, and prints one line per check: OK or MISMATCH.
//! Exits 1 on any mismatch. For a machine without a Rust toolchain, build it
//! here and carry the binary:
//!
//!     cargo build --release --example kernel_check
//!     target/release/examples/kernel_check            # every available path
//!     target/release/examples/kernel_check amx        # named paths only
//!
//! Two parts: the integer products alone (random, all-±127 and mixed
//! shapes, batches on both sides of every tile size and of the AMX
//! threshold), then whole models: the payloads of a few chunks coded on each
//! path must equal the portable path's byte for byte and decode back.

use lza::codecs::lm::{KernelPath, LmCodec, Model};
use lza::codecs::testutil::synthetic_model_bytes;
use lza::codecs::testutil::{MAX_COLS, PackedI8, matmul_i8};
use std::sync::Arc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn i8(&mut self) -> i8 {
        ((self.next() % 255) as i32 - 127) as i8
    }
}

fn reference(rows: usize, cols: usize, w: &[i8], x: &[i8], batch: usize) -> Vec<i32> {
    let mut out = vec![0; batch * rows];
    for b in 0..batch {
        for j in 0..rows {
            out[b * rows + j] = (0..cols)
                .map(|k| w[j * cols + k] as i32 * x[b * cols + k] as i32)
                .sum();
        }
    }
    out
}

fn main() {
    let named: Vec<String> = std::env::args().skip(1).collect();
    let mut paths = Vec::new();
    for p in KernelPath::ALL {
        if !named.is_empty() && !named.iter().any(|n| n == p.name()) {
            continue;
        }
        if p.is_available() {
            paths.push(p);
        } else {
            println!("skip     {:<9} not available on this CPU or OS", p.name());
        }
    }
    for n in &named {
        if KernelPath::ALL.iter().all(|p| p.name() != n) {
            eprintln!("unknown kernel path {n:?}");
            std::process::exit(2);
        }
    }
    let mut bad = 0;
    let mut rng = Rng(0x5eed_0000_0000_0001);
    let shapes = [
        (768, 256),
        (256, 512),
        (16, 4),
        (48, 36),
        (80, 100),
        (112, 1024),
        (16, MAX_COLS),
    ];
    for p in &paths {
        let mut checks = 0;
        let mut first_bad = None;
        for &(rows, cols) in &shapes {
            for &batch in &[
                1usize, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 256,
            ] {
                if cols == MAX_COLS && batch > 7 {
                    continue;
                }
                for kind in 0..3 {
                    let (w, x): (Vec<i8>, Vec<i8>) = match kind {
                        0 => (
                            (0..rows * cols).map(|_| rng.i8()).collect(),
                            (0..batch * cols).map(|_| rng.i8()).collect(),
                        ),
                        1 => (
                            vec![127; rows * cols],
                            (0..batch * cols)
                                .map(|i| if (i / cols) % 2 == 0 { 127 } else { -127 })
                                .collect(),
                        ),
                        _ => (
                            (0..rows * cols)
                                .map(|_| if rng.next() & 1 == 0 { 127 } else { -127 })
                                .collect(),
                            (0..batch * cols)
                                .map(|_| [127, -127, 0][(rng.next() % 3) as usize])
                                .collect(),
                        ),
                    };
                    let want = reference(rows, cols, &w, &x, batch);
                    let mut out = vec![i32::MIN; batch * rows];
                    matmul_i8(
                        *p,
                        &PackedI8::new(rows, cols, &w),
                        &x,
                        cols,
                        batch,
                        &mut out,
                        rows,
                    );
                    checks += 1;
                    if out != want && first_bad.is_none() {
                        first_bad = Some(format!("{rows}x{cols} batch {batch} data {kind}"));
                    }
                }
            }
        }
        match first_bad {
            None => println!("OK       {:<9} products: {checks} cases", p.name()),
            Some(what) => {
                bad += 1;
                println!("MISMATCH {:<9} products: first at {what}", p.name());
            }
        }
    }
    let text: Vec<u8> = b"It was the best of times, it was the worst of times; 0123456789 \
        {\"key\": [1, 2, 3]} <p>markup</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(6000)
        .collect();
    let noise: Vec<u8> = (0..2000).map(|_| rng.next() as u8).collect();
    let chunks: Vec<&[u8]> = vec![
        &text[..3000],
        &noise,
        &text[100..5000],
        &text[..1],
        &text[7..400],
    ];
    for (dim, layers, seed) in [(256, 2, 42), (64, 3, 77)] {
        let model = Arc::new(Model::from_bytes(&synthetic_model_bytes(dim, layers, seed)).unwrap());
        let want = LmCodec::new(model.clone(), KernelPath::Portable, 1, 1)
            .unwrap()
            .encode_chunks(&chunks);
        for p in &paths {
            let mut ok = true;
            for (threads, batch) in [(1, 1), (1, 5), (2, 64)] {
                let codec = LmCodec::new(model.clone(), *p, threads, batch).unwrap();
                let got = codec.encode_chunks(&chunks);
                let inputs: Vec<(&[u8], usize)> = got
                    .iter()
                    .zip(&chunks)
                    .map(|(g, c)| (g.as_slice(), c.len()))
                    .collect();
                let back = codec.decode_chunks(&inputs);
                let round = back
                    .iter()
                    .zip(&chunks)
                    .all(|(b, c)| b.as_deref().ok() == Some(*c));
                ok &= got == want && round;
            }
            let verdict = if ok { "OK      " } else { "MISMATCH" };
            if !ok {
                bad += 1;
            }
            println!(
                "{verdict} {:<9} model d={dim} L={layers}: payloads and round trip",
                p.name()
            );
        }
    }
    if bad > 0 {
        println!("{bad} mismatch(es)");
        std::process::exit(1);
    }
    println!("all checked paths agree");
}
