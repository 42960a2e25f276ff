//! What `klrp explain` and `klrp predict` do with their options, independent of the command line.
//!
//! May import: `calibrate`, `composite`, `conversion`, `error`, `explain`, `layers`, `network`,
//! `rules`, `semiring`, `tensor` (docs/architecture.md, "Layers").
//!
//! [`ExplainOptions`] holds the explanation options as the command line's text (with feature
//! `cli` it is the command line's `clap` argument group, with serde a flat map);
//! [`ExplainSpec::from_options`] reads it into an [`ExplainSpec`] (semiring, rules, bounds, Θ,
//! initialization, max pooling, with the command line's meanings, defaults and error messages),
//! [`ExplainSpec::run`] explains a batch and returns plain arrays ([`RelevanceArray`]). The `klrp`
//! binary is argv → `ExplainOptions` → `ExplainSpec` → `run` → files; a binding for another
//! language fills the same `ExplainOptions` and calls the same steps.
//!
//! ```
//! use klrp::layers::{Dense, ReLU};
//! use klrp::spec::{ExplainOptions, ExplainSpec, RelevanceArray, RuleOptions, Targets};
//! use klrp::Network;
//! use ndarray::array;
//!
//! let net = Network::new(
//!     [3],
//!     vec![
//!         Box::new(Dense::new(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]], None)?),
//!         Box::new(ReLU),
//!         Box::new(Dense::new(array![[1.0, -0.5], [0.3, 1.0]], None)?),
//!     ],
//! )?;
//! let x = array![[1.0_f32, 2.0, 0.5]].into_dyn();
//! // klrp explain … --semiring counting --theta 0.1 --target predicted
//! let spec = ExplainSpec::from_options(&ExplainOptions {
//!     semiring: Some("counting".into()),
//!     rules: RuleOptions {
//!         theta: Some("0.1".into()),
//!         ..RuleOptions::default()
//!     },
//!     ..ExplainOptions::default()
//! })?;
//! let e = spec.run(&net, &x, &"predicted".parse::<Targets>()?, false)?;
//! assert_eq!(e.targets, [1]);
//! let RelevanceArray::Counting(counts) = &e.input else { unreachable!() };
//! assert_eq!(counts.shape(), &[1, 3]);
//! # Ok::<(), klrp::Error>(())
//! ```

use crate::calibrate;
use crate::composite::Composite;
use crate::conversion::{AbsThreshold, Clamp01, Conversion, Identity, PerLayer, Threshold};
use crate::error::{Error, Result};
use crate::layers::Tensor;
use crate::network::{NearKinks, Network, Relevance, Trace, one_hot};
use crate::rules::{Bound, EpsilonRule, Rule};
use crate::semiring::{Boolean, Counting, Real, Semiring, Viterbi};

/// Shared with the library's common path ([`crate::explain`]): `--target` and `--init` read into
/// these.
pub use crate::explain::{Init, Targets};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The default Θ threshold of the boolean and counting semirings (`--theta`).
pub const DEFAULT_THETA: f32 = 0.01;

/// The default box bounds of z^B when none are given and the input is not an image (`--low`,
/// `--high`).
pub const DEFAULT_BOUNDS: (f32, f32) = (-3.0, 3.0);

/// The default number of classes `klrp predict` prints (`--top`).
pub const DEFAULT_TOP: usize = 5;

/// Which semiring relevance is computed in (`--semiring`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SemiringKind {
    /// `real`: classical LRP in `f32` ([`Real`]); the default.
    #[default]
    Real,
    /// `boolean`: is there a path of shares passing Θ ([`Boolean`]).
    Boolean,
    /// `counting`: how many such paths, saturating at `u64::MAX` ([`Counting`]).
    Counting,
    /// `viterbi`: the strength of the strongest path, in [0, 1] ([`Viterbi`]).
    Viterbi,
}

impl SemiringKind {
    /// Whether Θ is a threshold here (boolean and counting); the others take no Θ options.
    pub fn is_thresholded(self) -> bool {
        matches!(self, SemiringKind::Boolean | SemiringKind::Counting)
    }
}

/// Reads `real`, `boolean`, `counting` or `viterbi`.
///
/// # Errors
/// [`Error::InvalidArgument`] for any other text.
impl FromStr for SemiringKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "real" => Ok(SemiringKind::Real),
            "boolean" => Ok(SemiringKind::Boolean),
            "counting" => Ok(SemiringKind::Counting),
            "viterbi" => Ok(SemiringKind::Viterbi),
            other => Err(Error::invalid(format!(
                "'{other}' is not real, boolean, counting or viterbi"
            ))),
        }
    }
}

/// How max pooling passes relevance (`--maxpool`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaxPool {
    /// `wta`: all of it to the window's maximum (the default).
    #[default]
    WinnerTakesAll,
    /// `average`: treated as average pooling (proportional; max-abs under the Viterbi composite).
    Average,
}

/// Reads `wta` or `average`.
///
/// # Errors
/// [`Error::InvalidArgument`] for any other text.
impl FromStr for MaxPool {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "wta" => Ok(MaxPool::WinnerTakesAll),
            "average" => Ok(MaxPool::Average),
            other => Err(Error::invalid(format!("'{other}' is not wta or average"))),
        }
    }
}

/// The rule of the first dense/conv layer (`--first-rule`): any rule, or z^B with the spec's
/// bounds.
#[derive(Clone, Debug, PartialEq)]
pub enum FirstRule {
    /// A rule that needs no bounds.
    Rule(Rule),
    /// `zbox`: z^B with [`ExplainSpec::bounds`] (or the defaults).
    ZBox,
}

/// Reads what [`Rule::parse_first`] reads.
///
/// # Errors
/// As [`Rule::parse_first`].
impl FromStr for FirstRule {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (low, high) = DEFAULT_BOUNDS;
        Ok(match Rule::parse_first(s, low, high)? {
            Rule::ZBox(_) => FirstRule::ZBox,
            rule => FirstRule::Rule(rule),
        })
    }
}

