//! `gradcam`: Grad-CAM and its family for vision models, in Rust.
//!
//! Models are cut at a named layer ([`model::CamModel`]); the body runs without autograd and
//! only the rest of the network runs with it, so a backward pass touches the head alone.

pub mod alloc;
pub mod error;
pub mod io;
pub mod kernels;
pub mod model;
pub mod weights;

pub use error::{Error, Result};
pub mod batch;
pub mod bench;
pub mod cam;
pub mod concepts;
pub mod eval;
pub mod explain;
pub mod image;
pub mod labels;
pub mod localize;
pub mod onnx;
pub mod request;
pub mod serve;
pub mod timefmt;
