//! Jittered backoff schedules for reconnects and rejoins.

use std::time::Duration;

use rand::Rng;

/// A retry schedule: a list of base delays (the last one repeats), a jitter
/// fraction, an optional attempt limit, and how long a connection must stay
/// up before the attempt counter starts over.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Base delay for attempt 1, 2, …; the last entry repeats (the cap).
    pub steps: Vec<Duration>,
    /// Fraction of each delay that is randomised: 0 = none, 0.5 = "equal jitter", 1 = "full jitter".
    pub jitter: f64,
    /// Give up after this many consecutive failed attempts; `None` retries forever.
    pub max_attempts: Option<u32>,
    /// A connection (or channel) that stayed up this long resets the attempt counter.
    pub reset_after: Duration,
}

impl Backoff {
    /// Socket reconnects: phoenix.js's schedule (10 ms … 2 s, then 5 s), equal jitter, forever.
    pub fn reconnect_default() -> Backoff {
        let ms = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];
        Backoff {
            steps: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
            jitter: 0.5,
            max_attempts: None,
            reset_after: Duration::from_secs(60),
        }
    }

    /// Channel rejoins: 1, 2, 5, then 10 s, equal jitter, at most 10 refusals in a row.
    pub fn rejoin_default() -> Backoff {
        Backoff {
            steps: [1, 2, 5, 10]
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            jitter: 0.5,
            max_attempts: Some(10),
            reset_after: Duration::from_secs(60),
        }
    }

    /// The same delay every time, no jitter (handy in tests).
    pub fn fixed(delay: Duration, max_attempts: Option<u32>) -> Backoff {
        Backoff {
            steps: vec![delay],
            jitter: 0.0,
            max_attempts,
            reset_after: Duration::from_secs(60),
        }
    }

    /// The un-jittered delay before attempt `attempt` (1-based; 0 is treated as 1).
    pub fn base(&self, attempt: u32) -> Duration {
        let idx = (attempt.max(1) - 1) as usize;
        self.steps
            .get(idx)
            .or_else(|| self.steps.last())
            .copied()
            .unwrap_or_default()
    }

    /// The jittered delay before attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        jittered(self.base(attempt), self.jitter)
    }

    /// Whether `attempts` consecutive failures exhaust the schedule.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }
}

/// `base` with its last `fraction` randomised: a value in `[base·(1-fraction), base]`.
pub(crate) fn jittered(base: Duration, fraction: f64) -> Duration {
    let fraction = fraction.clamp(0.0, 1.0);
    if fraction == 0.0 || base.is_zero() {
        return base;
    }
    let keep = base.mul_f64(1.0 - fraction);
    let spread = base.saturating_sub(keep);
    let extra = rand::rng().random_range(0.0..=1.0);
    keep + spread.mul_f64(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_caps_at_last_step() {
        let b = Backoff::rejoin_default();
        assert_eq!(b.base(0), Duration::from_secs(1));
        assert_eq!(b.base(3), Duration::from_secs(5));
        assert_eq!(b.base(4), Duration::from_secs(10));
        assert_eq!(b.base(99), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let b = Backoff::reconnect_default();
        for attempt in 1..20 {
            let base = b.base(attempt);
            let d = b.delay(attempt);
            assert!(d <= base && d >= base / 2, "{d:?} vs {base:?}");
        }
    }

    #[test]
    fn exhausted_respects_limit() {
        let b = Backoff::fixed(Duration::from_millis(1), Some(3));
        assert!(!b.exhausted(2));
        assert!(b.exhausted(3));
        assert!(!Backoff::reconnect_default().exhausted(1000));
    }
}
