//! Model architectures built in code, with weights loaded by name.
//!
//! May import: `error`, `io`, `layers`, `network`, `rng` (docs/architecture.md, "Layers").
//!
//! # VGG-16 (torchvision)
//!
//! [`vgg16`] builds torchvision's `vgg16` (configuration D, no batch norm) for `3 × 224 × 224`
//! inputs. Its layer indices follow torchvision's module indices, so the names in a torchvision
//! state dict (`features.0.weight`, …, `classifier.6.bias`) map onto layers directly:
//!
//! | network index | torchvision module | layer |
//! |---|---|---|
//! | 0–30 | `features.0` – `features.30` | conv 3×3 (padding 1) at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; ReLU after each; max pool 2×2 at 4, 9, 16, 23, 30 |
//! | 31 | `avgpool` | adaptive average pool to 7×7 (the identity on 224 × 224 inputs) |
//! | 32 | (`torch.flatten(x, 1)` in `forward`) | flatten |
//! | 33–39 | `classifier.0` – `classifier.6` | dense 25088→4096 (33), ReLU (34), dropout (35), dense 4096→4096 (36), ReLU (37), dropout (38), dense 4096→1000 (39) |
//!
//! Network index `i` is `features.i` for `i ≤ 30` and `classifier.(i − 33)` for `i ≥ 33`
//! ([`vgg16_module_name`]).
//!
//! To get torchvision's weights as `.safetensors` (run where they can be downloaded):
//!
//! ```python
//! import torchvision, safetensors.torch
//! m = torchvision.models.vgg16(weights="IMAGENET1K_V1")
//! safetensors.torch.save_file(m.state_dict(), "vgg16.safetensors")
//! ```

use crate::error::{Error, Result};
use crate::io::safetensors::SafeTensors;
use crate::layers::{AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU};
use crate::network::Network;
/// The generator of the random weights (it lives in [`crate::rng`]).
pub use crate::rng::SplitMix64;
use ndarray::{Array1, Array2, Array4, Ix1, Ix2, Ix4};

/// The channel configuration of VGG-16 ("D"): output channels, `0` for a max pool.
const VGG16_CFG: [usize; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// The seed of the random weights of `vgg16(None)`.
pub const VGG16_SEED: u64 = 0x6b6c_7270_7667_6716;

/// The torchvision module path of VGG-16 network layer `index` (`"features.0"`, `"avgpool"`,
/// `"flatten"`, `"classifier.6"`), or `None` past the last layer.
///
/// ```
/// use klrp::models::vgg16_module_name;
/// assert_eq!(vgg16_module_name(28).as_deref(), Some("features.28"));
/// assert_eq!(vgg16_module_name(31).as_deref(), Some("avgpool"));
/// assert_eq!(vgg16_module_name(39).as_deref(), Some("classifier.6"));
/// assert_eq!(vgg16_module_name(40), None);
/// ```
pub fn vgg16_module_name(index: usize) -> Option<String> {
    match index {
        0..=30 => Some(format!("features.{index}")),
        31 => Some("avgpool".into()),
        32 => Some("flatten".into()),
        33..=39 => Some(format!("classifier.{}", index - 33)),
        _ => None,
    }
}

fn load1(w: &SafeTensors, name: &str, n: usize) -> Result<Array1<f32>> {
    w.tensor_with_shape(name, &[n])?
        .into_dimensionality::<Ix1>()
        .map_err(|e| Error::invalid(format!("{name}: {e}")))
}

/// torchvision's VGG-16 for `3 × 224 × 224` inputs (see the [module docs](self) for the layer
/// indices).
///
/// With `weights`, every parameter is read by its torchvision name (`features.0.weight`, …,
/// `classifier.6.bias`; `F32`, `F16`, `BF16` or `F64`); other tensors in the file are ignored.
/// Without, weights are random with the fixed seed [`VGG16_SEED`]: He-uniform
/// (`U(−√(6 / fan_in), √(6 / fan_in))`, variance `2 / fan_in`) for every convolution and dense
/// layer, biases 0 — deterministic, for tests and benchmarks.
///
/// # Errors
/// [`Error::InvalidArgument`] naming a missing tensor; [`Error::ShapeMismatch`] naming a tensor of
/// the wrong shape; [`Error::Unsupported`] for a tensor of a non-float dtype.
pub fn vgg16(weights: Option<&SafeTensors>) -> Result<Network> {
    let mut rng = SplitMix64::new(VGG16_SEED);
    let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(40);
    let mut c_in = 3;
    for &c in &VGG16_CFG {
        if c == 0 {
            layers.push(Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0))?));
            continue;
        }
        let i = layers.len();
        let (w, b) = match weights {
            Some(st) => {
                let name = format!("features.{i}.weight");
                let w = st
                    .tensor_with_shape(&name, &[c, c_in, 3, 3])?
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| Error::invalid(format!("{name}: {e}")))?;
                (w, load1(st, &format!("features.{i}.bias"), c)?)
            }
            None => {
                let bound = (6.0 / (c_in * 9) as f32).sqrt();
                let w = Array4::from_shape_simple_fn((c, c_in, 3, 3), || rng.symmetric(bound));
                (w, Array1::zeros(c))
            }
        };
        layers.push(Box::new(Conv2d::new(w, Some(b))?.with_padding((1, 1))?));
        layers.push(Box::new(ReLU));
        c_in = c;
    }
    layers.push(Box::new(AdaptiveAvgPool2d::new((7, 7))?));
    layers.push(Box::new(Flatten));
    for (k, (n_in, n_out)) in [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]
        .into_iter()
        .enumerate()
    {
        let idx = 3 * k;
        let (w, b) = match weights {
            Some(st) => {
                let name = format!("classifier.{idx}.weight");
                let w = st
                    .tensor_with_shape(&name, &[n_out, n_in])?
                    .into_dimensionality::<Ix2>()
                    .map_err(|e| Error::invalid(format!("{name}: {e}")))?;
                (w, load1(st, &format!("classifier.{idx}.bias"), n_out)?)
            }
            None => {
                let bound = (6.0 / n_in as f32).sqrt();
                let w = Array2::from_shape_simple_fn((n_out, n_in), || rng.symmetric(bound));
                (w, Array1::zeros(n_out))
            }
        };
        layers.push(Box::new(Dense::new(w, Some(b))?));
        if k < 2 {
            layers.push(Box::new(ReLU));
            layers.push(Box::new(Dropout));
        }
    }
    Network::new([3, 224, 224], layers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_normals_look_normal() {
        let mut r = SplitMix64::new(1);
        let n = 20_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((var - 1.0).abs() < 0.05, "{var}");
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
