//! Labelled image sets: images with their classes and ground-truth boxes.
//!
//! Three formats, recognised from the directory's content ([`Dataset::open`]):
//!
//! - **CSV** (`annotations.csv` in the directory, images in `images/` or beside it), the
//!   format of the ImageNet validation subset in `../shared/data/imagenet-val-1300`: columns
//!   `file, class_idx, synset, name, orig_w, orig_h, boxes_orig_xyxy, boxes_227_xyxy`, boxes
//!   as `x1 y1 x2 y2;...`. For a 227x227 image the `boxes_227_xyxy` are used (their corners
//!   rounded to the nearest pixel); for an image of `orig_w x orig_h` the original ones;
//!   otherwise these scaled to the image's size. Original boxes are 0-based and inclusive
//!   (no `x2` reaches `orig_w`).
//! - **ImageNet XML**: one Pascal-VOC-style XML file per image (as in ILSVRC's
//!   `Annotations/CLS-LOC/val`), whose `<object><name>` are WordNet synsets (`n01751748`);
//!   the class is the synset's index in [`crate::labels::imagenet`]. Coordinates are taken as
//!   0-based inclusive, as in the CSV above, which was made from them.
//! - **Pascal VOC XML**: the same files with class names (`dog`, `person`). A name is mapped
//!   to the model's output by its position in a list of class names: the one given by the
//!   caller (`--class-names FILE`: one name a line, in the model's output order), else VOC's 20
//!   classes in the devkit's order for a 20-class model. Mapping VOC's classes onto another
//!   model's (e.g. ImageNet's 1000) is the user's business. VOC coordinates are 1-based
//!   (devkit convention) and are shifted to 0-based.
//!
//! XML files are found anywhere under the directory; each one's image is the file named by its
//! `<filename>` (or, failing that, with the XML's own stem), looked up by stem among the images
//! under the directory (`JPEGImages/`, `Data/CLS-LOC/val/`, beside the XML, ...).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::batch::inputs::is_image_path;
use crate::error::{Error, Result};
use crate::labels;
use crate::localize::BBox;

/// The 20 Pascal VOC classes in the devkit's (alphabetical) order.
pub const VOC_CLASSES: [&str; 20] = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// How a dataset's labels are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnotationFormat {
    /// `annotations.csv` (imagenet-val-1300).
    Csv,
    /// ILSVRC XML annotations, classes as synsets.
    ImagenetXml,
    /// Pascal VOC XML annotations, classes as names.
    VocXml,
}

impl std::fmt::Display for AnnotationFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnnotationFormat::Csv => "CSV (annotations.csv)",
            AnnotationFormat::ImagenetXml => "ImageNet XML",
            AnnotationFormat::VocXml => "Pascal VOC XML",
        })
    }
}

/// A ground-truth box and its class (a model output index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtBox {
    pub class: usize,
    /// Inclusive pixel coordinates in the image as stored in the dataset.
    pub bbox: BBox,
}

/// Ground-truth boxes in the coordinates of an image of some size.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxSet {
    /// The (width, height) these boxes are for; `None`: the image's own size.
    pub size: Option<(u32, u32)>,
    pub boxes: Vec<GtBox>,
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// A name unique in the dataset (the file name, or its path under the directory).
    pub name: String,
    pub path: PathBuf,
    /// The image's classes, each once, in order of first appearance.
    pub classes: Vec<usize>,
    /// The same boxes for one or more image sizes (the CSV has the original and the 227x227
    /// ones); never empty.
    pub box_sets: Vec<BoxSet>,
}

impl Sample {
    /// The boxes of `class` in the coordinates of an image of `size = (width, height)`: the
    /// set made for that size, else the one in the image's own coordinates, else the first set
    /// scaled ([`BBox::scale`]).
    pub fn boxes_of(&self, class: usize, size: (u32, u32)) -> Vec<BBox> {
        let set = self
            .box_sets
            .iter()
            .find(|s| s.size == Some(size))
            .or_else(|| self.box_sets.iter().find(|s| s.size.is_none()))
            .unwrap_or(&self.box_sets[0]);
        set.boxes
            .iter()
            .filter(|b| b.class == class)
            .map(|b| match set.size {
                Some(from) if from != size => b.bbox.scale(from, size),
                _ => clamp(b.bbox, size),
            })
            .collect()
    }
}

