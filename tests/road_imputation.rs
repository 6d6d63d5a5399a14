//! ROAD's imputation at the network's size (224 x 224, where the solver runs its multigrid)
//! against pytorch-grad-cam 1.5.7's `NoisyLinearImputer(noise=0)`, which solves the same system
//! with SciPy's direct `spsolve`. Fixture: tests/fixtures/road/road224.*, made by
//! tools/make_road_fixture.py.

use std::path::{Path, PathBuf};

use gradcam::eval::perturb::{Normal, impute};
use gradcam::io::read_npy;

const SIZE: usize = 224;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/road")
        .join(name)
}

/// The bytes of a version 1 `.npy` file of `uint8` values.
fn npy_u8(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'|u1'"), "{}: {header}", path.display());
    bytes[10 + header_len..].to_vec()
}

#[test]
fn road_imputation_at_224_matches_pytorch_grad_cam() {
    let n = SIZE * SIZE;
    let pixels = npy_u8(&fixture("road224.image.u8.npy"));
    assert_eq!(pixels.len(), 3 * n);
    // The normalisation as the script's float32 NumPy: `(u8 / 255 - mean) / std`.
    let image: Vec<f32> = pixels
        .chunks(n)
        .zip(MEAN.iter().zip(STD))
        .flat_map(|(plane, (&mean, std))| {
            plane.iter().map(move |&v| (v as f32 / 255.0 - mean) / std)
        })
        .collect();
    let bits = npy_u8(&fixture("road224.keep.bits.npy"));
    let keep: Vec<bool> = (0..n)
        .map(|i| bits[i / 8] >> (7 - i % 8) & 1 == 1)
        .collect();
    let removed: Vec<usize> = (0..n).filter(|&i| !keep[i]).collect();
    assert_eq!(removed.len(), n / 4, "the 25 % most relevant pixels");
    let (want, shape) = read_npy(&fixture("road224.imputed.npy")).unwrap();
    assert_eq!(shape, [3, removed.len()]);

    let got = impute(&image, &keep, SIZE, SIZE, 0.0, &mut Normal::new(0)).unwrap();
    let mut worst = 0.0f32;
    for c in 0..3 {
        for (k, &i) in removed.iter().enumerate() {
            worst = worst.max((got[c * n + i] - want[c * removed.len() + k]).abs());
        }
    }
    println!(
        "max abs diff over {} imputed values: {worst:e}",
        3 * removed.len()
    );
    // Measured 6.3e-5: the solver stops at a relative residual of 1e-5; SciPy's is direct.
    assert!(worst < 1e-4, "max abs diff {worst:e}");
    for i in (0..n).filter(|&i| keep[i]) {
        assert!(
            (0..3).all(|c| got[c * n + i] == image[c * n + i]),
            "kept pixel {i} changed"
        );
    }
}
