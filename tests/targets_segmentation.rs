//! Segmentation models (output (B, K, H, W)): `--class C` explains the sum of class C's logits
//! over its pixels, or over `--mask FILE.png` (no class: the classes with the most pixels), against pytorch-grad-cam 1.5.7's
//! `SemanticSegmentationTarget` (tests/fixtures/targets, made by tools/make_target_fixtures.py),
//! through the library, the binary and the server.

mod common;

use std::sync::Arc;

use ::image::{GrayImage, RgbImage};
use axum::http::StatusCode;
use common::multipart::multipart_request;
use common::run::{gradcam, root, scratch, stderr};
use common::{assert_first_maps_match, fixture_path, fixtures, npy};
use gradcam::explain::{Explainer, Explanation};
use gradcam::model::{CamModel, OnnxModel, OnnxOptions};
use gradcam::request::RequestSpec;
use tower::ServiceExt;

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("targets/manifest.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["seg_net"].clone()
}

fn seg_net() -> Arc<dyn CamModel> {
    Arc::new(
        OnnxModel::load(
            fixture_path("targets/seg_net.onnx").as_ref(),
            &OnnxOptions::default(),
        )
        .unwrap(),
    )
}

fn mask() -> Arc<GrayImage> {
    Arc::new(
        ::image::open(fixture_path("targets/seg_net.mask.png"))
            .unwrap()
            .to_luma8(),
    )
}

fn spec(mask: Option<Arc<GrayImage>>) -> RequestSpec {
    RequestSpec {
        layers: vec!["features".into()],
        classes: vec!["1".into()],
        mask,
        ..Default::default()
    }
}

fn explain(model: Arc<dyn CamModel>, spec: RequestSpec) -> gradcam::Result<Vec<Explanation>> {
    let request = spec.check(model.class_names(), 10)?;
    let explainer = Explainer::from_request(model, &request)?;
    let (data, shape) = npy("targets/seg_net.input.npy");
    let images = vec![RgbImage::new(shape[3] as u32, shape[2] as u32); shape[0]];
    explainer.explain_inputs(data, &images, &request.classes)
}

/// Checks the maps against fixture `file` and the scores against `scores`.
fn check(out: &[Explanation], file: &str, scores: &serde_json::Value) {
    assert_first_maps_match(out, &format!("targets/{file}"));
    for (e, s) in out.iter().zip(scores.as_array().unwrap()) {
        let m = &e.explanations[0];
        let s = s.as_f64().unwrap() as f32;
        assert_eq!(m.class, Some(1));
        assert!((m.score - s).abs() < 1e-4, "{file}: {} vs {s}", m.score);
    }
}

#[test]
fn the_class_pixels_match_semantic_segmentation_target() {
    let model = seg_net();
    assert_eq!(model.output_map(), Some([3, 16, 16]));
    assert_eq!(model.num_classes(), 3);
    let out = explain(model, spec(None)).unwrap();
    let m = manifest();
    check(&out, "seg_net.class1.npy", &m["scores"]);
    // `top5`: the classes by their share of the pixels.
    for (e, pixels) in out.iter().zip(m["pixels"].as_array().unwrap()) {
        let share = pixels.as_f64().unwrap() as f32 / 256.0;
        let class1 = e.top5.iter().find(|p| p.class == 1).unwrap();
        assert!((class1.probability - share).abs() < 1e-6, "{:?}", e.top5);
        let total: f32 = e.top5.iter().map(|p| p.probability).sum();
        assert!((total - 1.0).abs() < 1e-6, "{:?}", e.top5);
    }
}

