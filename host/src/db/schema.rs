//! Collection definitions: fields, indexes and access rules, and the checks
//! a definition must pass before any table is touched.

use super::filter::Kind;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};

/// Fields every record has; user fields may not use these names.
pub const SYSTEM_FIELDS: [&str; 3] = ["id", "created", "updated"];
/// Most fields in one collection.
pub const MAX_FIELDS: usize = 200;

/// A collection as users define it (JSON or TOML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Collection {
    /// Name: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// User fields, in order.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Secondary indexes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    /// Who may list records (absent: admins only; `""`: everyone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_rule: Option<String>,
    /// Who may view one record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_rule: Option<String>,
    /// Who may create records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_rule: Option<String>,
    /// Who may update records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_rule: Option<String>,
    /// Who may delete records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_rule: Option<String>,
}

/// One typed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Field {
    /// Name: lowercase letters, digits and `_`, starting with a letter.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// A value must be present (not null, not `""`, not `[]`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    /// No two records share a value (absent values do not count).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    /// Value given to new records that do not set the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Least value (numbers), length (text) or item count (arrays, multiple).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Greatest value, length or item count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A regular expression text values must match (text fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The allowed values (select fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Holds several values (select and relation fields).
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiple: bool,
    /// The related collection (relation fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// The type of the items (array fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemType>,
    /// The bucket its objects live in (file fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Migration hint: this field was called so before (a rename).
    #[serde(default, skip_serializing)]
    pub renamed_from: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Text.
    Text,
    /// A finite number.
    Number,
    /// `true` or `false`.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, stored in UTC as `YYYY-MM-DDTHH:MM:SS.sssZ`.
    Datetime,
    /// An email address.
    Email,
    /// An absolute http(s) URL.
    Url,
    /// One (or, with `multiple`, several) of `values`.
    Select,
    /// Any JSON value.
    Json,
    /// A JSON array of scalars of type `items`.
    Array,
    /// The id of a record (or, with `multiple`, ids) of `collection`.
    Relation,
    /// The key of an object (or, with `multiple`, keys) in `bucket`.
    File,
}

/// Item types of array fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemType {
    /// Text items.
    Text,
    /// Number items.
    Number,
    /// Boolean items.
    Bool,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// The indexed fields, in order.
    pub fields: Vec<String>,
    /// Whether the combination must be unique.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
}

/// The actions rules govern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List and filter records.
    List,
    /// Read one record.
    View,
    /// Create a record.
    Create,
    /// Change a record.
    Update,
    /// Delete a record.
    Delete,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::List,
        Action::View,
        Action::Create,
        Action::Update,
        Action::Delete,
    ];

    /// The name of the rule property.
    pub fn rule_name(self) -> &'static str {
        match self {
            Action::List => "listRule",
            Action::View => "viewRule",
            Action::Create => "createRule",
            Action::Update => "updateRule",
            Action::Delete => "deleteRule",
        }
    }
}

/// How a field is stored and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// A text column.
    Text,
    /// A double-precision column.
    Number,
    /// A boolean column (an integer in SQLite).
    Bool,
    /// A JSON column (TEXT in SQLite, JSONB in PostgreSQL).
    Json,
}

impl Field {
    /// Whether the field holds several values (arrays, multiple selects and
    /// relations).
    pub fn many(&self) -> bool {
        self.kind == FieldType::Array
            || (self.multiple
                && matches!(
                    self.kind,
                    FieldType::Select | FieldType::Relation | FieldType::File
                ))
    }

    /// How the field is stored.
    pub fn storage(&self) -> Storage {
        match self.kind {
            FieldType::Number => Storage::Number,
            FieldType::Bool => Storage::Bool,
            FieldType::Json | FieldType::Array => Storage::Json,
            FieldType::Select | FieldType::Relation | FieldType::File if self.multiple => {
                Storage::Json
            }
            _ => Storage::Text,
        }
    }

