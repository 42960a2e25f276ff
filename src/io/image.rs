//! PNG and JPEG images as network inputs, and PNG output (feature `images`).
//!
//! [`load_image`] decodes a PNG or JPEG (detected from its first bytes, not its name) and
//! preprocesses it like torchvision's ImageNet evaluation transform
//! `Resize(256) → CenterCrop(224) → ToTensor() → Normalize(mean, std)`:
//!
//! 1. pixels become `f32` in `[0, 1]` (8-bit values / 255; 16-bit PNGs are reduced to 8 bits,
//!    alpha is dropped, grayscale is repeated into three channels, palettes are expanded);
//! 2. **resize** so the shorter side is `resize` pixels, the longer `⌊resize · long / short⌋`
//!    (torchvision's rule), by **bilinear interpolation without antialiasing**: half-pixel
//!    centres, `align_corners = False`, exactly `torch.nn.functional.interpolate(mode="bilinear",
//!    antialias=False)`. torchvision's PIL path antialiases when it shrinks, so its pixels differ
//!    slightly (a few 1/255 on natural images); resizing the image to `256` on the short side
//!    beforehand makes the two identical;
//! 3. **center crop** `crop_h × crop_w`, offsets `round((h − crop_h) / 2)` with Python's
//!    round-half-to-even, as torchvision;
//! 4. optional **normalisation** `(x − mean_c) / std_c`, ImageNet's by default
//!    ([`IMAGENET_MEAN`], [`IMAGENET_STD`]).
//!
//! The result is a batch of one, `[1, 3, H, W]` (or `[1, 1, H, W]` with
//! [`Preprocess::grayscale`], luminance `0.299 R + 0.587 G + 0.114 B` as PIL's `convert("L")`).
//!
//! [`write_png_rgb`] writes an 8-bit RGB PNG (for heatmaps).

use crate::error::{Error, Result};
use ndarray::{Array3, ArrayD, Axis};
use std::path::Path;

/// ImageNet channel means (RGB), as torchvision.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB), as torchvision.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The largest image decoded by [`decode_image`] and [`read_image_file`], in pixels (2²⁶ ≈ 67
/// megapixels); [`decode_image_with_max_pixels`] and [`read_image_file_with_max_pixels`] take
/// another limit.
pub const MAX_PIXELS: u64 = 1 << 26;

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` bytes, RGB.
    pub pixels: Vec<u8>,
}

/// Per-channel normalisation `(x − mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    /// Channel means.
    pub mean: Vec<f32>,
    /// Channel standard deviations.
    pub std: Vec<f32>,
}

impl Normalization {
    /// ImageNet's (torchvision's) normalisation.
    pub fn imagenet() -> Self {
        Normalization {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }
    }
}

/// How an image becomes a network input (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Resize so the shorter side has this length (`None`: keep the size).
    pub resize: Option<usize>,
    /// Center crop to `(height, width)` (`None`: no crop).
    pub crop: Option<(usize, usize)>,
    /// Normalisation after scaling to `[0, 1]` (`None`: inputs stay in `[0, 1]`).
    pub normalize: Option<Normalization>,
    /// One luminance channel instead of RGB.
    pub grayscale: bool,
}

impl Preprocess {
    /// torchvision's ImageNet evaluation transform: resize 256, center crop 224, ImageNet
    /// normalisation.
    pub fn imagenet() -> Self {
        Preprocess {
            resize: Some(256),
            crop: Some((224, 224)),
            normalize: Some(Normalization::imagenet()),
            grayscale: false,
        }
    }

    /// For a network input of `channels × height × width`: crop to it after resizing the
    /// shorter side to `⌊256/224 · height⌋` (256 for 224), with `normalize`.
    pub fn for_input(
        channels: usize,
        height: usize,
        width: usize,
        normalize: Option<Normalization>,
    ) -> Self {
        Preprocess {
            resize: Some(height.max(width) * 256 / 224),
            crop: Some((height, width)),
            normalize,
            grayscale: channels == 1,
        }
    }
}

/// The `metadata_props` keys that describe a model's image preprocessing
/// ([`Preprocess::from_metadata`]).
pub const METADATA_KEYS: [&str; 4] = ["klrp.mean", "klrp.std", "klrp.resize", "klrp.crop"];

