//! Realtime events: an in-process broker of channel events, delivered to
//! Server-Sent Events subscribers.
//!
//! Every event gets an increasing id and goes to a broadcast channel; each
//! subscriber filters it by its channel patterns. The newest events are kept
//! in a bounded buffer so a reconnecting client can resume from its
//! `Last-Event-ID`, or is told to resync when that is too old. Ids start at
//! a random base per process, so an id this process did not give (from
//! before a restart, or from another node) asks for a resync instead of
//! resuming at the wrong place. A subscriber
//! that falls a whole buffer behind is cut off with a reason instead of
//! holding memory without bound. Fan-out costs no database query.

pub mod access;
pub mod presence;
pub mod relay;

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Longest channel name.
const MAX_CHANNEL_LENGTH: usize = 255;
/// Most patterns one subscriber may hold.
pub const MAX_PATTERNS: usize = 100;

/// One published event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increasing id, used as the SSE `id`.
    pub id: u64,
    /// The channel (`chat.room1`).
    pub channel: String,
    /// The payload.
    pub data: Value,
    /// `{"channel", "data"}` as sent to subscribers, serialized once for
    /// all of them.
    #[serde(skip)]
    message: std::sync::OnceLock<String>,
}

impl Event {
    /// The SSE `data` of this event: `{"channel": …, "data": …}`.
    pub fn message(&self) -> &str {
        self.message.get_or_init(|| {
            serde_json::json!({ "channel": self.channel, "data": self.data }).to_string()
        })
    }
}

/// The broker.
pub struct Broker {
    /// Where events published here also go, for other nodes (see [`relay`]).
    relay: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(String, Value)>>,
    /// The first id this process gives.
    base: u64,
    next_id: AtomicU64,
    sender: broadcast::Sender<std::sync::Arc<Event>>,
    history: Mutex<VecDeque<std::sync::Arc<Event>>>,
    capacity: usize,
}

/// Where a resuming subscriber stands.
pub enum Resume {
    /// These buffered events came after the client's last one.
    Replay(Vec<std::sync::Arc<Event>>),
    /// The client's last event is older than the buffer: it must resync.
    TooOld,
}

impl Broker {
    /// A broker keeping the newest `capacity` events, which is also how far
    /// a subscriber may fall behind.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // Below 2^53, so JavaScript reads every id exactly.
        let base = (rand::random::<u64>() % (1 << 40) + 1) << 8;
        let (sender, _) = broadcast::channel(capacity);
        Self {
            relay: std::sync::OnceLock::new(),
            base,
            next_id: AtomicU64::new(base),
            sender,
            history: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// Publishes `data` on `channel` here and, through the relay if one is
    /// set, on every other node; returns the (local) event id.
    pub fn publish(&self, channel: &str, data: Value) -> Result<u64, String> {
        validate_channel(channel)?;
        if let Some(relay) = self.relay.get() {
            let _ = relay.send((channel.to_owned(), data.clone()));
        }
        self.publish_local(channel, data)
    }

    /// Publishes an event to this node's subscribers only (events arriving
    /// from other nodes).
    pub fn publish_local(&self, channel: &str, data: Value) -> Result<u64, String> {
        validate_channel(channel)?;
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        // Ids are assigned under the lock so the buffer stays in id order.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let event = std::sync::Arc::new(Event {
            id,
            channel: channel.to_owned(),
            data,
            message: std::sync::OnceLock::new(),
        });
        if history.len() == self.capacity {
            history.pop_front();
        }
        history.push_back(event.clone());
        // No subscribers is not an error.
        let _ = self.sender.send(event);
        Ok(id)
    }

    /// Sends every event published here to `relay` as well.
    pub fn relay_to(&self, relay: tokio::sync::mpsc::UnboundedSender<(String, Value)>) {
        let _ = self.relay.set(relay);
    }

    /// A live feed, what a client resuming after `last` missed, and the id
    /// to resume after from here on (the newest event's, or the one just
    /// before the first, so a stream that has seen no event can resume too).
    /// Subscribe first, then read the buffer, so nothing falls between.
    pub fn subscribe(
        &self,
        last: Option<u64>,
    ) -> (broadcast::Receiver<std::sync::Arc<Event>>, Resume, u64) {
        let receiver = self.sender.subscribe();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let position = self.next_id.load(Ordering::Relaxed) - 1;
        let resume = match last {
            None => Resume::Replay(Vec::new()),
            Some(last) if last + 1 < self.base || last > position => Resume::TooOld,
            Some(last) => {
                let oldest = history
                    .front()
                    .map_or(self.next_id.load(Ordering::Relaxed), |e| e.id);
                if last + 1 < oldest {
                    Resume::TooOld
                } else {
                    Resume::Replay(history.iter().filter(|e| e.id > last).cloned().collect())
                }
            }
        };
        (receiver, resume, position)
    }
}

/// The prefix of record-change channels, which only the database publishes on.
pub const RECORD_CHANNELS: &str = "collections.";