    /// The kind of the field's values for filters, and whether it holds
    /// several (`None` for JSON fields, which filters cannot compare).
    pub fn filter_kind(&self) -> Option<(Kind, bool)> {
        Some(match self.kind {
            FieldType::Number => (Kind::Number, false),
            FieldType::Bool => (Kind::Bool, false),
            FieldType::Json => return None,
            FieldType::Array => (
                match self.items.unwrap_or(ItemType::Text) {
                    ItemType::Text => Kind::Text,
                    ItemType::Number => Kind::Number,
                    ItemType::Bool => Kind::Bool,
                },
                true,
            ),
            _ => (Kind::Text, self.multiple),
        })
    }

    /// Whether records can be sorted by this field.
    pub fn sortable(&self) -> bool {
        self.storage() != Storage::Json
    }
}

impl Collection {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The rule of `action`.
    pub fn rule(&self, action: Action) -> Option<&str> {
        match action {
            Action::List => self.list_rule.as_deref(),
            Action::View => self.view_rule.as_deref(),
            Action::Create => self.create_rule.as_deref(),
            Action::Update => self.update_rule.as_deref(),
            Action::Delete => self.delete_rule.as_deref(),
        }
    }

    /// The name of the index over `fields`: readable when short, hashed
    /// when it would pass PostgreSQL's 63-byte identifier limit.
    pub fn index_name(&self, index: &Index) -> String {
        use sha2::Digest as _;
        let kind = if index.unique { "ux" } else { "ix" };
        let name = format!("{kind}_{}__{}", self.name, index.fields.join("__"));
        if name.len() <= 60 {
            return name;
        }
        let digest = sha2::Sha256::digest(index.fields.join(",").as_bytes());
        format!("{kind}_{}_{}", self.name, &hex::encode(digest)[..8])
    }

    /// Every index: declared ones plus one per unique field.
    pub fn all_indexes(&self) -> Vec<Index> {
        let mut all: Vec<Index> = self
            .fields
            .iter()
            .filter(|f| f.unique)
            .map(|f| Index {
                fields: vec![f.name.clone()],
                unique: true,
            })
            .collect();
        for index in &self.indexes {
            if !all.contains(index) {
                all.push(index.clone());
            }
        }
        all
    }
}

/// Whether `name` is a valid collection or field name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 48
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Compiled parts of a definition that validation needs per record.
#[derive(Debug, Default)]
pub struct Compiled {
    /// Field patterns.
    pub patterns: BTreeMap<String, Regex>,
}

