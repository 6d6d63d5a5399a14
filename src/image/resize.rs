//! Resizing images bit-exact with Pillow's bilinear filter ([`resize_bilinear`]), as the Python
//! reference pipeline does (float maps are resized as OpenCV does, in `map_resize.rs`).

use ::image::RgbImage;

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in `Resample.c`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `bilinear_filter`: the triangle `max(0, 1 - |x|)`.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// The taps of one resampling pass: for output index `i`, input indices
/// `start[i]..start[i] + len[i]` with weights `weights[i * ksize..][..len[i]]`.
struct Taps {
    ksize: usize,
    start: Vec<usize>,
    len: Vec<usize>,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc` for the bilinear filter and
/// the box `0..in_size`.
fn precompute(in_size: usize, out_size: usize) -> Taps {
    // box[0] and box[2] are C floats in Pillow; `in1 - in0` is computed in float.
    let (in0, in1) = (0.0f32, in_size as f32);
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 1.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut start = Vec::with_capacity(out_size);
    let mut len = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let n = (xmax - xmin).max(0) as usize;
        let mut ww = 0.0f64;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = triangle((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let fixed = v * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if v < 0.0 {
                (-0.5 + fixed) as i32
            } else {
                (0.5 + fixed) as i32
            };
        }
        start.push(xmin as usize);
        len.push(n);
    }
    Taps {
        ksize,
        start,
        len,
        weights,
    }
}

/// Pillow's `clip8`: the accumulator shifted down by `PRECISION_BITS`, clamped to a byte.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's horizontal pass (`ImagingResampleHorizontal_8bpc`) over the rows `rows` of an RGB
/// buffer `in_w` pixels wide: returns `taps.start.len()` pixels for each of those rows.
fn horizontal(src: &[u8], in_w: usize, rows: std::ops::Range<usize>, taps: &Taps) -> Vec<u8> {
    let out_w = taps.start.len();
    let mut out = vec![0u8; out_w * rows.len() * 3];
    for (out_row, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let row = &src[y * in_w * 3..][..in_w * 3];
        for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
            let k = &taps.weights[xx * taps.ksize..][..taps.len[xx]];
            let pixels = &row[taps.start[xx] * 3..][..taps.len[xx] * 3];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (&w, p) in k.iter().zip(pixels.chunks_exact(3)) {
                for c in 0..3 {
                    acc[c] += p[c] as i32 * w;
                }
            }
            for c in 0..3 {
                px[c] = clip8(acc[c]);
            }
        }
    }
    out
}

/// Pillow's vertical pass (`ImagingResampleVertical_8bpc`) over an RGB buffer `w` pixels wide
/// whose first row is source row `row0`: returns `taps.start.len()` rows.
fn vertical(src: &[u8], w: usize, row0: usize, taps: &Taps) -> Vec<u8> {
    let stride = w * 3;
    let mut out = vec![0u8; taps.start.len() * stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let k = &taps.weights[yy * taps.ksize..][..taps.len[yy]];
        let ymin = taps.start[yy] - row0;
        for (i, o) in out_row.iter_mut().enumerate() {
            let mut acc = 1i32 << (PRECISION_BITS - 1);
            for (y, &w) in k.iter().enumerate() {
                acc += src[(ymin + y) * stride + i] as i32 * w;
            }
            *o = clip8(acc);
        }
    }
    out
}

/// Resizes an RGB image like Pillow's `Image.resize((width, height), Image.BILINEAR)`,
/// byte for byte.
///
/// This is Pillow's separable convolution (`Resample.c`), not point sampling: when shrinking,
/// the triangle filter is stretched to cover `scale` input pixels on each side (antialiasing);
/// per output pixel the weights are normalised, converted to 22-bit fixed point and applied with
/// rounding; the second pass works on the 8-bit result of the first. Resizing to the same size
/// returns a copy; a size of 0 gives an empty image, and an empty input gives a black image of
/// the requested size.
///
/// Pass order: the horizontal pass runs first, except when the height shrinks by more than
/// twice as many pixels as the width does (`in_h - height > 2 * (in_w - width)` with
/// `height < in_h`), where the vertical pass runs first. That is Pillow 13.0.0's rule (measured
/// on 600 random shapes; python-pillow/Pillow#9549); earlier versions always run the horizontal
/// pass first, so in those cases they differ from this function by the rounding of the 8-bit
/// intermediate image.
///
/// ```
/// use gradcam::image::{resize_bilinear, RgbImage};
/// let img = RgbImage::from_raw(2, 1, vec![0, 0, 0, 255, 255, 255]).unwrap();
/// let out = resize_bilinear(&img, 4, 1);
/// // Pillow: [0, 64, 191, 255] in every channel
/// assert_eq!(out.as_raw().iter().step_by(3).copied().collect::<Vec<_>>(), [0, 64, 191, 255]);
/// ```
pub fn resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if out_w == 0 || out_h == 0 {
        return RgbImage::new(width, height);
    }
    if (out_w, out_h) == (in_w, in_h) {
        return img.clone();
    }
    let src = img.as_raw();
    let out = if out_h == in_h {
        horizontal(src, in_w, 0..in_h, &precompute(in_w, out_w))
    } else if out_w == in_w {
        vertical(src, in_w, 0, &precompute(in_h, out_h))
    } else if out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64) {
        let tmp = vertical(src, in_w, 0, &precompute(in_h, out_h));
        horizontal(&tmp, in_w, 0..out_h, &precompute(in_w, out_w))
    } else {
        // Only the rows the vertical pass reads (Pillow's ybox_first..ybox_last).
        let vert = precompute(in_h, out_h);
        let (first, last) = (vert.start[0], vert.start[out_h - 1] + vert.len[out_h - 1]);
        let tmp = horizontal(src, in_w, first..last, &precompute(in_w, out_w));
        vertical(&tmp, out_w, first, &vert)
    };
    RgbImage::from_raw(width, height, out).expect("buffer matches the size")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32, v: &[u8]) -> RgbImage {
        RgbImage::from_raw(w, h, v.iter().flat_map(|&x| [x, x, x]).collect()).unwrap()
    }

    fn channel0(img: &RgbImage) -> Vec<u8> {
        img.as_raw().iter().step_by(3).copied().collect()
    }

    #[test]
    fn pillow_coefficients_by_hand() {
        // Enlarging 2 -> 4: scale 0.5, support 1. Output 1: centre 0.75, taps 0..2 with
        // triangle(0.25) = 0.75 and triangle(0.75) = 0.25.
        let t = precompute(2, 4);
        assert_eq!(t.ksize, 3);
        assert_eq!((t.start[1], t.len[1]), (0, 2));
        assert_eq!(&t.weights[3..5], &[3 << 20, 1 << 20]);
        // Output 0: centre 0.25, taps 0..1 (xmax = int(1.75) = 1): single weight 1.
        assert_eq!((t.start[0], t.len[0]), (0, 1));
        assert_eq!(t.weights[0], 1 << 22);
        // Shrinking 4 -> 2: scale 2, support 2, filter stretched: centre 1, taps 0..3 with
        // triangle(-0.25), triangle(0.25), triangle(0.75) = 0.75, 0.75, 0.25 over a sum of 1.75.
        let t = precompute(4, 2);
        assert_eq!(t.ksize, 5);
        assert_eq!((t.start[0], t.len[0]), (0, 3));
        let w = |v: f64| (0.5 + v / 1.75 * (1u32 << 22) as f64) as i32;
        assert_eq!(&t.weights[..3], &[w(0.75), w(0.75), w(0.25)]);
        assert_eq!(&t.weights[..3], &[1797559, 1797559, 599186]);
    }

    #[test]
    fn enlarge_two_pixels() {
        // 0*0.75 + 255*0.25 = 63.75 -> 64; 0*0.25 + 255*0.75 = 191.25 -> 191.
        let out = resize_bilinear(&gray(2, 1, &[0, 255]), 4, 1);
        assert_eq!(channel0(&out), [0, 64, 191, 255]);
        // The same vertically.
        let out = resize_bilinear(&gray(1, 2, &[0, 255]), 1, 4);
        assert_eq!(channel0(&out), [0, 64, 191, 255]);
    }

    #[test]
    fn shrink_is_antialiased() {
        // 4 -> 2 with weights (0.75, 0.75, 0.25)/1.75 on [0, 100, 200] and
        // (0.25, 0.75, 0.75)/1.75 on [100, 200, 250]:
        // (75 + 50) / 1.75 = 71.43 -> 71; (25 + 150 + 187.5) / 1.75 = 207.14 -> 207.
        let out = resize_bilinear(&gray(4, 1, &[0, 100, 200, 250]), 2, 1);
        assert_eq!(channel0(&out), [71, 207]);
        // Point sampling would give a different answer: this is not cv2's INTER_LINEAR.
        // 6 -> 1 averages with a triangle over the whole row: centre 3, support 6,
        // weights triangle((x + 0.5 - 3) / 6) = 7/12, 9/12, 11/12, 11/12, 9/12, 7/12 (sum 4.5).
        let out = resize_bilinear(&gray(6, 1, &[0, 0, 0, 255, 255, 255]), 1, 1);
        // The last three weigh 27/54 = 0.5 of 255 = 127.5, which rounds half up to 128.
        assert_eq!(channel0(&out), [128]);
    }

    #[test]
    fn both_directions_and_channels() {
        // 2x2 -> 3x3: centre = (x + 0.5) * 2/3, so per axis the taps are out0 = [1],
        // out1 = [0.5, 0.5], out2 = [1] (0.5 in fixed point rounds half up).
        // Horizontal first on rows [10, 50] and [90, 250]:
        //   out0: centre 1/3, taps 0..1 -> 10; out1: centre 1, taps 0..2 with triangle(-0.5),
        //   triangle(0.5) -> 30; out2: centre 5/3, taps 1..2 -> 50. Row 2: 90, 170, 250.
        // Then vertically the same weights: middle row = (10+90)/2, (30+170)/2, (50+250)/2.
        let img = RgbImage::from_raw(2, 2, vec![10, 20, 30, 50, 60, 70, 90, 100, 110, 250, 0, 5])
            .unwrap();
        let out = resize_bilinear(&img, 3, 3);
        let r: Vec<u8> = out.as_raw().to_vec();
        assert_eq!(&r[..9], &[10, 20, 30, 30, 40, 50, 50, 60, 70]);
        assert_eq!(&r[9..18], &[50, 60, 70, 100, 45, 54, 150, 30, 38]);
        assert_eq!(&r[18..], &[90, 100, 110, 170, 50, 58, 250, 0, 5]);
    }

    #[test]
    fn same_size_and_degenerate() {
        let img = gray(3, 2, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(resize_bilinear(&img, 3, 2), img);
        assert_eq!(resize_bilinear(&img, 0, 5).dimensions(), (0, 5));
        // only one direction changes: the other pass is skipped
        let out = resize_bilinear(&img, 3, 1);
        // 2 -> 1: centre 1, support 2: taps 0..2 with triangle(-0.25) = 0.75 each -> mean.
        assert_eq!(channel0(&out), [3, 4, 5]); // (1+4)/2 = 2.5 -> 3 (round half up)
        let out = resize_bilinear(&img, 1, 2);
        // 3 -> 1: centre 1.5, support 3, taps 0..3 weights triangle((x - 1)/3): 2/3, 1, 2/3.
        // row 0: (2/3 + 2 + 2) / (7/3) = 2; row 1: (8/3 + 5 + 4) / (7/3) = 5.
        assert_eq!(channel0(&out), [2, 5]);
        let black = resize_bilinear(&RgbImage::new(0, 0), 2, 2);
        assert_eq!(black.as_raw(), &vec![0u8; 12]);
    }
}
