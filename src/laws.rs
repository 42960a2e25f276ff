//! A reusable checker for the semiring laws (feature `laws`).
//!
//! May import: `semiring` (docs/architecture.md, "Layers").
//!
//! [`check_laws`] draws random triples (a, b, c) from a [`proptest`] strategy and checks every
//! [`Law`] a [`Semiring`] promises, including the declared properties kernels rely on
//! ([`ADD_IDEMPOTENT`](Semiring::ADD_IDEMPOTENT), [`MUL_COMMUTATIVE`](Semiring::MUL_COMMUTATIVE),
//! [`top`](Semiring::top)) and the consistency of the in-place operations with ⊕ and ⊗. A failure
//! is shrunk to a small counterexample and returned as a [`LawViolation`] naming the broken law.
//!
//! Runs are deterministic: the random generator has a fixed seed, `PROPTEST_*` environment
//! variables cannot change the number of cases or fork the process, and nothing is written to disk.
//!
//! Floating-point semirings satisfy the laws only up to rounding; compare them with
//! [`approx_eq_f64`] / [`approx_eq_f32`] and the tolerances documented at [`F64_MAX_RELATIVE`] and
//! [`F32_MAX_RELATIVE`]. [`strategies`] has value strategies for every shipped semiring.
//!
//! Strategies are [`proptest`]'s, of the version klrp re-exports as `klrp::proptest`: a crate
//! depending on `klrp` (feature `laws`) alone writes `use klrp::proptest::prelude::*;`.
//!
//! # Example
//! ```
//! use klrp::laws::{self, Law, approx_eq_f64, check_laws, check_laws_exact, strategies};
//! use klrp::semiring::{Semiring, Viterbi};
//! // klrp re-exports the proptest it takes strategies from: no proptest dependency needed.
//! use klrp::proptest::prelude::*;
//!
//! // Exact semirings compare with `==`; floating-point ones up to rounding.
//! check_laws_exact(strategies::counting(), 500).unwrap();
//! let eq = approx_eq_f64(laws::F64_MAX_RELATIVE, laws::F64_EPSILON);
//! check_laws(strategies::viterbi(), |x: &Viterbi, y: &Viterbi| eq(x.0, y.0), 500).unwrap();
//!
//! // (ℕ, max, +) needs a zero below every element (−∞); declaring 0 breaks annihilation.
//! #[derive(Clone, Copy, Debug, PartialEq)]
//! struct MaxPlusNat(u32);
//! impl Semiring for MaxPlusNat {
//!     const NAME: &'static str = "max-plus-nat";
//!     const ADD_IDEMPOTENT: bool = true;
//!     fn zero() -> Self { MaxPlusNat(0) }
//!     fn one() -> Self { MaxPlusNat(0) }
//!     fn add(self, rhs: Self) -> Self { MaxPlusNat(self.0.max(rhs.0)) }
//!     fn mul(self, rhs: Self) -> Self { MaxPlusNat(self.0.saturating_add(rhs.0)) }
//!     fn to_f64(&self) -> f64 { self.0.into() }
//! }
//! let err = check_laws_exact((0u32..1000).prop_map(MaxPlusNat), 500).unwrap_err();
//! assert_eq!(err.law, Law::ZeroAnnihilates);
//! println!("{err}"); // ZeroAnnihilates violated: a ⊗ 0 = 0 ⊗ a = 0 fails for a = MaxPlusNat(1), …
//! ```

use crate::semiring::Semiring;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// One law a [`Semiring`] must satisfy. [`Display`](fmt::Display) gives its formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Law {
    /// `(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)`.
    AddAssociative,
    /// `a ⊕ b = b ⊕ a`.
    AddCommutative,
    /// `a ⊕ 0 = 0 ⊕ a = a`.
    AddIdentity,
    /// `(a ⊗ b) ⊗ c = a ⊗ (b ⊗ c)`.
    MulAssociative,
    /// `a ⊗ 1 = 1 ⊗ a = a`.
    MulIdentity,
    /// `a ⊗ (b ⊕ c) = (a ⊗ b) ⊕ (a ⊗ c)`.
    LeftDistributive,
    /// `(a ⊕ b) ⊗ c = (a ⊗ c) ⊕ (b ⊗ c)`.
    RightDistributive,
    /// `a ⊗ 0 = 0 ⊗ a = 0`.
    ZeroAnnihilates,
    /// `a ⊕ a = a`; checked only if [`Semiring::ADD_IDEMPOTENT`].
    AddIdempotent,
    /// `a ⊗ b = b ⊗ a`; checked only if [`Semiring::MUL_COMMUTATIVE`].
    MulCommutative,
    /// `a ⊕ ⊤ = ⊤ ⊕ a = ⊤`; checked only if [`Semiring::top`] is `Some(⊤)`.
    TopAbsorbs,
    /// `add_assign`, `mul_assign` and `add_mul` agree with ⊕ and ⊗.
    InPlaceConsistent,
    /// `a.is_zero()` exactly when `a == 0` (compared with `==`), and `0.is_zero()`.
    IsZeroConsistent,
    /// `a.is_top()` exactly when `top()` is `Some(⊤)` with `a == ⊤` (compared with `==`).
    IsTopConsistent,
}

