//! Following the changes other nodes make to functions on a shared
//! database. Each deploy, rollback and delete is announced on the
//! environment's channel once it commits; a node that hears of one brings
//! that function in line with the database: it loads the active version if
//! it runs another (its component read from the database and compiled into
//! the node's cache), or forgets a function deleted. Notices sent while the
//! listener was reconnecting are lost, so then every function is compared.

use super::Functions;
use crate::runtime::Callees as _;
use std::collections::HashSet;
use std::sync::Arc;

impl Functions {
    /// The active version of `name`, loading it first if another node
    /// deployed it and this one has not followed yet (for the scheduler
    /// and the queue, which must not fail a run for that).
    pub async fn active_or_load(&self, name: &str) -> Option<Arc<crate::runtime::Loaded>> {
        if let Some(active) = self.active(name) {
            return Some(active);
        }
        if let Err(err) = self.follow(Some(name)).await {
            tracing::warn!(function = name, error = %format!("{err:#}"), "loading a function");
        }
        self.active(name)
    }

    /// Brings `name` (with `None`, every function) in line with the
    /// database.
    pub async fn follow(&self, name: Option<&str>) -> anyhow::Result<()> {
        let _guard = self.admin.lock().await;
        let actives = self.store.actives(name).await?;
        let listed: HashSet<&str> = actives.iter().map(|(name, _)| name.as_str()).collect();
        let known = match name {
            Some(name) => vec![name.to_owned()],
            None => self.registry.names(),
        };
        for gone in known
            .iter()
            .filter(|known| !listed.contains(known.as_str()))
        {
            if let Some(loaded) = self.registry.active(gone) {
                self.registry.remove(gone);
                tracing::info!(function = %gone, "deleted on another node");
                if self.store.forget(&loaded.hash).await? {
                    self.runtime.evict(&loaded.hash);
                }
            }
        }
        let changed: Vec<_> = actives
            .into_iter()
            .filter(|(name, stored)| {
                self.registry.active(name).is_none_or(|loaded| {
                    loaded.version != stored.version || loaded.hash != stored.hash
                })
            })
            .collect();
        if !changed.is_empty() {
            self.load_all(changed).await;
        }
        Ok(())
    }
}

/// Follows the changes of `functions`' environment announced on `pool`
/// while the service lives.
pub async fn start(functions: &Arc<Functions>, pool: sqlx::PgPool) -> anyhow::Result<()> {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
    listener.listen(functions.store.channel()).await?;
    // Changes made before the listener listened.
    functions.follow(None).await?;
    let weak = Arc::downgrade(functions);
    tokio::spawn(async move {
        loop {
            let received = listener.recv().await;
            let Some(functions) = weak.upgrade() else {
                return;
            };
            let followed = match &received {
                Ok(notice) => functions.follow(Some(notice.payload())).await,
                Err(err) => {
                    tracing::warn!(error = %err, "the listener of function changes lost its connection; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    functions.follow(None).await
                }
            };
            if let Err(err) = followed {
                tracing::warn!(error = %format!("{err:#}"), "following function changes");
            }
        }
    });
    Ok(())
}
