//! Pictures of relevance: colormaps, heatmaps, image grids, line plots and PNG files
//! (feature `viz`, on by default).
//!
//! May import: `composite`, `conversion`, `error`, `explain`, `io`, `layers`, `network`, `rules`,
//! `semiring`, `tensor` (docs/architecture.md, "Layers").
//!
//! Everything draws into an [`RgbImage`], a plain 8-bit RGB buffer, and [`save_png`] writes it
//! with the pure-Rust [`png`](https://docs.rs/png) crate. Text (titles, tick labels, legends) is
//! drawn with a small built-in 5 × 7 pixel font, so no system font library is needed.
//!
//! | piece | what it does |
//! |---|---|
//! | [`Colormap`] | value in `[0, 1]` → colour: [`Bwr`](Colormap::Bwr) (signed relevance), [`Viridis`](Colormap::Viridis), [`Hot`](Colormap::Hot), [`Gray`](Colormap::Gray), [`GrayR`](Colormap::GrayR) |
//! | [`Scale`] | relevance → `[0, 1]`: a fixed range, min–max, symmetric around 0, or `log1p` for counts |
//! | [`heatmap_rgb`] | a 2-D relevance map (`ArrayView2`) as an image, one pixel per value; [`heatmap_rgb_dyn`] the same for an `ArrayViewD`, an error if it is not 2-D |
//! | [`Grid`] | images in rows and columns, enlarged, with column titles and row labels |
//! | [`Panel`], [`figure`] | a figure: heatmaps or pictures side by side under a title, each with lines of text above it |
//! | [`LinePlot`] | a line plot with axes, ticks, grid lines and a legend |
//! | [`NetworkDiagram`] | a dense network's neurons and connections annotated with its forward pass or one K-LRP pass in any semiring (⊤ highlighted, counts and strengths by width and colour, zero faint), the most relevant neurons of wide layers |
//! | [`save_png`], [`read_png`], [`encode_png`], [`decode_png`] | PNG files |
//!
//! # Example
//!
//! ```
//! use klrp::viz::{heatmap_rgb, Colormap, Grid, Scale};
//! use ndarray::array;
//!
//! let relevance = array![[0.5, -1.0], [0.0, 2.0]];
//! let img = heatmap_rgb(relevance.view(), Colormap::Bwr, Scale::Symmetric);
//! assert_eq!(img.pixel(1, 1), Some([255, 0, 0])); // the largest positive value: red
//! assert_eq!(img.pixel(0, 1), Some([255, 255, 255])); // zero: white
//!
//! let grid = Grid::new(vec![vec![img.clone(), img]])
//!     .with_scale(4)
//!     .with_column_titles(["a", "b"])
//!     .render()?;
//! let png = klrp::viz::encode_png(&grid)?;
//! assert_eq!(klrp::viz::decode_png(&png)?, grid);
//! # Ok::<(), klrp::Error>(())
//! ```

mod network;

pub use network::{
    AUTO_LABEL_CONNECTIONS, DiagramColumn, DiagramConnection, DiagramKind, DiagramNeuron,
    DiagramValue, NetworkDiagram, ValueStyle, short_number,
};

use crate::error::{Error, Result};
use ndarray::{ArrayView2, ArrayViewD, Ix2};
use std::io::{BufWriter, Cursor, Write};
use std::path::Path;

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

/// White.
pub const WHITE: Rgb = [255, 255, 255];
/// Black.
pub const BLACK: Rgb = [0, 0, 0];

/// Ten distinct colours for plot series (matplotlib's `tab10`).
pub const PALETTE: [Rgb; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// An RGB image, 8 bits per channel, stored row by row (`3 · width · height` bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}×{})", self.width, self.height)
    }
}

impl RgbImage {
    /// A `width × height` image filled with `fill`.
    pub fn new(width: usize, height: usize, fill: Rgb) -> Self {
        let mut data = Vec::with_capacity(3 * width * height);
        for _ in 0..width * height {
            data.extend_from_slice(&fill);
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// An image from raw RGB bytes, row by row.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `data` does not hold `3 · width · height` bytes.
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != 3 * width * height {
            return Err(Error::shape(
                "RGB image bytes",
                &[3 * width * height],
                &[data.len()],
            ));
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The raw RGB bytes, row by row.
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// The colour at column `x`, row `y`, or `None` outside the image.
    pub fn pixel(&self, x: usize, y: usize) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y * self.width + x);
        Some([self.data[i], self.data[i + 1], self.data[i + 2]])
    }

    /// Sets the pixel at column `x`, row `y`; coordinates outside the image are ignored.
    pub fn put(&mut self, x: i64, y: i64, color: Rgb) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let i = 3 * (y as usize * self.width + x as usize);
        self.data[i..i + 3].copy_from_slice(&color);
    }