/// `--theta-auto`: per-layer thresholds calibrated on the explained batch itself
/// ([`crate::calibrate`], docs/semantics.md §9); `--theta-at` still overrides single layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThetaAuto {
    /// `fair-share:K`: `θ_l = K / n̄_l` on every dense and convolution layer
    /// ([`calibrate::fair_share`]).
    FairShare(f32),
    /// `inputs:F`: the fair-share θ whose Boolean masks keep a fraction `F` of each sample's
    /// non-zero inputs, on average over the batch
    /// ([`calibrate::for_input_fraction`]).
    Inputs(f64),
    /// `connections:F`: per dense and convolution layer, the θ that keeps a fraction `F` of the
    /// connections with a positive share
    /// ([`calibrate::for_connection_fraction`]).
    Connections(f64),
}

/// Reads `fair-share:K` (K finite and positive), `inputs:F` or `connections:F` (F in (0, 1]).
///
/// ```
/// use klrp::spec::ThetaAuto;
/// assert_eq!("inputs:0.2".parse::<ThetaAuto>()?, ThetaAuto::Inputs(0.2));
/// assert!("inputs:2".parse::<ThetaAuto>().is_err());
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for any other text or a value out of range.
impl FromStr for ThetaAuto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let usage = || {
            Error::invalid(format!(
                "'{s}' is not fair-share:K, inputs:F or connections:F (K > 0, 0 < F ≤ 1)"
            ))
        };
        let (kind, value) = s.trim().split_once(':').ok_or_else(usage)?;
        let v: f64 = value.trim().parse().map_err(|_| usage())?;
        let fraction = v.is_finite() && v > 0.0 && v <= 1.0;
        match kind.trim() {
            "fair-share" if v.is_finite() && v > 0.0 && v as f32 > 0.0 => {
                Ok(ThetaAuto::FairShare(v as f32))
            }
            "inputs" if fraction => Ok(ThetaAuto::Inputs(v)),
            "connections" if fraction => Ok(ThetaAuto::Connections(v)),
            _ => Err(usage()),
        }
    }
}

/// The `--help` heading of the Θ options.
#[cfg(feature = "cli")]
const THETA_HEADING: &str = "Θ (boolean, counting)";

/// The explanation options as text, as `klrp explain` receives them: each field holds the value
/// of the flag of its name (`theta_at` is `--theta-at`; `None`, empty or `false`: not given).
/// [`ExplainSpec::from_options`] reads them, with the command line's checks and messages.
///
/// [`Default`] is no option given. With serde the options are one flat map under the field
/// names (`{"semiring": "counting", "theta": "0.05", "theta_at": ["3=0.1"]}`; missing fields
/// are not given, unknown ones are ignored). With feature `cli` this is the `clap` argument
/// group of `klrp explain` (`clap::Args`); `klrp paths` takes only [`rules`](Self::rules).
///
/// ```
/// use klrp::spec::{ExplainOptions, ExplainSpec, RuleOptions, SemiringKind};
/// // klrp explain … --semiring boolean --theta 0.05
/// let options = ExplainOptions {
///     semiring: Some("boolean".into()),
///     rules: RuleOptions {
///         theta: Some("0.05".into()),
///         ..RuleOptions::default()
///     },
///     ..ExplainOptions::default()
/// };
/// let spec = ExplainSpec::try_from(&options)?;
/// assert_eq!((spec.semiring, spec.theta), (SemiringKind::Boolean, Some(0.05)));
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Rules"))]
pub struct ExplainOptions {
    /// `--semiring S`: `real`, `boolean`, `counting` or `viterbi` ([`SemiringKind`]); default
    /// `real`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "S",
            value_parser = ["real", "boolean", "counting", "viterbi"],
            help = "The semiring [default: real]"
        )
    )]
    pub semiring: Option<String>,
    /// `--init I`: `output` or `one` ([`Init`]); default `output` for real, `one` (the only
    /// choice) for the other semirings.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "I",
            value_parser = ["output", "one"],
            help = "output (start from the target's logit; default for real) | one (start from 1, \
                    the K-LRP convention; default for the other semirings)"
        )
    )]
    pub init: Option<String>,
    /// The options `klrp paths` takes too: rules, bounds, max pooling and Θ (flattened: with
    /// serde and on the command line its fields stand beside the others).
    #[serde(flatten)]
    #[cfg_attr(feature = "cli", command(flatten))]
    pub rules: RuleOptions,
    /// `--theta-auto KIND:V`: `fair-share:K`, `inputs:F` or `connections:F` ([`ThetaAuto`]);
    /// default none (`--theta` or its default).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "KIND:V",
            help_heading = THETA_HEADING,
            help = "Per-layer thresholds calibrated on the input batch: fair-share:K (θ = K / n̄ \
                    on every dense/conv layer), inputs:F (masks keep a fraction F of the non-zero \
                    inputs) or connections:F (each layer keeps a fraction F of its positive \
                    shares); --theta-at still overrides single layers. The chosen θ are printed"
        )
    )]
    pub theta_auto: Option<String>,
}

