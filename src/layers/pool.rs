//! Pooling layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, and their shares.
//!
//! Max pooling is winner-take-all by default (all relevance to the window's first maximum in
//! row-major order); [`ProportionalRule`] treats it as average
//! pooling for relevance instead. Average pooling is proportional,
//! `d_jk = (a_j / n_k) / stab_ε(mean_k)`, or max-abs under the Viterbi composite,
//! `d_jk = |a_j| / (max_window |a_j'| + δ)` (also max pooling treated as average there).

use super::{Layer, LayerKind, check_batch};
use crate::error::{Error, Result};
use crate::kernels;
use crate::rules::{ProportionalRule, Rule, stabilized_recip};
use crate::shares::{Connectivity, PoolGeometry, ShareTerm, Shares, WeightMap};
use crate::tensor::Tensor;
use crate::tensor::elementwise;
use ndarray::{Array2, Axis};
use rayon::prelude::*;
use std::ops::Range;

fn sample_chw(input: &[usize], layer: &str) -> Result<(usize, usize, usize)> {
    match *input {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(Error::invalid(format!(
            "{layer} takes samples of shape [C, H, W] (3 axes), got {input:?} ({} axes)",
            input.len()
        ))),
    }
}

/// Windows of a regular pooling along one axis: size `k`, `stride`, zero `pad` on each side, floor
/// or ceil mode (PyTorch's rules); `None` if the window is larger than the padded input.
///
/// Floor mode has `⌊(n + 2·pad − k) / stride⌋ + 1` windows, ceil mode `⌈(n + 2·pad − k) / stride⌉ + 1`,
/// less one if the last would start in the right padding (at or after `n + pad`), as PyTorch
/// drops it. The divisor counts the window clipped to the padded input `[−pad, n + pad)` with
/// `include_pad` (PyTorch's `count_include_pad`; the kernel size `k` except for a ceil-mode window
/// running past the padding), the in-bounds inputs only without it.
fn regular_windows(
    n: usize,
    k: usize,
    stride: usize,
    pad: usize,
    include_pad: bool,
    ceil: bool,
) -> Option<(Vec<Range<usize>>, Vec<usize>)> {
    let padded_end = n.checked_add(pad)?;
    let span = padded_end.checked_add(pad)?.checked_sub(k)?;
    let mut out = if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    if ceil && (out - 1).checked_mul(stride)? >= padded_end {
        out -= 1;
    }
    let mut ranges = Vec::with_capacity(out);
    let mut divs = Vec::with_capacity(out);
    for o in 0..out {
        let start = (o * stride) as isize - pad as isize;
        let end = start + k as isize;
        let lo = start.max(0) as usize;
        let hi = (end.min(n as isize)).max(0) as usize;
        if lo >= hi {
            return None;
        }
        let padded_hi = end.min(padded_end as isize);
        divs.push(if include_pad {
            (padded_hi - start) as usize
        } else {
            hi - lo
        });
        ranges.push(lo..hi);
    }
    Some((ranges, divs))
}

/// Windows of adaptive pooling: output i covers `⌊i·n/out⌋ .. ⌈(i+1)·n/out⌉` (PyTorch).
fn adaptive_windows(n: usize, out: usize) -> (Vec<Range<usize>>, Vec<usize>) {
    // In u128: `(i + 1) · n` cannot overflow, and the bounds are at most `n`.
    let (n128, out128) = (n as u128, out as u128);
    let ranges: Vec<Range<usize>> = (0..out128)
        .map(|i| (i * n128 / out128) as usize..((i + 1) * n128).div_ceil(out128) as usize)
        .collect();
    let divs = ranges.iter().map(|r| r.len()).collect();
    (ranges, divs)
}

impl PoolGeometry {
    fn regular(input: &[usize], window: &Window, include_pad: bool, layer: &str) -> Result<Self> {
        let (c, h, w) = sample_chw(input, layer)?;
        let Window {
            kernel,
            stride,
            padding,
            ceil_mode,
        } = *window;
        let rows = regular_windows(h, kernel.0, stride.0, padding.0, include_pad, ceil_mode);
        let cols = regular_windows(w, kernel.1, stride.1, padding.1, include_pad, ceil_mode);
        let (Some((rows, row_div)), Some((cols, col_div))) = (rows, cols) else {
            return Err(Error::shape(
                format!(
                    "{layer} input (smaller than the window: the {}×{} kernel is larger than the \
                     input padded by {padding:?})",
                    kernel.0, kernel.1
                ),
                &[
                    c,
                    kernel.0.saturating_sub(2 * padding.0),
                    kernel.1.saturating_sub(2 * padding.1),
                ],
                input,
            ));
        };
        Ok(PoolGeometry {
            channels: c,
            in_h: h,
            in_w: w,
            out_h: rows.len(),
            out_w: cols.len(),
            rows,
            cols,
            row_div,
            col_div,
        })
    }

