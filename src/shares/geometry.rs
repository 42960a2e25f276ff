//! The geometries of convolution and pooling on one input size, and the output-size formula
//! they share.

use std::ops::Range;

/// The sizes of one convolution applied to one input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Channel groups.
    pub groups: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zero padding before the input (top, left); with [`padding_end`](Self::padding_end), ONNX
    /// `pads = [top, left, bottom, right]` is `padding = (top, left)`,
    /// `padding_end = (bottom, right)`.
    pub padding: (usize, usize),
    /// Zero padding after the input (bottom, right); equal to `padding` for symmetric padding.
    pub padding_end: (usize, usize),
    /// Dilation (vertical, horizontal).
    pub dilation: (usize, usize),
}

impl ConvGeometry {
    /// The output size `(out_h, out_w)` the sizes, stride, padding and dilation give
    /// (`⌊(in + pad_begin + pad_end − dilation·(k − 1) − 1) / stride⌋ + 1` per axis; `None` where
    /// the dilated kernel does not fit).
    pub fn output_size(&self) -> (Option<usize>, Option<usize>) {
        (
            out_len(
                self.in_h,
                self.kh,
                self.stride.0,
                (self.padding.0, self.padding_end.0),
                self.dilation.0,
            ),
            out_len(
                self.in_w,
                self.kw,
                self.stride.1,
                (self.padding.1, self.padding_end.1),
                self.dilation.1,
            ),
        )
    }
}

/// Pooling windows on one input size: separable row and column ranges of in-bounds inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Channels (pooled independently).
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// For each output row, the in-bounds input rows of its windows.
    pub rows: Vec<Range<usize>>,
    /// For each output column, the in-bounds input columns of its windows.
    pub cols: Vec<Range<usize>>,
    /// For each output row, the window height used as the averaging divisor.
    pub row_div: Vec<usize>,
    /// For each output column, the window width used as the averaging divisor.
    pub col_div: Vec<usize>,
}

/// `⌊(n + pad_begin + pad_end − dilation·(k − 1) − 1) / stride⌋ + 1`, or `None` if the dilated kernel does not fit
/// (or the arithmetic overflows, or `k` or `stride` is 0).
pub(crate) fn out_len(
    n: usize,
    k: usize,
    stride: usize,
    (pad_begin, pad_end): (usize, usize),
    dilation: usize,
) -> Option<usize> {
    if stride == 0 {
        return None;
    }
    let span = dilation.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = n.checked_add(pad_begin)?.checked_add(pad_end)?;
    padded.checked_sub(span).map(|r| r / stride + 1)
}
