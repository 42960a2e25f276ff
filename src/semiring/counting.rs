//! Counting semirings: how many relevant paths lead from an input to the target.
//!
//! Path counts grow exponentially with depth (on VGG-16 they pass 2⁶⁴ easily), so three
//! representations are shipped, each with a different answer to overflow:
//!
//! | type | range | exact up to | past it |
//! |---|---|---|---|
//! | [`Counting`] | u64 | 2⁶⁴ − 2 | saturates at `u64::MAX`, flagged by [`Semiring::is_overflow`] |
//! | [`FloatCounting`] | f64 | 2⁵³ | rounds (relative error ≤ 2⁻⁵³ per operation); +∞ only past 1.8·10³⁰⁸, flagged |
//! | [`LogCounting`] | ln of an f64 count | — | stores ln c: no overflow below e^(1.8·10³⁰⁸); relative error of c about \|ln c\|·2⁻⁵³ |

use super::Semiring;

/// The counting semiring (ℕ, +, ×, 0, 1) over `u64`, saturating.
///
/// With Θ(d) = [d ≥ θ], an input's relevance is the number of paths to the target whose every
/// share passes the threshold.
///
/// # Overflow policy
/// Arithmetic saturates: `u64::MAX` stands for "2⁶⁴ − 1 or more" and is sticky (it stays
/// `u64::MAX` under ⊕ and under ⊗ with anything but 0). This is still a semiring (the quotient of ℕ
/// that identifies all counts ≥ 2⁶⁴ − 1), so the laws hold exactly, and nothing wraps.
/// [`Semiring::is_overflow`] is true for the saturated value, and relevance results count such
/// entries so a caller is told. Use [`FloatCounting`] or [`LogCounting`] when counts are that big.
///
/// ```
/// use klrp::semiring::{Counting, Semiring};
/// assert_eq!(Counting(2).add(Counting(3)), Counting(5));
/// let big = Counting(u64::MAX / 2).mul(Counting(3));
/// assert!(big.is_overflow());
/// assert_eq!(big.mul(Counting::zero()), Counting(0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Counting(pub u64);

impl Semiring for Counting {
    const NAME: &'static str = "counting";

    #[inline]
    fn zero() -> Self {
        Counting(0)
    }
    #[inline]
    fn one() -> Self {
        Counting(1)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Counting(self.0.saturating_add(rhs.0))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Counting(self.0.saturating_mul(rhs.0))
    }
    #[inline]
    fn is_overflow(&self) -> bool {
        self.0 == u64::MAX
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0 as f64
    }
}

/// Path counts as `f64`: (ℝ≥0, +, ×, 0, 1) used for counting.
///
/// Exact up to 2⁵³; beyond, each operation rounds to the nearest f64 (relative error ≤ 2⁻⁵³), so
/// counts stay accurate to about 15 significant digits. It overflows only past 1.8·10³⁰⁸ (to +∞,
/// flagged by [`Semiring::is_overflow`]); VGG-16 path counts stay far below that.
///
/// ```
/// use klrp::semiring::{FloatCounting, Semiring};
/// let c = FloatCounting(2f64.powi(40)).mul(FloatCounting(2f64.powi(40)));
/// assert_eq!(c, FloatCounting(2f64.powi(80))); // beyond u64, still exact for powers of two
/// assert!(!c.is_overflow());
/// let inf = FloatCounting(1e300).mul(FloatCounting(1e300));
/// assert!(inf.is_overflow());
/// assert_eq!(inf.mul(FloatCounting::zero()), FloatCounting::zero()); // not NaN
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct FloatCounting(pub f64);

impl Semiring for FloatCounting {
    const NAME: &'static str = "float-counting";

    #[inline]
    fn zero() -> Self {
        FloatCounting(0.0)
    }
    #[inline]
    fn one() -> Self {
        FloatCounting(1.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        FloatCounting(self.0 + rhs.0)
    }
    /// `a × b`, except that 0 annihilates even the overflow value: `+∞ ⊗ 0 = 0` (IEEE would give
    /// NaN), as for [`Counting`], where `u64::MAX ⊗ 0 = 0`.
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        FloatCounting(mul_annihilating(self.0, rhs.0))
    }
    #[inline]
    fn add_mul(&mut self, a: Self, b: Self) {
        self.0 += mul_annihilating(a.0, b.0);
    }
    #[inline]
    fn is_overflow(&self) -> bool {
        !self.0.is_finite()
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
    }
}

/// `a × b` with `0 × ±∞ = 0`: no paths times any number of paths is no paths.
#[inline]
fn mul_annihilating(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 { 0.0 } else { a * b }
}

