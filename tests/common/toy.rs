//! A hand-sized network whose every weight the test chooses, so that its maps and gradients
//! can be worked out with a pencil (tests/golden.rs) or in f64 (tests/methods.rs).
//!
//! Stages `conv` (3x3, stride 1), `relu` and, optionally, `pool` (2x2 max-pool); the head
//! flattens and runs linear layers with a ReLU between each two.

use std::ops::Range;

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use gradcam::kernels::guided_relu::relu;
use gradcam::model::{CamModel, Layer, Preprocess, Rounding, Staged};

/// A layer's parameters as flat row-major arrays.
#[derive(Debug, Clone)]
pub struct Params<const D: usize> {
    /// Convolutions: `[out, in, 3, 3]`; linear layers: burn's `[in, out]`.
    pub shape: [usize; D],
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// What the toy network is made of.
#[derive(Debug, Clone)]
pub struct ToySpec {
    /// Input (height, width); the channels come from the convolution.
    pub input: (usize, usize),
    pub conv: Params<4>,
    /// Zero padding on every side of the convolution.
    pub padding: usize,
    /// Whether a 2x2 max-pool follows the ReLU.
    pub pool: bool,
    /// Linear layers, the first one taking the flattened last stage.
    pub head: Vec<Params<2>>,
}

/// The toy network of a [`ToySpec`].
pub struct Toy {
    pub spec: ToySpec,
    conv: Conv2d,
    pool: MaxPool2d,
    head: Vec<Linear>,
    layers: Vec<Layer>,
}

fn param<const D: usize>(data: &[f32], shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(data.to_vec(), shape),
        device,
    ))
}

impl Toy {
    pub fn new(spec: ToySpec, device: &Device) -> Self {
        let [cout, cin, kh, kw] = spec.conv.shape;
        let p = spec.padding;
        let mut conv = Conv2dConfig::new([cin, cout], [kh, kw])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(device);
        conv.weight = param(&spec.conv.weight, spec.conv.shape, device);
        conv.bias = Some(param(&spec.conv.bias, [cout], device));
        let head = spec
            .head
            .iter()
            .map(|l| {
                let mut linear = LinearConfig::new(l.shape[0], l.shape[1]).init(device);
                linear.weight = param(&l.weight, l.shape, device);
                linear.bias = Some(param(&l.bias, [l.shape[1]], device));
                linear
            })
            .collect();
        // The shapes are only listed (`gradcam models`, `/v1/models`); the CAM runner reads
        // the activations' own, so captum's unpadded 4x4 -> 2x2 needs no exact rounding.
        let mut layers = vec![
            Layer::new("conv", cout, 1, Rounding::Ceil),
            Layer::new("relu", cout, 1, Rounding::Ceil),
        ];
        if spec.pool {
            layers.push(Layer::new("pool", cout, 2, Rounding::Floor));
        }
        Toy {
            spec,
            conv,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            head,
            layers,
        }
    }

    /// captum's toy model (its `BasicModel_ConvNet_One_Conv`, without the ReLU it puts on the
    /// logits): Conv2d 1 -> 2 (3x3, weights 1, bias [-50, -75]), ReLU, Linear 8 -> 4 with
    /// weights `[ones(4, 5) | -ones(4, 3)]` and bias 0, on a 4x4 input.
    pub fn captum(device: &Device) -> Self {
        // burn stores Linear weights as [in, out]: inputs 0..5 add, 5..8 subtract.
        let fc: Vec<f32> = (0..8)
            .flat_map(|i| [if i < 5 { 1.0 } else { -1.0 }; 4])
            .collect();
        Toy::new(
            ToySpec {
                input: (4, 4),
                conv: Params {
                    shape: [2, 1, 3, 3],
                    weight: vec![1.0; 18],
                    bias: vec![-50.0, -75.0],
                },
                padding: 0,
                pool: false,
                head: vec![Params {
                    shape: [8, 4],
                    weight: fc,
                    bias: vec![0.0; 4],
                }],
            },
            device,
        )
    }

    /// The input `[1, channels, height, width]` with values `data`.
    pub fn input(&self, data: &[f32], device: &Device) -> Tensor<4> {
        let (h, w) = self.spec.input;
        Tensor::from_data(
            TensorData::new(data.to_vec(), [1, self.spec.conv.shape[1], h, w]),
            device,
        )
    }
}

impl CamModel for Toy {
    fn name(&self) -> &str {
        "toy"
    }
    fn layers(&self) -> &[Layer] {
        &self.layers
    }
    fn default_layer(&self) -> &str {
        &self.layers.last().expect("conv and relu at least").name
    }
    fn preprocess(&self) -> Preprocess {
        Preprocess {
            size: self.spec.input,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
    fn num_classes(&self) -> usize {
        self.spec.head.last().map_or(0, |l| l.shape[1])
    }
}

impl Staged for Toy {
    fn forward_stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for stage in range {
            x = match stage {
                0 => self.conv.forward(x),
                1 => relu(x),
                _ => self.pool.forward(x),
            };
        }
        x
    }
    fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        let mut x = features.flatten(1, 3);
        for (i, linear) in self.head.iter().enumerate() {
            if i > 0 {
                x = relu(x);
            }
            x = linear.forward(x);
        }
        x
    }
}
