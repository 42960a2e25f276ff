//! IDX files (MNIST, Fashion-MNIST): a general reader and writer, and the [`Mnist`] data set.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code and the number of
//! dimensions — then one big-endian `u32` per dimension, then the elements in row-major order,
//! big-endian. Files may be gzip-compressed: [`read_idx`] and [`read_idx_file`] recognise gzip
//! by its magic bytes (`1f 8b`), whatever the file is called.
//!
//! Reading is strict: a file must hold exactly the elements its header declares. Missing data
//! (a truncated file) and extra bytes after the data are both [`Error::Malformed`], and so is a
//! header whose dimensions multiply past `usize::MAX`. Memory is allocated as data actually
//! arrives (at most 64 MiB ahead of it), so a header that claims more than the file holds costs
//! nothing before the truncation is reported.
//!
//! An array of more than [`DEFAULT_MAX_IDX_ELEMENTS`] elements (2³⁰) is refused with
//! [`Error::TooLarge`] as soon as the header has been read, before any data is: a gzip file
//! inflates up to about 1000 times its size, so without a limit a small file could make the
//! reader allocate gigabytes. [`read_idx_with_max_elements`] and
//! [`read_idx_file_with_max_elements`] take another limit. Bytes after the data are counted up to
//! 1 MiB only (the error then says "at least"), so they cannot be inflated without end either.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use ndarray::{Array2, ArrayView2, ArrayView4, Axis};

use crate::error::{Error, Result};

/// The format name used in [`Error::Malformed`].
const FORMAT: &str = "IDX";

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most bytes allocated ahead of the data actually read (64 MiB).
const PREALLOC_CAP: usize = 64 << 20;

/// The most elements [`read_idx`] and [`read_idx_file`] accept in one array: 2³⁰ (1 GiB of
/// `u8` data, 8 GiB of `f64`; the full MNIST training images are 4.7·10⁷). Use
/// [`read_idx_with_max_elements`] or [`read_idx_file_with_max_elements`] for more.
pub const DEFAULT_MAX_IDX_ELEMENTS: u64 = 1 << 30;

/// The most bytes after the data that are read to count them for the error (1 MiB).
const TRAILING_SCAN: u64 = 1 << 20;

/// The element type of an IDX file, named by the third byte of its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// `0x08`: unsigned byte.
    U8,
    /// `0x09`: signed byte.
    I8,
    /// `0x0B`: big-endian `i16`.
    I16,
    /// `0x0C`: big-endian `i32`.
    I32,
    /// `0x0D`: big-endian `f32`.
    F32,
    /// `0x0E`: big-endian `f64`.
    F64,
}

impl IdxType {
    /// The type for an IDX type code, or `None` if the code is not one of the six defined.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0x08 => Some(IdxType::U8),
            0x09 => Some(IdxType::I8),
            0x0B => Some(IdxType::I16),
            0x0C => Some(IdxType::I32),
            0x0D => Some(IdxType::F32),
            0x0E => Some(IdxType::F64),
            _ => None,
        }
    }

    /// The IDX type code (the third byte of the magic number).
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }

    /// The Rust name of the element type (`"u8"`, `"f32"`, …).
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }
}

