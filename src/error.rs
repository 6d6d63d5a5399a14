//! The library's error type: every failure a user can cause has its own variant and a message
//! that says what to do about it.

use std::path::PathBuf;

/// Errors returned by the `gradcam` library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer name that the model does not have.
    #[error("unknown layer `{name}` for {model}; valid layers: {}", valid.join(", "))]
    UnknownLayer {
        name: String,
        model: String,
        valid: Vec<String>,
    },
    /// A model name that is not built in.
    #[error("unknown model `{name}`; available: {}", valid.join(", "))]
    UnknownModel { name: String, valid: Vec<String> },
    /// A method name that is not implemented.
    #[error("unknown method `{name}`; available: {}", valid.join(", "))]
    UnknownMethod { name: String, valid: Vec<String> },
    /// A class index beyond the model's outputs, or a class name that no label matches.
    #[error("{0}")]
    Class(String),
    /// A checkpoint whose tensors do not fit the model.
    #[error("weights {path}: {message}")]
    Weights { path: PathBuf, message: String },
    /// The built-in model's weights could not be obtained.
    #[error("{0}")]
    Download(String),
    /// An image that cannot be decoded or is too large.
    #[error("image {path}: {message}")]
    Image { path: PathBuf, message: String },
    /// Input the library cannot work with (wrong shape, empty batch, ...).
    #[error("{0}")]
    Invalid(String),
    /// An iterative solver stopped short of its tolerance.
    #[error(
        "{what} did not converge: relative residual {residual:e} after {iterations} iterations \
         (tolerance {tolerance:e})"
    )]
    NotConverged {
        what: &'static str,
        residual: f64,
        iterations: usize,
        tolerance: f64,
    },
    /// An ONNX model that cannot be loaded or run.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    /// The work was cancelled (see [`crate::cam::Cancel`]): nobody waits for its result.
    #[error("cancelled: the explanation was abandoned before it finished")]
    Cancelled,
    /// Reading or writing a file failed. The OS error is part of the message and not a
    /// `source`, so that printing the error chain (`{:#}`) does not say it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error: source,
        }
    }
}
