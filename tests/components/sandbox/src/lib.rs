//! Test component `sandbox`: reports what the sandbox lets a function see of
//! the host — environment variables, program arguments, and the result of
//! reading `/`, `.` and `/etc/passwd` — as JSON. Used by the end-to-end
//! tests to prove functions see no host filesystem and no host environment.

use aura_sdk::serde_json::json;
use aura_sdk::{Request, Response};

fn handle(_req: Request) -> Response {
    let outcome = |result: std::io::Result<String>| match result {
        Ok(found) => json!({ "ok": found }),
        Err(err) => json!({ "error": err.to_string() }),
    };
    let list = |dir: &str| {
        std::fs::read_dir(dir).map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(",")
        })
    };
    Response::json(
        200,
        &json!({
            "env": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
            "args": std::env::args().collect::<Vec<_>>(),
            "root": outcome(list("/")),
            "cwd": outcome(list(".")),
            "passwd": outcome(std::fs::read_to_string("/etc/passwd")),
        }),
    )
}

aura_sdk::http_function!(handle);
