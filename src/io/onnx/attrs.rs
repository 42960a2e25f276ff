//! Node attribute readers (`attr_int`, `pair`, `pads`, …) and their bounds; uses only `proto`.

use super::proto::{AttributeProto, NodeProto};
use crate::error::{Error, Result};

pub(super) fn attr<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attributes.iter().find(|a| a.name == name)
}

pub(super) fn attr_int(node: &NodeProto, name: &str, default: i64) -> Result<i64> {
    match attr(node, name) {
        None => Ok(default),
        Some(a) => a.i.ok_or_else(|| {
            Error::malformed("ONNX", format!("attribute {name} has no integer value"))
        }),
    }
}

/// A float attribute, `None` if the node has none of that name.
pub(super) fn attr_opt_float(node: &NodeProto, name: &str) -> Result<Option<f32>> {
    attr(node, name)
        .map(|a| {
            a.f.ok_or_else(|| {
                Error::malformed("ONNX", format!("attribute {name} has no float value"))
            })
        })
        .transpose()
}

pub(super) fn attr_float(node: &NodeProto, name: &str, default: f32) -> Result<f32> {
    Ok(attr_opt_float(node, name)?.unwrap_or(default))
}

pub(super) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn attr_string(node: &NodeProto, name: &str) -> Option<String> {
    attr(node, name)
        .map(|a| String::from_utf8_lossy(a.s.as_deref().unwrap_or_default()).into_owned())
}

/// An axis counted from the end (`-1` = last) as counted from the front, for a tensor of
/// `rank` axes; out-of-range axes are left for the caller to refuse.
pub(super) fn from_front(axis: i64, rank: i64) -> i64 {
    if axis < 0 { axis + rank } else { axis }
}

/// The largest kernel, stride, padding, dilation or group count accepted.
const MAX_ATTRIBUTE: i64 = 1 << 24;

pub(super) fn to_usize(v: i64, what: &str) -> Result<usize> {
    if v > MAX_ATTRIBUTE {
        return Err(Error::malformed(
            "ONNX",
            format!("{what} = {v} is absurdly large (limit {MAX_ATTRIBUTE})"),
        ));
    }
    usize::try_from(v).map_err(|_| Error::Unsupported(format!("{what} = {v} must be ≥ 0")))
}

/// A pair from a two-element attribute (`strides`, `dilations`, `kernel_shape`).
pub(super) fn pair(
    node: &NodeProto,
    name: &str,
    default: (usize, usize),
) -> Result<(usize, usize)> {
    match attr_ints(node, name) {
        None => Ok(default),
        Some(v) if v.len() == 2 => Ok((to_usize(v[0], name)?, to_usize(v[1], name)?)),
        Some(v) => Err(Error::Unsupported(format!(
            "{name} = {v:?}: only 2-D operations are supported"
        ))),
    }
}

/// The `auto_pad` attribute (`NOTSET` when absent).
fn auto_pad(node: &NodeProto) -> String {
    attr_string(node, "auto_pad").unwrap_or_else(|| "NOTSET".into())
}

/// The explicit `pads` of a 2-D operation, (top, left, bottom, right) as written; `None` when
/// absent.
fn explicit_pads(node: &NodeProto) -> Result<Option<Vec<i64>>> {
    match attr_ints(node, "pads") {
        None => Ok(None),
        Some(p) if p.len() == 4 => Ok(Some(p)),
        Some(p) => Err(Error::Unsupported(format!(
            "pads = {p:?}: only 2-D operations are supported"
        ))),
    }
}

/// `pads` as symmetric (vertical, horizontal) padding, honouring `auto_pad`.
pub(super) fn pads(node: &NodeProto) -> Result<(usize, usize)> {
    match auto_pad(node).as_str() {
        "NOTSET" | "" => {}
        "VALID" => return Ok((0, 0)),
        other => {
            return Err(Error::Unsupported(format!(
                "auto_pad = {other} (only NOTSET and VALID are supported; export with explicit pads)"
            )));
        }
    }
    match explicit_pads(node)? {
        None => Ok((0, 0)),
        Some(p) => {
            if p[0] != p[2] || p[1] != p[3] {
                return Err(Error::Unsupported(format!(
                    "asymmetric pads {p:?} (begin and end padding must be equal)"
                )));
            }
            Ok((to_usize(p[0], "pads")?, to_usize(p[1], "pads")?))
        }
    }
}

/// A convolution's (top, left, bottom, right) padding, honouring `auto_pad` (`SAME_UPPER` and
/// `SAME_LOWER` computed from the input size as ONNX defines them).
pub(super) fn conv_pads(
    node: &NodeProto,
    (h, w): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    dilation: (usize, usize),
) -> Result<[usize; 4]> {
    let auto = auto_pad(node);
    let same = |input: usize, k: usize, s: usize, d: usize| -> usize {
        let s = s.max(1);
        let out = input.div_ceil(s);
        let reach = k.saturating_sub(1).saturating_mul(d).saturating_add(1);
        out.saturating_sub(1)
            .saturating_mul(s)
            .saturating_add(reach)
            .saturating_sub(input)
    };
    match auto.as_str() {
        "NOTSET" | "" => match explicit_pads(node)? {
            None => Ok([0; 4]),
            Some(p) => Ok([
                to_usize(p[0], "pads")?,
                to_usize(p[1], "pads")?,
                to_usize(p[2], "pads")?,
                to_usize(p[3], "pads")?,
            ]),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let th = same(h, kernel.0, stride.0, dilation.0);
            let tw = same(w, kernel.1, stride.1, dilation.1);
            let (small_h, small_w) = (th / 2, tw / 2);
            Ok(if auto == "SAME_UPPER" {
                [small_h, small_w, th - small_h, tw - small_w]
            } else {
                [th - small_h, tw - small_w, small_h, small_w]
            })
        }
        other => Err(Error::Unsupported(format!("auto_pad = {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_attributes_are_refused() {
        assert!(to_usize(1 << 40, "pads").is_err());
        assert!(to_usize(-1, "pads").is_err());
        assert_eq!(to_usize(3, "pads").unwrap(), 3);
    }
}
