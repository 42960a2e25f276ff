//! The k strongest paths: best-first search with the Viterbi relevance as the exact completion.
//!
//! A partial path from input element `j_0` to element `e` of activation `a` has the prefix
//! strength `P = Θ(d_1) · … · Θ(d_m)`; the strongest completion from `e` to the target is the
//! Viterbi relevance `R_a[e]`, so `P · R_a[e]` is the strength of the strongest complete path
//! extending it. Partial paths are kept in a priority queue on that bound (A* with an exact
//! heuristic): a complete path leaves the queue only when no partial path can beat it, so paths
//! come out strongest first. The bound is inflated by a relative margin [`MARGIN`] so that the
//! fast kernels' rounding (they may compute `R` a few ulps below the exact product) can never
//! let a weaker path out first; it costs a few extra expansions among near-ties only.

use super::{Path, RelevanceGraph, Step, suffix_product};
use crate::conversion::Conversion;
use crate::error::{Error, Result};
use crate::semiring::Viterbi;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The relative margin on the completion bound (covers the kernels' rounding of `R`).
pub const MARGIN: f64 = 1e-4;

/// The most partial paths a search stores (about 100 bytes each: 1 GB) before it gives up.
pub const MAX_STORED: usize = 10_000_000;

const NONE: usize = usize::MAX;

/// A partial path: its last step and a link to the rest.
struct Entry {
    parent: usize,
    act: usize,
    elem: usize,
    operand: usize,
    share: f64,
    d: Option<f32>,
    prefix: f64,
}

/// A queue item; the heap's maximum pops first.
struct Item {
    priority: f64,
    /// For a complete path, its steps as (node, index, operand), the tie-break key.
    key: Option<Vec<(i64, usize, usize)>>,
    seq: u64,
    id: usize,
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .total_cmp(&other.priority)
            .then_with(|| match (&self.key, &other.key) {
                // Complete paths first; among them the lexicographically smaller key first.
                (Some(a), Some(b)) => b.cmp(a),
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                // Partial paths in the order they were found.
                (None, None) => other.seq.cmp(&self.seq),
            })
    }
}

/// What a search kept, for the memory statement in docs/benchmarks.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Partial paths stored (one 56-byte entry each, plus a 48-byte queue item).
    pub stored: usize,
    /// Partial paths expanded.
    pub expanded: usize,
}

