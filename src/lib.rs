#![doc = "K-LRP (placeholder, replaced below)"]
pub mod error;
pub mod semiring;
#[cfg(feature = "laws")]
pub mod laws;
pub mod io;

pub use error::{Error, Result};
