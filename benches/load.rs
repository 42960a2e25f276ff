//! Loading VGG-16 from ONNX (random weights, 138 M parameters, 553 MB): `parse_onnx` on the
//! file's bytes, against an in-run baseline that copies those bytes once (`to_vec`), so that the
//! ratio load / copy can be compared between runs on a busy machine. Before the benchmark the
//! peak resident memory of one load is printed (Linux: `VmHWM` after resetting it).
//!
//! Run: `cargo bench --bench load`. Takes about two minutes.

#[path = "../tests/it/support/onnx_writer.rs"]
mod w;

use criterion::{Criterion, criterion_group, criterion_main};
use klrp::io::onnx::{load_onnx_file, parse_onnx};
use std::hint::black_box;
use std::time::Duration;

/// torchvision's VGG-16 configuration: output channels, `0` for a 2 × 2 max-pool.
const CONFIG: [usize; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// Deterministic pseudo-random weights in [-0.05, 0.05) (a 64-bit LCG).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

/// VGG-16 (features, flatten, three dense layers) as ONNX bytes, weights in `raw_data`.
fn vgg16_onnx() -> Vec<u8> {
    let (mut nodes, mut inits) = (Vec::new(), Vec::new());
    let (mut x, mut c, mut k) = ("input".to_string(), 3usize, 0);
    for &out in &CONFIG {
        k += 1;
        let y = format!("x{k}");
        if out == 0 {
            let attrs = [
                w::Attr::Ints("kernel_shape", &[2, 2]),
                w::Attr::Ints("strides", &[2, 2]),
            ];
            nodes.push(w::node("MaxPool", &y, &[&x], &[&y], &attrs));
        } else {
            let (wn, bn) = (format!("w{k}"), format!("b{k}"));
            let dims = [out as i64, c as i64, 3, 3];
            inits.push(w::tensor_raw(&wn, &dims, &weights(out * c * 9, k)));
            inits.push(w::tensor_raw(&bn, &[out as i64], &weights(out, k + 100)));
            let attrs = [
                w::Attr::Ints("kernel_shape", &[3, 3]),
                w::Attr::Ints("pads", &[1, 1, 1, 1]),
            ];
            let conv = format!("c{k}");
            nodes.push(w::node("Conv", &conv, &[&x, &wn, &bn], &[&conv], &attrs));
            nodes.push(w::node("Relu", &y, &[&conv], &[&y], &[]));
            c = out;
        }
        x = y;
    }
    nodes.push(w::node("Flatten", "flat", &[&x], &["flat"], &[]));
    x = "flat".into();
    for (i, (fan_in, fan_out)) in [(25088usize, 4096usize), (4096, 4096), (4096, 1000)]
        .into_iter()
        .enumerate()
    {
        let (wn, bn, y) = (format!("fw{i}"), format!("fb{i}"), format!("f{i}"));
        let dims = [fan_out as i64, fan_in as i64];
        inits.push(w::tensor_raw(
            &wn,
            &dims,
            &weights(fan_in * fan_out, 200 + i as u64),
        ));
        inits.push(w::tensor_raw(
            &bn,
            &[fan_out as i64],
            &weights(fan_out, 300 + i as u64),
        ));
        let gemm = format!("g{i}");
        let attrs = [w::Attr::Int("transB", 1)];
        nodes.push(w::node("Gemm", &gemm, &[&x, &wn, &bn], &[&gemm], &attrs));
        if i < 2 {
            nodes.push(w::node("Relu", &y, &[&gemm], &[&y], &[]));
            x = y;
        } else {
            x = gemm;
        }
    }
    let input = w::value_info("input", &[Some(1), Some(3), Some(224), Some(224)]);
    let output = w::value_info(&x, &[Some(1), Some(1000)]);
    w::model(&nodes, &inits, input, output)
}

/// Peak resident memory (kB) of `f`, from `/proc/self/status` after resetting the peak.
fn peak_kb(f: impl FnOnce()) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    let before = field("VmRSS:")?;
    f();
    Some((before, field("VmHWM:")?))
}

fn load(c: &mut Criterion) {
    let bytes = vgg16_onnx();
    let model = parse_onnx(&bytes).expect("the VGG-16 model imports");
    assert_eq!(model.network().param_count(), 138_357_544);
    drop(model);
    let path = std::env::temp_dir().join(format!("klrp-bench-vgg16-{}.onnx", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    if let Some((rss, peak)) = peak_kb(|| drop(black_box(parse_onnx(&bytes).unwrap()))) {
        eprintln!(
            "parse_onnx (file bytes already in memory, {} MB): peak RSS {} MB, +{} MB",
            bytes.len() >> 20,
            peak >> 10,
            (peak - rss) >> 10
        );
    }
    if let Some((rss, peak)) = peak_kb(|| drop(black_box(load_onnx_file(&path).unwrap()))) {
        eprintln!(
            "load_onnx_file: peak RSS {} MB, +{} MB",
            peak >> 10,
            (peak - rss) >> 10
        );
    }
    let mut g = c.benchmark_group("load vgg16");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("copy the file's bytes (baseline)", |b| {
        b.iter(|| black_box(bytes.to_vec()))
    });
    g.bench_function("parse_onnx", |b| {
        b.iter(|| black_box(parse_onnx(&bytes).unwrap()))
    });
    g.bench_function("load_onnx_file", |b| {
        b.iter(|| black_box(load_onnx_file(&path).unwrap()))
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, load);
criterion_main!(benches);
