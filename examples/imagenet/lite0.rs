//! EfficientNet-Lite0 on a photo: top-5 classes, and one figure with the photo and its relevance
//! in four semirings (shared by `main.rs` and the test `tests/it/imagenet_example.rs`).

#[path = "../common/semirings.rs"]
mod semirings;

use klrp::calibrate;
use klrp::composite::Composite;
use klrp::io::image::{Preprocess, read_image_file, to_tensor};
use klrp::io::onnx::load_onnx_file;
use klrp::rules::Bound;
use klrp::spec::{ClassProbability, predict};
use klrp::viz::{BLACK, Colormap, Panel, RgbImage, Scale, figure, heatmap_rgb, save_png};
use klrp::{Network, Trace};
use ndarray::{ArrayD, Axis};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The model file, relative to the repository root.
pub const MODEL: &str = "models/efficientnet_lite0.onnx";
/// The class names, one per line in class-index order.
pub const LABELS: &str = "models/imagenet_classes.txt";
/// The photos explained without `--image`.
pub const PHOTOS: &str = "data/photos";
/// The fraction of the input's entries the calibrated Boolean mask keeps by default.
pub const DEFAULT_THETA_FRACTION: f64 = 0.1;

/// The shares `d_jk` of the Boolean and Counting relevance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskRules {
    /// The real panel's rules (z^B, γ = 0.25, ε): the semirings differ only in ⊕, ⊗ and Θ.
    EpsilonGammaBox,
    /// LRP-0 everywhere ([`Composite::k_lrp`], the K-LRP default).
    KLrp,
}

impl MaskRules {
    /// The composite's name, as `--mask-rules` takes it.
    pub fn name(self) -> &'static str {
        match self {
            MaskRules::EpsilonGammaBox => "epsilon-gamma-box",
            MaskRules::KLrp => "k-lrp",
        }
    }
}

/// The network, its preprocessing (from the ONNX file's metadata) and the class names.
pub struct Model {
    pub net: Network,
    pub pre: Preprocess,
    pub labels: Vec<String>,
}

/// Loads [`MODEL`] and [`LABELS`] from the repository root `root`.
pub fn load_model(root: &Path) -> klrp::Result<Model> {
    let onnx = load_onnx_file(root.join(MODEL))?;
    let metadata = onnx.metadata().clone();
    let net = onnx.into_network().canonize()?;
    let &[c, h, w] = net.input_shape() else {
        return Err(klrp::Error::invalid("the model does not take images"));
    };
    let pre = Preprocess::from_metadata(&metadata, c, h, w)?.ok_or_else(|| {
        klrp::Error::invalid(format!(
            "{MODEL} declares no preprocessing (klrp.mean, klrp.std, …); regenerate it with \
             models/make_efficientnet_lite0.py"
        ))
    })?;
    let path = root.join(LABELS);
    let labels: Vec<String> = std::fs::read_to_string(&path)
        .map_err(|e| klrp::Error::Io {
            path: path.display().to_string(),
            source: e,
        })?
        .lines()
        .map(str::to_string)
        .collect();
    let classes: usize = net.output_shape().iter().product();
    if labels.len() != classes {
        return Err(klrp::Error::invalid(format!(
            "{LABELS} has {} names for {classes} classes",
            labels.len()
        )));
    }
    Ok(Model { net, pre, labels })
}

/// The photos in `dir` (PNG and JPEG), sorted by name.
pub fn photos(dir: &Path) -> klrp::Result<Vec<PathBuf>> {
    let io = |e: std::io::Error| klrp::Error::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// How to explain.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the figures go.
    pub out: PathBuf,
    /// The class to explain (`None`: the top-1 class).
    pub target: Option<usize>,
    /// The fraction of the input's entries the Boolean mask should keep (θ calibration).
    pub theta_fraction: f64,
    /// Classes printed per photo.
    pub top: usize,
    /// The shares of the Boolean and Counting relevance.
    pub mask_rules: MaskRules,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            out: PathBuf::from("out/imagenet"),
            target: None,
            theta_fraction: DEFAULT_THETA_FRACTION,
            top: 5,
            mask_rules: MaskRules::EpsilonGammaBox,
        }
    }
}

/// Seconds spent on one photo.
#[derive(Clone, Copy, Debug, Default)]
pub struct Times {
    pub forward: f64,
    pub calibration: f64,
    pub real: f64,
    pub boolean: f64,
    pub counting: f64,
    pub viterbi: f64,
}

