//! Relevant paths (issue #18): the strongest-path search, per-input strongest paths, path
//! counts, sampling and circuits against brute-force enumeration of every path on tiny random
//! networks (dense, convolution, max and average pooling, residual Add, Concat, gates).

use crate::graph::random_dags::random_dag;
use crate::support::connections::{Edge, operand_edges};
use crate::support::rng::Rng;
use klrp::kernels::propagate_reference;
use klrp::layers::{AvgPool2d, Concat, Conv2d, Dense, Flatten, MaxPool2d, ReLU};
use klrp::paths::connections::propagate_by_connections;
use klrp::paths::{Circuit, Path, RelevanceGraph, paths_json, sample_json};
use klrp::semiring::{Counting, KBest, Semiring, Viterbi};
use klrp::{Clamp01, Composite, Conversion, Explainer, GraphBuilder, Network, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn};

/// Every connection of every node, listed independently of `klrp::paths::connections` (from
/// `kernels::for_each_connection` and the shares' own fields).
fn edges<K: Semiring, T: Conversion<K>>(g: &RelevanceGraph<'_, K, T>) -> Vec<Vec<Edge>> {
    let net = g.network();
    (0..net.layers().len())
        .map(|i| {
            let sources = net.inputs_of(i).unwrap();
            let mut list = Vec::new();
            for (b, sh) in g.shares(i).unwrap().iter().enumerate() {
                let in_shape = g.shape(sources[b].activation_index()).unwrap();
                list.extend(operand_edges(b, sh, in_shape, 0));
            }
            list
        })
        .collect()
}

/// A brute-force path: its steps as (node or −1, index, operand, share).
#[derive(Clone, Debug)]
struct Brute {
    steps: Vec<(i64, usize, usize, f64)>,
    strength: f64,
}

/// Every path of non-zero value from every input element to the target, by depth-first search
/// over the edge lists; each step's value is `Θ(d)` as `f64` (1 without Θ).
fn brute_force<K: Semiring, T: Conversion<K>>(
    g: &RelevanceGraph<'_, K, T>,
    theta: &T,
    target: usize,
) -> Vec<Brute> {
    let net = g.network();
    let all = edges(g);
    let acts = net.layers().len() + 1;
    // readers[t] = (node, operand) reading activation t.
    let mut readers = vec![Vec::new(); acts];
    for i in 0..net.layers().len() {
        for (b, s) in net.inputs_of(i).unwrap().iter().enumerate() {
            readers[s.activation_index()].push((i, b));
        }
    }
    let n_in: usize = g.shape(0).unwrap().iter().product();
    let mut out = Vec::new();
    #[allow(clippy::too_many_arguments)]
    fn dfs<K: Semiring, T: Conversion<K>>(
        t: usize,
        e: usize,
        steps: &mut Vec<(i64, usize, usize, f64)>,
        all: &[Vec<Edge>],
        readers: &[Vec<(usize, usize)>],
        theta: &T,
        target: usize,
        out: &mut Vec<Brute>,
    ) {
        if t == readers.len() - 1 {
            if e == target {
                let strength = steps[1..].iter().rev().fold(1.0, |acc, s| s.3 * acc);
                out.push(Brute {
                    steps: steps.clone(),
                    strength,
                });
            }
            return;
        }
        for &(i, b) in &readers[t] {
            for &(bb, j, k, d) in &all[i] {
                if bb != b || j != e {
                    continue;
                }
                let share = d.map_or(1.0, |d| theta.convert(d).to_f64());
                if share == 0.0 {
                    continue;
                }
                steps.push((i as i64, k, b, share));
                dfs(i + 1, k, steps, all, readers, theta, target, out);
                steps.pop();
            }
        }
    }
    for j in 0..n_in {
        let mut steps = vec![(-1, j, 0, 1.0)];
        dfs(0, j, &mut steps, &all, &readers, theta, target, &mut out);
    }
    out
}

fn key(p: &Path) -> Vec<(i64, usize, usize)> {
    p.steps
        .iter()
        .map(|s| (s.node.map_or(-1, |n| n as i64), s.index, s.operand))
        .collect()
}

