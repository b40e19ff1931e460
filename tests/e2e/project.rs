//! The project workflow: `aura push` applies a directory (aura.toml,
//! collections/, functions/) after showing its changes and asking before
//! losing data; `aura pull` writes it back, stably; every push records a
//! snapshot and `aura rollback` restores one's schema, functions and
//! schedules; `aura env promote` copies one environment into another.

use crate::support::{Aura, wasm};
use serde_json::{Value, json};
use std::path::Path;

const TODOS: &str = r#"{
  "name": "todos",
  "listRule": "",
  "viewRule": "",
  "createRule": "",
  "fields": [{ "name": "title", "type": "text", "required": true }]
}"#;

const PROJECT: &str = r#"
[functions.hello]
component = "functions/hello.wasm"

[functions.todo-api]
component = "functions/todo-api.wasm"
grants = { collections = { todos = "read-write" } }

[schedules.nightly]
function = "hello"
cron = "0 3 * * *"
"#;

fn project(dir: &Path, manifest: &str, todos: &str) {
    std::fs::create_dir_all(dir.join("functions")).unwrap();
    std::fs::create_dir_all(dir.join("collections")).unwrap();
    std::fs::write(dir.join("aura.toml"), manifest).unwrap();
    std::fs::write(dir.join("collections/todos.json"), todos).unwrap();
    for (name, component) in [("hello", "hello"), ("todo-api", "todo_api")] {
        std::fs::write(dir.join(format!("functions/{name}.wasm")), wasm(component)).unwrap();
    }
}

