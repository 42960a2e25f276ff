// The checks each fuzz target runs on one input, shared with tests/it/fuzz_regressions.rs (which
// `include!`s this file): parse it, and if it parses, use the result the way a user would.

use klrp::composite::Composite;
use klrp::io::{idx, image, npy, onnx, safetensors::SafeTensors};
use klrp::semiring::{Boolean, Real};
use klrp::{Identity, PerLayer, Threshold};
use ndarray::{ArrayD, IxDyn};

/// Networks with at most this many input elements per sample are run on a zero input.
const RUN_LIMIT: usize = 4096;

/// ONNX: parse from bytes (prost decoding a borrowed buffer) and from a file (prost decoding an
/// owned buffer, whose `bytes` fields share it, with external data allowed next to it); the two
/// must agree. Then read the preprocessing metadata and apply it to a small image; then forward,
/// trace and explain (Real and Boolean) a small network.
pub fn onnx(data: &[u8]) {
    let from_file = onnx_from_file(data);
    let Ok(model) = onnx::parse_onnx(data) else {
        return;
    };
    // Without a directory, external data is refused; everything else decodes alike.
    let from_file = from_file.expect("a model that parses from bytes must load from a file");
    assert_eq!(from_file.nodes().len(), model.nodes().len());
    assert_eq!(from_file.metadata(), model.metadata());
    assert_eq!(from_file.producer(), model.producer());
    assert_eq!(
        from_file.network().param_count(),
        model.network().param_count()
    );
    let _ = (model.nodes().len(), model.declared_batch(), model.opset());
    onnx_metadata(&model);
    let net = model.network();
    let _ = net.param_count();
    let elems: usize = net.input_shape().iter().product();
    let biggest = (0..net.layers().len())
        .filter_map(|i| net.layer_output_shape(i))
        .map(|s| s.iter().product::<usize>())
        .max()
        .unwrap_or(0);
    if elems > RUN_LIMIT || biggest > 16 * RUN_LIMIT || net.param_count() > 1 << 20 {
        return;
    }
    let mut shape = vec![1];
    shape.extend_from_slice(net.input_shape());
    let x = ArrayD::<f32>::from_elem(IxDyn(&shape), 0.5);
    let Ok(trace) = net.trace(&x) else {
        return;
    };
    let _ = trace.predictions();
    let _ = net.explain::<Real<f32>, _>(
        &x,
        &[0],
        &Composite::uniform(klrp::rules::EpsilonRule::default()),
        &PerLayer::new(Identity),
    );
    if let Ok(t) = Threshold::new(0.01) {
        let _ = net.explain::<Boolean, _>(&x, &[0], &Composite::k_lrp(), &PerLayer::new(t));
    }
    if let Ok(canon) = onnx::parse_onnx(data).map(|m| m.into_network().canonize()) {
        let _ = canon.map(|n| n.forward(&x));
    }
}

/// The model loaded through a file in `klrp-fuzz-onnx/` under the temporary directory, next to
/// an external data file `w.bin` (1 KiB) that the model may name. The file is removed again.
/// (Only models that also parse from bytes are compared, and those use no external data, so a
/// `w.bin` being rewritten by another process at the same time cannot change a verdict.)
fn onnx_from_file(data: &[u8]) -> klrp::Result<onnx::OnnxModel> {
    use std::sync::OnceLock;
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join("klrp-fuzz-onnx");
        std::fs::create_dir_all(&d).expect("temporary directory");
        let w: Vec<u8> = (0..256u32)
            .flat_map(|i| (i as f32 / 256.0).to_le_bytes())
            .collect();
        std::fs::write(d.join("w.bin"), w).expect("external data file");
        d
    });
    let path = dir.join(format!(
        "model-{}-{:?}.onnx",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, data).expect("temporary model file");
    let model = onnx::load_onnx_file(&path);
    let _ = std::fs::remove_file(&path);
    model
}

