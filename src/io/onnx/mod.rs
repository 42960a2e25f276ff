//! ONNX import: feed-forward (sequential) graphs as a [`Network`].
//!
//! ```no_run
//! use klrp::io::onnx::load_onnx_file;
//! let model = load_onnx_file("model.onnx")?;
//! for node in model.nodes() {
//!     println!("{:>3} {} ({})", node.index, node.name, node.op_type);
//! }
//! let net = model.into_network().canonize()?; // fuses BatchNormalization into the layer before
//! # Ok::<(), klrp::Error>(())
//! ```
//!
//! # Index mapping: one ONNX node, one layer
//!
//! Node `i` of the graph (in the file's order, which ONNX requires to be topological) becomes layer
//! `i` of the [`Network`], **every node counted**, so the layer indices that
//! [`PerLayer`](crate::PerLayer) and [`Composite::with_layer`](crate::Composite::with_layer) take
//! are the graph's node indices. Nodes that do not transform the running activation become an
//! [`IdentityLayer`] at their index:
//!
//! - `Constant` nodes and shape computations (`Shape`, `Gather`, `Unsqueeze`, `Squeeze`, `Concat`,
//!   `Slice`, `Cast` and `Identity` on constants), which are evaluated at import;
//! - an `Add` that adds a constant bias to the output of the `MatMul`, `Gemm` or `Conv` right
//!   before it: the bias goes into that layer and the `Add` becomes an identity;
//! - `Identity`, `Dropout` on the activation (`Dropout` stays a [`Dropout`] layer);
//! - a trailing `Softmax`/`LogSoftmax`, ignored: LRP explains the logits.
//!
//! [`OnnxModel::nodes`] lists the nodes with their role.
//!
//! # Supported subset
//!
//! `Conv` (2-D, symmetric padding, any stride, dilation and group count), `Gemm` (`transA = 0`),
//! `MatMul` with a constant right operand, `Add` of a constant bias after them, `Relu`, `MaxPool`
//! and `AveragePool` (2-D, symmetric padding, `ceil_mode = 0`, dilation 1), `GlobalAveragePool`,
//! `Flatten` (axis 1), `Reshape` to `[N, -1]` (imported as [`Flatten`]), `BatchNormalization`
//! (inference mode, kept as [`BatchNorm2d`] for [`Network::canonize`] to fuse), `Dropout`,
//! `Identity`, a trailing `Softmax`/`LogSoftmax`. `auto_pad` may be `NOTSET` or `VALID`.
//! Weights come from initializers (stored as `raw_data` or the typed fields, `float32`, `float64`,
//! `float16` or `bfloat16`) or `Constant` nodes. Anything else is an [`Error::Unsupported`]
//! naming the node and its op type; a malformed file is an [`Error::Malformed`]. Tensors in
//! external data files are refused.
//!
//! The graph's single non-initializer input gives the sample shape (its first axis is the batch,
//! fixed or symbolic; the others must be fixed). The network accepts any batch size.
//!
//! # Why a hand-written protobuf decoder
//!
//! The few messages needed (model, graph, node, attribute, tensor, value info) take a few hundred
//! lines to decode (see `proto.rs`). Generated code (prost + prost-build or protobuf-codegen)
//! would need `protoc` or a build script and several dependencies at build time, and would decode
//! the whole schema; the hand-written decoder has no dependencies, borrows tensor bytes straight
//! from the file, bounds-checks every varint and length, and is easy to fuzz: [`parse_onnx`]
//! takes any byte slice and returns an error, never panics.

mod proto;

use crate::error::{Error, Result};
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, ChannelAffine, Conv2d, Dense, Dropout, Flatten,
    IdentityLayer, Layer, LayerKind, MaxPool2d, ReLU,
};
use crate::network::Network;
use ndarray::{Array1, Array2, Array4};
use proto::{AttributeProto, Dim, GraphProto, NodeProto, Values, dtype};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

pub use proto::MAX_TENSOR_ELEMENTS;
pub(crate) use proto::f16_to_f32;

/// The batch dimension inside constant shape tensors (from `Shape` of the activation).
const BATCH: i64 = i64::MIN;

/// An imported ONNX model: the [`Network`] and how the graph's nodes map to its layers.
#[derive(Debug)]
pub struct OnnxModel {
    network: Network,
    nodes: Vec<OnnxNode>,
    input_name: String,
    output_name: String,
    declared_batch: Option<usize>,
    opset: Option<i64>,
    producer: String,
}

/// One ONNX node and the layer it became (layer index = node index).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxNode {
    /// The node's index in the graph, which is also its layer's index in the network.
    pub index: usize,
    /// The node's name (may be empty in the file; then `op_type` and the index identify it).
    pub name: String,
    /// The ONNX operator.
    pub op_type: String,
    /// Why the node became an identity layer (`"constant"`, `"shape computation"`,
    /// `"bias of layer 3"`, …); `None` for nodes that are layers in their own right.
    pub note: Option<String>,
}

impl OnnxModel {
    /// The imported network (normalisations not yet fused: call [`Network::canonize`]).
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Consumes the model, returning the network.
    pub fn into_network(self) -> Network {
        self.network
    }

    /// The graph's nodes in order; `nodes()[i]` became layer `i`.
    pub fn nodes(&self) -> &[OnnxNode] {
        &self.nodes
    }

    /// The name of the graph's input.
    pub fn input_name(&self) -> &str {
        &self.input_name
    }

    /// The name of the graph's output.
    pub fn output_name(&self) -> &str {
        &self.output_name
    }

    /// The batch size the graph declares for its input, if fixed (any batch size is accepted).
    pub fn declared_batch(&self) -> Option<usize> {
        self.declared_batch
    }

    /// The version of the default (`ai.onnx`) operator set.
    pub fn opset(&self) -> Option<i64> {
        self.opset
    }

    /// The exporter's `producer_name` and `producer_version`.
    pub fn producer(&self) -> &str {
        &self.producer
    }
}

/// Reads an ONNX model file.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; otherwise as [`parse_onnx`].
pub fn load_onnx_file(path: impl AsRef<Path>) -> Result<OnnxModel> {
    load_onnx_file_with_max_elements(path, MAX_SAMPLE_ELEMENTS)
}

