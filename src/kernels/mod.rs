//! The kernels: the loops that evaluate forward passes and `R_j = ⊕_k Θ(d_jk) ⊗ R_k`.
//!
//! May import: `conversion`, `error`, `semiring`, `shares`, `tensor` (docs/architecture.md,
//! "Layers").
//!
//! Everything performance-critical lives here, behind three entry points used by the layers and
//! the network: [`linear_forward`], [`max_abs_forward`] and [`propagate`]. Layers describe their
//! connections ([`Connectivity`]) and shares ([`Shares`]); kernels walk the connections.
//!
//! A kernel walks the connections `(j, k, w_jk)` of one sample with [`for_each_connection`],
//! forms `d_jk = Σ_t p_t[j] g_t(w_jk) q_t[k]` and accumulates `Θ(d_jk) ⊗ R_k` into `R_j`. Samples
//! are independent, so a sample gives the same relevance alone or inside a batch.

#[macro_use]
pub mod simd;
mod conv;
mod dense;
mod direct;
mod gemm;
mod grouped;
mod lanes;
mod route;

/// Parallel elementwise maps over tensors (now [`crate::tensor::elementwise`]).
pub use crate::tensor::elementwise;
use crate::tensor::elementwise::CHUNK;
use crate::tensor::par;

pub use simd::{SimdLevel, simd_level};

use crate::conversion::Conversion;
use crate::error::{Error, Result};
use crate::semiring::{Real, Semiring};
use crate::shares::{Connectivity, ShareTerm, Shares, WeightMap};
use crate::tensor::Tensor;
use ndarray::{ArrayD, ArrayView4, IxDyn};
use rayon::prelude::*;
use std::any::TypeId;
use std::sync::atomic::{AtomicBool, Ordering};

/// Calls `f(j, k, w_jk)` for every connection of one sample ([`Connectivity::for_each`]).
#[inline]
pub fn for_each_connection(conn: &Connectivity<'_>, f: impl FnMut(usize, usize, f32)) {
    conn.for_each(f);
}

/// The flat per-sample rows of a batch in standard layout.
fn samples<S: ndarray::Data<Elem = f32>>(
    x: &ndarray::ArrayBase<S, IxDyn>,
) -> std::borrow::Cow<'_, [f32]> {
    flat(x)
}

/// The elements of an array in standard (row-major) order, borrowed when already contiguous.
fn flat<T: Copy, S: ndarray::Data<Elem = T>>(
    x: &ndarray::ArrayBase<S, IxDyn>,
) -> std::borrow::Cow<'_, [T]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

fn check_len(what: &str, x: &[usize], per_sample: usize) -> Result<usize> {
    let n = x.first().copied().unwrap_or(0);
    let len: usize = x.iter().skip(1).product();
    if x.is_empty() || len != per_sample {
        return Err(Error::shape(what, &[n, per_sample], x));
    }
    Ok(n)
}

/// The forward pass over `conn` with mapped weights: `z_k = Σ_j x_j g(w_jk) + g_b(b_k)`.
///
/// `out_shape` is the per-sample output shape.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `x` does not have the connectivity's input size.
pub fn linear_forward(
    conn: &Connectivity<'_>,
    x: &Tensor,
    weight: WeightMap,
    bias: Option<WeightMap>,
    out_shape: &[usize],
) -> Result<Tensor> {
    conn.check()?;
    let (n_in, n_out) = (conn.input_len(), conn.output_len());
    let n = check_len("linear forward input", x.shape(), n_in)?;
    let xs = samples(x);
    let mut out = vec![0.0f32; n * n_out];
    let b = match conn {
        Connectivity::Dense { bias, .. } | Connectivity::Conv { bias, .. } => *bias,
        Connectivity::Pool { .. } => None,
    };
    let per_channel = n_out / b.map_or(1, |b| b.len().max(1));
    for (xs, out) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
        if let (Some(bmap), Some(b)) = (bias, b) {
            for (k, o) in out.iter_mut().enumerate() {
                *o = bmap.apply(b[k / per_channel]);
            }
        }
        for_each_connection(conn, |j, k, w| {
            out[k] += xs[j] * weight.apply(w);
        });
    }
    ArrayD::from_shape_vec(IxDyn(&crate::tensor::with_batch(n, out_shape)), out)
        .map_err(|e| Error::invalid(format!("linear forward output: {e}")))
}

