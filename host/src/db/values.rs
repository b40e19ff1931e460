//! Field values: validating and normalising what clients send, and the
//! timestamp and id formats of records.

use super::schema::{Field, FieldType, ItemType};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rand::Rng as _;
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

/// Largest JSON value a `json` field holds, serialised.
pub const MAX_JSON_BYTES: usize = 1 << 20;
/// Longest text value.
pub const MAX_TEXT_CHARS: usize = 1 << 20;

/// Why a value does not fit its field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Machine-readable reason, e.g. `invalid_type`, `too_long`.
    pub code: &'static str,
    /// Human-readable reason.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn type_error(expected: &str) -> FieldError {
    FieldError::new("invalid_type", format!("expected {expected}"))
}

/// Whether a text anywhere in `value` (a key too) holds U+0000.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// Validates `value` for `field` and returns its normal form: `null` for
/// absent values (`null`, `""`), UTC datetimes, deduplicated ids.
/// `required` is checked separately, since updates may omit fields.
pub fn validate(
    field: &Field,
    value: &Value,
    pattern: Option<&Regex>,
) -> Result<Value, FieldError> {
    use FieldType as T;
    if value.is_null() || value.as_str() == Some("") {
        return Ok(Value::Null);
    }
    // PostgreSQL's text and JSON cannot hold it: refused on every backend.
    if holds_nul(value) {
        return Err(FieldError::new(
            "invalid_text",
            "text cannot hold the NUL character (U+0000)",
        ));
    }
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let normal = match field.kind {
        T::Text => {
            let text = text(value).ok_or_else(|| type_error("text"))?;
            let length = text.chars().count();
            if length > MAX_TEXT_CHARS {
                return Err(FieldError::new(
                    "too_long",
                    format!("at most {MAX_TEXT_CHARS} characters"),
                ));
            }
            bounds(field, length as f64, "characters")?;
            if let Some(pattern) = pattern
                && !pattern.is_match(&text)
            {
                return Err(FieldError::new(
                    "pattern_mismatch",
                    format!("does not match the pattern `{}`", pattern.as_str()),
                ));
            }
            Value::String(text)
        }
        T::Number => {
            let number = value
                .as_f64()
                .filter(|n| n.is_finite())
                .ok_or_else(|| type_error("a number"))?;
            bounds(field, number, "")?;
            number_value(number)
        }
        T::Bool => Value::Bool(value.as_bool().ok_or_else(|| type_error("true or false"))?),
        T::Date => {
            let text = text(value).ok_or_else(|| type_error("a date (YYYY-MM-DD)"))?;
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .map_err(|_| type_error("a date (YYYY-MM-DD)"))?;
            Value::String(text)
        }
        T::Datetime => {
            let text = text(value).ok_or_else(|| type_error("a datetime (RFC 3339)"))?;
            Value::String(format_time(
                parse_datetime(&text).ok_or_else(|| type_error("a datetime (RFC 3339)"))?,
            ))
        }
        T::Email => {
            let text = text(value).ok_or_else(|| type_error("an email address"))?;
            if !valid_email(&text) {
                return Err(FieldError::new(
                    "invalid_email",
                    "not a valid email address",
                ));
            }
            bounds(field, text.chars().count() as f64, "characters")?;
            Value::String(text)
        }
        T::Url => {
            let text = text(value).ok_or_else(|| type_error("a URL"))?;
            let valid = url::Url::parse(&text)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
            if !valid {
                return Err(FieldError::new(
                    "invalid_url",
                    "not an absolute http(s) URL",
                ));
            }
            bounds(field, text.chars().count() as f64, "characters")?;
            Value::String(text)
        }
        T::Select if field.multiple => {
            let items = strings(value, "an array of values")?;
            for item in &items {
                if !field.values.contains(item) {
                    return Err(not_allowed(field, item));
                }
            }
            bounds(field, items.len() as f64, "values")?;
            Value::from(items)
        }
        T::Select => {
            let text = text(value).ok_or_else(|| type_error("text"))?;
            if !field.values.contains(&text) {
                return Err(not_allowed(field, &text));
            }
            Value::String(text)
        }
        T::Relation if field.multiple => {
            let ids = strings(value, "an array of record ids")?;
            if let Some(bad) = ids.iter().find(|id| !valid_id(id)) {
                return Err(FieldError::new(
                    "invalid_id",
                    format!("`{bad}` is not a record id"),
                ));
            }
            bounds(field, ids.len() as f64, "records")?;
            Value::from(ids)
        }
        T::File if field.multiple => {
            let keys = strings(value, "an array of object keys")?;
            for key in &keys {
                check_key(key)?;
            }
            bounds(field, keys.len() as f64, "files")?;
            Value::from(keys)
        }
        T::File => {
            let key = text(value).ok_or_else(|| type_error("an object key"))?;
            check_key(&key)?;
            Value::String(key)
        }
        T::Relation => {
            let id = text(value).ok_or_else(|| type_error("a record id"))?;
            if !valid_id(&id) {
                return Err(FieldError::new(
                    "invalid_id",
                    format!("`{id}` is not a record id"),
                ));
            }
            Value::String(id)
        }
        T::Json => {
            let size = serde_json::to_vec(value)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_JSON_BYTES {
                return Err(FieldError::new(
                    "too_large",
                    format!("at most {MAX_JSON_BYTES} bytes of JSON"),
                ));
            }
            value.clone()
        }
        T::Array => {
            let items = value.as_array().ok_or_else(|| type_error("an array"))?;
            let item_type = field.items.unwrap_or(ItemType::Text);
            let mut normal = Vec::with_capacity(items.len());
            for item in items {
                normal.push(match (item_type, item) {
                    (ItemType::Text, Value::String(_)) | (ItemType::Bool, Value::Bool(_)) => {
                        item.clone()
                    }
                    (ItemType::Number, Value::Number(n)) => number_value(n.as_f64().unwrap_or(0.0)),
                    (ItemType::Text, _) => return Err(type_error("an array of text")),
                    (ItemType::Number, _) => return Err(type_error("an array of numbers")),
                    (ItemType::Bool, _) => return Err(type_error("an array of booleans")),
                });
            }
            bounds(field, normal.len() as f64, "items")?;
            Value::Array(normal)
        }
    };
    Ok(normal)
}

