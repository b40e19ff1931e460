//! `aura push`, `aura pull`, `aura snapshots`, `aura rollback` and
//! `aura env promote`: an environment's definition as files, applied as a
//! whole.
//!
//! A project directory holds:
//!
//! ```text
//! aura.toml               functions (component file, limits, grants) and schedules
//! collections/NAME.json   one collection definition each (JSON or TOML)
//! functions/NAME.wasm     the components aura.toml names
//! ```
//!
//! ```toml
//! [functions.hello]
//! component = "functions/hello.wasm"
//! grants = { collections = { todos = "read-write" } }
//!
//! [schedules.nightly]
//! function = "hello"
//! cron = "0 3 * * *"
//! ```
//!
//! `aura pull` writes exactly these files, so pulling, pushing and pulling
//! again changes nothing.

use super::client::Client;
use super::table::Table;
use super::{print, text};
use crate::db::schema::Collection;
use crate::definition::{Definition, FunctionDefinition};
use crate::grants::Grants;
use crate::runtime::Limits;
use crate::scheduler::ScheduleSpec;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The project file.
const PROJECT_FILE: &str = "aura.toml";

/// `aura.toml` of a project.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Project {
    functions: BTreeMap<String, ProjectFunction>,
    schedules: BTreeMap<String, ScheduleSpec>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFunction {
    /// The component file, relative to the project directory.
    component: PathBuf,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    grants: Grants,
}

/// Reads a project directory: its definition and its components by hash.
fn read(dir: &Path) -> anyhow::Result<(Definition, HashMap<String, Vec<u8>>)> {
    let path = dir.join(PROJECT_FILE);
    let project: Project = toml::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a valid project file", path.display()))?;
    let mut collections = BTreeMap::new();
    let collections_dir = dir.join("collections");
    if collections_dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&collections_dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.retain(|f| f.extension().is_some_and(|e| e == "json" || e == "toml"));
        files.sort();
        for file in files {
            for value in super::collections::read_schema(&file)? {
                let collection: Collection = serde_json::from_value(value).with_context(|| {
                    format!("{} is not a collection definition", file.display())
                })?;
                anyhow::ensure!(
                    !collections.contains_key(&collection.name),
                    "collection `{}` is defined twice (again in {})",
                    collection.name,
                    file.display()
                );
                collections.insert(collection.name.clone(), collection);
            }
        }
    }
    let mut functions = BTreeMap::new();
    let mut components = HashMap::new();
    for (name, function) in project.functions {
        let file = dir.join(&function.component);
        let wasm = std::fs::read(&file)
            .with_context(|| format!("reading {} (function {name})", file.display()))?;
        let hash = hex::encode(Sha256::digest(&wasm));
        functions.insert(
            name,
            FunctionDefinition {
                component: hash.clone(),
                limits: function.limits,
                grants: function.grants,
            },
        );
        components.insert(hash, wasm);
    }
    Ok((
        Definition {
            collections,
            functions,
            schedules: project.schedules,
        },
        components,
    ))
}

/// Writes `definition` as a project directory; components come from
/// `component(hash)`. Collection and component files of the directory that
/// the definition no longer names are removed.
async fn write(client: &Client, dir: &Path, definition: &Definition) -> anyhow::Result<()> {
    let collections_dir = dir.join("collections");
    let functions_dir = dir.join("functions");
    for sub in [&collections_dir, &functions_dir] {
        std::fs::create_dir_all(sub).with_context(|| format!("creating {}", sub.display()))?;
    }
    // Names become file names: the server's rules, checked again here.
    for name in definition
        .collections
        .keys()
        .chain(definition.functions.keys())
    {
        anyhow::ensure!(
            !name.is_empty()
                && !name.starts_with(['.', '-'])
                && name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "the server named a collection or function `{name}`, which cannot be a file name"
        );
    }
    let mut project = Project::default();
    for (name, function) in &definition.functions {
        let relative = PathBuf::from("functions").join(format!("{name}.wasm"));
        let wasm = client
            .get_bytes(&format!("/api/admin/components/{}", function.component))
            .await?;
        std::fs::write(dir.join(&relative), &wasm)?;
        project.functions.insert(
            name.clone(),
            ProjectFunction {
                component: relative,
                limits: function.limits,
                grants: function.grants.clone(),
            },
        );
    }
    project.schedules = definition.schedules.clone();
    for (name, collection) in &definition.collections {
        std::fs::write(
            collections_dir.join(format!("{name}.json")),
            serde_json::to_string_pretty(collection)? + "\n",
        )?;
    }
    remove_stale(&collections_dir, "json", |stem| {
        definition.collections.contains_key(stem)
    })?;
    // Collections are written as JSON: TOML ones would define them twice.
    remove_stale(&collections_dir, "toml", |_| false)?;
    remove_stale(&functions_dir, "wasm", |stem| {
        definition.functions.contains_key(stem)
    })?;
    let text = format!(
        "# The definition of an Aura environment: `aura pull` writes it, `aura push` applies it.\n{}",
        toml::to_string(&project)?
    );
    std::fs::write(dir.join(PROJECT_FILE), text)?;
    Ok(())
}

