//! Context-mixing coding of chunks (format-spec section 8).
//!
//! Each chunk is coded bit by bit with a binary arithmetic coder
//! ([`coder`]); the probability of each bit comes from a [`model::Predictor`]
//! that mixes online context models, a match model and, optionally, the
//! language model's prediction of the byte. The predictor starts empty for
//! every chunk: a chunk's history is its own bytes (format-spec 8.1), so
//! chunks stay independent and are coded in parallel.
//!
//! A payload is one header byte (`preset id | 0x80` when the language model
//! takes part) followed by the arithmetic coder's bytes. Chunks that use the
//! language model are coded by [`crate::codecs::cmlm`], which runs the model for
//! many such chunks side by side; the functions here code chunks without
//! it.

mod apm;
pub mod budget;
pub mod coder;
mod contexts;
mod counter;
mod image;
mod lm_bits;
mod match_model;
#[allow(unsafe_code)] // AVX2 dot product and training, with a portable twin
mod mixer;
pub mod model;
mod presets;
mod stream;
mod tables;

pub use image::Image;
pub use lm_bits::lm_byte_bits;
pub use model::Predictor;
pub use presets::{
    BINARY, FAST, IMAGE16, NORMAL, PRESETS, Preset, TEXT, TEXT_FAST, WITH_LM, WITH_LM_CLASSES,
    WITH_LM_TOKENS, WITH_LM_TWO_STREAMS,
};

/// Payload header flag: the language model takes part.
pub const FLAG_LM: u8 = crate::format::CM_FLAG_LM;

/// Payload header flag: the chunk's bytes were coded after the x86 filter
/// (format-spec 8.7), which the decoder undoes.
pub const FLAG_X86: u8 = crate::format::CM_FLAG_X86;

/// Largest chunk that may use the language model (format-spec 8.1).
pub const MAX_CM_LM_CHUNK: usize = 4 << 20;

/// Errors of context-mixing payloads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmError {
    /// The payload is empty.
    #[error("corrupt context-mixing payload: empty")]
    Empty,
    /// The first byte names no preset.
    #[error("corrupt context-mixing payload: unknown preset byte {0:#04x}")]
    BadPreset(u8),
    /// The chunk is too long to use the language model.
    #[error(
        "corrupt context-mixing payload: a chunk of {0} bytes may not use the language model (at most {MAX_CM_LM_CHUNK})"
    )]
    TooLongForLm(usize),
    /// The payload ended before the chunk was complete.
    #[error("corrupt context-mixing payload: it ends before the chunk is complete")]
    Truncated,
    /// Bytes remain after the last bit.
    #[error("corrupt context-mixing payload: {0} bytes left after the last bit")]
    Trailing(usize),
    /// The last four bytes are not the coder's final state.
    #[error("corrupt context-mixing payload: its last four bytes are not the coder's final state")]
    BadFlush,
    /// The first byte sets a flag that its preset does not take.
    #[error(
        "corrupt context-mixing payload: preset byte {0:#04x} sets a flag that preset 6 does not take"
    )]
    BadFlags(u8),
    /// Preset 6's image parameters are invalid.
    #[error(
        "corrupt context-mixing payload: bad image parameters (width {0}, first byte {1}; need width >= 2 and first byte 0 or 1)"
    )]
    BadImage(u16, u8),
    /// The payload uses the language model, which this decoder was not given.
    #[error("context-mixing payload uses the language model (preset byte {0:#04x})")]
    NeedsModel(u8),
}

/// What a payload's first byte says (format-spec 8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader {
    /// The preset.
    pub preset: Preset,
    /// The language model takes part.
    pub lm: bool,
    /// The bytes were coded after the x86 filter.
    pub x86: bool,
    /// Preset 6's image parameters.
    pub image: Option<Image>,
    /// Bytes of header before the arithmetic coder's bytes: 1, or 4 with
    /// preset 6.
    pub len: usize,
}

