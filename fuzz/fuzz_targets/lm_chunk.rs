//! Arbitrary bytes as a language-model chunk payload, decoded with the test
//! model (testdata/models/test-gru.safetensors): never a panic, never more
//! than the declared `raw_len` bytes, a success consumed the whole payload,
//! and the portable kernel path agrees with the best one. The same bytes as
//! a context-mixing payload that uses the model: two threads (one chunk
//! alone: the model on a helper thread) agree with one. Arbitrary text
//! also round-trips through encode and decode, and as a context-mixing
//! chunk of two streams (preset 8).
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lza::codecs::lm::{KernelPath, LmCodec, Model};

#[derive(Arbitrary, Debug)]
struct Input {
    payload: Vec<u8>,
    raw_len: u16,
    text: Vec<u8>,
}

fn codecs() -> &'static (LmCodec, LmCodec, LmCodec) {
    static C: OnceLock<(LmCodec, LmCodec, LmCodec)> = OnceLock::new();
    C.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/models/test-gru.safetensors"
        );
        let model = Arc::new(Model::from_file(path).expect("test model"));
        let best = LmCodec::new(model.clone(), KernelPath::best_available(), 1, 4).unwrap();
        let two = LmCodec::new(model.clone(), KernelPath::best_available(), 2, 4).unwrap();
        let portable = LmCodec::new(model, KernelPath::Portable, 1, 1).unwrap();
        (best, portable, two)
    })
}

/// Two decodings of one payload: both fail, or both give the same
/// `raw_len` bytes.
fn agree<E: std::fmt::Debug>(
    a: &Result<Vec<u8>, E>,
    b: &Result<Vec<u8>, E>,
    raw_len: usize,
    what: &str,
) {
    match (a, b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x.len(), raw_len, "decoded length differs from raw_len");
            assert_eq!(x, y, "{what}");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("{what}: {a:?} vs {b:?}"),
    }
}

fuzz_target!(|input: Input| {
    let (best, portable, two) = codecs();
    // Up to 2 KiB: each symbol is a model step.
    let raw_len = input.raw_len as usize % 2049;
    let payload = &input.payload[..input.payload.len().min(4096)];
    let a = best.decode_chunks(&[(payload, raw_len)]).pop().unwrap();
    let b = portable.decode_chunks(&[(payload, raw_len)]).pop().unwrap();
    agree(&a, &b, raw_len, "kernel paths disagree");

    // as a context-mixing payload with the model (bit 7 of the preset byte)
    if let Some((&first, rest)) = payload.split_first() {
        let mut cm = vec![first | 0x80];
        cm.extend_from_slice(rest);
        let a = lza::codecs::cmlm::decode_chunks(best, &[(&cm, raw_len)]).pop().unwrap();
        let b = lza::codecs::cmlm::decode_chunks(two, &[(&cm, raw_len)]).pop().unwrap();
        agree(&a, &b, raw_len, "one and two threads disagree");
    }

    let text = &input.text[..input.text.len().min(1024)];
    let coded = best.encode_chunks(&[text]).pop().unwrap();
    assert_eq!(
        coded,
        portable.encode_chunks(&[text]).pop().unwrap(),
        "encoders disagree"
    );
    let back = portable
        .decode_chunks(&[(&coded, text.len())])
        .pop()
        .unwrap();
    assert_eq!(back.expect("round trip"), text);

    // the same text as a context-mixing chunk of two streams (format-spec
    // 8.4): one thread encodes, two decode (the model chains on a helper)
    let coded = lza::codecs::cmlm::encode_chunks(best, &[text], lza::codecs::cm::WITH_LM_TWO_STREAMS).pop().unwrap();
    let back = lza::codecs::cmlm::decode_chunks(two, &[(&coded, text.len())]).pop().unwrap();
    assert_eq!(back.expect("two-stream round trip"), text);
});