fn remove_stale(dir: &Path, extension: &str, keep: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if path.extension().is_some_and(|e| e == extension) && !keep(stem) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// `aura pull [DIR]`.
pub(super) async fn pull(client: &Client, json: bool, dir: &Path) -> anyhow::Result<()> {
    let definition: Definition = serde_json::from_value(client.get("/api/admin/definition").await?)
        .context("the server's definition")?;
    write(client, dir, &definition).await?;
    print(json, &serde_json::to_value(&definition)?, |_| {
        format!(
            "pulled environment {} into {}: {} collections, {} functions, {} schedules",
            client.environment(),
            dir.display(),
            definition.collections.len(),
            definition.functions.len(),
            definition.schedules.len()
        )
    });
    Ok(())
}

/// `aura push [DIR]`.
pub(super) async fn push(client: &Client, json: bool, dir: &Path) -> anyhow::Result<()> {
    let (definition, components) = read(dir)?;
    apply(client, json, &definition, &components, "push").await
}

/// `aura env promote FROM TO`: FROM's definition, with its components,
/// applied to TO.
pub(super) async fn promote(
    client: &Client,
    json: bool,
    from: &str,
    to: &str,
) -> anyhow::Result<()> {
    let source = client.for_environment(from);
    let definition: Definition = serde_json::from_value(source.get("/api/admin/definition").await?)
        .context("the server's definition")?;
    let mut components = HashMap::new();
    for function in definition.functions.values() {
        let wasm = source
            .get_bytes(&format!("/api/admin/components/{}", function.component))
            .await?;
        components.insert(function.component.clone(), wasm);
    }
    let target = client.for_environment(to);
    apply(
        &target,
        json,
        &definition,
        &components,
        &format!("promote from {from}"),
    )
    .await
}

/// Shows the plan of `definition` for the client's environment, asks when
/// it loses data, and applies it with the components it changes.
async fn apply(
    client: &Client,
    json: bool,
    definition: &Definition,
    components: &HashMap<String, Vec<u8>>,
    label: &str,
) -> anyhow::Result<()> {
    let label = url::form_urlencoded::byte_serialize(label.as_bytes()).collect::<String>();
    let plan = client
        .post_json(
            "/api/admin/definition?dry_run=true",
            &serde_json::to_value(definition)?,
        )
        .await?;
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        print(json, &plan, |_| {
            format!("environment {} is up to date", client.environment())
        });
        return Ok(());
    }
    if !json {
        eprintln!("{}", describe(client.environment(), &changes));
    }
    let destructive = changes.iter().filter(|c| c["destructive"] == true).count();
    if destructive > 0 {
        client.confirm(&format!("apply {destructive} change(s) that lose data"))?;
    }
    let needed: Vec<&str> = changes
        .iter()
        .filter(|c| c["kind"] == "function" && c["action"] != "delete")
        .filter_map(|c| definition.functions.get(text(&c["name"])))
        .map(|f| f.component.as_str())
        .collect();
    let mut form =
        reqwest::multipart::Form::new().text("definition", serde_json::to_string(definition)?);
    for hash in needed {
        let wasm = components
            .get(hash)
            .with_context(|| format!("component {hash} is missing"))?;
        form = form.part(
            "component",
            reqwest::multipart::Part::bytes(wasm.clone())
                .file_name(hash.to_owned())
                .mime_str("application/wasm")?,
        );
    }
    let answer = client
        .post_form(
            &format!(
                "/api/admin/definition?allow_destructive={}&label={label}",
                destructive > 0
            ),
            form,
        )
        .await?;
    print(json, &answer, |a| {
        format!(
            "applied {} change(s) to environment {}; snapshot {}",
            changes.len(),
            client.environment(),
            a["snapshot"]
        )
    });
    Ok(())
}

/// A plan in words, one change a line.
fn describe(environment: &str, changes: &[Value]) -> String {
    let mut out = format!("changes to environment {environment}:\n");
    for change in changes {
        let sign = match text(&change["action"]) {
            "create" => "+",
            "delete" => "-",
            _ => "~",
        };
        let details: Vec<&str> = change["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        out += &format!(
            "  {sign} {} {}{}{}\n",
            text(&change["kind"]),
            text(&change["name"]),
            if details.is_empty() {
                String::new()
            } else {
                format!(": {}", details.join("; "))
            },
            if change["destructive"] == true {
                "  (loses data)"
            } else {
                ""
            }
        );
    }
    out.trim_end().to_owned()
}

/// `aura snapshots list`.
pub(super) async fn list_snapshots(client: &Client, json: bool) -> anyhow::Result<()> {
    let answer = client.get("/api/admin/snapshots").await?;
    print(json, &answer, |a| {
        let mut table = Table::new([
            ">ID",
            "LABEL",
            ">COLLECTIONS",
            ">FUNCTIONS",
            ">SCHEDULES",
            "CREATED",
        ]);
        for s in a["snapshots"].as_array().into_iter().flatten() {
            table.row([
                s["id"].to_string().as_str(),
                text(&s["label"]),
                &s["collections"].to_string(),
                &s["functions"].to_string(),
                &s["schedules"].to_string(),
                text(&s["created_at"]),
            ]);
        }
        table.render()
    });
    Ok(())
}

/// `aura rollback ID`: the definition of snapshot ID, restored.
pub(super) async fn rollback(client: &Client, json: bool, id: i64) -> anyhow::Result<()> {
    let restore = format!("/api/admin/snapshots/{id}/restore");
    let plan = client
        .post_json(&format!("{restore}?dry_run=true"), &Value::Null)
        .await?;
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        print(json, &plan, |_| {
            format!(
                "environment {} already has the definition of snapshot {id}",
                client.environment()
            )
        });
        return Ok(());
    }
    if !json {
        eprintln!("{}", describe(client.environment(), &changes));
    }
    client.confirm(&format!("roll back to snapshot {id}"))?;
    let answer = client
        .post_json(&format!("{restore}?allow_destructive=true"), &Value::Null)
        .await?;
    print(json, &answer, |a| {
        format!(
            "rolled environment {} back to snapshot {id} ({} change(s)); snapshot {}",
            client.environment(),
            changes.len(),
            a["snapshot"]
        )
    });
    Ok(())
}
