//! `Dense`: the fully connected layer `z = W a + b`, and its LRP shares.

use super::{ChannelAffine, Layer, LayerKind, check_batch};
use crate::error::{Error, Result, ensure_finite};
use crate::kernels;
use crate::rules::{Rule, linear_share_terms};
use crate::shares::{Connectivity, LinearMap, Shares, WeightMap};
use crate::tensor::Tensor;
use ndarray::{Array1, Array2};

/// A fully connected layer: `z_k = Σ_j w_kj a_j + b_k` (PyTorch `Linear`, weight `[out, in]`).
///
/// Its shares are formed by the assigned [`Rule`] (see [`crate::rules`]).
///
/// ```
/// use klrp::layers::{Dense, Layer};
/// use ndarray::{array, Array2};
/// let dense = Dense::new(array![[1.0, 2.0], [0.0, -1.0]], Some(array![0.5, 0.0])).unwrap();
/// let z = dense.forward(&array![[1.0_f32, 1.0]].into_dyn()).unwrap();
/// assert_eq!(z, array![[3.5_f32, -1.0]].into_dyn());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    weight: Array2<f32>,
    bias: Option<Array1<f32>>,
}

impl Dense {
    /// A dense layer with `weight` of shape `[out, in]` and an optional `bias` of length `out`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the bias length differs from `out` or a dimension is zero;
    /// [`Error::NonFinite`] if a parameter is NaN or infinite.
    pub fn new(weight: Array2<f32>, bias: Option<Array1<f32>>) -> Result<Self> {
        let (out, inp) = weight.dim();
        if out == 0 || inp == 0 {
            return Err(Error::shape("Dense weight [out, in]", &[1, 1], &[out, inp]));
        }
        ensure_finite(weight.iter(), || "Dense weight".into())?;
        if let Some(b) = &bias {
            if b.len() != out {
                return Err(Error::shape("Dense bias", &[out], &[b.len()]));
            }
            ensure_finite(b.iter(), || "Dense bias".into())?;
        }
        Ok(Dense {
            weight: weight.as_standard_layout().into_owned(),
            bias,
        })
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Array2<f32> {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }

    /// Inputs per sample.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Outputs per sample.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        check_batch(x, &[self.in_features()], "Dense input")
    }
}

impl LinearMap for Dense {
    fn connectivity(&self, input: &[usize]) -> Result<Connectivity<'_>> {
        if input != [self.in_features()] {
            return Err(Error::shape("Dense input", &[self.in_features()], input));
        }
        Ok(Connectivity::Dense {
            weight: self.weight.view(),
            bias: self.bias.as_ref().and_then(|b| b.as_slice()),
        })
    }

    fn forward_mapped(
        &self,
        x: &Tensor,
        weight: WeightMap,
        bias: Option<WeightMap>,
    ) -> Result<Tensor> {
        self.check(x)?;
        let n = x.shape()[0];
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().unwrap_or(&[]);
        let mut z = kernels::dense_forward(&self.weight.view(), xs, n, weight)?;
        if let (Some(bmap), Some(b)) = (bias, &self.bias) {
            for zs in z.chunks_exact_mut(self.out_features()) {
                for (z, &b) in zs.iter_mut().zip(b) {
                    *z += bmap.apply(b);
                }
            }
        }
        Tensor::from_shape_vec(vec![n, self.out_features()], z)
            .map_err(|e| Error::invalid(format!("Dense output: {e}")))
    }

    fn max_abs_forward(&self, x: &Tensor) -> Result<Tensor> {
        self.check(x)?;
        kernels::max_abs_forward(
            &self.connectivity(&[self.in_features()])?,
            x,
            &[self.out_features()],
        )
    }
}

impl Layer for Dense {
    fn name(&self) -> String {
        format!("Dense({} → {})", self.in_features(), self.out_features())
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Dense
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != [self.in_features()] {
            return Err(Error::shape("Dense input", &[self.in_features()], input));
        }
        Ok(vec![self.out_features()])
    }

    fn param_count(&self) -> usize {
        self.weight.len() + self.bias.as_ref().map_or(0, |b| b.len())
    }

    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_mapped(input, WeightMap::Identity, Some(WeightMap::Identity))
    }

    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        self.check(input)?;
        super::check_output(input, output, &[self.out_features()], "Dense output")?;
        let terms = linear_share_terms(self, input, output, rule)?;
        Ok(Shares::Linear {
            connectivity: self.connectivity(&[self.in_features()])?,
            terms,
        })
    }

    fn fuse_channel_affine(&mut self, affine: &ChannelAffine) -> Result<()> {
        super::fold_channel_affine(&mut self.weight, &mut self.bias, affine, "Dense")
    }
}
