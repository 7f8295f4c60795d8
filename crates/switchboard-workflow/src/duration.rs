//! Durations as workflows write them (`ttl`, `timeout`, `after`, throttles).

use std::time::Duration;

/// `10m`, `30s`, `1h`, `2d`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration `{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("duration `{s}` must be more than zero"));
    }
    Ok(d)
}
