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

/// A workflow whose `partner_key` secret comes from `source` (YAML flow text).
fn with_secret(source: &str, header: &str) -> String {
    format!(
        "version: 1\nsecrets:\n  partner_key: {source}\nrules:\n  - name: lookup\n    on: message_created\n    do:\n      - http:\n          url: https://partner.example/api\n          headers: {{ Authorization: \"{header}\" }}\n"
    )
}

#[test]
fn a_secret_from_a_variable_that_is_not_set_is_a_load_error_naming_it() {
    let text = with_secret(
        "{ env: SWITCHBOARD_TEST_NEVER_SET_7 }",
        "Bearer {{ secrets.partner_key }}",
    );
    let ruleset = load_str("w.yaml", &text).expect("the file itself is fine");
    let out = ruleset.read_secrets().unwrap_err().to_string();
    assert!(
        out.contains("secret `partner_key`: the environment variable SWITCHBOARD_TEST_NEVER_SET_7 is not set")
            && out.contains("--> w.yaml:3:16"),
        "{out}"
    );
    std::env::set_var("SWITCHBOARD_TEST_SET_8", "pk-from-env-8");
    let text = with_secret("{ env: SWITCHBOARD_TEST_SET_8 }", "x");
    let values = load_str("w.yaml", &text).unwrap().read_secrets().unwrap();
    assert_eq!(values.get("partner_key"), Some("pk-from-env-8"));
}

#[test]
fn a_secret_file_is_read_next_to_the_workflow_and_a_missing_one_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("flows");
    std::fs::create_dir_all(wf.join("keys")).unwrap();
    std::fs::write(
        wf.join("partner.yaml"),
        with_secret("{ file: keys/partner }", "Bearer {{ secrets.partner_key }}"),
    )
    .unwrap();
    let out = load_dir(&wf)
        .unwrap()
        .read_secrets()
        .unwrap_err()
        .to_string();
    assert!(
        out.contains("secret `partner_key`: cannot read the file")
            && out.contains(&wf.join("keys/partner").display().to_string())
            && out.contains("partner.yaml:3:16"),
        "{out}"
    );
    // Read relative to the workflow file, trailing newline trimmed.
    std::fs::write(wf.join("keys/partner"), "pk-from-file\n").unwrap();
    let values = load_dir(&wf).unwrap().read_secrets().unwrap();
    assert_eq!(values.get("partner_key"), Some("pk-from-file"));
    // An empty file is refused, a huge one too (without reading it whole).
    std::fs::write(wf.join("keys/partner"), "\n").unwrap();
    let out = load_dir(&wf)
        .unwrap()
        .read_secrets()
        .unwrap_err()
        .to_string();
    assert!(
        out.contains("secret `partner_key`") && out.contains("is empty"),
        "{out}"
    );
    std::fs::write(wf.join("keys/partner"), vec![b'k'; 70_000]).unwrap();
    let out = load_dir(&wf)
        .unwrap()
        .read_secrets()
        .unwrap_err()
        .to_string();
    assert!(out.contains("larger than"), "{out}");
}

#[test]
fn an_unknown_secret_in_a_template_is_a_load_error_with_a_suggestion() {
    let text = with_secret(
        "{ env: PARTNER_API_KEY }",
        "Bearer {{ secrets.partner_kye }}",
    );
    let out = errors(&text);
    assert!(
        out.contains("no secret named `partner_kye` in `secrets:`")
            && out.contains("did you mean `partner_key`?")
            && out.contains("--> w.yaml:10:"),
        "{out}"
    );
    // The whole map (or a name computed at run time) cannot be checked: refused.
    let out = errors(&with_secret("{ env: PARTNER_API_KEY }", "{{ secrets }}"));
    assert!(
        out.contains("`secrets` must be followed by a name"),
        "{out}"
    );
    let out = errors(&with_secret(
        "{ env: PARTNER_API_KEY }",
        "{{ secrets[vars.k] }}",
    ));
    assert!(
        out.contains("`secrets` must be followed by a name"),
        "{out}"
    );
    // Bracketed names are checked like dotted ones.
    assert!(load_str(
        "w.yaml",
        &with_secret("{ env: PARTNER_API_KEY }", "{{ secrets['partner_key'] }}")
    )
    .is_ok());
}

