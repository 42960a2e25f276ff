//! Issue #29: ceil-mode pooling and `count_include_pad`, `ReduceMean`/`ReduceSum`, and standalone
//! BatchNorm (one no linear layer produces alone): hand-computed cases, invariants, the ONNX
//! operators and their errors.

use crate::support::onnx_writer as w;

use klrp::io::onnx::parse_onnx;
use klrp::kernels::{propagate, propagate_reference};
use klrp::layers::{
    AvgPool2d, BatchNorm2d, ChannelAffine, Dense, Flatten, Layer, LayerKind, MaxPool2d, ReLU,
    Reduce, ReduceOp, StandaloneBatchNorm,
};
use klrp::rules::{
    EpsilonRule, GammaRule, MaxAbsRule, ProportionalRule, Rule, ZPlusRule, ZeroRule,
};
use klrp::semiring::{Boolean, Counting, Real, Viterbi};
use klrp::{Clamp01, Composite, Error, Identity, Network, PerLayer, Threshold, one_hot};
use ndarray::{Array1, Array2, ArrayD, IxDyn, array};
use w::{Attr, model, node, tensor_i64, tensor_raw, value_info};

fn close(a: &ArrayD<f32>, b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

/// `x[i][j] = 5i + j + 1` on one 5×5 channel.
fn grid5() -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[1, 1, 5, 5]), |i| (5 * i[2] + i[3] + 1) as f32)
}

/// 5×5, kernel 2, stride 2, ceil mode: 3×3 windows, the last row and column of windows one input
/// wide. Their divisor is the window clipped to the (unpadded) input in both `count_include_pad`
/// modes, as PyTorch divides: 2 at the edges, 1 in the corner, not the kernel area 4.
#[test]
fn ceil_mode_5x5_kernel_2_stride_2_by_hand() {
    let x = grid5();
    let max = MaxPool2d::new((2, 2), (2, 2), (0, 0))
        .unwrap()
        .with_ceil_mode(true);
    assert_eq!(max.output_shape(&[1, 5, 5]).unwrap(), [1, 3, 3]);
    let floor = MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap();
    assert_eq!(floor.output_shape(&[1, 5, 5]).unwrap(), [1, 2, 2]);
    close(
        &max.forward(&x).unwrap(),
        &[7., 9., 10., 17., 19., 20., 22., 24., 25.],
        0.0,
    );
    // Windows: rows {0,1}, {2,3}, {4}; columns likewise.
    // (0,2): 5, 10 → 7.5; (2,0): 21, 22 → 21.5; (2,2): 25 → 25.
    let want = [4., 6., 7.5, 14., 16., 17.5, 21.5, 23.5, 25.];
    for include in [true, false] {
        let avg = AvgPool2d::new((2, 2), (2, 2), (0, 0))
            .unwrap()
            .with_ceil_mode(true)
            .with_count_include_pad(include);
        close(&avg.forward(&x).unwrap(), &want, 1e-6);
    }
}

/// 6×6, kernel 3, stride 2, padding 1, ceil mode: 4 windows per axis starting at −1, 1, 3, 5; the
/// last runs past the padded input [−1, 7). With `count_include_pad` the divisor is the window
/// clipped to the padded input (rows 3, 3, 3, 2), without it the in-bounds count (2, 3, 3, 1).
/// On an all-ones input the output is (in-bounds / divisor) per axis, multiplied.
#[test]
fn ceil_mode_divisors_with_padding_by_hand() {
    let ones = ArrayD::ones(IxDyn(&[1, 1, 6, 6]));
    let pool = AvgPool2d::new((3, 3), (2, 2), (1, 1))
        .unwrap()
        .with_ceil_mode(true);
    assert_eq!(pool.output_shape(&[1, 6, 6]).unwrap(), [1, 4, 4]);
    let f = [2.0 / 3.0, 1.0, 1.0, 0.5];
    let want: Vec<f32> = (0..16).map(|i| f[i / 4] * f[i % 4]).collect();
    close(&pool.forward(&ones).unwrap(), &want, 1e-6);
    let without = pool.with_count_include_pad(false);
    close(&without.forward(&ones).unwrap(), &[1.0; 16], 1e-6);
    // A window that would start in the right padding is dropped: 5 + 2·1 − 2 = 5, ⌈5/2⌉ + 1 = 4
    // windows, the 4th starting at 5 = n + pad → 3.
    let k2 = AvgPool2d::new((2, 2), (2, 2), (1, 1))
        .unwrap()
        .with_ceil_mode(true);
    assert_eq!(k2.output_shape(&[1, 5, 5]).unwrap(), [1, 3, 3]);
    let max = MaxPool2d::new((2, 2), (2, 2), (1, 1))
        .unwrap()
        .with_ceil_mode(true);
    // Windows rows {0}, {1,2}, {3,4}: padding never wins.
    close(
        &max.forward(&grid5()).unwrap(),
        &[1., 3., 5., 11., 13., 15., 21., 23., 25.],
        0.0,
    );
}

