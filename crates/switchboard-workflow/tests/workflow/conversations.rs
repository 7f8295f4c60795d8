//! `wait_for`, `ask` and `wait`: what loads, and every load check with its
//! message (timeout required and bounded, choices, `as` names, rooms,
//! nesting, unknown keys).

use switchboard_workflow::load_str;
use switchboard_workflow::rule::PauseKind;

fn rule(on: &str, actions: &str) -> String {
    format!("version: 1\nrules:\n  - name: r\n    on: {on}\n    do:\n{actions}")
}

fn errors(text: &str) -> String {
    match load_str("w.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const WAIT_FOR: &str = r#"      - reply: "Which order?"
      - wait_for:
          from: "{{ sender.id }}"
          chat: "{{ event.chat_room_id }}"
          if:
            - event.content: { matches: '^\s*\d+\s*$' }
          timeout: 10m
          on_timeout:
            - reply: "No order number, so I'll leave this for now."
        as: answer
      - reply: "Thanks, order {{ answer.content }}."
"#;

#[test]
fn wait_for_ask_and_wait_load_with_their_parts() {
    let ruleset = load_str("w.yaml", &rule("message_created", WAIT_FOR)).unwrap();
    let actions = &ruleset.rules()[0].actions;
    let pause = actions[1].pause.as_ref().expect("wait_for pauses");
    assert_eq!(pause.kind, PauseKind::WaitFor);
    assert_eq!(pause.timeout.as_secs(), 600);
    assert_eq!(pause.answer_if.len(), 1);
    assert_eq!(pause.on_timeout.len(), 1);
    assert_eq!(actions[1].bind.as_deref(), Some("answer"));
    assert!(actions[0].pause.is_none() && actions[2].pause.is_none());

    let ask = r#"      - ask:
          to: "@carol"
          text: "Approve?"
          choices: [Approve, reject]
          timeout: 1h
          on_timeout:
            - reply: "Carol did not answer."
        as: decision
      - wait: 5m
      - reply: "done"
"#;
    let ruleset = load_str("w.yaml", &rule("message_created", ask)).unwrap();
    let actions = &ruleset.rules()[0].actions;
    let pause = actions[0].pause.as_ref().unwrap();
    assert_eq!(pause.kind, PauseKind::Ask);
    assert_eq!(pause.choices, ["Approve", "reject"]);
    let wait = actions[1].pause.as_ref().unwrap();
    assert_eq!((wait.kind, wait.timeout.as_secs()), (PauseKind::Wait, 300));

    // In `else` too, and in rules of every event that has a room.
    for on in ["room_added", "participant_added", "participant_removed"] {
        let text = format!(
            "version: 1\nrules:\n  - name: r\n    on: {on}\n    if:\n      - event.x: 1\n    do: []\n    else:\n      - wait: 1m\n"
        );
        load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{on}: {e}"));
    }
    // A schedule rule waits for an answer in the room its `chat:` names.
    let scheduled = "version: 1\nrules:\n  - name: r\n    on: schedule\n    every: 1h\n    do:\n      - wait_for: { chat: r1, from: '@ann', timeout: 1h }\n";
    load_str("w.yaml", scheduled).unwrap();
}

#[test]
fn timeout_is_required_and_bounded() {
    let out = errors(&rule(
        "message_created",
        "      - wait_for: { from: '@ann' }\n",
    ));
    assert!(
        out.contains("`wait_for` is missing its `timeout` argument"),
        "{out}"
    );
    let out = errors(&rule(
        "message_created",
        "      - ask: { to: '@ann', text: hi, timeout: 31d }\n",
    ));
    assert!(
        out.contains("`timeout`: 31d is longer than a conversation may wait (30d)")
            && out.contains("w.yaml:6:47"),
        "{out}"
    );
    let out = errors(&rule("message_created", "      - wait: soon\n"));
    assert!(out.contains("bad duration `soon`"), "{out}");
    let out = errors(&rule(
        "message_created",
        "      - wait_for: { timeout: '{{ vars.t }}' }\n",
    ));
    assert!(
        out.contains("`timeout` must be a literal duration"),
        "{out}"
    );
}

#[test]
fn choices_are_non_empty_and_distinct_ignoring_case() {
    let out = errors(&rule(
        "message_created",
        "      - ask: { to: '@ann', text: hi, timeout: 1h, choices: [] }\n",
    ));
    assert!(
        out.contains("`choices` must name at least one choice"),
        "{out}"
    );
    let out = errors(&rule(
        "message_created",
        "      - ask: { to: '@ann', text: hi, timeout: 1h, choices: [Yes, no, yes] }\n",
    ));
    assert!(
        out.contains("choice `yes` repeats `Yes` (choices are compared ignoring case)"),
        "{out}"
    );
}

#[test]
fn as_names_are_unique_in_a_list() {
    let out = errors(&rule(
        "message_created",
        "      - wait_for: { timeout: 1m }\n        as: a\n      - reply: hi\n        as: a\n",
    ));
    assert!(
        out.contains("`as: a` is already bound at line 7 of this list"),
        "{out}"
    );
}

#[test]
fn only_where_the_event_has_a_room() {
    for on in ["contact_request_received", "agent_started", "room_deleted"] {
        let out = errors(&rule(on, "      - wait: 1m\n"));
        assert!(
            out.contains(&format!(
                "`wait` waits in a room, and a rule on `{on}` has none"
            )),
            "{on}: {out}"
        );
    }
    let out = errors("version: 1\nrules:\n  - name: r\n    on: schedule\n    every: 1h\n    do:\n      - ask: { to: '@ann', text: hi, timeout: 1h }\n");
    assert!(out.contains("a rule on `schedule` has none"), "{out}");
    // `chat:` gives `wait_for` its room anywhere.
    let out = errors("version: 1\nrules:\n  - name: r\n    on: schedule\n    every: 1h\n    do:\n      - wait_for: { timeout: 1h }\n");
    assert!(out.contains("give it `chat:`"), "{out}");
}

#[test]
fn wait_for_names_who_answers_where_the_event_has_no_sender() {
    for on in ["room_added", "participant_added"] {
        let out = errors(&rule(on, "      - wait_for: { timeout: 1m }\n"));
        assert!(
            out.contains(&format!(
                "`wait_for` without `from:` waits for the sender of the message, and a rule on `{on}` has none"
            )),
            "{on}: {out}"
        );
        load_str(
            "w.yaml",
            &rule(on, "      - wait_for: { timeout: 1m, from: '@ann' }\n"),
        )
        .unwrap_or_else(|e| panic!("{on}: {e}"));
    }
}

#[test]
fn no_pause_inside_on_timeout_or_on_error() {
    let out = errors(&rule(
        "message_created",
        "      - wait_for:\n          timeout: 1m\n          on_timeout:\n            - wait: 1m\n",
    ));
    assert!(
        out.contains("`wait` cannot be inside `on_timeout`: one level is enough")
            && out.contains("w.yaml:9:15"),
        "{out}"
    );
    let out = errors("version: 1\nrules:\n  - name: r\n    on: message_created\n    do: []\n    on_error:\n      - wait: 1m\n");
    assert!(out.contains("`wait` cannot be inside `on_error`"), "{out}");
}

#[test]
fn unknown_keys_get_a_suggestion() {
    let out = errors(&rule(
        "message_created",
        "      - wait_for: { timeout: 1m, on_timeuot: [] }\n",
    ));
    assert!(
        out.contains("unknown key `on_timeuot` in `wait_for`")
            && out.contains("did you mean `on_timeout`?"),
        "{out}"
    );
    let out = errors(&rule(
        "message_created",
        "      - ask: { to: '@a', text: hi, timeout: 1m, choice: [a] }\n",
    ));
    assert!(out.contains("did you mean `choices`?"), "{out}");
    let out = errors(&rule(
        "message_created",
        "      - wait_for: { timeout: 1m, if: [{ event.content: { matchs: x } }] }\n",
    ));
    assert!(out.contains("did you mean `matches`?"), "{out}");
}
