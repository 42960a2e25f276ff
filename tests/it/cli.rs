//! The `klrp` command: Zennit agreement on torch-exported ONNX models (tests/fixtures/onnx/), the
//! non-real semirings against the library API, options, and error handling.
#![cfg(feature = "cli")]

use klrp::calibrate;
use klrp::composite::Composite;
use klrp::io::npy::{NpyData, read_npy_file};
use klrp::io::onnx::load_onnx_file;
use klrp::rules::{Bound, EpsilonRule, ProportionalRule, ZBoxRule, ZeroRule};
use klrp::semiring::{Boolean, Counting, Real, Viterbi};
use klrp::{AbsThreshold, Clamp01, Identity, Network, PerLayer, Threshold};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("klrp-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

use crate::support::command::{klrp, klrp_ok};

/// The arguments `COMMAND --model MODEL --input INPUT REST…` of `klrp explain`, `paths` or
/// `predict`.
fn argv<'a>(command: &'a str, model: &'a str, input: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    [&[command, "--model", model, "--input", input], rest].concat()
}

/// `klrp COMMAND --model MODEL --input INPUT --target TARGET --out OUT EXTRA…` (`explain` or
/// `paths`).
fn targeted<'a>(
    command: &'a str,
    model: &'a str,
    input: &'a str,
    target: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    argv(
        command,
        model,
        input,
        &[&["--target", target, "--out", out], extra].concat(),
    )
}

fn ok(args: &[&str]) -> Output {
    klrp_ok(args)
}

/// Runs klrp and checks it fails with `code` and one line on stderr containing `want`.
fn fails(args: &[&str], code: i32, want: &str) -> String {
    let o = klrp(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        o.status.code(),
        Some(code),
        "klrp {}: {err}",
        args.join(" ")
    );
    assert_eq!(err.lines().count(), 1, "one line expected: {err:?}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(want), "{err:?} should contain {want:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
    err
}

/// Runs `fails(BASE… EXTRA…, code, want)` for every row `(extra, code, want)`.
fn fails_each(base: &[&str], rows: &[(&[&str], i32, &str)]) {
    for &(extra, code, want) in rows {
        fails(&[base, extra].concat(), code, want);
    }
}

/// Relevance values as the `.npy` data `klrp explain` writes for them (Viterbi's `f64`
/// strengths as float32).
trait Written {
    fn written(self) -> NpyData;
}

impl Written for ArrayD<bool> {
    fn written(self) -> NpyData {
        NpyData::Bool(self.iter().copied().collect())
    }
}

impl Written for ArrayD<u64> {
    fn written(self) -> NpyData {
        NpyData::U64(self.iter().copied().collect())
    }
}

impl Written for ArrayD<f32> {
    fn written(self) -> NpyData {
        NpyData::F32(self.iter().copied().collect())
    }
}

impl Written for ArrayD<f64> {
    fn written(self) -> NpyData {
        NpyData::F32(self.iter().map(|&v| v as f32).collect())
    }
}

fn load_f32(p: &Path) -> ArrayD<f32> {
    read_npy_file(p).unwrap().to_f32().unwrap()
}

/// max |a − b| / max |b| per sample.
fn worst_relative(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.outer_iter()
        .zip(b.outer_iter())
        .map(|(x, y)| {
            let scale = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            x.iter()
                .zip(y)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()))
                / scale
        })
        .fold(0.0, f32::max)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The MLP fixture most error tests run: its ONNX file and its input batch.
struct Mlp {
    onnx: PathBuf,
    input: PathBuf,
}

impl Mlp {
    fn new() -> Self {
        Mlp {
            onnx: fixtures().join("mlp/legacy.onnx"),
            input: fixtures().join("mlp/input.npy"),
        }
    }
    /// The model's and the input's paths, as arguments.
    fn args(&self) -> (&str, &str) {
        (path_str(&self.onnx), path_str(&self.input))
    }
}

/// Runs every case of one model on every ONNX export of it.
fn check_model_against_zennit(model: &str) {
    let dir = fixtures().join(model);
    let tmp = TempDir::new(model);
    let target = std::fs::read_to_string(dir.join("target.txt")).unwrap();
    let target = target.trim();
    let input = dir.join("input.npy");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let mut exports: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    exports.sort();
    assert!(exports.len() >= 2);
    let mut worst = 0.0f32;
    let mut runs = 0;
    for onnx in &exports {
        for line in cases.lines().filter(|l| !l.trim().is_empty()) {
            let (case, args) = line.split_once('\t').unwrap_or((line, ""));
            let out = tmp.file(&format!("{case}.npy"));
            let extra: Vec<&str> = args.split_whitespace().collect();
            ok(&targeted(
                "explain",
                path_str(onnx),
                path_str(&input),
                target,
                path_str(&out),
                &extra,
            ));
            let got = load_f32(&out);
            let want = load_f32(&dir.join(format!("{case}.npy")));
            let err = worst_relative(&got, &want);
            assert!(
                err <= 1e-4,
                "{model}/{}/{case}: relative error {err:e}",
                onnx.file_name().unwrap().to_string_lossy()
            );
            worst = worst.max(err);
            runs += 1;
        }
    }
    eprintln!("{model}: {runs} runs, worst relative error {worst:e}");
}

#[test]
fn mlp_matches_zennit_for_every_rule_and_composite() {
    check_model_against_zennit("mlp");
}

#[test]
fn cnn_with_pooling_matches_zennit_for_every_rule_and_composite() {
    check_model_against_zennit("cnn_pool");
}

#[test]
fn cnn_with_batchnorm_matches_zennit_for_every_rule_and_composite() {
    check_model_against_zennit("cnn_bn");
}

fn library_net(onnx: &Path) -> Network {
    load_onnx_file(onnx)
        .unwrap()
        .into_network()
        .canonize()
        .unwrap()
}

/// Runs `klrp explain` on cnn_pool with extra args; returns the written array.
fn cli_run(onnx: &Path, input: &Path, target: &str, extra: &[&str], tmp: &TempDir) -> NpyData {
    let out = tmp.file("r.npy");
    let (m, x, o) = (path_str(onnx), path_str(input), path_str(&out));
    ok(&targeted("explain", m, x, target, o, extra));
    read_npy_file(&out).unwrap().data
}

/// `--low L0,L1,… --high H0,H1,…` are per-channel z^B bounds: the same relevance as the library
/// with those bounds written out per element; a list of the wrong length is an error.
#[test]
fn per_channel_box_bounds() {
    let tmp = TempDir::new("channel-bounds");
    let onnx = fixtures().join("cnn_bn/legacy.onnx");
    let input = fixtures().join("cnn_bn/input.npy");
    let (low, high) = ([-1.0_f32, -2.0, -0.5], [1.0_f32, 2.5, 3.0]);
    let args = [
        "--rule",
        "epsilon=1e-6",
        "--first-rule",
        "zbox",
        "--low",
        "-1,-2,-0.5",
        "--high",
        "1,2.5,3",
        "--init",
        "one",
    ];
    let NpyData::F32(cli) = cli_run(&onnx, &input, "1", &args, &tmp) else {
        panic!("real relevance is float32")
    };
    let x = load_f32(&input);
    let per = |v: [f32; 3]| Bound::from(ArrayD::from_shape_fn(vec![3, 8, 8], |i| v[i[0]]));
    let composite = Composite::uniform(EpsilonRule::new(1e-6).unwrap())
        .with_first_linear(ZBoxRule::new(per(low), per(high)).unwrap());
    let targets = vec![1; x.shape()[0]];
    let lib = library_net(&onnx)
        .explain::<Real<f32>, _>(&x, &targets, &composite, &PerLayer::new(Identity))
        .unwrap()
        .values();
    assert_eq!(cli.len(), lib.len());
    let worst = cli
        .iter()
        .zip(&lib)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let scale = lib.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0 && worst <= 1e-6 * scale, "{worst} vs {scale}");
    // Two channel bounds for three channels; an empty box in one channel.
    let o = tmp.file("r.npy");
    let (m, xi, o) = (path_str(&onnx), path_str(&input), path_str(&o));
    fails(
        &targeted(
            "explain",
            m,
            xi,
            "1",
            o,
            &["--first-rule", "zbox", "--low", "0,0", "--high", "1,1"],
        ),
        1,
        "z^B box bound",
    );
    fails(
        &targeted(
            "explain",
            m,
            xi,
            "1",
            o,
            &["--first-rule", "zbox", "--low", "0,1,0", "--high", "1,1,1"],
        ),
        2,
        "z^B needs low < high",
    );
}

