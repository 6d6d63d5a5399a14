//! Each thread's reusable im2col tile, so that a pass does not allocate one per call.

use std::cell::RefCell;

/// Floats of one im2col tile (2 MiB, a core's L2 cache on the benchmark machine).
pub(super) const TILE_FLOATS: usize = 1 << 19;

thread_local! {
    /// Each thread's im2col tile, kept between calls: it is overwritten before it is read.
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each thread's few rows of a kernel's own (Winograd's padded input rows).
    static LINES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each thread's block of a matrix product's right side, packed for its register tiles.
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's tile buffer, at least `len` floats of arbitrary values (a fresh
/// one if the thread's is in use further up its stack, as when rayon runs another task while
/// this one waits).
pub(super) fn with_tile<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&TILE, len, f)
}

/// [`with_tile`] for a second, small buffer, which a kernel can hold while it holds the tile.
pub(super) fn with_lines<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&LINES, len, f)
}

/// [`with_tile`] for the packed block of [`matmul_packed`](super::packed_matmul::matmul_packed),
/// which runs while the caller holds the other two.
pub(super) fn with_packed<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&PACKED, len, f)
}

fn with_buffer<R>(
    buffer: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut tile) => {
            if tile.len() < len {
                tile.resize(len, 0.0);
            }
            f(&mut tile[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_call_gets_its_own_buffer() {
        with_tile(4, |outer| {
            outer.fill(1.0);
            with_tile(8, |inner| {
                assert_eq!(inner.len(), 8);
                inner.fill(2.0);
            });
            assert_eq!(outer, [1.0; 4]);
        });
    }
}
