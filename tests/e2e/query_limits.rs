//! A filter that would run for a long time is stopped at the query timeout
//! while other requests are served, on both backends (issue 18, item 6).
//! Anonymous lists read on half of the database's connections at most.

use crate::database::Db;
use crate::storage::user;
use serde_json::{Value, json};

/// A public `items` collection of 300 records that each link to all 300:
/// a filter through `links.links` visits 90,000 records per record (some
/// seconds per list).
async fn tangle(db: &Db) {
    let mut definition = json!({"name": "items", "fields": [{"name": "title", "type": "text"}],
        "listRule": "", "viewRule": ""});
    db.define(definition.clone()).await;
    definition["fields"].as_array_mut().unwrap().push(
        json!({"name": "links", "type": "relation", "collection": "items", "multiple": true}),
    );
    db.define(definition).await;
    let creates: Vec<Value> = (0..300)
        .map(|n| json!({"action": "create", "collection": "items", "data": {"title": format!("item {n}")}}))
        .collect();
    let created = batch(db, creates).await;
    let ids: Vec<&Value> = created.iter().map(|record| &record["id"]).collect();
    let updates: Vec<Value> = ids
        .iter()
        .map(|id| json!({"action": "update", "collection": "items", "id": id, "data": {"links": ids}}))
        .collect();
    batch(db, updates).await;
}

/// Runs a batch as the admin; answers its results.
async fn batch(db: &Db, operations: Vec<Value>) -> Vec<Value> {
    let body = json!({ "operations": operations });
    let (status, body) = db.send("POST", "/api/batch", Some(body), true).await;
    assert_eq!(status, 200, "{body}");
    body["results"].as_array().unwrap().clone()
}

/// An anonymous list of `items` with `filter`: status and body.
async fn anonymous_list(db: &Db, filter: &str) -> (u16, Value) {
    let response = db
        .aura
        .http
        .get(db.aura.at("/api/collections/items/records"))
        .query(&[("filter", filter)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const COSTLY: &str = "links.links.title ~ 'nobody'";

async fn a_costly_filter_is_stopped_and_others_are_served(db: &Db) {
    tangle(db).await;
    let (status, body) = anonymous_list(db, COSTLY).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("query_timeout")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100 ms"),
        "{body}"
    );

    // Several at once: each is stopped or refused; meanwhile a signed-in
    // user's list and the admin's are answered, and a cheap anonymous one
    // once the flood is over.
    let (token, _) = user(&db.aura, "ada@example.com").await;
    let floods: Vec<_> = (0..6).map(|_| anonymous_list(db, COSTLY)).collect();
    let others = async {
        let response = db
            .aura
            .http
            .get(db.aura.at("/api/collections/items/records"))
            .query(&[("filter", "title = 'item 7'")])
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
        let page = db.list("items", "perPage=5").await;
        assert_eq!(page["totalItems"], 300);
    };
    let (answers, ()) = tokio::join!(futures::future::join_all(floods), others);
    for (status, body) in answers {
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            status == 503 && (code == "query_timeout" || code == "database_busy"),
            "{status}: {body}"
        );
    }
    let (status, body) = anonymous_list(db, "title = 'item 7'").await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{body}"
    );
}

#[tokio::test]
async fn a_costly_filter_is_stopped_and_others_are_served_sqlite() {
    let db = Db::sqlite_with(&["--query-timeout-ms", "100"]);
    a_costly_filter_is_stopped_and_others_are_served(&db).await;
    db.finish().await;
}

#[tokio::test]
async fn a_costly_filter_is_stopped_and_others_are_served_postgres() {
    if let Some(db) = Db::postgres_with(&["--query-timeout-ms", "100"]).await {
        a_costly_filter_is_stopped_and_others_are_served(&db).await;
        db.finish().await;
    }
}
