//! A convolution written out as its dense layer: the reference that the convolution tests
//! (`grouped_conv.rs`, `invariants.rs`) compare klrp's convolutions against.

use klrp::rules::{
    AlphaBetaRule, EpsilonRule, GammaRule, MaxAbsRule, Rule, WSquareRule, ZBoxRule, ZPlusRule,
    ZeroRule,
};
use ndarray::{Array1, Array2, Array4};

/// Where a convolution's taps fall: groups, stride, dilation and the padding before each axis.
pub struct Taps {
    pub groups: usize,
    pub stride: (usize, usize),
    pub dilation: (usize, usize),
    pub begin: (usize, usize),
}

/// The dense matrix `[C_out·out_h·out_w, C_in·H·W]` and bias of the convolution `weight`
/// `[C_out, C_in/G, kh, kw]`, `bias` on an input `[C_in, H, W]` with output `[out_h, out_w]`,
/// tap by tap from PyTorch's definition
/// `out[co, oy, ox] = b[co] + Σ_{cl, ky, kx} w[co, cl, ky, kx] · x[ci, oy·s − p + ky·d, …]` with
/// `ci = g·C_in/G + cl` for the group `g` of `co` (zero padding: taps outside the input
/// contribute nothing and get no matrix entry).
pub fn unroll_conv(
    weight: &Array4<f32>,
    bias: Option<&Array1<f32>>,
    taps: &Taps,
    (cin, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
) -> (Array2<f32>, Option<Array1<f32>>) {
    let [cout, cin_g, kh, kw] = *weight.shape() else {
        unreachable!()
    };
    let Taps {
        groups,
        stride,
        dilation,
        begin,
    } = *taps;
    let cout_g = cout / groups;
    let mut m = Array2::<f32>::zeros((cout * oh * ow, cin * h * w));
    for co in 0..cout {
        let g = co / cout_g;
        for oy in 0..oh {
            for ox in 0..ow {
                let row = (co * oh + oy) * ow + ox;
                for cl in 0..cin_g {
                    let ci = g * cin_g + cl;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * stride.0 + ky * dilation.0) as i64 - begin.0 as i64;
                            let ix = (ox * stride.1 + kx * dilation.1) as i64 - begin.1 as i64;
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                continue;
                            }
                            let col = (ci * h + iy as usize) * w + ix as usize;
                            assert_eq!(m[[row, col]], 0.0, "a pair (j, k) is one tap at most");
                            m[[row, col]] = weight[[co, cl, ky, kx]];
                        }
                    }
                }
            }
        }
    }
    let bias = bias.map(|b| Array1::from_shape_fn(cout * oh * ow, |k| b[k / (oh * ow)]));
    (m, bias)
}

/// The rules defined per connection: each share is `Σ_t p_t[j] g_t(w_jk) q_t[k]` with
/// `g_t(0) = 0`, so a zero entry of the unrolled matrix has share 0, like a missing connection,
/// and the denominators (sums over j of such terms, or maxima of |a w|) are unchanged too.
pub fn per_connection_rules() -> Vec<Rule> {
    vec![
        ZeroRule.into(),
        EpsilonRule::new(0.25).unwrap().into(),
        GammaRule::new(0.25, 1e-6).unwrap().into(),
        ZPlusRule::default().into(),
        AlphaBetaRule::new(2.0, 1.0).unwrap().into(),
        ZBoxRule::new(-1.0, 1.0).unwrap().into(),
        WSquareRule::default().into(),
        MaxAbsRule::default().into(),
    ]
}
