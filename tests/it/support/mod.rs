//! Helpers shared by the integration tests' modules.

pub mod command;
pub mod connections;
pub mod conv;
pub mod onnx_writer;
pub mod rng;
