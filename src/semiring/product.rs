//! The product of two semirings, computed in one pass.

use super::Semiring;

/// The product semiring A × B with componentwise ⊕ and ⊗: two relevances in one pass.
///
/// `(a₁, b₁) ⊕ (a₂, b₂) = (a₁ ⊕ a₂, b₁ ⊕ b₂)`, likewise ⊗; zero is `(0, 0)`, one `(1, 1)`.
///
/// ```
/// use klrp::semiring::{Boolean, Counting, Product, Semiring};
/// let p = Product(Boolean(true), Counting(2)).mul(Product(Boolean(true), Counting(3)));
/// assert_eq!(p, Product(Boolean(true), Counting(6)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Product<A, B>(pub A, pub B);

impl<A: Semiring, B: Semiring> Semiring for Product<A, B> {
    const NAME: &'static str = "product";
    const ADD_IDEMPOTENT: bool = A::ADD_IDEMPOTENT && B::ADD_IDEMPOTENT;
    const MUL_COMMUTATIVE: bool = A::MUL_COMMUTATIVE && B::MUL_COMMUTATIVE;
    const UNIT_SHARES: bool = A::UNIT_SHARES || B::UNIT_SHARES;

    #[inline]
    fn zero() -> Self {
        Product(A::zero(), B::zero())
    }
    #[inline]
    fn one() -> Self {
        Product(A::one(), B::one())
    }
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Product(self.0.add(rhs.0), self.1.add(rhs.1))
    }
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Product(self.0.mul(rhs.0), self.1.mul(rhs.1))
    }
    #[inline]
    fn top() -> Option<Self> {
        Some(Product(A::top()?, B::top()?))
    }
    #[inline]
    fn is_overflow(&self) -> bool {
        self.0.is_overflow() || self.1.is_overflow()
    }
    /// The first component's value.
    #[inline]
    fn to_f64(&self) -> f64 {
        self.0.to_f64()
    }
}
