//! `todo-api`: a REST API for the `todos` collection (`title` text, `done`
//! bool), written as a function over `aura_sdk::db`.
//!
//! - `GET /todos` lists a page (`filter`, `sort`, `page`, `perPage`, `cursor`
//!   and `expand` query parameters are passed through);
//! - `POST /todos` creates a todo (201);
//! - `GET`, `PATCH`, `DELETE /todos/{id}` read, change and delete one (the
//!   delete answers 204);
//! - `POST /todos/batch` runs `{"create": [..], "update": [..], "delete": [..]}`
//!   as one all-or-nothing batch.
//!
//! Errors are `{"error": {"code", "message"}}` with the status the database
//! error maps to; the function needs the grant
//! `collections = { todos = "read-write" }`.

use aura_sdk::db::{self, DbError, ListOptions, Op};
use aura_sdk::serde_json::{Value, json};
use aura_sdk::{Request, Response};

/// The collection this API serves.
const COLLECTION: &str = "todos";

/// A handler's answer: the `Err` side is an error response, so `?` can
/// return early with it.
type Answer = Result<Response, Response>;

fn handle(req: Request) -> Response {
    route(req).unwrap_or_else(|error| error)
}

fn route(req: Request) -> Answer {
    let method = req.method().to_owned();
    let full_path = req.path().to_owned();
    // `/todos/` is `/todos`.
    let path = full_path.trim_end_matches('/');
    match path.strip_prefix("/todos") {
        Some("") => match method.as_str() {
            "GET" => list(&req),
            "POST" => create(req),
            _ => Err(method_not_allowed(&method, "GET, POST")),
        },
        Some(rest) => match rest.strip_prefix('/') {
            Some(id) if !id.contains('/') => match (method.as_str(), id) {
                // `batch` is a valid record id too, so only POST (which a
                // record does not take) makes it the batch endpoint.
                ("POST", "batch") => batch(req),
                ("GET", _) => get(id),
                ("PATCH", _) => update(id, req),
                ("DELETE", _) => delete(id),
                (_, "batch") => Err(method_not_allowed(&method, "GET, POST, PATCH, DELETE")),
                _ => Err(method_not_allowed(&method, "GET, PATCH, DELETE")),
            },
            _ => Err(not_found(&full_path)),
        },
        None => Err(not_found(&full_path)),
    }
}

/// `GET /todos`: one page, as the JSON object `db::list` returns.
fn list(req: &Request) -> Answer {
    let options = ListOptions {
        filter: query(req, "filter")?,
        sort: query(req, "sort")?,
        page: query_number(req, "page")?,
        per_page: query_number(req, "perPage")?,
        cursor: query(req, "cursor")?,
        expand: query(req, "expand")?,
    };
    let page = db::list(COLLECTION, &options).map_err(db_error)?;
    Ok(Response::json(200, &page))
}

/// `POST /todos`: creates a todo from the JSON body.
fn create(req: Request) -> Answer {
    let data = read_json(req)?;
    let todo = db::create(COLLECTION, &data).map_err(db_error)?;
    Ok(Response::json(201, &todo))
}

/// `GET /todos/{id}`.
fn get(id: &str) -> Answer {
    let todo = db::get(COLLECTION, id).map_err(db_error)?;
    Ok(Response::json(200, &todo))
}

/// `PATCH /todos/{id}`: changes the fields the JSON body names.
fn update(id: &str, req: Request) -> Answer {
    let data = read_json(req)?;
    let todo = db::update(COLLECTION, id, &data).map_err(db_error)?;
    Ok(Response::json(200, &todo))
}

/// `DELETE /todos/{id}`: 204, no body.
fn delete(id: &str) -> Answer {
    db::delete(COLLECTION, id).map_err(db_error)?;
    Ok(Response::new(204))
}

