//! Agreement with Zennit on residual / branching networks imported from ONNX (issue #16, point 5).
//!
//! The fixtures in `tests/fixtures/zennit/graph/` were made by `make_graph_fixtures.py` there
//! (zennit 1.0.0, torch 2.15.0): reduced-width torchvision ResNets (basic and bottleneck blocks,
//! Zennit's `ResNetCanonizer`), a reduced MobileNetV2 and EfficientNet-Lite (residual sums routed
//! through Zennit's `Sum`, BatchNorm merged with its own eps, a module global average pool), and a
//! small residual CNN, each exported to ONNX with Zennit's EpsilonGammaBox(−3, 3) and
//! EpsilonPlusFlat input relevance (one-hot at the target). klrp loads the ONNX file, fuses the
//! BatchNorms and must agree to 1e-4 × max |R| per sample, through the library and through the
//! `klrp explain` command. The full-size models (resnet18, mobilenet_v2, pretrained
//! EfficientNet-Lite0 on a photo; tens of MB) are checked by the ignored test at the end.

use klrp::composite::Composite;
use klrp::io::npy::read_npy_file;
use klrp::io::onnx::load_onnx_file;
use klrp::semiring::Real;
use klrp::{Identity, PerLayer};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

/// The agreement the issue asks for: max |Δ| / max |ref| per sample.
const TOLERANCE: f32 = 1e-4;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zennit/graph")
}

fn load_f32(p: &Path) -> ArrayD<f32> {
    read_npy_file(p)
        .and_then(|a| a.to_f32())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn composite_for(case: &str) -> Composite {
    match case {
        "composite_epsilon_gamma_box" => Composite::epsilon_gamma_box(-3.0, 3.0).unwrap(),
        "composite_epsilon_plus_flat" => Composite::epsilon_plus_flat(),
        other => panic!("unknown case {other}"),
    }
}

/// The command-line flags of a case.
#[cfg(feature = "cli")]
fn flags_for(case: &str) -> &'static [&'static str] {
    match case {
        "composite_epsilon_gamma_box" => &[
            "--composite",
            "epsilon-gamma-box",
            "--low",
            "-3",
            "--high",
            "3",
        ],
        "composite_epsilon_plus_flat" => &["--composite", "epsilon-plus-flat"],
        other => panic!("unknown case {other}"),
    }
}

/// max |got − want| / max |want| for each sample (the leading axis).
fn per_sample_rel(got: &ArrayD<f32>, want: &ArrayD<f32>) -> Vec<f32> {
    assert_eq!(got.shape(), want.shape());
    got.outer_iter()
        .zip(want.outer_iter())
        .map(|(g, w)| {
            let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "reference relevance is all zero");
            let diff = g
                .iter()
                .zip(&w)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            diff / scale
        })
        .collect()
}