#[test]
fn kernel_larger_than_padded_input_is_an_error() {
    for layer in [
        Box::new(
            MaxPool2d::new((3, 3), (1, 1), (0, 0))
                .unwrap()
                .with_ceil_mode(true),
        ) as Box<dyn Layer>,
        Box::new(AvgPool2d::new((5, 5), (2, 2), (1, 1)).unwrap()),
    ] {
        let err = Network::new([1, 2, 2], vec![layer]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Layer { index: 0, .. }), "{msg}");
        assert!(
            msg.contains("kernel is larger than the input padded"),
            "{msg}"
        );
    }
}

/// A chain over `[2, 5, 5]`: ReLU, standalone BN, ceil-mode max pool, ceil-mode average pool,
/// a mean over the channels, Flatten, Dense.
fn mixed_net() -> Network {
    let bn = BatchNorm2d::new(
        array![1.5, -0.5],
        array![0.25, 0.5],
        array![0.1, -0.2],
        array![0.5, 2.0],
        1e-5,
    )
    .unwrap();
    let w = Array2::from_shape_fn((3, 4), |(k, j)| ((k * 4 + j) % 5) as f32 * 0.3 - 0.5);
    Network::new(
        [2, 5, 5],
        vec![
            Box::new(ReLU),
            Box::new(bn),
            Box::new(
                MaxPool2d::new((2, 2), (2, 2), (0, 0))
                    .unwrap()
                    .with_ceil_mode(true),
            ),
            Box::new(
                AvgPool2d::new((2, 2), (2, 2), (1, 1))
                    .unwrap()
                    .with_ceil_mode(true)
                    .with_count_include_pad(false),
            ),
            Box::new(Reduce::new(ReduceOp::Mean, &[1], true).unwrap()),
            Box::new(Flatten),
            Box::new(Dense::new(w, Some(array![0.1, -0.1, 0.0])).unwrap()),
        ],
    )
    .unwrap()
    .canonize()
    .unwrap()
}

fn inputs(n: usize) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[n, 2, 5, 5]), |i| {
        ((i[0] * 37 + i[1] * 13 + i[2] * 7 + i[3] * 3) % 17) as f32 * 0.25 - 1.5
    })
}

#[test]
fn mixed_net_shapes_and_kinds() {
    let net = mixed_net();
    assert_eq!(net.layers()[1].name(), "BatchNorm2d(2, standalone)");
    assert_eq!(net.layer_output_shape(2), Some(&[2, 3, 3][..]));
    assert_eq!(net.layer_output_shape(3), Some(&[2, 2, 2][..]));
    assert_eq!(net.layer_output_shape(4), Some(&[1, 2, 2][..]));
    // Which rule each composite gives the standalone BN (kind Normalization: the dense rule,
    // never the first-linear flat / z^B) and the reduction (kind AvgPool: proportional).
    let names = |c: Composite| -> Vec<&'static str> {
        c.assign(net.layers()).iter().map(Rule::name).collect()
    };
    assert_eq!(names(Composite::k_lrp())[1], "zero");
    assert_eq!(names(Composite::viterbi())[1], "max-abs");
    assert_eq!(names(Composite::epsilon_plus_flat())[1], "epsilon");
    assert_eq!(
        names(Composite::epsilon_gamma_box(-1.0, 1.0).unwrap())[1],
        "epsilon"
    );
    assert_eq!(names(Composite::epsilon_alpha2_beta1())[1], "epsilon");
    assert_eq!(names(Composite::k_lrp())[4], "proportional");
    assert_eq!(names(Composite::viterbi())[4], "max-abs");
    assert_eq!(names(Composite::epsilon_plus_flat())[6], "flat");
}

