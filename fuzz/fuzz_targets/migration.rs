//! Schema changes, from any pair of definitions the bytes describe
//! (`host/src/db/plan.rs`): checking them never panics, and for two valid
//! definitions the plan is one the database can run. Every old column is
//! continued at most once, every rename, addition and drop finds the
//! columns as it expects, the rebuilt column's name is free, the indexes
//! after the change are exactly the new definition's and each one over a
//! touched column is rebuilt; a value that fits a field comes through the
//! conversion unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::collections::BTreeSet;

// The host's definitions, values and planning, compiled without the server.
#[allow(dead_code)]
#[path = "../../host/src/db"]
mod db {
    pub use aura_filter as filter;
    pub mod plan;
    pub mod schema;
    pub mod values;
}
#[allow(dead_code)]
#[path = "../../host/src/storage"]
mod storage {
    pub mod names;
}

use db::plan::{self, FieldChange};
use db::schema::{self, Collection};

/// Reads choices from the fuzzer's bytes (zeros once they run out).
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let Some((first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        *first
    }
    fn pick<'p, T>(&mut self, pool: &'p [T]) -> &'p T {
        &pool[usize::from(self.byte()) % pool.len()]
    }
    fn bit(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// One time in four (never once the bytes run out), so that most
    /// fields keep to options their type allows.
    fn rarely(&mut self) -> bool {
        self.byte() % 4 == 3
    }
}

const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "aura_rebuilt_column", "id", "Bad"];
const TYPES: [&str; 12] = [
    "text", "number", "bool", "date", "datetime", "email", "url", "select", "json", "array",
    "relation", "file",
];

fn values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(""),
        json!("1"),
        json!("x"),
        json!("true"),
        json!("2026-01-02"),
        json!("2026-01-02T03:04:05+02:00"),
        json!("a@example.com"),
        json!("https://example.com/a"),
        json!("photos/1.png"),
        json!(0),
        json!(1),
        json!(2.5),
        json!(-3),
        json!(1e300),
        json!(true),
        json!(false),
        json!(["x", "y"]),
        json!(["1", 2, true]),
        json!([]),
        json!({"k": 1}),
    ]
}

/// A field definition as a client writes it.
fn field(choices: &mut Choices) -> Value {
    let kind = *choices.pick(&TYPES);
    let optional = |choices: &mut Choices, pool: &[Value]| -> Option<Value> {
        let value = choices.pick(pool).clone();
        (!value.is_null()).then_some(value)
    };
    let bound = [Value::Null, json!(0), json!(1), json!(2), json!(5)];
    let pattern = [Value::Null, json!("^[a-z]+$"), json!("\\d"), json!("(")];
    let mut definition = json!({"name": choices.pick(&NAMES), "type": kind});
    let object = definition.as_object_mut().unwrap();
    for (key, value) in [
        ("required", choices.rarely()),
        ("unique", choices.rarely()),
        ("multiple", choices.rarely()),
    ] {
        if value {
            object.insert(key.into(), Value::Bool(true));
        }
    }
    for (key, pool) in [
        ("min", &bound[..]),
        ("max", &bound[..]),
        ("pattern", &pattern[..]),
    ] {
        if choices.rarely()
            && let Some(value) = optional(choices, pool)
        {
            object.insert(key.into(), value);
        }
    }
    if choices.rarely()
        && let Some(default) = optional(choices, &values())
    {
        object.insert("default".into(), default);
    }
    match kind {
        "select" => {
            let all = ["x", "y", "1"];
            let chosen: Vec<&str> = all.into_iter().filter(|_| choices.bit()).collect();
            object.insert("values".into(), json!(chosen));
        }
        "relation" => {
            object.insert(
                "collection".into(),
                json!(choices.pick(&["items", "other"])),
            );
        }
        "array" => {
            if let Some(items) = optional(
                choices,
                &[Value::Null, json!("text"), json!("number"), json!("bool")],
            ) {
                object.insert("items".into(), items);
            }
        }
        "file" => {
            object.insert("bucket".into(), json!("files"));
        }
        _ => {}
    }
    if choices.rarely() {
        object.insert("renamedFrom".into(), json!(choices.pick(&NAMES[..4])));
    }
    definition
}

