//! The common path: one call from an input batch to plain relevance arrays.
//!
//! May import: `composite`, `conversion`, `error`, `kernels`, `layers`, `network`, `rules`,
//! `semiring`, `shares`, `tensor` (docs/architecture.md, "Layers").
//!
//! An [`Explainer`] bundles what K-LRP needs besides the network — the semiring `K`, Θ per layer,
//! the rules ([`Composite`]) and the initialization ([`Init`]) — with the defaults of
//! docs/semantics.md §7 for each shipped semiring, so that no call needs a turbofish:
//!
//! | preset | semiring | Θ | rules | init |
//! |---|---|---|---|---|
//! | [`Explainer::real`] | `Real<f32>` | Θ(d) = d | LRP-ε (ε = 1e-6) everywhere | the target's logit (Zennit's relevance) |
//! | [`Explainer::boolean`]`(θ)` | `Boolean` | d ≥ θ | LRP-0 (`Composite::k_lrp`) | 1 at the target |
//! | [`Explainer::counting`]`(θ)` | `Counting` | d ≥ θ | LRP-0 | 1 at the target |
//! | [`Explainer::viterbi`] | `Viterbi` | clamp to [0, 1] | max-abs (`Composite::viterbi`) | 1 at the target |
//! | [`Explainer::new`]`(composite, Θ)` | any | any | any | 1 at the target |
//!
//! [`Network::explain_with`] runs it on any `f32` ndarray with a batch axis, for the targets
//! given as one class, one class per sample, or [`Targets::Predicted`]. [`Relevance::values`]
//! gives plain arrays (`f32`, `bool`, `u64`, `f64`), [`Relevance::heatmap`] one 2-D map per
//! sample. [`LayerRelevance`] is one layer's relevance, directly on the layer.
//!
//! ```
//! use klrp::explain::{Explainer, Targets};
//! use klrp::layers::{Dense, ReLU};
//! use klrp::ndarray::array;
//! use klrp::{Network, Threshold};
//!
//! let net = Network::new(
//!     [3],
//!     vec![
//!         Box::new(Dense::new(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]], None)?),
//!         Box::new(ReLU),
//!         Box::new(Dense::new(array![[1.0, -0.5], [0.3, 1.0]], None)?),
//!     ],
//! )?;
//! let x = array![[1.0_f32, 2.0, 0.5]];
//!
//! // Classical LRP-ε, started from the logit: Zennit's relevance, summing to the logit.
//! let real = net.explain_with(&x, 1, &Explainer::real())?;
//! let total: f32 = real.values().sum();
//! assert!((total - net.forward(&x.clone().into_dyn())?[[0, 1]]).abs() < 1e-4);
//!
//! // Which inputs have a path of shares ≥ 0.1 to the predicted class.
//! let mask = net.explain_with(&x, Targets::Predicted, &Explainer::boolean(Threshold::new(0.1)?))?;
//! assert_eq!(mask.values().shape(), &[1, 3]);
//! # Ok::<(), klrp::Error>(())
//! ```
//!
//! The semiring is part of the explainer's type, so a result is used as what it is:
//!
//! ```compile_fail
//! # use klrp::explain::Explainer;
//! # use klrp::layers::Dense;
//! # use klrp::ndarray::array;
//! # use klrp::{Network, Threshold};
//! # let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 1.0]], None).unwrap())]).unwrap();
//! let mask = net.explain_with(&array![[1.0_f32, 2.0]], 0, &Explainer::boolean(Threshold::new(0.1).unwrap())).unwrap();
//! let total: f32 = mask.values().sum(); // a Boolean mask holds `bool`s, not numbers
//! ```

use crate::composite::Composite;
use crate::conversion::{Clamp01, Conversion, Identity, PerLayer, Threshold};
use crate::error::{Error, Result};
use crate::kernels;
use crate::layers::{Layer, LayerKind, Shares, Tensor};
use crate::network::{Network, Relevance, Trace, layer_index_error, one_hot};
use crate::rules::{EpsilonRule, Rule};
use crate::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, LogCounting, Lukasiewicz, MaxPlus, Product, Real,
    Semiring, Tropical, Viterbi,
};
use ndarray::{Array2, ArrayBase, ArrayD, Axis, Data, Dimension, Ix2, IxDyn};
use num_traits::Float;
use std::any::{Any, TypeId};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::str::FromStr;

/// Where the propagation starts: the relevance `R^(L)` of the output at the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Init {
    /// `R_i = 1` at the target, `0` elsewhere ([`one_hot`]): the K-LRP convention, any semiring.
    /// In the real semiring this is Zennit's relevance divided by the target's logit.
    #[default]
    One,
    /// `R_i = a_target` (the target's logit) at the target, `0` elsewhere
    /// ([`Trace::output_init`](crate::Trace::output_init)): classical LRP as Zennit computes it.
    /// Real semirings only (`Real<f32>`, `Real<f64>`).
    Logit,
}

