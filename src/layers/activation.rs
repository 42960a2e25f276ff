//! Element-wise layers: `ReLU`, `Clip` (ReLU6), `LeakyReLU`, `Sigmoid`, `SiLU`, `HardSigmoid`,
//! `HardSwish`, `Gelu`, `Tanh`, `Dropout`, `IdentityLayer`. Relevance passes through them unchanged.

use super::{Layer, LayerKind};
use crate::error::{Error, Result};
use crate::rules::Rule;
use crate::shares::Shares;
use crate::tensor::Tensor;

/// `max(x, 0)`, element-wise. Relevance passes unchanged (Zennit's `Pass`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReLU;

impl Layer for ReLU {
    fn name(&self) -> String {
        "ReLU".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Activation
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(crate::tensor::elementwise::map(input, |x| x.max(0.0)))
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        Ok(Shares::Pass)
    }
    fn near_kinks(&self, inputs: &[&Tensor]) -> Result<usize> {
        super::near_zero_count(inputs)
    }
}

/// Dropout: the identity at inference.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dropout;

/// The identity (also what a normalisation becomes once fused into the layer before it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IdentityLayer;

macro_rules! identity_layer {
    ($t:ty, $name:expr) => {
        impl Layer for $t {
            fn name(&self) -> String {
                $name.into()
            }
            fn kind(&self) -> LayerKind {
                LayerKind::Identity
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                Ok(input.clone())
            }
            fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
                Ok(Shares::Pass)
            }
        }
    };
}
identity_layer!(Dropout, "Dropout");
identity_layer!(IdentityLayer, "Identity");

/// An element-wise activation `f`: the output has the input's shape, relevance passes unchanged
/// (Zennit's `Pass`), wherever `f` saturates.
macro_rules! elementwise_activation {
    ($t:ty, |$s:ident, $x:ident| $f:expr, $name:expr, gate = $gate:expr) => {
        elementwise_activation!(
            $t,
            |$s, $x| $f,
            $name,
            gate = $gate,
            kink_at_zero = |s| false
        );
    };
    (
        $t:ty,
        |$s:ident, $x:ident| $f:expr,
        $name:expr,
        gate = $gate:expr,
        kink_at_zero = |$k:ident| $kink:expr
    ) => {
        impl Layer for $t {
            fn name(&self) -> String {
                let $s = self;
                let _ = $s;
                $name
            }
            fn kind(&self) -> LayerKind {
                LayerKind::Activation
            }
            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }
            fn forward(&self, input: &Tensor) -> Result<Tensor> {
                let $s = *self;
                let _ = $s;
                Ok(crate::tensor::elementwise::map(input, move |$x| $f))
            }
            fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
                Ok(Shares::Pass)
            }
            fn is_gate(&self) -> bool {
                $gate
            }
            fn near_kinks(&self, inputs: &[&Tensor]) -> Result<usize> {
                let $k = *self;
                let _ = $k;
                if $kink {
                    super::near_zero_count(inputs)
                } else {
                    Ok(0)
                }
            }
        }
    };
}

/// `min(max(x, min), max)`, element-wise (ONNX `Clip`; [`Clip::relu6`] is PyTorch's `ReLU6`).
/// Relevance passes unchanged, also where the clip saturates.
///
/// ```
/// use klrp::layers::{Clip, Layer};
/// let relu6 = Clip::relu6();
/// let y = relu6.forward(&ndarray::array![[-1.0_f32, 3.0, 7.0]].into_dyn())?;
/// assert_eq!(y, ndarray::array![[0.0_f32, 3.0, 6.0]].into_dyn());
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clip {
    min: f32,
    max: f32,
}