/// Checks one model folder through the library (and the command when `cli` is on); returns the
/// worst relative difference of the logits and of the relevances.
fn check_model(dir: &Path, via_cli: bool) -> (f32, f32) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let net = load_onnx_file(dir.join("model.onnx"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_network()
        .canonize()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let x = load_f32(&dir.join("input.npy"));
    let targets = read_npy_file(dir.join("targets.npy"))
        .and_then(|t| t.to_indices())
        .unwrap();
    let logits = net.forward(&x).unwrap();
    let logit_err = per_sample_rel(&logits, &load_f32(&dir.join("output.npy")))
        .into_iter()
        .fold(0.0f32, f32::max);
    assert!(logit_err < 1e-4, "{name}: logits differ by {logit_err:e}");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut worst = 0.0f32;
    for case in cases.lines().filter(|l| !l.is_empty()) {
        let want = load_f32(&dir.join(format!("{case}.npy")));
        let r = net
            .explain::<Real<f32>, _>(&x, &targets, &composite_for(case), &PerLayer::new(Identity))
            .unwrap_or_else(|e| panic!("{name}/{case}: {e}"));
        let got = r.input().mapv(|v| v.0);
        for (s, err) in per_sample_rel(&got, &want).into_iter().enumerate() {
            eprintln!("{name}/{case} sample {s}: {err:.2e}");
            worst = worst.max(err);
            assert!(
                err <= TOLERANCE,
                "{name}/{case} sample {s}: max |klrp − zennit| = {err:e} × max |R|"
            );
        }
        if via_cli {
            cli::check_case(dir, case, &targets, &want);
        }
    }
    (logit_err, worst)
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    /// `klrp explain` on the fixture's ONNX file and input: the same relevance.
    pub fn check_case(dir: &Path, case: &str, targets: &[usize], want: &ArrayD<f32>) {
        let out = std::env::temp_dir().join(format!(
            "klrp_zennit_graph_{}_{}_{case}.npy",
            std::process::id(),
            dir.file_name().unwrap().to_string_lossy()
        ));
        let target = targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let model = dir.join("model.onnx");
        let input = dir.join("input.npy");
        let mut args = vec![
            "explain".to_string(),
            "--model".into(),
            model.to_string_lossy().into_owned(),
            "--input".into(),
            input.to_string_lossy().into_owned(),
            "--target".into(),
            target,
            "--init".into(),
            "one".into(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
        ];
        args.extend(flags_for(case).iter().map(|s| s.to_string()));
        crate::support::command::klrp_ok(&args);
        let got = load_f32(&out);
        let _ = std::fs::remove_file(&out);
        for (s, err) in per_sample_rel(&got, want).into_iter().enumerate() {
            assert!(
                err <= TOLERANCE,
                "klrp explain {case} on {} sample {s}: {err:e} × max |R|",
                dir.display()
            );
        }
    }
}

#[cfg(not(feature = "cli"))]
mod cli {
    use super::*;
    pub fn check_case(_: &Path, _: &str, _: &[usize], _: &ArrayD<f32>) {}
}

fn check_fixture(model: &str) {
    let (logits, worst) = check_model(&fixture_root().join(model), cfg!(feature = "cli"));
    eprintln!("{model}: logits {logits:.1e}, worst relevance difference {worst:.2e}");
}

#[test]
fn reduced_resnet_with_basic_blocks_matches_zennit() {
    check_fixture("resnet_basic_mini");
}

#[test]
fn reduced_resnet_with_bottlenecks_matches_zennit() {
    check_fixture("resnet_bottleneck_mini");
}

#[test]
fn reduced_mobilenet_v2_matches_zennit() {
    check_fixture("mobilenet_v2_mini");
}

#[test]
fn reduced_efficientnet_lite_with_same_padding_matches_zennit() {
    check_fixture("efficientnet_lite_mini");
}

#[test]
fn small_residual_cnn_matches_zennit() {
    check_fixture("residual_cnn");
}

/// The tolerance is tight enough to see a wrong rule: the two composites differ by far more.
#[test]
fn the_two_composites_are_far_apart_on_every_fixture() {
    for entry in std::fs::read_dir(fixture_root()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let a = load_f32(&dir.join("composite_epsilon_gamma_box.npy"));
        let b = load_f32(&dir.join("composite_epsilon_plus_flat.npy"));
        let d = per_sample_rel(&a, &b).into_iter().fold(f32::MAX, f32::min);
        assert!(d > 100.0 * TOLERANCE, "{}: {d}", dir.display());
    }
}

/// The full-size models of `make_graph_fixtures.py --big DIR` (resnet18, mobilenet_v2 with random
/// weights and BatchNorm statistics, the pretrained EfficientNet-Lite0 on skimage's chelsea.png).
/// Run with `KLRP_ZENNIT_BIG=DIR cargo test --release --all-features --test it --
/// zennit_graph::full_size --ignored --nocapture`.
#[test]
#[ignore = "needs the exports of make_graph_fixtures.py --big in $KLRP_ZENNIT_BIG"]
fn full_size_models_match_zennit() {
    let root = PathBuf::from(std::env::var("KLRP_ZENNIT_BIG").expect("KLRP_ZENNIT_BIG"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());
    for dir in dirs {
        let (logits, worst) = check_model(&dir, cfg!(feature = "cli"));
        println!(
            "{}: logits {logits:.1e}, worst relevance difference {worst:.2e}",
            dir.display()
        );
    }
}
