//! Reliability: absurd sizes are refused with a raisable limit, layers cannot lie about their
//! shapes, and the numerical policy of docs/semantics.md §8 holds at its edges (zero and
//! subnormal denominators, ε = 0, extreme but finite values). The bad-input classes and the
//! error each produces are listed in docs/reliability.md; tests/it/errors.rs holds the rest.

use crate::support::rng::Rng;
use klrp::composite::Composite;
use klrp::layers::{
    AdaptiveAvgPool2d, AvgPool2d, Conv2d, Dense, Flatten, Layer, LayerKind, MaxPool2d, ReLU,
    Shares, Tensor,
};
use klrp::rules::{EpsilonRule, Rule, ZeroRule};
use klrp::semiring::{Boolean, Counting, Real, Semiring, Viterbi};
use klrp::{Clamp01, DEFAULT_MAX_ELEMENTS, Error, Identity, Network, PerLayer, Threshold, one_hot};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn, array};

fn dense(w: Array2<f32>, b: Option<Array1<f32>>) -> Box<dyn Layer> {
    Box::new(Dense::new(w, b).unwrap())
}

fn too_large(e: &Error) -> (u128, u128) {
    match e {
        Error::TooLarge {
            requested, limit, ..
        } => (*requested, *limit),
        Error::Layer { source, .. } => too_large(source),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

fn inner(e: &Error) -> &Error {
    match e {
        Error::Layer { source, .. } => inner(source),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Absurd sizes
// ---------------------------------------------------------------------------------------------

#[test]
fn an_absurd_input_shape_is_refused_and_the_limit_can_be_raised() {
    let layers = || -> Vec<Box<dyn Layer>> { vec![Box::new(Flatten)] };
    let e = Network::new([1 << 20, 1 << 20], layers()).unwrap_err();
    assert_eq!(too_large(&e), (1 << 40, u128::from(DEFAULT_MAX_ELEMENTS)));
    assert!(e.to_string().contains("raise"), "{e}");
    // Raised: the network is built (nothing is allocated until a batch arrives).
    let net = Network::new_with_max_elements([1 << 20, 1 << 20], layers(), 1 << 41).unwrap();
    assert_eq!(net.max_elements(), 1 << 41);
    // Shape products that overflow usize are refused too, not wrapped.
    let e = Network::new([usize::MAX, usize::MAX, 2], layers()).unwrap_err();
    assert!(too_large(&e).0 > u128::from(u64::MAX));
}

#[test]
fn an_absurd_layer_output_is_refused_naming_the_layer() {
    // Padding 2^20 on a 1 × 1 kernel: a (2^21)^2 output plane.
    let conv = Conv2d::new(Array4::ones((1, 1, 1, 1)), None)
        .unwrap()
        .with_padding((1 << 20, 1 << 20))
        .unwrap();
    let e = Network::new([1, 2, 2], vec![Box::new(conv)]).unwrap_err();
    assert!(matches!(e, Error::Layer { index: 0, .. }), "{e:?}");
    assert!(too_large(&e).0 > 1 << 42);
    // Padding so large that `H + 2p` overflows usize: an error, not an arithmetic panic.
    let conv = Conv2d::new(Array4::ones((1, 1, 1, 1)), None)
        .unwrap()
        .with_padding((usize::MAX / 2, 1))
        .unwrap();
    assert!(Network::new([1, 2, 2], vec![Box::new(conv)]).is_err());
    let conv = Conv2d::new(Array4::ones((1, 1, 2, 2)), None)
        .unwrap()
        .with_dilation((usize::MAX / 2, 1))
        .unwrap();
    assert!(Network::new([1, 2, 2], vec![Box::new(conv)]).is_err());
    // Pooling with a kernel whose padded extent overflows.
    let pool = MaxPool2d::new((usize::MAX, 1), (1, 1), (usize::MAX / 2, 0)).unwrap();
    assert!(Network::new([1, 2, 2], vec![Box::new(pool)]).is_err());
    let pool = AvgPool2d::new((usize::MAX, 1), (1, 1), (usize::MAX / 2, 0)).unwrap();
    assert!(Network::new([1, 2, 2], vec![Box::new(pool)]).is_err());
    // Adaptive pooling to an absurd size: refused at construction (its window tables would be
    // allocated before any tensor exists).
    let e = AdaptiveAvgPool2d::new((usize::MAX, 1)).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    let pool = AdaptiveAvgPool2d::new((1 << 16, 1 << 16)).unwrap();
    let e = Network::new([1, 1, 1], vec![Box::new(pool)]).unwrap_err();
    assert_eq!(too_large(&e).0, 1 << 32);
}

#[test]
fn a_batch_too_large_is_refused_before_allocating() {
    // One sample of 2^30 pooled elements is allowed; four of them are not. The input is tiny,
    // so only the limit stands between the call and a 16 GiB activation.
    let pool = AdaptiveAvgPool2d::new((1 << 15, 1 << 15)).unwrap();
    let net = Network::new([1, 1, 1], vec![Box::new(pool)]).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[4, 1, 1, 1]));
    let e = net.trace(&x).unwrap_err();
    assert_eq!(too_large(&e), (1 << 32, 1 << 31));
    assert!(net.forward(&x).is_err());
    let theta = PerLayer::new(Threshold::new(0.1).unwrap());
    assert!(
        net.explain::<Boolean, _>(&x, &[0; 4], &Composite::k_lrp(), &theta)
            .is_err()
    );

    // A lowered limit applies to trace and propagate alike.
    let net = Network::new([8], vec![dense(Array2::ones((4, 8)), None), Box::new(ReLU)]).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[10, 8]));
    let trace = net.trace(&x).unwrap();
    let small = Network::new([8], vec![dense(Array2::ones((4, 8)), None), Box::new(ReLU)])
        .unwrap()
        .with_max_elements(64)
        .unwrap();
    assert_eq!(too_large(&small.trace(&x).unwrap_err()), (80, 64));
    let init = one_hot::<Counting>(trace.output().shape(), &[0; 10]).unwrap();
    let e = small
        .propagate(
            &trace,
            init,
            &Composite::k_lrp(),
            &PerLayer::new(Threshold::new(0.1).unwrap()),
            false,
        )
        .unwrap_err();
    assert_eq!(too_large(&e), (80, 64));
    // A limit below one sample is refused when set.
    assert!(matches!(
        net.with_max_elements(4),
        Err(Error::TooLarge { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Layers and traces that do not fit
// ---------------------------------------------------------------------------------------------

/// A user's layer whose forward pass disagrees with the shape it promised.
#[derive(Debug)]
struct Liar;

impl Layer for Liar {
    fn name(&self) -> String {
        "Liar".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Other
    }
    fn output_shape(&self, input: &[usize]) -> klrp::Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, input: &Tensor) -> klrp::Result<Tensor> {
        Ok(ArrayD::zeros(IxDyn(&[input.shape()[0], 3])))
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> klrp::Result<Shares<'_>> {
        Ok(Shares::Pass)
    }
}

#[test]
fn a_layer_whose_forward_breaks_its_promised_shape_is_an_error() {
    let net = Network::new([2], vec![Box::new(Liar), dense(Array2::ones((1, 2)), None)]).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[1, 2]));
    for e in [net.forward(&x).unwrap_err(), net.trace(&x).unwrap_err()] {
        assert!(matches!(e, Error::Layer { index: 0, .. }), "{e:?}");
        assert!(matches!(inner(&e), Error::ShapeMismatch { .. }), "{e:?}");
    }
}

#[test]
fn a_trace_from_another_network_is_refused() {
    let a = Network::new([3], vec![dense(Array2::ones((2, 3)), None)]).unwrap();
    let b = Network::new([4], vec![dense(Array2::ones((2, 4)), None)]).unwrap();
    let trace = a.trace(&ArrayD::ones(IxDyn(&[1, 3]))).unwrap();
    let init = one_hot::<Real<f32>>(trace.output().shape(), &[0]).unwrap();
    let e = b
        .propagate(
            &trace,
            init,
            &Composite::uniform(EpsilonRule::default()),
            &PerLayer::new(Identity),
            false,
        )
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
}

#[test]
fn non_finite_or_saturated_initialisation_is_refused() {
    let net = Network::new([3], vec![dense(Array2::ones((2, 3)), None)]).unwrap();
    let trace = net.trace(&ArrayD::ones(IxDyn(&[1, 3]))).unwrap();
    let c = Composite::uniform(EpsilonRule::default());
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut init = one_hot::<Real<f32>>(trace.output().shape(), &[0]).unwrap();
        init[[0, 1]] = Real(bad);
        let e = net
            .propagate(&trace, init, &c, &PerLayer::new(Identity), false)
            .unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
    }
    let mut init = one_hot::<Counting>(trace.output().shape(), &[0]).unwrap();
    init[[0, 0]] = Counting(u64::MAX);
    let theta = PerLayer::new(Threshold::new(0.1).unwrap());
    let e = net
        .propagate(&trace, init, &Composite::k_lrp(), &theta, false)
        .unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
}

#[test]
fn huge_targets_are_out_of_range() {
    let net = Network::new([3], vec![dense(Array2::ones((2, 3)), None)]).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[1, 3]));
    let theta = PerLayer::new(Threshold::new(0.1).unwrap());
    let e = net
        .explain::<Boolean, _>(&x, &[usize::MAX], &Composite::k_lrp(), &theta)
        .unwrap_err();
    assert!(matches!(
        e,
        Error::TargetOutOfRange {
            target: usize::MAX,
            classes: 2
        }
    ));
    let trace = net.trace(&x).unwrap();
    assert!(matches!(
        trace.output_init(&[usize::MAX]),
        Err(Error::TargetOutOfRange { .. })
    ));
}

