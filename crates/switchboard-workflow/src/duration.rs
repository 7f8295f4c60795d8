//! Durations as workflows write them (`ttl`, `timeout`, `after`, throttles,
//! `every`), bounded by [`MAX_DURATION`] wherever they come from: the file,
//! or a template rendered from an event.

use std::time::Duration;

/// The longest duration a workflow may use: 3650 days (10 years). Far above
/// any real TTL or interval, and far below what timestamps can hold, so
/// adding one to "now" cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(MAX_DAYS * 24 * 60 * 60);

/// The longest a `wait_for`, `ask` or `wait` may wait: 30 days. A pending
/// conversation is kept (in memory and on disk) until it ends, so an
/// unanswered one must end within a bounded time.
pub const MAX_WAIT: Duration = Duration::from_secs(MAX_WAIT_DAYS * 24 * 60 * 60);

/// [`MAX_WAIT`] in days, for messages.
pub const MAX_WAIT_DAYS: u64 = 30;

/// [`MAX_DURATION`] in days, for messages.
const MAX_DAYS: u64 = 3650;

/// `10m`, `30s`, `1h`, `2d`, `1h30m`: more than zero, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration `{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("duration `{s}` must be more than zero"));
    }
    if d > MAX_DURATION {
        return Err(format!("duration `{s}` {}", too_long()));
    }
    Ok(d)
}

/// A number of seconds as a duration: more than zero, at most [`MAX_DURATION`]
/// (never NaN or infinite, which `Duration::from_secs_f64` would panic on).
pub fn seconds(s: f64) -> Result<Duration, String> {
    if s.is_nan() || s <= 0.0 {
        return Err(format!("{s} seconds: a duration must be more than zero"));
    }
    if s > MAX_DURATION.as_secs_f64() {
        return Err(format!("{s} seconds {}", too_long()));
    }
    // In range by the checks above, so this cannot fail.
    Duration::try_from_secs_f64(s).map_err(|e| format!("{s} seconds: {e}"))
}

fn too_long() -> String {
    format!("is longer than the maximum of {MAX_DAYS}d (10 years)")
}
