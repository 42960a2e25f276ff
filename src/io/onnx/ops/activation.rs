//! Activations with parameters or rules (`Clip`, `HardSigmoid`, `LeakyRelu`, `Gelu`, a trailing
//! `Softmax`); the parameterless ones are named in the table of `ops/mod.rs`. Uses the
//! `Importer`, `attrs` and the layers.

use super::Mapped;
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr_float, attr_opt_float, attr_string};
use crate::io::onnx::importer::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::layers::{Clip, Gelu, HardSigmoid, IdentityLayer, LeakyReLU, ReLU};

/// `Clip`: a ReLU when it clips to [0, ∞).
pub(super) fn clip(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let (lo, hi) = clip_bounds(imp, node)?;
    let (lo, hi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
    if lo == 0.0 && hi == f32::INFINITY {
        Ok((Box::new(ReLU), Some("Clip(0, ∞) = ReLU".into())))
    } else {
        Ok((Box::new(Clip::new(lo, hi)?), None))
    }
}

/// `Clip`'s (min, max), from constant inputs (opset ≥ 11) or attributes.
fn clip_bounds(imp: &Importer, node: &NodeProto) -> Result<(Option<f32>, Option<f32>)> {
    let bound = |k: usize, name: &str| -> Result<Option<f32>> {
        if let Some(v) = attr_opt_float(node, name)? {
            return Ok(Some(v));
        }
        imp.opt_const_input(node, k, name)?
            .map(|c| c.scalar_f32(&format!("the Clip {name}")))
            .transpose()
    };
    Ok((bound(1, "min")?, bound(2, "max")?))
}

pub(super) fn hard_sigmoid(node: &NodeProto) -> Result<HardSigmoid> {
    HardSigmoid::new(
        attr_float(node, "alpha", 0.2)?,
        attr_float(node, "beta", 0.5)?,
    )
}

pub(super) fn leaky_relu(node: &NodeProto) -> Result<LeakyReLU> {
    LeakyReLU::new(attr_float(node, "alpha", 0.01)?)
}

pub(super) fn gelu(node: &NodeProto) -> Result<Gelu> {
    match attr_string(node, "approximate").as_deref() {
        None | Some("none") => Ok(Gelu::default()),
        Some("tanh") => Ok(Gelu::tanh()),
        Some(other) => Err(Error::Unsupported(format!("Gelu approximate = {other}"))),
    }
}

/// `Softmax` or `LogSoftmax` (the next network node): ignored (LRP explains the logits), and nothing may
/// follow it.
pub(super) fn trailing_softmax(imp: &mut Importer) -> Result<Mapped> {
    imp.softmax_at = Some(imp.layers.len());
    Ok((
        Box::new(IdentityLayer),
        Some("ignored: LRP explains the logits".into()),
    ))
}
