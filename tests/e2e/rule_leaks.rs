//! Nothing a collection's rules hide leaks through another collection:
//! a filter (over REST or on a realtime stream) that follows a relation
//! reaches only the related records the caller could view by querying
//! their collection.

use crate::database::Db;
use crate::storage::user;
use eventsource_stream::Eventsource as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use std::time::Duration;

/// Owner-only `notes` with a secret; public `posts` that point at a note,
/// at several notes, and at their author. Answers (alice's token, her id,
/// bob's token).
async fn setup(db: &Db) -> (String, String, String) {
    db.define(json!({
        "name": "notes",
        "fields": [
            {"name": "secret", "type": "text"},
            {"name": "owner", "type": "relation", "collection": "users"}
        ],
        "listRule": "owner = @request.auth.id",
        "viewRule": "owner = @request.auth.id"
    }))
    .await;
    db.define(json!({
        "name": "posts",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "note", "type": "relation", "collection": "notes"},
            {"name": "notes", "type": "relation", "collection": "notes", "multiple": true},
            {"name": "author", "type": "relation", "collection": "users"}
        ],
        "listRule": "",
        "viewRule": ""
    }))
    .await;
    let (alice_token, alice) = user(&db.aura, "alice@example.com").await;
    let (bob_token, _) = user(&db.aura, "bob@example.com").await;
    let note = db
        .insert("notes", json!({"secret": "s3cret", "owner": alice}))
        .await;
    let note = note["id"].as_str().unwrap();
    db.insert(
        "posts",
        json!({"title": "hello", "note": note, "notes": [note], "author": alice}),
    )
    .await;
    (alice_token, alice, bob_token)
}

type Events = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<eventsource_stream::Event, String>> + Send>,
>;

/// A realtime stream of `query`, as `token` (or nobody); the next event
/// (`None` once the stream has closed) waits at most 10 s.
async fn stream(db: &Db, query: &[(&str, &str)], token: Option<&str>) -> Events {
    let mut request = db.aura.http.get(db.aura.at("/api/realtime")).query(query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    Box::pin(
        response
            .bytes_stream()
            .eventsource()
            .map(|event| event.map_err(|err| err.to_string())),
    )
}

async fn next(events: &mut Events) -> Option<eventsource_stream::Event> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .map(|event| event.expect("an SSE event"))
}

