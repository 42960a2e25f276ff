//! Pictures of a path on an image input (feature `viz`): its receptive field at every node, drawn
//! as nested boxes on the image.

use super::{FieldBox, Path, RelevanceGraph};
use crate::error::{Error, Result};
use crate::semiring::Semiring;
use crate::viz::{BLACK, Rgb, RgbImage, WHITE, text_size};
use ndarray::ArrayD;

/// The longest edge, in pixels, the image is enlarged to (by a whole factor) in
/// [`RelevanceGraph::receptive_field_figure`].
pub const FIGURE_IMAGE_SIZE: usize = 448;

impl<K: Semiring, T> RelevanceGraph<'_, K, T> {
    /// `image` (the network's input as a picture, `H × W` for an input `[C, H, W]`, e.g. from
    /// [`input_image`]) with `path`'s receptive field at every node drawn on it as nested boxes
    /// coloured by depth, the path's input pixel marked, and a legend naming the nodes (feature
    /// `viz`).
    ///
    /// Layout: the image enlarged `s = max(1, ⌊448 / max(H, W)⌋)` times at the top left, so input
    /// row `r` is figure rows `r·s … r·s + s − 1`; the legend to its right. Each [`FieldBox`]
    /// after the input pixel's is a frame whose outer edge is the field's border (columns
    /// `c0·s … c1·s − 1` and rows `r0·s … r1·s − 1` for rows `r0..r1`, columns `c0..c1`):
    /// a band `b = clamp(⌊min(width, height) / 6⌋, 1, 3)` pixels wide in the box's colour
    /// ([`depth_color`]`(i, n)` for box `i` of the `n` boxes after the input pixel's), then one
    /// black pixel inside it (where the box is wider than `2b + 2`). Boxes are drawn from the
    /// largest in, so an inner box covers an outer one where their edges meet. The input pixel is
    /// a white disc in a black ring at its centre. Each legend line has the box's swatch, its
    /// size and its first node (the one that widened it; `node a–b` when more keep it) with the
    /// node's layer name. When the first box is under 16 figure pixels wide, a zoomed view (the
    /// first box at least 16 input pixels wide, a quarter of its size around it) sits under the
    /// legend.
    ///
    /// ```
    /// use klrp::layers::{Conv2d, Dense, Flatten};
    /// use klrp::ndarray::{Array2, Array4, ArrayD, IxDyn};
    /// use klrp::paths::RelevanceGraph;
    /// use klrp::viz::RgbImage;
    /// use klrp::{Explainer, Network};
    /// let net = Network::new([1, 6, 6], vec![
    ///     Box::new(Conv2d::new(Array4::ones((1, 1, 3, 3)), None)?),
    ///     Box::new(Flatten),
    ///     Box::new(Dense::new(Array2::ones((1, 16)), None)?),
    /// ])?;
    /// let x = ArrayD::from_shape_fn(IxDyn(&[1, 1, 6, 6]), |i| (i[2] * 6 + i[3]) as f32);
    /// let viterbi = Explainer::viterbi();
    /// let graph = RelevanceGraph::new(&net, &x, 0, &viterbi)?;
    /// let path = &graph.strongest(1)?[0];
    /// let fig = graph.receptive_field_figure(path, &RgbImage::new(6, 6, [128; 3]))?;
    /// assert!(fig.width() > 6 * 74 && fig.height() >= 6 * 74); // s = 448 / 6 = 74
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the input is not an image `[C, H, W]`, the path does not
    /// start at one of its pixels, or `image` is not the input's height and width.
    pub fn receptive_field_figure(&self, path: &Path, image: &RgbImage) -> Result<RgbImage> {
        let &[c, h, w] = self.shapes[0].as_slice() else {
            return Err(Error::invalid(format!(
                "a receptive-field figure needs an image input [C, H, W], not {:?}",
                self.shapes[0]
            )));
        };
        match path.steps.first().map(|s| s.coords.as_slice()) {
            Some(&[ch, y, x]) if ch < c && y < h && x < w => {}
            _ => {
                return Err(Error::invalid(
                    "the path does not start at a pixel of the input",
                ));
            }
        }
        let boxes = self.field_boxes(path);
        if boxes.is_empty() {
            return Err(Error::invalid("the path has no image-shaped step to draw"));
        }
        if (image.height(), image.width()) != (h, w) {
            return Err(Error::invalid(format!(
                "the picture is {}×{}, the input {h}×{w} (height × width)",
                image.height(),
                image.width()
            )));
        }
        let s = (FIGURE_IMAGE_SIZE / h.max(w)).max(1);
        let base = image.upscale(s);
        // Legend lines: (swatch, text).
        let step_node = |i: usize| path.steps[i].node;
        let name = |i: usize| -> String {
            match step_node(i) {
                None => "input".into(),
                Some(n) => self
                    .net
                    .layers()
                    .get(n)
                    .map_or_else(String::new, |l| l.name()),
            }
        };
        let start = &path.steps[0];
        let mut lines: Vec<(Swatch, String)> = vec![
            (
                Swatch::None,
                format!(
                    "path to output {}, strength {}: its receptive field at each node",
                    self.target,
                    strength_str(path.strength)
                ),
            ),
            (Swatch::None, format!("(1 input pixel = {s}×{s} px here)")),
        ];
        let (pixel, framed) = boxes.split_first().unwrap_or_else(|| unreachable!());
        let keep = match pixel.steps.1 {
            0 => String::new(),
            z => format!(", kept to node {}", step_node(z).unwrap_or(0)),
        };
        lines.push((
            Swatch::Marker,
            format!("input pixel {}{keep}", coords_str(&start.coords)),
        ));
        let n = framed.len();
        for (i, b) in framed.iter().enumerate() {
            let (a, z) = b.steps;
            let nodes = match (step_node(a), step_node(z)) {
                (Some(x), Some(y)) if x != y => format!("node {x}-{y}"),
                (Some(x), _) => format!("node {x}"),
                (None, _) => "input".into(),
            };
            lines.push((
                Swatch::Color(depth_color(i, n)),
                format!(
                    "{:>3}×{:<3} {nodes}: {}",
                    b.field.rows.len(),
                    b.field.cols.len(),
                    shorten(&name(a), 44)
                ),
            ));
        }
        let line_h = text_size("", 1).1 + 5;
        let legend_w = lines
            .iter()
            .map(|(_, t)| text_size(t, 1).0 + 24)
            .max()
            .unwrap_or(0);
        let (img_w, img_h) = (base.width(), base.height());
        let gap = 12;
        let legend_h = lines.len() * line_h + 8;
        let pixel_at = (start.coords[1], start.coords[2]);
        let inset = zoom(image, framed, pixel_at, s);
        let inset_h = inset.as_ref().map_or(0, |(z, _)| z.height() + line_h + 10);
        let inset_w = inset.as_ref().map_or(0, |(z, _)| z.width() + 2);
        let width = img_w + gap + legend_w.max(inset_w) + 6;
        let height = img_h.max(legend_h + inset_h);
        let mut fig = RgbImage::new(width, height, WHITE);
        fig.blit(&base, 0, 0);
        draw_path(&mut fig, framed, pixel_at, (0, 0), s);
        let x0 = (img_w + gap) as i64;
        for (l, (swatch, text)) in lines.iter().enumerate() {
            let y = (4 + l * line_h) as i64;
            match swatch {
                Swatch::Marker => mark(&mut fig, (x0 as f64 + 8.0, y as f64 + 4.5), 4.0),
                Swatch::Color(c) => {
                    fig.fill_rect(x0, y, 16, 9, BLACK);
                    fig.fill_rect(x0 + 1, y + 1, 14, 7, *c);
                }
                Swatch::None => {}
            }
            let tx = if *swatch == Swatch::None { x0 } else { x0 + 22 };
            fig.draw_text(tx, y, text, BLACK, 1);
        }
        if let Some((z, caption)) = inset {
            let y = (legend_h + 6) as i64;
            fig.draw_text(x0, y, &caption, BLACK, 1);
            let y = y + line_h as i64;
            fig.fill_rect(x0, y, z.width() + 2, z.height() + 2, BLACK);
            fig.blit(&z, x0 + 1, y + 1);
        }
        Ok(fig)
    }
}

