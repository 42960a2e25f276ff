//! LRP rules: how a layer's forward pass is turned into shares `d_jk`.
//!
//! May import: `error`, `shares`, `tensor` (docs/architecture.md, "Layers").
//!
//! Every rule for a linear layer (dense or convolution) writes its shares as a short sum of
//! factored terms
//!
//! ```text
//! d_jk = Σ_t  p_t[j] · g_t(w_jk) · q_t[k]
//! ```
//!
//! with an input factor `p_t` (a modified activation), a weight map `g_t` (w, w⁺, w⁻, w + γw⁺, …)
//! and an output factor `q_t` (a reciprocal, stabilised denominator). The kernels evaluate the sum
//! on the fly, so no share matrix is ever stored. Conventions follow Zennit; `docs/semantics.md`
//! states each one with its formula.
//!
//! | rule | shares d_jk |
//! |---|---|
//! | [`ZeroRule`] (LRP-0) | a_j w_jk / z_k, z_k = Σ_j a_j w_jk + b_k, d = 0 where z_k = 0 |
//! | [`EpsilonRule`] | a_j w_jk / stab_ε(z_k) |
//! | [`GammaRule`] | z_k > 0: a⁺_j (w + γw⁺) + a⁻_j (w + γw⁻), over the same forward with b + γb⁺; z_k < 0 mirrored |
//! | [`ZPlusRule`] | (a⁺w⁺ + a⁻w⁻) / stab(Σ_j(a⁺w⁺ + a⁻w⁻) + b⁺) |
//! | [`AlphaBetaRule`] | α(a⁺w⁺ + a⁻w⁻)/stab(zp) − β(a⁺w⁻ + a⁻w⁺)/stab(zn) |
//! | [`ZBoxRule`] | (a w − l w⁺ − h w⁻) / stab(Σ_j(a w − l w⁺ − h w⁻)) |
//! | [`FlatRule`] | 1 / stab(n_k), n_k = number of in-bounds inputs of k |
//! | [`WSquareRule`] | w² / stab(Σ_j w² + b²) |
//! | [`MaxAbsRule`] | \|a_j w_jk\| / (max_j' \|a_j' w_j'k\| + δ) (for [`Viterbi`](crate::semiring::Viterbi)) |
//! | [`WinnerTakesAllRule`] | max pooling: 1 for the window's (first) maximum, 0 otherwise |
//! | [`ProportionalRule`] | pooling: (a_j / n) / stab(mean of the window) ≈ a_j / Σ_window a |
//!
//! `stab_ε(x) = x + ε·s(x)` with `s(x) = sign(x)` and `s(0) = +1`: it always moves away from zero.

use crate::error::{Error, Result};
use crate::shares::LinearMap;
pub use crate::shares::{ShareTerm, WeightMap};
pub use crate::tensor::SharedTensor;
use crate::tensor::shared_copy;
use crate::tensor::{Tensor, elementwise};
use ndarray::ArrayD;
use std::sync::Arc;

/// The default stabiliser ε of the rules that have one (as in Zennit).
pub const DEFAULT_EPSILON: f32 = 1e-6;

/// The default δ of [`MaxAbsRule`].
pub const DEFAULT_DELTA: f32 = 1e-9;

/// `stab_ε(x) = x + ε·s(x)`, with `s(x) = sign(x)` and `s(0) = +1`.
///
/// ```
/// use klrp::rules::stabilize;
/// assert_eq!(stabilize(0.0, 0.5), 0.5);
/// assert_eq!(stabilize(-1.0, 0.5), -1.5);
/// ```
#[inline]
pub fn stabilize(x: f32, epsilon: f32) -> f32 {
    if x >= 0.0 { x + epsilon } else { x - epsilon }
}

/// `1 / stab_ε(x)`, defined as 0 where the stabilised denominator is 0 or subnormal
/// (only possible with ε = 0): an output with z = 0 passes no relevance, never NaN.
#[inline]
pub fn stabilized_recip(x: f32, epsilon: f32) -> f32 {
    let s = stabilize(x, epsilon);
    if s.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        1.0 / s
    }
}

/// Box bounds of [`ZBoxRule`]: one value for every input, or an array that broadcasts over one
/// sample (numpy's rules, as Zennit accepts tensors): the sample's own shape (one bound per
/// element), `[C, 1, 1]` (one per channel of a `[C, H, W]` input), `[W]`, ….
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    /// The same bound for every input element.
    Scalar(f32),
    /// Bounds broadcast over one sample (the layer's input without the batch axis).
    PerInput(Arc<ArrayD<f32>>),
    /// One bound per channel, the first axis of a sample (`--low 0,0,0`; Zennit's `(1, C, 1, 1)`
    /// tensors): the same as a `PerInput` array of shape `[C, 1, …, 1]` of the sample's rank.
    PerChannel(Arc<[f32]>),
}

impl From<ArrayD<f32>> for Bound {
    fn from(b: ArrayD<f32>) -> Self {
        Bound::PerInput(Arc::new(b))
    }
}

