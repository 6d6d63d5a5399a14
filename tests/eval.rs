//! `gradcam eval`: the measures on hand-made cases with known answers, ROAD's imputation
//! against pytorch-grad-cam's (tests/fixtures/road, made by tools/make_road_fixture.py), the
//! dataset formats, and a whole run on a tiny model: report files, resume, refused settings.

mod common;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use common::run::{command, root, scratch};
use gradcam::eval::dataset::{AnnotationFormat, Dataset, VOC_CLASSES};
use gradcam::eval::metrics::*;
use gradcam::eval::perturb::{Normal, impute, road_keep};
use gradcam::eval::{self, EvalConfig, Settings};
use gradcam::localize::BBox;
use gradcam::model::{CamModel, ResNetConfig};

fn bb(x1: u32, y1: u32, x2: u32, y2: u32) -> BBox {
    BBox { x1, y1, x2, y2 }
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

// ---------------------------------------------------------------------------------------------
// Pure measures.

#[test]
fn best_iou_takes_the_best_ground_truth_box() {
    let b = bb(0, 0, 9, 9);
    // Same box: 1; half overlap: 50 / 150; disjoint: 0.
    assert_eq!(best_iou(Some(&b), &[bb(0, 0, 9, 9)]), 1.0);
    assert!(close(
        best_iou(Some(&b), &[bb(20, 20, 30, 30), bb(5, 0, 14, 9)]) as f64,
        1.0 / 3.0,
        1e-7 // an f32 IoU: 1/3 rounds by 1e-8
    ));
    assert_eq!(best_iou(Some(&b), &[bb(10, 10, 12, 12)]), 0.0);
    assert_eq!(best_iou(None, &[b]), 0.0);
    assert_eq!(best_iou(Some(&b), &[]), 0.0);
}

#[test]
fn pointing_game_with_tolerance() {
    let gt = [bb(20, 20, 40, 40)];
    assert!(pointing_hit((30, 30), &gt, 15.0)); // inside
    assert!(pointing_hit((5, 30), &gt, 15.0)); // 15 px to the left: on the tolerance
    assert!(!pointing_hit((4, 30), &gt, 15.0)); // 16 px
    assert!(pointing_hit((41, 41), &gt, 15.0)); // diagonal sqrt(2)
    // (9, 9) is sqrt(11^2 + 11^2) = 15.56 px from the corner (20, 20): a miss, not a hit of
    // a square tolerance.
    assert!(!pointing_hit((9, 9), &gt, 15.0));
    assert!(pointing_hit((9, 9), &gt, 16.0));
    assert!(!pointing_hit((30, 30), &[], 15.0));
    assert_eq!(distance_to_box((0, 0), &bb(3, 4, 9, 9)), 5.0);
    // Several boxes: any one will do.
    assert!(pointing_hit(
        (100, 100),
        &[bb(0, 0, 1, 1), bb(90, 90, 95, 95)],
        15.0
    ));
}

#[test]
fn argmax_is_the_first_maximum() {
    let map = [0.1, 0.9, 0.3, 0.9, f32::NAN, 0.0];
    assert_eq!(argmax(&map, 3), Some((1, 0)));
    assert_eq!(argmax(&[0.0, 0.2, 0.0, 0.5], 2), Some((1, 1)));
    assert_eq!(argmax(&[], 2), None);
}

#[test]
fn area_under_known_curves() {
    let xs: Vec<f64> = (0..=10).map(|i| i as f64 / 10.0).collect();
    let line: Vec<f64> = xs.clone();
    let falling: Vec<f64> = xs.iter().map(|x| 1.0 - x).collect();
    assert!(close(auc(&xs, &line), 0.5, 1e-12));
    assert!(close(auc(&xs, &falling), 0.5, 1e-12));
    assert!(close(auc_uniform(&line), 0.5, 1e-12));
    // A step from 1 to 0 between x = 0.3 and 0.4: 0.3 + 0.1 / 2.
    let step: Vec<f64> = xs
        .iter()
        .map(|&x| if x <= 0.3 { 1.0 } else { 0.0 })
        .collect();
    assert!(close(auc(&xs, &step), 0.35, 1e-12));
    assert!(close(auc_uniform(&step), 0.35, 1e-12));
    // A constant: its value. Uneven x: trapezoids of their own widths.
    assert!(close(auc(&xs, &[0.7; 11]), 0.7, 1e-12));
    assert!(close(
        auc(&[0.0, 0.1, 1.0], &[0.0, 1.0, 1.0]),
        0.05 + 0.9,
        1e-12
    ));
    assert_eq!(auc_uniform(&[0.4]), 0.0);
}

#[test]
fn average_drop_and_increase_of_known_confidences() {
    // (Y, O): drops of 50 %, 0 % (an increase) and 50 %, then an unchanged image.
    let mut m = ConfidenceMetric::default();
    for (y, o) in [(0.8, 0.4), (0.5, 0.6), (0.2, 0.1), (0.3, 0.3)] {
        m.update(y, o);
    }
    let s = m.summary();
    assert!(
        close(s.average_drop, (50.0 + 0.0 + 50.0 + 0.0) / 4.0, 1e-9),
        "{s:?}"
    );
    assert!(close(s.increase, 25.0, 1e-9), "{s:?}");
    assert!(close(drop_in_confidence(0.8, 0.2), 75.0, 1e-9));
    assert_eq!(drop_in_confidence(0.0, 0.2), 0.0);
    assert!(ConfidenceMetric::default().summary().average_drop.is_nan());
}

#[test]
fn classification_and_localization_errors() {
    let mut c = ClassificationMetric::default();
    c.update(&[3], &[3, 1, 2, 4, 5]); // top-1 right
    c.update(&[4], &[3, 1, 2, 4, 5]); // top-5 right
    c.update(&[9], &[3, 1, 2, 4, 5]); // wrong
    c.update(&[1, 7], &[7, 0, 0, 0, 0]); // one of two classes
    let e = c.summary();
    assert!(
        close(e.top1, 50.0, 1e-9) && close(e.top5, 25.0, 1e-9),
        "{e:?}"
    );

    // Two thresholds; IoUs per (class, threshold).
    let mut l = LocalizationMetric::new(&[0.1, 0.2]);
    // Image 1: top-1 is the class, IoU 0.7 then 0.4: right at 0.1 only.
    l.update(&[3, 1, 2, 4, 5], |c, t| (c == 3).then_some([0.7, 0.4][t]));
    // Image 2: the class is 4th, IoU 0.6 at both: top-5 right, top-1 wrong.
    l.update(&[3, 1, 2, 4, 5], |c, _| (c == 4).then_some(0.6));
    // Image 3: top-1 right but the box misses (IoU exactly 0.5 counts as right).
    l.update(&[8, 1, 2, 4, 5], |c, t| (c == 8).then_some([0.5, 0.49][t]));
    let s = l.summary();
    assert!(close(s[0].top1, 100.0 / 3.0, 1e-9), "{s:?}");
    assert!(close(s[0].top5, 0.0, 1e-9), "{s:?}");
    assert!(close(s[1].top1, 100.0, 1e-9), "{s:?}");
    assert!(close(s[1].top5, 100.0 * 2.0 / 3.0, 1e-9), "{s:?}");
    assert_eq!(l.at(0.19).unwrap(), s[1]);
}

#[test]
fn pointing_curves_road_and_time_accumulate() {
    let mut p = PointingGame::default();
    [true, false, true, true]
        .into_iter()
        .for_each(|h| p.update(h));
    assert!(close(p.summary(), 75.0, 1e-9));

    let mut d = CurveMetric::new(vec![0.0, 0.5, 1.0]);
    assert!(d.update(&[1.0, 0.5, 0.0]));
    assert!(d.update(&[1.0, 1.0, 1.0]));
    assert!(!d.update(&[1.0])); // wrong length: ignored
    let s = d.summary();
    assert_eq!(s.mean, [1.0, 0.75, 0.5]);
    assert!(close(s.auc, (0.5 + 1.0) / 2.0, 1e-12));

    let mut r = RoadMetric::new(vec![10.0, 90.0]);
    r.update(0.8, &[0.6, 0.2], &[0.8, 0.6]);
    r.update(0.5, &[0.5, 0.1], &[0.5, 0.3]);
    let s = r.summary();
    // MoRF changes: (-0.2 + 0) / 2 = -0.1 and (-0.6 - 0.4) / 2 = -0.5; LeRF: 0 and -0.2.
    assert!(
        close(s.morf[0], -0.1, 1e-12) && close(s.morf[1], -0.5, 1e-12),
        "{s:?}"
    );
    assert!(
        close(s.lerf[0], 0.0, 1e-12) && close(s.lerf[1], -0.2, 1e-12),
        "{s:?}"
    );
    assert!(close(s.morf_mean, -0.3, 1e-12) && close(s.lerf_mean, -0.1, 1e-12));
    assert!(close(s.combined, 0.1, 1e-12));

    let mut t = TimeMetric::default();
    t.update(10.0);
    t.update(20.0);
    assert_eq!(t.summary(), 15.0);
}

#[test]
fn softmax_sums_to_one() {
    let p = softmax(&[1.0, 2.0, 3.0]);
    assert!(close(p.iter().sum::<f64>(), 1.0, 1e-12));
    assert!(close(
        p[2],
        (3.0f64).exp() / (1.0f64.exp() + 2.0f64.exp() + 3.0f64.exp()),
        1e-12
    ));
}

// ---------------------------------------------------------------------------------------------
// ROAD against pytorch-grad-cam.

fn road_fixture(name: &str) -> Vec<f32> {
    common::npy(&format!("road/road.{name}.npy")).0
}

#[test]
fn road_imputation_matches_pytorch_grad_cam() {
    let (h, w) = (9, 11);
    let image = road_fixture("image");
    let keep: Vec<bool> = road_fixture("keep_hand").iter().map(|&k| k > 0.5).collect();
    let want = road_fixture("imputed_hand");
    let got = impute(&image, &keep, h, w, 0.0, &mut Normal::new(0)).unwrap();
    let diff = common::max_abs_diff(&got, &want);
    assert!(diff < 1e-4, "max difference {diff}");
}

#[test]
fn road_percentiles_match_pytorch_grad_cam() {
    let (h, w) = (9, 11);
    let image = road_fixture("image");
    let map = road_fixture("map");
    for p in [20, 50, 80] {
        for (morf, name) in [(true, "morf"), (false, "lerf")] {
            let want = road_fixture(&format!("{name}.p{p}"));
            let keep = road_keep(&map, p as f64, morf);
            // The same pixels are removed ...
            for i in 0..h * w {
                let changed = (0..3).any(|c| want[c * h * w + i] != image[c * h * w + i]);
                assert_eq!(!keep[i], changed, "{name} p{p}: pixel {i}");
            }
            // ... and filled with the same values (all removed: zeros, as SciPy's answer to the
            // singular system).
            let got = impute(&image, &keep, h, w, 0.0, &mut Normal::new(0)).unwrap();
            let diff = common::max_abs_diff(&got, &want);
            assert!(diff < 1e-4, "{name} p{p}: max difference {diff}");
        }
    }
}

#[test]
fn road_noise_is_seeded_and_small() {
    let (h, w) = (9, 11);
    let image = road_fixture("image");
    let keep: Vec<bool> = road_fixture("keep_hand").iter().map(|&k| k > 0.5).collect();
    let clean = impute(&image, &keep, h, w, 0.0, &mut Normal::new(0)).unwrap();
    let a = impute(&image, &keep, h, w, 0.01, &mut Normal::new(42)).unwrap();
    let b = impute(&image, &keep, h, w, 0.01, &mut Normal::new(42)).unwrap();
    assert_eq!(a, b);
    let diff = common::max_abs_diff(&a, &clean);
    assert!(diff > 0.0 && diff < 0.06, "{diff}");
    // Kept pixels are untouched.
    for i in (0..h * w).filter(|&i| keep[i]) {
        assert_eq!(a[i], image[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// Datasets.

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 + seed as u32) as u8,
            (y * 5) as u8,
            ((x + y) * 3 + seed as u32 * 40) as u8,
        ])
    });
    img.save(path).unwrap();
}