    /// Fills the rectangle with top-left corner `(x, y)`, clipped to the image.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: Rgb) {
        for yy in y..y + h as i64 {
            for xx in x..x + w as i64 {
                self.put(xx, yy, color);
            }
        }
    }

    /// Draws the outline of a rectangle, one pixel wide.
    pub fn stroke_rect(&mut self, x: i64, y: i64, w: usize, h: usize, color: Rgb) {
        if w == 0 || h == 0 {
            return;
        }
        let (r, b) = (x + w as i64 - 1, y + h as i64 - 1);
        self.draw_line((x, y), (r, y), color, 1);
        self.draw_line((x, b), (r, b), color, 1);
        self.draw_line((x, y), (x, b), color, 1);
        self.draw_line((r, y), (r, b), color, 1);
    }

    /// Copies `src` with its top-left corner at `(x, y)`, clipped to this image.
    pub fn blit(&mut self, src: &RgbImage, x: i64, y: i64) {
        for sy in 0..src.height {
            for sx in 0..src.width {
                let i = 3 * (sy * src.width + sx);
                self.put(
                    x + sx as i64,
                    y + sy as i64,
                    [src.data[i], src.data[i + 1], src.data[i + 2]],
                );
            }
        }
    }

    /// The image enlarged `factor` times by repeating pixels (nearest neighbour), so that every
    /// input pixel stays a crisp square.
    pub fn upscale(&self, factor: usize) -> RgbImage {
        let factor = factor.max(1);
        let mut out = RgbImage::new(self.width * factor, self.height * factor, BLACK);
        for y in 0..out.height {
            for x in 0..out.width {
                let i = 3 * ((y / factor) * self.width + x / factor);
                let o = 3 * (y * out.width + x);
                out.data[o..o + 3].copy_from_slice(&self.data[i..i + 3]);
            }
        }
        out
    }

    /// Draws a straight line from `a` to `b` (Bresenham), `thickness` pixels wide.
    pub fn draw_line(&mut self, a: (i64, i64), b: (i64, i64), color: Rgb, thickness: usize) {
        let t = thickness.max(1) as i64;
        let off = (t - 1) / 2;
        let (mut x, mut y) = a;
        let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
        let (sx, sy) = ((b.0 - a.0).signum(), (b.1 - a.1).signum());
        let mut err = dx + dy;
        loop {
            self.fill_rect(x - off, y - off, t as usize, t as usize, color);
            if (x, y) == b {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Mixes `color` into the pixel at column `x`, row `y` with opacity `alpha`:
    /// `c ← (1 − α)·c + α·color`, `α` clamped to `[0, 1]`; coordinates outside are ignored.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
            return;
        }
        let a = if alpha.is_nan() {
            0.0
        } else {
            alpha.clamp(0.0, 1.0)
        };
        if a <= 0.0 {
            return;
        }
        let i = 3 * (y as usize * self.width + x as usize);
        for (c, &t) in self.data[i..i + 3].iter_mut().zip(&color) {
            *c = (f64::from(*c) * (1.0 - a) + f64::from(t) * a).round() as u8;
        }
    }

    /// Draws an anti-aliased line `width` pixels wide from `a` to `b`, with round ends.
    ///
    /// Coordinates are in pixels, continuous: pixel `(x, y)` covers `[x, x + 1) × [y, y + 1)`.
    /// A pixel is covered by `clamp(width/2 + ½ − distance, 0, 1)`, the distance from its centre
    /// to the segment, and blended with that opacity.
    pub fn draw_line_aa(&mut self, a: (f64, f64), b: (f64, f64), color: Rgb, width: f64) {
        let half = width.max(0.5) / 2.0;
        if ![a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
            return;
        }
        let reach = half + 1.0;
        let (x0, x1) = (a.0.min(b.0) - reach, a.0.max(b.0) + reach);
        let (y0, y1) = (a.1.min(b.1) - reach, a.1.max(b.1) + reach);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let (xs, xe) = (x0.floor().max(0.0), x1.ceil().min(self.width as f64));
        let (ys, ye) = (y0.floor().max(0.0), y1.ceil().min(self.height as f64));
        let (xs, xe, ys, ye) = (xs as i64, xe as i64, ys as i64, ye as i64);
        for y in ys..ye {
            let py = y as f64 + 0.5;
            for x in xs..xe {
                let px = x as f64 + 0.5;
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let dist = (px - (a.0 + t * dx)).hypot(py - (a.1 + t * dy));
                let cover = half + 0.5 - dist;
                if cover > 0.0 {
                    self.blend(x, y, color, cover);
                }
            }
        }
    }

    /// Fills an anti-aliased disc of `radius` pixels around `center` (continuous coordinates, as
    /// in [`draw_line_aa`](RgbImage::draw_line_aa)).
    pub fn fill_circle(&mut self, center: (f64, f64), radius: f64, color: Rgb) {
        self.circle_coverage(center, radius + 1.0, color, |d| radius + 0.5 - d);
    }

    /// Draws an anti-aliased circle of `radius` pixels around `center`, its ring `width` pixels
    /// wide.
    pub fn stroke_circle(&mut self, center: (f64, f64), radius: f64, width: f64, color: Rgb) {
        let half = width.max(0.5) / 2.0;
        self.circle_coverage(center, radius + half + 1.0, color, |d| {
            half + 0.5 - (d - radius).abs()
        });
    }

    /// Blends `color` into every pixel within `reach` of `center` with opacity
    /// `cover(distance of the pixel centre)`.
    fn circle_coverage(
        &mut self,
        center: (f64, f64),
        reach: f64,
        color: Rgb,
        cover: impl Fn(f64) -> f64,
    ) {
        if !(center.0.is_finite() && center.1.is_finite() && reach.is_finite()) {
            return;
        }
        let (xs, xe) = (
            (center.0 - reach).floor().max(0.0) as i64,
            (center.0 + reach).ceil().min(self.width as f64) as i64,
        );
        let (ys, ye) = (
            (center.1 - reach).floor().max(0.0) as i64,
            (center.1 + reach).ceil().min(self.height as f64) as i64,
        );
        for y in ys..ye {
            for x in xs..xe {
                let d = (x as f64 + 0.5 - center.0).hypot(y as f64 + 0.5 - center.1);
                let c = cover(d);
                if c > 0.0 {
                    self.blend(x, y, color, c);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)` in the built-in 5 × 7 font, each font
    /// pixel a `scale × scale` square. Characters the font lacks are drawn as boxes.
    pub fn draw_text(&mut self, x: i64, y: i64, text: &str, color: Rgb, scale: usize) {
        let s = scale.max(1) as i64;
        let mut cx = x;
        for c in text.chars() {
            let rows = font::glyph(c);
            for (ry, row) in rows.iter().enumerate() {
                for rx in 0..font::WIDTH {
                    if row & (1 << (font::WIDTH - 1 - rx)) != 0 {
                        self.fill_rect(
                            cx + rx as i64 * s,
                            y + ry as i64 * s,
                            s as usize,
                            s as usize,
                            color,
                        );
                    }
                }
            }
            cx += font::ADVANCE as i64 * s;
        }
    }

    /// Draws `text` rotated a quarter turn counter-clockwise (reading upwards), with the
    /// bounding box's top-left corner at `(x, y)`: for vertical axis labels.
    pub fn draw_text_vertical(&mut self, x: i64, y: i64, text: &str, color: Rgb, scale: usize) {
        let (w, h) = text_size(text, scale);
        let mut tmp = RgbImage::new(w, h, WHITE);
        tmp.draw_text(0, 0, text, BLACK, scale);
        for ty in 0..h {
            for tx in 0..w {
                if tmp.pixel(tx, ty) == Some(BLACK) {
                    // (tx, ty) → (ty, w − 1 − tx)
                    self.put(x + ty as i64, y + (w - 1 - tx) as i64, color);
                }
            }
        }
    }
}

/// The size in pixels `(width, height)` of `text` drawn by [`RgbImage::draw_text`] at `scale`
/// (one line; the height includes room for descenders).
pub fn text_size(text: &str, scale: usize) -> (usize, usize) {
    let s = scale.max(1);
    let n = text.chars().count();
    let w = if n == 0 {
        0
    } else {
        (n * font::ADVANCE - (font::ADVANCE - font::WIDTH)) * s
    };
    (w, font::HEIGHT * s)
}

/// A colormap: a value `t` in `[0, 1]` → a colour. Values outside are clamped; NaN is drawn
/// mid-grey in every map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// Blue – white – red (matplotlib's `bwr`): 0 → blue, ½ → white, 1 → red. For signed
    /// relevance with a [symmetric](Scale::Symmetric) scale: positive red, negative blue, zero
    /// white (the usual LRP heatmap).
    Bwr,
    /// Black → white.
    Gray,
    /// White → black (matplotlib's `gray_r`): dark ink on white paper; Boolean masks as black
    /// (⊤) on white (⊥).
    GrayR,
    /// Viridis (dark purple → blue → green → yellow), perceptually uniform and sequential;
    /// interpolated from 9 anchors of matplotlib's table.
    Viridis,
    /// Black → red → yellow → white (matplotlib's `hot`), sequential.
    Hot,
}

impl Colormap {
    /// The colour for `t` (clamped to `[0, 1]`; NaN → grey).
    pub fn map(self, t: f64) -> Rgb {
        if t.is_nan() {
            return [128, 128, 128];
        }
        let t = t.clamp(0.0, 1.0);
        let byte = |v: f64| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        match self {
            Colormap::Bwr => {
                if t <= 0.5 {
                    let u = t / 0.5;
                    [byte(u), byte(u), 255]
                } else {
                    let u = (1.0 - t) / 0.5;
                    [255, byte(u), byte(u)]
                }
            }
            Colormap::Gray => [byte(t); 3],
            Colormap::GrayR => [byte(1.0 - t); 3],
            Colormap::Viridis => interpolate(&VIRIDIS, t),
            Colormap::Hot => {
                // matplotlib: red ramps over [0, 3/8], green over [3/8, 3/4], blue over [3/4, 1].
                let r = t / 0.375;
                let g = (t - 0.375) / 0.375;
                let b = (t - 0.75) / 0.25;
                [byte(0.0416 + (1.0 - 0.0416) * r), byte(g), byte(b)]
            }
        }
    }

    /// The colormap's name (`"bwr"`, `"viridis"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Bwr => "bwr",
            Colormap::Gray => "gray",
            Colormap::GrayR => "gray_r",
            Colormap::Viridis => "viridis",
            Colormap::Hot => "hot",
        }
    }

    /// A horizontal colour bar `width × height`, from `t = 0` on the left to `t = 1` on the right.
    pub fn bar(self, width: usize, height: usize) -> RgbImage {
        let mut img = RgbImage::new(width, height, WHITE);
        for x in 0..width {
            let t = if width > 1 {
                x as f64 / (width - 1) as f64
            } else {
                0.5
            };
            img.fill_rect(x as i64, 0, 1, height, self.map(t));
        }
        img
    }
}

/// Viridis at t = 0, 1/8, …, 1 (matplotlib's table).
const VIRIDIS: [Rgb; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

fn interpolate(anchors: &[Rgb], t: f64) -> Rgb {
    let n = anchors.len() - 1;
    let pos = t * n as f64;
    let i = (pos.floor() as usize).min(n - 1);
    let f = pos - i as f64;
    let (a, b) = (anchors[i], anchors[i + 1]);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    [mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])]
}

/// How values are mapped to `[0, 1]` before a [`Colormap`] colours them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// `[min, max]` → `[0, 1]` linearly, clamped.
    Range {
        /// The value drawn at `t = 0`.
        min: f64,
        /// The value drawn at `t = 1`.
        max: f64,
    },
    /// The data's own minimum and maximum → `[0, 1]` (a constant map → 0).
    MinMax,
    /// `[−m, m]` → `[0, 1]` with `m` the largest |value| of the data: 0 is always the middle
    /// (`t = ½`), so the sign of relevance reads off the colour. For [`Colormap::Bwr`].
    Symmetric,
    /// `[−m, m]` → `[0, 1]` with a given `m` (the same scale across several maps).
    SymmetricAt(f64),
    /// `log1p(max(v, 0)) / log1p(m)`, `m` the data's largest value: counts over many orders of
    /// magnitude (path counts).
    Log1p,
    /// As [`Log1p`](Scale::Log1p) with a given maximum `m`.
    Log1pAt(f64),
}