/// Checks a definition on its own (not against other collections), and
/// compiles its patterns. Every problem is reported, keyed by property.
pub fn check(collection: &Collection) -> Result<Compiled, BTreeMap<String, String>> {
    let mut problems = BTreeMap::new();
    let mut compiled = Compiled::default();
    if !valid_name(&collection.name) {
        problems.insert(
            "name".to_owned(),
            "use 1-48 lowercase letters, digits or `_`, starting with a letter".to_owned(),
        );
    } else if ["sqlite_", "pg_"]
        .iter()
        .any(|p| collection.name.starts_with(p))
    {
        problems.insert(
            "name".to_owned(),
            "names starting with `sqlite_` or `pg_` are reserved by the databases".to_owned(),
        );
    }
    if collection.fields.len() > MAX_FIELDS {
        problems.insert(
            "fields".to_owned(),
            format!("at most {MAX_FIELDS} fields are allowed"),
        );
    }
    let mut seen = HashSet::new();
    let mut renamed = HashSet::new();
    for field in &collection.fields {
        let key = format!("fields.{}", field.name);
        let mut problem = |message: String| {
            problems.entry(key.clone()).or_insert(message);
        };
        if let Some(from) = &field.renamed_from
            && !renamed.insert(from.as_str())
        {
            problem(format!("another field is renamed from `{from}` already"));
        }
        if !valid_name(&field.name) {
            problem("use 1-48 lowercase letters, digits or `_`, starting with a letter".into());
        } else if SYSTEM_FIELDS.contains(&field.name.as_str()) {
            problem(format!(
                "`{}` is a system field of every record",
                field.name
            ));
        } else if !seen.insert(field.name.as_str()) {
            problem("the name is used twice".into());
        }
        if let Err(message) = check_options(field) {
            problem(message);
        }
        if let Some(pattern) = &field.pattern {
            match Regex::new(pattern) {
                Ok(regex) => {
                    compiled.patterns.insert(field.name.clone(), regex);
                }
                Err(_) => problem("the pattern is not a valid regular expression".into()),
            }
        }
        if let Some(default) = &field.default {
            let value = super::values::validate(field, default, compiled.patterns.get(&field.name));
            if let Err(error) = value {
                problem(format!("the default value is invalid: {}", error.message));
            }
        }
    }
    for (i, index) in collection.indexes.iter().enumerate() {
        let key = format!("indexes.{i}");
        if index.fields.is_empty() || index.fields.len() > 8 {
            problems.insert(key, "an index covers 1 to 8 fields".into());
            continue;
        }
        for name in &index.fields {
            if SYSTEM_FIELDS.contains(&name.as_str()) {
                continue;
            }
            match collection.field(name) {
                None => {
                    problems.insert(key.clone(), format!("unknown field `{name}`"));
                }
                Some(field) if !field.sortable() => {
                    problems.insert(
                        key.clone(),
                        format!("`{name}` holds JSON and cannot be indexed"),
                    );
                }
                Some(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(compiled)
    } else {
        Err(problems)
    }
}

/// Options must fit the type.
fn check_options(field: &Field) -> Result<(), String> {
    use FieldType as T;
    let kind = field.kind;
    if field.pattern.is_some() && kind != T::Text {
        return Err("`pattern` applies to text fields only".into());
    }
    if !field.values.is_empty() && kind != T::Select {
        return Err("`values` applies to select fields only".into());
    }
    if kind == T::Select && field.values.is_empty() {
        return Err("a select field needs `values`".into());
    }
    if field.multiple && !matches!(kind, T::Select | T::Relation | T::File) {
        return Err("`multiple` applies to select, relation and file fields only".into());
    }
    if field.bucket.is_some() != (kind == T::File) {
        return Err(if kind == T::File {
            "a file field needs `bucket`".into()
        } else {
            "`bucket` applies to file fields only".into()
        });
    }
    if let Some(problem) = field
        .bucket
        .as_deref()
        .and_then(crate::storage::names::bucket_problem)
    {
        return Err(problem);
    }
    if field.collection.is_some() != (kind == T::Relation) {
        return Err(if kind == T::Relation {
            "a relation field needs `collection`".into()
        } else {
            "`collection` applies to relation fields only".into()
        });
    }
    if field.items.is_some() && kind != T::Array {
        return Err("`items` applies to array fields only".into());
    }
    if (field.min.is_some() || field.max.is_some())
        && matches!(kind, T::Bool | T::Json | T::Date | T::Datetime)
    {
        return Err("`min` and `max` do not apply to this type".into());
    }
    if let (Some(min), Some(max)) = (field.min, field.max)
        && min > max
    {
        return Err("`min` is greater than `max`".into());
    }
    if field.unique && field.storage() == Storage::Json {
        return Err("fields holding JSON cannot be unique".into());
    }
    Ok(())
}

/// The system collection of accounts (managed by the auth service).
pub const USERS: &str = "users";
/// The actor the history names for changes Aura makes itself.
pub const SYSTEM_ACTOR: &str = "system";

/// The `users` collection as Aura creates it: fields the auth service
/// relies on, and rules that let each user read their own record. Apps may
/// add fields and change rules; the system fields stay.
pub fn users_collection() -> Collection {
    serde_json::from_value(serde_json::json!({
        "name": USERS,
        "fields": [
            {"name": "email", "type": "email", "required": true, "unique": true},
            {"name": "name", "type": "text", "max": 200},
            {"name": "roles", "type": "array", "items": "text"},
            {"name": "verified", "type": "bool", "default": false}
        ],
        "listRule": "id = @request.auth.id",
        "viewRule": "id = @request.auth.id"
    }))
    .expect("a valid definition")
}

/// A changed `users` definition must keep the system fields as they are.
pub fn check_users(collection: &Collection) -> Result<(), BTreeMap<String, String>> {
    let mut problems = BTreeMap::new();
    for field in users_collection().fields {
        let kept = collection.field(&field.name).is_some_and(|f| {
            Field {
                renamed_from: None,
                ..f.clone()
            } == field
        });
        if !kept {
            problems.insert(
                format!("fields.{}", field.name),
                "a system field of `users`: the auth service relies on it as it is".to_owned(),
            );
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