impl Clip {
    /// Clips to `[min, max]`; a bound may be infinite (no bound on that side).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a bound is NaN or `min > max`.
    pub fn new(min: f32, max: f32) -> Result<Self> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::invalid(format!(
                "Clip bounds must be ordered numbers, got [{min}, {max}]"
            )));
        }
        Ok(Clip { min, max })
    }

    /// PyTorch's `ReLU6`: clip to `[0, 6]`.
    pub fn relu6() -> Self {
        Clip { min: 0.0, max: 6.0 }
    }

    /// The bounds `(min, max)`.
    pub fn bounds(&self) -> (f32, f32) {
        (self.min, self.max)
    }
}
elementwise_activation!(
    Clip,
    |s, x| x.max(s.min).min(s.max),
    format!("Clip({}, {})", s.min, s.max),
    gate = false,
    // A bound at 0 is a kink where the output is 0 (ReLU6's lower bound); elsewhere the output
    // is the bound on both sides, and relevance does not jump (docs/semantics.md §9).
    kink_at_zero = |s| s.min == 0.0 || s.max == 0.0
);

/// `x` for `x ≥ 0`, `slope·x` otherwise (PyTorch `LeakyReLU`, default slope 0.01).
/// Relevance passes unchanged.
///
/// ```
/// use klrp::layers::{Layer, LeakyReLU};
/// let y = LeakyReLU::new(0.1)?.forward(&ndarray::array![[-2.0_f32, 3.0]].into_dyn())?;
/// assert_eq!(y, ndarray::array![[-0.2_f32, 3.0]].into_dyn());
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    slope: f32,
}

impl LeakyReLU {
    /// Leaky ReLU with the given negative slope.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `slope` is NaN or infinite.
    pub fn new(slope: f32) -> Result<Self> {
        if !slope.is_finite() {
            return Err(Error::NonFinite(format!("LeakyReLU slope {slope}")));
        }
        Ok(LeakyReLU { slope })
    }
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU { slope: 0.01 }
    }
}
elementwise_activation!(
    LeakyReLU,
    |s, x| if x >= 0.0 { x } else { s.slope * x },
    format!("LeakyReLU({})", s.slope),
    gate = false,
    kink_at_zero = |s| s.slope != 1.0
);

/// The logistic sigmoid `σ(x) = 1 / (1 + e^(−x))`. Relevance passes unchanged; as an operand of a
/// [`Mul`](super::Mul) it is recognised as the gate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sigmoid;
elementwise_activation!(
    Sigmoid,
    |s, x| sigmoid(x),
    "Sigmoid".to_string(),
    gate = true
);

/// `σ(x)`, computed without overflow for large `|x|`.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// SiLU (swish) `x·σ(x)` as one layer. Relevance passes unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SiLU;
elementwise_activation!(
    SiLU,
    |s, x| x * sigmoid(x),
    "SiLU".to_string(),
    gate = false
);

/// The hard sigmoid `max(0, min(1, alpha·x + beta))`; [`HardSigmoid::default`] is PyTorch's
/// (`alpha = 1/6`, `beta = 1/2`), ONNX's default is `alpha = 0.2`. Relevance passes unchanged;
/// as an operand of a [`Mul`](super::Mul) it is recognised as the gate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HardSigmoid {
    alpha: f32,
    beta: f32,
}

impl HardSigmoid {
    /// `max(0, min(1, alpha·x + beta))`.
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `alpha` or `beta` is NaN or infinite.
    pub fn new(alpha: f32, beta: f32) -> Result<Self> {
        if !(alpha.is_finite() && beta.is_finite()) {
            return Err(Error::NonFinite(format!(
                "HardSigmoid alpha {alpha}, beta {beta}"
            )));
        }
        Ok(HardSigmoid { alpha, beta })
    }
}

impl Default for HardSigmoid {
    fn default() -> Self {
        HardSigmoid {
            alpha: 1.0 / 6.0,
            beta: 0.5,
        }
    }
}
elementwise_activation!(
    HardSigmoid,
    |s, x| (s.alpha * x + s.beta).clamp(0.0, 1.0),
    format!("HardSigmoid({}, {})", s.alpha, s.beta),
    gate = true
);

/// PyTorch's hard swish `x · min(max(x + 3, 0), 6) / 6` as one layer. Relevance passes unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HardSwish;
elementwise_activation!(
    HardSwish,
    |s, x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
    "HardSwish".to_string(),
    gate = false
);

