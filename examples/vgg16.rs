//! VGG-16 in every semiring, with the per-layer configuration of the semiring-LRP report.
//!
//! ```sh
//! cargo run --release --example vgg16 -- [--weights vgg16.safetensors] [--image photo.jpg]
//!     [--target C] [--theta-scale S] [--out DIR]
//! ```
//!
//! - Builds torchvision's VGG-16 (`klrp::models::vgg16`): torchvision weights from a safetensors
//!   file when given (see `docs/vgg16.md` for the three lines of Python that export them),
//!   otherwise random He-initialised weights with a fixed seed, so it runs anywhere.
//! - Real: LRP-0 at `features.0`, γ = 0.25 on the convolutions `features.2 … features.14`,
//!   ε = 0.25·std(z) on `features.17 … features.28`, LRP-0 on the classifier; started from the
//!   target's logit.
//! - Boolean and Counting (f64 counts): LRP-0 shares, `|d| > θ` with the report's per-layer θ
//!   (times `--theta-scale`); Viterbi: max-abs shares.
//! - Writes `vgg16.png` (input, four heatmaps, and the real relevance at `features.28`) and prints
//!   the time of each semiring.

use klrp::composite::Composite;
use klrp::io::image::{Preprocess, load_image};
use klrp::io::safetensors::SafeTensors;
use klrp::models::{vgg16, vgg16_module_name};
use klrp::rules::{EpsilonRule, GammaRule, ZeroRule};
use klrp::semiring::{Boolean, FloatCounting, Semiring, Viterbi};
use klrp::viz::{Colormap, Grid, Scale, heatmap_rgb, save_png};
use klrp::{AbsThreshold, Clamp01, Identity, Network, PerLayer, one_hot};
use ndarray::{Array2, ArrayD, Axis};
use std::path::PathBuf;
use std::time::Instant;

/// The report's Boolean thresholds by torchvision module index (`features.i`, and the classifier's
/// dense layers, which the report numbers 31, 34, 37 = network layers 33, 36, 39).
const THETA: [(usize, f32); 16] = [
    (0, 0.05),
    (2, 0.05),
    (5, 0.05),
    (7, 0.05),
    (10, 0.05),
    (12, 0.05),
    (14, 0.06),
    (17, 0.06),
    (19, 0.06),
    (21, 0.1),
    (24, 0.09),
    (26, 0.025),
    (28, 0.3),
    (33, 0.043),
    (36, 0.0145),
    (39, 0.0145),
];