impl Preprocess {
    /// The preprocessing a model declares in its ONNX `metadata_props`
    /// ([`OnnxModel::metadata`](crate::io::onnx::OnnxModel::metadata)), for a network input of
    /// `channels × height × width`; `None` if it declares none of [`METADATA_KEYS`].
    ///
    /// | key | value | when missing |
    /// |---|---|---|
    /// | `klrp.mean` | channel means on `[0, 1]` pixels, comma-separated: one per channel, or one for all | no normalisation (with `klrp.std` also missing) |
    /// | `klrp.std` | channel standard deviations, the same way | as `klrp.mean` |
    /// | `klrp.resize` | the shorter side after resizing, in pixels, or `none` | `⌊256/224 · max(height, width)⌋` |
    /// | `klrp.crop` | the center crop `H,W` (or one size for both); must be the input's `height × width` | `height × width` |
    ///
    /// The input becomes `(x − mean) / std` after resize and crop ([module docs](self)). For
    /// EfficientNet-Lite0 (`models/efficientnet_lite0.onnx`) the file says mean `127/255`,
    /// std `128/255` (TensorFlow's `(x − 127) / 128` on 0‥255 pixels), resize 256, crop 224.
    ///
    /// ```
    /// use klrp::io::image::Preprocess;
    /// use std::collections::BTreeMap;
    /// let meta = BTreeMap::from([
    ///     ("klrp.mean".to_string(), "0.5".to_string()),
    ///     ("klrp.std".to_string(), "0.25,0.5,1".to_string()),
    ///     ("klrp.resize".to_string(), "256".to_string()),
    /// ]);
    /// let pre = Preprocess::from_metadata(&meta, 3, 224, 224)?.unwrap();
    /// assert_eq!(pre.resize, Some(256));
    /// assert_eq!(pre.crop, Some((224, 224)));
    /// let n = pre.normalize.unwrap();
    /// assert_eq!((n.mean, n.std), (vec![0.5; 3], vec![0.25, 0.5, 1.0]));
    /// assert!(Preprocess::from_metadata(&BTreeMap::new(), 3, 224, 224)?.is_none());
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the key if a value does not parse, a count of channel
    /// values is neither 1 nor `channels`, a standard deviation is zero or not finite, only one
    /// of `klrp.mean` and `klrp.std` is given, or the crop is not the input's size.
    pub fn from_metadata(
        metadata: &std::collections::BTreeMap<String, String>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Option<Self>> {
        if !METADATA_KEYS.iter().any(|k| metadata.contains_key(*k)) {
            return Ok(None);
        }
        let invalid = |key: &str, why: String| {
            Error::invalid(format!(
                "model metadata {key} = '{}': {why}",
                metadata.get(key).map_or("", String::as_str)
            ))
        };
        let per_channel = |key: &str| -> Result<Option<Vec<f32>>> {
            let Some(text) = metadata.get(key) else {
                return Ok(None);
            };
            let values = text
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<std::result::Result<Vec<f32>, _>>()
                .map_err(|e| {
                    invalid(key, format!("not a comma-separated list of numbers ({e})"))
                })?;
            match values.len() {
                1 => Ok(Some(vec![values[0]; channels])),
                n if n == channels => Ok(Some(values)),
                n => Err(invalid(
                    key,
                    format!("{n} values for a {channels}-channel input (give 1 or {channels})"),
                )),
            }
        };
        let normalize = match (per_channel("klrp.mean")?, per_channel("klrp.std")?) {
            (Some(mean), Some(std)) => {
                if mean.iter().any(|m| !m.is_finite()) {
                    return Err(invalid("klrp.mean", "a mean is not finite".into()));
                }
                if std.iter().any(|&s| !(s.is_finite() && s != 0.0)) {
                    return Err(invalid(
                        "klrp.std",
                        "standard deviations must be finite and non-zero".into(),
                    ));
                }
                Some(Normalization { mean, std })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("klrp.mean", "klrp.std is missing".into()));
            }
            (None, Some(_)) => {
                return Err(invalid("klrp.std", "klrp.mean is missing".into()));
            }
        };
        let mut pre = Preprocess::for_input(channels, height, width, normalize);
        if let Some(text) = metadata.get("klrp.resize") {
            pre.resize = match text.trim() {
                "none" => None,
                t => match t.parse::<usize>() {
                    Ok(s) if s > 0 => Some(s),
                    _ => {
                        return Err(invalid(
                            "klrp.resize",
                            "not a positive integer or none".into(),
                        ));
                    }
                },
            };
        }
        if let Some(text) = metadata.get("klrp.crop") {
            let sizes: Vec<Option<usize>> =
                text.split(',').map(|v| v.trim().parse().ok()).collect();
            let crop = match sizes[..] {
                [Some(s)] => (s, s),
                [Some(h), Some(w)] => (h, w),
                _ => return Err(invalid("klrp.crop", "not H,W or one size".into())),
            };
            if crop != (height, width) {
                return Err(invalid(
                    "klrp.crop",
                    format!("the model's input is {height}×{width}"),
                ));
            }
        }
        Ok(Some(pre))
    }
}