/// An imagenet-val-1300-style dataset of `n` 227x227 images with classes below 10.
fn csv_dataset(name: &str, n: usize) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut csv =
        String::from("file,class_idx,synset,name,orig_w,orig_h,boxes_orig_xyxy,boxes_227_xyxy\n");
    for i in 0..n {
        let file = format!("img_{i:02}.png");
        write_png(&dir.join("images").join(&file), 227, 227, i as u8);
        csv.push_str(&format!(
            "{file},{},n0000000{i},thing,454,454,\"20 40 300 400;0 0 9 9\",10.0 20.0 150.0 200.0;0.0 0.0 4.5 4.5\n",
            i % 10
        ));
    }
    std::fs::write(dir.join("annotations.csv"), csv).unwrap();
    dir
}

#[test]
fn csv_dataset_uses_the_227_boxes() {
    let dir = csv_dataset("csv", 3);
    let d = Dataset::open(&dir, None, 10).unwrap();
    assert_eq!(d.format, AnnotationFormat::Csv);
    assert_eq!(d.samples.len(), 3);
    let s = &d.samples[1];
    assert_eq!(s.name, "img_01.png");
    assert_eq!(s.classes, [1]);
    assert_eq!(
        s.boxes_of(1, (227, 227)),
        [bb(10, 20, 150, 200), bb(0, 0, 5, 5)]
    );
    // For an image of the original size, the original boxes.
    assert_eq!(s.boxes_of(1, (454, 454))[0], bb(20, 40, 300, 400));
    assert!(s.boxes_of(2, (227, 227)).is_empty());
    // A class beyond the model's is refused.
    assert!(Dataset::open(&dir, None, 2).is_err());
}

