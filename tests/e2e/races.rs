//! Requests that meet a concurrent change answer as if they came after it:
//! a record request on a collection deleted meanwhile is a 404, not a 500
//! (schemathesis found it with two workers).

use crate::database::Db;
use serde_json::json;

#[tokio::test]
async fn a_collection_deleted_under_a_request_answers_404() {
    let db = Db::sqlite();
    db.define(json!({"name": "roles", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let record = db.insert("roles", json!({"title": "x"})).await;
    // The table goes away behind the catalog's back, as it does for a
    // request that read the catalog just before a concurrent delete.
    let path = db.aura.data_dir().join("collections.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("DROP TABLE roles")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let id = record["id"].as_str().unwrap();
    for (method, path) in [
        ("DELETE", format!("/api/collections/roles/records/{id}")),
        ("GET", format!("/api/collections/roles/records/{id}")),
        ("GET", "/api/collections/roles/records".to_owned()),
    ] {
        let (status, body) = db.send(method, &path, None, true).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("collection_not_found")),
            "{method} {path}: {body}"
        );
    }
    assert!(!db.aura.log().contains("ERROR"), "{}", db.aura.log());
    db.finish().await;
}
