//! `field+` / `field-` on list fields: items added to and taken from the
//! stored list, checked like any value.

use crate::support::Aura;
use serde_json::{Value, json};

#[tokio::test]
async fn lists_take_items_added_and_removed() {
    let aura = Aura::start();
    let (status, body) = aura
        .admin_post(
            "/api/collections",
            json!({"name": "posts", "fields": [
                {"name": "tags", "type": "array", "items": "text"},
                {"name": "scores", "type": "array", "items": "number"},
                {"name": "labels", "type": "select", "values": ["a", "b", "c"], "multiple": true, "max": 2},
                {"name": "title", "type": "text"},
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, post) = aura
        .admin_post(
            "/api/collections/posts/records",
            json!({"tags": ["x"], "scores": [1], "labels": ["a"]}),
        )
        .await;
    assert_eq!(status, 201, "{post}");
    let path = format!(
        "/api/collections/posts/records/{}",
        post["id"].as_str().unwrap()
    );
    let patch = |body: Value| {
        let request = aura
            .http
            .patch(aura.at(&path))
            .bearer_auth(&aura.token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, post) = patch(json!({"tags+": ["y", "x"], "scores+": 1, "labels+": "a"})).await;
    assert_eq!(status, 200, "{post}");
    assert_eq!(post["tags"], json!(["x", "y", "x"]), "arrays append");
    assert_eq!(post["scores"], json!([1, 1]));
    assert_eq!(
        post["labels"],
        json!(["a"]),
        "a multiple field skips what it holds"
    );

    let (status, post) = patch(json!({"tags-": "x", "labels+": ["b"], "scores-": [1]})).await;
    assert_eq!(status, 200, "{post}");
    assert_eq!(post["tags"], json!(["y"]), "every occurrence goes");
    assert_eq!(post["labels"], json!(["a", "b"]));
    assert_eq!(post["scores"], json!([]));

    // The result is checked: too many items, a value not allowed.
    let (status, body) = patch(json!({"labels+": "c"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["details"]["fields"]["labels+"].is_object(),
        "{body}"
    );
    let (status, body) = patch(json!({"labels-": "a", "labels+": "z"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = patch(json!({"title+": "more"})).await;
    assert_eq!(
        body["error"]["details"]["fields"]["title+"]["code"], "invalid_type",
        "{status} {body}"
    );
    let (_, kept) = aura.admin_get(&path).await;
    assert_eq!(
        kept["labels"],
        json!(["a", "b"]),
        "a refused change changes nothing"
    );
}