/// The prefix of presence channels (`presence.chat.room1` carries who
/// joins and leaves `chat.room1`), which only the presence service publishes on.
pub const PRESENCE_CHANNELS: &str = "presence.";

/// Refuses channels reserved for record changes and presence (for REST
/// and functions).
pub fn check_publishable(channel: &str) -> Result<(), String> {
    if channel.starts_with(RECORD_CHANNELS) {
        return Err(format!(
            "`{channel}`: channels starting with `{RECORD_CHANNELS}` carry record changes and are published by the database only"
        ));
    }
    if channel.starts_with(PRESENCE_CHANNELS) {
        return Err(format!(
            "`{channel}`: channels starting with `{PRESENCE_CHANNELS}` carry presence and are published by Aura only"
        ));
    }
    validate_channel(channel)
}

/// Channel names: dot-separated segments of `a-z A-Z 0-9 - _ :`.
pub fn validate_channel(channel: &str) -> Result<(), String> {
    let valid = !channel.is_empty()
        && channel.len() <= MAX_CHANNEL_LENGTH
        && channel.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid channel `{channel}`: use dot-separated segments of letters, digits, `-`, `_` or `:`"
        ))
    }
}

/// A subscription pattern: segments, where `*` matches one segment and a
/// final `>` matches one or more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<String>);

impl Pattern {
    /// Parses a pattern, explaining a bad one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            let ok = segment == "*"
                || (segment == ">" && i == last)
                || (!segment.is_empty() && validate_channel(segment).is_ok());
            if !ok {
                return Err(format!(
                    "invalid pattern `{text}`: segments are names, `*` (one segment) or a final `>` (the rest)"
                ));
            }
        }
        Ok(Self(segments))
    }

    /// Whether `channel` matches.
    pub fn matches(&self, channel: &str) -> bool {
        let parts: Vec<&str> = channel.split('.').collect();
        for (i, segment) in self.0.iter().enumerate() {
            match segment.as_str() {
                ">" => return parts.len() > i,
                "*" if i < parts.len() => {}
                name if parts.get(i) == Some(&name) => {}
                _ => return false,
            }
        }
        parts.len() == self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_match_segments() {
        let p = |t: &str| Pattern::parse(t).unwrap();
        assert!(p("chat.room1").matches("chat.room1"));
        assert!(!p("chat.room1").matches("chat.room2"));
        assert!(p("chat.*").matches("chat.room1"));
        assert!(!p("chat.*").matches("chat.room1.typing"));
        assert!(!p("chat.*").matches("chat"));
        assert!(p("chat.>").matches("chat.room1.typing"));
        assert!(!p("chat.>").matches("chat"));
        assert!(Pattern::parse("chat.>.x").is_err());
        assert!(Pattern::parse("chat..x").is_err());
    }

    #[test]
    fn resume_replays_what_was_missed_or_asks_for_a_resync() {
        let broker = Broker::new(3);
        let ids: Vec<u64> = (0..5)
            .map(|i| broker.publish("a", json!(i)).unwrap())
            .collect();
        // The buffer holds the last three.
        let (_, resume, _) = broker.subscribe(Some(ids[2]));
        let Resume::Replay(events) = resume else {
            panic!("expected a replay")
        };
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), ids[3..]);
        let (_, resume, _) = broker.subscribe(Some(ids[0]));
        assert!(matches!(resume, Resume::TooOld));
        let (_, resume, _) = broker.subscribe(Some(ids[1]));
        assert!(matches!(resume, Resume::Replay(ref e) if e.len() == 3));
        // Ids this broker never gave: another process's.
        let other = Broker::new(3);
        let foreign = other.publish("a", json!(0)).unwrap();
        assert!(matches!(broker.subscribe(Some(foreign)).1, Resume::TooOld));
        assert!(matches!(
            broker.subscribe(Some(ids[4] + 100)).1,
            Resume::TooOld
        ));
        assert!(matches!(broker.subscribe(Some(0)).1, Resume::TooOld));
    }

    #[test]
    fn a_stream_that_saw_no_event_resumes_from_its_position() {
        let broker = Broker::new(8);
        let (_, _, position) = broker.subscribe(None);
        let (_, resume, _) = broker.subscribe(Some(position));
        assert!(matches!(resume, Resume::Replay(ref e) if e.is_empty()));
        let id = broker.publish("a", json!(1)).unwrap();
        assert_eq!(id, position + 1);
        let (_, resume, now) = broker.subscribe(Some(position));
        assert!(matches!(resume, Resume::Replay(ref e) if e.len() == 1 && e[0].id == id));
        assert_eq!(now, id);
    }

    #[test]
    fn bad_channels_are_refused() {
        let broker = Broker::new(4);
        for bad in ["", "a..b", "a b", "a/b", ".a"] {
            assert!(broker.publish(bad, json!(null)).is_err(), "{bad}");
        }
    }
}
