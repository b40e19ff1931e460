//! `GET /api/realtime` (Server-Sent Events) and
//! `POST /api/realtime/channels/{channel}` (publish).
//!
//! Record-change channels (`collections.{collection}.{id}`) are open to
//! everyone: each event reaches a subscriber only if the collection's view
//! rule lets that subscriber see the record. Other channels need the admin
//! token until per-channel rules exist (they come with auth): as
//! `Authorization: Bearer`, or as `?token=` for `EventSource`, which cannot
//! set headers.

use super::{ApiError, AppState};
use crate::db::{Caller, Database};
use crate::realtime::{Event, MAX_PATTERNS, Pattern, Resume};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{Receiver, error::RecvError};

/// How often an idle stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
pub(super) struct SubscribeQuery {
    channels: Option<String>,
    /// A filter record-change events must match (the filter language).
    filter: Option<String>,
    token: Option<String>,
    #[serde(rename = "lastEventId")]
    last_event_id: Option<u64>,
}

pub(super) async fn subscribe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<SubscribeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    // `?token=` is for `EventSource`, which cannot set headers.
    let caller = match query.token.as_deref() {
        Some(token) if !headers.contains_key(header::AUTHORIZATION) => {
            state.caller(Some(token)).await?
        }
        _ => super::records::caller(&state, &headers).await?,
    };
    let list = query.channels.unwrap_or_default();
    let patterns: Vec<Pattern> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Pattern::parse)
        .collect::<Result<_, _>>()
        .map_err(ApiError::bad_request)?;
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(ApiError::bad_request(format!(
            "`channels` must list 1 to {MAX_PATTERNS} comma-separated patterns"
        )));
    }
    if caller != Caller::Service
        && let Some(other) = list
            .split(',')
            .map(str::trim)
            .find(|p| !p.is_empty() && !p.starts_with("collections."))
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "`{other}` is not a record-change channel: custom channels need the admin token"
            ),
        ));
    }
    let filter = match query.filter.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(crate::db::filter::parse(text).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", err.to_string())
                .with_details(json!({ "position": err.position }))
        })?),
        _ => None,
    };
    let last = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(value) => Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Last-Event-ID must be an event id"))?,
        ),
        None => query.last_event_id,
    };
    let (receiver, resume) = state.realtime.subscribe(last);
    let ready = sse::Event::default()
        .event("ready")
        .data(json!({ "channels": list }).to_string());
    let (resync, replay) = match resume {
        Resume::Replay(events) => (None, events.into()),
        Resume::TooOld => {
            let event = sse::Event::default()
                .event("resync")
                .data(json!({ "reason": "the events after Last-Event-ID are no longer kept; reload state" }).to_string());
            (Some(event), VecDeque::new())
        }
    };
    let feed = Feed {
        access: match (caller, filter) {
            (Caller::Service, None) => None,
            (caller, filter) => Some(RecordAccess {
                db: state.db.clone(),
                caller,
                filter,
            }),
        },
        patterns,
        receiver,
        replay,
        last_sent: last.unwrap_or(0),
        opening: [Some(ready), resync].into_iter().flatten().collect(),
        done: false,
    };
    Ok(Sse::new(feed.stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// How one subscriber's record-change events are checked.
struct RecordAccess {
    db: Arc<Database>,
    caller: Caller,
    filter: Option<crate::db::filter::Expr>,
}

/// One subscriber's stream: opening events, the replay, then live events.
struct Feed {
    /// What record-change events must pass: the view rule (for subscribers
    /// other than the admin) and the subscriber's filter.
    access: Option<RecordAccess>,
    patterns: Vec<Pattern>,
    receiver: Receiver<Arc<Event>>,
    replay: VecDeque<Arc<Event>>,
    last_sent: u64,
    opening: VecDeque<sse::Event>,
    done: bool,
}

impl Feed {
    fn stream(self) -> impl Stream<Item = Result<sse::Event, Infallible>> {
        futures::stream::unfold(self, |mut feed| async move {
            let event = feed.next().await?;
            Some((Ok(event), feed))
        })
    }

    async fn next(&mut self) -> Option<sse::Event> {
        if self.done {
            return None;
        }
        if let Some(event) = self.opening.pop_front() {
            return Some(event);
        }
        loop {
            let event = match self.replay.pop_front() {
                Some(event) => event,
                None => match self.receiver.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => {
                        self.done = true;
                        let reason = json!({
                            "code": "slow_consumer",
                            "message": format!("this subscriber fell {missed} events behind and was disconnected; reconnect with Last-Event-ID"),
                        });
                        return Some(
                            sse::Event::default()
                                .event("error")
                                .data(reason.to_string()),
                        );
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            // Live events already sent during the replay are skipped.
            if event.id <= self.last_sent
                || !self.patterns.iter().any(|p| p.matches(&event.channel))
            {
                continue;
            }
            self.last_sent = event.id;
            if let Some(access) = self
                .access
                .as_ref()
                .filter(|_| event.channel.starts_with("collections."))
            {
                let collection = event.data["collection"].as_str().unwrap_or_default();
                let visible = access
                    .db
                    .can_view(&access.caller, collection, &event.data["record"], access.filter.as_ref())
                    .await
                    .unwrap_or_else(|err| {
                        tracing::warn!(error = %err, "checking a record event against its view rule");
                        false
                    });
                if !visible {
                    continue;
                }
            }
            let data = json!({ "channel": event.channel, "data": event.data });
            return Some(
                sse::Event::default()
                    .id(event.id.to_string())
                    .event("message")
                    .data(data.to_string()),
            );
        }
    }
}

pub(super) async fn publish(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if super::records::caller(&state, &headers).await.ok() != Some(Caller::Service) {
        return Err(ApiError::unauthorized());
    }
    let data: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::bad_request(format!("the body must be JSON: {err}")))?
    };
    crate::realtime::check_publishable(&channel)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel", message))?;
    let id = state
        .realtime
        .publish(&channel, data)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel", message))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "channel": channel })),
    ))
}
