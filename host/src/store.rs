//! Opening Aura's embedded SQLite databases and applying their migrations.
//!
//! Two files live in the data directory: `aura.db` for data (functions,
//! versions) and `logs.db` for invocation logs, so that log writes never
//! contend with data writes. Both use WAL with `synchronous=NORMAL`.

use anyhow::Context as _;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// The data database (functions and versions).
pub async fn open_data(dir: &Path) -> anyhow::Result<SqlitePool> {
    let pool = open(&dir.join("aura.db")).await?;
    sqlx::migrate!("./migrations/data")
        .run(&pool)
        .await
        .context("migrating aura.db")?;
    Ok(pool)
}

/// The invocation-log database.
pub async fn open_logs(dir: &Path) -> anyhow::Result<SqlitePool> {
    let pool = open(&dir.join("logs.db")).await?;
    sqlx::migrate!("./migrations/logs")
        .run(&pool)
        .await
        .context("migrating logs.db")?;
    Ok(pool)
}

/// Whether `pool` holds table `name` (tables an earlier version kept here
/// and a newer one moves out).
pub async fn has_table(pool: &SqlitePool, name: &str) -> anyhow::Result<bool> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", path.display()))
}