/// The elements of an IDX array, in row-major order, decoded to native endianness.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    /// Type code `0x08`.
    U8(Vec<u8>),
    /// Type code `0x09`.
    I8(Vec<i8>),
    /// Type code `0x0B`.
    I16(Vec<i16>),
    /// Type code `0x0C`.
    I32(Vec<i32>),
    /// Type code `0x0D`.
    F32(Vec<f32>),
    /// Type code `0x0E`.
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type.
    pub fn idx_type(&self) -> IdxType {
        match self {
            IdxData::U8(_) => IdxType::U8,
            IdxData::I8(_) => IdxType::I8,
            IdxData::I16(_) => IdxType::I16,
            IdxData::I32(_) => IdxType::I32,
            IdxData::F32(_) => IdxType::F32,
            IdxData::F64(_) => IdxType::F64,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An n-dimensional array read from (or to be written to) an IDX file.
///
/// `data` holds the product of `dims` elements in row-major order. The fields are public;
/// [`IdxArray::new`] checks that they agree, and so do [`write_idx`] and [`Mnist::from_idx`].
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first (`[N, 28, 28]` for MNIST images).
    pub dims: Vec<usize>,
    /// The elements.
    pub data: IdxData,
}

impl IdxArray {
    /// An array of shape `dims` holding `data`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if the product of `dims` is not `data.len()` (or overflows),
    /// [`Error::InvalidArgument`] if `dims` is empty or has more than 255 entries (the most an
    /// IDX header can describe).
    ///
    /// # Example
    ///
    /// ```
    /// use klrp::io::idx::{IdxArray, IdxData};
    /// let a = IdxArray::new(vec![2, 3], IdxData::U8(vec![0, 1, 2, 3, 4, 5]))?;
    /// assert_eq!(a.len(), 6);
    /// assert!(IdxArray::new(vec![2, 2], IdxData::U8(vec![0; 5])).is_err());
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<Self> {
        let array = IdxArray { dims, data };
        array.check("IdxArray::new")?;
        Ok(array)
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The element type.
    pub fn idx_type(&self) -> IdxType {
        self.data.idx_type()
    }

    /// The elements as bytes, if the element type is `u8`.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            IdxData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// Checks that `dims` is a valid IDX shape and agrees with the number of elements.
    fn check(&self, context: &str) -> Result<()> {
        if self.dims.is_empty() || self.dims.len() > 255 {
            return Err(Error::invalid(format!(
                "{context}: an IDX array has 1 to 255 dimensions, got {}",
                self.dims.len()
            )));
        }
        match element_count(&self.dims) {
            Some(n) if n == self.data.len() => Ok(()),
            _ => Err(Error::shape(
                format!(
                    "{context}: {} elements of type {}",
                    self.data.len(),
                    self.idx_type().name()
                ),
                &[self.data.len()],
                &self.dims,
            )),
        }
    }
}

/// The product of `dims`, or `None` if it overflows `usize`.
fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Reads one IDX array from `reader`, raw or gzip-compressed.
///
/// Gzip is recognised by its first two bytes (`1f 8b`). The reader must hold exactly one
/// array: the header, then exactly the number of elements it declares.
///
/// The array may have at most [`DEFAULT_MAX_IDX_ELEMENTS`] elements (2³⁰); see
/// [`read_idx_with_max_elements`] to read a larger one.
///
/// # Errors
///
/// [`Error::Malformed`] (format `"IDX"`) for an empty or truncated input, a magic number that
/// does not start with two zero bytes, an unknown type code, zero dimensions, dimensions whose
/// product overflows `usize`, fewer data bytes than the header declares, bytes after the data,
/// or a corrupt gzip stream. [`Error::TooLarge`] if the header declares more than
/// [`DEFAULT_MAX_IDX_ELEMENTS`] elements (nothing after the header is read then).
/// [`Error::Io`] (path `"<reader>"`) if `reader` itself fails.
///
/// # Example
///
/// ```
/// use klrp::io::idx::{read_idx, IdxData};
/// // Magic 0x00000801 (u8, 1 dimension), 3 elements.
/// let bytes = [0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9];
/// let a = read_idx(&bytes[..])?;
/// assert_eq!(a.dims, vec![3]);
/// assert_eq!(a.data, IdxData::U8(vec![7, 8, 9]));
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn read_idx(reader: impl Read) -> Result<IdxArray> {
    read_idx_named(reader, "<reader>", DEFAULT_MAX_IDX_ELEMENTS)
}

/// [`read_idx`] with another limit on the number of elements than [`DEFAULT_MAX_IDX_ELEMENTS`].
///
/// The limit is checked against the header, before any data is read or decompressed, so a
/// gzip bomb (a small file declaring and holding a huge array) costs no more than its header.
/// Raise it for a data set above 2³⁰ elements; lower it to bound what an untrusted file may
/// make the reader allocate (at most `max_elements` times the element size, plus 1 MiB read to
/// count trailing bytes).
///
/// # Errors
///
/// As [`read_idx`], with [`Error::TooLarge`] above `max_elements`.
///
/// # Example
///
/// ```
/// use klrp::io::idx::read_idx_with_max_elements;
/// use klrp::Error;
/// let bytes = [0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9];
/// assert_eq!(read_idx_with_max_elements(&bytes[..], 3)?.len(), 3);
/// assert!(matches!(
///     read_idx_with_max_elements(&bytes[..], 2),
///     Err(Error::TooLarge { requested: 3, limit: 2, .. })
/// ));
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn read_idx_with_max_elements(reader: impl Read, max_elements: u64) -> Result<IdxArray> {
    read_idx_named(reader, "<reader>", max_elements)
}

/// Reads one IDX array from the file at `path`, raw or gzip-compressed.
///
/// Gzip is recognised by the file's first two bytes, not by its name, so `foo-idx3-ubyte` and
/// `foo-idx3-ubyte.gz` both work whichever they hold.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be opened or read; otherwise as [`read_idx`], with the
/// path at the start of the reason.
///
/// # Example
///
/// ```no_run
/// use klrp::io::idx::read_idx_file;
/// let labels = read_idx_file("data/mnist/labels.idx1-ubyte.gz")?;
/// assert_eq!(labels.dims, vec![10_000]);
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn read_idx_file(path: impl AsRef<Path>) -> Result<IdxArray> {
    read_idx_file_with_max_elements(path, DEFAULT_MAX_IDX_ELEMENTS)
}

/// [`read_idx_file`] with another limit on the number of elements than
/// [`DEFAULT_MAX_IDX_ELEMENTS`] (see [`read_idx_with_max_elements`]).
///
/// # Errors
///
/// As [`read_idx_file`], with [`Error::TooLarge`] above `max_elements`.
///
/// # Example
///
/// ```no_run
/// use klrp::io::idx::read_idx_file_with_max_elements;
/// // EMNIST ByClass: 697,932 images of 28 × 28 = 5.5·10⁸ elements.
/// let images = read_idx_file_with_max_elements("emnist-byclass-train-images-idx3-ubyte.gz", 1 << 30)?;
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn read_idx_file_with_max_elements(
    path: impl AsRef<Path>,
    max_elements: u64,
) -> Result<IdxArray> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| Error::Io {
        path: name.clone(),
        source,
    })?;
    read_idx_named(BufReader::new(file), &name, max_elements)
}

