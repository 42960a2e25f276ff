//! Network diagrams: a dense network drawn as columns of neurons joined by their connections,
//! annotated with its forward pass or with one K-LRP pass in any semiring.
//!
//! The data side ([`NetworkDiagram`], [`DiagramColumn`], [`DiagramNeuron`],
//! [`DiagramConnection`]) holds what is drawn: for a relevance diagram every shown neuron `j`
//! carries its relevance `R_j` (read from [`Relevance::layer`]) and every shown connection
//! `j → k` the value `Θ(d_jk) ⊗ R_k`, with `d_jk` evaluated from the layer's own
//! [`Shares::Linear`] terms exactly as the reference kernel does
//! (`d_jk = Σ_t p_t[j] · g_t(w_jk) · q_t[k]`, summed in term order). So
//! `R_j = ⊕_k Θ(d_jk) ⊗ R_k` holds between the numbers in the picture. The raster side
//! ([`NetworkDiagram::render`]) only draws those numbers.
//!
//! How values look is decided by the semiring's [`ValueStyle`] ([`DiagramValue`]): signed reals
//! red/blue, Boolean ⊤ highlighted, counts and strengths darker and wider when larger; the
//! semiring's zero is drawn faint. Columns wider than `max_neurons` show their most relevant
//! neurons and say how many are left out ("+ M more").

use super::{BLACK, Rgb, RgbImage, WHITE, contrast, text_size};
use crate::composite::Composite;
use crate::conversion::{Conversion, PerLayer};
use crate::error::{Error, Result};
use crate::layers::{Connectivity, LayerKind, Shares};
use crate::network::{Network, Relevance, Trace, one_hot};
use crate::semiring::{
    Boolean, Counting, FloatCounting, Fuzzy, LogCounting, Lukasiewicz, MaxPlus, Product, Real,
    Semiring, Tropical, Viterbi,
};
use ndarray::{ArrayD, IxDyn};
use num_traits::Float;
use std::fmt::Debug;

/// How the values of a semiring are drawn in a [`NetworkDiagram`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueStyle {
    /// Signed reals (classical LRP, weights, activations): red positive, blue negative, darker
    /// and wider with `|v| / max |v|`.
    Signed,
    /// Truth values (Boolean): ⊤ highlighted in red, ⊥ faint.
    Truth,
    /// Counts (path counts): darker and wider with `ln(1 + v) / ln(1 + max)`.
    Count,
    /// Non-negative strengths, larger is stronger (Viterbi, fuzzy): darker and wider with
    /// `v / max`.
    Strength,
    /// Costs, smaller is better (tropical min-plus): darker and wider with
    /// `(max − v) / (max − min)`.
    Cost,
    /// Scores of any sign, larger is better (max-plus): darker and wider with
    /// `(v − min) / (max − min)`.
    Score,
}

impl ValueStyle {
    /// How relevant a value is, for choosing the neurons a too-wide column shows: `|v|` for
    /// signed values, `−v` for costs, `v` otherwise (NaN counts as least relevant).
    pub fn salience(self, v: f64) -> f64 {
        let s = match self {
            ValueStyle::Signed => v.abs(),
            ValueStyle::Cost => -v,
            _ => v,
        };
        if s.is_nan() { f64::NEG_INFINITY } else { s }
    }

    /// The hue of strong values (signed values: of positive ones).
    fn hue(self) -> Rgb {
        match self {
            ValueStyle::Signed | ValueStyle::Truth => RED,
            ValueStyle::Count => BLUE,
            ValueStyle::Strength => GREEN,
            ValueStyle::Cost | ValueStyle::Score => PURPLE,
        }
    }
}

/// A semiring whose values a [`NetworkDiagram`] can draw: a style and a short label.
///
/// Implemented for every shipped semiring.
///
/// ```
/// use klrp::semiring::{Boolean, Counting, Real, Viterbi};
/// use klrp::viz::{DiagramValue, ValueStyle};
/// assert_eq!(Boolean(true).label(), "⊤");
/// assert_eq!(Counting(12).label(), "12");
/// assert_eq!(Viterbi(0.8125).label(), "0.81");
/// assert_eq!(Real(-1.5_f32).label(), "-1.5");
/// assert_eq!(<Counting as DiagramValue>::STYLE, ValueStyle::Count);
/// ```
pub trait DiagramValue: Semiring {
    /// How values are coloured and sized.
    const STYLE: ValueStyle;

    /// A label of at most about six characters: `⊤`/`⊥`, a count, a rounded number.
    fn label(&self) -> String;
}

impl<F: Float + Debug + Send + Sync + 'static> DiagramValue for Real<F> {
    const STYLE: ValueStyle = ValueStyle::Signed;
    fn label(&self) -> String {
        short_number(self.to_f64())
    }
}

impl DiagramValue for Boolean {
    const STYLE: ValueStyle = ValueStyle::Truth;
    fn label(&self) -> String {
        if self.0 { "⊤" } else { "⊥" }.into()
    }
}

impl DiagramValue for Counting {
    const STYLE: ValueStyle = ValueStyle::Count;
    fn label(&self) -> String {
        if self.is_overflow() {
            "max".into()
        } else {
            short_number(self.to_f64())
        }
    }
}

