//! Pattern fusion at import: a node folded into the layer before or after it (a constant `Add`
//! or `Mul` into a bias or scale, a constant-zero `Pad` into a `Conv`); uses the `Importer`,
//! `attrs` and the layers.
//!
//! A fused node stays in the network as an identity with a note (one ONNX node, one network
//! node). `BatchNormalization` is not fused here: it is imported as a layer and fused into its
//! producer by [`Network::canonize`](crate::Network::canonize).

use super::attrs::{attr_float, attr_ints, attr_string, from_front, to_usize};
use super::importer::{Act, Importer};
use super::ops::Mapped;
use super::proto::NodeProto;
use crate::error::{Error, Result};
use crate::graph::Source;
use crate::layers::{ChannelAffine, IdentityLayer, LayerKind};

/// `Add` of the activation `a` and a constant: the bias of the layer producing `a`.
pub(super) fn bias(imp: &mut Importer, node: &NodeProto, a: &Act) -> Result<Mapped> {
    into_producer(imp, node, a, false)
}

/// `Mul` of the activation `a` and a constant: a scale of the layer producing `a`.
pub(super) fn scale(imp: &mut Importer, node: &NodeProto, a: &Act) -> Result<Mapped> {
    into_producer(imp, node, a, true)
}

/// `Add` or `Mul` of the activation `a` and a constant: a bias (`Add`) or a scale (`Mul`)
/// fused into the dense or convolution layer producing `a`, which nothing else may read;
/// the node becomes an identity.
fn into_producer(imp: &mut Importer, node: &NodeProto, a: &Act, scale: bool) -> Result<Mapped> {
    let what = if scale { "factor" } else { "addend" };
    let c = imp.const_input(node, 1 - a.k.min(1), what)?;
    let producer = match imp.skip_constants(a.from) {
        Source::Node(p) if imp.layers[p].kind().is_linear() => Some(p),
        _ => None,
    };
    let name = &node.inputs[a.k];
    let readers = imp.readers.get(name).copied().unwrap_or(0);
    let Some(p) = producer.filter(|_| readers == 1) else {
        return Err(Error::Unsupported(format!(
            "{} of a constant is supported only as a {} of the MatMul, Gemm or Conv \
             producing the other operand, when nothing else reads that operand",
            node.op_type,
            if scale { "scale" } else { "bias" }
        )));
    };
    let v = c.floats(if scale { "the factor" } else { "the bias" })?;
    let out = imp.shape[0];
    let ok = match (imp.layers[p].kind(), c.shape.as_slice()) {
        (_, [] | [1]) => true,
        (LayerKind::Dense, [n] | [1, n]) => *n == out,
        (LayerKind::Conv, [n, 1, 1] | [1, n, 1, 1]) => *n == out,
        _ => false,
    };
    if !ok {
        let want: &[usize] = if imp.shape.len() == 1 {
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
    imp.layers[p].fuse_channel_affine(&affine)?;
    let note = if scale {
        format!("scale of layer {p}")
    } else {
        format!("bias of layer {p}")
    };
    Ok((Box::new(IdentityLayer), Some(note)))
}

/// A `Pad` node whose padding goes into the convolution reading its output.
#[derive(Clone, Debug)]
pub(super) struct PendingPad {
    /// The `Pad` node's index.
    pub(super) node: usize,
    /// Padding (top, left, bottom, right).
    pub(super) pads: [usize; 4],
}

/// `Pad` (node `i`, reading `imp.shape`): an identity whose padding the `Conv` reading its
/// output takes over ([`conv_padding`]).
pub(super) fn pad(imp: &mut Importer, i: usize, node: &NodeProto) -> Result<Mapped> {
    let pads = pad_amounts(imp, node)?;
    let out = node.outputs.first().map_or("", String::as_str);
    let readers = imp.readers.get(out).copied().unwrap_or(0);
    if readers != 1 {
        return Err(Error::Unsupported(format!(
            "the Pad's output is read {readers} times; klrp folds a constant-zero \
             Pad into the one Conv that reads it"
        )));
    }
    imp.pending_pad = Some(PendingPad { node: i, pads });
    Ok((
        Box::new(IdentityLayer),
        Some("zero padding, folded into the Conv that reads it".into()),
    ))
}

/// Refuses a node reading a `Pad`'s output unless it is the `Conv` that takes the padding.
pub(super) fn check_pad_readers(node: &NodeProto, acts: &[Act]) -> Result<()> {
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
    Ok(())
}

/// The padding of the `Pad` whose output `a` is, if any, which the `Conv` at node `i` takes
/// over: the `Pad` node's note says so.
pub(super) fn conv_padding(imp: &mut Importer, i: usize, a: &Act) -> Option<[usize; 4]> {
    let p = a.pad.as_ref()?;
    imp.nodes[p.node].note = Some(format!(
        "zero padding {:?} (top, left, bottom, right) folded into the Conv at node {i}",
        p.pads
    ));
    Some(p.pads)
}

/// The (top, left, bottom, right) padding of a constant-zero `Pad` on `[N, C, H, W]`.
fn pad_amounts(imp: &Importer, node: &NodeProto) -> Result<[usize; 4]> {
    let mode = attr_string(node, "mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(Error::Unsupported(format!(
            "Pad with mode '{mode}' (only constant zero padding, folded into the next Conv, \
             is supported)"
        )));
    }
    if imp.shape.len() != 3 {
        return Err(Error::Unsupported(format!(
            "Pad on sample shape {:?} (need [C, H, W] before a Conv)",
            imp.shape
        )));
    }
    // opset ≥ 11: pads, constant_value, axes as inputs; before: attributes.
    let (pads, value) = match attr_ints(node, "pads") {
        Some(p) => (p, attr_float(node, "value", 0.0)?),
        None => {
            let p = imp.const_input(node, 1, "pads")?;
            let value = match imp.opt_const_input(node, 2, "constant_value")? {
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
    let axes: Vec<usize> = match imp.opt_const_input(node, 3, "axes")? {
        Some(a) => a
            .ints("Pad axes")?
            .iter()
            .map(|&x| {
                usize::try_from(from_front(x, 4))
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
