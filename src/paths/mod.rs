//! Relevant paths: the strongest paths behind a prediction, path sampling and circuits.
//!
//! May import: `composite`, `conversion`, `error`, `explain`, `kernels`, `layers`, `network`,
//! `rng`, `rules`, `semiring`, `shares`, `tensor`, `viz` (docs/architecture.md, "Layers").
//!
//! A **path** runs from one element of the network input through one element of every node
//! output along its way (following one reader at each fan-out) to the target element of the last
//! node. Each step `j → k` is a connection of a node operand's [`Shares`];
//! its share is `Θ(d_jk)` (exactly `1` where relevance passes without Θ: activations, reshapes,
//! concatenation slices, the gated operand of `Mul`). A path's value is the ⊗-product of its
//! shares, and K-LRP's `R_j` is the ⊕ over the paths from `j`:
//!
//! ```text
//! R_j = ⊕_{paths p from j}  Θ(d_1) ⊗ Θ(d_2) ⊗ … ⊗ Θ(d_m)
//! ```
//!
//! - **Viterbi** (⊕ = max, ⊗ = ×, max-abs shares): `R_j` is the strength of the strongest path
//!   from `j`. [`RelevanceGraph::strongest`] lists the `k` strongest paths overall, in order;
//!   [`RelevanceGraph::strongest_from`] those starting at one input element.
//! - **Counting** (⊕ = +, ⊗ = ×, `Θ(d) = [d ≥ θ]`): `R_j` is the number of relevant paths from
//!   `j`. [`RelevanceGraph::sample`] draws relevant paths uniformly (seeded, with replacement),
//!   [`RelevanceGraph::all_relevant`] lists them when there are few.
//! - [`Circuit`]: the union of some paths, per node the elements (and channels) they use.
//!
//! See docs/paths.md for the definitions, the search and its tie-breaking, and the JSON files.
//!
//! ```
//! use klrp::layers::{Dense, ReLU};
//! use klrp::ndarray::array;
//! use klrp::paths::RelevanceGraph;
//! use klrp::{Explainer, Network};
//!
//! let net = Network::new(
//!     [2],
//!     vec![
//!         Box::new(Dense::new(array![[1.0, 0.5], [-0.5, 1.0]], None)?),
//!         Box::new(ReLU),
//!         Box::new(Dense::new(array![[1.0, 1.0]], None)?),
//!     ],
//! )?;
//! let x = array![[1.0_f32, 2.0]];
//! let viterbi = Explainer::viterbi();
//! let graph = RelevanceGraph::new(&net, &x, 0, &viterbi)?;
//! let best = graph.strongest(3)?;
//! // The strongest path's strength is the largest Viterbi input relevance (up to rounding).
//! let r = graph.relevance(0).unwrap();
//! assert!((best[0].strength - r.iter().map(|v| v.0).fold(0.0, f64::max)).abs() < 1e-6);
//! assert_eq!(best[0].steps.len(), 4); // input, dense, ReLU, dense
//! # Ok::<(), klrp::Error>(())
//! ```

mod circuit;
pub mod connections;
mod field;
#[cfg(feature = "viz")]
mod figure;
mod json;
mod search;

pub use circuit::{Circuit, CircuitElement, CircuitLayer, Place};
pub use field::{Field, FieldBox};
#[cfg(feature = "viz")]
pub use figure::{FIGURE_IMAGE_SIZE, depth_color, input_image};
pub use json::{paths_json, sample_json};
pub use search::{MARGIN, MAX_STORED, SearchStats};

use crate::conversion::Conversion;
use crate::error::{Error, Result};
use crate::explain::{Explainer, Init, Targets};
use crate::layers::{Shares, Tensor};
use crate::network::{Network, one_hot};
use crate::rng::SplitMix64;
use crate::semiring::{Counting, Semiring};
use ndarray::{ArrayBase, ArrayD, Data, Dimension, IxDyn};

/// One step of a path: an element of the network input (`node: None`) or of a node's output.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The node whose output holds the element (`None`: the network input). In JSON, `-1` for the
    /// input.
    pub node: Option<usize>,
    /// The element's flat C-order index within one sample.
    pub index: usize,
    /// The element's coordinates within one sample (e.g. `[channel, row, column]`).
    pub coords: Vec<usize>,
    /// Which operand of `node` the previous step's tensor is (0 for single-input nodes; tells
    /// `Add(x, x)`'s two readings apart).
    pub operand: usize,
    /// The Θ-converted share of the connection from the previous step (as `f64`, via
    /// [`Semiring::to_f64`]); `1` through pass-through nodes and at the input step.
    pub share: f64,
    /// The share `d` before Θ (`None` at the input and through pass-through nodes).
    pub d: Option<f32>,
}

