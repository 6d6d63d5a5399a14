//! Pictures for people: a map's overlay on its photo with the box, the guided methods'
//! input-gradient image, and PNG / JPEG encoding.

use ::image::RgbImage;

use super::{draw_box, overlay, resize_bilinear, resize_map};
use crate::error::{Error, Result};
use crate::localize::BBox;

/// The picture of one map on `image`, the photo it explains: the overlay of `map` (at the
/// network input's `(height, width)` `input`, photo weight `image_weight`), or for the guided
/// methods their input-gradient image `guided`, with the localization box in green when
/// `draw_box_on` and there is one.
pub fn picture(
    image: &RgbImage,
    map: &[f32],
    guided: Option<&[f32]>,
    bbox: Option<&BBox>,
    input: (usize, usize),
    image_weight: f32,
    draw_box_on: bool,
) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    let mut picture = match guided {
        Some(guided) => guided_picture(guided, input, w, h),
        None => overlay(
            image,
            &resize_map(map, input, (h as usize, w as usize)),
            image_weight,
        )?,
    };
    if draw_box_on && let Some(b) = bbox {
        draw_box(&mut picture, b, [0, 255, 0], (w.max(h) / 200).max(2));
    }
    Ok(picture)
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

/// PNG, default compression.
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    use ::image::ImageEncoder;
    let mut bytes = Vec::new();
    ::image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ::image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Invalid(format!("PNG encoding failed: {e}")))?;
    Ok(bytes)
}

/// JPEG at quality 95.
pub fn encode_jpeg(image: &RgbImage) -> Result<Vec<u8>> {
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
