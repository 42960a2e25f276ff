//! Layers with several inputs: `Add` (residual sums), `Concat` (along channels) and `Mul` (by a
//! gate), and their shares, one [`Shares`] per operand.
//!
//! `Add`'s shares are those of an averaging layer, chosen by the rule the composite assigns
//! (its `sum` rule): proportional `d_bk = a_bk / stab_ε(z_k)` (Zennit's `Norm`, ε = 1e-6, for the
//! real composites; ε = 0 with `d = 0` where `z_k = 0` under [`Composite::k_lrp`]), or max-abs
//! `d_bk = |a_bk| / (max_b' |a_b'k| + δ)` under [`Composite::viterbi`].
//!
//! [`Composite::k_lrp`]: crate::Composite::k_lrp
//! [`Composite::viterbi`]: crate::Composite::viterbi

use super::{Layer, LayerKind};
use crate::error::{Error, Result};
use crate::rules::{Rule, stabilized_recip};
use crate::shares::Shares;
use crate::tensor::Tensor;
use crate::tensor::elementwise;
use ndarray::{Axis, IxDyn};

/// Per-sample shapes of a batch list, or an error if one is not a batch.
fn sample_shapes<'a>(inputs: &[&'a Tensor], layer: &str) -> Result<Vec<&'a [usize]>> {
    inputs
        .iter()
        .enumerate()
        .map(|(b, x)| {
            if x.ndim() == 0 || x.shape()[0] == 0 {
                Err(Error::shape(
                    format!("{layer} operand {b} (a batch)"),
                    &[1],
                    x.shape(),
                ))
            } else {
                Ok(&x.shape()[1..])
            }
        })
        .collect()
}

/// [`Error::ShapeMismatch`] unless every batch has the first one's batch size.
fn same_batch(inputs: &[&Tensor], layer: &str) -> Result<()> {
    let n = inputs[0].shape()[0];
    for (b, x) in inputs.iter().enumerate().skip(1) {
        if x.shape()[0] != n {
            return Err(Error::shape(
                format!("{layer} operand {b} batch size"),
                &[n],
                &[x.shape()[0]],
            ));
        }
    }
    Ok(())
}

/// The element-wise sum of two or more inputs of one shape (a residual connection, ONNX `Add`).
///
/// ```
/// use klrp::layers::{Add, Layer};
/// use ndarray::array;
/// let (a, b) = (array![[1.0_f32, 2.0]].into_dyn(), array![[3.0_f32, -1.0]].into_dyn());
/// assert_eq!(Add.forward_multi(&[&a, &b])?, array![[4.0_f32, 1.0]].into_dyn());
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Add;

impl Layer for Add {
    fn name(&self) -> String {
        "Add".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Add
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_multi(&[input])
    }
    fn output_shape_multi(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() < 2 {
            return Err(Error::shape(
                "Add operands (two or more)",
                &[2],
                &[inputs.len()],
            ));
        }
        for (b, s) in inputs.iter().enumerate().skip(1) {
            if s != &inputs[0] {
                return Err(Error::shape(
                    format!("Add operand {b} (every operand has operand 0's shape)"),
                    inputs[0],
                    s,
                ));
            }
        }
        Ok(inputs[0].to_vec())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_multi(&[input])
    }
    fn forward_multi(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.output_shape_multi(&sample_shapes(inputs, "Add")?)?;
        same_batch(inputs, "Add")?;
        let mut sum = elementwise::zip_map(inputs[0], inputs[1], |a, b| a + b);
        for x in &inputs[2..] {
            sum = elementwise::zip_map(&sum, x, |a, b| a + b);
        }
        Ok(sum)
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let mut s = self.shares_multi(&[input], output, rule)?;
        Ok(s.remove(0))
    }
    fn shares_multi(
        &self,
        inputs: &[&Tensor],
        output: &Tensor,
        rule: &Rule,
    ) -> Result<Vec<Shares<'_>>> {
        self.output_shape_multi(&sample_shapes(inputs, "Add")?)?;
        same_batch(inputs, "Add")?;
        if output.shape() != inputs[0].shape() {
            return Err(Error::shape(
                "Add output",
                inputs[0].shape(),
                output.shape(),
            ));
        }
        let proportional = |epsilon: f32| {
            let q = elementwise::map(output, |z| stabilized_recip(z, epsilon));
            inputs
                .iter()
                .map(|a| {
                    Shares::Elementwise(elementwise::zip_map(a, &q, |a, q| a * q).into_shared())
                })
                .collect()
        };
        match rule {
            Rule::Proportional(r) => Ok(proportional(r.epsilon())),
            Rule::Epsilon(r) => Ok(proportional(r.epsilon())),
            Rule::Zero(_) => Ok(proportional(0.0)),
            Rule::MaxAbs(r) => {
                let mut max = elementwise::map(inputs[0], f32::abs);
                for a in &inputs[1..] {
                    max = elementwise::zip_map(&max, a, |m, a| m.max(a.abs()));
                }
                let q = elementwise::map(&max, |m| 1.0 / (m + r.delta()));
                Ok(inputs
                    .iter()
                    .map(|a| {
                        Shares::Elementwise(
                            elementwise::zip_map(a, &q, |a, q| a.abs() * q).into_shared(),
                        )
                    })
                    .collect())
            }
            other => Err(Error::Unsupported(format!(
                "rule {} on Add (use proportional, epsilon, zero or max-abs)",
                other.name()
            ))),
        }
    }
}

