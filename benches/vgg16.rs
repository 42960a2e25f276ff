//! Full VGG-16 (batch of one 224×224 image, random He-initialised weights): the forward pass
//! keeping every activation (`trace`, the in-run baseline; LRP needs it), the forward pass alone,
//! and relevance per semiring.
//!
//! Run: `cargo bench --bench vgg16`. Each iteration takes up to a few seconds; expect ~3 minutes.

use criterion::{Criterion, criterion_group, criterion_main};
use klrp::composite::Composite;
use klrp::models::vgg16;
use klrp::semiring::{Boolean, Counting, FloatCounting, Viterbi};
use klrp::{AbsThreshold, Clamp01, Identity, PerLayer, one_hot};
use ndarray::ArrayD;
use std::hint::black_box;
use std::time::Duration;

fn vgg(c: &mut Criterion) {
    let net = vgg16(None).unwrap();
    let x = ArrayD::from_shape_fn(vec![1, 3, 224, 224], |i| {
        let (y, x) = (i[2] as f32 / 224.0, i[3] as f32 / 224.0);
        ((x * 13.0 + i[1] as f32).sin() * (y * 7.0).cos() * 1.5).clamp(-2.0, 2.5)
    });
    let trace = net.trace(&x).unwrap();
    let target = [trace.predictions()[0]];
    // The report's θ × 0.1: with random weights the report's own values leave every mask empty.
    let mut theta = PerLayer::new(AbsThreshold::new(0.0).unwrap());
    for (i, t) in [
        (0, 0.05),
        (2, 0.05),
        (5, 0.05),
        (7, 0.05),
        (10, 0.05),
        (12, 0.05),
        (14, 0.06),
    ]
    .into_iter()
    .chain([
        (17, 0.06),
        (19, 0.06),
        (21, 0.1),
        (24, 0.09),
        (26, 0.025),
        (28, 0.3),
    ])
    .chain([(33, 0.043), (36, 0.0145), (39, 0.0145)])
    {
        theta.set(i, AbsThreshold::new(t * 0.1).unwrap());
    }
    let egb = Composite::epsilon_gamma_box(-3.0, 3.0).unwrap();
    let mut g = c.benchmark_group("vgg16");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("forward (baseline)", |b| {
        b.iter(|| black_box(net.trace(&x).unwrap()))
    });
    // The check `klrp explain` runs after the forward pass: units within f32 rounding of a
    // kink (max-pooling near-ties, ReLU inputs at 0), docs/benchmarks.md.
    g.bench_function("near kinks (after the forward)", |b| {
        b.iter(|| black_box(net.near_kinks(&trace).unwrap()))
    });
    // The forward pass alone (activations dropped as it goes), as PyTorch's no-grad forward.
    g.bench_function("forward without trace", |b| {
        b.iter(|| black_box(net.forward(&x).unwrap()))
    });
    g.bench_function("real epsilon-gamma-box (forward + relevance)", |b| {
        b.iter(|| {
            let t = net.trace(&x).unwrap();
            let init = t.output_init(&target).unwrap();
            black_box(
                net.propagate(&t, init, &egb, &PerLayer::new(Identity), false)
                    .unwrap(),
            )
        })
    });
    g.bench_function("boolean (relevance)", |b| {
        b.iter(|| {
            let init = one_hot::<Boolean>(trace.output().shape(), &target).unwrap();
            black_box(
                net.propagate(&trace, init, &Composite::k_lrp(), &theta, false)
                    .unwrap(),
            )
        })
    });
    g.bench_function("counting u64 (relevance)", |b| {
        b.iter(|| {
            let init = one_hot::<Counting>(trace.output().shape(), &target).unwrap();
            black_box(
                net.propagate(&trace, init, &Composite::k_lrp(), &theta, false)
                    .unwrap(),
            )
        })
    });
    g.bench_function("counting f64 (relevance)", |b| {
        b.iter(|| {
            let init = one_hot::<FloatCounting>(trace.output().shape(), &target).unwrap();
            black_box(
                net.propagate(&trace, init, &Composite::k_lrp(), &theta, false)
                    .unwrap(),
            )
        })
    });
    g.bench_function("viterbi (relevance)", |b| {
        b.iter(|| {
            let init = one_hot::<Viterbi>(trace.output().shape(), &target).unwrap();
            let th = PerLayer::new(Clamp01);
            black_box(
                net.propagate(&trace, init, &Composite::viterbi(), &th, false)
                    .unwrap(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, vgg);
criterion_main!(benches);
