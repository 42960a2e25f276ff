//! Relevances of tiny networks, computed by hand.
//!
//! Every expected value below is derived in the comments next to it, from the definitions in
//! `src/rules.rs` (`d_jk = Σ_t p_t[j]·g_t(w_jk)·q_t[k]`) and `R_j = ⊕_k Θ(d_jk) ⊗ R_k`, without
//! running the engine. The networks have 2–3 inputs and two linear layers (or a pooling layer and
//! a linear layer), and their numbers are chosen so that most results are exact binary fractions:
//! those are compared with `==`, the others (thirds, sevenths, results perturbed by a default
//! ε = 1e-6) within a few parts in a million.
//!
//! What this proves: each rule (LRP-0, ε, γ, z⁺, αβ, z^B, flat, w², max-abs, winner-take-all,
//! proportional pooling) forms the shares its definition says, in the Real, Boolean, Counting,
//! FloatCounting and Viterbi semirings, including the edge cases — a dead output with z = 0, a
//! negative-z output under γ, ties in max pooling, padding under the flat rule, absorbed bias
//! relevance, and multi-class initialisation.

use klrp::layers::{AvgPool2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU};
use klrp::rules::{
    AlphaBetaRule, Bound, EpsilonRule, FlatRule, GammaRule, MaxAbsRule, ProportionalRule,
    WSquareRule, ZBoxRule, ZPlusRule, ZeroRule,
};
use klrp::semiring::{Boolean, Counting, FloatCounting, Real, Viterbi};
use klrp::{AbsThreshold, Clamp01, Composite, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, IxDyn, array};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn dense(w: Array2<f32>, b: Option<Array1<f32>>) -> Box<dyn Layer> {
    Box::new(Dense::new(w, b).unwrap())
}

/// Dense → ReLU → Dense.
fn two_layer(
    inputs: usize,
    w1: Array2<f32>,
    b1: Option<Array1<f32>>,
    w2: Array2<f32>,
    b2: Option<Array1<f32>>,
) -> Network {
    Network::new([inputs], vec![dense(w1, b1), Box::new(ReLU), dense(w2, b2)]).unwrap()
}

/// Network A: x = [2, 1, 1],
/// W1 = [[1, 2, 0], [2, −1, 1]] (no bias)  → z1 = [2+2+0, 4−1+1] = [4, 4], a1 = [4, 4];
/// W2 = [[1, 1], [3, −1]]       (no bias)  → z2 = [4+4, 12−4]    = [8, 8].
fn net_a() -> Network {
    two_layer(
        3,
        array![[1.0, 2.0, 0.0], [2.0, -1.0, 1.0]],
        None,
        array![[1.0, 1.0], [3.0, -1.0]],
        None,
    )
}

fn x_a() -> ArrayD<f32> {
    array![[2.0_f32, 1.0, 1.0]].into_dyn()
}

/// Network G (a negative input and a bias): x = [1, −1],
/// W1 = [[2, 1], [−1, −2]], b1 = [1, 0] → z1 = [2−1+1, −1+2+0] = [2, 1], a1 = [2, 1];
/// W2 = [[1, 2], [1, −1]]   (no bias)   → z2 = [2+2, 2−1]      = [4, 1].
fn net_g() -> Network {
    two_layer(
        2,
        array![[2.0, 1.0], [-1.0, -2.0]],
        Some(array![1.0, 0.0]),
        array![[1.0, 2.0], [1.0, -1.0]],
        None,
    )
}

fn x_g() -> ArrayD<f32> {
    array![[1.0_f32, -1.0]].into_dyn()
}

fn real(
    net: &Network,
    x: &ArrayD<f32>,
    targets: &[usize],
    c: &Composite,
) -> klrp::Relevance<Real<f32>> {
    net.explain::<Real<f32>, _>(x, targets, c, &PerLayer::new(Identity))
        .unwrap()
}

fn values(r: &ArrayD<Real<f32>>) -> Vec<f32> {
    r.iter().map(|v| v.0).collect()
}

/// `|got − want| ≤ tol` elementwise, with a message naming the element.
fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "length: got {got:?}, want {want:?}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tol,
            "element {i}: got {g}, want {w} (tolerance {tol}); all: {got:?} vs {want:?}"
        );
    }
}

fn bools(r: &ArrayD<Boolean>) -> Vec<bool> {
    r.iter().map(|b| b.0).collect()
}

fn counts(r: &ArrayD<Counting>) -> Vec<u64> {
    r.iter().map(|c| c.0).collect()
}

// ---------------------------------------------------------------------------------------------
// Real semiring, one test per rule
// ---------------------------------------------------------------------------------------------

#[test]
fn lrp0_two_layers() {
    // Target 1 of network A, R2 = [0, 1].
    // Layer 2 (z2_1 = 8): d_j1 = a1_j·W2[1][j] / 8 = [4·3/8, 4·(−1)/8] = [1.5, −0.5]
    //   → R1 = [1.5, −0.5].
    // ReLU passes R1 unchanged.
    // Layer 0 (z1 = [4, 4]): d_jk = x_j·W1[k][j] / 4:
    //   k=0: [2·1, 1·2, 1·0]/4 = [0.5, 0.5, 0]
    //   k=1: [2·2, 1·(−1), 1·1]/4 = [1, −0.25, 0.25]
    // R0 = [0.5·1.5 + 1·(−0.5), 0.5·1.5 + (−0.25)(−0.5), 0·1.5 + 0.25·(−0.5)]
    //    = [0.25, 0.875, −0.125]                 (sum 1: LRP-0 without bias conserves)
    let net = net_a();
    let trace = net.trace(&x_a()).unwrap();
    assert_eq!(values_f32(trace.output()), [8.0, 8.0]);
    let init = klrp::one_hot::<Real<f32>>(trace.output().shape(), &[1]).unwrap();
    let r = net
        .propagate(
            &trace,
            init,
            &Composite::uniform(ZeroRule),
            &PerLayer::new(Identity),
            true,
        )
        .unwrap();
    assert_eq!(values(r.input()), [0.25, 0.875, -0.125]);
    // Relevance kept per layer: at the input of layer 2 and of the ReLU, [1.5, −0.5].
    assert_eq!(values(r.layer(2).unwrap()), [1.5, -0.5]);
    assert_eq!(values(r.layer(1).unwrap()), [1.5, -0.5]);
    assert_eq!(values(r.layer(3).unwrap()), [0.0, 1.0]);
    assert_eq!(r.conservation_delta(), [0.0]);
    // k_lrp() is LRP-0 too.
    let r = real(&net, &x_a(), &[1], &Composite::k_lrp());
    assert_eq!(values(r.input()), [0.25, 0.875, -0.125]);
}

