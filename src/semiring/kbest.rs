//! The k-best semiring: the strengths of the `K` strongest paths.

use super::Semiring;

/// The `K` largest path strengths (non-negative reals, e.g. Viterbi strengths in [0, 1]), kept
/// as a multiset sorted from the largest down and padded with `0` ("no path"):
///
/// ```text
/// a ⊕ b = the K largest of a ∪ b          (the paths of both sets)
/// a ⊗ b = the K largest of {a_i · b_j}    (every path of a continued by every path of b)
/// 0 = (0, …, 0)        1 = (1, 0, …, 0)   (one path of strength 1)
/// ```
///
/// Under [`Clamp01`](crate::Clamp01) a share `d` becomes one path of strength `clamp(d, 0, 1)`,
/// so K-LRP in `KBest<K>` gives every neuron the strengths of its `K` strongest paths to the
/// target (`KBest<1>` is [`Viterbi`](super::Viterbi)). ⊕ keeps duplicates (two paths of equal
/// strength are two paths), so it is not idempotent; ⊗ is commutative. Both are exact selections
/// of products, so the laws hold up to the rounding of `·` (associativity of ⊗), for
/// non-negative values.
///
/// ```
/// use klrp::semiring::{KBest, Semiring};
/// let a = KBest::<3>::from_values([0.9, 0.5]);
/// let b = KBest::<3>::from_values([0.8, 0.5, 0.25]);
/// assert_eq!(a.add(b).values(), &[0.9, 0.8, 0.5]);
/// assert_eq!(a.mul(b).values(), &[0.9 * 0.8, 0.9 * 0.5, 0.5 * 0.8]);
/// assert_eq!(a.mul(KBest::one()), a);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct KBest<const K: usize>([f64; K]);

impl<const K: usize> KBest<K> {
    const NON_EMPTY: () = assert!(K > 0, "KBest<K> needs K ≥ 1");

    /// One path of strength `v` (and no other).
    pub fn single(v: f64) -> Self {
        let () = Self::NON_EMPTY;
        let mut a = [0.0; K];
        a[0] = v;
        KBest(a)
    }

    /// The `K` largest of `values` (NaN ignored), largest first, padded with 0.
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> Self {
        let () = Self::NON_EMPTY;
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(|a, b| b.total_cmp(a));
        let mut a = [0.0; K];
        for (slot, x) in a.iter_mut().zip(v) {
            *slot = x;
        }
        KBest(a)
    }

    /// The strengths, largest first (0 where there are fewer than `K` paths).
    pub fn values(&self) -> &[f64; K] {
        &self.0
    }

    /// The largest strength (the Viterbi value).
    pub fn best(&self) -> f64 {
        self.0[0]
    }
}

impl<const K: usize> Semiring for KBest<K> {
    const NAME: &'static str = "k-best";
    const UNIT_SHARES: bool = true;

    #[inline]
    fn zero() -> Self {
        let () = Self::NON_EMPTY;
        KBest([0.0; K])
    }

    #[inline]
    fn one() -> Self {
        Self::single(1.0)
    }

    /// Merges two sorted lists, keeping the `K` largest.
    #[inline]
    fn add(self, rhs: Self) -> Self {
        let (a, b) = (&self.0, &rhs.0);
        let mut out = [0.0; K];
        let (mut i, mut j) = (0, 0);
        for slot in out.iter_mut() {
            if j >= K || (i < K && a[i] >= b[j]) {
                *slot = a[i];
                i += 1;
            } else {
                *slot = b[j];
                j += 1;
            }
        }
        KBest(out)
    }

    /// The `K` largest products `a_i · b_j`: a K-way merge of the rows `a_i · b_0 ≥ a_i · b_1 ≥ …`
    /// (rounding is monotone, so each row stays sorted).
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        let (a, b) = (&self.0, &rhs.0);
        let mut next = [0usize; K];
        let mut out = [0.0; K];
        for slot in out.iter_mut() {
            let mut best: Option<(usize, f64)> = None;
            for i in 0..K {
                if next[i] < K {
                    let p = a[i] * b[next[i]];
                    if best.is_none_or(|(_, v)| p > v) {
                        best = Some((i, p));
                    }
                }
            }
            let Some((i, p)) = best else { break };
            *slot = p;
            next[i] += 1;
        }
        KBest(out)
    }

    #[inline]
    fn is_zero(&self) -> bool {
        self.0[0] == 0.0 && self.0.iter().all(|&v| v == 0.0)
    }

    #[inline]
    fn to_f64(&self) -> f64 {
        self.0[0]
    }
}

impl<const K: usize> Default for KBest<K> {
    fn default() -> Self {
        Self::zero()
    }
}
