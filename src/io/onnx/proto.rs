//! A hand-written decoder for the subset of `onnx.proto` that a feed-forward model needs.
//!
//! Protocol buffers are a sequence of `(field number, wire type, value)` records; unknown fields
//! are skipped, so models written by newer exporters still decode. Every varint is limited to 10
//! bytes, every length is checked against the bytes that remain before anything is sliced or
//! allocated, and allocations are bounded by the input's size (a packed field of `n` bytes yields
//! at most `n` values). Nothing here panics on any input; errors are [`Error::Malformed`] with
//! format `"ONNX"`, naming the message and field.
//!
//! Decoded messages (field numbers from `onnx.proto`, IR version 10):
//!
//! | message | fields read |
//! |---|---|
//! | `ModelProto` | 1 `ir_version`, 2 `producer_name`, 3 `producer_version`, 7 `graph`, 8 `opset_import` |
//! | `OperatorSetIdProto` | 1 `domain`, 2 `version` |
//! | `GraphProto` | 1 `node`, 2 `name`, 5 `initializer`, 11 `input`, 12 `output`, 15 `sparse_initializer` (refused) |
//! | `NodeProto` | 1 `input`, 2 `output`, 3 `name`, 4 `op_type`, 5 `attribute`, 7 `domain` |
//! | `AttributeProto` | 1 `name`, 2 `f`, 3 `i`, 4 `s`, 5 `t`, 6 `g` (noted, not decoded), 7 `floats`, 8 `ints`, 20 `type` |
//! | `TensorProto` | 1 `dims`, 2 `data_type`, 3 `segment` (refused), 4 `float_data`, 5 `int32_data`, 7 `int64_data`, 8 `name`, 9 `raw_data`, 10 `double_data`, 11 `uint64_data`, 13 `external_data`, 14 `data_location` |
//! | `ValueInfoProto` | 1 `name`, 2 `type` → `TypeProto` 1 `tensor_type` → 1 `elem_type`, 2 `shape` → 1 `dim` → 1 `dim_value`, 2 `dim_param` |

use crate::error::{Error, Result};

/// The largest number of elements a tensor may declare (2³², 16 GiB of `f32`).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("ONNX", reason)
}

