//! Networks as graphs: hand-computed Add / Concat / Mul cases in every semiring, fan-out ⊕,
//! BatchNorm fusion in graphs, the graph errors, and property tests on random DAGs (LRP-0
//! conservation through residual blocks, agreement with a connection-by-connection reference of
//! the unrolled graph, Boolean = support of Counting, a sample alone = the sample in a batch).

use klrp::layers::{
    Add, BatchNorm2d, Concat, Conv2d, Dense, IdentityLayer, Layer, LeakyReLU, Mul, ReLU, Sigmoid,
};
use klrp::rules::ZeroRule;
use klrp::semiring::{Boolean, Counting, Real, Semiring, Viterbi};
use klrp::{
    Clamp01, Composite, Conversion, Error, GraphBuilder, Network, Node, PerLayer, Source, Threshold,
};
use ndarray::{Array1, Array2, Array4, ArrayD, array};

fn dense(w: Array2<f32>) -> Dense {
    Dense::new(w, None).unwrap()
}

fn real(net: &Network, x: &ArrayD<f32>) -> Vec<f64> {
    net.explain::<Real<f32>, _>(x, &[0], &Composite::k_lrp(), &PerLayer::new(klrp::Identity))
        .unwrap()
        .to_f64()
        .iter()
        .copied()
        .collect()
}

fn counting(net: &Network, x: &ArrayD<f32>, theta: f32) -> Vec<u64> {
    let t = PerLayer::new(Threshold::new(theta).unwrap());
    let r = net
        .explain::<Counting, _>(x, &[0], &Composite::k_lrp(), &t)
        .unwrap();
    r.input().iter().map(|c| c.0).collect()
}

fn boolean(net: &Network, x: &ArrayD<f32>, theta: f32) -> Vec<bool> {
    let t = PerLayer::new(Threshold::new(theta).unwrap());
    let r = net
        .explain::<Boolean, _>(x, &[0], &Composite::k_lrp(), &t)
        .unwrap();
    r.input().iter().map(|b| b.0).collect()
}

fn viterbi(net: &Network, x: &ArrayD<f32>) -> Vec<f64> {
    let r = net
        .explain::<Viterbi, _>(x, &[0], &Composite::viterbi(), &PerLayer::new(Clamp01))
        .unwrap();
    r.to_f64().iter().copied().collect()
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}

/// x = [1, 2]; h = [[2, 0], [1, 1]]·x = [2, 3]; y = h + x = [3, 5]; out = y0 + y1 = 8.
fn residual() -> Network {
    let mut g = GraphBuilder::new([2]);
    let x = g.input();
    let h = g.add(dense(array![[2.0, 0.0], [1.0, 1.0]]), [x]).unwrap();
    let y = g.add(Add, [h, x]).unwrap();
    g.add(dense(array![[1.0, 1.0]]), [y]).unwrap();
    g.build().unwrap()
}

#[test]
fn add_in_every_semiring() {
    let net = residual();
    let x = array![[1.0_f32, 2.0]].into_dyn();
    assert_eq!(net.forward(&x).unwrap(), array![[8.0_f32]].into_dyn());
    // R_y = [3/8, 5/8]; Add: h gets y·h/(h+x) = [1/4, 3/8], x gets [1/8, 1/4];
    // the dense layer sends h back as x0: 1/4 + 3/8·1/3 = 3/8, x1: 3/8·2/3 = 1/4; fan-out: sum.
    close(&real(&net, &x), &[0.5, 0.5]);
    // Θ = [d ≥ 0.35]: y shares [.375, .625] → 1, 1; Add: h [2/3, 3/5] → 1, 1, x [1/3, 2/5] → 0, 1;
    // dense: x0→h0 1, x0→h1 1/3 → 0, x1→h1 2/3 → 1. Counts: x0 = 1, x1 = 1 + 1.
    assert_eq!(counting(&net, &x, 0.35), [1, 2]);
    assert_eq!(boolean(&net, &x, 0.35), [true, true]);
    // Θ = [d ≥ 0.5]: y [0, 1]; h1 (3/5) passes, x1 (2/5) does not; x1→h1 (2/3) passes.
    assert_eq!(counting(&net, &x, 0.5), [0, 1]);
    assert_eq!(boolean(&net, &x, 0.5), [false, true]);
    // Viterbi (max-abs): R_y = [3/5, 1]; Add: h [1, 1], x [1/2, 2/3] → R_h = [3/5, 1],
    // R_x(add) = [3/10, 2/3]; dense: x0→h0 1, x1→h0 0, x0→h1 1/2, x1→h1 1 → [3/5, 1]; ⊕ = max.
    close(&viterbi(&net, &x), &[0.6, 1.0]);
}

