//! Parity of the image pipeline with the Python reference libraries, on fixtures made by
//! `tools/make_fixtures.py` (part 3) from `assets/both.png`:
//!
//! - `resize.both.WxH.png`: Pillow `Image.resize((W, H), Image.BILINEAR)`, byte for byte;
//! - `resize.map7*.npy`: OpenCV `cv2.resize` of a float32 7x7 map, bit for bit;
//! - `overlay.*`: pytorch-grad-cam `show_cam_on_image(img, mask, use_rgb=True)`, byte for byte.
//!
//! All three were measured exact (`-- --nocapture` prints the counts), so nothing is tolerated:
//! they are the same float32 operations in the same order.
//!
//! `GRADCAM_FIXTURES` may point to another fixture folder. A missing fixture fails the test,
//! naming the file and the command that makes it.

mod common;

use std::path::{Path, PathBuf};

use gradcam::image::{MAX_PIXELS, load, overlay, resize_bilinear, resize_map};
use gradcam::io::read_npy;

fn fixture(name: &str) -> PathBuf {
    let path = common::fixtures().join(name);
    assert!(
        path.exists(),
        "missing fixture {}; make it with `python tools/make_fixtures.py --parts 3`",
        path.display()
    );
    path
}

fn assets(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(name)
}

/// Reads a `.npy` file of `uint8` values (`|u1`, C order): the values and the shape.
fn read_npy_u8(path: &Path) -> (Vec<u8>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(
        header.contains("'|u1'"),
        "{}: not uint8: {header}",
        path.display()
    );
    assert!(
        header.contains("'fortran_order': False"),
        "{}: Fortran order",
        path.display()
    );
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    let shape: Vec<usize> = shape_text
        .trim_start_matches([' ', '('])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = bytes[start + header_len..].to_vec();
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>(),
        "{}: size",
        path.display()
    );
    (data, shape)
}

#[test]
fn pillow_bilinear_resize_is_byte_exact() {
    let both = load(&assets("both.png"), MAX_PIXELS).unwrap();
    for (w, h) in [(224, 224), (97, 61), (301, 257)] {
        let want = load(&fixture(&format!("resize.both.{w}x{h}.png")), MAX_PIXELS).unwrap();
        let got = resize_bilinear(&both, w, h);
        assert_eq!(got.dimensions(), want.dimensions());
        let differ = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differ, 0, "{w}x{h}: {differ} bytes differ from Pillow");
    }
}

#[test]
fn opencv_map_resize_matches() {
    let (map, shape) = read_npy(&fixture("resize.map7.npy")).unwrap();
    assert_eq!(shape, [7, 7]);
    for (name, (h, w)) in [
        ("resize.map7.224.npy", (224, 224)),
        ("resize.map7.300x200.npy", (200, 300)),
    ] {
        let (want, shape) = read_npy(&fixture(name)).unwrap();
        assert_eq!(shape, [h, w], "{name}");
        let got = resize_map(&map, (7, 7), (h, w));
        let max = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let bits = got
            .iter()
            .zip(&want)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        println!(
            "{name}: max abs diff {max:e}, {bits} of {} values not bit-identical",
            want.len()
        );
        assert_eq!(bits, 0, "{name}: max abs diff {max:e}");
    }
}

#[test]
fn overlay_matches_show_cam_on_image() {
    let img = load(&fixture("overlay.image.png"), MAX_PIXELS).unwrap();
    assert_eq!(img.dimensions(), (96, 64));
    let (mask, shape) = read_npy(&fixture("overlay.mask.npy")).unwrap();
    assert_eq!(shape, [64, 96]);
    for (name, weight) in [
        ("overlay.expected.npy", 0.5),
        ("overlay.expected.w03.npy", 0.3),
    ] {
        let (want, shape) = read_npy_u8(&fixture(name));
        assert_eq!(shape, [64, 96, 3], "{name}");
        let got = overlay(&img, &mask, weight).unwrap();
        let differ: Vec<usize> = (0..want.len())
            .filter(|&i| got.as_raw()[i] != want[i])
            .collect();
        println!("{name}: {} of {} bytes differ", differ.len(), want.len());
        if let Some(&i) = differ.first() {
            panic!(
                "{name}: {} bytes differ; byte {i} is {}, pytorch-grad-cam has {}",
                differ.len(),
                got.as_raw()[i],
                want[i]
            );
        }
    }
}
