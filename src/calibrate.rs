//! θ calibration: per-layer thresholds for Boolean and Counting relevance, chosen on data.
//!
//! May import: `composite`, `conversion`, `error`, `explain`, `graph`, `kernels`, `layers`,
//! `network`, `rules`, `semiring`, `shares`, `tensor` (docs/architecture.md, "Layers").
//!
//! A threshold θ decides which shares `d_jk` count as relevant (`Θ(d) = [d ≥ θ]`). Too low and
//! every input has a relevant path (an all-on mask); too high and none has (all off). Three ways
//! to choose θ per layer on a calibration batch (docs/semantics.md §9):
//!
//! - [`fair_share`]`(κ)`: `θ_l = κ / n̄_l` on every dense and convolution layer `l`, where `n̄_l`
//!   is the mean number of non-zero inputs an output of `l` is connected to. If every input
//!   contributed equally, each share would be `1 / n̄_l` ("the fair share"); a connection is
//!   relevant when it carries at least κ fair shares.
//! - [`for_input_fraction`]`(f)`: the fair-share θ with the κ that makes the Boolean masks keep a
//!   fraction `f` of the calibration inputs' non-zero entries on (κ searched on a grid).
//! - [`for_connection_fraction`]`(f)`: on each dense and convolution layer separately, the θ that
//!   keeps a fraction `f` of the connections whose share is positive.
//!
//! Every other layer (pooling) gets θ = the smallest positive `f32`: any positive share counts
//! (a max-pooling winner always passes). Activations, reshapes and identities take no Θ.
//!
//! ```
//! use klrp::calibrate;
//! use klrp::explain::Explainer;
//! use klrp::layers::{Dense, ReLU};
//! use klrp::ndarray::array;
//! use klrp::{Composite, Network};
//!
//! let net = Network::new(
//!     [3],
//!     vec![
//!         Box::new(Dense::new(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]], None)?),
//!         Box::new(ReLU),
//!         Box::new(Dense::new(array![[1.0, -0.5], [0.3, 1.0]], None)?),
//!     ],
//! )?;
//! let x = array![[1.0_f32, 2.0, 0.5], [0.5, 1.0, 2.0]].into_dyn();
//! let cal = calibrate::for_input_fraction(&net, &x, &[1, 1], &Composite::k_lrp(), 0.5)?;
//! println!("κ = {}, masks keep {:.0}% of the inputs", cal.kappa, 100.0 * cal.fraction);
//! let mask = net.explain_with(&x, 1, &Explainer::boolean(cal.theta))?;
//! # Ok::<(), klrp::Error>(())
//! ```

use crate::composite::Composite;
use crate::conversion::{Conversion, PerLayer, Threshold};
use crate::error::{Error, Result};
use crate::explain::Targets;
use crate::kernels;
use crate::layers::{Connectivity, Shares, Tensor};
use crate::network::{Network, Trace, one_hot};
use crate::rules::{Rule, ZeroRule};
use crate::semiring::{Boolean, Counting, Fuzzy};
use ndarray::{ArrayD, IxDyn};

/// θ on layers that are neither dense nor convolutions (pooling): any positive share counts.
pub const DEFAULT_OTHER_THETA: f32 = f32::MIN_POSITIVE;

/// The κ grid [`for_input_fraction`] searches: 0.1, 0.2, …, 0.9, then 1, 1.5, 2, …, 128.
pub fn kappa_grid() -> Vec<f32> {
    (1..=9)
        .map(|i| i as f32 * 0.1)
        .chain((2..=256).map(|i| i as f32 * 0.5))
        .collect()
}

/// `n̄_l` of one dense or convolution layer: its fan-in (inputs per output; for a convolution
/// `C_in / groups · kh · kw`, ignoring the borders) times the fraction of its input that is
/// non-zero on the calibration batch. For a dense layer this is the mean number of non-zero
/// inputs per sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActiveInputs {
    /// The layer's index in the network.
    pub layer: usize,
    /// Inputs per output.
    pub fan_in: usize,
    /// `n̄_l`.
    pub mean_active: f64,
}