/// Protobuf wire types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A cursor over one message's bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(bad(format!("{}: truncated varint", self.what)));
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(bad(format!("{}: varint longer than 64 bits", self.what)));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(format!("{}: varint longer than 10 bytes", self.what)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(bad(format!(
                "{}: field of {n} bytes exceeds the {} bytes remaining",
                self.what,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn fixed32(&mut self) -> Result<[u8; 4]> {
        let b = self.take(4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }

    fn fixed64(&mut self) -> Result<[u8; 8]> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// A length-delimited field's bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or_else(|| {
                bad(format!(
                    "{}: length {len} exceeds the {} bytes remaining",
                    self.what,
                    self.remaining()
                ))
            })?;
        self.take(len)
    }

    fn string(&mut self, field: &str) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| bad(format!("{}: field {field} is not valid UTF-8", self.what)))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    pub(crate) fn field(&mut self) -> Result<Option<(u64, Wire)>> {
        if self.remaining() == 0 {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 {
            return Err(bad(format!("{}: field number 0", self.what)));
        }
        let wire = match key & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            5 => Wire::Fixed32,
            3 | 4 => {
                return Err(bad(format!(
                    "{}: field {number} uses the deprecated group encoding",
                    self.what
                )));
            }
            w => {
                return Err(bad(format!(
                    "{}: field {number} has invalid wire type {w}",
                    self.what
                )));
            }
        };
        Ok(Some((number, wire)))
    }

    /// Skips a field's value.
    pub(crate) fn skip(&mut self, wire: Wire) -> Result<()> {
        match wire {
            Wire::Varint => self.varint().map(drop),
            Wire::Fixed64 => self.take(8).map(drop),
            Wire::Len => self.bytes().map(drop),
            Wire::Fixed32 => self.take(4).map(drop),
        }
    }

    fn expect(&self, wire: Wire, want: Wire, field: &str) -> Result<()> {
        if wire == want {
            Ok(())
        } else {
            Err(bad(format!(
                "{}: field {field} has wire type {wire:?}, expected {want:?}",
                self.what
            )))
        }
    }

    /// An `int64`/`int32` varint (two's complement, not zig-zag).
    fn int(&mut self, wire: Wire, field: &str) -> Result<i64> {
        self.expect(wire, Wire::Varint, field)?;
        Ok(self.varint()? as i64)
    }

    fn float(&mut self, wire: Wire, field: &str) -> Result<f32> {
        self.expect(wire, Wire::Fixed32, field)?;
        Ok(f32::from_le_bytes(self.fixed32()?))
    }

    /// Appends a repeated varint field, packed or not.
    fn ints_into(&mut self, wire: Wire, out: &mut Vec<i64>, field: &str) -> Result<()> {
        match wire {
            Wire::Varint => out.push(self.varint()? as i64),
            Wire::Len => {
                let mut r = Reader::new(self.bytes()?, self.what);
                while r.remaining() > 0 {
                    out.push(r.varint()? as i64);
                }
            }
            _ => self.expect(wire, Wire::Varint, field)?,
        }
        Ok(())
    }

    /// Appends a repeated fixed32 field (`float`), packed or not.
    fn floats_into(&mut self, wire: Wire, out: &mut Vec<f32>, field: &str) -> Result<()> {
        match wire {
            Wire::Fixed32 => out.push(f32::from_le_bytes(self.fixed32()?)),
            Wire::Len => {
                let b = self.bytes()?;
                if b.len() % 4 != 0 {
                    return Err(bad(format!(
                        "{}: packed field {field} of {} bytes is not a multiple of 4",
                        self.what,
                        b.len()
                    )));
                }
                out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            _ => self.expect(wire, Wire::Fixed32, field)?,
        }
        Ok(())
    }

    /// Appends a repeated fixed64 field (`double`), packed or not.
    fn doubles_into(&mut self, wire: Wire, out: &mut Vec<f64>, field: &str) -> Result<()> {
        match wire {
            Wire::Fixed64 => out.push(f64::from_le_bytes(self.fixed64()?)),
            Wire::Len => {
                let b = self.bytes()?;
                if b.len() % 8 != 0 {
                    return Err(bad(format!(
                        "{}: packed field {field} of {} bytes is not a multiple of 8",
                        self.what,
                        b.len()
                    )));
                }
                out.extend(b.chunks_exact(8).map(|c| {
                    let mut a = [0; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a)
                }));
            }
            _ => self.expect(wire, Wire::Fixed64, field)?,
        }
        Ok(())
    }
}

/// `ModelProto`.
#[derive(Debug, Default)]
pub(crate) struct ModelProto<'a> {
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    pub opset_import: Vec<(String, i64)>,
    pub graph: Option<GraphProto<'a>>,
}

/// `GraphProto`.
#[derive(Debug, Default)]
pub(crate) struct GraphProto<'a> {
    pub name: String,
    pub nodes: Vec<NodeProto<'a>>,
    pub initializers: Vec<TensorProto<'a>>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub sparse_initializers: usize,
}

/// `NodeProto`.
#[derive(Debug, Default)]
pub(crate) struct NodeProto<'a> {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub attributes: Vec<AttributeProto<'a>>,
}

/// `AttributeProto` (the fields a feed-forward model uses).
#[derive(Debug, Default)]
pub(crate) struct AttributeProto<'a> {
    pub name: String,
    pub kind: i64,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<&'a [u8]>,
    pub t: Option<TensorProto<'a>>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub has_graph: bool,
}

/// `TensorProto`.
#[derive(Debug, Default)]
pub(crate) struct TensorProto<'a> {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i64,
    pub raw_data: Option<&'a [u8]>,
    pub float_data: Vec<f32>,
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<f64>,
    pub uint64_data: Vec<i64>,
    pub external: bool,
    /// The `external_data` entries (`location`, `offset`, `length`, …) as key-value pairs.
    pub external_data: Vec<(String, String)>,
    pub segmented: bool,
    pub has_string_data: bool,
}

/// A dimension of a `TensorShapeProto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dim {
    Value(i64),
    Param(String),
    Unknown,
}

/// `ValueInfoProto`, with the tensor type flattened in.
#[derive(Debug, Default)]
pub(crate) struct ValueInfo {
    pub name: String,
    pub elem_type: Option<i64>,
    pub shape: Option<Vec<Dim>>,
}

