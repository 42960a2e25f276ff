//! Properties that hold for every network, checked on random small networks with proptest.
//!
//! The networks are Dense/ReLU stacks and Conv2d/ReLU/pooling stacks with random shapes, strides,
//! padding, dilation and groups, generated from a random seed (a failing case prints its seed).
//! What this proves:
//!
//! - **Conservation**: in the Real semiring, LRP-0 (or ε ≈ 0) without biases keeps the total
//!   relevance through every layer, pooling included.
//! - **Classical LRP**: Real relevance started from the target's output activation equals an
//!   independent f64 implementation of LRP-ε written here (z = forward, s = R / stab(z),
//!   c = Wᵀ s, R_in = a ⊙ c).
//! - **Boolean = support of Counting** (and of FloatCounting), exactly, at every layer, for the
//!   signed and the absolute threshold and every composite.
//! - **A convolution equals its unrolled dense layer**: same forward pass and the same relevance
//!   (Real and Viterbi close, Boolean and Counting exact) for every rule defined per connection.
//!   The flat rule and thresholds θ ≤ 0 are the exceptions; why, and what happens instead, is
//!   pinned down by their own tests at the end of that section.
//! - **Viterbi (and Fuzzy) relevance lies in [0, 1]** at every layer.
//! - **Batch independence**: a sample explained alone gets the same relevance as inside a batch
//!   of different samples, bit for bit, in every semiring.

use crate::support::conv::{Taps, per_connection_rules, unroll_conv};
use crate::support::rng::Rng;
use klrp::composite::Composite;
use klrp::layers::{AvgPool2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU, Shares};
use klrp::rules::{
    EpsilonRule, FlatRule, GammaRule, MaxAbsRule, ProportionalRule, Rule, WSquareRule, ZPlusRule,
    ZeroRule,
};
use klrp::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, LogCounting, Product, Real, Semiring, Tropical,
    Viterbi,
};
use klrp::{AbsThreshold, Clamp01, Conversion, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};
use proptest::prelude::*;

// =============================================================================================
// Random networks
// =============================================================================================

/// How parameters and inputs are drawn.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// Uniform in [−1, 1].
    Float,
    /// Multiples of 1/4 in [−1, 1]: every forward pass is exact, whatever the summation order.
    Quarters,
}

impl Values {
    fn draw(self, rng: &mut Rng) -> f32 {
        match self {
            Values::Float => rng.uniform(-1.0, 1.0),
            Values::Quarters => rng.quarter(),
        }
    }
}

#[derive(Clone, Debug)]
struct ConvSpec {
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
}

impl ConvSpec {
    fn layer(&self) -> Conv2d {
        Conv2d::new(self.weight.clone(), self.bias.clone())
            .unwrap()
            .with_stride(self.stride)
            .unwrap()
            .with_padding(self.padding)
            .unwrap()
            .with_dilation(self.dilation)
            .unwrap()
            .with_groups(self.groups)
            .unwrap()
    }
}

#[derive(Clone, Debug)]
enum Spec {
    Dense(Array2<f32>, Option<Array1<f32>>),
    Conv(ConvSpec),
    ReLU,
    MaxPool((usize, usize), (usize, usize), (usize, usize)),
    AvgPool((usize, usize), (usize, usize), (usize, usize)),
    Flatten,
}

#[derive(Clone, Debug)]
struct NetSpec {
    input: Vec<usize>,
    layers: Vec<Spec>,
}

impl NetSpec {
    fn build(&self) -> Network {
        let layers: Vec<Box<dyn Layer>> = self
            .layers
            .iter()
            .map(|s| -> Box<dyn Layer> {
                match s {
                    Spec::Dense(w, b) => Box::new(Dense::new(w.clone(), b.clone()).unwrap()),
                    Spec::Conv(c) => Box::new(c.layer()),
                    Spec::ReLU => Box::new(ReLU),
                    Spec::MaxPool(k, s, p) => Box::new(MaxPool2d::new(*k, *s, *p).unwrap()),
                    Spec::AvgPool(k, s, p) => Box::new(AvgPool2d::new(*k, *s, *p).unwrap()),
                    Spec::Flatten => Box::new(Flatten),
                }
            })
            .collect();
        Network::new(&self.input, layers).unwrap()
    }

    /// Indices of the average-pooling layers.
    fn avg_pools(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| matches!(self.layers[i], Spec::AvgPool(..)))
            .collect()
    }

    fn classes(&self) -> usize {
        match self.layers.last() {
            Some(Spec::Dense(w, _)) => w.nrows(),
            _ => unreachable!("every random network ends in a dense layer"),
        }
    }
}

fn random_dense(rng: &mut Rng, inp: usize, out: usize, bias: bool, v: Values) -> Spec {
    let w = Array2::from_shape_fn((out, inp), |_| v.draw(rng));
    let b = bias.then(|| Array1::from_shape_fn(out, |_| v.draw(rng)));
    Spec::Dense(w, b)
}

/// Dense → ReLU → … → Dense with 1–3 dense layers.
fn random_mlp(rng: &mut Rng, bias: bool, v: Values) -> NetSpec {
    let depth = rng.int(1, 3);
    let input = rng.int(1, 5);
    let mut layers = Vec::new();
    let mut width = input;
    for l in 0..depth {
        let out = if l + 1 == depth {
            rng.int(1, 4)
        } else {
            rng.int(1, 6)
        };
        layers.push(random_dense(rng, width, out, bias, v));
        if l + 1 < depth {
            layers.push(Spec::ReLU);
        }
        width = out;
    }
    NetSpec {
        input: vec![input],
        layers,
    }
}

