//! Records: create, read, list, update and delete under the collection's
//! rules, with filters, sorting, page and cursor paging, relation
//! expansion and field projection.

use super::backend::{Arg, Query, Tx, ident, select_column, text_arg, to_arg, unique_violation};
use super::filter::{self, Expr, FilterError};
use super::resolve::{Caller, MAX_FILTER_HOPS, PathResolver, RequestData};
use super::schema::{Action, Collection, Field, FieldType, SYSTEM_FIELDS, Storage};
use super::values::{self, FieldError};
use super::{Catalog, Database, DbError, Entry, Rule};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 30;
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 500;
/// Most sort keys.
const MAX_SORT_KEYS: usize = 8;
/// Most expanded paths per request.
const MAX_EXPANDS: usize = 16;
/// Most operations in one batch.
const MAX_BATCH: usize = 1000;
/// Ids per `IN (…)` lookup.
const LOOKUP_CHUNK: usize = 500;

/// What a list request asks for (the query string of the REST route).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// A filter expression.
    pub filter: Option<String>,
    /// Sort keys: `-created,title`.
    pub sort: Option<String>,
    /// Page number, from 1.
    pub page: Option<String>,
    /// Records per page.
    pub per_page: Option<String>,
    /// Cursor mode: empty for the first page, then the `nextCursor` given.
    pub cursor: Option<String>,
    /// Skip counting the total (page mode).
    pub skip_total: Option<String>,
    /// Relations to expand: `author.team,tags`.
    pub expand: Option<String>,
    /// Fields to return: `id,title,expand.author.name`.
    pub fields: Option<String>,
}

/// What a single-record request asks for.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReadQuery {
    /// Relations to expand.
    pub expand: Option<String>,
    /// Fields to return.
    pub fields: Option<String>,
}

/// What happened to a record, as change events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Create,
    Update,
    Delete,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Change::Create => "create",
            Change::Update => "update",
            Change::Delete => "delete",
        }
    }
}

/// One operation of a [`Database::batch`]; as JSON
/// `{"action": "create", "collection", "data"}`, `{"action": "update",
/// "collection", "id", "data"}` or `{"action": "delete", "collection", "id"}`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchOp {
    /// Create a record from a JSON object.
    Create {
        /// The collection.
        collection: String,
        /// The record.
        data: Value,
    },
    /// Change a record.
    Update {
        /// The collection.
        collection: String,
        /// The record's id.
        id: String,
        /// The fields to change.
        data: Value,
    },
    /// Delete a record.
    Delete {
        /// The collection.
        collection: String,
        /// The record's id.
        id: String,
    },
}

impl BatchOp {
    /// The collection it acts on.
    pub fn collection(&self) -> &str {
        match self {
            BatchOp::Create { collection, .. }
            | BatchOp::Update { collection, .. }
            | BatchOp::Delete { collection, .. } => collection,
        }
    }
}

/// A page of records.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// The page number (page mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    /// The page size.
    pub per_page: u32,
    /// Matching records (page mode, unless skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_items: Option<u64>,
    /// Pages (page mode, unless skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
    /// The records.
    pub items: Vec<Value>,
    /// Where the next page starts (cursor mode; `null` at the end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Value>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> DbError {
    DbError::Query {
        param,
        position: None,
        message: message.into(),
    }
}

fn filter_error(param: &'static str, error: FilterError) -> DbError {
    DbError::Query {
        param,
        position: Some(error.position),
        message: error.to_string(),
    }
}

/// One sort key: column SQL, storage, direction, and the record key.
struct SortKey {
    column: String,
    storage: Storage,
    desc: bool,
    name: String,
}

/// A tree of paths (`expand`, `fields`).
#[derive(Debug, Default)]
struct PathTree(BTreeMap<String, PathTree>);

impl PathTree {
    fn parse(param: &'static str, text: &str, limit: usize) -> Result<Self, DbError> {
        let mut tree = PathTree::default();
        let paths: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if paths.len() > limit {
            return Err(invalid(param, format!("at most {limit} paths")));
        }
        for path in paths {
            let segments: Vec<&str> = path.split('.').collect();
            if segments.len() > super::resolve::MAX_PATH_DEPTH
                || segments.iter().any(|s| s.is_empty())
            {
                return Err(invalid(param, format!("`{path}` is not a valid path")));
            }
            let mut node = &mut tree;
            for segment in segments {
                node = node.0.entry(segment.to_owned()).or_default();
            }
        }
        Ok(tree)
    }
}

impl Database {
    fn entry(&self, name: &str) -> Result<(Arc<Catalog>, Arc<Entry>), DbError> {
        let catalog = self.catalog();
        let entry = catalog
            .get(name)
            .cloned()
            .ok_or_else(|| DbError::CollectionNotFound(name.to_owned()))?;
        Ok((catalog, entry))
    }

    /// Runs a read; cut off at the query timeout when `bounded`.
    async fn read(
        &self,
        query: &Query,
        storages: &[Storage],
        bounded: bool,
    ) -> Result<Vec<Vec<Value>>, DbError> {
        if !bounded {
            return Ok(self.backend.fetch(query, storages).await?);
        }
        self.backend
            .fetch_bounded(query, storages, self.query_timeout)
            .await
            .map_err(|err| self.read_error(err))
    }

    /// Runs a count; cut off at the query timeout when `bounded`.
    async fn read_count(&self, query: &Query, bounded: bool) -> Result<i64, DbError> {
        if !bounded {
            return Ok(self.backend.count(query).await?);
        }
        self.backend
            .count_bounded(query, self.query_timeout)
            .await
            .map_err(|err| self.read_error(err))
    }

    fn read_error(&self, err: anyhow::Error) -> DbError {
        if super::backend::timed_out(&err) {
            DbError::Timeout(self.query_timeout)
        } else {
            DbError::Internal(err)
        }
    }

