//! Θ: the conversion that maps a real share `d_jk` into the semiring.
//!
//! May import: `error`, `semiring` (docs/architecture.md, "Layers").
//!
//! K-LRP computes `R_j = ⊕_k Θ(d_jk) ⊗ R_k`; this module holds every Θ in one place:
//!
//! | Θ | formula | into |
//! |---|---|---|
//! | [`Identity`] | Θ(d) = d | [`Real`] (classical LRP) |
//! | [`Threshold`] | Θ(d) = 1 if d ≥ θ else 0 | [`Boolean`], [`Counting`], [`FloatCounting`], [`LogCounting`] |
//! | [`AbsThreshold`] | Θ(d) = 1 if \|d\| > θ else 0 | the same |
//! | [`Clamp01`] | Θ(d) = min(max(d, 0), 1) | [`Viterbi`], [`Fuzzy`] |
//! | any `Fn(f32) -> K` | your own | any semiring |
//!
//! Θ may differ per layer: [`PerLayer`] holds a default and per-layer overrides.

use crate::error::{Error, Result};
use crate::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, LogCounting, Real, Semiring, Viterbi,
};
use num_traits::Float;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Θ: maps a real share to an element of the semiring `K`.
///
/// Any closure `Fn(f32) -> K` is a conversion too.
///
/// ```
/// use klrp::conversion::{Conversion, Threshold};
/// use klrp::semiring::Boolean;
/// let theta = Threshold::new(0.1).unwrap();
/// assert_eq!(Conversion::<Boolean>::convert(&theta, 0.2), Boolean(true));
/// let custom = |d: f32| Boolean(d < 0.0);
/// assert_eq!(custom.convert(-1.0), Boolean(true));
/// ```
pub trait Conversion<K: Semiring>: Send + Sync {
    /// Θ(share).
    fn convert(&self, share: f32) -> K;

    /// Whether Θ(0) = 0. Kernels use it to skip inputs whose activation is zero.
    #[inline]
    fn maps_zero_to_zero(&self) -> bool {
        self.convert(0.0).is_zero()
    }

    /// If Θ is an indicator — `Θ(d) = 1` when the test passes, else `0` — the test. Kernels then
    /// replace `Θ(d) ⊗ R` by a selection of `R` (valid in every semiring, since `1 ⊗ R = R` and
    /// `0 ⊗ R = 0`).
    #[inline]
    fn indicator(&self) -> Option<Indicator> {
        None
    }

    /// Whether Θ is the identity into a real semiring (Θ(d) = d), which lets kernels use the
    /// linear (transposed-convolution) form of classical LRP.
    #[inline]
    fn is_identity(&self) -> bool {
        false
    }

    /// Whether Θ is `d ↦ min(max(d, 0), 1)` into a semiring whose ⊗ is the product of reals
    /// ([`Clamp01`] into [`Viterbi`]): on shares already in [0, 1] it is the identity, which lets
    /// kernels factor `Θ(p_j g(w_jk) q_k) ⊗ R_k = p_j · g(w_jk) · (q_k R_k)` (after checking that
    /// every share is at most 1).
    #[inline]
    fn is_unit_clamp(&self) -> bool {
        false
    }
}

impl<K: Semiring, F: Fn(f32) -> K + Send + Sync> Conversion<K> for F {
    #[inline]
    fn convert(&self, share: f32) -> K {
        self(share)
    }
}

/// The test of an indicator conversion ([`Threshold`], [`AbsThreshold`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Indicator {
    /// `d ≥ θ`.
    AtLeast(f32),
    /// `|d| > θ`.
    AbsAbove(f32),
}

impl Indicator {
    /// Whether share `d` passes.
    #[inline(always)]
    pub fn passes(self, d: f32) -> bool {
        match self {
            Indicator::AtLeast(t) => d >= t,
            Indicator::AbsAbove(t) => d.abs() > t,
        }
    }
}

/// Θ(d) = d, into [`Real`]: classical LRP.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Identity;

