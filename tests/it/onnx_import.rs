//! ONNX import: models exported by torch.onnx.export (tests/fixtures/onnx/), hand-made graphs
//! covering every supported operator, and malformed or unsupported files.

use crate::support::onnx_writer as w;

use klrp::io::npy::read_npy_file;
use klrp::io::onnx::{
    MAX_SAMPLE_ELEMENTS, load_onnx_file, load_onnx_file_with_max_elements, parse_onnx,
    parse_onnx_with_max_elements,
};
use klrp::layers::LayerKind;
use klrp::{Composite, Error, Identity, PerLayer};
use ndarray::{ArrayD, IxDyn, array};
use std::path::{Path, PathBuf};
use w::{Attr, model, node, tensor_floats, tensor_i64, tensor_raw, value_info};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn load_f32(p: &Path) -> ArrayD<f32> {
    read_npy_file(p).unwrap().to_f32().unwrap()
}

fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

fn onnx_files(model: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join(model))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    v.sort();
    v
}

#[test]
fn torch_exports_load_and_reproduce_torch_logits() {
    let mut seen = 0;
    for m in ["mlp", "cnn_pool", "cnn_bn"] {
        let x = load_f32(&fixtures().join(m).join("input.npy"));
        let logits = load_f32(&fixtures().join(m).join("output.npy"));
        for file in onnx_files(m) {
            let model = load_onnx_file(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(model.nodes().len(), model.network().layers().len());
            let net = model.into_network();
            let out = net.forward(&x).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().to_string();
            // (a trailing Softmax is kept as an identity: the network still outputs logits)
            let want = &logits;
            let err = max_abs_diff(&out, want);
            assert!(err < 1e-5, "{m}/{name}: logits differ by {err}");
            // canonized (BatchNorm fused) the forward pass is the same
            let canon = net.canonize().unwrap();
            let err = max_abs_diff(&canon.forward(&x).unwrap(), want);
            assert!(err < 1e-5, "{m}/{name} canonized: logits differ by {err}");
            seen += 1;
        }
    }
    assert_eq!(seen, 10);
}

#[test]
fn every_node_is_one_layer_in_graph_order() {
    let model = load_onnx_file(fixtures().join("cnn_pool/legacy_view.onnx")).unwrap();
    let ops: Vec<&str> = model.nodes().iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(
        ops,
        [
            "Conv",
            "Relu",
            "MaxPool",
            "Conv",
            "Relu",
            "AveragePool",
            "Shape",
            "Constant",
            "Gather",
            "Constant",
            "Unsqueeze",
            "Constant",
            "Concat",
            "Reshape",
            "Gemm",
            "Relu",
            "Gemm"
        ]
    );
    for (i, n) in model.nodes().iter().enumerate() {
        assert_eq!(n.index, i);
    }
    let kinds: Vec<LayerKind> = model.network().layers().iter().map(|l| l.kind()).collect();
    for (i, kind) in kinds.iter().enumerate().take(13).skip(6) {
        assert_eq!(*kind, LayerKind::Identity, "node {i}");
        assert!(model.nodes()[i].note.is_some());
    }
    assert_eq!(model.nodes()[7].note.as_deref(), Some("constant"));
    assert_eq!(model.nodes()[6].note.as_deref(), Some("shape computation"));
    assert_eq!(kinds[13], LayerKind::Reshape);
    assert_eq!(kinds[14], LayerKind::Dense);
    assert_eq!(model.network().layer_output_shape(13), Some(&[20][..]));
    assert!(model.nodes()[0].note.is_none());

    let soft = load_onnx_file(fixtures().join("mlp/legacy_softmax.onnx")).unwrap();
    let last = soft.nodes().last().unwrap();
    assert_eq!(last.op_type, "Softmax");
    assert!(last.note.as_deref().unwrap().contains("ignored"));
}

#[test]
fn batchnorm_nodes_stay_until_canonize() {
    let model = load_onnx_file(fixtures().join("cnn_bn/dynamo_noopt.onnx")).unwrap();
    let kinds: Vec<LayerKind> = model.network().layers().iter().map(|l| l.kind()).collect();
    assert_eq!(kinds[1], LayerKind::Normalization);
    assert_eq!(kinds[4], LayerKind::Normalization);
    let net = model.into_network().canonize().unwrap();
    assert_eq!(net.layers()[1].kind(), LayerKind::Identity);
}

fn relu_mlp_bytes() -> Vec<u8> {
    // x[2] -> MatMul(W[2,3]) -> Add(b[3]) -> Relu -> Gemm(W2[3,2] transB=0, alpha=2, C[1,2], beta=0.5)
    //   -> Dropout -> Identity -> Softmax
    let nodes = [
        node("MatMul", "mm", &["x", "W"], &["h0"], &[]),
        node("Add", "add", &["h0", "b"], &["h1"], &[]),
        node("Relu", "relu", &["h1"], &["h2"], &[]),
        node(
            "Gemm",
            "gemm",
            &["h2", "W2", "C"],
            &["h3"],
            &[Attr::Float("alpha", 2.0), Attr::Float("beta", 0.5)],
        ),
        node("Dropout", "drop", &["h3"], &["h4"], &[]),
        node("Identity", "id", &["h4"], &["h5"], &[]),
        node("Softmax", "soft", &["h5"], &["y"], &[Attr::Int("axis", 1)]),
    ];
    let inits = [
        tensor_raw("W", &[2, 3], &[1.0, -1.0, 0.5, 2.0, 0.0, 1.0]),
        tensor_floats("b", &[3], &[0.1, 0.2, -0.3]),
        tensor_raw("W2", &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]),
        tensor_floats("C", &[1, 2], &[1.0, -2.0]),
    ];
    model(
        &nodes,
        &inits,
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    )
}