impl From<f32> for Bound {
    fn from(v: f32) -> Self {
        Bound::Scalar(v)
    }
}

impl Bound {
    fn broadcast(&self, input: &Tensor) -> Result<Tensor> {
        match self {
            Bound::Scalar(v) => Ok(Tensor::from_elem(input.raw_dim(), *v)),
            Bound::PerInput(b) => {
                let sample = &input.shape()[1..];
                let b = b.broadcast(sample).ok_or_else(|| {
                    Error::shape("z^B box bound (broadcast over a sample)", sample, b.shape())
                })?;
                let mut out = input.clone();
                for mut s in out.outer_iter_mut() {
                    s.assign(&b);
                }
                Ok(out)
            }
            Bound::PerChannel(v) => {
                Bound::PerInput(Arc::new(per_channel(v, input.ndim() - 1))).broadcast(input)
            }
        }
    }

    /// `low < high` wherever the two meet, as far as it can be told without the input: scalars,
    /// arrays (broadcast against each other) and per-channel lists of one length. A per-channel
    /// bound against an array one is checked when the shares are formed, on the input's shape.
    fn check_below(low: &Bound, high: &Bound) -> Result<()> {
        let (l, h) = match (low, high) {
            (Bound::Scalar(l), Bound::Scalar(h)) => {
                return if l < h {
                    Ok(())
                } else {
                    Err(empty_box(*l, *h))
                };
            }
            (Bound::PerChannel(_), Bound::PerInput(_))
            | (Bound::PerInput(_), Bound::PerChannel(_)) => {
                return Ok(());
            }
            _ => (low.as_array(), high.as_array()),
        };
        let mismatch = || {
            Error::shape(
                "z^B box bounds (low and high broadcast together)",
                l.shape(),
                h.shape(),
            )
        };
        let shape = co_broadcast(l.shape(), h.shape()).ok_or_else(mismatch)?;
        let (lb, hb) = (
            l.broadcast(shape.as_slice()).ok_or_else(mismatch)?,
            h.broadcast(shape.as_slice()).ok_or_else(mismatch)?,
        );
        match lb.iter().zip(hb.iter()).find(|(l, h)| l >= h) {
            Some((&l, &h)) => Err(empty_box(l, h)),
            None => Ok(()),
        }
    }

    /// The bound as an array (a scalar of no axes, a per-channel list of one).
    fn as_array(&self) -> ArrayD<f32> {
        match self {
            Bound::Scalar(v) => ArrayD::from_elem(vec![], *v),
            Bound::PerInput(b) => (**b).clone(),
            Bound::PerChannel(v) => per_channel(v, 1),
        }
    }

    fn check(&self, what: &str) -> Result<()> {
        let finite = match self {
            Bound::Scalar(v) => v.is_finite(),
            Bound::PerInput(b) => b.iter().all(|v| v.is_finite()),
            Bound::PerChannel(v) => v.iter().all(|v| v.is_finite()),
        };
        if finite {
            Ok(())
        } else {
            Err(Error::NonFinite(format!("z^B bound {what}")))
        }
    }
}

/// The error for a box with `low ≥ high` somewhere.
fn empty_box(l: f32, h: f32) -> Error {
    Error::invalid(format!(
        "z^B needs low < high, got low = {l} and high = {h} (an empty box has no z^B shares)"
    ))
}

/// Per-channel values as an array `[C, 1, …, 1]` of `rank` axes (at least 1).
fn per_channel(v: &[f32], rank: usize) -> ArrayD<f32> {
    let mut shape = vec![1; rank.max(1)];
    shape[0] = v.len();
    ArrayD::from_shape_vec(shape, v.to_vec()).expect("the shape holds the values")
}

/// The shape two arrays broadcast to together (numpy's rules: axes aligned from the right,
/// each pair equal or one of them 1), or `None`.
fn co_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let at = |s: &[usize], i: usize| (i + s.len()).checked_sub(n).map_or(1, |k| s[k]);
    (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

fn check_epsilon(epsilon: f32) -> Result<f32> {
    if epsilon.is_finite() && epsilon >= 0.0 {
        Ok(epsilon)
    } else {
        Err(Error::invalid(format!(
            "stabiliser ε must be finite and ≥ 0, got {epsilon}"
        )))
    }
}

/// LRP-0: `d_jk = a_j w_jk / z_k`, no stabiliser; `d_jk = 0` where `z_k = 0`.
///
/// The K-LRP default for every non-real semiring (the report's definition).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZeroRule;

/// LRP-ε: `d_jk = a_j w_jk / stab_ε(z_k)`, `z_k = Σ_j a_j w_jk + b_k` (bias in the denominator).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpsilonRule {
    epsilon: f32,
}

