//! Every bad input is answered with a named `klrp::Error`, never a panic.
//!
//! Each test feeds one kind of mistake — a shape that does not fit, an empty batch, a NaN or
//! infinite value, an out-of-range target, an invalid rule parameter, a layer the engine cannot
//! propagate through, a rule on the wrong kind of layer — and matches the exact error variant
//! (and, for layer errors, the index of the layer blamed and the error underneath). The last test
//! checks the one condition that is reported rather than refused: path counts that outgrow `u64`
//! saturate (they do not wrap) and are counted by `Relevance::overflowed()`, while FloatCounting
//! shows the true count beyond 2⁶⁴.

use klrp::layers::{AvgPool2d, BatchNorm2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU};
use klrp::rules::{
    AlphaBetaRule, Bound, EpsilonRule, GammaRule, MaxAbsRule, ProportionalRule, WinnerTakesAllRule,
    ZBoxRule, ZeroRule,
};
use klrp::semiring::{Boolean, Counting, FloatCounting, LogCounting, Real, Semiring};
use klrp::{AbsThreshold, Composite, Error, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn, array};

fn dense(w: Array2<f32>) -> Box<dyn Layer> {
    Box::new(Dense::new(w, None).unwrap())
}

/// Dense(3 → 2) → ReLU → Dense(2 → 2).
fn mlp() -> Network {
    Network::new(
        [3],
        vec![
            dense(array![[1.0, 0.5, -1.0], [0.2, 1.0, 0.3]]),
            Box::new(ReLU),
            dense(array![[1.0, -0.5], [0.3, 1.0]]),
        ],
    )
    .unwrap()
}

fn x3() -> ArrayD<f32> {
    array![[1.0_f32, 2.0, 0.5]].into_dyn()
}

fn real(net: &Network, x: &ArrayD<f32>, targets: &[usize]) -> klrp::Result<ArrayD<Real<f32>>> {
    net.explain::<Real<f32>, _>(x, targets, &Composite::k_lrp(), &PerLayer::new(Identity))
        .map(|r| r.into_input())
}

/// Asserts `e` is `Error::Layer { index, .. }` and returns the error underneath.
fn in_layer(e: Error, index: usize) -> Error {
    match e {
        Error::Layer {
            index: i,
            name,
            source,
        } => {
            assert_eq!(i, index, "blamed layer {i} ({name}), expected {index}");
            assert!(!name.is_empty());
            *source
        }
        other => panic!("expected Error::Layer {{ index: {index}, .. }}, got {other:?}"),
    }
}

fn assert_shape_mismatch(e: &Error) {
    assert!(
        matches!(e, Error::ShapeMismatch { .. }),
        "expected ShapeMismatch, got {e:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Network construction
// ---------------------------------------------------------------------------------------------

#[test]
fn dense_shape_mismatch_names_the_layer() {
    // Layer 2 expects 4 inputs but layer 0 produces 2.
    let e = Network::new(
        [3],
        vec![
            dense(Array2::ones((2, 3))),
            Box::new(ReLU),
            dense(Array2::ones((1, 4))),
        ],
    )
    .unwrap_err();
    let msg = e.to_string();
    let inner = in_layer(e, 2);
    assert_shape_mismatch(&inner);
    assert!(
        msg.contains("layer 2") && msg.contains("Dense(4 → 1)"),
        "{msg}"
    );
    // The first layer itself can be wrong too.
    let e = Network::new([5], vec![dense(Array2::ones((2, 3)))]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 0));
}

#[test]
fn convolution_and_pooling_shape_mismatches_name_the_layer() {
    let conv = |cin: usize, k: usize| -> Box<dyn Layer> {
        Box::new(Conv2d::new(Array4::ones((2, cin, k, k)), None).unwrap())
    };
    // Wrong channel count at layer 2.
    let e = Network::new([1, 6, 6], vec![conv(1, 3), Box::new(ReLU), conv(3, 1)]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 2));
    // Input smaller than the kernel.
    let e = Network::new([1, 2, 2], vec![conv(1, 3)]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 0));
    // A convolution on a flat input.
    let e = Network::new([4], vec![conv(1, 1)]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 0));
    // Pooling window larger than the input (after a 3×3 convolution 4×4 → 2×2).
    let pool = MaxPool2d::new((3, 3), (1, 1), (0, 0)).unwrap();
    let e = Network::new([1, 4, 4], vec![conv(1, 3), Box::new(pool)]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 1));
    // BatchNorm with the wrong channel count after the convolution (2 channels).
    let e = Network::new([1, 4, 4], vec![conv(1, 3), bn(3)]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 1));
    // A dense layer after a convolution without Flatten.
    let e = Network::new([1, 4, 4], vec![conv(1, 3), dense(Array2::ones((1, 8)))]).unwrap_err();
    assert_shape_mismatch(&in_layer(e, 1));
    // With Flatten it fits (2·2·2 = 8).
    Network::new(
        [1, 4, 4],
        vec![conv(1, 3), Box::new(Flatten), dense(Array2::ones((1, 8)))],
    )
    .unwrap();
}