/// A random convolution for input `[c, h, w]` and its output shape.
///
/// With `same_padding`, the padding is at most half the dilated kernel span and the span fits the
/// input, so that every output has at least one in-bounds tap; otherwise padding is anything up
/// to 2 (outputs made of padding only are allowed).
fn random_conv(
    rng: &mut Rng,
    (c, h, w): (usize, usize, usize),
    bias: bool,
    same_padding: bool,
    v: Values,
) -> (ConvSpec, (usize, usize, usize)) {
    let divisors: Vec<usize> = (1..=c).filter(|g| c % g == 0).collect();
    let groups = divisors[rng.int(0, divisors.len() - 1)];
    let c_out = groups * rng.int(1, 2);
    let axis = |rng: &mut Rng, n: usize| {
        let k = rng.int(1, 3.min(n));
        let mut d = rng.int(1, 2);
        if d * (k - 1) + 1 > n {
            d = 1;
        }
        let span = d * (k - 1) + 1;
        let p = if same_padding {
            rng.int(0, (span - 1) / 2)
        } else {
            rng.int(0, 2)
        };
        let s = rng.int(1, 2);
        let out = (n + 2 * p - span) / s + 1;
        (k, d, p, s, out)
    };
    let (kh, dh, ph, sh, oh) = axis(rng, h);
    let (kw, dw, pw, sw, ow) = axis(rng, w);
    let weight = Array4::from_shape_fn((c_out, c / groups, kh, kw), |_| v.draw(rng));
    let bias = bias.then(|| Array1::from_shape_fn(c_out, |_| v.draw(rng)));
    (
        ConvSpec {
            weight,
            bias,
            stride: (sh, sw),
            padding: (ph, pw),
            dilation: (dh, dw),
            groups,
        },
        (c_out, oh, ow),
    )
}

/// A random pooling layer for input `[c, h, w]` (or none) and its output shape.
fn random_pool(
    rng: &mut Rng,
    (c, h, w): (usize, usize, usize),
    allow_avg: bool,
) -> Option<(Spec, (usize, usize, usize))> {
    let kind = rng.int(0, if allow_avg { 2 } else { 1 });
    if kind == 0 {
        return None;
    }
    let axis = |rng: &mut Rng, n: usize| {
        let k = rng.int(1, 2.min(n));
        let s = rng.int(1, 2);
        let p = rng.int(0, k / 2);
        (k, s, p, (n + 2 * p - k) / s + 1)
    };
    let (kh, sh, ph, oh) = axis(rng, h);
    let (kw, sw, pw, ow) = axis(rng, w);
    let spec = if kind == 1 {
        Spec::MaxPool((kh, kw), (sh, sw), (ph, pw))
    } else {
        Spec::AvgPool((kh, kw), (sh, sw), (ph, pw))
    };
    Some((spec, (c, oh, ow)))
}

/// Conv → ReLU → [pool] → [Conv → ReLU → [max pool]] → Flatten → Dense.
fn random_cnn(rng: &mut Rng, bias: bool, same_padding: bool, v: Values) -> NetSpec {
    let input = (rng.int(1, 3), rng.int(3, 7), rng.int(3, 7));
    let mut layers = Vec::new();
    let (conv, mut shape) = random_conv(rng, input, bias, same_padding, v);
    layers.push(Spec::Conv(conv));
    layers.push(Spec::ReLU);
    if let Some((pool, s)) = random_pool(rng, shape, true) {
        layers.push(pool);
        shape = s;
    }
    if rng.coin() {
        let (conv, s) = random_conv(rng, shape, bias, same_padding, v);
        layers.push(Spec::Conv(conv));
        layers.push(Spec::ReLU);
        shape = s;
        if let Some((pool, s)) = random_pool(rng, shape, false) {
            layers.push(pool);
            shape = s;
        }
    }
    layers.push(Spec::Flatten);
    let classes = rng.int(1, 3);
    layers.push(random_dense(
        rng,
        shape.0 * shape.1 * shape.2,
        classes,
        bias,
        v,
    ));
    NetSpec {
        input: vec![input.0, input.1, input.2],
        layers,
    }
}

fn random_net(rng: &mut Rng, cnn: bool, bias: bool, v: Values) -> NetSpec {
    if cnn {
        random_cnn(rng, bias, false, v)
    } else {
        random_mlp(rng, bias, v)
    }
}

fn random_batch(rng: &mut Rng, n: usize, sample: &[usize], lo: f32, hi: f32) -> ArrayD<f32> {
    let mut shape = vec![n];
    shape.extend_from_slice(sample);
    ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.uniform(lo, hi))
}

fn random_targets(rng: &mut Rng, n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|_| rng.int(0, classes - 1)).collect()
}

/// The composites the semiring-independent properties are checked under.
fn composite(i: usize) -> Composite {
    match i % 10 {
        0 => Composite::k_lrp(),
        1 => Composite::epsilon_plus_flat(),
        2 => Composite::epsilon_alpha2_beta1(),
        3 => Composite::epsilon_gamma_box(-1.0, 1.0).unwrap(),
        4 => Composite::uniform(GammaRule::new(0.25, 1e-6).unwrap()),
        5 => Composite::uniform(ZPlusRule::default()),
        6 => Composite::uniform(WSquareRule::default()),
        7 => Composite::viterbi(),
        8 => Composite::k_lrp().with_max_pool(ProportionalRule::default()),
        _ => Composite::uniform(EpsilonRule::new(0.1).unwrap()),
    }
}

