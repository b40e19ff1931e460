//! `aura.toml`: a function's name, limits and grants beside its component,
//! and the `aura deploy` flags that override it.
//!
//! ```toml
//! [function]
//! name = "checkout"
//! schema = "schema.toml"   # collections applied before the deploy
//!
//! [build]                  # what `aura build` makes, and `aura deploy` sends
//! lang = "ts"              # ts, js or rust
//! entry = "src/index.ts"
//! out = "dist/checkout.wasm"
//!
//! [limits]
//! cpu_ms = 500
//!
//! [grants]
//! network = ["api.stripe.com:443", "*.example.org"]
//!
//! [[schedules]]
//! name = "nightly"
//! cron = "0 3 * * *"
//! tz = "Europe/Paris"
//! payload = { older_than_days = 30 }
//! ```

use crate::functions::VersionConfig;
use crate::grants::Grants;
use crate::runtime::Limits;
use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest file's content.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Manifest {
    function: FunctionSection,
    build: BuildSection,
    limits: Limits,
    grants: Grants,
    schedules: Vec<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FunctionSection {
    name: Option<String>,
    /// A collections schema file (relative to the manifest) applied before
    /// the component is uploaded.
    schema: Option<PathBuf>,
}

/// `[build]`: how `aura build` makes the component.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildSection {
    /// `ts`, `js` or `rust` [default: from the project's files].
    pub lang: Option<String>,
    /// The source to bundle (ts/js) [default: src/index.ts or src/index.js].
    pub entry: Option<PathBuf>,
    /// The component written [default: dist/NAME.wasm].
    pub out: Option<PathBuf>,
}

/// A project directory's `aura.toml`, as `aura build` reads it.
pub struct Project {
    /// `[function] name`.
    pub name: Option<String>,
    /// `[build]`.
    pub build: BuildSection,
    /// `[grants]`, to check the component's imports against.
    pub grants: Grants,
}

/// Reads `DIR/aura.toml` (all defaults without one).
pub fn project(dir: &Path) -> anyhow::Result<Project> {
    let path = dir.join("aura.toml");
    let manifest = if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str::<Manifest>(&text)
            .with_context(|| format!("{} is not a valid manifest", path.display()))?
    } else {
        Manifest::default()
    };
    Ok(Project {
        name: manifest.function.name,
        build: manifest.build,
        grants: manifest.grants,
    })
}

/// `aura deploy` options beyond the component path.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Function name [default: the manifest's, else the file name]
    #[arg(long)]
    name: Option<String>,
    /// Manifest to read [default: ./aura.toml, else aura.toml beside the component]
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Add a grant (repeatable): `network=HOST[:PORT]`, `sockets`,
    /// `collection=NAME[:read|read-write|service]`,
    /// `bucket=NAME[:read|read-write]`, `secret=NAME`, `events=PATTERN`,
    /// `auth[=caller|service]` or `function=NAME` (plural names too)
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Memory limit in MiB
    #[arg(long)]
    memory_mb: Option<u64>,
    /// CPU-time limit per invocation in milliseconds
    #[arg(long)]
    cpu_ms: Option<u64>,
    /// Wall-clock limit per invocation in milliseconds
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Largest request body in bytes
    #[arg(long)]
    max_request_bytes: Option<u64>,
    /// Largest response body in bytes
    #[arg(long)]
    max_response_bytes: Option<u64>,
}

/// What to deploy: the name, the configuration, and the manifest used.
#[derive(Debug)]
pub struct DeployPlan {
    /// Function name.
    pub name: String,
    /// Limits and grants.
    pub config: VersionConfig,
    /// The manifest read, if any.
    pub manifest: Option<PathBuf>,
    /// Schedules to create or replace after the deploy: name and the
    /// schedule spec (its `function` is the deployed function).
    pub schedules: Vec<(String, serde_json::Value)>,
    /// Collection definitions to apply before the upload.
    pub collections: Vec<serde_json::Value>,
}

