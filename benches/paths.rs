//! The 10 strongest paths on VGG-16 (batch of one 224×224 image, random He-initialised weights)
//! against one Viterbi relevance pass in the same run (the baseline: forward pass keeping every
//! activation, then max-abs K-LRP).
//!
//! Run: `cargo bench --bench paths`. Prints the search's stored and expanded partial paths once.

use criterion::{Criterion, criterion_group, criterion_main};
use klrp::Explainer;
use klrp::models::vgg16;
use klrp::paths::RelevanceGraph;
use ndarray::ArrayD;
use std::hint::black_box;
use std::time::Duration;

fn paths(c: &mut Criterion) {
    let net = vgg16(None).unwrap();
    let x = ArrayD::from_shape_fn(vec![1, 3, 224, 224], |i| {
        let (y, x) = (i[2] as f32 / 224.0, i[3] as f32 / 224.0);
        ((x * 13.0 + i[1] as f32).sin() * (y * 7.0).cos() * 1.5).clamp(-2.0, 2.5)
    });
    let ex = Explainer::viterbi();
    let target = net.trace(&x).unwrap().predictions()[0];
    {
        let g = RelevanceGraph::new(&net, &x, target, &ex).unwrap();
        let (found, stats) = g.search(None, 10).unwrap();
        eprintln!(
            "10 strongest paths: strengths {:.4e} … {:.4e}; {} partial paths stored, {} expanded",
            found[0].strength,
            found[found.len() - 1].strength,
            stats.stored,
            stats.expanded
        );
    }
    let mut g = c.benchmark_group("paths");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("viterbi relevance (baseline: forward + relevance)", |b| {
        b.iter(|| black_box(net.explain_with(&x, target, &ex).unwrap()))
    });
    g.bench_function("10 strongest paths (forward + relevance + search)", |b| {
        b.iter(|| {
            let graph = RelevanceGraph::new(&net, &x, target, &ex).unwrap();
            black_box(graph.strongest(10).unwrap())
        })
    });
    let graph = RelevanceGraph::new(&net, &x, target, &ex).unwrap();
    g.bench_function("10 strongest paths (search alone)", |b| {
        b.iter(|| black_box(graph.strongest(10).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, paths);
criterion_main!(benches);
