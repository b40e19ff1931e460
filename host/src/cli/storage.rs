//! `aura storage …`: buckets and S3 access keys.

use super::client::Client;
use super::table::Table;
use super::{print, text};
use clap::Subcommand;
use serde_json::{Map, Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum StorageCommand {
    /// Create a bucket
    CreateBucket {
        /// Bucket name (3-63 characters of a-z, 0-9, `.`, `-`)
        name: String,
        /// The largest object it takes, in bytes
        #[arg(long)]
        max_object_bytes: Option<u64>,
        /// Serve HTML, SVG and JavaScript inline (a website)
        #[arg(long)]
        website: bool,
        /// Who may download over REST (`""` everyone, or a rule)
        #[arg(long)]
        view_rule: Option<String>,
    },
    /// List buckets
    Buckets,
    /// Delete an empty bucket
    DeleteBucket { name: String },
    /// Create an S3 access key; prints its secret once
    CreateKey {
        /// A bucket it may use: NAME[:read|read-write], or `*` (repeatable)
        #[arg(long = "bucket", required = true)]
        buckets: Vec<String>,
        /// What it is for
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List access keys (without secrets)
    Keys,
    /// Delete an access key
    DeleteKey { access_key: String },
}

pub(super) async fn run(
    client: &Client,
    json: bool,
    command: StorageCommand,
) -> anyhow::Result<()> {
    match command {
        StorageCommand::CreateBucket {
            name,
            max_object_bytes,
            website,
            view_rule,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("website".into(), json!(website));
            if let Some(limit) = max_object_bytes {
                body.insert("maxObjectBytes".into(), json!(limit));
            }
            if let Some(rule) = view_rule {
                body.insert("viewRule".into(), json!(rule));
            }
            let answer = client
                .post_json("/api/admin/storage/buckets", &Value::Object(body))
                .await?;
            print(json, &answer, |a| {
                format!("created bucket {}", text(&a["name"]))
            });
        }
        StorageCommand::Buckets => {
            let answer = client.get("/api/admin/storage/buckets").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["NAME", "CREATED"]);
                for b in a["buckets"].as_array().into_iter().flatten() {
                    table.row([text(&b["name"]), text(&b["created"])]);
                }
                table.render()
            });
        }
        StorageCommand::DeleteBucket { name } => {
            client
                .delete(&format!("/api/admin/storage/buckets/{name}"))
                .await?;
            print(json, &json!({"deleted": name}), |_| {
                format!("deleted bucket {name}")
            });
        }
        StorageCommand::CreateKey {
            buckets,
            description,
        } => {
            let mut scope = Map::new();
            for bucket in buckets {
                let (name, access) = bucket.split_once(':').unwrap_or((&bucket, "read-write"));
                scope.insert(name.to_owned(), json!(access));
            }
            let answer = client
                .post_json(
                    "/api/admin/storage/keys",
                    &json!({"description": description, "buckets": scope}),
                )
                .await?;
            print(json, &answer, |a| {
                format!(
                    "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n(the secret is shown only now)",
                    text(&a["accessKey"]),
                    text(&a["secretKey"])
                )
            });
        }
        StorageCommand::Keys => {
            let answer = client.get("/api/admin/storage/keys").await?;
            print(json, &answer, |a| {
                let mut table = Table::new(["ACCESS KEY", "BUCKETS", "DESCRIPTION"]);
                for k in a["keys"].as_array().into_iter().flatten() {
                    let buckets: Vec<String> = k["buckets"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(name, access)| format!("{name}:{}", text(access)))
                        .collect();
                    table.row([
                        text(&k["accessKey"]),
                        &buckets.join(","),
                        text(&k["description"]),
                    ]);
                }
                table.render()
            });
        }
        StorageCommand::DeleteKey { access_key } => {
            client
                .delete(&format!("/api/admin/storage/keys/{access_key}"))
                .await?;
            print(json, &json!({"deleted": access_key}), |_| {
                format!("deleted access key {access_key}")
            });
        }
    }
    Ok(())
}
