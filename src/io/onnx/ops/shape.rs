//! Shape and routing: `Flatten`, `Reshape`, `Squeeze`, `Unsqueeze` (the data order kept: a
//! [`Reshape`] layer), `Transpose`, `Slice`, `Gather` with constant indices, `Split` (a
//! [`Route`] each) and `Dropout` (inference: an identity); uses the `Importer`, `attrs`,
//! `fold` (`BATCH`, the evaluator that computes each route's index map) and the layers.
//!
//! The batch axis stays first: a node that would move, merge, split, slice or gather it is
//! refused. A route's map is the node evaluated at import on the indices `0..n` of one sample
//! (shape `[1, sample…]`) in place of its data, by the same evaluator that folds constants, so
//! the routing and the folding of each operator are one implementation.

use super::Mapped;
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr_int, attr_ints, from_front};
use crate::io::onnx::fold::{self, BATCH, Const};
use crate::io::onnx::importer::Importer;
use crate::io::onnx::proto::{NodeProto, Values};
use crate::layers::{Dropout, Flatten, IdentityLayer, Layer, Reshape, Route};
use crate::tensor::join_dims;
use std::rc::Rc;

pub(super) fn dropout(imp: &Importer, node: &NodeProto) -> Result<Dropout> {
    if let Some(t) = imp.opt_const_input(node, 2, "training_mode")?
        && t.ints("training_mode")?.iter().any(|&v| v != 0)
    {
        return Err(Error::Unsupported("Dropout in training mode".into()));
    }
    Ok(Dropout)
}

pub(super) fn flatten(imp: &Importer, node: &NodeProto) -> Result<Flatten> {
    let rank = imp.shape.len() as i64 + 1;
    let given = attr_int(node, "axis", 1)?;
    if from_front(given, rank) != 1 {
        return Err(Error::Unsupported(format!(
            "Flatten with axis {given} on rank {rank} (only axis 1, keeping the batch axis, is \
             supported)"
        )));
    }
    Ok(Flatten)
}

/// `Reshape`: to `[N, -1]` a [`Flatten`], to the shape it has an identity, to any other
/// per-sample shape of as many elements a [`Reshape`] (the batch axis kept first).
pub(super) fn reshape(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let target = imp.const_input(node, 1, "target shape")?;
    let t = target.ints("the Reshape target shape")?;
    let allowzero = attr_int(node, "allowzero", 0)? != 0;
    if is_flatten(imp, t, allowzero) {
        Ok((Box::new(Flatten), Some("reshape to [N, -1]".into())))
    } else if is_same_shape(imp, t, allowzero) {
        Ok((
            Box::new(IdentityLayer),
            Some("reshape to the same shape".into()),
        ))
    } else {
        Ok((
            Box::new(Reshape::new(&reshape_shape(imp, t, allowzero)?)?),
            None,
        ))
    }
}

/// The per-sample shape a Reshape target `t` gives `[N, ...imp.shape]`: its first entry must be
/// the batch (the symbol, `0` unless `allowzero`, the declared batch size, or a `-1` that keeps
/// it), the others are ONNX's (`0` copies, one `-1` infers).
///
/// # Errors
/// [`Error::Unsupported`] for a target that moves, merges or splits the batch axis;
/// [`Error::Malformed`] for one whose element count differs from the sample's.
fn reshape_shape(imp: &Importer, t: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let per_sample: usize = imp.shape.iter().product();
    let Some((&first, rest)) = t.split_first() else {
        return Err(Error::Unsupported(
            "Reshape to a scalar (klrp keeps the batch axis)".into(),
        ));
    };
    let batch = is_batch(imp, first, allowzero);
    let shown = |first_is_batch: bool| {
        let mut dims = vec![if first_is_batch {
            "N".to_string()
        } else {
            show_dims(&[first])
        }];
        dims.extend(rest.iter().map(|&d| show_dims(&[d])));
        format!(
            "Reshape of [N, {}] to [{}]",
            join_dims(&imp.shape),
            dims.join(", ")
        )
    };
    if rest.contains(&BATCH) || !(batch || first == -1) {
        return Err(Error::Unsupported(format!(
            "{}: the batch axis must stay the first axis, of size N (klrp never moves, merges \
             or splits it)",
            shown(false)
        )));
    }
    // What the other entries hold: `0` copies the input's axis, `-1` is left out.
    let known: u128 = rest
        .iter()
        .enumerate()
        .filter(|&(_, &d)| d != -1)
        .map(|(k, &d)| match (d, imp.shape.get(k)) {
            (0, Some(&s)) if !allowzero => s as u128,
            (d, _) => u128::try_from(d).unwrap_or(0),
        })
        .product();
    let infers = rest.contains(&-1);
    if first == -1 && !batch && (infers || known != per_sample as u128) {
        return Err(Error::Unsupported(format!(
            "{}: the -1 would not be the batch size ({per_sample} elements per sample, the other \
             axes hold {known}); klrp never merges or splits the batch axis",
            shown(false)
        )));
    }
    fold::reshape_target(&imp.shape, rest, allowzero).map_err(|_| {
        let to = if infers {
            format!("a multiple of {known}")
        } else {
            known.to_string()
        };
        Error::malformed(
            "ONNX",
            format!(
                "{}: {per_sample} elements per sample cannot become {to}",
                shown(true)
            ),
        )
    })
}