impl EpsilonRule {
    /// LRP-ε with stabiliser `epsilon`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `epsilon` is negative, NaN or infinite.
    pub fn new(epsilon: f32) -> Result<Self> {
        Ok(EpsilonRule {
            epsilon: check_epsilon(epsilon)?,
        })
    }
    /// ε.
    pub fn epsilon(&self) -> f32 {
        self.epsilon
    }
}

impl Default for EpsilonRule {
    fn default() -> Self {
        EpsilonRule {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

/// LRP-γ: favours positive contributions by `γ` (Zennit's `Gamma`).
///
/// For `z_k > 0` (the unmodified pre-activation) the weights are `w + γw⁺` for positive inputs and
/// `w + γw⁻` for negative ones, the bias `b + γb⁺` (counted once), and the denominator is that
/// modified forward pass, stabilised. For `z_k < 0`, w⁺ and w⁻ swap roles and the bias is
/// `b + γb⁻`. `z_k = 0` passes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GammaRule {
    gamma: f32,
    epsilon: f32,
}

impl GammaRule {
    /// LRP-γ with the given `gamma` ≥ 0 and stabiliser `epsilon`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `gamma` or `epsilon` is negative or not finite.
    pub fn new(gamma: f32, epsilon: f32) -> Result<Self> {
        if !(gamma.is_finite() && gamma >= 0.0) {
            return Err(Error::invalid(format!(
                "γ must be finite and ≥ 0, got {gamma}"
            )));
        }
        Ok(GammaRule {
            gamma,
            epsilon: check_epsilon(epsilon)?,
        })
    }
    /// γ.
    pub fn gamma(&self) -> f32 {
        self.gamma
    }
}

/// z⁺: `d_jk = (a⁺_j w⁺_jk + a⁻_j w⁻_jk) / stab(Σ_j (a⁺w⁺ + a⁻w⁻) + b⁺_k)`, no sign gating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZPlusRule {
    epsilon: f32,
}

impl Default for ZPlusRule {
    fn default() -> Self {
        ZPlusRule {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

/// αβ with α − β = 1: `α(a⁺w⁺ + a⁻w⁻)/stab(zp_k) − β(a⁺w⁻ + a⁻w⁺)/stab(zn_k)`, where
/// `zp_k = Σ(a⁺w⁺ + a⁻w⁻) + b⁺_k` and `zn_k = Σ(a⁺w⁻ + a⁻w⁺) + b⁻_k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlphaBetaRule {
    alpha: f32,
    beta: f32,
    epsilon: f32,
}

impl AlphaBetaRule {
    /// αβ with the given α, β (α, β ≥ 0, α − β = 1) and the default ε.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if α or β is negative or not finite, or α − β ≠ 1.
    pub fn new(alpha: f32, beta: f32) -> Result<Self> {
        if !(alpha.is_finite() && beta.is_finite() && alpha >= 0.0 && beta >= 0.0) {
            return Err(Error::invalid(format!(
                "α and β must be finite and ≥ 0, got α = {alpha}, β = {beta}"
            )));
        }
        if ((alpha - beta) - 1.0).abs() > 1e-6 {
            return Err(Error::invalid(format!(
                "αβ rule needs α − β = 1, got α = {alpha}, β = {beta}"
            )));
        }
        Ok(AlphaBetaRule {
            alpha,
            beta,
            epsilon: DEFAULT_EPSILON,
        })
    }
}

/// z^B (box rule) for inputs bounded by `low ≤ x ≤ high`:
/// `d_jk = (a_j w_jk − l_j w⁺_jk − h_j w⁻_jk) / stab(Σ_j (a w − l w⁺ − h w⁻))` (the bias cancels).
#[derive(Clone, Debug, PartialEq)]
pub struct ZBoxRule {
    low: Bound,
    high: Bound,
    epsilon: f32,
}

impl ZBoxRule {
    /// z^B with the given bounds and the default ε.
    ///
    /// ```
    /// use klrp::rules::ZBoxRule;
    /// use klrp::ndarray::{ArrayD, IxDyn};
    /// assert!(ZBoxRule::new(-3.0, 3.0).is_ok());
    /// // One bound per channel of a [3, H, W] input, broadcast over H and W.
    /// let low = ArrayD::from_shape_vec(IxDyn(&[3, 1, 1]), vec![-2.1, -2.0, -1.8]).unwrap();
    /// assert!(ZBoxRule::new(low, 2.6).is_ok());
    /// assert!(ZBoxRule::new(1.0, 1.0).is_err()); // an empty box
    /// ```
    ///
    /// # Errors
    /// [`Error::NonFinite`] if a bound is NaN or infinite; [`Error::InvalidArgument`] unless
    /// `low < high` everywhere; [`Error::ShapeMismatch`] if two array bounds do not broadcast
    /// together (a bound that does not broadcast over the layer's input is an error when the
    /// shares are formed).
    pub fn new(low: impl Into<Bound>, high: impl Into<Bound>) -> Result<Self> {
        let (low, high) = (low.into(), high.into());
        low.check("low")?;
        high.check("high")?;
        Bound::check_below(&low, &high)?;
        Ok(ZBoxRule {
            low,
            high,
            epsilon: DEFAULT_EPSILON,
        })
    }
}

/// Flat: `d_jk = 1 / stab(n_k)`, `n_k` the number of inputs connected to k (in-bounds taps only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlatRule {
    epsilon: f32,
}

impl Default for FlatRule {
    fn default() -> Self {
        FlatRule {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

/// w²: `d_jk = w²_jk / stab(Σ_j w²_jk + b²_k)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WSquareRule {
    epsilon: f32,
}

impl Default for WSquareRule {
    fn default() -> Self {
        WSquareRule {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

/// Max-abs normalisation (for [`Viterbi`](crate::semiring::Viterbi)):
/// `d_jk = |a_j w_jk| / (max_j' |a_j' w_j'k| + δ)`, the max over the inputs connected to k, no bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxAbsRule {
    delta: f32,
}

impl MaxAbsRule {
    /// Max-abs shares with the given δ > 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `delta` is not finite and positive.
    pub fn new(delta: f32) -> Result<Self> {
        if !(delta.is_finite() && delta > 0.0) {
            return Err(Error::invalid(format!(
                "δ must be finite and > 0, got {delta}"
            )));
        }
        Ok(MaxAbsRule { delta })
    }
    /// δ.
    pub fn delta(&self) -> f32 {
        self.delta
    }
}

impl Default for MaxAbsRule {
    fn default() -> Self {
        MaxAbsRule {
            delta: DEFAULT_DELTA,
        }
    }
}

/// Max pooling, winner-take-all: share 1 for the window's maximum (the first in row-major window
/// order on ties), 0 for the others.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WinnerTakesAllRule;

/// Pooling treated as averaging: `d_jk = (a_j / n) / stab_ε(mean_k)`, n the window size, i.e.
/// proportional to the activations. For max pooling the mean is recomputed (the forward is
/// unchanged).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProportionalRule {
    epsilon: f32,
}

impl ProportionalRule {
    /// Proportional shares with stabiliser `epsilon`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `epsilon` is negative or not finite.
    pub fn new(epsilon: f32) -> Result<Self> {
        Ok(ProportionalRule {
            epsilon: check_epsilon(epsilon)?,
        })
    }
    /// ε.
    pub fn epsilon(&self) -> f32 {
        self.epsilon
    }

    /// Proportional shares with no stabiliser, `d_jk = (a_j / n_k) / mean_k` (0 where the mean
    /// is 0): the exact local gradient × input of an average.
    pub const EXACT: ProportionalRule = ProportionalRule { epsilon: 0.0 };
}

impl Default for ProportionalRule {
    fn default() -> Self {
        ProportionalRule {
            epsilon: DEFAULT_EPSILON,
        }
    }
}

/// Every rule, as assigned to a layer by a [`Composite`](crate::composite::Composite).
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// LRP-0.
    Zero(ZeroRule),
    /// LRP-ε.
    Epsilon(EpsilonRule),
    /// LRP-γ.
    Gamma(GammaRule),
    /// z⁺.
    ZPlus(ZPlusRule),
    /// αβ.
    AlphaBeta(AlphaBetaRule),
    /// z^B.
    ZBox(ZBoxRule),
    /// Flat.
    Flat(FlatRule),
    /// w².
    WSquare(WSquareRule),
    /// Max-abs normalisation.
    MaxAbs(MaxAbsRule),
    /// Winner-take-all (max pooling).
    WinnerTakesAll(WinnerTakesAllRule),
    /// Proportional (pooling).
    Proportional(ProportionalRule),
}

macro_rules! rule_from {
    ($($v:ident($t:ty)),*) => {$(
        impl From<$t> for Rule {
            fn from(r: $t) -> Self { Rule::$v(r) }
        }
    )*};
}
rule_from!(
    Zero(ZeroRule),
    Epsilon(EpsilonRule),
    Gamma(GammaRule),
    ZPlus(ZPlusRule),
    AlphaBeta(AlphaBetaRule),
    ZBox(ZBoxRule),
    Flat(FlatRule),
    WSquare(WSquareRule),
    MaxAbs(MaxAbsRule),
    WinnerTakesAll(WinnerTakesAllRule),
    Proportional(ProportionalRule)
);

impl Rule {
    /// A short name: `"epsilon"`, `"gamma"`, …
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Zero(_) => "zero",
            Rule::Epsilon(_) => "epsilon",
            Rule::Gamma(_) => "gamma",
            Rule::ZPlus(_) => "zplus",
            Rule::AlphaBeta(_) => "alpha-beta",
            Rule::ZBox(_) => "zbox",
            Rule::Flat(_) => "flat",
            Rule::WSquare(_) => "wsquare",
            Rule::MaxAbs(_) => "max-abs",
            Rule::WinnerTakesAll(_) => "winner-takes-all",
            Rule::Proportional(_) => "proportional",
        }
    }