fn collection(choices: &mut Choices) -> Collection {
    let fields: Vec<Value> = (0..choices.byte() % 6).map(|_| field(choices)).collect();
    let mut indexable: Vec<Value> = fields.iter().map(|f| f["name"].clone()).collect();
    indexable.push(json!("created"));
    let indexes = (0..choices.byte() % 3)
        .map(|_| {
            let names: Vec<&Value> = (0..1 + choices.byte() % 2)
                .map(|_| choices.pick(&indexable))
                .collect();
            json!({"fields": names, "unique": choices.bit()})
        })
        .collect::<Vec<_>>();
    serde_json::from_value(json!({"name": "items", "fields": fields, "indexes": indexes}))
        .expect("a collection definition")
}

fuzz_target!(|data: &[u8]| {
    let mut choices = Choices(data);
    let old = collection(&mut choices);
    let new = collection(&mut choices);
    let (Ok(old_compiled), Ok(new_compiled)) = (schema::check(&old), schema::check(&new)) else {
        return;
    };

    // A value that fits a field is carried through a conversion unchanged.
    for (definition, compiled) in [(&old, &old_compiled), (&new, &new_compiled)] {
        for field in &definition.fields {
            let pattern = compiled.patterns.get(&field.name);
            for value in values() {
                if let Ok(normal) = db::values::validate(field, &value, pattern) {
                    let converted = plan::convert(&normal, field);
                    assert_eq!(
                        db::values::validate(field, &converted, pattern).ok(),
                        Some(normal.clone()),
                        "{field:?}: {normal} became {converted}"
                    );
                }
            }
        }
    }

    // The columns, as the steps find and leave them.
    let changes = plan::fields(&old, &new);
    let mut columns: BTreeSet<&str> = old.fields.iter().map(|f| f.name.as_str()).collect();
    let mut continued = BTreeSet::new();
    let rebuilt = plan::rebuilt_column(&old, &new);
    for change in &changes {
        match *change {
            FieldChange::Add(field) => {
                assert!(columns.insert(&field.name), "add {}: exists", field.name);
            }
            FieldChange::Keep { previous, field } => {
                assert!(
                    continued.insert(&previous.name),
                    "{} continued twice",
                    previous.name
                );
                if previous.name != field.name {
                    assert!(
                        columns.remove(previous.name.as_str()),
                        "rename {}: missing",
                        previous.name
                    );
                    assert!(
                        columns.insert(&field.name),
                        "rename to {}: exists",
                        field.name
                    );
                }
                if change.rebuilds() {
                    assert!(!columns.contains(rebuilt.as_str()), "{rebuilt} is taken");
                }
                let _ = plan::type_name(field);
            }
            FieldChange::Drop(field) => {
                assert!(
                    !continued.contains(&field.name),
                    "{} kept and dropped",
                    field.name
                );
                assert!(
                    columns.remove(field.name.as_str()),
                    "drop {}: missing",
                    field.name
                );
            }
        }
    }
    let expected: BTreeSet<&str> = new.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(columns, expected, "the columns after the change");

    // The indexes: the old ones less the drops, plus the creations.
    let mut words = Vec::new();
    let (drops, creates) = plan::indexes(&old, &new, &changes, &mut words);
    let mut indexes: BTreeSet<String> = old
        .all_indexes()
        .iter()
        .map(|i| old.index_name(i))
        .collect();
    for name in &drops {
        assert!(indexes.remove(name), "drop index {name}: missing");
    }
    for index in &creates {
        assert!(
            indexes.insert(new.index_name(index)),
            "create index {index:?}: exists"
        );
    }
    let wanted: BTreeSet<String> = new
        .all_indexes()
        .iter()
        .map(|i| new.index_name(i))
        .collect();
    assert_eq!(indexes, wanted, "the indexes after the change");
    for change in &changes {
        let touched = match *change {
            FieldChange::Keep { previous, field }
                if previous.name != field.name || change.rebuilds() =>
            {
                previous
            }
            FieldChange::Drop(field) => field,
            _ => continue,
        };
        for index in old.all_indexes() {
            if index.fields.contains(&touched.name) {
                assert!(
                    drops.contains(&old.index_name(&index)),
                    "{index:?} over {} is kept",
                    touched.name
                );
            }
        }
    }
});
