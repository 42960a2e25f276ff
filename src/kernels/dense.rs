//! Fast dense-layer relevance: for every output k (rows of `W`, contiguous), the shares of all
//! inputs are formed in one vectorised pass and accumulated into `R_in`, parallel over input ranges.

use super::lanes::{accumulate_scalar, add_term_scaled};
use crate::conversion::Conversion;
use crate::semiring::Semiring;
use crate::shares::WeightMap;
use crate::tensor::par;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// One share term of a batch: input factor `[N, in]`, output factor `[N, out]`.
pub(crate) struct DenseTerm<'a> {
    pub p: &'a [f32],
    pub map: WeightMap,
    pub q: &'a [f32],
}

/// Inputs `j0 .. j0 + acc.len()` of sample `s`: `acc[j] ⊕= Θ(d_jk) ⊗ R_k` over every output k.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dense_chunk<K: Semiring, T: Conversion<K> + ?Sized>(
    w: &[f32],
    n_in: usize,
    n_out: usize,
    s: usize,
    j0: usize,
    terms: &[DenseTerm<'_>],
    theta: &T,
    r_out_s: &[K],
    dbuf: &mut [f32],
    acc: &mut [K],
) {
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
}

multiversion! {
    fn dense_chunk_simd[K: Semiring, T: Conversion<K> + ?Sized](
        w: &[f32],
        n_in: usize,
        n_out: usize,
        s: usize,
        j0: usize,
        terms: &[DenseTerm<'_>],
        theta: &T,
        r_out_s: &[K],
        dbuf: &mut [f32],
        acc: &mut [K]
    ) => dense_chunk
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
    let mut r_in = super::filled(n * n_in, K::zero());
    let threads = rayon::current_num_threads().max(1);
    let chunk = n_in.div_ceil(threads * 4).max(256);
    for s in 0..n {
        let r_out_s = &r_out[s * n_out..(s + 1) * n_out];
        let out = &mut r_in[s * n_in..(s + 1) * n_in];
        par::chunks_mut_init(out, chunk, &|| vec![0.0f32; chunk], &|dbuf, c, acc| {
            dense_chunk_simd(
                w,
                n_in,
                n_out,
                s,
                c * chunk,
                terms,
                theta,
                r_out_s,
                dbuf,
                acc,
            )
        });
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
                *o = max_abs_dot_simd(weight.row(k).as_slice().unwrap_or(&[]), xs);
            });
    }
    out
}

/// `z[s, k] = Σ_j x[s, j] · g(w_kj)` for a batch `x` (`[N, in]` flat), parallel over outputs;
/// the weight map is applied on the fly, so no mapped copy of the weights is made.
pub(crate) fn forward(
    weight: &ArrayView2<'_, f32>,
    x: &[f32],
    n: usize,
    map: WeightMap,
) -> Vec<f32> {
    let (n_out, n_in) = weight.dim();
    if n == 0 || n_out == 0 || x.len() < n * n_in {
        return Vec::new();
    }
    let w = weight.as_standard_layout();
    let w = w.as_slice().unwrap_or(&[]);
    let mut zt = vec![0.0f32; n_out * n];
    zt.par_chunks_mut(n).enumerate().for_each(|(k, zk)| {
        let row = &w[k * n_in..(k + 1) * n_in];
        for (s, z) in zk.iter_mut().enumerate() {
            *z = dot_mapped_simd(&x[s * n_in..(s + 1) * n_in], row, map);
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

multiversion! {
    fn dot_mapped_simd[](x: &[f32], w: &[f32], map: WeightMap) -> f32 => dot_mapped
}

/// `Σ_j x_j g(w_j)` with sixteen independent accumulators (vectorisable, and a fixed summation
/// order so the result does not depend on the batch).
#[inline(always)]
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

#[inline(always)]
fn max_abs_dot(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let n = w.len().min(x.len());
    let (wc, wr) = w[..n].split_at(n - n % 16);
    let (xc, xr) = x[..n].split_at(wc.len());
    for (ws, xs) in wc.chunks_exact(16).zip(xc.chunks_exact(16)) {
        for i in 0..16 {
            acc[i] = acc[i].max((ws[i] * xs[i]).abs());
        }
    }
    let tail = wr
        .iter()
        .zip(xr)
        .fold(0.0f32, |m, (&w, &x)| m.max((w * x).abs()));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

multiversion! {
    fn max_abs_dot_simd[](w: &[f32], x: &[f32]) -> f32 => max_abs_dot
}