/// The thresholds [`for_input_fraction`] chose.
#[derive(Clone, Debug)]
pub struct InputCalibration {
    /// θ per layer: `κ / n̄_l` on dense and convolution layers.
    pub theta: PerLayer<Threshold>,
    /// κ.
    pub kappa: f32,
    /// `n̄_l` of every dense and convolution layer.
    pub active_inputs: Vec<ActiveInputs>,
    /// The mean fraction of each calibration sample's non-zero inputs that the Boolean masks keep
    /// with this θ.
    pub fraction: f64,
}

fn check_batch(x: &Tensor) -> Result<()> {
    if x.ndim() == 0 || x.shape()[0] == 0 {
        return Err(Error::invalid(
            "calibration needs a batch of at least one sample",
        ));
    }
    Ok(())
}

fn check_fraction(fraction: f64) -> Result<()> {
    if fraction.is_finite() && fraction > 0.0 && fraction <= 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "calibration fraction {fraction} is not in (0, 1]"
        )))
    }
}

/// Inputs per output of a linear layer's connections.
fn fan_in(conn: &Connectivity<'_>) -> usize {
    match conn {
        Connectivity::Dense { weight, .. } => weight.ncols(),
        Connectivity::Conv {
            geometry: g,
            weight,
            ..
        } => weight.shape()[1] * g.kh * g.kw,
        Connectivity::Pool { geometry: g } => {
            g.rows.first().map_or(0, |r| r.len()) * g.cols.first().map_or(0, |c| c.len())
        }
    }
}

/// `n̄_l` for every dense and convolution layer of `net`, from a trace of the calibration batch.
///
/// # Errors
/// [`Error::Layer`] if a layer cannot describe its shares.
pub fn active_inputs(net: &Network, trace: &Trace) -> Result<Vec<ActiveInputs>> {
    let mut out = Vec::new();
    let rule: Rule = ZeroRule.into();
    for (i, layer) in net.layers().iter().enumerate() {
        if !layer.kind().is_linear() {
            continue;
        }
        let (a_in, a_out) = linear_io(net, trace, i)?;
        let wrap = |e: Error| e.in_layer(i, layer.name());
        let Shares::Linear { connectivity, .. } = layer.shares(a_in, a_out, &rule).map_err(wrap)?
        else {
            continue;
        };
        let fan_in = fan_in(&connectivity);
        let nonzero = a_in.iter().filter(|&&v| v != 0.0).count() as f64 / a_in.len().max(1) as f64;
        out.push(ActiveInputs {
            layer: i,
            fan_in,
            mean_active: fan_in as f64 * nonzero,
        });
    }
    Ok(out)
}

/// The input and output of dense or convolution node `i` in `trace` (its one input may be any
/// earlier node's output in a graph).
fn linear_io<'t>(net: &Network, trace: &'t Trace, i: usize) -> Result<(&'t Tensor, &'t Tensor)> {
    let source = net.inputs_of(i).and_then(|s| s.first());
    match (
        source.and_then(|s| trace.activation(s.activation_index())),
        trace.activation(i + 1),
    ) {
        (Some(a_in), Some(a_out)) => Ok((a_in, a_out)),
        _ => Err(Error::invalid(
            "the trace was not made by this network (too few activations)",
        )),
    }
}

fn thetas(active: &[ActiveInputs], kappa: f32) -> Result<PerLayer<Threshold>> {
    let mut p = PerLayer::new(Threshold::new(DEFAULT_OTHER_THETA)?);
    for a in active {
        p.set(
            a.layer,
            Threshold::new(kappa / a.mean_active.max(1.0) as f32)?,
        );
    }
    Ok(p)
}

