//! Context mixing with the model: the batched encoder against the
//! byte-by-byte run, the two-thread decoder against one thread, under
//! delays and faults, and the golden payload of two streams.

use super::*;
use crate::codecs::lm::tests::{lcg_bytes, sample_chunks, test_model};
use crate::codecs::lm::{KernelPath, Model, model};
use std::sync::Arc;

/// Decodes with the two-thread split as [`decode_paired`] does, with the
/// coder going alone from `alone_from` for `run` bytes at a time, and
/// `chaos` (seed, helper panic point) in the exchange.
fn split(
    codec: &LmCodec,
    payload: &[u8],
    raw_len: usize,
    preset: Preset,
    alone_from: usize,
    run: usize,
    chaos: Option<(u64, Option<u64>)>,
) -> Result<Vec<u8>, CmLmError> {
    let (mut dec, mut pred, chains) = start(payload, raw_len, preset);
    let mut coder = MixingDecoder {
        dec: &mut dec,
        pred: &mut pred,
    };
    codec.decode_split_with(&mut coder, raw_len, chains, alone_from, run, chaos)?;
    cm::finish(&dec)?;
    Ok(pred.take_history())
}

/// Context-mixing chunks that use the model: the batched encoder (model
/// first, coder after) gives the payloads of the byte-by-byte run, for any
/// threads and batch, across a model reset at 16 KiB; every payload decodes.
#[test]
fn cm_chunks_batched_equal_stepwise_and_round_trip() {
    let text = b"It was the best of times, it was the worst of times; <td class=\"x\">42</td>\n"
        .repeat(300);
    let mut chunks = sample_chunks();
    chunks.push(text[..LM_RESET + 777].to_vec()); // crosses a reset
    chunks.push(text[..LM_RESET].to_vec()); // ends at one
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let mut reference: [Option<Vec<Vec<u8>>>; 8] = Default::default();
    for (threads, batch) in [(1, 1), (1, 5), (2, 3), (3, 256)] {
        let codec =
            LmCodec::new(test_model(), KernelPath::detect().unwrap(), threads, batch).unwrap();
        for preset in [
            cm::WITH_LM,
            cm::WITH_LM_TOKENS,
            cm::WITH_LM_CLASSES,
            cm::FAST,
        ] {
            let batched = encode_chunks(&codec, &refs, preset);
            let stepwise = encode_chunks_stepwise(&codec, &refs, preset);
            assert!(
                batched == stepwise,
                "threads {threads} batch {batch} preset {}",
                preset.id
            );
            let inputs: Vec<(&[u8], usize)> = batched
                .iter()
                .zip(&refs)
                .map(|(p, c)| (p.as_slice(), c.len()))
                .collect();
            for (r, c) in decode_chunks(&codec, &inputs).into_iter().zip(&refs) {
                assert_eq!(r.unwrap().as_slice(), *c);
            }
            if preset != cm::FAST {
                match &reference[preset.id as usize] {
                    None => reference[preset.id as usize] = Some(batched),
                    Some(r) => assert!(*r == batched, "threads {threads} batch {batch}"),
                }
            }
        }
    }
    // a payload without the flag, or corrupt, fails only its own chunk
    let codec = LmCodec::new(test_model(), KernelPath::detect().unwrap(), 2, 4).unwrap();
    let good = encode_chunks(&codec, &[&text[..2000]], cm::WITH_LM).remove(0);
    let plain = cm::encode(&text[..2000], cm::WITH_LM);
    let mut cut = good.clone();
    cut.truncate(good.len() - 2);
    let out = decode_chunks(
        &codec,
        &[(&plain, 2000), (&cut, 2000), (&good, 2000), (&[0x85], 5)],
    );
    assert!(out[0].is_err() && out[1].is_err() && out[3].is_err());
    assert_eq!(out[2].as_ref().unwrap().as_slice(), &text[..2000]);
}