#[test]
fn add_rules_follow_the_composite() {
    // Real composites use Zennit's Norm (ε = 1e-6) on the sum whatever the linear rule; k_lrp
    // uses no ε: a zero sum passes nothing.
    let rules = |c: &Composite| {
        let kinds: Vec<_> = residual().layers().iter().map(|l| l.kind()).collect();
        c.assign_kinds(&kinds)[1].clone()
    };
    assert_eq!(
        rules(&Composite::epsilon_gamma_box(-1.0, 1.0).unwrap()).name(),
        "proportional"
    );
    assert_eq!(rules(&Composite::uniform(ZeroRule)).name(), "proportional");
    assert_eq!(rules(&Composite::k_lrp()).name(), "zero");
    assert_eq!(rules(&Composite::viterbi()).name(), "max-abs");
    // x = [1, -1] makes y1 = h1 + x1 = 0 + (-1)... choose x so that a sum is exactly 0:
    // x = [1, -0.5]: h = [2, 0.5], y = [3, 0]. With k_lrp, y1 passes nothing; with ε, it does.
    let net = residual();
    let x = array![[1.0_f32, -0.5]].into_dyn();
    let trace = net.trace(&x).unwrap();
    assert_eq!(
        trace.activation(2).unwrap(),
        &array![[3.0_f32, 0.0]].into_dyn()
    );
    let init = array![[Real(1.0_f32)]].into_dyn();
    let theta = PerLayer::new(klrp::Identity);
    let keep = |c: &Composite| {
        net.propagate(&trace, init.clone(), c, &theta, true)
            .unwrap()
            .node_output(0)
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
    };
    // R_y = [1, 0]·(y/8 → LRP-0 of out = 3): R_y = [3/3, 0/3] = [1, 0].
    let k = keep(&Composite::k_lrp());
    close(&[k[0] as f64, k[1] as f64], &[2.0 / 3.0, 0.0]);
    let e = keep(&Composite::uniform(ZeroRule));
    assert!((e[0] - 2.0 / 3.0).abs() < 1e-6 && e[1] == 0.0, "{e:?}");
}

#[test]
fn concat_in_every_semiring() {
    // a = x0 + x1 = 3; c = [a, x0, x1] = [3, 1, 2]; out = Σ c = 6.
    let mut g = GraphBuilder::new([2]);
    let x = g.input();
    let a = g.add(dense(array![[1.0, 1.0]]), [x]).unwrap();
    let c = g.add(Concat, [a, x]).unwrap();
    g.add(dense(array![[1.0, 1.0, 1.0]]), [c]).unwrap();
    let net = g.build().unwrap();
    assert_eq!(net.layer_output_shape(1), Some(&[3][..]));
    let x = array![[1.0_f32, 2.0]].into_dyn();
    // R_c = [1/2, 1/6, 1/3]; R_a = 1/2 → x: [1/6, 1/3]; slice to x: [1/6, 1/3]; sum.
    close(&real(&net, &x), &[1.0 / 3.0, 2.0 / 3.0]);
    // Θ = [d ≥ 0.3]: c shares [.5, .167, .333] → [1, 0, 1]; a→x [1/3, 2/3] → [1, 1].
    assert_eq!(counting(&net, &x, 0.3), [1, 2]);
    assert_eq!(boolean(&net, &x, 0.3), [true, true]);
    assert_eq!(counting(&net, &x, 0.4), [0, 1]);
    // Viterbi: c [1, 1/3, 2/3]; a→x [1/2, 1] → max(1/2, 1/3), max(1, 2/3).
    close(&viterbi(&net, &x), &[0.5, 1.0]);
}

/// h = [[1, 0], [1, 1]]·x; m = h·σ(h) (SiLU as exported); out = m0 + m1.
fn gated(explicit: bool) -> Network {
    let mut g = GraphBuilder::new([2]);
    let x = g.input();
    let h = g.add(dense(array![[1.0, 0.0], [1.0, 1.0]]), [x]).unwrap();
    let s = g.add(Sigmoid, [h]).unwrap();
    let m = if explicit {
        g.add(Mul::gate(0), [s, h]).unwrap()
    } else {
        g.add(Mul::auto(), [h, s]).unwrap()
    };
    g.add(dense(array![[1.0, 1.0]]), [m]).unwrap();
    g.build().unwrap()
}

