//! Network diagrams (`klrp::viz::NetworkDiagram`, issue 22): the annotations drawn are the
//! relevance values of the pass — each neuron's `R_j` is `Relevance::layer`'s value, and the
//! connections leaving it to the right combine to it, `R_j = ⊕_k Θ(d_jk) ⊗ R_k`; too-wide
//! layers show their most relevant neurons and say how many are left out.
#![cfg(feature = "viz")]

use klrp::layers::{Conv2d, Dense, Flatten, ReLU};
use klrp::semiring::{Boolean, Counting, Real, Semiring, Viterbi};
use klrp::viz::{DiagramValue, NetworkDiagram, RgbImage, text_size};
use klrp::{Clamp01, Composite, Conversion, Error, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, ArrayD, array};

/// A 2-3-3-2 ReLU network with biases, every hidden neuron active on `input()`.
fn small_net() -> Network {
    Network::new(
        [2],
        vec![
            Box::new(
                Dense::new(
                    array![[0.9, 0.4], [-0.3, 1.1], [0.6, 0.7]],
                    Some(array![0.1, 0.05, -0.2]),
                )
                .unwrap(),
            ),
            Box::new(ReLU),
            Box::new(
                Dense::new(
                    array![[0.8, -0.5, 0.3], [0.2, 0.9, 0.4], [-0.6, 0.3, 1.0]],
                    Some(array![0.0, 0.1, 0.05]),
                )
                .unwrap(),
            ),
            Box::new(ReLU),
            Box::new(
                Dense::new(
                    array![[1.0, 0.5, 0.7], [-0.4, 0.9, 0.2]],
                    Some(array![0.1, -0.1]),
                )
                .unwrap(),
            ),
        ],
    )
    .unwrap()
}

fn input() -> ArrayD<f32> {
    array![[1.0_f32, 0.8]].into_dyn()
}

/// A deterministic weight in [-1, 1) (no generator needed).
fn pseudo(i: usize) -> f32 {
    ((i * 7919 + 13) % 200) as f32 / 100.0 - 1.0
}

/// A 4-20-3 network: a hidden layer too wide for a diagram of 5 neurons per column.
fn wide_net() -> Network {
    let w1 = Array2::from_shape_fn((20, 4), |(k, j)| pseudo(4 * k + j) + 0.3);
    let w2 = Array2::from_shape_fn((3, 20), |(k, j)| pseudo(100 + 20 * k + j));
    Network::new(
        [4],
        vec![
            Box::new(Dense::new(w1, Some(Array1::from_elem(20, 0.05))).unwrap()),
            Box::new(ReLU),
            Box::new(Dense::new(w2, None).unwrap()),
        ],
    )
    .unwrap()
}

/// Checks every annotation of `diagram` against the pass it shows: neuron values are the kept
/// per-layer relevance; the connections leaving neuron j combine (⊕) to `R_j` (`close` compares
/// two values); every column is complete.
fn check_against_relevance<K: DiagramValue>(
    diagram: &NetworkDiagram<K>,
    relevance: &klrp::Relevance<K>,
    close: impl Fn(K, K) -> bool,
) {
    let columns = diagram.columns();
    assert_eq!(columns.len(), 4, "input, two hidden, output");
    assert_eq!(
        columns.iter().map(|c| c.layer).collect::<Vec<_>>(),
        vec![0, 2, 4, 5]
    );
    for c in columns {
        let r = relevance.layer(c.layer).unwrap();
        assert_eq!(c.size, r.shape()[1]);
        assert_eq!(c.neurons.len(), c.size, "small layers are drawn whole");
        assert_eq!(c.more_label(), None);
        for n in &c.neurons {
            assert_eq!(n.value, r[[0, n.index]], "{} neuron {}", c.name, n.index);
        }
    }
    for gap in 0..3 {
        let conns = diagram.connections(gap);
        assert_eq!(conns.len(), columns[gap].size * columns[gap + 1].size);
        for n in &columns[gap].neurons {
            let combined = conns
                .iter()
                .filter(|c| c.from == n.index)
                .fold(K::zero(), |acc, c| acc.add(c.value));
            assert!(
                close(combined, n.value),
                "gap {gap}, neuron {}: ⊕ of its lines {combined:?} ≠ its R {:?}",
                n.index,
                n.value
            );
        }
        // A line into a neuron without relevance carries the semiring's zero.
        let r_out = relevance.layer(columns[gap + 1].layer).unwrap();
        for c in conns {
            if r_out[[0, c.to]].is_zero() {
                assert!(c.value.is_zero());
            }
        }
    }
}

