//! Settings of the C allocator for tensor work: glibc would `mmap` and unmap every tensor of a
//! few megabytes on every pass, faulting its pages in again each time (docs/benchmarks.md,
//! "Why the kernels are shaped this way", has the profile).

/// Heap blocks up to this size instead of `mmap`s (glibc's default adapts from 128 KiB to at
/// most 32 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 1 << 30;
/// Free memory at the top of the heap kept for reuse (glibc's default: 128 KiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 1 << 30;
/// Extra memory taken each time the heap grows, so that a pass does not grow it page by page.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 64 << 20;

/// Tunes the process's C allocator for repeated passes: large blocks from the heap, freed
/// memory kept for the next pass (so the process keeps its peak memory); returns whether it
/// did. The `gradcam` binary calls it first thing; a program that uses
/// the library for many images should too. Only glibc on Linux has these settings; elsewhere
/// it does nothing and returns `false`.
///
/// ```
/// gradcam::alloc::tune_for_tensors();
/// ```
pub fn tune_for_tensors() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's thresholds; it is safe to call at any time.
        let tuned = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
        };
        TUNED.store(tuned, std::sync::atomic::Ordering::Relaxed);
        tuned
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Whether [`tune_for_tensors`] set its thresholds (which [`drop_and_release`] lowers for a
/// moment).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
static TUNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Drops `value` and gives the C allocator's free memory back to the operating system; returns
/// whether some was released. `gradcam serve` calls it after a request on a large image.
///
/// glibc's `malloc_trim` releases the free blocks inside every heap, but a thread's heap gives
/// back its free top only on a `free` that leaves more than `M_TRIM_THRESHOLD` there (1 GiB
/// after [`tune_for_tensors`]). So the thresholds go back to glibc's defaults while `value`
/// (whose heap is then trimmed) and a block of the calling thread's heap are freed, then are
/// set again; another thread freeing memory meanwhile may trim its heap too, which costs it
/// only page faults later. Elsewhere than glibc on Linux it only drops `value` and returns
/// `false`.
///
/// ```
/// let photo = vec![0u8; 64 << 20];
/// gradcam::alloc::drop_and_release(photo);
/// ```
pub fn drop_and_release<T>(value: T) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = TUNED.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: mallopt only changes glibc's thresholds and malloc_trim only returns free
        // pages; both are safe at any time.
        unsafe {
            if tuned {
                libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
                libc::mallopt(libc::M_TOP_PAD, 0);
            }
            drop(value);
            // A free of at least 64 KiB is what makes glibc trim this thread's heap.
            drop(std::hint::black_box(Vec::<u8>::with_capacity(1 << 17)));
            if tuned {
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
                libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
            }
            libc::malloc_trim(0) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        drop(value);
        false
    }
}