#[test]
fn boolean_counting_viterbi_match_the_library() {
    let tmp = TempDir::new("semirings");
    for model in ["cnn_pool", "cnn_bn", "mlp"] {
        let onnx = fixtures().join(model).join("legacy.onnx");
        let input = fixtures().join(model).join("input.npy");
        let x = load_f32(&input);
        let net = library_net(&onnx);
        let targets = [1, 1, 1];
        let n = net.layers().len();

        // boolean, signed threshold, per-layer override
        let theta =
            PerLayer::new(Threshold::new(0.05).unwrap()).with(n - 1, Threshold::new(0.2).unwrap());
        let boolean = net
            .explain::<Boolean, _>(&x, &targets, &Composite::k_lrp(), &theta)
            .unwrap()
            .values();
        assert!(
            boolean.iter().any(|&b| b),
            "{model}: boolean relevance is empty"
        );
        // counting, |d| > θ, average max pooling
        let theta = PerLayer::new(AbsThreshold::new(0.02).unwrap());
        let composite = Composite::k_lrp().with_max_pool(ProportionalRule::default());
        let counting = net
            .explain::<Counting, _>(&x, &targets, &composite, &theta)
            .unwrap()
            .values();
        assert!(counting.iter().any(|&c| c > 1), "{model}: no count above 1");
        // viterbi, default composite
        let viterbi = net
            .explain::<Viterbi, _>(&x, &targets, &Composite::viterbi(), &PerLayer::new(Clamp01))
            .unwrap()
            .values();
        // real, LRP-0, one-hot init
        let real = net
            .explain::<Real<f32>, _>(
                &x,
                &targets,
                &Composite::uniform(ZeroRule),
                &PerLayer::new(Identity),
            )
            .unwrap()
            .values();
        let at = format!("{}=0.2", n - 1);
        // (case, the arguments, the library's relevance)
        let cases = [
            (
                "boolean",
                vec![
                    "--semiring",
                    "boolean",
                    "--theta",
                    "0.05",
                    "--theta-at",
                    &at,
                ],
                boolean.written(),
            ),
            (
                "counting",
                vec![
                    "--semiring",
                    "counting",
                    "--theta",
                    "0.02",
                    "--theta-abs",
                    "--maxpool",
                    "average",
                ],
                counting.written(),
            ),
            ("viterbi", vec!["--semiring", "viterbi"], viterbi.written()),
            (
                "real zero",
                vec!["--rule", "zero", "--init", "one"],
                real.written(),
            ),
        ];
        for (case, extra, want) in cases {
            let cli = cli_run(&onnx, &input, "1", &extra, &tmp);
            assert_eq!(cli, want, "{model} {case}");
        }
    }
}

#[test]
fn theta_at_uses_graph_node_indices() {
    // legacy_view.onnx has shape-computation nodes 6..=12 and the first Gemm at 14.
    let tmp = TempDir::new("theta-at");
    let onnx = fixtures().join("cnn_pool/legacy_view.onnx");
    let input = fixtures().join("cnn_pool/input.npy");
    let x = load_f32(&input);
    let net = library_net(&onnx);
    assert_eq!(net.layers().len(), 17);
    let theta = PerLayer::new(Threshold::new(0.01).unwrap()).with(14, Threshold::new(0.3).unwrap());
    let lib = net
        .explain::<Counting, _>(&x, &[1, 1, 1], &Composite::k_lrp(), &theta)
        .unwrap();
    let cli = cli_run(
        &onnx,
        &input,
        "1",
        &["--semiring", "counting", "--theta-at", "14=0.3"],
        &tmp,
    );
    assert_eq!(cli, lib.values().written());
    // and it differs from not overriding layer 14
    let plain = cli_run(&onnx, &input, "1", &["--semiring", "counting"], &tmp);
    assert_ne!(cli, plain);
}

/// `--theta-auto`: the CLI's thresholds are the library's calibration on the explained batch,
/// printed per dense/conv layer, and its masks are the library's masks with those thresholds.
#[test]
fn theta_auto_calibrates_on_the_explained_batch() {
    let tmp = TempDir::new("theta-auto");
    let onnx = fixtures().join("cnn_pool/legacy.onnx");
    let input = fixtures().join("cnn_pool/input.npy");
    let x = load_f32(&input);
    let net = library_net(&onnx);
    let n = net.layers().len();
    let targets = [1, 1, 1];
    let (m, xp) = (path_str(&onnx), path_str(&input));
    let out = tmp.file("auto.npy");
    let run = |extra: &[&str]| -> (NpyData, Vec<(usize, f32)>) {
        let o = ok(&targeted("explain", m, xp, "1", path_str(&out), extra));
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("theta-auto: "))
            .unwrap_or_else(|| panic!("no theta-auto line in {err:?}"));
        let chosen = line
            .split(' ')
            .map(|it| {
                let (i, t) = it.split_once('=').unwrap();
                (i.parse().unwrap(), t.parse().unwrap())
            })
            .collect();
        (read_npy_file(&out).unwrap().data, chosen)
    };
    let linear: Vec<usize> = (0..n)
        .filter(|&i| net.layers()[i].kind().is_linear())
        .collect();
    let listed = |p: &PerLayer<Threshold>| -> Vec<(usize, f32)> {
        linear.iter().map(|&i| (i, p.at(i).theta())).collect()
    };

    // inputs:F — κ searched so the Boolean masks keep about F of the non-zero inputs.
    let inputs = calibrate::for_input_fraction(&net, &x, targets, &Composite::k_lrp(), 0.3)
        .unwrap()
        .theta;
    let mask = net
        .explain::<Boolean, _>(&x, &targets, &Composite::k_lrp(), &inputs)
        .unwrap()
        .values();
    let on = mask.iter().filter(|&&b| b).count();
    assert!(
        on > 0 && on < mask.len(),
        "an informative mask: {on} of {}",
        mask.len()
    );
    // connections:F with a --theta-at override on the last layer, in Counting.
    let mut connections =
        calibrate::for_connection_fraction(&net, &x, &Composite::k_lrp(), 0.5).unwrap();
    connections.set(n - 1, Threshold::new(0.2).unwrap());
    let counts = net
        .explain::<Counting, _>(&x, &targets, &Composite::k_lrp(), &connections)
        .unwrap()
        .values();
    // fair-share:K
    let fair = calibrate::fair_share(&net, &x, 2.0).unwrap();
    let fair_mask = net
        .explain::<Boolean, _>(&x, &targets, &Composite::k_lrp(), &fair)
        .unwrap()
        .values();
    let at = format!("{}=0.2", n - 1);
    // (the arguments, the library's thresholds, its relevance with them)
    let cases = [
        (
            vec!["--semiring", "boolean", "--theta-auto", "inputs:0.3"],
            &inputs,
            mask.written(),
        ),
        (
            vec![
                "--semiring",
                "counting",
                "--theta-auto",
                "connections:0.5",
                "--theta-at",
                &at,
            ],
            &connections,
            counts.written(),
        ),
        (
            vec!["--semiring", "boolean", "--theta-auto", "fair-share:2"],
            &fair,
            fair_mask.written(),
        ),
    ];
    for (extra, theta, want) in cases {
        let (cli, chosen) = run(&extra);
        assert_eq!(chosen, listed(theta), "{extra:?}");
        assert_eq!(cli, want, "{extra:?}");
    }

    // Usage errors: exit 2, one line naming the flag.
    let base = targeted("explain", m, xp, "1", "unused.npy", &[]);
    for bad in [
        "inputs:0",
        "inputs:1.5",
        "connections:-1",
        "fair-share:0",
        "kappa:2",
        "inputs",
    ] {
        let extra = ["--semiring", "boolean", "--theta-auto", bad];
        fails_each(&base, &[(&extra, 2, "--theta-auto")]);
    }
    fails_each(
        &base,
        &[
            (
                &[
                    "--semiring",
                    "boolean",
                    "--theta-auto",
                    "inputs:0.3",
                    "--theta",
                    "0.1",
                ],
                2,
                "without --theta",
            ),
            (&["--theta-auto", "inputs:0.3"], 2, "boolean and counting"),
        ],
    );
}