impl Law {
    /// Every law, in the order they are checked.
    pub const ALL: [Law; 14] = [
        Law::AddAssociative,
        Law::AddCommutative,
        Law::AddIdentity,
        Law::MulAssociative,
        Law::MulIdentity,
        Law::LeftDistributive,
        Law::RightDistributive,
        Law::ZeroAnnihilates,
        Law::AddIdempotent,
        Law::MulCommutative,
        Law::TopAbsorbs,
        Law::InPlaceConsistent,
        Law::IsZeroConsistent,
        Law::IsTopConsistent,
    ];

    /// The law's formula, e.g. `"(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)"`.
    pub fn formula(self) -> &'static str {
        match self {
            Law::AddAssociative => "(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)",
            Law::AddCommutative => "a ⊕ b = b ⊕ a",
            Law::AddIdentity => "a ⊕ 0 = 0 ⊕ a = a",
            Law::MulAssociative => "(a ⊗ b) ⊗ c = a ⊗ (b ⊗ c)",
            Law::MulIdentity => "a ⊗ 1 = 1 ⊗ a = a",
            Law::LeftDistributive => "a ⊗ (b ⊕ c) = (a ⊗ b) ⊕ (a ⊗ c)",
            Law::RightDistributive => "(a ⊕ b) ⊗ c = (a ⊗ c) ⊕ (b ⊗ c)",
            Law::ZeroAnnihilates => "a ⊗ 0 = 0 ⊗ a = 0",
            Law::AddIdempotent => "a ⊕ a = a",
            Law::MulCommutative => "a ⊗ b = b ⊗ a",
            Law::TopAbsorbs => "a ⊕ ⊤ = ⊤ ⊕ a = ⊤",
            Law::InPlaceConsistent => {
                "a.add_assign(b) = a ⊕ b, a.mul_assign(b) = a ⊗ b, a.add_mul(b, c) = a ⊕ (b ⊗ c)"
            }
            Law::IsZeroConsistent => "a.is_zero() ⇔ a = 0",
            Law::IsTopConsistent => "a.is_top() ⇔ a = ⊤",
        }
    }
}

impl fmt::Display for Law {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.formula())
    }
}

/// A counterexample: the [`Law`] that broke and the values it broke for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LawViolation {
    /// The law that does not hold.
    pub law: Law,
    /// The (shrunk) counterexample `a, b, c` (Debug-printed) and the two sides that differ, or the
    /// panic message if an operation panicked.
    pub values: String,
}

impl fmt::Display for LawViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} violated: {} fails for {}",
            self.law, self.law, self.values
        )
    }
}

impl std::error::Error for LawViolation {}

/// Relative tolerance for comparing `f64` semirings: `1e-12`, with [`F64_EPSILON`].
///
/// Used for [`Real<f64>`](crate::semiring::Real), [`FloatCounting`](crate::semiring::FloatCounting),
/// [`LogCounting`](crate::semiring::LogCounting), [`Viterbi`](crate::semiring::Viterbi),
/// [`Tropical`](crate::semiring::Tropical), [`MaxPlus`](crate::semiring::MaxPlus) and
/// [`Lukasiewicz`](crate::semiring::Lukasiewicz), with values of magnitude at most 100 (see
/// [`strategies`]). Each side of a law takes at most three roundings of relative size
/// u = 2⁻⁵³ ≈ 1.1·10⁻¹⁶:
/// - without cancellation (⊗ associativity, max/min, log-sum-exp) the sides differ by a few u
///   relative, about 10⁻¹⁵ — four orders of magnitude below `1e-12`;
/// - with cancellation (`a·b + a·c` with `b ≈ −c`) the result can be near 0 while the error is a
///   few u times the intermediates (≤ 2·100² = 2·10⁴), i.e. ≤ ~10⁻¹¹ absolute, which
///   [`F64_EPSILON`] = `1e-9` covers with a factor of 100 to spare.
///
/// A broken law errs by the size of the values themselves (a missing term, a wrong identity), many
/// orders of magnitude above both tolerances. Infinities are equal only to themselves, NaN to
/// nothing.
pub const F64_MAX_RELATIVE: f64 = 1e-12;

