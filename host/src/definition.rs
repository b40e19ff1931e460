//! An environment's definition — its collections, functions (component and
//! configuration of the active version) and schedules, not its data — and
//! the one way it changes as a whole: [`apply`], used by `aura push`,
//! `aura env promote` and rollback to a snapshot.
//!
//! Applying plans first (creations, updates, deletions, each marked
//! destructive when data goes with it) and refuses destructive plans unless
//! they are allowed. It records a snapshot of the state before (when it is
//! not already the latest snapshot) and after, and if a step fails it puts
//! the state before back, so a failed apply leaves the environment as it
//! was.

use crate::api::{ApiError, AppState};
use crate::db::ApplyOptions;
use crate::db::backend::{Arg, text_arg};
use crate::db::schema::Storage;
use crate::db::schema::{Collection, USERS};
use crate::functions::VersionConfig;
use crate::grants::Grants;
use crate::runtime::Limits;
use crate::scheduler::ScheduleSpec;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Who the collections' history names for changes made by an apply.
const ACTOR: &str = "admin";

/// What an environment is made of, apart from its data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Definition {
    /// Collections by name.
    pub collections: BTreeMap<String, Collection>,
    /// Functions by name.
    pub functions: BTreeMap<String, FunctionDefinition>,
    /// Schedules by name.
    pub schedules: BTreeMap<String, ScheduleSpec>,
}

/// A function: its active version's component and configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDefinition {
    /// SHA-256 of the component (hex).
    pub component: String,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Grants.
    #[serde(default)]
    pub grants: Grants,
}

/// One change of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `collection`, `function` or `schedule`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// Whether data goes with it (records, fields' values, versions, logs,
    /// run history).
    pub destructive: bool,
    /// What changes, in words.
    pub details: Vec<String>,
}

/// The outcome of an apply.
#[derive(Debug, Serialize)]
pub struct Applied {
    /// The changes made (or, for a dry run, to be made).
    pub changes: Vec<Change>,
    /// The snapshot recorded after the changes (none for a dry run).
    pub snapshot: Option<i64>,
}

/// A recorded snapshot.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Its id.
    pub id: i64,
    /// Why it was taken (`push`, `before push`, `rollback to 3`…).
    pub label: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The definition.
    pub definition: Definition,
}

/// How to apply.
#[derive(Debug, Default)]
pub struct ApplyRequest {
    /// The definition to reach.
    pub definition: Definition,
    /// Component bytes sent with it, by SHA-256 (others must be stored).
    pub components: HashMap<String, Bytes>,
    /// Accept changes that lose data.
    pub allow_destructive: bool,
    /// Only plan.
    pub dry_run: bool,
    /// The label of the snapshot taken after.
    pub label: String,
}

/// The environment's definition now.
pub async fn capture(state: &AppState) -> Result<Definition, ApiError> {
    let collections = state
        .db
        .collections()
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let mut functions = BTreeMap::new();
    for function in state.functions.list().await? {
        let active = state
            .functions
            .versions(&function.name)
            .await?
            .into_iter()
            .find(|v| v.active);
        if let Some(active) = active {
            functions.insert(
                function.name,
                FunctionDefinition {
                    component: active.hash,
                    limits: active.limits,
                    grants: active.grants,
                },
            );
        }
    }
    let schedules = state
        .scheduler
        .list()
        .await?
        .into_iter()
        .map(|s| (s.name, s.spec))
        .collect();
    Ok(Definition {
        collections,
        functions,
        schedules,
    })
}

