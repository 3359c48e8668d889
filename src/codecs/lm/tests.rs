//! Codec tests: round trips, determinism across kernel paths, threads and
//! batch sizes, corrupt payloads, and a naive reference of format-spec 7.2.

use super::math::{quantize, sigmoid, tanh};
use super::rangecoder::{RangeEncoder, freqs_from_logits};
use super::*;

const TEST_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/models/test-gru.safetensors"
);

/// The small GRU model of `testdata/models` (made by
/// `train/make_test_model.py`).
pub(crate) fn test_model() -> Arc<Model> {
    let bytes = std::fs::read(TEST_MODEL)
        .expect("testdata/models/test-gru.safetensors (train/make_test_model.py)");
    Arc::new(Model::from_bytes(&bytes).unwrap())
}

/// xorshift64*, deterministic test randomness.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// Uniform-ish below `n` (modulo bias is fine for tests).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn lcg_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect()
}

/// Chunks of all the kinds the archive will see, plus edge cases.
pub(crate) fn sample_chunks() -> Vec<Vec<u8>> {
    let text = b"The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.\n\
        fn main() { println!(\"hello, world\"); }\n<xml attr=\"1\">&amp;</xml>\n"
        .repeat(40);
    let mut v = vec![
        text[..3000].to_vec(),
        Vec::new(),
        b"a".to_vec(),
        vec![0u8],
        vec![255u8],
        "grüße, ☃, 日本語 — “quotes”\r\n".repeat(20).into_bytes(),
        vec![
            0xC3, 0x28, 0xA0, 0xA1, 0xE2, 0x28, 0xA1, 0xF0, 0x28, 0x8C, 0xBC, 0xFF, 0xFE,
        ], // invalid UTF-8
        // binary-looking text: hex dump and base64
        (0..400u32)
            .map(|i| format!("{:08x}: {:02x} {:02x}\n", i * 16, i % 251, (i * 7) % 256))
            .collect::<String>()
            .into_bytes(),
        lcg_bytes(700, 1), // random bytes
        vec![b' '; 1000],
        Vec::new(),
        text[100..100 + TRAINED_CONTEXT.min(text.len() - 100)].to_vec(),
    ];
    v.push(lcg_bytes(2, 9));
    v
}

fn encode_all(codec: &LmCodec, chunks: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    codec.encode_chunks(&refs)
}

fn decode_all(
    codec: &LmCodec,
    chunks: &[Vec<u8>],
    payloads: &[Vec<u8>],
) -> Vec<Result<Vec<u8>, LmError>> {
    let pairs: Vec<(&[u8], usize)> = payloads
        .iter()
        .zip(chunks)
        .map(|(p, c)| (p.as_slice(), c.len()))
        .collect();
    codec.decode_chunks(&pairs)
}

fn digest(payloads: &[Vec<u8>]) -> u64 {
    let mut all = Vec::new();
    for p in payloads {
        all.extend_from_slice(&(p.len() as u64).to_le_bytes());
        all.extend_from_slice(p);
    }
    xxhash_rust::xxh3::xxh3_64(&all)
}

/// Pins the exact payload bytes for the test model and sample chunks: a
/// change means archives made before no longer extract.
const GOLDEN_DIGEST: u64 = 0xa53a_4dc7_5b77_66a3;

#[test]
fn roundtrip_and_determinism_across_paths_threads_batches() {
    let model = test_model();
    let chunks = sample_chunks();
    let reference = encode_all(
        &LmCodec::new(model.clone(), KernelPath::Portable, 1, 1).unwrap(),
        &chunks,
    );
    assert_eq!(reference[1], vec![0; 5], "empty chunk");
    for (c, p) in chunks.iter().zip(&reference) {
        assert_eq!(p[0], 0);
        // a random model still must not blow up: <= ~16 bits per byte + flush
        assert!(p.len() <= 2 * c.len() + 5);
    }
    for path in KernelPath::available() {
        for threads in [1usize, 2, 7] {
            for batch in [1usize, 3, 64] {
                let codec = LmCodec::new(model.clone(), path, threads, batch).unwrap();
                let enc = encode_all(&codec, &chunks);
                assert_eq!(
                    enc, reference,
                    "encode differs: {path} threads {threads} batch {batch}"
                );
                let dec = decode_all(&codec, &chunks, &enc);
                for (i, (d, c)) in dec.into_iter().zip(&chunks).enumerate() {
                    assert_eq!(
                        &d.unwrap(),
                        c,
                        "chunk {i}: {path} threads {threads} batch {batch}"
                    );
                }
            }
        }
    }
    let d = digest(&reference);
    assert_eq!(d, GOLDEN_DIGEST, "payload digest changed: {d:#018x}");
}

