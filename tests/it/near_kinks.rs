//! Units within float32 rounding of a kink (issue #29, item 6): max-pooling near-ties and ReLU
//! inputs at 0 are counted per layer (`Network::near_kinks`, `Explanation::near_kinks`), clear
//! decisions and exact zeros are not; the bundled fixtures have none.

use klrp::layers::{Clip, Dense, Flatten, Layer, LeakyReLU, MaxPool2d, ReLU, near_kink_tolerance};
use klrp::spec::{ExplainOptions, ExplainSpec, RelevanceArray, Targets};
use klrp::{Composite, Identity, Network, PerLayer};
use ndarray::{ArrayD, IxDyn, array};
use std::path::Path;

/// One 2×2 max-pooling window over `window` (row-major), then a flatten.
fn pool_net() -> Network {
    Network::new(
        [1, 2, 2],
        vec![
            Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
            Box::new(Flatten),
        ],
    )
    .unwrap()
}

fn pool_kinks(window: [f32; 4]) -> Vec<(usize, usize)> {
    let net = pool_net();
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 2]), window.to_vec()).unwrap();
    net.near_kinks(&net.trace(&x).unwrap())
        .unwrap()
        .layers()
        .to_vec()
}

#[test]
fn max_pool_ties_and_one_ulp_near_ties_are_flagged_a_clear_winner_is_not() {
    let below = f32::from_bits(1.0f32.to_bits() - 1);
    assert_eq!(pool_kinks([1.0, 1.0, 0.5, 0.2]), [(0, 1)], "an exact tie");
    assert_eq!(pool_kinks([0.2, 1.0, below, 0.5]), [(0, 1)], "1 ulp apart");
    assert_eq!(
        pool_kinks([-3.0, -3.0, -4.0, -5.0]),
        [(0, 1)],
        "a tie below 0"
    );
    assert!(
        pool_kinks([1.0, 0.9, 0.5, 0.2]).is_empty(),
        "a clear winner"
    );
    assert!(pool_kinks([1.0, 0.999, 0.5, 0.2]).is_empty(), "1e-3 apart");
    // A window of exact zeros (a dead ReLU region) sends no relevance: not counted.
    assert!(pool_kinks([0.0, 0.0, 0.0, 0.0]).is_empty());
    // The tolerance is relative to the sample's scale: the same gap is a near-tie in a sample
    // of scale 1e6 and a clear winner at scale 1.
    let gap = 1e-6;
    assert!(pool_kinks([1.0, 1.0 - 2.0 * gap, 0.0, 0.0]).is_empty());
    let net = Network::new(
        [1, 2, 4],
        vec![Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap())],
    )
    .unwrap();
    let x = ArrayD::from_shape_vec(
        IxDyn(&[2, 1, 2, 4]),
        vec![
            1.0,
            1.0 - 2.0 * gap,
            1e6,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0, // sample 0: scale 1e6
            1.0,
            1.0 - 2.0 * gap,
            1.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0, // sample 1: scale 1
        ],
    )
    .unwrap();
    let near = net.near_kinks(&net.trace(&x).unwrap()).unwrap();
    assert_eq!(near.layers(), &[(0, 1)], "only sample 0's first window");
    assert!(2.0 * gap <= near_kink_tolerance(1e6) && 2.0 * gap > near_kink_tolerance(1.0));
}

/// Identity weights, then `activation`: the pre-activations are the input.
fn activation_kinks(activation: Box<dyn Layer>, x: &[f32]) -> Vec<(usize, usize)> {
    let n = x.len();
    let net = Network::new(
        [n],
        vec![
            Box::new(Dense::new(ndarray::Array2::eye(n), None).unwrap()),
            activation,
        ],
    )
    .unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[1, n]), x.to_vec()).unwrap();
    net.near_kinks(&net.trace(&x).unwrap())
        .unwrap()
        .layers()
        .to_vec()
}

