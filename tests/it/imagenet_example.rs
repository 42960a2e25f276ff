//! Smoke test of the ImageNet example (`examples/imagenet`): its module `lite0.rs`, included by
//! path, explains one shipped photo end to end and writes the figure; the outcome is checked —
//! the expected class, a Boolean mask near the calibrated fraction, Counting on exactly where
//! Boolean is, the figure a PNG of five panels.
#![cfg(all(feature = "viz", feature = "images"))]

use crate::lite0::{self, Config};
use std::path::PathBuf;

#[test]
fn explains_a_photo_and_writes_the_figure() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("klrp-imagenet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let model = lite0::load_model(&root).unwrap();
    let photos = lite0::photos(&root.join(lite0::PHOTOS)).unwrap();
    assert_eq!(photos.len(), 4, "{photos:?}");
    let chelsea = root.join(lite0::PHOTOS).join("chelsea.png");
    let cfg = Config {
        out: out.clone(),
        ..Config::default()
    };
    let e = lite0::explain_photo(&model, &chelsea, &cfg).unwrap();

    assert_eq!(e.top.len(), 5);
    assert_eq!((e.top[0].class, e.target), (282, 282)); // tiger cat
    assert!(
        e.top
            .windows(2)
            .all(|w| w[0].probability >= w[1].probability)
    );
    assert_eq!(e.inputs, 3 * 224 * 224);
    // The mask keeps about the calibrated fraction; Counting has a path exactly where the mask
    // is on (same shares, same Θ).
    let kept = e.on as f64 / e.inputs as f64;
    assert!((kept - e.fraction).abs() < 1e-9, "{kept} vs {}", e.fraction);
    assert!((kept - cfg.theta_fraction).abs() < 0.1, "mask keeps {kept}");
    assert_eq!(e.counted, e.on);
    assert!(e.max_count >= 1.0 && e.max_count.is_finite());
    assert!(e.real_sum.is_finite() && e.logit > 0.0);

    assert_eq!(e.figure, out.join("chelsea.png"));
    let img = klrp::viz::read_png(&e.figure).unwrap();
    assert!(img.width() >= 5 * 224 && img.height() > 224, "{img:?}");
    let _ = std::fs::remove_dir_all(&out);
}

/// `--target`: another class is explained, and a class out of range is an error. (A test of its
/// own, so that it runs beside the one above: each explains the photo once.)
#[test]
fn explains_another_target_and_refuses_a_class_out_of_range() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("klrp-imagenet-target-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let model = lite0::load_model(&root).unwrap();
    let chelsea = root.join(lite0::PHOTOS).join("chelsea.png");
    // LRP-0 shares (`--mask-rules k-lrp`) calibrate faster.
    let other = Config {
        out: out.clone(),
        target: Some(285),
        theta_fraction: 0.3,
        top: 1,
        mask_rules: lite0::MaskRules::KLrp,
    };
    let e = lite0::explain_photo(&model, &chelsea, &other).unwrap();
    assert_eq!((e.target, e.top.len()), (285, 1));
    assert!(((e.on as f64 / e.inputs as f64) - 0.3).abs() < 0.1);
    let bad = Config {
        target: Some(1000),
        ..other
    };
    assert!(lite0::explain_photo(&model, &chelsea, &bad).is_err());
    let _ = std::fs::remove_dir_all(&out);
}
