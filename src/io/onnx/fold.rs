//! Constant folding: a small evaluator for the ONNX nodes whose inputs are all constants, and
//! the identities that stand for the folded nodes in the network; uses `proto`, `attrs` and the
//! `Importer`.
//!
//! Exporters compute padding amounts, reshape targets and clip bounds with small subgraphs of
//! shape arithmetic (`Shape`, `Gather`, `Unsqueeze`, `Concat`, `ConstantOfShape`, `Reshape`,
//! `Transpose`, `Slice`, `Cast`, `Mul`, `Sub`, …). klrp evaluates them at import. Integer tensors
//! may hold the batch size as the symbol [`BATCH`]; it passes through the shape operators that
//! only move elements (`Gather`, `Unsqueeze`, `Squeeze`, `Concat`, `Slice`, `Reshape`,
//! `Transpose`, `Identity`) and is refused by arithmetic. Every result is bounded by
//! [`MAX_TENSOR_ELEMENTS`] and every index is checked: bad input is an error, never a panic.

use super::MAX_TENSOR_ELEMENTS;
use super::attrs::{attr, attr_int, attr_ints};
use super::importer::{Act, Importer, Value, node_label};
use super::proto::{AttributeProto, NodeProto, Values, dtype};
use crate::error::{Error, Result};
use crate::graph::Source;
use crate::layers::{IdentityLayer, LayerKind};
use std::collections::BTreeSet;
use std::rc::Rc;

/// The batch dimension inside constant shape tensors (from `Shape` of the activation).
pub(super) const BATCH: i64 = i64::MIN;

/// A constant tensor: its shape and values.
#[derive(Clone, Debug)]
pub(super) struct Const {
    pub shape: Vec<usize>,
    pub values: Values,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("ONNX", reason)
}

impl Const {
    pub(super) fn ints(&self, what: &str) -> Result<&[i64]> {
        match &self.values {
            Values::I64(v) => Ok(v),
            Values::F32(_) => Err(Error::Unsupported(format!(
                "{what} must be an integer tensor"
            ))),
        }
    }

    pub(super) fn floats(&self, what: &str) -> Result<&[f32]> {
        match &self.values {
            Values::F32(v) => Ok(v),
            Values::I64(_) => Err(Error::Unsupported(format!("{what} must be a float tensor"))),
        }
    }

    pub(super) fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// The single value of a scalar or one-element tensor, as a float (integers converted).
    pub(super) fn scalar_f32(&self, what: &str) -> Result<f32> {
        match (&self.values, self.len()) {
            (Values::F32(v), 1) => Ok(v[0]),
            (Values::I64(v), 1) if v[0] != BATCH => Ok(v[0] as f32),
            _ => Err(Error::Unsupported(format!(
                "{what} must be a single number, found shape {:?}",
                self.shape
            ))),
        }
    }

    fn vector(values: Values) -> Const {
        let n = match &values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        };
        Const {
            shape: vec![n],
            values,
        }
    }

    /// The elements at the given flat indices (all checked in range by the caller).
    fn take(&self, picks: &[usize], shape: Vec<usize>) -> Const {
        let values = match &self.values {
            Values::I64(v) => Values::I64(picks.iter().map(|&k| v[k]).collect()),
            Values::F32(v) => Values::F32(picks.iter().map(|&k| v[k]).collect()),
        };
        Const { shape, values }
    }
}

// The folded nodes in the network: each is an identity spliced onto the latest activation.
impl Importer {
    /// `CastLike`: casts a constant to the type of input 1, which may be an activation (float).
    pub(super) fn fold_cast_like(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        let data = self.const_input(node, 0, "input")?;
        let to = match node.inputs.get(1).map(|n| self.value(n)).transpose()? {
            Some(Value::Const(c)) if matches!(c.values, Values::I64(_)) => dtype::INT64,
            Some(_) => dtype::FLOAT,
            None => return Err(Error::malformed("ONNX", "CastLike without a target")),
        };
        let c = cast(&data, to)?;
        self.splice_folded(i, node, vec![c], "constant")
    }

    /// A node reading no activation (constants and shape arithmetic): evaluated now.
    pub(super) fn fold_constants(&mut self, i: usize, node: &NodeProto) -> Result<()> {
        let outs = eval(node, &|k| self.opt_const_input(node, k, "input"))?;
        let note = if matches!(node.op_type.as_str(), "Constant" | "Identity") {
            "constant"
        } else {
            "shape computation"
        };
        self.splice_folded(i, node, outs, note)
    }

