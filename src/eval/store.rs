//! `results.jsonl`: one [`ImageResult`] a line, appended as each (image, method) pair is done, so a
//! run can be interrupted at any moment and resumed.
//!
//! Each line goes out in one `write` and is synced ([`JsonlAppender`]); a line cut short by a
//! crash (no final newline) is cut off the file when it is opened again, and that pair is
//! evaluated again. Complete lines that are not records are skipped.

use std::path::Path;

use super::evaluate::ImageResult;
use crate::error::{Error, Result};
use crate::io::{JsonlAppender, parse_jsonl};

/// Opens (or creates) the results file for appending, with the records already there.
pub fn open(path: &Path) -> Result<(JsonlAppender, Vec<ImageResult>)> {
    let io = |e| Error::io(path, e);
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(e)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    if complete < bytes.len() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        file.set_len(complete as u64).map_err(io)?;
    }
    let records = parse_jsonl(&String::from_utf8_lossy(&bytes[..complete])).values;
    Ok((JsonlAppender::open(path)?, records))
}