fn values_f32(a: &ArrayD<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

#[test]
fn epsilon_two_layers() {
    // LRP-ε with ε = 0.5 on network A, target 1; stab(z) = z + 0.5 for z ≥ 0.
    // Layer 2: stab(8) = 8.5: d = [12/8.5, −4/8.5] = [24/17, −8/17] → R1 = [24/17, −8/17].
    // Layer 0: stab(4) = 4.5:
    //   k=0: [2, 2, 0]/4.5  = [4/9, 4/9, 0]
    //   k=1: [4, −1, 1]/4.5 = [8/9, −2/9, 2/9]
    // R0_0 = 4/9·24/17 + 8/9·(−8/17)    = (96 − 64)/153 = 32/153
    // R0_1 = 4/9·24/17 + (−2/9)(−8/17)  = (96 + 16)/153 = 112/153
    // R0_2 = 0 + 2/9·(−8/17)            = −16/153
    // Σ = 128/153: the stabiliser absorbed 25/153.
    let eps = Composite::uniform(EpsilonRule::new(0.5).unwrap());
    let r = real(&net_a(), &x_a(), &[1], &eps);
    assert_close(
        &values(r.input()),
        &[32.0 / 153.0, 112.0 / 153.0, -16.0 / 153.0],
        1e-6,
    );
    assert!((r.conservation_delta()[0] - (-25.0 / 153.0)).abs() < 1e-6);
}

#[test]
fn lrp0_dead_output_with_zero_z_gives_zero_not_nan() {
    // Network A with W2 row 0 changed to [1, −1]: z2_0 = 4 − 4 = 0.
    // LRP-0 (and ε = 0) define d = 0 where z = 0 (a plain a·w/z would give ±4/0 → ±∞ and NaN
    // once multiplied by 0 further down), so target 0 receives and passes nothing: R0 = 0.
    let net = two_layer(
        3,
        array![[1.0, 2.0, 0.0], [2.0, -1.0, 1.0]],
        None,
        array![[1.0, -1.0], [3.0, -1.0]],
        None,
    );
    assert_eq!(values_f32(&net.forward(&x_a()).unwrap()), [0.0, 8.0]);
    for c in [
        Composite::uniform(ZeroRule),
        Composite::uniform(EpsilonRule::new(0.0).unwrap()),
    ] {
        let r = real(&net, &x_a(), &[0], &c);
        assert_eq!(values(r.input()), [0.0, 0.0, 0.0], "{}", c.name());
        // The whole initial relevance 1 is lost at the dead output.
        assert_eq!(r.conservation_delta(), [-1.0]);
    }
    // The live output of the same network is unaffected: z2_1 = 8 as in network A.
    let r = real(&net, &x_a(), &[1], &Composite::uniform(ZeroRule));
    assert_eq!(values(r.input()), [0.25, 0.875, -0.125]);
}

#[test]
fn gamma_positive_negative_and_zero_outputs() {
    // γ = 0.5, ε = 0. x = [1, −1] (a⁺ = [1, 0], a⁻ = [0, −1]).
    // W1 = [[2, 1], [−1, −2]] (no bias): z1 = [2 − 1, −1 + 2] = [1, 1], a1 = [1, 1].
    // W2 = [[1, 1], [−1, −2], [1, −1]]:  z2 = [2, −3, 0] — positive, negative, zero.
    let net = two_layer(
        2,
        array![[2.0, 1.0], [-1.0, -2.0]],
        None,
        array![[1.0, 1.0], [-1.0, -2.0], [1.0, -1.0]],
        None,
    );
    let x = array![[1.0_f32, -1.0], [1.0, -1.0], [1.0, -1.0]].into_dyn();
    assert_eq!(values_f32(&net.forward(&x).unwrap())[..3], [2.0, -3.0, 0.0]);
    // Layer 2 (a1 = [1, 1] ≥ 0, so only a⁺ terms):
    //   out 0, z = 2 > 0: weights w + γw⁺ = [1.5, 1.5], zp = 3 → d = [0.5, 0.5].
    //   out 1, z = −3 < 0: weights w + γw⁻ = [−1.5, −3], zn = −4.5 → d = [1/3, 2/3].
    //   out 2, z = 0: passes nothing (though its modified zp = 1.5 − 1 = 0.5 ≠ 0).
    // Layer 0 (both hidden z = 1 > 0):
    //   hidden 0, row [2, 1]: x0 = 1 ≥ 0 → 1·(2 + 0.5·2) = 3; x1 = −1 < 0 → −1·(1 + 0.5·0) = −1;
    //     zp = 2 → d = [1.5, −0.5].
    //   hidden 1, row [−1, −2]: x0 → 1·(−1 + 0) = −1; x1 → −1·(−2 + 0.5·(−2)) = 3;
    //     zp = 2 → d = [−0.5, 1.5].
    // Target 0: R1 = [0.5, 0.5] → R0 = [1.5·0.5 − 0.5·0.5, −0.5·0.5 + 1.5·0.5] = [0.5, 0.5].
    // Target 1: R1 = [1/3, 2/3] → R0 = [1.5/3 − 0.5·2/3, −0.5/3 + 1.5·2/3] = [1/6, 5/6].
    // Target 2: R0 = [0, 0].
    let gamma = Composite::uniform(GammaRule::new(0.5, 0.0).unwrap());
    let r = real(&net, &x, &[0, 1, 2], &gamma);
    assert_close(
        &values(r.input()),
        &[0.5, 0.5, 1.0 / 6.0, 5.0 / 6.0, 0.0, 0.0],
        1e-6,
    );
    let v = values(r.input());
    assert_eq!(v[..2], [0.5, 0.5]); // exact in binary
    assert_eq!(v[4..], [0.0, 0.0]);
}

#[test]
fn zplus_with_negative_input_and_bias() {
    // z⁺ on network G, target 0 (ε = 1e-6 default; the values below are for ε → 0).
    // Layer 2, row [1, 2], a1 = [2, 1] ≥ 0: a⁺w⁺ = [2, 2], zp = 4 → d = [0.5, 0.5]
    //   → R1 = [0.5, 0.5].
    // Layer 0, x = [1, −1]:
    //   hidden 0, row [2, 1], b = 1: a⁺w⁺ = 1·2 = 2; a⁻w⁻ = (−1)·min(1, 0) = 0;
    //     zp = 2 + b⁺ = 3 → d = [2/3, 0].
    //   hidden 1, row [−1, −2], b = 0: a⁺w⁺ = 1·0 = 0; a⁻w⁻ = (−1)(−2) = 2; zp = 2 → d = [0, 1].
    // R0 = [2/3·0.5, 1·0.5] = [1/3, 1/2]; the positive bias absorbed 1/3·0.5 = 1/6.
    let r = real(
        &net_g(),
        &x_g(),
        &[0],
        &Composite::uniform(ZPlusRule::default()),
    );
    assert_close(&values(r.input()), &[1.0 / 3.0, 0.5], 2e-6);
    assert!((r.conservation_delta()[0] + 1.0 / 6.0).abs() < 2e-6);
}

#[test]
fn alpha2_beta1() {
    // αβ(2, 1) on network G, target 1 (ε = 1e-6 default; values for ε → 0).
    // Layer 2, row [1, −1], a1 = [2, 1]:
    //   positive part a⁺w⁺ = [2, 0], zp = 2; negative part a⁺w⁻ = [0, −1], zn = −1;
    //   d = 2·[2/2, 0/2] − 1·[0/(−1), (−1)/(−1)] = [2, −1] → R1 = [2, −1].
    // Layer 0, x = [1, −1]:
    //   hidden 0, row [2, 1], b = 1: positive: x0: 1·2 = 2, x1: (−1)·w⁻ = 0, zp = 2 + b⁺ = 3;
    //     negative: x0: 1·w⁻ = 0, x1: (−1)·w⁺ = −1, zn = −1 + b⁻ = −1;
    //     d = 2·[2/3, 0] − [0, 1] = [4/3, −1].
    //   hidden 1, row [−1, −2], b = 0: positive: x0: 0, x1: (−1)(−2) = 2, zp = 2;
    //     negative: x0: 1·(−1) = −1, x1: (−1)·0 = 0, zn = −1;
    //     d = 2·[0, 1] − [1, 0] = [−1, 2].
    // R0 = [4/3·2 + (−1)(−1), (−1)·2 + 2·(−1)] = [11/3, −4]; Σ = −1/3.
    let ab = Composite::uniform(AlphaBetaRule::new(2.0, 1.0).unwrap());
    let r = real(&net_g(), &x_g(), &[1], &ab);
    assert_close(&values(r.input()), &[11.0 / 3.0, -4.0], 1e-5);
}

#[test]
fn zbox_with_scalar_bounds() {
    // z^B(l = −1, h = 2) on layer 0, LRP-0 on layer 2; network G, target 0.
    // Layer 2 (LRP-0), row [1, 2], a1 = [2, 1], z = 4: d = [2/4, 2/4] → R1 = [0.5, 0.5].
    // Layer 0, x = [1, −1], share numerators a·w − l·w⁺ − h·w⁻ (the bias cancels):
    //   hidden 0, row [2, 1]:   x0: 2 − (−1)·2 − 2·0 = 4;   x1: −1 − (−1)·1 − 2·0 = 0;   Σ = 4
    //     → d = [1, 0].
    //   hidden 1, row [−1, −2]: x0: −1 − (−1)·0 − 2·(−1) = 1; x1: 2 − (−1)·0 − 2·(−2) = 6; Σ = 7
    //     → d = [1/7, 6/7].
    // R0 = [1·0.5 + 1/7·0.5, 0 + 6/7·0.5] = [4/7, 3/7].
    let c = Composite::uniform(ZeroRule).with_layer(0, ZBoxRule::new(-1.0, 2.0).unwrap());
    let r = real(&net_g(), &x_g(), &[0], &c);
    assert_close(&values(r.input()), &[4.0 / 7.0, 3.0 / 7.0], 2e-6);
    // with_first_linear puts it on the same layer.
    let c = Composite::uniform(ZeroRule).with_first_linear(ZBoxRule::new(-1.0, 2.0).unwrap());
    let r2 = real(&net_g(), &x_g(), &[0], &c);
    assert_eq!(values(r.input()), values(r2.input()));
}

#[test]
fn zbox_with_per_input_bounds() {
    // z^B with l = [0, −2], h = [1, 0] on layer 0 (x = [1, −1] lies inside), LRP-0 on layer 2;
    // network G, target 0, so R1 = [0.5, 0.5] as above.
    //   hidden 0, row [2, 1]:   x0: 1·2 − 0·2 − 1·0 = 2;      x1: −1 − (−2)·1 − 0·0 = 1;  Σ = 3
    //     → d = [2/3, 1/3].
    //   hidden 1, row [−1, −2]: x0: −1 − 0·0 − 1·(−1) = 0;    x1: 2 − (−2)·0 − 0·(−2) = 2; Σ = 2
    //     → d = [0, 1].
    // R0 = [2/3·0.5, 1/3·0.5 + 1·0.5] = [1/3, 2/3].
    let low = Bound::from(array![0.0_f32, -2.0].into_dyn());
    let high = Bound::from(array![1.0_f32, 0.0].into_dyn());
    let c = Composite::uniform(ZeroRule).with_layer(0, ZBoxRule::new(low, high).unwrap());
    let r = real(&net_g(), &x_g(), &[0], &c);
    assert_close(&values(r.input()), &[1.0 / 3.0, 2.0 / 3.0], 2e-6);
}

#[test]
fn flat_ignores_activations_and_weights() {
    // Flat on network A, target 1 (ε = 1e-6): every output spreads its relevance equally over
    // all its inputs, whatever the activations and weights — W1[0][2] = 0 counts as a connection
    // of a dense layer too.
    // Layer 2: 2 inputs → d = 1/2 → R1 = [0.5, 0.5].
    // Layer 0: 3 inputs → d = 1/3 → R0 = [1/3, 1/3, 1/3] (0.5/3 from each hidden neuron).
    let r = real(
        &net_a(),
        &x_a(),
        &[1],
        &Composite::uniform(FlatRule::default()),
    );
    assert_close(&values(r.input()), &[1.0 / 3.0; 3], 2e-6);
}

#[test]
fn wsquare() {
    // w² on network G, target 0 (ε = 1e-6).
    // Layer 2, row [1, 2] (no bias): w² = [1, 4], Σ = 5 → d = [0.2, 0.8] → R1 = [0.2, 0.8].
    // Layer 0:
    //   hidden 0, row [2, 1], b = 1: w² = [4, 1], Σ w² + b² = 6 → d = [2/3, 1/6].
    //   hidden 1, row [−1, −2], b = 0: w² = [1, 4], Σ = 5 → d = [0.2, 0.8].
    // R0_0 = 2/3·0.2 + 0.2·0.8 = 2/15 + 4/25 = 22/75
    // R0_1 = 1/6·0.2 + 0.8·0.8 = 1/30 + 16/25 = 101/150      (Σ = 29/30: b² took 1/6 of 0.2)
    let r = real(
        &net_g(),
        &x_g(),
        &[0],
        &Composite::uniform(WSquareRule::default()),
    );
    assert_close(&values(r.input()), &[22.0 / 75.0, 101.0 / 150.0], 2e-6);
    assert!((r.conservation_delta()[0] + 1.0 / 30.0).abs() < 2e-6);
}

/// Network V: x = [1, 2, 4],
/// W1 = [[1, 0.5, 0.5], [4, −1, 0.25]] → z1 = [1+1+2, 4−2+1] = [4, 3], a1 = [4, 3];
/// W2 = [[1, 0.75]]                    → z2 = 4 + 2.25 = 6.25.
fn net_v() -> (Network, ArrayD<f32>) {
    let net = two_layer(
        3,
        array![[1.0, 0.5, 0.5], [4.0, -1.0, 0.25]],
        None,
        array![[1.0, 0.75]],
        None,
    );
    (net, array![[1.0_f32, 2.0, 4.0]].into_dyn())
}

#[test]
fn max_abs_in_real_and_viterbi() {
    // Max-abs shares d_jk = |a_j w_jk| / (max_j' |a_j' w_j'k| + δ); δ = 1e-9 vanishes against
    // maxima of 2 and 4 in f32, so every share below is exact.
    // Layer 2: |a1·w| = [4, 2.25], max 4 → d = [1, 0.5625].
    // Layer 0: hidden 0: |x·w| = [1, 1, 2], max 2 → d = [0.5, 0.5, 1];
    //          hidden 1: |x·w| = [4, 2, 1], max 4 → d = [1, 0.5, 0.25].
    // Real:    R0 = [0.5·1 + 1·0.5625, 0.5·1 + 0.5·0.5625, 1·1 + 0.25·0.5625]
    //             = [1.0625, 0.78125, 1.140625].
    // Viterbi: R0 = [max(0.5, 0.5625), max(0.5, 0.28125), max(1, 0.140625)] = [0.5625, 0.5, 1]
    //          (input 0's strongest path runs through hidden 1).
    let (net, x) = net_v();
    let r = real(&net, &x, &[0], &Composite::uniform(MaxAbsRule::default()));
    assert_eq!(values(r.input()), [1.0625, 0.78125, 1.140625]);
    let v = net
        .explain::<Viterbi, _>(&x, &[0], &Composite::viterbi(), &PerLayer::new(Clamp01))
        .unwrap();
    let got: Vec<f64> = v.input().iter().map(|v| v.0).collect();
    assert_eq!(got, [0.5625, 0.5, 1.0]);
    // A larger δ lowers every share: δ = 1 gives layer 2 d = [4/5, 2.25/5] = [0.8, 0.45],
    // layer 0 d = [1/3, 1/3, 2/3] and [4/5, 2/5, 1/5]; Viterbi
    // R0 = [max(1/3·0.8, 0.8·0.45), max(1/3·0.8, 0.4·0.45), max(2/3·0.8, 0.2·0.45)]
    //    = [0.36, 0.8/3, 1.6/3].
    let v = net
        .explain::<Viterbi, _>(
            &x,
            &[0],
            &Composite::uniform(MaxAbsRule::new(1.0).unwrap()),
            &PerLayer::new(Clamp01),
        )
        .unwrap();
    let got: Vec<f32> = v.input().iter().map(|v| v.0 as f32).collect();
    assert_close(&got, &[0.36, 0.8 / 3.0, 1.6 / 3.0], 1e-6);
}

#[test]
fn viterbi_clamps_lrp0_shares() {
    // Viterbi with LRP-0 shares and Clamp01 on network A, target 1.
    // Layer 2 shares [1.5, −0.5] clamp to [1, 0] → R1 = [1, 0].
    // Layer 0 shares k=0: [0.5, 0.5, 0] → [0.5, 0.5, 0]; k=1: [1, −0.25, 0.25] → [1, 0, 0.25].
    // R0 = [max(0.5·1, 1·0), max(0.5·1, 0·0), max(0·1, 0.25·0)] = [0.5, 0.5, 0].
    let v = net_a()
        .explain::<Viterbi, _>(&x_a(), &[1], &Composite::k_lrp(), &PerLayer::new(Clamp01))
        .unwrap();
    let got: Vec<f64> = v.input().iter().map(|v| v.0).collect();
    assert_eq!(got, [0.5, 0.5, 0.0]);
}

// ---------------------------------------------------------------------------------------------
// Boolean and Counting
// ---------------------------------------------------------------------------------------------

/// Shares of network A under LRP-0, target 1 (from `lrp0_two_layers`):
/// layer 2: [1.5, −0.5]; layer 0: k=0 [0.5, 0.5, 0], k=1 [1, −0.25, 0.25].
fn bool_and_count<T>(theta: T) -> (Vec<bool>, Vec<u64>, Vec<f64>)
where
    T: klrp::Conversion<Boolean> + klrp::Conversion<Counting> + klrp::Conversion<FloatCounting>,
    T: Clone,
{
    let net = net_a();
    let c = Composite::k_lrp();
    let t = PerLayer::new(theta);
    let b = net.explain::<Boolean, _>(&x_a(), &[1], &c, &t).unwrap();
    let n = net.explain::<Counting, _>(&x_a(), &[1], &c, &t).unwrap();
    let f = net
        .explain::<FloatCounting, _>(&x_a(), &[1], &c, &t)
        .unwrap();
    (
        bools(b.input()),
        counts(n.input()),
        f.input().iter().map(|v| v.0).collect(),
    )
}

#[test]
fn boolean_and_counting_with_signed_threshold() {
    // Θ(d) = [d ≥ θ].
    // θ = 0.5 (inclusive): layer 2 [1.5 ✓, −0.5 ✗] → R1 = [1, 0];
    //   layer 0, k=0: [0.5 ✓, 0.5 ✓, 0 ✗] → R0 = [1, 1, 0].
    let (b, n, f) = bool_and_count(Threshold::new(0.5).unwrap());
    assert_eq!(b, [true, true, false]);
    assert_eq!(n, [1, 1, 0]);
    assert_eq!(f, [1.0, 1.0, 0.0]);
    // θ = 0.2: the same — input 2 is reachable only through the negative share −0.5.
    let (b, n, _) = bool_and_count(Threshold::new(0.2).unwrap());
    assert_eq!(b, [true, true, false]);
    assert_eq!(n, [1, 1, 0]);
    // θ = 0.75: layer 0 shares of hidden 0 are 0.5 < 0.75 → nothing reaches the input.
    let (b, n, _) = bool_and_count(Threshold::new(0.75).unwrap());
    assert_eq!(b, [false, false, false]);
    assert_eq!(n, [0, 0, 0]);
    // θ = 0: Θ(0) = 1, so the zero share of input 2 (W1[0][2] = 0) passes: R0 = [1, 1, 1].
    let (b, n, _) = bool_and_count(Threshold::new(0.0).unwrap());
    assert_eq!(b, [true, true, true]);
    assert_eq!(n, [1, 1, 1]);
}

#[test]
fn boolean_and_counting_with_abs_threshold() {
    // Θ(d) = [|d| > θ].
    // θ = 0.2: layer 2 [1.5 ✓, 0.5 ✓] → R1 = [1, 1];
    //   layer 0, k=0: [0.5 ✓, 0.5 ✓, 0 ✗]; k=1: [1 ✓, 0.25 ✓, 0.25 ✓]
    //   → Counting R0 = [1 + 1, 1 + 1, 0 + 1] = [2, 2, 1].
    let (b, n, f) = bool_and_count(AbsThreshold::new(0.2).unwrap());
    assert_eq!(b, [true, true, true]);
    assert_eq!(n, [2, 2, 1]);
    assert_eq!(f, [2.0, 2.0, 1.0]);
    // θ = 0.25 (strict): k=1 becomes [1 ✓, 0.25 ✗, 0.25 ✗] → R0 = [2, 1, 0].
    let (b, n, _) = bool_and_count(AbsThreshold::new(0.25).unwrap());
    assert_eq!(b, [true, true, false]);
    assert_eq!(n, [2, 1, 0]);
}

#[test]
fn counting_dead_output_with_nonpositive_threshold() {
    // Network A with the dead output z2_0 = 0 (W2 row 0 = [1, −1]): its shares are d = 0, and
    // with θ = 0 Θ(0) = 1, so the dead output still has paths: layer 2 R1 = [1, 1];
    // layer 0 shares k=0 [0.5, 0.5, 0], k=1 [1, −0.25, 0.25] → Θ = [1, 1, 1], [1, 0, 1]
    // → R0 = [2, 1, 2]. With θ = 0.1 nothing passes at layer 2 → R0 = 0.
    let net = two_layer(
        3,
        array![[1.0, 2.0, 0.0], [2.0, -1.0, 1.0]],
        None,
        array![[1.0, -1.0], [3.0, -1.0]],
        None,
    );
    let c = Composite::k_lrp();
    let at0 = net
        .explain::<Counting, _>(
            &x_a(),
            &[0],
            &c,
            &PerLayer::new(Threshold::new(0.0).unwrap()),
        )
        .unwrap();
    assert_eq!(counts(at0.input()), [2, 1, 2]);
    let at01 = net
        .explain::<Counting, _>(
            &x_a(),
            &[0],
            &c,
            &PerLayer::new(Threshold::new(0.1).unwrap()),
        )
        .unwrap();
    assert_eq!(counts(at01.input()), [0, 0, 0]);
}

#[test]
fn per_layer_threshold() {
    // θ = 0.2 at layer 2 and 0.75 at layer 0 (network A, target 1, LRP-0):
    // layer 2 [1.5 ✓, −0.5 ✗] → R1 = [1, 0]; layer 0 hidden 0: [0.5, 0.5, 0] all < 0.75 → 0.
    // With θ = 0.75 at layer 2 and 0.2 at layer 0: R1 = [1, 0] → R0 = [1, 1, 0].
    let net = net_a();
    let t = |a: f32, b: f32| {
        PerLayer::new(Threshold::new(a).unwrap()).with(2, Threshold::new(b).unwrap())
    };
    let c = Composite::k_lrp();
    let r = net
        .explain::<Counting, _>(&x_a(), &[1], &c, &t(0.75, 0.2))
        .unwrap();
    assert_eq!(counts(r.input()), [0, 0, 0]);
    let r = net
        .explain::<Counting, _>(&x_a(), &[1], &c, &t(0.2, 0.75))
        .unwrap();
    assert_eq!(counts(r.input()), [1, 1, 0]);
}

// ---------------------------------------------------------------------------------------------
// Pooling and convolution
// ---------------------------------------------------------------------------------------------

/// MaxPool2d(2×2, stride 2) or AvgPool2d → Flatten → Dense [[1, 0.5]] on a 1×2×4 input
///   row 0: [1, 3, 2, 6]
///   row 1: [3, 1, 6, 2]
/// Window 0 = {1, 3, 3, 1} (max 3, tied at (0,1) and (1,0); sum 8, mean 2);
/// window 1 = {2, 6, 6, 2} (max 6, tied at (0,3) and (1,2); sum 16, mean 4).
fn pool_net(pool: Box<dyn Layer>) -> Network {
    Network::new(
        [1, 2, 4],
        vec![pool, Box::new(Flatten), dense(array![[1.0, 0.5]], None)],
    )
    .unwrap()
}

fn pool_x() -> ArrayD<f32> {
    Array4::from_shape_vec((1, 1, 2, 4), vec![1.0, 3.0, 2.0, 6.0, 3.0, 1.0, 6.0, 2.0])
        .unwrap()
        .into_dyn()
}

#[test]
fn max_pool_winner_takes_all_first_max_wins_ties() {
    // Pool output [3, 6]; dense z = 3 + 0.5·6 = 6; LRP-0 d = [3/6, 3/6] → R_pool = [0.5, 0.5].
    // Winner-take-all: all of a window's relevance to its first maximum in row-major order:
    // (0,1) for window 0 (not (1,0)), (0,3) for window 1 (not (1,2)).
    let net = pool_net(Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()));
    assert_eq!(values_f32(&net.forward(&pool_x()).unwrap()), [6.0]);
    let r = real(&net, &pool_x(), &[0], &Composite::k_lrp());
    assert_eq!(values(r.input()), [0.0, 0.5, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]);
    // Boolean with θ = 0.5: the winners' share 1 passes, the others' 0 does not.
    let b = net
        .explain::<Boolean, _>(
            &pool_x(),
            &[0],
            &Composite::k_lrp(),
            &PerLayer::new(Threshold::new(0.5).unwrap()),
        )
        .unwrap();
    assert_eq!(
        bools(b.input()),
        [false, true, false, true, false, false, false, false]
    );
    // Counting with θ = 0: the losers' share 0 passes too (Θ(0) = 1), so every input has one
    // path (each lies in exactly one window; the dense shares 0.5 pass).
    let n = net
        .explain::<Counting, _>(
            &pool_x(),
            &[0],
            &Composite::k_lrp(),
            &PerLayer::new(Threshold::new(0.0).unwrap()),
        )
        .unwrap();
    assert_eq!(counts(n.input()), [1; 8]);
}

