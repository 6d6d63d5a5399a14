//! From command-line arguments to a deterministic list of images: files, directories (walked
//! recursively), glob patterns and list files; each image gets a unique output name.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The extensions a directory walk or a glob pattern keeps (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp"];

/// One image to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The file, as given or as found under a directory or a pattern.
    pub path: PathBuf,
    /// Where its outputs go, relative to the output directory and without extension:
    /// `cat` for `cat.jpg`, `sub/cat` for a file found in `sub/` of a walked directory.
    pub name: String,
    /// Set when the argument could not become an image (a pattern that matches nothing, a
    /// directory that cannot be read): recorded as this image's error.
    pub problem: Option<String>,
}

impl Input {
    /// The path as the manifest records it.
    pub fn key(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Reads a list of paths, one per line (`-`: standard input). Empty lines and lines that
/// start with `#` are skipped; each line is taken as a command-line argument would be.
pub fn read_list(file: &Path) -> Result<Vec<PathBuf>> {
    let lines: Vec<String> = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("<stdin>", e))?
    } else {
        let text = std::fs::read(file).map_err(|e| Error::io(file, e))?;
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_string)
            .collect()
    };
    Ok(lines
        .iter()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(PathBuf::from)
        .collect())
}

/// Expands arguments into images, in argument order, each directory's and pattern's images
/// sorted by path; an image reached twice is kept once (the first time), however it was
/// reached: other spellings of its path, symbolic links, hard links. `exclude` (the output directory) is
/// never walked into, so that outputs are not taken for inputs.
///
/// An argument that exists is a file or a directory; one that does not and contains `*`, `?`
/// or `[` is a glob pattern; anything else is a file (that will fail to load, and be recorded
/// so). Directories and patterns keep files with an image extension only and skip hidden
/// files and directories (names starting with `.`); files named one by one are taken as they
/// are (their content decides the format).
pub fn expand(args: &[PathBuf], exclude: Option<&Path>) -> Vec<Input> {
    let exclude = exclude.and_then(|p| p.canonicalize().ok());
    let mut found: Vec<(PathBuf, String, Option<String>)> = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        if arg.is_dir() {
            walk(arg, exclude.as_deref(), &mut found);
        } else if !arg.exists() && text.contains(['*', '?', '[']) {
            pattern(&text, exclude.as_deref(), &mut found);
        } else {
            found.push((arg.clone(), stem(arg), None));
        }
    }
    let mut seen = HashSet::new();
    found.retain(|(path, _, problem)| {
        seen.insert(match problem {
            Some(_) => FileId::Path(path.clone()),
            None => FileId::of(path),
        })
    });
    unique_names(found)
}

/// What makes two paths one file: device and inode where the system has them (hard links,
/// symbolic links, `./a` and `a`), else the canonical path, else the path as given (a file
/// that does not exist, which fails to load later).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FileId {
    Inode(u64, u64),
    Path(PathBuf),
}

impl FileId {
    fn of(path: &Path) -> FileId {
        #[cfg(unix)]
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            return FileId::Inode(meta.dev(), meta.ino());
        }
        FileId::Path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "image".to_string())
}

/// `path` relative to `base`, without its extension, with `/` between components.
fn relative_name(path: &Path, base: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    match parts.pop() {
        Some(_) => {
            parts.push(stem(rel));
            parts.join("/")
        }
        None => stem(path),
    }
}

/// The target of `path` when it is a symbolic link to nothing.
fn dangling_link(path: &Path) -> Option<PathBuf> {
    let link = std::fs::symlink_metadata(path).ok()?;
    if link.file_type().is_symlink() && std::fs::metadata(path).is_err() {
        std::fs::read_link(path).ok()
    } else {
        None
    }
}

fn hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

fn is_excluded(path: &Path, exclude: Option<&Path>) -> bool {
    exclude.is_some_and(|ex| path.canonicalize().is_ok_and(|c| c == ex))
}

fn walk(dir: &Path, exclude: Option<&Path>, found: &mut Vec<(PathBuf, String, Option<String>)>) {
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0
                || !(hidden(e.file_name())
                    || e.file_type().is_dir() && is_excluded(e.path(), exclude))
        });
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() && is_image_path(e.path()) => {
                found.push((e.path().to_path_buf(), relative_name(e.path(), dir), None));
            }
            Ok(_) => {}
            Err(err) => {
                let path = err.path().unwrap_or(dir).to_path_buf();
                let message = match (dangling_link(&path), err.io_error()) {
                    (Some(target), _) => format!(
                        "broken symbolic link: its target {} does not exist",
                        target.display()
                    ),
                    (None, Some(io)) => format!("cannot read directory: {io}"),
                    (None, None) => err.to_string(),
                };
                let name = relative_name(&path, dir);
                found.push((path, name, Some(message)));
            }
        }
    }
}