fn brute_key(b: &Brute) -> Vec<(i64, usize, usize)> {
    b.steps.iter().map(|s| (s.0, s.1, s.2)).collect()
}

/// Strongest first, then lexicographically by steps: the documented order.
fn sorted(mut v: Vec<Brute>) -> Vec<Brute> {
    v.retain(|b| b.strength > 0.0);
    v.sort_by(|a, b| {
        b.strength
            .total_cmp(&a.strength)
            .then_with(|| brute_key(a).cmp(&brute_key(b)))
    });
    v
}

/// Every node operand's relevance step rebuilt from `connections::outgoing` equals
/// `kernels::propagate_reference` exactly.
fn connections_match_reference<K: Semiring, T: Conversion<K>>(
    g: &RelevanceGraph<'_, K, T>,
    theta: &T,
) {
    let net = g.network();
    for i in 0..net.layers().len() {
        let out_shape = g.shape(i + 1).unwrap();
        let r_out = g.relevance(i + 1).unwrap();
        let r_out_flat: Vec<K> = r_out.iter().copied().collect();
        let mut batch_out = vec![1];
        batch_out.extend_from_slice(out_shape);
        let r_out_b = ArrayD::from_shape_vec(IxDyn(&batch_out), r_out_flat.clone()).unwrap();
        for (b, sh) in g.shares(i).unwrap().iter().enumerate() {
            let src = net.inputs_of(i).unwrap()[b].activation_index();
            let in_shape = g.shape(src).unwrap();
            let mut batch_in = vec![1];
            batch_in.extend_from_slice(in_shape);
            let want = propagate_reference(sh, theta, &r_out_b, &batch_in).unwrap();
            let got =
                propagate_by_connections(sh, theta, &r_out_flat, in_shape, out_shape).unwrap();
            let want: Vec<K> = want.iter().copied().collect();
            let got: Vec<K> = got.iter().copied().collect();
            assert_eq!(got, want, "node {i} operand {b}");
        }
    }
}

/// Checks the Viterbi search against brute force on one network and input.
fn check_viterbi(net: &Network, x: &ArrayD<f32>, what: &str) {
    let ex = Explainer::viterbi();
    let g = RelevanceGraph::new(net, x, 0, &ex).unwrap();
    connections_match_reference(&g, &Clamp01);
    let brute = sorted(brute_force(&g, &Clamp01, 0));
    let k = brute.len() + 3;
    let got = g.strongest(k).unwrap();
    assert_eq!(
        got.len(),
        brute.len(),
        "{what}: number of paths of strength > 0"
    );
    for (r, (p, b)) in got.iter().zip(&brute).enumerate() {
        assert_eq!(p.strength, b.strength, "{what}: rank {r}");
        assert_eq!(key(p), brute_key(b), "{what}: rank {r}");
        let shares: Vec<f64> = p.steps[1..].iter().map(|s| s.share).collect();
        let want: Vec<f64> = b.steps[1..].iter().map(|s| s.3).collect();
        assert_eq!(shares, want, "{what}: rank {r} shares");
    }
    // A shorter list is a prefix of the longer one.
    let top3 = g.strongest(3).unwrap();
    assert_eq!(top3[..], got[..3.min(got.len())]);
    // Top-1 = the maximum Viterbi input relevance. The fast kernels round differently (the
    // stride-1 convolution's f64 max-times form does not round shares to f32 first: ~2⁻²³
    // relative per layer, docs/semantics.md §9), hence the tolerance.
    let r0 = g.relevance(0).unwrap();
    let max = r0.iter().map(|v| v.0).fold(0.0, f64::max);
    if let Some(best) = got.first() {
        assert!(
            (best.strength - max).abs() <= 1e-5 * max,
            "{what}: {} vs {max}",
            best.strength
        );
    } else {
        assert_eq!(max, 0.0);
    }
    // The k-best semiring: each input's 4 strongest path strengths, by K-LRP.
    let kb = net
        .explain_with(
            x,
            0,
            &Explainer::<KBest<4>, _>::new(Composite::viterbi(), Clamp01),
        )
        .unwrap();
    for (j, v) in kb.input().iter().enumerate() {
        let want = KBest::<4>::from_values(
            brute
                .iter()
                .filter(|b| b.steps[0].1 == j)
                .map(|b| b.strength),
        );
        for (a, b) in v.values().iter().zip(want.values()) {
            assert!(
                (a - b).abs() <= 1e-12 * b.max(1e-300),
                "{what}: k-best of input {j}: {v:?} vs {want:?}"
            );
        }
    }
    // Per input: the strongest path from j, and its strength = R_j.
    for (j, rj) in r0.iter().enumerate() {
        let from: Vec<&Brute> = brute.iter().filter(|b| b.steps[0].1 == j).collect();
        let got = g.strongest_from(j, 2).unwrap();
        assert_eq!(got.len(), from.len().min(2), "{what}: from {j}");
        for (p, b) in got.iter().zip(&from) {
            assert_eq!(p.strength, b.strength, "{what}: from {j}");
            assert_eq!(key(p), brute_key(b), "{what}: from {j}");
        }
        let best = got.first().map_or(0.0, |p| p.strength);
        assert!(
            (best - rj.0).abs() <= 1e-5 * rj.0.max(1e-300),
            "{what}: from {j}: {best} vs R_j {}",
            rj.0
        );
    }
}

