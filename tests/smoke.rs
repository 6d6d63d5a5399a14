//! Every method on every model family, as pytorch-grad-cam's `tests/test_run_all_models.py`:
//! random weights, two small images (64x64; Lite0 32x32), the default layer and one earlier layer, through
//! [`Explainer`]. Each explanation must have the input's shape, finite values, maps in [0, 1],
//! one raw map per layer at the layer's size, and explain the top-1 class of the logits.
//!
//! The parity of the numbers themselves is tests/methods.rs' job; this file proves that no
//! method x architecture pair panics, errs or produces garbage.

mod common;

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use common::vgg_config;
use common::wrapped::Wrapped;
use gradcam::cam::method_info;
use gradcam::explain::{Classes, Explainer};
use gradcam::image::{MAX_PIXELS, load, resize_bilinear};
use gradcam::model::{CamModel, EfficientNetLite, ResNetConfig};
use image::RgbImage;

/// The input side: every family but Lite0 cuts it down to 2x2 at its default layer, with
/// the earlier layers larger.
const SIZE: usize = 64;

/// Lite0's side: its head is then 1x1 (an edge case of its own), and ScoreCAM's 1280 masked
/// passes per image take 1.9 s here instead of 15.8 s at 64x64 (`-- --nocapture` prints each).
const LITE0_SIZE: usize = 32;

/// Every method of the library's table that makes maps, the input-gradient ones included
/// (DFF finds concepts instead: tests/dff_cli.rs and tests/methods.rs).
fn methods() -> Vec<&'static str> {
    gradcam::cam::METHODS
        .iter()
        .filter(|m| !m.finds_concepts())
        .map(|m| m.name)
        .collect()
}

/// The two test images, resized to the input size so that preprocessing only normalises.
fn images(size: usize) -> Vec<RgbImage> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    ["cat_dog.jpg", "both.png"]
        .iter()
        .map(|f| {
            let image = load(&root.join(f), MAX_PIXELS).unwrap();
            resize_bilinear(&image, size as u32, size as u32)
        })
        .collect()
}

/// The network input of `images` for `model`, normalised by hand (CHW, values in [0, 1]
/// minus the mean, over the std).
fn input(model: &dyn CamModel, images: &[RgbImage]) -> Tensor<4> {
    let p = model.preprocess();
    let (h, w) = p.size;
    let mut data = Vec::with_capacity(images.len() * 3 * h * w);
    for image in images {
        for c in 0..3 {
            data.extend(
                image
                    .pixels()
                    .map(|px| (px[c] as f32 / 255.0 - p.mean[c]) / p.std[c]),
            );
        }
    }
    Tensor::from_data(
        TensorData::new(data, [images.len(), 3, h, w]),
        &Device::flex(),
    )
}

/// The argmax and the logits of each image.
fn top1(model: &dyn CamModel, images: &[RgbImage]) -> Vec<(usize, Vec<f32>)> {
    let logits: Vec<f32> = model
        .forward(input(model, images))
        .unwrap()
        .into_data()
        .iter::<f32>()
        .collect();
    logits
        .chunks(model.num_classes())
        .map(|row| {
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            (best, row.to_vec())
        })
        .collect()
}

