//! ONNX graphs (issue #16, point 4): residual Add, channel Concat, squeeze-and-excitation Mul,
//! SiLU as x·σ(x), zero Pad folded into the next Conv, Clip, constant subgraphs, external data;
//! forward outputs against PyTorch's (tests/fixtures/onnx/make_graph_models.py), and the
//! importer's errors for broken graphs.

use klrp::io::npy::read_npy_file;
use klrp::io::onnx::{OnnxModel, load_onnx_file, parse_onnx};
use klrp::layers::LayerKind;
use klrp::{Error, Source};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

fn graph_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/graph")
}

fn load_f32(p: &Path) -> ArrayD<f32> {
    read_npy_file(p).unwrap().to_f32().unwrap()
}

/// max |a − b| / max |b|.
fn rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    let scale = b.iter().fold(0.0f32, |m, y| m.max(y.abs()));
    diff / scale
}

fn load(name: &str) -> OnnxModel {
    load_onnx_file(graph_dir().join(format!("{name}.onnx")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The model's logits on the shared input, canonized (BatchNorm fused), against PyTorch's.
fn check_forward(name: &str) -> OnnxModel {
    let model = load(name);
    let x = load_f32(&graph_dir().join("x_2x2x6x6.npy"));
    let want = load_f32(&graph_dir().join(format!("{name}.out.npy")));
    let raw = model.network().forward(&x).unwrap();
    assert!(rel_diff(&raw, &want) < 1e-5, "{name}: {raw} vs {want}");
    let net = load(name).into_network().canonize().unwrap();
    let fused = net.forward(&x).unwrap();
    assert!(
        rel_diff(&fused, &want) < 1e-5,
        "{name} canonized: {fused} vs {want}"
    );
    model
}

/// The index of the first node with this op type.
fn find(model: &OnnxModel, op: &str) -> usize {
    model
        .nodes()
        .iter()
        .position(|n| n.op_type == op)
        .unwrap_or_else(|| panic!("no {op}"))
}

#[test]
fn residual_add_matches_pytorch_with_both_exporters() {
    for name in ["residual", "residual_dynamo"] {
        let model = check_forward(name);
        let add = find(&model, "Add");
        let node = &model.nodes()[add];
        assert_eq!(node.inputs.len(), 2, "{name}: {node:?}");
        assert_ne!(node.inputs[0], node.inputs[1]);
        // One operand is the skip: the output of the stem's ReLU, also read by the first conv.
        let relu = find(&model, "Relu");
        assert!(
            node.inputs.contains(&Source::Node(relu)),
            "{name}: {node:?}"
        );
        assert_eq!(model.network().inputs_of(add), Some(&node.inputs[..]));
    }
}

#[test]
fn channel_concat_matches_pytorch() {
    let model = check_forward("concat");
    let cat = find(&model, "Concat");
    // The graph input and the two branches' ReLUs.
    let inputs = &model.nodes()[cat].inputs;
    assert_eq!(inputs.len(), 3);
    assert_eq!(inputs[0], Source::Input);
    assert_eq!(
        model.network().layer_output_shape(cat),
        Some(&[7, 6, 6][..])
    );
}

#[test]
fn squeeze_excitation_gate_and_silu_match_pytorch() {
    let model = check_forward("se_gate");
    let mul = find(&model, "Mul");
    let sigmoid = find(&model, "Sigmoid");
    assert!(model.nodes()[mul].inputs.contains(&Source::Node(sigmoid)));
    // ReduceMean over H, W keeping them is a global average pooling.
    let mean = find(&model, "ReduceMean");
    assert_eq!(
        model.network().layer_output_shape(mean),
        Some(&[4, 1, 1][..])
    );
    // x·σ(x), LeakyReLU, x·HardSigmoid(x) (hard swish at opset 13), Tanh.
    check_forward("silu");
}

#[test]
fn zero_pad_is_folded_into_the_next_conv() {
    // Symmetric padding from a constant subgraph (ConstantOfShape, Concat, Reshape, Slice,
    // Transpose, Cast), and a Clip with a lower bound only.
    let model = check_forward("pad_conv");
    let pad = find(&model, "Pad");
    let conv = find(&model, "Conv");
    assert_eq!(
        model.network().layers()[pad].kind(),
        LayerKind::Identity,
        "the Pad is an identity; its padding is the conv's"
    );
    let note = model.nodes()[pad].note.clone().unwrap();
    assert!(note.contains(&format!("node {conv}")), "{note}");
    assert!(note.contains("[1, 1, 1, 1]"), "{note}");
    // TensorFlow "same" padding (0, 1 after), then ReLU6 and a constant scale fused into the conv.
    let model = check_forward("pad_conv_asym");
    let pad = find(&model, "Pad");
    let note = model.nodes()[pad].note.clone().unwrap();
    assert!(note.contains("[0, 0, 1, 1]"), "{note}");
    let mul = find(&model, "Mul");
    assert!(
        model.nodes()[mul]
            .note
            .as_deref()
            .unwrap()
            .contains("scale of layer")
    );
}

#[test]
fn constant_nodes_keep_their_onnx_index() {
    // pad_conv has 29 nodes, most of them constant arithmetic: each is a network node at its
    // ONNX index, an identity spliced into the data path.
    let model = load("pad_conv");
    assert_eq!(model.nodes().len(), 29);
    assert_eq!(model.network().layers().len(), 29);
    for (i, node) in model.nodes().iter().enumerate() {
        assert_eq!(node.index, i);
        assert_eq!(model.network().inputs_of(i), Some(&node.inputs[..]));
        if node.op_type == "Constant" {
            assert_eq!(node.note.as_deref(), Some("constant"));
            assert_eq!(model.network().layers()[i].kind(), LayerKind::Identity);
        }
    }
}

#[test]
fn batch_norm_kept_by_the_exporter_is_fused_by_canonize() {
    let model = check_forward("chain_bn_nofold");
    let bn = find(&model, "BatchNormalization");
    assert_eq!(
        model.network().layers()[bn].kind(),
        LayerKind::Normalization
    );
}

#[test]
fn weights_are_read_from_the_external_data_file() {
    check_forward("external");
    // From bytes alone the file cannot be found: a clear error naming the tensor.
    let bytes = std::fs::read(graph_dir().join("external.onnx")).unwrap();
    match parse_onnx(&bytes) {
        Err(Error::Unsupported(m)) => assert!(m.contains("external file"), "{m}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

/// The error loading `bad_NAME.onnx`, as text.
fn error_of(name: &str) -> (Error, String) {
    let e = load_onnx_file(graph_dir().join(format!("bad_{name}.onnx")))
        .expect_err(&format!("bad_{name}.onnx loaded"));
    let text = e.to_string();
    (e, text)
}

#[test]
fn broken_graphs_are_clear_errors() {
    let (e, m) = error_of("cycle");
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert!(
        m.contains("cycle") && m.contains("'r1'") && m.contains("'r2'"),
        "{m}"
    );
    let (e, m) = error_of("duplicate_output");
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert!(m.contains("'a'") && m.contains("already defines"), "{m}");
    let (e, m) = error_of("dangling");
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert!(m.contains("'ghost'") && m.contains("dangling"), "{m}");
    let (e, m) = error_of("unsupported_op");
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert!(m.contains("node 1") && m.contains("Softplus"), "{m}");
}

#[test]
fn merges_of_incompatible_shapes_are_shape_errors() {
    for (name, op) in [("add_shapes", "Add"), ("concat_shapes", "Concat")] {
        let (e, m) = error_of(name);
        match e {
            Error::Layer { index, source, .. } => {
                assert_eq!(index, 1, "{m}");
                assert!(matches!(*source, Error::ShapeMismatch { .. }), "{m}");
            }
            other => panic!("{name}: expected a layer error, got {other:?}"),
        }
        assert!(m.contains(op), "{m}");
    }
}

#[test]
fn pads_that_cannot_be_folded_are_refused() {
    let (_, m) = error_of("pad_not_before_conv");
    assert!(m.contains("Pad at node 0") && m.contains("Relu"), "{m}");
    let (_, m) = error_of("pad_nonzero");
    assert!(m.contains("value 1.5"), "{m}");
}

#[test]
fn external_data_outside_the_model_directory_or_missing_is_refused() {
    let (e, m) = error_of("escaping_external");
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert!(m.contains("../external.onnx.data"), "{m}");
    let (e, m) = error_of("missing_external");
    match e {
        Error::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(m.contains("missing.onnx.data"), "{m}");
}

/// The large torchvision / EfficientNet-Lite0 exports of
/// `make_graph_models.py --big DIR` (not committed: hundreds of MB): every `*.onnx` in
/// `$KLRP_ONNX_EXPORTS` loads, canonizes and gives PyTorch's logits to 1e-4 relative. DenseNet's
/// BatchNorms read a `Concat` (or the stem's max pool, which the dense blocks read too), so its
/// canonization keeps them as standalone linear layers (issue #29; it used to fail), with the
/// same logits.
/// Run with `KLRP_ONNX_EXPORTS=DIR cargo test --release --test onnx_graph -- --ignored`.
#[test]
#[ignore = "needs the large exports of make_graph_models.py --big in $KLRP_ONNX_EXPORTS"]
fn large_exports_match_pytorch() {
    let dir = PathBuf::from(std::env::var("KLRP_ONNX_EXPORTS").expect("KLRP_ONNX_EXPORTS"));
    let x = load_f32(&dir.join("x_1x3x224x224.npy"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let model_name = file.split('.').next().unwrap();
        let want = load_f32(&dir.join(format!("{model_name}.out.npy")));
        let result = load_onnx_file(&path).and_then(|m| {
            let nodes = m.nodes().len();
            let net = m.into_network();
            let raw = net.forward(&x)?;
            let fused = net.canonize().and_then(|n| n.forward(&x));
            Ok((nodes, raw, fused))
        });
        match result {
            Ok((nodes, raw, fused)) => {
                let r = rel_diff(&raw, &want);
                let f = fused.as_ref().map(|f| rel_diff(f, &want));
                println!("{file}: {nodes} nodes, rel diff {r:.2e}, canonized {f:?}");
                let close = |d: f32| d < 1e-4; // false for NaN
                let fused_ok = f.as_ref().is_ok_and(|f| close(*f));
                if !close(r) || !fused_ok {
                    failures.push(file);
                }
            }
            Err(e) => {
                println!("{file}: {e}");
                failures.push(file);
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
