//! `gradcam explain --method deepfeaturefactorization`, run as a user would: the files per
//! concept, their pictures, the labels against the library's, and the errors of bad input.

mod common;

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use common::run::{cat_dog, files_in, gradcam, root, scratch, stderr};
use gradcam::concepts::ConceptExplainer;
use gradcam::image::{MAX_PIXELS, concept_colors, overlay, resize_map, show_factorization};
use gradcam::model::{CamModel, ModelSpec};

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn writes_one_labelled_overlay_per_concept_and_the_combined_picture() {
    let dir = scratch("dff");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--method",
        "deepfeaturefactorization",
        "--concepts",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        files_in(&dir),
        [
            "cat_dog.dff.concept1.png",
            "cat_dog.dff.concept2.png",
            "cat_dog.dff.concept3.png",
            "cat_dog.dff.npy",
            "cat_dog.dff.png",
            "cat_dog.json"
        ]
    );

    // The labels are the library's: the same model, layer and photo.
    let model: Arc<dyn CamModel> = ModelSpec::named("efficientnet_lite0")
        .load(&Device::flex())
        .unwrap()
        .into();
    let photo = gradcam::image::load(Path::new(&cat_dog()), MAX_PIXELS).unwrap();
    let expected = ConceptExplainer::new(model, None, 3)
        .unwrap()
        .explain(&photo)
        .unwrap();
    let json = read_json(&dir.join("cat_dog.json"));
    let e = &json["explanation"];
    assert_eq!(e["method"], "deepfeaturefactorization");
    assert_eq!(e["layer"], "head");
    assert_eq!(e["top5"][0]["class"], 243, "bull mastiff");
    let concepts = e["concepts"].as_array().unwrap();
    assert_eq!(concepts.len(), 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (got, want) in concepts.iter().zip(&expected.concepts) {
        assert_eq!(got["label"], want.label.as_str());
        assert_eq!(got["index"], want.index);
        let classes: Vec<u64> = got["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["class"].as_u64().unwrap())
            .collect();
        let want_classes: Vec<u64> = want.classes.iter().map(|c| c.class as u64).collect();
        assert_eq!(classes, want_classes);
        // Two classes, as the tutorial's labels, with softmax probabilities in order.
        let p: Vec<f64> = (0..2)
            .map(|i| got["classes"][i]["probability"].as_f64().unwrap())
            .collect();
        assert!(
            p[0] >= p[1] && p[1] > 0.0 && p[0] + p[1] <= 1.0 + 1e-6,
            "{p:?}"
        );
        let line = format!("concept {}: {}", want.index, want.label);
        assert!(stdout.contains(&line), "{line} not in {stdout}");
    }

    // The maps, and the pictures drawn from them: the photo's size plus a legend strip.
    let (maps, shape) = gradcam::io::read_npy(&dir.join("cat_dog.dff.npy")).unwrap();
    assert_eq!(shape, [3, 224, 224]);
    let want_maps: Vec<f32> = expected
        .concepts
        .iter()
        .flat_map(|c| c.map.clone())
        .collect();
    assert_eq!(maps, want_maps);
    let resized: Vec<Vec<f32>> = maps
        .chunks(224 * 224)
        .map(|m| resize_map(m, (224, 224), (480, 640)))
        .collect();
    for (i, map) in resized.iter().enumerate() {
        let picture = image::open(dir.join(format!("cat_dog.dff.concept{}.png", i + 1)))
            .unwrap()
            .to_rgb8();
        assert_eq!(picture.width(), 640);
        assert!(picture.height() > 480, "a legend strip below the photo");
        let top = image::imageops::crop_imm(&picture, 0, 0, 640, 480).to_image();
        assert_eq!(top, overlay(&photo, map, 0.5).unwrap(), "concept {}", i + 1);
    }
    let combined = image::open(dir.join("cat_dog.dff.png")).unwrap().to_rgb8();
    let top = image::imageops::crop_imm(&combined, 0, 0, 640, 480).to_image();
    assert_eq!(
        top,
        show_factorization(&photo, &resized, &concept_colors(3), 0.5).unwrap()
    );
    // The combined legend has a line per concept: a taller strip than one concept's.
    let one = image::open(dir.join("cat_dog.dff.concept1.png")).unwrap();
    assert!(combined.height() > one.height());
}

#[test]
fn json_on_stdout_and_onnx_classifiers() {
    let dir = scratch("dff-onnx");
    let model = root().join("tests/fixtures/onnx/resnet_like.legacy.onnx");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--method",
        "dff",
        "--model",
        model.to_str().unwrap(),
        "--format",
        "json",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let concepts = json["explanation"]["concepts"].as_array().unwrap();
    assert_eq!(concepts.len(), 4, "the default");
    assert!(concepts[0]["label"].as_str().unwrap().starts_with("class "));
    assert_eq!(files_in(&dir), ["cat_dog.json"]);

    // A ViT's head is not GAP + linear: no classifier to name the concepts.
    let vit = root().join("tests/fixtures/onnx/tiny_vit.legacy.onnx");
    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--method",
        "dff",
        "--model",
        vit.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("needs a model whose head is global average pooling then one linear layer"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_options_are_clear_errors() {
    let dir = scratch("dff-errors");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--out",
            dir.to_str().unwrap(),
            "--method",
            "deepfeaturefactorization",
        ];
        args.extend_from_slice(extra);
        let path = cat_dog();
        args.push(&path);
        let out = gradcam(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        stderr(&out)
    };
    for k in ["0", "17"] {
        let err = run(&["--concepts", k]);
        assert!(
            err.contains(&format!(
                "`concepts` (--concepts) must be in 1..=16, got {k}"
            )),
            "{err}"
        );
    }
    let err = run(&["--class", "tabby", "--counterfactual"]);
    assert!(
        err.contains(
            "not a map per class, and runs image by image: leave out --class, --counterfactual ("
        ),
        "{err}"
    );
    let err = run(&["--batch-size", "4", "--overwrite"]);
    assert!(
        err.contains("leave out --batch-size, --overwrite ("),
        "{err}"
    );
    let err = run(&["--format", "raw"]);
    assert!(
        err.contains("deepfeaturefactorization writes its pictures"),
        "{err}"
    );
    let err = run(&["--layer", "nolayer"]);
    assert!(err.contains("nolayer") && err.contains("head"), "{err}");
    assert!(files_in(&dir).is_empty(), "nothing written");

    let out = gradcam(&[
        "explain",
        &cat_dog(),
        "--concepts",
        "3",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("--concepts is the number of concepts of --method deepfeaturefactorization"),
        "{}",
        stderr(&out)
    );
}
