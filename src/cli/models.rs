//! `gradcam models`.

use std::process::ExitCode;

use anyhow::Context;
use burn::tensor::Device;
use clap::Args;
use gradcam::cam::METHODS;
use gradcam::model::{self, MODELS, ModelSpec, is_onnx_path};

use super::OnnxArgs;

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Show only this model (a built-in name or an ONNX file).
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub onnx: OnnxArgs,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<&str> = match &args.name {
        Some(n) => vec![n.as_str()],
        None => MODELS.iter().map(|m| m.name).collect(),
    };
    let device = Device::flex();
    let mut all = Vec::new();
    for name in names {
        // Random weights suffice to describe a built-in architecture.
        let m = if is_onnx_path(name) {
            let spec = ModelSpec {
                name: name.to_string(),
                onnx: args.onnx.options(name)?,
                ..ModelSpec::default()
            };
            spec.load(&device)
                .with_context(|| format!("loading {name}"))?
        } else {
            args.onnx.options(name)?;
            model::build(name, 1000, &device)?
        };
        let size = m.preprocess().size;
        let default = m.layer_index(m.default_layer())?;
        let layers: Vec<serde_json::Value> = m
            .layers()
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name,
                    "shape": l.output_shape(size),
                    "aliases": l.aliases,
                })
            })
            .collect();
        all.push(serde_json::json!({
            "name": name,
            "default_layer": m.default_layer(),
            "input_size": [size.0, size.1],
            "num_classes": m.num_classes(),
            "layers": layers,
        }));
        if !args.json {
            println!(
                "{name}  (input {}x{}, default layer {})",
                size.0,
                size.1,
                m.default_layer()
            );
            let width = m.layers().iter().map(|l| l.name.len()).max().unwrap_or(0);
            for (i, l) in m.layers().iter().enumerate() {
                let [c, h, w] = l.output_shape(size);
                let mark = if i == default { "  (default)" } else { "" };
                let also = if l.aliases.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", l.aliases.join(", "))
                };
                println!("  {:<width$} {c:>5} x {h:>3} x {w:<3}{mark}{also}", l.name);
            }
        }
    }
    if args.json {
        let out = serde_json::json!({ "models": all, "methods": METHODS });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("methods:");
        for m in METHODS {
            println!("  {:<20} {}", m.name, m.summary);
        }
    }
    Ok(ExitCode::SUCCESS)
}
