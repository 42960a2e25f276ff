//! The crate's error type: everything a user can get wrong, named.
//!
//! May import: nothing of klrp (docs/architecture.md, "Layers").

use std::fmt;

/// Errors returned by klrp for input a user can get wrong.
///
/// Every public function that takes user data returns `Result<_, klrp::Error>`; none of them panics
/// on bad input. The messages name what was wrong (which layer, which file, which value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor did not have the shape an operation needs.
    #[error("shape mismatch in {context}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// Where the mismatch was found (a layer, an argument).
        context: String,
        /// The shape that was expected.
        expected: Shape,
        /// The shape that was given.
        actual: Shape,
    },
    /// A target class index was outside the network's output.
    #[error("target {target} out of range: the network has {classes} outputs")]
    TargetOutOfRange {
        /// The requested target.
        target: usize,
        /// The number of outputs per sample.
        classes: usize,
    },
    /// A NaN or infinite value where finite numbers are required.
    #[error("non-finite value (NaN or Inf) in {0}")]
    NonFinite(String),
    /// An argument outside its allowed range (a NaN threshold, a zero stride, α − β ≠ 1, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A layer failed; `source` says why.
    #[error("layer {index} ({name}): {source}")]
    Layer {
        /// The layer's index in the network (graph order from 0).
        index: usize,
        /// The layer's display name.
        name: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// A model, layer or option that klrp does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A network graph that is not a DAG of existing nodes: a cycle, an input naming a node that
    /// does not exist, a node out of topological order, or a node whose output nobody reads.
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A file or buffer whose contents are not valid for its format.
    #[error("malformed {format} data: {reason}")]
    Malformed {
        /// The format being read (`"IDX"`, `"npy"`, `"ONNX"`, …).
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// An I/O failure on a named path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A request so large it would exhaust memory; raise the limit if it is intended.
    #[error("{what} needs {requested} elements, above the limit of {limit}")]
    TooLarge {
        /// What would have been allocated.
        what: String,
        /// Elements requested.
        requested: u128,
        /// The limit in force.
        limit: u128,
    },
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A tensor shape, printed as `[2, 3, 4]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<usize>);

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl From<&[usize]> for Shape {
    fn from(s: &[usize]) -> Self {
        Shape(s.to_vec())
    }
}

impl From<Vec<usize>> for Shape {
    fn from(s: Vec<usize>) -> Self {
        Shape(s)
    }
}

impl Error {
    /// A [`Error::ShapeMismatch`] in `context`.
    pub fn shape(context: impl Into<String>, expected: &[usize], actual: &[usize]) -> Self {
        Error::ShapeMismatch {
            context: context.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    /// A [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// A [`Error::Malformed`] for `format`.
    pub fn malformed(format: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            format,
            reason: reason.into(),
        }
    }

    /// Wraps `self` as having happened in layer `index` named `name`.
    pub fn in_layer(self, index: usize, name: impl Into<String>) -> Self {
        Error::Layer {
            index,
            name: name.into(),
            source: Box::new(self),
        }
    }
}

/// Returns an error naming `what` if any value is NaN or infinite.
pub(crate) fn ensure_finite<'a>(
    values: impl IntoIterator<Item = &'a f32>,
    what: impl FnOnce() -> String,
) -> Result<()> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFinite(what()))
    }
}
