//! Tensors whose bytes live in an external data file next to the model (`model.onnx.data`, what
//! `torch.onnx.export(..., dynamo=True)` and `onnx.save_model(..., save_as_external_data=True)`
//! write for large models).
//!
//! A tensor with `data_location = EXTERNAL` names its file in the `external_data` entry
//! `location` (a path relative to the model's directory) and its bytes by `offset` (default 0)
//! and `length` (default: to the end of the file). klrp refuses locations that are absolute or
//! leave the model's directory (`..`, or a symbolic link pointing outside), offsets and lengths
//! past the end of the file, and a missing file, each with a clear error.

use super::proto::TensorProto;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

fn bad(reason: impl Into<String>) -> Error {
    Error::malformed("ONNX", reason)
}

/// The external data files read so far, by location.
#[derive(Default)]
pub(super) struct ExternalFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl ExternalFiles {
    /// The bytes of `tensor`'s external data, read from its file in `dir`.
    pub(super) fn bytes<'s>(&'s mut self, tensor: &TensorProto, dir: &Path) -> Result<&'s [u8]> {
        let name = &tensor.name;
        let entry = |key: &str| {
            tensor
                .external_data
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let location = entry("location").ok_or_else(|| {
            bad(format!(
                "tensor '{name}' has external data without a location"
            ))
        })?;
        let number = |key: &str| -> Result<Option<usize>> {
            entry(key)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        bad(format!(
                            "tensor '{name}' has external data {key} '{v}', not a byte count"
                        ))
                    })
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        if !self.files.contains_key(location) {
            let path = resolve(dir, location, name)?;
            let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                path: format!(
                    "{} (external data of tensor '{name}', named '{location}' by the model)",
                    path.display()
                ),
                source,
            })?;
            self.files.insert(location.to_string(), bytes);
        }
        let file = &self.files[location];
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(file.len()),
        };
        match end {
            Some(end) if offset <= end && end <= file.len() => Ok(&file[offset..end]),
            _ => Err(bad(format!(
                "tensor '{name}' reads bytes {offset}..{} of external data file '{location}', \
                 which has {} bytes",
                length.map_or("end".to_string(), |l| offset.saturating_add(l).to_string()),
                file.len()
            ))),
        }
    }
}

/// `location` inside `dir`, refusing absolute paths and paths leaving `dir`.
fn resolve(dir: &Path, location: &str, tensor: &str) -> Result<PathBuf> {
    let rel = Path::new(location);
    let escapes = location.is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(Error::Unsupported(format!(
            "tensor '{tensor}' names external data file '{location}', which is not a path inside \
             the model's directory (absolute paths and '..' are refused)"
        )));
    }
    let path = dir.join(rel);
    // A symbolic link may still point outside: compare the resolved paths when both exist.
    if let (Ok(real_dir), Ok(real)) = (dir.canonicalize(), path.canonicalize())
        && !real.starts_with(&real_dir)
    {
        return Err(Error::Unsupported(format!(
            "tensor '{tensor}' names external data file '{location}', which resolves to {}, \
             outside the model's directory",
            real.display()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_leaving_the_directory_are_refused() {
        let dir = Path::new("/tmp");
        for bad in ["../x.data", "/etc/passwd", "a/../../x", ""] {
            assert!(
                matches!(resolve(dir, bad, "w"), Err(Error::Unsupported(_))),
                "{bad}"
            );
        }
        assert_eq!(
            resolve(dir, "sub/m.onnx.data", "w").unwrap(),
            Path::new("/tmp/sub/m.onnx.data")
        );
    }
}
