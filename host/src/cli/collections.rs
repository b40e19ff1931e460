//! `aura collections …`: apply schema files, list, show, drop, history.

use super::client::Client;
use super::table::Table;
use super::{print, text};
use clap::Subcommand;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(super) enum CollectionsCommand {
    /// Create or migrate the collections a schema file defines (JSON or
    /// TOML: one collection, or `collections = [...]`)
    Apply {
        /// The schema file
        file: PathBuf,
        /// Accept changes that lose data (dropping fields that hold values,
        /// conversions some values do not survive)
        #[arg(long)]
        force: bool,
        /// Show the changes without making them
        #[arg(long)]
        dry_run: bool,
    },
    /// List collections
    List,
    /// Show a collection's definition
    Show {
        /// Collection name
        name: String,
    },
    /// Drop a collection and its records
    Drop {
        /// Collection name
        name: String,
        /// Drop it even if it holds records
        #[arg(long)]
        force: bool,
    },
    /// Show a collection's migration history
    History {
        /// Collection name
        name: String,
    },
}

/// Reads the collection definitions of a schema file.
pub(crate) fn read_schema(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("reading {}: {err}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?
    };
    Ok(match value {
        Value::Array(items) => items,
        Value::Object(ref map) if map.contains_key("collections") => {
            map["collections"].as_array().cloned().unwrap_or_default()
        }
        other => vec![other],
    })
}

/// Applies definitions in order; returns the answers.
pub(crate) async fn apply_all(
    client: &Client,
    definitions: &[Value],
    force: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<Value>> {
    let mut answers = Vec::new();
    for definition in definitions {
        let name = definition["name"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("a collection definition lacks a `name`"))?;
        let mut path = format!("/api/collections/{name}?");
        if force {
            path += "force=true&";
        }
        if dry_run {
            path += "dryRun=true";
        }
        let answer = client
            .put_json(&path, definition)
            .await
            .map_err(|err| anyhow::anyhow!("collection `{name}`: {err}"))?;
        answers.push(answer);
    }
    Ok(answers)
}

fn describe(answer: &Value) -> String {
    let name = text(&answer["collection"]["name"]);
    let changes: Vec<String> = answer["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("  - {}", text(c)))
        .collect();
    match (changes.is_empty(), answer["applied"].as_bool()) {
        (true, _) => format!("{name}: up to date"),
        (false, Some(true)) => format!("{name}: applied\n{}", changes.join("\n")),
        (false, _) => format!("{name}: would apply (dry run)\n{}", changes.join("\n")),
    }
}

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: CollectionsCommand,
) -> anyhow::Result<()> {
    match command {
        CollectionsCommand::Apply {
            file,
            force,
            dry_run,
        } => {
            let definitions = read_schema(&file)?;
            for answer in apply_all(client, &definitions, force, dry_run).await? {
                print(json, &answer, describe);
            }
        }
        CollectionsCommand::List => {
            let answer = client.get("/api/collections").await?;
            print(json, &answer, |a| {
                let mut table =
                    Table::new(["NAME", ">FIELDS", "RULES (list/view/create/update/delete)"]);
                for c in a["collections"].as_array().into_iter().flatten() {
                    let rules: Vec<&str> = [
                        "listRule",
                        "viewRule",
                        "createRule",
                        "updateRule",
                        "deleteRule",
                    ]
                    .iter()
                    .map(|r| match c.get(*r).and_then(Value::as_str) {
                        None => "admin",
                        Some("") => "public",
                        Some(_) => "rule",
                    })
                    .collect();
                    table.row([
                        text(&c["name"]).to_owned(),
                        c["fields"].as_array().map_or(0, Vec::len).to_string(),
                        rules.join("/"),
                    ]);
                }
                table.render()
            });
        }
        CollectionsCommand::Show { name } => {
            let answer = client.get(&format!("/api/collections/{name}")).await?;
            print(json, &answer, |a| {
                serde_json::to_string_pretty(a).unwrap_or_default()
            });
        }
        CollectionsCommand::Drop { name, force } => {
            let path = if force {
                client.confirm(&format!("drop collection {name} and its records"))?;
                format!("/api/collections/{name}?force=true")
            } else {
                format!("/api/collections/{name}")
            };
            client.delete(&path).await?;
            print(json, &serde_json::json!({"dropped": name}), |_| {
                format!("dropped {name}")
            });
        }
        CollectionsCommand::History { name } => {
            let answer = client
                .get(&format!("/api/collections/{name}/migrations"))
                .await?;
            print(json, &answer, |a| {
                let mut out = String::new();
                for m in a["migrations"].as_array().into_iter().flatten() {
                    out += &format!("#{} {} by {}\n", m["id"], text(&m["at"]), text(&m["actor"]));
                    for change in m["changes"].as_array().into_iter().flatten() {
                        out += &format!("  - {}\n", text(change));
                    }
                }
                out.trim_end().to_owned()
            });
        }
    }
    Ok(())
}