#[test]
fn max_pool_with_proportional_rule() {
    // ProportionalRule (ε = 0) on max pooling: d_jk = (a_j / 4) / mean_k = a_j / Σ_window a.
    //   window 0: [1, 3, 3, 1]/8, window 1: [2, 6, 6, 2]/16 = [1, 3, 3, 1]/8; each × R = 0.5
    //   → [1, 3, 3, 1]/16 in both windows.
    // Laid out as the input: row 0 = [1, 3, 1, 3]/16, row 1 = [3, 1, 3, 1]/16.
    let net = pool_net(Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()));
    let c = Composite::k_lrp().with_max_pool(ProportionalRule::new(0.0).unwrap());
    let r = real(&net, &pool_x(), &[0], &c);
    let s = 1.0 / 16.0;
    assert_eq!(
        values(r.input()),
        [s, 3.0 * s, s, 3.0 * s, 3.0 * s, s, 3.0 * s, s]
    );
}

#[test]
fn average_pooling() {
    // AvgPool2d(2×2, stride 2): output [2, 4]; dense z = 2 + 0.5·4 = 4 → R_pool = [2/4, 2/4].
    // Proportional shares a_j / Σ_window a (default ε = 1e-6), as for max pooling above:
    // row 0 = [1, 3, 1, 3]/16, row 1 = [3, 1, 3, 1]/16.
    let net = pool_net(Box::new(AvgPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()));
    assert_eq!(values_f32(&net.forward(&pool_x()).unwrap()), [4.0]);
    let r = real(&net, &pool_x(), &[0], &Composite::k_lrp());
    let s = 1.0 / 16.0;
    assert_close(
        &values(r.input()),
        &[s, 3.0 * s, s, 3.0 * s, 3.0 * s, s, 3.0 * s, s],
        1e-6,
    );
}