#[test]
fn matmul_add_gemm_dropout_identity_softmax() {
    let m = parse_onnx(&relu_mlp_bytes()).unwrap();
    let notes: Vec<Option<&str>> = m.nodes().iter().map(|n| n.note.as_deref()).collect();
    assert_eq!(notes[1], Some("bias of layer 0"));
    let net = m.into_network();
    assert_eq!(net.layers().len(), 7);
    let x = array![[1.0f32, 2.0], [-1.0, 0.5]].into_dyn();
    let y = net.forward(&x).unwrap();
    // by hand
    let expect = |x0: f32, x1: f32| {
        let h = [
            (x0 * 1.0 + x1 * 2.0 + 0.1f32).max(0.0),
            (-x0 + 0.2f32).max(0.0),
            (x0 * 0.5 + x1 * 1.0 - 0.3f32).max(0.0),
        ];
        [
            2.0 * (h[0] + h[2]) + 0.5 * 1.0,
            2.0 * (h[1] + h[2]) + 0.5 * -2.0,
        ]
    };
    for (s, (x0, x1)) in [(1.0, 2.0), (-1.0, 0.5)].into_iter().enumerate() {
        let e = expect(x0, x1);
        for k in 0..2 {
            assert!(
                (y[[s, k]] - e[k]).abs() < 1e-6,
                "{s},{k}: {} vs {}",
                y[[s, k]],
                e[k]
            );
        }
    }
    // relevance runs through the identities
    let r = net
        .explain::<klrp::semiring::Real<f32>, _>(
            &x,
            &[0, 1],
            &Composite::k_lrp(),
            &PerLayer::new(Identity),
        )
        .unwrap();
    assert_eq!(r.input().shape(), &[2, 2]);
}

fn conv_model(conv_attrs: &[Attr], extra_nodes: Vec<Vec<u8>>, tail: &[&str]) -> Vec<u8> {
    // x[1,4,4] -> Conv(W[2,1,3,3]) -> ... -> GlobalAveragePool -> Flatten -> y
    let mut nodes = vec![node("Conv", "conv", &["x", "W"], &["c"], conv_attrs)];
    nodes.extend(extra_nodes);
    let _ = tail;
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 8.0) / 10.0).collect();
    model(
        &nodes,
        &[
            tensor_raw("W", &[2, 1, 3, 3], &w),
            tensor_raw("cb", &[1, 2, 1, 1], &[0.5, -0.25]),
        ],
        value_info("x", &[Some(1), Some(1), Some(4), Some(4)]),
        value_info("y", &[Some(1), Some(2)]),
    )
}