/// `cases` per property, unless `PROPTEST_CASES` is set (to stress the properties locally).
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

// =============================================================================================
// Conservation
// =============================================================================================

proptest! {
    #![proptest_config(config(96))]

    /// Σ_j R_j = Σ_k R_k at every layer for LRP-0 without biases; with ε = 1e-7, at every
    /// layer Σ_j R_j = Σ_k R_k · z_k / stab_ε(z_k) (what ε absorbs, computed from the trace).
    ///
    /// Why it holds exactly here: without biases Σ_j d_jk = Σ_j a_j w_jk / z_k = 1 for every
    /// output with z_k ≠ 0. An output with z_k = 0 would lose its relevance, but it only receives
    /// any if it is the target or its (post-ReLU) activation is nonzero — LRP-0, proportional
    /// pooling and winner-take-all of a nonzero maximum all give zero activations zero
    /// relevance — so only the target must have z ≠ 0, which random weights give almost surely.
    /// Average pooling uses the proportional rule with ε = 0; max pooling is winner-take-all.
    /// The tolerance is 1e-5 of the largest Σ|R| over layers: shares of mixed sign cancel, and
    /// the mass they cancel, not the net relevance, sets the scale of f32 rounding.
    #[test]
    fn lrp0_without_bias_conserves_relevance(
        seed in any::<u64>(),
        cnn in any::<bool>(),
        tiny_epsilon in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let spec = if cnn {
            random_cnn(&mut rng, false, true, Values::Float)
        } else {
            random_mlp(&mut rng, false, Values::Float)
        };
        let net = spec.build();
        let n = 3;
        let x = random_batch(&mut rng, n, net.input_shape(), 0.1, 1.0);
        let targets = random_targets(&mut rng, n, spec.classes());
        let trace = net.trace(&x).unwrap();

        let eps = if tiny_epsilon { 1e-7 } else { 0.0 };
        let mut c = if tiny_epsilon {
            Composite::uniform(EpsilonRule::new(eps).unwrap())
        } else {
            Composite::uniform(ZeroRule)
        };
        for i in spec.avg_pools() {
            c = c.with_layer(i, ProportionalRule::new(0.0).unwrap());
        }
        let init = klrp::one_hot::<Real<f32>>(trace.output().shape(), &targets).unwrap();
        let r = net.propagate(&trace, init, &c, &PerLayer::new(Identity), true).unwrap();
        let eps = f64::from(eps);
        for (s, &target) in targets.iter().enumerate() {
            let sample = |l: usize| -> Vec<f64> {
                r.layer(l)
                    .unwrap()
                    .index_axis(ndarray::Axis(0), s)
                    .iter()
                    .map(|v| f64::from(v.0))
                    .collect()
            };
            let scale = (0..=spec.layers.len())
                .map(|l| sample(l).iter().map(|v| v.abs()).sum::<f64>())
                .fold(0.0, f64::max);
            for (l, layer) in spec.layers.iter().enumerate() {
                // What layer l keeps of its output relevance: all of it, except that ε takes
                // the fraction ε / (|z_k| + ε) of every output k of a linear layer.
                let r_out = sample(l + 1);
                let kept: f64 = if matches!(layer, Spec::Dense(..) | Spec::Conv(_)) {
                    let z = trace.activation(l + 1).unwrap().index_axis(ndarray::Axis(0), s);
                    r_out
                        .iter()
                        .zip(z.iter())
                        .map(|(r, &z)| {
                            let z = f64::from(z);
                            let stab = if z >= 0.0 { z + eps } else { z - eps };
                            // LRP-0 defines d = 0 where z = 0.
                            if stab == 0.0 { 0.0 } else { r * z / stab }
                        })
                        .sum()
                } else {
                    r_out.iter().sum()
                };
                let sum: f64 = sample(l).iter().sum();
                prop_assert!(
                    (sum - kept).abs() <= 1e-5 * scale,
                    "sample {s}: relevance at the input of layer {l} sums to {sum}, expected \
                     {kept} (scale {scale}); spec {spec:?}"
                );
            }
            if !tiny_epsilon && trace.output()[[s, target]] != 0.0 {
                let total: f64 = sample(0).iter().sum();
                prop_assert!((total - 1.0).abs() <= 1e-5 * scale, "Σ R_in = {total}");
                prop_assert!(r.conservation_delta()[s].abs() <= 1e-5 * scale);
            }
        }
    }
}

// =============================================================================================
// Real × output activation = classical LRP
// =============================================================================================

