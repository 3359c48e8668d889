//! Arbitrary bytes as an archive: `list_archive` and `read_archive` into
//! `Discard` (and into a checking sink when it accepts) never panic, stay
//! within the memory limits (-rss_limit_mb=2048 -malloc_limit_mb=512) and
//! agree with each other. The body is `lza_fuzz::harness::decode_checked`.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    lza_fuzz::mutate(data, size, max_size, seed)
});

fuzz_target!(|data: &[u8]| lza_fuzz::harness::decode_checked(data));
