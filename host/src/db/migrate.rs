//! Schema changes: the difference between a collection's stored definition
//! and a new one, turned into table changes that run in one transaction
//! with the definition and a history entry. Changes that would lose data
//! (dropping a field that holds values, a conversion some values do not
//! survive) are refused unless forced.

use super::backend::{Query, Tx, column_type, ident, select_column, text_arg, to_arg};
use super::schema::{Collection, Field, FieldType, Index, ItemType, Storage};
use super::values::{self, number_value};
use super::{Database, DbError};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;

/// The name a column has while it is being rebuilt.
const REBUILT: &str = "aura_rebuilt_column";

/// What applying a definition did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The collection as it now stands.
    pub collection: Collection,
    /// The changes, in words.
    pub changes: Vec<String>,
    /// False for dry runs and for definitions that changed nothing.
    pub applied: bool,
}

/// One entry of a collection's migration history.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// Sequence number.
    pub id: i64,
    /// The collection.
    pub collection: String,
    /// Who applied it.
    pub actor: String,
    /// When (UTC).
    pub at: String,
    /// The changes, in words.
    pub changes: Vec<String>,
}

enum Step {
    CreateTable,
    Add(Field),
    Rename {
        from: String,
        to: String,
    },
    Drop(String),
    /// New storage: rebuild the column from converted values.
    Rebuild {
        field: Field,
        values: Vec<(String, Value)>,
    },
    /// Same storage, stricter options: clear the values that no longer fit.
    Clear {
        field: String,
        ids: Vec<String>,
    },
    DropIndex(String),
    CreateIndex(Index),
}

/// Plans and (unless `dry_run`) applies `new` in one transaction.
pub(super) async fn apply(
    db: &Database,
    new: Collection,
    force: bool,
    dry_run: bool,
    actor: &str,
) -> Result<Applied, DbError> {
    let mut tx = db.backend.begin_schema_change().await?;
    let old = stored_definition(&mut tx, db, &new.name).await?;
    let mut changes = Vec::new();
    let mut lossy = Vec::new();
    let mut steps = Vec::new();
    match &old {
        None => {
            changes.push(format!("create collection `{}`", new.name));
            steps.push(Step::CreateTable);
            for index in new.all_indexes() {
                changes.push(format!("add index on ({})", index.fields.join(", ")));
                steps.push(Step::CreateIndex(index));
            }
        }
        Some(old) => {
            plan_fields(db, &mut tx, old, &new, &mut steps, &mut changes, &mut lossy).await?;
            // Index drops go first and creations last, around column changes.
            let (drops, creates) = plan_indexes(old, &new, &steps, &mut changes);
            let mut ordered: Vec<Step> = drops.into_iter().map(Step::DropIndex).collect();
            ordered.append(&mut steps);
            ordered.extend(creates.into_iter().map(Step::CreateIndex));
            steps = ordered;
            for action in super::schema::Action::ALL {
                if old.rule(action) != new.rule(action) {
                    changes.push(format!("change {}", action.rule_name()));
                }
            }
        }
    }
    if !lossy.is_empty() && !force {
        return Err(DbError::Lossy(lossy));
    }
    let applied = !dry_run && !changes.is_empty();
    if applied {
        for step in &steps {
            run(db, &mut tx, &new, step).await?;
        }
        save(db, &mut tx, &new, old.is_none(), actor, &changes).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
    }
    Ok(Applied {
        collection: new,
        changes,
        applied,
    })
}

