//! Realtime across nodes: events published on one node reach subscribers
//! on every node sharing the PostgreSQL database, through `LISTEN/NOTIFY`
//! on channel `aura_events` (`aura_events_NAME` for environment NAME). No
//! broker of our own.
//!
//! A notification carries `{"node", "channel", "data"}`. PostgreSQL limits
//! a payload to 8000 bytes: larger events are stored in
//! `_aura_event_payloads` (kept a few minutes) and the notification carries
//! `#id` instead. Each node ignores its own notifications, since it already
//! delivered those events locally.

use super::Broker;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Largest payload sent inline (PostgreSQL's limit is 8000 bytes).
const MAX_INLINE: usize = 7900;

/// Starts relaying `broker`'s events through PostgreSQL, both ways.
pub async fn start(pool: PgPool, broker: Arc<Broker>, channel: String) -> anyhow::Result<()> {
    let node = hex::encode(rand::random::<[u8; 8]>());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(&channel).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    broker.relay_to(sender);
    tokio::spawn(send(pool.clone(), node.clone(), channel, receiver));
    tokio::spawn(receive(pool, node, listener, Arc::downgrade(&broker)));
    Ok(())
}

async fn send(
    pool: PgPool,
    node: String,
    notify: String,
    mut events: mpsc::UnboundedReceiver<(String, Value)>,
) {
    while let Some((channel, data)) = events.recv().await {
        let payload = json!({ "node": node, "channel": channel, "data": data }).to_string();
        let sent = async {
            let payload = if payload.len() <= MAX_INLINE {
                payload
            } else {
                sqlx::query(
                    "DELETE FROM _aura_event_payloads WHERE at < now() - interval '5 minutes'",
                )
                .execute(&pool)
                .await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO _aura_event_payloads (payload) VALUES ($1) RETURNING id",
                )
                .bind(&payload)
                .fetch_one(&pool)
                .await?;
                format!("#{id}")
            };
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&notify)
                .bind(payload)
                .execute(&pool)
                .await
        };
        if let Err(err) = sent.await {
            tracing::warn!(error = %err, channel, "event not relayed to other nodes");
        }
    }
}

async fn receive(
    pool: PgPool,
    node: String,
    mut listener: PgListener,
    broker: std::sync::Weak<Broker>,
) {
    loop {
        let notification = match listener.recv().await {
            Ok(notification) => notification,
            Err(err) => {
                tracing::warn!(error = %err, "event relay lost its connection; reconnecting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let text = match notification
            .payload()
            .strip_prefix('#')
            .map(str::parse::<i64>)
        {
            None => notification.payload().to_owned(),
            Some(Ok(id)) => {
                match sqlx::query_scalar::<_, String>(
                    "SELECT payload FROM _aura_event_payloads WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&pool)
                .await
                {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(err) => {
                        tracing::warn!(error = %err, "reading a relayed event");
                        continue;
                    }
                }
            }
            Some(Err(_)) => continue,
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if event["node"].as_str() == Some(node.as_str()) {
            continue;
        }
        if let Some(channel) = event["channel"].as_str() {
            let _ = broker.publish_local(channel, event["data"].clone());
        }
    }
}