impl DiagramValue for FloatCounting {
    const STYLE: ValueStyle = ValueStyle::Count;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

impl DiagramValue for LogCounting {
    const STYLE: ValueStyle = ValueStyle::Count;
    fn label(&self) -> String {
        short_number(self.count())
    }
}

impl DiagramValue for Viterbi {
    const STYLE: ValueStyle = ValueStyle::Strength;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

impl DiagramValue for Fuzzy {
    const STYLE: ValueStyle = ValueStyle::Strength;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

impl DiagramValue for Lukasiewicz {
    const STYLE: ValueStyle = ValueStyle::Strength;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

impl DiagramValue for Tropical {
    const STYLE: ValueStyle = ValueStyle::Cost;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

impl DiagramValue for MaxPlus {
    const STYLE: ValueStyle = ValueStyle::Score;
    fn label(&self) -> String {
        short_number(self.0)
    }
}

/// A pair is drawn in the first component's style, labelled `a,b`.
impl<A: DiagramValue, B: DiagramValue> DiagramValue for Product<A, B> {
    const STYLE: ValueStyle = A::STYLE;
    fn label(&self) -> String {
        format!("{},{}", self.0.label(), self.1.label())
    }
}

/// `v` in at most three significant digits and about five characters: `0`, `0.41`, `-1.5`,
/// `12.3`, `417`, `1.2e5`, `∞`.
///
/// ```
/// use klrp::viz::short_number;
/// assert_eq!(short_number(0.0), "0");
/// assert_eq!(short_number(0.4149), "0.41");
/// assert_eq!(short_number(3.0), "3");
/// assert_eq!(short_number(-12.34), "-12.3");
/// assert_eq!(short_number(123456.0), "1.2e5");
/// assert_eq!(short_number(0.0042), "0.004");
/// assert_eq!(short_number(f64::INFINITY), "∞");
/// ```
pub fn short_number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞" } else { "-∞" }.into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let s = if !(1e-3..99_999.5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 99.95 {
        format!("{v:.0}")
    } else if a >= 9.995 {
        format!("{v:.1}")
    } else if a >= 0.00995 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    // Drop trailing zeros of the fraction ("1.50" → "1.5", "2.00" → "2"), not of an exponent.
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.replace(".0e", "e")
    }
}

/// What a diagram's numbers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiagramKind {
    /// The forward pass: neurons show their activation `a_j`, connections their weight `w_jk`.
    Forward,
    /// One K-LRP pass: neurons show their relevance `R_j`, connections `Θ(d_jk) ⊗ R_k`.
    Relevance,
}

/// One drawn neuron: its index in its layer and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagramNeuron<K> {
    /// The neuron's flat index in its layer (the column's activation or relevance tensor).
    pub index: usize,
    /// Its relevance `R_j` (relevance diagrams) or activation `a_j` (forward diagrams).
    pub value: K,
}

/// One column of neurons: a layer of the network, the input of a dense layer or the output of
/// the last one.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagramColumn<K> {
    /// `"input"`, `"hidden 1"`, …, `"output"`.
    pub name: String,
    /// The network index `i` whose input this column is (`Relevance::layer(i)`,
    /// `Trace::activation(i)`); `layers().len()` for the output.
    pub layer: usize,
    /// The number of neurons of the layer.
    pub size: usize,
    /// The neurons drawn, in index order: all of them, or the `max_neurons` most relevant.
    pub neurons: Vec<DiagramNeuron<K>>,
}

impl<K> DiagramColumn<K> {
    /// How many neurons are not drawn.
    pub fn left_out(&self) -> usize {
        self.size.saturating_sub(self.neurons.len())
    }

    /// The label under a truncated column, `"+ M more"`, or `None` if every neuron is drawn.
    pub fn more_label(&self) -> Option<String> {
        let m = self.left_out();
        (m > 0).then(|| format!("+ {m} more"))
    }

    /// The position of neuron `index` among the drawn ones.
    fn position(&self, index: usize) -> Option<usize> {
        self.neurons.binary_search_by_key(&index, |n| n.index).ok()
    }

    /// The short name of a neuron: `x3` (input), `h7` (hidden), `y1` (output).
    fn neuron_name(&self, index: usize, last: bool) -> String {
        let prefix = if self.layer == 0 || self.name == "input" {
            "x"
        } else if last {
            "y"
        } else {
            "h"
        };
        format!("{prefix}{index}")
    }
}

/// One drawn connection `j → k` between neighbouring columns.
#[derive(Clone, Debug, PartialEq)]
pub struct DiagramConnection<K> {
    /// `j`, the neuron's index in the left column.
    pub from: usize,
    /// `k`, the neuron's index in the right column.
    pub to: usize,
    /// The weight `w_jk` of the connection.
    pub weight: f32,
    /// The share `d_jk` (relevance diagrams), as the kernels form it.
    pub share: Option<f32>,
    /// `Θ(d_jk) ⊗ R_k` (relevance diagrams) or `w_jk` (forward diagrams).
    pub value: K,
}