/// `max_j |x_j w_jk|` over the connections of each output k.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `x` does not have the connectivity's input size.
pub fn max_abs_forward(conn: &Connectivity<'_>, x: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
    conn.check()?;
    let (n_in, n_out) = (conn.input_len(), conn.output_len());
    let n = check_len("max-abs forward input", x.shape(), n_in)?;
    let xs = samples(x);
    let out = match conn {
        Connectivity::Dense { weight, .. } => dense::max_abs_forward(weight, &xs, n),
        Connectivity::Conv {
            weight, geometry, ..
        } if conv::gemm_applies(geometry) && direct::available() => {
            let p = direct::forward_problem(geometry);
            let packed = direct::pack_forward(&p, weight, WeightMap::Abs);
            let mut out = vec![0.0f32; n * n_out];
            let mut xa = vec![0.0f32; n_in];
            for (xs, out) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
                elementwise::map_into(xs, &mut xa, f32::abs);
                direct::conv(direct::Op::MaxMul, &p, &packed, None, &xa, out);
            }
            out
        }
        Connectivity::Conv {
            weight, geometry, ..
        } if geometry.groups == 1 => conv::max_abs_forward(geometry, weight, &xs, n),
        Connectivity::Conv {
            weight, geometry, ..
        } => grouped::max_abs_forward(geometry, weight, &xs, n),
        _ => {
            let mut out = vec![0.0f32; n * n_out];
            for (xs, out) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
                for_each_connection(conn, |j, k, w| {
                    let v = (xs[j] * w).abs();
                    if v > out[k] {
                        out[k] = v;
                    }
                });
            }
            out
        }
    };
    ArrayD::from_shape_vec(IxDyn(&crate::tensor::with_batch(n, out_shape)), out)
        .map_err(|e| Error::invalid(format!("max-abs forward output: {e}")))
}