/// Path counts in the log domain: the value `x` stands for the count `eˣ`.
///
/// (ℝ ∪ {−∞}, logaddexp, +, −∞, 0), isomorphic to (ℝ≥0, +, ×) through `ln`. It cannot overflow in
/// practice (a count would need more than e^(1.8·10³⁰⁸) paths); the price is precision — the count
/// `eˣ` carries a relative error of about `|x|·2⁻⁵³` — and speed (⊕ costs an `exp` and a `ln_1p`).
///
/// ```
/// use klrp::semiring::{LogCounting, Semiring};
/// let three = LogCounting::from_count(3.0);
/// let four = LogCounting::from_count(4.0);
/// assert!((three.add(four).count() - 7.0).abs() < 1e-12);
/// assert!((three.mul(four).count() - 12.0).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct LogCounting(pub f64);

impl LogCounting {
    /// The element standing for `count` (≥ 0).
    pub fn from_count(count: f64) -> Self {
        LogCounting(count.ln())
    }

    /// The count `eˣ` this element stands for (+∞ when it exceeds f64).
    pub fn count(&self) -> f64 {
        self.0.exp()
    }
}

impl Semiring for LogCounting {
    const NAME: &'static str = "log-counting";

    #[inline]
    fn zero() -> Self {
        LogCounting(f64::NEG_INFINITY)
    }
    #[inline]
    fn one() -> Self {
        LogCounting(0.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        let (hi, lo) = if self.0 >= rhs.0 {
            (self.0, rhs.0)
        } else {
            (rhs.0, self.0)
        };
        // lo = −∞ is the zero; hi = +∞ (overflow) absorbs, and would give ∞ − ∞ = NaN below.
        if lo == f64::NEG_INFINITY || hi == f64::INFINITY {
            return LogCounting(hi);
        }
        LogCounting(hi + (lo - hi).exp().ln_1p())
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        if self.0 == f64::NEG_INFINITY || rhs.0 == f64::NEG_INFINITY {
            LogCounting(f64::NEG_INFINITY)
        } else {
            LogCounting(self.0 + rhs.0)
        }
    }
    #[inline]
    fn is_overflow(&self) -> bool {
        self.0 == f64::INFINITY || self.0.is_nan()
    }
    /// The count `eˣ`.
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0.exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_saturates_and_zero_still_annihilates() {
        let max = Counting(u64::MAX);
        assert_eq!(max.mul(Counting::zero()), Counting::zero());
        assert_eq!(Counting::zero().mul(max), Counting::zero());
        assert_eq!(max.mul(Counting(2)), max);
        assert_eq!(max.add(Counting(1)), max);
        assert_eq!(Counting(u64::MAX - 1).add(Counting(1)), max);
        assert_eq!(Counting(1 << 32).mul(Counting(1 << 32)), max);
        assert_eq!(
            Counting(1 << 32).mul(Counting((1 << 32) - 1)).0,
            u64::MAX - (1 << 32) + 1
        );
        assert!(max.is_overflow());
        assert!(!Counting(u64::MAX - 1).is_overflow());
        let mut acc = Counting(u64::MAX - 1);
        acc.add_mul(Counting(3), Counting(4));
        assert_eq!(acc, max);
    }

    #[test]
    fn float_counting_zero_annihilates_overflow() {
        let inf = FloatCounting(f64::INFINITY);
        assert!(inf.is_overflow());
        assert_eq!(inf.mul(FloatCounting::zero()), FloatCounting::zero());
        assert_eq!(FloatCounting::zero().mul(inf), FloatCounting::zero());
        let mut acc = FloatCounting(5.0);
        acc.add_mul(inf, FloatCounting::zero());
        assert_eq!(acc, FloatCounting(5.0));
        acc.add_mul(inf, FloatCounting(2.0));
        assert_eq!(acc, inf);
        assert_eq!(FloatCounting(1e308).mul(FloatCounting(10.0)), inf);
    }

    #[test]
    fn log_counting_infinities() {
        let zero = LogCounting::zero();
        let inf = LogCounting(f64::INFINITY);
        let x = LogCounting(1.5);
        assert_eq!(zero.add(x), x);
        assert_eq!(x.add(zero), x);
        assert_eq!(zero.add(zero), zero);
        assert_eq!(zero.mul(x), zero);
        assert_eq!(x.mul(zero), zero);
        // The overflow value absorbs ⊕ (it used to give ∞ − ∞ = NaN) and is annihilated by 0.
        assert_eq!(inf.add(inf), inf);
        assert_eq!(inf.add(x), inf);
        assert_eq!(x.add(inf), inf);
        assert_eq!(inf.mul(zero), zero);
        assert_eq!(zero.mul(inf), zero);
        assert_eq!(inf.mul(x), inf);
        // e^x + e^x = 2 e^x.
        assert!((x.add(x).0 - (1.5 + std::f64::consts::LN_2)).abs() < 1e-15);
        assert!(LogCounting::from_count(0.0).is_zero());
    }
}