/// Writes `array` as a raw (uncompressed) IDX stream.
///
/// Wrap `writer` in a [`flate2::write::GzEncoder`] for a `.gz` file.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] or [`Error::InvalidArgument`] if `array.dims` disagrees with its
/// data or has no or more than 255 entries; [`Error::InvalidArgument`] if a dimension exceeds
/// `u32::MAX`; [`Error::Io`] (path `"<writer>"`) if writing fails.
///
/// # Example
///
/// ```
/// use klrp::io::idx::{read_idx, write_idx, IdxArray, IdxData};
/// let a = IdxArray::new(vec![2], IdxData::F32(vec![0.5, -1.0]))?;
/// let mut bytes = Vec::new();
/// write_idx(&mut bytes, &a)?;
/// assert_eq!(read_idx(&bytes[..])?, a);
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn write_idx(mut writer: impl Write, array: &IdxArray) -> Result<()> {
    array.check("write_idx")?;
    let mut out = Vec::with_capacity(4 + 4 * array.dims.len());
    out.extend_from_slice(&[0, 0, array.idx_type().code(), array.dims.len() as u8]);
    for &d in &array.dims {
        let d = u32::try_from(d).map_err(|_| {
            Error::invalid(format!(
                "write_idx: dimension {d} does not fit the 32 bits of an IDX header"
            ))
        })?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    let io_err = |source| Error::Io {
        path: "<writer>".into(),
        source,
    };
    writer.write_all(&out).map_err(io_err)?;
    // Encode in bounded chunks so that a large array is not copied whole.
    const CHUNK: usize = 1 << 16;
    macro_rules! put {
        ($v:expr) => {
            for part in $v.chunks(CHUNK) {
                let bytes: Vec<u8> = part.iter().flat_map(|x| x.to_be_bytes()).collect();
                writer.write_all(&bytes).map_err(io_err)?;
            }
        };
    }
    match &array.data {
        IdxData::U8(v) => writer.write_all(v).map_err(io_err)?,
        IdxData::I8(v) => put!(v),
        IdxData::I16(v) => put!(v),
        IdxData::I32(v) => put!(v),
        IdxData::F32(v) => put!(v),
        IdxData::F64(v) => put!(v),
    }
    writer.flush().map_err(io_err)
}

/// [`read_idx`] with `source` naming the input in errors.
fn read_idx_named<R: Read>(mut reader: R, source: &str, max_elements: u64) -> Result<IdxArray> {
    let mut prefix = [0u8; 2];
    let got = read_up_to(&mut reader, &mut prefix).map_err(|e| io_error(e, source, false))?;
    let rest = (&prefix[..got]).chain(reader);
    if prefix[..got] == GZIP_MAGIC {
        parse(MultiGzDecoder::new(rest), source, true, max_elements)
    } else {
        parse(rest, source, false, max_elements)
    }
}

/// Fills as much of `buf` as the reader can give, stopping early only at end of input.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Maps an I/O error: a decompression failure is malformed data, anything else is I/O.
fn io_error(e: io::Error, source: &str, gzip: bool) -> Error {
    let corrupt = matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    );
    if gzip && corrupt {
        Error::malformed(FORMAT, format!("{source}: corrupt gzip stream: {e}"))
    } else {
        Error::Io {
            path: source.to_string(),
            source: e,
        }
    }
}

/// Parses one IDX array from an uncompressed stream.
fn parse(mut r: impl Read, source: &str, gzip: bool, max_elements: u64) -> Result<IdxArray> {
    let malformed = |reason: String| Error::malformed(FORMAT, format!("{source}: {reason}"));
    let io_err = |e| io_error(e, source, gzip);

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic).map_err(io_err)?;
    if got == 0 {
        return Err(malformed("empty input: no IDX header".into()));
    }
    if magic[..got.min(2)].iter().any(|&b| b != 0) {
        return Err(malformed(format!(
            "bad magic number {}: an IDX file starts with two zero bytes",
            hex(&magic[..got])
        )));
    }
    if got < 4 {
        return Err(malformed(format!(
            "truncated header: {got} bytes, the magic number alone needs 4"
        )));
    }
    let ty = IdxType::from_code(magic[2]).ok_or_else(|| {
        malformed(format!(
            "unknown type code {:#04x} in magic number {} (known: 0x08 u8, 0x09 i8, 0x0b i16, \
             0x0c i32, 0x0d f32, 0x0e f64)",
            magic[2],
            hex(&magic)
        ))
    })?;
    let ndims = usize::from(magic[3]);
    if ndims == 0 {
        return Err(malformed(format!(
            "magic number {} declares zero dimensions",
            hex(&magic)
        )));
    }

    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_up_to(&mut r, &mut dim_bytes).map_err(io_err)?;
    if got < dim_bytes.len() {
        return Err(malformed(format!(
            "truncated header: {ndims} dimensions need {} bytes after the magic number, found {got}",
            dim_bytes.len()
        )));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(be(c)) as usize)
        .collect();
    let count = element_count(&dims);
    let nbytes = count
        .and_then(|n| n.checked_mul(ty.size()))
        .ok_or_else(|| {
            malformed(format!(
                "dimensions {dims:?} of {} hold more bytes than usize can count",
                ty.name()
            ))
        })?;
    // Before any data is read (or inflated): the limit bounds what a small gzip file can make
    // us allocate.
    let count = count.unwrap_or(usize::MAX) as u64;
    if count > max_elements {
        return Err(Error::TooLarge {
            what: format!(
                "{source}: IDX array {dims:?} of {}{}; raise the limit with \
                 read_idx_with_max_elements",
                ty.name(),
                if gzip { " (gzip)" } else { "" }
            ),
            requested: u128::from(count),
            limit: u128::from(max_elements),
        });
    }

    // Grow the buffer as data arrives: a lying header cannot make us allocate more than
    // PREALLOC_CAP beyond what is really there.
    let mut bytes = Vec::with_capacity(nbytes.min(PREALLOC_CAP));
    (&mut r)
        .take(nbytes as u64)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() < nbytes {
        return Err(malformed(format!(
            "truncated data: the header declares {dims:?} {} = {nbytes} bytes, but only {} follow",
            ty.name(),
            bytes.len()
        )));
    }
    // Count what follows, but only so far: a gzip stream could inflate without end.
    let extra = io::copy(&mut (&mut r).take(TRAILING_SCAN), &mut io::sink()).map_err(io_err)?;
    if extra > 0 {
        return Err(malformed(format!(
            "{}{extra} trailing bytes after the {nbytes} data bytes of {dims:?} {}",
            if extra == TRAILING_SCAN {
                "at least "
            } else {
                ""
            },
            ty.name()
        )));
    }

    let data = match ty {
        IdxType::U8 => IdxData::U8(bytes),
        IdxType::I8 => IdxData::I8(bytes.iter().map(|&b| i8::from_be_bytes([b])).collect()),
        IdxType::I16 => IdxData::I16(decode(&bytes, i16::from_be_bytes)),
        IdxType::I32 => IdxData::I32(decode(&bytes, i32::from_be_bytes)),
        IdxType::F32 => IdxData::F32(decode(&bytes, f32::from_be_bytes)),
        IdxType::F64 => IdxData::F64(decode(&bytes, f64::from_be_bytes)),
    };
    Ok(IdxArray { dims, data })
}

