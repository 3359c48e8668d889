//! The layer below all others: services of the process that every layer
//! may use and that know nothing of the archive format.

pub mod cleanup;
#[allow(unsafe_code)]
pub(crate) mod mem;
pub mod names;
pub mod pipeline;
pub mod progress;