/// What [`explain_photo`] found.
#[derive(Debug)]
pub struct Explained {
    /// The best classes, best first.
    pub top: Vec<ClassProbability>,
    /// The class explained.
    pub target: usize,
    /// κ of the fair-share θ = κ / n̄ and the fraction of inputs the mask keeps with it.
    pub kappa: f32,
    pub fraction: f64,
    /// Input entries (of 3 · 224 · 224) on in the Boolean mask, with a path in Counting.
    pub on: usize,
    pub counted: usize,
    pub inputs: usize,
    /// The largest path count, and Σ R of the real relevance and the target's logit.
    pub max_count: f64,
    pub real_sum: f64,
    pub logit: f64,
    pub times: Times,
    /// The figure written.
    pub figure: PathBuf,
}

/// Per-input box bounds `[C, H, W]` of the z^B rule: the normalised pixel range of each
/// channel, `(0 − mean) / std … (1 − mean) / std`.
fn pixel_bounds(pre: &Preprocess, shape: &[usize]) -> (Bound, Bound) {
    let (mean, std) = match &pre.normalize {
        Some(n) => (n.mean.clone(), n.std.clone()),
        None => (vec![0.0; shape[0]], vec![1.0; shape[0]]),
    };
    let per = |f: &dyn Fn(usize) -> f32| -> Bound {
        let mut a = ArrayD::<f32>::zeros(shape);
        for (c, mut plane) in a.outer_iter_mut().enumerate() {
            plane.fill(f(c));
        }
        Bound::from(a)
    };
    (
        per(&|c| (0.0 - mean[c]) / std[c]),
        per(&|c| (1.0 - mean[c]) / std[c]),
    )
}

