//! Weights rearranged once for a kernel and kept while the weight tensor lives, so that a
//! pass does not redo it (the Winograd transform of a 3x3 weight costs about as much as
//! reading the weight).
//!
//! A weight is recognised by its buffer and layout: the cache holds a `Weak` to the tensor's
//! shared storage, so that allocation cannot be reused for another tensor while the entry
//! exists, and cannot change in place either (flex writes in place only through
//! `Arc::get_mut` / `Arc::make_mut`, which see the `Weak` and move the values to a new buffer).

use std::sync::{Arc, Mutex, Weak};

use burn::backend::flex::FlexTensor;

/// How a weight was rearranged; one weight can have an entry per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Packing {
    /// [`winograd`](super::winograd)'s transformed 3x3 weight for F(2x2, 3x3).
    Winograd2x2,
    /// The same for F(4x4, 3x3).
    Winograd4x4,
    /// [`Winograd2x2`](Self::Winograd2x2)'s matrices transposed, `[e][c][k]`: for maps with
    /// too few tiles for the products' usual orientation.
    Winograd2x2ByChannel,
    /// [`Winograd2x2`](Self::Winograd2x2)'s matrices, each in the panels of
    /// [`pack_rows`](super::packed_matmul::pack_rows).
    Winograd2x2Panels,
    /// [`Winograd4x4`](Self::Winograd4x4)'s matrices in the same panels.
    Winograd4x4Panels,
}

/// One rearranged weight and what identifies its source.
struct Entry {
    /// The source's storage; dead once every tensor sharing it is dropped.
    source: Weak<dyn Send + Sync>,
    /// The storage's address, compared first.
    address: usize,
    layout: (Vec<usize>, Vec<isize>, usize),
    packing: Packing,
    packed: Arc<Vec<f32>>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// `pack(weight's values)`, computed once per contiguous float32 weight tensor and `packing`
/// and shared by the later calls while the tensor (or a clone of it) lives; computed every
/// time for a weight that is not contiguous.
pub(super) fn prepacked(
    weight: &FlexTensor,
    packing: Packing,
    pack: impl FnOnce(&[f32]) -> Vec<f32>,
) -> Arc<Vec<f32>> {
    if !weight.is_contiguous() {
        let weight = weight.to_contiguous();
        return Arc::new(pack(weight.storage()));
    }
    let values: &[f32] = weight.storage();
    let storage = weight.data_arc();
    let address = Arc::as_ptr(&storage) as *const u8 as usize;
    let layout = weight.layout();
    let layout = (
        layout.shape().to_vec(),
        layout.strides().to_vec(),
        layout.start_offset(),
    );
    let hit = |e: &Entry| {
        e.address == address
            && e.packing == packing
            && e.layout == layout
            && e.source.strong_count() > 0
    };
    {
        let mut cache = lock();
        // The entries of dropped weights go on every call (a few dozen to look at), so that a
        // dropped model's transforms are freed by the next convolution of any model.
        cache.retain(|e| e.source.strong_count() > 0);
        if let Some(entry) = cache.iter().find(|e| hit(e)) {
            return entry.packed.clone();
        }
    }
    // Packed outside the lock: two threads may pack the same weight once each, harmlessly.
    let packed = Arc::new(pack(values));
    let source: Arc<dyn Send + Sync> = storage;
    let mut cache = lock();
    cache.retain(|e| e.source.strong_count() > 0 && !hit(e));
    cache.push(Entry {
        source: Arc::downgrade(&source),
        address,
        layout,
        packing,
        packed: packed.clone(),
    });
    packed
}

/// Whether the cache holds an entry for the storage at `address` (for the tests).
#[cfg(test)]
fn holds(address: usize) -> bool {
    lock().iter().any(|e| e.address == address)
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    // The cache stays consistent if a holder panicked: entries are pushed whole.
    CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use burn::backend::TensorData;

    use super::*;

    fn tensor(values: Vec<f32>) -> FlexTensor {
        let n = values.len();
        FlexTensor::from_data(TensorData::new(values, [n]))
    }

    #[test]
    fn packs_once_per_live_tensor() {
        let packs = std::cell::Cell::new(0);
        let pack = |v: &[f32]| {
            packs.set(packs.get() + 1);
            v.iter().map(|x| x * 2.0).collect()
        };
        let a = tensor((0..1000).map(|i| i as f32).collect());
        let first = prepacked(&a, Packing::Winograd2x2, pack);
        let again = prepacked(&a.clone(), Packing::Winograd2x2, pack);
        assert_eq!(packs.get(), 1);
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(first[999], 1998.0);
        // Equal values in another buffer are another weight.
        let b = tensor((0..1000).map(|i| i as f32).collect());
        prepacked(&b, Packing::Winograd2x2, pack);
        assert_eq!(packs.get(), 2);
        let address = |t: &FlexTensor| Arc::as_ptr(&t.data_arc()) as *const u8 as usize;
        let (a_at, b_at) = (address(&a), address(&b));
        assert!(holds(a_at) && holds(b_at));
        // Dropped weights lose their entries at the next call, a cache hit included.
        let c = tensor(vec![1.0; 10]);
        prepacked(&c, Packing::Winograd2x2, pack);
        drop((a, b));
        prepacked(&c, Packing::Winograd2x2, pack);
        assert_eq!(packs.get(), 3);
        // Another test's weight could take the freed address meanwhile: then it is its entry.
        let reused = |at| {
            lock()
                .iter()
                .any(|e| e.address == at && e.source.strong_count() > 0)
        };
        assert!(!holds(a_at) || reused(a_at));
        assert!(!holds(b_at) || reused(b_at));
    }

    #[test]
    fn a_changed_buffer_is_packed_again() {
        let mut a = tensor(vec![1.0; 10]);
        let first = prepacked(&a, Packing::Winograd2x2, |v| v.to_vec());
        // Changed through flex's copy-on-write, which the cache's `Weak` sends to a new buffer.
        a.storage_mut::<f32>()[3] = 5.0;
        let second = prepacked(&a, Packing::Winograd2x2, |v| v.to_vec());
        assert_eq!((first[3], second[3]), (1.0, 5.0));
    }
}