/// Absolute tolerance for comparing `f64` semirings: `1e-9` (see [`F64_MAX_RELATIVE`]).
pub const F64_EPSILON: f64 = 1e-9;

/// Relative tolerance for comparing `f32` semirings: `1e-5`, with [`F32_EPSILON`].
///
/// Used for [`Real<f32>`](crate::semiring::Real) with values of magnitude at most 10. With
/// u = 2⁻²⁴ ≈ 6·10⁻⁸, uncancelled errors are a few u (≤ 3·10⁻⁷ relative, 30× below `1e-5`);
/// in distributivity the intermediates reach 2·10² and the worst-case absolute difference of the
/// two sides is about 5·10⁻⁵, below [`F32_EPSILON`] = `1e-4`.
pub const F32_MAX_RELATIVE: f32 = 1e-5;

/// Absolute tolerance for comparing `f32` semirings: `1e-4` (see [`F32_MAX_RELATIVE`]).
pub const F32_EPSILON: f32 = 1e-4;

/// `|a − b| ≤ epsilon` or `|a − b| ≤ max_relative · max(|a|, |b|)` ([`approx::relative_eq!`]).
///
/// Equal infinities are equal (`∞ = ∞`, as the zeros of [`Tropical`](crate::semiring::Tropical)
/// and [`LogCounting`](crate::semiring::LogCounting) need); an infinity is never close to a finite
/// number, and NaN is equal to nothing, not even NaN.
///
/// ```
/// use klrp::laws::{approx_eq_f64, F64_EPSILON, F64_MAX_RELATIVE};
/// let eq = approx_eq_f64(F64_MAX_RELATIVE, F64_EPSILON);
/// assert!(eq(0.1 + 0.2, 0.3));
/// assert!(eq(f64::INFINITY, f64::INFINITY) && !eq(f64::INFINITY, 1e308));
/// assert!(!eq(f64::NAN, f64::NAN));
/// ```
pub fn approx_eq_f64(max_relative: f64, epsilon: f64) -> impl Fn(f64, f64) -> bool + Copy {
    move |a, b| approx::relative_eq!(a, b, epsilon = epsilon, max_relative = max_relative)
}

/// [`approx_eq_f64`] for `f32`.
pub fn approx_eq_f32(max_relative: f32, epsilon: f32) -> impl Fn(f32, f32) -> bool + Copy {
    move |a, b| approx::relative_eq!(a, b, epsilon = epsilon, max_relative = max_relative)
}

