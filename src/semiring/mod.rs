//! Semirings (K, ⊕, ⊗, 0, 1): the algebra relevance is computed in.
//!
//! May import: nothing of klrp (docs/architecture.md, "Layers").
//!
//! A semiring is a set K with two operations such that
//!
//! | law | formula |
//! |---|---|
//! | ⊕ associative | (a ⊕ b) ⊕ c = a ⊕ (b ⊕ c) |
//! | ⊕ commutative | a ⊕ b = b ⊕ a |
//! | 0 is ⊕'s identity | a ⊕ 0 = 0 ⊕ a = a |
//! | ⊗ associative | (a ⊗ b) ⊗ c = a ⊗ (b ⊗ c) |
//! | 1 is ⊗'s identity | a ⊗ 1 = 1 ⊗ a = a |
//! | ⊗ distributes over ⊕, left | a ⊗ (b ⊕ c) = (a ⊗ b) ⊕ (a ⊗ c) |
//! | ⊗ distributes over ⊕, right | (a ⊕ b) ⊗ c = (a ⊗ c) ⊕ (b ⊗ c) |
//! | 0 annihilates | a ⊗ 0 = 0 ⊗ a = 0 |
//!
//! K-LRP computes `R_j = ⊕_k Θ(d_jk) ⊗ R_k`; which semiring is chosen decides what relevance *means*:
//!
//! | semiring | K | ⊕ | ⊗ | relevance means |
//! |---|---|---|---|---|
//! | [`Real`] | ℝ | + | × | classical LRP |
//! | [`Boolean`] | {⊥, ⊤} | ∨ | ∧ | is there a relevant path (a mask) |
//! | [`Counting`] | ℕ (u64, saturating) | + | × | how many relevant paths |
//! | [`FloatCounting`] | ℕ as f64 | + | × | path counts that do not overflow in practice |
//! | [`LogCounting`] | ln ℕ | logaddexp | + | path counts in the log domain |
//! | [`Viterbi`] | [0, 1] | max | × | strength of the strongest path |
//! | [`Tropical`] | ℝ ∪ {+∞} | min | + | cheapest path (costs) |
//! | [`MaxPlus`] | ℝ ∪ {−∞} | max | + | best path (log-scores) |
//! | [`Fuzzy`] | [0, 1] | max | min | bottleneck strength |
//! | [`Lukasiewicz`] | [0, 1] | max | max(0, a + b − 1) | graded truth |
//! | [`Product`] | A × B | componentwise | componentwise | two semirings in one pass |
//!
//! The laws are checked for every shipped semiring by `tests/it/semiring_laws.rs`, using the public
//! checker in `klrp::laws` (feature `laws`), which you can point at your own semiring.

mod boolean;
mod counting;
mod fuzzy;
mod kbest;
mod product;
mod real;
mod tropical;
mod viterbi;

pub use boolean::Boolean;
pub use counting::{Counting, FloatCounting, LogCounting};
pub use fuzzy::{Fuzzy, Lukasiewicz};
pub use kbest::KBest;
pub use product::Product;
pub use real::Real;
pub use tropical::{MaxPlus, Tropical};
pub use viterbi::Viterbi;

use std::fmt::Debug;

