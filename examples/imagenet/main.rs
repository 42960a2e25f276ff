//! A real ImageNet network explained on real photos: pretrained EfficientNet-Lite0
//! (`models/efficientnet_lite0.onnx`) in the Real, Boolean, Counting and Viterbi semirings.
//!
//! ```sh
//! cargo run --release --example imagenet -- [--image PATH] [--target C]
//!     [--theta-fraction F] [--mask-rules epsilon-gamma-box|k-lrp] [--paths] [--out DIR]
//! ```
//!
//! For each photo in `data/photos/` (or `--image PATH`, any PNG/JPEG) prints the top-5 classes
//! (rank, class index, probability, name), explains the top-1 class (or `--target C`) and writes
//! `out/imagenet/<photo>.png`: the photo (resized and cropped as the network sees it), classical
//! LRP with ε-γ-box (blue-white-red), the Boolean mask, the Counting map (log scale) and the
//! Viterbi map. Boolean and Counting use the shares of the real panel's rules (`--mask-rules
//! k-lrp`: LRP-0) and fair-share thresholds `θ_l = κ / n̄_l`, κ calibrated so the Boolean mask
//! keeps `--theta-fraction` of the input (default 0.1). Prints the time of each explanation.
//! `--paths` also lists the 5 strongest paths (Viterbi) to the class and writes
//! `out/imagenet/<photo>_paths.png`: the strongest path's receptive field at every layer, drawn on
//! the photo. Run it from the repository root (docs/imagenet.md).

mod lite0;
mod paths;

use lite0::{Config, MaskRules, PHOTOS};
use std::path::{Path, PathBuf};

/// The paths `--paths` lists.
const TOP_PATHS: usize = 5;

fn parse_args() -> Result<(Config, Option<PathBuf>, bool), String> {
    let mut cfg = Config::default();
    let mut image = None;
    let mut with_paths = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--image" => image = Some(PathBuf::from(value()?)),
            "--target" => {
                cfg.target = Some(value()?.parse().map_err(|e| format!("--target: {e}"))?)
            }
            "--theta-fraction" => {
                let f: f64 = value()?
                    .parse()
                    .map_err(|e| format!("--theta-fraction: {e}"))?;
                if !(f > 0.0 && f <= 1.0) {
                    return Err(format!("--theta-fraction {f} is not in (0, 1]"));
                }
                cfg.theta_fraction = f;
            }
            "--out" => cfg.out = PathBuf::from(value()?),
            "--paths" => with_paths = true,
            "--mask-rules" => {
                cfg.mask_rules = match value()?.as_str() {
                    "epsilon-gamma-box" => MaskRules::EpsilonGammaBox,
                    "k-lrp" => MaskRules::KLrp,
                    other => {
                        return Err(format!(
                            "--mask-rules: '{other}' is not epsilon-gamma-box or k-lrp"
                        ));
                    }
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: imagenet [--image PATH] [--target C] [--theta-fraction F] \
                     [--mask-rules epsilon-gamma-box|k-lrp] [--paths] [--out DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (try --help)")),
        }
    }
    Ok((cfg, image, with_paths))
}

fn run() -> klrp::Result<()> {
    let (cfg, image, with_paths) = parse_args().map_err(klrp::Error::invalid)?;
    let root = Path::new(".");
    let model = lite0::load_model(root)?;
    println!(
        "EfficientNet-Lite0 ({}, {} parameters): resize {}, crop {:?}, (x − {:.4}) / {:.4}",
        lite0::MODEL,
        model.net.param_count(),
        model.pre.resize.unwrap_or(0),
        model.pre.crop.unwrap_or((0, 0)),
        model.pre.normalize.as_ref().map_or(0.0, |n| n.mean[0]),
        model.pre.normalize.as_ref().map_or(1.0, |n| n.std[0]),
    );
    let photos = match image {
        Some(p) => vec![p],
        None => lite0::photos(&root.join(PHOTOS))?,
    };
    for photo in &photos {
        let e = lite0::explain_photo(&model, photo, &cfg)?;
        println!("\n{}", photo.display());
        for (rank, c) in e.top.iter().enumerate() {
            println!(
                "  {}  {:>3}  {:.4}  {}",
                rank + 1,
                c.class,
                c.probability,
                model.labels[c.class]
            );
        }
        println!(
            "  explained class {} ({}): Σ R = {:.3} (logit {:.3})",
            e.target, model.labels[e.target], e.real_sum, e.logit
        );
        println!(
            "  θ = {} / n̄ per layer, {} shares (calibrated in {:.2} s): boolean {} of {} inputs \
             on ({:.1}%), counting {} > 0, largest count {:.2e}",
            e.kappa,
            cfg.mask_rules.name(),
            e.times.calibration,
            e.on,
            e.inputs,
            100.0 * e.fraction,
            e.counted,
            e.max_count
        );
        let t = e.times;
        println!(
            "  time per explanation: forward {:.0} ms; real {:.0} ms, boolean {:.0} ms, \
             counting {:.0} ms, viterbi {:.0} ms",
            1e3 * t.forward,
            1e3 * t.real,
            1e3 * t.boolean,
            1e3 * t.counting,
            1e3 * t.viterbi
        );
        println!("  wrote {}", e.figure.display());
        if with_paths {
            let f = paths::strongest_paths(&model, photo, &cfg, TOP_PATHS)?;
            println!(
                "  the {} strongest paths to class {} (viterbi pass {:.0} ms, search {:.0} ms):",
                f.paths.len(),
                f.target,
                1e3 * f.times.0,
                1e3 * f.times.1
            );
            for (i, p) in f.paths.iter().enumerate() {
                println!(
                    "    {}  strength {:.9} (1 − {:.2e})  from input {:?}, {} steps",
                    i + 1,
                    p.strength,
                    1.0 - p.strength,
                    p.steps[0].coords,
                    p.steps.len()
                );
            }
            println!("  receptive fields of the strongest path:");
            for b in &f.boxes {
                println!("    {b}");
            }
            println!("  wrote {}", f.figure.display());
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