/// The options `klrp explain` and `klrp paths` share, as text: rules, box bounds, max pooling and
/// Θ ([`ExplainOptions::rules`]; with feature `cli`, their `clap` argument group).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Rules"))]
pub struct RuleOptions {
    /// `--rule R`: one rule on every dense and conv layer ([`Rule`]'s syntax,
    /// [`crate::rules::RULE_SYNTAX`]); default none: the semiring's default rules (see
    /// [`ExplainSpec::rule`]).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "R",
            allow_hyphen_values = true,
            help = "One rule on every dense and conv layer: zero | epsilon[=E] | gamma[=G] | zplus \
                    | alpha-beta=A,B | flat | wsquare | max-abs[=D] (epsilon: E = 1e-6, gamma: G = \
                    0.25 by default)"
        )
    )]
    pub rule: Option<String>,
    /// `--first-rule R`: the rule of the first dense/conv layer, `zbox` or any rule
    /// ([`FirstRule`]); default none.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "R",
            allow_hyphen_values = true,
            help = "The rule of the first dense/conv layer: zbox | flat | wsquare | any --rule"
        )
    )]
    pub first_rule: Option<String>,
    /// `--composite C`: a name of [`Composite::NAMES`]; default none.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "C",
            value_parser = Composite::NAMES,
            help = "Zennit's composite of that name (or k-lrp, viterbi: the non-real defaults; \
                    lrp-0: LRP-0 with no ε anywhere, gradient × input on a ReLU network)"
        )
    )]
    pub composite: Option<String>,
    /// `--low L`: the z^B lower box bound, or `L0,L1,…` one per channel; default -3
    /// ([`DEFAULT_BOUNDS`]; the command line uses each channel's pixel range for images).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "L",
            allow_hyphen_values = true,
            help = "z^B lower box bound, or L0,L1,… one per channel (zbox and epsilon-gamma-box); \
                    default -3 for .npy inputs, the exact pixel range of each channel for images"
        )
    )]
    pub low: Option<String>,
    /// `--high H`: the z^B upper box bound; default 3 (as `low`).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "H",
            allow_hyphen_values = true,
            help = "z^B upper box bound, or H0,H1,… one per channel; default 3 for .npy inputs, \
                    the exact pixel range of each channel for images"
        )
    )]
    pub high: Option<String>,
    /// `--maxpool P`: `wta` or `average` ([`MaxPool`]); default `wta`.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "P",
            value_parser = ["wta", "average"],
            help = "wta (winner-take-all, default) | average (proportional to activations)"
        )
    )]
    pub maxpool: Option<String>,
    /// `--theta T`: the Θ threshold on every layer (boolean and counting); default 0.01
    /// ([`DEFAULT_THETA`]).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "T",
            allow_hyphen_values = true,
            help_heading = THETA_HEADING,
            help = "Θ threshold on every layer (boolean, counting; default 0.01): a share d passes \
                    if d ≥ T"
        )
    )]
    pub theta: Option<String>,
    /// Every `--theta-at I=T` in order: threshold `T` at layer `I`; default none.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "I=T",
            allow_hyphen_values = true,
            action = clap::ArgAction::Append,
            help_heading = THETA_HEADING,
            help = "Threshold T at layer I (repeatable; indices as `klrp info` prints them)"
        )
    )]
    pub theta_at: Vec<String>,
    /// `--theta-abs`: pass a share if `|d| > T` instead of `d ≥ T`; default off.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            help_heading = THETA_HEADING,
            help = "Pass a share if |d| > T instead of d ≥ T"
        )
    )]
    pub theta_abs: bool,
}

/// The options for [`ExplainSpec::from_options`].
#[allow(deprecated)]
impl From<&ExplainArgs<'_>> for ExplainOptions {
    fn from(a: &ExplainArgs<'_>) -> Self {
        let owned = |s: Option<&str>| s.map(str::to_string);
        ExplainOptions {
            semiring: owned(a.semiring),
            init: owned(a.init),
            rules: RuleOptions {
                rule: owned(a.rule),
                first_rule: owned(a.first_rule),
                composite: owned(a.composite),
                low: owned(a.low),
                high: owned(a.high),
                maxpool: owned(a.maxpool),
                theta: owned(a.theta),
                theta_at: a.theta_at.iter().map(|s| s.to_string()).collect(),
                theta_abs: a.theta_abs,
            },
            theta_auto: owned(a.theta_auto),
        }
    }
}

/// The `explain` options as borrowed text (`None`: not given), for
/// [`ExplainSpec::from_args`]: what [`ExplainOptions`] holds owned.
#[deprecated(note = "use `ExplainOptions` (owned) and `ExplainSpec::from_options`")]
#[derive(Clone, Debug, Default)]
pub struct ExplainArgs<'a> {
    /// `--semiring`.
    pub semiring: Option<&'a str>,
    /// `--rule`.
    pub rule: Option<&'a str>,
    /// `--first-rule`.
    pub first_rule: Option<&'a str>,
    /// `--composite`.
    pub composite: Option<&'a str>,
    /// `--low`.
    pub low: Option<&'a str>,
    /// `--high`.
    pub high: Option<&'a str>,
    /// `--theta`.
    pub theta: Option<&'a str>,
    /// Every `--theta-at` (`INDEX=T`), in order.
    pub theta_at: Vec<&'a str>,
    /// `--theta-abs` was given.
    pub theta_abs: bool,
    /// `--theta-auto`.
    pub theta_auto: Option<&'a str>,
    /// `--init`.
    pub init: Option<&'a str>,
    /// `--maxpool`.
    pub maxpool: Option<&'a str>,
}

/// How to explain: everything `klrp explain` takes besides the model, input, target and output
/// files. [`Default`] is `klrp explain` without options.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExplainSpec {
    /// `--semiring`: real (default), boolean, counting or viterbi.
    pub semiring: SemiringKind,
    /// `--rule`: one rule on every dense and conv layer. Without it and without a composite:
    /// LRP-ε (ε = 1e-6) for real, [`Composite::k_lrp`] (LRP-0) for boolean and counting,
    /// [`Composite::viterbi`] (max-abs) for viterbi.
    pub rule: Option<Rule>,
    /// `--first-rule`: the rule of the first dense/conv layer (overrides the rule or composite
    /// there).
    pub first_rule: Option<FirstRule>,
    /// `--composite`: a name [`Composite::from_name`] knows (not together with `rule`).
    pub composite: Option<String>,
    /// `--low`/`--high`: the z^B box bounds of `first_rule` `zbox` and of `epsilon-gamma-box`;
    /// default ±3 ([`DEFAULT_BOUNDS`]). The command line fills in each channel's exact pixel
    /// range for image inputs.
    pub bounds: Option<(Bound, Bound)>,
    /// `--theta`: a share `d` passes Θ if `d ≥ T` (boolean and counting only); default 0.01
    /// ([`DEFAULT_THETA`]).
    pub theta: Option<f32>,
    /// `--theta-at I=T`: threshold `T` at layer `I` (indices as `klrp info` prints them).
    pub theta_at: Vec<(usize, f32)>,
    /// `--theta-abs`: pass a share if `|d| > T` instead of `d ≥ T`.
    pub theta_abs: bool,
    /// `--theta-auto`: thresholds calibrated on the explained batch instead of `theta`.
    pub theta_auto: Option<ThetaAuto>,
    /// `--init`: where propagation starts; default [`Init::Logit`] for real, [`Init::One`]
    /// for the others (which only take `One`).
    pub init: Option<Init>,
    /// `--maxpool`: winner-take-all (default) or average.
    pub maxpool: MaxPool,
}

