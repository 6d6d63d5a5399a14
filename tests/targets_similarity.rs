//! Embedding similarity (`--similar-to IMAGE`, `--embedding NAME`) against pytorch-grad-cam
//! 1.5.7 with its embeddings tutorial's `SimilarityToConceptTarget` (tests/fixtures/targets,
//! made by tools/make_target_fixtures.py): an ONNX model's embedding output and a built-in
//! ResNet's pooled layers, through the library, the binary and the server.

mod common;

use std::sync::Arc;

use ::image::RgbImage;
use axum::http::StatusCode;
use common::multipart::multipart_request;
use common::run::{gradcam, root, scratch, stderr};
use common::wrapped::Wrapped;
use common::{assert_first_maps_match, fixture_path, fixtures, npy, small_resnet};
use gradcam::explain::{Explainer, Explanation};
use gradcam::model::{CamModel, OnnxModel, OnnxOptions};
use gradcam::request::RequestSpec;
use tower::ServiceExt;

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("targets/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn reference(name: &str) -> Arc<RgbImage> {
    let path = fixtures().join(format!("targets/{name}.reference.png"));
    Arc::new(::image::open(&path).unwrap().to_rgb8())
}

fn embed_net(output: &str) -> Arc<dyn CamModel> {
    let options = OnnxOptions {
        output: Some(output.into()),
        ..OnnxOptions::default()
    };
    let path = fixtures().join("targets/embed_net.onnx");
    Arc::new(OnnxModel::load(&path, &options).unwrap())
}

/// Explains fixture input `input` (two images) at `layer` for the similarity to `name`'s
/// reference picture, with the embedding at `embedding` (`None`: the model's output).
fn explain(
    model: Arc<dyn CamModel>,
    name: &str,
    input: &str,
    layer: &str,
    embedding: Option<&str>,
) -> Vec<Explanation> {
    let spec = RequestSpec {
        layers: vec![layer.into()],
        similar_to: Some(reference(name)),
        embedding: embedding.map(str::to_string),
        ..Default::default()
    };
    let request = spec.check(model.class_names(), 10).unwrap();
    let explainer = Explainer::from_request(model, &request).unwrap();
    let (data, shape) = npy(input);
    let images = vec![RgbImage::new(shape[3] as u32, shape[2] as u32); shape[0]];
    explainer
        .explain_inputs(data, &images, &request.classes)
        .unwrap()
}

/// Checks the maps against fixture `file` and the scores against `similarities`.
fn check(out: &[Explanation], file: &str, similarities: &serde_json::Value) {
    assert_first_maps_match(out, &format!("targets/{file}"));
    for (e, s) in out.iter().zip(similarities.as_array().unwrap()) {
        let m = &e.explanations[0];
        assert_eq!((m.class, e.top5.len()), (None, 0));
        let s = s.as_f64().unwrap() as f32;
        assert!((m.score - s).abs() < 1e-5, "{file}: {} vs {s}", m.score);
    }
}

#[test]
fn onnx_embedding_output_matches_similarity_to_concept_target() {
    let out = explain(
        embed_net("embedding"),
        "embed_net",
        "targets/embed_net.input.npy",
        "features",
        None,
    );
    check(
        &out,
        "embed_net.similar.npy",
        &manifest()["embed_net"]["similarities"],
    );
}