    /// Per-sample output shape `[C, out_h, out_w]`.
    pub fn output_shape(&self) -> Vec<usize> {
        vec![self.channels, self.out_h, self.out_w]
    }

    /// `1 / n_k` for every output element of one sample.
    fn inverse_divisors(&self) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.channels * self.out_h * self.out_w);
        for _ in 0..self.channels {
            for &rd in &self.row_div {
                for &cd in &self.col_div {
                    v.push(1.0 / (rd * cd) as f32);
                }
            }
        }
        v
    }

    /// The window mean of `x` (divisor `row_div · col_div`).
    pub(super) fn mean(&self, x: &Tensor) -> Result<Tensor> {
        let conn = Connectivity::Pool {
            geometry: self.clone(),
        };
        let mut sum =
            kernels::linear_forward(&conn, x, WeightMap::Ones, None, &self.output_shape())?;
        let inv = self.inverse_divisors();
        for mut s in sum.outer_iter_mut() {
            for (v, i) in s.iter_mut().zip(&inv) {
                *v *= i;
            }
        }
        Ok(sum)
    }

    /// Max-abs shares `|a_j| / (max_{j' in window k} |a_j'| + δ)`: the averaging weights are
    /// equal within a window, so they cancel.
    fn max_abs_shares<'a>(&self, a: &Tensor, delta: f32) -> Result<Shares<'a>> {
        let abs = elementwise::map(a, f32::abs);
        let n = a.shape().first().copied().unwrap_or(0);
        let plane_in = self.in_h * self.in_w;
        let mut q = Tensor::zeros(crate::tensor::with_batch(n, &self.output_shape()));
        let abs_std = abs.as_standard_layout();
        for (xs, mut qs) in abs_std.outer_iter().zip(q.outer_iter_mut()) {
            let xs = xs.as_slice().unwrap_or(&[]);
            let qs = qs.as_slice_mut().unwrap_or(&mut []);
            let mut k = 0;
            for c in 0..self.channels {
                let xc = &xs[c * plane_in..(c + 1) * plane_in];
                for rows in &self.rows {
                    for cols in &self.cols {
                        let mut m = 0.0f32;
                        for iy in rows.clone() {
                            for &v in &xc[iy * self.in_w + cols.start..iy * self.in_w + cols.end] {
                                m = m.max(v);
                            }
                        }
                        qs[k] = 1.0 / (m + delta);
                        k += 1;
                    }
                }
            }
        }
        Ok(Shares::Linear {
            connectivity: Connectivity::Pool {
                geometry: self.clone(),
            },
            terms: vec![ShareTerm {
                input: abs.into_shared(),
                weight: WeightMap::Ones,
                scale: q.into_shared(),
            }],
        })
    }

    /// Proportional shares `(a_j / n_k) / stab_ε(mean_k)`.
    fn proportional_shares<'a>(
        &self,
        a: &Tensor,
        mean: &Tensor,
        rule: &ProportionalRule,
    ) -> Shares<'a> {
        let inv = self.inverse_divisors();
        let mut q = mean.mapv(|m| stabilized_recip(m, rule.epsilon()));
        for mut s in q.outer_iter_mut() {
            for (v, i) in s.iter_mut().zip(&inv) {
                *v *= i;
            }
        }
        Shares::Linear {
            connectivity: Connectivity::Pool {
                geometry: self.clone(),
            },
            terms: vec![ShareTerm {
                input: crate::tensor::shared_copy(a),
                weight: WeightMap::Ones,
                scale: q.into_shared(),
            }],
        }
    }
}

/// A regular pooling window: kernel, stride, symmetric zero padding, floor or ceil mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
}