/// One layer of K-LRP: `R_in[j] = ⊕_k Θ(d_jk) ⊗ R_out[k]`.
///
/// `input_shape` is the layer's input batch shape (the shape of the result).
///
/// # Errors
/// [`Error::ShapeMismatch`] if `r_out` or the shares do not fit the layer.
pub fn propagate<K: Semiring, T: Conversion<K> + ?Sized>(
    shares: &Shares<'_>,
    theta: &T,
    r_out: &ArrayD<K>,
    input_shape: &[usize],
) -> Result<ArrayD<K>> {
    let n = input_shape.first().copied().unwrap_or(0);
    let n_in: usize = input_shape.iter().skip(1).product();
    if r_out.shape().first().copied() != Some(n) {
        return Err(Error::shape(
            "relevance batch",
            &[n],
            &r_out.shape()[..1.min(r_out.ndim())],
        ));
    }
    if let Shares::Pass = shares {
        let n_out: usize = r_out.shape().iter().skip(1).product();
        if n_out != n_in {
            return Err(Error::shape(
                "pass-through relevance",
                input_shape,
                r_out.shape(),
            ));
        }
        return r_out
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(input_shape))
            .map_err(|e| Error::invalid(format!("relevance reshape: {e}")));
    }
    let n_out: usize = r_out.shape().iter().skip(1).product();
    let r_out_flat = flat(r_out);
    // Each arm below produces the input relevance (a zero-filled buffer only where it accumulates).
    let mut r_in: Vec<K>;
    let skip_zero = theta.maps_zero_to_zero();
    match shares {
        Shares::Pass => unreachable!("handled above"),
        Shares::Linear {
            connectivity,
            terms,
        } => {
            let terms = linear_terms(connectivity, terms, n, n_in, n_out)?;
            match connectivity {
                Connectivity::Dense { weight, .. } => {
                    let dt: Vec<dense::DenseTerm> = terms
                        .iter()
                        .map(|t| dense::DenseTerm {
                            p: &t.p,
                            map: t.g,
                            q: &t.q,
                        })
                        .collect();
                    r_in = dense::relevance(weight, &dt, theta, &r_out_flat, n);
                }
                Connectivity::Conv {
                    weight, geometry, ..
                } if geometry.groups == 1 => {
                    if let Some(r) =
                        conv_max_times_relevance(geometry, weight, &terms, theta, &r_out_flat, n)
                    {
                        r_in = r;
                    } else if theta.is_identity()
                        && TypeId::of::<K>() == TypeId::of::<Real<f32>>()
                        && conv::gemm_applies(geometry)
                    {
                        r_in = conv_linear_relevance(
                            geometry,
                            weight,
                            &terms,
                            &r_out_flat,
                            |v| theta.convert(v),
                            n,
                            (n_in, n_out),
                        )?;
                    } else {
                        let ct: Vec<conv::ConvTerm> = terms
                            .iter()
                            .map(|t| conv::ConvTerm {
                                p: &t.p,
                                map: t.g,
                                q: &t.q,
                            })
                            .collect();
                        r_in = conv::relevance(geometry, weight, &ct, theta, &r_out_flat, n);
                    }
                }
                Connectivity::Conv {
                    weight, geometry, ..
                } if terms.len() <= grouped::MAX_TERMS => {
                    let ct: Vec<conv::ConvTerm> = terms
                        .iter()
                        .map(|t| conv::ConvTerm {
                            p: &t.p,
                            map: t.g,
                            q: &t.q,
                        })
                        .collect();
                    r_in = if theta.is_identity() && TypeId::of::<K>() == TypeId::of::<Real<f32>>()
                    {
                        let from_f32 = |v| theta.convert(v);
                        grouped::linear_relevance(geometry, weight, &ct, &r_out_flat, from_f32, n)
                    } else {
                        grouped::relevance(geometry, weight, &ct, theta, &r_out_flat, n)
                    };
                }
                _ => {
                    r_in = filled(n * n_in, K::zero());
                    generic_linear(
                        connectivity,
                        &terms,
                        theta,
                        &r_out_flat,
                        &mut r_in,
                        n,
                        n_in,
                        n_out,
                    )
                }
            }
        }
        Shares::Winner { geometry, winners } => {
            if winners.shape() != [n, n_out] {
                return Err(Error::shape("winner indices", &[n, n_out], winners.shape()));
            }
            let conn = Connectivity::Pool {
                geometry: geometry.clone(),
            };
            let (hit, miss) = (theta.convert(1.0), theta.convert(0.0));
            r_in = filled(n * n_in, K::zero());
            for s in 0..n {
                let r_out_s = &r_out_flat[s * n_out..(s + 1) * n_out];
                let r_in_s = &mut r_in[s * n_in..(s + 1) * n_in];
                let win = winners.row(s);
                if skip_zero {
                    for (k, &j) in win.iter().enumerate() {
                        if j >= n_in {
                            return Err(Error::invalid(format!("winner index {j} out of range")));
                        }
                        r_in_s[j].add_mul(hit, r_out_s[k]);
                    }
                } else {
                    for_each_connection(&conn, |j, k, _| {
                        let d = if win[k] == j { hit } else { miss };
                        r_in_s[j].add_mul(d, r_out_s[k]);
                    });
                }
            }
        }
        Shares::Explicit(per_sample) => {
            if per_sample.len() != n {
                return Err(Error::shape(
                    "explicit shares (samples)",
                    &[n],
                    &[per_sample.len()],
                ));
            }
            r_in = filled(n * n_in, K::zero());
            for (s, list) in per_sample.iter().enumerate() {
                let r_out_s = &r_out_flat[s * n_out..(s + 1) * n_out];
                let r_in_s = &mut r_in[s * n_in..(s + 1) * n_in];
                for &(j, k, d) in list {
                    if j >= n_in || k >= n_out {
                        return Err(Error::invalid(format!(
                            "explicit share ({j}, {k}) outside the layer ({n_in} inputs, {n_out} outputs)"
                        )));
                    }
                    if !d.is_finite() {
                        return Err(Error::NonFinite(format!(
                            "explicit share d = {d} for input {j}, output {k} of sample {s}"
                        )));
                    }
                    r_in_s[j].add_mul(theta.convert(d), r_out_s[k]);
                }
            }
        }
        Shares::Elementwise(d) => {
            if n_out != n_in || d.len() != n * n_in {
                return Err(Error::shape(
                    "element-wise shares (input, output, shares)",
                    &[n * n_in, n * n_in, n * n_in],
                    &[n * n_in, n * n_out, d.len()],
                ));
            }
            let d = samples(d);
            r_in = filled(n * n_in, K::zero());
            elementwise::zip_map_into(&d, &r_out_flat, &mut r_in, |d, r| {
                if d == 0.0 && skip_zero {
                    K::zero()
                } else {
                    let mut acc = K::zero();
                    acc.add_mul(theta.convert(d), r);
                    acc
                }
            });
        }
        Shares::ChannelSlice { start } => {
            // Input [N, C_in, rest…] is channels start..start + C_in of output [N, C_out, rest…].
            let fits = input_shape.len() >= 2
                && r_out.ndim() == input_shape.len()
                && r_out.shape()[2..] == input_shape[2..]
                && start
                    .checked_add(input_shape[1])
                    .is_some_and(|end| end <= r_out.shape()[1]);
            if !fits {
                let mut want = input_shape.to_vec();
                if want.len() >= 2 {
                    want[1] = start.saturating_add(input_shape[1]);
                }
                return Err(Error::shape(
                    "channel-slice relevance (output holding the input's channels)",
                    &want,
                    r_out.shape(),
                ));
            }
            let slice = r_out.slice_axis(
                ndarray::Axis(1),
                ndarray::Slice::from(*start..start + input_shape[1]),
            );
            r_in = slice.iter().copied().collect();
        }
        Shares::Disconnected => {
            r_in = filled(n * n_in, K::zero());
        }
        Shares::Route { sources } => {
            check_route(sources, n_in, n_out)?;
            r_in = route::relevance(sources, &r_out_flat, n, n_in);
        }
    }
    ArrayD::from_shape_vec(IxDyn(input_shape), r_in)
        .map_err(|e| Error::invalid(format!("relevance shape: {e}")))
}

/// Checks a [`Shares::Route`] against its operand: one source per output element of a sample
/// (`n_out`), each inside an input sample of `n_in` elements.
///
/// # Errors
/// [`Error::ShapeMismatch`] for a map of the wrong length, [`Error::InvalidArgument`] for a
/// source out of range.
fn check_route(sources: &[usize], n_in: usize, n_out: usize) -> Result<()> {
    if sources.len() != n_out {
        return Err(Error::shape(
            "route sources (one per output element)",
            &[n_out],
            &[sources.len()],
        ));
    }
    route::check_sources(sources, n_in)
}