/// A dense network with one pass's numbers on its neurons and connections, ready to draw.
///
/// Build it with [`relevance`](NetworkDiagram::relevance) (or [`explain`](NetworkDiagram::explain))
/// for a K-LRP pass, or [`forward`](NetworkDiagram::forward) for the activations and weights;
/// draw it with [`render`](NetworkDiagram::render).
///
/// The network must be dense: dense layers with only element-wise or reshaping layers (ReLU,
/// flatten, dropout, identity) around them.
///
/// ```
/// use klrp::layers::{Dense, ReLU};
/// use klrp::semiring::{Boolean, Semiring};
/// use klrp::viz::NetworkDiagram;
/// use klrp::{Composite, Network, PerLayer, Threshold};
/// use ndarray::array;
///
/// let net = Network::new(
///     [2],
///     vec![
///         Box::new(Dense::new(array![[1.0, 1.0], [1.0, -1.0]], None)?),
///         Box::new(ReLU),
///         Box::new(Dense::new(array![[1.0, 2.0]], None)?),
///     ],
/// )?;
/// let x = array![[1.0_f32, 0.5]].into_dyn();
/// let theta = PerLayer::new(Threshold::new(0.2)?);
/// let diagram =
///     NetworkDiagram::<Boolean>::explain(&net, &x, 0, &Composite::k_lrp(), &theta, 8)?;
/// // R_j = ⊕_k Θ(d_jk) ⊗ R_k between the numbers drawn: input neuron 0 and its connections.
/// let r0 = diagram.columns()[0].neurons[0].value;
/// let into_0 = diagram.connections(0).iter().filter(|c| c.from == 0);
/// assert_eq!(into_0.fold(Boolean::zero(), |acc, c| acc.add(c.value)), r0);
/// let png = diagram.with_title("Boolean").render()?;
/// assert!(png.width() > 200);
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDiagram<K> {
    kind: DiagramKind,
    columns: Vec<DiagramColumn<K>>,
    connections: Vec<Vec<DiagramConnection<K>>>,
    title: Option<String>,
    connection_labels: Option<bool>,
}

/// The dense layers of a network and the network index of each drawn column.
struct DenseLayout {
    /// Network indices of the dense layers, in order.
    dense: Vec<usize>,
    /// `dense` followed by the index after the last dense layer (the output column).
    columns: Vec<usize>,
}

fn dense_layout(network: &Network) -> Result<DenseLayout> {
    let mut dense = Vec::new();
    for (i, layer) in network.layers().iter().enumerate() {
        match layer.kind() {
            LayerKind::Dense => dense.push(i),
            LayerKind::Activation | LayerKind::Reshape | LayerKind::Identity => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "a network diagram draws dense networks; layer {i} ({}) is {other:?}",
                    layer.name()
                )));
            }
        }
    }
    let Some(&last) = dense.last() else {
        return Err(Error::Unsupported(
            "a network diagram needs at least one dense layer".into(),
        ));
    };
    let mut columns = dense.clone();
    columns.push(last + 1);
    Ok(DenseLayout { dense, columns })
}

fn column_name(m: usize, columns: usize) -> String {
    if m == 0 {
        "input".into()
    } else if m + 1 == columns {
        "output".into()
    } else {
        format!("hidden {m}")
    }
}

/// One sample of a batch tensor, flattened.
fn sample_values<T: Copy>(a: &ArrayD<T>, sample: usize, what: &str) -> Result<Vec<T>> {
    if a.ndim() == 0 || sample >= a.shape()[0] {
        return Err(Error::invalid(format!(
            "sample {sample} is not in the {what} (batch {})",
            a.shape().first().copied().unwrap_or(0)
        )));
    }
    Ok(a.index_axis(ndarray::Axis(0), sample)
        .iter()
        .copied()
        .collect())
}

/// The indices of the `max` most salient values (ties: lower index first), in index order.
fn most_salient(salience: &[f64], max: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..salience.len()).collect();
    order.sort_by(|&a, &b| salience[b].total_cmp(&salience[a]).then(a.cmp(&b)));
    order.truncate(max);
    order.sort_unstable();
    order
}

fn salience_of<K: DiagramValue>(v: &K) -> f64 {
    if v.is_zero() {
        f64::NEG_INFINITY
    } else {
        K::STYLE.salience(v.to_f64())
    }
}

fn check_max_neurons(max_neurons: usize) -> Result<()> {
    if max_neurons == 0 {
        return Err(Error::invalid(
            "a network diagram needs max_neurons ≥ 1 per column",
        ));
    }
    Ok(())
}

/// The weight matrix `[out, in]` and share terms of the dense layer `i`.
fn dense_shares<'n>(
    network: &'n Network,
    trace: &Trace,
    i: usize,
    rule: &crate::rules::Rule,
) -> Result<Shares<'n>> {
    let layer = &network.layers()[i];
    let (Some(a_in), Some(a_out)) = (trace.activation(i), trace.activation(i + 1)) else {
        return Err(Error::invalid("the trace was not made by this network"));
    };
    let shares = layer
        .shares(a_in, a_out, rule)
        .map_err(|e| e.in_layer(i, layer.name()))?;
    match &shares {
        Shares::Linear {
            connectivity: Connectivity::Dense { .. },
            ..
        } => Ok(shares),
        _ => Err(Error::Unsupported(format!(
            "layer {i} ({}) is dense but does not describe dense linear shares",
            layer.name()
        ))),
    }
}

fn check_trace(network: &Network, trace: &Trace, sample: usize) -> Result<()> {
    if trace.activations().len() != network.layers().len() + 1 {
        return Err(Error::invalid("the trace was not made by this network"));
    }
    if sample >= trace.batch_size() {
        return Err(Error::invalid(format!(
            "sample {sample} is not in the batch of {}",
            trace.batch_size()
        )));
    }
    Ok(())
}

