//! ONNX import: feed-forward graphs (chains, residual networks, concatenations, gates) as a
//! graph [`Network`].
//!
//! ```no_run
//! use klrp::io::onnx::load_onnx_file;
//! let model = load_onnx_file("model.onnx")?;
//! for node in model.nodes() {
//!     println!("{:>3} {} ({}) reads {:?}", node.index, node.name, node.op_type, node.inputs);
//! }
//! let net = model.into_network().canonize()?; // fuses BatchNormalization into its producer
//! # Ok::<(), klrp::Error>(())
//! ```
//!
//! # Index mapping: one ONNX node, one network node
//!
//! Node `i` of the graph (in the file's order, which ONNX requires to be topological) becomes node
//! (layer) `i` of the [`Network`], **every node counted**, so the layer indices that
//! [`PerLayer`](crate::PerLayer) and [`Composite::with_layer`](crate::Composite::with_layer) take
//! are the graph's node indices. [`OnnxNode::inputs`] (= [`Network::inputs_of`]) are the node's
//! inputs. Nodes that do not transform an activation become an [`IdentityLayer`] at their index:
//!
//! - constants and shape computations, evaluated at import by a small constant folder (`fold.rs`:
//!   `Constant`, `Identity`, `Cast`, `CastLike`, `Shape`, `Size`, `Gather`, `Unsqueeze`,
//!   `Squeeze`, `Concat`, `Slice`, `Reshape`, `Flatten`, `Transpose`, `Expand`,
//!   `ConstantOfShape`, `Range` and element-wise arithmetic); each is spliced into the data path
//!   on the latest activation before it (later readers of that activation read the identity), so
//!   no node dangles and the values are unchanged;
//! - an `Add` (`Mul`) of a constant after the `MatMul`, `Gemm` or `Conv` producing its operand,
//!   when nothing else reads that operand: the constant becomes that layer's bias (scale);
//! - a constant-zero `Pad`: its padding goes into the `Conv` reading it;
//! - `Identity`, a `Concat`/`Sum` of one tensor, a trailing `Softmax`/`LogSoftmax` (ignored:
//!   LRP explains the logits).
//!
//! [`OnnxModel::nodes`] lists the nodes with their role.
//!
//! # Supported subset
//!
//! `Conv` (2-D, any padding incl. asymmetric and `auto_pad` `SAME_*`, stride, dilation and group
//! count), `Gemm` (`transA = 0`), `MatMul` with a constant right operand, `Add`/`Sum` of
//! activations of one shape ([`Add`]), `Concat` on channels ([`Concat`]), `Mul` of an activation
//! by a `Sigmoid`/`HardSigmoid` gate ([`Mul`]), `Relu`, `Clip`, `Sigmoid`, `HardSigmoid`,
//! `HardSwish`, `LeakyRelu`, `Tanh`, `Gelu`, `MaxPool` and `AveragePool` (2-D, symmetric padding,
//! `ceil_mode = 0`, dilation 1), `GlobalAveragePool`, `ReduceMean` over H, W with `keepdims`,
//! `Flatten` (axis 1), `Reshape` to `[N, -1]` (imported as [`Flatten`]), `BatchNormalization`
//! (inference mode, kept as [`BatchNorm2d`] for [`Network::canonize`] to fuse), `Dropout`,
//! `Identity`, a trailing `Softmax`/`LogSoftmax`.
//! Weights come from initializers (stored as `raw_data`, the typed fields or an external data
//! file next to the model; `float32`, `float64`, `float16` or `bfloat16`) or `Constant` nodes.
//! Anything else is an [`Error::Unsupported`] naming the node and its op type; a malformed file
//! (bad encoding, a cycle, a dangling input, a value defined twice) is an [`Error::Malformed`].
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

mod external;
mod fold;
mod proto;

use crate::error::{Error, Result};
use crate::graph::{Node, Source};
use crate::layers::{
    AdaptiveAvgPool2d, Add, AvgPool2d, BatchNorm2d, ChannelAffine, Clip, Concat, Conv2d, Dense,
    Dropout, Flatten, Gelu, HardSigmoid, HardSwish, IdentityLayer, Layer, LayerKind, LeakyReLU,
    MaxPool2d, Mul, ReLU, Sigmoid, Tanh,
};
use crate::network::Network;
use fold::{BATCH, Const};
use ndarray::{Array1, Array2, Array4};
use proto::{AttributeProto, Dim, GraphProto, NodeProto, Values, dtype};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

