//! `gradcam models`.

use std::process::ExitCode;

use burn::tensor::Device;
use clap::Args;
use gradcam::cam::METHODS;
use gradcam::model::{self, MODELS};

#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Show only this model.
    pub name: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ModelsArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<&str> = match &args.name {
        Some(n) => vec![n.as_str()],
        None => MODELS.iter().map(|m| m.name).collect(),
    };
    let device = Device::flex();
    let mut all = Vec::new();
    for name in names {
        // Random weights suffice to describe the architecture.
        let m = model::build(name, 1000, &device)?;
        let size = m.preprocess().size;
        let default = m.layer_index(m.default_layer())?;
        let layers: Vec<serde_json::Value> = m
            .layers()
            .iter()
            .map(|l| serde_json::json!({ "name": l.name, "shape": l.output_shape(size) }))
            .collect();
        all.push(serde_json::json!({
            "name": name,
            "default_layer": m.default_layer(),
            "input_size": [size.0, size.1],
            "layers": layers,
        }));
        if !args.json {
            println!(
                "{name}  (input {}x{}, default layer {})",
                size.0,
                size.1,
                m.default_layer()
            );
            for (i, l) in m.layers().iter().enumerate() {
                let [c, h, w] = l.output_shape(size);
                let mark = if i == default { "  (default)" } else { "" };
                println!("  {:<14} {c:>5} x {h:>3} x {w:<3}{mark}", l.name);
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
