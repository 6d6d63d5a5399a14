//! The server's request parsing: the query string, the multipart form (or raw body) and the
//! parameters, through the real router (`serve::app`) with the body reader in front. The input
//! is split at its first newline: a query string, then a body, sent once as a multipart form
//! and once raw. Every answer must be a JSON error or a success, never a panic or a 500.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use burn::module::Module;
use burn::tensor::Device;
use gradcam::model::{CamModel, ResNetConfig};
use gradcam::serve::{AppState, Config, app};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const BOUNDARY: &str = "fuzz-boundary";

/// A tiny random ResNet (8 channels wide, 10 classes), built once.
fn state() -> &'static (AppState, tokio::runtime::Runtime) {
    static STATE: OnceLock<(AppState, tokio::runtime::Runtime)> = OnceLock::new();
    STATE.get_or_init(|| {
        let config = ResNetConfig {
            name: "fuzz".into(),
            blocks: [1, 1, 1, 1],
            bottleneck: false,
            width: 8,
            num_classes: 10,
        };
        let model: Arc<dyn CamModel> =
            Arc::new(config.init(&Device::flex()).valid().fold_batch_norms());
        let limits = Config {
            max_body_bytes: 64 * 1024,
            // Images stay tiny: the target is parsing, not explaining.
            max_pixels: 64 * 64,
            workers: 1,
            ..Config::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        (AppState::from_shared(model, limits), runtime)
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let query = String::from_utf8_lossy(&data[..split]).replace(['#', ' '], "");
    let body = data.get(split + 1..).unwrap_or_default().to_vec();
    let (state, runtime) = state();
    let uri = format!("/v1/explain?{query}");
    if uri.parse::<axum::http::Uri>().is_err() {
        return;
    }
    for content_type in [
        format!("multipart/form-data; boundary={BOUNDARY}"),
        "image/png".to_string(),
    ] {
        let request = Request::post(uri.as_str())
            .header("content-type", content_type)
            .body(Body::from(body.clone()))
            .unwrap();
        let status = runtime
            .block_on(app(state.clone()).oneshot(request))
            .unwrap()
            .status();
        assert!(status.as_u16() < 500, "{status} for {query:?}");
    }
});