/// Drops a collection and its records.
pub(super) async fn drop_collection(
    db: &Database,
    name: &str,
    force: bool,
    actor: &str,
) -> Result<(), DbError> {
    let mut tx = db.backend.begin_schema_change().await?;
    if stored_definition(&mut tx, db, name).await?.is_none() {
        return Err(DbError::CollectionNotFound(name.to_owned()));
    }
    let mut count = db.backend.query();
    count.sql(&format!("SELECT COUNT(*) FROM {}", ident(name)));
    let records = tx.count(&count).await?;
    if records > 0 && !force {
        return Err(DbError::Lossy(vec![format!(
            "collection `{name}` holds {records} records"
        )]));
    }
    let mut drop = db.backend.query();
    drop.sql(&format!("DROP TABLE {}", ident(name)));
    tx.execute(&drop).await.map_err(anyhow::Error::from)?;
    let mut delete = db.backend.query();
    delete
        .sql("DELETE FROM _aura_collections WHERE name = ")
        .arg(text_arg(name), Storage::Text);
    tx.execute(&delete).await.map_err(anyhow::Error::from)?;
    record_history(
        db,
        &mut tx,
        name,
        actor,
        &[format!("drop collection `{name}` ({records} records)")],
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(())
}

/// A collection's migration history, oldest first.
pub(super) async fn history(db: &Database, name: &str) -> Result<Vec<Migration>, DbError> {
    let mut query = db.backend.query();
    query
        .sql("SELECT CAST(id AS TEXT), collection, actor, at, changes FROM _aura_migrations WHERE collection = ")
        .arg(text_arg(name), Storage::Text)
        .sql(" ORDER BY id");
    let rows = db
        .backend
        .fetch(
            &query,
            &[
                Storage::Text,
                Storage::Text,
                Storage::Text,
                Storage::Text,
                Storage::Json,
            ],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| Migration {
            id: row[0]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_default(),
            collection: row[1].as_str().unwrap_or_default().to_owned(),
            actor: row[2].as_str().unwrap_or_default().to_owned(),
            at: row[3].as_str().unwrap_or_default().to_owned(),
            changes: serde_json::from_value(row[4].clone()).unwrap_or_default(),
        })
        .collect())
}

async fn stored_definition(
    tx: &mut Tx,
    db: &Database,
    name: &str,
) -> Result<Option<Collection>, DbError> {
    let mut query = db.backend.query();
    query
        .sql("SELECT definition FROM _aura_collections WHERE name = ")
        .arg(text_arg(name), Storage::Text);
    let rows = tx.fetch(&query, &[Storage::Text]).await?;
    match rows.first().and_then(|row| row[0].as_str()) {
        None => Ok(None),
        Some(text) => {
            Ok(Some(serde_json::from_str(text).map_err(|e| {
                anyhow::anyhow!("stored definition of {name}: {e}")
            })?))
        }
    }
}

async fn plan_fields(
    db: &Database,
    tx: &mut Tx,
    old: &Collection,
    new: &Collection,
    steps: &mut Vec<Step>,
    changes: &mut Vec<String>,
    lossy: &mut Vec<String>,
) -> Result<(), DbError> {
    let table = ident(&new.name);
    let mut kept = HashSet::new();
    for field in &new.fields {
        let previous = match old.field(&field.name) {
            Some(same) => Some(same),
            None => match field
                .renamed_from
                .as_deref()
                .and_then(|from| old.field(from))
            {
                Some(from) if new.field(&from.name).is_none() => {
                    changes.push(format!("rename field `{}` to `{}`", from.name, field.name));
                    steps.push(Step::Rename {
                        from: from.name.clone(),
                        to: field.name.clone(),
                    });
                    Some(from)
                }
                _ => None,
            },
        };
        let Some(previous) = previous else {
            changes.push(format!("add field `{}` ({})", field.name, type_name(field)));
            steps.push(Step::Add(field.clone()));
            continue;
        };
        kept.insert(previous.name.clone());
        if !shape_changed(previous, field) {
            let renamed = |f: &Field| Field {
                name: String::new(),
                renamed_from: None,
                ..f.clone()
            };
            if renamed(previous) != renamed(field) {
                changes.push(format!("change the options of field `{}`", field.name));
            }
            continue;
        }
        // Read the current values and see which survive the new shape.
        let pattern = field
            .pattern
            .as_deref()
            .and_then(|p| regex::Regex::new(p).ok());
        let mut query = db.backend.query();
        let column = select_column(
            db.backend.dialect(),
            &ident(&previous.name),
            previous.storage(),
        );
        query.sql(&format!(
            "SELECT \"id\", {column} FROM {table} WHERE {} IS NOT NULL",
            ident(&previous.name)
        ));
        let rows = tx
            .fetch(&query, &[Storage::Text, previous.storage()])
            .await?;
        let total = rows.len();
        let mut converted = Vec::with_capacity(total);
        let mut failed: Vec<(String, String)> = Vec::new();
        for row in rows {
            let id = row[0].as_str().unwrap_or_default().to_owned();
            match values::validate(field, &convert(&row[1], field), pattern.as_ref()) {
                Ok(value) => converted.push((id, value)),
                Err(error) => failed.push((id, error.message)),
            }
        }
        if let Some((id, reason)) = failed.first() {
            lossy.push(format!(
                "field `{}`: {} of {total} values do not fit the new definition (record `{id}`: {reason})",
                field.name,
                failed.len()
            ));
        }
        if previous.storage() != field.storage() {
            changes.push(format!(
                "change field `{}` from {} to {}",
                field.name,
                type_name(previous),
                type_name(field)
            ));
            steps.push(Step::Rebuild {
                field: field.clone(),
                values: converted,
            });
        } else {
            changes.push(format!("change the options of field `{}`", field.name));
            if !failed.is_empty() {
                steps.push(Step::Clear {
                    field: field.name.clone(),
                    ids: failed.into_iter().map(|(id, _)| id).collect(),
                });
            }
        }
    }
    for field in &old.fields {
        if kept.contains(&field.name) {
            continue;
        }
        let mut query = db.backend.query();
        query.sql(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {} IS NOT NULL",
            ident(&field.name)
        ));
        let holding = tx.count(&query).await?;
        if holding > 0 {
            lossy.push(format!(
                "field `{}` holds values in {holding} records",
                field.name
            ));
            changes.push(format!("drop field `{}` ({holding} values)", field.name));
        } else {
            changes.push(format!("drop field `{}`", field.name));
        }
        steps.push(Step::Drop(field.name.clone()));
    }
    Ok(())
}