#[test]
fn nan_and_infinite_rule_parameters_are_refused() {
    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        assert!(EpsilonRule::new(bad).is_err(), "ε = {bad}");
        assert!(klrp::rules::GammaRule::new(bad, 1e-6).is_err(), "γ = {bad}");
        assert!(klrp::rules::GammaRule::new(0.25, bad).is_err(), "ε = {bad}");
        assert!(klrp::rules::ProportionalRule::new(bad).is_err());
        assert!(klrp::rules::MaxAbsRule::new(bad).is_err());
        assert!(klrp::rules::AlphaBetaRule::new(bad, bad - 1.0).is_err());
    }
    assert!(Threshold::new(f32::NAN).is_err());
    assert!(klrp::AbsThreshold::new(f32::NAN).is_err());
    assert!(klrp::rules::ZBoxRule::new(f32::NAN, 1.0).is_err());
    assert!(klrp::rules::ZBoxRule::new(0.0, f32::INFINITY).is_err());
}

// ---------------------------------------------------------------------------------------------
// Numerical policy (docs/semantics.md §8)
// ---------------------------------------------------------------------------------------------

/// A 2 → 1 dense layer whose pre-activation for input `[1, 1]` is exactly `z` (weights 1, −1 + z
/// is not exact, so the bias carries `z`).
fn single_output(z: f32) -> Network {
    Network::new([2], vec![dense(array![[1.0, -1.0]], Some(array![z]))]).unwrap()
}

