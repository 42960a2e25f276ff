//! Tensors: the batch type that layers, rules and kernels pass around, and parallel
//! elementwise maps over it.
//!
//! May import: `semiring` (docs/architecture.md, "Layers").
//!
//! Tensors are batches: `[N, features]` or `[N, C, H, W]` (NCHW, as in PyTorch).

pub mod elementwise;
pub(crate) mod par;

use ndarray::ArrayD;

/// A batch of activations (`f32`, batch axis first).
pub type Tensor = ArrayD<f32>;

/// A tensor that several share terms hold without copying it (cloning it is cheap):
/// `tensor.into_shared()` makes one from a [`Tensor`].
pub type SharedTensor = ndarray::ArcArray<f32, ndarray::IxDyn>;

/// Prepends the batch size to a per-sample shape.
pub(crate) fn with_batch(n: usize, sample: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(sample.len() + 1);
    s.push(n);
    s.extend_from_slice(sample);
    s
}

/// A shape's dimensions joined by `, `, for messages (`[N, {}]`).
pub(crate) fn join_dims(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A copy of `t` that share terms can hold together, made in parallel (`to_shared` copies on
/// one thread, which a 13 MB activation makes a visible serial step of a relevance pass).
pub(crate) fn shared_copy(t: &Tensor) -> SharedTensor {
    elementwise::map(t, |x| x).into_shared()
}
