//! The model on the CPU: int8 kernels with run-time path selection
//! (`kernels`), the batched step (`engine`), and the two-thread split of
//! one chain's step (`pair`, over the hand-off of `handoff`).

pub(crate) mod engine;
pub(crate) mod handoff;
pub mod kernels;
pub(crate) mod pair;
mod sync;