/// Boolean relevance is the support of Counting relevance, and every sample's relevance is the
/// same alone as in the batch, through the new layers.
#[test]
fn boolean_is_counting_support_and_samples_are_independent() {
    let net = mixed_net();
    let x = inputs(3);
    let targets = [0, 1, 2];
    let theta = PerLayer::new(Threshold::new(0.05).unwrap());
    let c = Composite::k_lrp();
    let counts = net
        .explain::<Counting, _>(&x, &targets, &c, &theta)
        .unwrap();
    let masks = net.explain::<Boolean, _>(&x, &targets, &c, &theta).unwrap();
    assert!(counts.input().iter().any(|v| v.0 > 0));
    for (n, b) in counts.input().iter().zip(masks.input()) {
        assert_eq!(n.0 > 0, b.0);
    }
    let real = net
        .explain::<Real<f32>, _>(
            &x,
            &targets,
            &Composite::uniform(EpsilonRule::default()),
            &PerLayer::new(Identity),
        )
        .unwrap();
    let vit = net
        .explain::<Viterbi, _>(&x, &targets, &Composite::viterbi(), &PerLayer::new(Clamp01))
        .unwrap();
    for (s, xs) in Network::samples(&x).enumerate() {
        let t = [targets[s]];
        let one = net.explain::<Counting, _>(&xs, &t, &c, &theta).unwrap();
        assert_eq!(
            one.input().index_axis(ndarray::Axis(0), 0),
            counts.input().index_axis(ndarray::Axis(0), s)
        );
        let one = net
            .explain::<Real<f32>, _>(
                &xs,
                &t,
                &Composite::uniform(EpsilonRule::default()),
                &PerLayer::new(Identity),
            )
            .unwrap();
        for (a, b) in one
            .input()
            .iter()
            .zip(real.input().index_axis(ndarray::Axis(0), s))
        {
            assert!(
                (a.0 - b.0).abs() <= 1e-6 * (1.0 + b.0.abs()),
                "{a:?} vs {b:?}"
            );
        }
        let one = net
            .explain::<Viterbi, _>(&xs, &t, &Composite::viterbi(), &PerLayer::new(Clamp01))
            .unwrap();
        assert_eq!(
            one.input().index_axis(ndarray::Axis(0), 0),
            vit.input().index_axis(ndarray::Axis(0), s)
        );
    }
}

/// The fast kernels equal the per-connection reference on the new geometries (ceil-mode windows
/// with partial edges, a reduction's windows, the standalone BN's depthwise 1×1 convolution), in
/// Real and Counting, for every rule these layers take.
#[test]
fn kernels_equal_the_reference_on_the_new_layers() {
    let net = mixed_net();
    let x = inputs(2);
    let trace = net.trace(&x).unwrap();
    let rules: [(usize, Rule); 8] = [
        (1, ZeroRule.into()),
        (1, EpsilonRule::default().into()),
        (1, GammaRule::new(0.25, 1e-6).unwrap().into()),
        (1, ZPlusRule::default().into()),
        (1, MaxAbsRule::default().into()),
        (2, ProportionalRule::default().into()),
        (3, ProportionalRule::default().into()),
        (4, MaxAbsRule::default().into()),
    ];
    for (i, rule) in rules {
        let a_in = trace.activation(i).unwrap();
        let a_out = trace.activation(i + 1).unwrap();
        let shares = net.layers()[i].shares(a_in, a_out, &rule).unwrap();
        let r = ArrayD::from_shape_vec(
            a_out.raw_dim(),
            (0..a_out.len())
                .map(|k| Real((k % 5) as f32 * 0.5 - 0.75))
                .collect(),
        )
        .unwrap();
        let fast = propagate(&shares, &Identity, &r, a_in.shape()).unwrap();
        let reference = propagate_reference(&shares, &Identity, &r, a_in.shape()).unwrap();
        for (a, b) in fast.iter().zip(&reference) {
            assert!(
                (a.0 - b.0).abs() <= 1e-5 * (1.0 + b.0.abs()),
                "layer {i} {}: {a:?} vs {b:?}",
                rule.name()
            );
        }
        let rc = r.mapv(|v| Counting((v.0.abs() * 4.0) as u64));
        let theta = Threshold::new(0.1).unwrap();
        let fast = propagate(&shares, &theta, &rc, a_in.shape()).unwrap();
        let reference = propagate_reference(&shares, &theta, &rc, a_in.shape()).unwrap();
        assert_eq!(fast, reference, "layer {i} {}", rule.name());
    }
}

