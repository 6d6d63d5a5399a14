//! Progress on standard error: a bar with rate and ETA on a terminal, a plain line every few
//! seconds otherwise (logs, batch jobs), nothing when quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::timefmt::duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bar,
    Lines,
    Quiet,
}

/// Counts images as they complete and shows it.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    total: usize,
    done: usize,
    failed: usize,
    start: Instant,
    last: Option<Instant>,
    every: Duration,
    shown: bool,
}

impl Progress {
    /// A bar if standard error is a terminal, else a line every `every`; nothing if `quiet`.
    pub fn new(total: usize, quiet: bool, every: Duration) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            total,
            done: 0,
            failed: 0,
            start: Instant::now(),
            last: None,
            every,
            shown: false,
        }
    }

    /// `done` more images, `failed` of which failed.
    pub fn add(&mut self, done: usize, failed: usize) {
        self.done += done;
        self.failed += failed;
        let due = match (self.mode, self.last) {
            (Mode::Quiet, _) => false,
            (_, None) => true,
            (Mode::Bar, Some(t)) => {
                t.elapsed() >= Duration::from_millis(100) || self.done == self.total
            }
            (Mode::Lines, Some(t)) => t.elapsed() >= self.every,
        };
        if due {
            self.show();
        }
    }

    /// Images per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }

    fn line(&self) -> String {
        let rate = self.rate();
        let eta = if self.done == 0 || rate <= 0.0 {
            "?".to_string()
        } else {
            duration((self.total - self.done.min(self.total)) as f64 / rate)
        };
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        format!(
            "{}/{} images, {rate:.1}/s, ETA {eta}{failed}",
            self.done, self.total
        )
    }

    fn show(&mut self) {
        self.last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        match self.mode {
            Mode::Bar => {
                let width = 30;
                let filled = (width * self.done)
                    .checked_div(self.total)
                    .unwrap_or(width)
                    .min(width);
                let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
                let _ = write!(err, "\r\x1b[K[{bar}] {}", self.line());
                self.shown = true;
            }
            Mode::Lines => {
                let _ = writeln!(err, "gradcam: {}", self.line());
            }
            Mode::Quiet => {}
        }
        let _ = err.flush();
    }

    /// Runs `f` (which prints) with the bar out of the way.
    pub fn suspend<T>(&mut self, f: impl FnOnce() -> T) -> T {
        if self.mode == Mode::Bar && self.shown {
            eprint!("\r\x1b[K");
            let value = f();
            self.show();
            value
        } else {
            f()
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if self.mode == Mode::Bar && self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}
