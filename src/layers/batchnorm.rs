//! `BatchNorm2d`: batch normalisation at inference, fused into the preceding linear layer before
//! relevance propagation (like Zennit's canonizers), or, where no linear layer produces its input
//! alone, kept as [`StandaloneBatchNorm`]: the per-channel linear map `y = s·x + t` under the
//! linear rules.

use super::{ChannelAffine, Conv2d, Layer, LayerKind, check_batch};
use crate::error::{Error, Result, ensure_finite};
use crate::rules::Rule;
use crate::shares::Shares;
use crate::tensor::Tensor;
use ndarray::{Array1, Array4, IxDyn};

/// Batch normalisation at inference over channel axis 1 (`[N, C]` or `[N, C, H, W]`):
/// `y = (x − μ) / √(σ² + eps) · γ + β`.
///
/// Relevance is not defined through it directly: [`Network::canonize`](crate::Network::canonize)
/// fuses it into the preceding dense or convolution layer (`s = γ/√(σ² + eps)`, `w' = w·s`,
/// `b' = (b − μ)·s + β`), or replaces it by a [`StandaloneBatchNorm`] where no such layer
/// produces its input alone; propagating through a `BatchNorm2d` itself is an error.
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

    /// This normalisation as a [`StandaloneBatchNorm`], the linear map `y = s·x + t` with
    /// `s = γ/√(σ² + eps)` and `t = β − s·μ`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `s` or `t` overflows.
    pub fn standalone(&self) -> Result<StandaloneBatchNorm> {
        StandaloneBatchNorm::new(&self.affine())
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
            "relevance through a BatchNorm2d: call Network::canonize() first (it fuses the \
             normalisation or makes it a StandaloneBatchNorm)"
                .into(),
        ))
    }
    fn channel_affine(&self) -> Option<ChannelAffine> {
        Some(self.affine())
    }
}

/// A batch normalisation no dense or convolution layer produces alone (after a `Concat`, an
/// activation, or on the network input), as the per-channel linear map it computes at inference:
///
/// `y_c = s_c · x_c + t_c`, `s = γ/√(σ² + eps)`, `t = β − s·μ`
///
/// over channel axis 1 of `[N, C, …]`. It is a diagonal linear layer, evaluated as a depthwise
/// 1×1 convolution (`groups = C`, weight `s_c`, bias `t_c`), so every linear rule, kernel and
/// semiring applies: under LRP-0 its shares are `d_cc = s_c·x_c / y_c` (LRP-ε: `/ stab_ε(y_c)`),
/// one input per output. Its [`LayerKind`] stays [`Normalization`](LayerKind::Normalization):
/// composites give it their dense-layer rule, and it is never their "first linear layer" (no
/// flat or z^B on it); docs/semantics.md §5. [`Network::canonize`](crate::Network::canonize)
/// makes one of every [`BatchNorm2d`] it cannot fuse.
///
/// ```
/// use klrp::layers::{BatchNorm2d, Layer, StandaloneBatchNorm};
/// use ndarray::{array, ArrayD};
/// // γ = 2, β = 1, μ = 0, σ² = 1 − eps: s = 2, t = 1.
/// let eps = 1e-5;
/// let bn = BatchNorm2d::new(array![2.0], array![1.0], array![0.0], array![1.0 - eps], eps)?;
/// let standalone: StandaloneBatchNorm = bn.standalone()?;
/// let y = standalone.forward(&ArrayD::from_elem(vec![1, 1, 2, 2], 3.0))?;
/// assert!(y.iter().all(|&v| (v - 7.0).abs() < 1e-5));
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StandaloneBatchNorm {
    /// The depthwise 1×1 convolution `s_c · x + t_c`.
    conv: Conv2d,
}

impl StandaloneBatchNorm {
    /// The map `y_c = scale_c · x_c + shift_c` over channel axis 1.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `scale` and `shift` differ in length or are empty;
    /// [`Error::NonFinite`] for NaN/Inf.
    pub fn new(affine: &ChannelAffine) -> Result<Self> {
        let c = affine.scale.len();
        if affine.shift.len() != c || c == 0 {
            return Err(Error::shape(
                "StandaloneBatchNorm shift",
                &[c.max(1)],
                &[affine.shift.len()],
            ));
        }
        let weight = Array4::from_shape_vec((c, 1, 1, 1), affine.scale.clone())
            .map_err(|e| Error::invalid(format!("StandaloneBatchNorm weight: {e}")))?;
        let conv = Conv2d::new(weight, Some(Array1::from(affine.shift.clone())))?.with_groups(c)?;
        Ok(StandaloneBatchNorm { conv })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.conv.out_channels()
    }

    /// The per-channel map: `scale` `s` and `shift` `t`.
    pub fn affine(&self) -> ChannelAffine {
        ChannelAffine {
            scale: self.conv.weight().iter().copied().collect(),
            shift: self.conv.bias().map_or_else(Vec::new, |b| b.to_vec()),
        }
    }

    /// The per-sample shape the convolution sees for a sample `[C, …]`: `[C, H, W]` as it is,
    /// anything else as `[C, 1, L]` (a 1×1 kernel reads every position on its own).
    fn conv_sample(&self, input: &[usize]) -> Result<[usize; 3]> {
        match *input {
            [c, h, w] if c == self.channels() => Ok([c, h, w]),
            [c, ref rest @ ..] if c == self.channels() => Ok([c, 1, rest.iter().product()]),
            _ => Err(Error::shape(
                "StandaloneBatchNorm input channels",
                &[self.channels()],
                &input[..input.len().min(1)],
            )),
        }
    }

    /// `x` as the convolution's `[N, C, H, W]` batch (moved, reshaped when it is not 4-D).
    fn as_conv_batch(&self, x: &Tensor) -> Result<Tensor> {
        let sample = x.shape().get(1..).unwrap_or(&[]);
        let [c, h, w] = self.conv_sample(sample)?;
        check_batch(x, sample, "StandaloneBatchNorm input")?;
        if x.ndim() == 4 {
            return Ok(x.clone());
        }
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&[x.shape()[0], c, h, w]))
            .map_err(|e| Error::invalid(format!("StandaloneBatchNorm input: {e}")))
    }
}

impl Layer for StandaloneBatchNorm {
    fn name(&self) -> String {
        format!("BatchNorm2d({}, standalone)", self.channels())
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Normalization
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.conv_sample(input)?;
        Ok(input.to_vec())
    }
    fn param_count(&self) -> usize {
        2 * self.channels()
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(&self.as_conv_batch(input)?)?;
        y.into_shape_with_order(input.raw_dim())
            .map_err(|e| Error::invalid(format!("StandaloneBatchNorm output: {e}")))
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        super::check_output(
            input,
            output,
            input.shape().get(1..).unwrap_or(&[]),
            "StandaloneBatchNorm output",
        )?;
        let (a, z) = (self.as_conv_batch(input)?, self.as_conv_batch(output)?);
        self.conv.shares(&a, &z, rule)
    }
}
