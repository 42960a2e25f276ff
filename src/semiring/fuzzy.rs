//! Fuzzy-logic semirings on [0, 1]: Gödel (max, min) and Łukasiewicz.

use super::Semiring;
use num_traits::Float;
use std::fmt::Debug;

/// The fuzzy (Gödel) semiring ([0, 1], max, min, 0, 1), over `f64` (default) or `f32`.
///
/// Relevance is the strength of the best path, where a path is as strong as its weakest share.
/// `Fuzzy<f32>` halves the memory the kernels stream where `f32` precision is enough (the
/// bottleneck propagation of [`calibrate`](crate::calibrate), compared with `f32` thresholds).
///
/// ```
/// use klrp::semiring::{Fuzzy, Semiring};
/// assert_eq!(Fuzzy(0.3).mul(Fuzzy(0.7)), Fuzzy(0.3));
/// assert_eq!(Fuzzy(0.3).add(Fuzzy(0.7)), Fuzzy(0.7));
/// assert_eq!(Fuzzy(0.3_f32).mul(Fuzzy::one()), Fuzzy(0.3_f32));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Fuzzy<F = f64>(pub F);

impl<F: Float + Debug + Send + Sync + 'static> Semiring for Fuzzy<F> {
    const NAME: &'static str = "fuzzy";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        Fuzzy(F::zero())
    }
    #[inline]
    fn one() -> Self {
        Fuzzy(F::one())
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Fuzzy(self.0.max(rhs.0))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Fuzzy(self.0.min(rhs.0))
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Fuzzy(F::one()))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(f64::NAN)
    }
}

/// The Łukasiewicz semiring ([0, 1], max, max(0, a + b − 1), 0, 1).
///
/// The t-norm `max(0, a + b − 1)` charges each step its distance from certainty: a path stays
/// relevant only while the shares along it are close to 1.
///
/// ```
/// use klrp::semiring::{Lukasiewicz, Semiring};
/// assert_eq!(Lukasiewicz(0.75).mul(Lukasiewicz(0.5)), Lukasiewicz(0.25));
/// assert_eq!(Lukasiewicz(0.25).mul(Lukasiewicz(0.5)), Lukasiewicz(0.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Lukasiewicz(pub f64);

impl Semiring for Lukasiewicz {
    const NAME: &'static str = "lukasiewicz";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        Lukasiewicz(0.0)
    }
    #[inline]
    fn one() -> Self {
        Lukasiewicz(1.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Lukasiewicz(self.0.max(rhs.0))
    }
    /// `max(0, a + b − 1)`, correctly rounded for a, b in [0, 1].
    ///
    /// Computed as `lo − (1 − hi)` with `hi ≥ lo`: when `hi ≥ ½`, `1 − hi` is exact (Sterbenz), so
    /// the only rounding is the last subtraction; when `hi < ½` the exact result is negative and so
    /// is the computed one. Hence `a ⊗ 1 = a` and `a ⊗ b = b ⊗ a` hold exactly, which the naive
    /// `a + b − 1` breaks (`0.3 + 1 − 1 = 0.30000000000000004`).
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        let (hi, lo) = if self.0 >= rhs.0 {
            (self.0, rhs.0)
        } else {
            (rhs.0, self.0)
        };
        let t = lo - (1.0 - hi);
        Lukasiewicz(if t > 0.0 { t } else { 0.0 })
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Lukasiewicz(1.0))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: [f64; 10] = [
        0.0,
        1e-300,
        1e-20,
        0.1,
        0.3,
        0.5,
        0.7,
        0.9,
        1.0 - f64::EPSILON,
        1.0,
    ];

    #[test]
    fn lukasiewicz_one_is_an_exact_identity() {
        for a in SAMPLES {
            assert_eq!(
                Lukasiewicz(a).mul(Lukasiewicz::one()),
                Lukasiewicz(a),
                "a = {a}"
            );
            assert_eq!(
                Lukasiewicz::one().mul(Lukasiewicz(a)),
                Lukasiewicz(a),
                "a = {a}"
            );
        }
    }

    #[test]
    fn lukasiewicz_mul_is_commutative_clamped_and_never_negative_zero() {
        for a in SAMPLES {
            assert_eq!(
                Lukasiewicz(a).mul(Lukasiewicz::zero()).0.to_bits(),
                0.0f64.to_bits()
            );
            for b in SAMPLES {
                let ab = Lukasiewicz(a).mul(Lukasiewicz(b));
                assert_eq!(ab, Lukasiewicz(b).mul(Lukasiewicz(a)));
                assert!(
                    (0.0..=1.0).contains(&ab.0) && ab.0.is_sign_positive(),
                    "{a} ⊗ {b}"
                );
                assert!((ab.0 - (a + b - 1.0).max(0.0)).abs() <= f64::EPSILON);
            }
        }
        assert_eq!(Lukasiewicz(0.3).mul(Lukasiewicz(0.7)), Lukasiewicz(0.0));
        assert_eq!(Lukasiewicz(0.5).mul(Lukasiewicz(0.5)), Lukasiewicz(0.0));
    }

    #[test]
    fn fuzzy_edges() {
        assert_eq!(Fuzzy(0.0).mul(Fuzzy(1.0)), Fuzzy::zero());
        assert_eq!(Fuzzy(0.4).add(Fuzzy::one()), Fuzzy::one());
        assert!(Fuzzy(1.0).is_top());
    }
}
