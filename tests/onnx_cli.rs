//! `gradcam` on ONNX files, run as a user would: `models`, `explain` with the default and named
//! layers, labels, and the errors of bad files and options (exit 2, no output files).

mod common;

use std::path::PathBuf;

use common::run::{cat_dog, gradcam, root, scratch, stderr};

fn model(name: &str) -> String {
    root()
        .join("tests/fixtures/onnx")
        .join(name)
        .display()
        .to_string()
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn models_lists_module_paths_tensor_names_and_the_default() {
    let out = gradcam(&["models", &model("resnet_like.legacy.onnx"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &listing["models"][0];
    assert_eq!(m["default_layer"], "layer2");
    assert_eq!(m["input_size"], serde_json::json!([32, 32]));
    assert_eq!(m["num_classes"], 5);
    let layer2 = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "layer2")
        .unwrap();
    assert_eq!(layer2["shape"], serde_json::json!([16, 8, 8]));
    assert!(
        layer2["aliases"]
            .as_array()
            .unwrap()
            .contains(&"/layer2/relu_1/Relu_output_0".into()),
        "{layer2}"
    );
}

#[test]
fn explain_picks_the_default_layer_and_writes_the_usual_files() {
    let dir = scratch("onnx-explain");
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, "ant\nbee\ncat\ndog\neel\n").unwrap();
    let out_dir = dir.join("out");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--model",
        &model("resnet_like.dynamo.onnx"),
        "--input-size",
        "32x32",
        "--labels",
        labels.to_str().unwrap(),
        "--class",
        "dog",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("explaining layer layer2"),
        "{}",
        stderr(&out)
    );
    let e = &json(out_dir.join("cat_dog.json"))["explanation"];
    assert_eq!(e["layers"][0], "layer2");
    assert_eq!(e["explanations"][0]["class"], 3);
    assert_eq!(e["explanations"][0]["label"], "dog");
    let (_, raw) = gradcam::io::read_npy(&out_dir.join("cat_dog.cam_raw.npy")).unwrap();
    assert_eq!(raw, [8, 8]);
}

#[test]
fn a_vision_transformer_is_explained_at_a_token_layer() {
    let dir = scratch("onnx-vit");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--model",
        &model("tiny_vit.legacy.onnx"),
        "--layer",
        "blocks.0.norm1",
        "--method",
        "gradcam++",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, raw) = gradcam::io::read_npy(&dir.join("cat_dog.cam_raw.npy")).unwrap();
    assert_eq!(raw, [4, 4]);
}

/// Each bad input: exit 2, a message naming what is wrong, and nothing written.
#[test]
fn bad_files_and_options_fail_clearly_and_write_nothing() {
    let dir = scratch("onnx-bad");
    let not_onnx = dir.join("photo.onnx");
    std::fs::write(&not_onnx, b"\x89PNG not a model").unwrap();
    let truncated = dir.join("truncated.onnx");
    let bytes = std::fs::read(model("resnet_like.legacy.onnx")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let short_labels = dir.join("labels.txt");
    std::fs::write(&short_labels, "a\nb\n").unwrap();
    let resnet = model("resnet_like.legacy.onnx");
    let cases: [(&[&str], &str); 7] = [
        (
            &["--model", not_onnx.to_str().unwrap()],
            "is not an ONNX model",
        ),
        (&["--model", truncated.to_str().unwrap()], "truncated"),
        (
            &["--model", &resnet, "--layer", "layer9"],
            "unknown layer `layer9`",
        ),
        (
            &["--model", &resnet, "--class", "7"],
            "class 7 is out of range",
        ),
        (
            &[
                "--model",
                &resnet,
                "--labels",
                short_labels.to_str().unwrap(),
            ],
            "has 2 labels but the model has 5 outputs",
        ),
        (
            &["--model", &resnet, "--output", "probs"],
            "no output `probs`",
        ),
        (&["--mean", "0.5,0.5,0.5"], "are for ONNX models"),
    ];
    let image = cat_dog();
    for (i, (args, expected)) in cases.iter().enumerate() {
        let out_dir = dir.join(format!("out{i}"));
        let mut all = vec!["explain", &image, "--out", out_dir.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = gradcam(&all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!out_dir.exists(), "{args:?} wrote {}", out_dir.display());
    }
}
