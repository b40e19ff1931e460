//! Collections and records over REST, on SQLite and on PostgreSQL: every
//! test runs once per backend (PostgreSQL when `AURA_TEST_POSTGRES_URL` is
//! set, which `.ci/run` does), each against a fresh database.

use crate::support::{Aura, assert_error};
use serde_json::{Value, json};

/// A server on one backend, plus helpers for the collection API.
pub struct Db {
    pub aura: Aura,
    /// The PostgreSQL database to drop at the end, if any.
    postgres: Option<(String, String)>,
}

impl Db {
    /// A server on a fresh SQLite file.
    pub fn sqlite() -> Self {
        Self::sqlite_with(&[])
    }

    /// The same, with extra `serve` arguments.
    pub fn sqlite_with(extra: &[&str]) -> Self {
        Self {
            aura: Aura::start_with(tempfile::tempdir().expect("temp dir"), extra),
            postgres: None,
        }
    }

    /// A server on a fresh PostgreSQL database, or `None` when no server
    /// is configured.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(&[]).await
    }

    /// The same, with extra `serve` arguments.
    pub async fn postgres_with(extra: &[&str]) -> Option<Self> {
        use sqlx::Connection as _;
        let Ok(url) = std::env::var("AURA_TEST_POSTGRES_URL") else {
            eprintln!("AURA_TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
            return None;
        };
        let name = format!("aura_e2e_{}", hex::encode(rand::random::<[u8; 6]>()));
        let mut admin = sqlx::PgConnection::connect(&url)
            .await
            .expect("connecting to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("creating a test database");
        let (base, _) = url.rsplit_once('/').expect("a database URL");
        let database = format!("{base}/{name}");
        let mut arguments = vec!["--database", &database];
        arguments.extend_from_slice(extra);
        let aura = Aura::start_with(tempfile::tempdir().expect("temp dir"), &arguments);
        Some(Self {
            aura,
            postgres: Some((url, name)),
        })
    }

    /// Sends a request with the admin token (or none) and returns status and JSON.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        admin: bool,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.aura.http.request(method, self.aura.at(path));
        if admin {
            request = request.bearer_auth(&self.aura.token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Applies a definition with `PUT /api/collections/{name}`.
    pub async fn apply(&self, definition: Value) -> (u16, Value) {
        let name = definition["name"].as_str().expect("name").to_owned();
        self.send(
            "PUT",
            &format!("/api/collections/{name}"),
            Some(definition),
            true,
        )
        .await
    }

    /// Applies a definition that must succeed.
    pub async fn define(&self, definition: Value) -> Value {
        let (status, body) = self.apply(definition).await;
        assert!(
            status == 200 || status == 201,
            "{status}: {body}\nthe server's log:\n{}",
            self.aura.log()
        );
        body
    }

    /// Creates a record as admin; returns it.
    pub async fn insert(&self, collection: &str, record: Value) -> Value {
        let (status, body) = self
            .send(
                "POST",
                &format!("/api/collections/{collection}/records"),
                Some(record),
                true,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Lists as admin with a query string; returns the page.
    pub async fn list(&self, collection: &str, query: &str) -> Value {
        let (status, body) = self
            .send(
                "GET",
                &format!("/api/collections/{collection}/records?{query}"),
                None,
                true,
            )
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    }

    /// Drops the PostgreSQL database.
    pub async fn finish(self) {
        let Self { aura, postgres } = self;
        drop(aura);
        if let Some((url, name)) = postgres {
            use sqlx::Connection as _;
            if let Ok(mut admin) = sqlx::PgConnection::connect(&url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
}

/// Ids of a page's items, in order.
fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Defines `#[tokio::test]`s `NAME_sqlite` and `NAME_postgres` running `body(db)`.
macro_rules! on_both_backends {
    ($($name:ident => $body:ident;)*) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = super::Db::sqlite();
                    super::$body(&db).await;
                    db.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    if let Some(db) = super::Db::postgres().await {
                        super::$body(&db).await;
                        db.finish().await;
                    }
                }
            }
        )*
    };
}

on_both_backends! {
    field_types => field_types_round_trip;
    migrations => migrations_convert_or_refuse;
    type_changes => type_changes_keep_every_connection_working;
    queries => filter_sort_page_cursor_expand;
    rules => rules_govern_each_action;
    injection => injection_attempts_fail_safely;
    concurrency => concurrent_writers_lose_nothing;
    errors => bad_input_gets_clear_errors;
    functions => functions_use_collections_through_wit;
}

async fn field_types_round_trip(db: &Db) {
    db.define(json!({"name": "tags", "fields": [{"name": "label", "type": "text"}]}))
        .await;
    let tag = db.insert("tags", json!({"label": "rust"})).await;
    let tag = tag["id"].as_str().unwrap();
    db.define(json!({
        "name": "things",
        "fields": [
            {"name": "title", "type": "text", "required": true, "max": 20, "pattern": "^[A-Za-z ]+$"},
            {"name": "count", "type": "number", "min": 0},
            {"name": "ratio", "type": "number"},
            {"name": "done", "type": "bool"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "contact", "type": "email"},
            {"name": "site", "type": "url"},
            {"name": "status", "type": "select", "values": ["draft", "live"], "default": "draft"},
            {"name": "flags", "type": "select", "values": ["a", "b", "c"], "multiple": true},
            {"name": "meta", "type": "json"},
            {"name": "scores", "type": "array", "items": "number"},
            {"name": "tag", "type": "relation", "collection": "tags"},
            {"name": "tagset", "type": "relation", "collection": "tags", "multiple": true}
        ]
    }))
    .await;
    let sent = json!({
        "title": "Hello World", "count": 3, "ratio": 0.25, "done": true,
        "day": "2026-02-28", "at": "2026-02-28T10:00:00+02:00", "contact": "a@b.example",
        "site": "https://aura.example/x?y=1", "flags": ["b", "a", "b"],
        "meta": {"nested": [1, {"k": null}], "s": "x"}, "scores": [1, 2.5, -3],
        "tag": tag, "tagset": [tag]
    });
    let created = db.insert("things", sent).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 15);
    let (status, read) = db
        .send(
            "GET",
            &format!("/api/collections/things/records/{id}"),
            None,
            true,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(read, created, "what was created reads back the same");
    let expected = json!({
        "title": "Hello World", "count": 3, "ratio": 0.25, "done": true,
        "day": "2026-02-28", "at": "2026-02-28T08:00:00.000Z", "contact": "a@b.example",
        "site": "https://aura.example/x?y=1", "status": "draft", "flags": ["b", "a"],
        "meta": {"nested": [1, {"k": null}], "s": "x"}, "scores": [1, 2.5, -3],
        "tag": tag, "tagset": [tag]
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&read[key], value, "field {key}");
    }
    for key in ["created", "updated"] {
        assert!(read[key].as_str().unwrap().ends_with('Z'), "{key}: {read}");
    }
    // An empty record: absent values read as null, multi-valued ones as [].
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/things/records",
            Some(json!({})),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["fields"]["title"]["code"],
        "required"
    );
    let sparse = db.insert("things", json!({"title": "Sparse"})).await;
    assert_eq!(sparse["count"], Value::Null);
    assert_eq!(sparse["flags"], json!([]));
    assert_eq!(sparse["status"], "draft");

    // Every type refuses what it cannot hold, field by field.
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/things/records",
            Some(json!({
                "title": "Bad 1", "count": -1, "ratio": "1", "done": "yes", "day": "2026-02-30",
                "at": "yesterday", "contact": "nope", "site": "ftp://x", "status": "gone",
                "flags": ["z"], "scores": ["1"], "tag": "missingrecord", "tagset": "no'quote",
                "extra": 1
            })),
            true,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields = &body["error"]["details"]["fields"];
    for (key, code) in [
        ("title", "pattern_mismatch"),
        ("count", "too_small"),
        ("ratio", "invalid_type"),
        ("done", "invalid_type"),
        ("day", "invalid_type"),
        ("at", "invalid_type"),
        ("contact", "invalid_email"),
        ("site", "invalid_url"),
        ("status", "not_allowed"),
        ("flags", "not_allowed"),
        ("scores", "invalid_type"),
        ("tagset", "invalid_id"),
        ("extra", "unknown_field"),
    ] {
        assert_eq!(fields[key]["code"], code, "{key}: {fields}");
    }
    // NUL cannot be stored in text or JSON (PostgreSQL answered 500).
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/things/records",
            Some(json!({"title": "Nul", "meta": {"k\u{0}": "v"}, "contact": "a\u{0}@b.example"})),
            true,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields = &body["error"]["details"]["fields"];
    for key in ["meta", "contact"] {
        assert_eq!(fields[key]["code"], "invalid_text", "{key}: {fields}");
    }
    // Relation targets must exist.
    let (_, body) = db
        .send(
            "POST",
            "/api/collections/things/records",
            Some(json!({"title": "Rel", "tag": "missingrecord"})),
            true,
        )
        .await;
    assert_eq!(
        body["error"]["details"]["fields"]["tag"]["code"],
        "relation_not_found"
    );
    // Nothing invalid was stored.
    assert_eq!(db.list("things", "").await["totalItems"], 2);
}

async fn migrations_convert_or_refuse(db: &Db) {
    db.define(json!({"name": "items", "fields": [
        {"name": "name", "type": "text"},
        {"name": "code", "type": "text"},
        {"name": "notes", "type": "text"}
    ]}))
    .await;
    for (name, code) in [("one", "1"), ("two", "2"), ("three", "3")] {
        db.insert("items", json!({"name": name, "code": code}))
            .await;
    }
    // Add a field with a default: existing records get it.
    let body = db
        .define(json!({"name": "items", "fields": [
            {"name": "name", "type": "text"},
            {"name": "code", "type": "text"},
            {"name": "notes", "type": "text"},
            {"name": "stock", "type": "number", "default": 5}
        ]}))
        .await;
    assert_eq!(body["changes"], json!(["add field `stock` (number)"]));
    let page = db.list("items", "sort=name").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["stock"] == 5),
        "{page}"
    );

    // Rename keeps the data; dropping an empty field is fine.
    let body = db
        .define(json!({"name": "items", "fields": [
            {"name": "title", "type": "text", "renamedFrom": "name"},
            {"name": "code", "type": "text"},
            {"name": "stock", "type": "number", "default": 5}
        ]}))
        .await;
    assert_eq!(
        body["changes"],
        json!(["rename field `name` to `title`", "drop field `notes`"])
    );
    let page = db.list("items", "sort=title").await;
    let titles: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["one", "three", "two"]);

    // Text to number converts "1", "2", "3".
    let body = db
        .define(json!({"name": "items", "fields": [
            {"name": "title", "type": "text"},
            {"name": "code", "type": "number"},
            {"name": "stock", "type": "number", "default": 5}
        ]}))
        .await;
    assert_eq!(
        body["changes"],
        json!(["change field `code` from text to number"])
    );
    let page = db.list("items", "filter=code>1&sort=-code").await;
    let codes: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["code"])
        .collect();
    assert_eq!(codes, [&json!(3), &json!(2)]);

    // A value that does not convert: refused, nothing changed...
    db.define(json!({"name": "items", "fields": [
        {"name": "title", "type": "text"},
        {"name": "code", "type": "number"},
        {"name": "stock", "type": "number", "default": 5}
    ]}))
    .await;
    let to_number = json!({"name": "items", "fields": [
        {"name": "title", "type": "number"},
        {"name": "code", "type": "number"},
        {"name": "stock", "type": "number", "default": 5}
    ]});
    let (status, body) = db.apply(to_number.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "lossy_migration");
    assert!(
        body["error"]["details"]["lossy"][0]
            .as_str()
            .unwrap()
            .contains("3 of 3 values"),
        "{body}"
    );
    assert_eq!(
        db.list("items", "filter=title='one'").await["totalItems"],
        1
    );
    // ...and so is dropping a field that holds values.
    let (status, body) = db
        .apply(json!({"name": "items", "fields": [{"name": "title", "type": "text"}, {"name": "code", "type": "number"}]}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["details"]["lossy"][0]
            .as_str()
            .unwrap()
            .contains("`stock` holds values in 3 records")
    );
    // A dry run reports without applying.
    let (status, body) = db
        .send(
            "PUT",
            "/api/collections/items?dryRun=true&force=true",
            Some(to_number.clone()),
            true,
        )
        .await;
    assert_eq!((status, &body["applied"]), (200, &json!(false)), "{body}");
    assert_eq!(
        db.list("items", "filter=title='one'").await["totalItems"],
        1
    );
    // Forced, the values that do not convert are cleared.
    let (status, body) = db
        .send(
            "PUT",
            "/api/collections/items?force=true",
            Some(to_number),
            true,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(db.list("items", "filter=title=null").await["totalItems"], 3);

    // A unique index over duplicated values is refused with the reason.
    db.insert("items", json!({"code": 1})).await;
    let (status, body) = db
        .apply(json!({"name": "items", "fields": [
            {"name": "title", "type": "number"},
            {"name": "code", "type": "number", "unique": true},
            {"name": "stock", "type": "number", "default": 5}
        ]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_schema")),
        "{body}"
    );
    assert_eq!(
        db.list("items", "").await["totalItems"],
        4,
        "the failed change rolled back"
    );
    // One column can't become two fields.
    let (status, body) = db
        .apply(json!({"name": "items", "fields": [
            {"name": "first", "type": "number", "renamedFrom": "title"},
            {"name": "second", "type": "number", "renamedFrom": "title"},
            {"name": "code", "type": "number"},
            {"name": "stock", "type": "number", "default": 5}
        ]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_schema")),
        "{body}"
    );
    assert!(
        body["error"]["details"]["problems"]["fields.second"]
            .as_str()
            .unwrap()
            .contains("renamed from `title`"),
        "{body}"
    );

    // The history says what changed, who changed it and when.
    let (status, body) = db
        .send("GET", "/api/collections/items/migrations", None, true)
        .await;
    assert_eq!(status, 200);
    let history = body["migrations"].as_array().unwrap();
    assert_eq!(history.len(), 5, "{body}");
    assert_eq!(history[0]["changes"][0], "create collection `items`");
    assert!(
        history
            .iter()
            .all(|m| m["actor"] == "admin" && m["at"].as_str().is_some())
    );

    // A field may have the name a rebuilt column takes while it is built.
    let mut fields = vec![
        json!({"name": "title", "type": "number"}),
        json!({"name": "code", "type": "number"}),
        json!({"name": "stock", "type": "number", "default": 5}),
        json!({"name": "aura_rebuilt_column", "type": "text"}),
    ];
    db.define(json!({"name": "items", "fields": fields.clone()}))
        .await;
    fields[1] = json!({"name": "code", "type": "text"});
    let body = db.define(json!({"name": "items", "fields": fields})).await;
    assert_eq!(
        body["changes"],
        json!(["change field `code` from number to text"]),
        "{body}"
    );
    assert_eq!(db.list("items", "filter=code='2'").await["totalItems"], 1);

    // Dropping a collection that holds records needs force.
    let (status, _) = db
        .send("DELETE", "/api/collections/items", None, true)
        .await;
    assert_eq!(status, 409);
    let (status, _) = db
        .send("DELETE", "/api/collections/items?force=true", None, true)
        .await;
    assert_eq!(status, 204);
    let (status, _) = db
        .send("GET", "/api/collections/items/records", None, true)
        .await;
    assert_eq!(status, 404);
}

/// A field that changes type is read correctly by every pooled connection,
/// including those that ran the same statement before the change (on
/// PostgreSQL a cached statement whose result type changed failed).
async fn type_changes_keep_every_connection_working(db: &Db) {
    let define = |kind: &str| json!({"name": "flips", "fields": [{"name": "v", "type": kind}]});
    db.define(define("text")).await;
    db.insert("flips", json!({"v": "7"})).await;
    for (kind, expected) in [
        ("number", json!(7)),
        ("text", json!("7")),
        ("number", json!(7)),
    ] {
        // Many requests at once, so that many connections run (and cache)
        // the same list and view statements.
        let lists = (0..24).map(|_| db.send("GET", "/api/collections/flips/records", None, true));
        for (status, body) in futures::future::join_all(lists).await {
            assert_eq!(status, 200, "{body}");
        }
        db.define(define(kind)).await;
        let lists = (0..24).map(|_| db.send("GET", "/api/collections/flips/records", None, true));
        for (status, body) in futures::future::join_all(lists).await {
            assert_eq!((status, &body["items"][0]["v"]), (200, &expected), "{body}");
        }
    }
}

async fn filter_sort_page_cursor_expand(db: &Db) {
    db.define(
        json!({"name": "teams", "fields": [{"name": "name", "type": "text"}], "viewRule": ""}),
    )
    .await;
    db.define(json!({"name": "people", "fields": [
        {"name": "name", "type": "text"},
        {"name": "team", "type": "relation", "collection": "teams"}
    ], "viewRule": ""}))
        .await;
    db.define(json!({"name": "labels", "fields": [{"name": "name", "type": "text"}]}))
        .await;
    db.define(json!({"name": "posts", "fields": [
        {"name": "title", "type": "text"},
        {"name": "views", "type": "number"},
        {"name": "author", "type": "relation", "collection": "people"},
        {"name": "labels", "type": "relation", "collection": "labels", "multiple": true}
    ], "listRule": "", "viewRule": ""}))
        .await;
    let core = db.insert("teams", json!({"name": "core"})).await["id"].clone();
    let web = db.insert("teams", json!({"name": "web"})).await["id"].clone();
    let ada = db
        .insert("people", json!({"name": "ada", "team": core}))
        .await["id"]
        .clone();
    let bob = db
        .insert("people", json!({"name": "bob", "team": web}))
        .await["id"]
        .clone();
    let hot = db.insert("labels", json!({"name": "hot"})).await["id"].clone();
    for i in 0..25 {
        let author = if i % 2 == 0 { &ada } else { &bob };
        let labels = if i % 5 == 0 { json!([hot]) } else { json!([]) };
        db.insert(
            "posts",
            json!({"id": format!("p{i:02}"), "title": format!("post {}", i % 3), "views": i, "author": author, "labels": labels}),
        )
        .await;
    }

    // Filters over fields, relation paths and multi-relations.
    let page = db.list("posts", "filter=views>=20&sort=views").await;
    assert_eq!(ids(&page), ["p20", "p21", "p22", "p23", "p24"]);
    let page = db
        .list(
            "posts",
            &format!(
                "filter={}&perPage=100",
                crate::support::encode("author.team.name = 'core' && views < 6")
            ),
        )
        .await;
    assert_eq!(ids(&page), ["p00", "p02", "p04"]);
    let page = db
        .list(
            "posts",
            &format!(
                "filter={}&perPage=100",
                crate::support::encode("labels.name ?= 'hot'")
            ),
        )
        .await;
    assert_eq!(ids(&page), ["p00", "p05", "p10", "p15", "p20"]);
    let page = db
        .list(
            "posts",
            &format!(
                "filter={}",
                crate::support::encode("title ~ 'POST 1' && !(views > 10)")
            ),
        )
        .await;
    assert_eq!(ids(&page), ["p01", "p04", "p07", "p10"]);

    // Multi-key sort.
    let page = db.list("posts", "sort=-title,views&perPage=4").await;
    assert_eq!(ids(&page), ["p02", "p05", "p08", "p11"]);

    // Page mode with totals.
    let page = db.list("posts", "sort=views&perPage=10&page=3").await;
    assert_eq!(ids(&page), ["p20", "p21", "p22", "p23", "p24"]);
    assert_eq!(
        (
            page["page"].clone(),
            page["totalItems"].clone(),
            page["totalPages"].clone()
        ),
        (json!(3), json!(25), json!(3))
    );
    let page = db.list("posts", "perPage=10&skipTotal=1").await;
    assert!(page.get("totalItems").is_none());

    // Cursor mode walks everything once, in order, under any sort.
    for sort in ["-views", "title,-views", "created"] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = db
                .list("posts", &format!("sort={sort}&perPage=7&cursor={cursor}"))
                .await;
            seen.extend(ids(&page));
            match page["nextCursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        let all = db.list("posts", &format!("sort={sort}&perPage=100")).await;
        assert_eq!(seen, ids(&all), "cursor order for sort={sort}");
        assert_eq!(seen.len(), 25);
    }

    // Projection and expansion two levels deep, obeying view rules.
    let page = db
        .list("posts", "filter=views=0&expand=author.team,labels&fields=id,expand.author.name,expand.author.expand.team.name,expand.labels")
        .await;
    let item = &page["items"][0];
    assert_eq!(item["id"], "p00");
    assert!(item.get("title").is_none(), "{item}");
    assert_eq!(item["expand"]["author"]["name"], "ada");
    assert!(item["expand"]["author"].get("team").is_none());
    assert_eq!(item["expand"]["author"]["expand"]["team"]["name"], "core");
    // Labels are admin-only to view: the admin sees them.
    assert_eq!(item["expand"]["labels"][0]["name"], "hot");
    // Anonymous callers get what the view rules allow, and no labels.
    let (status, page) = db
        .send(
            "GET",
            "/api/collections/posts/records?filter=views%3D0&expand=author.team,labels",
            None,
            false,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        page["items"][0]["expand"]["author"]["expand"]["team"]["name"],
        "core"
    );
    assert!(page["items"][0]["expand"].get("labels").is_none(), "{page}");

    // Bad queries say what and where.
    for (query, code) in [
        ("filter=views%20%3E", "invalid_filter"),
        ("filter=nope%3D1", "invalid_filter"),
        ("sort=nope", "invalid_sort"),
        ("sort=labels", "invalid_sort"),
        ("expand=title", "invalid_expand"),
        ("perPage=0", "invalid_paging"),
        ("page=-1", "invalid_paging"),
        ("cursor=garbage", "invalid_cursor"),
    ] {
        let response = db
            .aura
            .http
            .get(
                db.aura
                    .at(&format!("/api/collections/posts/records?{query}")),
            )
            .send()
            .await
            .unwrap();
        let body = assert_error(response, 400, code).await;
        if query.starts_with("filter") {
            assert!(body["error"]["details"]["position"].is_number(), "{body}");
        }
    }
}

async fn rules_govern_each_action(db: &Db) {
    // Locked by default: only the admin token gets through.
    db.define(json!({"name": "secrets", "fields": [{"name": "value", "type": "text"}]}))
        .await;
    let secret = db.insert("secrets", json!({"value": "s"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, body) in [
        ("GET", "/api/collections/secrets/records".to_owned(), None),
        (
            "GET",
            format!("/api/collections/secrets/records/{secret}"),
            None,
        ),
        (
            "POST",
            "/api/collections/secrets/records".to_owned(),
            Some(json!({"value": "x"})),
        ),
        (
            "PATCH",
            format!("/api/collections/secrets/records/{secret}"),
            Some(json!({"value": "x"})),
        ),
        (
            "DELETE",
            format!("/api/collections/secrets/records/{secret}"),
            None,
        ),
    ] {
        let (status, answer) = db.send(method, &path, body, false).await;
        assert!(
            (status == 403 && answer["error"]["code"] == "forbidden")
                || (status == 404 && method != "GET" && method != "POST"),
            "{method} {path}: {status} {answer}"
        );
    }
    // A wrong token is refused, not treated as anonymous.
    let response = db
        .aura
        .http
        .get(db.aura.at("/api/collections/secrets/records"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_token").await;

    // Expressions: list and view only published notes; create only with a
    // title and never published; update only drafts; delete nothing.
    db.define(json!({
        "name": "notes",
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "published", "type": "bool"}
        ],
        "listRule": "published = true",
        "viewRule": "published = true",
        "createRule": "@request.body.title != '' && @request.body.published != true",
        "updateRule": "published = false || published = null",
        "deleteRule": "title = 'temp'"
    }))
    .await;
    let public = db
        .insert("notes", json!({"title": "public", "published": true}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let draft = db
        .insert("notes", json!({"title": "draft", "published": false}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, page) = db
        .send("GET", "/api/collections/notes/records", None, false)
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), [public.as_str()], "the draft is filtered out");
    assert_eq!(page["totalItems"], 1, "totals do not count hidden records");
    let (status, _) = db
        .send(
            "GET",
            &format!("/api/collections/notes/records/{public}"),
            None,
            false,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = db
        .send(
            "GET",
            &format!("/api/collections/notes/records/{draft}"),
            None,
            false,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("record_not_found")),
        "a hidden record does not exist"
    );

    let (status, _) = db
        .send(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "mine"})),
            false,
        )
        .await;
    assert_eq!(status, 201);
    for body in [
        json!({"title": ""}),
        json!({"title": "x", "published": true}),
    ] {
        let (status, answer) = db
            .send("POST", "/api/collections/notes/records", Some(body), false)
            .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{answer}"
        );
    }
    assert_eq!(
        db.list("notes", "").await["totalItems"],
        3,
        "refused creates left nothing behind"
    );

    // Drafts may be updated by anyone, though hidden; the public note is
    // visible but not a draft: 403.
    let (status, _) = db
        .send(
            "PATCH",
            &format!("/api/collections/notes/records/{draft}"),
            Some(json!({"title": "y"})),
            false,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = db
        .send(
            "PATCH",
            &format!("/api/collections/notes/records/{public}"),
            Some(json!({"title": "y"})),
            false,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    // Deleting the hidden draft (not `temp`) is a 404, not a 403: its
    // existence does not leak. The visible note gets a 403.
    let (status, _) = db
        .send(
            "DELETE",
            &format!("/api/collections/notes/records/{draft}"),
            None,
            false,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = db
        .send(
            "DELETE",
            &format!("/api/collections/notes/records/{public}"),
            None,
            false,
        )
        .await;
    assert_eq!(status, 403);
    let (_, temp) = db
        .send(
            "POST",
            "/api/collections/notes/records",
            Some(json!({"title": "temp"})),
            false,
        )
        .await;
    let (status, _) = db
        .send(
            "DELETE",
            &format!(
                "/api/collections/notes/records/{}",
                temp["id"].as_str().unwrap()
            ),
            None,
            false,
        )
        .await;
    assert_eq!(status, 204);

    // Rules are checked when saved.
    let (status, body) = db
        .apply(json!({"name": "notes", "fields": [{"name": "title", "type": "text"}], "listRule": "nope = 1"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["details"]["problems"]["listRule"]
            .as_str()
            .unwrap()
            .contains("unknown field `nope`"),
        "{body}"
    );
}

async fn injection_attempts_fail_safely(db: &Db) {
    db.define(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}], "listRule": "", "viewRule": "", "createRule": ""}))
        .await;
    db.insert("posts", json!({"title": "safe"})).await;
    let attempts = [
        "filter=title%3D%22x'%20OR%201%3D1%20--%22",
        "filter=title%3D'x'%3B%20DROP%20TABLE%20posts%3B%20--",
        "filter=%22title%22%3D1%20OR%201%3D1",
        "sort=title%3B%20DROP%20TABLE%20posts",
        "sort=-(SELECT%201)",
        "fields=title%22%20FROM%20posts%3B--",
        "expand=title)%20UNION%20SELECT",
        "filter=title%20~%20'%25'",
    ];
    for attempt in attempts {
        let (status, page) = db
            .send(
                "GET",
                &format!("/api/collections/posts/records?{attempt}"),
                None,
                false,
            )
            .await;
        assert!(
            status == 400 || (status == 200 && page["items"].as_array().unwrap().len() <= 1),
            "{attempt}: {status} {page}"
        );
        if status == 200 && attempt.contains("OR") {
            assert!(
                page["items"].as_array().unwrap().is_empty(),
                "{attempt} matched rows: {page}"
            );
        }
    }
    // Odd field names and collection names are refused by name.
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/posts/records",
            Some(json!({"title\" TEXT); DROP TABLE posts; --": "x"})),
            false,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let (status, _) = db
        .send(
            "GET",
            "/api/collections/posts%22%3B%20DROP%20TABLE%20posts/records",
            None,
            false,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = db
        .apply(json!({"name": "x\"; DROP TABLE posts; --", "fields": []}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = db
        .apply(json!({"name": "evil", "fields": [{"name": "a\" TEXT, \"b", "type": "text"}]}))
        .await;
    assert_eq!(status, 400);
    // Values are data: a title full of SQL is stored as written.
    let nasty = "'); DROP TABLE posts; --";
    let created = db.insert("posts", json!({"title": nasty})).await;
    assert_eq!(created["title"], nasty);
    let page = db
        .list(
            "posts",
            &format!(
                "filter={}",
                crate::support::encode(&format!("title = \"{}\"", nasty))
            ),
        )
        .await;
    assert_eq!(page["totalItems"], 1);
    assert_eq!(
        db.list("posts", "").await["totalItems"],
        2,
        "the table is intact"
    );
}

async fn concurrent_writers_lose_nothing(db: &Db) {
    db.define(json!({"name": "counters", "fields": [
        {"name": "hits", "type": "number"},
        {"name": "note", "type": "text"}
    ], "updateRule": "", "createRule": "", "listRule": ""}))
        .await;
    let id = db.insert("counters", json!({"hits": 0})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let writers = (0..50).map(|i| {
        let http = db.aura.http.clone();
        let url = db
            .aura
            .at(&format!("/api/collections/counters/records/{id}"));
        let create = db.aura.at("/api/collections/counters/records");
        async move {
            let patched = http
                .patch(url)
                .json(&json!({"hits+": 1}))
                .send()
                .await
                .unwrap();
            assert_eq!(patched.status(), 200);
            let created = http
                .post(create)
                .json(&json!({"note": format!("w{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), 201);
        }
    });
    futures::future::join_all(writers).await;
    let (_, record) = db
        .send(
            "GET",
            &format!("/api/collections/counters/records/{id}"),
            None,
            true,
        )
        .await;
    assert_eq!(record["hits"], 50, "every increment counted");
    assert_eq!(
        db.list("counters", "filter=note!=''").await["totalItems"],
        50,
        "every create stored"
    );
    // Concurrent creates of the same unique value: exactly one wins, the
    // others get a 409 each, and nothing else is lost.
    db.define(json!({"name": "handles", "fields": [{"name": "handle", "type": "text", "unique": true}], "createRule": ""}))
        .await;
    let racers = (0..20).map(|i| {
        let http = db.aura.http.clone();
        let url = db.aura.at("/api/collections/handles/records");
        let handle = if i % 2 == 0 {
            "taken".to_owned()
        } else {
            format!("free{i}")
        };
        async move {
            http.post(url)
                .json(&json!({"handle": handle}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(racers).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (11, 9), "{statuses:?}");
    assert_eq!(db.list("handles", "").await["totalItems"], 11);

    // Increments respect min/max once applied.
    db.define(json!({"name": "counters", "fields": [
        {"name": "hits", "type": "number", "max": 50},
        {"name": "note", "type": "text"}
    ], "updateRule": "", "createRule": "", "listRule": ""}))
        .await;
    let (status, body) = db
        .send(
            "PATCH",
            &format!("/api/collections/counters/records/{id}"),
            Some(json!({"hits+": 1})),
            false,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, record) = db
        .send(
            "GET",
            &format!("/api/collections/counters/records/{id}"),
            None,
            true,
        )
        .await;
    assert_eq!(record["hits"], 50, "the refused increment rolled back");
}

async fn bad_input_gets_clear_errors(db: &Db) {
    let response = db
        .aura
        .http
        .get(db.aura.at("/api/collections/nope/records"))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 404, "collection_not_found").await;
    assert_eq!(body["error"]["details"]["collection"], "nope");
    db.define(json!({"name": "users2", "fields": [
        {"name": "email", "type": "email", "unique": true},
        {"name": "a", "type": "text"}, {"name": "b", "type": "number"}
    ], "indexes": [{"fields": ["a", "b"], "unique": true}]}))
        .await;
    db.insert("users2", json!({"email": "x@y.example", "a": "p", "b": 1}))
        .await;
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/users2/records",
            Some(json!({"email": "x@y.example"})),
            true,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("unique_violation")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["fields"], json!(["email"]));
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/users2/records",
            Some(json!({"a": "p", "b": 1})),
            true,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["details"]["fields"]),
        (409, &json!(["a", "b"])),
        "{body}"
    );
    // Absent values never collide.
    db.insert("users2", json!({})).await;
    db.insert("users2", json!({})).await;
    let (status, _) = db
        .send(
            "POST",
            "/api/collections/users2/records",
            Some(json!({"id": "dup1"})),
            true,
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/users2/records",
            Some(json!({"id": "dup1"})),
            true,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["details"]["fields"]),
        (409, &json!(["id"])),
        "{body}"
    );

    let response = db
        .aura
        .http
        .post(db.aura.at("/api/collections/users2/records"))
        .bearer_auth(&db.aura.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "invalid_body").await;
    let (status, body) = db
        .send(
            "POST",
            "/api/collections/users2/records",
            Some(json!([1])),
            true,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, body) = db
        .send("GET", "/api/collections/users2/records/nope", None, true)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("record_not_found"))
    );
    let (status, body) = db
        .send(
            "PATCH",
            "/api/collections/users2/records/dup1",
            Some(json!({"created": "x", "b+": "1"})),
            true,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"]["fields"]["created"]["code"],
        "read_only"
    );
    assert_eq!(
        body["error"]["details"]["fields"]["b+"]["code"],
        "invalid_type"
    );

    // Definitions are checked field by field.
    let (status, body) = db
        .apply(json!({"name": "bad", "fields": [
            {"name": "id", "type": "text"},
            {"name": "s", "type": "select"},
            {"name": "r", "type": "relation", "collection": "missing"},
            {"name": "p", "type": "text", "pattern": "("},
            {"name": "n", "type": "number", "min": 5, "max": 1}
        ]}))
        .await;
    assert_eq!(status, 400, "{body}");
    let problems = &body["error"]["details"]["problems"];
    for key in ["fields.id", "fields.s", "fields.p", "fields.n"] {
        assert!(problems[key].is_string(), "{key}: {problems}");
    }
    let (status, body) = db
        .apply(json!({"name": "bad", "fields": [{"name": "r", "type": "relation", "collection": "missing"}]}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["details"]["problems"]["fields.r"]
            .as_str()
            .unwrap()
            .contains("missing")
    );
    let (status, body) = db
        .send(
            "POST",
            "/api/collections",
            Some(json!({"name": "users2"})),
            true,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("collection_exists"))
    );
    let (status, body) = db
        .send(
            "POST",
            "/api/collections",
            Some(json!({"name": "x", "bogus": 1})),
            true,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_schema")),
        "{body}"
    );
    // Names the databases reserve are refused; declared indexes never
    // collide with the ones Aura adds.
    let (status, _) = db
        .apply(json!({"name": "sqlite_stat9", "fields": []}))
        .await;
    assert_eq!(status, 400);
    db.define(json!({"name": "by_created", "fields": [], "indexes": [{"fields": ["created"]}, {"fields": ["id", "updated"]}]}))
        .await;
    // The schema API is admin-only.
    let (status, _) = db.send("GET", "/api/collections", None, false).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn records_survive_a_restart_and_memory_mode_works() {
    let db = Db::sqlite();
    db.define(json!({"name": "keep", "fields": [{"name": "v", "type": "text"}]}))
        .await;
    db.insert("keep", json!({"v": "still here"})).await;
    let dir = db.aura.stop();
    let aura = Aura::start_in(dir);
    let db = Db {
        aura,
        postgres: None,
    };
    assert_eq!(db.list("keep", "").await["items"][0]["v"], "still here");

    let aura = Aura::start_with(tempfile::tempdir().unwrap(), &["--database", "memory"]);
    let db = Db {
        aura,
        postgres: None,
    };
    db.define(json!({"name": "temp", "fields": [{"name": "v", "type": "text"}]}))
        .await;
    db.insert("temp", json!({"v": "a"})).await;
    assert_eq!(db.list("temp", "").await["totalItems"], 1);
    assert!(!db.aura.data_dir().join("collections.db").exists());
}

/// `examples/todo-api` does CRUD through `aura:platform/db`: refused
/// without a grant, held to the caller's rules with `read-write`, free of
/// them with `service`; its batch is all or nothing.
async fn functions_use_collections_through_wit(db: &Db) {
    let aura = &db.aura;
    db.define(json!({"name": "todos", "fields": [
        {"name": "title", "type": "text", "required": true},
        {"name": "done", "type": "bool"}
    ]}))
    .await;
    let todos = |path: &str| aura.at(&format!("/fn/todo-api/todos{path}"));

    // Importing aura:platform/db needs a collections grant.
    let (status, body) = aura
        .deploy_bytes("todo-api", crate::support::wasm("todo_api"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("missing_grant")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"]["missing_grants"][0]["grant"],
        "collections"
    );

    // read-write: calls act for the (anonymous) invoker; todos is admin-only.
    aura.deploy(
        "todo-api",
        "todo_api",
        json!({"grants": {"collections": {"todos": "read-write"}}}),
    )
    .await;
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"title": "milk"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "denied").await;
    // Public rules let the same call through.
    db.define(json!({"name": "todos", "fields": [
        {"name": "title", "type": "text", "required": true},
        {"name": "done", "type": "bool"}
    ], "listRule": "", "viewRule": "", "createRule": "done != true"}))
        .await;
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"title": "milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"title": "x", "done": true}))
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "denied").await;
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"done": false}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "invalid").await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("title"),
        "{body}"
    );

    // A collection outside the grant is refused, naming the grant to add.
    db.define(json!({"name": "other", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    aura.deploy(
        "todo-api",
        "todo_api",
        json!({"grants": {"collections": {"todos": "read"}}}),
    )
    .await;
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"title": "eggs"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 403, "denied").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[grants]"),
        "{body}"
    );
    let page: Value = aura
        .http
        .get(todos(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 1, "reads are allowed: {page}");

    // service: rules do not apply; full CRUD.
    aura.deploy(
        "todo-api",
        "todo_api",
        json!({"grants": {"collections": {"todos": "service"}}}),
    )
    .await;
    let response = aura
        .http
        .post(todos(""))
        .json(&json!({"title": "bread", "done": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let bread: Value = response.json().await.unwrap();
    let id = bread["id"].as_str().unwrap();
    let response = aura
        .http
        .patch(todos(&format!("/{id}")))
        .json(&json!({"title": "rye"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let got: Value = aura
        .http
        .get(todos(&format!("/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (got["title"].as_str(), got["done"].as_bool()),
        (Some("rye"), Some(true))
    );
    let page: Value = aura
        .http
        .get(todos("?filter=done%3Dtrue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalItems"], 1, "{page}");
    let response = aura
        .http
        .delete(todos(&format!("/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = aura
        .http
        .get(todos(&format!("/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "not_found").await;

    // A batch is all or nothing.
    let response = aura
        .http
        .post(todos("/batch"))
        .json(&json!({"create": [{"title": "a"}, {"title": "b"}], "delete": ["nosuchid"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{:?}", response.text().await);
    assert_eq!(
        db.list("todos", "").await["totalItems"],
        1,
        "the failed batch left nothing"
    );
    let response = aura
        .http
        .post(todos("/batch"))
        .json(&json!({"create": [{"title": "a"}, {"title": "b"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(db.list("todos", "").await["totalItems"], 3);
}

/// The CLI applies schema files (with dry runs and forced changes), and
/// `aura deploy` applies the schema a function's aura.toml names.
#[tokio::test]
async fn cli_applies_schemas_and_deploys_bring_their_collections() {
    let db = Db::sqlite();
    let aura = &db.aura;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/todo-api");
    let out = aura.cli_in(
        &example,
        &["deploy", &crate::support::wasm_path("todo_api")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("collection todos"), "{stderr}");
    let response = aura
        .http
        .post(aura.at("/fn/todo-api/todos"))
        .json(&json!({"title": "milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let todo: Value = response.json().await.unwrap();
    assert_eq!(todo["done"], false, "the schema's default applies");

    // Dropping `done`, which holds values: refused, previewed, then forced.
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("todos.toml");
    std::fs::write(
        &schema,
        "name = \"todos\"\n[[fields]]\nname = \"title\"\ntype = \"text\"\n",
    )
    .unwrap();
    let schema = schema.to_str().unwrap();
    let out = aura.cli(&["collections", "apply", schema]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lossy_migration") && stderr.contains("`done` holds values in 1 records"),
        "{stderr}"
    );
    let out = aura.cli(&["collections", "apply", schema, "--dry-run", "--force"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("would apply")
            && stdout.contains("drop field `done`"),
        "{stdout}"
    );
    let out = aura.cli(&["collections", "apply", schema, "--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = aura.cli(&["collections", "history", "todos"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("create collection `todos`") && stdout.contains("drop field `done`"),
        "{stdout}"
    );
    let out = aura.cli(&["collections", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("todos"));
    let out = aura.cli(&["collections", "drop", "todos"]);
    assert!(!out.status.success(), "records are there: force needed");
    let out = aura.cli(&["collections", "drop", "todos", "--force", "--yes"]);
    assert!(out.status.success());
}

/// Two nodes on one PostgreSQL database: a collection defined or migrated
/// on one is usable on the other without a restart, records written on
/// either are read on both, and realtime events cross from one to the other.
#[tokio::test]
async fn two_nodes_share_collections_over_postgres() {
    let Some(a) = Db::postgres().await else {
        return;
    };
    let b = Db {
        aura: second_node(&a, &[]),
        postgres: None,
    };
    a.define(json!({"name": "notes", "fields": [{"name": "text", "type": "text"}]}))
        .await;
    let created = wait_for_status(
        &b,
        "POST",
        "/api/collections/notes/records",
        json!({"text": "from b"}),
        201,
    )
    .await;
    let (status, read) = a
        .send(
            "GET",
            &format!(
                "/api/collections/notes/records/{}",
                created["id"].as_str().unwrap()
            ),
            None,
            true,
        )
        .await;
    assert_eq!((status, &read["text"]), (200, &json!("from b")));
    // Events published on A reach subscribers on B: record changes, and
    // custom events too large for one NOTIFY payload.
    let mut events = {
        use eventsource_stream::Eventsource as _;
        use futures::StreamExt as _;
        let response = b
            .aura
            .http
            .get(
                b.aura
                    .at("/api/realtime?channels=collections.notes.*,chat.*"),
            )
            .bearer_auth(&b.aura.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response
            .bytes_stream()
            .eventsource()
            .map(|e| e.expect("SSE event"))
            .boxed()
    };
    let mut next = async || {
        use futures::StreamExt as _;
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("an open stream");
        (
            event.event,
            serde_json::from_str::<Value>(&event.data).unwrap(),
        )
    };
    assert_eq!(next().await.0, "ready");
    a.insert("notes", json!({"text": "from a"})).await;
    let (kind, body) = next().await;
    assert_eq!(
        (
            kind.as_str(),
            &body["data"]["action"],
            &body["data"]["record"]["text"]
        ),
        ("message", &json!("create"), &json!("from a"))
    );
    let big = "x".repeat(20_000);
    let (status, _) = a
        .send(
            "POST",
            "/api/realtime/channels/chat.room",
            Some(json!({"text": big})),
            true,
        )
        .await;
    assert_eq!(status, 202);
    let (_, body) = next().await;
    assert_eq!(
        (
            body["channel"].as_str(),
            body["data"]["text"].as_str().map(str::len)
        ),
        (Some("chat.room"), Some(20_000))
    );

    // A migration on A reaches B: the new field is accepted there.
    a.define(json!({"name": "notes", "fields": [{"name": "text", "type": "text"}, {"name": "stars", "type": "number"}]}))
        .await;
    wait_for_status(
        &b,
        "POST",
        "/api/collections/notes/records",
        json!({"text": "x", "stars": 3}),
        201,
    )
    .await;
    drop(b);
    a.finish().await;
}

/// The PostgreSQL URL a [`Db`] server runs on.
pub fn postgres_url_of(db: &Db) -> String {
    let (url, name) = db.postgres.as_ref().expect("a PostgreSQL server");
    format!("{}/{name}", url.rsplit_once('/').expect("a database URL").0)
}

/// What a second node on `db`'s PostgreSQL database needs to join it: the
/// same admin token and master key as the first (`AURA_ADMIN_TOKEN`,
/// `AURA_MASTER_KEY`).
pub fn node_env(db: &Db) -> [(&'static str, String); 2] {
    let key = std::fs::read_to_string(db.aura.data_dir().join("master.key"))
        .expect("the first node's master key");
    [
        ("AURA_ADMIN_TOKEN", db.aura.token.clone()),
        ("AURA_MASTER_KEY", key.trim().to_owned()),
    ]
}

/// A second node on `db`'s PostgreSQL database, with `extra` arguments;
/// unless they name a `--storage-url`, it keeps object bytes in the first
/// node's storage directory (as nodes on a shared filesystem do).
pub fn second_node(db: &Db, extra: &[&str]) -> Aura {
    let url = postgres_url_of(db);
    let shared = format!("file://{}", db.aura.data_dir().join("storage").display());
    let mut arguments = vec!["--database", url.as_str()];
    if !extra.contains(&"--storage-url") {
        arguments.extend(["--storage-url", shared.as_str()]);
    }
    arguments.extend_from_slice(extra);
    let env = node_env(db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Aura::start_with_env(tempfile::tempdir().unwrap(), &arguments, &env)
}

/// Repeats a request until it answers `status` (other nodes learn of schema
/// changes asynchronously); returns the body.
async fn wait_for_status(db: &Db, method: &str, path: &str, body: Value, status: u16) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (got, answer) = db.send(method, path, Some(body.clone()), true).await;
        if got == status {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{method} {path}: still {got} {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