impl<K: DiagramValue> NetworkDiagram<K> {
    /// The diagram of one K-LRP pass of `sample`: every neuron with its relevance `R_j`, every
    /// connection between drawn neurons with `Θ(d_jk) ⊗ R_k`.
    ///
    /// `relevance` must come from [`Network::propagate`] on `trace` with `keep_layers = true`,
    /// `composite` and `theta` the ones it was propagated with. Columns wider than
    /// `max_neurons` keep their `max_neurons` most relevant neurons (by
    /// [`ValueStyle::salience`]; the semiring's zero is least relevant, ties go to the lower
    /// index).
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the network is not dense (a layer other than dense,
    /// activation, reshape or identity; or no dense layer); [`Error::InvalidArgument`] if the
    /// relevance was propagated without `keep_layers`, `sample` is not in the batch,
    /// `max_neurons` is 0, or `relevance` or `trace` do not fit the network.
    pub fn relevance<T: Conversion<K>>(
        network: &Network,
        trace: &Trace,
        relevance: &Relevance<K>,
        composite: &Composite,
        theta: &PerLayer<T>,
        sample: usize,
        max_neurons: usize,
    ) -> Result<Self> {
        check_max_neurons(max_neurons)?;
        check_trace(network, trace, sample)?;
        let layout = dense_layout(network)?;
        let layer_relevance = |i: usize| -> Result<Vec<K>> {
            let r = relevance.layer(i).ok_or_else(|| {
                Error::invalid(
                    "the relevance has no per-layer values: propagate with keep_layers = true",
                )
            })?;
            let a = trace
                .activation(i)
                .ok_or_else(|| Error::invalid("the trace was not made by this network"))?;
            if r.shape() != a.shape() {
                return Err(Error::shape(
                    "relevance of a layer (not propagated on this trace)",
                    a.shape(),
                    r.shape(),
                ));
            }
            sample_values(r, sample, "relevance")
        };
        let n_cols = layout.columns.len();
        let mut columns = Vec::with_capacity(n_cols);
        for (m, &i) in layout.columns.iter().enumerate() {
            let values = layer_relevance(i)?;
            let salience: Vec<f64> = values.iter().map(salience_of).collect();
            let shown = most_salient(&salience, max_neurons);
            columns.push(DiagramColumn {
                name: column_name(m, n_cols),
                layer: i,
                size: values.len(),
                neurons: shown
                    .into_iter()
                    .map(|j| DiagramNeuron {
                        index: j,
                        value: values[j],
                    })
                    .collect(),
            });
        }
        let rules = composite.assign(network.layers());
        let mut connections = Vec::with_capacity(layout.dense.len());
        for (m, &i) in layout.dense.iter().enumerate() {
            let shares = dense_shares(network, trace, i, &rules[i])?;
            let Shares::Linear {
                connectivity: Connectivity::Dense { weight, .. },
                terms,
            } = &shares
            else {
                unreachable!("dense_shares returns dense linear shares")
            };
            let r_out = layer_relevance(i + 1)?;
            let theta_i = theta.at(i);
            let skip_zero = theta_i.maps_zero_to_zero();
            let (n_out, n_in) = weight.dim();
            let batch = trace.batch_size();
            for t in terms {
                if t.input.shape() != [batch, n_in] || t.scale.shape() != [batch, n_out] {
                    return Err(Error::shape(
                        "share term factors [input, output]",
                        &[batch, n_in, batch, n_out],
                        &[t.input.len(), t.scale.len()],
                    )
                    .in_layer(i, network.layers()[i].name()));
                }
            }
            let mut gap = Vec::new();
            for from in &columns[m].neurons {
                for to in &columns[m + 1].neurons {
                    let (j, k) = (from.index, to.index);
                    let w = weight[[k, j]];
                    // The reference kernel's share: Σ_t p_t[j] · g_t(w_jk) · q_t[k], in term order.
                    let mut d = 0.0f32;
                    for t in terms {
                        d += t.input[IxDyn(&[sample, j])]
                            * t.weight.apply(w)
                            * t.scale[IxDyn(&[sample, k])];
                    }
                    let rk = r_out[k];
                    let value = if rk.is_zero() || (d == 0.0 && skip_zero) {
                        K::zero()
                    } else {
                        theta_i.convert(d).mul(rk)
                    };
                    gap.push(DiagramConnection {
                        from: j,
                        to: k,
                        weight: w,
                        share: Some(d),
                        value,
                    });
                }
            }
            connections.push(gap);
        }
        Ok(NetworkDiagram {
            kind: DiagramKind::Relevance,
            columns,
            connections,
            title: None,
            connection_labels: None,
        })
    }

    /// Explains `target` for the single sample `x` (`[1, …]`) from the K-LRP initialisation
    /// ([`one_hot`]) and draws the pass: [`Network::trace`], [`Network::propagate`] keeping every
    /// layer, then [`relevance`](NetworkDiagram::relevance).
    ///
    /// # Errors
    /// As [`Network::trace`], [`one_hot`], [`Network::propagate`] and
    /// [`relevance`](NetworkDiagram::relevance); [`Error::InvalidArgument`] if `x` holds more than
    /// one sample.
    pub fn explain<T: Conversion<K>>(
        network: &Network,
        x: &crate::layers::Tensor,
        target: usize,
        composite: &Composite,
        theta: &PerLayer<T>,
        max_neurons: usize,
    ) -> Result<Self> {
        if x.shape().first() != Some(&1) {
            return Err(Error::invalid(format!(
                "a network diagram explains one sample; x has shape {:?}",
                x.shape()
            )));
        }
        let trace = network.trace(x)?;
        let init = one_hot::<K>(trace.output().shape(), &[target])?;
        let relevance = network.propagate(&trace, init, composite, theta, true)?;
        Self::relevance(
            network,
            &trace,
            &relevance,
            composite,
            theta,
            0,
            max_neurons,
        )
    }
}

impl NetworkDiagram<Real<f32>> {
    /// The diagram of the forward pass of `sample`: every neuron with its activation (the
    /// input of the next dense layer, so after its ReLU), every connection with its weight.
    /// Columns wider than `max_neurons` keep the `max_neurons` largest activations in absolute
    /// value.
    ///
    /// # Errors
    /// As [`relevance`](NetworkDiagram::relevance), without the relevance.
    pub fn forward(
        network: &Network,
        trace: &Trace,
        sample: usize,
        max_neurons: usize,
    ) -> Result<Self> {
        check_max_neurons(max_neurons)?;
        check_trace(network, trace, sample)?;
        let layout = dense_layout(network)?;
        let n_cols = layout.columns.len();
        let mut columns = Vec::with_capacity(n_cols);
        for (m, &i) in layout.columns.iter().enumerate() {
            let a = trace
                .activation(i)
                .ok_or_else(|| Error::invalid("the trace was not made by this network"))?;
            let values: Vec<Real<f32>> = sample_values(a, sample, "trace")?
                .into_iter()
                .map(Real)
                .collect();
            let salience: Vec<f64> = values.iter().map(salience_of).collect();
            columns.push(DiagramColumn {
                name: column_name(m, n_cols),
                layer: i,
                size: values.len(),
                neurons: most_salient(&salience, max_neurons)
                    .into_iter()
                    .map(|j| DiagramNeuron {
                        index: j,
                        value: values[j],
                    })
                    .collect(),
            });
        }
        let rules = Composite::k_lrp().assign(network.layers());
        let mut connections = Vec::with_capacity(layout.dense.len());
        for (m, &i) in layout.dense.iter().enumerate() {
            let shares = dense_shares(network, trace, i, &rules[i])?;
            let Shares::Linear {
                connectivity: Connectivity::Dense { weight, .. },
                ..
            } = &shares
            else {
                unreachable!("dense_shares returns dense linear shares")
            };
            let mut gap = Vec::new();
            for from in &columns[m].neurons {
                for to in &columns[m + 1].neurons {
                    let w = weight[[to.index, from.index]];
                    gap.push(DiagramConnection {
                        from: from.index,
                        to: to.index,
                        weight: w,
                        share: None,
                        value: Real(w),
                    });
                }
            }
            connections.push(gap);
        }
        Ok(NetworkDiagram {
            kind: DiagramKind::Forward,
            columns,
            connections,
            title: None,
            connection_labels: None,
        })
    }
}

/// Connections drawn with their value written on them, unless told otherwise
/// ([`NetworkDiagram::with_connection_labels`]): at most this many non-zero connections.
pub const AUTO_LABEL_CONNECTIONS: usize = 40;

const RED: Rgb = [214, 39, 40];
const BLUE: Rgb = [31, 119, 180];
const GREEN: Rgb = [34, 139, 34];
const PURPLE: Rgb = [118, 73, 169];
/// Connections whose value is the semiring's zero.
const FAINT: Rgb = [218, 218, 218];
/// The weak end of a value scale.
const PALE: Rgb = [205, 205, 205];
const INK: Rgb = [40, 40, 40];
const GREY_TEXT: Rgb = [120, 120, 120];
const TEXT_SCALE: usize = 2;

fn mix(a: Rgb, b: Rgb, t: f64) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    let m = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    [m(a[0], b[0]), m(a[1], b[1]), m(a[2], b[2])]
}