/// Fair-share thresholds: `θ_l = κ / n̄_l` on every dense and convolution layer (`n̄_l` from the
/// calibration batch `x`, at least 1), [`DEFAULT_OTHER_THETA`] elsewhere.
///
/// # Errors
/// As [`Network::trace`]; [`Error::InvalidArgument`] if `kappa` is not finite and positive.
pub fn fair_share(net: &Network, x: &Tensor, kappa: f32) -> Result<PerLayer<Threshold>> {
    if !(kappa.is_finite() && kappa > 0.0) {
        return Err(Error::invalid(format!(
            "fair-share κ = {kappa} must be finite and positive"
        )));
    }
    check_batch(x)?;
    let trace = net.trace(x)?;
    thetas(&active_inputs(net, &trace)?, kappa)
}

/// Fair-share thresholds with the κ of [`kappa_grid`] whose Boolean masks (under `composite`,
/// explaining `targets`) keep the fraction of non-zero inputs closest to `fraction`, averaged
/// over the calibration samples `x`. The mask only shrinks as κ grows: κ is the first grid value
/// keeping at most `fraction`, or the one before it if that is closer. It is found with one
/// bottleneck propagation in the (max, min) semiring, which gives every input the largest κ
/// that keeps it on, and (usually) two Boolean propagations that confirm the choice.
///
/// `targets` converts into [`Targets`] as in [`Network::explain_with`]: one class for every
/// sample (`usize`), one per sample (`&[usize]`, `Vec<usize>`, `[usize; N]`), or
/// [`Targets::Predicted`] (each sample's largest output).
///
/// # Errors
/// As [`Network::trace`] and [`Network::propagate`]; [`Error::InvalidArgument`] if `fraction` is
/// not in (0, 1], or if the targets list a number of classes other than the batch size.
pub fn for_input_fraction(
    net: &Network,
    x: &Tensor,
    targets: impl Into<Targets>,
    composite: &Composite,
    fraction: f64,
) -> Result<InputCalibration> {
    check_fraction(fraction)?;
    check_batch(x)?;
    let trace = net.trace(x)?;
    let targets = targets.into().resolve(&trace)?;
    let targets = targets.as_slice();
    let active = active_inputs(net, &trace)?;
    let init = one_hot::<Boolean>(trace.output().shape(), targets)?;
    let nonzero: Vec<f64> = x
        .outer_iter()
        .map(|s| s.iter().filter(|&&v| v != 0.0).count().max(1) as f64)
        .collect();
    let n = nonzero.len() as f64;
    // The mean fraction of non-zero inputs a Boolean mask keeps at κ (one propagation).
    let kept = |kappa: f32| -> Result<f64> {
        let theta = thetas(&active, kappa)?;
        let mask = net.propagate(&trace, init.clone(), composite, &theta, false)?;
        Ok(mask
            .input()
            .outer_iter()
            .zip(&nonzero)
            .map(|(m, nz)| m.iter().filter(|v| v.0).count() as f64 / nz)
            .sum::<f64>()
            / n)
    };
    let grid = kappa_grid();
    // The mask only shrinks as κ grows. Wanted: the first grid index whose mask keeps at most
    // `fraction` (the last index if none does). One bottleneck propagation predicts every
    // κ's mask at once; Boolean propagations then confirm the prediction (and correct it, one
    // grid step at a time, where rounding made it differ).
    let critical = critical_kappas(net, &trace, targets, composite, &active)?;
    let predicted = |kappa: f32| -> f64 {
        critical
            .outer_iter()
            .zip(&nonzero)
            .map(|(c, nz)| c.iter().filter(|&&k| k >= f64::from(kappa)).count() as f64 / nz)
            .sum::<f64>()
            / n
    };
    let mut lo = grid
        .partition_point(|&k| predicted(k) > fraction)
        .min(grid.len() - 1);
    let mut at_lo = kept(grid[lo])?;
    while at_lo > fraction && lo + 1 < grid.len() {
        lo += 1;
        at_lo = kept(grid[lo])?;
    }
    let mut before = if lo > 0 {
        Some(kept(grid[lo - 1])?)
    } else {
        None
    };
    while let Some(b) = before.filter(|&b| b <= fraction) {
        lo -= 1;
        at_lo = b;
        before = if lo > 0 {
            Some(kept(grid[lo - 1])?)
        } else {
            None
        };
    }
    let mut best = (grid[lo], at_lo);
    if let Some(b) = before
        && (b - fraction).abs() < (at_lo - fraction).abs()
    {
        best = (grid[lo - 1], b);
    }
    Ok(InputCalibration {
        theta: thetas(&active, best.0)?,
        kappa: best.0,
        active_inputs: active,
        fraction: best.1,
    })
}