/// The header of the payload of a chunk of `raw_len` bytes.
pub fn parse_header(payload: &[u8], raw_len: usize) -> Result<PayloadHeader, CmError> {
    let &b = payload.first().ok_or(CmError::Empty)?;
    let preset = Preset::from_id(b & !(FLAG_LM | FLAG_X86)).ok_or(CmError::BadPreset(b))?;
    let lm = b & FLAG_LM != 0;
    let x86 = b & FLAG_X86 != 0;
    if lm && raw_len > MAX_CM_LM_CHUNK {
        return Err(CmError::TooLongForLm(raw_len));
    }
    if !preset.image {
        return Ok(PayloadHeader {
            preset,
            lm,
            x86,
            image: None,
            len: 1,
        });
    }
    // preset 6: no flag, then the width and the first sample's offset
    if lm || x86 {
        return Err(CmError::BadFlags(b));
    }
    let p = payload.get(1..4).ok_or(CmError::Truncated)?;
    let (width, first) = (u16::from_le_bytes([p[0], p[1]]), p[2]);
    if width < 2 || first > 1 {
        return Err(CmError::BadImage(width, first));
    }
    Ok(PayloadHeader {
        preset,
        lm,
        x86,
        image: Some(Image { width, first }),
        len: 4,
    })
}

/// The x86 filter (format-spec 8.7): the 32-bit operand of each `E8`
/// (call) or `E9` (jump) byte whose top byte is 0 or 255, that is a
/// relative offset within 16 MiB, has its low 24 bits made absolute by
/// adding the byte's position (`decode` subtracts it), so that calls to one
/// function look alike wherever they are. A scan skips the 4 operand bytes
/// it looked at, which the filter leaves the opcode and top bytes of, so both
/// directions make the same decisions.
pub fn x86_filter(data: &mut [u8], decode: bool) {
    let mut i = 0;
    while i + 4 < data.len() {
        let (near, next) = x86_step(data, i);
        if near {
            let v = u32::from_le_bytes([data[i + 1], data[i + 2], data[i + 3], 0]);
            let p = i as u32;
            let v = if decode {
                v.wrapping_sub(p)
            } else {
                v.wrapping_add(p)
            } & 0xFF_FFFF;
            data[i + 1..i + 4].copy_from_slice(&v.to_le_bytes()[..3]);
        }
        i = next;
    }
}

/// One step of the x86 filter's scan at `i` (with `i + 4 < data.len()`):
/// whether an `E8`/`E9` with a near operand starts there, and where the
/// scan goes next.
#[inline(always)]
fn x86_step(data: &[u8], i: usize) -> (bool, usize) {
    if data[i] & 0xFE == 0xE8 {
        (data[i + 4] == 0 || data[i + 4] == 0xFF, i + 5)
    } else {
        (false, i + 1)
    }
}

/// Whether `data` looks like x86 machine code: `E8`/`E9` bytes with a
/// near operand (top byte 0 or 255) make up at least 0.5% of it, as in
/// silesia/ooffice (2.8%); text, images and databases of the benchmark
/// set have under 0.05%. The encoder's choice (format-spec 8.6).
pub fn looks_like_x86(data: &[u8]) -> bool {
    let mut n = 0usize;
    let mut i = 0;
    while i + 4 < data.len() {
        let (near, next) = x86_step(data, i);
        n += near as usize;
        i = next;
    }
    data.len() >= 4096 && n * 200 >= data.len()
}