#[test]
fn a_secret_source_is_env_or_file() {
    let out = errors(&with_secret("{ vault: x }", "x"));
    assert!(
        out.contains("secret `partner_key` must be `{ env: NAME }` or `{ file: PATH }`")
            && out.contains("--> w.yaml:3:"),
        "{out}"
    );
    let out = errors(&with_secret("{ env: A, file: b }", "x"));
    assert!(
        out.contains("must be `{ env: NAME }` or `{ file: PATH }`"),
        "{out}"
    );
    let out = errors(&with_secret("PARTNER_API_KEY", "x"));
    assert!(
        out.contains("must be `{ env: NAME }` or `{ file: PATH }`"),
        "{out}"
    );
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

/// A workflows folder with `files` (path, text) written in it.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
    dir
}

const SUPPORT: &str = r#"version: 1
kind: library
vars:
  greeting: Hello
  team: support
conditions:
  question:
    - event.content: { ends_with: "?" }
actions:
  greet:
    - reply: "{{ vars.greeting }}, {{ args.name }}"
    - call: sign
  sign:
    - log: "signed by {{ vars.team }}"
"#;

const MAIN: &str = r#"version: 1
include: [common/support.yaml]
vars:
  greeting: Hi
rules:
  - name: welcome
    on: message_created
    if:
      - use: question
    do:
      - call: greet
        with: { name: "{{ sender.name }}" }
"#;

#[test]
fn include_brings_in_names_and_the_including_files_own_win() {
    let dir = folder(&[("common/support.yaml", SUPPORT), ("main.yaml", MAIN)]);
    let rs = load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // The library is not a workflow of its own.
    assert_eq!(rs.rule_ids().collect::<Vec<_>>(), ["main/welcome"]);
    let rule = rs.rule("main/welcome").unwrap();
    assert_eq!(rule.vars["greeting"], "Hi", "the including file's var wins");
    assert_eq!(rule.vars["team"], "support", "the library's var comes in");
    let call = rule.actions[0].call.as_ref().expect("a call");
    assert_eq!(call.name, "greet");
    assert_eq!(call.actions.len(), 2);
    let inner = call.actions[1].call.as_ref().expect("a nested call");
    assert_eq!(inner.name, "sign");
}

#[test]
fn an_include_cycle_is_a_load_error_in_the_file_that_closes_it() {
    let a =
        "version: 1\ninclude: [lib/b.yaml]\nrules:\n  - name: r\n    on: room_added\n    do: []\n";
    let b = "version: 1\nkind: library\ninclude:\n  - ../a.yaml\n";
    let dir = folder(&[("a.yaml", a), ("lib/b.yaml", b)]);
    let text = load_dir(dir.path()).unwrap_err().to_string();
    let at = format!("{}:4:5", dir.path().join("lib/b.yaml").display());
    assert!(text.contains("include cycle"), "{text}");
    assert!(text.contains(&at), "points at the include in b: {text}");
    assert!(text.contains("a.yaml → lib/b.yaml → a.yaml"), "{text}");
}

#[test]
fn a_call_to_itself_through_another_is_a_load_error() {
    let text = r#"version: 1
actions:
  ping: [ { call: pong } ]
  pong:
    - log: x
    - call: ping
rules:
  - name: r
    on: room_added
    do: [ { call: ping } ]
"#;
    let out = errors(text);
    assert!(out.contains("calls itself: ping → pong → ping"), "{out}");
    assert!(out.contains("w.yaml:6:13"), "{out}");
}

#[test]
fn an_unknown_action_list_suggests_the_name_meant() {
    let main = MAIN.replace("call: greet", "call: gret");
    let dir = folder(&[("common/support.yaml", SUPPORT), ("main.yaml", &main)]);
    let text = load_dir(dir.path()).unwrap_err().to_string();
    let at = format!("{}:11:15", dir.path().join("main.yaml").display());
    assert!(text.contains("no action list named `gret`"), "{text}");
    assert!(text.contains(&at), "{text}");
    assert!(text.contains("did you mean `greet`?"), "{text}");
}

#[test]
fn an_error_inside_a_library_points_at_the_library() {
    let support = SUPPORT.replace("- log:", "- lgo:");
    let dir = folder(&[("common/support.yaml", &support), ("main.yaml", MAIN)]);
    let err = load_dir(dir.path()).unwrap_err();
    let text = err.to_string();
    let at = format!("{}:14:7", dir.path().join("common/support.yaml").display());
    assert!(text.contains("unknown action `lgo`"), "{text}");
    assert!(text.contains(&at), "{text}");
    assert_eq!(err.len(), 1, "reported once, not once per includer: {text}");
}

