//! The model file (format-spec 7.1): loading, validation, identity.

use super::LmError;
use super::cpu::kernels::PackedI8;
use std::collections::BTreeMap;

/// A model's identity (format-spec 7.1): one type shared with the archive
/// header.
pub use crate::format::ModelHash;

/// A quantized matrix `(W, s, b)` with `m[j] = s[j] / 127.0`.
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub(crate) w: PackedI8,
    pub(crate) m: Vec<f32>,
    pub(crate) b: Vec<f32>,
}

impl QMatrix {
    fn new(rows: usize, cols: usize, w: &[i8], s: &[f32], b: Vec<f32>) -> QMatrix {
        QMatrix {
            w: PackedI8::new(rows, cols, w),
            m: s.iter().map(|&s| s / 127.0).collect(),
            b,
        }
    }
}

/// Weights of one GRU layer; `w_ih` is `None` for layer 0 (it uses `embed`).
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub(crate) w_hh: QMatrix,
    pub(crate) w_ih: Option<QMatrix>,
}

/// The architectures a model file may name in `lza.arch`; the name picks
/// the parser of the file and the computation of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// `gru-v1`: a byte-level GRU (format-spec 7.1-7.4).
    GruV1,
}

impl Architecture {
    /// Every architecture.
    pub const ALL: [Architecture; 1] = [Architecture::GruV1];

    /// The name in `lza.arch`.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::GruV1 => "gru-v1",
        }
    }
}

/// Largest hidden width `lza.dim` (format-spec 7.1).
pub(crate) const MAX_DIM: usize = 1024;

/// A validated model, weights in the kernels' layout.
#[derive(Debug, Clone)]
pub struct Model {
    arch: Architecture,
    dim: usize,
    layers: Vec<LayerWeights>,
    embed: Vec<f32>,
    head: QMatrix,
    hash: ModelHash,
    file_len: usize,
    metadata: BTreeMap<String, String>,
}

/// Largest magnitude allowed for any F32 value of a model. With it every
/// intermediate of a step stays finite (|logit| < 2e12), so no NaN or
/// infinity ever reaches the element-wise functions.
pub const PARAM_LIMIT: f32 = 1.0e6;

fn bad(msg: impl Into<String>) -> LmError {
    LmError::Model(msg.into())
}

