//! K-LRP on the smallest interesting network: a 2-3-3-2 ReLU MLP trained on XOR, drawn plain
//! and annotated in the Boolean, Counting, Viterbi and Real semirings (the picture of the
//! semiring-LRP report's Figures 4 and 5).
//!
//! ```text
//! cargo run --release --example xor                  # writes out/xor/network.png
//! cargo run --release --example xor -- --out DIR
//! ```
//!
//! The network is trained here in a few lines: full-batch gradient descent on the four XOR
//! points, softmax cross-entropy, He-initialised from fixed seeds (the first of 0, 1, 2, … whose
//! run learns XOR), so every run draws the same network. The figure explains the input `(1, 1)` (XOR false, class 0): every neuron carries its
//! relevance `R_j`, every connection `Θ(d_jk) ⊗ R_k`, and `R_j = ⊕_k Θ(d_jk) ⊗ R_k` holds
//! between the numbers drawn.

use klrp::layers::{Dense, Layer, ReLU};
use klrp::semiring::{Boolean, Counting, Real, Viterbi};
use klrp::viz::{self, Grid, NetworkDiagram, RgbImage};
use klrp::{Clamp01, Composite, Identity, Network, PerLayer, Threshold};
use ndarray::{Array1, Array2, array};
use std::path::PathBuf;
use std::process::ExitCode;

/// Layer sizes: 2 inputs, two hidden layers of 3 ReLU neurons, 2 classes (XOR false, true).
const SIZES: [usize; 4] = [2, 3, 3, 2];
/// Seeds tried for the initial weights, in order; the first run that learns XOR is kept (a tiny
/// ReLU network can start with dead neurons and miss a point).
const SEEDS: std::ops::Range<u64> = 0..100;
/// Gradient-descent steps and learning rate.
const STEPS: usize = 4000;
const LEARNING_RATE: f64 = 0.1;
/// Θ of the Boolean and Counting diagrams: a share counts when `d_jk ≥ θ`.
const THETA: f32 = 0.2;

/// SplitMix64 (the MNIST example's generator, five lines): the same seed gives the same
/// network on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A standard normal sample (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = |r: &mut Self| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (u1, u2) = (1.0 - u(self), u(self));
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// An MLP in `f64`: `weights[l]` is `[out, in]` (PyTorch layout), ReLU between layers.
struct Mlp {
    weights: Vec<Array2<f64>>,
    biases: Vec<Array1<f64>>,
}

impl Mlp {
    /// He initialisation: `w ~ N(0, 2 / fan_in)`, biases 0.
    fn new(rng: &mut SplitMix64) -> Self {
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        for w in SIZES.windows(2) {
            let std = (2.0 / w[0] as f64).sqrt();
            weights.push(Array2::from_shape_fn((w[1], w[0]), |_| std * rng.normal()));
            biases.push(Array1::zeros(w[1]));
        }
        Mlp { weights, biases }
    }

    /// Every layer's output for a batch `[N, 2]` (after ReLU except the last: the logits).
    fn forward(&self, x: &Array2<f64>) -> Vec<Array2<f64>> {
        let mut acts = vec![x.clone()];
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let mut z = acts[l].dot(&w.t()) + b;
            if l + 1 < self.weights.len() {
                z.mapv_inplace(|v| v.max(0.0));
            }
            acts.push(z);
        }
        acts
    }

    /// One full-batch gradient step of the mean softmax cross-entropy; returns the loss.
    fn step(&mut self, x: &Array2<f64>, y: &[usize]) -> f64 {
        let acts = self.forward(x);
        let n = x.nrows() as f64;
        let logits = acts.last().expect("output layer");
        let mut grad = logits.clone();
        let mut loss = 0.0;
        for (mut row, &t) in grad.rows_mut().into_iter().zip(y) {
            let max = row.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
            loss -= row[t].ln() / n;
            row[t] -= 1.0;
            row /= n;
        }
        for l in (0..self.weights.len()).rev() {
            let gw = grad.t().dot(&acts[l]);
            let gb = grad.sum_axis(ndarray::Axis(0));
            let back = grad.dot(&self.weights[l]);
            // ReLU: the gradient passes where the layer input was positive.
            grad = back * acts[l].mapv(|a| if a > 0.0 { 1.0 } else { 0.0 });
            self.weights[l] -= &(LEARNING_RATE * gw);
            self.biases[l] -= &(LEARNING_RATE * gb);
        }
        loss
    }

    fn to_network(&self) -> klrp::Result<Network> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            layers.push(Box::new(Dense::new(
                w.mapv(|v| v as f32),
                Some(b.mapv(|v| v as f32)),
            )?));
            if l + 1 < self.weights.len() {
                layers.push(Box::new(ReLU));
            }
        }
        Network::new([SIZES[0]], layers)
    }
}

