//! Time as the crate reports it: milliseconds for measurements, one short human format for
//! elapsed and remaining times (progress lines, summaries, the eval report).

use std::time::{Duration, Instant};

/// Milliseconds since `since`, as the timings in manifests, reports and API answers are kept.
pub fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// `9s`, `2m07s`, `1h02m`: whole seconds under an hour, whole minutes above.
pub fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// [`duration`] of a [`Duration`].
pub fn human(d: Duration) -> String {
    duration(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(9.4), "9s");
        assert_eq!(duration(59.6), "1m00s");
        assert_eq!(duration(127.0), "2m07s");
        assert_eq!(duration(3599.4), "59m59s");
        assert_eq!(duration(3720.0), "1h02m");
        assert_eq!(human(Duration::from_secs(90_061)), "25h01m");
    }

    #[test]
    fn ms_counts_elapsed_milliseconds() {
        let start = Instant::now() - Duration::from_millis(250);
        let t = ms(start);
        assert!((250.0..10_000.0).contains(&t), "{t}");
    }
}
