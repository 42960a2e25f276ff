//! Determinism across thread counts, and batch independence, on networks big enough for the
//! parallel kernels to split their work: convolutions with 64 channels (stride 1: the im2col GEMM
//! forward and, for Real with Θ = identity, the transposed-GEMM relevance; stride 2: the blocked
//! gather), max pooling, and a dense layer with 2,304 inputs.
//!
//! - Exact semirings (Boolean, Counting, Tropical, Viterbi, Fuzzy) give bit-identical relevance
//!   with 1, 2 and 3 threads.
//! - Real relevance agrees to 1e-6 relative across thread counts.
//! - A sample explained alone equals the same sample inside a batch of different samples (bit for
//!   bit in the exact semirings, to 1e-6 relative in Real).

use crate::support::rng::Rng;
use klrp::composite::Composite;
use klrp::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU};
use klrp::rules::{EpsilonRule, GammaRule, ZPlusRule};
use klrp::semiring::{Boolean, Counting, Fuzzy, Real, Semiring, Tropical, Viterbi};
use klrp::{AbsThreshold, Clamp01, Conversion, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, IxDyn};

fn conv(rng: &mut Rng, cout: usize, cin: usize, stride: usize) -> Box<dyn Layer> {
    let scale = (2.0 / (cin * 9) as f32).sqrt();
    let w = Array4::from_shape_fn((cout, cin, 3, 3), |_| rng.uniform(-scale, scale));
    let b = Array1::from_shape_fn(cout, |_| rng.uniform(-0.05, 0.05));
    Box::new(
        Conv2d::new(w, Some(b))
            .unwrap()
            .with_stride((stride, stride))
            .unwrap()
            .with_padding((1, 1))
            .unwrap(),
    )
}

/// [3, 12, 12] → Conv 3→64 (s1) → ReLU → MaxPool 2 (s1) → Conv 64→64 (s1) → ReLU
/// → Conv 64→64 (s2) → ReLU → Flatten (2,304) → Dense 2,304→10.
fn network() -> Network {
    let mut rng = Rng::new(2024);
    let dense_in = 64 * 6 * 6;
    let scale = (2.0 / dense_in as f32).sqrt();
    let layers: Vec<Box<dyn Layer>> = vec![
        conv(&mut rng, 64, 3, 1),
        Box::new(ReLU),
        Box::new(MaxPool2d::new((2, 2), (1, 1), (0, 0)).unwrap()),
        conv(&mut rng, 64, 64, 1),
        Box::new(ReLU),
        conv(&mut rng, 64, 64, 2),
        Box::new(ReLU),
        Box::new(Flatten),
        Box::new(
            Dense::new(
                Array2::from_shape_fn((10, dense_in), |_| rng.uniform(-scale, scale)),
                Some(Array1::from_shape_fn(10, |_| rng.uniform(-0.05, 0.05))),
            )
            .unwrap(),
        ),
    ];
    let net = Network::new([3, 12, 12], layers).unwrap();
    assert_eq!(net.layer_output_shape(7), Some(&[dense_in][..]));
    net
}

fn batch(n: usize) -> ArrayD<f32> {
    let mut rng = Rng::new(99);
    ArrayD::from_shape_fn(IxDyn(&[n, 3, 12, 12]), |_| rng.uniform(-1.0, 1.0))
}

fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Forward pass and relevance, both in the current thread pool; with `fixed_trace`, the forward
/// pass runs on one thread and only the relevance in the current pool.
fn explain<K: Semiring, T: Conversion<K> + Clone>(
    net: &Network,
    x: &ArrayD<f32>,
    targets: &[usize],
    c: &Composite,
    theta: &T,
    fixed_trace: bool,
) -> ArrayD<K> {
    let theta = PerLayer::new(theta.clone());
    if fixed_trace {
        let trace = in_pool(1, || net.trace(x).unwrap());
        let init = klrp::one_hot::<K>(trace.output().shape(), targets).unwrap();
        net.propagate(&trace, init, c, &theta, false)
            .unwrap()
            .into_input()
    } else {
        net.explain::<K, _>(x, targets, c, &theta)
            .unwrap()
            .into_input()
    }
}

/// Bit-identical relevance with 1, 2 and 3 threads, and alone = inside the batch.
fn exact<K: Semiring, T: Conversion<K> + Clone + Sync>(
    net: &Network,
    x: &ArrayD<f32>,
    targets: &[usize],
    c: &Composite,
    theta: T,
    fixed: bool,
) {
    let one = in_pool(1, || explain::<K, T>(net, x, targets, c, &theta, fixed));
    assert!(
        one.iter().any(|v| !v.is_zero()),
        "{}/{}: all-zero relevance tests nothing",
        K::NAME,
        c.name()
    );
    for threads in [2, 3] {
        let r = in_pool(threads, || {
            explain::<K, T>(net, x, targets, c, &theta, fixed)
        });
        assert!(
            r == one,
            "{}/{}: {threads} threads differ from 1",
            K::NAME,
            c.name()
        );
    }
    let s = 1;
    let sample = x.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
    let alone = in_pool(3, || {
        explain::<K, T>(net, &sample, &targets[s..=s], c, &theta, fixed)
    });
    assert!(
        alone.index_axis(Axis(0), 0) == one.index_axis(Axis(0), s),
        "{}/{}: sample alone differs from inside the batch",
        K::NAME,
        c.name()
    );
}