/// Runs every method at the default layer and at `earlier` on `size` x `size` images, checking
/// each explanation.
/// `model` must be `.valid()`, as the loaders leave it: otherwise its BatchNorms after the cut,
/// which run with autodiff, normalise with the batch's statistics and change the logits.
fn smoke(model: impl CamModel + 'static, size: usize, earlier: &str) {
    let model: Arc<dyn CamModel> = Arc::new(Wrapped::at_size(model, (size, size)));
    let images = images(size);
    let expected = top1(model.as_ref(), &images);
    // guided-backprop's images per layer choice and image, which guided-gradcam weights.
    let mut backprop: Vec<Vec<Vec<f32>>> = vec![Vec::new(); 2];
    for method in methods() {
        // 44,800 and 12,800 full passes per image on Lite0's 1280 channels (minutes here):
        // their parity tests run them on the small models.
        if model.name() == "efficientnet_lite0" && matches!(method, "sscam" | "iscam") {
            continue;
        }
        for (choice, layers) in [vec![], vec![earlier.to_string()]].into_iter().enumerate() {
            // Their passes do not depend on the layer's place: the default layer suffices.
            if choice > 0 && matches!(method, "sscam" | "iscam") {
                continue;
            }
            let case = format!("{} {method} at {layers:?}", model.name());
            // LeGrad needs a vision transformer's attention (tests/legrad.rs): the CNNs refuse
            // it before any image is read.
            if method == "legrad" {
                let err = Explainer::new(model.clone(), method, layers.clone(), Default::default())
                    .err()
                    .unwrap_or_else(|| panic!("{case}: no error"));
                assert!(
                    err.to_string()
                        .contains("LeGrad needs the attention of a vision transformer"),
                    "{case}: {err}"
                );
                continue;
            }
            let explainer =
                Explainer::new(model.clone(), method, layers.clone(), Default::default())
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
            let start = std::time::Instant::now();
            let explained = explainer.explain(&images, &Classes::Top(1));
            // CAM needs a GAP + linear head right after the layer; elsewhere, a clear error.
            let layer = layers.first().map_or(model.default_layer(), String::as_str);
            let index = model.layer_index(layer).unwrap();
            if method == "cam" && model.linear_classifier(index).is_none() {
                let err = explained
                    .err()
                    .unwrap_or_else(|| panic!("{case}: no error"));
                assert!(
                    err.to_string().contains("global average pooling"),
                    "{case}: {err}"
                );
                continue;
            }
            // KPCA-CAM refuses maps too large for its O(n^3) eigen solver.
            let [_, h, w] = model.layers()[index].output_shape((size, size));
            if method == "kpcacam" && h * w > gradcam::cam::KpcaCam::MAX_POSITIONS {
                let err = explained
                    .err()
                    .unwrap_or_else(|| panic!("{case}: no error"));
                assert!(err.to_string().contains("kernel PCA"), "{case}: {err}");
                continue;
            }
            let explanations = explained.unwrap_or_else(|e| panic!("{case}: {e}"));
            println!("{case}: {:.0} ms", start.elapsed().as_secs_f64() * 1e3);
            assert_eq!(explanations.len(), images.len(), "{case}");
            for (b, (e, (class, logits))) in explanations.iter().zip(&expected).enumerate() {
                assert_eq!(e.method, method, "{case}");
                assert_eq!(e.input_size, (size, size), "{case}");
                assert_eq!(e.top5[0].class, *class, "{case}: top-5 {:?}", e.top5);
                assert_eq!(e.explanations.len(), 1, "{case}");
                let m = &e.explanations[0];
                assert_eq!(m.class, Some(*class), "{case}: the top-1 is explained");
                let logit = logits[*class];
                assert!(
                    (m.score - logit).abs() <= 1e-4 * logit.abs().max(1.0),
                    "{case}: score {} for logit {logit}",
                    m.score
                );
                assert_eq!(m.map.len(), size * size, "{case}");
                assert!(
                    m.map.iter().all(|v| (0.0..=1.0).contains(v)),
                    "{case}: map outside [0, 1] (or NaN)"
                );
                // FullGrad's map comes from the whole network: it has no per-layer raw maps.
                let names = if method == "fullgrad" {
                    Vec::new()
                } else if layers.is_empty() {
                    vec![model.default_layer().to_string()]
                } else {
                    layers.clone()
                };
                assert_eq!(m.raw.len(), names.len(), "{case}");
                for (raw, name) in m.raw.iter().zip(&names) {
                    let index = model.layer_index(name).unwrap();
                    let [_, h, w] = model.layers()[index].output_shape((size, size));
                    assert_eq!((raw.height, raw.width), (h, w), "{case}: {name}");
                    assert_eq!(raw.maps.len(), 1, "{case}: one image per explanation");
                    assert_eq!(raw.maps[0].len(), h * w, "{case}: {name}");
                    assert!(raw.maps[0].iter().all(|v| v.is_finite()), "{case}: {name}");
                }
                match (method, &m.guided) {
                    (_, None) if method_info(method).unwrap().input_gradient.is_none() => {}
                    ("guided-backprop", Some(g)) => {
                        assert_eq!(g.len(), size * size * 3, "{case}");
                        assert!(g.iter().all(|v| v.is_finite()), "{case}");
                        assert!(g.iter().any(|&v| v != 0.0), "{case}: no input gradient");
                        backprop[choice].push(g.clone());
                    }
                    // Guided Grad-CAM is guided backprop times this Grad-CAM map, pixel by
                    // pixel (zero where the map is: random weights may zero all of it).
                    ("guided-gradcam", Some(g)) => {
                        let weighted: Vec<f32> = backprop[choice][b]
                            .chunks(3)
                            .zip(&m.map)
                            .flat_map(|(px, &v)| px.iter().map(move |c| c * v))
                            .collect();
                        assert_eq!(*g, weighted, "{case}");
                    }
                    (_, g) => panic!("{case}: guided image {:?}", g.as_ref().map(Vec::len)),
                }
            }
        }
    }
}

fn resnet(bottleneck: bool) -> ResNetConfig {
    ResNetConfig {
        name: format!("resnet_{}", if bottleneck { "bottleneck" } else { "basic" }),
        blocks: [1, 1, 1, 1],
        bottleneck,
        width: 8,
        num_classes: 10,
    }
}

#[test]
fn every_method_on_efficientnet_lite0() {
    smoke(
        EfficientNetLite::lite0(10, &Device::flex()).valid(),
        LITE0_SIZE,
        "blocks.10",
    );
}

#[test]
fn every_method_on_resnet_basic_blocks() {
    smoke(resnet(false).init(&Device::flex()).valid(), SIZE, "layer3");
}

#[test]
fn every_method_on_resnet_bottlenecks() {
    smoke(resnet(true).init(&Device::flex()).valid(), SIZE, "layer3");
}

#[test]
fn every_method_on_vgg() {
    // features: conv 8, relu, pool, conv 16, relu (4), pool, conv 32, relu, conv 32, relu (9).
    smoke(
        vgg_config("vgg").init(&Device::flex()).valid(),
        SIZE,
        "features.4",
    );
}

#[test]
fn every_method_on_vgg_with_batch_norm() {
    // With a BatchNorm after each conv the ReLUs are features.2, 6, 10 and 13.
    smoke(
        vgg_config("vgg_bn").init(&Device::flex()).valid(),
        SIZE,
        "features.6",
    );
}
