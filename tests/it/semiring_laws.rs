#![cfg(feature = "laws")]
//! Every shipped semiring satisfies the semiring laws, and the checker catches broken ones.

use klrp::laws::{
    self, F32_EPSILON, F32_MAX_RELATIVE, F64_EPSILON, F64_MAX_RELATIVE, Law, LawViolation,
    approx_eq_f32, approx_eq_f64, check_laws, check_laws_at, check_laws_exact, strategies,
};
use klrp::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, KBest, LogCounting, Lukasiewicz, MaxPlus, Product,
    Real, Semiring, Tropical, Viterbi,
};
use proptest::prelude::*;

/// Random triples per semiring.
const CASES: u32 = 10_000;

fn f64_eq(a: f64, b: f64) -> bool {
    approx_eq_f64(F64_MAX_RELATIVE, F64_EPSILON)(a, b)
}

fn f32_eq(a: f32, b: f32) -> bool {
    approx_eq_f32(F32_MAX_RELATIVE, F32_EPSILON)(a, b)
}

/// Unwraps with the violation's Display, so a failure reads as the law and its counterexample.
fn pass(result: Result<(), LawViolation>) {
    if let Err(v) = result {
        panic!("{v}");
    }
}

// ---------------------------------------------------------------- shipped semirings pass

#[test]
fn boolean() {
    pass(check_laws_exact(strategies::boolean(), CASES));
}

#[test]
fn counting() {
    pass(check_laws_exact(strategies::counting(), CASES));
}