/// [`load_onnx_file`] with another limit than [`MAX_SAMPLE_ELEMENTS`] on one sample's
/// activations (see [`parse_onnx_with_max_elements`]).
///
/// # Errors
/// As [`load_onnx_file`], with [`Error::TooLarge`] against `max_sample_elements`.
pub fn load_onnx_file_with_max_elements(
    path: impl AsRef<Path>,
    max_sample_elements: u64,
) -> Result<OnnxModel> {
    crate::io::parse_file(path.as_ref(), |bytes| {
        import(proto::decode_model_owned(bytes)?, max_sample_elements)
    })
}

/// Imports an ONNX model from its bytes.
///
/// # Errors
/// [`Error::Malformed`] for bytes that are not a valid ONNX model (bad varints, lengths past the
/// end, tensors whose data does not match their dims, references to undefined values);
/// [`Error::Unsupported`] for a valid model outside the supported subset, naming the node;
/// [`Error::TooLarge`] for tensors declaring more than [`MAX_TENSOR_ELEMENTS`] elements, or an
/// activation of one sample (the graph input or a node's output) of more than
/// [`MAX_SAMPLE_ELEMENTS`] (see [`parse_onnx_with_max_elements`] to allow more);
/// errors of the layer constructors (shapes, non-finite weights) wrapped in [`Error::Layer`] with
/// the node's index.
pub fn parse_onnx(bytes: &[u8]) -> Result<OnnxModel> {
    parse_onnx_with_max_elements(bytes, MAX_SAMPLE_ELEMENTS)
}

/// [`parse_onnx`] with `max_sample_elements` instead of [`MAX_SAMPLE_ELEMENTS`] as the limit on
/// one sample's activation (the graph input and every node's output).
///
/// The [`Network`] is built with the larger of `max_sample_elements` and
/// [`DEFAULT_MAX_ELEMENTS`](crate::DEFAULT_MAX_ELEMENTS) as its limit on any tensor, batch
/// included ([`Network::max_elements`]; change it with [`Network::with_max_elements`]).
///
/// ```
/// use klrp::io::onnx::{parse_onnx, parse_onnx_with_max_elements};
/// let bytes = std::fs::read("tests/fixtures/onnx/mlp/legacy.onnx")?;
/// assert!(parse_onnx(&bytes).is_ok());
/// // Its input has 8 elements per sample: a limit of 4 refuses it.
/// assert!(matches!(
///     parse_onnx_with_max_elements(&bytes, 4),
///     Err(klrp::Error::TooLarge { requested: 8, limit: 4, .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`parse_onnx`], with [`Error::TooLarge`] against `max_sample_elements`.
pub fn parse_onnx_with_max_elements(bytes: &[u8], max_sample_elements: u64) -> Result<OnnxModel> {
    import(proto::decode_model(bytes)?, max_sample_elements)
}

/// Builds the model from its decoded messages.
fn import(model: proto::ModelProto, max_sample_elements: u64) -> Result<OnnxModel> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::malformed("ONNX", "the model has no graph (not an ONNX model?)"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map(|&(_, v)| v);
    let producer = format!("{} {}", model.producer_name, model.producer_version)
        .trim()
        .to_string();
    let mut imp = Importer::new(graph, max_sample_elements)?;
    for (i, node) in graph.nodes.iter().enumerate() {
        imp.node(i, node)?;
    }
    imp.finish(graph, opset, producer)
}

#[derive(Clone, Debug)]
struct Const {
    shape: Vec<usize>,
    values: Values,
}

impl Const {
    fn ints(&self, what: &str) -> Result<&[i64]> {
        match &self.values {
            Values::I64(v) => Ok(v),
            Values::F32(_) => Err(Error::Unsupported(format!(
                "{what} must be an integer tensor"
            ))),
        }
    }

    fn floats(&self, what: &str) -> Result<&[f32]> {
        match &self.values {
            Values::F32(v) => Ok(v),
            Values::I64(_) => Err(Error::Unsupported(format!("{what} must be a float tensor"))),
        }
    }

    fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Const(Rc<Const>),
    /// An activation (the running one, or an earlier one).
    Activation,
    /// An output klrp does not compute (MaxPool indices, BatchNorm statistics…).
    Unavailable(String),
}

/// Kernel, stride and padding of a 2-D pooling node.
type PoolWindow = ((usize, usize), (usize, usize), (usize, usize));

struct Importer {
    values: BTreeMap<String, Value>,
    /// The running activation's name.
    act: String,
    /// Its per-sample shape.
    shape: Vec<usize>,
    input_shape: Vec<usize>,
    declared_batch: Option<usize>,
    input_name: String,
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<OnnxNode>,
    /// The dense or convolution layer that produced the running activation, while a following
    /// `Add` may still give it a bias.
    producer: Option<usize>,
    softmax_at: Option<usize>,
    /// The limit on one sample's activation.
    max_sample_elements: u64,
}

fn node_label(i: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("ONNX node {i} ({})", node.op_type)
    } else {
        format!("ONNX node {i} '{}' ({})", node.name, node.op_type)
    }
}

/// Puts the node's label on an error.
fn annotate(e: Error, i: usize, node: &NodeProto) -> Error {
    let label = node_label(i, node);
    match e {
        Error::Unsupported(m) => Error::Unsupported(format!("{label}: {m}")),
        Error::Malformed { format, reason } => Error::Malformed {
            format,
            reason: format!("{label}: {reason}"),
        },
        e @ Error::Layer { .. } => e,
        other => other.in_layer(
            i,
            if node.name.is_empty() {
                node.op_type.clone()
            } else {
                format!("{} '{}'", node.op_type, node.name)
            },
        ),
    }
}

fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attributes.iter().find(|a| a.name == name)
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> Result<i64> {
    match attr(node, name) {
        None => Ok(default),
        Some(a) => a.i.ok_or_else(|| {
            Error::malformed("ONNX", format!("attribute {name} has no integer value"))
        }),
    }
}

