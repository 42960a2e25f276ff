//! One trace explained in the semirings of the examples' figures — Real, Boolean, Counting (f64
//! counts) and Viterbi —, each propagation timed (the forward pass excluded). Shared by
//! `examples/vgg16.rs` and `examples/imagenet/lite0.rs`, which include it by path.

use klrp::composite::Composite;
use klrp::conversion::Conversion;
use klrp::semiring::{Boolean, FloatCounting, Real, Viterbi};
use klrp::{Clamp01, Identity, Network, PerLayer, Relevance, Trace, one_hot};
use std::time::Instant;

/// `f`'s result and the seconds it took.
fn timed<R>(f: impl FnOnce() -> klrp::Result<R>) -> klrp::Result<(R, f64)> {
    let t = Instant::now();
    let r = f()?;
    Ok((r, t.elapsed().as_secs_f64()))
}

/// Classical LRP with `composite`, started from the target's logit, Θ(d) = d; with every
/// layer's relevance when `keep_layers`.
pub fn real(
    net: &Network,
    trace: &Trace,
    target: usize,
    composite: &Composite,
    keep_layers: bool,
) -> klrp::Result<(Relevance<Real<f32>>, f64)> {
    let init = trace.output_init(&[target])?;
    timed(|| {
        net.propagate(
            trace,
            init,
            composite,
            &PerLayer::new(Identity),
            keep_layers,
        )
    })
}

/// Boolean and Counting relevance with the shares of `composite` under Θ `theta`, from 1 at the
/// target, with the seconds of each.
pub struct Masks {
    pub boolean: Relevance<Boolean>,
    pub counting: Relevance<FloatCounting>,
    pub seconds: (f64, f64),
}

/// [`Masks`] of `target`.
pub fn masks<T: Conversion<Boolean> + Conversion<FloatCounting>>(
    net: &Network,
    trace: &Trace,
    target: usize,
    composite: &Composite,
    theta: &PerLayer<T>,
) -> klrp::Result<Masks> {
    let init = one_hot::<Boolean>(trace.output().shape(), &[target])?;
    let (boolean, bool_s) = timed(|| net.propagate(trace, init, composite, theta, false))?;
    let init = one_hot::<FloatCounting>(trace.output().shape(), &[target])?;
    let (counting, count_s) = timed(|| net.propagate(trace, init, composite, theta, false))?;
    Ok(Masks {
        boolean,
        counting,
        seconds: (bool_s, count_s),
    })
}

/// The strength of the strongest path: Viterbi with max-abs shares, Θ = clamp to [0, 1], from 1
/// at the target.
pub fn viterbi(
    net: &Network,
    trace: &Trace,
    target: usize,
) -> klrp::Result<(Relevance<Viterbi>, f64)> {
    let init = one_hot::<Viterbi>(trace.output().shape(), &[target])?;
    timed(|| {
        net.propagate(
            trace,
            init,
            &Composite::viterbi(),
            &PerLayer::new(Clamp01),
            false,
        )
    })
}
