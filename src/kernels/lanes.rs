//! The innermost loops: `acc[i] ⊕= Θ(d[i]) ⊗ r[i]` over contiguous lanes, written so the compiler
//! vectorises them for every semiring.

use crate::conversion::{Conversion, Indicator};
use crate::semiring::Semiring;
use crate::shares::WeightMap;

/// `acc[i] ← acc[i] ⊕ Θ(d[i]) ⊗ r[i]`.
#[inline(always)]
pub(crate) fn accumulate_lanes<K: Semiring, T: Conversion<K> + ?Sized>(
    theta: &T,
    d: &[f32],
    r: &[K],
    acc: &mut [K],
) {
    match theta.indicator() {
        Some(Indicator::AtLeast(t)) => {
            for ((a, &d), &r) in acc.iter_mut().zip(d).zip(r) {
                a.add_assign(if d >= t { r } else { K::zero() });
            }
        }
        Some(Indicator::AbsAbove(t)) => {
            for ((a, &d), &r) in acc.iter_mut().zip(d).zip(r) {
                a.add_assign(if d.abs() > t { r } else { K::zero() });
            }
        }
        None => {
            for ((a, &d), &r) in acc.iter_mut().zip(d).zip(r) {
                a.add_mul(theta.convert(d), r);
            }
        }
    }
}

/// `acc[i] ← acc[i] ⊕ Θ(p · w[i] · q[i]) ⊗ r[i]`: one share term, fused.
#[inline(always)]
pub(crate) fn fused_lanes<K: Semiring, T: Conversion<K> + ?Sized>(
    theta: &T,
    p: f32,
    w: &[f32],
    q: &[f32],
    r: &[K],
    acc: &mut [K],
) {
    let n = acc.len().min(w.len()).min(q.len()).min(r.len());
    let (w, q, r, acc) = (&w[..n], &q[..n], &r[..n], &mut acc[..n]);
    match theta.indicator() {
        Some(Indicator::AtLeast(t)) => {
            for i in 0..n {
                let pass = p * w[i] * q[i] >= t;
                acc[i].add_assign(if pass { r[i] } else { K::zero() });
            }
        }
        Some(Indicator::AbsAbove(t)) => {
            for i in 0..n {
                let pass = (p * w[i] * q[i]).abs() > t;
                acc[i].add_assign(if pass { r[i] } else { K::zero() });
            }
        }
        None => {
            for i in 0..n {
                acc[i].add_mul(theta.convert(p * w[i] * q[i]), r[i]);
            }
        }
    }
}

/// `acc[i] ← acc[i] ⊕ Θ(d[i]) ⊗ r` for one relevance value `r`.
#[inline(always)]
pub(crate) fn accumulate_scalar<K: Semiring, T: Conversion<K> + ?Sized>(
    theta: &T,
    d: &[f32],
    r: K,
    acc: &mut [K],
) {
    match theta.indicator() {
        Some(ind) => {
            for (a, &d) in acc.iter_mut().zip(d) {
                a.add_assign(if ind.passes(d) { r } else { K::zero() });
            }
        }
        None => {
            for (a, &d) in acc.iter_mut().zip(d) {
                a.add_mul(theta.convert(d), r);
            }
        }
    }
}

/// `⊕` over all lanes, as eight interleaved partial sums (so the compiler can vectorise it even
/// where it may not reorder `⊕`, e.g. saturating or floating-point sums); `⊕` is associative and
/// commutative, so the grouping is a choice of summation order, the same on every run.
#[inline(always)]
pub(crate) fn fold_lanes<K: Semiring>(acc: &[K]) -> K {
    let mut part = [K::zero(); 8];
    let chunks = acc.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (p, &a) in part.iter_mut().zip(c) {
            *p = p.add(a);
        }
    }
    let [a, b, c, d, e, f, g, h] = part;
    let s = a.add(e).add(b.add(f)).add(c.add(g).add(d.add(h)));
    rest.iter().fold(s, |s, &a| s.add(a))
}

/// `d[i] (+)= p[i] · g(w[i]) · q`, with the weight map resolved outside the loop.
#[inline(always)]
pub(crate) fn add_term_scaled(
    d: &mut [f32],
    p: &[f32],
    w: &[f32],
    map: WeightMap,
    q: f32,
    first: bool,
) {
    macro_rules! run {
        ($g:expr) => {{
            let g = $g;
            if first {
                for ((d, &p), &w) in d.iter_mut().zip(p).zip(w) {
                    *d = p * g(w) * q;
                }
            } else {
                for ((d, &p), &w) in d.iter_mut().zip(p).zip(w) {
                    *d += p * g(w) * q;
                }
            }
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
