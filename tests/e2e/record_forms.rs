//! Records with their files in one `multipart/form-data` request, and
//! several record writes in one transaction (`POST /api/batch`).

use crate::storage::user;
use crate::support::{Aura, assert_error};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn setup(aura: &Aura) {
    let (status, body) = aura
        .admin_post(
            "/api/admin/storage/buckets",
            json!({
                "name": "attachments",
                "viewRule": "",
                "createRule": "@request.auth.id != '' && size <= 1000",
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = aura
        .admin_post(
            "/api/collections",
            json!({
                "name": "notes",
                "fields": [
                    {"name": "title", "type": "text", "required": true, "max": 20},
                    {"name": "done", "type": "bool"},
                    {"name": "stars", "type": "number"},
                    {"name": "meta", "type": "json"},
                    {"name": "tags", "type": "array", "items": "text"},
                    {"name": "attachment", "type": "file", "bucket": "attachments"},
                    {"name": "pictures", "type": "file", "bucket": "attachments", "multiple": true},
                ],
                "listRule": "", "viewRule": "",
                "createRule": "@request.auth.id != ''",
                "updateRule": "@request.auth.id != ''",
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

fn file(name: &str, bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(name.to_owned())
        .mime_str("text/plain")
        .unwrap()
}

async fn objects(aura: &Aura) -> Vec<String> {
    let (status, body) = aura.admin_get("/api/storage/attachments").await;
    assert_eq!(status, 200, "{body}");
    body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .collect()
}

async fn post_form(
    aura: &Aura,
    token: &str,
    path: &str,
    method: &str,
    form: Form,
) -> reqwest::Response {
    aura.http
        .request(method.parse().unwrap(), aura.at(path))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_record_and_its_files_are_written_in_one_form() {
    let aura = Aura::start();
    setup(&aura).await;
    let (alice, alice_id) = user(&aura, "alice@example.com").await;

    let form = Form::new()
        .text("title", "Report")
        .text("done", "true")
        .text("stars", "4.5")
        .text("meta", r#"{"a": [1]}"#)
        .text("tags", "x")
        .text("tags", "y")
        .part("attachment", file("../../my report.txt", b"the report"))
        .part("pictures", file("one.png", b"1"))
        .part("pictures", file("two.png", b"2"));
    let created = post_form(
        &aura,
        &alice,
        "/api/collections/notes/records",
        "POST",
        form,
    )
    .await;
    assert_eq!(created.status(), 201);
    let record: Value = created.json().await.unwrap();
    assert_eq!(record["title"], "Report");
    assert_eq!(record["done"], true);
    assert_eq!(record["stars"], 4.5);
    assert_eq!(record["meta"], json!({"a": [1]}));
    assert_eq!(record["tags"], json!(["x", "y"]));
    let key = record["attachment"].as_str().unwrap();
    assert!(
        key.starts_with("notes/") && key.ends_with("/my_report.txt"),
        "{key}"
    );
    assert_eq!(record["pictures"].as_array().unwrap().len(), 2, "{record}");

    // The key is the object's, owned by the caller, and downloads as sent.
    let download = aura
        .http
        .get(aura.at(&format!("/api/storage/attachments/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.text().await.unwrap(), "the report");
    let (_, head) = aura.admin_get("/api/storage/attachments").await;
    let stored = head["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == key)
        .unwrap()
        .clone();
    assert_eq!(stored["owner"], alice_id.as_str(), "{stored}");

    // An update adds a picture with `pictures+` and clears `stars`.
    let id = record["id"].as_str().unwrap();
    let form = Form::new()
        .text("stars", "")
        .text("tags", r#"["z"]"#)
        .part("pictures+", file("three.png", b"3"));
    let updated = post_form(
        &aura,
        &alice,
        &format!("/api/collections/notes/records/{id}"),
        "PATCH",
        form,
    )
    .await;
    let status = updated.status();
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["pictures"].as_array().unwrap().len(),
        3,
        "{updated}"
    );
    assert_eq!(updated["stars"], Value::Null);
    assert_eq!(
        updated["tags"],
        json!(["z"]),
        "a JSON array part is the list"
    );
    assert_eq!(objects(&aura).await.len(), 4);
}

#[tokio::test]
async fn a_refused_form_leaves_no_files_behind() {
    let aura = Aura::start();
    setup(&aura).await;
    let (alice, _) = user(&aura, "alice@example.com").await;
    let path = "/api/collections/notes/records";

    // The record fails its checks after its file was stored.
    let form = Form::new()
        .part("attachment", file("a.txt", b"a"))
        .text("title", "a title far longer than twenty characters");
    let refused = post_form(&aura, &alice, path, "POST", form).await;
    let body = assert_error(refused, 400, "validation_failed").await;
    assert!(
        body["error"]["details"]["fields"]["title"].is_object(),
        "{body}"
    );
    assert_eq!(objects(&aura).await, Vec::<String>::new());

    // A bad part after a stored file.
    let form = Form::new()
        .part("attachment", file("a.txt", b"a"))
        .text("title", "one")
        .text("title", "two");
    let body = assert_error(
        post_form(&aura, &alice, path, "POST", form).await,
        400,
        "invalid_form",
    )
    .await;
    assert_eq!(body["error"]["details"]["field"], "title");
    assert_eq!(objects(&aura).await, Vec::<String>::new());

    let form = Form::new().part("title", file("t.txt", b"t"));
    let body = assert_error(
        post_form(&aura, &alice, path, "POST", form).await,
        400,
        "invalid_form",
    )
    .await;
    assert_eq!(body["error"]["details"]["field"], "title", "{body}");

    // A body that only claims to be a form.
    let broken = aura
        .http
        .post(aura.at(path))
        .bearer_auth(&alice)
        .header("content-type", "multipart/form-data")
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_error(broken, 400, "invalid_form").await;

    // The bucket's create rule holds for the caller: too large a file.
    let form = Form::new()
        .text("title", "big")
        .part("attachment", file("big.txt", &[b'x'; 5000]));
    let refused = post_form(&aura, &alice, path, "POST", form).await;
    assert!(
        refused.status() == 403 || refused.status() == 413,
        "{}",
        refused.status()
    );
    // Anonymous callers may not store files (nor create notes).
    let form = Form::new()
        .text("title", "anon")
        .part("attachment", file("a.txt", b"a"));
    let anonymous = aura
        .http
        .post(aura.at(path))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 403, "forbidden").await;
    assert_eq!(objects(&aura).await, Vec::<String>::new());
    let (_, page) = aura.admin_get("/api/collections/notes/records").await;
    assert_eq!(page["totalItems"], 0, "{page}");
}

#[tokio::test]
async fn a_batch_takes_effect_whole_or_not_at_all() {
    let aura = Aura::start();
    setup(&aura).await;
    let (alice, _) = user(&aura, "alice@example.com").await;
    let batch = |token: Option<String>, body: Value| {
        let request = aura.http.post(aura.at("/api/batch")).json(&body);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };

    let response = batch(
        Some(alice.clone()),
        json!({"operations": [
            {"action": "create", "collection": "notes", "data": {"title": "one"}},
            {"action": "create", "collection": "notes", "data": {"title": "two", "id": "twotwotwotwotwo"}},
            {"action": "update", "collection": "notes", "id": "twotwotwotwotwo", "data": {"done": true}},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{body}");
    assert_eq!(results[0]["title"], "one");
    assert_eq!(results[2]["done"], true);

    // The third operation fails: the first two do not take effect.
    let response = batch(
        Some(alice.clone()),
        json!({"operations": [
            {"action": "create", "collection": "notes", "data": {"title": "three"}},
            {"action": "update", "collection": "notes", "id": "twotwotwotwotwo", "data": {"title": "changed"}},
            {"action": "create", "collection": "notes", "data": {}},
        ]}),
    )
    .await
    .unwrap();
    let body = assert_error(response, 400, "validation_failed").await;
    assert_eq!(body["error"]["details"]["index"], 2, "{body}");
    assert!(
        body["error"]["details"]["fields"]["title"].is_object(),
        "{body}"
    );
    let (_, page) = aura
        .admin_get("/api/collections/notes/records?sort=title")
        .await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["one", "two"]);

    // Rules hold per operation: deletes are admins only here.
    let response = batch(
        Some(alice.clone()),
        json!({"operations": [
            {"action": "delete", "collection": "notes", "id": "twotwotwotwotwo"},
        ]}),
    )
    .await
    .unwrap();
    let body = assert_error(response, 403, "forbidden").await;
    assert_eq!(body["error"]["details"]["index"], 0, "{body}");
    let response = batch(
        None,
        json!({"operations": [{"action": "create", "collection": "notes", "data": {"title": "anon"}}]}),
    )
    .await
    .unwrap();
    assert_error(response, 403, "forbidden").await;

    // Malformed batches.
    for body in [
        json!({"operations": [{"action": "upsert", "collection": "notes"}]}),
        json!({"operations": [{"action": "delete", "collection": "notes"}]}),
        json!({"ops": []}),
    ] {
        let response = batch(Some(alice.clone()), body.clone()).await.unwrap();
        assert_error(response, 400, "invalid_body").await;
    }
    let response = batch(
        Some(alice.clone()),
        json!({"operations": [{"action": "create", "collection": "nope", "data": {}}]}),
    )
    .await
    .unwrap();
    let body = assert_error(response, 404, "collection_not_found").await;
    assert_eq!(body["error"]["details"]["index"], 0, "{body}");

    // The admin may delete; the answer holds null for a delete.
    let response = aura
        .http
        .post(aura.at("/api/batch"))
        .bearer_auth(&aura.token)
        .json(&json!({"operations": [
            {"action": "delete", "collection": "notes", "id": "twotwotwotwotwo"},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["results"], json!([null]));
}