/// The largest difference relative to the largest relevance of the sample (norm-wise: an element
/// that cancels to nearly 0 is compared at the sample's scale, not its own).
fn worst_relative(a: &ArrayD<Real<f32>>, b: &ArrayD<Real<f32>>) -> f32 {
    a.outer_iter()
        .zip(b.outer_iter())
        .map(|(sa, sb)| {
            let scale = sa.iter().fold(0f32, |m, v| m.max(v.0.abs()));
            let diff = sa
                .iter()
                .zip(sb.iter())
                .fold(0f32, |m, (x, y)| m.max((x.0 - y.0).abs()));
            diff / scale.max(f32::MIN_POSITIVE)
        })
        .fold(0.0, f32::max)
}

fn check_exact(fixed: bool) {
    let net = network();
    let x = batch(3);
    let targets = [3, 7, 0];
    let t = Threshold::new(0.01).unwrap();
    exact::<Boolean, _>(&net, &x, &targets, &Composite::k_lrp(), t, fixed);
    exact::<Counting, _>(&net, &x, &targets, &Composite::k_lrp(), t, fixed);
    exact::<Counting, _>(
        &net,
        &x,
        &targets,
        &Composite::k_lrp(),
        AbsThreshold::new(0.001).unwrap(),
        fixed,
    );
    exact::<Viterbi, _>(&net, &x, &targets, &Composite::viterbi(), Clamp01, fixed);
    exact::<Fuzzy, _>(&net, &x, &targets, &Composite::viterbi(), Clamp01, fixed);
    exact::<Tropical, _>(
        &net,
        &x,
        &targets,
        &Composite::k_lrp(),
        |d: f32| {
            if d > 0.0 {
                Tropical(-f64::from(d.min(1.0)).ln())
            } else {
                Tropical::zero()
            }
        },
        fixed,
    );
}

fn check_real(fixed: bool) {
    let net = network();
    let x = batch(3);
    let targets = [3, 7, 0];
    for c in [
        Composite::uniform(EpsilonRule::default()),
        Composite::uniform(GammaRule::new(0.25, 1e-6).unwrap()),
        Composite::uniform(ZPlusRule::default()),
        Composite::epsilon_plus_flat(),
    ] {
        let one = in_pool(1, || {
            explain::<Real<f32>, _>(&net, &x, &targets, &c, &Identity, fixed)
        });
        assert!(one.iter().all(|v| v.0.is_finite()));
        for threads in [2, 3] {
            let r = in_pool(threads, || {
                explain::<Real<f32>, _>(&net, &x, &targets, &c, &Identity, fixed)
            });
            let worst = worst_relative(&one, &r);
            assert!(worst <= 1e-6, "{}: {threads} threads: {worst:e}", c.name());
        }
        for s in 0..3 {
            let sample = x.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
            let alone = in_pool(3, || {
                explain::<Real<f32>, _>(&net, &sample, &targets[s..=s], &c, &Identity, fixed)
            });
            let inside = one.index_axis(Axis(0), s).insert_axis(Axis(0)).to_owned();
            let worst = worst_relative(&inside, &alone);
            assert!(worst <= 1e-6, "{}: sample {s} alone: {worst:e}", c.name());
        }
    }
}

/// The relevance kernels alone (the trace computed once, on one thread): exact semirings are
/// bit-identical for 1, 2 and 3 threads; a sample alone equals it inside the batch.
#[test]
fn relevance_is_bit_identical_for_any_thread_count_in_exact_semirings() {
    check_exact(true);
}

/// The relevance kernels alone: Real agrees to 1e-6 relative across thread counts and batches.
#[test]
fn real_relevance_agrees_to_1e6_across_thread_counts_for_a_fixed_trace() {
    check_real(true);
}

/// The whole explanation, forward pass included, in pools of 1, 2 and 3 threads.
///
/// The stride-1 convolution forward sizes its GEMM blocks from the problem alone, so activations,
/// and with them every semiring's relevance, do not depend on the thread count.
#[test]
fn explanations_are_deterministic_across_thread_counts() {
    check_exact(false);
    check_real(false);
}

/// Minimal reproducer of the kernel bug above: one stride-1 convolution 64 → 64 on 11 × 11.
#[test]
fn forward_is_bit_identical_for_any_thread_count() {
    let mut rng = Rng::new(1);
    let net = Network::new([64, 11, 11], vec![conv(&mut rng, 64, 64, 1)]).unwrap();
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 64, 11, 11]), |_| rng.uniform(-1.0, 1.0));
    let one = in_pool(1, || net.forward(&x).unwrap());
    for threads in [2, 3] {
        let t = in_pool(threads, || net.forward(&x).unwrap());
        let differ = one.iter().zip(&t).filter(|(a, b)| a != b).count();
        assert_eq!(
            differ,
            0,
            "{threads} threads: {differ} of {} outputs differ",
            one.len()
        );
    }
}