#[test]
fn per_sample_targets_single_samples_and_heatmaps() {
    let tmp = TempDir::new("misc");
    let onnx = fixtures().join("cnn_pool/legacy.onnx");
    let input = fixtures().join("cnn_pool/input.npy");
    let x = load_f32(&input);
    // one sample without a batch axis
    let one = tmp.file("one.npy");
    klrp::io::npy::write_npy_file(&one, &x.index_axis(ndarray::Axis(0), 0).to_owned()).unwrap();
    let (m, x) = (path_str(&onnx), path_str(&input));
    let out = tmp.file("r1.npy");
    ok(&targeted(
        "explain",
        m,
        path_str(&one),
        "2",
        path_str(&out),
        &[],
    ));
    let r1 = load_f32(&out);
    assert_eq!(r1.shape(), &[2, 8, 8]);
    // targets per sample: the first sample with target 2 equals the single run
    let heat = tmp.file("heat.png");
    let out3 = tmp.file("r3.npy");
    let o = ok(&targeted(
        "explain",
        m,
        x,
        "2,0,1",
        path_str(&out3),
        &["--heatmap", path_str(&heat), "--timing"],
    ));
    let r3 = load_f32(&out3);
    assert_eq!(r3.index_axis(ndarray::Axis(0), 0), r1);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr.lines().find(|l| l.starts_with("timing: ")).unwrap();
    assert!(
        line.contains("load ") && line.contains(" ms, forward ") && line.ends_with(" ms"),
        "{line}"
    );
    assert!(line.contains(", relevance "), "{line}");
    for s in 0..3 {
        let png = tmp.file(&format!("heat_{s}.png"));
        let img = klrp::io::image::read_image_file(&png).unwrap();
        assert_eq!((img.width, img.height), (8, 8));
    }
}

#[test]
fn image_inputs_are_preprocessed_for_the_model() {
    let tmp = TempDir::new("image");
    // cnn_bn takes 3 × 8 × 8: resize the shorter side to 9, crop 8 × 8, ImageNet normalisation
    let onnx = fixtures().join("cnn_bn/legacy.onnx");
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/rgb.png");
    let (out, heat) = (tmp.file("r.npy"), tmp.file("r.png"));
    let (x, o) = (path_str(&png), path_str(&out));
    ok(&targeted(
        "explain",
        path_str(&onnx),
        x,
        "0",
        o,
        &[
            "--composite",
            "epsilon-gamma-box",
            "--heatmap",
            path_str(&heat),
        ],
    ));
    let r = load_f32(&out);
    assert_eq!(r.shape(), &[3, 8, 8]);
    let img = klrp::io::image::read_image_file(&heat).unwrap();
    assert_eq!((img.width, img.height), (8, 8));
    // an MLP cannot take an image
    let mlp = fixtures().join("mlp/legacy.onnx");
    fails(
        &targeted("explain", path_str(&mlp), x, "0", o, &[]),
        1,
        "give the input as .npy",
    );
}