fn attr_float(node: &NodeProto, name: &str, default: f32) -> Result<f32> {
    match attr(node, name) {
        None => Ok(default),
        Some(a) => a.f.ok_or_else(|| {
            Error::malformed("ONNX", format!("attribute {name} has no float value"))
        }),
    }
}

fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name)
        .map(|a| String::from_utf8_lossy(a.s.as_deref().unwrap_or_default()).into_owned())
}

/// The largest kernel, stride, padding, dilation or group count accepted.
const MAX_ATTRIBUTE: i64 = 1 << 24;

/// The largest activation of one sample accepted at import by [`parse_onnx`] and
/// [`load_onnx_file`] (2²⁸ elements, 1 GiB of `f32`); [`parse_onnx_with_max_elements`] takes
/// another.
pub const MAX_SAMPLE_ELEMENTS: u64 = 1 << 28;

fn to_usize(v: i64, what: &str) -> Result<usize> {
    if v > MAX_ATTRIBUTE {
        return Err(Error::malformed(
            "ONNX",
            format!("{what} = {v} is absurdly large (limit {MAX_ATTRIBUTE})"),
        ));
    }
    usize::try_from(v).map_err(|_| Error::Unsupported(format!("{what} = {v} must be ≥ 0")))
}

fn check_sample_size(shape: &[usize], what: &str, limit: u64) -> Result<()> {
    let count = shape.iter().fold(1u64, |c, &d| c.saturating_mul(d as u64));
    if count > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            requested: u128::from(count),
            limit: u128::from(limit),
        });
    }
    Ok(())
}

/// A pair from a two-element attribute (`strides`, `dilations`, `kernel_shape`).
fn pair(node: &NodeProto, name: &str, default: (usize, usize)) -> Result<(usize, usize)> {
    match attr_ints(node, name) {
        None => Ok(default),
        Some(v) if v.len() == 2 => Ok((to_usize(v[0], name)?, to_usize(v[1], name)?)),
        Some(v) => Err(Error::Unsupported(format!(
            "{name} = {v:?}: only 2-D operations are supported"
        ))),
    }
}