/// Checks every [`Law`] on `cases` random triples drawn from `strategy`, comparing with `eq`.
///
/// The special elements 0, 1 and ⊤ (when declared) are always mixed into the drawn values (a
/// quarter of them), so a wrong `zero()`, `one()` or `top()` is found even if `strategy` never
/// produces it.
///
/// `eq` decides when two elements count as equal (for floats, up to rounding: see
/// [`approx_eq_f64`]); [`Law::IsZeroConsistent`] and [`Law::IsTopConsistent`] use `==`, as
/// `is_zero` and `is_top` do. The laws are checked in the order of [`Law::ALL`]; the first one
/// that fails on the shrunk counterexample is reported. The run is deterministic (fixed seed,
/// no files written).
///
/// # Errors
/// A [`LawViolation`] with the law and the shrunk counterexample. If an operation panics, the
/// violation names the law being checked and carries the panic message.
///
/// # Panics
/// If `strategy` cannot generate values (it rejects too many, see proptest's `prop_filter`).
pub fn check_laws<K, S>(
    strategy: S,
    eq: impl Fn(&K, &K) -> bool,
    cases: u32,
) -> Result<(), LawViolation>
where
    K: Semiring,
    S: Strategy<Value = K>,
{
    const SEED: [u8; 32] = *b"klrp semiring law checker seed!!";
    // Spelled out so that PROPTEST_* variables (read by `Config::default`) cannot change the run.
    let config = Config {
        cases,
        failure_persistence: None,
        source_file: None,
        test_name: None,
        fork: false,
        timeout: 0,
        max_shrink_time: 0,
        max_shrink_iters: u32::MAX,
        verbose: 0,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let current = Cell::new(Law::AddAssociative);
    let triples = proptest::array::uniform3(with_special_values(strategy));
    let result = runner.run(&triples, |[a, b, c]| {
        check_triple(a, b, c, &eq, &current).map_err(|v| TestCaseError::fail(v.to_string()))
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, [a, b, c])) => {
            // Replay the shrunk case to learn which law broke (a panic is caught by the runner).
            match panic::catch_unwind(AssertUnwindSafe(|| check_triple(a, b, c, &eq, &current))) {
                Ok(Err(violation)) => Err(violation),
                Ok(Ok(())) => Err(LawViolation {
                    law: current.get(),
                    values: format!(
                        "{}: failed ({reason}) but passed when replayed; is eq deterministic?",
                        abc(&a, &b, &c)
                    ),
                }),
                Err(_) => Err(LawViolation {
                    law: current.get(),
                    values: format!("{}: panicked: {reason}", abc(&a, &b, &c)),
                }),
            }
        }
        Err(TestError::Abort(reason)) => {
            panic!("check_laws: the strategy cannot generate values: {reason}")
        }
    }
}

/// `strategy` with 0, 1 and ⊤ (when [`Semiring::top`] declares one) mixed in: a quarter of the
/// drawn values is one of them. Kernels rely on these elements (skipping zeros, stopping at ⊤), so
/// the laws are always checked on them, whatever the user's strategy draws.
fn with_special_values<K: Semiring, S: Strategy<Value = K>>(
    strategy: S,
) -> impl Strategy<Value = K> {
    let special: Vec<K> = [Some(K::zero()), Some(K::one()), K::top()]
        .into_iter()
        .flatten()
        .collect();
    proptest::prop_oneof![
        1 => proptest::sample::select(special),
        3 => strategy,
    ]
}

/// [`check_laws`] comparing with `==`, for semirings whose laws hold exactly.
///
/// # Errors
/// As [`check_laws`].
///
/// # Panics
/// As [`check_laws`].
pub fn check_laws_exact<K, S>(strategy: S, cases: u32) -> Result<(), LawViolation>
where
    K: Semiring,
    S: Strategy<Value = K>,
{
    check_laws(strategy, |x: &K, y: &K| x == y, cases)
}

/// Checks every [`Law`] on the one triple (a, b, c), in the order of [`Law::ALL`].
///
/// Useful for pinning down edge cases (`+∞`, saturated counts) in unit tests.
///
/// # Errors
/// The first law that fails, with the two sides that differ.
///
/// # Panics
/// If an operation of `K` panics (unlike [`check_laws`], which reports it as a violation).
///
/// ```
/// use klrp::laws::check_laws_at;
/// use klrp::semiring::{Semiring, Tropical};
/// let (inf, top) = (Tropical::zero(), Tropical::top().unwrap());
/// check_laws_at(inf, top, Tropical(2.5), |x: &Tropical, y: &Tropical| x == y).unwrap();
/// ```
pub fn check_laws_at<K: Semiring>(
    a: K,
    b: K,
    c: K,
    eq: impl Fn(&K, &K) -> bool,
) -> Result<(), LawViolation> {
    check_triple(a, b, c, &eq, &Cell::new(Law::AddAssociative))
}

fn abc<K: Semiring>(a: &K, b: &K, c: &K) -> String {
    format!("a = {a:?}, b = {b:?}, c = {c:?}")
}

/// One side-by-side comparison: (left expression, left value, right expression, right value).
type Sides<K> = (&'static str, K, &'static str, K);