impl Window {
    fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        layer: &str,
    ) -> Result<Self> {
        if kernel.0 == 0 || kernel.1 == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(Error::invalid(format!(
                "{layer} kernel and stride must be ≥ 1, got kernel {kernel:?}, stride {stride:?}"
            )));
        }
        if 2 * padding.0 > kernel.0 || 2 * padding.1 > kernel.1 {
            return Err(Error::invalid(format!(
                "{layer} padding {padding:?} must be at most half the kernel {kernel:?}"
            )));
        }
        Ok(Window {
            kernel,
            stride,
            padding,
            ceil_mode: false,
        })
    }

    fn name(&self, layer: &str) -> String {
        let ceil = if self.ceil_mode { ", ceil mode" } else { "" };
        format!(
            "{layer}({}×{}, stride {:?}{ceil})",
            self.kernel.0, self.kernel.1, self.stride
        )
    }
}

/// Max pooling over `kernel` windows (dilation 1; padding never wins), in floor mode or, with
/// [`with_ceil_mode`](Self::with_ceil_mode), ceil mode.
///
/// ```
/// use klrp::layers::{Layer, MaxPool2d};
/// let pool = MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap();
/// assert_eq!(pool.output_shape(&[3, 224, 224]).unwrap(), vec![3, 112, 112]);
/// let ceil = pool.with_ceil_mode(true);
/// assert_eq!(ceil.output_shape(&[3, 5, 5]).unwrap(), vec![3, 3, 3]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    window: Window,
}

impl MaxPool2d {
    /// Max pooling with the given window, stride and padding, in floor mode.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero kernel or stride, or padding over half the kernel.
    pub fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        Ok(MaxPool2d {
            window: Window::new(kernel, stride, padding, "MaxPool2d")?,
        })
    }

    /// Sets ceil mode (PyTorch's `ceil_mode`, ONNX's `ceil_mode = 1`): per axis
    /// `⌈(n + 2·pad − k) / stride⌉ + 1` windows instead of `⌊…⌋ + 1`, the last one running past
    /// the input and clipped to it, and dropped if it would start in the right padding.
    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        self.window.ceil_mode = ceil;
        self
    }

    fn geometry(&self, input: &[usize], include_pad: bool) -> Result<PoolGeometry> {
        PoolGeometry::regular(input, &self.window, include_pad, "MaxPool2d")
    }

    /// The forward pass and, per sample and output element, the winner's flat input index.
    fn max_and_winners(&self, x: &Tensor) -> Result<(Tensor, Array2<usize>)> {
        let input = x.shape().get(1..).unwrap_or(&[]).to_vec();
        let g = self.geometry(&input, true)?;
        check_batch(x, &input, "MaxPool2d input")?;
        let n = x.shape()[0];
        let n_out = g.channels * g.out_h * g.out_w;
        let mut out = Tensor::zeros(crate::tensor::with_batch(n, &g.output_shape()));
        let mut winners = Array2::<usize>::zeros((n, n_out));
        let x = x.as_standard_layout();
        let plane = (g.out_h * g.out_w).max(1);
        for (s, xs) in x.axis_iter(Axis(0)).enumerate() {
            let xs = xs.as_slice().unwrap_or(&[]);
            let mut os = out.index_axis_mut(Axis(0), s);
            let os = os.as_slice_mut().unwrap_or(&mut []);
            let mut ws = winners.row_mut(s);
            let ws = ws.as_slice_mut().unwrap_or(&mut []);
            // One channel per task: each writes its own output plane.
            os.par_chunks_mut(plane)
                .zip(ws.par_chunks_mut(plane))
                .enumerate()
                .for_each(|(c, (os, ws))| {
                    for (oy, rows) in g.rows.iter().enumerate() {
                        for (ox, cols) in g.cols.iter().enumerate() {
                            let k = oy * g.out_w + ox;
                            let mut best = f32::NEG_INFINITY;
                            let mut arg = (c * g.in_h + rows.start) * g.in_w + cols.start;
                            for iy in rows.clone() {
                                for ix in cols.clone() {
                                    let j = (c * g.in_h + iy) * g.in_w + ix;
                                    if xs[j] > best {
                                        best = xs[j];
                                        arg = j;
                                    }
                                }
                            }
                            os[k] = best;
                            ws[k] = arg;
                        }
                    }
                });
        }
        Ok((out, winners))
    }

    /// Per sample, the windows whose two largest inputs (at distinct positions) are within
    /// [`near_kink_tolerance`](super::near_kink_tolerance) of the sample's largest input
    /// magnitude of each other, the largest not exactly 0 (such a window sends no relevance).
    fn near_ties(&self, x: &Tensor) -> Result<usize> {
        let input = x.shape().get(1..).unwrap_or(&[]).to_vec();
        let g = self.geometry(&input, true)?;
        check_batch(x, &input, "MaxPool2d input")?;
        let x = x.as_standard_layout();
        let plane = g.in_h * g.in_w;
        let mut count = 0;
        for xs in x.axis_iter(Axis(0)) {
            let xs = xs.as_slice().unwrap_or(&[]);
            let tol = super::near_kink_tolerance(super::magnitude_range(xs).0);
            count += xs
                .par_chunks(plane.max(1))
                .map(|xc| {
                    let mut n = 0;
                    for rows in &g.rows {
                        for cols in &g.cols {
                            let (mut top1, mut top2) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                            for iy in rows.clone() {
                                for &v in &xc[iy * g.in_w + cols.start..iy * g.in_w + cols.end] {
                                    // Branch-free: an input equal to the maximum is the second.
                                    top2 = top2.max(top1.min(v));
                                    top1 = top1.max(v);
                                }
                            }
                            if top1 != 0.0 && top1 - top2 <= tol {
                                n += 1;
                            }
                        }
                    }
                    n
                })
                .sum::<usize>();
        }
        Ok(count)
    }
}