/// A path from an input element to the target, with its strength.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    /// The ⊗-product of the steps' shares, multiplied from the target back to the input
    /// (`share_1 · (share_2 · (… · share_m))`, the order K-LRP multiplies in): for Viterbi the
    /// path's strength; for Counting, how many paths this sequence of elements stands for (1
    /// under a threshold Θ).
    pub strength: f64,
    /// One step per tensor along the path: the input element first, the target last.
    pub steps: Vec<Step>,
}

impl Path {
    /// The input element the path starts at.
    pub fn start(&self) -> usize {
        self.steps.first().map_or(0, |s| s.index)
    }
}

/// A network's relevance for one sample and target, with every node's shares kept, so that the
/// paths behind it can be enumerated: the Viterbi relevance of an element is the exact best
/// completion of any partial path reaching it, the Counting relevance the number of ways to
/// complete it.
pub struct RelevanceGraph<'a, K, T> {
    net: &'a Network,
    explainer: &'a Explainer<K, T>,
    shares: Vec<Vec<Shares<'a>>>,
    /// Relevance by activation index (0 the input, `i + 1` node `i`'s output), one sample, flat.
    rel: Vec<ArrayD<K>>,
    /// Per-sample shape by activation index.
    shapes: Vec<Vec<usize>>,
    /// The readers of each activation: (node, operand).
    readers: Vec<Vec<(usize, usize)>>,
    target: usize,
}