/// What a legend line starts with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Swatch {
    None,
    Marker,
    Color(Rgb),
}

/// The colour of box `i` of `n` (0 the innermost): a hue ramp from red (shallow) through yellow,
/// green and cyan to blue and magenta (deep).
pub fn depth_color(i: usize, n: usize) -> Rgb {
    let t = if n > 1 {
        i as f64 / (n - 1) as f64
    } else {
        0.0
    };
    let hue = 300.0 * t; // degrees
    let x = 1.0 - ((hue / 60.0) % 2.0 - 1.0).abs();
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        _ => (x, 0.0, 1.0),
    };
    let byte = |v: f64| (v * 255.0).round() as u8;
    [byte(r), byte(g), byte(b)]
}

/// Draws `framed` (largest first, box `i` in [`depth_color`]`(i, n)`) and the input pixel's
/// marker on `img`, a picture of the input from row `r0` and column `c0` on, enlarged `s` times.
fn draw_path(
    img: &mut RgbImage,
    framed: &[FieldBox],
    (row, col): (usize, usize),
    (r0, c0): (usize, usize),
    s: usize,
) {
    let n = framed.len();
    let at = |v: usize, v0: usize| (v as i64 - v0 as i64) * s as i64;
    for (i, b) in framed.iter().enumerate().rev() {
        let f = &b.field;
        frame(
            img,
            (at(f.cols.start, c0), at(f.rows.start, r0)),
            (f.cols.len() * s, f.rows.len() * s),
            depth_color(i, n),
        );
    }
    let half = s as f64 / 2.0;
    let c = (at(col, c0) as f64 + half, at(row, r0) as f64 + half);
    mark(img, c, (half - 1.0).max(4.0)); // the ring (±1) inside the pixel from s = 10
}