/// Runs the CLI; answers (success, stdout, stderr).
fn cli(aura: &Aura, args: &[&str]) -> (bool, String, String) {
    let out = aura.cli(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, by relative path.
fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    for sub in ["", "collections", "functions"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            if entry.path().is_file() {
                all.insert(
                    format!("{sub}/{}", entry.file_name().to_string_lossy()),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    all
}

async fn definition(aura: &Aura, env: &str) -> Value {
    let response = aura
        .http
        .get(aura.at("/api/admin/definition"))
        .bearer_auth(&aura.token)
        .header("x-aura-env", env)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn field_names(definition: &Value) -> Vec<String> {
    definition["collections"]["todos"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn push_pull_snapshots_rollback_and_promote() {
    let aura = Aura::start();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    project(&source, PROJECT, TODOS);

    // The first push creates everything, shows it, and needs no question.
    let (ok, _, stderr) = cli(&aura, &["push", source.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    for line in [
        "+ collection todos",
        "+ function hello",
        "+ function todo-api",
        "+ schedule nightly",
    ] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    let hello = aura.http.get(aura.at("/fn/hello")).send().await.unwrap();
    assert_eq!(hello.status(), 200);
    let created = aura
        .http
        .post(aura.at("/fn/todo-api/todos"))
        .json(&json!({"title": "kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let (ok, stdout, _) = cli(&aura, &["push", source.to_str().unwrap()]);
    assert!(ok && stdout.contains("up to date"), "{stdout}");

    // Pull, push the pulled files, pull again: nothing moves.
    let pulled = work.path().join("pulled");
    let again = work.path().join("again");
    assert!(cli(&aura, &["pull", pulled.to_str().unwrap()]).0);
    let (ok, stdout, _) = cli(&aura, &["push", pulled.to_str().unwrap()]);
    assert!(ok && stdout.contains("up to date"), "{stdout}");
    assert!(cli(&aura, &["pull", again.to_str().unwrap()]).0);
    assert_eq!(files(&pulled), files(&again));
    assert_eq!(files(&pulled)["functions/hello.wasm"], wasm("hello"));
    let first = definition(&aura, "default").await;

    // A change that loses data asks first, and without --yes changes nothing.
    let with_done = TODOS.replace(
        r#"[{ "name": "title", "type": "text", "required": true }]"#,
        r#"[{ "name": "title", "type": "text", "required": true }, { "name": "done", "type": "bool" }]"#,
    );
    let without_schedule = PROJECT.replace(
        "[schedules.nightly]\nfunction = \"hello\"\ncron = \"0 3 * * *\"\n",
        "",
    );
    let without_schedule = without_schedule.replace(
        "[functions.hello]\ncomponent = \"functions/hello.wasm\"\n",
        "[functions.hello]\ncomponent = \"functions/hello.wasm\"\nlimits = { cpu_ms = 250 }\n",
    );
    project(&source, &without_schedule, &with_done);
    let (ok, _, stderr) = cli(&aura, &["push", source.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("- schedule nightly") && stderr.contains("--yes"),
        "{stderr}"
    );
    assert_eq!(definition(&aura, "default").await, first);
    let (ok, _, stderr) = cli(&aura, &["push", "--yes", source.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let second = definition(&aura, "default").await;
    assert_eq!(field_names(&second), ["title", "done"]);
    assert_eq!(second["functions"]["hello"]["limits"]["cpu_ms"], 250);
    assert_eq!(second["schedules"], json!({}));

    // Rollback to the first push: schema, functions and schedules as they were, data kept.
    let (_, stdout, _) = cli(&aura, &["--json", "snapshots"]);
    let snapshots: Value = serde_json::from_str(&stdout).unwrap();
    let first_push = snapshots["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|s| s["label"] == "push")
        .unwrap()["id"]
        .to_string();
    let (ok, _, stderr) = cli(&aura, &["rollback", "--yes", &first_push]);
    assert!(ok, "{stderr}");
    assert_eq!(definition(&aura, "default").await, first);
    let todos: Value = aura
        .http
        .get(aura.at("/fn/todo-api/todos"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(todos.to_string().contains("kept"), "{todos}");

    // A function pushed away comes back with a rollback: snapshots keep components.
    let only_hello = "[functions.hello]\ncomponent = \"functions/hello.wasm\"\n";
    project(&source, only_hello, TODOS);
    assert!(cli(&aura, &["push", "--yes", source.to_str().unwrap()]).0);
    let gone = aura
        .http
        .get(aura.at("/fn/todo-api/todos"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(cli(&aura, &["rollback", "--yes", &first_push]).0);
    let back = aura
        .http
        .get(aura.at("/fn/todo-api/todos"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 200);

    // Promote copies schema and functions into another environment.
    assert!(cli(&aura, &["env", "create", "prod"]).0);
    let (ok, _, stderr) = cli(&aura, &["env", "promote", "default", "prod"]);
    assert!(ok, "{stderr}");
    assert_eq!(definition(&aura, "prod").await, first);
    let hello = aura
        .http
        .get(aura.at("/env/prod/fn/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    // ...but no data.
    let todos: Value = aura
        .http
        .get(aura.at("/env/prod/fn/todo-api/todos"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!todos.to_string().contains("kept"), "{todos}");
}

#[tokio::test]
async fn bad_definitions_are_refused_with_reasons() {
    let aura = Aura::start();
    let post = |body: Value| {
        aura.http
            .post(aura.at("/api/admin/definition"))
            .bearer_auth(&aura.token)
            .json(&body)
            .send()
    };
    let missing = post(json!({"functions": {"f": {"component": "00ff"}}}))
        .await
        .unwrap();
    crate::support::assert_error(missing, 400, "missing_components").await;
    let orphan = post(json!({"schedules": {"s": {"function": "nope", "cron": "* * * * *"}}}))
        .await
        .unwrap();
    crate::support::assert_error(orphan, 400, "invalid_definition").await;
    let unknown = post(json!({"functionz": {}})).await.unwrap();
    crate::support::assert_error(unknown, 400, "invalid_definition").await;
    let snapshot = aura
        .http
        .post(aura.at("/api/admin/snapshots/999/restore"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    crate::support::assert_error(snapshot, 404, "snapshot_not_found").await;
}
