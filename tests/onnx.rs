//! The ONNX interpreter against onnxruntime and torch autograd, on the small models of
//! tests/fixtures/onnx (made by tools/make_onnx_fixtures.py; see its doc for each file).

use burn::tensor::Tensor;
use gradcam::onnx::{self, Float, Graph, OnnxError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MODELS: [&str; 7] = [
    "resnet_like",
    "depthwise_se",
    "shuffle_concat",
    "tiny_vit",
    "tf_padding",
    "tiny_swin",
    "upsample_head",
];
const EXPORTERS: [&str; 2] = ["dynamo", "legacy"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn npy(name: &str) -> Float {
    let (data, shape) =
        gradcam::io::read_npy(&dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    Float::from_vec(data, shape).unwrap()
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("manifest.json")).unwrap()).unwrap()
}

fn cut_name(model: &str, exporter: &str) -> String {
    manifest()["models"][model]["exports"][exporter]["cut"]
        .as_str()
        .unwrap()
        .to_string()
}

fn max_diff(a: &Float, b: &Float) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.to_vec()
        .iter()
        .zip(b.to_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load(model: &str, exporter: &str) -> Arc<Graph> {
    let path = dir().join(format!("{model}.{exporter}.onnx"));
    Arc::new(onnx::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Logits and the cut activation equal onnxruntime's for every model and both exporters
/// (measured: at most 2.4e-7, tiny_vit; tolerance 1e-6).
#[test]
fn outputs_and_cut_tensors_match_onnxruntime() {
    for model in MODELS {
        let input = npy(&format!("{model}.input.npy"));
        for exporter in EXPORTERS {
            let graph = load(model, exporter);
            let logits = graph.run(input.clone()).unwrap().remove(0);
            let expected = npy(&format!("{model}.{exporter}.logits.npy"));
            let d = max_diff(&logits, &expected);
            assert!(d < 1e-6, "{model} {exporter}: logits differ by {d}");

            let cut = cut_name(model, exporter);
            let name = graph.inputs()[0].name.clone();
            let got = graph
                .run_with(
                    vec![(name.as_str(), onnx::Value::Float(input.clone()))],
                    &[&cut],
                )
                .unwrap()
                .remove(0);
            let got = got.float().unwrap().clone();
            let d = max_diff(&got, &npy(&format!("{model}.{exporter}.cut.npy")));
            assert!(d < 1e-6, "{model} {exporter}: cut {cut} differs by {d}");
        }
    }
}

/// head(body(x)) is the full run, and the head takes rows mapped to images by an index list.
#[test]
fn head_of_body_is_the_full_run() {
    for model in MODELS {
        let input = npy(&format!("{model}.input.npy"));
        for exporter in EXPORTERS {
            let graph = load(model, exporter);
            let full = graph.run(input.clone()).unwrap().remove(0);
            let cut = cut_name(model, exporter);
            let split = graph.split(&[&cut]).unwrap();
            let (cuts, context) = split.body(input.clone()).unwrap();
            let logits = split.head(cuts.clone(), &context, None).unwrap().remove(0);
            assert_eq!(max_diff(&logits, &full), 0.0, "{model} {exporter}");
            assert!(
                split.head_len() < graph.nodes().len(),
                "{model} {exporter}: the head runs everything"
            );

            // Rows [1, 0, 1]: image 1's activation twice, image 0's once.
            let rows = [1usize, 0, 1];
            let picked = rows_of(&cuts[0], &rows);
            let out = split
                .head(vec![picked], &context, Some(&rows))
                .unwrap()
                .remove(0);
            let (all, k) = (full.to_vec(), full.shape()[1]);
            let want: Vec<f32> = rows
                .iter()
                .flat_map(|&r| all[r * k..(r + 1) * k].to_vec())
                .collect();
            let got = out.to_vec();
            let d = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(d < 1e-7, "{model} {exporter}: rows differ by {d}");
        }
    }
}

/// The gradient of the class logit with respect to the cut activation equals torch
/// autograd's on the PyTorch original (measured: at most 6e-8, tiny_vit, whose gradient
/// reaches 0.55; tolerance 5e-7).
#[test]
fn gradient_at_the_cut_matches_torch_autograd() {
    let class = manifest()["class"].as_u64().unwrap() as usize;
    for model in MODELS {
        let input = npy(&format!("{model}.input.npy"));
        let expected = npy(&format!("{model}.grad.npy"));
        for exporter in EXPORTERS {
            let graph = load(model, exporter);
            let split = graph.split(&[&cut_name(model, exporter)]).unwrap();
            let (cuts, context) = split.body(input.clone()).unwrap();
            let leaf: Tensor<6> = cuts[0].padded().clone().autodiff().require_grad();
            let shape = cuts[0].shape().to_vec();
            let logits = split
                .head(
                    vec![Float::from_padded(leaf.clone(), shape.clone()).unwrap()],
                    &context,
                    None,
                )
                .unwrap()
                .remove(0)
                .to_tensor::<2>()
                .unwrap();
            let [b, _] = logits.dims();
            let grads = logits.narrow(1, class, 1).sum().backward();
            let grad = leaf.grad(&grads).expect("a gradient at the cut");
            let grad = Float::from_padded(grad, shape).unwrap();
            assert_eq!(grad.shape()[0], b);
            let d = max_diff(&grad, &expected);
            assert!(d < 5e-7, "{model} {exporter}: gradient differs by {d}");
        }
    }
}

/// Shape arithmetic is folded at load when it only reads constants, and kept on host integers
/// otherwise: the legacy exporter's TF padding leaves the convolutions and few other nodes.
#[test]
fn constant_subgraphs_are_folded_at_load() {
    let graph = load("tf_padding", "legacy");
    assert!(graph.folded_nodes() > 0);
    let ops: Vec<&str> = graph.nodes().iter().map(|n| n.op_type.as_str()).collect();
    assert!(ops.iter().filter(|o| **o == "Conv").count() == 2, "{ops:?}");
    // Each TF "SAME" Pad became its convolution's padding.
    assert!(!ops.contains(&"Pad"), "{ops:?}");
    // Dynamo's export names PyTorch module scopes in node metadata.
    let dynamo = load("resnet_like", "dynamo");
    let scopes = dynamo.nodes()[0]
        .metadata
        .iter()
        .find(|(k, _)| k == "pkg.torch.onnx.name_scopes");
    assert!(scopes.is_some_and(|(_, v)| v.contains("stem")));
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gradcam-onnx-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn bad_files_give_specific_errors() {
    let d = temp("bad");
    let text = d.join("model.onnx");
    std::fs::write(&text, "this is not a model at all\n").unwrap();
    assert!(
        matches!(onnx::load(&text), Err(OnnxError::NotOnnx { .. })),
        "{:?}",
        onnx::load(&text)
    );

    let bytes = std::fs::read(dir().join("resnet_like.legacy.onnx")).unwrap();
    let truncated = d.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = onnx::load(&truncated).unwrap_err();
    assert!(matches!(e, OnnxError::NotOnnx { .. }), "{e}");

    // The dynamo export without its `.data` file.
    let alone = d.join("alone.onnx");
    std::fs::copy(dir().join("resnet_like.dynamo.onnx"), &alone).unwrap();
    let e = onnx::load(&alone).unwrap_err();
    assert!(matches!(e, OnnxError::ExternalData { .. }), "{e}");
    assert!(
        e.to_string().contains("resnet_like.dynamo.onnx.data"),
        "{e}"
    );

    assert!(matches!(
        onnx::load(d.join("none.onnx")),
        Err(OnnxError::Io { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Edits a fixture's protobuf and loads the result.
fn load_edited(
    name: &str,
    edit: impl FnOnce(&mut onnx::proto::ModelProto),
) -> Result<Graph, OnnxError> {
    use prost::Message;
    let bytes = std::fs::read(dir().join(name)).unwrap();
    let mut model = onnx::proto::ModelProto::decode(&bytes[..]).unwrap();
    edit(&mut model);
    let d = temp(name);
    let path = d.join("edited.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    let out = onnx::load(&path);
    std::fs::remove_dir_all(&d).unwrap();
    out
}

#[test]
fn unsupported_operators_and_opsets_are_reported_at_load() {
    let e = load_edited("resnet_like.legacy.onnx", |m| {
        let g = m.graph.as_mut().unwrap();
        for n in g.node.iter_mut().filter(|n| n.op_type == "Relu") {
            n.op_type = "Swoosh".into();
        }
        g.node[0].op_type = "Conv3000".into();
    })
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(
            "unsupported operator Swoosh (opset 13): 5 node(s), first `/stem/stem.2/Relu`"
        ),
        "{msg}"
    );
    assert!(msg.contains("unsupported operator Conv3000"), "{msg}");
    assert!(msg.contains("supported operators: Abs, Add"), "{msg}");

    let e = load_edited("resnet_like.legacy.onnx", |m| m.opset_import[0].version = 9).unwrap_err();
    assert!(
        e.to_string()
            .contains("opset 9 of domain `ai.onnx` is not supported (supported: 13 to 21)"),
        "{e}"
    );

    let e = load_edited("resnet_like.legacy.onnx", |m| {
        let g = m.graph.as_mut().unwrap();
        let n = g.node.iter_mut().find(|n| n.op_type == "MaxPool").unwrap();
        n.attribute.retain(|a| a.name != "kernel_shape");
    })
    .unwrap_err();
    assert!(e.to_string().contains("kernel_shape is required"), "{e}");
}

#[test]
fn unknown_tensors_list_close_matches() {
    let graph = load("resnet_like", "legacy");
    let e = graph.split(&["/layer2/relu_1/Relu_output"]).unwrap_err();
    assert!(
        e.to_string()
            .contains("close matches: /layer2/relu_1/Relu_output_0"),
        "{e}"
    );
    let e = graph.split(&["fc.weight"]).unwrap_err();
    assert!(e.to_string().contains("constant"), "{e}");
}

/// Single-operator models (attribute corners: reflect / edge / negative pads, negative slice
/// steps, uneven splits, ceil-mode and asymmetric pooling, SAME padding, dilation, every Resize
/// mode, ConvTranspose padding, ScatterND, Einsum, ...) equal
/// onnxruntime's outputs (measured: at most 9.5e-7, the convolutions; tolerance 2e-6).
#[test]
fn single_operators_match_onnxruntime() {
    let manifest = manifest();
    let cases = manifest["single_ops"].as_array().unwrap();
    assert!(cases.len() >= 50);
    let mut failures = vec![];
    let mut worst = (0.0f32, "");
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let graph = onnx::load(dir().join(format!("ops/{name}.onnx")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = npy(&format!("ops/{name}.x.npy"));
        let outputs: Vec<&str> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        let got = match graph.run_with(vec![("x", onnx::Value::Float(x))], &outputs) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for (o, v) in outputs.iter().zip(got) {
            let want = npy(&format!("ops/{name}.{o}.npy"));
            let v = v.to_float().unwrap();
            if v.shape() != want.shape() {
                failures.push(format!(
                    "{name}.{o}: shape {:?}, onnxruntime {:?}",
                    v.shape(),
                    want.shape()
                ));
                continue;
            }
            let d = max_diff(&v, &want);
            if d > 2e-6 {
                failures.push(format!("{name}.{o}: differs by {d}"));
            }
            if d > worst.0 {
                worst = (d, name);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("largest difference: {} ({})", worst.0, worst.1);
}

/// Images picked out of the fixture batch.
fn rows_of(x: &Float, rows: &[usize]) -> Float {
    let index = onnx::Ints::vector(rows.iter().map(|&r| r as i64).collect()).to_index_tensor();
    let mut shape = x.shape().to_vec();
    shape[0] = rows.len();
    Float::from_padded(x.padded().clone().select(x.padded_axis(0), index), shape).unwrap()
}

/// Both exporters' models run on batches of other sizes than the one they were exported with
/// (the legacy exporter's shape arithmetic reads the batch at run time).
#[test]
fn dynamic_batches_run() {
    for model in MODELS {
        let input = npy(&format!("{model}.input.npy"));
        for exporter in EXPORTERS {
            let graph = load(model, exporter);
            let expected = npy(&format!("{model}.{exporter}.logits.npy"));
            // Each size twice: the second run reuses the shape arithmetic of the first.
            for rows in [&[1usize][..], &[0, 1, 1], &[1], &[0, 1, 1]] {
                let got = graph.run(rows_of(&input, rows)).unwrap().remove(0);
                let d = max_diff(&got, &rows_of(&expected, rows));
                assert!(d < 1e-6, "{model} {exporter} rows {rows:?}: {d}");
            }
        }
    }
}

/// The layer listing maps PyTorch module paths to the tensors the fixture script found for
/// them (from the dynamo exporter's scope metadata and from the legacy exporter's node names),
/// with the shapes of one image.
#[test]
fn module_paths_resolve_to_their_output_tensors() {
    let manifest = manifest();
    for model in MODELS {
        let entry = &manifest["models"][model];
        let module = entry["module"].as_str().unwrap();
        let mut shape: Vec<usize> = entry["grad_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        shape[0] = 1;
        for exporter in EXPORTERS {
            let graph = load(model, exporter);
            let layers = onnx::layers(&graph, None).unwrap();
            let layer = onnx::resolve_layer(&layers, module).unwrap();
            assert_eq!(
                layer.tensor,
                cut_name(model, exporter),
                "{model} {exporter}"
            );
            assert_eq!(layer.shape, shape, "{model} {exporter}");
            // A tensor name resolves to itself.
            assert_eq!(
                onnx::resolve_layer(&layers, &layer.tensor).unwrap().tensor,
                layer.tensor
            );
        }
    }
    // Nested modules, and a module called twice (legacy: `relu_1`).
    for exporter in EXPORTERS {
        let layers = onnx::layers(&load("resnet_like", exporter), None).unwrap();
        let relu = onnx::resolve_layer(&layers, "layer2.relu").unwrap();
        let block = onnx::resolve_layer(&layers, "layer2").unwrap();
        assert_eq!(relu.tensor, block.tensor, "{exporter}");
        assert_eq!(
            onnx::resolve_layer(&layers, "stem").unwrap().shape,
            [1, 8, 32, 32],
            "{exporter}"
        );
        let e = onnx::resolve_layer(&layers, "layer3").unwrap_err();
        assert!(e.to_string().contains("close matches: layer"), "{e}");
        let vit = onnx::layers(&load("tiny_vit", exporter), None).unwrap();
        assert_eq!(
            onnx::resolve_layer(&vit, "blocks.0.norm1").unwrap().shape,
            [1, 17, 16],
            "{exporter}"
        );
    }
}

/// `sum(op(x) * r)` for a fixed pseudo-random `r`, and its gradient by autodiff.
fn weighted_sum(graph: &Graph, output: &str, x: &Float, grad: bool) -> (f64, Option<Vec<f32>>) {
    let shape = x.shape().to_vec();
    let leaf: Tensor<6> = if grad {
        x.padded().clone().autodiff().require_grad()
    } else {
        x.padded().clone()
    };
    let input = Float::from_padded(leaf.clone(), shape.clone()).unwrap();
    let y = graph
        .run_with(vec![("x", onnx::Value::Float(input))], &[output])
        .unwrap()
        .remove(0)
        .to_float()
        .unwrap();
    let r: Vec<f32> = (0..y.len()).map(|i| (i as f32 * 0.731).sin()).collect();
    // Summed in f64 on the host, so that the finite differences lose nothing to rounding.
    let value = y
        .to_vec()
        .iter()
        .zip(&r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum();
    let r = Float::from_vec(r, y.shape().to_vec()).unwrap();
    let total = (y.padded().clone() * r.padded().clone()).sum();
    if !grad {
        return (value, None);
    }
    let grads = total.backward();
    let g = Float::from_padded(leaf.grad(&grads).expect("a gradient"), shape).unwrap();
    (value, Some(g.to_vec()))
}

/// The affine operators' gradients (Resize, ConvTranspose, Einsum, ScatterND with constant indices)
/// through burn's autodiff equal exact finite differences: for `f(x) = sum(op(x) * r)`, affine
/// in `x`, `df/dx_i = f(e_i) - f(0)` (measured: at most 1.2e-6, on a gradient of 3.4 in
/// convt_output_shape, the f32 rounding of the gradient; tolerance 2e-6).
#[test]
fn affine_operators_backpropagate_exactly() {
    let manifest = manifest();
    let mut worst = (0.0f32, String::new());
    let affine: Vec<&serde_json::Value> = manifest["single_ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["affine"].as_bool() == Some(true))
        .collect();
    assert!(affine.len() >= 24, "{} affine cases", affine.len());
    for case in affine {
        let name = case["case"].as_str().unwrap();
        let graph = onnx::load(dir().join(format!("ops/{name}.onnx"))).unwrap();
        let output = case["outputs"][0].as_str().unwrap();
        let x = npy(&format!("ops/{name}.x.npy"));
        let (_, grad) = weighted_sum(&graph, output, &x, true);
        let grad = grad.unwrap();
        let zero = Float::from_vec(vec![0.0; x.len()], x.shape().to_vec()).unwrap();
        let (at_zero, _) = weighted_sum(&graph, output, &zero, false);
        for (i, g) in grad.iter().enumerate() {
            let mut e = vec![0.0; x.len()];
            e[i] = 1.0;
            let e = Float::from_vec(e, x.shape().to_vec()).unwrap();
            let fd = (weighted_sum(&graph, output, &e, false).0 - at_zero) as f32;
            let d = (fd - g).abs();
            if d > worst.0 {
                worst = (
                    d,
                    format!("{name}[{i}]: autodiff {g}, finite difference {fd}"),
                );
            }
        }
    }
    assert!(worst.0 < 2e-6, "{}", worst.1);
    println!("largest difference: {} ({})", worst.0, worst.1);
}

/// The global-average-pooling and linear heads that CAM reads, in the forms tf2onnx and the
/// exporters write (GlobalAveragePool, Squeeze, MatMul, Add; ReduceMean over axes -1 and 2,
/// Reshape, Gemm with alpha 0.5), give their classifier exactly; channel-last pooling axes are
/// not these heads.
#[test]
fn linear_heads_are_found_with_their_weights() {
    for kind in ["matmul", "gemm"] {
        let graph = onnx::load(dir().join(format!("ops/head_{kind}.onnx"))).unwrap();
        let w = graph
            .linear_head("x", "y", false)
            .unwrap_or_else(|| panic!("{kind}: no linear head found"));
        assert_eq!(
            max_diff(&w, &npy(&format!("ops/head_{kind}.w.npy"))),
            0.0,
            "{kind}"
        );
        assert!(graph.linear_head("x", "y", true).is_none(), "{kind}");
    }
}
