//! The shipped EfficientNet-Lite0 (`models/efficientnet_lite0.onnx`) on the shipped photos
//! (`data/photos/`): klrp's logits against PyTorch's (`models/reference/logits.npy`, written by
//! `models/make_efficientnet_lite0.py` from the same float16 weights and the same
//! preprocessing), and the expected top-1 classes (`models/reference/photos.txt`).
#![cfg(feature = "images")]

use klrp::io::image::{Preprocess, load_image};
use klrp::io::npy::read_npy_file;
use klrp::io::onnx::load_onnx_file;
use ndarray::{ArrayD, Axis};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(photo, top-1 class, name)` in the order of the rows of `logits.npy`.
fn reference() -> Vec<(String, usize, String)> {
    let text = std::fs::read_to_string(root().join("models/reference/photos.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].parse().unwrap(), f[3].to_string())
        })
        .collect()
}

fn model() -> (klrp::Network, Preprocess) {
    let m = load_onnx_file(root().join("models/efficientnet_lite0.onnx")).unwrap();
    let pre = Preprocess::from_metadata(m.metadata(), 3, 224, 224)
        .unwrap()
        .expect("the model declares its preprocessing");
    (m.into_network().canonize().unwrap(), pre)
}

fn argmax(row: ndarray::ArrayView1<'_, f32>) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

#[test]
fn metadata_declares_the_lite0_preprocessing() {
    let (_, pre) = model();
    assert_eq!(pre.resize, Some(256));
    assert_eq!(pre.crop, Some((224, 224)));
    let n = pre.normalize.unwrap();
    // TensorFlow's EfficientNet-Lite input: (pixel − 127) / 128 on 0‥255.
    for c in 0..3 {
        assert!((n.mean[c] - 127.0 / 255.0).abs() < 1e-6, "{:?}", n.mean);
        assert!((n.std[c] - 128.0 / 255.0).abs() < 1e-6, "{:?}", n.std);
    }
    // The class names: 1,000 lines, index order.
    let labels = std::fs::read_to_string(root().join("models/imagenet_classes.txt")).unwrap();
    let labels: Vec<&str> = labels.lines().collect();
    assert_eq!(labels.len(), 1000);
    assert_eq!(
        (labels[0], labels[282], labels[967]),
        ("tench", "tiger cat", "espresso")
    );
}

/// PNG photos decode to the same bytes as in PIL, so klrp's input equals PyTorch's up to the
/// resize's float rounding, and the logits differ only by float32 summation order over 50
/// layers: measured 5.5e-7 … 1.6e-6 of the largest logit, bound 1e-5. JPEG decoders differ
/// (jpeg-decoder and PIL's libjpeg round the IDCT and the chroma upsampling differently, a few
/// of 255 levels on some pixels): measured 4.9e-3 on rocket.jpg, bound 2e-2. (PIL's decoding of
/// rocket.jpg saved as PNG gives PyTorch's probabilities to 4 decimals in `klrp predict`, so
/// the gap is the decoder's, not the network's.)
#[test]
fn logits_match_pytorch_and_top1_classes_are_the_expected_ones() {
    let (net, pre) = model();
    let want = read_npy_file(root().join("models/reference/logits.npy"))
        .unwrap()
        .to_f32()
        .unwrap();
    let photos = reference();
    assert_eq!(want.shape(), &[photos.len(), 1000]);
    let labels = std::fs::read_to_string(root().join("models/imagenet_classes.txt")).unwrap();
    let labels: Vec<&str> = labels.lines().collect();
    for (i, (photo, top1, name)) in photos.iter().enumerate() {
        let x = load_image(root().join("data/photos").join(photo), &pre).unwrap();
        let got: ArrayD<f32> = net.forward(&x).unwrap();
        let got = got.index_axis(Axis(0), 0);
        let want = want.index_axis(Axis(0), i);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(want.iter())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let rel = diff / scale;
        let jpeg = Path::new(photo)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg"));
        let tol = if jpeg { 2e-2 } else { 1e-5 };
        println!("{photo}: max |klrp − PyTorch| / max |logit| = {rel:.2e} (tolerance {tol:.0e})");
        assert!(
            rel <= tol,
            "{photo}: relative logit difference {rel:.2e} > {tol:.0e}"
        );
        let got_top = argmax(got.into_dimensionality().unwrap());
        assert_eq!(
            got_top, *top1,
            "{photo}: top-1 {got_top}, expected {top1} ({name})"
        );
        assert_eq!(labels[got_top], name);
        assert_eq!(argmax(want.into_dimensionality().unwrap()), *top1);
    }
    // The expected classes, written out: a model or a class list that changed shows here.
    let tops: Vec<(&str, usize)> = photos.iter().map(|(p, c, _)| (p.as_str(), *c)).collect();
    assert_eq!(
        tops,
        [
            ("astronaut.png", 560), // football helmet
            ("chelsea.png", 282),   // tiger cat
            ("coffee.png", 967),    // espresso
            ("rocket.jpg", 657),    // missile
        ]
    );
}