impl Preprocess {
    /// The preprocessing an image gets for a model with these `metadata_props` and a network
    /// input of `channels × height × width`: what the model declares
    /// ([`from_metadata`](Self::from_metadata)), else [`for_input`](Self::for_input) with
    /// ImageNet normalisation for 3 channels and none for 1 — what `klrp explain` and the Python
    /// binding's `Model.preprocess` do without options.
    ///
    /// ```
    /// use klrp::io::image::{Normalization, Preprocess};
    /// use std::collections::BTreeMap;
    /// let none = BTreeMap::new();
    /// let pre = Preprocess::for_model(&none, 3, 224, 224)?;
    /// assert_eq!((pre.resize, pre.crop), (Some(256), Some((224, 224))));
    /// assert_eq!(pre.normalize, Some(Normalization::imagenet()));
    /// let declared = BTreeMap::from([("klrp.resize".to_string(), "none".to_string())]);
    /// let pre = Preprocess::for_model(&declared, 3, 224, 224)?;
    /// assert_eq!((pre.resize, pre.normalize), (None, None));
    /// # Ok::<(), klrp::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `channels` is not 1 or 3 (an image has no other), or as
    /// [`from_metadata`](Self::from_metadata).
    pub fn for_model(
        metadata: &std::collections::BTreeMap<String, String>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(Error::invalid(format!(
                "the model takes {channels}-channel images; an image gives 1 or 3 channels"
            )));
        }
        Ok(
            match Self::from_metadata(metadata, channels, height, width)? {
                Some(declared) => declared,
                None => {
                    let normalize = (channels == 3).then(Normalization::imagenet);
                    Self::for_input(channels, height, width, normalize)
                }
            },
        )
    }
}

fn bad(format: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::malformed(format, reason.to_string())
}

fn check_size(width: usize, height: usize, format: &'static str, limit: u64) -> Result<()> {
    let pixels = width as u64 * height as u64;
    if width == 0 || height == 0 {
        return Err(bad(format, format!("image of size {width}×{height}")));
    }
    if pixels > limit {
        return Err(Error::TooLarge {
            what: format!("{format} image {width}×{height}"),
            requested: u128::from(pixels),
            limit: u128::from(limit),
        });
    }
    Ok(())
}

/// `pixels · bytes_per_pixel` as a buffer size, saturating.
fn buffer_bytes(pixels: u64, bytes_per_pixel: u64) -> usize {
    usize::try_from(pixels.saturating_mul(bytes_per_pixel)).unwrap_or(usize::MAX)
}

/// Decodes a PNG or JPEG (by its signature) to 8-bit RGB.
///
/// # Errors
/// [`Error::Malformed`] (format `"PNG"`, `"JPEG"` or `"image"`) for corrupt or unrecognised
/// data; [`Error::TooLarge`] above [`MAX_PIXELS`]; [`Error::Unsupported`] for CMYK JPEGs.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    decode_image_with_max_pixels(bytes, MAX_PIXELS)
}

/// [`decode_image`] with `max_pixels` instead of [`MAX_PIXELS`] as the largest image decoded.
///
/// The size is read from the header and checked before any pixel is decoded, so a small file
/// declaring a huge image costs nothing; a server can bound each request this way.
///
/// ```
/// use klrp::io::image::{decode_image, decode_image_with_max_pixels};
/// let bytes = std::fs::read("tests/fixtures/images/rgb.png")?; // 40 × 30
/// assert_eq!(decode_image(&bytes)?.width, 40);
/// assert!(matches!(
///     decode_image_with_max_pixels(&bytes, 1000),
///     Err(klrp::Error::TooLarge { requested: 1200, limit: 1000, .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As [`decode_image`], with [`Error::TooLarge`] above `max_pixels`.
pub fn decode_image_with_max_pixels(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes, max_pixels)
    } else if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes, max_pixels)
    } else {
        Err(bad(
            "image",
            "not a PNG or JPEG file (unrecognised signature)",
        ))
    }
}