impl<F: Float + Debug + Send + Sync + 'static> Conversion<Real<F>> for Identity {
    #[inline]
    fn convert(&self, share: f32) -> Real<F> {
        Real(F::from(share).unwrap_or_else(F::nan))
    }
    #[inline]
    fn maps_zero_to_zero(&self) -> bool {
        true
    }
    #[inline]
    fn is_identity(&self) -> bool {
        true
    }
}

/// Θ(d) = 1 if d ≥ θ else 0: a share is relevant when it reaches the threshold (signed).
///
/// With θ > 0, Θ(0) = 0 and zero activations are skipped. With θ ≤ 0 every connection with a
/// non-negative share passes, including those of inactive inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    theta: f32,
}

impl Threshold {
    /// Θ with threshold `theta`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `theta` is NaN.
    pub fn new(theta: f32) -> Result<Self> {
        if theta.is_nan() {
            return Err(Error::invalid("threshold θ is NaN"));
        }
        Ok(Threshold { theta })
    }

    /// The threshold θ.
    pub fn theta(&self) -> f32 {
        self.theta
    }

    #[inline]
    fn passes(&self, d: f32) -> bool {
        d >= self.theta
    }

    fn test(&self) -> Indicator {
        Indicator::AtLeast(self.theta)
    }
}

/// Θ(d) = 1 if |d| > θ else 0: a share is relevant when its magnitude exceeds the threshold
/// (the convention of the report's VGG-16 code).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AbsThreshold {
    theta: f32,
}

impl AbsThreshold {
    /// Θ with threshold `theta`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `theta` is NaN.
    pub fn new(theta: f32) -> Result<Self> {
        if theta.is_nan() {
            return Err(Error::invalid("threshold θ is NaN"));
        }
        Ok(AbsThreshold { theta })
    }

    /// The threshold θ.
    pub fn theta(&self) -> f32 {
        self.theta
    }

    #[inline]
    fn passes(&self, d: f32) -> bool {
        d.abs() > self.theta
    }

    fn test(&self) -> Indicator {
        Indicator::AbsAbove(self.theta)
    }
}

macro_rules! indicator_conversions {
    ($theta:ty => $($k:ty : $one:expr, $zero:expr);* $(;)?) => {$(
        impl Conversion<$k> for $theta {
            #[inline]
            fn convert(&self, share: f32) -> $k {
                if self.passes(share) { $one } else { $zero }
            }
            #[inline]
            fn indicator(&self) -> Option<Indicator> {
                Some(self.test())
            }
        }
    )*};
}

indicator_conversions!(Threshold =>
    Boolean: Boolean(true), Boolean(false);
    Counting: Counting(1), Counting(0);
    FloatCounting: FloatCounting(1.0), FloatCounting(0.0);
    LogCounting: LogCounting(0.0), LogCounting(f64::NEG_INFINITY);
);
indicator_conversions!(AbsThreshold =>
    Boolean: Boolean(true), Boolean(false);
    Counting: Counting(1), Counting(0);
    FloatCounting: FloatCounting(1.0), FloatCounting(0.0);
    LogCounting: LogCounting(0.0), LogCounting(f64::NEG_INFINITY);
);

/// Θ(d) = min(max(d, 0), 1), into [`Viterbi`] or [`Fuzzy`]: the identity clamped into [0, 1].
///
/// NaN maps to 0.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clamp01;

#[inline]
fn clamp01(d: f32) -> f64 {
    if d > 0.0 { f64::from(d.min(1.0)) } else { 0.0 }
}

impl Conversion<Viterbi> for Clamp01 {
    #[inline]
    fn convert(&self, share: f32) -> Viterbi {
        Viterbi(clamp01(share))
    }
    #[inline]
    fn maps_zero_to_zero(&self) -> bool {
        true
    }
    #[inline]
    fn is_unit_clamp(&self) -> bool {
        true
    }
}

/// One path of strength `clamp(d, 0, 1)`.
impl<const K: usize> Conversion<crate::semiring::KBest<K>> for Clamp01 {
    #[inline]
    fn convert(&self, share: f32) -> crate::semiring::KBest<K> {
        crate::semiring::KBest::single(clamp01(share))
    }
    #[inline]
    fn maps_zero_to_zero(&self) -> bool {
        true
    }
}