#[test]
fn average_pooling_with_padding() {
    // AvgPool2d(1×2, stride (1, 2), padding (0, 1)) on x = [1, 2, 3] (shape 1×1×3):
    //   window 0 covers columns −1..1 → in bounds {x0};     divisor 2 (padding counted) → 0.5
    //   window 1 covers columns  1..3 → in bounds {x1, x2}; divisor 2                  → 2.5
    // Dense [[1, 1]]: z = 3 → R_pool = [0.5/3, 2.5/3] = [1/6, 5/6].
    // Proportional shares (a_j/2)/mean = a_j / Σ in-bounds a: window 0 → x0 gets 1;
    // window 1 → [2/5, 3/5]. R0 = [1/6, 5/6·2/5, 5/6·3/5] = [1/6, 1/3, 1/2]: padding takes none.
    let net = Network::new(
        [1, 1, 3],
        vec![
            Box::new(AvgPool2d::new((1, 2), (1, 2), (0, 1)).unwrap()),
            Box::new(Flatten),
            dense(array![[1.0, 1.0]], None),
        ],
    )
    .unwrap();
    let x = array![[[[1.0_f32, 2.0, 3.0]]]].into_dyn();
    assert_eq!(values_f32(&net.forward(&x).unwrap()), [3.0]);
    let r = real(&net, &x, &[0], &Composite::k_lrp());
    assert_close(&values(r.input()), &[1.0 / 6.0, 1.0 / 3.0, 0.5], 1e-6);
}