#[test]
fn conv_add_bias_global_average_pool_flatten() {
    let bytes = conv_model(
        &[
            Attr::Ints("pads", &[1, 1, 1, 1]),
            Attr::Ints("kernel_shape", &[3, 3]),
        ],
        vec![
            node("Add", "bias", &["c", "cb"], &["c2"], &[]),
            node("Relu", "relu", &["c2"], &["r"], &[]),
            node("GlobalAveragePool", "gap", &["r"], &["g"], &[]),
            node("Flatten", "flat", &["g"], &["y"], &[Attr::Int("axis", 1)]),
        ],
        &[],
    );
    let m = parse_onnx(&bytes).unwrap();
    assert_eq!(m.declared_batch(), Some(1));
    assert_eq!(m.nodes()[1].note.as_deref(), Some("bias of layer 0"));
    let net = m.into_network();
    assert_eq!(net.output_shape(), &[2]);
    let x = ArrayD::from_shape_fn(IxDyn(&[1, 1, 4, 4]), |i| {
        (i[2] * 4 + i[3]) as f32 / 8.0 - 1.0
    });
    let y = net.forward(&x).unwrap();
    // channel 1 with bias -0.25 by hand
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 8.0) / 10.0).collect();
    for (c, bias) in [(0usize, 0.5f32), (1, -0.25)] {
        let mut acc = 0.0;
        for oy in 0..4i32 {
            for ox in 0..4i32 {
                let mut z = bias;
                for ky in 0..3i32 {
                    for kx in 0..3i32 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            z += w[c * 9 + (ky * 3 + kx) as usize]
                                * x[[0, 0, iy as usize, ix as usize]];
                        }
                    }
                }
                acc += z.max(0.0);
            }
        }
        assert!((y[[0, c]] - acc / 16.0).abs() < 1e-5, "channel {c}");
    }
}

#[test]
fn weights_from_constant_nodes_and_float16() {
    // Gemm weights from a Constant node (value tensor) and a float16 initializer bias
    let nodes = [
        node(
            "Constant",
            "wconst",
            &[],
            &["W"],
            &[Attr::Tensor(
                "value",
                tensor_raw("", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            )],
        ),
        node(
            "Gemm",
            "gemm",
            &["x", "W", "B"],
            &["y"],
            &[Attr::Int("transB", 1)],
        ),
    ];
    let bytes = model(
        &nodes,
        &[w::tensor_f16("B", &[2], &[0x3c00, 0xc000])],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    );
    let m = parse_onnx(&bytes).unwrap();
    assert_eq!(m.nodes()[0].note.as_deref(), Some("constant"));
    let y = m
        .network()
        .forward(&array![[1.0f32, 1.0]].into_dyn())
        .unwrap();
    assert_eq!(y, array![[4.0f32, 5.0]].into_dyn());
}

fn err_of(bytes: &[u8]) -> String {
    match parse_onnx(bytes) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_operators_and_attributes_name_the_node() {
    type Case<'a> = (Vec<Attr<'a>>, Vec<Vec<u8>>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![node("Softplus", "sp", &["c"], &["y"], &[])],
            "ONNX node 1 'sp' (Softplus): operator Softplus is not supported",
        ),
        (
            vec![],
            vec![node(
                "MaxPool",
                "pool",
                &["c"],
                &["y"],
                &[
                    Attr::Ints("kernel_shape", &[2, 2]),
                    Attr::Int("storage_order", 1),
                ],
            )],
            "ONNX node 1 'pool' (MaxPool): MaxPool with storage_order = 1",
        ),
        (
            vec![],
            vec![
                node("Softmax", "sm", &["c"], &["s"], &[]),
                node("Relu", "after", &["s"], &["y"], &[]),
            ],
            "ONNX node 2 'after' (Relu): follows the Softmax at node 1",
        ),
        (
            vec![],
            vec![node("Reshape", "rs", &["c", "shape"], &["y"], &[])],
            "reads 'shape', which no node, initializer or graph input defines",
        ),
        (
            vec![],
            vec![node("Relu", "r", &["c"], &["z"], &[])],
            "the graph output 'y' is not defined by any node",
        ),
    ];
    for (attrs, extra, want) in cases {
        let msg = err_of(&conv_model(&attrs, extra, &[]));
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
    }
}