/// The (max, min) semiring on `[0, 1]` in `f32`: a path is as strong as its weakest step, an
/// input as its strongest path. Single precision is all the bottleneck propagation of
/// [`for_input_fraction`] needs (its values are compared with `f32` thresholds), and it halves
/// the memory the kernels stream.
type Bottleneck = Fuzzy<f32>;

/// Θ of the bottleneck propagation behind [`for_input_fraction`]: a dense or convolution share
/// `d` becomes the largest κ at which it still passes `d ≥ κ / n̄_l`, i.e. `d · n̄_l`, scaled
/// into [0, 1] by the grid's largest κ (above it: 1, passes every κ); any other layer's share
/// passes every κ or none, as [`DEFAULT_OTHER_THETA`] decides.
#[derive(Clone, Copy, Debug)]
enum CriticalKappa {
    /// `clamp(d · n̄_l / κ_max, 0, 1)`, the factor `n̄_l / κ_max` held.
    FairShare(f32),
    /// `[d ≥ DEFAULT_OTHER_THETA]`.
    Other,
}

impl Conversion<Bottleneck> for CriticalKappa {
    #[inline]
    fn convert(&self, share: f32) -> Bottleneck {
        match *self {
            CriticalKappa::FairShare(scale) => Fuzzy((share * scale).clamp(0.0, 1.0)),
            CriticalKappa::Other => Fuzzy(f32::from(u8::from(share >= DEFAULT_OTHER_THETA))),
        }
    }
}

/// Every input's critical κ: the largest κ (capped at the grid's largest) at which the
/// fair-share Boolean mask `θ_l = κ / n̄_l` still has the input on, 0 if none does.
///
/// A path is on at κ when every dense and convolution share on it passes, `d ≥ κ / n̄_l`, i.e.
/// `κ ≤ min(d · n̄_l)`, and every other share passes its fixed θ; an input is on when one of
/// its paths is: `κ*_j = max over paths min over steps` — one propagation in the (max, min)
/// semiring ([`Bottleneck`]). Up to rounding, input j is on at κ exactly when `κ ≤ κ*_j`.
fn critical_kappas(
    net: &Network,
    trace: &Trace,
    targets: &[usize],
    composite: &Composite,
    active: &[ActiveInputs],
) -> Result<ArrayD<f64>> {
    let kappa_max = *kappa_grid().last().expect("the grid is not empty");
    let mut theta = PerLayer::new(CriticalKappa::Other);
    for a in active {
        theta.set(
            a.layer,
            CriticalKappa::FairShare(a.mean_active.max(1.0) as f32 / kappa_max),
        );
    }
    let init = one_hot::<Bottleneck>(trace.output().shape(), targets)?;
    let r = net.propagate(trace, init, composite, &theta, false)?;
    Ok(r.input().mapv(|v| f64::from(v.0 * kappa_max)))
}

