//! Networks as graphs: [`Source`] (where a node reads an input), [`Node`] (a layer and its
//! inputs) and [`GraphBuilder`] (building a [`Network`](crate::Network) node by node).
//!
//! May import: `error`, `layers` (docs/architecture.md, "Layers").
//!
//! A network is a directed acyclic graph of nodes in topological order: node `i` reads the
//! network input or nodes before it, and the last node is the output. Node index = layer index,
//! so [`PerLayer`](crate::PerLayer), [`Composite::with_layer`](crate::Composite::with_layer) and
//! error messages say "node i". A chain ([`Network::new`](crate::Network::new)) is the graph where node `i` reads node
//! `i − 1`.
//!
//! ```
//! use klrp::layers::{Add, Dense, ReLU};
//! use klrp::{GraphBuilder, Network};
//! use ndarray::array;
//!
//! // y = ReLU(W x) + x: a residual block.
//! let mut g = GraphBuilder::new([2]);
//! let x = g.input();
//! let h = g.add(Dense::new(array![[1.0, 0.0], [1.0, 1.0]], None)?, [x])?;
//! let h = g.add(ReLU, [h])?;
//! g.add(Add, [h, x])?;
//! let net: Network = g.build()?;
//! assert_eq!(net.inputs_of(2), Some(&[h, x][..]));
//! assert_eq!(net.forward(&array![[1.0_f32, 2.0]].into_dyn())?, array![[2.0_f32, 5.0]].into_dyn());
//! # Ok::<(), klrp::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::layers::Layer;

/// Where a node reads one of its inputs: the network input or the output of an earlier node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The network input.
    Input,
    /// The output of node `i`.
    Node(usize),
}

impl Source {
    /// The position of this tensor in a [`Trace`](crate::Trace)'s activations: 0 for the
    /// input, `i + 1` for node `i`'s output.
    pub fn activation_index(self) -> usize {
        match self {
            Source::Input => 0,
            Source::Node(i) => i + 1,
        }
    }
}

/// A node of a graph: a layer and the sources of its inputs, in operand order.
#[derive(Debug)]
pub struct Node {
    /// The layer.
    pub layer: Box<dyn Layer>,
    /// Its inputs, in operand order.
    pub inputs: Vec<Source>,
}

impl Node {
    /// A node applying `layer` to `inputs`.
    pub fn new(layer: impl Layer + 'static, inputs: impl IntoIterator<Item = Source>) -> Self {
        Self::boxed(Box::new(layer), inputs)
    }

    /// A node applying a boxed `layer` to `inputs`.
    pub fn boxed(layer: Box<dyn Layer>, inputs: impl IntoIterator<Item = Source>) -> Self {
        Node {
            layer,
            inputs: inputs.into_iter().collect(),
        }
    }
}

/// Builds a graph [`Network`](crate::Network) node by node; each [`add`](GraphBuilder::add) returns the new
/// node's output as a [`Source`] for later nodes. Shapes are checked as nodes are added.
///
/// ```
/// use klrp::layers::{Concat, Conv2d, ReLU};
/// use klrp::GraphBuilder;
/// use ndarray::Array4;
///
/// let mut g = GraphBuilder::new([3, 8, 8]);
/// let x = g.input();
/// let conv = Conv2d::new(Array4::from_elem((4, 3, 3, 3), 0.1), None)?.with_padding((1, 1))?;
/// let a = g.add(conv, [x])?;
/// let a = g.add(ReLU, [a])?;
/// g.add(Concat, [a, x])?; // DenseNet-style: [7, 8, 8]
/// let net = g.build()?;
/// assert_eq!(net.output_shape(), &[7, 8, 8]);
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Debug)]
pub struct GraphBuilder {
    input_shape: Vec<usize>,
    nodes: Vec<Node>,
    shapes: Vec<Vec<usize>>,
}

impl GraphBuilder {
    /// An empty graph taking samples of shape `input_shape`.
    pub fn new(input_shape: impl AsRef<[usize]>) -> Self {
        GraphBuilder {
            input_shape: input_shape.as_ref().to_vec(),
            nodes: Vec::new(),
            shapes: Vec::new(),
        }
    }

    /// The network input, as a source.
    pub fn input(&self) -> Source {
        Source::Input
    }