const THETA_ONLY_THRESHOLDED: &str =
    "--theta, --theta-at, --theta-abs and --theta-auto apply to the boolean and counting semirings";

/// Prefixes `flag: ` to an error's message (the message without "invalid argument: ").
fn flagged(flag: &str, e: Error) -> Error {
    match e {
        Error::InvalidArgument(m) => Error::invalid(format!("{flag}: {m}")),
        other => Error::invalid(format!("{flag}: {other}")),
    }
}

/// A flag's value read by `T`'s `FromStr` (`None`: not given), or its error naming `flag`.
fn parse_flag<T: FromStr<Err = Error>>(flag: &str, value: &Option<String>) -> Result<Option<T>> {
    value
        .as_deref()
        .map(|s| s.parse::<T>().map_err(|e| flagged(flag, e)))
        .transpose()
}

/// A finite number, or an error naming `flag`.
fn parse_number(flag: &str, s: &str) -> Result<f32> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::invalid(format!(
            "{flag}: '{s}' is not a finite number"
        ))),
    }
}

/// A box bound: one number for every input, or `V0,V1,…` one per channel (the first axis of a
/// sample; [`Bound::PerChannel`]).
fn parse_bound(flag: &str, s: &str) -> Result<Bound> {
    if !s.contains(',') {
        return Ok(Bound::Scalar(parse_number(flag, s)?));
    }
    let values = s
        .split(',')
        .map(|v| parse_number(flag, v))
        .collect::<Result<Vec<f32>>>()?;
    Ok(Bound::PerChannel(values.into()))
}

fn parse_index(s: &str) -> Result<usize> {
    s.trim()
        .parse::<usize>()
        .map_err(|_| Error::invalid(format!("'{s}' is not a non-negative integer")))
}