/// Classical LRP-ε for a Dense/ReLU stack, in f64, from scratch: forward `z = W a + b`; backward
/// from `R = z_t` at the target, `s = R / stab_ε(z)`, `c = Wᵀ s`, `R_in = a ⊙ c`; ReLU passes
/// relevance unchanged.
///
/// Also returns what the f32 rounding error of an implementation scales with: every
/// pre-activation (near 0 a ReLU or the stabiliser's sign may flip), the largest condition
/// number `(Σ_j |w_kj a_j| + |b_k|) / |z_k|` of a forward sum, and the largest input value of
/// the same propagation on absolute values (`|a| ⊙ |W|ᵀ (|R| / |stab(z)|)`).
fn classical_lrp_epsilon(
    layers: &[(Array2<f64>, Array1<f64>)],
    x: &[f64],
    target: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, f64, f64) {
    let mut acts = vec![x.to_vec()];
    let mut zs = Vec::new();
    let mut cond = 1.0f64;
    for (l, (w, b)) in layers.iter().enumerate() {
        let a = acts.last().unwrap();
        let z: Vec<f64> = (0..w.nrows())
            .map(|k| (0..w.ncols()).map(|j| w[[k, j]] * a[j]).sum::<f64>() + b[k])
            .collect();
        for (k, z) in z.iter().enumerate() {
            let terms: f64 = (0..w.ncols())
                .map(|j| (w[[k, j]] * a[j]).abs())
                .sum::<f64>();
            cond = cond.max((terms + b[k].abs()) / z.abs());
        }
        zs.push(z.clone());
        if l + 1 < layers.len() {
            acts.push(z.iter().map(|v| v.max(0.0)).collect());
        }
    }
    let out = zs.last().unwrap();
    let mut r = vec![0.0; out.len()];
    r[target] = out[target];
    let mut mass = r.clone();
    for l in (0..layers.len()).rev() {
        let (w, _) = &layers[l];
        let stab = |z: f64| if z >= 0.0 { z + eps } else { z - eps };
        let s: Vec<f64> = r.iter().zip(&zs[l]).map(|(r, &z)| r / stab(z)).collect();
        let a = &acts[l];
        r = (0..w.ncols())
            .map(|j| a[j] * (0..w.nrows()).map(|k| w[[k, j]] * s[k]).sum::<f64>())
            .collect();
        let s: Vec<f64> = mass
            .iter()
            .zip(&zs[l])
            .map(|(m, &z)| (m / stab(z)).abs())
            .collect();
        mass = (0..w.ncols())
            .map(|j| a[j].abs() * (0..w.nrows()).map(|k| w[[k, j]].abs() * s[k]).sum::<f64>())
            .collect();
    }
    let mass = mass.into_iter().fold(1e-3, f64::max);
    (r, zs.concat(), cond, mass)
}

proptest! {
    #![proptest_config(config(96))]

    /// klrp in Real started from `trace.output_init(targets)` with LRP-ε is classical LRP-ε.
    #[test]
    fn real_from_output_activation_is_classical_lrp_epsilon(
        seed in any::<u64>(),
        eps in 0.01f32..0.5,
    ) {
        let mut rng = Rng::new(seed);
        let spec = random_mlp(&mut rng, true, Values::Float);
        let net = spec.build();
        let n = 3;
        let x = random_batch(&mut rng, n, net.input_shape(), -1.0, 1.0);
        let targets = random_targets(&mut rng, n, spec.classes());
        let params: Vec<(Array2<f64>, Array1<f64>)> = spec
            .layers
            .iter()
            .filter_map(|s| match s {
                Spec::Dense(w, b) => Some((
                    w.mapv(f64::from),
                    b.as_ref().unwrap().mapv(f64::from),
                )),
                _ => None,
            })
            .collect();

        let trace = net.trace(&x).unwrap();
        let init = trace.output_init(&targets).unwrap();
        let c = Composite::uniform(EpsilonRule::new(eps).unwrap());
        let got = net.propagate(&trace, init, &c, &PerLayer::new(Identity), false).unwrap();
        // The same from one-hot, scaled by z_t afterwards: relevance is linear in the init.
        let one_hot = net.explain::<Real<f32>, _>(&x, &targets, &c, &PerLayer::new(Identity))
            .unwrap();
        for s in 0..n {
            let xs: Vec<f64> = (0..x.shape()[1]).map(|j| f64::from(x[[s, j]])).collect();
            let (want, zs, cond, mass) =
                classical_lrp_epsilon(&params, &xs, targets[s], f64::from(eps));
            // A pre-activation within rounding of 0 could flip a ReLU or the sign of the
            // stabiliser between f32 and f64.
            prop_assume!(zs.iter().all(|z| z.abs() > 1e-3));
            // f32 rounding: relative to the mass the shares move (≥ |want|), amplified by the
            // worst cancellation in a forward sum.
            let tol = 1e-5 * mass * cond;
            let zt = f64::from(trace.output()[[s, targets[s]]]);
            for (j, &w) in want.iter().enumerate() {
                let g = f64::from(got.input()[[s, j]].0);
                prop_assert!(
                    (g - w).abs() <= tol,
                    "sample {s} input {j}: klrp {g} vs classical {w} (tolerance {tol}); \
                     spec {spec:?}"
                );
                let h = f64::from(one_hot.input()[[s, j]].0) * zt;
                prop_assert!((h - w).abs() <= tol, "one-hot × z_t: {h} vs {w}");
            }
        }
    }
}

// =============================================================================================
// Boolean = support of Counting
// =============================================================================================

fn assert_support<K: Semiring>(
    b: &klrp::Relevance<Boolean>,
    c: &klrp::Relevance<K>,
    layers: usize,
    what: &str,
) -> Result<(), TestCaseError> {
    for l in 0..=layers {
        let (bl, cl) = (b.layer(l).unwrap(), c.layer(l).unwrap());
        prop_assert_eq!(bl.shape(), cl.shape());
        for (i, (x, y)) in bl.iter().zip(cl.iter()).enumerate() {
            prop_assert_eq!(
                x.0,
                !y.is_zero(),
                "{}: layer {} element {}: boolean {} but count {:?}",
                what,
                l,
                i,
                x.0,
                y
            );
        }
    }
    Ok(())
}

