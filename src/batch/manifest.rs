//! The manifest: one JSON line per image with its result or its error (`manifest.jsonl` in the
//! output directory), read back to resume a run and joined across shards.
//!
//! A line is appended only once all of the image's files are written (each atomically), so an
//! image with a line is complete. An interrupted append leaves at most a partial last line,
//! which [`read`] drops. A finished run rewrites the manifest sorted by path with one line per
//! image, so an interrupted and resumed run ends with the same manifest as an uninterrupted
//! one. Lines hold no timings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inputs::Input;
use super::output::OutputFiles;
use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::io::{jsonl, parse_jsonl, write_atomic};
use crate::localize::BBox;

/// How an image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

/// The model's best class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Top1 {
    pub class: usize,
    pub label: String,
    pub probability: f32,
}

/// One explained target (class) of an image and its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub class: Option<usize>,
    pub label: Option<String>,
    /// The explained score (the logit; negated for a counterfactual).
    pub score: f32,
    /// In original-image pixels, inclusive; absent for an empty map.
    #[serde(rename = "box")]
    pub bbox: Option<BBox>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cam: Option<String>,
    /// The input-gradient array of the guided methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guided: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cam_raw: Vec<String>,
}

/// One manifest line. Output paths are relative to the manifest's directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The input image, as given or found.
    pub path: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Original image (width, height).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<(u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top1: Option<Top1>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// A digest of the options that shape the outputs: a resumed run redoes images explained
    /// with other options.
    pub settings: String,
}

/// `path` relative to `dir` with `/` separators (as it is when `dir` is not a prefix).
fn relative(path: &Path, dir: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Record {
    /// The line of an explained image whose files, written under `dir`, are `files`.
    pub fn ok(
        input: &Input,
        e: &Explanation,
        files: &OutputFiles,
        dir: &Path,
        settings: &str,
    ) -> Record {
        let mut raw = files.cam_raw.iter();
        let targets = e
            .explanations
            .iter()
            .enumerate()
            .map(|(i, m)| Target {
                class: m.class,
                label: m.label.clone(),
                score: m.score,
                bbox: m.bbox,
                overlay: files.overlay.get(i).map(|p| relative(p, dir)),
                cam: files.cam.get(i).map(|p| relative(p, dir)),
                guided: files.guided.get(i).map(|p| relative(p, dir)),
                cam_raw: if files.cam_raw.is_empty() {
                    Vec::new()
                } else {
                    raw.by_ref()
                        .take(m.raw.len())
                        .map(|p| relative(p, dir))
                        .collect()
                },
            })
            .collect();
        Record {
            path: input.key(),
            status: Status::Ok,
            error: None,
            image_size: Some(e.image_size),
            top1: e.top5.first().map(|p| Top1 {
                class: p.class,
                label: p.label.clone(),
                probability: p.probability,
            }),
            targets,
            json: files.json.as_ref().map(|p| relative(p, dir)),
            settings: settings.to_string(),
        }
    }

    /// The line of an image that failed.
    pub fn error(input: &Input, message: String, settings: &str) -> Record {
        Record {
            path: input.key(),
            status: Status::Error,
            error: Some(message),
            image_size: None,
            top1: None,
            targets: Vec::new(),
            json: None,
            settings: settings.to_string(),
        }
    }

    /// Every output file, relative to the manifest's directory.
    pub fn files(&self) -> Vec<&str> {
        let mut files = Vec::new();
        for t in &self.targets {
            files.extend(t.overlay.as_deref());
            files.extend(t.cam.as_deref());
            files.extend(t.guided.as_deref());
            files.extend(t.cam_raw.iter().map(String::as_str));
        }
        files.extend(self.json.as_deref());
        files
    }

    /// Whether this is a success made with `settings` whose files are all in `dir`.
    pub fn complete(&self, dir: &Path, settings: &str) -> bool {
        self.status == Status::Ok
            && self.settings == settings
            && self.files().iter().all(|f| dir.join(f).is_file())
    }

    /// The JSON line, without its newline.
    pub fn line(&self) -> String {
        serde_json::to_string(self).expect("serialisable")
    }

    fn rebase(&mut self, from: &Path, to: &Path) {
        if from == to {
            return;
        }
        let fix = |p: &mut String| *p = relative_path(&from.join(&*p), to);
        for t in &mut self.targets {
            t.overlay.as_mut().map(fix);
            t.cam.as_mut().map(fix);
            t.guided.as_mut().map(fix);
            t.cam_raw.iter_mut().for_each(fix);
        }
        self.json.as_mut().map(fix);
    }
}

/// The first 16 hex digits of the SHA-256 of `settings`' compact JSON.
pub fn settings_id(settings: &serde_json::Value) -> String {
    let digest = Sha256::digest(settings.to_string().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest as read back.
#[derive(Debug, Default)]
pub struct ManifestContents {
    /// One per image (the last line of each path wins), sorted by path.
    pub records: Vec<Record>,
    /// The file ended in a partial line (an interrupted append), which was dropped.
    pub partial_last_line: bool,
    /// Complete lines that are not records (dropped).
    pub bad_lines: usize,
}

/// Reads a manifest; a missing file is an empty manifest.
pub fn read(path: &Path) -> Result<ManifestContents> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ManifestContents::default());
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let lines = parse_jsonl::<Record>(&String::from_utf8_lossy(&bytes));
    let by_path: BTreeMap<String, Record> = lines
        .values
        .into_iter()
        .map(|r| (r.path.clone(), r))
        .collect();
    Ok(ManifestContents {
        records: by_path.into_values().collect(),
        partial_last_line: lines.partial_last_line,
        bad_lines: lines.bad_lines,
    })
}

/// Writes `records` (sorted by path, one line each) to `path`, atomically.
pub fn write(path: &Path, records: &[Record]) -> Result<()> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    write_atomic(path, jsonl(&sorted).as_bytes())
}

