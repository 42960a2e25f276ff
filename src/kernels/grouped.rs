//! Grouped and depthwise convolutions (groups > 1), one channel plane per task.
//!
//! A grouped convolution connects each output channel to the `C_in / groups` input channels of
//! its group only; a depthwise one (groups = C_in, MobileNet, EfficientNet) to a single channel. The
//! channel-streaming kernels of [`conv`](super::conv) and [`direct`](super::direct) vectorise over
//! output channels, of which a depthwise group has one, so here every loop runs along an image
//! row instead, over output columns `ox`:
//!
//! - Every padded input row is kept in **stride phases**: padded position `P` of a row sits at
//!   `(P mod s)·L + ⌊P / s⌋` (`s` the horizontal stride, `L = W_out + ⌊(k_w − 1)·d_w / s⌋`), so the
//!   taps `P = ox·s + kx·d_w` of one kernel column `kx` over all `ox` are one contiguous run
//!   starting at phase position `((kx·d_w) mod s)·L + ⌊kx·d_w / s⌋`, for any stride. Padded positions
//!   hold 0 (forward) or are dropped (relevance): they are never inputs.
//! - Rows outside the input (vertical padding) are skipped.
//! - Forward and max-abs: one task per (sample, output channel); relevance: one task per (sample,
//!   input channel), which scatters `Θ(d_jk) ⊗ R_k` from every output of its group into its own
//!   plane (no other task writes it), in parallel with rayon.
//!
//! Summation orders follow [`for_each_connection`](super::for_each_connection): the forward pass
//! adds taps in `(cl, ky, kx)` order from the bias, and the relevance of an input adds its
//! outputs in `(co, oy, ox)` order (kernel columns run backwards so `ox` rises), so results equal
//! [`propagate_reference`](super::propagate_reference) and the reference forward bit for bit.
//! The Real linear form ([`linear_relevance`]) sums `p ⊙ convᵀ(q ⊙ R)` instead, which rounds
//! differently.

use super::conv::ConvTerm;
use super::lanes::accumulate_lanes;
use crate::conversion::{Conversion, Indicator};
use crate::semiring::Semiring;
use crate::shares::ConvGeometry;
use crate::shares::WeightMap;
use crate::tensor::par;
use ndarray::ArrayView4;
use rayon::prelude::*;

/// The horizontal stride-phase layout of one padded input row.
#[derive(Clone, Copy, Debug)]
struct Phases {
    /// Horizontal stride.
    s: usize,
    /// Positions per phase.
    len: usize,
    /// Padding before the row.
    pad: usize,
}

impl Phases {
    fn new(g: &ConvGeometry) -> Self {
        let s = g.stride.1;
        Phases {
            s,
            len: g.out_w + (g.kw - 1) * g.dilation.1 / s,
            pad: g.padding.1,
        }
    }

    /// Elements of one row.
    fn row(&self) -> usize {
        self.s * self.len
    }

    /// Where padded position `pos` sits, if any tap reaches it.
    fn at(&self, pos: usize) -> Option<usize> {
        (pos / self.s < self.len).then(|| (pos % self.s) * self.len + pos / self.s)
    }

    /// Where the run of taps of kernel column `kx` starts.
    fn tap(&self, kx: usize, dilation: usize) -> usize {
        let pos = kx * dilation;
        (pos % self.s) * self.len + pos / self.s
    }

    /// `dst` (one phase row) ← the input row `src` with `zero` at every padded position.
    fn stage<T: Copy>(&self, src: &[T], dst: &mut [T], zero: T, f: impl Fn(T) -> T) {
        dst.fill(zero);
        for (ix, &v) in src.iter().enumerate() {
            if let Some(at) = self.at(ix + self.pad) {
                dst[at] = f(v);
            }
        }
    }

    /// `dst` (one input row) ← the input positions of the phase row `src`; `zero` where no tap
    /// reaches.
    fn unstage<T: Copy>(&self, src: &[T], dst: &mut [T], zero: T) {
        for (ix, d) in dst.iter_mut().enumerate() {
            *d = self.at(ix + self.pad).map_or(zero, |at| src[at]);
        }
    }
}

/// The input row `iy` read by output row `oy` through kernel row `ky`, if inside the input.
#[inline(always)]
fn input_row(g: &ConvGeometry, oy: usize, ky: usize) -> Option<usize> {
    (oy * g.stride.0 + ky * g.dilation.0)
        .checked_sub(g.padding.0)
        .filter(|&iy| iy < g.in_h)
}