/// A standalone BN's LRP-0 relevance by hand: `y = s·x + t`, `R_x = s·x / y · R_y`.
/// x = [1, 2], s = [2, −1], t = [1, 0.5]: y = [3, −1.5]; a Dense [1, 1] gives z = 1.5 and
/// R_y = y / z = [2, −1]; then R_x = [(2·1/3)·2, (−1·2/−1.5)·(−1)] = [4/3, −4/3].
#[test]
fn standalone_batchnorm_relevance_by_hand() {
    let bn = StandaloneBatchNorm::new(&ChannelAffine {
        scale: vec![2.0, -1.0],
        shift: vec![1.0, 0.5],
    })
    .unwrap();
    let net = Network::new(
        [2],
        vec![
            Box::new(bn),
            Box::new(Dense::new(array![[1.0, 1.0]], None).unwrap()),
        ],
    )
    .unwrap();
    let x = array![[1.0_f32, 2.0]].into_dyn();
    close(&net.forward(&x).unwrap(), &[1.5], 1e-6);
    let r = net
        .explain::<Real<f32>, _>(&x, &[0], &Composite::k_lrp(), &PerLayer::new(Identity))
        .unwrap();
    let got = r.input().mapv(|v| v.0);
    close(&got, &[4.0 / 3.0, -4.0 / 3.0], 1e-6);
}

