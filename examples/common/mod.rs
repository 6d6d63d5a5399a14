//! Timing helpers shared by the benchmark examples.
#![allow(dead_code)] // each example uses part of it

use std::time::Instant;

/// The repetition count: the first command-line argument, or `default`.
pub fn reps_arg(default: usize) -> usize {
    std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The median of `values`; NaN when there are none.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    (v[(n - 1) / 2] + v[n / 2]) / 2.0
}

/// Median ms of `reps` runs of `f` after two warm-up runs; the minimum instead with `TIME_MIN`
/// set in the environment (what a busy host disturbs least). With `COLD` set, 96 MB are
/// read before each run, so that `f` finds its operands in memory rather than in cache, as
/// a layer does inside a network's pass.
pub fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..2 {
        std::hint::black_box(f());
    }
    // Read, not written, between the runs: written lines would be written back during `f`.
    let evict = match std::env::var_os("COLD") {
        Some(_) => vec![1u64; 12 << 20],
        None => Vec::new(),
    };
    let samples: Vec<f64> = (0..reps)
        .map(|_| {
            std::hint::black_box(evict.iter().sum::<u64>());
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    if std::env::var_os("TIME_MIN").is_some() {
        return samples.iter().cloned().fold(f64::INFINITY, f64::min);
    }
    median(&samples)
}
