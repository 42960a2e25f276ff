//! `klrp`: inspect ONNX models and explain their predictions with K-LRP from the command line.
//!
//! Run `klrp --help` for usage. Errors print one line on stderr; the exit code is 2 for usage
//! errors, 1 for other failures.

use klrp::composite::Composite;
use klrp::io::image::{self, Normalization, Preprocess};
use klrp::io::npy;
use klrp::io::onnx::{MAX_SAMPLE_ELEMENTS, load_onnx_file_with_max_elements};
use klrp::io::safetensors::SafeTensors;
use klrp::layers::{LayerKind, Tensor};
use klrp::rules::{
    AlphaBetaRule, Bound, EpsilonRule, FlatRule, GammaRule, MaxAbsRule, Rule, WSquareRule,
    ZBoxRule, ZPlusRule, ZeroRule,
};
use klrp::semiring::{Boolean, Counting, Real, Semiring, Viterbi};
use klrp::{
    AbsThreshold, Clamp01, Conversion, Identity, Network, PerLayer, Relevance, Threshold, Trace,
    one_hot,
};
use ndarray::{ArrayD, Axis, Ix3};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const HELP: &str = "\
klrp — semiring-generalized Layer-wise Relevance Propagation (K-LRP)

USAGE:
    klrp info    --model M.onnx [--max-elements N]
    klrp explain --model M.onnx --input X.npy|IMAGE --target C --out R.npy [options]
    klrp --help | --version

MODELS (--model):
    M.onnx           a feed-forward ONNX graph (e.g. from torch.onnx.export); layer i is ONNX
                     node i, every node counted (see `klrp info`)
    vgg16            torchvision's VGG-16 built in code; weights from --weights W.safetensors
                     (torchvision names features.0.weight … classifier.6.bias), random (fixed
                     seed) without

INFO:
    Prints every layer with its index (the index --theta-at takes), the ONNX node it came from,
    its output shape and its parameter count.
        klrp info --model model.onnx

EXPLAIN OPTIONS:
    --input X.npy|IMAGE  the input: an .npy of shape [N, ...] (a batch) or of one sample's shape,
                         or a PNG/JPEG image (resized, center-cropped, normalised; see below)
    --target C           the class to explain, for every sample; or C0,C1,… one per sample
    --out R.npy          where to write the input relevance (same shape as the input; float32
                         for real and viterbi, bool for boolean, uint64 for counting)
    --semiring S         real (default) | boolean | counting | viterbi
    --rule R             one rule on every dense and conv layer:
                         zero | epsilon[=E] | gamma[=G] | zplus | alpha-beta=A,B | flat | wsquare
                         | max-abs[=D]        (epsilon: E = 1e-6, gamma: G = 0.25 by default)
    --first-rule R       the rule of the first dense/conv layer: zbox | flat | wsquare | any --rule
    --low L --high H     z^B box bounds (zbox and epsilon-gamma-box); default -3 and 3 for .npy
                         inputs, the exact pixel range of each channel for images
    --composite C        epsilon-plus-flat | epsilon-gamma-box | epsilon-alpha2-beta1 (Zennit's
                         composites of those names)
    --maxpool P          wta (winner-take-all, default) | average (proportional to activations)
    --init I             output (start from the target's logit; default for real) | one (start
                         from 1, the K-LRP convention; default for the other semirings)
    --theta T            Θ threshold on every layer (boolean, counting; default 0.01):
                         a share d passes if d ≥ T
    --theta-at I=T       threshold T at layer I (repeatable; indices as `klrp info` prints them)
    --theta-abs          pass a share if |d| > T instead of d ≥ T
    --heatmap R.png      also write a heatmap (channels summed; blue-white-red for real, black-
                         red-yellow-white for the others, counts on a log scale); a batch writes
                         R_0.png, R_1.png, …
    --resize S           images: resize the shorter side to S first (default ⌊256/224 · H⌋,
                         i.e. 256 for 224 × 224 models)
    --normalize N        images: imagenet (default for 3 channels) | none
    --max-pixels N       images: refuse images of more than N pixels (default 67108864 = 2^26)
    --max-elements N     the largest tensor allowed, in elements: one sample's activation at ONNX
                         import (default 268435456 = 2^28) and any activation or relevance of the
                         whole batch (default 2147483648 = 2^31); raise it for very large inputs or
                         batches, lower it to bound memory
    --weights W          safetensors weights for --model vgg16
    --timing             print `timing: load X ms, forward Y ms, relevance Z ms` to stderr

DEFAULT RULES:
    real: LRP-ε with ε = 1e-6 on every layer; boolean, counting: LRP-0 (Composite::k_lrp);
    viterbi: max-abs shares (Composite::viterbi).

