//! The Boolean semiring ({⊥, ⊤}, ∨, ∧, ⊥, ⊤): is there a relevant path?

use super::Semiring;

/// The Boolean semiring ({⊥, ⊤}, ∨, ∧, ⊥, ⊤).
///
/// With Θ(d) = [d ≥ θ], an input is ⊤ exactly when some path from it to the target consists only
/// of shares at or above the threshold: the relevance is a mask. ∨ is idempotent and ⊤ absorbs it,
/// so kernels may stop at the first ⊤.
///
/// ```
/// use klrp::semiring::{Boolean, Semiring};
/// assert_eq!(Boolean(true).mul(Boolean(false)), Boolean::zero());
/// assert!(Boolean(true).is_top());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Boolean(pub bool);

impl Semiring for Boolean {
    const NAME: &'static str = "boolean";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        Boolean(false)
    }
    #[inline]
    fn one() -> Self {
        Boolean(true)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Boolean(self.0 | rhs.0)
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Boolean(self.0 & rhs.0)
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Boolean(true))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        if self.0 { 1.0 } else { 0.0 }
    }
}