/// GELU: exact `x·Φ(x) = x·(1 + erf(x/√2))/2` (PyTorch's default), or its tanh approximation
/// `x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))/2` ([`Gelu::tanh`]). Relevance passes unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Gelu {
    tanh_approximation: bool,
}

impl Gelu {
    /// GELU with the tanh approximation (PyTorch `approximate="tanh"`).
    pub fn tanh() -> Self {
        Gelu {
            tanh_approximation: true,
        }
    }
}
elementwise_activation!(
    Gelu,
    |s, x| if s.tanh_approximation {
        0.5 * x * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
    } else {
        0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
    },
    if s.tanh_approximation {
        "GELU(tanh)".to_string()
    } else {
        "GELU".to_string()
    },
    gate = false
);

/// `tanh(x)`, element-wise. Relevance passes unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tanh;
elementwise_activation!(Tanh, |s, x| x.tanh(), "Tanh".to_string(), gate = false);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn apply(layer: &dyn Layer, xs: &[f32]) -> Vec<f32> {
        let x = ndarray::Array1::from(xs.to_vec())
            .insert_axis(ndarray::Axis(0))
            .into_dyn();
        layer.forward(&x).unwrap().iter().copied().collect()
    }

    #[test]
    fn forwards_match_their_definitions() {
        let xs = [-4.0_f32, -1.0, 0.0, 0.5, 3.0, 8.0];
        assert_eq!(apply(&Clip::relu6(), &xs), [0.0, 0.0, 0.0, 0.5, 3.0, 6.0]);
        assert_eq!(
            apply(&LeakyReLU::new(0.5).unwrap(), &xs),
            [-2.0, -0.5, 0.0, 0.5, 3.0, 8.0]
        );
        let hs = apply(&HardSigmoid::default(), &xs);
        for (h, want) in hs.iter().zip([0.0, 2.0 / 6.0, 0.5, 3.5 / 6.0, 1.0, 1.0]) {
            assert!((h - want).abs() < 1e-6, "hardsigmoid {hs:?}");
        }
        let hw = apply(&HardSwish, &xs);
        for ((&x, h), w) in xs.iter().zip(&hs).zip(&hw) {
            assert!((x * h - w).abs() < 1e-6, "hardswish({x}) = {w}");
        }
        let sg = apply(&Sigmoid, &[-100.0, 0.0, 2.0]);
        assert_eq!(sg[0], (-100.0_f32).exp() / (1.0 + (-100.0_f32).exp()));
        assert_eq!(sg[1], 0.5);
        assert!((sg[2] - 0.880_797).abs() < 1e-6);
        let si = apply(&SiLU, &[2.0]);
        assert!((si[0] - 2.0 * 0.880_797).abs() < 1e-5);
        // Φ(1) = 0.841345, the tanh form 0.841192.
        assert!((apply(&Gelu::default(), &[1.0])[0] - 0.841_345).abs() < 1e-6);
        assert!((apply(&Gelu::tanh(), &[1.0])[0] - 0.841_192).abs() < 1e-5);
        assert!((apply(&Tanh, &[1.0])[0] - 0.761_594).abs() < 1e-6);
    }

    #[test]
    fn bad_parameters_are_errors_and_gates_are_recognised() {
        assert!(Clip::new(1.0, 0.0).is_err());
        assert!(Clip::new(f32::NAN, 0.0).is_err());
        assert!(Clip::new(f32::NEG_INFINITY, 6.0).is_ok());
        assert!(LeakyReLU::new(f32::INFINITY).is_err());
        assert!(HardSigmoid::new(f32::NAN, 0.5).is_err());
        assert!(Sigmoid.is_gate() && HardSigmoid::default().is_gate());
        assert!(!SiLU.is_gate() && !ReLU.is_gate() && !Clip::relu6().is_gate());
        let x = array![[1.0_f32]].into_dyn();
        assert!(matches!(
            Tanh.shares(&x, &x, &Rule::from(crate::rules::ZeroRule)),
            Ok(Shares::Pass)
        ));
    }
}
