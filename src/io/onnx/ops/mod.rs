//! Operator mapping: which family file turns which ONNX operator into which layer (the
//! [`Importer::map`] table); uses the family files below, `fuse`, the `Importer` and the layers.

mod activation;
mod linear;
mod merge;
mod pool;
mod shape;

use super::fuse;
use super::importer::{Act, Importer};
use super::proto::NodeProto;
use crate::error::{Error, Result};
use crate::layers::{HardSwish, IdentityLayer, Layer, ReLU, ReduceOp, Sigmoid, Tanh};

/// What a node became: its layer and, for a node that is not a layer in its own right, a note
/// ([`OnnxNode::note`](crate::io::onnx::OnnxNode::note)).
pub(super) type Mapped = (Box<dyn Layer>, Option<String>);

/// A node that is a layer in its own right.
fn plain(layer: impl Layer + 'static) -> Result<Mapped> {
    Ok((Box::new(layer), None))
}

impl Importer {
    /// The layer of node `i`, which reads the activations `acts` (at least one).
    pub(super) fn map(&mut self, i: usize, node: &NodeProto, acts: &[Act]) -> Result<Mapped> {
        let op = node.op_type.as_str();
        let [a] = acts else {
            return Ok((self.multi_input(node, acts)?, None));
        };
        if matches!(op, "Concat" | "Sum")
            && node.inputs.iter().filter(|n| !n.is_empty()).count() == 1
        {
            return Ok(merge::of_one(node));
        }
        if a.k != 0 && !matches!(op, "Add" | "Mul") {
            return Err(Error::Unsupported(
                "the activation must be the first input".into(),
            ));
        }
        self.shape = a.shape.clone();
        self.single_input(i, node, a)
    }

    /// The layer of a node combining two or more activations. Shapes are checked by the
    /// family functions, with the ONNX names.
    fn multi_input(&self, node: &NodeProto, acts: &[Act]) -> Result<Box<dyn Layer>> {
        match node.op_type.as_str() {
            "Add" | "Sum" => Ok(Box::new(merge::sum(node, acts)?)),
            "Concat" => Ok(Box::new(merge::concat(node, acts)?)),
            "Mul" if acts.len() == 2 => Ok(Box::new(merge::gate(self, acts)?)),
            op => Err(Error::Unsupported(format!(
                "{op} of {} activations (supported: Add/Sum of activations of one shape, \
                 Concat on channels, Mul of an activation by a gate)",
                acts.len()
            ))),
        }
    }

    /// The layers of a `Split` reading the activation of shape `self.shape`, one per output.
    pub(super) fn split_parts(&self, node: &NodeProto) -> Result<Vec<Box<dyn Layer>>> {
        shape::split(self, node)
    }

    /// The layer of node `i` reading one activation `a` (`self.shape` is its shape).
    fn single_input(&mut self, i: usize, node: &NodeProto, a: &Act) -> Result<Mapped> {
        match node.op_type.as_str() {
            // linear.rs
            "Conv" => linear::conv(self, i, node, a),
            "Gemm" => plain(linear::gemm(self, node)?),
            "MatMul" => plain(linear::matmul(self, node)?),
            "BatchNormalization" => plain(linear::batch_norm(self, node)?),
            // pool.rs
            "MaxPool" => plain(pool::max_pool(self, node)?),
            "AveragePool" => plain(pool::average_pool(self, node)?),
            "GlobalAveragePool" => plain(pool::global_average_pool(self)?),
            "ReduceMean" => pool::reduce(self, node, ReduceOp::Mean),
            "ReduceSum" => pool::reduce(self, node, ReduceOp::Sum),
            // activation.rs, and the activations without parameters
            "Relu" => plain(ReLU),
            "Sigmoid" => plain(Sigmoid),
            "Tanh" => plain(Tanh),
            "HardSwish" => plain(HardSwish),
            "Clip" => activation::clip(self, node),
            "HardSigmoid" => plain(activation::hard_sigmoid(node)?),
            "LeakyRelu" => plain(activation::leaky_relu(node)?),
            "Gelu" => plain(activation::gelu(node)?),
            "Softmax" | "LogSoftmax" => activation::trailing_softmax(self),
            // shape.rs
            "Identity" => plain(IdentityLayer),
            "Dropout" => plain(shape::dropout(self, node)?),
            "Flatten" => plain(shape::flatten(self, node)?),
            "Reshape" => shape::reshape(self, node),
            "Transpose" => shape::transpose(self, node),
            "Squeeze" => shape::squeeze(self, node),
            "Unsqueeze" => shape::unsqueeze(self, node),
            "Slice" => shape::slice(self, node),
            "Gather" => shape::gather(self, node),
            // fuse.rs: folded into the layer before or after
            "Add" => fuse::bias(self, node, a),
            "Mul" => fuse::scale(self, node, a),
            "Pad" => fuse::pad(self, i, node),
            op => Err(Error::Unsupported(format!(
                "operator {op} is not supported (supported: Conv, Gemm, MatMul, Add, Sum, Mul, \
                 Concat, Relu, Clip, Sigmoid, HardSigmoid, HardSwish, LeakyRelu, Tanh, Gelu, Pad \
                 (folded into the Conv after it), MaxPool, AveragePool, GlobalAveragePool, \
                 ReduceMean, ReduceSum, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Split, \
                 Slice, Gather (constant indices; none moving the batch axis), BatchNormalization, \
                 Dropout, Identity, a trailing Softmax, and the constant operators of the module \
                 docs)"
            ))),
        }
    }
}