/// The range of the non-zero values of a set, for scaling them to `[0, 1]`.
#[derive(Clone, Copy, Debug)]
struct ValueRange {
    style: ValueStyle,
    min: f64,
    max: f64,
    abs_max: f64,
}

impl ValueRange {
    fn of<K: DiagramValue>(values: impl Iterator<Item = K>) -> Self {
        let (mut min, mut max, mut abs_max) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for v in values.filter(|v| !v.is_zero()) {
            let f = v.to_f64();
            if f.is_finite() {
                min = min.min(f);
                max = max.max(f);
                abs_max = abs_max.max(f.abs());
            }
        }
        ValueRange {
            style: K::STYLE,
            min,
            max,
            abs_max,
        }
    }

    /// How strong a non-zero value is, in `[0, 1]` (1 for values out of range: overflows).
    fn strength(&self, v: f64) -> f64 {
        if !v.is_finite() {
            return 1.0;
        }
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { 1.0 };
        let s = match self.style {
            ValueStyle::Signed => ratio(v.abs(), self.abs_max),
            ValueStyle::Truth => 1.0,
            ValueStyle::Count => ratio(v.max(0.0).ln_1p(), self.max.max(0.0).ln_1p()),
            ValueStyle::Strength => ratio(v.max(0.0), self.max),
            ValueStyle::Cost => ratio(self.max - v, self.max - self.min),
            ValueStyle::Score => ratio(v - self.min, self.max - self.min),
        };
        if s.is_nan() { 1.0 } else { s.clamp(0.0, 1.0) }
    }