/// Without a class, each image's classes are explained by their share of its pixels (the
/// order of its top-5); class 1's map is the same as when it is named.
#[test]
fn without_a_class_the_classes_with_the_most_pixels_are_explained() {
    let top3 = RequestSpec {
        classes: vec![],
        top_k: Some(3),
        ..spec(None)
    };
    let out = explain(seg_net(), top3).unwrap();
    let named = explain(seg_net(), spec(None)).unwrap();
    for (e, named) in out.iter().zip(&named) {
        let explained: Vec<_> = e.explanations.iter().map(|m| m.class).collect();
        let by_share: Vec<_> = e.top5.iter().map(|p| Some(p.class)).collect();
        assert_eq!(explained, by_share, "{:?}", e.top5);
        let shares: Vec<f32> = e.top5.iter().map(|p| p.probability).collect();
        assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
        let class1 = e.explanations.iter().find(|m| m.class == Some(1)).unwrap();
        assert_eq!(class1.map, named.explanations[0].map);
        assert_eq!(class1.score, named.explanations[0].score);
    }
    // The default is the top one.
    let default = RequestSpec {
        classes: vec![],
        ..spec(None)
    };
    let out = explain(seg_net(), default).unwrap();
    for e in &out {
        assert_eq!(e.explanations.len(), 1);
        assert_eq!(e.explanations[0].class, Some(e.top5[0].class));
    }
}

#[test]
fn a_mask_file_matches_semantic_segmentation_target() {
    let out = explain(seg_net(), spec(Some(mask()))).unwrap();
    check(&out, "seg_net.class1-mask.npy", &manifest()["mask_scores"]);
}

#[test]
fn segmentation_requests_are_checked_against_the_model() {
    let message = |model, spec| explain(model, spec).unwrap_err().to_string();
    let softmax = RequestSpec {
        target: Some("softmax".into()),
        ..spec(None)
    };
    assert!(message(seg_net(), softmax).starts_with("`target` (--target) of a segmentation model"));
    let blank = RequestSpec {
        mask: Some(Arc::new(GrayImage::new(8, 8))),
        ..spec(None)
    };
    assert_eq!(
        message(seg_net(), blank),
        "`mask` (--mask) has no light pixel at the output's 16x16: nothing to explain"
    );
    let classifier: Arc<dyn CamModel> = Arc::new(
        OnnxModel::load(
            fixture_path("targets/binary_net.onnx").as_ref(),
            &OnnxOptions::default(),
        )
        .unwrap(),
    );
    let masked = RequestSpec {
        classes: vec!["0".into()],
        ..spec(Some(mask()))
    };
    assert!(message(classifier, masked).starts_with("`mask` (--mask) is for segmentation models"),);
}

#[test]
fn cli_explains_a_class_over_a_mask() {
    let dir = scratch("segmentation-cli");
    let out_dir = dir.join("out").display().to_string();
    let (image, model, mask) = (
        root().join("assets/cat_dog.jpg").display().to_string(),
        fixture_path("targets/seg_net.onnx"),
        fixture_path("targets/seg_net.mask.png"),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            image.as_str(),
            "--model",
            model.as_str(),
            "--format",
            "json,npy",
            "-o",
            out_dir.as_str(),
            "--quiet",
            "--json",
        ];
        args.extend_from_slice(extra);
        gradcam(&args)
    };
    let out = run(&["--class", "1", "--mask", &mask]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = &line["explanation"]["explanations"][0];
    assert_eq!(map["class"], 1);
    assert!(map["score"].as_f64().unwrap() != 0.0, "{map}");

    // No class: the class with the most pixels.
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let explanation = &line["explanation"];
    assert_eq!(
        explanation["explanations"][0]["class"],
        explanation["top5"][0]["class"]
    );
}

#[tokio::test]
async fn server_takes_a_mask_field() {
    let state = gradcam::serve::AppState::from_shared(seg_net(), gradcam::serve::Config::default());
    let app = gradcam::serve::app(state);
    let image = std::fs::read(root().join("assets/cat_dog.jpg")).unwrap();
    let mask = std::fs::read(fixture_path("targets/seg_net.mask.png")).unwrap();
    let request = multipart_request(
        "/v1/explain?class=1&layer=features&overlay=false",
        &[
            ("image", &image, Some("image")),
            ("mask", &mask, Some("mask")),
        ],
    );
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["explanations"][0]["class"], 1);
    assert_eq!(json["top5"].as_array().unwrap().len(), 3);
}