impl Conversion<Fuzzy> for Clamp01 {
    #[inline]
    fn convert(&self, share: f32) -> Fuzzy {
        Fuzzy(clamp01(share))
    }
    #[inline]
    fn maps_zero_to_zero(&self) -> bool {
        true
    }
}

/// Θ^(l) per layer: a default for every layer, overridden for chosen layer indices.
///
/// Layer indices are positions in the [`Network`](crate::Network) (graph order from 0, every
/// layer counted, activations and pooling included).
///
/// ```
/// use klrp::conversion::{PerLayer, Threshold};
/// let theta = PerLayer::new(Threshold::new(0.05).unwrap())
///     .with(28, Threshold::new(0.3).unwrap());
/// assert_eq!(theta.at(28).theta(), 0.3);
/// assert_eq!(theta.at(0).theta(), 0.05);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PerLayer<T> {
    default: T,
    overrides: BTreeMap<usize, T>,
}

impl<T> PerLayer<T> {
    /// The same Θ at every layer.
    pub fn new(default: T) -> Self {
        PerLayer {
            default,
            overrides: BTreeMap::new(),
        }
    }

    /// Uses `theta` at layer `index` instead of the default.
    pub fn with(mut self, index: usize, theta: T) -> Self {
        self.overrides.insert(index, theta);
        self
    }

    /// Sets Θ for layer `index`.
    pub fn set(&mut self, index: usize, theta: T) {
        self.overrides.insert(index, theta);
    }

    /// Θ at layer `index`.
    pub fn at(&self, index: usize) -> &T {
        self.overrides.get(&index).unwrap_or(&self.default)
    }

    /// The layer indices with their own Θ.
    pub fn overridden(&self) -> impl Iterator<Item = usize> + '_ {
        self.overrides.keys().copied()
    }
}

impl<T> From<T> for PerLayer<T> {
    fn from(theta: T) -> Self {
        PerLayer::new(theta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_signed_and_inclusive() {
        let t = Threshold::new(0.5).unwrap();
        assert_eq!(Conversion::<Boolean>::convert(&t, 0.5), Boolean(true));
        assert_eq!(Conversion::<Boolean>::convert(&t, -0.9), Boolean(false));
        assert_eq!(Conversion::<Counting>::convert(&t, 0.7), Counting(1));
        assert!(Conversion::<Counting>::maps_zero_to_zero(&t));
        let t0 = Threshold::new(0.0).unwrap();
        assert!(!Conversion::<Boolean>::maps_zero_to_zero(&t0));
    }

    #[test]
    fn abs_threshold_is_strict_on_magnitude() {
        let t = AbsThreshold::new(0.5).unwrap();
        assert_eq!(Conversion::<Boolean>::convert(&t, -0.9), Boolean(true));
        assert_eq!(Conversion::<Boolean>::convert(&t, 0.5), Boolean(false));
        let t0 = AbsThreshold::new(0.0).unwrap();
        assert!(Conversion::<Boolean>::maps_zero_to_zero(&t0));
    }

    #[test]
    fn nan_threshold_is_an_error() {
        assert!(Threshold::new(f32::NAN).is_err());
        assert!(AbsThreshold::new(f32::NAN).is_err());
    }

    #[test]
    fn clamp_and_identity() {
        assert_eq!(Conversion::<Viterbi>::convert(&Clamp01, 1.5), Viterbi(1.0));
        assert_eq!(Conversion::<Viterbi>::convert(&Clamp01, -0.5), Viterbi(0.0));
        assert_eq!(
            Conversion::<Viterbi>::convert(&Clamp01, f32::NAN),
            Viterbi(0.0)
        );
        assert_eq!(
            Conversion::<Real<f32>>::convert(&Identity, -2.5),
            Real(-2.5)
        );
        assert!(Conversion::<Real<f64>>::is_identity(&Identity));
    }
}