#[test]
fn flat_on_padded_convolution_counts_only_in_bounds_taps() {
    // Conv2d with a 1×3 kernel of ones, padding (0, 1), on x = [1, 2, 1] (shape 1×1×3):
    //   out = [0 + 1 + 2, 1 + 2 + 1, 2 + 1 + 0] = [3, 4, 3]
    // Flatten, Dense [[1, 0.5, 1]]: z = 3 + 2 + 3 = 8; LRP-0 → R1 = [3/8, 2/8, 3/8].
    // Flat on the convolution: output 0 has the in-bounds taps {x0, x1} (d = 1/2), output 1
    // {x0, x1, x2} (d = 1/3), output 2 {x1, x2} (d = 1/2); padding is not a connection.
    //   R0_0 = 3/8·1/2 + 2/8·1/3           = 13/48
    //   R0_1 = 3/8·1/2 + 2/8·1/3 + 3/8·1/2 = 22/48
    //   R0_2 = 2/8·1/3 + 3/8·1/2           = 13/48          (Σ = 1; counting padding gives 5/6)
    let conv = Conv2d::new(Array4::ones((1, 1, 1, 3)), None)
        .unwrap()
        .with_padding((0, 1))
        .unwrap();
    let net = Network::new(
        [1, 1, 3],
        vec![
            Box::new(conv),
            Box::new(Flatten),
            dense(array![[1.0, 0.5, 1.0]], None),
        ],
    )
    .unwrap();
    let x = array![[[[1.0_f32, 2.0, 1.0]]]].into_dyn();
    let trace = net.trace(&x).unwrap();
    assert_eq!(values_f32(trace.activation(1).unwrap()), [3.0, 4.0, 3.0]);
    let c = Composite::k_lrp().with_layer(0, FlatRule::default());
    let r = real(&net, &x, &[0], &c);
    assert_close(
        &values(r.input()),
        &[13.0 / 48.0, 22.0 / 48.0, 13.0 / 48.0],
        2e-6,
    );
    // The same rule via epsilon_plus_flat (flat on the first linear layer; ε = 1e-6 on the dense).
    let r = real(&net, &x, &[0], &Composite::epsilon_plus_flat());
    assert_close(
        &values(r.input()),
        &[13.0 / 48.0, 22.0 / 48.0, 13.0 / 48.0],
        2e-6,
    );
}

