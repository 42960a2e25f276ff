//! Routing (`Shares::Route`): output element `k` of a sample is input element `sources[k]`.
//!
//! The forward pass gathers, `y[k] = x[sources[k]]`; relevance goes back along the same map
//! without Θ, `R_j = ⊕_{k : sources[k] = j} R_k`. The fast relevance pass inverts the map once
//! per call (counting sort, `k` ascending within each `j`) and then gathers in parallel over the
//! inputs, so no two tasks write one element whatever the map (repeated indices included), and
//! each `R_j` is folded in the order the reference scatter adds: bit-identical to it.

use crate::error::{Error, Result};
use crate::semiring::Semiring;
use crate::tensor::elementwise::CHUNK;
use crate::tensor::par;

/// Checks that every source is an input element of a sample of `n_in` elements.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the first source out of range.
pub(crate) fn check_sources(sources: &[usize], n_in: usize) -> Result<()> {
    match sources.iter().position(|&j| j >= n_in) {
        None => Ok(()),
        Some(k) => Err(Error::invalid(format!(
            "route source {} of output element {k} outside an input of {n_in} elements",
            sources[k]
        ))),
    }
}

/// `y[s, k] = x[s, sources[k]]` for the `n` samples of `x` (`n_in` elements each).
pub(crate) fn gather<T: Copy + Send + Sync>(
    x: &[T],
    sources: &[usize],
    n: usize,
    n_in: usize,
) -> Vec<T> {
    let n_out = sources.len();
    let mut out = Vec::with_capacity(n * n_out);
    for s in 0..n {
        let xs = &x[s * n_in..][..n_in];
        out.extend(sources.iter().map(|&j| xs[j]));
    }
    out
}

/// The map inverted: `readers[offsets[j]..offsets[j + 1]]` are the outputs reading input `j`,
/// ascending.
fn invert(sources: &[usize], n_in: usize) -> (Vec<usize>, Vec<usize>) {
    let mut offsets = vec![0usize; n_in + 1];
    for &j in sources {
        offsets[j + 1] += 1;
    }
    for j in 0..n_in {
        offsets[j + 1] += offsets[j];
    }
    let mut next = offsets.clone();
    let mut readers = vec![0usize; sources.len()];
    for (k, &j) in sources.iter().enumerate() {
        readers[next[j]] = k;
        next[j] += 1;
    }
    (offsets, readers)
}

/// `R_in[s, j] = ⊕_{k : sources[k] = j} R_out[s, k]` for `n` samples, in parallel over the
/// inputs (sources checked by the caller).
pub(crate) fn relevance<K: Semiring>(
    sources: &[usize],
    r_out: &[K],
    n: usize,
    n_in: usize,
) -> Vec<K> {
    let n_out = sources.len();
    let (offsets, readers) = invert(sources, n_in);
    let mut r_in = vec![K::zero(); n * n_in];
    if n_in == 0 {
        return r_in;
    }
    par::chunks_mut(&mut r_in, CHUNK, &|i, out| {
        for (t, o) in out.iter_mut().enumerate() {
            let at = i * CHUNK + t;
            let (s, j) = (at / n_in, at % n_in);
            let r = &r_out[s * n_out..][..n_out];
            let mut acc = K::zero();
            for &k in &readers[offsets[j]..offsets[j + 1]] {
                acc.add_assign(r[k]);
            }
            *o = acc;
        }
    });
    r_in
}

/// The reference: every connection `sources[k] → k` of every sample added one at a time.
pub(crate) fn relevance_reference<K: Semiring>(
    sources: &[usize],
    r_out: &[K],
    n: usize,
    n_in: usize,
) -> Vec<K> {
    let n_out = sources.len();
    let mut r_in = vec![K::zero(); n * n_in];
    for s in 0..n {
        for (k, &j) in sources.iter().enumerate() {
            r_in[s * n_in + j].add_assign(r_out[s * n_out + k]);
        }
    }
    r_in
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semiring::{Boolean, Counting, Real, Viterbi};

    /// A gather with a repeated and a missing index: the repeated input gets the ⊕ of both
    /// outputs, the missing one 0, in every semiring; the fast pass equals the reference.
    #[test]
    fn repeated_and_unread_inputs() {
        // 2 samples of 3 inputs; outputs read inputs [2, 0, 2, 2].
        let sources = [2, 0, 2, 2];
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            gather(&x, &sources, 2, 3),
            [3.0, 1.0, 3.0, 3.0, 6.0, 4.0, 6.0, 6.0]
        );
        let r: Vec<Real<f32>> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0].map(Real).to_vec();
        let fast = relevance(&sources, &r, 2, 3);
        assert_eq!(fast, relevance_reference(&sources, &r, 2, 3));
        assert_eq!(fast, [2.0, 0.0, 8.0, 6.0, 0.0, 20.0].map(Real));
        let c: Vec<Counting> = [1, 1, 2, 0, 1, 1, 1, 1].map(Counting).to_vec();
        assert_eq!(
            relevance(&sources, &c, 2, 3),
            [1, 0, 3, 1, 0, 3].map(Counting)
        );
        let b: Vec<Boolean> = [false, true, false, false, true, false, false, true]
            .map(Boolean)
            .to_vec();
        assert_eq!(
            relevance(&sources, &b, 2, 3),
            [true, false, false, false, false, true].map(Boolean)
        );
        let v: Vec<Viterbi> = [0.5, 0.25, 0.75, 0.1, 0.2, 0.3, 0.4, 0.9]
            .map(Viterbi)
            .to_vec();
        assert_eq!(
            relevance(&sources, &v, 2, 3),
            [0.25, 0.0, 0.75, 0.3, 0.0, 0.9].map(Viterbi)
        );
        assert!(check_sources(&sources, 3).is_ok());
        assert!(check_sources(&sources, 2).is_err());
    }

    /// A 2 × 3 transpose (a permutation): each input gets exactly the relevance of the one
    /// output that reads it, in four semirings.
    #[test]
    fn transpose_by_hand() {
        let sources = [0, 3, 1, 4, 2, 5];
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = gather(&x, &sources, 1, 6);
        assert_eq!(y, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let r: Vec<Real<f32>> = y.iter().map(|&v| Real(v)).collect();
        assert_eq!(relevance(&sources, &r, 1, 6), x.map(Real));
        let c: Vec<Counting> = (1..=6).map(Counting).collect();
        assert_eq!(
            relevance(&sources, &c, 1, 6),
            [1, 3, 5, 2, 4, 6].map(Counting)
        );
        let b = [true, false, false, false, false, true].map(Boolean);
        assert_eq!(
            relevance(&sources, &b, 1, 6),
            [true, false, false, false, false, true].map(Boolean)
        );
        let v = [0.5, 0.25, 0.125, 1.0, 0.0, 0.75].map(Viterbi);
        assert_eq!(
            relevance(&sources, &v, 1, 6),
            [0.5, 0.125, 0.0, 0.25, 1.0, 0.75].map(Viterbi)
        );
        assert_eq!(
            relevance(&sources, &c, 1, 6),
            relevance_reference(&sources, &c, 1, 6)
        );
    }
}
