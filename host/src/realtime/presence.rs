//! Presence: who is on a channel, with a small state each.
//!
//! A Server-Sent Events stream joins channels (`?join=chat.room1&state=…`)
//! and stays a member while it is open. Members live in `_aura_presence`,
//! shared by every node on one database; joins, state updates and leaves are
//! events on `presence.{channel}`, which reach every node like any event.
//!
//! A member leaves when its stream ends. Streams with members get a
//! keep-alive every third of the timeout, so a dropped connection is found
//! by the failing write. Each node refreshes its members' `seen` at the
//! same pace; members not seen for the whole timeout (their node stopped)
//! are removed by whichever node sweeps first, which announces the leave.

use super::Broker;
use crate::db::backend::{Arg, text_arg};
use crate::db::schema::Storage;
use crate::db::{Database, User, values};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::sync::Arc;
use std::time::Duration;

/// Largest state, as JSON.
pub const MAX_STATE_BYTES: usize = 1024;
/// Most channels one stream may join.
pub const MAX_JOINS: usize = 10;

/// Why a presence request failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// Bad input (state too large or not an object).
    #[error("{0}")]
    Invalid(String),
    /// No such member connection (left, or someone else's).
    #[error("no open presence connection has this id (it left, or is not yours)")]
    NotFound,
    /// Anything else.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The presence service of one node.
pub struct Presence {
    db: Arc<Database>,
    broker: Arc<Broker>,
    /// This node's id, on the rows of its members.
    node: String,
    timeout: Duration,
    /// Connections whose leave failed (a database blip), tried again at
    /// each sweep so they are not refreshed forever.
    unleft: std::sync::Mutex<Vec<String>>,
}

/// A stream's membership; dropping it leaves every channel it joined.
pub struct Membership {
    presence: Arc<Presence>,
    /// The secret id that updates this member's state.
    pub connection: String,
    /// The public id other members see.
    pub key: String,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let presence = self.presence.clone();
        let connection = std::mem::take(&mut self.connection);
        tokio::spawn(async move {
            if let Err(err) = presence.leave(&connection).await {
                tracing::warn!(error = %err, "leaving presence; trying again at the next sweep");
                presence
                    .unleft
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(connection);
            }
        });
    }
}

/// A state: a JSON object of at most [`MAX_STATE_BYTES`].
pub fn check_state(state: &Value) -> Result<(), PresenceError> {
    if !state.is_object() {
        return Err(PresenceError::Invalid(
            "a presence state is a JSON object".into(),
        ));
    }
    if state.to_string().len() > MAX_STATE_BYTES {
        return Err(PresenceError::Invalid(format!(
            "a presence state is at most {MAX_STATE_BYTES} bytes of JSON"
        )));
    }
    Ok(())
}

/// The member's user as others see it: the id only.
fn user_json(id: Option<&str>) -> Value {
    match id {
        Some(id) => json!({ "id": id }),
        None => Value::Null,
    }
}