// ---------------------------------------------------------------------------------------------
// Bias and initialisation
// ---------------------------------------------------------------------------------------------

#[test]
fn bias_relevance_is_absorbed() {
    // Network A with biases b1 = [0, 4], b2 = [0, 12]:
    //   z1 = [4, 4 + 4] = [4, 8], a1 = [4, 8]; z2 = [4 + 8, 12 − 8 + 12] = [12, 16].
    // LRP-0, target 1:
    //   layer 2: d = [4·3/16, 8·(−1)/16] = [0.75, −0.5]; the bias takes 12/16 = 0.75 of R = 1.
    //   layer 0: k=0 (z = 4, no bias): [2, 2, 0]/4 = [0.5, 0.5, 0];
    //            k=1 (z = 8, b = 4):  [4, −1, 1]/8 = [0.5, −0.125, 0.125], bias 4/8 = 0.5,
    //            which takes 0.5·(−0.5) = −0.25.
    //   R0 = [0.5·0.75 + 0.5·(−0.5), 0.5·0.75 + (−0.125)(−0.5), 0.125·(−0.5)]
    //      = [0.125, 0.4375, −0.0625]; Σ = 0.5 = 1 − (0.75 + (−0.25)).
    // conservation_delta = Σ R0 − Σ init = −(bias shares) = −0.5.
    let net = two_layer(
        3,
        array![[1.0, 2.0, 0.0], [2.0, -1.0, 1.0]],
        Some(array![0.0, 4.0]),
        array![[1.0, 1.0], [3.0, -1.0]],
        Some(array![0.0, 12.0]),
    );
    let r = real(&net, &x_a(), &[1], &Composite::k_lrp());
    assert_eq!(values(r.input()), [0.125, 0.4375, -0.0625]);
    assert_eq!(r.conservation_delta(), [-0.5]);
    // Started from the output activation (classical LRP): everything scales by z2_1 = 16.
    let trace = net.trace(&x_a()).unwrap();
    let init = trace.output_init(&[1]).unwrap();
    assert_eq!(values(&init), [0.0, 16.0]);
    let r = net
        .propagate(
            &trace,
            init,
            &Composite::k_lrp(),
            &PerLayer::new(Identity),
            false,
        )
        .unwrap();
    assert_eq!(values(r.input()), [2.0, 7.0, -1.0]);
    assert_eq!(r.conservation_delta(), [-8.0]);
}