    /// For an anonymous caller, one of the readers anonymous callers share,
    /// held while it reads (503 `database_busy` if none comes free within
    /// the query timeout).
    async fn reader_share(
        &self,
        caller: &Caller,
    ) -> Result<Option<tokio::sync::SemaphorePermit<'_>>, DbError> {
        if !matches!(caller, Caller::User(None)) {
            return Ok(None);
        }
        match tokio::time::timeout(self.query_timeout, self.anonymous_readers.acquire()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(DbError::Busy),
        }
    }

    /// Lists records the caller may see.
    pub async fn list(
        &self,
        caller: &Caller,
        collection: &str,
        query: &ListQuery,
    ) -> Result<Page, DbError> {
        let (catalog, entry) = self.entry(collection)?;
        let rule = self.rule_for(&entry, Action::List, caller)?;
        let definition = &entry.definition;
        let request = request_data(caller, Map::new());
        let dialect = self.backend.dialect();
        let resolver = PathResolver::new(&catalog, definition, "r0", dialect, &request);
        let written = filter_resolver(&catalog, definition, dialect, &request, caller);
        let resolvers = (&written, &resolver);
        let filter = match query.filter.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => Some(caller_filter(text, caller)?),
            _ => None,
        };
        let mut keys = sort_keys(definition, query.sort.as_deref())?;
        if !keys.iter().any(|k| k.name == "id") {
            keys.push(SortKey {
                column: "r0.\"id\"".into(),
                storage: Storage::Text,
                desc: false,
                name: "id".into(),
            });
        }
        let per_page = match query.per_page.as_deref() {
            None | Some("") => DEFAULT_PER_PAGE,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| {
                    invalid("perPage", format!("perPage must be 1 to {MAX_PER_PAGE}"))
                })?,
        };
        let expand = match query.expand.as_deref() {
            Some(text) => Some(PathTree::parse("expand", text, MAX_EXPANDS)?),
            None => None,
        };
        let fields = match query.fields.as_deref() {
            Some(text) => Some(PathTree::parse("fields", text, 100)?),
            None => None,
        };
        let (select, storages) = select_list(definition, dialect);
        let mut sql = self.backend.query();
        sql.sql(&format!(
            "SELECT {select} FROM {} r0",
            ident(&definition.name)
        ));
        where_clause(&mut sql, filter.as_ref(), rule, resolvers)?;
        // What the caller shapes is cut off at the query timeout; anonymous
        // callers read on their share of the connections.
        let bounded = !matches!(caller, Caller::Service)
            && (filter.is_some() || query.sort.as_deref().is_some_and(|s| !s.trim().is_empty()));
        let _share = self.reader_share(caller).await?;

        let mut page = Page {
            page: None,
            per_page,
            total_items: None,
            total_pages: None,
            items: Vec::new(),
            next_cursor: None,
        };
        let rows = if let Some(cursor) = &query.cursor {
            if !cursor.is_empty() {
                let values = decode_cursor(cursor, keys.len())?;
                sql.sql(" AND (");
                cursor_condition(&mut sql, &keys, &values);
                sql.sql(")");
            }
            order_by(&mut sql, &keys);
            sql.sql(" LIMIT ").int(i64::from(per_page) + 1);
            let mut rows = self.read(&sql, &storages, bounded).await?;
            let more = rows.len() > per_page as usize;
            rows.truncate(per_page as usize);
            page.next_cursor = Some(Value::Null);
            if more && let Some(last) = rows.last() {
                let record = to_record(definition, last.clone());
                page.next_cursor = Some(Value::String(encode_cursor(&keys, &record)));
            }
            rows
        } else {
            let number = match query.page.as_deref() {
                None | Some("") => 1,
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1_000_000_000).contains(n))
                    .ok_or_else(|| invalid("page", "page must be a number from 1"))?,
            };
            let skip_total = matches!(query.skip_total.as_deref(), Some("1" | "true"));
            let count = if skip_total {
                None
            } else {
                let mut count = self.backend.query();
                count.sql(&format!(
                    "SELECT COUNT(*) FROM {} r0",
                    ident(&definition.name)
                ));
                where_clause(&mut count, filter.as_ref(), rule, resolvers)?;
                Some(count)
            };
            page.page = Some(number);
            order_by(&mut sql, &keys);
            sql.sql(" LIMIT ")
                .int(i64::from(per_page))
                .sql(" OFFSET ")
                .int(((number - 1) * u64::from(per_page)) as i64);
            // The count and the page run at once, on two connections.
            let total = async {
                match &count {
                    Some(count) => self.read_count(count, bounded).await.map(Some),
                    None => Ok(None),
                }
            };
            let (total, rows) = futures::try_join!(total, self.read(&sql, &storages, bounded))?;
            if let Some(total) = total {
                let total = total as u64;
                page.total_items = Some(total);
                page.total_pages = Some(total.div_ceil(u64::from(per_page)));
            }
            rows
        };
        let mut records: Vec<Map<String, Value>> = rows
            .into_iter()
            .map(|row| to_record(definition, row))
            .collect();
        if let Some(tree) = &expand {
            self.expand(&catalog, definition, &mut records, tree, caller)
                .await?;
        }
        page.items = records
            .into_iter()
            .map(|r| project(r, fields.as_ref()))
            .collect();
        Ok(page)
    }

    /// Reads one record the caller may see.
    pub async fn view(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        query: &ReadQuery,
    ) -> Result<Value, DbError> {
        let (catalog, entry) = self.entry(collection)?;
        let rule = self.rule_for(&entry, Action::View, caller)?;
        let (expand, fields) = read_options(query)?;
        let definition = &entry.definition;
        let request = request_data(caller, Map::new());
        let mut records = self
            .fetch_by_ids(&catalog, definition, &[id.to_owned()], rule, &request, None)
            .await?;
        let not_found = || DbError::RecordNotFound(id.to_owned(), collection.to_owned());
        if records.is_empty() {
            return Err(not_found());
        }
        if let Some(tree) = &expand {
            self.expand(&catalog, definition, &mut records, tree, caller)
                .await?;
        }
        Ok(project(records.remove(0), fields.as_ref()))
    }

    /// Creates a record.
    pub async fn create(
        &self,
        caller: &Caller,
        collection: &str,
        body: Value,
        query: &ReadQuery,
    ) -> Result<Value, DbError> {
        let (catalog, entry) = self.entry(collection)?;
        let options = read_options(query)?;
        // Without a rule to check after the insert, a create is one
        // statement: no explicit transaction needed.
        let single = matches!(caller, Caller::Service)
            || !matches!(entry.rule(Action::Create), Rule::Expr(_));
        let mut tx = if single {
            self.backend.autocommit().await?
        } else {
            self.backend.begin().await?
        };
        let record = self
            .create_in(&mut tx, &catalog, &entry, caller, body)
            .await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        self.emit(Change::Create, collection, &record);
        self.present(&catalog, &entry.definition, record, options, caller)
            .await
    }

    /// Creates a record inside `tx`.
    async fn create_in(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        entry: &Entry,
        caller: &Caller,
        body: Value,
    ) -> Result<Map<String, Value>, DbError> {
        let rule = self.rule_for(entry, Action::Create, caller)?;
        let definition = &entry.definition;
        let body = object(body)?;
        let mut errors = BTreeMap::new();
        let id = match body.get("id") {
            None | Some(Value::Null) => values::new_id(),
            Some(Value::String(id)) if values::valid_id(id) => id.clone(),
            Some(_) => {
                errors.insert(
                    "id".to_owned(),
                    FieldError::new("invalid_id", "use 1-64 letters, digits, `_` or `-`"),
                );
                String::new()
            }
        };
        for key in body.keys() {
            if key != "id" && definition.field(key).is_none() {
                errors.insert(key.clone(), unknown_field(key));
            }
        }
        let mut normal = Map::new();
        for field in &definition.fields {
            let given = body
                .get(&field.name)
                .or(field.default.as_ref())
                .unwrap_or(&Value::Null);
            match values::validate(field, given, entry.compiled.patterns.get(&field.name)) {
                Ok(value) if field.required && !values::present(&value) => {
                    errors.insert(
                        field.name.clone(),
                        FieldError::new("required", "a value is required"),
                    );
                }
                Ok(value) => {
                    normal.insert(field.name.clone(), value);
                }
                Err(error) => {
                    errors.insert(field.name.clone(), error);
                }
            }
        }
        self.check_relations(tx, catalog, definition, &normal, &mut errors)
            .await?;
        if !errors.is_empty() {
            return Err(DbError::Validation(errors));
        }
        let now = values::now();
        let dialect = self.backend.dialect();
        let mut insert = self.backend.query();
        let mut columns = vec![
            "\"id\"".to_owned(),
            "\"created\"".into(),
            "\"updated\"".into(),
        ];
        columns.extend(definition.fields.iter().map(|f| ident(&f.name)));
        insert.sql(&format!(
            "INSERT INTO {} ({}) VALUES (",
            ident(&definition.name),
            columns.join(", ")
        ));
        insert.arg(text_arg(&id), Storage::Text).sql(", ");
        insert.arg(text_arg(&now), Storage::Text).sql(", ");
        insert.arg(text_arg(&now), Storage::Text);
        for field in &definition.fields {
            insert.sql(", ").arg(
                to_arg(&normal[&field.name], field.storage()),
                field.storage(),
            );
        }
        insert.sql(")");
        if let Err(err) = tx.execute(&insert).await {
            return Err(
                unique_error(definition, &err).unwrap_or_else(|| anyhow::Error::from(err).into())
            );
        }
        if let Some(rule) = rule {
            let request = request_data(caller, body.clone());
            let resolver = PathResolver::new(catalog, definition, "r0", dialect, &request);
            let mut check = self.backend.query();
            check
                .sql(&format!(
                    "SELECT COUNT(*) FROM {} r0 WHERE r0.\"id\" = ",
                    ident(&definition.name)
                ))
                .arg(text_arg(&id), Storage::Text)
                .sql(" AND ");
            push_condition(&mut check, rule, &resolver)?;
            if tx.count(&check).await? == 0 {
                return Err(DbError::Forbidden(Action::Create));
            }
        }
        let mut record = Map::new();
        record.insert("id".into(), Value::String(id));
        record.insert("created".into(), Value::String(now.clone()));
        record.insert("updated".into(), Value::String(now));
        for field in &definition.fields {
            record.insert(
                field.name.clone(),
                output(field, normal[&field.name].clone()),
            );
        }
        Ok(record)
    }

    /// Changes the fields `body` names; `field+` and `field-` add to and
    /// subtract from number fields atomically.
    pub async fn update(
        &self,
        caller: &Caller,
        collection: &str,
        id: &str,
        body: Value,
        query: &ReadQuery,
    ) -> Result<Value, DbError> {
        let (catalog, entry) = self.entry(collection)?;
        let options = read_options(query)?;
        let mut tx = self.backend.begin().await?;
        let record = self
            .update_in(&mut tx, &catalog, &entry, caller, id, body)
            .await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        self.emit(Change::Update, collection, &record);
        self.present(&catalog, &entry.definition, record, options, caller)
            .await
    }

    /// Updates a record inside `tx`.
    async fn update_in(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        entry: &Entry,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> Result<Map<String, Value>, DbError> {
        let rule = self.rule_for(entry, Action::Update, caller)?;
        let definition = &entry.definition;
        let body = object(body)?;
        let mut errors = BTreeMap::new();
        let mut sets: Vec<(String, Value)> = Vec::new();
        let mut increments: Vec<(String, f64)> = Vec::new();
        // `list+` / `list-`: (key, field, add, items), applied to the stored list.
        let mut list_changes: Vec<(String, &Field, bool, Vec<Value>)> = Vec::new();
        for (key, value) in &body {
            let (name, sign) = match key.strip_suffix('+') {
                Some(name) => (name, Some(1.0)),
                None => match key.strip_suffix('-') {
                    Some(name) => (name, Some(-1.0)),
                    None => (key.as_str(), None),
                },
            };
            if SYSTEM_FIELDS.contains(&name) {
                errors.insert(
                    key.clone(),
                    FieldError::new("read_only", format!("`{name}` is set by the server")),
                );
                continue;
            }
            let Some(field) = definition.field(name) else {
                errors.insert(key.clone(), unknown_field(key));
                continue;
            };
            if let Some(sign) = sign
                && field.many()
            {
                let items = match value {
                    Value::Array(items) => items.clone(),
                    item => vec![item.clone()],
                };
                list_changes.push((key.clone(), field, sign > 0.0, items));
                continue;
            }
            if let Some(sign) = sign {
                match value.as_f64().filter(|n| n.is_finite()) {
                    Some(n) if field.kind == FieldType::Number => {
                        increments.push((name.to_owned(), sign * n))
                    }
                    _ if field.kind != FieldType::Number => {
                        errors.insert(
                            key.clone(),
                            FieldError::new(
                                "invalid_type",
                                "only number and list fields can be added to",
                            ),
                        );
                    }
                    _ => {
                        errors.insert(
                            key.clone(),
                            FieldError::new("invalid_type", "expected a number"),
                        );
                    }
                }
                continue;
            }
            match values::validate(field, value, entry.compiled.patterns.get(name)) {
                Ok(normal) if field.required && !values::present(&normal) => {
                    errors.insert(
                        key.clone(),
                        FieldError::new("required", "a value is required"),
                    );
                }
                Ok(normal) => sets.push((name.to_owned(), normal)),
                Err(error) => {
                    errors.insert(key.clone(), error);
                }
            }
        }
        if !list_changes.is_empty() {
            self.change_lists(tx, entry, id, list_changes, &mut sets, &mut errors)
                .await?;
        }
        let set_map: Map<String, Value> = sets.iter().cloned().collect();
        self.check_relations(tx, catalog, definition, &set_map, &mut errors)
            .await?;
        if !errors.is_empty() {
            return Err(DbError::Validation(errors));
        }
        let request = request_data(caller, body.clone());
        self.authorize_existing(
            tx,
            catalog,
            entry,
            id,
            Action::Update,
            rule,
            caller,
            &request,
        )
        .await?;
        let mut update = self.backend.query();
        update
            .sql(&format!(
                "UPDATE {} SET \"updated\" = ",
                ident(&definition.name)
            ))
            .arg(text_arg(&values::now()), Storage::Text);
        for (name, value) in &sets {
            let storage = definition
                .field(name)
                .map_or(Storage::Text, |f| f.storage());
            update
                .sql(&format!(", {} = ", ident(name)))
                .arg(to_arg(value, storage), storage);
        }
        for (name, delta) in &increments {
            let column = ident(name);
            update
                .sql(&format!(", {column} = COALESCE({column}, 0) + "))
                .arg(Arg::Number(*delta), Storage::Number);
        }
        update
            .sql(" WHERE \"id\" = ")
            .arg(text_arg(id), Storage::Text);
        if let Err(err) = tx.execute(&update).await {
            return Err(
                unique_error(definition, &err).unwrap_or_else(|| anyhow::Error::from(err).into())
            );
        }
        let record = self
            .read_in(tx, definition, id)
            .await?
            .ok_or_else(|| DbError::RecordNotFound(id.to_owned(), definition.name.clone()))?;
        // Increments are checked against min/max once applied.
        for (name, _) in &increments {
            let field = definition.field(name).expect("checked above");
            if let Err(error) = values::validate(field, &record[name], None) {
                errors.insert(format!("{name}+"), error);
            }
        }
        if !errors.is_empty() {
            return Err(DbError::Validation(errors));
        }
        Ok(record)
    }

    /// Applies `list+` / `list-` changes to the stored lists (or to a value
    /// the same update sets), as new values of the fields: adding to a
    /// multiple field skips what it holds, adding to an array appends, and
    /// taking away removes every occurrence. The results are checked as any
    /// value is (item counts, relations, files).
    async fn change_lists(
        &self,
        tx: &mut Tx,
        entry: &Entry,
        id: &str,
        changes: Vec<(String, &Field, bool, Vec<Value>)>,
        sets: &mut Vec<(String, Value)>,
        errors: &mut BTreeMap<String, FieldError>,
    ) -> Result<(), DbError> {
        let definition = &entry.definition;
        // A missing record is reported by the rule check that follows.
        let Some(stored) = self.read_in(tx, definition, id).await? else {
            return Ok(());
        };
        let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
        for (key, field, add, items) in changes {
            let at = sets.iter().position(|(name, _)| *name == field.name);
            let current = match at {
                Some(at) => sets[at].1.clone(),
                None => stored.get(&field.name).cloned().unwrap_or(Value::Null),
            };
            let mut list = match current {
                Value::Array(list) => list,
                _ => Vec::new(),
            };
            if add {
                for item in items {
                    if field.kind == FieldType::Array || !list.iter().any(|v| same(v, &item)) {
                        list.push(item);
                    }
                }
            } else {
                list.retain(|v| !items.iter().any(|item| same(v, item)));
            }
            match values::validate(
                field,
                &Value::Array(list),
                entry.compiled.patterns.get(&field.name),
            ) {
                Ok(normal) if field.required && !values::present(&normal) => {
                    errors.insert(key, FieldError::new("required", "a value is required"));
                }
                Ok(normal) => match at {
                    Some(at) => sets[at].1 = normal,
                    None => sets.push((field.name.clone(), normal)),
                },
                Err(error) => {
                    errors.insert(key, error);
                }
            }
        }
        Ok(())
    }

    /// Deletes a record.
    pub async fn delete(&self, caller: &Caller, collection: &str, id: &str) -> Result<(), DbError> {
        let (catalog, entry) = self.entry(collection)?;
        let mut tx = self.backend.begin().await?;
        let record = self
            .delete_in(&mut tx, &catalog, &entry, caller, id)
            .await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        self.emit(Change::Delete, collection, &record);
        Ok(())
    }

    /// Deletes a record inside `tx`.
    async fn delete_in(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        entry: &Entry,
        caller: &Caller,
        id: &str,
    ) -> Result<Map<String, Value>, DbError> {
        let rule = self.rule_for(entry, Action::Delete, caller)?;
        let request = request_data(caller, Map::new());
        self.authorize_existing(
            tx,
            catalog,
            entry,
            id,
            Action::Delete,
            rule,
            caller,
            &request,
        )
        .await?;
        // The record as it was goes out with the delete event.
        let definition = &entry.definition;
        let record = self
            .read_in(tx, definition, id)
            .await?
            .ok_or_else(|| DbError::RecordNotFound(id.to_owned(), definition.name.clone()))?;
        let mut delete = self.backend.query();
        delete
            .sql(&format!(
                "DELETE FROM {} WHERE \"id\" = ",
                ident(&definition.name)
            ))
            .arg(text_arg(id), Storage::Text);
        tx.execute(&delete).await.map_err(anyhow::Error::from)?;
        Ok(record)
    }

    /// The stored record `id` of `definition`, read inside `tx`.
    async fn read_in(
        &self,
        tx: &mut Tx,
        definition: &Collection,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, DbError> {
        let (select, storages) = select_list(definition, self.backend.dialect());
        let mut read = self.backend.query();
        read.sql(&format!(
            "SELECT {select} FROM {} r0 WHERE r0.\"id\" = ",
            ident(&definition.name)
        ))
        .arg(text_arg(id), Storage::Text);
        Ok(tx
            .fetch(&read, &storages)
            .await?
            .pop()
            .map(|row| to_record(definition, row)))
    }

    /// Runs operations in one transaction, each as its caller: all take
    /// effect or none does. Returns each operation's record (`null` for
    /// deletes), or the index of the first that failed and why.
    pub async fn batch(&self, ops: Vec<(Caller, BatchOp)>) -> Result<Vec<Value>, (usize, DbError)> {
        if ops.len() > MAX_BATCH {
            return Err((
                MAX_BATCH,
                DbError::InvalidBody(format!("a batch holds at most {MAX_BATCH} operations")),
            ));
        }
        let catalog = self.catalog();
        let mut tx = self.backend.begin().await.map_err(|e| (0, e.into()))?;
        let mut changes = Vec::with_capacity(ops.len());
        for (index, (caller, op)) in ops.into_iter().enumerate() {
            let entry = catalog.get(op.collection()).cloned().ok_or_else(|| {
                (
                    index,
                    DbError::CollectionNotFound(op.collection().to_owned()),
                )
            })?;
            let collection = op.collection().to_owned();
            let result = match op {
                BatchOp::Create { data, .. } => self
                    .create_in(&mut tx, &catalog, &entry, &caller, data)
                    .await
                    .map(|r| (Change::Create, r)),
                BatchOp::Update { id, data, .. } => self
                    .update_in(&mut tx, &catalog, &entry, &caller, &id, data)
                    .await
                    .map(|r| (Change::Update, r)),
                BatchOp::Delete { id, .. } => self
                    .delete_in(&mut tx, &catalog, &entry, &caller, &id)
                    .await
                    .map(|r| (Change::Delete, r)),
            };
            changes.push((collection, result.map_err(|e| (index, e))?));
        }
        let last = changes.len().saturating_sub(1);
        tx.commit()
            .await
            .map_err(|e| (last, anyhow::Error::from(e).into()))?;
        Ok(changes
            .into_iter()
            .map(|(collection, (change, record))| {
                self.emit(change, &collection, &record);
                match change {
                    Change::Delete => Value::Null,
                    _ => Value::Object(record),
                }
            })
            .collect())
    }

    /// Publishes a committed change on `collections.{collection}.{id}`.
    fn emit(&self, change: Change, collection: &str, record: &Map<String, Value>) {
        let Some(broker) = self.events.get() else {
            return;
        };
        let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
        let data = serde_json::json!({
            "action": change.name(),
            "collection": collection,
            "record": record,
        });
        if let Err(err) = broker.publish(&format!("collections.{collection}.{id}"), data) {
            tracing::warn!(error = %err, collection, id, "record event not published");
        }
    }

    /// Whether `caller` may view `record` of `collection` (as the record
    /// is, or was before a delete) and it matches `filter`, if any: the view
    /// rule and the filter are evaluated on the record's values, not on the
    /// table, so this also answers for deleted records. A filter that does
    /// not apply to the collection (an unknown field) does not match.
    pub async fn can_view(
        &self,
        caller: &Caller,
        collection: &str,
        record: &Value,
        filter: Option<&Expr>,
    ) -> Result<bool, DbError> {
        let (_, entry) = self.entry(collection)?;
        self.rule_holds(&entry, Action::View, caller, record, filter)
            .await
    }

    /// Why a rule of a standalone `entry` does not compile against its
    /// fields (and the current collections, for relations), if one does not:
    /// `(rule name, problem)`.
    pub fn rule_problem(&self, entry: &Entry) -> Option<(&'static str, String)> {
        let catalog = self.catalog();
        let request = request_data(&Caller::ANONYMOUS, Map::new());
        let resolver = PathResolver::new(
            &catalog,
            &entry.definition,
            "r0",
            self.backend.dialect(),
            &request,
        );
        Action::ALL
            .into_iter()
            .find_map(|action| match entry.rule(action) {
                super::Rule::Expr(expr) => {
                    filter::compile_after(expr, &resolver, self.backend.dialect(), 0)
                        .err()
                        .map(|err| (action.rule_name(), err.to_string()))
                }
                _ => None,
            })
    }

    /// Whether the rule of `action` in `entry` (a stored collection, or a
    /// standalone definition such as a bucket's object rules) lets `caller`
    /// act on `record`, a value shaped like the entry's definition; and, if
    /// given, whether `filter` holds for it. Evaluated in SQL over a one-row
    /// derived table, so rules mean the same everywhere.
    pub async fn rule_holds(
        &self,
        entry: &Entry,
        action: Action,
        caller: &Caller,
        record: &Value,
        filter: Option<&Expr>,
    ) -> Result<bool, DbError> {
        let catalog = self.catalog();
        let rule = match self.rule_for(entry, action, caller) {
            Ok(rule) => rule,
            Err(_) => return Ok(false),
        };
        if rule.is_none() && filter.is_none() {
            return Ok(true);
        }
        let definition = &entry.definition;
        let mut query = self.backend.query();
        query.sql("SELECT COUNT(*) FROM (SELECT ");
        let columns = SYSTEM_FIELDS
            .iter()
            .map(|name| (*name, Storage::Text))
            .chain(
                definition
                    .fields
                    .iter()
                    .map(|f| (f.name.as_str(), f.storage())),
            );
        for (i, (name, storage)) in columns.enumerate() {
            if i > 0 {
                query.sql(", ");
            }
            let value = record.get(name).unwrap_or(&Value::Null);
            query
                .arg(to_arg(value, storage), storage)
                .sql(&format!(" AS {}", ident(name)));
        }
        query.sql(") r0 WHERE 1 = 1");
        let request = request_data(caller, Map::new());
        let resolver =
            PathResolver::new(&catalog, definition, "r0", self.backend.dialect(), &request);
        if let Some(rule) = rule {
            query.sql(" AND ");
            push_condition(&mut query, rule, &resolver)?;
        }
        if let Some(filter) = filter {
            query.sql(" AND ");
            let written = filter_resolver(
                &catalog,
                definition,
                self.backend.dialect(),
                &request,
                caller,
            );
            match filter::compile_after(filter, &written, query.dialect(), query.args.len()) {
                Ok(sql) => query.condition(sql),
                Err(_) => return Ok(false),
            };
        }
        Ok(self.backend.count(&query).await? > 0)
    }

    /// Expands and projects a record for the answer.
    async fn present(
        &self,
        catalog: &Catalog,
        definition: &Collection,
        record: Map<String, Value>,
        (expand, fields): (Option<PathTree>, Option<PathTree>),
        caller: &Caller,
    ) -> Result<Value, DbError> {
        let mut records = vec![record];
        if let Some(tree) = &expand {
            self.expand(catalog, definition, &mut records, tree, caller)
                .await?;
        }
        Ok(project(records.remove(0), fields.as_ref()))
    }

    /// The rule condition `caller` is held to for `action`: `None` when
    /// nothing restricts it, [`DbError::Forbidden`] when the action is
    /// admin-only.
    fn rule_for<'e>(
        &self,
        entry: &'e Entry,
        action: Action,
        caller: &Caller,
    ) -> Result<Option<&'e Expr>, DbError> {
        match (caller, entry.rule(action)) {
            (Caller::Service, _) | (_, Rule::Public) => Ok(None),
            (_, Rule::Locked) => Err(DbError::Forbidden(action)),
            (_, Rule::Expr(expr)) => Ok(Some(expr)),
        }
    }

    /// Inside a write: 404 unless the record exists; unless the rule of
    /// `action` allows it, 403 if the caller can view the record, else 404.
    #[allow(clippy::too_many_arguments)]
    async fn authorize_existing(
        &self,
        tx: &mut super::backend::Tx,
        catalog: &Catalog,
        entry: &Entry,
        id: &str,
        action: Action,
        rule: Option<&Expr>,
        caller: &Caller,
        request: &RequestData,
    ) -> Result<(), DbError> {
        let definition = &entry.definition;
        let dialect = self.backend.dialect();
        let resolver = PathResolver::new(catalog, definition, "r0", dialect, request);
        let count = |condition: Option<&Expr>| -> Result<Query, DbError> {
            let mut query = self.backend.query();
            query
                .sql(&format!(
                    "SELECT COUNT(*) FROM {} r0 WHERE r0.\"id\" = ",
                    ident(&definition.name)
                ))
                .arg(text_arg(id), Storage::Text);
            if let Some(condition) = condition {
                query.sql(" AND ");
                push_condition(&mut query, condition, &resolver)?;
            }
            Ok(query)
        };
        let not_found = || DbError::RecordNotFound(id.to_owned(), definition.name.clone());
        if tx.count(&count(None)?).await? == 0 {
            return Err(not_found());
        }
        let Some(rule) = rule else {
            return Ok(());
        };
        if tx.count(&count(Some(rule))?).await? > 0 {
            return Ok(());
        }
        let visible = match self.rule_for(entry, Action::View, caller) {
            Ok(None) => true,
            Ok(Some(view)) => tx.count(&count(Some(view))?).await? > 0,
            Err(_) => false,
        };
        Err(if visible {
            DbError::Forbidden(action)
        } else {
            not_found()
        })
    }

    /// Records of `definition` with these ids that pass `rule`.
    async fn fetch_by_ids(
        &self,
        catalog: &Catalog,
        definition: &Collection,
        ids: &[String],
        rule: Option<&Expr>,
        request: &RequestData,
        mut tx: Option<&mut Tx>,
    ) -> Result<Vec<Map<String, Value>>, DbError> {
        let dialect = self.backend.dialect();
        let resolver = PathResolver::new(catalog, definition, "r0", dialect, request);
        let (select, storages) = select_list(definition, dialect);
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut query = self.backend.query();
            query.sql(&format!(
                "SELECT {select} FROM {} r0 WHERE r0.\"id\" IN (",
                ident(&definition.name)
            ));
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    query.sql(", ");
                }
                query.arg(text_arg(id), Storage::Text);
            }
            query.sql(")");
            if let Some(rule) = rule {
                query.sql(" AND ");
                push_condition(&mut query, rule, &resolver)?;
            }
            let rows = match tx.as_deref_mut() {
                Some(tx) => tx.fetch(&query, &storages).await?,
                None => self.backend.fetch(&query, &storages).await?,
            };
            for row in rows {
                records.push(to_record(definition, row));
            }
        }
        Ok(records)
    }

    /// Relation values must name existing records, file values existing
    /// objects.
    async fn check_relations(
        &self,
        tx: &mut Tx,
        catalog: &Catalog,
        definition: &Collection,
        values: &Map<String, Value>,
        errors: &mut BTreeMap<String, FieldError>,
    ) -> Result<(), DbError> {
        for field in &definition.fields {
            if let (Some(bucket), Some(value)) = (field.bucket.as_deref(), values.get(&field.name))
            {
                let keys: Vec<&str> = match value {
                    Value::String(key) => vec![key.as_str()],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => continue,
                };
                for key in keys {
                    let exists = self.backend.statement(
                        "SELECT COUNT(*) FROM _aura_objects WHERE bucket = ? AND key = ?",
                        [text_arg(bucket), text_arg(key)],
                    );
                    if tx.count(&exists).await? == 0 {
                        errors.insert(
                            field.name.clone(),
                            FieldError::new(
                                "file_not_found",
                                format!("no object `{key}` in bucket `{bucket}`"),
                            ),
                        );
                        break;
                    }
                }
                continue;
            }
            let (Some(target), Some(value)) =
                (field.collection.as_deref(), values.get(&field.name))
            else {
                continue;
            };
            let ids: Vec<String> = match value {
                Value::String(id) => vec![id.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => continue,
            };
            if ids.is_empty() {
                continue;
            }
            let Some(target) = catalog.get(target) else {
                continue;
            };
            let request = RequestData::default();
            let found = self
                .fetch_by_ids(
                    catalog,
                    &target.definition,
                    &ids,
                    None,
                    &request,
                    Some(&mut *tx),
                )
                .await?;
            if let Some(missing) = ids
                .iter()
                .find(|id| !found.iter().any(|r| r["id"].as_str() == Some(id.as_str())))
            {
                errors.insert(
                    field.name.clone(),
                    FieldError::new(
                        "relation_not_found",
                        format!("no record `{missing}` in `{}`", target.definition.name),
                    ),
                );
            }
        }
        Ok(())
    }

    /// Adds `expand` to each record: related records the caller may view.
    fn expand<'a>(
        &'a self,
        catalog: &'a Catalog,
        definition: &'a Collection,
        records: &'a mut [Map<String, Value>],
        tree: &'a PathTree,
        caller: &'a Caller,
    ) -> futures::future::BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            for (name, children) in &tree.0 {
                let field = definition
                    .field(name)
                    .filter(|f| f.kind == FieldType::Relation)
                    .ok_or_else(|| {
                        invalid(
                            "expand",
                            format!("`{name}` is not a relation field of `{}`", definition.name),
                        )
                    })?;
                let target_name = field.collection.as_deref().unwrap_or_default();
                let Some(target) = catalog.get(target_name) else {
                    continue;
                };
                let mut ids: Vec<String> = Vec::new();
                for record in records.iter() {
                    match &record[name] {
                        Value::String(id) => ids.push(id.clone()),
                        Value::Array(items) => {
                            ids.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                        }
                        _ => {}
                    }
                }
                ids.sort();
                ids.dedup();
                // Related records obey their own view rule.
                let rule = match self.rule_for(target, Action::View, caller) {
                    Ok(rule) => rule,
                    Err(_) => continue,
                };
                if ids.is_empty() {
                    continue;
                }
                let request = request_data(caller, Map::new());
                let mut related = self
                    .fetch_by_ids(catalog, &target.definition, &ids, rule, &request, None)
                    .await?;
                if !children.0.is_empty() {
                    self.expand(catalog, &target.definition, &mut related, children, caller)
                        .await?;
                }
                let by_id: BTreeMap<String, Value> = related
                    .into_iter()
                    .map(|r| {
                        (
                            r["id"].as_str().unwrap_or_default().to_owned(),
                            Value::Object(r),
                        )
                    })
                    .collect();
                for record in records.iter_mut() {
                    let value = match &record[name] {
                        Value::String(id) => by_id.get(id).cloned(),
                        Value::Array(items) => Some(Value::Array(
                            items
                                .iter()
                                .filter_map(|v| v.as_str().and_then(|id| by_id.get(id)).cloned())
                                .collect(),
                        )),
                        _ => None,
                    };
                    if let Some(value) = value {
                        let expand = record
                            .entry("expand")
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(expand) = expand {
                            expand.insert(name.clone(), value);
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

fn request_data(caller: &Caller, body: Map<String, Value>) -> RequestData {
    RequestData {
        auth: match caller {
            Caller::Service => None,
            Caller::User(user) => user.clone(),
        },
        body,
        now: values::now(),
    }
}

fn object(body: Value) -> Result<Map<String, Value>, DbError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(DbError::InvalidBody(
            "the body must be a JSON object".into(),
        )),
    }
}

fn unknown_field(key: &str) -> FieldError {
    FieldError::new(
        "unknown_field",
        format!("the collection has no field `{key}`"),
    )
}

fn read_options(query: &ReadQuery) -> Result<(Option<PathTree>, Option<PathTree>), DbError> {
    let expand = match query.expand.as_deref() {
        Some(text) => Some(PathTree::parse("expand", text, MAX_EXPANDS)?),
        None => None,
    };
    let fields = match query.fields.as_deref() {
        Some(text) => Some(PathTree::parse("fields", text, 100)?),
        None => None,
    };
    Ok((expand, fields))
}

/// `SELECT` list of a collection aliased `r0`, and how to decode it.
fn select_list(definition: &Collection, dialect: filter::Dialect) -> (String, Vec<Storage>) {
    let mut columns = vec![
        "r0.\"id\"".to_owned(),
        "r0.\"created\"".into(),
        "r0.\"updated\"".into(),
    ];
    let mut storages = vec![Storage::Text; 3];
    for field in &definition.fields {
        columns.push(select_column(
            dialect,
            &format!("r0.{}", ident(&field.name)),
            field.storage(),
        ));
        storages.push(field.storage());
    }
    (columns.join(", "), storages)
}

/// The value a record shows: absent multi-valued fields read as `[]`.
fn output(field: &super::schema::Field, value: Value) -> Value {
    match value {
        Value::Null if field.many() => Value::Array(Vec::new()),
        other => other,
    }
}

fn to_record(definition: &Collection, row: Vec<Value>) -> Map<String, Value> {
    let mut values = row.into_iter();
    let mut record = Map::new();
    for name in SYSTEM_FIELDS {
        record.insert(name.to_owned(), values.next().unwrap_or(Value::Null));
    }
    for field in &definition.fields {
        let value = values.next().unwrap_or(Value::Null);
        record.insert(field.name.clone(), output(field, value));
    }
    record
}

fn push_condition(
    query: &mut Query,
    expr: &Expr,
    resolver: &PathResolver<'_>,
) -> Result<(), DbError> {
    let sql = filter::compile_after(expr, resolver, query.dialect(), query.args.len())
        .map_err(|e| anyhow::anyhow!("a stored rule no longer compiles: {e}"))?;
    query.condition(sql);
    Ok(())
}

/// A filter `caller` wrote, parsed: a caller other than a service may
/// follow relations at most [`MAX_FILTER_HOPS`] times in all.
pub fn caller_filter(text: &str, caller: &Caller) -> Result<Expr, DbError> {
    let expr = filter::parse(text).map_err(|e| filter_error("filter", e))?;
    let hops = expr.relation_hops();
    if *caller != Caller::Service && hops > MAX_FILTER_HOPS {
        return Err(filter_error(
            "filter",
            FilterError {
                position: 0,
                message: format!(
                    "the filter follows relations {hops} times; at most {MAX_FILTER_HOPS} in all"
                ),
            },
        ));
    }
    Ok(expr)
}

/// The resolver of an expression `caller` wrote (a filter): its relation
/// paths reach only related records the caller may view, unless the
/// caller is a service, to whom rules do not apply.
fn filter_resolver<'a>(
    catalog: &'a Catalog,
    definition: &'a Collection,
    dialect: filter::Dialect,
    request: &'a RequestData,
    caller: &Caller,
) -> PathResolver<'a> {
    let resolver = PathResolver::new(catalog, definition, "r0", dialect, request);
    match caller {
        Caller::Service => resolver,
        Caller::User(_) => resolver.restricted(),
    }
}

