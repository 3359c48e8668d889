//! Context-mixing chunk payloads (format-spec section 8), without the
//! language model. Input layout (plain bytes, so that seeds are payloads):
//!
//! - byte 0 bit 7 clear, **decode**: bytes 1-2 are `raw_len` (u16 LE, so
//!   at most 64 KiB), the rest is a payload. `lza::codecs::cm::decode` must not
//!   panic; a success is exactly `raw_len` bytes; an unknown preset id or
//!   the model flag (bit 7) is an error (the x86 flag, bit 6, is not, but
//!   either flag on preset 6 is).
//! - byte 0 bit 7 set, **round trip**: preset 0, 1, 2, 7 or 9 by
//!   `(byte 0 & 0x0F) % 5` (fast, normal, with-model's contexts, binary,
//!   text-fast),
//!   the rest is text; with bit 5 set, after
//!   the x86 filter. `encode` (or `encode_x86`) then `decode` gives the text
//!   back; the payload starts with the preset id (and the x86 flag). With
//!   bit 4 set instead, preset 6 (16-bit image) with width
//!   `2 + 37 * (byte 0 & 0x0F)` and first byte `bit 5`: `encode_image`, its
//!   4-byte header checked, then `decode`.
//!   With bit 6 also set, the payload is damaged too: cut by one byte it is
//!   `Truncated`, with a byte appended `Trailing(1)`, and with one byte
//!   flipped (where the text's hash says) it decodes to something or an
//!   error, never a panic, and a success is exactly the text's length.
//!
//! A predictor costs a few milliseconds to set up under ASan (its tables,
//! 4 MiB of APM among them, whatever the chunk's length), so each input
//! builds as few as it can: the damage checks are opt-in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lza::codecs::cm::{
    decode, encode, encode_image, encode_x86, CmError, Image, Preset, FLAG_LM, FLAG_X86,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 == 0 {
        if rest.len() < 2 {
            return;
        }
        let raw_len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let payload = &rest[2..];
        let r = decode(payload, raw_len);
        match payload.first() {
            None => assert_eq!(r, Err(CmError::Empty)),
            Some(&b) if Preset::from_id(b & !(FLAG_LM | FLAG_X86)).is_none() => {
                assert_eq!(r, Err(CmError::BadPreset(b)))
            }
            Some(&b) if b & !(FLAG_LM | FLAG_X86) == 6 && b != 6 => {
                assert_eq!(r, Err(CmError::BadFlags(b)))
            }
            Some(&b) if b & FLAG_LM != 0 => assert_eq!(r, Err(CmError::NeedsModel(b))),
            Some(_) => {
                if let Ok(out) = &r {
                    assert_eq!(out.len(), raw_len, "decoded length differs from raw_len");
                }
            }
        }
        return;
    }
    let preset = Preset::from_id([0, 1, 2, 7, 9][(mode & 0x0F) as usize % 5]).expect("ids exist");
    let text = rest;
    let (c, head) = if mode & 0x10 != 0 {
        let image = Image {
            width: 2 + 37 * (mode & 0x0F) as u16,
            first: (mode >> 5) & 1,
        };
        let c = encode_image(text, image);
        assert_eq!(c[0], 6, "preset byte");
        assert_eq!(u16::from_le_bytes([c[1], c[2]]), image.width, "width");
        assert_eq!(c[3], image.first, "first byte");
        (c, 4)
    } else {
        let x86 = mode & 0x20 != 0;
        let c = if x86 {
            encode_x86(text, preset)
        } else {
            encode(text, preset)
        };
        assert_eq!(
            c[0],
            preset.id | if x86 { FLAG_X86 } else { 0 },
            "preset byte"
        );
        (c, 1)
    };
    assert!(
        c.len() >= head + 4,
        "a payload has its header and the 4-byte flush"
    );
    let back = decode(&c, text.len()).expect("round trip");
    assert!(back == text, "round trip gives other bytes");
    if mode & 0x40 == 0 {
        return;
    }
    assert_eq!(
        decode(&c[..c.len() - 1], text.len()),
        Err(CmError::Truncated)
    );
    let mut long = c.clone();
    long.push(mode);
    assert_eq!(decode(&long, text.len()), Err(CmError::Trailing(1)));
    // One coded byte flipped (not the header).
    let h = text.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let mut bad = c.clone();
    let at = head + (h as usize % (c.len() - head));
    bad[at] ^= 1 << (h >> 61);
    // A payload is canonical (spec 8.3: the flush is checked too), so no
    // other payload decodes to the same bytes.
    if let Ok(out) = decode(&bad, text.len()) {
        assert_eq!(out.len(), text.len());
        assert!(
            out != text,
            "a damaged payload decoded to the original bytes"
        );
    }
});
