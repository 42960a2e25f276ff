//! `Network`: layers in sequence, the forward pass, and K-LRP from an initialization vector.
//!
//! May import: `conversion`, `error`, `graph`, `kernels`, `layers`, `rules`, `semiring`, `shares`,
//! `tensor` (docs/architecture.md, "Layers").

use crate::conversion::{Conversion, PerLayer};
use crate::error::{Error, Result};
use crate::graph::{GraphBuilder, Node, Source, check_order, check_sources};
use crate::kernels;
use crate::layers::{IdentityLayer, Layer};
use crate::rules::Rule;
use crate::semiring::{Real, Semiring};
use crate::shares::Shares;
use crate::tensor::{Tensor, with_batch};
use ndarray::{ArrayBase, ArrayD, Axis, Data, Dimension, IxDyn};
use num_traits::Float;
use std::fmt::Debug;

/// A feed-forward network: layers applied to batches of a fixed sample shape, in sequence
/// ([`Network::new`]) or as a directed acyclic graph ([`Network::graph`],
/// [`GraphBuilder`]) whose nodes name their inputs.
///
/// Shapes are checked when the network is built, with errors naming the layer (node).
///
/// ```
/// use klrp::layers::{Dense, ReLU};
/// use klrp::{Composite, Network, PerLayer, Threshold};
/// use klrp::semiring::Boolean;
/// use ndarray::array;
///
/// let net = Network::new(
///     [2],
///     vec![
///         Box::new(Dense::new(array![[1.0, -1.0], [0.5, 2.0]], None)?),
///         Box::new(ReLU),
///         Box::new(Dense::new(array![[1.0, 1.0]], None)?),
///     ],
/// )?;
/// let x = array![[1.0_f32, 0.5]].into_dyn();
/// let theta = PerLayer::new(Threshold::new(0.2)?);
/// let r = net.explain::<Boolean, _>(&x, &[0], &Composite::k_lrp(), &theta)?;
/// assert_eq!(r.input().shape(), &[1, 2]);
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Debug)]
pub struct Network {
    input_shape: Vec<usize>,
    layers: Vec<Box<dyn Layer>>,
    /// The sources of every node's inputs, in operand order.
    inputs: Vec<Vec<Source>>,
    /// How many times each tensor is read, by activation index (0 the input, i + 1 node i).
    reads: Vec<usize>,
    shapes: Vec<Vec<usize>>,
    max_elements: u64,
}

/// The default limit on the elements of any one activation or relevance tensor a [`Network`]
/// allocates: 2³¹ (8 GiB of `f32`, 16 GiB of `u64` counts). Raise it with
/// [`Network::with_max_elements`] or [`Network::new_with_max_elements`].
pub const DEFAULT_MAX_ELEMENTS: u64 = 1 << 31;

/// Elements of `batch` samples of shape `sample` (saturating at `u128::MAX`).
fn elements(batch: usize, sample: &[usize]) -> u128 {
    sample
        .iter()
        .fold(batch as u128, |a, &d| a.saturating_mul(d as u128))
}

/// The activations of a forward pass: `activation(0)` is the input, `activation(i + 1)` the output
/// of layer (node) `i` — one per node in a graph. Relevance propagation reads them.
#[derive(Clone, Debug)]
pub struct Trace {
    activations: Vec<Tensor>,
}

impl Trace {
    /// The input of layer `i` in a chain, i.e. the output of node `i − 1` (`i = layers` gives the
    /// network's output); in a graph, activation `0` is the input and `i + 1` node `i`'s output.
    pub fn activation(&self, i: usize) -> Option<&Tensor> {
        self.activations.get(i)
    }

    /// All activations, input first.
    pub fn activations(&self) -> &[Tensor] {
        &self.activations
    }

    /// The network's output (logits).
    pub fn output(&self) -> &Tensor {
        self.activations
            .last()
            .unwrap_or_else(|| unreachable!("a trace holds the input"))
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.output().shape()[0]
    }

    /// The classical LRP initialization: the target's output activation at the target, 0 elsewhere.
    ///
    /// # Errors
    /// [`Error::TargetOutOfRange`] or [`Error::ShapeMismatch`] as for [`one_hot`].
    pub fn output_init(&self, targets: &[usize]) -> Result<ArrayD<Real<f32>>> {
        let out = self.output();
        let mut init = one_hot::<Real<f32>>(out.shape(), targets)?;
        for (s, &t) in targets.iter().enumerate() {
            let idx = flat_to_index(out.shape(), s, t);
            init[IxDyn(&idx)] = Real(out[IxDyn(&idx)]);
        }
        Ok(init)
    }

