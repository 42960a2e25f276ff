//! torchvision VGG-16 built in code, and safetensors weights by name.

use klrp::io::safetensors::SafeTensors;
use klrp::layers::Conv2d;
use klrp::layers::LayerKind;
use klrp::models::{SplitMix64, VGG16_SEED, vgg16, vgg16_module_name};
use klrp::ndarray::{Array1, Array4};

/// A safetensors file from (name, shape, values) entries.
fn safetensors(entries: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, shape, v)) in entries.iter().enumerate() {
        let begin = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            "\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{begin},{}]}}",
            data.len()
        ));
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

#[test]
fn vgg16_has_torchvision_layout_and_indices() {
    let net = vgg16(None).unwrap();
    assert_eq!(net.layers().len(), 40);
    assert_eq!(net.input_shape(), &[3, 224, 224]);
    assert_eq!(net.output_shape(), &[1000]);
    assert_eq!(net.param_count(), 138_357_544); // torchvision's vgg16
    let convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let pools = [4, 9, 16, 23, 30];
    for (i, l) in net.layers().iter().enumerate() {
        let kind = l.kind();
        let want = if convs.contains(&i) {
            LayerKind::Conv
        } else if pools.contains(&i) {
            LayerKind::MaxPool
        } else if i == 31 {
            LayerKind::AvgPool
        } else if i == 32 {
            LayerKind::Reshape
        } else if [33, 36, 39].contains(&i) {
            LayerKind::Dense
        } else if [35, 38].contains(&i) {
            LayerKind::Identity
        } else {
            LayerKind::Activation
        };
        assert_eq!(kind, want, "layer {i} ({})", vgg16_module_name(i).unwrap());
    }
    assert_eq!(net.layer_output_shape(30), Some(&[512, 7, 7][..]));
    assert_eq!(net.layer_output_shape(32), Some(&[25088][..]));
    // Deterministic random weights: the documented He-uniform draws from SplitMix64 with the
    // fixed seed (first layer: U(−√(6/27), √(6/27)), bias 0).
    let mut rng = SplitMix64::new(VGG16_SEED);
    let bound = (6.0f32 / 27.0).sqrt();
    let w = Array4::from_shape_simple_fn((64, 3, 3, 3), || rng.symmetric(bound));
    let expected = Conv2d::new(w, Some(Array1::zeros(64)))
        .unwrap()
        .with_padding((1, 1))
        .unwrap();
    assert_eq!(format!("{:?}", &net.layers()[0]), format!("{expected:?}"));
}

#[test]
fn vgg16_weights_are_read_by_torchvision_name() {
    // A file with only the first convolution: loading names the first missing tensor.
    let w: Vec<f32> = (0..64 * 27).map(|i| i as f32 * 1e-3).collect();
    let b: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let bytes = safetensors(&[
        ("features.0.weight", vec![64, 3, 3, 3], w),
        ("features.0.bias", vec![64], b),
    ]);
    let st = SafeTensors::parse(bytes).unwrap();
    let msg = vgg16(Some(&st)).unwrap_err().to_string();
    assert!(msg.contains("features.2.weight"), "{msg}");
    // a wrong shape is named too
    let bytes = safetensors(&[("features.0.weight", vec![64, 3, 3], vec![0.0; 64 * 9])]);
    let st = SafeTensors::parse(bytes).unwrap();
    let msg = vgg16(Some(&st)).unwrap_err().to_string();
    assert!(
        msg.contains("features.0.weight") && msg.contains("[64, 3, 3, 3]"),
        "{msg}"
    );
}

/// A manual check with real files (not run by default): set KLRP_VGG16_DIR to a folder with
/// `vgg16.safetensors` (torchvision's state dict), `vgg16.onnx` (its torch.onnx.export),
/// `x.npy` (an input batch) and `logits.npy` (torch's output), then
/// `cargo test --release --all-features --test it -- models:: --ignored`.
#[test]
#[ignore]
fn vgg16_from_safetensors_and_onnx_match_torch() {
    let Ok(dir) = std::env::var("KLRP_VGG16_DIR") else {
        eprintln!("KLRP_VGG16_DIR not set: skipped");
        return;
    };
    let dir = std::path::Path::new(&dir);
    let x = klrp::io::npy::read_npy_file(dir.join("x.npy"))
        .unwrap()
        .to_f32()
        .unwrap();
    let want = klrp::io::npy::read_npy_file(dir.join("logits.npy"))
        .unwrap()
        .to_f32()
        .unwrap();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let st = SafeTensors::read_file(dir.join("vgg16.safetensors")).unwrap();
    let net = vgg16(Some(&st)).unwrap();
    let got = net.forward(&x).unwrap();
    let err = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("safetensors VGG-16: max |klrp − torch| = {err:e} (max |logit| {scale})");
    assert!(err <= 1e-4 * scale.max(1.0));
    drop(net);
    let onnx = klrp::io::onnx::load_onnx_file(dir.join("vgg16.onnx"))
        .unwrap()
        .into_network();
    let got = onnx.forward(&x).unwrap();
    let err = got
        .iter()
        .zip(&want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("ONNX VGG-16: max |klrp − torch| = {err:e}");
    assert!(err <= 1e-4 * scale.max(1.0));
}