/// Checks all laws on (a, b, c); `current` tracks the law being evaluated, so that a panic can be
/// attributed to it.
fn check_triple<K: Semiring>(
    a: K,
    b: K,
    c: K,
    eq: &impl Fn(&K, &K) -> bool,
    current: &Cell<Law>,
) -> Result<(), LawViolation> {
    let (zero, one) = (K::zero(), K::one());
    let fail = |law: Law, detail: String| LawViolation {
        law,
        values: format!("{}: {detail}", abc(&a, &b, &c)),
    };
    let check = |law: Law, sides: &dyn Fn() -> Vec<Sides<K>>| -> Result<(), LawViolation> {
        current.set(law);
        for (left_expr, left, right_expr, right) in sides() {
            if !eq(&left, &right) {
                return Err(fail(
                    law,
                    format!("{left_expr} = {left:?} but {right_expr} = {right:?}"),
                ));
            }
        }
        Ok(())
    };

    check(Law::AddAssociative, &|| {
        vec![(
            "(a ⊕ b) ⊕ c",
            a.add(b).add(c),
            "a ⊕ (b ⊕ c)",
            a.add(b.add(c)),
        )]
    })?;
    check(Law::AddCommutative, &|| {
        vec![("a ⊕ b", a.add(b), "b ⊕ a", b.add(a))]
    })?;
    check(Law::AddIdentity, &|| {
        vec![
            ("a ⊕ 0", a.add(zero), "a", a),
            ("0 ⊕ a", zero.add(a), "a", a),
        ]
    })?;
    check(Law::MulAssociative, &|| {
        vec![(
            "(a ⊗ b) ⊗ c",
            a.mul(b).mul(c),
            "a ⊗ (b ⊗ c)",
            a.mul(b.mul(c)),
        )]
    })?;
    check(Law::MulIdentity, &|| {
        vec![("a ⊗ 1", a.mul(one), "a", a), ("1 ⊗ a", one.mul(a), "a", a)]
    })?;
    check(Law::LeftDistributive, &|| {
        vec![(
            "a ⊗ (b ⊕ c)",
            a.mul(b.add(c)),
            "(a ⊗ b) ⊕ (a ⊗ c)",
            a.mul(b).add(a.mul(c)),
        )]
    })?;
    check(Law::RightDistributive, &|| {
        vec![(
            "(a ⊕ b) ⊗ c",
            a.add(b).mul(c),
            "(a ⊗ c) ⊕ (b ⊗ c)",
            a.mul(c).add(b.mul(c)),
        )]
    })?;
    check(Law::ZeroAnnihilates, &|| {
        vec![
            ("a ⊗ 0", a.mul(zero), "0", zero),
            ("0 ⊗ a", zero.mul(a), "0", zero),
        ]
    })?;
    if K::ADD_IDEMPOTENT {
        check(Law::AddIdempotent, &|| vec![("a ⊕ a", a.add(a), "a", a)])?;
    }
    if K::MUL_COMMUTATIVE {
        check(Law::MulCommutative, &|| {
            vec![("a ⊗ b", a.mul(b), "b ⊗ a", b.mul(a))]
        })?;
    }
    current.set(Law::TopAbsorbs);
    let top = K::top();
    if let Some(top) = top {
        check(Law::TopAbsorbs, &|| {
            vec![
                ("a ⊕ ⊤", a.add(top), "⊤", top),
                ("⊤ ⊕ a", top.add(a), "⊤", top),
            ]
        })?;
    }
    check(Law::InPlaceConsistent, &|| {
        let (mut added, mut multiplied, mut accumulated) = (a, a, a);
        added.add_assign(b);
        multiplied.mul_assign(b);
        accumulated.add_mul(b, c);
        vec![
            ("a.add_assign(b)", added, "a ⊕ b", a.add(b)),
            ("a.mul_assign(b)", multiplied, "a ⊗ b", a.mul(b)),
            (
                "a.add_mul(b, c)",
                accumulated,
                "a ⊕ (b ⊗ c)",
                a.add(b.mul(c)),
            ),
        ]
    })?;

    current.set(Law::IsZeroConsistent);
    for (name, x) in [("0", zero), ("a", a), ("b", b), ("c", c)] {
        let (claimed, actual) = (x.is_zero(), x == zero);
        if claimed != actual {
            let detail =
                format!("{name}.is_zero() = {claimed} but {name} == 0 is {actual} (0 = {zero:?})");
            return Err(fail(Law::IsZeroConsistent, detail));
        }
    }
    current.set(Law::IsTopConsistent);
    for (name, x) in [("a", a), ("b", b), ("c", c)]
        .into_iter()
        .chain(top.map(|t| ("⊤", t)))
    {
        let (claimed, actual) = (x.is_top(), top == Some(x));
        if claimed != actual {
            let detail = format!("{name}.is_top() = {claimed} but top() = {top:?}");
            return Err(fail(Law::IsTopConsistent, detail));
        }
    }
    Ok(())
}

