//! Records of collections (`aura:platform/db`): the same service as the REST
//! API `/api/collections/{collection}/records`, with the same filters,
//! sorting, paging, expansion, validation and access rules.
//!
//! The function may only use the collections its `collections` grant lists
//! (`[grants] collections = { todos = "read-write", tags = "read" }`). With
//! `"read"` or `"read-write"`, calls act for the user who invoked the
//! function (or for nobody), so the collection's rules apply exactly as over
//! REST; `"service"` gives read-write access that bypasses the rules, for
//! trusted server-side logic only.
//!
//! Records are JSON objects with `id`, `created`, `updated` and the
//! collection's fields; they go in and come out as [`serde_json::Value`].
//! Every failure is a [`DbError`], whose [`DbError::status`] is the HTTP
//! status the REST API would answer with.
//!
//! ```no_run
//! use aura_sdk::db::{self, ListOptions, Op};
//! use aura_sdk::serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let todo = db::create("todos", &json!({ "title": "milk", "done": false }))?;
//! let id = todo["id"].as_str().unwrap_or_default();
//! db::update("todos", id, &json!({ "done": true }))?;
//!
//! let page = db::list(
//!     "todos",
//!     &ListOptions::new().filter("done = false").sort("-created").per_page(50),
//! )?;
//! for todo in page["items"].as_array().into_iter().flatten() {
//!     println!("{}", todo["title"]);
//! }
//!
//! // All or nothing: "eggs" is created and the first todo deleted, or
//! // neither happens.
//! db::batch(&[
//!     Op::create("todos", &json!({ "title": "eggs" })),
//!     Op::delete("todos", id),
//! ])?;
//! # Ok(())
//! # }
//! ```
//!
//! The module's calls import `aura:platform/db@0.1.0`; a function that never
//! calls them does not import it and needs no grant.

use serde_json::Value;

use crate::bindings::aura::platform::db as wit;

/// Why a database call failed. Each variant carries the host's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The collection is not in the function's grant, or a collection rule
    /// denies the action (HTTP 403).
    Denied(String),
    /// No such collection or record, or the caller may not see it (HTTP 404).
    NotFound(String),
    /// Invalid input: field values (the message carries the per-field reasons
    /// as JSON), a filter, a sort, or data that is not a JSON object
    /// (HTTP 400).
    Invalid(String),
    /// A unique field or index already holds the value (HTTP 409).
    Conflict(String),
    /// Anything else; details are in the server log (HTTP 500).
    Internal(String),
}

impl DbError {
    /// The HTTP status matching the error: 403 [`Denied`](Self::Denied),
    /// 404 [`NotFound`](Self::NotFound), 400 [`Invalid`](Self::Invalid),
    /// 409 [`Conflict`](Self::Conflict), 500 [`Internal`](Self::Internal).
    pub fn status(&self) -> u16 {
        match self {
            DbError::Denied(_) => 403,
            DbError::NotFound(_) => 404,
            DbError::Invalid(_) => 400,
            DbError::Conflict(_) => 409,
            DbError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable name for the variant: `"denied"`,
    /// `"not_found"`, `"invalid"`, `"conflict"` or `"internal"`.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Denied(_) => "denied",
            DbError::NotFound(_) => "not_found",
            DbError::Invalid(_) => "invalid",
            DbError::Conflict(_) => "conflict",
            DbError::Internal(_) => "internal",
        }
    }

