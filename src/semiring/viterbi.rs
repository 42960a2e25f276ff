//! The Viterbi semiring ([0, 1], max, ×, 0, 1): the strongest path.

use super::Semiring;

/// The Viterbi semiring ([0, 1], max, ×, 0, 1).
///
/// With the max-abs shares `d_jk = |a_j w_jk| / (max_j' |a_j' w_j'k| + δ)` (in `[0, 1)`), an input's
/// relevance is the product of shares along its strongest path to the target. Values stay in
/// [0, 1]; 1 absorbs max.
///
/// ```
/// use klrp::semiring::{Semiring, Viterbi};
/// assert_eq!(Viterbi(0.5).add(Viterbi(0.8)), Viterbi(0.8));
/// assert_eq!(Viterbi(0.5).mul(Viterbi(0.5)), Viterbi(0.25));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Viterbi(pub f64);

impl Semiring for Viterbi {
    const NAME: &'static str = "viterbi";
    const ADD_IDEMPOTENT: bool = true;
    const UNIT_SHARES: bool = true;

    #[inline]
    fn zero() -> Self {
        Viterbi(0.0)
    }
    #[inline]
    fn one() -> Self {
        Viterbi(1.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Viterbi(self.0.max(rhs.0))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Viterbi(self.0 * rhs.0)
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Viterbi(1.0))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
    }
}
