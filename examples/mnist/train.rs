//! Training the MLP 784-300-100-10 (ReLU): a small, clear loop, not part of the library.
//!
//! Choices, and why:
//! - **He initialisation** (`w ~ N(0, 2 / fan_in)`, zero biases): keeps ReLU activations at a
//!   stable scale through the layers from the first step.
//! - **Softmax cross-entropy** on the logits, the standard loss for classification; LRP then
//!   explains the logits (the network's output before softmax).
//! - **Adam** (lr 1e-3, β = 0.9 / 0.999) on minibatches of 64 with a **cosine** learning-rate
//!   decay to zero: converges in a few epochs without tuning and ends in a quiet minimum.
//! - **Random shifts** of each training digit by up to one pixel per axis, drawn afresh every
//!   epoch: with only 8,000 digits the network otherwise memorises them; the shifts are the
//!   cheapest augmentation that respects what a digit is and buy about one point of test
//!   accuracy.
//! - **ndarray `dot`** (the `matrixmultiply` kernels) for the matrix products: a whole epoch on
//!   8,000 digits takes a fraction of a second.
//! - Everything random comes from one [`SplitMix64`] seeded by the caller: the same seed gives
//!   the same network on every machine.

use crate::rng::SplitMix64;
use klrp::Network;
use klrp::layers::{Dense, Layer, ReLU};
use ndarray::{Array1, Array2, ArrayView2, Axis, s};

/// A fully connected ReLU network; `weights[l]` is `[out, in]` (PyTorch's layout, as
/// [`Dense`] takes it), ReLU after every layer but the last.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// `[out, in]` per layer.
    pub weights: Vec<Array2<f32>>,
    /// `[out]` per layer.
    pub biases: Vec<Array1<f32>>,
}

impl Mlp {
    /// He-initialised weights for layer sizes `sizes` (`[784, 300, 100, 10]`), zero biases.
    pub fn he_init(sizes: &[usize], rng: &mut SplitMix64) -> Self {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for w in sizes.windows(2) {
            let (fan_in, fan_out) = (w[0], w[1]);
            let std = (2.0 / fan_in as f64).sqrt();
            weights.push(Array2::from_shape_fn((fan_out, fan_in), |_| {
                (rng.normal() * std) as f32
            }));
            biases.push(Array1::zeros(fan_out));
        }
        Mlp { weights, biases }
    }

    /// Every layer's pre-activation `z` and post-activation `a` for a batch `[B, in]`:
    /// `acts[0]` is the input, `acts[l + 1] = relu(zs[l])` (the last one is the logits, no ReLU).
    fn forward_all(&self, x: ArrayView2<'_, f32>) -> (Vec<Array2<f32>>, Vec<Array2<f32>>) {
        let mut acts = vec![x.to_owned()];
        let mut zs = Vec::new();
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let z = acts[l].dot(&w.t()) + b;
            let a = if l < last {
                z.mapv(|v| v.max(0.0))
            } else {
                z.clone()
            };
            zs.push(z);
            acts.push(a);
        }
        (zs, acts)
    }

    /// The logits `[B, classes]` for a batch `[B, in]`.
    pub fn logits(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut a = x.to_owned();
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            a = a.dot(&w.t()) + b;
            if l < last {
                a.mapv_inplace(|v| v.max(0.0));
            }
        }
        a
    }

    /// The predicted class of every row of `x` (in blocks of 1,000 rows).
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Vec<usize> {
        let mut out = Vec::with_capacity(x.nrows());
        for block in x.axis_chunks_iter(Axis(0), 1000) {
            out.extend(
                self.logits(block)
                    .outer_iter()
                    .map(|r| argmax(r.iter().copied())),
            );
        }
        out
    }

    /// The fraction of rows of `x` classified as `labels` says.
    pub fn accuracy(&self, x: ArrayView2<'_, f32>, labels: &[u8]) -> f64 {
        let pred = self.predict(x);
        let right = pred
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == usize::from(**l))
            .count();
        right as f64 / labels.len().max(1) as f64
    }

    /// The same network with the first hidden layer's neurons `removed` switched off: their
    /// incoming weights, biases and outgoing weights set to zero, so they output 0 and pass
    /// nothing on.
    pub fn without_hidden1(&self, removed: &[usize]) -> Mlp {
        let mut m = self.clone();
        for &j in removed {
            m.weights[0].row_mut(j).fill(0.0);
            m.biases[0][j] = 0.0;
            m.weights[1].column_mut(j).fill(0.0);
        }
        m
    }

    /// The network as a klrp [`Network`]: `Dense → ReLU → … → Dense`.
    ///
    /// # Errors
    /// As [`Dense::new`] and [`Network::new`] (never for a trained network of finite weights).
    pub fn to_network(&self) -> klrp::Result<Network> {
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let last = self.weights.len() - 1;
        for (l, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            layers.push(Box::new(Dense::new(w.clone(), Some(b.clone()))?));
            if l < last {
                layers.push(Box::new(ReLU));
            }
        }
        Network::new([self.weights[0].ncols()], layers)
    }
}

/// The index of the largest value (the first one on ties).
pub fn argmax(values: impl Iterator<Item = f32>) -> usize {
    values
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Layer sizes, input first.
    pub sizes: Vec<usize>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Adam's peak learning rate (decayed to 0 by a cosine over all steps).
    pub lr: f64,
    /// Largest random shift, in pixels per axis, applied to every training image (0: none).
    pub max_shift: usize,
    /// Image height and width, for the shifts.
    pub image: (usize, usize),
    /// Seed of everything random (initialisation, order, shifts).
    pub seed: u64,
    /// Train on at most this many samples (the first ones); `None`: all.
    pub limit: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            sizes: vec![784, 300, 100, 10],
            epochs: 10,
            batch: 64,
            lr: 1e-3,
            max_shift: 1,
            image: (28, 28),
            seed: 0x5EED_2024,
            limit: None,
        }
    }
}

