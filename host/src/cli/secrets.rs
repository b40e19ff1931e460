//! `aura secrets …`: set, list, unset, and rotate the master key.

use super::client::Client;
use super::table::Table;
use super::{print, text};
use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use std::io::Read as _;

#[derive(Debug, Subcommand)]
pub(super) enum SecretsCommand {
    /// Set a secret (a new version); the value comes from VALUE,
    /// --from-file, or standard input (one trailing newline dropped)
    Set {
        /// Name: A-Z, 0-9 and _ (`STRIPE_KEY`)
        name: String,
        /// The value (visible in the shell history: prefer stdin or a file)
        value: Option<String>,
        /// Read the value from this file, as it is
        #[arg(long, conflicts_with = "value")]
        from_file: Option<std::path::PathBuf>,
    },
    /// List secrets: names, versions, dates (never values)
    List,
    /// Remove a secret
    Unset { name: String },
    /// Seal every secret under a new master key file
    RotateKey,
}

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: SecretsCommand,
) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set {
            name,
            value,
            from_file,
        } => {
            let value = match (value, from_file) {
                (Some(value), _) => value,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                (None, None) => {
                    let mut value = String::new();
                    std::io::stdin()
                        .read_to_string(&mut value)
                        .context("reading the value from standard input")?;
                    value
                        .strip_suffix('\n')
                        .map(|v| v.strip_suffix('\r').unwrap_or(v).to_owned())
                        .unwrap_or(value)
                }
            };
            let answer = client
                .put_json(
                    &format!("/api/admin/secrets/{name}"),
                    &json!({ "value": value }),
                )
                .await?;
            print(json, &answer, |a| {
                format!("set {} (version {})", text(&a["name"]), a["version"])
            });
        }
        SecretsCommand::List => {
            let answer = client.get("/api/admin/secrets").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["NAME", ">VERSION", "UPDATED"]);
                for s in a["secrets"].as_array().into_iter().flatten() {
                    table.row([
                        text(&s["name"]),
                        &s["version"].to_string(),
                        text(&s["updated"]),
                    ]);
                }
                table.render()
            });
        }
        SecretsCommand::Unset { name } => {
            client.confirm(&format!("unset secret {name}"))?;
            client.delete(&format!("/api/admin/secrets/{name}")).await?;
            print(json, &json!({ "unset": name }), |_| format!("unset {name}"));
        }
        SecretsCommand::RotateKey => {
            let answer = client
                .post_json("/api/admin/secrets/rotate-key", &json!({}))
                .await?;
            print(json, &answer, |a| {
                format!(
                    "new master key {}; {} secrets sealed under it",
                    text(&a["keyId"]),
                    a["resealed"]
                )
            });
        }
    }
    Ok(())
}
