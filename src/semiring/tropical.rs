//! The tropical semirings: (min, +) and (max, +).

use super::Semiring;

/// The tropical (min-plus) semiring (ℝ ∪ {+∞}, min, +, +∞, 0).
///
/// With Θ(d) = a cost such as `−ln d`, relevance is the cost of the cheapest path to the target.
///
/// ```
/// use klrp::semiring::{Semiring, Tropical};
/// assert_eq!(Tropical(2.0).add(Tropical(3.0)), Tropical(2.0));
/// assert_eq!(Tropical(2.0).mul(Tropical(3.0)), Tropical(5.0));
/// assert!(Tropical::zero().0.is_infinite());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Tropical(pub f64);

impl Semiring for Tropical {
    const NAME: &'static str = "tropical";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        Tropical(f64::INFINITY)
    }
    #[inline]
    fn one() -> Self {
        Tropical(0.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Tropical(self.0.min(rhs.0))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        // +∞ absorbs: keeps ∞ + (−∞) from becoming NaN.
        if self.0 == f64::INFINITY || rhs.0 == f64::INFINITY {
            Tropical(f64::INFINITY)
        } else {
            Tropical(self.0 + rhs.0)
        }
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Tropical(f64::NEG_INFINITY))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
    }
}

/// The max-plus (arctic) semiring (ℝ ∪ {−∞}, max, +, −∞, 0).
///
/// With Θ(d) = `ln d`, relevance is the log-score of the best path (the log of [`super::Viterbi`]).
///
/// ```
/// use klrp::semiring::{MaxPlus, Semiring};
/// assert_eq!(MaxPlus(2.0).add(MaxPlus(3.0)), MaxPlus(3.0));
/// assert_eq!(MaxPlus(2.0).mul(MaxPlus(3.0)), MaxPlus(5.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct MaxPlus(pub f64);

impl Semiring for MaxPlus {
    const NAME: &'static str = "maxplus";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        MaxPlus(f64::NEG_INFINITY)
    }
    #[inline]
    fn one() -> Self {
        MaxPlus(0.0)
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        MaxPlus(self.0.max(rhs.0))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        if self.0 == f64::NEG_INFINITY || rhs.0 == f64::NEG_INFINITY {
            MaxPlus(f64::NEG_INFINITY)
        } else {
            MaxPlus(self.0 + rhs.0)
        }
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(MaxPlus(f64::INFINITY))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tropical_infinities() {
        let zero = Tropical::zero();
        let top = Tropical::top().unwrap();
        let x = Tropical(-3.5);
        assert_eq!(zero.add(x), x);
        assert_eq!(x.mul(zero), zero);
        // +∞ (zero) annihilates even −∞ (top): no NaN from ∞ + (−∞).
        assert_eq!(zero.mul(top), zero);
        assert_eq!(top.mul(zero), zero);
        assert_eq!(top.mul(x), top);
        assert_eq!(x.add(top), top);
        assert!(top.is_top() && !zero.is_top() && zero.is_zero());
    }

    #[test]
    fn max_plus_infinities() {
        let zero = MaxPlus::zero();
        let top = MaxPlus::top().unwrap();
        let x = MaxPlus(7.25);
        assert_eq!(zero.add(x), x);
        assert_eq!(x.mul(zero), zero);
        assert_eq!(zero.mul(top), zero);
        assert_eq!(top.mul(zero), zero);
        assert_eq!(top.mul(x), top);
        assert_eq!(x.add(top), top);
        assert!(top.is_top() && !zero.is_top() && zero.is_zero());
    }
}
