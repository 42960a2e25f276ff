//! Pooling: `MaxPool`, `AveragePool`, `GlobalAveragePool` and `ReduceMean` over H, W; uses the
//! `Importer`, `attrs` and the layers.

use super::Mapped;
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr, attr_int, attr_ints, from_front, pads, pair};
use crate::io::onnx::importer::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::layers::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};

/// Kernel, stride and padding of a 2-D pooling node.
type PoolWindow = ((usize, usize), (usize, usize), (usize, usize));

pub(super) fn max_pool(imp: &Importer, node: &NodeProto) -> Result<MaxPool2d> {
    if node.outputs.len() > 1 && !node.outputs[1].is_empty() {
        return Err(Error::Unsupported("MaxPool with an Indices output".into()));
    }
    let (kernel, stride, padding) = geometry(imp, node)?;
    if attr_int(node, "storage_order", 0)? != 0 {
        return Err(Error::Unsupported("MaxPool with storage_order = 1".into()));
    }
    MaxPool2d::new(kernel, stride, padding)
}

pub(super) fn average_pool(imp: &Importer, node: &NodeProto) -> Result<AvgPool2d> {
    let (kernel, stride, padding) = geometry(imp, node)?;
    let include = attr_int(node, "count_include_pad", 0)? != 0;
    Ok(AvgPool2d::new(kernel, stride, padding)?.with_count_include_pad(include))
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

/// `ReduceMean` over H and W: a global average pooling.
pub(super) fn reduce_mean(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    check_global_mean(imp, node)?;
    Ok((
        Box::new(AdaptiveAvgPool2d::new((1, 1))?),
        Some("mean over H, W = global average pooling".into()),
    ))
}

fn geometry(imp: &Importer, node: &NodeProto) -> Result<PoolWindow> {
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
    if imp.shape.len() != 3 {
        return Err(Error::Unsupported(format!(
            "2-D pooling on sample shape {:?} (need [C, H, W])",
            imp.shape
        )));
    }
    let kernel = pair(node, "kernel_shape", (1, 1))?;
    let stride = pair(node, "strides", (1, 1))?;
    Ok((kernel, stride, pads(node)?))
}

/// Checks that a `ReduceMean` averages `[N, C, H, W]` over H and W, keeping the axes.
fn check_global_mean(imp: &Importer, node: &NodeProto) -> Result<()> {
    let axes = match attr_ints(node, "axes") {
        Some(a) => a,
        None => match imp.opt_const_input(node, 1, "axes")? {
            Some(a) => a.ints("ReduceMean axes")?.to_vec(),
            None => Vec::new(),
        },
    };
    let mut axes: Vec<i64> = axes.iter().map(|&a| from_front(a, 4)).collect();
    axes.sort_unstable();
    if imp.shape.len() != 3 || axes != [2, 3] {
        return Err(Error::Unsupported(format!(
            "ReduceMean over axes {axes:?} of sample shape {:?} (only the mean over H and W \
             of [N, C, H, W], a global average pooling, is supported)",
            imp.shape
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