fn pattern(text: &str, exclude: Option<&Path>, found: &mut Vec<(PathBuf, String, Option<String>)>) {
    // The pattern's literal directory: names are relative to it.
    let base: PathBuf = Path::new(text)
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = match glob::glob_with(text, options) {
        Ok(paths) => paths,
        Err(e) => {
            found.push((
                PathBuf::from(text),
                stem(Path::new(text)),
                Some(format!("bad pattern: {e}")),
            ));
            return;
        }
    };
    let before = found.len();
    let mut matches: Vec<PathBuf> = paths.filter_map(|p| p.ok()).collect();
    matches.sort();
    for path in matches {
        if path.is_dir() {
            if !is_excluded(&path, exclude) {
                let start = found.len();
                walk(&path, exclude, found);
                for item in &mut found[start..] {
                    item.1 = relative_name(&item.0, &base);
                }
            }
        } else if is_image_path(&path) {
            let name = relative_name(&path, &base);
            found.push((path, name, None));
        }
    }
    if found.len() == before {
        found.push((
            PathBuf::from(text),
            stem(Path::new(text)),
            Some("no image matches this pattern".to_string()),
        ));
    }
}

/// Gives every image a distinct output name: names shared by several images keep their
/// extension (`cat.jpg`, `cat.png`), and any that still clash get `-2`, `-3`, ... in input
/// order.
fn unique_names(found: Vec<(PathBuf, String, Option<String>)>) -> Vec<Input> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, name, _) in &found {
        *count.entry(name.as_str()).or_default() += 1;
    }
    let names: Vec<String> = found
        .iter()
        .map(
            |(path, name, _)| match (count[name.as_str()] > 1, path.extension()) {
                (true, Some(ext)) => format!("{name}.{}", ext.to_string_lossy()),
                _ => name.clone(),
            },
        )
        .collect();
    let mut taken: HashSet<String> = HashSet::new();
    let mut clashing: HashMap<&str, usize> = HashMap::new();
    for n in &names {
        *clashing.entry(n.as_str()).or_default() += 1;
    }
    // Names that are unique are reserved first, so that a suffix never takes one.
    for n in &names {
        if clashing[n.as_str()] == 1 {
            taken.insert(n.clone());
        }
    }
    let mut inputs = Vec::with_capacity(found.len());
    for ((path, _, problem), name) in found.iter().zip(&names) {
        // A unique name, or the first of a clash, stays as it is.
        let name = if clashing[name.as_str()] == 1 || taken.insert(name.clone()) {
            name.clone()
        } else {
            (2..)
                .map(|i| format!("{name}-{i}"))
                .find(|n| taken.insert(n.clone()))
                .expect("some suffix is free")
        };
        inputs.push(Input {
            path: path.clone(),
            name,
            problem: problem.clone(),
        });
    }
    inputs
}

