//! The filter language, from any text: parsing never panics, an error
//! points inside the input, and a parsed filter compiles for both
//! dialects into SQL whose every placeholder names a bound parameter (no
//! input text reaches the SQL except through parameters) and that uses
//! every parameter.
#![no_main]

use aura_filter::{Dialect, Kind, Resolved, Resolver, compile, parse};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

/// A collection with a field of each kind, single and multi-valued, plus
/// request values.
struct Fields;

impl Resolver for Fields {
    fn resolve(&self, path: &str) -> Result<Resolved, String> {
        let column = |kind, multi| Resolved::Column {
            sql: format!("\"{}\"", path.replace('.', "_")),
            kind,
            multi,
            params: Vec::new(),
        };
        Ok(match path {
            "id" | "title" | "author.name" => column(Kind::Text, false),
            "views" | "author.age" => column(Kind::Number, false),
            "published" => column(Kind::Bool, false),
            "tags" | "author.teams.name" => column(Kind::Text, true),
            "scores" => column(Kind::Number, true),
            "@request.auth.id" => Resolved::Value(json!("u1")),
            "@request.auth.roles" => Resolved::Value(json!(["editor"])),
            "@request.auth.nothing" => Resolved::Value(json!([])),
            "@request.body.count" => Resolved::Value(json!(3)),
            "@request.body.flag" => Resolved::Value(json!(null)),
            _ => return Err(format!("unknown field `{path}`")),
        })
    }
}

/// The parameter numbers the SQL refers to (`?N` or `$N`).
fn placeholders(sql: &str, sigil: char) -> Vec<usize> {
    let mut found = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != sigil {
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        if let Ok(n) = digits.parse() {
            found.push(n);
        }
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let expr = match parse(text) {
        Ok(expr) => expr,
        Err(err) => {
            assert!(err.position <= text.len(), "{err:?} for {text:?}");
            return;
        }
    };
    for (dialect, sigil) in [(Dialect::Sqlite, '?'), (Dialect::Postgres, '$')] {
        let Ok(sql) = compile(&expr, &Fields, dialect) else {
            continue;
        };
        let used = placeholders(&sql.text, sigil);
        for n in &used {
            assert!(
                (1..=sql.params.len()).contains(n),
                "{dialect:?}: placeholder {n} of {} params in {}",
                sql.params.len(),
                sql.text
            );
        }
        // And every parameter is used: the same SQL text always comes with
        // the same parameters (PostgreSQL's prepared statements rely on it).
        for n in 1..=sql.params.len() {
            assert!(
                used.contains(&n),
                "{dialect:?}: parameter {n} unused in {}",
                sql.text
            );
        }
    }
});
