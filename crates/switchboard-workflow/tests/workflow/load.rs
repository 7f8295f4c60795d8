//! The loader: every kind of mistake is a load error at the exact place,
//! rendered like a compiler error; good files compile into indexed rules.

use switchboard_workflow::{load_dir, load_str};

fn errors(text: &str) -> String {
    match load_str("w.yaml", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_key_points_at_the_key_and_suggests_the_right_one() {
    let text = "version: 1\nrules:\n  - name: a\n    on: message_created\n    descriptoin: x\n    do: []\n";
    assert_eq!(
        errors(text),
        "error: unknown key `descriptoin` in rule\n  --> w.yaml:5:5\n  |\n5 |     descriptoin: x\n  |     ^ did you mean `description`?\n"
    );
}

#[test]
fn every_error_of_a_file_is_reported_with_its_position() {
    let text = r#"version: 1
rules:
  - name: a
    on: message_creatd
    if:
      - event.content: { matches: '(unclosed' }
      - event.sender_name: { startswith: x }
    do:
      - rpely: hi
  - name: b
    on: contact_request_received
    do:
      - reply: "Hi {{ event.from_handle "
      - post_event: { type: musing, content: x }
      - send_message: { text: x }
"#;
    let out = errors(text);
    assert!(
        !out.contains("missing its `text`"),
        "a broken argument is not also missing:\n{out}"
    );
    assert!(!out.contains("error: error"), "{out}");
    for expected in [
        "unknown event type `message_creatd`\n  --> w.yaml:4:9",
        "did you mean `message_created`?",
        "bad regular expression",
        "--> w.yaml:6:36",
        "unknown key `startswith` in the operators\n  --> w.yaml:7:30",
        "did you mean `starts_with`?",
        "unknown action `rpely`\n  --> w.yaml:9:9",
        "did you mean `reply`?",
        "template error: syntax error: unexpected end of input",
        "--> w.yaml:13:41",
        "`type` must be one of thought, tool_call, tool_result, error, task\n  --> w.yaml:14:29",
        "`send_message` is missing its `chat` argument",
        "`send_message` is missing its `mentions` argument",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn structural_mistakes() {
    assert!(errors("rules: []\n").contains("missing `version: 1`"));
    assert!(errors("version: 2\nrules: []\n").contains("unsupported version"));
    let dup = "version: 1\nrules:\n  - name: a\n    on: room_added\n    do: []\n  - name: a\n    on: room_added\n    do: []\n";
    let out = errors(dup);
    assert!(
        out.contains("duplicate rule name `a` (first at line 3)") && out.contains("w.yaml:6:11"),
        "{out}"
    );
    let no_do = "version: 1\nrules:\n  - name: a\n    on: room_added\n";
    assert!(errors(no_do).contains("rule has no `do:`"));
    let two = "version: 1\nrules:\n  - name: a\n    on: room_added\n    do:\n      - log: x\n        reply: y\n";
    assert!(errors(two).contains("one action per list item"));
    let bad_yaml = "version: 1\nrules: [\n";
    assert!(errors(bad_yaml).starts_with("error: invalid YAML"));
    let unknown_use = "version: 1\nconditions:\n  from_user: { event.sender_type: User }\nrules:\n  - name: a\n    on: message_created\n    if: [{ use: from_usr }]\n    do: []\n";
    let out = errors(unknown_use);
    assert!(
        out.contains("no condition named `from_usr`") && out.contains("did you mean `from_user`?"),
        "{out}"
    );
    let unknown_var = "version: 1\nvars: { allow: [a] }\nrules:\n  - name: a\n    on: message_created\n    if: [{ event.x: { in: { var: allwo } } }]\n    do: []\n";
    assert!(errors(unknown_var).contains("no var named `allwo`"));
    let sched = "version: 1\nrules:\n  - name: a\n    on: schedule\n    do: []\n";
    assert!(errors(sched).contains("needs `every: 10m` or `cron"));
    let cron =
        "version: 1\nrules:\n  - name: a\n    on: schedule\n    cron: 'not a cron'\n    do: []\n";
    assert!(errors(cron).contains("bad cron expression"));
    let throttle = "version: 1\nrules:\n  - name: a\n    on: room_added\n    throttle: { max: 1, per: soon }\n    do: []\n";
    assert!(errors(throttle).contains("`throttle.per`: bad duration `soon`"));
}

#[test]
fn a_good_file_compiles_and_is_indexed_by_event_type_and_priority() {
    let text = r#"version: 1
vars: { team: [a, b] }
defaults: { priority: 5 }
rules:
  - name: low
    on: message_created
    priority: 1
    do: [ { log: low } ]
  - name: high
    on: [message_created, room_added]
    do: [ { log: high } ]
  - name: tick
    on: schedule
    every: 10m
    do: [ { log: tick } ]
"#;
    let rs = load_str("flows/w.yaml", text).unwrap();
    assert_eq!(rs.len(), 3);
    let ids: Vec<&str> = rs
        .rules_for("message_created")
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["w/high", "w/low"]);
    assert_eq!(rs.rules_for("room_added").count(), 1);
    assert_eq!(rs.rules_for("contact_added").count(), 0);
    assert_eq!(rs.schedules().len(), 1);
}

#[test]
fn a_folder_loads_in_path_order_skipping_tests_and_reports_all_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let rule = |name: &str| {
        format!("version: 1\nrules:\n  - name: {name}\n    on: room_added\n    do: []\n")
    };
    std::fs::write(dir.path().join("b.yaml"), rule("second")).unwrap();
    std::fs::write(dir.path().join("a.yml"), rule("first")).unwrap();
    std::fs::write(dir.path().join("sub/c.yaml"), rule("third")).unwrap();
    std::fs::write(dir.path().join("a.test.yaml"), "tests: []\n").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let rs = load_dir(dir.path()).unwrap();
    assert_eq!(
        rs.rule_ids().collect::<Vec<_>>(),
        ["a/first", "b/second", "c/third"]
    );

    std::fs::write(dir.path().join("b.yaml"), "version: 1\nrules: 5\n").unwrap();
    std::fs::write(dir.path().join("d.yaml"), [0x76, 0x3a, 0xff, 0xfe]).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("b.yaml:2:8") && text.contains("not valid UTF-8"),
        "{text}"
    );
}

#[test]
fn yaml_bombs_are_refused() {
    let mut laughs = String::from("version: 1\na: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let mut prev = 'a';
    for name in ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'] {
        laughs.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = name;
    }
    laughs.push_str("rules: []\n");
    assert!(errors(&laughs).contains("error"));
    let deep = format!(
        "version: 1\nrules: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(errors(&deep).contains("invalid YAML"));
}

fn rule_doing(actions: &str) -> String {
    format!("version: 1\nrules:\n  - name: a\n    on: message_created\n    do:\n{actions}")
}

#[test]
fn unknown_filters_tests_and_functions_are_load_errors_at_their_name() {
    let out = errors(&rule_doing(
        "      - reply: \"Hi {{ sender.name | uppper }}\"\n      - log: \"{% if n is evn %}x{% endif %}\"\n      - log: \"{{ rnage(3) }}\"\n",
    ));
    for expected in [
        "error: unknown filter `uppper`\n  --> w.yaml:6:37",
        "did you mean `upper`?",
        "error: unknown test `evn`\n  --> w.yaml:7:26",
        "did you mean `even`?",
        "error: unknown function `rnage`\n  --> w.yaml:8:18",
        "did you mean `range`?",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // A condition's template is checked the same way; our own filters are known.
    let cond = "version: 1\nrules:\n  - name: a\n    on: message_created\n    if: \"{{ event.content | slgu }}\"\n    do: []\n";
    let out = errors(cond);
    assert!(
        out.contains("unknown filter `slgu`") && out.contains("did you mean `slug`?"),
        "{out}"
    );
    // Everything the environment knows, and names the template defines, pass.
    let fine = rule_doing(concat!(
        "      - reply: \"{{ sender.name | upper | truncate(5) | slug | mention }} {{ x | strip_mentions | json }}\"\n",
        "      - log: \"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1) }} {% set f = namespace(n=1) %}{{ f.n }}\"\n",
        "      - log: \"{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}{% if x is defined and x is not even %}y{% endif %}\"\n",
        "      - log: \"{% filter upper %}x{% endfilter %}{{ dict(a=1) | tojson }}\"\n",
        "      - log: \"{{ x not in (y | list) and (1) or (2) if (3) else (4) }}\"\n",
    ));
    if let Err(e) = load_str("w.yaml", &fine) {
        panic!("{e}");
    }
}

#[test]
fn literal_arguments_of_the_wrong_type_are_load_errors() {
    let out = errors(&rule_doing(
        "      - incr: { key: k, by: \"two\" }\n      - http: { url: 'https://x.example', max_bytes: lots, follow_redirects: 'yes' }\n      - reply: { text: hi, mentions: { a: 1 } }\n",
    ));
    for expected in [
        "`by` must be a whole number, found the string \"two\"\n  --> w.yaml:6:29",
        "`max_bytes` must be a whole number, found the string \"lots\"\n  --> w.yaml:7:54",
        "`follow_redirects` must be true or false, found the string \"yes\"\n  --> w.yaml:7:78",
        "`mentions` must be a list, found a mapping\n  --> w.yaml:8:38",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Templates stay allowed where the field takes them; so does text holding the value.
    let fine = rule_doing(
        "      - incr: { key: k, by: \"{{ n }}\" }\n      - incr: { key: k, by: '3' }\n      - http: { url: 'https://x.example', max_bytes: 100, follow_redirects: 'false' }\n      - reply: { text: 42, mentions: '@ann' }\n",
    );
    if let Err(e) = load_str("w.yaml", &fine) {
        panic!("{e}");
    }
}

#[test]
fn carets_point_inside_bad_regexes_and_templates() {
    let cond = |c: &str| {
        format!("version: 1\nrules:\n  - name: a\n    on: message_created\n    if:\n      - {c}\n    do: []\n")
    };
    // Plain, single-quoted ('' is one quote) and double-quoted (\\ is one backslash).
    for (c, col) in [
        ("event.content: { matches: ab(c }", 37),
        ("event.content: { matches: 'it''s (x' }", 42),
        ("event.content: { matches: \"\\\\d+ (x\" }", 41),
    ] {
        let out = errors(&cond(c));
        assert!(
            out.contains(&format!("--> w.yaml:6:{col}\n")),
            "{c}: want column {col}:\n{out}"
        );
    }
    let out = errors(&rule_doing("      - reply: 'Hi {{ name ) }}'\n"));
    assert!(out.contains("--> w.yaml:6:28\n"), "{out}");
    // A block scalar: the template's second line.
    let out = errors(&rule_doing(
        "      - reply: |\n          Hello\n          {{ name | nope }}\n",
    ));
    assert!(
        out.contains("unknown filter `nope`\n  --> w.yaml:8:21\n"),
        "{out}"
    );
}

#[test]
fn wrong_indentation_gets_a_hint() {
    for text in [
        "version: 1\nrules:\n  - name: a\n    on: message_created\n   do: []\n",
        "version: 1\nrules:\n  - name: a\n    on: message_created\n      do: []\n",
    ] {
        let out = errors(text);
        assert!(
            out.contains("hint: check the indentation of this line against the one above"),
            "{out}"
        );
    }
}

#[test]
fn every_unknown_key_of_a_rule_and_its_actions_is_reported_at_once() {
    let text = "version: 1\nrules:\n  - name: a\n    onn: message_created\n    descriptoin: x\n    do:\n      - rpely: { txt: hi, mentons: [a] }\n        iff: x\n";
    let out = errors(text);
    for expected in [
        "unknown key `onn` in rule",
        "unknown key `descriptoin` in rule",
        "unknown action `rpely`",
        "unknown action `iff`",
        "unknown key `txt` in `reply`",
        "unknown key `mentons` in `reply`",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

fn llm_rule(args: &str) -> String {
    format!("version: 1\nrules:\n  - name: ask\n    on: message_created\n    do:\n      - llm: {args}\n        as: verdict\n")
}

#[test]
fn an_llm_action_with_a_schema_loads() {
    let text = llm_rule(
        "{ system: 'Classify. Answer with JSON.', prompt: '{{ event.text }}', schema: { type: object, properties: { route: { enum: [billing, docs, human] } }, required: [route] }, timeout: 20s }",
    );
    load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    // The shorthand is the prompt.
    load_str("w.yaml", &llm_rule("'{{ event.text }}'")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn an_llm_schema_that_is_no_json_schema_is_a_load_error_at_its_place() {
    let text = llm_rule("{ prompt: hi, schema: { type: objekt } }");
    let out = errors(&text);
    assert!(out.contains("`schema` is not a valid JSON Schema"), "{out}");
    assert!(out.contains("objekt"), "{out}");
    assert!(out.contains("--> w.yaml:6:44"), "{out}");
    let text = llm_rule("{ prompt: hi, schema: { required: 3 } }");
    let out = errors(&text);
    assert!(out.contains("`schema` is not a valid JSON Schema"), "{out}");
}

#[test]
fn an_llm_action_needs_a_prompt_and_a_good_timeout() {
    let out = errors(&llm_rule("{ system: hi }"));
    assert!(
        out.contains("`llm` is missing its `prompt` argument"),
        "{out}"
    );
    let out = errors(&llm_rule("{ prompt: hi, timeout: soon }"));
    assert!(out.contains("`timeout`"), "{out}");
    let out = errors(&llm_rule("{ prompt: hi, shema: {} }"));
    assert!(out.contains("did you mean `schema`?"), "{out}");
}
