//! Where language models come from: the default model embedded in the
//! binary, files given with `--model`, and model directories
//! (`$LZA_MODEL_PATH`, then `$XDG_DATA_HOME/lza/models` or
//! `~/.local/share/lza/models`). A model's identity is the xxh3-128 of its
//! file's bytes, which archives record in their header.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codecs::lm::{Device, KernelPath, LmCodec, Model};
use crate::codecs::{DecodeError, TextCoder};

use crate::format::ModelHash;
use crate::format::error::{Error, Result};

/// The default model, compiled into the binary.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../models/default.safetensors");

/// A model file's bytes and where they came from.
#[derive(Clone)]
pub struct ModelFile {
    /// The file's bytes.
    pub bytes: Cow<'static, [u8]>,
    /// Where it came from, for messages.
    pub origin: String,
    /// xxh3-128 of `bytes`.
    pub hash: ModelHash,
}

impl ModelFile {
    /// The embedded default model.
    pub fn embedded() -> ModelFile {
        ModelFile {
            bytes: Cow::Borrowed(EMBEDDED_MODEL),
            origin: "embedded default".into(),
            hash: ModelHash::of_bytes(EMBEDDED_MODEL),
        }
    }

    /// A model file on disk.
    pub fn read(path: &Path) -> Result<ModelFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let hash = ModelHash::of_bytes(&bytes);
        Ok(ModelFile {
            bytes: Cow::Owned(bytes),
            origin: path.display().to_string(),
            hash,
        })
    }
}

/// Directories searched for models, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LZA_MODEL_PATH")
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(data).join("lza/models"));
    } else if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(home).join(".local/share/lza/models"));
    }
    dirs
}

/// Find the model whose hash is `hash`: among `given` files first, then the
/// embedded model, then every `*.safetensors` file in [`model_dirs`]. A file
/// given explicitly that does not match is an error naming both hashes.
pub fn find(hash: ModelHash, given: Option<&Path>) -> Result<ModelFile> {
    if let Some(path) = given {
        let m = ModelFile::read(path)?;
        if m.hash != hash {
            return Err(Error::BadModel {
                origin: m.origin,
                reason: format!(
                    "its hash is {}, but the archive was made with model {hash}",
                    m.hash
                ),
            });
        }
        return Ok(m);
    }
    if ModelHash::of_bytes(EMBEDDED_MODEL) == hash {
        return Ok(ModelFile::embedded());
    }
    for dir in model_dirs() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "safetensors")
                && let Ok(m) = ModelFile::read(&p)
                && m.hash == hash
            {
                return Ok(m);
            }
        }
    }
    Err(Error::UnknownModel { hash })
}

/// Default number of chunks coded side by side: on the 2-core development
/// machine, 1 → 146 KB/s, 16 → 362, 64 → 384, 256 → 401 KB/s compressing
/// the first 2 MB of silesia/dickens (README, "Measured").
pub const DEFAULT_BATCH: usize = 256;

impl TextCoder for LmCodec {
    fn model_hash(&self) -> ModelHash {
        self.model().hash()
    }

    fn batch(&self) -> usize {
        LmCodec::batch(self)
    }

    fn encode_chunks(&self, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        LmCodec::encode_chunks(self, chunks)
    }

    fn decode_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, DecodeError>> {
        LmCodec::decode_chunks(self, chunks)
            .into_iter()
            .map(|r| r.map_err(decode_error))
            .collect()
    }

    fn encode_cm_chunks(
        &self,
        chunks: &[&[u8]],
        preset: crate::codecs::cm::Preset,
    ) -> Vec<Vec<u8>> {
        crate::codecs::cmlm::encode_chunks(self, chunks, preset)
    }

    fn pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        LmCodec::pool(self)
    }

    fn decode_cm_chunks(&self, chunks: &[(&[u8], usize)]) -> Vec<Result<Vec<u8>, DecodeError>> {
        crate::codecs::cmlm::decode_chunks(self, chunks)
            .into_iter()
            .map(|r| {
                r.map_err(|e| match e.is_internal() {
                    true => DecodeError::Internal(e.to_string()),
                    false => DecodeError::Corrupt(e.to_string()),
                })
            })
            .collect()
    }
}

fn decode_error(e: crate::codecs::lm::LmError) -> DecodeError {
    match e.is_internal() {
        true => DecodeError::Internal(e.to_string()),
        false => DecodeError::Corrupt(e.to_string()),
    }
}

/// Load `file` and build a coder for it on the kernel path `LZA_KERNEL`
/// selects (or the best available), with `threads` threads and `batch`
/// chunks side by side.
pub fn open_coder(file: &ModelFile, threads: usize, batch: usize) -> Result<Arc<dyn TextCoder>> {
    open_coder_on(file, Device::Cpu, threads, batch)
}

/// [`open_coder`] with the model on `device` (the payloads are the same
/// on every device).
pub fn open_coder_on(
    file: &ModelFile,
    device: Device,
    threads: usize,
    batch: usize,
) -> Result<Arc<dyn TextCoder>> {
    let bad = |e: crate::codecs::lm::LmError| Error::BadModel {
        origin: file.origin.clone(),
        reason: e.to_string(),
    };
    let model = Model::from_bytes(&file.bytes).map_err(bad)?;
    let path = KernelPath::detect().map_err(|e| Error::BadModel {
        origin: "LZA_KERNEL".into(),
        reason: e.to_string(),
    })?;
    let codec = LmCodec::on_device(Arc::new(model), path, device, threads.max(1), batch.max(1))
        .map_err(|e| match e {
            crate::codecs::lm::LmError::Device(msg) => Error::Device(msg),
            e => bad(e),
        })?;
    Ok(Arc::new(codec))
}
