//! Reading and writing models, tensors and data sets.
//!
//! May import: `error`, `graph`, `layers`, `network`, `shares`, `tensor` (docs/architecture.md,
//! "Layers").

use crate::error::{Error, Result};
use std::path::Path;

pub mod idx;
#[cfg(feature = "images")]
pub mod image;
pub mod npy;
pub mod onnx;
pub mod safetensors;

/// Reads the file at `path` and parses its bytes with `parse`, naming the file in errors.
///
/// A read failure is [`Error::Io`] with the path; a [`Error::Malformed`] from `parse` gets the
/// path in front of its reason; any other error passes through unchanged.
pub(crate) fn parse_file<T>(path: &Path, parse: impl FnOnce(Vec<u8>) -> Result<T>) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(bytes).map_err(|e| match e {
        Error::Malformed { format, reason } => Error::Malformed {
            format,
            reason: format!("{}: {reason}", path.display()),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_file_names_the_file_in_read_and_format_errors() {
        let missing = Path::new("tests/fixtures/no-such-file.bin");
        match parse_file(missing, |_| Ok(())) {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, missing.display().to_string());
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        let present = Path::new("Cargo.toml");
        let malformed = parse_file(present, |_| -> Result<()> {
            Err(Error::Malformed {
                format: "test",
                reason: "bad byte".into(),
            })
        });
        match malformed {
            Err(Error::Malformed { format, reason }) => {
                assert_eq!(format, "test");
                assert_eq!(reason, "Cargo.toml: bad byte");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        // Other errors pass through untouched, and a success returns the parsed value.
        let other = parse_file(present, |_| -> Result<()> {
            Err(Error::InvalidArgument("x".into()))
        });
        assert!(matches!(other, Err(Error::InvalidArgument(r)) if r == "x"));
        let len = parse_file(present, |b| Ok(b.len())).unwrap();
        assert_eq!(len as u64, std::fs::metadata(present).unwrap().len());
    }
}
