//! The MNIST experiments: train, explain in four semirings, draw, prune, perturb.
//!
//! [`run`] does everything `cargo run --release --example mnist` does and returns a
//! [`Summary`]; `main.rs` only parses the command line and prints. `tests/it/mnist_example.rs`
//! runs the same code on a small budget.

use crate::rng::SplitMix64;
use crate::train::{self, Mlp, TrainConfig};
use klrp::io::idx::Mnist;
use klrp::rules::EpsilonRule;
use klrp::semiring::{Boolean, Counting, Real, Semiring, Viterbi};
use klrp::viz::{self, Colormap, Grid, LinePlot, PALETTE, RgbImage, Scale, Series};
use klrp::{
    Clamp01, Composite, Conversion, Identity, Network, PerLayer, Threshold, Trace, one_hot,
};
use ndarray::{Array2, ArrayD, ArrayView2, Axis, s};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// ε of the LRP-ε rule used for the classical (Real) heatmaps, relative to logits of about 10.
pub const REAL_EPSILON: f32 = 0.1;

/// The share of ink pixels the Boolean masks are calibrated to keep (see [`calibrate_theta`]).
pub const TARGET_COVERAGE: f64 = 0.5;

/// The index of the layer whose input relevance is the first hidden layer's (after its ReLU):
/// layers are `Dense(784→300), ReLU, Dense(300→100), ReLU, Dense(100→10)`.
pub const HIDDEN1_INPUT: usize = 2;

/// What to run, and how much of it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the figures and tables go (created if missing).
    pub out: PathBuf,
    /// Training settings.
    pub train: TrainConfig,
    /// Training digits used to rank the hidden neurons for pruning.
    pub rank_digits: usize,
    /// Test digits (correctly classified ones) used for the perturbation curves.
    pub perturb_digits: usize,
    /// Training digits used to calibrate θ.
    pub calibration_digits: usize,
    /// Neurons removed per pruning step.
    pub prune_step: usize,
    /// Pixels removed at each perturbation step.
    pub perturb_steps: Vec<usize>,
    /// Worker threads for the explanations.
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            out: PathBuf::from("out/mnist"),
            train: TrainConfig::default(),
            rank_digits: 1000,
            perturb_digits: 500,
            calibration_digits: 200,
            prune_step: 25,
            perturb_steps: vec![
                0, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300,
            ],
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        }
    }
}

/// A training and a test set, and where they came from.
#[derive(Clone, Debug)]
pub struct Data {
    /// Digits to train on.
    pub train: Mnist,
    /// Held-out digits.
    pub test: Mnist,
    /// A description for the printout.
    pub source: String,
}

/// The directory of the embedded digits.
pub fn embedded_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// The 10,000 embedded digits (first 8,000 to train, last 2,000 to test), or the four standard
/// IDX files of MNIST / Fashion-MNIST in `dir`.
pub fn load_data(dir: Option<&Path>) -> klrp::Result<Data> {
    match dir {
        Some(dir) => {
            let s = Mnist::load_dir(dir)?;
            Ok(Data {
                source: format!(
                    "{} ({} training, {} test images)",
                    dir.display(),
                    s.train.len(),
                    s.test.len()
                ),
                train: s.train,
                test: s.test,
            })
        }
        None => {
            let dir = embedded_dir();
            let all = Mnist::from_files(
                dir.join("images.idx3-ubyte.gz"),
                dir.join("labels.idx1-ubyte.gz"),
            )?;
            let (train, test) = all.split_at(8_000)?;
            Ok(Data {
                source: "embedded digits (data/mnist: 8,000 to train, 2,000 held out)".into(),
                train,
                test,
            })
        }
    }
}

/// Input relevance maps `[N, pixels]` and, when asked for, the first hidden layer's relevance
/// `[N, 300]`, as `f64`.
#[derive(Clone, Debug)]
pub struct Maps {
    /// `[N, pixels]`.
    pub input: Array2<f64>,
    /// `[N, hidden]`, if kept.
    pub hidden: Option<Array2<f64>>,
}

/// The four semirings with their rules and Θ.
pub struct Explainer {
    /// The trained network.
    pub net: Network,
    /// LRP-ε for the Real heatmaps.
    pub real: Composite,
    /// Θ per layer for Boolean and Counting: `d ≥ θ_l`.
    pub theta: PerLayer<Threshold>,
    /// The κ that gave θ: `θ_l = κ / n̄_l`.
    pub kappa: f32,
    /// `n̄_l`: mean number of active inputs of each dense layer (index, n̄).
    pub active_inputs: Vec<(usize, f64)>,
    /// Worker threads.
    pub threads: usize,
}

