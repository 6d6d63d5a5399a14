//! Pictures for people: a map's overlay on its photo with the box, the guided methods'
//! input-gradient image, and PNG / JPEG encoding.

use ::image::{GenericImageView, Rgb, RgbImage};

use super::overlay::{Outline, Overlay};
use super::{MapResizer, Region, RegionOutline, RgbRows, png, resize_bilinear};
use crate::error::{Error, Result};
use crate::localize::BBox;

/// The picture of one map on `image`, the photo it explains: the overlay of `map` (at the
/// network input's `(height, width)` `input`, photo weight `image_weight`), or for the guided
/// methods their input-gradient image `guided`, with the localization box in green when
/// `draw_box_on` and there is one.
///
/// The overlay is not drawn here but pixel by pixel as the encoder reads it ([`Picture`]): for a
/// 24-megapixel photo it holds one byte per pixel besides the photo, where the picture would
/// take three (and pytorch-grad-cam's float32 steps twelve).
pub fn picture<'a>(
    image: &'a RgbImage,
    map: &[f32],
    guided: Option<&[f32]>,
    bbox: Option<&BBox>,
    input: (usize, usize),
    image_weight: f32,
    draw_box_on: bool,
) -> Result<Picture<'a>> {
    let (w, h) = image.dimensions();
    let base = match guided {
        Some(guided) => Base::Image(guided_picture(guided, input, w, h)),
        None => {
            let mask = MapResizer::new(map, input, (h as usize, w as usize));
            Base::Overlay(Overlay::new(image, image_weight, |y, row| {
                mask.row(y, row)
            })?)
        }
    };
    let outline = bbox.filter(|_| draw_box_on).map(|b| Outline {
        bbox: *b,
        color: [0, 255, 0],
        thickness: outline_thickness(w, h),
    });
    Ok(Picture {
        base,
        outline,
        region: None,
    })
}

/// What [`picture`] makes: an overlay computed on demand (or the guided methods' picture), with
/// the box's outline painted over it.
pub struct Picture<'a> {
    base: Base<'a>,
    outline: Option<Outline>,
    region: Option<RegionOutline<'a>>,
}

/// The width of the lines drawn on a `w` x `h` photo.
fn outline_thickness(w: u32, h: u32) -> u32 {
    (w.max(h) / 200).max(2)
}

impl<'a> Picture<'a> {
    /// The picture with the outline of a segmentation `region` (the pixels its map explains)
    /// in white, when there is one.
    pub fn with_region(mut self, region: Option<&'a Region>) -> Self {
        let size = self.dimensions();
        self.region = region.map(|region| RegionOutline {
            region,
            size,
            color: [255, 255, 255],
            thickness: outline_thickness(size.0, size.1),
        });
        self
    }
}

enum Base<'a> {
    Overlay(Overlay<'a>),
    Image(RgbImage),
}

impl GenericImageView for Picture<'_> {
    type Pixel = Rgb<u8>;

    fn dimensions(&self) -> (u32, u32) {
        match &self.base {
            Base::Overlay(o) => o.dimensions(),
            Base::Image(i) => i.dimensions(),
        }
    }

    fn get_pixel(&self, x: u32, y: u32) -> Rgb<u8> {
        if let Some(o) = self.outline.filter(|o| o.covers(x, y)) {
            return Rgb(o.color);
        }
        if let Some(r) = self.region.filter(|r| r.covers(x, y)) {
            return Rgb(r.color);
        }
        match &self.base {
            Base::Overlay(o) => Rgb(o.pixel(x, y)),
            Base::Image(i) => *i.get_pixel(x, y),
        }
    }
}

impl RgbRows for Picture<'_> {
    fn row(&self, y: u32, out: &mut [u8]) {
        match &self.base {
            Base::Overlay(o) => o.row(y, out),
            Base::Image(i) => i.row(y, out),
        }
        if let Some(r) = &self.region {
            r.paint_row(y, out);
        }
        if let Some(o) = &self.outline {
            o.paint_row(y, out);
        }
    }
}

/// How the guided methods show their `[height, width, 3]` input-gradient image (`input` is
/// its `(height, width)`): pytorch-grad-cam's `deprocess_image`, resized to `width` x
/// `height` as Pillow's bilinear.
pub fn guided_picture(guided: &[f32], input: (usize, usize), width: u32, height: u32) -> RgbImage {
    let pixels = deprocess(guided);
    let small = RgbImage::from_raw(input.1 as u32, input.0 as u32, pixels)
        .expect("a [height, width, 3] guided map");
    resize_bilinear(&small, width, height)
}

/// PNG, as the `image` crate's `PngEncoder` writes it (fast compression, adaptive filters),
/// encoded a row at a time (src/image/png.rs).
pub fn encode_png(image: &impl RgbRows) -> Result<Vec<u8>> {
    let (w, h) = image.dimensions();
    png::encode_rows(w, h, |y, out| image.row(y, out))
        .map_err(|e| Error::Invalid(format!("PNG encoding failed: {e}")))
}

/// JPEG at quality 95 (the `image` crate's encoder, which reads 8x8 blocks of pixels).
pub fn encode_jpeg(image: &impl RgbRows) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    ::image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
        .encode_image(image)
        .map_err(|e| Error::Invalid(format!("JPEG encoding failed: {e}")))?;
    Ok(bytes)
}

/// pytorch-grad-cam's `deprocess_image`, to view a guided map: standardise
/// (`(x - mean) / (std + 1e-5)`), scale by 0.1, shift by 0.5, clip to [0, 1], `u8(255 x)`.
pub fn deprocess(map: &[f32]) -> Vec<u8> {
    let n = map.len().max(1) as f64;
    let mean = map.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (map.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    map.iter()
        .map(|&v| {
            let x = ((v as f64 - mean) / (std + 1e-5) * 0.1 + 0.5).clamp(0.0, 1.0);
            (x * 255.0) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_outline_paints_its_pixels_white_and_leaves_the_others() {
        let photo = RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 10, y as u8 * 20, 7]));
        let map: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        let region = Region {
            width: 2,
            height: 2,
            inside: vec![false, true, true, true],
        };
        let plain = picture(&photo, &map, None, None, (3, 4), 0.5, false)
            .unwrap()
            .to_image();
        let outlined = picture(&photo, &map, None, None, (3, 4), 0.5, false)
            .unwrap()
            .with_region(Some(&region));
        let outline = RegionOutline {
            region: &region,
            size: (8, 6),
            color: [255, 255, 255],
            thickness: 2,
        };
        let drawn = outlined.to_image();
        let mut painted = 0;
        for (x, y, px) in drawn.enumerate_pixels() {
            assert_eq!(
                *px,
                outlined.get_pixel(x, y),
                "rows and pixels agree at ({x}, {y})"
            );
            if outline.covers(x, y) {
                painted += 1;
                assert_eq!(px.0, [255, 255, 255]);
            } else {
                assert_eq!(px, plain.get_pixel(x, y));
            }
        }
        assert!(painted > 0);
    }
}