#[test]
fn info_prints_every_node_with_index_shape_and_params() {
    let o = ok(&[
        "info",
        "--model",
        path_str(&fixtures().join("cnn_pool/legacy_view.onnx")),
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("model: "));
    assert!(lines[1].starts_with("input: [N, 2, 8, 8]"));
    assert!(lines[2].contains("layer") && lines[2].contains("output shape"));
    let body = &lines[3..3 + 17];
    for (i, l) in body.iter().enumerate() {
        assert!(
            l.trim_start().starts_with(&format!("{i} ")),
            "line {i}: {l}"
        );
    }
    assert!(
        body[0].contains("Conv2d(2 → 4")
            && body[0].contains("[4, 8, 8]")
            && body[0].ends_with("76")
    );
    assert!(body[7].contains("(Constant)") && body[7].contains("constant"));
    assert!(body[13].contains("(Reshape)") && body[13].contains("[20]"));
    assert!(lines[3 + 17].contains("17 layers, 408 parameters"));

    let o = ok(&[
        "info",
        "--model",
        path_str(&fixtures().join("cnn_bn/legacy_bn.onnx")),
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("fused into layer 0"), "{text}");
}

/// `klrp info` prints the model's `metadata_props` after the layer table, then the preprocessing
/// an image gets from them (or why they cannot be used); without metadata it prints nothing more.
#[test]
fn info_prints_the_models_metadata() {
    let info = |model: &Path| -> String {
        String::from_utf8(ok(&["info", "--model", path_str(model)]).stdout).unwrap()
    };
    // The lines from the "N layers, P parameters" line on.
    let tail = |text: &str| -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let end = lines
            .iter()
            .position(|l| l.ends_with(" parameters") && l.contains(" layers, "))
            .unwrap_or_else(|| panic!("no summary line in {text}"));
        lines[end + 1..].iter().map(|l| l.to_string()).collect()
    };
    let plain = info(&fixtures().join("mlp/legacy.onnx"));
    assert_eq!(tail(&plain), Vec::<String>::new(), "{plain}");
    assert!(!plain.contains("metadata"));

    let dir = fixtures().join("metadata");
    assert_eq!(
        tail(&info(&dir.join("preprocess.onnx"))),
        [
            "metadata (ONNX metadata_props, 5 entries):",
            "  klrp.crop = 6,6",
            "  klrp.mean = 0.5,0.4,0.3",
            "  klrp.resize = 8",
            "  klrp.std = 0.25",
            "  license = MIT",
            "image preprocessing (from the metadata): resize 8, center crop 6×6, normalize mean \
             [0.5, 0.4, 0.3] std [0.25, 0.25, 0.25]",
        ]
    );
    assert_eq!(
        tail(&info(&dir.join("grayscale.onnx"))),
        [
            "metadata (ONNX metadata_props, 4 entries):",
            "  klrp.crop = 6",
            "  klrp.mean = 0.5",
            "  klrp.resize = none",
            "  klrp.std = 0.25",
            "image preprocessing (from the metadata): no resize, center crop 6×6, normalize mean \
             [0.5] std [0.25]",
        ]
    );
    // Unusable metadata does not stop `info` (it stops `explain` on an image, below).
    assert_eq!(
        tail(&info(&dir.join("mean_without_std.onnx"))),
        [
            "metadata (ONNX metadata_props, 1 entry):",
            "  klrp.mean = 0.5",
            "image preprocessing (from the metadata): unusable (invalid argument: model metadata \
             klrp.mean = '0.5': klrp.std is missing)",
        ]
    );
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/rgb.png");
    let model = dir.join("mean_without_std.onnx");
    fails(
        &argv("predict", path_str(&model), path_str(&png), &[]),
        1,
        "klrp.std is missing",
    );
    // The Lite0 the repository ships: its TensorFlow normalisation (docs/imagenet.md).
    let lite0 = info(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/efficientnet_lite0.onnx"));
    assert!(
        lite0.ends_with(
            "image preprocessing (from the metadata): resize 256, center crop 224×224, normalize \
             mean [0.49803922, 0.49803922, 0.49803922] std [0.50196075, 0.50196075, 0.50196075]\n"
        ),
        "{lite0}"
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let mlp = Mlp::new();
    let (m, x) = mlp.args();
    let no_target = argv("explain", m, x, &["--out", "r.npy"]);
    // rules are checked before the model is read
    let bad_rule = targeted(
        "explain",
        "/nonexistent.onnx",
        x,
        "1",
        "r.npy",
        &["--rule", "gamma=-1"],
    );
    // (arguments, exit code, what the one-line message must contain)
    fails_each(
        &[],
        &[
            (&[], 2, "no command"),
            (&["frobnicate"], 2, "unknown command"),
            (&["info"], 2, "--model is required"),
            (
                &["info", "--model", m, "--target", "1"],
                2,
                "does not apply",
            ),
            (&["info", "--model"], 2, "--model needs a value"),
            (&no_target, 2, "--target is required"),
            (&bad_rule, 2, "γ must be finite and ≥ 0"),
        ],
    );
    // (extra arguments, exit code, what the one-line message must contain)
    fails_each(
        &targeted("explain", m, x, "1", "/tmp/never.npy", &[]),
        &[
            (&["--bogus"], 2, "unknown option '--bogus'"),
            (&["--semiring", "tropical"], 2, "--semiring"),
            (&["--rule", "epsilon=abc"], 2, "not a finite number"),
            (&["--rule", "alpha-beta=3,1"], 2, "α − β = 1"),
            (&["--rule", "zbox"], 2, "--first-rule zbox"),
            (
                &["--rule", "flat", "--composite", "epsilon-plus-flat"],
                2,
                "either --rule or --composite",
            ),
            (&["--composite", "lrp-magic"], 2, "--composite"),
            (&["--theta", "0.1"], 2, "boolean and counting"),
            (
                &["--semiring", "boolean", "--init", "output"],
                2,
                "real semiring only",
            ),
            (
                &["--semiring", "boolean", "--theta-at", "99=0.1"],
                2,
                "layer 99 does not exist",
            ),
            (&["--semiring", "counting", "--theta-at", "3"], 2, "INDEX=T"),
            (&["--low", "-1", "--high", "1"], 2, "--low/--high apply"),
            (
                &["--first-rule", "zbox", "--low", "-1"],
                2,
                "both --low and --high",
            ),
            (&["--maxpool", "median"], 2, "--maxpool"),
            (&["--rule", "flat", "--rule", "zplus"], 2, "given twice"),
            (&["--target", "2"], 2, "given twice"),
        ],
    );
    let help = ok(&["--help"]);
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--model",
        "--input",
        "--target",
        "--semiring",
        "--theta",
        "--theta-at",
        "--theta-abs",
        "--rule",
        "--first-rule",
        "--low",
        "--high",
        "--composite",
        "--maxpool",
        "--init",
        "--timing",
        "--out",
        "--heatmap",
        "EXAMPLES",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn bad_files_exit_1_with_one_line() {
    let tmp = TempDir::new("badfiles");
    let mlp = Mlp::new();
    let (m, x) = mlp.args();
    let out = tmp.file("r.npy");
    let o = path_str(&out);
    // truncated ONNX
    let bytes = std::fs::read(&mlp.onnx).unwrap();
    let trunc = tmp.file("trunc.onnx");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    // (the model, exit code, what the one-line message must contain)
    fails_each(
        &["info", "--model"],
        &[
            (&[path_str(&trunc)], 1, "malformed ONNX data"),
            // not ONNX at all
            (&[x], 1, "malformed ONNX data"),
            (&["/nonexistent.onnx"], 1, "I/O error on /nonexistent.onnx"),
        ],
    );
    // truncated and non-npy inputs, a wrong input shape, a NaN input, a truncated image
    let npy = std::fs::read(&mlp.input).unwrap();
    let tnpy = tmp.file("t.npy");
    std::fs::write(&tnpy, &npy[..npy.len() - 5]).unwrap();
    let garbage = tmp.file("g.bin");
    std::fs::write(&garbage, b"\x00\x01\x02not an array").unwrap();
    let wrong = tmp.file("wrong.npy");
    klrp::io::npy::write_npy_file(&wrong, &ArrayD::<f32>::zeros(vec![2, 7])).unwrap();
    let nan = tmp.file("nan.npy");
    klrp::io::npy::write_npy_file(&nan, &ArrayD::<f32>::from_elem(vec![1, 8], f32::NAN)).unwrap();
    let png =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/rgb.png"))
            .unwrap();
    let tpng = tmp.file("t.png");
    std::fs::write(&tpng, &png[..png.len() / 2]).unwrap();
    let cnn = fixtures().join("cnn_bn/legacy.onnx");
    let heatmap = tmp.file("h.png");
    // (model, input, target, output, extra arguments, what the one-line message must contain)
    let cases = [
        (m, path_str(&tnpy), "0", o, &[][..], "malformed npy"),
        (
            m,
            path_str(&garbage),
            "0",
            o,
            &[],
            "is not an .npy, PNG or JPEG file",
        ),
        (
            m,
            path_str(&wrong),
            "0",
            o,
            &[],
            "has shape [2, 7]; the model takes [N, 8]",
        ),
        (m, x, "7", o, &[], "target 7 out of range"),
        (m, path_str(&nan), "0", o, &[], "non-finite"),
        (
            path_str(&cnn),
            path_str(&tpng),
            "0",
            o,
            &[],
            "malformed PNG",
        ),
        (m, x, "0", "/nonexistent/dir/r.npy", &[], "I/O error"),
        (
            m,
            x,
            "0",
            o,
            &["--heatmap", path_str(&heatmap)],
            "image-shaped input",
        ),
    ];
    for (model, input, target, out, extra, want) in cases {
        fails(
            &targeted("explain", model, input, target, out, extra),
            1,
            want,
        );
    }
}

/// Writes an `.npy` file with a raw header `descr` and `shape` (a Python tuple) and `data`.
fn raw_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// The bad-input classes of docs/reliability.md that reach the command: every one exits 2
/// (usage) or 1 (anything else) with one line on stderr, never a panic.
#[test]
fn reliability_bad_inputs_exit_cleanly() {
    let tmp = TempDir::new("reliability");
    let mlp = Mlp::new();
    let (m, x) = mlp.args();
    let out = tmp.file("r.npy");
    let o = path_str(&out);
    // (input, target, extra arguments, exit code, what the one-line message must contain)
    let cases: [(&str, &str, &[&str], i32, &str); 14] = [
        // Malformed flags and values: usage errors.
        (x, "99999999999999999999999", &[], 2, "--target"),
        (x, "-1", &[], 2, "--target"),
        (x, "", &[], 2, "--target"),
        (x, "1,,2", &[], 2, "--target"),
        (x, "0", &["--rule", "epsilon=nan"], 2, "not a finite number"),
        (x, "0", &["--rule", "epsilon=inf"], 2, "not a finite number"),
        (x, "0", &["--rule", "epsilon=-1"], 2, "ε"),
        (
            x,
            "0",
            &["--semiring", "boolean", "--theta", "NaN"],
            2,
            "not a finite number",
        ),
        (
            x,
            "0",
            &[
                "--semiring",
                "counting",
                "--theta-at",
                "99999999999999999999999=0.1",
            ],
            2,
            "--theta-at",
        ),
        (x, "0", &["--resize", "0"], 2, "--resize"),
        (x, "0", &["--out"], 2, "--out needs a value"),
        // Targets out of range: the largest usize, and more targets than samples.
        (x, "18446744073709551615", &[], 1, "out of range"),
        (x, "0,1,2,3,4,5,6,7,8,9,10", &[], 1, "target"),
        // Missing files.
        ("/nonexistent/x.npy", "0", &[], 1, "/nonexistent/x.npy"),
    ];
    for (input, target, extra, code, want) in cases {
        fails(&targeted("explain", m, input, target, o, extra), code, want);
    }
    fails_each(
        &["info", "--model"],
        &[(&["/nonexistent/m.onnx"], 1, "I/O error"), (&["/"], 1, "")],
    );
    // npy inputs of the wrong dtype, empty, scalar, Inf.
    let cplx = tmp.file("c.npy");
    raw_npy(&cplx, "<c8", "(1, 8)", &[0; 64]);
    let text = tmp.file("u.npy");
    raw_npy(&text, "<U3", "(1, 8)", &[0; 96]);
    let obj = tmp.file("o.npy");
    raw_npy(&obj, "|O", "(1, 8)", &[0; 64]);
    let empty = tmp.file("e.npy");
    raw_npy(&empty, "<f4", "(0, 8)", &[]);
    let scalar = tmp.file("s.npy");
    raw_npy(&scalar, "<f4", "()", &1f32.to_le_bytes());
    let inf = tmp.file("inf.npy");
    klrp::io::npy::write_npy_file(&inf, &ArrayD::<f32>::from_elem(vec![1, 8], f32::INFINITY))
        .unwrap();
    // An empty file as model and as input.
    let nothing = tmp.file("nothing");
    std::fs::write(&nothing, b"").unwrap();
    fails(&["info", "--model", path_str(&nothing)], 1, "");
    // (input, what the one-line message must contain); every one exits 1
    for (input, want) in [
        (&cplx, "npy"),
        (&text, "npy"),
        (&obj, "npy"),
        (&empty, ""),
        (&scalar, "shape"),
        (&inf, "non-finite"),
        (&nothing, ""),
    ] {
        fails(
            &targeted("explain", m, path_str(input), "0", o, &[]),
            1,
            want,
        );
    }
    let big = tmp.file("big.npy");
    let mut huge = vec![1f32; 8];
    huge[0] = f32::MAX;
    klrp::io::npy::write_npy_file(
        &big,
        &ndarray::Array2::from_shape_vec((1, 8), huge)
            .unwrap()
            .into_dyn(),
    )
    .unwrap();
    // Finite but extreme: either explained or refused with one line (an overflow is non-finite).
    let o = klrp(&targeted("explain", m, path_str(&big), "0", o, &[]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(0) || (o.status.code() == Some(1) && err.lines().count() == 1));
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
}

#[test]
fn size_limits_can_be_set_from_the_command_line() {
    let tmp = TempDir::new("limits");
    let out = tmp.file("r.npy");
    let o = path_str(&out);
    // --max-elements: the MLP takes 8 elements per sample; input.npy is a batch of 3.
    let mlp = Mlp::new();
    let (m, x) = mlp.args();
    ok(&["info", "--model", m, "--max-elements", "8"]);
    fails_each(
        &["info", "--model", m],
        &[
            (&["--max-elements", "7"], 1, "above the limit of 7"),
            (&["--max-elements", "0"], 2, "--max-elements"),
            (&["--max-elements", "x"], 2, "--max-elements"),
            (&["--max-pixels", "9"], 2, "--max-pixels does not apply"),
        ],
    );
    let explain = targeted("explain", m, x, "1", o, &[]);
    ok(&explain);
    let unbounded = load_f32(&out);
    // the widest tensor of the batch is the 3 × 8 input
    ok(&[&explain[..], &["--max-elements", "24"]].concat());
    assert_eq!(load_f32(&out), unbounded);
    fails_each(
        &explain,
        &[
            (&["--max-elements", "23"], 1, "above the limit of 23"),
            (
                &["--max-pixels", "100"],
                2,
                "--max-pixels applies to image inputs only",
            ),
        ],
    );
    // --max-pixels: rgb.png is 40 × 30.
    let onnx = fixtures().join("cnn_bn/legacy.onnx");
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/rgb.png");
    let image = targeted("explain", path_str(&onnx), path_str(&png), "0", o, &[]);
    ok(&[&image[..], &["--max-pixels", "1200"]].concat());
    fails_each(
        &image,
        &[
            (&["--max-pixels", "1199"], 1, "above the limit of 1199"),
            (&["--max-pixels", "-3"], 2, "--max-pixels"),
        ],
    );
}

/// The logits of `onnx` for `input`, computed by the library (independent of `klrp predict`).
fn logits(onnx: &Path, input: &Path) -> ArrayD<f32> {
    library_net(onnx).forward(&load_f32(input)).unwrap()
}

/// `exp(z − max) / Σ exp(z − max)` in f64.
fn softmax_f64(z: &[f32]) -> Vec<f64> {
    let m = z
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let e: Vec<f64> = z.iter().map(|&v| (f64::from(v) - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn predict_prints_softmax_classes_best_first_with_labels() {
    let tmp = TempDir::new("predict");
    let onnx = fixtures().join("cnn_pool/legacy.onnx");
    let input = fixtures().join("cnn_pool/input.npy");
    let z = logits(&onnx, &input);
    let (n, classes) = (z.shape()[0], z.shape()[1]);
    assert!(n > 1 && classes >= 3);
    let labels = tmp.file("labels.txt");
    let names: Vec<String> = (0..classes).map(|c| format!("name of {c}")).collect();
    std::fs::write(&labels, names.join("\n") + "\n").unwrap();
    let o = ok(&argv(
        "predict",
        path_str(&onnx),
        path_str(&input),
        &["--top", "2", "--labels", path_str(&labels)],
    ));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), n * 3, "{text}");
    for s in 0..n {
        assert_eq!(lines[3 * s], format!("sample {s}"));
        let row: Vec<f32> = z.index_axis(ndarray::Axis(0), s).iter().copied().collect();
        let p = softmax_f64(&row);
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
        for rank in 0..2 {
            let fields: Vec<&str> = lines[3 * s + 1 + rank].split('\t').collect();
            let c = order[rank];
            assert_eq!(
                fields,
                [
                    (rank + 1).to_string(),
                    c.to_string(),
                    format!("{:.4}", p[c]),
                    names[c].clone()
                ],
                "sample {s} rank {rank}"
            );
        }
        assert!(p[order[0]] >= p[order[1]]);
    }
    // one sample without a batch axis: no header; default K = 5 clamps to the classes
    let one = tmp.file("one.npy");
    klrp::io::npy::write_npy_file(
        &one,
        &load_f32(&input).index_axis(ndarray::Axis(0), 0).to_owned(),
    )
    .unwrap();
    let o = ok(&argv("predict", path_str(&onnx), path_str(&one), &[]));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), classes.min(5));
    let total: f64 = lines
        .iter()
        .map(|l| l.split('\t').nth(2).unwrap().parse::<f64>().unwrap())
        .sum();
    if classes <= 5 {
        assert!((total - 1.0).abs() <= 5e-4 * classes as f64, "{total}");
    }
    assert!(lines.iter().all(|l| l.split('\t').count() == 3));
    // bad K, short and missing label files
    let m = path_str(&onnx);
    let x = path_str(&input);
    let short = tmp.file("short.txt");
    std::fs::write(&short, "only one\n").unwrap();
    fails_each(
        &argv("predict", m, x, &[]),
        &[
            (&["--top", "0"], 2, "--top"),
            (&["--top", "x"], 2, "--top"),
            (&["--labels", path_str(&short)], 1, "has 1 lines"),
            (
                &["--labels", "/nonexistent/l.txt"],
                1,
                "I/O error on /nonexistent/l.txt",
            ),
            (
                &["--target", "1"],
                2,
                "--target does not apply to `klrp predict`",
            ),
        ],
    );
    fails(&["predict", "--model", m], 2, "--input is required");
}

/// `predict --logits`: one line per sample, the raw outputs tab-separated, exactly the library's
/// forward pass once parsed as f32; `--top`/`--labels` with it are usage errors.
#[test]
fn predict_logits_prints_the_raw_outputs_exactly() {
    let tmp = TempDir::new("logits");
    for model in ["mlp", "cnn_pool"] {
        let onnx = fixtures().join(model).join("legacy.onnx");
        let input = fixtures().join(model).join("input.npy");
        let x = load_f32(&input);
        // `predict` runs the imported network as is (not canonized).
        let z = load_onnx_file(&onnx)
            .unwrap()
            .into_network()
            .forward(&x)
            .unwrap();
        let (m, xp) = (path_str(&onnx), path_str(&input));
        let o = ok(&argv("predict", m, xp, &["--logits"]));
        let text = String::from_utf8(o.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), z.shape()[0], "{model}: {text}");
        for (line, want) in lines.iter().zip(z.outer_iter()) {
            let got: Vec<f32> = line.split('\t').map(|v| v.parse().unwrap()).collect();
            let want: Vec<f32> = want.iter().copied().collect();
            assert_eq!(got.len(), want.len(), "{model}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.to_bits(), w.to_bits(), "{model}: {line}");
            }
        }
        // One sample without a batch axis: one line, the same as the batch's first.
        let (one, _) = one_sample(model, &tmp);
        let o = ok(&argv("predict", m, path_str(&one), &["--logits"]));
        assert_eq!(
            String::from_utf8(o.stdout).unwrap(),
            format!("{}\n", lines[0])
        );
        // Without the flag, the class lines as before.
        let o = ok(&argv("predict", m, xp, &["--top", "1"]));
        assert!(
            String::from_utf8(o.stdout)
                .unwrap()
                .starts_with("sample 0\n1\t")
        );
        fails_each(
            &argv("predict", m, xp, &["--logits"]),
            &[
                (
                    &["--top", "2"],
                    2,
                    "--top and --labels apply to the class lines",
                ),
                (
                    &["--labels", "l.txt"],
                    2,
                    "--top and --labels apply to the class lines",
                ),
                (&["--logits"], 2, "--logits"),
            ],
        );
    }
    let help = String::from_utf8(ok(&["predict", "--help"]).stdout).unwrap();
    assert!(help.contains("--logits") && help.contains("shortest round-trip"));
}

#[test]
fn explain_target_predicted_explains_the_top_class() {
    let tmp = TempDir::new("predicted");
    let onnx = fixtures().join("cnn_pool/legacy.onnx");
    let input = fixtures().join("cnn_pool/input.npy");
    let z = logits(&onnx, &input);
    let argmax: Vec<String> = z
        .outer_iter()
        .map(|s| {
            let best =
                s.iter().enumerate().fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                );
            best.0.to_string()
        })
        .collect();
    let out = tmp.file("p.npy");
    let (m, x, o) = (path_str(&onnx), path_str(&input), path_str(&out));
    let run = |target: &str| ok(&targeted("explain", m, x, target, o, &[]));
    let o = run("predicted");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l == format!("predicted: {}", argmax.join(","))),
        "{stderr}"
    );
    let predicted = load_f32(&out);
    run(&argmax.join(","));
    assert_eq!(load_f32(&out), predicted);
    // another class gives another explanation (the target matters)
    let other: Vec<String> = argmax
        .iter()
        .map(|c| ((c.parse::<usize>().unwrap() + 1) % z.shape()[1]).to_string())
        .collect();
    run(&other.join(","));
    assert_ne!(load_f32(&out), predicted);
}