/// Decodes a `ModelProto`.
pub(crate) fn decode_model(bytes: &[u8]) -> Result<ModelProto<'_>> {
    let mut r = Reader::new(bytes, "ModelProto");
    let mut m = ModelProto::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => m.ir_version = r.int(w, "ir_version")?,
            2 => {
                r.expect(w, Wire::Len, "producer_name")?;
                m.producer_name = r.string("producer_name")?;
            }
            3 => {
                r.expect(w, Wire::Len, "producer_version")?;
                m.producer_version = r.string("producer_version")?;
            }
            7 => {
                r.expect(w, Wire::Len, "graph")?;
                if m.graph.is_some() {
                    return Err(bad("ModelProto: more than one graph"));
                }
                m.graph = Some(decode_graph(r.bytes()?)?);
            }
            8 => {
                r.expect(w, Wire::Len, "opset_import")?;
                m.opset_import.push(decode_opset(r.bytes()?)?);
            }
            _ => r.skip(w)?,
        }
    }
    Ok(m)
}

fn decode_opset(bytes: &[u8]) -> Result<(String, i64)> {
    let mut r = Reader::new(bytes, "OperatorSetIdProto");
    let (mut domain, mut version) = (String::new(), 0);
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                r.expect(w, Wire::Len, "domain")?;
                domain = r.string("domain")?;
            }
            2 => version = r.int(w, "version")?,
            _ => r.skip(w)?,
        }
    }
    Ok((domain, version))
}

fn decode_graph(bytes: &[u8]) -> Result<GraphProto<'_>> {
    let mut r = Reader::new(bytes, "GraphProto");
    let mut g = GraphProto::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                r.expect(w, Wire::Len, "node")?;
                g.nodes.push(decode_node(r.bytes()?)?);
            }
            2 => {
                r.expect(w, Wire::Len, "name")?;
                g.name = r.string("name")?;
            }
            5 => {
                r.expect(w, Wire::Len, "initializer")?;
                g.initializers.push(decode_tensor(r.bytes()?)?);
            }
            11 => {
                r.expect(w, Wire::Len, "input")?;
                g.inputs.push(decode_value_info(r.bytes()?)?);
            }
            12 => {
                r.expect(w, Wire::Len, "output")?;
                g.outputs.push(decode_value_info(r.bytes()?)?);
            }
            15 => {
                r.skip(w)?;
                g.sparse_initializers += 1;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(g)
}

fn decode_node(bytes: &[u8]) -> Result<NodeProto<'_>> {
    let mut r = Reader::new(bytes, "NodeProto");
    let mut node = NodeProto::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                r.expect(w, Wire::Len, "input")?;
                node.inputs.push(r.string("input")?);
            }
            2 => {
                r.expect(w, Wire::Len, "output")?;
                node.outputs.push(r.string("output")?);
            }
            3 => {
                r.expect(w, Wire::Len, "name")?;
                node.name = r.string("name")?;
            }
            4 => {
                r.expect(w, Wire::Len, "op_type")?;
                node.op_type = r.string("op_type")?;
            }
            5 => {
                r.expect(w, Wire::Len, "attribute")?;
                node.attributes.push(decode_attribute(r.bytes()?)?);
            }
            7 => {
                r.expect(w, Wire::Len, "domain")?;
                node.domain = r.string("domain")?;
            }
            _ => r.skip(w)?,
        }
    }
    Ok(node)
}

fn decode_attribute(bytes: &[u8]) -> Result<AttributeProto<'_>> {
    let mut r = Reader::new(bytes, "AttributeProto");
    let mut a = AttributeProto::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                r.expect(w, Wire::Len, "name")?;
                a.name = r.string("name")?;
            }
            2 => a.f = Some(r.float(w, "f")?),
            3 => a.i = Some(r.int(w, "i")?),
            4 => {
                r.expect(w, Wire::Len, "s")?;
                a.s = Some(r.bytes()?);
            }
            5 => {
                r.expect(w, Wire::Len, "t")?;
                a.t = Some(decode_tensor(r.bytes()?)?);
            }
            6 | 11 => {
                r.skip(w)?;
                a.has_graph = true;
            }
            7 => r.floats_into(w, &mut a.floats, "floats")?,
            8 => r.ints_into(w, &mut a.ints, "ints")?,
            20 => a.kind = r.int(w, "type")?,
            _ => r.skip(w)?,
        }
    }
    Ok(a)
}

