//! Guided backpropagation's rectifiers (Springenberg et al., "Striving for Simplicity: The All
//! Convolutional Net", ICLR 2015 workshop; used by Grad-CAM's Guided Grad-CAM).
//!
//! A guided ReLU computes `relu(x)` forward, but its backward pass lets a gradient through only
//! where the input is positive AND the incoming gradient is positive:
//! `dx = dy * [x > 0] * [dy > 0]` (pytorch-grad-cam's `GuidedBackpropReLU`). The guided ReLU6
//! (`clamp(x, 0, 6)`) applies the same rule on its pass-through range:
//! `dx = dy * [0 < x < 6] * [dy > 0]`.
//!
//! The models call [`relu`] and [`relu6`] of this module; while a [`GuidedReluGuard`] guard lives on the
//! current thread, those switch to the custom autodiff operations below. Outside a guard they
//! are burn's plain ones. A model defined outside this crate supports guided backpropagation
//! by calling them too.

use std::cell::Cell;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{
    Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension,
    get_or_init_device_settings,
};
use burn::tensor::Tensor;

thread_local! {
    static GUIDED: Cell<bool> = const { Cell::new(false) };
}

/// Switches the models' ReLU and ReLU6 to their guided versions on this thread until dropped.
///
/// ```
/// use gradcam::kernels::GuidedReluGuard;
/// {
///     let _guided = GuidedReluGuard::enable();
///     assert!(GuidedReluGuard::active());
/// }
/// assert!(!GuidedReluGuard::active());
/// ```
#[must_use = "the guided rectifiers are switched off again when the guard is dropped"]
pub struct GuidedReluGuard {
    previous: bool,
}

impl GuidedReluGuard {
    /// Turns the guided rectifiers on for the current thread.
    pub fn enable() -> Self {
        Self::set(true)
    }

    /// Turns the guided rectifiers on or off for the current thread.
    pub(crate) fn set(on: bool) -> Self {
        GuidedReluGuard {
            previous: GUIDED.with(|g| g.replace(on)),
        }
    }

    /// Whether the guided rectifiers are on for the current thread.
    pub fn active() -> bool {
        GUIDED.with(Cell::get)
    }
}

impl Drop for GuidedReluGuard {
    fn drop(&mut self) {
        GUIDED.with(|g| g.set(self.previous));
    }
}

/// The guided rectifiers as a backend extension: forward passes as the plain ones, backward
/// passes by the guided rule (on autodiff tensors).
#[backend_extension(Flex, Autodiff)]
pub trait GuidedOps: Backend {
    /// `relu(x)`, with the guided backward `dy * [x > 0] * [dy > 0]`.
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `clamp(x, 0, 6)`, with the guided backward `dy * [0 < x < 6] * [dy > 0]`.
    fn guided_relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl GuidedOps for Flex {
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward::<Self>(x, None)
    }

    fn guided_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        forward::<Self>(x, Some(6.0))
    }
}

impl<B: Backend, C: CheckpointStrategy> GuidedOps for Autodiff<B, C> {
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        guided::<B, C>(x, None)
    }

    fn guided_relu6(x: FloatTensor<Self>) -> FloatTensor<Self> {
        guided::<B, C>(x, Some(6.0))
    }
}

/// The plain forward pass: `relu(x)` or `clamp(x, 0, max)`.
fn forward<B: Backend>(x: FloatTensor<B>, max: Option<f64>) -> FloatTensor<B> {
    match max {
        None => B::relu(x),
        Some(max) => B::float_clamp(x, 0.0.into(), max.into()),
    }
}

/// Where the rectifier passes its input through: `x > 0`, and `x < max` for a capped one.
fn pass_through<B: Backend>(x: FloatTensor<B>, max: Option<f64>) -> BoolTensor<B> {
    let dtype = get_or_init_device_settings::<B>(&x.device()).bool_dtype;
    let positive = B::float_greater_elem(x.clone(), 0.0.into(), dtype);
    match max {
        None => positive,
        Some(max) => B::bool_and(positive, B::float_lower_elem(x, max.into(), dtype)),
    }
}