    /// Whether the rule applies to linear (dense, convolution) layers.
    pub fn is_linear_rule(&self) -> bool {
        !matches!(self, Rule::WinnerTakesAll(_) | Rule::Proportional(_))
    }
}

fn pos(t: &Tensor) -> Tensor {
    elementwise::map(t, |x| x.max(0.0))
}

fn neg(t: &Tensor) -> Tensor {
    elementwise::map(t, |x| x.min(0.0))
}

/// `q = 1 / stab_ε(z)` elementwise (0 where the denominator vanishes).
fn recip(z: &Tensor, epsilon: f32) -> Tensor {
    elementwise::map(z, |x| stabilized_recip(x, epsilon))
}

/// The γ rule's output factors from `z` and `pb = P + b⁺`, where `P = F(a⁺, w⁺) + F(a⁻, w⁻)`:
/// the reciprocals of `zγ⁺ = z + γ·pb` where `z > 0` and of `zγ⁻ = z + γ(z − pb)` where `z < 0`
/// (0 elsewhere). One pass; the second factor takes over `pb`'s buffer.
fn gamma_factors(z: &Tensor, mut pb: Tensor, r: &GammaRule) -> (Tensor, Tensor) {
    let (g, eps) = (r.gamma, r.epsilon);
    let z = z.as_standard_layout();
    if !pb.is_standard_layout() {
        pb = pb.as_standard_layout().into_owned();
    }
    let mut qp = Tensor::zeros(pb.raw_dim());
    let slices = (z.as_slice(), qp.as_slice_mut(), pb.as_slice_mut());
    let (Some(zs), Some(qs), Some(ps)) = slices else {
        unreachable!("standard-layout tensors of one shape")
    };
    // Written as selects, not branches, so that the loop vectorises.
    elementwise::for_each_zip3(zs, qs, ps, |&z, qp, pb| {
        let d = if z > 0.0 {
            z + g * *pb
        } else {
            z + g * (z - *pb)
        };
        // `stabilized_recip(d, eps)` with selects around an unconditional division.
        let s = if d >= 0.0 { d + eps } else { d - eps };
        let tiny = s.abs() < f32::MIN_POSITIVE;
        let q = 1.0 / if tiny { 1.0 } else { s };
        let q = if tiny { 0.0 } else { q };
        *qp = if z > 0.0 { q } else { 0.0 };
        *pb = if z < 0.0 { q } else { 0.0 };
    });
    (qp, pb)
}

fn term(
    input: impl Into<SharedTensor>,
    weight: WeightMap,
    scale: impl Into<SharedTensor>,
) -> ShareTerm {
    ShareTerm {
        input: input.into(),
        weight,
        scale: scale.into(),
    }
}

/// The share terms of `rule` for a linear layer `map`, with input activations `a` and forward
/// output `z` (pre-activation, bias included). Terms that are identically zero are dropped.
///
/// `a` is a batch `[N, …]` of inputs the map takes, and `z` must be the map's output for it:
/// `[N, …]` with the per-sample shape of [`Connectivity::output_shape`](crate::layers::Connectivity::output_shape).
/// Both shapes are checked before any arithmetic.
///
/// # Errors
/// [`Error::Unsupported`] if `rule` is a pooling rule; [`Error::ShapeMismatch`] if `a` has no
/// batch axis or does not fit the map, or if `z` does not have the shape of the map's output for
/// `a`; errors of the modified forward passes.
pub fn linear_share_terms(
    map: &dyn LinearMap,
    a: &Tensor,
    z: &Tensor,
    rule: &Rule,
) -> Result<Vec<ShareTerm>> {
    use WeightMap as W;
    if !rule.is_linear_rule() {
        return Err(not_linear(rule));
    }
    check_linear_output(map, a, z)?;
    // A modified forward pass; an all-zero input without bias skips the pass (post-ReLU inputs
    // make every a⁻ term vanish).
    let f = |x: &Tensor, w: WeightMap, b: Option<WeightMap>| {
        if b.is_none() && elementwise::all(x, |v| v == 0.0) {
            Ok(Tensor::zeros(z.raw_dim()))
        } else {
            map.forward_mapped(x, w, b)
        }
    };
    // The positive contributions `z⁺ = F(a⁺, w⁺) + F(a⁻, w⁻) + b⁺` (z⁺ and αβ).
    let z_plus = |ap: &Tensor, an: &Tensor| -> Result<Tensor> {
        Ok(f(ap, W::Positive, Some(W::Positive))? + f(an, W::Negative, None)?)
    };
    let terms = match rule {
        Rule::Zero(_) => vec![term(shared_copy(a), W::Identity, recip(z, 0.0))],
        Rule::Epsilon(r) => vec![term(shared_copy(a), W::Identity, recip(z, r.epsilon))],
        Rule::Gamma(r) if elementwise::all(a, |x| x >= 0.0) => {
            // The common case (after a ReLU): a = a⁺, and only the a⁺ terms remain;
            // P + b⁺ = F(a⁺, w⁺) + b⁺ is one modified forward pass.
            let (gp, gn) = (W::GammaPositive(r.gamma), W::GammaNegative(r.gamma));
            let pb = map.forward_mapped(a, W::Positive, Some(W::Positive))?;
            let (qp, qn) = gamma_factors(z, pb, r);
            let a = shared_copy(a);
            vec![term(a.clone(), gp, qp), term(a, gn, qn)]
        }
        Rule::Gamma(r) => {
            let (ap, an) = (pos(a), neg(a));
            let (gp, gn) = (W::GammaPositive(r.gamma), W::GammaNegative(r.gamma));
            // The forward pass is linear in the weights: with z = F(a, w) + b and
            // P = F(a⁺, w⁺) + F(a⁻, w⁻), both branches follow from one pair of passes (and one
            // pass after a ReLU, where a⁻ = 0):
            //   zγ⁺ = F(a⁺, w + γw⁺) + F(a⁻, w + γw⁻) + b + γb⁺ = z + γ(P + b⁺)
            //   zγ⁻ = F(a⁺, w + γw⁻) + F(a⁻, w + γw⁺) + b + γb⁻ = z + γ(z − P − b⁺)
            let pb = map.forward_mapped(&ap, W::Positive, Some(W::Positive))?
                + f(&an, W::Negative, None)?;
            let (qp, qn) = gamma_factors(z, pb, r);
            let (ap, an) = (ap.into_shared(), an.into_shared());
            let (qp, qn) = (qp.into_shared(), qn.into_shared());
            vec![
                term(ap.clone(), gp, qp.clone()),
                term(an.clone(), gn, qp),
                term(ap, gn, qn.clone()),
                term(an, gp, qn),
            ]
        }
        Rule::ZPlus(r) => {
            let (ap, an) = (pos(a), neg(a));
            let zp = z_plus(&ap, &an)?;
            let q = recip(&zp, r.epsilon).into_shared();
            let (ap, an) = (ap.into_shared(), an.into_shared());
            vec![term(ap, W::Positive, q.clone()), term(an, W::Negative, q)]
        }
        Rule::AlphaBeta(r) => {
            let (ap, an) = (pos(a), neg(a));
            let zp = z_plus(&ap, &an)?;
            let zn = f(&ap, W::Negative, Some(W::Negative))? + f(&an, W::Positive, None)?;
            let qp = (recip(&zp, r.epsilon) * r.alpha).into_shared();
            let qn = (recip(&zn, r.epsilon) * (-r.beta)).into_shared();
            let (ap, an) = (ap.into_shared(), an.into_shared());
            vec![
                term(ap.clone(), W::Positive, qp.clone()),
                term(an.clone(), W::Negative, qp),
                term(ap, W::Negative, qn.clone()),
                term(an, W::Positive, qn),
            ]
        }
        Rule::ZBox(r) => {
            let low = r.low.broadcast(a)?;
            let high = r.high.broadcast(a)?;
            // The box as the input sees it (a per-channel bound meets an array one only here).
            if let Some((l, h)) = low.iter().zip(&high).find(|(l, h)| l >= h) {
                return Err(empty_box(*l, *h));
            }
            let zb = elementwise::zip_map(
                &f(a, W::Identity, None)?,
                &f(&low, W::Positive, None)?,
                |z, l| z - l,
            );
            let zb = elementwise::zip_map(&zb, &f(&high, W::Negative, None)?, |z, h| z - h);
            let q = recip(&zb, r.epsilon);
            let minus_q = elementwise::map(&q, |q| -q).into_shared();
            vec![
                term(shared_copy(a), W::Identity, q),
                term(low, W::Positive, minus_q.clone()),
                term(high, W::Negative, minus_q),
            ]
        }
        Rule::Flat(r) => {
            let ones = Tensor::ones(a.raw_dim());
            let n = f(&ones, W::Ones, None)?;
            vec![term(ones, W::Ones, recip(&n, r.epsilon))]
        }
        Rule::WSquare(r) => {
            let ones = Tensor::ones(a.raw_dim());
            let zs = f(&ones, W::Square, Some(W::Square))?;
            vec![term(ones, W::Square, recip(&zs, r.epsilon))]
        }
        Rule::MaxAbs(r) => {
            let m = map.max_abs_forward(a)?;
            let q = elementwise::map(&m, |m| 1.0 / (m + r.delta));
            vec![term(elementwise::map(a, f32::abs), W::Abs, q)]
        }
        Rule::WinnerTakesAll(_) | Rule::Proportional(_) => return Err(not_linear(rule)),
    };
    Ok(terms
        .into_iter()
        .filter(|t| {
            !elementwise::all(&t.input, |x| x == 0.0) && !elementwise::all(&t.scale, |x| x == 0.0)
        })
        .collect())
}

/// The error for a pooling rule given to a linear layer.
fn not_linear(rule: &Rule) -> Error {
    Error::Unsupported(format!(
        "the {} rule applies to pooling layers, not to linear layers",
        rule.name()
    ))
}

/// Checks that `a` is a batch the map takes and `z` the shape of the map's output for it.
fn check_linear_output(map: &dyn LinearMap, a: &Tensor, z: &Tensor) -> Result<()> {
    let Some((&batch, sample)) = a.shape().split_first() else {
        return Err(Error::shape(
            "linear_share_terms: a (a batch [N, ...] of inputs)",
            &[0],
            a.shape(),
        ));
    };
    let mut want = vec![batch];
    want.extend(map.connectivity(sample)?.output_shape());
    if z.shape() != want.as_slice() {
        return Err(Error::shape(
            "linear_share_terms: z (the layer's output for a)",
            &want,
            z.shape(),
        ));
    }
    Ok(())
}

/// Rule names for a linear layer as [`Rule`]'s [`FromStr`](std::str::FromStr) reads them.
pub const RULE_SYNTAX: &str =
    "zero, epsilon[=E], gamma[=G], zplus, alpha-beta=A,B, flat, wsquare, max-abs[=D]";

/// A finite `f32` from text (surrounding whitespace allowed).
fn parse_finite(text: &str) -> Result<f32> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::invalid(format!("'{text}' is not a finite number"))),
    }
}