/// Concatenation along the channel axis (the first axis after the batch; ONNX `Concat` with
/// `axis = 1`): every operand's relevance is its slice of the output's, unchanged.
///
/// ```
/// use klrp::layers::{Concat, Layer};
/// assert_eq!(Concat.output_shape_multi(&[&[2, 4, 4], &[3, 4, 4]])?, vec![5, 4, 4]);
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Concat;

impl Layer for Concat {
    fn name(&self) -> String {
        "Concat".into()
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Concat
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_multi(&[input])
    }
    fn output_shape_multi(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        let Some(first) = inputs.first() else {
            return Err(Error::shape("Concat operands (one or more)", &[1], &[0]));
        };
        if first.is_empty() {
            return Err(Error::shape("Concat operand 0 ([C, …])", &[1], first));
        }
        let mut channels = 0usize;
        for (b, s) in inputs.iter().enumerate() {
            if s.len() != first.len() || s[1..] != first[1..] {
                let mut want = first.to_vec();
                if let (Some(w), Some(&c)) = (want.first_mut(), s.first()) {
                    *w = c;
                }
                return Err(Error::shape(
                    format!("Concat operand {b} (all but the channel axis as operand 0)"),
                    &want,
                    s,
                ));
            }
            channels = channels
                .checked_add(s[0])
                .ok_or_else(|| Error::invalid("Concat: channel count overflows"))?;
        }
        let mut out = first.to_vec();
        out[0] = channels;
        Ok(out)
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_multi(&[input])
    }
    fn forward_multi(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.output_shape_multi(&sample_shapes(inputs, "Concat")?)?;
        same_batch(inputs, "Concat")?;
        let views: Vec<_> = inputs.iter().map(|x| x.view()).collect();
        ndarray::concatenate(Axis(1), &views).map_err(|e| Error::invalid(format!("Concat: {e}")))
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let mut s = self.shares_multi(&[input], output, rule)?;
        Ok(s.remove(0))
    }
    fn shares_multi(
        &self,
        inputs: &[&Tensor],
        output: &Tensor,
        _rule: &Rule,
    ) -> Result<Vec<Shares<'_>>> {
        let out = self.output_shape_multi(&sample_shapes(inputs, "Concat")?)?;
        same_batch(inputs, "Concat")?;
        let want = crate::tensor::with_batch(inputs[0].shape()[0], &out);
        if output.shape() != want.as_slice() {
            return Err(Error::shape("Concat output", &want, output.shape()));
        }
        let mut start = 0;
        Ok(inputs
            .iter()
            .map(|x| {
                let s = Shares::ChannelSlice { start };
                start += x.shape()[1];
                s
            })
            .collect())
    }
}

/// The element-wise product of two operands, one of them a gate (squeeze-and-excitation
/// `x·s`, SiLU exported as `x·σ(x)`, hard swish as `x·hardsigmoid(x)`). The gate is treated as a
/// constant weight: all relevance goes to the other operand unchanged, none to the gate.
///
/// The gate may have size 1 along any axis of the other operand (per-channel gates `[C, 1, 1]`
/// on `[C, H, W]`); the output has the other operand's shape. Which operand is the gate:
/// [`Mul::gate`] says it; [`Mul::auto`] (the default) lets the graph pick the one operand
/// produced by a gate layer ([`Layer::is_gate`]: [`Sigmoid`](super::Sigmoid),
/// [`HardSigmoid`](super::HardSigmoid)) when the network is built.
///
/// ```
/// use klrp::layers::{Layer, Mul};
/// use ndarray::array;
/// let (x, s) = (array![[[[1.0_f32, 2.0]], [[3.0, 4.0]]]].into_dyn(), array![[[[0.5_f32]], [[2.0]]]].into_dyn());
/// let y = Mul::gate(1).forward_multi(&[&x, &s])?;
/// assert_eq!(y, array![[[[0.5_f32, 1.0]], [[6.0, 8.0]]]].into_dyn());
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mul {
    gate: Option<usize>,
}

