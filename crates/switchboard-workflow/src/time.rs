//! Time zones and business hours: `timezone:` (an IANA name, checked against
//! the database chrono-tz carries) and the `time` condition, compiled here
//! and decided by [`TimeCond::holds`] on the wall clock of a zone. Pure: the
//! engine hands in the instant (its clock, or a test's `given.now`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;

use super::error::did_you_mean;
use super::schema::{keys_of, TimeCondition};
use super::yaml::{Kind, Loc, Node};

/// A problem found while compiling: where, what, and a hint.
pub(crate) type Problem = (Loc, String, Option<String>);

/// The weekday names `weekdays:` takes, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A compiled `time` condition: all of its parts must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeCond {
    /// From this time of day on (inclusive).
    pub after: Option<NaiveTime>,
    /// Up to this time of day (exclusive); earlier than `after` wraps over midnight.
    pub before: Option<NaiveTime>,
    /// On these days of the week (empty: any).
    pub weekdays: Vec<Weekday>,
    /// On these dates (empty: any).
    pub dates: Vec<NaiveDate>,
    /// Its own zone; none means the rule's.
    pub timezone: Option<Tz>,
}

impl TimeCond {
    /// The zone it is read in: its own, else the rule's.
    pub fn zone(&self, rule_zone: Tz) -> Tz {
        self.timezone.unwrap_or(rule_zone)
    }

    /// Whether the instant `at`, on the wall clock of `zone`, falls inside.
    /// The weekday and date are those of that moment, also after midnight
    /// in a range that wraps over it.
    pub fn holds(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        let local = at.with_timezone(&zone);
        let t = local.time();
        let in_range = match (self.after, self.before) {
            (Some(a), Some(b)) if a <= b => a <= t && t < b,
            (Some(a), Some(b)) => a <= t || t < b,
            (Some(a), None) => a <= t,
            (None, Some(b)) => t < b,
            (None, None) => true,
        };
        in_range
            && (self.weekdays.is_empty() || self.weekdays.contains(&local.weekday()))
            && (self.dates.is_empty() || self.dates.contains(&local.date_naive()))
    }

    /// As written, for traces: `time after 09:00 before 17:30 weekdays mon,tue (Europe/Berlin)`.
    pub fn describe(&self, zone: Tz) -> String {
        let mut out = String::from("time");
        if let Some(a) = self.after {
            out.push_str(&format!(" after {}", a.format("%H:%M")));
        }
        if let Some(b) = self.before {
            out.push_str(&format!(" before {}", b.format("%H:%M")));
        }
        if !self.weekdays.is_empty() {
            let days: Vec<&str> = self
                .weekdays
                .iter()
                .map(|d| WEEKDAYS[d.num_days_from_monday() as usize])
                .collect();
            out.push_str(&format!(" weekdays {}", days.join(",")));
        }
        if !self.dates.is_empty() {
            let dates: Vec<String> = self.dates.iter().map(NaiveDate::to_string).collect();
            out.push_str(&format!(" dates {}", dates.join(",")));
        }
        out.push_str(&format!(" ({})", zone.name()));
        out
    }
}

/// The wall clock time of `at` in `zone`, RFC 3339 (`local_now`).
pub fn local_rfc3339(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).to_rfc3339()
}

/// A `timezone:` value: an IANA name such as `Europe/Berlin`.
pub(crate) fn zone(node: &Node, problems: &mut Vec<Problem>) -> Option<Tz> {
    let Kind::Str(name) = &node.kind else {
        let msg = format!(
            "`timezone` must be a string such as `Europe/Berlin`, found {}",
            node.describe()
        );
        problems.push((node.loc, msg, None));
        return None;
    };
    match name.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            let msg = format!(
                "unknown time zone `{name}` (an IANA name such as `Europe/Berlin` or `America/New_York`)"
            );
            problems.push((node.loc, msg, zone_hint(name)));
            None
        }
    }
}

/// The zone name closest to a wrong one: the same name in other case, else
/// the nearest by spelling.
fn zone_hint(name: &str) -> Option<String> {
    let names = || chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    names()
        .find(|n| n.eq_ignore_ascii_case(name))
        .map(|n| format!("did you mean `{n}`?"))
        .or_else(|| did_you_mean(name, names()))
}