/// Reads what `--init` takes: `one` ([`Init::One`]) or `output` ([`Init::Logit`]; `logit` is
/// read too).
///
/// ```
/// use klrp::explain::Init;
/// assert_eq!("output".parse::<Init>()?, Init::Logit);
/// assert_eq!("one".parse::<Init>()?, Init::One);
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for any other text.
impl FromStr for Init {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "output" | "logit" => Ok(Init::Logit),
            "one" => Ok(Init::One),
            other => Err(Error::invalid(format!("'{other}' is not one or output"))),
        }
    }
}

/// Which output each sample is explained for.
///
/// Converts from one class for every sample (`usize`), one class per sample (`Vec<usize>`,
/// `&[usize]`, `[usize; N]`), or [`Targets::Predicted`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// The class the network predicts for the sample (its largest output).
    Predicted,
    /// The same class for every sample.
    Class(usize),
    /// One class per sample.
    PerSample(Vec<usize>),
}

impl From<usize> for Targets {
    fn from(class: usize) -> Self {
        Targets::Class(class)
    }
}

impl From<Vec<usize>> for Targets {
    fn from(classes: Vec<usize>) -> Self {
        Targets::PerSample(classes)
    }
}

impl From<&[usize]> for Targets {
    fn from(classes: &[usize]) -> Self {
        Targets::PerSample(classes.to_vec())
    }
}

impl From<&Vec<usize>> for Targets {
    fn from(classes: &Vec<usize>) -> Self {
        Targets::PerSample(classes.clone())
    }
}

impl<const N: usize> From<[usize; N]> for Targets {
    fn from(classes: [usize; N]) -> Self {
        Targets::PerSample(classes.to_vec())
    }
}

impl<const N: usize> From<&[usize; N]> for Targets {
    fn from(classes: &[usize; N]) -> Self {
        Targets::PerSample(classes.to_vec())
    }
}

/// Reads what `--target` takes: `predicted`, one class `C` (every sample) or `C0,C1,…` (one per
/// sample).
///
/// ```
/// use klrp::explain::Targets;
/// assert_eq!("predicted".parse::<Targets>()?, Targets::Predicted);
/// assert_eq!("7".parse::<Targets>()?, Targets::Class(7));
/// assert_eq!("2,0".parse::<Targets>()?, Targets::PerSample(vec![2, 0]));
/// assert!("-1".parse::<Targets>().is_err());
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] if a class is not a non-negative integer.
impl FromStr for Targets {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let class = |c: &str| {
            c.trim().parse::<usize>().map_err(|_| {
                Error::invalid(format!(
                    "'{c}' is not a class index (a non-negative integer) or 'predicted'"
                ))
            })
        };
        if s.trim() == "predicted" {
            return Ok(Targets::Predicted);
        }
        let classes = s.split(',').map(class).collect::<Result<Vec<_>>>()?;
        Ok(match classes.as_slice() {
            [one] => Targets::Class(*one),
            _ => Targets::PerSample(classes),
        })
    }
}

impl Targets {
    /// One class per sample of `trace`'s batch (for [`Targets::Predicted`], each sample's largest
    /// output, the first on ties).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if [`Targets::PerSample`] lists a number of classes other than
    /// the batch size.
    pub fn resolve(&self, trace: &Trace) -> Result<Vec<usize>> {
        self.resolve_output(trace.output())
    }

    fn resolve_output(&self, output: &Tensor) -> Result<Vec<usize>> {
        let batch = output.shape().first().copied().unwrap_or(0);
        match self {
            Targets::Predicted => Ok(predictions(output)),
            Targets::Class(c) => Ok(vec![*c; batch]),
            Targets::PerSample(v) if v.len() == batch => Ok(v.clone()),
            Targets::PerSample(v) => Err(Error::invalid(format!(
                "the targets list {} classes for a batch of {batch} samples (give one class for \
                 every sample, or one per sample)",
                v.len()
            ))),
        }
    }
}

/// The largest output of every sample (the first one on ties).
fn predictions(output: &Tensor) -> Vec<usize> {
    output
        .outer_iter()
        .map(|s| {
            s.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                })
                .0
        })
        .collect()
}

