//! `Conv2d`: 2-D convolution (stride, padding, dilation, groups), and its LRP shares.

use super::{ChannelAffine, Layer, LayerKind, check_batch};
use crate::error::{Error, Result, ensure_finite};
use crate::kernels;
use crate::rules::{Rule, linear_share_terms};
use crate::shares::{Connectivity, ConvGeometry, LinearMap, Shares, WeightMap};
use crate::tensor::Tensor;
use ndarray::{Array1, Array4};

/// A 2-D convolution over NCHW batches (PyTorch `Conv2d`, weight `[C_out, C_in / groups, kh, kw]`).
///
/// `out = ⌊(in + pad_begin + pad_end − dilation·(k − 1) − 1) / stride⌋ + 1` per spatial axis.
/// Zero padding, symmetric ([`with_padding`](Self::with_padding)) or not
/// ([`with_padding_asym`](Self::with_padding_asym)); padded positions are never inputs: they are
/// not connections, carry no relevance, and are not covered by z^B's box bounds nor counted by
/// the flat rule.
///
/// ```
/// use klrp::layers::{Conv2d, Layer};
/// use ndarray::Array4;
/// let conv = Conv2d::new(Array4::ones((1, 1, 3, 3)), None).unwrap().with_padding((1, 1)).unwrap();
/// assert_eq!(conv.output_shape(&[1, 5, 5]).unwrap(), vec![1, 5, 5]);
/// let y = conv.forward(&ndarray::ArrayD::ones(vec![1, 1, 5, 5])).unwrap();
/// assert_eq!(y[[0, 0, 0, 0]], 4.0); // corner: 4 in-bounds taps
/// assert_eq!(y[[0, 0, 2, 2]], 9.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
    stride: (usize, usize),
    padding: (usize, usize),
    padding_end: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
}

impl Conv2d {
    /// A convolution with stride 1, no padding, dilation 1 and one group.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a dimension of `weight` is zero or the bias length differs from
    /// `C_out`; [`Error::NonFinite`] if a parameter is NaN or infinite.
    pub fn new(weight: Array4<f32>, bias: Option<Array1<f32>>) -> Result<Self> {
        if weight.is_empty() {
            return Err(Error::shape(
                "Conv2d weight [C_out, C_in, kh, kw]",
                &[1, 1, 1, 1],
                weight.shape(),
            ));
        }
        ensure_finite(weight.iter(), || "Conv2d weight".into())?;
        if let Some(b) = &bias {
            if b.len() != weight.shape()[0] {
                return Err(Error::shape(
                    "Conv2d bias",
                    &[weight.shape()[0]],
                    &[b.len()],
                ));
            }
            ensure_finite(b.iter(), || "Conv2d bias".into())?;
        }
        Ok(Conv2d {
            weight: weight.as_standard_layout().into_owned(),
            bias,
            stride: (1, 1),
            padding: (0, 0),
            padding_end: (0, 0),
            dilation: (1, 1),
            groups: 1,
        })
    }

    /// Sets the stride.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a stride is 0.
    pub fn with_stride(mut self, stride: (usize, usize)) -> Result<Self> {
        if stride.0 == 0 || stride.1 == 0 {
            return Err(Error::invalid(format!(
                "Conv2d stride must be ≥ 1, got {stride:?}"
            )));
        }
        self.stride = stride;
        Ok(self)
    }

    /// Sets the zero padding, the same before and after the input (`padding = (vertical,
    /// horizontal)`, PyTorch's `padding`); replaces any earlier padding.
    ///
    /// # Errors
    /// Never at present; kept fallible like the other settings.
    pub fn with_padding(mut self, padding: (usize, usize)) -> Result<Self> {
        self.padding = padding;
        self.padding_end = padding;
        Ok(self)
    }

    /// Adds zero padding `begin = (top, left)` and `end = (bottom, right)` to the padding set so
    /// far (ONNX `pads = [top, left, bottom, right]` is `begin = (top, left)`,
    /// `end = (bottom, right)`).
    ///
    /// Adding, not replacing, is what folds a constant-zero `Pad` into the convolution that reads
    /// it: `Conv(Pad(x, p), pads = q)` equals this convolution with `q` set, then `p` added, on `x`.
    /// The padded positions are never inputs: they carry no relevance, and the z^B bounds and the
    /// flat rule's counts do not cover them.
    ///
    /// ```
    /// use klrp::layers::{Conv2d, Layer};
    /// use ndarray::Array4;
    /// // TensorFlow "same" padding of a 3×3 stride-2 convolution on an even input: 0 before, 1 after.
    /// let conv = Conv2d::new(Array4::ones((1, 1, 3, 3)), None).unwrap()
    ///     .with_stride((2, 2)).unwrap()
    ///     .with_padding_asym((0, 0), (1, 1)).unwrap();
    /// assert_eq!(conv.output_shape(&[1, 4, 4]).unwrap(), vec![1, 2, 2]);
    /// let y = conv.forward(&ndarray::ArrayD::ones(vec![1, 1, 4, 4])).unwrap();
    /// assert_eq!(y[[0, 0, 0, 0]], 9.0);
    /// assert_eq!(y[[0, 0, 1, 1]], 4.0); // bottom-right: 4 in-bounds taps
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a total padding overflows `usize`.
    pub fn with_padding_asym(mut self, begin: (usize, usize), end: (usize, usize)) -> Result<Self> {
        let add = |a: (usize, usize), b: (usize, usize)| {
            Some((a.0.checked_add(b.0)?, a.1.checked_add(b.1)?))
        };
        match (add(self.padding, begin), add(self.padding_end, end)) {
            (Some(b), Some(e)) => {
                self.padding = b;
                self.padding_end = e;
                Ok(self)
            }
            _ => Err(Error::invalid(format!(
                "Conv2d padding {:?} + {begin:?} (begin), {:?} + {end:?} (end) overflows",
                self.padding, self.padding_end
            ))),
        }
    }

