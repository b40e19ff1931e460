//! `aura env …`: list, create and choose environments.

use super::client::{self, Client};
use super::{print, text};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum EnvCommand {
    /// List the server's environments (the current one is marked)
    List,
    /// Create an empty environment
    Create {
        /// Its name (a-z, 0-9, -)
        name: String,
    },
    /// Make an environment the one later commands act on
    Use {
        /// Its name
        name: String,
    },
    /// Copy the definitions (collections, functions, schedules) of one
    /// environment into another, as `aura push` would
    Promote {
        /// The environment to copy from
        from: String,
        /// The environment to copy into
        to: String,
    },
}

pub(super) async fn run(client: &Client, json: bool, command: EnvCommand) -> anyhow::Result<()> {
    match command {
        EnvCommand::List => {
            let answer = client.get("/api/admin/environments").await?;
            print(json, &answer, |a| {
                let mut out = String::new();
                for env in a["environments"].as_array().into_iter().flatten() {
                    let name = text(&env["name"]);
                    let mark = if name == client.environment() {
                        "*"
                    } else {
                        " "
                    };
                    out += &format!("{mark} {name}\n");
                }
                out.trim_end().to_owned()
            });
        }
        EnvCommand::Create { name } => {
            let answer = client
                .post_json("/api/admin/environments", &json!({ "name": name }))
                .await?;
            print(json, &answer, |_| {
                format!("created environment {name}; use it with `aura env use {name}`")
            });
        }
        EnvCommand::Use { name } => {
            let answer = client.get("/api/admin/environments").await?;
            let known = answer["environments"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|env| env["name"] == Value::String(name.clone()));
            anyhow::ensure!(
                known,
                "there is no environment `{name}` (`aura env list` shows them)"
            );
            let path = client::use_environment(&name)?;
            print(json, &json!({ "environment": name }), |_| {
                format!("now using environment {name} (saved in {})", path.display())
            });
        }
        EnvCommand::Promote { from, to } => {
            super::project::promote(client, json, &from, &to).await?;
        }
    }
    Ok(())
}