    /// The index of the largest output of every sample (the predicted class).
    pub fn predictions(&self) -> Vec<usize> {
        let out = self.output();
        out.outer_iter()
            .map(|s| {
                s.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv { (i, v) } else { (bi, bv) }
                    })
                    .0
            })
            .collect()
    }
}

/// The units of a forward pass that lie within `f32` rounding of a kink that decides where
/// relevance goes ([`Network::near_kinks`]; [`Layer::near_kinks`] says which kinks and how near):
/// per node, how many, summed over the batch. Where a unit is listed, a reference computed in
/// another precision (float64 gradient × input, PyTorch) may take the other side of the kink, and
/// the relevance of that unit's receptive field move with it: neither is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NearKinks {
    layers: Vec<(usize, usize)>,
}

impl NearKinks {
    /// `(node index, count)` for every node with at least one unit near a kink, in node order.
    pub fn layers(&self) -> &[(usize, usize)] {
        &self.layers
    }

    /// The count of node `i` (0 if it has none).
    pub fn at(&self, i: usize) -> usize {
        self.layers
            .iter()
            .find(|&&(l, _)| l == i)
            .map_or(0, |&(_, n)| n)
    }

    /// The total over every node.
    pub fn total(&self) -> usize {
        self.layers.iter().map(|&(_, n)| n).sum()
    }

    /// Whether no unit is near a kink.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The node with the most units near a kink (the first of equals), and its count.
    pub fn worst(&self) -> Option<(usize, usize)> {
        self.layers
            .iter()
            .copied()
            .reduce(|best, l| if l.1 > best.1 { l } else { best })
    }
}

fn flat_to_index(shape: &[usize], sample: usize, flat: usize) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    idx[0] = sample;
    let mut rest = flat;
    for d in (1..shape.len()).rev() {
        idx[d] = rest % shape[d];
        rest /= shape[d];
    }
    idx
}

/// `slot ← slot ⊕ r` element-wise (`slot ← r` when empty): the relevance of a tensor read by several
/// nodes is the ⊕ of what each reader sends back.
fn accumulate<K: Semiring>(slot: &mut Option<ArrayD<K>>, r: ArrayD<K>) {
    match slot {
        None => *slot = Some(r),
        Some(acc) => crate::tensor::elementwise::add_assign(acc, &r),
    }
}

/// The K-LRP initialization `R_i = 1 if i = target else 0`, one target per sample, for an output
/// batch of shape `output_shape` (`[N, ...]`).
///
/// # Errors
/// [`Error::ShapeMismatch`] if there is not one target per sample;
/// [`Error::TargetOutOfRange`] if a target is not an output index.
pub fn one_hot<K: Semiring>(output_shape: &[usize], targets: &[usize]) -> Result<ArrayD<K>> {
    let n = output_shape.first().copied().unwrap_or(0);
    if targets.len() != n {
        return Err(Error::shape(
            "targets (one per sample)",
            &[n],
            &[targets.len()],
        ));
    }
    let classes: usize = output_shape.iter().skip(1).product();
    let mut init = ArrayD::from_elem(IxDyn(output_shape), K::zero());
    for (s, &t) in targets.iter().enumerate() {
        if t >= classes {
            return Err(Error::TargetOutOfRange { target: t, classes });
        }
        init[IxDyn(&flat_to_index(output_shape, s, t))] = K::one();
    }
    Ok(init)
}

/// The result of relevance propagation.
#[derive(Clone, Debug)]
pub struct Relevance<K> {
    input: ArrayD<K>,
    layers: Option<Vec<ArrayD<K>>>,
    init: ArrayD<K>,
    overflowed: usize,
}

impl<K: Semiring> Relevance<K> {
    /// The relevance of the network's input, shaped like the input batch.
    pub fn input(&self) -> &ArrayD<K> {
        &self.input
    }

    /// Consumes the result, returning the input relevance.
    pub fn into_input(self) -> ArrayD<K> {
        self.input
    }

    /// The relevance at the input of layer `i` (`i = layers` is the initialization), when the
    /// propagation was asked to keep every layer. In a graph, index `i` is activation `i` of the
    /// [`Trace`]: `0` the network input, `i + 1` the output of node `i`, holding the ⊕ of what every
    /// reader of that output sent back (see [`node_output`](Relevance::node_output)).
    pub fn layer(&self, i: usize) -> Option<&ArrayD<K>> {
        self.layers.as_ref()?.get(i)
    }