/// Checks path counts, listing and sampling against brute force.
fn check_counting(net: &Network, x: &ArrayD<f32>, theta: f32, what: &str) {
    let t = Threshold::new(theta).unwrap();
    let ex = Explainer::counting(t);
    let g = RelevanceGraph::new(net, x, 0, &ex).unwrap();
    connections_match_reference(&g, &t);
    let brute: Vec<Brute> = brute_force(&g, &t, 0);
    // Path counts per input element.
    let r0 = g.relevance(0).unwrap();
    for (j, c) in r0.iter().enumerate() {
        let n = brute.iter().filter(|b| b.steps[0].1 == j).count() as u64;
        assert_eq!(c.0, n, "{what}: count from {j}");
    }
    assert_eq!(g.count().unwrap(), brute.len() as u128, "{what}");
    let all = g.all_relevant(brute.len()).unwrap().unwrap();
    let got: Vec<_> = all.iter().map(key).collect();
    let mut want: Vec<_> = brute.iter().map(brute_key).collect();
    want.sort();
    assert_eq!(
        got, want,
        "{what}: every relevant path, in lexicographic order"
    );
    if !brute.is_empty() {
        assert!(g.all_relevant(brute.len() - 1).unwrap().is_none());
        let sampled = g.sample(50, 7).unwrap();
        assert_eq!(sampled.len(), 50);
        for p in &sampled {
            assert!(want.binary_search(&key(p)).is_ok(), "{what}: not relevant");
            assert_eq!(p.strength, 1.0);
        }
        assert_eq!(sampled, g.sample(50, 7).unwrap(), "seeded");
    } else {
        let e = g.sample(3, 1).unwrap_err().to_string();
        assert!(e.contains("no relevant path"), "{e}");
    }
}

fn rand_array(rng: &mut Rng, shape: &[usize]) -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(shape), |_| rng.weight())
}

/// conv → ReLU → pool → (conv → ReLU →) flatten → dense, on [2, 4, 4] inputs.
fn cnn(rng: &mut Rng, max_pool: bool, second_conv: bool) -> Network {
    let conv = |rng: &mut Rng, cin, cout| {
        Conv2d::new(
            Array4::from_shape_fn((cout, cin, 3, 3), |_| rng.weight()),
            Some(Array1::from_shape_fn(cout, |_| rng.weight() * 0.1)),
        )
        .unwrap()
        .with_padding((1, 1))
        .unwrap()
    };
    let mut layers: Vec<Box<dyn klrp::layers::Layer>> =
        vec![Box::new(conv(rng, 2, 2)), Box::new(ReLU)];
    if max_pool {
        layers.push(Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()));
    } else {
        layers.push(Box::new(AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()));
    }
    if second_conv {
        layers.push(Box::new(conv(rng, 2, 2)));
        layers.push(Box::new(ReLU));
    }
    layers.push(Box::new(Flatten));
    layers.push(Box::new(
        Dense::new(Array2::from_shape_fn((2, 8), |_| rng.weight()), None).unwrap(),
    ));
    Network::new([2, 4, 4], layers).unwrap()
}