/// Whether a normal value counts as present for `required`.
pub fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        _ => true,
    }
}

fn not_allowed(field: &Field, value: &str) -> FieldError {
    FieldError::new(
        "not_allowed",
        format!("`{value}` is not one of: {}", field.values.join(", ")),
    )
}

/// A deduplicated list of strings.
fn strings(value: &Value, expected: &str) -> Result<Vec<String>, FieldError> {
    let items = match value {
        Value::String(one) => return Ok(vec![one.clone()]),
        Value::Array(items) => items,
        _ => return Err(type_error(expected)),
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let item = item.as_str().ok_or_else(|| type_error(expected))?;
        if !out.iter().any(|seen| seen == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

fn bounds(field: &Field, measure: f64, unit: &str) -> Result<(), FieldError> {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    if let Some(min) = field.min.filter(|min| measure < *min) {
        return Err(FieldError::new(
            "too_small",
            format!("must be at least {min}{unit}"),
        ));
    }
    if let Some(max) = field.max.filter(|max| measure > *max) {
        return Err(FieldError::new(
            "too_large",
            format!("must be at most {max}{unit}"),
        ));
    }
    Ok(())
}

/// A JSON number, integral when it is one.
pub fn number_value(number: f64) -> Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Value::from(number as i64)
    } else {
        Value::from(number)
    }
}

/// Refuses a key no object can have.
fn check_key(key: &str) -> Result<(), FieldError> {
    match crate::storage::names::key_problem(key) {
        Some(problem) => Err(FieldError::new(
            "invalid_key",
            format!("`{key}` is not an object key: {problem}"),
        )),
        None => Ok(()),
    }
}

/// Whether `text` is an email address we accept.
pub fn valid_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain.contains('.')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// Record ids: 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A new random record id: 15 lowercase letters and digits.
pub fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..15)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The stored form of instants: `2026-01-02T03:04:05.678Z`, which sorts
/// as text in time order.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, in the stored form.
pub fn now() -> String {
    format_time(Utc::now())
}

/// Parses RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` taken as UTC.
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let trimmed = text.strip_suffix('Z').unwrap_or(text);
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(definition: Value) -> Field {
        serde_json::from_value(definition).unwrap()
    }

    #[test]
    fn values_are_normalised() {
        let when = field(json!({"name": "when", "type": "datetime"}));
        assert_eq!(
            validate(&when, &json!("2026-01-02T04:04:05+01:00"), None).unwrap(),
            json!("2026-01-02T03:04:05.000Z")
        );
        let tags =
            field(json!({"name": "tags", "type": "relation", "collection": "t", "multiple": true}));
        assert_eq!(
            validate(&tags, &json!(["a", "b", "a"]), None).unwrap(),
            json!(["a", "b"])
        );
        let n = field(json!({"name": "n", "type": "number", "max": 10}));
        assert_eq!(validate(&n, &json!(3.0), None).unwrap(), json!(3));
        assert_eq!(validate(&n, &json!(""), None).unwrap(), Value::Null);
        assert_eq!(
            validate(&n, &json!(11), None).unwrap_err().code,
            "too_large"
        );
        assert_eq!(
            validate(&n, &json!("3"), None).unwrap_err().code,
            "invalid_type"
        );
    }

    #[test]
    fn emails_urls_and_selects_are_checked() {
        let email = field(json!({"name": "e", "type": "email"}));
        assert!(validate(&email, &json!("a@b.co"), None).is_ok());
        for bad in ["a@b", "@b.co", "a b@c.de", "a@.co"] {
            assert!(validate(&email, &json!(bad), None).is_err(), "{bad}");
        }
        let url = field(json!({"name": "u", "type": "url"}));
        assert!(validate(&url, &json!("https://aura.dev/x"), None).is_ok());
        assert!(validate(&url, &json!("javascript:alert(1)"), None).is_err());
        let select = field(json!({"name": "s", "type": "select", "values": ["a", "b"]}));
        assert_eq!(
            validate(&select, &json!("c"), None).unwrap_err().code,
            "not_allowed"
        );
    }

    #[test]
    fn ids_are_short_and_safe() {
        let id = new_id();
        assert_eq!(id.len(), 15);
        assert!(valid_id(&id));
        assert!(!valid_id("a'b"));
        assert!(!valid_id(""));
    }
}
