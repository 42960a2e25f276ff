//! Parallel elementwise loops over tensors (activations, share factors), for the passes between
//! the heavy kernels: a sequential `mapv` over a 64 × 224 × 224 activation costs as much as a
//! tenth of the convolution that produced it.

use crate::semiring::Semiring;
use crate::tensor::Tensor;
use crate::tensor::par;
use ndarray::{ArrayD, IxDyn};

/// Elements per parallel chunk.
pub(crate) const CHUNK: usize = 1 << 14;

/// `f(x)` for every element, in parallel; the result has `t`'s shape (standard layout).
pub fn map(t: &Tensor, f: impl Fn(f32) -> f32 + Sync + Send) -> Tensor {
    let x = t.as_standard_layout();
    let x = x.as_slice().unwrap_or(&[]);
    let mut out = vec![0.0f32; x.len()];
    map_into(x, &mut out, f);
    shaped(t.shape(), out)
}

/// `f(x, y)` for every pair of elements of two tensors of the same shape, in parallel.
///
/// # Panics
/// If the shapes differ (callers check them first).
pub fn zip_map(a: &Tensor, b: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync + Send) -> Tensor {
    assert_eq!(
        a.shape(),
        b.shape(),
        "zip_map of tensors of different shapes"
    );
    let (x, y) = (a.as_standard_layout(), b.as_standard_layout());
    let (x, y) = (x.as_slice().unwrap_or(&[]), y.as_slice().unwrap_or(&[]));
    let mut out = vec![0.0f32; x.len()];
    zip_map_into(x, y, &mut out, f);
    shaped(a.shape(), out)
}

/// `out[i] = f(x[i])`, in parallel (over the shorter of the two).
pub(crate) fn map_into<A: Copy + Sync, B: Send>(x: &[A], out: &mut [B], f: impl Fn(A) -> B + Sync) {
    par::chunks_mut(out, CHUNK, &|i, o| {
        for (o, &x) in o.iter_mut().zip(par::chunk(x, CHUNK, i)) {
            *o = f(x);
        }
    });
}

/// `out[i] = f(x[i], y[i])`, in parallel (over the shortest of the three).
pub(crate) fn zip_map_into<A: Copy + Sync, B: Copy + Sync, C: Send>(
    x: &[A],
    y: &[B],
    out: &mut [C],
    f: impl Fn(A, B) -> C + Sync,
) {
    par::chunks_mut(out, CHUNK, &|i, o| {
        let (x, y) = (par::chunk(x, CHUNK, i), par::chunk(y, CHUNK, i));
        for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
            *o = f(x, y);
        }
    });
}

/// Whether `pred` holds for every element of `v`, tested in parallel.
pub(crate) fn all_of<A: Sync>(v: &[A], pred: impl Fn(&A) -> bool + Sync) -> bool {
    par::all(par::chunk_count(v.len(), CHUNK), &|i| {
        par::chunk(v, CHUNK, i).iter().all(&pred)
    })
}

fn shaped(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::from_shape_vec(IxDyn(shape), data).expect("a standard-layout buffer of the same length")
}

/// `f(&x[i], &mut y[i], &mut z[i])` for every index, in parallel.
///
/// # Panics
/// If the lengths differ (callers check them first).
pub fn for_each_zip3<A: Sync, B: Send, C: Send>(
    x: &[A],
    y: &mut [B],
    z: &mut [C],
    f: impl Fn(&A, &mut B, &mut C) + Sync + Send,
) {
    assert!(
        x.len() == y.len() && y.len() == z.len(),
        "for_each_zip3 of slices of different lengths"
    );
    par::chunks_mut_pair(y, z, CHUNK, &|i, y, z| {
        for ((x, y), z) in par::chunk(x, CHUNK, i).iter().zip(y).zip(z) {
            f(x, y, z);
        }
    });
}

/// `acc ← acc ⊕ r` element-wise, in parallel.
///
/// # Panics
/// If the shapes differ (callers check them first).
pub(crate) fn add_assign<K: Semiring>(acc: &mut ArrayD<K>, r: &ArrayD<K>) {
    assert_eq!(
        acc.shape(),
        r.shape(),
        "add_assign of tensors of different shapes"
    );
    let r = r.as_standard_layout();
    match (acc.as_slice_mut(), r.as_slice()) {
        (Some(a), Some(r)) => par::chunks_mut(a, CHUNK, &|i, a| {
            for (a, &b) in a.iter_mut().zip(par::chunk(r, CHUNK, i)) {
                a.add_assign(b);
            }
        }),
        _ => ndarray::Zip::from(acc)
            .and(&r)
            .for_each(|a, &b| a.add_assign(b)),
    }
}

/// Whether every element satisfies `pred`, tested in parallel.
pub fn all<S: ndarray::Data<Elem = f32>>(
    t: &ndarray::ArrayBase<S, IxDyn>,
    pred: impl Fn(f32) -> bool + Sync + Send,
) -> bool {
    match t.as_slice_memory_order() {
        Some(s) => all_of(s, |&x| pred(x)),
        None => t.iter().all(|&x| pred(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn elementwise_helpers() {
        let t = ArrayD::from_shape_fn(IxDyn(&[2, 3, 40_000]), |i| i[2] as f32 - 20_000.0);
        let r = map(&t, |x| x.max(0.0));
        assert_eq!(r.shape(), t.shape());
        assert_eq!(r[[1, 2, 20_005]], 5.0);
        assert_eq!(r[[1, 2, 5]], 0.0);
        let d = zip_map(&t, &r, |a, b| a - b);
        assert_eq!(d[[0, 1, 30_000]], 0.0);
        assert_eq!(d[[0, 1, 3]], -19_997.0);
        assert!(all(&r, |x| x >= 0.0));
        assert!(!all(&t, |x| x >= 0.0));
        let tt = t.t();
        assert!(!all(&tt.to_owned(), |x| x > -19_999.0));
    }
}