#[test]
fn multi_class_init_is_the_sum_for_real_and_counting() {
    // Network A, LRP-0. Target 0: layer 2 d = [4·1/8, 4·1/8] = [0.5, 0.5] → R1 = [0.5, 0.5];
    //   R0 = [0.5·0.5 + 1·0.5, 0.5·0.5 − 0.25·0.5, 0 + 0.25·0.5] = [0.75, 0.125, 0.125].
    // Target 1: [0.25, 0.875, −0.125] (lrp0_two_layers).
    // Init [1, 1]: R is linear in the init, so R0 = [1, 1, 0].
    let net = net_a();
    let trace = net.trace(&x_a()).unwrap();
    let c = Composite::k_lrp();
    let id = PerLayer::new(Identity);
    let init = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![Real(1.0_f32), Real(1.0)]).unwrap();
    let both = net.propagate(&trace, init, &c, &id, false).unwrap();
    assert_eq!(values(both.input()), [1.0, 1.0, 0.0]);
    let t0 = real(&net, &x_a(), &[0], &c);
    assert_eq!(values(t0.input()), [0.75, 0.125, 0.125]);
    // Counting with AbsThreshold 0.2: target 0 has layer-2 shares [0.5, 0.5] → R1 = [1, 1]
    // → R0 = [2, 2, 1] (as for target 1 in boolean_and_counting_with_abs_threshold);
    // init [1, 1] → R1 = [2, 2] → R0 = [4, 4, 2].
    let theta = PerLayer::new(AbsThreshold::new(0.2).unwrap());
    let init = ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![Counting(1), Counting(1)]).unwrap();
    let both = net.propagate(&trace, init, &c, &theta, false).unwrap();
    assert_eq!(counts(both.input()), [4, 4, 2]);
    let t0 = net
        .explain::<Counting, _>(&x_a(), &[0], &c, &theta)
        .unwrap();
    assert_eq!(counts(t0.input()), [2, 2, 1]);
}