impl<K, T> std::fmt::Debug for RelevanceGraph<'_, K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelevanceGraph")
            .field("nodes", &self.shares.len())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<'a, K: Semiring, T: Conversion<K>> RelevanceGraph<'a, K, T> {
    /// The forward pass on one sample `x` (shaped `[1, …]` or like one sample), then K-LRP from
    /// `1` at `target` under `explainer`, keeping every node's relevance and shares.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `x` holds more than one sample or the explainer starts from
    /// the logit ([`Init::Logit`]; paths start from 1 at the target); otherwise as
    /// [`Network::explain_with`] (shapes, a target out of range, rules that do not fit the
    /// semiring).
    pub fn new<S: Data<Elem = f32>, D: Dimension>(
        net: &'a Network,
        x: &ArrayBase<S, D>,
        target: impl Into<Targets>,
        explainer: &'a Explainer<K, T>,
    ) -> Result<Self> {
        if explainer.init() == Init::Logit {
            return Err(Error::invalid(
                "relevant paths start from 1 at the target (Init::One), not from the logit",
            ));
        }
        explainer.check_fits(net)?;
        let mut x: Tensor = x.view().into_dyn().to_owned();
        if x.shape() == net.input_shape() {
            x = x.insert_axis(ndarray::Axis(0));
        }
        if x.ndim() == net.input_shape().len() + 1 && x.shape()[0] != 1 {
            return Err(Error::invalid(format!(
                "relevant paths explain one sample; the input holds {} (pass one sample, [1, …])",
                x.shape()[0]
            )));
        }
        let trace = net.trace(&x)?;
        let target = target.into().resolve(&trace)?[0];
        let init = one_hot::<K>(trace.output().shape(), &[target])?;
        let mut shares = Vec::new();
        let relevance = net.propagate_keeping_shares(
            &trace,
            init,
            explainer.composite(),
            explainer.theta(),
            true,
            Some(&mut shares),
        )?;
        for node in &mut shares {
            for s in node.iter_mut() {
                standardize(s);
            }
        }
        let rel: Vec<ArrayD<K>> = relevance
            .into_layers()
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let sample = IxDyn(&a.shape()[1..]);
                let a = if a.is_standard_layout() {
                    a
                } else {
                    a.as_standard_layout().into_owned()
                };
                a.into_shape_with_order(sample)
                    .unwrap_or_else(|_| unreachable!("one sample in standard layout"))
            })
            .collect();
        let layers = net.layers().len();
        let mut shapes = vec![net.input_shape().to_vec()];
        shapes.extend((0..layers).map(|i| net.layer_output_shape(i).unwrap_or(&[]).to_vec()));
        let mut readers = vec![Vec::new(); layers + 1];
        for i in 0..layers {
            for (b, s) in net.inputs_of(i).unwrap_or(&[]).iter().enumerate() {
                readers[s.activation_index()].push((i, b));
            }
        }
        Ok(RelevanceGraph {
            net,
            explainer,
            shares,
            rel,
            shapes,
            readers,
            target,
        })
    }

    /// The target element (flat index into the output of one sample).
    pub fn target(&self) -> usize {
        self.target
    }

    /// The network.
    pub fn network(&self) -> &Network {
        self.net
    }

    /// The relevance of activation `a` of the sample (0 the input, `i + 1` node `i`'s output),
    /// shaped like one sample.
    pub fn relevance(&self, a: usize) -> Option<&ArrayD<K>> {
        self.rel.get(a)
    }

    /// The shares of node `i`, one per operand.
    pub fn shares(&self, i: usize) -> Option<&[Shares<'a>]> {
        self.shares.get(i).map(Vec::as_slice)
    }

    /// The number of activations (the input and one per node).
    fn activations(&self) -> usize {
        self.rel.len()
    }

    /// Relevance of element `e` of activation `a`.
    fn rel_at(&self, a: usize, e: usize) -> K {
        self.rel[a]
            .as_slice()
            .map_or_else(|| K::zero(), |s| s.get(e).copied().unwrap_or(K::zero()))
    }

    /// Calls `f(node, operand, k, Θ(d) or one, d)` for every connection leaving element `e` of
    /// activation `a`, reader by reader in node order.
    fn expand(
        &self,
        a: usize,
        e: usize,
        mut f: impl FnMut(usize, usize, usize, K, Option<f32>),
    ) -> Result<()> {
        for &(i, b) in &self.readers[a] {
            let theta = self.explainer.theta().at(i);
            connections::outgoing(
                &self.shares[i][b],
                e,
                &self.shapes[a],
                &self.shapes[i + 1],
                |k, d| {
                    let share = d.map_or_else(K::one, |d| theta.convert(d));
                    f(i, b, k, share, d)
                },
            )
            .map_err(|err| err.in_layer(i, self.net.layers()[i].name()))?;
        }
        Ok(())
    }

    /// The coordinates of flat index `e` in activation `a` (C order).
    fn coords(&self, a: usize, e: usize) -> Vec<usize> {
        let shape = &self.shapes[a];
        let mut c = vec![0; shape.len()];
        let mut rest = e;
        for (d, &n) in shape.iter().enumerate().rev() {
            c[d] = rest % n.max(1);
            rest /= n.max(1);
        }
        c
    }

    /// A step at element `e` of activation `a`.
    fn step(&self, a: usize, e: usize, operand: usize, share: K, d: Option<f32>) -> Step {
        Step {
            node: a.checked_sub(1),
            index: e,
            coords: self.coords(a, e),
            operand,
            share: share.to_f64(),
            d,
        }
    }

    /// The per-sample shape of activation `a` (0 the input, `i + 1` node `i`'s output).
    pub fn shape(&self, a: usize) -> Option<&[usize]> {
        self.shapes.get(a).map(Vec::as_slice)
    }
}

/// Makes a share's factors contiguous (standard layout), so [`connections::outgoing`] borrows
/// them instead of copying them on every call.
fn standardize(s: &mut Shares<'_>) {
    match s {
        Shares::Linear { terms, .. } => {
            for t in terms {
                if !t.input.is_standard_layout() {
                    t.input = t.input.as_standard_layout().into_owned().into_shared();
                }
                if !t.scale.is_standard_layout() {
                    t.scale = t.scale.as_standard_layout().into_owned().into_shared();
                }
            }
        }
        Shares::Elementwise(d) if !d.is_standard_layout() => {
            *d = d.as_standard_layout().into_owned().into_shared();
        }
        _ => {}
    }
}

/// The total of the Viterbi ⊗ in the order K-LRP multiplies: from the target back.
pub(crate) fn suffix_product(shares: impl DoubleEndedIterator<Item = f64>) -> f64 {
    shares.rev().fold(1.0, |acc, s| s * acc)
}

