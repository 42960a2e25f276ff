//! Reading and writing models, tensors and data sets.

pub mod idx;
pub mod npy;
