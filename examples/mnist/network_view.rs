//! A slice of the trained MLP drawn as a network: for one test digit, the most relevant
//! neurons of every layer (8 pixels, 8 + 8 hidden neurons, 8 of the 10 classes) with their
//! relevance and the connections between them, in the Boolean, Counting and Viterbi semirings
//! and classical LRP (`klrp::viz::NetworkDiagram`, issue 22).

use crate::experiments::Explainer;
use klrp::semiring::{Boolean, Counting, Real, Viterbi};
use klrp::viz::{self, Grid, NetworkDiagram};
use klrp::{Clamp01, Composite, PerLayer};
use ndarray::ArrayView1;
use std::path::{Path, PathBuf};

/// Neurons drawn per layer.
pub const NEURONS_PER_LAYER: usize = 8;

/// Draws the four diagrams of `digit` (explained for `target`) side by side into
/// `out/network.png`; returns the path.
pub fn write_network_view(
    ex: &Explainer,
    digit: ArrayView1<'_, f32>,
    target: usize,
    out: &Path,
) -> klrp::Result<PathBuf> {
    let x = digit.insert_axis(ndarray::Axis(0)).to_owned().into_dyn();
    let net = &ex.net;
    let n = NEURONS_PER_LAYER;
    let k_lrp = Composite::k_lrp();
    let boolean = NetworkDiagram::<Boolean>::explain(net, &x, target, &k_lrp, &ex.theta, n)?
        .with_title(format!("Boolean (d ≥ θ): digit {target}"));
    let counting = NetworkDiagram::<Counting>::explain(net, &x, target, &k_lrp, &ex.theta, n)?
        .with_title(format!("Counting (d ≥ θ): digit {target}"));
    let viterbi = NetworkDiagram::<Viterbi>::explain(
        net,
        &x,
        target,
        &Composite::viterbi(),
        &PerLayer::new(Clamp01),
        n,
    )?
    .with_title(format!("Viterbi (max-abs, clamp): digit {target}"));
    // Classical LRP-ε from the logit, as in the heatmaps.
    let trace = net.trace(&x)?;
    let identity = PerLayer::new(klrp::Identity);
    let relevance = net.propagate::<Real<f32>, _>(
        &trace,
        trace.output_init(&[target])?,
        &ex.real,
        &identity,
        true,
    )?;
    let real = NetworkDiagram::relevance(net, &trace, &relevance, &ex.real, &identity, 0, n)?
        .with_title(format!("Real (LRP-ε from the logit): digit {target}"));
    let figure = Grid::new(vec![
        vec![boolean.render()?, counting.render()?],
        vec![viterbi.render()?, real.render()?],
    ])
    .with_gap(12)
    .render()?;
    let path = out.join("network.png");
    viz::save_png(&path, &figure)?;
    Ok(path)
}