fn decode_png(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let mut dec = png::Decoder::new_with_limits(
        std::io::Cursor::new(bytes),
        png::Limits {
            bytes: buffer_bytes(max_pixels, 8),
        },
    );
    dec.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = dec.read_info().map_err(|e| bad("PNG", e))?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(w, h, "PNG", max_pixels)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG", "image too large"))?;
    let mut buf = vec![0; size];
    let frame = reader.next_frame(&mut buf).map_err(|e| bad("PNG", e))?;
    let buf = &buf[..frame.buffer_size()];
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(bad("PNG", "palette was not expanded"));
        }
    };
    if frame.bit_depth != png::BitDepth::Eight || frame.line_size < w * channels {
        return Err(bad("PNG", "unexpected output format"));
    }
    let mut pixels = Vec::with_capacity(w * h * 3);
    for row in buf.chunks(frame.line_size).take(h) {
        for px in row[..w * channels].chunks_exact(channels) {
            match channels {
                1 | 2 => pixels.extend_from_slice(&[px[0]; 3]),
                _ => pixels.extend_from_slice(&px[..3]),
            }
        }
    }
    if pixels.len() != w * h * 3 {
        return Err(bad("PNG", "truncated image data"));
    }
    Ok(RgbImage {
        width: w,
        height: h,
        pixels,
    })
}

fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.read_info().map_err(|e| bad("JPEG", e))?;
    let info = dec.info().ok_or_else(|| bad("JPEG", "no image header"))?;
    let (w, h) = (usize::from(info.width), usize::from(info.height));
    check_size(w, h, "JPEG", max_pixels)?;
    dec.set_max_decoding_buffer_size(buffer_bytes(max_pixels, 4));
    let data = dec.decode().map_err(|e| bad("JPEG", e))?;
    let pixels: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&v| [v; 3]).collect(),
        jpeg_decoder::PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|c| [(u16::from_ne_bytes([c[0], c[1]]) >> 8) as u8; 3])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => {
            return Err(Error::Unsupported(
                "CMYK JPEG images (convert to RGB first)".into(),
            ));
        }
    };
    if pixels.len() != w * h * 3 {
        return Err(bad("JPEG", "truncated image data"));
    }
    Ok(RgbImage {
        width: w,
        height: h,
        pixels,
    })
}

/// Reads and decodes a PNG or JPEG file.
///
/// # Errors
/// [`Error::Io`] if it cannot be read; otherwise as [`decode_image`], naming the file.
pub fn read_image_file(path: impl AsRef<Path>) -> Result<RgbImage> {
    read_image_file_with_max_pixels(path, MAX_PIXELS)
}

/// [`read_image_file`] with `max_pixels` instead of [`MAX_PIXELS`] as the largest image decoded
/// (see [`decode_image_with_max_pixels`]).
///
/// # Errors
/// As [`read_image_file`], with [`Error::TooLarge`] above `max_pixels`.
pub fn read_image_file_with_max_pixels(
    path: impl AsRef<Path>,
    max_pixels: u64,
) -> Result<RgbImage> {
    super::parse_file(path.as_ref(), |bytes| {
        decode_image_with_max_pixels(&bytes, max_pixels)
    })
}

