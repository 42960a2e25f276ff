//! Parallel loops, each a thin door into rayon that takes its loop body as `&dyn Fn`.
//!
//! The kernels are generic over the semiring and over the closures that form shares, so a rayon
//! call written inside one is compiled again for every semiring and every closure it is used with:
//! rayon's job, join and bridge machinery was 40 % of the LLVM IR of klrp's library and a third of
//! its integration tests' (`cargo llvm-lines`, docs/architecture.md "Tests"). Through these
//! functions it is compiled once per element type. The body stays generic and fully optimised
//! inside (it is its own function, called once per chunk or per task, never per element), so the
//! loops run as fast as before (docs/benchmarks.md).

use rayon::prelude::*;

/// `f(i, chunk)` for the chunks of `data` of `len` elements (the last may be shorter), in parallel.
///
/// # Panics
/// If `len` is 0.
pub(crate) fn chunks_mut<T: Send>(
    data: &mut [T],
    len: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    data.par_chunks_mut(len)
        .enumerate()
        .for_each(|(i, chunk)| f(i, chunk));
}

/// As [`chunks_mut`], with scratch state `init()` made once per rayon task and handed to every
/// call of that task.
///
/// # Panics
/// If `len` is 0.
pub(crate) fn chunks_mut_init<T: Send, W>(
    data: &mut [T],
    len: usize,
    init: &(dyn Fn() -> W + Sync),
    f: &(dyn Fn(&mut W, usize, &mut [T]) + Sync),
) {
    data.par_chunks_mut(len)
        .enumerate()
        .for_each_init(init, |w, (i, chunk)| f(w, i, chunk));
}

/// `f(i, a_i, b_i)` for the chunks of `len` elements of two slices of the same length, in parallel.
///
/// # Panics
/// If `len` is 0.
pub(crate) fn chunks_mut_pair<T: Send, U: Send>(
    a: &mut [T],
    b: &mut [U],
    len: usize,
    f: &PairBody<'_, T, U>,
) {
    a.par_chunks_mut(len)
        .zip(b.par_chunks_mut(len))
        .enumerate()
        .for_each(|(i, (a, b))| f(i, a, b));
}

/// The body of [`chunks_mut_pair`]: `f(i, a_i, b_i)`.
pub(crate) type PairBody<'a, T, U> = dyn Fn(usize, &mut [T], &mut [U]) + Sync + 'a;

/// `f(i)` for every `i` in `0..n`, in parallel.
pub(crate) fn for_each(n: usize, f: &(dyn Fn(usize) + Sync)) {
    (0..n).into_par_iter().for_each(f);
}

/// Whether `pred(i)` holds for every `i` in `0..n`, tested in parallel (stops early).
pub(crate) fn all(n: usize, pred: &(dyn Fn(usize) -> bool + Sync)) -> bool {
    (0..n).into_par_iter().all(pred)
}

/// `[f(0), …, f(n - 1)]` computed in parallel.
pub(crate) fn map<R: Send>(n: usize, f: &(dyn Fn(usize) -> R + Sync)) -> Vec<R> {
    (0..n).into_par_iter().map(f).collect()
}

/// `[f(w, 0), …, f(w, n - 1)]` computed in parallel, with scratch state `w = init()` made once per
/// rayon task.
pub(crate) fn map_init<R: Send, W>(
    n: usize,
    init: &(dyn Fn() -> W + Sync),
    f: &(dyn Fn(&mut W, usize) -> R + Sync),
) -> Vec<R> {
    (0..n).into_par_iter().map_init(init, f).collect()
}

/// The number of chunks of `len` elements that cover `n` elements.
pub(crate) fn chunk_count(n: usize, len: usize) -> usize {
    n.div_ceil(len)
}

/// Chunk `i` of `len` elements of `x` (the last may be shorter; empty past the end).
pub(crate) fn chunk<T>(x: &[T], len: usize, i: usize) -> &[T] {
    let start = (i * len).min(x.len());
    &x[start..(start + len).min(x.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn chunks_cover_the_data_once_with_their_indices() {
        let mut v = vec![0usize; 1000];
        chunks_mut(&mut v, 64, &|i, c| {
            for (o, x) in c.iter_mut().enumerate() {
                *x = i * 64 + o + 1;
            }
        });
        assert!(v.iter().enumerate().all(|(j, &x)| x == j + 1));
        let calls = AtomicUsize::new(0);
        chunks_mut_init(&mut v, 100, &|| 7usize, &|w, i, c| {
            calls.fetch_add(1, Ordering::Relaxed);
            c.iter_mut().for_each(|x| *x = *w + i);
        });
        assert_eq!(calls.into_inner(), 10);
        assert_eq!((v[0], v[99], v[100], v[999]), (7, 7, 8, 16));
        let mut w = vec![0.0f32; 1000];
        chunks_mut_pair(&mut v, &mut w, 300, &|i, a, b| {
            for (a, b) in a.iter_mut().zip(b) {
                *b = (*a + i) as f32;
            }
        });
        assert_eq!((w[0], w[299], w[300], w[999]), (7.0, 9.0, 11.0, 19.0));
    }

    #[test]
    fn index_loops() {
        let hits: Vec<AtomicUsize> = (0..500).map(|_| AtomicUsize::new(0)).collect();
        for_each(500, &|i| {
            hits[i].fetch_add(i, Ordering::Relaxed);
        });
        assert!(
            hits.iter()
                .enumerate()
                .all(|(i, h)| h.load(Ordering::Relaxed) == i)
        );
        assert!(all(500, &|i| i < 500));
        assert!(!all(500, &|i| i != 377));
        assert!(all(0, &|_| false));
        assert_eq!(map_init(5, &|| 10, &|w, i| *w * i), vec![0, 10, 20, 30, 40]);
        assert_eq!(map(4, &|i| i * i), vec![0, 1, 4, 9]);
        assert_eq!(chunk_count(1000, 64), 16);
        assert_eq!(chunk_count(0, 64), 0);
        let x: Vec<u8> = (0..10).collect();
        assert_eq!(chunk(&x, 4, 2), &[8, 9]);
        assert_eq!(chunk(&x, 4, 3), &[] as &[u8]);
    }
}
