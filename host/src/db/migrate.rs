//! Schema changes: the difference between a collection's stored definition
//! and a new one, turned into table changes that run in one transaction
//! with the definition and a history entry. Changes that would lose data
//! (dropping a field that holds values, a conversion some values do not
//! survive) are refused unless forced.

use super::backend::{Query, Tx, column_type, ident, select_column, text_arg, to_arg};
use super::plan::{
    self, FieldChange, convert, options_changed, rebuilt_column, shape_changed, type_name,
};
use super::schema::{Collection, Field, Index, Storage};
use super::values;
use super::{Database, DbError};
use serde::Serialize;
use serde_json::Value;

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
    /// New storage: rebuild the column from converted values, in a
    /// column of a free name that then takes the field's.
    Rebuild {
        field: Field,
        column: String,
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

/// What a change will do: its steps in order, the changes in words, and
/// what it would lose.
#[derive(Default)]
struct Plan {
    steps: Vec<Step>,
    changes: Vec<String>,
    lossy: Vec<String>,
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
    let mut plan = Plan::default();
    match &old {
        None => {
            plan.changes
                .push(format!("create collection `{}`", new.name));
            plan.steps.push(Step::CreateTable);
            for index in new.all_indexes() {
                plan.changes
                    .push(format!("add index on ({})", index.fields.join(", ")));
                plan.steps.push(Step::CreateIndex(index));
            }
        }
        Some(old) => {
            let fields = plan::fields(old, &new);
            // Index drops go first and creations last, around column changes.
            let mut index_changes = Vec::new();
            let (drops, creates) = plan::indexes(old, &new, &fields, &mut index_changes);
            plan.steps.extend(drops.into_iter().map(Step::DropIndex));
            plan_fields(db, &mut tx, old, &new, &fields, &mut plan).await?;
            plan.changes.append(&mut index_changes);
            plan.steps
                .extend(creates.into_iter().map(Step::CreateIndex));
            for action in super::schema::Action::ALL {
                if old.rule(action) != new.rule(action) {
                    plan.changes.push(format!("change {}", action.rule_name()));
                }
            }
        }
    }
    if !plan.lossy.is_empty() && !force {
        return Err(DbError::Lossy(plan.lossy));
    }
    let applied = !dry_run && !plan.changes.is_empty();
    if applied {
        for step in &plan.steps {
            run(db, &mut tx, &new, step).await?;
        }
        save(db, &mut tx, &new, old.is_none(), actor, &plan.changes).await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
    }
    Ok(Applied {
        collection: new,
        changes: plan.changes,
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
    fields: &[FieldChange<'_>],
    plan: &mut Plan,
) -> Result<(), DbError> {
    let table = ident(&new.name);
    for change in fields {
        let (previous, field) = match *change {
            FieldChange::Add(field) => {
                plan.changes
                    .push(format!("add field `{}` ({})", field.name, type_name(field)));
                plan.steps.push(Step::Add(field.clone()));
                continue;
            }
            FieldChange::Drop(field) => {
                let mut query = db.backend.query();
                query.sql(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE {} IS NOT NULL",
                    ident(&field.name)
                ));
                let holding = tx.count(&query).await?;
                if holding > 0 {
                    plan.lossy.push(format!(
                        "field `{}` holds values in {holding} records",
                        field.name
                    ));
                    plan.changes
                        .push(format!("drop field `{}` ({holding} values)", field.name));
                } else {
                    plan.changes.push(format!("drop field `{}`", field.name));
                }
                plan.steps.push(Step::Drop(field.name.clone()));
                continue;
            }
            FieldChange::Keep { previous, field } => (previous, field),
        };
        if previous.name != field.name {
            plan.changes.push(format!(
                "rename field `{}` to `{}`",
                previous.name, field.name
            ));
            plan.steps.push(Step::Rename {
                from: previous.name.clone(),
                to: field.name.clone(),
            });
        }
        if !shape_changed(previous, field) {
            if options_changed(previous, field) {
                plan.changes
                    .push(format!("change the options of field `{}`", field.name));
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
            plan.lossy.push(format!(
                "field `{}`: {} of {total} values do not fit the new definition (record `{id}`: {reason})",
                field.name,
                failed.len()
            ));
        }
        if change.rebuilds() {
            plan.changes.push(format!(
                "change field `{}` from {} to {}",
                field.name,
                type_name(previous),
                type_name(field)
            ));
            plan.steps.push(Step::Rebuild {
                field: field.clone(),
                column: rebuilt_column(old, new),
                values: converted,
            });
        } else {
            plan.changes
                .push(format!("change the options of field `{}`", field.name));
            if !failed.is_empty() {
                plan.steps.push(Step::Clear {
                    field: field.name.clone(),
                    ids: failed.into_iter().map(|(id, _)| id).collect(),
                });
            }
        }
    }
    Ok(())
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
        Step::Rebuild {
            field,
            column,
            values,
        } => {
            statements.push(plain(format!(
                "ALTER TABLE {table} ADD COLUMN {} {}",
                ident(column),
                column_type(dialect, field.storage())
            )));
            for (id, value) in values {
                let mut update = Query::new(dialect);
                update
                    .sql(&format!("UPDATE {table} SET {} = ", ident(column)))
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
                ident(column),
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