/// The model's preprocessing metadata: for an image-shaped input, build the preprocessing it
/// declares and apply it to a 5 × 7 image (when the resize is small enough to be cheap).
fn onnx_metadata(model: &onnx::OnnxModel) {
    let shape = model.network().input_shape();
    let &[c, h, w] = shape else {
        return;
    };
    let Ok(Some(pre)) = image::Preprocess::from_metadata(model.metadata(), c, h, w) else {
        return;
    };
    if pre.resize.unwrap_or(0) > 64 || h > 64 || w > 64 {
        return;
    }
    let img = image::RgbImage {
        width: 7,
        height: 5,
        pixels: (0..105u8).collect(),
    };
    if let Ok(x) = image::to_tensor(&img, &pre) {
        assert_eq!(x.shape(), [1, if pre.grayscale { 1 } else { 3 }, h, w]);
    }
}

/// safetensors: parse; read every tensor as f32 and as raw bytes.
pub fn safetensors(data: &[u8]) {
    let Ok(st) = SafeTensors::parse(data.to_vec()) else {
        return;
    };
    let names: Vec<String> = st.names().map(str::to_string).collect();
    let _ = st.metadata().len();
    for name in names {
        let _ = st.raw(&name);
        if let Ok(t) = st.tensor(&name) {
            let shape = t.shape().to_vec();
            let _ = st.tensor_with_shape(&name, &shape);
            let _ = st.tensor_with_shape(&name, &[t.len() + 1]);
        }
    }
}

/// npy: parse; convert to f32, f64 and indices; write the f32 array back and re-read it.
pub fn npy(data: &[u8]) {
    let Ok(a) = npy::parse_npy(data) else {
        return;
    };
    let _ = a.to_f64();
    let _ = a.to_indices();
    if let Ok(f) = a.to_f32() {
        let mut out = Vec::new();
        if npy::write_npy(&mut out, &f).is_ok() {
            let back = npy::parse_npy(&out).expect("klrp's own npy output must parse");
            let g = back.to_f32().expect("and convert back");
            assert_eq!(f.shape(), g.shape());
        }
    }
}

/// IDX (raw or gzip): read; write back and re-read; try it as MNIST images or labels.
pub fn idx(data: &[u8]) {
    let Ok(a) = idx::read_idx(data) else {
        return;
    };
    let _ = (a.len(), a.is_empty(), a.idx_type());
    let mut out = Vec::new();
    if idx::write_idx(&mut out, &a).is_ok() {
        let back = idx::read_idx(&out[..]).expect("klrp's own IDX output must parse");
        assert_eq!(back.dims, a.dims);
    }
    // (the fake labels are allocated here, so only for a plausible number of images)
    if a.dims.len() == 3 && a.dims[0] <= 1 << 16 {
        let labels = idx::IdxArray::new(vec![a.dims[0]], idx::IdxData::U8(vec![0; a.dims[0]]));
        if let Ok(labels) = labels {
            let _ = idx::Mnist::from_idx(a, labels);
        }
    }
}

/// Images (PNG/JPEG): decode; preprocess for a small 3- and 1-channel input.
pub fn image(data: &[u8]) {
    let Ok(img) = image::decode_image(data) else {
        return;
    };
    assert_eq!(img.pixels.len(), img.width * img.height * 3);
    // Decoding up to `MAX_PIXELS` (2²⁶) is the loader's job and is fuzzed above; preprocessing a
    // 64-megapixel image takes seconds under the sanitizer, so only smaller ones go on.
    if img.width * img.height > 1 << 22 {
        return;
    }
    // (ImageNet's normalisation has three channels: with one channel it would only be refused.)
    let _ = image::to_tensor(
        &img,
        &image::Preprocess::for_input(3, 8, 8, Some(image::Normalization::imagenet())),
    );
    let _ = image::to_tensor(&img, &image::Preprocess::for_input(1, 5, 7, None));
}