    /// The hue of a non-zero value.
    fn hue(&self, v: f64) -> Rgb {
        if self.style == ValueStyle::Signed && v < 0.0 {
            BLUE
        } else {
            self.style.hue()
        }
    }
}

/// Where a neuron is drawn.
#[derive(Clone, Copy, Debug)]
struct Spot {
    x: f64,
    y: f64,
}

/// A connection as drawn: its end points at the neurons' rims, colour, width, and its
/// strength (drawing order: weak first; −1 for the semiring's zero).
struct Stroke<'a, K> {
    strength: f64,
    from: (f64, f64),
    to: (f64, f64),
    color: Rgb,
    width: f64,
    connection: &'a DiagramConnection<K>,
}

/// An axis-aligned box `(x, y, w, h)` in pixels, for placing labels.
type LabelBox = (f64, f64, f64, f64);

fn overlap(a: LabelBox, b: LabelBox) -> f64 {
    let w = (a.0 + a.2).min(b.0 + b.2) - a.0.max(b.0);
    let h = (a.1 + a.3).min(b.1 + b.3) - a.1.max(b.1);
    if w > 0.0 && h > 0.0 { w * h } else { 0.0 }
}

impl<K: DiagramValue> NetworkDiagram<K> {
    /// What the diagram's numbers are.
    pub fn kind(&self) -> DiagramKind {
        self.kind
    }

    /// The columns, input first.
    pub fn columns(&self) -> &[DiagramColumn<K>] {
        &self.columns
    }

    /// The drawn connections between column `gap` and column `gap + 1` (empty for other `gap`).
    pub fn connections(&self, gap: usize) -> &[DiagramConnection<K>] {
        self.connections.get(gap).map_or(&[], Vec::as_slice)
    }

    /// A title drawn above the diagram.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Whether connections carry their value as text (default: when at most
    /// [`AUTO_LABEL_CONNECTIONS`] of them are non-zero).
    pub fn with_connection_labels(mut self, labels: bool) -> Self {
        self.connection_labels = Some(labels);
        self
    }

    fn labels_connections(&self) -> bool {
        self.connection_labels.unwrap_or_else(|| {
            self.connections
                .iter()
                .flatten()
                .filter(|c| !c.value.is_zero())
                .count()
                <= AUTO_LABEL_CONNECTIONS
        })
    }

    /// The lines of the legend under the diagram.
    fn legend(&self) -> Vec<String> {
        let scale = match (self.kind, K::STYLE) {
            (DiagramKind::Forward, _) | (_, ValueStyle::Signed) => {
                "red > 0, blue < 0, darker and wider: larger |value|; faint: 0"
            }
            (_, ValueStyle::Truth) => "red: ⊤ (a relevant path); faint: ⊥",
            (_, ValueStyle::Count) => "darker and wider: more paths (log scale); faint: 0",
            (_, ValueStyle::Strength) => "darker and wider: stronger; faint: 0",
            (_, ValueStyle::Cost) => "darker and wider: cheaper; faint: ∞ (no path)",
            (_, ValueStyle::Score) => "darker and wider: higher; faint: -∞ (no path)",
        };
        let what = match self.kind {
            DiagramKind::Forward => "neurons: activation a_j; lines: weight w_jk".to_string(),
            DiagramKind::Relevance => {
                "neurons: R_j; lines: Θ(d_jk) ⊗ R_k; R_j = ⊕_k of its lines".to_string()
            }
        };
        vec![what, scale.to_string()]
    }

