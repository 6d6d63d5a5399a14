//! The three stages of a run: decoding and preprocessing (in parallel, on a pool of worker
//! threads), the model (on the calling thread, one batch at a time) and writing the outputs
//! (in parallel again, on the same pool). Workers decode rounds of `max(batch size, 2 x
//! threads)` images; channels of one batch join the stages, so a few rounds of images at most
//! are in memory whatever the number of images.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use ::image::RgbImage;
use rayon::prelude::*;

use super::inputs::Input;
use super::output::{self, FileFormats, OutputFiles};
use crate::error::{Error, Result};
use crate::explain::{Classes, Explainer, Explanation, preprocess_with};
use crate::image::load;
use crate::timefmt::ms;

/// How to run the stages.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Images per forward/backward pass.
    pub batch_size: usize,
    /// Worker threads for decoding and writing.
    pub threads: usize,
    /// Images with more pixels are refused before decoding.
    pub max_pixels: u64,
    pub classes: Classes,
    /// The output directory.
    pub out: PathBuf,
    pub format: FileFormats,
    pub image_weight: f32,
}

/// One image, done (or failed), handed to the caller in input order.
#[derive(Debug)]
pub struct Done<'a> {
    pub input: &'a Input,
    /// The explanation and the files written, or what went wrong.
    pub outcome: std::result::Result<(Explanation, OutputFiles), String>,
    /// Milliseconds spent decoding and preprocessing, and writing the outputs.
    pub decode_ms: f64,
    pub write_ms: f64,
}

/// One image out of the decoding stage: the photo and its network input, or what went wrong.
struct Decoded<'a> {
    input: &'a Input,
    result: std::result::Result<(RgbImage, Vec<f32>), String>,
    decode_ms: f64,
}

/// One image out of the model stage.
struct Explained<'a> {
    input: &'a Input,
    result: std::result::Result<(RgbImage, Explanation), String>,
    decode_ms: f64,
}

/// Explains `inputs` in batches; `on_batch` receives results in input order, on the writing
/// thread, once their files are written (a batch, or several that were ready together). An
/// error from `on_batch` stops the run and is returned; failures of single images are
/// results, not errors.
pub fn run<'a, F>(
    explainer: &Explainer,
    inputs: &'a [Input],
    options: &PipelineOptions,
    on_batch: F,
) -> Result<()>
where
    F: FnMut(Vec<Done<'a>>) -> Result<()> + Send,
{
    if inputs.is_empty() {
        return Ok(());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1))
        .thread_name(|i| format!("gradcam-io-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start worker threads: {e}")))?;
    let preprocess = explainer.model.preprocess();
    let batch_size = options.batch_size.max(1);
    // Images decoded (and written) together: enough to keep the workers busy even with
    // small batches.
    let round = (2 * options.threads).max(batch_size).div_ceil(batch_size) * batch_size;
    let (decoded_tx, decoded_rx) = sync_channel::<Vec<Decoded<'a>>>(1);
    let (explained_tx, explained_rx) = sync_channel::<Vec<Explained<'a>>>(1);

    std::thread::scope(|scope| {
        let pool = &pool;
        scope.spawn(move || {
            for round in inputs.chunks(round) {
                let decoded: Vec<Decoded<'a>> = pool.install(|| {
                    round
                        .par_iter()
                        .map(|input| {
                            let start = Instant::now();
                            let result = match &input.problem {
                                Some(p) => Err(format!("{}: {p}", input.path.display())),
                                None => load(&input.path, options.max_pixels)
                                    .map(|img| {
                                        let x = preprocess_with(&preprocess, &img);
                                        (img, x)
                                    })
                                    .map_err(|e| e.to_string()),
                            };
                            Decoded {
                                input,
                                result,
                                decode_ms: ms(start),
                            }
                        })
                        .collect()
                });
                let mut decoded = decoded.into_iter();
                loop {
                    let batch: Vec<Decoded<'a>> = decoded.by_ref().take(batch_size).collect();
                    if batch.is_empty() {
                        break;
                    }
                    if decoded_tx.send(batch).is_err() {
                        return;
                    }
                }
            }
        });
        let writer = scope.spawn(move || write_stage(explained_rx, pool, round, options, on_batch));
        model_stage(explainer, decoded_rx, explained_tx, options);
        writer.join().expect("the writing thread does not panic")
    })
}

fn model_stage<'a>(
    explainer: &Explainer,
    decoded: Receiver<Vec<Decoded<'a>>>,
    explained: SyncSender<Vec<Explained<'a>>>,
    options: &PipelineOptions,
) {
    for batch in decoded {
        let mut images = Vec::new();
        let mut data = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for Decoded {
            input,
            result,
            decode_ms,
        } in batch
        {
            match result {
                Ok((image, x)) => {
                    images.push(image);
                    data.extend_from_slice(&x);
                    slots.push((input, None, decode_ms));
                }
                Err(e) => slots.push((input, Some(e), decode_ms)),
            }
        }
        let explanations = explainer.explain_inputs(data, &images, &options.classes);
        let mut out = Vec::with_capacity(slots.len());
        match explanations {
            Ok(explanations) => {
                let mut pairs = images.into_iter().zip(explanations);
                for (input, err, decode_ms) in slots {
                    let result = match err {
                        Some(e) => Err(e),
                        None => Ok(pairs.next().expect("one explanation per image")),
                    };
                    out.push(Explained {
                        input,
                        result,
                        decode_ms,
                    });
                }
            }
            Err(e) => {
                for (input, err, decode_ms) in slots {
                    let message = err.unwrap_or_else(|| {
                        format!("{}: explaining failed: {e}", input.path.display())
                    });
                    out.push(Explained {
                        input,
                        result: Err(message),
                        decode_ms,
                    });
                }
            }
        }
        if explained.send(out).is_err() {
            break;
        }
    }
}

fn write_stage<'a, F>(
    explained: Receiver<Vec<Explained<'a>>>,
    pool: &rayon::ThreadPool,
    round: usize,
    options: &PipelineOptions,
    mut on_batch: F,
) -> Result<()>
where
    F: FnMut(Vec<Done<'a>>) -> Result<()>,
{
    while let Ok(mut batch) = explained.recv() {
        // Batches that are already waiting are written together, in parallel.
        while batch.len() < round {
            match explained.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let done: Vec<Done<'a>> = pool.install(|| {
            batch
                .into_par_iter()
                .map(
                    |Explained {
                         input,
                         result,
                         decode_ms,
                     }| {
                        let start = Instant::now();
                        let outcome = result.and_then(|(image, explanation)| {
                            output::write(
                                &options.out,
                                &input.name,
                                &image,
                                &explanation,
                                &options.format,
                                options.image_weight,
                            )
                            .map(|files| (explanation, files))
                            .map_err(|e| {
                                format!("{}: writing the outputs failed: {e}", input.path.display())
                            })
                        });
                        Done {
                            input,
                            outcome,
                            decode_ms,
                            write_ms: ms(start),
                        }
                    },
                )
                .collect()
        });
        on_batch(done)?;
    }
    Ok(())
}