/// A residual CNN: y = ReLU(conv(x)) + x, z = concat(y, x), then pool, flatten, dense.
fn residual_cnn(rng: &mut Rng) -> Network {
    let mut g = GraphBuilder::new([2, 4, 4]);
    let x = g.input();
    let w = Array4::from_shape_fn((2, 2, 3, 3), |_| rng.weight());
    let c = g
        .add(
            Conv2d::new(w, None).unwrap().with_padding((1, 1)).unwrap(),
            [x],
        )
        .unwrap();
    let r = g.add(ReLU, [c]).unwrap();
    let y = g.add(klrp::layers::Add, [r, x]).unwrap();
    let z = g.add(Concat, [y, x]).unwrap();
    let p = g
        .add(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap(), [z])
        .unwrap();
    let f = g.add(Flatten, [p]).unwrap();
    g.add(
        Dense::new(Array2::from_shape_fn((2, 16), |_| rng.weight()), None).unwrap(),
        [f],
    )
    .unwrap();
    g.build().unwrap()
}

#[test]
fn strongest_paths_agree_with_brute_force_on_random_dags() {
    for seed in 0..24 {
        let mut rng = Rng::new(seed);
        let net = random_dag(&mut rng, 2 + (seed as usize % 5), seed % 2 == 0);
        let x = rand_array(&mut rng, &[1, net.input_shape()[0]]);
        check_viterbi(&net, &x, &format!("dag seed {seed}"));
    }
}

#[test]
fn strongest_paths_agree_with_brute_force_on_cnns() {
    for seed in 0..6 {
        let mut rng = Rng::new(100 + seed);
        let net = cnn(&mut rng, seed % 2 == 0, seed % 3 == 0);
        let x = rand_array(&mut rng, &[1, 2, 4, 4]).mapv(f32::abs);
        check_viterbi(&net, &x, &format!("cnn seed {seed}"));
    }
    let mut rng = Rng::new(7);
    let net = residual_cnn(&mut rng);
    let x = rand_array(&mut rng, &[1, 2, 4, 4]);
    check_viterbi(&net, &x, "residual cnn");
}

#[test]
fn path_counts_listing_and_sampling_agree_with_brute_force() {
    for seed in 0..16 {
        let mut rng = Rng::new(seed);
        let net = random_dag(&mut rng, 2 + (seed as usize % 5), seed % 2 == 0);
        let x = rand_array(&mut rng, &[1, net.input_shape()[0]]);
        check_counting(&net, &x, 0.1, &format!("dag seed {seed}"));
    }
    for seed in 0..4 {
        let mut rng = Rng::new(200 + seed);
        let net = cnn(&mut rng, seed % 2 == 0, seed == 1);
        let x = rand_array(&mut rng, &[1, 2, 4, 4]).mapv(f32::abs);
        check_counting(&net, &x, 0.05, &format!("cnn seed {seed}"));
    }
    let mut rng = Rng::new(9);
    let net = residual_cnn(&mut rng);
    let x = rand_array(&mut rng, &[1, 2, 4, 4]);
    check_counting(&net, &x, 0.05, "residual cnn");
}

/// A 3-4-4-2 MLP with all-positive weights and inputs, so every path is relevant at θ = 0.
fn positive_mlp() -> (Network, ArrayD<f32>) {
    let mut rng = Rng::new(3);
    let mut dense = |o: usize, i: usize| {
        Box::new(
            Dense::new(
                Array2::from_shape_fn((o, i), |_| 0.1 + rng.weight().abs()),
                None,
            )
            .unwrap(),
        ) as Box<dyn klrp::layers::Layer>
    };
    let net = Network::new(
        [3],
        vec![
            dense(4, 3),
            Box::new(ReLU),
            dense(4, 4),
            Box::new(ReLU),
            dense(2, 4),
        ],
    )
    .unwrap();
    (net, ndarray::array![[0.5_f32, 1.0, 0.25]].into_dyn())
}