/// The four semirings, in the order of the figures and tables.
pub const SEMIRINGS: [&str; 4] = ["real", "boolean", "counting", "viterbi"];

impl Explainer {
    /// The dense layers' indices and θ, for printing.
    pub fn thetas(&self) -> Vec<(usize, f32)> {
        self.active_inputs
            .iter()
            .map(|&(l, _)| (l, self.theta.at(l).theta()))
            .collect()
    }

    /// Explains `targets` in semiring `name` (one of [`SEMIRINGS`]), keeping the first hidden
    /// layer's relevance if `hidden`.
    pub fn explain(
        &self,
        name: &str,
        x: ArrayView2<'_, f32>,
        targets: &[usize],
        hidden: bool,
    ) -> klrp::Result<Maps> {
        match name {
            // Classical LRP: LRP-ε, initialised with the target's logit.
            "real" => self.run::<Real<f32>, _>(
                x,
                targets,
                hidden,
                &|t: &Trace, y: &[usize]| t.output_init(y),
                &self.real,
                &PerLayer::new(Identity),
            ),
            "boolean" => self.run::<Boolean, _>(
                x,
                targets,
                hidden,
                &one::<Boolean>,
                &Composite::k_lrp(),
                &self.theta,
            ),
            "counting" => self.run::<Counting, _>(
                x,
                targets,
                hidden,
                &one::<Counting>,
                &Composite::k_lrp(),
                &self.theta,
            ),
            "viterbi" => self.run::<Viterbi, _>(
                x,
                targets,
                hidden,
                &one::<Viterbi>,
                &Composite::viterbi(),
                &PerLayer::new(Clamp01),
            ),
            other => Err(klrp::Error::invalid(format!("unknown semiring {other}"))),
        }
    }