impl Layer for MaxPool2d {
    fn name(&self) -> String {
        self.window.name("MaxPool2d")
    }
    fn kind(&self) -> LayerKind {
        LayerKind::MaxPool
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input, true)?.output_shape())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(self.max_and_winners(input)?.0)
    }
    fn near_kinks(&self, inputs: &[&Tensor]) -> Result<usize> {
        match inputs {
            [x] => self.near_ties(x),
            _ => Err(Error::shape(
                "MaxPool2d inputs (it takes one)",
                &[1],
                &[inputs.len()],
            )),
        }
    }
    fn shares(&self, input: &Tensor, _output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let sample = input.shape().get(1..).unwrap_or(&[]).to_vec();
        match rule {
            Rule::WinnerTakesAll(_) => {
                let (_, winners) = self.max_and_winners(input)?;
                Ok(Shares::Winner {
                    geometry: self.geometry(&sample, true)?,
                    winners,
                })
            }
            Rule::Proportional(r) => {
                let g = self.geometry(&sample, true)?;
                let mean = g.mean(input)?;
                Ok(g.proportional_shares(input, &mean, r))
            }
            // Treated as average pooling, with max-abs shares (the Viterbi composite).
            Rule::MaxAbs(r) => self
                .geometry(&sample, true)?
                .max_abs_shares(input, r.delta()),
            other => Err(Error::Unsupported(format!(
                "rule {} on max pooling (use winner-takes-all, proportional or max-abs)",
                other.name()
            ))),
        }
    }
}

/// Average pooling over `kernel` windows, in floor or ceil mode. The divisor counts padded
/// positions when `count_include_pad` is set (PyTorch's default): the window clipped to the
/// padded input, the kernel area except where a ceil-mode window runs past the padding; only
/// in-bounds inputs otherwise.
///
/// ```
/// use klrp::layers::{AvgPool2d, Layer};
/// use ndarray::ArrayD;
/// let pool = AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap().with_ceil_mode(true);
/// let y = pool.forward(&ArrayD::ones(vec![1, 1, 5, 5])).unwrap();
/// assert_eq!(y.shape(), &[1, 1, 3, 3]);
/// assert_eq!(y[[0, 0, 2, 2]], 1.0); // the corner window holds one input, divisor 1
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    window: Window,
    count_include_pad: bool,
}

impl AvgPool2d {
    /// Average pooling with the given window, stride and padding (`count_include_pad = true`,
    /// floor mode).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero kernel or stride, or padding over half the kernel.
    pub fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<Self> {
        Ok(AvgPool2d {
            window: Window::new(kernel, stride, padding, "AvgPool2d")?,
            count_include_pad: true,
        })
    }

    /// Sets whether padded positions count in the divisor.
    pub fn with_count_include_pad(mut self, include: bool) -> Self {
        self.count_include_pad = include;
        self
    }

    /// Sets ceil mode (see [`MaxPool2d::with_ceil_mode`]).
    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        self.window.ceil_mode = ceil;
        self
    }

    fn geometry(&self, input: &[usize]) -> Result<PoolGeometry> {
        PoolGeometry::regular(input, &self.window, self.count_include_pad, "AvgPool2d")
    }
}

