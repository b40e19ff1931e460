//! Realtime: SSE subscribers receive channel events, resume with
//! Last-Event-ID, and a slow consumer is cut off while others continue.

use crate::support::Aura;
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::pin::Pin;
use std::time::Duration;

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Opens an SSE stream and waits for its `ready` event.
async fn subscribe(aura: &Aura, channels: &str, last_event_id: Option<u64>) -> Events {
    open(aura, channels, last_event_id).await.0
}

/// Opens an SSE stream; answers it and the data of its `ready` event.
async fn open(aura: &Aura, channels: &str, last_event_id: Option<u64>) -> (Events, Value) {
    let mut request = aura
        .http
        .get(aura.at(&format!("/api/realtime?channels={channels}")))
        .bearer_auth(&aura.token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("SSE event")),
    );
    let ready = next(&mut events).await;
    assert_eq!(ready.event, "ready");
    (events, serde_json::from_str(&ready.data).unwrap())
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

async fn publish(aura: &Aura, channel: &str, data: Value) -> u64 {
    let response = aura
        .http
        .post(aura.at(&format!("/api/realtime/channels/{channel}")))
        .bearer_auth(&aura.token)
        .json(&data)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// Reads message events up to and including one on `marker`.
async fn until_marker(events: &mut Events) -> Vec<(u64, String, Value)> {
    let mut seen = Vec::new();
    loop {
        let event = next(events).await;
        assert_eq!(event.event, "message", "{event:?}");
        let body: Value = serde_json::from_str(&event.data).unwrap();
        let channel = body["channel"].as_str().unwrap().to_owned();
        seen.push((
            event.id.parse().unwrap(),
            channel.clone(),
            body["data"].clone(),
        ));
        if channel == "marker" {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_stream_that_saw_no_event_resumes_from_the_id_its_ready_event_gives() {
    let aura = Aura::start();
    let (events, ready) = open(&aura, "room.*", None).await;
    let position: u64 = ready["lastEventId"].as_str().unwrap().parse().unwrap();
    drop(events);
    // Published while nobody listened: a resume from the ready id gets them.
    let first = publish(&aura, "room.a", json!(1)).await;
    publish(&aura, "room.b", json!(2)).await;
    publish(&aura, "marker", json!(null)).await;
    assert_eq!(first, position + 1);
    let mut resumed = subscribe(&aura, "room.*,marker", Some(position)).await;
    let seen = until_marker(&mut resumed).await;
    let data: Vec<_> = seen.iter().map(|(_, _, d)| d.clone()).collect();
    assert_eq!(data, [json!(1), json!(2), Value::Null]);
}

#[tokio::test]
async fn subscribers_receive_the_channels_they_match() {
    let aura = Aura::start();
    let mut chat = subscribe(&aura, "chat.*,marker", None).await;
    let mut news = subscribe(&aura, "news.>,marker", None).await;
    publish(&aura, "chat.room1.typing", json!({"who": "ann"})).await;
    let room = publish(&aura, "chat.room1", json!({"text": "hi"})).await;
    let headline = publish(&aura, "news.world.europe", json!({"n": 1})).await;
    publish(&aura, "marker", json!(null)).await;

    let got = until_marker(&mut chat).await;
    assert_eq!(
        got[0],
        (room, "chat.room1".to_owned(), json!({"text": "hi"}))
    );
    assert_eq!(got.len(), 2, "{got:?}");
    let got = until_marker(&mut news).await;
    assert_eq!(
        got[0],
        (headline, "news.world.europe".to_owned(), json!({"n": 1}))
    );
    assert_eq!(got.len(), 2, "{got:?}");
}

#[tokio::test]
async fn last_event_id_resumes_or_asks_for_a_resync() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--realtime-buffer", "4"]);
    let first = publish(&aura, "feed", json!(1)).await;
    let second = publish(&aura, "feed", json!(2)).await;
    let third = publish(&aura, "feed", json!(3)).await;
    let mut resumed = subscribe(&aura, "feed,marker", Some(first)).await;
    publish(&aura, "marker", json!(null)).await;
    let ids: Vec<u64> = until_marker(&mut resumed)
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        ids[..2],
        [second, third],
        "missed events are replayed first"
    );

    for n in 0..10 {
        publish(&aura, "feed", json!(n)).await;
    }
    let mut stale = subscribe(&aura, "feed", Some(first)).await;
    assert_eq!(next(&mut stale).await.event, "resync");

    let response = aura
        .http
        .get(aura.at("/api/realtime?channels=feed"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "a channel no rule covers is the admin's"
    );
    let response = aura
        .http
        .get(aura.at("/api/realtime?channels=bad..pattern"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_others_continue() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--realtime-buffer", "128"]);
    let mut slow = subscribe(&aura, "firehose", None).await;
    let fast = subscribe(&aura, "firehose", None).await;
    let total = 600;
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        let mut ids = Vec::new();
        while ids.len() < total {
            let event = next(&mut fast).await;
            assert_eq!(
                event.event, "message",
                "the fast subscriber is never cut off"
            );
            ids.push(event.id);
        }
        ids
    });
    // 600 events of 64 KiB: far more than socket buffers hold for a client
    // that does not read.
    let blob = "x".repeat(64 * 1024);
    for n in 0..total {
        publish(&aura, "firehose", json!({"n": n, "blob": blob})).await;
    }
    assert_eq!(reader.await.unwrap().len(), total);

    // The slow one gets what was buffered, then the reason, then the end.
    let mut last = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
        last = Some(event);
    }
    let last = last.expect("events");
    assert_eq!(last.event, "error", "{last:?}");
    let reason: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(reason["code"], "slow_consumer");
}

#[tokio::test]
async fn functions_publish_on_granted_channels_only() {
    let aura = Aura::start();
    // Importing aura:platform/events needs an events grant.
    let (status, body) = aura
        .deploy_bytes("publisher", crate::support::wasm("publisher"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("missing_grant")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing_grants"][0]["grant"],
        "events"
    );
    let (status, body) = aura
        .deploy_bytes(
            "publisher",
            crate::support::wasm("publisher"),
            json!({"grants": {"events": ["chat..x"]}}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_grants")),
        "{body}"
    );

    aura.deploy(
        "publisher",
        "publisher",
        json!({"grants": {"events": ["chat.*"]}}),
    )
    .await;
    let mut chat = subscribe(&aura, "chat.>", None).await;
    let response = aura
        .http
        .post(aura.at("/fn/publisher?channel=chat.room1"))
        .body(r#"{"text":"from a function"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    let event = next(&mut chat).await;
    assert_eq!(
        (event.event.as_str(), event.id.as_str()),
        ("message", id.to_string().as_str())
    );
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        body,
        json!({"channel": "chat.room1", "data": {"text": "from a function"}})
    );

    let response = aura
        .http
        .post(aura.at("/fn/publisher?channel=admin.alerts"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not covered by the function's events grant"),
        "{body}"
    );
}

/// Record changes are published after commit on
/// `collections.{collection}.{id}`; each reaches a subscriber only if the
/// collection's view rule lets that subscriber see the record.
#[tokio::test]
async fn record_changes_reach_subscribers_under_view_rules() {
    let aura = Aura::start();
    let (status, body) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "notes", "fields": [
                {"name": "title", "type": "text"}, {"name": "published", "type": "bool"}
            ], "viewRule": "published = true"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut admin = subscribe(&aura, "collections.notes.*", None).await;
    let mut filtered = subscribe(
        &aura,
        "collections.notes.*&filter=title%20~%20'again'",
        None,
    )
    .await;
    // No token: only record-change channels, filtered by the view rule.
    let response = aura
        .http
        .get(aura.at("/api/realtime?channels=collections.notes.*"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut anonymous: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("SSE event")),
    );
    assert_eq!(next(&mut anonymous).await.event, "ready");
    let response = aura
        .http
        .get(aura.at("/api/realtime?channels=chat.*"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "custom channels without a rule are the admin's"
    );

    let records = aura.at("/api/collections/notes/records");
    let (_, draft) = aura
        .admin_post(
            "/api/collections/notes/records",
            json!({"title": "draft", "published": false}),
        )
        .await;
    let (_, note) = aura
        .admin_post(
            "/api/collections/notes/records",
            json!({"title": "hello", "published": true}),
        )
        .await;
    let id = note["id"].as_str().unwrap();
    let response = aura
        .http
        .patch(format!("{records}/{id}"))
        .bearer_auth(&aura.token)
        .json(&json!({"title": "hello again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = aura
        .http
        .delete(format!("{records}/{id}"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let read = |event: Event| {
        let body: Value = serde_json::from_str(&event.data).unwrap();
        (
            body["channel"].as_str().unwrap().to_owned(),
            body["data"]["action"].as_str().unwrap().to_owned(),
            body["data"]["record"]["title"].as_str().unwrap().to_owned(),
        )
    };
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(read(next(&mut admin).await));
    }
    let draft_channel = format!("collections.notes.{}", draft["id"].as_str().unwrap());
    let channel = format!("collections.notes.{id}");
    assert_eq!(
        seen,
        [
            (draft_channel, "create".to_owned(), "draft".to_owned()),
            (channel.clone(), "create".to_owned(), "hello".to_owned()),
            (
                channel.clone(),
                "update".to_owned(),
                "hello again".to_owned()
            ),
            (
                channel.clone(),
                "delete".to_owned(),
                "hello again".to_owned()
            ),
        ],
        "the admin sees every change, in order"
    );
    // A subscriber's filter applies to each event's record.
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(read(next(&mut filtered).await).1);
    }
    assert_eq!(seen, ["update", "delete"]);
    // Only the database publishes on record-change channels.
    let response = aura
        .http
        .post(aura.at("/api/realtime/channels/collections.notes.fake"))
        .bearer_auth(&aura.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // The anonymous subscriber never sees the draft: its first event is the
    // public note's creation.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(read(next(&mut anonymous).await));
    }
    assert_eq!(
        seen.iter()
            .map(|(_, action, title)| format!("{action} {title}"))
            .collect::<Vec<_>>(),
        ["create hello", "update hello again", "delete hello again"]
    );
}

/// An id from before a restart (the buffer is gone) asks for a resync
/// instead of resuming at the wrong place.
#[tokio::test]
async fn an_id_from_before_a_restart_asks_for_a_resync() {
    let aura = Aura::start();
    let old = publish(&aura, "feed", json!(1)).await;
    let aura = Aura::start_in(aura.stop());
    publish(&aura, "feed", json!(2)).await;
    let mut resumed = subscribe(&aura, "feed", Some(old)).await;
    assert_eq!(next(&mut resumed).await.event, "resync");
}
