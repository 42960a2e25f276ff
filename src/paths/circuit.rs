//! Circuits: the union of some paths as a sub-network, with how many paths use each part.

use super::Path;
use std::collections::BTreeMap;
use std::fmt::Write;

/// An element of a tensor: `(node, flat index)`, the network input as node `None`.
pub type Place = (Option<usize>, usize);

/// An element of a circuit layer and the number of paths through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitElement {
    /// Flat C-order index within one sample.
    pub index: usize,
    /// Coordinates within one sample.
    pub coords: Vec<usize>,
    /// How many of the paths use this element.
    pub paths: usize,
}

/// One tensor of a circuit (the input or a node's output): the elements and channels on the paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CircuitLayer {
    /// The node (`None`: the network input).
    pub node: Option<usize>,
    /// The elements used, by index.
    pub elements: Vec<CircuitElement>,
    /// For tensors with a channel axis (`[C, …]`, two axes or more): `(channel, paths)`, the
    /// number of paths through any element of the channel, by channel.
    pub channels: Vec<(usize, usize)>,
}

/// The union of a set of paths: per tensor the elements on them, and every connection used, each
/// with the number of paths using it.
///
/// ```
/// use klrp::layers::{Dense, ReLU};
/// use klrp::ndarray::array;
/// use klrp::paths::Circuit;
/// use klrp::{Explainer, Network};
/// let net = Network::new([2], vec![
///     Box::new(Dense::new(array![[1.0, 0.5], [0.5, 1.0]], None)?),
///     Box::new(ReLU),
///     Box::new(Dense::new(array![[1.0, 1.0]], None)?),
/// ])?;
/// let paths = net.strongest_paths(&array![[1.0_f32, 1.0]], 0, 3, &Explainer::viterbi())?;
/// let c = Circuit::from_paths(&paths);
/// assert_eq!(c.paths, 3);
/// assert_eq!(c.layers.last().unwrap().elements[0].paths, 3); // every path ends at the target
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circuit {
    /// How many paths the circuit is made of.
    pub paths: usize,
    /// The tensors the paths pass through, the input first, then by node index.
    pub layers: Vec<CircuitLayer>,
    /// The connections used: `((from node, from index), (to node, to index), paths)`, the input
    /// as node `None`, sorted.
    pub edges: Vec<(Place, Place, usize)>,
}

impl Circuit {
    /// The circuit of `paths`.
    pub fn from_paths(paths: &[Path]) -> Circuit {
        let mut layers: BTreeMap<Option<usize>, BTreeMap<usize, CircuitElement>> = BTreeMap::new();
        let mut edges: BTreeMap<(Place, Place), usize> = BTreeMap::new();
        for p in paths {
            for s in &p.steps {
                layers
                    .entry(s.node)
                    .or_default()
                    .entry(s.index)
                    .or_insert_with(|| CircuitElement {
                        index: s.index,
                        coords: s.coords.clone(),
                        paths: 0,
                    })
                    .paths += 1;
            }
            for w in p.steps.windows(2) {
                *edges
                    .entry(((w[0].node, w[0].index), (w[1].node, w[1].index)))
                    .or_default() += 1;
            }
        }
        let layers = layers
            .into_iter()
            .map(|(node, elems)| {
                let elements: Vec<CircuitElement> = elems.into_values().collect();
                let mut channels: BTreeMap<usize, usize> = BTreeMap::new();
                for e in &elements {
                    if e.coords.len() >= 2 {
                        *channels.entry(e.coords[0]).or_default() += e.paths;
                    }
                }
                CircuitLayer {
                    node,
                    elements,
                    channels: channels.into_iter().collect(),
                }
            })
            .collect();
        Circuit {
            paths: paths.len(),
            layers,
            edges: edges.into_iter().map(|((a, b), n)| (a, b, n)).collect(),
        }
    }

    /// The circuit as JSON: `{"paths": P, "layers": [{"node": N, "elements": [{"index": J,
    /// "coords": [...], "paths": n}, ...], "channels": [{"channel": c, "paths": n}, ...]}, ...],
    /// "edges": [{"from": [N, J], "to": [N, K], "paths": n}, ...]}` (node −1: the input).
    pub fn to_json(&self) -> String {
        let node = |n: Option<usize>| n.map_or(-1, |n| n as i64);
        let mut out = format!("{{\"paths\": {}, \"layers\": [", self.paths);
        for (i, l) in self.layers.iter().enumerate() {
            out.push_str(if i > 0 { ",\n  " } else { "\n  " });
            let _ = write!(out, "{{\"node\": {}, \"elements\": [", node(l.node));
            for (k, e) in l.elements.iter().enumerate() {
                let coords: Vec<String> = e.coords.iter().map(|c| c.to_string()).collect();
                let _ = write!(
                    out,
                    "{}{{\"index\": {}, \"coords\": [{}], \"paths\": {}}}",
                    if k > 0 { ", " } else { "" },
                    e.index,
                    coords.join(", "),
                    e.paths
                );
            }
            out.push_str("], \"channels\": [");
            for (k, (c, n)) in l.channels.iter().enumerate() {
                let _ = write!(
                    out,
                    "{}{{\"channel\": {c}, \"paths\": {n}}}",
                    if k > 0 { ", " } else { "" }
                );
            }
            out.push_str("]}");
        }
        out.push_str("\n], \"edges\": [");
        for (i, ((fa, fb), (ta, tb), n)) in self.edges.iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"from\": [{}, {fb}], \"to\": [{}, {tb}], \"paths\": {n}}}",
                if i > 0 { ",\n  " } else { "\n  " },
                node(*fa),
                node(*ta)
            );
        }
        out.push_str("\n]}\n");
        out
    }
}
