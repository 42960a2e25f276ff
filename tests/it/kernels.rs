//! The fast kernels (GEMM convolution, blocked channel-streaming gather, row-scatter dense, SIMD
//! dispatch) agree with the reference kernel that walks every connection one at a time, for every
//! semiring, rule and convolution geometry (stride, padding, dilation).

use klrp::kernels::{linear_forward, propagate, propagate_reference};
use klrp::layers::{Conv2d, Dense, Layer, LinearMap};
use klrp::rules::{
    AlphaBetaRule, EpsilonRule, FlatRule, GammaRule, MaxAbsRule, Rule, WSquareRule, WeightMap,
    ZBoxRule, ZPlusRule, ZeroRule,
};
use klrp::semiring::{Boolean, Counting, FloatCounting, Real, Semiring, Viterbi};
use klrp::{AbsThreshold, Clamp01, Conversion, Identity, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, Dimension};
use proptest::prelude::*;

fn rules() -> Vec<Rule> {
    vec![
        ZeroRule.into(),
        EpsilonRule::new(0.1).unwrap().into(),
        GammaRule::new(0.25, 1e-6).unwrap().into(),
        ZPlusRule::default().into(),
        AlphaBetaRule::new(2.0, 1.0).unwrap().into(),
        ZBoxRule::new(-1.0, 1.0).unwrap().into(),
        FlatRule::default().into(),
        WSquareRule::default().into(),
        MaxAbsRule::default().into(),
    ]
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-4 * scale.max(1e-12)
}

fn compare_all(layer: &dyn Layer, x: &ArrayD<f32>, r_seed: &[f32]) -> Result<(), TestCaseError> {
    let y = layer.forward(x).unwrap();
    let r_real = ArrayD::from_shape_fn(y.raw_dim(), |i| {
        r_seed[i
            .slice()
            .iter()
            .copied()
            .enumerate()
            .map(|(d, v)| v * (d * 7 + 1))
            .sum::<usize>()
            % r_seed.len()]
    });
    for rule in rules() {
        let shares = layer.shares(x, &y, &rule).unwrap();
        // Real, Θ = identity (the linear / GEMM path for convolutions).
        let r = r_real.mapv(Real);
        let fast = propagate(&shares, &Identity, &r, x.shape()).unwrap();
        let slow = propagate_reference(&shares, &Identity, &r, x.shape()).unwrap();
        // Terms of size 1/ε (an exactly vanishing, stabilised denominator) cancel, and the
        // linear (GEMM) form sums them per term rather than per connection.
        let largest_factor = match &shares {
            klrp::layers::Shares::Linear { terms, .. } => terms
                .iter()
                .flat_map(|t| t.scale.iter())
                .fold(0.0f64, |m, v| m.max(f64::from(v.abs()))),
            _ => 0.0,
        };
        let scale = slow
            .iter()
            .fold(largest_factor, |m, v| m.max(v.0.abs() as f64));
        for (f, s) in fast.iter().zip(&slow) {
            prop_assert!(
                close(f.0 as f64, s.0 as f64, scale),
                "{}: real {} vs {}",
                rule.name(),
                f.0,
                s.0
            );
        }
        // Boolean and Counting with both thresholds: exact.
        let rb = r_real.mapv(|v| Boolean(v > 0.3));
        let rc = r_real.mapv(|v| Counting((v * 4.0).max(0.0) as u64));
        let rf = r_real.mapv(|v| FloatCounting((v * 4.0).max(0.0).floor() as f64));
        for th in [0.0f32, 0.05, 0.3] {
            let t = Threshold::new(th).unwrap();
            let a = AbsThreshold::new(th).unwrap();
            exact::<Boolean, _>(&shares, &t, &rb, x.shape(), rule.name())?;
            exact::<Boolean, _>(&shares, &a, &rb, x.shape(), rule.name())?;
            exact::<Counting, _>(&shares, &t, &rc, x.shape(), rule.name())?;
            exact::<Counting, _>(&shares, &a, &rc, x.shape(), rule.name())?;
            exact::<FloatCounting, _>(&shares, &t, &rf, x.shape(), rule.name())?;
        }
        // Viterbi: close.
        let rv = r_real.mapv(|v| Viterbi(f64::from(v.abs().min(1.0))));
        let fast = propagate(&shares, &Clamp01, &rv, x.shape()).unwrap();
        let slow = propagate_reference(&shares, &Clamp01, &rv, x.shape()).unwrap();
        for (f, s) in fast.iter().zip(&slow) {
            prop_assert!(
                close(f.0, s.0, 1.0),
                "{}: viterbi {} vs {}",
                rule.name(),
                f.0,
                s.0
            );
        }
    }
    Ok(())
}

fn exact<K: Semiring, T: Conversion<K>>(
    shares: &klrp::layers::Shares<'_>,
    theta: &T,
    r: &ArrayD<K>,
    shape: &[usize],
    rule: &str,
) -> Result<(), TestCaseError> {
    let fast = propagate(shares, theta, r, shape).unwrap();
    let slow = propagate_reference(shares, theta, r, shape).unwrap();
    prop_assert_eq!(fast, slow, "{} in {}", rule, K::NAME);
    Ok(())
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(prop_oneof![3 => -2.0f32..2.0, 1 => Just(0.0f32)], n)
}

