//! Reading and writing models, tensors and data sets.

pub mod idx;
#[cfg(feature = "images")]
pub mod image;
pub mod npy;
pub mod onnx;
pub mod safetensors;
