//! `gradcam::kernels` against burn's own operations on flex, over a grid of shapes: values,
//! input gradients, and weight and bias gradients. Where a kernel does not apply (dilation,
//! grouped convolutions, unusual pools) the dispatch falls back to burn's operation, and there
//! the results must be burn's exactly.

use burn::backend::ops::ConvOptions;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::{Device, Distribution, Tensor};
use gradcam::kernels::guided_relu::guided_relu;
use gradcam::kernels::{self, GuidedReluGuard};

fn random<const D: usize>(shape: [usize; D]) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
}

/// The largest absolute difference between `ours` and burn's `theirs`, relative to the largest
/// magnitude of `theirs` (float32 rounding grows with the values), or to 1 if that is smaller.
fn max_diff<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>) -> f32 {
    assert_eq!(ours.dims(), theirs.dims(), "shapes differ");
    let scalar = |t: Tensor<1>| t.into_data().iter::<f32>().next().unwrap();
    let scale = scalar(theirs.clone().abs().max()).max(1.0);
    scalar((ours - theirs).abs().max()) / scale
}

/// The largest of each name's differences over a grid, with the case where it occurred.
#[derive(Default)]
struct Worst(Vec<(&'static str, f32, String)>);

impl Worst {
    fn record(&mut self, name: &'static str, diff: f32, case: &str) {
        assert!(!diff.is_nan(), "{name}: NaN difference at {case}");
        match self.0.iter_mut().find(|(n, ..)| *n == name) {
            Some(entry) if diff > entry.1 => *entry = (name, diff, case.to_string()),
            Some(_) => {}
            None => self.0.push((name, diff, case.to_string())),
        }
    }

    /// Prints every maximum (`--nocapture` shows them) and checks it against its bound.
    fn check(&self, bound: impl Fn(&str) -> f32) {
        for (name, diff, case) in &self.0 {
            println!("{name}: max relative diff {diff:e} at {case}");
            assert!(*diff <= bound(name), "{name}: {diff:e} at {case}");
        }
    }
}

/// `(y, dx, dw, db)` of `y = conv(x, w, b)` under the loss `sum(y * c)`.
fn conv_and_gradients(
    conv: &dyn Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
    x: &Tensor<4>,
    w: &Tensor<4>,
    b: &Option<Tensor<1>>,
    c: &Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>, Option<Tensor<1>>) {
    let y = conv(x.clone(), w.clone(), b.clone());
    let x = x.clone().autodiff().require_grad();
    let w = w.clone().autodiff().require_grad();
    let b = b.clone().map(|b| b.autodiff().require_grad());
    let grads = (conv(x.clone(), w.clone(), b.clone()) * c.clone().autodiff())
        .sum()
        .backward();
    let db = b.map(|b| b.grad(&grads).unwrap());
    (y, x.grad(&grads).unwrap(), w.grad(&grads).unwrap(), db)
}

/// TensorFlow's "SAME" padding of one axis: `(before, after)`, the smaller half before.
fn tf_same(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let total = ((n.div_ceil(stride) - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// A grid case's padding: `pad` on every side, or TF-SAME's (`None`); `None` when the padded
/// input is smaller than the kernel's reach, a case the grid skips.
fn grid_padding(
    pad: Option<usize>,
    [h, w]: [usize; 2],
    k: usize,
    stride: usize,
    dilation: usize,
) -> Option<[(usize, usize); 2]> {
    let reach = dilation * (k - 1) + 1;
    let padding = match pad {
        Some(p) => [(p, p), (p, p)],
        None => [tf_same(h, reach, stride), tf_same(w, reach, stride)],
    };
    let fits = h + padding[0].0 + padding[0].1 >= reach && w + padding[1].0 + padding[1].1 >= reach;
    fits.then_some(padding)
}

/// Which convolutions of the grid: `(name, channels in, channels out, groups)`.
const KINDS: [(&str, usize, usize, usize); 3] = [
    ("dense", 4, 6, 1),
    ("depthwise", 6, 6, 6),
    ("grouped", 6, 4, 2),
];

/// Every kind of convolution x kernel 1/3/5/7 x stride 1/2 x padding 0/1/2/TF-SAME x dilation
/// 1/2 x batch 1/3 x sizes 7x9 and 13x11, with and without bias, against burn's conv2d.
/// Dilation 2 and grouped convolutions go to burn's operation: there the values must be equal. Weight and bias gradients are always burn's.
#[test]
fn conv2d_matches_burn_over_a_grid_of_shapes() {
    let mut worst = Worst::default();
    for (kind, cin, cout, groups) in KINDS {
        for (k, stride, pad, dilation, batch, [h, w]) in grid() {
            let Some(padding) = grid_padding(pad, [h, w], k, stride, dilation) else {
                continue;
            };
            let bias = (k + stride + batch) % 2 == 0;
            let case = format!(
                "{kind} k{k} s{stride} pad {padding:?} d{dilation} batch {batch} {h}x{w} bias {bias}"
            );
            let options =
                ConvOptions::new_with_padding([stride; 2], padding, [dilation; 2], groups);
            let x = random([batch, cin, h, w]);
            let weight = random([cout, cin / groups, k, k]);
            let b = bias.then(|| random([cout]));
            let ours = |x, w, b| kernels::conv2d_with(x, w, b, options.clone());
            let theirs = |x, w, b| burn_conv2d(x, w, b, options.clone());
            let c = random(theirs(x.clone(), weight.clone(), b.clone()).dims());
            let (y, dx, dw, db) = conv_and_gradients(&ours, &x, &weight, &b, &c);
            let (y_, dx_, dw_, db_) = conv_and_gradients(&theirs, &x, &weight, &b, &c);
            let fallback = dilation != 1 || kind == "grouped";
            worst.record(label(kind, "y", fallback), max_diff(y, y_), &case);
            worst.record(label(kind, "dx", fallback), max_diff(dx, dx_), &case);
            worst.record("dw", max_diff(dw, dw_), &case);
            if let (Some(db), Some(db_)) = (db, db_) {
                worst.record("db", max_diff(db, db_), &case);
            }
        }
    }
    worst.check(|name| match name {
        // Measured up to 4.5e-7 (dense y) and 4.0e-7 (depthwise dx); 0 for the other two.
        "dense y" | "dense dx" | "depthwise y" | "depthwise dx" => 1.5e-6,
        _ => 0.0,
    });
}

/// The name a difference is kept under: burn's own operation (`fallback`) must match exactly.
fn label(kind: &str, what: &str, fallback: bool) -> &'static str {
    match (fallback, kind, what) {
        (true, _, "y") => "fallback y",
        (true, ..) => "fallback dx",
        (false, "dense", "y") => "dense y",
        (false, "dense", _) => "dense dx",
        (false, _, "y") => "depthwise y",
        _ => "depthwise dx",
    }
}

/// `(kernel, stride, padding (None: TF-SAME), dilation, batch, [height, width])`.
fn grid() -> impl Iterator<Item = (usize, usize, Option<usize>, usize, usize, [usize; 2])> {
    let mut cases = Vec::new();
    for k in [1, 3, 5, 7] {
        for stride in [1, 2] {
            for pad in [Some(0), Some(1), Some(2), None] {
                for dilation in [1, 2] {
                    for batch in [1, 3] {
                        for size in [[7, 9], [13, 11]] {
                            cases.push((k, stride, pad, dilation, batch, size));
                        }
                    }
                }
            }
        }
    }
    cases.into_iter()
}

/// Shapes the grid does not reach: several im2col tiles per image (64 and 32 channels at
/// 40x40 and 100x100), ResNet's 7x7 stem, padding wider than the kernel reaches.
#[test]
fn dense_conv2d_matches_burn_over_several_tiles() {
    let mut worst = Worst::default();
    // (channels in, out, kernel, stride, padding, size, batch)
    for (cin, cout, k, stride, p, size, batch) in [
        (64, 4, 3, 1, 1, 40, 1),
        (64, 4, 3, 1, 1, 40, 3),
        (32, 4, 3, 2, 1, 100, 1),
        (3, 8, 7, 2, 3, 33, 3),
        (3, 2, 3, 1, 4, 2, 1),
    ] {
        let case = format!("{cin}->{cout} k{k} s{stride} p{p} {size}x{size} batch {batch}");
        let options = ConvOptions::new([stride; 2], [p; 2], [1, 1], 1);
        let x = random([batch, cin, size, size]);
        let weight = random([cout, cin, k, k]);
        let b = Some(random([cout]));
        let ours = |x, w, b| kernels::conv2d_with(x, w, b, options.clone());
        let theirs = |x, w, b| burn_conv2d(x, w, b, options.clone());
        let c = random(theirs(x.clone(), weight.clone(), b.clone()).dims());
        let (y, dx, ..) = conv_and_gradients(&ours, &x, &weight, &b, &c);
        let (y_, dx_, ..) = conv_and_gradients(&theirs, &x, &weight, &b, &c);
        worst.record("y", max_diff(y, y_), &case);
        worst.record("dx", max_diff(dx, dx_), &case);
    }
    // Measured up to 7.7e-7 (y) and 1.4e-7 (dx).
    worst.check(|name| if name == "y" { 2e-6 } else { 5e-7 });
}

/// [`kernels::conv2d`] reads the module's padding as burn does: "valid", explicit (asymmetric
/// too), and "same", which goes to burn's own forward.
#[test]
fn conv2d_of_a_module_reads_its_padding_as_burn() {
    let mut worst = Worst::default();
    for (padding, exact) in [
        (PaddingConfig2d::Valid, false),
        (PaddingConfig2d::Explicit(0, 1, 2, 3), false),
        (PaddingConfig2d::Same, true),
    ] {
        let conv = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(padding.clone())
            .init(&Device::flex());
        let x = random([2, 3, 7, 9]);
        let diff = max_diff(kernels::conv2d(&conv, x.clone()), conv.forward(x));
        worst.record(
            if exact { "same" } else { "fixed" },
            diff,
            &format!("{padding:?}"),
        );
    }
    // Measured 2.4e-7 for the fixed paddings.
    worst.check(|name| if name == "same" { 0.0 } else { 1e-6 });
}

/// Max pooling: kernel 1/2/3/5 x stride 1/2/3 x padding 0/1/2 (at most half the kernel) x batch
/// 1/3 x sizes 7x9 and 13x11, and the pools that go to burn's (dilation, ceil rounding,
/// asymmetric padding). A maximum has no rounding, so the values are burn's exactly, and so
/// is the input gradient (burn's backward).
#[test]
fn max_pool2d_matches_burn() {
    let mut worst = Worst::default();
    let mut pools = Vec::new();
    for k in [1, 2, 3, 5] {
        for stride in [1, 2, 3] {
            for p in (0..=2).filter(|&p| p <= k / 2) {
                pools.push(
                    MaxPool2dConfig::new([k, k])
                        .with_strides([stride; 2])
                        .with_padding(PaddingConfig2d::Explicit(p, p, p, p)),
                );
            }
        }
    }
    let fallbacks = [
        MaxPool2dConfig::new([3, 3]).with_dilation([2, 2]),
        MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_ceil_mode(true),
        MaxPool2dConfig::new([3, 3]).with_padding(PaddingConfig2d::Explicit(0, 1, 1, 0)),
    ];
    for config in pools.into_iter().chain(fallbacks) {
        let pool = config.init();
        for batch in [1, 3] {
            for [h, w] in [[7, 9], [13, 11]] {
                let case = format!("{pool:?} batch {batch} {h}x{w}");
                let x = random([batch, 3, h, w]);
                let y = kernels::max_pool2d(&pool, x.clone());
                worst.record("y", max_diff(y.clone(), pool.forward(x.clone())), &case);
                let c = random(y.dims());
                let gradient = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                    let leaf = x.clone().autodiff().require_grad();
                    let grads = (f(leaf.clone()) * c.clone().autodiff()).sum().backward();
                    leaf.grad(&grads).unwrap()
                };
                let ours = gradient(&|x| kernels::max_pool2d(&pool, x));
                worst.record("dx", max_diff(ours, gradient(&|x| pool.forward(x))), &case);
            }
        }
    }
    worst.check(|_| 0.0);
}

#[test]
fn max_pool2d_propagates_nan_as_pytorch() {
    let pool = MaxPool2dConfig::new([2, 2]).init();
    let x =
        Tensor::<1>::from_floats([1.0, f32::NAN, 3.0, 4.0], &Device::flex()).reshape([1, 1, 2, 2]);
    let y: Vec<f32> = kernels::max_pool2d(&pool, x)
        .into_data()
        .iter::<f32>()
        .collect();
    assert!(y[0].is_nan(), "NaN propagates: {y:?}");
}

/// ReLU6 against burn's `clamp(x, 0, 6)`, values and gradient, on random values spread over
/// both ends (none exactly 0 or 6, where the two gradients differ on purpose).
#[test]
fn relu6_matches_burns_clamp() {
    let mut worst = Worst::default();
    for shape in [[1, 5, 7, 9], [3, 4, 13, 11]] {
        let x = random(shape) * 4.0 + 2.0;
        let c = random(shape);
        let gradient = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let leaf = x.clone().autodiff().require_grad();
            let grads = (f(leaf.clone()) * c.clone().autodiff()).sum().backward();
            leaf.grad(&grads).unwrap()
        };
        let case = format!("{shape:?}");
        let theirs = |x: Tensor<4>| x.clamp(0.0, 6.0);
        worst.record(
            "y",
            max_diff(kernels::relu6(x.clone()), theirs(x.clone())),
            &case,
        );
        worst.record(
            "dx",
            max_diff(gradient(&kernels::relu6), gradient(&theirs)),
            &case,
        );
    }
    worst.check(|_| 0.0);
}

#[test]
fn relu6_gradient_is_zero_outside_its_linear_range() {
    let x = Tensor::<1>::from_floats([-1.0, 0.0, 0.5, 3.0, 6.0, 7.0], &Device::flex());
    let leaf = x.autodiff().require_grad();
    let y = kernels::relu6(leaf.clone());
    let values: Vec<f32> = y.clone().into_data().iter::<f32>().collect();
    assert_eq!(values, [0.0, 0.0, 0.5, 3.0, 6.0, 6.0]);
    let c = Tensor::<1>::from_floats([1.0, 2.0, -3.0, 4.0, 5.0, 6.0], &Device::flex());
    let grads = (y * c.autodiff()).sum().backward();
    let grad: Vec<f32> = leaf
        .grad(&grads)
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    assert_eq!(grad, [0.0, 0.0, -3.0, 4.0, 0.0, 0.0]);
}

/// The guided ReLU against burn's relu forward, and against its rule built from burn's
/// operations backward: `dy * [x > 0] * [dy > 0]`.
#[test]
fn guided_relu_matches_its_rule_on_burns_operations() {
    let mut worst = Worst::default();
    for shape in [[1, 5, 7, 9], [3, 4, 13, 11]] {
        let (x, dy) = (random(shape), random(shape));
        let case = format!("{shape:?}");
        worst.record(
            "y",
            max_diff(guided_relu(x.clone()), relu(x.clone())),
            &case,
        );
        let leaf = x.clone().autodiff().require_grad();
        let grads = {
            let _guided = GuidedReluGuard::enable();
            (kernels::guided_relu::relu(leaf.clone()) * dy.clone().autodiff())
                .sum()
                .backward()
        };
        let rule = dy.clone().mask_fill(x.lower_equal_elem(0.0), 0.0);
        let rule = rule.clone().mask_fill(dy.lower_equal_elem(0.0), 0.0);
        worst.record("dx", max_diff(leaf.grad(&grads).unwrap(), rule), &case);
    }
    worst.check(|_| 0.0);
}

/// The activation fused into the convolution's epilogue (`conv2d_act_with`) over the grid of
/// shapes, always with a bias: equal to our unfused convolution followed by burn's `relu` or
/// our ReLU6, on plain tensors (the fused pass) and, value and input gradient, on autodiff
/// tensors (two recorded operations); within the convolution's tolerance of burn's whole chain.
#[test]
fn fused_activation_matches_the_unfused_chain_over_a_grid_of_shapes() {
    use kernels::Activation;
    let mut worst = Worst::default();
    for (kind, cin, cout, groups) in KINDS {
        for (k, stride, pad, dilation, batch, [h, w]) in grid() {
            let Some(padding) = grid_padding(pad, [h, w], k, stride, dilation) else {
                continue;
            };
            let options =
                ConvOptions::new_with_padding([stride; 2], padding, [dilation; 2], groups);
            // Scaled so that a good share of the outputs lies above 6 too.
            let x = random([batch, cin, h, w]) * 3.0;
            let weight = random([cout, cin / groups, k, k]);
            let b = Some(random([cout]));
            for act in [Activation::Identity, Activation::Relu, Activation::Relu6] {
                let case = format!(
                    "{kind} {act:?} k{k} s{stride} pad {padding:?} d{dilation} batch {batch} {h}x{w}"
                );
                let fused = |x, w, b| kernels::conv2d_act_with(x, w, b, options.clone(), act);
                let apply = |y: Tensor<4>| match act {
                    Activation::Identity => y,
                    Activation::Relu => relu(y),
                    Activation::Relu6 => kernels::relu6(y),
                };
                let unfused = |x, w, b| apply(kernels::conv2d_with(x, w, b, options.clone()));
                let burns = |x, w, b| match act {
                    Activation::Relu6 => burn_conv2d(x, w, b, options.clone()).clamp(0.0, 6.0),
                    _ => apply(burn_conv2d(x, w, b, options.clone())),
                };
                let c = random(unfused(x.clone(), weight.clone(), b.clone()).dims());
                let (y, dx, _, _) = conv_and_gradients(&fused, &x, &weight, &b, &c);
                let (y_, dx_, _, _) = conv_and_gradients(&unfused, &x, &weight, &b, &c);
                let y_burn = burns(x.clone(), weight.clone(), b.clone());
                // Relative to the convolution's own largest value (the clamp hides it), as
                // the grid above measures the convolution's rounding.
                let raw = burn_conv2d(x.clone(), weight.clone(), b.clone(), options.clone());
                let scalar = |t: Tensor<1>| t.into_data().iter::<f32>().next().unwrap();
                let scale = scalar(raw.abs().max()).max(1.0);
                let against_burn = scalar((y.clone() - y_burn).abs().max()) / scale;
                worst.record("fused y", max_diff(y, y_), &case);
                worst.record("fused dx", max_diff(dx, dx_), &case);
                worst.record("fused y against burn", against_burn, &case);
            }
        }
    }
    worst.check(|name| match name {
        // Measured 3.3e-7; the bound of the convolution grid above.
        "fused y against burn" => 1.5e-6,
        _ => 0.0,
    });
}

/// The fused epilogue on shapes with several im2col tiles per image, ResNet's 7x7 stem and a
/// 1x1 convolution at stride 1 (one product), batch 1 (split over threads) and 2: equal to the
/// unfused chain.
#[test]
fn fused_activation_over_several_tiles_equals_the_unfused_chain() {
    use kernels::Activation;
    let mut worst = Worst::default();
    for (cin, cout, k, stride, pad, [h, w]) in [
        (64, 64, 3, 1, 1, [100, 100]),
        (32, 48, 3, 2, 1, [40, 40]),
        (3, 64, 7, 2, 3, [112, 112]),
        (64, 256, 1, 1, 0, [56, 56]),
    ] {
        for batch in [1, 2] {
            for act in [Activation::Relu, Activation::Relu6] {
                let case = format!("{act:?} {cin}->{cout} k{k} s{stride} {h}x{w} batch {batch}");
                let options =
                    ConvOptions::new_with_padding([stride; 2], [(pad, pad); 2], [1, 1], 1);
                let x = random([batch, cin, h, w]);
                let weight = random([cout, cin, k, k]) * 0.2;
                let b = Some(random([cout]));
                let y = kernels::conv2d_act_with(
                    x.clone(),
                    weight.clone(),
                    b.clone(),
                    options.clone(),
                    act,
                );
                let y_ = kernels::conv2d_with(x, weight, b, options);
                let y_ = match act {
                    Activation::Relu => relu(y_),
                    _ => kernels::relu6(y_),
                };
                worst.record("fused y", max_diff(y, y_), &case);
            }
        }
    }
    worst.check(|_| 0.0);
}

/// The paddings of the Winograd grid: 1, 0, 2 and asymmetric.
const WINOGRAD_PADDINGS: [[(usize, usize); 2]; 4] = [
    [(1, 1), (1, 1)],
    [(0, 0), (0, 0)],
    [(2, 2), (2, 2)],
    [(0, 1), (1, 0)],
];

/// Stride-1 3x3 convolutions with at least 16 channels each way, which go through Winograd's
/// F(2x2, 3x3) or, from 28 outputs each way, F(4x4, 3x3): values against burn's direct
/// convolution over odd and even sizes (partial edge tiles), paddings 0, 1, 2 and asymmetric, sizes of one tile and below, batch 1 (split
/// over threads) and 3, several blocks of tiles per image (64 and 128 channels at 58x58 and
/// 100x100), wide ones of few tiles (ResNet's last stages; under 32 tiles, as 7x7 and 8x8
/// maps have, the products run transposed), with and without bias, every
/// fused activation; the convolution's input gradient
/// (the dense kernel's, unchanged) too. Reusing a weight (its transform is kept) gives the same values.
#[test]
fn winograd_conv3x3_matches_burn_over_a_grid_of_shapes() {
    use kernels::Activation;
    let mut worst = Worst::default();
    let mut cases = Vec::new();
    for (cin, cout) in [(16, 16), (24, 40), (64, 16)] {
        for [h, w] in [[7, 9], [8, 8], [13, 11], [2, 2], [1, 3], [4, 5]] {
            for pad in WINOGRAD_PADDINGS {
                for batch in [1, 3] {
                    cases.push((cin, cout, [h, w], pad, batch));
                }
            }
        }
    }
    // F(4x4, 3x3) from 28 outputs each way: partial edge tiles, every padding, batches of one
    // and of three, several blocks of tiles.
    for (cin, cout, [h, w]) in [(16, 24, [29, 31]), (24, 16, [28, 28]), (32, 32, [33, 46])] {
        for pad in WINOGRAD_PADDINGS {
            for batch in [1, 3] {
                cases.push((cin, cout, [h + 2, w + 2], pad, batch));
            }
        }
    }
    cases.push((64, 64, [58, 58], [(1, 1), (1, 1)], 1));
    cases.push((128, 32, [100, 100], [(1, 1), (1, 1)], 2));
    // Wide convolutions of few tiles, as in ResNet's last stages.
    cases.push((256, 96, [7, 7], [(1, 1), (1, 1)], 1));
    cases.push((96, 160, [14, 14], [(1, 1), (1, 1)], 2));
    for (i, (cin, cout, [h, w], padding, batch)) in cases.into_iter().enumerate() {
        if h + padding[0].0 + padding[0].1 < 3 || w + padding[1].0 + padding[1].1 < 3 {
            continue;
        }
        let act = [Activation::Identity, Activation::Relu, Activation::Relu6][i % 3];
        let bias = i % 2 == 0;
        let case =
            format!("{cin}->{cout} {h}x{w} pad {padding:?} batch {batch} {act:?} bias {bias}");
        let options = ConvOptions::new_with_padding([1, 1], padding, [1, 1], 1);
        let x = random([batch, cin, h, w]) * 3.0;
        let weight = random([cout, cin, 3, 3]) * (1.0 / (cin as f32 * 9.0).sqrt());
        let b = bias.then(|| random([cout]));
        let apply = |y: Tensor<4>| match act {
            Activation::Identity => y,
            Activation::Relu => relu(y),
            Activation::Relu6 => y.clamp(0.0, 6.0),
        };
        let ours = |x, w, b| kernels::conv2d_act_with(x, w, b, options.clone(), act);
        let direct = |x, w, b| apply(burn_conv2d(x, w, b, options.clone()));
        let y = ours(x.clone(), weight.clone(), b.clone());
        let y_ = direct(x.clone(), weight.clone(), b.clone());
        // The input gradient of the convolution alone: through a rectifier, an output within
        // rounding of 0 can fall on the other side of the kink and flip its whole gradient.
        let conv = |x, w, b| kernels::conv2d_with(x, w, b, options.clone());
        let conv_ = |x, w, b| burn_conv2d(x, w, b, options.clone());
        let c = random(y_.dims());
        let (_, dx, ..) = conv_and_gradients(&conv, &x, &weight, &b, &c);
        let (_, dx_, ..) = conv_and_gradients(&conv_, &x, &weight, &b, &c);
        let again = ours(x.clone(), weight.clone(), b.clone());
        worst.record("reused weight", max_diff(again, y.clone()), &case);
        let [_, _, oh, ow] = y_.dims();
        let variant = match oh.min(ow) >= 28 {
            true => "y F(4x4)",
            false => "y F(2x2)",
        };
        worst.record(variant, max_diff(y, y_), &case);
        worst.record("dx", max_diff(dx, dx_), &case);
    }
    worst.check(|name| match name {
        "reused weight" => 0.0,
        // Measured up to 1.3e-6 (F(2x2); the dense kernel's grid: 4.5e-7), 1.2e-5 (F(4x4))
        // and 1.7e-7 (dx).
        "y F(2x2)" => 3e-6,
        "y F(4x4)" => 1.6e-5,
        _ => 5e-7,
    });
}

/// The residual add fused into the convolution's epilogue (`conv2d_add_act_with`, a ResNet
/// block's last convolution) over the grid of shapes, the Winograd shapes and shapes of
/// several im2col tiles, every activation: within rounding of burn's whole chain
/// `act(conv2d(x, w, b) + r)` (the dense kernel adds the residual before the products, so its
/// sums round in another order; Winograd's output transform adds it after, as the unfused
/// chain does). A residual the caller still holds is left as it was; one broadcast over the
/// output goes through burn's add; on autodiff tensors the value and the gradients of `x` and
/// of the residual equal those of the unfused chain.
#[test]
fn fused_residual_add_matches_the_unfused_chain() {
    use kernels::Activation;
    let mut cases = Vec::new();
    for (kind, cin, cout, groups) in KINDS {
        for (k, stride, pad, dilation, batch, [h, w]) in grid() {
            if let Some(padding) = grid_padding(pad, [h, w], k, stride, dilation) {
                let options =
                    ConvOptions::new_with_padding([stride; 2], padding, [dilation; 2], groups);
                cases.push((kind, [cin, cout, k, batch, h, w], options));
            }
        }
    }
    for (cin, cout, k, stride, pad, [h, w], batch) in [
        (16, 16, 3, 1, 1, [7, 9], 1),
        (24, 40, 3, 1, 0, [13, 11], 3),
        (64, 64, 3, 1, 1, [58, 58], 1),
        (64, 64, 3, 1, 1, [100, 100], 2),
        (32, 48, 3, 2, 1, [40, 40], 1),
        (64, 256, 1, 1, 0, [56, 56], 1),
        (64, 256, 1, 1, 0, [56, 56], 2),
        (512, 2048, 1, 1, 0, [7, 7], 2),
    ] {
        let options = ConvOptions::new_with_padding([stride; 2], [(pad, pad); 2], [1, 1], 1);
        cases.push(("wide", [cin, cout, k, batch, h, w], options));
    }
    let mut worst = Worst::default();
    for (i, (kind, [cin, cout, k, batch, h, w], options)) in cases.into_iter().enumerate() {
        let act = [Activation::Identity, Activation::Relu, Activation::Relu6][i % 3];
        let groups = options.groups;
        let case = format!("{kind} {cin}->{cout} k{k} {options:?} batch {batch} {h}x{w} {act:?}");
        let x = random([batch, cin, h, w]) * 3.0;
        let weight =
            random([cout, cin / groups, k, k]) * (1.0 / ((cin / groups * k * k) as f32).sqrt());
        let b = Some(random([cout]));
        let apply = |y: Tensor<4>| match act {
            Activation::Identity => y,
            Activation::Relu => relu(y),
            Activation::Relu6 => y.clamp(0.0, 6.0),
        };
        let raw = burn_conv2d(x.clone(), weight.clone(), b.clone(), options.clone());
        // Winograd's F(4x4, 3x3) rounds more than the other kernels (its bound below).
        let [_, _, oh, ow] = raw.dims();
        let f4x4 = k == 3 && options.stride == [1, 1] && cin.min(cout) >= 16 && oh.min(ow) >= 28;
        let key = |name: &'static str, f4x4_name: &'static str| match f4x4 {
            true => f4x4_name,
            false => name,
        };
        let r = random(raw.dims()) * 3.0;
        let sum = raw + r.clone();
        let scalar = |t: Tensor<1>| t.into_data().iter::<f32>().next().unwrap();
        let scale = scalar(sum.clone().abs().max()).max(1.0);
        let want = apply(sum);
        // The residual is still held here (`r`): the kernel must copy it, not write over it.
        let kept = r.clone().into_data();
        let fused = |x, w, b, r| kernels::conv2d_add_act_with(x, w, b, r, options.clone(), act);
        let got = fused(x.clone(), weight.clone(), b.clone(), r.clone());
        worst.record(
            key("y against burn", "y against burn, F(4x4)"),
            scalar((got - want.clone()).abs().max()) / scale,
            &case,
        );
        assert_eq!(
            r.clone().into_data(),
            kept,
            "{case}: the held residual changed"
        );
        // Given away (the model's case), the residual's buffer may become the output.
        let copy = Tensor::<4>::from_data(kept.clone(), &Device::flex());
        let got = fused(x.clone(), weight.clone(), b.clone(), copy);
        worst.record(
            key("y, residual given away", "y, residual given away, F(4x4)"),
            scalar((got - want).abs().max()) / scale,
            &case,
        );
        if i % 7 == 0 {
            // Broadcast over the batch and the positions: burn's add after our convolution.
            let r1 = random([1, cout, 1, 1]);
            let got = fused(x.clone(), weight.clone(), b.clone(), r1.clone());
            let unfused = apply(
                kernels::conv2d_with(x.clone(), weight.clone(), b.clone(), options.clone()) + r1,
            );
            worst.record("broadcast residual", max_diff(got, unfused), &case);
        }
        if i % 5 == 0 {
            let grads_of = |fuse: bool| {
                let xa = x.clone().autodiff().require_grad();
                let ra = r.clone().autodiff().require_grad();
                let (wa, ba) = (weight.clone().autodiff(), b.clone().map(|b| b.autodiff()));
                let y = if fuse {
                    fused(xa.clone(), wa, ba, ra.clone())
                } else {
                    let y = kernels::conv2d_with(xa.clone(), wa, ba, options.clone()) + ra.clone();
                    match act {
                        Activation::Identity => y,
                        Activation::Relu => relu(y),
                        Activation::Relu6 => kernels::relu6(y),
                    }
                };
                let c = Tensor::<4>::ones(y.dims(), &Device::flex()).autodiff();
                let grads = (y.clone() * c).sum().backward();
                (
                    y.inner(),
                    xa.grad(&grads).unwrap(),
                    ra.grad(&grads).unwrap(),
                )
            };
            let ((y, dx, dr), (y_, dx_, dr_)) = (grads_of(true), grads_of(false));
            worst.record("autodiff y, dx, dr", max_diff(y, y_), &case);
            worst.record("autodiff y, dx, dr", max_diff(dx, dx_), &case);
            worst.record("autodiff y, dx, dr", max_diff(dr, dr_), &case);
        }
    }
    worst.check(|name| match name {
        // Measured up to 5.6e-7 and 5.9e-6 (F(4x4)); the bounds of the convolution grids above.
        "y against burn" | "y, residual given away" => 1.5e-6,
        "y against burn, F(4x4)" | "y, residual given away, F(4x4)" => 1.6e-5,
        _ => 0.0,
    });
}
