//! Grouped and depthwise convolutions with asymmetric padding: the fast kernels against
//! `kernels::propagate_reference` (bit for bit, except the Real linear form, which rounds
//! differently) and against the convolution's unrolled dense layer, in every shipped semiring;
//! and padded positions are never inputs (LRP-0, z^B and flat conserve relevance on them).
//!
//! Random cases: depthwise (groups = C_in, channel multiplier 1 or 2) and grouped
//! (1 < groups < C_in), kernels 1–3, strides 1 and 2, dilation 1 and 2, begin and end padding
//! 0–2 each, batches of two, values in multiples of 1/4 (so every forward pass is exact).

use crate::support::conv::{Taps, per_connection_rules, unroll_conv};
use crate::support::rng::Rng;
use klrp::kernels::{propagate, propagate_reference};
use klrp::layers::{Conv2d, Dense, Layer, LinearMap, Shares, Tensor};
use klrp::rules::{FlatRule, Rule, ZBoxRule, ZeroRule};
use klrp::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, LogCounting, Product, Real, Semiring, Tropical,
    Viterbi,
};
use klrp::{AbsThreshold, Clamp01, Conversion, Identity, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use proptest::prelude::*;

/// A grouped convolution's settings.
#[derive(Clone, Debug)]
struct Case {
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    groups: usize,
    stride: (usize, usize),
    dilation: (usize, usize),
    begin: (usize, usize),
    end: (usize, usize),
    /// Input `[C, H, W]`.
    input: (usize, usize, usize),
}

impl Case {
    fn layer(&self) -> Conv2d {
        Conv2d::new(self.weight.clone(), self.bias.clone())
            .unwrap()
            .with_groups(self.groups)
            .unwrap()
            .with_stride(self.stride)
            .unwrap()
            .with_dilation(self.dilation)
            .unwrap()
            .with_padding_asym(self.begin, self.end)
            .unwrap()
    }

    /// Output size per axis, or `None` if the kernel does not fit.
    fn out(&self) -> Option<(usize, usize)> {
        let [_, _, kh, kw] = *self.weight.shape() else {
            unreachable!()
        };
        let size = |n: usize, k: usize, s: usize, b: usize, e: usize, d: usize| {
            (n + b + e).checked_sub(d * (k - 1) + 1).map(|r| r / s + 1)
        };
        let (_, h, w) = self.input;
        Some((
            size(
                h,
                kh,
                self.stride.0,
                self.begin.0,
                self.end.0,
                self.dilation.0,
            )?,
            size(
                w,
                kw,
                self.stride.1,
                self.begin.1,
                self.end.1,
                self.dilation.1,
            )?,
        ))
    }

    /// The dense matrix `[C_out·out_h·out_w, C_in·H·W]` and bias, tap by tap from PyTorch's
    /// definition (`iy = oy·s − pad_begin + ky·d`; taps outside the input get no entry).
    fn unroll(&self) -> (Array2<f32>, Option<Array1<f32>>) {
        let taps = Taps {
            groups: self.groups,
            stride: self.stride,
            dilation: self.dilation,
            begin: self.begin,
        };
        let out = self.out().unwrap();
        unroll_conv(&self.weight, self.bias.as_ref(), &taps, self.input, out)
    }
}

/// A random depthwise or grouped convolution whose kernel fits its input.
fn random_case(rng: &mut Rng) -> Case {
    loop {
        let (groups, cin_g, cout_g) = if rng.coin() {
            // Depthwise, channel multiplier 1 or 2.
            (rng.int(2, 4), 1, rng.int(1, 2))
        } else {
            (rng.int(2, 3), rng.int(2, 3), rng.int(1, 3))
        };
        let (kh, kw) = (rng.int(1, 3), rng.int(1, 3));
        let mut pad = || (rng.int(0, 2), rng.int(0, 2));
        let (begin, end) = (pad(), pad());
        let case = Case {
            weight: Array4::from_shape_fn((groups * cout_g, cin_g, kh, kw), |_| rng.quarter()),
            bias: rng
                .coin()
                .then(|| Array1::from_shape_fn(groups * cout_g, |_| rng.quarter())),
            groups,
            stride: (rng.int(1, 2), rng.int(1, 2)),
            dilation: (rng.int(1, 2), rng.int(1, 2)),
            begin,
            end,
            input: (groups * cin_g, rng.int(2, 7), rng.int(2, 7)),
        };
        if case.out().is_some() {
            return case;
        }
    }
}

fn batch(rng: &mut Rng, n: usize, (c, h, w): (usize, usize, usize)) -> Tensor {
    ArrayD::from_shape_fn(IxDyn(&[n, c, h, w]), |_| rng.quarter())
}

/// The fast kernel equals the reference exactly.
fn exact<K: Semiring + PartialEq + std::fmt::Debug, T: Conversion<K>>(
    shares: &Shares<'_>,
    theta: &T,
    r: &ArrayD<K>,
    shape: &[usize],
    what: &str,
) -> Result<(), TestCaseError> {
    let fast = propagate(shares, theta, r, shape).unwrap();
    let reference = propagate_reference(shares, theta, r, shape).unwrap();
    prop_assert_eq!(fast, reference, "{}", what);
    Ok(())
}

/// Relevance arriving at the output, in semiring `K`, from random quarters.
fn init<K: Semiring>(y: &Tensor, rng: &mut Rng, f: impl Fn(&mut Rng) -> K) -> ArrayD<K> {
    y.map(|_| f(rng))
}

/// The largest output factor of the shares (the scale of ε-stabilised cancellations).
fn largest_factor(shares: &Shares<'_>) -> f32 {
    match shares {
        Shares::Linear { terms, .. } => terms
            .iter()
            .flat_map(|t| t.scale.iter())
            .fold(1.0f32, |m, v| m.max(v.abs())),
        _ => 1.0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Every semiring and every rule: the grouped kernels equal `propagate_reference`.
    #[test]
    fn grouped_kernels_equal_the_reference_in_every_semiring(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let case = random_case(&mut rng);
        let layer = case.layer();
        let x = batch(&mut rng, 2, case.input);
        let y = layer.forward(&x).unwrap();
        let shape = x.shape().to_vec();
        let mut rules = per_connection_rules();
        rules.push(FlatRule::default().into());
        for rule in rules {
            let name = format!("{} {case:?}", rule.name());
            let shares = layer.shares(&x, &y, &rule).unwrap();
            // Real through the linear form (Θ the identity): close, not bit for bit.
            let r: ArrayD<Real<f32>> = init(&y, &mut rng, |g| Real(g.quarter()));
            let fast = propagate(&shares, &Identity, &r, &shape).unwrap();
            let reference = propagate_reference(&shares, &Identity, &r, &shape).unwrap();
            let scale = reference.iter().fold(largest_factor(&shares), |m, v| m.max(v.0.abs()));
            for (a, b) in fast.iter().zip(&reference) {
                prop_assert!((a.0 - b.0).abs() <= 1e-5 * scale, "{name}: {a:?} vs {b:?}");
            }
            // Real through the gather (a conversion that is not flagged as the identity).
            exact(&shares, &|d: f32| Real(d), &r, &shape, &name)?;
            // Θ(0) ≠ 0: every connection counts, zero shares included.
            exact(&shares, &|d: f32| Real(d + 0.5), &r, &shape, &name)?;
            let rb: ArrayD<Boolean> = init(&y, &mut rng, |g| Boolean(g.coin()));
            let rc: ArrayD<Counting> = init(&y, &mut rng, |g| Counting(g.int(0, 3) as u64));
            let rf: ArrayD<FloatCounting> =
                init(&y, &mut rng, |g| FloatCounting(g.int(0, 3) as f64));
            let rl: ArrayD<LogCounting> =
                init(&y, &mut rng, |g| LogCounting(g.int(0, 3) as f64 - 1.0));
            for theta in [0.0f32, 0.25] {
                let t = Threshold::new(theta).unwrap();
                let a = AbsThreshold::new(theta).unwrap();
                exact(&shares, &t, &rb, &shape, &name)?;
                exact(&shares, &a, &rb, &shape, &name)?;
                exact(&shares, &t, &rc, &shape, &name)?;
                exact(&shares, &a, &rc, &shape, &name)?;
                exact(&shares, &a, &rf, &shape, &name)?;
                exact(&shares, &t, &rl, &shape, &name)?;
            }
            let rv: ArrayD<Viterbi> = init(&y, &mut rng, |g| Viterbi(g.unit().into()));
            exact(&shares, &Clamp01, &rv, &shape, &name)?;
            let rz: ArrayD<Fuzzy> = init(&y, &mut rng, |g| Fuzzy(g.unit().into()));
            exact(&shares, &Clamp01, &rz, &shape, &name)?;
            let rt: ArrayD<Tropical> =
                init(&y, &mut rng, |g| Tropical(f64::from(g.unit()) * 3.0));
            let tropical = |d: f32| {
                if d > 0.0 { Tropical(-f64::from(d.min(1.0)).ln()) } else { Tropical::zero() }
            };
            exact(&shares, &tropical, &rt, &shape, &name)?;
            let rp: ArrayD<Product<Boolean, Counting>> = init(&y, &mut rng, |g| {
                Product(Boolean(g.coin()), Counting(g.int(0, 3) as u64))
            });
            let both = |d: f32| {
                let pass = d.abs() > 0.25;
                Product(Boolean(pass), Counting(u64::from(pass)))
            };
            exact(&shares, &both, &rp, &shape, &name)?;
        }
    }

    /// A grouped convolution equals its unrolled dense layer: the same forward pass and max-abs
    /// pass (exactly), and the same relevance for every rule defined per connection (Boolean and
    /// Counting exactly, Real and Viterbi within rounding).
    #[test]
    fn grouped_convolution_equals_its_unrolled_dense_layer(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let case = random_case(&mut rng);
        let conv = case.layer();
        let (m, b) = case.unroll();
        let dense = Dense::new(m, b).unwrap();
        let x = batch(&mut rng, 2, case.input);
        let len = x.len() / 2;
        let x_flat = x.clone().into_shape_with_order(IxDyn(&[2, len])).unwrap();
        let y = conv.forward(&x).unwrap();
        let y_dense = dense.forward(&x_flat).unwrap();
        prop_assert!(y.iter().eq(y_dense.iter()), "forward differs: {:?}", case);
        let ma = conv.max_abs_forward(&x).unwrap();
        let ma_dense = dense.max_abs_forward(&x_flat).unwrap();
        prop_assert!(ma.iter().eq(ma_dense.iter()), "max-abs differs: {:?}", case);
        let shape = x.shape().to_vec();
        let flat_shape = x_flat.shape().to_vec();
        let outs = y.len();
        for rule in per_connection_rules() {
            let name = format!("{} {case:?}", rule.name());
            let sc = conv.shares(&x, &y, &rule).unwrap();
            let sd = dense.shares(&x_flat, &y_dense, &rule).unwrap();
            let real: Vec<Real<f32>> = (0..outs).map(|_| Real(rng.quarter())).collect();
            let rc = ArrayD::from_shape_vec(y.raw_dim(), real.clone()).unwrap();
            let rd = ArrayD::from_shape_vec(y_dense.raw_dim(), real).unwrap();
            let a = propagate(&sc, &Identity, &rc, &shape).unwrap();
            let b = propagate(&sd, &Identity, &rd, &flat_shape).unwrap();
            let scale = b.iter().fold(largest_factor(&sd), |m, v| m.max(v.0.abs()));
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p.0 - q.0).abs() <= 1e-5 * scale, "{name}: real {p:?} vs {q:?}");
            }
            let bools: Vec<Boolean> = (0..outs).map(|_| Boolean(rng.coin())).collect();
            let counts: Vec<Counting> = (0..outs).map(|_| Counting(rng.int(0, 3) as u64)).collect();
            for theta in [0.25f32, 0.5] {
                let t = AbsThreshold::new(theta).unwrap();
                let rb = ArrayD::from_shape_vec(y.raw_dim(), bools.clone()).unwrap();
                let rbd = ArrayD::from_shape_vec(y_dense.raw_dim(), bools.clone()).unwrap();
                let a = propagate(&sc, &t, &rb, &shape).unwrap();
                let b = propagate(&sd, &t, &rbd, &flat_shape).unwrap();
                prop_assert!(a.iter().eq(b.iter()), "{name}: boolean |d| > {theta}");
                let t = Threshold::new(theta).unwrap();
                let rcn = ArrayD::from_shape_vec(y.raw_dim(), counts.clone()).unwrap();
                let rcd = ArrayD::from_shape_vec(y_dense.raw_dim(), counts.clone()).unwrap();
                let a = propagate(&sc, &t, &rcn, &shape).unwrap();
                let b = propagate(&sd, &t, &rcd, &flat_shape).unwrap();
                prop_assert!(a.iter().eq(b.iter()), "{name}: counting d ≥ {theta}");
            }
            let vit: Vec<Viterbi> = (0..outs).map(|_| Viterbi(rng.unit().into())).collect();
            let rv = ArrayD::from_shape_vec(y.raw_dim(), vit.clone()).unwrap();
            let rvd = ArrayD::from_shape_vec(y_dense.raw_dim(), vit).unwrap();
            let a = propagate(&sc, &Clamp01, &rv, &shape).unwrap();
            let b = propagate(&sd, &Clamp01, &rvd, &flat_shape).unwrap();
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p.0 - q.0).abs() <= 1e-6, "{name}: viterbi {p:?} vs {q:?}");
            }
        }
    }

    /// Padded positions are never inputs: without a bias, LRP-0, z^B and flat hand each output's
    /// relevance entirely to real input positions (the sum over the input equals the sum over the
    /// output, in Real), however asymmetric the padding. Were padded positions counted by flat's
    /// `n_k` or covered by z^B's bounds, part of the relevance would be lost.
    #[test]
    fn padded_positions_are_never_inputs(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let mut case = random_case(&mut rng);
        case.bias = None;
        case.weight.mapv_inplace(|w| if w == 0.0 { 0.5 } else { w });
        let layer = case.layer();
        // Inputs strictly inside z^B's box (−1, 1) and positive, and no zero weight, keep every
        // denominator away from 0 (LRP-0 on the positive weights).
        let x = ArrayD::from_shape_fn(IxDyn(&[2, case.input.0, case.input.1, case.input.2]), |_| {
            0.25 + rng.int(0, 2) as f32 * 0.25
        });
        case.weight.mapv_inplace(f32::abs);
        let layer_pos = case.layer();
        let shape = x.shape().to_vec();
        // Outputs with no in-bounds tap at all (padding beyond the kernel's reach) have no input
        // to send relevance to: they get none.
        let reached = layer_pos.forward(&x).unwrap().mapv(|v| v > 0.0);
        let rules: [(Rule, &Conv2d); 3] = [
            (ZeroRule.into(), &layer_pos),
            (ZBoxRule::new(-1.0, 1.0).unwrap().into(), &layer),
            (FlatRule::default().into(), &layer),
        ];
        for (rule, conv) in rules {
            let y = conv.forward(&x).unwrap();
            let shares = conv.shares(&x, &y, &rule).unwrap();
            let r: ArrayD<Real<f32>> =
                reached.map(|&hit| Real(if hit { 0.25 + rng.unit() } else { 0.0 }));
            for got in [
                propagate(&shares, &Identity, &r, &shape).unwrap(),
                propagate(&shares, &|d: f32| Real(d), &r, &shape).unwrap(),
            ] {
                for s in 0..2 {
                    let total_in: f32 = got.index_axis(ndarray::Axis(0), s).iter().map(|v| v.0).sum();
                    let total_out: f32 = r.index_axis(ndarray::Axis(0), s).iter().map(|v| v.0).sum();
                    prop_assert!(
                        (total_in - total_out).abs() <= 1e-4 * total_out.abs().max(1.0),
                        "{}: {total_in} vs {total_out}; {case:?}", rule.name()
                    );
                }
            }
        }
    }
}