/// Every input plane of a batch (`[N·C][H][W]`) in phase layout (`[N·C][H][row]`), mapped by `f`.
fn stage_planes(
    g: &ConvGeometry,
    ph: &Phases,
    x: &[f32],
    f: impl Fn(f32) -> f32 + Sync,
) -> Vec<f32> {
    let (plane_in, plane) = (g.in_h * g.in_w, g.in_h * ph.row());
    let planes = x.len() / plane_in.max(1);
    let mut out = vec![0.0f32; planes * plane];
    par::chunks_mut(&mut out, plane.max(1), &|i, dst| {
        let src = par::chunk(x, plane_in.max(1), i);
        for (d, s) in dst.chunks_exact_mut(ph.row()).zip(src.chunks_exact(g.in_w)) {
            ph.stage(s, d, 0.0, &f);
        }
    });
    out
}

/// What a forward task reads.
struct ForwardCtx<'a> {
    g: &'a ConvGeometry,
    ph: Phases,
    /// Mapped weights `[co][cl][ky][kx]`.
    w: &'a [f32],
    /// Mapped bias per output channel.
    bias: Option<&'a [f32]>,
    /// Input planes in phase layout `[N·C_in][H][row]`.
    xph: &'a [f32],
    /// Max of products (from 0) instead of the sum.
    max: bool,
}