/// What [`merge`] found.
#[derive(Debug, Default)]
pub struct Merged {
    /// One per image, sorted by path; a success wins over an error for the same image.
    pub records: Vec<Record>,
    /// The manifests read.
    pub sources: Vec<PathBuf>,
    /// Shards missing from a set (`manifest.shard-I-of-N.jsonl` seen for some I, not all).
    pub missing_shards: Vec<String>,
    /// Partial last lines dropped, and bad lines skipped.
    pub partial_lines: usize,
    pub bad_lines: usize,
}

/// `(I, N)` of `manifest.shard-I-of-N.jsonl`.
pub fn shard_of(file_name: &str) -> Option<(usize, usize)> {
    let rest = file_name
        .strip_prefix("manifest.shard-")?
        .strip_suffix(".jsonl")?;
    let (i, n) = rest.split_once("-of-")?;
    Some((i.parse().ok()?, n.parse().ok()?))
}

/// Joins manifests: each source is a manifest file or a directory, whose `manifest*.jsonl`
/// files are read (except `out` itself). Output paths are rewritten relative to `out`'s
/// directory.
pub fn merge(sources: &[PathBuf], out: &Path) -> Result<Merged> {
    let out_dir = absolute_dir(
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )?;
    let out_abs = out_dir.join(out.file_name().unwrap_or_default());
    let mut files = Vec::new();
    for source in sources {
        if source.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(source)
                .map_err(|e| Error::io(source, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("manifest") && name.ends_with(".jsonl") && p.is_file()
                })
                .collect();
            found.sort();
            files.extend(found);
        } else if source.is_file() {
            files.push(source.clone());
        } else {
            return Err(Error::Invalid(format!(
                "{}: no such manifest or directory",
                source.display()
            )));
        }
    }
    let mut merged = Merged::default();
    let mut seen_files = std::collections::HashSet::new();
    let mut by_path: HashMap<String, Record> = HashMap::new();
    let mut shard_sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for file in files {
        let abs = absolute_dir(
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?
        .join(file.file_name().unwrap_or_default());
        if abs == out_abs || !seen_files.insert(abs.clone()) {
            continue;
        }
        if let Some((i, n)) = shard_of(&file.file_name().unwrap_or_default().to_string_lossy()) {
            shard_sets.entry(n).or_default().push(i);
        }
        let read = read(&file)?;
        merged.partial_lines += read.partial_last_line as usize;
        merged.bad_lines += read.bad_lines;
        let dir = abs.parent().expect("a file has a parent").to_path_buf();
        for mut r in read.records {
            r.rebase(&dir, &out_dir);
            match by_path.get(&r.path) {
                Some(old) if old.status == Status::Ok && r.status != Status::Ok => {}
                _ => {
                    by_path.insert(r.path.clone(), r);
                }
            }
        }
        merged.sources.push(file);
    }
    for (n, present) in shard_sets {
        for i in 0..n {
            if !present.contains(&i) {
                merged
                    .missing_shards
                    .push(format!("manifest.shard-{i}-of-{n}.jsonl"));
            }
        }
    }
    let mut records: Vec<Record> = by_path.into_values().collect();
    records.sort_by(|a, b| a.path.cmp(&b.path));
    merged.records = records;
    Ok(merged)
}

fn absolute_dir(dir: &Path) -> Result<PathBuf> {
    dir.canonicalize().map_err(|e| Error::io(dir, e))
}

/// `target` relative to the directory `base`, both absolute, with `/` separators.
fn relative_path(target: &Path, base: &Path) -> String {
    let normal = |p: &Path| -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (t, b) = (normal(target), normal(base));
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(t[common..].iter().cloned());
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, status: Status) -> Record {
        Record {
            path: path.to_string(),
            status,
            error: (status == Status::Error).then(|| "bad".to_string()),
            image_size: None,
            top1: None,
            targets: Vec::new(),
            json: (status == Status::Ok).then(|| format!("{path}.json")),
            settings: "s".to_string(),
        }
    }

    #[test]
    fn partial_last_line_is_dropped_and_last_line_of_a_path_wins() {
        let dir = std::env::temp_dir().join(format!("gradcam-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("manifest.jsonl");
        let a = record("a", Status::Error);
        let a2 = record("a", Status::Ok);
        let b = record("b", Status::Ok);
        let text = format!(
            "{}\n{}\n{}\n{}",
            b.line(),
            a.line(),
            a2.line(),
            &a.line()[..10]
        );
        std::fs::write(&path, text).unwrap();
        let r = read(&path).unwrap();
        assert!(r.partial_last_line);
        assert_eq!(r.bad_lines, 0);
        assert_eq!(r.records, [a2.clone(), b.clone()]);
        // A complete last line without its newline is kept.
        std::fs::write(&path, format!("{}\n{}", a.line(), b.line())).unwrap();
        let r = read(&path).unwrap();
        assert!(!r.partial_last_line);
        assert_eq!(r.records.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/o/s1/x.jpg"), Path::new("/o")),
            "s1/x.jpg"
        );
        assert_eq!(
            relative_path(Path::new("/o/s1/x.jpg"), Path::new("/o/m")),
            "../s1/x.jpg"
        );
        assert_eq!(
            relative_path(Path::new("/o/s1/../x.jpg"), Path::new("/o")),
            "x.jpg"
        );
        assert_eq!(shard_of("manifest.shard-2-of-3.jsonl"), Some((2, 3)));
        assert_eq!(shard_of("manifest.jsonl"), None);
    }
}
