//! The importer's state (`Importer`: every value by name, the layers and nodes so far) and its
//! per-node driver; uses `proto`, `external`, `wiring`, `fold` (constant nodes), `fuse` (the
//! `Pad` checks) and `ops` (`Importer::map`), whose functions read and extend the state.

use super::fold::Const;
use super::fuse::PendingPad;
use super::proto::{Dim, GraphProto, NodeProto, dtype};
use super::{OnnxModel, OnnxNode, external, fuse, wiring};
use crate::error::{Error, Result};
use crate::graph::{Node, Source};
use crate::layers::Layer;
use crate::network::Network;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// A value of the graph, by name in [`Importer::values`].
#[derive(Clone, Debug)]
pub(super) enum Value {
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

impl Value {
    /// An output of the node labelled `label` beyond those klrp computes.
    pub(super) fn extra_output(label: &str) -> Value {
        Value::Unavailable(format!(
            "an extra output of {label}, which klrp does not compute"
        ))
    }
}

/// The import in progress: one graph node after the other becomes one network node.
pub(super) struct Importer {
    pub(super) values: BTreeMap<String, Value>,
    /// The running activation's name.
    pub(super) act: String,
    /// Its per-sample shape.
    pub(super) shape: Vec<usize>,
    pub(super) input_shape: Vec<usize>,
    pub(super) declared_batch: Option<usize>,
    pub(super) input_name: String,
    pub(super) layers: Vec<Box<dyn Layer>>,
    pub(super) nodes: Vec<OnnxNode>,
    pub(super) softmax_at: Option<usize>,
    /// The limit on one sample's activation.
    pub(super) max_sample_elements: u64,
    /// The padding of the `Pad` node being imported, for its output's value.
    pub(super) pending_pad: Option<PendingPad>,
    /// How many node inputs and graph outputs read each value.
    pub(super) readers: BTreeMap<String, usize>,
}

/// An activation a node reads.
pub(super) struct Act {
    /// The node input's position.
    pub(super) k: usize,
    pub(super) from: Source,
    /// Per-sample shape.
    pub(super) shape: Vec<usize>,
    pub(super) pad: Option<PendingPad>,
}

/// How errors and notes name a node.
pub(super) fn node_label(i: usize, node: &NodeProto) -> String {
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

/// The error for `count` elements in one sample's `what`, above `limit`.
fn too_large(what: String, count: u64, limit: u64) -> Error {
    Error::TooLarge {
        what,
        requested: u128::from(count),
        limit: u128::from(limit),
    }
}

fn check_sample_size(shape: &[usize], what: &str, limit: u64) -> Result<()> {
    let count = shape.iter().fold(1u64, |c, &d| c.saturating_mul(d as u64));
    if count > limit {
        return Err(too_large(what.to_string(), count, limit));
    }
    Ok(())
}

impl Importer {
    /// Checks the graph and reads its initializers and its input.
    pub(super) fn new(
        graph: &GraphProto,
        max_sample_elements: u64,
        dir: Option<&Path>,
    ) -> Result<Self> {
        if graph.sparse_initializers > 0 {
            return Err(Error::Unsupported(
                "ONNX sparse initializers are not supported".into(),
            ));
        }
        if graph.nodes.is_empty() {
            return Err(Error::malformed("ONNX", "the graph has no nodes"));
        }
        let readers = wiring::check(graph)?;
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
                        return Err(too_large(
                            format!("ONNX graph input '{}'", input.name),
                            count,
                            max_sample_elements,
                        ));
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

    pub(super) fn value(&self, name: &str) -> Result<&Value> {
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
    pub(super) fn const_input(&self, node: &NodeProto, k: usize, what: &str) -> Result<Rc<Const>> {
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

    /// Constant input `k` of the node, `None` if absent.
    pub(super) fn opt_const_input(
        &self,
        node: &NodeProto,
        k: usize,
        what: &str,
    ) -> Result<Option<Rc<Const>>> {
        match node.inputs.get(k) {
            Some(n) if !n.is_empty() => self.const_input(node, k, what).map(Some),
            _ => Ok(None),
        }
    }

    /// Appends node `i` as `layer` reading `inputs`.
    pub(super) fn push(
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

    /// Imports node `i`, its label on any error.
    pub(super) fn node(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        self.node_inner(i, node).map_err(|e| annotate(e, i, node))
    }

    /// Imports node `i`: folded if it computes constants (`fold.rs`), else mapped to its layer
    /// (`ops/`), whose output becomes the running activation.
    fn node_inner(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(Error::Unsupported(format!(
                "operator domain '{}' (only the default ONNX domain is supported)",
                node.domain
            )));
        }
        if node.op_type == "CastLike" {
            return self.fold_cast_like(i, node);
        }
        let acts = self.activations(node)?;
        if acts.is_empty() {
            return self.fold_constants(i, node);
        }
        if node.op_type == "Shape" {
            return self.fold_shape(i, node, &acts[0]);
        }
        fuse::check_pad_readers(node, &acts)?;
        if let Some(s) = self.softmax_at {
            return Err(Error::Unsupported(format!(
                "follows the {} at node {s}; it is supported only as the last operation",
                self.nodes[s].op_type
            )));
        }
        let inputs: Vec<Source> = acts.iter().map(|a| a.from).collect();
        if node.op_type == "Split" {
            return self.split_node(i, node, &acts, inputs);
        }
        let out = node
            .outputs
            .first()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| Error::malformed("ONNX", "the node has no output"))?
            .clone();
        let (layer, note) = self.map(i, node, &acts)?;
        let label = node_label(i, node);
        for extra in node.outputs.iter().skip(1).filter(|o| !o.is_empty()) {
            self.values
                .insert(extra.clone(), Value::extra_output(&label));
        }
        self.push_output(i, node, &acts, (layer, note), inputs, out)
    }

    /// Appends the layer of node `i` reading `acts`, whose output is the value `out` (now the
    /// running activation).
    fn push_output(
        &mut self,
        i: usize,
        node: &NodeProto,
        acts: &[Act],
        (layer, note): (Box<dyn Layer>, Option<String>),
        inputs: Vec<Source>,
        out: String,
    ) -> Result<()> {
        let in_shapes: Vec<&[usize]> = acts.iter().map(|a| a.shape.as_slice()).collect();
        let shape = layer.output_shape_multi(&in_shapes)?;
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::invalid(format!("output shape {shape:?} is empty")));
        }
        check_sample_size(&shape, "the node's output", self.max_sample_elements)?;
        let pad = self.pending_pad.take();
        self.values.insert(
            out.clone(),
            Value::Activation {
                from: Source::Node(self.layers.len()),
                shape,
                pad,
            },
        );
        self.act = out;
        self.push(i, node, layer, note, inputs);
        Ok(())
    }

    /// `Split` (node `i`): one network node per output that something reads, each a route
    /// from the input; an output nothing reads becomes no node (it would dangle).
    fn split_node(
        &mut self,
        i: usize,
        node: &NodeProto,
        acts: &[Act],
        inputs: Vec<Source>,
    ) -> Result<()> {
        let [a] = acts else {
            return Err(Error::Unsupported(format!(
                "Split of {} activations",
                acts.len()
            )));
        };
        if a.k != 0 {
            return Err(Error::Unsupported(
                "the activation must be the first input".into(),
            ));
        }
        self.shape = a.shape.clone();
        let parts = self.split_parts(node)?;
        let label = node_label(i, node);
        for (o, (name, part)) in node.outputs.iter().zip(parts).enumerate() {
            if name.is_empty() {
                continue;
            }
            if self.readers.get(name).copied().unwrap_or(0) == 0 {
                self.values.insert(
                    name.clone(),
                    Value::Unavailable(format!("output {o} of {label}, which nothing reads")),
                );
                continue;
            }
            let note = Some(format!("output {o} of {}", node.outputs.len()));
            self.push_output(i, node, acts, (part, note), inputs.clone(), name.clone())?;
        }
        Ok(())
    }

    /// The activations the node reads (input position, source, per-sample shape, pad), in the
    /// order of its inputs.
    fn activations(&self, node: &NodeProto) -> Result<Vec<Act>> {
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
        Ok(acts)
    }

    /// The network and the node list, once every node is imported.
    pub(super) fn finish(
        self,
        graph: &GraphProto,
        opset: Option<i64>,
        producer: String,
    ) -> Result<OnnxModel> {
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
    use crate::io::onnx::MAX_SAMPLE_ELEMENTS;

    #[test]
    fn absurd_sample_sizes_are_refused() {
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", MAX_SAMPLE_ELEMENTS).is_err());
        assert!(check_sample_size(&[1 << 20, 1 << 20], "x", 1 << 40).is_ok());
    }
}