#[test]
fn sampled_paths_are_uniform() {
    let (net, x) = positive_mlp();
    let ex = Explainer::counting(Threshold::new(f32::MIN_POSITIVE).unwrap());
    let g = RelevanceGraph::new(&net, &x, 1, &ex).unwrap();
    let all = g.all_relevant(1000).unwrap().unwrap();
    assert_eq!(all.len(), 3 * 4 * 4, "every path is relevant");
    let draws = 48_000;
    let sampled = g.sample(draws, 2026).unwrap();
    let mut counts = std::collections::HashMap::new();
    for p in &sampled {
        *counts.entry(key(p)).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), all.len(), "every path drawn");
    let expected = draws as f64 / all.len() as f64;
    let chi2: f64 = all
        .iter()
        .map(|p| {
            let o = *counts.get(&key(p)).unwrap_or(&0) as f64;
            (o - expected).powi(2) / expected
        })
        .sum();
    // 47 degrees of freedom: the 0.1 % critical value is 82.7 (a fixed seed, so this either
    // always passes or always fails; a sampler off by 10 % on any path gives chi² ≈ 100+).
    assert!(chi2 < 82.7, "chi² = {chi2}");
    // The start element alone is not uniform over inputs: it follows the path counts.
    assert!(sampled.iter().all(|p| p.steps.len() == 6));
}

#[test]
fn bad_input_gives_clear_errors_or_empty_results() {
    let (net, x) = positive_mlp();
    let ex = Explainer::viterbi();
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    let e = g.strongest(0).unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
    let e = g.strongest_from(3, 1).unwrap_err().to_string();
    assert!(e.contains("outside the input"), "{e}");
    // A batch of two.
    let two = ndarray::array![[0.5_f32, 1.0, 0.25], [1.0, 1.0, 1.0]];
    let e = RelevanceGraph::new(&net, &two, 0, &ex)
        .unwrap_err()
        .to_string();
    assert!(e.contains("one sample"), "{e}");
    // A target out of range.
    assert!(RelevanceGraph::new(&net, &x, 5, &ex).is_err());
    // A zero input element has no path of strength > 0: an empty list.
    let x0 = ndarray::array![[0.0_f32, 1.0, 0.25]];
    let g0 = RelevanceGraph::new(&net, &x0, 0, &ex).unwrap();
    assert!(g0.strongest_from(0, 5).unwrap().is_empty());
    // A θ above every share: no relevant path, a clear error when sampling.
    let ex = Explainer::counting(Threshold::new(2.0).unwrap());
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    assert_eq!(g.count().unwrap(), 0);
    let e = g.sample(1, 0).unwrap_err().to_string();
    assert!(
        e.contains("no relevant path") && e.contains("lower θ"),
        "{e}"
    );
    assert!(g.all_relevant(10).unwrap().unwrap().is_empty());
    let ex = Explainer::counting(Threshold::new(0.01).unwrap());
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    assert!(
        g.sample(0, 0)
            .unwrap_err()
            .to_string()
            .contains("at least 1")
    );
    // The logit initialisation is refused.
    let ex = Explainer::viterbi().with_init(klrp::Init::Logit);
    assert!(RelevanceGraph::new(&net, &x, 0, &ex).is_err());
}

/// `layers` dense layers of width 4 with all weights 0.5: every path has the same shares.
fn constant_mlp(layers: usize) -> Network {
    let layers: Vec<Box<dyn klrp::layers::Layer>> = (0..layers)
        .map(|_| {
            Box::new(Dense::new(Array2::from_elem((4, 4), 0.5), None).unwrap())
                as Box<dyn klrp::layers::Layer>
        })
        .collect();
    Network::new([4], layers).unwrap()
}

#[test]
fn path_counts_that_overflow_are_an_error() {
    // 40 layers: 4^40 paths overflow u64.
    let net = constant_mlp(40);
    let x = ndarray::array![[1.0_f32, 1.0, 1.0, 1.0]];
    let ex = Explainer::counting(Threshold::new(0.1).unwrap());
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    let e = g.sample(1, 0).unwrap_err().to_string();
    assert!(e.contains("overflow"), "{e}");
}

