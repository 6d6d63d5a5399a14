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
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && libc::mallopt(libc::M_TOP_PAD, TOP_PAD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
