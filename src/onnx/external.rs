//! Tensors stored outside the model file (`model.onnx.data`, which torch's default exporter
//! writes): the `location` must name a file inside the model's directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Reads external tensor data, each file once.
pub(crate) struct ExternalData {
    dir: PathBuf,
    files: HashMap<PathBuf, Vec<u8>>,
}

impl ExternalData {
    /// A reader for the model in `model_path`'s directory.
    pub(crate) fn new(model_path: &Path) -> Self {
        let dir = model_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        ExternalData {
            dir,
            files: HashMap::new(),
        }
    }

    /// `length` bytes (all of the rest when `None`) from `offset` of the file at `location`.
    pub(crate) fn read(
        &mut self,
        location: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<&[u8], String> {
        let path = confined(&self.dir, location)?;
        if !self.files.contains_key(&path) {
            let bytes =
                std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            self.files.insert(path.clone(), bytes);
        }
        let bytes = &self.files[&path];
        let start = usize::try_from(offset).map_err(|_| format!("offset {offset} too large"))?;
        let end = match length {
            Some(n) => start.checked_add(n as usize).ok_or("length overflows")?,
            None => bytes.len(),
        };
        bytes.get(start..end).ok_or_else(|| {
            format!(
                "bytes {start}..{end} are beyond the end of {} ({} bytes): truncated?",
                path.display(),
                bytes.len()
            )
        })
    }
}

/// `dir/location`, refused unless it is a relative path that stays inside `dir`, symlinks
/// resolved.
fn confined(dir: &Path, location: &str) -> Result<PathBuf, String> {
    let relative = Path::new(location);
    if location.is_empty() {
        return Err("empty location".into());
    }
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "location `{location}` must be a relative path inside the model's directory"
        ));
    }
    let joined = dir.join(relative);
    let real = joined
        .canonicalize()
        .map_err(|e| format!("missing file {}: {e}", joined.display()))?;
    let real_dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if !real.starts_with(&real_dir) {
        return Err(format!(
            "location `{location}` resolves to {}, outside the model's directory",
            real.display()
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_stay_inside_the_model_directory() {
        let dir = std::env::temp_dir().join(format!("gradcam-onnx-ext-{}", std::process::id()));
        let inside = dir.join("m");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::write(inside.join("w.data"), [1u8, 2, 3, 4]).unwrap();
        std::fs::write(dir.join("secret"), [9u8]).unwrap();
        let mut ext = ExternalData::new(&inside.join("model.onnx"));
        assert_eq!(ext.read("w.data", 1, Some(2)).unwrap(), [2, 3]);
        assert_eq!(ext.read("./w.data", 0, None).unwrap(), [1, 2, 3, 4]);
        assert!(
            ext.read("w.data", 3, Some(2))
                .unwrap_err()
                .contains("truncated")
        );
        assert!(
            ext.read("../secret", 0, None)
                .unwrap_err()
                .contains("relative path")
        );
        let abs = dir.join("secret").display().to_string();
        assert!(
            ext.read(&abs, 0, None)
                .unwrap_err()
                .contains("relative path")
        );
        assert!(
            ext.read("none.data", 0, None)
                .unwrap_err()
                .contains("missing file")
        );
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("secret"), inside.join("link")).unwrap();
            assert!(ext.read("link", 0, None).unwrap_err().contains("outside"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