impl<T: Conversion<Counting>> RelevanceGraph<'_, Counting, T> {
    /// The number of relevant paths to the target: `Σ_j R_j` over the input (as `u128`, so the
    /// sum of `u64` counts does not overflow).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a path count saturated (`u64::MAX`, "2⁶⁴ − 1 or more"): the
    /// counts are then not exact, and sampling would not be uniform.
    pub fn count(&self) -> Result<u128> {
        for (a, r) in self.rel.iter().enumerate() {
            if r.iter().any(Semiring::is_overflow) {
                let at = match a {
                    0 => "the input".to_string(),
                    a => format!("node {}'s output", a - 1),
                };
                return Err(Error::invalid(format!(
                    "relevant path counts overflow u64 (2^64 - 1 or more paths) at {at}: they \
                     are not exact, so paths cannot be sampled uniformly; raise θ"
                )));
            }
        }
        Ok(self.rel[0].iter().map(|c| u128::from(c.0)).sum())
    }

    /// `n` relevant paths drawn uniformly at random with replacement (reproducibly from `seed`):
    /// the input element `j` with probability `R_j / Σ R`, then at each element the next
    /// connection `j → k` with probability `Θ(d_jk) · R_k / R_j`, so every relevant path has
    /// probability `1 / Σ R`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `n` is 0, if no relevant path reaches the target (Θ removed
    /// them all; lower θ) or if the counts overflow (see [`count`](Self::count)).
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<Path>> {
        if n == 0 {
            return Err(Error::invalid(
                "the number of paths to sample must be at least 1",
            ));
        }
        let total = self.count()?;
        if total == 0 {
            return Err(self.no_relevant_path());
        }
        let mut rng = SplitMix64::new(seed);
        (0..n).map(|_| self.draw(&mut rng, total)).collect()
    }

    fn no_relevant_path(&self) -> Error {
        Error::invalid(format!(
            "no relevant path reaches target {}: Θ leaves no path whose every share passes; \
             lower θ",
            self.target
        ))
    }

    /// One uniformly drawn relevant path (`total` = the number of them).
    fn draw(&self, rng: &mut SplitMix64, total: u128) -> Result<Path> {
        let mut pick = rng.below(total);
        let mut start = 0;
        for (j, c) in self.rel[0].iter().enumerate() {
            let c = u128::from(c.0);
            if pick < c {
                start = j;
                break;
            }
            pick -= c;
        }
        let mut steps = vec![self.step(0, start, 0, Counting::one(), None)];
        let (mut a, mut e) = (0, start);
        let last = self.activations() - 1;
        while a != last {
            let mut options: Vec<(usize, usize, usize, Counting, Option<f32>, u128)> = Vec::new();
            self.expand(a, e, |i, b, k, share, d| {
                let w = u128::from(share.0) * u128::from(self.rel_at(i + 1, k).0);
                if w > 0 {
                    options.push((i, b, k, share, d, w));
                }
            })?;
            let sum: u128 = options.iter().map(|o| o.5).sum();
            if sum == 0 {
                return Err(Error::invalid(format!(
                    "internal: element {e} of activation {a} has relevance but no relevant \
                     connection"
                )));
            }
            let mut pick = rng.below(sum);
            let mut chosen = options[options.len() - 1];
            for o in &options {
                if pick < o.5 {
                    chosen = *o;
                    break;
                }
                pick -= o.5;
            }
            let (i, b, k, share, d, _) = chosen;
            steps.push(self.step(i + 1, k, b, share, d));
            (a, e) = (i + 1, k);
        }
        let strength = suffix_product(steps.iter().skip(1).map(|s| s.share));
        Ok(Path { strength, steps })
    }

    /// Every relevant path, in lexicographic order of their steps (`(node, index, operand)` from
    /// the input, the input as node −1), when there are at most `limit`; `None` when there are
    /// more.
    ///
    /// # Errors
    /// As [`count`](Self::count).
    pub fn all_relevant(&self, limit: usize) -> Result<Option<Vec<Path>>> {
        let total = self.count()?;
        if total > limit as u128 {
            return Ok(None);
        }
        let mut out = Vec::new();
        for (j, c) in self.rel[0].iter().enumerate() {
            if c.0 > 0 {
                let mut steps = vec![self.step(0, j, 0, Counting::one(), None)];
                self.enumerate_from(0, j, &mut steps, &mut out)?;
            }
        }
        Ok(Some(out))
    }

    fn enumerate_from(
        &self,
        a: usize,
        e: usize,
        steps: &mut Vec<Step>,
        out: &mut Vec<Path>,
    ) -> Result<()> {
        if a == self.activations() - 1 {
            let strength = suffix_product(steps.iter().skip(1).map(|s| s.share));
            out.push(Path {
                strength,
                steps: steps.clone(),
            });
            return Ok(());
        }
        let mut next = Vec::new();
        self.expand(a, e, |i, b, k, share, d| {
            if share.0 > 0 && self.rel_at(i + 1, k).0 > 0 {
                next.push((i, b, k, share, d));
            }
        })?;
        next.sort_by_key(|&(i, b, k, _, _)| (i, k, b));
        for (i, b, k, share, d) in next {
            steps.push(self.step(i + 1, k, b, share, d));
            self.enumerate_from(i + 1, k, steps, out)?;
            steps.pop();
        }
        Ok(())
    }
}