#[test]
fn boolean_and_counting_annotations_are_the_relevance_they_show() {
    let net = small_net();
    let trace = net.trace(&input()).unwrap();
    let theta = PerLayer::new(Threshold::new(0.25).unwrap());
    let composite = Composite::k_lrp();
    let init = klrp::one_hot::<Boolean>(trace.output().shape(), &[0]).unwrap();
    let rb = net
        .propagate(&trace, init, &composite, &theta, true)
        .unwrap();
    let db = NetworkDiagram::relevance(&net, &trace, &rb, &composite, &theta, 0, 8).unwrap();
    check_against_relevance(&db, &rb, |a, b| a == b);
    let init = klrp::one_hot::<Counting>(trace.output().shape(), &[0]).unwrap();
    let rc = net
        .propagate(&trace, init, &composite, &theta, true)
        .unwrap();
    let dc = NetworkDiagram::relevance(&net, &trace, &rc, &composite, &theta, 0, 8).unwrap();
    check_against_relevance(&dc, &rc, |a, b| a == b);
    // Not trivial: some paths are cut by Θ, and some input has several paths.
    let all: Vec<&Counting> = dc
        .connections(0)
        .iter()
        .chain(dc.connections(1))
        .map(|c| &c.value)
        .collect();
    assert!(all.iter().any(|v| v.is_zero()));
    assert!(dc.columns()[0].neurons.iter().any(|n| n.value.0 >= 2));
    // Boolean is the support of Counting, connection by connection.
    for gap in 0..3 {
        for (b, c) in db.connections(gap).iter().zip(dc.connections(gap)) {
            assert_eq!((b.from, b.to), (c.from, c.to));
            assert_eq!(b.value.0, c.value.0 > 0);
        }
    }
}

#[test]
fn shares_are_lrp0_and_lines_are_theta_of_the_share_times_r_k() {
    // Independent of the kernels: LRP-0's share d_jk = a_j w_jk / z_k, computed by hand here.
    let net = small_net();
    let trace = net.trace(&input()).unwrap();
    let theta = PerLayer::new(Threshold::new(0.25).unwrap());
    let init = klrp::one_hot::<Counting>(trace.output().shape(), &[0]).unwrap();
    let r = net
        .propagate(&trace, init, &Composite::k_lrp(), &theta, true)
        .unwrap();
    let d = NetworkDiagram::relevance(&net, &trace, &r, &Composite::k_lrp(), &theta, 0, 8).unwrap();
    let dense = [0usize, 2, 4];
    for (gap, &i) in dense.iter().enumerate() {
        let a = trace.activation(i).unwrap();
        // z_k before the ReLU, recomputed from the layer.
        let z_pre = net.layers()[i].forward(a).unwrap();
        for c in d.connections(gap) {
            let w = c.weight;
            let want = a[[0, c.from]] * w / z_pre[[0, c.to]];
            let got = c.share.unwrap();
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "layer {i} {}→{}: share {got} ≠ a·w/z = {want}",
                c.from,
                c.to
            );
            let rk = r.layer(i + 1).unwrap()[[0, c.to]];
            let theta_d: Counting = theta.at(i).convert(got);
            assert_eq!(c.value, theta_d.mul(rk));
        }
    }
}

#[test]
fn viterbi_and_real_annotations_are_the_relevance_they_show() {
    let net = small_net();
    let trace = net.trace(&input()).unwrap();
    let (vc, vt) = (Composite::viterbi(), PerLayer::new(Clamp01));
    let init = klrp::one_hot::<Viterbi>(trace.output().shape(), &[1]).unwrap();
    let rv = net.propagate(&trace, init, &vc, &vt, true).unwrap();
    let dv = NetworkDiagram::relevance(&net, &trace, &rv, &vc, &vt, 0, 8).unwrap();
    check_against_relevance(&dv, &rv, |a, b| (a.0 - b.0).abs() <= 1e-6);
    assert!(dv.columns()[0].neurons.iter().all(|n| n.value.0 > 0.0));

    let (rc, rt) = (
        Composite::uniform(klrp::rules::EpsilonRule::new(0.01).unwrap()),
        PerLayer::new(Identity),
    );
    let init = trace.output_init(&[1]).unwrap();
    let rr = net
        .propagate::<Real<f32>, _>(&trace, init, &rc, &rt, true)
        .unwrap();
    let dr = NetworkDiagram::relevance(&net, &trace, &rr, &rc, &rt, 0, 8).unwrap();
    check_against_relevance(&dr, &rr, |a, b| {
        (a.0 - b.0).abs() <= 1e-5 * b.0.abs().max(1e-3)
    });
    // Classical LRP has relevance of both signs here, so the picture needs both colours.
    let values: Vec<f32> = dr.connections(1).iter().map(|c| c.value.0).collect();
    assert!(values.iter().any(|&v| v > 0.0) && values.iter().any(|&v| v < 0.0));
}