    /// Sets the dilation.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if a dilation is 0.
    pub fn with_dilation(mut self, dilation: (usize, usize)) -> Result<Self> {
        if dilation.0 == 0 || dilation.1 == 0 {
            return Err(Error::invalid(format!(
                "Conv2d dilation must be ≥ 1, got {dilation:?}"
            )));
        }
        self.dilation = dilation;
        Ok(self)
    }

    /// Sets the number of channel groups (`C_in = groups · weight.shape()[1]`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `groups` is 0 or does not divide `C_out`.
    pub fn with_groups(mut self, groups: usize) -> Result<Self> {
        if groups == 0 || !self.weight.shape()[0].is_multiple_of(groups) {
            return Err(Error::invalid(format!(
                "Conv2d groups = {groups} must be ≥ 1 and divide C_out = {}",
                self.weight.shape()[0]
            )));
        }
        self.groups = groups;
        Ok(self)
    }

    /// The weight `[C_out, C_in / groups, kh, kw]`.
    pub fn weight(&self) -> &Array4<f32> {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }

    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.weight.shape()[1] * self.groups
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.shape()[0]
    }

    /// Zero padding before the input: (top, left).
    pub fn padding(&self) -> (usize, usize) {
        self.padding
    }

    /// Zero padding after the input: (bottom, right).
    pub fn padding_end(&self) -> (usize, usize) {
        self.padding_end
    }

    /// Channel groups.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The geometry of this convolution on an input sample of shape `[C, H, W]`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the input is not `[C_in, H, W]` or too small for the kernel.
    pub fn geometry(&self, input: &[usize]) -> Result<ConvGeometry> {
        let &[c, h, w] = input else {
            return Err(Error::shape(
                "Conv2d input [C, H, W]",
                &[self.in_channels(), 0, 0],
                input,
            ));
        };
        if c != self.in_channels() {
            return Err(Error::shape(
                "Conv2d input channels",
                &[self.in_channels()],
                &[c],
            ));
        }
        let (kh, kw) = (self.weight.shape()[2], self.weight.shape()[3]);
        let out = crate::shares::out_len;
        let (Some(out_h), Some(out_w)) = (
            out(
                h,
                kh,
                self.stride.0,
                (self.padding.0, self.padding_end.0),
                self.dilation.0,
            ),
            out(
                w,
                kw,
                self.stride.1,
                (self.padding.1, self.padding_end.1),
                self.dilation.1,
            ),
        ) else {
            return Err(Error::shape(
                "Conv2d input (smaller than the dilated kernel)",
                &[c, kh, kw],
                input,
            ));
        };
        Ok(ConvGeometry {
            in_channels: c,
            out_channels: self.out_channels(),
            groups: self.groups,
            in_h: h,
            in_w: w,
            out_h,
            out_w,
            kh,
            kw,
            stride: self.stride,
            padding: self.padding,
            padding_end: self.padding_end,
            dilation: self.dilation,
        })
    }

    fn sample_shape(x: &Tensor) -> &[usize] {
        x.shape().get(1..).unwrap_or(&[])
    }
}

impl LinearMap for Conv2d {
    fn connectivity(&self, input: &[usize]) -> Result<Connectivity<'_>> {
        Ok(Connectivity::Conv {
            weight: self.weight.view(),
            bias: self.bias.as_ref().and_then(|b| b.as_slice()),
            geometry: self.geometry(input)?,
        })
    }

    fn forward_mapped(
        &self,
        x: &Tensor,
        weight: WeightMap,
        bias: Option<WeightMap>,
    ) -> Result<Tensor> {
        let input = Self::sample_shape(x);
        let conn = self.connectivity(input)?;
        let out = self.output_shape(input)?;
        kernels::conv_forward(&conn, x, weight, bias, &out)
    }

    fn max_abs_forward(&self, x: &Tensor) -> Result<Tensor> {
        let input = Self::sample_shape(x);
        let conn = self.connectivity(input)?;
        let out = self.output_shape(input)?;
        kernels::max_abs_forward(&conn, x, &out)
    }
}