impl Model {
    /// Reads and validates a model file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Model, LmError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| LmError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        Model::from_bytes(&bytes)
    }

    /// Validates a model file's bytes (format-spec 7.1) and packs the weights.
    /// Every problem is an [`LmError::Model`] naming the key or tensor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, LmError> {
        let hash = ModelHash::of_bytes(bytes);
        let st = candle_core::safetensors::SliceSafetensors::new(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let metadata = read_metadata(bytes)?;
        let get = |k: &str| {
            metadata
                .get(k)
                .ok_or_else(|| bad(format!("missing metadata key {k:?}")))
        };
        let arch = get("lza.arch")?;
        match Architecture::ALL.into_iter().find(|a| a.name() == arch) {
            Some(Architecture::GruV1) => Model::gru_v1(bytes, &st, metadata, hash),
            None => Err(bad(format!(
                "unsupported architecture lza.arch = {arch:?} (known: {})",
                Architecture::ALL
                    .map(|a| format!("{:?}", a.name()))
                    .join(", ")
            ))),
        }
    }

    /// The weights of a `gru-v1` file (format-spec 7.1), checked and packed.
    fn gru_v1(
        bytes: &[u8],
        st: &candle_core::safetensors::SliceSafetensors<'_>,
        metadata: BTreeMap<String, String>,
        hash: ModelHash,
    ) -> Result<Model, LmError> {
        let get = |k: &str| {
            metadata
                .get(k)
                .ok_or_else(|| bad(format!("missing metadata key {k:?}")))
        };
        let dim =
            parse_uint(get("lza.dim")?).ok_or_else(|| bad("lza.dim is not a decimal integer"))?;
        if !(32..=MAX_DIM).contains(&dim) || dim % 32 != 0 {
            return Err(bad(format!(
                "lza.dim = {dim}: must be a multiple of 32 in 32..={MAX_DIM}"
            )));
        }
        let nl = parse_uint(get("lza.layers")?)
            .ok_or_else(|| bad("lza.layers is not a decimal integer"))?;
        if !(1..=8).contains(&nl) {
            return Err(bad(format!("lza.layers = {nl}: must be in 1..=8")));
        }
        let vocab = get("lza.vocab")?;
        if vocab != "256" {
            return Err(bad(format!("lza.vocab = {vocab:?}: must be \"256\"")));
        }
        for k in metadata.keys() {
            if k.starts_with("lza.")
                && !["lza.arch", "lza.dim", "lza.layers", "lza.vocab"].contains(&k.as_str())
            {
                return Err(bad(format!("unknown metadata key {k:?}")));
            }
        }

        let d3 = 3 * dim;
        let mut expected: Vec<(String, &str, Vec<usize>)> =
            vec![("embed".into(), "F32", vec![257, d3])];
        for l in 0..nl {
            expected.push((format!("l{l}.w_hh"), "I8", vec![d3, dim]));
            expected.push((format!("l{l}.s_hh"), "F32", vec![d3]));
            expected.push((format!("l{l}.b_hh"), "F32", vec![d3]));
            if l > 0 {
                expected.push((format!("l{l}.w_ih"), "I8", vec![d3, dim]));
                expected.push((format!("l{l}.s_ih"), "F32", vec![d3]));
                expected.push((format!("l{l}.b_ih"), "F32", vec![d3]));
            }
        }
        expected.push(("head.w".into(), "I8", vec![256, nl * dim]));
        expected.push(("head.s".into(), "F32", vec![256]));
        expected.push(("head.b".into(), "F32", vec![256]));

        let present: BTreeMap<String, _> = st.tensors().into_iter().collect();
        for name in present.keys() {
            if !expected.iter().any(|(n, _, _)| n == name) {
                return Err(bad(format!(
                    "unexpected tensor {name:?} (lza.layers = {nl})"
                )));
            }
        }
        for (name, dtype, shape) in &expected {
            let view = present
                .get(name)
                .ok_or_else(|| bad(format!("missing tensor {name:?}")))?;
            let dt = view.dtype().to_string();
            if dt != *dtype {
                return Err(bad(format!(
                    "tensor {name:?} has dtype {dt}, expected {dtype}"
                )));
            }
            if view.shape() != shape.as_slice() {
                return Err(bad(format!(
                    "tensor {name:?} has shape {:?}, expected {shape:?}",
                    view.shape()
                )));
            }
        }

        let f32s = |name: &str| -> Result<Vec<f32>, LmError> {
            let t = st
                .load(name, &candle_core::Device::Cpu)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
            if let Some(i) = t
                .iter()
                .position(|v| !v.is_finite() || v.abs() > PARAM_LIMIT)
            {
                return Err(bad(format!(
                    "tensor {name:?} element {i} is {}: values must be finite with magnitude <= {PARAM_LIMIT:e}",
                    t[i]
                )));
            }
            Ok(t)
        };
        let i8s = |name: &str| -> Result<Vec<i8>, LmError> {
            let data = present[name].data();
            if let Some(i) = data.iter().position(|&b| b == 0x80) {
                return Err(bad(format!(
                    "tensor {name:?} element {i} is -128: weights must be in -127..=127"
                )));
            }
            Ok(data.iter().map(|&b| b as i8).collect())
        };
        let qmat =
            |w: &str, s: &str, b: &str, rows: usize, cols: usize| -> Result<QMatrix, LmError> {
                Ok(QMatrix::new(rows, cols, &i8s(w)?, &f32s(s)?, f32s(b)?))
            };

        let embed = f32s("embed")?;
        let mut layers = Vec::with_capacity(nl);
        for l in 0..nl {
            let w_hh = qmat(
                &format!("l{l}.w_hh"),
                &format!("l{l}.s_hh"),
                &format!("l{l}.b_hh"),
                d3,
                dim,
            )?;
            let w_ih = if l > 0 {
                Some(qmat(
                    &format!("l{l}.w_ih"),
                    &format!("l{l}.s_ih"),
                    &format!("l{l}.b_ih"),
                    d3,
                    dim,
                )?)
            } else {
                None
            };
            layers.push(LayerWeights { w_hh, w_ih });
        }
        let head = qmat("head.w", "head.s", "head.b", 256, nl * dim)?;
        Ok(Model {
            arch: Architecture::GruV1,
            dim,
            layers,
            embed,
            head,
            hash,
            file_len: bytes.len(),
            metadata,
        })
    }

    /// The architecture the file names.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// Hidden width `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of layers `L`.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// `xxh3_128` of the file.
    pub fn hash(&self) -> ModelHash {
        self.hash
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> usize {
        self.file_len
    }

    /// The safetensors `__metadata__` map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Number of weights (int8 and f32 together).
    pub fn param_count(&self) -> usize {
        let d = self.dim;
        let nl = self.layers.len();
        257 * 3 * d + nl * (3 * d * d + 6 * d) + (nl - 1) * (3 * d * d + 6 * d) + 256 * (nl * d + 2)
    }

    /// Multiply-accumulates of the int8 matrices per symbol.
    pub fn macs_per_symbol(&self) -> usize {
        let d = self.dim;
        let nl = self.layers.len();
        (2 * nl - 1) * 3 * d * d + 256 * nl * d
    }

    pub(crate) fn embed(&self) -> &[f32] {
        &self.embed
    }

    pub(crate) fn layer_weights(&self) -> &[LayerWeights] {
        &self.layers
    }

    pub(crate) fn head(&self) -> &QMatrix {
        &self.head
    }
}