/// Value strategies for the shipped semirings.
///
/// Each mixes the special elements (0, 1, ⊤, the overflow value) with integers, which make ties
/// and exact arithmetic likely, and arbitrary values in the range the tolerances at
/// [`F64_MAX_RELATIVE`] and [`F32_MAX_RELATIVE`] were derived for.
pub mod strategies {
    use crate::semiring::{
        Boolean, Counting, FloatCounting, Fuzzy, KBest, LogCounting, Lukasiewicz, MaxPlus, Product,
        Real, Semiring, Tropical, Viterbi,
    };
    use proptest::prelude::*;

    /// ⊥ and ⊤.
    pub fn boolean() -> impl Strategy<Value = Boolean> + Clone {
        any::<bool>().prop_map(Boolean)
    }

    /// Small counts (exact arithmetic), counts around 2³² (products cross 2⁶⁴), counts just below
    /// `u64::MAX` (sums saturate), `u64::MAX` itself, and any `u64`.
    pub fn counting() -> impl Strategy<Value = Counting> + Clone {
        prop_oneof![
            3 => 0u64..=16,
            2 => (1u64 << 31)..=(1u64 << 33),
            1 => (u64::MAX - 16)..=u64::MAX,
            1 => Just(u64::MAX),
            1 => any::<u64>(),
        ]
        .prop_map(Counting)
    }

    /// 0, 1, +∞ (the overflow value), integers in [0, 1000] and reals in [0, 100].
    pub fn float_counting() -> impl Strategy<Value = FloatCounting> + Clone {
        prop_oneof![
            1 => Just(0.0),
            1 => Just(1.0),
            1 => Just(f64::INFINITY),
            2 => (0u32..=1000).prop_map(f64::from),
            3 => 0.0..=100.0,
        ]
        .prop_map(FloatCounting)
    }

    /// −∞ (the zero), 0 (the one), +∞ (the overflow value), integers in [−100, 100] (so that ties
    /// `x ⊕ x` occur) and reals in [−100, 100].
    pub fn log_counting() -> impl Strategy<Value = LogCounting> + Clone {
        signed_with_infinities(f64::NEG_INFINITY, f64::INFINITY).prop_map(LogCounting)
    }

    /// +∞ (the zero), −∞ (⊤), 0 (the one), integers and reals in [−100, 100].
    pub fn tropical() -> impl Strategy<Value = Tropical> + Clone {
        signed_with_infinities(f64::INFINITY, f64::NEG_INFINITY).prop_map(Tropical)
    }

    /// −∞ (the zero), +∞ (⊤), 0 (the one), integers and reals in [−100, 100].
    pub fn max_plus() -> impl Strategy<Value = MaxPlus> + Clone {
        signed_with_infinities(f64::NEG_INFINITY, f64::INFINITY).prop_map(MaxPlus)
    }

    /// 0 and 1 exactly, eighths (exact sums and products, ties) and reals in [0, 1].
    pub fn viterbi() -> impl Strategy<Value = Viterbi> + Clone {
        unit_interval().prop_map(Viterbi)
    }

    /// Lists of up to `K + 1` strengths drawn like [`viterbi`]'s (0, 1, eighths for ties, reals in
    /// [0, 1]), the `K` largest kept: the empty list (the zero), one path of strength 1 (the
    /// one), duplicates and full lists.
    pub fn kbest<const K: usize>() -> impl Strategy<Value = KBest<K>> + Clone {
        prop::collection::vec(unit_interval(), 0..=K + 1).prop_map(KBest::from_values)
    }

    /// As [`viterbi`].
    pub fn fuzzy() -> impl Strategy<Value = Fuzzy> + Clone {
        unit_interval().prop_map(Fuzzy)
    }

    /// As [`viterbi`]; eighths also make `a + b − 1` land exactly on 0.
    pub fn lukasiewicz() -> impl Strategy<Value = Lukasiewicz> + Clone {
        unit_interval().prop_map(Lukasiewicz)
    }

    /// 0, ±1, integers and reals in [−100, 100]. Finite only: IEEE `∞ · 0 = NaN`, so `Real` is a
    /// semiring only on finite values.
    pub fn real_f64() -> impl Strategy<Value = Real<f64>> + Clone {
        prop_oneof![
            1 => Just(0.0),
            1 => Just(1.0),
            1 => Just(-1.0),
            2 => (-100i32..=100).prop_map(f64::from),
            4 => -100.0..=100.0,
        ]
        .prop_map(Real)
    }