/// A standalone BN on `[C, H, W]` equals its unrolled diagonal dense layer (weight `s_c` on the
/// diagonal, bias `t_c`) in every semiring and every rule a uniform composite gives both.
#[test]
fn standalone_batchnorm_equals_its_diagonal_dense_layer() {
    let (c, h, wd) = (2, 2, 3);
    let scale = vec![1.5, -0.75];
    let shift = vec![0.25, -0.5];
    let n = c * h * wd;
    let diag = Array2::from_shape_fn(
        (n, n),
        |(k, j)| if j == k { scale[j / (h * wd)] } else { 0.0 },
    );
    let bias = Array1::from_shape_fn(n, |k| shift[k / (h * wd)]);
    let head = Array2::from_shape_fn((2, n), |(k, j)| ((k + 2 * j) % 5) as f32 * 0.4 - 0.7);
    let bn = StandaloneBatchNorm::new(&ChannelAffine {
        scale: scale.clone(),
        shift: shift.clone(),
    })
    .unwrap();
    let standalone = Network::new(
        [c, h, wd],
        vec![
            Box::new(ReLU),
            Box::new(bn),
            Box::new(Flatten),
            Box::new(Dense::new(head.clone(), None).unwrap()),
        ],
    )
    .unwrap();
    let unrolled = Network::new(
        [c, h, wd],
        vec![
            Box::new(ReLU),
            Box::new(Flatten),
            Box::new(Dense::new(diag, Some(bias)).unwrap()),
            Box::new(Dense::new(head, None).unwrap()),
        ],
    )
    .unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[2, c, h, wd]), |i| {
        ((i[0] * 5 + i[1] * 3 + i[2] * 2 + i[3]) % 7) as f32 * 0.5 - 1.0
    });
    let a = standalone.forward(&x).unwrap();
    let b = unrolled.forward(&x).unwrap();
    close(&a, b.as_slice().unwrap(), 1e-6);
    let rules: [Rule; 5] = [
        ZeroRule.into(),
        EpsilonRule::default().into(),
        GammaRule::new(0.25, 1e-6).unwrap().into(),
        ZPlusRule::default().into(),
        MaxAbsRule::default().into(),
    ];
    for rule in rules {
        let comp = Composite::uniform(rule.clone());
        let ra = standalone
            .explain::<Real<f32>, _>(&x, &[0, 1], &comp, &PerLayer::new(Identity))
            .unwrap();
        let rb = unrolled
            .explain::<Real<f32>, _>(&x, &[0, 1], &comp, &PerLayer::new(Identity))
            .unwrap();
        for (p, q) in ra.input().iter().zip(rb.input()) {
            assert!(
                (p.0 - q.0).abs() <= 1e-5 * (1.0 + q.0.abs()),
                "{}: {p:?} vs {q:?}",
                rule.name()
            );
        }
        let theta = PerLayer::new(Threshold::new(0.2).unwrap());
        let ca = standalone
            .explain::<Counting, _>(&x, &[0, 1], &comp, &theta)
            .unwrap();
        let cb = unrolled
            .explain::<Counting, _>(&x, &[0, 1], &comp, &theta)
            .unwrap();
        assert_eq!(ca.input(), cb.input(), "{}", rule.name());
    }
    let va = standalone
        .explain::<Viterbi, _>(&x, &[0, 1], &Composite::viterbi(), &PerLayer::new(Clamp01))
        .unwrap();
    let vb = unrolled
        .explain::<Viterbi, _>(&x, &[0, 1], &Composite::viterbi(), &PerLayer::new(Clamp01))
        .unwrap();
    assert_eq!(va.input(), vb.input());
}

/// Real LRP-0 conserves relevance through a standalone BN without shift and through sums and
/// means (ε = 0: exactly, up to rounding).
#[test]
fn lrp0_conserves_relevance_through_bn_and_reductions() {
    let bn = StandaloneBatchNorm::new(&ChannelAffine {
        scale: vec![0.5, 2.0],
        shift: vec![0.0, 0.0],
    })
    .unwrap();
    let net = Network::new(
        [2, 5, 5],
        vec![
            Box::new(bn),
            Box::new(Reduce::new(ReduceOp::Sum, &[3], false).unwrap()),
            Box::new(Reduce::new(ReduceOp::Mean, &[1, 2], false).unwrap()),
        ],
    )
    .unwrap();
    assert_eq!(net.output_shape(), &[1]);
    // Positive inputs: no window sums to zero.
    let x = inputs(2).mapv(|v| v.abs() + 0.1);
    let zero = ProportionalRule::new(0.0).unwrap();
    let comp = Composite::k_lrp().with_layer(1, zero).with_layer(2, zero);
    let init = one_hot::<Real<f32>>(&[2, 1], &[0, 0]).unwrap();
    let trace = net.trace(&x).unwrap();
    let r = net
        .propagate(&trace, init, &comp, &PerLayer::new(Identity), false)
        .unwrap();
    for d in r.conservation_delta() {
        assert!(d.abs() < 1e-5, "{d}");
    }
}