fn decode_tensor(bytes: &[u8]) -> Result<TensorProto<'_>> {
    let mut r = Reader::new(bytes, "TensorProto");
    let mut t = TensorProto::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => r.ints_into(w, &mut t.dims, "dims")?,
            2 => t.data_type = r.int(w, "data_type")?,
            3 => {
                r.skip(w)?;
                t.segmented = true;
            }
            4 => r.floats_into(w, &mut t.float_data, "float_data")?,
            5 => r.ints_into(w, &mut t.int32_data, "int32_data")?,
            6 => {
                r.skip(w)?;
                t.has_string_data = true;
            }
            7 => r.ints_into(w, &mut t.int64_data, "int64_data")?,
            8 => {
                r.expect(w, Wire::Len, "name")?;
                t.name = r.string("name")?;
            }
            9 => {
                r.expect(w, Wire::Len, "raw_data")?;
                t.raw_data = Some(r.bytes()?);
            }
            10 => r.doubles_into(w, &mut t.double_data, "double_data")?,
            11 => r.ints_into(w, &mut t.uint64_data, "uint64_data")?,
            13 => {
                r.expect(w, Wire::Len, "external_data")?;
                let mut er = Reader::new(r.bytes()?, "StringStringEntryProto");
                let (mut key, mut value) = (String::new(), String::new());
                while let Some((n, w)) = er.field()? {
                    match n {
                        1 => {
                            er.expect(w, Wire::Len, "key")?;
                            key = er.string("key")?;
                        }
                        2 => {
                            er.expect(w, Wire::Len, "value")?;
                            value = er.string("value")?;
                        }
                        _ => er.skip(w)?,
                    }
                }
                t.external_data.push((key, value));
                t.external = true;
            }
            14 => {
                if r.int(w, "data_location")? == 1 {
                    t.external = true;
                }
            }
            _ => r.skip(w)?,
        }
    }
    Ok(t)
}

fn decode_value_info(bytes: &[u8]) -> Result<ValueInfo> {
    let mut r = Reader::new(bytes, "ValueInfoProto");
    let mut v = ValueInfo::default();
    while let Some((n, w)) = r.field()? {
        match n {
            1 => {
                r.expect(w, Wire::Len, "name")?;
                v.name = r.string("name")?;
            }
            2 => {
                r.expect(w, Wire::Len, "type")?;
                let mut tr = Reader::new(r.bytes()?, "TypeProto");
                while let Some((n, w)) = tr.field()? {
                    if n == 1 {
                        tr.expect(w, Wire::Len, "tensor_type")?;
                        decode_tensor_type(tr.bytes()?, &mut v)?;
                    } else {
                        tr.skip(w)?;
                    }
                }
            }
            _ => r.skip(w)?,
        }
    }
    Ok(v)
}

fn decode_tensor_type(bytes: &[u8], v: &mut ValueInfo) -> Result<()> {
    let mut r = Reader::new(bytes, "TypeProto.Tensor");
    while let Some((n, w)) = r.field()? {
        match n {
            1 => v.elem_type = Some(r.int(w, "elem_type")?),
            2 => {
                r.expect(w, Wire::Len, "shape")?;
                let mut sr = Reader::new(r.bytes()?, "TensorShapeProto");
                let mut dims = Vec::new();
                while let Some((n, w)) = sr.field()? {
                    if n != 1 {
                        sr.skip(w)?;
                        continue;
                    }
                    sr.expect(w, Wire::Len, "dim")?;
                    let mut dr = Reader::new(sr.bytes()?, "TensorShapeProto.Dimension");
                    let mut dim = Dim::Unknown;
                    while let Some((n, w)) = dr.field()? {
                        match n {
                            1 => dim = Dim::Value(dr.int(w, "dim_value")?),
                            2 => {
                                dr.expect(w, Wire::Len, "dim_param")?;
                                dim = Dim::Param(dr.string("dim_param")?);
                            }
                            _ => dr.skip(w)?,
                        }
                    }
                    dims.push(dim);
                }
                v.shape = Some(dims);
            }
            _ => r.skip(w)?,
        }
    }
    Ok(())
}

/// ONNX `TensorProto.DataType` codes used here.
pub(crate) mod dtype {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT8: i64 = 3;
    pub const UINT16: i64 = 4;
    pub const INT16: i64 = 5;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const STRING: i64 = 8;
    pub const BOOL: i64 = 9;
    pub const FLOAT16: i64 = 10;
    pub const DOUBLE: i64 = 11;
    pub const UINT32: i64 = 12;
    pub const UINT64: i64 = 13;
    pub const BFLOAT16: i64 = 16;

