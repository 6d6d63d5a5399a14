//! Deep Feature Factorization's pictures against pytorch-grad-cam 1.5.7's
//! `show_factorization_on_image` and matplotlib's colours (tests/fixtures/dff, made by
//! tools/make_dff_picture_fixtures.py), and how the rest of the library treats its method row.

mod common;

use std::sync::Arc;

use common::{npy, small_model};
use gradcam::cam::method_info;
use gradcam::concepts::ConceptExplainer;
use gradcam::explain::{Classes, Explainer};
use gradcam::image::{RgbImage, concept_colors, show_factorization};

#[test]
fn colors_are_pytorch_grad_cams_defaults() {
    for k in 1..=7 {
        let (want, shape) = npy(&format!("dff/colors.k{k}.npy"));
        assert_eq!(shape, [k, 3]);
        let got: Vec<f32> = concept_colors(k)
            .iter()
            .flat_map(|c| c.map(f32::from))
            .collect();
        assert_eq!(got, want, "{k} concepts");
    }
}

/// The combined picture, byte for byte: pytorch-grad-cam's goes through OpenCV's 8-bit HSV and
/// back to scale each colour by its map, and so do we (a colour-times-value shortcut was up to
/// 2 levels off in 213 of these 720 bytes).
#[test]
fn the_combined_picture_matches_show_factorization_on_image() {
    let (pixels, shape) = npy("dff/picture.image.npy");
    let (h, w) = (shape[0], shape[1]);
    let image = RgbImage::from_raw(
        w as u32,
        h as u32,
        pixels.iter().map(|&v| v as u8).collect(),
    )
    .unwrap();
    let (maps, shape) = npy("dff/picture.maps.npy");
    let k = shape[0];
    let maps: Vec<Vec<f32>> = maps.chunks(h * w).map(<[f32]>::to_vec).collect();
    let got = show_factorization(&image, &maps, &concept_colors(k), 0.3).unwrap();
    let (want, _) = npy("dff/picture.w03.npy");
    let diffs: Vec<i32> = got
        .as_raw()
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .collect();
    let max = diffs.iter().copied().max().unwrap();
    let off = diffs.iter().filter(|&&d| d > 0).count();
    println!(
        "show_factorization: max diff {max} levels, {off} of {} bytes differ",
        diffs.len()
    );
    assert_eq!(max, 0, "{off} bytes differ");
    // The tied pixels (first row, first four) take the first concept's colour, as argmax.
    assert_eq!(
        &got.as_raw()[..12],
        &want[..12].iter().map(|&v| v as u8).collect::<Vec<_>>()[..]
    );
}

/// The map pipeline refuses DFF with a message that says where it runs; the concept path
/// takes it.
#[test]
fn the_map_pipeline_sends_dff_to_its_own_path() {
    let row = method_info("dff").unwrap();
    assert_eq!(row.name, "deepfeaturefactorization");
    assert!(row.finds_concepts() && !row.uses_gradients());
    assert!(!method_info("gradcam").unwrap().finds_concepts());
    let model: Arc<dyn gradcam::model::CamModel> = small_model("resnet_small").into();
    let explainer = Explainer::new(
        model.clone(),
        "deepfeaturefactorization",
        vec![],
        Default::default(),
    )
    .unwrap();
    let image = RgbImage::new(32, 32);
    let err = explainer
        .explain(std::slice::from_ref(&image), &Classes::Top(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("finds concepts shared by the images, not a map per class"),
        "{err}"
    );
    let e = ConceptExplainer::new(model, None, 2)
        .unwrap()
        .explain(&image)
        .unwrap();
    assert_eq!(e.concepts.len(), 2);
    assert!(
        e.concepts
            .iter()
            .all(|c| c.map.iter().all(|v| (0.0..=1.0).contains(v)))
    );
}

/// VGG's head is not GAP + linear: no classifier names the concepts.
#[test]
fn heads_without_a_linear_classifier_are_refused() {
    let vgg: Arc<dyn gradcam::model::CamModel> = small_model("vgg_small").into();
    let err = ConceptExplainer::new(vgg, None, 4)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("global average pooling then one linear layer"),
        "{err}"
    );
}

/// DFF on ONNX classifiers against pytorch-grad-cam on their PyTorch originals (fixtures by
/// tools/make_dff_onnx_fixtures.py): the two images of each fixture input factorized together,
/// the concepts scored through the graph's own GAP + linear tail.
#[test]
fn onnx_classifiers_match_pytorch_grad_cam() {
    for (name, layer) in [("resnet_like", "layer2"), ("depthwise_se", "dw2")] {
        let path = common::fixtures().join(format!("onnx/{name}.legacy.onnx"));
        let spec = gradcam::model::ModelSpec {
            name: path.display().to_string(),
            ..gradcam::model::ModelSpec::named("unused")
        };
        let model = spec.load(&burn::tensor::Device::flex()).unwrap();
        let input = common::tensor(&format!("onnx/{name}.input.npy"));
        let out =
            gradcam::cam::deep_feature_factorization(model.as_ref(), input, layer, 5).unwrap();
        let (maps, _) = npy(&format!("onnx/cams/{name}.dff.maps.npy"));
        let (concepts, _) = npy(&format!("onnx/cams/{name}.dff.concepts.npy"));
        let (scores, _) = npy(&format!("onnx/cams/{name}.dff.scores.npy"));
        let d_maps = common::max_abs_diff(&out.maps.concat().concat(), &maps);
        let d_concepts =
            common::max_abs_diff(&out.concepts, &concepts) / common::max_abs(&concepts);
        let d_scores =
            common::max_abs_diff(&out.scores.concat(), &scores) / common::max_abs(&scores);
        println!(
            "dff {name}: maps {d_maps:.2e}, concepts {d_concepts:.2e}, scores {d_scores:.2e} (relative), {} iterations",
            out.iterations
        );
        // Measured: at most 2.3e-6 (resnet_like's maps).
        assert!(d_maps <= 1e-5, "{name}: maps {d_maps}");
        assert!(
            d_concepts <= 1e-5 && d_scores <= 1e-5,
            "{name}: {d_concepts} {d_scores}"
        );
    }
}
