//! torchvision's classification families through ONNX (issue #29, items 5 and 7).
//!
//! The fixtures in `tests/fixtures/torchvision/` were made by `make_fixtures.py` there (torch
//! 2.15.0, torchvision 0.29.2, zennit 1.0.0): one reduced-width / reduced-depth model per family,
//! random weights, randomised BatchNorm statistics, opset 17. `manifest.json` lists them; this
//! file iterates over it. A model that klrp refuses with `Error::Unsupported` is reported and
//! skipped unless the manifest marks it `must_load` (the ones klrp loaded when the fixtures were
//! made). For each model that loads:
//!
//! - the logits equal PyTorch's (float32) to [`LOGIT_TOLERANCE`] × max |logit|;
//! - on ReLU networks, LRP-0 (ε = 0 on every linear layer, residual sum and average pool) from
//!   the target's logit equals float64 gradient × input to [`GXI_TOLERANCE`] × max |grad × input|,
//!   away from the elements the script flags as near a kink (a max-pool near-tie or a ReLU
//!   input within 2 × float32's error of zero: float32 may take that decision the other way);
//!   with `klrp explain --composite lrp-0` to the same tolerance, and with `--composite k-lrp`
//!   (ε = 1e-6 left on average pooling) to `cli::CLI_GXI_TOLERANCE` (1e-3);
//! - Boolean relevance is the support of Counting relevance (θ = 0.01, `Composite::k_lrp`);
//! - where the manifest has Zennit references (DenseNet, ResNeXt), EpsilonGammaBox(−3, 3) and
//!   EpsilonPlusFlat agree to 1e-4 × max |R|.