    /// The relevance at the output of node `i` (the ⊕ over the nodes reading it; the
    /// initialization for the last node), when the propagation kept every layer.
    pub fn node_output(&self, i: usize) -> Option<&ArrayD<K>> {
        self.layer(i.checked_add(1)?)
    }

    /// The initialization vector the propagation started from.
    pub fn init(&self) -> &ArrayD<K> {
        &self.init
    }

    /// How many input relevance values overflowed their representation (saturated counts,
    /// infinities): 0 means every value is exact within its type's precision.
    pub fn overflowed(&self) -> usize {
        self.overflowed
    }

    /// The input relevance as `f64` (via [`Semiring::to_f64`]).
    pub fn to_f64(&self) -> ArrayD<f64> {
        self.input.mapv(|v| v.to_f64())
    }

    /// The kept relevance of every activation (input first), if the propagation kept them.
    pub(crate) fn into_layers(self) -> Option<Vec<ArrayD<K>>> {
        self.layers
    }
}

impl<F: Float + Debug + Send + Sync + 'static> Relevance<Real<F>> {
    /// Per sample, `Σ input relevance − Σ initial relevance`: how much the biases and stabilisers
    /// absorbed (0 for a conservative propagation).
    pub fn conservation_delta(&self) -> Vec<f64> {
        let sums = |a: &ArrayD<Real<F>>| -> Vec<f64> {
            a.outer_iter()
                .map(|s| s.iter().map(|v| v.to_f64()).sum())
                .collect()
        };
        sums(&self.input)
            .into_iter()
            .zip(sums(&self.init))
            .map(|(i, o)| i - o)
            .collect()
    }
}

impl Network {
    /// A network taking samples of shape `input_shape` through `layers` in order.
    ///
    /// # Errors
    /// [`Error::Layer`] naming the first layer whose input shape does not fit;
    /// [`Error::InvalidArgument`] if there are no layers or the input shape is empty or has a
    /// zero dimension; [`Error::TooLarge`] if one sample's input or a layer's output has more than
    /// [`DEFAULT_MAX_ELEMENTS`] elements (use [`Network::new_with_max_elements`] to allow more).
    pub fn new(input_shape: impl AsRef<[usize]>, layers: Vec<Box<dyn Layer>>) -> Result<Self> {
        Self::new_with_max_elements(input_shape, layers, DEFAULT_MAX_ELEMENTS)
    }

    /// As [`Network::new`], with `max_elements` as the limit on the elements of any one
    /// activation or relevance tensor (one sample at construction, the whole batch at
    /// [`trace`](Network::trace) and [`propagate`](Network::propagate)).
    ///
    /// # Errors
    /// As [`Network::new`]; [`Error::TooLarge`] against `max_elements`.
    pub fn new_with_max_elements(
        input_shape: impl AsRef<[usize]>,
        layers: Vec<Box<dyn Layer>>,
        max_elements: u64,
    ) -> Result<Self> {
        let nodes = layers
            .into_iter()
            .enumerate()
            .map(|(i, layer)| {
                let from = if i == 0 {
                    Source::Input
                } else {
                    Source::Node(i - 1)
                };
                Node::boxed(layer, [from])
            })
            .collect();
        Self::graph_with_max_elements(input_shape, nodes, max_elements)
    }