pub use proto::MAX_TENSOR_ELEMENTS;
pub(crate) use proto::f16_to_f32;

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
    metadata: BTreeMap<String, String>,
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
    /// The activations the node reads (the graph input or earlier nodes' outputs), in the order
    /// of its ONNX inputs; empty for nodes evaluated at import (constants, shape arithmetic).
    pub inputs: Vec<Source>,
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

    /// The model's `metadata_props` (key → value; a key given twice keeps its last value).
    ///
    /// klrp reads the keys `klrp.mean`, `klrp.std`, `klrp.resize` and `klrp.crop`, the
    /// preprocessing of image inputs the model expects
    /// ([`Preprocess::from_metadata`](crate::io::image::Preprocess::from_metadata), feature
    /// `images`; docs/interop.md).
    ///
    /// ```
    /// use klrp::io::onnx::load_onnx_file;
    /// let model = load_onnx_file("tests/fixtures/onnx/mlp/legacy.onnx")?;
    /// assert!(model.metadata().get("klrp.mean").is_none()); // this file has none
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
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
    let path = path.as_ref();
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    crate::io::parse_file(path, |bytes| {
        import(
            proto::decode_model_owned(bytes)?,
            max_sample_elements,
            Some(dir),
        )
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
    import(proto::decode_model(bytes)?, max_sample_elements, None)
}

/// Imports a model whose external data files, if any, are in `dir` (`None`: refuse them).
/// Builds the model from its decoded messages; `dir` is where external data files are looked
/// up (`None`: refused).
fn import(
    model: proto::ModelProto,
    max_sample_elements: u64,
    dir: Option<&Path>,
) -> Result<OnnxModel> {
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
    let mut imp = Importer::new(graph, max_sample_elements, dir)?;
    for (i, node) in graph.nodes.iter().enumerate() {
        imp.node(i, node)?;
    }
    let mut m = imp.finish(graph, opset, producer)?;
    m.metadata = model.metadata.into_iter().collect();
    Ok(m)
}

#[derive(Clone, Debug)]
enum Value {
    Const(Rc<Const>),
    /// An activation: the graph input or a node's output, with its per-sample shape (for the
    /// output of a `Pad` not yet folded, the shape before padding, and the padding).
    Activation {
        from: Source,
        shape: Vec<usize>,
        pad: Option<PendingPad>,
    },
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
    softmax_at: Option<usize>,
    /// The limit on one sample's activation.
    max_sample_elements: u64,
    /// The padding of the `Pad` node being imported, for its output's value.
    pending_pad: Option<PendingPad>,
    /// How many node inputs and graph outputs read each value.
    readers: BTreeMap<String, usize>,
}

/// A `Pad` node whose padding goes into the convolution reading its output.
#[derive(Clone, Debug)]
struct PendingPad {
    /// The `Pad` node's index.
    node: usize,
    /// Padding (top, left, bottom, right).
    pads: [usize; 4],
}

/// An activation a node reads.
struct Act {
    /// The node input's position.
    k: usize,
    from: Source,
    /// Per-sample shape.
    shape: Vec<usize>,
    pad: Option<PendingPad>,
}

fn node_label(i: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!("ONNX node {i} ({})", node.op_type)
    } else {
        format!("ONNX node {i} '{}' ({})", node.name, node.op_type)
    }
}

