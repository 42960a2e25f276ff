//! Routing layers (issue #29): ONNX `Reshape`, `Transpose`, `Squeeze`, `Unsqueeze`, `Split`,
//! `Slice` and `Gather` imported as `Reshape`/`Route` layers; their forward passes against
//! ndarray's own indexing, a ShuffleNet channel shuffle against the same network with the
//! shuffle folded into the next convolution's weights, relevance conservation, the fast route
//! kernel against the reference in every semiring, sample-in-batch independence and the
//! importer's errors.

use crate::support::onnx_writer::{Attr, model, node, tensor_i64, tensor_raw, value_info};
use crate::support::rng::Rng;
use klrp::kernels::{propagate, propagate_reference};
use klrp::layers::{Conv2d, Flatten, LayerKind, ReLU, Shares};
use klrp::paths::connections::propagate_by_connections;
use klrp::rules::ZeroRule;
use klrp::semiring::{Boolean, Counting, FloatCounting, Real, Semiring, Tropical, Viterbi};
use klrp::{Composite, Explainer, Identity, Init, Network};
use ndarray::{Array1, Array4, ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use std::borrow::Cow;

/// A model of one routing node `op` (named `"route"`) from `x` of per-sample shape `input` to
/// `y` of per-sample shape `output`, with constant inputs `consts` (name, dims, values) and a
/// symbolic batch.
fn one_node(
    op: &str,
    input: &[i64],
    output: &[i64],
    extra_inputs: &[&str],
    consts: &[(&str, &[i64], &[i64])],
    attrs: &[Attr],
) -> Vec<u8> {
    let mut inputs = vec!["x"];
    inputs.extend_from_slice(extra_inputs);
    let dims = |s: &[i64]| -> Vec<Option<i64>> {
        std::iter::once(None)
            .chain(s.iter().map(|&d| Some(d)))
            .collect()
    };
    model(
        &[node(op, "route", &inputs, &["y"], attrs)],
        &consts
            .iter()
            .map(|(n, d, v)| tensor_i64(n, d, v))
            .collect::<Vec<_>>(),
        value_info("x", &dims(input)),
        value_info("y", &dims(output)),
    )
}

/// A batch of `n` samples of `shape` with distinct values.
fn distinct(n: usize, shape: &[usize]) -> ArrayD<f32> {
    let mut full = vec![n];
    full.extend_from_slice(shape);
    let mut k = 0.0f32;
    ArrayD::from_shape_fn(IxDyn(&full), |_| {
        k += 1.0;
        k * 0.5 - 3.0
    })
}

/// The imported network's output on `x`, and the kinds of its layers.
fn run(bytes: &[u8], x: &ArrayD<f32>) -> (ArrayD<f32>, Vec<LayerKind>) {
    let m = klrp::io::onnx::parse_onnx(bytes).unwrap_or_else(|e| panic!("{e}"));
    let net = m.into_network();
    let kinds = net.layers().iter().map(|l| l.kind()).collect();
    (net.forward(x).unwrap(), kinds)
}

fn err_of(bytes: &[u8]) -> String {
    match klrp::io::onnx::parse_onnx(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn transpose_is_ndarrays_permuted_axes() {
    let x = distinct(2, &[2, 3, 4]);
    for perm in [[0i64, 3, 1, 2], [0, 2, 3, 1], [0, 1, 3, 2], [0, -1, -3, -2]] {
        let p: Vec<usize> = perm.iter().map(|&a| a.rem_euclid(4) as usize).collect();
        let want = x.clone().permuted_axes(IxDyn(&p));
        let out_dims: Vec<i64> = p[1..].iter().map(|&a| x.shape()[a] as i64).collect();
        let bytes = one_node(
            "Transpose",
            &[2, 3, 4],
            &out_dims,
            &[],
            &[],
            &[Attr::Ints("perm", &perm)],
        );
        let (y, kinds) = run(&bytes, &x);
        assert_eq!(y, want, "perm {perm:?}");
        assert_eq!(kinds, [LayerKind::Reshape]);
    }
}

#[test]
fn reshape_squeeze_and_unsqueeze_keep_the_element_order() {
    let x = distinct(3, &[6, 4]);
    let flat: Vec<f32> = x.iter().copied().collect();
    // (target, allowzero, per-sample result)
    // (target, allowzero, per-sample result); the declared batch is 3.
    let cases: [(&[i64], i64, &[usize]); 5] = [
        (&[0, 3, -1], 0, &[3, 8]),
        (&[-1, 2, 3, 4], 0, &[2, 3, 4]),
        (&[3, 0, 2, 2], 0, &[6, 2, 2]),
        (&[0, 24], 0, &[24]),
        (&[-1, 4, 6], 1, &[4, 6]),
    ];
    for (target, allowzero, want) in cases {
        let bytes = model(
            &[node(
                "Reshape",
                "route",
                &["x", "s"],
                &["y"],
                &[Attr::Int("allowzero", allowzero)],
            )],
            &[tensor_i64("s", &[target.len() as i64], target)],
            value_info("x", &[Some(3), Some(6), Some(4)]),
            value_info("y", &[Some(3), Some(want[0] as i64)]),
        );
        let (y, kinds) = run(&bytes, &x);
        assert_eq!(&y.shape()[1..], want, "{target:?}");
        assert_eq!(y.iter().copied().collect::<Vec<_>>(), flat, "{target:?}");
        assert!(
            matches!(kinds[..], [LayerKind::Reshape]),
            "{target:?}: {kinds:?}"
        );
    }
    // Squeeze with axes as an input (opset 13) and as an attribute (before 13), and without.
    let x = distinct(2, &[1, 4, 1]);
    let sq_in = one_node(
        "Squeeze",
        &[1, 4, 1],
        &[4],
        &["a"],
        &[("a", &[2], &[1, -1])],
        &[],
    );
    let sq_attr = one_node(
        "Squeeze",
        &[1, 4, 1],
        &[4, 1],
        &[],
        &[],
        &[Attr::Ints("axes", &[1])],
    );
    let sq_all = one_node("Squeeze", &[1, 4, 1], &[4], &[], &[], &[]);
    for (bytes, want) in [(sq_in, &[4][..]), (sq_attr, &[4, 1]), (sq_all, &[4])] {
        let (y, kinds) = run(&bytes, &x);
        assert_eq!(&y.shape()[1..], want);
        assert_eq!(y.iter().collect::<Vec<_>>(), x.iter().collect::<Vec<_>>());
        assert_eq!(kinds, [LayerKind::Reshape]);
    }
    let x = distinct(2, &[4]);
    let un = one_node(
        "Unsqueeze",
        &[4],
        &[1, 4, 1],
        &["a"],
        &[("a", &[2], &[1, -1])],
        &[],
    );
    let (y, _) = run(&un, &x);
    assert_eq!(y.shape(), [2, 1, 4, 1]);
    assert_eq!(y.iter().collect::<Vec<_>>(), x.iter().collect::<Vec<_>>());
}

#[test]
fn slice_is_ndarrays_select_with_onnx_clamping() {
    let x = distinct(2, &[4, 6]);
    // x[:, 1:100, -1:-7:-2] (end clamped, negative start and step): rows 1..4, columns 5, 3, 1.
    let bytes = one_node(
        "Slice",
        &[4, 6],
        &[3, 3],
        &["st", "en", "ax", "sp"],
        &[
            ("st", &[2], &[1, -1]),
            ("en", &[2], &[100, -7]),
            ("ax", &[2], &[1, 2]),
            ("sp", &[2], &[1, -2]),
        ],
        &[],
    );
    let want = x.select(Axis(1), &[1, 2, 3]).select(Axis(2), &[5, 3, 1]);
    let (y, kinds) = run(&bytes, &x);
    assert_eq!(y, want);
    assert_eq!(kinds, [LayerKind::Reshape]);
    // The attribute form (opset < 10), axes defaulting to 0, 1, …: a whole-batch slice of axis 0.
    let bytes = one_node(
        "Slice",
        &[4, 6],
        &[2, 6],
        &[],
        &[],
        &[
            Attr::Ints("starts", &[0, -2]),
            Attr::Ints("ends", &[i64::MAX, i64::MAX]),
        ],
    );
    let (y, _) = run(&bytes, &x);
    assert_eq!(y, x.select(Axis(1), &[2, 3]));
}

#[test]
fn gather_is_ndarrays_select_with_negative_and_repeated_indices() {
    let x = distinct(2, &[4, 3]);
    let bytes = one_node(
        "Gather",
        &[4, 3],
        &[4, 3],
        &["i"],
        &[("i", &[4], &[2, -1, 0, 2])],
        &[Attr::Int("axis", 1)],
    );
    let (y, _) = run(&bytes, &x);
    assert_eq!(y, x.select(Axis(1), &[2, 3, 0, 2]));
    // A 2-D index tensor on the last axis: output [N, 4, 2, 2].
    let bytes = one_node(
        "Gather",
        &[4, 3],
        &[4, 2, 2],
        &["i"],
        &[("i", &[2, 2], &[0, -1, 1, 1])],
        &[Attr::Int("axis", -1)],
    );
    let (y, _) = run(&bytes, &x);
    let want = x
        .select(Axis(2), &[0, 2, 1, 1])
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(&[2, 4, 2, 2]))
        .unwrap();
    assert_eq!(y, want);
    // A scalar index drops the axis: x[:, 1].
    let bytes = one_node(
        "Gather",
        &[4, 3],
        &[3],
        &["i"],
        &[("i", &[], &[1])],
        &[Attr::Int("axis", 1)],
    );
    let (y, _) = run(&bytes, &x);
    assert_eq!(y, x.index_axis(Axis(1), 1).to_owned());
}

/// `Split` into parts concatenated back in another order (so the graph has one output).
fn split_model(sizes: Option<&[i64]>, attrs: &[Attr], parts: usize) -> Vec<u8> {
    let outs: Vec<String> = (0..parts).map(|p| format!("p{p}")).collect();
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let mut inputs = vec!["x"];
    let mut inits = vec![];
    if let Some(s) = sizes {
        inputs.push("sizes");
        inits.push(tensor_i64("sizes", &[s.len() as i64], s));
    }
    let mut attrs_all = vec![Attr::Int("axis", 1)];
    for a in attrs {
        if let Attr::Int(n, v) = a {
            attrs_all.push(Attr::Int(n, *v));
        }
    }
    let mut reversed = outs.clone();
    reversed.reverse();
    model(
        &[
            node("Split", "split", &inputs, &outs, &attrs_all),
            node("Concat", "cat", &reversed, &["y"], &[Attr::Int("axis", 1)]),
        ],
        &inits,
        value_info("x", &[None, Some(6), Some(2)]),
        value_info("y", &[None, Some(6), Some(2)]),
    )
}

#[test]
fn split_outputs_are_routes_read_by_their_readers() {
    let x = distinct(2, &[6, 2]);
    // Sizes as input 1 (opset 13): [2, 4] concatenated back as (part 1, part 0).
    let (y, kinds) = run(&split_model(Some(&[2, 4]), &[], 2), &x);
    assert_eq!(y, x.select(Axis(1), &[2, 3, 4, 5, 0, 1]));
    assert_eq!(
        kinds,
        [LayerKind::Reshape, LayerKind::Reshape, LayerKind::Concat]
    );
    // Equal parts from the outputs' count.
    let (y, _) = run(&split_model(None, &[], 3), &x);
    assert_eq!(y, x.select(Axis(1), &[4, 5, 2, 3, 0, 1]));
    // num_outputs (opset 18): 6 into 4 parts is 2, 2, 2, 0 → refused (an empty part), into 3 fine.
    let (y, _) = run(&split_model(None, &[Attr::Int("num_outputs", 3)], 3), &x);
    assert_eq!(y, x.select(Axis(1), &[4, 5, 2, 3, 0, 1]));
    let m = klrp::io::onnx::parse_onnx(&split_model(Some(&[2, 4]), &[], 2)).unwrap();
    let notes: Vec<_> = m
        .nodes()
        .iter()
        .map(|n| (n.index, n.note.clone()))
        .collect();
    assert_eq!(
        notes,
        [
            (0, Some("output 0 of 2".to_string())),
            (0, Some("output 1 of 2".to_string())),
            (1, None)
        ]
    );
    // An output nothing reads becomes no node.
    let bytes = model(
        &[
            node(
                "Split",
                "split",
                &["x", "sizes"],
                &["a", "b"],
                &[Attr::Int("axis", 1)],
            ),
            node("Relu", "r", &["b"], &["y"], &[]),
        ],
        &[tensor_i64("sizes", &[2], &[1, 5])],
        value_info("x", &[None, Some(6), Some(2)]),
        value_info("y", &[None, Some(5), Some(2)]),
    );
    let (y, kinds) = run(&bytes, &x);
    assert_eq!(y, x.select(Axis(1), &[1, 2, 3, 4, 5]).mapv(|v| v.max(0.0)));
    assert_eq!(kinds, [LayerKind::Reshape, LayerKind::Activation]);
}

/// Channel shuffle with `groups` groups of `C / groups` channels: output channel `c'` reads
/// input channel `perm[c']` (ShuffleNet: `[N, g, C/g, H, W] → transpose(1, 2) → [N, C, H, W]`).
fn shuffle_perm(c: usize, groups: usize) -> Vec<usize> {
    let per = c / groups;
    (0..c).map(|o| (o % groups) * per + o / groups).collect()
}

/// Conv(4 → 6, 1×1) → Relu → channel shuffle (Reshape, Transpose, Reshape) → Conv(6 → 2, 3×3,
/// pad 1) → Flatten, on [N, 4, 4, 4]; and the same network with the shuffle folded into the
/// second convolution's input channels.
fn shuffle_nets(rng: &mut Rng) -> (Vec<u8>, Network) {
    let w1 = Array4::from_shape_fn((6, 4, 1, 1), |_| rng.weight());
    let w2 = Array4::from_shape_fn((2, 6, 3, 3), |_| rng.weight());
    let perm = shuffle_perm(6, 2);
    let mut inv = [0; 6];
    for (o, &c) in perm.iter().enumerate() {
        inv[c] = o;
    }
    let w2_folded = Array4::from_shape_fn((2, 6, 3, 3), |(o, c, i, j)| w2[[o, inv[c], i, j]]);
    let flat = |a: &Array4<f32>| a.iter().copied().collect::<Vec<_>>();
    let bytes = model(
        &[
            node("Conv", "c1", &["x", "W1"], &["a"], &[]),
            node("Relu", "r", &["a"], &["b"], &[]),
            node("Reshape", "r1", &["b", "s1"], &["c"], &[]),
            node(
                "Transpose",
                "t",
                &["c"],
                &["d"],
                &[Attr::Ints("perm", &[0, 2, 1, 3, 4])],
            ),
            node("Reshape", "r2", &["d", "s2"], &["e"], &[]),
            node(
                "Conv",
                "c2",
                &["e", "W2"],
                &["f"],
                &[Attr::Ints("pads", &[1, 1, 1, 1])],
            ),
            node("Flatten", "fl", &["f"], &["y"], &[]),
        ],
        &[
            tensor_raw("W1", &[6, 4, 1, 1], &flat(&w1)),
            tensor_raw("W2", &[2, 6, 3, 3], &flat(&w2)),
            tensor_i64("s1", &[5], &[-1, 2, 3, 4, 4]),
            tensor_i64("s2", &[4], &[0, 6, 4, 4]),
        ],
        value_info("x", &[None, Some(4), Some(4), Some(4)]),
        value_info("y", &[None, Some(32)]),
    );
    let folded = Network::new(
        [4, 4, 4],
        vec![
            Box::new(Conv2d::new(w1, None).unwrap()) as Box<dyn klrp::layers::Layer>,
            Box::new(ReLU),
            Box::new(
                Conv2d::new(w2_folded, None)
                    .unwrap()
                    .with_padding((1, 1))
                    .unwrap(),
            ),
            Box::new(Flatten),
        ],
    )
    .unwrap();
    (bytes, folded)
}

fn lrp0() -> Explainer<Real<f32>, Identity> {
    Explainer::new(Composite::uniform(ZeroRule), Identity).with_init(Init::Logit)
}

#[test]
fn shuffle_block_equals_the_shuffle_folded_into_the_next_conv() {
    let mut rng = Rng::new(29);
    let (bytes, folded) = shuffle_nets(&mut rng);
    let m = klrp::io::onnx::parse_onnx(&bytes).unwrap();
    let ops: Vec<_> = m.network().layers().iter().map(|l| l.name()).collect();
    assert!(
        ops[3].starts_with("Transpose([2, 3, 4, 4] → [3, 2, 4, 4])"),
        "{ops:?}"
    );
    let net = m.into_network();
    let x = ArrayD::from_shape_fn(IxDyn(&[2, 4, 4, 4]), |_| rng.weight());
    // The shuffled activation by hand: channel c' of node 4's output is channel perm[c'] of
    // node 1's (the ReLU).
    let trace = net.trace(&x).unwrap();
    let relu = trace.activation(2).unwrap();
    let shuffled = trace.activation(5).unwrap();
    let perm = shuffle_perm(6, 2);
    for s in 0..2 {
        for (o, &c) in perm.iter().enumerate() {
            assert_eq!(
                shuffled.index_axis(Axis(0), s).index_axis(Axis(0), o),
                relu.index_axis(Axis(0), s).index_axis(Axis(0), c)
            );
        }
    }
    let y = net.forward(&x).unwrap();
    let y_folded = folded.forward(&x).unwrap();
    let diff = y
        .iter()
        .zip(&y_folded)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "logits differ by {diff}");
    // LRP-0: the same input relevance, and conservation (no biases): Σ R_in = logit.
    for target in [0, 13, 31] {
        let r = net.explain_with(&x, vec![target; 2], &lrp0()).unwrap();
        let rf = folded.explain_with(&x, vec![target; 2], &lrp0()).unwrap();
        let d = r
            .input()
            .iter()
            .zip(rf.input())
            .fold(0.0f32, |m, (a, b)| m.max((a.0 - b.0).abs()));
        assert!(d < 1e-4, "target {target}: relevance differs by {d}");
        for s in 0..2 {
            let total: f32 = r.input().index_axis(Axis(0), s).iter().map(|v| v.0).sum();
            let logit = y[[s, target]];
            assert!(
                (total - logit).abs() <= 1e-3 * logit.abs().max(1.0),
                "target {target} sample {s}: Σ R = {total}, logit {logit}"
            );
        }
    }
}

#[test]
fn a_sample_alone_equals_the_sample_in_a_batch() {
    let mut rng = Rng::new(3);
    let (bytes, _) = shuffle_nets(&mut rng);
    let net = klrp::io::onnx::parse_onnx(&bytes).unwrap().into_network();
    let x = ArrayD::from_shape_fn(IxDyn(&[3, 4, 4, 4]), |_| rng.weight());
    let all = net.explain_with(&x, vec![5, 9, 5], &lrp0()).unwrap();
    let vit = net
        .explain_with(&x.mapv(f32::abs), vec![5, 9, 5], &Explainer::viterbi())
        .unwrap();
    for (s, t) in [5, 9, 5].into_iter().enumerate() {
        let one = x.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
        let alone = net.explain_with(&one, t, &lrp0()).unwrap();
        assert_eq!(
            alone.input().index_axis(Axis(0), 0),
            all.input().index_axis(Axis(0), s)
        );
        let alone = net
            .explain_with(&one.mapv(f32::abs), t, &Explainer::viterbi())
            .unwrap();
        assert_eq!(
            alone.input().index_axis(Axis(0), 0),
            vit.input().index_axis(Axis(0), s)
        );
    }
}

/// The fast route kernel, the reference and the per-element connections agree in `K`.
fn check_route<K: Semiring + std::fmt::Debug>(
    sources: &[usize],
    n: usize,
    n_in: usize,
    r: &[K],
) -> Result<(), TestCaseError> {
    let n_out = sources.len();
    let shares = Shares::Route {
        sources: Cow::Borrowed(sources),
    };
    let r_out = ArrayD::from_shape_vec(IxDyn(&[n, n_out]), r.to_vec()).unwrap();
    // Routes pass relevance without Θ: a Θ that maps every share to 0 must change nothing.
    let t = |_: f32| K::zero();
    let fast = propagate(&shares, &t, &r_out, &[n, n_in]).unwrap();
    let slow = propagate_reference(&shares, &t, &r_out, &[n, n_in]).unwrap();
    prop_assert_eq!(&fast, &slow);
    let by_conn = propagate_by_connections(&shares, &t, &r[..n_out], &[n_in], &[n_out]).unwrap();
    prop_assert_eq!(by_conn.view(), slow.index_axis(Axis(0), 0));
    // By hand: input j of sample s is the ⊕ of the outputs reading it (0 if none).
    for s in 0..n {
        for j in 0..n_in {
            let mut want = K::zero();
            for (k, &src) in sources.iter().enumerate() {
                if src == j {
                    want = want.add(r[s * n_out + k]);
                }
            }
            prop_assert_eq!(slow[[s, j]], want);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn route_kernel_equals_the_reference_in_every_semiring(
        n in 1usize..4,
        n_in in 1usize..24,
        raw in proptest::collection::vec(0usize..1000, 1..40),
        vals in proptest::collection::vec(0.0f32..2.0, 160),
        permute in any::<bool>(),
    ) {
        let sources: Vec<usize> = if permute {
            // A permutation of 0..n_in (a transpose).
            let mut p: Vec<usize> = (0..n_in).collect();
            for (k, r) in raw.iter().enumerate().take(n_in) {
                p.swap(k % n_in, r % n_in);
            }
            p
        } else {
            raw.iter().map(|r| r % n_in).collect()
        };
        let m = n * sources.len();
        let v = |k: usize| vals[k % vals.len()];
        check_route(&sources, n, n_in, &(0..m).map(|k| Real(v(k))).collect::<Vec<_>>())?;
        check_route(&sources, n, n_in, &(0..m).map(|k| Boolean(v(k) > 1.0)).collect::<Vec<_>>())?;
        check_route(&sources, n, n_in, &(0..m).map(|k| Counting((v(k) * 3.0) as u64)).collect::<Vec<_>>())?;
        check_route(&sources, n, n_in, &(0..m).map(|k| FloatCounting(f64::from(v(k)))).collect::<Vec<_>>())?;
        check_route(&sources, n, n_in, &(0..m).map(|k| Viterbi(f64::from(v(k)) / 2.0)).collect::<Vec<_>>())?;
        check_route(&sources, n, n_in, &(0..m).map(|k| Tropical(f64::from(v(k)))).collect::<Vec<_>>())?;
        // Real: a route conserves relevance exactly up to rounding (each output goes to one input).
        let r: Vec<Real<f32>> = (0..m).map(|k| Real(v(k))).collect();
        let r_out = ArrayD::from_shape_vec(IxDyn(&[n, sources.len()]), r.clone()).unwrap();
        let shares = Shares::Route { sources: Cow::Borrowed(&sources) };
        let r_in = propagate(&shares, &Identity, &r_out, &[n, n_in]).unwrap();
        let (a, b): (f32, f32) = (r.iter().map(|v| v.0).sum(), r_in.iter().map(|v| v.0).sum());
        prop_assert!((a - b).abs() <= 1e-4 * a.max(1.0), "{} vs {}", a, b);
    }
}

#[test]
fn bad_routing_nodes_are_errors_naming_the_node() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            one_node(
                "Reshape",
                &[6, 4],
                &[5, 5],
                &["s"],
                &[("s", &[3], &[0, 5, 5])],
                &[],
            ),
            "ONNX node 0 'route' (Reshape): Reshape of [N, 6, 4] to [N, 5, 5]: 24 elements per \
             sample cannot become 25",
        ),
        (
            one_node(
                "Reshape",
                &[6, 4],
                &[5],
                &["s"],
                &[("s", &[3], &[0, 5, -1])],
                &[],
            ),
            "24 elements per sample cannot become a multiple of 5",
        ),
        (
            one_node(
                "Reshape",
                &[6, 4],
                &[3, 4],
                &["s"],
                &[("s", &[3], &[-1, 3, 4])],
                &[],
            ),
            "the -1 would not be the batch size",
        ),
        (
            one_node(
                "Reshape",
                &[6, 4],
                &[6, 4],
                &["s"],
                &[("s", &[3], &[6, 0, 4])],
                &[],
            ),
            "the batch axis must stay the first axis",
        ),
        (
            one_node(
                "Transpose",
                &[2, 3],
                &[3, 2],
                &[],
                &[],
                &[Attr::Ints("perm", &[0, 2, 2])],
            ),
            "not a permutation",
        ),
        (
            one_node(
                "Transpose",
                &[2, 3],
                &[3, 2],
                &[],
                &[],
                &[Attr::Ints("perm", &[1, 0, 2])],
            ),
            "ONNX node 0 'route' (Transpose): Transpose with perm [1, 0, 2] moves the batch axis",
        ),
        (
            one_node("Transpose", &[2, 3], &[3, 2], &[], &[], &[]),
            "moves the batch axis",
        ),
        (
            one_node(
                "Gather",
                &[3],
                &[1],
                &["i"],
                &[("i", &[1], &[5])],
                &[Attr::Int("axis", 1)],
            ),
            "Gather index 5 out of range for 3 elements",
        ),
        (
            one_node(
                "Gather",
                &[3],
                &[1],
                &["i"],
                &[("i", &[1], &[-4])],
                &[Attr::Int("axis", 1)],
            ),
            "Gather index -4 out of range",
        ),
        (
            one_node("Gather", &[3], &[1], &["i"], &[("i", &[1], &[0])], &[]),
            "Gather picks from the batch axis",
        ),
        (
            one_node(
                "Gather",
                &[3],
                &[1],
                &["i"],
                &[("i", &[1], &[0])],
                &[Attr::Int("axis", 2)],
            ),
            "Gather axis 2 out of range for rank 2",
        ),
        (
            one_node(
                "Slice",
                &[3],
                &[3],
                &["st", "en"],
                &[("st", &[1], &[1]), ("en", &[1], &[2])],
                &[],
            ),
            "slices the batch axis",
        ),
        (
            one_node(
                "Slice",
                &[3],
                &[1],
                &["st", "en", "ax", "sp"],
                &[
                    ("st", &[1], &[0]),
                    ("en", &[1], &[2]),
                    ("ax", &[1], &[1]),
                    ("sp", &[1], &[0]),
                ],
                &[],
            ),
            "Slice with step 0",
        ),
        (
            one_node("Squeeze", &[2, 3], &[3], &["a"], &[("a", &[1], &[1])], &[]),
            "not a dimension of size 1",
        ),
        (
            one_node("Squeeze", &[1, 3], &[3], &["a"], &[("a", &[1], &[0])], &[]),
            "Squeeze removes the batch axis",
        ),
        (
            one_node(
                "Unsqueeze",
                &[3],
                &[1, 3],
                &["a"],
                &[("a", &[1], &[0])],
                &[],
            ),
            "Unsqueeze puts a new axis before the batch axis",
        ),
        (
            one_node(
                "Unsqueeze",
                &[3],
                &[1, 3],
                &["a"],
                &[("a", &[1], &[5])],
                &[],
            ),
            "Unsqueeze axis 5 out of range",
        ),
        (
            split_model(Some(&[2, 3]), &[], 2),
            "ONNX node 0 'split' (Split): Split sizes [2, 3] do not add up",
        ),
        (
            split_model(None, &[], 4),
            "Split of an axis of 6 into 4 equal parts",
        ),
    ];
    for (bytes, want) in cases {
        let msg = err_of(&bytes);
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    }
    // A Gather's output is bounded before it is built (12 elements in, 150 out, limit 100).
    let bytes = one_node(
        "Gather",
        &[4, 3],
        &[50, 3],
        &["i"],
        &[("i", &[50], &[1; 50])],
        &[Attr::Int("axis", 1)],
    );
    let e = klrp::io::onnx::parse_onnx_with_max_elements(&bytes, 100)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the Gather's output") && e.contains("150"),
        "{e}"
    );
    assert!(klrp::io::onnx::parse_onnx_with_max_elements(&bytes, 150).is_ok());
}

