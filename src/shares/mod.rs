//! The shares vocabulary: what layers describe and kernels evaluate. A linear layer's
//! [`Connectivity`] (dense weights, convolution and pooling geometries), the factored
//! [`ShareTerm`]s `p[j] · g(w_jk) · q[k]` with their [`WeightMap`]s, and [`Shares`], a layer's
//! `d_jk` in any of its forms. Semiring-free; imports only `error` and `tensor`.

mod geometry;

pub(crate) use geometry::out_len;
pub use geometry::{ConvGeometry, PoolGeometry};

use crate::error::{Error, Result};
use crate::tensor::{SharedTensor, Tensor};
use ndarray::{Array2, ArrayView2, ArrayView4};

/// A map applied to every weight (or bias) before a modified forward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightMap {
    /// w
    Identity,
    /// w⁺ = max(w, 0)
    Positive,
    /// w⁻ = min(w, 0)
    Negative,
    /// |w|
    Abs,
    /// w²
    Square,
    /// 1 (connectivity only)
    Ones,
    /// w + γ·w⁺
    GammaPositive(f32),
    /// w + γ·w⁻
    GammaNegative(f32),
}

impl WeightMap {
    /// Whether the map's values are never negative (`|w|`, `w²`, `1`, `w⁺`).
    pub fn is_nonnegative(self) -> bool {
        matches!(
            self,
            WeightMap::Abs | WeightMap::Square | WeightMap::Ones | WeightMap::Positive
        )
    }

    /// Applies the map to one weight.
    #[inline]
    pub fn apply(self, w: f32) -> f32 {
        match self {
            WeightMap::Identity => w,
            WeightMap::Positive => w.max(0.0),
            WeightMap::Negative => w.min(0.0),
            WeightMap::Abs => w.abs(),
            WeightMap::Square => w * w,
            WeightMap::Ones => 1.0,
            WeightMap::GammaPositive(g) => w + g * w.max(0.0),
            WeightMap::GammaNegative(g) => w + g * w.min(0.0),
        }
    }
}

/// One factored term `p[j] · g(w_jk) · q[k]` of a linear layer's shares.
#[derive(Clone, Debug)]
pub struct ShareTerm {
    /// `p`: the input factor, shaped like the layer's input (batch included).
    pub input: SharedTensor,
    /// `g`: the weight map.
    pub weight: WeightMap,
    /// `q`: the output factor, shaped like the layer's output (batch included).
    pub scale: SharedTensor,
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

    /// Checks that the parts agree (the enum is public, so a hand-made one may not): a bias of one
    /// value per output; a convolution's weight `[C_out, C_in / groups, kh, kw]`, output size
    /// `⌊(in + pad_begin + pad_end − dilation·(k − 1) − 1) / stride⌋ + 1` and non-zero stride, dilation and
    /// groups dividing both channel counts; pooling windows inside the input, one per output row
    /// and column. The kernels call this before touching any data.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the part that does not fit.
    pub fn check(&self) -> Result<()> {
        let bias_fits = |bias: Option<&[f32]>, out: usize, what: &str| match bias {
            Some(b) if b.len() != out => Err(Error::shape(what, &[out], &[b.len()])),
            _ => Ok(()),
        };
        match self {
            Connectivity::Dense { weight, bias } => {
                bias_fits(*bias, weight.nrows(), "dense connectivity bias")
            }
            Connectivity::Conv {
                weight,
                bias,
                geometry: g,
            } => {
                let geometry_error = || {
                    Error::shape(
                        "convolution connectivity geometry [groups, stride, dilation, out_h, out_w]",
                        &[
                            g.groups.max(1),
                            1,
                            1,
                            out_len(
                                g.in_h,
                                g.kh,
                                g.stride.0,
                                (g.padding.0, g.padding_end.0),
                                g.dilation.0,
                            )
                            .unwrap_or(0),
                            out_len(
                                g.in_w,
                                g.kw,
                                g.stride.1,
                                (g.padding.1, g.padding_end.1),
                                g.dilation.1,
                            )
                            .unwrap_or(0),
                        ],
                        &[
                            g.groups,
                            g.stride.0.min(g.stride.1),
                            g.dilation.0.min(g.dilation.1),
                            g.out_h,
                            g.out_w,
                        ],
                    )
                };
                let positive = g.groups > 0
                    && g.stride.0 > 0
                    && g.stride.1 > 0
                    && g.dilation.0 > 0
                    && g.dilation.1 > 0;
                if !positive || g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0 {
                    return Err(geometry_error());
                }
                let want = [g.out_channels, g.in_channels / g.groups, g.kh, g.kw];
                if weight.shape() != want {
                    return Err(Error::shape(
                        "convolution connectivity weight [C_out, C_in / groups, kh, kw]",
                        &want,
                        weight.shape(),
                    ));
                }
                let outs = (
                    out_len(
                        g.in_h,
                        g.kh,
                        g.stride.0,
                        (g.padding.0, g.padding_end.0),
                        g.dilation.0,
                    ),
                    out_len(
                        g.in_w,
                        g.kw,
                        g.stride.1,
                        (g.padding.1, g.padding_end.1),
                        g.dilation.1,
                    ),
                );
                if outs != (Some(g.out_h), Some(g.out_w)) {
                    return Err(geometry_error());
                }
                bias_fits(*bias, g.out_channels, "convolution connectivity bias")
            }
            Connectivity::Pool { geometry: g } => {
                let inside = |r: &[std::ops::Range<usize>], n: usize| {
                    r.iter().all(|r| r.start <= r.end && r.end <= n)
                };
                let fits = g.rows.len() == g.out_h
                    && g.cols.len() == g.out_w
                    && g.row_div.len() == g.out_h
                    && g.col_div.len() == g.out_w
                    && inside(&g.rows, g.in_h)
                    && inside(&g.cols, g.in_w);
                if fits {
                    Ok(())
                } else {
                    Err(Error::shape(
                        "pooling connectivity windows [rows, cols, row divisors, col divisors]",
                        &[g.out_h, g.out_w, g.out_h, g.out_w],
                        &[g.rows.len(), g.cols.len(), g.row_div.len(), g.col_div.len()],
                    ))
                }
            }
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
    /// One-to-one shares between an input and an output of the same shape: input `j` feeds
    /// only output `j`, with `d_jj = shares[j]` (the operands of [`Add`](crate::layers::Add));
    /// `R_j = Θ(d_jj) ⊗ R_j`. `shares` is shaped like the input batch.
    Elementwise(SharedTensor),
    /// The input is the slice of the output along the channel axis (the first axis after the
    /// batch) that starts at channel `start` (an operand of [`Concat`](crate::layers::Concat)): relevance of the slice
    /// passes unchanged, without Θ.
    ChannelSlice {
        /// The output channel where this input's channels begin.
        start: usize,
    },
    /// No connection: the input receives no relevance (`R_j = 0`; the gate of [`Mul`](crate::layers::Mul)).
    Disconnected,
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