#[derive(Debug, Clone)]
struct ConvCase {
    cin: usize,
    cout: usize,
    k: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
    hw: (usize, usize),
    batch: usize,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        1usize..5,
        1usize..20,
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (0usize..3, 0usize..3),
        (1usize..3, 1usize..3),
        (4usize..9, 4usize..9),
        1usize..3,
    )
        .prop_map(|(cin, cout, k, stride, pad, dil, hw, batch)| ConvCase {
            cin,
            cout,
            k,
            stride,
            pad,
            dil,
            hw,
            batch,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conv_fast_kernels_match_the_reference(
        case in conv_case(),
        seed in values(4096),
    ) {
        let c = &case;
        let w = Array4::from_shape_fn((c.cout, c.cin, c.k.0, c.k.1), |(a, b, d, e)| {
            seed[(a * 131 + b * 31 + d * 7 + e) % 4096]
        });
        let b = Array1::from_shape_fn(c.cout, |i| seed[(i * 17 + 5) % 4096] * 0.1);
        let conv = Conv2d::new(w, Some(b)).unwrap()
            .with_stride(c.stride).unwrap()
            .with_padding(c.pad).unwrap()
            .with_dilation(c.dil).unwrap();
        let Ok(out) = conv.output_shape(&[c.cin, c.hw.0, c.hw.1]) else { return Ok(()); };
        let x = ArrayD::from_shape_fn(vec![c.batch, c.cin, c.hw.0, c.hw.1], |i| {
            let s = seed[(i[0] * 977 + i[1] * 101 + i[2] * 13 + i[3] + 7) % 4096];
            if i[3] % 3 == 0 { s.max(0.0) } else { s }
        });
        // The GEMM forward equals the connection-walking forward.
        let conn = conv.connectivity(&[c.cin, c.hw.0, c.hw.1]).unwrap();
        let slow = linear_forward(&conn, &x, WeightMap::Identity, Some(WeightMap::Identity), &out).unwrap();
        let fast = conv.forward(&x).unwrap();
        for (f, s) in fast.iter().zip(&slow) {
            prop_assert!((f - s).abs() <= 1e-4 * (1.0 + s.abs()), "forward {f} vs {s}");
        }
        compare_all(&conv, &x, &seed[..97])?;
    }

    #[test]
    fn dense_fast_kernels_match_the_reference(
        n_in in 1usize..300,
        n_out in 1usize..12,
        batch in 1usize..3,
        seed in values(4096),
    ) {
        let w = Array2::from_shape_fn((n_out, n_in), |(k, j)| seed[(k * 257 + j) % 4096]);
        let b = Array1::from_shape_fn(n_out, |k| seed[(k * 3 + 1) % 4096] * 0.1);
        let dense = Dense::new(w, Some(b)).unwrap();
        let x = ArrayD::from_shape_fn(vec![batch, n_in], |i| seed[(i[0] * 1009 + i[1] * 3 + 11) % 4096]);
        compare_all(&dense, &x, &seed[..53])?;
    }
}

/// The Viterbi fast path (a max-times transposed convolution) applies only when every share is
/// at most 1; a term whose shares exceed 1 somewhere must be clamped by Θ, which the general kernel
/// does. Shares `p_j |w_jk| q_k` with `p = 2` exceed 1 on the larger weights.
#[test]
fn viterbi_with_shares_above_one_matches_the_reference() {
    let w = Array4::from_shape_fn((3, 2, 3, 3), |(o, i, y, x)| {
        ((o * 5 + i * 3 + y * 2 + x) % 7) as f32 * 0.2 - 0.6
    });
    let layer = Conv2d::new(w, None).unwrap().with_padding((1, 1)).unwrap();
    let x = ArrayD::from_shape_fn(vec![1, 2, 5, 6], |i| ((i[2] * 6 + i[3]) % 4) as f32 * 0.5);
    let conn = layer.connectivity(&[2, 5, 6]).unwrap();
    let term = |p: f32, q: f32| klrp::rules::ShareTerm {
        input: ArrayD::from_elem(vec![1, 2, 5, 6], p).into_shared(),
        weight: WeightMap::Abs,
        scale: ArrayD::from_elem(vec![1, 3, 5, 6], q).into_shared(),
    };
    let r = ArrayD::from_shape_fn(vec![1, 3, 5, 6], |i| {
        Viterbi(((i[1] + i[2] + i[3]) % 5) as f64 * 0.2)
    });
    // Shares up to 2 · 1.2 = 2.4 (clamped), and all below 1 (the fast path's own case).
    for (p, q) in [(2.0, 1.0), (0.5, 1.0)] {
        let shares = klrp::layers::Shares::Linear {
            connectivity: conn.clone(),
            terms: vec![term(p, q)],
        };
        let fast = propagate(&shares, &Clamp01, &r, x.shape()).unwrap();
        let slow = propagate_reference(&shares, &Clamp01, &r, x.shape()).unwrap();
        for (a, b) in fast.iter().zip(slow.iter()) {
            assert!((a.0 - b.0).abs() <= 1e-6, "p = {p}: {} vs {}", a.0, b.0);
        }
    }
}