/// `POST /todos/batch`: the body's operations in one transaction, in the
/// order creates, updates, deletes. Answers `{"results": [..]}` (one record
/// per create and update, `null` per delete), or the error of the operation
/// that failed with its `index` in that order and its `operation`
/// (`"delete[0]"`); then nothing took effect.
fn batch(req: Request) -> Answer {
    let body = read_json(req)?;
    let Value::Object(body) = body else {
        return Err(invalid("the batch body must be a JSON object"));
    };
    if let Some(key) = body
        .keys()
        .find(|key| !matches!(key.as_str(), "create" | "update" | "delete"))
    {
        return Err(invalid(&format!(
            "unknown batch key `{key}`: expected `create`, `update` or `delete`"
        )));
    }
    // The operations, and for each where it came from in the body.
    let mut ops = Vec::new();
    let mut labels = Vec::new();
    for (i, data) in batch_items(&body, "create")?.iter().enumerate() {
        ops.push(Op::create(COLLECTION, data));
        labels.push(format!("create[{i}]"));
    }
    for (i, item) in batch_items(&body, "update")?.iter().enumerate() {
        let mut data = item.clone();
        let id = data
            .as_object_mut()
            .and_then(|fields| fields.remove("id"))
            .and_then(|id| id.as_str().map(str::to_owned))
            .ok_or_else(|| {
                invalid(&format!(
                    "update[{i}] must be an object with a string `id` and the fields to change"
                ))
            })?;
        ops.push(Op::update(COLLECTION, id, &data));
        labels.push(format!("update[{i}]"));
    }
    for (i, id) in batch_items(&body, "delete")?.iter().enumerate() {
        let id = id
            .as_str()
            .ok_or_else(|| invalid(&format!("delete[{i}] must be a record id (a string)")))?;
        ops.push(Op::delete(COLLECTION, id));
        labels.push(format!("delete[{i}]"));
    }
    if ops.is_empty() {
        return Err(invalid(
            "the batch is empty: give `create`, `update` or `delete`",
        ));
    }
    match db::batch(&ops) {
        Ok(results) => Ok(Response::json(200, &json!({ "results": results }))),
        Err(err) => {
            let mut body = error_body(&err.error);
            body["error"]["index"] = json!(err.index);
            body["error"]["operation"] = json!(labels.get(err.index));
            Err(Response::json(err.status(), &body))
        }
    }
}

/// The array under `key` of a batch body; empty if absent.
fn batch_items<'a>(
    body: &'a aura_sdk::serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a [Value], Response> {
    match body.get(key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(&format!("`{key}` must be an array"))),
    }
}

/// The decoded query parameter `name`, if present.
fn query(req: &Request, name: &str) -> Result<Option<String>, Response> {
    req.query_param(name)
        .map_err(|e| invalid(&format!("query parameter `{name}`: {e}")))
}

/// The query parameter `name` as a non-negative integer, if present.
fn query_number(req: &Request, name: &str) -> Result<Option<u32>, Response> {
    query(req, name)?
        .map(|value| {
            value.parse::<u32>().map_err(|_| {
                invalid(&format!(
                    "query parameter `{name}` must be a whole number, not `{value}`"
                ))
            })
        })
        .transpose()
}

/// The request body parsed as JSON.
fn read_json(req: Request) -> Result<Value, Response> {
    let bytes = req
        .body_bytes()
        .map_err(|e| error(400, "bad_request", &e.to_string()))?;
    aura_sdk::serde_json::from_slice(&bytes).map_err(|e| {
        error(
            400,
            "invalid_json",
            &format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// The response for a database error: its status, code and message.
fn db_error(err: DbError) -> Response {
    Response::json(err.status(), &error_body(&err))
}

/// `{"error": {"code", "message"}}` for a database error. An `invalid`
/// error whose message is a JSON object (per-field reasons) also gets it
/// parsed, as `details`.
fn error_body(err: &DbError) -> Value {
    let mut body = json!({ "error": { "code": err.code(), "message": err.message() } });
    if let DbError::Invalid(message) = err
        && let Ok(details @ Value::Object(_)) = aura_sdk::serde_json::from_str(message)
    {
        body["error"]["details"] = details;
    }
    body
}

/// A `{"error": {"code", "message"}}` JSON response.
fn error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "error": { "code": code, "message": message } }),
    )
}

/// 400 `invalid`: a bad query parameter or batch body.
fn invalid(message: &str) -> Response {
    error(400, "invalid", message)
}

/// 404 `not_found` for a path this API does not serve.
fn not_found(path: &str) -> Response {
    error(404, "not_found", &format!("no route for `{path}`"))
}

/// 405 `method_not_allowed`, with the `allow` header listing `allowed`.
fn method_not_allowed(method: &str, allowed: &str) -> Response {
    error(
        405,
        "method_not_allowed",
        &format!("{method} is not allowed here; use {allowed}"),
    )
    .header("allow", allowed)
}

aura_sdk::http_function!(handle);
