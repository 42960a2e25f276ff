//! `paths.json`: the strongest paths and the sampled paths as JSON (a contract, docs/paths.md).
//!
//! Written by hand (no serde in klrp): numbers in Rust's shortest round-trip form, so a reader
//! gets back exactly the `f64` strengths and shares (and the `f32` shares `d`).

use super::{Path, Step};
use std::fmt::Write;

/// `{"node": N, "index": J, "coords": [...], "share": S, "d": D}` (`node` −1 for the input, no
/// `share` there; `d` only where Θ was applied).
fn step_json(out: &mut String, s: &Step) {
    let node = s.node.map_or(-1, |n| n as i64);
    let _ = write!(
        out,
        "{{\"node\": {node}, \"index\": {}, \"coords\": [",
        s.index
    );
    for (i, c) in s.coords.iter().enumerate() {
        let _ = write!(out, "{}{c}", if i > 0 { ", " } else { "" });
    }
    out.push(']');
    if s.node.is_some() {
        let _ = write!(out, ", \"share\": {}", number(s.share));
    }
    if let Some(d) = s.d {
        let _ = write!(out, ", \"d\": {}", number32(d));
    }
    out.push('}');
}

fn steps_json(out: &mut String, steps: &[Step]) {
    out.push_str("\"steps\": [");
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        step_json(out, s);
    }
    out.push(']');
}

/// A finite `f64` in shortest round-trip form (`1.0`, `0.25`, `1e-7`); non-finite as `null`.
pub(crate) fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "null".into()
    }
}

fn number32(v: f32) -> String {
    if v.is_finite() {
        format!("{v:?}")
    } else {
        "null".into()
    }
}

/// The strongest paths as `paths.json`:
/// `{"target": C, "semiring": "viterbi", "paths": [{"strength": S, "steps": [...]}, ...]}`.
///
/// ```
/// use klrp::paths::{Path, Step, paths_json};
/// let step = |node, index, share| Step { node, index, coords: vec![index], operand: 0, share, d: None };
/// let p = Path { strength: 0.5, steps: vec![step(None, 1, 1.0), step(Some(0), 0, 0.5)] };
/// assert_eq!(
///     paths_json(0, &[p]),
///     "{\"target\": 0, \"semiring\": \"viterbi\", \"paths\": [\n  {\"strength\": 0.5, \"steps\": \
///      [{\"node\": -1, \"index\": 1, \"coords\": [1]}, {\"node\": 0, \"index\": 0, \"coords\": [0], \
///      \"share\": 0.5}]}\n]}\n"
/// );
/// ```
pub fn paths_json(target: usize, paths: &[Path]) -> String {
    let mut out = format!("{{\"target\": {target}, \"semiring\": \"viterbi\", \"paths\": [");
    for (i, p) in paths.iter().enumerate() {
        out.push_str(if i > 0 { ",\n  " } else { "\n  " });
        let _ = write!(out, "{{\"strength\": {}, ", number(p.strength));
        steps_json(&mut out, &p.steps);
        out.push('}');
    }
    out.push_str(if paths.is_empty() { "]}\n" } else { "\n]}\n" });
    out
}

/// Sampled relevant paths as JSON: `{"target": C, "semiring": "counting", "theta": T,
/// "relevant_paths": P, "seed": S, "sampled": [{"steps": [...]}, ...]}` (`P` the number of relevant
/// paths they were drawn from).
pub fn sample_json(target: usize, theta: f32, relevant: u128, seed: u64, paths: &[Path]) -> String {
    let mut out = format!(
        "{{\"target\": {target}, \"semiring\": \"counting\", \"theta\": {}, \"relevant_paths\": \
         {relevant}, \"seed\": {seed}, \"sampled\": [",
        number32(theta)
    );
    for (i, p) in paths.iter().enumerate() {
        out.push_str(if i > 0 { ",\n  " } else { "\n  " });
        out.push('{');
        steps_json(&mut out, &p.steps);
        out.push('}');
    }
    out.push_str(if paths.is_empty() { "]}\n" } else { "\n]}\n" });
    out
}