use klrp::composite::Composite;
use klrp::io::npy::read_npy_file;
use klrp::io::onnx::load_onnx_file;
use klrp::layers::LayerKind;
use klrp::rules::ProportionalRule;
use klrp::semiring::{Boolean, Counting, Real};
use klrp::{Error, Identity, Network, PerLayer, Threshold};
use ndarray::ArrayD;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Logits: max |klrp − torch| / max |torch| (measured: ≤ 2.0e-5, ResNeXt).
const LOGIT_TOLERANCE: f64 = 1e-4;
/// LRP-0 vs float64 gradient × input, relative to max |grad × input|, away from near-kinks.
const GXI_TOLERANCE: f64 = 1e-5;
/// Zennit, relative to max |R_zennit|.
const ZENNIT_TOLERANCE: f64 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(root().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load_f64(rel: &str) -> ArrayD<f64> {
    let p = root().join(rel);
    read_npy_file(&p)
        .and_then(|a| a.to_f64())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load_f32(rel: &str) -> ArrayD<f32> {
    load_f64(rel).mapv(|v| v as f32)
}

fn load_mask(rel: &str) -> Vec<bool> {
    load_f64(rel).iter().map(|&v| v != 0.0).collect()
}

/// max |got − want| / max |want| over the elements where `skip` is false (all when `None`).
fn rel_err(got: &ArrayD<f64>, want: &ArrayD<f64>, skip: Option<&[bool]>) -> f64 {
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "reference is all zero");
    let mut worst = 0.0f64;
    for (i, (a, b)) in got.iter().zip(want.iter()).enumerate() {
        if skip.is_some_and(|s| s[i]) {
            continue;
        }
        worst = worst.max((a - b).abs());
    }
    worst / scale
}

/// Loads and canonizes a model; `None` (after saying so) when klrp refuses it as unsupported
/// and the manifest does not require it.
fn load(entry: &Value) -> Option<Network> {
    let name = entry["name"].as_str().unwrap();
    let must = entry["must_load"].as_bool().unwrap();
    let path = root().join(entry["files"]["model"].as_str().unwrap());
    let net = load_onnx_file(&path).and_then(|m| m.into_network().canonize());
    match net {
        Ok(net) => Some(net),
        Err(e) if !must && is_unsupported(&e) => {
            eprintln!("{name}: not loaded today ({e}); skipped (must_load false)");
            None
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

fn is_unsupported(e: &Error) -> bool {
    match e {
        Error::Unsupported(_) => true,
        Error::Layer { source, .. } => is_unsupported(source),
        _ => false,
    }
}

/// LRP-0 with no ε anywhere, written out: `Composite::k_lrp` (LRP-0 on linear layers and sums)
/// with the average pools' proportional rule at ε = 0 — what `Composite::lrp0` (`--composite
/// lrp-0`) is meant to be.
fn lrp0(net: &Network) -> Composite {
    let mut c = Composite::k_lrp();
    for (i, l) in net.layers().iter().enumerate() {
        if l.kind() == LayerKind::AvgPool {
            c = c.with_layer(i, ProportionalRule::new(0.0).unwrap());
        }
    }
    c
}

struct Report {
    name: String,
    logits: f64,
    gxi: Option<(f64, f64)>,
    zennit: Vec<(String, String, f64)>,
}

fn check(entry: &Value) -> Option<Report> {
    let name = entry["name"].as_str().unwrap().to_string();
    let net = load(entry)?;
    let files = &entry["files"];
    let checks = &entry["checks"];
    let x = load_f32(files["input"].as_str().unwrap());
    let target = entry["target"].as_u64().unwrap() as usize;

    let logits = net.forward(&x).unwrap().mapv(f64::from);
    let logit_err = rel_err(&logits, &load_f64(files["logits"].as_str().unwrap()), None);
    assert!(
        logit_err <= LOGIT_TOLERANCE,
        "{name}: logits differ by {logit_err:e} × max |logit|"
    );

    let mut gxi = None;
    let g = &checks["gradient_x_input"];
    if g["applies"].as_bool().unwrap() {
        let want = load_f64(g["reference"].as_str().unwrap());
        let mask = load_mask(g["mask"].as_str().unwrap());
        let trace = net.trace(&x).unwrap();
        let init = trace.output_init(&[target]).unwrap();
        let r = net
            .propagate(&trace, init, &lrp0(&net), &PerLayer::new(Identity), false)
            .unwrap();
        let got = r.input().mapv(|v| f64::from(v.0));
        let away = rel_err(&got, &want, Some(&mask));
        let all = rel_err(&got, &want, None);
        assert!(
            away <= GXI_TOLERANCE,
            "{name}: LRP-0 differs from float64 gradient × input by {away:e} × max away from \
             the {} near-kink elements ({all:e} over all)",
            mask.iter().filter(|&&m| m).count()
        );
        cli::check_gradient_x_input(entry, &want, &mask);
        gxi = Some((away, all));
    }

    let theta = PerLayer::new(Threshold::new(0.01).unwrap());
    let b = net
        .explain::<Boolean, _>(&x, &[target], &Composite::k_lrp(), &theta)
        .unwrap();
    let c = net
        .explain::<Counting, _>(&x, &[target], &Composite::k_lrp(), &theta)
        .unwrap();
    let support: Vec<bool> = c.input().iter().map(|v| v.0 > 0).collect();
    let boolean: Vec<bool> = b.input().iter().map(|v| v.0).collect();
    assert_eq!(
        boolean, support,
        "{name}: Boolean is not the support of Counting"
    );
    assert!(
        boolean.iter().any(|&v| v),
        "{name}: empty Boolean relevance"
    );

    let mut zennit = Vec::new();
    if let Some(cases) = checks.get("zennit").and_then(|z| z.as_array()) {
        for case in cases {
            let composite = match case["composite"].as_str().unwrap() {
                "epsilon_gamma_box" => Composite::epsilon_gamma_box(
                    case["low"].as_f64().unwrap() as f32,
                    case["high"].as_f64().unwrap() as f32,
                )
                .unwrap(),
                "epsilon_plus_flat" => Composite::epsilon_plus_flat(),
                other => panic!("unknown composite {other}"),
            };
            let r = net
                .explain::<Real<f32>, _>(&x, &[target], &composite, &PerLayer::new(Identity))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = r.input().mapv(|v| f64::from(v.0));
            // The reference Zennit computes with klrp's reading of the model (DenseNet's
            // standalone BatchNorms: the ε rule); other readings are printed for comparison.
            let reference = case["reference"].as_str().unwrap();
            let err = rel_err(&got, &load_f64(reference), None);
            eprintln!("{name} {} {reference}: {err:.2e}", case["composite"]);
            for (variant, file) in case["alternatives"].as_object().into_iter().flatten() {
                let alt = rel_err(&got, &load_f64(file.as_str().unwrap()), None);
                eprintln!(
                    "{name} {} (alternative {variant}: {alt:.2e})",
                    case["composite"]
                );
            }
            assert!(
                err <= ZENNIT_TOLERANCE,
                "{name} {}: klrp differs from Zennit by {err:e} × max |R| ({reference})",
                case["composite"],
            );
            let best = (reference.to_string(), err);
            zennit.push((case["composite"].as_str().unwrap().into(), best.0, best.1));
        }
    }
    Some(Report {
        name,
        logits: logit_err,
        gxi,
        zennit,
    })
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;

    /// `klrp explain --composite k-lrp`: its average pooling keeps ε = 1e-6.
    const CLI_GXI_TOLERANCE: f64 = 1e-3;

    /// `klrp explain --composite lrp-0` (real semiring, init from the logit by default) is
    /// gradient × input to the library's tolerance; `--composite k-lrp` up to the ε = 1e-6 it
    /// keeps on average pooling.
    pub fn check_gradient_x_input(entry: &Value, want: &ArrayD<f64>, mask: &[bool]) {
        for (composite, tolerance) in [("lrp-0", GXI_TOLERANCE), ("k-lrp", CLI_GXI_TOLERANCE)] {
            let err = explain_vs(entry, composite, want, mask);
            assert!(
                err <= tolerance,
                "{}: klrp explain --composite {composite} differs from gradient × input by {err:e}",
                entry["name"]
            );
        }
    }

    /// `klrp explain --composite C` against `want`, away from the masked elements.
    fn explain_vs(entry: &Value, composite: &str, want: &ArrayD<f64>, mask: &[bool]) -> f64 {
        let name = entry["name"].as_str().unwrap();
        let out = std::env::temp_dir().join(format!(
            "klrp_torchvision_{}_{name}_{composite}.npy",
            std::process::id()
        ));
        let files = &entry["files"];
        let args = [
            "explain".to_string(),
            "--model".into(),
            root()
                .join(files["model"].as_str().unwrap())
                .to_string_lossy()
                .into_owned(),
            "--input".into(),
            root()
                .join(files["input"].as_str().unwrap())
                .to_string_lossy()
                .into_owned(),
            "--target".into(),
            entry["target"].to_string(),
            "--composite".into(),
            composite.into(),
            "--out".into(),
            out.to_string_lossy().into_owned(),
        ];
        crate::support::command::klrp_ok(&args);
        let got = read_npy_file(&out).and_then(|a| a.to_f64()).unwrap();
        let _ = std::fs::remove_file(&out);
        let err = rel_err(&got, want, Some(mask));
        eprintln!("{name}: klrp explain --composite {composite} vs gradient × input: {err:.2e}");
        err
    }
}

#[cfg(not(feature = "cli"))]
mod cli {
    use super::*;
    pub fn check_gradient_x_input(_: &Value, _: &ArrayD<f64>, _: &[bool]) {}
}

#[test]
fn torchvision_families_match_pytorch_gradient_and_zennit() {
    let m = manifest();
    let models = m["models"].as_array().unwrap();
    assert!(models.len() >= 15, "manifest lists {} models", models.len());
    let mut loaded = 0;
    for entry in models {
        if let Some(r) = check(entry) {
            loaded += 1;
            let gxi = r
                .gxi
                .map_or("n/a (not a ReLU network)".to_string(), |(a, b)| {
                    format!("{a:.2e} away from near-kinks ({b:.2e} over all)")
                });
            eprintln!(
                "{}: logits {:.1e}; LRP-0 vs gradient × input {gxi}; zennit {:?}",
                r.name, r.logits, r.zennit
            );
        }
    }
    let must = models
        .iter()
        .filter(|e| e["must_load"].as_bool().unwrap())
        .count();
    assert!(loaded >= must);
}

/// The near-kink mask matters: on VGG-11 LRP-0 is gradient × input only away from it, and the
/// mask is a minority of the input.
#[test]
fn near_kinks_are_few() {
    for entry in manifest()["models"].as_array().unwrap() {
        let g = &entry["checks"]["gradient_x_input"];
        let mask = load_mask(g["mask"].as_str().unwrap());
        let frac = mask.iter().filter(|&&m| m).count() as f64 / mask.len() as f64;
        assert!(
            frac <= 0.5,
            "{}: {frac} of the input flagged",
            entry["name"]
        );
    }
}