/// The forward pass of a route: `y[s, k] = x[s, sources[k]]` for every sample `s` of `x`, shaped
/// `[N, out_shape…]`.
///
/// ```
/// use klrp::ndarray::{ArrayD, IxDyn, array};
/// // A transpose of 2 × 3: output (c, r) reads input (r, c).
/// let x = array![[[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0]]].into_dyn();
/// let y = klrp::kernels::route_forward(&x, &[0, 3, 1, 4, 2, 5], &[3, 2]).unwrap();
/// assert_eq!(y, array![[[1.0_f32, 4.0], [2.0, 5.0], [3.0, 6.0]]].into_dyn());
/// ```
///
/// # Errors
/// [`Error::ShapeMismatch`] if `sources` does not hold one index per element of `out_shape`,
/// [`Error::InvalidArgument`] if an index is outside an input sample.
pub fn route_forward(x: &Tensor, sources: &[usize], out_shape: &[usize]) -> Result<Tensor> {
    let n = x.shape().first().copied().unwrap_or(0);
    let n_in: usize = x.shape().iter().skip(1).product();
    check_route(sources, n_in, out_shape.iter().product())?;
    let out = route::gather(&samples(x), sources, n, n_in);
    ArrayD::from_shape_vec(IxDyn(&crate::tensor::with_batch(n, out_shape)), out)
        .map_err(|e| Error::invalid(format!("route output: {e}")))
}

/// A [`Shares::Linear`] checked against its layer (`n` samples of `n_in` inputs and `n_out`
/// outputs), its terms flattened to standard layout (borrowed when they already are): with
/// [`SampleTerms::share`], the one place that turns share terms into shares `d_jk` (the kernels'
/// fast loops read the same flattened factors).
///
/// # Errors
/// As [`Connectivity::check`]; [`Error::ShapeMismatch`] if the connectivity or a term's
/// factors do not fit the sizes.
pub(crate) fn linear_terms<'a>(
    connectivity: &Connectivity<'_>,
    terms: &'a [ShareTerm],
    n: usize,
    n_in: usize,
    n_out: usize,
) -> Result<Vec<FlatTerm<'a>>> {
    connectivity.check()?;
    if connectivity.input_len() != n_in || connectivity.output_len() != n_out {
        return Err(Error::shape(
            "linear shares",
            &[connectivity.input_len(), connectivity.output_len()],
            &[n_in, n_out],
        ));
    }
    terms
        .iter()
        .map(|t| FlatTerm::new(t, n, n_in, n_out))
        .collect()
}

/// The share terms of one sample: `d_jk = Σ_t p_t[j] · g_t(w_jk) · q_t[k]`.
pub(crate) struct SampleTerms<'a>(Vec<(&'a [f32], WeightMap, &'a [f32])>);

impl<'a> SampleTerms<'a> {
    /// Sample `s` of flattened terms ([`linear_terms`] with these `n_in`, `n_out`).
    pub(crate) fn of(terms: &'a [FlatTerm<'_>], s: usize, n_in: usize, n_out: usize) -> Self {
        SampleTerms(
            terms
                .iter()
                .map(|t| {
                    (
                        &t.p[s * n_in..(s + 1) * n_in],
                        t.g,
                        &t.q[s * n_out..(s + 1) * n_out],
                    )
                })
                .collect(),
        )
    }

    /// The share `d_jk` of the connection `j → k` with weight `w = w_jk`, summed in term order
    /// from `0.0` (every caller gets the same bits).
    #[inline]
    pub(crate) fn share(&self, j: usize, k: usize, w: f32) -> f32 {
        let mut d = 0.0f32;
        for (p, g, q) in &self.0 {
            d += p[j] * g.apply(w) * q[k];
        }
        d
    }
}

/// A share term with its factors flattened to standard layout.
pub(crate) struct FlatTerm<'a> {
    p: std::borrow::Cow<'a, [f32]>,
    g: WeightMap,
    q: std::borrow::Cow<'a, [f32]>,
}

impl<'a> FlatTerm<'a> {
    fn new(t: &'a ShareTerm, n: usize, n_in: usize, n_out: usize) -> Result<Self> {
        if t.input.len() != n * n_in {
            return Err(Error::shape(
                "share term input factor",
                &[n, n_in],
                t.input.shape(),
            ));
        }
        if t.scale.len() != n * n_out {
            return Err(Error::shape(
                "share term output factor",
                &[n, n_out],
                t.scale.shape(),
            ));
        }
        Ok(FlatTerm {
            p: samples(&t.input),
            g: t.weight,
            q: samples(&t.scale),
        })
    }
}

/// The reference kernel: walks every connection of every sample.
#[allow(clippy::too_many_arguments)]
fn generic_linear<K: Semiring, T: Conversion<K> + ?Sized>(
    connectivity: &Connectivity<'_>,
    terms: &[FlatTerm],
    theta: &T,
    r_out_flat: &[K],
    r_in: &mut [K],
    n: usize,
    n_in: usize,
    n_out: usize,
) {
    let skip_zero = theta.maps_zero_to_zero();
    for s in 0..n {
        let r_out_s = &r_out_flat[s * n_out..(s + 1) * n_out];
        let r_in_s = &mut r_in[s * n_in..(s + 1) * n_in];
        let ts = SampleTerms::of(terms, s, n_in, n_out);
        for_each_connection(connectivity, |j, k, w| {
            let rk = r_out_s[k];
            if rk.is_zero() {
                return;
            }
            let d = ts.share(j, k, w);
            if d == 0.0 && skip_zero {
                return;
            }
            r_in_s[j].add_mul(theta.convert(d), rk);
        });
    }
}

