//! Network layers: each file holds a layer's forward pass and its relevance shares side by side.
//!
//! A [`Layer`] computes its forward pass on a batch and, given the rule a
//! [`Composite`](crate::composite::Composite) assigned to it, describes its shares `d_jk` as
//! [`Shares`]; the [`kernels`](crate::kernels) then evaluate `R_j = ⊕_k Θ(d_jk) ⊗ R_k` in any
//! semiring. Layers know nothing about semirings, so one implementation serves them all, and the
//! trait stays open: a layer of your own propagates like the built-ins.
//!
//! Tensors are batches: `[N, features]` or `[N, C, H, W]` (NCHW, as in PyTorch).

mod activation;
mod batchnorm;
mod conv;
mod dense;
mod flatten;
mod pool;

pub use activation::{Dropout, Identity, ReLU};
pub use batchnorm::BatchNorm2d;
pub use conv::{Conv2d, ConvGeometry};
pub use dense::Dense;
pub use flatten::Flatten;
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MAX_ADAPTIVE_OUTPUT, MaxPool2d, PoolGeometry};

use crate::error::{Error, Result};
use crate::rules::{Rule, ShareTerm, WeightMap};
use ndarray::{Array2, ArrayD, ArrayView2, ArrayView4};
use std::fmt::Debug;

/// A batch of activations (`f32`, batch axis first).
pub type Tensor = ArrayD<f32>;

/// What kind of layer this is; [`Composite`](crate::composite::Composite)s assign rules by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Fully connected (PyTorch `Linear`).
    Dense,
    /// 2-D convolution.
    Conv,
    /// Max pooling.
    MaxPool,
    /// Average pooling (fixed or adaptive windows).
    AvgPool,
    /// Element-wise activation (ReLU, …): relevance passes unchanged.
    Activation,
    /// Reshape (flatten): relevance passes unchanged.
    Reshape,
    /// Batch normalisation: fused into the preceding linear layer before propagation.
    Normalization,
    /// Identity at inference (dropout, identity, a fused normalisation).
    Identity,
    /// A user layer of another kind.
    Other,
}

impl LayerKind {
    /// Dense or convolution: the layers LRP rules apply to.
    pub fn is_linear(self) -> bool {
        matches!(self, LayerKind::Dense | LayerKind::Conv)
    }
}

/// A per-channel affine map `y = x·scale + shift` (what batch normalisation computes at inference).
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAffine {
    /// Per-channel factor.
    pub scale: Vec<f32>,
    /// Per-channel offset.
    pub shift: Vec<f32>,
}

/// Which connections a linear layer has and their weights, for the kernels.
#[derive(Clone, Debug)]
pub enum Connectivity<'a> {
    /// Every input feeds every output; `weight` is `[out, in]` (PyTorch layout).
    Dense {
        /// `[out, in]`.
        weight: ArrayView2<'a, f32>,
        /// `[out]`, if the layer has a bias.
        bias: Option<&'a [f32]>,
    },
    /// A 2-D convolution; `weight` is `[C_out, C_in / groups, kh, kw]`.
    Conv {
        /// `[C_out, C_in / groups, kh, kw]`.
        weight: ArrayView4<'a, f32>,
        /// `[C_out]`, if the layer has a bias.
        bias: Option<&'a [f32]>,
        /// Sizes, strides, padding, dilation, groups.
        geometry: ConvGeometry,
    },
    /// Pooling windows, every connection of weight 1.
    Pool {
        /// The windows.
        geometry: PoolGeometry,
    },
}

impl Connectivity<'_> {
    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        match self {
            Connectivity::Dense { weight, .. } => weight.ncols(),
            Connectivity::Conv { geometry: g, .. } => g.in_channels * g.in_h * g.in_w,
            Connectivity::Pool { geometry: g } => g.channels * g.in_h * g.in_w,
        }
    }

    /// Elements of one output sample.
    pub fn output_len(&self) -> usize {
        match self {
            Connectivity::Dense { weight, .. } => weight.nrows(),
            Connectivity::Conv { geometry: g, .. } => g.out_channels * g.out_h * g.out_w,
            Connectivity::Pool { geometry: g } => g.channels * g.out_h * g.out_w,
        }
    }

    /// The shape of one output sample (batch axis excluded): `[out]` for a dense layer,
    /// `[C, H, W]` for a convolution or pooling.
    pub fn output_shape(&self) -> Vec<usize> {
        match self {
            Connectivity::Dense { weight, .. } => vec![weight.nrows()],
            Connectivity::Conv { geometry: g, .. } => vec![g.out_channels, g.out_h, g.out_w],
            Connectivity::Pool { geometry: g } => vec![g.channels, g.out_h, g.out_w],
        }
    }
}

/// A layer's relevance shares `d_jk`, described without any semiring.
#[derive(Clone, Debug)]
pub enum Shares<'a> {
    /// Relevance passes unchanged (element-wise activations, reshapes, identities); no Θ.
    Pass,
    /// `d_jk = Σ_t p_t[j] · g_t(w_jk) · q_t[k]` over the connections of a linear or pooling layer.
    Linear {
        /// The connections and their weights.
        connectivity: Connectivity<'a>,
        /// The factored terms, from [`rules::linear_share_terms`](crate::rules::linear_share_terms).
        terms: Vec<ShareTerm>,
    },
    /// Winner-take-all pooling: `d_jk = 1` if j is window k's winner, else 0.
    Winner {
        /// The windows.
        geometry: PoolGeometry,
        /// `[N, output elements]`: the winner's flat index within its input sample.
        winners: Array2<usize>,
    },
    /// Shares listed explicitly, per sample, as `(j, k, d_jk)` (flat indices within a sample);
    /// unlisted pairs are not connected. The general form for layers of your own.
    Explicit(Vec<Vec<(usize, usize, f32)>>),
}

