//! `aura build [DIR]`: a TypeScript, JavaScript or Python project into a
//! component.
//!
//! The binary carries what a build needs besides the tools the project pins
//! (npm's componentize-js, PyPI's componentize-py): the WIT, and for
//! JavaScript the build script (`guest-sdk/js/build.mjs`) and the
//! TypeScript declarations of the platform interfaces, for Python the
//! request/response helper (`guest-sdk/python/aura_http.py`). Each build
//! writes them into the project's `.aura/`. The world names only the
//! platform interfaces the code imports (componentizers import everything a
//! world names, and Aura asks a grant for each): the JavaScript build script
//! reads them from the bundle, Python's are read from the sources here. The
//! imports are then checked against `aura.toml`'s grants, so a missing
//! grant shows up here rather than at deploy.

use super::manifest::{self, Project};
use crate::grants::Grants;
use anyhow::Context as _;
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

static JS_TOOLS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../guest-sdk/js");
static PY_TOOLS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../guest-sdk/python");
pub(super) static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../wit");

/// The languages `aura build` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    TypeScript,
    JavaScript,
    Python,
    Rust,
}

impl Lang {
    pub(super) fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "ts" | "typescript" => Ok(Self::TypeScript),
            "js" | "javascript" => Ok(Self::JavaScript),
            "python" | "py" => Ok(Self::Python),
            "rust" | "rs" => Ok(Self::Rust),
            other => anyhow::bail!("unknown language `{other}`: expected ts, js, python or rust"),
        }
    }

    /// The language a project is in: its manifest's, else its files'.
    fn of(dir: &Path, project: &Project) -> anyhow::Result<Self> {
        if let Some(lang) = &project.build.lang {
            return Self::parse(lang);
        }
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("tsconfig.json").is_file() {
            Ok(Self::TypeScript)
        } else if dir.join("package.json").is_file() {
            Ok(Self::JavaScript)
        } else if dir.join("app.py").is_file() {
            Ok(Self::Python)
        } else {
            anyhow::bail!(
                "{} holds no package.json, app.py or Cargo.toml: is it a function project (`aura init`)?",
                dir.display()
            )
        }
    }
}

/// What a build made.
#[derive(Debug, serde::Deserialize)]
struct Built {
    out: PathBuf,
    bytes: u64,
    ms: u64,
    imports: Vec<String>,
}

/// Builds the project in `dir`; answers the component's path.
pub(super) fn run(dir: &Path) -> anyhow::Result<PathBuf> {
    let project = manifest::project(dir)?;
    let lang = Lang::of(dir, &project)?;
    if lang == Lang::Rust {
        anyhow::bail!(
            "Rust projects build with cargo: cargo build --release --target wasm32-wasip2, then aura deploy target/wasm32-wasip2/release/NAME.wasm"
        );
    }
    let entry = project.build.entry.clone().unwrap_or_else(|| {
        PathBuf::from(match lang {
            Lang::TypeScript => "src/index.ts",
            Lang::Python => "app.py",
            _ => "src/index.js",
        })
    });
    anyhow::ensure!(
        dir.join(&entry).is_file(),
        "{} has no {} (set `entry` under [build] in aura.toml)",
        dir.display(),
        entry.display()
    );
    let out = output(dir, &project);
    eprintln!("building {} …", entry.display());
    let built = match lang {
        Lang::Python => build_python(dir, &entry, &out)?,
        _ => build_js(dir, &entry, &out)?,
    };
    let imports = if built.imports.is_empty() {
        "no platform interfaces".to_owned()
    } else {
        built.imports.join(", ")
    };
    eprintln!(
        "built {}: {:.1} MB in {:.1} s; imports {imports}",
        built.out.display(),
        built.bytes as f64 / 1e6,
        built.ms as f64 / 1e3
    );
    let missing = missing_grants(&built.imports, &project.grants);
    anyhow::ensure!(
        missing.is_empty(),
        "the function imports interfaces aura.toml does not grant: {} (add them under [grants])",
        missing.join("; ")
    );
    Ok(dir.join(out))
}

/// Bundles and componentizes with the project's componentize-js.
fn build_js(dir: &Path, entry: &Path, out: &Path) -> anyhow::Result<Built> {
    write_support(dir)?;
    anyhow::ensure!(
        tools_installed(dir),
        "the build tools are not installed: run `npm install` in {} first",
        dir.display()
    );
    let child = Command::new("node")
        .arg(".aura/build.mjs")
        .arg(entry)
        .arg(out)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!("`aura build` needs Node.js 20 or later, and `node` is not on PATH")
            }
            _ => anyhow::anyhow!("running node: {err}"),
        })?;
    let stdout = String::from_utf8_lossy(&child.stdout);
    let (summary, printed) = match stdout.trim_end().rsplit_once('\n') {
        Some((printed, last)) => (last, printed),
        None => (stdout.trim_end(), ""),
    };
    if !printed.is_empty() {
        eprintln!("{printed}");
    }
    anyhow::ensure!(child.status.success(), "the build failed");
    serde_json::from_str(summary)
        .with_context(|| format!("the build script said something unexpected: {summary}"))
}

