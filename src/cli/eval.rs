//! `gradcam eval`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use gradcam::eval::{self, Dataset, EvalConfig, EvalProgress, Settings};
use gradcam::timefmt::human;

use super::ModelArgs;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The labelled image set: a directory with `annotations.csv` (imagenet-val-1300 style), or
    /// with Pascal-VOC-style XML annotations (ImageNet synsets or VOC class names).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Method to evaluate (repeat for several). Default: gradcam, gradcam++, xgradcam,
    /// layercam, hirescam, eigencam, ablationcam.
    #[arg(long = "method")]
    pub methods: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Layer to explain (repeat for several, fused by their mean; refinecam: their product; legrad: transformer blocks, default the last 4). Default: the model's.
    #[arg(long = "layer", short)]
    pub layers: Vec<String>,
    /// Evaluate only the first N images (in file name order).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Deletion, Insertion and ROAD on the first N images only (they cost ~50 forward passes
    /// and 18 imputations per image and method).
    #[arg(long, default_value_t = 200)]
    pub faithfulness_limit: usize,
    /// Report directory: report.md, report.json, PNG plots, and results.jsonl, from which an
    /// interrupted run resumes.
    #[arg(long)]
    pub report: PathBuf,
    /// Deletion and Insertion steps (pixels per step: the input's pixels / steps).
    #[arg(long, default_value_t = 16)]
    pub steps: usize,
    /// ROAD: percentages of pixels removed (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,30,40,50,60,70,80,90"
    )]
    pub road: Vec<f64>,
    /// Seed of ROAD's imputation noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Perturbed inputs per forward pass (`--batch` is the old name, still accepted).
    #[arg(long, alias = "batch", default_value_t = 8)]
    pub batch_size: usize,
    /// The model's class names, one a line, in output order (for Pascal VOC names).
    #[arg(long)]
    pub class_names: Option<PathBuf>,
    /// Rewrite the report every N minutes during the run (0: only at the end).
    #[arg(long, default_value_t = 10)]
    pub report_every: u64,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let model = args
        .model
        .load()
        .with_context(|| format!("loading {}", args.model.model))?;
    let class_names = match &args.class_names {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let dataset = Dataset::open(&args.dataset, class_names.as_deref(), model.num_classes())?;
    let methods = if args.methods.is_empty() {
        eval::DEFAULT_METHODS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.methods.clone()
    };
    let mut settings = Settings::new(dataset.format, model.name(), args.layers.clone());
    settings.steps = args.steps;
    settings.road_removed = args.road.clone();
    settings.seed = args.seed;
    if let Some(weights) = &args.model.weights {
        // Other weights make other numbers: keep them apart from the built-in ones.
        settings.model = format!("{} ({})", model.name(), weights.display());
    }
    let images = args.limit.unwrap_or(usize::MAX).min(dataset.samples.len());
    eprintln!(
        "gradcam eval: {} images ({}) from {}, {} method(s): {}; faithfulness on {}",
        images,
        dataset.format,
        args.dataset.display(),
        methods.len(),
        methods.join(", "),
        args.faithfulness_limit.min(images)
    );
    if dataset.skipped_objects > 0 {
        eprintln!(
            "gradcam eval: {} object(s) skipped: their class is not the model's",
            dataset.skipped_objects
        );
    }
    let config = EvalConfig {
        settings,
        methods,
        limit: args.limit,
        faithfulness_limit: args.faithfulness_limit,
        batch_size: args.batch_size,
        report_dir: args.report.clone(),
        command: Some(command_line()),
        report_every: (args.report_every > 0).then(|| Duration::from_secs(args.report_every * 60)),
    };
    let mut bar = Bar::new();
    let outcome = eval::run(model.as_ref(), &dataset, &config, &mut |p| bar.show(p))?;
    bar.finish();
    eprintln!(
        "gradcam eval: {} pair(s) evaluated, {} resumed, in {}; report in {}",
        outcome.evaluated,
        outcome.resumed,
        human(outcome.elapsed),
        args.report.join("report.md").display()
    );
    println!("{}", outcome.report.table());
    for f in &outcome.failures {
        eprintln!(
            "gradcam: {} {}: {}",
            f.image,
            f.method.as_deref().unwrap_or(""),
            f.error
        );
    }
    Ok(if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The command as typed (program name shortened to `gradcam`), for the report.
fn command_line() -> String {
    let quote = |a: String| {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
            format!("'{}'", a.replace('\'', r"'\''"))
        } else {
            a
        }
    };
    std::iter::once("gradcam".to_string())
        .chain(std::env::args().skip(1).map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A progress bar with the time left on a terminal; a line every 30 s otherwise (logs).
struct Bar {
    tty: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl Bar {
    fn new() -> Self {
        Bar {
            tty: std::io::stderr().is_terminal(),
            last: None,
            drawn: false,
        }
    }

    fn show(&mut self, p: &EvalProgress) {
        let every = if self.tty {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(30)
        };
        if p.done < p.total && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let frac = p.done as f64 / p.total.max(1) as f64;
        let width = 30;
        let filled = (frac * width as f64).round() as usize;
        let eta = p.eta.map_or("?".to_string(), human);
        let rate = p.done_now as f64 / p.elapsed.as_secs_f64().max(1e-9);
        let line = format!(
            "[{}{}] {}/{} {:5.1}%  {:.2}/s  elapsed {}  ETA {}  {} {}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            p.done,
            p.total,
            100.0 * frac,
            rate,
            human(p.elapsed),
            eta,
            p.method,
            p.image
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.drawn = true;
    }

    fn finish(&self) {
        if self.tty && self.drawn {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::EvalArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        eval: EvalArgs,
    }

    fn batch_size(flag: &str) -> usize {
        let args = ["gradcam", "--dataset", "d", "--report", "r", flag, "3"];
        Cli::try_parse_from(args).unwrap().eval.batch_size
    }

    #[test]
    fn batch_size_keeps_the_old_batch_name() {
        assert_eq!(batch_size("--batch-size"), 3);
        assert_eq!(batch_size("--batch"), 3);
        let default = Cli::try_parse_from(["gradcam", "--dataset", "d", "--report", "r"]);
        assert_eq!(default.unwrap().eval.batch_size, 8);
    }
}