/// Plans and (unless a dry run) applies `request` to the environment.
pub async fn apply(state: &AppState, request: ApplyRequest) -> Result<Applied, ApiError> {
    let _applying = state.applying.lock().await;
    let before = capture(state).await?;
    let target = &request.definition;
    let changes = plan(state, &before, target).await?;
    let destructive: Vec<String> = changes
        .iter()
        .filter(|c| c.destructive)
        .map(|c| format!("{} {} {}", c.action, c.kind, c.name))
        .collect();
    if request.dry_run {
        return Ok(Applied {
            changes,
            snapshot: None,
        });
    }
    let missing: Vec<&str> = changes
        .iter()
        .filter(|c| c.kind == "function" && c.action != "delete")
        .map(|c| target.functions[&c.name].component.as_str())
        .filter(|hash| !request.components.contains_key(*hash))
        .collect();
    let mut absent = Vec::new();
    for hash in missing {
        if !state.functions.has_component(hash).await {
            absent.push(hash.to_owned());
        }
    }
    if !absent.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_components",
            format!(
                "send the components the definition names that the server lacks: {}",
                absent.join(", ")
            ),
        ));
    }
    for (hash, bytes) in &request.components {
        if hex::encode(Sha256::digest(bytes)) != *hash {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "component_hash_mismatch",
                format!("the component sent as {hash} has another SHA-256"),
            ));
        }
    }
    if !destructive.is_empty() && !request.allow_destructive {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "destructive_changes",
            format!(
                "these changes lose data, allow them to go on: {}",
                destructive.join("; ")
            ),
        ));
    }
    if changes.is_empty() {
        return Ok(Applied {
            changes,
            snapshot: Some(record(state, "unchanged", &before, true).await?),
        });
    }
    let before_id = record(state, &format!("before {}", request.label), &before, true).await?;
    // Data goes only where the plan said so and the caller allowed it.
    if let Err(err) = reach(
        state,
        target,
        &request.components,
        request.allow_destructive,
    )
    .await
    {
        tracing::warn!(error = %err.message, "apply failed; restoring the state before it");
        if let Err(restore) = reach(state, &before, &HashMap::new(), true).await {
            tracing::error!(error = %restore.message, "restoring the state before a failed apply failed");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "restore_failed",
                format!(
                    "the apply failed ({}) and restoring the state before it failed too ({}): \
                     roll back to snapshot {before_id} once the cause is fixed",
                    err.message, restore.message
                ),
            ));
        }
        return Err(err);
    }
    let snapshot = record(state, &request.label, target, false).await?;
    Ok(Applied {
        changes,
        snapshot: Some(snapshot),
    })
}

/// The changes from `current` to `target`.
async fn plan(
    state: &AppState,
    current: &Definition,
    target: &Definition,
) -> Result<Vec<Change>, ApiError> {
    let mut changes = Vec::new();
    for (name, collection) in &target.collections {
        check_key("collection", name, &collection.name)?;
        match current.collections.get(name) {
            Some(now) if now == collection => {}
            existing => {
                let options = ApplyOptions {
                    create_only: false,
                    force: false,
                    dry_run: true,
                };
                let (details, destructive) =
                    match state.db.apply(collection.clone(), options, ACTOR).await {
                        Ok(applied) => (applied.changes, false),
                        Err(crate::db::DbError::Lossy(losses)) => (losses, true),
                        // A relation to a collection the same apply creates
                        // is checked when it is made.
                        Err(crate::db::DbError::InvalidSchema(_)) if existing.is_none() => {
                            (vec!["create".to_owned()], false)
                        }
                        Err(err) => return Err(err.into()),
                    };
                changes.push(Change {
                    kind: "collection",
                    name: name.clone(),
                    action: if existing.is_some() {
                        "update"
                    } else {
                        "create"
                    },
                    destructive,
                    details,
                });
            }
        }
    }
    for name in current.collections.keys() {
        if !target.collections.contains_key(name) && name != USERS {
            changes.push(deletion("collection", name, "its records are deleted"));
        }
    }
    for (name, function) in &target.functions {
        match current.functions.get(name) {
            Some(now) if now == function => {}
            now => {
                let mut details = Vec::new();
                if now.is_none_or(|n| n.component != function.component) {
                    details.push(format!("component {}", short(&function.component)));
                }
                if now.is_some_and(|n| n.limits != function.limits) {
                    details.push("limits".to_owned());
                }
                if now.is_some_and(|n| n.grants != function.grants) {
                    details.push("grants".to_owned());
                }
                changes.push(Change {
                    kind: "function",
                    name: name.clone(),
                    action: if now.is_some() { "update" } else { "create" },
                    destructive: false,
                    details,
                });
            }
        }
    }
    for name in current.functions.keys() {
        if !target.functions.contains_key(name) {
            changes.push(deletion(
                "function",
                name,
                "its versions and logs are deleted",
            ));
        }
    }
    for (name, schedule) in &target.schedules {
        if !target.functions.contains_key(&schedule.function) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_definition",
                format!(
                    "schedule `{name}` runs function `{}`, which the definition lacks",
                    schedule.function
                ),
            ));
        }
        match current.schedules.get(name) {
            Some(now) if now == schedule => {}
            now => changes.push(Change {
                kind: "schedule",
                name: name.clone(),
                action: if now.is_some() { "update" } else { "create" },
                destructive: false,
                details: vec![format!("{} → {}", schedule.cron, schedule.function)],
            }),
        }
    }
    for name in current.schedules.keys() {
        if !target.schedules.contains_key(name) {
            changes.push(deletion("schedule", name, "its run history is deleted"));
        }
    }
    Ok(changes)
}

