//! LeGrad on a small torchvision VisionTransformer exported both ways, against torchcam 0.5.0's
//! maps on the PyTorch original (tests/fixtures/onnx/legrad, made by
//! tools/make_legrad_fixtures.py), and its errors on models without attention.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{fixtures, max_abs_diff, npy};
use gradcam::cam::{Cam, ClassLogit, LeGrad, Target, Targets};
use gradcam::model::{OnnxModel, OnnxOptions};
use std::sync::Arc;

const EXPORTS: [&str; 2] = ["dynamo", "legacy"];

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("onnx/legrad/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(export: &str) -> OnnxModel {
    let path = fixtures().join(format!("onnx/legrad/vit.{export}.onnx"));
    OnnxModel::load(&path, &OnnxOptions::default()).unwrap_or_else(|e| panic!("{export}: {e}"))
}

fn input() -> Tensor<4> {
    let (data, shape) = npy("onnx/legrad/input.npy");
    Tensor::from_data(
        TensorData::new(data, [shape[0], shape[1], shape[2], shape[3]]),
        &Device::flex(),
    )
}

/// The mean of the blocks' raw maps per image, on the patch grid.
fn raw_mean(out: &gradcam::cam::CamOutput) -> Vec<f32> {
    let n = out.layers.len() as f32;
    let images = out.layers[0].maps.len();
    (0..images)
        .flat_map(|b| {
            let size = out.layers[0].maps[b].len();
            (0..size).map(move |i| out.layers.iter().map(|l| l.maps[b][i]).sum::<f32>() / n)
        })
        .collect()
}

#[test]
fn maps_match_torchcam() {
    let manifest = manifest();
    let mut worst = (0.0f32, 0.0f32);
    for export in EXPORTS {
        let model = load(export);
        for (case, entry) in manifest["cases"].as_object().unwrap() {
            let layers: Vec<&str> = entry["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            let classes: Vec<usize> = entry["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as usize)
                .collect();
            let targets = if entry["given"].as_bool().unwrap() {
                Targets::PerImage(
                    classes
                        .iter()
                        .map(|&c| Arc::new(ClassLogit(c)) as Arc<dyn Target>)
                        .collect(),
                )
            } else {
                Targets::Rank(0)
            };
            let cam = Cam::new(&model, &LeGrad, &layers).unwrap();
            let out = cam.run(input(), &targets).unwrap();
            let got_classes: Vec<usize> = out.classes.iter().map(|c| c.unwrap()).collect();
            assert_eq!(got_classes, classes, "{export} {case}");
            let (raw, shape) = npy(&format!("onnx/legrad/{case}.raw.npy"));
            assert_eq!(shape, [2, 4, 4]);
            let got = raw_mean(&out);
            let raw_diff = max_abs_diff(&got, &raw);
            let (norm, _) = npy(&format!("onnx/legrad/{case}.norm.npy"));
            let got_norm: Vec<f32> = got.chunks(16).flat_map(normalized).collect();
            let norm_diff = max_abs_diff(&got_norm, &norm);
            println!(
                "{export} {case}: raw max abs diff {raw_diff:.2e}, normalized {norm_diff:.2e}"
            );
            worst = (worst.0.max(raw_diff), worst.1.max(norm_diff));
        }
    }
    println!("worst: raw {:.2e}, normalized {:.2e}", worst.0, worst.1);
    // Measured: 6.0e-8 and 7.2e-7 (raw maps peak at 0.1).
    assert!(worst.0 < 2e-7 && worst.1 < 2e-6, "{worst:?}");
}

/// torchcam's `_normalize`, written out here so that the test checks the library's.
fn normalized(map: &[f32]) -> Vec<f32> {
    let min = map.iter().copied().fold(f32::INFINITY, f32::min);
    let max = map
        .iter()
        .map(|v| v - min)
        .fold(f32::NEG_INFINITY, f32::max);
    map.iter().map(|v| (v - min) / (max + 1e-8)).collect()
}
