//! Functions in Python: the example (built by `scripts/test.sh` with
//! `aura build` and componentize-py) deployed with no grants and called,
//! and an `aura init --lang python` project built outside the repository.

use crate::support::Aura;
use serde_json::{Value, json};
use std::path::PathBuf;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[tokio::test]
async fn a_python_function_with_no_grants_answers_and_logs() {
    let aura = Aura::start();
    let path = examples().join("py-hello/dist/py-hello.wasm");
    let wasm = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}. Build it first: `scripts/test.sh` does (a venv in examples/.venv with \
             examples/py-hello/requirements.txt, then `aura build` in examples/py-hello)",
            path.display()
        )
    });
    let (status, body) = aura.deploy_bytes("py-hello", wasm, json!({})).await;
    assert_eq!(status, 201, "{body}");
    let response = aura
        .http
        .get(aura.at("/fn/py-hello/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.text().await.unwrap(), "Hello from Python!\n");
    let record = aura.invocation_log("py-hello", &id).await;
    assert!(
        record["stdout"]
            .as_str()
            .unwrap()
            .contains("GET / (0 bytes)"),
        "print() reaches the log: {record}"
    );
    let echo: Value = aura
        .http
        .post(aura.at("/fn/py-hello/echo?x=1"))
        .body("a body")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echo,
        json!({"method": "POST", "path": "/echo", "query": {"x": "1"}, "body": "a body"})
    );
}

#[tokio::test]
async fn an_init_python_project_builds_deploys_and_has_its_imports_checked() {
    let aura = Aura::start();
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("hello-py");
    let output = aura.cli(&[
        "init",
        "hello-py",
        "--lang",
        "python",
        "--dir",
        project.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        std::fs::read_to_string(project.join("requirements.txt"))
            .unwrap()
            .contains("componentize-py==0.25.1")
    );
    // Without componentize-py the build says how to install it.
    let missing = aura.cli_in(&project, &["build"]);
    let log = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(log.contains("pip install -r requirements.txt"), "{log}");
    // The examples' componentize-py, as the project's own venv.
    std::os::unix::fs::symlink(examples().join(".venv"), project.join(".venv")).unwrap();
    crate::js_functions::build_deploy_and_greet(&aura, &project, "hello-py").await;

    // Importing a platform interface without its grant stops the build.
    let app = std::fs::read_to_string(project.join("app.py")).unwrap();
    std::fs::write(
        project.join("app.py"),
        app.replace(
            "from aura_http import",
            "from wit_world.imports import secrets\nfrom aura_http import",
        ),
    )
    .unwrap();
    let built = aura.cli_in(&project, &["build"]);
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(!built.status.success());
    assert!(
        log.contains("aura:platform/secrets@0.1.0 needs `secrets`"),
        "{log}"
    );
}