/// Decodes big-endian elements of `N` bytes each.
fn decode<T, const N: usize>(bytes: &[u8], from_be: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| from_be(be(c))).collect()
}

/// Copies a slice of exactly `N` bytes into an array.
fn be<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(c);
    a
}

/// `bytes` as hex, `0x` first.
fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// A labelled image data set in MNIST layout: grey-scale images, each with a class 0–9.
///
/// Images are stored flat, one row per image: `images` is `[N, rows · cols]`, each row the
/// image's pixels in row-major order, scaled from bytes to `[0, 1]` (byte / 255). This is the
/// input a fully connected network takes; [`Mnist::images_nchw`] views the same memory as
/// `[N, 1, rows, cols]` for convolutional networks. MNIST and Fashion-MNIST have
/// `rows = cols = 28`.
///
/// The fields are public for convenience; the methods assume they still agree
/// (`images.nrows() == labels.len()`, `images.ncols() == rows * cols`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mnist {
    /// `[N, rows · cols]` pixels in `[0, 1]`, one image per row.
    pub images: Array2<f32>,
    /// The class of each image, each `< 10`.
    pub labels: Vec<u8>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

/// The training and test sets of a data set directory, read by [`Mnist::load_dir`].
#[derive(Clone, Debug, PartialEq)]
pub struct MnistSplits {
    /// From `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (60,000 for MNIST).
    pub train: Mnist,
    /// From `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (10,000 for MNIST).
    pub test: Mnist,
}

impl Mnist {
    /// Reads an images file and a labels file (each raw or gzip-compressed).
    ///
    /// The images file must be a 3-dimensional `u8` IDX array `[N, rows, cols]` (magic
    /// `0x00000803`) and the labels file a 1-dimensional `u8` array `[N]` (magic
    /// `0x00000801`), with the same `N > 0` and every label below 10.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be read; [`Error::Malformed`] if either is not valid IDX
    /// (see [`read_idx`]) or the two do not form a data set as above; the reason names the
    /// file.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use klrp::io::idx::Mnist;
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");
    /// let mnist = Mnist::from_files(
    ///     format!("{dir}/images.idx3-ubyte.gz"),
    ///     format!("{dir}/labels.idx1-ubyte.gz"),
    /// )?;
    /// let (train, test) = mnist.split_at(8_000)?;
    /// assert_eq!((train.len(), test.len()), (8_000, 2_000));
    /// assert_eq!(train.images.shape(), &[8_000, 784]);
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn from_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Self> {
        let (images, labels) = (images.as_ref(), labels.as_ref());
        Self::from_idx_named(
            read_idx_file(images)?,
            read_idx_file(labels)?,
            &images.display().to_string(),
            &labels.display().to_string(),
        )
    }