/// Strict decimal: ASCII digits only, no sign, no leading zero, at most 9 digits.
fn parse_uint(s: &str) -> Option<usize> {
    if s.is_empty()
        || s.len() > 9
        || !s.bytes().all(|c| c.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------
// safetensors header metadata (the container itself is checked by candle-core's
// safetensors reader first; this only extracts `__metadata__`).

fn read_metadata(bytes: &[u8]) -> Result<BTreeMap<String, String>, LmError> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| bad("file too short"))?;
    let header = usize::try_from(n)
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
        .ok_or_else(|| bad("safetensors header length beyond the end of the file"))?;
    let mut p = Json { s: header, i: 0 };
    let top = p
        .value(0)
        .map_err(|e| bad(format!("safetensors header: {e}")))?;
    let JsonValue::Obj(fields) = top else {
        return Err(bad("safetensors header is not a JSON object"));
    };
    let mut out = BTreeMap::new();
    for (k, v) in fields {
        if k != "__metadata__" {
            continue;
        }
        let JsonValue::Obj(m) = v else {
            return Err(bad("__metadata__ is not an object"));
        };
        for (mk, mv) in m {
            let JsonValue::Str(mv) = mv else {
                return Err(bad(format!("metadata value of {mk:?} is not a string")));
            };
            if out.insert(mk.clone(), mv).is_some() {
                return Err(bad(format!("duplicate metadata key {mk:?}")));
            }
        }
    }
    Ok(out)
}

enum JsonValue {
    Str(String),
    Obj(Vec<(String, JsonValue)>),
    Other,
}