fn xml(file: &str, objects: &[(&str, [u32; 4])]) -> String {
    let mut s = format!(
        "<annotation><folder>x</folder><filename>{file}</filename><size><width>64</width><height>48</height><depth>3</depth></size>"
    );
    for (name, b) in objects {
        s.push_str(&format!(
            "<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
            b[0], b[1], b[2], b[3]
        ));
    }
    s + "</annotation>"
}

#[test]
fn imagenet_xml_dataset() {
    let dir = scratch("ilsvrc");
    let ann = dir.join("Annotations/CLS-LOC/val");
    let data = dir.join("Data/CLS-LOC/val");
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    write_png(&data.join("ILSVRC2012_val_00000002.png"), 64, 48, 1);
    write_png(&data.join("ILSVRC2012_val_00000001.png"), 64, 48, 2);
    // n01440764 is class 0 (tench), n02123045 is 281 (tabby); ILSVRC leaves out the extension.
    std::fs::write(
        ann.join("ILSVRC2012_val_00000001.xml"),
        xml(
            "ILSVRC2012_val_00000001",
            &[
                ("n02123045", [1, 2, 30, 40]),
                ("n02123045", [40, 5, 63, 47]),
            ],
        ),
    )
    .unwrap();
    std::fs::write(
        ann.join("ILSVRC2012_val_00000002.xml"),
        xml("ILSVRC2012_val_00000002", &[("n01440764", [0, 0, 10, 10])]),
    )
    .unwrap();
    let d = Dataset::open(&dir, None, 1000).unwrap();
    assert_eq!(d.format, AnnotationFormat::ImagenetXml);
    assert_eq!(d.samples.len(), 2);
    let s = &d.samples[0];
    assert!(
        s.path
            .ends_with("Data/CLS-LOC/val/ILSVRC2012_val_00000001.png"),
        "{}",
        s.path.display()
    );
    assert_eq!(s.classes, [281]);
    assert_eq!(
        s.boxes_of(281, (64, 48)),
        [bb(1, 2, 30, 40), bb(40, 5, 63, 47)]
    );
    assert_eq!(d.samples[1].classes, [0]);
    // Synsets need an ImageNet model.
    assert!(Dataset::open(&dir, None, 10).is_err());
}

