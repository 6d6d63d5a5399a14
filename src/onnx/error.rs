//! What can go wrong loading or running an ONNX model; each message names the file, node or
//! tensor concerned.

use std::path::PathBuf;

/// Errors of the ONNX interpreter ([`crate::Error::Onnx`] in the library's error type).
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model (or the file is truncated).
    #[error("{path} is not an ONNX model (or is truncated): {message}")]
    NotOnnx { path: PathBuf, message: String },
    /// A model that is well-formed protobuf but not a usable ONNX graph.
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    /// A tensor stored outside the model file that cannot be read.
    #[error("{path}: initializer `{tensor}`: external data: {message}")]
    ExternalData {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    /// The model's operator set for a domain is outside what the interpreter supports.
    #[error(
        "{path}: opset {version} of domain `{domain}` is not supported (supported: {supported})"
    )]
    Opset {
        path: PathBuf,
        domain: String,
        version: i64,
        supported: String,
    },
    /// Operators (or attribute values) the interpreter lacks, all of them at once.
    #[error("{path}: {}\nsupported operators: {}", problems.join("\n"), supported.join(", "))]
    Unsupported {
        path: PathBuf,
        problems: Vec<String>,
        supported: Vec<String>,
    },
    /// A node failed while running (a shape that does not fit, a value of the wrong kind).
    #[error("node `{node}` ({op_type}): {message}")]
    Node {
        node: String,
        op_type: String,
        message: String,
    },
    /// A tensor name that the graph does not have.
    #[error("no tensor `{name}` in the graph{}", if close.is_empty() { String::new() } else { format!("; close matches: {}", close.join(", ")) })]
    UnknownTensor { name: String, close: Vec<String> },
    /// An input the graph cannot take, or an API call that does not fit the graph.
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`OnnxError`].
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

/// An error raised inside an operator, before the node it belongs to is known; the executor
/// wraps it into [`OnnxError::Node`].
#[derive(Debug, Clone, PartialEq)]
pub struct OpError(pub String);

impl OpError {
    /// An error with the given message.
    pub fn new(message: impl Into<String>) -> Self {
        OpError(message.into())
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Result` of an operator.
pub type OpResult<T> = std::result::Result<T, OpError>;

/// Returns early with an [`OpError`] built like `format!`.
macro_rules! op_bail {
    ($($arg:tt)*) => { return Err($crate::onnx::error::OpError::new(format!($($arg)*))) };
}
pub(crate) use op_bail;
