//! Network layers: each file holds a layer's forward pass and its relevance shares side by side.
//!
//! May import: `error`, `kernels`, `rules`, `shares`, `tensor` (docs/architecture.md, "Layers").
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
mod merge;
mod pool;
mod reduce;
mod route;

pub use activation::{
    Clip, Dropout, Gelu, HardSigmoid, HardSwish, IdentityLayer, LeakyReLU, ReLU, SiLU, Sigmoid,
    Tanh,
};
pub use batchnorm::{BatchNorm2d, StandaloneBatchNorm};
pub use conv::Conv2d;
pub use dense::Dense;
pub use flatten::Flatten;
pub use merge::{Add, Concat, Mul};
pub use pool::{AdaptiveAvgPool2d, AvgPool2d, MAX_ADAPTIVE_OUTPUT, MaxPool2d};
pub use reduce::{Reduce, ReduceOp};
pub use route::{Reshape, Route};
// The vocabulary layers describe themselves in, where it has always been importable from.
pub use crate::shares::{Connectivity, ConvGeometry, LinearMap, PoolGeometry, Shares};
pub use crate::tensor::Tensor;

use crate::error::{Error, Result};
use crate::rules::Rule;
use crate::tensor::with_batch;
use std::fmt::Debug;

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
    /// Reshape, flatten or routing (transpose, slice, gather, split): relevance follows the
    /// elements back unchanged, without Θ.
    Reshape,
    /// Batch normalisation: fused into the preceding linear layer before propagation, or, where
    /// it cannot be ([`StandaloneBatchNorm`]), a diagonal linear layer given the dense-layer rule.
    Normalization,
    /// Identity at inference (dropout, identity, a fused normalisation).
    Identity,
    /// Element-wise sum of two or more inputs of one shape (a residual connection); its rule is
    /// the composite's `sum` rule (proportional / max-abs, like average pooling).
    Add,
    /// Concatenation of inputs along the channel axis: relevance goes back to each slice unchanged.
    Concat,
    /// Element-wise product with a gate (squeeze-and-excitation, `x·σ(x)`): all relevance to the
    /// gated operand.
    Mul,
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

    /// The output shape of one sample for the per-sample shapes of this node's inputs, in order.
    ///
    /// Provided: with one input, [`output_shape`](Layer::output_shape); otherwise an error.
    /// Layers that take several inputs ([`Add`], [`Concat`], [`Mul`]) override it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the inputs do not fit the layer or their number is wrong.
    fn output_shape_multi(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        match inputs {
            [one] => self.output_shape(one),
            _ => Err(single_input_error(&self.name(), inputs.len())),
        }
    }

    /// The forward pass on the batches of this node's inputs, in order.
    ///
    /// Provided: with one input, [`forward`](Layer::forward); otherwise an error.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the batches do not fit the layer or their number is wrong.
    fn forward_multi(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        match inputs {
            [one] => self.forward(one),
            _ => Err(single_input_error(&self.name(), inputs.len())),
        }
    }

    /// The shares of this node under `rule`: one [`Shares`] per input (operand), in order, each
    /// connecting that input to the node's output.
    ///
    /// Provided: with one input, `vec![`[`shares`](Layer::shares)`(…)]`; otherwise an error.
    ///
    /// # Errors
    /// As [`shares`](Layer::shares); [`Error::ShapeMismatch`] if the number of inputs is wrong.
    fn shares_multi(
        &self,
        inputs: &[&Tensor],
        output: &Tensor,
        rule: &Rule,
    ) -> Result<Vec<Shares<'_>>> {
        match inputs {
            [one] => Ok(vec![self.shares(one, output, rule)?]),
            _ => Err(single_input_error(&self.name(), inputs.len())),
        }
    }

    /// Whether this layer's output is a gate, i.e. values in `[0, 1]` meant to scale another
    /// tensor (sigmoid, hard sigmoid): a [`Mul`] with an automatic gate treats the operand a gate
    /// layer produces as the gate.
    fn is_gate(&self) -> bool {
        false
    }

    /// Called once when a graph is built, with the layers producing this node's inputs, in order
    /// (`None` for the network input), before any shape is computed. [`Mul`] picks its gate
    /// operand here; other layers need nothing (the provided method does nothing).
    ///
    /// # Errors
    /// Whatever the layer finds wrong with its producers (e.g. a [`Mul`] that cannot tell its gate).
    fn resolve_inputs(&mut self, producers: &[Option<&dyn Layer>]) -> Result<()> {
        let _ = producers;
        Ok(())
    }

    /// How many units of this node's forward pass on `inputs` lie within `f32` rounding of a kink
    /// that decides where relevance goes: an activation input near a kink where the output is 0
    /// (ReLU, LeakyReLU, a [`Clip`] bound at 0), a max-pooling window whose two largest inputs
    /// are nearly tied. The tolerance is [`near_kink_tolerance`] of each sample's largest input
    /// magnitude; exact zeros are not counted (docs/semantics.md §9, "Near kinks").
    ///
    /// Provided: 0 (no kink, or one that does not move relevance).
    ///
    /// # Errors
    /// As [`forward_multi`](Layer::forward_multi) for inputs that do not fit the layer.
    fn near_kinks(&self, inputs: &[&Tensor]) -> Result<usize> {
        let _ = inputs;
        Ok(0)
    }

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

