//! What every node of one shared database must agree on: the admin token
//! (kept as a hash) and the master key the secrets are sealed under (kept
//! by id). Each node registers its own at start; on PostgreSQL, where
//! several nodes share the database, a node that disagrees refuses to start
//! and says how to fix it, rather than answering 401 or 500 later. On
//! SQLite there is one node: what it has becomes what is registered.

use crate::db::backend::{Backend, text_arg};
use crate::db::filter::Dialect;
use crate::db::schema::Storage;

/// The table, created with the other system tables.
pub fn tables(_dialect: Dialect) -> Vec<String> {
    let mut tables: Vec<String> = vec![
        "CREATE TABLE IF NOT EXISTS _aura_cluster (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            .into(),
    ];
    tables.extend(crate::admin_tokens::tables());
    tables
}

/// The value registered under `name`, registering `value` if there is
/// none (the first node to start wins a race).
async fn registered(backend: &Backend, name: &str, value: &str) -> anyhow::Result<String> {
    backend
        .run(
            "INSERT INTO _aura_cluster (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            [text_arg(name), text_arg(value)],
        )
        .await?;
    let rows = backend
        .rows(
            "SELECT value FROM _aura_cluster WHERE name = ?",
            [text_arg(name)],
            &[Storage::Text],
        )
        .await?;
    Ok(rows
        .first()
        .and_then(|row| row.first())
        .and_then(|v| v.as_str())
        .unwrap_or(value)
        .to_owned())
}

/// Replaces what is registered under `name`.
pub async fn register(backend: &Backend, name: &str, value: &str) -> anyhow::Result<()> {
    backend
        .run(
            "UPDATE _aura_cluster SET value = ? WHERE name = ?",
            [text_arg(value), text_arg(name)],
        )
        .await?;
    Ok(())
}

/// Whether other nodes may share this database.
fn shared(backend: &Backend) -> bool {
    backend.dialect() == Dialect::Postgres
}

/// Checks this node's admin token against the one registered. A token
/// given in `AURA_ADMIN_TOKEN` (`authoritative`) replaces it; one from the
/// node's own token file must match on a shared database.
pub async fn check_admin_token(
    backend: &Backend,
    token: &str,
    authoritative: bool,
) -> anyhow::Result<()> {
    let hash = crate::admin_tokens::hash(token);
    let found = registered(backend, "admin_token_sha256", &hash).await?;
    if found == hash {
        return Ok(());
    }
    if authoritative || !shared(backend) {
        register(backend, "admin_token_sha256", &hash).await?;
        tracing::info!("the admin token changed: the one this node has is now every node's");
        return Ok(());
    }
    anyhow::bail!(
        "this node's admin token is not the one the other nodes of this database use: give every node the same token (AURA_ADMIN_TOKEN, or the same admin.token file in each data directory)"
    )
}

/// This node's lasting id, kept in `DATA/node.id`: a restarted node knows
/// what it left running, and its temporary files.
pub fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::now_v7().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

/// Checks where this node keeps object bytes (`here`, as
/// `Blobs::identity` describes it) against where the other nodes do: on a
/// shared database they must be the same place, or each node would list
/// objects whose bytes only another has.
pub async fn check_object_store(backend: &Backend, here: &str) -> anyhow::Result<()> {
    let found = registered(backend, "object_store", here).await?;
    if found == here {
        return Ok(());
    }
    if !shared(backend) {
        return register(backend, "object_store", here).await;
    }
    anyhow::bail!(
        "the other nodes of this database keep object bytes in {found}, and this node would keep them in {here}: nodes of one database need one object store: give each node the same --storage-url (AURA_STORAGE_URL), an S3 bucket (s3+https://KEY:SECRET@host/bucket) or file:///path on a filesystem every node mounts"
    )
}

/// The name the master key of the secrets is registered under.
pub const MASTER_KEY: &str = "master_key_id";

/// Checks this node's current master key (`current`) against the one
/// registered; `known` says whether this node also has a key (an older
/// one, during a rotation). Registers `current` when this node is the
/// newer one, or the only one.
pub async fn check_master_key(
    backend: &Backend,
    current: &str,
    known: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    let found = registered(backend, MASTER_KEY, current).await?;
    if found == current {
        return Ok(());
    }
    if known(&found) || !shared(backend) {
        return register(backend, MASTER_KEY, current).await;
    }
    anyhow::bail!(
        "the other nodes of this database seal secrets under master key {found}, and this node has key {current}: give every node the same key (AURA_MASTER_KEY, or the same key file), or the new one with the old in AURA_MASTER_KEY_PREVIOUS during a rotation"
    )
}