/// A labelled image set.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub format: AnnotationFormat,
    /// Sorted by name.
    pub samples: Vec<Sample>,
    /// Objects skipped because their class is not among the model's (VOC names not in the list).
    pub skipped_objects: usize,
}

impl Dataset {
    /// Reads the dataset in `dir`, recognising its format from the content. `class_names` (the
    /// model's class names in output order) maps VOC names to outputs; `num_classes` is the
    /// model's.
    pub fn open(dir: &Path, class_names: Option<&[String]>, num_classes: usize) -> Result<Dataset> {
        if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "dataset {}: not a directory",
                dir.display()
            )));
        }
        let csv = dir.join("annotations.csv");
        let mut dataset = if csv.is_file() {
            read_csv(dir, &csv, num_classes)?
        } else {
            read_xml_dir(dir, class_names, num_classes)?
        };
        dataset.samples.sort_by(|a, b| a.name.cmp(&b.name));
        if dataset.samples.is_empty() {
            return Err(Error::Invalid(format!(
                "dataset {}: no labelled image found",
                dir.display()
            )));
        }
        Ok(dataset)
    }
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {message}", path.display()))
}

/// The line a record starts on. csv's position is where it began reading, before the blank
/// lines it skips, so those are counted here.
fn record_line(text: &[u8], position: &csv::Position) -> u64 {
    let from = usize::try_from(position.byte()).map_or(text.len(), |b| b.min(text.len()));
    let blank = text[from..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .filter(|&&b| b == b'\n')
        .count();
    position.line() + blank as u64
}

/// A CSV reader's error as the crate's: I/O as I/O, the others (bad UTF-8) with csv's message,
/// which names the record and the line.
fn csv_error(path: &Path, e: csv::Error) -> Error {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        _ => invalid(path, message),
    }
}

fn clamp(b: BBox, (w, h): (u32, u32)) -> BBox {
    let (mx, my) = (w.saturating_sub(1), h.saturating_sub(1));
    BBox {
        x1: b.x1.min(mx),
        y1: b.y1.min(my),
        x2: b.x2.min(mx),
        y2: b.y2.min(my),
    }
}

/// A box from four corner values (rounded to the nearest pixel, negative values to 0);
/// `None` when `x2 < x1` or `y2 < y1` after rounding, or a value is not finite.
fn bbox_from(v: [f64; 4], shift: f64) -> Option<BBox> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let r = |x: f64| (x - shift).round().max(0.0) as u32;
    let b = BBox {
        x1: r(v[0]),
        y1: r(v[1]),
        x2: r(v[2]),
        y2: r(v[3]),
    };
    (b.x2 >= b.x1 && b.y2 >= b.y1).then_some(b)
}

/// Parses `x1 y1 x2 y2;x1 y1 x2 y2;...`.
pub fn parse_boxes(text: &str) -> std::result::Result<Vec<BBox>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let v: Vec<f64> = s
                .split_whitespace()
                .map(|x| {
                    x.parse::<f64>()
                        .map_err(|_| format!("bad number `{x}` in box `{s}`"))
                })
                .collect::<std::result::Result<_, _>>()?;
            let v: [f64; 4] = v
                .try_into()
                .map_err(|_| format!("box `{s}` has not 4 numbers"))?;
            bbox_from(v, 0.0).ok_or_else(|| format!("empty box `{s}`"))
        })
        .collect()
}