/// A depthwise convolution with TensorFlow "same" padding (0 before, 1 after) and stride 2, by
/// hand: the flat rule splits each output's relevance over its in-bounds taps only.
#[test]
fn flat_counts_only_in_bounds_taps_of_asymmetric_padding() {
    let layer = Conv2d::new(Array4::ones((2, 1, 3, 3)), None)
        .unwrap()
        .with_groups(2)
        .unwrap()
        .with_stride((2, 2))
        .unwrap()
        .with_padding_asym((0, 0), (1, 1))
        .unwrap();
    let x = ArrayD::ones(IxDyn(&[1, 2, 4, 4]));
    let y = layer.forward(&x).unwrap();
    assert_eq!(y.shape(), [1, 2, 2, 2]);
    // Taps in bounds: 9, 6 (last column padded), 6 (last row), 4.
    assert_eq!(
        y.iter().copied().collect::<Vec<_>>(),
        [9.0, 6.0, 6.0, 4.0, 9.0, 6.0, 6.0, 4.0]
    );
    let shares = layer.shares(&x, &y, &FlatRule::default().into()).unwrap();
    let mut r = ArrayD::from_elem(IxDyn(&[1, 2, 2, 2]), Real(0.0f32));
    r[[0, 1, 1, 1]] = Real(1.0); // the bottom-right output of channel 1: 4 in-bounds taps
    let got = propagate(&shares, &Identity, &r, &[1, 2, 4, 4]).unwrap();
    for iy in 0..4 {
        for ix in 0..4 {
            let want = if (2..4).contains(&iy) && (2..4).contains(&ix) {
                0.25
            } else {
                0.0
            };
            assert!((got[[0, 1, iy, ix]].0 - want).abs() < 1e-6, "({iy}, {ix})");
            assert_eq!(got[[0, 0, iy, ix]].0, 0.0);
        }
    }
}