/// Bounds broadcast over a sample (as Zennit accepts tensors): one per channel (`[C, 1, 1]`) or
/// per column (`[W]`) gives bit for bit the relevance of the same bounds written out per element,
/// in Real and Boolean.
#[test]
fn zbox_bounds_broadcast_over_the_sample() {
    let (c, h, w) = (2, 3, 4);
    let weight = Array4::from_shape_fn((3, c, 2, 2), |(o, i, y, x)| {
        ((o * 7 + i * 5 + y * 3 + x) % 5) as f32 * 0.25 - 0.5
    });
    let net = Network::new(
        [c, h, w],
        vec![
            Box::new(Conv2d::new(weight, None).unwrap()),
            Box::new(ReLU),
            Box::new(Flatten),
            dense(
                Array2::from_shape_fn((2, 3 * 2 * 3), |(k, j)| ((k + j) % 4) as f32 * 0.5 - 0.6),
                None,
            ),
        ],
    )
    .unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[1, c, h, w]), |i| {
        ((i[1] * 12 + i[2] * 4 + i[3]) % 7) as f32 * 0.3 - 0.9
    });
    let channel_low = [-1.0_f32, -0.9];
    let column_high = [0.9_f32, 1.0, 1.1, 1.2];
    let cases = [
        (
            Bound::from(ArrayD::from_shape_vec(IxDyn(&[c, 1, 1]), channel_low.to_vec()).unwrap()),
            Bound::from(ArrayD::from_shape_vec(IxDyn(&[w]), column_high.to_vec()).unwrap()),
        ),
        (
            Bound::from(ArrayD::from_shape_fn(IxDyn(&[c, h, w]), |i| {
                channel_low[i[0]]
            })),
            Bound::from(ArrayD::from_shape_fn(IxDyn(&[c, h, w]), |i| {
                column_high[i[2]]
            })),
        ),
    ];
    let run = |(low, high): &(Bound, Bound)| {
        let c = Composite::k_lrp().with_layer(0, ZBoxRule::new(low.clone(), high.clone()).unwrap());
        let real = net
            .explain::<Real<f32>, _>(&x, &[1], &c, &PerLayer::new(Identity))
            .unwrap();
        let mask = net
            .explain::<Boolean, _>(&x, &[1], &c, &PerLayer::new(Threshold::new(0.05).unwrap()))
            .unwrap();
        (
            real.input().mapv(|v| v.0.to_bits()),
            mask.input().mapv(|v| v.0),
        )
    };
    let (broadcast, expanded) = (run(&cases[0]), run(&cases[1]));
    assert!(broadcast.0.iter().any(|&b| f32::from_bits(b) != 0.0));
    assert_eq!(broadcast, expanded);
    // One bound per channel (`--low -1,-0.9`): the first axis of the sample.
    let per_channel = (
        Bound::PerChannel(channel_low.to_vec().into()),
        cases[0].1.clone(),
    );
    assert_eq!(run(&per_channel), expanded);
}
