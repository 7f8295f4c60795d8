//! Time zones and business hours at load time: `timezone:` (file, rule,
//! inside `time`) checked against the IANA database, the `time` condition's
//! keys and values checked, and `cron:` schedules computed on the wall clock
//! of the rule's zone across both daylight-saving changes.

use chrono::{DateTime, Utc};
use switchboard_workflow::load_str;
use switchboard_workflow::rule::Schedule;

fn errors(text: &str) -> String {
    match load_str("w.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn with_time(time: &str) -> String {
    format!("version: 1\nrules:\n  - name: r\n    on: message_created\n    if:\n      - time: {time}\n    do: [ {{ log: x }} ]\n")
}

#[test]
fn a_misspelt_time_zone_is_an_error_with_a_suggestion_wherever_it_is() {
    let file = "version: 1\ntimezone: Europe/Berln\nrules:\n  - name: r\n    on: message_created\n    do: [ { log: x } ]\n";
    assert_eq!(
        errors(file),
        "error: unknown time zone `Europe/Berln` (an IANA name such as `Europe/Berlin` or `America/New_York`)\n  --> w.yaml:2:11\n  |\n2 | timezone: Europe/Berln\n  |           ^ did you mean `Europe/Berlin`?\n"
    );
    let rule = "version: 1\nrules:\n  - name: r\n    on: message_created\n    timezone: America/New_Yrok\n    do: [ { log: x } ]\n";
    let out = errors(rule);
    assert!(
        out.contains("unknown time zone `America/New_Yrok`"),
        "{out}"
    );
    assert!(out.contains("--> w.yaml:5:15"), "{out}");
    assert!(out.contains("did you mean `America/New_York`?"), "{out}");
    let inside = with_time("{ after: \"09:00\", timezone: Asia/Tokio }");
    let out = errors(&inside);
    assert!(out.contains("unknown time zone `Asia/Tokio`"), "{out}");
    assert!(out.contains("--> w.yaml:6:43"), "{out}");
    assert!(out.contains("did you mean `Asia/Tokyo`?"), "{out}");
    let number = "version: 1\ntimezone: 2\nrules: []\n";
    assert!(errors(number).contains("`timezone` must be a string"));
}

#[test]
fn time_condition_values_are_checked_at_their_place() {
    for (time, message, col) in [
        (
            "{ after: \"9:00\" }",
            "`after` must be a time of day as HH:MM (00:00 to 23:59), found `9:00`",
            24,
        ),
        (
            "{ before: \"24:00\" }",
            "`before` must be a time of day as HH:MM (00:00 to 23:59), found `24:00`",
            25,
        ),
        (
            "{ after: \"12:60\" }",
            "`after` must be a time of day as HH:MM",
            24,
        ),
        ("{ before: 1700 }", "`before` must be a string", 25),
        ("{ weekdays: [mon, tues] }", "unknown weekday `tues`", 33),
        ("{ weekdays: mon }", "`weekdays` must be a list", 27),
        (
            "{ dates: [\"2026-02-30\"] }",
            "`2026-02-30` is not a date",
            25,
        ),
        ("{ dates: [\"26-12-24\"] }", "is not a date", 25),
        ("{ dates: [\"2026-12-24T00:00\"] }", "is not a date", 25),
        (
            "{ after: \"09:00\", befor: \"17:00\" }",
            "unknown key `befor` in `time`",
            33,
        ),
        (
            "{ after: \"09:00\", before: \"09:00\" }",
            "`after` and `before` are the same time",
            41,
        ),
        (
            "{}",
            "`time` needs at least one of `after`, `before`, `weekdays`, `dates`",
            15,
        ),
        ("\"09:00\"", "`time` must be a mapping", 15),
    ] {
        let out = errors(&with_time(time));
        assert!(out.contains(message), "{time}: {out}");
        assert!(
            out.contains(&format!("--> w.yaml:6:{col}\n")),
            "{time}: {out}"
        );
    }
    assert!(errors(&with_time("{ weekdays: [mon, tues] }")).contains("did you mean `tue`?"));
    assert!(errors(&with_time("{ after: \"09:00\", befor: \"17:00\" }"))
        .contains("did you mean `before`?"));
}

#[test]
fn a_time_condition_with_every_key_loads() {
    let text = with_time(
        "{ after: \"22:00\", before: \"06:00\", weekdays: [mon, tue, wed, thu, fri, sat, sun], dates: [\"2026-12-24\"], timezone: Europe/Berlin }",
    );
    load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let text = "version: 1\nconditions:\n  open: { time: { after: \"09:00\" } }\nrules:\n  - name: r\n    on: message_created\n    if:\n      - use: open\n      - not: { time: { dates: [\"2026-12-25\"] } }\n    do: [ { log: x } ]\n";
    load_str("w.yaml", text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_rule_takes_its_files_time_zone_unless_it_names_its_own() {
    let text = "version: 1\ntimezone: America/New_York\nrules:\n  - name: a\n    on: message_created\n    do: [ { log: a } ]\n  - name: b\n    on: message_created\n    timezone: Europe/Berlin\n    do: [ { log: b } ]\n";
    let rs = load_str("w.yaml", text).unwrap_or_else(|e| panic!("{e}"));
    let zones: Vec<(String, String)> = rs
        .rules_for("message_created")
        .map(|r| (r.id.clone(), r.timezone.name().to_owned()))
        .collect();
    assert_eq!(
        zones,
        [
            ("w/a".to_owned(), "America/New_York".to_owned()),
            ("w/b".to_owned(), "Europe/Berlin".to_owned())
        ]
    );
    let plain =
        "version: 1\nrules:\n  - name: a\n    on: message_created\n    do: [ { log: a } ]\n";
    let rs = load_str("w.yaml", plain).unwrap_or_else(|e| panic!("{e}"));
    let zone = rs.rules_for("message_created").next().map(|r| r.timezone);
    assert_eq!(zone, Some(chrono_tz::UTC));
}

/// The only schedule of a file whose one rule runs on `cron` in `zone`.
fn cron(zone: Option<&str>, cron: &str) -> Schedule {
    let zone = zone.map_or(String::new(), |z| format!("timezone: {z}\n"));
    let text = format!("version: 1\n{zone}rules:\n  - name: tick\n    on: schedule\n    cron: \"{cron}\"\n    do: [ {{ log: tick }} ]\n");
    let rs = load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let schedules = rs.schedules();
    assert_eq!(schedules.len(), 1);
    schedules[0].1.clone()
}

/// The next `n` runs after `from`, in UTC.
fn runs(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut at = utc(from);
    let mut out = Vec::new();
    for _ in 0..n {
        at = schedule.next_after(at).expect("a next run");
        out.push(at.to_rfc3339());
    }
    out
}

#[test]
fn cron_without_a_zone_runs_on_utc() {
    let s = cron(None, "30 2 * * *");
    assert_eq!(
        runs(&s, "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T02:30:00+00:00", "2026-03-30T02:30:00+00:00"]
    );
}

#[test]
fn cron_in_berlin_follows_both_daylight_saving_changes() {
    let s = cron(Some("Europe/Berlin"), "30 2 * * *");
    // Spring forward, Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST, so
    // 02:30 does not exist; the job runs once, at 03:00 CEST (01:00 UTC).
    assert_eq!(
        runs(&s, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T01:30:00+00:00",
            "2026-03-29T01:00:00+00:00",
            "2026-03-30T00:30:00+00:00"
        ]
    );
    // Fall back, Sunday 25 October 2026: 02:30 happens twice (CEST, then
    // CET); the job runs once, at the first.
    assert_eq!(
        runs(&s, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-24T00:30:00+00:00",
            "2026-10-25T00:30:00+00:00",
            "2026-10-26T01:30:00+00:00"
        ]
    );
    // Searching from inside the repeated hour does not run it again.
    assert_eq!(
        runs(&s, "2026-10-25T01:00:00Z", 1),
        ["2026-10-26T01:30:00+00:00"]
    );
    // Weekday jobs keep their local hour on both sides of the change.
    let s = cron(Some("Europe/Berlin"), "0 9 * * MON-FRI");
    assert_eq!(
        runs(&s, "2026-03-27T12:00:00Z", 2),
        ["2026-03-30T07:00:00+00:00", "2026-03-31T07:00:00+00:00"]
    );
    assert_eq!(
        runs(&s, "2026-10-23T12:00:00Z", 1),
        ["2026-10-26T08:00:00+00:00"]
    );
}

#[test]
fn cron_in_new_york_follows_both_daylight_saving_changes() {
    let s = cron(Some("America/New_York"), "30 2 * * *");
    // Spring forward, Sunday 8 March 2026: 02:00 EST becomes 03:00 EDT.
    assert_eq!(
        runs(&s, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00+00:00",
            "2026-03-08T07:00:00+00:00",
            "2026-03-09T06:30:00+00:00"
        ]
    );
    // Fall back, Sunday 1 November 2026: 02:00 EDT becomes 01:00 EST, so
    // 01:30 happens twice; a 01:30 job runs once.
    let s = cron(Some("America/New_York"), "30 1 * * *");
    assert_eq!(
        runs(&s, "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T05:30:00+00:00",
            "2026-11-01T05:30:00+00:00",
            "2026-11-02T06:30:00+00:00"
        ]
    );
}

#[test]
fn a_schedule_in_another_zone_is_another_schedule() {
    // Equal schedules keep their timers across reloads; a changed zone must not.
    assert_ne!(
        cron(Some("Europe/Berlin"), "0 9 * * *"),
        cron(Some("America/New_York"), "0 9 * * *")
    );
    assert_eq!(
        cron(Some("Europe/Berlin"), "0 9 * * *"),
        cron(Some("Europe/Berlin"), "0 9 * * *")
    );
}

#[test]
fn a_stepped_cron_follows_the_real_clock_through_the_repeated_hour() {
    // Unlike a fixed time, `*/30` runs in both passes of 02:xx on 25 October
    // in Berlin: every half hour of real time.
    let s = cron(Some("Europe/Berlin"), "*/30 * * * *");
    assert_eq!(
        runs(&s, "2026-10-24T23:45:00Z", 5),
        [
            "2026-10-25T00:00:00+00:00",
            "2026-10-25T00:30:00+00:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
            "2026-10-25T02:00:00+00:00"
        ]
    );
    // And skips the missing hour on 29 March: 01:30 CET, then 03:00 CEST.
    assert_eq!(
        runs(&s, "2026-03-29T00:15:00Z", 2),
        ["2026-03-29T00:30:00+00:00", "2026-03-29T01:00:00+00:00"]
    );
}
