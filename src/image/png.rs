//! PNG encoding a row at a time, byte for byte what the `image` crate's `PngEncoder::new`
//! writes (png 0.18: `Compression::Fast`, that is fdeflate's one-pass compressor with adaptive
//! filters, falling back to stored blocks when that would be larger), so that a picture made on
//! the fly is never held whole.
//!
//! The row filters and their choice (`filter` and `adaptive_filter` of png's
//! `src/filter/mod.rs`, for 3 bytes per pixel) are written out here because the png crate does
//! not export them; they are png's (MIT or Apache-2.0, as this crate). A unit test checks the
//! whole file against the `image` crate's on random pictures.

use std::io::Cursor;

use fdeflate::{Compressor, StoredOnlyCompressor};

/// RGB, 8 bits a channel: the bytes that predict a byte (`bpp` of the PNG filters).
const BPP: usize = 3;

/// png's largest IDAT chunk (`Writer::MAX_IDAT_CHUNK_LEN`).
const MAX_IDAT: usize = (u32::MAX >> 1) as usize;

/// The PNG file of a `width x height` RGB picture whose row `y` (`3 x width` bytes) `row(y,
/// out)` writes; rows are asked for in order, top to bottom, once each (twice when the picture
/// does not compress).
///
/// # Errors
///
/// A message when the picture has no pixels or is too large for PNG.
pub fn encode_rows(
    width: u32,
    height: u32,
    mut row: impl FnMut(u32, &mut [u8]),
) -> Result<Vec<u8>, String> {
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(format!("a {width}x{height} picture cannot be a PNG"));
    }
    let io = |e: std::io::Error| e.to_string();
    let len = width as usize * BPP;
    let raw = (len + 1) * height as usize;
    // Room for the stored size, the most the file holds: one allocation, of which only the
    // pages written take memory, instead of a doubling buffer that copies itself as it grows
    // (compressed data that outgrows it is thrown away for stored blocks).
    let mut out = Vec::with_capacity(StoredOnlyCompressor::<()>::compressed_size(raw) + 128);
    out.extend(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, adaptive filters, not interlaced
    write_chunk(&mut out, b"IHDR", &ihdr);
    // The IDAT chunk's length and type go here once the data is known.
    let idat = out.len();
    out.extend([0; 8]);

    let mut previous = vec![0u8; len];
    let mut current = vec![0u8; len];
    let mut filtered = vec![0u8; len + 1];
    let mut zlib = Compressor::new(out).map_err(io)?;
    for y in 0..height {
        row(y, &mut current);
        filtered[0] = adaptive_filter(&previous, &current, &mut filtered[1..]) as u8;
        zlib.write_data(&filtered).map_err(io)?;
        std::mem::swap(&mut previous, &mut current);
    }
    let mut out = zlib.finish().map_err(io)?;
    if out.len() - idat - 8 > StoredOnlyCompressor::<()>::compressed_size(raw) {
        // As png does: stored blocks of the unfiltered rows, when smaller.
        out.truncate(idat + 8);
        let mut cursor = Cursor::new(out);
        cursor.set_position((idat + 8) as u64);
        let mut stored = StoredOnlyCompressor::new(cursor).map_err(io)?;
        for y in 0..height {
            row(y, &mut current);
            stored.write_data(&[0]).map_err(io)?;
            stored.write_data(&current).map_err(io)?;
        }
        out = stored.finish().map_err(io)?.into_inner();
    }
    let data_len = out.len() - idat - 8;
    if data_len <= MAX_IDAT {
        out[idat..idat + 4].copy_from_slice(&(data_len as u32).to_be_bytes());
        out[idat + 4..idat + 8].copy_from_slice(b"IDAT");
        let crc = crc32fast::hash(&out[idat + 4..]);
        out.extend(crc.to_be_bytes());
    } else {
        let data = out.split_off(idat + 8);
        out.truncate(idat);
        for chunk in data.chunks(MAX_IDAT) {
            write_chunk(&mut out, b"IDAT", chunk);
        }
    }
    write_chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Appends a chunk: length, type, data, CRC-32 of type and data.
fn write_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// PNG's row filters, numbered as in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowFilter {
    Sub = 1,
    Up = 2,
    Avg = 3,
    Paeth = 4,
}

