//! Heat-map overlays (pytorch-grad-cam's `show_cam_on_image`) and box drawing.

use ::image::{GenericImageView, Rgb, RgbImage};

use super::RgbRows;
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
/// This makes the whole picture; [`Overlay`] gives the same pixels on demand, with no float
/// copy of the image.
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
    let (w, h) = img.dimensions();
    if mask.len() != w as usize * h as usize {
        return Err(Error::Invalid(format!(
            "overlay: the mask has {} values but the image is {w}x{h} ({} pixels)",
            mask.len(),
            w as usize * h as usize
        )));
    }
    let w = w as usize;
    let blend = Overlay::new(img, image_weight, |y, row| {
        row.copy_from_slice(&mask[y * w..][..w])
    })?;
    Ok(blend.to_image())
}

/// [`overlay`]'s picture, pixel by pixel, holding the image (borrowed), one byte per pixel
/// for the mask and a 196 KiB table, instead of the picture or a float copy of the image.
///
/// An output byte depends only on its pixel's mask byte `m = u8(255 * mask)`, its channel `c`
/// and the image's byte `i` there; and for given `m` and `c` the blend grows with `i` (float32
/// rounding keeps that order). So the maximum of step 3 is that of the brightest image byte
/// under each `(m, c)`, found in one pass, after which every output byte is
/// `table[m][c][i]`.
///
/// ```
/// use gradcam::image::{overlay, Overlay, RgbImage, RgbRows};
/// let img = RgbImage::from_raw(2, 1, vec![255, 255, 255, 0, 0, 0]).unwrap();
/// let mask = [0.0, 1.0];
/// let blend = Overlay::new(&img, 0.5, |y, row| row.copy_from_slice(&mask[2 * y..][..2]))?;
/// assert_eq!(blend.pixel(1, 0), [85, 0, 0]);
/// assert_eq!(blend.to_image(), overlay(&img, &mask, 0.5)?);
/// # Ok::<(), gradcam::Error>(())
/// ```
pub struct Overlay<'a> {
    image: &'a RgbImage,
    /// `u8(255 * mask)` per pixel, row-major.
    mask: Vec<u8>,
    /// `table[(m * 3 + c) * 256 + i]`: the output byte for mask byte `m`, channel `c` and image
    /// byte `i`.
    table: Vec<u8>,
}

impl<'a> Overlay<'a> {
    /// The overlay of a mask on `image`, the mask given a row at a time: `mask_row(y, out)`
    /// writes row `y`'s `width` values into `out` (called once per row, top to bottom).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if `image_weight` is not in `[0, 1]`.
    pub fn new(
        image: &'a RgbImage,
        image_weight: f32,
        mut mask_row: impl FnMut(usize, &mut [f32]),
    ) -> Result<Self> {
        let weights = Weights::new(image_weight)?;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut mask = vec![0u8; w * h];
        // The brightest image byte under each (mask byte, channel); -1 where the mask byte
        // does not occur.
        let mut brightest = [-1i16; 256 * 3];
        let mut values = vec![0.0f32; w];
        if w > 0 {
            for (y, (bytes, pixels)) in mask
                .chunks_exact_mut(w)
                .zip(image.as_raw().chunks_exact(3 * w))
                .enumerate()
            {
                mask_row(y, &mut values);
                for ((b, &v), px) in bytes.iter_mut().zip(&values).zip(pixels.chunks_exact(3)) {
                    *b = mask_byte(v);
                    for c in 0..3 {
                        let top = &mut brightest[*b as usize * 3 + c];
                        *top = (*top).max(px[c] as i16);
                    }
                }
            }
        }
        let max = brightest
            .iter()
            .enumerate()
            .filter(|(_, i)| **i >= 0)
            .map(|(mc, &i)| weights.blend(mc / 3, mc % 3, i as u8))
            .fold(0.0f32, f32::max);
        let table = (0..256 * 3 * 256)
            .map(|k| {
                let (mc, i) = (k / 256, k % 256);
                weights.scaled(mc / 3, mc % 3, i as u8, max)
            })
            .collect();
        Ok(Overlay { image, mask, table })
    }

