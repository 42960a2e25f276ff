//! The connections of one input element: every `j → k` a node's [`Shares`] describe, with `d_jk`.
//!
//! This is the one place that lists a node's connections element by element (the kernels walk
//! them in bulk): [`outgoing`] gives the outputs `k` that input `j` feeds and the share `d_jk`
//! (`None` where relevance passes without Θ: [`Shares::Pass`], [`Shares::ChannelSlice`],
//! [`Shares::Route`]). The
//! path search expands a partial path with it, and the tests rebuild K-LRP from it
//! ([`propagate_by_connections`]) to check it against `kernels::propagate_reference`.

use crate::conversion::Conversion;
use crate::error::{Error, Result};
use crate::kernels;
use crate::layers::{Connectivity, Shares};
use crate::semiring::Semiring;
use ndarray::ArrayD;

/// Calls `f(k, d_jk)` for every output `k` that input element `j` of sample 0 is connected to
/// through `shares`: `Some(d)` for a share that goes through Θ, `None` for relevance that passes
/// unchanged (pass-through, channel-slice and route operands). `in_shape` and `out_shape` are the
/// per-sample shapes of the operand and of the node's output.
///
/// `d_jk = Σ_t p_t[j] · g_t(w_jk) · q_t[k]` is the kernels' own share (summed in term order from
/// `0.0`, as `kernels::propagate_reference` sums it), so `Θ(d)` is bit-identical to what that
/// kernel uses. Share terms not in standard layout are copied on every call
/// (`RelevanceGraph` makes them contiguous once).
/// Connections whose share is 0 are listed too (Θ(0) may be non-zero).
///
/// # Errors
/// [`Error::ShapeMismatch`] / [`Error::InvalidArgument`] if the shares do not fit the shapes or
/// hold an index out of range; [`Error::NonFinite`] for a non-finite explicit share.
pub fn outgoing(
    shares: &Shares<'_>,
    j: usize,
    in_shape: &[usize],
    out_shape: &[usize],
    mut f: impl FnMut(usize, Option<f32>),
) -> Result<()> {
    let n_in: usize = in_shape.iter().product();
    let n_out: usize = out_shape.iter().product();
    if j >= n_in {
        return Err(Error::invalid(format!(
            "element {j} outside an operand of {n_in} elements"
        )));
    }
    match shares {
        Shares::Pass => {
            if n_in != n_out {
                return Err(Error::shape("pass-through relevance", in_shape, out_shape));
            }
            f(j, None);
        }
        Shares::Disconnected => {}
        Shares::Route { sources } => {
            if sources.len() != n_out {
                return Err(Error::shape("route sources", &[n_out], &[sources.len()]));
            }
            for (k, &src) in sources.iter().enumerate() {
                if src >= n_in {
                    return Err(Error::invalid(format!(
                        "route source {src} of output element {k} outside an operand of {n_in} elements"
                    )));
                }
                if src == j {
                    f(k, None);
                }
            }
        }
        Shares::ChannelSlice { start } => {
            let plane: usize = in_shape.iter().skip(1).product();
            let fits = !in_shape.is_empty()
                && out_shape.len() == in_shape.len()
                && out_shape[1..] == in_shape[1..]
                && start + in_shape[0] <= out_shape[0];
            if !fits {
                return Err(Error::shape("channel-slice operand", in_shape, out_shape));
            }
            f(j + start * plane, None);
        }
        Shares::Elementwise(d) => {
            if n_in != n_out || d.len() < n_in {
                return Err(Error::shape("element-wise shares", in_shape, out_shape));
            }
            let d = match d.as_slice() {
                Some(s) => s[j],
                None => d.iter().nth(j).copied().unwrap_or(0.0),
            };
            f(j, Some(d));
        }
        Shares::Explicit(per_sample) => {
            let list = per_sample
                .first()
                .ok_or_else(|| Error::invalid("explicit shares without a sample"))?;
            for &(jj, k, d) in list {
                if jj != j {
                    continue;
                }
                if k >= n_out {
                    return Err(Error::invalid(format!(
                        "explicit share ({jj}, {k}) outside the layer ({n_in} inputs, {n_out} outputs)"
                    )));
                }
                if !d.is_finite() {
                    return Err(Error::NonFinite(format!(
                        "explicit share d = {d} for input {jj}, output {k} of sample 0"
                    )));
                }
                f(k, Some(d));
            }
        }
        Shares::Winner { geometry, winners } => {
            let conn = Connectivity::Pool {
                geometry: geometry.clone(),
            };
            conn.check()?;
            if conn.input_len() != n_in || winners.ncols() != n_out || winners.nrows() == 0 {
                return Err(Error::shape("winner shares", in_shape, out_shape));
            }
            let win = winners.row(0);
            conn.for_each_from(j, |k, _| f(k, Some(if win[k] == j { 1.0 } else { 0.0 })));
        }
        Shares::Linear {
            connectivity,
            terms,
        } => {
            // The terms hold a batch (of one sample in a `RelevanceGraph`); sample 0 is used.
            let n = terms.first().map_or(1, |t| (t.input.len() / n_in).max(1));
            let flat = kernels::linear_terms(connectivity, terms, n, n_in, n_out)?;
            let sample = kernels::SampleTerms::of(&flat, 0, n_in, n_out);
            connectivity.for_each_from(j, |k, w| f(k, Some(sample.share(j, k, w))));
        }
    }
    Ok(())
}

/// One node operand's K-LRP step for sample 0 rebuilt from [`outgoing`]:
/// `R_j = ⊕_k Θ(d_jk) ⊗ R_k` (`R_k` unchanged where relevance passes), summed over the
/// connections in the order `outgoing` lists them. For tests and brute force: it walks every
/// connection of every input element.
///
/// # Errors
/// As [`outgoing`].
pub fn propagate_by_connections<K: Semiring, T: Conversion<K> + ?Sized>(
    shares: &Shares<'_>,
    theta: &T,
    r_out: &[K],
    in_shape: &[usize],
    out_shape: &[usize],
) -> Result<ArrayD<K>> {
    let n_in: usize = in_shape.iter().product();
    let mut r_in = vec![K::zero(); n_in];
    for (j, r) in r_in.iter_mut().enumerate() {
        outgoing(shares, j, in_shape, out_shape, |k, d| match d {
            None => r.add_assign(r_out[k]),
            Some(d) => r.add_mul(theta.convert(d), r_out[k]),
        })?;
    }
    ArrayD::from_shape_vec(in_shape.to_vec(), r_in)
        .map_err(|e| Error::invalid(format!("relevance shape: {e}")))
}