#[test]
fn grouping_of_chunks_does_not_matter() {
    let model = test_model();
    let chunks = sample_chunks();
    let codec = LmCodec::new(model, KernelPath::best_available(), 2, 4).unwrap();
    let all = encode_all(&codec, &chunks);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(codec.encode_chunks(&[c.as_slice()]), vec![all[i].clone()]);
    }
    let (a, b) = chunks.split_at(5);
    let mut two = encode_all(&codec, a);
    two.extend(encode_all(&codec, b));
    assert_eq!(two, all);
    assert!(codec.encode_chunks(&[]).is_empty());
    assert!(codec.decode_chunks(&[]).is_empty());
}

#[test]
fn bad_payload_fails_only_its_chunk() {
    let model = test_model();
    let chunks = sample_chunks();
    for path in KernelPath::available() {
        let codec = LmCodec::new(model.clone(), path, 2, 3).unwrap();
        let good = encode_all(&codec, &chunks);
        let i = 0; // the 3000-byte text chunk
        let mut cases: Vec<(Vec<u8>, usize, &str)> = Vec::new();
        let mut p = good[i].clone();
        p[0] = 1;
        cases.push((p, chunks[i].len(), "first byte"));
        cases.push((
            good[i][..good[i].len() - 1].to_vec(),
            chunks[i].len(),
            "ends after",
        ));
        cases.push((good[i][..3].to_vec(), chunks[i].len(), "ends after"));
        let mut p = good[i].clone();
        p.push(0);
        cases.push((p, chunks[i].len(), "left after"));
        cases.push((good[i].clone(), chunks[i].len() + 50, "")); // asks for more symbols than coded
        cases.push((vec![0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 10, "outside"));
        cases.push((vec![0; 5], 1, ""));
        cases.push((vec![0, 1, 2, 3, 4, 5], 0, "left after"));
        for (bad, raw_len, what) in cases {
            let mut payloads: Vec<&[u8]> = good.iter().map(|p| p.as_slice()).collect();
            payloads[i] = &bad;
            let pairs: Vec<(&[u8], usize)> = payloads
                .iter()
                .zip(&chunks)
                .enumerate()
                .map(|(k, (p, c))| (*p, if k == i { raw_len } else { c.len() }))
                .collect();
            let res = codec.decode_chunks(&pairs);
            for (k, r) in res.into_iter().enumerate() {
                if k == i {
                    match r {
                        Err(e) => assert!(e.to_string().contains(what), "{e} lacks {what:?}"),
                        Ok(v) => {
                            // only possible if the decoder found a consistent stream; never longer
                            assert!(v.len() <= raw_len);
                            panic!("corrupt payload ({what}) decoded");
                        }
                    }
                } else {
                    assert_eq!(&r.unwrap(), &chunks[k]);
                }
            }
        }
    }
}

#[test]
fn garbage_payloads_never_panic() {
    let model = test_model();
    let codec = LmCodec::new(model, KernelPath::best_available(), 2, 16).unwrap();
    let garbage: Vec<Vec<u8>> = (0..200u64)
        .map(|i| {
            let mut g = lcg_bytes((i as usize * 37) % 300, i);
            if i % 2 == 0 && !g.is_empty() {
                g[0] = 0;
            }
            g
        })
        .collect();
    let pairs: Vec<(&[u8], usize)> = garbage
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_slice(), (i * 131) % 5000))
        .collect();
    for (r, (_, raw_len)) in codec.decode_chunks(&pairs).into_iter().zip(&pairs) {
        if let Ok(v) = r {
            assert_eq!(v.len(), *raw_len);
        }
    }
}

#[test]
fn cross_entropy_matches_payload_size() {
    let model = test_model();
    let codec = LmCodec::new(model, KernelPath::best_available(), 1, 8).unwrap();
    let text = sample_chunks()[0].clone();
    let bits = codec.cross_entropy_bits(&text);
    let payload = codec.encode_chunks(&[&text]).remove(0);
    let coded_bits = (payload.len() * 8) as f64;
    assert!(
        coded_bits >= bits && coded_bits <= bits + 64.0,
        "{coded_bits} vs {bits}"
    );
    assert_eq!(codec.bits_per_byte(&[]), 0.0);
    let long = text.repeat(7);
    let chunked: f64 = long
        .chunks(TRAINED_CONTEXT)
        .map(|c| codec.cross_entropy_bits(c))
        .sum();
    assert_eq!(codec.cross_entropy_bits(&long), chunked);
}

#[test]
fn settings_are_checked() {
    let model = test_model();
    assert!(LmCodec::new(model.clone(), KernelPath::Portable, 0, 1).is_err());
    assert!(LmCodec::new(model, KernelPath::Portable, 1, 0).is_err());
}