/// A K-LRP configuration: semiring `K`, Θ per layer (`T` into `K`), rules and initialization.
///
/// Build it with a preset ([`real`](Explainer::real), [`boolean`](Explainer::boolean),
/// [`counting`](Explainer::counting), [`viterbi`](Explainer::viterbi)) or
/// [`new`](Explainer::new) for any semiring, adjust it with the `with_*` methods, and run it with
/// [`Network::explain_with`]. Θ is one value or per layer: anything `Into<PerLayer<T>>`.
///
/// ```
/// use klrp::explain::{Explainer, Init};
/// use klrp::{Composite, PerLayer, Threshold};
/// let per_layer = PerLayer::new(Threshold::new(0.1)?).with(2, Threshold::new(0.3)?);
/// let counting = Explainer::counting(per_layer).with_composite(Composite::epsilon_plus_flat());
/// assert_eq!(counting.theta().at(2).theta(), 0.3);
/// let zennit = Explainer::real().with_init(Init::Logit);
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Explainer<K, T> {
    composite: Composite,
    theta: PerLayer<T>,
    init: Init,
    keep_layers: bool,
    semiring: PhantomData<fn() -> K>,
}

impl<K: Semiring, T: Conversion<K>> Explainer<K, T> {
    /// Rules from `composite`, Θ from `theta` (one value or [`PerLayer`]), started from
    /// [`Init::One`], in the semiring `K` (name it when Θ converts into several semirings:
    /// `Explainer::<MySemiring, _>::new(…)`).
    pub fn new(composite: Composite, theta: impl Into<PerLayer<T>>) -> Self {
        Explainer {
            composite,
            theta: theta.into(),
            init: Init::One,
            keep_layers: false,
            semiring: PhantomData,
        }
    }

    /// The same, with the rules of `composite`.
    pub fn with_composite(mut self, composite: Composite) -> Self {
        self.composite = composite;
        self
    }

    /// The same, with Θ `theta` (one value or per layer).
    pub fn with_theta(mut self, theta: impl Into<PerLayer<T>>) -> Self {
        self.theta = theta.into();
        self
    }

    /// The same, started from `init`.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// The same, keeping every layer's relevance ([`Relevance::layer`]).
    pub fn keeping_layers(mut self) -> Self {
        self.keep_layers = true;
        self
    }

    /// The rules.
    pub fn composite(&self) -> &Composite {
        &self.composite
    }

    /// Θ per layer.
    pub fn theta(&self) -> &PerLayer<T> {
        &self.theta
    }

    /// The initialization.
    pub fn init(&self) -> Init {
        self.init
    }

    /// [`Error::Layer`] wrapping [`Error::Unsupported`] if the rules do not fit the semiring: in
    /// a semiring of path strengths ([`Semiring::UNIT_SHARES`]: [`Viterbi`],
    /// [`KBest`](crate::semiring::KBest), a
    /// [`Product`] with one of them) every dense and convolution layer (and standalone
    /// BatchNorm, [`StandaloneBatchNorm`](crate::layers::StandaloneBatchNorm)) needs shares in [0, 1] (max-abs, flat or w²), since "the strength of the strongest path"
    /// is a product of shares in [0, 1].
    ///
    /// (The general [`Network::propagate`] accepts any rule there: [`Clamp01`] clips each share
    /// into [0, 1], which is rarely what was meant; this path refuses it.)
    ///
    /// ```
    /// use klrp::layers::Dense;
    /// use klrp::ndarray::array;
    /// use klrp::semiring::KBest;
    /// use klrp::{Clamp01, Composite, Explainer, Network};
    /// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 0.5]], None)?)])?;
    /// assert!(Explainer::<KBest<3>, _>::new(Composite::viterbi(), Clamp01).check_fits(&net).is_ok());
    /// assert!(Explainer::<KBest<3>, _>::new(Composite::k_lrp(), Clamp01).check_fits(&net).is_err());
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// As above.
    pub fn check_fits(&self, net: &Network) -> Result<()> {
        if !K::UNIT_SHARES {
            return Ok(());
        }
        let rules = self.composite.assign(net.layers());
        for (i, (layer, rule)) in net.layers().iter().zip(&rules).enumerate() {
            let fits = matches!(rule, Rule::MaxAbs(_) | Rule::Flat(_) | Rule::WSquare(_));
            // A standalone BatchNorm is a diagonal linear layer under the same rules.
            let linear = layer.kind().is_linear() || layer.kind() == LayerKind::Normalization;
            if linear && !fits {
                return Err(Error::Unsupported(format!(
                    "the {} semiring needs shares in [0, 1] (rules max-abs, flat or w²), \
                     but composite '{}' gives this layer the rule '{}'; use Composite::viterbi()",
                    K::NAME,
                    self.composite.name(),
                    rule.name()
                ))
                .in_layer(i, layer.name()));
            }
        }
        Ok(())
    }
}

