//! Helpers for the integration tests, examples and fuzz targets (the
//! `testutil` feature): model files made in memory, the language model's
//! range coder and kernels on their own, and the byte-by-byte reference
//! encoder of context mixing with the model. Not part of the library's API.

pub use crate::codecs::cmlm::encode_chunks_stepwise;
pub use crate::codecs::lm::kernels::{MAX_COLS, PackedI8, matmul_i8};
pub use crate::codecs::lm::model::{TensorData, synthetic_model_bytes, write_safetensors};
pub use crate::codecs::lm::rangecoder::{
    RangeDecoder, RangeEncoder, TOTAL, cumulative, freqs_from_logits,
};
