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
        let &[_, y, x] = step.coords.as_slice() else {
            return None;
        };
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

/// One box of a receptive-field figure: a field and the run of consecutive path steps that have
/// it (element-wise nodes, 1 × 1 convolutions and reshapes keep the box of the step before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldBox {
    /// The input rows and columns.
    pub field: Field,
    /// The first and last step (indices into [`Path::steps`]) with this field.
    pub steps: (usize, usize),
}

impl<K: Semiring, T> RelevanceGraph<'_, K, T> {
    /// The distinct receptive fields along `path`, from the input pixel out: consecutive steps
    /// with the same [field](RelevanceGraph::receptive_fields) share one box; steps without a
    /// field (after a flatten or dense layer) have none. The first box is the path's input pixel.
    pub fn field_boxes(&self, path: &Path) -> Vec<FieldBox> {
        let mut boxes: Vec<FieldBox> = Vec::new();
        for (s, field) in self.receptive_fields(path).into_iter().enumerate() {
            let Some(field) = field else { continue };
            match boxes.last_mut() {
                Some(b) if b.field == field && b.steps.1 + 1 == s => b.steps.1 = s,
                _ => boxes.push(FieldBox {
                    field,
                    steps: (s, s),
                }),
            }
        }
        boxes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Explainer;
    use crate::layers::{Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU};
    use crate::network::Network;
    use ndarray::{Array2, Array4, ArrayD, IxDyn};

    /// A positive input whose values vary, so the strongest path is not at a corner.
    fn input(h: usize, w: usize) -> ArrayD<f32> {
        ArrayD::from_shape_fn(IxDyn(&[1, 1, h, w]), |i| {
            1.0 + ((i[2] * 7 + i[3] * 3) % 11) as f32
        })
    }

    fn conv3(stride: usize, pad: usize) -> Box<dyn Layer> {
        Box::new(
            Conv2d::new(Array4::ones((1, 1, 3, 3)), None)
                .unwrap()
                .with_stride((stride, stride))
                .unwrap()
                .with_padding((pad, pad))
                .unwrap(),
        )
    }

    /// 8 × 8 → conv 3 × 3 → ReLU → conv 3 × 3 → dense: a step at (y, x) of the first
    /// convolution sees rows y..y+3, one of the second rows y..y+5 (columns alike); the ReLU
    /// keeps the box, the dense layers have none; the boxes merge the ReLU into the convolution.
    #[test]
    fn fields_of_stacked_convolutions() {
        let net = Network::new(
            [1, 8, 8],
            vec![
                conv3(1, 0),
                Box::new(ReLU),
                conv3(1, 0),
                Box::new(Flatten),
                Box::new(Dense::new(Array2::ones((1, 16)), None).unwrap()),
            ],
        )
        .unwrap();
        let viterbi = Explainer::viterbi();
        let g = RelevanceGraph::new(&net, &input(8, 8), 0, &viterbi).unwrap();
        for path in g.strongest(3).unwrap() {
            let c = |s: usize| (path.steps[s].coords[1], path.steps[s].coords[2]);
            let ((y0, x0), (y1, x1), (y2, x2)) = (c(0), c(1), c(3));
            assert!((y1..y1 + 3).contains(&y0) && (x1..x1 + 3).contains(&x0));
            let bx = |y: usize, x: usize, n: usize| Field {
                rows: y..y + n,
                cols: x..x + n,
            };
            let want = vec![
                Some(bx(y0, x0, 1)),
                Some(bx(y1, x1, 3)),
                Some(bx(y1, x1, 3)),
                Some(bx(y2, x2, 5)),
                None,
                None,
            ];
            assert_eq!(g.receptive_fields(&path), want);
            let boxes = g.field_boxes(&path);
            let spans: Vec<(usize, usize)> = boxes.iter().map(|b| b.steps).collect();
            assert_eq!(spans, [(0, 0), (1, 2), (3, 3)]);
            assert_eq!(boxes[2].field, bx(y2, x2, 5));
        }
    }

    /// 7 × 7 → conv 3 × 3, stride 2, padding 1 (4 × 4) → max pool 2 × 2 (2 × 2): the
    /// convolution's element (y, x) reads rows 2y − 1 … 2y + 1 clipped to 0..7; the pool's
    /// element (y, x) reads convolution rows 2y, 2y + 1, so input rows 4y − 1 … 4y + 3, clipped.
    #[test]
    fn fields_through_stride_padding_and_pooling() {
        let net = Network::new(
            [1, 7, 7],
            vec![
                conv3(2, 1),
                Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).unwrap()),
                Box::new(Flatten),
                Box::new(Dense::new(Array2::ones((1, 4)), None).unwrap()),
            ],
        )
        .unwrap();
        let viterbi = Explainer::viterbi();
        let g = RelevanceGraph::new(&net, &input(7, 7), 0, &viterbi).unwrap();
        let paths = g.strongest(8).unwrap();
        assert!(!paths.is_empty());
        let clip = |lo: isize, hi: isize| (lo.max(0) as usize)..(hi.min(7) as usize);
        for path in paths {
            let c = |s: usize| (path.steps[s].coords[1], path.steps[s].coords[2]);
            let ((y1, x1), (y2, x2)) = (c(1), c(2));
            let f = g.receptive_fields(&path);
            let (y1, x1, y2, x2) = (y1 as isize, x1 as isize, y2 as isize, x2 as isize);
            assert_eq!(
                f[1],
                Some(Field {
                    rows: clip(2 * y1 - 1, 2 * y1 + 2),
                    cols: clip(2 * x1 - 1, 2 * x1 + 2),
                })
            );
            assert_eq!(
                f[2],
                Some(Field {
                    rows: clip(4 * y2 - 1, 4 * y2 + 4),
                    cols: clip(4 * x2 - 1, 4 * x2 + 4),
                })
            );
            assert_eq!(f[3..], [None, None]);
        }
    }
}