/// A `time:` condition's mapping.
pub(crate) fn compile(node: &Node, problems: &mut Vec<Problem>) -> Option<TimeCond> {
    let Kind::Map(entries) = &node.kind else {
        let msg = format!(
            "`time` must be a mapping such as `{{ after: \"09:00\", before: \"17:00\" }}`, found {}",
            node.describe()
        );
        problems.push((node.loc, msg, None));
        return None;
    };
    let before_count = problems.len();
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let allowed = KEYS.get_or_init(keys_of::<TimeCondition>);
    let mut cond = TimeCond {
        after: None,
        before: None,
        weekdays: Vec::new(),
        dates: Vec::new(),
        timezone: None,
    };
    let mut before_loc = node.loc;
    for (k, v) in entries {
        let key = k.key_text();
        match key.as_str() {
            "after" => cond.after = time_of_day(v, "after", problems),
            "before" => {
                before_loc = v.loc;
                cond.before = time_of_day(v, "before", problems);
            }
            "weekdays" => cond.weekdays = list(v, "weekdays", problems, weekday),
            "dates" => cond.dates = list(v, "dates", problems, date),
            "timezone" => cond.timezone = zone(v, problems),
            _ => {
                let hint = did_you_mean(&key, allowed.iter().map(String::as_str));
                problems.push((k.loc, format!("unknown key `{key}` in `time`"), hint));
            }
        }
    }
    if entries.is_empty() {
        let msg = "`time` needs at least one of `after`, `before`, `weekdays`, `dates`";
        problems.push((node.loc, msg.into(), None));
    }
    if let (Some(a), Some(b)) = (cond.after, cond.before) {
        if a == b {
            let msg = format!(
                "`after` and `before` are the same time ({}): the range would be empty",
                a.format("%H:%M")
            );
            let hint = "leave both out for the whole day".to_owned();
            problems.push((before_loc, msg, Some(hint)));
        }
    }
    (problems.len() == before_count).then_some(cond)
}

/// `HH:MM`, 00:00 to 23:59, two digits each.
fn time_of_day(node: &Node, key: &str, problems: &mut Vec<Problem>) -> Option<NaiveTime> {
    let Kind::Str(text) = &node.kind else {
        let msg = format!(
            "`{key}` must be a string, a time of day as \"HH:MM\" in quotes, found {}",
            node.describe()
        );
        problems.push((node.loc, msg, None));
        return None;
    };
    let parsed = match text.as_bytes() {
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let hour = u32::from(h1 - b'0') * 10 + u32::from(h2 - b'0');
            let minute = u32::from(m1 - b'0') * 10 + u32::from(m2 - b'0');
            NaiveTime::from_hms_opt(hour, minute, 0)
        }
        _ => None,
    };
    if parsed.is_none() {
        let msg =
            format!("`{key}` must be a time of day as HH:MM (00:00 to 23:59), found `{text}`");
        problems.push((node.loc, msg, Some("e.g. \"09:00\" or \"17:30\"".into())));
    }
    parsed
}

/// A list whose items `item` reads (reporting its own problems).
fn list<T>(
    node: &Node,
    key: &str,
    problems: &mut Vec<Problem>,
    item: fn(&Node, &mut Vec<Problem>) -> Option<T>,
) -> Vec<T> {
    let Kind::Seq(items) = &node.kind else {
        let msg = format!("`{key}` must be a list, found {}", node.describe());
        problems.push((node.loc, msg, None));
        return Vec::new();
    };
    items.iter().filter_map(|n| item(n, problems)).collect()
}

fn weekday(node: &Node, problems: &mut Vec<Problem>) -> Option<Weekday> {
    let name = node.as_str().unwrap_or_default();
    match WEEKDAYS.iter().position(|d| *d == name) {
        Some(i) => Weekday::try_from(i as u8).ok(),
        None => {
            let shown = node
                .as_str()
                .map_or_else(|| node.describe().to_owned(), str::to_owned);
            let hint = did_you_mean(&name.to_ascii_lowercase(), WEEKDAYS)
                .or_else(|| Some(format!("one of: {}", WEEKDAYS.join(", "))));
            problems.push((node.loc, format!("unknown weekday `{shown}`"), hint));
            None
        }
    }
}

fn date(node: &Node, problems: &mut Vec<Problem>) -> Option<NaiveDate> {
    let text = node.as_str().unwrap_or_default();
    // chrono accepts unpadded fields; the format wants exactly YYYY-MM-DD.
    let shaped = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    let parsed = shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten();
    if parsed.is_none() {
        let shown = node
            .as_str()
            .map_or_else(|| node.describe().to_owned(), str::to_owned);
        let msg = format!("`{shown}` is not a date: `dates` takes ISO dates as \"YYYY-MM-DD\"");
        problems.push((node.loc, msg, Some("e.g. \"2026-12-24\"".into())));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn ranges_include_after_exclude_before_and_wrap_over_midnight() {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0);
        let range = |a, b| TimeCond {
            after: a,
            before: b,
            weekdays: Vec::new(),
            dates: Vec::new(),
            timezone: None,
        };
        let day = range(hm(9, 0), hm(17, 30));
        assert!(day.holds(at("2026-01-05T09:00:00Z"), Tz::UTC));
        assert!(!day.holds(at("2026-01-05T17:30:00Z"), Tz::UTC));
        let night = range(hm(22, 0), hm(6, 0));
        assert!(night.holds(at("2026-01-05T23:59:59Z"), Tz::UTC));
        assert!(night.holds(at("2026-01-05T00:00:00Z"), Tz::UTC));
        assert!(!night.holds(at("2026-01-05T06:00:00Z"), Tz::UTC));
        assert!(!night.holds(at("2026-01-05T21:59:59Z"), Tz::UTC));
        assert!(range(hm(22, 0), None).holds(at("2026-01-05T22:00:00Z"), Tz::UTC));
        assert!(!range(None, hm(6, 0)).holds(at("2026-01-05T06:00:00Z"), Tz::UTC));
    }
}
