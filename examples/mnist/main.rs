//! K-LRP on MNIST: train a 784-300-100-10 MLP and explain it in four semirings.
//!
//! ```text
//! cargo run --release --example mnist                         # the 10,000 embedded digits
//! cargo run --release --example mnist -- --data DIR           # full MNIST / Fashion-MNIST IDX files
//! cargo run --release --example mnist -- --out DIR --epochs N --seed S
//! ```
//!
//! Writes into `out/mnist/` (or `--out DIR`):
//!
//! | file | what |
//! |---|---|
//! | `explanations.png` | one test digit per class: digit, real (LRP-ε), Boolean, Counting, Viterbi relevance |
//! | `network.png` | the first of those digits through a slice of the MLP (its 8 most relevant neurons per layer), in Boolean, Counting, Viterbi and Real |
//! | `class_masks.png` | ∧ and ∨ of the Boolean masks of all test digits of each class |
//! | `pruning.csv`, `pruning.png` | test accuracy as first-layer neurons are removed, least relevant first, per ranking |
//! | `perturbation.csv`, `perturbation.png` | mean drop of the target logit as the most relevant pixels are set to 0 |
//!
//! `docs/mnist.md` explains every choice; `experiments.rs` holds the code, `train.rs` the
//! training loop, `rng.rs` the random generator.

mod experiments;
mod network_view;
mod paths_view;
mod rng;
mod train;

use experiments::{Config, SEMIRINGS};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo run --release --example mnist -- [--data DIR] [--out DIR] [--epochs N] [--seed S]

  --data DIR    train and test on the IDX files in DIR (train-images-idx3-ubyte, …, .gz or not:
                MNIST or Fashion-MNIST) instead of the 10,000 embedded digits
  --out DIR     where to write the figures and tables (default out/mnist)
  --epochs N    training epochs (default 12)
  --seed S      seed of the training run (default 0x5eed2024)";

struct Args {
    data: Option<PathBuf>,
    config: Config,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut config = Config::default();
    config.train.epochs = 12;
    let mut data = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--data" => data = Some(PathBuf::from(value("--data")?)),
            "--out" => config.out = PathBuf::from(value("--out")?),
            "--epochs" => {
                config.train.epochs = value("--epochs")?
                    .parse()
                    .map_err(|e| format!("--epochs: {e}"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                let parsed = match v.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => v.parse(),
                };
                config.train.seed = parsed.map_err(|e| format!("--seed: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(Args { data, config }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> klrp::Result<()> {
    let data = experiments::load_data(args.data.as_deref())?;
    println!("data: {}", data.source);
    let cfg = args.config;
    let s = experiments::run(&cfg, &data, &mut |line| println!("{line}"))?;

    println!();
    println!(
        "results ({:.1} s in all, explanations on {} threads)",
        s.seconds, s.threads
    );
    let rows: Vec<(String, String)> = [
        (
            format!("test accuracy ({} digits)", s.test_digits),
            format!("{:.1}%", 100.0 * s.accuracy),
        ),
        ("training time".into(), format!("{:.1} s", s.train_seconds)),
    ]
    .into_iter()
    .chain(SEMIRINGS.iter().map(|name| {
        let ms = s
            .ms_per_explanation
            .iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, ms)| *ms);
        let how = match *name {
            "real" => "LRP-ε, ε = 0.1, init = logit",
            "boolean" => "LRP-0 shares, d ≥ θ",
            "counting" => "LRP-0 shares, d ≥ θ",
            _ => "max-abs shares, clamp to [0, 1]",
        };
        (
            format!("time per explanation: {name}"),
            format!("{ms:.3} ms  ({how})"),
        )
    }))
    .chain([
        (
            "largest path count".into(),
            format!(
                "{:.0}{}",
                s.max_path_count,
                if s.overflowed > 0 {
                    format!(" ({} saturated u64)", s.overflowed)
                } else {
                    String::new()
                }
            ),
        ),
        (
            "θ per dense layer".into(),
            format!(
                "{} (κ = {})",
                s.thetas
                    .iter()
                    .zip(&s.active_inputs)
                    .map(|((l, t), (_, n))| format!("layer {l}: {t:.4} (n̄ {n:.0})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.kappa
            ),
        ),
        (
            "Boolean mask / ink pixels".into(),
            format!(
                "{:.0}% (mean over the test digits)",
                100.0 * s.mask_coverage
            ),
        ),
        (
            "class masks ∧ / ∨ (pixels)".into(),
            s.class_mask_pixels
                .iter()
                .map(|(a, o)| format!("{a}/{o}"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ])
    .collect();
    let w = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (k, v) in &rows {
        println!("  {k:<w$}  {v}");
    }
    println!();
    println!("{}", s.perturbation);
    println!("{}", s.pruning);
    println!();
    println!("outputs in {}/:", cfg.out.display());
    for f in &s.files {
        println!(
            "  {}",
            f.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        );
    }
    Ok(())
}
