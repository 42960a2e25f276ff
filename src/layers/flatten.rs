//! `Flatten`: `[N, C, H, W] → [N, C·H·W]`; relevance is reshaped back.

use super::{Layer, LayerKind};
use crate::error::{Error, Result};
use crate::rules::Rule;
use crate::shares::Shares;
use crate::tensor::Tensor;
use ndarray::IxDyn;

/// Flattens every sample to one axis (PyTorch `nn.Flatten()`, start_dim = 1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flatten;

impl Layer for Flatten {
    fn name(&self) -> String {
        "Flatten".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Reshape
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let n = input.shape().first().copied().unwrap_or(0);
        let len: usize = input.shape().iter().skip(1).product();
        input
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&[n, len]))
            .map_err(|e| Error::invalid(format!("Flatten: {e}")))
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        Ok(Shares::Pass)
    }
}
