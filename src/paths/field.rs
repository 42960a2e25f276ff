//! Receptive fields along a path: the input rows and columns an element of the path sees through
//! the nodes the path runs through.

use super::{Path, RelevanceGraph};
use crate::layers::{Connectivity, Shares};
use crate::semiring::Semiring;
use std::ops::Range;

/// A box of input rows and columns (`[C, H, W]` inputs), half-open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Input rows.
    pub rows: Range<usize>,
    /// Input columns.
    pub cols: Range<usize>,
}

impl<K: Semiring, T> RelevanceGraph<'_, K, T> {
    /// For every step of `path`, the box of input pixels whose values reach that step's element
    /// along the path's nodes (`None` where it is not a box of an image: after a dense layer or
    /// a flatten, or when the input is not `[C, H, W]`). Convolution windows (stride, padding,
    /// dilation) and pooling windows widen the box; element-wise nodes keep it.
    pub fn receptive_fields(&self, path: &Path) -> Vec<Option<Field>> {
        (0..path.steps.len())
            .map(|s| self.field_of(path, s))
            .collect()
    }

    fn field_of(&self, path: &Path, s: usize) -> Option<Field> {
        let step = &path.steps[s];
        let shape = self.shapes.get(step.node.map_or(0, |n| n + 1))?;
        let &[_, _, _] = shape.as_slice() else {
            return None;
        };
        let (y, x) = (step.coords[1], step.coords[2]);
        let (mut rows, mut cols) = (y..y + 1, x..x + 1);
        for t in (1..=s).rev() {
            let st = &path.steps[t];
            let node = st.node?;
            let prev = &path.steps[t - 1];
            let in_shape = self.shapes.get(prev.node.map_or(0, |n| n + 1))?;
            let &[_, in_h, in_w] = in_shape.as_slice() else {
                return None;
            };
            match self.shares.get(node)?.get(st.operand)? {
                Shares::Linear {
                    connectivity: Connectivity::Conv { geometry: g, .. },
                    ..
                } => {
                    let back = |r: &Range<usize>, s: usize, pad: usize, k: usize, d: usize, n| {
                        let lo = (r.start * s).saturating_sub(pad);
                        let hi = ((r.end - 1) * s + (k - 1) * d + 1).saturating_sub(pad);
                        lo.min(n)..hi.min(n)
                    };
                    rows = back(&rows, g.stride.0, g.padding.0, g.kh, g.dilation.0, in_h);
                    cols = back(&cols, g.stride.1, g.padding.1, g.kw, g.dilation.1, in_w);
                }
                Shares::Linear {
                    connectivity: Connectivity::Pool { geometry: g },
                    ..
                }
                | Shares::Winner { geometry: g, .. } => {
                    rows = g.rows[rows.start].start..g.rows[rows.end - 1].end;
                    cols = g.cols[cols.start].start..g.cols[cols.end - 1].end;
                }
                Shares::Pass | Shares::Elementwise(_) | Shares::ChannelSlice { .. } => {
                    let out = self.shapes.get(node + 1)?;
                    if out.len() != 3 || out[1] != in_h || out[2] != in_w {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        Some(Field { rows, cols })
    }
}