/// ` WHERE` the caller's `filter` (resolved by the first resolver) and the
/// `rule` (by the second).
fn where_clause(
    query: &mut Query,
    filter: Option<&Expr>,
    rule: Option<&Expr>,
    (written, trusted): (&PathResolver<'_>, &PathResolver<'_>),
) -> Result<(), DbError> {
    query.sql(" WHERE 1 = 1");
    if let Some(filter) = filter {
        query.sql(" AND ");
        let sql = filter::compile_after(filter, written, query.dialect(), query.args.len())
            .map_err(|e| filter_error("filter", e))?;
        query.condition(sql);
    }
    if let Some(rule) = rule {
        query.sql(" AND ");
        push_condition(query, rule, trusted)?;
    }
    Ok(())
}

fn sort_keys(definition: &Collection, sort: Option<&str>) -> Result<Vec<SortKey>, DbError> {
    let Some(sort) = sort.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(vec![SortKey {
            column: "r0.\"created\"".into(),
            storage: Storage::Text,
            desc: false,
            name: "created".into(),
        }]);
    };
    let mut keys = Vec::new();
    for part in sort.split(',').map(str::trim) {
        let (desc, name) = match part.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let storage = if SYSTEM_FIELDS.contains(&name) {
            Storage::Text
        } else {
            match definition.field(name) {
                Some(field) if field.sortable() => field.storage(),
                Some(_) => {
                    return Err(invalid(
                        "sort",
                        format!("`{name}` holds several values or JSON and cannot be sorted"),
                    ));
                }
                None => return Err(invalid("sort", format!("unknown field `{name}`"))),
            }
        };
        if keys.iter().any(|k: &SortKey| k.name == name) {
            return Err(invalid("sort", format!("`{name}` is listed twice")));
        }
        keys.push(SortKey {
            column: format!("r0.{}", ident(name)),
            storage,
            desc,
            name: name.to_owned(),
        });
    }
    if keys.len() > MAX_SORT_KEYS {
        return Err(invalid(
            "sort",
            format!("at most {MAX_SORT_KEYS} sort keys"),
        ));
    }
    Ok(keys)
}