/// How many `f32` machine epsilons of a sample's scale count as "within rounding" of a kink
/// ([`Layer::near_kinks`]): 16, so the tolerance is `16 · 2⁻²³ ≈ 1.9e-6` of the scale. A
/// pre-activation summed from n products carries a rounding error of about `√n · ε` of the
/// products' magnitude (at most `n · ε`); 16 ulps of the layer's largest value covers the typical
/// error of sums of a few hundred terms without flagging a clear decision.
pub const NEAR_KINK_ULPS: f32 = 16.0;

/// The distance from a kink below which a value of a sample whose largest input magnitude is
/// `scale` counts as near it: [`NEAR_KINK_ULPS`] `· f32::EPSILON · scale`.
pub fn near_kink_tolerance(scale: f32) -> f32 {
    NEAR_KINK_ULPS * f32::EPSILON * scale
}

/// The largest magnitude in `s` and the smallest nonzero one (`f32::INFINITY` if none), in one
/// parallel pass over the bit patterns (for finite values the order of `|x|` is the order of
/// `bits & 0x7fff_ffff` as integers, whose min/max reductions vectorise).
pub(crate) fn magnitude_range(s: &[f32]) -> (f32, f32) {
    use rayon::prelude::*;
    let (max, min_nz) = s
        .par_chunks(1 << 15)
        .map(|c| {
            let (mut hi, mut lo) = (0u32, u32::MAX);
            for v in c {
                let b = v.to_bits() & 0x7fff_ffff;
                hi = hi.max(b);
                // 0 wraps to u32::MAX and never is the minimum.
                lo = lo.min(b.wrapping_sub(1));
            }
            (hi, lo)
        })
        .reduce(|| (0, u32::MAX), |a, b| (a.0.max(b.0), a.1.min(b.1)));
    let smallest = match min_nz {
        u32::MAX => f32::INFINITY,
        b => f32::from_bits(b + 1),
    };
    (f32::from_bits(max), smallest)
}

/// Element-wise kinks at 0 (ReLU-like layers): per sample, the nonzero inputs `x` with
/// `|x| ≤ near_kink_tolerance(max |x|)`.
pub(crate) fn near_zero_count(inputs: &[&Tensor]) -> Result<usize> {
    use rayon::prelude::*;
    let [x] = inputs else {
        return Err(single_input_error(
            "an element-wise activation",
            inputs.len(),
        ));
    };
    let x = x.as_standard_layout();
    let mut count = 0;
    for s in x.outer_iter() {
        let s = s.as_slice().unwrap_or(&[]);
        // A second pass only when the smallest nonzero magnitude is near 0 (a clear sample is
        // read once).
        let (scale, smallest) = magnitude_range(s);
        let tol = near_kink_tolerance(scale);
        if smallest > tol {
            continue;
        }
        let tol_bits = tol.to_bits();
        count += s
            .par_chunks(1 << 15)
            .map(|c| {
                c.iter()
                    .filter(|v| (v.to_bits() & 0x7fff_ffff).wrapping_sub(1) < tol_bits)
                    .count()
            })
            .sum::<usize>();
    }
    Ok(count)
}

/// The error of a single-input layer given `got` inputs.
fn single_input_error(name: &str, got: usize) -> Error {
    Error::shape(format!("{name} inputs (it takes one)"), &[1], &[got])
}

/// Checks that a batch has at least one sample, of per-sample shape `expected`.
pub(crate) fn check_batch(x: &Tensor, expected: &[usize], context: &str) -> Result<()> {
    if x.ndim() == 0 || x.shape()[0] == 0 || &x.shape()[1..] != expected {
        // The batch size is the first axis only when the number of axes is right; otherwise
        // (e.g. one sample without its batch axis) it would read a feature axis as the batch.
        let batch = if x.ndim() == expected.len() + 1 {
            x.shape()[0].max(1)
        } else {
            1
        };
        let want = with_batch(batch, expected);
        if x.shape() == expected {
            return Err(Error::shape(
                format!(
                    "{context} (one sample without the batch axis: add it, e.g. with x.insert_axis(Axis(0)))"
                ),
                &want,
                x.shape(),
            ));
        }
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