/// The preprocessed input `[1, 3, H, W]` back as a picture.
pub fn photo_image(x: &ArrayD<f32>, pre: &Preprocess) -> RgbImage {
    let s = x.index_axis(Axis(0), 0);
    let (h, w) = (s.shape()[1], s.shape()[2]);
    let mut img = RgbImage::new(w, h, BLACK);
    for y in 0..h {
        for xx in 0..w {
            let mut px = [0u8; 3];
            for (c, p) in px.iter_mut().enumerate() {
                let v = match &pre.normalize {
                    Some(n) => s[[c, y, xx]] * n.std[c] + n.mean[c],
                    None => s[[c, y, xx]],
                };
                *p = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
            img.put(xx as i64, y as i64, px);
        }
    }
    img
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `values` (nearest rank; 0 for none).
fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Signed relevance in blue-white-red, ±(the 99.5th percentile of |R|) at full colour (a few
/// extreme pixels would otherwise leave the rest white).
fn real_image(map: &ndarray::Array2<f64>) -> RgbImage {
    let m = quantile(map.iter().map(|v| v.abs()).collect(), 0.995);
    heatmap_rgb(map.view(), Colormap::Bwr, Scale::SymmetricAt(m))
}

/// Positive values on a log scale: `log10 v` from its 2nd percentile over the positive entries
/// (t = 0) to its maximum (t = 1); zeros at t = 0. Path counts and path strengths span tens of
/// orders of magnitude, so `log(1 + v)` from 0 would paint every non-zero entry the same.
fn log_image(map: &ndarray::Array2<f64>, cmap: Colormap) -> RgbImage {
    let logs = map.mapv(|v| {
        if v > 0.0 {
            v.log10()
        } else {
            f64::NEG_INFINITY
        }
    });
    let positive: Vec<f64> = logs.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = quantile(positive.clone(), 0.02);
    let hi = positive.iter().copied().fold(lo, f64::max);
    let t = logs.mapv(|v| if v.is_finite() { v.max(lo) } else { lo });
    heatmap_rgb(t.view(), cmap, Scale::Range { min: lo, max: hi })
}

/// The first of the comma-separated names, at most `n` characters.
pub fn short(name: &str, n: usize) -> String {
    let first = name.split(',').next().unwrap_or(name);
    if first.chars().count() <= n {
        first.to_string()
    } else {
        first.chars().take(n - 1).collect::<String>() + "."
    }
}

/// Top classes, then the relevance of the target class in Real (ε-γ-box), Boolean, Counting and
/// Viterbi; writes `<photo stem>.png` into `cfg.out`.
pub fn explain_photo(model: &Model, photo: &Path, cfg: &Config) -> klrp::Result<Explained> {
    let net = &model.net;
    let x = to_tensor(&read_image_file(photo)?, &model.pre)?;
    let mut times = Times::default();

    let t = Instant::now();
    let trace: Trace = net.trace(&x)?;
    times.forward = t.elapsed().as_secs_f64();
    let top = predict(net, &x, cfg.top)?.remove(0);
    let target = match cfg.target {
        Some(c) if c >= model.labels.len() => {
            return Err(klrp::Error::invalid(format!(
                "--target {c}: the model has {} classes",
                model.labels.len()
            )));
        }
        Some(c) => c,
        None => trace.predictions()[0],
    };
    let logit = f64::from(trace.output()[[0, target]]);

    // Real: Zennit's EpsilonGammaBox (z^B on the stem convolution with the pixel range, γ = 0.25
    // on the other convolutions, ε on the classifier), started from the logit.
    let sample_shape: Vec<usize> = x.shape()[1..].to_vec();
    let (low, high) = pixel_bounds(&model.pre, &sample_shape);
    let egb = Composite::epsilon_gamma_box(low, high)?;
    let real;
    (real, times.real) = semirings::real(net, &trace, target, &egb, false)?;

    // Θ for Boolean and Counting: fair-share thresholds θ_l = κ / n̄_l, κ calibrated so that the
    // Boolean mask keeps `theta_fraction` of the input's entries.
    let mask_rules = match cfg.mask_rules {
        MaskRules::EpsilonGammaBox => egb.clone(),
        MaskRules::KLrp => Composite::k_lrp(),
    };
    let t = Instant::now();
    let cal = calibrate::for_input_fraction(net, &x, [target], &mask_rules, cfg.theta_fraction)?;
    times.calibration = t.elapsed().as_secs_f64();

    let masks = semirings::masks(net, &trace, target, &mask_rules, &cal.theta)?;
    let (boolean, counting) = (masks.boolean, masks.counting);
    (times.boolean, times.counting) = masks.seconds;
    let viterbi;
    (viterbi, times.viterbi) = semirings::viterbi(net, &trace, target)?;

    let on = boolean.nonzero_counts()[0];
    let counted = counting.nonzero_counts()[0];
    let max_count = counting.input().iter().fold(0.0f64, |m, c| m.max(c.0));
    let real_sum = real.input().iter().map(|r| f64::from(r.0)).sum::<f64>();

    // The figure: photo, real, Boolean, Counting, Viterbi (maps summed over the colour channels).
    let inputs = x.len();
    let name = short(&model.labels[target], 18);
    let photo_name = photo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let real_map = real.heatmap(0)?;
    let bool_map = boolean.heatmap(0)?;
    let count_map = counting.heatmap(0)?;
    let vit_map = viterbi.heatmap(0)?;
    let panels = [
        Panel::new(photo_image(&x, &model.pre))
            .with_title([photo_name.clone(), format!("class {target}: {name}")]),
        Panel::new(real_image(&real_map))
            .with_title(["real, ε-gamma-box", "Θ(d) = d, from the logit"]),
        Panel::heatmap(
            bool_map.view(),
            Colormap::GrayR,
            Scale::Range { min: 0.0, max: 1.0 }, // black: on in any channel
        )
        .with_title([
            format!("boolean: {on} of {inputs} on"),
            format!("{} d ≥ {}/n", cfg.mask_rules.name(), cal.kappa),
        ]),
        Panel::new(log_image(&count_map, Colormap::Hot)).with_title([
            format!("counting, log: {counted} > 0"),
            format!("same Θ; max {max_count:.1e}"),
        ]),
        Panel::new(log_image(&vit_map, Colormap::Viridis))
            .with_title(["viterbi, log: max-abs shares", "Θ = clamp to [0, 1]"]),
    ];
    let title = format!(
        "EfficientNet-Lite0: {photo_name}, class {target} ({}), p = {:.3}",
        short(&model.labels[target], 30),
        top.iter()
            .find(|c| c.class == target)
            .map_or_else(|| predict_probability(&trace, target), |c| c.probability)
    );
    let path = save_figure(&cfg.out, photo, "", &figure(title, &panels, 6)?)?;
    Ok(Explained {
        top,
        target,
        kappa: cal.kappa,
        fraction: cal.fraction,
        on,
        counted,
        inputs,
        max_count,
        real_sum,
        logit,
        times,
        figure: path,
    })
}

/// Writes `figure` to `<out>/<photo stem><suffix>.png` (creating `out`) and returns the path.
pub fn save_figure(
    out: &Path,
    photo: &Path,
    suffix: &str,
    figure: &RgbImage,
) -> klrp::Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| klrp::Error::Io {
        path: out.display().to_string(),
        source: e,
    })?;
    let stem = photo
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "photo".into());
    let path = out.join(format!("{stem}{suffix}.png"));
    save_png(&path, figure)?;
    Ok(path)
}

/// The softmax probability of `class` in the trace's output.
fn predict_probability(trace: &Trace, class: usize) -> f64 {
    let logits: Vec<f32> = trace
        .output()
        .index_axis(Axis(0), 0)
        .iter()
        .copied()
        .collect();
    klrp::spec::softmax(&logits)[class]
}