pub(super) fn avg_shares<'a>(
    g: PoolGeometry,
    input: &Tensor,
    output: &Tensor,
    rule: &Rule,
    layer: &str,
) -> Result<Shares<'a>> {
    match rule {
        Rule::Proportional(r) => Ok(g.proportional_shares(input, output, r)),
        Rule::MaxAbs(r) => g.max_abs_shares(input, r.delta()),
        // Average pooling is always proportional; a winner-take-all assignment meant for max
        // pooling falls back to it with the default ε.
        Rule::WinnerTakesAll(_) => {
            Ok(g.proportional_shares(input, output, &ProportionalRule::default()))
        }
        other => Err(Error::Unsupported(format!(
            "rule {} on {layer} (average pooling is proportional or max-abs)",
            other.name()
        ))),
    }
}

impl Layer for AvgPool2d {
    fn name(&self) -> String {
        self.window.name("AvgPool2d")
    }
    fn kind(&self) -> LayerKind {
        LayerKind::AvgPool
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input)?.output_shape())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let g = self.geometry(input.shape().get(1..).unwrap_or(&[]))?;
        g.mean(input)
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let g = self.geometry(input.shape().get(1..).unwrap_or(&[]))?;
        super::check_output(input, output, &g.output_shape(), "AvgPool2d output")?;
        avg_shares(g, input, output, rule, "AvgPool2d")
    }
}

/// The largest output side of an [`AdaptiveAvgPool2d`]: 2²⁴ (its window tables are
/// allocated from the output size before any tensor-size limit could apply).
pub const MAX_ADAPTIVE_OUTPUT: u64 = 1 << 24;

/// Adaptive average pooling to a fixed output size (PyTorch `AdaptiveAvgPool2d`): output `i` averages
/// inputs `⌊i·n/out⌋ .. ⌈(i+1)·n/out⌉`.
///
/// ```
/// use klrp::layers::{AdaptiveAvgPool2d, Layer};
/// let pool = AdaptiveAvgPool2d::new((7, 7)).unwrap();
/// assert_eq!(pool.output_shape(&[512, 14, 14]).unwrap(), vec![512, 7, 7]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    output: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// Adaptive average pooling to `output = (height, width)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a size is 0; [`Error::TooLarge`] if a size is above
    /// [`MAX_ADAPTIVE_OUTPUT`].
    pub fn new(output: (usize, usize)) -> Result<Self> {
        if output.0 == 0 || output.1 == 0 {
            return Err(Error::invalid(format!(
                "AdaptiveAvgPool2d output size must be ≥ 1, got {output:?}"
            )));
        }
        let big = output.0.max(output.1);
        if big as u64 > MAX_ADAPTIVE_OUTPUT {
            return Err(Error::TooLarge {
                what: format!("AdaptiveAvgPool2d output side {output:?}"),
                requested: big as u128,
                limit: u128::from(MAX_ADAPTIVE_OUTPUT),
            });
        }
        Ok(AdaptiveAvgPool2d { output })
    }

    fn geometry(&self, input: &[usize]) -> Result<PoolGeometry> {
        let (c, h, w) = sample_chw(input, "AdaptiveAvgPool2d")?;
        if h == 0 || w == 0 {
            return Err(Error::shape("AdaptiveAvgPool2d input", &[c, 1, 1], input));
        }
        let (rows, row_div) = adaptive_windows(h, self.output.0);
        let (cols, col_div) = adaptive_windows(w, self.output.1);
        Ok(PoolGeometry {
            channels: c,
            in_h: h,
            in_w: w,
            out_h: self.output.0,
            out_w: self.output.1,
            rows,
            cols,
            row_div,
            col_div,
        })
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn name(&self) -> String {
        format!("AdaptiveAvgPool2d({}×{})", self.output.0, self.output.1)
    }
    fn kind(&self) -> LayerKind {
        LayerKind::AvgPool
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input)?.output_shape())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let g = self.geometry(input.shape().get(1..).unwrap_or(&[]))?;
        g.mean(input)
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let g = self.geometry(input.shape().get(1..).unwrap_or(&[]))?;
        super::check_output(input, output, &g.output_shape(), "AdaptiveAvgPool2d output")?;
        avg_shares(g, input, output, rule, "AdaptiveAvgPool2d")
    }
}
