//! `.safetensors` files: named tensors, as written by `safetensors.torch.save_file`.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {..}}`), then the data; offsets are relative to the end of the header. Tensors
//! are little-endian and C-ordered. The header is parsed by a small JSON reader here (objects,
//! arrays, strings, numbers, `true`/`false`/`null`, depth-limited), so no JSON dependency is
//! needed.
//!
//! [`SafeTensors::tensor`] returns `f32` arrays from `F32`, `F16`, `BF16` and `F64` data.
//!
//! ```
//! use klrp::io::safetensors::SafeTensors;
//! let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
//! let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
//! bytes.extend_from_slice(header);
//! bytes.extend_from_slice(&1.5f32.to_le_bytes());
//! bytes.extend_from_slice(&(-2.0f32).to_le_bytes());
//! let st = SafeTensors::parse(bytes)?;
//! assert_eq!(st.tensor("w")?.into_raw_vec_and_offset().0, vec![1.5, -2.0]);
//! # Ok::<(), klrp::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::io::onnx::MAX_TENSOR_ELEMENTS;
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::path::Path;

/// The largest JSON header accepted (100 MB, as the reference implementation).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("safetensors", reason)
}

/// The element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// `F32`.
    F32,
    /// `F16` (IEEE half).
    F16,
    /// `BF16` (bfloat16).
    BF16,
    /// `F64`.
    F64,
    /// Any other type (integers, Booleans, 8-bit floats), with its name and element size.
    Other(&'static str, usize),
}

impl Dtype {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F64" => Dtype::F64,
            "BOOL" => Dtype::Other("BOOL", 1),
            "U8" => Dtype::Other("U8", 1),
            "I8" => Dtype::Other("I8", 1),
            "F8_E5M2" => Dtype::Other("F8_E5M2", 1),
            "F8_E4M3" => Dtype::Other("F8_E4M3", 1),
            "I16" => Dtype::Other("I16", 2),
            "U16" => Dtype::Other("U16", 2),
            "I32" => Dtype::Other("I32", 4),
            "U32" => Dtype::Other("U32", 4),
            "I64" => Dtype::Other("I64", 8),
            "U64" => Dtype::Other("U64", 8),
            other => return Err(bad(format!("unknown dtype {other:?}"))),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
            Dtype::Other(_, s) => s,
        }
    }

    /// The name used in the file (`"F32"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F64 => "F64",
            Dtype::Other(n, _) => n,
        }
    }
}

/// A tensor's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Byte range within the data section.
    pub data_offsets: (usize, usize),
}