/// `pads` as symmetric (vertical, horizontal) padding, honouring `auto_pad`.
fn pads(node: &NodeProto) -> Result<(usize, usize)> {
    let auto = attr_string(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    match auto.as_str() {
        "NOTSET" | "" => {}
        "VALID" => return Ok((0, 0)),
        other => {
            return Err(Error::Unsupported(format!(
                "auto_pad = {other} (only NOTSET and VALID are supported; export with explicit pads)"
            )));
        }
    }
    match attr_ints(node, "pads") {
        None => Ok((0, 0)),
        Some(p) if p.len() == 4 => {
            if p[0] != p[2] || p[1] != p[3] {
                return Err(Error::Unsupported(format!(
                    "asymmetric pads {p:?} (begin and end padding must be equal)"
                )));
            }
            Ok((to_usize(p[0], "pads")?, to_usize(p[1], "pads")?))
        }
        Some(p) => Err(Error::Unsupported(format!(
            "pads = {p:?}: only 2-D operations are supported"
        ))),
    }
}

fn show_dims(v: &[i64]) -> String {
    v.iter()
        .map(|&d| {
            if d == BATCH {
                "N".into()
            } else {
                d.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Importer {
    fn new(graph: &GraphProto, max_sample_elements: u64) -> Result<Self> {
        if graph.sparse_initializers > 0 {
            return Err(Error::Unsupported(
                "ONNX sparse initializers are not supported".into(),
            ));
        }
        if graph.nodes.is_empty() {
            return Err(Error::malformed("ONNX", "the graph has no nodes"));
        }
        let mut values = BTreeMap::new();
        for t in &graph.initializers {
            if t.name.is_empty() {
                return Err(Error::malformed("ONNX", "an initializer has no name"));
            }
            let (shape, v) = t.values()?;
            values.insert(
                t.name.clone(),
                Value::Const(Rc::new(Const { shape, values: v })),
            );
        }
        let inputs: Vec<_> = graph
            .inputs
            .iter()
            .filter(|v| !values.contains_key(&v.name))
            .collect();
        let input = match inputs.as_slice() {
            [one] => *one,
            [] => return Err(Error::malformed("ONNX", "the graph has no input")),
            more => {
                return Err(Error::Unsupported(format!(
                    "the graph has {} inputs ({}); klrp imports single-input models",
                    more.len(),
                    more.iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        if let Some(t) = input.elem_type
            && t != dtype::FLOAT
        {
            return Err(Error::Unsupported(format!(
                "graph input '{}' has type {}; klrp needs float32 input",
                input.name,
                dtype::name(t)
            )));
        }
        let dims = input.shape.as_ref().ok_or_else(|| {
            Error::Unsupported(format!(
                "graph input '{}' has no shape; export the model with a fixed input shape",
                input.name
            ))
        })?;
        if dims.len() < 2 {
            return Err(Error::Unsupported(format!(
                "graph input '{}' has rank {}; klrp needs a batch axis and at least one more",
                input.name,
                dims.len()
            )));
        }
        let declared_batch = match &dims[0] {
            Dim::Value(b) if *b > 0 => usize::try_from(*b).ok(),
            _ => None,
        };
        let mut shape = Vec::with_capacity(dims.len() - 1);
        let mut count: u64 = 1;
        for (k, d) in dims.iter().enumerate().skip(1) {
            match d {
                Dim::Value(v) if *v > 0 => {
                    count = count.saturating_mul(*v as u64);
                    if count > max_sample_elements {
                        return Err(Error::TooLarge {
                            what: format!("ONNX graph input '{}'", input.name),
                            requested: u128::from(count),
                            limit: u128::from(max_sample_elements),
                        });
                    }
                    shape.push(*v as usize);
                }
                Dim::Param(p) => {
                    return Err(Error::Unsupported(format!(
                        "graph input '{}' axis {k} is symbolic ('{p}'); klrp needs fixed sample \
                         dimensions (only the batch axis may vary)",
                        input.name
                    )));
                }
                Dim::Value(v) => {
                    return Err(Error::Unsupported(format!(
                        "graph input '{}' axis {k} has size {v}",
                        input.name
                    )));
                }
                Dim::Unknown => {
                    return Err(Error::Unsupported(format!(
                        "graph input '{}' axis {k} has no size",
                        input.name
                    )));
                }
            }
        }
        values.insert(input.name.clone(), Value::Activation);
        Ok(Importer {
            values,
            act: input.name.clone(),
            input_shape: shape.clone(),
            shape,
            declared_batch,
            input_name: input.name.clone(),
            layers: Vec::with_capacity(graph.nodes.len()),
            nodes: Vec::with_capacity(graph.nodes.len()),
            producer: None,
            softmax_at: None,
            max_sample_elements,
        })
    }

    fn value(&self, name: &str) -> Result<&Value> {
        self.values.get(name).ok_or_else(|| {
            Error::malformed(
                "ONNX",
                format!(
                    "reads '{name}', which no initializer, graph input or earlier node defines"
                ),
            )
        })
    }

    /// Constant input `k` of the node (`what` names it in errors).
    fn const_input(&self, node: &NodeProto, k: usize, what: &str) -> Result<Rc<Const>> {
        let name = node
            .inputs
            .get(k)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::malformed("ONNX", format!("no {what} (input {k})")))?;
        match self.value(name)? {
            Value::Const(c) => Ok(c.clone()),
            Value::Activation => Err(Error::Unsupported(format!(
                "{what} '{name}' is computed from the input; klrp needs an initializer or constant"
            ))),
            Value::Unavailable(why) => Err(Error::Unsupported(format!("{what} '{name}' is {why}"))),
        }
    }

    fn opt_const_input(&self, node: &NodeProto, k: usize, what: &str) -> Result<Option<Rc<Const>>> {
        match node.inputs.get(k) {
            Some(n) if !n.is_empty() => self.const_input(node, k, what).map(Some),
            _ => Ok(None),
        }
    }

    fn push(&mut self, i: usize, node: &NodeProto, layer: Box<dyn Layer>, note: Option<String>) {
        self.layers.push(layer);
        self.nodes.push(OnnxNode {
            index: i,
            name: node.name.clone(),
            op_type: node.op_type.clone(),
            note,
        });
    }

    fn node(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        self.node_inner(i, node).map_err(|e| annotate(e, i, node))
    }

    fn node_inner(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(Error::Unsupported(format!(
                "operator domain '{}' (only the default ONNX domain is supported)",
                node.domain
            )));
        }
        let mut act_inputs = Vec::new();
        for (k, name) in node.inputs.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match self.value(name)? {
                Value::Activation => act_inputs.push(k),
                Value::Unavailable(why) => {
                    return Err(Error::Unsupported(format!("input '{name}' is {why}")));
                }
                Value::Const(_) => {}
            }
        }
        if act_inputs.is_empty() {
            // Constants and shape arithmetic: evaluated now, an identity layer in the network.
            let outs = self.eval_const(node)?;
            let note = if matches!(node.op_type.as_str(), "Constant" | "Identity") {
                "constant"
            } else {
                "shape computation"
            };
            for (name, c) in node.outputs.iter().zip(outs) {
                self.values.insert(name.clone(), Value::Const(Rc::new(c)));
            }
            self.push(i, node, Box::new(IdentityLayer), Some(note.into()));
            return Ok(());
        }
        if let Some(&k) = act_inputs.iter().find(|&&k| node.inputs[k] != self.act) {
            return Err(Error::Unsupported(format!(
                "reads '{}', an earlier activation: only sequential graphs are supported (no \
                 branches or skip connections)",
                node.inputs[k]
            )));
        }
        if act_inputs.len() > 1 {
            return Err(Error::Unsupported(
                "combines the activation with itself; only sequential graphs are supported".into(),
            ));
        }
        if node.op_type == "Shape" {
            let c = self.shape_of_activation(node)?;
            if let Some(out) = node.outputs.first() {
                self.values.insert(out.clone(), Value::Const(Rc::new(c)));
            }
            self.push(
                i,
                node,
                Box::new(IdentityLayer),
                Some("shape computation".into()),
            );
            return Ok(());
        }
        if let Some(s) = self.softmax_at {
            return Err(Error::Unsupported(format!(
                "follows the {} at node {s}; it is supported only as the last operation",
                self.nodes[s].op_type
            )));
        }
        let act_k = act_inputs[0];
        if act_k != 0 && node.op_type != "Add" {
            return Err(Error::Unsupported(
                "the activation must be the first input".into(),
            ));
        }
        let out = node
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| Error::malformed("ONNX", "the node has no output"))?
            .clone();
        let (layer, note, fresh_linear) = self.layer(i, node, act_k)?;
        let shape = layer.output_shape(&self.shape)?;
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::invalid(format!("output shape {shape:?} is empty")));
        }
        check_sample_size(&shape, "the node's output", self.max_sample_elements)?;
        let label = node_label(i, node);
        for extra in node.outputs.iter().skip(1).filter(|o| !o.is_empty()) {
            self.values.insert(
                extra.clone(),
                Value::Unavailable(format!(
                    "an extra output of {label}, which klrp does not compute"
                )),
            );
        }
        self.shape = shape;
        self.values.insert(out.clone(), Value::Activation);
        self.act = out;
        self.push(i, node, layer, note);
        if fresh_linear {
            self.producer = Some(i);
        } else if node.op_type != "Add" {
            self.producer = None;
        }
        Ok(())
    }

    fn shape_of_activation(&self, node: &NodeProto) -> Result<Const> {
        let mut full = vec![BATCH];
        full.extend(self.shape.iter().map(|&d| d as i64));
        let r = full.len() as i64;
        let clampi = |v: i64| -> usize {
            (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize
        };
        let start = clampi(attr_int(node, "start", 0)?);
        let end = clampi(attr_int(node, "end", r)?).max(start);
        let v = full[start..end].to_vec();
        Ok(Const {
            shape: vec![v.len()],
            values: Values::I64(v),
        })
    }

    /// The layer for an activation-consuming node: (layer, note, is a fresh dense/conv layer).
    fn layer(
        &mut self,
        i: usize,
        node: &NodeProto,
        act_k: usize,
    ) -> Result<(Box<dyn Layer>, Option<String>, bool)> {
        let plain = |l: Box<dyn Layer>| Ok((l, None, false));
        match node.op_type.as_str() {
            "Relu" => plain(Box::new(ReLU)),
            "Identity" => plain(Box::new(IdentityLayer)),
            "Dropout" => {
                if let Some(t) = self.opt_const_input(node, 2, "training_mode")?
                    && t.ints("training_mode")?.iter().any(|&v| v != 0)
                {
                    return Err(Error::Unsupported("Dropout in training mode".into()));
                }
                plain(Box::new(Dropout))
            }
            "Softmax" | "LogSoftmax" => {
                self.softmax_at = Some(i);
                Ok((
                    Box::new(IdentityLayer),
                    Some("ignored: LRP explains the logits".into()),
                    false,
                ))
            }
            "Conv" => Ok((Box::new(self.conv(node)?), None, true)),
            "Gemm" => Ok((Box::new(self.gemm(node)?), None, true)),
            "MatMul" => Ok((Box::new(self.matmul(node)?), None, true)),
            "Add" => self.add_bias(node, act_k),
            "MaxPool" => {
                if node.outputs.len() > 1 && !node.outputs[1].is_empty() {
                    return Err(Error::Unsupported("MaxPool with an Indices output".into()));
                }
                let (kernel, stride, padding) = self.pool_geometry(node)?;
                if attr_int(node, "storage_order", 0)? != 0 {
                    return Err(Error::Unsupported("MaxPool with storage_order = 1".into()));
                }
                plain(Box::new(MaxPool2d::new(kernel, stride, padding)?))
            }
            "AveragePool" => {
                let (kernel, stride, padding) = self.pool_geometry(node)?;
                let include = attr_int(node, "count_include_pad", 0)? != 0;
                plain(Box::new(
                    AvgPool2d::new(kernel, stride, padding)?.with_count_include_pad(include),
                ))
            }
            "GlobalAveragePool" => {
                if self.shape.len() != 3 {
                    return Err(Error::Unsupported(format!(
                        "GlobalAveragePool on sample shape {:?} (need [C, H, W])",
                        self.shape
                    )));
                }
                plain(Box::new(AdaptiveAvgPool2d::new((1, 1))?))
            }
            "Flatten" => {
                let rank = self.shape.len() as i64 + 1;
                let given = attr_int(node, "axis", 1)?;
                let axis = if given < 0 { given + rank } else { given };
                if axis != 1 {
                    return Err(Error::Unsupported(format!(
                        "Flatten with axis {given} on rank {rank} (only axis 1, keeping the batch \
                         axis, is supported)"
                    )));
                }
                plain(Box::new(Flatten))
            }
            "Reshape" => {
                let target = self.const_input(node, 1, "target shape")?;
                let t = target.ints("the Reshape target shape")?;
                let allowzero = attr_int(node, "allowzero", 0)? != 0;
                if self.is_flatten(t, allowzero) {
                    Ok((Box::new(Flatten), Some("reshape to [N, -1]".into()), false))
                } else if self.is_same_shape(t, allowzero) {
                    Ok((
                        Box::new(IdentityLayer),
                        Some("reshape to the same shape".into()),
                        false,
                    ))
                } else {
                    Err(Error::Unsupported(format!(
                        "Reshape of [N, {}] to [{}]: only a flatten to [N, -1] is supported",
                        self.shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        show_dims(t)
                    )))
                }
            }
            "BatchNormalization" => plain(Box::new(self.batch_norm(node)?)),
            op => Err(Error::Unsupported(format!(
                "operator {op} is not supported (supported: Conv, Gemm, MatMul, Add (as a bias), \
                 Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape (as a flatten), \
                 BatchNormalization, Dropout, Identity, a trailing Softmax)"
            ))),
        }
    }

    fn pool_geometry(&self, node: &NodeProto) -> Result<PoolWindow> {
        if attr_int(node, "ceil_mode", 0)? != 0 {
            return Err(Error::Unsupported(
                "ceil_mode = 1 (only floor mode is supported)".into(),
            ));
        }
        if attr(node, "kernel_shape").is_none() {
            return Err(Error::malformed("ONNX", "pooling without kernel_shape"));
        }
        if pair(node, "dilations", (1, 1))? != (1, 1) {
            return Err(Error::Unsupported("pooling with dilations ≠ 1".into()));
        }
        if self.shape.len() != 3 {
            return Err(Error::Unsupported(format!(
                "2-D pooling on sample shape {:?} (need [C, H, W])",
                self.shape
            )));
        }
        let kernel = pair(node, "kernel_shape", (1, 1))?;
        let stride = pair(node, "strides", (1, 1))?;
        Ok((kernel, stride, pads(node)?))
    }

    fn conv(&self, node: &NodeProto) -> Result<Conv2d> {
        let w = self.const_input(node, 1, "weight W")?;
        let &[co, ci, kh, kw] = w.shape.as_slice() else {
            return Err(Error::Unsupported(format!(
                "Conv weight of shape {:?}: only 2-D convolutions ([C_out, C_in/groups, kh, kw]) \
                 are supported",
                w.shape
            )));
        };
        if let Some(k) = attr_ints(node, "kernel_shape")
            && k != [kh as i64, kw as i64]
        {
            return Err(Error::malformed(
                "ONNX",
                format!("Conv kernel_shape {k:?} differs from the weight's {kh}×{kw}"),
            ));
        }
        let weight =
            Array4::from_shape_vec((co, ci, kh, kw), w.floats("the Conv weight")?.to_vec())
                .map_err(|e| Error::malformed("ONNX", e.to_string()))?;
        let bias = match self.opt_const_input(node, 2, "bias B")? {
            Some(b) => {
                if b.shape != [co] {
                    return Err(Error::shape("Conv bias", &[co], &b.shape));
                }
                Some(Array1::from(b.floats("the Conv bias")?.to_vec()))
            }
            None => None,
        };
        let groups = to_usize(attr_int(node, "group", 1)?, "group")?;
        let conv = Conv2d::new(weight, bias)?
            .with_stride(pair(node, "strides", (1, 1))?)?
            .with_padding(pads(node)?)?
            .with_dilation(pair(node, "dilations", (1, 1))?)?
            .with_groups(groups)?;
        if self.shape.len() != 3 || self.shape[0] != conv.in_channels() {
            return Err(Error::shape(
                "Conv input [C, H, W]",
                &[conv.in_channels(), 0, 0],
                &self.shape,
            ));
        }
        Ok(conv)
    }

    fn matrix(&self, node: &NodeProto, what: &str) -> Result<Array2<f32>> {
        let b = self.const_input(node, 1, what)?;
        let &[r, c] = b.shape.as_slice() else {
            return Err(Error::Unsupported(format!(
                "{what} of shape {:?} (need a matrix)",
                b.shape
            )));
        };
        Array2::from_shape_vec((r, c), b.floats(what)?.to_vec())
            .map_err(|e| Error::malformed("ONNX", e.to_string()))
    }

    fn check_features(&self, op: &str, inputs: usize) -> Result<()> {
        if self.shape.len() != 1 {
            return Err(Error::Unsupported(format!(
                "{op} on sample shape {:?} (need [features]: flatten first)",
                self.shape
            )));
        }
        if self.shape[0] != inputs {
            return Err(Error::shape(
                format!("{op} input features"),
                &[inputs],
                &self.shape,
            ));
        }
        Ok(())
    }

    fn matmul(&self, node: &NodeProto) -> Result<Dense> {
        let b = self.matrix(node, "weight B")?;
        self.check_features("MatMul", b.nrows())?;
        Dense::new(b.reversed_axes().as_standard_layout().into_owned(), None)
    }

    fn gemm(&self, node: &NodeProto) -> Result<Dense> {
        if attr_int(node, "transA", 0)? != 0 {
            return Err(Error::Unsupported("Gemm with transA = 1".into()));
        }
        let alpha = attr_float(node, "alpha", 1.0)?;
        let beta = attr_float(node, "beta", 1.0)?;
        let m = self.matrix(node, "weight B")?;
        let mut w = if attr_int(node, "transB", 0)? != 0 {
            m
        } else {
            m.reversed_axes().as_standard_layout().into_owned()
        };
        self.check_features("Gemm", w.ncols())?;
        if alpha != 1.0 {
            w.mapv_inplace(|x| x * alpha);
        }
        let out = w.nrows();
        let bias = match self.opt_const_input(node, 2, "bias C")? {
            Some(c) => {
                let v = c.floats("the Gemm bias")?;
                let b: Vec<f32> = match c.shape.as_slice() {
                    [] | [1] | [1, 1] => vec![v[0] * beta; out],
                    [n] | [1, n] if *n == out => v.iter().map(|x| x * beta).collect(),
                    _ => return Err(Error::shape("Gemm bias C", &[out], &c.shape)),
                };
                Some(Array1::from(b))
            }
            None => None,
        };
        Dense::new(w, bias)
    }

    /// `Add(activation, constant)` right after a dense or convolution layer: that layer's bias.
    fn add_bias(
        &mut self,
        node: &NodeProto,
        act_k: usize,
    ) -> Result<(Box<dyn Layer>, Option<String>, bool)> {
        let c = self.const_input(node, 1 - act_k.min(1), "addend")?;
        let Some(p) = self.producer else {
            return Err(Error::Unsupported(
                "Add of a constant is supported only as the bias of the MatMul, Gemm or Conv \
                 right before it"
                    .into(),
            ));
        };
        let v = c.floats("the bias")?;
        let out = self.shape[0];
        let ok = match (self.layers[p].kind(), c.shape.as_slice()) {
            (_, [] | [1]) => true,
            (LayerKind::Dense, [n] | [1, n]) => *n == out,
            (LayerKind::Conv, [n, 1, 1] | [1, n, 1, 1]) => *n == out,
            _ => false,
        };
        if !ok {
            let want: &[usize] = if self.shape.len() == 1 {
                &[out]
            } else {
                &[out, 1, 1]
            };
            return Err(Error::shape("bias added by Add", want, &c.shape));
        }
        let shift = if v.len() == 1 {
            vec![v[0]; out]
        } else {
            v.to_vec()
        };
        let affine = ChannelAffine {
            scale: vec![1.0; out],
            shift,
        };
        self.layers[p].fuse_channel_affine(&affine)?;
        Ok((
            Box::new(IdentityLayer),
            Some(format!("bias of layer {p}")),
            false,
        ))
    }

    fn batch_norm(&self, node: &NodeProto) -> Result<BatchNorm2d> {
        if attr_int(node, "training_mode", 0)? != 0 {
            return Err(Error::Unsupported(
                "BatchNormalization in training mode".into(),
            ));
        }
        if attr_int(node, "spatial", 1)? != 1 {
            return Err(Error::Unsupported(
                "BatchNormalization with spatial = 0".into(),
            ));
        }
        let eps = attr_float(node, "epsilon", 1e-5)?;
        let vec = |k: usize, what: &str| -> Result<Array1<f32>> {
            let c = self.const_input(node, k, what)?;
            if c.shape.len() != 1 {
                return Err(Error::Unsupported(format!(
                    "BatchNormalization {what} of shape {:?} (need [C])",
                    c.shape
                )));
            }
            Ok(Array1::from(c.floats(what)?.to_vec()))
        };
        let bn = BatchNorm2d::new(
            vec(1, "scale")?,
            vec(2, "bias")?,
            vec(3, "mean")?,
            vec(4, "variance")?,
            eps,
        )?;
        if self.shape.first() != Some(&bn.channels()) {
            return Err(Error::shape(
                "BatchNormalization channels",
                &[bn.channels()],
                &self.shape[..self.shape.len().min(1)],
            ));
        }
        Ok(bn)
    }

    /// Whether a Reshape target `t` flattens `[N, ...shape]` to `[N, prod]`.
    fn is_flatten(&self, t: &[i64], allowzero: bool) -> bool {
        let prod: usize = self.shape.iter().product();
        let Ok(prod) = i64::try_from(prod) else {
            return false;
        };
        let &[a, b] = t else {
            return false;
        };
        let batch_like = |v: i64| {
            v == BATCH
                || (v == 0 && !allowzero)
                || (v > 0 && usize::try_from(v).ok() == self.declared_batch)
        };
        (batch_like(a) && (b == -1 || b == prod)) || (a == -1 && b == prod)
    }

    /// Whether a Reshape target `t` keeps `[N, ...shape]` as it is.
    fn is_same_shape(&self, t: &[i64], allowzero: bool) -> bool {
        if t.len() != self.shape.len() + 1 {
            return false;
        }
        let batch_ok = t[0] == BATCH
            || (t[0] == 0 && !allowzero)
            || (t[0] > 0 && usize::try_from(t[0]).ok() == self.declared_batch)
            || t[0] == -1;
        batch_ok
            && t[1..]
                .iter()
                .zip(&self.shape)
                .all(|(&v, &d)| usize::try_from(v).ok() == Some(d) || (v == 0 && !allowzero))
    }

    /// Evaluates a node whose inputs are all constants.
    fn eval_const(&self, node: &NodeProto) -> Result<Vec<Const>> {
        let input = |k: usize| self.const_input(node, k, &format!("input {k}"));
        let ints = |c: &Const| -> Result<Vec<i64>> { Ok(c.ints("a shape input")?.to_vec()) };
        let one = |c: Const| Ok(vec![c]);
        match node.op_type.as_str() {
            "Constant" => one(constant_value(node)?),
            "Identity" => one((*input(0)?).clone()),
            "Cast" => {
                let c = input(0)?;
                let to = attr_int(node, "to", 0)?;
                let values = match (to, &c.values) {
                    (
                        dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 | dtype::BFLOAT16,
                        Values::I64(v),
                    ) => {
                        if v.contains(&BATCH) {
                            return Err(Error::Unsupported(
                                "Cast of the batch size to a float".into(),
                            ));
                        }
                        Values::F32(v.iter().map(|&x| x as f32).collect())
                    }
                    (dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 | dtype::BFLOAT16, v) => {
                        v.clone()
                    }
                    (dtype::BOOL, Values::F32(v)) => {
                        Values::I64(v.iter().map(|&x| i64::from(x != 0.0)).collect())
                    }
                    (dtype::BOOL, Values::I64(v)) => {
                        Values::I64(v.iter().map(|&x| i64::from(x != 0)).collect())
                    }
                    (_, Values::F32(v)) => Values::I64(v.iter().map(|&x| x as i64).collect()),
                    (_, v) => v.clone(),
                };
                one(Const {
                    shape: c.shape.clone(),
                    values,
                })
            }
            "Gather" => {
                let data = input(0)?;
                let idx = input(1)?;
                let axis = attr_int(node, "axis", 0)?;
                if data.shape.len() != 1 || !(axis == 0 || axis == -1) {
                    return Err(Error::Unsupported(format!(
                        "Gather on constants of shape {:?} along axis {axis} (only 1-D)",
                        data.shape
                    )));
                }
                let n = data.len() as i64;
                let picks = idx
                    .ints("Gather indices")?
                    .iter()
                    .map(|&k| {
                        let k2 = if k < 0 { k + n } else { k };
                        if (0..n).contains(&k2) {
                            Ok(k2 as usize)
                        } else {
                            Err(Error::malformed(
                                "ONNX",
                                format!("Gather index {k} out of range for {n} elements"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                let values = match &data.values {
                    Values::I64(v) => Values::I64(picks.iter().map(|&k| v[k]).collect()),
                    Values::F32(v) => Values::F32(picks.iter().map(|&k| v[k]).collect()),
                };
                one(Const {
                    shape: idx.shape.clone(),
                    values,
                })
            }
            "Unsqueeze" => {
                let data = input(0)?;
                let axes = match attr_ints(node, "axes") {
                    Some(a) => a,
                    None => ints(&*input(1)?)?,
                };
                let rank = (data.shape.len() + axes.len()) as i64;
                let mut axes = axes
                    .iter()
                    .map(|&a| {
                        let a2 = if a < 0 { a + rank } else { a };
                        if (0..rank).contains(&a2) {
                            Ok(a2 as usize)
                        } else {
                            Err(Error::malformed(
                                "ONNX",
                                format!("Unsqueeze axis {a} out of range"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                axes.sort_unstable();
                let mut shape = data.shape.clone();
                for a in axes {
                    if a > shape.len() {
                        return Err(Error::malformed("ONNX", "Unsqueeze axes out of range"));
                    }
                    shape.insert(a, 1);
                }
                one(Const {
                    shape,
                    values: data.values.clone(),
                })
            }
            "Squeeze" => {
                let data = input(0)?;
                let axes = match attr_ints(node, "axes") {
                    Some(a) => Some(a),
                    None => self
                        .opt_const_input(node, 1, "axes")?
                        .map(|c| ints(&c))
                        .transpose()?,
                };
                let rank = data.shape.len() as i64;
                let drop: BTreeSet<usize> = match axes {
                    None => (0..data.shape.len())
                        .filter(|&k| data.shape[k] == 1)
                        .collect(),
                    Some(a) => a
                        .iter()
                        .map(|&x| {
                            let x2 = if x < 0 { x + rank } else { x };
                            match usize::try_from(x2)
                                .ok()
                                .filter(|&k| data.shape.get(k) == Some(&1))
                            {
                                Some(k) => Ok(k),
                                None => Err(Error::malformed(
                                    "ONNX",
                                    format!("Squeeze axis {x} is not a dimension of size 1"),
                                )),
                            }
                        })
                        .collect::<Result<_>>()?,
                };
                let shape = (0..data.shape.len())
                    .filter(|k| !drop.contains(k))
                    .map(|k| data.shape[k])
                    .collect();
                one(Const {
                    shape,
                    values: data.values.clone(),
                })
            }
            "Concat" => {
                let parts = (0..node.inputs.len())
                    .filter(|&k| !node.inputs[k].is_empty())
                    .map(input)
                    .collect::<Result<Vec<_>>>()?;
                if parts.iter().any(|p| p.shape.len() != 1) {
                    return Err(Error::Unsupported(
                        "Concat of constants that are not vectors".into(),
                    ));
                }
                let values = if parts.iter().all(|p| matches!(p.values, Values::I64(_))) {
                    let mut v = Vec::new();
                    for p in &parts {
                        v.extend_from_slice(p.ints("Concat input")?);
                    }
                    Values::I64(v)
                } else {
                    let mut v = Vec::new();
                    for p in &parts {
                        v.extend_from_slice(p.floats("Concat input")?);
                    }
                    Values::F32(v)
                };
                let n = match &values {
                    Values::I64(v) => v.len(),
                    Values::F32(v) => v.len(),
                };
                one(Const {
                    shape: vec![n],
                    values,
                })
            }
            "Slice" => {
                let data = input(0)?;
                if data.shape.len() != 1 {
                    return Err(Error::Unsupported(
                        "Slice of constants that are not vectors".into(),
                    ));
                }
                let (starts, ends, axes, steps) = match attr_ints(node, "starts") {
                    Some(s) => (
                        s,
                        attr_ints(node, "ends").unwrap_or_default(),
                        attr_ints(node, "axes"),
                        None,
                    ),
                    None => (
                        ints(&*input(1)?)?,
                        ints(&*input(2)?)?,
                        self.opt_const_input(node, 3, "axes")?
                            .map(|c| ints(&c))
                            .transpose()?,
                        self.opt_const_input(node, 4, "steps")?
                            .map(|c| ints(&c))
                            .transpose()?,
                    ),
                };
                if starts.len() != 1
                    || ends.len() != 1
                    || axes.as_ref().is_some_and(|a| a != &[0] && a != &[-1])
                {
                    return Err(Error::Unsupported(
                        "Slice of a vector along more than one axis".into(),
                    ));
                }
                let step = steps
                    .as_ref()
                    .map_or(1, |s| s.first().copied().unwrap_or(1));
                let picks = slice_indices(data.len(), starts[0], ends[0], step)?;
                let values = match &data.values {
                    Values::I64(v) => Values::I64(picks.iter().map(|&k| v[k]).collect()),
                    Values::F32(v) => Values::F32(picks.iter().map(|&k| v[k]).collect()),
                };
                one(Const {
                    shape: vec![picks.len()],
                    values,
                })
            }
            op => Err(Error::Unsupported(format!(
                "operator {op} on constants (klrp evaluates only Constant, Shape, Gather, \
                 Unsqueeze, Squeeze, Concat, Slice, Cast and Identity at import)"
            ))),
        }
    }

    fn finish(self, graph: &GraphProto, opset: Option<i64>, producer: String) -> Result<OnnxModel> {
        let output = match graph.outputs.as_slice() {
            [one] => one,
            [] => return Err(Error::malformed("ONNX", "the graph has no output")),
            more => {
                return Err(Error::Unsupported(format!(
                    "the graph has {} outputs; klrp imports single-output models",
                    more.len()
                )));
            }
        };
        if output.name != self.act {
            return Err(Error::Unsupported(format!(
                "the graph output '{}' is not the result of the chain of operations (which ends \
                 in '{}')",
                output.name, self.act
            )));
        }
        let network = Network::new_with_max_elements(
            &self.input_shape,
            self.layers,
            self.max_sample_elements
                .max(crate::network::DEFAULT_MAX_ELEMENTS),
        )?;
        Ok(OnnxModel {
            network,
            nodes: self.nodes,
            input_name: self.input_name,
            output_name: output.name.clone(),
            declared_batch: self.declared_batch,
            opset,
            producer,
        })
    }
}

/// The value of a `Constant` node.
fn constant_value(node: &NodeProto) -> Result<Const> {
    let a = node
        .attributes
        .first()
        .ok_or_else(|| Error::malformed("ONNX", "Constant without a value"))?;
    match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| Error::malformed("ONNX", "Constant value is not a tensor"))?;
            let (shape, values) = t.values()?;
            Ok(Const { shape, values })
        }
        "value_float" => Ok(Const {
            shape: vec![],
            values: Values::F32(vec![a.f.ok_or_else(|| {
                Error::malformed("ONNX", "Constant value_float has no value")
            })?]),
        }),
        "value_floats" => Ok(Const {
            shape: vec![a.floats.len()],
            values: Values::F32(a.floats.clone()),
        }),
        "value_int" => Ok(Const {
            shape: vec![],
            values: Values::I64(vec![a.i.ok_or_else(|| {
                Error::malformed("ONNX", "Constant value_int has no value")
            })?]),
        }),
        "value_ints" => Ok(Const {
            shape: vec![a.ints.len()],
            values: Values::I64(a.ints.clone()),
        }),
        other => Err(Error::Unsupported(format!("Constant with {other}"))),
    }
}

/// The indices `data[start:end:step]` selects (ONNX `Slice` semantics, one axis).
fn slice_indices(len: usize, start: i64, end: i64, step: i64) -> Result<Vec<usize>> {
    if step == 0 {
        return Err(Error::malformed("ONNX", "Slice with step 0"));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    let n = len as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (mut s, e) = if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(0, n - 1), norm(end).clamp(-1, n - 1))
    };
    let mut out = Vec::new();
    while (step > 0 && s < e) || (step < 0 && s > e) {
        out.push(s as usize);
        let Some(next) = s.checked_add(step) else {
            break;
        };
        s = next;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_follow_onnx_semantics() {
        assert_eq!(slice_indices(4, 1, i64::MAX, 1).unwrap(), [1, 2, 3]);
        assert_eq!(slice_indices(4, -1, i64::MIN, -1).unwrap(), [3, 2, 1, 0]);
        assert_eq!(slice_indices(4, 0, 4, 2).unwrap(), [0, 2]);
        assert_eq!(slice_indices(4, 0, 4, i64::MAX).unwrap(), [0]);
        assert!(slice_indices(0, 0, -1, -1).unwrap().is_empty());
        assert!(slice_indices(3, 0, 3, 0).is_err());
    }

    #[test]
    fn absurd_attributes_are_refused() {
        assert!(to_usize(1 << 40, "pads").is_err());
        assert!(to_usize(-1, "pads").is_err());
        assert_eq!(to_usize(3, "pads").unwrap(), 3);
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", MAX_SAMPLE_ELEMENTS).is_err());
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", 1 << 40).is_ok());
    }
}
