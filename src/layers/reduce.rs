//! `Reduce`: the mean or sum over some axes of a sample (ONNX `ReduceMean`, `ReduceSum`), and its
//! shares, those of average pooling: the reduced inputs of an output are one pooling window.

use super::pool::avg_shares;
use super::{Layer, LayerKind, check_batch, check_output};
use crate::error::{Error, Result};
use crate::rules::Rule;
use crate::shares::{PoolGeometry, Shares};
use crate::tensor::{Tensor, with_batch};
use ndarray::IxDyn;

/// What a [`Reduce`] computes over its axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The mean: `y_k = (1/n) Σ_{j ∈ k} x_j`, `n` the number of reduced elements.
    Mean,
    /// The sum: `y_k = Σ_{j ∈ k} x_j`.
    Sum,
}

/// The mean or sum over `axes` of the batch tensor `[N, …]` (never axis 0, the batch), keeping
/// the reduced axes as size 1 (`keepdims`) or dropping them.
///
/// `y_k = w · Σ_{j ∈ k} x_j` with `w = 1/n` (mean over `n` elements) or `1` (sum): a linear map
/// whose outputs each read one window of inputs, so its shares are average pooling's
/// (docs/semantics.md, §4): proportional `d_jk = (w · a_j) / stab_ε(y_k)`, or max-abs
/// `|a_j| / (max_{j' ∈ k} |a_j'| + δ)` under [`Composite::viterbi`](crate::Composite::viterbi);
/// its [`LayerKind`] is [`AvgPool`](LayerKind::AvgPool). A mean over H and W of `[N, C, H, W]`
/// is a global average pooling. Dropping every sample axis leaves the sample shape `[1]`.
///
/// The reduced axes must form at most two runs of consecutive axes, the second ending the
/// sample (every set of axes of a `[C, H, W]` or smaller sample does).
///
/// ```
/// use klrp::layers::{Layer, Reduce, ReduceOp};
/// use ndarray::ArrayD;
/// let mean = Reduce::new(ReduceOp::Mean, &[2, 3], false).unwrap();
/// assert_eq!(mean.output_shape(&[4, 7, 7]).unwrap(), vec![4]);
/// let x = ArrayD::from_shape_fn(vec![1, 2, 3], |i| i[2] as f32);
/// let channels = Reduce::new(ReduceOp::Sum, &[1], true).unwrap();
/// assert_eq!(channels.forward(&x).unwrap().into_raw_vec_and_offset().0, vec![0.0, 2.0, 4.0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reduce {
    op: ReduceOp,
    axes: Vec<usize>,
    keepdims: bool,
}

impl Reduce {
    /// The reduction `op` over the batch tensor's `axes` (1 the first axis after the batch).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `axes` is empty, names axis 0 (the batch) or names an axis
    /// twice. An axis beyond the input's is an error when the network is built.
    pub fn new(op: ReduceOp, axes: &[usize], keepdims: bool) -> Result<Self> {
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if axes.is_empty() || sorted.len() != axes.len() {
            return Err(Error::invalid(format!(
                "reduction axes {axes:?} must be non-empty and distinct"
            )));
        }
        if sorted[0] == 0 {
            return Err(Error::invalid(format!(
                "reduction axes {axes:?} name axis 0, the batch: a sample's output may not depend \
                 on the other samples"
            )));
        }
        Ok(Reduce {
            op,
            axes: sorted,
            keepdims,
        })
    }

    /// The reduced axes of the batch tensor, ascending.
    pub fn axes(&self) -> &[usize] {
        &self.axes
    }

    fn layer(&self) -> &'static str {
        match self.op {
            ReduceOp::Mean => "ReduceMean",
            ReduceOp::Sum => "ReduceSum",
        }
    }

    /// The windows (one per output) and the per-sample output shape for a sample `input`: the
    /// sample as `[K0, R1, K2 · R2]` (kept, reduced, kept, reduced runs of axes), pooled over
    /// all `R1` rows and over column runs of `R2`.
    fn geometry(&self, input: &[usize]) -> Result<(PoolGeometry, Vec<usize>)> {
        let rank = input.len();
        if let Some(&bad) = self.axes.iter().find(|&&a| a > rank) {
            return Err(Error::invalid(format!(
                "{} axis {bad} is out of range for samples of shape {input:?} (axes 1 to {rank} \
                 of the batch tensor)",
                self.layer()
            )));
        }
        let reduced = |i: usize| self.axes.contains(&(i + 1));
        // Runs of consecutive sample axes: kept, reduced, kept, reduced.
        let mut i = 0;
        let mut run = |want: bool| {
            let mut p = 1usize;
            while i < rank && reduced(i) == want {
                p *= input[i];
                i += 1;
            }
            p
        };
        let (k0, r1, k2, r2) = (run(false), run(true), run(false), run(true));
        if i < rank {
            return Err(Error::Unsupported(format!(
                "{} over axes {:?} of samples of shape {input:?}: the reduced axes must form at \
                 most two runs of consecutive axes, the second ending the sample",
                self.layer(),
                self.axes
            )));
        }
        let (row_div, col_div) = match self.op {
            ReduceOp::Mean => (r1, r2),
            ReduceOp::Sum => (1, 1),
        };
        let geometry = PoolGeometry {
            channels: k0,
            in_h: r1,
            in_w: k2 * r2,
            out_h: 1,
            out_w: k2,
            rows: std::iter::once(0..r1).collect(),
            cols: (0..k2).map(|k| k * r2..(k + 1) * r2).collect(),
            row_div: vec![row_div],
            col_div: vec![col_div; k2],
        };
        let mut out: Vec<usize> = (0..rank)
            .filter_map(|i| match (reduced(i), self.keepdims) {
                (false, _) => Some(input[i]),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect();
        if out.is_empty() {
            out.push(1);
        }
        Ok((geometry, out))
    }

    fn sample(x: &Tensor) -> &[usize] {
        x.shape().get(1..).unwrap_or(&[])
    }
}

impl Layer for Reduce {
    fn name(&self) -> String {
        let keep = if self.keepdims { ", keepdims" } else { "" };
        format!("{}(axes {:?}{keep})", self.layer(), self.axes)
    }
    fn kind(&self) -> LayerKind {
        LayerKind::AvgPool
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(self.geometry(input)?.1)
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let sample = Self::sample(input);
        let (g, out) = self.geometry(sample)?;
        check_batch(input, sample, self.layer())?;
        let y = g.mean(input)?;
        let shape = with_batch(input.shape()[0], &out);
        y.into_shape_with_order(IxDyn(&shape))
            .map_err(|e| Error::invalid(format!("{} output: {e}", self.layer())))
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let (g, out) = self.geometry(Self::sample(input))?;
        check_output(input, output, &out, &format!("{} output", self.layer()))?;
        avg_shares(g, input, output, rule, self.layer())
    }
}