#[test]
fn clap_conveniences_help_suggestions_completions() {
    let mlp = Mlp::new();
    let (m, x) = mlp.args();
    fails_each(
        &targeted("explain", m, x, "1", "/tmp/never.npy", &[]),
        &[
            (&["--targte", "2"], 2, "did you mean '--target'?"),
            (&["--semiring", "boolen"], 2, "did you mean 'boolean'?"),
            (&["--timing", "--timing"], 2, "--timing given twice"),
            (&["--timing=yes"], 2, "--timing takes no value"),
            (&["--theta-abs=1"], 2, "--theta-abs takes no value"),
        ],
    );
    fails_each(
        &[],
        &[
            (&["explian"], 2, "did you mean 'explain'?"),
            (&["completions", "tcsh"], 2, "'tcsh' is not"),
        ],
    );
    // explain --help documents every option with its default
    let help = String::from_utf8(ok(&["explain", "--help"]).stdout).unwrap();
    for want in [
        "--model",
        "--weights",
        "--input",
        "--target",
        "predicted",
        "--out",
        "--heatmap",
        "--timing",
        "--semiring",
        "[default: real]",
        "--rule",
        "--first-rule",
        "--composite",
        "--low",
        "--high",
        "--maxpool",
        "--init",
        "--theta",
        "default 0.01",
        "--theta-at",
        "--theta-abs",
        "--resize",
        "--normalize",
        "--max-pixels",
        "--max-elements",
    ] {
        assert!(help.contains(want), "explain --help lacks {want}");
    }
    let help = String::from_utf8(ok(&["predict", "--help"]).stdout).unwrap();
    for want in ["--top", "[default: 5]", "--labels", "sample N", "RANK"] {
        assert!(help.contains(want), "predict --help lacks {want}");
    }
    // completion scripts name the commands and options
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef"),
        ("fish", "complete -c klrp"),
    ] {
        let script = String::from_utf8(ok(&["completions", shell]).stdout).unwrap();
        assert!(script.contains(marker), "{shell}");
        for word in ["explain", "predict", "theta-at", "epsilon-gamma-box"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let v = String::from_utf8(ok(&["--version"]).stdout).unwrap();
    assert_eq!(v.trim(), format!("klrp {}", env!("CARGO_PKG_VERSION")));
}

/// The shipped EfficientNet-Lite0 on a shipped photo, from the command line: the preprocessing
/// comes from the model's metadata (mean 127/255, std 128/255), so `predict` prints PyTorch's
/// top-1 with PyTorch's probability (models/reference/photos.txt: tiger cat 0.4072), while
/// `--normalize imagenet` overrides it (other probabilities); `explain` with ε-γ-box writes
/// the relevance and the heatmap.
#[test]
fn efficientnet_lite0_uses_the_models_preprocessing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/efficientnet_lite0.onnx");
    let photo = root.join("data/photos/chelsea.png");
    let labels = root.join("models/imagenet_classes.txt");
    let (m, x, l) = (
        model.to_str().unwrap(),
        photo.to_str().unwrap(),
        labels.to_str().unwrap(),
    );
    let o = ok(&argv("predict", m, x, &["--labels", l, "--top", "2"]));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1\t282\t0.4072\ttiger cat\n2\t285\t0.3454\tEgyptian cat\n"
    );
    let o = ok(&argv("predict", m, x, &["--normalize", "imagenet"]));
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(!first.starts_with("1\t282\t0.4072"), "{first}");

    let tmp = TempDir::new("lite0");
    let (out, heat) = (tmp.file("r.npy"), tmp.file("r.png"));
    let o = ok(&targeted(
        "explain",
        m,
        x,
        "predicted",
        path_str(&out),
        &[
            "--composite",
            "epsilon-gamma-box",
            "--heatmap",
            path_str(&heat),
        ],
    ));
    assert!(String::from_utf8_lossy(&o.stderr).contains("predicted: 282"));
    let r = load_f32(&out);
    assert_eq!(r.shape(), &[3, 224, 224]);
    assert!(r.iter().all(|v| v.is_finite()) && r.iter().any(|&v| v != 0.0));
    let png = klrp::io::image::read_image_file(&heat).unwrap();
    assert_eq!((png.width, png.height), (224, 224));
}