/// A vector of `n` copies of `v`, written in parallel.
///
/// Unlike `vec![0.0; n]` (fresh zero pages from the OS, mapped read-only until first written), every
/// page is written here before use: a kernel that accumulates into the buffer (`+=`, `⊕=`) would
/// otherwise take a copy-on-write fault per page, each flushing the TLB of every thread — measured
/// as 40 % of a γ-rule relevance pass on a 64 × 224² convolution.
pub(crate) fn filled<T: Copy + Send + Sync>(n: usize, v: T) -> Vec<T> {
    (0..n).into_par_iter().map(|_| v).collect()
}

/// The Viterbi semiring through a stride-1 convolution in factored form, when it applies (else
/// `None`, and the general kernel runs):
///
/// `R_j = max_k Θ(p_j g(w_jk) q_k) · R_k = p_j · max_k g(w_jk) · (q_k R_k)`
///
/// which holds when Θ is the identity on every share, i.e. Θ clamps to [0, 1] and every share is
/// in [0, 1]: one term with `p ≥ 0`, `g(w) ≥ 0`, `q ≥ 0` (checked), and
/// `max_j p_j g(w_jk) · q_k ≤ 1` for every `k` (checked with one max-times forward pass; by
/// monotonicity of rounding this bounds every share as the general kernel computes it). The
/// max over `k` is then a max-times transposed convolution in `f64` ([`direct`]). Results agree
/// with the general kernel up to rounding (shares are not rounded to `f32` first).
fn conv_max_times_relevance<K: Semiring, T: Conversion<K> + ?Sized>(
    g: &crate::shares::ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[FlatTerm],
    theta: &T,
    r_out: &[K],
    n: usize,
) -> Option<Vec<K>> {
    use crate::semiring::Viterbi;
    if TypeId::of::<K>() != TypeId::of::<Viterbi>()
        || !theta.is_unit_clamp()
        || !conv::gemm_applies(g)
        || !direct::available()
    {
        return None;
    }
    let [t] = terms else { return None };
    let tp = direct::transpose_problem(g)?;
    let nonneg = |v: &[f32]| elementwise::all_of(v, |&x| x >= 0.0);
    if !t.g.is_nonnegative() || !nonneg(&t.p) || !nonneg(&t.q) {
        return None;
    }
    let (n_in, n_out) = (
        g.in_channels * g.in_h * g.in_w,
        g.out_channels * g.out_h * g.out_w,
    );
    let fp = direct::forward_problem(g);
    let forward = direct::pack_forward(&fp, weight, t.g);
    // The bound check runs in the forward kernel's output pass: the maxima are never stored
    // (the kernel's "output" is zero-sized).
    let mut nothing = vec![(); n_out];
    for s in 0..n {
        let (p, q) = (&t.p[s * n_in..][..n_in], &t.q[s * n_out..][..n_out]);
        let unbounded = AtomicBool::new(false);
        let stage = |row: &mut [f32], at: usize| row.copy_from_slice(&p[at..at + row.len()]);
        let check = |_: &mut [()], m: &[f32], _co: usize, at: usize| {
            if !m.iter().zip(&q[at..]).all(|(&m, &q)| m * q <= 1.0) {
                unbounded.store(true, Ordering::Relaxed);
            }
        };
        direct::conv_fused(
            direct::Op::MaxMul,
            &fp,
            &forward,
            stage,
            &mut nothing,
            check,
        );
        if unbounded.into_inner() {
            return None;
        }
    }
    let transposed = direct::pack_weights(&tp, |ci, co, ky, kx| {
        f64::from(t.g.apply(weight[[co, ci, g.kh - 1 - ky, g.kw - 1 - kx]]))
    });
    let mut r_in = filled(n * n_in, Viterbi(0.0));
    for s in 0..n {
        let (q, r) = (&t.q[s * n_out..][..n_out], &r_out[s * n_out..][..n_out]);
        let p = &t.p[s * n_in..][..n_in];
        // Every share is at most 1, so R_j ≤ max_k R_k; the bound removes the excess of rounding
        // (≤ 2⁻²³ relative), keeping relevance in [0, 1].
        let top = par::map(par::chunk_count(r.len(), CHUNK), &|i| {
            par::chunk(r, CHUNK, i)
                .iter()
                .fold(0.0f64, |m, r| m.max(r.to_f64()))
        })
        .into_iter()
        .fold(0.0, f64::max);
        // u = q ⊙ R as the kernel copies its input; R_in = p ⊙ max(…) as it writes its output.
        let stage = |row: &mut [f64], at: usize| {
            for ((u, &q), r) in row.iter_mut().zip(&q[at..]).zip(&r[at..]) {
                *u = f64::from(q) * r.to_f64();
            }
        };
        let emit = |dst: &mut [Viterbi], m: &[f64], _co: usize, at: usize| {
            for ((o, &m), &p) in dst.iter_mut().zip(m).zip(&p[at..]) {
                *o = Viterbi((f64::from(p) * m).min(top));
            }
        };
        let out = &mut r_in[s * n_in..][..n_in];
        direct::conv_fused(direct::Op::MaxMul, &tp, &transposed, stage, out, emit);
    }
    let any: Box<dyn std::any::Any> = Box::new(r_in);
    any.downcast::<Vec<K>>().ok().map(|b| *b)
}

