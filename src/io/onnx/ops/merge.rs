//! Merges of activations: a residual `Add`/`Sum`, a channel `Concat`, a `Mul` by a gate, and a
//! `Concat`/`Sum` of one tensor; uses the `Importer`, `attrs` and the layers.

use super::Mapped;
use crate::error::{Error, Result};
use crate::graph::Source;
use crate::io::onnx::attrs::{attr_int, from_front};
use crate::io::onnx::importer::{Act, Importer};
use crate::io::onnx::proto::NodeProto;
use crate::layers::{Add, Concat, IdentityLayer, Mul};

/// `Add` or `Sum` of activations of one shape (checked here, with the ONNX names).
pub(super) fn sum(node: &NodeProto, acts: &[Act]) -> Result<Add> {
    let first = &acts[0].shape;
    if let Some(a) = acts.iter().find(|a| a.shape != *first) {
        return Err(Error::shape(
            format!("{} of activations (a residual sum)", node.op_type),
            first,
            &a.shape,
        ));
    }
    Ok(Add)
}

/// `Concat` of activations along the channel axis.
pub(super) fn concat(node: &NodeProto, acts: &[Act]) -> Result<Concat> {
    let first = &acts[0].shape;
    let axis = from_front(attr_int(node, "axis", 0)?, first.len() as i64 + 1);
    if axis != 1 {
        return Err(Error::Unsupported(format!(
            "Concat of activations along axis {axis} (only the channel axis 1 is supported)"
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
    Ok(Concat)
}

/// `Mul` of two activations, one of them the output of a gate (`Sigmoid`, `HardSigmoid`).
pub(super) fn gate(imp: &Importer, acts: &[Act]) -> Result<Mul> {
    let gates: Vec<usize> = (0..2)
        .filter(|&k| match imp.skip_constants(acts[k].from) {
            Source::Node(p) => imp.layers[p].is_gate(),
            Source::Input => false,
        })
        .collect();
    match gates.as_slice() {
        [g] => Ok(Mul::gate(*g)),
        _ => Err(Error::Unsupported(format!(
            "Mul of two activations needs exactly one gate operand (the output of a Sigmoid or \
             HardSigmoid); here {} of the two are",
            gates.len()
        ))),
    }
}

/// A `Concat` or `Sum` of one tensor: an identity.
pub(super) fn of_one(node: &NodeProto) -> Mapped {
    (
        Box::new(IdentityLayer),
        Some(format!("{} of one tensor", node.op_type)),
    )
}
