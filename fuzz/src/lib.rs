//! Helpers shared by the lza fuzz targets.
//!
//! - [`fixup`] repairs every checksum of an archive-shaped byte string (and
//!   the end record's totals), so that mutated inputs get past the CRC and
//!   xxh3 checks and reach the logic behind them. The byte-oriented targets
//!   install it as a custom mutator ([`mutate`]); most mutants are repaired,
//!   some are left raw so the checksum paths stay covered. A saved crash is
//!   therefore a plain archive: `lza verify -f crash-...` replays it.
//! - [`harness`] holds the decode and extract targets' bodies and oracles
//!   (std, lza and tempfile only, so that `tests/fuzz_regressions.rs`
//!   includes the same file and replays inputs the same way).

pub mod harness;

use lza::format::{BLOCK_FIXED_LEN, END_LEN, ENTRY_FIXED_LEN, FRAME_HEADER_LEN, HEADER_LEN};

/// Largest chunk whose zstd payload [`fixup`] decodes to repair `raw_xxh3`.
const FIXUP_DECODE_LIMIT: usize = 1 << 20;

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Recompute, in place, every checksum the format carries: the header CRC,
/// each entry record's CRC, each solid block record's two CRCs, each frame's `raw_xxh3` (stored chunks, and zstd
/// chunks that decode within a bound) and CRC, and the end record's counts,
/// `stream_len`, `stream_xxh3` and CRC. Walks the records leniently and stops
/// at the first thing it cannot frame; never changes a length or a tag.
pub fn fixup(buf: &mut [u8]) {
    if buf.len() < HEADER_LEN {
        return;
    }
    let crc = crc32fast::hash(&buf[..36]);
    put_u32(buf, 36, crc);
    let (mut entries, mut chunks, mut raw_bytes) = (0u64, 0u64, 0u64);
    let mut pos = HEADER_LEN;
    while pos < buf.len() {
        match buf[pos] {
            0x01 => {
                if pos + ENTRY_FIXED_LEN > buf.len() {
                    return;
                }
                let body = ENTRY_FIXED_LEN + u16_at(buf, pos + 24) + u16_at(buf, pos + 26);
                if pos + body + 4 > buf.len() {
                    return;
                }
                let crc = crc32fast::hash(&buf[pos..pos + body]);
                put_u32(buf, pos + body, crc);
                entries += 1;
                pos += body + 4;
            }
            0x03 => {
                if pos + BLOCK_FIXED_LEN > buf.len() {
                    return;
                }
                let crc = crc32fast::hash(&buf[pos..pos + 36]);
                put_u32(buf, pos + 36, crc);
                let table = pos + BLOCK_FIXED_LEN;
                let stored = u32_at(buf, pos + 16) as usize;
                if stored > buf.len() - table || buf.len() - table - stored < 4 {
                    return;
                }
                let crc = crc32fast::hash(&buf[table..table + stored]);
                put_u32(buf, table + stored, crc);
                entries += u32_at(buf, pos + 4) as u64;
                pos = table + stored + 4;
            }
            0x02 => {
                if pos + FRAME_HEADER_LEN > buf.len() {
                    return;
                }
                let raw_len = u32_at(buf, pos + 4);
                let stored_len = u32_at(buf, pos + 8) as usize;
                let start = pos + FRAME_HEADER_LEN;
                if stored_len > buf.len() - start {
                    return;
                }
                let payload = &buf[start..start + stored_len];
                let raw: Option<Vec<u8>> = match buf[pos + 1] {
                    0 => Some(payload.to_vec()),
                    1 if (raw_len as usize) <= FIXUP_DECODE_LIMIT => {
                        zstd::bulk::decompress(payload, raw_len as usize).ok()
                    }
                    _ => None,
                };
                if let Some(raw) = raw {
                    put_u64(buf, pos + 12, xxhash_rust::xxh3::xxh3_64(&raw));
                }
                let crc = crc32fast::hash(&buf[pos..pos + 20]);
                put_u32(buf, pos + 20, crc);
                chunks += 1;
                raw_bytes += raw_len as u64;
                pos = start + stored_len;
            }
            0xFF => {
                if pos + END_LEN > buf.len() {
                    return;
                }
                let stream_xxh3 = xxhash_rust::xxh3::xxh3_64(&buf[40.min(pos)..pos]);
                let end = &mut buf[pos..pos + END_LEN];
                put_u64(end, 1, entries);
                put_u64(end, 9, chunks);
                put_u64(end, 17, raw_bytes);
                put_u64(end, 25, pos as u64);
                put_u64(end, 33, stream_xxh3);
                let crc = crc32fast::hash(&end[..41]);
                put_u32(end, 41, crc);
                return;
            }
            _ => return,
        }
    }
}

/// The custom mutator of the byte-oriented targets: libFuzzer's own
/// mutations (dictionary and comparison tracing included), then [`fixup`]
/// for 7 mutants in 8.
pub fn mutate(data: &mut [u8], size: usize, max_size: usize, seed: u32) -> usize {
    let size = libfuzzer_sys::fuzzer_mutate(data, size, max_size);
    if seed % 8 != 0 {
        fixup(&mut data[..size]);
    }
    size
}
