//! torchvision's own checkpoint cache, where `torchvision.models.resnet50(weights=...)` leaves
//! its downloads (`resnet50-0676ba61.pth`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// `$TORCH_HOME/hub/checkpoints`, or `~/.cache/torch/hub/checkpoints`.
pub fn hub_dir() -> PathBuf {
    match std::env::var_os("TORCH_HOME") {
        Some(home) => PathBuf::from(home).join("hub").join("checkpoints"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/torch/hub/checkpoints"),
    }
}

/// torchvision's downloaded checkpoint for the model `name` (`resnet50-*.pth`); when there is
/// none, an error that says where it looked and what to pass instead.
pub fn find_checkpoint(name: &str) -> Result<PathBuf> {
    let prefix = format!("{name}-");
    std::fs::read_dir(hub_dir())
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".pth"))
        })
        .min()
        .ok_or_else(|| Error::Weights {
            path: PathBuf::from(format!("{name}-*.pth")),
            message: format!(
                "no checkpoint given and none found in torchvision's cache ({}); pass --weights FILE \
                 with torchvision's {name} checkpoint (.pth or .safetensors)",
                hub_dir().display()
            ),
        })
}