fn read_csv(dir: &Path, path: &Path, num_classes: usize) -> Result<Dataset> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        // Rows may stop early: their missing fields read as empty.
        .flexible(true)
        .from_reader(text.as_slice());
    let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    if header.iter().all(str::is_empty) {
        return Err(invalid(path, "empty file"));
    }
    let col = |name: &str| header.iter().position(|h| h == name);
    let file_col = col("file").ok_or_else(|| invalid(path, "no `file` column"))?;
    let class_col = col("class_idx").ok_or_else(|| invalid(path, "no `class_idx` column"))?;
    let orig_col = col("boxes_orig_xyxy");
    let b227_col = col("boxes_227_xyxy");
    let (w_col, h_col) = (col("orig_w"), col("orig_h"));
    if orig_col.is_none() && b227_col.is_none() {
        return Err(invalid(
            path,
            "no `boxes_orig_xyxy` or `boxes_227_xyxy` column",
        ));
    }
    let images = if dir.join("images").is_dir() {
        dir.join("images")
    } else {
        dir.to_path_buf()
    };
    let mut samples = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| csv_error(path, e))?;
        if row.iter().all(str::is_empty) {
            continue;
        }
        let at = |c: usize| row.get(c).unwrap_or("");
        let line = row.position().map_or(0, |p| record_line(&text, p));
        let line_err = |m: String| invalid(path, format!("line {line}: {m}"));
        let file = at(file_col).to_string();
        let class: usize = at(class_col)
            .parse()
            .map_err(|_| line_err(format!("bad class_idx `{}`", at(class_col))))?;
        if class >= num_classes {
            return Err(line_err(format!(
                "class {class} is out of range for a model with {num_classes} classes"
            )));
        }
        let mut box_sets = Vec::new();
        if let Some(c) = b227_col {
            box_sets.push((parse_boxes(at(c)).map_err(line_err)?, Some((227, 227))));
        }
        if let Some(c) = orig_col {
            let orig = match (w_col, h_col) {
                (Some(w), Some(h)) => at(w).parse::<u32>().ok().zip(at(h).parse::<u32>().ok()),
                _ => None,
            };
            // Without the original size, the original boxes cannot be scaled: use them as is.
            box_sets.push((parse_boxes(at(c)).map_err(line_err)?, orig));
        }
        if box_sets.iter().all(|(b, _)| b.is_empty()) {
            return Err(line_err("no box".into()));
        }
        samples.push(Sample {
            name: file.clone(),
            path: images.join(&file),
            classes: vec![class],
            box_sets: box_sets
                .into_iter()
                .filter(|(b, _)| !b.is_empty())
                .map(|(boxes, size)| BoxSet {
                    size,
                    boxes: boxes
                        .into_iter()
                        .map(|bbox| GtBox { class, bbox })
                        .collect(),
                })
                .collect(),
        });
    }
    Ok(Dataset {
        root: dir.to_path_buf(),
        format: AnnotationFormat::Csv,
        samples,
        skipped_objects: 0,
    })
}

/// One object of a VOC-style XML file.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlObject {
    pub name: String,
    /// `xmin ymin xmax ymax` as written.
    pub bndbox: [f64; 4],
}

/// What a VOC-style XML annotation says.
#[derive(Debug, Clone, PartialEq)]
pub struct XmlAnnotation {
    pub filename: Option<String>,
    pub size: Option<(u32, u32)>,
    pub objects: Vec<XmlObject>,
}

/// The first child element of `node` named `tag`.
fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(tag))
}

/// The trimmed text of `node`'s first child element named `tag` (`""` when it is empty).
fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    child(node, tag).map(|c| c.text().unwrap_or("").trim())
}

/// `line N: message`, N where `node` starts.
fn at_line(node: roxmltree::Node, message: impl std::fmt::Display) -> String {
    let pos = node.document().text_pos_at(node.range().start);
    format!("line {}: {message}", pos.row)
}

/// Reads a Pascal-VOC-style annotation (VOC or ILSVRC): the root's `<filename>`, `<size>` and
/// `<object>` children, each object's own `<name>` and `<bndbox>` (not those of its `<part>`s).
pub fn parse_xml(xml: &str) -> std::result::Result<XmlAnnotation, String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let filename = child_text(root, "filename")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    // The size is informative only: a missing or odd one is not an error.
    let size = child(root, "size").and_then(|s| {
        let w = child_text(s, "width")?.parse().ok()?;
        let h = child_text(s, "height")?.parse().ok()?;
        Some((w, h))
    });
    let mut objects = Vec::new();
    for object in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child_text(object, "name")
            .ok_or_else(|| at_line(object, "an <object> without <name>"))?
            .to_string();
        let bndbox = child(object, "bndbox")
            .ok_or_else(|| at_line(object, format!("object `{name}` without <bndbox>")))?;
        let mut v = [0.0; 4];
        for (slot, tag) in v.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let node = child(bndbox, tag)
                .ok_or_else(|| at_line(bndbox, format!("object `{name}`: no <{tag}>")))?;
            let text = node.text().unwrap_or("").trim();
            *slot = text
                .parse()
                .map_err(|_| at_line(node, format!("object `{name}`: bad <{tag}> `{text}`")))?;
        }
        objects.push(XmlObject { name, bndbox: v });
    }
    Ok(XmlAnnotation {
        filename,
        size,
        objects,
    })
}