/// One part of a run split over several processes: this process does part `index` (from 0)
/// of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole run.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether this shard takes the image of output name `name`: by a stable hash of the
    /// name (SHA-256), so that the split does not depend on the other images and stays the
    /// same when images are added.
    pub fn takes(&self, name: &str) -> bool {
        if self.count <= 1 {
            return true;
        }
        let digest = Sha256::digest(name.as_bytes());
        let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        (value % self.count as u64) as usize == self.index
    }

    /// The manifest's file name: `manifest.jsonl`, or `manifest.shard-I-of-N.jsonl`.
    pub fn manifest_name(&self) -> String {
        if self.count <= 1 {
            "manifest.jsonl".to_string()
        } else {
            format!("manifest.shard-{}-of-{}.jsonl", self.index, self.count)
        }
    }

    /// The gallery's file name: `index.html`, or `index.shard-I-of-N.html`.
    pub fn html_name(&self) -> String {
        if self.count <= 1 {
            "index.html".to_string()
        } else {
            format!("index.shard-{}-of-{}.html", self.index, self.count)
        }
    }

    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || Error::Invalid(format!("--shard takes I/N with 0 <= I < N, got `{text}`"));
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The shard: `--shard I/N` if given; else a Slurm array task (`SLURM_ARRAY_TASK_ID`
    /// less `SLURM_ARRAY_TASK_MIN`, divided by `SLURM_ARRAY_TASK_STEP`, of
    /// `SLURM_ARRAY_TASK_COUNT`, or `shards` when given); else a Kubernetes indexed Job's
    /// `JOB_COMPLETION_INDEX` of `shards` (`--shards N`, else `GRADCAM_SHARDS`); else the
    /// whole run. Returns the shard and where it came from.
    pub fn resolve(
        given: Option<&str>,
        shards: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, &'static str)> {
        if let Some(text) = given {
            return Ok((Shard::parse(text)?, "--shard"));
        }
        let number = |name: &str| -> Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::Invalid(format!("{name}={v} is not a number"))),
            }
        };
        let shards = match shards {
            Some(n) => Some(n),
            None => number("GRADCAM_SHARDS")?,
        };
        let check =
            |index: usize, count: usize, from: &'static str| -> Result<(Shard, &'static str)> {
                if count == 0 || index >= count {
                    return Err(Error::Invalid(format!(
                        "shard {index} of {count} (from {from}) is out of range"
                    )));
                }
                Ok((Shard { index, count }, from))
            };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let count = match shards {
                Some(n) => n,
                None => number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                    Error::Invalid(
                        "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into(),
                    )
                })?,
            };
            return check(id.saturating_sub(min) / step, count, "SLURM_ARRAY_TASK_ID");
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = shards.ok_or_else(|| {
                Error::Invalid(
                    "JOB_COMPLETION_INDEX is set: give the number of shards (the Job's completions) \
                     with --shards N or GRADCAM_SHARDS, or --shard 0/1 to do everything here"
                        .into(),
                )
            })?;
            return check(index, count, "JOB_COMPLETION_INDEX");
        }
        match shards {
            Some(n) if n > 1 => Err(Error::Invalid(format!(
                "--shards {n} needs the shard index: --shard I/{n}, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX"
            ))),
            _ => Ok((Shard::ALL, "")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_from_flags_and_environment() {
        assert_eq!(
            Shard::resolve(Some("1/3"), None, env(&[])).unwrap().0,
            Shard { index: 1, count: 3 }
        );
        assert!(Shard::resolve(Some("3/3"), None, env(&[])).is_err());
        assert!(Shard::resolve(Some("x"), None, env(&[])).is_err());
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(
            Shard::resolve(None, None, env(&slurm)).unwrap().0,
            Shard { index: 1, count: 3 }
        );
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert!(Shard::resolve(None, None, env(&k8s)).is_err());
        assert_eq!(
            Shard::resolve(None, Some(4), env(&k8s)).unwrap().0,
            Shard { index: 2, count: 4 }
        );
        let k8s = [("JOB_COMPLETION_INDEX", "2"), ("GRADCAM_SHARDS", "3")];
        assert_eq!(
            Shard::resolve(None, None, env(&k8s)).unwrap().0,
            Shard { index: 2, count: 3 }
        );
        assert_eq!(Shard::resolve(None, None, env(&[])).unwrap().0, Shard::ALL);
        assert!(Shard::resolve(None, Some(3), env(&[])).is_err());
    }

    #[test]
    fn shards_partition_the_names() {
        let names: Vec<String> = (0..300).map(|i| format!("img{i}")).collect();
        let mut total = 0;
        for index in 0..3 {
            let shard = Shard { index, count: 3 };
            let n = names.iter().filter(|n| shard.takes(n)).count();
            assert!((60..140).contains(&n), "{n}");
            total += n;
        }
        assert_eq!(total, 300);
        assert!(names.iter().all(|n| Shard::ALL.takes(n)));
    }

    #[test]
    fn clashing_names_are_made_unique() {
        let found = [
            "a/cat.jpg",
            "a/cat.png",
            "b/cat.jpg",
            "dog.jpg",
            "b/cat.jpg-2",
        ]
        .iter()
        .map(|p| (PathBuf::from(p), stem(Path::new(p)), None))
        .collect();
        let names: Vec<String> = unique_names(found).into_iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            ["cat.jpg", "cat.png", "cat.jpg-3", "dog", "cat.jpg-2"]
        );
    }

    #[test]
    fn names_are_relative_without_extension() {
        assert_eq!(
            relative_name(Path::new("data/x/y/cat.JPG"), Path::new("data")),
            "x/y/cat"
        );
        assert_eq!(relative_name(Path::new("cat.jpg"), Path::new("")), "cat");
        assert!(is_image_path(Path::new("a.WebP")) && !is_image_path(Path::new("a.txt")));
    }

    #[cfg(unix)]
    #[test]
    fn an_image_reached_twice_is_kept_once_and_a_dangling_link_says_so() {
        let dir = std::env::temp_dir().join(format!("gradcam-inputs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("dsx");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("cat.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(data.join("cat.jpg"), data.join("link.jpg")).unwrap();
        std::fs::hard_link(data.join("cat.jpg"), dir.join("hard.jpg")).unwrap();
        let args: Vec<PathBuf> = vec![
            data.join("cat.jpg"),
            data.join("./cat.jpg"),
            dir.join("dsx/../dsx/cat.jpg"),
            data.join("link.jpg"),
            dir.join("hard.jpg"),
            data.clone(),
        ];
        let found = expand(&args, None);
        let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["cat"], "{found:?}");

        std::os::unix::fs::symlink(dir.join("gone.jpg"), data.join("dangling.jpg")).unwrap();
        let found = expand(std::slice::from_ref(&data), None);
        let problem = found.iter().find_map(|i| i.problem.as_deref()).unwrap();
        assert!(
            problem.starts_with("broken symbolic link: its target") && problem.contains("gone.jpg"),
            "{problem}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
