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
//! `ceil_mode` 0 or 1, dilation 1), `GlobalAveragePool`, `ReduceMean` and `ReduceSum` (any axes
//! but the batch, `keepdims` 0 or 1; [`Reduce`](crate::layers::Reduce)),
//! `Flatten` (axis 1), `Reshape` to `[N, -1]` (imported as [`Flatten`]), `BatchNormalization`
//! (inference mode, kept as [`BatchNorm2d`] for [`Network::canonize`] to fuse, or to keep as a
//! standalone linear layer where it cannot be fused), `Dropout`,
//! `Identity`, a trailing `Softmax`/`LogSoftmax`.
//! Weights come from initializers (stored as `raw_data`, the typed fields or an external data
//! file next to the model; `float32`, `float64`, `float16` or `bfloat16`) or `Constant` nodes.
//! Anything else is an [`Error::Unsupported`] naming the node and its op type; a malformed file
//! (bad encoding, a cycle, a dangling input, a value defined twice) is an [`Error::Malformed`].
//!
//! The graph's single non-initializer input gives the sample shape (its first axis is the batch,
//! fixed or symbolic; the others must be fixed). The network accepts any batch size.
//!
//! [`IdentityLayer`]: crate::layers::IdentityLayer
//! [`Add`]: crate::layers::Add
//! [`Concat`]: crate::layers::Concat
//! [`Mul`]: crate::layers::Mul
//! [`Flatten`]: crate::layers::Flatten
//! [`BatchNorm2d`]: crate::layers::BatchNorm2d
//!
//! # Decoding
//!
//! Every message of `onnx.proto` is decoded by [`prost`](https://docs.rs/prost), from types
//! generated once by `tools/onnx-proto` and checked in (`generated.rs`: no `protoc` and no build
//! script for users); `proto.rs` gathers the fields the importer reads. A model loaded from a
//! file shares the file's buffer for its tensor bytes. [`parse_onnx`] takes any byte slice and
//! returns an error, never panics (fuzzed: docs/reliability.md).

// Decoding: `proto` (the protobuf messages, decoded by the prost types of `generated.rs`, into
// the crate's structs) and `external` (tensor data in files next to the model).
mod external;
mod proto;
// The import, node by node: `importer` (the state and the per-node driver), `wiring` (the
// graph's checks before), `attrs` (attribute readers); the clean-up, `fold` (constant folding)
// and `fuse` (pattern fusion); `ops` (the operator table, one file per operator family).
mod attrs;
mod fold;
mod fuse;
mod importer;
mod ops;
mod wiring;

use crate::error::{Error, Result};
use crate::graph::Source;
use crate::network::Network;
use importer::Importer;
use std::collections::BTreeMap;
use std::path::Path;

pub use proto::MAX_TENSOR_ELEMENTS;
pub(crate) use proto::f16_to_f32;

/// The largest activation of one sample accepted at import by [`parse_onnx`] and
/// [`load_onnx_file`] (2²⁸ elements, 1 GiB of `f32`); [`parse_onnx_with_max_elements`] takes
/// another.
pub const MAX_SAMPLE_ELEMENTS: u64 = 1 << 28;

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

/// One ONNX node and the layer it became: `nodes()[i]` is network node `i` (layer index = ONNX
/// node index, except after a `Split`, whose outputs are one network node each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxNode {
    /// The node's index in the graph; its layer's index in the network too, unless a `Split`
    /// with several outputs read comes before it (each output is a network node of its own,
    /// all with the `Split`'s index).
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

/// Builds the model from its decoded messages, node by node; `dir` is where external data
/// files are looked up (`None`: refused).
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