/// ReduceMean / ReduceSum over several axes, by hand on `x[c][h][w] = 4c + 2h + w` of `[2, 2, 2]`.
#[test]
fn reductions_by_hand() {
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 2, 2]), |i| {
        (4 * i[1] + 2 * i[2] + i[3]) as f32
    });
    type Case<'a> = (ReduceOp, &'a [usize], bool, &'a [usize], &'a [f32]);
    let cases: [Case; 6] = [
        // mean over H, W: channel 0 holds 0..3, channel 1 holds 4..7
        (ReduceOp::Mean, &[2, 3], false, &[2], &[1.5, 5.5]),
        (ReduceOp::Mean, &[2, 3], true, &[2, 1, 1], &[1.5, 5.5]),
        // over the channels: x[0] + x[1] = 2·(2h + w) + 4, halved
        (ReduceOp::Mean, &[1], true, &[1, 2, 2], &[2., 3., 4., 5.]),
        (ReduceOp::Sum, &[1], false, &[2, 2], &[4., 6., 8., 10.]),
        // over C and W (two runs): per h, the sum of 2h + w + 4c over c, w
        (
            ReduceOp::Sum,
            &[1, 3],
            false,
            &[2],
            &[1. + 5. + 0. + 4., 2. + 3. + 6. + 7.],
        ),
        // every sample axis
        (ReduceOp::Mean, &[1, 2, 3], false, &[1], &[3.5]),
    ];
    for (op, axes, keep, shape, want) in cases {
        let r = Reduce::new(op, axes, keep).unwrap();
        assert_eq!(r.output_shape(&[2, 2, 2]).unwrap(), shape, "{axes:?}");
        let y = r.forward(&x).unwrap();
        assert_eq!(&y.shape()[1..], shape);
        close(&y, want, 1e-6);
    }
    // Relevance of a channel sum, proportional without ε: R_j = a_j / y_k · R_k.
    let net = Network::new(
        [2, 2, 2],
        vec![Box::new(Reduce::new(ReduceOp::Sum, &[1], false).unwrap())],
    )
    .unwrap();
    let comp = Composite::k_lrp().with_layer(0, ProportionalRule::new(0.0).unwrap());
    let trace = net.trace(&x).unwrap();
    let init = one_hot::<Real<f32>>(&[1, 2, 2], &[3]).unwrap();
    let r = net
        .propagate(&trace, init, &comp, &PerLayer::new(Identity), false)
        .unwrap();
    // Output (1, 1) = x[0][1][1] + x[1][1][1] = 3 + 7.
    let mut want = [0.0; 8];
    want[3] = 0.3;
    want[7] = 0.7;
    close(&r.input().mapv(|v| v.0), &want, 1e-6);
}

