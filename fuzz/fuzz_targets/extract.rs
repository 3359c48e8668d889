//! Arbitrary bytes extracted with `DestWriter` into a fresh directory inside
//! another fresh directory (sometimes holding planted links out of it):
//! nothing is written beside or through them, no symbolic link inside
//! resolves outside (checked on the real file system), no special file,
//! unmasked mode or outside hard link appears, no temporary file is left.
//! The body is `lza_fuzz::harness::extract_checked`.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    lza_fuzz::mutate(data, size, max_size, seed)
});

fuzz_target!(|data: &[u8]| lza_fuzz::harness::extract_checked(data));
