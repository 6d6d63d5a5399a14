//! Heat-map overlays (pytorch-grad-cam's `show_cam_on_image`) and box drawing.

use ::image::RgbImage;

use super::jet::JET;
use crate::error::{Error, Result};
use crate::localize::BBox;

/// The colormap index of a mask value, as `np.uint8(255 * mask)` computes it: the product is
/// truncated toward zero; values outside `[0, 1]` are clamped first and NaN maps to 0 (NumPy
/// leaves these undefined).
fn mask_byte(m: f32) -> u8 {
    (255.0f32 * m) as u8 // `as` truncates, saturates at 0 and 255, and maps NaN to 0
}

/// A heat map alone in OpenCV's JET colours, each value coloured as [`overlay`] colours it
/// (`JET[u8(255 * v)]`). `mask` is row-major with `width x height` values.
///
/// ```
/// use gradcam::image::{colorize, JET};
/// let heat = colorize(&[0.0, 1.0], 2, 1);
/// assert_eq!(heat.get_pixel(1, 0).0, JET[255]);
/// ```
pub fn colorize(mask: &[f32], width: u32, height: u32) -> RgbImage {
    let pixels = mask
        .iter()
        .flat_map(|&m| JET[mask_byte(m) as usize])
        .collect();
    RgbImage::from_raw(width, height, pixels).expect("one mask value per pixel")
}

/// Blends a heat map over an image, exactly as pytorch-grad-cam's
/// `show_cam_on_image(img / 255, mask, use_rgb=True, image_weight=image_weight)`.
///
/// `mask` is row-major with the image's `height x width` values, normally in `[0, 1]`. Per
/// pixel, with float32 arithmetic in NumPy's order:
///
/// 1. `heat = JET[u8(255 * mask)] / 255` (OpenCV's `COLORMAP_JET`, see [`JET`](super::JET));
/// 2. `cam = (1 - w) * heat + w * img / 255`;
/// 3. `cam = cam / max(cam)` over all pixels and channels;
/// 4. `out = u8(255 * cam)`, truncating.
///
/// The default of pytorch-grad-cam is `image_weight = 0.5`. `1 - w` is computed in double
/// precision from the decimal that `w` prints as, so that `0.77f32` weighs the heat map exactly
/// as Python's `1 - 0.77` does. If every value of `cam` is 0 (a
/// black image with `image_weight = 1`) the result is black.
///
/// # Errors
///
/// [`Error::Invalid`] if `image_weight` is not in `[0, 1]` or the mask does not have one value
/// per pixel.
///
/// ```
/// use gradcam::image::{overlay, RgbImage};
/// let img = RgbImage::from_raw(2, 1, vec![255; 6]).unwrap(); // two white pixels
/// let out = overlay(&img, &[0.0, 1.0], 0.5)?;
/// // JET[0] = (0, 0, 128), JET[255] = (128, 0, 0): cam = (0.5, 0.5, 0.751) and (0.751, 0.5, 0.5),
/// // divided by its maximum 0.751 and scaled to 255.
/// assert_eq!(out.as_raw(), &[169, 169, 255, 255, 169, 169]);
/// # Ok::<(), gradcam::Error>(())
/// ```
pub fn overlay(img: &RgbImage, mask: &[f32], image_weight: f32) -> Result<RgbImage> {
    if !(0.0..=1.0).contains(&image_weight) {
        return Err(Error::Invalid(format!(
            "image_weight must be in [0, 1], got {image_weight}"
        )));
    }
    let (w, h) = img.dimensions();
    if mask.len() != w as usize * h as usize {
        return Err(Error::Invalid(format!(
            "overlay: the mask has {} values but the image is {w}x{h} ({} pixels)",
            mask.len(),
            w as usize * h as usize
        )));
    }
    // pytorch-grad-cam computes `1 - image_weight` on a Python float (a double), and NumPy casts
    // it to float32 to multiply the float32 heat map. Taking the weight as the decimal number it
    // prints as ("0.77") gives the same double as the Python literal, hence the same float32.
    let weight64: f64 = image_weight
        .to_string()
        .parse()
        .unwrap_or(image_weight as f64);
    let heat_weight = (1.0 - weight64) as f32;
    let image_weight = weight64 as f32;
    let mut cam: Vec<f32> = Vec::with_capacity(mask.len() * 3);
    for (px, &m) in img.pixels().zip(mask) {
        let heat = JET[mask_byte(m) as usize];
        for (&h, &i) in heat.iter().zip(&px.0) {
            cam.push(heat_weight * (h as f32 / 255.0) + image_weight * (i as f32 / 255.0));
        }
    }
    let max = cam.iter().copied().fold(0.0f32, f32::max);
    let out = cam
        .iter()
        .map(|&v| {
            if max > 0.0 {
                (255.0f32 * (v / max)) as u8
            } else {
                0
            }
        })
        .collect();
    Ok(RgbImage::from_raw(w, h, out).expect("buffer matches the size"))
}

