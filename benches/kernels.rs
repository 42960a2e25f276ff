//! Relevance kernels per semiring on VGG-16 layer shapes, each against the forward pass of the
//! same layer (the in-run baseline), plus thread scaling.
//!
//! Run: `cargo bench --bench kernels` (add `-- conv`, `-- dense`, `-- depthwise` or `-- threads` to
//! filter).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use klrp::kernels::propagate;
use klrp::layers::{Conv2d, Dense, Layer, Tensor};
use klrp::rules::{EpsilonRule, GammaRule, MaxAbsRule, Rule, ZeroRule};
use klrp::semiring::{Boolean, Counting, FloatCounting, Real, Semiring, Viterbi};
use klrp::{AbsThreshold, Clamp01, Conversion, Identity};
use ndarray::{Array1, Array2, Array4, ArrayD};
use std::hint::black_box;
use std::time::Duration;

/// SplitMix64 → uniform in [-1, 1).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A layer, a post-ReLU input (about half zeros) and its output.
fn setup(layer: &dyn Layer, input: &[usize], rng: &mut Rng) -> (Tensor, Tensor) {
    let mut shape = vec![1];
    shape.extend_from_slice(input);
    let x = ArrayD::from_shape_fn(shape, |_| rng.next().max(0.0));
    let y = layer.forward(&x).unwrap();
    (x, y)
}

fn relevance<K: Semiring, T: Conversion<K>>(
    layer: &dyn Layer,
    x: &Tensor,
    y: &Tensor,
    rule: &Rule,
    theta: &T,
    r: &ArrayD<K>,
) -> ArrayD<K> {
    let shares = layer.shares(x, y, rule).unwrap();
    propagate(&shares, theta, r, x.shape()).unwrap()
}

fn bench_layer(c: &mut Criterion, group: &str, layer: &dyn Layer, input: &[usize], theta: f32) {
    let mut rng = Rng(7);
    let (x, y) = setup(layer, input, &mut rng);
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("forward (baseline)", |b| {
        b.iter(|| black_box(layer.forward(&x).unwrap()))
    });
    // Relevance arriving at the layer: dense-ish and positive, like a mid-network relevance map.
    let r_real = y.mapv(|v| Real(v.abs() * 0.01));
    let r_bool = y.mapv(|v| Boolean(v > 0.0));
    let r_count = y.mapv(|v| Counting(u64::from(v > 0.0) * 3));
    let r_fcount = y.mapv(|v| FloatCounting(if v > 0.0 { 3.0 } else { 0.0 }));
    let r_vit = y.mapv(|v| Viterbi(f64::from(v.abs().min(1.0))));
    let abs = AbsThreshold::new(theta).unwrap();
    let gamma: Rule = GammaRule::new(0.25, 1e-6).unwrap().into();
    let zero: Rule = ZeroRule.into();
    let maxabs: Rule = MaxAbsRule::default().into();
    g.bench_function("real (gamma, linear form)", |b| {
        b.iter(|| black_box(relevance(layer, &x, &y, &gamma, &Identity, &r_real)))
    });
    g.bench_function("boolean (LRP-0, |d| > θ)", |b| {
        b.iter(|| black_box(relevance(layer, &x, &y, &zero, &abs, &r_bool)))
    });
    g.bench_function("counting u64 (LRP-0, |d| > θ)", |b| {
        b.iter(|| black_box(relevance(layer, &x, &y, &zero, &abs, &r_count)))
    });
    g.bench_function("counting f64 (LRP-0, |d| > θ)", |b| {
        b.iter(|| black_box(relevance(layer, &x, &y, &zero, &abs, &r_fcount)))
    });
    g.bench_function("viterbi (max-abs)", |b| {
        b.iter(|| black_box(relevance(layer, &x, &y, &maxabs, &Clamp01, &r_vit)))
    });
    g.finish();
}

fn conv(cin: usize, cout: usize, rng: &mut Rng) -> Conv2d {
    let std = (2.0 / (cin as f32 * 9.0)).sqrt() * 1.7;
    let w = Array4::from_shape_fn((cout, cin, 3, 3), |_| rng.next() * std);
    let b = Array1::from_shape_fn(cout, |_| rng.next() * 0.01);
    Conv2d::new(w, Some(b))
        .unwrap()
        .with_padding((1, 1))
        .unwrap()
}

