//! `.npy` files (NumPy's array format, versions 1–3): inputs and relevance maps.
//!
//! Reads little- and big-endian `f4`, `f8`, `i1`–`i8`, `u1`–`u8` and `b1` arrays in C or Fortran
//! order; writes C-order little-endian arrays of `f32`, `f64`, `i64`, `u64`, `u8` and `bool`.

use crate::error::{Error, Result};
use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// The elements of an `.npy` array, in the file's type.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `f4`.
    F32(Vec<f32>),
    /// `f8`.
    F64(Vec<f64>),
    /// Signed integers (`i1`, `i2`, `i4`, `i8`), widened.
    I64(Vec<i64>),
    /// Unsigned integers (`u1`, `u2`, `u4`, `u8`), widened.
    U64(Vec<u64>),
    /// `b1`.
    Bool(Vec<bool>),
}

/// An array read from an `.npy` file, in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// The shape.
    pub shape: Vec<usize>,
    /// The elements in C (row-major) order.
    pub data: NpyData,
}

impl NpyArray {
    /// The array as `f32` (integers and Booleans converted; `f8` rounded).
    ///
    /// # Errors
    /// Never for a well-formed array; kept fallible for the shape check.
    pub fn to_f32(&self) -> Result<ArrayD<f32>> {
        let v: Vec<f32> = match &self.data {
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), v)
            .map_err(|e| Error::malformed("npy", e.to_string()))
    }

    /// The array as `f64`.
    ///
    /// # Errors
    /// Never for a well-formed array; kept fallible for the shape check.
    pub fn to_f64(&self) -> Result<ArrayD<f64>> {
        let v: Vec<f64> = match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::U64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.shape), v)
            .map_err(|e| Error::malformed("npy", e.to_string()))
    }

    /// The array as non-negative integer indices (`usize`), e.g. class targets.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the array holds floats or negative values.
    pub fn to_indices(&self) -> Result<Vec<usize>> {
        let bad = || Error::invalid("expected an array of non-negative integers");
        match &self.data {
            NpyData::I64(v) => v
                .iter()
                .map(|&x| usize::try_from(x).map_err(|_| bad()))
                .collect(),
            NpyData::U64(v) => v
                .iter()
                .map(|&x| usize::try_from(x).map_err(|_| bad()))
                .collect(),
            _ => Err(bad()),
        }
    }
}

fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat = format!("'{key}':");
    let start = header
        .find(&pat)
        .ok_or_else(|| Error::malformed("npy", format!("header has no '{key}'")))?
        + pat.len();
    Ok(header[start..].trim_start())
}

