//! Image decoding (`gradcam::image::decode`, the in-memory twin of `image::load`: both go
//! through one `decode_from`): any bytes give an RGB image or an `Error::Image`, never a
//! panic, and never an image over the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Small, so that a header claiming a big image is refused before it is decoded.
const MAX_PIXELS: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    match gradcam::image::decode(data, MAX_PIXELS) {
        Ok(img) => {
            let (w, h) = img.dimensions();
            assert!(w > 0 && h > 0 && (w as u64) * (h as u64) <= MAX_PIXELS);
        }
        Err(gradcam::Error::Image { .. }) => {}
        Err(other) => panic!("not an image error: {other}"),
    }
});
