//! File output that never leaves a half-written file, JSON Lines files that runs append to as
//! they go, and the NumPy `.npy` format.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// The PID in the name of a temporary file of [`write_atomic`], `.NAME.PID.tmp`.
pub fn temp_file_owner(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (name, pid) = rest.rsplit_once('.')?;
    if name.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the temporary files of [`write_atomic`] left under `dir` (and its subdirectories)
/// by processes that no longer run, such as a killed run's; returns how many. Files of this
/// process and of live ones are kept, as are all of them where liveness cannot be checked.
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let me = std::process::id();
    let mut removed = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = match entry {
            Ok(e) => e,
            // A directory that vanished or cannot be listed has nothing we can remove.
            Err(_) => continue,
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let Some(pid) = temp_file_owner(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        if pid != me && !process_alive(pid) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(entry.path(), e)),
            }
        }
    }
    Ok(removed)
}

/// Whether process `pid` runs, as far as this system can tell (where it cannot, `true`).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// `values` as JSON Lines: one compact JSON value per line, each line ending in `\n`.
pub fn jsonl<T: Serialize>(values: &[T]) -> String {
    let mut text = String::new();
    for value in values {
        text.push_str(&serde_json::to_string(value).expect("serialisable"));
        text.push('\n');
    }
    text
}

/// The values of a JSON Lines text, as read back.
#[derive(Debug)]
pub struct JsonlRead<T> {
    /// The lines that parse, in order (blank lines are skipped).
    pub values: Vec<T>,
    /// The text ends in a line without its newline that does not parse: an interrupted append.
    pub partial_last_line: bool,
    /// Other lines that do not parse.
    pub bad_lines: usize,
}

/// Parses JSON Lines `text`.
pub fn parse_jsonl<T: DeserializeOwned>(text: &str) -> JsonlRead<T> {
    let mut read = JsonlRead {
        values: Vec::new(),
        partial_last_line: false,
        bad_lines: 0,
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len() - 1;
    for (i, line) in lines.into_iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(value) => read.values.push(value),
            // Only the last piece of a split can lack its newline.
            Err(_) if i == last => read.partial_last_line = true,
            Err(_) => read.bad_lines += 1,
        }
    }
    read
}

/// A JSON Lines file open for appending. Each [`append`](Self::append) goes out in one `write`
/// and is synced, so an interruption leaves at most a partial last line, which
/// [`parse_jsonl`] recognises.
pub struct JsonlAppender {
    file: File,
    path: PathBuf,
}

impl JsonlAppender {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> Result<JsonlAppender> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(JsonlAppender {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends `values`, one line each, in one write, and syncs.
    pub fn append<T: Serialize>(&mut self, values: &[T]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(jsonl(values).as_bytes())
            .and_then(|_| self.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// Encodes a little-endian `float32` array of `shape` in NumPy's `.npy` format (version 1.0).
pub fn npy_bytes(data: &[f32], shape: &[usize]) -> Vec<u8> {
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "npy data does not match its shape"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // The header, with its 10 leading bytes, is padded with spaces to a multiple of 64 and ends in '\n'.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a `.npy` file of little-endian `float32` or `float64` values (C order) into
/// `float32` values and their shape.
pub fn read_npy(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::Invalid(format!("{}: {m}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        _ if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("truncated header")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("bad header"))?;
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran order is not supported"));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let body = &bytes[start + header_len..];
    // The product of a hostile shape can overflow; such an array cannot match any body.
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let data: Vec<f32> = if header.contains("'<f4'") {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else if header.contains("'<f8'") {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    } else {
        return Err(bad("only float32 and float64 arrays are supported"));
    };
    if Some(data.len()) != expected {
        return Err(bad("data length does not match the shape"));
    }
    Ok((data, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_is_printed_once_in_the_error_chain() {
        let e = Error::io("/ro/out", std::io::Error::from_raw_os_error(30));
        let chain = format!("{:#}", anyhow::Error::from(e).context("writing"));
        let os = std::io::Error::from_raw_os_error(30).to_string();
        assert_eq!(chain, format!("writing: /ro/out: {os}"));
    }

    #[test]
    fn a_truncated_or_hostile_npy_is_an_error() {
        let path = std::env::temp_dir().join(format!("gradcam-npy-{}.npy", std::process::id()));
        let good = npy_bytes(&[1.0, 2.0], &[2]);
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }\n";
        let mut huge_shape = b"\x93NUMPY\x01\x00".to_vec();
        huge_shape.extend((header.len() as u16).to_le_bytes());
        huge_shape.extend(header.as_bytes());
        huge_shape.extend([0u8; 8]);
        for bytes in [
            b"\x93NUMPY\x02\x00\xff\xff".to_vec(),
            good[..20].to_vec(),
            {
                let mut b = good.clone();
                b[8] = 0xff;
                b
            },
            huge_shape,
        ] {
            std::fs::write(&path, &bytes).unwrap();
            assert!(read_npy(&path).is_err());
        }
        std::fs::write(&path, &good).unwrap();
        assert_eq!(read_npy(&path).unwrap(), (vec![1.0, 2.0], vec![2]));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn temp_file_names_give_their_owner() {
        assert_eq!(temp_file_owner(".cat.jpg.json.4242.tmp"), Some(4242));
        assert_eq!(temp_file_owner(".manifest.jsonl.7.tmp"), Some(7));
        for other in [
            "cat.4242.tmp",
            "..4242.tmp",
            ".cat.tmp",
            ".cat.42x.tmp",
            ".cat.42",
        ] {
            assert_eq!(temp_file_owner(other), None, "{other}");
        }
    }

    #[test]
    fn stale_temps_of_dead_processes_go_and_others_stay() {
        let dir = std::env::temp_dir().join(format!("gradcam-temps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        // A process that has exited: its PID is free (and not reused this quickly).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let files = [
            format!("sub/.cat.jpg.json.{dead}.tmp"),
            format!(".manifest.jsonl.{dead}.tmp"),
            format!(".manifest.jsonl.{me}.tmp"),
            "sub/.dog.json.1.tmp".to_string(), // PID 1 (init) is alive
            format!("cat.{dead}.tmp"),
        ];
        for f in &files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(&dir).unwrap(), 2);
        let left: Vec<bool> = files.iter().map(|f| dir.join(f).exists()).collect();
        assert_eq!(left, [false, false, true, true, true]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
