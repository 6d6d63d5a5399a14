//! Whole-dataset runs of the `gradcam` binary: directories with bad files, the manifest,
//! resuming after an interruption, shards and their merge, output formats and the gallery.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use common::run::{command, gradcam, gradcam_env, root, s, scratch, stderr};
use image::{ImageFormat, RgbImage, imageops::FilterType};
use serde_json::Value;

/// `good` small images (resized copies of the two assets, 64 to 160 px, in every format, some
/// in a subdirectory), and, with `bad`, a truncated JPEG, garbage named .png, a text file
/// named .jpg, and files a directory walk ignores (a .txt, a hidden image).
fn dataset(dir: &Path, good: usize, bad: bool) {
    let sources = [
        image::open(root().join("assets/cat_dog.jpg"))
            .unwrap()
            .to_rgb8(),
        image::open(root().join("assets/both.png"))
            .unwrap()
            .to_rgb8(),
    ];
    let formats = [
        ("jpg", ImageFormat::Jpeg),
        ("png", ImageFormat::Png),
        ("JPEG", ImageFormat::Jpeg),
        ("bmp", ImageFormat::Bmp),
        ("webp", ImageFormat::WebP),
    ];
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..good {
        let src = &sources[i % 2];
        let side = 64 + (i as u32 * 37) % 97;
        let (w, h) = if i % 3 == 0 {
            (side, side * 3 / 4)
        } else {
            (side * 3 / 4, side)
        };
        let small: RgbImage = image::imageops::resize(src, w, h, FilterType::Triangle);
        let (ext, format) = formats[i % formats.len()];
        let folder = if i % 4 == 3 {
            dir.join("sub")
        } else {
            dir.to_path_buf()
        };
        small
            .save_with_format(folder.join(format!("img{i:02}.{ext}")), format)
            .unwrap();
    }
    if bad {
        let bytes = std::fs::read(root().join("assets/cat_dog.jpg")).unwrap();
        std::fs::write(dir.join("truncated.jpg"), &bytes[..bytes.len() / 3]).unwrap();
        let garbage: Vec<u8> = (0..4000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(dir.join("garbage.png"), garbage).unwrap();
        std::fs::write(dir.join("sub/notes.jpg"), "not an image, just notes").unwrap();
        std::fs::write(dir.join("readme.txt"), "ignored").unwrap();
        std::fs::copy(dir.join("img00.jpg"), dir.join(".hidden.jpg")).unwrap();
    }
}

fn manifest_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

fn records(path: &Path) -> BTreeMap<String, Value> {
    manifest_lines(path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["path"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// How far two manifest records are apart where they may differ: floats (probabilities and
/// scores: batches of other sizes add in another order), as a difference relative to
/// 1 + the magnitude, and box corners, in pixels.
#[derive(Debug, Default)]
struct Apart {
    relative: f64,
    pixels: f64,
}

/// Records `a` and `b` into `apart`; false when they differ anywhere else (keys, strings,
/// classes and other integers, lengths).
fn compare(a: &Value, b: &Value, in_box: bool, apart: &mut Apart) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if in_box => {
            let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
            apart.pixels = apart.pixels.max(d);
            true
        }
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let d = (x - y).abs() / (1.0 + x.abs().max(y.abs()));
            apart.relative = apart.relative.max(d);
            true
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| {
                    y.get(k)
                        .is_some_and(|w| compare(v, w, in_box || k == "box", apart))
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| compare(v, w, in_box, apart))
        }
        _ => a == b,
    }
}

fn assert_same_manifests(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut apart = Apart::default();
    for (path, x) in a {
        assert!(
            compare(x, &b[path], false, &mut apart),
            "{path}:\n{x}\n{}",
            b[path]
        );
    }
    // Measured: 1.2e-6 and 0 pixels between batch sizes 1 and 2, nothing between shards. A
    // box corner may still move by one pixel where float noise crosses the threshold.
    println!("manifests apart by {apart:?}");
    assert!(apart.relative <= 1e-5 && apart.pixels <= 1.0, "{apart:?}");
}

fn mtimes(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "manifest.jsonl" {
                out.insert(e.path(), e.metadata().unwrap().modified().unwrap());
            }
        }
    }
    out
}