/// A lone context-mixing chunk on two threads is decoded with the model on
/// one thread and the coder on the other (`pair`): the same bytes as one
/// thread, for models of 1, 2 and 3 layers, every kernel path, across model
/// resets, with the coder going on alone and pairing again; mixed with
/// shared chunks in one call; and bad payloads fail without hanging.
#[test]
fn lone_cm_chunk_on_two_threads() {
    let path = KernelPath::detect().unwrap();
    let text =
        b"Far from the madding crowd's ignoble strife, <b>their</b> sober wishes\n".repeat(500);
    let noise = lcg_bytes(3000, 5);
    let chunks: Vec<&[u8]> = vec![
        &text[..1],
        &text[..2 * LM_RESET + 300], // two resets
        &noise,
        &text[7..4000],
    ];
    let models = [
        test_model(),
        Arc::new(Model::from_bytes(&model::synthetic_model_bytes(32, 1, 3)).unwrap()),
        Arc::new(Model::from_bytes(&model::synthetic_model_bytes(64, 3, 77)).unwrap()),
    ];
    for (m, model) in models.into_iter().enumerate() {
        let one = LmCodec::new(model.clone(), path, 1, 4).unwrap();
        let two = LmCodec::new(model.clone(), path, 2, 4).unwrap();
        let three = LmCodec::new(model.clone(), path, 3, 4).unwrap();
        let eight = LmCodec::new(model.clone(), path, 8, 4).unwrap();
        for preset in [cm::WITH_LM_CLASSES, cm::WITH_LM_TWO_STREAMS, cm::FAST] {
            let payloads = encode_chunks(&one, &chunks, preset);
            assert_eq!(encode_chunks(&two, &chunks, preset), payloads);
            let inputs: Vec<(&[u8], usize)> = payloads
                .iter()
                .zip(&chunks)
                .map(|(p, c)| (p.as_slice(), c.len()))
                .collect();
            for (&(p, n), c) in inputs.iter().zip(&chunks) {
                let direct = split(&one, p, n, preset, usize::MAX, 1 << 16, None).unwrap();
                assert_eq!(direct.as_slice(), *c, "layers {}", model.layers());
                let alone = decode_alone(&one.scheduler().backend, p, n, preset).unwrap();
                assert_eq!(alone.as_slice(), *c, "layers {}", model.layers());
                // the coder going on alone (as when the threads stall) from
                // byte 1, a byte before a reset and at one (coding order:
                // with two streams, the resets of both chains come at 2 x
                // LM_RESET and one after)
                // (every point with the first model; the others, whose
                // chains differ only in their layers, at three of them)
                let r = LM_RESET;
                let (froms, runs): (&[usize], &[usize]) = match m {
                    0 => (
                        &[1, 2, r - 1, r, 2 * r - 1, 2 * r, 2 * r + 1],
                        &[3, 1000, usize::MAX],
                    ),
                    _ => (&[1, r, 2 * r + 1], &[1000]),
                };
                for &from in froms.iter().filter(|&&f| f < n) {
                    // and pairing again after `run` bytes
                    for &run in runs {
                        let r = split(&one, p, n, preset, from, run, None);
                        assert_eq!(r.unwrap().as_slice(), *c, "alone from {from} for {run}");
                    }
                }
                assert_eq!(decode_chunks(&two, &[(p, n)])[0].as_ref().unwrap(), c);
            }
            // every kernel path decodes the same bytes on two threads
            // (payloads of the detected path; 4 KB, for the portable one)
            for other in KernelPath::available() {
                let (p, n) = inputs[3];
                let codec = LmCodec::new(model.clone(), other, 1, 4).unwrap();
                let r = split(&codec, p, n, preset, usize::MAX, 1 << 16, None);
                assert_eq!(r.unwrap().as_slice(), chunks[3], "path {other}");
            }
            // odd counts: shared chunks first, the last one alone; fewer
            // chunks than threads: the longest on two threads each, side
            // by side
            for (codec, k) in [(&two, 3), (&three, 4), (&two, 1), (&eight, 4), (&eight, 3)] {
                for (r, c) in decode_chunks(codec, &inputs[..k]).into_iter().zip(&chunks) {
                    assert_eq!(r.unwrap().as_slice(), *c);
                }
            }
        }
        // cut payloads fail; garbage fails or decodes to something, and
        // either way the call returns
        for preset in [cm::WITH_LM_CLASSES, cm::WITH_LM_TWO_STREAMS] {
            let good = encode_chunks(&one, &[&text[..5000]], preset).remove(0);
            for cut in [1, 2, good.len() / 2] {
                let bad = &good[..good.len() - cut];
                for from in [usize::MAX, 100] {
                    let r = split(&one, bad, 5000, preset, from, 7, None);
                    assert!(r.is_err(), "cut {cut}");
                }
                assert!(decode_alone(&one.scheduler().backend, bad, 5000, preset).is_err());
            }
            for seed in 0..8 {
                let mut junk = lcg_bytes(300, seed);
                junk[0] = preset.id | cm::FLAG_LM;
                for from in [usize::MAX, 10] {
                    let r = split(&one, &junk, 2000, preset, from, 7, None);
                    if let Ok(v) = r {
                        assert_eq!(v.len(), 2000);
                    }
                }
            }
        }
    }
}

