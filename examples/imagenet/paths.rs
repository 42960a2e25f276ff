//! `--paths`: the strongest paths behind the photo's class and the strongest path's receptive
//! field at every layer, drawn on the photo (`out/imagenet/<photo>_paths.png`).

use crate::lite0::{Config, Model, photo_image, save_figure, short};
use klrp::io::image::{read_image_file, to_tensor};
use klrp::paths::{Path as KPath, RelevanceGraph};
use klrp::viz::Grid;
use klrp::{Explainer, Trace};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`strongest_paths`] found.
pub struct Found {
    /// The class explained.
    pub target: usize,
    /// The strongest paths, strongest first.
    pub paths: Vec<KPath>,
    /// One line per receptive-field box of the strongest path (as the legend says).
    pub boxes: Vec<String>,
    /// Seconds: the Viterbi relevance pass (with the shares kept), the search.
    pub times: (f64, f64),
    /// The figure written.
    pub figure: PathBuf,
}

/// The `k` strongest paths to the photo's top-1 class (or `cfg.target`) under Viterbi
/// ([`Explainer::viterbi`]: max-abs shares, Θ = clamp to [0, 1]), and the figure of the first.
pub fn strongest_paths(model: &Model, photo: &Path, cfg: &Config, k: usize) -> klrp::Result<Found> {
    let net = &model.net;
    let x = to_tensor(&read_image_file(photo)?, &model.pre)?;
    let target = match cfg.target {
        Some(c) => c,
        None => {
            let trace: Trace = net.trace(&x)?;
            trace.predictions()[0]
        }
    };
    let viterbi = Explainer::viterbi();
    let t = Instant::now();
    let graph = RelevanceGraph::new(net, &x, target, &viterbi)?;
    let pass = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let paths = graph.strongest(k)?;
    let search = t.elapsed().as_secs_f64();
    let Some(best) = paths.first() else {
        return Err(klrp::Error::invalid(format!(
            "no path of strength > 0 leads to class {target}"
        )));
    };
    let boxes = graph
        .field_boxes(best)
        .iter()
        .map(|b| {
            let (a, z) = b.steps;
            let node = |s: usize| {
                best.steps[s]
                    .node
                    .map_or_else(|| "input".to_string(), |n| format!("node {n}"))
            };
            let nodes = if a == z {
                node(a)
            } else {
                format!("{} - {}", node(a), node(z))
            };
            format!(
                "{:>3}×{:<3} rows {:>3}..{:<3} columns {:>3}..{:<3} {nodes}",
                b.field.rows.len(),
                b.field.cols.len(),
                b.field.rows.start,
                b.field.rows.end,
                b.field.cols.start,
                b.field.cols.end,
            )
        })
        .collect();
    let picture = graph.receptive_field_figure(best, &photo_image(&x, &model.pre))?;
    let photo_name = photo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let figure = Grid::new(vec![vec![picture]])
        .with_gap(6)
        .with_title(format!(
            "EfficientNet-Lite0: {photo_name}, class {target} ({}): the strongest path",
            short(&model.labels[target], 30)
        ))
        .render()?;
    let path = save_figure(&cfg.out, photo, "_paths", &figure)?;
    Ok(Found {
        target,
        paths,
        boxes,
        times: (pass, search),
        figure: path,
    })
}