#[test]
fn empty_network_and_empty_input_shape_are_invalid() {
    let e = Network::new([3], vec![]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = Network::new([0], vec![Box::new(ReLU)]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let e = Network::new(Vec::<usize>::new(), vec![Box::new(ReLU)]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_input_batch_shape() {
    let net = mlp();
    for x in [
        array![[1.0_f32, 2.0]].into_dyn(),        // 2 features, not 3
        array![1.0_f32, 2.0, 0.5].into_dyn(),     // no batch axis
        array![[[1.0_f32, 2.0, 0.5]]].into_dyn(), // one axis too many
        ArrayD::<f32>::zeros(IxDyn(&[])),         // a scalar
    ] {
        let e = real(&net, &x, &[0]).unwrap_err();
        assert_shape_mismatch(&e);
        assert_shape_mismatch(&net.forward(&x).unwrap_err());
        assert_shape_mismatch(&net.trace(&x).unwrap_err());
    }
}

#[test]
fn empty_batch() {
    let net = mlp();
    let x = ArrayD::<f32>::zeros(IxDyn(&[0, 3]));
    assert_shape_mismatch(&real(&net, &x, &[]).unwrap_err());
    assert_shape_mismatch(&net.trace(&x).unwrap_err());
}

#[test]
fn non_finite_input() {
    let net = mlp();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let x = array![[1.0_f32, bad, 0.5]].into_dyn();
        let e = real(&net, &x, &[0]).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{bad}: {e:?}");
        assert!(matches!(net.forward(&x).unwrap_err(), Error::NonFinite(_)));
    }
}

/// `trace` and `forward` both refuse `x` with `NonFinite`, naming layer `index`.
fn assert_overflow_in_layer(net: &Network, x: &ArrayD<f32>, index: usize) {
    assert!(matches!(
        in_layer(net.trace(x).unwrap_err(), index),
        Error::NonFinite(_)
    ));
    assert!(matches!(
        in_layer(net.forward(x).unwrap_err(), index),
        Error::NonFinite(_)
    ));
}

#[test]
fn activations_overflowing_to_infinity_name_the_layer() {
    // Finite parameters and input, but 1e30 · 1e30 overflows f32 in layer 0.
    let x = array![[1e30_f32]].into_dyn();
    let net = Network::new([1], vec![dense(array![[1e30]]), Box::new(ReLU)]).unwrap();
    assert_overflow_in_layer(&net, &x, 0);
}

/// Regression: `forward` used to check only the network's output, so an activation of −∞ that a
/// following ReLU turned into 0 went unreported (while `trace` refused the same input). Both now
/// name the layer whose activations overflowed.
#[test]
fn an_overflow_hidden_by_a_later_relu_is_still_reported() {
    let x = array![[1e30_f32]].into_dyn();
    // Layer 0 gives −1e30 · 1e30 = −∞; the ReLU makes it 0; layer 2 outputs 0.
    let net = Network::new(
        [1],
        vec![dense(array![[-1e30]]), Box::new(ReLU), dense(array![[1.0]])],
    )
    .unwrap();
    assert_overflow_in_layer(&net, &x, 0);
    let e = real(&net, &x, &[0]).unwrap_err();
    assert!(matches!(in_layer(e, 0), Error::NonFinite(_)));
}

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn non_finite_parameters() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = Dense::new(array![[1.0, bad]], None).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
        let e = Dense::new(array![[1.0, 2.0]], Some(array![bad])).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");

        let mut w = Array4::<f32>::ones((1, 1, 2, 2));
        w[[0, 0, 1, 0]] = bad;
        let e = Conv2d::new(w, None).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
        let e = Conv2d::new(Array4::ones((1, 1, 2, 2)), Some(array![bad])).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");

        let ok = || Array1::<f32>::ones(2);
        let with_bad = || array![1.0, bad];
        let bns = [
            BatchNorm2d::new(with_bad(), ok(), ok(), ok(), 1e-5),
            BatchNorm2d::new(ok(), with_bad(), ok(), ok(), 1e-5),
            BatchNorm2d::new(ok(), ok(), with_bad(), ok(), 1e-5),
            BatchNorm2d::new(ok(), ok(), ok(), with_bad(), 1e-5),
        ];
        for (i, bn) in bns.into_iter().enumerate() {
            let e = bn.unwrap_err();
            assert!(
                matches!(e, Error::NonFinite(_)),
                "BatchNorm2d argument {i}: {e:?}"
            );
        }
        let e = BatchNorm2d::new(ok(), ok(), ok(), ok(), bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "eps {bad}: {e:?}");
    }
}

#[test]
fn malformed_parameter_shapes() {
    assert_shape_mismatch(&Dense::new(Array2::ones((2, 3)), Some(Array1::ones(3))).unwrap_err());
    assert_shape_mismatch(&Dense::new(Array2::ones((0, 3)), None).unwrap_err());
    assert_shape_mismatch(
        &Conv2d::new(Array4::ones((2, 1, 3, 3)), Some(Array1::ones(1))).unwrap_err(),
    );
    assert_shape_mismatch(&Conv2d::new(Array4::ones((2, 1, 0, 3)), None).unwrap_err());
    // The bias has 3 channels, the rest 2.
    assert_shape_mismatch(&batch_norm([2, 3, 2, 2]).unwrap_err());
    // A variance + eps that is not positive.
    let e = BatchNorm2d::new(
        Array1::ones(1),
        Array1::zeros(1),
        Array1::zeros(1),
        array![-1.0],
        1e-5,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn invalid_layer_settings() {
    let conv = || Conv2d::new(Array4::ones((4, 1, 3, 3)), None).unwrap();
    for e in [
        conv().with_stride((0, 1)).unwrap_err(),
        conv().with_dilation((1, 0)).unwrap_err(),
        conv().with_groups(0).unwrap_err(),
        conv().with_groups(3).unwrap_err(),
        MaxPool2d::new((0, 2), (1, 1), (0, 0)).unwrap_err(),
        MaxPool2d::new((2, 2), (0, 1), (0, 0)).unwrap_err(),
        MaxPool2d::new((2, 2), (2, 2), (2, 0)).unwrap_err(),
        AvgPool2d::new((2, 2), (2, 2), (0, 2)).unwrap_err(),
        klrp::layers::AdaptiveAvgPool2d::new((0, 1)).unwrap_err(),
    ] {
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Targets and initialisation
// ---------------------------------------------------------------------------------------------

#[test]
fn target_out_of_range() {
    let e = real(&mlp(), &x3(), &[2]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TargetOutOfRange {
                target: 2,
                classes: 2
            }
        ),
        "{e:?}"
    );
    let trace = mlp().trace(&x3()).unwrap();
    assert!(matches!(
        trace.output_init(&[7]).unwrap_err(),
        Error::TargetOutOfRange {
            target: 7,
            classes: 2
        }
    ));
    assert!(matches!(
        klrp::one_hot::<Boolean>(&[1, 2], &[usize::MAX]).unwrap_err(),
        Error::TargetOutOfRange { .. }
    ));
}

#[test]
fn wrong_number_of_targets() {
    let net = mlp();
    let x = array![[1.0_f32, 2.0, 0.5], [0.5, 0.5, 0.5]].into_dyn();
    for targets in [&[0][..], &[0, 1, 1][..], &[][..]] {
        assert_shape_mismatch(&real(&net, &x, targets).unwrap_err());
    }
    let trace = net.trace(&x).unwrap();
    assert_shape_mismatch(&trace.output_init(&[0]).unwrap_err());
}

#[test]
fn init_vector_of_the_wrong_shape() {
    let net = mlp();
    let trace = net.trace(&x3()).unwrap();
    let c = Composite::k_lrp();
    let id = PerLayer::new(Identity);
    for shape in [&[1, 3][..], &[2, 2][..], &[2][..], &[1, 2, 1][..]] {
        let init = ArrayD::from_elem(IxDyn(shape), Real(1.0_f32));
        let e = net.propagate(&trace, init, &c, &id, false).unwrap_err();
        assert_shape_mismatch(&e);
    }
    // A trace of another network with the same output shape but other layers.
    let other = Network::new([3], vec![dense(Array2::ones((2, 3)))]).unwrap();
    let trace = other.trace(&x3()).unwrap();
    let init = klrp::one_hot::<Real<f32>>(&[1, 2], &[0]).unwrap();
    assert!(net.propagate(&trace, init, &c, &id, false).is_err());
}

// ---------------------------------------------------------------------------------------------
// Θ and rule parameters
// ---------------------------------------------------------------------------------------------

#[test]
fn nan_threshold() {
    assert!(matches!(
        Threshold::new(f32::NAN).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    assert!(matches!(
        AbsThreshold::new(f32::NAN).unwrap_err(),
        Error::InvalidArgument(_)
    ));
}

#[test]
fn bad_rule_parameters() {
    for e in [
        EpsilonRule::new(-1e-6).unwrap_err(),
        EpsilonRule::new(f32::NAN).unwrap_err(),
        EpsilonRule::new(f32::INFINITY).unwrap_err(),
        GammaRule::new(-0.25, 1e-6).unwrap_err(),
        GammaRule::new(0.25, -1.0).unwrap_err(),
        GammaRule::new(f32::NAN, 1e-6).unwrap_err(),
        AlphaBetaRule::new(2.0, 2.0).unwrap_err(), // α − β = 0
        AlphaBetaRule::new(3.0, 1.0).unwrap_err(), // α − β = 2
        AlphaBetaRule::new(0.5, -0.5).unwrap_err(), // α − β = 1 but β < 0
        AlphaBetaRule::new(f32::INFINITY, f32::INFINITY).unwrap_err(),
        MaxAbsRule::new(0.0).unwrap_err(),
        MaxAbsRule::new(-1e-9).unwrap_err(),
        MaxAbsRule::new(f32::NAN).unwrap_err(),
        ProportionalRule::new(-0.1).unwrap_err(),
    ] {
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
    for e in [
        ZBoxRule::new(f32::NAN, 1.0).unwrap_err(),
        ZBoxRule::new(-1.0, f32::INFINITY).unwrap_err(),
        ZBoxRule::new(Bound::from(array![0.0_f32, f32::NAN].into_dyn()), 1.0).unwrap_err(),
        Composite::epsilon_gamma_box(f32::NEG_INFINITY, 1.0).unwrap_err(),
    ] {
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
    }
    // Valid edge values.
    EpsilonRule::new(0.0).unwrap();
    GammaRule::new(0.0, 0.0).unwrap();
    AlphaBetaRule::new(1.0, 0.0).unwrap();
}

/// An empty box (`low ≥ high` anywhere) is refused: with low = high = 1 the z^B denominators
/// vanish and relevance blew up 40,000-fold. Array bounds are compared after broadcasting.
#[test]
fn zbox_refuses_an_empty_box() {
    let per = |v: Vec<f32>, shape: &[usize]| {
        Bound::from(ArrayD::from_shape_vec(shape.to_vec(), v).unwrap())
    };
    for (low, high) in [
        (Bound::from(1.0), Bound::from(1.0)),
        (Bound::from(2.0), Bound::from(1.0)),
        (Bound::from(0.5), per(vec![1.0, 0.5], &[2])),
        (per(vec![0.0, 1.0], &[2]), Bound::from(1.0)),
        // [2, 1] against [3]: low[1] = 0.7 meets high[2] = 0.7.
        (per(vec![0.0, 0.7], &[2, 1]), per(vec![1.0, 0.9, 0.7], &[3])),
        // Per channel: channel 1 is empty.
        (
            Bound::PerChannel(vec![0.0, 1.0].into()),
            Bound::PerChannel(vec![1.0, 1.0].into()),
        ),
    ] {
        let e = ZBoxRule::new(low.clone(), high.clone()).unwrap_err();
        let Error::InvalidArgument(m) = &e else {
            panic!("{low:?} {high:?}: {e:?}")
        };
        assert!(m.contains("z^B needs low < high"), "{m}");
    }
    // Bounds that cannot broadcast together.
    let e = ZBoxRule::new(per(vec![0.0; 2], &[2]), per(vec![1.0; 3], &[3])).unwrap_err();
    assert_shape_mismatch(&e);
    // A per-channel bound against an array one meets it on the input: refused there (channel 1
    // of the [2, 1, 3] input has low = 1 and high = 1 in its first column).
    let zb = ZBoxRule::new(
        Bound::PerChannel(vec![0.0, 1.0].into()),
        per(vec![1.0, 2.0, 2.0], &[3]),
    )
    .unwrap();
    let net = Network::new(
        [2, 1, 3],
        vec![Box::new(
            Conv2d::new(Array4::ones((1, 2, 1, 1)), None).unwrap(),
        )],
    )
    .unwrap();
    let x = ArrayD::from_elem(vec![1, 2, 1, 3], 0.5_f32);
    let c = Composite::k_lrp().with_layer(0, zb);
    let e = net
        .explain::<Real<f32>, _>(&x, &[0], &c, &PerLayer::new(Identity))
        .unwrap_err();
    let e = in_layer(e, 0);
    let Error::InvalidArgument(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("z^B needs low < high, got low = 1 and high = 1"),
        "{m}"
    );
    // A box that is not empty anywhere.
    ZBoxRule::new(per(vec![0.0, 0.6], &[2, 1]), per(vec![1.0, 0.9, 0.7], &[3])).unwrap();
}

#[test]
fn zbox_bounds_of_the_wrong_shape() {
    // Per-input bounds of 2 elements for a layer with 3 inputs.
    let zb = ZBoxRule::new(
        Bound::from(array![0.0_f32, 0.0].into_dyn()),
        Bound::from(array![1.0_f32, 1.0].into_dyn()),
    )
    .unwrap();
    let c = Composite::k_lrp().with_layer(0, zb);
    let e = mlp()
        .explain::<Real<f32>, _>(&x3(), &[0], &c, &PerLayer::new(Identity))
        .unwrap_err();
    assert_shape_mismatch(&in_layer(e, 0));
}

// ---------------------------------------------------------------------------------------------
// Layers that cannot propagate, rules on the wrong layer
// ---------------------------------------------------------------------------------------------

/// An identity BatchNorm2d (weight and variance 1, bias and mean 0, ε = 1e-5) whose weight, bias,
/// mean and variance have these channel counts.
fn batch_norm([weight, bias, mean, var]: [usize; 4]) -> Result<BatchNorm2d, Error> {
    BatchNorm2d::new(
        Array1::ones(weight),
        Array1::zeros(bias),
        Array1::zeros(mean),
        Array1::ones(var),
        1e-5,
    )
}

/// An identity BatchNorm2d on `channels` channels.
fn bn(channels: usize) -> Box<dyn Layer> {
    Box::new(batch_norm([channels; 4]).unwrap())
}

/// A BatchNorm no linear layer produces alone used to be an error at canonization (issue #29);
/// it is now kept as a standalone linear layer, and only propagating through a `BatchNorm2d`
/// itself (not canonized) is an error.
#[test]
fn batchnorm_not_after_a_linear_layer_is_canonized_standalone() {
    // BatchNorm after a ReLU (index 2).
    let net = Network::new(
        [1, 4, 4],
        vec![
            Box::new(Conv2d::new(Array4::ones((2, 1, 3, 3)), None).unwrap()),
            Box::new(ReLU),
            bn(2),
        ],
    )
    .unwrap();
    let net = net.canonize().unwrap();
    assert_eq!(net.layers()[2].name(), "BatchNorm2d(2, standalone)");
    // BatchNorm as the first layer.
    let net = Network::new([2, 3, 3], vec![bn(2)]).unwrap();
    let net = net.canonize().unwrap();
    assert_eq!(
        net.layers()[0].kind(),
        klrp::layers::LayerKind::Normalization
    );
}

#[test]
fn propagating_through_an_unfused_batchnorm() {
    let make = || {
        Network::new(
            [1, 4, 4],
            vec![
                Box::new(Conv2d::new(Array4::ones((2, 1, 3, 3)), None).unwrap()),
                bn(2),
                Box::new(Flatten),
                dense(Array2::ones((1, 8))),
            ],
        )
        .unwrap()
    };
    let x = ArrayD::from_elem(IxDyn(&[1, 1, 4, 4]), 0.5_f32);
    // The forward pass works, relevance does not.
    make().forward(&x).unwrap();
    let e = make()
        .explain::<Real<f32>, _>(&x, &[0], &Composite::k_lrp(), &PerLayer::new(Identity))
        .unwrap_err();
    let inner = in_layer(e, 1);
    assert!(matches!(inner, Error::Unsupported(_)), "{inner:?}");
    // After canonize it does.
    make()
        .canonize()
        .unwrap()
        .explain::<Real<f32>, _>(&x, &[0], &Composite::k_lrp(), &PerLayer::new(Identity))
        .unwrap();
}

#[test]
fn linear_rule_on_max_pooling_and_pooling_rule_on_dense() {
    let net = Network::new(
        [1, 4, 4],
        vec![
            Box::new(Conv2d::new(Array4::ones((2, 1, 3, 3)), None).unwrap()),
            Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
            Box::new(Flatten),
            dense(Array2::ones((2, 2))),
        ],
    )
    .unwrap();
    let x = ArrayD::from_elem(IxDyn(&[1, 1, 4, 4]), 0.5_f32);
    let id = PerLayer::new(Identity);
    let run = |c: Composite| net.explain::<Real<f32>, _>(&x, &[0], &c, &id).unwrap_err();
    // A linear rule on the max pool (layer 1).
    for c in [
        Composite::k_lrp().with_layer(1, ZeroRule),
        Composite::k_lrp().with_max_pool(EpsilonRule::default()),
    ] {
        let inner = in_layer(run(c), 1);
        assert!(matches!(inner, Error::Unsupported(_)), "{inner:?}");
    }
    // A pooling rule on the dense layer (3) and on the convolution (0).
    let inner = in_layer(run(Composite::k_lrp().with_layer(3, WinnerTakesAllRule)), 3);
    assert!(matches!(inner, Error::Unsupported(_)), "{inner:?}");
    let inner = in_layer(
        run(Composite::k_lrp().with_layer(0, ProportionalRule::default())),
        0,
    );
    assert!(matches!(inner, Error::Unsupported(_)), "{inner:?}");
    // A linear rule on average pooling.
    let avg = Network::new(
        [1, 2, 2],
        vec![
            Box::new(AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
            Box::new(Flatten),
        ],
    )
    .unwrap();
    let x = ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 0.5_f32);
    let e = avg
        .explain::<Real<f32>, _>(&x, &[0], &Composite::k_lrp().with_layer(0, ZeroRule), &id)
        .unwrap_err();
    assert!(matches!(in_layer(e, 0), Error::Unsupported(_)));
}

// ---------------------------------------------------------------------------------------------
// Counting overflow: saturated and reported, never wrapped
// ---------------------------------------------------------------------------------------------

/// `depth` dense layers of width 16 with every weight 1/16: every share of every connection is
/// positive (1/16 of a positive pre-activation for a positive input), so with θ ≤ 0 each input has
/// 16^(depth − 1) paths to the target: 16 choices at each of the first depth − 1 layers, one
/// (the target) at the last.
fn wide_stack(depth: usize) -> (Network, ArrayD<f32>) {
    let layers: Vec<Box<dyn Layer>> = (0..depth)
        .map(|_| dense(Array2::from_elem((16, 16), 1.0 / 16.0)))
        .collect();
    let net = Network::new([16], layers).unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 16]), |i| 1.0 + i[1] as f32 / 16.0);
    (net, x)
}

#[test]
fn counting_overflow_saturates_and_is_reported() {
    let c = Composite::k_lrp();
    for theta in [
        PerLayer::new(Threshold::new(0.0).unwrap()),
        PerLayer::new(Threshold::new(-1.0).unwrap()),
    ] {
        // 16 layers: 16^15 = 2^60 paths per input — exact in u64, nothing overflowed.
        let (net, x) = wide_stack(16);
        let r = net.explain::<Counting, _>(&x, &[3], &c, &theta).unwrap();
        assert!(r.input().iter().all(|v| v.0 == 1 << 60), "{:?}", r.input());
        assert_eq!(r.overflowed(), 0);

        // 17 layers: 16^16 = 2^64 paths — one more than u64 holds. Wrapping arithmetic would
        // give exactly 0 here; saturation gives u64::MAX ("2^64 − 1 or more"), flagged for all
        // 16 inputs.
        let (net, x) = wide_stack(17);
        let r = net.explain::<Counting, _>(&x, &[3], &c, &theta).unwrap();
        assert!(r.input().iter().all(|v| v.0 == u64::MAX), "{:?}", r.input());
        assert!(r.input().iter().all(Semiring::is_overflow));
        assert_eq!(r.overflowed(), 16);
        // FloatCounting shows the true count, 2^64 exactly (a power of two), not flagged.
        let f = net
            .explain::<FloatCounting, _>(&x, &[3], &c, &theta)
            .unwrap();
        assert!(
            f.input().iter().all(|v| v.0 == 2f64.powi(64)),
            "{:?}",
            f.input()
        );
        assert_eq!(f.overflowed(), 0);
        // LogCounting agrees: ln(2^64) = 64 ln 2.
        let l = net.explain::<LogCounting, _>(&x, &[3], &c, &theta).unwrap();
        assert!(
            l.input()
                .iter()
                .all(|v| (v.0 - 64.0 * std::f64::consts::LN_2).abs() < 1e-9)
        );

        // 20 layers: 2^76 paths, still saturated (sticky), never wrapped.
        let (net, x) = wide_stack(20);
        let r = net.explain::<Counting, _>(&x, &[3], &c, &theta).unwrap();
        assert_eq!(r.overflowed(), 16);
        let f = net
            .explain::<FloatCounting, _>(&x, &[3], &c, &theta)
            .unwrap();
        assert!(f.input().iter().all(|v| v.0 == 2f64.powi(76)));
    }
    // The same network with θ above every share (1/16 < 0.5) has no path at all.
    let (net, x) = wide_stack(17);
    let r = net
        .explain::<Counting, _>(&x, &[3], &c, &PerLayer::new(Threshold::new(0.5).unwrap()))
        .unwrap();
    assert!(r.input().iter().all(|v| v.0 == 0));
    assert_eq!(r.overflowed(), 0);
}

#[test]
fn bad_inputs_never_panic_in_any_semiring() {
    // The same mistakes through the other semirings' entry points return errors too.
    let net = mlp();
    let t = PerLayer::new(Threshold::new(0.1).unwrap());
    let c = Composite::k_lrp();
    let nan = array![[f32::NAN, 1.0, 1.0]].into_dyn();
    assert!(matches!(
        net.explain::<Boolean, _>(&nan, &[0], &c, &t).unwrap_err(),
        Error::NonFinite(_)
    ));
    assert!(matches!(
        net.explain::<Counting, _>(&x3(), &[9], &c, &t).unwrap_err(),
        Error::TargetOutOfRange {
            target: 9,
            classes: 2
        }
    ));
    assert_shape_mismatch(
        &net.explain::<FloatCounting, _>(&array![[1.0_f32]].into_dyn(), &[0], &c, &t)
            .unwrap_err(),
    );
}