    /// A network whose `nodes`, in topological order, each name their inputs: node `i` reads the
    /// network input or nodes before it; the last node is the output. Node `i` is layer `i`
    /// everywhere (rules, Θ, traces, errors). [`GraphBuilder`] builds the
    /// node list step by step.
    ///
    /// ```
    /// use klrp::layers::{Add, Dense, ReLU};
    /// use klrp::{Network, Node, Source};
    /// use ndarray::array;
    ///
    /// let net = Network::graph(
    ///     [2],
    ///     vec![
    ///         Node::new(Dense::new(array![[1.0, 0.0], [0.0, 2.0]], None)?, [Source::Input]),
    ///         Node::new(ReLU, [Source::Node(0)]),
    ///         Node::new(Add, [Source::Node(1), Source::Input]),
    ///     ],
    /// )?;
    /// assert_eq!(net.forward(&array![[1.0_f32, -1.0]].into_dyn())?, array![[2.0_f32, -1.0]].into_dyn());
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Network::new`]; [`Error::Layer`] naming the node, wrapping [`Error::Graph`] for a node
    /// without inputs, an input naming a node that does not exist, a cycle, a node reading a
    /// later node, or a node (other than the last) whose output no node reads; wrapping the
    /// layer's own error for inputs it cannot take (e.g. `Add` operands of different shapes).
    pub fn graph(input_shape: impl AsRef<[usize]>, nodes: Vec<Node>) -> Result<Self> {
        Self::graph_with_max_elements(input_shape, nodes, DEFAULT_MAX_ELEMENTS)
    }

    /// As [`Network::graph`], with `max_elements` as the element limit (see
    /// [`Network::new_with_max_elements`]).
    ///
    /// # Errors
    /// As [`Network::graph`].
    pub fn graph_with_max_elements(
        input_shape: impl AsRef<[usize]>,
        mut nodes: Vec<Node>,
        max_elements: u64,
    ) -> Result<Self> {
        let input_shape = input_shape.as_ref().to_vec();
        if nodes.is_empty() {
            return Err(Error::invalid("a network needs at least one layer"));
        }
        if input_shape.is_empty() || input_shape.contains(&0) {
            return Err(Error::invalid(format!(
                "input sample shape {input_shape:?} must be non-empty with no zero dimension"
            )));
        }
        let too_large = |what: String, shape: &[usize]| {
            let requested = elements(1, shape);
            (requested > u128::from(max_elements)).then(|| Error::TooLarge {
                what: format!(
                    "{what} {shape:?}; raise the limit with Network::new_with_max_elements"
                ),
                requested,
                limit: u128::from(max_elements),
            })
        };
        if let Some(e) = too_large("one input sample".into(), &input_shape) {
            return Err(e);
        }
        let count = nodes.len();
        for (i, node) in nodes.iter().enumerate() {
            check_sources(i, &node.inputs, count).map_err(|e| e.in_layer(i, node.layer.name()))?;
        }
        check_order(&nodes)?;
        for i in 0..count {
            let (before, rest) = nodes.split_at_mut(i);
            let node = &mut rest[0];
            let producers: Vec<Option<&dyn Layer>> = node
                .inputs
                .iter()
                .map(|s| match *s {
                    Source::Input => None,
                    Source::Node(j) => Some(before[j].layer.as_ref()),
                })
                .collect();
            let name = node.layer.name();
            node.layer
                .resolve_inputs(&producers)
                .map_err(|e| e.in_layer(i, name))?;
        }
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(count);
        for (i, node) in nodes.iter().enumerate() {
            let layer = &node.layer;
            let in_shapes: Vec<&[usize]> = node
                .inputs
                .iter()
                .map(|s| match *s {
                    Source::Input => input_shape.as_slice(),
                    Source::Node(j) => shapes[j].as_slice(),
                })
                .collect();
            let shape = layer
                .output_shape_multi(&in_shapes)
                .map_err(|e| e.in_layer(i, layer.name()))?;
            if shape.is_empty() || shape.contains(&0) {
                return Err(Error::invalid(format!("output shape {shape:?} is empty"))
                    .in_layer(i, layer.name()));
            }
            // Checked node by node: the next node's geometry is computed from this shape.
            if let Some(e) = too_large("one output sample".into(), &shape) {
                return Err(e.in_layer(i, layer.name()));
            }
            shapes.push(shape);
        }
        let mut reads = vec![0usize; count + 1];
        for node in &nodes {
            for s in &node.inputs {
                reads[s.activation_index()] += 1;
            }
        }
        if let Some(i) = (0..count - 1).find(|&i| reads[i + 1] == 0) {
            return Err(Error::Graph(format!(
                "the output of node {i} is read by no node and is not the network output (the last node): a dangling node"
            ))
            .in_layer(i, nodes[i].layer.name()));
        }
        let (layers, inputs) = nodes.into_iter().map(|n| (n.layer, n.inputs)).unzip();
        Ok(Network {
            input_shape,
            layers,
            inputs,
            reads,
            shapes,
            max_elements,
        })
    }

    /// The same network with `max_elements` as the limit on the elements of any one activation
    /// or relevance tensor (see [`DEFAULT_MAX_ELEMENTS`]).
    ///
    /// # Errors
    /// [`Error::TooLarge`] if a single sample already exceeds the new limit.
    pub fn with_max_elements(mut self, max_elements: u64) -> Result<Self> {
        self.max_elements = max_elements;
        self.check_size(1)?;
        Ok(self)
    }

    /// The limit on the elements of any one activation or relevance tensor.
    pub fn max_elements(&self) -> u64 {
        self.max_elements
    }

    /// [`Error::TooLarge`] if a batch of `batch` samples would make any activation or relevance
    /// tensor larger than the limit.
    fn check_size(&self, batch: usize) -> Result<()> {
        let sample_shapes = std::iter::once(&self.input_shape).chain(&self.shapes);
        for (i, shape) in sample_shapes.enumerate() {
            let requested = elements(batch, shape);
            if requested > u128::from(self.max_elements) {
                let what = if i == 0 {
                    format!("the network input (batch {batch} × {shape:?})")
                } else {
                    let name = self.layers[i - 1].name();
                    format!(
                        "the output of layer {} ({name}; batch {batch} × {shape:?})",
                        i - 1
                    )
                };
                return Err(Error::TooLarge {
                    what: format!("{what}; raise it with Network::with_max_elements"),
                    requested,
                    limit: u128::from(self.max_elements),
                });
            }
        }
        Ok(())
    }

    /// The layers, in order (node `i` is layer `i`).
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The sources of node `i`'s inputs, in operand order (`[Node(i − 1)]`, or `[Input]` for
    /// node 0, in a chain).
    pub fn inputs_of(&self, i: usize) -> Option<&[Source]> {
        self.inputs.get(i).map(Vec::as_slice)
    }

    /// The nodes reading node `i`'s output, in order (empty for the last node).
    pub fn readers_of(&self, i: usize) -> Vec<usize> {
        self.nodes_reading(Source::Node(i))
    }

    fn nodes_reading(&self, source: Source) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&k| self.inputs[k].contains(&source))
            .collect()
    }

    /// Whether node `i` reads node `i − 1` (node 0 the input) and nothing else, for every `i`.
    pub fn is_chain(&self) -> bool {
        self.inputs.iter().enumerate().all(|(i, s)| {
            let from = if i == 0 {
                Source::Input
            } else {
                Source::Node(i - 1)
            };
            s.as_slice() == [from]
        })
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// The output shape of one sample after layer `i`.
    pub fn layer_output_shape(&self, i: usize) -> Option<&[usize]> {
        self.shapes.get(i).map(Vec::as_slice)
    }

    /// The shape of one output sample.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().map_or(&[], Vec::as_slice)
    }

    /// Total parameter count.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.param_count()).sum()
    }

    /// Fuses every normalisation layer into the dense or convolution layer producing its input
    /// (Zennit's canonizer); the normalisation is replaced by an [`IdentityLayer`], so layer indices
    /// do not change. Identity layers (dropout, identities, e.g. the constant nodes of an
    /// imported ONNX graph) between the two are skipped over. In a graph, the producer (and every
    /// identity skipped) must feed nothing but the path to the normalisation: fusing changes its
    /// output for every reader.
    ///
    /// A normalisation that cannot be fused (after a `Concat`, an activation or on the input, or
    /// whose producer other nodes read too, as in DenseNet) becomes a
    /// [`StandaloneBatchNorm`](crate::layers::StandaloneBatchNorm): the per-channel linear map
    /// `y = s·x + t` it computes, propagated under the linear rules (docs/semantics.md, §5).
    ///
    /// ```
    /// use klrp::layers::{BatchNorm2d, Layer, LayerKind, ReLU};
    /// use klrp::Network;
    /// use ndarray::array;
    /// let bn = BatchNorm2d::new(array![2.0], array![0.5], array![0.0], array![1.0], 0.0)?;
    /// let net = Network::new([1, 2, 2], vec![Box::new(ReLU), Box::new(bn)])?.canonize()?;
    /// assert_eq!(net.layers()[1].name(), "BatchNorm2d(1, standalone)");
    /// assert_eq!(net.layers()[1].kind(), LayerKind::Normalization);
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Layer`] if fusing fails in the producer (e.g. its channel count differs) or a
    /// standalone normalisation's parameters overflow.
    pub fn canonize(mut self) -> Result<Self> {
        for i in 0..self.layers.len() {
            let Some(affine) = self.layers[i].channel_affine() else {
                continue;
            };
            let name = self.layers[i].name();
            let Some(prev) = self.fusion_target(i) else {
                let standalone = crate::layers::StandaloneBatchNorm::new(&affine)
                    .map_err(|e| e.in_layer(i, name))?;
                self.layers[i] = Box::new(standalone);
                continue;
            };
            let prev_name = self.layers[prev].name();
            self.layers[prev]
                .fuse_channel_affine(&affine)
                .map_err(|e| e.in_layer(prev, prev_name))?;
            self.layers[i] = Box::new(IdentityLayer);
        }
        Ok(self)
    }

    /// The dense or convolution layer node `i` (a normalisation) is fused into by
    /// [`canonize`](Network::canonize): its input's producer, behind identities, with every node
    /// on the way read only on this path. `None`: `canonize` keeps it as a standalone
    /// per-channel linear map (docs/semantics.md §5).
    pub fn fusion_target(&self, i: usize) -> Option<usize> {
        let mut from = self.inputs[i].as_slice();
        loop {
            let [Source::Node(p)] = *from else {
                return None;
            };
            if self.nodes_reading(Source::Node(p)).len() > 1 || self.reads[p + 1] > 1 {
                return None;
            }
            let kind = self.layers[p].kind();
            if kind == crate::layers::LayerKind::Identity {
                from = self.inputs[p].as_slice();
                continue;
            }
            return kind.is_linear().then_some(p);
        }
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        if x.ndim() == 0 || x.shape()[0] == 0 {
            return Err(Error::shape(
                "network input (batch of at least one sample)",
                &with_batch(1, &self.input_shape),
                x.shape(),
            ));
        }
        crate::layers::check_batch(x, &self.input_shape, "network input")?;
        self.check_size(x.shape()[0])?;
        if crate::tensor::elementwise::all(x, f32::is_finite) {
            Ok(())
        } else {
            Err(Error::NonFinite("network input".into()))
        }
    }

    /// A layer's forward pass must return the batch shape its `output_shape` promised (a user's
    /// layer may not).
    fn check_output(&self, i: usize, batch: usize, a: &Tensor) -> Result<()> {
        let expected = &self.shapes[i];
        if a.ndim() != expected.len() + 1 || a.shape()[0] != batch || a.shape()[1..] != expected[..]
        {
            return Err(Error::shape(
                "layer output (forward disagrees with output_shape)",
                &with_batch(batch, expected),
                a.shape(),
            ));
        }
        Ok(())
    }

    /// The forward pass: the network's output for a batch `[N, ...input_shape]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a batch of the wrong shape or size 0, or a layer whose output
    /// is not the shape it promised; [`Error::TooLarge`] if the batch would make an activation
    /// larger than [`max_elements`](Network::max_elements) (checked before any layer runs);
    /// [`Error::NonFinite`] for NaN/Inf inputs; [`Error::Layer`] wrapping [`Error::NonFinite`] for the first layer whose
    /// activations are NaN/Inf (checked after every layer, so an overflow that a later ReLU would
    /// hide is still reported, as in [`trace`](Network::trace)).
    ///
    /// `x` is any `f32` ndarray (owned, a view, shared; any dimension type) whose first axis is
    /// the batch, as for [`explain_with`](Network::explain_with):
    ///
    /// ```
    /// use klrp::layers::Dense;
    /// use klrp::ndarray::array;
    /// use klrp::Network;
    /// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 2.0], [3.0, -1.0]], None)?)])?;
    /// let x = array![[1.0_f32, 0.0], [0.0, 2.0]]; // an Array2: no `.into_dyn()` needed
    /// assert_eq!(net.forward(&x)?, net.forward(&x.view().into_dyn())?);
    /// assert_eq!(net.forward(&x)?[[1, 0]], 4.0);
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn forward<S, D>(&self, x: &ArrayBase<S, D>) -> Result<Tensor>
    where
        S: Data<Elem = f32>,
        D: Dimension,
    {
        let x: Tensor = x.view().into_dyn().to_owned();
        self.check_input(&x)?;
        let batch = x.shape()[0];
        // Each activation is dropped once its last reader has run.
        let mut unread = self.reads.clone();
        let mut acts: Vec<Option<Tensor>> = vec![None; self.layers.len() + 1];
        acts[0] = Some(x);
        for i in 0..self.layers.len() {
            let a = self.node_forward(i, batch, |s| acts[s].as_ref())?;
            for s in &self.inputs[i] {
                let k = s.activation_index();
                unread[k] -= 1;
                if unread[k] == 0 {
                    acts[k] = None;
                }
            }
            acts[i + 1] = Some(a);
        }
        Ok(acts
            .pop()
            .flatten()
            .unwrap_or_else(|| unreachable!("the last node's output is kept")))
    }