/// A small, strict JSON reader (RFC 8259) sufficient for safetensors headers.
struct Json<'a> {
    s: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue, String> {
        if depth > 64 {
            return Err("nested too deeply".into());
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(JsonValue::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value(depth + 1)?;
                    fields.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(JsonValue::Obj(fields));
                        }
                        _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(JsonValue::Other);
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(JsonValue::Other);
                        }
                        _ => return Err(format!("expected ',' or ']' at byte {}", self.i)),
                    }
                }
            }
            Some(b'"') => Ok(JsonValue::Str(self.string()?)),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'n') => self.word("null"),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.s.get(self.i)
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("x");
                t.parse::<f64>()
                    .map(|_| JsonValue::Other)
                    .map_err(|_| format!("bad number at byte {start}"))
            }
            _ => Err(format!("unexpected input at byte {}", self.i)),
        }
    }

    fn word(&mut self, w: &str) -> Result<JsonValue, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(JsonValue::Other)
        } else {
            Err(format!("unexpected input at byte {}", self.i))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or("truncated \\u escape")?;
        let h = std::str::from_utf8(h).map_err(|_| "bad \\u escape")?;
        let v = u32::from_str_radix(h, 16).map_err(|_| "bad \\u escape")?;
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at byte {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err("unpaired surrogate".into());
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err("unpaired surrogate".into());
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or("invalid \\u escape")?
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i - 1)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1F => {
                    return Err(format!(
                        "control character in string at byte {}",
                        self.i - 1
                    ));
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }
}

// ---------------------------------------------------------------------------
// Writing model files (tests, benchmarks, tools).