impl Mul {
    /// A product whose operand `operand` (0 or 1) is the gate.
    pub fn gate(operand: usize) -> Self {
        Mul {
            gate: Some(operand),
        }
    }

    /// A product whose gate is the operand a gate layer produces, found when the graph is built.
    pub fn auto() -> Self {
        Mul { gate: None }
    }

    /// The gate operand, once known.
    pub fn gate_operand(&self) -> Option<usize> {
        self.gate
    }

    fn gate_or_error(&self) -> Result<usize> {
        match self.gate {
            Some(g) if g < 2 => Ok(g),
            Some(g) => Err(Error::invalid(format!(
                "Mul gate operand {g} (a Mul has operands 0 and 1)"
            ))),
            None => Err(Error::invalid(
                "Mul does not know its gate operand: build it in a graph after a Sigmoid or \
                 HardSigmoid operand, or say it with Mul::gate(i)",
            )),
        }
    }
}

/// Whether a gate of per-sample shape `gate` broadcasts to `other` (same rank, each axis 1 or equal).
fn gate_fits(gate: &[usize], other: &[usize]) -> bool {
    gate.len() == other.len() && gate.iter().zip(other).all(|(&g, &o)| g == 1 || g == o)
}

impl Layer for Mul {
    fn name(&self) -> String {
        match self.gate {
            Some(g) => format!("Mul(gate: operand {g})"),
            None => "Mul(gate: auto)".into(),
        }
    }
    fn kind(&self) -> LayerKind {
        LayerKind::Mul
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.output_shape_multi(&[input])
    }
    fn output_shape_multi(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        if inputs.len() != 2 {
            return Err(Error::shape(
                "Mul operands (exactly two)",
                &[2],
                &[inputs.len()],
            ));
        }
        let g = self.gate_or_error()?;
        let (gate, other) = (inputs[g], inputs[1 - g]);
        if !gate_fits(gate, other) {
            return Err(Error::shape(
                format!(
                    "Mul gate operand {g} (size 1 or operand {}'s along every axis)",
                    1 - g
                ),
                other,
                gate,
            ));
        }
        Ok(other.to_vec())
    }
    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_multi(&[input])
    }
    fn forward_multi(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        self.output_shape_multi(&sample_shapes(inputs, "Mul")?)?;
        same_batch(inputs, "Mul")?;
        let g = self.gate_or_error()?;
        let (gate, other) = (inputs[g], inputs[1 - g]);
        let gate = gate
            .broadcast(IxDyn(other.shape()))
            .ok_or_else(|| Error::shape("Mul gate", other.shape(), gate.shape()))?;
        Ok(if g == 1 { other * &gate } else { &gate * other })
    }
    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let mut s = self.shares_multi(&[input], output, rule)?;
        Ok(s.remove(0))
    }
    fn shares_multi(
        &self,
        inputs: &[&Tensor],
        output: &Tensor,
        _rule: &Rule,
    ) -> Result<Vec<Shares<'_>>> {
        self.output_shape_multi(&sample_shapes(inputs, "Mul")?)?;
        same_batch(inputs, "Mul")?;
        let g = self.gate_or_error()?;
        if output.shape() != inputs[1 - g].shape() {
            return Err(Error::shape(
                "Mul output",
                inputs[1 - g].shape(),
                output.shape(),
            ));
        }
        let mut shares = vec![Shares::Pass, Shares::Pass];
        shares[g] = Shares::Disconnected;
        Ok(shares)
    }
    fn resolve_inputs(&mut self, producers: &[Option<&dyn Layer>]) -> Result<()> {
        if self.gate.is_some() {
            return self.gate_or_error().map(|_| ());
        }
        if producers.len() != 2 {
            return Err(Error::shape(
                "Mul operands (exactly two)",
                &[2],
                &[producers.len()],
            ));
        }
        let gates: Vec<usize> = (0..2)
            .filter(|&b| producers[b].is_some_and(|l| l.is_gate()))
            .collect();
        match gates[..] {
            [g] => {
                self.gate = Some(g);
                Ok(())
            }
            _ => Err(Error::invalid(format!(
                "Mul cannot tell its gate: {} of its operands come from a gate layer (Sigmoid, \
                 HardSigmoid); say it with Mul::gate(i)",
                gates.len()
            ))),
        }
    }
}