fn check_key(kind: &str, key: &str, name: &str) -> Result<(), ApiError> {
    if key == name {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_definition",
            format!("{kind} `{key}` is defined with name `{name}`"),
        ))
    }
}

fn deletion(kind: &'static str, name: &str, detail: &str) -> Change {
    Change {
        kind,
        name: name.to_owned(),
        action: "delete",
        destructive: true,
        details: vec![detail.to_owned()],
    }
}

fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

/// Makes the environment's definition `target`: creations and updates
/// first (collections, functions, schedules), deletions last. Collections
/// and functions that name others are retried after those are made.
async fn reach(
    state: &AppState,
    target: &Definition,
    components: &HashMap<String, Bytes>,
    force: bool,
) -> Result<(), ApiError> {
    let current = capture(state).await?;
    let collections: Vec<&Collection> = target
        .collections
        .iter()
        .filter(|(name, c)| current.collections.get(*name) != Some(*c))
        .map(|(_, c)| c)
        .collect();
    in_passes(collections, |collection| async move {
        let options = ApplyOptions {
            create_only: false,
            force,
            dry_run: false,
        };
        state
            .db
            .apply(collection.clone(), options, ACTOR)
            .await
            .map(drop)
            .map_err(ApiError::from)
    })
    .await?;
    let functions: Vec<(&String, &FunctionDefinition)> = target
        .functions
        .iter()
        .filter(|(name, f)| current.functions.get(*name) != Some(*f))
        .collect();
    in_passes(functions, |(name, function)| async move {
        let config = VersionConfig {
            limits: function.limits,
            grants: function.grants.clone(),
        };
        state
            .functions
            .ensure(
                name,
                &function.component,
                config,
                components.get(&function.component).cloned(),
            )
            .await
            .map_err(ApiError::from)
    })
    .await?;
    for (name, schedule) in &target.schedules {
        if current.schedules.get(name) != Some(schedule) {
            state.scheduler.put(name, schedule.clone()).await?;
        }
    }
    for name in current.schedules.keys() {
        if !target.schedules.contains_key(name) {
            state.scheduler.remove(name).await?;
        }
    }
    let doomed: Vec<&String> = current
        .functions
        .keys()
        .filter(|name| !target.functions.contains_key(*name))
        .collect();
    in_passes(doomed, |name| async move {
        state.functions.delete(name).await.map_err(ApiError::from)
    })
    .await?;
    let doomed: Vec<&String> = current
        .collections
        .keys()
        .filter(|name| !target.collections.contains_key(*name) && *name != USERS)
        .collect();
    in_passes(doomed, |name| async move {
        state
            .db
            .drop_collection(name, force, ACTOR)
            .await
            .map_err(ApiError::from)
    })
    .await
}