impl Explainer<Real<f32>, Identity> {
    /// Classical LRP as Zennit computes it: the real semiring, Θ(d) = d, LRP-ε (ε = 1e-6) on every
    /// dense and convolution layer, started from the target's logit ([`Init::Logit`]). Change the
    /// rules with [`with_composite`](Explainer::with_composite) (e.g.
    /// [`Composite::epsilon_gamma_box`]).
    pub fn real() -> Self {
        Explainer::new(Composite::uniform(EpsilonRule::default()), Identity).with_init(Init::Logit)
    }
}

impl Explainer<Boolean, Threshold> {
    /// Relevance masks: the Boolean semiring, Θ(d) = [d ≥ θ] (one θ or per layer), LRP-0 shares
    /// ([`Composite::k_lrp`]): is there a path of relevant shares from an input to the target.
    pub fn boolean(theta: impl Into<PerLayer<Threshold>>) -> Self {
        Explainer::new(Composite::k_lrp(), theta)
    }
}

impl Explainer<Counting, Threshold> {
    /// Path counts: the counting semiring (`u64`, saturating), Θ(d) = [d ≥ θ], LRP-0 shares: how
    /// many paths of relevant shares lead from an input to the target.
    pub fn counting(theta: impl Into<PerLayer<Threshold>>) -> Self {
        Explainer::new(Composite::k_lrp(), theta)
    }
}

impl Explainer<Viterbi, Clamp01> {
    /// Strongest paths: the Viterbi semiring, max-abs shares ([`Composite::viterbi`]), Θ the clamp
    /// to [0, 1]: the strength of the strongest path from an input to the target.
    pub fn viterbi() -> Self {
        Explainer::new(Composite::viterbi(), Clamp01)
    }
}

/// The initialization of `init` for a real semiring, or an error naming the semiring.
fn logit_init<K: Semiring>(trace: &crate::Trace, targets: &[usize]) -> Result<ArrayD<K>> {
    let init = trace.output_init(targets)?;
    if TypeId::of::<K>() == TypeId::of::<Real<f64>>() {
        let wide: Box<dyn Any> = Box::new(init.mapv(|v| Real(f64::from(v.0))));
        if let Ok(init) = wide.downcast::<ArrayD<K>>() {
            return Ok(*init);
        }
    }
    let boxed: Box<dyn Any> = Box::new(init);
    boxed.downcast::<ArrayD<K>>().map(|b| *b).map_err(|_| {
        Error::invalid(format!(
            "Init::Logit starts from the target's logit, a real number: it needs Real<f32> or \
             Real<f64>, not the {} semiring (use Init::One)",
            K::NAME
        ))
    })
}

impl Network {
    /// Explains `targets` for the batch `x` (any `f32` ndarray whose first axis is the batch) with
    /// `explainer`: the forward pass, the initialization, then
    /// `R^(l)_j = ⊕_k Θ^(l)(d_jk) ⊗ R^(l+1)_k` down to the input.
    ///
    /// ```
    /// use klrp::explain::{Explainer, Targets};
    /// use klrp::layers::Dense;
    /// use klrp::ndarray::array;
    /// use klrp::Network;
    /// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 2.0], [3.0, -1.0]], None)?)])?;
    /// let r = net.explain_with(&array![[1.0_f32, 0.0], [0.0, 2.0]], Targets::Predicted, &Explainer::viterbi())?;
    /// assert_eq!(r.targets(), vec![Some(1), Some(0)]); // outputs [1, 3] and [4, −2]
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`trace`](Network::trace) (a batch of the wrong shape — one sample without its batch
    /// axis is named as such —, non-finite inputs), [`one_hot`] (a target out of range, not one
    /// per sample) and [`propagate`](Network::propagate) (layer indices out of range);
    /// [`Explainer::check_fits`]; [`Error::InvalidArgument`] for [`Init::Logit`] outside the real
    /// semiring.
    pub fn explain_with<K, T, S, D>(
        &self,
        x: &ArrayBase<S, D>,
        targets: impl Into<Targets>,
        explainer: &Explainer<K, T>,
    ) -> Result<Relevance<K>>
    where
        K: Semiring,
        T: Conversion<K>,
        S: Data<Elem = f32>,
        D: Dimension,
    {
        explainer.check_fits(self)?;
        let x = x.view().into_dyn().to_owned();
        let trace = self.trace(&x)?;
        let targets = targets.into().resolve_output(trace.output())?;
        let init = match explainer.init {
            Init::One => one_hot::<K>(trace.output().shape(), &targets)?,
            Init::Logit => logit_init::<K>(&trace, &targets)?,
        };
        self.propagate(
            &trace,
            init,
            &explainer.composite,
            &explainer.theta,
            explainer.keep_layers,
        )
    }
}