// ------------------------------------------------------------------ klrp paths (issue #18)

/// Sample 0 of a fixture's input batch, written as one sample (no batch axis).
fn one_sample(model: &str, tmp: &TempDir) -> (PathBuf, ArrayD<f32>) {
    let x = load_f32(&fixtures().join(model).join("input.npy"));
    let x0 = x.index_axis(ndarray::Axis(0), 0).to_owned();
    let p = tmp.file(&format!("{model}_x0.npy"));
    klrp::io::npy::write_npy_file(&p, &x0).unwrap();
    (p, x0.insert_axis(ndarray::Axis(0)))
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The steps of a path in the JSON as (node, index, share).
fn json_steps(p: &serde_json::Value) -> Vec<(i64, usize, Option<f64>)> {
    p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node"].as_i64().unwrap(),
                s["index"].as_u64().unwrap() as usize,
                s.get("share").map(|v| v.as_f64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn paths_json_follows_the_contract_and_matches_the_library() {
    let tmp = TempDir::new("paths");
    for model in ["mlp", "cnn_pool"] {
        let onnx = fixtures().join(model).join("legacy.onnx");
        let (input, x) = one_sample(model, &tmp);
        let net = library_net(&onnx);
        let out = tmp.file("paths.json");
        let circuit = tmp.file("circuit.json");
        let (m, xp, o) = (path_str(&onnx), path_str(&input), path_str(&out));
        // `klrp paths … --target 1 --out paths.json EXTRA…`
        let klrp_paths = |extra: &[&str]| ok(&targeted("paths", m, xp, "1", o, extra));
        klrp_paths(&["--top", "7", "--circuit", path_str(&circuit)]);
        let v = read_json(&out);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(v["target"], 1);
        assert_eq!(v["semiring"], "viterbi");
        let paths = v["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 7, "{model}");
        let want = net
            .strongest_paths(&x, 1, 7, &klrp::Explainer::viterbi())
            .unwrap();
        let viterbi = net
            .explain_with(&x, 1, &klrp::Explainer::viterbi())
            .unwrap();
        let max = viterbi.input().iter().map(|v| v.0).fold(0.0, f64::max);
        let mut last = f64::INFINITY;
        for (p, w) in paths.iter().zip(&want) {
            // Shortest round-trip form: Rust's parser gets the exact f64 back (serde_json's
            // default parser may be 1 ulp off, hence the tolerance on its values below).
            let printed = format!("\"strength\": {:?}", w.strength);
            assert!(text.contains(&printed), "{model}: {printed}");
            assert_eq!(
                format!("{:?}", w.strength).parse::<f64>().unwrap(),
                w.strength
            );
            let strength = p["strength"].as_f64().unwrap();
            assert!(
                (strength - w.strength).abs() <= 1e-15 * w.strength,
                "{model}"
            );
            assert!(strength <= last && strength > 0.0);
            last = strength;
            let steps = json_steps(p);
            assert_eq!(steps[0].0, -1, "starts at the input");
            assert_eq!(steps[0].2, None, "no share at the input");
            let n_nodes = net.layers().len() as i64;
            assert_eq!(
                steps.last().unwrap().0,
                n_nodes - 1,
                "ends at the last node"
            );
            assert_eq!(steps.last().unwrap().1, 1, "ends at the target");
            // A chain: one step per node, in order.
            let nodes: Vec<i64> = steps.iter().map(|s| s.0).collect();
            assert_eq!(nodes, (-1..n_nodes).collect::<Vec<_>>());
            // strength = the product of the shares (from the target back).
            let product = steps[1..]
                .iter()
                .rev()
                .fold(1.0, |acc, s| s.2.unwrap() * acc);
            assert!((product - strength).abs() <= 1e-14 * strength);
            for (s, ws) in steps.iter().zip(&w.steps) {
                assert_eq!(s.1, ws.index);
            }
        }
        let top = paths[0]["strength"].as_f64().unwrap();
        // Up to the fast kernels' rounding (docs/semantics.md §9).
        assert!((top - max).abs() <= 1e-5 * max, "{model}: {top} vs {max}");
        let c = read_json(&circuit);
        assert_eq!(c["paths"], 7);

        // --from J: the strongest path from J first, every path from J.
        let r0: Vec<f64> = viterbi.input().iter().map(|v| v.0).collect();
        let j = (0..r0.len())
            .filter(|&j| r0[j] > 0.0)
            .min_by(|&a, &b| r0[a].total_cmp(&r0[b]))
            .unwrap();
        klrp_paths(&["--top", "3", "--from", &j.to_string()]);
        let v = read_json(&out);
        let paths = v["paths"].as_array().unwrap();
        assert!(!paths.is_empty());
        for p in paths {
            assert_eq!(json_steps(p)[0].1, j);
        }
        let s0 = paths[0]["strength"].as_f64().unwrap();
        assert!((s0 - r0[j]).abs() <= 1e-5 * r0[j], "{s0} vs R_j {}", r0[j]);
        let first = paths[0].clone();
        // --from J without --top: the single strongest path from J (--top 1).
        klrp_paths(&["--from", &j.to_string()]);
        let v = read_json(&out);
        assert_eq!(v["paths"].as_array().unwrap().len(), 1, "{model}");
        assert_eq!(v["paths"][0], first, "{model}");
        klrp_paths(&["--top", "1", "--from", &j.to_string()]);
        assert_eq!(read_json(&out), v, "{model}: --from J is --top 1 --from J");

        // --sample N --theta T --seed S: N relevant paths, reproducible.
        let sample = |seed: &str| {
            klrp_paths(&["--sample", "25", "--theta", "0.01", "--seed", seed]);
            read_json(&out)
        };
        let a = sample("3");
        assert_eq!(a["semiring"], "counting");
        assert_eq!(a["target"], 1);
        assert_eq!(a["theta"].as_f64().unwrap(), 0.01);
        let sampled = a["sampled"].as_array().unwrap();
        assert_eq!(sampled.len(), 25);
        let counts = net
            .explain_with(
                &x,
                1,
                &klrp::Explainer::counting(Threshold::new(0.01).unwrap()),
            )
            .unwrap();
        let total: u64 = counts.input().iter().map(|c| c.0).sum();
        assert_eq!(a["relevant_paths"].as_u64().unwrap(), total);
        for p in sampled {
            let steps = json_steps(p);
            assert_eq!(steps[0].0, -1);
            assert!(counts.input().iter().nth(steps[0].1).unwrap().0 > 0);
            assert_eq!(steps.last().unwrap().1, 1);
            // Every linear/pooling step's LRP-0 share passed θ.
            for s in p["steps"].as_array().unwrap() {
                if let Some(d) = s.get("d") {
                    assert!(d.as_f64().unwrap() >= 0.01_f32 as f64, "{s}");
                }
            }
        }
        assert_eq!(a, sample("3"), "the same seed draws the same paths");
        assert_eq!(sample("0")["seed"], 0);
        assert_ne!(a, sample("4"));
    }
}

#[test]
fn paths_figure_and_bad_input() {
    let tmp = TempDir::new("paths-bad");
    let onnx = fixtures().join("cnn_pool/legacy.onnx");
    let (input, _) = one_sample("cnn_pool", &tmp);
    let (m, x) = (path_str(&onnx), path_str(&input));
    let out = tmp.file("p.json");
    let fig = tmp.file("p.png");
    let o = path_str(&out);
    ok(&targeted(
        "paths",
        m,
        x,
        "predicted",
        o,
        &["--top", "2", "--figure", path_str(&fig)],
    ));
    // The receptive-field figure: the image enlarged to about 448 pixels, the first box red
    // (`depth_color(0, n)` for every n), the input pixel's marker white.
    let png = klrp::viz::read_png(&fig).unwrap();
    assert!(png.width() > 300 && png.height() > 300);
    let has = |c: [u8; 3]| png.as_raw().chunks_exact(3).any(|p| p == c);
    assert_eq!(klrp::paths::depth_color(0, 3), [255, 0, 0]);
    assert!(has([255, 0, 0]) && has([255, 255, 255]));
    // A batch of three samples.
    let batch = fixtures().join("cnn_pool/input.npy");
    let batch = targeted("paths", m, path_str(&batch), "1", o, &["--top", "1"]);
    fails(&batch, 1, "one sample");
    // (extra arguments, exit code, what the one-line message must contain)
    fails_each(
        &targeted("paths", m, x, "1", o, &[]),
        &[
            (&["--top", "0"], 2, "--top: '0' is not a positive integer"),
            (&[], 2, "give --top K"),
            // Viterbi paths need shares in [0, 1]: LRP-0 is refused, naming the layer.
            (
                &["--top", "1", "--rule", "zero"],
                1,
                "the viterbi semiring needs shares in [0, 1]",
            ),
            (&["--top", "2", "--from", "999999"], 2, "outside the input"),
            (&["--top", "2", "--theta", "0.1"], 2, "apply to --sample"),
            (&["--top", "2", "--sample", "3"], 2, "give one or the other"),
            (
                &["--sample", "0"],
                2,
                "--sample: '0' is not a positive integer",
            ),
            (&["--sample", "3", "--theta", "5"], 1, "no relevant path"),
            (&["--sample", "3", "--seed", "-1"], 2, "--seed: '-1'"),
        ],
    );
    // --from an element with no path (its input value is 0): "paths": [], said on stderr.
    let mut x0 = load_f32(&input);
    x0.as_slice_mut().unwrap()[0] = 0.0;
    let zero = tmp.file("zero.npy");
    klrp::io::npy::write_npy_file(&zero, &x0).unwrap();
    let r = ok(&targeted(
        "paths",
        m,
        path_str(&zero),
        "1",
        o,
        &["--top", "2", "--from", "0"],
    ));
    assert_eq!(read_json(&out)["paths"], serde_json::json!([]));
    assert!(String::from_utf8_lossy(&r.stderr).contains("no path of strength > 0"));
}

/// `klrp info` says what `canonize` does with each BatchNorm: fused into the convolution that
/// produces its input alone (cnn_bn's), or kept standalone (DenseNet's norm1 after a Concat).
#[test]
fn info_tells_fused_from_standalone_batchnorms() {
    let info = |onnx: PathBuf| {
        String::from_utf8(ok(&["info", "--model", path_str(&onnx)]).stdout).unwrap()
    };
    let line = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_string()
    };
    let fused = info(fixtures().join("cnn_bn/legacy_bn.onnx"));
    let bn = line(&fused, "/1/BatchNormalization");
    assert!(bn.contains("fused into layer 0 before propagation"), "{bn}");
    let densenet = info(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/torchvision/densenet121/model.onnx"),
    );
    let norm1 = line(&densenet, "/denselayer1/norm1/");
    assert!(
        norm1.contains("standalone: a per-channel linear map"),
        "{norm1}"
    );
    assert!(!densenet.contains("fused into"), "{densenet}");
}

/// `klrp explain` says, in one line on stderr, when units lie within float32 rounding of a kink
/// (here a max-pooling window whose two inputs are 1 ulp apart), and says nothing new on the
/// bundled fixtures or a clear winner.
#[test]
fn explain_warns_about_units_within_float32_rounding_of_a_kink() {
    use crate::support::onnx_writer::{Attr, model, node, value_info};
    let tmp = TempDir::new("near-kinks");
    let onnx = tmp.file("pool.onnx");
    let bytes = model(
        &[
            node(
                "MaxPool",
                "pool",
                &["x"],
                &["p"],
                &[
                    Attr::Ints("kernel_shape", &[1, 2]),
                    Attr::Ints("strides", &[1, 2]),
                ],
            ),
            node("Flatten", "flat", &["p"], &["y"], &[]),
        ],
        &[],
        value_info("x", &[None, Some(1), Some(1), Some(2)]),
        value_info("y", &[None, Some(1)]),
    );
    std::fs::write(&onnx, bytes).unwrap();
    let out = tmp.file("r.npy");
    let (m, o) = (path_str(&onnx), path_str(&out));
    let stderr_for = |window: [f32; 2], name: &str| -> String {
        let input = tmp.file(name);
        let x = ndarray::Array4::from_shape_vec((1, 1, 1, 2), window.to_vec()).unwrap();
        klrp::io::npy::write_npy_file(&input, &x.into_dyn()).unwrap();
        let r = ok(&targeted("explain", m, path_str(&input), "0", o, &[]));
        String::from_utf8_lossy(&r.stderr).to_string()
    };
    let up = f32::from_bits(1.0f32.to_bits() + 1);
    let err = stderr_for([up, 1.0], "tie.npy");
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "warning: 1 unit of layer 0 (MaxPool2d(1×2, stride (1, 2))) is within float32 rounding \
          of a kink (a max-pooling near-tie or a ReLU input at 0): relevance in its receptive \
          field depends on rounding"
        ],
        "{err}"
    );
    let err = stderr_for([2.0, 1.0], "clear.npy");
    assert!(!err.contains("float32 rounding"), "{err}");
    for model in ["mlp", "cnn_pool", "cnn_bn"] {
        let (mm, xx) = (
            fixtures().join(model).join("legacy.onnx"),
            fixtures().join(model).join("input.npy"),
        );
        let r = ok(&targeted(
            "explain",
            path_str(&mm),
            path_str(&xx),
            "1",
            o,
            &[],
        ));
        assert!(
            r.stderr.is_empty(),
            "{model}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
}
