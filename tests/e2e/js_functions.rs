//! Functions in TypeScript and JavaScript: the examples (built by
//! `scripts/test.sh` with `aura build`) deployed and called, and projects
//! made by `aura init` in a folder outside the repository, built with the
//! examples' pinned tools.

use crate::support::{Aura, Upstream, encode};
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A built TypeScript example's component.
fn example(name: &str) -> Vec<u8> {
    let path = examples().join(name).join(format!("dist/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err}. Build the TypeScript examples first: `scripts/test.sh` does, or \
             `cd examples && npm ci`, then `aura build` in each",
            path.display()
        )
    })
}

fn invocation_id(response: &reqwest::Response) -> String {
    response.headers()["x-aura-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_typescript_function_answers_logs_streams_and_fetches_only_when_granted() {
    let aura = Aura::start();
    let (status, body) = aura
        .deploy_bytes("ts-hello", example("ts-hello"), json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    // A large component answers first from baseline code...
    assert_eq!(body["compile"]["code"], "baseline", "{body}");
    let response = aura
        .http
        .get(aura.at("/fn/ts-hello/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = invocation_id(&response);
    assert_eq!(response.text().await.unwrap(), "Hello from TypeScript!\n");
    // ...then from optimized code compiled in the background.
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    while aura.metric("aura_components_compiled_total").await == 0 {
        assert!(Instant::now() < deadline, "the optimized code never came");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let response = aura
        .http
        .get(aura.at("/fn/ts-hello/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "Hello from TypeScript!\n");
    let record = aura.invocation_log("ts-hello", &id).await;
    assert!(
        record["stdout"].as_str().unwrap().contains("GET /"),
        "console.log reaches the log: {record}"
    );

    // Streamed: the first line arrives well before the last is written.
    let started = Instant::now();
    let response = aura
        .http
        .get(aura.at("/fn/ts-hello/stream?n=5"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        first.get_or_insert_with(|| started.elapsed());
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let (first, all) = (first.unwrap(), started.elapsed());
    assert_eq!(text, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    assert!(
        all.saturating_sub(first).as_millis() >= 150,
        "the lines came as they were made (first after {first:?}, all after {all:?})"
    );

    // fetch: refused without a network grant, with the grant in the log.
    let upstream = Upstream::start().await;
    let target = format!("http://127.0.0.1:{}/hello", upstream.port);
    let fetch = |aura: &Aura| {
        aura.http
            .get(aura.at(&format!("/fn/ts-hello/fetch?url={}", encode(&target))))
            .send()
    };
    let response = fetch(&aura).await.unwrap();
    assert_eq!(response.status(), 502);
    let id = invocation_id(&response);
    let record = aura.invocation_log("ts-hello", &id).await;
    assert!(
        record["stderr"]
            .as_str()
            .unwrap()
            .contains("is not in the function's network grants"),
        "{record}"
    );
    assert_eq!(upstream.hits(), 0);
    let grant = json!({"grants": {"network": [format!("127.0.0.1:{}", upstream.port)]}});
    let (status, body) = aura
        .deploy_bytes("ts-hello", example("ts-hello"), grant)
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["compile"]["code"], "cached",
        "the same bytes reuse the optimized code: {body}"
    );
    let response = fetch(&aura).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({"status": 200, "body": "upstream says hi"}));
}

#[tokio::test]
async fn a_typescript_function_reads_and_writes_records_under_their_rules() {
    let aura = Aura::start();
    // `aura deploy` in the project: its aura.toml, schema and build output.
    let output = aura.cli_in(&examples().join("ts-todo"), &["deploy"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = |path: &str| aura.at(&format!("/fn/ts-todo{path}"));
    let created = aura
        .http
        .post(url("/todos"))
        .json(&json!({"title": "milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let todo: Value = created.json().await.unwrap();
    assert_eq!(
        (todo["title"].as_str(), todo["done"].as_bool()),
        (Some("milk"), Some(false))
    );
    let id = todo["id"].as_str().unwrap();

    let changed: Value = aura
        .http
        .patch(url(&format!("/todos/{id}")))
        .json(&json!({"done": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["done"], true);
    let page: Value = aura
        .http
        .get(url("/todos?filter=done%20%3D%20true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"][0]["id"], id, "{page}");
    // The record is the collection's, as REST sees it.
    let (_, over_rest) = aura
        .admin_get(&format!("/api/collections/todos/records/{id}"))
        .await;
    assert_eq!(over_rest["done"], true);

    let invalid = aura
        .http
        .post(url("/todos"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let deleted = aura
        .http
        .delete(url(&format!("/todos/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = aura
        .http
        .get(url(&format!("/todos/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");

    // `/me` is the user the request acts for.
    let anonymous = aura.http.get(url("/me")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (token, id) = crate::storage::user(&aura, "ts@example.com").await;
    let me: Value = aura
        .http
        .get(url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["id"].as_str(), me["email"].as_str()),
        (Some(id.as_str()), Some("ts@example.com"))
    );
}

/// `aura init --lang ts|js` writes a project that needs nothing of the
/// checkout: built with the pinned tools (linked from the examples'
/// install), deployed and called.
#[tokio::test]
async fn init_projects_in_typescript_and_javascript_build_and_deploy() {
    let aura = Aura::start();
    let work = tempfile::tempdir().unwrap();
    for (lang, name) in [("ts", "hello-ts"), ("js", "hello-js")] {
        let project = work.path().join(name);
        let output = aura.cli(&[
            "init",
            name,
            "--lang",
            lang,
            "--dir",
            project.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let out = String::from_utf8_lossy(&output.stdout);
        assert!(out.contains("npm install && aura build"), "{out}");
        let text = |path: &str| std::fs::read_to_string(project.join(path)).unwrap();
        assert!(!text("package.json").contains(env!("CARGO_MANIFEST_DIR")));
        assert!(text("package.json").contains("\"@bytecodealliance/componentize-js\": \"0.23.0\""));
        assert!(
            project
                .join(".aura/types/interfaces/aura-platform-db.d.ts")
                .is_file()
        );
        // Without the pinned tools the build says how to get them.
        let missing = aura.cli_in(&project, &["build"]);
        assert!(!missing.status.success());
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("run `npm install`"),
            "{}",
            String::from_utf8_lossy(&missing.stderr)
        );
        link_tools(&project);

        build_deploy_and_greet(&aura, &project, name).await;
    }
    // A TypeScript project type-checks against the platform declarations,
    // raw and through the wrappers.
    std::fs::write(
        work.path().join("hello-ts/src/platform.ts"),
        "import * as db from \"@aura/function/db\";\n\
         import * as secrets from \"@aura/function/secrets\";\n\
         import * as events from \"@aura/function/events\";\n\
         import * as auth from \"@aura/function/auth\";\n\
         import * as storage from \"@aura/function/storage\";\n\
         import { list } from \"aura:platform/db@0.1.0\";\n\
         export const page: db.Page<{ id: string }> = db.list(\"todos\", { perPage: 5 });\n\
         export const uses = [secrets.get, events.publish, auth.caller, storage.put, list];\n",
    )
    .unwrap();
    let tsc = examples().join("node_modules/.bin/tsc");
    let checked = std::process::Command::new(&tsc)
        .args(["--noEmit", "-p", "."])
        .current_dir(work.path().join("hello-ts"))
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // A platform import without its grant is caught at build.
    let project = work.path().join("hello-ts");
    std::fs::write(
        project.join("src/index.ts"),
        "import { get } from \"aura:platform/secrets@0.1.0\";\n\
         addEventListener(\"fetch\", (event: FetchEvent) => event.respondWith(new Response(get(\"KEY\") ?? \"none\")));\n",
    )
    .unwrap();
    let built = aura.cli_in(&project, &["build"]);
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(!built.status.success());
    assert!(
        log.contains("aura:platform/secrets@0.1.0 needs `secrets`"),
        "{log}"
    );
    let not_built = aura.cli_in(work.path(), &["deploy"]);
    assert!(!not_built.status.success());
}

/// The storage wrapper, in a function built from an `aura init` project:
/// objects written and read back as bytes, listed, and a missing one is a
/// `PlatformError` with its status.
#[tokio::test]
async fn a_typescript_function_stores_objects_through_the_storage_wrapper() {
    let aura = Aura::start();
    let (status, body) = aura
        .admin_post("/api/admin/storage/buckets", json!({"name": "files"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("files-ts");
    let output = aura.cli(&["init", "files-ts", "--dir", project.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    link_tools(&project);
    let manifest = std::fs::read_to_string(project.join("aura.toml")).unwrap();
    std::fs::write(
        project.join("aura.toml"),
        manifest.replace("[grants]", "[grants]\nbuckets = { files = \"read-write\" }"),
    )
    .unwrap();
    std::fs::write(
        project.join("src/index.ts"),
        r#"import * as storage from "@aura/function/storage";
import { PlatformError } from "@aura/function/storage";

addEventListener("fetch", (event: FetchEvent) => event.respondWith(handle(event.request)));

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const key = url.pathname.slice(1);
  try {
    if (request.method === "PUT") {
      const body = new Uint8Array(await request.arrayBuffer());
      return json(storage.put("files", key, body, request.headers.get("content-type") ?? undefined));
    }
    if (url.searchParams.has("list")) return json(storage.list("files", { prefix: key }));
    const { info, bytes } = storage.get("files", key);
    return new Response(bytes, { headers: { "content-type": info.contentType ?? "", "x-size": String(info.size) } });
  } catch (err) {
    if (err instanceof PlatformError) return json({ code: err.code }, err.status);
    throw err;
  }
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
}
"#,
    )
    .unwrap();
    let built = aura.cli_in(&project, &["build"]);
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{log}");
    assert!(log.contains("aura:platform/storage@0.1.0"), "{log}");
    let deployed = aura.cli_in(&project, &["deploy"]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );

    let url = |path: &str| aura.at(&format!("/fn/files-ts/{path}"));
    // Bigger than one read of the wrapper (1 MiB), bytes that are not UTF-8.
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    let put: Value = aura
        .http
        .put(url("notes/a.bin"))
        .header("content-type", "application/x-test")
        .body(data.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (put["key"].as_str(), put["size"].as_u64()),
        (Some("notes/a.bin"), Some(1_500_000)),
        "{put}"
    );
    let got = aura.http.get(url("notes/a.bin")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "application/x-test");
    assert_eq!(got.headers()["x-size"], "1500000");
    assert!(
        got.bytes().await.unwrap() == data,
        "the same bytes come back"
    );
    let listing: Value = aura
        .http
        .get(url("notes/?list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["objects"][0]["key"], "notes/a.bin", "{listing}");
    assert_eq!(
        listing["objects"][0]["size"], 1_500_000,
        "sizes are numbers: {listing}"
    );
    let missing = aura.http.get(url("notes/none")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"code": "not-found"})
    );
}

/// Runs `aura build` and `aura deploy` in an `aura init` project called
/// `name`, and checks the greeting of its template.
pub(crate) async fn build_deploy_and_greet(aura: &Aura, project: &Path, name: &str) {
    let built = aura.cli_in(project, &["build"]);
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{log}");
    assert!(log.contains(&format!("built dist/{name}.wasm")), "{log}");
    let deployed = aura.cli_in(project, &["deploy"]);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let answer = aura
        .http
        .get(aura.at(&format!("/fn/{name}/")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, format!("Hello from {name}!\n"));
}

/// The examples' installed tools, as the project's own `node_modules`.
fn link_tools(project: &Path) {
    std::os::unix::fs::symlink(
        examples().join("node_modules"),
        project.join("node_modules"),
    )
    .unwrap();
}
