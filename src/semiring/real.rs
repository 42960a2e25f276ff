//! The real semiring (ℝ, +, ×, 0, 1): classical LRP.

use super::Semiring;
use num_traits::Float;
use std::fmt::Debug;

/// The real numbers (ℝ, +, ×, 0, 1), over `f32` or `f64`.
///
/// With Θ = identity, K-LRP in `Real` is classical LRP: `R_j = Σ_k d_jk R_k`. Started from 1 at the
/// target, the relevance is classical LRP divided by the target's output activation.
///
/// ```
/// use klrp::semiring::{Real, Semiring};
/// let r = Real(2.0_f32).mul(Real(3.0)).add(Real(1.0));
/// assert_eq!(r, Real(7.0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Real<F = f32>(pub F);

impl<F: Float + Debug + Send + Sync + 'static> Semiring for Real<F> {
    const NAME: &'static str = "real";

    #[inline]
    fn zero() -> Self {
        Real(F::zero())
    }
    #[inline]
    fn one() -> Self {
        Real(F::one())
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Real(self.0 + rhs.0)
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Real(self.0 * rhs.0)
    }
    #[inline]
    fn add_mul(&mut self, a: Self, b: Self) {
        self.0 = self.0 + a.0 * b.0;
    }
    #[inline]
    fn is_overflow(&self) -> bool {
        !self.0.is_finite()
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0.to_f64().unwrap_or(f64::NAN)
    }
}