/// An inner tensor as the embedding: `features` average-pooled is what the graph's `embedding`
/// output computes, so explained at `stem` both match pytorch-grad-cam on that output.
#[test]
fn onnx_inner_layer_pooled_matches_the_embedding_output() {
    let similarities = &manifest()["embed_net"]["similarities"];
    for (model, embedding) in [
        (embed_net("logits"), Some("features")),
        (embed_net("embedding"), None),
    ] {
        let out = explain(
            model,
            "embed_net",
            "targets/embed_net.input.npy",
            "stem",
            embedding,
        );
        check(&out, "embed_net.similar.stem.npy", similarities);
    }
    // A tensor the explained layer does not reach is refused.
    let request = RequestSpec {
        layers: vec!["features".into()],
        similar_to: Some(reference("embed_net")),
        embedding: Some("stem".into()),
        ..Default::default()
    };
    let model = embed_net("logits");
    let err = request
        .check(model.class_names(), 10)
        .and_then(|r| Explainer::from_request(model, &r).map(|_| ()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("features"), "{err}");
}

#[test]
fn built_in_layers_pooled_match_similarity_to_concept_target() {
    // At the fixture input's size, 64x64, as the reference picture.
    let resnet: Arc<dyn CamModel> = Arc::new(Wrapped::at_size(
        small_resnet("resnet_small", "resnet_small.pth"),
        (64, 64),
    ));
    let entries = manifest()["resnet_small"].clone();
    for (embedding, entry) in entries.as_object().unwrap() {
        let layer = entry["layer"].as_str().unwrap();
        let out = explain(
            resnet.clone(),
            "resnet_small",
            "resnet_small.input.npy",
            layer,
            Some(embedding),
        );
        check(
            &out,
            &format!("resnet_small.similar.{embedding}.npy"),
            &entry["similarities"],
        );
    }
}

#[test]
fn a_layer_after_the_embedding_is_refused_with_the_valid_ones() {
    let resnet: Arc<dyn CamModel> = Arc::new(small_resnet("resnet_small", "resnet_small.pth"));
    let spec = RequestSpec {
        layers: vec!["layer4".into()],
        similar_to: Some(reference("resnet_small")),
        embedding: Some("layer3".into()),
        ..Default::default()
    };
    let request = spec.check(resnet.class_names(), 10).unwrap();
    let err = Explainer::from_request(resnet, &request)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("layer4") && err.contains("layer3"), "{err}");
    assert!(
        !err.contains("layer4.0,"),
        "only layers up to the embedding: {err}"
    );
}

#[test]
fn cli_explains_the_similarity_to_an_image() {
    let dir = scratch("similar-cli");
    let out_dir = dir.join("out").display().to_string();
    let cat_dog = root().join("assets/cat_dog.jpg").display().to_string();
    let (model, reference) = (
        fixture_path("targets/embed_net.onnx"),
        fixture_path("targets/embed_net.reference.png"),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            cat_dog.as_str(),
            "--model",
            model.as_str(),
            "--similar-to",
            reference.as_str(),
            "--format",
            "json",
            "-o",
            out_dir.as_str(),
            "--quiet",
            "--json",
            "--overwrite",
        ];
        args.extend_from_slice(extra);
        gradcam(&args)
    };
    let out = run(&["--embedding", "embedding"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = &line["explanation"]["explanations"][0];
    assert_eq!(map["class"], serde_json::Value::Null);
    let score = map["score"].as_f64().unwrap();
    assert!(score > -1.0 && score < 1.0 && score != 0.0, "{map}");

    // An inner layer: the same similarity as the `embedding` output it feeds.
    let inner = run(&[
        "--embedding",
        "features",
        "--output",
        "logits",
        "--layer",
        "stem",
    ]);
    assert!(inner.status.success(), "{}", stderr(&inner));
    let line: serde_json::Value = serde_json::from_slice(&inner.stdout).unwrap();
    let inner_score = line["explanation"]["explanations"][0]["score"]
        .as_f64()
        .unwrap();
    assert!(
        (inner_score - score).abs() < 1e-6,
        "{inner_score} vs {score}"
    );

    let out = run(&["--embedding", "embedding", "--output", "logits"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--embedding embedding and --output logits name different outputs"),
        "{}",
        stderr(&out)
    );
    let out = run(&["--embedding", "embedding", "--class", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn server_takes_a_similar_to_image_field() {
    let model: Arc<dyn CamModel> = Arc::new(small_resnet("resnet_small", "resnet_small.pth"));
    let state = gradcam::serve::AppState::from_shared(model, gradcam::serve::Config::default());
    let app = gradcam::serve::app(state);
    let image = std::fs::read(root().join("assets/cat_dog.jpg")).unwrap();
    let reference = std::fs::read(fixtures().join("targets/resnet_small.reference.png")).unwrap();
    let post = |query: &str, fields: &[(&str, &[u8], Option<&str>)]| {
        multipart_request(&format!("/v1/explain?{query}"), fields)
    };
    let fields: [(&str, &[u8], Option<&str>); 2] = [
        ("image", &image, Some("image.png")),
        ("similar_to", &reference, Some("similar_to.png")),
    ];
    let response = app
        .clone()
        .oneshot(post(
            "embedding=layer4&layer=layer3&overlay=false&heatmap=false",
            &fields,
        ))
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let map = &json["explanations"][0];
    assert_eq!(map["class"], serde_json::Value::Null);
    assert!(map["score"].as_f64().unwrap().abs() <= 1.0, "{json}");

    let response = app
        .oneshot(post("embedding=layer4", &fields[..1]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("`embedding` (--embedding) chooses the embedding compared with `similar_to`"),
        "{text}"
    );
}
