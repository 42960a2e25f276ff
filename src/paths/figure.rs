//! Pictures of paths on an image input (feature `viz`).

use super::{Field, Path};
use crate::error::{Error, Result};
use crate::viz::{Grid, RgbImage};
use ndarray::ArrayD;

/// The input sample `x` (`[1, C, H, W]` or `[C, H, W]`; 3 channels shown as RGB, any other
/// number as the gray of their mean, each stretched to its range) with the strongest path's receptive field at every
/// node drawn on it: one panel per node output whose field is a box (the first path of `paths`,
/// `fields` from [`RelevanceGraph::receptive_fields`](super::RelevanceGraph::receptive_fields)),
/// titled with the node index; the path's input pixel is marked in every panel (a white dot in a
/// black ring).
///
/// # Errors
/// [`Error::InvalidArgument`] if `x` is not one image or there is no path.
pub fn receptive_field_figure(
    x: &ArrayD<f32>,
    fields: &[Vec<Option<Field>>],
    paths: &[Path],
) -> Result<RgbImage> {
    let img = image_of(x)?;
    let (Some(path), Some(fields)) = (paths.first(), fields.first()) else {
        return Err(Error::invalid("no path to draw"));
    };
    let scale = (192 / img.width().max(img.height())).max(1);
    let base = img.upscale(scale);
    let start = &path.steps[0];
    let mut panels = Vec::new();
    let mut titles = Vec::new();
    let mut last: Option<&Field> = None;
    for (step, field) in path.steps.iter().zip(fields) {
        let Some(f) = field else { continue };
        if last == Some(f) && step.node.is_some() {
            continue; // an element-wise node: the same box again
        }
        last = Some(f);
        let mut p = base.clone();
        let (x0, y0) = ((f.cols.start * scale) as i64, (f.rows.start * scale) as i64);
        let (w, h) = (f.cols.len() * scale, f.rows.len() * scale);
        p.stroke_rect(x0, y0, w.max(1), h.max(1), [255, 40, 40]);
        if w > 4 && h > 4 {
            p.stroke_rect(x0 + 1, y0 + 1, w - 2, h - 2, [255, 40, 40]);
        }
        if start.coords.len() == 3 {
            // The path's input pixel: a black ring around a white dot.
            let (sy, sx) = (start.coords[1] * scale, start.coords[2] * scale);
            let c = (
                sx as f64 + scale as f64 / 2.0,
                sy as f64 + scale as f64 / 2.0,
            );
            let r = (scale as f64 / 2.0).max(3.0);
            p.fill_circle(c, r, [255, 255, 255]);
            p.stroke_circle(c, r, 2.0, [0, 0, 0]);
        }
        panels.push(p);
        titles.push(match step.node {
            None => "input".to_string(),
            Some(n) => format!("node {n}"),
        });
    }
    if panels.is_empty() {
        return Err(Error::invalid("the path has no image-shaped step to draw"));
    }
    Grid::new(vec![panels])
        .with_column_titles(titles)
        .with_title(format!("strongest path, strength {:.3e}", path.strength))
        .render()
}

/// One image sample as RGB, each channel stretched to its range.
fn image_of(x: &ArrayD<f32>) -> Result<RgbImage> {
    let s = x.shape();
    let (c, h, w) = match *s {
        [1, c, h, w] | [c, h, w] => (c, h, w),
        _ => return Err(Error::invalid(format!("not one image: shape {s:?}"))),
    };
    let v: Vec<f32> = x.iter().copied().collect();
    let plane = h * w;
    // Three channels as RGB; any other number as the gray of their mean.
    let planes: Vec<Vec<f32>> = if c == 3 {
        (0..3)
            .map(|ch| v[ch * plane..(ch + 1) * plane].to_vec())
            .collect()
    } else {
        vec![
            (0..plane)
                .map(|i| (0..c).map(|ch| v[ch * plane + i]).sum::<f32>() / c as f32)
                .collect(),
        ]
    };
    let mut data = vec![0u8; plane * 3];
    for (ch, p) in planes.iter().enumerate() {
        let (lo, hi) = p
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        for (i, &x) in p.iter().enumerate() {
            let g = (((x - lo) / span) * 255.0).round().clamp(0.0, 255.0) as u8;
            if planes.len() == 1 {
                data[i * 3..i * 3 + 3].copy_from_slice(&[g, g, g]);
            } else {
                data[i * 3 + ch] = g;
            }
        }
    }
    RgbImage::from_raw(w, h, data)
}