impl ExplainSpec {
    /// Reads the command line's option strings, checking each value and how they combine.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] whose message names the flag, as `klrp explain` prints it (a
    /// usage error there), e.g. `--semiring: 'tropical' is not real, boolean, counting or viterbi`
    /// or `give either --rule or --composite, not both`.
    pub fn from_options(options: &ExplainOptions) -> Result<ExplainSpec> {
        let rules = &options.rules;
        let semiring: SemiringKind =
            parse_flag("--semiring", &options.semiring)?.unwrap_or_default();
        if !semiring.is_thresholded()
            && (rules.theta.is_some()
                || !rules.theta_at.is_empty()
                || rules.theta_abs
                || options.theta_auto.is_some())
        {
            return Err(Error::invalid(THETA_ONLY_THRESHOLDED));
        }
        let theta_auto = parse_flag("--theta-auto", &options.theta_auto)?;
        let init = parse_flag("--init", &options.init)?;
        let maxpool = parse_flag("--maxpool", &rules.maxpool)?.unwrap_or_default();
        let rule = parse_flag("--rule", &rules.rule)?;
        let first_rule = parse_flag("--first-rule", &rules.first_rule)?;
        let theta = rules
            .theta
            .as_deref()
            .map(|t| parse_number("--theta", t))
            .transpose()?;
        let theta_at = rules
            .theta_at
            .iter()
            .map(|spec| {
                let Some((i, t)) = spec.split_once('=') else {
                    return Err(Error::invalid(format!(
                        "--theta-at: write INDEX=T, got '{spec}'"
                    )));
                };
                let i = parse_index(i).map_err(|e| flagged("--theta-at", e))?;
                Ok((i, parse_number("--theta-at", t)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let spec = ExplainSpec {
            semiring,
            rule,
            first_rule,
            composite: rules.composite.as_deref().map(|c| c.trim().to_string()),
            bounds: None,
            theta,
            theta_at,
            theta_abs: rules.theta_abs,
            theta_auto,
            init,
            maxpool,
        };
        if (rules.low.is_some() || rules.high.is_some()) && !spec.uses_bounds() {
            return Err(Error::invalid(
                "--low/--high apply to --first-rule zbox and --composite epsilon-gamma-box",
            ));
        }
        let bounds = match (&rules.low, &rules.high) {
            (None, None) => None,
            (Some(l), Some(h)) => Some((parse_bound("--low", l)?, parse_bound("--high", h)?)),
            _ => return Err(Error::invalid("give both --low and --high")),
        };
        let spec = ExplainSpec { bounds, ..spec };
        spec.check()?;
        Ok(spec)
    }

    /// [`from_options`](Self::from_options) on borrowed strings.
    ///
    /// # Errors
    /// As [`from_options`](Self::from_options).
    #[deprecated(note = "use `ExplainSpec::from_options(&ExplainOptions)`")]
    #[allow(deprecated)]
    pub fn from_args(args: &ExplainArgs<'_>) -> Result<ExplainSpec> {
        ExplainSpec::from_options(&args.into())
    }

    /// Whether the spec uses box bounds (`first_rule` zbox or the `epsilon-gamma-box` composite).
    pub fn uses_bounds(&self) -> bool {
        self.first_rule == Some(FirstRule::ZBox)
            || self.composite.as_deref() == Some("epsilon-gamma-box")
    }

    /// Checks how the options combine (what [`from_options`](Self::from_options) checks, for a
    /// spec built directly).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`]: Θ options for real or viterbi, `init` output for a semiring
    /// other than real, both `rule` and `composite`, bounds that nothing uses, an unknown
    /// composite, an invalid threshold.
    pub fn check(&self) -> Result<()> {
        if !self.semiring.is_thresholded()
            && (self.theta.is_some()
                || !self.theta_at.is_empty()
                || self.theta_abs
                || self.theta_auto.is_some())
        {
            return Err(Error::invalid(THETA_ONLY_THRESHOLDED));
        }
        if self.theta_auto.is_some() && (self.theta.is_some() || self.theta_abs) {
            return Err(Error::invalid(
                "--theta-auto chooses the thresholds: give it without --theta and --theta-abs",
            ));
        }
        if self.init == Some(Init::Logit) && self.semiring != SemiringKind::Real {
            return Err(Error::invalid(
                "--init output is defined for the real semiring only",
            ));
        }
        if self.rule.is_some() && self.composite.is_some() {
            return Err(Error::invalid(
                "give either --rule or --composite, not both",
            ));
        }
        if self.bounds.is_some() && !self.uses_bounds() {
            return Err(Error::invalid(
                "--low/--high apply to --first-rule zbox and --composite epsilon-gamma-box",
            ));
        }
        if let Some(c) = &self.composite {
            let (l, h) = DEFAULT_BOUNDS;
            Composite::from_name(c, l, h).map_err(|e| flagged("--composite", e))?;
        }
        if let Some((l, h)) = &self.bounds {
            crate::rules::ZBoxRule::new(l.clone(), h.clone())
                .map_err(|e| flagged("--low/--high", e))?;
        }
        let t = self.theta.unwrap_or(DEFAULT_THETA);
        for t in std::iter::once(t).chain(self.theta_at.iter().map(|&(_, t)| t)) {
            Threshold::new(t).map_err(|e| flagged("--theta", e))?;
        }
        Ok(())
    }

    /// Checks the spec against a network with `layers` layers: every `theta_at` index exists.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first index that does not exist.
    pub fn check_layers(&self, layers: usize) -> Result<()> {
        if let Some(&(i, _)) = self.theta_at.iter().find(|&&(i, _)| i >= layers) {
            return Err(Error::invalid(format!(
                "--theta-at: layer {i} does not exist (the model has layers 0..={}; see `klrp \
                 info`)",
                layers.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// The composite the spec describes: `composite` or `rule` (or the semiring's default), then
    /// `first_rule`, then average max pooling if asked.
    ///
    /// # Errors
    /// As [`check`](Self::check).
    pub fn composite(&self) -> Result<Composite> {
        self.check()?;
        let (low, high) = match &self.bounds {
            Some((l, h)) => (l.clone(), h.clone()),
            None => (
                Bound::Scalar(DEFAULT_BOUNDS.0),
                Bound::Scalar(DEFAULT_BOUNDS.1),
            ),
        };
        let mut composite = match (&self.composite, &self.rule) {
            (Some(c), _) => Composite::from_name(c, low.clone(), high.clone())?,
            (None, Some(r)) => Composite::uniform(r.clone()),
            (None, None) => match self.semiring {
                SemiringKind::Real => Composite::uniform(EpsilonRule::default()),
                SemiringKind::Boolean | SemiringKind::Counting => Composite::k_lrp(),
                SemiringKind::Viterbi => Composite::viterbi(),
            },
        };
        match &self.first_rule {
            Some(FirstRule::Rule(r)) => composite = composite.with_first_linear(r.clone()),
            Some(FirstRule::ZBox) => {
                composite = composite.with_first_linear(crate::rules::ZBoxRule::new(low, high)?)
            }
            None => {}
        }
        if self.maxpool == MaxPool::Average {
            composite = composite.with_max_pool_as_average();
        }
        Ok(composite)
    }

    /// Explains `x` (a batch `[N, …]`) for `targets`: forward pass, the spec's composite and Θ,
    /// K-LRP in the spec's semiring. With `keep_layers`, the relevance at every layer's input is
    /// kept too.
    ///
    /// # Errors
    /// As [`check`](Self::check) and [`check_layers`](Self::check_layers); as
    /// [`Network::trace`] and [`Network::propagate`] (shapes, non-finite input, size limits);
    /// [`Error::TargetOutOfRange`]; [`Error::InvalidArgument`] if `targets` lists neither one
    /// class nor one per sample.
    pub fn run(
        &self,
        net: &Network,
        x: &Tensor,
        targets: &Targets,
        keep_layers: bool,
    ) -> Result<Explanation> {
        self.check()?;
        self.check_layers(net.layers().len())?;
        let composite = self.composite()?;
        let start = Instant::now();
        let trace = net.trace(x)?;
        let forward = start.elapsed();
        let near_kinks = net.near_kinks(&trace)?;
        let start = Instant::now();
        let targets = targets
            .resolve(&trace)
            .map_err(|e| flagged("--target", e))?;
        let run = Run {
            net,
            x,
            trace: &trace,
            targets: &targets,
            composite: &composite,
            keep_layers,
        };
        let init_output = match self.init {
            Some(i) => i == Init::Logit,
            None => self.semiring == SemiringKind::Real,
        };
        let mut thetas = Vec::new();
        let (input, layers, overflowed) = match self.semiring {
            SemiringKind::Real => {
                let init = if init_output {
                    trace.output_init(&targets)?
                } else {
                    one_hot::<Real<f32>>(trace.output().shape(), &targets)?
                };
                let r = run.propagate(init, &PerLayer::new(Identity))?;
                collect(&r, |v: &Real<f32>| v.0, RelevanceArray::Real)
            }
            SemiringKind::Viterbi => {
                // Path strengths need shares in [0, 1]: refused as `Explainer` refuses them.
                crate::explain::Explainer::<Viterbi, Clamp01>::new(composite.clone(), Clamp01)
                    .check_fits(net)?;
                let r: Relevance<Viterbi> = run.propagate_one_hot(&PerLayer::new(Clamp01))?;
                collect(&r, |v: &Viterbi| v.0 as f32, RelevanceArray::Viterbi)
            }
            SemiringKind::Boolean => {
                let r: Relevance<Boolean>;
                (r, thetas) = self.with_theta(&run)?;
                collect(&r, |v: &Boolean| v.0, RelevanceArray::Boolean)
            }
            SemiringKind::Counting => {
                let r: Relevance<Counting>;
                (r, thetas) = self.with_theta(&run)?;
                collect(&r, |v: &Counting| v.0, RelevanceArray::Counting)
            }
        };
        Ok(Explanation {
            input,
            layers,
            targets,
            thetas,
            overflowed,
            near_kinks,
            forward,
            relevance: start.elapsed(),
        })
    }

    fn with_theta<K: Semiring>(&self, run: &Run<'_>) -> Result<(Relevance<K>, Vec<f32>)>
    where
        Threshold: Conversion<K>,
        AbsThreshold: Conversion<K>,
    {
        let layers = run.net.layers().len();
        let base = self.theta.unwrap_or(DEFAULT_THETA);
        let listed = |p: &PerLayer<Threshold>| (0..layers).map(|i| p.at(i).theta()).collect();
        if let Some(auto) = self.theta_auto {
            let flag = |e: Error| flagged("--theta-auto", e);
            let mut p = match auto {
                ThetaAuto::FairShare(k) => calibrate::fair_share(run.net, run.x, k),
                ThetaAuto::Inputs(f) => {
                    calibrate::for_input_fraction(run.net, run.x, run.targets, run.composite, f)
                        .map(|c| c.theta)
                }
                ThetaAuto::Connections(f) => {
                    calibrate::for_connection_fraction(run.net, run.x, run.composite, f)
                }
            }
            .map_err(flag)?;
            for &(i, t) in &self.theta_at {
                p.set(i, Threshold::new(t)?);
            }
            return Ok((run.propagate_one_hot(&p)?, listed(&p)));
        }
        if self.theta_abs {
            let mut p = PerLayer::new(AbsThreshold::new(base)?);
            for &(i, t) in &self.theta_at {
                p.set(i, AbsThreshold::new(t)?);
            }
            let thetas = (0..layers).map(|i| p.at(i).theta()).collect();
            Ok((run.propagate_one_hot(&p)?, thetas))
        } else {
            let mut p = PerLayer::new(Threshold::new(base)?);
            for &(i, t) in &self.theta_at {
                p.set(i, Threshold::new(t)?);
            }
            Ok((run.propagate_one_hot(&p)?, listed(&p)))
        }
    }
}

/// [`ExplainSpec::from_options`].
impl TryFrom<&ExplainOptions> for ExplainSpec {
    type Error = Error;
    fn try_from(options: &ExplainOptions) -> Result<ExplainSpec> {
        ExplainSpec::from_options(options)
    }
}

/// One propagation's fixed inputs.
struct Run<'a> {
    net: &'a Network,
    x: &'a Tensor,
    trace: &'a Trace,
    targets: &'a [usize],
    composite: &'a Composite,
    keep_layers: bool,
}

impl Run<'_> {
    fn propagate<K: Semiring, T: Conversion<K>>(
        &self,
        init: ArrayD<K>,
        theta: &PerLayer<T>,
    ) -> Result<Relevance<K>> {
        self.net
            .propagate(self.trace, init, self.composite, theta, self.keep_layers)
    }

    fn propagate_one_hot<K: Semiring, T: Conversion<K>>(
        &self,
        theta: &PerLayer<T>,
    ) -> Result<Relevance<K>> {
        let init = one_hot::<K>(self.trace.output().shape(), self.targets)?;
        self.propagate(init, theta)
    }
}

type Collected = (RelevanceArray, Option<Vec<RelevanceArray>>, usize);

fn collect<K: Semiring, T>(
    r: &Relevance<K>,
    value: impl Fn(&K) -> T + Copy,
    wrap: impl Fn(ArrayD<T>) -> RelevanceArray,
) -> Collected {
    let layers = r.layer(0).is_some().then(|| {
        (0..)
            .map_while(|i| r.layer(i))
            .map(|a| wrap(a.map(value)))
            .collect()
    });
    (wrap(r.input().map(value)), layers, r.overflowed())
}

/// Relevance as a plain array of the semiring's values.
#[derive(Clone, Debug, PartialEq)]
pub enum RelevanceArray {
    /// Real relevance (`f32`).
    Real(ArrayD<f32>),
    /// Viterbi path strengths in [0, 1] (stored as `f32`).
    Viterbi(ArrayD<f32>),
    /// Boolean masks.
    Boolean(ArrayD<bool>),
    /// Path counts (`u64::MAX` means "2^64 − 1 or more").
    Counting(ArrayD<u64>),
}

impl RelevanceArray {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            RelevanceArray::Real(a) | RelevanceArray::Viterbi(a) => a.shape(),
            RelevanceArray::Boolean(a) => a.shape(),
            RelevanceArray::Counting(a) => a.shape(),
        }
    }

    /// The values as `f64` (false/true as 0/1).
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            RelevanceArray::Real(a) | RelevanceArray::Viterbi(a) => a.mapv(f64::from),
            RelevanceArray::Boolean(a) => a.mapv(|b| f64::from(u8::from(b))),
            RelevanceArray::Counting(a) => a.mapv(|c| c as f64),
        }
    }
}

/// What [`ExplainSpec::run`] returns.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The input relevance, shaped like the input batch.
    pub input: RelevanceArray,
    /// With `keep_layers`: the relevance at the input of every layer `i` (index `i`), and at
    /// the output (the initialization, last).
    pub layers: Option<Vec<RelevanceArray>>,
    /// The class explained for each sample.
    pub targets: Vec<usize>,
    /// Boolean and counting: Θ's threshold at every layer (index = layer; `--theta`, `--theta-at`
    /// or what `--theta-auto` chose). Empty for real and viterbi.
    pub thetas: Vec<f32>,
    /// How many input relevance values overflowed (non-finite reals, saturated counts).
    pub overflowed: usize,
    /// The units of the forward pass within `f32` rounding of a kink (max-pooling near-ties,
    /// ReLU inputs at 0), per layer ([`Network::near_kinks`]): where the relevance may differ
    /// from a reference computed in another precision.
    pub near_kinks: NearKinks,
    /// Time of the forward pass.
    pub forward: Duration,
    /// Time of the relevance pass (initialization included).
    pub relevance: Duration,
}

/// `exp(z_i) / Σ_j exp(z_j)`, computed in `f64` with the maximum subtracted.
///
/// ```
/// let p = klrp::spec::softmax(&[0.0, 0.0]);
/// assert_eq!(p, [0.5, 0.5]);
/// ```
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &z| m.max(f64::from(z)));
    let exp: Vec<f64> = logits.iter().map(|&z| (f64::from(z) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// One class of a prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassProbability {
    /// The class index (position in the sample's flattened output).
    pub class: usize,
    /// Its softmax probability.
    pub probability: f64,
}

/// The `top` most probable classes of every sample of `x`, best first (ties: lower index first),
/// by the softmax of the network's outputs (`klrp predict`).
///
/// ```
/// use klrp::layers::Dense;
/// use klrp::Network;
/// use ndarray::array;
/// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 0.0], [0.0, 1.0]], None)?)])?;
/// let top = klrp::spec::predict(&net, &array![[0.0_f32, 2.0]].into_dyn(), 1)?;
/// assert_eq!(top[0][0].class, 1);
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] if `top` is 0; as [`Network::forward`].
pub fn predict(net: &Network, x: &Tensor, top: usize) -> Result<Vec<Vec<ClassProbability>>> {
    if top == 0 {
        return Err(Error::invalid("--top: K must be at least 1"));
    }
    let out = net.forward(x)?;
    Ok(out
        .outer_iter()
        .map(|sample| {
            let logits: Vec<f32> = sample.iter().copied().collect();
            let mut classes: Vec<ClassProbability> = softmax(&logits)
                .into_iter()
                .enumerate()
                .map(|(class, probability)| ClassProbability { class, probability })
                .collect();
            classes.sort_by(|a, b| {
                b.probability
                    .total_cmp(&a.probability)
                    .then(a.class.cmp(&b.class))
            });
            classes.truncate(top);
            classes
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Dense, ReLU};
    use crate::rules::ZeroRule;
    use ndarray::array;
    use serde_json::json;

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

    /// Options from their serde names: `opts(json!({"semiring": "counting"}))`.
    fn opts(v: serde_json::Value) -> ExplainOptions {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_are_the_command_lines() {
        let spec = ExplainSpec::from_options(&ExplainOptions::default()).unwrap();
        assert_eq!(spec, ExplainSpec::default());
        assert_eq!(
            spec.composite().unwrap(),
            Composite::uniform(EpsilonRule::default())
        );
        let boolean = ExplainSpec {
            semiring: SemiringKind::Boolean,
            ..ExplainSpec::default()
        };
        assert_eq!(boolean.composite().unwrap(), Composite::k_lrp());
        let viterbi = ExplainSpec {
            semiring: SemiringKind::Viterbi,
            ..ExplainSpec::default()
        };
        assert_eq!(viterbi.composite().unwrap(), Composite::viterbi());
    }

    #[test]
    fn options_build_the_composite() {
        let spec = ExplainSpec::from_options(&opts(json!({
            "rule": "gamma=0.5",
            "first_rule": "zbox",
            "low": "-1",
            "high": "2",
            "maxpool": "average",
        })))
        .unwrap();
        let want = Composite::uniform(crate::rules::GammaRule::new(0.5, 1e-6).unwrap())
            .with_first_linear(crate::rules::ZBoxRule::new(-1.0, 2.0).unwrap())
            .with_max_pool_as_average();
        assert_eq!(spec.composite().unwrap(), want);
    }

    #[test]
    fn bad_combinations_name_the_flags() {
        let err = |v| ExplainSpec::from_options(&opts(v)).unwrap_err().to_string();
        for (options, message) in [
            (
                json!({"semiring": "tropical"}),
                "--semiring: 'tropical' is not real",
            ),
            (json!({"theta": "0.1"}), "boolean and counting"),
            (
                json!({"semiring": "boolean", "init": "output"}),
                "real semiring only",
            ),
            (
                json!({"rule": "flat", "composite": "epsilon-plus-flat"}),
                "either --rule or --composite",
            ),
            (json!({"low": "-1", "high": "1"}), "--low/--high apply"),
            (
                json!({"first_rule": "zbox", "low": "-1"}),
                "both --low and --high",
            ),
            (
                json!({"rule": "gamma=-1"}),
                "--rule: γ must be finite and ≥ 0",
            ),
            (
                json!({"composite": "lrp-magic"}),
                "--composite: 'lrp-magic'",
            ),
            (
                json!({"semiring": "counting", "theta_at": ["3"]}),
                "INDEX=T",
            ),
            (
                json!({"semiring": "counting", "theta": "NaN"}),
                "not a finite number",
            ),
            (json!({"maxpool": "median"}), "--maxpool"),
        ] {
            let e = err(options.clone());
            assert!(e.contains(message), "{options}: {e}");
        }
        let spec = ExplainSpec::from_options(&opts(json!({
            "semiring": "counting",
            "theta_at": ["99=0.1"],
        })))
        .unwrap();
        assert!(
            spec.check_layers(3)
                .unwrap_err()
                .to_string()
                .contains("layer 99 does not exist")
        );
        assert!(spec.check_layers(100).is_ok());
    }

    #[test]
    fn options_are_one_flat_map_and_the_deprecated_args_read_the_same() {
        let options = ExplainOptions {
            semiring: Some("counting".into()),
            rules: RuleOptions {
                theta: Some("0.05".into()),
                theta_at: vec!["2=0.2".into()],
                theta_abs: true,
                ..RuleOptions::default()
            },
            ..ExplainOptions::default()
        };
        let v = serde_json::to_value(&options).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "composite",
                "first_rule",
                "high",
                "init",
                "low",
                "maxpool",
                "rule",
                "semiring",
                "theta",
                "theta_abs",
                "theta_at",
                "theta_auto"
            ]
        );
        assert_eq!(opts(v), options);
        assert_eq!(opts(json!({})), ExplainOptions::default());
        let spec = ExplainSpec::try_from(&options).unwrap();
        assert_eq!(
            (spec.theta, &spec.theta_at[..], spec.theta_abs),
            (Some(0.05), &[(2, 0.2)][..], true)
        );
        #[allow(deprecated)]
        {
            let args = ExplainArgs {
                semiring: Some("counting"),
                theta: Some("0.05"),
                theta_at: vec!["2=0.2"],
                theta_abs: true,
                ..ExplainArgs::default()
            };
            assert_eq!(ExplainOptions::from(&args), options);
            assert_eq!(ExplainSpec::from_args(&args).unwrap(), spec);
        }
    }

    #[test]
    fn run_equals_the_library_calls() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5], [0.5, -1.0, 2.0]].into_dyn();
        // counting, |d| > 0.05, layer 2 at 0.2
        let spec = ExplainSpec::from_options(&opts(json!({
            "semiring": "counting",
            "theta": "0.05",
            "theta_at": ["2=0.2"],
            "theta_abs": true,
        })))
        .unwrap();
        let e = spec.run(&net, &x, &Targets::Class(1), false).unwrap();
        let theta = PerLayer::new(AbsThreshold::new(0.05).unwrap())
            .with(2, AbsThreshold::new(0.2).unwrap());
        let lib = net
            .explain::<Counting, _>(&x, &[1, 1], &Composite::k_lrp(), &theta)
            .unwrap();
        assert_eq!(e.input, RelevanceArray::Counting(lib.input().mapv(|c| c.0)));
        assert_eq!(e.targets, [1, 1]);
        assert!(e.layers.is_none());
        // real LRP-0 from 1, every layer kept
        let spec = ExplainSpec {
            rule: Some(ZeroRule.into()),
            init: Some(Init::One),
            ..ExplainSpec::default()
        };
        let e = spec
            .run(&net, &x, &Targets::PerSample(vec![0, 1]), true)
            .unwrap();
        let lib = net
            .explain::<Real<f32>, _>(
                &x,
                &[0, 1],
                &Composite::uniform(ZeroRule),
                &PerLayer::new(Identity),
            )
            .unwrap();
        assert_eq!(e.input, RelevanceArray::Real(lib.input().mapv(|v| v.0)));
        let layers = e.layers.unwrap();
        assert_eq!(layers.len(), 4);
        assert_eq!(layers[0], e.input);
        assert_eq!(layers[3].shape(), &[2, 2]);
    }