/// The two-thread decoding of a lone chunk with either thread late at
/// random points of the exchange (as on a loaded machine, or with both
/// threads on one core): the same bytes every time, for one and two
/// chains, whether the coder goes on alone when it stalls, from a given
/// byte, or never. With the helper handing back when asked for, not at its
/// own step (the defect this guards), two chains failed here within a few
/// seeds.
#[test]
fn paired_decoding_under_random_delays() {
    let path = KernelPath::detect().unwrap();
    let text = b"It was the best of times, it was the worst of times; <i>the age</i> of 1859.\n"
        .repeat(80);
    let model = Arc::new(Model::from_bytes(&model::synthetic_model_bytes(32, 2, 9)).unwrap());
    let one = LmCodec::new(model.clone(), path, 1, 4).unwrap();
    for preset in [cm::WITH_LM_CLASSES, cm::WITH_LM_TWO_STREAMS] {
        let p = encode_chunks(&one, &[&text], preset).remove(0);
        for seed in 0..24u64 {
            let chaos = Some((seed, None));
            let from = [usize::MAX, 1 + seed as usize * 97 % text.len()][seed as usize % 2];
            let run = [3, 700, 1 << 16][seed as usize % 3];
            let r = split(&one, &p, text.len(), preset, from, run, chaos);
            assert_eq!(r.unwrap(), text, "preset {} seed {seed}", preset.id);
        }
    }
}

/// A helper thread that panics anywhere in the exchange gives an internal
/// error naming the panic (never a corrupt payload, never a hang), and the
/// panic does not escape the call.
#[test]
fn helper_panic_is_an_internal_error() {
    let path = KernelPath::detect().unwrap();
    let text = b"Call me Ishmael. Some years ago, never mind how long precisely.\n".repeat(40);
    let model = Arc::new(Model::from_bytes(&model::synthetic_model_bytes(32, 2, 4)).unwrap());
    let one = LmCodec::new(model.clone(), path, 1, 4).unwrap();
    for preset in [cm::WITH_LM_CLASSES, cm::WITH_LM_TWO_STREAMS] {
        let p = encode_chunks(&one, &[&text], preset).remove(0);
        for at in [1u64, 2, 3, 50, 1001, 2500] {
            let chaos = Some((at, Some(at)));
            let r = split(&one, &p, text.len(), preset, usize::MAX, 1 << 16, chaos);
            match r {
                Err(e @ CmLmError::Model(LmError::Internal(_))) => {
                    assert!(e.is_internal());
                    assert!(e.to_string().contains("injected fault"), "{e}");
                }
                other => panic!("panic at {at}: {other:?}"),
            }
        }
    }
}

/// Golden payload of preset 8 (two streams, format-spec 8.4): 40,000 bytes
/// of text (two streams of 20,000, so each chain is reset once) coded with
/// the test model. It pins the order of the streams, their separate
/// contexts and match models, the chains' resets and the falling mixer
/// rate. Regenerate (`LZA_REGENERATE=1 cargo test two_streams_golden`)
/// only for a deliberate format change.
const TWO_STREAMS_GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/golden/cm-two-streams.bin"
);