    /// A readable name for a data type code.
    pub fn name(code: i64) -> String {
        match code {
            FLOAT => "float32".into(),
            UINT8 => "uint8".into(),
            INT8 => "int8".into(),
            UINT16 => "uint16".into(),
            INT16 => "int16".into(),
            INT32 => "int32".into(),
            INT64 => "int64".into(),
            STRING => "string".into(),
            BOOL => "bool".into(),
            FLOAT16 => "float16".into(),
            DOUBLE => "float64".into(),
            UINT32 => "uint32".into(),
            UINT64 => "uint64".into(),
            BFLOAT16 => "bfloat16".into(),
            other => format!("data type {other}"),
        }
    }
}

/// The values of a decoded tensor: floats or integers (what shape computations need).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// `f16` bits to `f32`.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalise
            let shift = f.leading_zeros() - 21; // f has at most 10 significant bits
            let f = (f << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (f << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, f) => sign | 0x7fc0_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// `bf16` bits to `f32`.
pub(crate) fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

impl TensorProto<'_> {
    /// The dims as sizes, checked non-negative and within [`MAX_TENSOR_ELEMENTS`].
    pub(crate) fn shape(&self) -> Result<Vec<usize>> {
        let mut count: u64 = 1;
        let mut shape = Vec::with_capacity(self.dims.len());
        for &d in &self.dims {
            let d = u64::try_from(d).map_err(|_| {
                bad(format!(
                    "tensor '{}' has a negative dimension {d}",
                    self.name
                ))
            })?;
            count = count.saturating_mul(d);
            if count > MAX_TENSOR_ELEMENTS {
                return Err(Error::TooLarge {
                    what: format!("ONNX tensor '{}'", self.name),
                    requested: u128::from(count),
                    limit: u128::from(MAX_TENSOR_ELEMENTS),
                });
            }
            shape.push(d as usize);
        }
        Ok(shape)
    }

    /// Decodes the tensor's values (from `raw_data` or the typed fields), checking that their
    /// count matches the dims.
    pub(crate) fn values(&self) -> Result<(Vec<usize>, Values)> {
        self.values_from(None)
    }

    /// [`values`](Self::values), with `external` as the tensor's bytes read from its external
    /// data file (`None`: refuse external data).
    pub(crate) fn values_from(&self, external: Option<&[u8]>) -> Result<(Vec<usize>, Values)> {
        let name = &self.name;
        if self.external && external.is_none() {
            return Err(Error::Unsupported(format!(
                "ONNX tensor '{name}' keeps its data in an external file, which only a model \
                 loaded from a file (load_onnx_file) can read; or save the model with everything \
                 in one file (onnx.save_model(model, path, save_as_external_data=False))"
            )));
        }
        if self.segmented {
            return Err(Error::Unsupported(format!(
                "ONNX tensor '{name}' is segmented"
            )));
        }
        let shape = self.shape()?;
        let count: usize = shape.iter().product();
        let values = if let Some(raw) = external.or(self.raw_data) {
            let width = match self.data_type {
                dtype::FLOAT | dtype::INT32 | dtype::UINT32 => 4,
                dtype::DOUBLE | dtype::INT64 | dtype::UINT64 => 8,
                dtype::FLOAT16 | dtype::BFLOAT16 | dtype::INT16 | dtype::UINT16 => 2,
                dtype::INT8 | dtype::UINT8 | dtype::BOOL => 1,
                other => {
                    return Err(Error::Unsupported(format!(
                        "ONNX tensor '{name}' has type {}",
                        dtype::name(other)
                    )));
                }
            };
            if Some(raw.len()) != count.checked_mul(width) {
                return Err(bad(format!(
                    "tensor '{name}' of shape {shape:?} ({}) needs {} bytes of raw_data, found {}",
                    dtype::name(self.data_type),
                    count.saturating_mul(width),
                    raw.len()
                )));
            }
            decode_raw(raw, self.data_type)
        } else {
            let v = match self.data_type {
                dtype::FLOAT => Values::F32(self.float_data.clone()),
                dtype::DOUBLE => Values::F32(self.double_data.iter().map(|&x| x as f32).collect()),
                dtype::FLOAT16 => Values::F32(
                    self.int32_data
                        .iter()
                        .map(|&x| f16_to_f32(x as u16))
                        .collect(),
                ),
                dtype::BFLOAT16 => Values::F32(
                    self.int32_data
                        .iter()
                        .map(|&x| bf16_to_f32(x as u16))
                        .collect(),
                ),
                dtype::INT64 => Values::I64(self.int64_data.clone()),
                dtype::INT32
                | dtype::INT16
                | dtype::INT8
                | dtype::UINT16
                | dtype::UINT8
                | dtype::BOOL => Values::I64(self.int32_data.clone()),
                dtype::UINT32 | dtype::UINT64 => Values::I64(self.uint64_data.clone()),
                other => {
                    return Err(Error::Unsupported(format!(
                        "ONNX tensor '{name}' has type {}",
                        dtype::name(other)
                    )));
                }
            };
            let len = match &v {
                Values::F32(x) => x.len(),
                Values::I64(x) => x.len(),
            };
            if len != count {
                return Err(bad(format!(
                    "tensor '{name}' of shape {shape:?} needs {count} values, found {len}"
                )));
            }
            v
        };
        Ok((shape, values))
    }
}