/// The index maps of a routing node on an input of per-sample shape `imp.shape`: the node
/// evaluated on the indices `0..n` of one sample (shape `[1, sample…]`) in place of its data
/// (input 0), its other inputs the node's constants. One (per-sample shape, map) per output.
///
/// # Errors
/// As the evaluator (bad axes, indices, sizes); [`Error::Unsupported`] if an output lost the
/// batch axis (the callers refuse those nodes first).
fn routes(imp: &Importer, node: &NodeProto) -> Result<Vec<(Vec<usize>, Vec<usize>)>> {
    let n: usize = imp.shape.iter().product();
    let n = i64::try_from(n).map_err(|_| Error::Unsupported("a sample too large".into()))?;
    let iota = Rc::new(Const {
        shape: std::iter::once(1)
            .chain(imp.shape.iter().copied())
            .collect(),
        values: Values::I64((0..n).collect()),
    });
    let outs = fold::eval(node, &|k| {
        if k == 0 {
            Ok(Some(iota.clone()))
        } else {
            imp.opt_const_input(node, k, "input")
        }
    })?;
    outs.into_iter()
        .map(|c| {
            let Some((&1, sample)) = c.shape.split_first() else {
                return Err(Error::Unsupported(format!(
                    "{} output of shape {:?} per batch of one: the batch axis is not first",
                    node.op_type, c.shape
                )));
            };
            let map = c
                .ints("route")?
                .iter()
                .map(|&j| j as usize)
                .collect::<Vec<_>>();
            Ok((sample.to_vec(), map))
        })
        .collect()
}

/// A route from `imp.shape` to `shape` along `map`: a [`Reshape`] when the map keeps every
/// element in place (the data order unchanged), else a [`Route`].
fn route_layer(
    imp: &Importer,
    op: &str,
    (shape, map): (Vec<usize>, Vec<usize>),
) -> Result<Box<dyn Layer>> {
    if map.len() == imp.shape.iter().product::<usize>()
        && map.iter().enumerate().all(|(k, &j)| k == j)
    {
        if shape == imp.shape {
            return Ok(Box::new(IdentityLayer));
        }
        return Ok(Box::new(Reshape::new(&shape)?));
    }
    Ok(Box::new(Route::new(op, &imp.shape, &shape, map)?))
}

/// The single route of a one-output routing node.
fn one_route(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let mut outs = routes(imp, node)?;
    let route = outs
        .pop()
        .filter(|_| outs.is_empty())
        .ok_or_else(|| Error::malformed("ONNX", "a routing node with no single output"))?;
    Ok((route_layer(imp, &node.op_type, route)?, None))
}

/// The error for a node that would touch the batch axis (axis 0).
fn batch_axis(op: &str, what: &str) -> Error {
    Error::Unsupported(format!(
        "{op} {what} the batch axis (axis 0); klrp keeps the batch axis first and whole"
    ))
}

/// An `axes` list: the attribute (opsets before 13) or constant input 1 (from 13); `None` when
/// neither is given.
fn axes(imp: &Importer, node: &NodeProto) -> Result<Option<Vec<i64>>> {
    if let Some(a) = attr_ints(node, "axes") {
        return Ok(Some(a));
    }
    Ok(match imp.opt_const_input(node, 1, "axes")? {
        Some(c) => Some(c.ints("the axes")?.to_vec()),
        None => None,
    })
}

/// `Transpose` with a `perm` that keeps the batch axis first: a [`Route`] (a permutation).
pub(super) fn transpose(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let rank = imp.shape.len() as i64 + 1;
    let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..rank).rev().collect());
    let mut sorted: Vec<i64> = perm.iter().map(|&p| from_front(p, rank)).collect();
    sorted.sort_unstable();
    let permutes = sorted.iter().copied().eq(0..rank);
    if permutes && from_front(perm[0], rank) != 0 {
        return Err(batch_axis(
            "Transpose",
            &format!("with perm {perm:?} moves"),
        ));
    }
    // The evaluator refuses a `perm` that is not a permutation of the axes.
    one_route(imp, node)
}

/// `Squeeze` of per-sample axes of size 1 (all of them when no axes are given): a [`Reshape`].
pub(super) fn squeeze(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let rank = imp.shape.len() as i64 + 1;
    match axes(imp, node)? {
        Some(a) => {
            if a.iter().any(|&x| from_front(x, rank) == 0) {
                return Err(batch_axis("Squeeze", "removes"));
            }
            one_route(imp, node)
        }
        None => {
            let shape: Vec<usize> = imp.shape.iter().copied().filter(|&d| d != 1).collect();
            if shape.is_empty() {
                return Err(Error::Unsupported(
                    "Squeeze would leave each sample without an axis".into(),
                ));
            }
            Ok((Box::new(Reshape::new(&shape)?), None))
        }
    }
}