#[test]
fn two_streams_golden_payload() {
    let words: Vec<&[u8]> = b"the madding crowd far from ignoble strife <b>their</b> sober wishes never learned to stray 1874 along cool sequestered vale of life kept noiseless tenor"
        .split(|&c| c == b' ')
        .collect();
    let mut text = Vec::new();
    let mut x = 7u64;
    while text.len() < 40_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        text.extend_from_slice(words[(x >> 33) as usize % words.len()]);
        text.push(if (x >> 20).is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
    }
    text.truncate(40_000);
    let model = test_model();
    let path = KernelPath::detect().unwrap();
    let one = LmCodec::new(model.clone(), path, 1, 4).unwrap();
    let two = LmCodec::new(model.clone(), path, 2, 4).unwrap();
    let p = encode_chunks(&one, &[&text], cm::WITH_LM_TWO_STREAMS).remove(0);
    assert_eq!(p[0], 0x88);
    if std::env::var_os("LZA_REGENERATE").is_some() {
        std::fs::write(TWO_STREAMS_GOLDEN, &p).unwrap();
    }
    let golden = std::fs::read(TWO_STREAMS_GOLDEN).expect("the golden payload");
    assert!(p == golden, "preset 8's payload changed (format-spec 8.4)");
    for codec in [&one, &two] {
        let r = decode_chunks(codec, &[(&golden, text.len())]).remove(0);
        assert_eq!(r.unwrap(), text);
    }
    // the streams are the halves: coded as two chunks of one stream each,
    // the same text costs more (no shared history)
    let halves = encode_chunks(
        &one,
        &[&text[..20_000], &text[20_000..]],
        cm::WITH_LM_CLASSES,
    );
    assert!(halves[0].len() + halves[1].len() > golden.len());
}

/// On a GPU: context-mixing chunks with the model (one stream and two)
/// encode to the CPU's payloads and decode on the GPU, batched and one
/// chunk alone.
#[test]
fn gpu_cm_chunks_as_the_cpu() {
    let text = b"It was the best of times, it was the worst of times; <td class=\"x\">42</td>\n"
        .repeat(300);
    let mut chunks = sample_chunks();
    chunks.push(text[..LM_RESET + 777].to_vec());
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let cpu = LmCodec::new(test_model(), KernelPath::detect().unwrap(), 2, 8).unwrap();
    let Some(gpu) = crate::codecs::lm::tests::gpu_codec(test_model(), 3, 64) else {
        return;
    };
    for preset in [cm::WITH_LM, cm::WITH_LM_CLASSES, cm::WITH_LM_TWO_STREAMS] {
        let want = encode_chunks(&cpu, &refs, preset);
        assert_eq!(encode_chunks(&gpu, &refs, preset), want, "{}", preset.name);
        let pairs: Vec<(&[u8], usize)> = want
            .iter()
            .zip(&chunks)
            .map(|(p, c)| (p.as_slice(), c.len()))
            .collect();
        for (r, c) in decode_chunks(&gpu, &pairs).into_iter().zip(&chunks) {
            assert_eq!(&r.unwrap(), c, "{}", preset.name);
        }
        // a lone chunk (the path that splits a chunk over two threads on the CPU)
        let last = pairs.len() - 1;
        let lone = decode_chunks(&gpu, &pairs[last..]);
        assert_eq!(lone[0].as_ref().unwrap(), &chunks[last]);
    }
}

/// Each decoder leases its own chunk's tables from the budget while it
/// runs, on the thread that runs it: the budget's peak is at most the sum
/// of the chunks' own tables, not a lane's worth of the largest chunk's
/// for every lane (as a lease for a whole group of lanes was). Under a
/// budget of two decoders, with more threads than that, every chunk (of
/// two streams on lanes, of one stream on the batched scheduler's
/// workers) still decodes and the budget is never exceeded.
#[test]
fn each_decoder_leases_its_own_tables() {
    let path = KernelPath::detect().unwrap();
    let text =
        b"Far from the madding crowd's ignoble strife, <b>their</b> sober wishes\n".repeat(3000);
    let codec = LmCodec::new(test_model(), path, 4, 4).unwrap();
    let check = |preset: Preset, chunks: &[&[u8]], budget: &cm::budget::Budget| {
        let payloads = encode_chunks(&codec, chunks, preset);
        let inputs: Vec<(&[u8], usize)> = payloads
            .iter()
            .zip(chunks)
            .map(|(p, c)| (p.as_slice(), c.len()))
            .collect();
        let got = decode_chunks_in(&codec, &inputs, budget);
        for (g, c) in got.iter().zip(chunks) {
            assert!(g.as_ref().is_ok_and(|g| g == c), "preset {}", preset.id);
        }
    };
    let two = cm::WITH_LM_TWO_STREAMS;
    let mem = |preset: Preset, c: &[u8]| Predictor::memory(preset, c.len(), true);

    // one long chunk and three short ones, a lane each on four threads
    let chunks: Vec<&[u8]> = vec![&text, &text[..600], &text[9..700], &text[20..800]];
    let own: usize = chunks.iter().map(|c| mem(two, c)).sum();
    // (what a lease for all four lanes took)
    assert!(
        own < 4 * mem(two, &text),
        "the short chunks' tables are smaller"
    );
    let budget = cm::budget::Budget::new(1 << 30);
    check(two, &chunks, &budget);
    assert!(budget.peak() >= mem(two, &text));
    assert!(budget.peak() <= own, "{} > {own}", budget.peak());

    // room for two decoders, four threads
    let chunks: Vec<&[u8]> = (0..6).map(|k| &text[k * 100..k * 100 + 3000]).collect();
    for preset in [two, cm::WITH_LM_CLASSES] {
        let unit = mem(preset, chunks[0]);
        let budget = cm::budget::Budget::new(2 * unit);
        check(preset, &chunks, &budget);
        assert!(budget.peak() >= unit);
        assert!(
            budget.peak() <= 2 * unit,
            "{} > {}",
            budget.peak(),
            2 * unit
        );
    }
}

