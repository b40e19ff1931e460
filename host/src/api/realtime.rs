//! `GET /api/realtime` (Server-Sent Events, with presence),
//! `POST /api/realtime/channels/{channel}` (publish), presence members and
//! the admin's channel rules.
//!
//! Record-change channels (`collections.{collection}.{id}`) are open to
//! everyone: each event reaches a subscriber only if the collection's view
//! rule lets that subscriber see the record. Other channels follow their
//! channel rule ([`crate::realtime::access`]); the admin token passes every
//! rule. Tokens come as `Authorization: Bearer`, or as `?token=` for
//! `EventSource`, which cannot set headers.

use super::{ApiError, AppState};
use crate::db::{Caller, Database};
use crate::realtime::access::{self, AccessError, ChannelRule, Wants};
use crate::realtime::presence::{MAX_JOINS, Membership, PresenceError};
use crate::realtime::{Event, MAX_PATTERNS, PRESENCE_CHANNELS, Pattern, RECORD_CHANNELS, Resume};
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
use std::time::{Duration, Instant};
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
    /// Channels to be present on while the stream is open.
    join: Option<String>,
    /// The presence state (a JSON object) with `join`.
    state: Option<String>,
}

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        let message = err.to_string();
        match err {
            AccessError::Invalid(_) => Self::new(StatusCode::BAD_REQUEST, "invalid_rule", message),
            AccessError::Denied(_) => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            AccessError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "rule_not_found", message),
            AccessError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

impl From<PresenceError> for ApiError {
    fn from(err: PresenceError) -> Self {
        let message = err.to_string();
        match err {
            PresenceError::Invalid(_) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_presence_state", message)
            }
            PresenceError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "presence_not_found", message)
            }
            PresenceError::Internal(err) => Self::internal(format!("{err:#}")),
        }
    }
}

fn invalid_channel(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_channel", message)
}

/// The user behind a caller (none for the admin and for nobody).
fn user_of(caller: &Caller) -> Option<&crate::db::User> {
    match caller {
        Caller::User(user) => user.as_ref(),
        Caller::Service => None,
    }
}

/// Joins the channels of `?join=` as the caller, with `?state=`.
async fn join(
    state: &Arc<AppState>,
    caller: &Caller,
    channels: &str,
    presence_state: Option<&str>,
) -> Result<Membership, ApiError> {
    let channels: Vec<String> = channels
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if channels.len() > MAX_JOINS {
        return Err(ApiError::bad_request(format!(
            "`join` lists at most {MAX_JOINS} channels"
        )));
    }
    for channel in &channels {
        crate::realtime::check_publishable(channel).map_err(invalid_channel)?;
        access::check(&state.db, caller, channel, Wants::Subscribe).await?;
    }
    let presence_state = match presence_state {
        Some(text) => serde_json::from_str(text).map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_presence_state",
                format!("`state` must be a JSON object: {err}"),
            )
        })?,
        None => json!({}),
    };
    Ok(state
        .presence
        .join(&channels, user_of(caller), presence_state)
        .await?)
}

