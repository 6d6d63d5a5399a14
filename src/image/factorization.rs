//! pytorch-grad-cam's `show_factorization_on_image`: every concept of a Deep Feature
//! Factorization in its own colour on one picture, each pixel coloured by the concept whose map
//! is largest there, as bright as that map.

use ::image::RgbImage;

use crate::error::{Error, Result};

/// matplotlib's `gist_rainbow` colour map: (position, RGB) stops, linearly interpolated.
const GIST_RAINBOW: [(f32, [f32; 3]); 8] = [
    (0.000, [1.00, 0.00, 0.16]),
    (0.030, [1.00, 0.00, 0.00]),
    (0.215, [1.00, 1.00, 0.00]),
    (0.400, [0.00, 1.00, 0.00]),
    (0.586, [0.00, 1.00, 1.00]),
    (0.770, [0.00, 0.00, 1.00]),
    (0.954, [1.00, 0.00, 1.00]),
    (1.000, [1.00, 0.00, 0.75]),
];

/// The colours pytorch-grad-cam gives `k` concepts: `gist_rainbow(i / k)`, read as matplotlib
/// reads it (entry `floor(x * 256)` of its 256-entry table), as 8-bit RGB (`np.uint8(c * 255)`).
pub fn concept_colors(k: usize) -> Vec<[u8; 3]> {
    (0..k)
        .map(|i| {
            let entry = ((i as f64 / k as f64) * 256.0).floor().min(255.0);
            let x = (entry / 255.0) as f32;
            let upper = GIST_RAINBOW
                .iter()
                .position(|&(p, _)| p >= x)
                .unwrap_or(GIST_RAINBOW.len() - 1)
                .max(1);
            let (x0, c0) = GIST_RAINBOW[upper - 1];
            let (x1, c1) = GIST_RAINBOW[upper];
            let t = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0);
            std::array::from_fn(|c| ((c0[c] + t * (c1[c] - c0[c])) * 255.0) as u8)
        })
        .collect()
}

/// The concepts' `maps` (each `width * height`, row-major, in [0, 1], at the photo's size) on
/// `image`: each pixel takes the colour of the concept whose map is largest there at that map's
/// brightness (pytorch-grad-cam sets the HSV value to `np.uint8(255 * map)` with OpenCV),
/// blended as `image * image_weight + colour * (1 - image_weight)`.
pub fn show_factorization(
    image: &RgbImage,
    maps: &[Vec<f32>],
    colors: &[[u8; 3]],
    image_weight: f32,
) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    let pixels = w as usize * h as usize;
    if maps.is_empty() || maps.iter().any(|m| m.len() != pixels) || colors.len() < maps.len() {
        return Err(Error::Invalid(format!(
            "show_factorization: {} maps of {} values and {} colours for a {w}x{h} image",
            maps.len(),
            maps.first().map_or(0, Vec::len),
            colors.len()
        )));
    }
    let shades: Vec<[[u8; 3]; 256]> = colors[..maps.len()].iter().map(|&c| shades(c)).collect();
    // numpy's float32 arithmetic, the mask's weight rounded from a double as numpy does.
    let mask_weight = (1.0 - image_weight as f64) as f32;
    let mut out = image.clone();
    for (p, pixel) in out.pixels_mut().enumerate() {
        // numpy's argmax: the first of equal maxima.
        let (best, value) =
            maps.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, m)| {
                    if m[p] > bv { (i, m[p]) } else { (bi, bv) }
                });
        let shade = shades[best][(255.0 * value.clamp(0.0, 1.0)) as u8 as usize];
        for (v, &s) in pixel.0.iter_mut().zip(&shade) {
            let (photo, colour) = (*v as f32 / 255.0, s as f32 / 255.0);
            *v = ((photo * image_weight + colour * mask_weight) * 255.0) as u8;
        }
    }
    Ok(out)
}

/// `color` at each HSV value `v` in 0..=255, as pytorch-grad-cam makes it: OpenCV's 8-bit
/// `COLOR_RGB2HSV`, the value replaced by `v`, then `COLOR_HSV2RGB` (OpenCV's integer and
/// float steps, so that the bytes agree).
fn shades(color: [u8; 3]) -> [[u8; 3]; 256] {
    const SHIFT: i32 = 12;
    let [r, g, b] = color.map(i32::from);
    let v = r.max(g).max(b);
    let diff = v - r.min(g).min(b);
    let round = |x: f64| x.round_ties_even() as i32;
    let sdiv = if v == 0 {
        0
    } else {
        round(f64::from(255 << SHIFT) / f64::from(v))
    };
    let hdiv = if diff == 0 {
        0
    } else {
        round(f64::from(180 << SHIFT) / (6.0 * f64::from(diff)))
    };
    let s = (diff * sdiv + (1 << (SHIFT - 1))) >> SHIFT;
    let hue = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut hue = (hue * hdiv + (1 << (SHIFT - 1))) >> SHIFT;
    if hue < 0 {
        hue += 180;
    }
    let (h, s) = (hue as f32 * (6.0 / 180.0), s as f32 * (1.0 / 255.0));
    std::array::from_fn(|value| {
        let v = value as f32 * (1.0 / 255.0);
        let [r, g, b] = if s == 0.0 {
            [v; 3]
        } else {
            let h = h % 6.0;
            let sector = h.floor() as usize % 6;
            let f = h - h.floor();
            let tab = [
                v,
                v * (1.0 - s),
                v * (1.0 - s * f),
                v * (1.0 - s * (1.0 - f)),
            ];
            // OpenCV's sector table gives (b, g, r) indices into `tab`.
            const SECTORS: [[usize; 3]; 6] = [
                [1, 3, 0],
                [1, 0, 2],
                [3, 0, 1],
                [0, 2, 1],
                [0, 1, 3],
                [2, 1, 0],
            ];
            let [bi, gi, ri] = SECTORS[sector];
            [tab[ri], tab[gi], tab[bi]]
        };
        [r, g, b].map(|c| (c * 255.0).round_ties_even().clamp(0.0, 255.0) as u8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_are_matplotlibs_gist_rainbow() {
        // matplotlib 3.11: [np.uint8(255 * np.array(cm(i))[:3]) for i in np.arange(0, 1, 1 / 4)]
        // with cm = plt.get_cmap("gist_rainbow").
        assert_eq!(
            concept_colors(4),
            [[255, 0, 40], [205, 255, 0], [0, 255, 139], [0, 23, 255]]
        );
    }

    #[test]
    fn each_pixel_shows_its_strongest_concept() {
        let image = RgbImage::from_raw(2, 1, vec![100, 100, 100, 0, 0, 0]).unwrap();
        let maps = vec![vec![1.0, 0.2], vec![0.5, 0.6]];
        let colors = [[255, 0, 0], [0, 0, 255]];
        let out = show_factorization(&image, &maps, &colors, 0.5).unwrap();
        // Pixel 0: concept 0 at full value, (100/255 * 0.5 + 1 * 0.5) * 255 = 177.5.
        assert_eq!(out.get_pixel(0, 0).0, [177, 50, 50]);
        // Pixel 1: concept 1 at np.uint8(255 * 0.6) = 153, 153 / 255 * 0.5 * 255 = 76.5.
        assert_eq!(out.get_pixel(1, 0).0, [0, 0, 76]);
        assert!(show_factorization(&image, &maps[..1], &colors, 0.5).is_ok());
        assert!(show_factorization(&image, &[vec![1.0]], &colors, 0.5).is_err());
    }
}