/// The composite-facing propagation: rules from a [`Composite`], then the network's engine.
impl Network {
    /// K-LRP from `init` (shaped like the output batch) back to the input:
    /// `R^(l)_j = ⊕_k Θ^(l)(d_jk) ⊗ R^(l+1)_k`, with the rules of `composite` and `theta.at(l)`
    /// at layer `l`. With `keep_layers`, every layer's input relevance is kept. In a graph, node
    /// `l` sends relevance to each of its inputs through that operand's shares, and a tensor
    /// read by several nodes gets the ⊕ ([`Semiring::add`]) of what each sends back.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `init` does not match the output batch or `trace` was not made
    /// by this network ([`Error::InvalidArgument`] if it has another number of layers);
    /// [`Error::InvalidArgument`] if `composite` or `theta` names a layer index the network does not
    /// have; [`Error::NonFinite`] if `init` holds NaN/±Inf (or a saturated count);
    /// [`Error::TooLarge`] if the batch exceeds the element limit; [`Error::Layer`] if a
    /// layer cannot propagate (an unfused normalisation, a rule that does not apply).
    pub fn propagate<K: Semiring, T: Conversion<K>>(
        &self,
        trace: &Trace,
        init: ArrayD<K>,
        composite: &Composite,
        theta: &PerLayer<T>,
        keep_layers: bool,
    ) -> Result<Relevance<K>> {
        self.propagate_keeping_shares(trace, init, composite, theta, keep_layers, None)
    }

    /// [`propagate`](Network::propagate), also handing back every node's shares (one
    /// [`Shares`] per operand, by node index) when `shares_out` is given: the relevance-path
    /// search walks them.
    pub(crate) fn propagate_keeping_shares<'a, K: Semiring, T: Conversion<K>>(
        &'a self,
        trace: &Trace,
        init: ArrayD<K>,
        composite: &Composite,
        theta: &PerLayer<T>,
        keep_layers: bool,
        shares_out: Option<&mut Vec<Vec<Shares<'a>>>>,
    ) -> Result<Relevance<K>> {
        let layers = self.layers().len();
        if let Some(i) = composite.layer_overrides().find(|&i| i >= layers) {
            return Err(layer_index_error("Composite::with_layer", i, layers));
        }
        let rules = composite.assign(self.layers());
        self.propagate_rules(trace, init, &rules, theta, keep_layers, shares_out)
    }

    /// Explains `targets` (one per sample of `x`): forward pass, then K-LRP from
    /// `R_i = 1 if i = target else 0`.
    ///
    /// # Errors
    /// As [`trace`](Network::trace), [`one_hot`] and [`propagate`](Network::propagate).
    pub fn explain<K: Semiring, T: Conversion<K>>(
        &self,
        x: &Tensor,
        targets: &[usize],
        composite: &Composite,
        theta: &PerLayer<T>,
    ) -> Result<Relevance<K>> {
        let trace = self.trace(x)?;
        let init = one_hot::<K>(trace.output().shape(), targets)?;
        self.propagate(&trace, init, composite, theta, false)
    }
}

/// A semiring element as a plain Rust value: `Real<f32>` → `f32`, `Boolean` → `bool`,
/// `Counting` → `u64`, the `f64`-based semirings → `f64`, a [`Product`] → a pair.
pub trait PlainValue: Semiring {
    /// The plain type.
    type Value: Copy + Debug + PartialEq + Send + Sync + 'static;
    /// The value.
    fn value(self) -> Self::Value;
}

impl<F: Float + Debug + Send + Sync + 'static> PlainValue for Real<F> {
    type Value = F;
    fn value(self) -> F {
        self.0
    }
}

impl PlainValue for Boolean {
    type Value = bool;
    fn value(self) -> bool {
        self.0
    }
}

impl PlainValue for Counting {
    type Value = u64;
    fn value(self) -> u64 {
        self.0
    }
}

macro_rules! plain_f64 {
    ($($k:ty),*) => {$(
        impl PlainValue for $k {
            type Value = f64;
            fn value(self) -> f64 {
                self.0
            }
        }
    )*};
}
plain_f64!(
    FloatCounting,
    LogCounting,
    Viterbi,
    Tropical,
    MaxPlus,
    Fuzzy,
    Lukasiewicz
);

impl<A: PlainValue, B: PlainValue> PlainValue for Product<A, B> {
    type Value = (A::Value, B::Value);
    fn value(self) -> Self::Value {
        (self.0.value(), self.1.value())
    }
}