/// Where `data` may hold a 16-bit little-endian image (the encoder's
/// guess, format-spec 8.6): the row width and parity that make the mean
/// difference between a sample and the one a row above smallest, if that
/// is under a quarter of the mean difference between samples far apart.
/// Checks widths 2 to 4096 on `clamp(samples / 16, 512, 8192)` samples
/// spread over the data.
///
/// The sums run probe by probe over the 4 KiB window before each probe
/// (one contiguous pass that the compiler vectorizes), not width by width
/// over every probe, which touched the whole input 4,095 times: on
/// calgary/book1 the guess took 6.7% of `-m cm`'s compression time that
/// way. The sums are the same integers either way (at most 8,192 probes of
/// differences below 2^16: under 2^32), so the guess is too.
pub fn guess_image(data: &[u8]) -> Option<Image> {
    const MAX_WIDTH: usize = 4096;
    const PROBES: usize = 8192;
    if data.len() < 64 << 10 {
        return None;
    }
    let mut best: Option<(u64, Image)> = None;
    // sums[k]: the differences at width MAX_WIDTH - k, k in 0..MAX_WIDTH - 1
    let mut sums = vec![0u32; MAX_WIDTH - 1];
    let mut window = vec![0u32; MAX_WIDTH - 1];
    for first in 0..2usize {
        let n = (data.len() - first) / 2;
        let at =
            |i: usize| u16::from_le_bytes([data[first + 2 * i], data[first + 2 * i + 1]]) as u32;
        // fewer probes for small chunks, so that guessing costs little
        // next to coding
        let count = (n / 16).clamp(512, PROBES);
        let step = ((n - MAX_WIDTH) / count).max(1);
        let mut far = 0u64;
        sums.fill(0);
        for i in (MAX_WIDTH..n).step_by(step).take(count) {
            let x = at(i);
            far += x.abs_diff(at(i - MAX_WIDTH + 1 + (i * 7919) % (MAX_WIDTH - 1))) as u64;
            // window[k] = the sample MAX_WIDTH - k before i
            let bytes = &data[first + 2 * (i - MAX_WIDTH)..first + 2 * (i - 1)];
            for (w, b) in window.iter_mut().zip(bytes.chunks_exact(2)) {
                *w = u16::from_le_bytes([b[0], b[1]]) as u32;
            }
            for (s, &w) in sums.iter_mut().zip(&window) {
                *s += x.abs_diff(w);
            }
        }
        for width in 2..=MAX_WIDTH {
            keep_best(&mut best, sums[MAX_WIDTH - width] as u64, far, width, first);
        }
    }
    best.map(|(_, image)| image)
}

/// Keeps width `width` at parity `first` as the guess if its sum of row
/// differences `d` is under a quarter of `far` and below the best so far
/// (the first of equal sums stays).
fn keep_best(best: &mut Option<(u64, Image)>, d: u64, far: u64, width: usize, first: usize) {
    if d * 4 < far && best.is_none_or(|(b, _)| d < b) {
        let image = Image {
            width: width as u16,
            first: first as u8,
        };
        *best = Some((d, image));
    }
}

/// Code `data` with `preset`, without the language model.
pub fn encode(data: &[u8], preset: Preset) -> Vec<u8> {
    encode_with(data, preset, 0)
}

/// Code `data` with `preset` after the x86 filter, without the model.
pub fn encode_x86(data: &[u8], preset: Preset) -> Vec<u8> {
    let mut f = data.to_vec();
    x86_filter(&mut f, false);
    encode_with(&f, preset, FLAG_X86)
}

/// Code `data` with preset 6, its samples lying as `image` says.
pub fn encode_image(data: &[u8], image: Image) -> Vec<u8> {
    let [w0, w1] = image.width.to_le_bytes();
    let head = [IMAGE16.id, w0, w1, image.first];
    code_with(data, Predictor::new_image(data.len(), image), &head)
}

fn encode_with(data: &[u8], preset: Preset, flags: u8) -> Vec<u8> {
    code_with(
        data,
        Predictor::new(preset, data.len(), false),
        &[preset.id | flags],
    )
}

/// The payload: `head`, then `data` coded with predictor `p` (in the
/// predictor's order: with two streams, a byte of each half in turn).
fn code_with(data: &[u8], mut p: Predictor, head: &[u8]) -> Vec<u8> {
    let mut enc = coder::Encoder::with_capacity(data.len() / 3 + 16);
    let split = p.split();
    for _ in 0..data.len() {
        let (k, i) = p.next_in_stream();
        p.encode_byte(&mut enc, data[k * split + i]);
    }
    let mut out = head.to_vec();
    out.extend_from_slice(&enc.finish());
    out
}