#[test]
fn reduction_errors() {
    assert!(matches!(
        Reduce::new(ReduceOp::Mean, &[0, 1], false),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Reduce::new(ReduceOp::Sum, &[], false),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Reduce::new(ReduceOp::Sum, &[1, 1], false),
        Err(Error::InvalidArgument(_))
    ));
    let out_of_range = Reduce::new(ReduceOp::Mean, &[4], true).unwrap();
    let msg = Network::new([2, 3, 3], vec![Box::new(out_of_range)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("axis 4 is out of range"), "{msg}");
    // Three runs of reduced / kept axes on a 4-axis sample.
    let three = Reduce::new(ReduceOp::Mean, &[1, 3], true).unwrap();
    let err = Network::new([2, 2, 2, 2], vec![Box::new(three)]).unwrap_err();
    assert!(err.to_string().contains("at most two runs"), "{err}");
}

// ONNX

/// A DenseNet-like block: `x` [N, 1, 2, 2] → Conv 1×1 (1 → 2) → Concat(x, conv) → BatchNorm(3)
/// → Relu → Conv 1×1 (3 → 1). The BN reads a Concat, so canonization keeps it standalone; the
/// forward equals a hand computation before and after.
#[test]
fn onnx_densenet_block_loads_and_canonizes() {
    let bytes = model(
        &[
            node("Conv", "conv0", &["x", "W0"], &["c0"], &[]),
            node(
                "Concat",
                "cat",
                &["x", "c0"],
                &["cat"],
                &[Attr::Int("axis", 1)],
            ),
            node(
                "BatchNormalization",
                "bn",
                &["cat", "g", "b", "m", "v"],
                &["n"],
                &[Attr::Float("epsilon", 0.0)],
            ),
            node("Relu", "relu", &["n"], &["r"], &[]),
            node("Conv", "conv1", &["r", "W1"], &["y"], &[]),
        ],
        &[
            tensor_raw("W0", &[2, 1, 1, 1], &[2.0, -1.0]),
            tensor_raw("g", &[3], &[1.0, 2.0, 3.0]),
            tensor_raw("b", &[3], &[0.5, 0.0, -1.0]),
            tensor_raw("m", &[3], &[0.0, 1.0, 0.0]),
            tensor_raw("v", &[3], &[1.0, 4.0, 0.25]),
            tensor_raw("W1", &[1, 3, 1, 1], &[1.0, 1.0, 1.0]),
        ],
        value_info("x", &[None, Some(1), Some(2), Some(2)]),
        value_info("y", &[None, Some(1), Some(2), Some(2)]),
    );
    let net = parse_onnx(&bytes).unwrap().into_network();
    let xs = [1.0_f32, -2.0, 0.5, 3.0];
    let x = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2, 2]), xs.to_vec()).unwrap();
    // Channels after Concat: x, 2x, −x. BN: s = γ/√var = [1, 1, 6], t = β − s·μ = [0.5, −1, −1].
    // y = relu(x + 0.5) + relu(2x − 1) + relu(−6x − 1).
    let relu = |v: f32| v.max(0.0);
    let want: Vec<f32> = xs
        .iter()
        .map(|&v| relu(v + 0.5) + relu(2.0 * v - 1.0) + relu(-6.0 * v - 1.0))
        .collect();
    close(&net.forward(&x).unwrap(), &want, 1e-5);
    let net = net.canonize().unwrap();
    let bn = net
        .layers()
        .iter()
        .position(|l| l.kind() == LayerKind::Normalization)
        .unwrap();
    assert_eq!(net.layers()[bn].name(), "BatchNorm2d(3, standalone)");
    close(&net.forward(&x).unwrap(), &want, 1e-5);
    let r = net
        .explain::<Real<f32>, _>(
            &x,
            &[0],
            &Composite::epsilon_plus_flat(),
            &PerLayer::new(Identity),
        )
        .unwrap();
    assert!(r.input().iter().all(|v| v.0.is_finite()));
}

fn pool_model(op: &str, attrs: &[Attr], hw: i64, out: &[i64]) -> Vec<u8> {
    let out: Vec<Option<i64>> = std::iter::once(None)
        .chain(out.iter().map(|&d| Some(d)))
        .collect();
    model(
        &[node(op, "pool", &["x"], &["y"], attrs)],
        &[],
        value_info("x", &[None, Some(1), Some(hw), Some(hw)]),
        value_info("y", &out),
    )
}

