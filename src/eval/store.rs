//! `results.jsonl`: one [`Record`] a line, appended as each (image, method) pair is done, so a
//! run can be interrupted at any moment and resumed.
//!
//! Each line goes out in one `write` and is synced; a line cut short by a crash (no final
//! newline, or not valid JSON) is dropped when the file is opened again, and that pair is
//! evaluated again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::Record;
use crate::error::{Error, Result};

/// The results file, open for appending.
pub struct Store {
    path: PathBuf,
    file: File,
}

impl Store {
    /// Opens (or creates) the file and reads the records already there, dropping a final
    /// incomplete line.
    pub fn open(path: &Path) -> Result<(Store, Vec<Record>)> {
        let io = |e| Error::io(path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        if complete < bytes.len() {
            file.set_len(complete as u64).map_err(io)?;
        }
        let text = String::from_utf8_lossy(&bytes[..complete]);
        let records = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str::<Record>(l).ok())
            .collect();
        Ok((
            Store {
                path: path.to_path_buf(),
                file,
            },
            records,
        ))
    }

    /// Appends one record as one line.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(record).expect("serialisable");
        line.push('\n');
        let io = |e| Error::io(&self.path, e);
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}