fn main() -> ExitCode {
    let mut out = PathBuf::from("out/xor");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--out", Some(dir)) => out = PathBuf::from(dir),
            _ => {
                eprintln!("usage: cargo run --release --example xor -- [--out DIR]");
                return ExitCode::from(2);
            }
        }
    }
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &std::path::Path) -> klrp::Result<()> {
    // XOR with inputs ±1 (so that no input is 0 and irrelevant by default): class 1 when the
    // signs differ.
    let x = array![[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]];
    let y = [0, 1, 1, 0];
    let mut learned = None;
    for seed in SEEDS {
        let mut mlp = Mlp::new(&mut SplitMix64(seed));
        let mut loss = f64::NAN;
        for _ in 0..STEPS {
            loss = mlp.step(&x, &y);
        }
        let net = mlp.to_network()?;
        let logits = net.forward(&x.mapv(|v| v as f32).into_dyn())?;
        let predicted: Vec<usize> = logits
            .outer_iter()
            .map(|r| usize::from(r[1] > r[0]))
            .collect();
        if predicted == y && loss < 0.05 {
            println!(
                "trained {} on XOR: seed {seed}, {STEPS} gradient steps, loss {loss:.4}, predictions {predicted:?}",
                SIZES.map(|s| s.to_string()).join("-")
            );
            learned = Some(net);
            break;
        }
    }
    let Some(net) = learned else {
        return Err(klrp::Error::invalid(format!(
            "no seed in {SEEDS:?} learned XOR"
        )));
    };

    // Explain (1, −1) → class 1.
    let sample = array![[1.0_f32, -1.0]].into_dyn();
    let target = 1;
    let theta = PerLayer::new(Threshold::new(THETA)?);
    let max = 8;
    let trace = net.trace(&sample)?;
    let plain = NetworkDiagram::forward(&net, &trace, 0, max)?
        .with_connection_labels(false)
        .with_title("the network: activations for x = (1, -1), weights");
    let boolean = NetworkDiagram::<Boolean>::explain(
        &net,
        &sample,
        target,
        &Composite::k_lrp(),
        &theta,
        max,
    )?
    .with_title(format!("Boolean: LRP-0 shares, Θ(d) = [d ≥ {THETA}]"));
    let counting = NetworkDiagram::<Counting>::explain(
        &net,
        &sample,
        target,
        &Composite::k_lrp(),
        &theta,
        max,
    )?
    .with_title(format!("Counting: LRP-0 shares, Θ(d) = [d ≥ {THETA}]"));
    let viterbi = NetworkDiagram::<Viterbi>::explain(
        &net,
        &sample,
        target,
        &Composite::viterbi(),
        &PerLayer::new(Clamp01),
        max,
    )?
    .with_title("Viterbi: max-abs shares, Θ = clamp to [0, 1]");
    // Classical LRP-0 starts from the target's logit rather than 1.
    let real_composite = Composite::k_lrp();
    let identity = PerLayer::new(Identity);
    let real_rel = net.propagate::<Real<f32>, _>(
        &trace,
        trace.output_init(&[target])?,
        &real_composite,
        &identity,
        true,
    )?;
    let real =
        NetworkDiagram::relevance(&net, &trace, &real_rel, &real_composite, &identity, 0, max)?
            .with_title("Real: LRP-0 from the logit (classical LRP)");

    let panels: Vec<RgbImage> = vec![
        plain.render()?,
        boolean.render()?,
        counting.render()?,
        viterbi.render()?,
        real.render()?,
    ];
    let mut it = panels.into_iter();
    let rows = vec![
        it.by_ref().take(2).collect(),
        it.by_ref().take(2).collect(),
        it.collect(),
    ];
    let figure = Grid::new(rows).with_gap(12).render()?;
    std::fs::create_dir_all(out).map_err(|source| klrp::Error::Io {
        path: out.display().to_string(),
        source,
    })?;
    let path = out.join("network.png");
    viz::save_png(&path, &figure)?;
    let real_path = out.join("network_real.png");
    viz::save_png(&real_path, &real.render()?)?;
    println!("input relevance of x = (1, -1), target class {target}:");
    let inputs = |labels: Vec<String>| labels.join("  ");
    for (name, values) in [
        ("boolean", labels_of(&boolean)),
        ("counting", labels_of(&counting)),
        ("viterbi", labels_of(&viterbi)),
        ("real", labels_of(&real)),
    ] {
        println!("  {name:<9} {}", inputs(values));
    }
    println!("wrote {} and {}", path.display(), real_path.display());
    Ok(())
}

/// The labels of the input column's neurons.
fn labels_of<K: klrp::viz::DiagramValue>(d: &NetworkDiagram<K>) -> Vec<String> {
    d.columns()[0]
        .neurons
        .iter()
        .map(|n| format!("x{} = {}", n.index, n.value.label()))
        .collect()
}