#[test]
fn forward_diagram_shows_activations_and_weights() {
    let net = small_net();
    let trace = net.trace(&input()).unwrap();
    let d = NetworkDiagram::forward(&net, &trace, 0, 8).unwrap();
    for c in d.columns() {
        let a = trace.activation(c.layer).unwrap();
        for n in &c.neurons {
            assert_eq!(n.value.0, a[[0, n.index]]);
        }
    }
    let w = array![[0.9_f32, 0.4], [-0.3, 1.1], [0.6, 0.7]];
    for c in d.connections(0) {
        assert_eq!(c.value.0, w[[c.to, c.from]]);
        assert_eq!(c.share, None);
    }
    let img = d.with_title("forward").render().unwrap();
    assert!(img.width() > 400 && img.height() > 200);
}

/// Whether `text` is drawn in `color` somewhere in `img` (every ink pixel of the glyphs).
fn contains_text(img: &RgbImage, text: &str, color: [u8; 3]) -> bool {
    let (w, h) = text_size(text, 2);
    let mut stencil = RgbImage::new(w, h, [255, 255, 255]);
    stencil.draw_text(0, 0, text, [0, 0, 0], 2);
    let ink: Vec<(usize, usize)> = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| stencil.pixel(x, y) == Some([0, 0, 0]))
        .collect();
    let (x0, y0) = ink[0];
    (0..img.height()).any(|y| {
        (0..img.width()).any(|x| {
            img.pixel(x, y) == Some(color)
                && x >= x0
                && y >= y0
                && ink
                    .iter()
                    .all(|&(ix, iy)| img.pixel(x - x0 + ix, y - y0 + iy) == Some(color))
        })
    })
}

#[test]
fn wide_layers_show_the_most_relevant_neurons_and_count_the_rest() {
    let net = wide_net();
    let x = array![[1.0_f32, 0.5, 0.8, 0.3]].into_dyn();
    let theta = PerLayer::new(Threshold::new(0.02).unwrap());
    let d =
        NetworkDiagram::<Counting>::explain(&net, &x, 2, &Composite::k_lrp(), &theta, 5).unwrap();
    let trace = net.trace(&x).unwrap();
    let init = klrp::one_hot::<Counting>(trace.output().shape(), &[2]).unwrap();
    let r = net
        .propagate(&trace, init, &Composite::k_lrp(), &theta, true)
        .unwrap();
    let hidden = &d.columns()[1];
    assert_eq!((hidden.size, hidden.neurons.len()), (20, 5));
    assert_eq!(hidden.left_out(), 15);
    assert_eq!(hidden.more_label().as_deref(), Some("+ 15 more"));
    // The five drawn are the five largest counts of the layer.
    let all: Vec<u64> = r.layer(2).unwrap().iter().map(|v| v.0).collect();
    let shown: Vec<usize> = hidden.neurons.iter().map(|n| n.index).collect();
    let weakest_shown = shown.iter().map(|&j| all[j]).min().unwrap();
    let strongest_left = (0..20)
        .filter(|j| !shown.contains(j))
        .map(|j| all[j])
        .max()
        .unwrap();
    assert!(weakest_shown >= strongest_left, "{all:?} shown {shown:?}");
    assert!(
        all.iter().filter(|&&c| c > 0).count() > 5,
        "the choice matters"
    );
    assert!(
        shown.windows(2).all(|w| w[0] < w[1]),
        "drawn in index order"
    );
    for n in &hidden.neurons {
        assert_eq!(n.value.0, all[n.index]);
    }
    // Columns that fit are whole; connections join drawn neurons only.
    assert_eq!(d.columns()[0].more_label(), None);
    assert_eq!(d.columns()[2].neurons.len(), 3);
    assert_eq!(d.connections(0).len(), 4 * 5);
    assert_eq!(d.connections(1).len(), 5 * 3);
    assert!(d.connections(0).iter().all(|c| shown.contains(&c.to)));
    // The count is written under the column, and no other.
    let img = d.render().unwrap();
    let ink = [40, 40, 40];
    assert!(contains_text(&img, "+ 15 more", ink));
    assert!(!contains_text(&img, "+ 16 more", ink));
    assert!(contains_text(&img, "hidden 1 (20)", [0, 0, 0]));
}