/// A semiring (K, ⊕, ⊗, 0, 1).
///
/// # Laws
/// Implementations must satisfy, for all a, b, c in K:
/// - (K, ⊕, 0) is a commutative monoid: `(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)`, `a ⊕ b = b ⊕ a`, `a ⊕ 0 = a`;
/// - (K, ⊗, 1) is a monoid: `(a ⊗ b) ⊗ c = a ⊗ (b ⊗ c)`, `a ⊗ 1 = 1 ⊗ a = a`;
/// - ⊗ distributes over ⊕ on both sides: `a ⊗ (b ⊕ c) = a⊗b ⊕ a⊗c`, `(a ⊕ b) ⊗ c = a⊗c ⊕ b⊗c`;
/// - 0 annihilates: `a ⊗ 0 = 0 ⊗ a = 0`.
///
/// Floating-point semirings satisfy them up to rounding. Declared properties
/// ([`ADD_IDEMPOTENT`](Semiring::ADD_IDEMPOTENT), [`MUL_COMMUTATIVE`](Semiring::MUL_COMMUTATIVE),
/// [`top`](Semiring::top)) are promises kernels rely on, and the law checker checks them too.
///
/// # Example
/// ```
/// use klrp::semiring::{Boolean, Semiring, Viterbi};
/// assert_eq!(Boolean(true).add(Boolean(false)), Boolean(true));      // ∨
/// assert_eq!(Viterbi(0.5).mul(Viterbi(0.5)), Viterbi(0.25));         // ×
/// assert_eq!(Viterbi(0.5).add(Viterbi(0.25)), Viterbi(0.5));         // max
/// ```
pub trait Semiring: Copy + PartialEq + Debug + Send + Sync + 'static {
    /// A short name for messages and file names, e.g. `"boolean"`.
    const NAME: &'static str;

    /// `a ⊕ a = a` for every a (max, min, ∨). Lets kernels ignore repeated contributions.
    const ADD_IDEMPOTENT: bool = false;

    /// `a ⊗ b = b ⊗ a` for every a, b. When false, kernels keep the order `Θ(d) ⊗ R`.
    const MUL_COMMUTATIVE: bool = true;

    /// The values are path strengths: ⊗-products of shares in `[0, 1]` ([`Viterbi`],
    /// [`KBest`]; a [`Product`] with such a component). [`Explainer`](crate::Explainer) then
    /// refuses rules whose shares can leave `[0, 1]` (anything but max-abs, flat and w² on a
    /// dense or convolution layer), since a clamped share is no strength
    /// ([`Explainer::check_fits`](crate::Explainer::check_fits)).
    const UNIT_SHARES: bool = false;

    /// The additive identity 0 (which also annihilates under ⊗).
    fn zero() -> Self;

    /// The multiplicative identity 1.
    fn one() -> Self;

    /// ⊕.
    fn add(self, rhs: Self) -> Self;

    /// ⊗.
    fn mul(self, rhs: Self) -> Self;

    /// `self ← self ⊕ rhs`.
    #[inline]
    fn add_assign(&mut self, rhs: Self) {
        *self = self.add(rhs);
    }

    /// `self ← self ⊗ rhs`.
    #[inline]
    fn mul_assign(&mut self, rhs: Self) {
        *self = self.mul(rhs);
    }

    /// `self ← self ⊕ (a ⊗ b)`: the step of every relevance contraction.
    #[inline]
    fn add_mul(&mut self, a: Self, b: Self) {
        self.add_assign(a.mul(b));
    }

    /// Whether `self` is the zero element.
    #[inline]
    fn is_zero(&self) -> bool {
        *self == Self::zero()
    }

    /// The element that absorbs ⊕ (`a ⊕ top = top` for every a), if there is one.
    ///
    /// ⊤ for [`Boolean`], 1 for [`Viterbi`] and [`Fuzzy`]. A kernel accumulating ⊕ may stop as soon
    /// as it reaches it.
    #[inline]
    fn top() -> Option<Self> {
        None
    }

    /// Whether `self` is the ⊕-absorbing [`top`](Semiring::top) element.
    #[inline]
    fn is_top(&self) -> bool {
        Self::top().is_some_and(|t| t == *self)
    }

    /// Whether `self` stands for a value the representation could not hold (a saturated count,
    /// an overflow to infinity). Relevance results report such values instead of hiding them.
    #[inline]
    fn is_overflow(&self) -> bool {
        false
    }

    /// A real number for visualisation and statistics (⊤ → 1, counts → their value, …).
    fn to_f64(&self) -> f64;
}