    /// Node `i`'s forward pass on the activations `act` gives (by activation index), checked.
    fn node_forward<'t>(
        &self,
        i: usize,
        batch: usize,
        act: impl Fn(usize) -> Option<&'t Tensor>,
    ) -> Result<Tensor> {
        let layer = &self.layers[i];
        let wrap = |e: Error| e.in_layer(i, layer.name());
        let ins: Vec<&Tensor> = self.inputs[i]
            .iter()
            .map(|s| {
                act(s.activation_index())
                    .unwrap_or_else(|| unreachable!("an input is kept until its last reader"))
            })
            .collect();
        let a = layer.forward_multi(&ins).map_err(wrap)?;
        self.check_output(i, batch, &a).map_err(wrap)?;
        if !crate::tensor::elementwise::all(&a, f32::is_finite) {
            return Err(wrap(Error::NonFinite("activations".into())));
        }
        Ok(a)
    }

    /// The forward pass, keeping every activation for relevance propagation.
    ///
    /// # Errors
    /// As [`forward`](Network::forward).
    pub fn trace(&self, x: &Tensor) -> Result<Trace> {
        self.check_input(x)?;
        let mut activations = Vec::with_capacity(self.layers.len() + 1);
        activations.push(x.clone());
        for i in 0..self.layers.len() {
            let a = self.node_forward(i, x.shape()[0], |s| activations.get(s))?;
            activations.push(a);
        }
        Ok(Trace { activations })
    }

    /// [`Error::InvalidArgument`] unless `trace` holds one activation per node and the input.
    fn check_trace_len(&self, trace: &Trace) -> Result<()> {
        if trace.activations.len() == self.layers.len() + 1 {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "the trace holds {} activations but this network has {} layers (and an input): \
             it was made by another network",
            trace.activations.len(),
            self.layers.len()
        )))
    }

    /// The units of `trace`'s forward pass within `f32` rounding of a kink (a max-pooling near-tie,
    /// a ReLU input at 0: [`Layer::near_kinks`]), per node: one pass over the activations each
    /// such node reads, after the forward pass (docs/benchmarks.md has its cost).
    ///
    /// ```
    /// use klrp::layers::{Dense, ReLU};
    /// use klrp::Network;
    /// use ndarray::array;
    /// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 0.0], [0.0, 1.0]], None)?), Box::new(ReLU)])?;
    /// let trace = net.trace(&array![[1.0_f32, 1e-9]].into_dyn())?;
    /// assert_eq!(net.near_kinks(&trace)?.layers(), &[(1, 1)]);
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the trace was made by another network; [`Error::Layer`]
    /// wrapping a layer's error.
    pub fn near_kinks(&self, trace: &Trace) -> Result<NearKinks> {
        self.check_trace_len(trace)?;
        let mut layers = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let ins: Vec<&Tensor> = self.inputs[i]
                .iter()
                .map(|s| &trace.activations[s.activation_index()])
                .collect();
            let n = layer
                .near_kinks(&ins)
                .map_err(|e| e.in_layer(i, layer.name()))?;
            if n > 0 {
                layers.push((i, n));
            }
        }
        Ok(NearKinks { layers })
    }

    /// The propagation engine behind [`propagate`](Network::propagate): K-LRP from `init` with
    /// `rules[i]` and `theta.at(i)` at node `i`, also handing back every node's shares (one
    /// [`Shares`] per operand, by node index) when `shares_out` is given (the relevance-path
    /// search walks them). `rules` has one rule per node ([`Composite::assign`](crate::Composite::assign)).
    pub(crate) fn propagate_rules<'a, K: Semiring, T: Conversion<K>>(
        &'a self,
        trace: &Trace,
        init: ArrayD<K>,
        rules: &[Rule],
        theta: &PerLayer<T>,
        keep_layers: bool,
        mut shares_out: Option<&mut Vec<Vec<Shares<'a>>>>,
    ) -> Result<Relevance<K>> {
        let out = trace.output();
        self.check_trace_len(trace)?;
        if rules.len() != self.layers.len() {
            return Err(Error::shape(
                "rules (one per node)",
                &[self.layers.len()],
                &[rules.len()],
            ));
        }
        check_theta_indices(theta, self.layers.len())?;
        if init.shape() != out.shape() {
            return Err(Error::shape(
                "initialization vector",
                out.shape(),
                init.shape(),
            ));
        }
        self.check_size(trace.batch_size())?;
        if init.iter().any(Semiring::is_overflow) {
            return Err(Error::NonFinite(
                "initialization vector (NaN, ±Inf or an already saturated value)".into(),
            ));
        }
        for (i, a) in trace.activations.iter().enumerate() {
            let expected = if i == 0 {
                &self.input_shape
            } else {
                &self.shapes[i - 1]
            };
            if a.ndim() == 0 || a.shape()[1..] != expected[..] || a.shape()[0] != out.shape()[0] {
                return Err(Error::shape(
                    "trace (not made by this network)",
                    &with_batch(trace.batch_size(), expected),
                    a.shape(),
                ));
            }
        }
        let count = self.layers.len();
        if let Some(kept) = shares_out.as_mut() {
            kept.clear();
            kept.resize_with(count, Vec::new);
        }
        // The relevance of every tensor (by activation index), ⊕-accumulated over its readers.
        let mut rel: Vec<Option<ArrayD<K>>> = (0..=count).map(|_| None).collect();
        rel[count] = Some(init.clone());
        let mut kept: Option<Vec<Option<ArrayD<K>>>> =
            keep_layers.then(|| (0..=count).map(|_| None).collect());
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let wrap = |e: Error| e.in_layer(i, layer.name());
            let a_out = &trace.activations[i + 1];
            // Every reader of node i comes after it, so its relevance is complete here.
            let r = rel[i + 1]
                .take()
                .unwrap_or_else(|| ArrayD::from_elem(a_out.raw_dim(), K::zero()));
            if let Some(k) = kept.as_mut() {
                k[i + 1] = Some(r.clone());
            }
            let sources = &self.inputs[i];
            let ins: Vec<&Tensor> = sources
                .iter()
                .map(|s| &trace.activations[s.activation_index()])
                .collect();
            let shares = layer.shares_multi(&ins, a_out, &rules[i]).map_err(wrap)?;
            if shares.len() != ins.len() {
                return Err(wrap(Error::shape(
                    "shares (one per input)",
                    &[ins.len()],
                    &[shares.len()],
                )));
            }
            let mut r = Some(r);
            let last = shares.len() - 1;
            for (b, (shares, source)) in shares.iter().zip(sources).enumerate() {
                let a_in = ins[b];
                let r_in = match (shares, r.take_if(|_| b == last)) {
                    // Relevance passes through unchanged (activations, flatten): move, don't copy.
                    (Shares::Pass, Some(owned))
                        if owned.len() == a_in.len() && owned.is_standard_layout() =>
                    {
                        owned
                            .into_shape_with_order(IxDyn(a_in.shape()))
                            .map_err(|e| wrap(Error::invalid(format!("relevance reshape: {e}"))))?
                    }
                    (shares, owned) => {
                        let r_out = owned.as_ref().or(r.as_ref()).unwrap_or_else(|| {
                            unreachable!("the relevance is taken only for the last operand")
                        });
                        kernels::propagate(shares, theta.at(i), r_out, a_in.shape())
                            .map_err(wrap)?
                    }
                };
                accumulate(&mut rel[source.activation_index()], r_in);
            }
            if let Some(kept) = shares_out.as_mut() {
                kept[i] = shares;
            }
        }
        let r = rel[0]
            .take()
            .unwrap_or_else(|| ArrayD::from_elem(trace.activations[0].raw_dim(), K::zero()));
        let layers = kept.map(|mut k| {
            k[0] = Some(r.clone());
            k.into_iter()
                .map(|v| v.unwrap_or_else(|| unreachable!("every tensor's relevance is kept")))
                .collect()
        });
        let overflowed = r.iter().filter(|v| v.is_overflow()).count();
        Ok(Relevance {
            input: r,
            layers,
            init,
            overflowed,
        })
    }

    /// Splits a batch into single samples (views of `x`).
    pub fn samples(x: &Tensor) -> impl Iterator<Item = Tensor> + '_ {
        x.axis_iter(Axis(0))
            .map(|s| s.insert_axis(Axis(0)).to_owned())
    }
}

