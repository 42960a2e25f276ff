//! Composites: which rule each layer gets, by layer kind, position and index (as in Zennit).
//!
//! May import: `error`, `layers`, `rules` (docs/architecture.md, "Layers").
//!
//! Resolution order for a layer: an explicit index ([`Composite::with_layer`]) first, then the
//! first-convolution rule, then the first-linear rule, then the rule of the layer's kind.
//!
//! | composite | first linear layer | other convolutions | dense layers | max pooling |
//! |---|---|---|---|---|
//! | [`Composite::uniform`]`(r)` | r | r | r | winner-take-all |
//! | [`Composite::k_lrp`] | LRP-0 | LRP-0 | LRP-0 | winner-take-all |
//! | [`Composite::viterbi`] | max-abs | max-abs | max-abs | winner-take-all |
//! | [`Composite::epsilon_plus_flat`] | flat | z⁺ | ε = 1e-6 | winner-take-all |
//! | [`Composite::epsilon_gamma_box`] | z^B at the first *convolution* | γ = 0.25 | ε = 1e-6 | winner-take-all |
//! | [`Composite::epsilon_alpha2_beta1`] | — | αβ(2, 1) | ε = 1e-6 | winner-take-all |
//!
//! Average pooling and the residual sum ([`Add`](crate::layers::Add)) take averaging shares:
//! proportional (Zennit's `Norm`, ε = 1e-6) in every composite but [`Composite::k_lrp`] (the sum
//! without ε) and [`Composite::viterbi`] (max-abs for both); activations, reshapes, identities,
//! concatenations and gated products pass relevance.

use crate::error::Result;
use crate::layers::{Layer, LayerKind};
use crate::rules::{
    AlphaBetaRule, Bound, EpsilonRule, FlatRule, GammaRule, MaxAbsRule, ProportionalRule, Rule,
    WinnerTakesAllRule, ZBoxRule, ZPlusRule, ZeroRule,
};
use std::collections::BTreeMap;

/// Assigns a [`Rule`] to every layer of a network.
///
/// ```
/// use klrp::composite::Composite;
/// use klrp::rules::{EpsilonRule, Rule};
/// let c = Composite::epsilon_plus_flat().with_layer(4, EpsilonRule::new(0.25).unwrap());
/// assert_eq!(c.name(), "epsilon-plus-flat");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Composite {
    name: String,
    dense: Rule,
    conv: Rule,
    first_linear: Option<Rule>,
    first_conv: Option<Rule>,
    max_pool: Rule,
    avg_pool: Rule,
    sum: Rule,
    by_index: BTreeMap<usize, Rule>,
}

impl Composite {
    /// `rule` on every dense and convolution layer; winner-take-all max pooling, proportional
    /// average pooling.
    pub fn uniform(rule: impl Into<Rule>) -> Self {
        let rule = rule.into();
        Composite {
            name: rule.name().to_string(),
            dense: rule.clone(),
            conv: rule,
            first_linear: None,
            first_conv: None,
            max_pool: WinnerTakesAllRule.into(),
            avg_pool: ProportionalRule::default().into(),
            sum: ProportionalRule::default().into(),
            by_index: BTreeMap::new(),
        }
    }

    /// The K-LRP default for Boolean and Counting relevance: LRP-0 (no ε, `d = 0` where `z = 0`)
    /// on every linear layer and on residual sums ([`Add`](crate::layers::Add)).
    pub fn k_lrp() -> Self {
        Composite {
            sum: ZeroRule.into(),
            ..Self::uniform(ZeroRule)
        }
        .named("k-lrp")
    }

