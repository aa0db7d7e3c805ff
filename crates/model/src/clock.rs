//! The injected clock. Logic never reads the system time directly; it is handed a
//! [`Clock`] so that tests can move time by hand.

use crate::time::EpochMillis;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> EpochMillis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> EpochMillis {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `millis`.
    pub fn new(millis: EpochMillis) -> Self {
        Self {
            now: AtomicI64::new(millis),
        }
    }

    /// Moves the clock to `millis`.
    pub fn set(&self, millis: EpochMillis) {
        self.now.store(millis, Ordering::SeqCst);
    }

    /// Moves the clock forward by `millis`.
    pub fn advance(&self, millis: EpochMillis) {
        self.now.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> EpochMillis {
        self.now.load(Ordering::SeqCst)
    }
}