/// The side, in figure pixels, below which the first box gets a zoomed view.
const ZOOM_BELOW: usize = 16;

/// A zoomed view when the first box is smaller than [`ZOOM_BELOW`] figure pixels: the first box
/// at least 16 input pixels wide and high (else the last), with a quarter of its size around it,
/// enlarged to at most 224 pixels, boxes and marker drawn; with its caption.
fn zoom(
    image: &RgbImage,
    framed: &[FieldBox],
    pixel_at: (usize, usize),
    s: usize,
) -> Option<(RgbImage, String)> {
    let first = &framed.first()?.field;
    if first.rows.len().min(first.cols.len()) * s >= ZOOM_BELOW {
        return None;
    }
    let big = framed
        .iter()
        .find(|b| b.field.rows.len().min(b.field.cols.len()) >= 16)
        .or(framed.last())?;
    let pad = |r: &std::ops::Range<usize>, n: usize| {
        let p = (r.len() / 4).max(2);
        r.start.saturating_sub(p)..(r.end + p).min(n)
    };
    let rows = pad(&big.field.rows, image.height());
    let cols = pad(&big.field.cols, image.width());
    let z = (224 / rows.len().max(cols.len())).max(1);
    let mut crop = RgbImage::new(cols.len(), rows.len(), WHITE);
    for (y, r) in rows.clone().enumerate() {
        for (x, c) in cols.clone().enumerate() {
            if let Some(p) = image.pixel(c, r) {
                crop.put(x as i64, y as i64, p);
            }
        }
    }
    let mut view = crop.upscale(z);
    draw_path(&mut view, framed, pixel_at, (rows.start, cols.start), z);
    let caption = format!(
        "zoom ({z}×): rows {}..{}, columns {}..{}",
        rows.start, rows.end, cols.start, cols.end
    );
    Some((view, caption))
}

/// A frame of outer size `(w, h)` at `(x, y)`: a band in `color`, one black pixel inside it.
fn frame(img: &mut RgbImage, (x, y): (i64, i64), (w, h): (usize, usize), color: Rgb) {
    let b = (w.min(h) / 6).clamp(1, 3);
    let band = |img: &mut RgbImage, off: usize, width: usize, c: Rgb| {
        if w <= 2 * off || h <= 2 * off {
            return;
        }
        let (x, y) = (x + off as i64, y + off as i64);
        let (w, h) = (w - 2 * off, h - 2 * off);
        let t = width.min(w).min(h);
        img.fill_rect(x, y, w, t, c);
        img.fill_rect(x, y + (h - t) as i64, w, t, c);
        img.fill_rect(x, y, t, h, c);
        img.fill_rect(x + (w - t) as i64, y, t, h, c);
    };
    band(img, 0, b, color);
    if w > 2 * b + 2 && h > 2 * b + 2 {
        band(img, b, 1, BLACK);
    }
}

/// The input-pixel marker: a white disc in a black ring.
fn mark(img: &mut RgbImage, center: (f64, f64), r: f64) {
    img.fill_circle(center, r, WHITE);
    img.stroke_circle(center, r, 2.0, BLACK);
}

/// A strength with 6 decimals, or 4 significant digits below 0.001.
fn strength_str(v: f64) -> String {
    if v >= 1e-3 {
        format!("{v:.6}")
    } else {
        format!("{v:.3e}")
    }
}

fn coords_str(c: &[usize]) -> String {
    match c {
        [ch, y, x] => format!("(channel {ch}, row {y}, column {x})"),
        _ => format!("{c:?}"),
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 2).collect::<String>() + ".."
    }
}