fn real_relevance(net: &Network, rule: impl Into<Rule>) -> ArrayD<Real<f32>> {
    let x = ArrayD::<f32>::ones(IxDyn(&[1, 2]));
    net.explain::<Real<f32>, _>(
        &x,
        &[0],
        &Composite::uniform(rule),
        &PerLayer::new(Identity),
    )
    .unwrap()
    .into_input()
}

#[test]
fn zero_and_subnormal_denominators_with_epsilon_zero_give_zero_shares() {
    for z in [0.0, 1e-40, -1e-40, f32::MIN_POSITIVE / 2.0] {
        let net = single_output(z);
        for rule in [
            Rule::from(ZeroRule),
            Rule::from(EpsilonRule::new(0.0).unwrap()),
        ] {
            let r = real_relevance(&net, rule.clone());
            assert!(r.iter().all(|v| v.0 == 0.0), "z = {z:e}, {rule:?}: {r:?}");
        }
        // With ε > 0 the denominator moves away from zero: finite, non-zero shares.
        let r = real_relevance(&net, EpsilonRule::default());
        assert!(r.iter().all(|v| v.0.is_finite()), "z = {z:e}: {r:?}");
        let mask = net
            .explain::<Boolean, _>(
                &ArrayD::ones(IxDyn(&[1, 2])),
                &[0],
                &Composite::k_lrp(),
                &PerLayer::new(Threshold::new(-1.0).unwrap()),
            )
            .unwrap();
        assert!(mask.input().iter().all(|b| b.0), "Θ(0) = 1 still passes");
    }
    // The smallest normal denominator is used as is: 1 / 1.18e-38 is finite.
    let net = single_output(f32::MIN_POSITIVE);
    let r = real_relevance(&net, ZeroRule);
    assert!(r.iter().all(|v| v.0.is_finite() && v.0 != 0.0), "{r:?}");
}