/// Runs `step` on every item, again and again over the ones that failed
/// while some succeed (an item may need another made or removed first);
/// answers the first error of the last pass.
async fn in_passes<T: Copy, F, Fut>(mut items: Vec<T>, step: F) -> Result<(), ApiError>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), ApiError>>,
{
    while !items.is_empty() {
        let mut failed = Vec::new();
        let mut first_error = None;
        for item in items.iter().copied() {
            if let Err(err) = step(item).await {
                failed.push(item);
                first_error.get_or_insert(err);
            }
        }
        if failed.len() == items.len() {
            return Err(first_error.expect("an item failed"));
        }
        items = failed;
    }
    Ok(())
}

/// Records `definition` as a snapshot; with `unless_latest`, answers the
/// latest snapshot instead when it holds the same definition.
async fn record(
    state: &AppState,
    label: &str,
    definition: &Definition,
    unless_latest: bool,
) -> Result<i64, ApiError> {
    let text = serde_json::to_string(definition).map_err(ApiError::internal)?;
    let backend = state.db.backend();
    if unless_latest
        && let Some(latest) = snapshot_rows(state, "ORDER BY id DESC LIMIT 1", None)
            .await?
            .pop()
        && latest.definition == *definition
    {
        return Ok(latest.id);
    }
    let mut tx = backend.begin().await.map_err(ApiError::internal)?;
    let id = tx
        .fetch(
            &backend.statement(
                "INSERT INTO _aura_snapshots (label, definition, created_at) VALUES (?, ?, ?) RETURNING CAST(id AS TEXT)",
                [text_arg(label), Arg::Text(text), Arg::Text(crate::db::values::now())],
            ),
            &[Storage::Text],
        )
        .await
        .map_err(ApiError::internal)?
        .first()
        .and_then(|row| row[0].as_str()?.parse::<i64>().ok())
        .ok_or_else(|| ApiError::internal("a snapshot got no id"))?;
    for function in definition.functions.values() {
        tx.execute(&backend.statement(
            "INSERT INTO _aura_snapshot_components (snapshot, hash) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [Arg::Number(id as f64), text_arg(&function.component)],
        ))
        .await
        .map_err(ApiError::internal)?;
    }
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(id)
}

/// The snapshots `tail` selects (`ORDER BY …`), or snapshot `id`.
async fn snapshot_rows(
    state: &AppState,
    tail: &str,
    id: Option<i64>,
) -> Result<Vec<Snapshot>, ApiError> {
    let mut sql =
        "SELECT CAST(id AS TEXT), label, definition, created_at FROM _aura_snapshots".to_owned();
    let mut args = Vec::new();
    if let Some(id) = id {
        sql.push_str(" WHERE id = ?");
        args.push(Arg::Int(id));
    }
    sql.push(' ');
    sql.push_str(tail);
    state
        .db
        .backend()
        .rows(&sql, args, &[Storage::Text; 4])
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|row| {
            let text = |i: usize| row[i].as_str().unwrap_or_default().to_owned();
            Ok(Snapshot {
                id: text(0).parse().map_err(ApiError::internal)?,
                label: text(1),
                created_at: text(3),
                definition: serde_json::from_str(&text(2)).map_err(ApiError::internal)?,
            })
        })
        .collect()
}

/// The snapshots, newest first.
pub async fn snapshots(state: &AppState) -> Result<Vec<Snapshot>, ApiError> {
    snapshot_rows(state, "ORDER BY id DESC", None).await
}

/// Snapshot `id`.
pub async fn snapshot(state: &AppState, id: i64) -> Result<Snapshot, ApiError> {
    snapshot_rows(state, "", Some(id))
        .await?
        .pop()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "snapshot_not_found",
                format!("there is no snapshot {id}"),
            )
        })
}
