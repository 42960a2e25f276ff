//! ONNX models as protobuf messages: decoded by [`prost`] into types generated from
//! `onnx.proto`, then gathered into the few fields a feed-forward model needs.
//!
//! `generated.rs` is written by `tools/onnx-proto` (protox + prost-build, pure Rust, from the
//! `onnx.proto` of onnx 1.23.2 checked in there) and checked in, so building klrp needs no
//! `protoc`. prost checks every varint, length and wire type against the bytes that remain, skips
//! unknown fields (models written by newer exporters still decode) and limits nesting to 100
//! messages; its errors become [`Error::Malformed`] with format `"ONNX"`, naming the message and
//! field. `bytes` fields (`raw_data`, string attributes) are [`Bytes`]: decoded from an owned
//! buffer ([`decode_model_owned`]) they share the file's bytes instead of copying them.
//!
//! Fields gathered (field numbers from `onnx.proto`):
//!
//! | message | fields read |
//! |---|---|
//! | `ModelProto` | 1 `ir_version`, 2 `producer_name`, 3 `producer_version`, 7 `graph`, 8 `opset_import`, 14 `metadata_props` |
//! | `StringStringEntryProto` | 1 `key`, 2 `value` |
//! | `OperatorSetIdProto` | 1 `domain`, 2 `version` |
//! | `GraphProto` | 1 `node`, 2 `name`, 5 `initializer`, 11 `input`, 12 `output`, 15 `sparse_initializer` (refused) |
//! | `NodeProto` | 1 `input`, 2 `output`, 3 `name`, 4 `op_type`, 5 `attribute`, 7 `domain` |
//! | `AttributeProto` | 1 `name`, 2 `f`, 3 `i`, 4 `s`, 5 `t`, 6 `g` and 11 `graphs` (noted), 7 `floats`, 8 `ints`, 20 `type` |
//! | `TensorProto` | 1 `dims`, 2 `data_type`, 3 `segment` (refused), 4 `float_data`, 5 `int32_data`, 6 `string_data` (noted), 7 `int64_data`, 8 `name`, 9 `raw_data`, 10 `double_data`, 11 `uint64_data`, 13 `external_data`, 14 `data_location` |
//! | `ValueInfoProto` | 1 `name`, 2 `type` → `TypeProto` 1 `tensor_type` → 1 `elem_type`, 2 `shape` → 1 `dim` → 1 `dim_value`, 2 `dim_param` |

use crate::error::{Error, Result};
use bytes::Bytes;
use prost::Message;

/// The types `prost-build` generated from `onnx.proto` (package `onnx`).
#[allow(
    dead_code,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    rustdoc::all,
    unreachable_pub
)]
#[path = "generated.rs"]
mod generated;
use generated as pb;

/// The largest number of elements a tensor may declare (2³², 16 GiB of `f32`).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("ONNX", reason)
}

/// prost's decoding error as klrp's, saying what a buffer underflow means.
fn decode_error(e: &prost::DecodeError) -> Error {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    if text.contains("buffer underflow") || text.contains("delimited length exceeded") {
        bad(format!(
            "{text} (a field's length exceeds the bytes remaining)"
        ))
    } else {
        bad(text)
    }
}

/// `ModelProto`.
#[derive(Debug, Default)]
pub(crate) struct ModelProto {
    #[allow(dead_code)] // gathered for the importer, which does not read it (yet)
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    pub opset_import: Vec<(String, i64)>,
    pub graph: Option<GraphProto>,
    /// `metadata_props`, in the file's order (a key given twice keeps its last value).
    pub metadata: Vec<(String, String)>,
}

/// `GraphProto`.
#[derive(Debug, Default)]
pub(crate) struct GraphProto {
    #[allow(dead_code)] // gathered for the importer, which does not read it (yet)
    pub name: String,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub sparse_initializers: usize,
}

/// `NodeProto`.
#[derive(Debug, Default)]
pub(crate) struct NodeProto {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub attributes: Vec<AttributeProto>,
}

/// `AttributeProto` (the fields a feed-forward model uses).
#[derive(Debug, Default)]
pub(crate) struct AttributeProto {
    pub name: String,
    #[allow(dead_code)] // gathered for the importer, which does not read it (yet)
    pub kind: i64,
    pub f: Option<f32>,
    pub i: Option<i64>,
    pub s: Option<Bytes>,
    pub t: Option<TensorProto>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    #[allow(dead_code)] // gathered for the importer, which does not read it (yet)
    pub has_graph: bool,
}

/// `TensorProto`.
#[derive(Debug, Default)]
pub(crate) struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: i64,
    pub raw_data: Option<Bytes>,
    pub float_data: Vec<f32>,
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<f64>,
    pub uint64_data: Vec<i64>,
    pub external: bool,
    /// The `external_data` entries (`location`, `offset`, `length`, …) as key-value pairs.
    pub external_data: Vec<(String, String)>,
    pub segmented: bool,
    #[allow(dead_code)] // gathered for the importer, which does not read it (yet)
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