async fn count(db: &Db, token: Option<&str>, filter: &str) -> usize {
    let mut request = db
        .aura
        .http
        .get(db.aura.at("/api/collections/posts/records"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.query(&[("filter", filter)]).send().await.unwrap();
    assert_eq!(response.status(), 200, "{filter}");
    let page: Value = response.json().await.unwrap();
    page["items"].as_array().unwrap().len()
}

async fn filters_through_relations_obey_the_related_view_rules(db: &Db) {
    let (alice_token, alice, bob_token) = setup(db).await;
    let guesses = [
        "note.secret ~ 's'".to_owned(),
        "note.secret != ''".to_owned(),
        "note.secret = 's3cret'".to_owned(),
        format!("note.owner = '{alice}'"),
        "notes.secret ?~ 's'".to_owned(),
        "author.email ~ '@'".to_owned(),
        "author.email = 'alice@example.com'".to_owned(),
    ];
    for guess in &guesses {
        assert_eq!(count(db, None, guess).await, 0, "anonymous: {guess}");
        assert_eq!(count(db, Some(&bob_token), guess).await, 0, "bob: {guess}");
    }
    // The post itself stays public, and what is hidden reads as empty.
    assert_eq!(count(db, None, "note.secret = ''").await, 1);
    // Each relation hop costs a subquery per row: a caller's filter has a
    // bounded number of them; the admin's has not.
    let costly = vec!["note.secret = 'x'"; 25].join(" || ");
    let response = db
        .aura
        .http
        .get(db.aura.at("/api/collections/posts/records"))
        .query(&[("filter", costly.as_str())])
        .send()
        .await
        .unwrap();
    let body = crate::support::assert_error(response, 400, "invalid_filter").await;
    assert!(body.to_string().contains("at most 24"), "{body}");
    assert_eq!(count(db, Some(&db.aura.token), &costly).await, 0);
    // The note's owner reaches it through the post, and the admin all.
    for guess in &guesses {
        assert_eq!(
            count(db, Some(&alice_token), guess).await,
            1,
            "alice: {guess}"
        );
        assert_eq!(
            count(db, Some(&db.aura.token), guess).await,
            1,
            "admin: {guess}"
        );
    }
}

#[tokio::test]
async fn filters_through_relations_obey_the_related_view_rules_sqlite() {
    let db = Db::sqlite();
    filters_through_relations_obey_the_related_view_rules(&db).await;
    db.finish().await;
}

#[tokio::test]
async fn filters_through_relations_obey_the_related_view_rules_postgres() {
    if let Some(db) = Db::postgres().await {
        filters_through_relations_obey_the_related_view_rules(&db).await;
        db.finish().await;
    }
}

#[tokio::test]
async fn a_realtime_filter_cannot_test_hidden_related_fields() {
    let db = Db::sqlite();
    let (_, alice, _) = setup(&db).await;
    let filter = "note.secret ~ 's3' || title = 'marker'";
    let mut events = stream(
        &db,
        &[("channels", "collections.posts.*"), ("filter", filter)],
        None,
    )
    .await;
    assert_eq!(next(&mut events).await.unwrap().event, "ready");
    let (_, notes) = db
        .send("GET", "/api/collections/notes/records", None, true)
        .await;
    let note = notes["items"][0]["id"].as_str().unwrap().to_owned();
    db.insert(
        "posts",
        json!({"title": "probe", "note": note, "author": alice}),
    )
    .await;
    db.insert("posts", json!({"title": "marker"})).await;
    let event = next(&mut events).await.unwrap();
    let body: Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        body["data"]["record"]["title"], "marker",
        "the probe matched only through the hidden secret: {body}"
    );
    db.finish().await;
}

/// A signed-in subscriber's stream ends with its session: after logout, the
/// user's private record events stop, and the stream says why.
#[tokio::test]
async fn a_stream_ends_with_its_session() {
    let db = Db::sqlite();
    let (alice_token, alice, _) = setup(&db).await;
    let mut events = stream(
        &db,
        &[("channels", "collections.notes.*")],
        Some(&alice_token),
    )
    .await;
    assert_eq!(next(&mut events).await.unwrap().event, "ready");
    db.insert("notes", json!({"secret": "first", "owner": alice}))
        .await;
    let first = next(&mut events).await.unwrap();
    assert!(first.data.contains("first"), "{first:?}");

    let out = db
        .aura
        .http
        .post(db.aura.at("/api/auth/logout"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success(), "{}", out.status());
    // Past the interval at which streams check their session again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    db.insert("notes", json!({"secret": "second", "owner": alice}))
        .await;
    let ended = next(&mut events).await.unwrap();
    assert_eq!(ended.event, "error", "{ended:?}");
    assert!(ended.data.contains("session_ended"), "{ended:?}");
    assert!(!ended.data.contains("second"));
    assert!(next(&mut events).await.is_none(), "the stream is closed");
    db.finish().await;
}

/// A record names in its file fields only objects its author could
/// download: another user's private object is refused exactly as a
/// missing one, so the answer says nothing of it.
#[tokio::test]
async fn file_fields_name_only_objects_the_caller_may_read() {
    let db = Db::sqlite();
    let (status, body) = db
        .send(
            "POST",
            "/api/admin/storage/buckets",
            Some(json!({
                "name": "private",
                "viewRule": "owner = @request.auth.id",
                "createRule": "@request.auth.id != ''"
            })),
            true,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    db.define(json!({
        "name": "letters",
        "fields": [{"name": "scan", "type": "file", "bucket": "private"}],
        "listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''"
    }))
    .await;
    let (alice, _) = user(&db.aura, "alice@example.com").await;
    let (bob, _) = user(&db.aura, "bob@example.com").await;
    let put = db
        .aura
        .http
        .put(db.aura.at("/api/storage/private/alice/scan.pdf"))
        .bearer_auth(&alice)
        .body("alice's scan")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let create = |token: &str, key: &str| {
        db.aura
            .http
            .post(db.aura.at("/api/collections/letters/records"))
            .bearer_auth(token.to_owned())
            .json(&json!({"scan": key}))
            .send()
    };
    let refusal = |body: Value| body["error"]["details"]["fields"]["scan"]["code"].clone();
    let stolen = create(&bob, "alice/scan.pdf").await.unwrap();
    assert_eq!(stolen.status(), 400);
    let stolen: Value = stolen.json().await.unwrap();
    let missing: Value = create(&bob, "alice/none.pdf")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refusal(stolen.clone()), "file_not_found", "{stolen}");
    assert_eq!(refusal(stolen), refusal(missing), "no existence oracle");
    // The same through a batch, and the owner attaches her own object.
    let batch = db
        .aura
        .http
        .post(db.aura.at("/api/batch"))
        .bearer_auth(&bob)
        .json(&json!({"operations": [
            {"action": "create", "collection": "letters", "data": {"scan": "alice/scan.pdf"}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(batch.status(), 400);
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(refusal(batch.clone()), "file_not_found", "{batch}");
    assert_eq!(batch["error"]["details"]["index"], 0);
    let own = create(&alice, "alice/scan.pdf").await.unwrap();
    assert_eq!(own.status(), 201);
    db.finish().await;
}