/// A small routed CNN for the path tests: conv → ReLU → channel shuffle → gather of channels
/// (one repeated) → conv → flatten, on [4, 2, 2].
pub fn routed_cnn(rng: &mut Rng) -> Network {
    let w1 = Array4::from_shape_fn((4, 4, 1, 1), |_| rng.weight().abs());
    let w2 = Array4::from_shape_fn((1, 3, 1, 1), |_| rng.weight().abs());
    let b1 = Array1::from_shape_fn(4, |_| rng.weight() * 0.1);
    let flat = |a: &[f32]| a.to_vec();
    let w1v: Vec<f32> = w1.iter().copied().collect();
    let w2v: Vec<f32> = w2.iter().copied().collect();
    let bytes = model(
        &[
            node("Conv", "c1", &["x", "W1", "B1"], &["a"], &[]),
            node("Relu", "r", &["a"], &["b"], &[]),
            node("Reshape", "r1", &["b", "s1"], &["c"], &[]),
            node(
                "Transpose",
                "t",
                &["c"],
                &["d"],
                &[Attr::Ints("perm", &[0, 2, 1, 3, 4])],
            ),
            node("Reshape", "r2", &["d", "s2"], &["e"], &[]),
            node("Gather", "g", &["e", "i"], &["f"], &[Attr::Int("axis", 1)]),
            node("Conv", "c2", &["f", "W2"], &["h"], &[]),
            node("Flatten", "fl", &["h"], &["y"], &[]),
        ],
        &[
            tensor_raw("W1", &[4, 4, 1, 1], &flat(&w1v)),
            tensor_raw("B1", &[4], &flat(b1.as_slice().unwrap())),
            tensor_raw("W2", &[1, 3, 1, 1], &flat(&w2v)),
            tensor_i64("s1", &[5], &[0, 2, 2, 2, 2]),
            tensor_i64("s2", &[4], &[0, 4, 2, 2]),
            tensor_i64("i", &[3], &[3, -1, 0]),
        ],
        value_info("x", &[None, Some(4), Some(2), Some(2)]),
        value_info("y", &[None, Some(4)]),
    );
    klrp::io::onnx::parse_onnx(&bytes).unwrap().into_network()
}