/// Whether `name` looks like a WordNet synset id (`n` and 8 digits).
fn is_synset(name: &str) -> bool {
    name.len() == 9 && name.starts_with('n') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Files under `dir` (recursively, not following links), sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            Error::io(path, e.into())
        })?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

fn read_xml_dir(dir: &Path, class_names: Option<&[String]>, num_classes: usize) -> Result<Dataset> {
    let files = files_under(dir)?;
    let is_xml = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml"));
    let xmls: Vec<&PathBuf> = files.iter().filter(|p| is_xml(p)).collect();
    if xmls.is_empty() {
        return Err(Error::Invalid(format!(
            "dataset {}: unknown format: expected annotations.csv (imagenet-val-1300 style) or \
             Pascal-VOC-style XML annotations (ImageNet synsets or VOC class names)",
            dir.display()
        )));
    }
    let mut images: HashMap<String, Vec<&PathBuf>> = HashMap::new();
    for p in files.iter().filter(|p| is_image_path(p)) {
        if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
            images.entry(stem.to_string()).or_default().push(p);
        }
    }
    let mut annotations = Vec::new();
    for xml in &xmls {
        let text = std::fs::read_to_string(xml).map_err(|e| Error::io(xml.as_path(), e))?;
        let ann = parse_xml(&text).map_err(|m| invalid(xml, m))?;
        if !ann.objects.is_empty() {
            annotations.push((xml, ann));
        }
    }
    let all_synsets = annotations
        .iter()
        .flat_map(|(_, a)| &a.objects)
        .all(|o| is_synset(&o.name));
    let format = if all_synsets {
        AnnotationFormat::ImagenetXml
    } else {
        AnnotationFormat::VocXml
    };

    // Class lookup.
    let synsets: HashMap<&str, usize> = labels::imagenet()
        .iter()
        .enumerate()
        .map(|(i, l)| (l.synset, i))
        .collect();
    let names: Vec<String> = match (format, class_names) {
        (AnnotationFormat::VocXml, Some(names)) => names.to_vec(),
        (AnnotationFormat::VocXml, None) if num_classes == VOC_CLASSES.len() => {
            VOC_CLASSES.iter().map(|s| s.to_string()).collect()
        }
        (AnnotationFormat::VocXml, None) => {
            return Err(Error::Invalid(format!(
                "dataset {}: Pascal VOC class names need a mapping to the model's {num_classes} \
                 outputs: pass --class-names FILE (the model's class names, one a line, in output \
                 order); a 20-class model is assumed to use VOC's order",
                dir.display()
            )));
        }
        _ => Vec::new(),
    };
    let norm = |s: &str| s.trim().to_lowercase();
    let by_name: HashMap<String, usize> = names
        .iter()
        .enumerate()
        .rev()
        .map(|(i, n)| (norm(n), i))
        .collect();
    if format == AnnotationFormat::ImagenetXml && num_classes != 1000 {
        return Err(Error::Invalid(format!(
            "dataset {}: ImageNet synsets need a 1000-class ImageNet model, this one has {num_classes}",
            dir.display()
        )));
    }

    let mut samples = Vec::new();
    let mut skipped = 0;
    for (xml, ann) in annotations {
        let xml_stem = xml
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let wanted = ann.filename.as_deref().map(|f| {
            Path::new(f)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(f)
                .to_string()
        });
        let candidates = wanted
            .as_ref()
            .and_then(|w| images.get(w))
            .or_else(|| images.get(&xml_stem))
            .ok_or_else(|| invalid(xml, "no image found for this annotation"))?;
        // Of several images with the stem, prefer the one that shares the most path prefix.
        let path = candidates
            .iter()
            .max_by_key(|p| {
                p.components()
                    .zip(xml.components())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .expect("non-empty")
            .to_path_buf();
        let mut boxes = Vec::new();
        for o in &ann.objects {
            let class = match format {
                AnnotationFormat::ImagenetXml => synsets.get(o.name.as_str()).copied(),
                _ => by_name
                    .get(&norm(&o.name))
                    .copied()
                    .filter(|&c| c < num_classes),
            };
            let shift = if format == AnnotationFormat::VocXml {
                1.0
            } else {
                0.0
            };
            match (class, bbox_from(o.bndbox, shift)) {
                (Some(class), Some(bbox)) => boxes.push(GtBox { class, bbox }),
                (None, _) if format == AnnotationFormat::ImagenetXml => {
                    return Err(invalid(
                        xml,
                        format!("`{}` is not an ImageNet-1k synset", o.name),
                    ));
                }
                _ => skipped += 1,
            }
        }
        if boxes.is_empty() {
            continue;
        }
        let mut classes = Vec::new();
        for b in &boxes {
            if !classes.contains(&b.class) {
                classes.push(b.class);
            }
        }
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        samples.push(Sample {
            name,
            path,
            classes,
            box_sets: vec![BoxSet { size: None, boxes }],
        });
    }
    Ok(Dataset {
        root: dir.to_path_buf(),
        format,
        samples,
        skipped_objects: skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_parse_and_round() {
        let b = parse_boxes("9.1 105.9 50.4 176.8;168.9 114.4 226.5 135.6").unwrap();
        assert_eq!(
            b[0],
            BBox {
                x1: 9,
                y1: 106,
                x2: 50,
                y2: 177
            }
        );
        assert_eq!(
            b[1],
            BBox {
                x1: 169,
                y1: 114,
                x2: 227,
                y2: 136
            }
        );
        assert!(parse_boxes("1 2 3").is_err());
        assert!(parse_boxes("5 5 1 1").is_err());
    }

    #[test]
    fn xml_objects() {
        let xml = r#"<annotation><!-- <object><name>ghost</name></object> -->
            <filename>2007_000027.jpg</filename>
            <size><width>486</width><height>500</height><depth>3</depth></size>
            <object><name>person</name><pose>Unspecified</pose>
              <bndbox><xmin>174</xmin><ymin>101</ymin><xmax>349.5</xmax><ymax>351</ymax></bndbox>
              <part><name>head</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></part>
            </object>
            <object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object>
            </annotation>"#;
        let a = parse_xml(xml).unwrap();
        assert_eq!(a.filename.as_deref(), Some("2007_000027.jpg"));
        assert_eq!(a.size, Some((486, 500)));
        assert_eq!(a.objects.len(), 2);
        assert_eq!(a.objects[0].name, "person");
        assert_eq!(a.objects[0].bndbox, [174.0, 101.0, 349.5, 351.0]);
        assert_eq!(a.objects[1].name, "dog");
    }

    #[test]
    fn xml_errors_name_the_line_and_element() {
        let no_box = "<annotation>\n<object>\n  <name>dog</name>\n</object>\n</annotation>";
        assert_eq!(
            parse_xml(no_box).unwrap_err(),
            "line 2: object `dog` without <bndbox>"
        );
        let bad_number = "<annotation><object><name>dog</name>\n<bndbox>\n<xmin>1O</xmin>\
                          <ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>";
        assert_eq!(
            parse_xml(bad_number).unwrap_err(),
            "line 3: object `dog`: bad <xmin> `1O`"
        );
        let no_ymax = "<annotation><object><name>dog</name>\n<bndbox><xmin>1</xmin><ymin>2</ymin>\
                       <xmax>3</xmax></bndbox></object></annotation>";
        assert_eq!(
            parse_xml(no_ymax).unwrap_err(),
            "line 2: object `dog`: no <ymax>"
        );
        let no_name = "<annotation>\n\n<object><bndbox/></object></annotation>";
        assert_eq!(
            parse_xml(no_name).unwrap_err(),
            "line 3: an <object> without <name>"
        );
        let broken = "<annotation>\n<object><name>dog</name>\n</annotation>";
        let e = parse_xml(broken).unwrap_err();
        assert!(e.starts_with("not well-formed XML: "), "{e}");
        assert!(e.contains("at 3:"), "{e}");
    }

    /// A fresh directory under the system's temporary one.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gradcam-dataset-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const HEADER: &str = "file,class_idx,synset,name,orig_w,orig_h,boxes_orig_xyxy,boxes_227_xyxy";

    fn open_csv(name: &str, text: &[u8]) -> Result<Dataset> {
        let dir = scratch(name);
        std::fs::write(dir.join("annotations.csv"), text).unwrap();
        Dataset::open(&dir, None, 10)
    }

    #[test]
    fn csv_errors_name_the_file_and_line() {
        let good = "a.png,3,n,x,20,10,0 0 9 9,0 0 9 9";
        for (name, rows, message) in [
            // The blank line counts: the bad row is the file's fourth line.
            (
                "bad-class",
                format!("{good}\n\nb.png,x,n,x,20,10,0 0 9 9,"),
                "annotations.csv: line 4: bad class_idx `x`",
            ),
            (
                "bad-box",
                "a.png,3,n,x,20,10,0 0 9 z,".to_string(),
                "annotations.csv: line 2: bad number `z` in box `0 0 9 z`",
            ),
            (
                "class-range",
                "a.png,12,n,x,20,10,0 0 9 9,".to_string(),
                "annotations.csv: line 2: class 12 is out of range for a model with 10 classes",
            ),
        ] {
            let text = format!("{HEADER}\n{rows}\n");
            let e = open_csv(name, text.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(message), "{e}");
        }

        let mut bytes = format!("{HEADER}\na.png,3,n,x,20,10,0 0 9 9,\n").into_bytes();
        bytes.extend_from_slice(b"b\xff.png,3,n,x,20,10,0 0 9 9,\n");
        let e = open_csv("utf8", &bytes).unwrap_err().to_string();
        assert!(e.contains("annotations.csv: CSV parse error"), "{e}");
        assert!(e.contains("line 3"), "{e}");

        let e = open_csv("no-file-column", b"name,class_idx,boxes_227_xyxy\n").unwrap_err();
        assert!(e.to_string().contains("no `file` column"), "{e}");
        let e = open_csv("empty", b"").unwrap_err();
        assert!(e.to_string().contains("annotations.csv: empty file"), "{e}");
    }

    #[test]
    fn csv_quoted_fields_and_short_rows() {
        // A quoted name with a comma and a doubled quote; a row without its last columns.
        let text = format!(
            "{HEADER}\n\"a, \"\"b\"\".png\",3,n,x,20,10,0 0 9 9\nc.png,4,n,x,20,10,1 1 2 2\n"
        );
        let d = open_csv("quoted", text.as_bytes()).unwrap();
        assert_eq!(d.samples[0].name, "a, \"b\".png");
        assert_eq!(d.samples[1].classes, [4]);
        assert_eq!(d.samples[1].box_sets.len(), 1);
        assert_eq!(d.samples[1].box_sets[0].size, Some((20, 10)));
    }

    #[test]
    fn xml_dataset_errors_name_the_file() {
        let dir = scratch("xml-broken");
        std::fs::write(dir.join("a.jpg"), b"").unwrap();
        let xml = "<annotation>\n<filename>a.jpg</filename>\n<object><name>dog</name>\n\
                   <bndbox><xmin>a</xmin></bndbox></object></annotation>";
        std::fs::write(dir.join("a.xml"), xml).unwrap();
        let e = Dataset::open(&dir, None, 20).unwrap_err().to_string();
        assert!(
            e.contains("a.xml: line 4: object `dog`: bad <xmin> `a`"),
            "{e}"
        );
    }

    #[test]
    fn synset_names() {
        assert!(is_synset("n01751748"));
        assert!(!is_synset("dog"));
        assert!(!is_synset("n0175174"));
    }

    #[test]
    fn boxes_of_scale_to_the_image() {
        let s = Sample {
            name: "x".into(),
            path: "x".into(),
            classes: vec![3],
            box_sets: vec![BoxSet {
                size: Some((200, 100)),
                boxes: vec![GtBox {
                    class: 3,
                    bbox: BBox {
                        x1: 0,
                        y1: 0,
                        x2: 99,
                        y2: 49,
                    },
                }],
            }],
        };
        assert_eq!(
            s.boxes_of(3, (100, 50)),
            [BBox {
                x1: 0,
                y1: 0,
                x2: 49,
                y2: 24
            }]
        );
        assert_eq!(
            s.boxes_of(3, (200, 100)),
            [BBox {
                x1: 0,
                y1: 0,
                x2: 99,
                y2: 49
            }]
        );
        assert!(s.boxes_of(4, (200, 100)).is_empty());
    }
}
