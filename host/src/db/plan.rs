//! Planning a schema change from two definitions alone: which column each
//! new field continues, which indexes must be dropped and created around
//! the column changes, and how a stored value is carried into a new type.
//! `migrate` reads the values these plans need and runs them; the fuzz
//! target `migration` checks the plans on their own.

use super::schema::{Collection, Field, FieldType, Index, ItemType};
use super::values::number_value;
use serde_json::Value;
use std::collections::HashSet;

/// What becomes of one column.
#[derive(Debug, Clone, Copy)]
pub enum FieldChange<'a> {
    /// A new field: a new column.
    Add(&'a Field),
    /// A field that continues `previous`'s column (renamed when the names
    /// differ).
    Keep {
        /// The old field.
        previous: &'a Field,
        /// The new field.
        field: &'a Field,
    },
    /// A column no new field continues.
    Drop(&'a Field),
}

impl FieldChange<'_> {
    /// Whether the column's values must be rewritten in a new storage
    /// class (the column is rebuilt).
    pub fn rebuilds(&self) -> bool {
        matches!(self, FieldChange::Keep { previous, field }
            if shape_changed(previous, field) && previous.storage() != field.storage())
    }
}

/// The new definition's fields in order, then the old fields nothing
/// continues. A field continues the old field of its name, or else the one
/// it is `renamed_from` when no new field keeps that name; `schema::check`
/// refuses two fields renamed from one, so every old column is continued
/// at most once.
pub fn fields<'a>(old: &'a Collection, new: &'a Collection) -> Vec<FieldChange<'a>> {
    let mut changes = Vec::with_capacity(new.fields.len());
    let mut kept = HashSet::new();
    for field in &new.fields {
        let previous = old.field(&field.name).or_else(|| {
            field
                .renamed_from
                .as_deref()
                .filter(|from| new.field(from).is_none())
                .and_then(|from| old.field(from))
        });
        changes.push(match previous {
            Some(previous) => {
                kept.insert(previous.name.as_str());
                FieldChange::Keep { previous, field }
            }
            None => FieldChange::Add(field),
        });
    }
    for field in &old.fields {
        if !kept.contains(field.name.as_str()) {
            changes.push(FieldChange::Drop(field));
        }
    }
    changes
}

/// The indexes to drop (by name) and to create: those that changed, and
/// those over columns that are rebuilt, renamed or dropped.
pub fn indexes(
    old: &Collection,
    new: &Collection,
    fields: &[FieldChange<'_>],
    changes: &mut Vec<String>,
) -> (Vec<String>, Vec<Index>) {
    let touched: HashSet<&str> = fields
        .iter()
        .filter_map(|change| match change {
            FieldChange::Keep { previous, field }
                if previous.name != field.name || change.rebuilds() =>
            {
                Some(previous.name.as_str())
            }
            FieldChange::Drop(field) => Some(field.name.as_str()),
            _ => None,
        })
        .collect();
    let old_indexes = old.all_indexes();
    let new_indexes = new.all_indexes();
    let mut drops = Vec::new();
    let mut creates = Vec::new();
    for index in &old_indexes {
        let kept = new_indexes.contains(index);
        if !kept {
            changes.push(format!("drop index on ({})", index.fields.join(", ")));
        }
        if !kept || index.fields.iter().any(|f| touched.contains(f.as_str())) {
            drops.push(old.index_name(index));
        }
    }
    for index in &new_indexes {
        let existed = old_indexes.contains(index);
        if !existed {
            changes.push(format!("add index on ({})", index.fields.join(", ")));
        }
        if !existed || drops.contains(&old.index_name(index)) {
            creates.push(index.clone());
        }
    }
    (drops, creates)
}

/// A name for the column a field is rebuilt in, used by no field of
/// either definition.
pub fn rebuilt_column(old: &Collection, new: &Collection) -> String {
    let taken = |name: &str| old.field(name).is_some() || new.field(name).is_some();
    let mut name = "aura_rebuilt_column".to_owned();
    let mut n = 1;
    while taken(&name) {
        n += 1;
        name = format!("aura_rebuilt_column_{n}");
    }
    name
}

/// Whether values must be re-checked: anything but name, required,
/// unique and default changed.
pub fn shape_changed(old: &Field, new: &Field) -> bool {
    let strip = |f: &Field| Field {
        name: String::new(),
        required: false,
        unique: false,
        default: None,
        renamed_from: None,
        ..f.clone()
    };
    strip(old) != strip(new)
}

/// Whether anything but the name differs.
pub fn options_changed(old: &Field, new: &Field) -> bool {
    let unnamed = |f: &Field| Field {
        name: String::new(),
        renamed_from: None,
        ..f.clone()
    };
    unnamed(old) != unnamed(new)
}

/// The field's type in words, for the list of changes.
pub fn type_name(field: &Field) -> String {
    let base = serde_json::to_value(field.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match field.kind {
        FieldType::Relation if field.multiple => format!(
            "relation to many `{}`",
            field.collection.as_deref().unwrap_or("")
        ),
        FieldType::Relation => format!(
            "relation to `{}`",
            field.collection.as_deref().unwrap_or("")
        ),
        FieldType::Select if field.multiple => "multiple select".into(),
        FieldType::Array => format!(
            "array of {}",
            match field.items.unwrap_or(ItemType::Text) {
                ItemType::Text => "text",
                ItemType::Number => "number",
                ItemType::Bool => "bool",
            }
        ),
        _ => base,
    }
}

/// Best-effort conversion of a stored value to `field`'s type; the result
/// is then validated, so a value that does not convert is reported. A
/// value that already fits `field` comes back as it is.
pub fn convert(value: &Value, field: &Field) -> Value {
    use FieldType as T;
    if field.kind == T::Json || value.is_null() {
        return value.clone();
    }
    if field.many() {
        let items = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        let item_kind = match (field.kind, field.items) {
            (T::Array, Some(ItemType::Number)) => T::Number,
            (T::Array, Some(ItemType::Bool)) => T::Bool,
            _ => T::Text,
        };
        return Value::Array(items.iter().map(|item| scalar(item, item_kind)).collect());
    }
    let single = match value {
        Value::Array(items) if items.len() == 1 => &items[0],
        Value::Array(items) if items.is_empty() => &Value::Null,
        other => other,
    };
    scalar(single, field.kind)
}

fn scalar(value: &Value, kind: FieldType) -> Value {
    use FieldType as T;
    match (kind, value) {
        (T::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map_or_else(|| value.clone(), number_value),
        (T::Number, Value::Bool(b)) => Value::from(u8::from(*b)),
        (T::Bool, Value::String(text)) => match text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => value.clone(),
        },
        (T::Bool, Value::Number(n)) if n.as_f64() == Some(0.0) => Value::Bool(false),
        (T::Bool, Value::Number(n)) if n.as_f64() == Some(1.0) => Value::Bool(true),
        (T::Number | T::Bool, _) => value.clone(),
        (_, Value::String(_)) => value.clone(),
        (_, Value::Number(_) | Value::Bool(_)) => Value::String(value.to_string()),
        (T::Text, Value::Object(_) | Value::Array(_)) => Value::String(value.to_string()),
        _ => value.clone(),
    }
}
