//! `aura init NAME`: a function project that builds with one command and
//! deploys with `aura deploy`.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// Where the guest SDK of this build of Aura lives (a source checkout).
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// The files of a new Rust function project called `name`, using the SDK
/// at `sdk`.
fn files(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
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
aura-sdk = {{ path = "{sdk}" }}

# A project of its own, not a member of an enclosing workspace.
[workspace]

[profile.release]
opt-level = "s"
lto = true
strip = true
"#,
                sdk = sdk.display()
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
        (
            "aura.toml",
            format!(
                r#"# What `aura deploy` applies with the component.
[function]
name = "{name}"

[limits]
# memory_mb = 64
# cpu_ms = 1000

[grants]
# network = ["api.example.com:443"]       # outbound HTTP
# collections = {{ todos = "read-write" }} # aura:platform/db
# secrets = ["API_KEY"]                  # aura:platform/secrets

# [[schedules]]
# name = "{name}-nightly"
# cron = "0 3 * * *"
"#
            ),
        ),
        (".gitignore", "/target\n".to_owned()),
        (
            "README.md",
            format!(
                r#"# {name}

An Aura function.

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

/// Creates the project `name` in `dir` (default `./NAME`).
pub(super) fn run(
    name: &str,
    dir: Option<PathBuf>,
    sdk: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    crate::functions::validate_name(name).map_err(|err| anyhow::anyhow!("{err}"))?;
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", dir.display());
    }
    let sdk = match sdk {
        Some(sdk) => sdk,
        None if Path::new(BUILT_SDK).join("Cargo.toml").exists() => PathBuf::from(BUILT_SDK),
        None => anyhow::bail!(
            "where is the Aura guest SDK? pass --sdk PATH (the guest-sdk folder of an Aura checkout) or set AURA_SDK_PATH"
        ),
    };
    anyhow::ensure!(
        sdk.join("Cargo.toml").exists(),
        "{} is not the guest SDK (no Cargo.toml)",
        sdk.display()
    );
    let sdk = sdk.canonicalize()?;
    for (path, text) in files(name, &sdk) {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}
