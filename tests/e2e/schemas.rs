//! The committed JSON Schemas must be what the loader's types generate, and
//! the reference must document every registered action.

#[test]
fn the_reference_has_a_row_for_every_action() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workflow-reference.md");
    let reference = std::fs::read_to_string(&path).unwrap();
    let missing: Vec<&str> = switchboard_workflow::actions::names()
        .filter(|name| !reference.contains(&format!("\n| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/workflow-reference.md has no row in its action table for {missing:?}"
    );
}

#[test]
fn committed_schema_is_current() {
    check_current(
        switchboard_workflow::json_schema(),
        "workflow.schema.json",
        "",
    );
}

#[test]
fn committed_test_schema_is_current() {
    check_current(
        switchboard::dryrun::spec::json_schema(),
        "workflow-test.schema.json",
        " --tests",
    );
}

fn check_current(schema: serde_json::Value, name: &str, flag: &str) {
    let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(name);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/{name} is stale; regenerate it with\n  cargo run -- schema{flag} > schemas/{name}"
    );
}

#[test]
fn shipped_workflows_point_editors_at_the_schema() {
    for entry in std::fs::read_dir("workflows").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let schema = match name.ends_with(".test.yaml") {
            true => "workflow-test.schema.json",
            false => "workflow.schema.json",
        };
        assert!(
            text.starts_with(&format!(
                "# yaml-language-server: $schema=../schemas/{schema}"
            )),
            "{} lacks the schema comment",
            path.display()
        );
    }
}

/// Every complete workflow (a YAML block starting `version: 1`) in the
/// reference's "Conversations" section loads, as users copy them.
#[test]
fn the_conversation_examples_of_the_reference_load() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/workflow-reference.md");
    let reference = std::fs::read_to_string(&path).unwrap();
    let section = reference
        .split("\n## Conversations\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Conversations section");
    let examples: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.starts_with("version: 1"))
        .collect();
    assert!(examples.len() >= 2, "{examples:?}");
    for (i, example) in examples.iter().enumerate() {
        let ruleset = switchboard_workflow::load_str("example.yaml", example)
            .unwrap_or_else(|e| panic!("example {} does not load:\n{e}\n{example}", i + 1));
        let pauses = ruleset.rules()[0]
            .actions
            .iter()
            .filter(|a| a.pause.is_some())
            .count();
        assert!(pauses >= 1, "example {} has no pause", i + 1);
    }
}
