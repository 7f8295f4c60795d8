//! The committed JSON Schema must be what the loader's types generate.

#[test]
fn committed_schema_is_current() {
    let generated =
        serde_json::to_string_pretty(&switchboard::workflow::json_schema()).unwrap() + "\n";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/workflow.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schemas/workflow.schema.json is stale; regenerate it with\n  cargo run -- schema > schemas/workflow.schema.json"
    );
}

#[test]
fn shipped_workflows_point_editors_at_the_schema() {
    for entry in std::fs::read_dir("workflows").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schemas/workflow.schema.json"),
            "{} lacks the schema comment",
            path.display()
        );
    }
}