#[test]
fn relu_pre_activations_within_rounding_of_zero_are_flagged_exact_zeros_are_not() {
    assert_eq!(activation_kinks(Box::new(ReLU), &[1.0, 1e-9]), [(1, 1)]);
    assert_eq!(
        activation_kinks(Box::new(ReLU), &[-2.0, -1e-9, 3e-9]),
        [(1, 2)]
    );
    assert!(activation_kinks(Box::new(ReLU), &[1.0, 0.1]).is_empty());
    assert!(activation_kinks(Box::new(ReLU), &[1.0, -0.1]).is_empty());
    // An exact 0 (a dead unit, or a ReLU's output fed to another ReLU) is not flagged.
    assert!(activation_kinks(Box::new(ReLU), &[1.0, 0.0, 0.0]).is_empty());
    // Relative to the layer's scale: 1e-9 is far from 0 when the largest input is 1e-6.
    assert!(activation_kinks(Box::new(ReLU), &[1e-6, 1e-9]).is_empty());
    // ReLU6's lower bound is a kink at 0; its upper bound is not one that moves relevance.
    assert_eq!(
        activation_kinks(Box::new(Clip::relu6()), &[5.0, 1e-9]),
        [(1, 1)]
    );
    let six_less = f32::from_bits(6.0f32.to_bits() - 1);
    assert!(activation_kinks(Box::new(Clip::relu6()), &[6.0, six_less]).is_empty());
    assert!(activation_kinks(Box::new(Clip::new(-1.0, 1.0).unwrap()), &[1.0, 1e-9]).is_empty());
    assert_eq!(
        activation_kinks(Box::new(LeakyReLU::default()), &[1.0, -1e-9]),
        [(1, 1)]
    );
    // Layers without a kink that decides relevance count nothing.
    assert!(activation_kinks(Box::new(klrp::layers::Tanh), &[1.0, 1e-9]).is_empty());
}

#[test]
fn a_near_tie_moves_relevance_and_the_explanation_says_so() {
    // The two largest inputs 1 ulp apart: which wins decides where all the relevance goes.
    let net = Network::new(
        [1, 1, 2],
        vec![
            Box::new(MaxPool2d::new((1, 2), (1, 2), (0, 0)).unwrap()),
            Box::new(Flatten),
            Box::new(Dense::new(array![[2.0]], None).unwrap()),
        ],
    )
    .unwrap();
    let up = f32::from_bits(1.0f32.to_bits() + 1);
    let relevance = |a: f32, b: f32| {
        let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![a, b]).unwrap();
        let t = net.trace(&x).unwrap();
        let init = t.output_init(&[0]).unwrap();
        let r = net
            .propagate(
                &t,
                init,
                &Composite::k_lrp(),
                &PerLayer::new(Identity),
                false,
            )
            .unwrap();
        r.to_f64().iter().copied().collect::<Vec<_>>()
    };
    let (left, right) = (relevance(up, 1.0), relevance(1.0, up));
    assert!(left[0] > 1.0 && left[1] == 0.0 && right[0] == 0.0 && right[1] > 1.0);
    let spec = ExplainSpec::from_options(&ExplainOptions::default()).unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![up, 1.0]).unwrap();
    let e = spec.run(&net, &x, &Targets::Class(0), false).unwrap();
    assert!(matches!(e.input, RelevanceArray::Real(_)));
    assert_eq!(e.near_kinks.layers(), &[(0, 1)]);
    assert_eq!(
        (e.near_kinks.total(), e.near_kinks.worst()),
        (1, Some((0, 1)))
    );
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![2.0, 1.0]).unwrap();
    let e = spec.run(&net, &x, &Targets::Class(0), false).unwrap();
    assert!(e.near_kinks.is_empty() && e.near_kinks.worst().is_none());
}

#[test]
fn the_bundled_onnx_fixtures_have_no_unit_near_a_kink() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    for model in ["mlp", "cnn_pool", "cnn_bn"] {
        let loaded = klrp::io::onnx::load_onnx_file(root.join(model).join("legacy.onnx")).unwrap();
        let net = loaded.into_network().canonize().unwrap();
        let x = klrp::io::npy::read_npy_file(root.join(model).join("input.npy"))
            .unwrap()
            .to_f32()
            .unwrap();
        let near = net.near_kinks(&net.trace(&x).unwrap()).unwrap();
        assert!(near.is_empty(), "{model}: {near:?}");
    }
}

/// The case: on the reduced VGG-11 fixture (random weights) klrp differs from float64
/// gradient × input where one max-pooling window's two largest inputs are within 1e-6; that
/// window is reported.
#[test]
fn the_vgg11_fixtures_near_tie_is_reported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision/vgg11");
    let net = klrp::io::onnx::load_onnx_file(root.join("model.onnx"))
        .unwrap()
        .into_network()
        .canonize()
        .unwrap();
    let x = klrp::io::npy::read_npy_file(root.join("input.npy"))
        .unwrap()
        .to_f32()
        .unwrap();
    let near = net.near_kinks(&net.trace(&x).unwrap()).unwrap();
    let described: Vec<String> = near
        .layers()
        .iter()
        .map(|&(i, n)| format!("{i} {}: {n}", net.layers()[i].name()))
        .collect();
    eprintln!("vgg11 near kinks: {described:?}");
    assert!(
        near.layers()
            .iter()
            .any(|&(i, _)| net.layers()[i].kind() == klrp::layers::LayerKind::MaxPool),
        "{described:?}"
    );
}
