//! Chunk codecs as the container sees them: frames, stored and zstd coding,
//! the calls into context mixing and the language model, and the
//! `TextCoder` seam through which the archive layer reaches the model.
//! The codecs themselves live in [`crate::codecs::cm`] and [`crate::codecs::lm`]; the
//! choice between them is made in [`crate::plan`].
//!
//! The codecs layer: this module's frames and seams, context mixing
//! ([`cm`]), the language model ([`lm`]), context mixing with the model
//! ([`cmlm`]) and where models come from ([`models`]).

pub mod cm;
pub mod cmlm;
pub mod lm;
pub mod models;
#[cfg(feature = "testutil")]
pub mod testutil;

use crate::format::error::CorruptKind;
use crate::format::{CodecId, FrameHeader, ModelHash};

/// A language-model text coder as the archive layer sees it (implemented by
/// [`crate::codecs::lm`]): codes many chunks side by side, deterministically.
pub trait TextCoder: Send + Sync {
    /// The hash of the model, written into the archive header.
    fn model_hash(&self) -> ModelHash;
    /// How many chunks it codes side by side (the batch size).
    fn batch(&self) -> usize;
    /// Code each chunk; one payload per chunk, in order.
    fn encode_chunks(&self, chunks: &[&[u8]]) -> Vec<Vec<u8>>;
    /// Decode `(payload, raw_len)` pairs; a bad payload fails only itself.
    fn decode_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, DecodeError>>;
    /// Code each chunk (at most [`crate::codecs::cm::MAX_CM_LM_CHUNK`] bytes) by
    /// context mixing with `preset` and this model; one payload per chunk.
    fn encode_cm_chunks(&self, chunks: &[&[u8]], preset: crate::codecs::cm::Preset)
    -> Vec<Vec<u8>>;
    /// The thread pool it runs on (`None` when it runs on the calling
    /// thread): the archive layer runs its other jobs on it too, so that
    /// `-T N` means N threads in all.
    fn pool(&self) -> Option<std::sync::Arc<rayon::ThreadPool>>;
    /// Decode context-mixing `(payload, raw_len)` pairs that use the model.
    fn decode_cm_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, DecodeError>>;
}

/// Why a chunk did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload is wrong (the archive is corrupt).
    Corrupt(String),
    /// A fault inside lza while decoding it (the payload was not found
    /// corrupt).
    Internal(String),
}

/// Whether a context-mixing payload uses the language model (its first
/// byte has [`crate::codecs::cm::FLAG_LM`]); false for other codecs.
pub fn uses_model(header: &FrameHeader, payload: &[u8]) -> bool {
    header.uses_model(payload)
}

/// A coded chunk: its frame header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame header.
    pub header: FrameHeader,
    /// The payload (`header.stored_len` bytes).
    pub payload: Vec<u8>,
}

impl Frame {
    /// Build a frame for `raw` coded as `payload` with `codec`.
    pub fn new(codec: CodecId, raw: &[u8], payload: Vec<u8>) -> Frame {
        Frame {
            header: FrameHeader {
                codec,
                raw_len: raw.len() as u32,
                stored_len: payload.len() as u32,
                raw_xxh3: xxhash_rust::xxh3::xxh3_64(raw),
            },
            payload,
        }
    }

    /// A stored frame.
    pub fn stored(raw: &[u8]) -> Frame {
        Frame::new(CodecId::Stored, raw, raw.to_vec())
    }

    /// Bytes this frame takes in the archive.
    pub fn encoded_len(&self) -> usize {
        crate::format::FRAME_HEADER_LEN + self.payload.len()
    }

    /// Append the frame's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header.to_bytes());
        out.extend_from_slice(&self.payload);
    }
}

/// zstd-compress `raw`; a stored frame if zstd does not make it smaller.
pub fn encode_zstd(raw: &[u8], level: i32) -> Frame {
    match zstd_compress(raw, level) {
        Some(c) if c.len() < raw.len() => Frame::new(CodecId::Zstd, raw, c),
        _ => Frame::stored(raw),
    }
}

fn zstd_compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level).ok()?;
    // The frame's checksum would duplicate raw_xxh3.
    c.include_checksum(false).ok()?;
    c.compress(raw).ok()
}

/// The magic number that starts an RFC 8878 zstd frame, as stored
/// (0xFD2FB528, little-endian).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Decode a stored, zstd or context-mixing payload (one that does not use
/// the language model) to exactly `header.raw_len` bytes. Payloads that use
/// the model are decoded by [`crate::codecs::lm`], not here.
pub fn decode_simple(header: &FrameHeader, payload: &[u8]) -> Result<Vec<u8>, CorruptKind> {
    let raw_len = header.raw_len as usize;
    let data = match header.codec {
        CodecId::Stored => payload.to_vec(),
        CodecId::Zstd => {
            // Exactly one RFC 8878 frame and nothing after it (format-spec
            // 5). The magic is checked here as well as by libzstd, which is
            // built without its legacy decoders: frames of zstd's pre-1.0
            // formats (other magics) and skippable frames never reach it.
            if !payload.starts_with(&ZSTD_MAGIC) {
                return Err(CorruptKind::Decode(
                    "zstd payload is not an RFC 8878 zstd frame (bad magic)".into(),
                ));
            }
            match zstd::zstd_safe::find_frame_compressed_size(payload) {
                Ok(n) if n == payload.len() => {}
                _ => {
                    return Err(CorruptKind::Decode(
                        "zstd payload is not exactly one zstd frame".into(),
                    ));
                }
            }
            let mut out = Vec::with_capacity(raw_len);
            let mut d = zstd::bulk::Decompressor::new()
                .map_err(|e| CorruptKind::Decode(format!("zstd: {e}")))?;
            // Capacity is the bound: zstd refuses to write past it.
            d.decompress_to_buffer(payload, &mut out)
                .map_err(|e| CorruptKind::Decode(format!("zstd: {e}")))?;
            out
        }
        CodecId::ContextMixing => crate::codecs::cm::decode(payload, raw_len)
            .map_err(|e| CorruptKind::Decode(e.to_string()))?,
        CodecId::LanguageModel => {
            return Err(CorruptKind::Decode(
                "language-model chunk given to the zstd decoder".into(),
            ));
        }
    };
    check_decoded(header, data)
}