/// Decodes a `ModelProto` from borrowed bytes (`bytes` fields are copied out of them).
pub(crate) fn decode_model(bytes: &[u8]) -> Result<ModelProto> {
    pb::ModelProto::decode(bytes)
        .map(ModelProto::from)
        .map_err(|e| decode_error(&e))
}

/// Decodes a `ModelProto` from owned bytes (`raw_data` and string attributes share them).
pub(crate) fn decode_model_owned(bytes: Vec<u8>) -> Result<ModelProto> {
    pb::ModelProto::decode(Bytes::from(bytes))
        .map(ModelProto::from)
        .map_err(|e| decode_error(&e))
}

impl From<pb::ModelProto> for ModelProto {
    fn from(m: pb::ModelProto) -> Self {
        ModelProto {
            ir_version: m.ir_version.unwrap_or(0),
            producer_name: m.producer_name.unwrap_or_default(),
            producer_version: m.producer_version.unwrap_or_default(),
            opset_import: m
                .opset_import
                .into_iter()
                .map(|o| (o.domain.unwrap_or_default(), o.version.unwrap_or(0)))
                .collect(),
            graph: m.graph.map(GraphProto::from),
            metadata: m
                .metadata_props
                .into_iter()
                .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
                .collect(),
        }
    }
}

impl From<pb::GraphProto> for GraphProto {
    fn from(g: pb::GraphProto) -> Self {
        GraphProto {
            name: g.name.unwrap_or_default(),
            nodes: g.node.into_iter().map(NodeProto::from).collect(),
            initializers: g.initializer.into_iter().map(TensorProto::from).collect(),
            inputs: g.input.into_iter().map(ValueInfo::from).collect(),
            outputs: g.output.into_iter().map(ValueInfo::from).collect(),
            sparse_initializers: g.sparse_initializer.len(),
        }
    }
}

impl From<pb::NodeProto> for NodeProto {
    fn from(n: pb::NodeProto) -> Self {
        NodeProto {
            inputs: n.input,
            outputs: n.output,
            name: n.name.unwrap_or_default(),
            op_type: n.op_type.unwrap_or_default(),
            domain: n.domain.unwrap_or_default(),
            attributes: n.attribute.into_iter().map(AttributeProto::from).collect(),
        }
    }
}

