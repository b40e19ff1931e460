//! Records written as `multipart/form-data`, as PocketBase apps send them:
//! a record and its files in one request. Text parts are field values, read
//! by the field's type; a file part is stored in its file field's bucket
//! (under the bucket's create rule, checked against the stored object) as `{collection}/{random}/{file name}`,
//! and the record holds that key. When the record is not written, the files
//! stored for it are removed again.

use super::files::store_new_part;
use super::{ApiError, AppState};
use crate::db::Caller;
use crate::db::schema::{Field, FieldType, ItemType};
use axum::extract::multipart::Multipart;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

/// Largest total of a form's text parts.
const MAX_TEXT: usize = 4 << 20;

/// A form read into a record body, and the objects stored for it.
pub(super) struct RecordForm {
    pub data: Value,
    stored: Vec<(String, String)>,
}

impl RecordForm {
    /// The objects stored for the record, as (bucket, key).
    pub fn stored(&self) -> &[(String, String)] {
        &self.stored
    }

    /// Removes the objects stored for a record that was not written.
    pub async fn discard(self, state: &AppState) {
        for (bucket, key) in self.stored {
            if let Err(err) = state.storage.delete(&bucket, &key).await {
                tracing::warn!(%bucket, %key, "removing a file of an unwritten record: {err:#}");
            }
        }
    }
}

fn invalid(message: String, field: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_form", message)
        .with_details(json!({ "field": field }))
}

/// Reads `form` for a record of `collection`, storing its files.
pub(super) async fn read(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    mut form: Multipart,
) -> Result<RecordForm, ApiError> {
    let definition = state.db.collection(collection)?;
    let mut record = RecordForm {
        data: Value::Object(Map::new()),
        stored: Vec::new(),
    };
    let mut text_bytes = 0usize;
    let result: Result<(), ApiError> = async {
        while let Some(part) = form.next_field().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_form",
                format!("the form is not valid multipart/form-data: {e}"),
            )
        })? {
            let name = part.name().unwrap_or_default().to_owned();
            let base = name.trim_end_matches(['+', '-']);
            let field = definition.fields.iter().find(|f| f.name == base);
            let many = field.is_some_and(|f| f.multiple || f.kind == FieldType::Array);
            let value = if let Some(file_name) = part.file_name().map(str::to_owned) {
                let Some(field) =
                    field.filter(|f| f.kind == FieldType::File && !name.ends_with('-'))
                else {
                    return Err(invalid(
                        format!(
                            "`{name}` is not a file field of `{collection}`, so it takes no file"
                        ),
                        &name,
                    ));
                };
                let key = format!(
                    "{collection}/{}/{}",
                    crate::db::values::new_id(),
                    safe_name(&file_name)
                );
                let bucket_name = field.bucket.clone().unwrap_or_default();
                let bucket = state.storage.bucket(&bucket_name).await?;
                store_new_part(state, caller, &bucket, &key, part).await?;
                record.stored.push((bucket_name, key.clone()));
                Value::String(key)
            } else {
                let text = part
                    .text()
                    .await
                    .map_err(|e| invalid(format!("reading `{name}`: {e}"), &name))?;
                text_bytes += text.len();
                if text_bytes > MAX_TEXT {
                    return Err(ApiError::payload_too_large(MAX_TEXT as u64));
                }
                if many {
                    // An empty part makes a list field empty; a JSON array
                    // gives its items.
                    let items = match serde_json::from_str::<Value>(&text) {
                        _ if text.is_empty() => Some(Vec::new()),
                        Ok(Value::Array(items)) if text.starts_with('[') => Some(items),
                        _ => None,
                    };
                    if let Some(items) = items {
                        let slot = &mut record.data[&name];
                        if slot.is_null() {
                            *slot = json!([]);
                        }
                        slot.as_array_mut().expect("a list").extend(items);
                        continue;
                    }
                }
                typed(field, &text, many)
            };
            let slot = &mut record.data[&name];
            match (many, slot.is_null()) {
                (true, true) => *slot = json!([value]),
                (true, false) => slot.as_array_mut().expect("a list").push(value),
                (false, true) => *slot = value,
                (false, false) => {
                    return Err(invalid(format!("`{name}` is given more than once"), &name));
                }
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(record),
        Err(err) => {
            record.discard(state).await;
            Err(err)
        }
    }
}

/// A text part as the value (or, for list fields, the item) of `field`.
/// Text a type cannot read is passed on as text, so the record's own
/// checks name the field and the type it wants.
fn typed(field: Option<&Field>, text: &str, item: bool) -> Value {
    let Some(field) = field else {
        return Value::String(text.to_owned());
    };
    let kind = match (field.kind, item) {
        (FieldType::Array, true) => match field.items {
            Some(ItemType::Number) => FieldType::Number,
            Some(ItemType::Bool) => FieldType::Bool,
            _ => FieldType::Text,
        },
        (kind, _) => kind,
    };
    match kind {
        FieldType::Number if text.is_empty() => Value::Null,
        FieldType::Number => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .unwrap_or_else(|| Value::String(text.to_owned())),
        FieldType::Bool => match text {
            "true" | "on" | "1" => Value::Bool(true),
            "false" | "off" | "0" | "" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        FieldType::Json if text.is_empty() => Value::Null,
        // JSON, or else the text as a JSON string.
        FieldType::Json => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
        }
        _ => Value::String(text.to_owned()),
    }
}

/// A file name as the last segment of a key: letters, digits, `.`, `-`
/// and `_`, at most 100 bytes, never empty or dots alone.
fn safe_name(name: &str) -> String {
    let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.len() > 100 {
        let keep = safe.len() - 100;
        safe.drain(..keep);
    }
    if safe.trim_matches('.').is_empty() {
        safe = "file".into();
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_become_safe_key_segments() {
        assert_eq!(safe_name("me.png"), "me.png");
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(
            safe_name("C:\\docs\\r\u{e9}sum\u{e9} 1.pdf"),
            "r_sum__1.pdf"
        );
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name(&"a".repeat(300)).len(), 100);
    }

    #[test]
    fn text_parts_take_their_field_type() {
        let field = |kind: FieldType| Field {
            kind,
            ..serde_json::from_value(json!({"name": "x", "type": "text"})).unwrap()
        };
        let typed = |kind, text| typed(Some(&field(kind)), text, false);
        assert_eq!(typed(FieldType::Number, "2.5"), json!(2.5));
        assert_eq!(typed(FieldType::Number, ""), Value::Null);
        assert_eq!(typed(FieldType::Number, "two"), json!("two"));
        assert_eq!(typed(FieldType::Bool, "on"), json!(true));
        assert_eq!(typed(FieldType::Json, r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(typed(FieldType::Json, "{not json"), json!("{not json"));
        assert_eq!(typed(FieldType::Text, "42"), json!("42"));
        assert_eq!(super::typed(None, "42", false), json!("42"));
        let numbers = Field {
            kind: FieldType::Array,
            items: Some(ItemType::Number),
            ..field(FieldType::Array)
        };
        assert_eq!(super::typed(Some(&numbers), "3", true), json!(3.0));
    }
}