pub(super) async fn subscribe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<SubscribeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    // `?token=` is for `EventSource`, which cannot set headers.
    let token = match query.token.as_deref() {
        Some(token) if !headers.contains_key(header::AUTHORIZATION) => Some(token),
        _ if headers.contains_key(header::AUTHORIZATION) => {
            // A header that is not `Bearer …` is a token no one accepts.
            Some(super::bearer(&headers).unwrap_or_default())
        }
        _ => None,
    };
    // A user's stream lasts as long as their session (see `SessionCheck`).
    let (caller, session) = match token {
        Some(token) if !state.is_admin(Some(token)).await => {
            let signed_in = state.auth.authenticate(token).await?;
            let caller = Caller::User(Some(signed_in.user.clone()));
            let session = SessionCheck {
                auth: state.auth.clone(),
                session: signed_in.session,
                user: signed_in.user,
                checked: Instant::now(),
            };
            (caller, Some(session))
        }
        token => (state.caller(token).await?, None),
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
    let texts: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    for text in texts.iter().filter(|p| !p.starts_with(RECORD_CHANNELS)) {
        access::check(&state.db, &caller, text, Wants::Subscribe).await?;
    }
    let membership = match query.join.as_deref().filter(|j| !j.trim().is_empty()) {
        Some(channels) => Some(join(&state, &caller, channels, query.state.as_deref()).await?),
        None => None,
    };
    let filter = match query.filter.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Some(crate::db::caller_filter(text, &caller)?),
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
    let (receiver, resume, position) = state.realtime.subscribe(last);
    // Where to resume from if the stream drops before its first event.
    let mut ready = json!({ "channels": list, "lastEventId": position.to_string() });
    if let Some(membership) = &membership {
        ready["presence"] = json!({ "connection": membership.connection, "key": membership.key });
    }
    let ready = sse::Event::default().event("ready").data(ready.to_string());
    // Who is already present, for each presence channel subscribed by name.
    let mut syncs = Vec::new();
    for text in &texts {
        if let Some(channel) = text.strip_prefix(PRESENCE_CHANNELS)
            && crate::realtime::validate_channel(channel).is_ok()
        {
            let members = state
                .presence
                .members(channel)
                .await
                .map_err(ApiError::internal)?;
            let data = json!({ "channel": text, "data": { "action": "sync", "members": members } });
            syncs.push(
                sse::Event::default()
                    .event("message")
                    .data(data.to_string()),
            );
        }
    }
    let (resync, replay) = match resume {
        Resume::Replay(events) => (None, events.into()),
        Resume::TooOld => {
            let event = sse::Event::default()
                .event("resync")
                .data(json!({ "reason": "the events after Last-Event-ID are no longer kept; reload state" }).to_string());
            (Some(event), VecDeque::new())
        }
    };
    // Concrete custom channels were checked above; others reached through
    // a wildcard are checked as their events arrive.
    let channels = (caller != Caller::Service).then(|| ChannelAccess {
        db: state.db.clone(),
        caller: caller.clone(),
        decided: texts
            .iter()
            .filter(|t| {
                !t.starts_with(RECORD_CHANNELS) && crate::realtime::validate_channel(t).is_ok()
            })
            .map(|t| ((*t).to_owned(), true))
            .collect(),
    });
    let feed = Feed {
        session,
        channels,
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
        opening: [Some(ready), resync]
            .into_iter()
            .flatten()
            .chain(syncs)
            .collect(),
        done: false,
        // Streams with members are kept alive at the presence heartbeat, so
        // a dropped connection is found (and leaves) quickly.
        keep_alive: if membership.is_some() {
            state.presence.heartbeat()
        } else {
            KEEP_ALIVE
        },
        _membership: membership,
    };
    let keep_alive = feed.keep_alive;
    Ok(Sse::new(feed.stream()).keep_alive(KeepAlive::new().interval(keep_alive)))
}

/// How one subscriber's record-change events are checked.
struct RecordAccess {
    db: Arc<Database>,
    caller: Caller,
    filter: Option<crate::db::filter::Expr>,
}

/// Which custom channels one subscriber may receive, decided once per
/// channel by its rule.
struct ChannelAccess {
    db: Arc<Database>,
    caller: Caller,
    decided: std::collections::HashMap<String, bool>,
}

/// Channel decisions a stream remembers before starting over.
const MAX_DECIDED: usize = 1024;

impl ChannelAccess {
    async fn allows(&mut self, channel: &str) -> bool {
        if let Some(allowed) = self.decided.get(channel) {
            return *allowed;
        }
        let allowed = match access::check(&self.db, &self.caller, channel, Wants::Subscribe).await {
            Ok(()) => true,
            Err(AccessError::Denied(_)) => false,
            Err(err) => {
                tracing::warn!(error = %err, channel, "checking an event against its channel rule");
                return false;
            }
        };
        if self.decided.len() >= MAX_DECIDED {
            self.decided.clear();
        }
        self.decided.insert(channel.to_owned(), allowed);
        allowed
    }
}

/// How often a signed-in subscriber's session is checked again, at most:
/// before an event is sent, when this long has passed since the last check.
const SESSION_RECHECK: Duration = Duration::from_secs(2);

/// The session a signed-in subscriber's stream acts for. When it ends
/// (logout, revocation, password change, the account deleted) the stream
/// ends with a `session_ended` error event; when the user's roles or email
/// change, the rules see the change.
struct SessionCheck {
    auth: Arc<crate::auth::Auth>,
    session: String,
    user: crate::db::User,
    checked: Instant,
}

/// One subscriber's stream: opening events, the replay, then live events.
struct Feed {
    /// The signed-in subscriber's session, checked again as events flow.
    session: Option<SessionCheck>,
    /// Custom-channel rules, for subscribers other than the admin.
    channels: Option<ChannelAccess>,
    /// What record-change events must pass: the view rule (for subscribers
    /// other than the admin) and the subscriber's filter.
    access: Option<RecordAccess>,
    patterns: Vec<Pattern>,
    receiver: Receiver<Arc<Event>>,
    replay: VecDeque<Arc<Event>>,
    last_sent: u64,
    opening: VecDeque<sse::Event>,
    done: bool,
    keep_alive: Duration,
    /// Leaves the joined channels when the stream ends.
    _membership: Option<Membership>,
}