#[test]
fn voc_xml_dataset() {
    let dir = scratch("voc");
    let ann = dir.join("VOC2012/Annotations");
    let jpg = dir.join("VOC2012/JPEGImages");
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::create_dir_all(&jpg).unwrap();
    write_png(&jpg.join("2007_000027.png"), 64, 48, 3);
    std::fs::write(
        ann.join("2007_000027.xml"),
        xml(
            "2007_000027.jpg",
            &[
                ("dog", [1, 1, 20, 20]),
                ("person", [10, 10, 64, 48]),
                ("unicorn", [1, 1, 2, 2]),
            ],
        ),
    )
    .unwrap();
    // A 20-class model: VOC's order. VOC's 1-based boxes become 0-based.
    let d = Dataset::open(&dir, None, 20).unwrap();
    assert_eq!(d.format, AnnotationFormat::VocXml);
    let s = &d.samples[0];
    let dog = VOC_CLASSES.iter().position(|&c| c == "dog").unwrap();
    let person = VOC_CLASSES.iter().position(|&c| c == "person").unwrap();
    assert_eq!(s.classes, [dog, person]);
    assert_eq!(s.boxes_of(dog, (64, 48)), [bb(0, 0, 19, 19)]);
    assert_eq!(s.boxes_of(person, (64, 48)), [bb(9, 9, 63, 47)]);
    assert_eq!(d.skipped_objects, 1);
    // Another model needs the names.
    let err = Dataset::open(&dir, None, 1000).unwrap_err().to_string();
    assert!(err.contains("--class-names"), "{err}");
    let names: Vec<String> = ["person", "dog"].iter().map(|s| s.to_string()).collect();
    let d = Dataset::open(&dir, Some(&names), 1000).unwrap();
    assert_eq!(d.samples[0].classes, [1, 0]);
}

