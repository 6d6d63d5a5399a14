//! `gradcam bench` run as a user would: its JSON fields and exit codes. No timing is asserted
//! (only that the figures are times: positive, finite, ordered).

mod common;

use common::run::{gradcam, root, s, stderr};

fn tiny_onnx() -> String {
    s(&root().join("tests/fixtures/onnx/resnet_like.legacy.onnx")).to_string()
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = gradcam(args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// `min <= median <= max`, all positive and finite, and `samples` holds `iters` of them.
fn assert_spread(json: &serde_json::Value, what: &str, iters: usize) {
    let get = |k: &str| json[k].as_f64().unwrap_or_else(|| panic!("{k} in {json}"));
    let (median, min, max) = (
        get(&format!("{what}_ms_per_image")),
        get(&format!("{what}_min_ms_per_image")),
        get(&format!("{what}_max_ms_per_image")),
    );
    assert!(min > 0.0 && max.is_finite(), "{json}");
    assert!(min <= median && median <= max, "{json}");
    let samples = json[format!("{what}_samples_ms_per_image")]
        .as_array()
        .unwrap();
    assert_eq!(samples.len(), iters);
    for v in samples {
        let v = v.as_f64().unwrap();
        assert!((min..=max).contains(&v), "{json}");
    }
}

#[test]
fn json_reports_forward_and_explanation_of_an_onnx_file() {
    let json = json_of(&[
        "bench",
        "--model",
        &tiny_onnx(),
        "--batch",
        "2",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
    ]);
    assert_eq!(json["model"], "resnet_like.legacy");
    assert_eq!(json["method"], "gradcam");
    assert_eq!(json["batch"], 2);
    assert_eq!(json["iters"], 3);
    assert_eq!(json["input_size"], serde_json::json!([32, 32]));
    assert!(json["threads"].as_u64().unwrap() >= 1);
    assert_eq!(json["layers"].as_array().unwrap().len(), 1);
    assert_spread(&json, "forward", 3);
    assert_spread(&json, "explain", 3);
    let ratio = json["explain_over_forward"].as_f64().unwrap();
    let (e, f) = (
        json["explain_ms_per_image"].as_f64().unwrap(),
        json["forward_ms_per_image"].as_f64().unwrap(),
    );
    assert!((ratio - e / f).abs() < 1e-9 * ratio, "{json}");
}

#[test]
fn layer_method_input_and_forward_only() {
    let input = root().join("tests/fixtures/onnx/resnet_like.input.npy");
    let json = json_of(&[
        "bench",
        "--model",
        &tiny_onnx(),
        "--method",
        "gradcam++",
        "--layer",
        "layer2",
        "--input",
        s(&input),
        "--batch",
        "2",
        "--iters",
        "2",
        "--json",
    ]);
    assert_eq!(json["method"], "gradcam++");
    assert_eq!(json["layers"], serde_json::json!(["layer2"]));
    assert_spread(&json, "explain", 2);

    let json = json_of(&[
        "bench",
        "--model",
        &tiny_onnx(),
        "--forward-only",
        "-n",
        "2",
        "--json",
    ]);
    assert_spread(&json, "forward", 2);
    assert!(json["explain_ms_per_image"].is_null(), "{json}");
    assert_eq!(json["explain_samples_ms_per_image"], serde_json::json!([]));
}

#[test]
fn text_output_names_the_threads_and_both_passes() {
    let out = gradcam(&["bench", "--model", &tiny_onnx(), "-n", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("threads"), "{text}");
    assert!(text.contains("forward"), "{text}");
    assert!(text.contains("gradcam at "), "{text}");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let input = root().join("tests/fixtures/onnx/resnet_like.input.npy");
    let cases: [(&[&str], &str); 5] = [
        (&["bench", "--model", "nope"], "unknown model `nope`"),
        (&["bench", "--model", "missing.onnx"], "missing.onnx"),
        (
            &["bench", "--model", &tiny_onnx(), "--layer", "layer9"],
            "unknown layer `layer9`",
        ),
        (
            &["bench", "--model", &tiny_onnx(), "--method", "nomethod"],
            "unknown method `nomethod`",
        ),
        (
            // The fixture holds 2 images.
            &[
                "bench",
                "--model",
                &tiny_onnx(),
                "--input",
                s(&input),
                "--batch",
                "3",
            ],
            "the model needs [>= 3, 3, 32, 32]",
        ),
    ];
    for (args, message) in cases {
        let out = gradcam(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let out = gradcam(&["bench", "--model", &tiny_onnx(), "--random-weights"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--random-weights is for built-in models"));
    // clap's own usage errors also exit 2.
    let out = gradcam(&["bench", "--batch", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
