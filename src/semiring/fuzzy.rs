//! Fuzzy-logic semirings on [0, 1]: Gödel (max, min) and Łukasiewicz.

use super::Semiring;

/// The fuzzy (Gödel) semiring ([0, 1], max, min, 0, 1).
///
/// Relevance is the strength of the best path, where a path is as strong as its weakest share.
///
/// ```
/// use klrp::semiring::{Fuzzy, Semiring};
/// assert_eq!(Fuzzy(0.3).mul(Fuzzy(0.7)), Fuzzy(0.3));
/// assert_eq!(Fuzzy(0.3).add(Fuzzy(0.7)), Fuzzy(0.7));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
#[repr(transparent)]
pub struct Fuzzy(pub f64);

impl Semiring for Fuzzy {
    const NAME: &'static str = "fuzzy";
    const ADD_IDEMPOTENT: bool = true;

    #[inline]
    fn zero() -> Self {
        Fuzzy(0.0)
    }
    #[inline]
    fn one() -> Self {
        Fuzzy(1.0)
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
        Some(Fuzzy(1.0))
    }
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0
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
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Lukasiewicz((self.0 + rhs.0 - 1.0).max(0.0))
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