#[test]
fn missing_and_misshaped_initializers_are_errors() {
    // missing weight
    let bytes = model(
        &[node("Gemm", "g", &["x", "W"], &["y"], &[])],
        &[],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    );
    let msg = err_of(&bytes);
    assert!(
        msg.contains("malformed ONNX") && msg.contains("'W'"),
        "{msg}"
    );
    // wrong shape: Gemm weight [3, 3] for 2 input features
    let bytes = model(
        &[node("Gemm", "g", &["x", "W"], &["y"], &[])],
        &[tensor_raw("W", &[3, 3], &[0.0; 9])],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(3)]),
    );
    let msg = err_of(&bytes);
    assert!(
        msg.contains("layer 0") && msg.contains("shape mismatch"),
        "{msg}"
    );
    // raw data shorter than the dims
    let t = tensor_raw("W", &[2, 2], &[1.0, 2.0, 3.0]);
    let bytes = model(
        &[node("Gemm", "g", &["x", "W"], &["y"], &[])],
        &[t],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    );
    let msg = err_of(&bytes);
    assert!(
        msg.contains("needs 16 bytes of raw_data, found 12"),
        "{msg}"
    );
    // external data
    let bytes = model(
        &[node("Gemm", "g", &["x", "W"], &["y"], &[])],
        &[w::tensor_external("W", &[2, 2])],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    );
    let msg = err_of(&bytes);
    assert!(msg.contains("external file"), "{msg}");
    // absurd dims
    let bytes = model(
        &[node("Gemm", "g", &["x", "W"], &["y"], &[])],
        &[tensor_i64("W", &[1 << 40, 1 << 40], &[])],
        value_info("x", &[None, Some(2)]),
        value_info("y", &[None, Some(2)]),
    );
    assert!(matches!(parse_onnx(&bytes), Err(Error::TooLarge { .. })));
    // symbolic sample dimension
    let bytes = model(
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        value_info("x", &[None, None]),
        value_info("y", &[None, None]),
    );
    assert!(err_of(&bytes).contains("symbolic"));
}

#[test]
fn malformed_bytes_are_errors_never_panics() {
    let good = std::fs::read(fixtures().join("cnn_pool/legacy_view.onnx")).unwrap();
    assert!(parse_onnx(&good).is_ok());
    // Every truncation inside the graph is an error (a protobuf cut exactly between two
    // top-level fields is still well-formed, so cuts after the graph may parse).
    let graph_end = w::top_level_fields(&good)
        .iter()
        .find(|f| f.0 == 7)
        .map(|f| f.2)
        .unwrap();
    for len in 0..good.len() {
        let r = parse_onnx(&good[..len]);
        if len < graph_end {
            assert!(r.is_err(), "prefix of {len} bytes parsed");
        }
    }
    // single-byte corruptions: any outcome but a panic
    for i in (0..good.len()).step_by(7) {
        let mut b = good.clone();
        b[i] ^= 0xa5;
        let _ = parse_onnx(&b);
    }
    // random multi-byte corruptions of every export: errors or valid networks, never panics,
    // and whatever parses runs its forward pass without panicking
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    let mut parsed = 0;
    for m in ["mlp", "cnn_pool", "cnn_bn"] {
        for file in onnx_files(m) {
            let bytes = std::fs::read(&file).unwrap();
            for _ in 0..300 {
                let mut b = bytes.clone();
                for _ in 0..1 + next() % 4 {
                    let i = next() % b.len();
                    b[i] = next() as u8;
                }
                if let Ok(model) = parse_onnx(&b) {
                    parsed += 1;
                    let net = model.into_network();
                    let mut shape = vec![1];
                    shape.extend_from_slice(net.input_shape());
                    let _ = net.forward(&ArrayD::zeros(shape));
                    let _ = net.canonize();
                }
            }
        }
    }
    assert!(parsed > 0);
    // not an ONNX file at all
    let npy = std::fs::read(fixtures().join("mlp/input.npy")).unwrap();
    let msg = parse_onnx(&npy).unwrap_err().to_string();
    assert!(msg.contains("malformed ONNX"), "{msg}");
    // a varint that never ends, an absurd length
    assert!(parse_onnx(&[0x3a; 12]).is_err());
    let mut absurd = vec![0x3a];
    w::varint(&mut absurd, u64::MAX);
    assert!(
        parse_onnx(&absurd)
            .unwrap_err()
            .to_string()
            .contains("exceeds")
    );
    assert!(
        parse_onnx(&[])
            .unwrap_err()
            .to_string()
            .contains("no graph")
    );
    let e = load_onnx_file("/nonexistent/model.onnx").unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
}

