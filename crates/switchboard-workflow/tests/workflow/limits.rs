//! Limits that keep hostile workflows and events from panicking or failing
//! silently: durations past the maximum, patterns that pass the check but
//! could not compile, and templates over large values.

use serde_json::json;
use switchboard_workflow::duration::{parse_duration, seconds, MAX_DURATION};
use switchboard_workflow::load_str;
use switchboard_workflow::pattern::Pattern;
use switchboard_workflow::template::Templates;

fn errors(text: &str) -> String {
    match load_str("w.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn durations_past_the_maximum_are_load_errors_with_their_position() {
    let text = r#"version: 1
rules:
  - name: tick
    on: schedule
    every: 100000000d
    do: [{ log: tick }]
  - name: remember
    on: message_created
    throttle: { max: 1, per: 100000000d }
    do:
      - set: { key: a, value: 1, ttl: 100000000d }
      - incr: { key: b, ttl: 1e300 }
      - incr: { key: c, ttl: 400000000000 }
      - http: { url: "https://example.com", timeout: 99999999999h }
"#;
    let out = errors(text);
    for (line, what) in [
        (5, "`every`"),
        (9, "`throttle.per`"),
        (11, "`ttl`"),
        (12, "`ttl`"),
        (13, "`ttl`"),
        (14, "`timeout`"),
    ] {
        let at = format!("w.yaml:{line}:");
        let block = out
            .split("error: ")
            .find(|b| b.contains(&at))
            .unwrap_or_else(|| panic!("no error at line {line} in:\n{out}"));
        assert!(block.contains(what), "{what} at line {line}: {block}");
        assert!(
            block.contains("longer than the maximum of 3650d (10 years)"),
            "line {line}: {block}"
        );
    }
    // The maximum itself is fine.
    load_str(
        "ok.yaml",
        "version: 1\nrules:\n  - name: a\n    on: schedule\n    every: 3650d\n    do: [{ log: x }]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn duration_parsing_and_seconds_are_bounded_without_panicking() {
    assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
    let e = parse_duration("3651d").unwrap_err();
    assert_eq!(
        e,
        "duration `3651d` is longer than the maximum of 3650d (10 years)"
    );
    assert!(parse_duration("100000000d").is_err());
    assert!(parse_duration("99999999999999999999d").is_err());
    assert_eq!(seconds(90.5), Ok(std::time::Duration::from_millis(90_500)));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 4e8] {
        assert!(seconds(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_pattern_that_passes_the_check_compiles() {
    // `(?s:.){2000}` fits the forward NFA's limit but not the reverse one the
    // regex crate also builds: it used to pass the check and then be false
    // for every message, with one log line.
    for source in [
        r"(?s:.){2000}",
        r"(?s:.){1500}",
        r"[^a]{300}",
        r"\S{500}",
        r"(?i)\brefund\b",
        r"(\w+)@(\w+)\.com",
    ] {
        for insensitive in [false, true] {
            if let Ok(p) = Pattern::new(source, insensitive) {
                assert!(
                    p.regex().is_ok(),
                    "{source} (insensitive: {insensitive}) passed the check but does not compile"
                );
            }
        }
    }
    let e = Pattern::new(r"(?s:.){2000}", false).unwrap_err();
    assert!(e.contains("size limit"), "{e}");
}

#[test]
fn a_single_expression_over_a_large_string_renders() {
    let mut t = Templates::new();
    let text = t.compile("{{ event.content }}").unwrap();
    let reply = t.compile("You said: {{ event.content }}").unwrap();
    // 355 KB, under the platform's 512 KiB; quotes and `<` grow when
    // escaped as JSON, so the worst case for the expression form is tested too.
    for content in ["x".repeat(355_000), "<\"".repeat(177_500)] {
        let ctx = minijinja::Value::from(minijinja::value::Serde(
            &json!({"event": {"content": content}}),
        ));
        assert_eq!(t.render(&text, &ctx), Ok(json!(content)));
        assert_eq!(
            t.render(&reply, &ctx),
            Ok(json!(format!("You said: {content}")))
        );
    }
    // Work is still bounded.
    let endless = t
        .compile(
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap();
    let e = t.render(&endless, &minijinja::Value::from(())).unwrap_err();
    assert!(e.contains("too much work"), "{e}");
}