impl DeployArgs {
    /// Reads the manifest (if any) and applies the flags over it.
    pub fn plan(&self, component: &Path) -> anyhow::Result<DeployPlan> {
        let path = self.manifest_path(component);
        let manifest = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<Manifest>(&text)
                    .with_context(|| format!("{} is not a valid manifest", path.display()))?
            }
            None => Manifest::default(),
        };
        let collections = match (&manifest.function.schema, &path) {
            (Some(schema), Some(manifest_path)) => {
                let schema = manifest_path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(schema);
                super::collections::read_schema(&schema)?
            }
            _ => Vec::new(),
        };
        let name = match self.name.clone().or(manifest.function.name) {
            Some(name) => name,
            None => component
                .file_stem()
                .and_then(|stem| stem.to_str())
                .map(|stem| stem.replace('_', "-"))
                .with_context(|| {
                    format!(
                        "cannot derive a name from {}; pass --name",
                        component.display()
                    )
                })?,
        };
        let mut limits = manifest.limits;
        let overrides = [
            (&mut limits.memory_mb, self.memory_mb),
            (&mut limits.cpu_ms, self.cpu_ms),
            (&mut limits.timeout_ms, self.timeout_ms),
            (&mut limits.max_request_bytes, self.max_request_bytes),
            (&mut limits.max_response_bytes, self.max_response_bytes),
        ];
        for (field, value) in overrides {
            if let Some(value) = value {
                *field = value;
            }
        }
        let mut grants = manifest.grants;
        for grant in &self.grants {
            add_grant(&mut grants, grant)?;
        }
        let schedules = manifest
            .schedules
            .into_iter()
            .map(|mut table| {
                let schedule = match table.remove("name") {
                    Some(toml::Value::String(schedule)) => schedule,
                    _ => anyhow::bail!("every [[schedules]] entry needs a `name`"),
                };
                let mut spec = serde_json::to_value(table)?;
                spec["function"] = serde_json::Value::String(name.clone());
                Ok((schedule, spec))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(DeployPlan {
            name,
            config: VersionConfig { limits, grants },
            manifest: path,
            schedules,
            collections,
        })
    }

    fn manifest_path(&self, component: &Path) -> Option<PathBuf> {
        if let Some(path) = &self.manifest {
            return Some(path.clone());
        }
        let beside = component.parent().map(|dir| dir.join("aura.toml"));
        [Some(PathBuf::from("aura.toml")), beside]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
    }
}

