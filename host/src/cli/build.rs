//! `aura build [DIR]`: a TypeScript or JavaScript project into a component.
//!
//! The binary carries what a build needs besides the npm tools the project
//! pins: the build script (`guest-sdk/js/build.mjs`), the TypeScript
//! declarations of the platform interfaces, and the WIT. Each build writes
//! them into the project's `.aura/` and runs the script with Node; the
//! script bundles, writes the smallest world and componentizes. Then the
//! component's platform imports are checked against `aura.toml`'s grants,
//! so a missing grant shows up here rather than at deploy.

use super::manifest::{self, Project};
use crate::grants::Grants;
use anyhow::Context as _;
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

static JS_TOOLS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../guest-sdk/js");
pub(super) static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../wit");

/// The languages `aura build` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    TypeScript,
    JavaScript,
    Rust,
}

impl Lang {
    pub(super) fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "ts" | "typescript" => Ok(Self::TypeScript),
            "js" | "javascript" => Ok(Self::JavaScript),
            "rust" | "rs" => Ok(Self::Rust),
            other => anyhow::bail!("unknown language `{other}`: expected ts, js or rust"),
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
        } else {
            anyhow::bail!(
                "{} holds no package.json or Cargo.toml: is it a function project (`aura init`)?",
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
    write_support(dir)?;
    anyhow::ensure!(
        tools_installed(dir),
        "the build tools are not installed: run `npm install` in {} first",
        dir.display()
    );
    eprintln!("building {} …", entry.display());
    let child = Command::new("node")
        .arg(".aura/build.mjs")
        .arg(&entry)
        .arg(&out)
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
    let built: Built = serde_json::from_str(summary)
        .with_context(|| format!("the build script said something unexpected: {summary}"))?;
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
            &wasi_0_2_10(file.contents_utf8().unwrap_or_default()),
        )?;
    }
    for sub in WIT.dirs() {
        if sub.path() == Path::new("deps") {
            extract(sub, &wit, &wasi_0_2_10)?;
        }
    }
    Ok(())
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