/// A float whose magnitude spans 1e-30 … 1e8, with either sign, or exactly 0.
fn wild(rng: &mut Rng) -> f32 {
    let r = rng.next();
    if r.is_multiple_of(7) {
        return 0.0;
    }
    let exp = (r >> 8) % 39;
    let mag = 10f32.powi(exp as i32 - 30);
    if r & 1 == 0 { mag } else { -mag }
}

/// Real relevance under the stabilised rules (ε > 0) from finite inputs is finite: random
/// networks whose weights, biases and inputs range over 38 orders of magnitude, including exact
/// zeros and cancelling pre-activations.
#[test]
fn stabilised_real_relevance_is_finite_for_wild_finite_values() {
    let mut rng = Rng::new(7);
    let mut checked = 0;
    for _ in 0..300 {
        let sizes = [4, 5, 3];
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        for w in sizes.windows(2) {
            let weight = Array2::from_shape_fn((w[1], w[0]), |_| wild(&mut rng));
            let bias = Array1::from_shape_fn(w[1], |_| wild(&mut rng));
            layers.push(dense(weight, Some(bias)));
            layers.push(Box::new(ReLU));
        }
        layers.pop();
        let net = Network::new([4], layers).unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 4]), |_| wild(&mut rng));
        let Ok(trace) = net.trace(&x) else {
            continue; // a genuine f32 overflow of the activations is refused, not propagated
        };
        for rule in [
            Rule::from(EpsilonRule::default()),
            Rule::from(EpsilonRule::new(1e-3).unwrap()),
            Rule::from(klrp::rules::GammaRule::new(0.25, 1e-6).unwrap()),
            Rule::from(klrp::rules::ZPlusRule::default()),
            Rule::from(klrp::rules::AlphaBetaRule::new(2.0, 1.0).unwrap()),
            Rule::from(klrp::rules::FlatRule::default()),
            Rule::from(klrp::rules::WSquareRule::default()),
        ] {
            let init = one_hot::<Real<f32>>(trace.output().shape(), &[0, 2]).unwrap();
            let r = net
                .propagate(
                    &trace,
                    init,
                    &Composite::uniform(rule.clone()),
                    &PerLayer::new(Identity),
                    true,
                )
                .unwrap();
            assert_eq!(r.overflowed(), 0, "{rule:?}: {:?}", r.input());
            for l in 0..=net.layers().len() {
                assert!(
                    r.layer(l).unwrap().iter().all(|v| v.0.is_finite()),
                    "{rule:?} layer {l}"
                );
            }
            // Viterbi under max-abs shares stays in [0, 1] whatever the magnitudes.
            let v = net
                .explain::<Viterbi, _>(&x, &[0, 2], &Composite::viterbi(), &PerLayer::new(Clamp01))
                .unwrap();
            assert!(v.input().iter().all(|v| (0.0..=1.0).contains(&v.0)));
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} cases were finite");
}

/// Counting never wraps: every input has `16^(depth−1)` paths; past 2^64 the count sticks at
/// `u64::MAX` and is reported (the full test is in tests/it/errors.rs; this one checks that the
/// batch of two samples reports both).
#[test]
fn counting_saturates_per_sample() {
    let width = 16;
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    for _ in 0..18 {
        layers.push(dense(Array2::from_elem((width, width), 1.0 / 16.0), None));
    }
    let net = Network::new([width], layers).unwrap();
    let x = ArrayD::<f32>::ones(IxDyn(&[2, width]));
    let theta = PerLayer::new(Threshold::new(0.0).unwrap());
    let r = net
        .explain::<Counting, _>(&x, &[0, 1], &Composite::k_lrp(), &theta)
        .unwrap();
    assert_eq!(r.overflowed(), 2 * width);
    assert!(r.input().iter().all(|c| c.0 == u64::MAX && c.is_overflow()));
}

