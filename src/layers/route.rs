//! Routing layers: [`Reshape`] (data order unchanged, relevance passes) and [`Route`] (output
//! element `k` reads input element `map[k]`: transpose, slice, gather, one output of a split).
//! Relevance follows the elements back without Θ (docs/semantics.md, "Routing layers").

use super::{Layer, LayerKind, check_batch, check_output};
use crate::error::{Error, Result};
use crate::kernels;
use crate::rules::Rule;
use crate::shares::Shares;
use crate::tensor::join_dims;
use crate::tensor::{Tensor, with_batch};
use ndarray::IxDyn;
use std::borrow::Cow;

/// Dimensions for a name or message: `[2, 58, 28, 28]`.
fn dims(shape: &[usize]) -> String {
    format!("{shape:?}")
}

/// Gives every sample a new shape with the same elements in the same (row-major) order: ONNX
/// `Reshape`, `Squeeze`, `Unsqueeze`, PyTorch `x.view(N, …)`. The batch axis stays first.
///
/// `y = x` element for element; relevance passes unchanged ([`Shares::Pass`]).
///
/// ```
/// use klrp::layers::{Layer, Reshape};
/// let r = Reshape::new(&[2, 3]).unwrap();
/// assert_eq!(r.output_shape(&[6]).unwrap(), [2, 3]);
/// assert!(r.output_shape(&[5]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    shape: Vec<usize>,
}

impl Reshape {
    /// A reshape of every sample to `shape` (batch axis excluded).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `shape` is empty or has a zero dimension.
    pub fn new(shape: &[usize]) -> Result<Self> {
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::invalid(format!(
                "Reshape to {}: a sample needs at least one axis and no empty one",
                dims(shape)
            )));
        }
        Ok(Reshape {
            shape: shape.to_vec(),
        })
    }

    /// The per-sample output shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
}

impl Layer for Reshape {
    fn name(&self) -> String {
        format!("Reshape(→ {})", dims(&self.shape))
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Reshape
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (from, to) = (
            input.iter().product::<usize>(),
            self.shape.iter().product::<usize>(),
        );
        if from != to {
            return Err(Error::invalid(format!(
                "Reshape of [N, {}] to [N, {}]: {from} elements per sample cannot become {to}",
                join_dims(input),
                join_dims(&self.shape)
            )));
        }
        Ok(self.shape.clone())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        let sample = input.shape().get(1..).unwrap_or(&[]);
        self.output_shape(sample)?;
        let n = input.shape().first().copied().unwrap_or(0);
        input
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&with_batch(n, &self.shape)))
            .map_err(|e| Error::invalid(format!("Reshape: {e}")))
    }
    fn shares(&self, _: &Tensor, _: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        Ok(Shares::Pass)
    }
}

/// Moves elements within each sample along a fixed index map: output element `k` (flat, within
/// a sample) is input element `map[k]` (ONNX `Transpose`, `Slice`, `Gather` with constant
/// indices, one output of `Split`). The map is per sample, shared by every sample of a batch.
///
/// `y[s, k] = x[s, map[k]]`; relevance `R_j = ⊕_{k : map[k] = j} R_k` without Θ
/// ([`Shares::Route`]): an input read twice gets the ⊕ of both, one read by none gets 0.
///
/// ```
/// use klrp::layers::{Layer, Route};
/// use klrp::ndarray::array;
/// // The transpose of a 2 × 3 sample.
/// let t = Route::new("Transpose", &[2, 3], &[3, 2], vec![0, 3, 1, 4, 2, 5]).unwrap();
/// let x = array![[[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0]]].into_dyn();
/// assert_eq!(t.forward(&x).unwrap(), array![[[1.0_f32, 4.0], [2.0, 5.0], [3.0, 6.0]]].into_dyn());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    op: String,
    input: Vec<usize>,
    output: Vec<usize>,
    map: Vec<usize>,
}

impl Route {
    /// A route named `op` (for [`name`](Layer::name)) from samples of shape `input` to samples
    /// of shape `output` (batch axis excluded), output element `k` reading input element
    /// `map[k]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a shape is empty or has a zero dimension, if `map` does not
    /// hold one index per output element or an index is outside the input.
    pub fn new(op: &str, input: &[usize], output: &[usize], map: Vec<usize>) -> Result<Self> {
        for shape in [input, output] {
            if shape.is_empty() || shape.contains(&0) {
                return Err(Error::invalid(format!(
                    "{op} of {} to {}: a sample needs at least one axis and no empty one",
                    dims(input),
                    dims(output)
                )));
            }
        }
        let (n_in, n_out): (usize, usize) = (input.iter().product(), output.iter().product());
        if map.len() != n_out {
            return Err(Error::invalid(format!(
                "{op} to {}: {} indices for {n_out} output elements",
                dims(output),
                map.len()
            )));
        }
        if let Some(k) = map.iter().position(|&j| j >= n_in) {
            return Err(Error::invalid(format!(
                "{op}: output element {k} reads element {} of an input of {n_in}",
                map[k]
            )));
        }
        Ok(Route {
            op: op.into(),
            input: input.to_vec(),
            output: output.to_vec(),
            map,
        })
    }

