//! `Conv2d`: 2-D convolution (stride, padding, dilation, groups), and its LRP shares.

use super::{
    ChannelAffine, Connectivity, Layer, LayerKind, LinearMap, Shares, Tensor, check_batch,
};
use crate::error::{Error, Result, ensure_finite};
use crate::kernels;
use crate::rules::{Rule, WeightMap, linear_share_terms};
use ndarray::{Array1, Array4};

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
    /// Zero padding (top/bottom, left/right).
    pub padding: (usize, usize),
    /// Dilation (vertical, horizontal).
    pub dilation: (usize, usize),
}

/// A 2-D convolution over NCHW batches (PyTorch `Conv2d`, weight `[C_out, C_in / groups, kh, kw]`).
///
/// `out = ⌊(in + 2·pad − dilation·(k − 1) − 1) / stride⌋ + 1` per spatial axis. Zero padding;
/// padded positions are not connections (they carry no relevance and do not count for the flat rule).
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

    /// Sets the zero padding.
    ///
    /// # Errors
    /// Never at present; kept fallible like the other settings.
    pub fn with_padding(mut self, padding: (usize, usize)) -> Result<Self> {
        self.padding = padding;
        Ok(self)
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
        let out = super::out_len;
        let (Some(out_h), Some(out_w)) = (
            out(h, kh, self.stride.0, self.padding.0, self.dilation.0),
            out(w, kw, self.stride.1, self.padding.1, self.dilation.1),
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
        format!(
            "Conv2d({} → {}, {kh}×{kw}, stride {:?}, padding {:?})",
            self.in_channels(),
            self.out_channels(),
            self.stride,
            self.padding
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