/// A linear layer (dense or convolution): the forward passes the rules need.
pub trait LinearMap {
    /// The layer's connections and parameters for an input of per-sample shape `input`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `input` does not fit the layer.
    fn connectivity(&self, input: &[usize]) -> Result<Connectivity<'_>>;

    /// The forward pass with mapped parameters: `z_k = Σ_j x_j g(w_jk) + g_b(b_k)`, no bias when
    /// `bias` is `None` (or the layer has none).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not fit the layer.
    fn forward_mapped(
        &self,
        x: &Tensor,
        weight: WeightMap,
        bias: Option<WeightMap>,
    ) -> Result<Tensor>;

    /// `max_j |x_j w_jk|` over the inputs connected to each output k.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` does not fit the layer.
    fn max_abs_forward(&self, x: &Tensor) -> Result<Tensor>;
}

/// A network layer: forward pass and K-LRP shares.
///
/// Implement it for a layer of your own; return [`Shares::Explicit`] (or [`Shares::Pass`]) from
/// [`shares`](Layer::shares) and it propagates in every semiring like the built-in layers.
pub trait Layer: Debug + Send + Sync {
    /// A display name, e.g. `Dense(784 → 300)`.
    fn name(&self) -> String;

    /// The layer's kind.
    fn kind(&self) -> LayerKind;

    /// The output shape of one sample for an input sample of shape `input` (batch axis excluded).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the layer cannot take that input.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// Number of parameters (weights and biases).
    fn param_count(&self) -> usize {
        0
    }

    /// The forward pass on a batch.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the batch does not fit the layer.
    fn forward(&self, input: &Tensor) -> Result<Tensor>;

    /// The shares `d_jk` of this layer under `rule`, given its input and output batches.
    ///
    /// Layers that pass relevance unchanged ignore `rule`.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the rule does not apply to this layer.
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>>;

    /// The per-channel affine map this layer computes, if it is a normalisation to be fused into
    /// the preceding linear layer by [`Network::canonize`](crate::Network::canonize).
    fn channel_affine(&self) -> Option<ChannelAffine> {
        None
    }

    /// Folds `affine`, applied to this layer's output, into the layer's parameters.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for layers that cannot absorb it (everything but dense and
    /// convolution layers); [`Error::ShapeMismatch`] if the channel counts differ.
    fn fuse_channel_affine(&mut self, affine: &ChannelAffine) -> Result<()> {
        let _ = affine;
        Err(Error::Unsupported(format!(
            "{} cannot absorb a following normalisation",
            self.name()
        )))
    }
}

/// Checks that a batch has at least one sample, of per-sample shape `expected`.
pub(crate) fn check_batch(x: &Tensor, expected: &[usize], context: &str) -> Result<()> {
    if x.ndim() == 0 || x.shape()[0] == 0 || &x.shape()[1..] != expected {
        let mut want = vec![x.shape().first().copied().unwrap_or(1).max(1)];
        want.extend_from_slice(expected);
        return Err(Error::shape(context, &want, x.shape()));
    }
    Ok(())
}

/// [`Error::ShapeMismatch`] unless `output` is the batch of `input` in per-sample shape
/// `sample_out` (a layer's `shares` called with tensors that do not belong together).
pub(crate) fn check_output(
    input: &Tensor,
    output: &Tensor,
    sample_out: &[usize],
    context: &str,
) -> Result<()> {
    let want = with_batch(input.shape().first().copied().unwrap_or(0), sample_out);
    if output.shape() != want.as_slice() {
        return Err(Error::shape(context, &want, output.shape()));
    }
    Ok(())
}

/// Prepends the batch size to a per-sample shape.
pub(crate) fn with_batch(n: usize, sample: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(sample.len() + 1);
    s.push(n);
    s.extend_from_slice(sample);
    s
}

/// Folds `affine` (applied per output channel after the layer) into a linear layer's parameters:
/// `w'_c = w_c · s_c`, `b'_c = b_c · s_c + t_c` (`b = 0` when there was no bias).
pub(crate) fn fold_channel_affine<D: ndarray::RemoveAxis>(
    weight: &mut ndarray::Array<f32, D>,
    bias: &mut Option<ndarray::Array1<f32>>,
    affine: &ChannelAffine,
    layer: &str,
) -> Result<()> {
    let out = weight.shape()[0];
    if affine.scale.len() != out || affine.shift.len() != out {
        return Err(Error::shape(
            format!("normalisation fused into {layer}"),
            &[out],
            &[affine.scale.len()],
        ));
    }
    let mut b = bias.take().unwrap_or_else(|| ndarray::Array1::zeros(out));
    for (k, mut w) in weight.outer_iter_mut().enumerate() {
        w *= affine.scale[k];
        b[k] = b[k] * affine.scale[k] + affine.shift[k];
    }
    *bias = Some(b);
    Ok(())
}