/// `Unsqueeze`: new axes of size 1 after the batch axis, a [`Reshape`].
pub(super) fn unsqueeze(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let a = axes(imp, node)?.ok_or_else(|| Error::malformed("ONNX", "Unsqueeze without axes"))?;
    let rank = (imp.shape.len() + 1 + a.len()) as i64;
    if a.iter().any(|&x| from_front(x, rank) == 0) {
        return Err(batch_axis("Unsqueeze", "puts a new axis before"));
    }
    one_route(imp, node)
}

/// `Slice` with constant starts, ends, axes and steps (ONNX's negative values and clamping),
/// none slicing the batch axis (a whole-axis slice of it, `0:` to the end by 1, is allowed).
pub(super) fn slice(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let rank = imp.shape.len() as i64 + 1;
    let list = |k: usize, name: &str| -> Result<Option<Vec<i64>>> {
        if let Some(a) = attr_ints(node, name) {
            return Ok(Some(a));
        }
        match imp.opt_const_input(node, k, name)? {
            Some(c) => Ok(Some(c.ints(name)?.to_vec())),
            None => Ok(None),
        }
    };
    let starts = list(1, "starts")?.unwrap_or_default();
    let ends = list(2, "ends")?.unwrap_or_default();
    let axes = list(3, "axes")?;
    let steps = list(4, "steps")?;
    for (k, (&start, &end)) in starts.iter().zip(&ends).enumerate() {
        let axis = axes
            .as_ref()
            .map_or(k as i64, |a| a.get(k).copied().unwrap_or(-1));
        let step = steps.as_ref().map_or(1, |s| s.get(k).copied().unwrap_or(1));
        let whole = start == 0 && step == 1 && end >= i64::from(i32::MAX);
        if from_front(axis, rank) == 0 && !whole {
            return Err(batch_axis(
                "Slice",
                &format!("[{start}:{end}:{step}] slices"),
            ));
        }
    }
    one_route(imp, node)
}

/// `Gather` with constant indices (negative ones counted from the end) on a per-sample axis.
pub(super) fn gather(imp: &Importer, node: &NodeProto) -> Result<Mapped> {
    let rank = imp.shape.len() as i64 + 1;
    let axis = from_front(attr_int(node, "axis", 0)?, rank);
    if axis == 0 {
        return Err(batch_axis("Gather", "picks from"));
    }
    // The output's size before it is built: the sample with the axis replaced by the indices.
    let indices = imp.const_input(node, 1, "indices")?;
    let along = usize::try_from(axis - 1)
        .ok()
        .and_then(|a| imp.shape.get(a))
        .copied()
        .unwrap_or(1)
        .max(1);
    let count = (imp.shape.iter().product::<usize>() / along) as u128 * indices.len() as u128;
    if count > u128::from(imp.max_sample_elements) {
        return Err(Error::TooLarge {
            what: "the Gather's output".into(),
            requested: count,
            limit: u128::from(imp.max_sample_elements),
        });
    }
    one_route(imp, node)
}

/// `Split` on a per-sample axis (sizes from the `split` attribute, input 1 or `num_outputs`,
/// else equal parts): one [`Route`] per output.
pub(super) fn split(imp: &Importer, node: &NodeProto) -> Result<Vec<Box<dyn Layer>>> {
    let rank = imp.shape.len() as i64 + 1;
    if from_front(attr_int(node, "axis", 0)?, rank) == 0 {
        return Err(batch_axis("Split", "splits"));
    }
    routes(imp, node)?
        .into_iter()
        .map(|r| route_layer(imp, "Split", r))
        .collect()
}

/// Whether the Reshape target entry `v` is the batch: the symbol, a copied axis (`0`, unless
/// `allowzero`) or the declared batch size.
fn is_batch(imp: &Importer, v: i64, allowzero: bool) -> bool {
    v == BATCH || (v == 0 && !allowzero) || (v > 0 && usize::try_from(v).ok() == imp.declared_batch)
}

/// Whether a Reshape target `t` flattens `[N, ...shape]` to `[N, prod]`.
fn is_flatten(imp: &Importer, t: &[i64], allowzero: bool) -> bool {
    let prod: usize = imp.shape.iter().product();
    let Ok(prod) = i64::try_from(prod) else {
        return false;
    };
    let &[a, b] = t else {
        return false;
    };
    (is_batch(imp, a, allowzero) && (b == -1 || b == prod)) || (a == -1 && b == prod)
}

/// Whether a Reshape target `t` keeps `[N, ...shape]` as it is.
fn is_same_shape(imp: &Importer, t: &[i64], allowzero: bool) -> bool {
    if t.len() != imp.shape.len() + 1 {
        return false;
    }
    (is_batch(imp, t[0], allowzero) || t[0] == -1)
        && t[1..]
            .iter()
            .zip(&imp.shape)
            .all(|(&v, &d)| usize::try_from(v).ok() == Some(d) || (v == 0 && !allowzero))
}

/// A shape tensor's dimensions for a message, the batch symbol as `N`.
fn show_dims(v: &[i64]) -> String {
    v.iter()
        .map(|&d| {
            if d == BATCH {
                "N".into()
            } else {
                d.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