/// Decode a payload that does not use the language model into exactly
/// `raw_len` bytes.
pub fn decode(payload: &[u8], raw_len: usize) -> Result<Vec<u8>, CmError> {
    let h = parse_header(payload, raw_len)?;
    if h.lm {
        // callers route these to the language-model codec
        return Err(CmError::NeedsModel(payload[0]));
    }
    // (held until the predictor is dropped)
    let _lease = budget::DECODE.lease(Predictor::memory(h.preset, raw_len, false));
    let mut p = match h.image {
        Some(image) => Predictor::new_image(raw_len, image),
        None => Predictor::new(h.preset, raw_len, false),
    };
    let mut dec = coder::Decoder::new(&payload[h.len..]);
    for _ in 0..raw_len {
        p.decode_byte(&mut dec);
        if dec.overrun() {
            return Err(CmError::Truncated);
        }
    }
    finish(&dec)?;
    let mut out = p.into_history();
    if h.x86 {
        x86_filter(&mut out, true);
    }
    Ok(out)
}

/// The end-of-payload checks of a decoder.
pub fn finish(dec: &coder::Decoder<'_>) -> Result<(), CmError> {
    match dec.finish() {
        Ok(()) => Ok(()),
        Err(coder::End::Truncated) => Err(CmError::Truncated),
        Err(coder::End::Trailing(n)) => Err(CmError::Trailing(n)),
        Err(coder::End::BadFlush) => Err(CmError::BadFlush),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..3000u32 {
            v.extend_from_slice(
                format!(
                    "<row id=\"{i}\" v=\"{}\">text {}</row>\n",
                    i * 7 % 13,
                    i % 10
                )
                .as_bytes(),
            );
        }
        v
    }

    /// The table holds each preset at its id, and ids past it are unknown.
    #[test]
    fn preset_table_is_indexed_by_id() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert_eq!(p.id as usize, i, "{}", p.name);
            assert_eq!(Preset::from_id(i as u8), Some(*p));
        }
        assert_eq!(Preset::from_id(PRESETS.len() as u8), None);
        assert_eq!(decode(&[10, 0, 0, 0, 0], 1), Err(CmError::BadPreset(10)));
    }

    #[test]
    fn round_trip_both_presets() {
        let data = sample();
        for preset in [
            FAST,
            NORMAL,
            TEXT,
            WITH_LM_TOKENS,
            WITH_LM_CLASSES,
            WITH_LM_TWO_STREAMS,
            BINARY,
            TEXT_FAST,
        ] {
            let c = encode(&data, preset);
            assert!(c.len() * 8 < data.len(), "{} -> {}", data.len(), c.len());
            assert_eq!(decode(&c, data.len()).unwrap(), data);
        }
        for len in [0usize, 1, 2, 7, 100] {
            for preset in [NORMAL, TEXT, BINARY, WITH_LM_TWO_STREAMS, TEXT_FAST] {
                let c = encode(&data[..len], preset);
                assert_eq!(decode(&c, len).unwrap(), &data[..len]);
            }
        }
    }

    /// x86-like code: instructions of random bytes and calls (`E8` and a
    /// relative 32-bit offset) to a few functions.
    fn x86_like(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        let funcs: Vec<u32> = (0..40).map(|_| r() % (n as u32).max(1)).collect();
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            if r() % 4 == 0 {
                let at = v.len() as u32;
                let target = funcs[(r() % 40) as usize];
                v.push(if r() % 3 == 0 { 0xE9 } else { 0xE8 });
                v.extend_from_slice(&target.wrapping_sub(at + 5).to_le_bytes());
            } else {
                for _ in 0..1 + r() % 6 {
                    v.push([0x8B, 0x89, 0x55, 0x5D, 0xC3, 0x83, 0x45][(r() % 7) as usize]);
                    v.push(r() as u8);
                }
            }
        }
        v.truncate(n);
        v
    }

    /// The filter is undone exactly, at every length and whatever the
    /// bytes (operands cut off at the end, top bytes that are not 0 or 255,
    /// runs of E8); it pays on call-heavy code and is chosen only there.
    #[test]
    fn x86_filter_round_trips_and_pays_on_code() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xE8],
            vec![0xE8, 1, 2, 3],
            vec![0xE8, 1, 2, 3, 0],
            vec![0xE9, 0xFF, 0xFF, 0xFF, 0xFF, 0xE8],
            vec![0xE8; 33],
            [0xE8, 5, 6, 7, 0x12].repeat(9),
        ];
        let mut s = 1u64;
        for n in [100usize, 1000, 4099] {
            cases.push(
                (0..n)
                    .map(|_| {
                        s = s.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7);
                        [0xE8, 0xE9, 0, 0xFF, (s >> 40) as u8][(s >> 61) as usize % 5]
                    })
                    .collect(),
            );
        }
        cases.push(x86_like(20_000, 3));
        for c in &cases {
            let mut f = c.clone();
            x86_filter(&mut f, false);
            let mut back = f.clone();
            x86_filter(&mut back, true);
            assert_eq!(&back, c);
            let p = encode_x86(c, TEXT);
            assert_eq!(p[0], TEXT.id | FLAG_X86);
            assert_eq!(decode(&p, c.len()).unwrap(), *c);
        }
        let code = x86_like(100_000, 5);
        let mut f = code.clone();
        x86_filter(&mut f, false);
        assert_ne!(f, code);
        assert!(looks_like_x86(&code));
        let (plain, filtered) = (encode(&code, TEXT), encode_x86(&code, TEXT));
        assert!(
            filtered.len() * 100 < plain.len() * 95,
            "{} vs {}",
            filtered.len(),
            plain.len()
        );
        assert!(!looks_like_x86(&sample()));
        assert!(!looks_like_x86(&code[..4000]), "too short to judge");
        // an unknown preset id with the flag is still an unknown preset
        assert_eq!(
            decode(&[0x4A, 0, 0, 0, 0], 3),
            Err(CmError::BadPreset(0x4A))
        );
    }

    /// A 16-bit little-endian image `width` samples wide: smooth shading
    /// in 12 bits with some noise, after `first` header bytes.
    fn image(width: usize, rows: usize, first: usize) -> Vec<u8> {
        let mut s = 7u64;
        let mut v = vec![0xA5; first];
        for y in 0..rows {
            for x in 0..width {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (s >> 60) as i32 - 8;
                let d = ((x as i32 - 150).pow(2) + (y as i32 - 90).pow(2)) / 40;
                let val = (2000 + 3 * x as i32 - 2 * y as i32 - d + noise).clamp(0, 4095);
                v.extend_from_slice(&(val as u16).to_le_bytes());
            }
        }
        v
    }

    /// Preset 6 round-trips at every length and parity, pays on an image,
    /// and the guess finds the image's width and first byte; text and
    /// random bytes are not taken for images.
    #[test]
    fn image_preset_round_trips_pays_and_is_guessed() {
        for first in 0..2usize {
            let data = image(300, 120, first);
            let guess = guess_image(&data);
            assert_eq!(
                guess,
                Some(Image {
                    width: 300,
                    first: first as u8
                })
            );
            let img = encode_image(&data, guess.unwrap());
            assert_eq!(img[..4], [6, 44, 1, first as u8]);
            assert_eq!(decode(&img, data.len()).unwrap(), data);
            let plain = encode(&data, TEXT);
            assert!(
                img.len() * 100 < plain.len() * 95,
                "image {} B, preset 3 {} B",
                img.len(),
                plain.len()
            );
        }
        let data = image(40, 10, 1);
        for len in [0usize, 1, 2, 3, 5, 81, 82, 83, 800] {
            for (width, first) in [(2u16, 0u8), (2, 1), (40, 1), (65535, 0)] {
                let im = Image { width, first };
                let c = encode_image(&data[..len], im);
                assert_eq!(decode(&c, len).unwrap(), &data[..len], "{len} {im:?}");
            }
        }
        assert_eq!(guess_image(&sample()), None);
        let mut s = 3u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                (s >> 56) as u8
            })
            .collect();
        assert_eq!(guess_image(&noise), None);
        assert_eq!(
            guess_image(&image(300, 100, 0)[..60_000]),
            None,
            "too short"
        );
    }

    /// The guess's sums as first written: width by width over every probe.
    /// The guess must give what it gives, on images (every width and parity
    /// among the candidates), on text, on noise and on what falls between.
    fn guess_image_width_by_width(data: &[u8]) -> Option<Image> {
        const MAX_WIDTH: usize = 4096;
        if data.len() < 64 << 10 {
            return None;
        }
        let mut best: Option<(u64, Image)> = None;
        for first in 0..2usize {
            let n = (data.len() - first) / 2;
            let at = |i: usize| {
                u16::from_le_bytes([data[first + 2 * i], data[first + 2 * i + 1]]) as i64
            };
            let count = (n / 16).clamp(512, 8192);
            let step = ((n - MAX_WIDTH) / count).max(1);
            let probes: Vec<usize> = (MAX_WIDTH..n).step_by(step).take(count).collect();
            let far: u64 = probes
                .iter()
                .map(|&i| at(i).abs_diff(at(i - MAX_WIDTH + 1 + (i * 7919) % (MAX_WIDTH - 1))))
                .sum();
            for width in 2..=MAX_WIDTH {
                let d: u64 = probes.iter().map(|&i| at(i).abs_diff(at(i - width))).sum();
                keep_best(&mut best, d, far, width, first);
            }
        }
        best.map(|(_, image)| image)
    }

    #[test]
    fn image_guess_matches_the_width_by_width_sums() {
        let mut s = 11u64;
        let mut noise = |len: usize, mask: u8| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 56) as u8 & mask
                })
                .collect()
        };
        let mut inputs = vec![
            image(300, 400, 0),
            image(300, 400, 1),
            image(4096, 20, 0),
            image(7, 9400, 1),
            sample().repeat(3),
            noise(200_000, 0xFF),
            // extreme samples: differences near 2^16 at every probe
            [0u8, 0, 0xFF, 0xFF].repeat(70_000),
            noise(1 << 20, 0x0F),
        ];
        // an image with a noisy header and a text tail
        let mut mixed = noise(777, 0xFF);
        mixed.extend(image(1000, 80, 0));
        mixed.extend(sample());
        inputs.push(mixed);
        for (k, data) in inputs.iter().enumerate() {
            for len in [data.len(), (64 << 10) + 4097, 64 << 10, (64 << 10) - 1] {
                let d = &data[..len.min(data.len())];
                assert_eq!(
                    guess_image(d),
                    guess_image_width_by_width(d),
                    "input {k}, {len} bytes"
                );
            }
        }
        assert!(guess_image(&inputs[0]).is_some());
    }

    #[test]
    fn bad_image_headers_are_errors() {
        let data = image(64, 40, 0);
        let c = encode_image(
            &data,
            Image {
                width: 64,
                first: 0,
            },
        );
        assert_eq!(decode(&c[..1], 10), Err(CmError::Truncated));
        assert_eq!(decode(&c[..3], 10), Err(CmError::Truncated));
        assert_eq!(
            decode(&[6, 0, 0, 0, 1, 2], 10),
            Err(CmError::BadImage(0, 0))
        );
        assert_eq!(
            decode(&[6, 1, 0, 0, 1, 2], 10),
            Err(CmError::BadImage(1, 0))
        );
        assert_eq!(
            decode(&[6, 2, 0, 2, 1, 2], 10),
            Err(CmError::BadImage(2, 2))
        );
        assert_eq!(
            decode(&[0x46, 2, 0, 0, 1, 2], 10),
            Err(CmError::BadFlags(0x46))
        );
        assert_eq!(
            decode(&[0x86, 2, 0, 0, 1, 2], 10),
            Err(CmError::BadFlags(0x86))
        );
        assert!(decode(&c, data.len() + 1).is_err());
        assert!(decode(&c[..c.len() - 1], data.len()).is_err());
        // flipping any one byte never panics, and is caught unless it
        // only changes the image parameters
        for i in 0..c.len() {
            let mut m = c.clone();
            m[i] ^= 0x5A;
            let _ = decode(&m, data.len());
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let data = sample();
        let c = encode(&data[..5000], NORMAL);
        assert_eq!(decode(&[], 10), Err(CmError::Empty));
        assert_eq!(decode(&[10, 0, 0, 0, 0], 10), Err(CmError::BadPreset(10)));
        assert!(decode(&c[..c.len() - 1], 5000).is_err());
        let mut long = c.clone();
        long.push(1);
        assert!(decode(&long, 5000).is_err());
        assert!(decode(&c, 5001).is_err());
        // flipping any one byte never panics
        for i in 1..c.len() {
            let mut m = c.clone();
            m[i] ^= 0x5A;
            let _ = decode(&m, 5000);
        }
    }
}
