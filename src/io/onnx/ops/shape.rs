//! Shape and routing: `Flatten`, `Reshape` (as a flatten or to the same shape) and `Dropout`
//! (inference: an identity); uses the `Importer`, `attrs`, `fold`'s `BATCH` and the layers.

use super::Mapped;
use crate::error::{Error, Result};
use crate::io::onnx::attrs::{attr_int, from_front};
use crate::io::onnx::fold::BATCH;
use crate::io::onnx::importer::Importer;
use crate::io::onnx::proto::NodeProto;
use crate::layers::{Dropout, Flatten, IdentityLayer};

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

/// `Reshape` to `[N, -1]` (a [`Flatten`]) or to the shape it has (an identity).
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
        Err(Error::Unsupported(format!(
            "Reshape of [N, {}] to [{}]: only a flatten to [N, -1] is supported",
            imp.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            show_dims(t)
        )))
    }
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