    /// LRP-0 with no stabiliser anywhere: [`k_lrp`](Composite::k_lrp) with average pooling (and
    /// means, [`Reduce`](crate::layers::Reduce)) proportional at ε = 0 too. From the logit
    /// ([`Init::Logit`](crate::Init::Logit)) on a ReLU network this is exactly gradient × input
    /// (docs/semantics.md §6.1); `k_lrp` keeps ε = 1e-6 on averaging.
    ///
    /// ```
    /// use klrp::Composite;
    /// assert_eq!(Composite::lrp0().name(), "lrp-0");
    /// assert_eq!(Composite::from_name("lrp-0", -3.0, 3.0)?.name(), "lrp-0");
    /// # Ok::<(), klrp::Error>(())
    /// ```
    pub fn lrp0() -> Self {
        Self::k_lrp()
            .with_avg_pool(ProportionalRule::EXACT)
            .named("lrp-0")
    }

    /// The K-LRP default for Viterbi relevance: max-abs shares (δ = 1e-9) on every linear layer,
    /// average pooling and residual sum, `|a_j w_jk| / (max_j' |a_j' w_j'k| + δ)`, so every
    /// neuron's strongest input has share 1; max pooling stays winner-take-all.
    pub fn viterbi() -> Self {
        Composite {
            avg_pool: MaxAbsRule::default().into(),
            sum: MaxAbsRule::default().into(),
            ..Self::uniform(MaxAbsRule::default())
        }
        .named("viterbi")
    }

    /// Zennit's `EpsilonPlusFlat`: flat on the first linear layer, z⁺ on the other convolutions,
    /// ε = 1e-6 on dense layers.
    pub fn epsilon_plus_flat() -> Self {
        Composite {
            conv: ZPlusRule::default().into(),
            first_linear: Some(FlatRule::default().into()),
            ..Self::uniform(EpsilonRule::default())
        }
        .named("epsilon-plus-flat")
    }

    /// Zennit's `EpsilonGammaBox`: z^B(low, high) on the first convolution, γ = 0.25 on the other
    /// convolutions, ε = 1e-6 on dense layers (a network without convolutions gets no z^B).
    ///
    /// # Errors
    /// [`Error::NonFinite`](crate::Error::NonFinite) if a bound is NaN or infinite.
    pub fn epsilon_gamma_box(low: impl Into<Bound>, high: impl Into<Bound>) -> Result<Self> {
        Ok(Composite {
            conv: GammaRule::new(0.25, crate::rules::DEFAULT_EPSILON)?.into(),
            first_conv: Some(ZBoxRule::new(low, high)?.into()),
            ..Self::uniform(EpsilonRule::default())
        }
        .named("epsilon-gamma-box"))
    }

    /// Zennit's `EpsilonAlpha2Beta1`: αβ(2, 1) on convolutions, ε = 1e-6 on dense layers.
    pub fn epsilon_alpha2_beta1() -> Self {
        let ab = AlphaBetaRule::new(2.0, 1.0).unwrap_or_else(|_| unreachable!("2 − 1 = 1"));
        Composite {
            conv: ab.into(),
            ..Self::uniform(EpsilonRule::default())
        }
        .named("epsilon-alpha2-beta1")
    }

    /// The names [`Composite::from_name`] knows.
    pub const NAMES: [&'static str; 6] = [
        "epsilon-plus-flat",
        "epsilon-gamma-box",
        "epsilon-alpha2-beta1",
        "k-lrp",
        "lrp-0",
        "viterbi",
    ];