    /// Propagates in chunks of 50 digits on `self.threads` threads.
    fn run<K: Semiring, T: Conversion<K>>(
        &self,
        x: ArrayView2<'_, f32>,
        targets: &[usize],
        hidden: bool,
        init: &InitFn<K>,
        composite: &Composite,
        theta: &PerLayer<T>,
    ) -> klrp::Result<Maps> {
        let parts = par_chunks(x.nrows(), 50, self.threads, |r: Range<usize>| {
            let xb = x.slice(s![r.clone(), ..]).to_owned().into_dyn();
            let trace = self.net.trace(&xb)?;
            let rel = self.net.propagate(
                &trace,
                init(&trace, &targets[r.clone()])?,
                composite,
                theta,
                hidden,
            )?;
            let to2 = |a: &ArrayD<K>| -> Array2<f64> {
                let n = a.shape()[0];
                let d = a.len() / n.max(1);
                Array2::from_shape_vec((n, d), a.iter().map(Semiring::to_f64).collect())
                    .expect("n · d elements")
            };
            let h = if hidden {
                Some(to2(rel.layer(HIDDEN1_INPUT).ok_or_else(|| {
                    klrp::Error::invalid("hidden relevance was not kept")
                })?))
            } else {
                None
            };
            Ok((to2(rel.input()), h))
        })?;
        let cat = |v: Vec<Array2<f64>>| -> Array2<f64> {
            let views: Vec<_> = v.iter().map(|a| a.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("chunks of equal width")
        };
        let (inputs, hiddens): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        Ok(Maps {
            input: cat(inputs),
            hidden: if hidden {
                Some(cat(hiddens.into_iter().flatten().collect()))
            } else {
                None
            },
        })
    }
}

/// How a propagation is initialised from the forward pass and the targets.
type InitFn<K> = dyn Fn(&Trace, &[usize]) -> klrp::Result<ArrayD<K>> + Sync;

/// The K-LRP initialisation: 1 at the target, 0 elsewhere.
fn one<K: Semiring>(trace: &Trace, targets: &[usize]) -> klrp::Result<ArrayD<K>> {
    one_hot(trace.output().shape(), targets)
}

/// Runs `f` on the chunks `0..n` cut into pieces of `chunk`, on up to `threads` threads, and
/// returns the results in order.
pub fn par_chunks<T: Send>(
    n: usize,
    chunk: usize,
    threads: usize,
    f: impl Fn(Range<usize>) -> klrp::Result<T> + Sync,
) -> klrp::Result<Vec<T>> {
    let ranges: Vec<Range<usize>> = (0..n)
        .step_by(chunk.max(1))
        .map(|a| a..(a + chunk).min(n))
        .collect();
    let next = AtomicUsize::new(0);
    let workers = threads.clamp(1, ranges.len().max(1));
    let mut results: Vec<(usize, klrp::Result<T>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                sc.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(r) = ranges.get(i) else { break };
                        done.push((i, f(r.clone())));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// The thresholds [`calibrate_theta`] chose.
#[derive(Clone, Debug)]
pub struct Calibration {
    /// θ per layer.
    pub theta: PerLayer<Threshold>,
    /// κ: θ_l = κ / n̄_l.
    pub kappa: f32,
    /// `(layer index, n̄_l)` for every dense layer.
    pub active_inputs: Vec<(usize, f64)>,
    /// The mean share of ink pixels the Boolean masks keep on the calibration digits.
    pub coverage: f64,
}

/// Chooses the per-layer thresholds of the Boolean and Counting relevance.
///
/// A share `d_jk = a_j w_jk / z_k` of a neuron with `n` active inputs would be `1/n` if every
/// input contributed equally. θ at dense layer `l` is `κ / n̄_l`, `n̄_l` the mean number of
/// active inputs of that layer on the calibration digits: a connection is relevant when it
/// carries at least κ times its "fair share". κ is the same for every layer and is chosen on
/// the grid 0.1, …, 0.9, 1, 1.5, … 128 (by bisection: coverage falls as κ grows) so that the Boolean masks
/// keep about [`TARGET_COVERAGE`] of each digit's ink pixels: masks that are neither all on (κ
/// small: every stroke pixel has some strong path) nor all off. This is
/// [`klrp::calibrate::for_input_fraction`].
pub fn calibrate_theta(
    net: &Network,
    x: ArrayView2<'_, f32>,
    targets: &[usize],
) -> klrp::Result<Calibration> {
    // The library's fair-share calibration: κ on the grid 0.1 … 0.9, 1, 1.5, … 128 (one bottleneck
    // propagation, then Boolean ones to confirm), keeping TARGET_COVERAGE of the non-zero (ink)
    // pixels.
    let cal = klrp::calibrate::for_input_fraction(
        net,
        &x.to_owned().into_dyn(),
        targets,
        &Composite::k_lrp(),
        TARGET_COVERAGE,
    )?;
    Ok(Calibration {
        theta: cal.theta,
        kappa: cal.kappa,
        active_inputs: cal
            .active_inputs
            .iter()
            .map(|a| (a.layer, a.mean_active))
            .collect(),
        coverage: cal.fraction,
    })
}

/// Everything the run measured, for the printout and the smoke test.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Test accuracy of the trained network.
    pub accuracy: f64,
    /// Test digits.
    pub test_digits: usize,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// `(semiring, milliseconds per explanation)`, wall time with `threads` threads.
    pub ms_per_explanation: Vec<(String, f64)>,
    /// Threads used for the explanations.
    pub threads: usize,
    /// The largest Counting relevance (path count) seen.
    pub max_path_count: f64,
    /// Counting values that saturated `u64`.
    pub overflowed: usize,
    /// κ and θ per dense layer.
    pub kappa: f32,
    /// `(layer index, θ)`.
    pub thetas: Vec<(usize, f32)>,
    /// `(layer index, n̄)`.
    pub active_inputs: Vec<(usize, f64)>,
    /// Mean share of ink pixels in the Boolean masks of the test digits.
    pub mask_coverage: f64,
    /// Pixels in the class-wise ∧ and ∨ masks, per class.
    pub class_mask_pixels: Vec<(usize, usize)>,
    /// One line on the pruning curves.
    pub pruning: String,
    /// One line on the perturbation curves.
    pub perturbation: String,
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Seconds for the whole run.
    pub seconds: f64,
}

/// Names of the pruning rankings, in CSV column order.
pub const PRUNING_COLUMNS: [&str; 6] = ["real", "viterbi", "boolean", "counting", "l1", "l2"];

/// Names of the perturbation orders, in CSV column order.
pub const PERTURBATION_COLUMNS: [&str; 6] = [
    "real",
    "boolean",
    "counting",
    "viterbi",
    "random",
    "random_ink",
];

/// Trains, explains, draws and measures; writes everything into `cfg.out`. `log` gets one line
/// per step (progress).
pub fn run(cfg: &Config, data: &Data, log: &mut dyn FnMut(&str)) -> klrp::Result<Summary> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.out).map_err(|source| klrp::Error::Io {
        path: cfg.out.display().to_string(),
        source,
    })?;
    let (rows, cols) = (data.train.rows, data.train.cols);
    let mut tcfg = cfg.train.clone();
    tcfg.image = (rows, cols);
    tcfg.sizes[0] = rows * cols;
    let n_train = tcfg
        .limit
        .map_or(data.train.len(), |l| l.min(data.train.len()));
    log(&format!(
        "training MLP {} on {n_train} digits: {} epochs, Adam, batch {}, seed {:#x}",
        tcfg.sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("-"),
        tcfg.epochs,
        tcfg.batch,
        tcfg.seed
    ));
    let t = Instant::now();
    let mlp = train::train(data.train.images.view(), &data.train.labels, &tcfg, |r| {
        log(&format!(
            "  epoch {:>2}/{}: loss {:.4}, train accuracy {:.1}% ({:.2} s)",
            r.epoch,
            tcfg.epochs,
            r.loss,
            100.0 * r.train_accuracy,
            r.seconds
        ));
    });
    let train_seconds = t.elapsed().as_secs_f64();
    let test = &data.test;
    let accuracy = mlp.accuracy(test.images.view(), &test.labels);
    log(&format!("test accuracy: {:.1}%", 100.0 * accuracy));