#[test]
fn unknown_dataset_format_is_explained() {
    let dir = scratch("empty");
    let err = Dataset::open(&dir, None, 1000).unwrap_err().to_string();
    assert!(
        err.contains("annotations.csv") && err.contains("XML"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// A whole run on a tiny random model.

fn tiny_model() -> Box<dyn CamModel> {
    let config = ResNetConfig {
        name: "tiny".into(),
        blocks: [1, 1, 1, 1],
        bottleneck: false,
        width: 4,
        num_classes: 10,
    };
    // In eval mode, as the loaders leave a model: its BatchNorms after the cut run with
    // autodiff and would otherwise normalise with the batch's statistics.
    Box::new(config.init(&Device::flex()).valid())
}

/// Equal JSON values, numbers within a relative 1e-9.
fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-9 * x.abs().max(y.abs()), "{x} vs {y}");
        }
        (Array(x), Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(u, v)| assert_json_close(u, v));
        }
        (Object(x), Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            x.iter().for_each(|(k, u)| assert_json_close(u, &y[k]));
        }
        _ => assert_eq!(a, b),
    }
}

fn config(report: &Path, dataset: &Dataset, methods: &[&str]) -> EvalConfig {
    let mut settings = Settings::new(dataset.format, "tiny", vec![]);
    settings.steps = 4;
    settings.road_removed = vec![20.0, 80.0];
    EvalConfig {
        settings,
        methods: methods.iter().map(|s| s.to_string()).collect(),
        limit: None,
        faithfulness_limit: 2,
        batch_size: 4,
        report_dir: report.to_path_buf(),
        command: Some("gradcam eval (test)".into()),
        report_every: None,
    }
}