/// Check decoded bytes against the frame's length and checksum.
pub fn check_decoded(header: &FrameHeader, data: Vec<u8>) -> Result<Vec<u8>, CorruptKind> {
    if data.len() != header.raw_len as usize {
        return Err(CorruptKind::Decode(format!(
            "decoded {} bytes, frame declares {}",
            data.len(),
            header.raw_len
        )));
    }
    if xxhash_rust::xxh3::xxh3_64(&data) != header.raw_xxh3 {
        return Err(CorruptKind::ChecksumMismatch("chunk data"));
    }
    Ok(data)
}

/// Whether a chunk looks like text worth giving to the language model: at
/// most 5% of its bytes are control bytes (other than tab, newline, carriage
/// return and form feed) or bytes outside valid UTF-8 sequences. Legacy
/// 8-bit text (Latin-1, CP437) passes; the model codes any byte, and the
/// encoder keeps zstd's result when the model does not win anyway.
pub fn looks_like_text(data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    let controls = data
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C)) || b == 0x7F)
        .count();
    let mut invalid = 0;
    let mut rest = data;
    while let Err(e) = std::str::from_utf8(rest) {
        // error_len() == None: the data ends inside a multi-byte sequence,
        // as a chunk cut from a longer text may.
        let Some(skip) = e.error_len() else { break };
        invalid += skip;
        rest = &rest[e.valid_up_to() + skip..];
    }
    (controls + invalid) * 20 <= data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_round_trip_and_stored_fallback() {
        let text = b"hello hello hello hello hello hello hello hello".repeat(20);
        let f = encode_zstd(&text, 3);
        assert_eq!(f.header.codec, CodecId::Zstd);
        assert_eq!(decode_simple(&f.header, &f.payload).unwrap(), text);

        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let f = encode_zstd(&noise, 3);
        assert_eq!(f.header.codec, CodecId::Stored);
        assert_eq!(decode_simple(&f.header, &f.payload).unwrap(), noise);
    }

    #[test]
    fn zstd_output_is_bounded_by_raw_len() {
        let text = vec![b'a'; 10_000];
        let mut f = encode_zstd(&text, 3);
        f.header.raw_len = 100;
        assert!(decode_simple(&f.header, &f.payload).is_err());
    }

    /// A frame of zstd's v0.7 format (magic 0xFD2FB527, one raw block of
    /// 13 bytes, then the end block), which a libzstd built with legacy
    /// support decodes to "legacy frame!". Format-spec 5 allows only RFC
    /// 8878 frames.
    #[test]
    fn legacy_zstd_frames_are_rejected() {
        let raw = b"legacy frame!";
        let mut payload = vec![0x27, 0xB5, 0x2F, 0xFD, 0x20, raw.len() as u8];
        payload.extend_from_slice(&[0x40, 0, raw.len() as u8]);
        payload.extend_from_slice(raw);
        payload.extend_from_slice(&[0xC0, 0, 0]);
        let header = Frame::new(CodecId::Zstd, raw, payload.clone()).header;
        let err = decode_simple(&header, &payload).unwrap_err();
        assert!(err.to_string().contains("RFC 8878"), "{err}");
        // libzstd itself, asked directly, does not know the format either
        assert!(zstd::zstd_safe::find_frame_compressed_size(&payload).is_err());
        let mut out = Vec::with_capacity(64);
        assert!(
            zstd::bulk::Decompressor::new()
                .unwrap()
                .decompress_to_buffer(&payload, &mut out)
                .is_err()
        );
        // a skippable frame (RFC 8878 3.1.2) is not a zstd frame either
        let skip = [0x50, 0x2A, 0x4D, 0x18, 1, 0, 0, 0, b'x'];
        let header = Frame::new(CodecId::Zstd, b"x", skip.to_vec()).header;
        assert!(decode_simple(&header, &skip).is_err());
    }

    #[test]
    fn text_detection() {
        assert!(looks_like_text("plain text\nwith ünïcode\r\n".as_bytes()));
        assert!(!looks_like_text(&[0, 1, 2, 3, 200, 201]));
        // Latin-1 prose: a few bytes outside UTF-8 do not make it binary.
        let mut latin1 = b"The caf\xe9 on the corner served cr\xeape and tea. ".repeat(4);
        assert!(looks_like_text(&latin1));
        latin1.extend_from_slice(&[0xFF; 40]);
        assert!(!looks_like_text(&latin1));
        assert!(!looks_like_text(b""));
        // A multi-byte character cut at the end is still text.
        let s = "aaaa é".as_bytes();
        assert!(looks_like_text(&s[..s.len() - 1]));
    }
}