impl Scale {
    /// The map `value → t ∈ [0, 1]` this scale gives for `data` (data-dependent scales read
    /// their range from `data`, ignoring non-finite values).
    pub fn normalizer<'a>(self, data: impl IntoIterator<Item = &'a f64>) -> impl Fn(f64) -> f64 {
        let (mut lo, mut hi, mut abs) = (f64::INFINITY, f64::NEG_INFINITY, 0.0_f64);
        for &v in data {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
                abs = abs.max(v.abs());
            }
        }
        if lo > hi {
            (lo, hi) = (0.0, 0.0);
        }
        // kind: 0 linear [a, b]; 1 log1p with max b.
        let (kind, a, b) = match self {
            Scale::Range { min, max } => (0, min, max),
            Scale::MinMax => (0, lo, hi),
            Scale::Symmetric => (0, -abs, abs),
            Scale::SymmetricAt(m) => (0, -m.abs(), m.abs()),
            Scale::Log1p => (1, 0.0, hi.max(0.0)),
            Scale::Log1pAt(m) => (1, 0.0, m.max(0.0)),
        };
        let symmetric = matches!(self, Scale::Symmetric | Scale::SymmetricAt(_));
        move |v: f64| {
            if v.is_nan() {
                return f64::NAN;
            }
            let t = if kind == 1 {
                let den = b.ln_1p();
                if den > 0.0 {
                    v.max(0.0).ln_1p() / den
                } else {
                    0.0
                }
            } else if b > a {
                (v - a) / (b - a)
            } else if symmetric {
                0.5
            } else {
                0.0
            };
            t.clamp(0.0, 1.0)
        }
    }
}

/// A relevance map `[rows, cols]` as an image, one pixel per value, coloured by `cmap` after
/// `scale`.
///
/// For classical LRP use [`Colormap::Bwr`] with [`Scale::Symmetric`] (red positive, blue
/// negative, white zero); for counts [`Colormap::Viridis`] with [`Scale::Log1p`].
pub fn heatmap_rgb(relevance: ArrayView2<'_, f64>, cmap: Colormap, scale: Scale) -> RgbImage {
    let (rows, cols) = relevance.dim();
    let norm = scale.normalizer(relevance.iter());
    let mut img = RgbImage::new(cols, rows, WHITE);
    for ((y, x), &v) in relevance.indexed_iter() {
        img.put(x as i64, y as i64, cmap.map(norm(v)));
    }
    img
}

/// [`heatmap_rgb`] for an array of any dimension type (an `ArrayViewD`, e.g. a sample of a
/// batch), checked to be a 2-D map `[rows, cols]` at run time.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the shape if `relevance` is not 2-D. A `[C, H, W]` sample
/// is refused too (which of summing, one channel or the largest is wanted depends on the
/// relevance): sum its channels first, as [`Relevance::heatmap`](crate::Relevance::heatmap)
/// and `klrp explain --heatmap` do.
///
/// ```
/// use klrp::ndarray::{ArrayD, IxDyn};
/// use klrp::viz::{heatmap_rgb_dyn, Colormap, Scale};
/// let map = ArrayD::<f64>::zeros(IxDyn(&[2, 3]));
/// let img = heatmap_rgb_dyn(map.view(), Colormap::Bwr, Scale::Symmetric)?;
/// assert_eq!((img.width(), img.height()), (3, 2));
/// let chw = ArrayD::<f64>::zeros(IxDyn(&[3, 2, 2]));
/// assert!(heatmap_rgb_dyn(chw.view(), Colormap::Bwr, Scale::Symmetric).is_err());
/// # Ok::<(), klrp::Error>(())
/// ```
pub fn heatmap_rgb_dyn(
    relevance: ArrayViewD<'_, f64>,
    cmap: Colormap,
    scale: Scale,
) -> Result<RgbImage> {
    Ok(heatmap_rgb(as_map(relevance)?, cmap, scale))
}

/// `relevance` as a 2-D map, or an error naming its shape.
fn as_map(relevance: ArrayViewD<'_, f64>) -> Result<ArrayView2<'_, f64>> {
    let shape = relevance.shape().to_vec();
    relevance.into_dimensionality::<Ix2>().map_err(|_| {
        let hint = if shape.len() == 3 {
            " (a [C, H, W] sample: sum its channels first, as Relevance::heatmap does)"
        } else {
            ""
        };
        Error::invalid(format!(
            "heatmap: a relevance map is 2-D [rows, cols], got shape {shape:?}{hint}"
        ))
    })
}

/// Images arranged in rows and columns, each cell enlarged `scale` times, with optional column
/// titles (above), row labels (left) and a title.
///
/// Cells may differ in size: each column is as wide as its widest cell, each row as tall as its
/// tallest, and a cell sits in the top-left corner of its slot. Rows may have different lengths.
#[derive(Clone, Debug)]
pub struct Grid {
    cells: Vec<Vec<RgbImage>>,
    column_titles: Vec<String>,
    row_labels: Vec<String>,
    title: Option<String>,
    scale: usize,
    gap: usize,
    text_scale: usize,
    background: Rgb,
    frame: Option<Rgb>,
}

impl Grid {
    /// A grid of `rows` (each a list of cells, left to right), scale 1, gap 4, white background.
    pub fn new(rows: Vec<Vec<RgbImage>>) -> Self {
        Grid {
            cells: rows,
            column_titles: Vec::new(),
            row_labels: Vec::new(),
            title: None,
            scale: 1,
            gap: 4,
            text_scale: 2,
            background: WHITE,
            frame: Some([190, 190, 190]),
        }
    }

    /// Enlarges every cell `scale` times (nearest neighbour).
    pub fn with_scale(mut self, scale: usize) -> Self {
        self.scale = scale.max(1);
        self
    }

    /// Pixels between cells.
    pub fn with_gap(mut self, gap: usize) -> Self {
        self.gap = gap;
        self
    }

    /// Titles written above the columns.
    pub fn with_column_titles<S: Into<String>>(
        mut self,
        titles: impl IntoIterator<Item = S>,
    ) -> Self {
        self.column_titles = titles.into_iter().map(Into::into).collect();
        self
    }

    /// Labels written left of the rows.
    pub fn with_row_labels<S: Into<String>>(mut self, labels: impl IntoIterator<Item = S>) -> Self {
        self.row_labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// A title over the whole grid.
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The size of text (font pixels per glyph pixel; default 2).
    pub fn with_text_scale(mut self, scale: usize) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    /// The background colour.
    pub fn with_background(mut self, color: Rgb) -> Self {
        self.background = color;
        self
    }

    /// A one-pixel frame of `color` around every cell (`None`: no frame; default light grey).
    pub fn with_frame(mut self, color: Option<Rgb>) -> Self {
        self.frame = color;
        self
    }

    /// Draws the grid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the grid has no cells or the picture would exceed
    /// 2¹⁴ pixels on a side.
    pub fn render(&self) -> Result<RgbImage> {
        let ncols = self.cells.iter().map(Vec::len).max().unwrap_or(0);
        if self.cells.is_empty() || ncols == 0 {
            return Err(Error::invalid("a grid needs at least one cell"));
        }
        let s = self.scale;
        let ts = self.text_scale;
        let mut col_w = vec![0usize; ncols];
        let mut row_h = vec![0usize; self.cells.len()];
        for (r, row) in self.cells.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                col_w[c] = col_w[c].max(cell.width() * s);
                row_h[r] = row_h[r].max(cell.height() * s);
            }
        }
        for (c, t) in self.column_titles.iter().enumerate().take(ncols) {
            col_w[c] = col_w[c].max(text_size(t, ts).0);
        }
        let gap = self.gap;
        let pad = gap.max(4);
        let label_w = self
            .row_labels
            .iter()
            .map(|l| text_size(l, ts).0)
            .max()
            .map_or(0, |w| w + pad);
        let line_h = text_size("", ts).1;
        let title_h = if self.title.is_some() {
            line_h + pad
        } else {
            0
        };
        let header_h = if self.column_titles.is_empty() {
            0
        } else {
            line_h + pad / 2
        };
        let width = pad + label_w + col_w.iter().sum::<usize>() + gap * (ncols - 1) + pad;
        let height = pad
            + title_h
            + header_h
            + row_h.iter().sum::<usize>()
            + gap * (self.cells.len() - 1)
            + pad;
        if width > 1 << 14 || height > 1 << 14 {
            return Err(Error::invalid(format!(
                "grid of {width}×{height} pixels is too large"
            )));
        }
        let mut img = RgbImage::new(width, height, self.background);
        let fg = contrast(self.background);
        if let Some(t) = &self.title {
            img.draw_text(pad as i64, pad as i64, t, fg, ts);
        }
        let top = pad + title_h;
        let left = pad + label_w;
        let mut x = left;
        for (c, &w) in col_w.iter().enumerate() {
            if let Some(t) = self.column_titles.get(c) {
                let tw = text_size(t, ts).0;
                img.draw_text((x + (w - tw.min(w)) / 2) as i64, top as i64, t, fg, ts);
            }
            x += w + gap;
        }
        let mut y = top + header_h;
        for (r, row) in self.cells.iter().enumerate() {
            if let Some(l) = self.row_labels.get(r) {
                let ly = y + row_h[r].saturating_sub(line_h) / 2;
                img.draw_text(pad as i64, ly as i64, l, fg, ts);
            }
            let mut x = left;
            for (c, cell) in row.iter().enumerate() {
                let big = cell.upscale(s);
                img.blit(&big, x as i64, y as i64);
                if let Some(f) = self.frame {
                    img.stroke_rect(
                        x as i64 - 1,
                        y as i64 - 1,
                        big.width() + 2,
                        big.height() + 2,
                        f,
                    );
                }
                x += col_w[c] + gap;
            }
            y += row_h[r] + gap;
        }
        Ok(img)
    }
}