/// png's `Filter::Adaptive`: of Up, Sub, Avg and Paeth, the one whose output has the smallest
/// sum of absolute values as signed bytes (the later on ties; the first with a sum of 0 at
/// once), leaving its output in `output`.
fn adaptive_filter(previous: &[u8], current: &[u8], output: &mut [u8]) -> RowFilter {
    use RowFilter::*;
    let mut min_cost = u64::MAX;
    let mut choice = Up;
    for filter in [Up, Sub, Avg, Paeth] {
        apply(filter, previous, current, output);
        let cost = sum_abs(output);
        if cost <= min_cost {
            min_cost = cost;
            choice = filter;
            if cost == 0 {
                return choice;
            }
        }
    }
    if choice != Paeth {
        apply(choice, previous, current, output);
    }
    choice
}

/// The cost png's adaptive choice minimises.
fn sum_abs(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .map(|&b| u64::from((b as i8).unsigned_abs()))
        .sum()
}

/// One filter on a row; the bytes left of the first pixel count as 0.
fn apply(filter: RowFilter, previous: &[u8], current: &[u8], output: &mut [u8]) {
    for i in 0..current.len() {
        let left = if i >= BPP { current[i - BPP] } else { 0 };
        let up = previous[i];
        let up_left = if i >= BPP { previous[i - BPP] } else { 0 };
        let predicted = match filter {
            RowFilter::Sub => left,
            RowFilter::Up => up,
            RowFilter::Avg => ((left as u16 + up as u16) / 2) as u8,
            RowFilter::Paeth => paeth(left, up, up_left),
        };
        output[i] = current[i].wrapping_sub(predicted);
    }
}

/// The Paeth predictor of the PNG specification.
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (ia, ib, ic) = (a as i16, b as i16, c as i16);
    let p = ia + ib - ic;
    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{ExtendedColorType, ImageEncoder, RgbImage, codecs::png::PngEncoder};

    fn reference(img: &RgbImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        PngEncoder::new(&mut bytes)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                ExtendedColorType::Rgb8,
            )
            .unwrap();
        bytes
    }

    fn ours(img: &RgbImage) -> Vec<u8> {
        let w = img.width() as usize * 3;
        encode_rows(img.width(), img.height(), |y, out| {
            out.copy_from_slice(&img.as_raw()[y as usize * w..][..w])
        })
        .unwrap()
    }

    #[test]
    fn the_file_is_the_image_crates_byte_for_byte() {
        // xorshift64; pictures that pick each filter: flat (Up at cost 0), gradients, smooth
        // noise, pure noise (stored blocks), and sizes from 1x1 up.
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut stored = 0;
        for case in 0..300u32 {
            let (w, h) = (1 + (next() % 70) as u32, 1 + (next() % 50) as u32);
            let spread = [0u64, 1, 4, 32, 256][case as usize % 5];
            let img = RgbImage::from_fn(w, h, |x, y| {
                let base = [x * 3 + y, x + 2 * y, 200u32.wrapping_sub(x * y)];
                ::image::Rgb(base.map(|v| {
                    let noise = if spread == 0 { 0 } else { next() % spread };
                    (v as u64 + noise) as u8
                }))
            });
            let want = reference(&img);
            stored += usize::from(want.len() > 3 * (w * h) as usize);
            assert_eq!(ours(&img), want, "case {case}: {w}x{h} spread {spread}");
        }
        assert!(stored > 0, "no picture took the stored-blocks path");
    }

    #[test]
    fn paeth_as_the_specification() {
        // p = a + b - c; the nearest of a, b, c to p, in that order on ties.
        assert_eq!(paeth(10, 20, 15), 15); // p = 15
        assert_eq!(paeth(10, 20, 5), 20); // p = 25: b is nearest
        assert_eq!(paeth(10, 20, 25), 10); // p = 5: a is nearest
        assert_eq!(paeth(0, 0, 0), 0);
        assert_eq!(paeth(255, 0, 255), 0); // p = 0
    }

    #[test]
    fn an_empty_picture_is_refused() {
        assert!(encode_rows(0, 5, |_, _| {}).is_err());
        assert!(encode_rows(5, 0, |_, _| {}).is_err());
    }
}