    /// `Shape` of the activation `a`: only the shape is read, the ONNX shape, with a pending
    /// Pad's padding.
    pub(super) fn fold_shape(&mut self, i: usize, node: &NodeProto, a: &Act) -> Result<()> {
        let mut dims: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
        if let (Some(p), 3) = (&a.pad, dims.len()) {
            dims[1] += (p.pads[0] + p.pads[2]) as i64;
            dims[2] += (p.pads[1] + p.pads[3]) as i64;
        }
        let full: Vec<i64> = std::iter::once(BATCH).chain(dims).collect();
        let c = Const::vector(Values::I64(shape_slice(node, &full)?));
        self.splice_folded(i, node, vec![c], "shape computation")
    }

    /// Records the values node `i` computed under its output names and splices it in.
    fn splice_folded(
        &mut self,
        i: usize,
        node: &NodeProto,
        outs: Vec<Const>,
        note: &str,
    ) -> Result<()> {
        self.define_outputs(i, node, outs);
        self.splice(i, node, note)
    }

    /// Adds node `i`, evaluated at import, as an identity reading the latest activation; later
    /// readers of that activation read the identity instead (the same values), so every node
    /// of the file is a node of the network and none dangles.
    fn splice(&mut self, i: usize, node: &NodeProto, note: &str) -> Result<()> {
        let Some(Value::Activation { from, shape, pad }) = self.values.get(&self.act).cloned()
        else {
            return Err(Error::malformed(
                "ONNX",
                "the latest activation is not defined",
            ));
        };
        self.values.insert(
            self.act.clone(),
            Value::Activation {
                from: Source::Node(self.layers.len()),
                shape,
                pad,
            },
        );
        self.push(
            i,
            node,
            Box::new(IdentityLayer),
            Some(note.into()),
            vec![from],
        );
        Ok(())
    }

    /// The source behind the identities spliced in for constants (see [`splice`](Self::splice)).
    pub(super) fn skip_constants(&self, mut from: Source) -> Source {
        while let Source::Node(p) = from
            && self.nodes[p].inputs.len() == 1
            && self.layers[p].kind() == LayerKind::Identity
            && matches!(
                self.nodes[p].note.as_deref(),
                Some("constant" | "shape computation")
            )
        {
            from = self.nodes[p].inputs[0];
        }
        from
    }

    /// Records the values a constant node computed under its output names.
    fn define_outputs(&mut self, i: usize, node: &NodeProto, outs: Vec<Const>) {
        let label = node_label(i, node);
        let mut outs = outs.into_iter();
        for name in &node.outputs {
            let value = match outs.next() {
                Some(c) => Value::Const(Rc::new(c)),
                None => Value::extra_output(&label),
            };
            if !name.is_empty() {
                self.values.insert(name.clone(), value);
            }
        }
    }
}

/// The element count of `shape`, checked against [`MAX_TENSOR_ELEMENTS`].
fn count(shape: &[usize], what: &str) -> Result<usize> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n.saturating_mul(d as u64);
    }
    if n > MAX_TENSOR_ELEMENTS {
        return Err(Error::TooLarge {
            what: format!("the constant {what}"),
            requested: u128::from(n),
            limit: u128::from(MAX_TENSOR_ELEMENTS),
        });
    }
    usize::try_from(n).map_err(|_| Error::Unsupported(format!("{what} is too large")))
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1].saturating_mul(shape[k + 1]);
    }
    s
}

/// `axis` (possibly negative) as an index into `rank` axes.
fn norm_axis(axis: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 {
        axis.saturating_add(r)
    } else {
        axis
    };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(bad(format!(
            "{what} axis {axis} out of range for rank {rank}"
        )))
    }
}

/// Calls `f(flat index in the source)` for every element of a view with `shape` whose axis `k`
/// steps by `src_strides[k]` in the source, starting at `offset`; in row-major order.
fn walk(shape: &[usize], src_strides: &[usize], offset: usize, mut f: impl FnMut(usize)) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    let mut pos = offset;
    loop {
        f(pos);
        let mut k = shape.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            pos += src_strides[k];
            if idx[k] < shape[k] {
                break;
            }
            pos -= src_strides[k] * idx[k];
            idx[k] = 0;
        }
    }
}

/// The input names a node reads, by position (`""` for an omitted optional input).
fn inputs(node: &NodeProto) -> &[String] {
    &node.inputs
}