impl Rule {
    /// Reads a rule for the *first* linear layer: everything [`FromStr`](std::str::FromStr)
    /// reads, and `zbox` (z^B with the given box bounds, which the text cannot carry).
    ///
    /// ```
    /// use klrp::rules::{Bound, Rule};
    /// let r = Rule::parse_first("zbox", Bound::Scalar(-3.0), Bound::Scalar(3.0))?;
    /// assert_eq!(r.name(), "zbox");
    /// assert_eq!(Rule::parse_first("flat", -1.0, 1.0)?.name(), "flat");
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`FromStr`](std::str::FromStr) (an unknown rule's message also lists `zbox`);
    /// [`Error::InvalidArgument`] for `zbox=…`; [`Error::NonFinite`] if a bound is NaN or infinite.
    pub fn parse_first(spec: &str, low: impl Into<Bound>, high: impl Into<Bound>) -> Result<Rule> {
        let (name, value) = split_rule_spec(spec);
        if name == "zbox" {
            if value.is_some() {
                return Err(Error::invalid(
                    "zbox takes no value: its bounds come from --low and --high",
                ));
            }
            return Ok(ZBoxRule::new(low, high)?.into());
        }
        parse_linear_rule(spec, true)
    }
}

fn split_rule_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once('=') {
        Some((n, v)) => (n.trim(), Some(v)),
        None => (spec.trim(), None),
    }
}