// ---------------------------------------------------------------------------------------------
// Loader crashes found by fuzzing (inputs in tests/fixtures/fuzz/, run by tests/it/fuzz_regressions.rs)
// ---------------------------------------------------------------------------------------------

/// npy: a dtype string with a multi-byte character (`'<ΐ8'`) made the parser slice inside the
/// character and panic. Found by `fuzz/` target `npy`.
#[test]
fn npy_dtype_with_a_non_ascii_character_is_malformed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(root.join("tests/fixtures/fuzz/npy/non_ascii_dtype.npy")).unwrap();
    let e = klrp::io::npy::parse_npy(&bytes).unwrap_err();
    assert!(matches!(e, Error::Malformed { format: "npy", .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Layers called directly (the public `Layer` trait) with tensors of any shape
// ---------------------------------------------------------------------------------------------

/// Every built-in layer's `output_shape`, `forward` and `shares`, called directly with tensors of
/// the wrong rank, wrong sizes, an empty batch, or input/output pairs that do not belong together,
/// returns `Ok` or an `Err`, never panics.
/// Every rule defined per connection of a linear layer (dense or convolution), with typical
/// parameters.
fn linear_rules() -> Vec<Rule> {
    vec![
        Rule::from(ZeroRule),
        Rule::from(EpsilonRule::default()),
        Rule::from(klrp::rules::GammaRule::new(0.25, 1e-6).unwrap()),
        Rule::from(klrp::rules::ZPlusRule::default()),
        Rule::from(klrp::rules::AlphaBetaRule::new(2.0, 1.0).unwrap()),
        Rule::from(klrp::rules::ZBoxRule::new(-1.0, 1.0).unwrap()),
        Rule::from(klrp::rules::FlatRule::default()),
        Rule::from(klrp::rules::WSquareRule::default()),
        Rule::from(klrp::rules::MaxAbsRule::default()),
    ]
}

#[test]
fn layers_called_directly_with_any_shape_do_not_panic() {
    let layers: Vec<Box<dyn Layer>> = vec![
        dense(Array2::ones((2, 3)), Some(Array1::zeros(2))),
        Box::new(
            Conv2d::new(Array4::ones((2, 1, 2, 2)), None)
                .unwrap()
                .with_padding((1, 0))
                .unwrap(),
        ),
        Box::new(
            Conv2d::new(Array4::ones((4, 1, 3, 3)), None)
                .unwrap()
                .with_groups(2)
                .unwrap()
                .with_stride((2, 2))
                .unwrap(),
        ),
        Box::new(MaxPool2d::new((2, 2), (2, 2), (1, 1)).unwrap()),
        Box::new(AvgPool2d::new((2, 2), (1, 1), (0, 0)).unwrap()),
        Box::new(AdaptiveAvgPool2d::new((2, 3)).unwrap()),
        Box::new(
            klrp::layers::BatchNorm2d::new(
                Array1::ones(2),
                Array1::zeros(2),
                Array1::zeros(2),
                Array1::ones(2),
                1e-5,
            )
            .unwrap(),
        ),
        Box::new(ReLU),
        Box::new(Flatten),
        Box::new(klrp::layers::Dropout),
        Box::new(klrp::layers::IdentityLayer),
    ];
    let shapes: Vec<Vec<usize>> = vec![
        vec![],
        vec![0],
        vec![3],
        vec![1, 3],
        vec![0, 3],
        vec![2, 4],
        vec![1, 1, 4, 4],
        vec![1, 2, 4, 4],
        vec![0, 2, 4, 4],
        vec![1, 2, 1, 1],
        vec![1, 2, 0, 5],
        vec![2, 2, 5, 3],
        vec![1, 1, 1, 1, 1],
    ];
    let rules: Vec<Rule> = [
        linear_rules(),
        vec![
            Rule::from(klrp::rules::WinnerTakesAllRule),
            Rule::from(klrp::rules::ProportionalRule::default()),
        ],
    ]
    .concat();
    let theta = Threshold::new(0.1).unwrap();
    let mut calls = 0;
    for layer in &layers {
        for s in &shapes {
            let _ = layer.output_shape(s.get(1..).unwrap_or(&[]));
            let x = ArrayD::<f32>::from_elem(IxDyn(s), 0.5);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| layer.forward(&x)));
            assert!(r.is_ok(), "{} forward panics on {s:?}", layer.name());
            for o in &shapes {
                let y = ArrayD::<f32>::from_elem(IxDyn(o), 0.25);
                for rule in &rules {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        if let Ok(shares) = layer.shares(&x, &y, rule) {
                            let r_out = ArrayD::from_elem(IxDyn(o), Counting(1));
                            let _ = klrp::kernels::propagate(&shares, &theta, &r_out, s);
                        }
                    }));
                    assert!(
                        r.is_ok(),
                        "{} shares/propagate panics: input {s:?}, output {o:?}, {rule:?}",
                        layer.name()
                    );
                    calls += 1;
                }
            }
        }
    }
    assert!(calls > 10_000);
}

