//! How the parts of a record form become a record body, apart from
//! reading the form and storing its files: a part named after a field
//! (or `field+`/`field-`, PocketBase's append and remove) gives its value,
//! typed by the field; list fields gather their parts, any other field
//! takes one part. The fuzz target `multipart` runs this on forms from
//! any bytes.

use crate::db::schema::{Field, FieldType, ItemType};
use serde_json::{Map, Value, json};

/// Largest total of a form's text parts.
pub const MAX_TEXT: usize = 4 << 20;

/// Why a part was refused.
#[derive(Debug, PartialEq)]
pub enum Problem {
    /// The part does not fit the collection; `field` is the part's name.
    Invalid { message: String, field: String },
    /// The text parts together exceed [`MAX_TEXT`].
    TooLarge,
}

fn invalid(message: String, field: &str) -> Problem {
    Problem::Invalid {
        message,
        field: field.to_owned(),
    }
}

/// The record body read so far.
#[derive(Default)]
pub struct FormValues {
    data: Map<String, Value>,
    text_bytes: usize,
}

/// The field a part named `name` gives a value of, if any.
fn field_of<'f>(fields: &'f [Field], name: &str) -> Option<&'f Field> {
    let base = name.trim_end_matches(['+', '-']);
    fields.iter().find(|f| f.name == base)
}

fn is_list(field: Option<&Field>) -> bool {
    field.is_some_and(|f| f.multiple || f.kind == FieldType::Array)
}

impl FormValues {
    /// The file field a file part named `name` is stored for, or why it
    /// takes no file.
    pub fn file_field<'f>(
        fields: &'f [Field],
        collection: &str,
        name: &str,
    ) -> Result<&'f Field, Problem> {
        field_of(fields, name)
            .filter(|f| f.kind == FieldType::File && !name.ends_with('-'))
            .ok_or_else(|| {
                invalid(
                    format!("`{name}` is not a file field of `{collection}`, so it takes no file"),
                    name,
                )
            })
    }

    /// Adds the stored key of a file part named `name`.
    pub fn add_file(&mut self, fields: &[Field], name: &str, key: String) -> Result<(), Problem> {
        self.add(name, is_list(field_of(fields, name)), Value::String(key))
    }

    /// Adds a text part named `name`.
    pub fn add_text(&mut self, fields: &[Field], name: &str, text: &str) -> Result<(), Problem> {
        self.text_bytes += text.len();
        if self.text_bytes > MAX_TEXT {
            return Err(Problem::TooLarge);
        }
        let field = field_of(fields, name);
        let many = is_list(field);
        if many {
            // An empty part makes a list field empty; a JSON array gives
            // its items.
            let items = match serde_json::from_str::<Value>(text) {
                _ if text.is_empty() => Some(Vec::new()),
                Ok(Value::Array(items)) if text.starts_with('[') => Some(items),
                _ => None,
            };
            if let Some(items) = items {
                let slot = self.data.entry(name).or_insert_with(|| json!([]));
                slot.as_array_mut()
                    .expect("a list field holds a list")
                    .extend(items);
                return Ok(());
            }
        }
        self.add(name, many, typed(field, text, many))
    }

    fn add(&mut self, name: &str, many: bool, value: Value) -> Result<(), Problem> {
        match self.data.get_mut(name) {
            None if many => {
                self.data.insert(name.to_owned(), json!([value]));
            }
            None => {
                self.data.insert(name.to_owned(), value);
            }
            Some(Value::Array(items)) if many => items.push(value),
            Some(_) => return Err(invalid(format!("`{name}` is given more than once"), name)),
        }
        Ok(())
    }

    /// The record body.
    pub fn into_value(self) -> Value {
        Value::Object(self.data)
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
pub fn safe_name(name: &str) -> String {
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

    fn field(kind: FieldType) -> Field {
        Field {
            kind,
            ..serde_json::from_value(json!({"name": "x", "type": "text"})).unwrap()
        }
    }

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

    #[test]
    fn list_fields_gather_parts_and_others_take_one() {
        let tags = Field {
            name: "tags".into(),
            items: Some(ItemType::Text),
            ..field(FieldType::Array)
        };
        let fields = [field(FieldType::Number), tags];
        let mut form = FormValues::default();
        form.add_text(&fields, "x", "2").unwrap();
        form.add_text(&fields, "tags", "a").unwrap();
        form.add_text(&fields, "tags", r#"["b","c"]"#).unwrap();
        form.add_text(&fields, "tags+", "d").unwrap();
        let twice = form.add_text(&fields, "x", "3").unwrap_err();
        assert!(matches!(twice, Problem::Invalid { field, .. } if field == "x"));
        assert_eq!(
            form.into_value(),
            json!({"x": 2.0, "tags": ["a", "b", "c"], "tags+": ["d"]})
        );
        let refused = FormValues::file_field(&fields, "notes", "x").unwrap_err();
        assert!(matches!(refused, Problem::Invalid { message, .. } if message.contains("no file")));
    }
}