#[test]
fn run_writes_a_report_and_resumes() {
    let data = csv_dataset("run", 3);
    let report = scratch("run-report");
    let model = tiny_model();
    let dataset = Dataset::open(&data, None, 10).unwrap();
    let cfg = config(&report, &dataset, &["gradcam", "eigencam"]);
    let mut calls = 0;
    let start = std::time::Instant::now();
    let out = eval::run(model.as_ref(), &dataset, &cfg, &mut |p| {
        calls += 1;
        assert!(p.done <= p.total && p.total == 6);
    })
    .unwrap();
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!((out.evaluated, out.resumed, calls), (6, 0, 6));
    assert!(out.failures.is_empty(), "{:?}", out.failures);
    for f in [
        "report.md",
        "report.json",
        "results.jsonl",
        "settings.json",
        "localization_threshold.png",
        "deletion_insertion.png",
        "road.png",
    ] {
        assert!(report.join(f).is_file(), "{f} missing");
    }
    let r = &out.report;
    assert_eq!(r.methods.len(), 2);
    for m in &r.methods {
        assert_eq!(m.images, 3);
        assert_eq!(m.faithfulness_images, 2);
        assert_eq!(m.localization.len(), 10);
        assert_eq!(m.deletion.mean.len(), 5);
        assert_eq!(m.road.morf.len(), 2);
        assert!(m.deletion.auc.is_finite() && (0.0..=1.0).contains(&m.deletion.auc));
        assert!(m.insertion.auc.is_finite() && (0.0..=1.0).contains(&m.insertion.auc));
        assert!((0.0..=100.0).contains(&m.pointing));
        // Milliseconds: a map is part of an image's measures, which are part of the run.
        assert!(
            m.map_ms > 0.0 && m.map_ms <= m.total_ms && m.total_ms * m.images as f64 <= wall_ms,
            "map {} ms, image {} ms, run {wall_ms} ms",
            m.map_ms,
            m.total_ms
        );
        // Ends of the curves: the image and the baseline (deletion), the blur and the image.
        assert!(m.deletion.mean.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(
        md.contains("| gradcam |") && md.contains("| eigencam |"),
        "{md}"
    );
    let png = image::open(report.join("deletion_insertion.png")).unwrap();
    assert!(png.width() >= 1000);
    let lines = std::fs::read_to_string(report.join("results.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6);
    let first: eval::ImageResult = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first.maps[0].iou.len(), 10);
    assert_eq!(first.faithfulness.as_ref().unwrap().deletion.len(), 5);

    // Again: everything is resumed, and the numbers are the same (up to the last bits, which
    // serde_json's float parsing does not promise to keep).
    let again = eval::run(model.as_ref(), &dataset, &cfg, &mut |_| {}).unwrap();
    assert_eq!((again.evaluated, again.resumed), (0, 6));
    assert_json_close(
        &serde_json::to_value(&again.report.methods).unwrap(),
        &serde_json::to_value(&out.report.methods).unwrap(),
    );

    // A line cut short by a crash is dropped and its pair evaluated again.
    let cut = &lines[..lines.len() - 20];
    std::fs::write(report.join("results.jsonl"), cut).unwrap();
    let third = eval::run(model.as_ref(), &dataset, &cfg, &mut |_| {}).unwrap();
    assert_eq!((third.evaluated, third.resumed), (1, 5));
    assert_eq!(
        std::fs::read_to_string(report.join("results.jsonl"))
            .unwrap()
            .lines()
            .count(),
        6
    );

    // Other settings are refused: their numbers would not mix.
    let mut other = config(&report, &dataset, &["gradcam"]);
    other.settings.steps = 8;
    let err = eval::run(model.as_ref(), &dataset, &other, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("steps"), "{err}");

    // Raising the faithfulness limit redoes the pairs that lack it; more methods add pairs.
    let mut more = config(&report, &dataset, &["gradcam", "eigencam", "gradcam++"]);
    more.faithfulness_limit = 3;
    let fourth = eval::run(model.as_ref(), &dataset, &more, &mut |_| {}).unwrap();
    assert_eq!((fourth.evaluated, fourth.resumed), (2 + 3, 4));
}

#[test]
fn unknown_method_fails_before_any_work() {
    let data = csv_dataset("bad-method", 1);
    let report = scratch("bad-method-report");
    let dataset = Dataset::open(&data, None, 10).unwrap();
    let cfg = config(&report, &dataset, &["nosuchcam"]);
    let err = eval::run(tiny_model().as_ref(), &dataset, &cfg, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nosuchcam") && err.contains("gradcam"),
        "{err}"
    );
}

#[test]
fn failed_images_are_reported_and_the_others_go_on() {
    let data = csv_dataset("broken", 2);
    std::fs::write(data.join("images/img_00.png"), b"not an image").unwrap();
    let report = scratch("broken-report");
    let dataset = Dataset::open(&data, None, 10).unwrap();
    let cfg = config(&report, &dataset, &["gradcam"]);
    let out = eval::run(tiny_model().as_ref(), &dataset, &cfg, &mut |_| {}).unwrap();
    assert_eq!(out.evaluated, 1);
    assert_eq!(out.failures.len(), 1);
    assert_eq!(out.failures[0].image, "img_00.png");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("Failures (1)"), "{md}");
}

/// The command line, with the built-in EfficientNet-Lite0 (its weights are cached by the
/// first test that needs them).
#[test]
fn cli_eval_with_lite0() {
    let data = scratch("cli-data");
    std::fs::create_dir_all(data.join("images")).unwrap();
    let root = root();
    // cat_dog.jpg resized is not needed: any size works; the CSV's original boxes are used
    // (tabby cat and bull mastiff, rough boxes in the 640x480 original).
    std::fs::copy(
        root.join("assets/cat_dog.jpg"),
        data.join("images/cat_dog.jpg"),
    )
    .unwrap();
    let (w, h) = image::image_dimensions(root.join("assets/cat_dog.jpg")).unwrap();
    std::fs::write(
        data.join("annotations.csv"),
        format!(
            "file,class_idx,synset,name,orig_w,orig_h,boxes_orig_xyxy\ncat_dog.jpg,243,n02108422,bull mastiff,{w},{h},0 0 {} {}\n",
            w / 2,
            h - 1
        ),
    )
    .unwrap();
    let report = scratch("cli-report");
    let out = command()
        .args([
            "eval",
            "--dataset",
            data.to_str().unwrap(),
            "--method",
            "gradcam",
            "--report",
        ])
        .arg(&report)
        .args(["--faithfulness-limit", "1", "--steps", "4", "--road", "50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| gradcam |"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    let m = &json["methods"][0];
    // cat_dog.jpg: the top-1 is 243, bull mastiff: classification is right.
    assert_eq!(json["classification"]["top1"], 0.0, "{json}");
    assert_eq!(m["faithfulness_images"], 1);
    assert!(
        json["command"]
            .as_str()
            .unwrap()
            .starts_with("gradcam eval --dataset")
    );
}