/// Draws the outline of `b` (inclusive pixel coordinates) in `color`, `thickness` pixels wide,
/// inside the box: a pixel of the box is painted when it is fewer than `thickness` pixels from
/// one of the box's edges. Parts outside the image are clipped; a thickness of 0, or a box with
/// `x2 < x1` or `y2 < y1`, draws nothing.
///
/// ```
/// use gradcam::image::{draw_box, RgbImage};
/// use gradcam::localize::BBox;
/// let mut img = RgbImage::new(5, 5);
/// draw_box(&mut img, &BBox { x1: 1, y1: 1, x2: 3, y2: 3 }, [255, 0, 0], 1);
/// assert_eq!(img.get_pixel(1, 1).0, [255, 0, 0]);
/// assert_eq!(img.get_pixel(2, 2).0, [0, 0, 0]); // the inside is left alone
/// ```
pub fn draw_box(img: &mut RgbImage, b: &BBox, color: [u8; 3], thickness: u32) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || thickness == 0 || b.x2 < b.x1 || b.y2 < b.y1 {
        return;
    }
    let t = thickness;
    for y in b.y1..=b.y2.min(h - 1) {
        let row_edge = y - b.y1 < t || b.y2 - y < t;
        for x in b.x1..=b.x2.min(w - 1) {
            if row_edge || x - b.x1 < t || b.x2 - x < t {
                img.put_pixel(x, y, ::image::Rgb(color));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::Rgb;

    #[test]
    fn jet_table_matches_the_csv() {
        let csv = include_str!("../../assets/opencv_jet_lut.csv");
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("index,r,g,b"));
        let rows: Vec<[u8; 3]> = lines
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                let v: Vec<u16> = l.trim().split(',').map(|f| f.parse().unwrap()).collect();
                assert_eq!(v[0] as usize, i);
                [v[1] as u8, v[2] as u8, v[3] as u8]
            })
            .collect();
        assert_eq!(rows.len(), 256);
        assert_eq!(rows.as_slice(), JET.as_slice());
    }

    #[test]
    fn mask_byte_truncates_and_clamps() {
        assert_eq!(mask_byte(0.0), 0);
        assert_eq!(mask_byte(1.0), 255);
        assert_eq!(mask_byte(0.5), 127); // 127.5 truncated
        assert_eq!(mask_byte(0.999), 254); // 254.745
        assert_eq!(mask_byte(-0.3), 0);
        assert_eq!(mask_byte(7.0), 255);
        assert_eq!(mask_byte(f32::NAN), 0);
    }

    #[test]
    fn overlay_by_hand() {
        // Pixel 0: white under mask 0 -> heat JET[0] = (0, 0, 128).
        //   cam = 0.5 * (0, 0, 128/255) + 0.5 * (1, 1, 1) = (0.5, 0.5, 0.7509804)
        // Pixel 1: black under mask 1 -> heat JET[255] = (128, 0, 0).
        //   cam = (0.2509804, 0, 0)
        // max = 0.7509804: out = 255 * cam / max = (169.77, 169.77, 255), (85.22, 0, 0).
        let img = RgbImage::from_raw(2, 1, vec![255, 255, 255, 0, 0, 0]).unwrap();
        let out = overlay(&img, &[0.0, 1.0], 0.5).unwrap();
        assert_eq!(out.as_raw(), &vec![169, 169, 255, 85, 0, 0]);
        // image_weight 1 shows the image alone, rescaled so that its maximum is 255.
        let img = RgbImage::from_raw(2, 1, vec![100, 50, 0, 0, 0, 200]).unwrap();
        let out = overlay(&img, &[0.3, 0.9], 1.0).unwrap();
        assert_eq!(out.as_raw(), &vec![127, 63, 0, 0, 0, 255]);
        // image_weight 0 shows the colormap alone: JET[76] = (0, 56, 255) for 255 * 0.3 = 76.5.
        let out = overlay(&img, &[0.3, 0.3], 0.0).unwrap();
        assert_eq!(out.get_pixel(0, 0).0, JET[76]);
        // all black: no division by zero
        let black = RgbImage::new(2, 2);
        assert_eq!(overlay(&black, &[0.0; 4], 1.0).unwrap(), black);
    }

    #[test]
    fn overlay_float_order_matches_numpy() {
        // 0.7 * (128 / 255) + 0.3 * (37 / 255) in float32, step by step.
        let img = RgbImage::from_pixel(1, 1, Rgb([37, 37, 37]));
        let out = overlay(&img, &[1.0], 0.3).unwrap();
        let cam = |h: f32| 0.7f32 * (h / 255.0) + 0.3f32 * (37.0f32 / 255.0);
        let (r, g) = (cam(128.0), cam(0.0));
        assert_eq!(
            out.get_pixel(0, 0).0,
            [
                (255.0 * (r / r)) as u8,
                (255.0 * (g / r)) as u8,
                (255.0 * (g / r)) as u8
            ]
        );
    }

    #[test]
    fn overlay_weight_is_taken_as_its_decimal() {
        // Python: 1 - 0.77 = 0.22999999999999998 (double) -> 0.23f32, whereas
        // 1 - 0.77f32 = 0.23000002 (float32). Mask 0 -> JET[0] = (0, 0, 128) and a red pixel:
        // the green channel is 0.77 * 200/255 alone, so it shows which weight was used.
        let img = RgbImage::from_pixel(1, 1, Rgb([255, 200, 0]));
        let out = overlay(&img, &[0.0], 0.77).unwrap();
        let cam = |h: f32, i: f32| 0.23f32 * (h / 255.0) + 0.77f32 * (i / 255.0);
        let (r, g, b) = (cam(0.0, 255.0), cam(0.0, 200.0), cam(128.0, 0.0));
        assert_eq!(
            out.get_pixel(0, 0).0,
            [255, (255.0 * (g / r)) as u8, (255.0 * (b / r)) as u8]
        );
        assert_ne!(0.23f32, 1.0 - 0.77f32);
    }

    #[test]
    fn overlay_rejects_bad_arguments() {
        let img = RgbImage::new(3, 2);
        for w in [-0.1, 1.5, f32::NAN] {
            assert!(
                matches!(overlay(&img, &[0.0; 6], w), Err(Error::Invalid(_))),
                "{w}"
            );
        }
        let e = overlay(&img, &[0.0; 5], 0.5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "overlay: the mask has 5 values but the image is 3x2 (6 pixels)"
        );
    }

    fn painted(img: &RgbImage) -> Vec<String> {
        (0..img.height())
            .map(|y| {
                (0..img.width())
                    .map(|x| {
                        if img.get_pixel(x, y).0 == [9, 9, 9] {
                            '#'
                        } else {
                            '.'
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn draw_box_outline_and_thickness() {
        let mut img = RgbImage::new(7, 6);
        draw_box(
            &mut img,
            &BBox {
                x1: 1,
                y1: 1,
                x2: 5,
                y2: 4,
            },
            [9, 9, 9],
            1,
        );
        assert_eq!(
            painted(&img),
            [
                ".......", ".#####.", ".#...#.", ".#...#.", ".#####.", "......."
            ]
        );
        let mut img = RgbImage::new(7, 6);
        draw_box(
            &mut img,
            &BBox {
                x1: 0,
                y1: 0,
                x2: 6,
                y2: 5,
            },
            [9, 9, 9],
            2,
        );
        assert_eq!(
            painted(&img),
            [
                "#######", "#######", "##...##", "##...##", "#######", "#######"
            ]
        );
        // a thickness larger than the box fills it
        let mut img = RgbImage::new(4, 3);
        draw_box(
            &mut img,
            &BBox {
                x1: 1,
                y1: 0,
                x2: 2,
                y2: 1,
            },
            [9, 9, 9],
            5,
        );
        assert_eq!(painted(&img), [".##.", ".##.", "...."]);
    }

    #[test]
    fn draw_box_is_clipped() {
        let mut img = RgbImage::new(5, 4);
        draw_box(
            &mut img,
            &BBox {
                x1: 2,
                y1: 1,
                x2: 100,
                y2: 100,
            },
            [9, 9, 9],
            1,
        );
        assert_eq!(painted(&img), [".....", "..###", "..#..", "..#.."]);
        let mut img = RgbImage::new(5, 4);
        draw_box(
            &mut img,
            &BBox {
                x1: 10,
                y1: 10,
                x2: 20,
                y2: 20,
            },
            [9, 9, 9],
            1,
        );
        draw_box(
            &mut img,
            &BBox {
                x1: 3,
                y1: 2,
                x2: 1,
                y2: 2,
            },
            [9, 9, 9],
            1,
        );
        draw_box(
            &mut img,
            &BBox {
                x1: 0,
                y1: 0,
                x2: 4,
                y2: 3,
            },
            [9, 9, 9],
            0,
        );
        assert_eq!(img, RgbImage::new(5, 4));
    }
}