    /// The RGB pixel at `(x, y)`.
    ///
    /// # Panics
    ///
    /// If `(x, y)` is outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = y as usize * self.image.width() as usize + x as usize;
        let px = self.image.get_pixel(x, y).0;
        let m = self.mask[i] as usize;
        std::array::from_fn(|c| self.table[(m * 3 + c) * 256 + px[c] as usize])
    }
}

impl GenericImageView for Overlay<'_> {
    type Pixel = Rgb<u8>;

    fn dimensions(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    fn get_pixel(&self, x: u32, y: u32) -> Rgb<u8> {
        Rgb(self.pixel(x, y))
    }
}

impl RgbRows for Overlay<'_> {
    /// Writes row `y`'s RGB bytes into `out` (`3 x width` bytes).
    ///
    /// # Panics
    ///
    /// If `y` is outside the image or `out` has the wrong length.
    fn row(&self, y: u32, out: &mut [u8]) {
        let w = self.image.width() as usize;
        let pixels = &self.image.as_raw()[y as usize * 3 * w..][..3 * w];
        let mask = &self.mask[y as usize * w..][..w];
        for ((o, px), &m) in out
            .chunks_exact_mut(3)
            .zip(pixels.chunks_exact(3))
            .zip(mask)
        {
            for c in 0..3 {
                o[c] = self.table[(m as usize * 3 + c) * 256 + px[c] as usize];
            }
        }
    }
}

/// The two weights of the blend, as pytorch-grad-cam has them in float32.
struct Weights {
    heat: f32,
    image: f32,
}

impl Weights {
    fn new(image_weight: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&image_weight) {
            return Err(Error::Invalid(format!(
                "image_weight must be in [0, 1], got {image_weight}"
            )));
        }
        // pytorch-grad-cam computes `1 - image_weight` on a Python float (a double), and NumPy
        // casts it to float32 to multiply the float32 heat map. Taking the weight as the decimal
        // number it prints as ("0.77") gives the same double as the Python literal, hence the
        // same float32.
        let weight64: f64 = image_weight
            .to_string()
            .parse()
            .unwrap_or(image_weight as f64);
        Ok(Weights {
            heat: (1.0 - weight64) as f32,
            image: weight64 as f32,
        })
    }

    /// Step 2: `cam` for mask byte `m`, channel `c` and image byte `i`.
    fn blend(&self, m: usize, c: usize, i: u8) -> f32 {
        self.heat * (JET[m][c] as f32 / 255.0) + self.image * (i as f32 / 255.0)
    }

    /// Steps 3 and 4: the output byte, given the maximum of `cam`.
    fn scaled(&self, m: usize, c: usize, i: u8, max: f32) -> u8 {
        if max > 0.0 {
            (255.0f32 * (self.blend(m, c, i) / max)) as u8
        } else {
            0
        }
    }
}

/// A box outline as [`draw_box`] paints it: which pixels it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outline {
    pub bbox: BBox,
    pub color: [u8; 3],
    pub thickness: u32,
}

impl Outline {
    /// Whether the outline paints pixel `(x, y)`: inside the box and fewer than `thickness`
    /// pixels from one of its edges.
    pub fn covers(&self, x: u32, y: u32) -> bool {
        let (b, t) = (&self.bbox, self.thickness);
        (b.x1..=b.x2).contains(&x)
            && (b.y1..=b.y2).contains(&y)
            && (y - b.y1 < t || b.y2 - y < t || x - b.x1 < t || b.x2 - x < t)
    }