#[test]
fn directory_run_records_errors_skips_done_images_and_resumes_after_a_kill() {
    let dir = scratch("resume");
    let data = dir.join("data");
    dataset(&data, 28, true);
    let out = dir.join("out");
    let args = ["explain", s(&data), "--out", s(&out)];

    let first = gradcam(&args);
    assert_eq!(
        first.status.code(),
        Some(1),
        "some images failed: exit 1\n{}",
        stderr(&first)
    );
    let err = stderr(&first);
    for bad in ["truncated.jpg", "garbage.png", "notes.jpg"] {
        assert!(err.contains(bad), "{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    let manifest = out.join("manifest.jsonl");
    let lines = manifest_lines(&manifest);
    assert_eq!(lines.len(), 31, "one line per image");
    let sorted = {
        let mut l = lines.clone();
        l.sort_by_key(|l| {
            serde_json::from_str::<Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        });
        l
    };
    assert_eq!(lines, sorted, "the finished manifest is sorted by path");
    let first_records = records(&manifest);
    let errors: BTreeSet<String> = first_records
        .values()
        .filter(|r| r["status"] == "error")
        .map(|r| {
            Path::new(r["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        errors,
        BTreeSet::from([
            "garbage.png".into(),
            "notes.jpg".into(),
            "truncated.jpg".into()
        ])
    );
    let ok: Vec<&Value> = first_records
        .values()
        .filter(|r| r["status"] == "ok")
        .collect();
    assert_eq!(ok.len(), 28);
    for r in &ok {
        assert!(r["top1"]["class"].as_u64().unwrap() < 1000);
        // The largest of 1000 softmax probabilities is at least 1/1000.
        let p = r["top1"]["probability"].as_f64().unwrap();
        assert!((1e-3..=1.0).contains(&p), "{r}");
        let t = &r["targets"][0];
        assert_eq!(t["class"], r["top1"]["class"]);
        for key in ["overlay", "cam"] {
            assert!(out.join(t[key].as_str().unwrap()).is_file(), "{r}");
        }
        assert!(out.join(t["cam_raw"][0].as_str().unwrap()).is_file(), "{r}");
        assert!(out.join(r["json"].as_str().unwrap()).is_file(), "{r}");
        assert!(r.get("timings").is_none());
    }
    // Subdirectories are mirrored; hidden files and other extensions are not inputs.
    assert!(out.join("sub/img03.gradcam.jpg").is_file());
    assert!(
        out.join("img02.gradcam.jpg").is_file(),
        "img02.JPEG: extensions in any case"
    );
    assert!(
        !first_records
            .keys()
            .any(|p| p.contains("hidden") || p.ends_with(".txt"))
    );

    // The same command again: nothing new.
    let before = mtimes(&out);
    let second = gradcam(&args);
    assert_eq!(
        second.status.code(),
        Some(1),
        "the same 3 images fail again"
    );
    assert!(
        stderr(&second).contains("0 explained, 3 failed, 28 skipped"),
        "{}",
        stderr(&second)
    );
    assert_eq!(manifest_lines(&manifest), lines, "same manifest");
    assert_eq!(mtimes(&out), before, "outputs untouched");
    let quiet = gradcam(&["explain", s(&data), "--out", s(&out), "--quiet"]);
    assert_eq!(quiet.status.code(), Some(1));
    assert!(
        quiet.stdout.is_empty() && !stderr(&quiet).contains("skipped"),
        "{}",
        stderr(&quiet)
    );

    // Interrupted: kill a run once some images are done, leave half a line as an interrupted
    // append would, and run again. The run may also have ended before the kill lands; what it
    // leaves must resume either way, so only that is asserted.
    let out2 = dir.join("out2");
    let manifest2 = out2.join("manifest.jsonl");
    let mut child = command()
        .args([
            "explain",
            s(&data),
            "--out",
            s(&out2),
            "--quiet",
            "--batch-size",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::read_to_string(&manifest2).map_or(0, |t| t.lines().count()) < 4
        && child.try_wait().unwrap().is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill(); // an error only says that it had ended already
    child.wait().unwrap();
    // The images the resumed run must skip: the successes among the complete lines (a kill
    // during an append leaves a partial last line, which does not count).
    let left = std::fs::read_to_string(&manifest2).unwrap();
    let done: BTreeSet<String> = left
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["status"] == "ok")
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    println!("killed with {} of 28 images done", done.len());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&manifest2)
        .unwrap();
    f.write_all(&lines[30].as_bytes()[..40]).unwrap();
    drop(f);
    let resumed = gradcam(&["explain", s(&data), "--out", s(&out2), "--batch-size", "2"]);
    assert_eq!(resumed.status.code(), Some(1));
    let err = stderr(&resumed);
    assert!(err.contains("partial last line"), "{err}");
    assert_eq!(
        manifest_lines(&manifest2).len(),
        31,
        "rewritten and complete"
    );
    assert_same_manifests(&records(&manifest2), &first_records);
    assert!(
        err.contains(&format!(" {} skipped", done.len())),
        "{} done before the kill: {err}",
        done.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shards_partition_the_run_and_merge_joins_them() {
    let dir = scratch("shards");
    let data = dir.join("data");
    dataset(&data, 12, true);
    let whole = dir.join("whole");
    let out = gradcam(&["explain", s(&data), "--out", s(&whole), "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let expected = records(&whole.join("manifest.jsonl"));
    assert_eq!(expected.len(), 15);

    // Three shards into one directory: by flag, from a Slurm array, from a Kubernetes Job.
    let shards = dir.join("shards");
    type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let runs: [Run; 3] = [
        (&["--shard", "0/3"], &[]),
        (
            &[],
            &[
                ("SLURM_ARRAY_TASK_ID", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
        (
            &[],
            &[("JOB_COMPLETION_INDEX", "2"), ("GRADCAM_SHARDS", "3")],
        ),
    ];
    let mut union = BTreeMap::new();
    for (i, (flags, env)) in runs.iter().enumerate() {
        let mut args = vec!["explain", s(&data), "--out", s(&shards)];
        args.extend_from_slice(flags);
        let out = gradcam_env(&args, env);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(&format!("shard {i}/3")),
            "{}",
            stderr(&out)
        );
        let part = records(&shards.join(format!("manifest.shard-{i}-of-3.jsonl")));
        assert!(
            !part.is_empty() && part.len() < 15,
            "shard {i}: {} images",
            part.len()
        );
        for (path, r) in part {
            assert!(
                union.insert(path.clone(), r).is_none(),
                "{path} in two shards"
            );
        }
    }
    assert_same_manifests(&union, &expected);
    assert!(!shards.join("manifest.jsonl").exists());

    let merged = shards.join("manifest.jsonl");
    let out = gradcam(&["merge", s(&shards), "--out", s(&merged)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_manifests(&records(&merged), &expected);
    let lines = manifest_lines(&merged);
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines.len(), 15);
    // Merging again (the merged file is in the directory) gives the same file.
    let out = gradcam(&["merge", s(&shards), "--out", s(&merged)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(manifest_lines(&merged), lines);

    // Merged elsewhere, the output paths point back to the shards' directory.
    let elsewhere = dir.join("report/all.jsonl");
    let out = gradcam(&["merge", s(&shards), "--out", s(&elsewhere), "--html"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for r in records(&elsewhere).values().filter(|r| r["status"] == "ok") {
        let overlay = r["targets"][0]["overlay"].as_str().unwrap();
        assert!(overlay.starts_with("../shards/"), "{overlay}");
        assert!(dir.join("report").join(overlay).is_file(), "{overlay}");
    }
    assert!(dir.join("report/index.html").is_file());

    // A missing shard makes an incomplete merge: exit 1 and a warning.
    std::fs::remove_file(shards.join("manifest.shard-1-of-3.jsonl")).unwrap();
    let out = gradcam(&["merge", s(&shards), "--out", s(&dir.join("partial.jsonl"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("manifest.shard-1-of-3.jsonl is missing"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn formats_lists_globs_and_the_gallery() {
    let dir = scratch("formats");
    let data = dir.join("data");
    dataset(&data, 5, false);
    let out = data.join("out"); // inside the input directory: never taken for input
    let list = format!(
        "{}\n\n# a comment\n{}\n",
        data.join("img00.jpg").display(),
        data.join("sub/img03.bmp").display()
    );
    let mut child = command()
        .args([
            "explain",
            "--from-list",
            "-",
            &format!("{}/*.png", data.display()),
            "--out",
            s(&out),
        ])
        .args([
            "--format",
            "png,json",
            "--html",
            "--quiet",
            "--batch-size",
            "3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let result = child.wait_with_output().unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(result.stdout.is_empty(), "--quiet prints no summaries");
    let recs = records(&out.join("manifest.jsonl"));
    let names: BTreeSet<String> = recs
        .keys()
        .map(|p| {
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["img00.jpg".into(), "img01.png".into(), "img03.bmp".into()])
    );
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "img00.gradcam.png",
            "img00.json",
            "img01.gradcam.png",
            "img01.json",
            "img03.gradcam.png",
            "img03.json",
            "index.html",
            "manifest.jsonl"
        ]
    );
    let png = image::open(out.join("img01.gradcam.png")).unwrap();
    let original = image::open(data.join("img01.png")).unwrap();
    assert_eq!(
        (png.width(), png.height()),
        (original.width(), original.height())
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<img src=\"img01.gradcam.png\""),
        "relative links"
    );
    assert!(html.contains("3 images: 3 explained, 0 failed"));
    assert!(
        html.contains(" checked>"),
        "no box drawn: outline them in the page"
    );

    // A directory run whose output directory is inside it does not take its outputs for
    // inputs.
    let out = gradcam(&[
        "explain",
        s(&data),
        "--out",
        s(&data.join("out")),
        "--format",
        "json",
        "-q",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        records(&data.join("out/manifest.jsonl")).len(),
        5,
        "5 images, not their outputs"
    );

    // Bad options are fatal (exit 2) before anything is written.
    for (flag, value) in [
        ("--format", "gif"),
        ("--shard", "3/3"),
        ("--format", "jpg,png"),
    ] {
        let out = gradcam(&[
            "explain",
            s(&data),
            "--out",
            s(&dir.join("never")),
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
    }
    let out = gradcam_env(
        &["explain", s(&data), "--out", s(&dir.join("never"))],
        &[("JOB_COMPLETION_INDEX", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--shards"), "{}", stderr(&out));
    assert!(!dir.join("never").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Throughput of `Explainer::explain` on EfficientNet-Lite0 at batch 1, 4, 8 and 16, and how
/// much batching changes the results. Not a test: run it with
/// `cargo test --release --test batch -- --ignored --nocapture measure_batch_sizes`
/// (`GRADCAM_MEASURE_DIR` for the images, default ../shared/data/imagenet-val-1300/images).
#[test]
#[ignore]
fn measure_batch_sizes() {
    use burn::tensor::Device;
    use gradcam::explain::{Classes, Explainer};
    let dir = std::env::var_os("GRADCAM_MEASURE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data/imagenet-val-1300/images"));
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let n: usize = std::env::var("GRADCAM_MEASURE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let images: Vec<RgbImage> = paths[..n]
        .iter()
        .map(|p| gradcam::image::load(p, gradcam::image::MAX_PIXELS).unwrap())
        .collect();
    let model = gradcam::model::load("efficientnet_lite0", None, 1000, &Device::flex()).unwrap();
    let explainer = Explainer::new(model.into(), "gradcam", vec![], Default::default()).unwrap();
    let classes = Classes::Top(1);
    explainer.explain(&images[..2], &classes).unwrap();
    let reps: usize = std::env::var("GRADCAM_MEASURE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let sizes = [1, 4, 8, 16];
    let reference = explainer.explain(&images[..1], &classes).unwrap();
    let mut rates: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut cpus: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for rep in 0..reps {
        // Each repetition starts at another batch size, so that load drifts spread evenly.
        for k in 0..sizes.len() {
            let batch = sizes[(rep + k) % sizes.len()];
            let start = Instant::now();
            let cpu_start = cpu_seconds();
            let mut results = Vec::new();
            for chunk in images.chunks(batch) {
                results.extend(explainer.explain(chunk, &classes).unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu_start;
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let a = &results[0];
            let b = &reference[0];
            let dp = (a.top5[0].probability - b.top5[0].probability).abs();
            let same_map = a.explanations[0].map == b.explanations[0].map;
            rates.entry(batch).or_default().push(n as f64 / secs);
            cpus.entry(batch).or_default().push(cpu * 1e3 / n as f64);
            println!(
                "rep {rep} batch {batch:>2}: {:.2} images/s ({:.1} ms/image, CPU {:.1} ms/image); \
                 first image vs alone: |dp| {dp:.1e}, same map {same_map}; loadavg {}",
                n as f64 / secs,
                secs * 1e3 / n as f64,
                cpu * 1e3 / n as f64,
                load.trim()
            );
        }
    }
    for (batch, mut r) in rates {
        r.sort_by(f64::total_cmp);
        let mut c = cpus.remove(&batch).unwrap();
        c.sort_by(f64::total_cmp);
        println!(
            "batch {batch:>2}: median {:.2} images/s (min {:.2}, max {:.2}), CPU {:.1} ms/image, \
             over {reps} runs of {n} images",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1],
            c[c.len() / 2]
        );
    }
}

/// User and system CPU time of this process so far, in seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}
