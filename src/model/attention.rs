//! What a vision transformer gives LeGrad: one forward pass with each selected block's
//! attention probabilities as autodiff leaves and the class scores read from its tokens.

use burn::tensor::Tensor;

use crate::error::Error;

/// One LeGrad forward pass (see [`crate::model::CamModel::forward_with_attention`]).
pub struct AttentionForward {
    /// The model's logits `[batch, classes]`, without autodiff.
    pub logits: Tensor<2>,
    /// Per selected block: `s^l`, the logits the score projection (final norm and head)
    /// gives for the mean of the block's output tokens, `[batch, classes]`, with autodiff.
    /// Each depends on its own block's attention only.
    pub block_logits: Vec<Tensor<2>>,
    /// Per selected block, per pass of the graph (one for the batch, or one per image): the
    /// post-softmax attention probabilities `[images, heads, queries, keys]`, leaves that
    /// require grad.
    pub attention: Vec<Vec<Tensor<4>>>,
    /// Leading key tokens that are not patches (the class token: 1).
    pub prefix: usize,
    /// The patch grid (height, width) the other keys form, row-major.
    pub grid: (usize, usize),
}

/// The error of a model without transformer blocks.
pub(crate) fn no_attention(model: &str) -> Error {
    Error::Invalid(format!(
        "LeGrad needs the attention of a vision transformer; {model} is a CNN (explain an ONNX \
         export of one, e.g. torchvision's VisionTransformer)"
    ))
}
