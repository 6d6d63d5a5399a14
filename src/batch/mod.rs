//! Whole datasets: batched, parallel, resumable and sharded explanation runs.
//!
//! A run ([`run`]: [`inputs::expand`] the arguments into a [`Job`], [`plan`] it against the
//! manifest, then [`pipeline::run`]) decodes images on worker threads while the model explains
//! batches, and writes each image's files as its batch completes ([`output`]), then its line
//! in the manifest ([`manifest`]). Re-running the same command skips the images whose line says they are
//! complete; `--shard I/N` takes a stable 1/N of the images, and [`manifest::merge`] joins the
//! shards' manifests.

pub mod html;
pub mod inputs;
pub mod lock;
pub mod manifest;
pub mod output;
pub mod pipeline;
pub mod progress;
mod run;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use inputs::{Input, Shard};
pub use manifest::{Record, Status};
pub use output::{FileFormats, OutputFiles, OverlayFormat};
pub use pipeline::{Done, PipelineOptions};
pub use run::{Job, Observer, RunOptions, Summary, run, settings_digest};

use crate::error::{Error, Result};
use crate::io::JsonlAppender;

/// What a run has to do, after reading its manifest.
#[derive(Debug)]
pub struct Plan {
    /// The images to explain, in input order.
    pub todo: Vec<Input>,
    /// Images of this shard that the manifest says are complete.
    pub skipped: usize,
    /// Images left to the other shards.
    pub other_shards: usize,
    /// The manifest's path.
    pub manifest: PathBuf,
    /// The manifest's lines that stay: complete images, and images not in this run.
    pub kept: Vec<Record>,
    /// The manifest ended in a partial line (an interrupted run), dropped.
    pub partial_last_line: bool,
    /// Lines of the manifest that were not records, dropped.
    pub bad_lines: usize,
}

/// Splits `inputs` into this shard's images to do and those already complete in the
/// manifest in `out` (lines made with the same `settings`, all files present); with
/// `overwrite`, everything of the shard is done again. Reads, and writes nothing.
pub fn plan(
    inputs: Vec<Input>,
    out: &Path,
    shard: Shard,
    settings: &str,
    overwrite: bool,
) -> Result<Plan> {
    let manifest = out.join(shard.manifest_name());
    let read = manifest::read(&manifest)?;
    let (mine, others): (Vec<Input>, Vec<Input>) =
        inputs.into_iter().partition(|i| shard.takes(&i.name));
    let complete: HashSet<&str> = if overwrite {
        HashSet::new()
    } else {
        read.records
            .iter()
            .filter(|r| r.complete(out, settings))
            .map(|r| r.path.as_str())
            .collect()
    };
    let mut skipped = 0;
    let mut todo = Vec::with_capacity(mine.len());
    for input in mine {
        if complete.contains(input.key().as_str()) {
            skipped += 1;
        } else {
            todo.push(input);
        }
    }
    let redo: HashSet<String> = todo.iter().map(Input::key).collect();
    let kept = read
        .records
        .into_iter()
        .filter(|r| !redo.contains(&r.path))
        .collect();
    Ok(Plan {
        todo,
        skipped,
        other_shards: others.len(),
        manifest,
        kept,
        partial_last_line: read.partial_last_line,
        bad_lines: read.bad_lines,
    })
}

/// Creates the output directory and rewrites the manifest with the lines that stay (so that
/// appends start on a clean line), then opens it for appending.
pub fn open_manifest(out: &Path, plan: &Plan) -> Result<JsonlAppender> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    if plan.manifest.exists() || !plan.kept.is_empty() {
        manifest::write(&plan.manifest, &plan.kept)?;
    }
    JsonlAppender::open(&plan.manifest)
}

/// Rewrites a finished run's manifest sorted by path, one line per image; returns its
/// records.
pub fn finish_manifest(path: &Path) -> Result<Vec<Record>> {
    let read = manifest::read(path)?;
    manifest::write(path, &read.records)?;
    Ok(read.records)
}