fn parse_header(header: &str) -> Result<(String, bool, Vec<usize>)> {
    let descr = header_value(header, "descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| Error::malformed("npy", "descr is not a quoted string"))?
        .to_string();
    let fortran = header_value(header, "fortran_order")?;
    let fortran = if fortran.starts_with("True") {
        true
    } else if fortran.starts_with("False") {
        false
    } else {
        return Err(Error::malformed(
            "npy",
            "fortran_order is neither True nor False",
        ));
    };
    let shape = header_value(header, "shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| Error::malformed("npy", "shape is not a tuple"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| Error::malformed("npy", format!("bad shape entry {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((descr, fortran, shape))
}

/// Reads an `.npy` array.
///
/// # Errors
/// [`Error::Malformed`] for a bad magic, header, dtype or a size that does not match the data
/// (truncated or trailing bytes); [`Error::Unsupported`] for dtypes other than numbers and
/// Booleans (objects, strings, structured, complex).
pub fn read_npy(mut reader: impl Read) -> Result<NpyArray> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| Error::Io {
        path: "<npy stream>".into(),
        source: e,
    })?;
    parse_npy(&bytes)
}

/// Reads an `.npy` file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; otherwise as [`read_npy`].
pub fn read_npy_file(path: impl AsRef<Path>) -> Result<NpyArray> {
    super::parse_file(path.as_ref(), |bytes| parse_npy(&bytes))
}

/// Parses the bytes of an `.npy` file.
///
/// # Errors
/// As [`read_npy`].
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(Error::malformed("npy", "not an .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (header_len, offset): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(Error::malformed("npy", "truncated header"));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        v => {
            return Err(Error::malformed(
                "npy",
                format!("unknown format version {v}"),
            ));
        }
    };
    let data_start = offset
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| Error::malformed("npy", "truncated header"))?;
    let header = std::str::from_utf8(&bytes[offset..data_start])
        .map_err(|_| Error::malformed("npy", "header is not text"))?;
    let (descr, fortran, shape) = parse_header(header)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::malformed("npy", format!("shape {shape:?} overflows")))?;
    let descr_b = descr.as_bytes();
    // ASCII only: the slicing below is by byte (a fuzzed `'<ΐ8'` used to panic mid-character).
    if descr_b.len() < 3 || !descr.is_ascii() {
        return Err(Error::malformed("npy", format!("bad dtype {descr:?}")));
    }
    let (endian, kind, size_str) = (descr_b[0], descr_b[1], &descr[2..]);
    let size: usize = size_str
        .parse()
        .map_err(|_| Error::Unsupported(format!("npy dtype {descr:?}")))?;
    let big = match endian {
        b'<' | b'|' | b'=' => false,
        b'>' => true,
        _ => {
            return Err(Error::malformed(
                "npy",
                format!("bad byte order in dtype {descr:?}"),
            ));
        }
    };
    let data = &bytes[data_start..];
    let expected = count
        .checked_mul(size)
        .ok_or_else(|| Error::malformed("npy", "array size overflows"))?;
    if data.len() != expected {
        return Err(Error::malformed(
            "npy",
            format!(
                "shape {shape:?} of {descr} needs {expected} data bytes, the file has {}",
                data.len()
            ),
        ));
    }
    let word = |c: &[u8]| -> [u8; 8] {
        let mut b = [0u8; 8];
        if big {
            for (i, &x) in c.iter().rev().enumerate() {
                b[i] = x;
            }
        } else {
            b[..c.len()].copy_from_slice(c);
        }
        b
    };
    let chunks = data.chunks_exact(size.max(1));
    let parsed = match (kind, size) {
        (b'f', 4) => NpyData::F32(
            chunks
                .map(|c| f32::from_le_bytes(word(c)[..4].try_into().unwrap_or([0; 4])))
                .collect(),
        ),
        (b'f', 8) => NpyData::F64(chunks.map(|c| f64::from_le_bytes(word(c))).collect()),
        (b'i', 1 | 2 | 4 | 8) => NpyData::I64(
            chunks
                .map(|c| {
                    let u = u64::from_le_bytes(word(c));
                    let shift = 64 - 8 * size as u32;
                    ((u << shift) as i64) >> shift
                })
                .collect(),
        ),
        (b'u', 1 | 2 | 4 | 8) => {
            NpyData::U64(chunks.map(|c| u64::from_le_bytes(word(c))).collect())
        }
        (b'b', 1) => NpyData::Bool(chunks.map(|c| c[0] != 0).collect()),
        _ => return Err(Error::Unsupported(format!("npy dtype {descr:?}"))),
    };
    let array = NpyArray {
        shape: shape.clone(),
        data: parsed,
    };
    if fortran && shape.len() > 1 {
        return Ok(to_c_order(array));
    }
    Ok(array)
}

fn to_c_order(a: NpyArray) -> NpyArray {
    fn reorder<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
        match ArrayD::from_shape_vec(IxDyn(shape).f(), v) {
            Ok(arr) => arr.iter().cloned().collect(),
            Err(_) => Vec::new(),
        }
    }
    let s = &a.shape;
    let data = match a.data {
        NpyData::F32(v) => NpyData::F32(reorder(v, s)),
        NpyData::F64(v) => NpyData::F64(reorder(v, s)),
        NpyData::I64(v) => NpyData::I64(reorder(v, s)),
        NpyData::U64(v) => NpyData::U64(reorder(v, s)),
        NpyData::Bool(v) => NpyData::Bool(reorder(v, s)),
    };
    NpyArray {
        shape: a.shape,
        data,
    }
}