impl Layer for Conv2d {
    fn name(&self) -> String {
        let (kh, kw) = (self.weight.shape()[2], self.weight.shape()[3]);
        // Symmetric padding prints as before; asymmetric as "(top, left)–(bottom, right)".
        let padding = if self.padding == self.padding_end {
            format!("{:?}", self.padding)
        } else {
            format!("{:?}–{:?}", self.padding, self.padding_end)
        };
        format!(
            "Conv2d({} → {}, {kh}×{kw}, stride {:?}, padding {padding})",
            self.in_channels(),
            self.out_channels(),
            self.stride,
        )
    }

    fn kind(&self) -> LayerKind {
        LayerKind::Conv
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let g = self.geometry(input)?;
        Ok(vec![g.out_channels, g.out_h, g.out_w])
    }

    fn param_count(&self) -> usize {
        self.weight.len() + self.bias.as_ref().map_or(0, |b| b.len())
    }

    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_mapped(input, WeightMap::Identity, Some(WeightMap::Identity))
    }

    fn shares(&self, input: &Tensor, output: &Tensor, rule: &Rule) -> Result<Shares<'_>> {
        let sample = Self::sample_shape(input);
        check_batch(
            input,
            &[
                self.in_channels(),
                sample.get(1).copied().unwrap_or(0),
                sample.get(2).copied().unwrap_or(0),
            ],
            "Conv2d input",
        )?;
        let sample_out = self.output_shape(&input.shape()[1..])?;
        super::check_output(input, output, &sample_out, "Conv2d output")?;
        let terms = linear_share_terms(self, input, output, rule)?;
        Ok(Shares::Linear {
            connectivity: self.connectivity(sample)?,
            terms,
        })
    }

    fn fuse_channel_affine(&mut self, affine: &ChannelAffine) -> Result<()> {
        super::fold_channel_affine(&mut self.weight, &mut self.bias, affine, "Conv2d")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn, s};

    fn weight() -> Array4<f32> {
        Array4::from_shape_fn((4, 1, 3, 2), |(a, _, c, d)| {
            (a * 5 + c * 3 + d) as f32 * 0.25 - 2.0
        })
    }

    /// A zero `Pad` folded into the padding gives the forward pass of the convolution applied to
    /// the explicitly padded input, for strides 1 and 2 (TensorFlow "same" and its reverse).
    #[test]
    fn folded_zero_pad_equals_the_explicitly_padded_input() {
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 2, 5, 6]), |i| {
            ((i[0] * 31 + i[1] * 17 + i[2] * 7 + i[3] * 3) % 11) as f32 - 5.0
        });
        for stride in [(1, 1), (2, 2), (2, 1)] {
            for (begin, end) in [((0, 0), (1, 1)), ((2, 1), (0, 0)), ((1, 0), (0, 2))] {
                let conv = || {
                    Conv2d::new(weight(), Some(Array1::from(vec![0.5, -1.0, 0.0, 2.0])))
                        .unwrap()
                        .with_groups(2)
                        .unwrap()
                        .with_stride(stride)
                        .unwrap()
                        .with_padding((1, 0))
                        .unwrap()
                };
                let folded = conv().with_padding_asym(begin, end).unwrap();
                assert_eq!(folded.padding(), (1 + begin.0, begin.1));
                assert_eq!(folded.padding_end(), (1 + end.0, end.1));
                let (h, w) = (5 + begin.0 + end.0, 6 + begin.1 + end.1);
                let mut padded = ArrayD::zeros(IxDyn(&[2, 2, h, w]));
                padded
                    .slice_mut(s![.., .., begin.0..begin.0 + 5, begin.1..begin.1 + 6])
                    .assign(&x);
                let want = conv().forward(&padded).unwrap();
                let got = folded.forward(&x).unwrap();
                assert_eq!(got, want, "stride {stride:?}, pad {begin:?}–{end:?}");
                let conn = folded.connectivity(&[2, 5, 6]).unwrap();
                conn.check().unwrap();
            }
        }
    }

    #[test]
    fn padding_that_overflows_is_an_error() {
        let conv = Conv2d::new(weight(), None)
            .unwrap()
            .with_padding((usize::MAX, 0))
            .unwrap();
        let err = conv.with_padding_asym((1, 0), (0, 0)).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }

    /// `Connectivity::check` reads the end padding: an output size from the begin padding alone
    /// is rejected.
    #[test]
    fn check_uses_the_end_padding() {
        let conv = Conv2d::new(weight(), None)
            .unwrap()
            .with_padding_asym((0, 0), (2, 1))
            .unwrap();
        let Connectivity::Conv {
            weight,
            bias,
            mut geometry,
        } = conv.connectivity(&[1, 4, 4]).unwrap()
        else {
            unreachable!()
        };
        assert_eq!((geometry.out_h, geometry.out_w), (4, 4));
        geometry.padding_end = geometry.padding;
        let bad = Connectivity::Conv {
            weight,
            bias,
            geometry,
        };
        assert!(matches!(bad.check(), Err(Error::ShapeMismatch { .. })));
    }
}
