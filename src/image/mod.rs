//! Images: decoding ([`load`], [`decode`]), resizing that matches the Python reference pipeline
//! byte for byte ([`resize_bilinear`] like Pillow, [`resize_map`] like OpenCV), the network
//! input ([`to_input`]), heat-map overlays ([`overlay`], with OpenCV's [`JET`]), boxes
//! ([`draw_box`]), the guided methods' pictures and PNG / JPEG encoding ([`encode_png`]).
//!
//! Images are [`RgbImage`]s of the `image` crate (re-exported here); maps are row-major `f32`
//! slices.

mod factorization;
mod jet;
mod legend;
mod load;
mod map_resize;
mod overlay;
mod png;
mod region;
mod render;
mod resize;
mod rows;

pub use ::image::RgbImage;
pub use factorization::{concept_colors, show_factorization};
pub use jet::JET;
pub use legend::{LegendEntry, draw_text, with_legend};
pub use load::{MAX_PIXELS, UPLOAD_PATH, decode, load};
pub use map_resize::{MapResizer, resize_map, resize_map_generic};
pub use overlay::{Outline, Overlay, colorize, draw_box, overlay};
pub use region::{Region, RegionOutline};
pub use render::{Picture, deprocess, encode_jpeg, encode_png, guided_picture, picture};
pub use resize::resize_bilinear;
pub use rows::RgbRows;

/// Converts an image to a network input: `float32`, channels first (`3 x H x W`, row-major),
/// each value `(v / 255 - mean[c]) / std[c]`, in float32 as torchvision's `ToTensor` followed
/// by `Normalize(mean, std)` computes it.
///
/// ```
/// use gradcam::image::{to_input, RgbImage};
/// let img = RgbImage::from_raw(2, 1, vec![0, 127, 255, 255, 255, 0]).unwrap();
/// let x = to_input(&img, [0.0; 3], [1.0; 3]);
/// // channel R of both pixels, then G, then B
/// assert_eq!(x, [0.0, 1.0, 127.0 / 255.0, 1.0, 1.0, 0.0]);
/// ```
pub fn to_input(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let n = img.width() as usize * img.height() as usize;
    let mut out = vec![0.0f32; 3 * n];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (px.0[c] as f32 / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_input_is_chw_and_normalised() {
        let img = RgbImage::from_raw(1, 2, vec![255, 0, 51, 0, 255, 102]).unwrap();
        let mean = [0.5, 0.25, 0.0];
        let std = [0.5, 0.25, 0.2];
        let x = to_input(&img, mean, std);
        // R: (1 - 0.5) / 0.5 = 1, (0 - 0.5) / 0.5 = -1
        // G: (0 - 0.25) / 0.25 = -1, (1 - 0.25) / 0.25 = 3
        // B: (51/255) / 0.2 = 0.2 / 0.2, (102/255) / 0.2 = 0.4 / 0.2, in float32
        let b0 = (51.0f32 / 255.0) / 0.2;
        let b1 = (102.0f32 / 255.0) / 0.2;
        assert_eq!(x, [1.0, -1.0, -1.0, 3.0, b0, b1]);
        assert!((b0 - 1.0).abs() < 1e-6 && (b1 - 2.0).abs() < 1e-6);
    }

    #[test]
    fn to_input_lite0_normalisation() {
        // EfficientNet-Lite0: mean 127/255, std 128/255, so (v - 127) / 128 up to rounding.
        let img = RgbImage::from_raw(1, 1, vec![0, 127, 255]).unwrap();
        let x = to_input(&img, [127.0 / 255.0; 3], [128.0 / 255.0; 3]);
        let want = [-127.0f32 / 128.0, 0.0, 1.0];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert_eq!(x[1], 0.0);
    }
}
