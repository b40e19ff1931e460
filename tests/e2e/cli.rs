//! The `aura` CLI against a running server.

use crate::support::{Aura, assert_error, wasm_path};
use serde_json::{Value, json};

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "CLI failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn cli_deploys_lists_rolls_back_shows_logs_and_deletes() {
    let aura = Aura::start();
    let out = stdout(&aura.cli(&["deploy", &wasm_path("hello"), "--name", "greet"]));
    assert!(out.starts_with("deployed greet version 1"), "{out}");
    let out = stdout(&aura.cli(&[
        "deploy",
        &wasm_path("echo"),
        "--name",
        "greet",
        "--cpu-ms",
        "500",
    ]));
    assert!(out.starts_with("deployed greet version 2"), "{out}");
    // The same bytes and settings again add no version.
    let again = aura.cli(&[
        "deploy",
        &wasm_path("echo"),
        "--name",
        "greet",
        "--cpu-ms",
        "500",
    ]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("unchanged"));
    assert!(stdout(&again).starts_with("deployed greet version 2"));

    let out = stdout(&aura.cli(&["functions", "list"]));
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["greet", "2", "2", l.split_whitespace().last().unwrap()]),
        "{out}"
    );

    let out = stdout(&aura.cli(&["functions", "versions", "greet"]));
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.trim_start().starts_with("2  *")),
        "{out}"
    );

    let out = stdout(&aura.cli(&["functions", "rollback", "greet"]));
    assert_eq!(out.trim(), "greet: active version is now 1");
    let response = aura.http.get(aura.at("/fn/greet/hi")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello from Aura!\n");

    let out = stdout(&aura.cli(&["logs", "greet"]));
    assert!(out.contains("stdout| hello: GET /hi"), "{out}");
    assert!(out.contains("stderr| hello: done"), "{out}");

    let refused = aura.cli(&["functions", "delete", "greet"]);
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("delete function greet with its versions and logs in environment `default` needs confirmation: pass --yes"),
        "{refused:?}"
    );
    let out = stdout(&aura.cli(&["functions", "delete", "greet", "--yes"]));
    assert_eq!(out.trim(), "deleted greet");
    let out = stdout(&aura.cli(&["functions", "list", "--json"]));
    assert_eq!(out.trim(), r#"{"functions":[]}"#);
}