impl<K: PlainValue> Relevance<K> {
    /// The input relevance as plain values (`f32`, `bool`, `u64`, `f64`), shaped like the input
    /// batch.
    ///
    /// ```
    /// # use klrp::explain::Explainer;
    /// # use klrp::layers::Dense;
    /// # use klrp::ndarray::array;
    /// # use klrp::Network;
    /// # let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 2.0]], None)?)])?;
    /// let r = net.explain_with(&array![[1.0_f32, 1.0]], 0, &Explainer::real())?;
    /// assert!((r.values().sum() - 3.0).abs() < 1e-5); // the logit 1·1 + 2·1, up to ε
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn values(&self) -> ArrayD<K::Value> {
        self.input().mapv(K::value)
    }
}

impl<K: Semiring> Relevance<K> {
    /// The input relevance of sample `sample` as a 2-D map in `f64` ([`Semiring::to_f64`]): a
    /// `[H, W]` sample as it is, a `[C, H, W]` sample summed over its channels, a flat `[D]`
    /// sample as one row `[1, D]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no such sample or a sample has another number of
    /// axes.
    pub fn heatmap(&self, sample: usize) -> Result<Array2<f64>> {
        let input = self.input();
        let batch = input.shape().first().copied().unwrap_or(0);
        if sample >= batch {
            return Err(Error::invalid(format!(
                "heatmap of sample {sample}: the batch has {batch} samples"
            )));
        }
        let s = input.index_axis(Axis(0), sample).mapv(|v| v.to_f64());
        let map = match s.ndim() {
            1 => s.insert_axis(Axis(0)),
            2 => s,
            3 => s.sum_axis(Axis(0)),
            _ => {
                return Err(Error::invalid(format!(
                    "heatmap: a sample of shape {:?} is neither [D], [H, W] nor [C, H, W]",
                    s.shape()
                )));
            }
        };
        map.into_dimensionality::<Ix2>()
            .map_err(|e| Error::invalid(format!("heatmap: {e}")))
    }

    /// Per sample, how many inputs have non-zero relevance (for a Boolean mask: how many are on).
    pub fn nonzero_counts(&self) -> Vec<usize> {
        self.input()
            .outer_iter()
            .map(|s| s.iter().filter(|v| !v.is_zero()).count())
            .collect()
    }

    /// Per sample, the output the propagation started from: the first non-zero entry of the
    /// initialization (the target, for [`Init::One`] and [`Init::Logit`] — unless the target's
    /// logit is exactly 0), or `None` if it is all zero.
    pub fn targets(&self) -> Vec<Option<usize>> {
        self.init()
            .outer_iter()
            .map(|s| s.iter().position(|v| !v.is_zero()))
            .collect()
    }
}

/// One layer's K-LRP relevance, directly on the layer: `R_in[j] = ⊕_k Θ(d_jk) ⊗ R_out[k]`, for
/// any [`Layer`] (built-in or your own, `dyn Layer` included).
///
/// ```
/// use klrp::explain::LayerRelevance;
/// use klrp::layers::Dense;
/// use klrp::ndarray::{ArrayD, IxDyn, array};
/// use klrp::rules::ZeroRule;
/// use klrp::semiring::Counting;
/// use klrp::Threshold;
///
/// // z = [1·1 + 3·1] = [4]: shares d = [0.25, 0.75]; with θ = 0.5 only input 1's connection counts.
/// let dense = Dense::new(array![[1.0, 3.0]], None)?;
/// let x = array![[1.0_f32, 1.0]].into_dyn();
/// let r_out = ArrayD::from_elem(IxDyn(&[1, 1]), Counting(5));
/// let r_in = dense.relevance(&x, &r_out, &ZeroRule.into(), &Threshold::new(0.5)?)?;
/// assert_eq!(r_in.into_raw_vec_and_offset().0, vec![Counting(0), Counting(5)]);
/// # Ok::<(), klrp::Error>(())
/// ```
pub trait LayerRelevance: Layer {
    /// The relevance of the layer's input batch `input`, given the relevance `relevance_out` of
    /// its output (shaped like the output batch), the `rule` that forms the shares and Θ.
    ///
    /// # Errors
    /// As [`Layer::forward`] and [`Layer::shares`]; [`Error::ShapeMismatch`] if `relevance_out`
    /// is not shaped like the layer's output batch; [`Error::NonFinite`] for a non-finite share
    /// listed by [`Shares::Explicit`].
    fn relevance<K: Semiring, T: Conversion<K> + ?Sized>(
        &self,
        input: &Tensor,
        relevance_out: &ArrayD<K>,
        rule: &Rule,
        theta: &T,
    ) -> Result<ArrayD<K>> {
        let output = self.forward(input)?;
        if relevance_out.shape() != output.shape() {
            return Err(Error::shape(
                format!("relevance of the output of {}", self.name()),
                output.shape(),
                relevance_out.shape(),
            ));
        }
        match self.shares(input, &output, rule)? {
            Shares::Pass => relevance_out
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(IxDyn(input.shape()))
                .map_err(|e| Error::invalid(format!("relevance reshape: {e}"))),
            shares => kernels::propagate(&shares, theta, relevance_out, input.shape()),
        }
    }
}

