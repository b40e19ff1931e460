//! Channel rules and presence: users subscribe and publish on custom
//! channels as the admin's rules allow, join channels with a state, see
//! who is present, and leave when their stream drops, on one node and
//! across two nodes sharing PostgreSQL.

use crate::database::Db;
use crate::support::{Aura, assert_error, encode};
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::pin::Pin;
use std::time::Duration;

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// A signed-in user: id and access token.
struct User {
    id: String,
    token: String,
}

async fn register(aura: &Aura, email: &str) -> User {
    let response = aura
        .http
        .post(aura.at("/api/auth/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    User {
        id: body["user"]["id"].as_str().unwrap().to_owned(),
        token: body["accessToken"].as_str().unwrap().to_owned(),
    }
}

async fn put_rule(aura: &Aura, pattern: &str, body: Value) -> reqwest::Response {
    aura.http
        .put(aura.at(&format!("/api/admin/realtime/rules/{pattern}")))
        .bearer_auth(&aura.token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Opens `/api/realtime?{query}` as `token`; answers the `ready` event's
/// data and the stream, or the refusal.
async fn open(
    aura: &Aura,
    query: &str,
    token: Option<&str>,
) -> Result<(Value, Events), reqwest::Response> {
    let mut request = aura.http.get(aura.at(&format!("/api/realtime?{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    if response.status() != 200 {
        return Err(response);
    }
    let mut events: Events = Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("SSE event")),
    );
    let ready = next(&mut events).await;
    assert_eq!(ready.event, "ready");
    Ok((serde_json::from_str(&ready.data).unwrap(), events))
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

/// The next message: its channel and data.
async fn message(events: &mut Events) -> (String, Value) {
    let event = next(events).await;
    assert_eq!(event.event, "message", "{event:?}");
    let body: Value = serde_json::from_str(&event.data).unwrap();
    (
        body["channel"].as_str().unwrap().to_owned(),
        body["data"].clone(),
    )
}

async fn publish(aura: &Aura, channel: &str, token: Option<&str>, data: Value) -> u16 {
    let mut request = aura
        .http
        .post(aura.at(&format!("/api/realtime/channels/{channel}")))
        .json(&data);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn members(aura: &Aura, channel: &str, token: &str) -> Vec<Value> {
    let response = aura
        .http
        .get(aura.at(&format!("/api/realtime/presence/{channel}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["members"].as_array().unwrap().clone()
}

#[tokio::test]
async fn channel_rules_govern_who_subscribes_and_publishes() {
    let aura = Aura::start();
    let ann = register(&aura, "ann@example.com").await;
    let bob = register(&aura, "bob@example.com").await;
    let chat = put_rule(
        &aura,
        "chat.{room}",
        json!({
            "subscribeRule": "@request.auth.id != ''",
            "publishRule": "@request.auth.id != '' && room != 'announcements'",
        }),
    )
    .await;
    assert_eq!(chat.status(), 200);
    let inbox = put_rule(
        &aura,
        "inbox.{owner:users}",
        json!({ "subscribeRule": "owner = @request.auth.id", "publishRule": "" }),
    )
    .await;
    assert_eq!(inbox.status(), 200);

    // Rules are checked when set.
    for (pattern, body) in [
        ("chat.{id}", json!({})),
        ("x.{room}", json!({"subscribeRule": "nosuchfield = 1"})),
        ("x.{room:nosuch}", json!({})),
        ("collections.notes", json!({})),
        ("presence.chat", json!({})),
        ("x.>.y", json!({})),
    ] {
        assert_error(put_rule(&aura, pattern, body).await, 400, "invalid_rule").await;
    }
    assert_error(
        put_rule(&aura, "x", json!({"subscribe": ""})).await,
        400,
        "invalid_body",
    )
    .await;
    let (_, listed) = aura.admin_get("/api/admin/realtime/rules").await;
    assert_eq!(listed["rules"].as_array().unwrap().len(), 2, "{listed}");

    // Subscribing.
    let refused = open(&aura, "channels=chat.room1", None)
        .await
        .err()
        .unwrap();
    assert_error(refused, 403, "forbidden").await;
    let (_, mut room) = open(&aura, "channels=chat.room1", Some(&ann.token))
        .await
        .unwrap_or_else(|_| panic!("ann may subscribe"));
    let own = format!("channels=inbox.{}", ann.id);
    let (_, mut mail) = open(&aura, &own, Some(&ann.token))
        .await
        .unwrap_or_else(|_| panic!("ann may read her inbox"));
    for other in [
        format!("channels=inbox.{}", bob.id),
        "channels=inbox.*".into(),
    ] {
        let refused = open(&aura, &other, Some(&ann.token)).await.err().unwrap();
        assert_error(refused, 403, "forbidden").await;
    }
    // Nobody's id is `*`: a wildcard over a capture is refused to
    // anonymous subscribers too.
    let refused = open(&aura, "channels=inbox.*", None).await.err().unwrap();
    assert_error(refused, 403, "forbidden").await;
    // A wildcard subscription receives a channel only if that channel's
    // own (stricter) rule allows it.
    let staff = put_rule(
        &aura,
        "chat.staff",
        json!({ "subscribeRule": "@request.auth.roles ?= 'staff'" }),
    )
    .await;
    assert_eq!(staff.status(), 200);
    let (_, mut everything) = open(&aura, "channels=chat.*", Some(&ann.token))
        .await
        .unwrap_or_else(|_| panic!("ann may subscribe to chat.*"));
    assert_eq!(
        publish(&aura, "chat.staff", Some(&aura.token), json!({"n": 1})).await,
        202
    );
    assert_eq!(
        publish(&aura, "chat.lobby", Some(&aura.token), json!({"n": 2})).await,
        202
    );
    assert_eq!(
        message(&mut everything).await,
        ("chat.lobby".into(), json!({"n": 2}))
    );

    // Publishing.
    assert_eq!(
        publish(&aura, "chat.room1", Some(&bob.token), json!({"text": "hi"})).await,
        202
    );
    assert_eq!(
        message(&mut room).await,
        ("chat.room1".into(), json!({"text": "hi"}))
    );
    assert_eq!(
        publish(&aura, "chat.announcements", Some(&bob.token), json!({})).await,
        403
    );
    assert_eq!(publish(&aura, "chat.room1", None, json!({})).await, 403);
    assert_eq!(
        publish(&aura, "news.today", Some(&bob.token), json!({})).await,
        403
    );
    assert_eq!(
        publish(&aura, "chat.announcements", Some(&aura.token), json!({})).await,
        202
    );
    let to_ann = format!("inbox.{}", ann.id);
    assert_eq!(publish(&aura, &to_ann, None, json!({"n": 1})).await, 202);
    assert_eq!(message(&mut mail).await, (to_ann, json!({"n": 1})));
    assert_eq!(
        publish(&aura, "presence.chat.room1", Some(&aura.token), json!({})).await,
        400
    );

    // Removing a rule closes the channels it opened.
    let delete = |pattern: &'static str| {
        aura.http
            .delete(aura.at(&format!("/api/admin/realtime/rules/{pattern}")))
            .bearer_auth(&aura.token)
            .send()
    };
    assert_eq!(delete("chat.{room}").await.unwrap().status(), 204);
    assert_error(delete("chat.{room}").await.unwrap(), 404, "rule_not_found").await;
    let refused = open(&aura, "channels=chat.room1", Some(&ann.token))
        .await
        .err()
        .unwrap();
    assert_error(refused, 403, "forbidden").await;
}

#[tokio::test]
async fn presence_joins_updates_and_leaves_when_the_stream_drops() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--presence-timeout", "3"]);
    let ann = register(&aura, "ann@example.com").await;
    let bob = register(&aura, "bob@example.com").await;
    let rule = json!({ "subscribeRule": "@request.auth.id != ''" });
    assert_eq!(put_rule(&aura, "chat.{room}", rule).await.status(), 200);

    let state = encode(r#"{"status":"here"}"#);
    let query = format!("channels=presence.chat.room1&join=chat.room1&state={state}");
    let (ready, mut ann_events) = open(&aura, &query, Some(&ann.token))
        .await
        .unwrap_or_else(|_| panic!("ann joins"));
    let ann_connection = ready["presence"]["connection"].as_str().unwrap().to_owned();
    let ann_key = ready["presence"]["key"].as_str().unwrap().to_owned();
    let (channel, sync) = message(&mut ann_events).await;
    assert_eq!(channel, "presence.chat.room1");
    assert_eq!(sync["action"], "sync");
    assert_eq!(sync["members"][0]["key"], ann_key);
    assert_eq!(sync["members"][0]["state"], json!({"status": "here"}));

    // Bob joins: he sees Ann in his sync, Ann sees him join.
    let query = "channels=presence.chat.room1&join=chat.room1";
    let (ready, mut bob_events) = open(&aura, query, Some(&bob.token))
        .await
        .unwrap_or_else(|_| panic!("bob joins"));
    let bob_key = ready["presence"]["key"].as_str().unwrap().to_owned();
    let (_, sync) = message(&mut bob_events).await;
    let keys: Vec<&str> = sync["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [ann_key.as_str(), bob_key.as_str()]);
    let (_, joined) = message(&mut ann_events).await;
    assert_eq!(joined["action"], "join");
    assert_eq!(joined["key"], bob_key);
    assert_eq!(
        joined["user"],
        json!({ "id": bob.id }),
        "the id only, never the email"
    );
    assert_eq!(joined["state"], json!({}));
    assert_eq!(members(&aura, "chat.room1", &bob.token).await.len(), 2);
    let anonymous = aura
        .http
        .get(aura.at("/api/realtime/presence/chat.room1"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 403, "forbidden").await;

    // Ann changes her state; only she can.
    let update = |connection: String, token: String, body: Value| {
        aura.http
            .put(aura.at(&format!("/api/realtime/members/{connection}")))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let changed = update(
        ann_connection.clone(),
        ann.token.clone(),
        json!({"status": "away"}),
    );
    assert_eq!(changed.await.unwrap().status(), 204);
    let (_, updated) = message(&mut bob_events).await;
    assert_eq!(
        (&updated["action"], &updated["key"], &updated["state"]),
        (
            &json!("update"),
            &json!(ann_key),
            &json!({"status": "away"})
        )
    );
    let (_, own) = message(&mut ann_events).await;
    assert_eq!(own, updated, "Ann hears her own update too");
    let stolen = update(
        ann_connection.clone(),
        bob.token.clone(),
        json!({"status": "gone"}),
    );
    assert_error(stolen.await.unwrap(), 404, "presence_not_found").await;
    let not_object = update(ann_connection.clone(), ann.token.clone(), json!([1]));
    assert_error(not_object.await.unwrap(), 400, "invalid_presence_state").await;
    let huge = format!(
        "channels=chat.room1&join=chat.room1&state={}",
        encode(&json!({"x": "y".repeat(2000)}).to_string())
    );
    assert_error(
        open(&aura, &huge, Some(&bob.token)).await.err().unwrap(),
        400,
        "invalid_presence_state",
    )
    .await;
    let unruled = "channels=chat.room1&join=lobby";
    assert_error(
        open(&aura, unruled, Some(&bob.token)).await.err().unwrap(),
        403,
        "forbidden",
    )
    .await;

    // Bob's connection drops: Ann sees him leave after a heartbeat or two.
    drop(bob_events);
    let (_, left) = message(&mut ann_events).await;
    assert_eq!(
        (&left["action"], &left["key"]),
        (&json!("leave"), &json!(bob_key))
    );
    let present = members(&aura, "chat.room1", &ann.token).await;
    assert_eq!(present.len(), 1);
    assert_eq!(present[0]["user"]["id"], ann.id.as_str());
}

#[tokio::test]
async fn presence_spans_nodes_and_outlives_no_stopped_node() {
    let Some(a) = Db::postgres_with(&["--presence-timeout", "3"]).await else {
        return;
    };
    let b = crate::database::second_node(&a, &["--presence-timeout", "3"]);
    // Rules are read from the shared database: set on A, applied on B.
    let rule = json!({ "subscribeRule": "@request.auth.id != ''" });
    assert_eq!(put_rule(&a.aura, "chat.{room}", rule).await.status(), 200);
    let ann = register(&a.aura, "ann@example.com").await;
    let bob = register(&b, "bob@example.com").await;

    let (_, mut watching) = open(&b, "channels=presence.chat.room1", Some(&bob.token))
        .await
        .unwrap_or_else(|_| panic!("bob watches on B"));
    let (_, sync) = message(&mut watching).await;
    assert_eq!(sync["members"], json!([]));
    let (ready, _ann_events) = open(
        &a.aura,
        "channels=chat.room1&join=chat.room1",
        Some(&ann.token),
    )
    .await
    .unwrap_or_else(|_| panic!("ann joins on A"));
    let ann_key = ready["presence"]["key"].clone();
    let (_, joined) = message(&mut watching).await;
    assert_eq!(
        (&joined["action"], &joined["key"]),
        (&json!("join"), &ann_key)
    );
    assert_eq!(members(&b, "chat.room1", &bob.token).await.len(), 1);

    // Node A stops without a word: B sweeps Ann out after the timeout.
    let Db { aura: node_a, .. } = a;
    let _data = node_a.stop();
    let (_, left) = message(&mut watching).await;
    assert_eq!((&left["action"], &left["key"]), (&json!("leave"), &ann_key));
    assert!(members(&b, "chat.room1", &bob.token).await.is_empty());
}

/// Idle streams get keep-alive comments (at the presence heartbeat for a
/// stream with members), which `EventSource` ignores and proxies see as
/// traffic.
#[tokio::test]
async fn idle_streams_get_keep_alive_comments() {
    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--presence-timeout", "3"]);
    let response = aura
        .http
        .get(aura.at("/api/realtime?channels=lobby&join=lobby,lobby"))
        .bearer_auth(&aura.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.lines().any(|line| line.starts_with(':')) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("a keep-alive within 10 s")
            .expect("the stream is open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("event: ready"), "{seen}");
}