/// Componentizes with the project's componentize-py: the helper and the
/// WIT (WASI 0.2.12, as Aura's) in `.aura/`, the world from the sources.
fn build_python(dir: &Path, entry: &Path, out: &Path) -> anyhow::Result<Built> {
    let started = std::time::Instant::now();
    let support = write_python_support(dir)?;
    let wit = write_wit(&support, &|text| text.to_owned())?;
    let imports = python_imports(dir)?;
    write(&wit.join("world.wit"), &world(&imports, "0.2.12"))?;
    let tool = componentize_py(dir).with_context(|| {
        format!(
            "componentize-py is not installed: in {}, run python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
            dir.display()
        )
    })?;
    let module = entry
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the entry must be a Python file (app.py)")?;
    if let Some(parent) = dir.join(out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    let status = Command::new(&tool)
        .args(["-d", ".aura/wit", "-w", "function", "componentize", module])
        .args(["-p", ".", "-p", ".aura", "-o"])
        .arg(out)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", tool.display()))?;
    anyhow::ensure!(status.success(), "the build failed");
    Ok(Built {
        bytes: std::fs::metadata(dir.join(out))?.len(),
        out: out.to_owned(),
        ms: started.elapsed().as_millis() as u64,
        imports,
    })
}

/// The world of a function: the platform interfaces it imports, and the
/// HTTP handler at WASI `wasi`.
fn world(imports: &[String], wasi: &str) -> String {
    let mut text = String::from("package aura:function;\n\nworld function {\n");
    for import in imports {
        text.push_str(&format!("  import {import};\n"));
    }
    text.push_str(&format!(
        "  export wasi:http/incoming-handler@{wasi};\n}}\n"
    ));
    text
}

/// The platform interfaces the project's Python sources import
/// (statements `from wit_world.imports import db, secrets` and `import
/// wit_world.imports.db`; not mentions in comments or strings).
fn python_imports(dir: &Path) -> anyhow::Result<Vec<String>> {
    let pattern = regex::Regex::new(
        r"(?m)^[ \t]*(?:from[ \t]+wit_world\.imports[ \t]+import[ \t]+(?:\(([\w\s,]+)\)|([\w \t,]+))|import[ \t]+wit_world\.imports\.(\w+))",
    )
    .expect("a valid pattern");
    let mut found = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "py") {
            let text = std::fs::read_to_string(&path)?;
            for capture in pattern.captures_iter(&text) {
                let names = (1..=3)
                    .find_map(|group| capture.get(group))
                    .map_or("", |m| m.as_str());
                // `secrets as vault`: the interface is the first word.
                for name in names.split(',').filter_map(|n| n.split_whitespace().next()) {
                    if ["db", "auth", "storage", "secrets", "events"].contains(&name) {
                        found.insert(format!("aura:platform/{name}@0.1.0"));
                    }
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// The project's componentize-py: in a `.venv` of it or above, else on PATH.
fn componentize_py(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .map(|d| d.join(".venv/bin/componentize-py"))
        .find(|p| p.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join("componentize-py"))
                    .find(|p| p.is_file())
            })
        })
}

/// Where the project's component goes: `[build] out`, else `dist/NAME.wasm`.
pub(super) fn output(dir: &Path, project: &Project) -> PathBuf {
    project.build.out.clone().unwrap_or_else(|| {
        let name = project.name.clone().unwrap_or_else(|| {
            dir.canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "function".into())
        });
        PathBuf::from(format!("dist/{name}.wasm"))
    })
}

/// Whether componentize-js can be found from `dir` as Node would.
fn tools_installed(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    dir.ancestors().any(|d| {
        d.join("node_modules/@bytecodealliance/componentize-js/package.json")
            .is_file()
    })
}

/// Writes `.aura/`: the build script, the declarations, the WIT (WASI as
/// 0.2.10, the version StarlingMonkey's fetch event serves; Aura links any
/// 0.2.x). The world is the build script's to write.
pub(super) fn write_support(dir: &Path) -> anyhow::Result<()> {
    let support = dir.join(".aura");
    extract(&JS_TOOLS, &support, &|text| text.to_owned())?;
    write_wit(&support, &wasi_0_2_10)?;
    Ok(())
}