#[test]
fn onnx_ceil_mode_pooling() {
    let k2 = [
        Attr::Ints("kernel_shape", &[2, 2]),
        Attr::Ints("strides", &[2, 2]),
        Attr::Int("ceil_mode", 1),
    ];
    let net = parse_onnx(&pool_model("MaxPool", &k2, 5, &[1, 3, 3]))
        .unwrap()
        .into_network();
    close(
        &net.forward(&grid5()).unwrap(),
        &[7., 9., 10., 17., 19., 20., 22., 24., 25.],
        0.0,
    );
    let attrs = [
        Attr::Ints("kernel_shape", &[3, 3]),
        Attr::Ints("strides", &[2, 2]),
        Attr::Ints("pads", &[1, 1, 1, 1]),
        Attr::Int("ceil_mode", 1),
        Attr::Int("count_include_pad", 1),
    ];
    let net = parse_onnx(&pool_model("AveragePool", &attrs, 6, &[1, 4, 4]))
        .unwrap()
        .into_network();
    let y = net.forward(&ArrayD::ones(IxDyn(&[1, 1, 6, 6]))).unwrap();
    assert!((y[[0, 0, 0, 0]] - 4.0 / 9.0).abs() < 1e-6, "{y:?}");
    assert!((y[[0, 0, 3, 3]] - 0.25).abs() < 1e-6, "{y:?}");
    assert!((y[[0, 0, 0, 3]] - 1.0 / 3.0).abs() < 1e-6, "{y:?}");
    // The kernel larger than the padded input: an error naming the node.
    let big = [
        Attr::Ints("kernel_shape", &[3, 3]),
        Attr::Int("ceil_mode", 1),
    ];
    let msg = parse_onnx(&pool_model("MaxPool", &big, 2, &[1, 1, 1]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("(MaxPool 'pool')"), "{msg}");
    assert!(
        msg.contains("kernel is larger than the input padded"),
        "{msg}"
    );
    let bad = [
        Attr::Ints("kernel_shape", &[2, 2]),
        Attr::Int("ceil_mode", 2),
    ];
    assert!(parse_onnx(&pool_model("MaxPool", &bad, 4, &[1, 3, 3])).is_err());
}

fn reduce_model(
    op: &str,
    attrs: &[Attr],
    axes_input: Option<&[i64]>,
    out: &[Option<i64>],
) -> Vec<u8> {
    let mut inputs = vec!["x"];
    let mut inits = Vec::new();
    if let Some(a) = axes_input {
        inputs.push("axes");
        inits.push(tensor_i64("axes", &[a.len() as i64], a));
    }
    model(
        &[node(op, "red", &inputs, &["y"], attrs)],
        &inits,
        value_info("x", &[None, Some(2), Some(2), Some(2)]),
        value_info("y", out),
    )
}

#[test]
fn onnx_reduce_mean_and_sum() {
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 2, 2]), |i| {
        (4 * i[1] + 2 * i[2] + i[3]) as f32
    });
    // keepdims = 0 over H, W (MNASNet): [N, C].
    let b = reduce_model(
        "ReduceMean",
        &[Attr::Ints("axes", &[2, 3]), Attr::Int("keepdims", 0)],
        None,
        &[None, Some(2)],
    );
    let net = parse_onnx(&b).unwrap().into_network();
    assert_eq!(net.output_shape(), &[2]);
    close(&net.forward(&x).unwrap(), &[1.5, 5.5], 1e-6);
    // keepdims = 1 over H, W (negative axes): the global average pooling it always was.
    let b = reduce_model(
        "ReduceMean",
        &[Attr::Ints("axes", &[-1, -2])],
        None,
        &[None, Some(2), Some(1), Some(1)],
    );
    let m = parse_onnx(&b).unwrap();
    assert_eq!(m.network().layers()[0].name(), "AdaptiveAvgPool2d(1×1)");
    close(&m.into_network().forward(&x).unwrap(), &[1.5, 5.5], 1e-6);
    // Axes as an input (opset 18), over the channels, keepdims = 1.
    let b = reduce_model(
        "ReduceMean",
        &[],
        Some(&[1]),
        &[None, Some(1), Some(2), Some(2)],
    );
    let net = parse_onnx(&b).unwrap().into_network();
    close(&net.forward(&x).unwrap(), &[2., 3., 4., 5.], 1e-6);
    // ReduceSum (axes an input since opset 13) over everything but the batch.
    let b = reduce_model(
        "ReduceSum",
        &[Attr::Int("keepdims", 0)],
        Some(&[1, 2, 3]),
        &[None],
    );
    let net = parse_onnx(&b).unwrap().into_network();
    close(&net.forward(&x).unwrap(), &[28.0], 1e-6);
    // Errors, naming the node: the batch axis, an axis out of range, no axes.
    let b = reduce_model("ReduceMean", &[Attr::Ints("axes", &[0, 2])], None, &[None]);
    let msg = parse_onnx(&b).unwrap_err().to_string();
    assert!(
        msg.contains("'red' (ReduceMean)") && msg.contains("batch axis"),
        "{msg}"
    );
    let b = reduce_model("ReduceSum", &[], Some(&[4]), &[None]);
    let msg = parse_onnx(&b).unwrap_err().to_string();
    assert!(
        msg.contains("(ReduceSum 'red')") && msg.contains("out of range"),
        "{msg}"
    );
    let b = reduce_model("ReduceSum", &[], None, &[None]);
    let msg = parse_onnx(&b).unwrap_err().to_string();
    assert!(msg.contains("batch axis"), "{msg}");
}
