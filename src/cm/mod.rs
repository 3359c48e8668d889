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
//! language model are coded by [`crate::lm::LmCodec`], which runs the model
//! for many such chunks side by side; the functions here code chunks
//! without it.

pub mod coder;
pub mod model;
mod tables;

pub use model::{
    FAST, NORMAL, NORMAL2, Predictor, Preset, WITH_LM, WITH_LM2, WITH_LM3, lm_byte_bits,
};

/// Payload header flag: the language model takes part.
pub const FLAG_LM: u8 = 0x80;

/// Largest chunk that may use the language model (format-spec 8.1).
pub const MAX_CM_LM_CHUNK: usize = 4 << 20;

/// The language model's state is reset every this many bytes of a chunk,
/// as the model was trained (format-spec 8.4).
pub const LM_RESET: usize = crate::lm::MAX_LM_CHUNK;

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
    /// The payload uses the language model, which this decoder was not given.
    #[error("context-mixing payload uses the language model (preset byte {0:#04x})")]
    NeedsModel(u8),
}

/// The preset and language-model flag of a payload.
pub fn parse_header(payload: &[u8], raw_len: usize) -> Result<(Preset, bool), CmError> {
    let &b = payload.first().ok_or(CmError::Empty)?;
    let preset = Preset::from_id(b & !FLAG_LM).ok_or(CmError::BadPreset(b))?;
    let lm = b & FLAG_LM != 0;
    if lm && raw_len > MAX_CM_LM_CHUNK {
        return Err(CmError::TooLongForLm(raw_len));
    }
    Ok((preset, lm))
}

/// Code `data` with `preset`, without the language model.
pub fn encode(data: &[u8], preset: Preset) -> Vec<u8> {
    let mut p = Predictor::new(preset, data.len(), false);
    let mut enc = coder::Encoder::with_capacity(data.len() / 3 + 16);
    for &b in data {
        p.encode_byte(&mut enc, b);
    }
    let mut out = vec![preset.id];
    out.extend_from_slice(&enc.finish());
    out
}

/// Decode a payload that does not use the language model into exactly
/// `raw_len` bytes.
pub fn decode(payload: &[u8], raw_len: usize) -> Result<Vec<u8>, CmError> {
    let (preset, lm) = parse_header(payload, raw_len)?;
    if lm {
        // callers route these to the language-model codec
        return Err(CmError::NeedsModel(payload[0]));
    }
    let mut p = Predictor::new(preset, raw_len, false);
    let mut dec = coder::Decoder::new(&payload[1..]);
    for _ in 0..raw_len {
        p.decode_byte(&mut dec);
        if dec.overrun() {
            return Err(CmError::Truncated);
        }
    }
    finish(&dec)?;
    Ok(p.into_history())
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

    #[test]
    fn round_trip_both_presets() {
        let data = sample();
        for preset in [FAST, NORMAL, NORMAL2, WITH_LM2, WITH_LM3] {
            let c = encode(&data, preset);
            assert!(c.len() * 8 < data.len(), "{} -> {}", data.len(), c.len());
            assert_eq!(decode(&c, data.len()).unwrap(), data);
        }
        for len in [0usize, 1, 2, 7, 100] {
            for preset in [NORMAL, NORMAL2] {
                let c = encode(&data[..len], preset);
                assert_eq!(decode(&c, len).unwrap(), &data[..len]);
            }
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let data = sample();
        let c = encode(&data[..5000], NORMAL);
        assert_eq!(decode(&[], 10), Err(CmError::Empty));
        assert_eq!(decode(&[9, 0, 0, 0, 0], 10), Err(CmError::BadPreset(9)));
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