    /// Number of nodes so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Adds a node applying `layer` to `inputs` (earlier nodes or the input), returning its output.
    ///
    /// # Errors
    /// [`Error::Layer`] naming the node (its index is [`len`](GraphBuilder::len) before the call)
    /// wrapping [`Error::Graph`] for a source that is not an earlier node or an empty input list,
    /// or the layer's error for inputs it cannot take (e.g. [`Add`](crate::layers::Add) operands
    /// of different shapes). The node is not added on error.
    pub fn add(
        &mut self,
        layer: impl Layer + 'static,
        inputs: impl IntoIterator<Item = Source>,
    ) -> Result<Source> {
        self.add_boxed(Box::new(layer), inputs)
    }

    /// As [`add`](GraphBuilder::add), with a boxed layer.
    ///
    /// # Errors
    /// As [`add`](GraphBuilder::add).
    pub fn add_boxed(
        &mut self,
        mut layer: Box<dyn Layer>,
        inputs: impl IntoIterator<Item = Source>,
    ) -> Result<Source> {
        let inputs: Vec<Source> = inputs.into_iter().collect();
        let i = self.nodes.len();
        let wrap = |e: Error, layer: &dyn Layer| e.in_layer(i, layer.name());
        check_sources(i, &inputs, self.nodes.len()).map_err(|e| wrap(e, layer.as_ref()))?;
        let producers: Vec<Option<&dyn Layer>> = inputs
            .iter()
            .map(|s| match *s {
                Source::Input => None,
                Source::Node(j) => Some(self.nodes[j].layer.as_ref()),
            })
            .collect();
        layer
            .resolve_inputs(&producers)
            .map_err(|e| wrap(e, layer.as_ref()))?;
        let in_shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|s| match *s {
                Source::Input => self.input_shape.as_slice(),
                Source::Node(j) => self.shapes[j].as_slice(),
            })
            .collect();
        let shape = layer
            .output_shape_multi(&in_shapes)
            .map_err(|e| wrap(e, layer.as_ref()))?;
        self.shapes.push(shape);
        self.nodes.push(Node { layer, inputs });
        Ok(Source::Node(i))
    }

    /// The nodes added so far and the input shape, for [`build`](GraphBuilder::build).
    pub(crate) fn into_parts(self) -> (Vec<usize>, Vec<Node>) {
        (self.input_shape, self.nodes)
    }
}

/// [`Error::Graph`] unless node `i`'s inputs are non-empty and name existing nodes; a reference to
/// node `i` itself or a later one is reported later, as a cycle or an ordering error.
pub(crate) fn check_sources(i: usize, inputs: &[Source], nodes: usize) -> Result<()> {
    if inputs.is_empty() {
        return Err(Error::Graph(format!("node {i} has no inputs")));
    }
    for s in inputs {
        if let Source::Node(j) = *s
            && j >= nodes
        {
            return Err(Error::Graph(format!(
                "node {i} reads node {j}, which does not exist (the graph has {nodes} nodes): a dangling input"
            )));
        }
    }
    Ok(())
}

/// [`Error::Graph`] if some node reads itself or a later node: a cycle (named) when the graph has
/// one, otherwise nodes out of topological order.
pub(crate) fn check_order(nodes: &[Node]) -> Result<()> {
    let Some((i, j)) = nodes.iter().enumerate().find_map(|(i, n)| {
        n.inputs.iter().find_map(|s| match *s {
            Source::Node(j) if j >= i => Some((i, j)),
            _ => None,
        })
    }) else {
        return Ok(());
    };
    // Kahn's algorithm: nodes never freed lie on or behind a cycle.
    let n = nodes.len();
    let mut pending: Vec<usize> = nodes
        .iter()
        .map(|node| {
            node.inputs
                .iter()
                .filter(|s| matches!(s, Source::Node(_)))
                .count()
        })
        .collect();
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, node) in nodes.iter().enumerate() {
        for s in &node.inputs {
            if let Source::Node(j) = *s {
                readers[j].push(k);
            }
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&k| pending[k] == 0).collect();
    let mut done = vec![false; n];
    while let Some(k) = ready.pop() {
        done[k] = true;
        for &r in &readers[k] {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push(r);
            }
        }
    }
    let stuck: Vec<usize> = (0..n).filter(|&k| !done[k]).collect();
    if stuck.is_empty() {
        Err(Error::Graph(format!(
            "node {i} reads node {j}, which does not come before it: nodes must be in topological order"
        )))
    } else {
        Err(Error::Graph(format!(
            "the graph has a cycle: nodes {stuck:?} depend on each other (node {i} reads node {j})"
        )))
    }
}
