//! Pooling: `MaxPool`, `AveragePool` (floor or ceil mode), `GlobalAveragePool`, and the
//! reductions `ReduceMean` and `ReduceSum`; uses the `Importer`, `attrs` and the layers.

use super::Mapped;
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr, attr_int, attr_ints, from_front, pads, pair};
use crate::io::onnx::importer::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::layers::{AdaptiveAvgPool2d, AvgPool2d, IdentityLayer, MaxPool2d, Reduce, ReduceOp};

/// Kernel, stride, padding and ceil mode of a 2-D pooling node.
type PoolWindow = ((usize, usize), (usize, usize), (usize, usize), bool);

pub(super) fn max_pool(imp: &Importer, node: &NodeProto) -> Result<MaxPool2d> {
    if node.outputs.len() > 1 && !node.outputs[1].is_empty() {
        return Err(Error::Unsupported("MaxPool with an Indices output".into()));
    }
    let (kernel, stride, padding, ceil) = geometry(imp, node)?;
    if attr_int(node, "storage_order", 0)? != 0 {
        return Err(Error::Unsupported("MaxPool with storage_order = 1".into()));
    }
    Ok(MaxPool2d::new(kernel, stride, padding)?.with_ceil_mode(ceil))
}

pub(super) fn average_pool(imp: &Importer, node: &NodeProto) -> Result<AvgPool2d> {
    let (kernel, stride, padding, ceil) = geometry(imp, node)?;
    let include = attr_int(node, "count_include_pad", 0)? != 0;
    Ok(AvgPool2d::new(kernel, stride, padding)?
        .with_count_include_pad(include)
        .with_ceil_mode(ceil))
}

pub(super) fn global_average_pool(imp: &Importer) -> Result<AdaptiveAvgPool2d> {
    if imp.shape.len() != 3 {
        return Err(Error::Unsupported(format!(
            "GlobalAveragePool on sample shape {:?} (need [C, H, W])",
            imp.shape
        )));
    }
    AdaptiveAvgPool2d::new((1, 1))
}

/// `ReduceMean` or `ReduceSum` over any axes but the batch, `keepdims` 0 or 1, the axes an
/// attribute (opset < 18, `ReduceMean`) or a constant input: a [`Reduce`] layer; the mean over H, W
/// of `[N, C, H, W]` keeping them is a global average pooling, as it always was.
pub(super) fn reduce(imp: &Importer, node: &NodeProto, op: ReduceOp) -> Result<Mapped> {
    let what = node.op_type.as_str();
    let axes = match attr_ints(node, "axes") {
        Some(a) => a,
        None => match imp.opt_const_input(node, 1, "axes")? {
            Some(a) => a.ints(&format!("{what} axes"))?.to_vec(),
            None => Vec::new(),
        },
    };
    let keepdims = match attr_int(node, "keepdims", 1)? {
        0 => false,
        1 => true,
        other => {
            return Err(Error::malformed(
                "ONNX",
                format!("{what} with keepdims = {other} (must be 0 or 1)"),
            ));
        }
    };
    let rank = imp.shape.len() + 1;
    if axes.is_empty() {
        if attr_int(node, "noop_with_empty_axes", 0)? != 0 {
            return Ok((
                Box::new(IdentityLayer),
                Some("no axes with noop_with_empty_axes = 1: the identity".into()),
            ));
        }
        return Err(Error::Unsupported(format!(
            "{what} without axes reduces every axis, the batch axis 0 included (a sample's \
             output may not depend on the other samples)"
        )));
    }
    let mut norm = Vec::with_capacity(axes.len());
    for &a in &axes {
        let b = from_front(a, rank as i64);
        if !(0..rank as i64).contains(&b) {
            return Err(Error::invalid(format!(
                "{what} axis {a} is out of range for a tensor of rank {rank}"
            )));
        }
        if b == 0 {
            return Err(Error::Unsupported(format!(
                "{what} over axes {axes:?}: axis {a} is the batch axis (a sample's output may \
                 not depend on the other samples)"
            )));
        }
        norm.push(b as usize);
    }
    norm.sort_unstable();
    if op == ReduceOp::Mean && keepdims && imp.shape.len() == 3 && norm == [2, 3] {
        return Ok((
            Box::new(AdaptiveAvgPool2d::new((1, 1))?),
            Some("mean over H, W = global average pooling".into()),
        ));
    }
    let note = (op == ReduceOp::Mean && imp.shape.len() == 3 && norm == [2, 3])
        .then(|| "mean over H, W = global average pooling, flattened".to_string());
    Ok((Box::new(Reduce::new(op, &norm, keepdims)?), note))
}

fn geometry(imp: &Importer, node: &NodeProto) -> Result<PoolWindow> {
    let ceil = match attr_int(node, "ceil_mode", 0)? {
        0 => false,
        1 => true,
        other => {
            return Err(Error::malformed(
                "ONNX",
                format!("pooling with ceil_mode = {other} (must be 0 or 1)"),
            ));
        }
    };
    if attr(node, "kernel_shape").is_none() {
        return Err(Error::malformed("ONNX", "pooling without kernel_shape"));
    }
    if pair(node, "dilations", (1, 1))? != (1, 1) {
        return Err(Error::Unsupported("pooling with dilations ≠ 1".into()));
    }
    if imp.shape.len() != 3 {
        return Err(Error::Unsupported(format!(
            "2-D pooling on sample shape {:?} (need [C, H, W])",
            imp.shape
        )));
    }
    let kernel = pair(node, "kernel_shape", (1, 1))?;
    let stride = pair(node, "strides", (1, 1))?;
    Ok((kernel, stride, pads(node)?, ceil))
}