    /// The host's message, without the variant prefix that `Display` adds.
    pub fn message(&self) -> &str {
        match self {
            DbError::Denied(message)
            | DbError::NotFound(message)
            | DbError::Invalid(message)
            | DbError::Conflict(message)
            | DbError::Internal(message) => message,
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Denied(message) => write!(f, "db access denied: {message}"),
            DbError::NotFound(message) => write!(f, "db not found: {message}"),
            DbError::Invalid(message) => write!(f, "db input invalid: {message}"),
            DbError::Conflict(message) => write!(f, "db conflict: {message}"),
            DbError::Internal(message) => write!(f, "db internal error: {message}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<wit::Error> for DbError {
    fn from(err: wit::Error) -> Self {
        match err {
            wit::Error::Denied(message) => DbError::Denied(message),
            wit::Error::NotFound(message) => DbError::NotFound(message),
            wit::Error::Invalid(message) => DbError::Invalid(message),
            wit::Error::Conflict(message) => DbError::Conflict(message),
            wit::Error::Internal(message) => DbError::Internal(message),
        }
    }
}

/// Which operation of a [`batch`] failed, and why. Nothing of the batch took
/// effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// Position of the failed operation in the batch, from 0.
    pub index: usize,
    /// Why it failed.
    pub error: DbError,
}

impl BatchError {
    /// The HTTP status matching the error (see [`DbError::status`]).
    pub fn status(&self) -> u16 {
        self.error.status()
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch operation {} failed: {}", self.index, self.error)
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// How [`list`] selects records: filter, sorting, paging and expansion.
/// Every field is optional; [`ListOptions::default`] asks for the first page
/// (30 records) of everything the caller may list.
///
/// Build it with the chained setters or by filling the fields:
///
/// ```
/// use aura_sdk::db::ListOptions;
///
/// let options = ListOptions::new().filter("done = false").sort("-created").page(2);
/// assert_eq!(options.page, Some(2));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// A filter expression, e.g. `done = false && title ~ 'milk'`.
    pub filter: Option<String>,
    /// Sort keys, comma-separated, `-` for descending: `-created,title`.
    pub sort: Option<String>,
    /// Page number from 1 (page mode).
    pub page: Option<u32>,
    /// Records per page, 1-500 (the host's default is 30).
    pub per_page: Option<u32>,
    /// Cursor mode: `""` for the first page, then the `nextCursor` of the
    /// previous page.
    pub cursor: Option<String>,
    /// Relations to expand, e.g. `author.team,tags`.
    pub expand: Option<String>,
}

impl ListOptions {
    /// No filter, default sorting and paging (same as [`Default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the filter expression.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Sets the sort keys.
    pub fn sort(mut self, sort: impl Into<String>) -> Self {
        self.sort = Some(sort.into());
        self
    }

    /// Sets the page number (from 1).
    pub fn page(mut self, page: u32) -> Self {
        self.page = Some(page);
        self
    }

    /// Sets the number of records per page (1-500).
    pub fn per_page(mut self, per_page: u32) -> Self {
        self.per_page = Some(per_page);
        self
    }

    /// Switches to cursor mode: `""` for the first page, then the previous
    /// page's `nextCursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Sets the relations to expand.
    pub fn expand(mut self, expand: impl Into<String>) -> Self {
        self.expand = Some(expand.into());
        self
    }
}

/// One record by id.
pub fn get(collection: &str, id: &str) -> Result<Value, DbError> {
    parse(wit::get(collection, id)?)
}

/// One page of records: the JSON object the REST list returns, with
/// `items` (the records) and `perPage`, plus `page`, `totalItems` and
/// `totalPages` in page mode or `nextCursor` in cursor mode.
pub fn list(collection: &str, options: &ListOptions) -> Result<Value, DbError> {
    let options = wit::ListOptions {
        filter: options.filter.clone(),
        sort: options.sort.clone(),
        page: options.page,
        per_page: options.per_page,
        cursor: options.cursor.clone(),
        expand: options.expand.clone(),
    };
    parse(wit::list(collection, &options)?)
}

/// Creates a record from the JSON object `data` (an `id` may be given);
/// returns the stored record.
pub fn create(collection: &str, data: &Value) -> Result<Value, DbError> {
    parse(wit::create(collection, &data.to_string())?)
}

/// Changes the fields the JSON object `data` names, leaving the others as
/// they are (`{"n+": 1}` adds 1 to `n` atomically); returns the stored
/// record.
pub fn update(collection: &str, id: &str, data: &Value) -> Result<Value, DbError> {
    parse(wit::update(collection, id, &data.to_string())?)
}

/// Deletes a record.
pub fn delete(collection: &str, id: &str) -> Result<(), DbError> {
    wit::delete(collection, id)?;
    Ok(())
}

/// One operation of a [`batch`]: made by [`Op::create`], [`Op::update`] or
/// [`Op::delete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    action: wit::Action,
    collection: String,
    id: Option<String>,
    data: Option<String>,
}

impl Op {
    /// Creates a record from the JSON object `data`.
    pub fn create(collection: impl Into<String>, data: &Value) -> Self {
        Self {
            action: wit::Action::Create,
            collection: collection.into(),
            id: None,
            data: Some(data.to_string()),
        }
    }

    /// Changes the fields of record `id` that the JSON object `data` names.
    pub fn update(collection: impl Into<String>, id: impl Into<String>, data: &Value) -> Self {
        Self {
            action: wit::Action::Update,
            collection: collection.into(),
            id: Some(id.into()),
            data: Some(data.to_string()),
        }
    }

    /// Deletes record `id`.
    pub fn delete(collection: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            action: wit::Action::Delete,
            collection: collection.into(),
            id: Some(id.into()),
            data: None,
        }
    }
}

/// Runs `ops` in one transaction, in order: all of them take effect or none
/// does. Returns one value per operation, in the same order: the stored
/// record for creates and updates, `null` for deletes.
///
/// On failure the [`BatchError`] says which operation failed and why.
pub fn batch(ops: &[Op]) -> Result<Vec<Value>, BatchError> {
    let ops: Vec<wit::Op> = ops
        .iter()
        .map(|op| wit::Op {
            action: op.action,
            collection: op.collection.clone(),
            id: op.id.clone(),
            data: op.data.clone(),
        })
        .collect();
    let results = wit::batch(&ops).map_err(|err| BatchError {
        index: err.index as usize,
        error: err.error.into(),
    })?;
    results
        .into_iter()
        .enumerate()
        .map(|(index, result)| parse(result).map_err(|error| BatchError { index, error }))
        .collect()
}

/// Parses JSON text from the host; malformed text is a host bug, reported
/// as [`DbError::Internal`].
fn parse(text: String) -> Result<Value, DbError> {
    serde_json::from_str(&text)
        .map_err(|err| DbError::Internal(format!("the host returned invalid JSON: {err}")))
}
