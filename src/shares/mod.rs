//! The shares vocabulary: what layers describe and kernels evaluate. A linear layer's
//! [`Connectivity`] (dense weights, convolution and pooling geometries), the factored
//! [`ShareTerm`]s `p[j] · g(w_jk) · q[k]` with their [`WeightMap`]s, and [`Shares`], a layer's
//! `d_jk` in any of its forms. Semiring-free; imports only `error` and `tensor`.
//!
//! May import: `error`, `tensor` (docs/architecture.md, "Layers").

mod geometry;

pub(crate) use geometry::out_len;
pub use geometry::{ConvGeometry, PoolGeometry};

use crate::error::{Error, Result};
use crate::tensor::{SharedTensor, Tensor};
use ndarray::{Array2, ArrayView2, ArrayView4};
use std::borrow::Cow;

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
                let outs = g.output_size();
                let geometry_error = || {
                    Error::shape(
                        "convolution connectivity geometry [groups, stride, dilation, out_h, out_w]",
                        &[
                            g.groups.max(1),
                            1,
                            1,
                            outs.0.unwrap_or(0),
                            outs.1.unwrap_or(0),
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

    /// Calls `f(j, k, w_jk)` for every connection of one sample, with `j` and `k` flat indices
    /// into the sample's input and output (pooling windows: `w = 1`). The walk every reference
    /// kernel and test takes; assumes [`check`](Self::check) passed.
    ///
    /// ```
    /// use klrp::shares::Connectivity;
    /// let w = klrp::ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
    /// let mut seen = Vec::new();
    /// Connectivity::Dense { weight: w.view(), bias: None }.for_each(|j, k, w| seen.push((j, k, w)));
    /// assert_eq!(seen, [(0, 0, 1.0), (1, 0, 2.0), (0, 1, 3.0), (1, 1, 4.0)]);
    /// ```
    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, f32)) {
        match self {
            Connectivity::Dense { weight, .. } => {
                for (k, row) in weight.outer_iter().enumerate() {
                    for (j, &w) in row.iter().enumerate() {
                        f(j, k, w);
                    }
                }
            }
            Connectivity::Conv {
                weight, geometry, ..
            } => {
                let g = geometry;
                let cin_g = g.in_channels / g.groups;
                let cout_g = g.out_channels / g.groups;
                for co in 0..g.out_channels {
                    let group = co / cout_g;
                    for oy in 0..g.out_h {
                        for ox in 0..g.out_w {
                            let k = (co * g.out_h + oy) * g.out_w + ox;
                            for cl in 0..cin_g {
                                let ci = group * cin_g + cl;
                                for ky in 0..g.kh {
                                    let iy = (oy * g.stride.0 + ky * g.dilation.0) as isize
                                        - g.padding.0 as isize;
                                    if iy < 0 || iy >= g.in_h as isize {
                                        continue;
                                    }
                                    for kx in 0..g.kw {
                                        let ix = (ox * g.stride.1 + kx * g.dilation.1) as isize
                                            - g.padding.1 as isize;
                                        if ix < 0 || ix >= g.in_w as isize {
                                            continue;
                                        }
                                        let j = (ci * g.in_h + iy as usize) * g.in_w + ix as usize;
                                        f(j, k, weight[[co, cl, ky, kx]]);
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Connectivity::Pool { geometry: g } => {
                for c in 0..g.channels {
                    for (oy, rows) in g.rows.iter().enumerate() {
                        for (ox, cols) in g.cols.iter().enumerate() {
                            let k = (c * g.out_h + oy) * g.out_w + ox;
                            for iy in rows.clone() {
                                for ix in cols.clone() {
                                    f((c * g.in_h + iy) * g.in_w + ix, k, 1.0);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Calls `f(k, w_jk)` for every output `k` that input `j` of one sample feeds: the
    /// connections of [`for_each`](Self::for_each) with this `j` (in another order); assumes
    /// [`check`](Self::check) passed.
    ///
    /// ```
    /// use klrp::shares::Connectivity;
    /// let w = klrp::ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
    /// let mut seen = Vec::new();
    /// Connectivity::Dense { weight: w.view(), bias: None }.for_each_from(1, |k, w| seen.push((k, w)));
    /// assert_eq!(seen, [(0, 2.0), (1, 4.0)]);
    /// ```
    pub fn for_each_from(&self, j: usize, mut f: impl FnMut(usize, f32)) {
        match self {
            Connectivity::Dense { weight, .. } => {
                for (k, row) in weight.outer_iter().enumerate() {
                    f(k, row[j]);
                }
            }
            Connectivity::Conv {
                weight, geometry, ..
            } => {
                let g = geometry;
                let plane = g.in_h * g.in_w;
                let (ci, iy, ix) = (j / plane, (j % plane) / g.in_w, j % g.in_w);
                let cin_g = g.in_channels / g.groups;
                let cout_g = g.out_channels / g.groups;
                let (group, cl) = (ci / cin_g, ci % cin_g);
                // Output position o reads input o·s + t·dil − pad: o = (i + pad − t·dil) / s.
                let hits = |i: usize, pad: usize, t: usize, dil: usize, s: usize, n: usize| {
                    let num = (i + pad).checked_sub(t * dil)?;
                    (num % s == 0 && num / s < n).then_some(num / s)
                };
                for co in group * cout_g..(group + 1) * cout_g {
                    for ky in 0..g.kh {
                        let Some(oy) = hits(iy, g.padding.0, ky, g.dilation.0, g.stride.0, g.out_h)
                        else {
                            continue;
                        };
                        for kx in 0..g.kw {
                            let Some(ox) =
                                hits(ix, g.padding.1, kx, g.dilation.1, g.stride.1, g.out_w)
                            else {
                                continue;
                            };
                            f((co * g.out_h + oy) * g.out_w + ox, weight[[co, cl, ky, kx]]);
                        }
                    }
                }
            }
            Connectivity::Pool { geometry: g } => {
                let plane = g.in_h * g.in_w;
                let (c, iy, ix) = (j / plane, (j % plane) / g.in_w, j % g.in_w);
                for (oy, rows) in g.rows.iter().enumerate() {
                    if !rows.contains(&iy) {
                        continue;
                    }
                    for (ox, cols) in g.cols.iter().enumerate() {
                        if cols.contains(&ix) {
                            f((c * g.out_h + oy) * g.out_w + ox, 1.0);
                        }
                    }
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
    /// Routing (transpose, slice, gather, split: [`Route`](crate::layers::Route)): output
    /// element `k` of a sample is input element `sources[k]` of the same sample (flat indices
    /// within a sample; one map for every sample of the batch). Relevance follows the map
    /// without Θ, like [`Pass`](Shares::Pass): `R_j = ⊕_{k : sources[k] = j} R_k`, the ⊕ of
    /// every output that reads `j` (a repeated gather index), `0` for an input no output reads.
    Route {
        /// Per output element of one sample, the flat index of the input element it reads;
        /// `sources.len()` is the output's per-sample length.
        sources: Cow<'a, [usize]>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array4};

    /// `for_each_from(j)` lists exactly the connections `for_each` lists with this `j`, for
    /// dense, grouped/strided/dilated/asymmetrically padded convolutions and pooling windows.
    #[test]
    fn connections_from_one_input_are_the_walk_restricted_to_it() {
        let dense = Array2::from_shape_fn((3, 4), |(k, j)| (k * 4 + j) as f32);
        let conv_w =
            Array4::from_shape_fn((4, 1, 3, 2), |(a, b, c, d)| (a * 6 + b + c * 2 + d) as f32);
        let conv = ConvGeometry {
            in_channels: 2,
            out_channels: 4,
            groups: 2,
            in_h: 5,
            in_w: 6,
            out_h: out_len(5, 3, 2, (1, 0), 1).unwrap(),
            out_w: out_len(6, 2, 1, (0, 1), 2).unwrap(),
            kh: 3,
            kw: 2,
            stride: (2, 1),
            padding: (1, 0),
            padding_end: (0, 1),
            dilation: (1, 2),
        };
        let pool = PoolGeometry {
            channels: 2,
            in_h: 4,
            in_w: 3,
            out_h: 2,
            out_w: 2,
            rows: vec![0..3, 1..4],
            cols: vec![0..2, 1..3],
            row_div: vec![3, 3],
            col_div: vec![2, 2],
        };
        let conns = [
            Connectivity::Dense {
                weight: dense.view(),
                bias: None,
            },
            Connectivity::Conv {
                weight: conv_w.view(),
                bias: None,
                geometry: conv,
            },
            Connectivity::Pool { geometry: pool },
        ];
        for conn in &conns {
            conn.check().unwrap();
            let mut all = Vec::new();
            conn.for_each(|j, k, w| all.push((j, k, w.to_bits())));
            all.sort_unstable();
            let mut from = Vec::new();
            for j in 0..conn.input_len() {
                conn.for_each_from(j, |k, w| from.push((j, k, w.to_bits())));
            }
            from.sort_unstable();
            assert!(!all.is_empty());
            assert_eq!(all, from, "{conn:?}");
        }
    }
}