fn support_case<T>(
    spec: &NetSpec,
    x: &ArrayD<f32>,
    targets: &[usize],
    c: &Composite,
    theta: T,
) -> Result<(), TestCaseError>
where
    T: Conversion<Boolean> + Conversion<Counting> + Conversion<FloatCounting> + Copy,
{
    let net = spec.build();
    let trace = net.trace(x).unwrap();
    let theta = PerLayer::new(theta);
    let shape = trace.output().shape();
    let b: klrp::Relevance<Boolean> = net
        .propagate(
            &trace,
            klrp::one_hot(shape, targets).unwrap(),
            c,
            &theta,
            true,
        )
        .unwrap();
    let n: klrp::Relevance<Counting> = net
        .propagate(
            &trace,
            klrp::one_hot(shape, targets).unwrap(),
            c,
            &theta,
            true,
        )
        .unwrap();
    let f: klrp::Relevance<FloatCounting> = net
        .propagate(
            &trace,
            klrp::one_hot(shape, targets).unwrap(),
            c,
            &theta,
            true,
        )
        .unwrap();
    assert_support(&b, &n, spec.layers.len(), "counting")?;
    assert_support(&b, &f, spec.layers.len(), "float counting")?;
    // And the counts agree with each other while they are exact in f64.
    for (a, g) in n.input().iter().zip(f.input()) {
        if g.0 < 2f64.powi(53) {
            prop_assert_eq!(a.0 as f64, g.0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn boolean_is_the_support_of_counting(
        seed in any::<u64>(),
        cnn in any::<bool>(),
        which in 0usize..10,
        signed_theta in -0.5f32..1.0,
        abs_theta in 0.0f32..1.0,
    ) {
        let mut rng = Rng::new(seed);
        let spec = random_net(&mut rng, cnn, true, Values::Float);
        let net = spec.build();
        let n = 2;
        let x = random_batch(&mut rng, n, net.input_shape(), -1.0, 1.0);
        let targets = random_targets(&mut rng, n, spec.classes());
        let c = composite(which);
        support_case(&spec, &x, &targets, &c, Threshold::new(signed_theta).unwrap())?;
        support_case(&spec, &x, &targets, &c, AbsThreshold::new(abs_theta).unwrap())?;
    }
}

// =============================================================================================
// A convolution equals its unrolled dense layer
// =============================================================================================

/// The dense matrix `[C_out·out_h·out_w, C_in·H·W]` and bias of a convolution on `[c, h, w]`
/// ([`unroll_conv`]: tap by tap from PyTorch's definition).
fn unroll(c: &ConvSpec, input: (usize, usize, usize)) -> (Array2<f32>, Option<Array1<f32>>) {
    let [_, _, kh, kw] = *c.weight.shape() else {
        unreachable!()
    };
    let size =
        |n: usize, k: usize, s: usize, p: usize, d: usize| (n + 2 * p - d * (k - 1) - 1) / s + 1;
    let oh = size(input.1, kh, c.stride.0, c.padding.0, c.dilation.0);
    let ow = size(input.2, kw, c.stride.1, c.padding.1, c.dilation.1);
    let taps = Taps {
        groups: c.groups,
        stride: c.stride,
        dilation: c.dilation,
        begin: c.padding,
    };
    unroll_conv(&c.weight, c.bias.as_ref(), &taps, input, (oh, ow))
}

/// Relevance of a one-layer network from `init`, flattened per sample.
fn relevance_of<K: Semiring, T: Conversion<K>>(
    net: &Network,
    x: &ArrayD<f32>,
    init: &[K],
    rule: &Rule,
    theta: T,
) -> Vec<K> {
    let trace = net.trace(x).unwrap();
    let init = ArrayD::from_shape_vec(IxDyn(trace.output().shape()), init.to_vec()).unwrap();
    net.propagate(
        &trace,
        init,
        &Composite::uniform(rule.clone()),
        &PerLayer::new(theta),
        false,
    )
    .unwrap()
    .input()
    .iter()
    .copied()
    .collect()
}

fn conv_and_dense(
    rng: &mut Rng,
    v: Values,
) -> (ConvSpec, Network, Network, ArrayD<f32>, ArrayD<f32>) {
    let input = (rng.int(1, 3), rng.int(2, 6), rng.int(2, 6));
    let bias = rng.coin();
    let (conv, _) = random_conv(rng, input, bias, false, v);
    let conv_net = Network::new([input.0, input.1, input.2], vec![Box::new(conv.layer())]).unwrap();
    let (m, b) = unroll(&conv, input);
    let len = input.0 * input.1 * input.2;
    let dense_net = Network::new([len], vec![Box::new(Dense::new(m, b).unwrap())]).unwrap();
    let n = 2;
    let x = ArrayD::from_shape_fn(IxDyn(&[n, input.0, input.1, input.2]), |_| v.draw(rng));
    let x_flat = x.clone().into_shape_with_order(IxDyn(&[n, len])).unwrap();
    (conv, conv_net, dense_net, x, x_flat)
}

proptest! {
    #![proptest_config(config(64))]

    /// With parameters and inputs in multiples of 1/4, both forward passes are exact, so the
    /// shares agree bit for bit and Boolean/Counting relevances must be identical; Real and
    /// Viterbi are compared within 1e-6 (they too come out identical in practice).
    #[test]
    fn convolution_equals_its_unrolled_dense_layer(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (conv, conv_net, dense_net, x, x_flat) = conv_and_dense(&mut rng, Values::Quarters);
        let y_conv = conv_net.forward(&x).unwrap();
        let y_dense = dense_net.forward(&x_flat).unwrap();
        prop_assert_eq!(y_conv.len(), y_dense.len());
        prop_assert!(y_conv.iter().eq(y_dense.iter()), "forward differs: {:?}", conv);

        let outs = y_conv.len();
        let real_init: Vec<Real<f32>> = (0..outs).map(|_| Real(rng.quarter())).collect();
        let bool_init: Vec<Boolean> = (0..outs).map(|_| Boolean(rng.coin())).collect();
        let count_init: Vec<Counting> = (0..outs).map(|_| Counting(rng.int(0, 3) as u64)).collect();
        let vit_init: Vec<Viterbi> = (0..outs).map(|_| Viterbi(rng.unit().into())).collect();
        for rule in per_connection_rules() {
            let name = rule.name();
            let a = relevance_of(&conv_net, &x, &real_init, &rule, Identity);
            let b = relevance_of(&dense_net, &x_flat, &real_init, &rule, Identity);
            // A denominator that vanishes exactly is stabilised to ε, and its terms (of size 1/ε)
            // cancel; the conv kernel sums the terms per term (the linear form, as Zennit does),
            // the dense kernel per connection, so f32 rounding of 1/ε-sized terms differs.
            let trace = conv_net.trace(&x).unwrap();
            let shares = conv_net.layers()[0]
                .shares(trace.activation(0).unwrap(), trace.output(), &rule)
                .unwrap();
            let largest_factor = match &shares {
                Shares::Linear { terms, .. } => terms
                    .iter()
                    .flat_map(|t| t.scale.iter())
                    .fold(1.0f32, |m, v| m.max(v.abs())),
                _ => 1.0,
            };
            let scale = b.iter().fold(largest_factor, |m, v| m.max(v.0.abs()));
            for (p, q) in a.iter().zip(&b) {
                prop_assert!(
                    (p.0 - q.0).abs() <= 1e-6 * scale,
                    "{name}: real {p:?} vs {q:?}; {conv:?}"
                );
            }
            for theta in [0.25f32, 0.5] {
                let t = Threshold::new(theta).unwrap();
                prop_assert_eq!(
                    relevance_of(&conv_net, &x, &bool_init, &rule, t),
                    relevance_of(&dense_net, &x_flat, &bool_init, &rule, t),
                    "{} boolean θ = {}", name, theta
                );
                prop_assert_eq!(
                    relevance_of(&conv_net, &x, &count_init, &rule, t),
                    relevance_of(&dense_net, &x_flat, &count_init, &rule, t),
                    "{} counting θ = {}", name, theta
                );
            }
            for theta in [0.0f32, 0.25] {
                let t = AbsThreshold::new(theta).unwrap();
                prop_assert_eq!(
                    relevance_of(&conv_net, &x, &bool_init, &rule, t),
                    relevance_of(&dense_net, &x_flat, &bool_init, &rule, t),
                    "{} boolean |d| > {}", name, theta
                );
                prop_assert_eq!(
                    relevance_of(&conv_net, &x, &count_init, &rule, t),
                    relevance_of(&dense_net, &x_flat, &count_init, &rule, t),
                    "{} counting |d| > {}", name, theta
                );
            }
            let a = relevance_of(&conv_net, &x, &vit_init, &rule, Clamp01);
            let b = relevance_of(&dense_net, &x_flat, &vit_init, &rule, Clamp01);
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p.0 - q.0).abs() <= 1e-6, "{name}: viterbi {p:?} vs {q:?}");
            }
        }
    }

    /// The same with arbitrary floats, in Real with the well-conditioned rules (forward passes
    /// now round differently, so only closeness is expected).
    #[test]
    fn convolution_equals_its_unrolled_dense_layer_for_float_weights(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (_, conv_net, dense_net, x, x_flat) = conv_and_dense(&mut rng, Values::Float);
        let y_conv = conv_net.forward(&x).unwrap();
        let y_dense = dense_net.forward(&x_flat).unwrap();
        for (p, q) in y_conv.iter().zip(&y_dense) {
            prop_assert!((p - q).abs() <= 1e-5);
        }
        let init: Vec<Real<f32>> =
            (0..y_conv.len()).map(|_| Real(rng.uniform(-1.0, 1.0))).collect();
        let rules: [Rule; 3] = [
            EpsilonRule::new(0.25).unwrap().into(),
            WSquareRule::default().into(),
            MaxAbsRule::default().into(),
        ];
        for rule in rules {
            let a = relevance_of(&conv_net, &x, &init, &rule, Identity);
            let b = relevance_of(&dense_net, &x_flat, &init, &rule, Identity);
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.0.abs()));
            for (p, q) in a.iter().zip(&b) {
                prop_assert!((p.0 - q.0).abs() <= 1e-5 * scale, "{}: {p:?} vs {q:?}", rule.name());
            }
        }
    }

    /// Flat (`d_jk = 1/n_k`, weight map ≡ 1) is *not* defined per connection: on a dense layer
    /// every input is connected, zero weight or not. The unrolled matrix therefore agrees with the
    /// convolution only when the convolution is itself fully connected — every output sees every
    /// input as a real tap: one group, no padding, and a kernel covering the whole input (so a
    /// 1×1 output map). Then the two agree, which is checked here.
    #[test]
    fn flat_agrees_with_the_unrolled_dense_layer_for_a_fully_connected_convolution(
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let (cin, h, w) = (rng.int(1, 3), rng.int(1, 4), rng.int(1, 4));
        let conv = ConvSpec {
            weight: Array4::from_shape_fn((rng.int(1, 3), cin, h, w), |_| rng.quarter()),
            bias: None,
            stride: (rng.int(1, 2), rng.int(1, 2)),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        };
        let conv_net = Network::new([cin, h, w], vec![Box::new(conv.layer())]).unwrap();
        let (m, b) = unroll(&conv, (cin, h, w));
        let dense = Dense::new(m, b).unwrap();
        let dense_net = Network::new([cin * h * w], vec![Box::new(dense)]).unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[1, cin, h, w]), |_| rng.quarter());
        let x_flat = x.clone().into_shape_with_order(IxDyn(&[1, cin * h * w])).unwrap();
        let outs = conv.weight.shape()[0];
        let init: Vec<Real<f32>> = (0..outs).map(|_| Real(rng.quarter())).collect();
        let flat: Rule = FlatRule::default().into();
        prop_assert_eq!(
            relevance_of(&conv_net, &x, &init, &flat, Identity),
            relevance_of(&dense_net, &x_flat, &init, &flat, Identity)
        );
        let counts: Vec<Counting> = (0..outs).map(|_| Counting(rng.int(0, 3) as u64)).collect();
        let t = Threshold::new(0.0).unwrap();
        prop_assert_eq!(
            relevance_of(&conv_net, &x, &counts, &flat, t),
            relevance_of(&dense_net, &x_flat, &counts, &flat, t)
        );
    }
}

