//! Targets beyond one class logit (`--target logit|softmax|binary`) against pytorch-grad-cam
//! 1.5.7 (tests/fixtures/targets, made by tools/make_target_fixtures.py): through the library's
//! [`Explainer`], the binary and the server, on small ONNX models.

mod common;

use std::sync::Arc;

use ::image::RgbImage;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::run::{cat_dog, gradcam, root, scratch, stderr};
use common::{MAP_TOLERANCE, fixture_path, fixtures, max_abs_diff, npy};
use gradcam::cam::ClassTarget;
use gradcam::explain::{Classes, Explainer, Explanation};
use gradcam::model::{CamModel, OnnxModel, OnnxOptions};
use gradcam::request::RequestSpec;
use tower::ServiceExt;

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("targets/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A model of tests/fixtures/targets, reading output `output` when given.
fn onnx(file: &str, output: Option<&str>) -> Arc<dyn CamModel> {
    let options = OnnxOptions {
        output: output.map(str::to_string),
        ..OnnxOptions::default()
    };
    let model = OnnxModel::load(&fixtures().join("targets").join(file), &options)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    Arc::new(model)
}

/// Explains the fixture input `<name>.input.npy` (two images) as `spec` asks, at `features`.
fn explain(model: Arc<dyn CamModel>, name: &str, spec: RequestSpec) -> Vec<Explanation> {
    let spec = RequestSpec {
        layers: vec!["features".into()],
        ..spec
    };
    let request = spec.check(model.class_names(), 10).unwrap();
    let explainer = Explainer::from_request(model, &request).unwrap();
    let (data, shape) = npy(&format!("targets/{name}.input.npy"));
    let images = vec![RgbImage::new(shape[3] as u32, shape[2] as u32); shape[0]];
    explainer
        .explain_inputs(data, &images, &request.classes)
        .unwrap()
}

/// The largest difference of the maps of `explanations` (map `k` of each image) from fixture
/// `file`, the (2, H, W) maps pytorch-grad-cam made.
fn diff(explanations: &[Explanation], k: usize, file: &str) -> f32 {
    let (want, _) = npy(&format!("targets/{file}"));
    let got: Vec<f32> = explanations
        .iter()
        .flat_map(|e| e.explanations[k].map.clone())
        .collect();
    let d = max_abs_diff(&got, &want);
    println!("{file}: max abs diff {d:.2e}");
    d
}

fn spec(target: &str, classes: &[&str]) -> RequestSpec {
    RequestSpec {
        target: Some(target.into()),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn binary_classes_match_binary_classifier_output_target() {
    let model = onnx("binary_net.onnx", None);
    let out = explain(model.clone(), "binary_net", spec("binary", &["0", "1"]));
    assert!(diff(&out, 0, "binary_net.binary0.npy") < MAP_TOLERANCE);
    assert!(diff(&out, 1, "binary_net.binary1.npy") < MAP_TOLERANCE);
    // Class 1 explains the logit, class 0 its negation.
    let logits = manifest()["binary_net"]["logits"].clone();
    for (e, logit) in out.iter().zip(logits.as_array().unwrap()) {
        let logit = logit.as_f64().unwrap() as f32;
        assert_eq!(e.explanations[0].class, Some(0));
        assert!((e.explanations[0].score + logit).abs() < 1e-5, "{e:?}");
        assert!((e.explanations[1].score - logit).abs() < 1e-5, "{e:?}");
    }
}

#[test]
fn binary_default_is_the_predicted_class_with_sigmoid_probabilities() {
    let model = onnx("binary_net.onnx", None);
    let out = explain(model, "binary_net", spec("binary", &[]));
    assert!(diff(&out, 0, "binary_net.binary-predicted.npy") < MAP_TOLERANCE);
    // The fixture's logits are +1 and -1: image 0 is class 1, image 1 class 0.
    let sigmoid = 1.0 / (1.0 + (-1.0f32).exp());
    for (e, (class, other)) in out.iter().zip([(1, 0), (0, 1)]) {
        assert_eq!(e.explanations[0].class, Some(class));
        let top: Vec<usize> = e.top5.iter().map(|p| p.class).collect();
        assert_eq!(top, [class, other]);
        assert!(
            (e.top5[0].probability - sigmoid).abs() < 1e-5,
            "{:?}",
            e.top5
        );
        assert!((e.top5[0].logit - 1.0).abs() < 1e-5, "{:?}", e.top5);
    }
}

#[test]
fn a_one_output_model_explains_its_logit_as_class_0() {
    let model = onnx("binary_net.onnx", None);
    let out = explain(model.clone(), "binary_net", spec("logit", &["0"]));
    assert!(diff(&out, 0, "binary_net.logit.npy") < MAP_TOLERANCE);
    // pytorch-grad-cam's default (the argmax of one output) is the same class 0.
    let out = explain(model, "binary_net", RequestSpec::default());
    assert!(diff(&out, 0, "binary_net.logit.npy") < MAP_TOLERANCE);
}

#[test]
fn softmax_matches_classifier_output_softmax_target() {
    let model = onnx("embed_net.onnx", Some("logits"));
    let out = explain(model, "embed_net", spec("softmax", &["3"]));
    assert!(diff(&out, 0, "embed_net.softmax3.npy") < MAP_TOLERANCE);
    let probabilities = manifest()["embed_net"]["probabilities"].clone();
    for (e, p) in out.iter().zip(probabilities.as_array().unwrap()) {
        let p = p.as_f64().unwrap() as f32;
        assert!((e.explanations[0].score - p).abs() < 1e-5, "{e:?}");
        assert_eq!(e.explanations[0].class, Some(3));
    }
}

#[test]
fn ranked_targets_follow_their_kind() {
    // The top-2 of a softmax target are the two best logits, explained by their probability.
    let model = onnx("embed_net.onnx", Some("logits"));
    let out = explain(
        model,
        "embed_net",
        RequestSpec {
            top_k: Some(2),
            ..spec("softmax", &[])
        },
    );
    for e in &out {
        let probabilities: Vec<f32> = e.explanations.iter().map(|m| m.score).collect();
        let expected: Vec<f32> = e.top5[..2].iter().map(|p| p.probability).collect();
        assert!(max_abs_diff(&probabilities, &expected) < 1e-5, "{e:?}");
    }
    let request = spec("binary", &[]).check(1, 10).unwrap();
    assert_eq!(
        (request.target, request.classes),
        (ClassTarget::Binary, Classes::Top(1))
    );
}

#[test]
fn cli_explains_binary_classes_and_refuses_bad_targets() {
    let dir = scratch("targets-cli");
    let out_dir = dir.join("out");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--model",
        &fixture_path("targets/binary_net.onnx"),
        "--target",
        "binary",
        "--class",
        "0",
        "--class",
        "1",
        "--layer",
        "features",
        "--format",
        "json",
        "-o",
        &out_dir.display().to_string(),
        "--quiet",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let maps = line["explanation"]["explanations"].as_array().unwrap();
    assert_eq!(
        (maps[0]["class"].as_u64(), maps[1]["class"].as_u64()),
        (Some(0), Some(1))
    );
    let (s0, s1) = (
        maps[0]["score"].as_f64().unwrap(),
        maps[1]["score"].as_f64().unwrap(),
    );
    assert!(s1 != 0.0 && (s0 + s1).abs() < 1e-6, "{maps:?}");

    // One error, from the request's checks, before anything is written.
    let refused = |args: &[&str], message: &str| {
        let out_dir = dir.join("refused");
        let image = cat_dog();
        let out_arg = out_dir.display().to_string();
        let mut argv = vec!["explain", image.as_str(), "-o", out_arg.as_str()];
        argv.extend_from_slice(args);
        let out = gradcam(&argv);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert!(!out_dir.join("manifest.jsonl").exists());
    };
    let model = fixture_path("targets/binary_net.onnx");
    refused(
        &["--model", &model, "--target", "sigmoid"],
        "`target` (--target) must be one of logit, softmax, binary, got `sigmoid`",
    );
    refused(
        &["--model", &model, "--target", "binary", "--class", "2"],
        "class 2 is out of range: the model has 2 classes",
    );
    refused(
        &["--model", "resnet18", "--target", "binary"],
        "`target` (--target) binary needs a model with one output (a (B, 1) logit); this one has 1000",
    );
}

#[tokio::test]
async fn server_takes_the_target_parameter() {
    let state = gradcam::serve::AppState::from_shared(
        onnx("binary_net.onnx", None),
        gradcam::serve::Config::default(),
    );
    let app = gradcam::serve::app(state);
    let image = std::fs::read(root().join("assets/cat_dog.jpg")).unwrap();
    let post = |query: &str| {
        Request::post(format!("/v1/explain?{query}"))
            .header("content-type", "image/jpeg")
            .body(Body::from(image.clone()))
            .unwrap()
    };
    let response = app
        .clone()
        .oneshot(post("target=binary&class=0,1&overlay=false&heatmap=false"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let maps = json["explanations"].as_array().unwrap();
    let (s0, s1) = (
        maps[0]["score"].as_f64().unwrap(),
        maps[1]["score"].as_f64().unwrap(),
    );
    assert!(s1 != 0.0 && (s0 + s1).abs() < 1e-6, "{json}");
    assert_eq!(json["top5"].as_array().unwrap().len(), 2);

    let response = app.oneshot(post("target=sigmoid")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("`target` (--target) must be one of logit, softmax, binary, got `sigmoid`"),
        "{text}"
    );
}