EXAMPLES:
    klrp info --model vgg16.onnx
    klrp explain --model mlp.onnx --input x.npy --target 3 --out r.npy
    klrp explain --model vgg16.onnx --input cat.jpg --target 281 --composite epsilon-gamma-box \\
        --out r.npy --heatmap r.png --timing
    klrp explain --model cnn.onnx --input x.npy --target 1 --rule gamma=0.25 --first-rule zbox \\
        --low -3 --high 3 --out r.npy
    klrp explain --model vgg16.onnx --input x.npy --target 281 --semiring counting --theta 0.05 \\
        --theta-at 47=0.3 --theta-abs --out counts.npy

EXIT CODES: 0 success, 1 failure (unreadable or unsupported model or input, …), 2 usage error.
";

enum CliError {
    Usage(String),
    Failure(String),
}

impl From<klrp::Error> for CliError {
    fn from(e: klrp::Error) -> Self {
        CliError::Failure(e.to_string())
    }
}

type CliResult<T> = Result<T, CliError>;

fn usage<T>(msg: impl Into<String>) -> CliResult<T> {
    Err(CliError::Usage(msg.into()))
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!(
            "error: internal error (a bug in klrp, please report it): {}",
            one_line(&payload)
        );
    }));
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let outcome = std::panic::catch_unwind(|| match args {
        Ok(args) => run(&args),
        Err(a) => usage(format!("argument {a:?} is not valid UTF-8")),
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(CliError::Usage(m))) => {
            eprintln!("error: {} (see `klrp --help`)", one_line(&m));
            ExitCode::from(2)
        }
        Ok(Err(CliError::Failure(m))) => {
            eprintln!("error: {}", one_line(&m));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Writes to stdout; a closed pipe (`klrp info | head`) is not an error.
fn out(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Failure(format!("writing to stdout: {e}"))),
    }
}

fn run(args: &[String]) -> CliResult<()> {
    let Some(cmd) = args.first() else {
        return usage("no command given: use `klrp info` or `klrp explain`");
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => out(HELP),
        "-V" | "--version" => out(&format!("klrp {}\n", env!("CARGO_PKG_VERSION"))),
        "info" | "explain" => {
            let opts = Options::parse(&args[1..])?;
            if opts.help {
                return out(HELP);
            }
            if cmd == "info" {
                info(&opts)
            } else {
                explain(&opts)
            }
        }
        other => usage(format!(
            "unknown command '{other}': use `klrp info` or `klrp explain`"
        )),
    }
}

#[derive(Default)]
struct Options {
    help: bool,
    model: Option<String>,
    weights: Option<String>,
    input: Option<String>,
    target: Option<String>,
    out: Option<String>,
    heatmap: Option<String>,
    semiring: Option<String>,
    theta: Option<String>,
    theta_at: Vec<String>,
    theta_abs: bool,
    rule: Option<String>,
    first_rule: Option<String>,
    low: Option<String>,
    high: Option<String>,
    composite: Option<String>,
    maxpool: Option<String>,
    init: Option<String>,
    timing: bool,
    resize: Option<String>,
    normalize: Option<String>,
    max_pixels: Option<String>,
    max_elements: Option<String>,
    given: Vec<&'static str>,
}

