//! A run-time ONNX interpreter on burn tensors, for explaining any exported classifier.
//!
//! [`load`] reads a model (external data included, confined to the model's directory),
//! checks every operator against one registry at once, and folds every node whose inputs are
//! constant. [`Graph::run`] evaluates the graph; [`Graph::split`] cuts it at any tensors into
//! a body that runs without autodiff and a head that runs only the nodes depending on the cut
//! (see [`Split`]); [`layers`] lists the tensors to cut at, with their PyTorch module paths
//! and shapes; [`Attention`] finds a vision transformer's blocks and runs the graph with their
//! attention as autodiff leaves (LeGrad). Float tensors live on burn's flex backend (with
//! autodiff when the head's inputs carry it); shape arithmetic (Shape, Gather, Slice, Concat,
//! Cast, ...) runs on host integers.
//!
//! Supported: default-domain opsets 13 to 21; float32 / float16 / float64 weights (computed in
//! float32); 2-D convolutions and pooling; tensors up to rank 6; one image input. The
//! operators are listed by [`supported_operators`]: elementwise arithmetic and comparisons,
//! activations (ReLU, ReLU6 as Clip, sigmoid, hard-sigmoid, hard-swish, GELU, ...), MatMul,
//! Gemm, Conv, ConvTranspose, MaxPool, AveragePool, global pooling, batch and layer
//! normalisation, reductions, Softmax, Resize, ScatterND, and the shape and layout operators
//! exporters emit. Not yet: control flow, sequence types, other domains.
//!
//! Work done once at load rather than per pass: constant folding; a `Gemm` with a constant B
//! keeps it transposed and contiguous; a constant `Pad` read only by a `Conv` becomes the
//! convolution's padding. Shape arithmetic that reads the input's shape (`Shape(x)` with a
//! dynamic batch) runs on the first pass at each input size and is reused after.

mod attention;
mod attrs;
mod bias_probes;
mod classifier;
mod error;
mod exec;
mod external;
mod fuse;
mod graph;
mod layers;
mod load;
mod ops;
pub mod proto;
mod scopes;
mod shape_cache;
mod split;
mod tensor_proto;
mod value;

pub use attention::{Attention, AttentionBlock, AttentionPass};
pub use bias_probes::BiasProbe;
pub use error::{OnnxError, Result};
pub(crate) use graph::close_matches;
pub use graph::{Graph, Input, Node};
pub use layers::{Layer, layers, layers_at, resolve_layer};
pub use load::load;
pub use split::{Context, Split};
pub use value::{Float, Ints, MAX_RANK, Value};

use std::collections::HashSet;
use std::sync::Arc;

/// The operators the interpreter runs, with their first opsets where there are several.
pub fn supported_operators() -> Vec<String> {
    ops::supported()
}

impl Graph {
    /// Runs the graph on its one input and returns its outputs.
    pub fn run(&self, input: Float) -> Result<Vec<Float>> {
        split::single_input(self)?;
        let plan = self.full_plan();
        let mut env = vec![None; self.names.len()];
        env[self.inputs[0].id] = Some(Value::Float(input));
        plan.run(self, &mut env)?;
        self.outputs
            .iter()
            .map(|&o| split::output(self, &mut env, o))
            .collect()
    }

    /// Runs the nodes needed for the tensors named in `fetch` (outputs or intermediates) from
    /// the named input values.
    pub fn run_with(&self, feeds: Vec<(&str, Value)>, fetch: &[&str]) -> Result<Vec<Value>> {
        let fetch_ids: Vec<usize> = fetch.iter().map(|f| self.id(f)).collect::<Result<_>>()?;
        let mut env = vec![None; self.names.len()];
        for (name, value) in feeds {
            let id = self.id(name)?;
            if !self.inputs.iter().any(|i| i.id == id) {
                return Err(OnnxError::Invalid(format!(
                    "`{name}` is not an input of the graph"
                )));
            }
            env[id] = Some(value);
        }
        let keep: HashSet<usize> = fetch_ids.iter().copied().collect();
        let plan = exec::Plan::new(
            self,
            split::ancestors(self, &fetch_ids, &HashSet::new()),
            &keep,
        );
        plan.run(self, &mut env)?;
        fetch_ids
            .iter()
            .map(|&id| {
                env[id]
                    .clone()
                    .or_else(|| self.constants[id].clone())
                    .ok_or_else(|| {
                        OnnxError::Invalid(format!(
                            "tensor `{}` was not computed (is every input fed?)",
                            self.name(id)
                        ))
                    })
            })
            .collect()
    }

    /// Cuts the graph at the tensors named in `cuts` (see [`Split`]).
    pub fn split(self: &Arc<Self>, cuts: &[&str]) -> Result<Split> {
        Split::new(Arc::clone(self), cuts)
    }
}