fn parse_linear_rule(spec: &str, first: bool) -> Result<Rule> {
    let (name, value) = split_rule_spec(spec);
    let no_value = |r: Rule| -> Result<Rule> {
        match value {
            None => Ok(r),
            Some(_) => Err(Error::invalid(format!("{name} takes no value"))),
        }
    };
    Ok(match name {
        "zero" => no_value(ZeroRule.into())?,
        "epsilon" => match value {
            None => EpsilonRule::default().into(),
            Some(v) => EpsilonRule::new(parse_finite(v)?)?.into(),
        },
        "gamma" => {
            let g = match value {
                None => 0.25,
                Some(v) => parse_finite(v)?,
            };
            GammaRule::new(g, DEFAULT_EPSILON)?.into()
        }
        "zplus" => no_value(ZPlusRule::default().into())?,
        "alpha-beta" => {
            let Some((a, b)) = value.and_then(|v| v.split_once(',')) else {
                return Err(Error::invalid("write alpha-beta=A,B (e.g. alpha-beta=2,1)"));
            };
            AlphaBetaRule::new(parse_finite(a)?, parse_finite(b)?)?.into()
        }
        "flat" => no_value(FlatRule::default().into())?,
        "wsquare" => no_value(WSquareRule::default().into())?,
        "max-abs" => match value {
            None => MaxAbsRule::default().into(),
            Some(v) => MaxAbsRule::new(parse_finite(v)?)?.into(),
        },
        "zbox" => {
            return Err(Error::invalid(
                "zbox is a first-layer rule: use --first-rule zbox (Rule::parse_first)",
            ));
        }
        other => {
            return Err(Error::invalid(format!(
                "unknown rule '{other}' ({RULE_SYNTAX}{})",
                if first { ", zbox" } else { "" }
            )));
        }
    })
}

