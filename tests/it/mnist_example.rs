//! Smoke test of the MNIST example (`examples/mnist`): the example's own modules, included by
//! path, run end to end on a small budget (1,000 training digits, two epochs, 500 test digits),
//! and the outcomes are checked — accuracy far above chance, relevance beating random pixel
//! removal, every figure a valid PNG of the right size, every table a CSV with the right rows.
#![cfg(feature = "viz")]
// The example's modules are shared whole; this test uses only part of them.
#![allow(dead_code)]

// The example's modules are declared in main.rs, at the crate root (they use `crate::rng`).
use crate::{experiments, rng, train};

use experiments::{Config, Data, PERTURBATION_COLUMNS, PRUNING_COLUMNS};
use klrp::io::idx::{IdxArray, IdxData, Mnist, write_idx};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("klrp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn small_data() -> Data {
    let mut data = experiments::load_data(None).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (8_000, 2_000));
    data.test = data.test.split_at(500).unwrap().0;
    data
}

fn read_csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    (header, rows)
}

#[test]
fn quick_run_produces_sound_figures_and_tables() {
    let data = small_data();
    let out = temp_dir("mnist-smoke");
    let mut cfg = Config {
        out: out.clone(),
        rank_digits: 100,
        perturb_digits: 40,
        calibration_digits: 50,
        ..Config::default()
    };
    cfg.train.epochs = 3;
    cfg.train.limit = Some(1_000);
    let mut log = Vec::new();
    let s = experiments::run(&cfg, &data, &mut |l| log.push(l.to_string())).unwrap();

    // Training: three epochs on 1,000 digits are far above chance (10%).
    assert!(s.accuracy > 0.7, "accuracy {}", s.accuracy);
    assert!(log.iter().any(|l| l.starts_with("  epoch  3/3")), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l == &format!("test accuracy: {:.1}%", 100.0 * s.accuracy))
    );

    // θ: positive and calibrated so the masks are informative (neither all on nor all off).
    assert_eq!(s.thetas.len(), 3);
    assert!(s.thetas.iter().all(|&(_, t)| t > 0.0));
    assert!(
        s.mask_coverage > 0.1 && s.mask_coverage < 0.9,
        "{}",
        s.mask_coverage
    );
    assert!(s.max_path_count >= 1.0);
    assert_eq!(s.overflowed, 0);
    assert_eq!(s.ms_per_explanation.len(), 4);
    // ∨ of a class's masks holds at least as many pixels as ∧.
    assert!(s.class_mask_pixels.iter().all(|(a, o)| a <= o && *o > 0));

    // Figures: valid PNGs of the expected layout.
    let png = |name: &str| klrp::viz::read_png(out.join(name)).unwrap();
    let grid = png("explanations.png");
    assert!(grid.width() >= 5 * 112 && grid.height() >= 10 * 112);
    assert!(grid.height() > grid.width());
    let masks = png("class_masks.png");
    assert!(masks.width() >= 10 * 84 && masks.height() >= 2 * 84);
    assert!(masks.width() > masks.height());
    png("class_mask_frequency.png");
    // The network slice: four diagrams of 4 columns of 8 neurons.
    let network = png("network.png");
    assert!(network.width() > 1000 && network.height() > 1000);
    for plot in ["pruning.png", "perturbation.png"] {
        let img = png(plot);
        assert_eq!((img.width(), img.height()), (900, 520), "{plot}");
    }
    // The grid's Real column holds red (positive relevance) pixels on the strokes.
    let red = grid
        .as_raw()
        .chunks(3)
        .filter(|p| p[0] > 200 && p[1] < 120 && p[2] < 120)
        .count();
    assert!(red > 100, "{red} red pixels");

    // Pruning table: 0, 25, …, 275 neurons removed; nothing removed = the trained accuracy.
    let (header, rows) = read_csv(&out.join("pruning.csv"));
    let mut want = vec!["removed".to_string()];
    want.extend(PRUNING_COLUMNS.iter().map(|c| c.to_string()));
    assert_eq!(header, want);
    assert_eq!(
        rows.iter().map(|r| r[0] as usize).collect::<Vec<_>>(),
        (0..300).step_by(25).collect::<Vec<_>>()
    );
    for v in &rows[0][1..] {
        assert!((v - 100.0 * s.accuracy).abs() < 0.01, "{v}");
    }
    assert!(
        rows.iter()
            .all(|r| r[1..].iter().all(|&v| (0.0..=100.0).contains(&v)))
    );

    // Perturbation table: nothing removed = no drop; relevance beats random removal.
    let (header, rows) = read_csv(&out.join("perturbation.csv"));
    let mut want = vec!["removed".to_string()];
    want.extend(PERTURBATION_COLUMNS.iter().map(|c| c.to_string()));
    assert_eq!(header, want);
    assert_eq!(rows.len(), cfg.perturb_steps.len());
    assert!(rows[0][1..].iter().all(|&v| v == 0.0));
    let at20 = &rows[cfg.perturb_steps.iter().position(|&k| k == 20).unwrap()];
    let col = |name: &str| {
        1 + PERTURBATION_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    for method in ["real", "counting", "viterbi"] {
        assert!(
            at20[col(method)] > at20[col("random")],
            "{method}: {} vs random {}",
            at20[col(method)],
            at20[col("random")]
        );
    }
    assert!(at20[col("real")] > at20[col("random_ink")]);

    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn training_is_deterministic() {
    let data = small_data();
    let cfg = train::TrainConfig {
        epochs: 1,
        limit: Some(300),
        ..Default::default()
    };
    let a = train::train(data.train.images.view(), &data.train.labels, &cfg, |_| {});
    let b = train::train(data.train.images.view(), &data.train.labels, &cfg, |_| {});
    assert_eq!(a, b);
    let other = train::TrainConfig { seed: 1, ..cfg };
    let c = train::train(data.train.images.view(), &data.train.labels, &other, |_| {});
    assert_ne!(a, c);
    // The klrp network computes the training code's logits.
    let net = a.to_network().unwrap();
    let x = data.test.images.slice(ndarray::s![..20, ..]).to_owned();
    let klrp_out = net.forward(&x.clone().into_dyn()).unwrap();
    let ours = a.logits(x.view());
    for (p, q) in klrp_out.iter().zip(ours.iter()) {
        assert!((p - q).abs() < 1e-4);
    }
}

#[test]
fn pruned_neurons_are_silent() {
    let data = small_data();
    let cfg = train::TrainConfig {
        epochs: 1,
        limit: Some(200),
        ..Default::default()
    };
    let mlp = train::train(data.train.images.view(), &data.train.labels, &cfg, |_| {});
    let all: Vec<usize> = (0..300).collect();
    let pruned = mlp.without_hidden1(&all);
    // With every first-layer neuron removed, the output no longer depends on the input.
    let logits = pruned.logits(data.test.images.slice(ndarray::s![..5, ..]));
    for r in logits.outer_iter() {
        assert_eq!(r, logits.row(0));
    }
}

/// `--data DIR`: the four standard IDX files are found and split into training and test sets.
#[test]
fn data_dir_option_reads_standard_idx_files() {
    let data = small_data();
    let dir = temp_dir("mnist-data-dir");
    let write = |name: &str, m: &Mnist, n: usize| {
        let px: Vec<u8> = m
            .images
            .iter()
            .take(n * 784)
            .map(|&v| (v * 255.0).round() as u8)
            .collect();
        let images = IdxArray::new(vec![n, 28, 28], IdxData::U8(px)).unwrap();
        let labels = IdxArray::new(vec![n], IdxData::U8(m.labels[..n].to_vec())).unwrap();
        let f = |kind: &str, a: &IdxArray| {
            let file = std::fs::File::create(dir.join(format!("{name}-{kind}"))).unwrap();
            write_idx(file, a).unwrap();
        };
        f("images-idx3-ubyte", &images);
        f("labels-idx1-ubyte", &labels);
    };
    write("train", &data.train, 60);
    write("t10k", &data.test, 25);
    let loaded = experiments::load_data(Some(&dir)).unwrap();
    assert_eq!((loaded.train.len(), loaded.test.len()), (60, 25));
    assert_eq!(loaded.train.labels, data.train.labels[..60].to_vec());
    assert_eq!(loaded.test.images.row(3), data.test.images.row(3));
    assert!(loaded.source.contains("60 training"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(experiments::load_data(Some(&dir)).is_err());
}

#[test]
fn rng_is_uniform_enough_and_shuffles() {
    let mut r = rng::SplitMix64::new(7);
    let mut counts = [0usize; 10];
    for _ in 0..10_000 {
        counts[r.below(10)] += 1;
    }
    assert!(
        counts.iter().all(|&c| (900..1100).contains(&c)),
        "{counts:?}"
    );
    let mean = (0..10_000).map(|_| r.normal()).sum::<f64>() / 10_000.0;
    assert!(mean.abs() < 0.05);
    let mut v: Vec<usize> = (0..100).collect();
    r.shuffle(&mut v);
    assert_ne!(v, (0..100).collect::<Vec<_>>());
    v.sort_unstable();
    assert_eq!(v, (0..100).collect::<Vec<_>>());
    // The reference SplitMix64 stream (Vigna's splitmix64.c) from seed 0.
    assert_eq!(rng::SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
}
