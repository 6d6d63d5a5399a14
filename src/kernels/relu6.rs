//! ReLU6, `clamp(x, 0, 6)`: two vectorised clamps forward, and a backward pass that lets no
//! gradient through at 0 and 6, as PyTorch's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex};

use super::LayerOps;

/// The forward pass on flex: two vectorised passes, where flex's `clamp` is one scalar loop.
pub(super) fn forward(x: FloatTensor<Flex>) -> FloatTensor<Flex> {
    Flex::float_clamp_max(Flex::float_clamp_min(x, 0.0.into()), 6.0.into())
}

/// The inner backend's ReLU6, recorded with [`Relu6Backward`].
pub(super) fn tracked<B: LayerOps, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let (x, node) = x.into_parts();
    match Relu6Backward
        .prepare::<C>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let y = B::layer_relu6(x);
            prep.finish(y.clone(), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::layer_relu6(x)),
    }
}

/// ReLU6's backward pass, with the output as state: the gradient where `0 < y < 6`, in two
/// passes of burn's fused ReLU backward (`relu_backward(out, g)` keeps `g` where `out > 0`),
/// instead of the masks of burn's clamps.
#[derive(Debug)]
struct Relu6Backward;

impl<B: Backend> Backward<B, 1> for Relu6Backward {
    type State = FloatTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let y = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            let below_six = B::float_neg(B::float_sub_scalar(y.clone(), 6.0.into()));
            B::relu_backward(below_six, B::relu_backward(y, grad))
        });
    }
}