/// Reads a rule for linear layers in the command line's syntax: `zero`, `epsilon[=E]`,
/// `gamma[=G]`, `zplus`, `alpha-beta=A,B`, `flat`, `wsquare`, `max-abs[=D]` (defaults: E = 1e-6,
/// G = 0.25 with ε = 1e-6, D = 1e-9). `zbox` needs bounds: use [`Rule::parse_first`].
///
/// ```
/// use klrp::rules::{EpsilonRule, Rule};
/// let r: Rule = "epsilon=0.25".parse()?;
/// assert_eq!(r, Rule::from(EpsilonRule::new(0.25)?));
/// assert!("alpha-beta=3,1".parse::<Rule>().is_err()); // α − β must be 1
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`]: an unknown name, a value that is not a finite number, a value for a
/// rule that takes none, `alpha-beta` without `A,B`, `zbox`, or a parameter the rule's constructor
/// refuses (ε < 0, γ < 0, α − β ≠ 1, δ ≤ 0).
impl std::str::FromStr for Rule {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Rule> {
        parse_linear_rule(spec, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stabilizer_moves_away_from_zero() {
        assert_eq!(stabilize(0.0, 1e-6), 1e-6);
        assert_eq!(stabilize(-0.0, 1e-6), 1e-6);
        assert_eq!(stabilize(2.0, 1.0), 3.0);
        assert_eq!(stabilize(-2.0, 1.0), -3.0);
        assert_eq!(stabilized_recip(0.0, 0.0), 0.0);
        assert_eq!(stabilized_recip(1e-45, 0.0), 0.0);
        assert_eq!(stabilized_recip(4.0, 0.0), 0.25);
    }

    #[test]
    fn weight_maps() {
        assert_eq!(WeightMap::GammaPositive(0.25).apply(2.0), 2.5);
        assert_eq!(WeightMap::GammaPositive(0.25).apply(-2.0), -2.0);
        assert_eq!(WeightMap::GammaNegative(0.25).apply(-2.0), -2.5);
        assert_eq!(WeightMap::Square.apply(-3.0), 9.0);
        assert_eq!(WeightMap::Ones.apply(-3.0), 1.0);
    }

    #[test]
    fn rule_arguments_are_validated() {
        assert!(EpsilonRule::new(-1.0).is_err());
        assert!(EpsilonRule::new(f32::NAN).is_err());
        assert!(GammaRule::new(f32::INFINITY, 0.0).is_err());
        assert!(AlphaBetaRule::new(2.0, 2.0).is_err());
        assert!(AlphaBetaRule::new(2.0, 1.0).is_ok());
        assert!(ZBoxRule::new(f32::NAN, 1.0).is_err());
        assert!(MaxAbsRule::new(0.0).is_err());
    }

    #[test]
    fn rules_parse_with_the_command_line_syntax() {
        let parse = |s: &str| s.parse::<Rule>();
        assert_eq!(parse("zero").unwrap(), Rule::from(ZeroRule));
        assert_eq!(
            parse("epsilon").unwrap(),
            Rule::from(EpsilonRule::default())
        );
        assert_eq!(
            parse("epsilon=0.5").unwrap(),
            Rule::from(EpsilonRule::new(0.5).unwrap())
        );
        assert_eq!(
            parse("gamma").unwrap(),
            Rule::from(GammaRule::new(0.25, DEFAULT_EPSILON).unwrap())
        );
        assert_eq!(
            parse("alpha-beta=2,1").unwrap(),
            Rule::from(AlphaBetaRule::new(2.0, 1.0).unwrap())
        );
        assert_eq!(
            parse("max-abs=0.5").unwrap(),
            Rule::from(MaxAbsRule::new(0.5).unwrap())
        );
        for name in ["zplus", "flat", "wsquare", "max-abs"] {
            assert_eq!(parse(name).unwrap().name(), name);
        }
        let msg = |s: &str| parse(s).unwrap_err().to_string();
        assert!(msg("epsilon=abc").contains("'abc' is not a finite number"));
        assert!(msg("epsilon=inf").contains("not a finite number"));
        assert!(msg("epsilon=-1").contains("ε"));
        assert!(msg("gamma=-1").contains("γ must be finite and ≥ 0"));
        assert!(msg("alpha-beta=3,1").contains("α − β = 1"));
        assert!(msg("alpha-beta=2").contains("alpha-beta=A,B"));
        assert!(msg("flat=1").contains("flat takes no value"));
        assert!(msg("zbox").contains("--first-rule zbox"));
        assert!(msg("lrp-magic").contains("unknown rule 'lrp-magic'"));
        assert!(!msg("lrp-magic").contains("zbox"));
        assert!(matches!(parse("bogus"), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn first_layer_rules_include_zbox_with_the_given_bounds() {
        let r = Rule::parse_first("zbox", -1.0, 2.0).unwrap();
        assert_eq!(r, Rule::from(ZBoxRule::new(-1.0, 2.0).unwrap()));
        assert_eq!(
            Rule::parse_first("wsquare", 0.0, 0.0).unwrap().name(),
            "wsquare"
        );
        assert!(Rule::parse_first("zbox=1", -1.0, 1.0).is_err());
        assert!(Rule::parse_first("zbox", f32::NAN, 1.0).is_err());
        let unknown = Rule::parse_first("nope", 0.0, 1.0).unwrap_err().to_string();
        assert!(unknown.contains(", zbox"), "{unknown}");
    }
}