    /// The composite called `name` (its [`name`](Composite::name)): `epsilon-plus-flat`,
    /// `epsilon-gamma-box` (z^B with bounds `low`, `high`; the other composites ignore them),
    /// `epsilon-alpha2-beta1`, `k-lrp`, `lrp-0` or `viterbi`.
    ///
    /// ```
    /// use klrp::composite::Composite;
    /// let c = Composite::from_name("epsilon-gamma-box", -3.0, 3.0)?;
    /// assert_eq!(c, Composite::epsilon_gamma_box(-3.0, 3.0)?);
    /// assert!(Composite::from_name("lrp-magic", 0.0, 1.0).is_err());
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for another name;
    /// [`Error::NonFinite`](crate::Error::NonFinite) if `epsilon-gamma-box` gets a NaN or infinite
    /// bound.
    pub fn from_name(name: &str, low: impl Into<Bound>, high: impl Into<Bound>) -> Result<Self> {
        match name.trim() {
            "epsilon-plus-flat" => Ok(Self::epsilon_plus_flat()),
            "epsilon-gamma-box" => Self::epsilon_gamma_box(low, high),
            "epsilon-alpha2-beta1" => Ok(Self::epsilon_alpha2_beta1()),
            "k-lrp" => Ok(Self::k_lrp()),
            "lrp-0" => Ok(Self::lrp0()),
            "viterbi" => Ok(Self::viterbi()),
            other => Err(crate::Error::invalid(format!(
                "'{other}' is not epsilon-plus-flat, epsilon-gamma-box, epsilon-alpha2-beta1, \
                 k-lrp, lrp-0 or viterbi"
            ))),
        }
    }

    fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The composite's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Uses `rule` on dense layers.
    pub fn with_dense(mut self, rule: impl Into<Rule>) -> Self {
        self.dense = rule.into();
        self
    }

    /// Uses `rule` on convolutions.
    pub fn with_conv(mut self, rule: impl Into<Rule>) -> Self {
        self.conv = rule.into();
        self
    }

    /// Uses `rule` on the first linear (dense or convolution) layer.
    pub fn with_first_linear(mut self, rule: impl Into<Rule>) -> Self {
        self.first_linear = Some(rule.into());
        self
    }

    /// Uses `rule` on the first convolution.
    pub fn with_first_conv(mut self, rule: impl Into<Rule>) -> Self {
        self.first_conv = Some(rule.into());
        self
    }

    /// Uses `rule` (proportional or max-abs) on average pooling layers and means.
    pub fn with_avg_pool(mut self, rule: impl Into<Rule>) -> Self {
        self.avg_pool = rule.into();
        self
    }

    /// Uses `rule` (winner-take-all or proportional) on max pooling layers.
    pub fn with_max_pool(mut self, rule: impl Into<Rule>) -> Self {
        self.max_pool = rule.into();
        self
    }

    /// Treats max pooling as average pooling for relevance: max pooling layers get the rule of
    /// average pooling (proportional, or max-abs under [`Composite::viterbi`]).
    pub fn with_max_pool_as_average(mut self) -> Self {
        self.max_pool = self.avg_pool.clone();
        self
    }

    /// Uses `rule` (proportional, epsilon, zero or max-abs) on residual sums
    /// ([`Add`](crate::layers::Add) nodes).
    pub fn with_sum(mut self, rule: impl Into<Rule>) -> Self {
        self.sum = rule.into();
        self
    }

    /// Uses `rule` on the layer at `index`, whatever its kind.
    pub fn with_layer(mut self, index: usize, rule: impl Into<Rule>) -> Self {
        self.by_index.insert(index, rule.into());
        self
    }

    /// The layer indices given their own rule with [`with_layer`](Composite::with_layer).
    pub fn layer_overrides(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_index.keys().copied()
    }

    /// The rule of every layer of `layers`, in order.
    pub fn assign(&self, layers: &[Box<dyn Layer>]) -> Vec<Rule> {
        let kinds: Vec<LayerKind> = layers.iter().map(|l| l.kind()).collect();
        self.assign_kinds(&kinds)
    }