/// Checks the graph's wiring before import: every value defined once, every input defined, no
/// cycle, nodes in topological order. Returns how many node inputs and graph outputs read each
/// value.
///
/// # Errors
/// [`Error::Malformed`] for a value two nodes (or a node and an initializer or the graph input)
/// define, an input nothing defines, a cycle (its nodes named), or a node reading a later
/// node's output.
fn check_graph(graph: &GraphProto) -> Result<BTreeMap<String, usize>> {
    // Who defines each value: None for initializers and graph inputs, Some(node) for outputs.
    let mut defined: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for t in &graph.initializers {
        defined.insert(t.name.as_str(), None);
    }
    for v in &graph.inputs {
        defined.insert(v.name.as_str(), None);
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        for out in node.outputs.iter().filter(|o| !o.is_empty()) {
            if let Some(prev) = defined.insert(out.as_str(), Some(i)) {
                let by = match prev {
                    Some(j) => node_label(j, &graph.nodes[j]),
                    None => "an initializer or the graph input".into(),
                };
                return Err(Error::malformed(
                    "ONNX",
                    format!(
                        "{} defines '{out}', which {by} already defines (each value must have \
                         one producer)",
                        node_label(i, node)
                    ),
                ));
            }
        }
    }
    let mut readers: BTreeMap<String, usize> = BTreeMap::new();
    // deps[i]: the nodes whose outputs node i reads.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len()];
    let mut later: Option<(usize, usize, &str)> = None;
    for (i, node) in graph.nodes.iter().enumerate() {
        for name in node.inputs.iter().filter(|n| !n.is_empty()) {
            match defined.get(name.as_str()) {
                None => {
                    return Err(Error::malformed(
                        "ONNX",
                        format!(
                            "{} reads '{name}', which no node, initializer or graph input \
                             defines (a dangling input)",
                            node_label(i, node)
                        ),
                    ));
                }
                Some(Some(j)) => {
                    deps[i].push(*j);
                    if *j >= i && later.is_none() {
                        later = Some((i, *j, name.as_str()));
                    }
                }
                Some(None) => {}
            }
            // Shape and Size read only the shape, CastLike's second input only the type: they
            // do not count as readers of the data.
            let metadata = match node.op_type.as_str() {
                "Shape" | "Size" => true,
                "CastLike" => node.inputs.get(1) == Some(name),
                _ => false,
            };
            if !metadata {
                *readers.entry(name.clone()).or_insert(0) += 1;
            }
        }
    }
    for v in &graph.outputs {
        if !defined.contains_key(v.name.as_str()) {
            return Err(Error::malformed(
                "ONNX",
                format!("the graph output '{}' is not defined by any node", v.name),
            ));
        }
        *readers.entry(v.name.clone()).or_insert(0) += 1;
    }
    if let Some((i, j, name)) = later {
        if let Some(cycle) = find_cycle(&deps) {
            let path = cycle
                .iter()
                .map(|&k| node_label(k, &graph.nodes[k]))
                .collect::<Vec<_>>()
                .join(" → ");
            return Err(Error::malformed(
                "ONNX",
                format!("the graph has a cycle: {path} → back to the first"),
            ));
        }
        return Err(Error::malformed(
            "ONNX",
            format!(
                "{} reads '{name}', the output of the later {}: ONNX requires the nodes in \
                 topological order",
                node_label(i, &graph.nodes[i]),
                node_label(j, &graph.nodes[j])
            ),
        ));
    }
    Ok(readers)
}

/// A cycle in the dependency lists (each node's predecessors), as the nodes along it.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Iterative depth-first search: 0 unvisited, 1 on the stack, 2 done.
    let mut state = vec![0u8; deps.len()];
    for start in 0..deps.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = deps[v].get(*next) {
                *next += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(u, _)| u == w).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(u, _)| u).collect();
                        cycle.reverse(); // dependencies point backwards: print data flow order
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    None
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