fn order_by(query: &mut Query, keys: &[SortKey]) {
    let parts: Vec<String> = keys
        .iter()
        .map(|k| {
            if k.desc {
                format!("{} DESC NULLS LAST", k.column)
            } else {
                format!("{} ASC NULLS FIRST", k.column)
            }
        })
        .collect();
    query.sql(&format!(" ORDER BY {}", parts.join(", ")));
}

fn encode_cursor(keys: &[SortKey], record: &Map<String, Value>) -> String {
    let values: Vec<Value> = keys
        .iter()
        .map(|k| record.get(&k.name).cloned().unwrap_or(Value::Null))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Value::Array(values).to_string())
}

fn decode_cursor(cursor: &str, keys: usize) -> Result<Vec<Value>, DbError> {
    let bad = || invalid("cursor", "the cursor is not one this list gave out");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(values))
            if values.len() == keys && values.iter().all(|v| !v.is_array() && !v.is_object()) =>
        {
            Ok(values)
        }
        _ => Err(bad()),
    }
}

/// Rows after the cursor's, in the order of `keys`: the first key that
/// differs decides, with NULLs first ascending and last descending.
fn cursor_condition(query: &mut Query, keys: &[SortKey], values: &[Value]) {
    let mut first = true;
    for i in 0..keys.len() {
        if !first {
            query.sql(" OR ");
        }
        first = false;
        query.sql("(");
        for j in 0..i {
            let (key, value) = (&keys[j], &values[j]);
            if value.is_null() {
                query.sql(&format!("{} IS NULL AND ", key.column));
            } else {
                query
                    .sql(&format!("{} = ", key.column))
                    .arg(cursor_arg(value, key.storage), key.storage)
                    .sql(" AND ");
            }
        }
        let (key, value) = (&keys[i], &values[i]);
        match (key.desc, value.is_null()) {
            (false, true) => query.sql(&format!("{} IS NOT NULL", key.column)),
            (false, false) => query
                .sql(&format!("{} > ", key.column))
                .arg(cursor_arg(value, key.storage), key.storage),
            (true, true) => query.sql("1 = 0"),
            (true, false) => query
                .sql(&format!("({} < ", key.column))
                .arg(cursor_arg(value, key.storage), key.storage)
                .sql(&format!(" OR {} IS NULL)", key.column)),
        };
        query.sql(")");
    }
}