fn decode_raw(raw: &[u8], data_type: i64) -> Values {
    let f32s = |f: fn(&[u8]) -> f32, w: usize| Values::F32(raw.chunks_exact(w).map(f).collect());
    let i64s = |f: fn(&[u8]) -> i64, w: usize| Values::I64(raw.chunks_exact(w).map(f).collect());
    match data_type {
        dtype::FLOAT => f32s(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]), 4),
        dtype::DOUBLE => f32s(
            |c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
            8,
        ),
        dtype::FLOAT16 => f32s(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])), 2),
        dtype::BFLOAT16 => f32s(|c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])), 2),
        dtype::INT64 | dtype::UINT64 => i64s(
            |c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            8,
        ),
        dtype::INT32 => i64s(
            |c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            4,
        ),
        dtype::UINT32 => i64s(
            |c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            4,
        ),
        dtype::INT16 => i64s(|c| i64::from(i16::from_le_bytes([c[0], c[1]])), 2),
        dtype::UINT16 => i64s(|c| i64::from(u16::from_le_bytes([c[0], c[1]])), 2),
        dtype::INT8 => i64s(|c| i64::from(c[0] as i8), 1),
        _ => i64s(|c| i64::from(c[0]), 1), // UINT8, BOOL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_bounded() {
        let mut r = Reader::new(&[0x96, 0x01], "t");
        assert_eq!(r.varint().unwrap(), 150);
        let mut r = Reader::new(&[0xff; 11], "t");
        assert!(r.varint().is_err());
        let mut r = Reader::new(&[0x80], "t");
        assert!(r.varint().is_err());
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max, "t").varint().unwrap(), u64::MAX);
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over, "t").varint().is_err());
    }

    #[test]
    fn lengths_are_checked() {
        // field 7 (graph), length 100, but only 2 bytes follow
        let bytes = [0x3a, 100, 0, 0];
        let e = decode_model(&bytes).unwrap_err().to_string();
        assert!(e.contains("exceeds"), "{e}");
        // absurd length (2^63)
        let bytes = [
            0x3a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        assert!(decode_model(&bytes).is_err());
    }

    #[test]
    fn groups_and_bad_wire_types_are_errors() {
        assert!(decode_model(&[0x0b]).is_err()); // field 1, wire 3
        assert!(decode_model(&[0x0e]).is_err()); // field 1, wire 6
        assert!(decode_model(&[0x00]).is_err()); // field 0
    }

    #[test]
    fn half_floats_convert() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    #[test]
    fn tensor_sizes_are_checked() {
        let t = TensorProto {
            name: "w".into(),
            dims: vec![1 << 20, 1 << 20],
            data_type: dtype::FLOAT,
            ..Default::default()
        };
        assert!(matches!(t.values(), Err(Error::TooLarge { .. })));
        let t = TensorProto {
            name: "w".into(),
            dims: vec![2, 2],
            data_type: dtype::FLOAT,
            raw_data: Some(&[0; 12]),
            ..Default::default()
        };
        assert!(t.values().unwrap_err().to_string().contains("16 bytes"));
        let t = TensorProto {
            name: "w".into(),
            dims: vec![-1],
            data_type: dtype::FLOAT,
            ..Default::default()
        };
        assert!(t.values().is_err());
    }
}
