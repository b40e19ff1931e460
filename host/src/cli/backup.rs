//! `aura backup …`: take a backup on the server, list them, and restore
//! one into a fresh data directory (offline, no server needed).

use super::client::Client;
use super::table::Table;
use super::{print, spinner, text};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(super) enum BackupCommand {
    /// Take a consistent backup while the server runs
    Create {
        /// A new or empty directory on the server [default: DATA/backups/TIME]
        #[arg(long)]
        to: Option<PathBuf>,
        /// Encrypt it under the environment's master key (restoring it then
        /// needs that key)
        #[arg(long)]
        encrypt: bool,
    },
    /// List the backups under the server's DATA/backups
    List,
    /// Restore a backup into --data-dir, which must not hold data yet
    Restore {
        /// The backup directory
        backup: PathBuf,
        /// The master key file an encrypted backup was sealed under
        /// (`AURA_MASTER_KEY` also works)
        #[arg(long, env = "AURA_MASTER_KEY_FILE", value_name = "PATH")]
        master_key_file: Option<PathBuf>,
    },
}

pub(super) async fn run(client: &Client, json: bool, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create { to, encrypt } => {
            let body = match to {
                Some(to) => json!({ "to": to, "encrypt": encrypt }),
                None => json!({ "encrypt": encrypt }),
            };
            let progress = spinner(json, "backing up".into());
            let answer = client.post_json("/api/admin/backups", &body).await;
            progress.finish_and_clear();
            let answer = answer?;
            print(json, &answer, |a| {
                format!(
                    "backup at {} ({} files, {} bytes, {} ms)",
                    text(&a["path"]),
                    a["files"].as_array().map_or(0, Vec::len),
                    a["bytes"],
                    a["tookMs"]
                )
            });
        }
        BackupCommand::List => {
            let answer = client.get("/api/admin/backups").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["NAME", ">FILES", ">BYTES", "PATH"]);
                for b in a["backups"].as_array().into_iter().flatten() {
                    table.row([
                        text(&b["name"]),
                        &b["files"].to_string(),
                        &b["bytes"].to_string(),
                        text(&b["path"]),
                    ]);
                }
                table.render()
            });
        }
        BackupCommand::Restore { .. } => unreachable!("restored without a server"),
    }
    Ok(())
}

/// Restores `backup` into `data_dir`.
pub(super) fn restore(
    backup: &Path,
    data_dir: &Path,
    key_file: Option<&Path>,
    json: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let progress = spinner(json, format!("checking and restoring {}", backup.display()));
    let answer = crate::backup::restore(backup, data_dir, key_file);
    progress.finish_and_clear();
    let answer = answer?;
    print(json, &answer, |a| {
        format!(
            "restored {} files into {}; start it with `aura serve --data-dir {}` (and the same master key)",
            a["restored"],
            text(&a["into"]),
            text(&a["into"])
        )
    });
    Ok(())
}