/// One panel of a [`figure`]: a picture (a heatmap, a photo) with lines of text centred above it.
///
/// ```
/// use klrp::viz::{Colormap, Panel, Scale};
/// use ndarray::array;
///
/// let panel = Panel::heatmap(array![[0.5, -1.0], [0.0, 2.0]].view(), Colormap::Bwr, Scale::Symmetric)
///     .with_title(["real", "Θ(d) = d"]);
/// let img = panel.render();
/// assert_eq!(img.width(), klrp::viz::text_size("Θ(d) = d", 1).0); // wider than the 2 × 2 map
/// assert_eq!(img.height(), 2 * (klrp::viz::text_size("", 1).1 + 2) + 2 + 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    image: RgbImage,
    lines: Vec<String>,
    text_scale: usize,
}

impl Panel {
    /// `image` as a panel, without text (text scale 1).
    pub fn new(image: RgbImage) -> Self {
        Panel {
            image,
            lines: Vec::new(),
            text_scale: 1,
        }
    }

    /// A relevance map as a panel, drawn by [`heatmap_rgb`] (one pixel per value).
    pub fn heatmap(relevance: ArrayView2<'_, f64>, cmap: Colormap, scale: Scale) -> Self {
        Panel::new(heatmap_rgb(relevance, cmap, scale))
    }

    /// [`Panel::heatmap`] for an array of any dimension type, drawn by [`heatmap_rgb_dyn`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `relevance` is not 2-D (as [`heatmap_rgb_dyn`]).
    pub fn heatmap_dyn(
        relevance: ArrayViewD<'_, f64>,
        cmap: Colormap,
        scale: Scale,
    ) -> Result<Self> {
        Ok(Panel::new(heatmap_rgb_dyn(relevance, cmap, scale)?))
    }

    /// The same, with `lines` of text above the picture (the first on top).
    pub fn with_title<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.lines = lines.into_iter().map(Into::into).collect();
        self
    }

    /// The size of the text (font pixels per glyph pixel; default 1).
    pub fn with_text_scale(mut self, scale: usize) -> Self {
        self.text_scale = scale.max(1);
        self
    }

    /// Draws the panel on white: each line centred, a line's height and 2 pixels apart, the
    /// picture centred 2 pixels below the last line; as wide as the picture or the widest line.
    pub fn render(&self) -> RgbImage {
        let ts = self.text_scale;
        let line_h = text_size("", ts).1 + 2;
        let width = self
            .lines
            .iter()
            .map(|l| text_size(l, ts).0)
            .max()
            .unwrap_or(0)
            .max(self.image.width());
        let top = if self.lines.is_empty() {
            0
        } else {
            self.lines.len() * line_h + 2
        };
        let mut out = RgbImage::new(width, top + self.image.height(), WHITE);
        for (i, l) in self.lines.iter().enumerate() {
            let tw = text_size(l, ts).0;
            out.draw_text(((width - tw) / 2) as i64, (i * line_h) as i64, l, BLACK, ts);
        }
        let left = (width - self.image.width()) / 2;
        out.blit(&self.image, left as i64, top as i64);
        out
    }
}

/// A figure: `panels` side by side in one row, `gap` pixels apart, each in a light grey frame,
/// under `title` (a [`Grid`] of the rendered panels).
///
/// ```
/// use klrp::viz::{BLACK, Colormap, Panel, RgbImage, Scale, figure};
/// use ndarray::Array2;
///
/// let map = Array2::from_shape_fn((8, 8), |(i, j)| i as f64 - j as f64);
/// let panels = [
///     Panel::new(RgbImage::new(8, 8, BLACK)).with_title(["input"]),
///     Panel::heatmap(map.view(), Colormap::Bwr, Scale::Symmetric).with_title(["real"]),
/// ];
/// let img = figure("two panels", &panels, 6)?;
/// assert!(img.width() > 2 * 8 + 6);
/// # Ok::<(), klrp::Error>(())
/// ```
///
/// # Errors
/// As [`Grid::render`]: [`Error::InvalidArgument`] if there are no panels or the figure would
/// exceed 2¹⁴ pixels on a side.
pub fn figure(title: impl Into<String>, panels: &[Panel], gap: usize) -> Result<RgbImage> {
    Grid::new(vec![panels.iter().map(Panel::render).collect()])
        .with_gap(gap)
        .with_title(title)
        .render()
}

fn contrast(bg: Rgb) -> Rgb {
    let lum = 0.299 * f64::from(bg[0]) + 0.587 * f64::from(bg[1]) + 0.114 * f64::from(bg[2]);
    if lum > 128.0 { BLACK } else { WHITE }
}

/// One line of a [`LinePlot`].
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The line's colour.
    pub color: Rgb,
    /// The points `(x, y)`, drawn in order, joined by straight lines.
    pub points: Vec<(f64, f64)>,
    /// Whether the line is dashed.
    pub dashed: bool,
}

impl Series {
    /// A solid line.
    pub fn new(name: impl Into<String>, color: Rgb, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            color,
            points,
            dashed: false,
        }
    }

    /// The same line, dashed (for baselines).
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A line plot: axes with ticks at round numbers, light grid lines, one line per [`Series`]
/// (with a marker at every point) and a legend of coloured swatches to the right.
///
/// ```
/// use klrp::viz::{LinePlot, Series, PALETTE};
/// let plot = LinePlot::new("accuracy", "neurons removed", "accuracy (%)")
///     .with_series(Series::new("a", PALETTE[0], vec![(0.0, 97.0), (100.0, 95.0), (200.0, 60.0)]))
///     .with_series(Series::new("b", PALETTE[1], vec![(0.0, 97.0), (100.0, 90.0), (200.0, 30.0)]));
/// let img = plot.render(640, 400)?;
/// assert_eq!((img.width(), img.height()), (640, 400));
/// # Ok::<(), klrp::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    x_range: Option<(f64, f64)>,
    y_range: Option<(f64, f64)>,
}

