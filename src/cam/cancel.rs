//! Stopping an explanation that nobody waits for any more (a timed-out server request).
//!
//! The long methods check a [`Cancel`] between their passes (each batch of Score-CAM masks or
//! Ablation-CAM copies, each smoothing augmentation, each layer and target set) and stop with
//! [`Error::Cancelled`], so the work ends within one pass of being abandoned.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// A shared flag: set once with [`cancel`](Self::cancel), seen by every clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// [`Error::Cancelled`] once cancelled; called between passes.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A guard that cancels when dropped: held by the future that waits for the work, it
    /// cancels the work when that future is dropped (on a timeout, or a closed connection).
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// See [`Cancel::on_drop`].
#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_the_guard_sets_it() {
        let cancel = Cancel::new();
        let seen = cancel.clone();
        assert!(seen.check().is_ok());
        drop(cancel.on_drop());
        assert!(seen.is_cancelled());
        assert!(matches!(seen.check(), Err(Error::Cancelled)));
    }
}