    /// 0, ±1, integers and reals in [−10, 10]; finite only, as [`real_f64`].
    pub fn real_f32() -> impl Strategy<Value = Real<f32>> + Clone {
        prop_oneof![
            1 => Just(0.0f32),
            1 => Just(1.0f32),
            1 => Just(-1.0f32),
            2 => (-10i8..=10).prop_map(f32::from),
            4 => -10.0f32..=10.0,
        ]
        .prop_map(Real)
    }

    /// Pairs of independently drawn components.
    pub fn product<A: Semiring, B: Semiring>(
        a: impl Strategy<Value = A> + Clone,
        b: impl Strategy<Value = B> + Clone,
    ) -> impl Strategy<Value = Product<A, B>> + Clone {
        (a, b).prop_map(|(a, b)| Product(a, b))
    }

    fn signed_with_infinities(zero: f64, top: f64) -> impl Strategy<Value = f64> + Clone {
        prop_oneof![
            1 => Just(zero),
            1 => Just(top),
            1 => Just(0.0),
            2 => (-100i32..=100).prop_map(f64::from),
            4 => -100.0..=100.0,
        ]
    }

    fn unit_interval() -> impl Strategy<Value = f64> + Clone {
        prop_oneof![
            1 => Just(0.0),
            1 => Just(1.0),
            2 => (0u8..=8).prop_map(|k| f64::from(k) / 8.0),
            4 => 0.0..=1.0,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `([0, ∞), max, ×)` declaring ⊤ = +∞: ∞ absorbs under max, but ∞ ⊗ 0 = NaN, so ∞ is not a
    /// lawful element and kernels that stop at ⊤ would be wrong.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct MaxTimes(f64);
    impl Semiring for MaxTimes {
        const NAME: &'static str = "max-times-with-infinite-top";
        const ADD_IDEMPOTENT: bool = true;
        fn zero() -> Self {
            MaxTimes(0.0)
        }
        fn one() -> Self {
            MaxTimes(1.0)
        }
        fn add(self, rhs: Self) -> Self {
            MaxTimes(self.0.max(rhs.0))
        }
        fn mul(self, rhs: Self) -> Self {
            MaxTimes(self.0 * rhs.0)
        }
        fn top() -> Option<Self> {
            Some(MaxTimes(f64::INFINITY))
        }
        fn to_f64(&self) -> f64 {
            self.0
        }
    }

    #[test]
    fn a_wrong_top_is_caught_even_if_the_strategy_never_draws_it() {
        let eq = |x: &MaxTimes, y: &MaxTimes| x.0 == y.0;
        // Every law holds on values the strategy draws (integers in [0, 100]: exact products) …
        let drawn = [MaxTimes(0.0), MaxTimes(2.5), MaxTimes(100.0)];
        for a in drawn {
            for b in drawn {
                check_laws_at(a, b, MaxTimes(1.0), eq).unwrap();
            }
        }
        // … but ⊤ = ∞ is mixed in, and ∞ ⊗ 0 = NaN breaks a law (the first checked that
        // multiplies ∞ by 0: associativity, since NaN ≠ NaN).
        let drawn = (0u32..=100).prop_map(|i| MaxTimes(f64::from(i)));
        let err = check_laws(drawn, eq, 200).unwrap_err();
        assert!(err.values.contains("inf"), "{err}");
        assert!(
            matches!(err.law, Law::MulAssociative | Law::ZeroAnnihilates),
            "{err}"
        );
    }
    /// The doc examples compile in a user's crate, which depends on `klrp` but not on `proptest`:
    /// they name proptest through the re-export `klrp::proptest` (klrp's own doctests would
    /// compile either way, proptest being a dev-dependency).
    #[test]
    fn doc_examples_use_the_proptest_re_export() {
        for (file, text) in [
            ("laws.rs", include_str!("laws.rs")),
            ("lib.rs", include_str!("lib.rs")),
        ] {
            for (i, line) in text.lines().enumerate() {
                let doc = line.trim_start();
                if !(doc.starts_with("//!") || doc.starts_with("///")) {
                    continue;
                }
                let code = doc[3..].trim_start();
                let bare = code
                    .match_indices("proptest::")
                    .any(|(at, _)| !code[..at].ends_with("klrp::"));
                assert!(
                    !bare,
                    "{file}:{}: a doc example names `proptest::` directly: {line}",
                    i + 1
                );
            }
        }
    }
}
