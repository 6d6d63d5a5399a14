//! Pictures read a row at a time, so that encoders never need the whole picture in memory.

use ::image::{GenericImageView, Rgb, RgbImage};

/// A picture that the encoders read a pixel ([`GenericImageView`]) or a row at a time: an
/// [`RgbImage`], or one computed as it is read ([`crate::image::Overlay`],
/// [`crate::image::Picture`]).
pub trait RgbRows: GenericImageView<Pixel = Rgb<u8>> {
    /// Writes row `y`'s RGB bytes (`3 x width`) into `out`.
    fn row(&self, y: u32, out: &mut [u8]);

    /// The whole picture, drawn row by row.
    fn to_image(&self) -> RgbImage {
        let (w, h) = self.dimensions();
        let mut out = RgbImage::new(w, h);
        if w > 0 {
            for (y, row) in out.chunks_exact_mut(3 * w as usize).enumerate() {
                self.row(y as u32, row);
            }
        }
        out
    }
}

impl RgbRows for RgbImage {
    fn row(&self, y: u32, out: &mut [u8]) {
        let len = 3 * self.width() as usize;
        out.copy_from_slice(&self.as_raw()[y as usize * len..][..len]);
    }
}