impl LinePlot {
    /// An empty plot with a title and axis labels.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        LinePlot {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            series: Vec::new(),
            x_range: None,
            y_range: None,
        }
    }

    /// Adds a line.
    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Fixes the x axis to `[min, max]` (default: the data's range, widened to round ticks).
    pub fn with_x_range(mut self, min: f64, max: f64) -> Self {
        self.x_range = Some((min, max));
        self
    }

    /// Fixes the y axis to `[min, max]` (default: the data's range, widened to round ticks).
    pub fn with_y_range(mut self, min: f64, max: f64) -> Self {
        self.y_range = Some((min, max));
        self
    }

    /// The series, in drawing order.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Draws the plot into a `width × height` image.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if there is no finite point to draw, a fixed range is empty or
    /// not finite, or the image is too small for the axes (under 200 × 150).
    pub fn render(&self, width: usize, height: usize) -> Result<RgbImage> {
        if width < 200 || height < 150 || width > 1 << 14 || height > 1 << 14 {
            return Err(Error::invalid(format!(
                "a {width}×{height} plot is too small or too large (200×150 to 16384×16384)"
            )));
        }
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        if pts().next().is_none() {
            return Err(Error::invalid(
                "a line plot needs at least one finite point",
            ));
        }
        let data_range = |f: fn(&(f64, f64)) -> f64| {
            pts()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
        };
        let check = |r: (f64, f64), axis: &str| -> Result<(f64, f64)> {
            if !(r.0.is_finite() && r.1.is_finite() && r.1 > r.0) {
                return Err(Error::invalid(format!(
                    "{axis} range [{}, {}] is empty or not finite",
                    r.0, r.1
                )));
            }
            Ok(r)
        };
        let (xr, xticks) = match self.x_range {
            Some(r) => {
                let r = check(r, "x")?;
                (r, nice_ticks(r.0, r.1, 8).1)
            }
            None => nice_ticks_range(data_range(|p| p.0), 8),
        };
        let (yr, yticks) = match self.y_range {
            Some(r) => {
                let r = check(r, "y")?;
                (r, nice_ticks(r.0, r.1, 6).1)
            }
            None => nice_ticks_range(data_range(|p| p.1), 6),
        };
        let ts = 2;
        let (_, lh) = text_size("", ts);
        let ylabels: Vec<String> = yticks.iter().map(|&v| tick_label(v, &yticks)).collect();
        let xlabels: Vec<String> = xticks.iter().map(|&v| tick_label(v, &xticks)).collect();
        let ytick_w = ylabels
            .iter()
            .map(|l| text_size(l, ts).0)
            .max()
            .unwrap_or(0);
        let legend_w = self
            .series
            .iter()
            .map(|s| text_size(&s.name, ts).0)
            .max()
            .map_or(0, |w| w + 40);
        let left = (8 + lh + 8 + ytick_w + 8) as i64;
        let right = (width - 16 - legend_w) as i64;
        let top = (12 + lh + 12) as i64;
        let bottom = (height - (8 + lh + 6 + lh + 10)) as i64;
        if right - left < 60 || bottom - top < 60 {
            return Err(Error::invalid(format!(
                "a {width}×{height} plot leaves no room for the axes"
            )));
        }
        let px =
            |x: f64| left + ((x - xr.0) / (xr.1 - xr.0) * (right - left) as f64).round() as i64;
        let py =
            |y: f64| bottom - ((y - yr.0) / (yr.1 - yr.0) * (bottom - top) as f64).round() as i64;
        let mut img = RgbImage::new(width, height, WHITE);
        let grid = [225, 225, 225];
        let axis = [60, 60, 60];
        // Title, centred over the plot area.
        let (tw, _) = text_size(&self.title, ts);
        img.draw_text(
            ((left + right) / 2 - tw as i64 / 2).max(4),
            12,
            &self.title,
            BLACK,
            ts,
        );
        // Grid lines, ticks and tick labels.
        for (&v, l) in yticks.iter().zip(&ylabels) {
            let y = py(v);
            img.draw_line((left, y), (right, y), grid, 1);
            img.draw_line((left - 5, y), (left, y), axis, 1);
            let (w, _) = text_size(l, ts);
            img.draw_text(
                left - 8 - w as i64,
                y - (lh as i64 - 2 * ts as i64) / 2,
                l,
                axis,
                ts,
            );
        }
        for (&v, l) in xticks.iter().zip(&xlabels) {
            let x = px(v);
            img.draw_line((x, top), (x, bottom), grid, 1);
            img.draw_line((x, bottom), (x, bottom + 5), axis, 1);
            let (w, _) = text_size(l, ts);
            img.draw_text(x - w as i64 / 2, bottom + 8, l, axis, ts);
        }
        // Axis labels.
        let (xw, _) = text_size(&self.x_label, ts);
        img.draw_text(
            (left + right) / 2 - xw as i64 / 2,
            bottom + 8 + lh as i64 + 6,
            &self.x_label,
            BLACK,
            ts,
        );
        let (yw, _) = text_size(&self.y_label, ts);
        img.draw_text_vertical(
            8,
            ((top + bottom) / 2 - yw as i64 / 2).max(0),
            &self.y_label,
            BLACK,
            ts,
        );
        // The lines, clipped to the plot area.
        let mut area = RgbImage::new(
            (right - left + 1) as usize,
            (bottom - top + 1) as usize,
            WHITE,
        );
        area.blit(&img, -left, -top);
        for s in &self.series {
            let p: Vec<(i64, i64)> = s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| (px(x) - left, py(y) - top))
                .collect();
            for w in p.windows(2) {
                if s.dashed {
                    draw_dashed(&mut area, w[0], w[1], s.color, 2);
                } else {
                    area.draw_line(w[0], w[1], s.color, 2);
                }
            }
            for &(x, y) in &p {
                area.fill_rect(x - 2, y - 2, 5, 5, s.color);
            }
        }
        img.blit(&area, left, top);
        img.stroke_rect(
            left,
            top,
            (right - left + 1) as usize,
            (bottom - top + 1) as usize,
            axis,
        );
        // Legend: a swatch and the name of each series, right of the plot area.
        let lx = right + 16;
        for (i, s) in self.series.iter().enumerate() {
            let y = top + 4 + i as i64 * (lh as i64 + 8);
            if s.dashed {
                draw_dashed(&mut img, (lx, y + 6), (lx + 26, y + 6), s.color, 3);
            } else {
                img.fill_rect(lx, y + 2, 26, 9, s.color);
            }
            img.draw_text(lx + 34, y, &s.name, BLACK, ts);
        }
        Ok(img)
    }
}

fn draw_dashed(img: &mut RgbImage, a: (i64, i64), b: (i64, i64), color: Rgb, thickness: usize) {
    let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
    let len = dx.hypot(dy);
    let steps = (len / 6.0).ceil().max(1.0) as i64;
    for i in (0..steps).step_by(2) {
        let t0 = i as f64 / steps as f64;
        let t1 = ((i + 1) as f64 / steps as f64).min(1.0);
        let p = |t: f64| (a.0 + (dx * t).round() as i64, a.1 + (dy * t).round() as i64);
        img.draw_line(p(t0), p(t1), color, thickness);
    }
}

/// Round tick positions covering `[lo, hi]`: a step of 1, 2 or 5 × 10ᵏ giving at most about
/// `max_ticks` ticks. Returns the step and the ticks inside `[lo, hi]`.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> (f64, Vec<f64>) {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let raw = span / max_ticks.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|i| i as f64 * step).collect();
    (step, ticks)
}

/// The data range widened to round ticks at both ends.
fn nice_ticks_range((lo, hi): (f64, f64), max_ticks: usize) -> ((f64, f64), Vec<f64>) {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    };
    let (step, _) = nice_ticks(lo, hi, max_ticks);
    let (a, b) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let ticks = nice_ticks(a, b, max_ticks).1;
    ((a, b), ticks)
}

fn tick_label(v: f64, ticks: &[f64]) -> String {
    let step = if ticks.len() > 1 {
        (ticks[1] - ticks[0]).abs()
    } else {
        1.0
    };
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

fn png_error(context: &str, e: impl std::fmt::Display) -> Error {
    Error::malformed("PNG", format!("{context}: {e}"))
}

/// Writes `image` as an 8-bit RGB PNG into `writer`.
///
/// # Errors
/// [`Error::Io`] (path `"<writer>"`) if writing fails; [`Error::InvalidArgument`] for an image
/// with a zero or too large side.
pub fn write_png(writer: impl Write, image: &RgbImage) -> Result<()> {
    let (w, h) = (image.width(), image.height());
    if w == 0 || h == 0 || w > u32::MAX as usize || h > u32::MAX as usize {
        return Err(Error::invalid(format!("cannot write a {w}×{h} PNG")));
    }
    let to_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(source) => Error::Io {
            path: "<writer>".into(),
            source,
        },
        e => Error::invalid(format!("PNG encoding: {e}")),
    };
    let mut enc = png::Encoder::new(writer, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(to_err)?;
    writer.write_image_data(image.as_raw()).map_err(to_err)?;
    writer.finish().map_err(to_err)
}

/// `image` as the bytes of an 8-bit RGB PNG file.
///
/// # Errors
/// As [`write_png`].
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_png(&mut out, image)?;
    Ok(out)
}

/// Writes `image` to the file `path` as an 8-bit RGB PNG, creating or replacing it (the parent
/// directory must exist).
///
/// # Errors
/// [`Error::Io`] naming `path` if the file cannot be created or written.
pub fn save_png(path: impl AsRef<Path>, image: &RgbImage) -> Result<()> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut w = BufWriter::new(file);
    write_png(&mut w, image).map_err(|e| match e {
        Error::Io { source, .. } => io(source),
        e => e,
    })?;
    w.flush().map_err(io)
}

