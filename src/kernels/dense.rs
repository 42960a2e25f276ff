//! Fast dense-layer relevance: for every output k (rows of `W`, contiguous), the shares of all
//! inputs are formed in one vectorised pass and accumulated into `R_in`, parallel over input ranges.

use super::lanes::{accumulate_scalar, add_term_scaled};
use crate::conversion::Conversion;
use crate::rules::WeightMap;
use crate::semiring::Semiring;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// One share term of a batch: input factor `[N, in]`, output factor `[N, out]`.
pub(crate) struct DenseTerm<'a> {
    pub p: &'a [f32],
    pub map: WeightMap,
    pub q: &'a [f32],
}

/// `R_in[j] = ⊕_k Θ(Σ_t p_t[j] g_t(w_kj) q_t[k]) ⊗ R_out[k]` for a batch of `n` samples.
pub(crate) fn relevance<K: Semiring, T: Conversion<K> + ?Sized>(
    weight: &ArrayView2<'_, f32>,
    terms: &[DenseTerm<'_>],
    theta: &T,
    r_out: &[K],
    n: usize,
) -> Vec<K> {
    let (n_out, n_in) = weight.dim();
    let w = weight.as_standard_layout();
    let w = w.as_slice().unwrap_or(&[]);
    let mut r_in = vec![K::zero(); n * n_in];
    let threads = rayon::current_num_threads().max(1);
    let chunk = n_in.div_ceil(threads * 4).max(256);
    for s in 0..n {
        let r_out_s = &r_out[s * n_out..(s + 1) * n_out];
        let out = &mut r_in[s * n_in..(s + 1) * n_in];
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each_init(
                || vec![0.0f32; chunk],
                |dbuf, (c, acc)| {
                    let j0 = c * chunk;
                    let len = acc.len();
                    let d = &mut dbuf[..len];
                    for (k, &rk) in r_out_s.iter().enumerate() {
                        if rk.is_zero() {
                            continue;
                        }
                        let row = &w[k * n_in + j0..k * n_in + j0 + len];
                        for (t, term) in terms.iter().enumerate() {
                            let p = &term.p[s * n_in + j0..s * n_in + j0 + len];
                            add_term_scaled(d, p, row, term.map, term.q[s * n_out + k], t == 0);
                        }
                        if terms.is_empty() {
                            d.fill(0.0);
                        }
                        accumulate_scalar(theta, d, rk, acc);
                    }
                },
            );
    }
    r_in
}

/// `max_j |x_j w_kj|` for a batch `x` (`[N, in]` flat).
pub(crate) fn max_abs_forward(weight: &ArrayView2<'_, f32>, x: &[f32], n: usize) -> Vec<f32> {
    let (n_out, n_in) = weight.dim();
    let mut out = vec![0.0f32; n * n_out];
    for s in 0..n {
        let xs = &x[s * n_in..(s + 1) * n_in];
        out[s * n_out..(s + 1) * n_out]
            .par_iter_mut()
            .enumerate()
            .for_each(|(k, o)| {
                *o = weight
                    .row(k)
                    .iter()
                    .zip(xs)
                    .fold(0.0f32, |m, (&w, &x)| m.max((w * x).abs()));
            });
    }
    out
}

/// `z[s, k] = Σ_j x[s, j] · g(w_kj)` for a batch `x` (`[N, in]` flat), parallel over outputs;
/// the weight map is applied on the fly, so no mapped copy of the weights is made.
pub(crate) fn forward(weight: &ArrayView2<'_, f32>, x: &[f32], n: usize, map: WeightMap) -> Vec<f32> {
    let (n_out, n_in) = weight.dim();
    let w = weight.as_standard_layout();
    let w = w.as_slice().unwrap_or(&[]);
    let mut zt = vec![0.0f32; n_out * n];
    zt.par_chunks_mut(n).enumerate().for_each(|(k, zk)| {
        let row = &w[k * n_in..(k + 1) * n_in];
        for (s, z) in zk.iter_mut().enumerate() {
            *z = dot_mapped(&x[s * n_in..(s + 1) * n_in], row, map);
        }
    });
    let mut z = vec![0.0f32; n * n_out];
    for k in 0..n_out {
        for s in 0..n {
            z[s * n_out + k] = zt[k * n + s];
        }
    }
    z
}

/// `Σ_j x_j g(w_j)` with eight independent accumulators (vectorisable, and a fixed summation
/// order so the result does not depend on the batch).
#[inline]
fn dot_mapped(x: &[f32], w: &[f32], map: WeightMap) -> f32 {
    macro_rules! run {
        ($g:expr) => {{
            let g = $g;
            let mut acc = [0.0f32; 16];
            let (xc, xr) = x.split_at(x.len() - x.len() % 16);
            let (wc, wr) = w.split_at(xc.len());
            for (xs, ws) in xc.chunks_exact(16).zip(wc.chunks_exact(16)) {
                for i in 0..16 {
                    acc[i] += xs[i] * g(ws[i]);
                }
            }
            let mut tail = 0.0f32;
            for (&x, &w) in xr.iter().zip(wr) {
                tail += x * g(w);
            }
            acc.iter().sum::<f32>() + tail
        }};
    }
    match map {
        WeightMap::Identity => run!(|w: f32| w),
        WeightMap::Positive => run!(|w: f32| w.max(0.0)),
        WeightMap::Negative => run!(|w: f32| w.min(0.0)),
        WeightMap::Abs => run!(|w: f32| w.abs()),
        WeightMap::Square => run!(|w: f32| w * w),
        WeightMap::Ones => run!(|_: f32| 1.0f32),
        WeightMap::GammaPositive(gm) => run!(move |w: f32| w + gm * w.max(0.0)),
        WeightMap::GammaNegative(gm) => run!(move |w: f32| w + gm * w.min(0.0)),
    }
}
