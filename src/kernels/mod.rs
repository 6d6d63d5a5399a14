//! The models' numerical kernels on the flex CPU backend: convolution, max pooling, ReLU6 and
//! the guided rectifiers, as burn backend extensions with their autodiff nodes.
//!
//! They are shaped for what a CAM runs: a forward pass without autodiff up to the cut layer,
//! then the head's forward and backward for the gradient with respect to the activations.
//! docs/benchmarks.md ("Why the kernels are shaped this way") says what burn's own operations
//! cost there and what each kernel does instead. Values and input gradients equal burn's up to
//! float rounding (tests/kernels.rs); weight and bias gradients are burn's. Whatever a kernel
//! does not cover (dilation, other dtypes, "same" padding, grouped convolutions) goes to
//! burn's operation.

mod autodiff;
mod conv;
mod depthwise;
mod epilogue;
pub mod guided_relu;
mod im2col;
mod matmul;
mod packed_matmul;
mod parallel;
mod pool;
mod prepacked;
mod relu6;
mod residual;
mod scratch;
mod winograd;

use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ConvOptions, FloatTensorOps, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::Tensor;

pub use epilogue::Activation;
pub use guided_relu::{GuidedOps, GuidedReluGuard};
pub use parallel::on_worker;

use im2col::ConvGeometry;

/// The layer operations of this module as a backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait LayerOps: Backend {
    /// `conv2d(x, weight, bias)`, as burn's.
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// `act(conv2d(x, weight, bias))`: on flex, the activation runs in the convolution's
    /// epilogue; on autodiff tensors, as its own recorded operation after it.
    fn layer_conv2d_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FloatTensor<Self>;
    /// `act(conv2d(x, weight, bias) + residual)`: on flex, the residual add and the activation
    /// run in the convolution's epilogue, the output written into the residual's buffer when
    /// nothing else holds it; on autodiff tensors, as recorded operations after it.
    fn layer_conv2d_add_act(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FloatTensor<Self>;
    /// `conv2d(x, weight)` without a bias (the extension macro does not take optional tensors).
    fn layer_conv2d_unbiased(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// The gradient of `conv2d(x, weight, ..)` with respect to `x`, given the output's `grad`.
    fn layer_conv2d_input_gradient(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
    /// Max pooling with symmetric `padding`, dilation 1, floor rounding.
    fn layer_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
    /// `clamp(x, 0, 6)`.
    fn layer_relu6(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `conv.forward(x)`, through [`LayerOps`] (burn's for "same" padding, which no built-in model
/// uses). A model defined outside this crate gets the faster passes by calling it.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(padding) = fixed_padding(&conv.padding) else {
        return conv.forward(x);
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d_with(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `burn::tensor::module::conv2d(x, weight, bias, options)`, through [`LayerOps`].
pub fn conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    Tensor::from_dispatch(match bias {
        Some(bias) => {
            <Dispatch as LayerOps>::layer_conv2d(x, weight, bias.into_dispatch(), options)
        }
        None => <Dispatch as LayerOps>::layer_conv2d_unbiased(x, weight, options),
    })
}

/// `act(conv.forward(x))`, with the activation fused into the convolution's epilogue where
/// [`conv2d_act_with`] can.
pub fn conv2d_act(conv: &Conv2d, x: Tensor<4>, act: Activation) -> Tensor<4> {
    match (fixed_padding(&conv.padding), &conv.bias) {
        (Some(padding), Some(bias)) => {
            let options =
                ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
            conv2d_act_with(x, conv.weight.val(), Some(bias.val()), options, act)
        }
        _ => activate(conv2d(conv, x), act),
    }
}

/// `act(conv2d_with(x, weight, bias, options))`. The activation runs in the convolution's
/// epilogue on plain tensors with a bias; autodiff tensors record the two operations, and
/// while a [`GuidedReluGuard`] is on the rectifier is the guided one, unfused.
pub fn conv2d_act_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    act: Activation,
) -> Tensor<4> {
    match bias {
        Some(bias) if !GuidedReluGuard::active() => {
            Tensor::from_dispatch(<Dispatch as LayerOps>::layer_conv2d_act(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
                options,
                act,
            ))
        }
        bias => activate(conv2d_with(x, weight, bias, options), act),
    }
}

/// `act(conv.forward(x) + residual)`, with the add and the activation fused into the
/// convolution's epilogue where [`conv2d_add_act_with`] can (a ResNet block's last
/// convolution, an inverted residual block's projection).
pub fn conv2d_add_act(
    conv: &Conv2d,
    x: Tensor<4>,
    residual: Tensor<4>,
    act: Activation,
) -> Tensor<4> {
    match (fixed_padding(&conv.padding), &conv.bias) {
        (Some(padding), Some(bias)) => {
            let options =
                ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
            conv2d_add_act_with(
                x,
                conv.weight.val(),
                Some(bias.val()),
                residual,
                options,
                act,
            )
        }
        _ => activate(conv2d(conv, x) + residual, act),
    }
}

/// `act(conv2d_with(x, weight, bias, options) + residual)`. Fused on plain tensors with a bias
/// (the residual broadcast by burn's add when its shape is not the output's); autodiff tensors
/// record the three operations, and while a [`GuidedReluGuard`] is on the rectifier is the
/// guided one, unfused.
pub fn conv2d_add_act_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    residual: Tensor<4>,
    options: ConvOptions<2>,
    act: Activation,
) -> Tensor<4> {
    match bias {
        Some(bias) if !GuidedReluGuard::active() => {
            Tensor::from_dispatch(<Dispatch as LayerOps>::layer_conv2d_add_act(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
                residual.into_dispatch(),
                options,
                act,
            ))
        }
        bias => activate(conv2d_with(x, weight, bias, options) + residual, act),
    }
}

/// `act(x)` as its own operation (guided while a [`GuidedReluGuard`] is on).
fn activate(x: Tensor<4>, act: Activation) -> Tensor<4> {
    match act {
        Activation::Identity => x,
        Activation::Relu => guided_relu::relu(x),
        Activation::Relu6 => guided_relu::relu6(x),
    }
}

/// `pool.forward(x)`, through [`LayerOps`] when the pool is a plain one (symmetric padding, no
/// dilation, floor rounding: every pool of the built-in models), burn's otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let Some([(top, bottom), (left, right)]) = fixed_padding(&pool.padding) else {
        return pool.forward(x);
    };
    if top != bottom || left != right || pool.dilation != [1, 1] || pool.ceil_mode {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_max_pool2d(
        x.into_dispatch(),
        pool.kernel_size,
        pool.stride,
        [top, left],
    ))
}

/// `clamp(x, 0, 6)` through [`LayerOps`]; its gradient is zero outside `0 < x < 6`.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// let x = Tensor::<1>::from_floats([-1.0, 3.0, 7.0], &Device::flex());
/// let y: Vec<f32> = gradcam::kernels::relu6(x).into_data().iter::<f32>().collect();
/// assert_eq!(y, [0.0, 3.0, 6.0]);
/// ```
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as LayerOps>::layer_relu6(x.into_dispatch()))
}