/// Output plane `task = s·C_out + co` of the forward pass.
#[inline(always)]
fn forward_plane(c: &ForwardCtx<'_>, task: usize, out: &mut [f32]) {
    let g = c.g;
    let (cin_g, cout_g) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let (s, co) = (task / g.out_channels, task % g.out_channels);
    let ci0 = s * g.in_channels + co / cout_g * cin_g;
    let row = c.ph.row();
    let plane = g.in_h * row;
    let b = c.bias.map_or(0.0, |b| b[co]);
    for (oy, o) in out.chunks_exact_mut(g.out_w).enumerate() {
        o.fill(b);
        for cl in 0..cin_g {
            let xp = &c.xph[(ci0 + cl) * plane..][..plane];
            for ky in 0..g.kh {
                let Some(iy) = input_row(g, oy, ky) else {
                    continue;
                };
                let xr = &xp[iy * row..][..row];
                for kx in 0..g.kw {
                    let w = c.w[((co * cin_g + cl) * g.kh + ky) * g.kw + kx];
                    let x = &xr[c.ph.tap(kx, g.dilation.1)..][..g.out_w];
                    if c.max {
                        for (o, &x) in o.iter_mut().zip(x) {
                            *o = o.max(x * w);
                        }
                    } else {
                        for (o, &x) in o.iter_mut().zip(x) {
                            *o += x * w;
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    fn forward_plane_simd[](c: &ForwardCtx<'_>, task: usize, out: &mut [f32]) => forward_plane
}

/// `out = bias + Σ x·map(w)` (or `max |x·w|` with `max_abs`) for a batch of `n` samples, `x` and the
/// result flat NCHW.
fn forward_impl(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    map: WeightMap,
    bias: Option<&[f32]>,
    x: &[f32],
    n: usize,
    max_abs: bool,
) -> Vec<f32> {
    let ph = Phases::new(g);
    let xph = if max_abs {
        stage_planes(g, &ph, x, f32::abs)
    } else {
        stage_planes(g, &ph, x, |v| v)
    };
    let w: Vec<f32> = weight
        .iter()
        .map(|&w| if max_abs { w.abs() } else { map.apply(w) })
        .collect();
    let ctx = ForwardCtx {
        g,
        ph,
        w: &w,
        bias,
        xph: &xph,
        max: max_abs,
    };
    let hw_out = g.out_h * g.out_w;
    let mut out = vec![0.0f32; n * g.out_channels * hw_out];
    out.par_chunks_mut(hw_out.max(1))
        .enumerate()
        .for_each(|(task, o)| forward_plane_simd(&ctx, task, o));
    out
}

/// The forward pass `z_k = b_k + Σ_j x_j map(w_jk)` of a grouped convolution for a batch of `n`
/// samples (`x` flat NCHW), `bias` already mapped.
pub(crate) fn forward(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    map: WeightMap,
    bias: Option<&[f32]>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    forward_impl(g, weight, map, bias, x, n, false)
}

/// `max_j |x_j w_jk|` over the connections of each output of a grouped convolution.
pub(crate) fn max_abs_forward(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    forward_impl(g, weight, WeightMap::Abs, None, x, n, true)
}

/// At most this many share terms (every rule has at most four); callers check.
pub(crate) const MAX_TERMS: usize = 8;

/// What a relevance task reads.
struct RelevanceCtx<'a, K> {
    g: &'a ConvGeometry,
    ph: Phases,
    /// Per term: mapped weights `[co][cl][ky][kx]`.
    ws: &'a [Vec<f32>],
    /// Per term: input factors (NCHW, the batch).
    ps: &'a [&'a [f32]],
    /// Per term: output factors (NCHW, the batch).
    qs: &'a [&'a [f32]],
    /// Relevance arriving at the outputs (NCHW, the batch).
    r: &'a [K],
}

/// Per-task buffers.
struct Scratch<K> {
    /// Per term: the task's input factors in phase layout `[H][row]`.
    p: Vec<Vec<f32>>,
    /// Accumulated relevance in phase layout `[H][row]` (one per term in the linear form).
    acc: Vec<Vec<K>>,
    /// Shares (or `q ⊙ R`) of one output row.
    d: Vec<f32>,
}

impl<K: Copy> Scratch<K> {
    fn new(accs: usize) -> Self {
        Scratch {
            p: Vec::new(),
            acc: vec![Vec::new(); accs],
            d: Vec::new(),
        }
    }

    /// Stages the input factors of plane `at` (flat index of its first element) and clears the
    /// accumulators.
    fn prepare(&mut self, g: &ConvGeometry, ph: Phases, ps: &[&[f32]], at: usize, zero: K) {
        let (hw_in, plane) = (g.in_h * g.in_w, g.in_h * ph.row());
        self.p.resize_with(ps.len(), Vec::new);
        for (dst, p) in self.p.iter_mut().zip(ps) {
            dst.resize(plane, 0.0);
            let src = &p[at..at + hw_in];
            for (d, s) in dst.chunks_exact_mut(ph.row()).zip(src.chunks_exact(g.in_w)) {
                ph.stage(s, d, 0.0, |v| v);
            }
        }
        for acc in &mut self.acc {
            acc.clear();
            acc.resize(plane, zero);
        }
        self.d.resize(g.out_w, 0.0);
    }
}

/// `acc[i] ⊕= Θ(p[i] · w · q[i]) ⊗ r[i]`: one share term, fused (the share rounded as the
/// reference forms it: `(p · w) · q`).
#[inline(always)]
fn scatter_one<K: Semiring, T: Conversion<K> + ?Sized>(
    theta: &T,
    p: &[f32],
    w: f32,
    q: &[f32],
    r: &[K],
    acc: &mut [K],
) {
    let n = acc.len().min(p.len()).min(q.len()).min(r.len());
    let (p, q, r, acc) = (&p[..n], &q[..n], &r[..n], &mut acc[..n]);
    match theta.indicator() {
        Some(Indicator::AtLeast(t)) => {
            for i in 0..n {
                let pass = p[i] * w * q[i] >= t;
                acc[i].add_assign(if pass { r[i] } else { K::zero() });
            }
        }
        Some(Indicator::AbsAbove(t)) => {
            for i in 0..n {
                let pass = (p[i] * w * q[i]).abs() > t;
                acc[i].add_assign(if pass { r[i] } else { K::zero() });
            }
        }
        None => {
            for i in 0..n {
                acc[i].add_mul(theta.convert(p[i] * w * q[i]), r[i]);
            }
        }
    }
}

/// Input plane `task = s·C_in + ci`: `R_in[j] = ⊕_k Θ(Σ_t p_t[j] g_t(w_jk) q_t[k]) ⊗ R_out[k]`.
#[inline(always)]
fn relevance_plane<K: Semiring, T: Conversion<K> + ?Sized>(
    c: &RelevanceCtx<'_, K>,
    theta: &T,
    task: usize,
    scratch: &mut Scratch<K>,
    out: &mut [K],
) {
    let (g, ph) = (c.g, c.ph);
    let (cin_g, cout_g) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let (s, ci) = (task / g.in_channels, task % g.in_channels);
    let (group, cl) = (ci / cin_g, ci % cin_g);
    let hw_out = g.out_h * g.out_w;
    let row = ph.row();
    scratch.prepare(g, ph, c.ps, task * g.in_h * g.in_w, K::zero());
    let Scratch { p, acc, d } = scratch;
    let acc = &mut acc[0];
    for co in group * cout_g..(group + 1) * cout_g {
        let at = (s * g.out_channels + co) * hw_out;
        for oy in 0..g.out_h {
            let k0 = at + oy * g.out_w;
            let r = &c.r[k0..k0 + g.out_w];
            // Θ(d) ⊗ 0 = 0: rows without relevance add nothing.
            if r.iter().all(K::is_zero) {
                continue;
            }
            for ky in 0..g.kh {
                let Some(iy) = input_row(g, oy, ky) else {
                    continue;
                };
                let wbase = ((co * cin_g + cl) * g.kh + ky) * g.kw;
                // Kernel columns backwards: the outputs reaching one input arrive in rising `ox`.
                for kx in (0..g.kw).rev() {
                    let off = iy * row + ph.tap(kx, g.dilation.1);
                    let acc = &mut acc[off..off + g.out_w];
                    if let ([w], [pt], [q]) = (c.ws, &p[..], c.qs) {
                        let q = &q[k0..k0 + g.out_w];
                        let pt = &pt[off..off + g.out_w];
                        scatter_one(theta, pt, w[wbase + kx], q, r, acc);
                        continue;
                    }
                    d.fill(0.0);
                    for ((w, pt), q) in c.ws.iter().zip(&p[..]).zip(c.qs) {
                        let (w, q, pt) = (w[wbase + kx], &q[k0..], &pt[off..]);
                        for ((d, &pv), &qv) in d.iter_mut().zip(pt).zip(q) {
                            *d += pv * w * qv;
                        }
                    }
                    accumulate_lanes(theta, d, r, acc);
                }
            }
        }
    }
    for (o, a) in out.chunks_exact_mut(g.in_w).zip(acc.chunks_exact(row)) {
        ph.unstage(a, o, K::zero());
    }
}

multiversion! {
    fn relevance_plane_simd[K: Semiring, T: Conversion<K> + ?Sized](
        c: &RelevanceCtx<'_, K>,
        theta: &T,
        task: usize,
        scratch: &mut Scratch<K>,
        out: &mut [K]
    ) => relevance_plane
}

/// The mapped weights, factors and layout of a relevance pass.
#[allow(clippy::type_complexity)]
fn context<'a, K>(
    g: &'a ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &'a [ConvTerm<'a>],
    r: &'a [K],
) -> (
    Vec<Vec<f32>>,
    Vec<&'a [f32]>,
    Vec<&'a [f32]>,
    Phases,
    &'a [K],
) {
    assert!(terms.len() <= MAX_TERMS, "at most {MAX_TERMS} share terms");
    let ws = terms
        .iter()
        .map(|t| weight.iter().map(|&w| t.map.apply(w)).collect())
        .collect();
    let ps = terms.iter().map(|t| t.p).collect();
    let qs = terms.iter().map(|t| t.q).collect();
    (ws, ps, qs, Phases::new(g), r)
}

/// K-LRP relevance through a grouped convolution for a batch of `n` samples (every factor and
/// relevance flat NCHW): `R_in[j] = ⊕_k Θ(Σ_t p_t[j] g_t(w_jk) q_t[k]) ⊗ R_out[k]`, equal to
/// [`propagate_reference`](super::propagate_reference) bit for bit. At most [`MAX_TERMS`] terms.
pub(crate) fn relevance<K: Semiring, T: Conversion<K> + ?Sized>(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[ConvTerm<'_>],
    theta: &T,
    r_out: &[K],
    n: usize,
) -> Vec<K> {
    let (ws, ps, qs, ph, r) = context(g, weight, terms, r_out);
    let ctx = RelevanceCtx {
        g,
        ph,
        ws: &ws,
        ps: &ps,
        qs: &qs,
        r,
    };
    let hw_in = g.in_h * g.in_w;
    let mut r_in = super::filled(n * g.in_channels * hw_in, K::zero());
    par::chunks_mut_init(
        &mut r_in,
        hw_in.max(1),
        &|| Scratch::new(1),
        &|scratch, task, out| relevance_plane_simd(&ctx, theta, task, scratch, out),
    );
    r_in
}

/// Input plane `task` of the linear form: `R_in = Σ_t p_t ⊙ convᵀ_{g_t}(q_t ⊙ R)`, with
/// `to_f32` and `from_f32` reading and making the semiring's values.
#[inline(always)]
fn linear_plane<K: Semiring, F: Fn(f32) -> K + Sync>(
    c: &RelevanceCtx<'_, K>,
    from_f32: &F,
    task: usize,
    scratch: &mut Scratch<f32>,
    out: &mut [K],
) {
    let (g, ph) = (c.g, c.ph);
    let (cin_g, cout_g) = (g.in_channels / g.groups, g.out_channels / g.groups);
    let (s, ci) = (task / g.in_channels, task % g.in_channels);
    let (group, cl) = (ci / cin_g, ci % cin_g);
    let hw_out = g.out_h * g.out_w;
    let row = ph.row();
    scratch.prepare(g, ph, c.ps, task * g.in_h * g.in_w, 0.0);
    let Scratch { p, acc, d: u } = scratch;
    for co in group * cout_g..(group + 1) * cout_g {
        let at = (s * g.out_channels + co) * hw_out;
        for oy in 0..g.out_h {
            let k0 = at + oy * g.out_w;
            let r = &c.r[k0..k0 + g.out_w];
            for ((w, q), acc) in c.ws.iter().zip(c.qs).zip(acc.iter_mut()) {
                // u = q ⊙ R, once per output row; a silent row (e.g. the γ rule's negative
                // branch where no relevance arrives) adds nothing.
                let mut any = false;
                for ((u, &q), r) in u.iter_mut().zip(&q[k0..]).zip(r) {
                    *u = q * r.to_f64() as f32;
                    any |= *u != 0.0;
                }
                if !any {
                    continue;
                }
                for ky in 0..g.kh {
                    let Some(iy) = input_row(g, oy, ky) else {
                        continue;
                    };
                    let wbase = ((co * cin_g + cl) * g.kh + ky) * g.kw;
                    for kx in 0..g.kw {
                        let w = w[wbase + kx];
                        let off = iy * row + ph.tap(kx, g.dilation.1);
                        for (a, &u) in acc[off..off + g.out_w].iter_mut().zip(&u[..]) {
                            *a += w * u;
                        }
                    }
                }
            }
        }
    }
    // R_in = Σ_t p_t ⊙ acc_t, term by term (as the direct path adds them).
    for (iy, o) in out.chunks_exact_mut(g.in_w).enumerate() {
        o.fill(K::zero());
        for (pt, a) in p.iter().zip(acc.iter()) {
            let (pr, ar) = (&pt[iy * row..][..row], &a[iy * row..][..row]);
            for (ix, o) in o.iter_mut().enumerate() {
                if let Some(at) = ph.at(ix + ph.pad) {
                    *o = from_f32(o.to_f64() as f32 + pr[at] * ar[at]);
                }
            }
        }
    }
}

multiversion! {
    fn linear_plane_simd[K: Semiring, F: Fn(f32) -> K + Sync](
        c: &RelevanceCtx<'_, K>,
        from_f32: &F,
        task: usize,
        scratch: &mut Scratch<f32>,
        out: &mut [K]
    ) => linear_plane
}

/// Classical LRP through a grouped convolution in its linear form,
/// `R_in = Σ_t p_t ⊙ convᵀ_{g_t}(q_t ⊙ R_out)`, for a semiring whose values are real numbers
/// (`to_f64` reads them, `from_f32` makes them). At most [`MAX_TERMS`] terms.
pub(crate) fn linear_relevance<K: Semiring>(
    g: &ConvGeometry,
    weight: &ArrayView4<'_, f32>,
    terms: &[ConvTerm<'_>],
    r_out: &[K],
    from_f32: impl Fn(f32) -> K + Sync,
    n: usize,
) -> Vec<K> {
    let (ws, ps, qs, ph, r) = context(g, weight, terms, r_out);
    let ctx = RelevanceCtx {
        g,
        ph,
        ws: &ws,
        ps: &ps,
        qs: &qs,
        r,
    };
    let hw_in = g.in_h * g.in_w;
    let mut r_in = super::filled(n * g.in_channels * hw_in, K::zero());
    par::chunks_mut_init(
        &mut r_in,
        hw_in.max(1),
        &|| Scratch::new(terms.len()),
        &|scratch, task, out| linear_plane_simd(&ctx, &from_f32, task, scratch, out),
    );
    r_in
}
