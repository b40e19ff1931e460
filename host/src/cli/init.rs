//! `aura init NAME [--lang ts|js|python|rust]`: a self-contained function
//! project that builds with one command and deploys with `aura deploy`.
//! Nothing in it points into an Aura checkout: TypeScript, JavaScript and
//! Python projects pin their build tools and get `.aura/` (build script or
//! helper, declarations, WIT) from the binary; Rust projects get the guest
//! SDK's source and the WIT.

use super::build::{self, Lang, WIT};
use anyhow::Context as _;
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static RUST_SDK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../guest-sdk/src");

/// The npm tools a JavaScript project builds with (they run on Node 20).
const COMPONENTIZE_JS: &str = "0.23.0";
/// componentize-js loads it without declaring it (only as a dev
/// dependency), so a clean `npm ci` would leave it out.
const PREVIEW2_SHIM: &str = "0.25.0";
const ESBUILD: &str = "0.28.2";
const TYPESCRIPT: &str = "5.9.3";
/// The PyPI tool a Python project builds with.
const COMPONENTIZE_PY: &str = "0.25.1";

/// Creates the project `name` in `dir` (default `./NAME`).
pub(super) fn run(name: &str, dir: Option<PathBuf>, lang: Lang) -> anyhow::Result<PathBuf> {
    crate::functions::validate_name(name).map_err(|err| anyhow::anyhow!("{err}"))?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", dir.display());
    }
    let files = match lang {
        Lang::TypeScript | Lang::JavaScript => js_files(name, lang),
        Lang::Python => python_files(name),
        Lang::Rust => rust_files(name),
    };
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    match lang {
        // The declarations are there for editors before the first build.
        Lang::TypeScript | Lang::JavaScript => build::write_support(&dir)?,
        Lang::Python => {
            build::write_python_support(&dir)?;
        }
        Lang::Rust => vendor_rust_sdk(&dir)?,
    }
    Ok(dir)
}

/// What to run next, for the message after `init`.
pub(super) fn next_steps(name: &str, dir: &Path, lang: Lang) -> String {
    let dir = dir.display();
    match lang {
        Lang::Rust => format!(
            "build:  cd {dir} && cargo build --release --target wasm32-wasip2\ndeploy: aura deploy target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        Lang::Python => format!(
            "build:  cd {dir} && python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && aura build\ndeploy: aura deploy"
        ),
        _ => format!("build:  cd {dir} && npm install && aura build\ndeploy: aura deploy"),
    }
}

fn manifest(name: &str, build: &str) -> String {
    format!(
        r#"# What `aura build` makes and `aura deploy` applies with the component.
[function]
name = "{name}"
{build}
[limits]
# memory_mb = 64
# cpu_ms = 1000

[grants]
# network = ["api.example.com:443"]       # outbound HTTP (fetch)
# collections = {{ todos = "read-write" }} # aura:platform/db
# secrets = ["API_KEY"]                  # aura:platform/secrets
# buckets = {{ avatars = "read-write" }}  # aura:platform/storage
# events = ["chat.*"]                    # aura:platform/events

# [[schedules]]
# name = "{name}-nightly"
# cron = "0 3 * * *"
"#
    )
}

fn js_files(name: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let ts = lang == Lang::TypeScript;
    let (entry, typescript) = if ts {
        (
            "src/index.ts",
            format!(",\n    \"typescript\": \"{TYPESCRIPT}\""),
        )
    } else {
        ("src/index.js", String::new())
    };
    let check = if ts {
        ",\n    \"check\": \"tsc --noEmit\""
    } else {
        ""
    };
    let mut files = vec![
        (
            "package.json",
            format!(
                r#"{{
  "name": "{name}",
  "private": true,
  "type": "module",
  "scripts": {{
    "build": "aura build"{check}
  }},
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "{COMPONENTIZE_JS}",
    "@bytecodealliance/preview2-shim": "{PREVIEW2_SHIM}",
    "esbuild": "{ESBUILD}"{typescript}
  }}
}}
"#
            ),
        ),
        (
            entry,
            format!(
                r#"// `{name}`: an Aura function. It answers HTTP requests sent to
// /fn/{name}, as a service worker answers fetch events; console.log goes
// to `aura logs {name}`.
addEventListener("fetch", (event{event_type}) => event.respondWith(handle(event.request)));

async function handle(request{request_type}){return_type} {{
  const url = new URL(request.url);
  console.log(request.method, url.pathname);
  if (request.method === "GET" && url.pathname === "/") {{
    return new Response("Hello from {name}!\n", {{ headers: {{ "content-type": "text/plain" }} }});
  }}
  return Response.json({{ error: {{ code: "not_found", message: `no route for ${{request.method}} ${{url.pathname}}` }} }}, {{ status: 404 }});
}}
"#,
                event_type = if ts { ": FetchEvent" } else { "" },
                request_type = if ts { ": Request" } else { "" },
                return_type = if ts { ": Promise<Response>" } else { "" },
            ),
        ),
        (
            "aura.toml",
            manifest(
                name,
                &format!(
                    "\n[build]\nlang = \"{}\"\nentry = \"{entry}\"\nout = \"dist/{name}.wasm\"\n",
                    if ts { "ts" } else { "js" }
                ),
            ),
        ),
        (".gitignore", "node_modules/\ndist/\n.aura/\n".to_owned()),
        (
            "README.md",
            format!(
                r#"# {name}

An Aura function in {language}.

```sh
npm install                            # the pinned build tools, once
aura build                             # bundle + componentize into dist/{name}.wasm
aura deploy                            # deploy it (reads aura.toml)
curl http://127.0.0.1:8090/fn/{name}/  # call it
```

npm packages that run in a browser bundle in. Platform interfaces come as
`@aura/function/db`, `/secrets`, `/events` and `/auth` (parsed JSON,
errors as `PlatformError`), or raw as `aura:platform/db@0.1.0` and the rest
(declarations in `.aura/types`); each needs its grant in aura.toml.
"#,
                language = if ts { "TypeScript" } else { "JavaScript" }
            ),
        ),
    ];
    if ts {
        files.push((
            "tsconfig.json",
            r#"{
  "compilerOptions": {
    "target": "es2022",
    "module": "es2022",
    "moduleResolution": "bundler",
    "lib": ["es2022", "esnext.disposable", "webworker"],
    "types": [],
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "paths": { "@aura/function/*": ["./.aura/function/*"] }
  },
  "include": ["src", ".aura/types"]
}
"#
            .to_owned(),
        ));
    }
    files
}