    /// Reads the training and test sets from a directory with the standard file names.
    ///
    /// Looks for `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each also with a `.gz` suffix
    /// or with `.idx` in place of `-idx` (`train-images.idx3-ubyte`), as distributed for
    /// MNIST and Fashion-MNIST.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (kind `NotFound`) naming the missing file if one of the four is absent;
    /// otherwise as [`Mnist::from_files`].
    ///
    /// # Example
    ///
    /// ```no_run
    /// use klrp::io::idx::Mnist;
    /// let splits = Mnist::load_dir("/data/fashion-mnist")?;
    /// assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<MnistSplits> {
        let dir = dir.as_ref();
        let load = |set: &str| -> Result<Mnist> {
            let images = find_file(dir, set, "images", "idx3")?;
            let labels = find_file(dir, set, "labels", "idx1")?;
            Mnist::from_files(images, labels)
        };
        Ok(MnistSplits {
            train: load("train")?,
            test: load("t10k")?,
        })
    }

    /// Builds a data set from an images array `[N, rows, cols]` and a labels array `[N]`.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] if either array is not `u8`, the images are not 3-dimensional with
    /// non-zero image size, the labels are not 1-dimensional, the counts differ or are zero, a
    /// label is 10 or more, or an array's `dims` disagree with its data.
    ///
    /// # Example
    ///
    /// ```
    /// use klrp::io::idx::{IdxArray, IdxData, Mnist};
    /// let images = IdxArray::new(vec![2, 1, 2], IdxData::U8(vec![0, 255, 51, 102]))?;
    /// let labels = IdxArray::new(vec![2], IdxData::U8(vec![3, 7]))?;
    /// let m = Mnist::from_idx(images, labels)?;
    /// assert_eq!(m.images.row(1).to_vec(), vec![0.2, 0.4]);
    /// assert_eq!(m.labels, vec![3, 7]);
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn from_idx(images: IdxArray, labels: IdxArray) -> Result<Self> {
        Self::from_idx_named(images, labels, "images", "labels")
    }

    fn from_idx_named(
        images: IdxArray,
        labels: IdxArray,
        images_name: &str,
        labels_name: &str,
    ) -> Result<Self> {
        let bad =
            |name: &str, reason: String| Error::malformed(FORMAT, format!("{name}: {reason}"));
        for (array, name) in [(&images, images_name), (&labels, labels_name)] {
            if element_count(&array.dims) != Some(array.len()) {
                return Err(bad(
                    name,
                    format!(
                        "dims {:?} disagree with {} elements",
                        array.dims,
                        array.len()
                    ),
                ));
            }
        }
        let (Some(pixels), Some(label_bytes)) = (images.as_u8(), labels.as_u8()) else {
            let (name, ty) = if images.as_u8().is_none() {
                (images_name, images.idx_type())
            } else {
                (labels_name, labels.idx_type())
            };
            return Err(bad(
                name,
                format!("expected u8 elements (type code 0x08), found {}", ty.name()),
            ));
        };
        let &[n, rows, cols] = images.dims.as_slice() else {
            return Err(bad(
                images_name,
                format!(
                    "expected images of shape [N, rows, cols], found dims {:?}",
                    images.dims
                ),
            ));
        };
        if rows == 0 || cols == 0 {
            return Err(bad(
                images_name,
                format!("images of {rows}×{cols} pixels are empty"),
            ));
        }
        if labels.dims.len() != 1 {
            return Err(bad(
                labels_name,
                format!("expected labels of shape [N], found dims {:?}", labels.dims),
            ));
        }
        if n != label_bytes.len() {
            return Err(bad(
                labels_name,
                format!(
                    "{} labels for {n} images in {images_name}",
                    label_bytes.len()
                ),
            ));
        }
        if n == 0 {
            return Err(bad(images_name, "contains no images".into()));
        }
        if let Some((i, &l)) = label_bytes.iter().enumerate().find(|&(_, &l)| l >= 10) {
            return Err(bad(
                labels_name,
                format!("label {l} at index {i} is not a class 0..=9"),
            ));
        }
        let scaled: Vec<f32> = pixels.iter().map(|&b| f32::from(b) / 255.0).collect();
        let images = Array2::from_shape_vec((n, rows * cols), scaled)
            .map_err(|e| bad(images_name, format!("cannot shape pixels: {e}")))?;
        Ok(Mnist {
            images,
            labels: label_bytes.to_vec(),
            rows,
            cols,
        })
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `index` as `[rows, cols]`, or `None` if `index >= len()` (or the fields disagree).
    pub fn image(&self, index: usize) -> Option<ArrayView2<'_, f32>> {
        if index >= self.images.nrows() {
            return None;
        }
        self.images
            .row(index)
            .into_shape_with_order((self.rows, self.cols))
            .ok()
    }

    /// All images as `[N, 1, rows, cols]` (channels first), without copying.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if the public fields have been changed so that `images` is not
    /// a standard-layout `[N, rows · cols]` array.
    pub fn images_nchw(&self) -> Result<ArrayView4<'_, f32>> {
        let n = self.images.nrows();
        self.images
            .view()
            .into_shape_with_order((n, 1, self.rows, self.cols))
            .map_err(|_| {
                Error::shape(
                    "Mnist::images_nchw",
                    &[n, self.rows * self.cols],
                    self.images.shape(),
                )
            })
    }

    /// How many images there are of each class 0..=9.
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// Splits into the first `at` images and the rest (for a train/test split).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `at > len()`; [`Error::ShapeMismatch`] if `images` and
    /// `labels` have different lengths.
    pub fn split_at(self, at: usize) -> Result<(Mnist, Mnist)> {
        if self.images.nrows() != self.labels.len() {
            return Err(Error::shape(
                "Mnist::split_at: images per label",
                &[self.labels.len()],
                &[self.images.nrows()],
            ));
        }
        if at > self.len() {
            return Err(Error::invalid(format!(
                "Mnist::split_at({at}) on a data set of {} images",
                self.len()
            )));
        }
        let (a, b) = self.images.view().split_at(Axis(0), at);
        let (la, lb) = self.labels.split_at(at);
        let part = |images: ArrayView2<'_, f32>, labels: &[u8]| Mnist {
            images: images.to_owned(),
            labels: labels.to_vec(),
            rows: self.rows,
            cols: self.cols,
        };
        Ok((part(a, la), part(b, lb)))
    }
}