impl From<pb::AttributeProto> for AttributeProto {
    fn from(a: pb::AttributeProto) -> Self {
        AttributeProto {
            name: a.name.unwrap_or_default(),
            kind: i64::from(a.r#type.unwrap_or(0)),
            f: a.f,
            i: a.i,
            s: a.s,
            t: a.t.map(TensorProto::from),
            floats: a.floats,
            ints: a.ints,
            has_graph: a.g.is_some() || !a.graphs.is_empty(),
        }
    }
}

impl From<pb::TensorProto> for TensorProto {
    fn from(t: pb::TensorProto) -> Self {
        TensorProto {
            name: t.name.unwrap_or_default(),
            dims: t.dims,
            data_type: i64::from(t.data_type.unwrap_or(0)),
            raw_data: t.raw_data,
            float_data: t.float_data,
            int32_data: t.int32_data.into_iter().map(i64::from).collect(),
            int64_data: t.int64_data,
            double_data: t.double_data,
            // Reinterpreted, as the hand-written decoder did (shape computations take i64).
            uint64_data: t.uint64_data.into_iter().map(|x| x as i64).collect(),
            external: !t.external_data.is_empty() || t.data_location == Some(1),
            external_data: t
                .external_data
                .into_iter()
                .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
                .collect(),
            segmented: t.segment.is_some(),
            has_string_data: !t.string_data.is_empty(),
        }
    }
}

impl From<pb::ValueInfoProto> for ValueInfo {
    fn from(v: pb::ValueInfoProto) -> Self {
        use pb::tensor_shape_proto::dimension::Value as DimValue;
        use pb::type_proto::Value as Type;
        let tensor = match v.r#type.and_then(|t| t.value) {
            Some(Type::TensorType(t)) => Some(t),
            _ => None,
        };
        let (elem_type, shape) = match tensor {
            Some(t) => (
                t.elem_type.map(i64::from),
                t.shape.map(|s| {
                    s.dim
                        .into_iter()
                        .map(|d| match d.value {
                            Some(DimValue::DimValue(v)) => Dim::Value(v),
                            Some(DimValue::DimParam(p)) => Dim::Param(p),
                            None => Dim::Unknown,
                        })
                        .collect()
                }),
            ),
            None => (None, None),
        };
        ValueInfo {
            name: v.name.unwrap_or_default(),
            elem_type,
            shape,
        }
    }
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

impl TensorProto {
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
        let values = if let Some(raw) = external.or(self.raw_data.as_deref()) {
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

    /// A model whose graph has one node with an attribute, one raw initializer, and an input
    /// with a fixed, a symbolic and an unknown dimension; plus fields klrp does not read.
    fn sample_model() -> pb::ModelProto {
        use pb::tensor_shape_proto::{Dimension, dimension::Value as DimValue};
        let dim = |value| Dimension {
            value,
            ..Default::default()
        };
        let input = pb::ValueInfoProto {
            name: Some("x".into()),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: Some(1),
                    shape: Some(pb::TensorShapeProto {
                        dim: vec![
                            dim(Some(DimValue::DimValue(4))),
                            dim(Some(DimValue::DimParam("N".into()))),
                            dim(None),
                        ],
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let weight = pb::TensorProto {
            name: Some("w".into()),
            dims: vec![2],
            data_type: Some(dtype::FLOAT as i32),
            raw_data: Some(Bytes::from([1.5f32, -2.0].map(f32::to_le_bytes).concat())),
            doc_string: Some("not read".into()),
            ..Default::default()
        };
        let node = pb::NodeProto {
            input: vec!["x".into(), "w".into()],
            output: vec!["y".into()],
            op_type: Some("Mul".into()),
            attribute: vec![pb::AttributeProto {
                name: Some("mode".into()),
                s: Some(Bytes::from_static(b"fast")),
                ints: vec![1, -2],
                r#type: Some(3),
                ..Default::default()
            }],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: Some(8),
            producer_name: Some("klrp-test".into()),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(13),
            }],
            graph: Some(pb::GraphProto {
                node: vec![node],
                initializer: vec![weight],
                input: vec![input],
                doc_string: Some("not read".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn messages_are_gathered_into_the_importers_fields() {
        let bytes = sample_model().encode_to_vec();
        let m = decode_model(&bytes).unwrap();
        assert_eq!((m.ir_version, m.producer_name.as_str()), (8, "klrp-test"));
        assert_eq!(m.opset_import, [(String::new(), 13)]);
        let g = m.graph.unwrap();
        let node = &g.nodes[0];
        assert_eq!((node.op_type.as_str(), node.inputs.len()), ("Mul", 2));
        let a = &node.attributes[0];
        assert_eq!((a.name.as_str(), a.kind), ("mode", 3));
        assert_eq!(
            (a.s.as_deref(), a.ints.as_slice()),
            (Some(&b"fast"[..]), &[1, -2][..])
        );
        let (shape, values) = g.initializers[0].values().unwrap();
        assert_eq!((shape, values), (vec![2], Values::F32(vec![1.5, -2.0])));
        let input = &g.inputs[0];
        assert_eq!(input.elem_type, Some(1));
        let dims = [Dim::Value(4), Dim::Param("N".into()), Dim::Unknown];
        assert_eq!(input.shape.as_deref(), Some(&dims[..]));
    }

    #[test]
    fn owned_bytes_are_shared_not_copied() {
        let bytes = sample_model().encode_to_vec();
        let range = bytes.as_ptr_range();
        let m = decode_model_owned(bytes).unwrap();
        let raw = m.graph.unwrap().initializers[0].raw_data.clone().unwrap();
        assert_eq!(raw.len(), 8);
        assert!(range.contains(&raw.as_ptr()), "raw_data was copied");
    }

    #[test]
    fn what_the_importer_refuses_is_noted() {
        let mut m = sample_model();
        let g = m.graph.as_mut().unwrap();
        g.sparse_initializer.push(pb::SparseTensorProto::default());
        g.node[0].attribute[0]
            .graphs
            .push(pb::GraphProto::default());
        let t = &mut g.initializer[0];
        t.data_location = Some(1);
        t.segment = Some(pb::tensor_proto::Segment::default());
        t.string_data.push(Bytes::from_static(b"s"));
        let g = decode_model(&m.encode_to_vec()).unwrap().graph.unwrap();
        assert_eq!(g.sparse_initializers, 1);
        assert!(g.nodes[0].attributes[0].has_graph);
        let t = &g.initializers[0];
        assert!(t.external && t.segmented && t.has_string_data);
        assert!(matches!(t.values(), Err(Error::Unsupported(m)) if m.contains("external")));
    }

    #[test]
    fn decoding_errors_name_the_field() {
        let mut bytes = sample_model().encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        let e = decode_model(&bytes).unwrap_err().to_string();
        assert!(e.starts_with("malformed ONNX"), "{e}");
        assert!(e.contains("ModelProto."), "{e}");
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
            raw_data: Some(Bytes::from_static(&[0; 12])),
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