#[test]
fn equal_strengths_are_listed_in_lexicographic_order() {
    // 5 layers: 4^5 paths, all of one strength: the first k in lexicographic order of the steps.
    let net = constant_mlp(5);
    let x = ndarray::array![[1.0_f32, 1.0, 1.0, 1.0]];
    let ex = Explainer::viterbi();
    let g = RelevanceGraph::new(&net, &x, 2, &ex).unwrap();
    let top = g.strongest(6).unwrap();
    let keys: Vec<Vec<usize>> = top
        .iter()
        .map(|p| p.steps.iter().map(|s| s.index).collect())
        .collect();
    assert_eq!(
        keys,
        vec![
            vec![0, 0, 0, 0, 0, 2],
            vec![0, 0, 0, 0, 1, 2],
            vec![0, 0, 0, 0, 2, 2],
            vec![0, 0, 0, 0, 3, 2],
            vec![0, 0, 0, 1, 0, 2],
            vec![0, 0, 0, 1, 1, 2],
        ]
    );
    assert!(top.iter().all(|p| p.strength == top[0].strength));
    // 40 layers: 4^40 tied paths cannot all be ranked; the search stops with a clear error.
    let net = constant_mlp(40);
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    let e = g.search_limited(None, 3, 100_000).unwrap_err().to_string();
    assert!(e.contains("equal (or nearly equal"), "{e}");
}

#[test]
fn circuit_counts_the_paths_through_each_element() {
    let (net, x) = positive_mlp();
    let paths = net
        .strongest_paths(&x, 1, 10, &Explainer::viterbi())
        .unwrap();
    assert_eq!(paths.len(), 10);
    let c = Circuit::from_paths(&paths);
    assert_eq!(c.paths, 10);
    // Every tensor on the way is in the circuit, each counting all 10 paths in total.
    assert_eq!(c.layers.len(), 6);
    for l in &c.layers {
        let total: usize = l.elements.iter().map(|e| e.paths).sum();
        assert_eq!(total, 10, "node {:?}", l.node);
        for e in &l.elements {
            let n = paths
                .iter()
                .filter(|p| {
                    p.steps
                        .iter()
                        .any(|s| s.node == l.node && s.index == e.index)
                })
                .count();
            assert_eq!(e.paths, n);
        }
    }
    let edges: usize = c.edges.iter().map(|e| e.2).sum();
    assert_eq!(edges, 10 * 5);
    let json = c.to_json();
    assert!(json.starts_with("{\"paths\": 10, \"layers\": ["));
    assert!(json.contains("{\"node\": -1, \"elements\": ["));
}

#[test]
fn json_numbers_round_trip() {
    let (net, x) = positive_mlp();
    let paths = net
        .strongest_paths(&x, 0, 4, &Explainer::viterbi())
        .unwrap();
    let json = paths_json(0, &paths);
    // Every strength printed is the f64 itself.
    for p in &paths {
        assert!(json.contains(&format!("\"strength\": {:?}", p.strength)));
        assert_eq!(
            format!("{:?}", p.strength).parse::<f64>().unwrap(),
            p.strength
        );
    }
    let ex = Explainer::counting(Threshold::new(0.01).unwrap());
    let g = RelevanceGraph::new(&net, &x, 0, &ex).unwrap();
    let s = g.sample(2, 1).unwrap();
    let json = sample_json(0, 0.01, g.count().unwrap(), 1, &s);
    assert!(json.starts_with("{\"target\": 0, \"semiring\": \"counting\", \"theta\": 0.01,"));
    let _: Viterbi = Viterbi(1.0);
    let _: Counting = Counting(1);
}

#[test]
fn strongest_paths_and_counts_through_routes_agree_with_brute_force() {
    // Channel shuffle (Reshape, Transpose, Reshape) and a Gather reading one channel twice.
    for seed in 0..4 {
        let mut rng = Rng::new(300 + seed);
        let net = crate::routing::routed_cnn(&mut rng);
        let x = rand_array(&mut rng, &[1, 4, 2, 2]).mapv(f32::abs);
        check_viterbi(&net, &x, &format!("routed cnn seed {seed}"));
        check_counting(&net, &x, 0.05, &format!("routed cnn seed {seed}"));
    }
}