/// A convolution's (top, left, bottom, right) padding, honouring `auto_pad` (`SAME_UPPER` and
/// `SAME_LOWER` computed from the input size as ONNX defines them).
fn conv_pads(
    node: &NodeProto,
    (h, w): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
) -> Result<[usize; 4]> {
    let auto = attr_string(node, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    let same = |input: usize, k: usize, s: usize, d: usize| -> usize {
        let s = s.max(1);
        let out = input.div_ceil(s);
        let reach = k.saturating_sub(1).saturating_mul(d).saturating_add(1);
        out.saturating_sub(1)
            .saturating_mul(s)
            .saturating_add(reach)
            .saturating_sub(input)
    };
    match auto.as_str() {
        "NOTSET" | "" => match attr_ints(node, "pads") {
            None => Ok([0; 4]),
            Some(p) if p.len() == 4 => Ok([
                to_usize(p[0], "pads")?,
                to_usize(p[1], "pads")?,
                to_usize(p[2], "pads")?,
                to_usize(p[3], "pads")?,
            ]),
            Some(p) => Err(Error::Unsupported(format!(
                "pads = {p:?}: only 2-D operations are supported"
            ))),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let th = same(h, kernel.0, stride.0, dilation.0);
            let tw = same(w, kernel.1, stride.1, dilation.1);
            let (small_h, small_w) = (th / 2, tw / 2);
            Ok(if auto == "SAME_UPPER" {
                [small_h, small_w, th - small_h, tw - small_w]
            } else {
                [th - small_h, tw - small_w, small_h, small_w]
            })
        }
        other => Err(Error::Unsupported(format!("auto_pad = {other}"))),
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
    fn new(graph: &GraphProto, max_sample_elements: u64, dir: Option<&Path>) -> Result<Self> {
        if graph.sparse_initializers > 0 {
            return Err(Error::Unsupported(
                "ONNX sparse initializers are not supported".into(),
            ));
        }
        if graph.nodes.is_empty() {
            return Err(Error::malformed("ONNX", "the graph has no nodes"));
        }
        let readers = check_graph(graph)?;
        let mut values = BTreeMap::new();
        let mut external = external::ExternalFiles::default();
        for t in &graph.initializers {
            if t.name.is_empty() {
                return Err(Error::malformed("ONNX", "an initializer has no name"));
            }
            let (shape, v) = match (t.external, dir) {
                (true, Some(dir)) => t.values_from(Some(external.bytes(t, dir)?))?,
                _ => t.values()?,
            };
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
        values.insert(
            input.name.clone(),
            Value::Activation {
                from: Source::Input,
                shape: shape.clone(),
                pad: None,
            },
        );
        Ok(Importer {
            values,
            act: input.name.clone(),
            input_shape: shape.clone(),
            shape,
            declared_batch,
            input_name: input.name.clone(),
            layers: Vec::with_capacity(graph.nodes.len()),
            nodes: Vec::with_capacity(graph.nodes.len()),
            softmax_at: None,
            max_sample_elements,
            pending_pad: None,
            readers,
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
            Value::Activation { .. } => Err(Error::Unsupported(format!(
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

    fn push(
        &mut self,
        i: usize,
        node: &NodeProto,
        layer: Box<dyn Layer>,
        note: Option<String>,
        inputs: Vec<Source>,
    ) {
        self.layers.push(layer);
        self.nodes.push(OnnxNode {
            index: i,
            name: node.name.clone(),
            op_type: node.op_type.clone(),
            note,
            inputs,
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
        if node.op_type == "CastLike" {
            // Casts a constant to the type of input 1, which may be an activation (float).
            let data = self.const_input(node, 0, "input")?;
            let to = match node.inputs.get(1).map(|n| self.value(n)).transpose()? {
                Some(Value::Const(c)) if matches!(c.values, Values::I64(_)) => dtype::INT64,
                Some(_) => dtype::FLOAT,
                None => return Err(Error::malformed("ONNX", "CastLike without a target")),
            };
            let c = fold::cast(&data, to)?;
            self.define_outputs(i, node, vec![c])?;
            self.splice(i, node, "constant")?;
            return Ok(());
        }
        // The activations the node reads: (input position, source, per-sample shape, pad).
        let mut acts: Vec<Act> = Vec::new();
        for (k, name) in node.inputs.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            match self.value(name)? {
                Value::Activation { from, shape, pad } => acts.push(Act {
                    k,
                    from: *from,
                    shape: shape.clone(),
                    pad: pad.clone(),
                }),
                Value::Unavailable(why) => {
                    return Err(Error::Unsupported(format!("input '{name}' is {why}")));
                }
                Value::Const(_) => {}
            }
        }
        if acts.is_empty() {
            // Constants and shape arithmetic: evaluated now; an identity spliced into the
            // graph on the latest activation (see `splice`).
            let outs = fold::eval(node, &|k| self.opt_const_input(node, k, "input"))?;
            let note = if matches!(node.op_type.as_str(), "Constant" | "Identity") {
                "constant"
            } else {
                "shape computation"
            };
            self.define_outputs(i, node, outs)?;
            self.splice(i, node, note)?;
            return Ok(());
        }
        if node.op_type == "Shape" {
            // Only the shape is read: the ONNX shape, with a pending Pad's padding.
            let a = &acts[0];
            let mut dims: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
            if let (Some(p), 3) = (&a.pad, dims.len()) {
                dims[1] += (p.pads[0] + p.pads[2]) as i64;
                dims[2] += (p.pads[1] + p.pads[3]) as i64;
            }
            let full: Vec<i64> = std::iter::once(BATCH).chain(dims).collect();
            let v = fold::shape_slice(node, &full)?;
            let c = Const {
                shape: vec![v.len()],
                values: Values::I64(v),
            };
            self.define_outputs(i, node, vec![c])?;
            self.splice(i, node, "shape computation")?;
            return Ok(());
        }
        if let Some(a) = acts.iter().find(|a| a.pad.is_some())
            && !(node.op_type == "Conv" && a.k == 0 && acts.len() == 1)
        {
            let p = a.pad.as_ref().map_or(0, |p| p.node);
            return Err(Error::Unsupported(format!(
                "reads the output of the Pad at node {p}: klrp folds a constant-zero Pad only \
                 into the Conv that reads it, and this is a {}",
                node.op_type
            )));
        }
        if let Some(s) = self.softmax_at {
            return Err(Error::Unsupported(format!(
                "follows the {} at node {s}; it is supported only as the last operation",
                self.nodes[s].op_type
            )));
        }
        let out = node
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| Error::malformed("ONNX", "the node has no output"))?
            .clone();
        let inputs: Vec<Source> = acts.iter().map(|a| a.from).collect();
        let single_merge = acts.len() == 1
            && matches!(node.op_type.as_str(), "Concat" | "Sum")
            && node.inputs.iter().filter(|n| !n.is_empty()).count() == 1;
        let (layer, note): (Box<dyn Layer>, Option<String>) = if single_merge {
            (
                Box::new(IdentityLayer),
                Some(format!("{} of one tensor", node.op_type)),
            )
        } else if acts.len() > 1 {
            (self.multi_input(node, &acts)?, None)
        } else {
            let a = &acts[0];
            if a.k != 0 && !matches!(node.op_type.as_str(), "Add" | "Mul") {
                return Err(Error::Unsupported(
                    "the activation must be the first input".into(),
                ));
            }
            self.shape = a.shape.clone();
            let (layer, note) = self.layer(i, node, a)?;
            (layer, note)
        };
        let in_shapes: Vec<&[usize]> = acts.iter().map(|a| a.shape.as_slice()).collect();
        let shape = layer.output_shape_multi(&in_shapes)?;
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
        let pad = self.pending_pad.take();
        self.values.insert(
            out.clone(),
            Value::Activation {
                from: Source::Node(i),
                shape,
                pad,
            },
        );
        self.act = out;
        self.push(i, node, layer, note, inputs);
        Ok(())
    }

    /// Adds node `i`, evaluated at import, as an identity reading the latest activation; later
    /// readers of that activation read the identity instead (the same values), so every node
    /// of the file is a node of the network and none dangles.
    fn splice(&mut self, i: usize, node: &NodeProto, note: &str) -> Result<()> {
        let Some(Value::Activation { from, shape, pad }) = self.values.get(&self.act).cloned()
        else {
            return Err(Error::malformed(
                "ONNX",
                "the latest activation is not defined",
            ));
        };
        self.values.insert(
            self.act.clone(),
            Value::Activation {
                from: Source::Node(i),
                shape,
                pad,
            },
        );
        self.push(
            i,
            node,
            Box::new(IdentityLayer),
            Some(note.into()),
            vec![from],
        );
        Ok(())
    }

    /// The source behind the identities spliced in for constants (see [`splice`](Self::splice)).
    fn skip_constants(&self, mut from: Source) -> Source {
        while let Source::Node(p) = from
            && self.nodes[p].inputs.len() == 1
            && self.layers[p].kind() == LayerKind::Identity
            && matches!(
                self.nodes[p].note.as_deref(),
                Some("constant" | "shape computation")
            )
        {
            from = self.nodes[p].inputs[0];
        }
        from
    }

    /// Records the values a constant node computed under its output names.
    fn define_outputs(&mut self, i: usize, node: &NodeProto, outs: Vec<Const>) -> Result<()> {
        let label = node_label(i, node);
        let mut outs = outs.into_iter();
        for name in &node.outputs {
            let value = match outs.next() {
                Some(c) => Value::Const(Rc::new(c)),
                None => Value::Unavailable(format!(
                    "an extra output of {label}, which klrp does not compute"
                )),
            };
            if !name.is_empty() {
                self.values.insert(name.clone(), value);
            }
        }
        Ok(())
    }

    /// The layer of a node combining two or more activations: a residual `Add`/`Sum`, a
    /// channel `Concat`, a `Mul` by a gate. Shapes are checked here, with the ONNX names.
    fn multi_input(&self, node: &NodeProto, acts: &[Act]) -> Result<Box<dyn Layer>> {
        let first = &acts[0].shape;
        match node.op_type.as_str() {
            "Add" | "Sum" => {
                if let Some(a) = acts.iter().find(|a| a.shape != *first) {
                    return Err(Error::shape(
                        format!("{} of activations (a residual sum)", node.op_type),
                        first,
                        &a.shape,
                    ));
                }
                Ok(Box::new(Add))
            }
            "Concat" => {
                let axis = attr_int(node, "axis", 0)?;
                let rank = first.len() as i64 + 1;
                let axis = if axis < 0 { axis + rank } else { axis };
                if axis != 1 {
                    return Err(Error::Unsupported(format!(
                        "Concat of activations along axis {axis} (only the channel axis 1 is \
                         supported)"
                    )));
                }
                if let Some(a) = acts
                    .iter()
                    .find(|a| a.shape.len() != first.len() || a.shape[1..] != first[1..])
                {
                    return Err(Error::shape(
                        "Concat input (all but the channel axis must agree)",
                        first,
                        &a.shape,
                    ));
                }
                Ok(Box::new(Concat))
            }
            "Mul" if acts.len() == 2 => {
                let gates: Vec<usize> = (0..2)
                    .filter(|&k| match self.skip_constants(acts[k].from) {
                        Source::Node(p) => self.layers[p].is_gate(),
                        Source::Input => false,
                    })
                    .collect();
                match gates.as_slice() {
                    [g] => Ok(Box::new(Mul::gate(*g))),
                    _ => Err(Error::Unsupported(format!(
                        "Mul of two activations needs exactly one gate operand (the output of a \
                         Sigmoid or HardSigmoid); here {} of the two are",
                        gates.len()
                    ))),
                }
            }
            op => Err(Error::Unsupported(format!(
                "{op} of {} activations (supported: Add/Sum of activations of one shape, \
                 Concat on channels, Mul of an activation by a gate)",
                acts.len()
            ))),
        }
    }

    /// The layer of a node reading one activation `a` (`self.shape` is its shape): the layer
    /// and a note for nodes that are not layers in their own right.
    fn layer(
        &mut self,
        i: usize,
        node: &NodeProto,
        a: &Act,
    ) -> Result<(Box<dyn Layer>, Option<String>)> {
        let plain = |l: Box<dyn Layer>| Ok((l, None));
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
                ))
            }
            "Conv" => {
                let conv = self.conv(node, a.pad.as_ref().map(|p| p.pads))?;
                if let Some(p) = &a.pad {
                    self.nodes[p.node].note = Some(format!(
                        "zero padding {:?} (top, left, bottom, right) folded into the Conv at \
                         node {i}",
                        p.pads
                    ));
                }
                plain(Box::new(conv))
            }
            "Pad" => {
                let pads = self.pad_amounts(node)?;
                let out = node.outputs.first().map_or("", String::as_str);
                let readers = self.readers.get(out).copied().unwrap_or(0);
                if readers != 1 {
                    return Err(Error::Unsupported(format!(
                        "the Pad's output is read {readers} times; klrp folds a constant-zero \
                         Pad into the one Conv that reads it"
                    )));
                }
                self.pending_pad = Some(PendingPad { node: i, pads });
                Ok((
                    Box::new(IdentityLayer),
                    Some("zero padding, folded into the Conv that reads it".into()),
                ))
            }
            "Clip" => {
                let (lo, hi) = self.clip_bounds(node)?;
                let (lo, hi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
                if lo == 0.0 && hi == f32::INFINITY {
                    Ok((Box::new(ReLU), Some("Clip(0, ∞) = ReLU".into())))
                } else {
                    plain(Box::new(Clip::new(lo, hi)?))
                }
            }
            "Sigmoid" => plain(Box::new(Sigmoid)),
            "Tanh" => plain(Box::new(Tanh)),
            "HardSwish" => plain(Box::new(HardSwish)),
            "HardSigmoid" => plain(Box::new(HardSigmoid::new(
                attr_float(node, "alpha", 0.2)?,
                attr_float(node, "beta", 0.5)?,
            )?)),
            "LeakyRelu" => plain(Box::new(LeakyReLU::new(attr_float(node, "alpha", 0.01)?)?)),
            "Gelu" => match attr_string(node, "approximate").as_deref() {
                None | Some("none") => plain(Box::<Gelu>::default()),
                Some("tanh") => plain(Box::new(Gelu::tanh())),
                Some(other) => Err(Error::Unsupported(format!("Gelu approximate = {other}"))),
            },
            "ReduceMean" => {
                self.global_mean(node)?;
                Ok((
                    Box::new(AdaptiveAvgPool2d::new((1, 1))?),
                    Some("mean over H, W = global average pooling".into()),
                ))
            }
            "Gemm" => plain(Box::new(self.gemm(node)?)),
            "MatMul" => plain(Box::new(self.matmul(node)?)),
            "Add" => self.fuse_constant(node, a, false),
            "Mul" => self.fuse_constant(node, a, true),
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
                    Ok((Box::new(Flatten), Some("reshape to [N, -1]".into())))
                } else if self.is_same_shape(t, allowzero) {
                    Ok((
                        Box::new(IdentityLayer),
                        Some("reshape to the same shape".into()),
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
                "operator {op} is not supported (supported: Conv, Gemm, MatMul, Add, Sum, Mul, \
                 Concat, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, LeakyRelu, Tanh, Gelu, Pad \
                 (folded into the Conv after it), MaxPool, AveragePool, GlobalAveragePool, \
                 ReduceMean (over H, W), Flatten, Reshape (as a flatten), BatchNormalization, \
                 Dropout, Identity, a trailing Softmax, and the constant operators of the module \
                 docs)"
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

    /// The (top, left, bottom, right) padding of a constant-zero `Pad` on `[N, C, H, W]`.
    fn pad_amounts(&self, node: &NodeProto) -> Result<[usize; 4]> {
        let mode = attr_string(node, "mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(Error::Unsupported(format!(
                "Pad with mode '{mode}' (only constant zero padding, folded into the next Conv, \
                 is supported)"
            )));
        }
        if self.shape.len() != 3 {
            return Err(Error::Unsupported(format!(
                "Pad on sample shape {:?} (need [C, H, W] before a Conv)",
                self.shape
            )));
        }
        // opset ≥ 11: pads, constant_value, axes as inputs; before: attributes.
        let (pads, value) = match attr_ints(node, "pads") {
            Some(p) => (p, attr_float(node, "value", 0.0)?),
            None => {
                let p = self.const_input(node, 1, "pads")?;
                let value = match self.opt_const_input(node, 2, "constant_value")? {
                    Some(v) => v.scalar_f32("the Pad constant_value")?,
                    None => 0.0,
                };
                (p.ints("Pad pads")?.to_vec(), value)
            }
        };
        if value != 0.0 {
            return Err(Error::Unsupported(format!(
                "Pad with value {value}: only zero padding can be folded into a convolution"
            )));
        }
        // pads per axis of [N, C, H, W], restricted to the given axes if any.
        let axes: Vec<usize> = match self.opt_const_input(node, 3, "axes")? {
            Some(a) => a
                .ints("Pad axes")?
                .iter()
                .map(|&x| {
                    let x2 = if x < 0 { x + 4 } else { x };
                    usize::try_from(x2)
                        .ok()
                        .filter(|&x2| x2 < 4)
                        .ok_or_else(|| Error::malformed("ONNX", format!("Pad axis {x}")))
                })
                .collect::<Result<_>>()?,
            None => (0..4).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(Error::malformed(
                "ONNX",
                format!(
                    "Pad pads {pads:?} need 2 × {} values for the padded axes",
                    axes.len()
                ),
            ));
        }
        let mut full = [0i64; 8];
        for (k, &a) in axes.iter().enumerate() {
            full[a] = pads[k];
            full[a + 4] = pads[k + axes.len()];
        }
        if full[0] != 0 || full[1] != 0 || full[4] != 0 || full[5] != 0 {
            return Err(Error::Unsupported(format!(
                "Pad of the batch or channel axis (pads {pads:?})"
            )));
        }
        Ok([
            to_usize(full[2], "pads")?,
            to_usize(full[3], "pads")?,
            to_usize(full[6], "pads")?,
            to_usize(full[7], "pads")?,
        ])
    }

    /// `Clip`'s (min, max), from constant inputs (opset ≥ 11) or attributes.
    fn clip_bounds(&self, node: &NodeProto) -> Result<(Option<f32>, Option<f32>)> {
        let bound = |k: usize, name: &str| -> Result<Option<f32>> {
            if let Some(a) = attr(node, name) {
                return a.f.map(Some).ok_or_else(|| {
                    Error::malformed("ONNX", format!("attribute {name} has no float value"))
                });
            }
            self.opt_const_input(node, k, name)?
                .map(|c| c.scalar_f32(&format!("the Clip {name}")))
                .transpose()
        };
        Ok((bound(1, "min")?, bound(2, "max")?))
    }

    /// Checks that a `ReduceMean` averages `[N, C, H, W]` over H and W, keeping the axes.
    fn global_mean(&self, node: &NodeProto) -> Result<()> {
        let axes = match attr_ints(node, "axes") {
            Some(a) => a,
            None => match self.opt_const_input(node, 1, "axes")? {
                Some(a) => a.ints("ReduceMean axes")?.to_vec(),
                None => Vec::new(),
            },
        };
        let mut axes: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + 4 } else { a })
            .collect();
        axes.sort_unstable();
        if self.shape.len() != 3 || axes != [2, 3] {
            return Err(Error::Unsupported(format!(
                "ReduceMean over axes {axes:?} of sample shape {:?} (only the mean over H and W \
                 of [N, C, H, W], a global average pooling, is supported)",
                self.shape
            )));
        }
        if attr_int(node, "keepdims", 1)? != 1 {
            return Err(Error::Unsupported(
                "ReduceMean with keepdims = 0 (only keepdims = 1, a global average pooling, is \
                 supported)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A convolution; `extra` is the (top, left, bottom, right) padding of a `Pad` before it.
    fn conv(&self, node: &NodeProto, extra: Option<[usize; 4]>) -> Result<Conv2d> {
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
        if self.shape.len() != 3 {
            return Err(Error::shape(
                "Conv input [C, H, W]",
                &[ci, 0, 0],
                &self.shape,
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
        let stride = pair(node, "strides", (1, 1))?;
        let dilation = pair(node, "dilations", (1, 1))?;
        let own = conv_pads(
            node,
            (self.shape[1], self.shape[2]),
            (kh, kw),
            stride,
            dilation,
        )?;
        let p = extra.unwrap_or([0; 4]);
        let total = [
            own[0].saturating_add(p[0]),
            own[1].saturating_add(p[1]),
            own[2].saturating_add(p[2]),
            own[3].saturating_add(p[3]),
        ];
        let conv = Conv2d::new(weight, bias)?
            .with_stride(stride)?
            .with_padding_asym((total[0], total[1]), (total[2], total[3]))?
            .with_dilation(dilation)?
            .with_groups(groups)?;
        if self.shape[0] != conv.in_channels() {
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

    /// `Add` or `Mul` of the activation `a` and a constant: a bias (`Add`) or a scale (`Mul`)
    /// fused into the dense or convolution layer producing `a`, which nothing else may read;
    /// the node becomes an identity.
    fn fuse_constant(
        &mut self,
        node: &NodeProto,
        a: &Act,
        scale: bool,
    ) -> Result<(Box<dyn Layer>, Option<String>)> {
        let what = if scale { "factor" } else { "addend" };
        let c = self.const_input(node, 1 - a.k.min(1), what)?;
        let producer = match self.skip_constants(a.from) {
            Source::Node(p) if self.layers[p].kind().is_linear() => Some(p),
            _ => None,
        };
        let name = &node.inputs[a.k];
        let readers = self.readers.get(name).copied().unwrap_or(0);
        let Some(p) = producer.filter(|_| readers == 1) else {
            return Err(Error::Unsupported(format!(
                "{} of a constant is supported only as a {} of the MatMul, Gemm or Conv \
                 producing the other operand, when nothing else reads that operand",
                node.op_type,
                if scale { "scale" } else { "bias" }
            )));
        };
        let v = c.floats(if scale { "the factor" } else { "the bias" })?;
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
            return Err(Error::shape(
                format!("{what} of {}", node.op_type),
                want,
                &c.shape,
            ));
        }
        let per_channel = if v.len() == 1 {
            vec![v[0]; out]
        } else {
            v.to_vec()
        };
        let affine = if scale {
            ChannelAffine {
                scale: per_channel,
                shift: vec![0.0; out],
            }
        } else {
            ChannelAffine {
                scale: vec![1.0; out],
                shift: per_channel,
            }
        };
        self.layers[p].fuse_channel_affine(&affine)?;
        let note = if scale {
            format!("scale of layer {p}")
        } else {
            format!("bias of layer {p}")
        };
        Ok((Box::new(IdentityLayer), Some(note)))
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
        let last = self.layers.len().checked_sub(1);
        match self.values.get(&output.name) {
            Some(Value::Activation { pad: Some(p), .. }) => {
                return Err(Error::Unsupported(format!(
                    "the graph output is the output of the Pad at node {} (klrp folds a \
                     constant-zero Pad into the Conv that reads it)",
                    p.node
                )));
            }
            Some(Value::Activation {
                from: Source::Node(j),
                ..
            }) if Some(*j) == last => {}
            _ => {
                return Err(Error::Unsupported(format!(
                    "the graph output '{}' is not the output of the last node (klrp's network \
                     ends in its last node; nodes after the output would dangle)",
                    output.name
                )));
            }
        }
        let inputs: Vec<Vec<Source>> = self.nodes.iter().map(|n| n.inputs.clone()).collect();
        let nodes: Vec<Node> = self
            .layers
            .into_iter()
            .zip(inputs)
            .map(|(layer, inputs)| Node::boxed(layer, inputs))
            .collect();
        let network = Network::graph_with_max_elements(
            &self.input_shape,
            nodes,
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
            metadata: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_attributes_are_refused() {
        assert!(to_usize(1 << 40, "pads").is_err());
        assert!(to_usize(-1, "pads").is_err());
        assert_eq!(to_usize(3, "pads").unwrap(), 3);
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", MAX_SAMPLE_ELEMENTS).is_err());
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", 1 << 40).is_ok());
    }
}