/// Bilinear resize of a `[C, H, W]` image to `out_h × out_w` (half-pixel centres,
/// `align_corners = False`, no antialiasing: PyTorch's `interpolate(mode="bilinear")`).
pub fn resize_bilinear(img: &Array3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let (c, h, w) = img.dim();
    let taps = |n_in: usize, n_out: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_in as f32 / n_out as f32;
        (0..n_out)
            .map(|o| {
                let src = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
                let i0 = (src as usize).min(n_in - 1);
                let i1 = if i0 + 1 < n_in { i0 + 1 } else { i0 };
                (i0, i1, src - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (taps(h, out_h), taps(w, out_w));
    let mut out = Array3::zeros((c, out_h, out_w));
    for ch in 0..c {
        for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                let top = (1.0 - lx) * img[[ch, y0, x0]] + lx * img[[ch, y0, x1]];
                let bottom = (1.0 - lx) * img[[ch, y1, x0]] + lx * img[[ch, y1, x1]];
                out[[ch, oy, ox]] = (1.0 - ly) * top + ly * bottom;
            }
        }
    }
    out
}

/// Python's `round` (half to even) of `d / 2` for a non-negative integer `d`.
fn half_round_even(d: usize) -> usize {
    let q = d / 2;
    if d % 2 == 1 && q % 2 == 1 { q + 1 } else { q }
}

/// Preprocesses an image into a batch of one `[1, C, H, W]` (see the [module docs](self)).
///
/// A resize may produce at most [`MAX_PIXELS`] pixels, or as many as the image has if that is
/// more.
///
/// # Errors
/// [`Error::InvalidArgument`] if the crop is larger than the (resized) image, a size is 0, or the
/// normalisation's channel count or a zero standard deviation does not fit;
/// [`Error::TooLarge`] if the resize would exceed the limit above.
pub fn to_tensor(img: &RgbImage, pre: &Preprocess) -> Result<ArrayD<f32>> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || img.pixels.len() != w * h * 3 {
        return Err(Error::invalid(format!(
            "image of {w}×{h} pixels with {} bytes",
            img.pixels.len()
        )));
    }
    let channels = if pre.grayscale { 1 } else { 3 };
    let mut x = Array3::<f32>::zeros((channels, h, w));
    for (k, px) in img.pixels.chunks_exact(3).enumerate() {
        let (y, xx) = (k / w, k % w);
        if pre.grayscale {
            let l = 0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2]);
            x[[0, y, xx]] = l / 255.0;
        } else {
            for c in 0..3 {
                x[[c, y, xx]] = f32::from(px[c]) / 255.0;
            }
        }
    }
    if let Some(size) = pre.resize {
        if size == 0 {
            return Err(Error::invalid("resize to 0 pixels"));
        }
        let (nh, nw) = if h <= w {
            (size, (size as u64 * w as u64 / h as u64) as usize)
        } else {
            ((size as u64 * h as u64 / w as u64) as usize, size)
        };
        if (nh, nw) != (h, w) {
            check_size(nw, nh, "resized image", MAX_PIXELS.max(w as u64 * h as u64))?;
            x = resize_bilinear(&x, nh, nw);
        }
    }
    if let Some((ch, cw)) = pre.crop {
        let (_, h, w) = x.dim();
        if ch == 0 || cw == 0 || ch > h || cw > w {
            return Err(Error::invalid(format!(
                "center crop {ch}×{cw} does not fit the {h}×{w} image"
            )));
        }
        let (top, left) = (half_round_even(h - ch), half_round_even(w - cw));
        x = x
            .slice(ndarray::s![.., top..top + ch, left..left + cw])
            .to_owned();
    }
    if let Some(n) = &pre.normalize {
        if n.mean.len() != channels || n.std.len() != channels {
            return Err(Error::invalid(format!(
                "normalisation for {} channels applied to {channels}",
                n.mean.len()
            )));
        }
        if n.std.iter().any(|&s| !(s.is_finite() && s != 0.0)) {
            return Err(Error::invalid(
                "normalisation std must be finite and non-zero",
            ));
        }
        for (c, mut plane) in x.outer_iter_mut().enumerate() {
            plane.mapv_inplace(|v| (v - n.mean[c]) / n.std[c]);
        }
    }
    Ok(x.insert_axis(Axis(0)).into_dyn())
}

/// Reads an image file and preprocesses it ([`read_image_file`] then [`to_tensor`]).
///
/// # Errors
/// As those two.
pub fn load_image(path: impl AsRef<Path>, pre: &Preprocess) -> Result<ArrayD<f32>> {
    to_tensor(&read_image_file(path)?, pre)
}

