//! Linear layers: `Conv`, `Gemm`, `MatMul` (weights from constants) and `BatchNormalization`;
//! uses the `Importer`, `attrs`, `fuse` (a `Pad` folded into a `Conv`) and the layers.

use super::{Mapped, plain};
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr_float, attr_int, attr_ints, conv_pads, pair, to_usize};
use crate::io::onnx::fuse;
use crate::io::onnx::importer::{Act, Importer};
use crate::io::onnx::proto::NodeProto;
use crate::layers::{BatchNorm2d, Conv2d, Dense};
use ndarray::{Array1, Array2, Array4};

/// `Conv` (node `i`) reading `a`, with the padding of a `Pad` before it.
pub(super) fn conv(imp: &mut Importer, i: usize, node: &NodeProto, a: &Act) -> Result<Mapped> {
    let extra = fuse::conv_padding(imp, i, a);
    plain(conv_layer(imp, node, extra)?)
}

/// A convolution; `extra` is the (top, left, bottom, right) padding of a `Pad` before it.
fn conv_layer(imp: &Importer, node: &NodeProto, extra: Option<[usize; 4]>) -> Result<Conv2d> {
    let w = imp.const_input(node, 1, "weight W")?;
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
    if imp.shape.len() != 3 {
        return Err(Error::shape(
            "Conv input [C, H, W]",
            &[ci, 0, 0],
            &imp.shape,
        ));
    }
    let weight = Array4::from_shape_vec((co, ci, kh, kw), w.floats("the Conv weight")?.to_vec())
        .map_err(|e| Error::malformed("ONNX", e.to_string()))?;
    let bias = match imp.opt_const_input(node, 2, "bias B")? {
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
        (imp.shape[1], imp.shape[2]),
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
    if imp.shape[0] != conv.in_channels() {
        return Err(Error::shape(
            "Conv input [C, H, W]",
            &[conv.in_channels(), 0, 0],
            &imp.shape,
        ));
    }
    Ok(conv)
}

/// Constant input 1 as a matrix (`what` names it in errors).
fn matrix(imp: &Importer, node: &NodeProto, what: &str) -> Result<Array2<f32>> {
    let b = imp.const_input(node, 1, what)?;
    let &[r, c] = b.shape.as_slice() else {
        return Err(Error::Unsupported(format!(
            "{what} of shape {:?} (need a matrix)",
            b.shape
        )));
    };
    Array2::from_shape_vec((r, c), b.floats(what)?.to_vec())
        .map_err(|e| Error::malformed("ONNX", e.to_string()))
}

/// Checks that the activation is a vector of `inputs` features (`op` names the operator).
fn check_features(imp: &Importer, op: &str, inputs: usize) -> Result<()> {
    if imp.shape.len() != 1 {
        return Err(Error::Unsupported(format!(
            "{op} on sample shape {:?} (need [features]: flatten first)",
            imp.shape
        )));
    }
    if imp.shape[0] != inputs {
        return Err(Error::shape(
            format!("{op} input features"),
            &[inputs],
            &imp.shape,
        ));
    }
    Ok(())
}

/// `MatMul` by a constant matrix.
pub(super) fn matmul(imp: &Importer, node: &NodeProto) -> Result<Dense> {
    let b = matrix(imp, node, "weight B")?;
    check_features(imp, "MatMul", b.nrows())?;
    Dense::new(b.reversed_axes().as_standard_layout().into_owned(), None)
}

/// `Gemm` (`transA = 0`): a dense layer, `alpha` and `beta` folded into its weights and bias.
pub(super) fn gemm(imp: &Importer, node: &NodeProto) -> Result<Dense> {
    if attr_int(node, "transA", 0)? != 0 {
        return Err(Error::Unsupported("Gemm with transA = 1".into()));
    }
    let alpha = attr_float(node, "alpha", 1.0)?;
    let beta = attr_float(node, "beta", 1.0)?;
    let m = matrix(imp, node, "weight B")?;
    let mut w = if attr_int(node, "transB", 0)? != 0 {
        m
    } else {
        m.reversed_axes().as_standard_layout().into_owned()
    };
    check_features(imp, "Gemm", w.ncols())?;
    if alpha != 1.0 {
        w.mapv_inplace(|x| x * alpha);
    }
    let out = w.nrows();
    let bias = match imp.opt_const_input(node, 2, "bias C")? {
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

/// `BatchNormalization` in inference mode, kept as a layer for `Network::canonize` to fuse.
pub(super) fn batch_norm(imp: &Importer, node: &NodeProto) -> Result<BatchNorm2d> {
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
        let c = imp.const_input(node, k, what)?;
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
    if imp.shape.first() != Some(&bn.channels()) {
        return Err(Error::shape(
            "BatchNormalization channels",
            &[bn.channels()],
            &imp.shape[..imp.shape.len().min(1)],
        ));
    }
    Ok(bn)
}
