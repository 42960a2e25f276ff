//! VGG-16 in every semiring, with the per-layer configuration of the semiring-LRP report.
//!
//! ```sh
//! cargo run --release --example vgg16 -- [--weights vgg16.safetensors] [--image photo.jpg]
//!     [--target C] [--theta-fraction F | --theta-scale S] [--out DIR]
//! ```
//!
//! - Builds torchvision's VGG-16 (`klrp::models::vgg16`): torchvision weights from a safetensors
//!   file when given (see `docs/vgg16.md` for the three lines of Python that export them),
//!   otherwise random He-initialised weights with a fixed seed, so it runs anywhere.
//! - Real: LRP-0 at `features.0`, γ = 0.25 on the convolutions `features.2 … features.14`,
//!   ε = 0.25·std(z) on `features.17 … features.28`, LRP-0 on the classifier; started from the
//!   target's logit.
//! - Boolean and Counting (f64 counts): LRP-0 shares, `d ≥ θ` with θ calibrated per layer
//!   (`klrp::calibrate::for_input_fraction`: fair-share θ = κ/n̄, κ chosen so that the mask keeps
//!   `--theta-fraction` of the inputs, default 0.25); or, with `--theta-scale S`, the report's
//!   per-layer θ times S with `|d| > θ`. Viterbi: max-abs shares.
//! - Writes `vgg16.png` (input, four heatmaps — the Boolean and Counting panels say how many
//!   inputs are on —, and the real relevance at `features.28`) and prints the time of each
//!   semiring.

#[path = "common/semirings.rs"]
mod semirings;

use klrp::calibrate;
use klrp::composite::Composite;
use klrp::io::image::{Preprocess, load_image};
use klrp::io::safetensors::SafeTensors;
use klrp::models::{vgg16, vgg16_module_name};
use klrp::rules::{EpsilonRule, GammaRule, ZeroRule};
use klrp::viz::{Colormap, Panel, Scale, figure, heatmap_rgb, save_png};
use klrp::{AbsThreshold, Network, PerLayer};
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

/// The share of the input the calibrated Boolean mask keeps by default.
const DEFAULT_THETA_FRACTION: f64 = 0.25;

struct Args {
    weights: Option<PathBuf>,
    image: Option<PathBuf>,
    target: Option<usize>,
    theta_fraction: f64,
    theta_scale: Option<f32>,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        weights: None,
        image: None,
        target: None,
        theta_fraction: DEFAULT_THETA_FRACTION,
        theta_scale: None,
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
                a.theta_scale = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--theta-scale: {e}"))?,
                )
            }
            "--theta-fraction" => {
                a.theta_fraction = value()?
                    .parse()
                    .map_err(|e| format!("--theta-fraction: {e}"))?
            }
            "-h" | "--help" => {
                println!(
                    "usage: vgg16 [--weights W.safetensors] [--image IMG] [--target C] \
                     [--theta-fraction F | --theta-scale S] [--out DIR]"
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
    let (r_real, real_s) = semirings::real(&net, &trace, target, &real, true)?;

    let k_lrp = Composite::k_lrp();
    let (m, theta_note) = match args.theta_scale {
        Some(scale) => {
            let mut theta = PerLayer::new(AbsThreshold::new(0.0)?);
            for (i, th) in THETA {
                theta.set(i, AbsThreshold::new(th * scale)?);
            }
            let note = format!("|d| > θ, the report's θ × {scale}");
            (
                semirings::masks(&net, &trace, target, &k_lrp, &theta)?,
                note,
            )
        }
        None => {
            let t = Instant::now();
            let cal =
                calibrate::for_input_fraction(&net, &x, [target], &k_lrp, args.theta_fraction)?;
            let note = format!(
                "d ≥ θ = κ/n̄, κ = {} calibrated in {:.1} s for {:.0}% of the inputs",
                cal.kappa,
                t.elapsed().as_secs_f64(),
                100.0 * args.theta_fraction
            );
            (
                semirings::masks(&net, &trace, target, &k_lrp, &cal.theta)?,
                note,
            )
        }
    };
    let (r_vit, vit_s) = semirings::viterbi(&net, &trace, target)?;

    let on = m.boolean.nonzero_counts()[0];
    let counted = m.counting.nonzero_counts()[0];
    let max_count = m.counting.values().fold(0.0f64, |a, &c| a.max(c));
    println!("θ (Boolean, Counting): {theta_note}");
    println!("relevance (forward excluded):");
    println!("  real (report rules)     {:.3} s", real_s);
    println!(
        "  boolean                 {:.3} s  ({on} of {} inputs on)",
        m.seconds.0,
        x.len()
    );
    println!(
        "  counting (f64)          {:.3} s  ({counted} inputs with a path; largest path count {max_count:.3e})",
        m.seconds.1
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
    // Maps summed over the colour channels (Boolean: how many of the 3 channels are on).
    let real_map = r_real.heatmap(0)?;
    let bool_map = m.boolean.heatmap(0)?;
    let count_map = m.counting.heatmap(0)?;
    let vit_map = r_vit.heatmap(0)?;
    let mid = r_real
        .layer(28)
        .map(|r| {
            r.index_axis(Axis(0), 0)
                .mapv(|v| f64::from(v.0))
                .sum_axis(Axis(0))
        })
        .map(|r| r.into_dimensionality::<ndarray::Ix2>())
        .transpose()
        .map_err(|e| klrp::Error::invalid(format!("features.28 relevance: {e}")))?
        .unwrap_or_else(|| Array2::zeros((14, 14)));
    let mid_img = heatmap_rgb(mid.view(), Colormap::Bwr, Scale::Symmetric).upscale(16);
    let titled = |panel: Panel, title: &str| panel.with_title([title]).with_text_scale(2);
    let panels = [
        titled(Panel::new(input), "input"),
        titled(
            Panel::heatmap(real_map.view(), Colormap::Bwr, Scale::Symmetric),
            "real",
        ),
        titled(
            Panel::heatmap(
                bool_map.view(),
                Colormap::GrayR,
                Scale::Range { min: 0.0, max: 3.0 },
            ),
            &format!("boolean, on: {on}"),
        ),
        titled(
            Panel::heatmap(count_map.view(), Colormap::Hot, Scale::Log1p),
            &format!("counting, >0: {counted}"),
        ),
        titled(
            Panel::heatmap(vit_map.view(), Colormap::Viridis, Scale::MinMax),
            "viterbi",
        ),
        titled(Panel::new(mid_img), "real, features.28"),
    ];
    let grid = figure(format!("VGG-16, class {target}"), &panels, 4)?;
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