    #[test]
    fn viterbi_refuses_rules_whose_shares_leave_the_unit_interval() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]].into_dyn();
        let viterbi = |rule: Option<&str>| ExplainOptions {
            semiring: Some("viterbi".into()),
            rules: RuleOptions {
                rule: rule.map(String::from),
                ..RuleOptions::default()
            },
            ..ExplainOptions::default()
        };
        for rule in ["zero", "epsilon"] {
            let spec = ExplainSpec::from_options(&viterbi(Some(rule))).unwrap();
            let e = spec.run(&net, &x, &Targets::Class(1), false).unwrap_err();
            assert!(
                e.to_string().contains("needs shares in [0, 1]"),
                "{rule}: {e}"
            );
        }
        // The default (max-abs) and the unit-interval rules are accepted.
        for rule in [None, Some("max-abs"), Some("flat"), Some("wsquare")] {
            let spec = ExplainSpec::from_options(&viterbi(rule)).unwrap();
            assert!(
                spec.run(&net, &x, &Targets::Class(1), false).is_ok(),
                "{rule:?}"
            );
        }
    }

    #[test]
    fn predicted_targets_are_the_argmax() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5], [3.0, -1.0, 0.0]].into_dyn();
        let logits = net.forward(&x).unwrap();
        let argmax: Vec<usize> = logits
            .outer_iter()
            .map(|s| if s[0] >= s[1] { 0 } else { 1 })
            .collect();
        let spec = ExplainSpec::default();
        let e = spec.run(&net, &x, &Targets::Predicted, false).unwrap();
        assert_eq!(e.targets, argmax);
        assert_ne!(
            argmax[0], argmax[1],
            "the fixture should predict both classes"
        );
        assert_eq!("predicted".parse::<Targets>().unwrap(), Targets::Predicted);
        assert_eq!(
            "2,0".parse::<Targets>().unwrap(),
            Targets::PerSample(vec![2, 0])
        );
        assert!("1,,2".parse::<Targets>().is_err());
        let three = spec.run(&net, &x, &Targets::PerSample(vec![0, 1, 0]), false);
        assert!(three.unwrap_err().to_string().contains("3 classes"));
    }

    #[test]
    fn predict_sorts_by_softmax() {
        let net = net();
        let x = array![[1.0_f32, 2.0, 0.5]].into_dyn();
        let z = net.forward(&x).unwrap();
        let (z0, z1) = (f64::from(z[[0, 0]]), f64::from(z[[0, 1]]));
        let p1 = 1.0 / (1.0 + (z0 - z1).exp());
        let top = predict(&net, &x, 5).unwrap();
        assert_eq!(top[0].len(), 2);
        let best = if z1 > z0 { 1 } else { 0 };
        assert_eq!(top[0][0].class, best);
        let got1 = top[0].iter().find(|c| c.class == 1).unwrap().probability;
        assert!((got1 - p1).abs() < 1e-12);
        assert!(predict(&net, &x, 0).is_err());
        assert_eq!(predict(&net, &x, 1).unwrap()[0].len(), 1);
        let p = softmax(&[1000.0, 0.0]);
        assert!((p[0] - 1.0).abs() < 1e-12 && p[1] >= 0.0);
    }
}