    /// Paints the outline's pixels of row `y` in `row` (the row's RGB bytes).
    pub fn paint_row(&self, y: u32, row: &mut [u8]) {
        let b = &self.bbox;
        if !(b.y1..=b.y2).contains(&y) {
            return;
        }
        let Some(last) = ((row.len() / 3) as u32).checked_sub(1) else {
            return;
        };
        for x in b.x1..=b.x2.min(last) {
            if self.covers(x, y) {
                row[3 * x as usize..][..3].copy_from_slice(&self.color);
            }
        }
    }
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
    let outline = Outline {
        bbox: *b,
        color,
        thickness,
    };
    let w = img.width() as usize;
    if w == 0 {
        return;
    }
    for (y, row) in img.chunks_exact_mut(3 * w).enumerate() {
        outline.paint_row(y as u32, row);
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

    /// `overlay` as it was written first, from pytorch-grad-cam's steps: a float32 `cam` of the
    /// whole image, its maximum, then the bytes.
    fn reference_overlay(img: &RgbImage, mask: &[f32], image_weight: f32) -> Vec<u8> {
        let weight64: f64 = image_weight.to_string().parse().unwrap();
        let (heat_weight, image_weight) = ((1.0 - weight64) as f32, weight64 as f32);
        let mut cam: Vec<f32> = Vec::new();
        for (px, &m) in img.pixels().zip(mask) {
            let heat = JET[mask_byte(m) as usize];
            for (&h, &i) in heat.iter().zip(&px.0) {
                cam.push(heat_weight * (h as f32 / 255.0) + image_weight * (i as f32 / 255.0));
            }
        }
        let max = cam.iter().copied().fold(0.0f32, f32::max);
        cam.iter()
            .map(|&v| {
                if max > 0.0 {
                    (255.0f32 * (v / max)) as u8
                } else {
                    0
                }
            })
            .collect()
    }

    #[test]
    fn the_table_gives_the_reference_bytes() {
        // xorshift64: random images (dark, bright, full range) under random masks (NaN and
        // out-of-range values too), at the weights the CLI and tests use and a few odd ones.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let weights = [0.0, 0.3, 0.5, 0.77, 1.0, 0.123_456, 1e-7];
        for case in 0..400 {
            let (w, h) = (1 + (next() % 40) as u32, 1 + (next() % 30) as u32);
            let top = [8u64, 64, 256][case % 3];
            let img = RgbImage::from_fn(w, h, |_, _| Rgb([0; 3].map(|_: u8| (next() % top) as u8)));
            let mask: Vec<f32> = (0..w * h)
                .map(|_| match next() % 50 {
                    0 => f32::NAN,
                    1 => -0.5,
                    2 => 3.0,
                    _ => (next() % 10_001) as f32 / 10_000.0,
                })
                .collect();
            let weight = weights[case % weights.len()];
            let got = overlay(&img, &mask, weight).unwrap();
            assert_eq!(
                got.as_raw(),
                &reference_overlay(&img, &mask, weight),
                "case {case}"
            );
            let blend = Overlay::new(&img, weight, |y, row| {
                row.copy_from_slice(&mask[y * w as usize..][..w as usize])
            })
            .unwrap();
            let (x, y) = ((next() % w as u64) as u32, (next() % h as u64) as u32);
            assert_eq!(blend.pixel(x, y), got.get_pixel(x, y).0, "case {case}");
        }
    }

    #[test]
    fn outline_rows_paint_what_covers_says() {
        let outline = Outline {
            bbox: BBox {
                x1: 2,
                y1: 1,
                x2: 9,
                y2: 5,
            },
            color: [9, 9, 9],
            thickness: 2,
        };
        for y in 0..8 {
            let mut row = vec![0u8; 3 * 7]; // clipped at x = 6
            outline.paint_row(y, &mut row);
            for x in 0..7 {
                let painted = row[3 * x as usize] == 9;
                assert_eq!(painted, outline.covers(x, y), "({x}, {y})");
            }
        }
        assert!(outline.covers(2, 3) && outline.covers(3, 3) && !outline.covers(4, 3));
        assert!(outline.covers(5, 4) && !outline.covers(5, 3) && !outline.covers(1, 1));
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