impl Options {
    fn parse(args: &[String]) -> CliResult<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let switch = |o: &mut Options, name: &'static str| -> CliResult<()> {
                if inline.is_some() {
                    return usage(format!("{name} takes no value"));
                }
                if o.given.contains(&name) {
                    return usage(format!("{name} given twice"));
                }
                o.given.push(name);
                Ok(())
            };
            match flag {
                "-h" | "--help" => o.help = true,
                "--theta-abs" => {
                    switch(&mut o, "--theta-abs")?;
                    o.theta_abs = true;
                }
                "--timing" => {
                    switch(&mut o, "--timing")?;
                    o.timing = true;
                }
                _ => {
                    let name: &'static str = match flag {
                        "--model" => "--model",
                        "--weights" => "--weights",
                        "--input" => "--input",
                        "--target" => "--target",
                        "--out" => "--out",
                        "--heatmap" => "--heatmap",
                        "--semiring" => "--semiring",
                        "--theta" => "--theta",
                        "--theta-at" => "--theta-at",
                        "--rule" => "--rule",
                        "--first-rule" => "--first-rule",
                        "--low" => "--low",
                        "--high" => "--high",
                        "--composite" => "--composite",
                        "--maxpool" => "--maxpool",
                        "--init" => "--init",
                        "--resize" => "--resize",
                        "--normalize" => "--normalize",
                        "--max-pixels" => "--max-pixels",
                        "--max-elements" => "--max-elements",
                        other if other.starts_with('-') => {
                            return usage(format!("unknown option '{other}'"));
                        }
                        other => return usage(format!("unexpected argument '{other}'")),
                    };
                    let value = match inline {
                        Some(v) => v,
                        None => match it.next() {
                            Some(v) => v.clone(),
                            None => return usage(format!("{name} needs a value")),
                        },
                    };
                    if name == "--theta-at" {
                        o.theta_at.push(value);
                        continue;
                    }
                    if o.given.contains(&name) {
                        return usage(format!("{name} given twice"));
                    }
                    o.given.push(name);
                    let slot = match name {
                        "--model" => &mut o.model,
                        "--weights" => &mut o.weights,
                        "--input" => &mut o.input,
                        "--target" => &mut o.target,
                        "--out" => &mut o.out,
                        "--heatmap" => &mut o.heatmap,
                        "--semiring" => &mut o.semiring,
                        "--theta" => &mut o.theta,
                        "--rule" => &mut o.rule,
                        "--first-rule" => &mut o.first_rule,
                        "--low" => &mut o.low,
                        "--high" => &mut o.high,
                        "--composite" => &mut o.composite,
                        "--maxpool" => &mut o.maxpool,
                        "--init" => &mut o.init,
                        "--resize" => &mut o.resize,
                        "--max-pixels" => &mut o.max_pixels,
                        "--max-elements" => &mut o.max_elements,
                        _ => &mut o.normalize,
                    };
                    *slot = Some(value);
                }
            }
        }
        Ok(o)
    }

    /// Errors if an option outside `allowed` was given.
    fn only(&self, cmd: &str, allowed: &[&str]) -> CliResult<()> {
        if let Some(bad) = self.given.iter().find(|g| !allowed.contains(g)) {
            return usage(format!("{bad} does not apply to `klrp {cmd}`"));
        }
        if !self.theta_at.is_empty() && !allowed.contains(&"--theta-at") {
            return usage(format!("--theta-at does not apply to `klrp {cmd}`"));
        }
        Ok(())
    }
}

fn parse_f32(flag: &str, s: &str) -> CliResult<f32> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => usage(format!("{flag}: '{s}' is not a finite number")),
    }
}

fn parse_usize(flag: &str, s: &str) -> CliResult<usize> {
    s.trim()
        .parse::<usize>()
        .or_else(|_| usage(format!("{flag}: '{s}' is not a non-negative integer")))
}

/// A positive limit (`--max-pixels`, `--max-elements`).
fn parse_limit(flag: &str, s: &str) -> CliResult<u64> {
    match s.trim().parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => usage(format!("{flag}: '{s}' is not a positive integer")),
    }
}

/// A loaded model and, per layer, where it came from.
struct Loaded {
    network: Network,
    origin: Vec<(String, Option<String>)>,
    description: String,
    input_label: String,
}

fn load_model(opts: &Options) -> CliResult<Loaded> {
    let Some(model) = opts.model.as_deref() else {
        return usage("--model is required");
    };
    let max_elements = match &opts.max_elements {
        Some(s) => Some(parse_limit("--max-elements", s)?),
        None => None,
    };
    let mut loaded = load_model_with(opts, model, max_elements)?;
    if let Some(n) = max_elements {
        loaded.network = loaded.network.with_max_elements(n)?;
    }
    Ok(loaded)
}

fn load_model_with(opts: &Options, model: &str, max_elements: Option<u64>) -> CliResult<Loaded> {
    if model == "vgg16" {
        let weights = match opts.weights.as_deref() {
            Some(w) => Some(SafeTensors::read_file(w)?),
            None => None,
        };
        let network = klrp::models::vgg16(weights.as_ref())?;
        let origin = (0..network.layers().len())
            .map(|i| (klrp::models::vgg16_module_name(i).unwrap_or_default(), None))
            .collect();
        let description = match &opts.weights {
            Some(w) => format!("torchvision VGG-16, weights from {w}"),
            None => format!(
                "torchvision VGG-16, random He-uniform weights (seed {:#x})",
                klrp::models::VGG16_SEED
            ),
        };
        return Ok(Loaded {
            network,
            origin,
            description,
            input_label: "built-in".into(),
        });
    }
    if opts.weights.is_some() {
        return usage("--weights applies only to --model vgg16");
    }
    let m = load_onnx_file_with_max_elements(model, max_elements.unwrap_or(MAX_SAMPLE_ELEMENTS))?;
    let origin = m
        .nodes()
        .iter()
        .map(|n| {
            let name = if n.name.is_empty() {
                n.op_type.clone()
            } else {
                format!("{} ({})", n.name, n.op_type)
            };
            (name, n.note.clone())
        })
        .collect();
    let description = format!(
        "{model} (ONNX{}{})",
        m.opset().map(|v| format!(" opset {v}")).unwrap_or_default(),
        if m.producer().is_empty() {
            String::new()
        } else {
            format!(", from {}", m.producer())
        }
    );
    let input_label = format!(
        "'{}'{}",
        m.input_name(),
        m.declared_batch()
            .map(|b| format!(", declared batch {b}, any batch accepted"))
            .unwrap_or_default()
    );
    Ok(Loaded {
        network: m.into_network(),
        origin,
        description,
        input_label,
    })
}