struct Args {
    weights: Option<PathBuf>,
    image: Option<PathBuf>,
    target: Option<usize>,
    theta_scale: f32,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        weights: None,
        image: None,
        target: None,
        theta_scale: 1.0,
        out: PathBuf::from("out/vgg16"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--weights" => a.weights = Some(value()?.into()),
            "--image" => a.image = Some(value()?.into()),
            "--out" => a.out = value()?.into(),
            "--target" => a.target = Some(value()?.parse().map_err(|e| format!("--target: {e}"))?),
            "--theta-scale" => {
                a.theta_scale = value()?
                    .parse()
                    .map_err(|e| format!("--theta-scale: {e}"))?
            }
            "-h" | "--help" => {
                println!(
                    "usage: vgg16 [--weights W.safetensors] [--image IMG] [--target C] \
                     [--theta-scale S] [--out DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    Ok(a)
}

/// A smooth synthetic 224×224 test image (ImageNet-normalised scale), used without `--image`.
fn synthetic_image() -> ArrayD<f32> {
    ArrayD::from_shape_fn(vec![1, 3, 224, 224], |i| {
        let (c, y, x) = (i[1] as f32, i[2] as f32 / 224.0, i[3] as f32 / 224.0);
        let blob = (-((x - 0.5).powi(2) + (y - 0.45).powi(2)) * 18.0).exp();
        let stripes = ((x * 14.0 + c).sin() * (y * 9.0).cos()) * 0.6;
        (2.2 * blob + stripes - 0.4).clamp(-2.0, 2.5)
    })
}

/// Channel sum (or any) of one sample's `[C, H, W]` relevance, as f64 `[H, W]`.
fn reduce<K: Semiring>(r: &ArrayD<K>, f: impl Fn(f64, f64) -> f64) -> Array2<f64> {
    let s = r.index_axis(Axis(0), 0);
    let (h, w) = (s.shape()[1], s.shape()[2]);
    Array2::from_shape_fn((h, w), |(y, x)| {
        (0..s.shape()[0]).fold(0.0, |acc, c| f(acc, s[[c, y, x]].to_f64()))
    })
}

fn run() -> klrp::Result<()> {
    let args = parse_args().map_err(klrp::Error::invalid)?;
    std::fs::create_dir_all(&args.out).map_err(|e| klrp::Error::Io {
        path: args.out.display().to_string(),
        source: e,
    })?;
    let t = Instant::now();
    let weights = args
        .weights
        .as_ref()
        .map(SafeTensors::read_file)
        .transpose()?;
    let net: Network = vgg16(weights.as_ref())?;
    let x = match &args.image {
        Some(p) => load_image(p, &Preprocess::imagenet())?,
        None => synthetic_image(),
    };
    println!(
        "VGG-16 ({} weights, {} parameters) built in {:.2} s; input {}",
        if weights.is_some() {
            "torchvision"
        } else {
            "random He-initialised"
        },
        net.param_count(),
        t.elapsed().as_secs_f64(),
        args.image
            .as_ref()
            .map_or("synthetic".into(), |p| p.display().to_string())
    );

    let t = Instant::now();
    let trace = net.trace(&x)?;
    let forward_s = t.elapsed().as_secs_f64();
    let target = args.target.unwrap_or(trace.predictions()[0]);
    println!("forward {:.3} s; target class {target}", forward_s);

    // Real: the report's per-layer rules.
    let mut real = Composite::uniform(ZeroRule);
    for i in [2, 5, 7, 10, 12, 14] {
        real = real.with_layer(i, GammaRule::new(0.25, 1e-6)?);
    }
    for i in [17, 19, 21, 24, 26, 28] {
        let z = trace
            .activation(i + 1)
            .ok_or_else(|| klrp::Error::invalid("short trace"))?;
        let n = z.len() as f32;
        let mean = z.sum() / n;
        let std = (z.mapv(|v| (v - mean).powi(2)).sum() / n).sqrt();
        real = real.with_layer(i, EpsilonRule::new(0.25 * std)?);
    }
    let t = Instant::now();
    let r_real = net.propagate(
        &trace,
        trace.output_init(&[target])?,
        &real,
        &PerLayer::new(Identity),
        true,
    )?;
    let real_s = t.elapsed().as_secs_f64();

    let mut theta = PerLayer::new(AbsThreshold::new(0.0)?);
    for (i, th) in THETA {
        theta.set(i, AbsThreshold::new(th * args.theta_scale)?);
    }
    let init_b = one_hot::<Boolean>(trace.output().shape(), &[target])?;
    let t = Instant::now();
    let r_bool = net.propagate(&trace, init_b, &Composite::k_lrp(), &theta, false)?;
    let bool_s = t.elapsed().as_secs_f64();
    let init_c = one_hot::<FloatCounting>(trace.output().shape(), &[target])?;
    let t = Instant::now();
    let r_count = net.propagate(&trace, init_c, &Composite::k_lrp(), &theta, false)?;
    let count_s = t.elapsed().as_secs_f64();
    let init_v = one_hot::<Viterbi>(trace.output().shape(), &[target])?;
    let t = Instant::now();
    let r_vit = net.propagate(
        &trace,
        init_v,
        &Composite::viterbi(),
        &PerLayer::new(Clamp01),
        false,
    )?;
    let vit_s = t.elapsed().as_secs_f64();

    let on = r_bool.input().iter().filter(|b| b.0).count();
    let max_count = r_count.input().iter().fold(0.0f64, |m, c| m.max(c.0));
    println!("relevance (forward excluded):");
    println!("  real (report rules)     {:.3} s", real_s);
    println!(
        "  boolean (|d| > θ)       {:.3} s  ({on} of {} inputs on)",
        bool_s,
        x.len()
    );
    println!(
        "  counting (f64)          {:.3} s  (largest path count {max_count:.3e})",
        count_s
    );
    println!("  viterbi (max-abs)       {:.3} s", vit_s);

    // Pictures: input, the four input heatmaps, and the real relevance at features.28.
    let input = {
        let s = x.index_axis(Axis(0), 0);
        let mean = [0.485f32, 0.456, 0.406];
        let std = [0.229f32, 0.224, 0.225];
        let mut img = klrp::viz::RgbImage::new(224, 224, [0, 0, 0]);
        for y in 0..224 {
            for xx in 0..224 {
                let px: Vec<u8> = (0..3)
                    .map(|c| ((s[[c, y, xx]] * std[c] + mean[c]).clamp(0.0, 1.0) * 255.0) as u8)
                    .collect();
                img.put(xx as i64, y as i64, [px[0], px[1], px[2]]);
            }
        }
        img
    };
    let real_map = reduce(r_real.input(), |a, b| a + b);
    let bool_map = reduce(r_bool.input(), f64::max);
    let count_map = reduce(r_count.input(), |a, b| a + b);
    let vit_map = reduce(r_vit.input(), f64::max);
    let mid = r_real
        .layer(28)
        .map(|r| reduce(r, |a, b| a + b))
        .unwrap_or_else(|| Array2::zeros((14, 14)));
    let mid_img = heatmap_rgb(mid.view(), Colormap::Bwr, Scale::Symmetric).upscale(16);
    let grid = Grid::new(vec![vec![
        input,
        heatmap_rgb(real_map.view(), Colormap::Bwr, Scale::Symmetric),
        heatmap_rgb(
            bool_map.view(),
            Colormap::GrayR,
            Scale::Range { min: 0.0, max: 1.0 },
        ),
        heatmap_rgb(count_map.view(), Colormap::Hot, Scale::Log1p),
        heatmap_rgb(vit_map.view(), Colormap::Viridis, Scale::MinMax),
        mid_img,
    ]])
    .with_column_titles([
        "input",
        "real",
        "boolean",
        "counting",
        "viterbi",
        "real, features.28",
    ])
    .with_title(format!("VGG-16, class {target}"))
    .render()?;
    let path = args.out.join("vgg16.png");
    save_png(&path, &grid)?;
    println!(
        "wrote {} (intermediate relevance at {})",
        path.display(),
        vgg16_module_name(28).unwrap_or_default()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