#[test]
fn the_sample_size_limit_can_be_lowered_and_raised() {
    // Lowered: the MLP fixture takes 8 elements per sample.
    let file = fixtures().join("mlp/legacy.onnx");
    let bytes = std::fs::read(&file).unwrap();
    assert!(parse_onnx_with_max_elements(&bytes, 8).is_ok());
    match parse_onnx_with_max_elements(&bytes, 7) {
        Err(Error::TooLarge {
            requested, limit, ..
        }) => assert_eq!((requested, limit), (8, 7)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        load_onnx_file_with_max_elements(&file, 7),
        Err(Error::TooLarge { .. })
    ));
    // A node output above the limit: the largest layer output of one sample of the CNN.
    let file = fixtures().join("cnn_pool/legacy.onnx");
    let bytes = std::fs::read(&file).unwrap();
    let net = load_onnx_file(&file).unwrap().into_network();
    let input = net.input_shape().iter().product::<usize>() as u64;
    let widest = (0..net.layers().len())
        .map(|i| net.layer_output_shape(i).unwrap().iter().product::<usize>() as u64)
        .max()
        .unwrap();
    assert!(widest > input, "a hidden layer is wider than the input");
    assert!(parse_onnx_with_max_elements(&bytes, widest).is_ok());
    let e = parse_onnx_with_max_elements(&bytes, widest - 1).unwrap_err();
    let inner = match &e {
        Error::Layer { source, .. } => source.as_ref(),
        other => other,
    };
    assert!(
        matches!(inner, Error::TooLarge { requested, limit, .. }
            if *requested == u128::from(widest) && *limit == u128::from(widest - 1)),
        "{e:?}"
    );
    // Raised: one sample of 2^14 × 2^15 = 2^29 elements is refused by default, accepted with a
    // higher limit (nothing is allocated at import), and the network's own limit follows.
    let relu = model(
        &[node("Relu", "r", &["x"], &["y"], &[])],
        &[],
        value_info("x", &[None, Some(1 << 14), Some(1 << 15)]),
        value_info("y", &[None, Some(1 << 14), Some(1 << 15)]),
    );
    match parse_onnx(&relu) {
        Err(Error::TooLarge {
            requested, limit, ..
        }) => assert_eq!(
            (requested, limit),
            (1 << 29, u128::from(MAX_SAMPLE_ELEMENTS))
        ),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let m = parse_onnx_with_max_elements(&relu, 1 << 29).unwrap();
    assert_eq!(m.network().input_shape(), [1 << 14, 1 << 15]);
    assert_eq!(m.network().max_elements(), klrp::DEFAULT_MAX_ELEMENTS);
    let m = parse_onnx_with_max_elements(&relu, 1 << 33).unwrap();
    assert_eq!(m.network().max_elements(), 1 << 33);
}