/// Evaluates a node whose inputs are all constants; `input(k)` gives constant input `k`, or
/// `None` when it is absent.
pub(super) fn eval(
    node: &NodeProto,
    input: &dyn Fn(usize) -> Result<Option<Rc<Const>>>,
) -> Result<Vec<Const>> {
    let need = |k: usize| -> Result<Rc<Const>> {
        input(k)?.ok_or_else(|| bad(format!("{} without input {k}", node.op_type)))
    };
    let ints_of = |k: usize, what: &str| -> Result<Option<Vec<i64>>> {
        input(k)?
            .map(|c| c.ints(what).map(<[i64]>::to_vec))
            .transpose()
    };
    let one = |c: Const| Ok(vec![c]);
    match node.op_type.as_str() {
        "Constant" => one(constant_value(node)?),
        "Identity" => one((*need(0)?).clone()),
        "Cast" => one(cast(&*need(0)?, attr_int(node, "to", 0)?)?),
        "Shape" => {
            let c = need(0)?;
            let full: Vec<i64> = c.shape.iter().map(|&d| d as i64).collect();
            one(Const::vector(Values::I64(shape_slice(node, &full)?)))
        }
        "Expand" => {
            let data = need(0)?;
            let dims = need(1)?
                .ints("the Expand shape")?
                .iter()
                .map(|&d| {
                    usize::try_from(d)
                        .map_err(|_| Error::Unsupported(format!("Expand to dimension {d}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let shape = broadcast(&data.shape, &dims)?;
            count(&shape, "Expand output")?;
            let picks = broadcast_picks(&data.shape, &shape);
            one(data.take(&picks, shape))
        }
        "Size" => one(Const {
            shape: vec![],
            values: Values::I64(vec![need(0)?.len() as i64]),
        }),
        "Gather" => one(gather(&*need(0)?, &*need(1)?, attr_int(node, "axis", 0)?)?),
        "Unsqueeze" => {
            let data = need(0)?;
            let axes = match attr_ints(node, "axes") {
                Some(a) => a,
                None => {
                    ints_of(1, "Unsqueeze axes")?.ok_or_else(|| bad("Unsqueeze without axes"))?
                }
            };
            let rank = data.shape.len() + axes.len();
            let mut axes = axes
                .iter()
                .map(|&a| norm_axis(a, rank, "Unsqueeze"))
                .collect::<Result<Vec<_>>>()?;
            axes.sort_unstable();
            axes.dedup();
            let mut shape = data.shape.clone();
            for a in axes {
                if a > shape.len() {
                    return Err(bad("Unsqueeze axes out of range"));
                }
                shape.insert(a, 1);
            }
            one(Const {
                shape,
                values: data.values.clone(),
            })
        }
        "Squeeze" => {
            let data = need(0)?;
            let axes = match attr_ints(node, "axes") {
                Some(a) => Some(a),
                None => ints_of(1, "Squeeze axes")?,
            };
            let drop: BTreeSet<usize> = match axes {
                None => (0..data.shape.len())
                    .filter(|&k| data.shape[k] == 1)
                    .collect(),
                Some(a) => a
                    .iter()
                    .map(|&x| {
                        let k = norm_axis(x, data.shape.len(), "Squeeze")?;
                        if data.shape[k] == 1 {
                            Ok(k)
                        } else {
                            Err(bad(format!(
                                "Squeeze axis {x} is not a dimension of size 1"
                            )))
                        }
                    })
                    .collect::<Result<_>>()?,
            };
            let shape = (0..data.shape.len())
                .filter(|k| !drop.contains(k))
                .map(|k| data.shape[k])
                .collect();
            one(Const {
                shape,
                values: data.values.clone(),
            })
        }
        "Concat" => {
            let mut parts = Vec::new();
            for k in 0..inputs(node).len() {
                if let Some(c) = input(k)? {
                    parts.push(c);
                }
            }
            one(concat(&parts, attr_int(node, "axis", 0)?)?)
        }
        "Slice" => {
            let data = need(0)?;
            let (starts, ends, axes, steps) = match attr_ints(node, "starts") {
                Some(s) => (
                    s,
                    attr_ints(node, "ends").ok_or_else(|| bad("Slice without ends"))?,
                    attr_ints(node, "axes"),
                    None,
                ),
                None => (
                    ints_of(1, "Slice starts")?.ok_or_else(|| bad("Slice without starts"))?,
                    ints_of(2, "Slice ends")?.ok_or_else(|| bad("Slice without ends"))?,
                    ints_of(3, "Slice axes")?,
                    ints_of(4, "Slice steps")?,
                ),
            };
            one(slice(
                &data,
                &starts,
                &ends,
                axes.as_deref(),
                steps.as_deref(),
            )?)
        }
        "Split" => {
            let data = need(0)?;
            let rank = data.shape.len();
            let axis = norm_axis(attr_int(node, "axis", 0)?, rank, "Split")?;
            let given = match attr_ints(node, "split") {
                Some(s) => Some(s),
                None => ints_of(1, "Split sizes")?,
            };
            let sizes = split_sizes(node, data.shape[axis], given.as_deref())?;
            let mut start = 0i64;
            let mut outs = Vec::with_capacity(sizes.len());
            for size in sizes {
                let end = start + size as i64;
                outs.push(slice(&data, &[start], &[end], Some(&[axis as i64]), None)?);
                start = end;
            }
            Ok(outs)
        }
        "Reshape" => {
            let data = need(0)?;
            let target = need(1)?;
            let allowzero = attr_int(node, "allowzero", 0)? != 0;
            let shape = reshape_target(&data.shape, target.ints("the Reshape target")?, allowzero)?;
            one(Const {
                shape,
                values: data.values.clone(),
            })
        }
        "Flatten" => {
            let data = need(0)?;
            let axis = attr_int(node, "axis", 1)?;
            let rank = data.shape.len();
            let a = if axis < 0 { axis + rank as i64 } else { axis };
            let a = usize::try_from(a)
                .ok()
                .filter(|&a| a <= rank)
                .ok_or_else(|| bad(format!("Flatten axis {axis} out of range")))?;
            let shape = vec![
                data.shape[..a].iter().product(),
                data.shape[a..].iter().product(),
            ];
            one(Const {
                shape,
                values: data.values.clone(),
            })
        }
        "Transpose" => {
            let data = need(0)?;
            let perm = match attr_ints(node, "perm") {
                Some(p) => p,
                None => (0..data.shape.len() as i64).rev().collect(),
            };
            one(transpose(&data, &perm)?)
        }
        "ConstantOfShape" => {
            let shape_c = need(0)?;
            let dims = shape_c
                .ints("the ConstantOfShape shape")?
                .iter()
                .map(|&d| {
                    usize::try_from(d)
                        .map_err(|_| Error::Unsupported(format!("ConstantOfShape dimension {d}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let n = count(&dims, "ConstantOfShape output")?;
            let values = match attr(node, "value").and_then(|a| a.t.as_ref()) {
                None => Values::F32(vec![0.0; n]),
                Some(t) => match t.values()?.1 {
                    Values::F32(v) if v.len() == 1 => Values::F32(vec![v[0]; n]),
                    Values::I64(v) if v.len() == 1 => Values::I64(vec![v[0]; n]),
                    _ => return Err(bad("ConstantOfShape value must have one element")),
                },
            };
            one(Const {
                shape: dims,
                values,
            })
        }
        "Range" => {
            let (s, l, d) = (need(0)?, need(1)?, need(2)?);
            match (&s.values, &l.values, &d.values) {
                (Values::I64(s), Values::I64(l), Values::I64(d))
                    if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
                {
                    let (s, l, d) = (s[0], l[0], d[0]);
                    if d == 0 || [s, l, d].contains(&BATCH) {
                        return Err(Error::Unsupported(format!("Range({s}, {l}, {d})")));
                    }
                    let n = (i128::from(l) - i128::from(s) + i128::from(d)
                        - i128::from(d.signum()))
                        / i128::from(d);
                    let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                    count(&[n], "Range output")?;
                    let v = (0..n).map(|k| s + (k as i64) * d).collect();
                    one(Const::vector(Values::I64(v)))
                }
                (Values::F32(s), Values::F32(l), Values::F32(d))
                    if s.len() == 1 && l.len() == 1 && d.len() == 1 =>
                {
                    let n = ((l[0] - s[0]) / d[0]).ceil();
                    if !n.is_finite() {
                        return Err(Error::Unsupported("Range with a non-finite count".into()));
                    }
                    let n = n.max(0.0) as usize;
                    count(&[n], "Range output")?;
                    let v = (0..n).map(|k| s[0] + k as f32 * d[0]).collect();
                    one(Const::vector(Values::F32(v)))
                }
                _ => Err(Error::Unsupported(
                    "Range needs three scalars of one type".into(),
                )),
            }
        }
        op @ ("Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min") => {
            let (a, b) = (need(0)?, need(1)?);
            one(binary(op, &a, &b)?)
        }
        op @ ("Neg" | "Sqrt" | "Reciprocal" | "Abs" | "Floor" | "Ceil") => {
            one(unary(op, &*need(0)?)?)
        }
        op => Err(Error::Unsupported(format!(
            "operator {op} on constants (klrp evaluates at import only Constant, Identity, Cast, \
             CastLike, Shape, Size, Expand, Gather, Unsqueeze, Squeeze, Concat, Slice, Split, Reshape, \
             Flatten, Transpose, ConstantOfShape, Range, Add, Sub, Mul, Div, Pow, Max, Min, Neg, Sqrt, \
             Reciprocal, Abs, Floor, Ceil)"
        ))),
    }
}

/// `Shape`'s `start`/`end` attributes applied to a full shape.
pub(super) fn shape_slice(node: &NodeProto, full: &[i64]) -> Result<Vec<i64>> {
    let r = full.len() as i64;
    let clampi =
        |v: i64| -> usize { (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize };
    let start = clampi(attr_int(node, "start", 0)?);
    let end = clampi(attr_int(node, "end", r)?).max(start);
    Ok(full[start..end].to_vec())
}

pub(super) fn cast(c: &Const, to: i64) -> Result<Const> {
    let float = matches!(
        to,
        dtype::FLOAT | dtype::DOUBLE | dtype::FLOAT16 | dtype::BFLOAT16
    );
    let values = match (&c.values, float) {
        (Values::I64(v), true) => {
            if v.contains(&BATCH) {
                return Err(Error::Unsupported(
                    "Cast of the batch size to a float".into(),
                ));
            }
            Values::F32(v.iter().map(|&x| x as f32).collect())
        }
        (v @ Values::F32(_), true) => v.clone(),
        (Values::F32(v), false) if to == dtype::BOOL => {
            Values::I64(v.iter().map(|&x| i64::from(x != 0.0)).collect())
        }
        (Values::I64(v), false) if to == dtype::BOOL => {
            Values::I64(v.iter().map(|&x| i64::from(x != 0)).collect())
        }
        (Values::F32(v), false) => Values::I64(v.iter().map(|&x| x as i64).collect()),
        (v @ Values::I64(_), false) => v.clone(),
    };
    Ok(Const {
        shape: c.shape.clone(),
        values,
    })
}

fn gather(data: &Const, idx: &Const, axis: i64) -> Result<Const> {
    if data.shape.is_empty() {
        return Err(bad("Gather on a scalar"));
    }
    let axis = norm_axis(axis, data.shape.len(), "Gather")?;
    let n = data.shape[axis];
    let picks = idx
        .ints("Gather indices")?
        .iter()
        .map(|&k| {
            let k2 = if k < 0 { k.saturating_add(n as i64) } else { k };
            usize::try_from(k2)
                .ok()
                .filter(|&k2| k2 < n)
                .ok_or_else(|| bad(format!("Gather index {k} out of range for {n} elements")))
        })
        .collect::<Result<Vec<_>>>()?;
    let outer: usize = data.shape[..axis].iter().product();
    let inner: usize = data.shape[axis + 1..].iter().product();
    let mut shape = data.shape[..axis].to_vec();
    shape.extend_from_slice(&idx.shape);
    shape.extend_from_slice(&data.shape[axis + 1..]);
    count(&shape, "Gather output")?;
    let mut flat = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in &picks {
            let base = (o * n + p) * inner;
            flat.extend(base..base + inner);
        }
    }
    Ok(data.take(&flat, shape))
}

fn concat(parts: &[Rc<Const>], axis: i64) -> Result<Const> {
    let first = parts.first().ok_or_else(|| bad("Concat without inputs"))?;
    let rank = first.shape.len();
    if rank == 0 {
        return Err(bad("Concat of scalars"));
    }
    let axis = norm_axis(axis, rank, "Concat")?;
    let ints = parts.iter().all(|p| matches!(p.values, Values::I64(_)));
    let floats = parts.iter().all(|p| matches!(p.values, Values::F32(_)));
    if !(ints || floats) {
        return Err(Error::Unsupported(
            "Concat of integer and float constants".into(),
        ));
    }
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for p in parts {
        let same_rest =
            p.shape.len() == rank && (0..rank).all(|k| k == axis || p.shape[k] == first.shape[k]);
        if !same_rest {
            return Err(Error::shape("Concat input", &first.shape, &p.shape));
        }
        shape[axis] = shape[axis].saturating_add(p.shape[axis]);
    }
    count(&shape, "Concat output")?;
    let outer: usize = first.shape[..axis].iter().product();
    let mut values_i = Vec::new();
    let mut values_f = Vec::new();
    for o in 0..outer {
        for p in parts {
            let chunk = p.shape[axis..].iter().product::<usize>();
            let range = o * chunk..(o + 1) * chunk;
            match &p.values {
                Values::I64(v) => values_i.extend_from_slice(&v[range]),
                Values::F32(v) => values_f.extend_from_slice(&v[range]),
            }
        }
    }
    let values = if ints {
        Values::I64(values_i)
    } else {
        Values::F32(values_f)
    };
    Ok(Const { shape, values })
}

/// The flat indices of `data[starts:ends:steps]` along `axes` (ONNX `Slice`).
fn slice(
    data: &Const,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Const> {
    let rank = data.shape.len();
    if starts.len() != ends.len()
        || axes.is_some_and(|a| a.len() != starts.len())
        || steps.is_some_and(|s| s.len() != starts.len())
    {
        return Err(bad("Slice starts, ends, axes and steps differ in length"));
    }
    // Per axis: (first index, step, count).
    let mut spec: Vec<(i64, i64, usize)> = data.shape.iter().map(|&d| (0, 1, d)).collect();
    let mut seen = BTreeSet::new();
    for k in 0..starts.len() {
        let axis = match axes {
            Some(a) => norm_axis(a[k], rank, "Slice")?,
            None => {
                if k >= rank {
                    return Err(bad("Slice has more starts than axes"));
                }
                k
            }
        };
        if !seen.insert(axis) {
            return Err(bad(format!("Slice repeats axis {axis}")));
        }
        let step = steps.map_or(1, |s| s[k]);
        let picks = slice_range(data.shape[axis], starts[k], ends[k], step)?;
        spec[axis] = (picks.0, step, picks.1);
    }
    let shape: Vec<usize> = spec.iter().map(|s| s.2).collect();
    count(&shape, "Slice output")?;
    let st = strides(&data.shape);
    let mut flat = vec![0usize];
    for a in 0..rank {
        let (first, step, n) = spec[a];
        let picks: Vec<usize> = (0..n)
            .map(|k| (first + step * k as i64) as usize * st[a])
            .collect();
        flat = flat
            .iter()
            .flat_map(|&base| picks.iter().map(move |&p| base + p))
            .collect();
    }
    Ok(data.take(&flat, shape))
}

/// The sizes of `Split`'s outputs along an axis of `len` elements: `given` (the `split`
/// attribute, or input 1 from opset 13), else `num_outputs` parts (opset 18: the last may be
/// smaller), else as many equal parts as the node has outputs.
///
/// # Errors
/// [`Error::Malformed`] if the sizes do not add up to `len`, do not match the outputs, or the
/// axis does not divide into equal parts.
pub(super) fn split_sizes(
    node: &NodeProto,
    len: usize,
    given: Option<&[i64]>,
) -> Result<Vec<usize>> {
    let outputs = node.outputs.len();
    let sizes = match given {
        Some(s) => s
            .iter()
            .map(|&v| usize::try_from(v).map_err(|_| bad(format!("Split size {v}"))))
            .collect::<Result<Vec<_>>>()?,
        None => match attr(node, "num_outputs") {
            Some(_) => {
                let parts = attr_int(node, "num_outputs", 0)?;
                let parts = usize::try_from(parts)
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| bad(format!("Split num_outputs = {parts}")))?;
                let chunk = len.div_ceil(parts);
                (0..parts)
                    .map(|p| chunk.min(len - (p * chunk).min(len)))
                    .collect()
            }
            None => {
                if outputs == 0 || !len.is_multiple_of(outputs) {
                    return Err(bad(format!(
                        "Split of an axis of {len} into {outputs} equal parts"
                    )));
                }
                vec![len / outputs; outputs]
            }
        },
    };
    if sizes.len() != outputs {
        return Err(bad(format!(
            "Split into {} parts {sizes:?} for {outputs} outputs",
            sizes.len()
        )));
    }
    let total = sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b));
    if total != Some(len) {
        return Err(bad(format!(
            "Split sizes {sizes:?} do not add up to the axis's {len} elements"
        )));
    }
    Ok(sizes)
}

/// `[start:end:step]` on an axis of `len` elements: (first index, count) (ONNX `Slice`
/// clamping).
pub(super) fn slice_range(len: usize, start: i64, end: i64, step: i64) -> Result<(i64, usize)> {
    if step == 0 {
        return Err(bad("Slice with step 0"));
    }
    // (i64::MIN as a bound is the exporters' "to the start", not the batch symbol.)
    if len == 0 {
        return Ok((0, 0));
    }
    let n = len as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(0, n - 1), norm(end).clamp(-1, n - 1))
    };
    let span = if step > 0 {
        i128::from(e) - i128::from(s)
    } else {
        i128::from(s) - i128::from(e)
    };
    let step_abs = i128::from(step).abs();
    let count = if span <= 0 {
        0
    } else {
        (span + step_abs - 1) / step_abs
    };
    Ok((s, count as usize))
}

/// The output shape of `Reshape(data of shape, target)`.
pub(super) fn reshape_target(
    shape: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>> {
    let total = count(shape, "Reshape input")?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &t) in target.iter().enumerate() {
        match t {
            -1 => {
                if infer.replace(k).is_some() {
                    return Err(bad("Reshape target with two -1"));
                }
                out.push(1);
            }
            0 if !allowzero => out.push(
                *shape
                    .get(k)
                    .ok_or_else(|| bad("Reshape target copies a missing dimension"))?,
            ),
            BATCH => {
                return Err(Error::Unsupported(
                    "Reshape of a constant to the batch size".into(),
                ));
            }
            t => out.push(usize::try_from(t).map_err(|_| bad(format!("Reshape target {t}")))?),
        }
    }
    let known = count(&out, "Reshape output")?;
    if let Some(k) = infer {
        if known == 0 || total % known != 0 {
            return Err(bad(format!(
                "cannot reshape {total} elements to {target:?}"
            )));
        }
        out[k] = total / known;
    } else if known != total {
        return Err(bad(format!(
            "cannot reshape {total} elements to {target:?}"
        )));
    }
    Ok(out)
}

fn transpose(data: &Const, perm: &[i64]) -> Result<Const> {
    let rank = data.shape.len();
    let mut seen = BTreeSet::new();
    let perm = perm
        .iter()
        .map(|&p| norm_axis(p, rank, "Transpose"))
        .collect::<Result<Vec<_>>>()?;
    if perm.len() != rank || !perm.iter().all(|&p| seen.insert(p)) {
        return Err(bad(format!(
            "Transpose perm {perm:?} is not a permutation of {rank} axes"
        )));
    }
    let st = strides(&data.shape);
    let shape: Vec<usize> = perm.iter().map(|&p| data.shape[p]).collect();
    let src: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let mut flat = Vec::with_capacity(data.len());
    walk(&shape, &src, 0, |k| flat.push(k));
    Ok(data.take(&flat, shape))
}

/// Numpy broadcasting of two shapes.
fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let get = |s: &[usize], k: usize| {
        if k + s.len() >= rank {
            s[k + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|k| match (get(a, k), get(b, k)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(Error::shape("broadcast operand", a, b)),
        })
        .collect()
}

/// The flat indices into a tensor of `shape` read by each element of the broadcast `out`.
fn broadcast_picks(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let pad = out.len() - shape.len();
    let src: Vec<usize> = (0..out.len())
        .map(|k| {
            if k < pad || shape[k - pad] == 1 {
                0
            } else {
                st[k - pad]
            }
        })
        .collect();
    let mut flat = Vec::new();
    walk(out, &src, 0, |k| flat.push(k));
    flat
}

fn binary(op: &str, a: &Const, b: &Const) -> Result<Const> {
    let shape = broadcast(&a.shape, &b.shape)?;
    count(&shape, "broadcast result")?;
    let pa = broadcast_picks(&a.shape, &shape);
    let pb = broadcast_picks(&b.shape, &shape);
    let values = match (&a.values, &b.values) {
        (Values::I64(x), Values::I64(y)) => {
            let mut v = Vec::with_capacity(pa.len());
            for (&i, &j) in pa.iter().zip(&pb) {
                let (p, q) = (x[i], y[j]);
                if p == BATCH || q == BATCH {
                    return Err(Error::Unsupported(format!(
                        "{op} on the batch size (klrp's batch size is free)"
                    )));
                }
                let r = match op {
                    "Add" => p.checked_add(q),
                    "Sub" => p.checked_sub(q),
                    "Mul" => p.checked_mul(q),
                    "Div" => p.checked_div(q),
                    "Max" => Some(p.max(q)),
                    "Min" => Some(p.min(q)),
                    "Pow" => u32::try_from(q).ok().and_then(|q| p.checked_pow(q)),
                    _ => None,
                };
                v.push(r.filter(|&r| r != BATCH).ok_or_else(|| {
                    Error::Unsupported(format!("{op}({p}, {q}) on integer constants"))
                })?);
            }
            Values::I64(v)
        }
        (Values::F32(x), Values::F32(y)) => Values::F32(
            pa.iter()
                .zip(&pb)
                .map(|(&i, &j)| {
                    let (p, q) = (x[i], y[j]);
                    match op {
                        "Add" => p + q,
                        "Sub" => p - q,
                        "Mul" => p * q,
                        "Div" => p / q,
                        "Max" => p.max(q),
                        "Min" => p.min(q),
                        _ => p.powf(q),
                    }
                })
                .collect(),
        ),
        _ => {
            return Err(Error::Unsupported(format!(
                "{op} of an integer and a float constant"
            )));
        }
    };
    Ok(Const { shape, values })
}

fn unary(op: &str, a: &Const) -> Result<Const> {
    let values = match &a.values {
        Values::F32(x) => Values::F32(
            x.iter()
                .map(|&p| match op {
                    "Neg" => -p,
                    "Sqrt" => p.sqrt(),
                    "Reciprocal" => 1.0 / p,
                    "Abs" => p.abs(),
                    "Floor" => p.floor(),
                    _ => p.ceil(),
                })
                .collect(),
        ),
        Values::I64(x) => Values::I64(
            x.iter()
                .map(|&p| match op {
                    "Neg" if p != BATCH => Ok(-p),
                    "Abs" if p != BATCH => Ok(p.abs()),
                    "Floor" | "Ceil" => Ok(p),
                    _ => Err(Error::Unsupported(format!("{op} on integer constant {p}"))),
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(Const {
        shape: a.shape.clone(),
        values,
    })
}

/// The value of a `Constant` node.
pub(super) fn constant_value(node: &NodeProto) -> Result<Const> {
    let a: &AttributeProto = node
        .attributes
        .first()
        .ok_or_else(|| bad("Constant without a value"))?;
    match a.name.as_str() {
        "value" => {
            let t =
                a.t.as_ref()
                    .ok_or_else(|| bad("Constant value is not a tensor"))?;
            let (shape, values) = t.values()?;
            Ok(Const { shape, values })
        }
        "value_float" => Ok(Const {
            shape: vec![],
            values: Values::F32(vec![
                a.f.ok_or_else(|| bad("Constant value_float has no value"))?,
            ]),
        }),
        "value_floats" => Ok(Const::vector(Values::F32(a.floats.clone()))),
        "value_int" => Ok(Const {
            shape: vec![],
            values: Values::I64(vec![
                a.i.ok_or_else(|| bad("Constant value_int has no value"))?,
            ]),
        }),
        "value_ints" => Ok(Const::vector(Values::I64(a.ints.clone()))),
        other => Err(Error::Unsupported(format!("Constant with {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(shape: &[usize], v: &[i64]) -> Const {
        Const {
            shape: shape.to_vec(),
            values: Values::I64(v.to_vec()),
        }
    }

    fn as_ints(c: &Const) -> Vec<i64> {
        c.ints("test").unwrap().to_vec()
    }

    #[test]
    fn slice_ranges_follow_onnx_clamping() {
        assert_eq!(slice_range(4, 1, i64::MAX, 1).unwrap(), (1, 3));
        assert_eq!(slice_range(4, -1, i64::MIN, -1).unwrap(), (3, 4));
        assert_eq!(slice_range(4, 0, 4, 2).unwrap(), (0, 2));
        assert_eq!(slice_range(4, 0, 4, i64::MAX).unwrap(), (0, 1));
        assert_eq!(slice_range(0, 0, -1, -1).unwrap().1, 0);
        assert!(slice_range(3, 0, 3, 0).is_err());
    }

    #[test]
    fn slices_reverse_and_step_in_several_axes() {
        // [[0,1,2],[3,4,5]] reversed along axis 1 (the pads-reversal idiom of exporters)
        let c = ints(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        let r = slice(&c, &[-1], &[i64::MIN], Some(&[1]), Some(&[-1])).unwrap();
        assert_eq!(r.shape, [2, 3]);
        assert_eq!(as_ints(&r), [2, 1, 0, 5, 4, 3]);
        let r = slice(&c, &[1, 0], &[2, 3], None, Some(&[1, 2])).unwrap();
        assert_eq!(r.shape, [1, 2]);
        assert_eq!(as_ints(&r), [3, 5]);
    }

    #[test]
    fn transpose_and_reshape_move_elements() {
        let c = ints(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        let t = transpose(&c, &[1, 0]).unwrap();
        assert_eq!(t.shape, [3, 2]);
        assert_eq!(as_ints(&t), [0, 3, 1, 4, 2, 5]);
        assert!(transpose(&c, &[0, 0]).is_err());
        assert_eq!(reshape_target(&[2, 3], &[-1, 2], false).unwrap(), [3, 2]);
        assert_eq!(reshape_target(&[2, 3], &[0, -1], false).unwrap(), [2, 3]);
        assert!(reshape_target(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape_target(&[2, 3], &[-1, -1], false).is_err());
    }

    #[test]
    fn arithmetic_broadcasts_and_refuses_the_batch() {
        let a = ints(&[2, 1], &[1, 2]);
        let b = ints(&[3], &[10, 20, 30]);
        let s = binary("Mul", &a, &b).unwrap();
        assert_eq!(s.shape, [2, 3]);
        assert_eq!(as_ints(&s), [10, 20, 30, 20, 40, 60]);
        assert!(binary("Sub", &ints(&[1], &[BATCH]), &ints(&[1], &[1])).is_err());
        assert!(binary("Div", &ints(&[1], &[1]), &ints(&[1], &[0])).is_err());
        assert!(binary("Add", &ints(&[2], &[1, 2]), &ints(&[3], &[1, 2, 3])).is_err());
        assert!(binary("Mul", &ints(&[1], &[i64::MAX]), &ints(&[1], &[2])).is_err());
    }

    #[test]
    fn gather_and_concat_work_on_any_axis() {
        let c = ints(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        let g = gather(&c, &ints(&[], &[-1]), 1).unwrap();
        assert_eq!(g.shape, [2]);
        assert_eq!(as_ints(&g), [2, 5]);
        assert!(gather(&c, &ints(&[], &[3]), 1).is_err());
        let parts = [Rc::new(c.clone()), Rc::new(ints(&[2, 1], &[9, 8]))];
        let k = concat(&parts, -1).unwrap();
        assert_eq!(k.shape, [2, 4]);
        assert_eq!(as_ints(&k), [0, 1, 2, 9, 3, 4, 5, 8]);
    }
}
