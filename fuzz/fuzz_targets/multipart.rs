//! Record forms, from any bytes: the body of a `multipart/form-data`
//! request (boundary `B`), cut into chunks as a network would, read by
//! multer (as the server reads it) into a record body by the host's own
//! `host/src/api/form_values.rs`. Nothing panics; a form read whole gives
//! a list for every list field and, for any other, the value of its one
//! part (a second one is refused); a file name becomes a safe key segment.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::LazyLock;

// The host's definitions and the form reading, compiled without the server.
#[allow(dead_code)]
#[path = "../../host/src/db"]
mod db {
    pub use aura_filter as filter;
    pub mod schema;
    pub mod values;
}
#[allow(dead_code)]
#[path = "../../host/src/storage"]
mod storage {
    pub mod names;
}
#[allow(dead_code)]
#[path = "../../host/src/api/form_values.rs"]
mod form_values;

use db::schema::Field;
use form_values::{FormValues, Problem};

/// A field of each kind a form sets, single and listed.
static FIELDS: LazyLock<Vec<Field>> = LazyLock::new(|| {
    serde_json::from_value(json!([
        {"name": "title", "type": "text"},
        {"name": "n", "type": "number"},
        {"name": "ok", "type": "bool"},
        {"name": "meta", "type": "json"},
        {"name": "tags", "type": "array", "items": "text"},
        {"name": "nums", "type": "array", "items": "number"},
        {"name": "flags", "type": "array", "items": "bool"},
        {"name": "kind", "type": "select", "values": ["a", "b"], "multiple": true},
        {"name": "doc", "type": "file", "bucket": "files"},
        {"name": "docs", "type": "file", "bucket": "files", "multiple": true},
    ]))
    .expect("the fields are valid")
});

fn is_list(name: &str) -> bool {
    let base = name.trim_end_matches(['+', '-']);
    FIELDS
        .iter()
        .any(|f| f.name == base && (f.multiple || f.kind == db::schema::FieldType::Array))
}

/// Reads the form, with the names of its parts in order; `Ok(None)` when
/// multer refuses it.
async fn read(chunks: Vec<Bytes>) -> Result<Option<(Value, Vec<String>)>, Problem> {
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    let mut form = multer::Multipart::new(stream, "B");
    let mut values = FormValues::default();
    let mut names = Vec::new();
    loop {
        let mut part = match form.next_field().await {
            Ok(Some(part)) => part,
            Ok(None) => return Ok(Some((values.into_value(), names))),
            Err(_) => return Ok(None),
        };
        let name = part.name().unwrap_or_default().to_owned();
        names.push(name.clone());
        if let Some(file_name) = part.file_name().map(str::to_owned) {
            FormValues::file_field(&FIELDS, "notes", &name)?;
            let safe = form_values::safe_name(&file_name);
            assert!(!safe.is_empty() && safe.len() <= 100, "{safe:?}");
            assert!(safe.trim_matches('.') != "", "{safe:?}");
            assert!(
                safe.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')),
                "{safe:?}"
            );
            while let Ok(Some(_)) = part.chunk().await {}
            values.add_file(&FIELDS, &name, format!("notes/id/{safe}"))?;
        } else {
            let Ok(text) = part.text().await else {
                return Ok(None);
            };
            values.add_text(&FIELDS, &name, &text)?;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    // Chunks of 1 to 64 bytes, so that a boundary or header can straddle two.
    let size = usize::from(cut % 64) + 1;
    let chunks: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
    match futures_executor::block_on(read(chunks)) {
        Ok(Some((Value::Object(record), names))) => {
            for (name, value) in &record {
                if is_list(name) {
                    assert!(value.is_array(), "{name}: {value}");
                } else {
                    let parts = names.iter().filter(|n| *n == name).count();
                    assert_eq!(parts, 1, "{name}");
                }
            }
            assert!(names.iter().all(|n| record.contains_key(n)), "{names:?}");
        }
        Ok(Some((other, _))) => panic!("a form gave {other}"),
        Ok(None) => {}
        Err(Problem::Invalid { field, message }) => assert!(!message.is_empty(), "{field}"),
        Err(Problem::TooLarge) => {}
    }
});