impl Feed {
    /// Checks the subscriber's session again if it is due: the error event
    /// that ends the stream when the session has ended; a changed user
    /// (roles, email) replaces the one the rules see.
    async fn recheck_session(&mut self) -> Result<(), sse::Event> {
        let Some(check) = self.session.as_mut() else {
            return Ok(());
        };
        if check.checked.elapsed() < SESSION_RECHECK {
            return Ok(());
        }
        match check
            .auth
            .session_user(&check.session, &check.user.id)
            .await
        {
            Ok(Some(user)) => {
                check.checked = Instant::now();
                if user != check.user {
                    check.user = user.clone();
                    let caller = Caller::User(Some(user));
                    if let Some(access) = self.access.as_mut() {
                        access.caller = caller.clone();
                    }
                    if let Some(channels) = self.channels.as_mut() {
                        channels.caller = caller;
                        channels.decided.clear();
                    }
                }
                Ok(())
            }
            Ok(None) => {
                let reason = json!({
                    "code": "session_ended",
                    "message": "the session of this stream has ended (signed out, revoked, or the account changed); sign in and subscribe again",
                });
                Err(sse::Event::default()
                    .event("error")
                    .data(reason.to_string()))
            }
            Err(err) => {
                // Keep serving; the next event checks again.
                tracing::warn!(error = %err, "checking a stream's session");
                Ok(())
            }
        }
    }

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
            if let Err(ended) = self.recheck_session().await {
                self.done = true;
                return Some(ended);
            }
            self.last_sent = event.id;
            if !event.channel.starts_with(RECORD_CHANNELS)
                && let Some(channels) = self.channels.as_mut()
                && !channels.allows(&event.channel).await
            {
                continue;
            }
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
            return Some(
                sse::Event::default()
                    .id(event.id.to_string())
                    .event("message")
                    .data(event.message()),
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
    let caller = super::records::caller(&state, &headers).await?;
    let data: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|err| ApiError::bad_request(format!("the body must be JSON: {err}")))?
    };
    crate::realtime::check_publishable(&channel).map_err(invalid_channel)?;
    access::check(&state.db, &caller, &channel, Wants::Publish).await?;
    let id = state
        .realtime
        .publish(&channel, data)
        .map_err(invalid_channel)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "channel": channel })),
    ))
}

/// `GET /api/realtime/presence/{channel}`: who is on a channel (for those
/// who may subscribe to it).
pub(super) async fn members(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = super::records::caller(&state, &headers).await?;
    crate::realtime::check_publishable(&channel).map_err(invalid_channel)?;
    access::check(&state.db, &caller, &channel, Wants::Subscribe).await?;
    let members = state
        .presence
        .members(&channel)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "channel": channel, "members": members })))
}

/// `PUT /api/realtime/members/{connection}`: replaces the presence state of
/// one's own stream (its `connection` from the `ready` event).
pub(super) async fn update_member(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(connection): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let caller = super::records::caller(&state, &headers).await?;
    let presence_state: Value = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_presence_state",
            format!("the body must be a JSON object: {err}"),
        )
    })?;
    state
        .presence
        .update(&connection, user_of(&caller), presence_state)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/admin/realtime/rules`.
pub(super) async fn rules(
    State(state): State<Arc<AppState>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "rules": access::list(&state.db).await? })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RuleBody {
    #[serde(default)]
    subscribe_rule: Option<String>,
    #[serde(default)]
    publish_rule: Option<String>,
}

/// `PUT /api/admin/realtime/rules/{pattern}`.
pub(super) async fn put_rule(
    State(state): State<Arc<AppState>>,
    Path(pattern): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let body: RuleBody = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is {{subscribeRule?, publishRule?}}: {err}"),
        )
    })?;
    let rule = ChannelRule {
        pattern,
        subscribe_rule: body.subscribe_rule,
        publish_rule: body.publish_rule,
    };
    Ok(Json(access::put(&state.db, rule).await?))
}

/// `DELETE /api/admin/realtime/rules/{pattern}`.
pub(super) async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Path(pattern): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    access::delete(&state.db, &pattern).await?;
    Ok(StatusCode::NO_CONTENT)
}