/// `rules::linear_share_terms` is public and takes the layer's output `z` from its caller: a `z`
/// that is not the map's output for `a` (another width, batch or rank) is `ShapeMismatch` naming
/// `z`, for every rule that reads `z` (and every other linear rule), before any arithmetic. It
/// used to add arrays of incompatible shapes, and ndarray panicked.
#[test]
fn linear_share_terms_refuses_a_z_of_the_wrong_shape() {
    use klrp::layers::LinearMap;
    use klrp::rules::linear_share_terms;

    let dense = Dense::new(
        Array2::from_shape_fn((2, 3), |(i, j)| i as f32 - 0.5 * j as f32 + 0.25),
        Some(array![0.1, -0.2]),
    )
    .unwrap();
    let conv = Conv2d::new(
        Array4::from_shape_fn((2, 1, 2, 2), |(o, _, i, j)| {
            o as f32 - i as f32 + 0.5 * j as f32
        }),
        Some(array![0.1, -0.1]),
    )
    .unwrap();
    // (map, input shape, the output shape it produces); inputs with both signs and post-ReLU
    // (all ≥ 0, where the a⁻ passes are skipped).
    let cases: Vec<(&dyn LinearMap, Vec<usize>, Vec<usize>)> = vec![
        (&dense, vec![2, 3], vec![2, 2]),
        (&conv, vec![1, 1, 3, 3], vec![1, 2, 2, 2]),
    ];
    let linear_rules = linear_rules();
    let mut refused = 0;
    for (map, a_shape, z_shape) in &cases {
        let n: usize = a_shape.iter().product();
        let mixed =
            ArrayD::from_shape_vec(IxDyn(a_shape), (0..n).map(|k| k as f32 - 1.5).collect())
                .unwrap();
        let relu = mixed.mapv(|v| v.max(0.0));
        assert!(n > 0 && mixed.iter().any(|&v| v < 0.0) && relu.iter().any(|&v| v > 0.0));
        // Wrong z: no batch axis, 0-d, batch ±1, one more output, one more axis, the input's.
        let mut wrong: Vec<Vec<usize>> = vec![z_shape[1..].to_vec(), vec![]];
        for (axis, delta) in [(0, 1), (0, usize::MAX), (z_shape.len() - 1, 1)] {
            let mut s = z_shape.clone();
            s[axis] = s[axis].wrapping_add(delta);
            wrong.push(s);
        }
        wrong.push([z_shape.as_slice(), &[1]].concat());
        wrong.push(a_shape.clone());
        for a in [&mixed, &relu] {
            let good = map
                .forward_mapped(a, klrp::rules::WeightMap::Identity, None)
                .unwrap();
            assert_eq!(good.shape(), z_shape.as_slice());
            for rule in &linear_rules {
                let terms = linear_share_terms(*map, a, &good, rule)
                    .unwrap_or_else(|e| panic!("{rule:?} on a correct z: {e}"));
                assert!(!terms.is_empty(), "{rule:?}");
                for s in &wrong {
                    let z = ArrayD::<f32>::from_elem(IxDyn(s), 0.75);
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        linear_share_terms(*map, a, &z, rule)
                    }));
                    match r {
                        Ok(Err(Error::ShapeMismatch {
                            context,
                            expected,
                            actual,
                        })) => {
                            assert!(context.contains("linear_share_terms"), "{context}");
                            assert_eq!(expected.0, *z_shape, "{rule:?}, z {s:?}");
                            assert_eq!(actual.0, *s, "{rule:?}");
                            refused += 1;
                        }
                        Ok(other) => {
                            panic!("{rule:?}, z {s:?}: expected ShapeMismatch, got {other:?}")
                        }
                        Err(_) => panic!("{rule:?}, z {s:?}: linear_share_terms panics"),
                    }
                }
            }
        }
        // An `a` the map cannot take is refused as well (the map's own ShapeMismatch).
        let bad_a = ArrayD::<f32>::ones(IxDyn(&[a_shape[0], n]));
        let e = linear_share_terms(*map, &bad_a, &bad_a, &Rule::from(ZeroRule)).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e:?}");
    }
    assert_eq!(refused, 2 * 2 * 9 * 7);
}