/// Mapped weights for a transposed convolution, in the layout of the path that runs it.
/// Classical LRP through a convolution, in its linear form: `R_in = Σ_t p_t ⊙ convᵀ_{g_t}(q_t ⊙ R_out)`,
/// for a semiring whose values are real numbers (`to_f64` reads them, `from_f32` makes them).
///
/// On the direct-convolution path the products `q_t ⊙ R_out` are formed while the kernel copies
/// its input, and `p_t ⊙ (…)` is added to `R_in` as the kernel writes its output: no buffer beyond
/// `R_in` itself.
#[allow(clippy::too_many_arguments)]
fn conv_linear_relevance<K: Semiring>(
    g: &crate::shares::ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[FlatTerm],
    r: &[K],
    from_f32: impl Fn(f32) -> K + Sync,
    n: usize,
    (n_in, n_out): (usize, usize),
) -> Result<Vec<K>> {
    let to_f32 = |v: K| v.to_f64() as f32;
    let mut r_in = filled(n * n_in, K::zero());
    let Some(p) = direct::transpose_problem(g).filter(|_| direct::available()) else {
        let mut grad = vec![0.0f32; n_in];
        let mut sv = vec![0.0f32; n_out];
        for t in terms {
            let w: Vec<f32> = weight.iter().map(|&w| t.g.apply(w)).collect();
            for s in 0..n {
                let (q, rs) = (&t.q[s * n_out..][..n_out], &r[s * n_out..][..n_out]);
                elementwise::zip_map_into(q, rs, &mut sv, |q, r| q * to_f32(r));
                if elementwise::all_of(&sv, |&v| v == 0.0) {
                    continue;
                }
                conv::transpose_sample(g, &w, &sv, &mut grad)?;
                let ps = &t.p[s * n_in..(s + 1) * n_in];
                par::chunks_mut(&mut r_in[s * n_in..(s + 1) * n_in], CHUNK, &|i, o| {
                    let (gr, p) = (par::chunk(&grad, CHUNK, i), par::chunk(ps, CHUNK, i));
                    for ((o, gr), p) in o.iter_mut().zip(gr).zip(p) {
                        *o = from_f32(to_f32(*o) + p * gr);
                    }
                });
            }
        }
        return Ok(r_in);
    };
    for t in terms {
        // Packed on first use: a term that is silent for every sample costs no packing.
        let mut packed = None;
        for s in 0..n {
            let (q, rs) = (&t.q[s * n_out..][..n_out], &r[s * n_out..][..n_out]);
            let pt = &t.p[s * n_in..][..n_in];
            // A term whose factor is zero wherever relevance arrives adds nothing (e.g. the γ
            // rule's negative branch, z < 0, where a following ReLU leaves no relevance).
            let silent = par::all(par::chunk_count(q.len(), CHUNK), &|i| {
                let (q, r) = (par::chunk(q, CHUNK, i), par::chunk(rs, CHUNK, i));
                q.iter().zip(r).all(|(&q, &r)| q * to_f32(r) == 0.0)
            });
            if silent {
                continue;
            }
            let stage = |row: &mut [f32], at: usize| {
                for ((v, &q), &r) in row.iter_mut().zip(&q[at..]).zip(&rs[at..]) {
                    *v = q * to_f32(r);
                }
            };
            let emit = |dst: &mut [K], sums: &[f32], _co: usize, at: usize| {
                for ((d, &s), &p) in dst.iter_mut().zip(sums).zip(&pt[at..]) {
                    *d = from_f32(to_f32(*d) + p * s);
                }
            };
            let out = &mut r_in[s * n_in..][..n_in];
            let packed = packed.get_or_insert_with(|| direct::pack_transposed(g, &p, weight, t.g));
            direct::conv_fused(direct::Op::MulAdd, &p, packed, stage, out, emit);
        }
    }
    Ok(r_in)
}

/// The forward pass of a convolution with mapped parameters, on the fastest applicable path.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `x` does not have the convolution's input size.
pub fn conv_forward(
    conn: &Connectivity<'_>,
    x: &Tensor,
    weight_map: WeightMap,
    bias_map: Option<WeightMap>,
    out_shape: &[usize],
) -> Result<Tensor> {
    conn.check()?;
    let Connectivity::Conv {
        weight,
        bias,
        geometry: g,
    } = conn
    else {
        return linear_forward(conn, x, weight_map, bias_map, out_shape);
    };
    let n = check_len("convolution input", x.shape(), conn.input_len())?;
    let xs = samples(x);
    let b: Option<Vec<f32>> = match (bias_map, bias) {
        (Some(m), Some(b)) => Some(b.iter().map(|&b| m.apply(b)).collect()),
        _ => None,
    };
    let b = b.as_deref();
    let out = if g.groups > 1 {
        grouped::forward(g, weight, weight_map, b, &xs, n)
    } else if !conv::gemm_applies(g) {
        strided_forward(g, weight, weight_map, b, &xs, n)?
    } else {
        unit_stride_forward(g, weight, weight_map, b, &xs, n)?
    };
    ArrayD::from_shape_vec(IxDyn(&crate::tensor::with_batch(n, out_shape)), out)
        .map_err(|e| Error::invalid(format!("convolution output: {e}")))
}

