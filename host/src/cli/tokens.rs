//! `aura tokens …`: mint, list and revoke named admin tokens.

use super::client::Client;
use super::table::Table;
use super::{print, text};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub(super) enum TokensCommand {
    /// Mint an admin token named NAME; it is printed once (keep it)
    Create {
        /// Name: A-Z, a-z, 0-9, `-`, `_` and `.` (`ci`, `ada-laptop`)
        name: String,
    },
    /// List named admin tokens (names and dates, never tokens)
    List,
    /// Revoke a named admin token: it stops working on every node
    Revoke { name: String },
}

pub(super) async fn run(client: &Client, json: bool, command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { name } => {
            let answer = client
                .post_json("/api/admin/tokens", &json!({ "name": name }))
                .await?;
            print(json, &answer, |a| {
                format!(
                    "{}\n(admin token `{}`: shown this once)",
                    text(&a["token"]),
                    text(&a["name"])
                )
            });
        }
        TokensCommand::List => {
            let answer = client.get("/api/admin/tokens").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["NAME", "CREATED"]);
                for t in a["tokens"].as_array().into_iter().flatten() {
                    table.row([text(&t["name"]), text(&t["created"])]);
                }
                table.render()
            });
        }
        TokensCommand::Revoke { name } => {
            client.confirm(&format!("revoke admin token {name}"))?;
            client.delete(&format!("/api/admin/tokens/{name}")).await?;
            print(json, &json!({ "revoked": name }), |_| {
                format!("revoked {name}")
            });
        }
    }
    Ok(())
}