/// One input sample as a picture (`[1, C, H, W]` or `[C, H, W]`): 3 channels as RGB, any other
/// number as the gray of their mean. With `pixel_range` (per channel, the values black and full
/// intensity were mapped to by preprocessing) each channel `v ↦ (v − lo) / (hi − lo)`; without
/// it, each channel stretched to its own range.
///
/// # Errors
/// [`Error::InvalidArgument`] if `x` is not one image or the range does not give one finite
/// `lo ≠ hi` per channel.
pub fn input_image(x: &ArrayD<f32>, pixel_range: Option<(&[f32], &[f32])>) -> Result<RgbImage> {
    let s = x.shape();
    let (c, h, w) = match *s {
        [1, c, h, w] | [c, h, w] => (c, h, w),
        _ => return Err(Error::invalid(format!("not one image: shape {s:?}"))),
    };
    if let Some((lo, hi)) = pixel_range
        && (lo.len() != c || hi.len() != c || lo.iter().zip(hi).any(|(l, h)| !(h - l).is_normal()))
    {
        return Err(Error::invalid(format!(
            "a pixel range needs finite lo ≠ hi for each of the {c} channels"
        )));
    }
    let v: Vec<f32> = x.iter().copied().collect();
    let plane = h * w;
    let range = |ch: usize, p: &[f32]| -> (f32, f32) {
        match pixel_range {
            Some((lo, hi)) => (lo[ch], hi[ch]),
            None => p
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                }),
        }
    };
    let mut data = vec![0u8; plane * 3];
    let to_byte = |x: f32, (lo, hi): (f32, f32)| {
        let t = if hi != lo { (x - lo) / (hi - lo) } else { 0.0 };
        (t * 255.0).round().clamp(0.0, 255.0) as u8
    };
    if c == 3 {
        for ch in 0..3 {
            let p = &v[ch * plane..(ch + 1) * plane];
            let r = range(ch, p);
            for (i, &x) in p.iter().enumerate() {
                data[i * 3 + ch] = to_byte(x, r);
            }
        }
    } else {
        let mean = |i: usize, f: &dyn Fn(usize, f32) -> f32| {
            (0..c).map(|ch| f(ch, v[ch * plane + i])).sum::<f32>() / c as f32
        };
        // Each channel to [0, 1] by its range first (given), or the mean stretched (not given).
        let unit = |ch: usize, x: f32| match pixel_range {
            Some((lo, hi)) => (x - lo[ch]) / (hi[ch] - lo[ch]),
            None => x,
        };
        let m: Vec<f32> = (0..plane).map(|i| mean(i, &unit)).collect();
        let r = match pixel_range {
            Some(_) => (0.0, 1.0),
            None => range(0, &m),
        };
        for (i, &x) in m.iter().enumerate() {
            data[i * 3..i * 3 + 3].fill(to_byte(x, r));
        }
    }
    RgbImage::from_raw(w, h, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Explainer;
    use crate::layers::{Conv2d, Dense, Flatten, ReLU};
    use crate::network::Network;
    use ndarray::{Array2, Array4, IxDyn};

    const GRAY: Rgb = [128, 128, 128];

    #[test]
    fn depth_colors_run_from_red_to_magenta() {
        assert_eq!(depth_color(0, 2), [255, 0, 0]);
        assert_eq!(depth_color(1, 2), [255, 0, 255]);
        assert_eq!(depth_color(0, 1), [255, 0, 0]);
        // t = 1/4: hue 75°, between yellow (60°) and green (120°): (0.75, 1, 0).
        assert_eq!(depth_color(1, 5), [191, 255, 0]);
    }

    /// 8 × 8 → conv 3 × 3 → ReLU → conv 3 × 3 → dense, drawn on a gray 8 × 8 picture: the
    /// image is enlarged s = 448 / 8 = 56 times; box A (the first convolution's 3 × 3 field,
    /// red) and box B (the second's 5 × 5, magenta) are frames whose outer edge is the field's
    /// border, a 3-pixel band (⌊168 / 6⌋ and ⌊280 / 6⌋ clamped to 3) then one black pixel; the
    /// input pixel's centre is white.
    #[test]
    fn boxes_are_drawn_on_the_fields_borders() {
        let conv = || -> Box<dyn crate::layers::Layer> {
            Box::new(Conv2d::new(Array4::ones((1, 1, 3, 3)), None).unwrap())
        };
        let net = Network::new(
            [1, 8, 8],
            vec![
                conv(),
                Box::new(ReLU),
                conv(),
                Box::new(Flatten),
                Box::new(Dense::new(Array2::ones((1, 16)), None).unwrap()),
            ],
        )
        .unwrap();
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 1, 8, 8]), |i| {
            1.0 + ((i[2] * 7 + i[3] * 3) % 11) as f32
        });
        let viterbi = Explainer::viterbi();
        let g = RelevanceGraph::new(&net, &x, 0, &viterbi).unwrap();
        let path = &g.strongest(1).unwrap()[0];
        let fig = g
            .receptive_field_figure(path, &RgbImage::new(8, 8, GRAY))
            .unwrap();
        let s = 56;
        assert!(fig.width() > 8 * s && fig.height() >= 8 * s);
        let c = |st: usize| (path.steps[st].coords[1], path.steps[st].coords[2]);
        let ((y0, x0), (y1, x1), (y2, x2)) = (c(0), c(1), c(3));
        let (red, magenta) = ([255, 0, 0], [255, 0, 255]);
        let px = |x: usize, y: usize| fig.pixel(x, y).unwrap();
        // Box A: its four corners red, black 3 pixels in (diagonally), gray 4 pixels in.
        let (l, t, r, b) = (x1 * s, y1 * s, (x1 + 3) * s - 1, (y1 + 3) * s - 1);
        for (cx, cy, dx, dy) in [(l, t, 1, 1), (r, t, -1, 1), (l, b, 1, -1), (r, b, -1, -1)] {
            let at = |k: isize| {
                px(
                    (cx as isize + dx * k) as usize,
                    (cy as isize + dy * k) as usize,
                )
            };
            assert_eq!((at(0), at(2), at(3), at(4)), (red, red, BLACK, GRAY));
        }
        // Box B: the corner that is on none of A's edges (A shares at most one of B's left and
        // right edges, one of its top and bottom): magenta, black 3 in, gray 1 out.
        let (bl, bt, br, bb) = (x2 * s, y2 * s, (x2 + 5) * s - 1, (y2 + 5) * s - 1);
        let (cx, dx) = if x1 == x2 { (br, -1) } else { (bl, 1) };
        let (cy, dy) = if y1 == y2 { (bb, -1) } else { (bt, 1) };
        let at = |k: isize| {
            fig.pixel(
                (cx as isize + dx * k) as usize,
                (cy as isize + dy * k) as usize,
            )
        };
        assert_eq!((at(0), at(3)), (Some(magenta), Some(BLACK)));
        let (ox, oy) = (cx as isize - dx, cy as isize - dy);
        if (0..8 * s as isize).contains(&ox) && (0..8 * s as isize).contains(&oy) {
            assert_eq!(at(-1), Some(GRAY));
        }
        // The input pixel: a white centre.
        assert_eq!(px(x0 * s + s / 2, y0 * s + s / 2), WHITE);
        // Nothing drawn outside B on the image: its row above (if any) is gray.
        if y2 > 0 {
            assert!((0..8 * s).all(|x| px(x, bt - 1) == GRAY));
        }
        // A picture of the wrong size is refused.
        let e = g
            .receptive_field_figure(path, &RgbImage::new(7, 8, GRAY))
            .unwrap_err();
        assert!(e.to_string().contains("the input 8×8"), "{e}");
    }

    #[test]
    fn input_image_maps_the_pixel_range_to_black_and_white() {
        // Channels normalised as (v − 0.5) / 0.25: pixel values 0, 0.5, 1 → −2, 0, 2.
        let x = ArrayD::from_shape_vec(
            IxDyn(&[1, 3, 1, 3]),
            vec![-2.0, 0.0, 2.0, 0.0, 2.0, -2.0, 2.0, -2.0, 0.0],
        )
        .unwrap();
        let (lo, hi) = ([-2.0; 3], [2.0; 3]);
        let img = input_image(&x, Some((&lo, &hi))).unwrap();
        assert_eq!(img.pixel(0, 0), Some([0, 128, 255]));
        assert_eq!(img.pixel(1, 0), Some([128, 255, 0]));
        assert_eq!(img.pixel(2, 0), Some([255, 0, 128]));
        // Without a range each channel is stretched to its own: the same here.
        assert_eq!(input_image(&x, None).unwrap(), img);
        // One channel: gray.
        let one = ArrayD::from_shape_vec(IxDyn(&[1, 1, 2]), vec![3.0, 5.0]).unwrap();
        let img = input_image(&one, Some((&[1.0], &[5.0]))).unwrap();
        assert_eq!(img.pixel(0, 0), Some([128; 3]));
        assert!(input_image(&one, Some((&[1.0], &[1.0]))).is_err());
        assert!(input_image(&x.clone().into_shape_with_order(IxDyn(&[9])).unwrap(), None).is_err());
    }
}