#[test]
fn mul_by_a_gate_in_every_semiring() {
    let sigma = |v: f64| 1.0 / (1.0 + (-v).exp());
    let x = array![[1.0_f32, 2.0]].into_dyn();
    for explicit in [false, true] {
        let net = gated(explicit);
        let want_name = if explicit {
            "Mul(gate: operand 0)"
        } else {
            "Mul(gate: operand 1)"
        };
        assert_eq!(net.layers()[2].name(), want_name);
        let (m0, m1) = (sigma(1.0), 3.0 * sigma(3.0));
        let out = m0 + m1;
        // All relevance to h (the gate is a constant weight): R_h = [m0, m1]/out.
        let (r0, r1) = (m0 / out, m1 / out);
        let got = real(&net, &x);
        assert!((got[0] - (r0 + r1 / 3.0)).abs() < 1e-5, "{got:?}");
        assert!((got[1] - r1 * 2.0 / 3.0).abs() < 1e-5, "{got:?}");
        // Θ = [d ≥ 0.3]: R_m = [0, 1] (shares .204, .796); dense: all three shares ≥ 1/3.
        assert_eq!(counting(&net, &x, 0.3), [1, 1]);
        // Θ(d) = [d ≥ 0] counts every path: R_m = [1, 1] → R_h = [1, 1] and nothing through
        // the gate (otherwise R_h = [2, 2]); dense: every input feeds both outputs.
        assert_eq!(counting(&net, &x, 0.0), [2, 2]);
        assert_eq!(boolean(&net, &x, 0.0), [true, true]);
        // Viterbi: R_m = [m0/m1, 1]; dense max-abs: x0→h0 1, x0→h1 1/2, x1→h1 1.
        let v = viterbi(&net, &x);
        close(&v, &[(m0 / m1).max(0.5), 1.0]);
    }
}

#[test]
fn squeeze_and_excitation_gate_broadcasts_over_channels() {
    // x [2, 1, 2]; gate s = σ(per-channel weights) of shape [2, 1, 1] from a 1×2 conv.
    let mut g = GraphBuilder::new([2, 1, 2]);
    let x = g.input();
    let w =
        Array4::from_shape_vec((2, 2, 1, 2), vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
    let z = g.add(Conv2d::new(w, None).unwrap(), [x]).unwrap();
    let s = g.add(Sigmoid, [z]).unwrap();
    let m = g.add(Mul::auto(), [x, s]).unwrap();
    g.add(klrp::layers::Flatten, [m]).unwrap();
    let net = g.build().unwrap();
    assert_eq!(net.output_shape(), &[4]);
    let xv = array![[[[1.0_f32, 2.0]], [[3.0, 4.0]]]].into_dyn();
    let y = net.forward(&xv).unwrap();
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    let want = [sig(1.0), 2.0 * sig(1.0), 3.0 * sig(4.0), 4.0 * sig(4.0)];
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-6);
    }
    // Explaining output 3 (x[1, 0, 1]·s1): Boolean with Θ(d) = [d ≥ 0]: the relevance reaches x
    // only at that element (directly); through the gate it would reach x[1, 0, 1] and x[0, 0, 0].
    let t = PerLayer::new(Threshold::new(0.0).unwrap());
    let r = net
        .explain::<Counting, _>(&xv, &[3], &Composite::k_lrp(), &t)
        .unwrap();
    let got: Vec<u64> = r.input().iter().map(|c| c.0).collect();
    assert_eq!(got, [0, 0, 0, 1]);
}