/// What one epoch did.
#[derive(Clone, Copy, Debug)]
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's minibatches.
    pub loss: f64,
    /// Accuracy on the (augmented) minibatches seen during the epoch.
    pub train_accuracy: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
}

/// Adam's moment estimates for one parameter array.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(n: usize) -> Self {
        Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One Adam step on `param` with gradient `grad` at step `t` (1-based), learning rate `lr`.
    fn step<'a>(
        &mut self,
        param: impl Iterator<Item = &'a mut f32>,
        grad: impl Iterator<Item = f32>,
        t: i32,
        lr: f64,
    ) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let lr = lr as f32;
        for (((p, g), m), v) in param
            .zip(grad)
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
}

/// Copies image `src` (a flat `rows × cols` row) into `dst`, shifted by `(dy, dx)` pixels,
/// filling uncovered pixels with 0 (background).
fn shifted(src: &[f32], dst: &mut [f32], (rows, cols): (usize, usize), dy: isize, dx: isize) {
    dst.fill(0.0);
    for y in 0..rows as isize {
        let sy = y - dy;
        if sy < 0 || sy >= rows as isize {
            continue;
        }
        for x in 0..cols as isize {
            let sx = x - dx;
            if sx >= 0 && sx < cols as isize {
                dst[(y as usize) * cols + x as usize] = src[(sy as usize) * cols + sx as usize];
            }
        }
    }
}

/// Trains an MLP on `images` (`[N, in]`, values in `[0, 1]`) and `labels`, calling `progress`
/// after every epoch.
pub fn train(
    images: ArrayView2<'_, f32>,
    labels: &[u8],
    cfg: &TrainConfig,
    mut progress: impl FnMut(&EpochReport),
) -> Mlp {
    let n = cfg.limit.map_or(images.nrows(), |l| l.min(images.nrows()));
    let images = images.slice(s![..n, ..]);
    let mut rng = SplitMix64::new(cfg.seed);
    let mut mlp = Mlp::he_init(&cfg.sizes, &mut rng);
    let classes = *cfg.sizes.last().unwrap_or(&10);
    let mut w_mom: Vec<Moments> = mlp.weights.iter().map(|w| Moments::new(w.len())).collect();
    let mut b_mom: Vec<Moments> = mlp.biases.iter().map(|b| Moments::new(b.len())).collect();
    let steps_per_epoch = n.div_ceil(cfg.batch);
    let total_steps = (steps_per_epoch * cfg.epochs).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0;
    let dim = images.ncols();
    let shift_ok = cfg.image.0 * cfg.image.1 == dim;
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        rng.shuffle(&mut order);
        let (mut loss_sum, mut right) = (0.0f64, 0usize);
        for chunk in order.chunks(cfg.batch) {
            t += 1;
            let b = chunk.len();
            let mut x = Array2::<f32>::zeros((b, dim));
            for (row, &i) in chunk.iter().enumerate() {
                let src = images.row(i);
                let src = src.as_slice().map_or_else(|| src.to_vec(), <[f32]>::to_vec);
                let mut dst = x.row_mut(row);
                let dst = dst.as_slice_mut().expect("a fresh array is contiguous");
                if cfg.max_shift > 0 && shift_ok {
                    let m = cfg.max_shift as isize;
                    let dy = rng.below(2 * cfg.max_shift + 1) as isize - m;
                    let dx = rng.below(2 * cfg.max_shift + 1) as isize - m;
                    shifted(&src, dst, cfg.image, dy, dx);
                } else {
                    dst.copy_from_slice(&src);
                }
            }
            let (zs, acts) = mlp.forward_all(x.view());
            // Softmax cross-entropy: dL/dz = (softmax(z) − one_hot(y)) / B.
            let logits = acts.last().expect("at least one layer");
            let mut delta = Array2::<f32>::zeros((b, classes));
            for (r, (&i, z)) in chunk.iter().zip(logits.outer_iter()).enumerate() {
                let y = usize::from(labels[i]);
                let max = z.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let exps: Vec<f32> = z.iter().map(|&v| (v - max).exp()).collect();
                let sum: f32 = exps.iter().sum();
                loss_sum -= f64::from((exps[y] / sum).max(1e-30).ln());
                if argmax(z.iter().copied()) == y {
                    right += 1;
                }
                for (c, e) in exps.iter().enumerate() {
                    let p = e / sum;
                    delta[[r, c]] = (p - if c == y { 1.0 } else { 0.0 }) / b as f32;
                }
            }
            let lr = cfg.lr
                * 0.5
                * (1.0 + (std::f64::consts::PI * (t - 1) as f64 / total_steps as f64).cos());
            for l in (0..mlp.weights.len()).rev() {
                let grad_w = delta.t().dot(&acts[l]); // [out, in]
                let grad_b = delta.sum_axis(Axis(0));
                if l > 0 {
                    let mut back = delta.dot(&mlp.weights[l]); // [B, in]
                    back.zip_mut_with(&zs[l - 1], |d, &z| {
                        if z <= 0.0 {
                            *d = 0.0;
                        }
                    });
                    delta = back;
                }
                w_mom[l].step(mlp.weights[l].iter_mut(), grad_w.iter().copied(), t, lr);
                b_mom[l].step(mlp.biases[l].iter_mut(), grad_b.iter().copied(), t, lr);
            }
        }
        progress(&EpochReport {
            epoch,
            loss: loss_sum / n as f64,
            train_accuracy: right as f64 / n as f64,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    mlp
}