/// Decodes a PNG (8-bit grey, grey + alpha, RGB, RGBA or palette; 16-bit is reduced to 8) into an
/// [`RgbImage`]; alpha is dropped.
///
/// # Errors
/// [`Error::Malformed`] (format `"PNG"`) if `bytes` is not a PNG this function can decode.
pub fn decode_png(bytes: &[u8]) -> Result<RgbImage> {
    let mut dec = png::Decoder::new(Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| png_error("header", e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| png_error("header", "image too large"))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| png_error("image data", e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(png_error("colour type", "palette not expanded")),
    };
    if info.bit_depth != png::BitDepth::Eight {
        return Err(png_error("bit depth", format!("{:?}", info.bit_depth)));
    }
    let mut data = Vec::with_capacity(3 * w * h);
    for y in 0..h {
        let row = &buf[y * info.line_size..y * info.line_size + w * channels];
        for px in row.chunks_exact(channels) {
            match channels {
                1 | 2 => data.extend_from_slice(&[px[0]; 3]),
                _ => data.extend_from_slice(&px[..3]),
            }
        }
    }
    RgbImage::from_raw(w, h, data)
}

/// Reads a PNG file into an [`RgbImage`] (see [`decode_png`]).
///
/// # Errors
/// [`Error::Io`] naming `path` if it cannot be read; [`Error::Malformed`] if it is not a PNG.
pub fn read_png(path: impl AsRef<Path>) -> Result<RgbImage> {
    crate::io::parse_file(path.as_ref(), |bytes| decode_png(&bytes))
}

/// The built-in bitmap font: 5 × 7 glyphs (descenders reach two rows lower), ASCII letters,
/// digits, common punctuation and a few symbols (θ Θ ε ∧ ∨ ≥ × ⊤ ⊥ ⊕ ⊗ ∞ ← →).
mod font {
    /// Glyph width in font pixels.
    pub const WIDTH: usize = 5;
    /// Line height in font pixels (7 rows, 2 for descenders).
    pub const HEIGHT: usize = 9;
    /// Horizontal advance per character.
    pub const ADVANCE: usize = 6;

    /// The rows of `c`'s glyph, top first, bit 4 the leftmost pixel.
    pub fn glyph(c: char) -> [u8; HEIGHT] {
        let rows: &[&str] = match c {
            ' ' => &[],
            '0' => &[
                ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
            ],
            '1' => &[
                "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
            ],
            '2' => &[
                ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
            ],
            '3' => &[
                "#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.",
            ],
            '4' => &[
                "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
            ],
            '5' => &[
                "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
            ],
            '6' => &[
                "..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.",
            ],
            '7' => &[
                "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
            ],
            '8' => &[
                ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
            ],
            '9' => &[
                ".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..",
            ],
            'A' => &[
                ".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
            ],
            'B' => &[
                "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.",
            ],
            'C' => &[
                ".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.",
            ],
            'D' => &[
                "###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###..",
            ],
            'E' => &[
                "#####", "#....", "#....", "####.", "#....", "#....", "#####",
            ],
            'F' => &[
                "#####", "#....", "#....", "####.", "#....", "#....", "#....",
            ],
            'G' => &[
                ".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####",
            ],
            'H' => &[
                "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
            ],
            'I' => &[
                ".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
            ],
            'J' => &[
                "..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
            ],
            'K' => &[
                "#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#",
            ],
            'L' => &[
                "#....", "#....", "#....", "#....", "#....", "#....", "#####",
            ],
            'M' => &[
                "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#",
            ],
            'N' => &[
                "#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#",
            ],
            'O' => &[
                ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
            ],
            'P' => &[
                "####.", "#...#", "#...#", "####.", "#....", "#....", "#....",
            ],
            'Q' => &[
                ".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#",
            ],
            'R' => &[
                "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#",
            ],
            'S' => &[
                ".####", "#....", "#....", ".###.", "....#", "....#", "####.",
            ],
            'T' => &[
                "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
            ],
            'U' => &[
                "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
            ],
            'V' => &[
                "#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..",
            ],
            'W' => &[
                "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.",
            ],
            'X' => &[
                "#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#",
            ],
            'Y' => &[
                "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..",
            ],
            'Z' => &[
                "#####", "....#", "...#.", "..#..", ".#...", "#....", "#####",
            ],
            'a' => &[
                ".....", ".....", ".###.", "....#", ".####", "#...#", ".####",
            ],
            'b' => &[
                "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####.",
            ],
            'c' => &[
                ".....", ".....", ".###.", "#....", "#....", "#...#", ".###.",
            ],
            'd' => &[
                "....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####",
            ],
            'e' => &[
                ".....", ".....", ".###.", "#...#", "#####", "#....", ".###.",
            ],
            'f' => &[
                "..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#...",
            ],
            'g' => &[
                ".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", ".###.",
            ],
            'h' => &[
                "#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#",
            ],
            'i' => &[
                "..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###.",
            ],
            'j' => &[
                "...#.", ".....", "..##.", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
            ],
            'k' => &[
                "#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#.",
            ],
            'l' => &[
                ".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
            ],
            'm' => &[
                ".....", ".....", "##.#.", "#.#.#", "#.#.#", "#.#.#", "#.#.#",
            ],
            'n' => &[
                ".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#",
            ],
            'o' => &[
                ".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###.",
            ],
            'p' => &[
                ".....", ".....", "####.", "#...#", "#...#", "#...#", "####.", "#....", "#....",
            ],
            'q' => &[
                ".....", ".....", ".####", "#...#", "#...#", "#...#", ".####", "....#", "....#",
            ],
            'r' => &[
                ".....", ".....", "#.##.", "##..#", "#....", "#....", "#....",
            ],
            's' => &[
                ".....", ".....", ".####", "#....", ".###.", "....#", "####.",
            ],
            't' => &[
                ".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##.",
            ],
            'u' => &[
                ".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#",
            ],
            'v' => &[
                ".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#..",
            ],
            'w' => &[
                ".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#.",
            ],
            'x' => &[
                ".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#",
            ],
            'y' => &[
                ".....", ".....", "#...#", "#...#", "#...#", "#...#", ".####", "....#", ".###.",
            ],
            'z' => &[
                ".....", ".....", "#####", "...#.", "..#..", ".#...", "#####",
            ],
            '.' => &[
                ".....", ".....", ".....", ".....", ".....", ".##..", ".##..",
            ],
            ',' => &[
                ".....", ".....", ".....", ".....", ".....", ".##..", ".##..", "..#..", ".#...",
            ],
            ':' => &[
                ".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....",
            ],
            ';' => &[
                ".....", ".##..", ".##..", ".....", ".##..", ".##..", "..#..", ".#...",
            ],
            '%' => &[
                "##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##",
            ],
            '-' | '−' | '–' | '—' => &[".....", ".....", ".....", "#####"],
            '+' => &[
                ".....", "..#..", "..#..", "#####", "..#..", "..#..", ".....",
            ],
            '=' => &[".....", ".....", "#####", ".....", "#####"],
            '(' => &[
                "...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#.",
            ],
            ')' => &[
                ".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#...",
            ],
            '[' => &[
                ".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###.",
            ],
            ']' => &[
                ".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###.",
            ],
            '/' => &[
                ".....", "....#", "...#.", "..#..", ".#...", "#....", ".....",
            ],
            '_' => &[
                ".....", ".....", ".....", ".....", ".....", ".....", "#####",
            ],
            '|' => &[
                "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
            ],
            '!' => &[
                "..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#..",
            ],
            '?' => &[
                ".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..",
            ],
            '\'' => &["..#..", "..#..", ".#..."],
            '"' => &[".#.#.", ".#.#.", "#.#.."],
            '*' => &[
                ".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", ".....",
            ],
            '<' => &[
                "...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#.",
            ],
            '>' => &[
                ".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#...",
            ],
            '#' => &[
                ".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#.",
            ],
            '·' => &[".....", ".....", ".....", "..#.."],
            'θ' | 'Θ' => &[
                ".###.", "#...#", "#...#", "#####", "#...#", "#...#", ".###.",
            ],
            'ε' => &[
                ".....", ".....", ".####", "#....", "###..", "#....", ".####",
            ],
            '∧' => &[".....", ".....", "..#..", ".#.#.", "#...#"],
            '∨' => &[".....", ".....", "#...#", ".#.#.", "..#.."],
            '≥' => &[
                ".#...", "..#..", "...#.", "..#..", ".#...", ".....", "#####",
            ],
            '⊤' => &[
                "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
            ],
            '⊥' => &[
                "..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "#####",
            ],
            '⊕' => &[
                ".....", ".###.", "#.#.#", "#####", "#.#.#", ".###.", ".....",
            ],
            '⊗' => &[
                ".....", ".###.", "##.##", "#.#.#", "##.##", ".###.", ".....",
            ],
            '∞' => &[
                ".....", ".....", ".#.#.", "#.#.#", "#.#.#", ".#.#.", ".....",
            ],
            '←' => &[
                ".....", "..#..", ".#...", "#####", ".#...", "..#..", ".....",
            ],
            '→' => &[
                ".....", "..#..", "...#.", "#####", "...#.", "..#..", ".....",
            ],
            '×' => &[
                ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", ".....",
            ],
            _ => &[
                "#####", "#...#", "#...#", "#...#", "#...#", "#...#", "#####",
            ],
        };
        let mut out = [0u8; HEIGHT];
        for (o, row) in out.iter_mut().zip(rows) {
            *o = row
                .bytes()
                .fold(0u8, |acc, b| (acc << 1) | u8::from(b == b'#'));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The `_dyn` helpers draw a 2-D `ArrayViewD` as the `ArrayView2` ones do, and refuse any
    /// other dimension with an error naming the shape (no panic).
    #[test]
    fn dyn_heatmaps_take_2d_maps_and_refuse_the_rest() {
        let map = array![[1.0, -2.0, 0.0], [0.5, 3.0, -1.0]];
        let want = heatmap_rgb(map.view(), Colormap::Bwr, Scale::Symmetric);
        let dyn_map = map.clone().into_dyn();
        let got = heatmap_rgb_dyn(dyn_map.view(), Colormap::Bwr, Scale::Symmetric).unwrap();
        assert_eq!(got, want);
        let panel = Panel::heatmap_dyn(dyn_map.view(), Colormap::Bwr, Scale::Symmetric).unwrap();
        let plain = Panel::heatmap(map.view(), Colormap::Bwr, Scale::Symmetric);
        assert_eq!(panel.render(), plain.render());
        // A transposed (non-standard layout) view is drawn transposed.
        let t = heatmap_rgb_dyn(dyn_map.t(), Colormap::Bwr, Scale::Symmetric).unwrap();
        assert_eq!(t, heatmap_rgb(map.t(), Colormap::Bwr, Scale::Symmetric));
        for shape in [vec![6], vec![1, 2, 3], vec![], vec![1, 1, 2, 3]] {
            let a = ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&shape));
            let err = heatmap_rgb_dyn(a.view(), Colormap::Hot, Scale::Log1p).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            assert!(err.to_string().contains(&format!("{shape:?}")), "{err}");
            assert_eq!(
                err.to_string().contains("[C, H, W]"),
                shape.len() == 3,
                "{err}"
            );
            assert!(Panel::heatmap_dyn(a.view(), Colormap::Hot, Scale::Log1p).is_err());
        }
    }

    #[test]
    fn colormap_endpoints() {
        assert_eq!(Colormap::Bwr.map(0.0), [0, 0, 255]);
        assert_eq!(Colormap::Bwr.map(0.5), WHITE);
        assert_eq!(Colormap::Bwr.map(1.0), [255, 0, 0]);
        assert_eq!(Colormap::Gray.map(0.0), BLACK);
        assert_eq!(Colormap::Gray.map(1.0), WHITE);
        assert_eq!(Colormap::GrayR.map(1.0), BLACK);
        assert_eq!(Colormap::Viridis.map(0.0), VIRIDIS[0]);
        assert_eq!(Colormap::Viridis.map(1.0), VIRIDIS[8]);
        assert_eq!(Colormap::Hot.map(1.0), WHITE);
        assert_eq!(Colormap::Hot.map(0.0), [11, 0, 0]);
        // Clamped outside [0, 1]; NaN grey.
        assert_eq!(Colormap::Bwr.map(7.0), [255, 0, 0]);
        assert_eq!(Colormap::Viridis.map(-1.0), VIRIDIS[0]);
        assert_eq!(Colormap::Hot.map(f64::NAN), [128, 128, 128]);
    }

    #[test]
    fn sequential_maps_get_brighter() {
        for cmap in [Colormap::Viridis, Colormap::Hot, Colormap::Gray] {
            let lum = |c: Rgb| {
                0.299 * f64::from(c[0]) + 0.587 * f64::from(c[1]) + 0.114 * f64::from(c[2])
            };
            let mut prev = -1.0;
            for i in 0..=20 {
                let l = lum(cmap.map(f64::from(i) / 20.0));
                assert!(l >= prev - 0.5, "{} not monotone at {i}", cmap.name());
                prev = l;
            }
        }
    }

    #[test]
    fn symmetric_scale_puts_zero_in_the_middle() {
        let data = [-1.0, 0.0, 4.0];
        let n = Scale::Symmetric.normalizer(&data);
        assert_eq!(n(0.0), 0.5);
        assert_eq!(n(4.0), 1.0);
        assert_eq!(n(-4.0), 0.0);
        assert_eq!(n(-1.0), 0.375);
        let img = heatmap_rgb(
            array![[-1.0, 0.0, 4.0]].view(),
            Colormap::Bwr,
            Scale::Symmetric,
        );
        assert_eq!(img.pixel(1, 0), Some(WHITE));
        assert_eq!(img.pixel(2, 0), Some([255, 0, 0]));
        // −1 of a ±4 scale: light blue.
        let c = img.pixel(0, 0).unwrap();
        assert_eq!(c[2], 255);
        assert!(c[0] > 150 && c[0] < 220);
        // An all-zero map is white, not an error.
        let zero = heatmap_rgb(array![[0.0, 0.0]].view(), Colormap::Bwr, Scale::Symmetric);
        assert_eq!(zero.pixel(0, 0), Some(WHITE));
        let fixed = Scale::SymmetricAt(2.0).normalizer(&data);
        assert_eq!(fixed(1.0), 0.75);
    }

    #[test]
    fn other_scales() {
        let data = [0.0, 1.0, 3.0, f64::INFINITY];
        let mm = Scale::MinMax.normalizer(&data);
        assert_eq!((mm(0.0), mm(3.0), mm(1.5)), (0.0, 1.0, 0.5));
        let log = Scale::Log1p.normalizer(&data);
        assert_eq!(log(0.0), 0.0);
        assert!((log(3.0) - 1.0).abs() < 1e-12);
        assert!((log(1.0) - 2f64.ln() / 4f64.ln()).abs() < 1e-12);
        let r = Scale::Range { min: 1.0, max: 2.0 }.normalizer(&data);
        assert_eq!((r(0.0), r(1.5), r(9.0)), (0.0, 0.5, 1.0));
        assert!(Scale::MinMax.normalizer(&[f64::NAN])(f64::NAN).is_nan());
        assert_eq!(Scale::Log1pAt(0.0).normalizer(&[])(5.0), 0.0);
    }

    #[test]
    fn heatmap_has_one_pixel_per_value() {
        let r = ndarray::Array2::from_shape_fn((28, 28), |(y, x)| (y * 28 + x) as f64);
        let img = heatmap_rgb(r.view(), Colormap::Viridis, Scale::MinMax);
        assert_eq!((img.width(), img.height()), (28, 28));
        assert_eq!(img.pixel(0, 0), Some(VIRIDIS[0]));
        assert_eq!(img.pixel(27, 27), Some(VIRIDIS[8]));
        // x is the column, y the row.
        let img = heatmap_rgb(array![[0.0, 1.0]].view(), Colormap::Gray, Scale::MinMax);
        assert_eq!((img.width(), img.height()), (2, 1));
        assert_eq!(img.pixel(1, 0), Some(WHITE));
    }

    #[test]
    fn png_round_trip() {
        let mut img = RgbImage::new(7, 5, [10, 20, 30]);
        img.put(6, 4, [255, 0, 128]);
        img.draw_text(0, 0, "a", [1, 2, 3], 1);
        let bytes = encode_png(&img).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let back = decode_png(&bytes).unwrap();
        assert_eq!(back, img);
        let dir = std::env::temp_dir().join(format!("klrp-viz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("round_trip.png");
        save_png(&path, &img).unwrap();
        assert_eq!(read_png(&path).unwrap(), img);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn png_errors_are_named() {
        assert!(matches!(
            decode_png(b"not a png"),
            Err(Error::Malformed { format: "PNG", .. })
        ));
        let missing = std::env::temp_dir().join("klrp-no-such-dir/x.png");
        match save_png(&missing, &RgbImage::new(1, 1, WHITE)) {
            Err(Error::Io { path, .. }) => assert!(path.contains("klrp-no-such-dir")),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        assert!(encode_png(&RgbImage::new(0, 3, WHITE)).is_err());
        assert!(RgbImage::from_raw(2, 2, vec![0; 11]).is_err());
    }

    #[test]
    fn grid_layout() {
        let a = RgbImage::new(2, 3, [255, 0, 0]);
        let b = RgbImage::new(4, 1, [0, 0, 255]);
        let grid = Grid::new(vec![vec![a.clone(), b.clone()], vec![b, a]])
            .with_scale(2)
            .with_gap(3)
            .with_frame(None)
            .render()
            .unwrap();
        // pad 4 + columns (max(4, 8) + 3 + max(8, 4)) + pad 4; rows likewise (6 + 3 + 6).
        assert_eq!(grid.width(), 4 + 8 + 3 + 8 + 4);
        assert_eq!(grid.height(), 4 + 6 + 3 + 6 + 4);
        assert_eq!(grid.pixel(4, 4), Some([255, 0, 0]));
        assert_eq!(grid.pixel(4 + 8 + 3, 4), Some([0, 0, 255]));
        assert_eq!(grid.pixel(4 + 8 + 3 + 7, 4 + 1), Some([0, 0, 255]));
        assert_eq!(grid.pixel(4 + 8 + 3, 4 + 2), Some(WHITE)); // below the short cell
        assert!(Grid::new(vec![]).render().is_err());
        let titled = Grid::new(vec![vec![RgbImage::new(28, 28, BLACK)]])
            .with_title("t")
            .with_column_titles(["a column title wider than the cell"])
            .with_row_labels(["row"])
            .render()
            .unwrap();
        assert!(titled.width() > text_size("a column title wider than the cell", 2).0);
    }

    #[test]
    fn panel_and_figure_layout() {
        let red = RgbImage::new(30, 4, [255, 0, 0]);
        // Two lines over a picture wider than either: 2 · (9 + 2) + 2 rows of text, then the
        // picture at the left edge; the lines centred.
        let p = Panel::new(red.clone()).with_title(["ab", "abc"]).render();
        assert_eq!((p.width(), p.height()), (30, 2 * 11 + 2 + 4));
        assert_eq!(p.pixel(0, 24), Some([255, 0, 0]));
        assert_eq!(p.pixel(29, 27), Some([255, 0, 0]));
        assert_eq!(p.pixel(0, 23), Some(WHITE));
        let ink_columns = |img: &RgbImage, rows: std::ops::Range<usize>| -> Vec<usize> {
            (0..img.width())
                .filter(|&x| rows.clone().any(|y| img.pixel(x, y) == Some(BLACK)))
                .collect()
        };
        let first = ink_columns(&p, 0..11);
        let (tw, _) = text_size("ab", 1);
        assert!(first[0] >= (30 - tw) / 2 && *first.last().unwrap() < (30 + tw) / 2 + 1);
        assert!(!ink_columns(&p, 11..22).is_empty());
        // A line wider than the picture: the panel is as wide as the line, the picture centred.
        let wide = "a line wider than 30 pixels";
        let p = Panel::new(red.clone()).with_title([wide]).render();
        let w = text_size(wide, 1).0;
        assert_eq!((p.width(), p.height()), (w, 11 + 2 + 4));
        assert_eq!(p.pixel((w - 30) / 2, 13), Some([255, 0, 0]));
        assert_eq!(p.pixel((w - 30) / 2 - 1, 13), Some(WHITE));
        // No text: the picture alone; text scale 2 doubles the line height.
        assert_eq!(Panel::new(red.clone()).render(), red);
        let big = Panel::new(red.clone())
            .with_title(["x"])
            .with_text_scale(2)
            .render();
        assert_eq!(big.height(), 18 + 2 + 2 + 4);
        // A heatmap panel is the heatmap.
        let map = array![[0.0, 1.0], [-1.0, 0.5]];
        assert_eq!(
            Panel::heatmap(map.view(), Colormap::Bwr, Scale::Symmetric).render(),
            heatmap_rgb(map.view(), Colormap::Bwr, Scale::Symmetric)
        );
        // The figure is the grid of the rendered panels under the title.
        let panels = [
            Panel::new(red.clone()).with_title(["a"]),
            Panel::new(RgbImage::new(5, 5, BLACK)),
        ];
        let fig = figure("title", &panels, 6).unwrap();
        let grid = Grid::new(vec![panels.iter().map(Panel::render).collect()])
            .with_gap(6)
            .with_title("title")
            .render()
            .unwrap();
        assert_eq!(fig, grid);
        assert_eq!(fig.width(), 6 + 30 + 6 + 5 + 6);
        assert!(figure("none", &[], 4).is_err());
    }

    #[test]
    fn text_is_drawn() {
        let (w, h) = text_size("ab", 2);
        assert_eq!((w, h), (22, 18));
        let mut img = RgbImage::new(w, h, WHITE);
        img.draw_text(0, 0, "ab", BLACK, 2);
        let ink = img.as_raw().chunks(3).filter(|p| p == &BLACK).count();
        assert!(ink > 20);
        // Every printable ASCII character has a glyph of its own (no box), except the few
        // left out on purpose.
        let boxed = font::glyph('\u{1}');
        for c in (b'!'..=b'~').map(char::from) {
            if !"$&@\\^`{}~".contains(c) {
                assert_ne!(font::glyph(c), boxed, "{c:?} has no glyph");
            }
        }
        let mut v = RgbImage::new(h, w, WHITE);
        v.draw_text_vertical(0, 0, "ab", BLACK, 2);
        let vink = v.as_raw().chunks(3).filter(|p| p == &BLACK).count();
        assert_eq!(vink, ink);
    }

    #[test]
    fn lines_and_ticks() {
        let mut img = RgbImage::new(10, 10, WHITE);
        img.draw_line((0, 0), (9, 9), BLACK, 1);
        for i in 0..10 {
            assert_eq!(img.pixel(i, i), Some(BLACK));
        }
        let (step, ticks) = nice_ticks(0.0, 275.0, 8);
        assert_eq!(step, 50.0);
        assert_eq!(ticks, vec![0.0, 50.0, 100.0, 150.0, 200.0, 250.0]);
        let ((lo, hi), ticks) = nice_ticks_range((0.03, 0.97), 6);
        assert_eq!((lo, hi), (0.0, 1.0));
        assert_eq!(ticks.len(), 6);
        assert_eq!(tick_label(0.2, &ticks), "0.2");
    }

    #[test]
    fn anti_aliased_shapes_cover_what_they_should() {
        let mut img = RgbImage::new(20, 20, WHITE);
        img.blend(0, 0, BLACK, 0.5);
        assert_eq!(img.pixel(0, 0), Some([128, 128, 128]));
        img.blend(-1, 0, BLACK, 1.0); // outside: ignored
        // A horizontal line 3 pixels wide through row centres 9.5 ± 1.5: rows 8–10 are covered.
        img.draw_line_aa((2.0, 9.5), (17.0, 9.5), BLACK, 3.0);
        for y in 8..=10 {
            assert_eq!(img.pixel(10, y), Some(BLACK), "row {y}");
        }
        assert_eq!(img.pixel(10, 6), Some(WHITE));
        assert_eq!(img.pixel(10, 12), Some(WHITE));
        // Round ends: nothing beyond half the width past the end points.
        assert_eq!(img.pixel(19, 9), Some(WHITE));
        let mut disc = RgbImage::new(21, 21, WHITE);
        disc.fill_circle((10.5, 10.5), 5.0, [255, 0, 0]);
        assert_eq!(disc.pixel(10, 10), Some([255, 0, 0]));
        assert_eq!(disc.pixel(10, 14), Some([255, 0, 0]));
        assert_eq!(disc.pixel(10, 17), Some(WHITE));
        // The rim is blended: some pixels neither white nor red.
        let partial = disc
            .as_raw()
            .chunks(3)
            .filter(|p| *p != WHITE && *p != [255, 0, 0])
            .count();
        assert!(partial > 8);
        let mut ring = RgbImage::new(21, 21, WHITE);
        ring.stroke_circle((10.5, 10.5), 6.0, 2.0, BLACK);
        assert_eq!(ring.pixel(10, 10), Some(WHITE), "a ring is hollow");
        assert_eq!(ring.pixel(10, 4), Some(BLACK));
    }

    #[test]
    fn line_plot_draws_series_and_legend() {
        let plot = LinePlot::new("title", "x", "y")
            .with_series(Series::new(
                "up",
                PALETTE[3],
                vec![(0.0, 0.0), (10.0, 10.0)],
            ))
            .with_series(Series::new("flat", PALETTE[0], vec![(0.0, 5.0), (10.0, 5.0)]).dashed());
        let img = plot.render(400, 300).unwrap();
        let count = |c: Rgb| img.as_raw().chunks(3).filter(|p| *p == c).count();
        assert!(count(PALETTE[3]) > 300);
        assert!(count(PALETTE[0]) > 100);
        assert!(LinePlot::new("", "", "").render(400, 300).is_err());
        assert!(plot.render(100, 100).is_err());
        assert!(
            plot.clone()
                .with_y_range(1.0, 1.0)
                .render(400, 300)
                .is_err()
        );
    }
}