#[tokio::test]
async fn cli_errors_name_the_problem() {
    let aura = Aura::start();
    let output = aura.cli(&["functions", "rollback", "missing"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no function named `missing` is deployed (function_not_found)"),
        "{stderr}"
    );

    let output = aura.cli(&["deploy", "/nonexistent.wasm"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("reading /nonexistent.wasm"));

    // A wrong token or an unreachable server says where the token and the
    // URL came from.
    let output = aura.cli(&["--token", "wrong", "functions", "list"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("the admin token came from --token or AURA_TOKEN"),
        "{stderr}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let output = aura.cli(&["--url", &url, "functions", "list"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach Aura at {url} (the URL is --url or AURA_URL)"
        )),
        "{stderr}"
    );
}

/// `aura init` makes a project that builds with one command and deploys
/// with `aura deploy`, which reads its aura.toml.
#[tokio::test]
async fn init_makes_a_project_that_builds_and_deploys() {
    let aura = Aura::start();
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("greeter");
    let out = stdout(&aura.cli(&[
        "init",
        "greeter",
        "--lang",
        "rust",
        "--dir",
        project.to_str().unwrap(),
    ]));
    assert!(
        out.contains("cargo build --release --target wasm32-wasip2"),
        "{out}"
    );
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "aura.toml",
        ".gitignore",
        "README.md",
        "aura-sdk/Cargo.toml",
        "aura-sdk/src/lib.rs",
        "wit/world.wit",
        "wit/deps/http/http.wit",
    ] {
        assert!(project.join(file).exists(), "{file}");
    }
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("aura-sdk = { path = \"aura-sdk\" }")
            && !manifest.contains(env!("CARGO_MANIFEST_DIR")),
        "the SDK is the project's own copy: {manifest}"
    );
    let again = aura.cli(&["init", "greeter", "--dir", project.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing project is left alone");
    let bad = aura.cli(&["init", "Not_A_Name"]);
    assert!(!bad.status.success());

    // Its own target directory (the suite's is in use), kept between runs.
    let target = std::path::PathBuf::from(wasm_path("hello"))
        .ancestors()
        .nth(3)
        .unwrap()
        .join("init-scaffold");
    let built = std::process::Command::new("cargo")
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/greeter.wasm");
    let deployed = aura.cli_in(&project, &["deploy", wasm.to_str().unwrap()]);
    let out = stdout(&deployed);
    assert!(out.starts_with("deployed greeter version 1"), "{out}");
    let answer = aura.http.get(aura.at("/fn/greeter")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "Hello from greeter!\n");
}

#[tokio::test]
async fn aura_dashboard_prints_a_link_that_signs_in_once() {
    let aura = Aura::start();
    let output = aura.cli(&["dashboard"]);
    let printed = stdout(&output);
    let url = printed.lines().next().unwrap();
    let code = url
        .strip_prefix(&format!("{}/_/#code=", aura.url))
        .unwrap_or_else(|| panic!("not a dashboard link: {printed}"));
    assert!(printed.contains("works once"), "{printed}");
    let exchange = |code: String| {
        let aura = &aura;
        async move {
            aura.http
                .post(aura.at("/api/dashboard/exchange"))
                .json(&json!({ "code": code }))
                .send()
                .await
                .unwrap()
        }
    };
    let response = exchange(code.to_owned()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"], aura.token.as_str());
    assert_error(exchange(code.to_owned()).await, 400, "invalid_code").await;
    assert_error(exchange("0".repeat(64)).await, 400, "invalid_code").await;
    let response = aura
        .http
        .post(aura.at("/api/admin/dashboard/links"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn aura_types_reads_the_server_or_a_pulled_project() {
    let aura = Aura::start();
    let (status, _) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "todos", "fields": [
                {"name": "title", "type": "text", "required": true},
                {"name": "state", "type": "select", "values": ["open", "done"]}
            ]}),
        )
        .await;
    assert_eq!(status, 201);
    let live = stdout(&aura.cli(&["types"]));
    assert!(
        live.contains("export interface TodosRecord extends RecordBase {"),
        "{live}"
    );
    assert!(
        live.contains("  state: \"open\" | \"done\" | null;"),
        "{live}"
    );
    assert!(live.contains("  todos: TodosRecord;"), "{live}");

    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    stdout(&aura.cli(&["pull", dir]));
    let out = project.path().join("aura.d.ts");
    // From the folder alone: no server, no token.
    let offline = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["types", "--dir", dir, "--out", out.to_str().unwrap()])
        .env_remove("AURA_TOKEN")
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let written = std::fs::read_to_string(out).unwrap();
    assert_eq!(
        written.lines().skip(1).collect::<Vec<_>>(),
        live.lines().skip(1).collect::<Vec<_>>(),
        "the same types, whatever the source"
    );
}

/// A busy S3 port stops `aura serve` with the flag that moves it.
#[test]
fn a_busy_s3_port_names_the_flag_to_move_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["serve", "--addr", "127.0.0.1:0", "--s3-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("AURA_SIGN_IN_LINK", "never")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--s3-addr off"), "{stderr}");
}

/// `aura login` remembers the server and its token outside any project, so
/// commands work from any directory; a wrong token is not remembered.
#[tokio::test]
async fn login_remembers_the_server_for_every_directory() {
    let aura = Aura::start();
    aura.deploy("hello", "hello", serde_json::json!({})).await;
    let settings = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_aura"))
            .current_dir(elsewhere.path())
            .args(args)
            .env("AURA_CONFIG_DIR", settings.path())
            .env_remove("AURA_URL")
            .env_remove("AURA_TOKEN")
            .env_remove("AURA_ENV")
            .output()
            .unwrap()
    };
    let wrong = cli(&["login", &aura.url, "--token", "wrong"]);
    assert!(!wrong.status.success());
    assert!(
        !settings.path().join("token").exists(),
        "a refused token is not kept"
    );

    let out = stdout(&cli(&["login", &aura.url, "--token", &aura.token]));
    assert!(out.contains("logged in to"), "{out}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(settings.path().join("token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's alone");
    let out = stdout(&cli(&["functions", "list"]));
    assert!(out.contains("hello"), "{out}");

    assert!(stdout(&cli(&["logout"])).contains("logged out"));
    let output = cli(&["functions", "list"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("aura login"));
}