impl<T: Conversion<Viterbi>> RelevanceGraph<'_, Viterbi, T> {
    /// The `k` strongest paths from any input element to the target, strongest first; fewer if
    /// fewer than `k` paths have a strength > 0 (none: an empty list). Equal strengths are
    /// ordered by their steps, lexicographically from the input: `(node, index, operand)` with
    /// the input as node −1.
    ///
    /// The first path's strength is the maximum of the Viterbi input relevance (up to the
    /// kernels' rounding, see docs/paths.md).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `k` is 0, or if the search stores more than
    /// [`MAX_STORED`] partial paths (only when very many paths tie: every partial path whose
    /// best completion could equal the k-th strength must be expanded to rank the ties).
    pub fn strongest(&self, k: usize) -> Result<Vec<Path>> {
        Ok(self.search(None, k)?.0)
    }

    /// The `k` strongest paths that start at input element `start` (flat index within one
    /// sample), strongest first; empty if no path from `start` has a strength > 0 (its Viterbi
    /// relevance is 0). The first is the strongest path from `start`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `k` is 0 or `start` is not an element of the input.
    pub fn strongest_from(&self, start: usize, k: usize) -> Result<Vec<Path>> {
        let n: usize = self.shapes[0].iter().product();
        if start >= n {
            return Err(Error::invalid(format!(
                "start element {start} is outside the input ({n} elements per sample, shape {:?})",
                self.shapes[0]
            )));
        }
        Ok(self.search(Some(start), k)?.0)
    }

    /// The search itself, with what it stored.
    ///
    /// # Errors
    /// As [`strongest`](Self::strongest).
    pub fn search(&self, start: Option<usize>, k: usize) -> Result<(Vec<Path>, SearchStats)> {
        self.search_limited(start, k, MAX_STORED)
    }

    /// [`search`](Self::search) giving up after `max_stored` partial paths instead of
    /// [`MAX_STORED`].
    ///
    /// # Errors
    /// As [`strongest`](Self::strongest).
    pub fn search_limited(
        &self,
        start: Option<usize>,
        k: usize,
        max_stored: usize,
    ) -> Result<(Vec<Path>, SearchStats)> {
        if k == 0 {
            return Err(Error::invalid(
                "the number of paths must be at least 1 (k = 0 asks for none)",
            ));
        }
        let last = self.activations() - 1;
        let mut arena: Vec<Entry> = Vec::new();
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let inflate = 1.0 + MARGIN;
        let starts: Box<dyn Iterator<Item = usize>> = match start {
            Some(j) => Box::new(std::iter::once(j)),
            None => Box::new(0..self.shapes[0].iter().product()),
        };
        for j in starts {
            let h = self.rel_at(0, j).0;
            if h > 0.0 {
                arena.push(Entry {
                    parent: NONE,
                    act: 0,
                    elem: j,
                    operand: 0,
                    share: 1.0,
                    d: None,
                    prefix: 1.0,
                });
                heap.push(Item {
                    priority: h * inflate,
                    key: None,
                    seq,
                    id: arena.len() - 1,
                });
                seq += 1;
            }
        }
        let mut out = Vec::with_capacity(k.min(1024));
        let mut stats = SearchStats::default();
        while let Some(item) = heap.pop() {
            let entry = &arena[item.id];
            if entry.act == last {
                out.push(self.path_of(&arena, item.id));
                if out.len() == k {
                    break;
                }
                continue;
            }
            stats.expanded += 1;
            if arena.len() > max_stored {
                return Err(Error::invalid(format!(
                    "the path search stored {max_stored} partial paths and found {} of the {k} \
                     paths asked for: too many paths of equal (or nearly equal, within a relative \
                     {MARGIN:e}) strength to rank; ask for fewer paths",
                    out.len()
                )));
            }
            let (act, elem, prefix, id) = (entry.act, entry.elem, entry.prefix, item.id);
            let mut children = Vec::new();
            self.expand(act, elem, |i, b, kk, share, d| {
                let share = share.0;
                let h = self.rel_at(i + 1, kk).0;
                if share > 0.0 && h > 0.0 {
                    children.push((i + 1, kk, b, share, d, h));
                }
            })?;
            for (a, e, b, share, d, h) in children {
                arena.push(Entry {
                    parent: id,
                    act: a,
                    elem: e,
                    operand: b,
                    share,
                    d,
                    prefix: prefix * share,
                });
                let child = arena.len() - 1;
                let (priority, key) = if a == last {
                    let (strength, key) = self.strength_and_key(&arena, child);
                    (strength, Some(key))
                } else {
                    (prefix * share * h * inflate, None)
                };
                heap.push(Item {
                    priority,
                    key,
                    seq,
                    id: child,
                });
                seq += 1;
            }
        }
        stats.stored = arena.len();
        Ok((out, stats))
    }

    /// The chain of entries ending at `id`, input first.
    fn chain<'e>(&self, arena: &'e [Entry], mut id: usize) -> Vec<&'e Entry> {
        let mut v = Vec::new();
        while id != NONE {
            v.push(&arena[id]);
            id = arena[id].parent;
        }
        v.reverse();
        v
    }

    fn strength_and_key(&self, arena: &[Entry], id: usize) -> (f64, Vec<(i64, usize, usize)>) {
        let chain = self.chain(arena, id);
        let strength = suffix_product(chain.iter().skip(1).map(|e| e.share));
        let key = chain
            .iter()
            .map(|e| (e.act as i64 - 1, e.elem, e.operand))
            .collect();
        (strength, key)
    }

    fn path_of(&self, arena: &[Entry], id: usize) -> Path {
        let chain = self.chain(arena, id);
        let steps: Vec<Step> = chain
            .iter()
            .map(|e| Step {
                node: e.act.checked_sub(1),
                index: e.elem,
                coords: self.coords(e.act, e.elem),
                operand: e.operand,
                share: e.share,
                d: e.d,
            })
            .collect();
        let strength = suffix_product(steps.iter().skip(1).map(|s| s.share));
        Path { strength, steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_and_item_sizes_are_as_documented() {
        // docs/paths.md and docs/benchmarks.md state the search's memory per partial path.
        assert_eq!(std::mem::size_of::<Entry>(), 56);
        assert_eq!(std::mem::size_of::<Item>(), 48);
    }

    #[test]
    fn complete_paths_pop_before_partial_ones_of_equal_priority_and_in_key_order() {
        let item = |priority, key: Option<Vec<(i64, usize, usize)>>, seq| Item {
            priority,
            key,
            seq,
            id: 0,
        };
        let mut heap = BinaryHeap::new();
        heap.push(item(0.5, None, 0));
        heap.push(item(0.5, Some(vec![(-1, 2, 0)]), 1));
        heap.push(item(0.5, Some(vec![(-1, 1, 0)]), 2));
        heap.push(item(0.75, None, 3));
        heap.push(item(0.5, None, 4));
        let order: Vec<u64> = std::iter::from_fn(|| heap.pop().map(|i| i.seq)).collect();
        assert_eq!(order, vec![3, 2, 1, 0, 4]);
    }
}