/// A parsed `.safetensors` file, holding its bytes.
#[derive(Clone, Debug)]
pub struct SafeTensors {
    bytes: Vec<u8>,
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafeTensors {
    /// Reads a `.safetensors` file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read; otherwise as [`SafeTensors::parse`].
    pub fn read_file(path: impl AsRef<Path>) -> Result<Self> {
        super::parse_file(path.as_ref(), Self::parse)
    }

    /// Parses the bytes of a `.safetensors` file.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a truncated file, a header longer than [`MAX_HEADER_BYTES`] or
    /// the file, invalid JSON, an entry without `dtype`/`shape`/`data_offsets`, or offsets that do
    /// not match the shape or lie outside the data; [`Error::TooLarge`] for a shape of more than
    /// 2³² elements.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let Some(len) = bytes.get(..8) else {
            return Err(bad(format!(
                "{} bytes is too short for the 8-byte header length",
                bytes.len()
            )));
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(len);
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER_BYTES || header_len > (bytes.len() - 8) as u64 {
            return Err(bad(format!(
                "header length {header_len} exceeds the file ({} bytes) or the {MAX_HEADER_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let data_start = 8 + header_len as usize;
        let header =
            std::str::from_utf8(&bytes[8..data_start]).map_err(|_| bad("header is not UTF-8"))?;
        let json = Json::parse(header)?;
        let Json::Object(entries) = json else {
            return Err(bad("header is not a JSON object"));
        };
        let data_len = bytes.len() - data_start;
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in entries {
            if name == "__metadata__" {
                let Json::Object(m) = value else {
                    return Err(bad("__metadata__ is not an object"));
                };
                for (k, v) in m {
                    let Json::String(v) = v else {
                        return Err(bad(format!("metadata {k:?} is not a string")));
                    };
                    metadata.insert(k, v);
                }
                continue;
            }
            let info = tensor_info(&name, &value, data_len)?;
            if tensors.insert(name.clone(), info).is_some() {
                return Err(bad(format!("tensor {name:?} appears twice")));
            }
        }
        Ok(SafeTensors {
            bytes,
            data_start,
            tensors,
            metadata,
        })
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// A tensor's header entry.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The `__metadata__` entries.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A tensor's raw little-endian bytes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no tensor of that name.
    pub fn raw(&self, name: &str) -> Result<&[u8]> {
        let info = self.lookup(name)?;
        let (b, e) = info.data_offsets;
        Ok(&self.bytes[self.data_start + b..self.data_start + e])
    }

    fn lookup(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::invalid(format!("safetensors file has no tensor {name:?}")))
    }

    /// A tensor as `f32` (from `F32`, `F16`, `BF16` or `F64` data).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no tensor of that name; [`Error::Unsupported`] for
    /// other dtypes.
    pub fn tensor(&self, name: &str) -> Result<ArrayD<f32>> {
        let info = self.lookup(name)?;
        let raw = self.raw(name)?;
        let v: Vec<f32> = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| crate::io::onnx::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            Dtype::F64 => raw
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            Dtype::Other(d, _) => {
                return Err(Error::Unsupported(format!(
                    "safetensors tensor {name:?} has dtype {d}; klrp reads F32, F16, BF16 and F64"
                )));
            }
        };
        ArrayD::from_shape_vec(IxDyn(&info.shape), v).map_err(|e| bad(e.to_string()))
    }

    /// A tensor as `f32`, checked to have `shape`.
    ///
    /// # Errors
    /// As [`SafeTensors::tensor`]; [`Error::ShapeMismatch`] naming the tensor if its shape
    /// differs.
    pub fn tensor_with_shape(&self, name: &str, shape: &[usize]) -> Result<ArrayD<f32>> {
        let info = self.lookup(name)?;
        if info.shape != shape {
            return Err(Error::shape(
                format!("safetensors tensor {name:?}"),
                shape,
                &info.shape,
            ));
        }
        self.tensor(name)
    }
}

fn tensor_info(name: &str, value: &Json, data_len: usize) -> Result<TensorInfo> {
    let Json::Object(fields) = value else {
        return Err(bad(format!("entry {name:?} is not an object")));
    };
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| bad(format!("tensor {name:?} has no {key}")))
    };
    let Json::String(dtype) = get("dtype")? else {
        return Err(bad(format!("tensor {name:?}: dtype is not a string")));
    };
    let dtype = Dtype::parse(dtype)?;
    let uints = |key: &str| -> Result<Vec<u64>> {
        let Json::Array(items) = get(key)? else {
            return Err(bad(format!("tensor {name:?}: {key} is not an array")));
        };
        items
            .iter()
            .map(|v| match v {
                Json::Number(n) => n
                    .parse::<u64>()
                    .map_err(|_| bad(format!("tensor {name:?}: {key} entry {n} is not a size"))),
                _ => Err(bad(format!("tensor {name:?}: {key} holds a non-number"))),
            })
            .collect()
    };
    let shape = uints("shape")?;
    let offsets = uints("data_offsets")?;
    let mut count: u64 = 1;
    for &d in &shape {
        count = count.saturating_mul(d);
    }
    if count > MAX_TENSOR_ELEMENTS {
        return Err(Error::TooLarge {
            what: format!("safetensors tensor {name:?}"),
            requested: u128::from(count),
            limit: u128::from(MAX_TENSOR_ELEMENTS),
        });
    }
    let &[begin, end] = offsets.as_slice() else {
        return Err(bad(format!(
            "tensor {name:?}: data_offsets must be [begin, end]"
        )));
    };
    let bytes = count * dtype.size() as u64;
    if begin > end || end > data_len as u64 || end - begin != bytes {
        return Err(bad(format!(
            "tensor {name:?} ({} {shape:?}, {bytes} bytes) has data_offsets [{begin}, {end}] \
             outside the {data_len}-byte data or of the wrong size",
            dtype.name()
        )));
    }
    Ok(TensorInfo {
        dtype,
        shape: shape.iter().map(|&d| d as usize).collect(),
        data_offsets: (begin as usize, end as usize),
    })
}

/// A JSON value (numbers kept as their text).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

const MAX_DEPTH: usize = 64;

struct JsonReader<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Json {
    fn parse(text: &str) -> Result<Json> {
        let mut r = JsonReader {
            s: text.as_bytes(),
            pos: 0,
        };
        let v = r.value(0)?;
        r.ws();
        if r.pos != r.s.len() {
            return Err(r.err("trailing characters after the JSON value"));
        }
        Ok(v)
    }
}

impl JsonReader<'_> {
    fn err(&self, what: &str) -> Error {
        bad(format!("header JSON: {what} at byte {}", self.pos))
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<()> {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.ws();
        match self.s.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.eat(b':')?;
                    fields.push((key, self.value(depth + 1)?));
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Json::Object(fields));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                while matches!(
                    self.s.get(self.pos),
                    Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                ) {
                    self.pos += 1;
                }
                Ok(Json::Number(
                    String::from_utf8_lossy(&self.s[start..self.pos]).into_owned(),
                ))
            }
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end")),
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json> {
        if self.s[self.pos..].starts_with(w.as_bytes()) {
            self.pos += w.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("bad \\u escape"))?;
        self.pos += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String> {
        if self.s.get(self.pos) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
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
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.err("unpaired surrogate"));
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.err("bad \\u escape"))?
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_f32_f16_bf16() {
        let mut data = Vec::new();
        data.extend_from_slice(&1.0f32.to_le_bytes());
        data.extend_from_slice(&0x3c00u16.to_le_bytes()); // f16 1.0
        data.extend_from_slice(&0xc000u16.to_le_bytes()); // f16 -2.0
        data.extend_from_slice(&0x3f80u16.to_le_bytes()); // bf16 1.0
        let h = r#"{"__metadata__":{"format":"pt"},
            "a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
            "b":{"dtype":"F16","shape":[2,1],"data_offsets":[4,8]},
            "c":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}}"#;
        let st = SafeTensors::parse(file(h, &data)).unwrap();
        assert_eq!(st.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(st.metadata()["format"], "pt");
        assert_eq!(st.tensor("b").unwrap().shape(), &[2, 1]);
        assert_eq!(
            st.tensor("b").unwrap().iter().copied().collect::<Vec<_>>(),
            [1.0, -2.0]
        );
        assert_eq!(st.tensor("c").unwrap().iter().next(), Some(&1.0));
        assert!(st.tensor_with_shape("a", &[2]).is_err());
        assert!(st.tensor("zz").is_err());
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(SafeTensors::parse(vec![1, 2, 3]).is_err());
        // header longer than the file
        assert!(SafeTensors::parse(file("{}", &[])[..9].to_vec()).is_err());
        let mut absurd = u64::MAX.to_le_bytes().to_vec();
        absurd.extend_from_slice(b"{}");
        assert!(SafeTensors::parse(absurd).is_err());
        for h in [
            "[]",
            "{",
            r#"{"a":1}"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}}"#,
            r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#,
            r#"{"a":{"dtype":"F32","shape":[4294967296,2],"data_offsets":[0,4]}}"#,
            r#"{"a":"\ud800"}"#,
            "{} x",
        ] {
            let r = SafeTensors::parse(file(h, &[0; 4]));
            assert!(r.is_err(), "{h}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(Json::parse(&deep).is_err());
    }

    #[test]
    fn json_strings_unescape() {
        let v = Json::parse(r#"{"k\u00e9\n":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(
            v,
            Json::Object(vec![("ké\n".into(), Json::String("😀".into()))])
        );
    }
}
