//! # klrp — semiring-generalized Layer-wise Relevance Propagation (K-LRP)
//!
//! Layer-wise Relevance Propagation (LRP) explains a network's prediction by sending relevance
//! back from the output class to the input. Each layer splits the relevance of its output neurons
//! `k` among its input neurons `j` in proportion to their *shares* `d_jk` — for LRP-0,
//! `d_jk = a_j w_jk / Σ_j' a_j' w_j'k` — and classical LRP computes `R_j = Σ_k d_jk R_k`.
//!
//! K-LRP replaces the real numbers by any [semiring] `(K, ⊕, ⊗, 0, 1)` and a
//! [conversion] `Θ: ℝ → K`:
//!
//! ```text
//! R^(L)_i = 1 if i = y else 0,        R^(l)_j = ⊕_k Θ^(l)(d_jk) ⊗ R^(l+1)_k
//! ```
//!
//! The semiring decides what relevance means:
//!
//! - [`Real`](semiring::Real) `(ℝ, +, ×)`, Θ = [identity](conversion::Identity): classical LRP
//!   (divided by the target's output activation when started from 1).
//! - [`Boolean`](semiring::Boolean) `({⊥, ⊤}, ∨, ∧)`, Θ(x) = [x ≥ θ](conversion::Threshold): is
//!   there a relevant path from this input to the target — a mask.
//! - [`Counting`](semiring::Counting) `(ℕ, +, ×)`, Θ(x) = [x ≥ θ]: how many relevant paths
//!   ([`FloatCounting`](semiring::FloatCounting) and [`LogCounting`](semiring::LogCounting) when
//!   counts outgrow `u64`).
//! - [`Viterbi`](semiring::Viterbi) `([0, 1], max, ×)` with max-abs shares
//!   `d_jk = |a_j w_jk| / max_j' |a_j' w_j'k|`: the strength of the strongest path.
//! - [`Tropical`](semiring::Tropical), [`MaxPlus`](semiring::MaxPlus), [`Fuzzy`](semiring::Fuzzy),
//!   [`Lukasiewicz`](semiring::Lukasiewicz), and [`Product`](semiring::Product) of any two.
//!
//! Θ may differ per layer ([`PerLayer`]), and [`calibrate`] chooses it from data; how shares are formed is an LRP [rule](rules) (LRP-0,
//! ε, γ, z⁺, αβ, z^B, flat, w², max-abs), assigned to layers by a [`Composite`] as in Zennit.
//!
//! ## The pieces
//!
//! - [`explain`]: the common path — [`Explainer`] presets per semiring, [`Network::explain_with`]
//!   on any `f32` ndarray, [`Targets`] (a class, one per sample, or the predicted one),
//!   [`Init`] (1 or the logit), plain result arrays ([`Relevance::values`], heatmaps), and
//!   [`LayerRelevance`]: one layer's relevance, on the layer.
//! - [`calibrate`]: θ per layer from data (fair share κ/n̄, a share of the inputs or of the
//!   connections).
//! - [`semiring`]: the [`Semiring`] trait (⊕, ⊗, 0, 1, laws) and the shipped
//!   semirings; `laws` (feature `laws`) checks the axioms for a semiring of your own.
//! - [`conversion`]: Θ, in one place.
//! - [`rules`]: how each rule forms the shares `d_jk`.
//! - [`tensor`] and [`shares`]: the vocabulary at the bottom — batches ([`Tensor`](tensor::Tensor))
//!   and what layers describe and kernels evaluate ([`Shares`](shares::Shares),
//!   [`Connectivity`](shares::Connectivity), share terms); docs/architecture.md has the layer table.
//! - [`layers`]: [`Dense`](layers::Dense), [`Conv2d`](layers::Conv2d), pooling, activations,
//!   [`BatchNorm2d`](layers::BatchNorm2d) — forward and shares side by side; the open
//!   [`Layer`](layers::Layer) trait.
//! - [`kernels`]: the loops that evaluate `⊕_k Θ(d_jk) ⊗ R_k`.
//! - [`Network`]: composes layers, runs the forward pass and drives propagation
//!   ([`Network::propagate`]: any semiring, rules and initialization).
//! - [`io`]: data sets and files.
//! - [`spec`]: the command line's explain and predict options as a library (`ExplainSpec`).
//! - `viz` (feature `viz`, on by default): colormaps, heatmaps, image grids, line plots, PNG.
//!
//! [`ndarray`] is re-exported (`klrp::ndarray`), and `proptest` with feature `laws`, so that
//! depending on `klrp` alone is enough.
//!
//! ## Example
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
//! // Classical LRP-ε from the logit: relevance sums to the logit (no biases, ε = 1e-6).
//! let real = net.explain_with(&x, 1, &Explainer::real())?;
//! let logit = net.forward(&x.clone().into_dyn())?[[0, 1]];
//! assert!((real.values().sum() - logit).abs() < 1e-4);
//!
//! // Boolean: which inputs have a path of shares ≥ 0.1 to class 1; Counting: how many.
//! let theta = Threshold::new(0.1)?;
//! let mask = net.explain_with(&x, 1, &Explainer::boolean(theta))?;
//! let count = net.explain_with(&x, 1, &Explainer::counting(theta))?;
//! for (b, c) in mask.values().iter().zip(count.values()) {
//!     assert_eq!(*b, c > 0); // Boolean relevance is the support of Counting relevance
//! }
//! // The strongest path to the predicted class.
//! let strongest = net.explain_with(&x, Targets::Predicted, &Explainer::viterbi())?;
//! assert!(strongest.values().iter().all(|v| (0.0..=1.0).contains(v)));
//! # Ok::<(), klrp::Error>(())
//! ```
//!
//! The Θ of an explainer must convert into its semiring; a mismatch does not compile:
//!
//! ```compile_fail
//! use klrp::explain::Explainer;
//! use klrp::semiring::Boolean;
//! use klrp::{Clamp01, Composite};
//! // Clamp01 maps into [0, 1] (Viterbi, Fuzzy), not into the Booleans.
//! let e = Explainer::<Boolean, _>::new(Composite::k_lrp(), Clamp01);
//! ```
//!
//! ```compile_fail
//! use klrp::explain::Explainer;
//! use klrp::Threshold;
//! // The Viterbi preset's Θ is the clamp to [0, 1]; a threshold is another type.
//! let e = Explainer::viterbi().with_theta(Threshold::new(0.1).unwrap());
//! ```
//!
//! The Θ `Identity` and the layer `IdentityLayer` have different names, so both globs can be used
//! together:
//!
//! ```
//! use klrp::layers::*;
//! use klrp::*;
//! let theta = PerLayer::new(Identity);
//! let layer: Box<dyn Layer> = Box::new(IdentityLayer);
//! assert_eq!(layer.kind(), LayerKind::Identity);
//! # let _ = theta;
//! ```
#![warn(missing_docs)]

pub mod calibrate;
pub mod composite;
pub mod conversion;
pub mod error;
pub mod explain;
pub mod graph;
pub mod io;
pub mod kernels;
#[cfg(feature = "laws")]
pub mod laws;
pub mod layers;
pub mod models;
pub mod network;
pub mod paths;
pub mod rng;
pub mod rules;
pub mod semiring;
pub mod shares;
pub mod spec;
pub mod tensor;
#[cfg(feature = "viz")]
pub mod viz;

pub use composite::Composite;
pub use conversion::{AbsThreshold, Clamp01, Conversion, Identity, PerLayer, Threshold};
pub use error::{Error, Result};
pub use explain::{Explainer, Init, LayerRelevance, Targets};
pub use graph::{GraphBuilder, Node, Source};
pub use network::{DEFAULT_MAX_ELEMENTS, NearKinks, Network, Relevance, Trace, one_hot};
pub use semiring::Semiring;

/// The `ndarray` version klrp uses, so that `cargo add klrp` alone is enough to build inputs.
pub use ndarray;
/// The `proptest` version the law checker takes strategies from (feature `laws`).
#[cfg(feature = "laws")]
pub use proptest;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
