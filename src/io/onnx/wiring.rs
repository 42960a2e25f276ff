//! The graph's wiring, checked before import: one producer per value, no dangling input, no
//! cycle, nodes in topological order; uses only `proto` and the importer's `node_label`.

use super::importer::node_label;
use super::proto::GraphProto;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// Checks the graph's wiring before import: every value defined once, every input defined, no
/// cycle, nodes in topological order. Returns how many node inputs and graph outputs read each
/// value.
///
/// # Errors
/// [`Error::Malformed`] for a value two nodes (or a node and an initializer or the graph input)
/// define, an input nothing defines, a cycle (its nodes named), or a node reading a later
/// node's output.
pub(super) fn check(graph: &GraphProto) -> Result<BTreeMap<String, usize>> {
    // Who defines each value: None for initializers and graph inputs, Some(node) for outputs.
    let mut defined: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for t in &graph.initializers {
        defined.insert(t.name.as_str(), None);
    }
    for v in &graph.inputs {
        defined.insert(v.name.as_str(), None);
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        for out in node.outputs.iter().filter(|o| !o.is_empty()) {
            if let Some(prev) = defined.insert(out.as_str(), Some(i)) {
                let by = match prev {
                    Some(j) => node_label(j, &graph.nodes[j]),
                    None => "an initializer or the graph input".into(),
                };
                return Err(Error::malformed(
                    "ONNX",
                    format!(
                        "{} defines '{out}', which {by} already defines (each value must have \
                         one producer)",
                        node_label(i, node)
                    ),
                ));
            }
        }
    }
    let mut readers: BTreeMap<String, usize> = BTreeMap::new();
    // deps[i]: the nodes whose outputs node i reads.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len()];
    let mut later: Option<(usize, usize, &str)> = None;
    for (i, node) in graph.nodes.iter().enumerate() {
        for name in node.inputs.iter().filter(|n| !n.is_empty()) {
            match defined.get(name.as_str()) {
                None => {
                    return Err(Error::malformed(
                        "ONNX",
                        format!(
                            "{} reads '{name}', which no node, initializer or graph input \
                             defines (a dangling input)",
                            node_label(i, node)
                        ),
                    ));
                }
                Some(Some(j)) => {
                    deps[i].push(*j);
                    if *j >= i && later.is_none() {
                        later = Some((i, *j, name.as_str()));
                    }
                }
                Some(None) => {}
            }
            // Shape and Size read only the shape, CastLike's second input only the type: they
            // do not count as readers of the data.
            let metadata = match node.op_type.as_str() {
                "Shape" | "Size" => true,
                "CastLike" => node.inputs.get(1) == Some(name),
                _ => false,
            };
            if !metadata {
                *readers.entry(name.clone()).or_insert(0) += 1;
            }
        }
    }
    for v in &graph.outputs {
        if !defined.contains_key(v.name.as_str()) {
            return Err(Error::malformed(
                "ONNX",
                format!("the graph output '{}' is not defined by any node", v.name),
            ));
        }
        *readers.entry(v.name.clone()).or_insert(0) += 1;
    }
    if let Some((i, j, name)) = later {
        if let Some(cycle) = find_cycle(&deps) {
            let path = cycle
                .iter()
                .map(|&k| node_label(k, &graph.nodes[k]))
                .collect::<Vec<_>>()
                .join(" → ");
            return Err(Error::malformed(
                "ONNX",
                format!("the graph has a cycle: {path} → back to the first"),
            ));
        }
        return Err(Error::malformed(
            "ONNX",
            format!(
                "{} reads '{name}', the output of the later {}: ONNX requires the nodes in \
                 topological order",
                node_label(i, &graph.nodes[i]),
                node_label(j, &graph.nodes[j])
            ),
        ));
    }
    Ok(readers)
}

/// A cycle in the dependency lists (each node's predecessors), as the nodes along it.
fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Iterative depth-first search: 0 unvisited, 1 on the stack, 2 done.
    let mut state = vec![0u8; deps.len()];
    for start in 0..deps.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&w) = deps[v].get(*next) {
                *next += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let from = stack.iter().position(|&(u, _)| u == w).unwrap_or(0);
                        let mut cycle: Vec<usize> = stack[from..].iter().map(|&(u, _)| u).collect();
                        cycle.reverse(); // dependencies point backwards: print data flow order
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    None
}