impl Network {
    /// The `k` strongest paths from an input element of the sample `x` to `target`, strongest
    /// first, under the Viterbi `explainer` ([`Explainer::viterbi`]): a shortcut for
    /// [`RelevanceGraph::new`] then [`RelevanceGraph::strongest`].
    ///
    /// ```
    /// use klrp::layers::Dense;
    /// use klrp::ndarray::array;
    /// use klrp::{Explainer, Network};
    /// let net = Network::new([2], vec![Box::new(Dense::new(array![[1.0, 0.5]], None)?)])?;
    /// let paths = net.strongest_paths(&array![[1.0_f32, 1.0]], 0, 5, &Explainer::viterbi())?;
    /// assert_eq!(paths.len(), 2);
    /// assert_eq!(paths[0].steps[0].index, 0); // |1·1| is the larger contribution: share 1
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RelevanceGraph::new`] and [`RelevanceGraph::strongest`].
    pub fn strongest_paths<S, D, T>(
        &self,
        x: &ArrayBase<S, D>,
        target: impl Into<Targets>,
        k: usize,
        explainer: &Explainer<crate::semiring::Viterbi, T>,
    ) -> Result<Vec<Path>>
    where
        S: Data<Elem = f32>,
        D: Dimension,
        T: Conversion<crate::semiring::Viterbi>,
    {
        RelevanceGraph::new(self, x, target, explainer)?.strongest(k)
    }

    /// `n` relevant paths of the sample `x` to `target` drawn uniformly (with replacement,
    /// reproducibly from `seed`) under the Counting `explainer` ([`Explainer::counting`]): a
    /// shortcut for [`RelevanceGraph::new`] then [`RelevanceGraph::sample`].
    ///
    /// # Errors
    /// As [`RelevanceGraph::new`] and [`RelevanceGraph::sample`].
    pub fn sample_relevant_paths<S, D, T>(
        &self,
        x: &ArrayBase<S, D>,
        target: impl Into<Targets>,
        n: usize,
        explainer: &Explainer<Counting, T>,
        seed: u64,
    ) -> Result<Vec<Path>>
    where
        S: Data<Elem = f32>,
        D: Dimension,
        T: Conversion<Counting>,
    {
        RelevanceGraph::new(self, x, target, explainer)?.sample(n, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Composite;
    use crate::conversion::Clamp01;
    use crate::layers::{Dense, ReLU};
    use crate::semiring::KBest;
    use ndarray::array;

    /// Like [`Network::explain_with`], the relevance graph refuses LRP-0 shares (outside [0, 1])
    /// for a semiring of path strengths, naming the semiring and the rule.
    #[test]
    fn relevance_graph_refuses_shares_outside_the_unit_interval() {
        let net = Network::new(
            [3],
            vec![
                Box::new(Dense::new(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]], None).unwrap()),
                Box::new(ReLU),
                Box::new(Dense::new(array![[1.0, -0.5], [0.3, 1.0]], None).unwrap()),
            ],
        )
        .unwrap();
        let x = array![[1.0_f32, 2.0, 0.5]];
        let lrp0 = Explainer::<KBest<3>, _>::new(Composite::k_lrp(), Clamp01);
        let e = RelevanceGraph::new(&net, &x, 1, &lrp0).unwrap_err();
        let Error::Layer { index, source, .. } = e else {
            panic!("{e:?}")
        };
        assert_eq!(index, 0);
        let Error::Unsupported(m) = *source else {
            panic!("{source:?}")
        };
        assert!(
            m.contains("the k-best semiring needs shares in [0, 1]") && m.contains("'zero'"),
            "{m}"
        );
    }
}
