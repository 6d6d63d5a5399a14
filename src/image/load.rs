//! Decoding JPEG, PNG, BMP and WebP into RGB, with a decompression-bomb limit checked from the
//! header before any pixel is decoded.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ::image::error::ImageError;
use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// The default limit on the number of pixels of an image to decode (64 Mi pixels, e.g.
/// 8192 x 8192): larger images are refused before decoding, as a guard against decompression
/// bombs (a small file that claims a huge size).
pub const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// The path shown in errors about images decoded from memory by [`decode`].
pub const UPLOAD_PATH: &str = "<upload>";

const SUPPORTED: &str = "JPEG, PNG, BMP, WebP";

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads and decodes the image file at `path` into 8-bit RGB.
///
/// The format is recognised from the file's content (its first bytes), not its extension:
/// JPEG, PNG, BMP and WebP are supported. Grayscale is expanded to RGB and an alpha channel is
/// dropped (not blended), as Pillow's `Image.convert("RGB")` does; 16-bit images are reduced
/// to 8 bits. EXIF orientation is not applied (Pillow's `Image.open` does not apply it either).
///
/// Images with more than `max_pixels` pixels (width x height, read from the header) are refused
/// before their pixels are decoded; [`MAX_PIXELS`] is a sensible default.
///
/// # Errors
///
/// [`Error::Image`] with a message saying what is wrong: the file is missing or unreadable, is
/// not an image or is in an unsupported format, is truncated or corrupt, or is larger than
/// `max_pixels`. This function does not panic, even on hostile input.
///
/// ```no_run
/// let img = gradcam::image::load("cat.jpg".as_ref(), gradcam::image::MAX_PIXELS)?;
/// println!("{}x{}", img.width(), img.height());
/// # Ok::<(), gradcam::Error>(())
/// ```
pub fn load(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let file = File::open(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => format!("cannot open: {e}"),
        };
        err(path, message)
    })?;
    match file.metadata() {
        Ok(m) if m.is_dir() => return Err(err(path, "is a directory, not an image file")),
        Ok(m) if m.len() == 0 => return Err(err(path, "empty file, not an image")),
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Err(err(
                path,
                format!(
                    "file of {} bytes is larger than the limit of {MAX_FILE_BYTES} bytes",
                    m.len()
                ),
            ));
        }
        _ => {}
    }
    let mut bytes = Vec::new();
    BufReader::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| err(path, format!("cannot read: {e}")))?;
    check_jpeg_complete(&bytes, path)?;
    decode_from(&bytes, path, max_pixels)
}

/// Files larger than this are refused before they are read (1 GiB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Refuses a JPEG whose data stops before its end-of-image marker: the decoder would fill
/// the missing part with grey and say nothing. The marker must follow the last start-of-scan
/// marker (an embedded EXIF thumbnail has an end marker of its own, earlier); neither can
/// occur inside entropy-coded data, where 0xFF is always followed by 0x00 or a restart marker.
fn check_jpeg_complete(bytes: &[u8], path: &Path) -> Result<()> {
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(());
    }
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) if end > scan => Ok(()),
        _ => Err(err(
            path,
            "truncated JPEG data: the file ends before the image does (no end-of-image marker)",
        )),
    }
}

/// Decodes an image held in memory (an HTTP upload, for instance) into 8-bit RGB, exactly as
/// [`load`] does for a file; errors name the image [`UPLOAD_PATH`] (`<upload>`).
///
/// # Errors
///
/// As for [`load`]: [`Error::Image`] when the bytes are not an image, are in an unsupported
/// format, are truncated or corrupt, or describe an image larger than `max_pixels`.
///
/// ```
/// use gradcam::image::{decode, MAX_PIXELS};
/// // A 1x1 BMP, 24 bits per pixel, whose pixel is (B, G, R) = (3, 2, 1).
/// let mut bmp = b"BM".to_vec();
/// bmp.extend(58u32.to_le_bytes()); // file size
/// bmp.extend([0, 0, 0, 0]);
/// bmp.extend(54u32.to_le_bytes()); // offset of the pixels
/// bmp.extend(40u32.to_le_bytes()); // BITMAPINFOHEADER
/// bmp.extend(1i32.to_le_bytes()); // width
/// bmp.extend(1i32.to_le_bytes()); // height
/// bmp.extend(1u16.to_le_bytes()); // planes
/// bmp.extend(24u16.to_le_bytes()); // bits per pixel
/// bmp.extend([0; 24]); // no compression, default sizes and palettes
/// bmp.extend([3, 2, 1, 0]); // one pixel and the row padding
/// let img = decode(&bmp, MAX_PIXELS)?;
/// assert_eq!(img.get_pixel(0, 0).0, [1, 2, 3]);
///
/// let e = decode(b"hello", MAX_PIXELS).unwrap_err();
/// assert!(e.to_string().contains("not a recognised image"));
/// # Ok::<(), gradcam::Error>(())
/// ```
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    let path = Path::new(UPLOAD_PATH);
    if bytes.is_empty() {
        return Err(err(path, "no data, not an image"));
    }
    check_jpeg_complete(bytes, path)?;
    decode_from(bytes, path, max_pixels)
}