    let net = mlp.to_network()?;
    check_network_matches(&net, &mlp, test.images.slice(s![..test.len().min(100), ..]))?;
    let n_cal = cfg.calibration_digits.min(data.train.len());
    let cal_x = data.train.images.slice(s![..n_cal, ..]);
    let cal_y: Vec<usize> = data.train.labels[..n_cal]
        .iter()
        .map(|&l| l.into())
        .collect();
    let cal = calibrate_theta(&net, cal_x, &cal_y)?;
    let (kappa, cal_cov) = (cal.kappa, cal.coverage);
    let ex = Explainer {
        net,
        real: Composite::uniform(EpsilonRule::new(REAL_EPSILON)?),
        theta: cal.theta,
        kappa,
        active_inputs: cal.active_inputs,
        threads: cfg.threads,
    };
    log(&format!(
        "θ (Boolean, Counting: share d ≥ θ = κ/n̄ per dense layer, κ = {kappa}): {} — masks keep {:.0}% of ink on {n_cal} calibration digits",
        ex.thetas()
            .iter()
            .zip(&ex.active_inputs)
            .map(|((l, t), (_, nbar))| format!("layer {l}: θ = {t:.4} (n̄ = {nbar:.1})"))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * cal_cov
    ));

    let mut files = Vec::new();
    let mut max_count = 0.0f64;
    let mut overflowed = 0usize;
    let mut times: Vec<(String, f64)> = Vec::new();
    let predictions = mlp.predict(test.images.view());
    let labels: Vec<usize> = test.labels.iter().map(|&l| l.into()).collect();

    // 1. One correctly classified test digit per class, explained in the four semirings.
    let picks: Vec<usize> = (0..10)
        .filter_map(|c| {
            (0..test.len())
                .find(|&i| labels[i] == c && predictions[i] == c)
                .or_else(|| (0..test.len()).find(|&i| labels[i] == c))
        })
        .collect();
    let pick_x = test.images.select(Axis(0), &picks);
    let pick_y: Vec<usize> = picks.iter().map(|&i| labels[i]).collect();
    let mut pick_maps = Vec::new();
    for name in SEMIRINGS {
        pick_maps.push(ex.explain(name, pick_x.view(), &pick_y, false)?.input);
    }
    max_count = max_count.max(pick_maps[2].fold(0.0, |m, &v| m.max(v)));
    let path = cfg.out.join("explanations.png");
    viz::save_png(
        &path,
        &explanation_grid(&pick_x, &pick_y, &pick_maps, (rows, cols))?,
    )?;
    log(&format!("wrote {}", path.display()));
    files.push(path);
    // The first of those digits through a slice of the network (network_view.rs).
    let path = crate::network_view::write_network_view(&ex, pick_x.row(0), pick_y[0], &cfg.out)?;
    log(&format!("wrote {}", path.display()));
    files.push(path);
    // Its strongest paths through the MLP (paths_view.rs).
    let (path, paths) =
        crate::paths_view::write_paths_view(&ex, pick_x.row(0), pick_y[0], &cfg.out)?;
    log(&format!(
        "wrote {} (strongest path: strength {:.4}, from pixel {})",
        path.display(),
        paths.first().map_or(0.0, |p| p.strength),
        paths.first().map_or(0, |p| p.start())
    ));
    files.push(path);