/// `Connectivity` is public: one whose weights do not fit its geometry (or whose bias does not
/// fit its outputs) is refused by every kernel entry point with an error, not a panic.
#[test]
fn connectivity_with_weights_that_do_not_fit_is_an_error() {
    use klrp::kernels::{
        conv_forward, linear_forward, max_abs_forward, propagate, propagate_reference,
    };
    use klrp::layers::{Connectivity, LinearMap, Shares};
    use klrp::rules::{ShareTerm, WeightMap};
    let layer = Conv2d::new(Array4::from_elem((4, 3, 3, 3), 0.1), None)
        .unwrap()
        .with_padding((1, 1))
        .unwrap();
    let good = layer.connectivity(&[3, 6, 6]).unwrap();
    let Connectivity::Conv { geometry, .. } = good.clone() else {
        unreachable!()
    };
    let small = Array4::from_elem((2, 3, 3, 3), 0.1);
    let bias = [0.0f32; 2];
    let bad_weight = Connectivity::Conv {
        weight: small.view(),
        bias: None,
        geometry,
    };
    let big = Array4::from_elem((4, 3, 3, 3), 0.1);
    let bad_bias = Connectivity::Conv {
        weight: big.view(),
        bias: Some(&bias),
        geometry,
    };
    let x = ArrayD::from_elem(IxDyn(&[1, 3, 6, 6]), 1.0f32);
    let out = [4, 6, 6];
    let refused = |r: Result<ArrayD<f32>, Error>| matches!(r, Err(Error::ShapeMismatch { .. }));
    let (id, bias_id) = (WeightMap::Identity, Some(WeightMap::Identity));
    for conn in [&bad_weight, &bad_bias] {
        assert!(refused(conv_forward(conn, &x, id, bias_id, &out)));
        assert!(refused(linear_forward(conn, &x, id, bias_id, &out)));
        assert!(refused(max_abs_forward(conn, &x, &out)));
        let shares = Shares::Linear {
            connectivity: conn.clone(),
            terms: vec![ShareTerm {
                input: x.clone().into_shared(),
                weight: WeightMap::Identity,
                scale: ArrayD::from_elem(IxDyn(&[1, 4, 6, 6]), 1.0f32).into_shared(),
            }],
        };
        let r = ArrayD::from_elem(IxDyn(&[1, 4, 6, 6]), Real(1.0f32));
        assert!(matches!(
            propagate(&shares, &Identity, &r, x.shape()),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            propagate_reference(&shares, &Identity, &r, x.shape()),
            Err(Error::ShapeMismatch { .. })
        ));
        let rb = r.mapv(|_| Boolean(true));
        assert!(matches!(
            propagate(&shares, &Threshold::new(0.5).unwrap(), &rb, x.shape()),
            Err(Error::ShapeMismatch { .. })
        ));
    }
}