impl<L: Layer + ?Sized> LayerRelevance for L {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Dense, ReLU};
    use crate::rules::{MaxAbsRule, ZeroRule};
    use ndarray::array;

    fn net() -> Network {
        Network::new(
            [3],
            vec![
                Box::new(Dense::new(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]], None).unwrap()),
                Box::new(ReLU),
                Box::new(Dense::new(array![[1.0, -0.5], [0.3, 1.0]], None).unwrap()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn real_preset_is_the_general_call_started_from_the_logit() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5], [0.5, -1.0, 2.0]];
        let xd = x.clone().into_dyn();
        let easy = net.explain_with(&x, [1, 0], &Explainer::real()).unwrap();
        let trace = net.trace(&xd).unwrap();
        let init = trace.output_init(&[1, 0]).unwrap();
        let c = Composite::uniform(EpsilonRule::default());
        let general = net
            .propagate(&trace, init, &c, &PerLayer::new(Identity), false)
            .unwrap();
        assert_eq!(easy.values(), general.input().mapv(|v| v.0));
        // Started from 1 instead, relevance is divided by the logit.
        let one = net
            .explain_with(&x, [1, 0], &Explainer::real().with_init(Init::One))
            .unwrap();
        let logits = net.forward(&xd).unwrap();
        for (s, t) in [(0, 1), (1, 0)] {
            let a: f32 = easy.values().index_axis(Axis(0), s).sum();
            let b: f32 = one.values().index_axis(Axis(0), s).sum();
            assert!((a - b * logits[[s, t]]).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn predicted_targets_are_the_largest_outputs() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5], [3.0, 0.0, 0.0]];
        let logits = net.forward(&x.clone().into_dyn()).unwrap();
        let want: Vec<Option<usize>> = logits
            .outer_iter()
            .map(|r| Some(if r[0] > r[1] { 0 } else { 1 }))
            .collect();
        let r = net
            .explain_with(&x, Targets::Predicted, &Explainer::viterbi())
            .unwrap();
        assert_eq!(r.targets(), want);
        assert_ne!(want[0], want[1], "the test needs two different predictions");
    }

    #[test]
    fn theta_as_one_value_or_per_layer() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let t = Threshold::new(0.1).unwrap();
        let one = net.explain_with(&x, 1, &Explainer::counting(t)).unwrap();
        let per = net
            .explain_with(&x, 1, &Explainer::counting(PerLayer::new(t)))
            .unwrap();
        assert_eq!(one.values(), per.values());
        // A per-layer θ that blocks the last layer leaves nothing.
        let blocked = PerLayer::new(t).with(2, Threshold::new(100.0).unwrap());
        let none = net
            .explain_with(&x, 1, &Explainer::counting(blocked))
            .unwrap();
        assert!(none.values().iter().all(|&c| c == 0));
        assert!(one.values().iter().any(|&c| c > 0));
    }

    #[test]
    fn out_of_range_layer_indices_are_errors() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let t = Threshold::new(0.1).unwrap();
        let e = net
            .explain_with(&x, 1, &Explainer::boolean(PerLayer::new(t).with(99, t)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("99") && e.contains("3 layers"), "{e}");
        let c = Composite::k_lrp().with_layer(3, ZeroRule);
        let e = net
            .explain_with(&x, 1, &Explainer::boolean(t).with_composite(c))
            .unwrap_err()
            .to_string();
        assert!(e.contains("with_layer(3") && e.contains("3 layers"), "{e}");
    }

    #[test]
    fn viterbi_refuses_shares_outside_the_unit_interval() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let e = net
            .explain_with(
                &x,
                1,
                &Explainer::viterbi().with_composite(Composite::k_lrp()),
            )
            .unwrap_err();
        let Error::Layer { index, source, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(index, 0);
        assert!(matches!(*source, Error::Unsupported(_)), "{source:?}");
        // Max-abs on every layer fits.
        let c = Composite::uniform(MaxAbsRule::default());
        assert!(
            net.explain_with(&x, 1, &Explainer::viterbi().with_composite(c))
                .is_ok()
        );
    }

    /// The same rule for every semiring of path strengths (`UNIT_SHARES`): `KBest<K>` and a
    /// product with Viterbi are refused with LRP-0 shares, Boolean (and a product of two
    /// semirings that are not strengths) are not.
    #[test]
    fn every_semiring_of_path_strengths_refuses_shares_outside_the_unit_interval() {
        use crate::semiring::KBest;
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let refused = |e: Error, name: &str| {
            let Error::Layer { index, source, .. } = e else {
                panic!("{e:?}")
            };
            assert_eq!(index, 0);
            let Error::Unsupported(m) = *source else {
                panic!("{source:?}")
            };
            assert!(
                m.contains(&format!("the {name} semiring needs shares in [0, 1]"))
                    && m.contains("'zero'"),
                "{m}"
            );
        };
        let kbest = |c: Composite| Explainer::<KBest<3>, _>::new(c, Clamp01);
        refused(
            net.explain_with(&x, 1, &kbest(Composite::k_lrp()))
                .unwrap_err(),
            "k-best",
        );
        // The relevance graph of `paths` refuses them too (src/paths/mod.rs, its tests).
        let r = net
            .explain_with(&x, 1, &kbest(Composite::viterbi()))
            .unwrap();
        assert!(r.input().iter().all(|v| v.best() > 0.0 && v.best() <= 1.0));
        let pair = |d: f32| Product(Viterbi(f64::from(d.clamp(0.0, 1.0))), Counting(1));
        let both = Explainer::new(Composite::k_lrp(), pair);
        refused(both.check_fits(&net).unwrap_err(), "product");
        let t = Threshold::new(0.1).unwrap();
        assert!(Explainer::boolean(t).check_fits(&net).is_ok());
        let masks = |d: f32| Product(Boolean(d >= 0.1), Counting(u64::from(d >= 0.1)));
        assert!(
            Explainer::new(Composite::k_lrp(), masks)
                .check_fits(&net)
                .is_ok()
        );
    }

    #[test]
    fn logit_init_needs_a_real_semiring() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let t = Threshold::new(0.1).unwrap();
        let e = net
            .explain_with(&x, 1, &Explainer::boolean(t).with_init(Init::Logit))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let wide =
            Explainer::<Real<f64>, _>::new(Composite::k_lrp(), Identity).with_init(Init::Logit);
        let r = net.explain_with(&x, 1, &wide).unwrap();
        let logit = net.forward(&x.clone().into_dyn()).unwrap()[[0, 1]];
        assert!((r.values().sum() - f64::from(logit)).abs() < 1e-4);
    }

    #[test]
    fn heatmaps_and_counts() {
        // x = 1 everywhere, w = [1, 0, 1, 1]: shares [1/3, 0, 1/3, 1/3]; θ = 0.1 keeps three.
        let net = Network::new(
            [2, 1, 2],
            vec![
                Box::new(crate::layers::Flatten),
                Box::new(Dense::new(array![[1.0, 0.0, 1.0, 1.0]], None).unwrap()),
            ],
        )
        .unwrap();
        let x = ArrayD::from_elem(IxDyn(&[1, 2, 1, 2]), 1.0_f32);
        let t = Threshold::new(0.1).unwrap();
        let r = net.explain_with(&x, 0, &Explainer::boolean(t)).unwrap();
        // Channel 0 is [on, off], channel 1 [on, on]: summed over channels [2, 1].
        assert_eq!(r.heatmap(0).unwrap(), array![[2.0, 1.0]]);
        assert_eq!(r.nonzero_counts(), vec![3]);
        assert!(r.heatmap(1).is_err());
    }

    #[test]
    fn one_layer_relevance_matches_the_network() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]].into_dyn();
        let t = Threshold::new(0.2).unwrap();
        let whole = net
            .explain::<Counting, _>(&x, &[1], &Composite::k_lrp(), &PerLayer::new(t))
            .unwrap();
        // Layer by layer, from the output down.
        let trace = net.trace(&x).unwrap();
        let mut r = one_hot::<Counting>(trace.output().shape(), &[1]).unwrap();
        for (i, layer) in net.layers().iter().enumerate().rev() {
            r = layer
                .relevance(trace.activation(i).unwrap(), &r, &ZeroRule.into(), &t)
                .unwrap();
        }
        assert_eq!(&r, whole.input());
        // Relevance of the wrong shape is named.
        let bad = ArrayD::from_elem(IxDyn(&[1, 3]), Counting(1));
        assert!(matches!(
            net.layers()[2].relevance(trace.activation(2).unwrap(), &bad, &ZeroRule.into(), &t),
            Err(Error::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn one_sample_without_batch_axis_is_named() {
        let net = net();
        let e = net
            .explain_with(&array![1.0_f32, 2.0, 0.5], 0, &Explainer::viterbi())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("without the batch axis") && msg.contains("expected [1, 3]"),
            "{msg}"
        );
    }
}
