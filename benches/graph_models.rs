//! ResNet-50 and MobileNetV2 imported from ONNX (graphs: residual `Add`, depthwise convolutions),
//! batch of one 224×224 input: the forward pass keeping every activation (`trace`, the in-run
//! baseline), ε-γ-box (forward + relevance, what Zennit's `Gradient` call does), and on ResNet-50
//! Boolean, Counting and Viterbi (forward + relevance, and relevance alone).
//!
//! The models are the exports of `tests/fixtures/onnx/make_graph_models.py --big DIR` (random
//! weights, random BatchNorm statistics; too large to commit): run with
//! `KLRP_ONNX_EXPORTS=DIR cargo bench --bench graph_models`. Without the variable the bench says so
//! and measures nothing. `bench/zennit_speed.py` times Zennit on the same files' models.

use criterion::{Criterion, criterion_group, criterion_main};
use klrp::composite::Composite;
use klrp::io::npy::read_npy_file;
use klrp::io::onnx::load_onnx_file;
use klrp::semiring::{Boolean, Counting, Viterbi};
use klrp::{AbsThreshold, Clamp01, Identity, Network, PerLayer, one_hot};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

fn load(dir: &std::path::Path, name: &str) -> Option<Network> {
    let path = dir.join(format!("{name}.ts_fold.onnx"));
    if !path.exists() {
        eprintln!("{}: missing, skipped", path.display());
        return None;
    }
    Some(
        load_onnx_file(&path)
            .and_then(|m| m.into_network().canonize())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

fn graph_models(c: &mut Criterion) {
    let Some(dir) = std::env::var_os("KLRP_ONNX_EXPORTS").map(PathBuf::from) else {
        eprintln!(
            "graph_models: set KLRP_ONNX_EXPORTS to the directory of make_graph_models.py --big"
        );
        return;
    };
    let x = read_npy_file(dir.join("x_1x3x224x224.npy"))
        .and_then(|a| a.to_f32())
        .expect("x_1x3x224x224.npy");
    let egb = Composite::epsilon_gamma_box(-3.0, 3.0).unwrap();
    let theta = PerLayer::new(AbsThreshold::new(0.01).unwrap());
    for name in ["resnet50", "mobilenet_v2"] {
        let Some(net) = load(&dir, name) else {
            continue;
        };
        let trace = net.trace(&x).unwrap();
        let target = [trace.predictions()[0]];
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .measurement_time(Duration::from_secs(15))
            .warm_up_time(Duration::from_secs(1));
        g.bench_function("forward (baseline)", |b| {
            b.iter(|| black_box(net.trace(&x).unwrap()))
        });
        g.bench_function("real epsilon-gamma-box (forward + relevance)", |b| {
            b.iter(|| {
                let t = net.trace(&x).unwrap();
                let init =
                    one_hot::<klrp::semiring::Real<f32>>(t.output().shape(), &target).unwrap();
                black_box(
                    net.propagate(&t, init, &egb, &PerLayer::new(Identity), false)
                        .unwrap(),
                )
            })
        });
        if name != "resnet50" {
            g.finish();
            continue;
        }
        g.bench_function("boolean (forward + relevance)", |b| {
            b.iter(|| {
                let t = net.trace(&x).unwrap();
                let init = one_hot::<Boolean>(t.output().shape(), &target).unwrap();
                black_box(
                    net.propagate(&t, init, &Composite::k_lrp(), &theta, false)
                        .unwrap(),
                )
            })
        });
        g.bench_function("counting (forward + relevance)", |b| {
            b.iter(|| {
                let t = net.trace(&x).unwrap();
                let init = one_hot::<Counting>(t.output().shape(), &target).unwrap();
                black_box(
                    net.propagate(&t, init, &Composite::k_lrp(), &theta, false)
                        .unwrap(),
                )
            })
        });
        g.bench_function("viterbi (forward + relevance)", |b| {
            b.iter(|| {
                let t = net.trace(&x).unwrap();
                let init = one_hot::<Viterbi>(t.output().shape(), &target).unwrap();
                black_box(
                    net.propagate(
                        &t,
                        init,
                        &Composite::viterbi(),
                        &PerLayer::new(Clamp01),
                        false,
                    )
                    .unwrap(),
                )
            })
        });
        g.finish();
    }
}

criterion_group!(benches, graph_models);
criterion_main!(benches);