#[test]
fn an_include_outside_the_folder_is_a_load_error() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), SUPPORT).unwrap();
    let cases = [
        "../x.yaml".to_owned(),
        outside.path().join("x.yaml").display().to_string(),
        "link.yaml".to_owned(),
    ];
    for target in cases {
        let main = MAIN.replace("common/support.yaml", &target);
        let dir = folder(&[("main.yaml", &main)]);
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path().join("x.yaml"), dir.path().join("link.yaml"))
            .unwrap();
        let text = load_dir(dir.path()).unwrap_err().to_string();
        let at = format!("{}:2:11", dir.path().join("main.yaml").display());
        assert!(
            text.contains("outside the workflows folder"),
            "{target}: {text}"
        );
        assert!(text.contains(&at), "{target}: {text}");
    }
}

#[test]
fn a_library_has_no_rules_and_a_missing_include_is_named() {
    let lib = "version: 1\nkind: library\nrules: []\n";
    let dir = folder(&[("lib.yaml", lib)]);
    let text = load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("a library (`kind: library`) has no `rules`"),
        "{text}"
    );

    let main = MAIN.replace("common/support.yaml", "common/suport.yaml");
    let dir = folder(&[("common/support.yaml", SUPPORT), ("main.yaml", &main)]);
    let text = load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        text.contains("no workflow file `common/suport.yaml`"),
        "{text}"
    );
    assert!(
        text.contains("did you mean `common/support.yaml`?"),
        "{text}"
    );

    // Checked on its own even when nothing includes it.
    let dir = folder(&[("lib.yaml", "version: 1\nkind: libary\n")]);
    let text = load_dir(dir.path()).unwrap_err().to_string();
    assert!(text.contains("`kind` is `workflow` or `library`"), "{text}");
}

#[test]
fn calls_nest_up_to_a_bound_and_misplaced_call_keys_are_named() {
    let chain = |lists: usize| {
        let mut text = String::from("version: 1\nactions:\n");
        for i in 0..lists {
            match i + 1 < lists {
                true => text.push_str(&format!("  l{i}: [ {{ call: l{} }} ]\n", i + 1)),
                false => text.push_str(&format!("  l{i}: [ {{ log: deep }} ]\n")),
            }
        }
        text + "rules:\n  - name: r\n    on: room_added\n    do: [ { call: l0 } ]\n"
    };
    let deepest = switchboard_workflow::compile::MAX_CALL_DEPTH;
    assert!(load_str("w.yaml", &chain(deepest)).is_ok());
    let out = errors(&chain(deepest + 1));
    assert!(
        out.contains("calls nest 17 lists deep from `actions.l0` (at most 16)"),
        "{out}"
    );

    let text = r#"version: 1
actions:
  greet: [ { reply: hi } ]
rules:
  - name: r
    on: message_created
    do:
      - call: greet
        as: result
      - reply: hi
        with: { name: x }
      - call: greet
        reply: hi
"#;
    let out = errors(text);
    for expected in [
        "`as` does not apply to a `call`",
        "--> w.yaml:9:9",
        "`with` goes with `call`",
        "--> w.yaml:11:9",
        "one action per list item: `reply` and `call` are both here",
    ] {
        assert!(out.contains(expected), "no `{expected}` in:\n{out}");
    }
}

const HOOK_RULE: &str = "  - name: deploy-failed\n    on: webhook\n    webhook: deploys\n    if:\n      - event.body.status: failed\n    do:\n      - log: \"{{ event.body.service }}\"\n";