/// The stride-1 forward pass of a convolution (one group) on the fastest path: `n` samples of
/// `g`'s input in `xs`, `g.stride == (1, 1)`.
fn unit_stride_forward(
    g: &crate::shares::ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    weight_map: WeightMap,
    b: Option<&[f32]>,
    xs: &[f32],
    n: usize,
) -> Result<Vec<f32>> {
    let n_in = g.in_channels * g.in_h * g.in_w;
    let n_out = g.out_channels * g.out_h * g.out_w;
    let mut out = vec![0.0f32; n * n_out];
    if direct::available() {
        let p = direct::forward_problem(g);
        let packed = direct::pack_forward(&p, weight, weight_map);
        for (xs, out) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
            direct::conv(direct::Op::MulAdd, &p, &packed, b, xs, out);
        }
    } else {
        let w: Vec<f32> = weight.iter().map(|&w| weight_map.apply(w)).collect();
        for (xs, out) in xs.chunks_exact(n_in).zip(out.chunks_exact_mut(n_out)) {
            conv::forward_sample(g, &w, b, xs, out)?;
        }
    }
    Ok(out)
}

/// The forward pass of a strided convolution (one group) through the stride-1 kernels:
/// `y[k, i, j] = y₁[k, s_h·i, s_w·j]`, where `y₁` is the stride-1 convolution with the same
/// padding and dilation (every strided output position is one of its positions). A 1×1 kernel
/// without padding reads only the input positions `(s_h·i, s_w·j)`, so those are picked first and
/// convolved at stride 1 (no wasted work); otherwise `y₁` is computed whole and subsampled, which
/// costs `s_h·s_w` times the strided work on the vectorised, multi-threaded path (still far
/// faster than the connection-by-connection walk).
fn strided_forward(
    g: &crate::shares::ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    weight_map: WeightMap,
    b: Option<&[f32]>,
    xs: &[f32],
    n: usize,
) -> Result<Vec<f32>> {
    let (sh, sw) = g.stride;
    let (c_in, c_out) = (g.in_channels, g.out_channels);
    let plane_in = g.in_h * g.in_w;
    let plane_out = g.out_h * g.out_w;
    let unpadded = g.padding == (0, 0) && g.padding_end == (0, 0);
    if g.kh == 1 && g.kw == 1 && unpadded {
        let g1 = crate::shares::ConvGeometry {
            in_h: g.out_h,
            in_w: g.out_w,
            stride: (1, 1),
            ..*g
        };
        let mut picked = vec![0.0f32; n * c_in * plane_out];
        for (dst, src) in picked
            .chunks_exact_mut(plane_out)
            .zip(xs.chunks_exact(plane_in))
        {
            for (i, row) in dst.chunks_exact_mut(g.out_w).enumerate() {
                let src = &src[i * sh * g.in_w..];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = src[j * sw];
                }
            }
        }
        return unit_stride_forward(&g1, weight, weight_map, b, &picked, n);
    }
    let h1 = g.in_h + g.padding.0 + g.padding_end.0 - g.dilation.0 * (g.kh - 1);
    let w1 = g.in_w + g.padding.1 + g.padding_end.1 - g.dilation.1 * (g.kw - 1);
    let g1 = crate::shares::ConvGeometry {
        out_h: h1,
        out_w: w1,
        stride: (1, 1),
        ..*g
    };
    let full = unit_stride_forward(&g1, weight, weight_map, b, xs, n)?;
    let mut out = vec![0.0f32; n * c_out * plane_out];
    for (dst, src) in out
        .chunks_exact_mut(plane_out)
        .zip(full.chunks_exact(h1 * w1))
    {
        for (i, row) in dst.chunks_exact_mut(g.out_w).enumerate() {
            let src = &src[i * sh * w1..];
            for (j, v) in row.iter_mut().enumerate() {
                *v = src[j * sw];
            }
        }
    }
    Ok(out)
}

/// The forward pass of a dense layer (`weight` `[out, in]`) with mapped weights, for a batch `x`
/// (`[N, in]` flat); no bias.
///
/// # Errors
/// [`Error::ShapeMismatch`] if `x` does not hold `n` samples of the layer's input size.
pub fn dense_forward(
    weight: &ndarray::ArrayView2<'_, f32>,
    x: &[f32],
    n: usize,
    map: WeightMap,
) -> Result<Vec<f32>> {
    let n_in = weight.ncols();
    if x.len() != n * n_in {
        return Err(Error::shape("dense forward input", &[n, n_in], &[x.len()]));
    }
    Ok(dense::forward(weight, x, n, map))
}