    // 2. Boolean masks of every test digit; ∧ and ∨ per class.
    let t = Instant::now();
    let masks = ex
        .explain("boolean", test.images.view(), &labels, false)?
        .input;
    times.push(("boolean".into(), ms_per(t, test.len())));
    // hits[c][p]: how many test digits of class c have pixel p in their mask.
    let mut hits = vec![vec![0usize; rows * cols]; 10];
    let mut seen = [0usize; 10];
    let mut coverage = 0.0;
    for (i, m) in masks.outer_iter().enumerate() {
        let c = labels[i];
        seen[c] += 1;
        for (p, &v) in m.iter().enumerate() {
            hits[c][p] += usize::from(v > 0.0);
        }
        let ink = test
            .images
            .row(i)
            .iter()
            .filter(|&&v| v > 0.0)
            .count()
            .max(1);
        coverage += m.iter().filter(|&&v| v > 0.0).count() as f64 / ink as f64;
    }
    let mask_coverage = coverage / test.len() as f64;
    // ∧ over the class: in every digit's mask; ∨: in at least one.
    let class_and: Vec<Vec<bool>> = (0..10)
        .map(|c| {
            hits[c]
                .iter()
                .map(|&h| seen[c] > 0 && h == seen[c])
                .collect()
        })
        .collect();
    let class_or: Vec<Vec<bool>> = (0..10)
        .map(|c| hits[c].iter().map(|&h| h > 0).collect())
        .collect();
    let class_mask_pixels: Vec<(usize, usize)> = (0..10)
        .map(|c| {
            (
                class_and[c].iter().filter(|&&b| b).count(),
                class_or[c].iter().filter(|&&b| b).count(),
            )
        })
        .collect();
    let path = cfg.out.join("class_masks.png");
    viz::save_png(
        &path,
        &class_mask_grid(&class_and, &class_or, &seen, (rows, cols))?,
    )?;
    log(&format!(
        "wrote {} (∧ / ∨ pixels per class: {})",
        path.display(),
        class_mask_pixels
            .iter()
            .map(|(a, o)| format!("{a}/{o}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    files.push(path);
    // Between ∧ (fraction 1) and ∨ (fraction > 0): the fraction of the class's digits whose
    // mask holds each pixel.
    let path = cfg.out.join("class_mask_frequency.png");
    viz::save_png(&path, &class_frequency_grid(&hits, &seen, (rows, cols))?)?;
    log(&format!("wrote {}", path.display()));
    files.push(path);

    // 3. Perturbation: explanations of correctly classified test digits.
    let correct: Vec<usize> = (0..test.len())
        .filter(|&i| predictions[i] == labels[i])
        .take(cfg.perturb_digits)
        .collect();
    let px = test.images.select(Axis(0), &correct);
    let py: Vec<usize> = correct.iter().map(|&i| labels[i]).collect();
    let mut pmaps = Vec::new();
    for name in SEMIRINGS {
        let t = Instant::now();
        pmaps.push(ex.explain(name, px.view(), &py, false)?.input);
        if name != "boolean" {
            times.push((name.into(), ms_per(t, px.nrows())));
        }
    }
    times.sort_by_key(|(n, _)| SEMIRINGS.iter().position(|s| s == n));
    max_count = max_count.max(pmaps[2].fold(0.0, |m, &v| m.max(v)));
    overflowed += pmaps[2].iter().filter(|&&v| v >= u64::MAX as f64).count();
    log(&format!(
        "perturbation: removing the most relevant pixels of {} test digits …",
        px.nrows()
    ));
    let mut rng = SplitMix64::new(tcfg.seed ^ 0xDEC0DE);
    let (pert_csv, pert_line) = perturbation(&mlp, &px, &py, &pmaps, &cfg.perturb_steps, &mut rng);
    let path = cfg.out.join("perturbation.csv");
    write_file(&path, &pert_csv)?;
    files.push(path);
    let path = cfg.out.join("perturbation.png");
    viz::save_png(
        &path,
        &csv_plot(
            &pert_csv,
            "perturbation: most relevant pixels set to 0 first",
            "pixels removed",
            "mean drop of target logit",
        )?,
    )?;
    log(&format!("wrote {} and perturbation.csv", path.display()));
    files.push(path);

    // 4. Pruning by relevance ranking of the first hidden layer.
    let nr = cfg.rank_digits.min(data.train.len());
    log(&format!(
        "pruning: ranking the {} first-layer neurons on {nr} training digits …",
        mlp.weights[0].nrows()
    ));
    let rx = data.train.images.slice(s![..nr, ..]);
    let ry: Vec<usize> = data.train.labels[..nr].iter().map(|&l| l.into()).collect();
    let mut scores: Vec<(String, Vec<f64>)> = Vec::new();
    for &name in &PRUNING_COLUMNS[..4] {
        let maps = ex.explain(name, rx, &ry, true)?;
        let h = maps.hidden.expect("hidden relevance kept");
        if name == "counting" {
            max_count = max_count.max(maps.input.fold(0.0, |m, &v| m.max(v)));
        }
        let mean_abs = h.mapv(f64::abs).mean_axis(Axis(0)).expect("digits > 0");
        scores.push((name.into(), mean_abs.to_vec()));
    }
    let w1 = &mlp.weights[0];
    scores.push((
        "l1".into(),
        w1.outer_iter()
            .map(|r| r.iter().map(|&w| f64::from(w.abs())).sum())
            .collect(),
    ));
    scores.push((
        "l2".into(),
        w1.outer_iter()
            .map(|r| r.iter().map(|&w| f64::from(w * w)).sum::<f64>().sqrt())
            .collect(),
    ));
    let (prune_csv, prune_line) = pruning(&mlp, test, &scores, cfg.prune_step);
    let path = cfg.out.join("pruning.csv");
    write_file(&path, &prune_csv)?;
    files.push(path);
    let path = cfg.out.join("pruning.png");
    viz::save_png(
        &path,
        &csv_plot(
            &prune_csv,
            "pruning the first hidden layer, least important neurons first",
            "neurons removed (of 300)",
            "test accuracy (%)",
        )?,
    )?;
    log(&format!("wrote {} and pruning.csv", path.display()));
    files.push(path);

    Ok(Summary {
        accuracy,
        test_digits: test.len(),
        train_seconds,
        ms_per_explanation: times,
        threads: cfg.threads,
        max_path_count: max_count,
        overflowed,
        kappa: ex.kappa,
        thetas: ex.thetas(),
        active_inputs: ex.active_inputs.clone(),
        mask_coverage,
        class_mask_pixels,
        pruning: prune_line,
        perturbation: pert_line,
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn ms_per(t: Instant, n: usize) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0 / n.max(1) as f64
}

fn write_file(path: &Path, text: &str) -> klrp::Result<()> {
    std::fs::write(path, text).map_err(|source| klrp::Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Checks that the klrp network computes the same logits as the training code.
fn check_network_matches(net: &Network, mlp: &Mlp, x: ArrayView2<'_, f32>) -> klrp::Result<()> {
    let a = net.forward(&x.to_owned().into_dyn())?;
    let b = mlp.logits(x);
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
    if diff > 1e-3 {
        return Err(klrp::Error::invalid(format!(
            "klrp network and training code disagree by {diff}"
        )));
    }
    Ok(())
}

fn image(row: ndarray::ArrayView1<'_, f64>, (rows, cols): (usize, usize)) -> Array2<f64> {
    row.to_owned()
        .into_shape_with_order((rows, cols))
        .expect("rows · cols pixels")
}

/// The picture of one digit's explanations: digit | real | boolean | counting | viterbi.
fn explanation_cells(
    digit: ndarray::ArrayView1<'_, f32>,
    maps: [ndarray::ArrayView1<'_, f64>; 4],
    shape: (usize, usize),
) -> Vec<RgbImage> {
    let d = image(digit.mapv(f64::from).view(), shape);
    vec![
        viz::heatmap_rgb(
            d.view(),
            Colormap::GrayR,
            Scale::Range { min: 0.0, max: 1.0 },
        ),
        viz::heatmap_rgb(
            image(maps[0], shape).view(),
            Colormap::Bwr,
            Scale::Symmetric,
        ),
        viz::heatmap_rgb(
            image(maps[1], shape).view(),
            Colormap::GrayR,
            Scale::Range { min: 0.0, max: 1.0 },
        ),
        viz::heatmap_rgb(
            image(maps[2], shape).view(),
            Colormap::Viridis,
            Scale::Log1p,
        ),
        viz::heatmap_rgb(image(maps[3], shape).view(), Colormap::Hot, Scale::MinMax),
    ]
}

fn explanation_grid(
    x: &Array2<f32>,
    y: &[usize],
    maps: &[Array2<f64>],
    shape: (usize, usize),
) -> klrp::Result<RgbImage> {
    let rows: Vec<Vec<RgbImage>> = (0..x.nrows())
        .map(|i| {
            explanation_cells(
                x.row(i),
                [
                    maps[0].row(i),
                    maps[1].row(i),
                    maps[2].row(i),
                    maps[3].row(i),
                ],
                shape,
            )
        })
        .collect();
    Grid::new(rows)
        .with_scale(4)
        .with_gap(6)
        .with_column_titles(["digit", "real", "boolean", "counting", "viterbi"])
        .with_row_labels(y.iter().map(|c| c.to_string()))
        .render()
}

fn class_mask_grid(
    and: &[Vec<bool>],
    or: &[Vec<bool>],
    seen: &[usize; 10],
    (rows, cols): (usize, usize),
) -> klrp::Result<RgbImage> {
    let cell = |m: &Vec<bool>, c: usize| {
        let a = if seen[c] == 0 {
            Array2::from_elem((rows, cols), f64::NAN)
        } else {
            Array2::from_shape_fn((rows, cols), |(r, q)| f64::from(u8::from(m[r * cols + q])))
        };
        viz::heatmap_rgb(
            a.view(),
            Colormap::GrayR,
            Scale::Range { min: 0.0, max: 1.0 },
        )
    };
    Grid::new(vec![
        (0..10).map(|c| cell(&and[c], c)).collect(),
        (0..10).map(|c| cell(&or[c], c)).collect(),
    ])
    .with_scale(3)
    .with_gap(6)
    .with_column_titles((0..10).map(|c| c.to_string()))
    .with_row_labels(["∧ all", "∨ any"])
    .render()
}

fn class_frequency_grid(
    hits: &[Vec<usize>],
    seen: &[usize; 10],
    (rows, cols): (usize, usize),
) -> klrp::Result<RgbImage> {
    let cells: Vec<RgbImage> = (0..10)
        .map(|c| {
            let a = Array2::from_shape_fn((rows, cols), |(r, q)| {
                if seen[c] == 0 {
                    f64::NAN
                } else {
                    hits[c][r * cols + q] as f64 / seen[c] as f64
                }
            });
            viz::heatmap_rgb(
                a.view(),
                Colormap::Viridis,
                Scale::Range { min: 0.0, max: 1.0 },
            )
        })
        .collect();
    let bar = Colormap::Viridis.bar(cols * 6, 8);
    let grid = Grid::new(vec![cells])
        .with_scale(3)
        .with_gap(6)
        .with_title("share of the class's test digits whose Boolean mask holds the pixel")
        .with_column_titles((0..10).map(|c| format!("{c} ({})", seen[c])))
        .render()?;
    // A colour bar under the grid: 0 on the left, 1 on the right.
    let (lw, lh) = viz::text_size("0", 2);
    let mut out = RgbImage::new(grid.width(), grid.height() + lh + 16, viz::WHITE);
    out.blit(&grid, 0, 0);
    let y = grid.height() as i64 + 2;
    let x = 4 + lw as i64 + 8;
    out.draw_text(4, y, "0", viz::BLACK, 2);
    out.blit(&bar.upscale(1), x, y + 3);
    out.draw_text(x + bar.width() as i64 + 8, y, "1", viz::BLACK, 2);
    Ok(out)
}

/// The order in which pixels are removed: by `key` descending, ties in the random order `perm`.
fn order_by<K: PartialOrd + Copy>(key: &[K], perm: &[usize]) -> Vec<usize> {
    let mut o = perm.to_vec();
    o.sort_by(|&a, &b| {
        key[b]
            .partial_cmp(&key[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    o
}

/// The perturbation curves as CSV (`removed` and one column per order in
/// [`PERTURBATION_COLUMNS`]), and a one-line summary.
///
/// Orders: each semiring's relevance, highest first, ties in a random order (the same random
/// permutation per digit for every order). For Boolean that means the mask's pixels first in
/// random order, then the rest: ordering within the mask by Counting would make the Boolean
/// curve the Counting curve by construction (the mask is exactly where the count is non-zero),
/// so the Boolean curve measures the mask alone. `random` is a random order of all pixels,
/// `random_ink` a random order of the digit's non-zero pixels followed by the rest — the fairer
/// baseline, since setting a background pixel to 0 changes nothing.
fn perturbation(
    mlp: &Mlp,
    x: &Array2<f32>,
    y: &[usize],
    maps: &[Array2<f64>],
    steps: &[usize],
    rng: &mut SplitMix64,
) -> (String, String) {
    let (n, d) = x.dim();
    let mut orders: Vec<Vec<Vec<usize>>> = vec![Vec::with_capacity(n); PERTURBATION_COLUMNS.len()];
    for i in 0..n {
        let mut perm: Vec<usize> = (0..d).collect();
        rng.shuffle(&mut perm);
        orders[0].push(order_by(maps[0].row(i).as_slice().expect("row"), &perm));
        orders[1].push(order_by(maps[1].row(i).as_slice().expect("row"), &perm));
        orders[2].push(order_by(maps[2].row(i).as_slice().expect("row"), &perm));
        orders[3].push(order_by(maps[3].row(i).as_slice().expect("row"), &perm));
        orders[4].push(perm.clone());
        let ink: Vec<u8> = x.row(i).iter().map(|&v| u8::from(v > 0.0)).collect();
        orders[5].push(order_by(&ink, &perm));
    }
    let base: Vec<f32> = mlp
        .logits(x.view())
        .outer_iter()
        .zip(y)
        .map(|(r, &c)| r[c])
        .collect();
    let mut table = vec![vec![0.0f64; orders.len()]; steps.len()];
    for (m, order) in orders.iter().enumerate() {
        for (si, &k) in steps.iter().enumerate() {
            let mut xp = x.clone();
            for (i, o) in order.iter().enumerate() {
                for &p in o.iter().take(k) {
                    xp[[i, p]] = 0.0;
                }
            }
            let logits = mlp.logits(xp.view());
            let drop: f64 = logits
                .outer_iter()
                .zip(y)
                .zip(&base)
                .map(|((r, &c), &b)| f64::from(b - r[c]))
                .sum::<f64>()
                / n.max(1) as f64;
            table[si][m] = drop;
        }
    }
    let mut csv = format!("removed,{}\n", PERTURBATION_COLUMNS.join(","));
    for (si, &k) in steps.iter().enumerate() {
        let vals: Vec<String> = table[si].iter().map(|v| format!("{v:.4}")).collect();
        csv.push_str(&format!("{k},{}\n", vals.join(",")));
    }
    let at = steps
        .iter()
        .position(|&k| k >= 20)
        .unwrap_or(steps.len() - 1);
    let line = format!(
        "perturbation: removing the {} most relevant pixels lowers the target logit (mean over {n} digits; mean logit {:.1}) by {}",
        steps[at],
        base.iter().map(|&b| f64::from(b)).sum::<f64>() / n.max(1) as f64,
        PERTURBATION_COLUMNS
            .iter()
            .zip(&table[at])
            .map(|(c, v)| format!("{c} {v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (csv, line)
}

/// Pruning curves as CSV (`removed` and one accuracy column per ranking, in percent) and a
/// one-line summary. Each ranking removes its least important neurons first.
fn pruning(
    mlp: &Mlp,
    test: &Mnist,
    scores: &[(String, Vec<f64>)],
    step: usize,
) -> (String, String) {
    let hidden = mlp.weights[0].nrows();
    let steps: Vec<usize> = (0..hidden).step_by(step.max(1)).collect();
    let mut table = vec![vec![0.0f64; scores.len()]; steps.len()];
    for (m, (_, score)) in scores.iter().enumerate() {
        let mut order: Vec<usize> = (0..hidden).collect();
        order.sort_by(|&a, &b| {
            score[a]
                .partial_cmp(&score[b])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        for (si, &k) in steps.iter().enumerate() {
            let pruned = mlp.without_hidden1(&order[..k]);
            table[si][m] = 100.0 * pruned.accuracy(test.images.view(), &test.labels);
        }
    }
    let mut csv = format!(
        "removed,{}\n",
        scores
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    for (si, &k) in steps.iter().enumerate() {
        let vals: Vec<String> = table[si].iter().map(|v| format!("{v:.2}")).collect();
        csv.push_str(&format!("{k},{}\n", vals.join(",")));
    }
    // Mean accuracy over all steps (the area under each curve) decides which ranking keeps the
    // network working longest.
    let mean: Vec<f64> = (0..scores.len())
        .map(|m| table.iter().map(|r| r[m]).sum::<f64>() / steps.len() as f64)
        .collect();
    let best = (0..scores.len())
        .max_by(|&a, &b| mean[a].total_cmp(&mean[b]))
        .unwrap_or(0);
    let worst = (0..scores.len())
        .min_by(|&a, &b| mean[a].total_cmp(&mean[b]))
        .unwrap_or(0);
    let half = steps
        .iter()
        .position(|&k| k >= hidden / 2)
        .unwrap_or(steps.len() - 1);
    let line = format!(
        "pruning: with {} of {hidden} neurons removed, test accuracy is {}; mean accuracy over all steps: best {} ({:.1}%), worst {} ({:.1}%)",
        steps[half],
        scores
            .iter()
            .zip(&table[half])
            .map(|((n, _), v)| format!("{n} {v:.1}%"))
            .collect::<Vec<_>>()
            .join(", "),
        scores[best].0,
        mean[best],
        scores[worst].0,
        mean[worst]
    );
    (csv, line)
}

/// A line plot of a CSV table whose first column is x and the others are series.
fn csv_plot(csv: &str, title: &str, x_label: &str, y_label: &str) -> klrp::Result<RgbImage> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let mut plot = LinePlot::new(title, x_label, y_label);
    for (c, name) in header.iter().enumerate().skip(1) {
        let (color, dashed) = series_style(name);
        let pts = rows.iter().map(|r| (r[0], r[c])).collect();
        let mut s = Series::new(name.replace('_', " "), color, pts);
        if dashed {
            s = s.dashed();
        }
        plot = plot.with_series(s);
    }
    plot.render(900, 520)
}

/// One colour per method across the plots; baselines dashed.
fn series_style(name: &str) -> (viz::Rgb, bool) {
    match name {
        "real" => (PALETTE[3], false),
        "boolean" => ([40, 40, 40], false),
        "counting" => (PALETTE[2], false),
        "viterbi" => (PALETTE[1], false),
        "l1" => (PALETTE[0], true),
        "l2" => (PALETTE[4], true),
        "random" => (PALETTE[7], true),
        "random_ink" => (PALETTE[5], true),
        _ => (PALETTE[9], false),
    }
}