#[test]
fn webhooks_compile_with_their_auth_and_rules_only_see_their_own_hook() {
    let text = format!(
        "version: 1\nwebhooks:\n  deploys:\n    secret: {{ env: DEPLOY_HOOK_SECRET }}\n    auth: hmac-sha256\n    signature_header: X-Signature\n  alerts:\n    secret: {{ file: /run/secrets/alerts }}\n    auth: token\n  plain:\n    secret: {{ env: PLAIN }}\nrules:\n{HOOK_RULE}"
    );
    let rs = load_str("w.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let hooks = rs.webhooks();
    assert_eq!(
        hooks.keys().map(String::as_str).collect::<Vec<_>>(),
        ["alerts", "deploys", "plain"]
    );
    use switchboard_workflow::rule::WebhookAuth;
    use switchboard_workflow::secrets::SecretSource;
    let deploys = &hooks["deploys"];
    assert_eq!(deploys.auth, WebhookAuth::HmacSha256);
    assert_eq!(deploys.signature_header, "x-signature");
    assert_eq!(
        deploys.secret,
        SecretSource::Env("DEPLOY_HOOK_SECRET".into())
    );
    assert_eq!(hooks["alerts"].auth, WebhookAuth::Token);
    assert_eq!(
        hooks["alerts"].secret,
        SecretSource::File("/run/secrets/alerts".into())
    );
    // The defaults: HMAC-SHA256 in GitHub's header.
    assert_eq!(hooks["plain"].auth, WebhookAuth::HmacSha256);
    assert_eq!(hooks["plain"].signature_header, "x-hub-signature-256");
    let rule = rs.rule("w/deploy-failed").expect("the rule");
    assert_eq!(rule.on, ["webhook"]);
    assert_eq!(rule.webhook.as_deref(), Some("deploys"));
    assert_eq!(rs.rules_for("webhook").count(), 1);
}

#[test]
fn webhook_mistakes_are_load_errors() {
    // A rule naming a hook nobody defines: did you mean.
    let text =
        format!("version: 1\nwebhooks:\n  deploy:\n    secret: {{ env: S }}\nrules:\n{HOOK_RULE}");
    let out = errors(&text);
    assert!(
        out.contains("no webhook named `deploys`") && out.contains("did you mean `deploy`?"),
        "{out}"
    );
    assert!(out.contains("--> w.yaml:8:14"), "{out}");
    // `on: webhook` without `webhook:`, and `webhook:` on another event.
    let out = errors("version: 1\nwebhooks:\n  h:\n    secret: { env: S }\nrules:\n  - name: a\n    on: webhook\n    do: [ { log: x } ]\n  - name: b\n    on: message_created\n    webhook: h\n    do: [ { log: x } ]\n");
    assert!(out.contains("`on: webhook` needs `webhook: NAME`"), "{out}");
    assert!(
        out.contains("`webhook` only applies to `on: webhook`\n  --> w.yaml:11:14"),
        "{out}"
    );
    // A hook without a secret, a bad auth, an unknown key, a secret of neither kind.
    let out = errors("version: 1\nwebhooks:\n  nosecret:\n    auth: token\n  badauth:\n    secret: { env: S }\n    auth: hmac\n  typo:\n    secret: { env: S }\n    signature_hedaer: X\n  weird:\n    secret: { vault: x }\n  'bad/name':\n    secret: { env: S }\nrules: []\n");
    for expected in [
        "webhook `nosecret` has no `secret`",
        "--> w.yaml:3:3",
        "`auth` must be one of hmac-sha256, token\n  --> w.yaml:7:11",
        "unknown key `signature_hedaer` in webhook `typo`",
        "did you mean `signature_header`?",
        "`secret` is `{ env: NAME }` or `{ file: PATH }`",
        "webhook name `bad/name`",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // `signature_header` is for HMAC only.
    let out = errors("version: 1\nwebhooks:\n  t:\n    secret: { env: S }\n    auth: token\n    signature_header: X-Sig\nrules: []\n");
    assert!(
        out.contains("`signature_header` only applies to `auth: hmac-sha256`"),
        "{out}"
    );
}

#[test]
fn a_webhook_is_defined_once_across_files_and_usable_from_any() {
    use std::path::Path;
    let hooks = "version: 1\nwebhooks:\n  deploys:\n    secret: { env: S }\nrules: []\n";
    let rules = format!("version: 1\nrules:\n{HOOK_RULE}");
    let rs = switchboard_workflow::load_sources(&[
        (Path::new("hooks.yaml"), hooks),
        (Path::new("rules.yaml"), &rules),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(rs.webhooks().contains_key("deploys"));
    let twice = switchboard_workflow::load_sources(&[
        (Path::new("a.yaml"), hooks),
        (Path::new("b.yaml"), hooks),
    ])
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        twice.contains("webhook `deploys` is defined twice (also in a.yaml)"),
        "{twice}"
    );
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
