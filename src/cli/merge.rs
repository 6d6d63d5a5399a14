//! `gradcam merge`: joins the manifests of shards (or of any runs) into one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use gradcam::batch::{Status, html, manifest};

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Manifests, or directories whose manifest*.jsonl files are read.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The merged manifest (output paths in it are made relative to its directory).
    #[arg(long, short)]
    pub out: PathBuf,
    /// Also write index.html, a gallery of all the images, next to the merged manifest.
    #[arg(long)]
    pub html: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Exit status 1 when a shard is missing from a set (`manifest.shard-I-of-N.jsonl` for some
/// I, not all): the merged manifest is then incomplete.
pub fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let merged = manifest::merge(&args.sources, &args.out)?;
    if merged.sources.is_empty() {
        anyhow::bail!(
            "no manifest found in {}",
            args.sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    manifest::write(&args.out, &merged.records)?;
    if args.html {
        let dir = args
            .out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let page = html::gallery(
            &format!("gradcam: {}", args.out.display()),
            &merged.records,
            false,
        );
        gradcam::io::write_atomic(&dir.join("index.html"), page.as_bytes())?;
    }
    for missing in &merged.missing_shards {
        eprintln!("gradcam: warning: {missing} is missing: the merged manifest is incomplete");
    }
    if merged.partial_lines > 0 {
        eprintln!(
            "gradcam: warning: dropped {} partial last lines (runs still going or interrupted)",
            merged.partial_lines
        );
    }
    if merged.bad_lines > 0 {
        eprintln!(
            "gradcam: warning: dropped {} unreadable lines",
            merged.bad_lines
        );
    }
    if !args.quiet {
        let ok = merged
            .records
            .iter()
            .filter(|r| r.status == Status::Ok)
            .count();
        eprintln!(
            "gradcam: merged {} manifests: {} images, {ok} explained, {} failed -> {}",
            merged.sources.len(),
            merged.records.len(),
            merged.records.len() - ok,
            args.out.display()
        );
    }
    Ok(if merged.missing_shards.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
