//! [`LayerOps`] on autodiff tensors: the convolution's node (input gradient through the
//! kernels, weight and bias gradients burn's), burn's max pooling, and ReLU6's node.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::ops::{ActivationOps, ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;

use super::{Activation, LayerOps, relu6};

impl<B: LayerOps, C: CheckpointStrategy> LayerOps for Autodiff<B, C> {
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        tracked_conv2d::<B, C, 3>(
            [x_node, weight_node, bias_node],
            x,
            weight,
            Some(bias),
            options,
        )
    }

    fn layer_conv2d_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FloatTensor<Self> {
        // Two recorded operations, so that each keeps its own backward pass.
        let y = Self::layer_conv2d(x, weight, bias, options);
        match act {
            Activation::Identity => y,
            Activation::Relu => Self::relu(y),
            Activation::Relu6 => Self::layer_relu6(y),
        }
    }

    fn layer_conv2d_add_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FloatTensor<Self> {
        let y = Self::layer_conv2d(x, weight, bias, options);
        let y = Self::float_add(y, residual);
        match act {
            Activation::Identity => y,
            Activation::Relu => Self::relu(y),
            Activation::Relu6 => Self::layer_relu6(y),
        }
    }

    fn layer_conv2d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        let (x, x_node) = x.into_parts();
        let (weight, weight_node) = weight.into_parts();
        tracked_conv2d::<B, C, 2>([x_node, weight_node], x, weight, None, options)
    }

    fn layer_conv2d_input_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        // Only a second-order gradient would get here: burn's.
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    fn layer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        // burn's, whose backward sends the gradient to the first maximum as PyTorch's does.
        Self::max_pool2d(x, kernel, stride, padding, [1, 1], false)
    }

    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        relu6::tracked::<B, C>(x)
    }
}

/// The inner backend's convolution, recorded with [`ConvBackward`]: `nodes` are those of `x`,
/// `weight` and, when `N` is 3, `bias`.
fn tracked_conv2d<B: LayerOps, C: CheckpointStrategy, const N: usize>(
    nodes: [NodeGuard; N],
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
    options: ConvOptions<2>,
) -> FloatTensor<Autodiff<B, C>> {
    let forward = |x, weight, bias: Option<_>, options| match bias {
        Some(bias) => B::layer_conv2d(x, weight, bias, options),
        None => B::layer_conv2d_unbiased(x, weight, options),
    };
    match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.clone(), weight.clone(), bias.clone(), options.clone());
            prep.finish((x, weight, bias, options), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias, options)),
    }
}

/// A convolution's backward pass: `(x, weight, bias, options)` as state; parents `x`, `weight`
/// and, when `N` is 3, `bias`.
#[derive(Debug)]
struct ConvBackward;

type ConvState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    Option<FloatTensor<B>>,
    ConvOptions<2>,
);

impl<B: LayerOps, const N: usize> Backward<B, N> for ConvBackward {
    type State = ConvState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, bias, options) = ops.state;
        let [x_node, weight_node, bias_node] = [0, 1, 2].map(|i| ops.parents.get(i).cloned());
        if let (Some(Some(node)), Some(bias)) = (bias_node, bias) {
            let db = B::conv2d_bias_backward(x.clone(), bias, grad.clone());
            grads.register::<B>(node.id, db);
        }
        if let Some(Some(node)) = weight_node {
            let dw =
                B::conv2d_weight_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dw);
        }
        if let Some(Some(node)) = x_node {
            let dx = B::layer_conv2d_input_gradient(x, weight, grad, options);
            grads.register::<B>(node.id, dx);
        }
    }
}