/// An element type that can be written to `.npy`.
pub trait NpyElement: Copy {
    /// The dtype descriptor, e.g. `"<f4"`.
    const DESCR: &'static str;
    /// Appends the element's little-endian bytes.
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! npy_element {
    ($($t:ty => $d:expr),*) => {$(
        impl NpyElement for $t {
            const DESCR: &'static str = $d;
            fn put(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()); }
        }
    )*};
}
npy_element!(f32 => "<f4", f64 => "<f8", i64 => "<i8", u64 => "<u8", u8 => "|u1");

impl NpyElement for bool {
    const DESCR: &'static str = "|b1";
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

/// Writes `array` as a version-1 `.npy` (C order, little-endian).
///
/// # Errors
/// [`Error::Io`] if writing fails.
pub fn write_npy<T: NpyElement>(mut writer: impl Write, array: &ArrayD<T>) -> Result<()> {
    let shape = match array.shape() {
        [d] => format!("({d},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        T::DESCR
    );
    // Pad so that the data starts on a multiple of 64 bytes, ending the header with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + array.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &x in array.iter() {
        x.put(&mut out);
    }
    writer.write_all(&out).map_err(|e| Error::Io {
        path: "<npy stream>".into(),
        source: e,
    })
}

/// Writes `array` to the file `path` as `.npy`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
pub fn write_npy_file<T: NpyElement>(path: impl AsRef<Path>, array: &ArrayD<T>) -> Result<()> {
    let path = path.as_ref();
    let file = std::fs::File::create(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    write_npy(std::io::BufWriter::new(file), array).map_err(|e| match e {
        Error::Io { source, .. } => Error::Io {
            path: path.display().to_string(),
            source,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip_f32_and_bool() {
        let a = array![[1.5f32, -2.0, 3.25], [0.0, 1e-8, 7.0]].into_dyn();
        let mut buf = Vec::new();
        write_npy(&mut buf, &a).unwrap();
        assert_eq!(buf.len(), 128 + 2 * 3 * 4);
        let back = parse_npy(&buf).unwrap();
        assert_eq!(back.shape, vec![2, 3]);
        assert_eq!(back.to_f32().unwrap(), a);
        let b = array![true, false, true].into_dyn();
        let mut buf = Vec::new();
        write_npy(&mut buf, &b).unwrap();
        assert_eq!(
            parse_npy(&buf).unwrap().data,
            NpyData::Bool(vec![true, false, true])
        );
    }

    fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn fortran_order_and_big_endian_and_small_ints() {
        // 2x2 Fortran order: column-major [1, 3, 2, 4] is C-order [1, 2, 3, 4].
        let data: Vec<u8> = [1i16, 3, 2, 4]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let f = with_header(
            "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 2), }\n",
            &data,
        );
        assert_eq!(parse_npy(&f).unwrap().data, NpyData::I64(vec![1, 2, 3, 4]));
        let neg = with_header(
            "{'descr': '|i1', 'fortran_order': False, 'shape': (1,), }\n",
            &[0xff],
        );
        assert_eq!(parse_npy(&neg).unwrap().data, NpyData::I64(vec![-1]));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        assert!(parse_npy(b"garbage").is_err());
        let short = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n",
            &[0; 8],
        );
        assert!(matches!(parse_npy(&short), Err(Error::Malformed { .. })));
        let long = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 8],
        );
        assert!(matches!(parse_npy(&long), Err(Error::Malformed { .. })));
        let huge = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 4), }\n",
            &[],
        );
        assert!(matches!(parse_npy(&huge), Err(Error::Malformed { .. })));
        let obj = with_header(
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 8],
        );
        assert!(parse_npy(&obj).is_err());
        let complex = with_header(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }\n",
            &[0; 8],
        );
        assert!(matches!(parse_npy(&complex), Err(Error::Unsupported(_))));
        let mut bad_len = MAGIC.to_vec();
        bad_len.extend_from_slice(&[1, 0, 0xff, 0xff]);
        assert!(parse_npy(&bad_len).is_err());
    }
}