impl Presence {
    /// The service, refreshing and sweeping members every third of
    /// `timeout`.
    pub fn start(db: Arc<Database>, broker: Arc<Broker>, timeout: Duration) -> Arc<Self> {
        let presence = Arc::new(Self {
            db,
            broker,
            node: values::new_id(),
            timeout,
            unleft: std::sync::Mutex::default(),
        });
        let weak = Arc::downgrade(&presence);
        let every = presence.heartbeat();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(presence) = weak.upgrade() else {
                    return;
                };
                if let Err(err) = presence.sweep().await {
                    tracing::warn!(error = %err, "refreshing presence");
                }
            }
        });
        presence
    }

    /// How often members are refreshed, and streams with members get a
    /// keep-alive.
    pub fn heartbeat(&self) -> Duration {
        (self.timeout / 3).max(Duration::from_millis(100))
    }

    fn announce(&self, channel: &str, action: &str, key: &str, user: Value, state: Value) {
        let event = json!({ "action": action, "key": key, "user": user, "state": state });
        if let Err(err) = self
            .broker
            .publish(&format!("{}{channel}", super::PRESENCE_CHANNELS), event)
        {
            tracing::warn!(error = %err, "announcing presence");
        }
    }

    /// Joins `channels` (checked by the caller) as `user` with `state`.
    pub async fn join(
        self: &Arc<Self>,
        channels: &[String],
        user: Option<&User>,
        state: Value,
    ) -> Result<Membership, PresenceError> {
        check_state(&state)?;
        let connection = values::new_id() + &hex::encode(rand::random::<[u8; 8]>());
        let key = hex::encode(&sha2::Sha256::digest(&connection)[..8]);
        let now = values::now();
        let backend = self.db.backend();
        let mut tx = backend.begin().await?;
        for channel in channels {
            let insert = backend.statement(
                "INSERT INTO _aura_presence (connection, channel, key, user_id, state, node, joined, seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    text_arg(&connection),
                    text_arg(channel),
                    text_arg(&key),
                    user.map_or(Arg::NullOf(Storage::Text), |u| text_arg(&u.id)),
                    text_arg(&state.to_string()),
                    text_arg(&self.node),
                    text_arg(&now),
                    text_arg(&now),
                ],
            );
            tx.execute(&insert).await.map_err(anyhow::Error::from)?;
        }
        tx.commit().await.map_err(anyhow::Error::from)?;
        let who = user_json(user.map(|u| u.id.as_str()));
        for channel in channels {
            self.announce(channel, "join", &key, who.clone(), state.clone());
        }
        Ok(Membership {
            presence: self.clone(),
            connection,
            key,
        })
    }

    /// Replaces the state of the member `connection`, which must be
    /// `user`'s (or anonymous for nobody).
    pub async fn update(
        &self,
        connection: &str,
        user: Option<&User>,
        state: Value,
    ) -> Result<(), PresenceError> {
        check_state(&state)?;
        let (owner, args) = match user {
            Some(user) => (
                "user_id = ?",
                vec![
                    text_arg(&state.to_string()),
                    text_arg(connection),
                    text_arg(&user.id),
                ],
            ),
            None => (
                "user_id IS NULL",
                vec![text_arg(&state.to_string()), text_arg(connection)],
            ),
        };
        let rows = self
            .db
            .backend()
            .run_returning(
                &format!("UPDATE _aura_presence SET state = ? WHERE connection = ? AND {owner} RETURNING channel, key, user_id"),
                args,
                &[Storage::Text; 3],
            )
            .await?;
        if rows.is_empty() {
            return Err(PresenceError::NotFound);
        }
        for row in rows {
            let who = user_json(row[2].as_str());
            self.announce(
                row[0].as_str().unwrap_or_default(),
                "update",
                row[1].as_str().unwrap_or_default(),
                who,
                state.clone(),
            );
        }
        Ok(())
    }

    /// Removes rows (`condition` with its args) and announces each leave.
    async fn remove(&self, condition: &str, args: Vec<Arg>) -> anyhow::Result<()> {
        let rows = self
            .db
            .backend()
            .run_returning(
                &format!("DELETE FROM _aura_presence WHERE {condition} RETURNING channel, key, user_id, state"),
                args,
                &[Storage::Text; 4],
            )
            .await?;
        for row in rows {
            let state = row[3]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            self.announce(
                row[0].as_str().unwrap_or_default(),
                "leave",
                row[1].as_str().unwrap_or_default(),
                user_json(row[2].as_str()),
                state,
            );
        }
        Ok(())
    }

    async fn leave(&self, connection: &str) -> anyhow::Result<()> {
        self.remove("connection = ?", vec![text_arg(connection)])
            .await
    }

    /// Refreshes this node's members; removes members no node refreshed
    /// within the timeout.
    async fn sweep(&self) -> anyhow::Result<()> {
        let unleft = std::mem::take(&mut *self.unleft.lock().unwrap_or_else(|e| e.into_inner()));
        for (i, connection) in unleft.iter().enumerate() {
            if let Err(err) = self.leave(connection).await {
                self.unleft
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(unleft[i..].iter().cloned());
                return Err(err);
            }
        }
        let now = chrono::Utc::now();
        self.db
            .backend()
            .run(
                "UPDATE _aura_presence SET seen = ? WHERE node = ?",
                [text_arg(&values::format_time(now)), text_arg(&self.node)],
            )
            .await?;
        let cutoff = now - chrono::Duration::from_std(self.timeout)?;
        self.remove("seen < ?", vec![text_arg(&values::format_time(cutoff))])
            .await
    }

    /// Who is on `channel`: `{key, user, state, joined}`, oldest first.
    pub async fn members(&self, channel: &str) -> anyhow::Result<Vec<Value>> {
        let select = self.db.backend().statement(
            "SELECT key, user_id, state, joined FROM _aura_presence WHERE channel = ? ORDER BY joined, key",
            [text_arg(channel)],
        );
        Ok(self
            .db
            .backend()
            .fetch(&select, &[Storage::Text; 4])
            .await?
            .into_iter()
            .map(|row| {
                json!({
                    "key": row[0],
                    "user": user_json(row[1].as_str()),
                    "state": row[2].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()),
                    "joined": row[3],
                })
            })
            .collect())
    }
}