/// The backward step: keeps the incoming gradient where the input passed through and the
/// gradient is positive.
#[derive(Debug)]
struct GuidedBackward;

impl<B: Backend> Backward<B, 1> for GuidedBackward {
    type State = BoolTensor<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let passed = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            let dtype = get_or_init_device_settings::<B>(&grad.device()).bool_dtype;
            let positive = B::float_greater_elem(grad.clone(), 0.0.into(), dtype);
            let keep = B::bool_and(passed, positive);
            B::float_mask_fill(grad, B::bool_not(keep), 0.0.into())
        });
    }
}

fn guided<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    max: Option<f64>,
) -> FloatTensor<Autodiff<B, C>> {
    let (primitive, node) = x.into_parts();
    match GuidedBackward
        .prepare::<C>([node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let passed = pass_through::<B>(primitive.clone(), max);
            prep.finish(passed, forward::<B>(primitive, max))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward::<B>(primitive, max)),
    }
}

/// The guided ReLU on a tensor of any rank.
pub fn guided_relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as GuidedOps>::guided_relu(x.into_dispatch()))
}

/// The guided ReLU6 on a tensor of any rank.
pub fn guided_relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as GuidedOps>::guided_relu6(x.into_dispatch()))
}

/// `max(x, 0)`: burn's `relu`, or the guided ReLU while a [`GuidedReluGuard`] guard is on.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if GuidedReluGuard::active() {
        guided_relu(x)
    } else {
        burn::tensor::activation::relu(x)
    }
}

/// `clamp(x, 0, 6)`, or the guided ReLU6 while a [`GuidedReluGuard`] guard is on.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if GuidedReluGuard::active() {
        guided_relu6(x)
    } else {
        super::relu6(x)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, TensorData};

    use super::*;

    /// The gradient of `sum(c * f(x))` with respect to `x`, `f` run with the guided switch on
    /// or off.
    fn gradient(f: fn(Tensor<1>) -> Tensor<1>, x: &[f32], c: &[f32], guided: bool) -> Vec<f32> {
        let device = Device::flex();
        let leaf = Tensor::<1>::from_data(TensorData::new(x.to_vec(), [x.len()]), &device)
            .autodiff()
            .require_grad();
        let c = Tensor::<1>::from_data(TensorData::new(c.to_vec(), [c.len()]), &device);
        let y = if guided {
            let _guided = GuidedReluGuard::enable();
            f(leaf.clone())
        } else {
            f(leaf.clone())
        };
        let grads = (y * c).sum().backward();
        leaf.grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect()
    }

    const X: [f32; 6] = [-1.0, 0.5, 3.0, 7.0, 2.0, 0.0];
    const C: [f32; 6] = [1.0, -1.0, 2.0, 1.0, -3.0, 1.0];

    #[test]
    fn guided_relu_drops_negative_gradients() {
        assert_eq!(
            gradient(relu, &X, &C, false),
            [0.0, -1.0, 2.0, 1.0, -3.0, 0.0]
        );
        assert_eq!(gradient(relu, &X, &C, true), [0.0, 0.0, 2.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn guided_relu6_passes_only_its_linear_range() {
        // Both strict at x = 0, as PyTorch's ReLU6 and pytorch-grad-cam's guided rule.
        assert_eq!(
            gradient(relu6, &X, &C, false),
            [0.0, -1.0, 2.0, 0.0, -3.0, 0.0]
        );
        assert_eq!(
            gradient(relu6, &X, &C, true),
            [0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn forward_values_do_not_change() {
        let device = Device::flex();
        let x = Tensor::<1>::from_data(TensorData::new(X.to_vec(), [6]), &device);
        let _guided = GuidedReluGuard::enable();
        let plain: Vec<f32> = relu6(x.clone().autodiff())
            .into_data()
            .iter::<f32>()
            .collect();
        assert_eq!(plain, [0.0, 0.5, 3.0, 6.0, 2.0, 0.0]);
        let plain: Vec<f32> = relu(x).into_data().iter::<f32>().collect();
        assert_eq!(plain, [0.0, 0.5, 3.0, 7.0, 2.0, 0.0]);
    }
}
