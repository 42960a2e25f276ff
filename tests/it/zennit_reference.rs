//! Agreement with Zennit (the established PyTorch LRP implementation) on small exported models.
//!
//! The fixtures in `tests/fixtures/zennit/` were made by `make_fixtures.py` there (zennit 1.0.0,
//! torch 2.15.0): three models (an MLP, a CNN with max and average pooling, a CNN with BatchNorm,
//! a strided and a dilated convolution), their parameters, inputs, and Zennit's input relevance
//! for every rule and composite, initialised one-hot at the target.

use klrp::composite::Composite;
use klrp::io::npy::read_npy_file;
use klrp::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU,
};
use klrp::rules::{
    AlphaBetaRule, EpsilonRule, FlatRule, GammaRule, WSquareRule, ZBoxRule, ZPlusRule,
};
use klrp::semiring::Real;
use klrp::{Identity, Network, PerLayer};
use ndarray::{ArrayD, Ix1, Ix2, Ix4};
use std::path::{Path, PathBuf};

fn fixture_dir(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/zennit")
        .join(model)
}

fn load(dir: &Path, name: &str) -> ArrayD<f32> {
    read_npy_file(dir.join(format!("{name}.npy")))
        .and_then(|a| a.to_f32())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn nums(fields: &[&str]) -> Vec<usize> {
    fields.iter().map(|f| f.parse().unwrap()).collect()
}

/// Builds the network described by `model.txt` (the fixture's own line format).
fn build(dir: &Path) -> Network {
    let text = std::fs::read_to_string(dir.join("model.txt")).unwrap();
    let mut input = Vec::new();
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f[0] {
            "input" => input = nums(&f[1..]),
            "linear" => {
                let w = load(dir, &format!("{}.weight", f[1]));
                let b = load(dir, &format!("{}.bias", f[1]));
                layers.push(Box::new(
                    Dense::new(
                        w.into_dimensionality::<Ix2>().unwrap(),
                        Some(b.into_dimensionality::<Ix1>().unwrap()),
                    )
                    .unwrap(),
                ));
            }
            "conv2d" => {
                let n = nums(&f[2..]);
                let w = load(dir, &format!("{}.weight", f[1]));
                let b = load(dir, &format!("{}.bias", f[1]));
                let conv = Conv2d::new(
                    w.into_dimensionality::<Ix4>().unwrap(),
                    Some(b.into_dimensionality::<Ix1>().unwrap()),
                )
                .unwrap()
                .with_stride((n[4], n[5]))
                .unwrap()
                .with_padding((n[6], n[7]))
                .unwrap()
                .with_dilation((n[8], n[9]))
                .unwrap()
                .with_groups(n[10])
                .unwrap();
                layers.push(Box::new(conv));
            }
            "relu" => layers.push(Box::new(ReLU)),
            "flatten" => layers.push(Box::new(Flatten)),
            "maxpool2d" => {
                let n = nums(&f[1..]);
                layers.push(Box::new(
                    MaxPool2d::new((n[0], n[0]), (n[1], n[1]), (n[2], n[2])).unwrap(),
                ));
            }
            "avgpool2d" => {
                let n = nums(&f[1..]);
                layers.push(Box::new(
                    AvgPool2d::new((n[0], n[0]), (n[1], n[1]), (n[2], n[2])).unwrap(),
                ));
            }
            "adaptiveavgpool2d" => {
                let n = nums(&f[1..]);
                layers.push(Box::new(AdaptiveAvgPool2d::new((n[0], n[1])).unwrap()));
            }
            "batchnorm2d" => {
                let p = |s: &str| {
                    load(dir, &format!("{}.{s}", f[1]))
                        .into_dimensionality::<Ix1>()
                        .unwrap()
                };
                let eps: f32 = f[2].parse().unwrap();
                layers.push(Box::new(
                    BatchNorm2d::new(
                        p("weight"),
                        p("bias"),
                        p("running_mean"),
                        p("running_var"),
                        eps,
                    )
                    .unwrap(),
                ));
            }
            other => panic!("unknown layer {other}"),
        }
    }
    Network::new(input, layers).unwrap()
}

fn composite_for(case: &str) -> Composite {
    match case {
        "epsilon_1e-6" => Composite::uniform(EpsilonRule::new(1e-6).unwrap()),
        "epsilon_0.25" => Composite::uniform(EpsilonRule::new(0.25).unwrap()),
        "gamma_0.25" => Composite::uniform(GammaRule::new(0.25, 1e-6).unwrap()),
        "zplus" => Composite::uniform(ZPlusRule::default()),
        "alpha2_beta1" => Composite::uniform(AlphaBetaRule::new(2.0, 1.0).unwrap()),
        "alpha1_beta0" => Composite::uniform(AlphaBetaRule::new(1.0, 0.0).unwrap()),
        "flat" => Composite::uniform(FlatRule::default()),
        "wsquare" => Composite::uniform(WSquareRule::default()),
        "zbox_first" => Composite::uniform(EpsilonRule::new(1e-6).unwrap())
            .with_first_linear(ZBoxRule::new(-3.0, 3.0).unwrap()),
        "composite_epsilon_plus_flat" => Composite::epsilon_plus_flat(),
        "composite_epsilon_gamma_box" => Composite::epsilon_gamma_box(-3.0, 3.0).unwrap(),
        "composite_epsilon_alpha2_beta1" => Composite::epsilon_alpha2_beta1(),
        other => panic!("unknown case {other}"),
    }
}

/// Runs every case of one fixture model; returns the worst relative error seen.
fn check_model(model: &str) -> f32 {
    let dir = fixture_dir(model);
    let net = build(&dir).canonize().unwrap();
    let x = load(&dir, "input");
    let targets = read_npy_file(dir.join("targets.npy"))
        .unwrap()
        .to_indices()
        .unwrap();
    let expected_out = load(&dir, "output");
    let trace = net.trace(&x).unwrap();
    let out_err = (trace.output() - &expected_out)
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(out_err < 1e-5, "{model}: forward differs by {out_err}");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut worst = 0.0f32;
    for case in cases.lines().filter(|l| !l.is_empty()) {
        let expected = load(&dir, case);
        let r = net
            .explain::<Real<f32>, _>(&x, &targets, &composite_for(case), &PerLayer::new(Identity))
            .unwrap();
        let got = r.input().mapv(|v| v.0);
        assert_eq!(got.shape(), expected.shape());
        for (s, (g, e)) in got.outer_iter().zip(expected.outer_iter()).enumerate() {
            let scale = e.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                scale > 0.0,
                "{model}/{case}: reference relevance is all zero"
            );
            let err = (&g - &e).iter().fold(0.0f32, |m, v| m.max(v.abs())) / scale;
            worst = worst.max(err);
            assert!(
                err <= 1e-5,
                "{model}/{case} sample {s}: max |klrp − zennit| = {err:e} × max |R|"
            );
        }
    }
    worst
}

#[test]
fn mlp_matches_zennit_for_every_rule_and_composite() {
    let worst = check_model("mlp");
    eprintln!("mlp: worst relative error {worst:e}");
}

#[test]
fn cnn_with_max_and_average_pooling_matches_zennit() {
    let worst = check_model("cnn_pool");
    eprintln!("cnn_pool: worst relative error {worst:e}");
}

#[test]
fn cnn_with_batchnorm_strided_and_dilated_conv_matches_zennit() {
    let worst = check_model("cnn_bn");
    eprintln!("cnn_bn: worst relative error {worst:e}");
}