#[test]
fn fan_out_uses_the_semirings_sum() {
    // Two readers of x: out = w1·x + w2·x through two dense nodes and an Add.
    let mut g = GraphBuilder::new([1]);
    let x = g.input();
    let a = g.add(dense(array![[1.0]]), [x]).unwrap();
    let b = g.add(dense(array![[3.0]]), [x]).unwrap();
    g.add(Add, [a, b]).unwrap();
    let net = g.build().unwrap();
    assert_eq!(net.readers_of(0), [2]);
    assert!(!net.is_chain());
    let x = array![[2.0_f32]].into_dyn();
    // Add shares [1/4, 3/4] (Real, Counting paths: 2, Boolean ∨, Viterbi max(1/3, 1)).
    close(&real(&net, &x), &[1.0]);
    assert_eq!(counting(&net, &x, 0.1), [2]);
    assert_eq!(counting(&net, &x, 0.5), [1]);
    assert_eq!(boolean(&net, &x, 0.5), [true]);
    close(&viterbi(&net, &x), &[1.0]);
    // keep_layers: node_output(i) is the relevance at node i's output.
    let trace = net.trace(&x).unwrap();
    let init = klrp::one_hot::<Counting>(trace.output().shape(), &[0]).unwrap();
    let t = PerLayer::new(Threshold::new(0.1).unwrap());
    let r = net
        .propagate(&trace, init, &Composite::k_lrp(), &t, true)
        .unwrap();
    assert_eq!(
        r.node_output(2)
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(
        r.node_output(0)
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(r.layer(0).unwrap(), r.input());
}

#[test]
fn chains_built_both_ways_agree_and_report_inputs() {
    let layers = || -> Vec<Box<dyn Layer>> {
        vec![
            Box::new(dense(array![[1.0, -1.0], [0.5, 2.0]])),
            Box::new(ReLU),
            Box::new(dense(array![[1.0, 1.0]])),
        ]
    };
    let chain = Network::new([2], layers()).unwrap();
    assert!(chain.is_chain());
    assert_eq!(chain.inputs_of(0), Some(&[Source::Input][..]));
    assert_eq!(chain.inputs_of(2), Some(&[Source::Node(1)][..]));
    let mut nodes = Vec::new();
    for (i, l) in layers().into_iter().enumerate() {
        let from = if i == 0 {
            Source::Input
        } else {
            Source::Node(i - 1)
        };
        nodes.push(Node::boxed(l, [from]));
    }
    let graph = Network::graph([2], nodes).unwrap();
    let x = array![[1.0_f32, 0.5], [-1.0, 2.0]].into_dyn();
    let c = Composite::epsilon_plus_flat();
    let t = PerLayer::new(klrp::Identity);
    let a = chain.explain::<Real<f32>, _>(&x, &[0, 0], &c, &t).unwrap();
    let b = graph.explain::<Real<f32>, _>(&x, &[0, 0], &c, &t).unwrap();
    assert_eq!(a.input(), b.input());
}

fn bn(c: usize) -> BatchNorm2d {
    BatchNorm2d::new(
        Array1::from_elem(c, 2.0),
        Array1::from_elem(c, 0.5),
        Array1::from_elem(c, 0.25),
        Array1::from_elem(c, 3.0),
        1e-3,
    )
    .unwrap()
}

#[test]
fn batchnorm_fuses_into_its_producer_in_a_graph() {
    let conv = || Conv2d::new(Array4::from_elem((2, 2, 1, 1), 0.5), None).unwrap();
    // conv → BN → ReLU, then Add with the input: the BN fuses (conv feeds only the BN).
    let mut g = GraphBuilder::new([2, 2, 2]);
    let x = g.input();
    let c = g.add(conv(), [x]).unwrap();
    let n = g.add(bn(2), [c]).unwrap();
    let r = g.add(ReLU, [n]).unwrap();
    g.add(Add, [r, x]).unwrap();
    let net = g.build().unwrap();
    let xv = ArrayD::from_shape_fn(vec![1, 2, 2, 2], |i| i[3] as f32 - 0.5 * i[1] as f32);
    let before = net.forward(&xv).unwrap();
    let fused = net.canonize().unwrap();
    assert_eq!(fused.layers()[1].name(), IdentityLayer.name());
    let after = fused.forward(&xv).unwrap();
    for (a, b) in before.iter().zip(after.iter()) {
        assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
    }
    // The conv's output is also read by the Add: fusing would change the Add's input, so the
    // BatchNorm stays, as a standalone linear layer (issue #29; this used to be an error), and
    // the conv keeps its weights.
    let mut g = GraphBuilder::new([2, 2, 2]);
    let x = g.input();
    let c = g.add(conv(), [x]).unwrap();
    let n = g.add(bn(2), [c]).unwrap();
    g.add(Add, [n, c]).unwrap();
    let net = g.build().unwrap();
    let before = net.forward(&xv).unwrap();
    let kept = net.canonize().unwrap();
    assert_eq!(kept.layers()[1].name(), "BatchNorm2d(2, standalone)");
    assert_eq!(kept.layers()[0].name(), conv().name());
    let after = kept.forward(&xv).unwrap();
    for (a, b) in before.iter().zip(after.iter()) {
        assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
    }
    // A BatchNorm on the network input has no producer to fuse into: standalone too.
    let net = Network::graph([2, 2, 2], vec![Node::new(bn(2), [Source::Input])]).unwrap();
    let kept = net.canonize().unwrap();
    assert_eq!(kept.layers()[0].name(), "BatchNorm2d(2, standalone)");
}

fn graph_error(nodes: Vec<Node>) -> (usize, String) {
    match Network::graph([2], nodes) {
        Err(e @ Error::Layer { index, .. }) => (index, e.to_string()),
        Err(e) => (usize::MAX, e.to_string()),
        Ok(_) => panic!("the graph was accepted"),
    }
}

#[test]
fn graph_errors_are_clear() {
    let d = || dense(array![[1.0, 0.0], [0.0, 1.0]]);
    // A cycle: node 0 reads node 1, which reads node 0.
    let (_, msg) = graph_error(vec![
        Node::new(Add, [Source::Input, Source::Node(1)]),
        Node::new(d(), [Source::Node(0)]),
    ]);
    assert!(msg.contains("cycle") && msg.contains("[0, 1]"), "{msg}");
    // A node reading itself is a cycle too.
    let (_, msg) = graph_error(vec![Node::new(Add, [Source::Input, Source::Node(0)])]);
    assert!(msg.contains("cycle"), "{msg}");
    // Out of topological order, without a cycle.
    let (_, msg) = graph_error(vec![
        Node::new(d(), [Source::Node(1)]),
        Node::new(d(), [Source::Input]),
    ]);
    assert!(msg.contains("topological order"), "{msg}");
    // A dangling input: a node that does not exist.
    let (i, msg) = graph_error(vec![
        Node::new(d(), [Source::Input]),
        Node::new(d(), [Source::Node(7)]),
    ]);
    assert_eq!(i, 1);
    assert!(msg.contains("node 7, which does not exist"), "{msg}");
    // A dangling node: an output nobody reads.
    let (i, msg) = graph_error(vec![
        Node::new(d(), [Source::Input]),
        Node::new(d(), [Source::Input]),
    ]);
    assert_eq!(i, 0);
    assert!(msg.contains("read by no node"), "{msg}");
    // No inputs.
    let (i, msg) = graph_error(vec![Node::new(d(), [])]);
    assert_eq!(i, 0);
    assert!(msg.contains("no inputs"), "{msg}");
    // Add and Concat with incompatible shapes; Mul without a gate.
    let (i, msg) = graph_error(vec![
        Node::new(dense(array![[1.0, 1.0]]), [Source::Input]),
        Node::new(Add, [Source::Node(0), Source::Input]),
    ]);
    assert_eq!(i, 1);
    assert!(
        msg.contains("Add operand 1") && msg.contains("[1]") && msg.contains("[2]"),
        "{msg}"
    );
    let mut g = GraphBuilder::new([2, 3, 3]);
    let x = g.input();
    let p = g
        .add(
            klrp::layers::MaxPool2d::new((2, 2), (1, 1), (0, 0)).unwrap(),
            [x],
        )
        .unwrap();
    let msg = g.add(Concat, [x, p]).unwrap_err().to_string();
    assert!(msg.contains("Concat operand 1"), "{msg}");
    let (i, msg) = graph_error(vec![
        Node::new(ReLU, [Source::Input]),
        Node::new(Mul::auto(), [Source::Node(0), Source::Input]),
    ]);
    assert_eq!(i, 1);
    assert!(msg.contains("Mul::gate"), "{msg}");
    let msg = Network::new([2], vec![Box::new(Add)])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("two or more"), "{msg}");
    // A single-input layer given two inputs.
    let (i, msg) = graph_error(vec![Node::new(ReLU, [Source::Input, Source::Input])]);
    assert_eq!(i, 0);
    assert!(msg.contains("it takes one"), "{msg}");
    // The builder refuses a source that is not an earlier node, and keeps working after it.
    let mut g = GraphBuilder::new([2]);
    assert!(g.add(ReLU, [Source::Node(0)]).is_err());
    assert!(g.is_empty());
    let x = g.input();
    g.add(LeakyReLU::default(), [x]).unwrap();
    assert_eq!(g.build().unwrap().layers().len(), 1);
}

#[test]
fn viterbi_average_pooling_takes_max_abs_shares() {
    // One 2×2 window [1, -3; 2, 0.5]: max-abs shares |a| / max |a| = [1/3, 1, 2/3, 1/6].
    let x = array![[[[1.0_f32, -3.0], [2.0, 0.5]]]].into_dyn();
    for pool in [
        Box::new(klrp::layers::AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()) as Box<dyn Layer>,
        Box::new(klrp::layers::AdaptiveAvgPool2d::new((1, 1)).unwrap()),
    ] {
        let net = Network::new([1, 2, 2], vec![pool, Box::new(klrp::layers::Flatten)]).unwrap();
        let v = viterbi(&net, &x);
        close(&v, &[1.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 6.0]);
    }
    // Max pooling: winner-take-all by default, max-abs when treated as average.
    let net = Network::new(
        [1, 2, 2],
        vec![
            Box::new(klrp::layers::MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
            Box::new(klrp::layers::Flatten),
        ],
    )
    .unwrap();
    close(&viterbi(&net, &x), &[0.0, 0.0, 1.0, 0.0]);
    let c = Composite::viterbi().with_max_pool_as_average();
    let r = net
        .explain::<Viterbi, _>(&x, &[0], &c, &PerLayer::new(Clamp01))
        .unwrap();
    close(
        &r.to_f64().iter().copied().collect::<Vec<_>>(),
        &[1.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 6.0],
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests on random DAGs.

pub(crate) mod random_dags {
    use super::*;
    use crate::support::connections::{Edge, operand_edges};
    use crate::support::rng::Rng;
    use klrp::layers::{Connectivity, Shares};
    use proptest::prelude::*;

    fn random_dense(rng: &mut Rng, fan_in: usize, fan_out: usize, bias: bool) -> Dense {
        let w = Array2::from_shape_fn((fan_out, fan_in), |_| rng.weight());
        let b = bias.then(|| Array1::from_shape_fn(fan_out, |_| rng.weight()));
        Dense::new(w, b).unwrap()
    }

    /// A random DAG on feature vectors: dense layers, activations, residual sums of tensors of
    /// one size, concatenations, and gated products, every output read; ends in a dense layer
    /// with two outputs.
    pub fn random_dag(rng: &mut Rng, nodes: usize, bias: bool) -> Network {
        let features = 2 + rng.below(2);
        let mut g = GraphBuilder::new([features]);
        let mut tensors: Vec<(Source, usize)> = vec![(g.input(), features)];
        let mut read = vec![false];
        let pick = |rng: &mut Rng, tensors: &[(Source, usize)]| rng.below(tensors.len());
        for _ in 0..nodes {
            let a = pick(rng, &tensors);
            let (src, n) = tensors[a];
            let (node, size, reads) = match rng.below(6) {
                0 | 1 => {
                    let out = 1 + rng.below(3);
                    (
                        g.add(random_dense(rng, n, out, bias), [src]).unwrap(),
                        out,
                        vec![a],
                    )
                }
                2 => {
                    let s = match rng.below(3) {
                        0 => g.add(ReLU, [src]),
                        1 => g.add(LeakyReLU::new(0.25).unwrap(), [src]),
                        _ => g.add(klrp::layers::Tanh, [src]),
                    };
                    (s.unwrap(), n, vec![a])
                }
                3 => {
                    // A residual sum with another tensor of the same size (or with itself).
                    let same: Vec<usize> =
                        (0..tensors.len()).filter(|&t| tensors[t].1 == n).collect();
                    let b = same[rng.below(same.len())];
                    (g.add(Add, [src, tensors[b].0]).unwrap(), n, vec![a, b])
                }
                4 => {
                    let b = pick(rng, &tensors);
                    let size = n + tensors[b].1;
                    (
                        g.add(Concat, [src, tensors[b].0]).unwrap(),
                        size,
                        vec![a, b],
                    )
                }
                _ => {
                    // x·σ(x), SiLU as exported (gate named: x may itself be a sigmoid output).
                    let s = g.add(Sigmoid, [src]).unwrap();
                    tensors.push((s, n));
                    read.push(false);
                    let si = tensors.len() - 1;
                    (g.add(Mul::gate(1), [src, s]).unwrap(), n, vec![a, si])
                }
            };
            for r in reads {
                read[r] = true;
            }
            tensors.push((node, size));
            read.push(false);
        }
        // Everything not read yet (the input included) feeds the final concatenation.
        let unread: Vec<usize> = (0..tensors.len()).filter(|&t| !read[t]).collect();
        let (last, size) = if unread.len() == 1 {
            tensors[unread[0]]
        } else {
            let size = unread.iter().map(|&t| tensors[t].1).sum();
            (
                g.add(Concat, unread.iter().map(|&t| tensors[t].0)).unwrap(),
                size,
            )
        };
        g.add(random_dense(rng, size, 2, bias), [last]).unwrap();
        g.build().unwrap()
    }

    /// Every connection of every node for sample `s`, listed from the layers' shares.
    fn edges(
        net: &Network,
        trace: &klrp::Trace,
        composite: &Composite,
        s: usize,
    ) -> Vec<Vec<Edge>> {
        let rules = composite.assign(net.layers());
        (0..net.layers().len())
            .map(|i| {
                let sources = net.inputs_of(i).unwrap();
                let ins: Vec<&ArrayD<f32>> = sources
                    .iter()
                    .map(|s| trace.activation(s.activation_index()).unwrap())
                    .collect();
                let out = trace.activation(i + 1).unwrap();
                let shares = net.layers()[i].shares_multi(&ins, out, &rules[i]).unwrap();
                let mut list = Vec::new();
                for (b, sh) in shares.iter().enumerate() {
                    // The random DAGs have no pooling and no layers of their own; their linear
                    // layers are dense.
                    assert!(
                        matches!(
                            sh,
                            Shares::Pass
                                | Shares::Disconnected
                                | Shares::Elementwise(_)
                                | Shares::ChannelSlice { .. }
                                | Shares::Linear {
                                    connectivity: Connectivity::Dense { .. },
                                    ..
                                }
                        ),
                        "unexpected shares {sh:?}"
                    );
                    list.extend(operand_edges(b, sh, &ins[b].shape()[1..], s));
                }
                list
            })
            .collect()
    }

    /// The relevance of element `j` of tensor `t` (activation index) by unrolling the graph:
    /// the ⊕ over every path from `j` to the output of `Θ(d) ⊗ … ⊗ init`, one connection at a time.
    fn unrolled<K: Semiring, T: Conversion<K>>(
        net: &Network,
        edges: &[Vec<Edge>],
        theta: &T,
        init: &[K],
        t: usize,
        j: usize,
    ) -> K {
        let count = net.layers().len();
        if t == count {
            return init[j];
        }
        let mut acc = K::zero();
        for node in 0..count {
            for (b, source) in net.inputs_of(node).unwrap().iter().enumerate() {
                if source.activation_index() != t {
                    continue;
                }
                for &(eb, ej, ek, d) in &edges[node] {
                    if eb != b || ej != j {
                        continue;
                    }
                    let r = unrolled(net, edges, theta, init, node + 1, ek);
                    acc = acc.add(match d {
                        None => r,
                        Some(d) => theta.convert(d).mul(r),
                    });
                }
            }
        }
        acc
    }

    fn reference<K: Semiring, T: Conversion<K>>(
        net: &Network,
        x: &ArrayD<f32>,
        targets: &[usize],
        composite: &Composite,
        theta: &T,
    ) -> Vec<Vec<K>> {
        let trace = net.trace(x).unwrap();
        (0..targets.len())
            .map(|s| {
                let e = edges(net, &trace, composite, s);
                let mut init = vec![K::zero(); 2];
                init[targets[s]] = K::one();
                (0..x.shape()[1])
                    .map(|j| unrolled(net, &e, theta, &init, 0, j))
                    .collect()
            })
            .collect()
    }

    fn input(rng: &mut Rng, batch: usize, features: usize) -> ArrayD<f32> {
        ArrayD::from_shape_fn(vec![batch, features], |_| rng.weight())
    }

    fn per_sample<K: Semiring>(r: &ArrayD<K>) -> Vec<Vec<K>> {
        r.outer_iter()
            .map(|s| s.iter().copied().collect())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Every semiring equals the connection-by-connection reference of the unrolled graph,
        /// fan-out included; Boolean is the support of Counting; a sample alone gives what it
        /// gives in the batch.
        #[test]
        fn dag_relevance_matches_the_unrolled_reference(seed in any::<u64>(), nodes in 1usize..7) {
            let mut rng = Rng::new(seed);
            let net = random_dag(&mut rng, nodes, true);
            let x = input(&mut rng, 3, net.input_shape()[0]);
            let targets = [0, 1, rng.below(2)];
            let theta_b = Threshold::new(0.2 + 0.1 * rng.below(4) as f32).unwrap();
            let k_lrp = Composite::k_lrp();
            let vit = Composite::viterbi();
            let eps = Composite::uniform(klrp::rules::EpsilonRule::new(0.1).unwrap());

            let cnt = net.explain::<Counting, _>(&x, &targets, &k_lrp, &PerLayer::new(theta_b)).unwrap();
            let want = reference::<Counting, _>(&net, &x, &targets, &k_lrp, &theta_b);
            prop_assert_eq!(per_sample(cnt.input()), want);

            let boo = net.explain::<Boolean, _>(&x, &targets, &k_lrp, &PerLayer::new(theta_b)).unwrap();
            let want = reference::<Boolean, _>(&net, &x, &targets, &k_lrp, &theta_b);
            prop_assert_eq!(per_sample(boo.input()), want);
            for (b, c) in boo.input().iter().zip(cnt.input()) {
                prop_assert_eq!(b.0, c.0 != 0, "Boolean is the support of Counting");
            }

            let v = net.explain::<Viterbi, _>(&x, &targets, &vit, &PerLayer::new(Clamp01)).unwrap();
            let want = reference::<Viterbi, _>(&net, &x, &targets, &vit, &Clamp01);
            for (g, w) in per_sample(v.input()).iter().flatten().zip(want.iter().flatten()) {
                prop_assert!((g.0 - w.0).abs() <= 1e-6, "viterbi {:?} vs {:?}", g, w);
            }

            let r = net.explain::<Real<f32>, _>(&x, &targets, &eps, &PerLayer::new(klrp::Identity)).unwrap();
            let want = reference::<Real<f32>, _>(&net, &x, &targets, &eps, &klrp::Identity);
            let scale = want.iter().flatten().fold(1.0_f32, |m, v| m.max(v.0.abs()));
            for (g, w) in per_sample(r.input()).iter().flatten().zip(want.iter().flatten()) {
                prop_assert!((g.0 - w.0).abs() <= 1e-4 * scale, "real {:?} vs {:?}", g, w);
            }

            // A sample alone = the same sample in the batch (exact semirings bit for bit).
            for s in 0..3 {
                let xs = x.slice(ndarray::s![s..s + 1, ..]).to_owned().into_dyn();
                let alone = net.explain::<Counting, _>(&xs, &targets[s..s + 1], &k_lrp, &PerLayer::new(theta_b)).unwrap();
                prop_assert_eq!(&per_sample(alone.input())[0], &per_sample(cnt.input())[s]);
                let alone = net.explain::<Viterbi, _>(&xs, &targets[s..s + 1], &vit, &PerLayer::new(Clamp01)).unwrap();
                prop_assert_eq!(&per_sample(alone.input())[0], &per_sample(v.input())[s]);
                let alone = net.explain::<Real<f32>, _>(&xs, &targets[s..s + 1], &eps, &PerLayer::new(klrp::Identity)).unwrap();
                for (g, w) in per_sample(alone.input())[0].iter().zip(&per_sample(r.input())[s]) {
                    prop_assert!((g.0 - w.0).abs() <= 1e-6 * scale, "alone {:?} vs batch {:?}", g, w);
                }
            }
        }

        /// LRP-0 without biases (and the sum without ε) conserves relevance through residual
        /// blocks: Σ input relevance = Σ init.
        #[test]
        fn lrp0_conserves_relevance_through_residual_blocks(seed in any::<u64>(), blocks in 1usize..4) {
            let mut rng = Rng::new(seed);
            let width = 2 + rng.below(3);
            let mut g = GraphBuilder::new([width]);
            let mut x = g.input();
            for _ in 0..blocks {
                let h = g.add(random_dense(&mut rng, width, width, false), [x]).unwrap();
                let h = g.add(ReLU, [h]).unwrap();
                let h = g.add(random_dense(&mut rng, width, width, false), [h]).unwrap();
                x = g.add(Add, [h, x]).unwrap();
            }
            g.add(random_dense(&mut rng, width, 2, false), [x]).unwrap();
            let net = g.build().unwrap();
            let xs = ArrayD::from_shape_fn(vec![2, width], |_| rng.weight());
            let trace = net.trace(&xs).unwrap();
            // Stay away from near-zero denominators, where LRP-0 amplifies rounding without bound.
            let min_abs = trace.activations()[1..]
                .iter()
                .flat_map(|a| a.iter())
                .filter(|v| **v != 0.0)
                .fold(f32::INFINITY, |m, v| m.min(v.abs()));
            prop_assume!(min_abs > 1e-2);
            let init = trace.output_init(&[0, 1]).unwrap();
            let r = net
                .propagate(&trace, init, &Composite::k_lrp(), &PerLayer::new(klrp::Identity), true)
                .unwrap();
            let mass: f64 = r.input().iter().map(|v| f64::from(v.0.abs())).sum();
            for (s, delta) in r.conservation_delta().into_iter().enumerate() {
                let out: f64 = r.init().outer_iter().nth(s).unwrap().iter().map(|v| f64::from(v.0)).sum();
                prop_assume!(out.abs() > 1e-3);
                prop_assert!(delta.abs() <= 1e-4 * (1.0 + mass), "sample {s}: Δ = {delta}, out {out}");
            }
        }
    }
}
