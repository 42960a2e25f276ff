//! Element-wise layers: `ReLU`, `Dropout`, `IdentityLayer`. Relevance passes through them unchanged.

use super::{Layer, LayerKind, Shares, Tensor};
use crate::error::Result;
use crate::rules::Rule;

/// `max(x, 0)`, element-wise. Relevance passes unchanged (Zennit's `Pass`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReLU;

impl Layer for ReLU {
    fn name(&self) -> String {
        "ReLU".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(crate::kernels::elementwise::map(input, |x| x.max(0.0)))
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        Ok(Shares::Pass)
    }
}

/// Dropout: the identity at inference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dropout;

/// The identity (also what a normalisation becomes once fused into the layer before it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IdentityLayer;

macro_rules! identity_layer {
    ($t:ty, $name:expr) => {
        impl Layer for $t {
            fn name(&self) -> String {
                $name.into()
            }
            fn kind(&self) -> LayerKind {
                LayerKind::Identity
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                Ok(input.clone())
            }
            fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
                Ok(Shares::Pass)
            }
        }
    };
}
identity_layer!(Dropout, "Dropout");
identity_layer!(IdentityLayer, "Identity");