/// Per-layer thresholds: on each dense and convolution layer, the θ that keeps (`d ≥ θ`) a
/// fraction `fraction` of the connections whose share under `composite` is positive, over the
/// calibration batch `x` (found by bisection on `log θ`, to within 0.1 % of θ);
/// [`DEFAULT_OTHER_THETA`] elsewhere. Independent of the targets: every connection counts, not
/// only those on a path to a target.
///
/// # Errors
/// As [`Network::trace`]; [`Error::Layer`] if a layer's rule does not apply;
/// [`Error::InvalidArgument`] if `fraction` is not in (0, 1].
pub fn for_connection_fraction(
    net: &Network,
    x: &Tensor,
    composite: &Composite,
    fraction: f64,
) -> Result<PerLayer<Threshold>> {
    check_fraction(fraction)?;
    check_batch(x)?;
    let trace = net.trace(x)?;
    let rules = composite.assign(net.layers());
    let mut theta = PerLayer::new(Threshold::new(DEFAULT_OTHER_THETA)?);
    for (i, layer) in net.layers().iter().enumerate() {
        if !layer.kind().is_linear() {
            continue;
        }
        let wrap = |e: Error| e.in_layer(i, layer.name());
        let (a_in, a_out) = linear_io(net, &trace, i)?;
        let shares = layer.shares(a_in, a_out, &rules[i]).map_err(wrap)?;
        let ones = ArrayD::from_elem(IxDyn(a_out.shape()), Counting(1));
        // Σ_j #{k : d_jk ≥ θ}: the number of connections that pass.
        let passing = |t: f32| -> Result<f64> {
            let r = kernels::propagate(&shares, &Threshold::new(t)?, &ones, a_in.shape())
                .map_err(wrap)?;
            Ok(r.iter().map(|c| c.0 as f64).sum())
        };
        let positive = passing(f32::MIN_POSITIVE)?;
        if positive == 0.0 {
            continue; // no positive share on the calibration batch: nothing to calibrate
        }
        let share = |t: f32| -> Result<f64> { Ok(passing(t)? / positive) };
        if fraction >= 1.0 {
            continue; // every positive share: the default θ
        }
        // Bracket: share(lo) > fraction ≥ share(hi); share(smallest positive θ) = 1.
        let (mut lo, mut hi) = (f32::MIN_POSITIVE, 1.0_f32);
        while share(hi)? > fraction {
            lo = hi;
            hi *= 2.0;
            if !hi.is_finite() {
                return Err(Error::invalid("connection calibration: shares above 1e38")
                    .in_layer(i, layer.name()));
            }
        }
        // Geometric bisection until hi / lo < 1.001, then the end closer to `fraction`.
        while f64::from(hi) / f64::from(lo) > 1.001 {
            let mid = (f64::from(lo) * f64::from(hi)).sqrt() as f32;
            if mid <= lo || mid >= hi {
                break;
            }
            if share(mid)? > fraction {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let pick = if (share(lo)? - fraction).abs() < (share(hi)? - fraction).abs() {
            lo
        } else {
            hi
        };
        theta.set(i, Threshold::new(pick)?);
    }
    Ok(theta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Dense, ReLU};
    use ndarray::array;

    fn net() -> Network {
        Network::new(
            [4],
            vec![
                Box::new(
                    Dense::new(
                        array![
                            [1.0, 0.5, -1.0, 0.2],
                            [0.2, 1.0, 0.3, 0.7],
                            [0.4, -0.3, 0.9, 1.1]
                        ],
                        None,
                    )
                    .unwrap(),
                ),
                Box::new(ReLU),
                Box::new(Dense::new(array![[1.0, -0.5, 0.4], [0.3, 1.0, 0.6]], None).unwrap()),
            ],
        )
        .unwrap()
    }

    fn x() -> Tensor {
        array![[1.0_f32, 2.0, 0.5, 0.0], [0.5, 1.0, 2.0, 1.5]].into_dyn()
    }

    #[test]
    fn graph_nodes_are_calibrated_on_their_own_inputs() {
        // Node 2 reads the network input, not node 1's output: its n̄ comes from x.
        use crate::graph::GraphBuilder;
        use crate::layers::Add;
        let w = || Dense::new(array![[1.0, 0.5, -1.0, 0.2], [0.2, 1.0, 0.3, 0.7]], None).unwrap();
        let mut g = GraphBuilder::new([4]);
        let x0 = g.input();
        let a = g.add(w(), [x0]).unwrap();
        let a = g.add(ReLU, [a]).unwrap();
        let b = g.add(w(), [x0]).unwrap();
        g.add(Add, [a, b]).unwrap();
        let net = g.build().unwrap();
        let t = fair_share(&net, &x(), 1.0).unwrap();
        // x has 3 and 4 non-zero entries of 4: n̄ = 4 · 7/8 = 3.5 for both dense nodes.
        assert!((t.at(0).theta() - 1.0 / 3.5).abs() < 1e-6);
        assert!((t.at(2).theta() - 1.0 / 3.5).abs() < 1e-6);
        let c = for_connection_fraction(&net, &x(), &Composite::k_lrp(), 0.5).unwrap();
        assert!(c.at(2).theta() > DEFAULT_OTHER_THETA);
    }

    #[test]
    fn fair_share_divides_kappa_by_the_active_inputs() {
        let net = net();
        // Layer 0: non-zero inputs 3 and 4 → n̄ = 3.5. Layer 2: the hidden activations.
        let trace = net.trace(&x()).unwrap();
        let h = trace.activation(2).unwrap();
        let nbar2 = h.iter().filter(|&&v| v != 0.0).count() as f64 / 2.0;
        let t = fair_share(&net, &x(), 2.0).unwrap();
        assert!((t.at(0).theta() - 2.0 / 3.5).abs() < 1e-6);
        assert!((t.at(2).theta() - (2.0 / nbar2.max(1.0)) as f32).abs() < 1e-6);
        assert_eq!(t.at(1).theta(), DEFAULT_OTHER_THETA);
        assert!(fair_share(&net, &x(), f32::NAN).is_err());
        assert!(fair_share(&net, &x(), 0.0).is_err());
    }

    #[test]
    fn input_fraction_is_the_closest_on_the_grid() {
        let net = net();
        let c = Composite::k_lrp();
        for target in [0.3, 0.6, 1.0] {
            let cal = for_input_fraction(&net, &x(), [0, 1], &c, target).unwrap();
            // Recompute what the chosen θ keeps.
            let trace = net.trace(&x()).unwrap();
            let init = one_hot::<Boolean>(trace.output().shape(), &[0, 1]).unwrap();
            let m = net.propagate(&trace, init, &c, &cal.theta, false).unwrap();
            let kept = (m.input().row_on(0) / 3.0 + m.input().row_on(1) / 4.0) / 2.0;
            assert!(
                (kept - cal.fraction).abs() < 1e-12,
                "{kept} vs {}",
                cal.fraction
            );
            // No grid κ does better.
            for k in kappa_grid() {
                let th = fair_share(&net, &x(), k).unwrap();
                let init = one_hot::<Boolean>(trace.output().shape(), &[0, 1]).unwrap();
                let m = net.propagate(&trace, init, &c, &th, false).unwrap();
                let f = (m.input().row_on(0) / 3.0 + m.input().row_on(1) / 4.0) / 2.0;
                assert!(
                    (f - target).abs() >= (cal.fraction - target).abs() - 1e-12,
                    "κ = {k} keeps {f}, closer to {target} than κ = {} ({})",
                    cal.kappa,
                    cal.fraction
                );
            }
        }
        assert!(for_input_fraction(&net, &x(), [0, 1], &c, 0.0).is_err());
        assert!(for_input_fraction(&net, &x(), [0, 1], &c, 1.5).is_err());
    }

    /// The targets convert like `explain_with`'s: a class, a slice, a `Vec`, an array or
    /// `Targets::Predicted` name the same per-sample classes; a list of the wrong length is an
    /// error, not a panic.
    #[test]
    fn input_fraction_takes_any_targets() {
        let net = net();
        let c = Composite::k_lrp();
        let got = |t: Targets| {
            let cal = for_input_fraction(&net, &x(), t, &c, 0.5).unwrap();
            (cal.kappa, cal.fraction)
        };
        let slice: &[usize] = &[1, 1];
        let ones = for_input_fraction(&net, &x(), slice, &c, 0.5).unwrap();
        let ones = (ones.kappa, ones.fraction);
        assert_eq!(got(Targets::from(1)), ones);
        assert_eq!(got(Targets::from(vec![1, 1])), ones);
        assert_eq!(got(Targets::from([1, 1])), ones);
        let one = for_input_fraction(&net, &x(), 1, &c, 0.5).unwrap();
        assert_eq!((one.kappa, one.fraction), ones);
        let predictions = net.trace(&x()).unwrap().predictions();
        let predicted = for_input_fraction(&net, &x(), Targets::Predicted, &c, 0.5).unwrap();
        let listed = for_input_fraction(&net, &x(), &predictions, &c, 0.5).unwrap();
        assert_eq!(
            (predicted.kappa, predicted.fraction),
            (listed.kappa, listed.fraction)
        );
        let err = for_input_fraction(&net, &x(), vec![0, 1, 1], &c, 0.5).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("batch of 2"), "{err}");
    }

    /// The earlier search, kept as the reference: bisection on the grid with one Boolean
    /// propagation per step, then the closer of the index found and the one before.
    fn bisection_reference(
        net: &Network,
        x: &Tensor,
        targets: &[usize],
        c: &Composite,
        fraction: f64,
    ) -> (f32, f64) {
        let trace = net.trace(x).unwrap();
        let active = active_inputs(net, &trace).unwrap();
        let init = one_hot::<Boolean>(trace.output().shape(), targets).unwrap();
        let nz: Vec<f64> = x
            .outer_iter()
            .map(|s| s.iter().filter(|&&v| v != 0.0).count().max(1) as f64)
            .collect();
        let kept = |k: f32| -> f64 {
            let m = net
                .propagate(&trace, init.clone(), c, &thetas(&active, k).unwrap(), false)
                .unwrap();
            m.input()
                .outer_iter()
                .zip(&nz)
                .map(|(m, nz)| m.iter().filter(|v| v.0).count() as f64 / nz)
                .sum::<f64>()
                / nz.len() as f64
        };
        let grid = kappa_grid();
        let (mut lo, mut hi) = (0usize, grid.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if kept(grid[mid]) <= fraction {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let mut best = (grid[lo], kept(grid[lo]));
        if lo > 0 {
            let before = kept(grid[lo - 1]);
            if (before - fraction).abs() < (best.1 - fraction).abs() {
                best = (grid[lo - 1], before);
            }
        }
        best
    }

    /// Deterministic values in [-1, 1) (a 64-bit LCG).
    fn lcg(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn bottleneck_search_finds_the_kappa_of_the_bisection() {
        use crate::layers::{Conv2d, Flatten, MaxPool2d};
        use ndarray::{Array2, Array4};
        let mut checked = 0;
        for seed in 0..6u64 {
            // An MLP and a CNN with max pooling; inputs with some zeros.
            let mlp = Network::new(
                [12],
                vec![
                    Box::new(
                        Dense::new(
                            Array2::from_shape_vec((10, 12), lcg(120, seed)).unwrap(),
                            None,
                        )
                        .unwrap(),
                    ),
                    Box::new(ReLU),
                    Box::new(
                        Dense::new(
                            Array2::from_shape_vec((4, 10), lcg(40, seed + 100)).unwrap(),
                            None,
                        )
                        .unwrap(),
                    ),
                ],
            )
            .unwrap();
            let cnn = Network::new(
                [2, 6, 6],
                vec![
                    Box::new(
                        Conv2d::new(
                            Array4::from_shape_vec((3, 2, 3, 3), lcg(54, seed + 200)).unwrap(),
                            None,
                        )
                        .unwrap(),
                    ),
                    Box::new(ReLU),
                    Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
                    Box::new(Flatten),
                    Box::new(
                        Dense::new(
                            Array2::from_shape_vec((3, 12), lcg(36, seed + 300)).unwrap(),
                            None,
                        )
                        .unwrap(),
                    ),
                ],
            )
            .unwrap();
            let relu = |v: Vec<f32>| v.into_iter().map(|a| a.max(0.0)).collect::<Vec<_>>();
            let cases = [
                (
                    mlp,
                    ArrayD::from_shape_vec(IxDyn(&[2, 12]), relu(lcg(24, seed + 400))),
                ),
                (
                    cnn,
                    ArrayD::from_shape_vec(IxDyn(&[2, 2, 6, 6]), relu(lcg(144, seed + 500))),
                ),
            ];
            for (net, x) in cases {
                let x = x.unwrap();
                let trace = net.trace(&x).unwrap();
                let targets = trace.predictions();
                for c in [Composite::k_lrp(), Composite::uniform(ZeroRule)] {
                    for fraction in [0.05, 0.2, 0.5, 0.8, 1.0] {
                        let cal = for_input_fraction(&net, &x, &targets, &c, fraction).unwrap();
                        let (kappa, kept) = bisection_reference(&net, &x, &targets, &c, fraction);
                        assert_eq!(
                            (cal.kappa, cal.fraction),
                            (kappa, kept),
                            "seed {seed}, fraction {fraction}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 6 * 2 * 2 * 5);
    }

    trait RowOn {
        fn row_on(&self, s: usize) -> f64;
    }
    impl RowOn for ArrayD<Boolean> {
        fn row_on(&self, s: usize) -> f64 {
            self.outer_iter()
                .nth(s)
                .unwrap()
                .iter()
                .filter(|b| b.0)
                .count() as f64
        }
    }

    #[test]
    fn connection_fraction_keeps_that_share_of_positive_connections() {
        let net = net();
        let c = Composite::k_lrp();
        let trace = net.trace(&x()).unwrap();
        let theta = for_connection_fraction(&net, &x(), &c, 0.5).unwrap();
        for layer in [0, 2] {
            // Every share of the layer, enumerated by hand: d_jk = a_j w_kj / z_k.
            let (a, z) = (
                trace.activation(layer).unwrap(),
                trace.activation(layer + 1).unwrap(),
            );
            let w = match layer {
                0 => array![
                    [1.0, 0.5, -1.0, 0.2],
                    [0.2, 1.0, 0.3, 0.7],
                    [0.4, -0.3, 0.9, 1.1]
                ],
                _ => array![[1.0_f32, -0.5, 0.4], [0.3, 1.0, 0.6]],
            };
            let z = if layer == 0 {
                // z of layer 0 is before the ReLU: recompute it.
                a.clone()
                    .into_dimensionality::<ndarray::Ix2>()
                    .unwrap()
                    .dot(&w.t())
                    .into_dyn()
            } else {
                z.clone()
            };
            let mut shares = Vec::new();
            for s in 0..2 {
                for k in 0..w.nrows() {
                    for j in 0..w.ncols() {
                        let zk = z[[s, k]];
                        let d = if zk == 0.0 {
                            0.0
                        } else {
                            a[[s, j]] * w[[k, j]] / zk
                        };
                        if d > 0.0 {
                            shares.push(d);
                        }
                    }
                }
            }
            let t = theta.at(layer).theta();
            let kept = shares.iter().filter(|&&d| d >= t).count() as f64 / shares.len() as f64;
            // The closest achievable fraction: with n shares, steps of 1/n.
            let n = shares.len() as f64;
            assert!(
                (kept - 0.5).abs() <= 0.5 / n + 1e-9,
                "layer {layer}: kept {kept} of {n}"
            );
        }
    }
}