/// Depthwise and grouped convolutions of MobileNetV2 / EfficientNet shapes: forward, ε relevance
/// (Real), Boolean (LRP-0, |d| > θ) and Viterbi (max-abs). Group names read
/// `depthwise <channels>/<groups> k×k s<stride> @<hw>²`.
fn depthwise_layers(c: &mut Criterion) {
    let mut rng = Rng(4);
    for (ch, groups, k, stride, hw) in [
        (144, 144, 3, 1, 56),
        (144, 144, 3, 2, 56),
        (960, 960, 3, 1, 7),
        (144, 144, 5, 1, 28),
        (192, 8, 1, 1, 28),
    ] {
        let std = (2.0 / (ch / groups * k * k) as f32).sqrt() * 1.7;
        let w = Array4::from_shape_fn((ch, ch / groups, k, k), |_| rng.next() * std);
        let b = Array1::from_shape_fn(ch, |_| rng.next() * 0.01);
        let layer = Conv2d::new(w, Some(b))
            .unwrap()
            .with_groups(groups)
            .unwrap()
            .with_stride((stride, stride))
            .unwrap()
            .with_padding((k / 2, k / 2))
            .unwrap();
        let (x, y) = setup(&layer, &[ch, hw, hw], &mut rng);
        let r_real = y.mapv(|v| Real(v.abs() * 0.01));
        let r_bool = y.mapv(|v| Boolean(v > 0.0));
        let r_vit = y.mapv(|v| Viterbi(f64::from(v.abs().min(1.0))));
        let abs = AbsThreshold::new(0.002).unwrap();
        let epsilon: Rule = EpsilonRule::new(1e-6).unwrap().into();
        let zero: Rule = ZeroRule.into();
        let maxabs: Rule = MaxAbsRule::default().into();
        let mut g = c.benchmark_group(format!("depthwise {ch}/{groups} {k}×{k} s{stride} @{hw}²"));
        g.sample_size(10)
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300));
        g.bench_function("forward", |b| {
            b.iter(|| black_box(layer.forward(&x).unwrap()))
        });
        g.bench_function("real (epsilon)", |b| {
            b.iter(|| black_box(relevance(&layer, &x, &y, &epsilon, &Identity, &r_real)))
        });
        g.bench_function("boolean (LRP-0, |d| > θ)", |b| {
            b.iter(|| black_box(relevance(&layer, &x, &y, &zero, &abs, &r_bool)))
        });
        g.bench_function("viterbi (max-abs)", |b| {
            b.iter(|| black_box(relevance(&layer, &x, &y, &maxabs, &Clamp01, &r_vit)))
        });
        g.finish();
    }
}

fn dense(n_in: usize, n_out: usize, rng: &mut Rng) -> Dense {
    let std = (2.0 / n_in as f32).sqrt() * 1.7;
    let w = Array2::from_shape_fn((n_out, n_in), |_| rng.next() * std);
    Dense::new(w, Some(Array1::zeros(n_out))).unwrap()
}

fn conv_layers(c: &mut Criterion) {
    let mut rng = Rng(1);
    for (cin, cout, hw) in [(64, 64, 224), (256, 256, 56), (512, 512, 14)] {
        let layer = conv(cin, cout, &mut rng);
        bench_layer(
            c,
            &format!("conv {cin}→{cout} @{hw}²"),
            &layer,
            &[cin, hw, hw],
            0.002,
        );
    }
}

fn dense_layers(c: &mut Criterion) {
    let mut rng = Rng(2);
    for (n_in, n_out) in [(784, 300), (4096, 4096)] {
        let layer = dense(n_in, n_out, &mut rng);
        bench_layer(c, &format!("dense {n_in}→{n_out}"), &layer, &[n_in], 0.002);
    }
}

/// 1 → 2 threads on the two largest VGG-16 layer shapes: the forward pass and relevance in the
/// Real (γ), Boolean and Counting semirings. Group names read
/// `threads <layer> <what>`, parameters are the thread count.
fn thread_scaling(c: &mut Criterion) {
    let mut rng = Rng(3);
    for (cin, hw) in [(64, 224), (256, 56)] {
        let layer = conv(cin, cin, &mut rng);
        let (x, y) = setup(&layer, &[cin, hw, hw], &mut rng);
        let r_real = y.mapv(|v| Real(v.abs() * 0.01));
        let r_bool = y.mapv(|v| Boolean(v > 0.0));
        let r_count = y.mapv(|v| Counting(u64::from(v > 0.0) * 3));
        let gamma: Rule = GammaRule::new(0.25, 1e-6).unwrap().into();
        let zero: Rule = ZeroRule.into();
        let abs = AbsThreshold::new(0.002).unwrap();
        let name = format!("conv {cin}→{cin} @{hw}²");
        let pools: Vec<(usize, rayon::ThreadPool)> = [1usize, 2]
            .into_iter()
            .map(|t| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap();
                (t, pool)
            })
            .collect();
        for what in ["forward", "real", "boolean", "counting u64"] {
            let mut g = c.benchmark_group(format!("threads {name} {what}"));
            g.sample_size(10)
                .measurement_time(Duration::from_secs(4))
                .warm_up_time(Duration::from_millis(500));
            for (t, pool) in &pools {
                g.bench_with_input(BenchmarkId::from_parameter(t), t, |b, _| {
                    b.iter(|| {
                        pool.install(|| match what {
                            "forward" => {
                                black_box(layer.forward(&x).unwrap());
                            }
                            "real" => {
                                black_box(relevance(&layer, &x, &y, &gamma, &Identity, &r_real));
                            }
                            "boolean" => {
                                black_box(relevance(&layer, &x, &y, &zero, &abs, &r_bool));
                            }
                            _ => {
                                black_box(relevance(&layer, &x, &y, &zero, &abs, &r_count));
                            }
                        })
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(
    benches,
    conv_layers,
    depthwise_layers,
    dense_layers,
    thread_scaling
);
criterion_main!(benches);
