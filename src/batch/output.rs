//! Which files are written for an image (`--format`), and writing them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ::image::RgbImage;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::image::{encode_jpeg, encode_png, picture};
use crate::io::{npy_bytes, write_atomic};

/// The files written for one image, by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutputFiles {
    pub overlay: Vec<PathBuf>,
    pub cam: Vec<PathBuf>,
    /// The guided methods' input-gradient arrays (`<name>.<method>.npy`), one per target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guided: Vec<PathBuf>,
    pub cam_raw: Vec<PathBuf>,
    pub json: Option<PathBuf>,
}

/// The overlay's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlayFormat {
    /// JPEG at quality 95.
    Jpg,
    /// PNG (lossless, larger).
    Png,
}

impl OverlayFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            OverlayFormat::Jpg => "jpg",
            OverlayFormat::Png => "png",
        }
    }
}

/// The outputs of one image, from a comma-separated list: `jpg` or `png` (the overlay),
/// `npy` (the map at network input resolution), `raw` (the raw signed map at layer
/// resolution), `json` (everything about the image), `box` (the box drawn on the overlay).
/// The default, `jpg,npy,raw,json,box`, is what `gradcam explain` always wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFormats {
    pub overlay: Option<OverlayFormat>,
    pub npy: bool,
    pub raw: bool,
    pub json: bool,
    pub draw_box: bool,
}

impl Default for FileFormats {
    fn default() -> Self {
        FileFormats {
            overlay: Some(OverlayFormat::Jpg),
            npy: true,
            raw: true,
            json: true,
            draw_box: true,
        }
    }
}

impl FileFormats {
    /// The list as the settings digest sees it (`jpg,npy,raw,json,box` for the default).
    pub fn id(&self) -> String {
        format!(
            "{}{}{}{}{}",
            self.overlay.map_or("", |o| o.extension()),
            if self.npy { ",npy" } else { "" },
            if self.raw { ",raw" } else { "" },
            if self.json { ",json" } else { "" },
            if self.draw_box { ",box" } else { "" }
        )
    }
}

impl FromStr for FileFormats {
    type Err = Error;

    fn from_str(text: &str) -> Result<FileFormats> {
        let mut f = FileFormats {
            overlay: None,
            npy: false,
            raw: false,
            json: false,
            draw_box: false,
        };
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let overlay = match item.to_ascii_lowercase().as_str() {
                "jpg" | "jpeg" => Some(OverlayFormat::Jpg),
                "png" => Some(OverlayFormat::Png),
                "npy" | "cam" => {
                    f.npy = true;
                    None
                }
                "raw" | "cam_raw" => {
                    f.raw = true;
                    None
                }
                "json" => {
                    f.json = true;
                    None
                }
                "box" => {
                    f.draw_box = true;
                    None
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "unknown output format `{item}`; choose from jpg, png, npy, raw, json, box"
                    )));
                }
            };
            if let Some(o) = overlay {
                if f.overlay.is_some_and(|old| old != o) {
                    return Err(Error::Invalid(
                        "--format takes one overlay format: jpg or png".into(),
                    ));
                }
                f.overlay = Some(o);
            }
        }
        if f.overlay.is_none() && !f.npy && !f.raw && !f.json {
            return Err(Error::Invalid(format!(
                "--format `{text}` selects no output; choose from jpg, png, npy, raw, json, box"
            )));
        }
        if f.draw_box && f.overlay.is_none() {
            return Err(Error::Invalid(
                "--format: `box` is drawn on the overlay: add jpg or png".into(),
            ));
        }
        Ok(f)
    }
}

/// Writes, atomically, into `dir` the outputs `format` selects for the image called `name`
/// (which may contain `/`): `<name>.<method>.jpg|png`, `<name>.cam.npy`, `<name>.cam_raw.npy`
/// (`<name>.cam_raw.<layer>.npy` for several layers) and, last, `<name>.json`. With several
/// classes, `.c<class>` follows the name.
pub fn write(
    dir: &Path,
    name: &str,
    image: &RgbImage,
    explanation: &Explanation,
    format: &FileFormats,
    image_weight: f32,
) -> Result<OutputFiles> {
    let base_path = dir.join(name);
    let parent = base_path.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let mut files = OutputFiles::default();
    let several = explanation.explanations.len() > 1;
    let (h, w) = explanation.input_size;
    for (i, map) in explanation.explanations.iter().enumerate() {
        let base = match (several, map.class) {
            (false, _) => name.to_string(),
            (true, Some(c)) => format!("{name}.c{c}"),
            (true, None) => format!("{name}.t{i}"),
        };
        if let Some(kind) = format.overlay {
            let picture = picture(
                image,
                &map.map,
                map.guided.as_deref(),
                map.bbox.as_ref(),
                (h, w),
                image_weight,
                format.draw_box,
            )?
            .with_region(map.region.as_ref());
            let bytes = match kind {
                OverlayFormat::Jpg => encode_jpeg(&picture)?,
                OverlayFormat::Png => encode_png(&picture)?,
            };
            let path = dir.join(format!(
                "{base}.{}.{}",
                explanation.method,
                kind.extension()
            ));
            write_atomic(&path, &bytes)?;
            files.overlay.push(path);
        }
        if format.npy {
            let path = dir.join(format!("{base}.cam.npy"));
            write_atomic(&path, &npy_bytes(&map.map, &[h, w]))?;
            files.cam.push(path);
            if let Some(guided) = &map.guided {
                let path = dir.join(format!("{base}.{}.npy", explanation.method));
                write_atomic(&path, &npy_bytes(guided, &[h, w, 3]))?;
                files.guided.push(path);
            }
        }
        if format.raw {
            for raw in &map.raw {
                let file = if map.raw.len() == 1 {
                    format!("{base}.cam_raw.npy")
                } else {
                    format!("{base}.cam_raw.{}.npy", raw.layer)
                };
                let path = dir.join(file);
                write_atomic(&path, &npy_bytes(&raw.maps[0], &[raw.height, raw.width]))?;
                files.cam_raw.push(path);
            }
        }
    }
    if format.json {
        let path = dir.join(format!("{name}.json"));
        let json = serde_json::json!({ "explanation": explanation, "files": &files });
        let text = serde_json::to_string_pretty(&json).expect("serialisable");
        write_atomic(&path, text.as_bytes())?;
        files.json = Some(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(
            "jpg,npy,raw,json,box".parse::<FileFormats>().unwrap(),
            FileFormats::default()
        );
        let f: FileFormats = "png, json".parse().unwrap();
        assert_eq!(f.overlay, Some(OverlayFormat::Png));
        assert!(f.json && !f.npy && !f.raw && !f.draw_box);
        assert!("jpg,png".parse::<FileFormats>().is_err());
        assert!("gif".parse::<FileFormats>().is_err());
        assert!("box".parse::<FileFormats>().is_err());
        assert!("npy,box".parse::<FileFormats>().is_err());
        assert!("".parse::<FileFormats>().is_err());
    }
}
