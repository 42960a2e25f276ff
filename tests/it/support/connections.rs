//! The connections of a node's shares, listed from the shares' own fields and
//! `kernels::for_each_connection` (independently of `klrp::paths::connections`): the
//! brute-force references of `graph.rs` and `paths.rs` walk them.

use klrp::kernels::for_each_connection;
use klrp::layers::{Connectivity, Shares};
use klrp::rules::SharedTensor;
use ndarray::Axis;

/// One connection of a node: operand, input element, output element, share (`None`: relevance
/// passes unchanged, without Θ).
pub type Edge = (usize, usize, usize, Option<f32>);

/// The connections of operand `b` of a node, whose shares for it are `shares`, in sample `s` of
/// the batch; `in_shape` is the operand's shape without the batch axis. Element indices are flat
/// within the sample.
pub fn operand_edges(b: usize, shares: &Shares<'_>, in_shape: &[usize], s: usize) -> Vec<Edge> {
    let n_in: usize = in_shape.iter().product();
    // One sample's factor (the tensors hold the batch), flat.
    let sample =
        |t: &SharedTensor| -> Vec<f32> { t.index_axis(Axis(0), s).iter().copied().collect() };
    let mut list = Vec::new();
    match shares {
        Shares::Pass => list.extend((0..n_in).map(|j| (b, j, j, None))),
        Shares::Disconnected => {}
        Shares::Elementwise(d) => {
            let d = sample(d);
            list.extend((0..n_in).map(|j| (b, j, j, Some(d[j]))));
        }
        Shares::ChannelSlice { start } => {
            let rest: usize = in_shape[1..].iter().product();
            list.extend((0..n_in).map(|j| (b, j, start * rest + j, None)));
        }
        Shares::Winner { geometry, winners } => {
            let conn = Connectivity::Pool {
                geometry: geometry.clone(),
            };
            for_each_connection(&conn, |j, k, _| {
                let d = if winners[[s, k]] == j { 1.0 } else { 0.0 };
                list.push((b, j, k, Some(d)));
            });
        }
        Shares::Linear {
            connectivity,
            terms,
        } => {
            let ts: Vec<(Vec<f32>, _, Vec<f32>)> = terms
                .iter()
                .map(|t| (sample(&t.input), t.weight, sample(&t.scale)))
                .collect();
            for_each_connection(connectivity, |j, k, w| {
                let mut d = 0.0f32;
                for (p, g, q) in &ts {
                    d += p[j] * g.apply(w) * q[k];
                }
                list.push((b, j, k, Some(d)));
            });
        }
        Shares::Explicit(l) => list.extend(l[s].iter().map(|&(j, k, d)| (b, j, k, Some(d)))),
        Shares::Route { sources } => {
            list.extend(sources.iter().enumerate().map(|(k, &j)| (b, j, k, None)));
        }
    }
    list
}