/// A padded 1×3 convolution on a 1×1×3 input, and its unrolled 3×3 matrix:
/// output 0 has taps {x0, x1}, output 1 {x0, x1, x2}, output 2 {x1, x2}.
fn padded_conv_pair() -> (Network, Network, ArrayD<f32>, ArrayD<f32>) {
    let conv = ConvSpec {
        weight: Array4::from_shape_vec((1, 1, 1, 3), vec![1.0, 0.5, 0.25]).unwrap(),
        bias: None,
        stride: (1, 1),
        padding: (0, 1),
        dilation: (1, 1),
        groups: 1,
    };
    let (m, b) = unroll(&conv, (1, 1, 3));
    assert_eq!(m[[0, 2]], 0.0); // x2 is not a tap of output 0
    let conv_net = Network::new([1, 1, 3], vec![Box::new(conv.layer())]).unwrap();
    let dense_net = Network::new([3], vec![Box::new(Dense::new(m, b).unwrap())]).unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 3]), vec![1.0, 2.0, 1.0]).unwrap();
    let x_flat = ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![1.0, 2.0, 1.0]).unwrap();
    (conv_net, dense_net, x, x_flat)
}

/// What flat does with padding: the convolution spreads output 0's relevance over its two real
/// taps (1/2 each; padding counts for nothing), the unrolled dense layer over all three inputs
/// (1/3 each), although x2 does not influence output 0 at all.
#[test]
fn flat_on_a_padded_convolution_differs_from_its_unrolled_dense_layer() {
    let (conv_net, dense_net, x, x_flat) = padded_conv_pair();
    let init = [Real(1.0f32), Real(0.0), Real(0.0)];
    let flat: Rule = FlatRule::default().into();
    let conv = relevance_of(&conv_net, &x, &init, &flat, Identity);
    let dense = relevance_of(&dense_net, &x_flat, &init, &flat, Identity);
    let close = |a: &[Real<f32>], b: [f32; 3]| a.iter().zip(b).all(|(p, q)| (p.0 - q).abs() < 1e-6);
    assert!(close(&conv, [0.5, 0.5, 0.0]), "{conv:?}");
    assert!(close(&dense, [1.0 / 3.0; 3]), "{dense:?}");
}

