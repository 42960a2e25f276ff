//! `BatchNorm2d`: batch normalisation at inference, fused into the preceding linear layer before
//! relevance propagation (like Zennit's canonizers).

use super::{ChannelAffine, Layer, LayerKind};
use crate::error::{Error, Result, ensure_finite};
use crate::rules::Rule;
use crate::shares::Shares;
use crate::tensor::Tensor;
use ndarray::Array1;

/// Batch normalisation at inference over channel axis 1 (`[N, C]` or `[N, C, H, W]`):
/// `y = (x − μ) / √(σ² + eps) · γ + β`.
///
/// Relevance is not defined through it directly: [`Network::canonize`](crate::Network::canonize)
/// fuses it into the preceding dense or convolution layer (`s = γ/√(σ² + eps)`, `w' = w·s`,
/// `b' = (b − μ)·s + β`), and propagating through an unfused one is an error.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm2d {
    gamma: Array1<f32>,
    beta: Array1<f32>,
    mean: Array1<f32>,
    var: Array1<f32>,
    eps: f32,
}

impl BatchNorm2d {
    /// Batch normalisation with weight γ, bias β, running mean μ and variance σ², and `eps`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the four vectors differ in length or are empty;
    /// [`Error::NonFinite`] for NaN/Inf; [`Error::InvalidArgument`] if a variance + eps is not
    /// positive.
    pub fn new(
        gamma: Array1<f32>,
        beta: Array1<f32>,
        mean: Array1<f32>,
        var: Array1<f32>,
        eps: f32,
    ) -> Result<Self> {
        let c = gamma.len();
        for (name, v) in [
            ("bias", &beta),
            ("running mean", &mean),
            ("running variance", &var),
        ] {
            if v.len() != c {
                return Err(Error::shape(
                    format!("BatchNorm2d {name}"),
                    &[c],
                    &[v.len()],
                ));
            }
        }
        if c == 0 {
            return Err(Error::shape("BatchNorm2d weight", &[1], &[0]));
        }
        for (name, v) in [
            ("weight", &gamma),
            ("bias", &beta),
            ("running mean", &mean),
            ("running variance", &var),
        ] {
            ensure_finite(v.iter(), || format!("BatchNorm2d {name}"))?;
        }
        if !eps.is_finite() || var.iter().any(|&v| v + eps <= 0.0) {
            return Err(Error::invalid(
                "BatchNorm2d needs running variance + eps > 0",
            ));
        }
        Ok(BatchNorm2d {
            gamma,
            beta,
            mean,
            var,
            eps,
        })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.gamma.len()
    }

    fn affine(&self) -> ChannelAffine {
        let scale: Vec<f32> = self
            .gamma
            .iter()
            .zip(&self.var)
            .map(|(g, v)| g / (v + self.eps).sqrt())
            .collect();
        let shift = scale
            .iter()
            .zip(self.beta.iter().zip(&self.mean))
            .map(|(s, (b, m))| b - m * s)
            .collect();
        ChannelAffine { scale, shift }
    }
}

impl Layer for BatchNorm2d {
    fn name(&self) -> String {
        format!("BatchNorm2d({})", self.channels())
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Normalization
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.first() != Some(&self.channels()) {
            return Err(Error::shape(
                "BatchNorm2d input channels",
                &[self.channels()],
                input,
            ));
        }
        Ok(input.to_vec())
    }
    fn param_count(&self) -> usize {
        4 * self.channels()
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.output_shape(input.shape().get(1..).unwrap_or(&[]))?;
        let a = self.affine();
        let mut y = input.clone();
        for mut sample in y.outer_iter_mut() {
            for (c, mut ch) in sample.outer_iter_mut().enumerate() {
                ch.mapv_inplace(|x| x * a.scale[c] + a.shift[c]);
            }
        }
        Ok(y)
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        Err(Error::Unsupported(
            "relevance through an unfused BatchNorm2d: call Network::canonize() first".into(),
        ))
    }
    fn channel_affine(&self) -> Option<ChannelAffine> {
        Some(self.affine())
    }
}