    /// The per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.input
    }

    /// The per-sample output shape.
    pub fn shape(&self) -> &[usize] {
        &self.output
    }

    /// The index map: output element `k` reads input element `map()[k]`.
    pub fn map(&self) -> &[usize] {
        &self.map
    }

    /// Whether the map reads every input element exactly once (a permutation: `Transpose`).
    pub fn is_permutation(&self) -> bool {
        let n_in: usize = self.input.iter().product();
        if n_in != self.map.len() {
            return false;
        }
        let mut seen = vec![false; n_in];
        self.map
            .iter()
            .all(|&j| !std::mem::replace(&mut seen[j], true))
    }
}

impl Layer for Route {
    fn name(&self) -> String {
        format!(
            "{}({} → {})",
            self.op,
            dims(&self.input),
            dims(&self.output)
        )
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Reshape
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input != self.input.as_slice() {
            return Err(Error::shape(
                format!("{} input", self.name()),
                &self.input,
                input,
            ));
        }
        Ok(self.output.clone())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        check_batch(input, &self.input, &format!("{} input", self.name()))?;
        kernels::route_forward(input, &self.map, &self.output)
    }
    fn shares(&self, input: &Tensor, output: &Tensor, _: &Rule) -> Result<Shares<'_>> {
        check_batch(input, &self.input, &format!("{} input", self.name()))?;
        check_output(
            input,
            output,
            &self.output,
            &format!("{} output", self.name()),
        )?;
        Ok(Shares::Route {
            sources: Cow::Borrowed(&self.map),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ZeroRule;
    use ndarray::array;

    /// The map a layer's shares hand to the kernels (layers see no semiring: the relevance in
    /// each semiring is checked in `kernels::route` and `tests/it/routing.rs`).
    fn sources(layer: &dyn Layer, x: &Tensor) -> Option<Vec<usize>> {
        let y = layer.forward(x).unwrap();
        match layer.shares(x, &y, &Rule::Zero(ZeroRule)).unwrap() {
            Shares::Route { sources } => Some(sources.into_owned()),
            Shares::Pass => None,
            other => panic!("unexpected shares {other:?}"),
        }
    }

    /// A 2 × 3 transpose by hand: forward, and the shares are its map.
    #[test]
    fn transpose_by_hand() {
        let t = Route::new("Transpose", &[2, 3], &[3, 2], vec![0, 3, 1, 4, 2, 5]).unwrap();
        assert!(t.is_permutation());
        assert_eq!(t.name(), "Transpose([2, 3] → [3, 2])");
        let x = array![
            [[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]],
            [[7.0, 8.0, 9.0], [10.0, 11.0, 12.0]]
        ]
        .into_dyn();
        let y = t.forward(&x).unwrap();
        assert_eq!(
            y,
            array![
                [[1.0f32, 4.0], [2.0, 5.0], [3.0, 6.0]],
                [[7.0, 10.0], [8.0, 11.0], [9.0, 12.0]]
            ]
            .into_dyn()
        );
        assert_eq!(sources(&t, &x), Some(vec![0, 3, 1, 4, 2, 5]));
    }

    /// A gather reading input 1 twice and input 0 never.
    #[test]
    fn gather_with_a_repeated_index_by_hand() {
        let g = Route::new("Gather", &[3], &[3], vec![1, 2, 1]).unwrap();
        assert!(!g.is_permutation());
        let x = array![[10.0f32, 20.0, 30.0], [1.0, 2.0, 3.0]].into_dyn();
        assert_eq!(
            g.forward(&x).unwrap(),
            array![[20.0f32, 30.0, 20.0], [2.0, 3.0, 2.0]].into_dyn()
        );
        assert_eq!(sources(&g, &x), Some(vec![1, 2, 1]));
    }

    /// A reshape keeps the elements in order and passes relevance; a size mismatch is an error
    /// naming both sizes.
    #[test]
    fn reshape_passes_and_refuses_a_size_change() {
        let r = Reshape::new(&[3, 2]).unwrap();
        let x = array![[[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]].into_dyn();
        let y = r.forward(&x).unwrap();
        assert_eq!(
            y,
            array![[[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]]].into_dyn()
        );
        assert_eq!(sources(&r, &x), None);
        let e = Reshape::new(&[5, 5])
            .unwrap()
            .output_shape(&[6, 4])
            .unwrap_err();
        assert!(
            e.to_string().contains(
                "Reshape of [N, 6, 4] to [N, 5, 5]: 24 elements per sample cannot become 25"
            ),
            "{e}"
        );
        assert!(r.forward(&array![[1.0f32, 2.0]].into_dyn()).is_err());
        assert!(Reshape::new(&[]).is_err());
        assert!(Reshape::new(&[2, 0]).is_err());
    }

    /// Bad maps and inputs are errors, never panics.
    #[test]
    fn bad_routes_are_errors() {
        assert!(Route::new("Gather", &[3], &[2], vec![0, 3]).is_err());
        assert!(Route::new("Gather", &[3], &[2], vec![0]).is_err());
        assert!(Route::new("Gather", &[3], &[0], vec![]).is_err());
        let g = Route::new("Gather", &[3], &[2], vec![0, 2]).unwrap();
        assert!(g.output_shape(&[4]).is_err());
        assert!(g.forward(&array![[1.0f32, 2.0]].into_dyn()).is_err());
        let x = array![[1.0f32, 2.0, 3.0]].into_dyn();
        let y = g.forward(&x).unwrap();
        assert!(g.shares(&x, &x, &Rule::Zero(ZeroRule)).is_err());
        assert!(g.shares(&x, &y, &Rule::Zero(ZeroRule)).is_ok());
    }
}