/// Writes an 8-bit RGB PNG (`rgb`: `height · width · 3` bytes, row-major).
///
/// # Errors
/// [`Error::InvalidArgument`] if the buffer does not match the size; [`Error::Io`] if writing
/// fails.
pub fn write_png_rgb(
    path: impl AsRef<Path>,
    width: usize,
    height: usize,
    rgb: &[u8],
) -> Result<()> {
    let path = path.as_ref();
    if width == 0 || height == 0 || rgb.len() != width * height * 3 {
        return Err(Error::invalid(format!(
            "PNG of {width}×{height} pixels needs {} bytes, got {}",
            width * height * 3,
            rgb.len()
        )));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| Error::invalid("PNG width too large"))?,
        u32::try_from(height).map_err(|_| Error::invalid("PNG height too large"))?,
    );
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let enc_err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => io(e),
        other => Error::invalid(format!("PNG encoding: {other}")),
    };
    let mut writer = enc.write_header().map_err(enc_err)?;
    writer.write_image_data(rgb).map_err(enc_err)?;
    writer.finish().map_err(enc_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metadata_defaults_and_overrides() {
        // Only a resize: no normalisation, the crop is the input.
        let pre = Preprocess::from_metadata(&meta(&[("klrp.resize", "none")]), 3, 32, 48)
            .unwrap()
            .unwrap();
        assert_eq!(
            (pre.resize, pre.crop, pre.normalize),
            (None, Some((32, 48)), None)
        );
        // Unrelated keys only: no preprocessing declared.
        assert!(
            Preprocess::from_metadata(&meta(&[("license", "MIT")]), 3, 8, 8)
                .unwrap()
                .is_none()
        );
        // Grayscale, one value for the single channel; crop given as one size.
        let pre = Preprocess::from_metadata(
            &meta(&[
                ("klrp.mean", "0.1"),
                ("klrp.std", "0.3"),
                ("klrp.crop", "28"),
            ]),
            1,
            28,
            28,
        )
        .unwrap()
        .unwrap();
        assert!(pre.grayscale);
        assert_eq!(pre.resize, Some(32)); // ⌊256/224 · 28⌋
        assert_eq!(
            pre.normalize,
            Some(Normalization {
                mean: vec![0.1],
                std: vec![0.3]
            })
        );
    }

    #[test]
    fn for_model_is_the_declared_preprocessing_or_the_default() {
        // Nothing declared: resize ⌊256/224 · 28⌋ = 32, crop 28, ImageNet for RGB, none for gray.
        let rgb = Preprocess::for_model(&meta(&[]), 3, 28, 28).unwrap();
        assert_eq!(
            rgb,
            Preprocess::for_input(3, 28, 28, Some(Normalization::imagenet()))
        );
        let gray = Preprocess::for_model(&meta(&[("license", "MIT")]), 1, 28, 28).unwrap();
        assert_eq!(gray, Preprocess::for_input(1, 28, 28, None));
        // Declared: the metadata wins, also when it declares no normalisation.
        let declared = meta(&[("klrp.resize", "40")]);
        let pre = Preprocess::for_model(&declared, 3, 28, 28).unwrap();
        assert_eq!((pre.resize, pre.normalize), (Some(40), None));
        // Invalid metadata and channel counts an image cannot have are errors.
        assert!(Preprocess::for_model(&meta(&[("klrp.mean", "0.5")]), 3, 28, 28).is_err());
        for c in [0, 2, 4] {
            let err = Preprocess::for_model(&meta(&[]), c, 28, 28).unwrap_err();
            assert!(err.to_string().contains(&format!("{c}-channel")), "{err}");
        }
    }

    #[test]
    fn metadata_errors_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("klrp.mean", "0.5")], "klrp.mean"),
            (&[("klrp.std", "0.5")], "klrp.std"),
            (&[("klrp.mean", "0.5,0.5"), ("klrp.std", "1")], "2 values"),
            (&[("klrp.mean", "a"), ("klrp.std", "1")], "klrp.mean"),
            (&[("klrp.mean", "0"), ("klrp.std", "0")], "non-zero"),
            (&[("klrp.mean", "inf"), ("klrp.std", "1")], "not finite"),
            (&[("klrp.resize", "0")], "klrp.resize"),
            (&[("klrp.crop", "224,224")], "16×16"),
            (&[("klrp.crop", "1,2,3")], "klrp.crop"),
        ];
        for (pairs, want) in cases {
            let err = Preprocess::from_metadata(&meta(pairs), 3, 16, 16).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument(m) if m.contains(want)),
                "{pairs:?}: {err}"
            );
        }
    }
}