/// Format-spec 7.2 written out naively (row-major weights, scalar, one slot).
fn reference_freqs(model: &Model, data: &[u8]) -> Vec<[u32; 256]> {
    let d = model.dim();
    let nl = model.layers();
    let apply = |qm: &model::QMatrix, x: &[i8]| -> Vec<f32> {
        (0..qm.w.rows())
            .map(|j| {
                let acc: i32 = (0..qm.w.cols())
                    .map(|k| qm.w.get(j, k) as i32 * x[k] as i32)
                    .sum();
                (acc as f32) * qm.m[j] + qm.b[j]
            })
            .collect()
    };
    let mut h = vec![vec![0.0f32; d]; nl];
    let mut out = Vec::new();
    for t in 0..data.len() {
        let u = if t == 0 { 256 } else { data[t - 1] as usize };
        let mut h_new: Vec<Vec<f32>> = Vec::new();
        for l in 0..nl {
            let lw = &model.layer_weights()[l];
            let gi: Vec<f32> = if l == 0 {
                model.embed()[u * 3 * d..(u + 1) * 3 * d].to_vec()
            } else {
                let x: Vec<i8> = h_new[l - 1].iter().map(|&v| quantize(v)).collect();
                apply(lw.w_ih.as_ref().unwrap(), &x)
            };
            let xh: Vec<i8> = h[l].iter().map(|&v| quantize(v)).collect();
            let gh = apply(&lw.w_hh, &xh);
            let mut hn = vec![0.0f32; d];
            for k in 0..d {
                let r = sigmoid(gi[k] + gh[k]);
                let z = sigmoid(gi[d + k] + gh[d + k]);
                let n = tanh(gi[2 * d + k] + r * gh[2 * d + k]);
                hn[k] = (1.0 - z) * n + z * h[l][k];
            }
            h_new.push(hn);
        }
        h = h_new;
        let x: Vec<i8> = h.iter().flatten().map(|&v| quantize(v)).collect();
        let logits: [f32; 256] = apply(model.head(), &x).try_into().unwrap();
        out.push(freqs_from_logits(&logits));
    }
    out
}

#[test]
fn engine_matches_naive_reference() {
    let mut models = vec![test_model()];
    models.push(Arc::new(
        Model::from_bytes(&model::synthetic_model_bytes(64, 3, 77)).unwrap(),
    ));
    for model in models {
        let data = b"Hello, reference! \x00\xff\x80 1234567890 the the the".to_vec();
        let want = reference_freqs(&model, &data);
        let mut enc = RangeEncoder::new();
        for (f, &x) in want.iter().zip(&data) {
            enc.encode_symbol(f, x);
        }
        let want_payload = enc.finish();
        for path in KernelPath::available() {
            for batch in [1, 5] {
                let codec = LmCodec::new(model.clone(), path, 1, batch).unwrap();
                // the chunk among others, so it shares batches with them
                let other = lcg_bytes(33, 4);
                let got = codec.encode_chunks(&[&other, &data, &data[..7]]);
                assert_eq!(got[1], want_payload, "{path} batch {batch}");
            }
        }
        // distributions are non-trivial: not all near uniform, not all one-hot
        let maxes: Vec<u32> = want.iter().map(|f| *f.iter().max().unwrap()).collect();
        assert!(
            maxes.iter().any(|&m| m > 1024) && maxes.iter().any(|&m| m < 60000),
            "{maxes:?}"
        );
    }
}

/// A codec with `model` on GPU 0, or `None` (with a note) where no GPU is
/// usable: the tests that need one pass there without checking anything
/// of the GPU, and say so.
pub(crate) fn gpu_codec(model: Arc<Model>, threads: usize, batch: usize) -> Option<LmCodec> {
    match LmCodec::on_device(model, KernelPath::Portable, Device::Cuda, threads, batch) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("note: skipping the GPU part of this test: {e}");
            None
        }
    }
}

/// `--device auto` works everywhere and codes as the CPU does; `cuda`
/// fails with the device error where no GPU is usable.
#[test]
fn device_choice_keeps_the_payloads() {
    let model = test_model();
    let chunks = sample_chunks();
    let cpu = LmCodec::new(model.clone(), KernelPath::best_available(), 1, 4).unwrap();
    let want = encode_all(&cpu, &chunks);
    let auto = LmCodec::on_device(model.clone(), KernelPath::Portable, Device::Auto, 2, 3).unwrap();
    assert_eq!(encode_all(&auto, &chunks), want, "{}", auto.device());
    match CudaBackend::new(model.clone()) {
        Ok(_) => assert!(auto.device().starts_with("cuda"), "{}", auto.device()),
        Err(e) => {
            assert!(auto.device().starts_with("cpu"), "{}", auto.device());
            let r = LmCodec::on_device(model, KernelPath::Portable, Device::Cuda, 1, 1);
            assert!(matches!(r, Err(LmError::Device(_))), "{e}");
        }
    }
}

