//! `.safetensors` files: named tensors, as written by `safetensors.torch.save_file`.
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {..}}`), then the data; offsets are relative to the end of the header. Tensors
//! are little-endian and C-ordered. The header is read and validated by Hugging Face's reference
//! implementation, the [`safetensors`](https://docs.rs/safetensors) crate (so a file klrp accepts
//! is one `safetensors.torch.load_file` accepts: tensors stored back to back in offset order,
//! covering the data exactly); klrp adds its element limit ([`MAX_TENSOR_ELEMENTS`]) and the
//! conversion to `f32`.
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
    /// Any other type (integers, Booleans, complex, 8-, 6- and 4-bit floats), with its name and
    /// element size in bytes (0 for the sub-byte types).
    Other(&'static str, usize),
}

impl Dtype {
    /// The reference implementation's dtype as klrp's.
    fn from_reference(dtype: safetensors::Dtype) -> Self {
        use safetensors::Dtype as D;
        let other = |name| Dtype::Other(name, dtype.bitsize() / 8);
        match dtype {
            D::F32 => Dtype::F32,
            D::F16 => Dtype::F16,
            D::BF16 => Dtype::BF16,
            D::F64 => Dtype::F64,
            D::BOOL => other("BOOL"),
            D::U8 => other("U8"),
            D::I8 => other("I8"),
            D::F8_E5M2 => other("F8_E5M2"),
            D::F8_E4M3 => other("F8_E4M3"),
            D::F8_E8M0 => other("F8_E8M0"),
            D::F8_E4M3FNUZ => other("F8_E4M3FNUZ"),
            D::F8_E5M2FNUZ => other("F8_E5M2FNUZ"),
            D::F4 => other("F4"),
            D::F6_E2M3 => other("F6_E2M3"),
            D::F6_E3M2 => other("F6_E3M2"),
            D::I16 => other("I16"),
            D::U16 => other("U16"),
            D::I32 => other("I32"),
            D::U32 => other("U32"),
            D::C64 => other("C64"),
            D::I64 => other("I64"),
            D::U64 => other("U64"),
            _ => other("unknown"),
        }
    }

    /// Bytes per element (0 for the packed sub-byte types `F4`, `F6_E2M3`, `F6_E3M2`).
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
    /// the file, invalid JSON, an entry without `dtype`/`shape`/`data_offsets`, an unknown dtype,
    /// or offsets that do not match the shape, leave a gap or an overlap between tensors, or do
    /// not cover the data exactly (the reference implementation's rules);
    /// [`Error::TooLarge`] for a shape of more than 2³² elements.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let (header_len, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| header_error(&e, bytes.len()))?;
        let data_start = 8 + header_len;
        let mut tensors = BTreeMap::new();
        for (name, info) in header.tensors() {
            let dtype = Dtype::from_reference(info.dtype);
            let count = info
                .shape
                .iter()
                .fold(1u64, |n, &d| n.saturating_mul(d as u64));
            if count > MAX_TENSOR_ELEMENTS {
                return Err(Error::TooLarge {
                    what: format!("safetensors tensor {name:?}"),
                    requested: u128::from(count),
                    limit: u128::from(MAX_TENSOR_ELEMENTS),
                });
            }
            let info = TensorInfo {
                dtype,
                shape: info.shape.clone(),
                data_offsets: info.data_offsets,
            };
            tensors.insert(name, info);
        }
        let metadata = header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
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

/// The reference implementation's header error as klrp's, with the reason spelled out.
fn header_error(e: &safetensors::SafeTensorError, file_len: usize) -> Error {
    use safetensors::SafeTensorError as E;
    match e {
        E::HeaderTooSmall => bad(format!(
            "{file_len} bytes is too short for the 8-byte header length"
        )),
        E::HeaderTooLarge | E::InvalidHeaderLength => bad(format!(
            "header length exceeds the file ({file_len} bytes) or the {MAX_HEADER_BYTES}-byte limit"
        )),
        E::InvalidHeader(_) => bad("header is not UTF-8"),
        E::InvalidHeaderDeserialization(e) => bad(format!(
            "header is not a JSON object of tensor entries \
             ({{\"name\": {{\"dtype\", \"shape\", \"data_offsets\"}}}}, \"__metadata__\" of strings): {e}"
        )),
        E::InvalidOffset(name) => bad(format!(
            "tensor {name:?} has data_offsets that do not start where the previous tensor ends \
             (tensors must be stored back to back)"
        )),
        E::TensorInvalidInfo => bad("a tensor's data_offsets do not span its shape × dtype size"),
        E::ValidationOverflow => bad("a tensor's shape × dtype size overflows"),
        E::MisalignedSlice => bad("a sub-byte tensor does not end on a byte boundary"),
        E::MetadataIncompleteBuffer => bad(format!(
            "the tensors' data does not cover the data section exactly ({file_len}-byte file)"
        )),
        other => bad(other.to_string()),
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
        assert!(SafeTensors::parse(file(&deep, &[])).is_err());
    }

    /// The 2³²-element limit after the move to the `safetensors` crate: a header declaring more
    /// elements than the file holds is refused by the crate's offset checks (klrp's
    /// `MAX_TENSOR_ELEMENTS` check only decides for files of more than 4 GiB, which really hold
    /// the data); nothing of the declared size is allocated either way.
    #[test]
    fn absurd_shapes_are_refused_without_allocating() {
        let cases = [
            // 2³² + 1 one-byte elements, offsets consistent with the shape, 4 bytes of data
            (
                r#"{"a":{"dtype":"U8","shape":[4294967297],"data_offsets":[0,4294967297]}}"#,
                "cover the data section exactly",
            ),
            // offsets inconsistent with the shape
            (
                r#"{"a":{"dtype":"F32","shape":[4294967296,2],"data_offsets":[0,4]}}"#,
                "do not span its shape",
            ),
            // a shape whose byte size overflows u64
            (
                r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                "overflows",
            ),
        ];
        for (h, want) in cases {
            match SafeTensors::parse(file(h, &[0; 4])) {
                Err(Error::Malformed { reason, .. }) => {
                    assert!(reason.contains(want), "{h}: {reason}")
                }
                Err(other) => panic!("{h}: {other}"),
                Ok(_) => panic!("{h}: accepted"),
            }
        }
    }

    #[test]
    fn the_reference_rules_hold_gaps_overlaps_and_trailing_bytes_are_errors() {
        let two = |a: &str, b: &str, data: &[u8]| {
            let h = format!(
                r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":{a}}},"b":{{"dtype":"F32","shape":[1],"data_offsets":{b}}}}}"#
            );
            SafeTensors::parse(file(&h, data))
        };
        let data: Vec<u8> = [3.0f32, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        // Stored in either order, back to back: fine.
        let st = two("[4,8]", "[0,4]", &data).unwrap();
        assert_eq!(st.tensor("a").unwrap().iter().next(), Some(&4.0));
        assert_eq!(st.info("b").unwrap().data_offsets, (0, 4));
        assert_eq!(st.raw("b").unwrap(), &3.0f32.to_le_bytes());
        // Overlapping, with a gap, or with bytes after the last tensor: refused, saying why.
        let overlap = two("[0,4]", "[0,4]", &data).unwrap_err().to_string();
        assert!(overlap.contains("back to back"), "{overlap}");
        let mut gap = data.clone();
        gap.extend_from_slice(&[0; 4]);
        assert!(two("[0,4]", "[8,12]", &gap).is_err());
        let trailing = two("[0,4]", "[4,8]", &gap).unwrap_err().to_string();
        assert!(
            trailing.contains("cover the data section exactly"),
            "{trailing}"
        );
        let wrong_size = two("[0,4]", "[4,6]", &data[..6]).unwrap_err().to_string();
        assert!(wrong_size.contains("shape × dtype"), "{wrong_size}");
    }

    #[test]
    fn every_reference_dtype_is_named_and_sized() {
        for (name, size) in [
            ("I64", 8),
            ("BOOL", 1),
            ("C64", 8),
            ("F8_E4M3", 1),
            ("F4", 0),
        ] {
            // Two elements: 2 × size bytes, or one byte for two 4-bit F4 values.
            let bytes = if size == 0 { 1 } else { 2 * size };
            let h =
                format!(r#"{{"t":{{"dtype":"{name}","shape":[2],"data_offsets":[0,{bytes}]}}}}"#);
            let st = SafeTensors::parse(file(&h, &vec![0; bytes])).unwrap();
            let info = st.info("t").unwrap();
            assert_eq!((info.dtype.name(), info.dtype.size()), (name, size));
            match st.tensor("t") {
                Err(Error::Unsupported(m)) => assert!(m.contains(name), "{m}"),
                other => panic!("{name}: expected Unsupported, got {other:?}"),
            }
        }
    }
}