/// A threshold θ ≤ 0 has Θ(0) = 1, so every connection with a zero share counts as a path —
/// including the zero entries that the unrolled matrix has where the convolution has no
/// connection. Counting from output 0 only: the convolution finds paths to its taps x0, x1; the
/// dense layer also to x2. (With θ > 0, or |d| > θ for any θ ≥ 0, the two agree: see
/// `convolution_equals_its_unrolled_dense_layer`.)
#[test]
fn nonpositive_threshold_counts_the_missing_connections_of_the_unrolled_dense_layer() {
    let (conv_net, dense_net, x, x_flat) = padded_conv_pair();
    let init = [Counting(1), Counting(0), Counting(0)];
    let rule: Rule = ZeroRule.into();
    let t = Threshold::new(0.0).unwrap();
    // Output 0 = 0.5·x0 + 0.25·x1 = 1 (taps w[1], w[2] on x0, x1): shares [0.5, 0.5] ≥ 0.
    assert_eq!(
        relevance_of(&conv_net, &x, &init, &rule, t),
        [Counting(1), Counting(1), Counting(0)]
    );
    assert_eq!(
        relevance_of(&dense_net, &x_flat, &init, &rule, t),
        [Counting(1), Counting(1), Counting(1)]
    );
    let t = Threshold::new(0.1).unwrap();
    assert_eq!(
        relevance_of(&conv_net, &x, &init, &rule, t),
        relevance_of(&dense_net, &x_flat, &init, &rule, t)
    );
}