fn shape_str(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn batch_shape_str(s: &[usize]) -> String {
    format!(
        "[N, {}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A node's inputs for `klrp info`: `input` for the network input, else node indices, joined by
/// commas (`3,7` for a residual sum of nodes 3 and 7).
fn inputs_str(inputs: &[klrp::Source]) -> String {
    inputs
        .iter()
        .map(|s| match s {
            klrp::Source::Input => "input".to_string(),
            klrp::Source::Node(j) => j.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn info(opts: &Options) -> CliResult<()> {
    opts.only("info", &["--model", "--weights", "--max-elements"])?;
    let m = load_model(opts)?;
    let net = &m.network;
    let header = [
        "layer",
        "inputs",
        "from",
        "klrp layer",
        "output shape",
        "params",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for (i, layer) in net.layers().iter().enumerate() {
        let (origin, note) = &m.origin[i];
        let mut name = layer.name();
        if let Some(n) = note {
            name = format!("{name} — {n}");
        }
        if layer.kind() == LayerKind::Normalization {
            // The producer of its input, behind identities (what canonize fuses it into).
            let mut from = net.inputs_of(i).unwrap_or(&[]);
            let into = loop {
                match *from {
                    [klrp::Source::Node(p)] if net.layers()[p].kind() == LayerKind::Identity => {
                        from = net.inputs_of(p).unwrap_or(&[]);
                    }
                    [klrp::Source::Node(p)] => break Some(p),
                    _ => break None,
                }
            };
            if let Some(p) = into {
                name = format!("{name} — fused into layer {p} before propagation");
            }
        }
        rows.push([
            i.to_string(),
            inputs_str(net.inputs_of(i).unwrap_or(&[])),
            origin.clone(),
            name,
            shape_str(net.layer_output_shape(i).unwrap_or(&[])),
            layer.param_count().to_string(),
        ]);
    }
    let width = |k: usize| {
        rows.iter()
            .map(|r| r[k].chars().count())
            .chain([header[k].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let w: Vec<usize> = (0..6).map(width).collect();
    let mut text = format!(
        "model: {}\ninput: [N, {}] {}\n",
        m.description,
        net.input_shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        m.input_label
    );
    let line = |r: &[String]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        format!(
            "{:>w0$}  {}  {}  {}  {}  {:>w5$}\n",
            r[0],
            pad(&r[1], w[1]),
            pad(&r[2], w[2]),
            pad(&r[3], w[3]),
            pad(&r[4], w[4]),
            r[5],
            w0 = w[0],
            w5 = w[5]
        )
    };
    let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    text.push_str(&line(&h));
    for r in &rows {
        text.push_str(&line(r));
    }
    text.push_str(&format!(
        "{} layers, {} parameters\n",
        net.layers().len(),
        net.param_count()
    ));
    out(&text)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SemiringChoice {
    Real,
    Boolean,
    Counting,
    Viterbi,
}

/// The input tensor and how it was made.
struct Input {
    x: Tensor,
    had_batch: bool,
    /// The per-channel pixel range after preprocessing, for images.
    pixel_range: Option<(Vec<f32>, Vec<f32>)>,
}

fn load_input(opts: &Options, net: &Network) -> CliResult<Input> {
    let Some(path) = opts.input.as_deref() else {
        return usage("--input is required");
    };
    let bytes = std::fs::read(path).map_err(|e| klrp::Error::Io {
        path: path.into(),
        source: e,
    })?;
    let sample = net.input_shape();
    let is_npy = bytes.starts_with(b"\x93NUMPY");
    if is_npy {
        if opts.resize.is_some() || opts.normalize.is_some() {
            return usage("--resize and --normalize apply to image inputs only");
        }
        if opts.max_pixels.is_some() {
            return usage("--max-pixels applies to image inputs only");
        }
        let arr = npy::parse_npy(&bytes).map_err(|e| match e {
            klrp::Error::Malformed { format, reason } => klrp::Error::Malformed {
                format,
                reason: format!("{path}: {reason}"),
            },
            other => other,
        })?;
        let x = arr.to_f32()?;
        let (x, had_batch) = if x.shape() == sample {
            (x.insert_axis(Axis(0)), false)
        } else if x.ndim() == sample.len() + 1 && &x.shape()[1..] == sample && x.shape()[0] > 0 {
            (x, true)
        } else {
            return Err(CliError::Failure(format!(
                "input {path} has shape {}; the model takes {} (a batch) or {} (one sample)",
                shape_str(x.shape()),
                batch_shape_str(sample),
                shape_str(sample)
            )));
        };
        return Ok(Input {
            x,
            had_batch,
            pixel_range: None,
        });
    }
    let is_image = bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xff, 0xd8]);
    if !is_image {
        return Err(CliError::Failure(format!(
            "{path} is not an .npy, PNG or JPEG file (unrecognised signature)"
        )));
    }
    let &[c, h, w] = sample else {
        return Err(CliError::Failure(format!(
            "{path} is an image, but the model's input {} is not an image ([C, H, W]); give the \
             input as .npy",
            shape_str(sample)
        )));
    };
    if c != 1 && c != 3 {
        return Err(CliError::Failure(format!(
            "the model takes {c}-channel images; only 1 or 3 channels can come from an image \
             file (give the input as .npy)"
        )));
    }
    let normalize = match (opts.normalize.as_deref(), c) {
        (None | Some("imagenet"), 3) => Some(Normalization::imagenet()),
        (Some("imagenet"), _) => {
            return usage("--normalize imagenet needs a 3-channel model");
        }
        (None | Some("none"), _) => None,
        (Some(other), _) => {
            return usage(format!("--normalize: '{other}' is not imagenet or none"));
        }
    };
    let mut pre = Preprocess::for_input(c, h, w, normalize.clone());
    if let Some(r) = &opts.resize {
        pre.resize = Some(parse_usize("--resize", r)?);
    }
    let max_pixels = match &opts.max_pixels {
        Some(s) => parse_limit("--max-pixels", s)?,
        None => image::MAX_PIXELS,
    };
    let img = image::decode_image_with_max_pixels(&bytes, max_pixels).map_err(|e| match e {
        klrp::Error::Malformed { format, reason } => klrp::Error::Malformed {
            format,
            reason: format!("{path}: {reason}"),
        },
        other => other,
    })?;
    let x = image::to_tensor(&img, &pre)?;
    let range = match &normalize {
        Some(n) => (
            (0..c).map(|k| -n.mean[k] / n.std[k]).collect(),
            (0..c).map(|k| (1.0 - n.mean[k]) / n.std[k]).collect(),
        ),
        None => (vec![0.0; c], vec![1.0; c]),
    };
    Ok(Input {
        x,
        had_batch: false,
        pixel_range: Some(range),
    })
}

fn parse_rule(
    flag: &str,
    spec: &str,
    bounds: &dyn Fn() -> CliResult<(Bound, Bound)>,
) -> CliResult<Rule> {
    let (name, value) = match spec.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (spec, None),
    };
    let no_value = |r: Rule| -> CliResult<Rule> {
        match value {
            None => Ok(r),
            Some(_) => usage(format!("{flag}: {name} takes no value")),
        }
    };
    let bad = |e: klrp::Error| CliError::Usage(format!("{flag}: {e}"));
    Ok(match name {
        "zero" => no_value(ZeroRule.into())?,
        "epsilon" => match value {
            None => EpsilonRule::default().into(),
            Some(v) => EpsilonRule::new(parse_f32(flag, v)?).map_err(bad)?.into(),
        },
        "gamma" => {
            let g = match value {
                None => 0.25,
                Some(v) => parse_f32(flag, v)?,
            };
            GammaRule::new(g, klrp::rules::DEFAULT_EPSILON)
                .map_err(bad)?
                .into()
        }
        "zplus" => no_value(ZPlusRule::default().into())?,
        "alpha-beta" => {
            let Some((a, b)) = value.and_then(|v| v.split_once(',')) else {
                return usage(format!(
                    "{flag}: write alpha-beta=A,B (e.g. alpha-beta=2,1)"
                ));
            };
            AlphaBetaRule::new(parse_f32(flag, a)?, parse_f32(flag, b)?)
                .map_err(bad)?
                .into()
        }
        "flat" => no_value(FlatRule::default().into())?,
        "wsquare" => no_value(WSquareRule::default().into())?,
        "max-abs" => match value {
            None => MaxAbsRule::default().into(),
            Some(v) => MaxAbsRule::new(parse_f32(flag, v)?).map_err(bad)?.into(),
        },
        "zbox" if flag == "--first-rule" => {
            if value.is_some() {
                return usage("--first-rule zbox takes its bounds from --low and --high");
            }
            let (l, h) = bounds()?;
            ZBoxRule::new(l, h).map_err(bad)?.into()
        }
        "zbox" => return usage("zbox is a first-layer rule: use --first-rule zbox"),
        other => {
            return usage(format!(
                "{flag}: unknown rule '{other}' (zero, epsilon[=E], gamma[=G], zplus, \
                 alpha-beta=A,B, flat, wsquare, max-abs[=D]{})",
                if flag == "--first-rule" { ", zbox" } else { "" }
            ));
        }
    })
}

/// Θ for the boolean and counting semirings.
enum Theta {
    Signed(PerLayer<Threshold>),
    Abs(PerLayer<AbsThreshold>),
}

fn build_theta(opts: &Options, layers: usize) -> CliResult<Theta> {
    let base = match &opts.theta {
        Some(t) => parse_f32("--theta", t)?,
        None => 0.01,
    };
    let mut at = Vec::new();
    for spec in &opts.theta_at {
        let Some((i, t)) = spec.split_once('=') else {
            return usage(format!("--theta-at: write INDEX=T, got '{spec}'"));
        };
        let i = parse_usize("--theta-at", i)?;
        if i >= layers {
            return usage(format!(
                "--theta-at: layer {i} does not exist (the model has layers 0..={}; see `klrp info`)",
                layers - 1
            ));
        }
        at.push((i, parse_f32("--theta-at", t)?));
    }
    let bad = |e: klrp::Error| CliError::Usage(format!("--theta: {e}"));
    Ok(if opts.theta_abs {
        let mut p = PerLayer::new(AbsThreshold::new(base).map_err(bad)?);
        for (i, t) in at {
            p.set(i, AbsThreshold::new(t).map_err(bad)?);
        }
        Theta::Abs(p)
    } else {
        let mut p = PerLayer::new(Threshold::new(base).map_err(bad)?);
        for (i, t) in at {
            p.set(i, Threshold::new(t).map_err(bad)?);
        }
        Theta::Signed(p)
    })
}

struct Timing {
    forward_ms: f64,
    relevance_ms: f64,
}

fn propagate<K: Semiring, T: Conversion<K>>(
    net: &Network,
    x: &Tensor,
    targets: &[usize],
    composite: &Composite,
    theta: &PerLayer<T>,
    init: impl FnOnce(&Trace, &[usize]) -> klrp::Result<ArrayD<K>>,
    timing: &mut Timing,
) -> CliResult<Relevance<K>> {
    let t = Instant::now();
    let trace = net.trace(x)?;
    timing.forward_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let n = trace.batch_size();
    let targets: Vec<usize> = match targets {
        [one] => vec![*one; n],
        many if many.len() == n => many.to_vec(),
        many => {
            return Err(CliError::Failure(format!(
                "--target lists {} classes for a batch of {n} samples",
                many.len()
            )));
        }
    };
    let init = init(&trace, &targets)?;
    let r = net.propagate(&trace, init, composite, theta, false)?;
    timing.relevance_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(r)
}

fn one_hot_init<K: Semiring>(trace: &Trace, targets: &[usize]) -> klrp::Result<ArrayD<K>> {
    one_hot::<K>(trace.output().shape(), targets)
}

/// Drops the batch axis again if the input had none.
fn strip<T: Clone>(a: ArrayD<T>, had_batch: bool) -> ArrayD<T> {
    if had_batch {
        a
    } else {
        a.index_axis_move(Axis(0), 0)
    }
}

fn write<T: npy::NpyElement>(path: &str, a: &ArrayD<T>) -> CliResult<()> {
    Ok(npy::write_npy_file(path, a)?)
}

fn explain(opts: &Options) -> CliResult<()> {
    opts.only(
        "explain",
        &[
            "--model",
            "--weights",
            "--input",
            "--target",
            "--out",
            "--heatmap",
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
            "--resize",
            "--normalize",
            "--max-pixels",
            "--max-elements",
        ],
    )?;
    // Everything that can be checked without the model first.
    let Some(out_path) = opts.out.as_deref() else {
        return usage("--out R.npy is required");
    };
    let Some(target_spec) = opts.target.as_deref() else {
        return usage("--target is required");
    };
    let targets = target_spec
        .split(',')
        .map(|t| parse_usize("--target", t))
        .collect::<CliResult<Vec<_>>>()?;
    let semiring = match opts.semiring.as_deref().unwrap_or("real") {
        "real" => SemiringChoice::Real,
        "boolean" => SemiringChoice::Boolean,
        "counting" => SemiringChoice::Counting,
        "viterbi" => SemiringChoice::Viterbi,
        other => {
            return usage(format!(
                "--semiring: '{other}' is not real, boolean, counting or viterbi"
            ));
        }
    };
    let thresholded = matches!(semiring, SemiringChoice::Boolean | SemiringChoice::Counting);
    if !thresholded && (opts.theta.is_some() || !opts.theta_at.is_empty() || opts.theta_abs) {
        return usage(
            "--theta, --theta-at and --theta-abs apply to the boolean and counting semirings",
        );
    }
    let output_init = match opts.init.as_deref() {
        None => semiring == SemiringChoice::Real,
        Some("one") => false,
        Some("output") if semiring == SemiringChoice::Real => true,
        Some("output") => {
            return usage("--init output is defined for the real semiring only");
        }
        Some(other) => return usage(format!("--init: '{other}' is not one or output")),
    };
    if opts.rule.is_some() && opts.composite.is_some() {
        return usage("give either --rule or --composite, not both");
    }
    let uses_bounds = opts.first_rule.as_deref() == Some("zbox")
        || opts.composite.as_deref() == Some("epsilon-gamma-box");
    if (opts.low.is_some() || opts.high.is_some()) && !uses_bounds {
        return usage("--low/--high apply to --first-rule zbox and --composite epsilon-gamma-box");
    }
    if opts.low.is_some() != opts.high.is_some() {
        return usage("give both --low and --high");
    }
    let low_high = match (&opts.low, &opts.high) {
        (Some(l), Some(h)) => Some((parse_f32("--low", l)?, parse_f32("--high", h)?)),
        _ => None,
    };
    let avg_maxpool = match opts.maxpool.as_deref() {
        None | Some("wta") => false,
        Some("average") => true,
        Some(other) => return usage(format!("--maxpool: '{other}' is not wta or average")),
    };
    if let Some(c) = &opts.composite
        && !matches!(
            c.as_str(),
            "epsilon-plus-flat" | "epsilon-gamma-box" | "epsilon-alpha2-beta1"
        )
    {
        return usage(format!(
            "--composite: '{c}' is not epsilon-plus-flat, epsilon-gamma-box or \
                 epsilon-alpha2-beta1"
        ));
    }
    // Check the rules now (bounds are only known once the input is loaded).
    let scalar_bounds = || Ok((Bound::Scalar(-3.0), Bound::Scalar(3.0)));
    if let Some(r) = &opts.rule {
        parse_rule("--rule", r, &scalar_bounds)?;
    }
    if let Some(r) = &opts.first_rule {
        parse_rule("--first-rule", r, &scalar_bounds)?;
    }
    let heatmap = opts.heatmap.as_deref().map(PathBuf::from);

    let t_load = Instant::now();
    let loaded = load_model(opts)?;
    let input = load_input(opts, &loaded.network)?;
    let net = loaded.network.canonize()?;
    let n_layers = net.layers().len();
    if let Some(h) = &heatmap {
        let s = net.input_shape();
        if !(s.len() == 2 || s.len() == 3) {
            return Err(CliError::Failure(format!(
                "--heatmap {} needs an image-shaped input ([C, H, W] or [H, W]); the model takes {}",
                h.display(),
                shape_str(s)
            )));
        }
    }

    // Box bounds: flags, else the pixel range for images, else ±3.
    let bounds = || -> CliResult<(Bound, Bound)> {
        if let Some((l, h)) = low_high {
            return Ok((Bound::Scalar(l), Bound::Scalar(h)));
        }
        match &input.pixel_range {
            Some((lo, hi)) => {
                let shape = net.input_shape();
                let per = |v: &[f32]| -> Bound {
                    let mut a = ArrayD::<f32>::zeros(shape);
                    for (c, mut plane) in a.outer_iter_mut().enumerate() {
                        plane.fill(v[c]);
                    }
                    Bound::from(a)
                };
                Ok((per(lo), per(hi)))
            }
            None => Ok((Bound::Scalar(-3.0), Bound::Scalar(3.0))),
        }
    };
    let mut composite = match (&opts.composite, &opts.rule) {
        (Some(c), _) => match c.as_str() {
            "epsilon-plus-flat" => Composite::epsilon_plus_flat(),
            "epsilon-gamma-box" => {
                let (l, h) = bounds()?;
                Composite::epsilon_gamma_box(l, h)?
            }
            _ => Composite::epsilon_alpha2_beta1(),
        },
        (None, Some(r)) => Composite::uniform(parse_rule("--rule", r, &bounds)?),
        (None, None) => match semiring {
            SemiringChoice::Real => Composite::uniform(EpsilonRule::default()),
            SemiringChoice::Boolean | SemiringChoice::Counting => Composite::k_lrp(),
            SemiringChoice::Viterbi => Composite::viterbi(),
        },
    };
    if let Some(r) = &opts.first_rule {
        composite = composite.with_first_linear(parse_rule("--first-rule", r, &bounds)?);
    }
    if avg_maxpool {
        composite = composite.with_max_pool_as_average();
    }
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;

    let mut timing = Timing {
        forward_ms: 0.0,
        relevance_ms: 0.0,
    };
    let x = &input.x;
    // (relevance as f64 for the heatmap, whether it is signed, whether counts)
    let heat: (ArrayD<f64>, bool, bool);
    match semiring {
        SemiringChoice::Real => {
            let theta = PerLayer::new(Identity);
            let r: Relevance<Real<f32>> = if output_init {
                propagate(
                    &net,
                    x,
                    &targets,
                    &composite,
                    &theta,
                    |t, tg| t.output_init(tg),
                    &mut timing,
                )?
            } else {
                propagate(
                    &net,
                    x,
                    &targets,
                    &composite,
                    &theta,
                    one_hot_init,
                    &mut timing,
                )?
            };
            if r.overflowed() > 0 {
                eprintln!(
                    "warning: {} relevance values are not finite (f32 overflow)",
                    r.overflowed()
                );
            }
            let a = r.input().mapv(|v| v.0);
            heat = (a.mapv(f64::from), true, false);
            write(out_path, &strip(a, input.had_batch))?;
        }
        SemiringChoice::Viterbi => {
            let theta = PerLayer::new(Clamp01);
            let r: Relevance<Viterbi> = propagate(
                &net,
                x,
                &targets,
                &composite,
                &theta,
                one_hot_init,
                &mut timing,
            )?;
            let a = r.input().mapv(|v| v.0 as f32);
            heat = (a.mapv(f64::from), false, false);
            write(out_path, &strip(a, input.had_batch))?;
        }
        SemiringChoice::Boolean => {
            let r: Relevance<Boolean> = match build_theta(opts, n_layers)? {
                Theta::Signed(t) => {
                    propagate(&net, x, &targets, &composite, &t, one_hot_init, &mut timing)?
                }
                Theta::Abs(t) => {
                    propagate(&net, x, &targets, &composite, &t, one_hot_init, &mut timing)?
                }
            };
            let a = r.input().mapv(|v| v.0);
            heat = (a.mapv(|b| f64::from(u8::from(b))), false, false);
            write(out_path, &strip(a, input.had_batch))?;
        }
        SemiringChoice::Counting => {
            let r: Relevance<Counting> = match build_theta(opts, n_layers)? {
                Theta::Signed(t) => {
                    propagate(&net, x, &targets, &composite, &t, one_hot_init, &mut timing)?
                }
                Theta::Abs(t) => {
                    propagate(&net, x, &targets, &composite, &t, one_hot_init, &mut timing)?
                }
            };
            if r.overflowed() > 0 {
                eprintln!(
                    "warning: {} of {} path counts saturated at 2^64 - 1 (u64::MAX in the output \
                     means \"2^64 - 1 or more\"); use the library's FloatCounting or LogCounting \
                     for exact magnitudes",
                    r.overflowed(),
                    r.input().len()
                );
            }
            let a = r.input().mapv(|v| v.0);
            heat = (a.mapv(|c| c as f64), false, true);
            write(out_path, &strip(a, input.had_batch))?;
        }
    }
    if let Some(h) = &heatmap {
        write_heatmaps(h, &heat.0, heat.1, heat.2)?;
    }
    if opts.timing {
        eprintln!(
            "timing: load {load_ms:.1} ms, forward {:.1} ms, relevance {:.1} ms",
            timing.forward_ms, timing.relevance_ms
        );
    }
    Ok(())
}

/// A private colormap for `--heatmap` (the library's `viz` module will replace it).
fn colormap(v: f64, signed: bool) -> [u8; 3] {
    let b = |x: f64| (x.clamp(0.0, 1.0) * 255.0).round() as u8;
    if signed {
        // blue (−1) → white (0) → red (+1)
        if v >= 0.0 {
            [255, b(1.0 - v), b(1.0 - v)]
        } else {
            [b(1.0 + v), b(1.0 + v), 255]
        }
    } else {
        // black → red → yellow → white ("hot")
        [b(3.0 * v), b(3.0 * v - 1.0), b(3.0 * v - 2.0)]
    }
}

fn write_heatmaps(path: &Path, r: &ArrayD<f64>, signed: bool, counts: bool) -> CliResult<()> {
    let n = r.shape()[0];
    for (s, sample) in r.outer_iter().enumerate() {
        // Sum over channels: [C, H, W] → [H, W].
        let map = match sample.ndim() {
            3 => sample
                .into_dimensionality::<Ix3>()
                .map_err(|e| CliError::Failure(e.to_string()))?
                .sum_axis(Axis(0)),
            _ => sample
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|e| CliError::Failure(e.to_string()))?
                .to_owned(),
        };
        let map = if counts { map.mapv(f64::ln_1p) } else { map };
        let scale = map.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let (h, w) = map.dim();
        let mut rgb = Vec::with_capacity(h * w * 3);
        for &v in &map {
            let t = if scale > 0.0 && scale.is_finite() {
                v / scale
            } else {
                0.0
            };
            rgb.extend_from_slice(&colormap(t, signed));
        }
        let file = if n == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "png".into());
            path.with_file_name(format!("{stem}_{s}.{ext}"))
        };
        image::write_png_rgb(&file, w, h, &rgb)?;
    }
    Ok(())
}