fn format_name(f: ImageFormat) -> String {
    match f {
        ImageFormat::Jpeg => "JPEG".into(),
        ImageFormat::Png => "PNG".into(),
        ImageFormat::Bmp => "BMP".into(),
        ImageFormat::WebP => "WebP".into(),
        other => format!("{other:?}").to_uppercase(),
    }
}

fn decode_from(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<RgbImage> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(path, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(err(
            path,
            format!("not a recognised image (supported formats: {SUPPORTED})"),
        ));
    };
    let name = format_name(format);
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Bmp | ImageFormat::WebP
    ) {
        return Err(err(
            path,
            format!("{name} images are not supported (supported formats: {SUPPORTED})"),
        ));
    }
    let mut limits = Limits::default();
    // Let the pixel limit, not the allocation limit, decide: up to 16 bytes a pixel (RGBA, 32-bit).
    limits.max_alloc = limits
        .max_alloc
        .map(|a| a.max(max_pixels.saturating_mul(16)));
    reader.limits(limits);

    let decoded = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<_, Error> {
        let decoder = reader
            .into_decoder()
            .map_err(|e| match header_size(format, bytes) {
                // The BMP decoder calls a zero width "too large".
                Some((w, h)) if w == 0 || h == 0 => no_pixels(path, &name, w, h),
                _ => image_error(path, &name, e),
            })?;
        let (w, h) = match (decoder.dimensions(), header_size(format, bytes)) {
            // The WebP decoder reads a lossless width or height of 16384 as 0.
            ((0, _) | (_, 0), Some(size)) => size,
            (size, _) => size,
        };
        let pixels = w as u64 * h as u64;
        if pixels == 0 {
            return Err(no_pixels(path, &name, w, h));
        }
        if pixels > max_pixels {
            return Err(err(
                path,
                format!(
                    "image is {w}x{h} = {pixels} pixels, more than the limit of {max_pixels} \
                     pixels; resize it first or raise the limit"
                ),
            ));
        }
        if decoder.dimensions() != (w, h) {
            return Err(err(
                path,
                format!(
                    "{name} image of {w}x{h}: images 16384 pixels wide or high in this format \
                     cannot be decoded; resize it first"
                ),
            ));
        }
        DynamicImage::from_decoder(decoder).map_err(|e| image_error(path, &name, e))
    }));
    match decoded {
        Ok(Ok(img)) => Ok(match img {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.into_rgb8(),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(err(
            path,
            format!("corrupt {name} data (the decoder failed)"),
        )),
    }
}

fn no_pixels(path: &Path, name: &str, w: u32, h: u32) -> Error {
    err(path, format!("{name} image of {w}x{h} has no pixels"))
}

/// The size a BMP or lossless WebP header declares, read here because the decoders misreport
/// some (see [`decode_from`]); `None` for other formats or a header too short.
fn header_size(format: ImageFormat, bytes: &[u8]) -> Option<(u32, u32)> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    match format {
        // BITMAPINFOHEADER and later: signed 32-bit width and height (negative: top-down).
        ImageFormat::Bmp if u32_at(14)? >= 40 => {
            let w = u32_at(18)? as i32;
            let h = u32_at(22)? as i32;
            Some((w.unsigned_abs(), h.unsigned_abs()))
        }
        // `RIFF....WEBPVP8L....`, the 0x2f signature, then 14 bits each of width - 1 and
        // height - 1.
        ImageFormat::WebP if bytes.get(12..16)? == b"VP8L" && *bytes.get(20)? == 0x2f => {
            let bits = u32_at(21)?;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        _ => None,
    }
}

/// Turns a decoder error into a message a user can act on.
fn image_error(path: &Path, name: &str, e: ImageError) -> Error {
    let message = match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("truncated {name} data: the file ends before the image does")
        }
        ImageError::IoError(io) => format!("cannot read {name} data: {io}"),
        ImageError::Decoding(d) => format!("corrupt or truncated {name} data: {d}"),
        ImageError::Limits(l) => format!("{name} image too large to decode: {l}"),
        ImageError::Unsupported(u) => format!("unsupported {name} image: {u}"),
        other => format!("cannot decode {name} image: {other}"),
    };
    err(path, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{GrayImage, ImageEncoder, Rgb, RgbaImage};

    fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn sample() -> RgbImage {
        RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8 * 50, y as u8 * 100, 7]))
    }

    fn message(r: Result<RgbImage>) -> String {
        match r {
            Err(Error::Image { message, .. }) => message,
            other => panic!("expected an image error, got {other:?}"),
        }
    }

    #[test]
    fn lossless_formats_roundtrip() {
        let img = sample();
        for f in [ImageFormat::Png, ImageFormat::Bmp] {
            let bytes = encode(&DynamicImage::ImageRgb8(img.clone()), f);
            assert_eq!(decode(&bytes, MAX_PIXELS).unwrap(), img, "{f:?}");
        }
        let mut webp = Vec::new();
        ::image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
            .write_image(img.as_raw(), 5, 3, ::image::ExtendedColorType::Rgb8)
            .unwrap();
        assert_eq!(decode(&webp, MAX_PIXELS).unwrap(), img);
    }

    #[test]
    fn jpeg_decodes_approximately() {
        let img = RgbImage::from_pixel(16, 16, Rgb([200, 100, 50]));
        let bytes = encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
        let out = decode(&bytes, MAX_PIXELS).unwrap();
        assert_eq!(out.dimensions(), (16, 16));
        for (a, b) in out.get_pixel(8, 8).0.iter().zip([200u8, 100, 50]) {
            assert!(a.abs_diff(b) <= 3, "{:?}", out.get_pixel(8, 8));
        }
    }

    #[test]
    fn gray_is_expanded_and_alpha_dropped() {
        let gray = GrayImage::from_raw(2, 1, vec![10, 240]).unwrap();
        let out = decode(
            &encode(&DynamicImage::ImageLuma8(gray), ImageFormat::Png),
            MAX_PIXELS,
        );
        assert_eq!(out.unwrap().as_raw(), &vec![10, 10, 10, 240, 240, 240]);
        // Alpha is discarded, not composited: a fully transparent pixel keeps its colour.
        let rgba = RgbaImage::from_raw(2, 1, vec![1, 2, 3, 0, 4, 5, 6, 128]).unwrap();
        let out = decode(
            &encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
            MAX_PIXELS,
        );
        assert_eq!(out.unwrap().as_raw(), &vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn format_comes_from_content_not_extension() {
        let dir = std::env::temp_dir().join(format!("gradcam-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("really_a_png.jpg");
        std::fs::write(
            &path,
            encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Png),
        )
        .unwrap();
        assert_eq!(load(&path, MAX_PIXELS).unwrap(), sample());
        let text = dir.join("notes.png");
        std::fs::write(&text, "just some text").unwrap();
        assert!(message(load(&text, MAX_PIXELS)).starts_with("not a recognised image"));
        let empty = dir.join("empty.png");
        std::fs::write(&empty, "").unwrap();
        assert!(message(load(&empty, MAX_PIXELS)).contains("empty file"));
        assert!(message(load(&dir, MAX_PIXELS)).contains("is a directory"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file() {
        let e = load(Path::new("/nonexistent/cat.jpg"), MAX_PIXELS).unwrap_err();
        assert_eq!(e.to_string(), "image /nonexistent/cat.jpg: no such file");
    }

    #[test]
    fn unsupported_format_is_named() {
        let m = message(decode(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", MAX_PIXELS));
        assert!(m.starts_with("GIF images are not supported"), "{m}");
        let m = message(decode(b"II*\x00\x08\x00\x00\x00", MAX_PIXELS));
        assert!(m.starts_with("TIFF images are not supported"), "{m}");
    }

    #[test]
    fn truncated_and_corrupt_data() {
        let png = encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Png);
        let m = message(decode(&png[..png.len() - 20], MAX_PIXELS));
        assert!(
            m.contains("PNG") && (m.contains("truncated") || m.contains("corrupt")),
            "{m}"
        );
        let m = message(decode(&png[..12], MAX_PIXELS));
        assert!(
            m.contains("PNG") && (m.contains("truncated") || m.contains("corrupt")),
            "{m}"
        );
        let mut bad = png.clone();
        for b in &mut bad[40..60] {
            *b ^= 0x5a;
        }
        let m = message(decode(&bad, MAX_PIXELS));
        assert!(m.contains("corrupt") || m.contains("truncated"), "{m}");
        // a JPEG start marker and nothing else
        let m = message(decode(b"\xff\xd8\xff\xe0\x00\x10JFIF", MAX_PIXELS));
        assert!(m.contains("JPEG"), "{m}");
        // any prefix of a valid file fails cleanly or decodes, never panics
        let jpeg = encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Jpeg);
        let bmp = encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Bmp);
        for data in [&png, &jpeg, &bmp] {
            for n in 1..data.len() {
                let _ = decode(&data[..n], MAX_PIXELS);
            }
        }
    }

    #[test]
    fn too_many_pixels_is_refused_from_the_header() {
        let png = encode(&DynamicImage::ImageRgb8(sample()), ImageFormat::Png);
        let m = message(decode(&png, 14));
        assert!(
            m.starts_with("image is 5x3 = 15 pixels, more than the limit of 14 pixels"),
            "{m}"
        );
        assert!(decode(&png, 15).is_ok());
        // A PNG whose header claims 100000 x 100000 pixels: refused on its size, before its
        // (far too short) pixel data is looked at.
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let m = message(decode(&bomb, MAX_PIXELS));
        assert!(
            m.starts_with("image is 100000x100000 = 10000000000 pixels"),
            "{m}"
        );
    }

    /// CRC-32 as PNG chunks use it.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A lossless WebP header declaring `w` x `h`, with no image data after it.
    fn webp_lossless_header(w: u32, h: u32) -> Vec<u8> {
        let mut vp8l = vec![0x2f];
        vp8l.extend(((w - 1) | ((h - 1) << 14)).to_le_bytes());
        vp8l.extend([0u8; 11]);
        let mut webp = b"RIFF".to_vec();
        webp.extend(((4 + 8 + vp8l.len()) as u32).to_le_bytes());
        webp.extend(b"WEBPVP8L");
        webp.extend((vp8l.len() as u32).to_le_bytes());
        webp.extend(&vp8l);
        webp
    }

    #[test]
    fn a_16384_pixel_webp_header_is_reported_at_its_size() {
        let m = message(decode(&webp_lossless_header(16384, 16384), MAX_PIXELS));
        assert!(
            m.starts_with("image is 16384x16384 = 268435456 pixels, more than the limit"),
            "{m}"
        );
        let m = message(decode(&webp_lossless_header(16384, 2), MAX_PIXELS));
        assert!(m.contains("16384 pixels wide or high"), "{m}");
        // Other sizes go on to the decoder (here: the data is missing).
        let m = message(decode(&webp_lossless_header(100, 100), MAX_PIXELS));
        assert!(!m.contains("no pixels") && !m.contains("16384"), "{m}");
    }

    #[test]
    fn a_bmp_of_width_0_has_no_pixels() {
        let mut bmp = b"BM".to_vec();
        bmp.extend(58u32.to_le_bytes());
        bmp.extend([0, 0, 0, 0]);
        bmp.extend(54u32.to_le_bytes());
        bmp.extend(40u32.to_le_bytes());
        bmp.extend(0i32.to_le_bytes()); // width
        bmp.extend(1i32.to_le_bytes()); // height
        bmp.extend(1u16.to_le_bytes());
        bmp.extend(24u16.to_le_bytes());
        bmp.extend([0; 24]);
        bmp.extend([3, 2, 1, 0]);
        assert_eq!(
            message(decode(&bmp, MAX_PIXELS)),
            "BMP image of 0x1 has no pixels"
        );
    }
}