// =============================================================================================
// Viterbi relevance lies in [0, 1]
// =============================================================================================

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn viterbi_and_fuzzy_relevance_lie_in_the_unit_interval(
        seed in any::<u64>(),
        cnn in any::<bool>(),
        which in 0usize..10,
    ) {
        let mut rng = Rng::new(seed);
        let spec = random_net(&mut rng, cnn, true, Values::Float);
        let net = spec.build();
        let n = 2;
        let x = random_batch(&mut rng, n, net.input_shape(), -1.0, 1.0);
        let targets = random_targets(&mut rng, n, spec.classes());
        let trace = net.trace(&x).unwrap();
        for c in [Composite::viterbi(), composite(which)] {
            let v: klrp::Relevance<Viterbi> = net
                .propagate(
                    &trace,
                    klrp::one_hot(trace.output().shape(), &targets).unwrap(),
                    &c,
                    &PerLayer::new(Clamp01),
                    true,
                )
                .unwrap();
            let f: klrp::Relevance<Fuzzy> = net
                .propagate(
                    &trace,
                    klrp::one_hot(trace.output().shape(), &targets).unwrap(),
                    &c,
                    &PerLayer::new(Clamp01),
                    true,
                )
                .unwrap();
            for l in 0..=spec.layers.len() {
                for r in v.layer(l).unwrap() {
                    prop_assert!((0.0..=1.0).contains(&r.0), "{}: viterbi {} @{l}", c.name(), r.0);
                }
                for r in f.layer(l).unwrap() {
                    prop_assert!((0.0..=1.0).contains(&r.0), "{}: fuzzy {} @{l}", c.name(), r.0);
                }
                // Over the same shares in [0, 1], a path's product (Viterbi) is at most its
                // minimum (Fuzzy), so Viterbi ≤ Fuzzy elementwise — up to rounding: the
                // factored Viterbi kernel for convolutions does not round shares to f32 first
                // (src/kernels/mod.rs, `conv_max_times_relevance`), so allow 2⁻²⁰ relative.
                for (a, b) in v.layer(l).unwrap().iter().zip(f.layer(l).unwrap()) {
                    prop_assert!(
                        a.0 <= b.0 * (1.0 + 1e-6) + 1e-12,
                        "viterbi {} > fuzzy {}",
                        a.0,
                        b.0
                    );
                }
            }
            prop_assert_eq!(v.overflowed(), 0);
        }
    }
}

// =============================================================================================
// A sample alone equals the same sample inside a batch
// =============================================================================================

fn alone_equals_batched<K: Semiring, T: Conversion<K>>(
    net: &Network,
    x: &ArrayD<f32>,
    targets: &[usize],
    c: &Composite,
    theta: T,
) -> Result<(), TestCaseError> {
    let theta = PerLayer::new(theta);
    let batch = net.explain::<K, _>(x, targets, c, &theta).unwrap();
    for (s, sample) in Network::samples(x).enumerate() {
        let alone = net
            .explain::<K, _>(&sample, &targets[s..=s], c, &theta)
            .unwrap();
        let inside = batch.input().index_axis(ndarray::Axis(0), s);
        prop_assert_eq!(alone.input().shape()[1..].to_vec(), inside.shape().to_vec());
        for (i, (a, b)) in alone.input().iter().zip(inside.iter()).enumerate() {
            // PartialEq on the semiring value: bit equality for the integer and boolean ones,
            // exact float equality (no tolerance) for the others.
            prop_assert!(
                a == b,
                "{}/{}: sample {s} element {i}: alone {a:?}, in batch {b:?}",
                K::NAME,
                c.name()
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn a_sample_alone_equals_the_sample_inside_a_batch(
        seed in any::<u64>(),
        cnn in any::<bool>(),
        which in 0usize..10,
        theta in -0.2f32..0.8,
    ) {
        let mut rng = Rng::new(seed);
        let spec = random_net(&mut rng, cnn, true, Values::Float);
        let net = spec.build();
        let n = rng.int(2, 4);
        let x = random_batch(&mut rng, n, net.input_shape(), -1.0, 1.0);
        let targets = random_targets(&mut rng, n, spec.classes());
        let c = composite(which);
        let t = Threshold::new(theta).unwrap();
        let a = AbsThreshold::new(theta.abs()).unwrap();
        alone_equals_batched::<Real<f32>, _>(&net, &x, &targets, &c, Identity)?;
        alone_equals_batched::<Real<f64>, _>(&net, &x, &targets, &c, Identity)?;
        alone_equals_batched::<Boolean, _>(&net, &x, &targets, &c, t)?;
        alone_equals_batched::<Counting, _>(&net, &x, &targets, &c, a)?;
        alone_equals_batched::<FloatCounting, _>(&net, &x, &targets, &c, t)?;
        alone_equals_batched::<LogCounting, _>(&net, &x, &targets, &c, a)?;
        alone_equals_batched::<Viterbi, _>(&net, &x, &targets, &c, Clamp01)?;
        alone_equals_batched::<Fuzzy, _>(&net, &x, &targets, &c, Clamp01)?;
        let both = move |d: f32| {
            let pass = d >= theta;
            Product(Boolean(pass), Counting(u64::from(pass)))
        };
        alone_equals_batched::<Product<Boolean, Counting>, _>(&net, &x, &targets, &c, both)?;
        // Cheapest path with cost −ln(share) for shares in (0, 1], no path otherwise.
        alone_equals_batched::<Tropical, _>(&net, &x, &targets, &c, |d: f32| {
            if d > 0.0 { Tropical(-f64::from(d.min(1.0)).ln()) } else { Tropical::zero() }
        })?;
    }
}