/// The indexes to drop and to create (recreating those over columns that
/// are rebuilt, renamed or dropped).
fn plan_indexes(
    old: &Collection,
    new: &Collection,
    steps: &[Step],
    changes: &mut Vec<String>,
) -> (Vec<String>, Vec<Index>) {
    let touched: HashSet<&str> = steps
        .iter()
        .filter_map(|step| match step {
            Step::Rebuild { field, .. } => Some(field.name.as_str()),
            Step::Rename { from, .. } => Some(from.as_str()),
            Step::Drop(name) => Some(name.as_str()),
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

/// Whether values must be re-checked: anything but name, required,
/// unique and default changed.
fn shape_changed(old: &Field, new: &Field) -> bool {
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

fn type_name(field: &Field) -> String {
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
/// is then validated, so a value that does not convert is reported.
fn convert(value: &Value, field: &Field) -> Value {
    use FieldType as T;
    let many = field.many();
    if field.kind == T::Json {
        return value.clone();
    }
    if many {
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

async fn run(
    db: &Database,
    tx: &mut Tx,
    collection: &Collection,
    step: &Step,
) -> Result<(), DbError> {
    let dialect = db.backend.dialect();
    let table = ident(&collection.name);
    let mut statements: Vec<Query> = Vec::new();
    let plain = |text: String| {
        let mut query = Query::new(dialect);
        query.sql(&text);
        query
    };
    match step {
        Step::CreateTable => {
            let mut columns = vec![
                "\"id\" TEXT PRIMARY KEY NOT NULL".to_owned(),
                "\"created\" TEXT NOT NULL".to_owned(),
                "\"updated\" TEXT NOT NULL".to_owned(),
            ];
            for field in &collection.fields {
                columns.push(format!(
                    "{} {}",
                    ident(&field.name),
                    column_type(dialect, field.storage())
                ));
            }
            statements.push(plain(format!(
                "CREATE TABLE {table} ({})",
                columns.join(", ")
            )));
            statements.push(plain(format!(
                "CREATE INDEX {} ON {table} (\"created\", \"id\")",
                // Not `ix_…`: that prefix belongs to declared indexes.
                ident(&format!("sys_{}__created", collection.name))
            )));
        }
        Step::Add(field) => {
            statements.push(plain(format!(
                "ALTER TABLE {table} ADD COLUMN {} {}",
                ident(&field.name),
                column_type(dialect, field.storage())
            )));
            if let Some(default) = &field.default {
                // Existing records get the default too.
                let mut fill = Query::new(dialect);
                fill.sql(&format!("UPDATE {table} SET {} = ", ident(&field.name)))
                    .arg(
                        to_arg(&normal_default(field, default), field.storage()),
                        field.storage(),
                    );
                statements.push(fill);
            }
        }
        Step::Rename { from, to } => statements.push(plain(format!(
            "ALTER TABLE {table} RENAME COLUMN {} TO {}",
            ident(from),
            ident(to)
        ))),
        Step::Drop(name) => statements.push(plain(format!(
            "ALTER TABLE {table} DROP COLUMN {}",
            ident(name)
        ))),
        Step::Rebuild { field, values } => {
            statements.push(plain(format!(
                "ALTER TABLE {table} ADD COLUMN {} {}",
                ident(REBUILT),
                column_type(dialect, field.storage())
            )));
            for (id, value) in values {
                let mut update = Query::new(dialect);
                update
                    .sql(&format!("UPDATE {table} SET {} = ", ident(REBUILT)))
                    .arg(to_arg(value, field.storage()), field.storage())
                    .sql(" WHERE \"id\" = ")
                    .arg(text_arg(id), Storage::Text);
                statements.push(update);
            }
            statements.push(plain(format!(
                "ALTER TABLE {table} DROP COLUMN {}",
                ident(&field.name)
            )));
            statements.push(plain(format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                ident(REBUILT),
                ident(&field.name)
            )));
        }
        Step::Clear { field, ids } => {
            for id in ids {
                let mut update = Query::new(dialect);
                update
                    .sql(&format!(
                        "UPDATE {table} SET {} = NULL WHERE \"id\" = ",
                        ident(field)
                    ))
                    .arg(text_arg(id), Storage::Text);
                statements.push(update);
            }
        }
        Step::DropIndex(name) => {
            statements.push(plain(format!("DROP INDEX IF EXISTS {}", ident(name))))
        }
        Step::CreateIndex(index) => {
            let columns: Vec<String> = index.fields.iter().map(|f| ident(f)).collect();
            statements.push(plain(format!(
                "CREATE {}INDEX {} ON {table} ({})",
                if index.unique { "UNIQUE " } else { "" },
                ident(&collection.index_name(index)),
                columns.join(", ")
            )));
        }
    }
    for statement in statements {
        if let Err(err) = tx.execute(&statement).await {
            if let (Step::CreateIndex(index), Some(_)) =
                (step, super::backend::unique_violation(&err))
            {
                return Err(DbError::InvalidSchema(
                    [(
                        "indexes".to_owned(),
                        format!(
                            "existing records share values of ({}); make them unique first",
                            index.fields.join(", ")
                        ),
                    )]
                    .into(),
                ));
            }
            return Err(anyhow::Error::from(err).into());
        }
    }
    Ok(())
}

fn normal_default(field: &Field, default: &Value) -> Value {
    values::validate(field, default, None).unwrap_or(Value::Null)
}

async fn save(
    db: &Database,
    tx: &mut Tx,
    collection: &Collection,
    created: bool,
    actor: &str,
    changes: &[String],
) -> Result<(), DbError> {
    let now = values::now();
    let definition = serde_json::to_string(collection).map_err(anyhow::Error::from)?;
    let mut query = db.backend.query();
    if created {
        query
            .sql("INSERT INTO _aura_collections (name, definition, created, updated) VALUES (")
            .arg(text_arg(&collection.name), Storage::Text)
            .sql(", ")
            .arg(text_arg(&definition), Storage::Text)
            .sql(", ")
            .arg(text_arg(&now), Storage::Text)
            .sql(", ")
            .arg(text_arg(&now), Storage::Text)
            .sql(")");
    } else {
        query
            .sql("UPDATE _aura_collections SET definition = ")
            .arg(text_arg(&definition), Storage::Text)
            .sql(", updated = ")
            .arg(text_arg(&now), Storage::Text)
            .sql(" WHERE name = ")
            .arg(text_arg(&collection.name), Storage::Text);
    }
    tx.execute(&query).await.map_err(anyhow::Error::from)?;
    record_history(db, tx, &collection.name, actor, changes).await
}

async fn record_history(
    db: &Database,
    tx: &mut Tx,
    name: &str,
    actor: &str,
    changes: &[String],
) -> Result<(), DbError> {
    tx.notify_schema_change(name)
        .await
        .map_err(anyhow::Error::from)?;
    let mut query = db.backend.query();
    query
        .sql("INSERT INTO _aura_migrations (collection, actor, at, changes) VALUES (")
        .arg(text_arg(name), Storage::Text)
        .sql(", ")
        .arg(text_arg(actor), Storage::Text)
        .sql(", ")
        .arg(text_arg(&values::now()), Storage::Text)
        .sql(", ")
        .arg(
            text_arg(&serde_json::to_string(changes).map_err(anyhow::Error::from)?),
            Storage::Text,
        )
        .sql(")");
    tx.execute(&query).await.map_err(anyhow::Error::from)?;
    Ok(())
}