#[test]
fn float_counting() {
    pass(check_laws(
        strategies::float_counting(),
        |x: &FloatCounting, y: &FloatCounting| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn log_counting() {
    pass(check_laws(
        strategies::log_counting(),
        |x: &LogCounting, y: &LogCounting| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn viterbi() {
    pass(check_laws(
        strategies::viterbi(),
        |x: &Viterbi, y: &Viterbi| f64_eq(x.0, y.0),
        CASES,
    ));
}

fn kbest_eq<const K: usize>(x: &KBest<K>, y: &KBest<K>) -> bool {
    x.values()
        .iter()
        .zip(y.values())
        .all(|(&a, &b)| f64_eq(a, b))
}

#[test]
fn kbest() {
    pass(check_laws(strategies::kbest::<1>(), kbest_eq, CASES));
    pass(check_laws(strategies::kbest::<3>(), kbest_eq, CASES));
    pass(check_laws(strategies::kbest::<8>(), kbest_eq, CASES / 4));
}

#[test]
fn kbest_is_a_multiset_not_idempotent() {
    // (0.5) ⊕ (0.5) holds two paths of strength 0.5: declaring ⊕ idempotent would be wrong.
    let a = KBest::<2>::single(0.5);
    assert_eq!(a.add(a).values(), &[0.5, 0.5]);
    const { assert!(!KBest::<2>::ADD_IDEMPOTENT) };
    // A broken k-best ⊗ (only the best product) is caught by the checker.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct FirstOnly(KBest<2>);
    impl Semiring for FirstOnly {
        const NAME: &'static str = "first-only";
        fn zero() -> Self {
            FirstOnly(KBest::zero())
        }
        fn one() -> Self {
            FirstOnly(KBest::one())
        }
        fn add(self, rhs: Self) -> Self {
            FirstOnly(self.0.add(rhs.0))
        }
        fn mul(self, rhs: Self) -> Self {
            FirstOnly(KBest::single(self.0.best() * rhs.0.best()))
        }
        fn to_f64(&self) -> f64 {
            self.0.best()
        }
    }
    let err = check_laws(
        strategies::kbest::<2>().prop_map(FirstOnly),
        |x: &FirstOnly, y: &FirstOnly| kbest_eq(&x.0, &y.0),
        2000,
    )
    .unwrap_err();
    assert!(
        matches!(
            err.law,
            Law::MulIdentity | Law::LeftDistributive | Law::RightDistributive
        ),
        "{err}"
    );
}

#[test]
fn tropical() {
    pass(check_laws(
        strategies::tropical(),
        |x: &Tropical, y: &Tropical| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn max_plus() {
    pass(check_laws(
        strategies::max_plus(),
        |x: &MaxPlus, y: &MaxPlus| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn fuzzy() {
    // max and min never round: exact.
    pass(check_laws_exact(strategies::fuzzy(), CASES));
}

#[test]
fn lukasiewicz() {
    pass(check_laws(
        strategies::lukasiewicz(),
        |x: &Lukasiewicz, y: &Lukasiewicz| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn real_f64() {
    pass(check_laws(
        strategies::real_f64(),
        |x: &Real<f64>, y: &Real<f64>| f64_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn real_f32() {
    pass(check_laws(
        strategies::real_f32(),
        |x: &Real<f32>, y: &Real<f32>| f32_eq(x.0, y.0),
        CASES,
    ));
}

#[test]
fn product_boolean_counting() {
    let s = strategies::product(strategies::boolean(), strategies::counting());
    pass(check_laws_exact(s, CASES));
}

#[test]
fn product_real_viterbi() {
    let s = strategies::product(strategies::real_f64(), strategies::viterbi());
    let eq = |x: &Product<Real<f64>, Viterbi>, y: &Product<Real<f64>, Viterbi>| {
        f64_eq(x.0.0, y.0.0) && f64_eq(x.1.0, y.1.0)
    };
    pass(check_laws(s, eq, CASES));
}

#[test]
fn product_of_idempotent_semirings_has_a_top() {
    // Product<Viterbi, Fuzzy> declares ADD_IDEMPOTENT and top = (1, 1): both are checked.
    let s = strategies::product(strategies::viterbi(), strategies::fuzzy());
    let eq = |x: &Product<Viterbi, Fuzzy>, y: &Product<Viterbi, Fuzzy>| {
        f64_eq(x.0.0, y.0.0) && x.1 == y.1
    };
    pass(check_laws(s, eq, CASES));
}

#[test]
fn floats_are_not_exact() {
    // The tolerances are needed: exact comparison finds rounding in ⊗ associativity.
    let err = check_laws_exact(strategies::real_f64(), CASES).unwrap_err();
    assert!(
        matches!(
            err.law,
            Law::AddAssociative
                | Law::MulAssociative
                | Law::LeftDistributive
                | Law::RightDistributive
        ),
        "{err}"
    );
}

#[test]
fn edge_triples() {
    let inf = f64::INFINITY;
    let exact_t = |x: &Tropical, y: &Tropical| x == y;
    for (a, b, c) in [(inf, -inf, 0.0), (-inf, -inf, inf), (inf, inf, 3.0)] {
        pass(check_laws_at(
            Tropical(a),
            Tropical(b),
            Tropical(c),
            exact_t,
        ));
        pass(check_laws_at(
            MaxPlus(-a),
            MaxPlus(-b),
            MaxPlus(-c),
            |x: &MaxPlus, y: &MaxPlus| x == y,
        ));
        pass(check_laws_at(
            LogCounting(-a),
            LogCounting(-b),
            LogCounting(-c),
            |x: &LogCounting, y: &LogCounting| x == y,
        ));
    }
    let max = Counting(u64::MAX);
    pass(check_laws_at(
        max,
        Counting(0),
        Counting(2),
        |x: &Counting, y: &Counting| x == y,
    ));
    let fc = |x: &FloatCounting, y: &FloatCounting| x == y;
    pass(check_laws_at(
        FloatCounting(inf),
        FloatCounting(0.0),
        FloatCounting(2.0),
        fc,
    ));
}

#[test]
fn tolerances() {
    assert!(f64_eq(f64::INFINITY, f64::INFINITY));
    assert!(f64_eq(f64::NEG_INFINITY, f64::NEG_INFINITY));
    assert!(!f64_eq(f64::INFINITY, f64::NEG_INFINITY));
    assert!(!f64_eq(f64::INFINITY, f64::MAX));
    assert!(!f64_eq(f64::NAN, f64::NAN));
    assert!(!f64_eq(f64::NAN, 0.0));
    assert!(f64_eq(0.0, -0.0));
    assert!(f64_eq(1e6, 1e6 * (1.0 + 1e-13)));
    assert!(!f64_eq(1e6, 1e6 * (1.0 + 1e-11)));
    assert!(f64_eq(1e-10, 0.0));
    assert!(!f64_eq(1e-8, 0.0));
    assert!(f32_eq(f32::INFINITY, f32::INFINITY));
    assert!(!f32_eq(f32::NAN, f32::NAN));
    assert!(f32_eq(100.0, 100.0005));
    assert!(!f32_eq(100.0, 100.01));
}

// ---------------------------------------------------------------- broken semirings fail

/// (ℝ, max, +) declared with 0 as its zero; the right zero is −∞. Values are integers, so the
/// arithmetic is exact and only the zero is wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MaxPlusWrongZero(f64);

impl Semiring for MaxPlusWrongZero {
    const NAME: &'static str = "max-plus-wrong-zero";
    const ADD_IDEMPOTENT: bool = true;
    fn zero() -> Self {
        MaxPlusWrongZero(0.0)
    }
    fn one() -> Self {
        MaxPlusWrongZero(0.0)
    }
    fn add(self, rhs: Self) -> Self {
        MaxPlusWrongZero(self.0.max(rhs.0))
    }
    fn mul(self, rhs: Self) -> Self {
        MaxPlusWrongZero(self.0 + rhs.0)
    }
    fn to_f64(&self) -> f64 {
        self.0
    }
}

fn max_plus_wrong_zero(
    range: std::ops::RangeInclusive<i32>,
) -> impl Strategy<Value = MaxPlusWrongZero> {
    range.prop_map(|v| MaxPlusWrongZero(f64::from(v)))
}

#[test]
fn wrong_zero_fails_identity_or_annihilation() {
    // a < 0: max(a, 0) = 0 ≠ a, caught first by AddIdentity.
    let err = check_laws_exact(max_plus_wrong_zero(-1000..=-1), CASES).unwrap_err();
    assert_eq!(err.law, Law::AddIdentity, "{err}");
    assert!(err.values.contains("a ⊕ 0"), "{err}");
    // a > 0: 0 is still max's identity, but a + 0 = a ≠ 0: ZeroAnnihilates.
    let err = check_laws_exact(max_plus_wrong_zero(1..=1000), CASES).unwrap_err();
    assert_eq!(err.law, Law::ZeroAnnihilates, "{err}");
    // Shrinking takes the counterexample down to the smallest positive a.
    assert!(err.values.starts_with("a = MaxPlusWrongZero(1.0)"), "{err}");
    // Both signs: one of the two, depending on which sign shrinking ends on.
    let err = check_laws_exact(max_plus_wrong_zero(-1000..=1000), CASES).unwrap_err();
    assert!(
        matches!(err.law, Law::AddIdentity | Law::ZeroAnnihilates),
        "{err}"
    );
}

/// (ℕ, +, ⊗) with `a ⊗ b = a + b + ab = (1 + a)(1 + b) − 1`: an associative, commutative ⊗ with
/// identity 0, which does not distribute over +: `a ⊗ (b + c) − (a ⊗ b + a ⊗ c) = −a`.
/// (Declaring one = zero = 0 keeps every law before distributivity true.)
#[derive(Clone, Copy, Debug, PartialEq)]
struct NonDistributive(u64);

impl Semiring for NonDistributive {
    const NAME: &'static str = "non-distributive";
    fn zero() -> Self {
        NonDistributive(0)
    }
    fn one() -> Self {
        NonDistributive(0)
    }
    fn add(self, rhs: Self) -> Self {
        NonDistributive(self.0 + rhs.0)
    }
    fn mul(self, rhs: Self) -> Self {
        NonDistributive(self.0 + rhs.0 + self.0 * rhs.0)
    }
    fn to_f64(&self) -> f64 {
        self.0 as f64
    }
}

#[test]
fn non_distributive_mul_fails_left_distributivity() {
    // Drawn values (0 and 1 are always mixed in) break a distributive law.
    let err = check_laws_exact((1u64..=100).prop_map(NonDistributive), CASES).unwrap_err();
    assert!(
        matches!(
            err.law,
            Law::MulIdentity | Law::LeftDistributive | Law::RightDistributive
        ),
        "{err}"
    );
    // With a ≥ 1 every triple breaks left distributivity, the first law that fails.
    let err = check_laws_at(
        NonDistributive(1),
        NonDistributive(1),
        NonDistributive(1),
        |x, y| x == y,
    )
    .unwrap_err();
    assert_eq!(err.law, Law::LeftDistributive, "{err}");
    assert_eq!(
        err.values,
        "a = NonDistributive(1), b = NonDistributive(1), c = NonDistributive(1): \
         a ⊗ (b ⊕ c) = NonDistributive(5) but (a ⊗ b) ⊕ (a ⊗ c) = NonDistributive(6)"
    );
    // With a = 0 allowed, (0, b, c ≥ 1) break only right distributivity.
    let err = check_laws_at(
        NonDistributive(0),
        NonDistributive(1),
        NonDistributive(1),
        |x, y| x == y,
    )
    .unwrap_err();
    assert_eq!(err.law, Law::RightDistributive, "{err}");
}

/// Counting, but claiming ⊕ is idempotent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FalselyIdempotent(Counting);

impl Semiring for FalselyIdempotent {
    const NAME: &'static str = "falsely-idempotent";
    const ADD_IDEMPOTENT: bool = true;
    fn zero() -> Self {
        FalselyIdempotent(Counting::zero())
    }
    fn one() -> Self {
        FalselyIdempotent(Counting::one())
    }
    fn add(self, rhs: Self) -> Self {
        FalselyIdempotent(self.0.add(rhs.0))
    }
    fn mul(self, rhs: Self) -> Self {
        FalselyIdempotent(self.0.mul(rhs.0))
    }
    fn to_f64(&self) -> f64 {
        self.0.to_f64()
    }
}

#[test]
fn false_idempotence_fails_add_idempotent() {
    let s = strategies::counting().prop_map(FalselyIdempotent);
    let err = check_laws_exact(s, CASES).unwrap_err();
    assert_eq!(err.law, Law::AddIdempotent, "{err}");
    assert!(
        err.values.contains(
            "a ⊕ a = FalselyIdempotent(Counting(2)) but a = FalselyIdempotent(Counting(1))"
        ),
        "{err}"
    );
}

/// Tropical (min, +), but with ⊤ = +∞ (the zero) instead of −∞: min absorbs −∞, not +∞.
#[derive(Clone, Copy, Debug, PartialEq)]
struct WrongTop(Tropical);

impl Semiring for WrongTop {
    const NAME: &'static str = "wrong-top";
    const ADD_IDEMPOTENT: bool = true;
    fn zero() -> Self {
        WrongTop(Tropical::zero())
    }
    fn one() -> Self {
        WrongTop(Tropical::one())
    }
    fn add(self, rhs: Self) -> Self {
        WrongTop(self.0.add(rhs.0))
    }
    fn mul(self, rhs: Self) -> Self {
        WrongTop(self.0.mul(rhs.0))
    }
    fn top() -> Option<Self> {
        Some(WrongTop(Tropical(f64::INFINITY)))
    }
    fn to_f64(&self) -> f64 {
        self.0.to_f64()
    }
}

#[test]
fn false_top_fails_top_absorbs() {
    let s = strategies::tropical().prop_map(WrongTop);
    let err = check_laws(s, |x: &WrongTop, y: &WrongTop| f64_eq(x.0.0, y.0.0), CASES).unwrap_err();
    assert_eq!(err.law, Law::TopAbsorbs, "{err}");
    assert!(err.values.contains("a ⊕ ⊤"), "{err}");
}

/// 2×2 Boolean matrices: a semiring whose ⊗ is not commutative. `C` is the declared
/// MUL_COMMUTATIVE.
#[derive(Clone, Copy, Debug, PartialEq)]
struct BoolMatrix<const C: bool>([[bool; 2]; 2]);

impl<const C: bool> Semiring for BoolMatrix<C> {
    const NAME: &'static str = "bool-matrix";
    const ADD_IDEMPOTENT: bool = true;
    const MUL_COMMUTATIVE: bool = C;
    fn zero() -> Self {
        BoolMatrix([[false; 2]; 2])
    }
    fn one() -> Self {
        BoolMatrix([[true, false], [false, true]])
    }
    fn add(self, rhs: Self) -> Self {
        BoolMatrix(std::array::from_fn(|i| {
            std::array::from_fn(|j| self.0[i][j] | rhs.0[i][j])
        }))
    }
    fn mul(self, rhs: Self) -> Self {
        BoolMatrix(std::array::from_fn(|i| {
            std::array::from_fn(|j| (0..2).any(|k| self.0[i][k] & rhs.0[k][j]))
        }))
    }
    fn top() -> Option<Self> {
        Some(BoolMatrix([[true; 2]; 2]))
    }
    fn to_f64(&self) -> f64 {
        self.0.iter().flatten().filter(|&&x| x).count() as f64
    }
}

fn bool_matrix<const C: bool>() -> impl Strategy<Value = BoolMatrix<C>> {
    any::<[[bool; 2]; 2]>().prop_map(BoolMatrix)
}

#[test]
fn non_commutative_semiring_passes_when_declared_so() {
    pass(check_laws_exact(bool_matrix::<false>(), CASES));
}

#[test]
fn false_commutativity_fails_mul_commutative() {
    let err = check_laws_exact(bool_matrix::<true>(), CASES).unwrap_err();
    assert_eq!(err.law, Law::MulCommutative, "{err}");
}

/// Real, with an `add_mul` that forgets to accumulate.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ForgetfulAddMul(i64);

impl Semiring for ForgetfulAddMul {
    const NAME: &'static str = "forgetful";
    fn zero() -> Self {
        ForgetfulAddMul(0)
    }
    fn one() -> Self {
        ForgetfulAddMul(1)
    }
    fn add(self, rhs: Self) -> Self {
        ForgetfulAddMul(self.0 + rhs.0)
    }
    fn mul(self, rhs: Self) -> Self {
        ForgetfulAddMul(self.0 * rhs.0)
    }
    fn add_mul(&mut self, a: Self, b: Self) {
        *self = a.mul(b);
    }
    fn to_f64(&self) -> f64 {
        self.0 as f64
    }
}

#[test]
fn bad_add_mul_fails_in_place_consistent() {
    let err = check_laws_exact((-100i64..=100).prop_map(ForgetfulAddMul), CASES).unwrap_err();
    assert_eq!(err.law, Law::InPlaceConsistent, "{err}");
    assert!(err.values.contains("a.add_mul(b, c)"), "{err}");
}

/// Boolean, with an `is_zero` that is always false.
#[derive(Clone, Copy, Debug, PartialEq)]
struct NeverZero(Boolean);

impl Semiring for NeverZero {
    const NAME: &'static str = "never-zero";
    const ADD_IDEMPOTENT: bool = true;
    fn zero() -> Self {
        NeverZero(Boolean::zero())
    }
    fn one() -> Self {
        NeverZero(Boolean::one())
    }
    fn add(self, rhs: Self) -> Self {
        NeverZero(self.0.add(rhs.0))
    }
    fn mul(self, rhs: Self) -> Self {
        NeverZero(self.0.mul(rhs.0))
    }
    fn is_zero(&self) -> bool {
        false
    }
    fn to_f64(&self) -> f64 {
        self.0.to_f64()
    }
}

#[test]
fn bad_is_zero_fails_is_zero_consistent() {
    let err = check_laws_exact(strategies::boolean().prop_map(NeverZero), 100).unwrap_err();
    assert_eq!(err.law, Law::IsZeroConsistent, "{err}");
}

/// ℕ with a ⊗ that panics on overflow instead of saturating.
#[derive(Clone, Copy, Debug, PartialEq)]
struct PanickyCounting(u64);

impl Semiring for PanickyCounting {
    const NAME: &'static str = "panicky";
    fn zero() -> Self {
        PanickyCounting(0)
    }
    fn one() -> Self {
        PanickyCounting(1)
    }
    fn add(self, rhs: Self) -> Self {
        PanickyCounting(self.0.saturating_add(rhs.0))
    }
    fn mul(self, rhs: Self) -> Self {
        PanickyCounting(self.0.checked_mul(rhs.0).expect("⊗ overflowed"))
    }
    fn to_f64(&self) -> f64 {
        self.0 as f64
    }
}

#[test]
fn panics_are_reported_with_the_law_being_checked() {
    // A panic in a drawn case is reported as a violation of the law being checked (0 and 1 are
    // mixed into the drawn values, so which law meets the first overflow depends on the draw).
    let err =
        check_laws_exact(((1u64 << 32)..=(1u64 << 40)).prop_map(PanickyCounting), 50).unwrap_err();
    // The law named is one that multiplies two drawn values (a·b ≥ 2⁶⁴ for every pair of them).
    assert!(
        matches!(
            err.law,
            Law::MulAssociative | Law::LeftDistributive | Law::RightDistributive
        ),
        "{err}"
    );
    assert!(err.values.contains("⊗ overflowed"), "{err}");
}

#[test]
fn laws_display_their_formulas() {
    assert_eq!(Law::AddAssociative.to_string(), "(a ⊕ b) ⊕ c = a ⊕ (b ⊕ c)");
    assert_eq!(
        Law::LeftDistributive.to_string(),
        "a ⊗ (b ⊕ c) = (a ⊗ b) ⊕ (a ⊗ c)"
    );
    let v = LawViolation {
        law: Law::AddIdempotent,
        values: "a = 1".into(),
    };
    assert_eq!(
        v.to_string(),
        "AddIdempotent violated: a ⊕ a = a fails for a = 1"
    );
    let _: &dyn std::error::Error = &v;
    assert_eq!(Law::ALL.len(), 14);
    let _ = laws::F64_EPSILON;
}