fn cursor_arg(value: &Value, storage: Storage) -> Arg {
    match (storage, value) {
        (Storage::Number, Value::Number(n)) => Arg::Number(n.as_f64().unwrap_or(0.0)),
        (Storage::Bool, Value::Bool(b)) => Arg::Bool(*b),
        (_, Value::String(s)) => Arg::Text(s.clone()),
        (_, other) => Arg::Text(other.to_string()),
    }
}

/// Keeps the paths of `fields` (`*` keeps every key at its level).
fn project(record: Map<String, Value>, fields: Option<&PathTree>) -> Value {
    fn apply(value: Value, tree: &PathTree) -> Value {
        match value {
            Value::Object(map) => {
                let all = tree.0.contains_key("*");
                Value::Object(
                    map.into_iter()
                        .filter_map(|(key, value)| match tree.0.get(&key) {
                            Some(sub) if !sub.0.is_empty() => Some((key, apply(value, sub))),
                            Some(_) => Some((key, value)),
                            None if all => Some((key, value)),
                            None => None,
                        })
                        .collect(),
                )
            }
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| apply(v, tree)).collect())
            }
            other => other,
        }
    }
    match fields {
        Some(tree) if !tree.0.is_empty() => apply(Value::Object(record), tree),
        _ => Value::Object(record),
    }
}

/// Maps a unique violation to the fields involved.
fn unique_error(definition: &Collection, err: &sqlx::Error) -> Option<DbError> {
    let named = unique_violation(err)?;
    let fields = if named.ends_with("_pkey") {
        vec!["id".to_owned()]
    } else if let Some(index) = definition
        .all_indexes()
        .into_iter()
        .find(|i| definition.index_name(i) == named)
    {
        index.fields
    } else {
        // SQLite names `table.column` pairs.
        named
            .split(", ")
            .map(|part| {
                part.rsplit_once('.')
                    .map_or(part, |(_, column)| column)
                    .to_owned()
            })
            .collect()
    };
    Some(DbError::Unique(fields))
}