/// Writes the Python helper into `.aura/`; answers the folder.
pub(super) fn write_python_support(dir: &Path) -> anyhow::Result<PathBuf> {
    let support = dir.join(".aura");
    extract(&PY_TOOLS, &support, &|text| text.to_owned())?;
    Ok(support)
}

/// Writes `support/wit/deps`: Aura's WIT and the WASI packages, each file
/// through `transform`; answers the `wit` folder.
fn write_wit(support: &Path, transform: &dyn Fn(&str) -> String) -> anyhow::Result<PathBuf> {
    let wit = support.join("wit");
    if wit.exists() {
        std::fs::remove_dir_all(&wit)?;
    }
    for file in WIT
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "wit"))
    {
        let target = wit.join("deps/aura-platform").join(file.path());
        write(
            &target,
            &transform(file.contents_utf8().unwrap_or_default()),
        )?;
    }
    for sub in WIT.dirs() {
        if sub.path() == Path::new("deps") {
            extract(sub, &wit, transform)?;
        }
    }
    Ok(wit)
}

/// Writes every file of `dir` under `to` (by its path in the tree).
fn extract(dir: &Dir<'_>, to: &Path, transform: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    for file in dir.files() {
        let text = file
            .contents_utf8()
            .with_context(|| format!("{} is not text", file.path().display()))?;
        write(&to.join(file.path()), &transform(text))?;
    }
    for sub in dir.dirs() {
        extract(sub, to, transform)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// WASI 0.2.12 WIT as 0.2.10: package versions and feature gates.
fn wasi_0_2_10(text: &str) -> String {
    text.replace("@0.2.12", "@0.2.10")
        .replace("version = 0.2.12", "version = 0.2.10")
        .replace("version = 0.2.11", "version = 0.2.10")
}

/// The grants `imports` need that `grants` lacks, as `INTERFACE needs GRANT`.
fn missing_grants(imports: &[String], grants: &Grants) -> Vec<String> {
    imports
        .iter()
        .filter_map(|import| {
            let name = import.split_once('@').map_or(import.as_str(), |(n, _)| n);
            let (grant, granted) = match name {
                "aura:platform/db" => ("collections", !grants.collections.is_empty()),
                "aura:platform/auth" => ("auth", grants.auth.is_some()),
                "aura:platform/storage" => ("buckets", !grants.buckets.is_empty()),
                "aura:platform/secrets" => ("secrets", !grants.secrets.is_empty()),
                "aura:platform/events" => ("events", !grants.events.is_empty()),
                _ => return None,
            };
            (!granted).then(|| format!("{import} needs `{grant}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_is_rewritten_to_wasi_0_2_10() {
        let text =
            "package wasi:http@0.2.12;\n@since(version = 0.2.12)\nuse wasi:io/streams@0.2.12.{x};";
        assert_eq!(
            wasi_0_2_10(text),
            "package wasi:http@0.2.10;\n@since(version = 0.2.10)\nuse wasi:io/streams@0.2.10.{x};"
        );
    }

    #[test]
    fn python_imports_are_read_from_the_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app.py"),
            "from wit_world.imports import secrets as vault, db\nimport wit_world.imports.events\nfrom wit_world.imports import (\n  auth,\n)\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("notes.txt"),
            "import wit_world.imports.storage",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("doc.py"),
            "\"\"\"Use `from wit_world.imports import storage`.\"\"\"",
        )
        .unwrap();
        assert_eq!(
            python_imports(dir.path()).unwrap(),
            [
                "aura:platform/auth@0.1.0",
                "aura:platform/db@0.1.0",
                "aura:platform/events@0.1.0",
                "aura:platform/secrets@0.1.0"
            ]
        );
        assert_eq!(
            world(&["aura:platform/db@0.1.0".into()], "0.2.12"),
            "package aura:function;\n\nworld function {\n  import aura:platform/db@0.1.0;\n  export wasi:http/incoming-handler@0.2.12;\n}\n"
        );
    }

    #[test]
    fn platform_imports_need_their_grants() {
        let imports = vec![
            "aura:platform/db@0.1.0".to_owned(),
            "aura:platform/secrets@0.1.0".to_owned(),
        ];
        let mut grants = Grants {
            secrets: vec!["KEY".into()],
            ..Grants::default()
        };
        assert_eq!(
            missing_grants(&imports, &grants),
            ["aura:platform/db@0.1.0 needs `collections`"]
        );
        grants.collections.insert("todos".into(), "read".into());
        assert!(missing_grants(&imports, &grants).is_empty());
    }
}