/// Finds `{set}-{what}-{kind}-ubyte` in `dir`, with the accepted variants of the name.
fn find_file(dir: &Path, set: &str, what: &str, kind: &str) -> Result<PathBuf> {
    let stems = [
        format!("{set}-{what}-{kind}-ubyte"),
        format!("{set}-{what}.{kind}-ubyte"),
    ];
    for stem in &stems {
        for name in [stem.clone(), format!("{stem}.gz")] {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(Error::Io {
        path: dir.join(&stems[0]).display().to_string(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no {0} or {0}.gz (nor {1}[.gz]) in {2}",
                stems[0],
                stems[1],
                dir.display()
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};

    /// A raw IDX stream: header for `code` and `dims`, then `payload` as given.
    fn idx_bytes(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, code, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// The reason of a `Malformed` error, or a panic naming what came instead.
    fn malformed_reason(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::Malformed {
                format: "IDX",
                reason,
            }) => reason,
            other => panic!("expected Malformed IDX, got {other:?}"),
        }
    }

    fn u8_array(dims: &[usize], data: Vec<u8>) -> IdxArray {
        IdxArray::new(dims.to_vec(), IdxData::U8(data)).unwrap()
    }

    #[test]
    fn parses_u8_header_and_data() {
        let payload: Vec<u8> = (0..24).collect();
        let a = read_idx(&idx_bytes(0x08, &[2, 3, 4], &payload)[..]).unwrap();
        assert_eq!(a.dims, vec![2, 3, 4]);
        assert_eq!(a.idx_type(), IdxType::U8);
        assert_eq!(a.as_u8(), Some(&payload[..]));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn parses_every_type_big_endian() {
        let i8s = read_idx(&idx_bytes(0x09, &[2], &[0xff, 0x7f])[..]).unwrap();
        assert_eq!(i8s.data, IdxData::I8(vec![-1, 127]));
        let i16s = read_idx(&idx_bytes(0x0B, &[2], &[0x01, 0x02, 0xff, 0xfe])[..]).unwrap();
        assert_eq!(i16s.data, IdxData::I16(vec![0x0102, -2]));
        let i32s = read_idx(&idx_bytes(0x0C, &[1], &[0x80, 0, 0, 1])[..]).unwrap();
        assert_eq!(i32s.data, IdxData::I32(vec![i32::MIN + 1]));
        let f32s = read_idx(&idx_bytes(0x0D, &[1], &1.5f32.to_be_bytes())[..]).unwrap();
        assert_eq!(f32s.data, IdxData::F32(vec![1.5]));
        let f64s = read_idx(&idx_bytes(0x0E, &[1], &(-0.25f64).to_be_bytes())[..]).unwrap();
        assert_eq!(f64s.data, IdxData::F64(vec![-0.25]));
    }

    #[test]
    fn type_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(t) = IdxType::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
        let known: Vec<u8> = (0..=255)
            .filter(|&c| IdxType::from_code(c).is_some())
            .collect();
        assert_eq!(known, vec![0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]);
    }

    #[test]
    fn write_then_read_every_type() {
        let arrays = [
            IdxArray::new(vec![2, 2], IdxData::U8(vec![1, 2, 3, 255])).unwrap(),
            IdxArray::new(vec![3], IdxData::I8(vec![-128, 0, 127])).unwrap(),
            IdxArray::new(vec![1, 2], IdxData::I16(vec![-300, 300])).unwrap(),
            IdxArray::new(vec![2], IdxData::I32(vec![-70_000, 1 << 30])).unwrap(),
            IdxArray::new(vec![2], IdxData::F32(vec![f32::MIN_POSITIVE, -3.5])).unwrap(),
            IdxArray::new(vec![1], IdxData::F64(vec![std::f64::consts::PI])).unwrap(),
            IdxArray::new(vec![0, 5], IdxData::U8(vec![])).unwrap(),
        ];
        for a in arrays {
            let mut bytes = Vec::new();
            write_idx(&mut bytes, &a).unwrap();
            assert_eq!(
                bytes.len(),
                4 + 4 * a.dims.len() + a.len() * a.idx_type().size()
            );
            assert_eq!(read_idx(&bytes[..]).unwrap(), a);
            assert_eq!(read_idx(&gzip(&bytes)[..]).unwrap(), a);
        }
    }

    #[test]
    fn write_rejects_inconsistent_arrays() {
        let bad = IdxArray {
            dims: vec![2, 2],
            data: IdxData::U8(vec![0; 3]),
        };
        assert!(matches!(
            write_idx(Vec::new(), &bad),
            Err(Error::ShapeMismatch { .. })
        ));
        let no_dims = IdxArray {
            dims: vec![],
            data: IdxData::U8(vec![0]),
        };
        assert!(matches!(
            write_idx(Vec::new(), &no_dims),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn reads_gzip_and_raw_alike() {
        let raw = idx_bytes(0x08, &[3], &[4, 5, 6]);
        let a = read_idx(&raw[..]).unwrap();
        assert_eq!(read_idx(&gzip(&raw)[..]).unwrap(), a);
        // Concatenated gzip members are one stream.
        let (head, tail) = raw.split_at(5);
        let mut two = gzip(head);
        two.extend(gzip(tail));
        assert_eq!(read_idx(&two[..]).unwrap(), a);
    }

    #[test]
    fn empty_input() {
        assert!(malformed_reason(read_idx(&[][..])).contains("empty"));
        assert!(malformed_reason(read_idx(&gzip(&[])[..])).contains("empty"));
    }

    #[test]
    fn bad_magic() {
        let mut b = idx_bytes(0x08, &[1], &[0]);
        b[1] = 1;
        let reason = malformed_reason(read_idx(&b[..]));
        assert!(reason.contains("bad magic number 0x00010801"), "{reason}");
        // A one-byte input that is not zero is bad magic too, not just short.
        assert!(malformed_reason(read_idx(&[0x50][..])).contains("bad magic"));
        // Text, e.g. an HTML error page saved as a .gz.
        assert!(malformed_reason(read_idx(&b"<html>"[..])).contains("bad magic"));
    }

    #[test]
    fn truncated_magic_and_dims() {
        let reason = malformed_reason(read_idx(&[0, 0, 8][..]));
        assert!(reason.contains("truncated header"), "{reason}");
        let b = idx_bytes(0x08, &[3, 4], &[]);
        let reason = malformed_reason(read_idx(&b[..b.len() - 1]));
        assert!(reason.contains("truncated header"), "{reason}");
        assert!(reason.contains("need 8 bytes"), "{reason}");
    }

    #[test]
    fn unknown_type_code() {
        let reason = malformed_reason(read_idx(&idx_bytes(0x07, &[1], &[0])[..]));
        assert!(reason.contains("unknown type code 0x07"), "{reason}");
        let reason = malformed_reason(read_idx(&idx_bytes(0x0A, &[1], &[0])[..]));
        assert!(reason.contains("unknown type code 0x0a"), "{reason}");
    }

    #[test]
    fn zero_dimensions() {
        let reason = malformed_reason(read_idx(&idx_bytes(0x08, &[], &[7])[..]));
        assert!(reason.contains("zero dimensions"), "{reason}");
    }

    #[test]
    fn zero_sized_dimension_is_an_empty_array() {
        let a = read_idx(&idx_bytes(0x08, &[0, 28, 28], &[])[..]).unwrap();
        assert_eq!(a.dims, vec![0, 28, 28]);
        assert!(a.is_empty());
        // ...but then nothing may follow.
        let reason = malformed_reason(read_idx(&idx_bytes(0x08, &[0, 28, 28], &[1])[..]));
        assert!(reason.contains("1 trailing bytes"), "{reason}");
    }

    #[test]
    fn truncated_data() {
        let reason = malformed_reason(read_idx(&idx_bytes(0x08, &[2, 3], &[1, 2, 3, 4, 5])[..]));
        assert!(reason.contains("truncated data"), "{reason}");
        assert!(reason.contains("6 bytes, but only 5 follow"), "{reason}");
        // Multi-byte types count bytes, not elements.
        let reason = malformed_reason(read_idx(&idx_bytes(0x0E, &[2], &[0; 15])[..]));
        assert!(reason.contains("16 bytes, but only 15 follow"), "{reason}");
    }

    #[test]
    fn absurd_header_is_truncation_not_allocation() {
        // Claims (2^32 - 1)^2 bytes ≈ 16 EiB (fits a 64-bit usize) and holds 3: above the
        // default element limit, so refused from the header alone.
        let b = idx_bytes(0x08, &[u32::MAX, u32::MAX], &[1, 2, 3]);
        let claimed = u128::from(u32::MAX) * u128::from(u32::MAX);
        for input in [b.clone(), gzip(&b)] {
            match read_idx(&input[..]) {
                Err(Error::TooLarge {
                    requested, limit, ..
                }) => {
                    assert_eq!(requested, claimed);
                    assert_eq!(limit, u128::from(DEFAULT_MAX_IDX_ELEMENTS));
                }
                other => panic!("expected TooLarge, got {other:?}"),
            }
        }
        // With no limit, a lying header is still only truncation, not an allocation.
        let reason = malformed_reason(read_idx_with_max_elements(&b[..], u64::MAX));
        assert!(reason.contains("truncated data"), "{reason}");
        assert!(reason.contains("only 3 follow"), "{reason}");
        // The same through gzip.
        let reason = malformed_reason(read_idx_with_max_elements(&gzip(&b)[..], u64::MAX));
        assert!(reason.contains("only 3 follow"), "{reason}");
    }

    #[test]
    fn dims_product_overflow() {
        let b = idx_bytes(0x08, &[u32::MAX, u32::MAX, u32::MAX], &[0]);
        let reason = malformed_reason(read_idx(&b[..]));
        assert!(
            reason.contains("more bytes than usize can count"),
            "{reason}"
        );
        // Overflow only once multiplied by the element size (on 64-bit targets).
        if usize::BITS == 64 {
            let b = idx_bytes(0x0E, &[u32::MAX, u32::MAX], &[0]);
            let reason = malformed_reason(read_idx(&b[..]));
            assert!(
                reason.contains("more bytes than usize can count"),
                "{reason}"
            );
        }
    }

    #[test]
    fn trailing_bytes() {
        let reason = malformed_reason(read_idx(&idx_bytes(0x08, &[2], &[1, 2, 3, 4])[..]));
        assert!(
            reason.contains("2 trailing bytes after the 2 data bytes"),
            "{reason}"
        );
        let reason = malformed_reason(read_idx(&gzip(&idx_bytes(0x08, &[1], &[1, 2]))[..]));
        assert!(reason.contains("1 trailing bytes"), "{reason}");
    }

    #[test]
    fn gzip_garbage() {
        // A gzip magic number followed by garbage (a bad header).
        let mut garbage = GZIP_MAGIC.to_vec();
        garbage.extend((0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5));
        let reason = malformed_reason(read_idx(&garbage[..]));
        assert!(reason.contains("corrupt gzip stream"), "{reason}");
        // A gzip header that stops short.
        let reason = malformed_reason(read_idx(&[0x1f, 0x8b, 0xde, 0xad, 0xbe, 0xef][..]));
        assert!(reason.contains("corrupt gzip stream"), "{reason}");
        // A corrupted deflate body.
        let mut gz = gzip(&idx_bytes(0x08, &[64], &[9; 64]));
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0x55;
        assert!(matches!(
            read_idx(&gz[..]),
            Err(Error::Malformed { format: "IDX", .. })
        ));
        // A gzip stream cut short.
        let gz = gzip(&idx_bytes(
            0x08,
            &[1000],
            &(0..1000).map(|i| i as u8).collect::<Vec<_>>(),
        ));
        let reason = malformed_reason(read_idx(&gz[..gz.len() / 2]));
        assert!(
            reason.contains("corrupt gzip") || reason.contains("truncated"),
            "{reason}"
        );
        // Just the two magic bytes.
        assert!(matches!(
            read_idx(&GZIP_MAGIC[..]),
            Err(Error::Malformed { format: "IDX", .. })
        ));
    }

    #[test]
    fn reader_failure_is_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        match read_idx(Failing) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, "<reader>");
                assert_eq!(source.to_string(), "disk on fire");
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn missing_file_is_io_with_path() {
        match read_idx_file("/nonexistent/klrp/images.idx3-ubyte") {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, "/nonexistent/klrp/images.idx3-ubyte");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn mnist_from_idx_scales_and_shapes() {
        let pixels: Vec<u8> = (0..12).map(|i| i * 20).collect();
        let m =
            Mnist::from_idx(u8_array(&[3, 2, 2], pixels), u8_array(&[3], vec![0, 9, 4])).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m.rows, m.cols), (2, 2));
        assert_eq!(m.images.shape(), &[3, 4]);
        assert_eq!(m.images[[1, 3]], 140.0 / 255.0);
        assert_eq!(m.image(2).unwrap()[[1, 0]], 200.0 / 255.0);
        assert!(m.image(3).is_none());
        let nchw = m.images_nchw().unwrap();
        assert_eq!(nchw.shape(), &[3, 1, 2, 2]);
        assert_eq!(nchw[[2, 0, 1, 1]], 220.0 / 255.0);
        assert_eq!(m.class_counts(), [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
        let (a, b) = m.clone().split_at(1).unwrap();
        assert_eq!((a.len(), b.len()), (1, 2));
        assert_eq!(b.labels, vec![9, 4]);
        assert_eq!(b.images.row(0), m.images.row(1));
        assert!(matches!(m.split_at(4), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn mnist_count_mismatch() {
        let reason = malformed_reason(Mnist::from_idx(
            u8_array(&[3, 2, 2], vec![0; 12]),
            u8_array(&[2], vec![0, 1]),
        ));
        assert!(reason.contains("2 labels for 3 images"), "{reason}");
    }

    #[test]
    fn mnist_label_out_of_range() {
        let reason = malformed_reason(Mnist::from_idx(
            u8_array(&[3, 2, 2], vec![0; 12]),
            u8_array(&[3], vec![0, 1, 10]),
        ));
        assert!(reason.contains("label 10 at index 2"), "{reason}");
    }

    #[test]
    fn mnist_rejects_wrong_shapes_and_types() {
        let labels = || u8_array(&[2], vec![0, 1]);
        // Images not 3-D.
        let reason = malformed_reason(Mnist::from_idx(u8_array(&[2, 4], vec![0; 8]), labels()));
        assert!(reason.contains("[N, rows, cols]"), "{reason}");
        // Empty images.
        let reason = malformed_reason(Mnist::from_idx(u8_array(&[2, 0, 28], vec![]), labels()));
        assert!(reason.contains("empty"), "{reason}");
        // No images at all.
        let reason = malformed_reason(Mnist::from_idx(
            u8_array(&[0, 28, 28], vec![]),
            u8_array(&[0], vec![]),
        ));
        assert!(reason.contains("no images"), "{reason}");
        // Labels not 1-D.
        let reason = malformed_reason(Mnist::from_idx(
            u8_array(&[2, 1, 1], vec![0; 2]),
            u8_array(&[2, 1], vec![0, 1]),
        ));
        assert!(reason.contains("shape [N]"), "{reason}");
        // Float images.
        let f = IdxArray::new(vec![2, 1, 1], IdxData::F32(vec![0.0; 2])).unwrap();
        let reason = malformed_reason(Mnist::from_idx(f, labels()));
        assert!(
            reason.contains("expected u8") && reason.starts_with("images"),
            "{reason}"
        );
        // Public fields edited out of agreement.
        let broken = IdxArray {
            dims: vec![2, 2, 2],
            data: IdxData::U8(vec![0; 3]),
        };
        let reason = malformed_reason(Mnist::from_idx(broken, labels()));
        assert!(reason.contains("disagree"), "{reason}");
    }

    #[test]
    fn files_and_directories() {
        let dir = std::env::temp_dir().join(format!("klrp-idx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
        let imgs = |n: u32| idx_bytes(0x08, &[n, 2, 2], &vec![255; 4 * n as usize]);
        let lbls = |n: u32| {
            idx_bytes(
                0x08,
                &[n],
                &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>(),
            )
        };
        // Training set raw, test set gzip-compressed (named .gz), labels gzip without .gz.
        write("train-images-idx3-ubyte", &imgs(5));
        write("train-labels-idx1-ubyte", &lbls(5));
        write("t10k-images-idx3-ubyte.gz", &gzip(&imgs(3)));
        let missing = Mnist::load_dir(&dir);
        match missing {
            Err(Error::Io { path, source }) => {
                assert!(path.ends_with("t10k-labels-idx1-ubyte"), "{path}");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io NotFound, got {other:?}"),
        }
        write("t10k-labels.idx1-ubyte", &gzip(&lbls(3)));
        let splits = Mnist::load_dir(&dir).unwrap();
        assert_eq!((splits.train.len(), splits.test.len()), (5, 3));
        assert_eq!(splits.test.labels, vec![0, 1, 2]);
        assert!(splits.train.images.iter().all(|&p| p == 1.0));

        // Mismatched files name the labels file.
        let reason = malformed_reason(Mnist::from_files(
            dir.join("train-images-idx3-ubyte"),
            dir.join("t10k-labels.idx1-ubyte"),
        ));
        assert!(
            reason.contains("t10k-labels.idx1-ubyte: 3 labels for 5 images"),
            "{reason}"
        );
        // A malformed file is named too.
        write("bad", &idx_bytes(0x08, &[4], &[1]));
        let reason = malformed_reason(read_idx_file(dir.join("bad")));
        assert!(
            reason.starts_with(&dir.join("bad").display().to_string()),
            "{reason}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
