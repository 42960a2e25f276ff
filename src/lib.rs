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
//! Θ may differ per layer ([`PerLayer`]); how shares are formed is an LRP [rule](rules) (LRP-0,
//! ε, γ, z⁺, αβ, z^B, flat, w², max-abs), assigned to layers by a [`Composite`] as in Zennit.
//!
//! ## The pieces
//!
//! - [`semiring`]: the [`Semiring`] trait (⊕, ⊗, 0, 1, laws) and the shipped
//!   semirings; `laws` (feature `laws`) checks the axioms for a semiring of your own.
//! - [`conversion`]: Θ, in one place.
//! - [`rules`]: how each rule forms the shares `d_jk`.
//! - [`layers`]: [`Dense`](layers::Dense), [`Conv2d`](layers::Conv2d), pooling, activations,
//!   [`BatchNorm2d`](layers::BatchNorm2d) — forward and shares side by side; the open
//!   [`Layer`](layers::Layer) trait.
//! - [`kernels`]: the loops that evaluate `⊕_k Θ(d_jk) ⊗ R_k`.
//! - [`Network`]: composes layers, runs the forward pass and drives propagation.
//! - [`io`]: data sets and files.
//! - `viz` (feature `viz`, on by default): colormaps, heatmaps, image grids, line plots, PNG.
//!
//! ## Example
//!
//! ```
//! use klrp::layers::{Dense, ReLU};
//! use klrp::semiring::{Boolean, Counting, Real};
//! use klrp::{Composite, Identity, Network, PerLayer, Threshold};
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
//!
//! // Classical LRP-0 in the real semiring: relevance is conserved (no biases here).
//! let real = net.explain::<Real<f32>, _>(&x, &[1], &Composite::k_lrp(), &PerLayer::new(Identity))?;
//! let total: f32 = real.input().iter().map(|r| r.0).sum();
//! assert!((total - 1.0).abs() < 1e-5);
//!
//! // Boolean: which inputs have a path of shares ≥ 0.1 to class 1; Counting: how many.
//! let theta = PerLayer::new(Threshold::new(0.1)?);
//! let mask = net.explain::<Boolean, _>(&x, &[1], &Composite::k_lrp(), &theta)?;
//! let count = net.explain::<Counting, _>(&x, &[1], &Composite::k_lrp(), &theta)?;
//! for (b, c) in mask.input().iter().zip(count.input()) {
//!     assert_eq!(b.0, c.0 > 0); // Boolean relevance is the support of Counting relevance
//! }
//! # Ok::<(), klrp::Error>(())
//! ```
#![warn(missing_docs)]

pub mod composite;
pub mod conversion;
pub mod error;
pub mod graph;
pub mod io;
pub mod kernels;
#[cfg(feature = "laws")]
pub mod laws;
pub mod layers;
pub mod models;
pub mod network;
pub mod rules;
pub mod semiring;
#[cfg(feature = "viz")]
pub mod viz;

pub use composite::Composite;
pub use conversion::{AbsThreshold, Clamp01, Conversion, Identity, PerLayer, Threshold};
pub use error::{Error, Result};
pub use graph::{GraphBuilder, Node, Source};
pub use network::{DEFAULT_MAX_ELEMENTS, Network, Relevance, Trace, one_hot};
pub use semiring::Semiring;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