/// The reference kernel for [`propagate`]: walks every connection `(j, k)` of every sample with
/// [`for_each_connection`] and accumulates `Θ(d_jk) ⊗ R_k` one at a time. Slow and obviously
/// correct; the tests check the fast kernels against it.
///
/// # Errors
/// As [`propagate`].
pub fn propagate_reference<K: Semiring, T: Conversion<K> + ?Sized>(
    shares: &Shares<'_>,
    theta: &T,
    r_out: &ArrayD<K>,
    input_shape: &[usize],
) -> Result<ArrayD<K>> {
    if let Shares::Route { sources } = shares {
        let n = input_shape.first().copied().unwrap_or(0);
        let n_in: usize = input_shape.iter().skip(1).product();
        let n_out: usize = r_out.shape().iter().skip(1).product();
        if r_out.shape().first().copied() != Some(n) {
            return Err(Error::shape("route relevance", input_shape, r_out.shape()));
        }
        check_route(sources, n_in, n_out)?;
        let r_in = route::relevance_reference(sources, &flat(r_out), n, n_in);
        return ArrayD::from_shape_vec(IxDyn(input_shape), r_in)
            .map_err(|e| Error::invalid(format!("relevance shape: {e}")));
    }
    let Shares::Linear {
        connectivity,
        terms,
    } = shares
    else {
        return propagate(shares, theta, r_out, input_shape);
    };
    let n = input_shape.first().copied().unwrap_or(0);
    let n_in: usize = input_shape.iter().skip(1).product();
    let n_out: usize = r_out.shape().iter().skip(1).product();
    if r_out.shape().first().copied() != Some(n) {
        return Err(Error::shape("linear shares", input_shape, r_out.shape()));
    }
    let terms = linear_terms(connectivity, terms, n, n_in, n_out)?;
    let r_out_flat = flat(r_out);
    let mut r_in = vec![K::zero(); n * n_in];
    generic_linear(
        connectivity,
        &terms,
        theta,
        &r_out_flat,
        &mut r_in,
        n,
        n_in,
        n_out,
    );
    ArrayD::from_shape_vec(IxDyn(input_shape), r_in)
        .map_err(|e| Error::invalid(format!("relevance shape: {e}")))
}

#[cfg(test)]
mod strided_tests {
    use super::*;
    use crate::shares::{ConvGeometry, out_len};
    use ndarray::{Array1, Array4};

    /// Strided convolutions (1×1 picked, k×k subsampled; padding symmetric or not, dilation) on
    /// the stride-1 kernels equal the connection-by-connection forward pass.
    #[test]
    fn strided_conv_forward_equals_the_connection_walk() {
        let mut seed = 7u32;
        let mut next = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        // (c_in, c_out, k, stride, pad begin, pad end, dilation, h, w)
        let cases = [
            (3, 5, 7, (2, 2), (3, 3), (3, 3), (1, 1), 17, 15),
            (4, 6, 1, (2, 2), (0, 0), (0, 0), (1, 1), 9, 8),
            (4, 6, 1, (3, 2), (0, 0), (0, 0), (1, 1), 10, 7),
            (2, 3, 1, (2, 2), (1, 0), (0, 1), (1, 1), 7, 7),
            (5, 4, 3, (2, 1), (0, 1), (1, 0), (1, 1), 9, 11),
            (3, 4, 3, (3, 3), (2, 2), (2, 2), (2, 2), 13, 12),
        ];
        for (cin, cout, k, stride, pb, pe, dil, h, w) in cases {
            let weight = Array4::from_shape_fn((cout, cin, k, k), |_| next());
            let bias = Array1::from_shape_fn(cout, |_| next());
            let out = |n, (s, b, e, d)| out_len(n, k, s, (b, e), d).unwrap();
            let g = ConvGeometry {
                in_channels: cin,
                out_channels: cout,
                groups: 1,
                in_h: h,
                in_w: w,
                out_h: out(h, (stride.0, pb.0, pe.0, dil.0)),
                out_w: out(w, (stride.1, pb.1, pe.1, dil.1)),
                kh: k,
                kw: k,
                stride,
                padding: pb,
                padding_end: pe,
                dilation: dil,
            };
            let conn = Connectivity::Conv {
                weight: weight.view(),
                bias: bias.as_slice(),
                geometry: g,
            };
            conn.check().unwrap();
            let out_shape = [cout, g.out_h, g.out_w];
            let x = ArrayD::from_shape_fn(IxDyn(&[2, cin, h, w]), |_| next());
            for (wm, bm) in [
                (WeightMap::Identity, Some(WeightMap::Identity)),
                (WeightMap::Positive, None),
            ] {
                let fast = conv_forward(&conn, &x, wm, bm, &out_shape).unwrap();
                let walk = linear_forward(&conn, &x, wm, bm, &out_shape).unwrap();
                assert_eq!(fast.shape(), walk.shape());
                let err = fast
                    .iter()
                    .zip(&walk)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-5, "{g:?}: {err}");
            }
        }
    }
}