/// Building: a [`GraphBuilder`]'s nodes become a network (`graph` holds the structure only).
impl GraphBuilder {
    /// The network: the last node added is its output.
    ///
    /// # Errors
    /// As [`Network::graph`] (e.g. a node whose output no later node reads).
    pub fn build(self) -> Result<Network> {
        let (input_shape, nodes) = self.into_parts();
        Network::graph(input_shape, nodes)
    }

    /// As [`build`](GraphBuilder::build), with `max_elements` as the element limit of any one
    /// tensor (see [`Network::new_with_max_elements`]).
    ///
    /// # Errors
    /// As [`Network::graph_with_max_elements`].
    pub fn build_with_max_elements(self, max_elements: u64) -> Result<Network> {
        let (input_shape, nodes) = self.into_parts();
        Network::graph_with_max_elements(input_shape, nodes, max_elements)
    }
}

/// An index a [`PerLayer::with`] override names that the network does not have is an error.
fn check_theta_indices<T>(theta: &PerLayer<T>, layers: usize) -> Result<()> {
    match theta.overridden().find(|&i| i >= layers) {
        Some(i) => Err(layer_index_error("PerLayer::with", i, layers)),
        None => Ok(()),
    }
}

/// `what(i, …)` names layer `i`, but the network has only `layers` layers.
pub(crate) fn layer_index_error(what: &str, i: usize, layers: usize) -> Error {
    Error::invalid(format!(
        "{what}({i}, …) names layer {i}, but the network has {layers} layers (indices 0 to {})",
        layers.saturating_sub(1)
    ))
}