/// Adds one `--grant` to `grants`.
fn add_grant(grants: &mut Grants, grant: &str) -> anyhow::Result<()> {
    let (kind, value) = match grant.split_once('=') {
        Some((kind, value)) => (kind, Some(value)),
        None => (grant, None),
    };
    let split = |value: &str| {
        let (name, access) = value.split_once(':').unwrap_or((value, "read-write"));
        (name.to_owned(), access.to_owned())
    };
    match (kind.trim_end_matches('s'), value) {
        ("network", Some(host)) => grants.network.push(host.to_owned()),
        ("socket", None) => grants.sockets = true,
        ("socket", Some(value)) => {
            grants.sockets = value
                .parse()
                .with_context(|| format!("--grant {grant}: expected true or false"))?
        }
        ("collection", Some(value)) => {
            let (name, access) = split(value);
            grants.collections.insert(name, access);
        }
        ("bucket", Some(value)) => {
            let (name, access) = split(value);
            grants.buckets.insert(name, access);
        }
        ("secret", Some(name)) => grants.secrets.push(name.to_owned()),
        ("event", Some(pattern)) => grants.events.push(pattern.to_owned()),
        ("function", Some(name)) => grants.functions.push(name.to_owned()),
        ("auth", access) => grants.auth = Some(access.unwrap_or("caller").to_owned()),
        _ => anyhow::bail!(
            "--grant `{grant}`: expected network=HOST[:PORT], sockets, collection=NAME[:ACCESS], bucket=NAME[:ACCESS], secret=NAME, events=PATTERN, auth[=caller|service] or function=NAME"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn plan(args: &[&str], manifest: &str) -> DeployPlan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aura.toml");
        std::fs::write(&path, manifest).unwrap();
        let manifest_arg = path.to_str().unwrap().to_owned();
        let mut argv = vec!["aura", "--manifest", manifest_arg.as_str()];
        argv.extend_from_slice(args);
        Cli::parse_from(argv)
            .deploy
            .plan(Path::new("dir/my_fn.wasm"))
            .unwrap()
    }

    #[test]
    fn manifest_gives_name_limits_and_grants() {
        let plan = plan(
            &[],
            "[function]\nname = \"checkout\"\n[limits]\ncpu_ms = 500\n[grants]\nnetwork = [\"api.stripe.com:443\"]\n",
        );
        assert_eq!(plan.name, "checkout");
        assert_eq!(plan.config.limits.cpu_ms, 500);
        assert_eq!(plan.config.limits.memory_mb, Limits::default().memory_mb);
        assert_eq!(plan.config.grants.network, ["api.stripe.com:443"]);
    }

    #[test]
    fn flags_override_and_extend_the_manifest() {
        let plan = plan(
            &[
                "--name",
                "other",
                "--cpu-ms",
                "900",
                "--grant",
                "network=*.example.org",
                "--grant",
                "sockets",
            ],
            "[limits]\ncpu_ms = 500\n[grants]\nnetwork = [\"a.com\"]\n",
        );
        assert_eq!(plan.name, "other");
        assert_eq!(plan.config.limits.cpu_ms, 900);
        assert_eq!(plan.config.grants.network, ["a.com", "*.example.org"]);
        assert!(plan.config.grants.sockets);
    }

    #[test]
    fn every_grant_kind_can_be_given_as_a_flag() {
        let mut grants = Grants::default();
        for grant in [
            "secret=KEY",
            "secrets=OTHER",
            "events=chat.*",
            "auth=service",
            "function=pricing",
            "collections=todos:read",
            "bucket=avatars",
        ] {
            add_grant(&mut grants, grant).unwrap();
        }
        assert_eq!(grants.secrets, ["KEY", "OTHER"]);
        assert_eq!(grants.events, ["chat.*"]);
        assert_eq!(grants.auth.as_deref(), Some("service"));
        assert_eq!(grants.functions, ["pricing"]);
        assert_eq!(grants.collections["todos"], "read");
        assert_eq!(grants.buckets["avatars"], "read-write");
        add_grant(&mut grants, "auth").unwrap();
        assert_eq!(grants.auth.as_deref(), Some("caller"));
        let err = add_grant(&mut grants, "disk=/").unwrap_err().to_string();
        assert!(err.contains("events=PATTERN"), "{err}");
    }

    #[test]
    fn manifest_schedules_target_the_deployed_function() {
        let plan = plan(
            &[],
            "[function]\nname = \"cleanup\"\n[[schedules]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\npayload = { days = 30 }\n",
        );
        assert_eq!(plan.schedules.len(), 1);
        let (name, spec) = &plan.schedules[0];
        assert_eq!(name, "nightly");
        assert_eq!(
            spec,
            &serde_json::json!({"cron": "0 3 * * *", "payload": {"days": 30}, "function": "cleanup"})
        );
    }

    #[test]
    fn name_defaults_to_the_file_stem() {
        assert_eq!(plan(&[], "").name, "my-fn");
    }

    #[test]
    fn unknown_manifest_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aura.toml");
        std::fs::write(&path, "[grants]\nnetwrok = []\n").unwrap();
        let args = Cli::parse_from(["aura", "--manifest", path.to_str().unwrap()]).deploy;
        let err = format!("{:#}", args.plan(Path::new("x.wasm")).unwrap_err());
        assert!(err.contains("unknown field `netwrok`"), "{err}");
    }
}