#[test]
fn boolean_top_is_highlighted_and_zero_is_not() {
    let net = small_net();
    let red = |img: &RgbImage| {
        img.as_raw()
            .chunks(3)
            .filter(|p| *p == [214, 39, 40])
            .count()
    };
    let draw = |theta: f32| {
        let t = PerLayer::new(Threshold::new(theta).unwrap());
        NetworkDiagram::<Boolean>::explain(&net, &input(), 0, &Composite::k_lrp(), &t, 8).unwrap()
    };
    let (low, high) = (draw(0.05), draw(5.0));
    // θ = 5: no share passes; only the target neuron is ⊤.
    assert!(high.connections(0).iter().all(|c| !c.value.0));
    let tops: usize = high
        .columns()
        .iter()
        .map(|c| c.neurons.iter().filter(|n| n.value.0).count())
        .sum();
    assert_eq!(tops, 1);
    assert!(low.connections(0).iter().any(|c| c.value.0));
    let (red_low, red_high) = (red(&low.render().unwrap()), red(&high.render().unwrap()));
    assert!(red_high > 0, "the ⊤ target is drawn red");
    assert!(
        red_low > 3 * red_high,
        "⊤ paths are drawn red: {red_low} vs {red_high}"
    );
}

#[test]
fn bad_inputs_are_named_errors() {
    let net = small_net();
    let x = input();
    let trace = net.trace(&x).unwrap();
    let theta = PerLayer::new(Threshold::new(0.2).unwrap());
    let c = Composite::k_lrp();
    let init = klrp::one_hot::<Boolean>(trace.output().shape(), &[0]).unwrap();
    let not_kept = net
        .propagate(&trace, init.clone(), &c, &theta, false)
        .unwrap();
    let kept = net.propagate(&trace, init, &c, &theta, true).unwrap();
    let invalid =
        |r: klrp::Result<NetworkDiagram<Boolean>>| matches!(r, Err(Error::InvalidArgument(_)));
    assert!(invalid(NetworkDiagram::relevance(
        &net, &trace, &not_kept, &c, &theta, 0, 8
    )));
    assert!(invalid(NetworkDiagram::relevance(
        &net, &trace, &kept, &c, &theta, 1, 8
    )));
    assert!(invalid(NetworkDiagram::relevance(
        &net, &trace, &kept, &c, &theta, 0, 0
    )));
    let two = ndarray::concatenate(ndarray::Axis(0), &[x.view(), x.view()]).unwrap();
    assert!(invalid(NetworkDiagram::explain(
        &net, &two, 0, &c, &theta, 8
    )));
    assert!(matches!(
        NetworkDiagram::<Boolean>::explain(&net, &x, 7, &c, &theta, 8),
        Err(Error::TargetOutOfRange { .. })
    ));
    // A relevance of another network's shape.
    let other = wide_net();
    let ox = array![[1.0_f32, 0.5, 0.8, 0.3]].into_dyn();
    let ot = other.trace(&ox).unwrap();
    let oi = klrp::one_hot::<Boolean>(ot.output().shape(), &[0]).unwrap();
    let or = other.propagate(&ot, oi, &c, &theta, true).unwrap();
    assert!(NetworkDiagram::relevance(&net, &trace, &or, &c, &theta, 0, 8).is_err());
    // A convolution is not drawn.
    let conv = Network::new(
        [1, 3, 3],
        vec![
            Box::new(Conv2d::new(ndarray::Array4::from_elem((1, 1, 2, 2), 0.5), None).unwrap()),
            Box::new(Flatten),
            Box::new(Dense::new(Array2::from_elem((2, 4), 0.5), None).unwrap()),
        ],
    )
    .unwrap();
    let cx = ndarray::Array4::from_elem((1, 1, 3, 3), 1.0_f32).into_dyn();
    assert!(matches!(
        NetworkDiagram::<Boolean>::explain(&conv, &cx, 0, &c, &theta, 8),
        Err(Error::Unsupported(_))
    ));
}