fn python_files(name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "app.py",
            format!(
                r#""""`{name}`: an Aura function in Python. It answers HTTP requests sent
to /fn/{name}; print() goes to `aura logs {name}`.

Import every module at the top of a file: only those are in the component.
Platform interfaces are imports too (`from wit_world.imports import secrets`),
each with its grant in aura.toml; their errors raise componentize_py_types.Err.
"""

from aura_http import Request, Response, serve


def handle(request: Request) -> Response:
    print(request.method, request.path)
    if request.method == "GET" and request.path == "/":
        return Response.text("Hello from {name}!\n")
    return Response.json(
        {{"error": {{"code": "not_found", "message": f"no route for {{request.method}} {{request.path}}"}}}},
        status=404,
    )


IncomingHandler = serve(handle)
"#
            ),
        ),
        (
            "requirements.txt",
            format!("componentize-py=={COMPONENTIZE_PY}\n"),
        ),
        (
            "aura.toml",
            manifest(
                name,
                &format!(
                    "\n[build]\nlang = \"python\"\nentry = \"app.py\"\nout = \"dist/{name}.wasm\"\n"
                ),
            ),
        ),
        (
            ".gitignore",
            ".venv/\ndist/\n.aura/\n__pycache__/\n".to_owned(),
        ),
        (
            "README.md",
            format!(
                r#"# {name}

An Aura function in Python (CPython 3.14 inside the component).

```sh
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # the pinned build tool, once
aura build                             # componentize into dist/{name}.wasm
aura deploy                            # deploy it (reads aura.toml)
curl http://127.0.0.1:8090/fn/{name}/  # call it
```

`aura_http` (written into `.aura/` by `aura build`) gives `Request` and
`Response`; pure-Python packages installed in `.venv` are bundled.
"#
            ),
        ),
    ]
}

fn rust_files(name: &str) -> Vec<(&'static str, String)> {
    let crate_name = name.replace('-', "_");
    vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
aura-sdk = {{ path = "aura-sdk" }}

# A project of its own, not a member of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
"#
            ),
        ),
        (
            "src/lib.rs",
            format!(
                r#"//! `{name}`: an Aura function. It answers HTTP requests sent to
//! `/fn/{name}`.

use aura_sdk::{{Request, Response}};

fn handle(req: Request) -> Response {{
    match (req.method(), req.path()) {{
        ("GET", "/") => Response::text(200, "Hello from {name}!\n"),
        (method, path) => Response::text(404, format!("no route for {{method}} {{path}}\n")),
    }}
}}

aura_sdk::http_function!(handle);
"#
            ),
        ),
        ("aura.toml", manifest(name, "")),
        (".gitignore", "/target\n".to_owned()),
        (
            "README.md",
            format!(
                r#"# {name}

An Aura function in Rust, on the guest SDK in `aura-sdk/` (written by
`aura init`, with the WIT it builds against in `wit/`).

```sh
rustup target add wasm32-wasip2                       # once
cargo build --release --target wasm32-wasip2          # build
aura deploy target/wasm32-wasip2/release/{crate_name}.wasm   # deploy (reads aura.toml)
curl http://127.0.0.1:8090/fn/{name}                  # call
```
"#
            ),
        ),
    ]
}

/// The guest SDK crate as `aura-sdk/`, and the WIT it generates its
/// bindings from as `wit/` (its `path: "../wit"`).
fn vendor_rust_sdk(dir: &Path) -> anyhow::Result<()> {
    let sdk = dir.join("aura-sdk");
    std::fs::create_dir_all(sdk.join("src"))?;
    std::fs::write(
        sdk.join("Cargo.toml"),
        format!(
            r#"[package]
name = "aura-sdk"
description = "Guest SDK for Aura HTTP functions (from aura {version})"
edition = "2024"
rust-version = "1.95"
version = "{version}"
publish = false

[lib]
name = "aura_sdk"

[dependencies]
serde_json = "1"
wit-bindgen = {{ version = "0.63.0", default-features = false, features = ["macros", "realloc", "std"] }}
"#,
            version = env!("CARGO_PKG_VERSION")
        ),
    )?;
    RUST_SDK.extract(sdk.join("src"))?;
    std::fs::create_dir_all(dir.join("wit"))?;
    WIT.extract(dir.join("wit"))?;
    Ok(())
}