/// On a GPU: the same payloads, code lengths and decodings as the CPU for
/// models of several shapes, batch sizes and thread counts (lanes finish
/// at different steps, so chains are reset and compacted on the device).
/// Chunks are short: one GPU step of a small batch takes about 50 us on
/// an H100 (a launch and two copies), so the longest chunk sets the time.
#[test]
fn gpu_codes_as_the_cpu() {
    let mut models = vec![test_model()];
    for (d, l, seed) in [(32, 1, 5), (64, 3, 77), (96, 2, 8)] {
        models.push(Arc::new(
            Model::from_bytes(&model::synthetic_model_bytes(d, l, seed)).unwrap(),
        ));
    }
    let mut chunks: Vec<Vec<u8>> = sample_chunks()
        .into_iter()
        .map(|mut c| {
            c.truncate(1500);
            c
        })
        .collect();
    for i in 0..40 {
        chunks.push(lcg_bytes(50 + 29 * i, i as u64));
    }
    let text = &chunks.concat()[..3000];
    for (m, model) in models.into_iter().enumerate() {
        let cpu = LmCodec::new(model.clone(), KernelPath::best_available(), 1, 8).unwrap();
        let want = encode_all(&cpu, &chunks);
        let bits = cpu.cross_entropy_bits(text);
        for (threads, batch) in [(1, 1), (1, 7), (3, 64), (2, 4096)] {
            // one lane at a time only for the first model and a few chunks
            let n = match (batch, m) {
                (1, 0) => 4,
                (1, _) => continue,
                _ => chunks.len(),
            };
            let Some(gpu) = gpu_codec(model.clone(), threads, batch) else {
                return;
            };
            assert_eq!(encode_all(&gpu, &chunks[..n]), want[..n], "batch {batch}");
            let pairs: Vec<(&[u8], usize)> = want[..n]
                .iter()
                .zip(&chunks)
                .map(|(p, c)| (p.as_slice(), c.len()))
                .collect();
            for (r, c) in gpu.decode_chunks(&pairs).into_iter().zip(&chunks) {
                assert_eq!(&r.unwrap(), c);
            }
            if n == chunks.len() {
                assert_eq!(gpu.cross_entropy_bits(text).to_bits(), bits.to_bits());
            }
        }
    }
}

/// On a GPU: the known-sequence kernels (every step on the device) give
/// every frequency table and every byte's 8 bit probabilities as the
/// CPU's steps do, for models of several shapes, with every tile size, and
/// for sequences of many lengths, empty ones among them.
#[test]
fn gpu_known_sequences_as_the_cpu() {
    if gpu_codec(test_model(), 1, 1).is_none() {
        return;
    }
    let mut models = vec![test_model()];
    for (d, l, seed) in [(32, 1, 5), (64, 3, 77), (96, 2, 8)] {
        models.push(Arc::new(
            Model::from_bytes(&model::synthetic_model_bytes(d, l, seed)).unwrap(),
        ));
    }
    let mut seqs: Vec<Vec<u8>> = sample_chunks();
    for (i, n) in [0, 1, 2, 17, 300, 0, 45, 700, 33, 1200]
        .into_iter()
        .enumerate()
    {
        seqs.push(lcg_bytes(n, 100 + i as u64));
    }
    let refs: Vec<&[u8]> = seqs.iter().map(|s| s.as_slice()).collect();
    for model in models {
        let cpu = CpuBackend::new(model.clone(), KernelPath::best_available());
        let mut chains = cpu.new_chains(1);
        let mut scratch = cpu.new_scratch(1);
        let (mut want_tables, mut want_bits) = (Vec::new(), Vec::new());
        for s in &refs {
            cpu.reset_chain(&mut chains, 0);
            let mut input = 256u16;
            for &x in s.iter() {
                let mut part = cpu.part(&mut chains, 1);
                let f = cpu.step(&mut part, 0, &[input], &mut scratch)[0];
                want_tables.extend_from_slice(&f);
                want_bits.push(crate::codecs::cm::lm_byte_bits(&f, x));
                input = x as u16;
            }
        }
        let gpu = CudaBackend::new(model.clone()).unwrap();
        let tiles = gpu.known_tiles();
        assert!(tiles.contains(&1), "{tiles:?}");
        for tile in tiles {
            let (bits, tables) = gpu.known(&refs, Some(tile), true);
            assert_eq!(tables, want_tables, "d={} tile {tile}", model.dim());
            let bits: Vec<[u16; 8]> = bits.concat();
            assert_eq!(bits, want_bits, "d={} tile {tile}", model.dim());
        }
        assert_eq!(gpu.known_bits(&refs).concat(), want_bits);
    }
}