/// One tensor for [`write_safetensors`]: name, dtype (`"F32"` or `"I8"`),
/// shape, little-endian data.
#[cfg(any(test, feature = "testutil"))]
pub struct TensorData {
    /// Tensor name.
    pub name: String,
    /// `"F32"` or `"I8"` (any safetensors dtype name is written as given).
    pub dtype: &'static str,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

/// Serializes a safetensors file: tensors sorted by name, data in that order,
/// header padded with spaces to a multiple of 8.
#[cfg(any(test, feature = "testutil"))]
pub fn write_safetensors(metadata: &[(&str, &str)], tensors: &[TensorData]) -> Vec<u8> {
    fn esc(s: &str) -> String {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        o
    }
    let mut ts: Vec<&TensorData> = tensors.iter().collect();
    ts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = String::from("{");
    if !metadata.is_empty() {
        h.push_str("\"__metadata__\":{");
        let mut m: Vec<_> = metadata.to_vec();
        m.sort();
        let parts: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}:{}", esc(k), esc(v)))
            .collect();
        h.push_str(&parts.join(","));
        h.push('}');
    }
    let mut off = 0usize;
    for t in &ts {
        if h.len() > 1 {
            h.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(|s| s.to_string()).collect();
        h.push_str(&format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            esc(&t.name),
            t.dtype,
            shape.join(","),
            off,
            off + t.data.len()
        ));
        off += t.data.len();
    }
    h.push('}');
    while h.len() % 8 != 0 {
        h.push(' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + off);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    for t in &ts {
        out.extend_from_slice(&t.data);
    }
    out
}

/// A random but non-degenerate `gru-v1` model file, reproducible from `seed`
/// (pre-activations and logits of order 1; for tests and speed measurements).
#[cfg(any(test, feature = "testutil"))]
pub fn synthetic_model_bytes(dim: usize, layers: usize, seed: u64) -> Vec<u8> {
    let mut st = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        st ^= st >> 12;
        st ^= st << 25;
        st ^= st >> 27;
        st.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut unif = move || (next() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
    let d3 = 3 * dim;
    let f32t = |name: String, shape: Vec<usize>, v: Vec<f32>| TensorData {
        name,
        dtype: "F32",
        shape,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let i8t = |name: String, shape: Vec<usize>, v: Vec<i8>| TensorData {
        name,
        dtype: "I8",
        shape,
        data: v.iter().map(|&x| x as u8).collect(),
    };
    let mut ts = Vec::new();
    let embed: Vec<f32> = (0..257 * d3).map(|_| (unif() - 0.5) * 3.0).collect();
    ts.push(f32t("embed".into(), vec![257, d3], embed));
    // scale so that (acc * s / 127) has a standard deviation of about `target`
    let mut qmat = |w: String,
                    s: String,
                    b: String,
                    rows: usize,
                    cols: usize,
                    target: f32,
                    ts: &mut Vec<TensorData>| {
        let wv: Vec<i8> = (0..rows * cols)
            .map(|_| ((unif() * 255.0) as i32 - 127).clamp(-127, 127) as i8)
            .collect();
        let base = target * 127.0 / (73.0 * 50.0 * (cols as f32).sqrt());
        let sv: Vec<f32> = (0..rows).map(|_| base * (0.5 + unif())).collect();
        let bv: Vec<f32> = (0..rows).map(|_| unif() - 0.5).collect();
        ts.push(i8t(w, vec![rows, cols], wv));
        ts.push(f32t(s, vec![rows], sv));
        ts.push(f32t(b, vec![rows], bv));
    };
    for l in 0..layers {
        qmat(
            format!("l{l}.w_hh"),
            format!("l{l}.s_hh"),
            format!("l{l}.b_hh"),
            d3,
            dim,
            1.5,
            &mut ts,
        );
        if l > 0 {
            qmat(
                format!("l{l}.w_ih"),
                format!("l{l}.s_ih"),
                format!("l{l}.b_ih"),
                d3,
                dim,
                1.5,
                &mut ts,
            );
        }
    }
    qmat(
        "head.w".into(),
        "head.s".into(),
        "head.b".into(),
        256,
        layers * dim,
        3.0,
        &mut ts,
    );
    let (d, l) = (dim.to_string(), layers.to_string());
    write_safetensors(
        &[
            ("lza.arch", "gru-v1"),
            ("lza.dim", &d),
            ("lza.layers", &l),
            ("lza.vocab", "256"),
        ],
        &ts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const TEST_MODEL: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/models/test-gru.safetensors"
    );

    #[test]
    fn loads_test_model() {
        let bytes = std::fs::read(TEST_MODEL).expect("run train/make_test_model.py");
        let m = Model::from_bytes(&bytes).unwrap();
        assert_eq!((m.dim(), m.layers()), (32, 2));
        assert_eq!(m.hash(), ModelHash::of_bytes(&bytes));
        assert_eq!(m.hash().to_string().len(), 32);
        assert_eq!(ModelHash::from_hex(&m.hash().to_string()), Some(m.hash()));
        assert_eq!(m.file_len(), bytes.len());
    }

    #[test]
    fn hash_byte_order() {
        let h = xxhash_rust::xxh3::xxh3_128(b"abc");
        let mh = ModelHash::of_bytes(b"abc");
        assert_eq!(u64::from_le_bytes(mh.0[..8].try_into().unwrap()), h as u64);
        assert_eq!(
            u64::from_le_bytes(mh.0[8..].try_into().unwrap()),
            (h >> 64) as u64
        );
        assert_eq!(format!("{}", ModelHash([0xAB; 16])), "ab".repeat(16));
        assert!(ModelHash::default().is_none());
    }

    #[test]
    fn synthetic_models_load() {
        for (d, l) in [(32, 1), (64, 3), (96, 2)] {
            let b = synthetic_model_bytes(d, l, 5);
            let m = Model::from_bytes(&b).unwrap();
            assert_eq!((m.dim(), m.layers()), (d, l));
            assert_eq!(b, synthetic_model_bytes(d, l, 5));
        }
    }

    /// Rebuilds the synthetic model with one change and expects an error
    /// mentioning `needle`.
    fn expect_err(meta: &[(&str, &str)], edit: impl Fn(&mut Vec<TensorData>), needle: &str) {
        let base = synthetic_model_bytes(32, 2, 1);
        let st = candle_core::safetensors::SliceSafetensors::new(&base).unwrap();
        let mut ts: Vec<TensorData> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| TensorData {
                name: n,
                dtype: if v.dtype().to_string() == "I8" {
                    "I8"
                } else {
                    "F32"
                },
                shape: v.shape().to_vec(),
                data: v.data().to_vec(),
            })
            .collect();
        edit(&mut ts);
        let bytes = write_safetensors(meta, &ts);
        let err = Model::from_bytes(&bytes).expect_err(needle).to_string();
        assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
    }

    const META: [(&str, &str); 4] = [
        ("lza.arch", "gru-v1"),
        ("lza.dim", "32"),
        ("lza.layers", "2"),
        ("lza.vocab", "256"),
    ];

    fn with(k: &str, v: &str) -> Vec<(String, String)> {
        META.iter()
            .map(|&(a, b)| {
                (
                    a.to_string(),
                    if a == k { v.to_string() } else { b.to_string() },
                )
            })
            .collect()
    }

    fn run_meta(m: &[(String, String)], needle: &str) {
        let mm: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        expect_err(&mm, |_| {}, needle);
    }

    #[test]
    fn validation_errors() {
        assert!(
            Model::from_bytes(b"")
                .unwrap_err()
                .to_string()
                .contains("safetensors")
        );
        assert!(
            Model::from_bytes(&[0xFF; 100])
                .unwrap_err()
                .to_string()
                .contains("safetensors")
        );
        run_meta(&with("lza.arch", "gru-v2"), "lza.arch");
        run_meta(&with("lza.dim", "48"), "lza.dim");
        run_meta(&with("lza.dim", "032"), "lza.dim");
        run_meta(&with("lza.dim", "2048"), "lza.dim");
        run_meta(&with("lza.layers", "0"), "lza.layers");
        run_meta(&with("lza.layers", "9"), "lza.layers");
        run_meta(&with("lza.layers", "3"), "missing tensor \"l2.w_hh\"");
        run_meta(&with("lza.layers", "1"), "unexpected tensor");
        run_meta(&with("lza.vocab", "512"), "lza.vocab");
        let mut m = with("lza.vocab", "256");
        m.retain(|(k, _)| k != "lza.dim");
        run_meta(&m, "missing metadata key \"lza.dim\"");
        let mut m = with("lza.vocab", "256");
        m.push(("lza.extra".into(), "1".into()));
        run_meta(&m, "unknown metadata key");
        expect_err(&[], |_| {}, "missing metadata key");
        expect_err(
            &META,
            |ts| ts.retain(|t| t.name != "head.b"),
            "missing tensor \"head.b\"",
        );
        expect_err(
            &META,
            |ts| {
                let t = ts.iter_mut().find(|t| t.name == "l1.w_hh").unwrap();
                t.data[17] = 0x80;
            },
            "-128",
        );
        expect_err(
            &META,
            |ts| {
                let t = ts.iter_mut().find(|t| t.name == "l0.b_hh").unwrap();
                t.data[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
            },
            "l0.b_hh",
        );
        expect_err(
            &META,
            |ts| {
                let t = ts.iter_mut().find(|t| t.name == "head.s").unwrap();
                t.data[0..4].copy_from_slice(&2.0e6f32.to_le_bytes());
            },
            "magnitude",
        );
        expect_err(
            &META,
            |ts| {
                let t = ts.iter_mut().find(|t| t.name == "embed").unwrap();
                t.shape = vec![96, 257];
            },
            "shape",
        );
        expect_err(
            &META,
            |ts| {
                let t = ts.iter_mut().find(|t| t.name == "l0.s_hh").unwrap();
                t.dtype = "I8";
                t.shape = vec![96 * 4];
            },
            "dtype",
        );
        expect_err(
            &META,
            |ts| {
                ts.push(TensorData {
                    name: "l0.w_ih".into(),
                    dtype: "I8",
                    shape: vec![96, 32],
                    data: vec![0; 96 * 32],
                })
            },
            "unexpected tensor \"l0.w_ih\"",
        );
    }

    #[test]
    fn json_reader() {
        let mut p = Json {
            s: br#" {"a": [1, -2.5e3, true, null, {"x": "\u00e9\ud83d\ude00\n"}], "b": "c"} "#,
            i: 0,
        };
        let JsonValue::Obj(f) = p.value(0).unwrap() else {
            panic!()
        };
        assert_eq!(f.len(), 2);
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(
            Json {
                s: deep.as_bytes(),
                i: 0
            }
            .value(0)
            .is_err()
        );
        let mut p = Json {
            s: br#""\ud800x""#,
            i: 0,
        };
        assert!(p.value(0).is_err());
    }
}