    /// Draws the diagram: layers as columns from the input (left) to the output (right), each
    /// neuron a circle with its value and name (`x3`, `h7`, `y1`), each connection a line styled by
    /// its value ([`ValueStyle`]; the semiring's zero faint), a column's size in its header and
    /// "+ M more" under a truncated column, a two-line legend at the bottom.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the picture would exceed 2¹⁴ pixels on a side.
    pub fn render(&self) -> Result<RgbImage> {
        let ts = TEXT_SCALE;
        let line_h = text_size("", ts).1 as f64;
        let labels: Vec<Vec<String>> = self
            .columns
            .iter()
            .map(|c| c.neurons.iter().map(|n| n.value.label()).collect())
            .collect();
        let widest = labels
            .iter()
            .flatten()
            .map(|l| text_size(l, ts).0)
            .max()
            .unwrap_or(0) as f64;
        let radius = (widest / 2.0 + 7.0).clamp(16.0, 44.0);
        let label_lines = self.labels_connections();
        let conn_label_w = if label_lines {
            self.connections
                .iter()
                .flatten()
                .map(|c| text_size(&c.value.label(), ts).0)
                .max()
                .unwrap_or(0) as f64
        } else {
            0.0
        };
        let headers: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{} ({})", c.name, c.size))
            .collect();
        let header_w = headers
            .iter()
            .map(|h| text_size(h, ts).0)
            .max()
            .unwrap_or(0) as f64;
        let name_h = line_h;
        let dy = (2.0 * radius + name_h + 12.0).round();
        let dx = (2.0 * radius + 3.0 * conn_label_w + 90.0)
            .max(header_w + 24.0)
            .max(if label_lines { 250.0 } else { 190.0 })
            .round();
        let margin = 24.0;
        let side = radius.max(header_w / 2.0 + 4.0);
        let title_h = if self.title.is_some() {
            line_h + 12.0
        } else {
            0.0
        };
        let header_h = line_h + 12.0;
        let more_h = line_h + 6.0;
        let col_h: Vec<f64> = self
            .columns
            .iter()
            .map(|c| c.neurons.len() as f64 * dy + if c.left_out() > 0 { more_h } else { 0.0 })
            .collect();
        let body_h = col_h.iter().copied().fold(0.0, f64::max);
        let legend = self.legend();
        let legend_w = legend.iter().map(|l| text_size(l, ts).0).max().unwrap_or(0) as f64;
        let n_cols = self.columns.len().max(1);
        let diagram_w = 2.0 * (margin + side) + (n_cols - 1) as f64 * dx;
        let title_w = self
            .title
            .as_ref()
            .map_or(0.0, |t| text_size(t, ts).0 as f64 + 2.0 * margin);
        let width = diagram_w.max(legend_w + 2.0 * margin).max(title_w).ceil();
        let legend_top = margin + title_h + header_h + body_h + 8.0;
        let height = (legend_top + legend.len() as f64 * (line_h + 4.0) + margin).ceil();
        if width > f64::from(1u32 << 14) || height > f64::from(1u32 << 14) {
            return Err(Error::invalid(format!(
                "a network diagram of {width}×{height} pixels is too large; draw fewer neurons"
            )));
        }
        let mut img = RgbImage::new(width as usize, height as usize, WHITE);
        let left = (width - diagram_w) / 2.0 + margin + side;
        let body_top = margin + title_h + header_h;

        // Where every drawn neuron sits.
        let spots: Vec<Vec<Spot>> = self
            .columns
            .iter()
            .enumerate()
            .map(|(m, c)| {
                let x = left + m as f64 * dx;
                let top = body_top + (body_h - col_h[m]) / 2.0;
                (0..c.neurons.len())
                    .map(|i| Spot {
                        x,
                        y: top + i as f64 * dy + name_h + 2.0 + radius,
                    })
                    .collect()
            })
            .collect();

        // Connections: zero ones faint and first, then the others from weak to strong.
        let conn_range = ValueRange::of(self.connections.iter().flatten().map(|c| c.value));
        let mut lines: Vec<Stroke<'_, K>> = Vec::new();
        for (m, gap) in self.connections.iter().enumerate() {
            let (Some(lc), Some(rc)) = (self.columns.get(m), self.columns.get(m + 1)) else {
                continue;
            };
            for c in gap {
                let (Some(a), Some(b)) = (lc.position(c.from), rc.position(c.to)) else {
                    continue;
                };
                let (pa, pb) = (spots[m][a], spots[m + 1][b]);
                let (from, to) = ((pa.x + radius, pa.y), (pb.x - radius, pb.y));
                if c.value.is_zero() {
                    lines.push(Stroke {
                        strength: -1.0,
                        from,
                        to,
                        color: FAINT,
                        width: 1.0,
                        connection: c,
                    });
                } else {
                    let v = c.value.to_f64();
                    let s = conn_range.strength(v);
                    let (color, w) = if K::STYLE == ValueStyle::Truth {
                        (RED, 3.5)
                    } else {
                        (mix(PALE, conn_range.hue(v), 0.3 + 0.7 * s), 1.2 + 4.8 * s)
                    };
                    lines.push(Stroke {
                        strength: s,
                        from,
                        to,
                        color,
                        width: w,
                        connection: c,
                    });
                }
            }
        }
        lines.sort_by(|a, b| a.strength.total_cmp(&b.strength));
        for l in &lines {
            img.draw_line_aa(l.from, l.to, l.color, l.width);
        }

        // Neurons: a circle filled by strength, its value inside and its name above.
        let node_range = ValueRange::of(
            self.columns
                .iter()
                .flat_map(|c| c.neurons.iter().map(|n| n.value)),
        );
        let mut taken: Vec<LabelBox> = Vec::new();
        for (m, c) in self.columns.iter().enumerate() {
            let last = m + 1 == self.columns.len();
            for (i, n) in c.neurons.iter().enumerate() {
                let p = spots[m][i];
                let (fill, ring, text) = if n.value.is_zero() {
                    (WHITE, PALE, GREY_TEXT)
                } else {
                    let v = n.value.to_f64();
                    let s = node_range.strength(v);
                    let fill = if K::STYLE == ValueStyle::Truth {
                        RED
                    } else {
                        mix(WHITE, node_range.hue(v), 0.12 + 0.88 * s)
                    };
                    (fill, [70, 70, 70], contrast(fill))
                };
                img.fill_circle((p.x, p.y), radius, fill);
                img.stroke_circle((p.x, p.y), radius, 1.5, ring);
                let label = &labels[m][i];
                let (lw, _) = text_size(label, ts);
                let ty = p.y - 7.0;
                img.draw_text(
                    (p.x - lw as f64 / 2.0).round() as i64,
                    ty.round() as i64,
                    label,
                    text,
                    ts,
                );
                let name = c.neuron_name(n.index, last);
                let (nw, _) = text_size(&name, ts);
                img.draw_text(
                    (p.x - nw as f64 / 2.0).round() as i64,
                    (p.y - radius - name_h - 1.0).round() as i64,
                    &name,
                    GREY_TEXT,
                    ts,
                );
                taken.push((
                    p.x - radius,
                    p.y - radius - name_h,
                    2.0 * radius,
                    2.0 * radius + name_h,
                ));
            }
            if let Some(more) = c.more_label() {
                let (mw, _) = text_size(&more, ts);
                let y = body_top + (body_h - col_h[m]) / 2.0 + c.neurons.len() as f64 * dy + 2.0;
                img.draw_text(
                    (left + m as f64 * dx - mw as f64 / 2.0).round() as i64,
                    y.round() as i64,
                    &more,
                    INK,
                    ts,
                );
            }
        }

        // Connection values, on a white box, where they overlap the least.
        if label_lines {
            for &Stroke {
                from,
                to,
                color,
                connection: c,
                ..
            } in lines.iter().rev()
            {
                if c.value.is_zero() {
                    continue;
                }
                let label = c.value.label();
                let (lw, lh) = text_size(&label, ts);
                let (bw, bh) = (lw as f64 + 4.0, lh as f64 - 2.0);
                let mut best: Option<(f64, LabelBox)> = None;
                for t in [0.72, 0.58, 0.84, 0.45, 0.3, 0.18] {
                    let cx = from.0 + t * (to.0 - from.0);
                    let cy = from.1 + t * (to.1 - from.1);
                    let b = (cx - bw / 2.0, cy - bh / 2.0, bw, bh);
                    let cost: f64 = taken.iter().map(|&o| overlap(b, o)).sum();
                    if best.is_none_or(|(c, _)| cost < c) {
                        best = Some((cost, b));
                    }
                    if cost == 0.0 {
                        break;
                    }
                }
                let Some((_, b)) = best else { continue };
                img.fill_rect(
                    b.0.round() as i64,
                    b.1.round() as i64,
                    b.2 as usize,
                    b.3 as usize,
                    WHITE,
                );
                img.stroke_rect(
                    b.0.round() as i64,
                    b.1.round() as i64,
                    b.2 as usize,
                    b.3 as usize,
                    mix(WHITE, color, 0.6),
                );
                img.draw_text(
                    (b.0 + 2.0).round() as i64,
                    (b.1 + 2.0).round() as i64,
                    &label,
                    INK,
                    ts,
                );
                taken.push(b);
            }
        }

        // Title, column headers, legend.
        if let Some(t) = &self.title {
            img.draw_text(margin as i64, margin as i64, t, BLACK, ts);
        }
        for (m, h) in headers.iter().enumerate() {
            let (hw, _) = text_size(h, ts);
            img.draw_text(
                (left + m as f64 * dx - hw as f64 / 2.0).round() as i64,
                (margin + title_h).round() as i64,
                h,
                BLACK,
                ts,
            );
        }
        for (i, l) in legend.iter().enumerate() {
            img.draw_text(
                margin as i64,
                (legend_top + i as f64 * (line_h + 4.0)).round() as i64,
                l,
                INK,
                ts,
            );
        }
        Ok(img)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(1.0), "1");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(-0.126), "-0.13");
        assert_eq!(short_number(99.99), "100");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(417.2), "417");
        assert_eq!(short_number(1e-5), "1e-5");
        assert_eq!(short_number(2.5e7), "2.5e7");
        assert_eq!(short_number(f64::NEG_INFINITY), "-∞");
        assert_eq!(short_number(f64::NAN), "NaN");
        for v in [0.001, 0.0123, 0.999, 9.99, 55.5, 9999.0, 77_777.0] {
            assert!(short_number(v).chars().count() <= 5, "{v}");
        }
    }

    #[test]
    fn labels_per_semiring() {
        assert_eq!(Boolean(false).label(), "⊥");
        assert_eq!(Counting(u64::MAX).label(), "max");
        assert_eq!(LogCounting::from_count(20.0).label(), "20");
        assert_eq!(LogCounting::zero().label(), "0");
        assert_eq!(Tropical::zero().label(), "∞");
        assert_eq!(Product(Boolean(true), Counting(3)).label(), "⊤,3");
        assert_eq!(FloatCounting(3.0).label(), "3");
    }

    #[test]
    fn salience_orders_by_style() {
        assert!(ValueStyle::Signed.salience(-2.0) > ValueStyle::Signed.salience(1.0));
        assert!(ValueStyle::Cost.salience(1.0) > ValueStyle::Cost.salience(2.0));
        assert_eq!(ValueStyle::Count.salience(f64::NAN), f64::NEG_INFINITY);
        // Ties go to the lower index; the result is in index order.
        assert_eq!(most_salient(&[1.0, 3.0, 3.0, 0.0, 2.0], 3), vec![1, 2, 4]);
        assert_eq!(most_salient(&[1.0, 2.0], 5), vec![0, 1]);
    }

    #[test]
    fn strengths_scale_to_the_largest_value() {
        let r = ValueRange::of([Counting(0), Counting(1), Counting(99)].into_iter());
        assert_eq!(r.strength(99.0), 1.0);
        assert!((r.strength(1.0) - 2f64.ln() / 100f64.ln()).abs() < 1e-12);
        let r = ValueRange::of([Real(-4.0_f32), Real(2.0)].into_iter());
        assert_eq!(r.strength(-4.0), 1.0);
        assert_eq!(r.strength(2.0), 0.5);
        assert_eq!(r.hue(-1.0), BLUE);
        let r = ValueRange::of([Tropical(1.0), Tropical(3.0), Tropical::zero()].into_iter());
        assert_eq!((r.strength(1.0), r.strength(3.0)), (1.0, 0.0));
    }
}
