//! A legend strip under a picture: one line of text per entry, each after an optional colour
//! swatch, in DejaVu Sans (embedded: no system fonts; see `src/eval/font/LICENSE.txt`).

use std::sync::OnceLock;

use ::image::{Rgb, RgbImage};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

static FONT_BYTES: &[u8] = include_bytes!("../eval/font/DejaVuSans.ttf");

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(FONT_BYTES).expect("the embedded DejaVu Sans parses")
    })
}

/// One line of a legend.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    /// The colour of the square before the text (none: text only).
    pub swatch: Option<[u8; 3]>,
    pub text: String,
}

/// The text height for a picture `width` pixels wide: legible on a phone photo and on a
/// 224-pixel input alike.
fn text_size(width: u32) -> f32 {
    (width as f32 / 36.0).clamp(12.0, 48.0)
}

/// `picture` with a white strip below it holding `entries`, one per line, in black.
pub fn with_legend(picture: &RgbImage, entries: &[LegendEntry]) -> RgbImage {
    let (w, h) = picture.dimensions();
    let size = text_size(w);
    let line = (size * 1.5).ceil() as u32;
    let margin = (size * 0.5).ceil() as u32;
    let strip = margin * 2 + line * entries.len() as u32;
    let mut out = RgbImage::from_pixel(w, h + strip, Rgb([255, 255, 255]));
    ::image::imageops::replace(&mut out, picture, 0, 0);
    for (i, entry) in entries.iter().enumerate() {
        let top = h + margin + line * i as u32;
        let mut x = margin as f32;
        if let Some(color) = entry.swatch {
            let side = size.round() as u32;
            let y0 = top + (line - side) / 2;
            for y in y0..(y0 + side).min(out.height()) {
                for dx in 0..side {
                    let px = margin + dx;
                    if px < w {
                        out.put_pixel(px, y, Rgb(color));
                    }
                }
            }
            x += side as f32 + size * 0.5;
        }
        draw_text(
            &mut out,
            &entry.text,
            x,
            top as f32 + (line as f32 - size) / 2.0,
            size,
        );
    }
    out
}

/// Draws `text` in black with its top-left corner at (`x`, `y`), `size` pixels high, clipped
/// to the image.
pub fn draw_text(image: &mut RgbImage, text: &str, x: f32, y: f32, size: f32) {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(size));
    let baseline = y + scaled.ascent();
    let mut caret = x;
    let mut previous = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = previous {
            caret += scaled.kern(p, id);
        }
        previous = Some(id);
        let glyph = id.with_scale_and_position(size, point(caret, baseline));
        caret += scaled.h_advance(id);
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, coverage| {
            let px = bounds.min.x as i64 + gx as i64;
            let py = bounds.min.y as i64 + gy as i64;
            if px < 0 || py < 0 || px >= image.width() as i64 || py >= image.height() as i64 {
                return;
            }
            let pixel = image.get_pixel_mut(px as u32, py as u32);
            let keep = 1.0 - coverage.clamp(0.0, 1.0);
            for v in pixel.0.iter_mut() {
                *v = (*v as f32 * keep).round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strip_holds_one_line_per_entry_below_the_untouched_picture() {
        let picture = RgbImage::from_pixel(224, 100, Rgb([10, 200, 30]));
        let entries = [
            LegendEntry {
                swatch: Some([255, 0, 40]),
                text: "concept 1: tabby 0.62".into(),
            },
            LegendEntry {
                swatch: None,
                text: "concept 2".into(),
            },
        ];
        let out = with_legend(&picture, &entries);
        // 224 / 36 = 6.2, clamped to 12 px text: lines of 18 px, margins of 6 px.
        assert_eq!(out.dimensions(), (224, 100 + 2 * 6 + 2 * 18));
        assert!((0..100).all(|y| (0..224).all(|x| out.get_pixel(x, y).0 == [10, 200, 30])));
        // The swatch: 12 px square at x = 6, centred in the first line (y 106 + 3).
        assert_eq!(out.get_pixel(6, 109).0, [255, 0, 40]);
        assert_eq!(out.get_pixel(17, 120).0, [255, 0, 40]);
        assert_eq!(out.get_pixel(18, 109).0, [255, 255, 255]);
        // The text darkens pixels of each line, and nothing right of the longest text.
        let dark = |y0: u32, y1: u32, x0: u32| {
            (y0..y1).any(|y| (x0..224).any(|x| out.get_pixel(x, y).0[0] < 128))
        };
        assert!(dark(106, 124, 24), "first line's text");
        assert!(dark(124, 142, 0), "second line's text");
        assert!(!dark(124, 142, 120), "the second line is short");
    }
}