/// `(top, bottom), (left, right)` of an explicit or "valid" padding.
fn fixed_padding(padding: &PaddingConfig2d) -> Option<[(usize, usize); 2]> {
    match *padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([(top, bottom), (left, right)]),
        PaddingConfig2d::Valid => Some([(0, 0); 2]),
        PaddingConfig2d::Same => None,
    }
}

impl LayerOps for Flex {
    fn layer_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), options, Activation::Identity)
    }

    fn layer_conv2d_act(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FlexTensor {
        flex_conv2d(x, weight, Some(bias), options, act)
    }

    fn layer_conv2d_add_act(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        residual: FlexTensor,
        options: ConvOptions<2>,
        act: Activation,
    ) -> FlexTensor {
        flex_conv2d_add(x, weight, Some(bias), residual, options, act)
    }

    fn layer_conv2d_unbiased(
        x: FlexTensor,
        weight: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        flex_conv2d(x, weight, None, options, Activation::Identity)
    }

    fn layer_conv2d_input_gradient(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        match ConvGeometry::of_dense_f32(&x, &weight, &options) {
            Some(geometry) => conv::dense_conv2d_input_gradient_f32(&geometry, weight, grad),
            None => depthwise::input_gradient::<Flex>(x, weight, grad, options),
        }
    }

    fn layer_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return Flex::max_pool2d(x, kernel, stride, padding, [1, 1], false);
        }
        pool::max_pool2d_f32(x, kernel, stride, padding)
    }

    fn layer_relu6(x: FlexTensor) -> FlexTensor {
        relu6::forward(x)
    }
}

/// Winograd's for a stride-1 3x3 one with enough channels, the dense kernel for another dense
/// float32 convolution without dilation, the depthwise one for a
/// depthwise convolution without dilation, flex's otherwise; then `act` (in the epilogue of our
/// kernels, as flex's own operation after flex's convolution).
fn flex_conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: ConvOptions<2>,
    act: Activation,
) -> FlexTensor {
    if let Some(geometry) = ConvGeometry::of_dense_f32(&x, &weight, &options) {
        if winograd::applies(&geometry) {
            return winograd::conv3x3_f32(&geometry, x, weight, bias, None, act);
        }
        return conv::dense_conv2d_f32(&geometry, x, weight, bias, None, act);
    }
    if depthwise::is_depthwise_f32(&x, &weight, &options) {
        let (padding, stride) = (options.padding, options.stride);
        return depthwise::depthwise_conv2d_f32(x, weight, bias, padding, stride, act);
    }
    flex_activate(Flex::conv2d(x, weight, bias, options), act)
}

/// `act(conv2d(x, weight, bias) + residual)`: the dense and Winograd kernels start their
/// output from the residual's values ([`residual::into_output`]) when it has the output's
/// shape; anything else is the convolution, flex's (broadcasting) add, then `act`.
fn flex_conv2d_add(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    residual: FlexTensor,
    options: ConvOptions<2>,
    act: Activation,
) -> FlexTensor {
    if let Some(geometry) = ConvGeometry::of_dense_f32(&x, &weight, &options)
        && residual::fits(&geometry, &residual)
    {
        let residual = Some(residual::into_output(residual));
        if winograd::applies(&geometry) {
            return winograd::conv3x3_f32(&geometry, x, weight, bias, residual, act);
        }
        return conv::dense_conv2d_f32(&geometry, x, weight, bias, residual, act);
    }
    let y = flex_conv2d(x, weight, bias, options, Activation::Identity);
    flex_activate(Flex::float_add(y, residual), act)
}

/// `act(y)` as flex's own operation (our ReLU6).
fn flex_activate(y: FlexTensor, act: Activation) -> FlexTensor {
    match act {
        Activation::Identity => y,
        Activation::Relu => Flex::relu(y),
        Activation::Relu6 => relu6::forward(y),
    }
}