    /// The rule of every layer, given the layers' kinds in order.
    pub fn assign_kinds(&self, kinds: &[LayerKind]) -> Vec<Rule> {
        let first_linear = kinds.iter().position(|k| k.is_linear());
        let first_conv = kinds.iter().position(|&k| k == LayerKind::Conv);
        kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| {
                if let Some(r) = self.by_index.get(&i) {
                    return r.clone();
                }
                if Some(i) == first_conv
                    && let Some(r) = &self.first_conv
                {
                    return r.clone();
                }
                if Some(i) == first_linear
                    && let Some(r) = &self.first_linear
                {
                    return r.clone();
                }
                match kind {
                    LayerKind::Conv => self.conv.clone(),
                    LayerKind::MaxPool => self.max_pool.clone(),
                    LayerKind::AvgPool => self.avg_pool.clone(),
                    LayerKind::Add => self.sum.clone(),
                    _ => self.dense.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lrp0` is `k_lrp` but for average pooling, which gets the proportional rule with ε = 0.
    #[test]
    fn lrp0_is_k_lrp_with_exact_averaging() {
        let (exact, k) = (Composite::lrp0(), Composite::k_lrp());
        assert_eq!(exact.avg_pool, Rule::from(ProportionalRule::EXACT));
        assert_eq!(k.avg_pool, Rule::from(ProportionalRule::default()));
        assert_ne!(ProportionalRule::default().epsilon(), 0.0);
        let (a, b) = (
            Composite {
                avg_pool: k.avg_pool.clone(),
                name: String::new(),
                ..exact.clone()
            },
            Composite {
                name: String::new(),
                ..k
            },
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(
            Composite::from_name("lrp-0", -1.0, 1.0).unwrap().name(),
            "lrp-0"
        );
    }
    use LayerKind::*;

    #[test]
    fn epsilon_gamma_box_puts_zbox_on_first_conv_only() {
        let c = Composite::epsilon_gamma_box(-3.0, 3.0).unwrap();
        let rules = c.assign_kinds(&[Dense, Activation, Conv, Conv, MaxPool, Dense]);
        let names: Vec<_> = rules.iter().map(|r| r.name()).collect();
        assert_eq!(
            names,
            [
                "epsilon",
                "epsilon",
                "zbox",
                "gamma",
                "winner-takes-all",
                "epsilon"
            ]
        );
        let mlp = c.assign_kinds(&[Dense, Activation, Dense]);
        assert!(mlp.iter().all(|r| r.name() != "zbox"));
    }

    #[test]
    fn epsilon_plus_flat_puts_flat_on_first_linear() {
        let c = Composite::epsilon_plus_flat();
        let names: Vec<_> = c
            .assign_kinds(&[Dense, Activation, Dense])
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, ["flat", "epsilon", "epsilon"]);
        let names: Vec<_> = c
            .assign_kinds(&[Conv, Activation, Conv, AvgPool, Reshape, Dense])
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names[0], "flat");
        assert_eq!(names[2], "zplus");
        assert_eq!(names[3], "proportional");
        assert_eq!(names[5], "epsilon");
    }

    #[test]
    fn index_overrides_win() {
        let c = Composite::epsilon_alpha2_beta1().with_layer(0, FlatRule::default());
        let names: Vec<_> = c
            .assign_kinds(&[Conv, Conv])
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, ["flat", "alpha-beta"]);
    }

    #[test]
    fn from_name_knows_every_named_composite() {
        for name in Composite::NAMES {
            let c = Composite::from_name(name, -1.0, 1.0).unwrap();
            assert_eq!(c.name(), name);
        }
        assert_eq!(
            Composite::from_name("epsilon-gamma-box", -1.0, 2.0).unwrap(),
            Composite::epsilon_gamma_box(-1.0, 2.0).unwrap()
        );
        assert_eq!(
            Composite::from_name("epsilon-plus-flat", 0.0, 0.0).unwrap(),
            Composite::epsilon_plus_flat()
        );
        let err = Composite::from_name("lrp-magic", 0.0, 1.0).unwrap_err();
        assert!(matches!(err, crate::Error::InvalidArgument(_)));
        assert!(
            err.to_string()
                .contains("'lrp-magic' is not epsilon-plus-flat")
        );
        assert!(Composite::from_name("epsilon-gamma-box", f32::NAN, 1.0).is_err());
    }
}
