//! The filter language, differentially: any filter that compiles runs on
//! a real SQLite (in memory) and a real PostgreSQL
//! (`AURA_TEST_POSTGRES_URL`, which `.ci/run` sets) over the same rows,
//! without an SQL error on either, and both select the same rows. Without
//! the variable only SQLite runs, and the target says so. The backends
//! differ in one documented way, case folding of non-ASCII letters by `~`,
//! so filters with such letters are only run, not compared.
#![no_main]

use aura_filter::{Dialect, Kind, Param, Resolved, Resolver, Sql, compile, parse};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use sqlx::Connection as _;
use std::sync::{LazyLock, Mutex};

/// A `posts` collection and a signed-in user `u1` with roles.
struct Posts;

impl Resolver for Posts {
    fn resolve(&self, path: &str) -> Result<Resolved, String> {
        let column = |name: &str, kind, multi| Resolved::Column {
            sql: format!("\"{name}\""),
            kind,
            multi,
            params: Vec::new(),
        };
        Ok(match path {
            "id" | "title" | "author" => column(path, Kind::Text, false),
            "views" => column(path, Kind::Number, false),
            "published" => column(path, Kind::Bool, false),
            "tags" => column(path, Kind::Text, true),
            "scores" => column(path, Kind::Number, true),
            "@request.auth.id" => Resolved::Value(json!("u1")),
            "@request.auth.roles" => Resolved::Value(json!(["editor", "reviewer"])),
            "@request.auth.nothing" => Resolved::Value(json!([])),
            "@request.body.count" => Resolved::Value(json!(3)),
            "@request.body.flag" => Resolved::Value(json!(null)),
            _ => return Err(format!("unknown field `{path}`")),
        })
    }
}

/// `(id, title, author, views, published, tags, scores)`: empty, null,
/// wildcard characters, case, quotes, non-ASCII letters and JSON-ish text
/// in values.
type Row = (
    &'static str,
    Option<&'static str>,
    &'static str,
    f64,
    bool,
    &'static str,
    &'static str,
);

const ROWS: &[Row] = &[
    (
        "p1",
        Some("Hello World"),
        "u1",
        10.0,
        true,
        r#"["rust","wasm"]"#,
        "[1,2]",
    ),
    (
        "p2",
        Some("50% off_sale"),
        "u2",
        3.0,
        false,
        r#"["sale"]"#,
        "[5]",
    ),
    ("p3", None, "u1", 0.0, true, "[]", "[]"),
    ("p4", Some(""), "u3", 7.5, false, r#"["rust"]"#, "[9,9]"),
    (
        "p5",
        Some("it's \"quoted\" \\ back"),
        "u1",
        -2.5,
        false,
        r#"["a b","it's"]"#,
        "[-1,0.5]",
    ),
    (
        "p6",
        Some("[\"not\",\"json\"]"),
        "",
        1e300,
        true,
        r#"["", "RUST"]"#,
        "[1e300]",
    ),
    (
        "p7",
        Some("Ärger im Café"),
        "u2",
        0.1,
        true,
        r#"["Ärger"]"#,
        "[0.1,0.2]",
    ),
];

/// The statements are the same on both backends but for the connection
/// type, so macros write them once.
macro_rules! insert {
    ($db:expr, $statement:expr) => {
        for (id, title, author, views, published, tags, scores) in ROWS {
            sqlx::query($statement)
                .bind(id)
                .bind(title)
                .bind(author)
                .bind(views)
                .bind(published)
                .bind(tags)
                .bind(scores)
                .execute(&mut *$db)
                .await
                .expect("a row");
        }
    };
}

/// The ids `$sql` selects, in order.
macro_rules! select {
    ($db:expr, $sql:expr) => {{
        let sql: &Sql = $sql;
        let text = format!("SELECT id FROM posts WHERE {} ORDER BY id", sql.text);
        let mut query = sqlx::query_scalar::<_, String>(&text);
        for param in &sql.params {
            query = match param {
                Param::Text(v) => query.bind(v.clone()),
                Param::Number(v) => query.bind(*v),
                Param::Bool(v) => query.bind(*v),
                Param::Null => query.bind(None::<String>),
            };
        }
        query.fetch_all(&mut *$db).await
    }};
}

struct Databases {
    runtime: tokio::runtime::Runtime,
    sqlite: sqlx::SqliteConnection,
    postgres: Option<sqlx::PgConnection>,
}

static DATABASES: LazyLock<Mutex<Databases>> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (sqlite, postgres) = runtime.block_on(async {
        let mut sqlite = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("SQLite in memory");
        sqlx::query("CREATE TABLE posts (id TEXT, title TEXT, author TEXT, views REAL, published BOOLEAN, tags TEXT, scores TEXT)")
            .execute(&mut sqlite)
            .await
            .expect("the SQLite table");
        insert!(&mut sqlite, "INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?, ?)");
        let postgres = match std::env::var("AURA_TEST_POSTGRES_URL") {
            Ok(url) => {
                let mut postgres = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
                // A temporary table: several fuzzing processes can share the server.
                sqlx::query("CREATE TEMP TABLE posts (id TEXT, title TEXT, author TEXT, views FLOAT8, published BOOLEAN, tags JSONB, scores JSONB)")
                    .execute(&mut postgres)
                    .await
                    .expect("the PostgreSQL table");
                sqlx::query("SET statement_timeout = 2000")
                    .execute(&mut postgres)
                    .await
                    .expect("a statement timeout");
                insert!(&mut postgres, "INSERT INTO posts VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)");
                Some(postgres)
            }
            Err(_) => {
                eprintln!("AURA_TEST_POSTGRES_URL is not set: filters run on SQLite only");
                None
            }
        };
        (sqlite, postgres)
    });
    Mutex::new(Databases {
        runtime,
        sqlite,
        postgres,
    })
});

/// Whether `text` has a letter outside ASCII that has a case.
fn folds_beyond_ascii(text: &str) -> bool {
    text.chars()
        .any(|c| !c.is_ascii() && (c.is_lowercase() || c.is_uppercase()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(text) else {
        return;
    };
    let (Ok(lite), Ok(pg)) = (
        compile(&expr, &Posts, Dialect::Sqlite),
        compile(&expr, &Posts, Dialect::Postgres),
    ) else {
        return;
    };
    let mut databases = DATABASES.lock().expect("not poisoned");
    let Databases {
        runtime,
        sqlite,
        postgres,
    } = &mut *databases;
    runtime.block_on(async {
        let from_sqlite = select!(sqlite, &lite)
            .unwrap_or_else(|e| panic!("SQLite: {text:?}: {}: {e}", lite.text));
        if let Some(postgres) = postgres {
            let from_postgres = select!(postgres, &pg)
                .unwrap_or_else(|e| panic!("PostgreSQL: {text:?}: {}: {e}", pg.text));
            // The one known difference: `~` ignores case in ASCII letters
            // only on SQLite (as PocketBase does), in every letter on
            // PostgreSQL (docs/database.md).
            if !folds_beyond_ascii(text) {
                assert_eq!(
                    from_sqlite, from_postgres,
                    "{text:?}\nSQLite: {}\nPostgreSQL: {}",
                    lite.text, pg.text
                );
            }
        }
    });
});
