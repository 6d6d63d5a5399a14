//! `gradcam explain --method deepfeaturefactorization`: each photo's concepts (Deep Feature
//! Factorization), written as one overlay per concept and pytorch-grad-cam's combined picture,
//! each with its legend, plus the maps and a JSON record. DFF does not make a map per class, so
//! it runs here instead of through the batch pipeline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use gradcam::batch::inputs::{Input, expand, read_list};
use gradcam::concepts::{ConceptExplainer, ConceptExplanation, DEFAULT_CONCEPTS, concept_pictures};
use gradcam::image::encode_png;
use gradcam::io::{npy_bytes, write_atomic};
use gradcam::model::CamModel;
use serde::Serialize;

use super::explain::ExplainArgs;

/// The files written for one photo.
#[derive(Debug, Default, Serialize)]
struct ConceptFiles {
    /// `<name>.dff.concept<i>.png`, one per concept.
    concepts: Vec<PathBuf>,
    /// `<name>.dff.png`: every concept in its colour.
    combined: Option<PathBuf>,
    /// `<name>.dff.npy`: the maps, `[concepts, height, width]` at network input resolution.
    maps: Option<PathBuf>,
    json: Option<PathBuf>,
}

/// The options of `explain` that ask for a map per class, which DFF does not make, or that
/// steer the batch pipeline, which DFF does not go through (it runs image by image).
fn refuse_map_options(args: &ExplainArgs) -> anyhow::Result<()> {
    let given: Vec<&str> = [
        (!args.classes.is_empty(), "--class"),
        (args.top_k.is_some(), "--top-k"),
        (args.target.is_some(), "--target"),
        (args.similar_to.is_some(), "--similar-to"),
        (args.mask.is_some(), "--mask"),
        (args.counterfactual, "--counterfactual"),
        (args.eigen_smooth, "--eigen-smooth"),
        (args.aug_smooth, "--aug-smooth"),
        (args.html, "--html"),
        (args.shard.is_some() || args.shards.is_some(), "--shard"),
        (args.layers.len() > 1, "--layer more than once"),
        (args.batch_size.is_some(), "--batch-size"),
        (args.jobs.is_some(), "--jobs"),
        (args.overwrite, "--overwrite"),
        (args.wait_lock, "--wait-lock"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    if !given.is_empty() {
        anyhow::bail!(
            "deepfeaturefactorization finds the concepts of each image, not a map per class, \
             and runs image by image: leave out {} (it takes --concepts, one --layer, \
             --image-weight and --format)",
            given.join(", ")
        );
    }
    Ok(())
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    refuse_map_options(args)?;
    let formats: gradcam::batch::FileFormats = args.format.parse()?;
    if formats.overlay.is_none() && !formats.npy && !formats.json {
        anyhow::bail!(
            "--format `{}`: deepfeaturefactorization writes its pictures (jpg or png: PNG files), \
             npy (the maps) and json; choose at least one",
            args.format
        );
    }
    let model: Arc<dyn CamModel> = args
        .model
        .load()
        .with_context(|| format!("loading {}", args.model.model))?
        .into();
    let explainer = ConceptExplainer::new(
        model,
        args.layers.first().map(String::as_str),
        args.concepts.unwrap_or(DEFAULT_CONCEPTS),
    )?;
    let mut arguments = args.images.clone();
    if let Some(list) = &args.from_list {
        arguments.extend(
            read_list(list).with_context(|| format!("reading --from-list {}", list.display()))?,
        );
    }
    let inputs = expand(&arguments, Some(&args.out));
    if inputs.is_empty() {
        eprintln!("gradcam: warning: no images found");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut failed = 0;
    for input in &inputs {
        match explain_one(&explainer, input, args, &formats) {
            Ok((e, files)) => report(&input.path, &e, &files, args.json, args.quiet),
            Err(err) => {
                failed += 1;
                eprintln!("gradcam: {}: {err:#}", input.path.display());
            }
        }
    }
    if !args.quiet {
        eprintln!(
            "gradcam: {} explained, {failed} failed ({} concepts each at {})",
            inputs.len() - failed,
            explainer.k,
            explainer.layer
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One photo: its concepts, then its files (each written atomically, the JSON last).
fn explain_one(
    explainer: &ConceptExplainer,
    input: &Input,
    args: &ExplainArgs,
    formats: &gradcam::batch::FileFormats,
) -> anyhow::Result<(ConceptExplanation, ConceptFiles)> {
    if let Some(problem) = &input.problem {
        anyhow::bail!("{problem}");
    }
    let image = gradcam::image::load(&input.path, args.max_pixels)?;
    let e = explainer.explain(&image)?;
    let base = args.out.join(&input.name);
    if let Some(parent) = base.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let path = |suffix: &str| PathBuf::from(format!("{}.{suffix}", base.display()));
    let mut files = ConceptFiles::default();
    if formats.overlay.is_some() {
        let pictures = concept_pictures(&image, &e, args.image_weight)?;
        for (c, picture) in e.concepts.iter().zip(&pictures.concepts) {
            let file = path(&format!("dff.concept{}.png", c.index));
            write_atomic(&file, &encode_png(picture)?)?;
            files.concepts.push(file);
        }
        let file = path("dff.png");
        write_atomic(&file, &encode_png(&pictures.combined)?)?;
        files.combined = Some(file);
    }
    if formats.npy {
        let (h, w) = e.input_size;
        let maps: Vec<f32> = e
            .concepts
            .iter()
            .flat_map(|c| c.map.iter().copied())
            .collect();
        let file = path("dff.npy");
        write_atomic(&file, &npy_bytes(&maps, &[e.concepts.len(), h, w]))?;
        files.maps = Some(file);
    }
    if formats.json {
        let file = path("json");
        files.json = Some(file.clone());
        let json = serde_json::json!({ "image": input.path, "explanation": &e, "files": &files });
        let text = serde_json::to_string_pretty(&json).expect("serialisable");
        write_atomic(&file, text.as_bytes())?;
    }
    Ok((e, files))
}

/// The photo's JSON on one line (`--json`), or its classes and concepts.
fn report(path: &Path, e: &ConceptExplanation, files: &ConceptFiles, json: bool, quiet: bool) {
    if json {
        let line = serde_json::json!({ "image": path, "explanation": e, "files": files });
        println!("{}", serde_json::to_string(&line).expect("serialisable"));
        return;
    }
    if quiet {
        return;
    }
    println!(
        "{} ({}x{}): deepfeaturefactorization at {}, {}",
        path.display(),
        e.image_size.0,
        e.image_size.1,
        e.layer,
        e.model
    );
    super::explain::print_top5(&e.top5);
    for (i, c) in e.concepts.iter().enumerate() {
        let target = files
            .concepts
            .get(i)
            .map_or(String::new(), |p| format!(" -> {}", p.display()));
        println!(
            "  {}{target}",
            gradcam::concepts::legend_text(c.index, &c.label)
        );
    }
    if let Some(combined) = &files.combined {
        println!("  all concepts -> {}", combined.display());
    }
}
