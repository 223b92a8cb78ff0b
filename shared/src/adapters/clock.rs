use crate::ports::Clock;
use jiff::Timestamp;

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock set by its owner: the backtest replays history at each event's own time, and tests
/// pin the day.
#[derive(Debug, Default)]
pub struct FixedClock(pub std::sync::Mutex<Timestamp>);

impl FixedClock {
    pub fn at(now: Timestamp) -> Self {
        Self(std::sync::Mutex::new(now))
    }

    pub fn set(&self, now: Timestamp) {
        *self.0.lock().expect("not poisoned") = now;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("not poisoned")
    }
}