/// Two chunks of unequal length on two threads: the short one's lane runs
/// dry and lends its thread to the long one as its model helper; the bytes
/// are those of one thread, with one stream and two.
#[test]
fn a_dry_lane_helps_the_chunk_still_decoding() {
    let path = KernelPath::detect().unwrap();
    let text = b"Whether I shall turn out to be the hero of my own life, or whether that station\n"
        .repeat(3000);
    let chunks: Vec<&[u8]> = vec![&text, &text[5..900]];
    let one = LmCodec::new(test_model(), path, 1, 4).unwrap();
    let two = LmCodec::new(test_model(), path, 2, 4).unwrap();
    for preset in [cm::WITH_LM_TWO_STREAMS, cm::WITH_LM_CLASSES] {
        let payloads = encode_chunks(&one, &chunks, preset);
        let inputs: Vec<(&[u8], usize)> = payloads
            .iter()
            .zip(&chunks)
            .map(|(p, c)| (p.as_slice(), c.len()))
            .collect();
        for (r, c) in decode_chunks(&two, &inputs).into_iter().zip(&chunks) {
            assert!(r.is_ok_and(|r| r == *c), "preset {}", preset.id);
        }
    }
}

/// Takes a lent thread, waiting up to 10 s for one.
fn take_within(lender: &Lender) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lender.take() {
        assert!(std::time::Instant::now() < deadline, "no thread was lent");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A lane with no chunk left lends its thread while another lane decodes:
/// it stays while its loan is in use and while a lane decodes, and ends
/// with the last lane, or when that lane unwinds; where the lender does
/// not lend, it leaves at once.
#[test]
fn a_lane_lends_its_thread_until_the_group_ends() {
    use std::sync::mpsc;
    use std::time::Duration;
    let short = Duration::from_millis(100);
    let lender = Lender::new(true, 0);
    assert!(!lender.take(), "nothing to lend yet");
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|sc| {
        let decoding = lender.enter();
        sc.spawn(|| {
            lender.enter().leave();
            tx.send(()).unwrap();
        });
        take_within(&lender);
        assert!(rx.recv_timeout(short).is_err(), "left while lent");
        lender.give();
        assert!(rx.recv_timeout(short).is_err(), "left while a lane decodes");
        decoding.leave();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the dry lane ended with the group");
    });
    assert_eq!(lender.free(), 0, "every loan was taken back");
    let lender = Lender::new(true, 0);
    std::thread::scope(|sc| {
        let doomed = lender.enter();
        sc.spawn(|| {
            lender.enter().leave();
            tx.send(()).unwrap();
        });
        take_within(&lender);
        lender.give();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _lane = doomed;
            panic!("a decoder failed");
        }));
        assert!(r.is_err());
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the dry lane ended when the other unwound");
    });
    // a lender that does not lend: a dry lane leaves at once
    let lender = Lender::new(false, 0);
    let decoding = lender.enter();
    lender.enter().leave();
    assert!(!lender.take());
    decoding.leave();
}
